//! Meter operations through a real forwarder: on-demand reads, remote connect / disconnect and
//! load limits, meter events to the MDMS, and every refusal (wrong signer, replay, another
//! meter's command or event, out of window).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use amicn_ami::events::{EventKind, MeterEvent};
use amicn_ami::reading::{Flags, Obis};
use amicn_ami::store::{ReadingStore, SqliteReadingStore, StoredReading};
use amicn_ami::tariff::{CRITICAL_PEAK, CriticalPeak, Period, Tariff, TariffKind};
use amicn_ami::{
    AmiNames, CommandOutcome, Credentials, DrEvent, DrOperator, KmsConfig, KmsService,
    MdmsCollector, MdmsConfig, Meter, MeterCommander, MeterConfig, MeterOp, Pki, PricingPublisher,
    Publisher, Supply, Trust, connect, now_us,
};
use amicn_face::client::TransportUri;
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use amicn_tlv::Data;

struct Net {
    _fwd: RunningForwarder,
    dir: PathBuf,
    uri: TransportUri,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An in-process forwarder without a Content Store, so every command reaches the meter.
fn forwarder(tag: &str) -> Net {
    let dir = std::env::temp_dir().join(format!(
        "amicn-ami-ops-{tag}-{}-{}",
        std::process::id(),
        now_us()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("fwd.sock");
    let mut cfg = RuntimeConfig {
        unix_path: Some(sock.clone()),
        listen_best_effort: true,
        ..RuntimeConfig::default()
    };
    cfg.core.cs_serve = false;
    cfg.core.cs_admit = false;
    Net {
        _fwd: RunningForwarder::start(cfg).unwrap(),
        dir,
        uri: TransportUri::Unix(sock),
    }
}

fn copy(c: &Credentials) -> Credentials {
    Credentials {
        key: c.key.clone(),
        cert: c.cert.clone(),
    }
}

/// A KMS, meters enrolled and placed (meter 1 with a state directory), and the credentials of
/// the utility operator and the MDMS.
struct Setup {
    net: Net,
    names: AmiNames,
    pki: Pki,
    kms: Arc<KmsService>,
    meters: Vec<Arc<Meter>>,
    meter_creds: Vec<Credentials>,
    operator: Credentials,
    mdms: Credentials,
}

/// One meter of a [`Setup`]: id, DR projects, opted in to DR events.
type MeterPlan<'a> = (u32, &'a [&'a str], bool);

impl Setup {
    /// Meters 1 and 2, in no DR project.
    async fn new(tag: &str) -> Setup {
        Self::with(tag, &[], &[(1, &[], true), (2, &[], true)]).await
    }

    /// The DR projects `projects` and the meters `plan`, entitled by the DR operator.
    async fn with(tag: &str, projects: &[&str], plan: &[MeterPlan<'_>]) -> Setup {
        let net = forwarder(tag);
        let names = AmiNames::new("/test-utility").unwrap();
        let pki = Pki::new(&names).unwrap();
        let kc = connect(&net.uri).await.unwrap();
        let kms_trust = Trust::new(&names, pki.anchor(), &kc).unwrap();
        let kms = KmsService::start(
            KmsConfig::new(
                names.clone(),
                projects.iter().map(|p| p.to_string()).collect(),
            ),
            pki.issue(&names.kms()).unwrap(),
            kms_trust,
            &kc,
        )
        .await
        .unwrap();
        let mut s = Setup {
            operator: pki.issue(&names.role("operator")).unwrap(),
            mdms: pki.issue(&names.role("mdms")).unwrap(),
            net,
            names,
            pki,
            kms,
            meters: Vec::new(),
            meter_creds: Vec::new(),
        };
        let entitled: Vec<(u32, Vec<String>)> = plan
            .iter()
            .filter(|(_, p, _)| !p.is_empty())
            .map(|(id, p, _)| (*id, p.iter().map(|p| p.to_string()).collect()))
            .collect();
        if !entitled.is_empty() {
            s.kms.entitle(&entitled, "/test-utility/ami/dr").unwrap();
        }
        for &(id, p, opt_in) in plan {
            let creds = s.pki.issue(&s.names.meter(id)).unwrap();
            let m = s.start_meter_with(id, copy(&creds), p, opt_in).await;
            m.enrol().await.unwrap();
            s.meters.push(m);
            s.meter_creds.push(creds);
        }
        let rec = s.kms.commit_epoch("enrol").unwrap();
        for m in &s.meters {
            m.sync_keys(Some(rec.epoch)).await.unwrap();
            assert!(m.is_member());
        }
        s
    }

    async fn start_meter(&self, id: u32, creds: Credentials) -> Arc<Meter> {
        self.start_meter_with(id, creds, &[], true).await
    }

    async fn start_meter_with(
        &self,
        id: u32,
        creds: Credentials,
        projects: &[&str],
        dr_opt_in: bool,
    ) -> Arc<Meter> {
        let c = connect(&self.net.uri).await.unwrap();
        let projects = projects.iter().map(|p| p.to_string()).collect();
        let cfg = MeterConfig {
            state_dir: (id == 1).then(|| self.net.dir.join("meter-1")),
            dr_opt_in,
            ..MeterConfig::new(self.names.clone(), id, projects)
        };
        let trust = Trust::new(&self.names, self.pki.anchor(), &c).unwrap();
        Meter::start(cfg, creds, trust, &c).await.unwrap()
    }

    /// An MDMS collector with a SQLite store in the test directory, answering event
    /// notifications.
    async fn mdms_collector(&self) -> Arc<MdmsCollector> {
        let c = connect(&self.net.uri).await.unwrap();
        let trust = Trust::new(&self.names, self.pki.anchor(), &c).unwrap();
        let store = SqliteReadingStore::open(self.net.dir.join("mdms.db")).unwrap();
        let mdms = MdmsCollector::new(
            MdmsConfig::new(self.names.clone(), Duration::from_secs(60)),
            trust,
            self.kms.head_end_keys(),
            &c,
            Box::new(store),
        );
        mdms.serve_events(copy(&self.mdms), &c).await.unwrap();
        mdms
    }

    /// A commander signing as `creds`; with the MDMS's reading keys when `keys`.
    async fn commander(&self, creds: &Credentials, keys: bool) -> MeterCommander {
        let c = connect(&self.net.uri).await.unwrap();
        let trust = Trust::new(&self.names, self.pki.anchor(), &c).unwrap();
        MeterCommander::new(
            self.names.clone(),
            copy(creds),
            trust,
            &c,
            keys.then(|| self.kms.head_end_keys()),
        )
    }
}

fn refused(o: &CommandOutcome, code: u64, kind: &str) {
    assert_eq!(o.status.code, code, "{}", o.status.text);
    assert!(
        o.status.text.starts_with(&format!("{kind}: ")),
        "{}",
        o.status.text
    );
    assert!(!o.sealed && o.reading.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_read_answers_a_fresh_sealed_reading() {
    let s = Setup::new("read").await;
    let mdms = s.commander(&s.mdms, true).await;
    let before = now_us();
    let o = mdms.send(1, MeterOp::Read).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    assert!(o.sealed);
    let r = o.reading.expect("the MDMS opens the reading");
    assert_eq!(r.meter, 1);
    // Fresh: measured after the command was sent, as a 1 ms instantaneous interval.
    assert!(r.end_us() >= before && r.end_us() <= now_us(), "{r:?}");
    assert_eq!(r.interval_ms, 1);
    // Meter 1 starts at 1 × 1,000 + 10,000 Wh and has captured no interval yet.
    assert_eq!(r.active_import_wh(), Some(11_000));
    assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 1);
    assert!(r.active_power_w().unwrap() >= 50);
    assert_eq!(o.supply, Supply::default());

    // The utility operator may read too, but cannot open the reading (no reading key).
    let op = s.commander(&s.operator, false).await;
    let o = op.send(2, MeterOp::Read).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    assert!(o.sealed && o.reading.is_none());

    // A meter that has not joined holds no reading key: refused, and nothing leaks.
    let c3 = s.pki.issue(&s.names.meter(3)).unwrap();
    let m3 = s.start_meter(3, c3).await;
    let o = mdms.send(3, MeterOp::Read).await.unwrap();
    refused(&o, 409, "not-joined");
    assert_eq!(m3.command_counters().refused().get("not-joined"), Some(&1));

    assert_eq!(
        s.meters[0].command_counters().accepted().get("read"),
        Some(&1)
    );
    assert_eq!(
        s.meters[1].command_counters().accepted().get("read"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_utility_disconnects_limits_and_reconnects_and_the_state_persists() {
    let mut s = Setup::new("relay").await;
    let op = s.commander(&s.operator, false).await;
    let mdms = s.commander(&s.mdms, true).await;
    let m1 = s.meters.remove(0);

    let (cut_i, cut_wire) = op.signed(1, 1, MeterOp::Disconnect).unwrap();
    let o = op.send_wire(1, &cut_i, cut_wire.clone()).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    assert!(!o.supply.connected);
    assert!(!m1.supply().connected);
    // The readings show it: nothing drawn, the disconnect control register at 0.
    let r = mdms.send(1, MeterOp::Read).await.unwrap().reading.unwrap();
    assert_eq!(r.active_power_w(), Some(0));
    assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 0);
    let energy = r.active_import_wh().unwrap();
    let interval = m1.capture(now_us());
    assert_eq!(interval.active_power_w(), Some(0));
    assert_eq!(interval.active_import_wh(), Some(energy));

    let o = op.send(1, MeterOp::Limit(Some(500))).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    assert_eq!(
        o.supply,
        Supply {
            connected: false,
            limit_w: Some(500)
        }
    );
    // Meter 2 was never touched.
    assert_eq!(s.meters[0].supply(), Supply::default());

    // A restarted meter comes back with its relay state and its replay records. The old one
    // goes first: its connection closes and the forwarder drops its registration.
    m1.publisher().shutdown();
    drop(m1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let m1b = s.start_meter(1, copy(&s.meter_creds[0])).await;
    assert_eq!(
        m1b.supply(),
        Supply {
            connected: false,
            limit_w: Some(500)
        }
    );
    let o = op.send_wire(1, &cut_i, cut_wire).await.unwrap();
    refused(&o, 403, "replay");

    let o = op.send(1, MeterOp::Connect).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    assert_eq!(
        m1b.supply(),
        Supply {
            connected: true,
            limit_w: Some(500)
        }
    );
    let r = m1b.capture(now_us());
    assert!(r.active_power_w().unwrap() <= 500);
    assert!(r.active_power_w().unwrap() >= 50);
    assert_eq!(r.register(Obis::LOAD_LIMIT).unwrap().value, 500);
    assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 1);
    let o = op.send(1, MeterOp::Limit(None)).await.unwrap();
    assert_eq!(o.supply, Supply::default());
    let c = m1b.command_counters();
    assert_eq!(c.accepted().get("connect"), Some(&1));
    assert_eq!(c.accepted().get("limit"), Some(&1));
    assert_eq!(c.refused().get("replay"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_others_replays_and_other_meters_commands_are_refused() {
    let s = Setup::new("refusals").await;
    let m1 = &s.meters[0];
    // The MDMS may read but not switch; meters may not command at all, not even themselves;
    // an "operator" certified by another CA is nobody.
    let stranger = Pki::new(&s.names)
        .unwrap()
        .issue(&s.names.role("operator"))
        .unwrap();
    for (who, creds) in [
        ("mdms", &s.mdms),
        ("meter 2", &s.meter_creds[1]),
        ("meter 1", &s.meter_creds[0]),
        ("another CA's operator", &stranger),
    ] {
        let c = s.commander(creds, false).await;
        let o = c.send(1, MeterOp::Disconnect).await.unwrap();
        assert_eq!(o.status.code, 403, "{who}: {}", o.status.text);
        assert!(
            o.status.text.starts_with("signer: "),
            "{who}: {}",
            o.status.text
        );
        // The principals of the utility are refused by the rule for the verb, the meter's
        // own key included (it signs only the answers under these names).
        if who != "another CA's operator" {
            assert!(
                o.status.text.contains("trust rule \"meter-commands\""),
                "{who}: {}",
                o.status.text
            );
        }
    }
    // Meter 2 may not even read meter 1.
    let o = s
        .commander(&s.meter_creds[1], false)
        .await
        .send(1, MeterOp::Read)
        .await
        .unwrap();
    refused(&o, 403, "signer");

    // The operator's command for meter 2, delivered to meter 1.
    let op = s.commander(&s.operator, false).await;
    let (i, wire) = op.signed(1, 2, MeterOp::Disconnect).unwrap();
    let o = op.send_wire(1, &i, wire).await.unwrap();
    refused(&o, 404, "wrong-meter");
    assert!(m1.supply().connected && s.meters[1].supply().connected);

    // The operator's own command, accepted once, refused when replayed.
    let (i, wire) = op.signed(1, 1, MeterOp::Disconnect).unwrap();
    let o = op.send_wire(1, &i, wire.clone()).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);
    op.send(1, MeterOp::Connect).await.unwrap();
    let o = op.send_wire(1, &i, wire).await.unwrap();
    refused(&o, 403, "replay");
    assert!(
        m1.supply().connected,
        "the replayed disconnect changed nothing"
    );

    let c = m1.command_counters();
    assert_eq!(c.refused().get("signer"), Some(&5));
    assert_eq!(c.refused().get("wrong-meter"), Some(&1));
    assert_eq!(c.refused().get("replay"), Some(&1));
    assert_eq!(c.accepted().get("disconnect"), Some(&1));
    assert_eq!(c.accepted().get("connect"), Some(&1));
    assert_eq!(c.accepted().get("read"), None);
    assert_eq!(
        c.supply_changes.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_events_reach_the_mdms_which_stores_them_and_flags_the_outage() {
    let s = Setup::new("events").await;
    let mdms = s.mdms_collector().await;
    let m1 = &s.meters[0];
    let mut outcomes = Vec::new();
    for (kind, step) in [
        (EventKind::LastGasp, None),
        (EventKind::Restoration, None),
        (EventKind::CoverOpen, None),
        (EventKind::MagneticTamper, None),
        (EventKind::ClockAdjusted, Some(-1_500_000)),
    ] {
        let o = m1.raise_event(kind, step).await.unwrap();
        assert_eq!(o.status.code, 200, "{kind:?}: {}", o.status.text);
        outcomes.push(o);
        // A little time between the outage's two ends, so the window is not empty.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        outcomes.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // Meter 2 reports a tamper alarm of its own.
    let o = s.meters[1]
        .raise_event(EventKind::CoverOpen, None)
        .await
        .unwrap();
    assert_eq!((o.status.code, o.seq), (200, 1), "{}", o.status.text);

    let stored = mdms.events();
    assert_eq!(stored.len(), 6);
    let by_kind = mdms.counters.events();
    assert_eq!(by_kind.get("cover-open"), Some(&2));
    assert_eq!(by_kind.get("last-gasp"), Some(&1));
    assert_eq!(by_kind.get("clock-adjusted"), Some(&1));
    let step = stored
        .iter()
        .find(|e| e.event.kind == EventKind::ClockAdjusted)
        .unwrap();
    assert_eq!(step.event.clock_step_us, Some(-1_500_000));
    assert_eq!(mdms.event_latency.count(), 6);

    // The outage window runs from the last gasp to the restoration, for meter 1 only.
    let gasp = stored[0].event.t_us;
    let back = stored[1].event.t_us;
    assert!(back > gasp);
    let windows = mdms.outage_windows();
    assert_eq!(windows.get(&1), Some(&vec![(gasp, back)]));
    assert_eq!(windows.get(&2), None);
    // VEE flags exactly the interval that overlaps it (intervals of 1 s around the outage).
    let iv = 1_000_000u64;
    let r = |k: u64, wh: u64| StoredReading {
        meter: 1,
        t_us: gasp - gasp % iv + k * iv,
        energy_wh: wh,
        power_w: 100,
        flags: Flags::NONE,
        key_name: String::new(),
        received_us: 0,
    };
    let readings: Vec<StoredReading> = (0..4).map(|k| r(k, 100 + k)).collect();
    let vee = amicn_ami::vee::validate_meter(
        &amicn_ami::vee::VeeConfig::new(iv),
        1,
        &readings,
        &windows[&1],
    );
    let flagged: Vec<u64> = vee
        .intervals
        .iter()
        .filter(|i| i.rules.contains(&"outage"))
        .map(|i| i.end_us)
        .collect();
    // The outage lasted a few ms after `gasp`, so only the interval ending after it overlaps
    // (unless it straddled a second boundary, then the next one too).
    assert!(!flagged.is_empty() && flagged.len() <= 2, "{flagged:?}");
    assert_eq!(flagged[0], r(1, 0).t_us);

    // Stored durably: another connection to the database sees every event.
    let db = SqliteReadingStore::open(s.net.dir.join("mdms.db")).unwrap();
    assert_eq!(db.events().unwrap().len(), 6);

    // A restarted meter continues its sequence numbers.
    let m1b = s.start_meter(1, copy(&s.meter_creds[0])).await;
    assert_eq!(m1b.take_event_seq().unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mdms_refuses_replayed_forged_misaddressed_and_stale_events() {
    let s = Setup::new("event-refusals").await;
    let mdms = s.mdms_collector().await;
    let m1 = &s.meters[0];
    let o = m1.raise_event(EventKind::LastGasp, None).await.unwrap();
    assert_eq!(o.status.code, 200, "{}", o.status.text);

    // Replay: the same notification again changes nothing.
    let o = m1.notify_event(1).await.unwrap();
    assert_eq!(o.status.code, 409, "{}", o.status.text);
    assert!(
        o.status.text.starts_with("duplicate: "),
        "{}",
        o.status.text
    );

    // Wrong meter: meter 1's sealed event that says it is meter 2's.
    let seq = m1.take_event_seq().unwrap();
    m1.publish_event(&MeterEvent {
        meter: 2,
        seq,
        kind: EventKind::Restoration,
        t_us: now_us(),
        clock_step_us: None,
    })
    .unwrap();
    let o = m1.notify_event(seq).await.unwrap();
    assert_eq!(o.status.code, 404, "{}", o.status.text);
    assert!(
        o.status.text.starts_with("wrong-meter: "),
        "{}",
        o.status.text
    );

    // Stale: stamped two windows ago.
    let seq = m1.take_event_seq().unwrap();
    m1.publish_event(&MeterEvent {
        meter: 1,
        seq,
        kind: EventKind::Restoration,
        t_us: now_us() - 120_000_000,
        clock_step_us: None,
    })
    .unwrap();
    let o = m1.notify_event(seq).await.unwrap();
    assert_eq!(o.status.code, 422, "{}", o.status.text);

    // Never published: nothing to fetch.
    let o = m1.notify_event(99).await.unwrap();
    assert_eq!(o.status.code, 504, "{}", o.status.text);

    // Wrong signer: meter 2's key signs an event named for meter 9 (a meter with no process);
    // the notification comes from anyone.
    let c = connect(&s.net.uri).await.unwrap();
    let forger = Publisher::new(&c, s.meter_creds[1].key.clone(), None);
    forger.serve(s.names.event_prefix(9)).await.unwrap();
    let mut d = Data::new(s.names.event(9, 1), bytes::Bytes::from_static(b"x"));
    d.meta_info.freshness_period_ms = Some(10_000);
    forger
        .put_wire(s.meter_creds[1].key.sign_data(&mut d).unwrap())
        .unwrap();
    let mut i = amicn_tlv::Interest::new(s.names.event_notify(9, 1));
    i.must_be_fresh = true;
    let reply = c.express(&i).await.unwrap();
    assert!(matches!(reply, amicn_face::client::Reply::Data { .. }));
    // Not even a name: a notification with no sequence number.
    let mut i = amicn_tlv::Interest::new(
        s.names
            .event_notify_prefix()
            .append_generic(bytes::Bytes::from_static(b"1")),
    );
    i.must_be_fresh = true;
    let _ = c.express(&i).await.unwrap();

    let refused = mdms.counters.events_refused();
    assert_eq!(refused.get("duplicate"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("wrong-meter"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("out-of-window"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("missing"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("untrusted"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("malformed"), Some(&1), "{refused:?}");
    // Only the genuine last gasp was stored: meter 1 is out from then on.
    assert_eq!(mdms.events().len(), 1);
    let w = mdms.outage_windows();
    assert_eq!(w[&1].len(), 1);
    assert_eq!(w[&1][0].1, u64::MAX);
}

/// Off-peak 22:00–07:00, day 07:00–17:00, peak 17:00–22:00 (UTC), valid from an hour ago.
fn tou(version: u64) -> Tariff {
    let p = |name: &str, from_min, to_min, rate| Period {
        name: name.into(),
        from_min,
        to_min,
        millicents_per_kwh: rate,
    };
    Tariff {
        tariff: "tou-res".into(),
        version,
        kind: TariffKind::Tou,
        valid_from_s: now_us() / 1_000_000 - 3_600,
        valid_to_s: None,
        utc_offset_min: 0,
        periods: vec![
            p("off-peak", 1_320, 420, 900),
            p("day", 420, 1_020, 1_500),
            p("peak", 1_020, 1_320, 3_200),
        ],
        critical_peak_millicents_per_kwh: None,
        critical_peaks: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_learn_new_tariff_versions_from_the_pointer_and_keep_period_registers() {
    let s = Setup::new("tariffs").await;
    let pc = connect(&s.net.uri).await.unwrap();
    let pricing = PricingPublisher::start(
        s.names.clone(),
        s.pki.issue(&s.names.price_prefix()).unwrap(),
        s.kms.head_end_keys(),
        &pc,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let m1 = &s.meters[0];
    // Nothing published yet: the pointer is not there.
    assert!(m1.refresh_tariff("tou-res").await.is_err());
    pricing.publish_tariff(&tou(1)).unwrap();
    for m in &s.meters {
        assert_eq!(m.refresh_tariff("tou-res").await.unwrap(), Some(1));
        // The same version again: nothing fetched.
        assert_eq!(m.refresh_tariff("tou-res").await.unwrap(), None);
    }
    // Registers per period: the interval's energy lands in the period of the hour it ends in
    // (and the one before, if it crosses a boundary).
    let now = now_us();
    let r = m1.capture(now);
    let (t, regs) = m1.tariff();
    assert_eq!(t.as_ref().map(|t| t.version), Some(1));
    let total: u64 = regs.energy_mwh.values().sum();
    assert!(total > 0);
    let (name, _) = t.as_ref().unwrap().rate_at(now / 1_000_000).unwrap();
    assert!(regs.energy_mwh.contains_key(name), "{regs:?}");
    assert!(r.active_import_wh().unwrap() > 0);

    // A critical peak over the next hour in version 2: the pointer names it (after the old
    // pointer's freshness has passed), and the next interval is billed at the critical rate.
    let mut v2 = tou(2);
    v2.kind = TariffKind::Cpp;
    v2.critical_peak_millicents_per_kwh = Some(9_000);
    let now_s = now_us() / 1_000_000;
    v2.critical_peaks = vec![CriticalPeak {
        from_s: now_s - 3_600,
        to_s: now_s + 3_600,
    }];
    pricing.publish_tariff(&v2).unwrap();
    tokio::time::sleep(amicn_ami::tariff::POINTER_FRESHNESS + Duration::from_millis(200)).await;
    assert_eq!(m1.refresh_tariff("tou-res").await.unwrap(), Some(2));
    let before = m1
        .tariff()
        .1
        .energy_mwh
        .get(CRITICAL_PEAK)
        .copied()
        .unwrap_or(0);
    m1.capture(now_us());
    let (t, regs) = m1.tariff();
    assert_eq!(t.unwrap().version, 2);
    assert!(regs.energy_mwh[CRITICAL_PEAK] > before, "{regs:?}");
    // Meter 2 did not refresh: it still bills under version 1.
    assert_eq!(s.meters[1].tariff().0.unwrap().version, 1);
    assert_eq!(
        m1.counters
            .tariff_updates
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );

    // A pointer signed by a meter is refused (and counted), whatever it says.
    let c = connect(&s.net.uri).await.unwrap();
    let forger = Publisher::new(&c, s.meter_creds[1].key.clone(), None);
    // Captured: the pricing service's route for /price is not inherited, only the forger
    // answers.
    forger
        .serve_captured(s.names.tariff_latest_prefix("forged"))
        .await
        .unwrap();
    let mut d = Data::new(
        s.names.tariff_latest("forged", 9),
        bytes::Bytes::from_static(br#"{"tariff":"forged","version":9,"digest":"00"}"#),
    );
    d.meta_info.freshness_period_ms = Some(1_000);
    forger
        .put_wire(s.meter_creds[1].key.sign_data(&mut d).unwrap())
        .unwrap();
    let rejected = || {
        m1.counters
            .rejected_data
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let was = rejected();
    let e = m1.refresh_tariff("forged").await;
    assert!(e.is_err(), "{e:?}");
    assert!(rejected() > was);
    // A meter that has not joined holds no broadcast key: it cannot read the tariff.
    let m3 = s
        .start_meter(3, s.pki.issue(&s.names.meter(3)).unwrap())
        .await;
    assert!(m3.refresh_tariff("tou-res").await.is_err());
    assert!(m3.tariff().0.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dr_event_reaches_the_project_and_exactly_its_members_acknowledge() {
    // p1: meters 1 and 2 opted in, 4 opted out; meter 3 is in no project.
    let s = Setup::with(
        "dr",
        &["p1"],
        &[
            (1, &["p1"], true),
            (2, &["p1"], true),
            (3, &[], true),
            (4, &["p1"], false),
        ],
    )
    .await;
    let dc = connect(&s.net.uri).await.unwrap();
    let dr_trust = Trust::new(&s.names, s.pki.anchor(), &dc).unwrap();
    let projects = vec!["p1".to_string()];
    let dr = DrOperator::start(
        s.names.clone(),
        s.pki.issue(&s.names.role("dr")).unwrap(),
        s.kms.head_end_keys(),
        &dc,
        &projects,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    dr.set_members("p1", [1, 2, 4]);
    dr.serve_acks(dr_trust, &dc, &projects).await.unwrap();

    // Every member waits for event 1 before it exists; the operator holds their Interests.
    let mut waiting = Vec::new();
    for m in [&s.meters[0], &s.meters[1], &s.meters[3]] {
        let m = m.clone();
        waiting.push(tokio::spawn(async move {
            m.respond_dr("p1", 1, Duration::from_secs(4)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = DrEvent {
        project: "p1".into(),
        seq: 1,
        event_id: "evt-2026-001".into(),
        signal: "LOAD_DISPATCH".into(),
        level: 2,
        start_s: now_us() / 1_000_000 + 60,
        duration_s: 900,
        randomization_s: 120,
        reduce_w: 800,
        issued_us: 0,
    };
    dr.publish(&ev).unwrap();
    for w in waiting {
        let (got, status) = w.await.unwrap().unwrap();
        assert_eq!(status.code, 200, "{}", status.text);
        assert_eq!(got.event_id, "evt-2026-001");
        assert_eq!((got.signal.as_str(), got.level), ("LOAD_DISPATCH", 2));
    }
    assert!(dr.delivered_held() >= 1);
    let rep = dr.report("p1", 1).unwrap();
    assert_eq!(rep.members, [1, 2, 4]);
    assert_eq!(rep.opted_in, [1, 2]);
    assert_eq!(rep.opted_out, [4]);
    assert!(rep.silent.is_empty());
    assert_eq!((rep.ack_us.len(), rep.delivery_us.len()), (3, 3));

    // Meter 3 cannot read the event (no project key)...
    let m3 = &s.meters[2];
    assert!(
        m3.await_dr_event("p1", 1, Duration::from_secs(2))
            .await
            .is_err()
    );
    // ... and its acknowledgement, built from the event's fields, is refused: not a member.
    let (i, wire) = m3.dr_ack(&ev, 3, now_us()).unwrap();
    let st = m3.send_dr_ack(&i, wire).await.unwrap();
    assert_eq!(st.code, 403, "{}", st.text);
    assert!(st.text.starts_with("non-member: "), "{}", st.text);
    // Meter 2 acknowledging in meter 1's name: the wrong signer.
    let (i, wire) = s.meters[1].dr_ack(&ev, 1, now_us()).unwrap();
    let st = s.meters[1].send_dr_ack(&i, wire).await.unwrap();
    assert!(st.text.starts_with("signer: "), "{}", st.text);
    assert!(st.text.contains("trust rule \"dr-acks\""), "{}", st.text);
    // Meter 1's acknowledgement of an event never published.
    let ghost = DrEvent {
        seq: 7,
        ..ev.clone()
    };
    let (i, wire) = s.meters[0].dr_ack(&ghost, 1, now_us()).unwrap();
    let st = s.meters[0].send_dr_ack(&i, wire).await.unwrap();
    assert!(st.text.starts_with("unknown-event: "), "{}", st.text);
    // A second acknowledgement of event 1 by meter 1, then that same packet replayed.
    let (i, wire) = s.meters[0].dr_ack(&ev, 1, now_us()).unwrap();
    let st = s.meters[0].send_dr_ack(&i, wire.clone()).await.unwrap();
    assert!(st.text.starts_with("duplicate: "), "{}", st.text);
    let st = s.meters[0].send_dr_ack(&i, wire).await.unwrap();
    assert!(st.text.starts_with("replay: "), "{}", st.text);

    let refused = dr.refused();
    for kind in [
        "non-member",
        "signer",
        "unknown-event",
        "duplicate",
        "replay",
    ] {
        assert_eq!(refused.get(kind), Some(&1), "{kind}: {refused:?}");
    }
    // Nothing the refusals did changed the event's record.
    let after = dr.report("p1", 1).unwrap();
    assert_eq!((after.opted_in, after.opted_out), (vec![1, 2], vec![4]));

    // A member following the project hears the next event without being asked again.
    let m1 = s.meters[0].clone();
    let follow = tokio::spawn(m1.clone().follow_dr(
        "p1".into(),
        2,
        std::time::Instant::now() + Duration::from_secs(3),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    dr.publish(&DrEvent {
        seq: 2,
        event_id: String::new(),
        ..ev.clone()
    })
    .unwrap();
    let mut acked = false;
    for _ in 0..40 {
        if dr.report("p1", 2).is_some_and(|r| r.opted_in == [1]) {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(acked, "{:?}", dr.report("p1", 2));
    assert_eq!(dr.report("p1", 2).unwrap().event_id, "p1-2");
    follow.abort();

    // A long-running operator keeps a bounded number of events: the oldest records go, and an
    // acknowledgement of one of them is refused as unknown while the newest is still taken.
    let last = 2 + DrOperator::EVENTS_KEPT as u64;
    for seq in 3..=last {
        dr.publish(&DrEvent {
            seq,
            event_id: String::new(),
            ..ev.clone()
        })
        .unwrap();
    }
    assert!(dr.report("p1", 1).is_none() && dr.report("p1", 2).is_none());
    assert!(dr.report("p1", 3).is_some() && dr.report("p1", last).is_some());
    let (i, wire) = s.meters[1].dr_ack(&ev, 2, now_us()).unwrap();
    let st = s.meters[1].send_dr_ack(&i, wire).await.unwrap();
    assert!(st.text.starts_with("unknown-event: "), "{}", st.text);
    let newest = DrEvent {
        seq: last,
        event_id: format!("p1-{last}"),
        ..ev.clone()
    };
    let (i, wire) = s.meters[1].dr_ack(&newest, 2, now_us()).unwrap();
    let st = s.meters[1].send_dr_ack(&i, wire).await.unwrap();
    assert_eq!(st.code, 200, "{}", st.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_operations_run_passes_its_checks_on_one_forwarder() {
    let net = forwarder("grid-ops");
    let rep = amicn_ami::grid_ops::run(&amicn_ami::grid_ops::GridOpsSettings {
        utility: "/test-utility/field".into(),
        head: net.uri.clone(),
        edge: net.uri.clone(),
        opted_in: 2,
        opted_out: 1,
        outsiders: 1,
        dr_events: 2,
        state_dir: net.dir.join("grid-ops"),
    })
    .await
    .unwrap();
    let failed: Vec<_> = rep.checks.iter().filter(|c| !c.pass).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(rep.checks.len(), 7);
    // Each DR event: meters 1 and 2 in, 3 out, 4 (the outsider) nowhere.
    let events = rep.summary["dr"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!(e["opted_in"], serde_json::json!([1, 2]));
        assert_eq!(e["opted_out"], serde_json::json!([3]));
    }
    assert_eq!(rep.latency_us["DR event (publish to member)"].len(), 6);
    assert_eq!(rep.summary["events"]["stored"], 11);
}
