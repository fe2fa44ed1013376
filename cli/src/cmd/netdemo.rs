//! `amicn demo`: the AMI as deployed, on one machine, as separate OS processes.
//!
//! Provisions a utility into a temporary directory (`amicn pki`), starts a mesh of `amicn fwd`
//! processes on loopback — a head-end forwarder and two concentrators, linked by TCP faces and
//! routes set up through NFD management — then the KMS, MDMS (SQLite, or PostgreSQL with
//! `--db`), pricing and DR daemons behind the head-end and the meter groups behind the
//! concentrators, plus an attacker process
//! on the first concentrator that answers every wrap and reading Interest it sees with forged
//! Data. Time is accelerated (readings every interval, epochs every second). The scenario:
//! everyone enrols into the projects the DR operator entitled them to; readings, prices and DR
//! events flow; one meter retires and one moves to other projects, and the KMS is SIGKILLed
//! right after (and restarted); one meter is revoked and the KMS is SIGKILLed again; a meter
//! joins late. At the end every daemon is stopped by PID, their counters are read, the checks
//! are judged and the report is printed and written to `--out` with PNG plots.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amicn_ami::provision::{ProvisionSpec, provision};
use amicn_ami::{AmiNames, EpochSummary, SubgroupInfo, label_of};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;
use serde::Serialize;
use serde_json::Value;

use super::mesh::{
    Latency, Procs, args, connect_when_up, counter, cs_counts, face_to, free_port, latency_of,
    meter_views, read_json, ready, route, strategy, wait_for,
};
use super::plots;
use amicn_ami::scenario::Settings;

/// Route cost from a concentrator up to the head-end.
const UPLINK_COST: u64 = 10;

/// One PASS/FAIL line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) pass: bool,
    pub(crate) detail: String,
}

#[derive(Debug, Default, Serialize)]
struct ProcessReport {
    name: String,
    pid: u32,
    peak_rss_kib: Option<u64>,
    exit: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct ForwarderReport {
    name: String,
    cs_hits: u64,
    cs_misses: u64,
    hit_ratio: f64,
}

#[derive(Debug, Serialize)]
struct EpochRow {
    epoch: u32,
    label: String,
    joins: usize,
    departs: usize,
    unicast: u64,
    multicast: u64,
    broadcast: u64,
    manifest_segments: usize,
    wire_bytes: usize,
    formula: Option<String>,
    formula_wraps: Option<u64>,
    formula_holds: Option<bool>,
}

/// The networked demo's report.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    settings: Settings,
    meter_groups: u32,
    dir: String,
    readings: BTreeMap<String, f64>,
    meters_heard: usize,
    kms: BTreeMap<String, f64>,
    epochs: Vec<EpochRow>,
    forwarders: Vec<ForwarderReport>,
    latency: BTreeMap<String, Latency>,
    processes: Vec<ProcessReport>,
    attacker_answers: u64,
    /// On-demand reads, relay and limit commands, refusals.
    operations: Value,
    /// Meter events, tariffs and DR: counts, latencies, refusals.
    grid_operations: Value,
    /// The MDMS's last VEE run: totals and the summary per meter.
    vee: Value,
    pub(crate) checks: Vec<Check>,
    pub(crate) pass: bool,
    elapsed_ms: u64,
    plots: Vec<String>,
}

/// Meter `id`'s entitled DR projects: pj when bit j-1 of `id` is set.
fn plan(id: u32, projects: &[String]) -> Vec<String> {
    projects
        .iter()
        .enumerate()
        .filter(|(j, _)| (id >> j) & 1 == 1)
        .map(|(_, p)| p.clone())
        .collect()
}

struct Ctx {
    exe: String,
    prov: PathBuf,
    head_uri: String,
}

impl Ctx {
    fn node(&self, n: &str) -> String {
        self.prov.join(n).join("node.toml").display().to_string()
    }

    fn metrics(&self, n: &str) -> Option<Value> {
        read_json(&self.prov.join(n).join("state").join("metrics.json"))
    }

    fn kms_args(&self) -> Vec<String> {
        args(&[
            "kms",
            "serve",
            "-c",
            &self.node("kms"),
            "--forwarder",
            &self.head_uri,
            "--rekey-interval",
            "1s",
            "--metrics-interval",
            "250ms",
        ])
    }

    /// Runs an operator tool to completion; returns its stdout or the error it printed.
    fn tool(&self, a: &[&str]) -> Result<String, String> {
        super::mesh::run_tool(Path::new(&self.exe), &args(a))
    }
}

/// LKH leave cost of an epoch with departures only: tree wraps at most Σ(d·H−1) over the
/// leavers' subgroups (equal for full trees), one project-key wrap per remaining subgroup of each
/// project a leaver was in, one broadcast wrap per remaining subgroup.
pub(crate) fn leave_formula(
    before: &[SubgroupInfo],
    after: &[SubgroupInfo],
    departed: &[Vec<String>],
    degree: u32,
    measured: (u64, u64, u64),
) -> (String, u64, bool) {
    let mut tree_bound = 0u64;
    let mut lost: BTreeSet<&str> = BTreeSet::new();
    for projects in departed {
        let label = label_of(projects);
        let h = before
            .iter()
            .find(|s| s.label == label)
            .map(|s| u64::from(s.height))
            .unwrap_or(0);
        tree_bound += (u64::from(degree) * h).saturating_sub(1);
        lost.extend(projects.iter().map(String::as_str));
    }
    let live: Vec<&SubgroupInfo> = after.iter().filter(|s| s.members > 0).collect();
    let project_expected: u64 = lost
        .iter()
        .map(|p| {
            live.iter()
                .filter(|s| s.projects.iter().any(|q| q == p))
                .count() as u64
        })
        .sum();
    let root_expected = live.len() as u64;
    let (tree, project, root) = measured;
    let holds = tree <= tree_bound && project == project_expected && root == root_expected;
    (
        format!(
            "tree ≤ Σ(d·H−1) = {tree_bound} (measured {tree}), project = Σ m_p = {project_expected} ({project}), root = M = {root_expected} ({root})"
        ),
        tree_bound + project_expected + root_expected,
        holds,
    )
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: impl Into<String>, pass: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.into(),
            pass,
            detail: detail.into(),
        });
    }
}

/// Runs the networked demo; `out` receives report.json and the plots.
pub(crate) async fn run(
    s: &Settings,
    groups: u32,
    out: &Path,
    progress: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating the amicn binary")?;
    let dir = std::env::temp_dir().join(format!(
        "amicn-demo-{}-{}",
        std::process::id(),
        amicn_ami::now_ms()
    ));
    let prov = dir.join("nodes");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let names = AmiNames::new(&s.utility)?;
    let projects: Vec<String> = (1..=s.projects).map(|j| format!("p{j}")).collect();
    let n = s.meters;
    let late = n + 1;
    let probe = n + 2;
    let leaver = 1u32;
    let mover = 2u32;
    let revoked = 3u32;

    let bar = if progress {
        let b = ProgressBar::new(12);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let step = |msg: &str| {
        bar.inc(1);
        bar.set_message(msg.to_string());
        tracing::info!("{msg}");
    };

    // 1. Provisioning: one directory per node, keys generated where they are used.
    step("provisioning");
    let mut meter_groups = super::node::meter_groups(n, groups);
    meter_groups.push(("meters-late".into(), vec![late]));
    meter_groups.push(("meters-probe".into(), vec![probe]));
    provision(&ProvisionSpec {
        utility: s.utility.clone(),
        out: prov.clone(),
        projects: projects.clone(),
        meter_groups: meter_groups.clone(),
        validity_s: amicn_ami::provision::NODE_CERT_VALIDITY_S,
    })?;

    // 2. The forwarder mesh.
    step("forwarders");
    let mut procs = Procs {
        list: Vec::new(),
        exe: exe.clone(),
        logs: logs.clone(),
    };
    let fwd_names = ["head", "c1", "c2"];
    let mut ports = Vec::new();
    for f in fwd_names {
        let port = free_port()?;
        ports.push(port);
        let sock = dir.join(format!("{f}.sock"));
        procs.spawn(
            &format!("fwd-{f}"),
            &args(&[
                "fwd",
                "--socket",
                &sock.display().to_string(),
                "--tcp",
                &format!("127.0.0.1:{port}"),
                "--no-udp",
                "--cs-capacity",
                "200000",
                "--log-level",
                "warn",
            ]),
        )?;
    }
    let mut mgmt = Vec::new();
    for f in fwd_names {
        mgmt.push(connect_when_up(&dir.join(format!("{f}.sock"))).await?);
    }
    let (head, c1, c2) = (&mgmt[0], &mgmt[1], &mgmt[2]);
    let ami = names.ami();
    let h_to_c1 = face_to(head, ports[1]).await?;
    let h_to_c2 = face_to(head, ports[2]).await?;
    let mut uplinks = Vec::new();
    for (c, _) in [(c1, 1), (c2, 2)] {
        let up = face_to(c, ports[0]).await?;
        route(c, &ami, up, UPLINK_COST).await?;
        uplinks.push(up);
    }
    // The head-end routes each meter to its concentrator (what a routing protocol announces).
    let group_of = |id: u32| -> usize {
        meter_groups
            .iter()
            .position(|(_, ids)| ids.contains(&id))
            .unwrap_or(0)
    };
    for id in 1..=probe {
        let via = if group_of(id) % 2 == 0 && id <= n {
            h_to_c1
        } else {
            h_to_c2
        };
        route(head, &names.meter(id), via, UPLINK_COST).await?;
    }
    // c1 sends every AMI Interest to every next hop, so the attacker sees all of them.
    strategy(c1, &ami, "/localhost/nfd/strategy/multicast").await?;
    let socket_of = |id: u32| -> String {
        let c = if group_of(id) % 2 == 0 && id <= n {
            "c1"
        } else {
            "c2"
        };
        format!("unix://{}", dir.join(format!("{c}.sock")).display())
    };
    let head_uri = format!("unix://{}", dir.join("head.sock").display());
    let ctx = Ctx {
        exe: exe.display().to_string(),
        prov: prov.clone(),
        head_uri: head_uri.clone(),
    };

    // 3. The attacker, before anyone else, so it competes for every wrap and reading.
    let attack_stats = dir.join("attacker.json");
    procs.spawn(
        "attacker",
        &args(&[
            "demo-attacker",
            "--forwarder",
            &format!("unix://{}", dir.join("c1.sock").display()),
            "--u",
            &s.utility,
            "--stats",
            &attack_stats.display().to_string(),
        ]),
    )?;

    // 4. The head-end services.
    step("KMS and DR entitlements");
    procs.spawn("kms", &ctx.kms_args())?;
    wait_for("the KMS", Duration::from_secs(20), || ready(&prov, "kms")).await?;
    let mut entitled: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for id in 1..=late {
        entitled.insert(id, plan(if id == late { leaver } else { id }, &projects));
    }
    let mut by_set: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
    for (id, set) in &entitled {
        by_set.entry(set.clone()).or_default().push(*id);
    }
    super::mesh::entitle_sets(Path::new(&ctx.exe), &ctx.node("dr"), &head_uri, &by_set)?;
    let interval = format!("{}ms", s.interval.as_millis());
    let common = |node: &str, extra: &[&str]| -> Vec<String> {
        let mut v = args(&[
            "-c",
            &ctx.node(node),
            "--forwarder",
            &head_uri,
            "--metrics-interval",
            "250ms",
        ]);
        v.extend(args(extra));
        v
    };
    step("MDMS, pricing and DR");
    let mut mdms_args = vec!["mdms".to_string()];
    let mut mdms_extra = vec!["--poll-interval", &interval, "--key-refresh", "1s"];
    let db_flag = s.db.as_ref().map(|d| d.to_string_lossy().into_owned());
    if let Some(d) = &db_flag {
        mdms_extra.extend(["--db", d]);
    }
    mdms_args.extend(common("mdms", &mdms_extra));
    procs.spawn("mdms", &mdms_args)?;
    let mut p_args = vec!["pricing".to_string()];
    let publish = format!("{}ms", (s.interval.as_millis() * 3).max(500));
    p_args.extend(common(
        "pricing",
        &["--publish-interval", &publish, "--key-refresh", "1s"],
    ));
    procs.spawn("pricing", &p_args)?;
    let mut d_args = vec!["dr".to_string()];
    d_args.extend(common(
        "dr",
        &["--publish-interval", &publish, "--key-refresh", "1s"],
    ));
    procs.spawn("dr", &d_args)?;
    for n in ["mdms", "pricing", "dr"] {
        wait_for(n, Duration::from_secs(20), || ready(&prov, n)).await?;
    }

    // 5. The meters, each group behind its concentrator.
    step("meters enrol");
    let sync = format!("{}ms", s.interval.as_millis().clamp(200, 1000));
    let meter_args = |node: &str, first: u32| -> Vec<String> {
        args(&[
            "meter",
            "-c",
            &ctx.node(node),
            "--forwarder",
            &socket_of(first),
            "--reading-interval",
            &interval,
            "--sync-interval",
            &sync,
            "--metrics-interval",
            "250ms",
        ])
    };
    let running_groups: Vec<(String, Vec<u32>)> = meter_groups
        .iter()
        .filter(|(g, _)| g != "meters-late" && g != "meters-probe")
        .cloned()
        .collect();
    for (g, ids) in &running_groups {
        procs.spawn(g, &meter_args(g, ids[0]))?;
    }
    let enrol_deadline = Duration::from_secs(30 + u64::from(n) / 10);
    let count_members = |groups: &[(String, Vec<u32>)]| -> usize {
        groups
            .iter()
            .map(|(g, _)| {
                meter_views(&ctx.metrics(g))
                    .values()
                    .filter(|m| m["member"].as_bool() == Some(true))
                    .count()
            })
            .sum()
    };
    let t_enrol = Instant::now();
    let all_joined = wait_for("every meter to join", enrol_deadline, || {
        let m = count_members(&running_groups);
        bar.set_message(format!("meters enrol: {m}/{n} members"));
        m == n as usize
    })
    .await;
    let enrol_ms = t_enrol.elapsed().as_millis() as u64;
    let mut checks = Checks(Vec::new());
    checks.add(
        "enrolment: every meter joined through its concentrator with its entitled projects",
        all_joined.is_ok(),
        format!(
            "{} of {n} members after {enrol_ms} ms",
            count_members(&running_groups)
        ),
    );

    // 6. Readings, prices and DR events flow.
    let phase = s.duration / 4;
    step("readings flow");
    let t_flow = Instant::now();
    // Before any churn, the MDMS has readings from every meter (bounded wait).
    let db = match &s.db {
        Some(target) => target.to_string_lossy().into_owned(),
        None => prov
            .join("mdms/state/readings.db")
            .to_string_lossy()
            .into_owned(),
    };
    let first_heard = wait_for(
        "first readings from every meter",
        Duration::from_secs(30),
        || {
            amicn_ami::open_reading_store(&db)
                .and_then(|s| s.per_meter())
                .map(|m| (1..=n).all(|id| m.contains_key(&id)))
                .unwrap_or(false)
        },
    )
    .await;
    if let Err(e) = &first_heard {
        tracing::warn!("{e}");
    }
    tokio::time::sleep(phase.saturating_sub(t_flow.elapsed())).await;
    let before_kill = ctx.metrics("kms");
    let epochs_before: Vec<EpochSummary> = before_kill
        .as_ref()
        .and_then(|v| serde_json::from_value(v["details"]["epochs"].clone()).ok())
        .unwrap_or_default();

    // 7. Churn, then a KMS crash mid-rekey: the leave and move are staged and persisted.
    step("leave, move, KMS SIGKILL");
    let leave = ctx.tool(&[
        "ami",
        "leave",
        "-c",
        &ctx.node("operator"),
        "--forwarder",
        &head_uri,
        "--meter",
        &leaver.to_string(),
    ]);
    let new_set: Vec<String> = if entitled[&mover].is_empty() {
        projects.iter().take(1).cloned().collect()
    } else {
        Vec::new()
    };
    let moved = ctx.tool(&[
        "ami",
        "entitle",
        "-c",
        &ctx.node("dr"),
        "--forwarder",
        &head_uri,
        "--meters",
        &mover.to_string(),
        "--set",
        &new_set.join(","),
    ]);
    entitled.insert(mover, new_set.clone());
    let delay = rand::rng().random_range(0..1000u64);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    procs.crash("kms")?;
    let _ = std::fs::remove_file(prov.join("kms/state/ready"));
    procs.spawn("kms", &ctx.kms_args())?;
    let restart1 = wait_for("the restarted KMS", Duration::from_secs(20), || {
        ready(&prov, "kms")
    })
    .await;
    checks.add(
        "authority: the utility operator's leave and the DR operator's move are accepted",
        leave.is_ok() && moved.is_ok(),
        format!("leave: {leave:?}; move: {moved:?}"),
    );
    // The MDMS crashes too, mid-ingest; while it is down the meters keep their readings.
    procs.crash("mdms")?;
    let _ = std::fs::remove_file(prov.join("mdms/state/ready"));
    let committed_before: BTreeSet<(u32, u64)> = amicn_ami::open_reading_store(&db)
        .and_then(|s| s.keys())
        .map(|k| k.into_iter().collect())
        .unwrap_or_default();
    let down_from_us = amicn_ami::now_us();
    tokio::time::sleep(s.interval * 3).await;
    let down_until_us = amicn_ami::now_us();
    procs.spawn("mdms", &mdms_args)?;
    let mdms_back = wait_for("the restarted MDMS", Duration::from_secs(20), || {
        ready(&prov, "mdms")
    })
    .await;
    tokio::time::sleep(phase / 2).await;

    // 8. Revocation, then a second crash; a late meter joins.
    step("revocation, KMS SIGKILL, late join");
    let revoke = ctx.tool(&[
        "ami",
        "revoke",
        "-c",
        &ctx.node("operator"),
        "--forwarder",
        &head_uri,
        "--meter",
        &revoked.to_string(),
    ]);
    let revoked_at_us = amicn_ami::now_us();
    tokio::time::sleep(Duration::from_millis(300)).await;
    procs.crash("kms")?;
    let _ = std::fs::remove_file(prov.join("kms/state/ready"));
    procs.spawn("kms", &ctx.kms_args())?;
    let restart2 = wait_for("the restarted KMS", Duration::from_secs(20), || {
        ready(&prov, "kms")
    })
    .await;
    procs.spawn("meters-late", &meter_args("meters-late", late))?;
    step("readings flow");
    tokio::time::sleep(phase + phase / 2).await;
    // The late meter loses power (SIGKILL) once the MDMS holds a few of its readings, and comes
    // back from its state directory: its missed intervals are a gap for VEE to estimate and
    // its first interval after the restart carries the outage flag.
    let late_readings = || {
        amicn_ami::open_reading_store(&db)
            .and_then(|s| s.per_meter())
            .map(|m| m.get(&late).map_or(0, |(c, _)| *c))
            .unwrap_or(0)
    };
    let late_ready = wait_for(
        "readings of the late meter",
        Duration::from_secs(20),
        || late_readings() >= 3,
    )
    .await;
    procs.crash("meters-late")?;
    let outage_from_us = amicn_ami::now_us();
    tokio::time::sleep(s.interval * 4).await;
    let outage_to_us = amicn_ami::now_us();
    procs.spawn("meters-late", &meter_args("meters-late", late))?;
    // Back: its readings after the restart reach the MDMS, and VEE (which validates readings
    // older than three rounds) gets to see them.
    let newest_late = || {
        amicn_ami::open_reading_store(&db)
            .and_then(|s| s.per_meter())
            .map(|m| m.get(&late).map_or(0, |(_, t)| *t))
            .unwrap_or(0)
    };
    let _ = wait_for(
        "readings of the late meter after its restart",
        Duration::from_secs(20),
        || newest_late() > outage_to_us + 2 * s.interval.as_micros() as u64,
    )
    .await;
    tokio::time::sleep(s.interval * 4).await;

    // 9. Probes: a revoked meter after the restart; a meter asking for a project it lacks.
    step("probes");
    let revoked_group = &meter_groups[group_of(revoked)].0;
    let probe_revoked = ctx.tool(&[
        "meter",
        "-c",
        &ctx.node(revoked_group),
        "--forwarder",
        &socket_of(revoked),
        "--probe-enrol",
        &revoked.to_string(),
    ]);
    let greedy = projects.first().cloned().unwrap_or_default();
    let probe_greedy = ctx.tool(&[
        "meter",
        "-c",
        &ctx.node("meters-probe"),
        "--forwarder",
        &socket_of(probe),
        "--probe-enrol",
        &probe.to_string(),
        "--projects",
        &greedy,
    ]);

    // 10. Convergence: every member reaches the KMS's epoch.
    step("convergence");
    let mut all_groups = running_groups.clone();
    all_groups.push(("meters-late".into(), vec![late]));
    let kms_epoch = || counter(&ctx.metrics("kms"), "epoch") as u64;
    let synced = wait_for(
        "every member at the KMS's epoch",
        Duration::from_secs(30),
        || {
            let e = kms_epoch();
            all_groups.iter().all(|(g, _)| {
                meter_views(&ctx.metrics(g))
                    .values()
                    .filter(|m| m["member"].as_bool() == Some(true))
                    .all(|m| m["epoch"].as_u64() == Some(e))
            })
        },
    )
    .await;
    // ... and the MDMS has heard from every meter that should have reported.
    let should_hear: Vec<u32> = (1..=n).chain([late]).collect();
    let heard_all = || {
        amicn_ami::open_reading_store(&db)
            .and_then(|s| s.per_meter())
            .map(|m| should_hear.iter().all(|id| m.contains_key(id)))
            .unwrap_or(false)
    };
    let _ = wait_for(
        "readings from every meter",
        Duration::from_secs(20),
        heard_all,
    )
    .await;
    // 11. Meter operations: on-demand reads, disconnect, limit, reconnect, refusals.
    step("meter operations");
    let op_members: Vec<u32> = should_hear
        .iter()
        .copied()
        .filter(|id| ![leaver, revoked].contains(id))
        .collect();
    let op_target = op_members
        .iter()
        .copied()
        .find(|&id| id != mover)
        .unwrap_or(late);
    let op_other = op_members
        .iter()
        .copied()
        .find(|&id| id != op_target)
        .unwrap_or(late);
    let signer_group = running_groups
        .iter()
        .find(|(_, ids)| ids.iter().any(|&i| i != op_target))
        .map(|(g, ids)| {
            let id = ids
                .iter()
                .copied()
                .find(|&i| i != op_target)
                .unwrap_or(ids[0]);
            (g.clone(), id)
        })
        .unwrap_or_else(|| ("meters-late".into(), late));
    let ops = super::demo_ops::run(&super::demo_ops::OpsPlan {
        exe: Path::new(&ctx.exe),
        prov: &prov,
        head_uri: &head_uri,
        members: op_members,
        target: op_target,
        other: op_other,
        meter_node: signer_group,
    });
    // 12. Grid operations: meter events, tariffs and DR, under a utility prefix of their own
    // (head-end roles on the head-end forwarder, meters behind c1).
    step("grid operations");
    let grid_names = AmiNames::new(&format!("{}/field", names.prefix_str()))?;
    route(c1, grid_names.utility(), uplinks[0], UPLINK_COST).await?;
    route(head, &grid_names.role("meter"), h_to_c1, UPLINK_COST).await?;
    let grid = amicn_ami::grid_ops::run(&amicn_ami::grid_ops::GridOpsSettings {
        utility: grid_names.prefix_str().to_string(),
        head: amicn_face::client::TransportUri::Unix(dir.join("head.sock")),
        edge: amicn_face::client::TransportUri::Unix(dir.join("c1.sock")),
        opted_in: 6,
        opted_out: 2,
        outsiders: 2,
        dr_events: 3,
        state_dir: dir.join("grid-ops"),
    })
    .await
    .context("grid operations")?;
    let mut forwarders = Vec::new();
    for (f, c) in fwd_names.iter().zip(&mgmt) {
        let (hits, misses) = cs_counts(c).await.unwrap_or((0, 0));
        forwarders.push(ForwarderReport {
            name: f.to_string(),
            cs_hits: hits,
            cs_misses: misses,
            hit_ratio: if hits + misses > 0 {
                hits as f64 / (hits + misses) as f64
            } else {
                0.0
            },
        });
    }

    // 12. Stop everything by PID; daemons write their final counters on SIGTERM.
    step("stopping");
    drop(mgmt);
    procs.stop_all(Duration::from_secs(5));
    let none_left = procs.all_exited();
    bar.finish_and_clear();

    // 13. Judge.
    let kms = ctx.metrics("kms");
    let epochs: Vec<EpochSummary> = kms
        .as_ref()
        .and_then(|v| serde_json::from_value(v["details"]["epochs"].clone()).ok())
        .unwrap_or_default();
    let final_epoch = counter(&kms, "epoch") as u32;
    let kms_entitled: BTreeMap<u32, Vec<String>> = kms
        .as_ref()
        .and_then(|v| serde_json::from_value(v["details"]["entitled_keys"].clone()).ok())
        .unwrap_or_default();
    let mut views = BTreeMap::new();
    for (g, _) in &all_groups {
        views.extend(meter_views(&ctx.metrics(g)));
    }
    let members: Vec<u32> = kms_entitled.keys().copied().collect();
    let mut out_of_sync = Vec::new();
    for id in &members {
        let v = views.get(id);
        let held: BTreeSet<String> = v
            .and_then(|v| v["held_keys"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = kms_entitled[id].iter().cloned().collect();
        if held != want {
            out_of_sync.push(*id);
        }
    }
    checks.add(
        "KMS restarts: every member still derives exactly its current keys",
        synced.is_ok() && out_of_sync.is_empty() && !members.is_empty(),
        format!(
            "{} members at epoch {final_epoch}; out of sync: {out_of_sync:?}",
            members.len()
        ),
    );
    let numbers: Vec<u32> = epochs.iter().map(|e| e.epoch).collect();
    let contiguous = numbers.windows(2).all(|w| w[1] == w[0] + 1);
    let mut changed = Vec::new();
    for e in &epochs_before {
        match epochs.iter().find(|x| x.epoch == e.epoch) {
            Some(x) if x.content_digest == e.content_digest => {}
            _ => changed.push(e.epoch),
        }
    }
    checks.add(
        "KMS restarts: no epoch reused, nothing published twice with different content",
        restart1.is_ok() && restart2.is_ok() && contiguous && changed.is_empty() && !numbers.is_empty(),
        format!(
            "epochs {:?}..{:?} ({} in the durable log, contiguous: {contiguous}); changed after a restart: {changed:?}",
            numbers.first(),
            numbers.last(),
            numbers.len()
        ),
    );
    let mut overreach = Vec::new();
    for (id, v) in &views {
        let held: BTreeSet<String> = v["projects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let allowed: BTreeSet<String> = entitled
            .get(id)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !held.is_subset(&allowed) {
            overreach.push(format!("meter {id} holds {held:?}, entitled {allowed:?}"));
        }
    }
    checks.add(
        "entitlement: no meter holds a project key the DR operator did not grant",
        overreach.is_empty() && !views.is_empty(),
        if overreach.is_empty() {
            format!("{} meters checked", views.len())
        } else {
            overreach.join("; ")
        },
    );
    checks.add(
        "entitlement: a meter asking for a project it is not entitled to is refused",
        matches!(&probe_greedy, Err(e) if e.contains("not-entitled")),
        format!("{probe_greedy:?}"),
    );
    checks.add(
        "revocation: the revoked meter cannot enrol after a KMS restart",
        revoke.is_ok() && matches!(&probe_revoked, Err(e) if e.contains("revoked")),
        format!("revoke: {revoke:?}; re-enrolment: {probe_revoked:?}"),
    );
    let gone = |id: u32| {
        views
            .get(&id)
            .is_some_and(|v| v["member"].as_bool() == Some(false))
    };
    checks.add(
        "leave and revocation: the leaver and the revoked meter hold no place in the key graph",
        gone(leaver) && gone(revoked) && !members.contains(&leaver) && !members.contains(&revoked),
        format!(
            "leaver {leaver}, revoked {revoked}, KMS members {}",
            members.len()
        ),
    );
    checks.add(
        "late join: a meter started later joins and follows",
        members.contains(&late) && !out_of_sync.contains(&late),
        format!(
            "meter {late}: {:?}",
            views.get(&late).map(|v| v["epoch"].clone())
        ),
    );

    // Readings, from the MDMS database.
    let per_meter = amicn_ami::open_reading_store(&db)?.per_meter()?;
    let committed_after: BTreeSet<(u32, u64)> = amicn_ami::open_reading_store(&db)?
        .keys()?
        .into_iter()
        .collect();
    let lost = committed_before.difference(&committed_after).count();
    let gap_filled = committed_after
        .iter()
        .filter(|(m, t)| *m != revoked && *m != leaver && (down_from_us..down_until_us).contains(t))
        .map(|(m, _)| *m)
        .collect::<BTreeSet<u32>>()
        .len();
    checks.add(
        "MDMS SIGKILL mid-ingest: no committed reading lost or duplicated, the outage re-fetched by name",
        mdms_back.is_ok() && lost == 0 && gap_filled + 2 >= n as usize && !committed_before.is_empty(),
        format!(
            "{} readings committed before the kill, {lost} of them lost; readings stamped during the {} ms outage stored for {gap_filled} meters (the primary key rules out duplicates)",
            committed_before.len(),
            (down_until_us - down_from_us) / 1000
        ),
    );
    let mdms = ctx.metrics("mdms");
    let unheard: Vec<u32> = should_hear
        .iter()
        .copied()
        .filter(|id| per_meter.get(id).is_none_or(|(c, _)| *c == 0))
        .collect();
    checks.add(
        "collection: the MDMS stored readings from every meter (committed, signed Data kept)",
        unheard.is_empty(),
        format!(
            "{} readings from {} meters; unheard: {unheard:?}",
            per_meter.values().map(|(c, _)| c).sum::<u64>(),
            per_meter.len()
        ),
    );
    // The revocation list is fresh for 1 s; the MDMS reads it at the start of every round.
    let latency_bound_us = 1_000_000 + 2 * s.interval.as_micros() as u64;
    let after_revocation = per_meter
        .get(&revoked)
        .map(|(_, newest)| *newest)
        .unwrap_or(0);
    checks.add(
        "revocation: the MDMS stores no reading the revoked meter stamped later than one collection round after the revocation list",
        after_revocation < revoked_at_us + latency_bound_us,
        format!(
            "newest stored reading of meter {revoked}: {:+} ms from its revocation (bound {} ms: list freshness + one round); refused as revoked: {}",
            (after_revocation as i64 - revoked_at_us as i64) / 1000,
            latency_bound_us / 1000,
            counter(&mdms, "rejected_revoked")
        ),
    );
    let attacker = read_json(&attack_stats);
    let answers = attacker
        .as_ref()
        .and_then(|v| v["answered"].as_u64())
        .unwrap_or(0);
    let c1_meters: Vec<u32> = (1..=n).filter(|&id| group_of(id) % 2 == 0).collect();
    let c1_heard = c1_meters
        .iter()
        .filter(|id| per_meter.get(id).is_some_and(|(c, _)| *c > 0))
        .count();
    checks.add(
        "cache integrity: an attacker answering first with forged wraps and readings stops neither rekeying nor collection",
        answers > 0 && c1_heard == c1_meters.len() && out_of_sync.iter().all(|id| !c1_meters.contains(id)),
        format!(
            "{answers} forged answers behind c1; {c1_heard}/{} c1 meters heard; MDMS rejected {}",
            c1_meters.len(),
            counter(&mdms, "rejected_untrusted")
        ),
    );
    let mut price_rx = 0.0;
    let mut dr_rx = 0.0;
    let mut latency = BTreeMap::new();
    let mut series = Vec::new();
    let mut wraps_fetched = 0.0;
    let mut lat_groups: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut lat_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, _) in &all_groups {
        let v = ctx.metrics(g);
        price_rx += counter(&v, "price_received");
        dr_rx += counter(&v, "dr_received");
        wraps_fetched += counter(&v, "wraps_fetched");
        if let Some(v) = &v {
            for (k, class) in [
                ("price_latency", "price"),
                ("dr_latency", "dr event"),
                ("rekey_latency", "rekey"),
                ("event_latency", "meter event (daemons)"),
                ("dr_ack_latency", "dr ack (daemons)"),
                ("tariff_latency", "tariff update (daemons)"),
            ] {
                let (l, samples) = latency_of(&v["details"][k]);
                lat_groups.entry(class).or_default().extend(samples);
                *lat_counts.entry(class).or_default() += l.samples;
            }
        }
    }
    if let Some(v) = &mdms {
        let (_, samples) = latency_of(&v["details"]["reading_fetch_latency"]);
        lat_counts.insert(
            "reading",
            v["details"]["reading_fetch_latency"]["count"]
                .as_u64()
                .unwrap_or(0) as usize,
        );
        lat_groups.insert("reading", samples);
    }
    for (class, samples) in &lat_groups {
        let (l, _) = latency_of(
            &serde_json::json!({"samples_us": samples, "count": lat_counts.get(class).copied().unwrap_or(0)}),
        );
        latency.insert(class.to_string(), l);
        series.push(plots::LatencySeries {
            label: class.to_string(),
            samples_us: samples.clone(),
        });
    }
    checks.add(
        "prices and DR events: meters decrypt the broadcast price and their projects' events",
        price_rx > 0.0 && dr_rx > 0.0,
        format!("{price_rx} price and {dr_rx} DR-event deliveries"),
    );
    let served_wraps = counter(&kms, "served_wrap");
    let cache_hits: u64 = forwarders.iter().map(|f| f.cs_hits).sum();
    checks.add(
        "in-network caching: forwarders answer key traffic the KMS would otherwise serve",
        cache_hits > 0,
        format!(
            "meters fetched {wraps_fetched} wraps, the KMS served {served_wraps} (this process); CS hits {}",
            forwarders
                .iter()
                .map(|f| format!("{} {} ({:.0}%)", f.name, f.cs_hits, f.hit_ratio * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for c in ops.checks {
        checks.add(c.name, c.pass, c.detail);
    }
    // VEE at the MDMS: the late meter's outage is a gap estimated and flagged; the signed
    // originals in the store carry no estimate.
    let vee_late = mdms
        .as_ref()
        .map(|v| v["details"]["vee"]["meters"][late.to_string()].clone())
        .unwrap_or(Value::Null);
    let audit =
        std::fs::read_to_string(prov.join("mdms/state/vee-audit.jsonl")).unwrap_or_default();
    let late_estimates = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["meter"] == serde_json::json!(late) && e["action"] == "estimate")
        .filter(|e| {
            e["end_us"].as_u64().is_some_and(|t| {
                t > outage_from_us && t < outage_to_us + 2 * s.interval.as_micros() as u64
            })
        })
        .count();
    let originals_untouched = amicn_ami::open_reading_store(&db)
        .and_then(|st| st.meter_range(late, 0, u64::MAX))
        .map(|rs| {
            !rs.is_empty()
                && rs
                    .iter()
                    .all(|r| !r.flags.contains(amicn_ami::reading::Flags::ESTIMATED))
        })
        .unwrap_or(false);
    let u = |k: &str| vee_late[k].as_u64().unwrap_or(0);
    let vee_report = {
        let meters = mdms
            .as_ref()
            .map(|v| v["details"]["vee"]["meters"].clone())
            .unwrap_or(Value::Null);
        let mut totals = serde_json::Map::new();
        for k in [
            "intervals",
            "actual",
            "estimated",
            "edited",
            "gaps",
            "spikes",
            "rollbacks",
            "zero_flagged",
            "outage_flagged",
        ] {
            let n: u64 = meters
                .as_object()
                .map(|o| o.values().filter_map(|m| m[k].as_u64()).sum())
                .unwrap_or(0);
            totals.insert(k.to_string(), n.into());
        }
        serde_json::json!({ "totals": totals, "audit_entries": counter(&mdms, "vee_audit_entries"), "meters": meters })
    };
    checks.add(
        "VEE: the late meter's power loss is a gap estimated (marked, audited) and its restart interval outage-flagged; the stored originals are unchanged",
        late_ready.is_ok()
            && u("gaps") >= 1
            && u("estimated") >= 1
            && u("outage_flagged") >= 1
            && late_estimates >= 1
            && originals_untouched,
        format!(
            "meter {late} down {} ms: VEE summary {vee_late}; {late_estimates} estimates in the audit trail for the outage; originals without estimate flags: {originals_untouched}",
            (outage_to_us - outage_from_us) / 1000
        ),
    );
    // The role daemons' own operations: the late meter's restart is a restoration event at
    // the MDMS, DR acknowledgements come from members on record, members follow the TOU tariff.
    let restored = amicn_ami::open_reading_store(&db)
        .and_then(|st| st.events())
        .map(|ev| {
            ev.iter()
                .filter(|e| {
                    e.event.meter == late
                        && e.event.kind == amicn_ami::events::EventKind::Restoration
                        && e.event.t_us > outage_from_us
                })
                .count()
        })
        .unwrap_or(0);
    checks.add(
        "events (role daemons): the late meter reports its restoration after the power loss; the MDMS commits it",
        restored >= 1,
        format!(
            "{restored} restoration event(s) of meter {late} stored; MDMS events by kind: {}",
            mdms.as_ref()
                .map(|v| v["counters"]
                    .as_object()
                    .map(|o| o
                        .iter()
                        .filter(|(k, _)| k.starts_with("events_"))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default())
                .unwrap_or_default()
        ),
    );
    let dr_m = ctx.metrics("dr");
    let on_record =
        amicn_ami::daemon::load_entitlements(&prov.join("dr/state")).unwrap_or_default();
    let dr_reports: Vec<Value> = dr_m
        .as_ref()
        .and_then(|v| v["details"]["events"].as_array().cloned())
        .unwrap_or_default();
    let mut ack_outsiders = Vec::new();
    for r in &dr_reports {
        let p = r["report"]["project"].as_str().unwrap_or("");
        for k in ["opted_in", "opted_out"] {
            for m in r["report"][k].as_array().into_iter().flatten() {
                let id = m.as_u64().unwrap_or(0) as u32;
                if !on_record
                    .get(&id)
                    .is_some_and(|set| set.iter().any(|x| x == p))
                {
                    ack_outsiders.push(format!("{id} in {p}"));
                }
            }
        }
    }
    checks.add(
        "DR (role daemons): members acknowledge the operator's events; only members on record are counted",
        counter(&dr_m, "acks") > 0.0 && ack_outsiders.is_empty(),
        format!(
            "{} acknowledgements over the last {} events; refused {}; counted outsiders {ack_outsiders:?}",
            counter(&dr_m, "acks"),
            dr_reports.len(),
            dr_m.as_ref()
                .map(|v| v["details"]["acks_refused"].to_string())
                .unwrap_or_default()
        ),
    );
    let member_views: Vec<&Value> = views
        .values()
        .filter(|v| v["member"].as_bool() == Some(true))
        .collect();
    let without_tariff: Vec<u64> = member_views
        .iter()
        .filter(|v| v["tariff_version"].as_u64().is_none())
        .filter_map(|v| v["id"].as_u64())
        .collect();
    let with_registers = member_views
        .iter()
        .filter(|v| {
            v["tariff_registers"]
                .as_object()
                .is_some_and(|o| o.values().any(|x| x.as_u64() > Some(0)))
        })
        .count();
    checks.add(
        "tariff (role daemons): every member follows the TOU tariff's signed latest pointer and keeps per-period registers",
        !member_views.is_empty() && without_tariff.is_empty() && with_registers > 0,
        format!(
            "{} members; without a tariff: {without_tariff:?}; {with_registers} with energy in their period registers",
            member_views.len()
        ),
    );
    let meter_metrics: Vec<Option<Value>> =
        all_groups.iter().map(|(g, _)| ctx.metrics(g)).collect();
    let counted = super::demo_ops::refused_by_meters(&meter_metrics);
    let n_of = |k: &str| counted.get(k).copied().unwrap_or(0.0);
    checks.add(
        "meter counters: the meters counted each refused command by kind",
        n_of("signer") >= 2.0 && n_of("replay") >= 1.0 && n_of("wrong-meter") >= 1.0,
        format!("{counted:?}"),
    );
    latency.extend(ops.latency);
    for (class, samples) in &grid.latency_us {
        let (l, _) =
            latency_of(&serde_json::json!({"samples_us": samples, "count": samples.len()}));
        latency.insert(class.clone(), l);
        series.push(plots::LatencySeries {
            label: class.clone(),
            samples_us: samples.clone(),
        });
    }
    for c in &grid.checks {
        checks.add(c.name.clone(), c.pass, c.detail.clone());
    }
    checks.add(
        "every process the demo started was stopped by PID",
        none_left,
        format!("{} processes", procs.list.len()),
    );

    // Epoch table with the leave formula where an epoch only removed meters.
    let departed_sets = |e: &EpochSummary| -> Vec<Vec<String>> {
        e.departed
            .iter()
            .map(|m| {
                if *m == mover {
                    plan(mover, &projects)
                } else {
                    entitled.get(m).cloned().unwrap_or_default()
                }
            })
            .collect()
    };
    let mut rows = Vec::new();
    let mut traffic = Vec::new();
    for e in &epochs {
        let f = (e.joins == 0 && e.departs > 0 && !e.before.is_empty()).then(|| {
            leave_formula(
                &e.before,
                &e.after,
                &departed_sets(e),
                s.degree,
                (e.tree_wraps, e.project_wraps, e.root_wraps),
            )
        });
        traffic.push(plots::EpochTraffic {
            epoch: e.epoch,
            label: e.label.clone(),
            unicast: e.unicast_wraps,
            multicast: e.multicast_wraps,
            broadcast: e.broadcast_wraps,
            formula: f.as_ref().map(|(_, w, _)| *w),
        });
        rows.push(EpochRow {
            epoch: e.epoch,
            label: e.label.clone(),
            joins: e.joins,
            departs: e.departs,
            unicast: e.unicast_wraps,
            multicast: e.multicast_wraps,
            broadcast: e.broadcast_wraps,
            manifest_segments: e.manifest_segments,
            wire_bytes: e.wire_bytes,
            formula: f.as_ref().map(|(t, _, _)| t.clone()),
            formula_wraps: f.as_ref().map(|(_, w, _)| *w),
            formula_holds: f.as_ref().map(|(_, _, h)| *h),
        });
    }
    let bad_formula: Vec<u32> = rows
        .iter()
        .filter(|r| r.formula_holds == Some(false))
        .map(|r| r.epoch)
        .collect();
    if rows.iter().any(|r| r.formula_holds.is_some()) {
        checks.add(
            "rekey cost: leave epochs match the key-graph formula",
            bad_formula.is_empty(),
            format!("epochs off the formula: {bad_formula:?}"),
        );
    }

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut plot_files = Vec::new();
    let mut note = plots::PlotNote::Complete;
    let lat_png = out.join("latency_cdf.png");
    note = worst(
        note,
        plots::latency_cdf(&lat_png, "latency per traffic class", &series)?,
    );
    plot_files.push(lat_png.display().to_string());
    let rk_png = out.join("rekey_traffic.png");
    note = worst(note, plots::rekey_traffic(&rk_png, &traffic)?);
    plot_files.push(rk_png.display().to_string());
    let cs_png = out.join("cache_hits.png");
    let items: Vec<(String, f64)> = forwarders
        .iter()
        .map(|f| (f.name.clone(), f.hit_ratio))
        .collect();
    note = worst(
        note,
        plots::bars(
            &cs_png,
            "Content Store hit ratio per forwarder",
            "hit ratio",
            &items,
        )?,
    );
    plot_files.push(cs_png.display().to_string());
    if note == plots::PlotNote::NoFont {
        eprintln!(
            "note: no TrueType font found (install fonts-dejavu-core or set AMICN_PLOT_FONT); plots have no text"
        );
    }

    let mut readings = BTreeMap::new();
    for k in [
        "requested",
        "received",
        "verified",
        "stored",
        "missing",
        "pointers",
        "pointers_rejected",
        "rows",
    ] {
        readings.insert(k.to_string(), counter(&mdms, k));
    }
    let mut kms_counters = BTreeMap::new();
    if let Some(c) = kms.as_ref().and_then(|v| v["counters"].as_object()) {
        for (k, v) in c {
            kms_counters.insert(k.clone(), v.as_f64().unwrap_or(0.0));
        }
    }
    let processes = procs
        .list
        .iter_mut()
        .map(|p| ProcessReport {
            name: p.name.clone(),
            pid: p.child.id(),
            peak_rss_kib: p.peak_rss_kib,
            exit: p.child.try_wait().ok().flatten().map(|s| s.to_string()),
        })
        .collect();
    let pass = checks.0.iter().all(|c| c.pass);
    let report = Report {
        settings: s.clone(),
        meter_groups: groups,
        dir: dir.display().to_string(),
        readings,
        meters_heard: per_meter.len(),
        kms: kms_counters,
        epochs: rows,
        forwarders,
        latency,
        processes,
        attacker_answers: answers,
        operations: ops.summary,
        grid_operations: grid.summary,
        vee: vee_report,
        checks: checks.0,
        pass,
        elapsed_ms: started.elapsed().as_millis() as u64,
        plots: plot_files,
    };
    let json = serde_json::to_vec_pretty(&report)?;
    std::fs::write(out.join("report.json"), json)
        .with_context(|| format!("writing {}", out.join("report.json").display()))?;
    if pass && std::env::var_os("AMICN_DEMO_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}

fn worst(a: plots::PlotNote, b: plots::PlotNote) -> plots::PlotNote {
    if a == plots::PlotNote::NoFont { a } else { b }
}

/// Prints the report as text.
pub(crate) fn print_text(r: &Report, out: &Path) {
    println!(
        "amicn demo: {} meters in {} groups behind 2 concentrators, {} DR projects, {} ms",
        r.settings.meters, r.meter_groups, r.settings.projects, r.elapsed_ms
    );
    println!("\nreadings (MDMS): {:?}", r.readings);
    println!("\nepochs:");
    println!(
        "  epoch  label        joins departs  unicast multicast broadcast  segs     bytes  formula"
    );
    for e in &r.epochs {
        println!(
            "  {:>5}  {:<12} {:>5} {:>7} {:>8} {:>9} {:>9} {:>5} {:>9}  {}",
            e.epoch,
            e.label,
            e.joins,
            e.departs,
            e.unicast,
            e.multicast,
            e.broadcast,
            e.manifest_segments,
            e.wire_bytes,
            match (&e.formula, e.formula_holds) {
                (Some(f), Some(h)) => format!("{} {f}", if h { "ok" } else { "OFF" }),
                _ => String::new(),
            }
        );
    }
    println!("\nContent Store per forwarder:");
    for f in &r.forwarders {
        println!(
            "  {:<5} hits {:>7}  misses {:>7}  hit ratio {:.1}%",
            f.name,
            f.cs_hits,
            f.cs_misses,
            f.hit_ratio * 100.0
        );
    }
    println!("\nlatency:");
    for (k, l) in &r.latency {
        let ms = |v: Option<u64>| v.map_or("-".into(), |u| format!("{:.1} ms", u as f64 / 1000.0));
        println!(
            "  {k:<14} n={:<6} p50 {:>9}  p90 {:>9}  p99 {:>9}",
            l.samples,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us)
        );
    }
    println!(
        "\nVEE at the MDMS: {} (audit entries: {})",
        r.vee["totals"], r.vee["audit_entries"]
    );
    let g = &r.grid_operations;
    println!(
        "\ngrid operations: events stored {} {}, refused {}; tariff versions adopted {}; DR refused {}",
        g["events"]["stored"],
        g["events"]["by_kind"],
        g["events"]["refused"],
        g["tariffs"]["adopted"],
        g["dr"]["refused"]
    );
    for e in g["dr"]["events"].as_array().into_iter().flatten() {
        println!(
            "  DR {}: opted in {}, out {}, silent {}",
            e["event_id"], e["opted_in"], e["opted_out"], e["silent"]
        );
    }
    println!("\nprocesses (peak RSS):");
    for p in &r.processes {
        println!(
            "  {:<16} pid {:<8} {}",
            p.name,
            p.pid,
            p.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        );
    }
    println!("\nchecks:");
    for c in &r.checks {
        println!(
            "  {} {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!(
        "\nreport: {}/report.json; plots: {}",
        out.display(),
        r.plots.join(", ")
    );
    if !r.pass {
        println!("state and logs kept in {}", r.dir);
    }
}
