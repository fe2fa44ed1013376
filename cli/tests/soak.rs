//! The soak's short version: the whole AMI at steady load for two minutes, with memory,
//! descriptors, PIT, ingest and latency judged flat by `amicn bench soak`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn two_minutes_at_steady_load_stay_flat() {
    let out_dir = std::env::temp_dir().join(format!("amicn-soak-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args([
            "bench",
            "soak",
            "--duration",
            "2m",
            "--sample",
            "2s",
            "--meters",
            "12",
            "--json",
            "--out",
        ])
        .arg(&out_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let failed: Vec<&serde_json::Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] != true)
        .collect();
    assert!(
        failed.is_empty() && out.status.success(),
        "{failed:#?}\n{stderr}"
    );
    let samples = v["samples"].as_array().unwrap();
    assert!(samples.len() >= 40, "{} samples", samples.len());
    // Every role was sampled, and the MDMS stored readings throughout.
    let last = samples.last().unwrap();
    assert_eq!(last["rss_kib"].as_object().unwrap().len(), 8, "{last}");
    assert!(last["readings_stored"].as_u64().unwrap() > 0, "{last}");
    for f in [
        "soak.json",
        "samples.csv",
        "memory.png",
        "fds.png",
        "queues.png",
        "latency.png",
    ] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
