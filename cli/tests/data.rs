//! `amicn data generate`: seeded, reproducible CSV with consistent registers, and clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools_support;

use std::process::Command;

fn generate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args(["data", "generate", "--quiet"])
        .args(args)
        .output()
        .expect("run amicn data generate")
}

#[test]
fn the_same_seed_gives_the_same_data_set() {
    let a = generate(&["--meters", "20", "--days", "2", "--seed", "5"]);
    let b = generate(&["--meters", "20", "--days", "2", "--seed", "5"]);
    let c = generate(&["--meters", "20", "--days", "2", "--seed", "6"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("meter,interval_start"));
    // 20 meters × 2 days × 96 quarter hours, and each meter's import register never decreases.
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 20 * 2 * 96);
    for pair in rows.windows(2) {
        if pair[0][0] == pair[1][0] {
            let (x, y): (u64, u64) = (pair[0][3].parse().unwrap(), pair[1][3].parse().unwrap());
            assert!(y >= x);
        }
    }
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for (args, why) in [
        (vec!["--pv-share", "1.5"], "pv share"),
        (vec!["--start", "2026-13-40"], "not a valid date"),
        (vec!["--interval", "0s"], "interval"),
        (vec!["--days=-1"], "--days"),
    ] {
        let out = generate(&args);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn import_reports_bad_rows_by_line_and_missing_columns() {
    let dir = std::env::temp_dir().join(format!("amicn-data-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("keychain");
    let amicn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_amicn"))
            .env("AMICN_KEYCHAIN", &kc)
            .args(args)
            .output()
            .unwrap()
    };
    let csv = dir.join("r.csv");
    std::fs::write(
        &csv,
        "meter,interval_start,interval_s,import_wh,power_w\n\
         1,1772409600,900,1000,400\n\
         2,1772409600,900,lots,400\n\
         3,1772409600,900,3000,410\n",
    )
    .unwrap();
    let db = dir.join("repo.db");
    let (c, d) = (csv.to_str().unwrap(), db.to_str().unwrap());
    let out = amicn(&["data", "import", c, "--db", d, "--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("\"lots\""), "{err}");
    let out = amicn(&["data", "import", c, "--db", d, "--skip-bad"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 bad rows skipped") && err.contains("line 3"),
        "{err}"
    );
    let stats = amicn(&["repo", "stats", "--db", d]);
    // Two readings and the publisher's certificate.
    assert!(String::from_utf8_lossy(&stats.stdout).starts_with("3 Data"));
    std::fs::write(&csv, "meter,start\n1,2\n").unwrap();
    let out = amicn(&["data", "import", c, "--db", d, "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no column"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_import_killed_midway_keeps_every_acknowledged_reading() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("amicn-data-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("keychain");
    let csv = dir.join("r.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args([
            "data",
            "generate",
            "--quiet",
            "--meters",
            "200",
            "--intervals",
            "500",
            "-o",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success());
    let db = dir.join("repo.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .env("AMICN_KEYCHAIN", &kc)
        .args(["data", "import", "--quiet", "--ack", "--db"])
        .arg(&db)
        .arg(&csv)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let acked: u64 = first.trim_start_matches("committed ").parse().unwrap();
    // SIGKILL right after the first acknowledgement, in the middle of later batches.
    child.kill().unwrap();
    let _ = child.wait();
    let store = amicn_ami::repo::RepoStore::open(&db).unwrap();
    let held = store.stats().unwrap().objects;
    assert!(held >= acked, "{held} held, {acked} acknowledged");
    assert!(held < 100_001, "the kill came before the end ({held})");
    // An acknowledged reading (meter 1's first interval ends at 2026-01-01 00:15) is served.
    let names = amicn_ami::AmiNames::new("/lab-utility").unwrap();
    let name = names.reading(1, (1_767_225_600 + 900) * 1_000_000);
    let got = store
        .get(
            &amicn_tlv::Interest::new(name),
            amicn_ami::repo::PrefixMatch::Last,
        )
        .unwrap();
    assert!(got.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The short version of `amicn bench repo` (the full one imports 1,000,000 readings): every
/// figure present with its baseline, and the forwarder's counters confirm that the first serve
/// pass reached the repository and the second was answered from the Content Store.
#[test]
fn repo_benchmark_short_run_reports_every_figure_against_its_baseline() {
    let pg = tools_support::TestDatabase::create("bench_repo");
    let mut args = vec![
        "bench",
        "repo",
        "--readings",
        "3000",
        "--meters",
        "30",
        "--fetch",
        "400",
        "--json",
        "--quiet",
    ];
    if let Some(db) = &pg {
        args.extend(["--pg", db.url.as_str()]);
    }
    let out = Command::new(tools_support::amicn())
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = r["rows"].as_array().unwrap();
    let find = |needle: &str| {
        rows.iter()
            .find(|x| x["what"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no row {needle:?} in {rows:#?}"))
    };
    let engines: &[&str] = if pg.is_some() {
        &["sqlite", "postgres"]
    } else {
        &["sqlite"]
    };
    for e in engines {
        let imp = find(&format!("import → {e}"));
        assert_eq!(imp["count"], 3000);
        assert_eq!(imp["baseline"], "sign only");
        assert!(imp["ratio"].as_f64().unwrap() > 0.0);
        let serve = find(&format!("from {e}, CS empty"));
        assert_eq!(serve["baseline"], "CS hit");
        assert!(serve["ratio"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(r["failed_fetches"], 0);
    for p in r["cs"].as_array().unwrap() {
        let (hits, misses) = (p["hits"].as_u64().unwrap(), p["misses"].as_u64().unwrap());
        match p["pass"].as_str().unwrap() {
            "CS empty" => assert_eq!((hits, misses), (0, 400), "{p}"),
            _ => assert_eq!((hits, misses), (400, 0), "{p}"),
        }
    }
}

/// The short version of `amicn bench flood` (phases of 1 s instead of 5 s): every phase is
/// reported with the legitimate consumer's satisfaction and the forwarder's PIT and memory,
/// and the report files are written. (Figures are for the benchmark run, not asserted here.)
#[test]
fn flood_benchmark_short_run_reports_every_phase() {
    let out_dir = std::env::temp_dir().join(format!("amicn-flood-test-{}", std::process::id()));
    let out = Command::new(tools_support::amicn())
        .args([
            "bench",
            "flood",
            "--phase",
            "1s",
            "--factors",
            "10",
            "--json",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let phases = r["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "flood 10×", "recovery after 10×"]);
    assert!(phases[0]["legit_satisfied"].as_u64().unwrap() > 0, "{r}");
    assert!(
        phases[1]["attack_per_second"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    for p in phases {
        assert!(p["pit_max_seen"].as_u64().unwrap() <= r["pit_cap"].as_u64().unwrap());
        assert!(p["legit_timeouts"].as_u64().is_some(), "{p}");
    }
    // The forwarder's own counters at exit: the attackers' unsolicited Data and unroutable
    // Interests were dropped and counted by reason.
    let fwd = r["forwarders"].as_array().unwrap();
    assert_eq!(fwd.len(), 1, "{r}");
    assert!(fwd[0]["drops"]["unsolicited"].as_u64().unwrap() > 0, "{r}");
    assert!(fwd[0]["drops"]["no_route"].as_u64().unwrap() > 0, "{r}");
    for f in ["summary.json", "flood.csv", "flood.png"] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
