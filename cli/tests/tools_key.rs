//! `amicn key import` / `amicn key export --format safebag` with the ndn-cxx SafeBag vectors
//! (`kms/tests/identity_vectors/ndn-cxx-keys`), and an object published with an imported ECDSA
//! key fetched with the certificate ndn-cxx made as the trust anchor.

#![allow(clippy::unwrap_used)]

mod tools_support;

use tools_support::{Scratch, run, run_ok, start_forwarder, start_put};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kms/tests/identity_vectors/ndn-cxx-keys/"
);

fn vector(file: &str) -> String {
    format!("{VECTORS}{file}")
}

#[test]
fn safebag_import_export_round_trip() {
    let dir = Scratch::new("key-safebag");
    let pass = dir.path("pass.txt");
    std::fs::write(&pass, "amicn-vector\n").unwrap();
    let pass = pass.to_str().unwrap();
    let wrong = dir.path("wrong.txt");
    std::fs::write(&wrong, "amicn-vectoR\n").unwrap();

    // Wrong passphrase: refused with its own message, nothing stored.
    let out = run(
        &dir,
        &[
            "key",
            "import",
            &vector("ecdsa.safebag.b64"),
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(run_ok(&dir, &["key", "list"]).trim(), "");

    let ecdsa = run_ok(
        &dir,
        &[
            "key",
            "import",
            &vector("ecdsa.safebag.b64"),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(ecdsa.starts_with("/example/ecdsa/KEY/"), "{ecdsa}");
    // The passphrase from the environment works too.
    let out = std::process::Command::new(tools_support::amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .env("VECTOR_PASS", "amicn-vector")
        .args(["key", "import", &vector("rsa.safebag.b64")])
        .args(["--passphrase-env", "VECTOR_PASS"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = run_ok(&dir, &["key", "list"]);
    assert!(
        list.contains("/example/ecdsa/KEY/") && list.contains("/example/rsa/KEY/"),
        "{list}"
    );
    let show = run_ok(&dir, &["key", "show", "/example/rsa", "--json"]);
    let j: serde_json::Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(j["key_type"], "RSA");

    // Export as a SafeBag, import into a second keychain: the same key.
    let bag = run_ok(
        &dir,
        &[
            "key",
            "export",
            "/example/ecdsa",
            "--format",
            "safebag",
            "--passphrase-file",
            pass,
        ],
    );
    let bag_file = dir.path("ecdsa.out.b64");
    std::fs::write(&bag_file, &bag).unwrap();
    let other = Scratch::new("key-safebag-2");
    let back = run_ok(
        &other,
        &[
            "key",
            "import",
            bag_file.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert_eq!(back, ecdsa);
    let a = run_ok(&dir, &["key", "show", "/example/ecdsa", "--json"]);
    let b = run_ok(&other, &["key", "show", "/example/ecdsa", "--json"]);
    assert_eq!(a, b);

    // Too few iterations and a missing passphrase are refused.
    let out = run(
        &dir,
        &[
            "key",
            "export",
            "/example/ecdsa",
            "--format",
            "safebag",
            "--iterations",
            "2048",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the minimum"));
    let out = run(
        &dir,
        &["key", "export", "/example/ecdsa", "--format", "safebag"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase"));
    // A truncated SafeBag is not taken for anything.
    let cut = dir.path("cut.b64");
    std::fs::write(&cut, &bag[..bag.len() / 2]).unwrap();
    let out = run(
        &dir,
        &[
            "key",
            "import",
            cut.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn object_signed_by_an_imported_ecdsa_key_verifies_under_the_ndn_cxx_certificate() {
    let dir = Scratch::new("key-safebag-get");
    let (_fwd, uri) = start_forwarder(&dir);
    let pass = dir.path("pass.txt");
    std::fs::write(&pass, "amicn-vector").unwrap();
    run_ok(
        &dir,
        &[
            "key",
            "import",
            &vector("ecdsa.safebag.b64"),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    let input = dir.path("in.bin");
    let content = tools_support::random_bytes(20_000, 7);
    std::fs::write(&input, &content).unwrap();
    let (_put, versioned) = start_put(
        &dir,
        &[
            "--connect",
            &uri,
            "--identity",
            "/example/ecdsa",
            "/example/ecdsa/file",
            input.to_str().unwrap(),
        ],
    );
    let output = dir.path("out.bin");
    let summary = run_ok(
        &dir,
        &[
            "get",
            "--connect",
            &uri,
            "--trust-anchor",
            &vector("ecdsa.cert.b64"),
            "--json",
            "-o",
            output.to_str().unwrap(),
            "/example/ecdsa/file",
        ],
    );
    assert_eq!(std::fs::read(&output).unwrap(), content);
    let j: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(j["name"], versioned.as_str());
    // The RSA vector's certificate is not this signer's anchor.
    let out = run(
        &dir,
        &[
            "get",
            "--connect",
            &uri,
            "--trust-anchor",
            &vector("rsa.cert.b64"),
            "--retries",
            "1",
            "-o",
            output.to_str().unwrap(),
            "/example/ecdsa/file",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn get_and_peek_apply_a_trust_policy_file_and_name_the_refusing_rule() {
    let dir = Scratch::new("key-trust-policy");
    let (_fwd, uri) = start_forwarder(&dir);
    let pass = dir.path("pass.txt");
    std::fs::write(&pass, "amicn-vector").unwrap();
    run_ok(
        &dir,
        &[
            "key",
            "import",
            &vector("ecdsa.safebag.b64"),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    let input = dir.path("in.bin");
    let content = tools_support::random_bytes(12_000, 11);
    std::fs::write(&input, &content).unwrap();
    let (_put, versioned) = start_put(
        &dir,
        &[
            "--connect",
            &uri,
            "--identity",
            "/example/ecdsa",
            "/example/ecdsa/file",
            input.to_str().unwrap(),
        ],
    );
    let allow = dir.path("allow.toml");
    std::fs::write(
        &allow,
        "[[rule]]\nid = \"ecdsa-files\"\ndata = \"/example/<k>/file/...\"\nsigner = \"/example/<k>/KEY/...\"\n",
    )
    .unwrap();
    let deny = dir.path("deny.toml");
    std::fs::write(
        &deny,
        "[[rule]]\nid = \"rsa-only\"\ndata = \"/example/...\"\nsigner = \"/example/rsa/KEY/...\"\n",
    )
    .unwrap();
    let output = dir.path("out.bin");
    let get = |policy: &std::path::Path| {
        run(
            &dir,
            &[
                "get",
                "--connect",
                &uri,
                "--trust-anchor",
                &vector("ecdsa.cert.b64"),
                "--trust-policy",
                policy.to_str().unwrap(),
                "--verify-retries",
                "1",
                "--json",
                "-o",
                output.to_str().unwrap(),
                "/example/ecdsa/file",
            ],
        )
    };
    let ok = get(&allow);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(std::fs::read(&output).unwrap(), content);
    let j: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&ok.stdout).trim()).unwrap();
    assert_eq!(j["name"], versioned.as_str());
    let trust = j["trust"].as_str().unwrap();
    assert!(trust.contains("1 rule(s): ecdsa-files"), "{trust}");
    // A policy letting only the RSA key sign under /example: refused, naming the rule.
    let refused = get(&deny);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("rsa-only"), "{err}");
    assert!(err.contains("wrong signer"), "{err}");
    // peek: the same two outcomes for the first segment.
    let seg0 = format!("{versioned}/seg=0");
    let peek = |policy: &std::path::Path| {
        run(
            &dir,
            &[
                "peek",
                "--connect",
                &uri,
                "--trust-anchor",
                &vector("ecdsa.cert.b64"),
                "--trust-policy",
                policy.to_str().unwrap(),
                "-p",
                &seg0,
            ],
        )
    };
    let ok = peek(&allow);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("ecdsa-files"));
    let refused = peek(&deny);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("rsa-only"));
    // A policy alone is not a trust anchor: peek says how to add one.
    let alone = run(
        &dir,
        &[
            "peek",
            "--connect",
            &uri,
            "--trust-policy",
            allow.to_str().unwrap(),
            &seg0,
        ],
    );
    assert!(!alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stderr).contains("--trust-anchor"));
}

#[test]
fn python_ndn_file_tpm_key_imports_with_its_certificate() {
    if !tools_support::python_ndn_available() {
        return;
    }
    let dir = Scratch::new("key-pytpm");
    let tpm = dir.path("tpm");
    std::fs::create_dir_all(&tpm).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kms/tests/identity_vectors/py_tpm_keys.py"
        ))
        .arg(&tpm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().next().unwrap();
    let mut parts = line.split(' ');
    let (_, key_file, cert_hex) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let cert = dir.path("py.cert");
    std::fs::write(&cert, hex::decode(cert_hex).unwrap()).unwrap();
    let key = run_ok(
        &dir,
        &[
            "key",
            "import",
            key_file,
            "--certificate",
            cert.to_str().unwrap(),
        ],
    );
    assert!(key.starts_with("/py/tpm-ec/KEY/"), "{key}");
    let show = run_ok(&dir, &["key", "show", "/py/tpm-ec", "--json"]);
    let j: serde_json::Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(j["key_type"], "ECDSA P-256");
    // A certificate of another key is refused.
    let out = run(
        &dir,
        &[
            "key",
            "import",
            key_file,
            "--certificate",
            &vector("ecdsa.cert.b64"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not belong"));
}
