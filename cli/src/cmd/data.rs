//! `amicn data`: meter data sets. `generate` writes realistic, seeded synthetic readings
//! (household and commercial load shapes, weekday/weekend and seasonal variation, noise, PV
//! export on a share of meters; see `amicn_ami::loadgen`) as CSV.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use amicn_ami::loadgen::{CSV_HEADER, GenConfig, MeterGen, Site, parse_start};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    #[command(subcommand)]
    cmd: DataCmd,
}

#[derive(Debug, Subcommand)]
enum DataCmd {
    /// Generate synthetic interval readings for N meters over a period, as CSV
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Meters
    #[arg(long, default_value_t = 100)]
    meters: u32,
    /// Id of the first meter
    #[arg(long, default_value_t = 1)]
    first_id: u32,
    /// Start: YYYY-MM-DD (UTC midnight) or seconds since 1970
    #[arg(long, default_value = "2026-01-01")]
    start: String,
    /// Length of the period in days (ignored with --intervals)
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Intervals per meter (instead of --days)
    #[arg(long)]
    intervals: Option<u32>,
    /// Interval length (e.g. 15m, 1h, 30s)
    #[arg(long, default_value = "15m")]
    interval: String,
    /// Seed: the same seed gives the same data
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of meters with rooftop PV (0-1)
    #[arg(long, default_value_t = 0.2)]
    pv_share: f64,
    /// Share of meters that are commercial sites (0-1)
    #[arg(long, default_value_t = 0.1)]
    commercial_share: f64,
    /// Output file (default: standard output)
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// No progress bar or summary
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(a: DataArgs) -> anyhow::Result<()> {
    match a.cmd {
        DataCmd::Generate(g) => generate(g),
    }
}

fn generate(g: GenerateArgs) -> anyhow::Result<()> {
    let interval = amicn_ami::topo::parse_duration(&g.interval)?;
    let interval_s = u32::try_from(interval.as_secs())
        .ok()
        .filter(|s| *s > 0 && interval.subsec_nanos() == 0)
        .with_context(|| format!("--interval {:?}: a whole number of seconds", g.interval))?;
    let intervals = match g.intervals {
        Some(n) => n,
        None => {
            if !(g.days.is_finite() && g.days > 0.0) {
                bail!("--days {}: must be positive", g.days);
            }
            let n = (g.days * 86_400.0 / f64::from(interval_s)).round();
            if n > f64::from(u32::MAX) {
                bail!("--days {}: too many intervals", g.days);
            }
            n as u32
        }
    };
    let cfg = GenConfig {
        meters: g.meters,
        first_id: g.first_id,
        start_s: parse_start(&g.start).map_err(anyhow::Error::msg)?,
        interval_s,
        intervals,
        seed: g.seed,
        pv_share: g.pv_share,
        commercial_share: g.commercial_share,
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let out: Box<dyn Write> = match &g.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let pb = if g.quiet || g.output.is_none() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(u64::from(g.meters));
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} meters {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message("generating");
        b
    };
    let t = Instant::now();
    writeln!(out, "{CSV_HEADER}")?;
    let (mut rows, mut pv, mut commercial) = (0u64, 0u32, 0u32);
    let (mut import_wh, mut export_wh) = (0u64, 0u64);
    for id in cfg.first_id..cfg.first_id + cfg.meters {
        let mut gen_ = MeterGen::new(&cfg, id);
        pv += u32::from(gen_.profile().pv_peak_w > 0.0);
        commercial += u32::from(gen_.profile().site == Site::Commercial);
        let mut first: Option<(u64, u64)> = None;
        let mut last = (0, 0);
        for iv in gen_.by_ref() {
            if first.is_none() {
                first = Some((iv.import_wh, iv.export_wh));
            }
            last = (iv.import_wh, iv.export_wh);
            writeln!(out, "{}", iv.csv_row())?;
            rows += 1;
        }
        if let Some((i0, e0)) = first {
            import_wh += last.0 - i0;
            export_wh += last.1 - e0;
        }
        pb.inc(1);
    }
    out.flush()?;
    pb.finish_and_clear();
    if !g.quiet {
        let el = t.elapsed().as_secs_f64();
        eprintln!(
            "{rows} readings of {} meters ({pv} with PV, {commercial} commercial), {intervals} × {interval_s} s from {}: \
             {:.1} kWh imported, {:.1} kWh exported; {:.0} rows/s",
            g.meters,
            g.start,
            import_wh as f64 / 1_000.0,
            export_wh as f64 / 1_000.0,
            rows as f64 / el.max(1e-9)
        );
    }
    Ok(())
}
