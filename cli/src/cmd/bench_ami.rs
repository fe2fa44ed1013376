//! `amicn bench ami`: the AMI head-end and key distribution at utility scale, through real
//! in-process forwarders on Unix sockets.
//!
//! Two measurements share one population of simulated meters (a key graph with every meter
//! enrolled, an Ed25519 identity and certificate per meter, one signed and encrypted reading
//! per meter):
//!
//! - **MDMS ingest.** One producer connection serves every reading through a forwarder; an
//!   [`MdmsCollector`] fetches them by implicit digest in rounds, batch-verifies, decrypts and
//!   commits them to SQLite. Its rate is reported next to the rate of batch Ed25519 verification
//!   alone (`verify_data_batch` over the same packets, measured before and after in the same
//!   run), with a breakdown of where a reading's time goes, each stage measured on its own.
//! - **Rekey delivery.** One leave, then a batch of leaves committed as one epoch; the KMS's
//!   wraps (DigestSha256) and segmented, KMS-signed manifest object are published the way
//!   `KmsService` does, served by one KMS producer connection behind a two-level mesh (head
//!   forwarder, two concentrator forwarders over TCP), and every member — an in-process
//!   [`MemberState`] — ingests the manifest and fetches exactly the wraps it needs by implicit
//!   digest with the `MissingWrap` retry protocol of the meter. Reported: members reached, wraps
//!   fetched, how many the KMS answered and how many each forwarder's Content Store answered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amicn_ami::reading::{Flags, Reading};
use amicn_ami::{
    AmiNames, Credentials, HeadEndKeys, MdmsCollector, MdmsConfig, MeterModel, Pki, Publisher,
    ReadingStore, SqliteReadingStore, StoredReading, Trust, ami_policy, now_ms, now_us,
    reading_key,
};
use amicn_consumer::{Consumer, ConsumerOptions};
use amicn_face::FaceUri;
use amicn_face::client::{Client, ClientOptions, Reply, TransportUri};
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig, StaticFace, StaticRoute};
use amicn_kms::SymmetricKey;
use amicn_kms::cert::Certificate;
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_kms::graph::{
    GraphConfig, GraphError, KeyGraph, MemberState, Rekey, SignedManifest, VerifiedManifest,
    WRAP_LEN, Wrap, WrapMode,
};
use amicn_kms::identity::{PublicKey, sign_data_digest, verify_data_batch};
use amicn_kms::trust::{CertSource, CertStore, Validator};
use amicn_tlv::{Component, Data, Interest, Name, TlvReader, encode_tlv};
use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Options of `amicn bench ami`.
#[derive(Debug, Args)]
pub(crate) struct AmiBenchArgs {
    /// Simulated meters: key-graph members, each with its own identity and one reading.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(4..=1_000_000))]
    meters: u32,
    /// Departures committed together in the batch rekey (at most half the meters).
    #[arg(long, default_value_t = 1_000)]
    leaves: u32,
    /// Degree of the key trees.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=16))]
    degree: u32,
    /// Readings per MDMS collection round (one batch verification, one transaction each).
    #[arg(long, default_value_t = 10_000)]
    round: usize,
    /// Manifest segment fetches allowed per epoch. When every member fetching the whole
    /// manifest object would exceed it, only an evenly spread sample of members fetches it
    /// (each validating every segment); the others ingest the copy this process fetched.
    #[arg(long, default_value_t = 200_000)]
    manifest_budget: u64,
    /// Members delivering concurrently during a rekey.
    #[arg(long, default_value_t = 1_024)]
    concurrency: usize,
    /// Member connections per concentrator forwarder.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Give up on a phase (ingest, one epoch's delivery) after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Skip the MDMS ingest measurement.
    #[arg(long)]
    skip_ingest: bool,
    /// Skip the rekey delivery measurement.
    #[arg(long)]
    skip_rekey: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// What one run does (the CLI options, or a small plan in the smoke test).
#[derive(Debug, Clone)]
struct Plan {
    meters: u32,
    leaves: u32,
    degree: u32,
    round: usize,
    manifest_budget: u64,
    concurrency: usize,
    clients: usize,
    timeout: Duration,
    ingest: bool,
    rekey: bool,
    progress: bool,
}

/// Entry point of `amicn bench ami`.
pub(crate) fn run(a: AmiBenchArgs) -> anyhow::Result<()> {
    if a.leaves == 0 || a.leaves > a.meters / 2 {
        bail!("--leaves must be between 1 and half of --meters");
    }
    if !(100..=100_000).contains(&a.round) {
        bail!("--round must be between 100 and 100000 readings");
    }
    if !(1..=65_536).contains(&a.concurrency) || !(1..=64).contains(&a.clients) {
        bail!("--concurrency must be 1..=65536 and --clients 1..=64");
    }
    let plan = Plan {
        meters: a.meters,
        leaves: a.leaves,
        degree: a.degree,
        round: a.round,
        manifest_budget: a.manifest_budget.max(1),
        concurrency: a.concurrency,
        clients: a.clients,
        timeout: Duration::from_secs(a.timeout_s.clamp(10, 3_600)),
        ingest: !a.skip_ingest,
        rekey: !a.skip_rekey,
        progress: true,
    };
    let report = run_plan(&plan)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Debug, Clone, Serialize)]
struct AmiReport {
    meters: u32,
    degree: u32,
    subgroups: Vec<(String, u32, u8)>,
    setup_s: f64,
    ingest: Option<IngestReport>,
    rekey: Vec<EpochReport>,
}

#[derive(Debug, Clone, Serialize)]
struct IngestReport {
    round: usize,
    stored: u64,
    rejected: u64,
    missing: u64,
    /// Readings whose stored values differ from what the meter sealed.
    wrong_values: u64,
    /// A second collection of the first round's names: every one must be a duplicate.
    duplicates_refused: u64,
    /// The first interval: the MDMS meets every meter for the first time, so each reading also
    /// costs a check of its meter's certificate (batched with the readings).
    first_contact_seconds: f64,
    first_contact_per_s: f64,
    first_contact_ratio: f64,
    /// The next interval, every meter's chain known: the steady state of a collecting MDMS.
    seconds: f64,
    ingest_per_s: f64,
    baseline_before_per_s: f64,
    baseline_after_per_s: f64,
    baseline_per_s: f64,
    ratio: f64,
    goal_ratio_met: bool,
    goal_rate_met: bool,
    breakdown: Breakdown,
}

/// Microseconds per reading of each stage, each measured on its own over the same packets.
#[derive(Debug, Clone, Serialize)]
struct Breakdown {
    fetch_us: f64,
    fetch_failures: u64,
    precheck_us: f64,
    verify_collect_us: f64,
    verify_warm_chains_us: f64,
    verify_batch_only_us: f64,
    decrypt_us: f64,
    store_us: f64,
    sum_us: f64,
    ingest_us: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
struct EpochReport {
    label: String,
    epoch: u32,
    leaves: u32,
    /// Members that ingested the epoch and still hold a place (every one is affected: the
    /// broadcast key changes on any departure).
    members_rekeyed: u64,
    /// Departing members that ingested the manifest and dropped their keys.
    departed_notified: u64,
    failures: u64,
    first_failure: Option<String>,
    /// Members whose keys differ from what the KMS says they are entitled to.
    key_mismatches: u64,
    commit_ms: f64,
    publish_ms: f64,
    wraps_published: u64,
    wrap_wire_bytes: u64,
    rekey_bytes: u64,
    manifest_bytes: u64,
    manifest_object_bytes: u64,
    manifest_segments: u64,
    manifest_wire_bytes: u64,
    manifest_fetchers: u64,
    segment_fetches: u64,
    /// Segment fetches if every member fetched the whole manifest object itself.
    segment_fetches_if_all: u64,
    wrap_fetches: u64,
    wraps_per_member_max: u64,
    ingest_attempts: u64,
    kms_answered_wraps: u64,
    kms_answered_segments: u64,
    cs_hits_head: u64,
    cs_hits_conc: Vec<u64>,
    /// Interests the members' connections sent (fetches plus retransmissions).
    interests_sent: u64,
    /// Fetches folded into an identical one pending on the same shared connection (what the
    /// concentrator's PIT would aggregate if every member had its own face).
    coalesced: u64,
    retransmissions: u64,
    /// Interests neither the KMS nor a cache answered: folded into another pending Interest
    /// (PIT aggregation), or lost.
    aggregated: u64,
    /// Share of the members' fetches the KMS did not answer itself.
    cache_share: f64,
    deliver_s: f64,
    member_p50_ms: f64,
    member_p99_ms: f64,
    /// CPU seconds during delivery: the three forwarder threads, the whole process, and the
    /// members' share (summed wall time inside `MemberState::ingest` and segment validation).
    cpu_forwarders_s: f64,
    cpu_process_s: f64,
    cpu_member_ingest_s: f64,
    cpu_segment_validation_s: f64,
}

// ---------------------------------------------------------------------------------------------
// Population

/// One meter's reading as published, with what the MDMS needs to check it.
struct MeterReading {
    id: u32,
    t_us: u64,
    energy_wh: u64,
    power_w: u32,
    full_name: Name,
    key: PublicKey,
    cert: Certificate,
    read_name: Name,
    read_key: SymmetricKey,
    /// The meter's reading of the next interval.
    next_t_us: u64,
    next_energy_wh: u64,
    next_power_w: u32,
    next_full_name: Name,
    /// A packet of the same size under another name with a dummy signature: what the
    /// fetch-only measurement asks for (so it never warms a cache for the ingest).
    probe: Bytes,
    probe_name: Name,
}

struct Population {
    names: AmiNames,
    pki: Pki,
    kms: Credentials,
    graph: KeyGraph,
    /// Member state of meter `i + 1`; `None` once it departed.
    members: Vec<Option<MemberState>>,
    readings: Vec<MeterReading>,
    /// The readings as signed Data, in meter order.
    packets: Vec<Data>,
    /// The next interval's readings, in meter order.
    next_packets: Vec<Data>,
}

fn bar(plan: &Plan, len: u64, msg: &str) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:<34} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(msg.to_string());
    b
}

const PREFIX: &str = "/amibench";
/// The DR project of the first half of the meters.
const PROJECT: &str = "p1";
/// FreshnessPeriod of readings (the meter's 15-minute interval).
const READING_FRESHNESS_MS: u64 = 900_000;
/// FreshnessPeriods the KMS uses for wraps and manifests (`KmsConfig::new`).
const WRAP_FRESHNESS_MS: u64 = 3_600_000;
const MANIFEST_FRESHNESS_MS: u64 = 1_000;

fn generate(plan: &Plan) -> anyhow::Result<Population> {
    let names = AmiNames::new(PREFIX)?;
    let pki = Pki::new(&names)?;
    let kms = pki.issue(&names.kms())?;
    let n = plan.meters;
    let mut graph = KeyGraph::new(GraphConfig::new(names.prefix_str(), plan.degree))?;
    graph.add_project(PROJECT)?;
    // Two subgroups: the first half of the meters in DR project p1, the rest in none.
    let half = n / 2;
    let a: Vec<u32> = (1..=half).collect();
    let b: Vec<u32> = (half + 1..=n).collect();
    graph.bulk_enroll(&a, &[PROJECT])?;
    graph.bulk_enroll(&b, &[])?;
    let mut members = Vec::with_capacity(n as usize);
    let mut user_keys = Vec::with_capacity(n as usize);
    for id in 1..=n {
        let m = graph.export_member(id)?;
        let (uk_name, uk) = m
            .keys()
            .first()
            .map(|(name, k)| (name.clone(), k.duplicate()))
            .context("exported member holds no user key")?;
        user_keys.push((id, uk_name, uk));
        members.push(Some(m));
    }
    let t_us = now_us();
    let pb = bar(plan, u64::from(n), "meters: identities + readings");
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let chunk = user_keys.len().div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<Vec<(MeterReading, Data, Data)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = user_keys
            .chunks(chunk)
            .map(|part| {
                let (names, pki, pb) = (&names, &pki, &pb);
                s.spawn(move || -> anyhow::Result<Vec<(MeterReading, Data, Data)>> {
                    let mut out = Vec::with_capacity(part.len());
                    for (id, uk_name, uk) in part {
                        out.push(make_reading(names, pki, *id, uk_name, uk, t_us)?);
                        pb.inc(1);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("generator thread panicked")))
            })
            .collect()
    });
    pb.finish_and_clear();
    let mut readings = Vec::with_capacity(n as usize);
    let mut packets = Vec::with_capacity(n as usize);
    let mut next_packets = Vec::with_capacity(n as usize);
    for p in parts {
        for (r, d, next) in p? {
            readings.push(r);
            packets.push(d);
            next_packets.push(next);
        }
    }
    Ok(Population {
        names,
        pki,
        kms,
        graph,
        members,
        readings,
        packets,
        next_packets,
    })
}

/// The meters' reading interval (the usual 15 minutes).
const INTERVAL_US: u64 = 900_000_000;

/// What a meter publishes for two consecutive intervals (as `Meter::publish_reading`): the
/// meter's simulated registers as a version-1 [`Reading`] plaintext (seven registers, about
/// 150 bytes) sealed under the reading key, signed by the meter.
fn make_reading(
    names: &AmiNames,
    pki: &Pki,
    id: u32,
    uk_name: &str,
    uk: &SymmetricKey,
    t_us: u64,
) -> anyhow::Result<(MeterReading, Data, Data)> {
    let creds = pki.issue(&names.meter(id))?;
    let (read_name, read_key) = reading_key(uk, &Name::from_uri(uk_name)?)?;
    let mut model = MeterModel::new(id, 10_000 + u64::from(id) * 1_000 + u64::from(id % 50));
    let mut seal = |t_us: u64| -> anyhow::Result<(Data, Bytes, u64, u32)> {
        let r = model.capture(t_us, Duration::from_micros(INTERVAL_US), Flags::NONE);
        let (energy_wh, power_w) = (r.active_import_wh(), r.active_power_w());
        let (energy_wh, power_w) = energy_wh.zip(power_w).context("simulated registers")?;
        let name = names.reading(id, t_us);
        let content = EnvelopeKey::derive(&read_key, &read_name, Purpose::Content)
            .seal(&name, &r.encode()?)?;
        let mut d = Data::new(name, content.clone());
        d.meta_info.freshness_period_ms = Some(READING_FRESHNESS_MS);
        let wire = creds.key.sign_data(&mut d)?;
        Ok((Data::decode(wire)?, content, energy_wh, power_w))
    };
    // The previous interval and, a quarter hour later, the current one (a reading from the
    // future would be refused).
    let next_t_us = t_us;
    let t_us = t_us - INTERVAL_US;
    let (data, content, energy_wh, power_w) = seal(t_us)?;
    let (next, _, next_energy_wh, next_power_w) = seal(next_t_us)?;
    let mut p = Data::new(names.reading(id, t_us + 1), content);
    p.meta_info.freshness_period_ms = Some(READING_FRESHNESS_MS);
    let probe = p.sign_with(creds.key.signature_info(), |_| vec![0u8; 64]);
    let probe_name = p.full_name();
    Ok((
        MeterReading {
            id,
            t_us,
            energy_wh,
            power_w,
            full_name: data.full_name(),
            key: creds.key.public_key(),
            cert: creds.cert,
            read_name,
            read_key,
            next_t_us,
            next_energy_wh,
            next_power_w,
            next_full_name: next.full_name(),
            probe,
            probe_name,
        },
        data,
        next,
    ))
}

// ---------------------------------------------------------------------------------------------
// Plumbing

/// A directory for sockets and databases, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let d = std::env::temp_dir().join(format!(
            "amicn-bench-ami-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d)?;
        Ok(Scratch(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn start_forwarder(
    sock: &Path,
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> anyhow::Result<RunningForwarder> {
    let mut cfg = RuntimeConfig {
        unix_path: Some(sock.to_path_buf()),
        ..RuntimeConfig::default()
    };
    tweak(&mut cfg);
    RunningForwarder::start(cfg)
        .with_context(|| format!("starting a forwarder on {}", sock.display()))
}

async fn connect(sock: &Path) -> anyhow::Result<Client> {
    let opts = ClientOptions {
        reconnect: false,
        send_queue: 16_384,
        handler_queue: 16_384,
        ..ClientOptions::default()
    };
    Client::connect(&TransportUri::Unix(sock.to_path_buf()), opts)
        .await
        .with_context(|| format!("connecting to {}", sock.display()))
}

/// A [`Publisher`] answering from its own thread and runtime, as a producer on another host
/// would: the members or the MDMS simulated in this process never delay its answers.
struct RemotePublisher {
    publisher: Publisher,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Classify = Option<fn(&Name) -> &'static str>;

impl RemotePublisher {
    /// Connects to the forwarder at `sock` and serves `prefixes`; `preload` is put into the
    /// store before the prefixes are registered.
    fn start(
        sock: &Path,
        key: Arc<amicn_kms::identity::KeyPair>,
        classify: Classify,
        preload: Vec<Bytes>,
        prefixes: Vec<Name>,
    ) -> anyhow::Result<Self> {
        let sock = sock.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<anyhow::Result<Publisher>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let up = async {
                        let c = connect(&sock).await?;
                        let p = Publisher::new(&c, key, classify);
                        for w in preload {
                            p.put_wire(w)?;
                        }
                        for prefix in prefixes {
                            p.serve(prefix).await?;
                        }
                        anyhow::Ok(p)
                    };
                    match up.await {
                        Ok(p) => {
                            let _ = tx.send(Ok(p));
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let publisher = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the producer thread exited"))??;
        Ok(RemotePublisher {
            publisher,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for RemotePublisher {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Content Store hits of a forwarder (NFD `cs/info` dataset).
async fn cs_hits(c: &Client) -> anyhow::Result<u64> {
    let mut i = Interest::new(Name::from_uri("/localhost/nfd/cs/info")?);
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    i.lifetime_ms = Some(2_000);
    i.nonce = Some(rand::random());
    match c.express(&i).await? {
        Reply::Data { data, .. } => {
            let infos = amicn_tlv::mgmt::CsInfo::decode_list(data.content.clone())?;
            Ok(infos.first().and_then(|x| x.n_hits).unwrap_or(0))
        }
        Reply::Nack { reason } => bail!("cs/info was Nacked: {reason:?}"),
    }
}

/// CPU seconds used so far by this process's forwarder threads and by the whole process
/// (Linux `/proc/self/task/*/stat`, clock ticks of 10 ms; zeros elsewhere).
fn cpu_seconds() -> (f64, f64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    let (mut fwd, mut all) = (0u64, 0u64);
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: utime and stime are the 12th and 13th fields after comm.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
            .sum();
        all += ticks;
        if head.contains("(amicn-fwd") {
            fwd += ticks;
        }
    }
    (fwd as f64 / 100.0, all as f64 / 100.0)
}

fn per_s(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

fn us_per(d: Duration, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        d.as_secs_f64() * 1e6 / n as f64
    }
}

/// Fetches `names` (unverified) with `limit` in flight, as `MdmsCollector::collect` does;
/// returns how many failed.
async fn fetch_all(c: &Consumer, names: Vec<Name>, limit: usize) -> u64 {
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let c = c.clone();
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            c.fetch_unverified(Interest::new(name)).await.is_ok()
        });
    }
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        if !matches!(r, Ok(true)) {
            failed += 1;
        }
    }
    failed
}

// ---------------------------------------------------------------------------------------------
// Orchestration

fn run_plan(plan: &Plan) -> anyhow::Result<AmiReport> {
    let scratch = Scratch::new()?;
    let started = Instant::now();
    let mut pop = generate(plan)?;
    let subgroups = pop.graph.subgroups();
    let setup_s = started.elapsed().as_secs_f64();
    let ingest = if plan.ingest {
        Some(bench_ingest(&pop, plan, &scratch.0)?)
    } else {
        None
    };
    let rekey = if plan.rekey {
        bench_rekey(&mut pop, plan, &scratch.0)?
    } else {
        Vec::new()
    };
    Ok(AmiReport {
        meters: plan.meters,
        degree: plan.degree,
        subgroups,
        setup_s,
        ingest,
        rekey,
    })
}

// ---------------------------------------------------------------------------------------------
// MDMS ingest

/// Fetches a collector keeps in flight (`MAX_IN_FLIGHT` of `ami::mdms`).
const MDMS_IN_FLIGHT: usize = 256;

fn bench_ingest(pop: &Population, plan: &Plan, dir: &Path) -> anyhow::Result<IngestReport> {
    let sock = dir.join("mdms-fwd.sock");
    let fwd = start_forwarder(&sock, |_| {})?;
    let rt = runtime()?;
    let r = rt.block_on(async {
        tokio::time::timeout(plan.timeout, ingest_async(pop, plan, dir, &sock))
            .await
            .map_err(|_| anyhow::anyhow!("MDMS ingest did not finish within {:?}", plan.timeout))?
    });
    drop(rt);
    let _ = fwd.shutdown();
    r
}

/// Batch verification alone over every packet, in rounds: readings per second.
fn baseline(pop: &Population, round: usize) -> anyhow::Result<f64> {
    let items: Vec<(&Data, &PublicKey)> = pop
        .packets
        .iter()
        .zip(&pop.readings)
        .map(|(d, r)| (d, &r.key))
        .collect();
    let t = Instant::now();
    let mut bad = 0usize;
    for chunk in items.chunks(round) {
        bad += verify_data_batch(chunk)
            .iter()
            .filter(|r| r.is_err())
            .count();
    }
    let el = t.elapsed();
    if bad > 0 {
        bail!("{bad} readings failed batch verification");
    }
    Ok(per_s(items.len() as u64, el))
}

async fn ingest_async(
    pop: &Population,
    plan: &Plan,
    dir: &Path,
    sock: &Path,
) -> anyhow::Result<IngestReport> {
    let n = pop.readings.len();
    let names = &pop.names;
    // The meters' side: one producer connection serving every reading (and the probes).
    let mut preload = Vec::with_capacity(3 * n);
    for ((r, d), next) in pop.readings.iter().zip(&pop.packets).zip(&pop.next_packets) {
        preload.push(d.wire().cloned().context("reading without wire")?);
        preload.push(next.wire().cloned().context("reading without wire")?);
        preload.push(r.probe.clone());
    }
    let meters = names
        .ami()
        .append(Component::generic(Bytes::from_static(b"meter")));
    let _producer = RemotePublisher::start(sock, pop.kms.key.clone(), None, preload, vec![meters])?;

    // The MDMS: every meter's certificate and reading key known in advance.
    let mclient = connect(sock).await?;
    let trust = Trust::new(names, pop.pki.anchor(), &mclient)?;
    let keys = Arc::new(HeadEndKeys::default());
    for r in &pop.readings {
        trust.add_certificate(r.cert.clone());
        keys.add_user(r.id, r.read_name.clone(), r.read_key.duplicate(), 0);
    }
    let store = SqliteReadingStore::open(dir.join("readings.db"))?;
    let cfg = MdmsConfig::new(names.clone(), Duration::from_secs(24 * 3600));
    let collector = MdmsCollector::new(cfg, trust, keys.clone(), &mclient, Box::new(store));

    let baseline_before = baseline(pop, plan.round)?;

    // Fetch alone, through the same forwarder and connection, with the collector's window.
    let fetcher = Consumer::new(mclient.clone()).with_options(ConsumerOptions {
        max_retries: 2,
        lifetime: Duration::from_millis(500),
    });
    let pb = bar(plan, n as u64, "fetch only (probe packets)");
    let t = Instant::now();
    let mut fetch_failures = 0;
    for chunk in pop.readings.chunks(plan.round) {
        let names: Vec<Name> = chunk.iter().map(|r| r.probe_name.clone()).collect();
        fetch_failures += fetch_all(&fetcher, names, MDMS_IN_FLIGHT).await;
        pb.inc(chunk.len() as u64);
    }
    let fetch_el = t.elapsed();
    pb.finish_and_clear();

    // The ingest itself: rounds of `collect`, pipelined, missing names tried again (bounded).
    // First the interval in which the MDMS meets every meter, then the next one.
    let first_names: Vec<Name> = pop.readings.iter().map(|r| r.full_name.clone()).collect();
    let pb = bar(plan, n as u64, "MDMS ingest, first contact");
    let cold = ingest_pass(&collector, first_names, plan.round, &pb).await;
    pb.finish_and_clear();
    let next_names: Vec<Name> = pop
        .readings
        .iter()
        .map(|r| r.next_full_name.clone())
        .collect();
    let pb = bar(plan, n as u64, "MDMS ingest, next interval");
    let steady = ingest_pass(&collector, next_names, plan.round, &pb).await;
    pb.finish_and_clear();
    let stored = cold.stored + steady.stored;
    let rejected = cold.rejected + steady.rejected;
    let missing = cold.missing + steady.missing;
    let ingest_el = steady.elapsed;

    // Correctness: every reading stored once, with the values the meter sealed.
    let mut wrong_values = 0u64;
    for r in &pop.readings {
        match collector.reading(r.id, r.t_us) {
            Some(s)
                if (s.energy_wh, s.power_w, s.flags) == (r.energy_wh, r.power_w, Flags::NONE) => {}
            _ => wrong_values += 1,
        }
        match collector.reading(r.id, r.next_t_us) {
            Some(s)
                if (s.energy_wh, s.power_w, s.flags)
                    == (r.next_energy_wh, r.next_power_w, Flags::NONE) => {}
            _ => wrong_values += 1,
        }
    }
    if collector.stored() != 2 * n as u64 {
        wrong_values += (2 * n as u64).abs_diff(collector.stored());
    }
    let first: Vec<Name> = pop
        .readings
        .iter()
        .take(plan.round.min(1_000))
        .map(|r| r.full_name.clone())
        .collect();
    let again = collector.collect(first).await;
    let duplicates_refused = again
        .rejected
        .iter()
        .filter(|(_, r)| r.kind() == "duplicate")
        .count() as u64;
    if !again.stored.is_empty() {
        wrong_values += again.stored.len() as u64;
    }

    let baseline_after = baseline(pop, plan.round)?;
    let breakdown_stages = breakdown(pop, plan, dir, &keys)?;
    let ingest_per_s = per_s(steady.stored, ingest_el);
    let first_contact_per_s = per_s(cold.stored, cold.elapsed);
    let baseline_per_s = (baseline_before + baseline_after) / 2.0;
    let vs_baseline = |rate: f64| {
        if baseline_per_s > 0.0 {
            rate / baseline_per_s
        } else {
            0.0
        }
    };
    let ratio = vs_baseline(ingest_per_s);
    let fetch_us = us_per(fetch_el, n);
    let (precheck_us, verify_collect_us, verify_warm_chains_us, decrypt_us, store_us) =
        breakdown_stages;
    // Rounds leave duplicates to their transaction; the lookup is the one-by-one path's cost.
    let sum_us = fetch_us + verify_collect_us + decrypt_us + store_us;
    Ok(IngestReport {
        round: plan.round,
        stored,
        rejected,
        missing,
        wrong_values,
        duplicates_refused,
        first_contact_seconds: cold.elapsed.as_secs_f64(),
        first_contact_per_s,
        first_contact_ratio: vs_baseline(first_contact_per_s),
        seconds: ingest_el.as_secs_f64(),
        ingest_per_s,
        baseline_before_per_s: baseline_before,
        baseline_after_per_s: baseline_after,
        baseline_per_s,
        ratio,
        goal_ratio_met: ratio >= 0.5,
        goal_rate_met: ingest_per_s >= 20_000.0,
        breakdown: Breakdown {
            fetch_us,
            fetch_failures,
            precheck_us,
            verify_collect_us,
            verify_warm_chains_us,
            verify_batch_only_us: if baseline_per_s > 0.0 {
                1e6 / baseline_per_s
            } else {
                0.0
            },
            decrypt_us,
            store_us,
            sum_us,
            ingest_us: us_per(ingest_el, steady.stored as usize),
        },
    })
}

/// What one ingest pass over a population's names achieved.
struct Pass {
    stored: u64,
    rejected: u64,
    missing: u64,
    elapsed: Duration,
}

/// Collects `names` in pipelined rounds; names that could not be fetched are tried again, at
/// most twice.
async fn ingest_pass(
    collector: &MdmsCollector,
    names: Vec<Name>,
    round: usize,
    pb: &ProgressBar,
) -> Pass {
    let mut todo = names;
    let (mut stored, mut rejected) = (0u64, 0u64);
    let t = Instant::now();
    for _ in 0..3 {
        let rounds: Vec<Vec<Name>> = todo.chunks(round).map(<[Name]>::to_vec).collect();
        let mut again = Vec::new();
        for rep in collector.collect_pipelined(rounds).await {
            stored += rep.stored.len() as u64;
            rejected += rep.rejected.len() as u64;
            pb.inc(rep.stored.len() as u64);
            again.extend(rep.missing.into_iter().map(|(name, _)| name));
        }
        todo = again;
        if todo.is_empty() {
            break;
        }
    }
    Pass {
        stored,
        rejected,
        missing: todo.len() as u64,
        elapsed: t.elapsed(),
    }
}

/// The collector's CPU stages, each alone over every packet, in rounds (µs per reading):
/// precheck lookup, verification as `collect` does it, verification with every chain cached,
/// decryption with decoding of the reading, storing.
fn breakdown(
    pop: &Population,
    plan: &Plan,
    dir: &Path,
    keys: &HeadEndKeys,
) -> anyhow::Result<(f64, f64, f64, f64, f64)> {
    let n = pop.packets.len();
    let pb = bar(plan, 5, "breakdown stages");
    // Verification as `Trust::verify_batch` does it: the validator's chain cache (4096 signers
    // by default) cannot hold 100,000 meters, so every reading also costs a check of its
    // meter's certificate. A validator whose cache holds every meter shows the warm cost.
    let mut v = Validator::new(ami_policy(&pop.names)?).with_chain_cache(2 * n + 16);
    v.add_anchor(pop.pki.anchor().clone())?;
    let mut certs = CertStore::new();
    for r in &pop.readings {
        certs.insert(r.cert.clone());
    }
    let verify_pass = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let mut bad = 0;
        for chunk in pop.packets.chunks(plan.round) {
            bad += v
                .validate_data_batch(chunk, &certs as &dyn CertSource, now_ms())
                .iter()
                .filter(|r| r.is_err())
                .count();
        }
        let el = t.elapsed();
        if bad > 0 {
            bail!("{bad} readings failed validation");
        }
        Ok(el)
    };
    let cold = verify_pass()?;
    pb.inc(1);
    let warm = verify_pass()?;
    pb.inc(1);

    let t = Instant::now();
    let mut opened = Vec::with_capacity(n);
    for d in &pop.packets {
        let ec = EncryptedContent::decode(d.content.clone())?;
        let (_, key) = keys
            .user_key(&ec.key_name)
            .context("reading key not held")?;
        let plain =
            EnvelopeKey::derive(&key, &ec.key_name, Purpose::Content).open_decoded(&d.name, &ec)?;
        // Decoding is part of the stage, as in the collector.
        let r = Reading::decode(&plain).with_context(|| format!("{}", d.name))?;
        if r.active_import_wh().is_none() || r.active_power_w().is_none() {
            bail!("{}: reading lacks its energy or power register", d.name);
        }
        opened.push(ec.key_name.to_string());
    }
    let decrypt = t.elapsed();
    pb.inc(1);

    let mut store = SqliteReadingStore::open(dir.join("breakdown.db"))?;
    let t = Instant::now();
    for ((chunk, names), packets) in pop
        .readings
        .chunks(plan.round)
        .zip(opened.chunks(plan.round))
        .zip(pop.packets.chunks(plan.round))
    {
        let rows: Vec<(StoredReading, Vec<u8>)> = chunk
            .iter()
            .zip(names)
            .zip(packets)
            .map(|((r, key_name), d)| {
                (
                    StoredReading {
                        meter: r.id,
                        t_us: r.t_us,
                        energy_wh: r.energy_wh,
                        power_w: r.power_w,
                        flags: Flags::NONE,
                        key_name: key_name.clone(),
                        received_us: now_us(),
                    },
                    d.wire().map(|w| w.to_vec()).unwrap_or_default(),
                )
            })
            .collect();
        store.insert_batch(&rows)?;
    }
    let stored = t.elapsed();
    pb.inc(1);
    // The precheck's duplicate lookup (a store that already holds the readings answers yes).
    let t = Instant::now();
    let mut found = 0usize;
    for r in &pop.readings {
        found += usize::from(store.contains(r.id, r.t_us)?);
    }
    let precheck = t.elapsed();
    if found != n {
        bail!("breakdown store holds {found} of {n} readings");
    }
    pb.finish_and_clear();
    Ok((
        us_per(precheck, n),
        us_per(cold, n),
        us_per(warm, n),
        us_per(decrypt, n),
        us_per(stored, n),
    ))
}

// ---------------------------------------------------------------------------------------------
// Rekey delivery

/// TLV-TYPEs of the manifest object (`ami::wire`: RekeyManifest = ManifestBytes,
/// ManifestSignature, *WrapDigest; WrapDigest = Name, Digest).
const MANIFEST_BYTES: u32 = 0xEA;
const MANIFEST_SIGNATURE: u32 = 0xEC;
const WRAP_DIGEST: u32 = 0xEE;
const DIGEST: u32 = 0xF0;
const NAME_TYPE: u32 = 7;
/// Content bytes per manifest segment (`ami::net::SEGMENT_SIZE`, below the 8,800-byte limit).
const SEGMENT_SIZE: usize = 7_000;
/// Most segments a manifest object may have (`ami::net`).
const MAX_SEGMENTS: u64 = 4_096;
/// Wrap fetches one member may make for one epoch (`ami::meter`).
const MAX_WRAPS_PER_EPOCH: usize = 256;

/// Labels what the KMS producer answered (as `KmsService` does).
fn classify(name: &Name) -> &'static str {
    let has = |s: &[u8]| name.iter().any(|c| c.value() == s);
    if has(b"ENCRYPTED-BY") {
        "wrap"
    } else if has(b"rekey") {
        "manifest"
    } else {
        "other"
    }
}

fn encode_manifest_object(signed: &SignedManifest, wraps: &[(Name, [u8; 32])]) -> Bytes {
    let mut b =
        BytesMut::with_capacity(signed.bytes.len() + signed.signature.len() + wraps.len() * 140);
    encode_tlv(&mut b, MANIFEST_BYTES, &signed.bytes);
    encode_tlv(&mut b, MANIFEST_SIGNATURE, &signed.signature);
    let mut inner = BytesMut::new();
    for (name, digest) in wraps {
        inner.clear();
        name.encode(&mut inner);
        encode_tlv(&mut inner, DIGEST, digest);
        encode_tlv(&mut b, WRAP_DIGEST, &inner);
    }
    b.freeze()
}

fn decode_manifest_object(
    content: Bytes,
) -> anyhow::Result<(SignedManifest, HashMap<Name, [u8; 32]>)> {
    let mut r = TlvReader::new(content);
    let bytes = r.expect(MANIFEST_BYTES, "ManifestBytes")?.value.to_vec();
    let signature = r
        .expect(MANIFEST_SIGNATURE, "ManifestSignature")?
        .value
        .to_vec();
    let mut wraps = HashMap::new();
    while !r.is_empty() {
        let e = r.expect(WRAP_DIGEST, "WrapDigest")?;
        let mut w = e.reader();
        let name = Name::from_value(w.expect(NAME_TYPE, "Name")?.value)?;
        let d = <[u8; 32]>::try_from(w.expect(DIGEST, "Digest")?.value.as_ref())
            .map_err(|_| anyhow::anyhow!("wrap digest is not 32 bytes"))?;
        w.finish("WrapDigest")?;
        wraps.insert(name, d);
    }
    Ok((SignedManifest { bytes, signature }, wraps))
}

/// Everything one epoch publishes, built as `KmsService::finish` builds it.
struct Published {
    wires: Vec<Bytes>,
    wraps: u64,
    wrap_wire_bytes: u64,
    object_bytes: u64,
    segments: u64,
    segment_wire_bytes: u64,
}

fn publish_epoch(names: &AmiNames, kms: &Credentials, rekey: &Rekey) -> anyhow::Result<Published> {
    let mut wires = Vec::with_capacity(rekey.wraps.len() + 64);
    let mut digests = Vec::with_capacity(rekey.wraps.len());
    let mut wrap_wire_bytes = 0u64;
    for w in &rekey.wraps {
        let name = Name::from_uri(&w.name)?;
        let mut d = Data::new(name.clone(), Bytes::copy_from_slice(&w.payload));
        d.meta_info.freshness_period_ms = Some(WRAP_FRESHNESS_MS);
        let wire = sign_data_digest(&mut d)?;
        wrap_wire_bytes += wire.len() as u64;
        digests.push((name, d.implicit_digest()));
        wires.push(wire);
    }
    let content = encode_manifest_object(&rekey.signed, &digests);
    let prefix = names.manifest(rekey.manifest.epoch);
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![&[][..]]
    } else {
        content.chunks(SEGMENT_SIZE).collect()
    };
    if chunks.len() as u64 > MAX_SEGMENTS {
        bail!("manifest object needs {} segments", chunks.len());
    }
    let last = Component::segment(chunks.len() as u64 - 1);
    let mut segment_wire_bytes = 0u64;
    for (k, c) in chunks.iter().enumerate() {
        let mut d = Data::new(
            prefix.append(Component::segment(k as u64)),
            Bytes::copy_from_slice(c),
        );
        d.meta_info.freshness_period_ms = Some(MANIFEST_FRESHNESS_MS);
        d.meta_info.final_block_id = Some(last.clone());
        let wire = kms.key.sign_data(&mut d)?;
        segment_wire_bytes += wire.len() as u64;
        wires.push(wire);
    }
    Ok(Published {
        wires,
        wraps: rekey.wraps.len() as u64,
        wrap_wire_bytes,
        object_bytes: content.len() as u64,
        segments: chunks.len() as u64,
        segment_wire_bytes,
    })
}

type InFlight = Arc<tokio::sync::OnceCell<Result<Data, String>>>;

/// One member connection (to a concentrator) with the validator its members share.
///
/// Real meters each have their own face, so identical Interests from many of them meet in the
/// concentrator's PIT. Here many members share a connection, and the forwarder keeps one
/// in-record per face (with the latest PitToken only), so concurrent identical fetches on one
/// connection are coalesced here instead, and counted.
struct MemberConn {
    fetch: Consumer,
    trust: Arc<Trust>,
    inflight: std::sync::Mutex<HashMap<Name, InFlight>>,
    coalesced: std::sync::atomic::AtomicU64,
}

impl MemberConn {
    async fn get(&self, name: Name) -> Result<Data, String> {
        let (cell, first) = {
            let mut m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&name) {
                Some(c) => (c.clone(), false),
                None => {
                    let c: InFlight = Arc::new(tokio::sync::OnceCell::new());
                    m.insert(name.clone(), c.clone());
                    (c, true)
                }
            }
        };
        if !first {
            self.coalesced
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        cell.get_or_init(|| async {
            let r = self
                .fetch
                .fetch_unverified(Interest::new(name.clone()))
                .await
                .map_err(|e| format!("{name}: {e}"));
            self.inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            r
        })
        .await
        .clone()
    }
}

/// What every member of one epoch works from.
struct EpochShared {
    manifest: Name,
    /// The manifest object as this process fetched it once.
    content: Vec<u8>,
    /// The manifest, its signature checked once for the process.
    verified: VerifiedManifest,
    digests: HashMap<Name, [u8; 32]>,
}

/// What one member did.
struct Outcome {
    wraps: u64,
    attempts: u64,
    segments: u64,
    departed: bool,
    /// Time spent in `MemberState::ingest` (all attempts).
    ingest: Duration,
    /// Time spent validating manifest segments.
    validate: Duration,
}

/// Fetches every segment of a manifest object, validating each (as `ami::net::fetch_segmented`).
async fn fetch_segmented(
    c: &MemberConn,
    prefix: &Name,
    validate: &mut Duration,
) -> Result<(Vec<u8>, u64), String> {
    let mut out = Vec::new();
    let mut last: Option<u64> = None;
    let mut k = 0u64;
    loop {
        let d = c.get(prefix.append(Component::segment(k))).await?;
        let t = Instant::now();
        let v = c.trust.verify_data(&d).await;
        *validate += t.elapsed();
        v.map_err(|e| format!("manifest segment {k}: {e}"))?;
        let fb = d
            .meta_info
            .final_block_id
            .as_ref()
            .and_then(Component::as_segment)
            .ok_or("manifest segment without FinalBlockId")?;
        if fb >= MAX_SEGMENTS || last.is_some_and(|l| l != fb) {
            return Err("FinalBlockId changes between segments or is too large".into());
        }
        last = Some(fb);
        out.extend_from_slice(&d.content);
        if k >= fb {
            return Ok((out, k + 1));
        }
        k += 1;
    }
}

/// Fetches one wrap by the implicit digest the signed manifest lists (as `Meter::fetch_wrap`).
async fn fetch_wrap(c: &MemberConn, sh: &EpochShared, uri: &str) -> Result<Wrap, String> {
    let name = Name::from_uri(uri).map_err(|e| e.to_string())?;
    let digest = *sh
        .digests
        .get(&name)
        .ok_or_else(|| format!("manifest lists no digest for {uri}"))?;
    let d = c
        .get(name.append(Component::implicit_sha256_digest(digest)))
        .await?;
    if d.implicit_digest() != digest {
        return Err(format!("wrap {uri}: digest mismatch"));
    }
    let payload: [u8; WRAP_LEN] = d
        .content
        .as_ref()
        .try_into()
        .map_err(|_| format!("wrap {uri}: payload is not {WRAP_LEN} bytes"))?;
    Ok(Wrap {
        name: uri.to_string(),
        mode: WrapMode::Multicast,
        payload,
    })
}

/// One member follows one epoch, as `Meter::ingest_epoch`: optionally fetch and validate the
/// manifest object, then ingest it, fetching each wrap the member state reports missing and
/// trying again (the state is all-or-nothing, so a failed attempt leaves it untouched).
///
/// The manifest signature was checked once for the process (a real meter checks it once per
/// epoch, then retries only the walk, as here).
async fn deliver_one(
    member: &mut MemberState,
    sh: &EpochShared,
    c: &MemberConn,
    fetch_manifest: bool,
) -> Result<Outcome, String> {
    let mut segments = 0;
    let mut validate = Duration::ZERO;
    let mut ingest = Duration::ZERO;
    if fetch_manifest {
        let (content, segs) = fetch_segmented(c, &sh.manifest, &mut validate).await?;
        if content != sh.content {
            return Err("manifest object differs from the one published".into());
        }
        segments = segs;
    }
    let mut cache: HashMap<String, Wrap> = HashMap::new();
    for attempt in 1..=MAX_WRAPS_PER_EPOCH as u64 + 1 {
        let t = Instant::now();
        let r = member.ingest_verified(&sh.verified, &mut |name: &str| cache.get(name).cloned());
        ingest += t.elapsed();
        match r {
            Ok(ir) => {
                if u64::from(ir.fetched) != cache.len() as u64 {
                    return Err(format!(
                        "opened {} wraps but fetched {}",
                        ir.fetched,
                        cache.len()
                    ));
                }
                return Ok(Outcome {
                    wraps: cache.len() as u64,
                    attempts: attempt,
                    segments,
                    departed: ir.departed,
                    ingest,
                    validate,
                });
            }
            Err(GraphError::MissingWrap { name }) => {
                if cache.contains_key(&name) {
                    return Err(format!("wrap {name} asked for twice"));
                }
                let w = fetch_wrap(c, sh, &name).await?;
                cache.insert(name, w);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("manifest needs too many wraps".into())
}

fn keys_match(g: &KeyGraph, m: &MemberState) -> bool {
    let mut want = g.entitled_keys(m.meter());
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let mut have = m.keys();
    have.sort_by(|a, b| a.0.cmp(&b.0));
    want.len() == have.len()
        && want
            .iter()
            .zip(&have)
            .all(|((wn, wk), (hn, hk))| wn == hn && wk.as_bytes() == hk.as_bytes())
}

fn kms_prefixes(names: &AmiNames) -> Vec<Name> {
    vec![
        names.kms(),
        names.bcast_prefix(),
        names.dr_kek_prefix(PROJECT),
    ]
}

fn bench_rekey(pop: &mut Population, plan: &Plan, dir: &Path) -> anyhow::Result<Vec<EpochReport>> {
    let head_sock = dir.join("head.sock");
    let head = start_forwarder(&head_sock, |c| {
        c.tcp = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
    })?;
    let addr = *head
        .endpoints()
        .tcp
        .first()
        .context("the head forwarder has no TCP listener")?;
    let uplink = FaceUri::Tcp(addr);
    // Everything the KMS publishes: its own objects, the broadcast key's and each project
    // key's wraps (named after the wrapped key).
    let kms_prefixes = kms_prefixes(&pop.names);
    let mut concs = Vec::new();
    let mut conc_socks = Vec::new();
    for k in 0..2 {
        let sock = dir.join(format!("conc{k}.sock"));
        let f = start_forwarder(&sock, |c| {
            c.faces = vec![StaticFace {
                uri: uplink.clone(),
                mtu: None,
                emulation: None,
            }];
            c.routes = kms_prefixes
                .iter()
                .map(|p| StaticRoute {
                    prefix: p.clone(),
                    face: uplink.clone(),
                    cost: 0,
                })
                .collect();
        })?;
        concs.push(f);
        conc_socks.push(sock);
    }
    let rt = runtime()?;
    let r = rt.block_on(rekey_async(pop, plan, &head_sock, &conc_socks));
    drop(rt);
    for f in concs {
        let _ = f.shutdown();
    }
    let _ = head.shutdown();
    r
}

async fn rekey_async(
    pop: &mut Population,
    plan: &Plan,
    head_sock: &Path,
    conc_socks: &[PathBuf],
) -> anyhow::Result<Vec<EpochReport>> {
    let names = pop.names.clone();
    let kms = RemotePublisher::start(
        head_sock,
        pop.kms.key.clone(),
        Some(classify),
        vec![pop.kms.cert.to_wire()],
        kms_prefixes(&names),
    )?;
    let publisher = &kms.publisher;

    let mut conns = Vec::new();
    for k in 0..2 * plan.clients {
        let sock = conc_socks
            .get(k % conc_socks.len().max(1))
            .context("no concentrator")?;
        let c = connect(sock).await?;
        let trust = Trust::new(&names, pop.pki.anchor(), &c)?;
        trust.add_certificate(pop.kms.cert.clone());
        let fetch = Consumer::new(c).with_options(ConsumerOptions {
            max_retries: 3,
            lifetime: Duration::from_secs(1),
        });
        conns.push(MemberConn {
            fetch,
            trust,
            inflight: std::sync::Mutex::new(HashMap::new()),
            coalesced: std::sync::atomic::AtomicU64::new(0),
        });
    }
    let conns = Arc::new(conns);
    let mut mgmt = vec![connect(head_sock).await?];
    for s in conc_socks {
        mgmt.push(connect(s).await?);
    }
    // The mesh is up once the KMS certificate comes back through each concentrator.
    for (k, c) in conns.iter().take(conc_socks.len()).enumerate() {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let i = Interest::new(pop.kms.cert.name().clone());
            match c.fetch.fetch_unverified(i).await {
                Ok(_) => break,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("concentrator {k} cannot reach the KMS: {e}"),
            }
        }
    }

    // One leave (meter 1), then the batch spread evenly over both subgroups.
    let n = plan.meters;
    let step = ((n - 1) / plan.leaves).max(1);
    let batch: Vec<u32> = (0..plan.leaves)
        .map(|k| 2 + k * step)
        .filter(|&m| m <= n)
        .collect();
    let specs = [
        ("1 leave".to_string(), vec![1u32]),
        (format!("{} leaves", batch.len()), batch),
    ];
    let mut out = Vec::new();
    for (label, leavers) in specs {
        let run = run_epoch(pop, plan, publisher, &conns, &mgmt, &label, &leavers);
        let rep = tokio::time::timeout(plan.timeout, run)
            .await
            .map_err(|_| {
                anyhow::anyhow!("{label}: delivery took longer than {:?}", plan.timeout)
            })??;
        out.push(rep);
    }
    Ok(out)
}

fn coalesced(conns: &[MemberConn]) -> u64 {
    conns
        .iter()
        .map(|c| c.coalesced.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

fn interests_sent(conns: &[MemberConn]) -> u64 {
    conns
        .iter()
        .map(|c| {
            c.fetch
                .client()
                .counters()
                .tx_packets
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum()
}

async fn cs_all(mgmt: &[Client]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(mgmt.len());
    for c in mgmt {
        out.push(cs_hits(c).await?);
    }
    Ok(out)
}

fn served(p: &Publisher, kind: &str) -> u64 {
    p.served().get(kind).copied().unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn run_epoch(
    pop: &mut Population,
    plan: &Plan,
    publisher: &Publisher,
    conns: &Arc<Vec<MemberConn>>,
    mgmt: &[Client],
    label: &str,
    leavers: &[u32],
) -> anyhow::Result<EpochReport> {
    // The KMS: stage, commit one epoch, publish wraps first and then the manifest.
    let t = Instant::now();
    for &m in leavers {
        pop.graph.stage_leave(m)?;
    }
    let key = pop.kms.key.clone();
    let signer = move |b: &[u8]| key.sign(b).to_vec();
    let rekey = pop.graph.commit(&signer);
    let commit_ms = t.elapsed().as_secs_f64() * 1e3;
    let epoch = rekey.manifest.epoch;
    let t = Instant::now();
    let published = publish_epoch(&pop.names, &pop.kms, &rekey)?;
    for w in &published.wires {
        publisher.put_wire(w.clone())?;
    }
    let publish_ms = t.elapsed().as_secs_f64() * 1e3;

    let served_w0 = served(publisher, "wrap");
    let served_m0 = served(publisher, "manifest");
    let hits0 = cs_all(mgmt).await?;
    let cpu0 = cpu_seconds();
    let tx0 = interests_sent(conns);
    let co0 = coalesced(conns);
    let t0 = Instant::now();

    // This process fetches the manifest object once (through the first concentrator) and
    // checks the key graph's signature on it.
    let manifest = pop.names.manifest(epoch);
    let first = conns.first().context("no member connection")?;
    let mut boot_validate = Duration::ZERO;
    let (content, boot_segments) = fetch_segmented(first, &manifest, &mut boot_validate)
        .await
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let (signed, digests) = decode_manifest_object(Bytes::from(content.clone()))?;
    let kms_key = pop.kms.key.public_key();
    if !kms_key.verify(&signed.bytes, &signed.signature) || signed != rekey.signed {
        bail!("{label}: the fetched manifest is not the one the KMS signed");
    }
    let verifier = move |b: &[u8], s: &[u8]| -> Result<(), String> {
        if kms_key.verify(b, s) {
            Ok(())
        } else {
            Err("not signed by the KMS key".into())
        }
    };
    let verified = signed.verify(&verifier)?;
    let sh = Arc::new(EpochShared {
        manifest,
        content,
        verified,
        digests,
    });

    // Every member that holds a place (including this epoch's leavers, who learn they left).
    let active: Vec<usize> = pop
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.as_ref().is_some_and(|m| m.place().is_some()))
        .map(|(i, _)| i)
        .collect();
    let fetchers =
        (plan.manifest_budget / published.segments.max(1)).clamp(1, active.len().max(1) as u64);
    let stride = (active.len() as u64).div_ceil(fetchers).max(1);
    let pb = bar(
        plan,
        active.len() as u64,
        &format!("rekey {label}: members"),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(plan.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut sample = 0u64;
    for (p, &i) in active.iter().enumerate() {
        let Some(mut member) = pop.members.get_mut(i).and_then(Option::take) else {
            continue;
        };
        let fetch_manifest = (p as u64).is_multiple_of(stride);
        sample += u64::from(fetch_manifest);
        let conn = p % conns.len();
        let (sh, conns, sem) = (sh.clone(), conns.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = match conns.get(conn) {
                Some(c) => deliver_one(&mut member, &sh, c, fetch_manifest).await,
                None => Err("no connection".to_string()),
            };
            (i, member, r, t0.elapsed())
        });
    }
    let mut rep = EpochReport {
        label: label.to_string(),
        epoch,
        leaves: leavers.len() as u32,
        commit_ms,
        publish_ms,
        wraps_published: published.wraps,
        wrap_wire_bytes: published.wrap_wire_bytes,
        rekey_bytes: rekey.stats.bytes(),
        manifest_bytes: rekey.stats.manifest_bytes,
        manifest_object_bytes: published.object_bytes,
        manifest_segments: published.segments,
        manifest_wire_bytes: published.segment_wire_bytes,
        manifest_fetchers: sample + 1,
        segment_fetches: boot_segments,
        segment_fetches_if_all: active.len() as u64 * published.segments,
        ..EpochReport::default()
    };
    let mut done_ms = Vec::with_capacity(active.len());
    while let Some(j) = tasks.join_next().await {
        let (i, member, r, at) = j.context("a member task panicked")?;
        pb.inc(1);
        done_ms.push(at.as_secs_f64() * 1e3);
        match r {
            Ok(o) => {
                rep.wrap_fetches += o.wraps;
                rep.wraps_per_member_max = rep.wraps_per_member_max.max(o.wraps);
                rep.ingest_attempts += o.attempts;
                rep.segment_fetches += o.segments;
                rep.cpu_member_ingest_s += o.ingest.as_secs_f64();
                rep.cpu_segment_validation_s += o.validate.as_secs_f64();
                let ok = member.epoch() == epoch
                    && if o.departed {
                        member.place().is_none() && leavers.contains(&member.meter())
                    } else {
                        keys_match(&pop.graph, &member)
                    };
                if !ok {
                    rep.key_mismatches += 1;
                }
                if o.departed {
                    rep.departed_notified += 1;
                } else {
                    rep.members_rekeyed += 1;
                }
            }
            Err(e) => {
                rep.failures += 1;
                rep.first_failure.get_or_insert(e);
            }
        }
        if let Some(slot) = pop.members.get_mut(i) {
            *slot = Some(member);
        }
    }
    let deliver = t0.elapsed();
    let cpu1 = cpu_seconds();
    rep.interests_sent = interests_sent(conns).saturating_sub(tx0);
    rep.coalesced = coalesced(conns).saturating_sub(co0);
    rep.cpu_segment_validation_s += boot_validate.as_secs_f64();
    rep.cpu_forwarders_s = cpu1.0 - cpu0.0;
    rep.cpu_process_s = cpu1.1 - cpu0.1;
    pb.finish_and_clear();
    let hits1 = cs_all(mgmt).await?;
    rep.kms_answered_wraps = served(publisher, "wrap").saturating_sub(served_w0);
    rep.kms_answered_segments = served(publisher, "manifest").saturating_sub(served_m0);
    let hits: Vec<u64> = hits1
        .iter()
        .zip(&hits0)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    rep.cs_hits_head = hits.first().copied().unwrap_or(0);
    rep.cs_hits_conc = hits.iter().skip(1).copied().collect();
    let total = rep.interests_sent;
    rep.retransmissions = total
        .saturating_sub((rep.wrap_fetches + rep.segment_fetches).saturating_sub(rep.coalesced));
    let kms = rep.kms_answered_wraps + rep.kms_answered_segments;
    rep.aggregated = total.saturating_sub(kms + hits.iter().sum::<u64>());
    let logical = rep.wrap_fetches + rep.segment_fetches;
    rep.cache_share = if logical > 0 {
        logical.saturating_sub(kms) as f64 / logical as f64
    } else {
        0.0
    };
    rep.deliver_s = deliver.as_secs_f64();
    done_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        done_ms
            .get(((done_ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    rep.member_p50_ms = pct(0.5);
    rep.member_p99_ms = pct(0.99);
    // Departed members stop following.
    for &m in leavers {
        if let Some(slot) = pop.members.get_mut(m as usize - 1) {
            *slot = None;
        }
    }
    Ok(rep)
}

// ---------------------------------------------------------------------------------------------
// Output

fn k(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn print_report(r: &AmiReport) {
    let groups: Vec<String> = r
        .subgroups
        .iter()
        .map(|(l, m, h)| format!("{l}: {m} members, height {h}"))
        .collect();
    println!(
        "amicn bench ami: {} meters, degree {} ({}); setup {:.1} s",
        r.meters,
        r.degree,
        groups.join("; "),
        r.setup_s
    );
    if let Some(i) = &r.ingest {
        let b = &i.breakdown;
        println!();
        println!(
            "MDMS ingest via 1 forwarder, rounds of {} readings fetched by implicit digest",
            i.round
        );
        println!(
            "  stored after commit              {} over two intervals ({} rejected, {} missing, {} wrong, {} replays refused)",
            i.stored, i.rejected, i.missing, i.wrong_values, i.duplicates_refused
        );
        println!(
            "  first contact (chains checked)   {:>8} readings/s in {:.2} s ({:.2}x verify-alone)",
            k(i.first_contact_per_s),
            i.first_contact_seconds,
            i.first_contact_ratio
        );
        println!(
            "  ingest, next interval            {:>8} readings/s in {:.2} s",
            k(i.ingest_per_s),
            i.seconds
        );
        println!(
            "  batch Ed25519 verify alone       {:>8} readings/s (before {}, after {})",
            k(i.baseline_per_s),
            k(i.baseline_before_per_s),
            k(i.baseline_after_per_s)
        );
        println!(
            "  next interval / verify-alone     {:>8.2}   goal >= 0.5: {}   goal >= 20k/s: {}",
            i.ratio,
            yes(i.goal_ratio_met),
            yes(i.goal_rate_met)
        );
        println!("  per reading, each stage alone (µs):");
        println!(
            "    fetch via forwarder, 256 in flight  {:>6.1}{}",
            b.fetch_us,
            if b.fetch_failures > 0 {
                format!("  ({} failed)", b.fetch_failures)
            } else {
                String::new()
            }
        );
        println!(
            "    duplicate lookup (one-by-one only)  {:>6.1}",
            b.precheck_us
        );
        println!(
            "    verify as collect does              {:>6.1}  (batch alone {:.1}; chains all cached {:.1})",
            b.verify_collect_us, b.verify_batch_only_us, b.verify_warm_chains_us
        );
        println!(
            "    decrypt and decode the reading      {:>6.1}",
            b.decrypt_us
        );
        println!(
            "    store, one transaction per round    {:>6.1}",
            b.store_us
        );
        println!(
            "    sum                                 {:>6.1}  (measured ingest {:.1})",
            b.sum_us, b.ingest_us
        );
    }
    if r.rekey.is_empty() {
        return;
    }
    println!();
    println!("Rekey delivery: KMS producer -> head forwarder -> 2 concentrators (TCP) -> members");
    let row = |name: &str, f: &dyn Fn(&EpochReport) -> String| {
        let cells: Vec<String> = r.rekey.iter().map(|e| format!("{:>26}", f(e))).collect();
        println!("  {name:<34}{}", cells.join(""));
    };
    row("", &|e| e.label.clone());
    row("epoch", &|e| e.epoch.to_string());
    row("members rekeyed / departed", &|e| {
        format!("{} / {}", e.members_rekeyed, e.departed_notified)
    });
    row("failures / key mismatches", &|e| {
        format!("{} / {}", e.failures, e.key_mismatches)
    });
    row("commit / publish (ms)", &|e| {
        format!("{:.1} / {:.1}", e.commit_ms, e.publish_ms)
    });
    row("wraps published (wire bytes)", &|e| {
        format!("{} ({})", e.wraps_published, k(e.wrap_wire_bytes as f64))
    });
    row("rekey bytes (stats)", &|e| k(e.rekey_bytes as f64));
    row("manifest object bytes / segments", &|e| {
        format!(
            "{} / {}",
            k(e.manifest_object_bytes as f64),
            e.manifest_segments
        )
    });
    row("manifest fetchers (of members)", &|e| {
        format!(
            "{} ({})",
            e.manifest_fetchers,
            e.members_rekeyed + e.departed_notified
        )
    });
    row("segment fetches (if all fetched)", &|e| {
        format!(
            "{} ({})",
            k(e.segment_fetches as f64),
            k(e.segment_fetches_if_all as f64)
        )
    });
    row("wrap fetches (max per member)", &|e| {
        format!("{} ({})", k(e.wrap_fetches as f64), e.wraps_per_member_max)
    });
    row("ingest attempts", &|e| k(e.ingest_attempts as f64));
    row("answered by KMS: wraps / segs", &|e| {
        format!("{} / {}", e.kms_answered_wraps, e.kms_answered_segments)
    });
    row("CS hits head / conc1 / conc2", &|e| {
        let c: Vec<String> = e.cs_hits_conc.iter().map(|v| k(*v as f64)).collect();
        format!("{} / {}", k(e.cs_hits_head as f64), c.join(" / "))
    });
    row("Interests sent (retransmissions)", &|e| {
        format!(
            "{} ({})",
            k(e.interests_sent as f64),
            k(e.retransmissions as f64)
        )
    });
    row("coalesced on a shared connection", &|e| {
        k(e.coalesced as f64)
    });
    row("PIT-aggregated or lost", &|e| k(e.aggregated as f64));
    row("fetches the KMS did not answer", &|e| {
        format!("{:.3}%", e.cache_share * 100.0)
    });
    row("delivered to all (s)", &|e| format!("{:.2}", e.deliver_s));
    row("member done p50 / p99 (ms)", &|e| {
        format!("{:.0} / {:.0}", e.member_p50_ms, e.member_p99_ms)
    });
    row("CPU s: process / forwarders", &|e| {
        format!("{:.1} / {:.1}", e.cpu_process_s, e.cpu_forwarders_s)
    });
    row("  member ingest / segment checks", &|e| {
        format!(
            "{:.1} / {:.1}",
            e.cpu_member_ingest_s, e.cpu_segment_validation_s
        )
    });
    for e in &r.rekey {
        if let Some(f) = &e.first_failure {
            println!("  {}: first failure: {f}", e.label);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn manifest_object_round_trips() {
        let signed = SignedManifest {
            bytes: vec![1, 2, 3],
            signature: vec![9; 64],
        };
        let w =
            Name::from_uri("/u/ami/KMS/bcast/KEK/v=2/ENCRYPTED-BY/u/ami/meter/1/KEK/v=1").unwrap();
        let obj = encode_manifest_object(&signed, &[(w.clone(), [7; 32])]);
        let (s, d) = decode_manifest_object(obj).unwrap();
        assert_eq!(s, signed);
        assert_eq!(d.get(&w), Some(&[7; 32]));
    }

    /// The whole benchmark at small scale: every reading stored once with its values, every
    /// member of both epochs ends at the commit epoch with exactly its entitled keys.
    #[test]
    fn smoke_2000_meters_20_leaves() {
        let plan = Plan {
            meters: 2_000,
            leaves: 20,
            degree: 2,
            round: 500,
            manifest_budget: 20_000,
            concurrency: 256,
            clients: 2,
            timeout: Duration::from_secs(300),
            ingest: true,
            rekey: true,
            progress: false,
        };
        let r = run_plan(&plan).unwrap();
        let i = r.ingest.unwrap();
        // Two intervals of 2,000 meters: first contact, then the next quarter hour.
        assert_eq!(i.stored, 4_000);
        assert_eq!((i.rejected, i.missing, i.wrong_values), (0, 0, 0));
        assert_eq!(i.duplicates_refused, 500);
        assert!(i.baseline_per_s > 0.0 && i.ingest_per_s > 0.0);
        assert_eq!(r.rekey.len(), 2);
        for (e, (leaves, active)) in r.rekey.iter().zip([(1u64, 2_000u64), (20, 1_999)]) {
            assert_eq!(e.failures, 0, "{:?}", e.first_failure);
            assert_eq!(e.key_mismatches, 0);
            assert_eq!(e.departed_notified, leaves);
            assert_eq!(e.members_rekeyed + e.departed_notified, active);
            // Every remaining member needs at least the new broadcast key.
            assert!(e.wrap_fetches >= e.members_rekeyed);
            let cached: u64 = e.cs_hits_head + e.cs_hits_conc.iter().sum::<u64>();
            assert!(e.kms_answered_wraps > 0 && cached > 0);
        }
        assert_eq!(r.rekey[0].epoch + 1, r.rekey[1].epoch);
    }
}
