//! The AMI roles through a real forwarder (in-process, on a private Unix socket).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use amicn_ami::reading::{Flags, Obis};
use amicn_ami::{
    AmiError, AmiNames, DrEvent, DrOperator, KmsConfig, KmsService, MdmsCollector, MdmsConfig,
    MemoryReadingStore, Meter, MeterConfig, Pki, Price, PricingPublisher, Rejection, Trust,
    connect, now_us,
};
use amicn_face::client::TransportUri;
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};

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

fn forwarder(tag: &str) -> Net {
    let dir = std::env::temp_dir().join(format!(
        "amicn-ami-{tag}-{}-{}",
        std::process::id(),
        now_us()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("fwd.sock");
    let fwd = RunningForwarder::start(RuntimeConfig {
        unix_path: Some(sock.clone()),
        listen_best_effort: true,
        ..RuntimeConfig::default()
    })
    .unwrap();
    Net {
        _fwd: fwd,
        dir,
        uri: TransportUri::Unix(sock),
    }
}

async fn meter(
    net: &Net,
    names: &AmiNames,
    pki: &Pki,
    id: u32,
    as_id: u32,
    projects: &[&str],
) -> Arc<Meter> {
    let c = connect(&net.uri).await.unwrap();
    let cfg = MeterConfig {
        reading_interval: Duration::from_secs(1),
        ..MeterConfig::new(
            names.clone(),
            id,
            projects.iter().map(|p| p.to_string()).collect(),
        )
    };
    let trust = Trust::new(names, pki.anchor(), &c).unwrap();
    Meter::start(cfg, pki.issue(&names.meter(as_id)).unwrap(), trust, &c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_rekey_readings_prices_and_events_end_to_end() {
    let net = forwarder("e2e");
    let names = AmiNames::new("/test-utility").unwrap();
    let pki = Pki::new(&names).unwrap();
    let kc = connect(&net.uri).await.unwrap();
    let kms = KmsService::start(
        KmsConfig::new(names.clone(), vec!["p1".into()]),
        pki.issue(&names.kms()).unwrap(),
        Trust::new(&names, pki.anchor(), &kc).unwrap(),
        &kc,
    )
    .await
    .unwrap();
    let keys = kms.head_end_keys();
    // The DR operator's entitlements decide who joins p1 (the meters' own lists are only
    // checked against them).
    kms.entitle(
        &[(1, vec!["p1".into()]), (3, vec!["p1".into()])],
        "/test-utility/ami/dr",
    )
    .unwrap();
    let m1 = meter(&net, &names, &pki, 1, 1, &["p1"]).await;
    let m2 = meter(&net, &names, &pki, 2, 2, &[]).await;
    let m3 = meter(&net, &names, &pki, 3, 3, &["p1"]).await;
    for m in [&m1, &m2, &m3] {
        assert_eq!(
            m.enrol().await.unwrap(),
            2,
            "joins take effect in the next epoch"
        );
    }
    let rec = kms.commit_epoch("enrol").unwrap();
    assert_eq!(rec.epoch, 2);
    assert_eq!(rec.joins, vec![1, 2, 3]);
    for m in [&m1, &m2, &m3] {
        let r = m.sync_keys(None).await.unwrap();
        assert_eq!((r.manifests, r.epoch, r.departed), (1, 2, false));
        assert!(r.wraps_fetched > 0);
        assert_eq!(
            m.held_keys().len() as u64,
            kms.member_key_count(m.id()).unwrap()
        );
    }

    // A reading goes to the MDMS, which verifies, decrypts and stores it once.
    let mc = connect(&net.uri).await.unwrap();
    let mdms = MdmsCollector::new(
        MdmsConfig::new(names.clone(), Duration::from_secs(30)),
        Trust::new(&names, pki.anchor(), &mc).unwrap(),
        keys.clone(),
        &mc,
        Box::new(MemoryReadingStore::default()),
    );
    let t = now_us();
    let sent = m1.publish_reading(t).unwrap();
    let round = mdms.collect(vec![names.reading(1, t)]).await;
    assert_eq!(round.stored.len(), 1, "{round:?}");
    let stored = &round.stored[0];
    assert_eq!(
        (stored.meter, stored.t_us, stored.energy_wh, stored.power_w),
        (1, t, sent.energy_wh, sent.power_w)
    );
    assert_eq!(stored.key_name, "/test-utility/ami/meter/1/READ/v=2");
    let again = mdms.fetch_and_ingest(names.reading(1, t)).await.unwrap();
    assert_eq!(again, Err(Rejection::Duplicate));
    assert_eq!(stored.flags, sent.flags);

    // What the MDMS refuses although the meter sealed and signed it: a plaintext in the first
    // format (12 bare bytes), a reading of another interval, a reading without the registers.
    let t2 = now_us();
    let mut bare = sent.energy_wh.to_be_bytes().to_vec();
    bare.extend_from_slice(&sent.power_w.to_be_bytes());
    m1.publish_plaintext(t2, &bare).unwrap();
    let t3 = t2 + 1;
    let other = m1.capture(t3 - 1_000).encode().unwrap();
    m1.publish_plaintext(t3, &other).unwrap();
    let t4 = t2 + 2;
    let mut empty = m1.capture(t4);
    empty.registers.retain(|r| r.obis != Obis::ACTIVE_POWER);
    m1.publish_plaintext(t4, &empty.encode().unwrap()).unwrap();
    for (t, why) in [
        (t2, "not a reading"),
        (t3, "the name says"),
        (t4, "1-0:1.7.0"),
    ] {
        let r = mdms.fetch_and_ingest(names.reading(1, t)).await.unwrap();
        assert!(
            matches!(&r, Err(Rejection::Malformed(m)) if m.contains(why)),
            "{why}: {r:?}"
        );
    }
    assert_eq!(mdms.rejections().get("malformed"), Some(&3));

    // Price under the root key: all decrypt. DR event under p1: only p1 members.
    let pc = connect(&net.uri).await.unwrap();
    let pricing = PricingPublisher::start(
        names.clone(),
        pki.issue(&names.price_prefix()).unwrap(),
        keys.clone(),
        &pc,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let price = Price {
        tariff: "tou".into(),
        version: 7,
        millicents_per_kwh: 12_345,
        valid_from_s: 1,
    };
    let (_, key) = pricing.publish(&price).unwrap();
    assert_eq!(key.to_string(), "/test-utility/ami/bcast/KEK/v=2");
    for m in [&m1, &m2, &m3] {
        assert_eq!(m.fetch_price("tou", 7).await.unwrap(), price);
    }
    let dc = connect(&net.uri).await.unwrap();
    let dr = DrOperator::start(
        names.clone(),
        pki.issue(&names.role("dr")).unwrap(),
        keys.clone(),
        &dc,
        &["p1".to_string()],
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let ev = DrEvent {
        project: "p1".into(),
        seq: 1,
        start_s: 10,
        duration_s: 60,
        reduce_w: 700,
        // Set, so the operator publishes the event exactly as given.
        issued_us: 1,
        ..DrEvent::default()
    };
    dr.publish(&ev).unwrap();
    assert_eq!(m1.fetch_dr_event("p1", 1).await.unwrap(), ev);
    assert_eq!(m3.fetch_dr_event("p1", 1).await.unwrap(), ev);
    assert!(matches!(
        m2.fetch_dr_event("p1", 1).await,
        Err(AmiError::KeyNotHeld { .. })
    ));

    // Meter 3 leaves: after the rekey the others follow, meter 3 cannot read the next event.
    kms.stage_leave(3).unwrap();
    let rec = kms.commit_epoch("leave").unwrap();
    assert_eq!(rec.departs, vec![3]);
    assert!(
        m3.wraps_opened_with_held_keys(&rec.wrap_uris)
            .await
            .unwrap()
            == 0
    );
    for m in [&m1, &m2] {
        assert!(!m.sync_keys(Some(rec.epoch)).await.unwrap().departed);
    }
    let ev2 = DrEvent {
        seq: 2,
        ..ev.clone()
    };
    let (name2, key2) = dr.publish(&ev2).unwrap();
    assert_eq!(key2.to_string(), "/test-utility/ami/dr/p1/KEK/v=3");
    assert_eq!(m1.fetch_dr_event("p1", 2).await.unwrap(), ev2);
    let d2 = m3.fetch_verified(name2).await.unwrap();
    assert_eq!(m3.keys_that_open(&d2).unwrap(), 0);
    assert!(m3.sync_keys(Some(rec.epoch)).await.unwrap().departed);
    assert!(m3.held_keys().is_empty());

    // A periodic refresh with no membership change: fresh broadcast key, members follow.
    kms.stage_refresh(false, true);
    let rec = kms.commit_epoch("refresh").unwrap();
    assert!(rec.joins.is_empty() && rec.departs.is_empty());
    assert_eq!(rec.stats.root_wraps, 2, "one wrap per non-empty subgroup");
    for m in [&m1, &m2] {
        m.sync_keys(Some(rec.epoch)).await.unwrap();
    }
    let price2 = Price {
        version: 8,
        ..price
    };
    let (_, key) = pricing.publish(&price2).unwrap();
    assert_eq!(
        key.to_string(),
        format!("/test-utility/ami/bcast/KEK/v={}", rec.epoch)
    );
    assert_eq!(m2.fetch_price("tou", 8).await.unwrap(), price2);
}

/// The test utility's names and PKI, and a KMS without projects serving through `net`.
async fn utility_with_kms(net: &Net) -> (AmiNames, Pki, Arc<KmsService>) {
    let names = AmiNames::new("/test-utility").unwrap();
    let pki = Pki::new(&names).unwrap();
    let kc = connect(&net.uri).await.unwrap();
    let kms = KmsService::start(
        KmsConfig::new(names.clone(), vec![]),
        pki.issue(&names.kms()).unwrap(),
        Trust::new(&names, pki.anchor(), &kc).unwrap(),
        &kc,
    )
    .await
    .unwrap();
    (names, pki, kms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_cannot_enrol_under_another_meters_name() {
    let net = forwarder("impostor");
    let (names, pki, kms) = utility_with_kms(&net).await;
    // Configured as meter 1 but holding meter 2's certified key.
    let impostor = meter(&net, &names, &pki, 1, 2, &[]).await;
    match impostor.enrol().await {
        Err(AmiError::EnrolRefused { meter: 1, why }) => {
            assert!(why.contains("not this meter's"), "{why}")
        }
        other => panic!("impostor enrolment should be refused, got {other:?}"),
    }
    assert_eq!(kms.enrolments(), (0, 1));
    // Nothing was staged: the next commit places nobody.
    assert!(kms.commit_epoch("empty").unwrap().joins.is_empty());
}

/// Starts meter `id` on its state directory under `net` (the same meter across restarts) with
/// a fresh certified key, on a new connection.
async fn start_with_state(
    net: &Net,
    names: &AmiNames,
    pki: &Pki,
    id: u32,
) -> (Arc<Meter>, amicn_face::client::Client) {
    let c = connect(&net.uri).await.unwrap();
    let cfg = MeterConfig {
        state_dir: Some(net.dir.join(format!("meter-{id}"))),
        ..MeterConfig::new(names.clone(), id, vec![])
    };
    let trust = Trust::new(names, pki.anchor(), &c).unwrap();
    let m = Meter::start(cfg, pki.issue(&names.meter(id)).unwrap(), trust, &c)
        .await
        .unwrap();
    (m, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_meter_keeps_its_registers_and_flags_the_outage() {
    let net = forwarder("restart");
    let (names, pki, kms) = utility_with_kms(&net).await;
    let (m, c) = start_with_state(&net, &names, &pki, 4).await;
    m.enrol().await.unwrap();
    kms.commit_epoch("enrol").unwrap();
    m.sync_keys(None).await.unwrap();
    // Quarter hours, so each interval moves the register by whole watt-hours.
    let t0 = now_us();
    let first = m.publish_reading(t0).unwrap();
    let second = m.publish_reading(t0 + 900_000_000).unwrap();
    assert_eq!((first.flags, second.flags), (Flags::NONE, Flags::NONE));
    assert!(second.energy_wh >= first.energy_wh);
    m.save().unwrap();
    drop((m, c));

    let (m, _c) = start_with_state(&net, &names, &pki, 4).await;
    assert!(m.is_member());
    let third = m.publish_reading(t0 + 1_800_000_000).unwrap();
    assert_eq!(
        third.flags,
        Flags::POWER_OUTAGE,
        "the first interval after a restart"
    );
    assert!(third.energy_wh >= second.energy_wh);
    let fourth = m.capture(t0 + 2_700_000_000);
    assert_eq!(fourth.flags, Flags::NONE);
    assert!(fourth.active_import_wh().unwrap() >= third.energy_wh);
}

/// A crash (no orderly save) between readings: the restarted meter never shows less energy
/// than a reading it already published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_meter_never_shows_less_energy_than_it_published() {
    let net = forwarder("crash-registers");
    let (names, pki, kms) = utility_with_kms(&net).await;
    let (m, c) = start_with_state(&net, &names, &pki, 5).await;
    m.enrol().await.unwrap();
    kms.commit_epoch("enrol").unwrap();
    m.sync_keys(None).await.unwrap();
    let t0 = now_us();
    let mut last = 0;
    for k in 0..8u64 {
        last = m.publish_reading(t0 + k * 900_000_000).unwrap().energy_wh;
    }
    assert!(last > 0);
    // Gone without `save`, as after SIGKILL.
    drop((m, c));
    let (m, _c) = start_with_state(&net, &names, &pki, 5).await;
    let after = m.publish_reading(t0 + 8 * 900_000_000).unwrap();
    assert!(
        after.energy_wh >= last,
        "register went back from {last} Wh to {} Wh",
        after.energy_wh
    );
}

/// However many readings a meter publishes into its bounded store, its certificate stays
/// fetchable: an MDMS that starts late must still be able to verify the meter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meters_certificate_outlives_its_readings_in_the_store() {
    let net = forwarder("cert-pinned");
    let (names, pki, kms) = utility_with_kms(&net).await;
    let c = connect(&net.uri).await.unwrap();
    let cfg = MeterConfig {
        keep_readings: 4,
        ..MeterConfig::new(names.clone(), 6, vec![])
    };
    let creds = pki.issue(&names.meter(6)).unwrap();
    let cert_name = creds.cert.name().clone();
    let trust = Trust::new(&names, pki.anchor(), &c).unwrap();
    let m = Meter::start(cfg, creds, trust, &c).await.unwrap();
    m.enrol().await.unwrap();
    kms.commit_epoch("enrol").unwrap();
    m.sync_keys(None).await.unwrap();
    let t0 = now_us();
    // Far more packets (readings and their pointers) than the store keeps.
    for k in 0..100u64 {
        m.publish_reading(t0 + k * 1_000).unwrap();
    }
    let probe = connect(&net.uri).await.unwrap();
    let mut i = amicn_tlv::Interest::new(cert_name.clone());
    i.can_be_prefix = true;
    i.lifetime_ms = Some(1000);
    match probe.express(&i).await.unwrap() {
        amicn_face::client::Reply::Data { data, .. } => assert_eq!(data.name, cert_name),
        other => panic!("the meter's certificate is no longer served: {other:?}"),
    }
}
