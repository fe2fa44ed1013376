//! Grid operations end to end on a running forwarder mesh: meter events to the MDMS, TOU/CPP
//! tariff updates to the meters, and a DR event with its acknowledgements, each measured and
//! judged with PASS/FAIL checks that fail when the behaviour is wrong (a refused packet that
//! was stored, a member that did not acknowledge, a non-member that did, a tariff version a
//! meter missed).
//!
//! [`run`] provisions its own small deployment under its own utility prefix (trust anchor, KMS,
//! MDMS, pricing, DR operator and meters, each role on its own forwarder connection: head-end
//! roles on `head`, meters on `edge`), so it can run beside another deployment on the same
//! mesh; `amicn demo` runs it on its head-end and concentrator forwarders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amicn_face::client::{Client, TransportUri};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::events::{EventKind, MeterEvent};
use crate::store::SqliteReadingStore;
use crate::tariff::{CRITICAL_PEAK, CriticalPeak, Period, Tariff, TariffKind};
use crate::vee::{VeeConfig, validate_meter};
use crate::{
    AmiNames, Credentials, DrEvent, DrEventReport, DrOperator, KmsConfig, KmsService,
    MdmsCollector, MdmsConfig, Meter, MeterConfig, Pki, PricingPublisher, Trust, connect, now_us,
};

/// The DR project of the run.
const PROJECT: &str = "dr1";
/// The tariff of the run.
const TARIFF: &str = "tou-res";

/// What to run.
#[derive(Debug, Clone)]
pub struct GridOpsSettings {
    /// Utility prefix of this deployment (e.g. `/example-utility/field`).
    pub utility: String,
    /// Forwarder of the head-end roles.
    pub head: TransportUri,
    /// Forwarder of the meters.
    pub edge: TransportUri,
    /// Project members that take part in DR events.
    pub opted_in: u32,
    /// Project members that opt out.
    pub opted_out: u32,
    /// Meters in no project.
    pub outsiders: u32,
    /// DR events sent.
    pub dr_events: u32,
    /// Where the MDMS database goes.
    pub state_dir: PathBuf,
}

/// One PASS/FAIL line.
#[derive(Debug, Clone, Serialize)]
pub struct GridCheck {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// What was measured.
    pub detail: String,
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct GridOpsReport {
    /// The checks.
    pub checks: Vec<GridCheck>,
    /// Latency samples per operation, µs.
    pub latency_us: BTreeMap<String, Vec<u64>>,
    /// Counts per operation.
    pub summary: Value,
}

fn copy(c: &Credentials) -> Credentials {
    Credentials {
        key: c.key.clone(),
        cert: c.cert.clone(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank quantile of `v` (sorted here).
fn q(v: &[u64], p: f64) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    DrEventReport::quantile(&s, p)
}

struct Deployment {
    names: AmiNames,
    pki: Pki,
    kms: Arc<KmsService>,
    meters: Vec<Arc<Meter>>,
    /// Connections kept open for the head-end roles.
    _clients: Vec<Client>,
}

async fn deploy(s: &GridOpsSettings) -> Result<Deployment> {
    let names = AmiNames::new(&s.utility)?;
    let pki = Pki::new(&names)?;
    let kc = connect(&s.head).await?;
    let kms = KmsService::start(
        KmsConfig::new(names.clone(), vec![PROJECT.into()]),
        pki.issue(&names.kms())?,
        Trust::new(&names, pki.anchor(), &kc)?,
        &kc,
    )
    .await?;
    let members = s.opted_in + s.opted_out;
    let n = members + s.outsiders;
    let entitled: Vec<(u32, Vec<String>)> =
        (1..=members).map(|id| (id, vec![PROJECT.into()])).collect();
    if !entitled.is_empty() {
        kms.entitle(&entitled, &format!("{}/ami/dr", names.prefix_str()))?;
    }
    let mut meters = Vec::new();
    for id in 1..=n {
        let c = connect(&s.edge).await?;
        let projects = if id <= members {
            vec![PROJECT.to_string()]
        } else {
            Vec::new()
        };
        let cfg = MeterConfig {
            dr_opt_in: id <= s.opted_in,
            reading_interval: Duration::from_secs(1),
            lifetime: Duration::from_millis(1500),
            state_dir: Some(s.state_dir.join(format!("meter-{id}"))),
            ..MeterConfig::new(names.clone(), id, projects)
        };
        let trust = Trust::new(&names, pki.anchor(), &c)?;
        let m = Meter::start(cfg, pki.issue(&names.meter(id))?, trust, &c).await?;
        m.enrol().await?;
        meters.push(m);
    }
    let rec = kms.commit_epoch("enrol")?;
    for m in &meters {
        m.sync_keys(Some(rec.epoch)).await?;
    }
    Ok(Deployment {
        names,
        pki,
        kms,
        meters,
        _clients: vec![kc],
    })
}

/// Runs the three operations and judges them (see the module documentation).
pub async fn run(s: &GridOpsSettings) -> Result<GridOpsReport> {
    std::fs::create_dir_all(&s.state_dir).map_err(|e| crate::AmiError::State {
        path: s.state_dir.clone(),
        why: e.to_string(),
    })?;
    let d = deploy(s).await?;
    let mut checks = Vec::new();
    let mut add = |name: &str, pass: bool, detail: String| {
        checks.push(GridCheck {
            name: name.to_string(),
            pass,
            detail,
        })
    };
    let mut latency: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut summary = serde_json::Map::new();
    let names = &d.names;
    let n = d.meters.len();

    // 1. Events: every meter loses and regains its supply; three raise tamper and clock events.
    let mc = connect(&s.head).await?;
    let mdms_creds = d.pki.issue(&names.role("mdms"))?;
    let mdms = MdmsCollector::new(
        MdmsConfig::new(names.clone(), Duration::from_secs(120)),
        Trust::new(names, d.pki.anchor(), &mc)?,
        d.kms.head_end_keys(),
        &mc,
        Box::new(SqliteReadingStore::open(s.state_dir.join("mdms.db"))?),
    );
    mdms.serve_events(copy(&mdms_creds), &mc).await?;
    let mut round_trips = Vec::new();
    let mut not_stored = Vec::new();
    let extra = [
        EventKind::CoverOpen,
        EventKind::MagneticTamper,
        EventKind::ClockAdjusted,
    ];
    for (k, m) in d.meters.iter().enumerate() {
        let mut kinds = vec![EventKind::LastGasp, EventKind::Restoration];
        if let Some(x) = extra.get(k) {
            kinds.push(*x);
        }
        for kind in kinds {
            let step = (kind == EventKind::ClockAdjusted).then_some(-1_500_000);
            match m.raise_event(kind, step).await {
                Ok(o) if o.status.code == 200 => round_trips.push(ms(o.latency)),
                Ok(o) => not_stored.push(format!(
                    "meter {} {}: {}",
                    m.id(),
                    kind.label(),
                    o.status.text
                )),
                Err(e) => not_stored.push(format!("meter {} {}: {e}", m.id(), kind.label())),
            }
            if kind == EventKind::LastGasp {
                // The outage lasts a little while.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let expected_events = 2 * n + extra.len().min(n);
    let by_kind = mdms.counters.events();
    add(
        "meter events: every last gasp, restoration, tamper alarm and clock adjustment is committed at the MDMS as it happens",
        not_stored.is_empty()
            && mdms.events().len() == expected_events
            && by_kind.get("last-gasp") == Some(&(n as u64))
            && by_kind.get("restoration") == Some(&(n as u64)),
        format!(
            "{} of {expected_events} stored ({by_kind:?}); event → MDMS commit p50 {:?} µs, p99 {:?} µs; {}",
            mdms.events().len(),
            mdms.event_latency.quantile_us(0.5),
            mdms.event_latency.quantile_us(0.99),
            if not_stored.is_empty() {
                "none refused".to_string()
            } else {
                not_stored.join("; ")
            }
        ),
    );
    latency.insert(
        "meter event (to MDMS commit)".into(),
        mdms.event_latency.samples(10_000),
    );
    latency.insert(
        "meter event (notification round trip)".into(),
        round_trips.clone(),
    );

    // What the MDMS must refuse: a replayed notification, meter 1's event claiming to be
    // meter 2's, one stamped before the window.
    let m1 = &d.meters[0];
    let stored_before = mdms.events().len();
    let replay = m1.notify_event(1).await;
    let wrong = async {
        let seq = m1.take_event_seq()?;
        m1.publish_event(&MeterEvent {
            meter: 2,
            seq,
            kind: EventKind::CoverOpen,
            t_us: now_us(),
            clock_step_us: None,
        })?;
        m1.notify_event(seq).await
    }
    .await;
    let stale = async {
        let seq = m1.take_event_seq()?;
        m1.publish_event(&MeterEvent {
            meter: 1,
            seq,
            kind: EventKind::Restoration,
            t_us: now_us().saturating_sub(600_000_000),
            clock_step_us: None,
        })?;
        m1.notify_event(seq).await
    }
    .await;
    let code = |r: &Result<crate::events::EventOutcome>| r.as_ref().map(|o| o.status.code).ok();
    let refused = mdms.counters.events_refused();
    add(
        "meter events: the MDMS refuses a replayed, a misaddressed and a stale event and stores none of them",
        code(&replay) == Some(409)
            && code(&wrong) == Some(404)
            && code(&stale) == Some(422)
            && mdms.events().len() == stored_before,
        format!(
            "answers {:?}/{:?}/{:?}; refused by kind {refused:?}",
            code(&replay),
            code(&wrong),
            code(&stale)
        ),
    );

    // The outage shows in VEE: each meter's readings of the interval before its last gasp, the
    // one it falls in and the one after, collected by the MDMS's normal round.
    let iv = 1_000_000u64;
    let windows = mdms.outage_windows();
    let slot = |id: u32| {
        let a = windows.get(&id).and_then(|w| w.first()).map_or(0, |w| w.0);
        a - a % iv
    };
    let newest = d.meters.iter().map(|m| slot(m.id())).max().unwrap_or(0) + iv;
    tokio::time::sleep(Duration::from_micros(
        newest.saturating_sub(now_us()) + 50_000,
    ))
    .await;
    for m in &d.meters {
        let s0 = slot(m.id());
        if s0 < iv {
            continue;
        }
        for t in [s0 - iv, s0, s0 + iv] {
            if let Err(e) = m.publish_reading(t) {
                tracing::warn!("meter {}: reading at {t}: {e}", m.id());
            }
        }
    }
    let round = mdms.poll_round().await;
    let mut flagged_meters = 0;
    let mut wrongly_flagged = 0;
    for m in &d.meters {
        let id = m.id();
        let rs = mdms.readings_between(0, u64::MAX).unwrap_or_default();
        let w = windows.get(&id).cloned().unwrap_or_default();
        let vee = validate_meter(&VeeConfig::new(iv), id, &rs, &w);
        let out: Vec<u64> = vee
            .intervals
            .iter()
            .filter(|i| i.rules.contains(&"outage"))
            .map(|i| i.end_us)
            .collect();
        // Only intervals that overlap the window may be flagged.
        let (a, b) = w.first().copied().unwrap_or((u64::MAX, u64::MAX));
        wrongly_flagged += out.iter().filter(|&&e| !(e > a && e - iv < b)).count();
        if !out.is_empty() {
            flagged_meters += 1;
        }
    }
    add(
        "outage windows: each meter's last gasp and restoration make one window, and VEE flags the intervals inside it (only those)",
        windows.len() == n
            && windows.values().all(|w| w.len() == 1 && w[0].1 != u64::MAX)
            && flagged_meters == n
            && wrongly_flagged == 0,
        format!(
            "{} meters with windows, {flagged_meters} with flagged intervals, {wrongly_flagged} flagged outside a window; {} readings collected",
            windows.len(),
            round.stored.len()
        ),
    );
    summary.insert(
        "events".into(),
        json!({
            "stored": mdms.events().len(),
            "by_kind": by_kind,
            "refused": refused,
            "outage_windows": windows.len(),
            "to_commit_p50_us": mdms.event_latency.quantile_us(0.5),
            "to_commit_p99_us": mdms.event_latency.quantile_us(0.99),
            "round_trip_p50_us": q(&round_trips, 0.5),
            "round_trip_p99_us": q(&round_trips, 0.99),
        }),
    );

    // 2. Tariffs: a TOU version, then a CPP version with a critical peak now.
    let pc = connect(&s.head).await?;
    let pricing = PricingPublisher::start(
        names.clone(),
        d.pki.issue(&names.price_prefix())?,
        d.kms.head_end_keys(),
        &pc,
        Duration::from_secs(300),
    )
    .await?;
    let now_s = now_us() / 1_000_000;
    let p = |name: &str, from_min, to_min, rate| Period {
        name: name.into(),
        from_min,
        to_min,
        millicents_per_kwh: rate,
    };
    let mut tariff = Tariff {
        tariff: TARIFF.into(),
        version: 1,
        kind: TariffKind::Tou,
        valid_from_s: now_s - 3_600,
        valid_to_s: Some(now_s + 30 * 86_400),
        utc_offset_min: 0,
        periods: vec![
            p("off-peak", 1_320, 420, 900),
            p("day", 420, 1_020, 1_500),
            p("peak", 1_020, 1_320, 3_200),
        ],
        critical_peak_millicents_per_kwh: None,
        critical_peaks: Vec::new(),
    };
    let mut learn = Vec::new();
    let mut adopted = [0usize; 2];
    let mut consistent = 0;
    for (round, v) in [1u64, 2].into_iter().enumerate() {
        if v == 2 {
            tariff.version = 2;
            tariff.kind = TariffKind::Cpp;
            tariff.critical_peak_millicents_per_kwh = Some(9_000);
            tariff.critical_peaks = vec![CriticalPeak {
                from_s: now_s - 600,
                to_s: now_s + 3_600,
            }];
            // Meters ask again once the previous pointer's freshness has run out.
            tokio::time::sleep(crate::tariff::POINTER_FRESHNESS + Duration::from_millis(100)).await;
        }
        let published = Instant::now();
        pricing.publish_tariff(&tariff)?;
        let mut tasks = tokio::task::JoinSet::new();
        for m in &d.meters {
            let m = m.clone();
            tasks.spawn(async move {
                let r = m.refresh_tariff(TARIFF).await;
                (r, published.elapsed())
            });
        }
        while let Some(j) = tasks.join_next().await {
            if let Ok((Ok(Some(got)), took)) = j
                && got == v
            {
                adopted[round] += 1;
                learn.push(ms(took));
            }
        }
        // One interval under the version: its energy lands in the registers.
        for m in &d.meters {
            let before = m.tariff().1.energy_mwh.values().sum::<u64>();
            m.capture(now_us());
            let after = m.tariff().1.energy_mwh.values().sum::<u64>();
            if after > before {
                consistent += 1;
            }
        }
    }
    let in_cpp = d
        .meters
        .iter()
        .filter(|m| {
            m.tariff()
                .1
                .energy_mwh
                .get(CRITICAL_PEAK)
                .is_some_and(|&e| e > 0)
        })
        .count();
    let again = futures_again(&d.meters).await;
    add(
        "tariffs: every meter learns v1 then v2 from the signed latest pointer, fetches each version once, and bills the critical peak",
        adopted == [n, n] && again == n && consistent == 2 * n && in_cpp == n,
        format!(
            "adopted v1 by {}/{n}, v2 by {}/{n}; {again}/{n} saw nothing new on a third check; critical-peak register used by {in_cpp}; publish → adopted p50 {:?} µs, p99 {:?} µs",
            adopted[0],
            adopted[1],
            q(&learn, 0.5),
            q(&learn, 0.99)
        ),
    );
    latency.insert("tariff update (publish to adopted)".into(), learn.clone());
    summary.insert(
        "tariffs".into(),
        json!({
            "versions": 2,
            "adopted": adopted,
            "registers_meter_1": d.meters[0].tariff().1.energy_mwh,
            "bill_millicents_meter_1": d.meters[0].tariff().0.map(|t| d.meters[0].tariff().1.bill_millicents(&t)),
            "learn_p50_us": q(&learn, 0.5),
            "learn_p99_us": q(&learn, 0.99),
        }),
    );

    // 3. DR: members follow the project; every event must be acknowledged by exactly them.
    let dc = connect(&s.head).await?;
    let projects = vec![PROJECT.to_string()];
    let dr = DrOperator::start(
        names.clone(),
        d.pki.issue(&names.role("dr"))?,
        d.kms.head_end_keys(),
        &dc,
        &projects,
        Duration::from_secs(30),
    )
    .await?;
    let members: Vec<u32> = (1..=s.opted_in + s.opted_out).collect();
    let opted_in: Vec<u32> = (1..=s.opted_in).collect();
    let opted_out: Vec<u32> = (s.opted_in + 1..=s.opted_in + s.opted_out).collect();
    dr.set_members(PROJECT, members.iter().copied());
    dr.serve_acks(Trust::new(names, d.pki.anchor(), &dc)?, &dc, &projects)
        .await?;
    let until = Instant::now() + Duration::from_secs(4 + 2 * u64::from(s.dr_events));
    let mut followers = Vec::new();
    for m in d.meters.iter().filter(|m| members.contains(&m.id())) {
        followers.push(tokio::spawn(m.clone().follow_dr(PROJECT.into(), 1, until)));
    }
    // Every member's Interest for event 1 is out before it is published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reports = Vec::new();
    let mut event = DrEvent {
        project: PROJECT.into(),
        signal: "SIMPLE".into(),
        level: 2,
        start_s: now_s + 120,
        duration_s: 1_800,
        randomization_s: 300,
        reduce_w: 800,
        ..DrEvent::default()
    };
    for seq in 1..=u64::from(s.dr_events) {
        event.seq = seq;
        event.event_id = format!("{PROJECT}-evt-{seq}");
        event.issued_us = 0;
        dr.publish(&event)?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if dr.report(PROJECT, seq).is_some_and(|r| r.silent.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(r) = dr.report(PROJECT, seq) {
            reports.push(r);
        }
        // Members re-express their Interest for the next event before it goes out.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for f in followers {
        f.abort();
    }
    // What the operator must refuse: an outsider's ack, a member acking for another, a replay.
    let probe = DrEvent {
        seq: 1,
        event_id: format!("{PROJECT}-evt-1"),
        ..event.clone()
    };
    let mut probes = BTreeMap::new();
    if let Some(outsider) = d.meters.iter().find(|m| !members.contains(&m.id())) {
        let r = match outsider.dr_ack(&probe, outsider.id(), now_us()) {
            Ok((i, w)) => outsider.send_dr_ack(&i, w).await.map(|s| s.code).ok(),
            Err(_) => None,
        };
        probes.insert("non-member", r);
    }
    if members.len() >= 2 {
        let m2 = &d.meters[1];
        let r = match m2.dr_ack(&probe, 1, now_us()) {
            Ok((i, w)) => m2.send_dr_ack(&i, w).await.map(|s| s.code).ok(),
            Err(_) => None,
        };
        probes.insert("wrong signer", r);
        if let Ok((i, w)) = m2.dr_ack(&probe, 2, now_us()) {
            let _ = m2.send_dr_ack(&i, w.clone()).await;
            probes.insert("replay", m2.send_dr_ack(&i, w).await.map(|s| s.code).ok());
        }
    }
    let exact = reports.len() == s.dr_events as usize
        && reports
            .iter()
            .all(|r| r.opted_in == opted_in && r.opted_out == opted_out && r.silent.is_empty());
    let after = dr.report(PROJECT, 1);
    let unchanged = after
        .as_ref()
        .is_some_and(|r| r.opted_in == opted_in && r.opted_out == opted_out);
    let refused = dr.refused();
    let delivery: Vec<u64> = reports.iter().flat_map(|r| r.delivery_us.clone()).collect();
    let acks: Vec<u64> = reports.iter().flat_map(|r| r.ack_us.clone()).collect();
    let per_event: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{}: in {:?} out {:?} silent {:?}, ack p50 {:?} p99 {:?} max {:?} µs",
                r.event_id,
                r.opted_in,
                r.opted_out,
                r.silent,
                DrEventReport::quantile(&r.ack_us, 0.5),
                DrEventReport::quantile(&r.ack_us, 0.99),
                r.ack_us.last()
            )
        })
        .collect();
    add(
        "DR: every event is acknowledged by exactly the project's members, opted in and opted out as configured",
        exact,
        per_event.join("; "),
    );
    add(
        "DR: events reach every project member within 500 ms of publication",
        !delivery.is_empty()
            && delivery.len() == reports.len() * members.len()
            && delivery.iter().all(|&u| u < 500_000),
        format!(
            "{} receipts; publish → receipt p50 {:?} µs, p99 {:?} µs, max {:?} µs; publish → ack p99 {:?} µs",
            delivery.len(),
            q(&delivery, 0.5),
            q(&delivery, 0.99),
            delivery.iter().max(),
            q(&acks, 0.99)
        ),
    );
    add(
        "DR: an outsider's ack, a member acknowledging for another and a replayed ack are refused and change nothing",
        probes.get("non-member") == Some(&Some(403))
            && probes.get("wrong signer") == Some(&Some(403))
            && probes.get("replay") == Some(&Some(403))
            && refused.get("non-member") == Some(&1)
            && refused.get("signer") == Some(&1)
            && refused.get("replay") == Some(&1)
            && unchanged,
        format!("answers {probes:?}; refused by kind {refused:?}"),
    );
    latency.insert("DR event (publish to member)".into(), delivery.clone());
    latency.insert("DR ack (publish to ack)".into(), acks.clone());
    summary.insert(
        "dr".into(),
        json!({
            "events": reports,
            "refused": refused,
            "held_interests_answered": dr.delivered_held(),
            "delivery_p50_us": q(&delivery, 0.5),
            "delivery_p99_us": q(&delivery, 0.99),
            "delivery_max_us": delivery.iter().max(),
            "ack_p50_us": q(&acks, 0.5),
            "ack_p99_us": q(&acks, 0.99),
            "ack_max_us": acks.iter().max(),
        }),
    );
    drop((mc, pc, dc));
    Ok(GridOpsReport {
        checks,
        latency_us: latency,
        summary: Value::Object(summary),
    })
}

/// How many meters find nothing new on one more pointer check.
async fn futures_again(meters: &[Arc<Meter>]) -> usize {
    let mut n = 0;
    for m in meters {
        if matches!(m.refresh_tariff(TARIFF).await, Ok(None)) {
            n += 1;
        }
    }
    n
}

impl GridOpsReport {
    /// Whether every check passed.
    pub fn pass(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}
