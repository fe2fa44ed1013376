//! `amicn kms cost` runs the real key graph and reports counts that match the LKH formulas.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn cost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amicn"))
        .arg("kms")
        .arg("cost")
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = cost(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn single_subgroup_leave_matches_d_h_minus_1() {
    for (members, degree, height) in [("1023", "2", 10u64), ("4095", "4", 6)] {
        let v = json(&["--members", members, "--degree", degree, "--batch", "50"]);
        let d: u64 = degree.parse().unwrap();
        assert_eq!(v["subject"]["tree_height"], height);
        // The join fills the last free leaf, so the leave happens in a full tree.
        assert_eq!(v["leave"]["tree_wraps"], d * height - 1, "{v:#}");
        assert_eq!(
            v["subject"]["leave_tree_wraps_formula_dH_minus_1"],
            d * height - 1
        );
        assert_eq!(v["leave"]["unicast_wraps"], d - 1);
        // One subgroup, no projects: the broadcast key goes under one subgroup key.
        assert_eq!(v["leave"]["broadcast_wraps"], 1);
        assert_eq!(v["leave"]["project_wraps"], 0);
        assert_eq!(v["revoke"]["wraps"], v["leave"]["wraps"]);
        // LKH+ join: one wrap per path level plus the broadcast key; nobody else fetches.
        assert_eq!(v["join"]["tree_wraps"], height);
        assert_eq!(v["join"]["fresh_keys"], 0);
        // Keys per meter: H + 1 tree keys + the broadcast key.
        assert_eq!(v["keys_per_member"], height + 2);
        let batch = v["batch"]["wraps"].as_u64().unwrap();
        let individual = v["batch_as_individual_rekeys"]["wraps"].as_u64().unwrap();
        assert!(
            batch < individual,
            "batch {batch} vs one by one {individual}"
        );
        assert_eq!(
            v["leave"]["wrap_payload_bytes"],
            v["leave"]["wraps"].as_u64().unwrap() * 72
        );
    }
}

#[test]
fn projects_add_group_wraps_and_keys() {
    let v = json(&[
        "--members",
        "2000",
        "--projects",
        "p1:1000,p2:1500",
        "--meter-projects",
        "2",
        "--batch",
        "20",
    ]);
    // p1 = meters 0..1000, p2 = 1000..2000 and 0..500: subgroups p1+p2, p1, p2.
    assert_eq!(v["subgroups"], 3);
    assert_eq!(v["subject"]["subgroup"], "p1+p2");
    let h = v["subject"]["tree_height"].as_u64().unwrap();
    assert_eq!(v["keys_per_member"], h + 1 + 2 + 1);
    // Leave from p1+p2: p1 under its 2 subgroups, p2 under its 2, broadcast under all 3.
    assert_eq!(v["leave"]["project_wraps"], 4);
    assert_eq!(v["leave"]["root_wraps"], 3);
    assert_eq!(v["leave"]["broadcast_wraps"], 3);
    // Dropping p1 rekeys p1 only and leaves the broadcast key alone.
    assert_eq!(v["move"]["root_wraps"], 0);
}

#[test]
fn table_output_and_bad_arguments() {
    let out = cost(&["--members", "100", "--batch", "10"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("operation"), "{text}");
    assert!(text.contains("d·H − 1"), "{text}");
    let out = cost(&["--members", "100", "--batch", "10", "--projects", "p1:500"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("p1"));
    let out = cost(&["--members", "100", "--projects", "p1"]);
    assert!(!out.status.success());
}
