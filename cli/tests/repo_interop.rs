//! Meter data sets end to end: `amicn data generate` → `amicn data import` (signed Data in the
//! reading format) → `amicn repo serve` behind `amicn fwd` → python-ndn fetches, by exact name
//! and by prefix, byte-identical to what was signed and stored, with the Ed25519 signature
//! checked by python-ndn. Skipped when python-ndn is missing, unless AMICN_REQUIRE_INTEROP=1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools_support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use amicn_ami::reading::{Obis, Reading};
use amicn_ami::repo::{PrefixMatch, RepoStore};
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use tools_support::{Proc, Scratch, TestDatabase, python_ndn_available, run_ok, start_forwarder};

fn py_fetch(sock: &str, cert: &str, name: &str, prefix: bool, out: &PathBuf) -> Bytes {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/tools/py_fetch_one.py");
    let mut c = Command::new("python3");
    c.arg(script).args(["--socket", sock, "--cert", cert]);
    if prefix {
        c.arg("--can-be-prefix");
    }
    let o = c.arg(name).arg(out).output().unwrap();
    assert!(
        o.status.success(),
        "python-ndn fetch of {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Bytes::from(std::fs::read(out).unwrap())
}

#[test]
fn python_ndn_fetches_imported_readings_byte_identical() {
    if !python_ndn_available() {
        return;
    }
    let dir = Scratch::new("repo-py");
    let db = dir.path("repo.db");
    imported_readings_fetched_byte_identical(&dir, db.to_str().unwrap());
}

/// The same on the PostgreSQL engine: `data import` into the server, `repo serve` from it.
#[test]
fn python_ndn_fetches_imported_readings_from_postgres() {
    if !python_ndn_available() {
        return;
    }
    let Some(pg) = TestDatabase::create("repo_py") else {
        return;
    };
    let dir = Scratch::new("repo-py-pg");
    imported_readings_fetched_byte_identical(&dir, &pg.url);
}

fn imported_readings_fetched_byte_identical(dir: &Scratch, db: &str) {
    let csv = dir.path("readings.csv");
    run_ok(
        dir,
        &[
            "data",
            "generate",
            "--meters",
            "5",
            "--intervals",
            "8",
            "--start",
            "2026-03-02",
            "--seed",
            "3",
            "--quiet",
            "-o",
            csv.to_str().unwrap(),
        ],
    );
    run_ok(dir, &["key", "create", "/lab-utility/data"]);
    let cert = dir.path("data.cert");
    run_ok(
        dir,
        &[
            "key",
            "cert",
            "/lab-utility/data",
            "-o",
            cert.to_str().unwrap(),
        ],
    );
    run_ok(
        dir,
        &[
            "data",
            "import",
            csv.to_str().unwrap(),
            "--db",
            db,
            "--utility",
            "/lab-utility",
            "--identity",
            "/lab-utility/data",
            "--quiet",
        ],
    );
    let (_fwd, uri) = start_forwarder(dir);
    let mut child = Command::new(tools_support::amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .args([
            "repo",
            "serve",
            "--db",
            db,
            "--prefix",
            "/lab-utility/ami/meter",
            "--connect",
            &uri,
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("repo.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _repo = Proc {
        child,
        what: "repo",
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("serving"), "repo printed {line:?}");
    let sock = uri.trim_start_matches("unix://");

    // By prefix: the newest reading of meter 3 (the last in canonical order).
    let got = py_fetch(
        sock,
        cert.to_str().unwrap(),
        "/lab-utility/ami/meter/3/reading",
        true,
        &dir.path("a.bin"),
    );
    let d = Data::decode(got.clone()).unwrap();
    let r = Reading::decode(&d.content).unwrap();
    assert_eq!(r.meter, 3);
    let last_start = 1_772_409_600u64 + 7 * 900; // 2026-03-02 + 7 intervals
    assert_eq!(r.start_us, last_start * 1_000_000);
    assert!(r.register(Obis::ACTIVE_IMPORT_ENERGY).is_some());
    // Byte for byte what the repository holds, which is what `data import` signed.
    let store = RepoStore::open(db).unwrap();
    let held = store
        .get(&Interest::new(d.name.clone()), PrefixMatch::Last)
        .unwrap()
        .unwrap();
    assert_eq!(got, held);
    // By exact name, also through the forwarder's cache path: the same bytes.
    let exact = d.name.to_string();
    let again = py_fetch(
        sock,
        cert.to_str().unwrap(),
        &exact,
        false,
        &dir.path("b.bin"),
    );
    assert_eq!(again, held);
    // 40 readings plus the publisher's certificate.
    assert_eq!(store.stats().unwrap().objects, 41);
    let _ = Name::from_uri(&exact).unwrap();

    // `amicn data query` fetches meters 2-3 over the whole period, verifies each signature and
    // returns exactly the imported rows.
    let q = dir.path("q.csv");
    run_ok(
        dir,
        &[
            "data",
            "query",
            "--meters",
            "2-3",
            "--from",
            "2026-03-02",
            "--to",
            "1772416800",
            "--utility",
            "/lab-utility",
            "--cert",
            cert.to_str().unwrap(),
            "--connect",
            &uri,
            "--quiet",
            "-o",
            q.to_str().unwrap(),
        ],
    );
    let fetched = std::fs::read_to_string(&q).unwrap();
    let imported = std::fs::read_to_string(&csv).unwrap();
    let rows = |text: &str, keep: usize| -> Vec<String> {
        text.lines()
            .skip(1)
            .filter(|l| l.starts_with("2,") || l.starts_with("3,"))
            .map(|l| l.split(',').take(keep).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(rows(&fetched, 9), rows(&imported, 9));
    assert_eq!(rows(&fetched, 9).len(), 16);

    // Against another publisher's certificate every reading is refused, and the query fails.
    run_ok(dir, &["key", "create", "/lab-utility/other"]);
    let other = dir.path("other.cert");
    run_ok(
        dir,
        &[
            "key",
            "cert",
            "/lab-utility/other",
            "-o",
            other.to_str().unwrap(),
        ],
    );
    let out = tools_support::run(
        dir,
        &[
            "data",
            "query",
            "--meters",
            "2",
            "--from",
            "2026-03-02",
            "--to",
            "1772416800",
            "--utility",
            "/lab-utility",
            "--cert",
            other.to_str().unwrap(),
            "--connect",
            &uri,
            "-o",
            dir.path("r.csv").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("8 rejected") && err.contains("failed verification"),
        "{err}"
    );
}

fn encoded(uri: &str, content: &'static [u8]) -> Bytes {
    Data::new(Name::from_uri(uri).unwrap(), Bytes::from_static(content)).sign_digest_sha256()
}

/// `repo serve --publisher` takes signed insert commands from that key only, for names under
/// its prefixes, and acknowledges after the commit; `repo insert --remote` sends them. What was
/// inserted is then served through the forwarder.
#[test]
fn signed_insert_commands_are_stored_only_from_the_configured_publisher() {
    let dir = Scratch::new("repo-insert");
    for id in ["/lab-utility/pub", "/lab-utility/intruder"] {
        run_ok(&dir, &["key", "create", id]);
    }
    let cert = dir.path("pub.cert");
    run_ok(
        &dir,
        &[
            "key",
            "cert",
            "/lab-utility/pub",
            "-o",
            cert.to_str().unwrap(),
        ],
    );
    let good = dir.path("good.tlv");
    let mut bytes = Vec::new();
    for k in 0..30 {
        bytes.extend_from_slice(&encoded(&format!("/lab-utility/ami/x/{k}"), b"inserted"));
    }
    std::fs::write(&good, &bytes).unwrap();
    let foreign = dir.path("foreign.tlv");
    std::fs::write(&foreign, encoded("/other/ami/x/1", b"no")).unwrap();

    let (_fwd, uri) = start_forwarder(&dir);
    let db = dir.path("repo.db");
    let mut child = Command::new(tools_support::amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .args(["repo", "serve", "--db"])
        .arg(&db)
        .args(["--prefix", "/lab-utility/ami", "--publisher"])
        .arg(&cert)
        .args(["--connect", &uri])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("repo.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _repo = Proc {
        child,
        what: "repo",
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("serving"), "repo printed {line:?}");

    let insert = |identity: &str, file: &PathBuf| {
        tools_support::run(
            &dir,
            &[
                "repo",
                "insert",
                "--remote",
                "/localhost/amicn-repo",
                "--identity",
                identity,
                "--connect",
                &uri,
                file.to_str().unwrap(),
            ],
        )
    };
    let ok = insert("/lab-utility/pub", &good);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("stored 30 Data"), "{out}");
    // Acknowledged means committed: another process sees all of it at once.
    assert_eq!(RepoStore::open(&db).unwrap().stats().unwrap().objects, 30);
    // ... and the forwarder serves it.
    let got = run_ok(
        &dir,
        &["peek", "-p", "/lab-utility/ami/x/17", "--connect", &uri],
    );
    assert!(got.contains("inserted"), "{got}");

    // Another key of the same keychain is not a publisher of this repository: the trust rule
    // for insert commands refuses it.
    let no = insert("/lab-utility/intruder", &good);
    assert!(!no.status.success());
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(
        err.contains("403") && err.contains("trust rule \"repo-insert\""),
        "{err}"
    );
    // The publisher may not write outside the served prefix.
    let no = insert("/lab-utility/pub", &foreign);
    assert!(!no.status.success());
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(
        err.contains("403") && err.contains("may not write"),
        "{err}"
    );
    assert_eq!(RepoStore::open(&db).unwrap().stats().unwrap().objects, 30);

    // The status dataset, over the network: what it holds, served and refused.
    let status = run_ok(
        &dir,
        &[
            "repo",
            "stats",
            "--remote",
            "/localhost/amicn-repo",
            "--connect",
            &uri,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["objects"], 30, "{v}");
    assert_eq!(v["engine"], "sqlite");
    assert!(v["served"].as_u64().unwrap() >= 1, "{v}");
    let ins = &v["inserts"];
    for (k, want) in [
        ("accepted", 1),
        ("stored", 30),
        ("unauthenticated", 0),
        ("signer_refused", 1),
        ("forbidden", 1),
    ] {
        assert_eq!(ins[k], want, "{k} in {v}");
    }
}
