//! A one-way function tree (McGrew–Sherman OFT), kept for comparing rekey counts with LKH.
//!
//! Binary tree in heap order (node 1 = root, children 2i and 2i + 1). Every node key is
//! `k_v = SHA-256(label ‖ g(k_left) ‖ g(k_right))` with the blinding `g(k) = SHA-256(label' ‖ k)`;
//! a member holds its leaf key and the blinded keys of the siblings of its path, and recomputes
//! the root itself. After a change at one leaf, the manager publishes each new blinded key on the
//! path encrypted under the key of the sibling subtree that needs it: H wraps for a leave or join,
//! versus `d·H − 1` for LKH. OFT has a known collusion weakness (a departed member and a later
//! joiner together), which is why the graph itself uses LKH.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::key::KEY_LEN;

const MIX: &[u8] = b"amicn-kms oft mix v1";
const BLIND: &[u8] = b"amicn-kms oft blind v1";

/// Blinding function g.
pub fn blind(k: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(BLIND);
    h.update(k);
    h.finalize().into()
}

/// Mixing function f over two blinded children.
pub fn mix(left: &[u8; KEY_LEN], right: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(MIX);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Counts of one OFT membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OftCost {
    /// Blinded keys sent, each encrypted once.
    pub wraps: u64,
    /// Bytes of those wraps (payload only).
    pub bytes: u64,
}

/// A complete binary OFT with `2^height` leaves.
pub struct OftTree {
    height: u8,
    keys: Vec<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for OftTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OftTree")
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl OftTree {
    /// A full tree with random leaf keys.
    pub fn new<R: Rng + ?Sized>(rng: &mut R, height: u8) -> Self {
        let n = 1usize << height;
        let mut keys = vec![[0u8; KEY_LEN]; 2 * n];
        for k in keys.iter_mut().skip(n) {
            rng.fill_bytes(k);
        }
        let mut t = OftTree { height, keys };
        for v in (1..n).rev() {
            t.recompute(v);
        }
        t
    }

    fn recompute(&mut self, v: usize) {
        let (l, r) = (blind(&self.keys[2 * v]), blind(&self.keys[2 * v + 1]));
        self.keys[v] = mix(&l, &r);
    }

    /// The group key.
    pub fn root(&self) -> &[u8; KEY_LEN] {
        &self.keys[1]
    }

    /// What leaf `i`'s owner stores: its leaf key and the blinded sibling keys, bottom-up.
    pub fn member_view(&self, i: usize) -> ([u8; KEY_LEN], Vec<[u8; KEY_LEN]>) {
        let mut v = (1usize << self.height) + i;
        let leaf = self.keys[v];
        let mut sibs = Vec::with_capacity(usize::from(self.height));
        while v > 1 {
            sibs.push(blind(&self.keys[v ^ 1]));
            v /= 2;
        }
        (leaf, sibs)
    }

    /// Recomputes the root from a member view.
    pub fn root_from_view(
        view: &([u8; KEY_LEN], Vec<[u8; KEY_LEN]>),
        i: usize,
        height: u8,
    ) -> [u8; KEY_LEN] {
        let mut v = (1usize << height) + i;
        let mut k = view.0;
        for s in &view.1 {
            let b = blind(&k);
            k = if v.is_multiple_of(2) {
                mix(&b, s)
            } else {
                mix(s, &b)
            };
            v /= 2;
        }
        k
    }

    /// Replaces leaf `i` with fresh randomness (the new member's key on a join, the departed
    /// leaf's sibling on a leave) and returns the cost: one blinded key per path level, each
    /// encrypted under the sibling subtree's key.
    pub fn rekey_leaf<R: Rng + ?Sized>(&mut self, rng: &mut R, i: usize) -> OftCost {
        let mut v = (1usize << self.height) + i;
        rng.fill_bytes(&mut self.keys[v]);
        let mut wraps = 0;
        while v > 1 {
            wraps += 1;
            v /= 2;
            self.recompute(v);
        }
        OftCost {
            wraps,
            bytes: wraps * super::WRAP_LEN as u64,
        }
    }

    /// A leave of leaf `i`: its sibling leaf is refreshed (the sibling takes over the parent
    /// position in the original scheme; the count is the same).
    pub fn leave<R: Rng + ?Sized>(&mut self, rng: &mut R, i: usize) -> OftCost {
        self.rekey_leaf(rng, i ^ 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_recompute_the_root_and_leave_costs_h() {
        let mut rng = rand::rng();
        let mut t = OftTree::new(&mut rng, 6);
        for i in [0usize, 17, 63] {
            assert_eq!(&OftTree::root_from_view(&t.member_view(i), i, 6), t.root());
        }
        let old = *t.root();
        let stale = t.member_view(5);
        let c = t.leave(&mut rng, 5);
        assert_eq!(c.wraps, 6);
        assert_ne!(&old, t.root());
        // Member 40 gets the new root after updating with the fresh view.
        assert_eq!(
            &OftTree::root_from_view(&t.member_view(40), 40, 6),
            t.root()
        );
        // The departed leaf only has its old blinded sibling, so it cannot reach the new root.
        assert_ne!(&OftTree::root_from_view(&stale, 5, 6), t.root());
    }
}
