//! Test harness shared by the key-graph tests: a KMS graph, every meter's member state, every
//! published wrap and manifest, and an adversary that pools everything one meter ever held.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, HashSet};

use amicn_kms::SymmetricKey;
use amicn_kms::graph::manifest::{
    ChangeKind, Ed25519Signer, Ed25519Verifier, Manifest, ManifestSigner, ManifestVerifier,
};
use amicn_kms::graph::names::{self, KeyRef};
use amicn_kms::graph::{GraphConfig, KeyGraph, MemberState, Rekey, SignedManifest, Wrap, wrap};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "/example-utility";

pub struct World {
    pub g: KeyGraph,
    pub states: BTreeMap<u32, MemberState>,
    pub wraps: HashMap<String, Wrap>,
    pub manifests: Vec<Manifest>,
    pub signed: Vec<SignedManifest>,
    /// Names (with epoch) each meter was ever entitled to.
    pub ever: HashMap<u32, HashSet<String>>,
    /// Every key each meter ever held, by name.
    pub held: HashMap<u32, HashMap<String, [u8; 32]>>,
    pub signer: Box<dyn ManifestSigner>,
    pub verifier: Box<dyn ManifestVerifier>,
    pending_joiners: Vec<(u32, SymmetricKey)>,
    /// Seeded, so a world's user keys repeat run after run.
    rng: Xoshiro256PlusPlus,
    /// Incremental adversary: wraps indexed by wrapping-key name, announced ratchets, and what
    /// each meter can derive so far.
    by_kek: HashMap<String, Vec<(String, Wrap)>>,
    ratchet_to: HashMap<String, String>,
    derived: HashMap<u32, HashMap<String, [u8; 32]>>,
}

impl World {
    pub fn new(degree: u32, ratchet: bool, projects: &[&str], seed: u64) -> World {
        let cfg = GraphConfig {
            prefix: PREFIX.into(),
            degree,
            ratchet_joins: ratchet,
        };
        let mut g = KeyGraph::with_seed(cfg, seed).unwrap();
        for p in projects {
            g.add_project(p).unwrap();
        }
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        World {
            verifier: Box::new(Ed25519Verifier(sk.verifying_key())),
            signer: Box::new(Ed25519Signer(sk)),
            g,
            states: BTreeMap::new(),
            wraps: HashMap::new(),
            manifests: Vec::new(),
            signed: Vec::new(),
            ever: HashMap::new(),
            held: HashMap::new(),
            pending_joiners: Vec::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            by_kek: HashMap::new(),
            ratchet_to: HashMap::new(),
            derived: HashMap::new(),
        }
    }

    /// Replaces Ed25519 by a keyed SHA-256 test signature (much cheaper in unoptimised test
    /// builds, where thousands of manifests are verified).
    pub fn with_test_signer(mut self) -> World {
        const K: &[u8] = b"amicn test manifest key";
        self.signer = Box::new(|b: &[u8]| {
            Sha256::new()
                .chain_update(K)
                .chain_update(b)
                .finalize()
                .to_vec()
        });
        self.verifier = Box::new(|b: &[u8], sig: &[u8]| {
            let want = Sha256::new().chain_update(K).chain_update(b).finalize();
            if want.as_slice() == sig {
                Ok(())
            } else {
                Err("test signature mismatch".to_string())
            }
        });
        self
    }

    /// Initial enrolment of `meters` with `projects`, states handed over directly.
    pub fn enroll(&mut self, meters: &[u32], projects: &[&str]) {
        self.g.bulk_enroll(meters, projects).unwrap();
        for &m in meters {
            self.states.insert(m, self.g.export_member(m).unwrap());
        }
        self.record();
    }

    pub fn user_key(&mut self, meter: u32) -> SymmetricKey {
        let mut k = [0u8; 32];
        self.rng.fill_bytes(&mut k);
        k[..4].copy_from_slice(&meter.to_le_bytes());
        SymmetricKey::from_bytes(k)
    }

    pub fn stage_join(
        &mut self,
        meter: u32,
        projects: &[&str],
    ) -> Result<(), amicn_kms::graph::GraphError> {
        let k = self.user_key(meter);
        self.g.stage_join(meter, projects, k.duplicate())?;
        self.pending_joiners.push((meter, k));
        Ok(())
    }

    pub fn commit(&mut self) -> Rekey {
        let r = self.g.commit(self.signer.as_ref());
        self.publish(&r);
        r
    }

    pub fn revoke(&mut self, meter: u32) -> Rekey {
        let r = self.g.revoke(meter, self.signer.as_ref()).unwrap();
        self.publish(&r);
        r
    }

    /// Publishes a rekey and lets every meter that ever had state ingest it.
    pub fn publish(&mut self, r: &Rekey) {
        for w in &r.wraps {
            assert!(
                self.wraps.insert(w.name.clone(), w.clone()).is_none(),
                "wrap name reused: {}",
                w.name
            );
            let (t, b) = names::split_wrap_name(&w.name).unwrap();
            self.by_kek
                .entry(b.to_string())
                .or_default()
                .push((t.to_string(), w.clone()));
        }
        {
            let m = &r.manifest;
            let mut add = |r: KeyRef<'_>, from: u32| {
                self.ratchet_to.insert(
                    names::key_name(&m.prefix, r, from),
                    names::key_name(&m.prefix, r, m.epoch),
                );
            };
            for s in &m.sections {
                for (h, p, c) in &s.changes {
                    if c.kind == ChangeKind::Ratchet {
                        add(
                            KeyRef::Node {
                                subgroup: &s.label,
                                height: *h,
                                pos: *p,
                            },
                            c.from,
                        );
                    }
                }
            }
            for (p, c) in &m.projects {
                if c.kind == ChangeKind::Ratchet {
                    add(KeyRef::Project(p), c.from);
                }
            }
            if let Some(c) = &m.root
                && c.kind == ChangeKind::Ratchet
            {
                add(KeyRef::Root, c.from);
            }
        }
        self.manifests.push(r.manifest.clone());
        self.signed.push(r.signed.clone());
        for (m, k) in self.pending_joiners.drain(..) {
            let st = self
                .states
                .entry(m)
                .or_insert_with(|| MemberState::new(PREFIX, m, k.duplicate()));
            if st.place().is_none() {
                *st = MemberState::new(PREFIX, m, k);
            }
        }
        let wraps = &self.wraps;
        for st in self.states.values_mut() {
            let mut fetch = |n: &str| wraps.get(n).cloned();
            st.ingest(&r.signed, self.verifier.as_ref(), &mut fetch)
                .unwrap_or_else(|e| {
                    panic!(
                        "meter {} failed to ingest epoch {}: {e}",
                        st.meter(),
                        r.manifest.epoch
                    )
                });
        }
        self.record();
    }

    /// Asserts that every meter holds exactly what the KMS says it is entitled to, and records
    /// entitlements and holdings for the adversary.
    pub fn record(&mut self) {
        for (&m, st) in &self.states {
            let want = self.g.entitled_keys(m);
            let have = st.keys();
            let want_names: Vec<&String> = want.iter().map(|(n, _)| n).collect();
            let have_names: Vec<&String> = have.iter().map(|(n, _)| n).collect();
            assert_eq!(have_names, want_names, "meter {m} key names");
            for ((n, a), (_, b)) in want.iter().zip(have.iter()) {
                assert!(a == *b, "meter {m} holds a wrong key for {n}");
            }
            let ever = self.ever.entry(m).or_default();
            let held = self.held.entry(m).or_default();
            for (n, k) in have {
                ever.insert(n.clone());
                held.insert(n, *k.as_bytes());
            }
        }
    }

    pub fn members(&self) -> Vec<u32> {
        self.g.member_ids()
    }
}

impl World {
    /// Everything each meter could derive from all it ever held, every published wrap and every
    /// announced ratchet, minus what it was ever entitled to (kept incrementally across calls).
    pub fn adversary_excess_all(&mut self) -> Vec<(u32, Vec<String>)> {
        let mut out = Vec::new();
        let meters: Vec<u32> = self.held.keys().copied().collect();
        for m in meters {
            let known = self.derived.entry(m).or_default();
            let mut queue: Vec<String> = Vec::new();
            for (n, k) in &self.held[&m] {
                if !known.contains_key(n) {
                    known.insert(n.clone(), *k);
                }
            }
            // Re-scan from every known key: cheap lookups; only new derivations do crypto.
            queue.extend(known.keys().cloned());
            while let Some(n) = queue.pop() {
                let k = known[&n];
                if let Some(list) = self.by_kek.get(&n) {
                    for (t, wr) in list {
                        if !known.contains_key(t) {
                            let key = wrap::open(wr, &wr.name, &k)
                                .expect("a wrap under a known key opens");
                            known.insert(t.clone(), *key.as_bytes());
                            queue.push(t.clone());
                        }
                    }
                }
                if let Some(to) = self.ratchet_to.get(&n)
                    && !known.contains_key(to)
                {
                    known.insert(to.clone(), wrap::ratchet(&k, to));
                    queue.push(to.clone());
                }
            }
            let ever = self.ever.get(&m);
            let mut excess: Vec<String> = known
                .keys()
                .filter(|n| !ever.is_some_and(|e| e.contains(*n)))
                .cloned()
                .collect();
            if !excess.is_empty() {
                excess.sort();
                out.push((m, excess));
            }
        }
        out
    }
}
