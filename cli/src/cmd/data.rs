//! `amicn data`: meter data sets. `generate` writes realistic, seeded synthetic readings
//! (household and commercial load shapes, weekday/weekend and seasonal variation, noise, PV
//! export on a share of meters; see `amicn_ami::loadgen`) as CSV; `import` turns a CSV of
//! readings into named, signed Data in the reading format (`amicn_ami::reading`) stored in a
//! repository database that `amicn repo serve` publishes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use amicn_ami::loadgen::{CSV_HEADER, GenConfig, MeterGen, Site, parse_start};
use amicn_ami::reading::{Obis, Reading, Register, Unit};
use amicn_tlv::Data;
use anyhow::{Context, bail};
use bytes::Bytes;
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
    /// Import a CSV of readings as named, signed Data into a repository database
    Import(Box<ImportArgs>),
    /// Fetch meters' readings for a time range through the network, verify, write CSV or JSON
    Query(QueryArgs),
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Meters: ids and ranges, e.g. 3 or 1-100,205
    #[arg(long)]
    meters: String,
    /// Start of the range: YYYY-MM-DD or seconds since 1970 (intervals ending after it)
    #[arg(long)]
    from: String,
    /// End of the range (exclusive), same forms
    #[arg(long)]
    to: String,
    /// Interval length of the data set (readings are named by interval end)
    #[arg(long, default_value = "15m")]
    interval: String,
    /// Utility prefix
    #[arg(long, default_value = "/lab-utility")]
    utility: String,
    /// Certificate of the data set's publisher: every reading must carry its Ed25519 signature
    #[arg(long, required_unless_present = "no_verify")]
    cert: Option<PathBuf>,
    /// Accept readings without checking who signed them
    #[arg(long)]
    no_verify: bool,
    /// Decrypt readings with the keys the KMS gives this node (an mdms, pricing or dr node
    /// config; see `data import --encrypt`)
    #[arg(long, value_name = "NODE.toml")]
    key_node: Option<PathBuf>,
    /// Write JSON instead of CSV
    #[arg(long)]
    json: bool,
    /// Output file (default: standard output)
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Fetches in flight
    #[arg(long, default_value_t = 64)]
    window: usize,
    #[command(flatten)]
    connect: super::key::ConnectArgs,
    /// No progress bar or summary
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// CSV file with a header row
    csv: PathBuf,
    /// Repository database to load: a SQLite file or a postgres:// URL (see `amicn repo`)
    #[arg(long)]
    db: PathBuf,
    /// Utility prefix U: readings are named U/ami/meter/ID/reading/t=END (interval end, µs)
    #[arg(long, default_value = "/lab-utility")]
    utility: String,
    /// Skip (and count) malformed rows instead of stopping at the first
    #[arg(long)]
    skip_bad: bool,
    /// Column of the meter id
    #[arg(long, default_value = "meter")]
    col_meter: String,
    /// Column of the interval start (seconds since 1970)
    #[arg(long, default_value = "interval_start")]
    col_start: String,
    /// Column of the interval length (seconds)
    #[arg(long, default_value = "interval_s")]
    col_interval: String,
    /// Column of the active import energy register (Wh)
    #[arg(long, default_value = "import_wh")]
    col_import: String,
    /// Column of the active export energy register (Wh; optional)
    #[arg(long, default_value = "export_wh")]
    col_export: String,
    /// Column of the reactive import energy register (varh; optional)
    #[arg(long, default_value = "reactive_varh")]
    col_reactive: String,
    /// Column of the mean active power (W; optional)
    #[arg(long, default_value = "power_w")]
    col_power: String,
    /// Column of the voltage (V; optional)
    #[arg(long, default_value = "voltage_v")]
    col_voltage: String,
    /// Column of the current (A; optional)
    #[arg(long, default_value = "current_a")]
    col_current: String,
    #[command(flatten)]
    sign: super::key::SignArgs,
    /// Encrypt every reading under a KMS key: meter (each meter's reading key), broadcast, or
    /// project:NAME; the keys are fetched from the KMS as --key-node's role
    #[arg(long, value_name = "KIND", requires = "key_node")]
    encrypt: Option<amicn_ami::dataset_keys::DatasetKey>,
    /// Node config whose credentials fetch the keys: an mdms node for `meter`, pricing for
    /// `broadcast`, dr for `project:NAME`
    #[arg(long, value_name = "NODE.toml")]
    key_node: Option<PathBuf>,
    /// Print `committed N` on standard output after each committed batch (N Data in total)
    #[arg(long)]
    ack: bool,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
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
        DataCmd::Import(i) => import(*i),
        DataCmd::Query(q) => query(q),
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

/// The keys the KMS gives the node configured in `path` (its role must be `role` when given),
/// and the node's utility names.
fn kms_keys(
    path: &std::path::Path,
    role: Option<&str>,
) -> anyhow::Result<(std::sync::Arc<amicn_ami::HeadEndKeys>, amicn_ami::AmiNames)> {
    let (cfg, base) = amicn_ami::daemon::NodeConfig::load(path)?;
    let node = amicn_ami::daemon::Node::resolve(cfg, &base)?;
    if let Some(r) = role
        && node.role != r
    {
        bail!(
            "{} is a {} node; that key is held by a {r} node",
            path.display(),
            node.role
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let keys = rt
        .block_on(async {
            let client = amicn_ami::connect(&node.forwarder).await?;
            amicn_ami::daemon::fetch_service_keys(&node, &client).await
        })
        .with_context(|| format!("fetching keys from the KMS as {}", path.display()))?;
    Ok((keys, node.names))
}

/// Column positions of an import.
struct Columns {
    meter: usize,
    start: usize,
    interval: usize,
    import: usize,
    optional: Vec<(usize, Obis, i8, Unit)>,
}

fn columns(header: &str, a: &ImportArgs) -> anyhow::Result<Columns> {
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |c: &str| names.iter().position(|n| *n == c);
    let need = |c: &str| {
        find(c).with_context(|| format!("the CSV has no column {c:?} (header: {header})"))
    };
    let mut optional = Vec::new();
    for (c, obis, scaler, unit) in [
        (&a.col_export, Obis::ACTIVE_EXPORT_ENERGY, 0, Unit::WH),
        (&a.col_reactive, Obis::REACTIVE_IMPORT_ENERGY, 0, Unit(32)),
        (&a.col_power, Obis::ACTIVE_POWER, 0, Unit::W),
        (&a.col_voltage, Obis::VOLTAGE_L1, -1, Unit::V),
        (&a.col_current, Obis::CURRENT_L1, -2, Unit::A),
    ] {
        if let Some(i) = find(c) {
            optional.push((i, obis, scaler, unit));
        }
    }
    Ok(Columns {
        meter: need(&a.col_meter)?,
        start: need(&a.col_start)?,
        interval: need(&a.col_interval)?,
        import: need(&a.col_import)?,
        optional,
    })
}

/// One CSV row as a reading; the error says which field is wrong.
fn row_reading(line: &str, c: &Columns) -> Result<Reading, String> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let get = |i: usize, what: &str| f.get(i).copied().ok_or(format!("no {what} field"));
    let int = |i: usize, what: &str| -> Result<i64, String> {
        let v = get(i, what)?;
        v.parse::<i64>()
            .map_err(|_| format!("{what} {v:?} is not an integer"))
    };
    let meter = u32::try_from(int(c.meter, "meter id")?)
        .ok()
        .filter(|m| *m > 0)
        .ok_or("meter id must be in 1..2^32")?;
    let start_s = u64::try_from(int(c.start, "interval start")?)
        .map_err(|_| "interval start must not be negative")?;
    let len_s = u32::try_from(int(c.interval, "interval length")?)
        .ok()
        .filter(|l| *l > 0 && *l <= 86_400 * 31)
        .ok_or("interval length must be 1 s to 31 days")?;
    let mut r = Reading::new(meter, start_s * 1_000_000, len_s * 1_000).with(Register::new(
        Obis::ACTIVE_IMPORT_ENERGY,
        int(c.import, "import energy")?,
        0,
        Unit::WH,
    ));
    for (i, obis, scaler, unit) in &c.optional {
        let Some(v) = f.get(*i).filter(|v| !v.is_empty()) else {
            continue;
        };
        let x: f64 = v
            .parse()
            .map_err(|_| format!("{} {v:?} is not a number", obis))?;
        let raw = (x * 10f64.powi(-i32::from(*scaler))).round();
        if !raw.is_finite() || raw.abs() > 9.0e18 {
            return Err(format!("{obis} {v:?} is out of range"));
        }
        r = r.with(Register::new(*obis, raw as i64, *scaler, *unit));
    }
    r.validate().map_err(|e| e.to_string())?;
    Ok(r)
}

/// With `--ack`: tells whoever drives the import how many Data are durably stored.
fn acknowledge(on: bool, stored: u64) -> anyhow::Result<()> {
    if on {
        let mut out = std::io::stdout().lock();
        writeln!(out, "committed {stored}")?;
        out.flush()?;
    }
    Ok(())
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    use std::io::BufRead;
    let names = amicn_ami::AmiNames::new(&a.utility)?;
    let sealing = match (&a.encrypt, &a.key_node) {
        (Some(kind), Some(node)) => {
            let (keys, node_names) = kms_keys(node, Some(kind.node_role()))?;
            if node_names.utility() != names.utility() {
                bail!(
                    "--utility {} differs from the key node's utility {}",
                    names.utility(),
                    node_names.utility()
                );
            }
            Some((kind.clone(), keys))
        }
        (None, Some(_)) => bail!("--key-node is used with --encrypt"),
        _ => None,
    };
    let setup = a.sign.setup()?;
    let signer = setup.signer;
    let store = amicn_ami::repo::RepoStore::open(&a.db)?;
    let file =
        std::fs::File::open(&a.csv).with_context(|| format!("opening {}", a.csv.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut lines = std::io::BufReader::with_capacity(1 << 20, file).lines();
    let header = lines
        .next()
        .transpose()
        .with_context(|| format!("reading {}", a.csv.display()))?
        .with_context(|| format!("{} is empty", a.csv.display()))?;
    let cols = columns(&header, &a)?;
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(size);
        b.set_style(
            ProgressStyle::with_template("importing [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    // The certificate travels with the data set, so consumers can fetch it by KeyLocator.
    let mut batch: Vec<Bytes> = setup.certificate.iter().map(|c| c.to_wire()).collect();
    let t = Instant::now();
    let (mut stored, mut bad, mut read_bytes) = (0u64, 0u64, header.len() as u64 + 1);
    let mut first_bad = Vec::new();
    for (k, line) in lines.enumerate() {
        let lineno = k + 2;
        let line = line.with_context(|| format!("{}: line {lineno}", a.csv.display()))?;
        read_bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        // A row is bad when it does not parse or, with --encrypt, has no key to seal it.
        let row = row_reading(&line, &cols).and_then(|reading| {
            let name = names.reading(reading.meter, reading.end_us());
            let plain = reading.encode().map_err(|e| e.to_string())?;
            let content = match &sealing {
                Some((kind, keys)) => kind
                    .seal(keys, reading.meter, &name, &plain)
                    .map_err(|e| e.to_string())?,
                None => plain,
            };
            Ok((name, content))
        });
        let (name, content) = match row {
            Ok(r) => r,
            Err(why) if a.skip_bad => {
                bad += 1;
                if first_bad.len() < 5 {
                    first_bad.push(format!("line {lineno}: {why}"));
                }
                continue;
            }
            Err(why) => bail!(
                "{}: line {lineno}: {why} (nothing after the last commit was stored; --skip-bad skips such rows)",
                a.csv.display()
            ),
        };
        let mut d = Data::new(name, content);
        batch.push(d.sign_with(signer.signature_info(), |p| signer.sign(p)));
        if batch.len() >= 10_000 {
            stored += store.insert(&batch)? as u64;
            batch.clear();
            pb.set_position(read_bytes);
            acknowledge(a.ack, stored)?;
        }
    }
    stored += store.insert(&batch)? as u64;
    acknowledge(a.ack, stored)?;
    pb.finish_and_clear();
    if !a.quiet {
        eprintln!(
            "imported {stored} Data (signed, committed) into {} in {:.1} s ({:.0}/s); {bad} bad rows skipped",
            amicn_ami::repo::redact(&a.db.to_string_lossy()),
            t.elapsed().as_secs_f64(),
            stored as f64 / t.elapsed().as_secs_f64().max(1e-9)
        );
        for b in first_bad {
            eprintln!("  {b}");
        }
    }
    Ok(())
}

/// Meter ids from `3`, `1-100,205` forms.
fn parse_meters(s: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (
            a.trim().parse().with_context(|| format!("meter {a:?}"))?,
            b.trim().parse().with_context(|| format!("meter {b:?}"))?,
        );
        if a == 0 || b < a || u64::from(b - a) > 10_000_000 {
            bail!("meters {part:?}: expected ids from 1, ranges low-high");
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        bail!("no meters given");
    }
    Ok(out)
}

/// One fetched reading as an output row.
#[derive(serde::Serialize)]
struct Row {
    meter: u32,
    interval_start: u64,
    interval_s: u32,
    import_wh: Option<f64>,
    export_wh: Option<f64>,
    reactive_varh: Option<f64>,
    power_w: Option<f64>,
    voltage_v: Option<f64>,
    current_a: Option<f64>,
    flags: u32,
    /// The registers in their exact decimal form, for CSV (`1.10` stays `1.10`).
    #[serde(skip)]
    text: Vec<String>,
}

impl Row {
    fn of(r: &Reading) -> Row {
        // Through the exact decimal form, so 2305 × 10^-1 is 230.5, not 230.50000000000003.
        let v = |o: Obis| r.register(o).and_then(|x| x.decimal().parse::<f64>().ok());
        let text = [
            Obis::ACTIVE_IMPORT_ENERGY,
            Obis::ACTIVE_EXPORT_ENERGY,
            Obis::REACTIVE_IMPORT_ENERGY,
            Obis::ACTIVE_POWER,
            Obis::VOLTAGE_L1,
            Obis::CURRENT_L1,
        ]
        .iter()
        .map(|o| r.register(*o).map(|x| x.decimal()).unwrap_or_default())
        .collect();
        Row {
            meter: r.meter,
            interval_start: r.start_us / 1_000_000,
            interval_s: r.interval_ms / 1_000,
            import_wh: v(Obis::ACTIVE_IMPORT_ENERGY),
            export_wh: v(Obis::ACTIVE_EXPORT_ENERGY),
            reactive_varh: v(Obis::REACTIVE_IMPORT_ENERGY),
            power_w: v(Obis::ACTIVE_POWER),
            voltage_v: v(Obis::VOLTAGE_L1),
            current_a: v(Obis::CURRENT_L1),
            flags: r.flags.0,
            text,
        }
    }

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.meter,
            self.interval_start,
            self.interval_s,
            self.text.join(","),
            self.flags
        )
    }
}

fn query(q: QueryArgs) -> anyhow::Result<()> {
    let meters = parse_meters(&q.meters)?;
    let interval = amicn_ami::topo::parse_duration(&q.interval)?;
    let step_us = u64::try_from(interval.as_micros()).unwrap_or(0);
    if step_us == 0 {
        bail!("--interval must be positive");
    }
    let from_us = parse_start(&q.from).map_err(anyhow::Error::msg)? * 1_000_000;
    let to_us = parse_start(&q.to).map_err(anyhow::Error::msg)? * 1_000_000;
    if to_us <= from_us {
        bail!("--to must be after --from");
    }
    let key = match &q.cert {
        Some(p) if !q.no_verify => {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let cert = amicn_kms::cert::Certificate::decode(Bytes::from(b))?;
            let key = cert.public_key().copied().with_context(|| {
                format!(
                    "{} certifies a {} key; readings are signed with Ed25519",
                    p.display(),
                    cert.key().algorithm()
                )
            })?;
            Some(key)
        }
        _ => None,
    };
    let names = amicn_ami::AmiNames::new(&q.utility)?;
    let keys = match &q.key_node {
        Some(node) => Some(kms_keys(node, None)?.0),
        None => None,
    };
    // Readings are named by interval end: the first end after `from`, aligned to the interval.
    let first_end = (from_us / step_us + 1) * step_us;
    let mut wanted = Vec::new();
    for &m in &meters {
        let mut t = first_end;
        while t <= to_us {
            wanted.push((m, t));
            t += step_us;
        }
    }
    if wanted.len() > 50_000_000 {
        bail!("{} readings asked for: narrow the range", wanted.len());
    }
    let pb = if q.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(wanted.len() as u64);
        b.set_style(
            ProgressStyle::with_template("fetching [{bar:30}] {pos}/{len} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let t = Instant::now();
    let (rows, missing, rejected) = rt.block_on(async {
        let client = q.connect.client().await?;
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(q.window.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (m, t_end) in wanted {
            let (client, limit) = (client.clone(), limit.clone());
            let name = names.reading(m, t_end);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let mut i = amicn_tlv::Interest::new(name.clone());
                i.lifetime_ms = Some(2_000);
                let mut last = None;
                for _ in 0..3 {
                    match client.express(&i).await {
                        Ok(amicn_face::client::Reply::Data { data, .. }) => return Ok(data),
                        Ok(other) => last = Some(format!("{other:?}")),
                        Err(e) => last = Some(e.to_string()),
                    }
                }
                Err((name, last.unwrap_or_default()))
            });
        }
        let (mut rows, mut missing, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(j) = tasks.join_next().await {
            pb.inc(1);
            match j {
                Ok(Ok(d)) => {
                    if let Some(k) = &key
                        && let Err(e) = amicn_kms::identity::verify_data(&d, k)
                    {
                        rejected.push(format!("{}: {e}", d.name));
                        continue;
                    }
                    let plain = match &keys {
                        Some(k) => match amicn_ami::dataset_keys::open(k, &d.name, &d.content) {
                            Ok(p) => Bytes::copy_from_slice(&p),
                            Err(e) => {
                                rejected.push(format!("{}: {e}", d.name));
                                continue;
                            }
                        },
                        None => d.content.clone(),
                    };
                    match Reading::decode(&plain) {
                        Ok(r) => rows.push(Row::of(&r)),
                        Err(e) => rejected.push(format!("{}: {e}", d.name)),
                    }
                }
                Ok(Err((name, why))) => missing.push(format!("{name}: {why}")),
                Err(e) => missing.push(format!("fetch task: {e}")),
            }
        }
        anyhow::Ok((rows, missing, rejected))
    })?;
    pb.finish_and_clear();
    let mut rows = rows;
    rows.sort_by_key(|r| (r.meter, r.interval_start));
    let out: Box<dyn Write> = match &q.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(out);
    if q.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "meter,interval_start,interval_s,import_wh,export_wh,reactive_varh,power_w,voltage_v,current_a,flags"
        )?;
        for r in &rows {
            writeln!(out, "{}", r.csv())?;
        }
    }
    out.flush()?;
    if !q.quiet {
        eprintln!(
            "{} readings fetched{} in {:.1} s; {} missing, {} rejected",
            rows.len(),
            if key.is_some() {
                " and verified"
            } else {
                " (signatures NOT checked)"
            },
            t.elapsed().as_secs_f64(),
            missing.len(),
            rejected.len()
        );
        for m in missing.iter().chain(&rejected).take(5) {
            eprintln!("  {m}");
        }
    }
    if !rejected.is_empty() {
        bail!(
            "{} readings failed verification or decryption",
            rejected.len()
        );
    }
    Ok(())
}
