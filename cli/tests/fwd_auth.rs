//! Management command authorisation through a real `amicn fwd` process: with an
//! `[[authorization]]` entry granting `rib` and `cs` to one operator certificate, a command that
//! key signs runs; one signed by another key, an unsigned (DigestSha256) one, a replayed one and
//! one for a module the key is not granted are each answered 403 and counted by reason in the
//! stats snapshot. Without an entry, unsigned commands still run. python-ndn 0.5 registers a
//! prefix with a command its keychain's ECDSA key signs when that key's certificate is granted
//! `rib`, and is refused when it is not (skipped without python-ndn unless
//! AMICN_REQUIRE_INTEROP=1).

#![allow(clippy::unwrap_used, missing_docs)]

mod tools_support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amicn_kms::keychain::Keychain;
use amicn_tlv::mgmt::{ControlParameters, ControlResponse};
use amicn_tlv::{Component, Interest, Name, NetPacket, Received, decode_packet, split_first_tlv};
use bytes::Bytes;
use tools_support::{Proc, Scratch, amicn, python_ndn_available, run, run_ok, wait_for_socket};

fn start(dir: &Scratch, config: Option<&Path>) -> (Proc, String) {
    match config {
        Some(cfg) => start_with(dir, &["--config", cfg.to_str().unwrap()]),
        None => start_with(dir, &[]),
    }
}

fn start_with(dir: &Scratch, extra: &[&str]) -> (Proc, String) {
    let sock = dir.path("fwd.sock");
    let mut c = Command::new(amicn());
    c.args(["fwd", "--no-tcp", "--no-udp", "--socket"])
        .arg(&sock)
        .arg("--stats-json")
        .arg(dir.path("stats.json"))
        .args(extra);
    let child = c
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("fwd.log")).unwrap())
        .spawn()
        .unwrap();
    let p = Proc { child, what: "fwd" };
    wait_for_socket(&sock);
    (p, format!("unix://{}", sock.display()))
}

/// SIGTERM, wait for a clean exit, return the stats snapshot.
fn stop(mut fwd: Proc, dir: &Scratch) -> serde_json::Value {
    let pid = fwd.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = fwd.child.try_wait().unwrap() {
            assert!(s.success(), "forwarder exit status {s}");
            break;
        }
        assert!(Instant::now() < deadline, "forwarder ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap()
}

fn admin(dir: &Scratch, uri: &str, args: &[&str]) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend(["--transport", uri]);
    let out = run(dir, &all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sends one Interest wire and returns the status code of the ControlResponse answering it.
fn exchange(sock: &Path, wire: &[u8]) -> u64 {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(wire).unwrap();
    let mut buf = Vec::new();
    loop {
        while let Some(n) = split_first_tlv(&buf).unwrap() {
            let packet = Bytes::from(buf.drain(..n).collect::<Vec<u8>>());
            if let Ok(Received {
                packet: NetPacket::Data(d),
                ..
            }) = decode_packet(packet)
            {
                return ControlResponse::decode(d.content.clone())
                    .unwrap()
                    .status_code;
            }
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).expect("no answer from the forwarder");
        assert!(n > 0, "forwarder closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A `rib/register` for `prefix` (on the requesting face) signed by `key` of the keychain.
fn signed_register(keychain: &Path, identity: &str, prefix: &str) -> Bytes {
    let kc = Keychain::open(keychain).unwrap();
    let id: Name = identity.parse().unwrap();
    let key = kc
        .keys()
        .unwrap()
        .into_iter()
        .find(|k| id.is_prefix_of(k))
        .unwrap();
    let signer = kc.private_key(&key).unwrap().into_signer();
    let cp = ControlParameters {
        name: Some(prefix.parse().unwrap()),
        ..ControlParameters::default()
    };
    let name: Name = "/localhost/nfd/rib/register".parse().unwrap();
    let mut interest = Interest::new(name.append(Component::generic(cp.encode().to_vec())));
    interest.nonce = Some(0x0102_0304);
    let mut info = signer.signature_info();
    info.time_ms = Some(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    info.nonce = Some(vec![9; 8].into());
    interest.sign_with(info, |p| signer.sign(p))
}

#[test]
fn only_granted_signed_commands_run() {
    let dir = Scratch::new("fwd-auth");
    run_ok(&dir, &["key", "create", "/op"]);
    run_ok(&dir, &["key", "create", "/intruder"]);
    let cert = dir.path("op.cert");
    run_ok(&dir, &["key", "cert", "/op", "-o", cert.to_str().unwrap()]);
    let cfg = dir.path("fwd.toml");
    // A relative certfile is found next to the config file.
    std::fs::write(
        &cfg,
        "[[authorization]]\ncertfile = \"op.cert\"\nprivileges = [\"rib\", \"cs\"]\n",
    )
    .unwrap();
    let (fwd, uri) = start(&dir, Some(&cfg));

    let (ok, out) = admin(
        &dir,
        &uri,
        &["cs", "config", "--capacity", "500", "--sign-with", "/op"],
    );
    assert!(ok, "authorised command refused: {out}");
    // Another key, and DigestSha256 (no key at all): refused, and nothing changes.
    let (ok, out) = admin(
        &dir,
        &uri,
        &[
            "cs",
            "config",
            "--capacity",
            "7",
            "--sign-with",
            "/intruder",
        ],
    );
    assert!(!ok && out.contains("403"), "{out}");
    let (ok, out) = admin(&dir, &uri, &["cs", "config", "--capacity", "8"]);
    assert!(!ok && out.contains("403"), "{out}");
    // The key is not granted strategy-choice.
    let (ok, out) = admin(
        &dir,
        &uri,
        &[
            "strategy",
            "set",
            "/x",
            "/localhost/nfd/strategy/multicast",
            "--sign-with",
            "/op",
        ],
    );
    assert!(!ok && out.contains("403"), "{out}");
    let (ok, info) = admin(&dir, &uri, &["cs", "info"]);
    assert!(ok, "{info}");
    assert!(info.contains("500"), "capacity should be 500: {info}");

    // The same signed command twice: the second is a replay.
    let wire = signed_register(&dir.keychain(), "/op", "/auth/replayed");
    let sock = dir.path("fwd.sock");
    assert_eq!(exchange(&sock, &wire), 200);
    assert_eq!(exchange(&sock, &wire), 403);

    let snap = stop(fwd, &dir);
    let m = &snap["management"];
    let refused = &m["refused"];
    assert_eq!(refused["untrusted_signer"], 1, "{m}");
    assert_eq!(refused["unsigned"], 1, "{m}");
    assert_eq!(refused["not_granted"], 1, "{m}");
    assert_eq!(refused["replay"], 1, "{m}");
    assert_eq!(refused["bad_signature"], 0, "{m}");
    assert_eq!(m["unauthorized"], 4, "{m}");
}

#[test]
fn without_authorization_unsigned_commands_run() {
    let dir = Scratch::new("fwd-noauth");
    let (fwd, uri) = start(&dir, None);
    let (ok, out) = admin(&dir, &uri, &["cs", "config", "--capacity", "321"]);
    assert!(ok, "{out}");
    let (_, info) = admin(&dir, &uri, &["cs", "info"]);
    assert!(info.contains("321"), "{info}");
    let snap = stop(fwd, &dir);
    assert_eq!(snap["management"]["unauthorized"], 0, "{snap}");
}

#[test]
fn bad_authorization_entries_are_one_line_errors() {
    let dir = Scratch::new("fwd-auth-bad");
    let cfg = dir.path("bad.toml");
    for (text, want) in [
        (
            "[[authorization]]\ncertfile = \"any\"\nprivileges = [\"routes\"]\n",
            "authorization[0].privileges",
        ),
        (
            "[[authorization]]\ncertfile = \"missing.cert\"\nprivileges = [\"rib\"]\n",
            "missing.cert",
        ),
        ("[[authorization]]\nprivileges = [\"rib\"]\n", "certfile"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = run(&dir, &["fwd", "--check", "--config", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} accepted");
        assert!(err.contains(want), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = run(
        &dir,
        &["fwd", "--check", "--no-unix", "--authorize", "any=rib,cs"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("certfile = \"any\"\nprivileges = [\"cs\", \"rib\"]"),
        "{text}"
    );
    let out = run(&dir, &["fwd", "--check", "--no-unix"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no [[authorization]]"), "{text}");
    let out = run(&dir, &["fwd", "--check", "--authorize", "rib"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--authorize"),
        "{err}"
    );
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../interop/forwarder/signed_register.py"
);

fn python_register(dir: &Scratch, prefix: &str) -> String {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg("--keychain")
        .arg(dir.path("pykc"))
        .args(["register", prefix])
        .env(
            "NDN_CLIENT_TRANSPORT",
            format!("unix://{}", dir.path("fwd.sock").display()),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "signed_register.py: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn python_ndn_registers_with_a_granted_key_only() {
    if !python_ndn_available() {
        return;
    }
    let dir = Scratch::new("fwd-auth-py");
    let py_cert = dir.path("py.cert");
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg("--keychain")
        .arg(dir.path("pykc"))
        .args(["cert", "/py/operator", py_cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(&dir, &["key", "create", "/op"]);
    let op_cert = dir.path("op.cert");
    run_ok(
        &dir,
        &["key", "cert", "/op", "-o", op_cert.to_str().unwrap()],
    );

    // python-ndn's certificate is granted rib: the registration runs (its route leaves with
    // the script's face, so the answer and the counters tell).
    let grant = format!("{}=rib", py_cert.display());
    let (fwd, _) = start_with(&dir, &["--authorize", &grant]);
    let out = python_register(&dir, "/py/granted");
    assert!(out.contains("STATUS 200"), "{out}");
    let snap = stop(fwd, &dir);
    assert_eq!(snap["management"]["unauthorized"], 0, "{snap}");
    assert_eq!(snap["management"]["commands"], 1, "{snap}");

    // Only amicn's key is granted rib (python-ndn's only faces): refused and counted.
    let rib = format!("{}=rib", op_cert.display());
    let faces = format!("{}=faces", py_cert.display());
    let (fwd, _) = start_with(&dir, &["--authorize", &rib, "--authorize", &faces]);
    let out = python_register(&dir, "/py/refused");
    assert!(out.contains("STATUS 403"), "{out}");
    let snap = stop(fwd, &dir);
    assert_eq!(snap["management"]["refused"]["not_granted"], 1, "{snap}");
}
