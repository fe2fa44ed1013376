//! `amicn fwd --check -c FILE` as an operator runs it: every limit and access key of the config
//! file shows up in the effective settings, and a bad value is refused in one line naming it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

const AMICN: &str = env!("CARGO_BIN_EXE_amicn");

/// A config file in a fresh directory; the directory goes when the value drops.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(tag: &str, text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("amicn-fwd-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fwd.toml");
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn check(file: &ConfigFile, flags: &[&str]) -> Output {
    Command::new(AMICN)
        .args(["fwd", "--check", "--no-tcp", "--no-udp", "-c"])
        .arg(&file.0)
        .args(flags)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Body of a config file with a socket in its own directory, plus `extra`.
fn config(tag: &str, extra: &str) -> ConfigFile {
    let sock = std::env::temp_dir().join(format!("amicn-fwd-config-sock-{}", std::process::id()));
    ConfigFile::new(
        tag,
        &format!(
            "socket = {:?}\n{extra}",
            sock.join("nfd.sock").display().to_string()
        ),
    )
}

#[test]
fn every_limit_and_access_key_is_reflected_by_check() {
    let file = config(
        "all",
        r#"socket_mode = "0640"
socket_group = "4242"
loopback_is_local = false
rng_seed = 1234567

[limits]
pit_max_bytes = 1048577
pit_max_bytes_per_face = 65537
max_interest_lifetime_ms = 30001
max_stream_faces = 33
max_udp_peers = 44
idle_timeout_s = 55
udp_amplification_factor = 3
udp_amplification_credit = 4097
"#,
    );
    let out = check(&file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "socket_mode = \"0640\"",
        "socket_group = \"4242\"",
        "loopback_is_local = false",
        "rng_seed = 1234567",
        "pit_max_bytes = 1048577",
        "pit_max_bytes_per_face = 65537",
        "max_interest_lifetime_ms = 30001",
        "max_stream_faces = 33",
        "max_udp_peers = 44",
        "idle_timeout_s = 55",
        "udp_amplification_factor = 3",
        "udp_amplification_credit = 4097",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }

    // A flag wins over the file.
    let out = check(&file, &["--idle-timeout-s", "9", "--socket-mode", "600"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "idle_timeout_s = 9"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "socket_mode = \"0600\""),
        "{stdout}"
    );
}

#[test]
fn without_the_keys_check_shows_the_defaults() {
    let file = config("defaults", "");
    let out = check(&file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "socket_mode = \"0660\"",
        "loopback_is_local = true",
        "pit_max_bytes = 268435456",
        "pit_max_bytes_per_face = 67108864",
        "max_interest_lifetime_ms = 120000",
        "max_stream_faces = 1024",
        "max_udp_peers = 4096",
        "idle_timeout_s = 600",
        "udp_amplification_factor = 10",
        "udp_amplification_credit = 262144",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }
    assert!(stdout.contains("# rng_seed unset"), "{stdout}");
    assert!(stdout.contains("# socket_group unset"), "{stdout}");
}

#[test]
fn bad_values_are_refused_in_one_line_naming_the_key() {
    let cases = [
        ("socket_mode = \"999\"", "socket_mode"),
        ("socket_mode = \"rw-rw----\"", "socket_mode"),
        ("socket_mode = \"0044\"", "socket_mode"),
        ("socket_mode = 660", "socket_mode"),
        ("socket_group = \"\"", "socket_group"),
        ("rng_seed = -1", "rng_seed"),
        ("loopback_is_local = \"yes\"", "loopback_is_local"),
        ("[limits]\npit_max_bytes = 0", "pit_max_bytes"),
        (
            "[limits]\npit_max_bytes_per_face = 0",
            "pit_max_bytes_per_face",
        ),
        (
            "[limits]\nmax_interest_lifetime_ms = 0",
            "max_interest_lifetime_ms",
        ),
        ("[limits]\nmax_stream_faces = 0", "max_stream_faces"),
        ("[limits]\nmax_udp_peers = 0", "max_udp_peers"),
        ("[limits]\nidle_timeout_s = 0", "idle_timeout_s"),
        ("[limits]\nidle_timeout_s = -5", "idle_timeout_s"),
        (
            "[limits]\nudp_amplification_factor = -1",
            "udp_amplification_factor",
        ),
        ("[limits]\nidle_timeout = 5", "idle_timeout"),
    ];
    for (i, (body, key)) in cases.iter().enumerate() {
        let file = config(&format!("bad{i}"), &format!("{body}\n"));
        let out = check(&file, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {stderr}");
        assert!(stderr.contains(key), "{body}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{body}: {stderr}");
        assert!(!stderr.contains("panicked"), "{body}: {stderr}");
    }
    let file = config("badflag", "");
    let out = check(&file, &["--socket-mode", "8"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--socket-mode"),
        "{}",
        text(&out.stderr)
    );
}
