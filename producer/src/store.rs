//! Where answered Data is kept so repeated Interests are served without the application.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use amicn_tlv::{Component, Data, Interest, Name};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Storage of signed Data, looked up by Interest. A durable repository implements this too.
pub trait Store: Send + Sync {
    /// Keeps `data` (decoded, with its wire bytes).
    fn insert(&self, data: Data);
    /// The wire encoding of stored Data satisfying `interest` (exact name, or any Data under
    /// the name when CanBePrefix is set — the canonically greatest, i.e. the latest version).
    fn find(&self, interest: &Interest) -> Option<Bytes>;
    /// Number of stored packets.
    fn len(&self) -> usize;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory [`Store`], bounded by packet count (oldest-inserted evicted first); packets
/// added with [`MemoryStore::pin`] (a producer's own certificate, say) are never evicted and
/// do not count against the bound.
#[derive(Debug)]
pub struct MemoryStore {
    inner: RwLock<MemInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct MemInner {
    exact: HashMap<Name, (u64, Bytes)>,
    ordered: BTreeSet<Name>,
    order: std::collections::VecDeque<(u64, Name)>,
    next: u64,
    pinned: std::collections::HashSet<Name>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(1 << 20)
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` packets.
    pub fn with_capacity(capacity: usize) -> MemoryStore {
        MemoryStore {
            inner: RwLock::new(MemInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Keeps `data` until it is replaced by a packet of the same name, however many others
    /// are inserted after it.
    pub fn pin(&self, data: Data) {
        let wire = data.wire().cloned().unwrap_or_else(|| data.encode());
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let seq = g.next;
        g.next += 1;
        g.ordered.insert(data.name.clone());
        g.pinned.insert(data.name.clone());
        g.exact.insert(data.name, (seq, wire));
    }
}

impl Store for MemoryStore {
    fn insert(&self, data: Data) {
        let wire = data.wire().cloned().unwrap_or_else(|| data.encode());
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let seq = g.next;
        g.next += 1;
        g.ordered.insert(data.name.clone());
        g.pinned.remove(&data.name);
        g.order.push_back((seq, data.name.clone()));
        g.exact.insert(data.name, (seq, wire));
        while g.exact.len() - g.pinned.len() > self.capacity {
            let Some((s, n)) = g.order.pop_front() else {
                break;
            };
            // Skip stale queue entries of names that were replaced later.
            if g.exact.get(&n).is_some_and(|(cur, _)| *cur == s) {
                g.exact.remove(&n);
                g.ordered.remove(&n);
            }
        }
    }

    fn find(&self, interest: &Interest) -> Option<Bytes> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, w)) = g.exact.get(&interest.name) {
            return Some(w.clone());
        }
        // A name ending in an implicit digest asks for exactly one packet: the stored Data with
        // the other components, if its SHA-256 is that digest.
        if let Some(last) = interest.name.last().filter(Component::is_implicit_digest) {
            let base = interest.name.prefix(interest.name.len() - 1);
            let (_, w) = g.exact.get(&base)?;
            let d: [u8; 32] = Sha256::digest(w).into();
            return (d[..] == *last.value()).then(|| w.clone());
        }
        if !interest.can_be_prefix {
            return None;
        }
        let latest = g
            .ordered
            .range(interest.name.clone()..)
            .take_while(|n| interest.name.is_prefix_of(n))
            .last()?;
        g.exact.get(latest).map(|(_, w)| w.clone())
    }

    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .exact
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data(uri: &str) -> Data {
        let mut d = Data::new(uri.parse().unwrap(), Bytes::from(uri.to_owned()));
        Data::decode(d.sign_digest_sha256()).unwrap()
    }

    #[test]
    fn exact_and_prefix_lookup() {
        let s = MemoryStore::default();
        s.insert(data("/a/v=1/seg=0"));
        s.insert(data("/a/v=2/seg=0"));
        s.insert(data("/b"));
        let mut i = Interest::new("/a/v=1/seg=0".parse().unwrap());
        assert!(s.find(&i).is_some());
        i.name = "/a".parse().unwrap();
        assert!(s.find(&i).is_none());
        i.can_be_prefix = true;
        let got = Data::decode(s.find(&i).unwrap()).unwrap();
        assert_eq!(got.name.to_string(), "/a/v=2/seg=0");
    }

    #[test]
    fn pinned_packets_outlive_any_number_of_inserts() {
        let s = MemoryStore::with_capacity(2);
        s.pin(data("/p/KEY/k"));
        for i in 0..10 {
            s.insert(data(&format!("/p/r/{i}")));
        }
        let i = Interest::new(Name::from_uri("/p/KEY/k").unwrap());
        assert!(s.find(&i).is_some());
        // The bound applies to the others: the two newest stay, the rest went.
        assert_eq!(s.len(), 3);
        assert!(
            s.find(&Interest::new(Name::from_uri("/p/r/9").unwrap()))
                .is_some()
        );
        assert!(
            s.find(&Interest::new(Name::from_uri("/p/r/7").unwrap()))
                .is_none()
        );
        // Re-inserted normally, a pinned name becomes evictable like any other.
        s.insert(data("/p/KEY/k"));
        s.insert(data("/p/r/10"));
        s.insert(data("/p/r/11"));
        assert!(s.find(&i).is_none());
    }

    #[test]
    fn capacity_evicts_oldest() {
        let s = MemoryStore::with_capacity(2);
        s.insert(data("/x/1"));
        s.insert(data("/x/2"));
        s.insert(data("/x/3"));
        assert_eq!(s.len(), 2);
        assert!(s.find(&Interest::new("/x/1".parse().unwrap())).is_none());
        assert!(s.find(&Interest::new("/x/3".parse().unwrap())).is_some());
    }

    #[test]
    fn implicit_digest_lookup_matches_only_the_stored_packet() {
        let s = MemoryStore::default();
        let d = data("/w/KEK/v=3");
        s.insert(d.clone());
        let name = d
            .name
            .append(Component::implicit_sha256_digest(d.implicit_digest()));
        assert!(s.find(&Interest::new(name)).is_some());
        let wrong = d.name.append(Component::implicit_sha256_digest([0; 32]));
        assert!(s.find(&Interest::new(wrong)).is_none());
    }
}
