//! AMI operations through real processes: a forwarder, the KMS, MDMS, pricing and DR daemons
//! and a meter group, each an `amicn` process on one Unix socket. The operator reads and
//! switches a meter with `amicn ami`, the meters' refusals (a command signed by a meter, a
//! replayed one, one for another meter) are counted, injected outage and tamper events reach
//! the MDMS's store, DR events are acknowledged by exactly the project's members, meters learn
//! the TOU tariff, and the relay state and tariff registers survive a restart of the meters.
//! Every process is stopped by its PID at the end (and killed by PID if a check fails).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod tools_support;

const AMICN: &str = env!("CARGO_BIN_EXE_amicn");

/// The scratch directory and the daemons; dropping it kills each running child by PID.
struct Deployment {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Deployment {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("amicn-amiops-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        Deployment {
            dir,
            children: Vec::new(),
        }
    }

    fn forwarder(&self) -> String {
        format!("unix://{}", self.dir.join("fwd.sock").display())
    }

    fn node(&self, n: &str) -> String {
        self.dir
            .join("pki")
            .join(n)
            .join("node.toml")
            .display()
            .to_string()
    }

    fn state(&self, n: &str) -> PathBuf {
        self.dir.join("pki").join(n).join("state")
    }

    fn metrics(&self, n: &str) -> Option<Value> {
        let text = std::fs::read(self.state(n).join("metrics.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> u32 {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let f = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
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
        self.children.push((name.to_string(), child));
        pid
    }

    /// Starts role daemon `role` of node `n` and waits for its ready file.
    fn daemon(&mut self, role: &str, n: &str, extra: &[&str]) {
        let _ = std::fs::remove_file(self.state(n).join("ready"));
        let (node, fwd) = (self.node(n), self.forwarder());
        let mut a: Vec<&str> = role.split(' ').collect();
        a.extend([
            "-c",
            &node,
            "--forwarder",
            &fwd,
            "--metrics-interval",
            "200ms",
        ]);
        a.extend(extra);
        let pid = self.spawn(n, &a);
        let state = self.state(n);
        wait_for(&format!("{n} to be ready"), Duration::from_secs(30), || {
            self.assert_running(n);
            std::fs::read_to_string(state.join("ready"))
                .is_ok_and(|t| t.trim() == pid.to_string())
                .then_some(())
        });
    }

    fn assert_running(&mut self, name: &str) {
        for (n, c) in &mut self.children {
            if n == name
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("{name} exited: {st:?}");
            }
        }
    }

    /// SIGTERM the child `name` by PID and wait (bounded) for it to exit.
    fn stop(&mut self, name: &str) -> bool {
        let i = self.children.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut c) = self.children.remove(i);
        terminate(&mut c)
    }

    /// An `amicn` one-shot command with the forwarder flag added.
    fn run(&self, args: &[&str]) -> Output {
        let fwd = self.forwarder();
        let mut a = args.to_vec();
        a.extend(["--forwarder", &fwd]);
        Command::new(AMICN)
            .args(&a)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `amicn ami VERB ... --json`, which must exit 0; returns its summary.
    fn ami(&self, args: &[&str]) -> Value {
        let mut a = vec!["ami"];
        a.extend(args);
        a.push("--json");
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "amicn {a:?}: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn print_logs(&self) {
        for e in std::fs::read_dir(self.dir.join("logs")).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("===== {} =====\n{}", e.path().display(), tail.join("\n"));
        }
    }
}

fn terminate(c: &mut Child) -> bool {
    if c.try_wait().ok().flatten().is_none() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.try_wait() {
            Ok(Some(_)) => return true,
            _ if Instant::now() >= deadline => {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Drop for Deployment {
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

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn counter(v: &Option<Value>, k: &str) -> u64 {
    v.as_ref()
        .and_then(|v| v["counters"][k].as_f64())
        .unwrap_or(0.0) as u64
}

fn meter_view(d: &Deployment, id: u64) -> Option<Value> {
    d.metrics("meters-1")?["details"]["meters"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_u64() == Some(id))
        .cloned()
}

/// The one row of a one-meter command summary.
fn row(summary: &Value) -> &Value {
    &summary["rows"][0]
}

fn events_in(db: &str) -> Vec<(u32, String)> {
    amicn_ami::open_reading_store(db)
        .and_then(|s| s.events())
        .map(|v| {
            v.into_iter()
                .map(|e| (e.event.meter, e.event.kind.label().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn operator_commands_events_tariffs_and_dr_through_the_role_daemons() {
    exercise(None);
}

/// The same on PostgreSQL: the MDMS daemon keeps readings and the `meter_event` rows there.
#[test]
fn operator_commands_and_events_with_the_mdms_on_postgres() {
    let Some(db) = tools_support::TestDatabase::create("amiops") else {
        return;
    };
    exercise(Some(&db.url));
    // The events are rows of `meter_event`, committed for any other client of the database.
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let kinds: BTreeSet<(i64, String)> = c
        .query("SELECT meter, kind FROM meter_event", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .collect();
    for want in [
        (1, "last-gasp"),
        (1, "restoration"),
        (2, "cover-open"),
        (4, "last-gasp"),
    ] {
        assert!(
            kinds.contains(&(want.0, want.1.to_string())),
            "{want:?} not in meter_event: {kinds:?}"
        );
    }
}

/// Runs the scenario with the MDMS on `pg` (a `postgres://` URL) or on SQLite in its state.
fn exercise(pg: Option<&str>) {
    let mut d = Deployment::new();
    let prov = d.dir.join("pki").display().to_string();
    let out = Command::new(AMICN)
        .args([
            "pki",
            "--out",
            &prov,
            "--meters",
            "4",
            "--meter-groups",
            "1",
            "--projects",
            "p1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sock = d.dir.join("fwd.sock").display().to_string();
    d.spawn("fwd", &["fwd", "--socket", &sock, "--no-tcp", "--no-udp"]);
    wait_for("the forwarder's socket", Duration::from_secs(10), || {
        d.dir.join("fwd.sock").exists().then_some(())
    });
    d.daemon("kms serve", "kms", &["--rekey-interval", "300ms"]);
    // Meters 1-3 in project p1; meter 4 in none.
    let dr_node = d.node("dr");
    let ent = d.run(&[
        "ami", "entitle", "-c", &dr_node, "--meters", "1-3", "--set", "p1",
    ]);
    assert!(ent.status.success(), "{ent:?}");
    let fast = ["--key-refresh", "500ms"];
    let mut mdms_flags = [&fast[..], &["--poll-interval", "500ms"]].concat();
    if let Some(url) = pg {
        mdms_flags.extend(["--db", url]);
    }
    d.daemon("mdms", "mdms", &mdms_flags);
    d.daemon(
        "pricing",
        "pricing",
        &[&fast[..], &["--publish-interval", "1s"]].concat(),
    );
    d.daemon(
        "dr",
        "dr",
        &[&fast[..], &["--publish-interval", "1s"]].concat(),
    );
    let meter_flags = ["--reading-interval", "500ms", "--sync-interval", "300ms"];
    d.daemon("meter", "meters-1", &meter_flags);
    wait_for("every meter to join", Duration::from_secs(60), || {
        (counter(&d.metrics("meters-1"), "members") == 4).then_some(())
    });

    // On-demand read, disconnect, and the relay state in the next reading.
    let op = d.node("operator");
    let mdms_node = d.node("mdms");
    // The operator sees the relay state; the reading itself is sealed for the MDMS.
    let r = d.ami(&["read", "2", "-c", &op]);
    assert_eq!(r["ok"], 1, "{r:#}");
    assert_eq!(row(&r)["connected"], true, "{r:#}");
    assert_eq!(row(&r)["sealed"], true, "{r:#}");
    let r = d.ami(&["read", "2", "-c", &mdms_node]);
    assert!(row(&r)["energy_wh"].as_u64().is_some(), "{r:#}");
    let r = d.ami(&["disconnect", "2", "-c", &op]);
    assert_eq!(
        (row(&r)["code"].as_u64(), &row(&r)["connected"]),
        (Some(200), &Value::Bool(false)),
        "{r:#}"
    );
    let disconnected_at = amicn_ami::now_us();
    let r = d.ami(&["read", "2", "-c", &mdms_node]);
    assert_eq!(row(&r)["connected"], false, "{r:#}");
    assert_eq!(row(&r)["power_w"], 0, "{r:#}");
    let db = match pg {
        Some(url) => url.to_string(),
        None => d.state("mdms").join("readings.db").display().to_string(),
    };
    wait_for(
        "an interval of the open relay at the MDMS",
        Duration::from_secs(20),
        || {
            let s = amicn_ami::open_reading_store(&db).ok()?;
            let until = amicn_ami::now_us() + 3_600_000_000;
            let after = s.meter_range(2, disconnected_at + 600_000, until).ok()?;
            after.iter().any(|r| r.power_w == 0).then_some(())
        },
    );
    let r = d.ami(&["limit", "1", "2.5", "-c", &op]);
    assert_eq!(row(&r)["limit_w"], 2500, "{r:#}");

    // Refusals: signed by a meter, replayed, for another meter; each counted by the meter.
    let meters_node = d.node("meters-1");
    let r = d.ami(&["disconnect", "1", "-c", &meters_node, "--as-meter", "3"]);
    assert_eq!(row(&r)["code"], 403, "{r:#}");
    let r = d.ami(&["read", "1", "-c", &op, "--replay"]);
    assert_eq!(
        (r["rows"][0]["code"].as_u64(), r["rows"][1]["code"].as_u64()),
        (Some(200), Some(403)),
        "{r:#}"
    );
    let r = d.ami(&["disconnect", "1", "-c", &op, "--target", "3"]);
    assert_eq!(row(&r)["code"], 404, "{r:#}");
    // Meter 1 is still connected: no refused command changed it.
    assert_eq!(row(&d.ami(&["read", "1", "-c", &op]))["connected"], true);
    wait_for(
        "the meters to count the refusals",
        Duration::from_secs(5),
        || {
            let m = d.metrics("meters-1");
            (counter(&m, "commands_refused_signer") >= 1
                && counter(&m, "commands_refused_replay") >= 1
                && counter(&m, "commands_refused_wrong-meter") >= 1)
                .then_some(())
        },
    );
    // A refused command exits non-zero with a one-line reason unless refusals are expected.
    let out = d.run(&["ami", "read", "9", "-c", &op]);
    assert!(!out.status.success(), "{out:?}");

    // Events: injected at the meter group, committed at the MDMS within moments.
    std::fs::write(
        d.state("meters-1").join("inject-events"),
        "1 last-gasp\n1 restoration\n2 cover-open\n3 clock-adjusted -1500000\n7 cover-open\nnonsense\n",
    )
    .unwrap();
    let want: BTreeSet<(u32, String)> = [
        (1, "last-gasp"),
        (1, "restoration"),
        (2, "cover-open"),
        (3, "clock-adjusted"),
    ]
    .into_iter()
    .map(|(m, k)| (m, k.to_string()))
    .collect();
    wait_for(
        "the events in the MDMS store",
        Duration::from_secs(20),
        || {
            let have: BTreeSet<(u32, String)> = events_in(&db).into_iter().collect();
            want.is_subset(&have).then_some(())
        },
    );
    wait_for(
        "the two unusable lines counted",
        Duration::from_secs(5),
        || (counter(&d.metrics("meters-1"), "inject_refused") == 2).then_some(()),
    );
    wait_for("the MDMS's event counters", Duration::from_secs(5), || {
        (counter(&d.metrics("mdms"), "events") >= 4).then_some(())
    });

    // DR: an event acknowledged by exactly the members 1-3, none refused.
    let report = wait_for(
        "a fully acknowledged DR event",
        Duration::from_secs(30),
        || {
            let m = d.metrics("dr")?;
            m["details"]["events"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["report"]["silent"]
                        .as_array()
                        .is_some_and(|s| s.is_empty())
                })
                .cloned()
        },
    );
    assert_eq!(report["report"]["members"], serde_json::json!([1, 2, 3]));
    assert_eq!(report["report"]["opted_in"], serde_json::json!([1, 2, 3]));
    assert_eq!(counter(&d.metrics("dr"), "acks_refused"), 0);
    assert_eq!(meter_view(&d, 4).unwrap()["dr_acks"], 0);

    // Tariff: every meter holds the TOU tariff and accumulates per-period registers.
    let registers = wait_for("per-period registers", Duration::from_secs(20), || {
        let v = meter_view(&d, 3)?;
        let regs = v["tariff_registers"].as_object()?.clone();
        (counter(&d.metrics("meters-1"), "tariff_known") == 4
            && regs.values().any(|x| x.as_u64() > Some(0)))
        .then_some(regs)
    });

    // Restart of the meter group: relay state and tariff registers come back from its store,
    // it reports its last gasp and restoration.
    let gasps_before = events_in(&db)
        .iter()
        .filter(|(m, k)| *m == 4 && k == "last-gasp")
        .count();
    assert!(
        d.stop("meters-1"),
        "the meter group did not stop on SIGTERM"
    );
    let saved: Value = serde_json::from_slice(
        &std::fs::read(d.state("meters-1").join("meter-3/tariff.json")).unwrap(),
    )
    .unwrap();
    for (k, v) in &registers {
        assert!(
            saved["registers"]["energy_mwh"][k].as_u64() >= v.as_u64(),
            "register {k}: {saved:#}"
        );
    }
    d.daemon("meter", "meters-1", &meter_flags);
    wait_for("the meters to be back", Duration::from_secs(60), || {
        (counter(&d.metrics("meters-1"), "members") == 4).then_some(())
    });
    let r = d.ami(&["read", "2", "-c", &op]);
    assert_eq!(
        row(&r)["connected"],
        false,
        "relay state lost in the restart: {r:#}"
    );
    assert_eq!(row(&d.ami(&["read", "1", "-c", &op]))["limit_w"], 2500);
    let kept = meter_view(&d, 3).unwrap();
    assert!(kept["tariff_version"].as_u64().is_some(), "{kept:#}");
    for (k, v) in saved["registers"]["energy_mwh"].as_object().unwrap() {
        assert!(
            kept["tariff_registers"][k].as_u64() >= v.as_u64(),
            "register {k} went back in the restart: {kept:#}"
        );
    }
    wait_for(
        "last gasp and restoration of meter 4",
        Duration::from_secs(20),
        || {
            let ev = events_in(&db);
            let gasps = ev
                .iter()
                .filter(|(m, k)| *m == 4 && k == "last-gasp")
                .count();
            let back = ev.iter().any(|(m, k)| *m == 4 && k == "restoration");
            (gasps > gasps_before && back).then_some(())
        },
    );
    let r = d.ami(&["connect", "2", "-c", &op]);
    assert_eq!(row(&r)["connected"], true, "{r:#}");

    // Latency of on-demand reads (reported, not judged).
    let r = d.ami(&["read", "3", "-c", &op, "--repeat", "50"]);
    assert_eq!(r["ok"], 50, "{r:#}");
    eprintln!(
        "ami read x50: p50 {} us, p99 {} us",
        r["p50_us"], r["p99_us"]
    );

    // Everything stops on SIGTERM, by PID.
    let names: Vec<String> = d.children.iter().map(|(n, _)| n.clone()).collect();
    for n in names.iter().rev() {
        assert!(d.stop(n), "{n} did not stop on SIGTERM");
    }
}
