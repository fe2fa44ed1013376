//! Rekey and storage counts of the real key graph next to the closed-form formulas: LKH
//! (Wong–Gouda–Lam), LKH+ joins, OFT, batch rekeying (Li–Yang–Gouda–Lam) and the survey's
//! Table IV/V entries for SAMI/VerSAMI. Prints one table (`cargo test --test graph_formulas --
//! --nocapture`) and asserts equality wherever the formula is exact.
#![allow(clippy::unwrap_used)]

use amicn_kms::SymmetricKey;
use amicn_kms::graph::oft::OftTree;
use amicn_kms::graph::{GraphConfig, KeyGraph, RekeyStats};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

fn signer(_: &[u8]) -> Vec<u8> {
    vec![0; 64]
}

fn graph(d: u32, ratchet: bool, groups: &[(&[&str], u32)]) -> KeyGraph {
    let cfg = GraphConfig {
        prefix: "/u".into(),
        degree: d,
        ratchet_joins: ratchet,
    };
    let mut g = KeyGraph::with_seed(cfg, 3).unwrap();
    let mut next = 0u32;
    for (projects, n) in groups {
        for p in *projects {
            g.add_project(p).unwrap();
        }
        let ids: Vec<u32> = (next..next + n).collect();
        g.bulk_enroll(&ids, projects).unwrap();
        next += n;
    }
    g
}

fn key(i: u32) -> SymmetricKey {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_le_bytes());
    SymmetricKey::from_bytes(k)
}

fn row(what: &str, ours: u64, formula: &str, value: u64) {
    let mark = if ours == value { "=" } else { "≠" };
    println!("{what:<58} {ours:>9} {mark} {value:<9} {formula}");
}

#[test]
fn lkh_single_tree_counts_match_the_formulas() {
    println!(
        "\n{:<58} {:>9}   {:<9} formula",
        "quantity", "ours", "value"
    );
    for (d, hs) in [(2u32, [4u32, 8, 10]), (3, [2, 4, 6]), (4, [2, 4, 5])] {
        for h in hs {
            let n = d.pow(h);
            let (d64, h64) = (u64::from(d), u64::from(h));
            let mut g = graph(d, true, &[(&[], n)]);
            let tag = format!("d={d} H={h} n={n}");
            // Storage.
            let server = (d64.pow(h + 1) - 1) / (d64 - 1) + 1;
            row(
                &format!("{tag}: keys at server"),
                g.server_keys(),
                "(d^(H+1)−1)/(d−1) + 1 broadcast",
                server,
            );
            assert_eq!(g.server_keys(), server);
            let member = g.member_key_count(0).unwrap();
            row(
                &format!("{tag}: keys per member"),
                member,
                "H + 1 + 1 broadcast",
                h64 + 2,
            );
            assert_eq!(member, h64 + 2);
            // Leave.
            let r = g.leave(n / 2 + 1, &signer).unwrap().stats;
            row(
                &format!("{tag}: leave, tree wraps"),
                r.tree_wraps,
                "d·H − 1",
                d64 * h64 - 1,
            );
            assert_eq!(r.tree_wraps, d64 * h64 - 1);
            assert_eq!(r.unicast_wraps, d64 - 1);
            assert_eq!(r.fresh_keys, h64 + 1);
            assert_eq!(r.root_wraps, 1);
            // LKH+ join into the vacated leaf: one wrap per level, the rest ratchet.
            let r = g.join(n + 7, &[], key(1), &signer).unwrap().stats;
            row(
                &format!("{tag}: join (LKH+ ratchet), tree wraps"),
                r.tree_wraps,
                "H",
                h64,
            );
            assert_eq!(r.tree_wraps, h64);
            assert_eq!(r.ratcheted_keys, h64 + 1);
            assert_eq!((r.unicast_wraps, r.broadcast_wraps), (1, 1));
            // Fresh-key join (no ratchet): every changed key under each child.
            let mut g = graph(d, false, &[(&[], n)]);
            g.leave(3, &signer).unwrap();
            let r = g.join(n + 7, &[], key(2), &signer).unwrap().stats;
            row(
                &format!("{tag}: join (fresh keys), tree wraps"),
                r.tree_wraps,
                "d·H (WGL 2H for d=2)",
                d64 * h64,
            );
            assert_eq!(r.tree_wraps, d64 * h64);
            assert_eq!(r.root_wraps, 1);
        }
    }
    // OFT for comparison (binary).
    let mut rng = StdRng::seed_from_u64(1);
    for h in [4u8, 8, 10] {
        let mut t = OftTree::new(&mut rng, h);
        let c = t.leave(&mut rng, 3);
        row(
            &format!("OFT d=2 H={h}: leave, wraps"),
            c.wraps,
            "H (LKH: 2H − 1)",
            u64::from(h),
        );
        assert_eq!(c.wraps, u64::from(h));
    }
}

fn log_binom(n: u64, k: u64) -> f64 {
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

#[test]
fn batch_rekey_is_cheaper_than_individual_rekeys() {
    println!();
    for (d, h, l) in [
        (2u32, 12u32, 16u64),
        (2, 12, 256),
        (4, 6, 256),
        (2, 14, 1000),
    ] {
        let n = u64::from(d).pow(h);
        let mut rng = StdRng::seed_from_u64(u64::from(h) * 7 + l);
        let mut ids: Vec<u32> = (0..n as u32).collect();
        ids.shuffle(&mut rng);
        let leavers = &ids[..l as usize];
        let mut g = graph(d, true, &[(&[], n as u32)]);
        for &m in leavers {
            g.stage_leave(m).unwrap();
        }
        let batch = g.commit(&signer).stats;
        let mut g2 = graph(d, true, &[(&[], n as u32)]);
        let mut sum = RekeyStats::default();
        for &m in leavers {
            let s = g2.leave(m, &signer).unwrap().stats;
            sum.tree_wraps += s.tree_wraps;
            sum.root_wraps += s.root_wraps;
        }
        // Expected wraps for L uniform leaves (KMS-NOTES §1.4): Σ_l d^(l+1)·P_l − L.
        let (d64, big_n) = (u64::from(d), n);
        let mut e = 0.0;
        for lvl in 0..h {
            let below = big_n / d64.pow(lvl);
            let p = if big_n - below < l {
                1.0
            } else {
                1.0 - (log_binom(big_n - below, l) - log_binom(big_n, l)).exp()
            };
            e += (d64.pow(lvl + 1) as f64) * p;
        }
        e -= l as f64;
        let tag = format!("d={d} n={n} L={l}");
        println!(
            "{tag:<28} batch tree wraps {:>7}  expected ≈{:>9.0}  worst L·d·log_d(n/L) ={:>7.0}  one by one {:>7} (L·(dH−1) = {})",
            batch.tree_wraps,
            e,
            l as f64 * d64 as f64 * ((n as f64 / l as f64).ln() / (d64 as f64).ln()),
            sum.tree_wraps,
            l * (d64 * u64::from(h) - 1)
        );
        assert!(batch.tree_wraps < sum.tree_wraps);
        assert!(sum.tree_wraps <= l * (d64 * u64::from(h) - 1));
        assert_eq!(batch.root_wraps, 1);
        assert_eq!(sum.root_wraps, l);
        // Within 5 % of the expectation (it is an average over random leaver sets).
        assert!(
            (batch.tree_wraps as f64 - e).abs() / e < 0.05,
            "{} vs {e}",
            batch.tree_wraps
        );
    }
}

#[test]
fn multigroup_counts_against_survey_tables() {
    println!();
    // Project p1 = 3072 meters, p2 = 2048 meters overlapping in 1024 ⇒ subgroups
    // p1+p2 (1024), p1 (2048), p2 (1024): every tree full, binary.
    let groups: [(&[&str], u32); 3] = [(&["p1", "p2"], 1024), (&["p1"], 2048), (&["p2"], 1024)];
    let mut g = graph(2, true, &groups);
    let (m_p1, m_p2) = (3072u64, 2048u64);
    let n_pr = 2u64;
    // Table V, SAMI/eSKAMI/MK-AMI MDMS storage: 2·Σ(m_j − 1) + 1.
    let table_v_server = 2 * ((m_p1 - 1) + (m_p2 - 1)) + 1;
    // Ours: every full binary subgroup tree holds 2|A| − 1 keys, plus project keys and broadcast.
    let ours_formula: u64 = [1024u64, 2048, 1024].iter().map(|a| 2 * a - 1).sum::<u64>() + n_pr + 1;
    row(
        "server keys: Σ_j (2|A_j| − 1) + N_pr + 1",
        g.server_keys(),
        "exact for full binary trees",
        ours_formula,
    );
    row(
        "   Table V 2·Σ_p(m_p − 1) + 1 (per-project trees)",
        g.server_keys(),
        "counts projects, not subgroups",
        table_v_server,
    );
    assert_eq!(g.server_keys(), ours_formula);
    // Table V SMi storage: log2|A| + N_sub(u_i) + 1; ours also counts the user key (leaf).
    for (meter, a, nsub) in [(0u32, 1024u64, 2u64), (1024, 2048, 1), (3072, 1024, 1)] {
        let table_v = a.ilog2() as u64 + nsub + 1;
        let ours = g.member_key_count(meter).unwrap();
        row(
            &format!("member keys, |A|={a}, N_sub={nsub}"),
            ours,
            "log2|A| + 1 (leaf) + N_sub + 1",
            table_v + 1,
        );
        row(
            "   Table V log2|A| + N_sub(u) + 1",
            ours,
            "without the user key",
            table_v,
        );
        assert_eq!(ours, table_v + 1);
    }
    // Leave from subgroup p1+p2: (2H − 1) + Σ_{p∈P_j} m_p + M with m_p = subscribing subgroups.
    let r = g.leave(5, &signer).unwrap().stats;
    let oracle = (2 * 10 - 1) + (2 + 2) + 3;
    row(
        "leave from p1+p2: wraps",
        r.wraps(),
        "(2H_j − 1) + Σ m_p + M",
        oracle,
    );
    assert_eq!(r.wraps(), oracle);
    assert_eq!((r.tree_wraps, r.project_wraps, r.root_wraps), (19, 4, 3));
    // Table IV SAMI member deletion, broadcast keys: h_j + 2X + Y (X = N_sub, Y = N_pr − X).
    row(
        "   Table IV SAMI deletion keys h_j + 2X + Y",
        r.fresh_keys,
        "keys changed, not wraps",
        10 + 2 * 2,
    );
    assert_eq!(r.fresh_keys, 10 + 2 + 1);
    // Join to p1 (subgroup of 2048, H = 11) into the vacated leaf of p1+p2's sibling tree:
    // LKH+ sends H_j tree wraps + one per project + the broadcast key, all under the joiner's path.
    let r = g.join(9000, &["p1", "p2"], key(3), &signer).unwrap().stats;
    row(
        "join to p1+p2: wraps",
        r.wraps(),
        "H_j + N_sub + 1 (Table IV: h_j unicast + 1 bcast)",
        10 + 2 + 1,
    );
    assert_eq!(r.wraps(), 10 + 2 + 1);
    assert_eq!(r.fresh_keys, 0);
    // Moving from p1+p2 to p1 rekeys p2 (fresh, under its 2 subgroups) and not the broadcast key.
    let r = g.move_to(7, &["p1"], &signer).unwrap().stats;
    row(
        "move p1+p2 → p1: project wraps",
        r.project_wraps,
        "m_p2 (p2 only; p1 and broadcast kept)",
        2,
    );
    assert_eq!(r.root_wraps, 0);
    assert_eq!(r.project_wraps, 2);
}
