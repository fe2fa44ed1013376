//! The kill loop's short version: every role SIGKILLed once at a random moment and restarted,
//! with every recovery and every durability check of `amicn bench chaos` judged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn every_role_killed_once_recovers_without_losing_or_corrupting_anything() {
    let out_dir = std::env::temp_dir().join(format!("amicn-chaos-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args([
            "bench", "chaos", "--kills", "1", "--meters", "6", "--groups", "1", "--json", "--out",
        ])
        .arg(&out_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["pass"], true, "{v}");
    let roles = v["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 5, "{v}");
    for r in roles {
        assert_eq!(r["kills"], 1, "{r}");
        assert_eq!(r["recovered"], 1, "{r}");
    }
    assert!(v["readings_committed"].as_u64().unwrap() > 0, "{v}");
    assert!(v["objects_acked"].as_u64().unwrap() > 0, "{v}");
    for f in ["summary.json", "kills.csv", "recovery.png"] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
