//! `amicn bench repo`: the meter-data repository at scale, each figure next to a baseline from
//! the same run.
//!
//! 1. **Import**: synthetic readings (`amicn_ami::loadgen`) encoded in the reading format,
//!    signed with Ed25519 and committed to the repository in transactions of 10,000, as
//!    `amicn data import` does — against signing alone (no storage) as the baseline; on SQLite
//!    and, with `--pg URL`, on PostgreSQL.
//! 2. **Serve**: `amicn repo serve` behind a fresh `amicn fwd` (separate processes on a Unix
//!    socket); a consumer fetches `--fetch` distinct readings chosen at random from the whole
//!    data set by exact name, `--window` Interests in flight. The first pass finds the
//!    forwarder's Content Store empty, so every Interest reaches the repository (a database
//!    lookup per Interest); the second asks for the same names and is answered from the
//!    Content Store, the baseline. The forwarder's own `cs/info` counters confirm which pass
//!    was which.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amicn_ami::AmiNames;
use amicn_ami::loadgen::{GenConfig, MeterGen};
use amicn_ami::repo::RepoStore;
use amicn_face::client::{Client, Reply};
use amicn_kms::identity::KeyPair;
use amicn_tlv::{Data, Interest, Name};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde::Serialize;

use super::mesh::{Procs, connect_when_up, cs_counts};

/// Readings per committed transaction, as `amicn data import` commits them.
const BATCH: usize = 10_000;

/// Options of `amicn bench repo`.
#[derive(Debug, Args)]
pub(crate) struct RepoBenchArgs {
    /// Readings in the data set (spread evenly over the meters).
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Meters in the data set.
    #[arg(long, default_value_t = 1_000)]
    meters: u32,
    /// Distinct readings fetched through the forwarder in each serve pass.
    #[arg(long, default_value_t = 20_000)]
    fetch: usize,
    /// Interests in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Also import into and serve from this PostgreSQL database (postgres:// URL). Its `data`
    /// table is emptied of the bench's prefix first.
    #[arg(long, value_name = "URL")]
    pg: Option<String>,
    /// Keep the SQLite repository here instead of a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// One measured figure.
#[derive(Debug, Serialize)]
struct Row {
    what: String,
    count: u64,
    seconds: f64,
    per_second: f64,
    /// The figure's rate over its baseline's, measured in the same run.
    ratio: f64,
    baseline: String,
}

#[derive(Debug, Serialize)]
struct Report {
    readings: u64,
    meters: u32,
    fetch: usize,
    window: usize,
    rows: Vec<Row>,
    /// Content Store hits and misses of each serve pass, from the forwarder's `cs/info`.
    cs: Vec<CsPass>,
    /// Fetches that got no Data (timeouts or Nacks), all passes together.
    failed_fetches: u64,
}

#[derive(Debug, Serialize)]
struct CsPass {
    engine: String,
    pass: String,
    hits: u64,
    misses: u64,
}

fn row(what: &str, count: u64, t: Duration, base: Option<(&str, f64)>) -> Row {
    let seconds = t.as_secs_f64().max(1e-9);
    let per_second = count as f64 / seconds;
    let (baseline, ratio) = match base {
        Some((name, rate)) => (name.to_string(), per_second / rate.max(1e-9)),
        None => ("itself".to_string(), 1.0),
    };
    Row {
        what: what.to_string(),
        count,
        seconds,
        per_second,
        ratio,
        baseline,
    }
}

fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

/// The data set: `meters` meters with `intervals` quarter-hours each, from 2026-01-01.
fn gen_config(meters: u32, intervals: u32) -> GenConfig {
    GenConfig {
        meters,
        first_id: 1,
        start_s: 1_767_225_600,
        interval_s: 900,
        intervals,
        seed: 1,
        pv_share: 0.2,
        commercial_share: 0.1,
    }
}

/// Every reading as signed Data, handed over `BATCH` at a time.
fn signed_batches(
    cfg: &GenConfig,
    names: &AmiNames,
    key: &KeyPair,
    limit: u64,
    mut each: impl FnMut(&[Bytes]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    'meters: for id in cfg.first_id..cfg.first_id + cfg.meters {
        for iv in MeterGen::new(cfg, id) {
            if n == limit {
                break 'meters;
            }
            let r = iv.reading();
            let mut d = Data::new(names.reading(r.meter, r.end_us()), r.encode()?);
            batch.push(key.sign_data(&mut d)?);
            n += 1;
            if batch.len() == BATCH {
                each(&batch)?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        each(&batch)?;
    }
    Ok(n)
}

pub(crate) fn run(a: RepoBenchArgs) -> anyhow::Result<()> {
    if a.meters == 0 || a.readings < u64::from(a.meters) {
        bail!("--readings must be at least --meters (one reading per meter), and --meters > 0");
    }
    if a.fetch == 0 || a.window == 0 {
        bail!("--fetch and --window must be positive");
    }
    let intervals = u32::try_from(a.readings.div_ceil(u64::from(a.meters)))
        .context("--readings / --meters is too large")?;
    let total = a.readings;
    if a.fetch as u64 > total {
        bail!("--fetch {} exceeds the {total} readings", a.fetch);
    }
    let cfg = gen_config(a.meters, intervals);
    let names = AmiNames::new("/bench-utility")?;
    let key = KeyPair::generate(&Name::from_uri("/bench-utility/data")?);

    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "amicn-bench-repo-{}-{}",
                std::process::id(),
                amicn_ami::now_ms()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = measure(&a, &cfg, &names, &key, total, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if report.failed_fetches > 0 {
        bail!(
            "{} fetches got no Data; the rates above are not comparable",
            report.failed_fetches
        );
    }
    Ok(())
}

fn measure(
    a: &RepoBenchArgs,
    cfg: &GenConfig,
    names: &AmiNames,
    key: &KeyPair,
    total: u64,
    dir: &Path,
) -> anyhow::Result<Report> {
    let mut rows = Vec::new();

    // Baseline: generating, encoding and signing alone.
    let sign_n = total.min(50_000);
    let pb = bar(a.quiet, sign_n, "sign only");
    let t = Instant::now();
    signed_batches(cfg, names, key, sign_n, |b| {
        pb.inc(b.len() as u64);
        Ok(())
    })?;
    let sign = row(
        "sign only (no storage)",
        sign_n,
        t.elapsed(),
        None::<(&str, f64)>,
    );
    pb.finish_and_clear();
    let sign_rate = sign.per_second;
    rows.push(sign);

    let sqlite = dir.join("repo.db");
    let _ = std::fs::remove_file(&sqlite);
    let mut targets = vec![("sqlite", sqlite.to_string_lossy().into_owned())];
    if let Some(url) = &a.pg {
        targets.push(("postgres", url.clone()));
    }
    for (engine, target) in &targets {
        let store = RepoStore::open(target)?;
        if *engine == "postgres" {
            store.delete_prefix(names.utility())?;
        }
        let pb = bar(a.quiet, total, &format!("import → {engine}"));
        let t = Instant::now();
        let n = signed_batches(cfg, names, key, total, |b| {
            store.insert(b)?;
            pb.inc(b.len() as u64);
            Ok(())
        })?;
        pb.finish_and_clear();
        rows.push(row(
            &format!("import → {engine} (sign + commit)"),
            n,
            t.elapsed(),
            Some(("sign only", sign_rate)),
        ));
    }

    // The names fetched: distinct readings drawn uniformly from the whole data set.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let picks = rand::seq::index::sample(&mut rng, total as usize, a.fetch);
    let per_meter = u64::from(cfg.intervals);
    let wanted: Vec<Name> = picks
        .iter()
        .map(|k| {
            let k = k as u64;
            let meter = cfg.first_id + (k / per_meter) as u32;
            let end_s = cfg.start_s + (k % per_meter + 1) * u64::from(cfg.interval_s);
            names.reading(meter, end_s * 1_000_000)
        })
        .collect();

    // The database alone: one exact-name lookup after another, in this process.
    for (engine, target) in &targets {
        let store = RepoStore::open(target)?;
        let t = Instant::now();
        let mut found = 0u64;
        for n in &wanted {
            found += u64::from(
                store
                    .get(
                        &Interest::new(n.clone()),
                        amicn_ami::repo::PrefixMatch::Last,
                    )?
                    .is_some(),
            );
        }
        if found != wanted.len() as u64 {
            bail!("{engine}: {found} of {} readings found", wanted.len());
        }
        rows.push(row(
            &format!("lookup in {engine}, no network"),
            found,
            t.elapsed(),
            None::<(&str, f64)>,
        ));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut cs = Vec::new();
    let mut failed = 0u64;
    for (engine, target) in &targets {
        let (miss, hit, passes, f) =
            rt.block_on(serve_passes(a, engine, target, &wanted, names, dir))?;
        failed += f;
        cs.extend(passes);
        let hit_row = row(
            &format!("serve via fwd, CS hit ({engine} run)"),
            wanted.len() as u64,
            hit,
            None::<(&str, f64)>,
        );
        let hit_rate = hit_row.per_second;
        rows.push(row(
            &format!("serve via fwd from {engine}, CS empty"),
            wanted.len() as u64,
            miss,
            Some(("CS hit", hit_rate)),
        ));
        rows.push(hit_row);
    }
    Ok(Report {
        readings: total,
        meters: a.meters,
        fetch: a.fetch,
        window: a.window,
        rows,
        cs,
        failed_fetches: failed,
    })
}

/// Starts a forwarder and `repo serve` on `target`, fetches `wanted` twice; returns the time of
/// each pass, their CS counters and the failed fetches.
async fn serve_passes(
    a: &RepoBenchArgs,
    engine: &str,
    target: &str,
    wanted: &[Name],
    names: &AmiNames,
    dir: &Path,
) -> anyhow::Result<(Duration, Duration, Vec<CsPass>, u64)> {
    let exe = std::env::current_exe().context("locating the amicn binary")?;
    let logs = dir.join(format!("logs-{engine}"));
    std::fs::create_dir_all(&logs)?;
    let mut procs = Procs {
        list: Vec::new(),
        exe,
        logs: logs.clone(),
    };
    let sock = dir.join(format!("fwd-{engine}.sock"));
    let _ = std::fs::remove_file(&sock);
    let s = |v: &str| v.to_string();
    procs.spawn(
        "fwd",
        &[
            s("fwd"),
            s("--socket"),
            sock.to_string_lossy().into_owned(),
            s("--no-tcp"),
            s("--no-udp"),
            s("--cs-capacity"),
            (wanted.len() + 1_000).to_string(),
            s("--log-level"),
            s("warn"),
        ],
    )?;
    let client = connect_when_up(&sock).await?;
    procs.spawn(
        "repo",
        &[
            s("repo"),
            s("serve"),
            s("--db"),
            target.to_string(),
            s("--prefix"),
            names.utility().to_string(),
            s("--connect"),
            format!("unix://{}", sock.display()),
        ],
    )?;
    let log = logs.join("repo.log");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("serving")) {
            break;
        }
        if Instant::now() > until || procs.all_exited() {
            bail!("repo serve did not come up; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut passes = Vec::new();
    let mut times = Vec::new();
    let mut failed = 0;
    for pass in ["CS empty", "CS hit"] {
        let before = cs_counts(&client).await?;
        let pb = bar(a.quiet, wanted.len() as u64, &format!("{engine}: {pass}"));
        let t = Instant::now();
        failed += fetch_all(&client, wanted, a.window, &pb).await;
        times.push(t.elapsed());
        pb.finish_and_clear();
        let after = cs_counts(&client).await?;
        passes.push(CsPass {
            engine: engine.to_string(),
            pass: pass.to_string(),
            hits: after.0 - before.0,
            misses: after.1 - before.1,
        });
    }
    procs.stop_all(Duration::from_secs(5));
    Ok((times[0], times[1], passes, failed))
}

/// Fetches every name with `window` Interests in flight; returns how many got no Data.
async fn fetch_all(client: &Client, wanted: &[Name], window: usize, pb: &ProgressBar) -> u64 {
    let limit = Arc::new(tokio::sync::Semaphore::new(window));
    let mut failed = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for name in wanted {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (client, name) = (client.clone(), name.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let mut i = Interest::new(name);
            i.lifetime_ms = Some(4_000);
            matches!(client.express(&i).await, Ok(Reply::Data { .. }))
        });
        while let Some(done) = tasks.try_join_next() {
            pb.inc(1);
            failed += u64::from(!matches!(done, Ok(true)));
        }
    }
    while let Some(done) = tasks.join_next().await {
        pb.inc(1);
        if !matches!(done, Ok(true)) {
            failed += 1;
        }
    }
    failed
}

fn print_table(r: &Report) {
    println!(
        "amicn bench repo: {} readings of {} meters; {} distinct readings fetched per pass, window {}",
        r.readings, r.meters, r.fetch, r.window
    );
    println!(
        "{:<44} {:>10} {:>9} {:>11} {:>7}  baseline",
        "figure", "count", "seconds", "per second", "ratio"
    );
    for row in &r.rows {
        println!(
            "{:<44} {:>10} {:>9.2} {:>11.0} {:>6.2}×  {}",
            row.what, row.count, row.seconds, row.per_second, row.ratio, row.baseline
        );
    }
    for p in &r.cs {
        println!(
            "forwarder cs/info, {} {}: {} hits, {} misses",
            p.engine, p.pass, p.hits, p.misses
        );
    }
    if r.failed_fetches > 0 {
        println!("{} fetches got no Data", r.failed_fetches);
    }
}
