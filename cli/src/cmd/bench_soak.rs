//! `amicn bench soak`: the whole AMI (`super::lab`) at steady load for a bounded time, sampled
//! at a fixed period: resident memory and open file descriptors of every role process, the
//! forwarder's PIT and CS entries (NFD's `status/general` dataset), the MDMS's stored readings
//! and ingest rate, reading-fetch, price and DR latency over the newest samples, and repository
//! insert latency (one signed insert per sample). A soak passes when, after a warm-up, the last
//! third of the run looks like the first: memory, descriptors and queues flat, ingest steady,
//! latency stable, nothing exited. Report as text or JSON; `soak.json`, `samples.csv` and PNG
//! plots in `--out`. The exit status is non-zero when a check fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

use super::bench::parse_duration;
use super::lab::{FORWARDER, Lab, LabSpec, MDMS};

/// Options of `amicn bench soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// How long to run at steady load (e.g. 2m, 30m).
    #[arg(long, default_value = "2m", value_parser = parse_soak_duration)]
    duration: Duration,
    /// Sampling period.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    sample: Duration,
    /// Simulated meters.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(2..=5_000))]
    meters: u32,
    /// Meter group processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// Reading interval of every meter.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    interval: Duration,
    /// Report directory.
    #[arg(long, default_value = "soak-report")]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Like [`parse_duration`] but also minutes and hours (`30m`, `2h`), up to a day.
fn parse_soak_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = s.strip_suffix('m').filter(|n| !n.ends_with('m')) {
        (n, 60.0)
    } else {
        return parse_duration(s);
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = v * mult;
    if !(1.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range (1s..24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One sample of the whole deployment.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    t_s: f64,
    /// Resident memory per role, KiB.
    rss_kib: BTreeMap<String, u64>,
    /// Open file descriptors per role.
    fds: BTreeMap<String, u64>,
    pit_entries: u64,
    cs_entries: u64,
    readings_stored: u64,
    /// Readings stored per second since the previous sample.
    ingest_per_s: f64,
    fetch_p50_ms: Option<f64>,
    price_p50_ms: Option<f64>,
    dr_p50_ms: Option<f64>,
    insert_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    pass: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    duration_s: f64,
    meters: u32,
    groups: u32,
    samples: Vec<Sample>,
    checks: Vec<Check>,
    pass: bool,
    out: String,
}

fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn recent_ms(v: &Option<Value>, key: &str) -> Option<f64> {
    v.as_ref()?["details"][key]["recent_p50_us"]
        .as_f64()
        .map(|us| us / 1e3)
}

/// Entry point of `amicn bench soak`.
pub(crate) fn run(a: SoakArgs) -> anyhow::Result<()> {
    if a.sample * 6 > a.duration {
        bail!(
            "--duration {:?} holds fewer than 6 samples of --sample {:?}",
            a.duration,
            a.sample
        );
    }
    let rt = super::lab::prepare(a.meters, a.groups, &a.out)?;
    let report = rt.block_on(soak(&a))?;
    std::fs::write(a.out.join("soak.json"), serde_json::to_vec_pretty(&report)?)?;
    write_outputs(&a, &report)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    if !report.pass {
        bail!("soak failed (see {})", report.out);
    }
    Ok(())
}

fn write_outputs(a: &SoakArgs, r: &Report) -> anyhow::Result<()> {
    let roles: Vec<String> = r
        .samples
        .first()
        .map(|s| s.rss_kib.keys().cloned().collect())
        .unwrap_or_default();
    let mut csv = String::from("t_s");
    for role in &roles {
        let _ = write!(csv, ",rss_kib_{role},fds_{role}");
    }
    csv.push_str(",pit_entries,cs_entries,readings_stored,ingest_per_s,fetch_p50_ms,price_p50_ms,dr_p50_ms,insert_ms\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for s in &r.samples {
        let _ = write!(csv, "{:.2}", s.t_s);
        for role in &roles {
            let _ = write!(
                csv,
                ",{},{}",
                s.rss_kib.get(role).copied().unwrap_or(0),
                s.fds.get(role).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            csv,
            ",{},{},{},{:.2},{},{},{},{}",
            s.pit_entries,
            s.cs_entries,
            s.readings_stored,
            s.ingest_per_s,
            opt(s.fetch_p50_ms),
            opt(s.price_p50_ms),
            opt(s.dr_p50_ms),
            opt(s.insert_ms)
        );
    }
    std::fs::write(a.out.join("samples.csv"), csv)?;
    let per_role = |f: &dyn Fn(&Sample, &str) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        roles
            .iter()
            .map(|role| {
                (
                    role.clone(),
                    r.samples.iter().map(|s| (s.t_s, f(s, role))).collect(),
                )
            })
            .collect()
    };
    super::plots::time_series(
        &a.out.join("memory.png"),
        "Resident memory per role",
        "RSS (MiB)",
        &per_role(&|s, role| s.rss_kib.get(role).copied().unwrap_or(0) as f64 / 1024.0),
        None,
    )?;
    super::plots::time_series(
        &a.out.join("fds.png"),
        "Open file descriptors per role",
        "descriptors",
        &per_role(&|s, role| s.fds.get(role).copied().unwrap_or(0) as f64),
        None,
    )?;
    let line = |label: &str, f: &dyn Fn(&Sample) -> Option<f64>| {
        (
            label.to_string(),
            r.samples
                .iter()
                .filter_map(|s| f(s).map(|y| (s.t_s, y)))
                .collect::<Vec<_>>(),
        )
    };
    super::plots::time_series(
        &a.out.join("queues.png"),
        "Forwarder tables and MDMS ingest",
        "entries / readings per s",
        &[
            line("PIT entries", &|s| Some(s.pit_entries as f64)),
            line("CS entries / 100", &|s| Some(s.cs_entries as f64 / 100.0)),
            line("MDMS ingest (readings/s)", &|s| Some(s.ingest_per_s)),
        ],
        None,
    )?;
    super::plots::time_series(
        &a.out.join("latency.png"),
        "Latency over the newest samples (p50)",
        "ms",
        &[
            line("reading fetch (MDMS)", &|s| s.fetch_p50_ms),
            line("price (meters)", &|s| s.price_p50_ms),
            line("DR event (meters)", &|s| s.dr_p50_ms),
            line("repository insert", &|s| s.insert_ms),
        ],
        None,
    )?;
    Ok(())
}

fn print_text(r: &Report) {
    println!(
        "amicn bench soak — {:.0} s, {} meters in {} groups, {} samples",
        r.duration_s,
        r.meters,
        r.groups,
        r.samples.len()
    );
    if let (Some(first), Some(last)) = (r.samples.first(), r.samples.last()) {
        println!(
            "{:<12} {:>14} {:>14} {:>8} {:>8}",
            "role", "RSS first", "RSS last", "fds 1st", "fds last"
        );
        for (role, rss) in &last.rss_kib {
            println!(
                "{:<12} {:>10} KiB {:>10} KiB {:>8} {:>8}",
                role,
                first.rss_kib.get(role).copied().unwrap_or(0),
                rss,
                first.fds.get(role).copied().unwrap_or(0),
                last.fds.get(role).copied().unwrap_or(0)
            );
        }
    }
    for c in &r.checks {
        println!(
            "{} {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!("report: {}", r.out);
}

async fn sample_once(
    lab: &mut Lab,
    mgmt: &amicn_face::client::Client,
    roles: &[String],
    t0: Instant,
    prev: Option<&Sample>,
    insert_ms: Option<f64>,
) -> Sample {
    let mut rss_kib = BTreeMap::new();
    let mut fds = BTreeMap::new();
    for role in roles {
        if let Some(pid) = lab.pid(role) {
            rss_kib.insert(
                role.clone(),
                super::mesh::status_kib(pid, "VmRSS").unwrap_or(0),
            );
            fds.insert(role.clone(), proc_fds(pid).unwrap_or(0));
        }
    }
    let status = super::mesh::dataset(mgmt, "status/general")
        .await
        .ok()
        .and_then(|c| amicn_tlv::mgmt::ForwarderStatus::decode_value(c).ok());
    let readings_stored = amicn_ami::open_reading_store(&lab.mdms_db().display().to_string())
        .and_then(|s| s.len())
        .unwrap_or(0);
    let t_s = t0.elapsed().as_secs_f64();
    let ingest_per_s = prev.map_or(0.0, |p| {
        readings_stored.saturating_sub(p.readings_stored) as f64 / (t_s - p.t_s).max(1e-3)
    });
    let group = lab.group_names().first().cloned().unwrap_or_default();
    let meters = lab.metrics(&group);
    let mdms = lab.metrics(MDMS);
    Sample {
        t_s,
        rss_kib,
        fds,
        pit_entries: status.as_ref().and_then(|s| s.n_pit_entries).unwrap_or(0),
        cs_entries: status.as_ref().and_then(|s| s.n_cs_entries).unwrap_or(0),
        readings_stored,
        ingest_per_s,
        fetch_p50_ms: recent_ms(&mdms, "reading_fetch_latency"),
        price_p50_ms: recent_ms(&meters, "price_latency"),
        dr_p50_ms: recent_ms(&meters, "dr_latency"),
        insert_ms,
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

async fn soak(a: &SoakArgs) -> anyhow::Result<Report> {
    let spec = LabSpec {
        utility: "soak-utility".into(),
        meters: a.meters,
        groups: a.groups,
        projects: 2,
        interval: a.interval,
    };
    let mut lab = Lab::start(spec, "soak").await?;
    let mgmt = super::mesh::connect_when_up(&lab.socket()).await?;
    let roles = lab.roles();
    let bar = ProgressBar::new(a.duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut insert_failures = 0u32;
    while t0.elapsed() < a.duration {
        let tick = Instant::now();
        let (k, _, wire) = lab.archive_batch(5);
        let ins = lab.inserter();
        let t_ins = Instant::now();
        let inserted = tokio::task::spawn_blocking(move || ins.insert(k, &wire)).await;
        let insert_ms = match inserted {
            Ok(Ok(())) => Some(t_ins.elapsed().as_secs_f64() * 1e3),
            _ => {
                insert_failures += 1;
                None
            }
        };
        let s = sample_once(&mut lab, &mgmt, &roles, t0, samples.last(), insert_ms).await;
        bar.set_position(t0.elapsed().as_secs().min(a.duration.as_secs()));
        bar.set_message(format!(
            "PIT {} · {} readings · {:.0}/s",
            s.pit_entries, s.readings_stored, s.ingest_per_s
        ));
        samples.push(s);
        tokio::time::sleep(a.sample.saturating_sub(tick.elapsed())).await;
    }
    bar.finish_and_clear();
    let exited = lab.exited();
    lab.stop();

    // The first fifth is warm-up (enrolment settles, caches fill); then the first and the last
    // third of what remains are compared.
    let steady = &samples[samples.len() / 5..];
    let third = (steady.len() / 3).max(1);
    let (early, late) = (&steady[..third], &steady[steady.len() - third..]);
    let mut checks = Vec::new();
    let mut check = |name: String, pass: bool, detail: String| {
        checks.push(Check { name, pass, detail });
    };
    for role in &roles {
        let m = |w: &[Sample]| {
            mean(
                w.iter()
                    .filter_map(|s| s.rss_kib.get(role).map(|&v| v as f64)),
            )
        };
        let (e, l) = (m(early), m(late));
        // Flat: at most a quarter more, or 4 MiB, whichever is larger (allocator noise).
        let limit = (e * 1.25).max(e + 4096.0);
        check(
            format!("{role}: resident memory flat"),
            l <= limit,
            format!(
                "{:.1} MiB early, {:.1} MiB late (limit {:.1})",
                e / 1024.0,
                l / 1024.0,
                limit / 1024.0
            ),
        );
        let f = |w: &[Sample]| {
            w.iter()
                .filter_map(|s| s.fds.get(role).copied())
                .max()
                .unwrap_or(0)
        };
        let (e, l) = (f(early), f(late));
        check(
            format!("{role}: file descriptors flat"),
            l <= e + 4,
            format!("at most {e} early, {l} late"),
        );
    }
    let pit = |w: &[Sample]| mean(w.iter().map(|s| s.pit_entries as f64));
    let (e, l) = (pit(early), pit(late));
    check(
        format!("{FORWARDER}: PIT does not grow"),
        l <= (e * 2.0).max(e + 50.0),
        format!("{e:.0} entries early, {l:.0} late"),
    );
    let ing = |w: &[Sample]| mean(w.iter().map(|s| s.ingest_per_s));
    let (e, l) = (ing(early), ing(late));
    let offered = f64::from(a.meters) / a.interval.as_secs_f64();
    check(
        "MDMS ingest steady and keeping up with the meters".into(),
        l >= 0.8 * e && l >= 0.8 * offered,
        format!("{e:.1} readings/s early, {l:.1} late, {offered:.1} offered"),
    );
    for (what, get) in [
        (
            "reading fetch",
            (|s: &Sample| s.fetch_p50_ms) as fn(&Sample) -> Option<f64>,
        ),
        ("price", |s: &Sample| s.price_p50_ms),
        ("repository insert", |s: &Sample| s.insert_ms),
    ] {
        let e = mean(early.iter().filter_map(get));
        let l = mean(late.iter().filter_map(get));
        check(
            format!("{what} latency stable"),
            late.iter().any(|s| get(s).is_some()) && l <= e * 3.0 + 50.0,
            format!("p50 {e:.1} ms early, {l:.1} ms late"),
        );
    }
    check(
        "every repository insert acknowledged".into(),
        insert_failures == 0,
        format!("{} inserts, {insert_failures} failed", samples.len()),
    );
    check(
        "no process exited".into(),
        exited.is_empty(),
        format!("{exited:?}"),
    );
    let pass = checks.iter().all(|c| c.pass);
    if pass {
        let _ = std::fs::remove_dir_all(&lab.dir);
    }
    Ok(Report {
        duration_s: t0.elapsed().as_secs_f64(),
        meters: a.meters,
        groups: a.groups,
        samples,
        checks,
        pass,
        out: if pass {
            a.out.display().to_string()
        } else {
            format!("{} (lab kept at {})", a.out.display(), lab.dir.display())
        },
    })
}
