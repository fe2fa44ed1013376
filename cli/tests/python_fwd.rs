//! python-ndn 0.5 applications through `amicn fwd`: producers register with the old command
//! form (NDNApp v1) and the v0.3 signed form (appv2), consumers fetch through the forwarder, an
//! unrouted name comes back as Nack NoRoute, and a segmented object is fetched whole. Finally
//! SIGTERM stops the forwarder cleanly: the socket file is removed and the stats snapshot written.
//!
//! Skipped (with a message) when python-ndn is not installed, unless AMICN_REQUIRE_INTEROP=1.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../interop/forwarder");

/// A child process killed (by its own pid) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_ndn_available() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, sys; sys.exit(0 if m.version('python-ndn').startswith('0.5') else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn skip_or_fail() -> bool {
    if python_ndn_available() {
        return false;
    }
    if std::env::var("AMICN_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "python-ndn 0.5 is required (AMICN_REQUIRE_INTEROP=1): pip install python-ndn==0.5.2"
        );
    }
    eprintln!("SKIPPED: python-ndn 0.5 not installed (pip install python-ndn==0.5.2)");
    true
}

fn scratch() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("amicn-pyfwd-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start_forwarder(dir: &Path) -> (Proc, PathBuf, PathBuf) {
    let sock = dir.join("nfd.sock");
    let stats = dir.join("stats.json");
    let child = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args(["fwd", "--no-tcp", "--no-udp", "--socket"])
        .arg(&sock)
        .arg("--stats-json")
        .arg(&stats)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "forwarder did not open {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, sock, stats)
}

fn python(sock: &Path, script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(format!("{SCRIPTS}/{script}"))
        .args(args)
        .env("NDN_CLIENT_TRANSPORT", format!("unix://{}", sock.display()))
        .stdin(Stdio::null());
    c
}

/// Starts a producer and waits for its READY line.
fn producer(sock: &Path, args: &[&str]) -> Proc {
    let mut child = python(sock, "producer.py", args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let p = Proc(child);
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) if l.starts_with("READY") => p,
        other => panic!("producer {args:?} did not register: {other:?}"),
    }
}

/// Runs a consumer to completion (bounded), returning its stdout; panics on failure.
fn consumer(sock: &Path, args: &[&str]) -> String {
    let mut child = Proc(
        python(sock, "consumer.py", args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            use std::io::Read;
            if let Some(mut o) = child.0.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            if let Some(mut e) = child.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(
                status.success(),
                "consumer {args:?} failed ({status}):\n{out}\n{err}"
            );
            return out;
        }
        assert!(Instant::now() < deadline, "consumer {args:?} timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn python_ndn_apps_through_amicn_fwd() {
    if skip_or_fail() {
        return;
    }
    let dir = scratch();
    let (mut fwd, sock, stats) = start_forwarder(&dir);

    // Old-form registration (NDNApp v1) and new-form (appv2), each serving segments too.
    let _p1 = producer(
        &sock,
        &[
            "--api",
            "v1",
            "--segments",
            "40",
            "--segment-size",
            "2000",
            "/interop/v1",
        ],
    );
    let _p2 = producer(
        &sock,
        &[
            "--api",
            "v2",
            "--segments",
            "5",
            "--segment-size",
            "700",
            "/interop/v2",
        ],
    );

    let out = consumer(
        &sock,
        &[
            "--api",
            "v1",
            "fetch",
            "/interop/v1/a",
            "hello /interop/v1/a",
        ],
    );
    assert!(out.contains("OK fetch /interop/v1/a"), "{out}");
    let out = consumer(
        &sock,
        &[
            "--api",
            "v2",
            "fetch",
            "/interop/v2/b",
            "hello /interop/v2/b",
        ],
    );
    assert!(out.contains("OK fetch"), "{out}");
    // Across the two registration forms: a v2 consumer fetching from the v1 producer.
    let out = consumer(
        &sock,
        &[
            "--api",
            "v2",
            "fetch",
            "/interop/v1/c",
            "hello /interop/v1/c",
        ],
    );
    assert!(out.contains("OK fetch"), "{out}");

    // No route: python-ndn raises InterestNack with reason NoRoute.
    let out = consumer(&sock, &["--api", "v1", "nack", "/interop/none/x"]);
    assert!(out.contains("OK nack NoRoute"), "{out}");
    let out = consumer(&sock, &["--api", "v2", "nack", "/interop/none/y"]);
    assert!(out.contains("OK nack NoRoute"), "{out}");

    // Segmented fetches with several Interests in flight.
    let out = consumer(
        &sock,
        &["--api", "v1", "segments", "/interop/v1", "40", "2000"],
    );
    assert!(out.contains("OK segments 40"), "{out}");
    let out = consumer(
        &sock,
        &["--api", "v2", "segments", "/interop/v2", "5", "700"],
    );
    assert!(out.contains("OK segments 5"), "{out}");

    // SIGTERM: clean shutdown removes the socket file and writes the counters.
    let pid = fwd.0.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = fwd.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "forwarder ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "forwarder exit status {status}");
    assert!(!sock.exists(), "socket file left behind");
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(snap["in_interests"].as_u64().unwrap() >= 47, "{snap}");
    assert!(snap["out_nacks"].as_u64().unwrap() >= 2, "{snap}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = scratch();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[cs]\ncapacity = \"lots\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args(["fwd", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("capacity"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_amicn"))
        .args(["fwd", "--route", "/a=ether://x", "--socket"])
        .arg(dir.join("s.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ether://x"));
    let _ = std::fs::remove_dir_all(&dir);
}
