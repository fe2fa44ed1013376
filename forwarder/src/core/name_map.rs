//! A map from name prefixes to values with longest-prefix match, the index under the FIB, the
//! strategy choice table and the measurements table.
//!
//! Keys are the per-prefix hashes the Name computed once at decode. A lookup probes only the
//! prefix lengths that have at least one entry, from the longest down, and confirms a hit by
//! comparing names, so a hash collision can never misroute.

use std::collections::HashMap;

use amicn_tlv::Name;
use bytes::Bytes;

use super::IdHasher;

struct Slot<V> {
    /// The prefix's TLV-VALUE, copied so the entry never pins a packet buffer.
    key: Bytes,
    depth: u32,
    value: V,
}

/// Name prefix → `V` with exact and longest-prefix lookups.
pub struct NameMap<V> {
    map: HashMap<u64, Slot<V>, IdHasher>,
    /// Entries whose prefix hash collided with a different name already in `map` (rare).
    spill: Vec<(u64, Slot<V>)>,
    /// Number of entries per name length, so LPM skips lengths with no entry.
    depth_counts: Vec<u32>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            map: HashMap::default(),
            spill: Vec::new(),
            depth_counts: Vec::new(),
        }
    }
}

fn same(slot_key: &[u8], slot_depth: u32, name: &Name) -> bool {
    slot_depth as usize == name.len() && slot_key == name.value_wire()
}

/// Whether a stored prefix of `depth` components is a prefix of `name`: a byte prefix of a
/// sequence of whole component TLVs is a component prefix, since TLVs are self-delimiting.
fn prefix_of(slot_key: &[u8], slot_depth: u32, depth: usize, name: &Name) -> bool {
    slot_depth as usize == depth && name.value_wire().starts_with(slot_key)
}

impl<V> NameMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len() + self.spill.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    fn full_hash(name: &Name) -> u64 {
        name.prefix_hash(name.len())
    }

    /// The value stored for exactly `name`.
    pub fn get(&self, name: &Name) -> Option<&V> {
        let h = Self::full_hash(name);
        match self.map.get(&h) {
            Some(s) if same(&s.key, s.depth, name) => Some(&s.value),
            Some(_) => self
                .spill
                .iter()
                .find(|(sh, s)| *sh == h && same(&s.key, s.depth, name))
                .map(|(_, s)| &s.value),
            None => None,
        }
    }

    /// The value stored for exactly `name`, mutably.
    pub fn get_mut(&mut self, name: &Name) -> Option<&mut V> {
        let h = Self::full_hash(name);
        match self.map.get_mut(&h) {
            Some(s) if same(&s.key, s.depth, name) => Some(&mut s.value),
            Some(_) => self
                .spill
                .iter_mut()
                .find(|(sh, s)| *sh == h && same(&s.key, s.depth, name))
                .map(|(_, s)| &mut s.value),
            None => None,
        }
    }

    fn slot(name: &Name, value: V) -> Slot<V> {
        Slot {
            key: Bytes::copy_from_slice(name.value_wire()),
            depth: u32::try_from(name.len()).unwrap_or(u32::MAX),
            value,
        }
    }

    /// The value for `name`, inserting `make()` first if absent.
    pub fn get_or_insert_with(&mut self, name: &Name, make: impl FnOnce() -> V) -> &mut V {
        let h = Self::full_hash(name);
        let in_map = match self.map.get(&h) {
            Some(s) => same(&s.key, s.depth, name),
            None => {
                self.bump_depth(name.len(), true);
                self.map.insert(h, Self::slot(name, make()));
                return match self.map.get_mut(&h) {
                    Some(s) => &mut s.value,
                    None => unreachable!("just inserted"),
                };
            }
        };
        if in_map {
            return match self.map.get_mut(&h) {
                Some(s) => &mut s.value,
                None => unreachable!("entry checked above"),
            };
        }
        let pos = match self
            .spill
            .iter()
            .position(|(sh, s)| *sh == h && same(&s.key, s.depth, name))
        {
            Some(p) => p,
            None => {
                self.bump_depth(name.len(), true);
                self.spill.push((h, Self::slot(name, make())));
                self.spill.len() - 1
            }
        };
        &mut self.spill[pos].1.value
    }

    /// Inserts or replaces; returns the old value.
    pub fn insert(&mut self, name: &Name, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.get_or_insert_with(name, || value.take().unwrap_or_else(|| unreachable!()));
        value.map(|v| std::mem::replace(slot, v))
    }

    /// Removes the entry for exactly `name`.
    pub fn remove(&mut self, name: &Name) -> Option<V> {
        let h = Self::full_hash(name);
        let removed = match self.map.get(&h) {
            Some(s) if same(&s.key, s.depth, name) => {
                let s = self.map.remove(&h)?;
                // Promote a spilled entry with the same hash so lookups keep finding it.
                if let Some(p) = self.spill.iter().position(|(sh, _)| *sh == h) {
                    let (_, s2) = self.spill.swap_remove(p);
                    self.map.insert(h, s2);
                }
                Some(s.value)
            }
            Some(_) => {
                let p = self
                    .spill
                    .iter()
                    .position(|(sh, s)| *sh == h && same(&s.key, s.depth, name))?;
                Some(self.spill.swap_remove(p).1.value)
            }
            None => None,
        };
        if removed.is_some() {
            self.bump_depth(name.len(), false);
        }
        removed
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
        let top = max_len.min(name.len()).min(self.depth_counts.len() - 1);
        for depth in (0..=top).rev() {
            if self.depth_counts.get(depth).copied().unwrap_or(0) == 0 {
                continue;
            }
            let h = name.prefix_hash(depth);
            if let Some(s) = self.map.get(&h) {
                if prefix_of(&s.key, s.depth, depth, name) {
                    return Some((depth, &s.value));
                }
                if let Some((_, s2)) = self
                    .spill
                    .iter()
                    .find(|(sh, s2)| *sh == h && prefix_of(&s2.key, s2.depth, depth, name))
                {
                    return Some((depth, &s2.value));
                }
            }
        }
        None
    }

    /// All entries as (name TLV-VALUE, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.map
            .values()
            .map(|s| (&s.key, &s.value))
            .chain(self.spill.iter().map(|(_, s)| (&s.key, &s.value)))
    }

    /// Mutable access to every value.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map
            .values_mut()
            .map(|s| &mut s.value)
            .chain(self.spill.iter_mut().map(|(_, s)| &mut s.value))
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
        self.spill.retain_mut(|(_, s)| {
            let k = keep(&mut s.value);
            if !k {
                removed.push(s.depth as usize);
            }
            k
        });
        for d in removed {
            self.bump_depth(d, false);
        }
        // A spilled entry whose map slot was freed must move into the map to stay reachable.
        let mut i = 0;
        while i < self.spill.len() {
            let h = self.spill[i].0;
            if self.map.contains_key(&h) {
                i += 1;
            } else {
                let (_, s) = self.spill.swap_remove(i);
                self.map.insert(h, s);
            }
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

    #[test]
    fn component_boundaries_matter() {
        let mut m = NameMap::new();
        m.insert(&n("/ab"), 1);
        assert!(m.lpm(&n("/a/b")).is_none());
        assert!(m.lpm(&n("/abc")).is_none());
        assert_eq!(m.lpm(&n("/ab/c")).map(|(_, v)| *v), Some(1));
    }
}
