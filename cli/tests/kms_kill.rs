//! The KMS SIGKILLed at random points of a rekey and restarted on the same state: no epoch is
//! reused, nothing is published twice with different content, staged work survives, and every
//! member still derives exactly its current keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::Value;

const AMICN: &str = env!("CARGO_BIN_EXE_amicn");
const METERS: u32 = 12;
const REKEY_MS: u64 = 300;
const PROJECTS: [&str; 2] = ["p1", "p2"];
/// Substrings of meter errors that mean a verification failure (never acceptable).
const VERIFY_FAILURES: [&str; 10] = [
    "does not verify",
    "does not match",
    "failed authentication",
    "bad signature",
    "mismatch",
    "commitment",
    "lacks key",
    "stale epoch",
    "not signed by",
    "not accepted here",
];

/// The scratch directory and every process the test started: dropping it (also when a
/// check panics) kills each still-running child by its PID, waits for it, prints the logs on
/// failure and removes the directory.
struct Harness {
    dir: PathBuf,
    children: Vec<(String, Child)>,
    logs: Vec<PathBuf>,
    spawned: usize,
}

impl Harness {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "amicn-kkill-{tag}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        Harness {
            dir,
            children: Vec::new(),
            logs: Vec::new(),
            spawned: 0,
        }
    }

    fn prov(&self) -> PathBuf {
        self.dir.join("pki")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("fwd.sock")
    }

    fn forwarder(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn node(&self, n: &str) -> String {
        self.prov().join(n).join("node.toml").display().to_string()
    }

    fn state(&self, n: &str) -> PathBuf {
        self.prov().join(n).join("state")
    }

    /// Starts a daemon with stdout and stderr in `logs/<name>-<k>.log`; returns its PID.
    fn spawn(&mut self, name: &str, args: &[String]) -> u32 {
        self.spawned += 1;
        let log = self
            .dir
            .join("logs")
            .join(format!("{:02}-{name}.log", self.spawned));
        let f = File::create(&log).unwrap();
        let child = Command::new(AMICN)
            .args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let pid = child.id();
        self.logs.push(log);
        self.children.push((name.to_string(), child));
        pid
    }

    /// Runs a one-shot `amicn` command to completion (bounded) and returns its stdout.
    fn tool(&self, args: &[String]) -> String {
        let out = Command::new(AMICN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "amicn {args:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// An operator command to the KMS; it must be answered `200`.
    fn command(&self, args: &[&str]) -> String {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--forwarder".to_string(), self.forwarder()]);
        let out = self.tool(&a);
        assert!(out.starts_with("200"), "amicn {a:?} answered {out:?}");
        out
    }

    /// Panics if the running child `name` has exited.
    fn assert_running(&mut self, name: &str) {
        let (_, c) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no child {name}"));
        if let Ok(Some(st)) = c.try_wait() {
            panic!("{name} exited: {st:?}");
        }
    }

    /// SIGKILL (`Child::kill`) and reap; returns the exit status.
    fn sigkill(&mut self, name: &str) -> ExitStatus {
        let i = self.children.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut c) = self.children.remove(i);
        c.kill().unwrap();
        c.wait().unwrap()
    }

    /// SIGTERM every child by PID, then wait (bounded) for each; SIGKILL stragglers.
    fn stop_all(&mut self, within: Duration) -> Vec<(String, Option<ExitStatus>)> {
        for (_, c) in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
            }
        }
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        for (name, c) in &mut self.children {
            let st = loop {
                match c.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    _ if Instant::now() >= deadline => break None,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            out.push((name.clone(), st));
        }
        out
    }

    fn print_logs(&self) {
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "===== {} (last {} of {} lines) =====\n{}",
                log.display(),
                tail.len(),
                lines.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if std::thread::panicking() {
            self.print_logs();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Polls `f` every 50 ms until it yields `Some`, or panics with `what` after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metrics(state: &Path) -> Option<Value> {
    let text = std::fs::read(state.join("metrics.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The ready file of the process `pid`.
fn ready(state: &Path, pid: u32) -> bool {
    std::fs::read_to_string(state.join("ready")).is_ok_and(|t| t.trim() == pid.to_string())
}

/// A snapshot written by process `pid`.
fn metrics_of(state: &Path, pid: u32) -> Option<Value> {
    metrics(state).filter(|v| v["pid"].as_u64() == Some(u64::from(pid)))
}

/// The epoch log of a KMS snapshot as `epoch -> content_digest`, checked: strictly increasing
/// from the first commit after the fresh graph's epoch `base`, with no gap or duplicate, ending
/// at the KMS's current epoch.
fn epoch_log(kms: &Value, base: u64) -> BTreeMap<u64, String> {
    let entries = kms["details"]["epochs"]
        .as_array()
        .unwrap_or_else(|| panic!("no epoch log in {kms:#}"));
    let numbers: Vec<u64> = entries
        .iter()
        .map(|e| e["epoch"].as_u64().expect("epoch number"))
        .collect();
    for (i, &e) in numbers.iter().enumerate() {
        assert_eq!(
            e,
            base + 1 + i as u64,
            "epoch log is not {}, {}, ... without gaps or duplicates: {numbers:?}",
            base + 1,
            base + 2
        );
    }
    assert_eq!(
        numbers.last().copied().unwrap_or(base),
        kms_epoch(kms),
        "the KMS's epoch is the last one of its durable log {numbers:?}"
    );
    entries
        .iter()
        .map(|e| {
            let d = e["content_digest"].as_str().expect("content_digest");
            assert_eq!(d.len(), 64, "content_digest {d:?}");
            (e["epoch"].as_u64().unwrap(), d.to_string())
        })
        .collect()
}

/// Records every epoch of `log` in `seen`, asserting that every epoch seen before is still
/// there with the same content digest (the same bytes under the same names).
fn check_against(seen: &mut BTreeMap<u64, String>, log: &BTreeMap<u64, String>, when: &str) {
    for (e, d) in seen.iter() {
        match log.get(e) {
            Some(now) => assert_eq!(
                now, d,
                "{when}: epoch {e} was published with different content (digest {d} before, {now} now)"
            ),
            None => panic!(
                "{when}: epoch {e} (digest {d}) vanished from the durable log {:?}",
                log.keys().collect::<Vec<_>>()
            ),
        }
    }
    for (e, d) in log {
        seen.entry(*e).or_insert_with(|| d.clone());
    }
}

fn kms_epoch(kms: &Value) -> u64 {
    kms["counters"]["epoch"].as_f64().unwrap_or(0.0) as u64
}

/// Meter id -> its KMS key names (members only).
fn entitled(kms: &Value) -> BTreeMap<u32, BTreeSet<String>> {
    serde_json::from_value(kms["details"]["entitled_keys"].clone()).unwrap_or_default()
}

/// Meter id -> its view, over both meter groups.
fn meter_views(h: &Harness) -> BTreeMap<u32, Value> {
    let mut out = BTreeMap::new();
    for g in ["meters-1", "meters-2"] {
        if let Some(v) = metrics(&h.state(g)) {
            for m in v["details"]["meters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                out.insert(m["id"].as_u64().unwrap() as u32, m);
            }
        }
    }
    out
}

fn held(v: &Value) -> BTreeSet<String> {
    v["held_keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// DR projects whose keys are among `keys`.
fn projects_in(keys: &BTreeSet<String>) -> BTreeSet<String> {
    PROJECTS
        .iter()
        .filter(|p| keys.iter().any(|k| k.contains(&format!("/ami/dr/{p}/"))))
        .map(|p| p.to_string())
        .collect()
}

/// Members whose meters do not hold exactly their KMS keys at the KMS's epoch, with why.
fn out_of_sync(kms: &Value, views: &BTreeMap<u32, Value>) -> Vec<String> {
    let epoch = kms_epoch(kms);
    let mut bad = Vec::new();
    for (id, want) in entitled(kms) {
        let Some(v) = views.get(&id) else {
            bad.push(format!("meter {id}: no view"));
            continue;
        };
        if v["member"] != Value::Bool(true) || v["epoch"].as_u64() != Some(epoch) {
            bad.push(format!(
                "meter {id}: member {} at epoch {} (KMS at {epoch}), next {}, last error {}",
                v["member"], v["epoch"], v["next_epoch"], v["last_error"]
            ));
        } else if held(v) != want {
            let have = held(v);
            bad.push(format!(
                "meter {id}: holds {} keys, KMS says {}; missing {:?}, extra {:?}",
                have.len(),
                want.len(),
                want.difference(&have).collect::<Vec<_>>(),
                have.difference(&want).collect::<Vec<_>>()
            ));
        }
    }
    bad
}

fn kms_args(h: &Harness) -> Vec<String> {
    s(&[
        "kms",
        "serve",
        "-c",
        &h.node("kms"),
        "--forwarder",
        &h.forwarder(),
        "--rekey-interval",
        &format!("{REKEY_MS}ms"),
        "--metrics-interval",
        "200ms",
    ])
}

/// Starts the KMS and waits for its ready file and first snapshot; returns its PID and that
/// snapshot.
fn start_kms(h: &mut Harness) -> (u32, Value) {
    let _ = std::fs::remove_file(h.state("kms").join("ready"));
    let args = kms_args(h);
    let pid = h.spawn("kms", &args);
    let state = h.state("kms");
    wait_for("the KMS to be ready", Duration::from_secs(30), || {
        h.assert_running("kms");
        ready(&state, pid).then_some(())
    });
    let snap = wait_for("the KMS's first snapshot", Duration::from_secs(10), || {
        metrics_of(&state, pid)
    });
    (pid, snap)
}

/// Project sets a meter is moved between.
fn project_set(i: u64) -> Vec<&'static str> {
    match i % 4 {
        0 => vec![],
        1 => vec!["p1"],
        2 => vec!["p2"],
        _ => vec!["p1", "p2"],
    }
}

fn kill_loop(kills: usize) {
    let t0 = Instant::now();
    let seed = std::env::var("AMICN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("kill_loop({kills}): seed {seed} (AMICN_KILL_SEED={seed} repeats it)");
    // Seeded, so a failing run can be repeated with its seed.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut h = Harness::new(&kills.to_string());

    // Provisioning, forwarder, KMS, entitlements, meters.
    let prov = h.prov().display().to_string();
    h.tool(&s(&[
        "pki",
        "--out",
        &prov,
        "--meters",
        &METERS.to_string(),
        "--meter-groups",
        "2",
        "--projects",
        &PROJECTS.join(","),
    ]));
    let sock = h.socket().display().to_string();
    h.spawn(
        "fwd",
        &s(&["fwd", "--socket", &sock, "--no-tcp", "--no-udp"]),
    );
    wait_for("the forwarder's socket", Duration::from_secs(10), || {
        h.socket().exists().then_some(())
    });
    let (mut kms_pid, first) = start_kms(&mut h);
    // The fresh key graph's epoch: the first commit is the one after it.
    let base = kms_epoch(&first);
    let mut seen = BTreeMap::new();
    check_against(&mut seen, &epoch_log(&first, base), "first start");
    // Meter id -> its entitled projects (meters 11 and 12 keep none).
    let mut sets: BTreeMap<u32, Vec<&str>> = (1..=METERS).map(|m| (m, vec![])).collect();
    for (ids, set) in [
        ("1-4", vec!["p1"]),
        ("5-8", vec!["p2"]),
        ("9-10", vec!["p1", "p2"]),
    ] {
        let dr = h.node("dr");
        h.command(&[
            "ami",
            "entitle",
            "-c",
            &dr,
            "--meters",
            ids,
            "--set",
            &set.join(","),
        ]);
        let (a, b) = ids.split_once('-').unwrap();
        for m in a.parse::<u32>().unwrap()..=b.parse().unwrap() {
            sets.insert(m, set.clone());
        }
    }
    for g in ["meters-1", "meters-2"] {
        let args = s(&[
            "meter",
            "-c",
            &h.node(g),
            "--forwarder",
            &h.forwarder(),
            "--reading-interval",
            "500ms",
            "--sync-interval",
            "300ms",
            "--metrics-interval",
            "200ms",
        ]);
        h.spawn(g, &args);
    }
    wait_for("every meter to join", Duration::from_secs(45), || {
        let views = meter_views(&h);
        let kms = metrics(&h.state("kms"))?;
        (views
            .values()
            .filter(|v| v["member"] == Value::Bool(true))
            .count()
            == METERS as usize
            && entitled(&kms).len() == METERS as usize
            && out_of_sync(&kms, &views).is_empty())
        .then_some(())
    });
    eprintln!(
        "{METERS} meters joined after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The kill loop.
    let mut departed: BTreeSet<u32> = BTreeSet::new();
    let mut restarts_epochs = Vec::new();
    let mut landed_after_commit = 0;
    for k in 0..kills {
        let before = metrics_of(&h.state("kms"), kms_pid).unwrap();
        check_against(
            &mut seen,
            &epoch_log(&before, base),
            &format!("kill {k}, before churn"),
        );
        let e0 = kms_epoch(&before);
        // A commit is due at the KMS's next tick once the last one is a rekey interval old, so
        // the random delay below lands before, during or after the rekey of this churn.
        std::thread::sleep(Duration::from_millis(REKEY_MS));
        let members: Vec<u32> = sets
            .keys()
            .copied()
            .filter(|m| !departed.contains(m))
            .collect();
        let m = members[rng.random_range(0..members.len())];
        // Churn: now and then (at most a third of the meters) a leave, staged for the next
        // commit, or a revocation, committed at once; a move otherwise.
        let leave = departed.len() < METERS as usize / 3 && rng.random_range(0..4) == 0;
        let revoke = leave && rng.random_range(0..3) == 0;
        let churn = if leave {
            let op = h.node("operator");
            let verb = if revoke { "revoke" } else { "leave" };
            h.command(&["ami", verb, "-c", &op, "--meter", &m.to_string()]);
            departed.insert(m);
            format!("meter {m}: {verb}")
        } else {
            let now = sets[&m].clone();
            let mut next = project_set(rng.next_u64());
            while next == now {
                next = project_set(rng.next_u64());
            }
            let dr = h.node("dr");
            h.command(&[
                "ami",
                "entitle",
                "-c",
                &dr,
                "--meters",
                &m.to_string(),
                "--set",
                &next.join(","),
            ]);
            sets.insert(m, next.clone());
            format!("meter {m} moves to {next:?}")
        };
        let delay = rng.random_range(0..REKEY_MS);
        std::thread::sleep(Duration::from_millis(delay));
        let status = h.sigkill("kms");
        assert!(
            !status.success(),
            "the KMS had exited before the SIGKILL: {status:?}"
        );
        // What the killed KMS last wrote is the last the world saw of it.
        let last = metrics_of(&h.state("kms"), kms_pid).unwrap();
        let last_log = epoch_log(&last, base);
        check_against(&mut seen, &last_log, &format!("kill {k}, last snapshot"));
        let committed_before_kill = kms_epoch(&last) > e0;
        landed_after_commit += usize::from(committed_before_kill);
        eprintln!(
            "kill {k}: {churn}; SIGKILL after {delay} ms at epoch {} (churn {}committed)",
            kms_epoch(&last),
            if committed_before_kill {
                ""
            } else {
                "not yet "
            }
        );

        let (pid, snap) = start_kms(&mut h);
        kms_pid = pid;
        let log = epoch_log(&snap, base);
        check_against(&mut seen, &log, &format!("restart {k}"));
        assert!(
            kms_epoch(&snap) >= kms_epoch(&last),
            "restart {k}: the KMS went back from epoch {} to {}",
            kms_epoch(&last),
            kms_epoch(&snap)
        );
        let restored = snap["details"]["counters"]["epochs_restored"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            restored >= kms_epoch(&last),
            "restart {k}: restored epoch {restored}, but epoch {} had been published",
            kms_epoch(&last)
        );
        // The churn is carried out: committed before the kill, or staged again and committed
        // by the restarted KMS.
        let state = h.state("kms");
        let done = wait_for(
            &format!("restart {k}: the churn ({churn}) to be committed"),
            Duration::from_secs(15),
            || {
                let v = metrics_of(&state, pid)?;
                h.assert_running("kms");
                let keys = entitled(&v);
                let carried = if leave {
                    let listed = v["details"]["revoked"]
                        .as_object()
                        .is_some_and(|r| r.contains_key(&m.to_string()));
                    !keys.contains_key(&m) && listed == revoke
                } else {
                    keys.get(&m).is_some_and(|k| {
                        projects_in(k) == sets[&m].iter().map(|p| p.to_string()).collect()
                    })
                };
                (kms_epoch(&v) > e0 && carried).then_some(v)
            },
        );
        check_against(
            &mut seen,
            &epoch_log(&done, base),
            &format!("restart {k}, churn committed"),
        );
        restarts_epochs.push(kms_epoch(&done));
    }
    assert!(
        restarts_epochs.windows(2).all(|w| w[1] > w[0]),
        "the KMS epoch increases across restarts: {restarts_epochs:?}"
    );

    // Convergence: every member at the KMS's epoch, holding exactly its current keys.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (kms, views) = loop {
        let kms = metrics_of(&h.state("kms"), kms_pid).unwrap();
        let views = meter_views(&h);
        let bad = out_of_sync(&kms, &views);
        if bad.is_empty() {
            break (kms, views);
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge to the KMS's epoch {} within 30 s:\n{}",
            kms_epoch(&kms),
            bad.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let members = entitled(&kms);
    let want: BTreeSet<u32> = (1..=METERS).filter(|m| !departed.contains(m)).collect();
    assert_eq!(
        members.keys().copied().collect::<BTreeSet<_>>(),
        want,
        "KMS members are every meter that did not leave"
    );
    for (id, keys) in &members {
        let v = &views[id];
        assert_eq!(
            held(v).len(),
            keys.len(),
            "meter {id}: held keys vs the KMS's entitled key count"
        );
        let want: BTreeSet<String> = sets[id].iter().map(|p| p.to_string()).collect();
        assert_eq!(projects_in(keys), want, "meter {id}: KMS project keys");
        let err = v["last_error"].as_str().unwrap_or("");
        assert!(
            !VERIFY_FAILURES.iter().any(|f| err.contains(f)),
            "meter {id}: verification failure: {err}"
        );
        assert!(
            v["gave_up"] != Value::Bool(true),
            "meter {id} gave up: {err}"
        );
    }
    for id in &departed {
        let v = &views[id];
        assert!(
            v["member"] != Value::Bool(true),
            "departed meter {id} is still a member: {v}"
        );
    }
    for v in views.values() {
        assert_eq!(
            v["rejected_data"].as_u64(),
            Some(0),
            "meter rejected data: {v}"
        );
    }
    let final_log = epoch_log(&kms, base);
    check_against(&mut seen, &final_log, "end");
    eprintln!(
        "{kills} kills ({landed_after_commit} after the churn's commit); final epoch {} with {} \
         members; {:.1} s",
        kms_epoch(&kms),
        members.len(),
        t0.elapsed().as_secs_f64()
    );

    // Stop everything by PID; each daemon exits cleanly on SIGTERM.
    let stopped = h.stop_all(Duration::from_secs(10));
    for (name, st) in &stopped {
        let st = st.unwrap_or_else(|| panic!("{name} still running 10 s after SIGTERM"));
        assert!(st.success(), "{name} exited with {st:?} after SIGTERM");
    }
    for (name, c) in &mut h.children {
        assert!(c.try_wait().unwrap().is_some(), "{name} is still running");
    }
    // The final snapshot at exit still holds the same log.
    let last = metrics(&h.state("kms")).unwrap();
    check_against(&mut seen, &epoch_log(&last, base), "after SIGTERM");
}

#[test]
fn kms_survives_sigkill_three_times() {
    kill_loop(3);
}

#[test]
#[ignore = "long: 20 KMS kills (run with --ignored)"]
fn kms_survives_sigkill_twenty_times() {
    kill_loop(20);
}
