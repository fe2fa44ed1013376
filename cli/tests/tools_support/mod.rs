//! Helpers shared by the `tools_*` integration tests: a forwarder on a temporary Unix socket,
//! `amicn` child processes that are killed when dropped, and reproducible random files.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `amicn` binary under test.
pub fn amicn() -> &'static str {
    env!("CARGO_BIN_EXE_amicn")
}

/// A child process killed (by its own pid) when dropped.
pub struct Proc {
    pub child: Child,
    pub what: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "amicn-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
    pub fn keychain(&self) -> PathBuf {
        self.0.join("keychain")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// A throwaway database on the PostgreSQL test server that `AMICN_TEST_PG_URL` names (started
/// by `scripts/test`), dropped with the guard. `None` when no server is configured, which is an
/// error when `AMICN_REQUIRE_POSTGRES=1`.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create(tag: &str) -> Option<TestDatabase> {
        let Ok(admin) = std::env::var("AMICN_TEST_PG_URL") else {
            assert!(
                std::env::var("AMICN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "AMICN_REQUIRE_POSTGRES=1 but AMICN_TEST_PG_URL is not set"
            );
            eprintln!("PostgreSQL not tested: AMICN_TEST_PG_URL is not set");
            return None;
        };
        let name = format!("amicn_{tag}_{}_{}", std::process::id(), rand_suffix());
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Some(TestDatabase { admin, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Reproducible pseudo-random bytes from a seeded generator.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Starts `amicn fwd` on `<dir>/fwd.sock` (no TCP/UDP) and waits until it accepts connections.
pub fn start_forwarder(dir: &Scratch) -> (Proc, String) {
    let sock = dir.path("fwd.sock");
    let child = Command::new(amicn())
        .args(["fwd", "--no-tcp", "--no-udp", "--socket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("fwd.log")).unwrap())
        .spawn()
        .expect("spawn amicn fwd");
    let p = Proc { child, what: "fwd" };
    wait_for_socket(&sock);
    (p, format!("unix://{}", sock.display()))
}

/// Waits (at most 20 s) until a Unix socket accepts a connection.
pub fn wait_for_socket(sock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(sock).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {}", sock.display());
}

/// Runs `amicn <args>` to completion with the test keychain.
pub fn run(dir: &Scratch, args: &[&str]) -> Output {
    Command::new(amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .args(args)
        .output()
        .expect("run amicn")
}

/// Runs `amicn <args>` and insists on success; returns stdout.
pub fn run_ok(dir: &Scratch, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "amicn {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `amicn put <args>` and returns it with the versioned name it printed.
pub fn start_put(dir: &Scratch, args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(amicn())
        .env("AMICN_KEYCHAIN", dir.keychain())
        .arg("put")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("put.log")).unwrap())
        .spawn()
        .expect("spawn amicn put");
    let stdout = child.stdout.take().unwrap();
    let p = Proc { child, what: "put" };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.starts_with('/'),
        "amicn put printed {line:?}; log: {}",
        std::fs::read_to_string(dir.path("put.log")).unwrap_or_default()
    );
    (p, line.trim().to_owned())
}

/// True if python-ndn can be imported; panics instead when interop is required
/// (AMICN_REQUIRE_INTEROP=1, as `scripts/test` sets it).
pub fn python_ndn_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import ndn.app"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("AMICN_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!(
                "python-ndn is not installed but AMICN_REQUIRE_INTEROP=1 (pip install python-ndn==0.5.2)"
            );
        }
        eprintln!("skipping: python-ndn not installed (pip install python-ndn==0.5.2)");
    }
    ok
}
