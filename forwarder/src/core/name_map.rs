//! A map from name prefixes to values with longest-prefix match, the index under the FIB, the
//! strategy choice table and the measurements table.
//!
//! Keys are the prefixes' TLV-VALUE bytes, hashed with a keyed hash (std's SipHash with a
//! random per-process key by default): names come from the network, and the Name's own
//! prefix hashes are an unkeyed function anyone can collide at will, which would turn every
//! lookup into a scan. A lookup probes only the prefix lengths that have at least one entry,
//! from the longest down; equal bytes are equal prefixes (TLVs are self-delimiting), so a
//! collision costs time, never a wrong answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use amicn_tlv::Name;
use bytes::Bytes;

struct Slot<V> {
    depth: u32,
    value: V,
}

/// Name prefix → `V` with exact and longest-prefix lookups. `S` hashes the prefix bytes.
pub struct NameMap<V, S = RandomState> {
    /// Keyed by the prefix's TLV-VALUE, copied so the entry never pins a packet buffer.
    map: HashMap<Bytes, Slot<V>, S>,
    /// Number of entries per name length, so LPM skips lengths with no entry.
    depth_counts: Vec<u32>,
}

impl<V, S: Default> Default for NameMap<V, S> {
    fn default() -> Self {
        NameMap {
            map: HashMap::default(),
            depth_counts: Vec::new(),
        }
    }
}

/// The TLV-VALUE bytes of the first `depth` components of `name`, given where the first
/// `depth + 1` end (`end`); returns where the first `depth - 1` end as well.
fn shorter(name: &Name, depth: usize, end: usize) -> usize {
    match depth.checked_sub(1).and_then(|i| name.component_wire(i)) {
        Some(c) => end.saturating_sub(c.len()),
        None => 0,
    }
}

impl<V> NameMap<V> {
    /// An empty map with a randomly keyed hash.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<V, S: BuildHasher> NameMap<V, S> {
    /// An empty map hashing prefixes with `hasher` (tests inject degenerate ones).
    pub fn with_hasher(hasher: S) -> Self {
        NameMap {
            map: HashMap::with_hasher(hasher),
            depth_counts: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    /// The value stored for exactly `name`.
    pub fn get(&self, name: &Name) -> Option<&V> {
        self.map.get(name.value_wire()).map(|s| &s.value)
    }

    /// The value stored for exactly `name`, mutably.
    pub fn get_mut(&mut self, name: &Name) -> Option<&mut V> {
        self.map.get_mut(name.value_wire()).map(|s| &mut s.value)
    }

    /// The value for `name`, inserting `make()` first if absent.
    pub fn get_or_insert_with(&mut self, name: &Name, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(name.value_wire()) {
            self.bump_depth(name.len(), true);
        }
        let slot = self
            .map
            .entry(Bytes::copy_from_slice(name.value_wire()))
            .or_insert_with(|| Slot {
                depth: u32::try_from(name.len()).unwrap_or(u32::MAX),
                value: make(),
            });
        &mut slot.value
    }

    /// Inserts or replaces; returns the old value.
    pub fn insert(&mut self, name: &Name, value: V) -> Option<V> {
        if let Some(slot) = self.map.get_mut(name.value_wire()) {
            return Some(std::mem::replace(&mut slot.value, value));
        }
        self.get_or_insert_with(name, || value);
        None
    }

    /// Removes the entry for exactly `name`.
    pub fn remove(&mut self, name: &Name) -> Option<V> {
        let removed = self.map.remove(name.value_wire())?;
        self.bump_depth(removed.depth as usize, false);
        Some(removed.value)
    }

    fn bump_depth(&mut self, depth: usize, up: bool) {
        if self.depth_counts.len() <= depth {
            self.depth_counts.resize(depth + 1, 0);
        }
        if let Some(c) = self.depth_counts.get_mut(depth) {
            if up {
                *c += 1;
            } else {
                *c = c.saturating_sub(1);
            }
        }
        while self.depth_counts.last() == Some(&0) {
            self.depth_counts.pop();
        }
    }

    /// Longest-prefix match: the value whose name is the longest prefix of `name`, with the
    /// matched prefix length.
    pub fn lpm(&self, name: &Name) -> Option<(usize, &V)> {
        self.lpm_within(name, name.len())
    }

    /// Longest-prefix match among prefixes of `name` no longer than `max_len` components.
    pub fn lpm_within(&self, name: &Name, max_len: usize) -> Option<(usize, &V)> {
        if self.depth_counts.is_empty() {
            return None;
        }
        let value = name.value_wire();
        let mut depth = name.len();
        let mut end = value.len();
        let top = max_len.min(name.len()).min(self.depth_counts.len() - 1);
        while depth > top {
            end = shorter(name, depth, end);
            depth -= 1;
        }
        loop {
            if self.depth_counts.get(depth).copied().unwrap_or(0) > 0
                && let Some(s) = value.get(..end).and_then(|k| self.map.get(k))
            {
                return Some((depth, &s.value));
            }
            if depth == 0 {
                return None;
            }
            end = shorter(name, depth, end);
            depth -= 1;
        }
    }

    /// All entries as (name TLV-VALUE, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// Mutable access to every value.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map.values_mut().map(|s| &mut s.value)
    }

    /// All entries with their names rebuilt (for datasets; not for the hot path).
    pub fn names(&self) -> impl Iterator<Item = (Name, &V)> {
        self.iter()
            .filter_map(|(k, v)| Name::from_value(k.clone()).ok().map(|n| (n, v)))
    }

    /// Keeps only the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        let mut removed: Vec<usize> = Vec::new();
        self.map.retain(|_, s| {
            let k = keep(&mut s.value);
            if !k {
                removed.push(s.depth as usize);
            }
            k
        });
        for d in removed {
            self.bump_depth(d, false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut m = NameMap::new();
        m.insert(&n("/"), 0);
        m.insert(&n("/a"), 1);
        m.insert(&n("/a/b/c"), 3);
        assert_eq!(m.lpm(&n("/a/b/c/d")).map(|(_, v)| *v), Some(3));
        assert_eq!(m.lpm(&n("/a/b")).map(|(_, v)| *v), Some(1));
        assert_eq!(m.lpm(&n("/x")).map(|(_, v)| *v), Some(0));
        assert_eq!(m.lpm_within(&n("/a/b/c/d"), 2).map(|(_, v)| *v), Some(1));
        assert_eq!(m.remove(&n("/")), Some(0));
        assert!(m.lpm(&n("/x")).is_none());
        assert_eq!(m.len(), 2);
        assert_eq!(m.insert(&n("/a"), 10), Some(1));
        assert_eq!(m.get(&n("/a")), Some(&10));
        m.retain(|v| *v != 3);
        assert!(m.get(&n("/a/b/c")).is_none());
        assert_eq!(m.lpm(&n("/a/b/c/d")).map(|(_, v)| *v), Some(10));
    }

    /// Every key hashes to the same value: the table degenerates to a list but must answer
    /// exactly as with a good hash.
    #[derive(Default, Clone, Copy)]
    struct Collide;

    impl BuildHasher for Collide {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            0x5eed
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn colliding_hashes_never_change_answers() {
        let mut m: NameMap<u32, Collide> = NameMap::with_hasher(Collide);
        let names: Vec<String> = (0..200).map(|i| format!("/c/{}/{}", i % 7, i)).collect();
        for (i, u) in names.iter().enumerate() {
            assert_eq!(m.insert(&n(u), i as u32), None);
        }
        m.insert(&n("/c/3"), 1002);
        m.insert(&n("/"), 2000);
        assert_eq!(m.len(), 202);
        for (i, u) in names.iter().enumerate() {
            assert_eq!(m.get(&n(u)), Some(&(i as u32)), "{u}");
            assert_eq!(
                m.lpm(&n(&format!("{u}/x/y"))).map(|(d, v)| (d, *v)),
                Some((3, i as u32))
            );
        }
        assert_eq!(
            m.lpm(&n("/c/3/none")).map(|(d, v)| (d, *v)),
            Some((2, 1002))
        );
        assert_eq!(
            m.lpm(&n("/c/4/none")).map(|(d, v)| (d, *v)),
            Some((0, 2000))
        );
        assert!(m.get(&n("/c/3/none")).is_none());
        // Removal in the middle of the collision run keeps every other entry reachable.
        for (i, u) in names.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            assert_eq!(m.remove(&n(u)), Some(i as u32));
        }
        m.retain(|v| *v % 3 != 1);
        for (i, u) in names.iter().enumerate() {
            let want = (i % 3 == 2).then_some(i as u32);
            assert_eq!(m.get(&n(u)).copied(), want, "{u}");
            let got = m.lpm(&n(u)).map(|(_, v)| *v);
            let fallback = if u.starts_with("/c/3/") { 1002 } else { 2000 };
            assert_eq!(got, Some(want.unwrap_or(fallback)), "{u}");
        }
        *m.get_or_insert_with(&n("/c/3"), || 0) += 1;
        assert_eq!(m.get(&n("/c/3")), Some(&1003));
    }

    #[test]
    fn the_default_hash_is_keyed_per_map() {
        // Two maps' hashers disagree on the same key: an attacker cannot precompute collisions.
        let a: NameMap<u8> = NameMap::new();
        let b: NameMap<u8> = NameMap::new();
        let key: &[u8] = b"\x08\x01a";
        assert_ne!(a.map.hasher().hash_one(key), b.map.hasher().hash_one(key));
    }

    #[test]
    fn component_boundaries_matter() {
        let mut m = NameMap::new();
        m.insert(&n("/ab"), 1);
        assert!(m.lpm(&n("/a/b")).is_none());
        assert!(m.lpm(&n("/abc")).is_none());
        assert_eq!(m.lpm(&n("/ab/c")).map(|(_, v)| *v), Some(1));
    }
}
