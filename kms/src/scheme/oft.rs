//! One-way function tree (McGrew–Sherman OFT, as eSKAMI uses it) with real blinded keys.
//!
//! A complete binary tree in heap order (node 1 = root, children `2v`, `2v + 1`) with room for
//! `2^H` meters. A node key is `mix(blind(k_left), blind(k_right))` ([`crate::graph::oft`]); a
//! leaf key is the meter's own key, and a vacant leaf holds a random key only the server knows.
//! A meter stores its leaf key and the blinded keys of its path's siblings and computes every key
//! on its path, the root being the group key.
//!
//! When a leaf changes, the server recomputes its path and sends each path node's new blinded key
//! to the sibling subtree, wrapped under the sibling's key: `H` wraps for a leave. A joiner also
//! receives the `H` blinded sibling keys of its path under its leaf key: `2H` for a join, which is
//! the survey's `2h_j` unicast row. The public record of an epoch lists, for each recomputed node,
//! the versions of the two children it was mixed from, so a meter knows which blinded keys to
//! combine. OFT resists a single departed meter and a single joiner (the property tests); it does
//! not resist a departed meter colluding with a later joiner, which this module does not hide.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroize;

use super::{Knowledge, PREFIX, PublicInfo, Rekeying, Scheme, SchemeError, SchemeResult};
use crate::graph::oft::{blind, mix};
use crate::graph::{WrapMode, wrap};
use crate::key::{KEY_LEN, SymmetricKey};

const VACANT: u32 = u32::MAX;

/// Name of node `v`'s key at version `ver`.
pub fn node_name(v: usize, ver: u32) -> String {
    format!("{PREFIX}/ami/KMS/oft/node/{v}/KEK/v={ver}")
}

/// Name of node `v`'s blinded key at version `ver`.
pub fn blinded_name(v: usize, ver: u32) -> String {
    format!("{PREFIX}/ami/KMS/oft/node/{v}/BLINDED/v={ver}")
}

fn setup_name() -> String {
    format!("{PREFIX}/ami/KMS/oft/setup")
}

fn parse_node(name: &str) -> Option<(usize, u32, bool)> {
    let rest = name
        .strip_prefix(PREFIX)?
        .strip_prefix("/ami/KMS/oft/node/")?;
    let (v, rest) = rest.split_once('/')?;
    let (kind, ver) = rest.split_once("/v=")?;
    let blinded = match kind {
        "KEK" => false,
        "BLINDED" => true,
        _ => return None,
    };
    Some((v.parse().ok()?, ver.parse().ok()?, blinded))
}

/// The OFT server.
pub struct OftScheme {
    height: u8,
    keys: Vec<[u8; KEY_LEN]>,
    ver: Vec<u32>,
    /// Members below each node (leaves: 0 or 1).
    occ: Vec<u32>,
    owner: Vec<u32>,
    leaf_of: BTreeMap<u32, usize>,
    /// Vacant leaves, so a join finds the lowest free place without scanning the tree.
    vacant: BTreeSet<usize>,
    epoch: u32,
    rng: StdRng,
}

impl std::fmt::Debug for OftScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OftScheme")
            .field("height", &self.height)
            .field("members", &self.leaf_of.len())
            .finish_non_exhaustive()
    }
}

impl Drop for OftScheme {
    fn drop(&mut self) {
        for k in &mut self.keys {
            k.zeroize();
        }
    }
}

impl OftScheme {
    /// Setup: a tree with room for `capacity` meters (rounded up to a power of two) and meters
    /// `0..n` in its first leaves. The setup's public record tells meters that every node
    /// starts at version 1.
    pub fn new(n: u32, capacity: u64, seed: u64) -> SchemeResult<(Self, Rekeying)> {
        let capacity = capacity.max(u64::from(n)).max(2);
        let height = super::ceil_log2(capacity);
        if height > 26 {
            return Err(SchemeError::BadParameter(format!(
                "OFT capacity {capacity} is above 2^26 leaves"
            )));
        }
        let cap = 1usize << height;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4f4654);
        let mut keys = vec![[0u8; KEY_LEN]; 2 * cap];
        for k in keys.iter_mut().skip(cap) {
            rng.fill_bytes(k);
        }
        let mut occ = vec![0u32; 2 * cap];
        let mut owner = vec![VACANT; cap];
        let mut leaf_of = BTreeMap::new();
        for m in 0..n {
            let i = m as usize;
            owner[i] = m;
            leaf_of.insert(m, i);
            let mut v = cap + i;
            while v >= 1 {
                occ[v] += 1;
                v /= 2;
            }
        }
        let mut t = OftScheme {
            height,
            keys,
            ver: vec![1; 2 * cap],
            occ,
            vacant: (n as usize..cap).collect(),
            owner,
            leaf_of,
            epoch: 1,
            rng,
        };
        for v in (1..cap).rev() {
            t.recompute(v);
        }
        let setup = Rekeying {
            epoch: 1,
            public: vec![PublicInfo {
                name: setup_name(),
                bytes: vec![height],
            }],
            counts: super::OpCounts {
                fresh_keys: cap as u64,
                one_way: 3 * (cap as u64 - 1),
                broadcast: 1,
                ..super::OpCounts::default()
            },
            ..Rekeying::default()
        };
        Ok((t, setup))
    }

    fn cap(&self) -> usize {
        1usize << self.height
    }

    fn recompute(&mut self, v: usize) {
        let (l, r) = (blind(&self.keys[2 * v]), blind(&self.keys[2 * v + 1]));
        self.keys[v] = mix(&l, &r);
    }

    /// Tree height H.
    pub fn height(&self) -> u8 {
        self.height
    }

    /// Puts a new key at leaf `i`, recomputes the path and sends each path node's new blinded
    /// key to its sibling subtree.
    fn rekey_leaf(&mut self, i: usize, out: &mut Rekeying) {
        let cap = self.cap();
        let mut v = cap + i;
        self.ver[v] += 1;
        let mut record = Vec::with_capacity(16 * usize::from(self.height));
        loop {
            let sib = v ^ 1;
            if self.occ[sib] > 0 {
                let b = blind(&self.keys[v]);
                out.counts.one_way += 1;
                let mode = if sib >= cap {
                    WrapMode::Unicast
                } else {
                    WrapMode::Multicast
                };
                let name = format!(
                    "{}/ENCRYPTED-BY{}",
                    blinded_name(v, self.ver[v]),
                    node_name(sib, self.ver[sib])
                );
                out.counts.count_wrap(mode);
                out.wraps
                    .push(wrap::seal(&mut self.rng, &self.keys[sib], name, mode, &b));
            }
            v /= 2;
            self.recompute(v);
            out.counts.one_way += 3;
            self.ver[v] += 1;
            for x in [v as u32, self.ver[v], self.ver[2 * v], self.ver[2 * v + 1]] {
                record.extend_from_slice(&x.to_be_bytes());
            }
            if v == 1 {
                break;
            }
        }
        out.public.push(PublicInfo {
            name: format!("{PREFIX}/ami/KMS/oft/rekey/{}/{i}", self.epoch),
            bytes: record,
        });
        out.counts.broadcast += 1;
    }
}

impl Scheme for OftScheme {
    fn label(&self) -> &'static str {
        "oft"
    }

    fn members(&self) -> Vec<u32> {
        self.leaf_of.keys().copied().collect()
    }

    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>> {
        let i = *self
            .leaf_of
            .get(&meter)
            .ok_or(SchemeError::NotMember { meter })?;
        let mut v = self.cap() + i;
        let mut out = vec![(
            node_name(v, self.ver[v]),
            SymmetricKey::from_bytes(self.keys[v]),
        )];
        while v > 1 {
            let s = v ^ 1;
            out.push((
                blinded_name(s, self.ver[s]),
                SymmetricKey::from_bytes(blind(&self.keys[s])),
            ));
            v /= 2;
        }
        Ok(out)
    }

    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        if meter == VACANT {
            return Err(SchemeError::BadParameter(format!(
                "meter id {meter} is reserved"
            )));
        }
        if self.leaf_of.contains_key(&meter) {
            return Err(SchemeError::AlreadyMember { meter });
        }
        let cap = self.cap();
        let i = self.vacant.pop_first().ok_or(SchemeError::Full {
            scheme: "oft",
            capacity: cap as u64,
        })?;
        self.epoch += 1;
        let mut out = Rekeying {
            epoch: self.epoch,
            ..Rekeying::default()
        };
        let leaf = cap + i;
        self.rng.fill_bytes(&mut self.keys[leaf]);
        out.counts.fresh_keys += 1;
        self.owner[i] = meter;
        self.leaf_of.insert(meter, i);
        let mut v = leaf;
        while v >= 1 {
            self.occ[v] += 1;
            v /= 2;
        }
        // The joiner's own leaf is not a sibling of anything it needs; skip it when sending.
        self.rekey_leaf(i, &mut out);
        out.provisioned.push((
            meter,
            node_name(leaf, self.ver[leaf]),
            SymmetricKey::from_bytes(self.keys[leaf]),
        ));
        // The joiner's sibling blinded keys, under its leaf key.
        let mut v = leaf;
        while v > 1 {
            let s = v ^ 1;
            let b = blind(&self.keys[s]);
            out.counts.one_way += 1;
            let name = format!(
                "{}/ENCRYPTED-BY{}",
                blinded_name(s, self.ver[s]),
                node_name(leaf, self.ver[leaf])
            );
            out.counts.count_wrap(WrapMode::Unicast);
            out.wraps.push(wrap::seal(
                &mut self.rng,
                &self.keys[leaf],
                name,
                WrapMode::Unicast,
                &b,
            ));
            v /= 2;
        }
        Ok(out)
    }

    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        let i = self
            .leaf_of
            .remove(&meter)
            .ok_or(SchemeError::NotMember { meter })?;
        let cap = self.cap();
        self.owner[i] = VACANT;
        self.vacant.insert(i);
        let mut v = cap + i;
        while v >= 1 {
            self.occ[v] -= 1;
            v /= 2;
        }
        self.epoch += 1;
        let mut out = Rekeying {
            epoch: self.epoch,
            ..Rekeying::default()
        };
        // The vacated leaf gets a key only the server knows.
        self.rng.fill_bytes(&mut self.keys[cap + i]);
        out.counts.fresh_keys += 1;
        self.rekey_leaf(i, &mut out);
        Ok(out)
    }

    fn refresh(&mut self) -> SchemeResult<Rekeying> {
        // A vacant leaf is server-only: re-randomising it changes the root for everyone.
        let Some(&i) = self.vacant.first() else {
            return Err(SchemeError::Unsupported {
                scheme: "oft",
                op: "refresh of a full tree",
            });
        };
        self.epoch += 1;
        let mut out = Rekeying {
            epoch: self.epoch,
            ..Rekeying::default()
        };
        let cap = self.cap();
        self.rng.fill_bytes(&mut self.keys[cap + i]);
        out.counts.fresh_keys += 1;
        self.rekey_leaf(i, &mut out);
        Ok(out)
    }

    fn group_key(&self) -> (String, SymmetricKey) {
        (
            node_name(1, self.ver[1]),
            SymmetricKey::from_bytes(self.keys[1]),
        )
    }

    fn member_storage(&self, meter: u32) -> Option<u64> {
        self.leaf_of
            .contains_key(&meter)
            .then(|| u64::from(self.height) + 1)
    }

    fn server_storage(&self) -> u64 {
        2 * self.cap() as u64 - 1
    }

    fn derive(&self, info: &PublicInfo, known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])> {
        let mut out = Vec::new();
        // Blinding is public: every known node key gives its blinded key.
        for (name, k) in known.iter() {
            if let Some((v, ver, false)) = parse_node(name) {
                let b = blinded_name(v, ver);
                if known.get(&b).is_none() {
                    out.push((b, blind(k)));
                }
            }
        }
        if info.name == setup_name() {
            // Every node at version 1: pair up known version-1 blinded siblings.
            for (name, b) in known.iter() {
                if let Some((v, 1, true)) = parse_node(name)
                    && v >= 2
                    && v % 2 == 0
                    && let Some(r) = known.get(&blinded_name(v + 1, 1))
                {
                    let p = node_name(v / 2, 1);
                    if known.get(&p).is_none() {
                        out.push((p, mix(b, r)));
                    }
                }
            }
            return out;
        }
        if !info
            .name
            .starts_with(&format!("{PREFIX}/ami/KMS/oft/rekey/"))
        {
            return out;
        }
        for q in info.bytes.chunks_exact(16) {
            let word = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&q[4 * i..4 * i + 4]);
                u32::from_be_bytes(b)
            };
            let (v, ver, vl, vr) = (word(0) as usize, word(1), word(2), word(3));
            let (Some(l), Some(r)) = (
                known.get(&blinded_name(2 * v, vl)),
                known.get(&blinded_name(2 * v + 1, vr)),
            ) else {
                continue;
            };
            out.push((node_name(v, ver), mix(l, r)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scheme::adversary::{Published, closure};

    #[test]
    fn setup_members_derive_the_root() {
        let (s, setup) = OftScheme::new(3, 8, 1).unwrap();
        let mut p = Published::default();
        p.add(&setup.wraps, &setup.public);
        let mut k = Knowledge::default();
        for (n, v) in s.enrolment_keys(1).unwrap() {
            k.insert(&n, v.as_bytes());
        }
        closure(&s, &mut k, &p);
        let mut names: Vec<&str> = k.iter().map(|(n, _)| n).collect();
        names.sort_unstable();
        assert_eq!(
            k.get(&s.group_key().0),
            Some(s.group_key().1.as_bytes()),
            "{names:?}"
        );
    }
}
