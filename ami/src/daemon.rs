//! The AMI roles as long-running processes: one node config format, a state directory per
//! node, counters as Prometheus text and JSON snapshots, readiness and clean shutdown.
//!
//! Every daemon reaches the network only through its local forwarder (`forwarder`, an NFD-style
//! transport URI; default NFD's conventions). In its state directory it keeps its databases and
//! files and writes, every `metrics_interval` and at exit:
//! - `metrics.prom`: counters in the Prometheus text format (`amicn_<role>_<counter>`),
//! - `metrics.json`: the same counters plus role details (epochs, per-meter state, latency
//!   samples),
//! - `ready`: created once the daemon has registered its prefixes and answers.
//!
//! Paths in a node config are relative to the config file's directory.
//!
//! What each role runs besides its key traffic:
//! - **meter** (a group of simulated meters): answers signed commands (on-demand read,
//!   connect, disconnect, load limit; [`crate::ops`]), keeping relay state and replay records
//!   in `meter-<id>/`; reports events ([`crate::events`]) to the MDMS: a restoration when it
//!   starts from saved state, a last gasp when it stops (SIGTERM), a clock adjustment when the
//!   wall clock steps by more than a second, and any line an operator writes into
//!   [`INJECT_EVENTS_FILE`] in the group's state directory; follows the TOU tariff
//!   [`periods_tariff_id`] through its signed latest pointer and keeps its per-period
//!   registers in `meter-<id>/tariff.json`; acknowledges (opts in to) each DR event of its
//!   projects.
//! - **mdms**: besides collecting readings, answers event notifications (commits the events in
//!   the `meter_event` table) and runs VEE, which flags the intervals the outages cover.
//! - **pricing**: a flat price every publish interval and a TOU tariff version under each new
//!   broadcast key ([`day_tariff`]).
//! - **dr**: an event per project every publish interval; accepts acknowledgements from the
//!   members on record ([`record_entitlements`], written by `amicn ami entitle`) and reports,
//!   per event, who acknowledged and how fast.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use amicn_face::client::{Client, TransportUri};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{AmiError, Result};
use crate::events::EventKind;
use crate::key_client::KeyClient;
use crate::keys::HeadEndKeys;
use crate::kms_service::{KmsConfig, KmsService};
use crate::mdms::{MdmsCollector, MdmsConfig};
use crate::meter::{Meter, MeterConfig};
use crate::names::AmiNames;
use crate::net::{connect, now_ms, now_us};
use crate::pki::{Credentials, Trust};
use crate::pricing::{Price, PricingPublisher};
use crate::provision::{load_anchor, load_certificates, load_credentials, load_meter_credentials};
use crate::stats::Latencies;
use crate::store::open_reading_store;
use crate::{DrEvent, DrOperator};

/// Latency samples kept in a metrics snapshot per traffic class.
const SNAPSHOT_SAMPLES: usize = 2_000;

/// The node config file (every field optional; flags override, defaults fill the rest).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `kms`, `mdms`, `pricing`, `dr` or `meter`.
    pub role: Option<String>,
    /// Utility prefix [default: /example-utility].
    pub utility: Option<String>,
    /// The local forwarder (`unix:///path`, `tcp://host:port`) [default: NFD's conventions].
    pub forwarder: Option<String>,
    /// State directory [default: state].
    pub state_dir: Option<PathBuf>,
    /// Keychain directory [default: keychain].
    pub keychain: Option<PathBuf>,
    /// Trust anchor certificate [default: anchor.cert].
    pub anchor: Option<PathBuf>,
    /// KMS: the DR projects the utility runs; DR: projects it sends events to; meter: the
    /// projects a meter asks for at enrolment (the KMS admits only entitled ones).
    pub projects: Option<Vec<String>>,
    /// KMS: key-tree degree [default: 2].
    pub degree: Option<u32>,
    /// KMS: how often staged joins, leaves and moves are committed as one epoch [default: 2s].
    pub rekey_interval: Option<String>,
    /// Meter: reading interval [default: 15m].
    pub reading_interval: Option<String>,
    /// Meter: how often it looks for a new epoch, price and DR event [default: 5s].
    pub sync_interval: Option<String>,
    /// MDMS: collection round interval [default: 60s].
    pub poll_interval: Option<String>,
    /// MDMS, pricing, DR: how often keys are fetched from the KMS [default: 10s].
    pub key_refresh: Option<String>,
    /// Pricing, DR: how often a new price or event is published [default: 60s].
    pub publish_interval: Option<String>,
    /// MDMS: readings older than this are refused [default: 1d].
    pub window: Option<String>,
    /// Meter: readings each meter keeps for the MDMS to catch up [default: 64].
    pub keep_readings: Option<usize>,
    /// Meter: simulate only the first N meters of the keychain.
    pub count: Option<u32>,
    /// Counters snapshot interval [default: 1s].
    pub metrics_interval: Option<String>,
    /// Pricing: tariff id [default: tou].
    pub tariff: Option<String>,
    /// MDMS: readings database, a SQLite file or a `postgres://` URL (default: `readings.db`
    /// in the state directory).
    pub db: Option<String>,
}

impl NodeConfig {
    /// Reads a node config; returns it with the directory its relative paths start from.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text = std::fs::read_to_string(path).map_err(|e| AmiError::State {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let cfg: NodeConfig = toml::from_str(&text)
            .map_err(|e| AmiError::Config(format!("{}: {e}", path.display())))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok((cfg, base))
    }

    /// `self` with every field set in `flags` replaced.
    pub fn overridden_by(mut self, flags: NodeConfig) -> Self {
        // Destructured in full, so that a new field cannot be forgotten here.
        let NodeConfig {
            role,
            utility,
            forwarder,
            state_dir,
            keychain,
            anchor,
            projects,
            degree,
            rekey_interval,
            reading_interval,
            sync_interval,
            poll_interval,
            key_refresh,
            publish_interval,
            window,
            keep_readings,
            count,
            metrics_interval,
            tariff,
            db,
        } = flags;
        macro_rules! take {
            ($($f:ident),*) => { $( if $f.is_some() { self.$f = $f; } )* };
        }
        take!(
            role,
            utility,
            forwarder,
            state_dir,
            keychain,
            anchor,
            projects,
            degree,
            rekey_interval,
            reading_interval,
            sync_interval,
            poll_interval,
            key_refresh,
            publish_interval,
            window,
            keep_readings,
            count,
            metrics_interval,
            tariff,
            db
        );
        self
    }
}

/// Parses `10s`, `2500ms`, `1m`, `2h`, `1d`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 10s or 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86_400.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m, h or d)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A node config with every default applied and every path resolved.
#[derive(Debug, Clone)]
pub struct Node {
    /// Role.
    pub role: String,
    /// Utility names.
    pub names: AmiNames,
    /// The local forwarder.
    pub forwarder: TransportUri,
    /// State directory.
    pub state_dir: PathBuf,
    /// Keychain directory.
    pub keychain: PathBuf,
    /// Trust anchor file.
    pub anchor: PathBuf,
    /// Projects (meaning depends on the role, see [`NodeConfig::projects`]).
    pub projects: Vec<String>,
    /// Key-tree degree.
    pub degree: u32,
    /// Epoch commit interval.
    pub rekey_interval: Duration,
    /// Reading interval.
    pub reading_interval: Duration,
    /// Meter sync interval.
    pub sync_interval: Duration,
    /// MDMS round interval.
    pub poll_interval: Duration,
    /// Key refresh interval.
    pub key_refresh: Duration,
    /// Publish interval of prices and DR events.
    pub publish_interval: Duration,
    /// MDMS acceptance window.
    pub window: Duration,
    /// Readings kept per meter.
    pub keep_readings: usize,
    /// Meters simulated (meter role), `None` = all in the keychain.
    pub count: Option<u32>,
    /// Metrics snapshot interval.
    pub metrics_interval: Duration,
    /// Tariff id.
    pub tariff: String,
    /// MDMS readings database: a SQLite file or a `postgres://` URL.
    pub db: String,
}

impl Node {
    /// Applies defaults and resolves paths against `base`.
    pub fn resolve(c: NodeConfig, base: &Path) -> Result<Self> {
        let dur = |v: &Option<String>, d: &str, what: &str| -> Result<Duration> {
            parse_duration(v.as_deref().unwrap_or(d))
                .map_err(|e| AmiError::Config(format!("{what}: {e}")))
        };
        let path = |v: &Option<PathBuf>, d: &str| -> PathBuf {
            let p = v.clone().unwrap_or_else(|| PathBuf::from(d));
            if p.is_absolute() { p } else { base.join(p) }
        };
        let role = c.role.clone().ok_or_else(|| {
            AmiError::Config("no role given (kms, mdms, pricing, dr, meter)".into())
        })?;
        if !["kms", "mdms", "pricing", "dr", "meter"].contains(&role.as_str()) {
            return Err(AmiError::Config(format!(
                "unknown role {role:?} (kms, mdms, pricing, dr or meter)"
            )));
        }
        let forwarder = match &c.forwarder {
            Some(u) => u
                .parse()
                .map_err(|e| AmiError::Config(format!("forwarder {u:?}: {e}")))?,
            None => amicn_face::client::default_transport()?,
        };
        let state_dir = path(&c.state_dir, "state");
        let db = match &c.db {
            Some(u) if crate::repo::is_postgres_url(u) => u.clone(),
            Some(p) => path(&Some(PathBuf::from(p)), "")
                .to_string_lossy()
                .into_owned(),
            None => state_dir.join("readings.db").to_string_lossy().into_owned(),
        };
        let node = Node {
            names: AmiNames::new(c.utility.as_deref().unwrap_or("/example-utility"))?,
            forwarder,
            state_dir,
            db,
            keychain: path(&c.keychain, "keychain"),
            anchor: path(&c.anchor, "anchor.cert"),
            projects: c.projects.clone().unwrap_or_default(),
            degree: c.degree.unwrap_or(2),
            rekey_interval: dur(&c.rekey_interval, "2s", "rekey_interval")?,
            reading_interval: dur(&c.reading_interval, "15m", "reading_interval")?,
            sync_interval: dur(&c.sync_interval, "5s", "sync_interval")?,
            poll_interval: dur(&c.poll_interval, "60s", "poll_interval")?,
            key_refresh: dur(&c.key_refresh, "10s", "key_refresh")?,
            publish_interval: dur(&c.publish_interval, "60s", "publish_interval")?,
            window: dur(&c.window, "1d", "window")?,
            keep_readings: c.keep_readings.unwrap_or(64).clamp(1, 4096),
            count: c.count,
            metrics_interval: dur(&c.metrics_interval, "1s", "metrics_interval")?,
            tariff: c.tariff.clone().unwrap_or_else(|| "tou".into()),
            role,
        };
        for (what, d) in [
            ("rekey_interval", node.rekey_interval),
            ("reading_interval", node.reading_interval),
            ("sync_interval", node.sync_interval),
            ("poll_interval", node.poll_interval),
            ("key_refresh", node.key_refresh),
            ("publish_interval", node.publish_interval),
            ("metrics_interval", node.metrics_interval),
        ] {
            if d < Duration::from_millis(10) {
                return Err(AmiError::Config(format!("{what} must be at least 10ms")));
            }
        }
        if node.degree < 2 {
            return Err(AmiError::Config("degree must be at least 2".into()));
        }
        Ok(node)
    }
}

/// Writes counters snapshots into a state directory.
#[derive(Debug, Clone)]
pub struct MetricsSink {
    dir: PathBuf,
    role: String,
}

impl MetricsSink {
    /// Snapshots of `role` in `dir`.
    pub fn new(dir: &Path, role: &str) -> Self {
        MetricsSink {
            dir: dir.to_path_buf(),
            role: role.to_string(),
        }
    }

    /// Writes `metrics.prom` (the numeric `counters`) and `metrics.json` (counters plus
    /// `details`), each atomically.
    pub fn write(&self, counters: &BTreeMap<String, f64>, details: Value) -> Result<()> {
        let mut prom = String::new();
        for (k, v) in counters {
            let metric = format!("amicn_{}_{}", self.role, k.replace(['-', '.'], "_"));
            prom.push_str(&format!("# TYPE {metric} gauge\n{metric} {v}\n"));
        }
        amicn_kms::keychain::write_atomic(&self.dir.join("metrics.prom"), prom.as_bytes(), 0o644)?;
        let doc = json!({
            "role": self.role,
            "pid": std::process::id(),
            "at_ms": now_ms(),
            "counters": counters,
            "details": details,
        });
        let text = serde_json::to_vec_pretty(&doc).map_err(|e| AmiError::Config(e.to_string()))?;
        amicn_kms::keychain::write_atomic(&self.dir.join("metrics.json"), &text, 0o644)?;
        Ok(())
    }

    /// Marks the node ready.
    pub fn ready(&self) -> Result<()> {
        let body = format!("{}\n", std::process::id());
        amicn_kms::keychain::write_atomic(&self.dir.join("ready"), body.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// Samples behind the `recent_*` percentiles of a snapshot: latency now, in a long run.
const RECENT_SAMPLES: usize = 500;

fn latency_json(l: &Latencies) -> Value {
    json!({
        "count": l.count(),
        "p50_us": l.quantile_us(0.5),
        "p99_us": l.quantile_us(0.99),
        "recent_p50_us": l.recent_quantile_us(0.5, RECENT_SAMPLES),
        "recent_p99_us": l.recent_quantile_us(0.99, RECENT_SAMPLES),
        "samples_us": l.samples(SNAPSHOT_SAMPLES),
    })
}

fn state_dir(node: &Node) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let d = &node.state_dir;
    let e = |err: std::io::Error| AmiError::State {
        path: d.clone(),
        why: err.to_string(),
    };
    std::fs::create_dir_all(d).map_err(e)?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(e)?;
    let _ = std::fs::remove_file(d.join("ready"));
    Ok(())
}

/// The node's validator: its `trust.toml` (written by `amicn pki` beside the anchor) when there
/// is one, else the built-in AMI policy of the utility.
async fn trust_for(node: &Node, client: &Client) -> Result<Arc<Trust>> {
    let anchor = load_anchor(&node.anchor)?;
    let rules = node.anchor.with_file_name("trust.toml");
    match std::fs::read_to_string(&rules) {
        Ok(text) => {
            let policy = amicn_kms::trust::TrustPolicy::from_toml(&text)
                .map_err(|e| AmiError::Config(format!("{}: {e}", rules.display())))?;
            Trust::with_policy(policy, &anchor, client)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Trust::new(&node.names, &anchor, client)
        }
        Err(e) => Err(AmiError::State {
            path: rules,
            why: e.to_string(),
        }),
    }
}

/// The keys the KMS gives `node`'s role (an `mdms`, `pricing` or `dr` node config), fetched
/// once with a signed key request under the node's credentials and trust anchor.
pub async fn fetch_service_keys(node: &Node, client: &Client) -> Result<Arc<HeadEndKeys>> {
    let role = match node.role.as_str() {
        "mdms" => "mdms",
        "pricing" => "price",
        "dr" => "dr",
        other => {
            return Err(AmiError::Config(format!(
                "a {other} node holds no service keys (use an mdms, pricing or dr node config)"
            )));
        }
    };
    let creds = load_credentials(&node.keychain)?;
    let trust = trust_for(node, client).await?;
    let keys = Arc::new(HeadEndKeys::default());
    let kc = KeyClient::new(
        node.names.clone(),
        role,
        creds.key.clone(),
        trust,
        client,
        keys.clone(),
    );
    kc.refresh().await?;
    Ok(keys)
}

/// The id of the TOU tariff the pricing daemon publishes beside the flat price `tariff` (and
/// that meters with the same `tariff` setting follow through its latest pointer).
pub fn periods_tariff_id(tariff: &str) -> String {
    format!("{tariff}-periods")
}

/// The pricing daemon's TOU tariff, version `version`, valid from a day before `now_s`:
/// off-peak 22:00–07:00, shoulder 07:00–17:00, peak 17:00–22:00 (UTC).
pub fn day_tariff(id: &str, version: u64, now_s: u64) -> crate::tariff::Tariff {
    use crate::tariff::{Period, Tariff, TariffKind};
    let period = |name: &str, from_min, to_min, millicents_per_kwh| Period {
        name: name.into(),
        from_min,
        to_min,
        millicents_per_kwh,
    };
    Tariff {
        tariff: id.to_string(),
        version,
        kind: TariffKind::Tou,
        valid_from_s: now_s.saturating_sub(86_400),
        valid_to_s: None,
        utc_offset_min: 0,
        periods: vec![
            period("off-peak", 1_320, 420, 9_000),
            period("shoulder", 420, 1_020, 15_000),
            period("peak", 1_020, 1_320, 32_000),
        ],
        critical_peak_millicents_per_kwh: None,
        critical_peaks: Vec::new(),
    }
}

/// The DR operator's record of the project sets it entitled (`entitlements.json` in its state
/// directory, written by `amicn ami entitle`): the DR daemon accepts acknowledgements of a
/// project's events from exactly these members.
pub fn entitlements_path(state_dir: &Path) -> PathBuf {
    state_dir.join("entitlements.json")
}

/// Merges `assignments` (meter, its complete project set) into the record in `state_dir`.
pub fn record_entitlements(state_dir: &Path, assignments: &[(u32, Vec<String>)]) -> Result<()> {
    std::fs::create_dir_all(state_dir).map_err(|e| AmiError::State {
        path: state_dir.to_path_buf(),
        why: e.to_string(),
    })?;
    let mut all = load_entitlements(state_dir)?;
    for (m, set) in assignments {
        all.insert(*m, set.clone());
    }
    let text = serde_json::to_vec_pretty(&all).map_err(|e| AmiError::Config(e.to_string()))?;
    amicn_kms::keychain::write_atomic(&entitlements_path(state_dir), &text, 0o600)?;
    Ok(())
}

/// The record [`record_entitlements`] keeps (empty if there is none yet).
pub fn load_entitlements(state_dir: &Path) -> Result<BTreeMap<u32, Vec<String>>> {
    let path = entitlements_path(state_dir);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| AmiError::State {
            path,
            why: format!("damaged: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(AmiError::State {
            path,
            why: e.to_string(),
        }),
    }
}

/// Runs the node until `shutdown` resolves (SIGTERM/SIGINT in the binary), writing a final
/// snapshot. Returns an error (non-zero exit) when the node cannot continue safely.
pub async fn run(node: Node, shutdown: impl Future<Output = ()>) -> Result<()> {
    state_dir(&node)?;
    let client = connect(&node.forwarder).await?;
    let sink = MetricsSink::new(&node.state_dir, &node.role);
    tracing::info!(role = %node.role, forwarder = %node.forwarder, state = %node.state_dir.display(), "starting");
    match node.role.as_str() {
        "kms" => run_kms(&node, &client, &sink, shutdown).await,
        "mdms" => run_mdms(&node, &client, &sink, shutdown).await,
        "pricing" => run_pricing(&node, &client, &sink, shutdown).await,
        "dr" => run_dr(&node, &client, &sink, shutdown).await,
        _ => run_meters(&node, &client, &sink, shutdown).await,
    }
}

/// Calls `snapshot` every `every` until `shutdown`, and once more at the end.
async fn until_shutdown<F>(
    every: Duration,
    shutdown: impl Future<Output = ()>,
    mut tick: impl FnMut() -> std::result::Result<(), AmiError>,
    mut snapshot: F,
) -> Result<()>
where
    F: FnMut() -> Result<()>,
{
    tokio::pin!(shutdown);
    let mut iv = tokio::time::interval(every);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = iv.tick() => {
                if let Err(e) = tick() {
                    let _ = snapshot();
                    return Err(e);
                }
                if let Err(e) = snapshot() {
                    tracing::warn!("metrics snapshot: {e}");
                }
            }
        }
    }
    snapshot()
}

async fn run_kms(
    node: &Node,
    client: &Client,
    sink: &MetricsSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let creds = load_credentials(&node.keychain)?;
    let trust = trust_for(node, client).await?;
    for c in load_certificates(&node.keychain)? {
        trust.add_certificate(c);
    }
    let cfg = KmsConfig {
        degree: node.degree,
        state_db: Some(node.state_dir.join("kms.db")),
        ..KmsConfig::new(node.names.clone(), node.projects.clone())
    };
    let kms = KmsService::start(cfg, creds, trust, client).await?;
    tracing::info!(
        epoch = kms.epoch(),
        members = kms.members().len(),
        "KMS serving"
    );
    sink.ready()?;
    let rekey_every = node.rekey_interval;
    let mut last_commit = Instant::now();
    let k2 = kms.clone();
    let tick = move || {
        if let Some(f) = k2.failure() {
            return Err(AmiError::Config(f));
        }
        k2.flush_replay()?;
        if last_commit.elapsed() >= rekey_every && k2.has_staged() {
            last_commit = Instant::now();
            match k2.commit_epoch("batch") {
                Ok(r) => tracing::info!(
                    epoch = r.epoch,
                    joins = r.joins.len(),
                    departs = r.departs.len(),
                    wraps = r.wraps.len(),
                    "epoch committed"
                ),
                Err(e) => {
                    tracing::error!("commit: {e}");
                    if k2.failure().is_some() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    };
    let every = node.metrics_interval.min(node.rekey_interval);
    let snap = || {
        kms.flush_replay()?;
        let c = kms.counters();
        let mut m = BTreeMap::new();
        m.insert("epoch".to_string(), f64::from(kms.epoch()));
        m.insert("members".to_string(), kms.members().len() as f64);
        m.insert("revoked".to_string(), kms.revoked().len() as f64);
        m.insert("enrolled".to_string(), c.enrolled as f64);
        m.insert("enrol_repeated".to_string(), c.enrol_repeated as f64);
        m.insert(
            "enrol_refused".to_string(),
            c.enrol_refused.values().sum::<u64>() as f64,
        );
        m.insert("commands".to_string(), c.commands as f64);
        m.insert(
            "command_refused".to_string(),
            c.command_refused.values().sum::<u64>() as f64,
        );
        m.insert("key_requests".to_string(), c.key_requests as f64);
        m.insert("epochs_committed".to_string(), c.epochs_committed as f64);
        for (k, v) in kms.publisher().served() {
            m.insert(format!("served_{k}"), v as f64);
        }
        let members = kms.members();
        let entitled: BTreeMap<u32, Vec<String>> = members
            .iter()
            .map(|&id| (id, kms.entitled_key_names(id)))
            .collect();
        sink.write(
            &m,
            json!({
                "counters": c,
                "epochs": kms.epoch_log()?,
                "subgroups": kms.subgroups(),
                "revoked": kms.revoked(),
                "entitled_keys": entitled,
            }),
        )
    };
    until_shutdown(every, shutdown, tick, snap).await
}

async fn run_mdms(
    node: &Node,
    client: &Client,
    sink: &MetricsSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let creds = load_credentials(&node.keychain)?;
    let trust = trust_for(node, client).await?;
    let keys = Arc::new(HeadEndKeys::default());
    let kc = KeyClient::new(
        node.names.clone(),
        "mdms",
        creds.key.clone(),
        trust.clone(),
        client,
        keys.clone(),
    );
    let store = open_reading_store(&node.db)?;
    let cfg = MdmsConfig {
        lifetime: Duration::from_millis(1_000),
        ..MdmsConfig::new(node.names.clone(), node.window)
    };
    let mdms = MdmsCollector::new(cfg, trust, keys.clone(), client, store);
    // Meters push their events (outage, tamper, clock) with a notification the MDMS answers
    // once the event is committed; VEE flags the intervals the outages cover.
    mdms.serve_events(
        Credentials {
            key: creds.key.clone(),
            cert: creds.cert.clone(),
        },
        client,
    )
    .await?;
    if let Err(e) = kc.refresh().await {
        tracing::warn!("first key refresh: {e}");
    }
    let keys_task = tokio::spawn(kc.clone().run(node.key_refresh));
    // Each round starts from the newest revocation list, so a revoked meter's readings are
    // refused within one round of the revocation.
    let poll = {
        let (mdms, kc) = (mdms.clone(), kc.clone());
        let every = node.poll_interval;
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                if let Err(e) = kc.follow_revocations().await {
                    tracing::debug!("revocation list: {e}");
                }
                let _ = mdms.poll_round().await;
                if !mdms.is_running() {
                    break;
                }
                tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
            }
        })
    };
    let vee = Arc::new(std::sync::Mutex::new(VeeView::default()));
    let vee_task = tokio::spawn(run_vee(
        mdms.clone(),
        vee.clone(),
        node.state_dir.clone(),
        node.poll_interval,
        node.window,
    ));
    sink.ready()?;
    let snap = || {
        let c = &mdms.counters;
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("requested", &c.requested),
            ("received", &c.received),
            ("verified", &c.verified),
            ("stored", &c.stored),
            ("missing", &c.missing),
            ("pointers", &c.pointers),
            ("pointers_missing", &c.pointers_missing),
            ("pointers_rejected", &c.pointers_rejected),
            ("key_refreshes", &kc.refreshes),
            ("key_failures", &kc.failures),
        ] {
            m.insert(k.to_string(), v.load(Ordering::Relaxed) as f64);
        }
        m.insert("rows".to_string(), mdms.stored() as f64);
        m.insert(
            "members_known".to_string(),
            keys.active_meters().len() as f64,
        );
        let rejected = c.rejected();
        for (k, v) in &rejected {
            m.insert(format!("rejected_{k}"), *v as f64);
        }
        let vee = vee.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let total = |f: fn(&crate::vee::MeterSummary) -> u64| {
            vee.meters.values().map(f).sum::<u64>() as f64
        };
        m.insert("vee_runs".to_string(), vee.runs as f64);
        m.insert("vee_estimated".to_string(), total(|s| s.estimated));
        m.insert("vee_edited".to_string(), total(|s| s.edited));
        m.insert(
            "vee_flagged".to_string(),
            total(|s| s.zero_flagged + s.outage_flagged),
        );
        m.insert("vee_audit_entries".to_string(), vee.audit_entries as f64);
        let events = c.events();
        m.insert("events".to_string(), events.values().sum::<u64>() as f64);
        for (k, v) in &events {
            m.insert(format!("events_{k}"), *v as f64);
        }
        let events_refused = c.events_refused();
        for (k, v) in &events_refused {
            m.insert(format!("events_refused_{k}"), *v as f64);
        }
        sink.write(
            &m,
            json!({
                "rejected": rejected,
                "reading_fetch_latency": latency_json(&mdms.fetch_latency),
                "event_latency": latency_json(&mdms.event_latency),
                "events_refused": events_refused,
                "vee": vee,
            }),
        )
    };
    let r = until_shutdown(node.metrics_interval, shutdown, || Ok(()), snap).await;
    vee_task.abort();
    mdms.stop();
    keys_task.abort();
    poll.abort();
    r
}

/// The MDMS's latest VEE run, for its metrics.
#[derive(Debug, Clone, Default, Serialize)]
struct VeeView {
    runs: u64,
    interval_us: Option<u64>,
    audit_entries: usize,
    meters: BTreeMap<u32, crate::vee::MeterSummary>,
    last_error: Option<String>,
}

/// Reading intervals a VEE run looks back over (a day of 15-minute readings).
const VEE_INTERVALS: u64 = 96;
/// How far back VEE looks before it knows the reading interval.
const VEE_FIRST_HORIZON_US: u64 = 3_600_000_000;

/// Validates the stored readings every `every` (at least 500 ms): those of the last
/// [`VEE_INTERVALS`] reading intervals inside the acceptance window and older than three
/// rounds (so late arrivals that the collector still catches up on are not estimated as
/// gaps), appending to the audit trail in `dir`.
async fn run_vee(
    mdms: Arc<MdmsCollector>,
    view: Arc<std::sync::Mutex<VeeView>>,
    dir: PathBuf,
    every: Duration,
    window: Duration,
) {
    let mut log = match crate::vee::VeeLog::open(&dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("VEE audit trail: {e}");
            view.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string());
            return;
        }
    };
    let every = every.max(Duration::from_millis(500));
    let window_us = window.as_micros() as u64;
    // How far back a run looks: the last VEE_INTERVALS reading intervals once the interval is
    // known (until then one hour), never more than the acceptance window, so the cost of a run
    // follows the meter population, not how long the MDMS has been storing readings.
    let mut horizon_us = window_us.min(VEE_FIRST_HORIZON_US);
    loop {
        tokio::time::sleep(every).await;
        let now = now_us();
        let to = now.saturating_sub(3 * every.as_micros() as u64);
        let from = to
            .saturating_sub(horizon_us)
            .max(now.saturating_sub(window_us));
        log.forget_before(now.saturating_sub(window_us));
        let m = mdms.clone();
        let rows = match tokio::task::spawn_blocking(move || m.readings_between(from, to)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                view.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string());
                continue;
            }
            Err(_) => continue,
        };
        let Some(iv) = crate::vee::infer_interval(&rows) else {
            continue;
        };
        horizon_us = window_us.min(iv.saturating_mul(VEE_INTERVALS));
        let run = crate::vee::validate_all(
            &crate::vee::VeeConfig::new(iv),
            &rows,
            &mdms.outage_windows(),
        );
        let recorded = log.record(&run);
        let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
        v.runs += 1;
        v.interval_us = Some(iv);
        v.audit_entries = log.recorded();
        v.meters = run.into_iter().map(|(m, r)| (m, r.summary)).collect();
        v.last_error = recorded.err().map(|e| e.to_string());
    }
}

async fn run_pricing(
    node: &Node,
    client: &Client,
    sink: &MetricsSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let creds = load_credentials(&node.keychain)?;
    let trust = trust_for(node, client).await?;
    let keys = Arc::new(HeadEndKeys::default());
    let kc = KeyClient::new(
        node.names.clone(),
        "price",
        creds.key.clone(),
        trust,
        client,
        keys.clone(),
    );
    let freshness = node.publish_interval.min(Duration::from_secs(60));
    let p =
        PricingPublisher::start(node.names.clone(), creds, keys.clone(), client, freshness).await?;
    sink.ready()?;
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tariffs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pub_task = {
        let published = published.clone();
        let tariffs = tariffs.clone();
        let tariff = node.tariff.clone();
        let every = node.publish_interval;
        tokio::spawn(async move {
            let mut last_key = None;
            loop {
                if let Err(e) = kc.refresh().await {
                    tracing::debug!("pricing key refresh: {e}");
                }
                // A new broadcast key (a new epoch) gets a price under it at once.
                let key = keys.root_key().map(|(n, _)| n);
                let due = key.is_some() && key != last_key;
                if due || last_key.is_some() {
                    let version = now_ms();
                    let price = Price {
                        tariff: tariff.clone(),
                        version,
                        millicents_per_kwh: 20_000 + (version / 1000 % 17) * 250,
                        valid_from_s: version / 1000,
                    };
                    match p.publish(&price) {
                        Ok(_) => {
                            published.fetch_add(1, Ordering::Relaxed);
                            last_key = key.clone();
                        }
                        Err(e) => tracing::debug!("price: {e}"),
                    }
                    // The TOU tariff gets a new version under each new broadcast key, so
                    // meters that joined since can open it; its latest pointer tells them.
                    if due {
                        let t = day_tariff(&periods_tariff_id(&tariff), version, version / 1000);
                        match p.publish_tariff(&t) {
                            Ok(_) => {
                                tariffs.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => tracing::debug!("tariff: {e}"),
                        }
                    }
                }
                tokio::time::sleep(if due {
                    Duration::from_millis(50)
                } else {
                    every
                })
                .await;
            }
        })
    };
    let snap = || {
        let mut m = BTreeMap::new();
        m.insert(
            "published".to_string(),
            published.load(Ordering::Relaxed) as f64,
        );
        m.insert(
            "tariff_versions".to_string(),
            tariffs.load(Ordering::Relaxed) as f64,
        );
        sink.write(&m, json!({}))
    };
    let r = until_shutdown(node.metrics_interval, shutdown, || Ok(()), snap).await;
    pub_task.abort();
    r
}

async fn run_dr(
    node: &Node,
    client: &Client,
    sink: &MetricsSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let creds = load_credentials(&node.keychain)?;
    let trust = trust_for(node, client).await?;
    let keys = Arc::new(HeadEndKeys::default());
    let kc = KeyClient::new(
        node.names.clone(),
        "dr",
        creds.key.clone(),
        trust.clone(),
        client,
        keys.clone(),
    );
    let freshness = node.publish_interval.min(Duration::from_secs(60));
    let dr = Arc::new(
        DrOperator::start(
            node.names.clone(),
            creds,
            keys.clone(),
            client,
            &node.projects,
            freshness,
        )
        .await?,
    );
    // Members acknowledge each event with a signed Interest; the operator counts who did.
    dr.serve_acks(trust, client, &node.projects).await?;
    sink.ready()?;
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let recent: Arc<std::sync::Mutex<VecDeque<(String, u64)>>> = Arc::default();
    let task = {
        let (published, recent, dr) = (published.clone(), recent.clone(), dr.clone());
        let projects = node.projects.clone();
        let every = node.publish_interval;
        let state_dir = node.state_dir.clone();
        tokio::spawn(async move {
            let mut last: BTreeMap<String, String> = BTreeMap::new();
            // Consecutive numbers, so members can wait for the next event by name; starting
            // from the clock keeps them above those of an earlier run.
            let mut next_seq = now_ms();
            loop {
                if let Err(e) = kc.refresh().await {
                    tracing::debug!("DR key refresh: {e}");
                }
                match load_entitlements(&state_dir) {
                    Ok(ent) => {
                        for p in &projects {
                            dr.set_members(
                                p,
                                ent.iter().filter(|(_, s)| s.contains(p)).map(|(m, _)| *m),
                            );
                        }
                    }
                    Err(e) => tracing::warn!("DR entitlements: {e}"),
                }
                let mut fresh_key = false;
                for p in &projects {
                    let Some((kn, _)) = keys.project_key(p) else {
                        continue;
                    };
                    let kn = kn.to_string();
                    fresh_key |= last.get(p) != Some(&kn);
                    let seq = next_seq;
                    let ev = DrEvent {
                        project: p.clone(),
                        seq,
                        event_id: format!("{p}-{seq}"),
                        signal: "SIMPLE".into(),
                        level: 1,
                        start_s: now_ms() / 1000 + 300,
                        duration_s: 1800,
                        randomization_s: 120,
                        reduce_w: 500,
                        ..DrEvent::default()
                    };
                    match dr.publish(&ev) {
                        Ok(_) => {
                            published.fetch_add(1, Ordering::Relaxed);
                            last.insert(p.clone(), kn);
                            let mut r = recent.lock().unwrap_or_else(|e| e.into_inner());
                            r.push_back((p.clone(), seq));
                            while r.len() > DR_REPORTS_KEPT {
                                r.pop_front();
                            }
                        }
                        Err(e) => tracing::debug!("DR event: {e}"),
                    }
                }
                next_seq += 1;
                tokio::time::sleep(if fresh_key {
                    Duration::from_millis(50)
                } else {
                    every
                })
                .await;
            }
        })
    };
    let snap = || {
        let reports: Vec<crate::DrEventReport> = recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(p, seq)| dr.report(p, *seq))
            .collect();
        let mut m = BTreeMap::new();
        m.insert(
            "published".to_string(),
            published.load(Ordering::Relaxed) as f64,
        );
        let acked = |r: &crate::DrEventReport| (r.opted_in.len() + r.opted_out.len()) as u64;
        m.insert(
            "acks".to_string(),
            reports.iter().map(acked).sum::<u64>() as f64,
        );
        let refused = dr.refused();
        m.insert(
            "acks_refused".to_string(),
            refused.values().sum::<u64>() as f64,
        );
        for (k, v) in &refused {
            m.insert(format!("acks_refused_{k}"), *v as f64);
        }
        let events: Vec<Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "report": r,
                    "acked": acked(r),
                    "ack_p50_us": crate::DrEventReport::quantile(&r.ack_us, 0.5),
                    "ack_p99_us": crate::DrEventReport::quantile(&r.ack_us, 0.99),
                    "delivery_p99_us": crate::DrEventReport::quantile(&r.delivery_us, 0.99),
                })
            })
            .collect();
        sink.write(&m, json!({ "events": events, "acks_refused": refused }))
    };
    let r = until_shutdown(node.metrics_interval, shutdown, || Ok(()), snap).await;
    task.abort();
    r
}

/// DR events whose acknowledgement reports the DR daemon's snapshots carry.
const DR_REPORTS_KEPT: usize = 16;

/// What one simulated meter reports in its group's snapshot.
#[derive(Debug, Clone, Default, Serialize)]
struct MeterView {
    id: u32,
    enrolled: bool,
    member: bool,
    epoch: u32,
    next_epoch: u32,
    projects: Vec<String>,
    held_keys: Vec<String>,
    readings: u64,
    manifests: u64,
    wraps_fetched: u64,
    rejected_data: u64,
    enrol_refused: u64,
    last_error: Option<String>,
    gave_up: bool,
    /// Supply relay closed.
    connected: bool,
    /// Load limit, W.
    limit_w: Option<u32>,
    /// Signed commands executed, by verb.
    commands: BTreeMap<&'static str, u64>,
    /// Signed commands refused, by kind.
    commands_refused: BTreeMap<&'static str, u64>,
    /// Events published, and confirmed stored by the MDMS.
    events: u64,
    events_confirmed: u64,
    /// Events waiting to be published or confirmed.
    events_pending: usize,
    /// DR events acknowledged (and accepted by the DR operator).
    dr_acks: u64,
    /// TOU tariff: version in force, per-period registers (mWh), bill so far (millicents).
    tariff_version: Option<u64>,
    tariff_registers: BTreeMap<String, u64>,
    bill_millicents: Option<u64>,
}

/// An event a meter still has to report: not published yet (no reading key), or published
/// (sequence number known) and not confirmed by the MDMS.
#[derive(Debug, Clone, Copy)]
struct PendingEvent {
    kind: EventKind,
    clock_step_us: Option<i64>,
    seq: Option<u64>,
}

struct SimMeter {
    meter: Arc<Meter>,
    last_error: std::sync::Mutex<Option<String>>,
    gave_up: std::sync::atomic::AtomicBool,
    events: std::sync::Mutex<VecDeque<PendingEvent>>,
    /// Wakes the meter's loop when an event is raised.
    wake: tokio::sync::Notify,
}

impl SimMeter {
    fn raise(&self, kind: EventKind, clock_step_us: Option<i64>) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(PendingEvent {
                kind,
                clock_step_us,
                seq: None,
            });
        self.wake.notify_one();
    }
}

#[derive(Default)]
struct GroupLatency {
    price: Latencies,
    dr: Latencies,
    rekey: Latencies,
    /// From an event to the MDMS's confirmation.
    event: Latencies,
    /// From a DR event's issue to the operator's answer to the acknowledgement.
    dr_ack: Latencies,
    /// From a tariff version's publication to its adoption.
    tariff: Latencies,
}

/// Where an operator (or a test) drops events for the meters of a group to raise, one per
/// line: `METER KIND [CLOCK_STEP_US]`, KIND one of `last-gasp`, `restoration`, `cover-open`,
/// `magnetic-tamper`, `clock-adjusted`. The daemon takes the file within a fraction of a second
/// and counts lines it cannot use.
pub const INJECT_EVENTS_FILE: &str = "inject-events";

/// Parses one line of [`INJECT_EVENTS_FILE`].
pub fn parse_event_line(line: &str) -> std::result::Result<(u32, EventKind, Option<i64>), String> {
    let mut it = line.split_whitespace();
    let id = it
        .next()
        .and_then(|t| t.parse::<u32>().ok())
        .ok_or_else(|| format!("no meter id in {line:?}"))?;
    let kind = it
        .next()
        .and_then(EventKind::from_label)
        .ok_or_else(|| format!("no known event kind in {line:?}"))?;
    let step = match it.next() {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("bad clock step in {line:?}"))?,
        ),
        None => None,
    };
    if it.next().is_some() {
        return Err(format!("trailing words in {line:?}"));
    }
    if step.is_some() != (kind == EventKind::ClockAdjusted) {
        return Err(format!(
            "a clock step goes with clock-adjusted only: {line:?}"
        ));
    }
    Ok((id, kind, step))
}

async fn run_meters(
    node: &Node,
    client: &Client,
    sink: &MetricsSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut creds = load_meter_credentials(&node.keychain, &node.names)?;
    if let Some(n) = node.count {
        creds.truncate(n as usize);
    }
    if creds.is_empty() {
        return Err(AmiError::Config(format!(
            "keychain {} holds no meter identity",
            node.keychain.display()
        )));
    }
    let trust = trust_for(node, client).await?;
    let mut meters = Vec::with_capacity(creds.len());
    for (id, c) in creds {
        let cfg = MeterConfig {
            reading_interval: node.reading_interval,
            lifetime: Duration::from_millis(1_000),
            keep_readings: node.keep_readings,
            state_dir: Some(node.state_dir.join(format!("meter-{id}"))),
            ..MeterConfig::new(node.names.clone(), id, node.projects.clone())
        };
        let m = Meter::start(cfg, c, trust.clone(), client).await?;
        let sm = Arc::new(SimMeter {
            meter: m,
            last_error: std::sync::Mutex::new(None),
            gave_up: std::sync::atomic::AtomicBool::new(false),
            events: std::sync::Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
        });
        // Back from saved state: the supply was off in between.
        if sm.meter.was_restarted() {
            sm.raise(EventKind::Restoration, None);
        }
        meters.push(sm);
    }
    tracing::info!(meters = meters.len(), "meters registered");
    sink.ready()?;
    let lat = Arc::new(GroupLatency::default());
    let mut tasks = tokio::task::JoinSet::new();
    for sm in &meters {
        tasks.spawn(meter_loop(
            sm.clone(),
            lat.clone(),
            node.sync_interval,
            node.reading_interval,
            node.tariff.clone(),
        ));
    }
    let inject_refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tasks.spawn(take_injected_events(
        node.state_dir.join(INJECT_EVENTS_FILE),
        meters.clone(),
        inject_refused.clone(),
    ));
    let snap = || {
        let views: Vec<MeterView> = meters.iter().map(|s| view(s)).collect();
        let mut m = BTreeMap::new();
        let sum = |f: fn(&MeterView) -> u64| views.iter().map(f).sum::<u64>() as f64;
        m.insert("meters".to_string(), views.len() as f64);
        m.insert("members".to_string(), sum(|v| u64::from(v.member)));
        m.insert("readings".to_string(), sum(|v| v.readings));
        m.insert("manifests".to_string(), sum(|v| v.manifests));
        m.insert("wraps_fetched".to_string(), sum(|v| v.wraps_fetched));
        m.insert("rejected_data".to_string(), sum(|v| v.rejected_data));
        m.insert("enrol_refused".to_string(), sum(|v| v.enrol_refused));
        m.insert("price_received".to_string(), lat.price.count() as f64);
        m.insert("dr_received".to_string(), lat.dr.count() as f64);
        m.insert("disconnected".to_string(), sum(|v| u64::from(!v.connected)));
        m.insert("commands".to_string(), sum(|v| v.commands.values().sum()));
        let mut refused: BTreeMap<&str, u64> = BTreeMap::new();
        for v in &views {
            for (k, n) in &v.commands_refused {
                *refused.entry(k).or_insert(0) += n;
            }
        }
        for (k, n) in refused {
            m.insert(format!("commands_refused_{k}"), n as f64);
        }
        m.insert("events".to_string(), sum(|v| v.events));
        m.insert("events_confirmed".to_string(), sum(|v| v.events_confirmed));
        m.insert("dr_acks".to_string(), sum(|v| v.dr_acks));
        m.insert(
            "tariff_known".to_string(),
            sum(|v| u64::from(v.tariff_version.is_some())),
        );
        m.insert(
            "inject_refused".to_string(),
            inject_refused.load(Ordering::Relaxed) as f64,
        );
        sink.write(
            &m,
            json!({
                "meters": views,
                "price_latency": latency_json(&lat.price),
                "dr_latency": latency_json(&lat.dr),
                "rekey_latency": latency_json(&lat.rekey),
                "event_latency": latency_json(&lat.event),
                "dr_ack_latency": latency_json(&lat.dr_ack),
                "tariff_latency": latency_json(&lat.tariff),
            }),
        )
    };
    let r = until_shutdown(node.metrics_interval, shutdown, || Ok(()), snap).await;
    tasks.abort_all();
    // Going down: each member sends its last gasp (bounded wait for the MDMS's answers).
    let mut gasps = tokio::task::JoinSet::new();
    for sm in meters.iter().filter(|s| s.meter.is_member()) {
        let m = sm.meter.clone();
        gasps.spawn(async move { m.raise_event(EventKind::LastGasp, None).await });
    }
    let gasped = tokio::time::timeout(Duration::from_millis(1_500), async {
        let mut ok = 0u32;
        while let Some(r) = gasps.join_next().await {
            if matches!(r, Ok(Ok(ref o)) if o.status.code == 200) {
                ok += 1;
            }
        }
        ok
    })
    .await;
    tracing::info!(confirmed = ?gasped.ok(), "last gasp sent");
    for sm in &meters {
        let _ = sm.meter.save();
    }
    let _ = snap();
    r
}

/// Takes [`INJECT_EVENTS_FILE`] whenever it appears and hands each line to its meter.
async fn take_injected_events(
    path: PathBuf,
    meters: Vec<Arc<SimMeter>>,
    refused: Arc<std::sync::atomic::AtomicU64>,
) {
    let taken = path.with_extension("taken");
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::fs::rename(&path, &taken).is_err() {
            continue;
        }
        let text = std::fs::read_to_string(&taken).unwrap_or_default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let target = parse_event_line(line).and_then(|(id, kind, step)| {
                meters
                    .iter()
                    .find(|s| s.meter.id() == id)
                    .map(|s| (s, kind, step))
                    .ok_or_else(|| format!("meter {id} is not in this group"))
            });
            match target {
                Ok((s, kind, step)) => s.raise(kind, step),
                Err(why) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{}: {why}", path.display());
                }
            }
        }
    }
}

/// Publishes (once the reading key is there) and reports the meter's pending events, keeping
/// those the MDMS has not confirmed for the next attempt.
async fn report_events(s: &SimMeter, lat: &GroupLatency) {
    let pending: Vec<PendingEvent> = s
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    let m = &s.meter;
    let mut keep = Vec::new();
    for mut p in pending {
        if p.seq.is_none() {
            if !m.is_member() {
                keep.push(p);
                continue;
            }
            let published = m.take_event_seq().and_then(|seq| {
                m.publish_event(&crate::events::MeterEvent {
                    meter: m.id(),
                    seq,
                    kind: p.kind,
                    t_us: now_us(),
                    clock_step_us: p.clock_step_us,
                })
                .map(|_| seq)
            });
            match published {
                Ok(seq) => p.seq = Some(seq),
                Err(e) => {
                    tracing::debug!(meter = m.id(), "event {}: {e}", p.kind.label());
                    keep.push(p);
                    continue;
                }
            }
        }
        let Some(seq) = p.seq else { continue };
        match m.notify_event(seq).await {
            Ok(o) if o.status.code == 200 || o.status.code == 409 => lat.event.record(o.latency),
            Ok(o) => {
                // Refused for good (e.g. out of window): reported, not retried.
                tracing::warn!(
                    meter = m.id(),
                    seq,
                    "event refused: {} {}",
                    o.status.code,
                    o.status.text
                );
            }
            Err(e) => {
                tracing::debug!(meter = m.id(), seq, "event notification: {e}");
                keep.push(p);
            }
        }
    }
    let mut q = s.events.lock().unwrap_or_else(|e| e.into_inner());
    for p in keep.into_iter().rev() {
        q.push_front(p);
    }
}

fn view(s: &SimMeter) -> MeterView {
    let m = &s.meter;
    let c = &m.counters;
    let (tariff, registers) = m.tariff();
    MeterView {
        id: m.id(),
        enrolled: m.is_enrolled(),
        member: m.is_member(),
        epoch: m.epoch(),
        next_epoch: m.next_epoch(),
        projects: m.held_projects(),
        held_keys: m.held_keys(),
        readings: c.readings.load(Ordering::Relaxed),
        manifests: c.manifests.load(Ordering::Relaxed),
        wraps_fetched: c.wraps_fetched.load(Ordering::Relaxed),
        rejected_data: c.rejected_data.load(Ordering::Relaxed),
        enrol_refused: c.enrol_refused.load(Ordering::Relaxed),
        last_error: s
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        gave_up: s.gave_up.load(Ordering::Relaxed),
        connected: m.supply().connected,
        limit_w: m.supply().limit_w,
        commands: m.command_counters().accepted(),
        commands_refused: m.command_counters().refused(),
        events: c.events.load(Ordering::Relaxed),
        events_confirmed: c.events_confirmed.load(Ordering::Relaxed),
        events_pending: s.events.lock().unwrap_or_else(|e| e.into_inner()).len(),
        dr_acks: c.dr_acks.load(Ordering::Relaxed),
        tariff_version: tariff.as_ref().map(|t| t.version),
        bill_millicents: tariff.as_ref().map(|t| registers.bill_millicents(t)),
        tariff_registers: registers.energy_mwh,
    }
}

/// One simulated meter: enrol (with back-off), follow epochs, publish readings on its interval
/// boundaries, and fetch the newest price and DR events.
async fn meter_loop(
    s: Arc<SimMeter>,
    lat: Arc<GroupLatency>,
    sync_every: Duration,
    reading_every: Duration,
    tariff: String,
) {
    let m = &s.meter;
    let note = |e: &AmiError| {
        *s.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    };
    // Spread the meters over one sync interval, as independent meters would be.
    let jitter = |d: Duration| {
        let max = d.as_micros().max(1) as u64;
        Duration::from_micros(rand::rng().random_range(0..max))
    };
    tokio::time::sleep(jitter(sync_every.min(Duration::from_secs(2)))).await;
    let iv = (reading_every.as_micros() as u64).max(1);
    let mut next_reading = (now_us() / iv + 1) * iv;
    let mut next_sync = Instant::now();
    let mut last_price = 0u64;
    let mut last_dr: BTreeMap<String, u64> = BTreeMap::new();
    let mut followers: BTreeMap<String, Follower> = BTreeMap::new();
    let acked: Arc<std::sync::Mutex<BTreeMap<String, u64>>> = Arc::default();
    let ack_turn: Arc<tokio::sync::Mutex<()>> = Arc::default();
    let mut backoff = Duration::from_millis(500);
    let (wall0, mono0) = (now_us() as i64, Instant::now());
    let mut last_drift = 0i64;
    loop {
        if s.gave_up.load(Ordering::Relaxed) {
            return;
        }
        if Instant::now() >= next_sync {
            next_sync = Instant::now() + sync_every + jitter(sync_every / 4);
            if !m.is_enrolled() {
                match m.enrol().await {
                    Ok(_) => backoff = Duration::from_millis(500),
                    Err(e) => {
                        note(&e);
                        // Refusals that no retry can change end the meter's attempts.
                        let msg = e.to_string();
                        if msg.contains("revoked") || msg.contains("not-entitled") {
                            s.gave_up.store(true, Ordering::Relaxed);
                            return;
                        }
                        next_sync = Instant::now() + backoff + jitter(backoff);
                        backoff = (backoff * 2).min(sync_every.max(Duration::from_secs(1)) * 4);
                    }
                }
            } else {
                let t = Instant::now();
                match m.sync_keys(None).await {
                    // Retired or revoked: the meter stops; it keeps serving what it published.
                    Ok(r) if r.departed => {
                        *s.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("departed at epoch {}", r.epoch));
                        s.gave_up.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(r) if r.manifests > 0 => lat.rekey.record(t.elapsed()),
                    Ok(_) => {}
                    Err(e) => note(&e),
                }
                if m.is_member() {
                    if let Ok(p) = m.fetch_latest_price(&tariff).await
                        && p.version > last_price
                    {
                        last_price = p.version;
                        lat.price
                            .record(Duration::from_millis(now_ms().saturating_sub(p.version)));
                    }
                    let t = Instant::now();
                    match m.refresh_tariff(&periods_tariff_id(&tariff)).await {
                        Ok(Some(v)) => lat.tariff.record(Duration::from_millis(
                            now_ms()
                                .saturating_sub(v)
                                .max(t.elapsed().as_millis() as u64),
                        )),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(meter = m.id(), "tariff: {e}"),
                    }
                    // One follower per project held: it waits for the next event by name.
                    let held = m.held_projects();
                    followers.retain(|p, f| held.contains(p) && !f.0.is_finished());
                    for p in held {
                        let after = last_dr.get(&p).copied();
                        if let std::collections::btree_map::Entry::Vacant(v) = followers.entry(p) {
                            let task = tokio::spawn(follow_dr(
                                s.meter.clone(),
                                v.key().clone(),
                                lat.clone(),
                                after,
                                acked.clone(),
                                ack_turn.clone(),
                            ));
                            v.insert(Follower(task));
                        }
                    }
                    for (p, seq) in acked.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        last_dr.insert(p.clone(), *seq);
                    }
                }
            }
        }
        // A step of the wall clock against the monotonic one is a clock adjustment.
        let drift = now_us() as i64 - wall0 - mono0.elapsed().as_micros() as i64;
        if (drift - last_drift).abs() > CLOCK_STEP_US {
            s.raise(EventKind::ClockAdjusted, Some(drift - last_drift));
            last_drift = drift;
        }
        if !s
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            report_events(&s, &lat).await;
        }
        let now = now_us();
        if now >= next_reading {
            // `publish_reading` puts the registers on disk before the reading is served, so a
            // meter that loses power comes back with the register it last published.
            if m.is_member()
                && let Err(e) = m.publish_reading(next_reading)
            {
                note(&e);
            }
            next_reading = (now / iv + 1) * iv;
        }
        let until_reading = Duration::from_micros(next_reading.saturating_sub(now_us()));
        let until_sync = next_sync.saturating_duration_since(Instant::now());
        let nap = until_reading.min(until_sync).max(Duration::from_millis(5));
        let retry_events = !s
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        let nap = if retry_events {
            nap.min(Duration::from_millis(500))
        } else {
            nap
        };
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = s.wake.notified() => {}
        }
    }
}

/// A task ended when its handle is dropped.
struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a member's Interest for the next DR event waits at the DR operator.
const DR_WAIT: Duration = Duration::from_secs(4);

/// Follows `project`'s DR events for meter `m`: learns the newest one (a signed latest
/// lookup), then keeps one Interest out for the next by name, which the DR operator holds
/// until it publishes, and acknowledges each event it gets. `after` is the newest event this
/// meter acknowledged before; `acked` records progress for a follower started later. The
/// meter's followers take `turn` to sign and send, so its acknowledgements reach the operator
/// in the order of their signature times (a later-signed one arriving first would make the
/// earlier look replayed).
async fn follow_dr(
    m: Arc<Meter>,
    project: String,
    lat: Arc<GroupLatency>,
    after: Option<u64>,
    acked: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    turn: Arc<tokio::sync::Mutex<()>>,
) {
    let mut last = after;
    loop {
        let ev = match last {
            None => m.fetch_latest_dr_event(&project).await,
            Some(seq) => match m.await_dr_event(&project, seq + 1, DR_WAIT).await {
                Ok(ev) => Ok(ev),
                // Nothing yet, or the operator moved on (restart, missed event): look again.
                Err(_) => match m.fetch_latest_dr_event(&project).await {
                    Ok(ev) if ev.seq > seq => Ok(ev),
                    Ok(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(e) => Err(e),
                },
            },
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(meter = m.id(), "DR {project}: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if last.is_some_and(|l| ev.seq <= l) {
            continue;
        }
        last = Some(ev.seq);
        let since_issue = || Duration::from_micros(now_us().saturating_sub(ev.issued_us));
        lat.dr.record(since_issue());
        // Opt in (or out) and acknowledge, signed; the DR operator counts.
        let answered = {
            let _turn = turn.lock().await;
            match m.dr_ack(&ev, m.id(), now_us()) {
                Ok((i, wire)) => m.send_dr_ack(&i, wire).await,
                Err(e) => Err(e),
            }
        };
        match answered {
            Ok(st) if st.code == 200 => lat.dr_ack.record(since_issue()),
            Ok(st) => tracing::debug!(meter = m.id(), "DR ack refused: {} {}", st.code, st.text),
            Err(e) => tracing::debug!(meter = m.id(), "DR ack: {e}"),
        }
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(project.clone(), ev.seq);
    }
}

/// A wall-clock step (against the monotonic clock) above this is reported, µs.
const CLOCK_STEP_US: i64 = 1_000_000;

/// Enrols each meter of `creds` once, from fresh state, asking for `projects`; returns each
/// outcome (`Ok(epoch)` or the refusal). What an operator runs to check a meter's standing.
pub async fn probe_enrol(
    node: &Node,
    client: &Client,
    creds: Vec<(u32, Credentials)>,
) -> Result<Vec<(u32, std::result::Result<u32, String>)>> {
    let trust = trust_for(node, client).await?;
    let mut out = Vec::new();
    for (id, c) in creds {
        let cfg = MeterConfig {
            lifetime: Duration::from_millis(2_000),
            ..MeterConfig::new(node.names.clone(), id, node.projects.clone())
        };
        let m = Meter::start(cfg, c, trust.clone(), client).await?;
        out.push((id, m.enrol().await.map_err(|e| e.to_string())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_example_node_config_loads_and_resolves() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("node-") && name.ends_with(".toml")) {
                continue;
            }
            let (mut c, base) = NodeConfig::load(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            // The examples name NFD's socket; resolving must not depend on this machine.
            c.forwarder = Some("unix:///tmp/amicn-example.sock".into());
            Node::resolve(c, &base).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
        assert!(seen >= 5, "{seen} node configs in {}", dir.display());
    }

    #[test]
    fn injected_event_lines() {
        assert_eq!(
            parse_event_line("7 last-gasp").unwrap(),
            (7, EventKind::LastGasp, None)
        );
        assert_eq!(
            parse_event_line(" 3  clock-adjusted -1500000 ").unwrap(),
            (3, EventKind::ClockAdjusted, Some(-1_500_000))
        );
        for bad in [
            "",
            "x cover-open",
            "3 meltdown",
            "3 cover-open 5",
            "3 clock-adjusted",
            "3 clock-adjusted soon",
            "3 last-gasp now",
        ] {
            assert!(parse_event_line(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn entitlements_on_record_merge_per_meter() {
        let dir =
            std::env::temp_dir().join(format!("amicn-ent-{}-{}", std::process::id(), now_us()));
        assert!(load_entitlements(&dir).unwrap().is_empty());
        record_entitlements(&dir, &[(1, vec!["p1".into()]), (2, vec!["p1".into()])]).unwrap();
        record_entitlements(&dir, &[(2, vec![]), (3, vec!["p2".into()])]).unwrap();
        let e = load_entitlements(&dir).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[&1], vec!["p1".to_string()]);
        assert!(e[&2].is_empty());
        assert_eq!(e[&3], vec!["p2".to_string()]);
        std::fs::write(entitlements_path(&dir), b"{").unwrap();
        assert!(load_entitlements(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_day_tariff_is_valid_and_prices_every_hour() {
        let t = day_tariff(&periods_tariff_id("tou"), 5, 1_767_225_600);
        t.validate().unwrap();
        assert_eq!(t.tariff, "tou-periods");
        assert_eq!(
            t.rate_at(1_767_225_600 + 18 * 3_600),
            Some(("peak", 32_000))
        );
        assert_eq!(
            t.rate_at(1_767_225_600 + 3 * 3_600),
            Some(("off-peak", 9_000))
        );
        assert_eq!(
            t.rate_at(1_767_225_600 + 12 * 3_600),
            Some(("shoulder", 15_000))
        );
    }

    #[test]
    fn the_readings_database_defaults_to_the_state_directory_and_takes_a_url() {
        let c = |db: Option<&str>| NodeConfig {
            role: Some("mdms".into()),
            forwarder: Some("unix:///tmp/x.sock".into()),
            state_dir: Some("st".into()),
            db: db.map(String::from),
            ..NodeConfig::default()
        };
        let base = Path::new("/srv/ami");
        assert_eq!(
            Node::resolve(c(None), base).unwrap().db,
            "/srv/ami/st/readings.db"
        );
        assert_eq!(
            Node::resolve(c(Some("r.db")), base).unwrap().db,
            "/srv/ami/r.db"
        );
        let url = "postgres://mdms@db.example/ami";
        assert_eq!(Node::resolve(c(Some(url)), base).unwrap().db, url);
        // A flag given for the database wins over the file's.
        let merged = c(Some("a.db")).overridden_by(NodeConfig {
            db: Some(url.into()),
            ..NodeConfig::default()
        });
        assert_eq!(merged.db.as_deref(), Some(url));
    }
}
