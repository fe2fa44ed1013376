//! The scripted AMI scenario in one process, for fast tests and demonstrations: a KMS, N meters,
//! the MDMS collector, the pricing publisher and the DR operator, each on its own connection to
//! one forwarder, play a fixed script — meters enrol, readings flow, a price and DR events go
//! out, one meter leaves and one is revoked, a meter joins late — and every security property
//! is checked along the way: forward and backward secrecy, revocation, replay and forgery of
//! readings, DR-event reach, rekey cost beside the key-graph formulas, and how much of the key
//! distribution the forwarder's cache absorbed. `amicn demo --in-process` runs it; the product
//! itself is the networked system of [`crate::daemon`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amicn_face::client::{Client, Reply, TransportUri};
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use serde::Serialize;

use crate::{
    AmiError, AmiNames, DrEvent, DrOperator, EpochRecord, KmsConfig, KmsService, Latencies,
    MdmsCollector, MdmsConfig, MemoryReadingStore, Meter, MeterConfig, Pki, Price,
    PricingPublisher, Publisher, ReadingStore, Rejection, Result, RoundReport, SubgroupInfo, Trust,
    connect, label_of, now_ms, now_us, open_reading_store,
};

/// Settings of the in-process scenario (resolved from flags and a scenario file by the caller).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Meters enrolled at the start (one more joins late).
    pub meters: u32,
    /// DR projects p1..pK.
    pub projects: u32,
    /// How long readings flow.
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
    /// Reading interval.
    #[serde(serialize_with = "ser_ms")]
    pub interval: Duration,
    /// Utility prefix.
    pub utility: String,
    /// Key-tree degree.
    pub degree: u32,
    /// SQLite reading store (memory when `None`).
    pub db: Option<PathBuf>,
    /// Random delay before each manifest fetch.
    #[serde(serialize_with = "ser_ms")]
    pub sync_jitter: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// One PASS/FAIL line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// What was observed.
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
struct Percentiles {
    samples: usize,
    p50_us: Option<u64>,
    p90_us: Option<u64>,
    p99_us: Option<u64>,
    max_us: Option<u64>,
}

impl Percentiles {
    fn of(l: &Latencies) -> Self {
        Percentiles {
            samples: l.count(),
            p50_us: l.quantile_us(0.5),
            p90_us: l.quantile_us(0.9),
            p99_us: l.quantile_us(0.99),
            max_us: l.quantile_us(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct EpochReport {
    epoch: u32,
    label: String,
    joins: usize,
    departs: usize,
    wraps_unicast: u64,
    wraps_multicast: u64,
    wraps_broadcast: u64,
    wraps_tree: u64,
    wraps_project: u64,
    wraps_root: u64,
    bytes_wrap_payload: u64,
    bytes_wrap_names: u64,
    bytes_manifest: u64,
    bytes_signature: u64,
    bytes_on_wire: usize,
    formula: Option<String>,
    formula_holds: Option<bool>,
}

#[derive(Debug, Default, Serialize)]
struct ReadingsReport {
    /// Readings meters published on schedule.
    sent: u64,
    /// Reading names the MDMS asked for on schedule.
    requested: u64,
    /// Of those, received (Data came back).
    received: u64,
    /// Of those, signature, policy and chain passed.
    verified: u64,
    /// Of those, decrypted and stored.
    stored: u64,
    /// Requested but never arrived.
    missing: u64,
    /// Received but rejected, by reason.
    rejected: BTreeMap<String, u64>,
    /// Meters with at least one stored reading.
    meters_heard: usize,
    /// Rows in the MDMS store at the end (scheduled plus the deliberate test readings).
    store_rows: u64,
    /// Schedule slots the MDMS skipped because it fell behind (an overloaded host).
    skipped_slots: u64,
}

#[derive(Debug, Default, Serialize)]
struct KeyDistribution {
    /// Wrap fetches made by meters while following rekeys (after the initial enrolment).
    wrap_fetches_by_meters: u64,
    /// Of those, answered by the KMS itself.
    wraps_served_by_kms: u64,
    /// Forwarder Content Store hits while meters followed those rekeys.
    cs_hits: u64,
    /// Manifest fetches by meters, and how many the KMS answered itself.
    manifest_fetches_by_meters: u64,
    manifests_served_by_kms: u64,
}

/// The scenario's report.
#[derive(Debug, Serialize)]
pub struct Report {
    settings: Settings,
    readings: ReadingsReport,
    epochs: Vec<EpochReport>,
    key_distribution: KeyDistribution,
    latency: BTreeMap<String, Percentiles>,
    keys_per_meter: BTreeMap<String, u64>,
    server_keys: u64,
    checks: Vec<Check>,
    pass: bool,
    elapsed_ms: u64,
}

/// Meter `id`'s DR projects: pj when bit j-1 of `id` is set.
fn projects_of(id: u32, projects: &[String]) -> Vec<String> {
    projects
        .iter()
        .enumerate()
        .filter(|(j, _)| (id >> j) & 1 == 1)
        .map(|(_, p)| p.clone())
        .collect()
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

/// Forwarder Content Store hits so far, from NFD's `cs/info` dataset.
async fn cs_hits(c: &Client) -> Result<u64> {
    let mut i = Interest::new(Name::from_uri("/localhost/nfd/cs/info")?);
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    i.lifetime_ms = Some(1000);
    match c.express(&i).await? {
        Reply::Data { data, .. } => {
            let infos = amicn_tlv::mgmt::CsInfo::decode_list(data.content.clone())?;
            Ok(infos.first().and_then(|ci| ci.n_hits).unwrap_or(0))
        }
        Reply::Nack { reason } => Err(AmiError::protocol(
            "/localhost/nfd/cs/info",
            format!("Nacked: {reason:?}"),
        )),
    }
}

/// Runs `f` for every meter concurrently and returns the results in meter order.
async fn each<T, F, Fut>(meters: &[Arc<Meter>], f: F) -> Vec<(u32, T)>
where
    F: Fn(Arc<Meter>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for m in meters {
        let id = m.id();
        let fut = f(m.clone());
        set.spawn(async move { (id, fut.await) });
    }
    let mut out = Vec::with_capacity(meters.len());
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

struct Sync {
    wraps: u64,
    manifests: u64,
    errors: Vec<String>,
}

async fn sync_all(meters: &[Arc<Meter>], epoch: u32, lat: &Arc<Latencies>) -> Sync {
    let lat = lat.clone();
    let rs = each(meters, move |m| {
        let lat = lat.clone();
        async move {
            let t = Instant::now();
            let r = m.sync_keys(Some(epoch)).await;
            lat.record(t.elapsed());
            r
        }
    })
    .await;
    let mut s = Sync {
        wraps: 0,
        manifests: 0,
        errors: Vec::new(),
    };
    for (id, r) in rs {
        match r {
            Ok(rep) => {
                s.wraps += u64::from(rep.wraps_fetched);
                s.manifests += u64::from(rep.manifests);
            }
            Err(e) => s.errors.push(format!("meter {id}: {e}")),
        }
    }
    s
}

fn pick(meters: &[Arc<Meter>], ids: &[u32]) -> Vec<Arc<Meter>> {
    meters
        .iter()
        .filter(|m| ids.contains(&m.id()))
        .cloned()
        .collect()
}

fn short(ids: &BTreeSet<u32>) -> String {
    let v: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("{{{}}}", v.join(","))
}

/// Checks that a DR event reaches exactly the members of its project among `meters`.
async fn dr_reach(meters: &[Arc<Meter>], project: &str, seq: u64, checks: &mut Checks, what: &str) {
    let p = project.to_string();
    let rs = each(meters, move |m| {
        let p = p.clone();
        async move { m.fetch_dr_event(&p, seq).await }
    })
    .await;
    let members: BTreeSet<u32> = meters
        .iter()
        .filter(|m| m.projects().iter().any(|q| q == project))
        .map(|m| m.id())
        .collect();
    let mut got = BTreeSet::new();
    let mut odd = Vec::new();
    for (id, r) in rs {
        match r {
            Ok(ev) if ev.project == project && ev.seq == seq => {
                got.insert(id);
            }
            Ok(_) => odd.push(format!("meter {id}: wrong event content")),
            Err(AmiError::KeyNotHeld { .. }) => {}
            Err(e) => odd.push(format!("meter {id}: {e}")),
        }
    }
    checks.add(
        format!("{what}: DR event {project}/seq={seq} decrypted by exactly the project's members"),
        got == members && odd.is_empty() && !members.is_empty(),
        format!(
            "members {} decrypted {} {}",
            short(&members),
            short(&got),
            odd.join("; ")
        ),
    );
}

/// How many keys of `meters` open `data` (trying every key each one holds).
fn keys_opening(meters: &[Arc<Meter>], data: &Data) -> usize {
    meters
        .iter()
        .map(|m| m.keys_that_open(data).unwrap_or(0))
        .sum()
}

fn leave_formula(
    rec: &EpochRecord,
    departed: &[(u32, Vec<String>)],
    degree: u32,
) -> (String, bool) {
    let height = |set: &[SubgroupInfo], label: &str| {
        set.iter()
            .find(|s| s.label == label)
            .map(|s| u64::from(s.height))
    };
    let mut tree_bound = 0u64;
    let mut lost: BTreeSet<&str> = BTreeSet::new();
    for (_, projects) in departed {
        let h = height(&rec.before, &label_of(projects)).unwrap_or(0);
        tree_bound += (u64::from(degree) * h).saturating_sub(1);
        lost.extend(projects.iter().map(String::as_str));
    }
    let live: Vec<&SubgroupInfo> = rec.after.iter().filter(|s| s.members > 0).collect();
    let m_p = |p: &str| {
        live.iter()
            .filter(|s| s.projects.iter().any(|q| q == p))
            .count() as u64
    };
    let project_expected: u64 = lost.iter().map(|p| m_p(p)).sum();
    let root_expected = live.len() as u64;
    let s = &rec.stats;
    let holds = s.tree_wraps <= tree_bound
        && s.project_wraps == project_expected
        && s.root_wraps == root_expected;
    (
        format!(
            "tree ≤ Σ(d·H−1) = {tree_bound} (measured {}; equal only for full trees), project = Σ m_p = {project_expected} ({}), root = M = {root_expected} ({})",
            s.tree_wraps, s.project_wraps, s.root_wraps
        ),
        holds,
    )
}

fn join_formula(rec: &EpochRecord, projects: &[String]) -> (String, bool) {
    let h = rec
        .after
        .iter()
        .find(|s| s.label == label_of(projects))
        .map(|s| u64::from(s.height))
        .unwrap_or(0);
    let s = &rec.stats;
    let p = projects.len() as u64;
    // LKH+: the path ratchets; only the joiner needs wraps — one per level of its path (the
    // first under its user key), one per project key and one for the broadcast key.
    let holds =
        s.tree_wraps == h && s.unicast_wraps == 1 && s.project_wraps == p && s.root_wraps == 1;
    (
        format!(
            "LKH+ join: tree = H = {h} ({}), unicast = 1 ({}), project = |P_j| = {p} ({}), root = 1 ({})",
            s.tree_wraps, s.unicast_wraps, s.project_wraps, s.root_wraps
        ),
        holds,
    )
}

fn epoch_report(rec: &EpochRecord, formula: Option<(String, bool)>) -> EpochReport {
    let s = &rec.stats;
    EpochReport {
        epoch: rec.epoch,
        label: rec.label.clone(),
        joins: rec.joins.len(),
        departs: rec.departs.len(),
        wraps_unicast: s.unicast_wraps,
        wraps_multicast: s.multicast_wraps,
        wraps_broadcast: s.broadcast_wraps,
        wraps_tree: s.tree_wraps,
        wraps_project: s.project_wraps,
        wraps_root: s.root_wraps,
        bytes_wrap_payload: s.wrap_payload_bytes,
        bytes_wrap_names: s.wrap_name_bytes,
        bytes_manifest: s.manifest_bytes,
        bytes_signature: s.signature_bytes,
        bytes_on_wire: rec.manifest_wire_bytes + rec.wraps_wire_bytes,
        formula_holds: formula.as_ref().map(|f| f.1),
        formula: formula.map(|f| f.0),
    }
}

/// Waits until `cond` holds, checking every `step`, for at most 10 s plus 20 steps.
async fn wait_for(cond: impl Fn() -> bool, step: Duration) {
    let deadline = Instant::now() + Duration::from_secs(10) + step * 20;
    while !cond() && Instant::now() < deadline {
        tokio::time::sleep(step / 4).await;
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

#[allow(clippy::too_many_lines)]
/// Plays the scenario against the forwarder listening on the Unix socket `socket`.
pub async fn run(s: &Settings, socket: &Path) -> Result<Report> {
    let started = Instant::now();
    let uri = TransportUri::Unix(socket.to_path_buf());
    let names = AmiNames::new(&s.utility)?;
    let pki = Pki::new(&names)?;
    let projects: Vec<String> = (1..=s.projects).map(|j| format!("p{j}")).collect();
    let mut checks = Checks(Vec::new());
    let sync_lat = Arc::new(Latencies::new());
    // Readings published for the attack checks, not on the schedule.
    let mut extra_readings = 0u64;

    // Head-end roles.
    let kms_client = connect(&uri).await?;
    let kms_trust = Trust::new(&names, pki.anchor(), &kms_client)?;
    let kms_cfg = KmsConfig {
        degree: s.degree,
        ..KmsConfig::new(names.clone(), projects.clone())
    };
    let kms = KmsService::start(kms_cfg, pki.issue(&names.kms())?, kms_trust, &kms_client).await?;
    let keys = kms.head_end_keys();
    let fresh = s.interval * 4;
    let price_client = connect(&uri).await?;
    let pricing = PricingPublisher::start(
        names.clone(),
        pki.issue(&names.price_prefix())?,
        keys.clone(),
        &price_client,
        fresh,
    )
    .await?;
    let dr_client = connect(&uri).await?;
    let dr = DrOperator::start(
        names.clone(),
        pki.issue(&names.role("dr"))?,
        keys.clone(),
        &dr_client,
        &projects,
        fresh,
    )
    .await?;
    let mdms_client = connect(&uri).await?;
    let store: Box<dyn ReadingStore> = match &s.db {
        Some(p) => open_reading_store(&p.to_string_lossy())?,
        None => Box::new(MemoryReadingStore::default()),
    };
    let window = (s.interval * 8).max(Duration::from_secs(10));
    let mdms = MdmsCollector::new(
        MdmsConfig {
            retries: 3,
            ..MdmsConfig::new(names.clone(), window)
        },
        Trust::new(&names, pki.anchor(), &mdms_client)?,
        keys.clone(),
        &mdms_client,
        store,
    );
    let orch = connect(&uri).await?;

    // Meters 1..=N enrol now; N+1 joins late with the leaver's projects.
    let n = s.meters;
    let leaver = 1u32;
    let revoked = 3u32;
    let late = n + 1;
    let mut all = Vec::new();
    // The DR operator's entitlements: the meters enrol into exactly these projects.
    let assignments: Vec<(u32, Vec<String>)> = (1..=late)
        .map(|id| {
            let p = if id == late { leaver } else { id };
            (id, projects_of(p, &projects))
        })
        .collect();
    kms.entitle(&assignments, &names.role("dr").to_string())?;
    for id in 1..=late {
        let client = connect(&uri).await?;
        let p = if id == late {
            projects_of(leaver, &projects)
        } else {
            projects_of(id, &projects)
        };
        let cfg = MeterConfig {
            reading_interval: s.interval,
            sync_jitter: s.sync_jitter,
            ..MeterConfig::new(names.clone(), id, p)
        };
        let trust = Trust::new(&names, pki.anchor(), &client)?;
        all.push(Meter::start(cfg, pki.issue(&names.meter(id))?, trust, &client).await?);
    }
    let initial: Vec<Arc<Meter>> = all.iter().filter(|m| m.id() <= n).cloned().collect();
    let late_meter = pick(&all, &[late]);

    // 1. Enrolment: signed Interests, X25519 + HKDF, one batch epoch.
    let enrolled = each(&initial, |m| async move { m.enrol().await }).await;
    let enrol_errors: Vec<String> = enrolled
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("meter {id}: {e}")))
        .collect();
    let rec0 = kms.commit_epoch("initial enrolment")?;
    let sync0 = sync_all(&initial, rec0.epoch, &sync_lat).await;
    let mut entitled_ok = true;
    let mut keys_per_meter = BTreeMap::new();
    for m in &initial {
        let held = m.held_keys().len() as u64;
        let expect = kms.member_key_count(m.id()).unwrap_or(0);
        entitled_ok &= held == expect && held > 0;
        keys_per_meter.entry(label_of(m.projects())).or_insert(held);
    }
    checks.add(
        "enrolment: every meter enrolled and holds exactly its path, project and broadcast keys",
        enrol_errors.is_empty() && sync0.errors.is_empty() && entitled_ok && rec0.joins.len() == n as usize,
        format!(
            "{} meters placed in epoch {}; keys per meter by subgroup {:?} (= log_d|A| + 1 + Nsub + 1) {} {}",
            rec0.joins.len(),
            rec0.epoch,
            keys_per_meter,
            enrol_errors.join("; "),
            sync0.errors.join("; ")
        ),
    );
    let mut epochs = vec![epoch_report(&rec0, None)];

    // 2. Readings flow for the whole run.
    let iv = s.interval.as_micros() as u64;
    let start_us = now_us().div_ceil(iv) * iv + iv;
    let t0 = Instant::now();
    let until = t0 + s.duration;
    // Readings and collection run until stopped explicitly at the end (on a slow host the
    // scripted steps may outlast the nominal duration); this bound is only a safety net.
    let hard_stop = until + s.duration * 10 + Duration::from_secs(60);
    let mut reading_tasks = Vec::new();
    for m in &all {
        reading_tasks.push(tokio::spawn(m.clone().run_readings(start_us, hard_stop)));
    }
    let mdms_task = tokio::spawn(mdms.clone().run(start_us, s.interval, hard_stop));
    let at = |frac: f64| t0 + s.duration.mul_f64(frac);

    // 3. A price broadcast and one DR event per project.
    sleep_until(at(0.15)).await;
    let price = |v: u64| Price {
        tariff: "flat".into(),
        version: v,
        millicents_per_kwh: 21_000 + v * 500,
        valid_from_s: now_ms() / 1000,
    };
    let event = |p: &str, seq: u64| DrEvent {
        project: p.into(),
        seq,
        start_s: now_ms() / 1000 + 60,
        duration_s: 900,
        reduce_w: 500,
        ..DrEvent::default()
    };
    let (price1, _) = pricing.publish(&price(1))?;
    let lat = Arc::new(Latencies::new());
    let l2 = lat.clone();
    let got = each(&initial, move |m| {
        let l2 = l2.clone();
        async move {
            let t = Instant::now();
            let r = m.fetch_price("flat", 1).await;
            l2.record(t.elapsed());
            r
        }
    })
    .await;
    let ok1 = got
        .iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_ok_and(|p| p.version == 1 && p.tariff == "flat")
        })
        .count();
    checks.add(
        "broadcast: every member decrypts price v1 (root key)",
        ok1 == initial.len(),
        format!("{ok1}/{} meters decrypted {price1}", initial.len()),
    );
    let mut dr_names = Vec::new();
    for p in &projects {
        dr_names.push(dr.publish(&event(p, 1))?.0);
        dr_reach(&initial, p, 1, &mut checks, "multicast").await;
    }

    // 4. One meter leaves, one is revoked: one batch rekey committed at once. (First make sure
    // the MDMS has had readings from both, so "heard from every meter" does not depend on how
    // fast this host is.)
    sleep_until(at(0.35)).await;
    wait_for(
        || mdms.counters.stored_from(leaver) > 0 && mdms.counters.stored_from(revoked) > 0,
        s.interval,
    )
    .await;
    let departed = [
        (leaver, projects_of(leaver, &projects)),
        (revoked, projects_of(revoked, &projects)),
    ];
    kms.stage_leave(leaver)?;
    let cs_a = cs_hits(&orch).await.unwrap_or(0);
    let served_a = kms.publisher().served();
    // Neither departed meter is stopped: the leaver stops once the manifest tells it it left,
    // the revoked one (an adversary) keeps signing readings that the MDMS no longer asks for.
    let rec1 = kms.revoke(revoked, "leave + revoke")?;
    let remaining: Vec<Arc<Meter>> = initial
        .iter()
        .filter(|m| m.id() != leaver && m.id() != revoked)
        .cloned()
        .collect();
    let sync1 = sync_all(&remaining, rec1.epoch, &sync_lat).await;
    let cs_b = cs_hits(&orch).await.unwrap_or(0);
    let served_b = kms.publisher().served();
    let gone = pick(&all, &[leaver, revoked]);
    // The departed keep every key they had (an adversary would): none opens any new wrap.
    // (Tried after the measurement above so that their fetches do not count as key distribution.)
    let mut opened_by_gone = 0;
    for m in &gone {
        opened_by_gone += m.wraps_opened_with_held_keys(&rec1.wrap_uris).await?;
    }
    // Control for the test above: the same routine run by a remaining meter does open wraps.
    let control = match remaining.first() {
        Some(m) => m.wraps_opened_with_held_keys(&rec1.wrap_uris).await?,
        None => 0,
    };
    checks.add(
        "forward secrecy: departed meters open none of the new wraps with any key they kept",
        opened_by_gone == 0 && control > 0 && sync1.errors.is_empty(),
        format!(
            "{} wraps tried with every retained key of meters {leaver} (left) and {revoked} (revoked): {opened_by_gone} opened; control meter opened {control} {}",
            rec1.wrap_uris.len(),
            sync1.errors.join("; ")
        ),
    );
    let f1 = leave_formula(&rec1, &departed, s.degree);
    checks.add(
        "rekey cost of leave + revoke matches the key-graph formulas",
        f1.1,
        f1.0.clone(),
    );
    epochs.push(epoch_report(&rec1, Some(f1)));

    let (price2, _) = pricing.publish(&price(2))?;
    let got2 = each(
        &remaining,
        |m| async move { m.fetch_price("flat", 2).await },
    )
    .await;
    let ok2 = got2
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.version == 2))
        .count();
    let d2 = orch_fetch(&orch, &price2).await?;
    let gone_open = keys_opening(&gone, &d2);
    let gone_dec = gone.iter().filter(|m| m.decrypt(&d2).is_ok()).count();
    checks.add(
        "after rekey: remaining members decrypt price v2, departed meters cannot",
        ok2 == remaining.len() && gone_open == 0 && gone_dec == 0,
        format!("{ok2}/{} remaining decrypted; departed: {gone_dec} decrypted, {gone_open} retained keys open it", remaining.len()),
    );
    let mut gone_dr_open = 0;
    for p in &projects {
        let (name, _) = dr.publish(&event(p, 2))?;
        dr_names.push(name.clone());
        dr_reach(&remaining, p, 2, &mut checks, "after rekey").await;
        gone_dr_open += keys_opening(&gone, &orch_fetch(&orch, &name).await?);
    }
    checks.add(
        "after rekey: departed meters open no DR event of the new epoch",
        gone_dr_open == 0,
        format!("{gone_dr_open} retained keys opened a new DR event"),
    );
    // The leaver, following the manifest honestly, learns it has left; the revoked meter
    // may not enrol again; a reading it still signs is refused by the MDMS.
    let leaver_sync = match pick(&all, &[leaver]).first() {
        Some(m) => m
            .sync_keys(Some(rec1.epoch))
            .await
            .map(|r| r.departed)
            .unwrap_or(false),
        None => false,
    };
    checks.add(
        "leave: the leaver's member state drops every key on the manifest",
        leaver_sync,
        format!("departed flag = {leaver_sync}"),
    );
    let rv = pick(&all, &[revoked]);
    let mut revoked_reading = String::from("no reading");
    let mut revoked_refused = false;
    let mut reenrol = String::from("not tried");
    let mut reenrol_refused = false;
    if let Some(m) = rv.first() {
        let r = m.publish_reading(now_us())?;
        extra_readings += 1;
        let d = deliver(&mdms, names.reading(revoked, r.t_us)).await;
        revoked_refused = matches!(d, Err(Some(Rejection::Revoked)));
        revoked_reading = verdict(&d);
        match m.enrol().await {
            Err(AmiError::EnrolRefused { why, .. }) => {
                reenrol_refused = true;
                reenrol = why;
            }
            Err(e) => reenrol = e.to_string(),
            Ok(e) => reenrol = format!("accepted for epoch {e}"),
        }
    }
    checks.add(
        "revocation: the MDMS refuses readings signed by the revoked meter",
        revoked_refused,
        revoked_reading,
    );
    checks.add(
        "revocation: the revoked meter cannot enrol again",
        reenrol_refused,
        reenrol,
    );

    // 5. A meter joins late: it gets the current keys only.
    sleep_until(at(0.55)).await;
    let late_enrol = match late_meter.first() {
        Some(m) => m.enrol().await.map_err(|e| e.to_string()),
        None => Err("no late meter".into()),
    };
    let cs_c = cs_hits(&orch).await.unwrap_or(0);
    let served_c = kms.publisher().served();
    let rec2 = kms.commit_epoch("late join")?;
    let (sync_old, sync_late) = tokio::join!(
        sync_all(&remaining, rec2.epoch, &sync_lat),
        sync_all(&late_meter, rec2.epoch, &sync_lat)
    );
    let cs_d = cs_hits(&orch).await.unwrap_or(0);
    let served_d = kms.publisher().served();
    let late_projects = projects_of(leaver, &projects);
    let f2 = join_formula(&rec2, &late_projects);
    checks.add(
        "late join: LKH+ ratchet, existing members fetch no wraps and the cost matches the formula",
        late_enrol.is_ok()
            && sync_old.wraps == 0
            && sync_old.errors.is_empty()
            && sync_late.errors.is_empty()
            && f2.1,
        format!(
            "existing members fetched {} wraps; joiner fetched {}; {} {:?} {} {}",
            sync_old.wraps,
            sync_late.wraps,
            f2.0,
            late_enrol,
            sync_old.errors.join("; "),
            sync_late.errors.join("; ")
        ),
    );
    epochs.push(epoch_report(&rec2, Some(f2)));
    let (price3, _) = pricing.publish(&price(3))?;
    let mut now_members = remaining.clone();
    now_members.extend(late_meter.iter().cloned());
    let got3 = each(
        &now_members,
        |m| async move { m.fetch_price("flat", 3).await },
    )
    .await;
    let ok3 = got3
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.version == 3))
        .count();
    checks.add(
        "after join: every member, the joiner included, decrypts price v3",
        ok3 == now_members.len(),
        format!("{ok3}/{} decrypted {price3}", now_members.len()),
    );
    let mut earlier = vec![price1.clone(), price2.clone()];
    earlier.extend(dr_names.iter().cloned());
    let mut late_open = 0;
    for name in &earlier {
        late_open += keys_opening(&late_meter, &orch_fetch(&orch, name).await?);
    }
    checks.add(
        "backward secrecy: the late joiner opens no price or DR event of earlier epochs",
        late_open == 0 && !late_meter.is_empty(),
        format!(
            "{} earlier objects tried with every key the joiner holds: {late_open} opened",
            earlier.len()
        ),
    );
    for p in &projects {
        dr.publish(&event(p, 3))?;
        dr_reach(&now_members, p, 3, &mut checks, "after join").await;
    }

    // 6. Attacks on readings.
    sleep_until(at(0.75)).await;
    let victim = remaining
        .iter()
        .find(|m| m.id() == 2)
        .cloned()
        .or_else(|| remaining.first().cloned());
    if let Some(v) = &victim {
        let vid = v.id();
        // Replay: the same reading delivered twice.
        let r = v.publish_reading(now_us())?;
        extra_readings += 1;
        let first = deliver(&mdms, names.reading(vid, r.t_us)).await;
        let again = deliver(&mdms, names.reading(vid, r.t_us)).await;
        checks.add(
            "replay: a reading delivered twice is stored once",
            first.is_ok() && matches!(again, Err(Some(Rejection::Duplicate))),
            format!("first: {}, second: {}", verdict(&first), verdict(&again)),
        );
        // A reading stamped far outside the window.
        let old_t = now_us().saturating_sub(window.as_micros() as u64 * 10);
        v.publish_reading(old_t)?;
        extra_readings += 1;
        let old = deliver(&mdms, names.reading(vid, old_t)).await;
        checks.add(
            "replay: a reading stamped outside the MDMS window is refused",
            matches!(old, Err(Some(Rejection::OutOfWindow { .. }))),
            verdict(&old),
        );
        // Forgery: another certified meter signs a reading under the victim's name and
        // registers that exact name with Capture, so the forwarder routes the MDMS's Interest
        // to it alone (NDN does not authorise prefix registrations from local apps).
        let rogue_id = late + 100;
        let rogue_client = connect(&uri).await?;
        let rogue = pki.issue(&names.meter(rogue_id))?;
        let rogue_pub = Publisher::new(&rogue_client, rogue.key.clone(), None);
        rogue_pub.put_wire(rogue.cert.to_wire())?;
        rogue_pub.serve(names.meter(rogue_id)).await?;
        let forged_t = now_us();
        let forged_name = names.reading(vid, forged_t);
        let mut fd = Data::new(forged_name.clone(), Bytes::from_static(b"forged"));
        rogue_pub.put_wire(rogue.key.sign_data(&mut fd)?)?;
        rogue_pub.serve_captured(forged_name.clone()).await?;
        let forged = deliver(&mdms, forged_name).await;
        checks.add(
            "integrity: a reading for meter X signed by another meter's key is refused (hijacked route)",
            matches!(forged, Err(Some(Rejection::Untrusted(_)))),
            verdict(&forged),
        );
        // Tampering: one flipped content bit in a genuine reading.
        let tt = now_us();
        v.publish_reading(tt)?;
        extra_readings += 1;
        let mut d = orch_fetch(&orch, &names.reading(vid, tt)).await?;
        let mut content = d.content.to_vec();
        if let Some(b) = content.last_mut() {
            *b ^= 0x01;
        }
        d.content = Bytes::from(content);
        d.clear_wire();
        let tampered = Data::decode(d.encode())?;
        let tam = mdms.ingest(&tampered).await.map_err(Some);
        checks.add(
            "integrity: a reading with one flipped bit is refused (handed to the collector directly)",
            matches!(tam, Err(Some(Rejection::Untrusted(_)))),
            verdict(&tam),
        );
        // Format: a genuine meter seals and signs a plaintext that is not a version-1 reading
        // (the bare 12-byte energy and power pair of the first format).
        let ft = now_us();
        let mut bare = r.energy_wh.to_be_bytes().to_vec();
        bare.extend_from_slice(&r.power_w.to_be_bytes());
        v.publish_plaintext(ft, &bare)?;
        extra_readings += 1;
        let unformatted = deliver(&mdms, names.reading(vid, ft)).await;
        checks.add(
            "format: a signed, sealed plaintext that is not a version-1 reading is refused as malformed",
            matches!(unformatted, Err(Some(Rejection::Malformed(_)))),
            verdict(&unformatted),
        );
    }

    // 7. Wind down and account: let the collector take the last slot of the run, stop it, then
    // stop the meters (in that order, so it never asks for a reading nobody will publish).
    sleep_until(until + s.interval).await;
    wait_for(|| mdms.counters.stored_from(late) > 0, s.interval).await;
    mdms.stop();
    let rounds: Vec<RoundReport> =
        match tokio::time::timeout(s.interval * 4 + Duration::from_secs(10), mdms_task).await {
            Ok(Ok(r)) => r,
            _ => Vec::new(),
        };
    for m in &all {
        m.stop_readings();
    }
    for t in reading_tasks {
        t.abort();
    }
    let mut rd = ReadingsReport::default();
    let mut heard = BTreeSet::new();
    for r in &rounds {
        rd.requested += r.requested as u64;
        rd.stored += r.stored.len() as u64;
        rd.missing += r.missing.len() as u64;
        for (_, rej) in &r.rejected {
            *rd.rejected.entry(rej.kind().to_string()).or_insert(0) += 1;
        }
        heard.extend(r.stored.iter().map(|x| x.meter));
    }
    rd.received = rd.requested - rd.missing;
    let rejected_total: u64 = rd.rejected.values().sum();
    rd.verified = rd.received
        - rd.rejected
            .iter()
            .filter(|(k, _)| k.as_str() == "untrusted")
            .map(|(_, v)| *v)
            .sum::<u64>();
    rd.sent = all
        .iter()
        .map(|m| {
            m.counters
                .readings
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum::<u64>()
        - extra_readings;
    rd.meters_heard = heard.len();
    rd.store_rows = mdms.stored();
    rd.skipped_slots = mdms
        .counters
        .skipped_slots
        .load(std::sync::atomic::Ordering::Relaxed);
    let expected_heard: BTreeSet<u32> = all.iter().map(|m| m.id()).collect();
    // Each meter's active import register, in the order of its stored intervals.
    let mut registers: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for r in &rounds {
        for x in &r.stored {
            registers
                .entry(x.meter)
                .or_default()
                .push((x.t_us, x.energy_wh));
        }
    }
    let mut backwards = 0usize;
    for v in registers.values_mut() {
        v.sort_unstable();
        backwards += v.windows(2).filter(|w| w[1].1 < w[0].1).count();
    }
    checks.add(
        "readings: every reading the MDMS requested arrived, verified, decrypted and was stored",
        rd.requested > 0 && rd.stored == rd.requested && rd.missing == 0 && rejected_total == 0,
        format!(
            "requested {} received {} stored {} missing {} rejected {:?}",
            rd.requested, rd.received, rd.stored, rd.missing, rd.rejected
        ),
    );
    checks.add(
        "readings: the MDMS heard from every meter that was ever a member",
        heard.len() == expected_heard.len(),
        format!("heard {} of {} meters", heard.len(), expected_heard.len()),
    );
    checks.add(
        "readings: no meter's active import energy register (1-0:1.8.0) runs backwards between stored intervals",
        !registers.is_empty() && backwards == 0,
        format!("{backwards} decreases over {} meters", registers.len()),
    );

    let kd = KeyDistribution {
        wrap_fetches_by_meters: sync1.wraps + sync_old.wraps + sync_late.wraps,
        wraps_served_by_kms: delta(&served_a, &served_b, "wrap")
            + delta(&served_c, &served_d, "wrap"),
        cs_hits: cs_b.saturating_sub(cs_a) + cs_d.saturating_sub(cs_c),
        manifest_fetches_by_meters: sync1.manifests + sync_old.manifests + sync_late.manifests,
        manifests_served_by_kms: delta(&served_a, &served_b, "manifest")
            + delta(&served_c, &served_d, "manifest"),
    };
    let mut latency = BTreeMap::new();
    latency.insert(
        "reading_fetch (MDMS)".to_string(),
        Percentiles::of(&mdms.fetch_latency),
    );
    latency.insert(
        "key_sync (per meter, per rekey)".to_string(),
        Percentiles::of(&sync_lat),
    );
    latency.insert(
        "price_fetch (verify + decrypt)".to_string(),
        Percentiles::of(&lat),
    );
    let pass = checks.0.iter().all(|c| c.pass);
    Ok(Report {
        settings: s.clone(),
        readings: rd,
        epochs,
        key_distribution: kd,
        latency,
        keys_per_meter,
        server_keys: kms.server_keys(),
        checks: checks.0,
        pass,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn delta(a: &HashMap<&'static str, u64>, b: &HashMap<&'static str, u64>, k: &str) -> u64 {
    b.get(k)
        .copied()
        .unwrap_or(0)
        .saturating_sub(a.get(k).copied().unwrap_or(0))
}

/// What happened to one reading handed to the MDMS: stored, refused (with the reason), or
/// never delivered (`Err(None)`; the fetch failure is logged in the verdict text).
type Delivery = std::result::Result<(), Option<Rejection>>;

/// Fetches one reading through the forwarder and lets the MDMS judge it.
async fn deliver(mdms: &MdmsCollector, name: Name) -> Delivery {
    match mdms.fetch_and_ingest(name.clone()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(rej)) => Err(Some(rej)),
        Err(e) => {
            tracing::warn!("{name} was not delivered: {e}");
            eprintln!("amicn demo: {name} was not delivered: {e}");
            Err(None)
        }
    }
}

fn verdict<T>(r: &std::result::Result<T, Option<Rejection>>) -> String {
    match r {
        Ok(_) => "stored".into(),
        Err(Some(e)) => format!("refused ({e})"),
        Err(None) => "not delivered (fetch failed)".into(),
    }
}

/// Fetches a Data through the forwarder as an outside observer (no verification).
async fn orch_fetch(c: &Client, name: &Name) -> Result<Data> {
    let mut i = Interest::new(name.clone());
    i.lifetime_ms = Some(1000);
    for _ in 0..3 {
        i.nonce = Some(rand::random());
        if let Ok(Reply::Data { data, .. }) = c.express(&i).await {
            return Ok(data);
        }
    }
    Err(AmiError::protocol(name, "no Data"))
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn us(v: Option<u64>) -> String {
    match v {
        Some(v) if v >= 10_000 => format!("{:.1} ms", v as f64 / 1000.0),
        Some(v) => format!("{v} µs"),
        None => "-".into(),
    }
}

impl Report {
    /// Whether every check passed.
    pub fn pass(&self) -> bool {
        self.pass
    }

    /// The PASS/FAIL lines.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let r = self;
        let mut out = String::new();
        let s = &r.settings;
        let _ = writeln!(
            out,
            "amicn demo: {} meters (+1 late), {} DR projects, tree degree {}, {} ms readings for {:.1} s under {}",
            s.meters,
            s.projects,
            s.degree,
            s.interval.as_millis(),
            s.duration.as_secs_f64(),
            s.utility
        );
        let rd = &r.readings;
        let _ = writeln!(out);
        let _ = writeln!(out, "Readings (unicast, user key, Ed25519 per reading)");
        let _ = writeln!(
            out,
            "  sent {}  requested {}  received {}  verified {}  stored {}  missing {}  rejected {:?}  meters heard {}",
            rd.sent,
            rd.requested,
            rd.received,
            rd.verified,
            rd.stored,
            rd.missing,
            rd.rejected,
            rd.meters_heard
        );
        if rd.skipped_slots > 0 {
            let _ = writeln!(
                out,
                "  (the MDMS fell behind and skipped {} slots: host overloaded)",
                rd.skipped_slots
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Rekey cost per epoch (wraps of 72 B payload; one signed manifest per epoch)"
        );
        let _ = writeln!(
            out,
            "  {:>5}  {:<18} {:>5} {:>5} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>8}",
            "epoch",
            "step",
            "join",
            "left",
            "uni",
            "multi",
            "bcast",
            "tree",
            "proj",
            "root",
            "bytes"
        );
        for e in &r.epochs {
            let _ = writeln!(
                out,
                "  {:>5}  {:<18} {:>5} {:>5} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>8}",
                e.epoch,
                e.label,
                e.joins,
                e.departs,
                e.wraps_unicast,
                e.wraps_multicast,
                e.wraps_broadcast,
                e.wraps_tree,
                e.wraps_project,
                e.wraps_root,
                e.bytes_on_wire
            );
            if let Some(f) = &e.formula {
                let _ = writeln!(out, "         formula: {f}");
            }
        }
        let _ = writeln!(
            out,
            "  keys per meter by subgroup {:?}; keys at the KMS {}",
            r.keys_per_meter, r.server_keys
        );
        let k = &r.key_distribution;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Key distribution through the forwarder (rekeys after the initial enrolment)"
        );
        let by_fwd = k
            .wrap_fetches_by_meters
            .saturating_sub(k.wraps_served_by_kms);
        let m_fwd = k
            .manifest_fetches_by_meters
            .saturating_sub(k.manifests_served_by_kms);
        let _ = writeln!(
            out,
            "  wraps:     meters fetched {:>5}, the KMS answered {:>5}, the forwarder {:>5} ({:.0} % of the demand)",
            k.wrap_fetches_by_meters,
            k.wraps_served_by_kms,
            by_fwd,
            pct(by_fwd, k.wrap_fetches_by_meters)
        );
        let _ = writeln!(
            out,
            "  manifests: meters fetched {:>5}, the KMS answered {:>5}, the forwarder {:>5} ({:.0} % of the demand)",
            k.manifest_fetches_by_meters,
            k.manifests_served_by_kms,
            m_fwd,
            pct(m_fwd, k.manifest_fetches_by_meters)
        );
        let _ = writeln!(
            out,
            "  Content Store hits while meters followed these rekeys: {} (the forwarder's other answers came from PIT aggregation)",
            k.cs_hits
        );
        let _ = writeln!(
            out,
            "  without in-network caching (IP unicast pull) the KMS would answer all {} fetches",
            k.wrap_fetches_by_meters + k.manifest_fetches_by_meters
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Latency");
        for (name, p) in &r.latency {
            let _ = writeln!(
                out,
                "  {:<34} n={:<5} p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
                name,
                p.samples,
                us(p.p50_us),
                us(p.p90_us),
                us(p.p99_us),
                us(p.max_us)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Security checks");
        for c in &r.checks {
            let _ = writeln!(
                out,
                "  {}  {}",
                if c.pass { "PASS" } else { "FAIL" },
                c.name
            );
            if !c.pass || c.detail.len() < 160 {
                let _ = writeln!(out, "        {}", c.detail);
            }
        }
        let failed = r.checks.iter().filter(|c| !c.pass).count();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}: {} of {} checks passed in {:.1} s",
            if failed == 0 { "PASS" } else { "FAIL" },
            r.checks.len() - failed,
            r.checks.len(),
            r.elapsed_ms as f64 / 1000.0
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn project_assignment_follows_the_bits() {
        let p: Vec<String> = vec!["p1".into(), "p2".into()];
        assert!(projects_of(4, &p).is_empty());
        assert_eq!(projects_of(1, &p), vec!["p1"]);
        assert_eq!(projects_of(2, &p), vec!["p2"]);
        assert_eq!(projects_of(3, &p), vec!["p1", "p2"]);
        assert_eq!(label_of(&projects_of(3, &p)), "p1+p2");
        assert_eq!(label_of(&[]), "base");
    }
}
