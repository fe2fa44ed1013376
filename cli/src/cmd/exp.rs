//! `amicn exp`: run a topology as an experiment in network namespaces on this machine.
//!
//! `amicn exp run topo.toml` writes every node's configuration (`amicn topo configs`), creates
//! one network namespace per node and one veth pair per link with the link's /30 addresses,
//! shapes bandwidth with `tc` where the kernel allows it, and emulates delay and loss with netem
//! — or, on kernels without netem, in the forwarders' faces (probed, and labelled as emulation in
//! the results). It starts `amicn fwd` in every namespace and the role daemons beside them,
//! waits on real readiness (forwarder sockets, configured faces, KMS readiness, every meter
//! enrolled, the MDMS holding a reading from every meter), then measures for the run's duration
//! while the scenario's events happen (leaves, revocations, killed nodes, failed links whose
//! routes are recomputed and pushed through NFD management). It stops every process it started
//! by PID, reads every node's counters and writes `summary.json`, CSV files and PNG plots;
//! `[[assert]]`s in the topology decide the exit status.
//!
//! Every run records what it created (namespaces, PIDs with their start times) in a record file
//! as it goes; a later run, or `amicn exp cleanup`, removes what a crashed run left behind from
//! that record alone, never by process or interface name.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amicn_ami::topo::{Action, Role, Route, Topology, parse_duration};
use amicn_face::client::Client;
use amicn_tlv::Name;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mesh::{
    Procs, connect_when_up, counter, face_ids, latency_of, meter_views, meters_heard, read_json,
    ready, route, unroute, wait_for,
};
use super::plots;
use super::topo::{Layout, peer_uri, write_configs};

#[derive(Debug, Args)]
pub(crate) struct ExpArgs {
    #[command(subcommand)]
    cmd: ExpCmd,
}

#[derive(Debug, Subcommand)]
enum ExpCmd {
    /// Run a topology in network namespaces and write its results
    Run(RunArgs),
    /// Run a topology twice, the second time with settings changed, and compare
    Compare(CompareArgs),
    /// Remove what crashed runs left behind (namespaces, processes), from their records
    Cleanup,
}

#[derive(Debug, Args, Clone)]
struct RunArgs {
    /// Topology file (see `amicn topo`)
    topology: PathBuf,
    /// Results directory (default: exp-NAME-TIME)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Change a setting: cs_capacity=N, strategy=NAME, reading_interval=DUR, duration=DUR
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// How hosts and links are made: plain namespaces and veth pairs, or Mininet (switchless)
    #[arg(long, value_enum, default_value_t = Backend::Netns)]
    backend: Backend,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

/// How the runner makes hosts and links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// `ip netns` namespaces and veth pairs (no dependency but iproute2).
    Netns,
    /// Mininet hosts joined by TCLinks, without switches (Debian package `mininet`).
    Mininet,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Topology file
    topology: PathBuf,
    /// The change of the second run, e.g. cs_capacity=0 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
    set: Vec<String>,
    /// Settings of both runs (e.g. duration=20s)
    #[arg(long = "both", value_name = "KEY=VALUE")]
    both: Vec<String>,
    /// Results directory (default: cmp-NAME-TIME)
    #[arg(long)]
    out: Option<PathBuf>,
    /// How hosts and links are made
    #[arg(long, value_enum, default_value_t = Backend::Netns)]
    backend: Backend,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(a: ExpArgs) -> anyhow::Result<()> {
    crate::cmd::fwd::init_logging(Some("warn"), false);
    match a.cmd {
        ExpCmd::Cleanup => {
            let n = cleanup_stale(&records_dir()?)?;
            println!("cleaned up {n} stale run(s)");
            Ok(())
        }
        ExpCmd::Run(r) => {
            let topo = knobs(Topology::load(&r.topology)?, &r.set)?;
            let out = r.out.clone().unwrap_or_else(|| default_out("exp", &topo));
            let summary = block_on(run_topology(&topo, &out, r.backend, !r.quiet))?;
            print_summary(&summary, &out);
            if !summary.pass {
                bail!("{} assertion(s) failed", summary.failed_asserts());
            }
            Ok(())
        }
        ExpCmd::Compare(c) => compare(c),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Ctrl-C ends the run; dropping it stops every process and removes every namespace.
    let r = rt.block_on(async {
        tokio::select! {
            r = f => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    r
}

fn default_out(kind: &str, topo: &Topology) -> PathBuf {
    PathBuf::from(format!(
        "{kind}-{}-{}",
        topo.name,
        amicn_ami::now_ms() / 1000
    ))
}

/// Applies `KEY=VALUE` settings to a topology (every node, overriding per-node values).
fn knobs(mut t: Topology, set: &[String]) -> anyhow::Result<Topology> {
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        match k {
            "cs_capacity" => {
                t.defaults.cs_capacity = v
                    .parse()
                    .with_context(|| format!("--set {kv:?}: not a number"))?;
                t.nodes.iter_mut().for_each(|n| n.cs_capacity = None);
            }
            "strategy" => {
                t.defaults.strategy = v.to_string();
                t.nodes.iter_mut().for_each(|n| n.strategy = None);
            }
            "reading_interval" => {
                t.defaults.reading_interval = parse_duration(v)?;
                t.nodes.iter_mut().for_each(|n| n.reading_interval = None);
            }
            "duration" => t.run.duration = parse_duration(v)?,
            other => bail!(
                "--set {other:?}: known settings are cs_capacity, strategy, reading_interval, duration"
            ),
        }
    }
    t.validate()?;
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// Records of what a run created, and the clean-up of crashed runs

/// What a run created, kept on disk while it runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    run: String,
    owner_pid: u32,
    owner_start: u64,
    namespaces: Vec<String>,
    /// PIDs with their start time (clock ticks since boot), so a reused PID is never signalled.
    pids: Vec<(u32, u64)>,
}

fn records_dir() -> anyhow::Result<PathBuf> {
    let d = if Path::new("/run").is_dir() && nix_like_writable("/run") {
        PathBuf::from("/run/amicn-exp")
    } else {
        std::env::temp_dir().join("amicn-exp-records")
    };
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", d.display()))?;
    Ok(d)
}

fn nix_like_writable(dir: &str) -> bool {
    let probe = Path::new(dir).join(format!(".amicn-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Start time of a process (field 22 of /proc/PID/stat), if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn alive_as_recorded(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

struct RecordFile {
    path: PathBuf,
    rec: Record,
}

impl RecordFile {
    fn new(dir: &Path, run: &str) -> anyhow::Result<Self> {
        let me = std::process::id();
        let rf = RecordFile {
            path: dir.join(format!("{run}.json")),
            rec: Record {
                run: run.to_string(),
                owner_pid: me,
                owner_start: start_time(me).unwrap_or(0),
                ..Record::default()
            },
        };
        rf.save()?;
        Ok(rf)
    }

    fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(&self.rec)?;
        amicn_kms::persist::replace_file(&self.path, &text, 0o600)
            .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))
    }
}

pub(crate) fn netns_delete(ns: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes what runs whose owner is gone left behind; returns how many records were handled.
fn cleanup_stale(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(rec) = serde_json::from_slice::<Record>(&std::fs::read(&path)?) else {
            tracing::warn!("{}: not a run record, left alone", path.display());
            continue;
        };
        if alive_as_recorded(rec.owner_pid, rec.owner_start) {
            continue;
        }
        for (pid, start) in &rec.pids {
            if alive_as_recorded(*pid, *start) {
                super::mesh::signal(*pid, "KILL");
            }
        }
        for ns in &rec.namespaces {
            netns_delete(ns);
        }
        let _ = std::fs::remove_file(&path);
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Namespaces and links

/// Runs `ip ARGS`, with `stdin` fed to it (for `-batch -`); the error carries ip's message.
pub(crate) fn ip(args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut argv = vec!["ip".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run_argv(&argv, stdin)
}

/// Runs a command to completion; the error carries its message.
fn run_argv(argv: &[String], stdin: Option<&str>) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Where a node's processes run.
#[derive(Debug, Clone)]
enum Place {
    /// A named network namespace.
    Netns(String),
    /// The network namespace of a process (a Mininet host's shell).
    Host(u32),
}

impl Place {
    /// The prefix that runs a program inside (it execs in place).
    fn exec(&self) -> Vec<String> {
        match self {
            Place::Netns(ns) => s(&["ip", "netns", "exec", ns]),
            Place::Host(pid) => s(&["nsenter", "-t", &pid.to_string(), "-n", "--"]),
        }
    }

    /// `ip` acting inside.
    fn ip(&self, args: &[&str]) -> Vec<String> {
        let mut v = match self {
            Place::Netns(ns) => s(&["ip", "-n", ns]),
            Place::Host(pid) => s(&["nsenter", "-t", &pid.to_string(), "-n", "ip"]),
        };
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }
}

fn tc_ok(args: &[&str]) -> bool {
    Command::new("tc")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What this machine can do for links.
#[derive(Debug, Clone, Copy, Serialize)]
struct LinkSupport {
    netem: bool,
    tbf: bool,
}

/// Probes namespace creation (an error says why it is impossible) and tc's qdiscs.
fn probe(run: &str) -> anyhow::Result<LinkSupport> {
    let ns = format!("{run}-probe");
    ip(&["netns", "add", &ns], None).context(
        "cannot create network namespaces on this machine (needs root or CAP_NET_ADMIN)",
    )?;
    let r = (|| {
        ip(&["-n", &ns, "link", "set", "lo", "up"], None)?;
        let netem = tc_ok(&[
            "-n", &ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ]);
        let tbf = tc_ok(&[
            "-n", &ns, "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", "10mbit", "burst",
            "32kbit", "latency", "50ms",
        ]);
        Ok(LinkSupport { netem, tbf })
    })();
    netns_delete(&ns);
    r
}

/// The namespaces of a run; deleted (with their veths) when dropped.
struct Netns {
    record: RecordFile,
}

impl Netns {
    fn name(run: &str, node: &str) -> String {
        format!("{run}-{node}")
    }

    fn add_all(&mut self, names: &[String]) -> anyhow::Result<()> {
        // Recorded before they exist, so a crash halfway is cleaned up too.
        self.record.rec.namespaces.extend(names.iter().cloned());
        self.record.save()?;
        let batch: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
        ip(&["-batch", "-"], Some(&batch))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.record.rec.namespaces {
            netns_delete(ns);
        }
        let _ = std::fs::remove_file(&self.record.path);
    }
}

/// Interface names of link `i` (at most 15 bytes: the run id is 8).
fn veth(run: &str, i: usize) -> (String, String) {
    (format!("{run}a{i}"), format!("{run}b{i}"))
}

fn build_links(
    topo: &Topology,
    run: &str,
    support: LinkSupport,
) -> anyhow::Result<BTreeMap<String, &'static str>> {
    let addrs = topo.addresses();
    let mut root = String::new();
    let mut per_ns: BTreeMap<String, String> = BTreeMap::new();
    for n in &topo.nodes {
        per_ns.insert(Netns::name(run, &n.name), "link set lo up\n".into());
    }
    for (i, l) in topo.links.iter().enumerate() {
        let (va, vb) = veth(run, i);
        let (na, nb) = (Netns::name(run, &l.a), Netns::name(run, &l.b));
        root.push_str(&format!(
            "link add {va} netns {na} type veth peer name {vb} netns {nb}\n"
        ));
        let a = &addrs[i];
        for (ns, dev, addr) in [(&na, &va, a.a), (&nb, &vb, a.b)] {
            let cmds = per_ns.entry(ns.clone()).or_default();
            cmds.push_str(&format!(
                "addr add {addr}/{} dev {dev}\nlink set {dev} up\n",
                a.prefix_len
            ));
        }
    }
    ip(&["-batch", "-"], Some(&root))?;
    for (ns, cmds) in &per_ns {
        ip(&["-n", ns, "-batch", "-"], Some(cmds))?;
    }
    // Shaping: netem carries delay, loss and rate together; without it, tbf shapes the rate and
    // the forwarders' faces emulate delay and loss.
    let mut how = BTreeMap::new();
    for (i, l) in topo.links.iter().enumerate() {
        let (va, vb) = veth(run, i);
        let key = format!("{} - {}", l.a, l.b);
        let mut label = "none";
        for (ns, dev) in [
            (Netns::name(run, &l.a), va.as_str()),
            (Netns::name(run, &l.b), vb.as_str()),
        ] {
            let needs_netem = l.delay_ms > 0.0 || l.loss > 0.0;
            if support.netem && (needs_netem || l.bandwidth_mbit.is_some()) {
                let mut args: Vec<String> =
                    ["-n", &ns, "qdisc", "add", "dev", dev, "root", "netem"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                if l.delay_ms > 0.0 {
                    args.extend(["delay".into(), format!("{}ms", l.delay_ms)]);
                }
                if l.loss > 0.0 {
                    args.extend(["loss".into(), format!("{}%", l.loss * 100.0)]);
                }
                if let Some(bw) = l.bandwidth_mbit {
                    args.extend(["rate".into(), format!("{bw}mbit")]);
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                label = if tc_ok(&refs) { "netem" } else { "failed" };
            } else if let Some(bw) = l.bandwidth_mbit {
                if support.tbf {
                    let rate = format!("{bw}mbit");
                    let ok = tc_ok(&[
                        "-n", &ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate,
                        "burst", "64kbit", "latency", "200ms",
                    ]);
                    label = if !ok {
                        "failed"
                    } else if needs_netem {
                        "tbf + forwarder emulation"
                    } else {
                        "tbf"
                    };
                } else {
                    label = if needs_netem {
                        "forwarder emulation, rate not shaped"
                    } else {
                        "rate not shaped"
                    };
                }
            } else if needs_netem {
                label = "forwarder emulation";
            }
        }
        how.insert(key, label);
    }
    Ok(how)
}

// ---------------------------------------------------------------------------------------------
// Mininet

/// The interpreter Debian's Mininet module is installed for.
const MININET_PYTHON: &str = "/usr/bin/python3";

fn mininet_available() -> anyhow::Result<()> {
    let ok = Command::new(MININET_PYTHON)
        .args(["-c", "import mininet.net"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "Mininet is not installed for {MININET_PYTHON} (Debian: apt-get install mininet); \
             --backend netns needs nothing but iproute2"
        );
    }
    Ok(())
}

/// Builds the hosts and links with Mininet's Python API, without switches or a controller,
/// then waits (holding the network) until SIGTERM, when it stops the network.
const MININET_SCRIPT: &str = r#"
import json, os, signal, sys
from mininet.net import Mininet
from mininet.link import TCLink
from mininet.log import setLogLevel
setLogLevel('warning')
spec = json.load(open(sys.argv[1]))
net = Mininet(controller=None, build=False, autoSetMacs=False, autoStaticArp=False)
hosts = {}
for n in spec['nodes']:
    hosts[n['name']] = net.addHost(n['host'], ip=None)
for l in spec['links']:
    kw = {k: l[k] for k in ('bw', 'delay', 'loss') if l.get(k) is not None}
    net.addLink(hosts[l['a']], hosts[l['b']], cls=TCLink,
                intfName1=l['ia'], intfName2=l['ib'],
                params1={'ip': l['ipa']}, params2={'ip': l['ipb']}, **kw)
for h in hosts.values():
    h.cmd('ip link set lo up')
tmp = spec['pids'] + '.tmp'
with open(tmp, 'w') as f:
    json.dump({k: h.pid for k, h in hosts.items()}, f)
os.rename(tmp, spec['pids'])
def stop(*_):
    net.stop()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while True:
    signal.pause()
"#;

/// Starts Mininet for `topo`; returns its PID, every node's host PID, and how each link was
/// shaped (TCLink rates; delay and loss by netem if the kernel has it, else by the forwarders).
async fn start_mininet(
    topo: &Topology,
    run: &str,
    support: LinkSupport,
    state: &Path,
    procs: &mut Procs,
) -> anyhow::Result<(u32, BTreeMap<String, u32>, BTreeMap<String, &'static str>)> {
    let addrs = topo.addresses();
    let script = state.join("mininet_net.py");
    let spec_path = state.join("mininet.json");
    let pids_path = state.join("mininet-pids.json");
    std::fs::write(&script, MININET_SCRIPT).context("writing the Mininet script")?;
    let mut shaping = BTreeMap::new();
    let links: Vec<Value> = topo
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (ia, ib) = veth(run, i);
            let a = &addrs[i];
            let needs = l.delay_ms > 0.0 || l.loss > 0.0;
            let label = match (l.bandwidth_mbit.is_some(), needs, support.netem) {
                (_, true, true) | (true, false, _) => "mininet TCLink",
                (true, true, false) => "mininet TCLink + forwarder emulation",
                (false, true, false) => "forwarder emulation",
                (false, false, _) => "none",
            };
            shaping.insert(format!("{} - {}", l.a, l.b), label);
            json!({
                "a": l.a, "b": l.b, "ia": ia, "ib": ib,
                "ipa": format!("{}/{}", a.a, a.prefix_len),
                "ipb": format!("{}/{}", a.b, a.prefix_len),
                "bw": l.bandwidth_mbit,
                // Without netem the forwarders' faces carry delay and loss instead.
                "delay": (support.netem && l.delay_ms > 0.0).then(|| format!("{}ms", l.delay_ms)),
                "loss": (support.netem && l.loss > 0.0).then_some(l.loss * 100.0),
            })
        })
        .collect();
    let nodes: Vec<Value> = topo
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n.name, "host": format!("h{i}")}))
        .collect();
    let spec = json!({"nodes": nodes, "links": links, "pids": pids_path.display().to_string()});
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)
        .context("writing the Mininet spec")?;
    let pid = procs.spawn_program(
        "mininet",
        &[
            MININET_PYTHON.to_string(),
            script.display().to_string(),
            spec_path.display().to_string(),
        ],
    )?;
    let deadline = Duration::from_secs(30 + topo.links.len() as u64 / 10);
    wait_for("Mininet to build the network", deadline, || {
        pids_path.exists()
    })
    .await?;
    let hosts: BTreeMap<String, u32> = serde_json::from_slice(
        &std::fs::read(&pids_path).context("reading the Mininet host PIDs")?,
    )
    .context("Mininet host PIDs")?;
    Ok((pid, hosts, shaping))
}

// ---------------------------------------------------------------------------------------------
// The run

/// One node's row of the results.
#[derive(Debug, Default, Serialize)]
struct NodeResult {
    name: String,
    role: String,
    cs_hits: u64,
    cs_misses: u64,
    hit_ratio: f64,
    satisfied: u64,
    unsatisfied: u64,
    in_interests: u64,
    peak_rss_kib: BTreeMap<String, u64>,
    killed: bool,
}

#[derive(Debug, Default, Serialize)]
struct LinkResult {
    index: usize,
    a: String,
    b: String,
    packets_ab: u64,
    packets_ba: u64,
    bytes_ab: u64,
    bytes_ba: u64,
    shaping: String,
    failed_at_s: Option<f64>,
    restored_at_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct EventResult {
    at_s: f64,
    what: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct AssertResult {
    metric: String,
    value: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    pass: bool,
}

/// Latency quantiles of one traffic class (µs).
#[derive(Debug, Serialize)]
struct ClassLatency {
    samples: usize,
    p50_us: Option<u64>,
    p95_us: Option<u64>,
    p99_us: Option<u64>,
}

/// The whole result of a run (`summary.json`).
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    topology: String,
    backend: Backend,
    /// The run's id: the prefix of its namespaces and interfaces.
    run_id: String,
    /// Every process the run started (all stopped before the summary was written).
    pids: Vec<u32>,
    nodes: usize,
    links: usize,
    meters: u32,
    link_support: LinkSupport,
    /// Per link: how its properties were realised (netem, tbf, forwarder emulation).
    link_shaping: BTreeMap<String, &'static str>,
    startup_s: f64,
    duration_s: f64,
    metrics: BTreeMap<String, f64>,
    latency: BTreeMap<String, ClassLatency>,
    node_results: Vec<NodeResult>,
    link_results: Vec<LinkResult>,
    events: Vec<EventResult>,
    /// Rekey traffic per epoch, by delivery mode, as the KMS published it.
    rekey: Vec<RekeyRow>,
    asserts: Vec<AssertResult>,
    pass: bool,
    files: Vec<String>,
}

/// One epoch's rekey traffic (wraps by delivery mode).
#[derive(Debug, Serialize)]
struct RekeyRow {
    epoch: u32,
    label: String,
    joins: usize,
    departs: usize,
    unicast: u64,
    multicast: u64,
    broadcast: u64,
}

impl Summary {
    fn failed_asserts(&self) -> usize {
        self.asserts.iter().filter(|a| !a.pass).count()
    }
}

struct Node<'a> {
    topo: &'a Topology,
    layout: &'a Layout,
    places: BTreeMap<String, Place>,
    socks: BTreeMap<String, PathBuf>,
}

impl Node<'_> {
    fn exec(&self, node: &str) -> Vec<String> {
        self.places.get(node).map(Place::exec).unwrap_or_default()
    }

    fn ip(&self, node: &str, args: &[&str]) -> Vec<String> {
        self.places
            .get(node)
            .map(|p| p.ip(args))
            .unwrap_or_default()
    }

    fn sock_uri(&self, node: &str) -> String {
        format!(
            "unix://{}",
            self.socks
                .get(node)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }

    fn head(&self) -> &str {
        &self.topo.head_end().name
    }

    fn tool(&self, exe: &Path, a: &[String]) -> Result<String, String> {
        super::mesh::run_tool(exe, a)
    }

    fn meter_metrics(&self, node: &str) -> Option<Value> {
        read_json(
            &self
                .layout
                .meters_dir(node)
                .join("state")
                .join("metrics.json"),
        )
    }

    fn role_metrics(&self, role: &str) -> Option<Value> {
        read_json(
            &self
                .layout
                .role_dir(self.head(), role)
                .join("state")
                .join("metrics.json"),
        )
    }

    /// Meter views of every meters node still running, by id.
    fn members(&self, dead: &BTreeSet<String>) -> BTreeMap<u32, Value> {
        let mut out = BTreeMap::new();
        for n in &self.topo.nodes {
            if n.role == Role::Meters && !dead.contains(&n.name) {
                out.extend(meter_views(&self.meter_metrics(&n.name)));
            }
        }
        out
    }
}

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn bar(progress: bool, len: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(Duration::from_millis(120));
    b
}

/// Brings `topo` up in namespaces, runs it, and writes the results under `out`.
pub(crate) async fn run_topology(
    topo: &Topology,
    out: &Path,
    backend: Backend,
    progress: bool,
) -> anyhow::Result<Summary> {
    if backend == Backend::Mininet {
        mininet_available()?;
    }
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating the amicn binary")?;
    let records = records_dir()?;
    let stale = cleanup_stale(&records)?;
    if stale > 0 {
        tracing::warn!("removed what {stale} crashed run(s) left behind");
    }
    let run = format!("ax{:06x}", rand::random::<u32>() & 0xff_ffff);
    let support = probe(&run)?;
    let emulate = !support.netem;

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let nodes_dir = out.join("nodes");
    let logs = out.join("logs");
    let state = out.join("run");
    for d in [&logs, &state] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let pb = bar(progress, 7);
    let step = |msg: &str| {
        pb.inc(1);
        pb.set_message(msg.to_string());
        tracing::info!("{msg}");
    };
    step("configs and provisioning");
    let layout = write_configs(topo, &nodes_dir, emulate)?;

    // Drop order: processes first (declared last), then the namespaces.
    let mut netns = Netns {
        record: RecordFile::new(&records, &run)?,
    };
    let mut procs = Procs {
        list: Vec::new(),
        exe: exe.clone(),
        logs: logs.clone(),
    };
    let record_pid = |netns: &mut Netns, pid: u32| -> anyhow::Result<()> {
        netns
            .record
            .rec
            .pids
            .push((pid, start_time(pid).unwrap_or(0)));
        netns.record.save()
    };
    step("hosts and links");
    let (places, shaping) = match backend {
        Backend::Netns => {
            let names: Vec<String> = topo
                .nodes
                .iter()
                .map(|n| Netns::name(&run, &n.name))
                .collect();
            netns.add_all(&names)?;
            let shaping = build_links(topo, &run, support)?;
            let places = topo
                .nodes
                .iter()
                .map(|n| (n.name.clone(), Place::Netns(Netns::name(&run, &n.name))))
                .collect();
            (places, shaping)
        }
        Backend::Mininet => {
            let (pid, hosts, shaping) =
                start_mininet(topo, &run, support, &state, &mut procs).await?;
            record_pid(&mut netns, pid)?;
            let mut places = BTreeMap::new();
            for (node, host_pid) in hosts {
                // The hosts' shells hold their namespaces: recorded, so a crash is cleaned up.
                record_pid(&mut netns, host_pid)?;
                places.insert(node, Place::Host(host_pid));
            }
            (places, shaping)
        }
    };

    step("forwarders");
    let mut ctx = Node {
        topo,
        layout: &layout,
        places,
        socks: BTreeMap::new(),
    };
    for n in &topo.nodes {
        let sock = state.join(format!("{}.sock", n.name));
        let stats = state.join(format!("{}-fwd.json", n.name));
        let pid = procs.spawn_in(
            &ctx.exec(&n.name),
            &format!("fwd-{}", n.name),
            &s(&[
                "fwd",
                "--config",
                &layout.fwd_config(&n.name).display().to_string(),
                "--socket",
                &sock.display().to_string(),
                "--stats-json",
                &stats.display().to_string(),
            ]),
        )?;
        record_pid(&mut netns, pid)?;
        ctx.socks.insert(n.name.clone(), sock);
    }
    let mut mgmt: BTreeMap<String, Client> = BTreeMap::new();
    let mut faces: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for n in &topo.nodes {
        let c = connect_when_up(&ctx.socks[&n.name]).await?;
        let f = face_ids(&c).await?;
        for (link, _) in topo.neighbours(&n.name) {
            let uri = peer_uri(topo, link, &n.name).context("link address")?;
            if !f.contains_key(&uri) {
                bail!("node {}: no face {uri} after start-up", n.name);
            }
        }
        faces.insert(n.name.clone(), f);
        mgmt.insert(n.name.clone(), c);
    }

    step("head-end services");
    let head = ctx.head().to_string();
    let head_exec = ctx.exec(&head);
    let head_uri = ctx.sock_uri(&head);
    let head_node = topo.head_end();
    let interval_of = |d: Duration| format!("{}ms", d.as_millis().max(1));
    let min_interval = topo
        .nodes
        .iter()
        .filter(|n| n.role == Role::Meters)
        .map(|n| n.reading_interval(&topo.defaults))
        .min()
        .unwrap_or(topo.defaults.reading_interval);
    if head_node.has_service("kms") {
        let pid = procs.spawn_in(
            &head_exec,
            "kms",
            &s(&[
                "kms",
                "serve",
                "-c",
                &layout.role_config(&head, "kms").display().to_string(),
                "--forwarder",
                &head_uri,
                "--rekey-interval",
                "1s",
                "--metrics-interval",
                "250ms",
            ]),
        )?;
        record_pid(&mut netns, pid)?;
        let kms_dir = layout.role_dir(&head, "kms");
        wait_for("the KMS", Duration::from_secs(30), || {
            kms_dir.join("state").join("ready").exists()
        })
        .await?;
        // Entitlements: the DR operator's signed commands, one per project set.
        let mut by_set: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for (node, ids) in topo.meter_ids() {
            let set = topo
                .node(&node)
                .map(|n| n.projects.clone())
                .unwrap_or_default();
            if !set.is_empty() {
                by_set.entry(set).or_default().extend(ids);
            }
        }
        super::mesh::entitle_sets(
            &exe,
            &layout.role_config(&head, "dr").display().to_string(),
            &head_uri,
            &by_set,
        )?;
    }
    let publish = interval_of((min_interval * 3).max(Duration::from_millis(500)));
    for (role, extra) in [
        (
            "mdms",
            vec![
                "--poll-interval".to_string(),
                interval_of(min_interval),
                "--key-refresh".into(),
                "1s".into(),
            ],
        ),
        (
            "pricing",
            vec![
                "--publish-interval".to_string(),
                publish.clone(),
                "--key-refresh".into(),
                "1s".into(),
            ],
        ),
        (
            "dr",
            vec![
                "--publish-interval".to_string(),
                publish.clone(),
                "--key-refresh".into(),
                "1s".into(),
            ],
        ),
    ] {
        if !head_node.has_service(role) {
            continue;
        }
        let mut a = s(&[
            role,
            "-c",
            &layout.role_config(&head, role).display().to_string(),
            "--forwarder",
            &head_uri,
            "--metrics-interval",
            "250ms",
        ]);
        a.extend(extra);
        let pid = procs.spawn_in(&head_exec, role, &a)?;
        record_pid(&mut netns, pid)?;
    }
    for role in ["mdms", "pricing", "dr"] {
        if head_node.has_service(role) {
            let base = layout.node(&head);
            wait_for(role, Duration::from_secs(30), || ready(&base, role)).await?;
        }
    }

    step("meters enrol");
    for n in topo.nodes.iter().filter(|n| n.role == Role::Meters) {
        let pid = procs.spawn_in(
            &ctx.exec(&n.name),
            &format!("meters-{}", n.name),
            &s(&[
                "meter",
                "-c",
                &layout.meters_config(&n.name).display().to_string(),
                "--forwarder",
                &ctx.sock_uri(&n.name),
                "--reading-interval",
                &interval_of(n.reading_interval(&topo.defaults)),
                "--sync-interval",
                "1s",
                "--metrics-interval",
                "250ms",
            ]),
        )?;
        record_pid(&mut netns, pid)?;
    }
    let total = topo.total_meters() as usize;
    let mut dead: BTreeSet<String> = BTreeSet::new();
    let enrol_deadline = Duration::from_secs(30 + total as u64 / 20);
    wait_for("every meter to enrol", enrol_deadline, || {
        let m = ctx
            .members(&dead)
            .values()
            .filter(|v| v["member"].as_bool() == Some(true))
            .count();
        pb.set_message(format!("meters enrol: {m}/{total}"));
        m == total
    })
    .await?;
    let db = layout
        .role_dir(&head, "mdms")
        .join("state")
        .join("readings.db")
        .to_string_lossy()
        .into_owned();
    if head_node.has_service("mdms") {
        wait_for(
            "a reading from every meter at the MDMS",
            Duration::from_secs(30) + min_interval * 4,
            || {
                let heard = meters_heard(&db).len();
                pb.set_message(format!("first readings: {heard}/{total} meters"));
                heard >= total
            },
        )
        .await?;
    }
    let startup_s = started.elapsed().as_secs_f64();

    // The measurement: events and link failures at their times.
    step("measuring");
    let t0 = Instant::now();
    let mdms0 = ctx.role_metrics("mdms");
    let heard0 = meters_heard(&db);
    #[derive(Debug)]
    enum Step {
        Event(usize),
        LinkDown(usize),
        LinkUp(usize),
    }
    let mut plan: Vec<(Duration, Step)> = Vec::new();
    for (i, e) in topo.events.iter().enumerate() {
        plan.push((e.at, Step::Event(i)));
    }
    for (i, l) in topo.links.iter().enumerate() {
        if let Some(d) = l.down_at {
            plan.push((d, Step::LinkDown(i)));
        }
        if let Some(u) = l.up_at {
            plan.push((u, Step::LinkUp(i)));
        }
    }
    plan.sort_by_key(|(t, _)| *t);
    let mut down: BTreeSet<usize> = BTreeSet::new();
    // The routes the forwarders hold now (their configs' at start, then what was pushed).
    let mut routes = topo.routes(&down);
    let mut events = Vec::new();
    let mut link_times: BTreeMap<usize, (Option<f64>, Option<f64>)> = BTreeMap::new();
    let mut pending_rekeys: Vec<(usize, u64, u32)> = Vec::new();
    // Per link taken down: the meters nodes whose path to the head-end crossed it and the
    // readings each meter had stored when it went down; at its repair, how many of those
    // meters were heard in between (over another path): (heard, behind the link).
    let meter_ids = topo.meter_ids();
    let mut heard_at_down: BTreeMap<usize, (Vec<String>, BTreeMap<u32, u64>)> = BTreeMap::new();
    let mut failover: Vec<(usize, usize)> = Vec::new();
    // Meters whose leave or revocation the KMS accepted so far: no longer expected to be heard.
    let mut left: BTreeSet<u32> = BTreeSet::new();
    for (at, what) in plan {
        tokio::time::sleep(at.saturating_sub(t0.elapsed())).await;
        let at_s = t0.elapsed().as_secs_f64();
        match what {
            Step::Event(i) => {
                let e = &topo.events[i];
                match e.action {
                    Action::Leave | Action::Revoke => {
                        let meter = e.meter.unwrap_or(0);
                        let verb = if e.action == Action::Leave {
                            "leave"
                        } else {
                            "revoke"
                        };
                        let epoch = counter(&ctx.role_metrics("kms"), "epoch") as u64;
                        let r = ctx.tool(
                            &exe,
                            &s(&[
                                "ami",
                                verb,
                                "-c",
                                &layout.role_config(&head, "operator").display().to_string(),
                                "--forwarder",
                                &head_uri,
                                "--meter",
                                &meter.to_string(),
                            ]),
                        );
                        let ok = r.is_ok();
                        events.push(EventResult {
                            at_s,
                            what: format!("{verb} meter {meter}"),
                            ok,
                            detail: match r {
                                Ok(t) | Err(t) => t,
                            },
                        });
                        if ok {
                            left.insert(meter);
                            pending_rekeys.push((events.len() - 1, epoch, meter));
                        }
                    }
                    Action::Kill => {
                        let node = e.node.clone().unwrap_or_default();
                        let mut killed = Vec::new();
                        for p in [format!("fwd-{node}"), format!("meters-{node}")] {
                            if procs.crash(&p).is_ok() {
                                killed.push(p);
                            }
                        }
                        dead.insert(node.clone());
                        events.push(EventResult {
                            at_s,
                            what: format!("kill node {node}"),
                            ok: !killed.is_empty(),
                            detail: format!("SIGKILL: {}", killed.join(", ")),
                        });
                    }
                }
            }
            Step::LinkDown(i) | Step::LinkUp(i) => {
                let up = matches!(what, Step::LinkUp(_));
                if up {
                    down.remove(&i);
                } else {
                    down.insert(i);
                }
                let l = &topo.links[i];
                let (va, vb) = veth(&run, i);
                let state = if up { "up" } else { "down" };
                let r1 = run_argv(&ctx.ip(&l.a, &["link", "set", &va, state]), None);
                let r2 = run_argv(&ctx.ip(&l.b, &["link", "set", &vb, state]), None);
                // Who the failure cuts off, by the routes in force before it.
                let cut_off = (!up).then(|| nodes_behind(topo, &routes, i));
                let after = topo.routes(&down);
                let push_t = Instant::now();
                let pushed = push_routes(topo, &mgmt, &faces, &routes, &after, &dead).await;
                let push_ms = push_t.elapsed().as_secs_f64() * 1e3;
                routes = after;
                let mut outage = String::new();
                if let Some(cut_off) = cut_off {
                    heard_at_down.insert(i, (cut_off, meters_heard(&db)));
                } else if let Some((cut_off, before)) = heard_at_down.remove(&i) {
                    let now = meters_heard(&db);
                    let behind: Vec<u32> = cut_off
                        .iter()
                        .filter(|n| !dead.contains(*n))
                        .filter_map(|n| meter_ids.get(n))
                        .flatten()
                        .copied()
                        .filter(|m| !left.contains(m))
                        .collect();
                    if !behind.is_empty() {
                        let heard = behind
                            .iter()
                            .filter(|m| now.get(m) > before.get(m).or(Some(&0)))
                            .count();
                        let got: u64 = behind
                            .iter()
                            .map(|m| now.get(m).unwrap_or(&0) - before.get(m).unwrap_or(&0))
                            .sum();
                        failover.push((heard, behind.len()));
                        outage = format!(
                            "; meters whose path crossed it heard while it was down: {heard} of {} ({got} readings)",
                            behind.len()
                        );
                    }
                }
                let t = link_times.entry(i).or_default();
                if up {
                    t.1 = Some(at_s);
                } else {
                    t.0 = Some(at_s);
                }
                events.push(EventResult {
                    at_s,
                    what: format!("link {i} ({} - {}) {state}", l.a, l.b),
                    ok: r1.is_ok() && r2.is_ok() && pushed.is_ok(),
                    detail: match pushed {
                        Ok(n) => format!(
                            "{n} route changes pushed through NFD management in {push_ms:.0} ms{outage}"
                        ),
                        Err(e) => format!("route push: {e:#}"),
                    },
                });
            }
        }
    }
    let rest = topo.run.duration.saturating_sub(t0.elapsed());
    let tick = Duration::from_millis(500);
    let until = Instant::now() + rest;
    while Instant::now() < until {
        pb.set_message(format!(
            "measuring: {:.0}/{:.0} s",
            t0.elapsed().as_secs_f64(),
            topo.run.duration.as_secs_f64()
        ));
        tokio::time::sleep(tick.min(until.saturating_duration_since(Instant::now()))).await;
    }
    // Rekeys after leaves/revocations: every remaining member follows the new epoch.
    for (idx, epoch_before, meter) in pending_rekeys {
        let r = wait_for(
            "members to follow the rekey",
            Duration::from_secs(20),
            || {
                let epoch = counter(&ctx.role_metrics("kms"), "epoch") as u64;
                epoch > epoch_before
                    && ctx
                        .members(&dead)
                        .iter()
                        .filter(|(id, v)| **id != meter && v["member"].as_bool() == Some(true))
                        .all(|(_, v)| v["epoch"].as_u64().is_some_and(|e| e >= epoch))
            },
        )
        .await;
        let epoch = counter(&ctx.role_metrics("kms"), "epoch") as u64;
        if let Some(e) = events.get_mut(idx) {
            e.ok &= r.is_ok();
            e.detail = format!(
                "{}; KMS epoch {epoch_before} -> {epoch}; remaining members {}",
                e.detail,
                if r.is_ok() {
                    "all followed"
                } else {
                    "did NOT all follow"
                }
            );
        }
    }
    let measured_s = t0.elapsed().as_secs_f64();
    let mdms1 = ctx.role_metrics("mdms");
    let heard1 = meters_heard(&db);
    let kms = ctx.role_metrics("kms");

    step("stopping and collecting");
    let mut meter_samples: Vec<Value> = Vec::new();
    for n in topo.nodes.iter().filter(|n| n.role == Role::Meters) {
        if let Some(v) = ctx.meter_metrics(&n.name) {
            meter_samples.push(v);
        }
    }
    drop(mgmt);
    procs.stop_all(Duration::from_secs(5));
    let leftovers = !procs.all_exited();

    // Results.
    let mut metrics = BTreeMap::new();
    let d = |k: &str| counter(&mdms1, k) - counter(&mdms0, k);
    let asked = d("requested") + d("pointers") + d("pointers_missing");
    let got = d("received") + d("pointers");
    metrics.insert(
        "satisfaction".to_string(),
        if asked > 0.0 { got / asked } else { f64::NAN },
    );
    // What the collection lost, by kind: a pointer that never came back means its meter was
    // unreachable for a whole fetch (lifetime x retries); a reading missing after its pointer
    // listed it was lost in between.
    for (k, v) in [
        ("asked", asked),
        ("pointers_missing", d("pointers_missing")),
        ("readings_missing", d("requested") - d("received")),
    ] {
        metrics.insert(format!("collection.{k}"), v);
    }
    if !failover.is_empty() {
        let (heard, behind) = failover
            .iter()
            .fold((0, 0), |(h, b), (fh, fb)| (h + fh, b + fb));
        metrics.insert(
            "failover_heard_ratio".into(),
            heard as f64 / behind.max(1) as f64,
        );
    }
    let stored: u64 = heard1.values().sum::<u64>() - heard0.values().sum::<u64>();
    metrics.insert("ingest_per_s".into(), stored as f64 / measured_s.max(1e-9));
    // Meters that should have been heard during the measurement: all but those that left, were
    // revoked or sat in a killed node.
    let ids = topo.meter_ids();
    let mut gone: BTreeSet<u32> = topo
        .events
        .iter()
        .filter(|e| matches!(e.action, Action::Leave | Action::Revoke))
        .filter_map(|e| e.meter)
        .collect();
    for n in &dead {
        gone.extend(ids.get(n).into_iter().flatten());
    }
    let expected: Vec<u32> = (1..=total as u32).filter(|m| !gone.contains(m)).collect();
    let heard_now = expected
        .iter()
        .filter(|m| heard1.get(m).copied().unwrap_or(0) > heard0.get(m).copied().unwrap_or(0))
        .count();
    metrics.insert(
        "meters_heard_ratio".into(),
        heard_now as f64 / expected.len().max(1) as f64,
    );
    metrics.insert("startup_s".into(), startup_s);
    metrics.insert("kms_epoch".into(), counter(&kms, "epoch"));
    metrics.insert(
        "events_ok".into(),
        if events.iter().all(|e| e.ok) {
            1.0
        } else {
            0.0
        },
    );

    let mut node_results = Vec::new();
    let mut by_uri: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let (mut hits, mut misses, mut sat, mut unsat) = (0u64, 0u64, 0u64, 0u64);
    for n in &topo.nodes {
        let v = read_json(&state.join(format!("{}-fwd.json", n.name)));
        let g = |k: &str| v.as_ref().and_then(|v| v[k].as_u64()).unwrap_or(0);
        let mut r = NodeResult {
            name: n.name.clone(),
            role: n.role.to_string(),
            cs_hits: g("cs_hits"),
            cs_misses: g("cs_misses"),
            satisfied: g("satisfied_interests"),
            unsatisfied: g("unsatisfied_interests"),
            in_interests: g("in_interests"),
            killed: dead.contains(&n.name),
            ..NodeResult::default()
        };
        let looked = r.cs_hits + r.cs_misses;
        r.hit_ratio = if looked > 0 {
            r.cs_hits as f64 / looked as f64
        } else {
            0.0
        };
        hits += r.cs_hits;
        misses += r.cs_misses;
        sat += r.satisfied;
        unsat += r.unsatisfied;
        metrics.insert(format!("cache_hit_ratio.{}", n.name), r.hit_ratio);
        for p in &procs.list {
            let owner = p
                .name
                .strip_prefix("fwd-")
                .or_else(|| p.name.strip_prefix("meters-"))
                .map(|s| s.trim_end_matches(" (killed)"));
            let mine = owner == Some(n.name.as_str())
                || (n.role == Role::HeadEnd
                    && ["kms", "mdms", "pricing", "dr"]
                        .iter()
                        .any(|r| p.name.trim_end_matches(" (killed)") == *r));
            if mine && let Some(kib) = p.peak_rss_kib {
                r.peak_rss_kib.insert(p.name.clone(), kib);
            }
        }
        if let Some(list) = v.as_ref().and_then(|v| v["faces"].as_array()) {
            for f in list {
                if let Some(uri) = f["remote_uri"].as_str() {
                    by_uri.insert(
                        (n.name.clone(), uri.to_string()),
                        (
                            f["out_packets"].as_u64().unwrap_or(0),
                            f["out_bytes"].as_u64().unwrap_or(0),
                        ),
                    );
                }
            }
        }
        node_results.push(r);
    }
    metrics.insert(
        "cache_hit_ratio".into(),
        if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            0.0
        },
    );
    metrics.insert(
        "forwarder_satisfaction".into(),
        if sat + unsat > 0 {
            sat as f64 / (sat + unsat) as f64
        } else {
            f64::NAN
        },
    );
    let mut link_results = Vec::new();
    for (i, l) in topo.links.iter().enumerate() {
        let ab = peer_uri(topo, i, &l.a)
            .and_then(|u| by_uri.get(&(l.a.clone(), u)).copied())
            .unwrap_or_default();
        let ba = peer_uri(topo, i, &l.b)
            .and_then(|u| by_uri.get(&(l.b.clone(), u)).copied())
            .unwrap_or_default();
        let times = link_times.get(&i).copied().unwrap_or_default();
        link_results.push(LinkResult {
            index: i,
            a: l.a.clone(),
            b: l.b.clone(),
            packets_ab: ab.0,
            bytes_ab: ab.1,
            packets_ba: ba.0,
            bytes_ba: ba.1,
            shaping: shaping
                .get(&format!("{} - {}", l.a, l.b))
                .copied()
                .unwrap_or("none")
                .to_string(),
            failed_at_s: times.0,
            restored_at_s: times.1,
        });
    }

    // Latency per traffic class.
    let mut classes: BTreeMap<String, (Vec<u64>, usize)> = BTreeMap::new();
    for v in &meter_samples {
        for (k, class) in [
            ("price_latency", "price"),
            ("dr_latency", "dr event"),
            ("rekey_latency", "rekey"),
        ] {
            let (l, samples) = latency_of(&v["details"][k]);
            let e = classes.entry(class.into()).or_default();
            e.0.extend(samples);
            e.1 += l.samples;
        }
    }
    if let Some(v) = &mdms1 {
        let (l, samples) = latency_of(&v["details"]["reading_fetch_latency"]);
        classes.insert("reading".into(), (samples, l.samples));
    }
    let mut latency = BTreeMap::new();
    let mut series = Vec::new();
    for (class, (mut samples, count)) in classes {
        samples.sort_unstable();
        let q = |q: f64| -> Option<u64> {
            if samples.is_empty() {
                return None;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples.get(rank - 1).copied()
        };
        let cl = ClassLatency {
            samples: count,
            p50_us: q(0.5),
            p95_us: q(0.95),
            p99_us: q(0.99),
        };
        for (name, v) in [("p50", cl.p50_us), ("p95", cl.p95_us), ("p99", cl.p99_us)] {
            if let Some(us) = v {
                metrics.insert(
                    format!("latency_{name}_ms.{}", class.replace(' ', "_")),
                    us as f64 / 1000.0,
                );
            }
        }
        latency.insert(class.clone(), cl);
        series.push(plots::LatencySeries {
            label: class,
            samples_us: samples,
        });
    }
    if leftovers {
        metrics.insert("processes_left".into(), 1.0);
    }
    // Rekey traffic: what the KMS published per epoch, and how much of what the meters fetched
    // the KMS itself answered (the rest came from forwarders' caches or PIT aggregation).
    let epochs: Vec<amicn_ami::EpochSummary> = kms
        .as_ref()
        .and_then(|v| serde_json::from_value(v["details"]["epochs"].clone()).ok())
        .unwrap_or_default();
    let rekey: Vec<RekeyRow> = epochs
        .iter()
        .map(|e| RekeyRow {
            epoch: e.epoch,
            label: e.label.clone(),
            joins: e.joins,
            departs: e.departs,
            unicast: e.unicast_wraps,
            multicast: e.multicast_wraps,
            broadcast: e.broadcast_wraps,
        })
        .collect();
    let fetched: f64 = meter_samples
        .iter()
        .map(|v| counter(&Some(v.clone()), "wraps_fetched"))
        .sum();
    let served = counter(&kms, "served_wrap");
    metrics.insert("wraps_fetched".into(), fetched);
    metrics.insert("wraps_served_by_kms".into(), served);
    if fetched > 0.0 {
        metrics.insert(
            "rekey_cache_share".into(),
            (1.0 - served / fetched).clamp(0.0, 1.0),
        );
    }

    // Assertions decide the exit status.
    let asserts: Vec<AssertResult> = topo
        .asserts
        .iter()
        .map(|a| {
            let value = metrics.get(&a.metric).copied();
            AssertResult {
                metric: a.metric.clone(),
                value,
                min: a.min,
                max: a.max,
                pass: value.is_some_and(|v| a.check(v)),
            }
        })
        .collect();
    let pass = asserts.iter().all(|a| a.pass) && !leftovers;

    // Files.
    let mut files = Vec::new();
    let mut nodes_csv = String::from(
        "node,role,cs_hits,cs_misses,hit_ratio,satisfied,unsatisfied,in_interests,peak_rss_kib,killed\n",
    );
    for r in &node_results {
        nodes_csv.push_str(&format!(
            "{},{},{},{},{:.4},{},{},{},{},{}\n",
            r.name,
            r.role,
            r.cs_hits,
            r.cs_misses,
            r.hit_ratio,
            r.satisfied,
            r.unsatisfied,
            r.in_interests,
            r.peak_rss_kib.values().sum::<u64>(),
            r.killed
        ));
    }
    let mut links_csv = String::from(
        "link,a,b,packets_ab,packets_ba,bytes_ab,bytes_ba,shaping,failed_at_s,restored_at_s\n",
    );
    for l in &link_results {
        links_csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            l.index,
            l.a,
            l.b,
            l.packets_ab,
            l.packets_ba,
            l.bytes_ab,
            l.bytes_ba,
            l.shaping,
            l.failed_at_s.map(|t| format!("{t:.2}")).unwrap_or_default(),
            l.restored_at_s
                .map(|t| format!("{t:.2}"))
                .unwrap_or_default()
        ));
    }
    let mut lat_csv = String::from("class,samples,p50_us,p95_us,p99_us\n");
    for (c, l) in &latency {
        let f = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        lat_csv.push_str(&format!(
            "{c},{},{},{},{}\n",
            l.samples,
            f(l.p50_us),
            f(l.p95_us),
            f(l.p99_us)
        ));
    }
    for (name, text) in [
        ("nodes.csv", nodes_csv),
        ("links.csv", links_csv),
        ("latency.csv", lat_csv),
    ] {
        std::fs::write(out.join(name), text).with_context(|| format!("writing {name}"))?;
        files.push(out.join(name).display().to_string());
    }
    let cdf = out.join("latency_cdf.png");
    plots::latency_cdf(
        &cdf,
        &format!("{}: latency per traffic class", topo.name),
        &series,
    )?;
    files.push(cdf.display().to_string());
    let hits_png = out.join("cache_hits.png");
    let bars: Vec<(String, f64)> = node_results
        .iter()
        .filter(|r| r.role != "meters")
        .map(|r| (r.name.clone(), r.hit_ratio * 100.0))
        .collect();
    plots::bars(
        &hits_png,
        "Content Store hit ratio per forwarder",
        "hit %",
        &bars,
    )?;
    files.push(hits_png.display().to_string());
    let rekey_png = out.join("rekey_traffic.png");
    let traffic: Vec<plots::EpochTraffic> = rekey
        .iter()
        .map(|r| plots::EpochTraffic {
            epoch: r.epoch,
            label: r.label.clone(),
            unicast: r.unicast,
            multicast: r.multicast,
            broadcast: r.broadcast,
            formula: None,
        })
        .collect();
    plots::rekey_traffic(&rekey_png, &traffic)?;
    files.push(rekey_png.display().to_string());
    let mut rekey_csv = String::from("epoch,label,joins,departs,unicast,multicast,broadcast\n");
    for r in &rekey {
        rekey_csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.epoch,
            r.label.replace(',', ";"),
            r.joins,
            r.departs,
            r.unicast,
            r.multicast,
            r.broadcast
        ));
    }
    std::fs::write(out.join("rekey.csv"), rekey_csv).context("writing rekey.csv")?;
    files.push(out.join("rekey.csv").display().to_string());
    let link_png = out.join("link_bytes.png");
    let lb: Vec<(String, f64)> = link_results
        .iter()
        .map(|l| {
            (
                format!("{}-{}", l.a, l.b),
                (l.bytes_ab + l.bytes_ba) as f64 / 1024.0,
            )
        })
        .collect();
    plots::bars(&link_png, "Bytes per link (both directions)", "KiB", &lb)?;
    files.push(link_png.display().to_string());
    pb.finish_and_clear();

    let summary = Summary {
        topology: topo.name.clone(),
        run_id: run.clone(),
        pids: netns.record.rec.pids.iter().map(|(p, _)| *p).collect(),
        backend,
        nodes: topo.nodes.len(),
        links: topo.links.len(),
        meters: topo.total_meters(),
        link_support: support,
        link_shaping: shaping,
        startup_s,
        duration_s: measured_s,
        metrics,
        latency,
        node_results,
        link_results,
        events,
        rekey,
        asserts,
        pass,
        files,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(out.join("summary.json"), json + "\n").context("writing summary.json")?;
    drop(procs);
    drop(netns);
    Ok(summary)
}

/// Pushes the difference between two route sets through NFD management; returns the number of
/// changes.
async fn push_routes(
    topo: &Topology,
    mgmt: &BTreeMap<String, Client>,
    faces: &BTreeMap<String, BTreeMap<String, u64>>,
    before: &BTreeMap<String, Vec<amicn_ami::topo::Route>>,
    after: &BTreeMap<String, Vec<amicn_ami::topo::Route>>,
    dead: &BTreeSet<String>,
) -> anyhow::Result<usize> {
    let mut changes = 0;
    for n in &topo.nodes {
        if dead.contains(&n.name) {
            continue;
        }
        let (Some(c), Some(f)) = (mgmt.get(&n.name), faces.get(&n.name)) else {
            continue;
        };
        let face_of = |link: usize| -> anyhow::Result<u64> {
            let uri = peer_uri(topo, link, &n.name).context("link address")?;
            f.get(&uri)
                .copied()
                .with_context(|| format!("node {}: no face {uri}", n.name))
        };
        let old: BTreeMap<&str, &amicn_ami::topo::Route> = before
            .get(&n.name)
            .into_iter()
            .flatten()
            .map(|r| (r.prefix.as_str(), r))
            .collect();
        let new: BTreeMap<&str, &amicn_ami::topo::Route> = after
            .get(&n.name)
            .into_iter()
            .flatten()
            .map(|r| (r.prefix.as_str(), r))
            .collect();
        for (prefix, r) in &old {
            let keep = new.get(prefix).is_some_and(|n| n.link == r.link);
            if !keep {
                unroute(c, &Name::from_uri(prefix)?, face_of(r.link)?).await?;
                changes += 1;
            }
        }
        for (prefix, r) in &new {
            let same = old
                .get(prefix)
                .is_some_and(|o| o.link == r.link && o.cost == r.cost);
            if !same {
                route(c, &Name::from_uri(prefix)?, face_of(r.link)?, r.cost).await?;
                changes += 1;
            }
        }
    }
    Ok(changes)
}

/// The meters nodes whose path to the head-end, by `routes`, crosses link `link`.
fn nodes_behind(
    topo: &Topology,
    routes: &BTreeMap<String, Vec<Route>>,
    link: usize,
) -> Vec<String> {
    let upstream = topo.upstream_prefix();
    let head = &topo.head_end().name;
    let crosses = |from: &str| {
        let mut at = from.to_string();
        // A path visits each node at most once.
        for _ in 0..topo.nodes.len() {
            if at == *head {
                return false;
            }
            let Some(r) = routes
                .get(&at)
                .and_then(|rs| rs.iter().find(|r| r.prefix == upstream))
            else {
                return false;
            };
            if r.link == link {
                return true;
            }
            at.clone_from(&r.next_hop);
        }
        false
    };
    topo.nodes
        .iter()
        .filter(|n| n.role == Role::Meters && crosses(&n.name))
        .map(|n| n.name.clone())
        .collect()
}

fn print_summary(s: &Summary, out: &Path) {
    println!(
        "amicn exp: {} — {} nodes, {} links, {} meters ({:?} backend); up in {:.1} s, measured {:.1} s",
        s.topology, s.nodes, s.links, s.meters, s.backend, s.startup_s, s.duration_s
    );
    let emulated: Vec<&String> = s
        .link_shaping
        .iter()
        .filter(|(_, v)| v.contains("emulation"))
        .map(|(k, _)| k)
        .collect();
    if !emulated.is_empty() {
        println!(
            "links: no netem in this kernel; delay/loss of {} link(s) EMULATED by the forwarders",
            emulated.len()
        );
    }
    println!("\nmetrics:");
    for (k, v) in &s.metrics {
        if !k.contains('.') || k.starts_with("latency_p99") || k.starts_with("collection.") {
            println!("  {k:<34} {v:.4}");
        }
    }
    println!("\nlatency (p50 / p95 / p99):");
    for (c, l) in &s.latency {
        let ms = |v: Option<u64>| v.map_or("-".into(), |x| format!("{:.1} ms", x as f64 / 1000.0));
        println!(
            "  {c:<10} n={:<7} {} / {} / {}",
            l.samples,
            ms(l.p50_us),
            ms(l.p95_us),
            ms(l.p99_us)
        );
    }
    println!("\ncache hit ratio per forwarder:");
    for r in s.node_results.iter().filter(|r| r.role != "meters") {
        println!(
            "  {:<12} {:>6.1}%  ({} hits, {} misses)",
            r.name,
            r.hit_ratio * 100.0,
            r.cs_hits,
            r.cs_misses
        );
    }
    if !s.events.is_empty() {
        println!("\nevents:");
        for e in &s.events {
            println!(
                "  {:>6.1} s  {} {} — {}",
                e.at_s,
                if e.ok { "OK  " } else { "FAIL" },
                e.what,
                e.detail
            );
        }
    }
    if !s.asserts.is_empty() {
        println!("\nassertions:");
        for a in &s.asserts {
            println!(
                "  {} {} = {} (min {:?}, max {:?})",
                if a.pass { "PASS" } else { "FAIL" },
                a.metric,
                a.value.map_or("missing".into(), |v| format!("{v:.4}")),
                a.min,
                a.max
            );
        }
    }
    println!(
        "\nresults: {}/summary.json, nodes.csv, links.csv, latency.csv, rekey.csv, latency_cdf.png, cache_hits.png, link_bytes.png, rekey_traffic.png",
        out.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Comparison

fn compare(c: CompareArgs) -> anyhow::Result<()> {
    let base = knobs(Topology::load(&c.topology)?, &c.both)?;
    let changed = knobs(base.clone(), &c.set)?;
    let out = c.out.clone().unwrap_or_else(|| default_out("cmp", &base));
    let a_dir = out.join("a");
    let b_dir = out.join("b");
    let a = block_on(run_topology(&base, &a_dir, c.backend, !c.quiet))?;
    let b = block_on(run_topology(&changed, &b_dir, c.backend, !c.quiet))?;
    let label_b = c.set.join(" ");
    let mut rows = Vec::new();
    let keys: BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    for k in keys {
        rows.push(json!({
            "metric": k,
            "a": a.metrics.get(k),
            "b": b.metrics.get(k),
        }));
    }
    let report = json!({
        "topology": base.name,
        "a": "as in the file",
        "b": label_b,
        "metrics": rows,
        "a_summary": a_dir.join("summary.json").display().to_string(),
        "b_summary": b_dir.join("summary.json").display().to_string(),
    });
    std::fs::write(
        out.join("comparison.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )
    .context("writing comparison.json")?;
    // Side by side: cache hit ratio per forwarder, and the latency CDFs of both runs.
    let mut hit_bars = Vec::new();
    for (ra, rb) in a.node_results.iter().zip(&b.node_results) {
        if ra.role == "meters" {
            continue;
        }
        hit_bars.push((format!("{} a", ra.name), ra.hit_ratio * 100.0));
        hit_bars.push((format!("{} b", rb.name), rb.hit_ratio * 100.0));
    }
    plots::bars(
        &out.join("cache_hits_ab.png"),
        &format!("CS hit ratio: a (file) vs b ({label_b})"),
        "hit %",
        &hit_bars,
    )?;
    let mut p99 = Vec::new();
    for (class, la) in &a.latency {
        if let (Some(x), Some(y)) = (la.p99_us, b.latency.get(class).and_then(|l| l.p99_us)) {
            p99.push((format!("{class} a"), x as f64 / 1000.0));
            p99.push((format!("{class} b"), y as f64 / 1000.0));
        }
    }
    plots::bars(
        &out.join("latency_p99_ab.png"),
        &format!("p99 latency: a (file) vs b ({label_b})"),
        "ms",
        &p99,
    )?;
    println!("comparison of {} (a) and {label_b} (b):", base.name);
    for k in [
        "satisfaction",
        "cache_hit_ratio",
        "ingest_per_s",
        "startup_s",
    ] {
        println!(
            "  {k:<20} a {:>10.4}   b {:>10.4}",
            a.metrics.get(k).copied().unwrap_or(f64::NAN),
            b.metrics.get(k).copied().unwrap_or(f64::NAN)
        );
    }
    for (class, la) in &a.latency {
        let lb = b.latency.get(class);
        let ms = |v: Option<u64>| v.map_or(f64::NAN, |x| x as f64 / 1000.0);
        println!(
            "  p99 {class:<16} a {:>8.1} ms  b {:>8.1} ms",
            ms(la.p99_us),
            ms(lb.and_then(|l| l.p99_us))
        );
    }
    println!(
        "results: {}/comparison.json, cache_hits_ab.png, latency_p99_ab.png, a/, b/",
        out.display()
    );
    if !(a.pass && b.pass) {
        bail!("assertions failed in run a or b");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn knobs_override_every_node() {
        let t = Topology::from_toml(include_str!("../../../examples/topo-tree.toml")).unwrap();
        let t = knobs(t, &["cs_capacity=0".into(), "duration=5s".into()]).unwrap();
        assert!(t.nodes.iter().all(|n| n.cs_capacity(&t.defaults) == 0));
        assert_eq!(t.run.duration, Duration::from_secs(5));
        assert!(knobs(t.clone(), &["nope=1".into()]).is_err());
        assert!(knobs(t, &["cs_capacity".into()]).is_err());
    }

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        let (a, b) = veth("ax123456", 999_999);
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
    }

    #[test]
    fn stale_records_of_dead_owners_are_removed() {
        let dir = std::env::temp_dir().join(format!("amicn-exp-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A record whose owner cannot be alive (start time 1 never matches a live process).
        let rec = Record {
            run: "axdead00".into(),
            owner_pid: std::process::id(),
            owner_start: 1,
            namespaces: vec!["axdead00-none".into()],
            pids: vec![(std::process::id(), 1)],
        };
        std::fs::write(dir.join("axdead00.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
        // A record of a live owner (this process) stays.
        let me = std::process::id();
        let live = Record {
            run: "axlive00".into(),
            owner_pid: me,
            owner_start: start_time(me).unwrap(),
            ..Record::default()
        };
        std::fs::write(
            dir.join("axlive00.json"),
            serde_json::to_vec(&live).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("junk.json"), b"{").unwrap();
        assert_eq!(cleanup_stale(&dir).unwrap(), 1);
        assert!(!dir.join("axdead00.json").exists());
        assert!(dir.join("axlive00.json").exists());
        assert!(dir.join("junk.json").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
