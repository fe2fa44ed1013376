//! `amicn demo`: a whole AMI deployment on one machine, with nothing to configure.
//!
//! By default the AMI runs as deployed, as separate processes on a forwarder mesh (see
//! `netdemo`). With `--in-process` it plays the scripted scenario below in one process.
//!
//! The in-process scenario starts an in-process forwarder on a private Unix socket, then the KMS, N meters, the MDMS
//! collector, the pricing publisher and the DR operator, each on its own forwarder connection,
//! and plays a scripted scenario: meters enrol, readings flow to the MDMS, a price and DR events
//! go out, one meter leaves and one is revoked, a meter joins late. It prints readings and rekey
//! figures, how much of the key distribution the forwarder's cache absorbed, latency
//! percentiles, and PASS/FAIL for every security property it checks; it exits non-zero if any
//! check fails.

use std::path::PathBuf;
use std::time::Duration;

use amicn_ami::daemon::parse_duration;
use amicn_ami::now_ms;
use amicn_ami::scenario::{self, Settings};
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// Run a complete AMI scenario on this machine and check its security properties.
#[derive(Debug, Args, Default)]
pub(crate) struct DemoArgs {
    /// Scenario file (TOML, see examples/demo.toml); flags override its settings.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Meters enrolled at the start (one more joins late) [default: 20].
    #[arg(long, value_name = "N")]
    pub(crate) meters: Option<u32>,
    /// DR projects p1..pK; meter i subscribes to pj when bit j-1 of i is set [default: 2].
    #[arg(long, value_name = "K")]
    pub(crate) projects: Option<u32>,
    /// How long readings flow, e.g. 10s or 2500ms [default: 10s].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Reading interval [default: duration/10, between 200ms and 1s].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub(crate) interval: Option<Duration>,
    /// Utility prefix [default: /example-utility].
    #[arg(long = "u", value_name = "PREFIX")]
    pub(crate) utility: Option<String>,
    /// Degree of the key trees [default: 2].
    #[arg(long, value_name = "D")]
    pub(crate) degree: Option<u32>,
    /// Readings database: a SQLite file or a postgres:// URL [default: in memory (in-process),
    /// the MDMS's state directory (networked)].
    #[arg(long, value_name = "FILE")]
    pub(crate) db: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Play the scripted scenario in one process (one in-process forwarder) instead of the
    /// networked system.
    #[arg(long)]
    pub(crate) in_process: bool,
    /// Where the networked demo writes report.json and its PNG plots [default: amicn-demo-report].
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Meter processes of the networked demo (split over the two concentrators) [default: 2].
    #[arg(long, value_name = "K")]
    pub(crate) meter_groups: Option<u32>,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// The scenario file: every field optional, same meaning as the flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    meters: Option<u32>,
    projects: Option<u32>,
    duration: Option<String>,
    interval: Option<String>,
    utility: Option<String>,
    degree: Option<u32>,
    db: Option<PathBuf>,
    sync_jitter: Option<String>,
}

/// The settings of `a`: its scenario file (if any) overridden by its flags, defaults filled in.
pub(crate) fn resolve(a: &DemoArgs) -> anyhow::Result<Settings> {
    let file: DemoFile = match &a.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => DemoFile::default(),
    };
    let dur = |flag: Option<Duration>, f: &Option<String>| -> anyhow::Result<Option<Duration>> {
        match (flag, f) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(s)) => Ok(Some(parse_duration(s).map_err(anyhow::Error::msg)?)),
            (None, None) => Ok(None),
        }
    };
    // The networked system needs time for processes to start and meters to enrol.
    let (default_meters, default_duration) = if a.in_process {
        (20, Duration::from_secs(10))
    } else {
        (100, Duration::from_secs(30))
    };
    let duration = dur(a.duration, &file.duration)?.unwrap_or(default_duration);
    let interval = dur(a.interval, &file.interval)?.unwrap_or_else(|| {
        (duration / 10).clamp(Duration::from_millis(200), Duration::from_secs(1))
    });
    let s = Settings {
        meters: a.meters.or(file.meters).unwrap_or(default_meters),
        projects: a.projects.or(file.projects).unwrap_or(2),
        duration,
        interval,
        utility: a
            .utility
            .clone()
            .or(file.utility)
            .unwrap_or_else(|| "/example-utility".into()),
        degree: a.degree.or(file.degree).unwrap_or(2),
        db: a.db.clone().or(file.db),
        sync_jitter: dur(None, &file.sync_jitter)?.unwrap_or(Duration::from_millis(20)),
    };
    if s.meters < 4 {
        bail!(
            "--meters must be at least 4 (the scenario needs a leaver, a revoked meter and members left over)"
        );
    }
    if s.projects > 8 {
        bail!("--projects must be at most 8");
    }
    if s.interval < Duration::from_millis(20) {
        bail!("--interval must be at least 20ms");
    }
    if s.duration < s.interval * 4 {
        bail!("--duration must cover at least four reading intervals");
    }
    Ok(s)
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let settings = resolve(&args)?;
    if !args.in_process {
        return run_networked(&args, &settings);
    }
    let dir = std::env::temp_dir().join(format!("amicn-demo-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let socket = dir.join("fwd.sock");
    let fwd = RunningForwarder::start(RuntimeConfig {
        unix_path: Some(socket.clone()),
        tcp: Vec::new(),
        udp: Vec::new(),
        listen_best_effort: true,
        ..RuntimeConfig::default()
    })
    .context("starting the in-process forwarder")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(scenario::run(&settings, &socket));
    rt.shutdown_timeout(Duration::from_millis(500));
    let _ = fwd.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    let failed = report.checks().iter().filter(|c| !c.pass).count();
    if failed > 0 {
        bail!("{failed} of {} checks FAILED", report.checks().len());
    }
    Ok(())
}

fn run_networked(args: &DemoArgs, settings: &Settings) -> anyhow::Result<()> {
    crate::cmd::fwd::init_logging(Some("warn"), false);
    let groups = args.meter_groups.unwrap_or(2).clamp(1, settings.meters);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("amicn-demo-report"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let progress = !args.quiet && !args.json;
    // Ctrl-C ends the run; dropping the scenario stops every process it started by PID.
    let report = rt.block_on(async {
        tokio::select! {
            r = super::netdemo::run(settings, groups, &out, progress) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        super::netdemo::print_text(&report, &out);
    }
    let failed = report.checks.iter().filter(|c| !c.pass).count();
    if failed > 0 {
        bail!("{failed} of {} checks FAILED", report.checks.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn example_scenario_file_states_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo.toml");
        let from_file = resolve(&DemoArgs {
            config: Some(path.into()),
            ..DemoArgs::default()
        })
        .unwrap();
        let defaults = resolve(&DemoArgs::default()).unwrap();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
        // Flags win over the file.
        let a = DemoArgs {
            config: Some(path.into()),
            meters: Some(8),
            ..DemoArgs::default()
        };
        assert_eq!(resolve(&a).unwrap().meters, 8);
    }

    #[test]
    fn settings_reject_unusable_values() {
        let a = DemoArgs {
            meters: Some(3),
            ..DemoArgs::default()
        };
        assert!(resolve(&a).is_err());
        let a = DemoArgs {
            duration: Some(Duration::from_millis(300)),
            ..DemoArgs::default()
        };
        assert!(resolve(&a).is_err());
        let s = resolve(&DemoArgs::default()).unwrap();
        assert_eq!(
            (s.meters, s.projects, s.interval, s.duration),
            (100, 2, Duration::from_secs(1), Duration::from_secs(30))
        );
        let s = resolve(&DemoArgs {
            in_process: true,
            ..DemoArgs::default()
        })
        .unwrap();
        assert_eq!((s.meters, s.duration), (20, Duration::from_secs(10)));
    }
}
