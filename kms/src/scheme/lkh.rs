//! Multi-group LKH (SAMI / MK-AMI / VerSAMI): an adapter over [`crate::graph::KeyGraph`].
//!
//! Every joining meter subscribes to the same DR projects (given at setup); the group key of the
//! [`Scheme`] interface is the broadcast key. With batching on, [`Scheme::batch`] stages every
//! change and commits one epoch (Li–Yang–Gouda–Lam batch rekeying); with batching off it commits
//! one epoch per change. The public record of each epoch is the graph's manifest, whose ratchet
//! entries are the only public derivation (LKH+: `k' = HKDF(k, name)`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Knowledge, OpCounts, PREFIX, PublicInfo, Rekeying, Scheme, SchemeError, SchemeResult};
use crate::graph::manifest::{Change, ChangeKind};
use crate::graph::names::{self, KeyRef};
use crate::graph::{GraphConfig, KeyGraph, Manifest, Rekey, wrap};
use crate::key::{KEY_LEN, SymmetricKey};

/// Multi-group LKH over the key graph.
pub struct LkhScheme {
    g: KeyGraph,
    projects: Vec<String>,
    rng: StdRng,
    batching: bool,
}

impl std::fmt::Debug for LkhScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkhScheme")
            .field("graph", &self.g)
            .field("batching", &self.batching)
            .finish_non_exhaustive()
    }
}

fn null_signer(_: &[u8]) -> Vec<u8> {
    // The manifest's Data signature is counted by [`super::wire`]; the graph's own signature
    // slot stays empty here so it is not counted twice.
    Vec::new()
}

impl LkhScheme {
    /// Setup: meters `0..n` enrolled in `projects` with a tree of degree `degree`.
    pub fn new(
        n: u32,
        degree: u32,
        projects: &[&str],
        ratchet_joins: bool,
        batching: bool,
        seed: u64,
    ) -> SchemeResult<Self> {
        Self::new_keyed(n, degree, projects, ratchet_joins, batching, seed, None)
    }

    /// [`LkhScheme::new`] with the leaf key of each meter enrolled at setup given by `leaf`
    /// (drawn at random when `None`).
    pub fn new_keyed(
        n: u32,
        degree: u32,
        projects: &[&str],
        ratchet_joins: bool,
        batching: bool,
        seed: u64,
        leaf: Option<&mut dyn FnMut(u32) -> SymmetricKey>,
    ) -> SchemeResult<Self> {
        let cfg = GraphConfig {
            prefix: PREFIX.into(),
            degree,
            ratchet_joins,
        };
        let mut g = KeyGraph::with_seed(cfg, seed)?;
        for p in projects {
            g.add_project(p)?;
        }
        let meters: Vec<u32> = (0..n).collect();
        match leaf {
            _ if n == 0 => {}
            Some(leaf) => g.bulk_enroll_keyed(&meters, projects, leaf)?,
            None => g.bulk_enroll(&meters, projects)?,
        }
        Ok(LkhScheme {
            g,
            projects: projects.iter().map(|p| (*p).to_string()).collect(),
            rng: StdRng::seed_from_u64(seed ^ 0x4c4b48),
            batching,
        })
    }

    /// The underlying key graph.
    pub fn graph(&self) -> &KeyGraph {
        &self.g
    }

    fn user_key(&mut self) -> SymmetricKey {
        let mut k = [0u8; KEY_LEN];
        self.rng.fill_bytes(&mut k);
        SymmetricKey::from_bytes(k)
    }

    /// Adds `meter` with a leaf key the caller established (an identity-based agreement).
    pub fn join_keyed(&mut self, meter: u32, leaf: SymmetricKey) -> SchemeResult<Rekeying> {
        let kept = leaf.duplicate();
        let projects: Vec<&str> = self.projects.iter().map(String::as_str).collect();
        let r = self.g.join(meter, &projects, leaf, &null_signer)?;
        Ok(self.convert(r, vec![(meter, kept)]))
    }

    /// [`Scheme::batch`] with the joiners' leaf keys given.
    pub fn batch_keyed(
        &mut self,
        joins: Vec<(u32, SymmetricKey)>,
        leaves: &[u32],
    ) -> SchemeResult<Rekeying> {
        if !self.batching {
            let mut out = Rekeying::default();
            for &m in leaves {
                out.absorb(self.leave(m)?);
            }
            for (m, k) in joins {
                out.absorb(self.join_keyed(m, k)?);
            }
            return Ok(out);
        }
        let projects: Vec<String> = self.projects.clone();
        let projects: Vec<&str> = projects.iter().map(String::as_str).collect();
        for &m in leaves {
            self.g.stage_leave(m)?;
        }
        let mut joiners = Vec::with_capacity(joins.len());
        for (m, k) in joins {
            let kept = k.duplicate();
            self.g.stage_join(m, &projects, k)?;
            joiners.push((m, kept));
        }
        let r = self.g.commit(&null_signer);
        Ok(self.convert(r, joiners))
    }

    fn convert(&self, r: Rekey, joiners: Vec<(u32, SymmetricKey)>) -> Rekeying {
        let epoch = r.stats.epoch;
        let counts = OpCounts {
            unicast: r.stats.unicast_wraps,
            multicast: r.stats.multicast_wraps,
            broadcast: r.stats.broadcast_wraps,
            encryptions: r.stats.wraps(),
            fresh_keys: r.stats.fresh_keys,
            one_way: r.stats.ratcheted_keys,
            field_mults: 0,
        };
        let provisioned = joiners
            .into_iter()
            .map(|(m, k)| (m, names::key_name(PREFIX, KeyRef::Meter(m), epoch), k))
            .collect();
        Rekeying {
            epoch,
            wraps: r.wraps,
            public: vec![PublicInfo {
                name: names::manifest_name(PREFIX, epoch),
                bytes: r.signed.bytes,
            }],
            provisioned,
            counts,
        }
    }
}

impl Scheme for LkhScheme {
    fn label(&self) -> &'static str {
        if self.batching { "lkh-batch" } else { "lkh" }
    }

    fn members(&self) -> Vec<u32> {
        self.g.member_ids()
    }

    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>> {
        if !self.g.is_member(meter) {
            return Err(SchemeError::NotMember { meter });
        }
        Ok(self.g.entitled_keys(meter))
    }

    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        let k = self.user_key();
        self.join_keyed(meter, k)
    }

    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        let r = self.g.leave(meter, &null_signer)?;
        Ok(self.convert(r, Vec::new()))
    }

    fn batch(&mut self, joins: &[u32], leaves: &[u32]) -> SchemeResult<Rekeying> {
        if !self.batching {
            return super::one_by_one(self, joins, leaves);
        }
        let joins = joins.iter().map(|&m| (m, self.user_key())).collect();
        self.batch_keyed(joins, leaves)
    }

    fn refresh(&mut self) -> SchemeResult<Rekeying> {
        self.g.stage_refresh(true, true);
        let r = self.g.commit(&null_signer);
        Ok(self.convert(r, Vec::new()))
    }

    fn group_key(&self) -> (String, SymmetricKey) {
        self.g.broadcast_key()
    }

    fn member_storage(&self, meter: u32) -> Option<u64> {
        self.g.member_key_count(meter)
    }

    fn server_storage(&self) -> u64 {
        self.g.server_keys()
    }

    fn derive(&self, info: &PublicInfo, known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])> {
        let Ok(m) = Manifest::decode(&info.bytes) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut step = |key: KeyRef<'_>, change: &Change| {
            if change.kind != ChangeKind::Ratchet {
                return;
            }
            let from = names::key_name(&m.prefix, key, change.from);
            if let Some(old) = known.get(&from) {
                let to = names::key_name(&m.prefix, key, m.epoch);
                let k = wrap::ratchet(old, &to);
                out.push((to, k));
            }
        };
        for s in &m.sections {
            for (h, pos, change) in &s.changes {
                step(
                    KeyRef::Node {
                        subgroup: &s.label,
                        height: *h,
                        pos: *pos,
                    },
                    change,
                );
            }
        }
        for (p, change) in &m.projects {
            step(KeyRef::Project(p), change);
        }
        if let Some(change) = &m.root {
            step(KeyRef::Root, change);
        }
        out
    }
}
