//! Data sets encrypted under the KMS's keys: `data import --encrypt meter|broadcast|project:P
//! --key-node NODE` against a running KMS (provisioned with `amicn pki`, meters enrolled), the
//! repository holding only ciphertext, and `data query --key-node` decrypting exactly the
//! imported rows for the node that holds the keys and for no other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use amicn_ami::repo::{PrefixMatch, RepoStore};
use amicn_kms::envelope::EncryptedContent;
use amicn_tlv::{Data, Interest, Name};
use tools_support::{Proc, Scratch, wait_for_socket};

/// `amicn ARGS` with the test keychain and the test forwarder as NFD's transport.
fn amicn(dir: &Scratch, sock: &Path, args: &[&str]) -> Output {
    Command::new(tools_support::amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .env("NDN_CLIENT_TRANSPORT", format!("unix://{}", sock.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn spawn(dir: &Scratch, sock: &Path, what: &'static str, args: &[&str]) -> Proc {
    let child = Command::new(tools_support::amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .env("NDN_CLIENT_TRANSPORT", format!("unix://{}", sock.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path(&format!("{what}.log"))).unwrap())
        .spawn()
        .unwrap();
    Proc { child, what }
}

/// The first 9 fields of the CSV rows of `meters`.
fn rows(text: &str, meters: &[&str]) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| meters.iter().any(|m| l.starts_with(&format!("{m},"))))
        .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn encrypted_data_sets_open_only_for_the_node_holding_the_key() {
    let dir = Scratch::new("dataset-crypto");
    let sock = dir.path("fwd.sock");
    let prov = dir.path("pki");
    let node = |n: &str| prov.join(n).join("node.toml").display().to_string();
    let run = |args: &[&str]| amicn(&dir, &sock, args);
    ok(run(&[
        "pki",
        "--out",
        prov.to_str().unwrap(),
        "--meters",
        "4",
        "--meter-groups",
        "1",
        "--projects",
        "p1",
    ]));
    let csv = dir.path("r.csv");
    ok(run(&[
        "data",
        "generate",
        "--meters",
        "4",
        "--intervals",
        "6",
        "--start",
        "2026-03-02",
        "--quiet",
        "-o",
        csv.to_str().unwrap(),
    ]));
    ok(run(&["key", "create", "/example-utility/data"]));
    let cert = dir.path("data.cert");
    ok(run(&[
        "key",
        "cert",
        "/example-utility/data",
        "-o",
        cert.to_str().unwrap(),
    ]));

    let _fwd = spawn(
        &dir,
        &sock,
        "fwd",
        &[
            "fwd",
            "--socket",
            sock.to_str().unwrap(),
            "--no-tcp",
            "--no-udp",
        ],
    );
    wait_for_socket(&sock);
    let _kms = spawn(
        &dir,
        &sock,
        "kms",
        &[
            "kms",
            "serve",
            "-c",
            &node("kms"),
            "--rekey-interval",
            "300ms",
        ],
    );
    let until = Instant::now() + Duration::from_secs(30);
    while !prov.join("kms/state/ready").exists() {
        assert!(Instant::now() < until, "the KMS did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(run(&[
        "ami",
        "entitle",
        "-c",
        &node("dr"),
        "--meters",
        "1-4",
        "--set",
        "p1",
    ]));
    let meters = spawn(
        &dir,
        &sock,
        "meters",
        &[
            "meter",
            "-c",
            &node("meters-1"),
            "--sync-interval",
            "300ms",
            "--reading-interval",
            "1s",
        ],
    );

    // Encrypted per meter: the import succeeds once every meter has enrolled (the KMS hands
    // the MDMS reading keys of members only; before that a row is refused with its line).
    let db = dir.path("per-meter.db");
    let import = |db: &Path, kind: &str, key_node: &str| {
        run(&[
            "data",
            "import",
            csv.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--utility",
            "/example-utility",
            "--identity",
            "/example-utility/data",
            "--encrypt",
            kind,
            "--key-node",
            key_node,
            "--quiet",
        ])
    };
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = std::fs::remove_file(&db);
        let out = import(&db, "meter", &node("mdms"));
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("line ") && err.contains("no reading key"),
            "unexpected failure: {err}"
        );
        assert!(Instant::now() < until, "meters never enrolled: {err}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The repository holds ciphertext under each meter's reading key, not readings.
    let store = RepoStore::open(&db).unwrap();
    let name = Name::from_uri("/example-utility/ami/meter/2/reading").unwrap();
    let mut i = Interest::new(name);
    i.can_be_prefix = true;
    let wire = store.get(&i, PrefixMatch::Last).unwrap().unwrap();
    let d = Data::decode(wire).unwrap();
    assert!(amicn_ami::reading::Reading::decode(&d.content).is_err());
    let ec = EncryptedContent::decode(d.content.clone()).unwrap();
    assert!(
        ec.key_name
            .to_string()
            .starts_with("/example-utility/ami/meter/2/READ/"),
        "{}",
        ec.key_name
    );
    drop(store);
    // The meters have done their part (enrolled, so the KMS has their keys). Stopped, they no
    // longer hold routes to their own prefixes, which are longer than the repository's.
    drop(meters);

    // Served through the forwarder, the MDMS's keys open every row, exactly as imported.
    let mut repo = Command::new(tools_support::amicn())
        .env("NDN_CLIENT_TRANSPORT", format!("unix://{}", sock.display()))
        .args(["repo", "serve", "--db", db.to_str().unwrap()])
        .args(["--prefix", "/example-utility/ami/meter"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("repo.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(repo.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _repo = Proc {
        child: repo,
        what: "repo",
    };
    assert!(line.starts_with("serving"), "{line:?}");
    let query = |key_node: Option<&str>| {
        let mut a = vec![
            "data",
            "query",
            "--meters",
            "1-4",
            "--from",
            "2026-03-02",
            "--to",
            "1772415000", // 2026-03-02 + 6 intervals: only names that exist are asked for
            "--utility",
            "/example-utility",
            "--cert",
            cert.to_str().unwrap(),
            "--quiet",
        ];
        if let Some(n) = key_node {
            a.extend(["--key-node", n]);
        }
        run(&a)
    };
    let fetched = ok(query(Some(&node("mdms"))));
    let imported = std::fs::read_to_string(&csv).unwrap();
    let all = ["1", "2", "3", "4"];
    assert_eq!(rows(&fetched, &all), rows(&imported, &all));
    assert_eq!(rows(&fetched, &all).len(), 24);
    // Without keys, or with a node that holds no reading key, nothing opens.
    for key_node in [None, Some(node("pricing"))] {
        let out = query(key_node.as_deref());
        assert!(!out.status.success(), "{key_node:?} read the data set");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("failed verification or decryption"), "{err}");
    }

    // Under the project key, fetched as the DR operator; the key must come from a dr node.
    let db2 = dir.path("project.db");
    ok(import(&db2, "project:p1", &node("dr")));
    let store = RepoStore::open(&db2).unwrap();
    let mut i = Interest::new(Name::from_uri("/example-utility/ami/meter/1/reading").unwrap());
    i.can_be_prefix = true;
    let d = Data::decode(store.get(&i, PrefixMatch::First).unwrap().unwrap()).unwrap();
    let ec = EncryptedContent::decode(d.content.clone()).unwrap();
    assert!(
        ec.key_name
            .to_string()
            .starts_with("/example-utility/ami/dr/p1/"),
        "{}",
        ec.key_name
    );
    let out = import(&dir.path("wrong.db"), "project:p1", &node("mdms"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mdms node") && err.contains("dr node"),
        "{err}"
    );
}
