//! Forward and backward secrecy of every scheme in `kms::scheme`, by property test.
//!
//! Random join / leave / batch / refresh sequences run against each scheme. After every step,
//! every meter that was ever a member pools every key it was ever given with everything ever
//! published and computes all it can ([`adversary::closure`]). A current member must reach the
//! current group key; no meter may reach a group key of an epoch in which it was not a member
//! (a departed meter cannot follow, a joiner cannot look back).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use amicn_kms::scheme::acv::AcvScheme;
use amicn_kms::scheme::adversary::{Published, closure};
use amicn_kms::scheme::flat::FlatScheme;
use amicn_kms::scheme::lkh::LkhScheme;
use amicn_kms::scheme::oft::OftScheme;
use amicn_kms::scheme::skm::SkmScheme;
use amicn_kms::scheme::{Knowledge, Rekeying, Scheme, SchemeError};
use proptest::prelude::*;

struct Harness {
    s: Box<dyn Scheme>,
    published: Published,
    held: BTreeMap<u32, Vec<(String, [u8; 32])>>,
    entitled: HashMap<u32, BTreeSet<String>>,
    group_keys: HashMap<String, [u8; 32]>,
}

impl Harness {
    fn new(s: Box<dyn Scheme>, setup: Option<Rekeying>) -> Harness {
        let mut h = Harness {
            s,
            published: Published::default(),
            held: BTreeMap::new(),
            entitled: HashMap::new(),
            group_keys: HashMap::new(),
        };
        for m in h.s.members() {
            let keys = h.s.enrolment_keys(m).unwrap();
            h.held
                .entry(m)
                .or_default()
                .extend(keys.iter().map(|(n, k)| (n.clone(), *k.as_bytes())));
        }
        match setup {
            Some(r) => h.apply(r),
            None => h.note_epoch(),
        }
        h
    }

    fn note_epoch(&mut self) {
        let (name, key) = self.s.group_key();
        self.group_keys.insert(name.clone(), *key.as_bytes());
        for m in self.s.members() {
            self.entitled.entry(m).or_default().insert(name.clone());
        }
    }

    fn apply(&mut self, r: Rekeying) {
        self.published.add(&r.wraps, &r.public);
        for (m, n, k) in &r.provisioned {
            self.held
                .entry(*m)
                .or_default()
                .push((n.clone(), *k.as_bytes()));
        }
        self.note_epoch();
    }

    fn knowledge(&self, m: u32) -> Knowledge {
        let mut k = Knowledge::default();
        for (n, v) in self.held.get(&m).into_iter().flatten() {
            k.insert(n, v);
        }
        closure(self.s.as_ref(), &mut k, &self.published);
        k
    }

    /// Panics unless members reach the current key and nobody reaches a key it was not
    /// entitled to. Returns how many group keys were reached in total (for non-vacuity).
    fn check(&self) -> usize {
        let (cur, cur_key) = self.s.group_key();
        let members: BTreeSet<u32> = self.s.members().into_iter().collect();
        let mut reached = 0;
        for &m in self.held.keys() {
            let k = self.knowledge(m);
            if members.contains(&m) {
                assert_eq!(
                    k.get(&cur),
                    Some(cur_key.as_bytes()),
                    "{}: member {m} cannot derive the current group key {cur}",
                    self.s.label()
                );
            }
            for (name, real) in &self.group_keys {
                if let Some(v) = k.get(name) {
                    assert_eq!(
                        v,
                        real,
                        "{}: meter {m} derived a wrong {name}",
                        self.s.label()
                    );
                    assert!(
                        self.entitled.get(&m).is_some_and(|e| e.contains(name)),
                        "{}: meter {m} derives {name}, an epoch it was not a member of",
                        self.s.label()
                    );
                    reached += 1;
                }
            }
        }
        reached
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join,
    Rejoin(u16),
    Leave(u16),
    Batch(u8, Vec<u16>),
    Refresh,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Join),
        1 => any::<u16>().prop_map(Op::Rejoin),
        4 => any::<u16>().prop_map(Op::Leave),
        2 => (0u8..3, prop::collection::vec(any::<u16>(), 0..3)).prop_map(|(j, l)| Op::Batch(j, l)),
        1 => Just(Op::Refresh),
    ]
}

/// `rejoin`: whether a departed meter may come back under its old id (OFT: no, see
/// [`oft_rejoin_is_collusion_and_oft_falls_to_it`]).
fn run(mut h: Harness, ops: Vec<Op>, rejoin: bool) {
    let mut next = 10_000u32;
    h.check();
    for op in ops {
        let members = h.s.members();
        let departed: Vec<u32> = h
            .held
            .keys()
            .copied()
            .filter(|m| !members.contains(m))
            .collect();
        let pick = |v: &[u32], i: u16| (!v.is_empty()).then(|| v[usize::from(i) % v.len()]);
        let r = match op {
            Op::Join => {
                next += 1;
                h.s.join(next)
            }
            Op::Rejoin(i) => match pick(&departed, i).filter(|_| rejoin) {
                Some(m) => h.s.join(m),
                None => continue,
            },
            Op::Leave(i) => match pick(&members, i) {
                Some(m) => h.s.leave(m),
                None => continue,
            },
            Op::Batch(j, l) => {
                let mut leaves: Vec<u32> = l.iter().filter_map(|&i| pick(&members, i)).collect();
                leaves.sort_unstable();
                leaves.dedup();
                let joins: Vec<u32> = (0..j)
                    .map(|_| {
                        next += 1;
                        next
                    })
                    .collect();
                h.s.batch(&joins, &leaves)
            }
            Op::Refresh => h.s.refresh(),
        };
        match r {
            Ok(r) => h.apply(r),
            Err(SchemeError::Full { .. } | SchemeError::Unsupported { .. }) => continue,
            Err(e) => panic!("{}: {e}", h.s.label()),
        }
        h.check();
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 100, ..ProptestConfig::default() })]

    #[test]
    fn lkh_one_epoch_per_change(n in 0u32..9, ops in ops()) {
        let s = LkhScheme::new(n, 2, &["p1"], true, false, u64::from(n)).unwrap();
        run(Harness::new(Box::new(s), None), ops, true);
    }

    #[test]
    fn lkh_batched_fresh_joins(n in 0u32..9, ops in ops()) {
        let s = LkhScheme::new(n, 3, &[], false, true, u64::from(n)).unwrap();
        run(Harness::new(Box::new(s), None), ops, true);
    }

    #[test]
    fn oft(n in 0u32..9, ops in ops()) {
        let (s, setup) = OftScheme::new(n, 16, u64::from(n)).unwrap();
        run(Harness::new(Box::new(s), Some(setup)), ops, false);
    }

    #[test]
    fn flat(n in 0u32..9, ops in ops()) {
        run(Harness::new(Box::new(FlatScheme::new(n, u64::from(n))), None), ops, true);
    }

    #[test]
    fn skm_identity_based_leaves(n in 0u32..9, ops in ops()) {
        let s = SkmScheme::new(n, 2, &["p1"], u64::from(n)).unwrap();
        run(Harness::new(Box::new(s), None), ops, true);
    }

    #[test]
    fn acv_bgkm(n in 0u32..9, ops in ops()) {
        let (s, setup) = AcvScheme::new(n, u64::from(n));
        run(Harness::new(Box::new(s), Some(setup)), ops, true);
    }
}

/// The adversary is not vacuous: it reaches old keys, and handing a departed meter one current
/// member's secret is caught.
#[test]
fn adversary_reaches_what_it_may_and_flags_a_leak() {
    let schemes: Vec<(Box<dyn Scheme>, Option<Rekeying>)> = vec![
        (
            Box::new(LkhScheme::new(8, 2, &["p1"], true, false, 1).unwrap()),
            None,
        ),
        {
            let (s, r) = OftScheme::new(8, 8, 1).unwrap();
            (Box::new(s), Some(r))
        },
        (Box::new(FlatScheme::new(8, 1)), None),
        (Box::new(SkmScheme::new(8, 2, &[], 1).unwrap()), None),
        {
            let (s, r) = AcvScheme::new(8, 1);
            (Box::new(s), Some(r))
        },
    ];
    for (s, setup) in schemes {
        let mut h = Harness::new(s, setup);
        let r = h.s.leave(3).unwrap();
        h.apply(r);
        let r = h.s.join(20).unwrap();
        h.apply(r);
        // Meter 3 reaches the setup key; meter 20 only the last; 0..8 minus 3 reach all three.
        assert_eq!(h.check(), 1 + 1 + 7 * 3, "{}", h.s.label());
        let label = h.s.label();
        let leaked: Vec<(String, [u8; 32])> = h.held[&5].clone();
        h.held.get_mut(&3).unwrap().extend(leaked);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.check()));
        assert!(
            caught.is_err(),
            "{label}: a leaked member key went unnoticed"
        );
    }
}

/// A meter that leaves and later rejoins is a departed member colluding with a joiner, which
/// OFT is known not to resist: with the blinded sibling key it kept from its first stay and the
/// one it receives on rejoining, it computes the group key of an epoch in which it was absent.
/// The other schemes pass the same sequence (the property tests above allow rejoins for them).
#[test]
fn oft_rejoin_is_collusion_and_oft_falls_to_it() {
    let (s, setup) = OftScheme::new(0, 16, 1).unwrap();
    let mut h = Harness::new(Box::new(s), Some(setup));
    for step in 0..4 {
        let r = match step {
            0 => h.s.join(1),
            1 => h.s.leave(1),
            2 => h.s.join(2),
            _ => h.s.join(1),
        };
        h.apply(r.unwrap());
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.check()));
    let msg = caught
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        msg.contains("meter 1 derives") && msg.contains("an epoch it was not a member of"),
        "expected OFT's collusion weakness, got {msg:?}"
    );
    for (s, setup) in [
        (
            Box::new(LkhScheme::new(0, 2, &[], true, false, 1).unwrap()) as Box<dyn Scheme>,
            None,
        ),
        (Box::new(FlatScheme::new(0, 1)), None),
        (Box::new(SkmScheme::new(0, 2, &["p1"], 1).unwrap()), None),
        {
            let (s, r) = AcvScheme::new(0, 1);
            (Box::new(s) as Box<dyn Scheme>, Some(r))
        },
    ] {
        let mut h = Harness::new(s, setup);
        for step in 0..4 {
            let r = match step {
                0 => h.s.join(1),
                1 => h.s.leave(1),
                2 => h.s.join(2),
                _ => h.s.join(1),
            };
            h.apply(r.unwrap());
        }
        h.check();
    }
}
