//! `amicn kms compare` prints the survey's formulas beside counts measured on the schemes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn compare(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args(["kms", "compare", "--unit-ms", "15", "--max-acv", "16"])
        .args(["--max-skm", "64", "--puf-rounds", "20"])
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = compare(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn row<'a>(v: &'a serde_json::Value, scheme: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scheme"] == scheme)
        .unwrap()
}

#[test]
fn full_trees_and_the_flat_scheme_match_the_formulas() {
    // One project with every meter: one full binary tree of height 10.
    let v = json(&[
        "--members",
        "1024",
        "--projects",
        "1",
        "--meter-projects",
        "1",
        "--project-size",
        "1024",
    ]);
    let k = row(&v, "KMSSC");
    assert_eq!(k["ran_at_n"], 1024);
    assert_eq!(k["scaled"], "");
    // Table IV: 2n|K| unicast, with n the members left after the deletion.
    assert_eq!(k["table_iv_bits"]["delete_measured"]["unicast"], 2 * 1023);
    assert_eq!(
        k["table_iv_bits"]["delete_unicast"]["value"],
        2.0 * 1024.0 * 256.0
    );
    // OFT: H = 10 blinded keys for a deletion, 2H for the join into the vacated leaf.
    let e = &row(&v, "eSKAMI")["table_iv_bits"];
    let sum =
        |o: &serde_json::Value| o["unicast"].as_u64().unwrap() + o["multicast"].as_u64().unwrap();
    assert_eq!(sum(&e["delete_measured"]), 10);
    assert_eq!(sum(&e["add_measured"]), 20);
    assert_eq!(e["add_unicast"]["value"], 2.0 * 10.0 * 256.0);
    // LKH: d·H − 1 tree wraps and the project key under the one subgroup key.
    let s = &row(&v, "SAMI")["table_iv_bits"]["delete_measured"];
    assert_eq!(sum(s), 19 + 1);
    assert_eq!(s["broadcast"], 1);
    // Table V, KMSSC: n + N_pr + 1 at the MDMS.
    assert_eq!(row(&v, "KMSSC")["table_v_keys"]["mdms"]["value"], 1026.0);
    // Every Data packet costs more than its key payload.
    assert!(s["wire_bytes"].as_u64().unwrap() > s["payload_bytes"].as_u64().unwrap() + 64 * 21);
    let u = &v["units_ns"];
    assert!(u["pairing"].as_f64().unwrap() > u["one_way"].as_f64().unwrap());
}

#[test]
fn skm_runs_identity_based_leaves_and_the_puf_row_is_an_emulation() {
    // One full binary tree of 64 meters (H = 6), every leaf key from a pairing.
    let v = json(&[
        "--members",
        "64",
        "--projects",
        "1",
        "--meter-projects",
        "1",
        "--project-size",
        "64",
    ]);
    let s = row(&v, "SKM");
    assert_eq!(s["ran_at_n"], 64);
    assert_eq!(s["scaled"], "");
    assert!(s["implementation"].as_str().unwrap().starts_with("skm"));
    // Deletion: d·H − 1 tree wraps and the broadcast key, no project key (SKM runs none).
    let d = &s["table_iv_bits"]["delete_measured"];
    let sum =
        |o: &serde_json::Value| o["unicast"].as_u64().unwrap() + o["multicast"].as_u64().unwrap();
    assert_eq!(sum(d), 2 * 6 - 1);
    assert_eq!(d["broadcast"], 1);
    // Table V at the meter is exact here: log2 m_j + 1 + 1 = 8 (leaf, 6 path keys, root).
    assert_eq!(s["table_v_keys"]["meter"]["value"], 8.0);
    assert_eq!(s["table_v_keys"]["meter_measured"], 8);
    // The E2E cell carries the measured identity-based agreement.
    let e2e = s["table_iii_ns"]["e2e_mdms_measured_ibe_sok"]
        .as_f64()
        .unwrap();
    let u = &v["units_ns"];
    assert!((e2e - 64.0 * u["ibe_agree"].as_f64().unwrap()).abs() < 1e-3 * e2e);
    // PUF authentication: two messages, counted costs, and labelled as an emulation.
    let p = row(&v, "SEES / PUF hash chain (authentication)");
    assert!(p["implementation"].as_str().unwrap().contains("EMULATION"));
    let m = &v["puf_emulated"];
    assert_eq!(m["messages"], 2);
    assert_eq!(m["puf_evals"], 2);
    assert_eq!(m["rejected"], 0);
    assert!(m["wire_bytes"].as_u64().unwrap() > m["payload_bytes"].as_u64().unwrap());
    assert_eq!(p["server_formula"], "3·C_f");
}

#[test]
fn sizes_above_the_limits_are_scaled_and_say_so() {
    let v = json(&["--members", "2048", "--projects", "4", "--max-flat", "512"]);
    let skm = row(&v, "SKM");
    assert_eq!(skm["ran_at_n"], 64);
    assert!(skm["scaled"].as_str().unwrap().contains("log n"));
    let k = row(&v, "KMSSC");
    assert_eq!(k["ran_at_n"], 512);
    assert_eq!(k["scaled"], "linear in n");
    let sees = row(&v, "SEES");
    assert_eq!(sees["ran_at_n"], 16);
    assert!(sees["scaled"].as_str().unwrap().contains("³"));
    // The scaled record size is exact: epoch, N, N nonces, N + 1 entries, commitment, with
    // N = members + 1 after the deletion (2047 + 1).
    let rows = 2048u64;
    assert_eq!(
        sees["delete_measured"]["payload_bytes"],
        8 + 32 * rows + 32 * (rows + 1) + 16
    );
}

#[test]
fn plots_are_written_and_bad_parameters_refused() {
    let dir = std::env::temp_dir().join(format!("amicn-compare-{}", std::process::id()));
    let out = compare(&[
        "--members",
        "256",
        "--projects",
        "2",
        "--plots",
        dir.to_str().unwrap(),
        "--plot-sizes",
        "64,256",
        "--max-flat",
        "128",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Table III") && text.contains("Table IV") && text.contains("Table V"));
    assert!(text.contains("EMULATED PUF"));
    for f in ["compare-leave-bytes.png", "compare-leave-time.png"] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(text.contains(f));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let bad = compare(&[
        "--members",
        "100",
        "--projects",
        "2",
        "--meter-projects",
        "3",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--meter-projects"));
}
