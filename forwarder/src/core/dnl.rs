//! Dead Nonce List: (Name, Nonce) pairs of Interests that recently left the PIT, so a looping
//! Interest that returns after its PIT entry is gone is still recognised (NFD semantics:
//! lifetime 6 s by default, bounded capacity).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

use super::{IdHasher, Time};

/// Bounded, time-ordered set of `hash(name, nonce)` values. The hash is keyed (SipHash with
/// a per-list random key, like the PIT's index), so nobody can pick a (name, nonce) pair whose
/// key collides with another Interest's and get that Interest dropped as a loop.
pub struct DeadNonceList {
    hasher: RandomState,
    queue: VecDeque<(Time, u64)>,
    set: HashMap<u64, u32, IdHasher>,
    lifetime_ns: u64,
    capacity: usize,
}

impl DeadNonceList {
    /// A list keeping each entry for `lifetime_ns`, at most `capacity` entries (oldest evicted).
    pub fn new(lifetime_ns: u64, capacity: usize) -> Self {
        DeadNonceList {
            hasher: RandomState::new(),
            queue: VecDeque::new(),
            set: HashMap::default(),
            lifetime_ns,
            capacity: capacity.max(1),
        }
    }

    /// The key of one (name, nonce) pair in this list.
    pub fn key(&self, name_hash: u64, nonce: u32) -> u64 {
        self.hasher.hash_one((name_hash, nonce))
    }

    /// Records a pair at `now`.
    pub fn add(&mut self, now: Time, key: u64) {
        self.expire(now);
        while self.queue.len() >= self.capacity {
            self.pop_front();
        }
        self.queue.push_back((now, key));
        *self.set.entry(key).or_insert(0) += 1;
    }

    /// Whether the pair is present (and not yet expired at `now`).
    pub fn contains(&self, key: u64) -> bool {
        self.set.contains_key(&key)
    }

    /// Drops entries older than the lifetime.
    pub fn expire(&mut self, now: Time) {
        while let Some(&(t, _)) = self.queue.front() {
            if now.as_nanos().saturating_sub(t.as_nanos()) < self.lifetime_ns {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, k)) = self.queue.pop_front()
            && let Some(c) = self.set.get_mut(&k)
        {
            *c -= 1;
            if *c == 0 {
                self.set.remove(&k);
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_by_time_and_capacity() {
        let mut d = DeadNonceList::new(6_000_000_000, 3);
        let keys = DeadNonceList::new(1, 1);
        let k = |n| keys.key(42, n);
        d.add(Time::from_millis(0), k(1));
        d.add(Time::from_millis(1000), k(2));
        assert!(d.contains(k(1)) && d.contains(k(2)) && !d.contains(k(3)));
        assert_ne!(k(1), keys.key(43, 1));
        assert_eq!(k(1), keys.key(42, 1));
        d.expire(Time::from_millis(6000));
        assert!(!d.contains(k(1)) && d.contains(k(2)));
        d.add(Time::from_millis(6001), k(3));
        d.add(Time::from_millis(6002), k(4));
        d.add(Time::from_millis(6003), k(5));
        assert_eq!(d.len(), 3);
        assert!(!d.contains(k(2)) && d.contains(k(5)));
    }

    #[test]
    fn every_list_has_its_own_key() {
        let (a, b) = (DeadNonceList::new(1, 1), DeadNonceList::new(1, 1));
        assert_ne!(a.key(42, 1), b.key(42, 1));
    }

    #[test]
    fn duplicate_keys_are_counted() {
        let mut d = DeadNonceList::new(1_000_000_000, 10);
        d.add(Time::from_millis(0), 7);
        d.add(Time::from_millis(500), 7);
        d.expire(Time::from_millis(1000));
        assert!(d.contains(7), "second insertion still alive");
        d.expire(Time::from_millis(1500));
        assert!(!d.contains(7));
        assert!(d.is_empty());
    }
}
