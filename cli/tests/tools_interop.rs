//! Interop with python-ndn 0.5 through `amicn fwd`, both ways: python-ndn fetches (and verifies
//! the Ed25519 signatures of) what `amicn put` publishes; `amicn get` fetches what a python-ndn
//! producer publishes. Skipped when python-ndn is missing, unless AMICN_REQUIRE_INTEROP=1.

#![allow(clippy::unwrap_used)]

mod tools_support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tools_support::{Proc, Scratch, python_ndn_available, run_ok, start_forwarder, start_put};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../interop/tools")
        .join(name)
}

#[test]
fn python_ndn_fetches_and_verifies_what_amicn_put_publishes() {
    if !python_ndn_available() {
        return;
    }
    let dir = Scratch::new("py-fetch");
    let (_fwd, uri) = start_forwarder(&dir);
    run_ok(&dir, &["key", "create", "/alice"]);
    let cert = dir.path("alice.cert");
    run_ok(
        &dir,
        &["key", "cert", "/alice", "-o", cert.to_str().unwrap()],
    );
    let input = dir.path("in.bin");
    let content = tools_support::random_bytes(300_000 + 5, 11);
    std::fs::write(&input, &content).unwrap();
    let (_put, _) = start_put(
        &dir,
        &[
            "--connect",
            &uri,
            "--identity",
            "/alice",
            "/interop/from-amicn",
            input.to_str().unwrap(),
        ],
    );

    let output = dir.path("out.bin");
    let sock = uri.trim_start_matches("unix://");
    let out = Command::new("python3")
        .arg(script("py_fetch.py"))
        .args([
            "--socket",
            sock,
            "--cert",
            cert.to_str().unwrap(),
            "/interop/from-amicn",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-ndn fetch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&output).unwrap() == content,
        "python-ndn got different bytes"
    );

    // A certificate of another key must make python-ndn's validator refuse the same object.
    run_ok(&dir, &["key", "create", "/bob"]);
    let bob = dir.path("bob.cert");
    run_ok(&dir, &["key", "cert", "/bob", "-o", bob.to_str().unwrap()]);
    let out = Command::new("python3")
        .arg(script("py_fetch.py"))
        .args([
            "--socket",
            sock,
            "--cert",
            bob.to_str().unwrap(),
            "/interop/from-amicn",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "python-ndn accepted segments under the wrong key"
    );
}

/// Runs py_produce.py signing with `sign` and fetches its object with `amicn get` (`extra`
/// arguments, `{cert}` replaced by the producer's certificate file); returns the summary JSON.
fn get_from_python(sign: &str, extra: &[&str]) -> serde_json::Value {
    let dir = Scratch::new(&format!("py-produce-{sign}"));
    let (_fwd, uri) = start_forwarder(&dir);
    let input = dir.path("in.bin");
    let content = tools_support::random_bytes(200_000 + 99, 12);
    std::fs::write(&input, &content).unwrap();
    let sock = uri.trim_start_matches("unix://").to_owned();
    let cert = dir.path("py.cert");
    let mut child = Command::new("python3")
        .arg(script("py_produce.py"))
        .args([
            "--socket",
            &sock,
            "--sign",
            sign,
            "--cert-out",
            cert.to_str().unwrap(),
            "/interop/from-python",
            input.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("py.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _producer = Proc {
        child,
        what: "py_produce",
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("READY"),
        "python producer did not start: {line:?} {}",
        std::fs::read_to_string(dir.path("py.log")).unwrap_or_default()
    );

    let output = dir.path("out.bin");
    let cert_arg = cert.to_str().unwrap().to_owned();
    let mut args = vec![
        "get",
        "--connect",
        &uri,
        "--json",
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend(
        extra
            .iter()
            .map(|a| if *a == "{cert}" { cert_arg.as_str() } else { a }),
    );
    args.push("/interop/from-python");
    let summary = run_ok(&dir, &args);
    assert!(
        std::fs::read(&output).unwrap() == content,
        "amicn get produced different bytes"
    );
    let j: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(j["segments"].as_u64(), Some(26));
    j
}

#[test]
fn amicn_get_fetches_what_a_python_ndn_producer_publishes() {
    if !python_ndn_available() {
        return;
    }
    get_from_python("digest", &["--integrity-only"]);
}

/// ECDSA P-256 (the default key type of python-ndn and ndn-cxx) and RSA: verified against the
/// producer's certificate as trust anchor, and in integrity mode with the certificate fetched
/// by KeyLocator over the network.
#[test]
fn amicn_get_verifies_python_ndn_ecdsa_and_rsa_segments() {
    if !python_ndn_available() {
        return;
    }
    for sign in ["ecdsa", "rsa"] {
        let j = get_from_python(sign, &["--trust-anchor", "{cert}"]);
        assert_eq!(
            j["trust"].as_str(),
            Some("anchored: signers must chain to 1 trust anchor(s)")
        );
        let j = get_from_python(sign, &["--integrity-only"]);
        assert!(
            j["trust"].as_str().unwrap().starts_with("integrity only"),
            "{j}"
        );
    }
}
