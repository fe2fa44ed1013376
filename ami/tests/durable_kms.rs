//! Restart semantics of the KMS with a state database: epochs, published objects, pending and
//! staged work, revocations, entitlements and replay records survive a restart, and damaged or
//! symlinked databases are refused.
//!
//! Each KMS incarnation runs on its own Tokio runtime, which is shut down to stop it: that
//! closes its forwarder connection, so its registrations vanish before the next one starts
//! (dropping the service and its `Client` alone does not, see
//! `dropping_the_kms_and_its_client_releases_its_prefixes`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use amicn_ami::{
    AmiError, AmiNames, Credentials, KmsConfig, KmsService, Meter, MeterConfig, Pki, Trust,
    connect, now_ms, now_us,
};
use amicn_face::client::{Client, Reply, TransportUri};
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use amicn_tlv::{Interest, NackReason, TlvReader};
use bytes::{Bytes, BytesMut};
use tokio::runtime::Runtime;

/// TLV types of the AMI command and status encodings (`ami/src/wire.rs`).
const ASSIGNMENT: u32 = 0xC6;
const METER_ID: u32 = 0xFC;
const PROJECT: u32 = 0xE2;
const STATUS_CODE: u32 = 0xC8;
const STATUS_TEXT: u32 = 0xCA;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A forwarder (no Content Store, so every answer comes from the KMS running now), the
/// utility's PKI, and the runtime the meters and operators run on.
struct Env {
    rt: Runtime,
    _fwd: RunningForwarder,
    dir: PathBuf,
    uri: TransportUri,
    names: AmiNames,
    pki: Pki,
    kms_creds: Credentials,
    dr: Credentials,
    db: PathBuf,
    /// The operators' connection and trust.
    oc: Client,
    ot: Arc<Trust>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One KMS incarnation and the runtime that carries its connection.
struct Kms {
    svc: Arc<KmsService>,
    rt: Runtime,
}

impl std::ops::Deref for Kms {
    type Target = KmsService;
    fn deref(&self) -> &KmsService {
        &self.svc
    }
}

fn copy(c: &Credentials) -> Credentials {
    Credentials {
        key: c.key.clone(),
        cert: c.cert.clone(),
    }
}

fn p(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "amicn-ami-durable-{tag}-{}-{}",
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
        let fwd = RunningForwarder::start(cfg).unwrap();
        let uri = TransportUri::Unix(sock);
        let names = AmiNames::new("/test-utility").unwrap();
        let pki = Pki::new(&names).unwrap();
        let kms_creds = pki.issue(&names.kms()).unwrap();
        let dr = pki.issue(&names.role("dr")).unwrap();
        let rt = runtime();
        let oc = rt.block_on(connect(&uri)).unwrap();
        let ot = rt
            .block_on(async { Trust::new(&names, pki.anchor(), &oc) })
            .unwrap();
        Env {
            rt,
            _fwd: fwd,
            db: dir.join("state/kms.db"),
            dir,
            uri,
            names,
            pki,
            kms_creds,
            dr,
            oc,
            ot,
        }
    }

    /// Starts a KMS for projects p1 and p2 on `db` (the same key every time), on `rt`.
    fn start_on(&self, rt: &Runtime, db: &Path) -> amicn_ami::Result<Arc<KmsService>> {
        rt.block_on(async {
            let kc = connect(&self.uri).await?;
            let trust = Trust::new(&self.names, self.pki.anchor(), &kc)?;
            trust.add_certificate(self.dr.cert.clone());
            let cfg = KmsConfig {
                state_db: Some(db.to_path_buf()),
                ..KmsConfig::new(self.names.clone(), p(&["p1", "p2"]))
            };
            KmsService::start(cfg, copy(&self.kms_creds), trust, &kc).await
        })
    }

    fn try_start_at(&self, db: &Path) -> amicn_ami::Result<Kms> {
        let rt = runtime();
        let svc = self.start_on(&rt, db)?;
        Ok(Kms { svc, rt })
    }

    fn start(&self) -> Kms {
        self.try_start_at(&self.db).unwrap()
    }

    /// Stops `kms` (its runtime, hence its connection) and waits until the forwarder has no
    /// route to the KMS any more.
    fn stop(&self, kms: Kms) {
        let Kms { svc, rt } = kms;
        drop(svc);
        rt.shutdown_timeout(Duration::from_secs(2));
        for _ in 0..50 {
            if self.kms_unreachable(Duration::from_millis(200)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the stopped KMS is still reachable");
    }

    /// Whether an Interest to the KMS's command prefix is Nacked for lack of a route.
    fn kms_unreachable(&self, lifetime: Duration) -> bool {
        let mut i = Interest::new(self.names.command("probe"));
        i.lifetime_ms = Some(lifetime.as_millis() as u64);
        matches!(
            self.rt.block_on(self.oc.express(&i)),
            Ok(Reply::Nack {
                reason: NackReason::NoRoute
            })
        )
    }

    fn meter(&self, id: u32, projects: &[&str]) -> Arc<Meter> {
        self.rt.block_on(async {
            let c = connect(&self.uri).await.unwrap();
            let cfg = MeterConfig::new(self.names.clone(), id, p(projects));
            let trust = Trust::new(&self.names, self.pki.anchor(), &c).unwrap();
            Meter::start(
                cfg,
                self.pki.issue(&self.names.meter(id)).unwrap(),
                trust,
                &c,
            )
            .await
            .unwrap()
        })
    }

    fn enrol(&self, m: &Meter) -> amicn_ami::Result<u32> {
        self.rt.block_on(m.enrol())
    }

    /// Lets `m` follow to `epoch`; checks it stays a member holding exactly its keys.
    fn follow(&self, kms: &Kms, m: &Meter, epoch: u32) {
        let r = self.rt.block_on(m.sync_keys(Some(epoch))).unwrap();
        assert!(!r.departed, "meter {} departed", m.id());
        assert_eq!(m.epoch(), epoch, "meter {}", m.id());
        assert_eq!(
            m.held_keys().len() as u64,
            kms.member_key_count(m.id()).unwrap(),
            "meter {}",
            m.id()
        );
    }

    /// The encoded bytes served for segment 0 of the manifest of `epoch`.
    fn manifest_wire(&self, epoch: u32) -> Bytes {
        let mut i = Interest::new(self.names.manifest_segment(epoch, 0));
        i.lifetime_ms = Some(2_000);
        match self.rt.block_on(self.oc.express(&i)).unwrap() {
            Reply::Data { data, .. } => data.wire().expect("received Data keeps its wire").clone(),
            other => panic!("manifest {epoch}: {other:?}"),
        }
    }

    /// Sends the exact bytes `wire` and returns the KMS's (verified) status code and text.
    fn send_status(&self, wire: &Bytes) -> (u64, String) {
        let name = Interest::decode(wire.clone()).unwrap().name;
        self.rt.block_on(async {
            let reply = self
                .oc
                .express_wire(&name, false, wire.clone(), Duration::from_secs(4))
                .await
                .unwrap();
            let Reply::Data { data, .. } = reply else {
                panic!("expected a status, got {reply:?}");
            };
            self.ot.verify_data(&data).await.unwrap();
            let mut r = TlvReader::new(data.content.clone());
            let code = r.expect(STATUS_CODE, "StatusCode").unwrap().nni().unwrap();
            let text = r.expect(STATUS_TEXT, "StatusText").unwrap();
            (code, String::from_utf8(text.value.to_vec()).unwrap())
        })
    }
}

fn refusal(r: amicn_ami::Result<u32>) -> String {
    match r {
        Err(AmiError::EnrolRefused { why, .. }) => why,
        other => panic!("enrolment should be refused, got {other:?}"),
    }
}

#[test]
fn epochs_continue_and_earlier_epochs_are_served_byte_identically() {
    let env = Env::new("epochs");
    let kms = env.start();
    kms.entitle(&[(1, p(&["p1"]))], "/test-utility/ami/dr")
        .unwrap();
    let m1 = env.meter(1, &["p1"]);
    let m2 = env.meter(2, &[]);
    for m in [&m1, &m2] {
        env.enrol(m).unwrap();
    }
    let e1 = kms.commit_epoch("enrol").unwrap().epoch;
    kms.stage_refresh(true, true);
    let e2 = kms.commit_epoch("refresh").unwrap().epoch;
    assert_eq!(e2, e1 + 1);
    for m in [&m1, &m2] {
        env.follow(&kms, m, e2);
    }
    let before: Vec<Bytes> = [e1, e2].iter().map(|&e| env.manifest_wire(e)).collect();
    let log = kms.epoch_log().unwrap().len();
    env.stop(kms);

    let kms = env.start();
    assert_eq!(kms.epoch(), e2);
    assert_eq!(kms.counters().epochs_restored, u64::from(e2));
    assert_eq!(kms.epoch_log().unwrap().len(), log);
    assert_eq!(kms.members(), vec![1, 2]);
    for (e, old) in [e1, e2].iter().zip(&before) {
        assert_eq!(&env.manifest_wire(*e), old, "manifest of epoch {e} changed");
    }
    kms.stage_refresh(true, true);
    let e3 = kms.commit_epoch("after restart").unwrap().epoch;
    assert_eq!(e3, e2 + 1, "the epoch sequence continues");
    for m in [&m1, &m2] {
        env.follow(&kms, m, e3);
        assert!(
            m.held_keys()
                .contains(&format!("/test-utility/ami/bcast/KEK/v={e3}")),
            "{:?}",
            m.held_keys()
        );
    }
    assert_eq!(m1.held_projects(), vec!["p1".to_string()]);
    let w3 = env.manifest_wire(e3);
    env.stop(kms);

    // A second restart replays a journal of several epochs.
    let kms = env.start();
    assert_eq!(kms.epoch(), e3);
    assert_eq!(env.manifest_wire(e3), w3);
    assert_eq!(env.manifest_wire(e1), before[0]);
    kms.stage_refresh(false, true);
    let e4 = kms.commit_epoch("after second restart").unwrap().epoch;
    assert_eq!(e4, e3 + 1);
    for m in [&m1, &m2] {
        env.follow(&kms, m, e4);
    }
    env.stop(kms);
}

#[test]
fn an_enrolment_accepted_before_a_restart_is_committed_after_it() {
    let env = Env::new("pending");
    let kms = env.start();
    kms.entitle(&[(2, p(&["p1"]))], "/test-utility/ami/dr")
        .unwrap();
    let m1 = env.meter(1, &[]);
    let m2 = env.meter(2, &["p1"]);
    let next = kms.epoch() + 1;
    for m in [&m1, &m2] {
        assert_eq!(env.enrol(m).unwrap(), next);
    }
    let staged = kms.members();
    env.stop(kms);

    let kms = env.start();
    assert!(kms.has_staged(), "the accepted enrolments are staged again");
    assert_eq!(kms.members(), staged);
    assert_eq!(kms.epoch(), next - 1, "nothing was committed");
    let rec = kms.commit_epoch("first after restart").unwrap();
    assert_eq!(rec.epoch, next, "the epoch the meters were promised");
    assert_eq!(rec.joins, vec![1, 2]);
    for m in [&m1, &m2] {
        env.follow(&kms, m, rec.epoch);
        assert!(m.is_member());
    }
    assert_eq!(m2.held_projects(), vec!["p1".to_string()]);
    assert!(m1.held_projects().is_empty());
    // Their user keys are the ones agreed before the restart: readings go to the MDMS's keys.
    let mut active: Vec<u32> = kms
        .head_end_keys()
        .active_meters()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    active.sort_unstable();
    assert_eq!(active, vec![1, 2]);
    env.stop(kms);
}

#[test]
fn a_staged_leave_survives_a_restart() {
    let env = Env::new("leave");
    let kms = env.start();
    let m1 = env.meter(1, &[]);
    let m2 = env.meter(2, &[]);
    for m in [&m1, &m2] {
        env.enrol(m).unwrap();
    }
    let e = kms.commit_epoch("enrol").unwrap().epoch;
    for m in [&m1, &m2] {
        env.follow(&kms, m, e);
    }
    kms.stage_leave(2).unwrap();
    let staged = kms.members();
    env.stop(kms);

    let kms = env.start();
    assert!(kms.has_staged());
    assert_eq!(kms.members(), staged);
    assert_eq!(kms.epoch(), e, "not carried out yet");
    let rec = kms.commit_epoch("leave").unwrap();
    assert_eq!(rec.departs, vec![2]);
    assert!(rec.joins.is_empty());
    let r = env.rt.block_on(m2.sync_keys(Some(rec.epoch))).unwrap();
    assert!(r.departed);
    assert!(m2.held_keys().is_empty());
    env.follow(&kms, &m1, rec.epoch);
    assert_eq!(kms.members(), vec![1]);
    env.stop(kms);
}

#[test]
fn revocations_and_entitlements_survive_a_restart() {
    let env = Env::new("revoked");
    let kms = env.start();
    kms.entitle(&[(1, p(&["p1"])), (3, p(&["p1"]))], "/test-utility/ami/dr")
        .unwrap();
    let m1 = env.meter(1, &["p1"]);
    let m2 = env.meter(2, &[]);
    for m in [&m1, &m2] {
        env.enrol(m).unwrap();
    }
    let e = kms.commit_epoch("enrol").unwrap().epoch;
    for m in [&m1, &m2] {
        env.follow(&kms, m, e);
    }
    let rec = kms.revoke(2, "revoke").unwrap();
    assert_eq!(rec.departs, vec![2]);
    assert!(
        env.rt
            .block_on(m2.sync_keys(Some(rec.epoch)))
            .unwrap()
            .departed
    );
    env.follow(&kms, &m1, rec.epoch);
    env.stop(kms);

    let kms = env.start();
    assert!(kms.revoked().contains_key(&2));
    let why = refusal(env.enrol(&m2));
    assert!(why.starts_with("revoked: "), "{why}");
    // Meter 3's entitlement (granted before the restart, never used) still holds; meter 4 has
    // none.
    let m3 = env.meter(3, &["p1"]);
    let m4 = env.meter(4, &["p1"]);
    assert_eq!(env.enrol(&m3).unwrap(), kms.epoch() + 1);
    let why = refusal(env.enrol(&m4));
    assert!(why.starts_with("not-entitled: "), "{why}");
    let rec = kms.commit_epoch("after restart").unwrap();
    assert_eq!(rec.joins, vec![3]);
    env.follow(&kms, &m3, rec.epoch);
    assert_eq!(m3.held_projects(), vec!["p1".to_string()]);
    env.follow(&kms, &m1, rec.epoch);
    assert_eq!(m1.held_projects(), vec!["p1".to_string()]);
    assert_eq!(kms.members(), vec![1, 3]);
    env.stop(kms);
}

/// A signed entitlement command for `meter` -> `project` (the exact bytes to send).
fn entitle_wire(env: &Env, meter: u32, project: &str) -> Bytes {
    let mut inner = BytesMut::new();
    amicn_tlv::encode_nni_tlv(&mut inner, METER_ID, u64::from(meter));
    amicn_tlv::encode_tlv(&mut inner, PROJECT, project.as_bytes());
    let mut params = BytesMut::new();
    amicn_tlv::encode_tlv(&mut params, ASSIGNMENT, &inner);
    let mut i = Interest::new(env.names.command("entitle"));
    i.app_parameters = Some(params.freeze());
    i.lifetime_ms = Some(4_000);
    i.must_be_fresh = true;
    env.dr.key.sign_interest(&mut i, now_ms()).unwrap()
}

#[test]
fn replay_records_survive_a_restart() {
    let env = Env::new("replay");
    let kms = env.start();
    // The records are written with every commit and by `flush_replay` (the daemon's tick).
    let by_commit = entitle_wire(&env, 7, "p2");
    let (code, text) = env.send_status(&by_commit);
    assert_eq!(code, 200, "{text}");
    kms.commit_epoch("flushes the replay records").unwrap();
    let by_flush = entitle_wire(&env, 8, "p1");
    let (code, text) = env.send_status(&by_flush);
    assert_eq!(code, 200, "{text}");
    kms.flush_replay().unwrap();
    env.stop(kms);

    let kms = env.start();
    for wire in [&by_commit, &by_flush] {
        let (code, text) = env.send_status(wire);
        assert_eq!(code, 403, "{text}");
        assert!(text.starts_with("replay"), "{text}");
    }
    assert_eq!(kms.counters().command_refused.get("replay"), Some(&2));
    assert_eq!(kms.counters().commands, 0);
    // The entitlements the original commands granted are still in force.
    let m7 = env.meter(7, &["p2"]);
    let m8 = env.meter(8, &["p1"]);
    env.enrol(&m7).unwrap();
    env.enrol(&m8).unwrap();
    env.stop(kms);
}

#[test]
fn a_damaged_or_symlinked_state_database_is_refused() {
    let env = Env::new("bad-db");
    let junk = env.dir.join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let e = env.try_start_at(&junk).map(|_| ()).unwrap_err();
    assert!(matches!(e, AmiError::State { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains(&junk.display().to_string()), "{e}");

    let target = env.dir.join("elsewhere.db");
    std::fs::write(&target, b"").unwrap();
    let link = env.dir.join("linked.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = env.try_start_at(&link).map(|_| ()).unwrap_err().to_string();
    assert!(
        e.contains(&link.display().to_string()) && e.contains("symbolic link"),
        "{e}"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        0,
        "the link's target is left alone"
    );
    assert!(
        env.kms_unreachable(Duration::from_millis(500)),
        "a KMS that failed to start registers nothing"
    );
}

#[test]
fn dropping_the_kms_and_its_client_releases_its_prefixes() {
    let env = Env::new("drop");
    let svc = env.start_on(&env.rt, &env.db).unwrap();
    assert!(!env.kms_unreachable(Duration::from_millis(200)));
    drop(svc);
    // Once the service and the caller's client are dropped, the connection closes and the
    // forwarder has no route to the KMS left (a restarted KMS does not compete with a zombie).
    let mut gone = false;
    for _ in 0..5 {
        if env.kms_unreachable(Duration::from_millis(300)) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "the dropped KMS still holds its registrations");
}
