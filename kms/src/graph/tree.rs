//! One LKH key tree as compact per-level arrays (no per-node allocation).
//!
//! Level 0 holds the leaves (meters' user keys), level `height` holds the single root (the
//! subgroup key). Node `(h, p)` has children `(h − 1, d·p … d·p + d − 1)` and parent
//! `(h + 1, p / d)`. Ids are stable when the tree grows a new level on top, so members never
//! have to learn a renumbering. Per node the tree stores the 32-byte key, its epoch (0 = no key)
//! and an occupancy word: for a leaf the owning meter id (or [`VACANT`]), for an interior node the
//! number of members below it.

use zeroize::Zeroize;

use crate::key::KEY_LEN;

/// Occupancy value of an unused leaf.
pub const VACANT: u32 = u32::MAX;

/// One tree node: key, epoch and occupancy side by side, so a path walk or a child scan touches
/// one cache line per node instead of three separate arrays.
#[derive(Clone, Copy)]
pub(crate) struct Node {
    pub(crate) key: [u8; KEY_LEN],
    pub(crate) epoch: u32,
    pub(crate) occ: u32,
}

/// One level of a tree.
pub(crate) struct Level {
    pub(crate) nodes: Box<[Node]>,
}

impl Level {
    pub(crate) fn new(len: usize, leaf: bool) -> Self {
        let blank = Node {
            key: [0u8; KEY_LEN],
            epoch: 0,
            occ: if leaf { VACANT } else { 0 },
        };
        Level {
            nodes: vec![blank; len].into_boxed_slice(),
        }
    }

    /// Grows the level to `len` entries; the old allocation is wiped before it is released.
    fn extend(&mut self, len: usize, leaf: bool) {
        let mut next = Level::new(len, leaf);
        let n = self.nodes.len();
        next.nodes[..n].copy_from_slice(&self.nodes);
        *self = next;
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut() {
            n.key.zeroize();
        }
    }
}

/// An LKH tree of degree `d`.
pub struct LkhTree {
    pub(crate) degree: u32,
    pub(crate) levels: Vec<Level>,
    /// Vacated leaf positions, reused before untouched ones so the tree stays compact.
    pub(crate) free: Vec<u32>,
    /// First leaf position never used yet.
    pub(crate) next_fresh: u32,
    /// Number of nodes (leaves included) that currently hold a member below them.
    pub(crate) occupied_nodes: u64,
}

impl std::fmt::Debug for LkhTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkhTree")
            .field("degree", &self.degree)
            .field("height", &self.height())
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

impl LkhTree {
    /// An empty tree of degree `d` sized for `capacity` members (height at least 1).
    pub fn with_capacity(degree: u32, capacity: u64) -> Self {
        let d = u64::from(degree.max(2));
        let mut height = 1u8;
        let mut leaves = d;
        while leaves < capacity && height < 31 {
            height += 1;
            leaves = leaves.saturating_mul(d);
        }
        let mut levels = Vec::with_capacity(usize::from(height) + 1);
        let mut len = leaves as usize;
        for h in 0..=height {
            levels.push(Level::new(len, h == 0));
            len = len.div_ceil(d as usize);
        }
        LkhTree {
            degree: d as u32,
            levels,
            free: Vec::new(),
            next_fresh: 0,
            occupied_nodes: 0,
        }
    }

    /// Height H (edges from a leaf to the root).
    pub fn height(&self) -> u8 {
        (self.levels.len() - 1) as u8
    }

    /// Tree degree d.
    pub fn degree(&self) -> u32 {
        self.degree
    }

    /// Members currently in the tree.
    pub fn members(&self) -> u32 {
        self.levels.last().map_or(0, |l| l.nodes[0].occ)
    }

    /// Leaf capacity d^H.
    pub fn capacity(&self) -> usize {
        self.levels[0].len()
    }

    /// Whether node `(h, p)` has a member below it (for a leaf: is owned).
    pub fn occupied(&self, h: u8, p: u32) -> bool {
        let l = &self.levels[usize::from(h)];
        match l.nodes.get(p as usize) {
            Some(n) if h == 0 => n.occ != VACANT,
            Some(n) => n.occ > 0,
            None => false,
        }
    }

    /// Owner of leaf `p`, if any.
    pub fn owner(&self, p: u32) -> Option<u32> {
        self.levels[0]
            .nodes
            .get(p as usize)
            .map(|n| n.occ)
            .filter(|&o| o != VACANT)
    }

    /// Key and epoch of node `(h, p)`.
    pub fn key(&self, h: u8, p: u32) -> (&[u8; KEY_LEN], u32) {
        let l = &self.levels[usize::from(h)];
        (&l.nodes[p as usize].key, l.nodes[p as usize].epoch)
    }

    /// Replaces the key of node `(h, p)`.
    pub fn set_key(&mut self, h: u8, p: u32, key: &[u8; KEY_LEN], epoch: u32) {
        let l = &mut self.levels[usize::from(h)];
        let n = &mut l.nodes[p as usize];
        n.key = *key;
        n.epoch = epoch;
    }

    /// Wipes node `(h, p)`'s key and marks it keyless.
    pub fn clear_key(&mut self, h: u8, p: u32) {
        let l = &mut self.levels[usize::from(h)];
        let n = &mut l.nodes[p as usize];
        n.key.zeroize();
        n.epoch = 0;
    }

    /// Adds one level on top: the old root becomes child 0 of a new (keyless) root.
    fn grow(&mut self) -> bool {
        if self.levels.len() >= 32 {
            return false;
        }
        let d = self.degree as usize;
        let mut len = self.levels[0].len() * d;
        for (h, level) in self.levels.iter_mut().enumerate() {
            level.extend(len, h == 0);
            len = len.div_ceil(d);
        }
        let mut top = Level::new(1, false);
        top.nodes[0].occ = self.members();
        if top.nodes[0].occ > 0 {
            self.occupied_nodes += 1;
        }
        self.levels.push(top);
        true
    }

    /// Places `owner` in a free leaf (growing the tree if it is full) and returns the leaf.
    pub fn place(&mut self, owner: u32) -> Option<u32> {
        let pos = match self.free.pop() {
            Some(p) => p,
            None => {
                if self.next_fresh as usize >= self.capacity() && !self.grow() {
                    return None;
                }
                let p = self.next_fresh;
                self.next_fresh += 1;
                p
            }
        };
        self.levels[0].nodes[pos as usize].occ = owner;
        self.occupied_nodes += 1;
        let d = self.degree;
        let mut p = pos / d;
        for level in self.levels.iter_mut().skip(1) {
            let o = &mut level.nodes[p as usize].occ;
            if *o == 0 {
                self.occupied_nodes += 1;
            }
            *o += 1;
            p /= d;
        }
        Some(pos)
    }

    /// Vacates leaf `pos`, wiping its key, and returns the previous owner.
    pub fn vacate(&mut self, pos: u32) -> Option<u32> {
        let owner = self.owner(pos)?;
        self.levels[0].nodes[pos as usize].occ = VACANT;
        self.clear_key(0, pos);
        self.occupied_nodes -= 1;
        let d = self.degree;
        let mut p = pos / d;
        for level in self.levels.iter_mut().skip(1) {
            let o = &mut level.nodes[p as usize].occ;
            *o -= 1;
            if *o == 0 {
                self.occupied_nodes -= 1;
            }
            p /= d;
        }
        self.free.push(pos);
        Some(owner)
    }

    /// Bytes held by the arrays of this tree (keys, epochs, occupancy, free list).
    pub fn heap_bytes(&self) -> usize {
        let nodes: usize = self.levels.iter().map(Level::len).sum();
        nodes * std::mem::size_of::<Node>() + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn place_vacate_and_grow_keep_counts() {
        let mut t = LkhTree::with_capacity(2, 4);
        assert_eq!(t.height(), 2);
        let leaves: Vec<u32> = (0..4).map(|m| t.place(m).unwrap()).collect();
        assert_eq!(leaves, vec![0, 1, 2, 3]);
        assert_eq!(t.occupied_nodes, 7);
        t.set_key(2, 0, &[7; 32], 3);
        // Full: the next member grows a level; old root keeps its id (2, 0).
        assert_eq!(t.place(4), Some(4));
        assert_eq!(t.height(), 3);
        assert_eq!(t.key(2, 0), (&[7; 32], 3));
        assert_eq!(t.members(), 5);
        // New root, plus leaf 4 and its two new ancestors.
        assert_eq!(t.occupied_nodes, 7 + 1 + 3);
        assert_eq!(t.vacate(1), Some(1));
        assert!(!t.occupied(0, 1));
        assert_eq!(t.place(9), Some(1));
        assert_eq!(t.owner(1), Some(9));
        t.vacate(4);
        assert_eq!(t.occupied_nodes, 8);
        assert!(!t.occupied(2, 1));
        assert!(t.occupied(3, 0));
    }

    #[test]
    fn degree_four_layout() {
        let t = LkhTree::with_capacity(4, 1000);
        assert_eq!(t.height(), 5);
        assert_eq!(t.capacity(), 1024);
        assert_eq!(t.levels[1].len(), 256);
        assert_eq!(t.levels[5].len(), 1);
    }
}
