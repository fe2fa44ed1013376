//! `amicn bench flood`: a legitimate consumer fetching through `amicn fwd` while attacker
//! connections flood the same forwarder, in phases: a baseline without attack, then for each
//! flood factor an attack phase (attackers together send `factor ×` the legitimate rate of
//! the baseline) followed by a recovery phase.
//!
//! Every attacker mixes what a flooding host can send: unique-name Interests under the
//! producer's prefix that are never answered (they hold PIT entries until they expire),
//! unique unroutable Interests and unsolicited Data; one of them also sends a malformed packet
//! now and then (after which the forwarder closes its connection and it reconnects). The bench reports,
//! per phase, the legitimate consumer's satisfaction and rate against the baseline, its
//! latency, the forwarder's PIT size (from its own `status/general`) against the cap, the
//! forwarder's resident memory, and after each attack how long the consumer took to recover
//! to 90 % of its baseline rate, with the failed fetches that got no answer at all
//! (`timeouts`: dropped somewhere, not refused); `summary.json` also has every forwarder's
//! drops by reason at exit. Bounded in time (`--phase` × phases) and count.
//!
//! The consumer behaves as NDN consumers do: a fetch that is answered with a Nack (Congestion,
//! when pushback refuses it) is retried after a short backoff until its one second is up, and
//! counts as satisfied if Data arrives in time. The attackers send pre-encoded packets with the
//! sequence number patched in, from threads at the lowest CPU priority, so that on a small
//! machine they stand for other hosts; the table shows the attack rate they reached.
//!
//! With `--line N` the producer sits behind a line of N forwarders and the consumer and the
//! attackers share the last one, so the flood and the legitimate Interests travel the same
//! forwarder-to-forwarder faces: the case satisfaction-based pushback is for
//! (`--pushback false` turns it off everywhere, for comparison). The forwarders run in network
//! namespaces joined by veth pairs (`--backend netns`, needs root or CAP_NET_ADMIN; the bench
//! says so and stops when namespaces cannot be created) or side by side on loopback TCP
//! (`--backend loopback`, faces non-local as between hosts).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use amicn_face::client::{Client, ClientError, Reply};
use amicn_tlv::{Data, Interest, Name};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use super::mesh::{Procs, connect_when_up, dataset};

/// Options of `amicn bench flood`.
#[derive(Debug, Args)]
pub(crate) struct FloodBenchArgs {
    /// Length of each phase, e.g. 5s
    #[arg(long, default_value = "5s", value_parser = super::bench::parse_duration)]
    phase: Duration,
    /// Flood factors: the attackers' total rate as a multiple of the legitimate baseline rate
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    factors: Vec<u32>,
    /// Attacker connections
    #[arg(long, default_value_t = 4)]
    attackers: usize,
    /// Interests the legitimate consumer keeps in flight
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// The forwarder's PIT cap (entries)
    #[arg(long, default_value_t = 50_000)]
    pit_max: usize,
    /// Where summary.json, flood.csv and flood.png are written
    #[arg(long, default_value = "amicn-flood-report")]
    out: PathBuf,
    /// Print the summary as JSON instead of the table
    #[arg(long)]
    json: bool,
    /// Forwarders in a line between the producer and the consumer and attackers (1..=5)
    #[arg(long, default_value_t = 1)]
    line: usize,
    /// How a line of forwarders is joined
    #[arg(long, value_enum, default_value = "netns")]
    backend: LineBackend,
    /// Satisfaction-based pushback in every forwarder
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pushback: bool,
}

/// How the forwarders of `--line` are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
enum LineBackend {
    /// One network namespace per forwarder, veth pairs between neighbours.
    Netns,
    /// All in this namespace, TCP on 127.0.0.1 with loopback faces non-local.
    Loopback,
}

/// Network namespaces of a line, deleted (with their veths) when dropped.
struct LineNamespaces(Vec<String>);

impl Drop for LineNamespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            super::exp::netns_delete(ns);
        }
    }
}

/// The forwarders of a run: their sockets and PIDs, producer side first.
struct Line {
    socks: Vec<PathBuf>,
    pids: Vec<u32>,
    _namespaces: Option<LineNamespaces>,
}

/// Starts `a.line` forwarders, each routing `/bench` to the one before it.
fn start_line(a: &FloodBenchArgs, dir: &Path, procs: &mut Procs) -> anyhow::Result<Line> {
    let run = format!("fl{}", std::process::id() % 100_000);
    let mut namespaces = None;
    let mut ports = Vec::new();
    if a.line > 1 {
        match a.backend {
            LineBackend::Netns => {
                let names: Vec<String> = (0..a.line).map(|k| format!("{run}-f{k}")).collect();
                let mut guard = LineNamespaces(Vec::new());
                for ns in &names {
                    super::exp::ip(&["netns", "add", ns], None).context(
                        "cannot create network namespaces here (needs root or CAP_NET_ADMIN); \
                         use --backend loopback to run the line on this host's loopback",
                    )?;
                    guard.0.push(ns.clone());
                    super::exp::ip(&["-n", ns, "link", "set", "lo", "up"], None)?;
                }
                for k in 0..a.line - 1 {
                    let (va, vb) = (format!("{run}a{k}"), format!("{run}b{k}"));
                    super::exp::ip(
                        &[
                            "link",
                            "add",
                            &va,
                            "netns",
                            &names[k],
                            "type",
                            "veth",
                            "peer",
                            "name",
                            &vb,
                            "netns",
                            &names[k + 1],
                        ],
                        None,
                    )?;
                    for (ns, dev, host) in [(&names[k], &va, 1), (&names[k + 1], &vb, 2)] {
                        let addr = format!("10.78.{k}.{host}/30");
                        super::exp::ip(&["-n", ns, "addr", "add", &addr, "dev", dev], None)?;
                        super::exp::ip(&["-n", ns, "link", "set", dev, "up"], None)?;
                    }
                }
                namespaces = Some(guard);
            }
            LineBackend::Loopback => {
                for _ in 0..a.line {
                    ports.push(super::mesh::free_port()?);
                }
            }
        }
    }
    let mut socks = Vec::new();
    let mut pids = Vec::new();
    for k in 0..a.line {
        let sock = dir.join(format!("fwd-{k}.sock"));
        let mut args: Vec<String> = vec![
            "fwd".into(),
            "--socket".into(),
            sock.to_string_lossy().into_owned(),
            "--no-udp".into(),
            "--pit-max".into(),
            a.pit_max.to_string(),
            "--pushback".into(),
            a.pushback.to_string(),
            "--log-level".into(),
            "error".into(),
            "--stats-json".into(),
            dir.join(format!("fwd-{k}.json"))
                .to_string_lossy()
                .into_owned(),
        ];
        let upstream = match (a.line, a.backend) {
            (1, _) => {
                args.push("--no-tcp".into());
                None
            }
            (_, LineBackend::Netns) => {
                args.extend(["--tcp".into(), "0.0.0.0:6363".into()]);
                (k > 0).then(|| format!("tcp4://10.78.{}.1:6363", k - 1))
            }
            (_, LineBackend::Loopback) => {
                args.extend([
                    "--tcp".into(),
                    format!("127.0.0.1:{}", ports[k]),
                    "--loopback-is-local".into(),
                    "false".into(),
                ]);
                (k > 0).then(|| format!("tcp4://127.0.0.1:{}", ports[k - 1]))
            }
        };
        if let Some(up) = upstream {
            args.extend(["--route".into(), format!("/bench={up}")]);
        }
        let wrapper: Vec<String> = match &namespaces {
            Some(ns) => ["ip", "netns", "exec", ns.0[k].as_str()]
                .map(String::from)
                .to_vec(),
            None => Vec::new(),
        };
        pids.push(procs.spawn_in(&wrapper, &format!("fwd-{k}"), &args)?);
        // The next forwarder opens its route's face at start, so this one must listen first.
        let until = Instant::now() + Duration::from_secs(15);
        while UnixStream::connect(&sock).is_err() {
            if Instant::now() > until {
                let log =
                    std::fs::read_to_string(dir.join(format!("fwd-{k}.log"))).unwrap_or_default();
                bail!("forwarder {k} did not come up: {}", log.trim());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        socks.push(sock);
    }
    Ok(Line {
        socks,
        pids,
        _namespaces: namespaces,
    })
}

/// One legitimate fetch: when it finished (s since start), whether it got Data, its latency.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    at: f64,
    ok: bool,
    latency_us: u64,
    /// Nacks it was answered with (and retried after) before it ended.
    nacks: u32,
    /// It failed because an attempt got no answer at all within its lifetime (the Interest or
    /// its Data was dropped somewhere), not because Nacks used up its time.
    timed_out: bool,
}

/// One sample of the forwarders: PIT entries (the fullest forwarder's) and resident memory
/// (the largest), and each forwarder's PIT, producer side first.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    at: f64,
    pit: u64,
    rss_kib: u64,
    pits: Vec<u64>,
}

#[derive(Debug, Serialize)]
struct Phase {
    name: String,
    factor: u32,
    start_s: f64,
    end_s: f64,
    legit_sent: u64,
    legit_satisfied: u64,
    /// Satisfied / finished, in percent.
    satisfaction_pct: f64,
    /// Satisfaction relative to the baseline's, in percent.
    satisfaction_vs_baseline_pct: f64,
    legit_per_second: f64,
    /// Legitimate rate relative to the baseline's.
    rate_vs_baseline: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Attack packets sent per second (all attackers together).
    attack_per_second: f64,
    pit_max_seen: u64,
    /// Largest PIT seen at each forwarder of the line, producer side first.
    pit_max_per_forwarder: Vec<u64>,
    rss_max_kib: u64,
    /// Nacks the consumer's fetches were answered with and retried after.
    legit_nack_retries: u64,
    /// Failed fetches whose last attempt got no answer at all (dropped, not refused).
    legit_timeouts: u64,
    /// For a recovery phase: seconds from the end of the attack until the first 250 ms in
    /// which the consumer ran at ≥ 90 % of its baseline rate with nothing unsatisfied.
    recovery_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    line: usize,
    backend: Option<LineBackend>,
    pushback: bool,
    pit_cap: usize,
    attackers: usize,
    window: usize,
    phase_s: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    phases: Vec<Phase>,
    /// Counters of the forwarder at the end (its `status/general`).
    forwarder: serde_json::Value,
    /// Every forwarder's drops by reason, Nacks and send-queue drops at exit, producer side
    /// first.
    forwarders: Vec<serde_json::Value>,
}

/// The attackers' shared state: the rate they aim at and what they sent.
struct Attack {
    per_second: AtomicU64,
    sent: AtomicU64,
    reconnects: AtomicU64,
    stop: AtomicBool,
}

/// How long one legitimate fetch may take, retries after Nacks included.
const FETCH_DEADLINE: Duration = Duration::from_secs(1);
/// First and largest pause before retrying a Nacked fetch.
const NACK_BACKOFF: Duration = Duration::from_millis(5);
const NACK_BACKOFF_MAX: Duration = Duration::from_millis(80);

/// A packet to send many times with a fresh sequence number (and Nonce) patched in place, so
/// an attacker spends its time sending, not encoding.
struct Template {
    wire: Vec<u8>,
    /// Where the 8-byte sequence component's value starts.
    seq_at: usize,
    /// Where the 4-byte Nonce's value starts (Interests only).
    nonce_at: Option<usize>,
}

/// Marks the places to patch in an encoded template; unlikely to occur by chance.
const SEQ_MARK: [u8; 8] = *b"\xA5seq-mk\x5A";
const NONCE_MARK: [u8; 4] = [0xC3, 0x3C, 0xA5, 0x5A];

impl Template {
    /// `prefix` + one 8-byte component; an Interest (lifetime 4 s) or, with `data`, a Data.
    fn new(prefix: &str, data: bool) -> anyhow::Result<Self> {
        let name = Name::from_uri(prefix)?.append_generic(Bytes::from_static(&SEQ_MARK));
        let wire = if data {
            Data::new(name, Bytes::from_static(b"unsolicited")).sign_digest_sha256()
        } else {
            let mut i = Interest::new(name);
            i.lifetime_ms = Some(4_000);
            i.nonce = Some(u32::from_be_bytes(NONCE_MARK));
            i.encode()
        }
        .to_vec();
        let find = |mark: &[u8]| wire.windows(mark.len()).position(|w| w == mark);
        let seq_at = find(&SEQ_MARK).context("template without its sequence mark")?;
        let nonce_at = if data {
            None
        } else {
            Some(find(&NONCE_MARK).context("template without its nonce mark")?)
        };
        Ok(Template {
            wire,
            seq_at,
            nonce_at,
        })
    }

    /// Appends the template with `seq` (and a Nonce derived from it) patched in.
    fn emit(&self, seq: u64, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.wire);
        if let Some(b) = out.get_mut(at + self.seq_at..at + self.seq_at + 8) {
            b.copy_from_slice(&seq.to_be_bytes());
        }
        if let Some(n) = self.nonce_at
            && let Some(b) = out.get_mut(at + n..at + n + 4)
        {
            // Distinct per packet; nonces only need to differ, not to be secret, here.
            let mixed = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            b.copy_from_slice(&(mixed as u32).to_be_bytes());
        }
    }
}

/// Attacker threads run at the lowest CPU priority: on a small machine they stand for hosts
/// elsewhere, so the forwarder under test and the legitimate consumer get the CPU they would
/// have, while the forwarder still receives and handles every packet the attackers manage to
/// send (the report shows that rate). Best effort: without permission the priority stays.
fn lower_own_priority() {
    let _ = rustix::process::setpriority_process(None, 19);
}

/// One attacker connection: paced by `attack.per_second / n`, reconnecting when the forwarder
/// closes it.
fn attacker(sock: PathBuf, id: usize, n: usize, attack: Arc<Attack>) {
    lower_own_priority();
    let templates = (
        Template::new(&format!("/bench/legit/hole/{id}"), false),
        Template::new(&format!("/nowhere/{id}"), false),
        Template::new(&format!("/bench/legit/unsolicited/{id}"), true),
    );
    let (Ok(hole), Ok(nowhere), Ok(unsolicited)) = templates else {
        return;
    };
    let mut seq = 0u64;
    'connect: while !attack.stop.load(Ordering::Relaxed) {
        let Ok(mut s) = UnixStream::connect(&sock) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        attack.reconnects.fetch_add(1, Ordering::Relaxed);
        // Whatever the forwarder sends back (Nacks) is read and dropped.
        if let Ok(mut r) = s.try_clone() {
            std::thread::spawn(move || {
                lower_own_priority();
                let mut buf = vec![0u8; 1 << 16];
                while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
        let start = Instant::now();
        let mut sent_here = 0u64;
        let mut batch = Vec::with_capacity(64 * 1024);
        while !attack.stop.load(Ordering::Relaxed) {
            let rate = attack.per_second.load(Ordering::Relaxed) / n.max(1) as u64;
            if rate == 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent_here >= due {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            batch.clear();
            let mut k = 0;
            while sent_here < due && k < 256 {
                seq += 1;
                // Attacker 0 also sends a malformed packet every 2,000 (the forwarder closes
                // its connection, and it reconnects); the others keep their faces, so their
                // unanswered Interests stay in the PIT until they expire.
                let malformed = id == 0 && seq.is_multiple_of(2_000);
                if malformed {
                    batch.extend_from_slice(&[0x05, 0xFD, 0xFF, 0xFF, 0x07]);
                } else {
                    match seq % 4 {
                        3 => unsolicited.emit(seq, &mut batch),
                        2 => nowhere.emit(seq, &mut batch),
                        _ => hole.emit(seq, &mut batch),
                    }
                }
                sent_here += 1;
                k += 1;
                if malformed {
                    break;
                }
            }
            attack.sent.fetch_add(k, Ordering::Relaxed);
            if s.write_all(&batch).is_err() {
                continue 'connect;
            }
            if id == 0 && seq.is_multiple_of(2_000) {
                // The forwarder drops the face on the malformed packet; start over.
                let _ = s.shutdown(std::net::Shutdown::Both);
                continue 'connect;
            }
        }
    }
}

/// PIT entries of the forwarder `m` is connected to (its `status/general`).
async fn pit_entries(m: &Client) -> Option<u64> {
    match tokio::time::timeout(Duration::from_millis(900), dataset(m, "status/general")).await {
        Ok(Ok(b)) => amicn_tlv::mgmt::ForwarderStatus::decode_value(b)
            .ok()
            .and_then(|s| s.n_pit_entries),
        _ => None,
    }
}

/// Waits until a legitimate Interest is answered through the whole line (10 s at most).
async fn wait_line_up(consumer: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let mut i = Interest::new(Name::from_uri(&format!("/bench/legit/up/{n}"))?);
        i.lifetime_ms = Some(300);
        if matches!(consumer.express(&i).await, Ok(Reply::Data { .. })) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the line of forwarders did not carry a Data within 10 s (see the fwd-*.log files)")
}

fn rss_kib(pid: u32) -> u64 {
    super::mesh::status_kib(pid, "VmRSS").unwrap_or(0)
}

fn percentile(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64 / 1_000.0
}

pub(crate) fn run(a: FloodBenchArgs) -> anyhow::Result<()> {
    if a.window == 0 || a.attackers == 0 || a.pit_max == 0 {
        bail!("--window, --attackers and --pit-max must be positive");
    }
    if !(1..=5).contains(&a.line) {
        bail!("--line must be 1..=5 forwarders");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let dir = std::env::temp_dir().join(format!(
        "amicn-bench-flood-{}-{}",
        std::process::id(),
        amicn_ami::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(measure(&a, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = result?;
    std::fs::write(
        a.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary, &a.out);
    }
    Ok(())
}

async fn measure(a: &FloodBenchArgs, dir: &Path) -> anyhow::Result<Summary> {
    let exe = std::env::current_exe().context("locating the amicn binary")?;
    let mut procs = Procs {
        list: Vec::new(),
        exe,
        logs: dir.to_path_buf(),
    };
    let line = start_line(a, dir, &mut procs)?;
    let edge = line.socks.last().context("no forwarder")?.clone();
    let producer = connect_when_up(&line.socks[0]).await?;
    let handler: amicn_face::client::InlineHandler = Arc::new(|i: &Interest| {
        // Names under /bench/legit/hole are never answered: the flood's PIT load.
        if i.name
            .get(2)
            .is_some_and(|c| c.value() == b"hole".as_slice())
        {
            return None;
        }
        Some(Data::new(i.name.clone(), Bytes::from_static(&[0x42; 100])).sign_digest_sha256())
    });
    producer
        .serve_inline(Name::from_uri("/bench/legit")?, handler, true)
        .await?;
    let consumer = connect_when_up(&edge).await?;
    let mut monitors = Vec::new();
    for s in &line.socks {
        monitors.push(connect_when_up(s).await?);
    }
    if line.socks.len() > 1 {
        // The route of each forwarder to its upstream is a face opened at start; the line is
        // up once a Data makes it through.
        wait_line_up(&consumer).await?;
    }
    let pids = line.pids.clone();
    let rss_all = move || pids.iter().map(|p| rss_kib(*p)).max().unwrap_or(0);
    let rss_before = rss_all();

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(std::sync::Mutex::new(Vec::<Fetch>::new()));
    let legit = tokio::spawn(legit_consumer(
        consumer,
        a.window,
        t0,
        stop.clone(),
        fetches.clone(),
    ));
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let (samples, stop, rss_all) = (samples.clone(), stop.clone(), rss_all.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut pits = Vec::with_capacity(monitors.len());
                for m in &monitors {
                    pits.push(pit_entries(m).await.unwrap_or(u64::MAX));
                }
                let s = Sample {
                    at: t0.elapsed().as_secs_f64(),
                    pit: pits
                        .iter()
                        .copied()
                        .filter(|p| *p != u64::MAX)
                        .max()
                        .unwrap_or(u64::MAX),
                    rss_kib: rss_all(),
                    pits,
                };
                samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            monitors
        })
    };
    let attack = Arc::new(Attack {
        per_second: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let threads: Vec<_> = (0..a.attackers)
        .map(|id| {
            let (sock, attack, n) = (edge.clone(), attack.clone(), a.attackers);
            std::thread::spawn(move || attacker(sock, id, n, attack))
        })
        .collect();

    // Phases: baseline, then attack and recovery for each factor.
    let mut bounds: Vec<(String, u32, f64, f64, u64)> = Vec::new();
    let phase = a.phase;
    tokio::time::sleep(phase).await;
    bounds.push(("baseline".into(), 0, 0.0, t0.elapsed().as_secs_f64(), 0));
    let baseline_rate = {
        let f = fetches.lock().unwrap_or_else(|e| e.into_inner());
        let (s, e) = (bounds[0].2 + phase.as_secs_f64() * 0.2, bounds[0].3);
        f.iter().filter(|x| x.ok && x.at >= s && x.at < e).count() as f64 / (e - s).max(1e-3)
    };
    for &factor in &a.factors {
        let start = t0.elapsed().as_secs_f64();
        let sent0 = attack.sent.load(Ordering::Relaxed);
        attack.per_second.store(
            (baseline_rate * f64::from(factor)) as u64,
            Ordering::Relaxed,
        );
        tokio::time::sleep(phase).await;
        attack.per_second.store(0, Ordering::Relaxed);
        let end = t0.elapsed().as_secs_f64();
        let sent = attack.sent.load(Ordering::Relaxed) - sent0;
        bounds.push((format!("flood {factor}×"), factor, start, end, sent));
        tokio::time::sleep(phase).await;
        bounds.push((
            format!("recovery after {factor}×"),
            factor,
            end,
            t0.elapsed().as_secs_f64(),
            0,
        ));
    }
    attack.stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = legit.await;
    let monitors = sampler.await.context("sampler")?;
    let monitor = monitors.last().context("no forwarder")?;
    let forwarder = match dataset(monitor, "status/general").await {
        Ok(b) => {
            let s = amicn_tlv::mgmt::ForwarderStatus::decode_value(b)?;
            serde_json::json!({
                "n_pit_entries": s.n_pit_entries,
                "n_in_interests": s.n_in_interests,
                "n_out_interests": s.n_out_interests,
                "n_in_data": s.n_in_data,
                "n_out_data": s.n_out_data,
                "n_out_nacks": s.n_out_nacks,
                "attack_reconnects": attack.reconnects.load(Ordering::Relaxed),
            })
        }
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let rss_after = rss_all();
    procs.stop_all(Duration::from_secs(5));
    drop(line);
    // Each forwarder's own counters at exit (producer side first): what it dropped, and why.
    let forwarders: Vec<serde_json::Value> = (0..a.line)
        .map(|k| {
            let v = super::mesh::read_json(&dir.join(format!("fwd-{k}.json"))).unwrap_or_default();
            serde_json::json!({
                "drops": v["drops"].clone(),
                "in_nacks": v["in_nacks"].clone(),
                "out_nacks": v["out_nacks"].clone(),
                "faces": v["faces"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .map(|f| {
                                serde_json::json!({
                                    "remote_uri": f["remote_uri"],
                                    "in_packets": f["in_packets"],
                                    "out_packets": f["out_packets"],
                                    "queue_drops": f["queue_drops"],
                                })
                            })
                            .collect::<Vec<_>>()
                    }),
            })
        })
        .collect();

    let fetches = fetches.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut phases = Vec::new();
    let mut base_sat = 100.0;
    for (name, factor, start, end, sent) in &bounds {
        let in_phase: Vec<&Fetch> = fetches
            .iter()
            .filter(|f| f.at >= *start && f.at < *end)
            .collect();
        let ok = in_phase.iter().filter(|f| f.ok).count() as u64;
        let all = in_phase.len() as u64;
        let sat = if all == 0 {
            0.0
        } else {
            100.0 * ok as f64 / all as f64
        };
        if name == "baseline" {
            base_sat = sat.max(1e-9);
        }
        let mut lat: Vec<u64> = in_phase
            .iter()
            .filter(|f| f.ok)
            .map(|f| f.latency_us)
            .collect();
        let in_samples = samples.iter().filter(|s| s.at >= *start && s.at < *end);
        let mut pit_max_per_forwarder = vec![0u64; a.line];
        let (pit_max, rss_max) = in_samples.fold((0, 0), |(p, r), s| {
            for (m, v) in pit_max_per_forwarder.iter_mut().zip(&s.pits) {
                if *v != u64::MAX {
                    *m = (*m).max(*v);
                }
            }
            (
                p.max(if s.pit == u64::MAX { 0 } else { s.pit }),
                r.max(s.rss_kib),
            )
        });
        let recovery_s = name
            .starts_with("recovery")
            .then(|| recovery(&fetches, *start, *end, baseline_rate));
        phases.push(Phase {
            name: name.clone(),
            factor: *factor,
            start_s: *start,
            end_s: *end,
            legit_sent: all,
            legit_satisfied: ok,
            satisfaction_pct: sat,
            satisfaction_vs_baseline_pct: 100.0 * sat / base_sat,
            legit_per_second: ok as f64 / (end - start).max(1e-3),
            rate_vs_baseline: ok as f64 / (end - start).max(1e-3) / baseline_rate.max(1e-9),
            p50_ms: percentile(&mut lat, 0.5),
            p99_ms: percentile(&mut lat, 0.99),
            attack_per_second: *sent as f64 / (end - start).max(1e-3),
            legit_nack_retries: in_phase.iter().map(|f| u64::from(f.nacks)).sum(),
            legit_timeouts: in_phase.iter().filter(|f| f.timed_out).count() as u64,
            pit_max_seen: pit_max,
            pit_max_per_forwarder,
            rss_max_kib: rss_max,
            recovery_s: recovery_s.flatten(),
        });
    }
    write_series(&a.out, &fetches, &samples, baseline_rate, a.pit_max)?;
    Ok(Summary {
        line: a.line,
        backend: (a.line > 1).then_some(a.backend),
        pushback: a.pushback,
        pit_cap: a.pit_max,
        attackers: a.attackers,
        window: a.window,
        phase_s: phase.as_secs_f64(),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        phases,
        forwarder,
        forwarders,
    })
}

/// Seconds from `start` until the first 250 ms window at ≥ 90 % of `baseline` with no
/// unsatisfied fetch (`None` if the phase never got there).
fn recovery(fetches: &[Fetch], start: f64, end: f64, baseline: f64) -> Option<f64> {
    let step = 0.25;
    let mut t = start;
    while t + step <= end {
        let w: Vec<&Fetch> = fetches
            .iter()
            .filter(|f| f.at >= t && f.at < t + step)
            .collect();
        let ok = w.iter().filter(|f| f.ok).count() as f64;
        if ok / step >= 0.9 * baseline && w.iter().all(|f| f.ok) {
            return Some(t - start);
        }
        t += step;
    }
    None
}

async fn legit_consumer(
    client: Client,
    window: usize,
    t0: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<std::sync::Mutex<Vec<Fetch>>>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        while tasks.len() < window {
            seq += 1;
            let client = client.clone();
            let out = out.clone();
            tasks.spawn(async move {
                let mut i = Interest::new(
                    Name::from_uri(&format!("/bench/legit/d/{seq}")).unwrap_or_default(),
                );
                let began = Instant::now();
                // Like a real consumer, a Nack (Congestion under pushback) is retried after a
                // short backoff, with a fresh Nonce, until the fetch's one second is up.
                let deadline = began + FETCH_DEADLINE;
                let (mut ok, mut nacks, mut backoff) = (false, 0u32, NACK_BACKOFF);
                let mut timed_out = false;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left < Duration::from_millis(1) {
                        break;
                    }
                    i.lifetime_ms = Some(left.as_millis() as u64);
                    i.nonce = Some(rand::random());
                    match client.express(&i).await {
                        Ok(Reply::Data { .. }) => {
                            ok = true;
                            break;
                        }
                        Ok(Reply::Nack { .. }) => {
                            nacks += 1;
                            tokio::time::sleep(backoff.min(left)).await;
                            backoff = (backoff * 2).min(NACK_BACKOFF_MAX);
                        }
                        Err(e) => {
                            timed_out = matches!(e, ClientError::Timeout { .. });
                            break;
                        }
                    }
                }
                out.lock().unwrap_or_else(|e| e.into_inner()).push(Fetch {
                    at: t0.elapsed().as_secs_f64(),
                    ok,
                    latency_us: began.elapsed().as_micros() as u64,
                    nacks,
                    timed_out,
                });
            });
        }
        let _ = tasks.join_next().await;
    }
    while tasks.join_next().await.is_some() {}
}

fn write_series(
    out: &Path,
    fetches: &[Fetch],
    samples: &[Sample],
    baseline: f64,
    pit_cap: usize,
) -> anyhow::Result<()> {
    let end = fetches.iter().map(|f| f.at).fold(0.0, f64::max);
    let step = 0.25;
    let mut csv = String::from("t_s,legit_ok_per_s,legit_failed_per_s,pit_entries,rss_kib\n");
    let (mut rate, mut pit) = (Vec::new(), Vec::new());
    let mut t = 0.0;
    while t < end {
        let (ok, failed) = fetches
            .iter()
            .filter(|f| f.at >= t && f.at < t + step)
            .fold(
                (0u64, 0u64),
                |(o, x), f| if f.ok { (o + 1, x) } else { (o, x + 1) },
            );
        let s = samples
            .iter()
            .rfind(|s| s.at < t + step)
            .cloned()
            .unwrap_or(Sample {
                at: t,
                pit: 0,
                rss_kib: 0,
                pits: Vec::new(),
            });
        let p = if s.pit == u64::MAX { 0 } else { s.pit };
        csv.push_str(&format!(
            "{t:.2},{:.0},{:.0},{p},{}\n",
            ok as f64 / step,
            failed as f64 / step,
            s.rss_kib
        ));
        rate.push((t, ok as f64 / step / baseline.max(1e-9)));
        pit.push((t, p as f64 / pit_cap.max(1) as f64));
        t += step;
    }
    std::fs::write(out.join("flood.csv"), csv)?;
    super::plots::time_series(
        &out.join("flood.png"),
        "legitimate fetches under Interest flooding",
        "fraction of baseline / of PIT cap",
        &[
            ("legitimate rate / baseline".into(), rate),
            ("PIT entries / cap".into(), pit),
        ],
        Some(1.5),
    )?;
    Ok(())
}

fn print_table(s: &Summary, out: &Path) {
    println!(
        "amicn bench flood: {} attackers, legitimate window {}, PIT cap {}, phases of {:.1} s",
        s.attackers, s.window, s.pit_cap, s.phase_s
    );
    if s.line > 1 {
        println!(
            "line of {} forwarders ({:?}), pushback {}; PIT max per forwarder is producer side first",
            s.line,
            s.backend.unwrap_or(LineBackend::Loopback),
            if s.pushback { "on" } else { "off" }
        );
    }
    println!(
        "{:<22} {:>11} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>10} {:>9}",
        "phase",
        "attack/s",
        "satisfied",
        "timeouts",
        "vs base",
        "rate×",
        "p50 ms",
        "p99 ms",
        "PIT max",
        "RSS MiB",
        "recovery"
    );
    for p in &s.phases {
        println!(
            "{:<22} {:>11.0} {:>9.1}% {:>9} {:>8.1}% {:>9.2} {:>8.2} {:>8.2} {:>9} {:>10.1} {:>9}",
            p.name,
            p.attack_per_second,
            p.satisfaction_pct,
            p.legit_timeouts,
            p.satisfaction_vs_baseline_pct,
            p.rate_vs_baseline,
            p.p50_ms,
            p.p99_ms,
            if s.line > 1 {
                p.pit_max_per_forwarder
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            } else {
                p.pit_max_seen.to_string()
            },
            p.rss_max_kib as f64 / 1024.0,
            p.recovery_s
                .map(|r| format!("{r:.2} s"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "forwarder RSS {:.1} MiB before, {:.1} MiB after; summary.json, flood.csv, flood.png written to {}",
        s.rss_before_kib as f64 / 1024.0,
        s.rss_after_kib as f64 / 1024.0,
        out.display()
    );
}
