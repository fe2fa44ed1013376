//! The KMS's authority rules through a real forwarder: who may enrol into which DR project, who
//! may sign which command, replayed commands, expired certificates and revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use amicn_ami::{
    AmiError, AmiNames, Credentials, KmsConfig, KmsService, Meter, MeterConfig, Pki, Trust,
    connect, entitle, meter_command, now_ms, now_us,
};
use amicn_face::client::{Client, Reply, TransportUri};
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use amicn_kms::cert::Validity;
use amicn_tlv::{Data, Interest, TlvReader};
use bytes::{Bytes, BytesMut};

/// TLV types of the AMI command and status encodings (`ami/src/wire.rs`).
const ASSIGNMENT: u32 = 0xC6;
const METER_ID: u32 = 0xFC;
const PROJECT: u32 = 0xE2;
const STATUS_CODE: u32 = 0xC8;
const STATUS_TEXT: u32 = 0xCA;

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

/// An in-process forwarder on a private Unix socket; `cs` = whether its Content Store answers.
fn forwarder(tag: &str, cs: bool) -> Net {
    let dir = std::env::temp_dir().join(format!(
        "amicn-ami-authority-{tag}-{}-{}",
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
    cfg.core.cs_serve = cs;
    cfg.core.cs_admit = cs;
    let fwd = RunningForwarder::start(cfg).unwrap();
    Net {
        _fwd: fwd,
        dir,
        uri: TransportUri::Unix(sock),
    }
}

/// A KMS for projects p1 and p2 with the DR operator and the utility operator provisioned, and a
/// connection for the operators' commands.
struct Setup {
    net: Net,
    names: AmiNames,
    pki: Pki,
    kms: Arc<KmsService>,
    /// The KMS's trust (certificates of command signers are added here).
    kms_trust: Arc<Trust>,
    dr: Credentials,
    operator: Credentials,
    /// The operators' connection and trust (to verify the KMS's answers).
    oc: Client,
    ot: Arc<Trust>,
}

async fn setup(tag: &str, cs: bool) -> Setup {
    let net = forwarder(tag, cs);
    let names = AmiNames::new("/test-utility").unwrap();
    let pki = Pki::new(&names).unwrap();
    let kc = connect(&net.uri).await.unwrap();
    let kms_trust = Trust::new(&names, pki.anchor(), &kc).unwrap();
    let dr = pki.issue(&names.role("dr")).unwrap();
    let operator = pki.issue(&names.role("operator")).unwrap();
    // What provisioning does for the daemon: the KMS verifies commands only against
    // certificates it already holds.
    kms_trust.add_certificate(dr.cert.clone());
    kms_trust.add_certificate(operator.cert.clone());
    let kms = KmsService::start(
        KmsConfig::new(names.clone(), vec!["p1".into(), "p2".into()]),
        pki.issue(&names.kms()).unwrap(),
        kms_trust.clone(),
        &kc,
    )
    .await
    .unwrap();
    let oc = connect(&net.uri).await.unwrap();
    let ot = Trust::new(&names, pki.anchor(), &oc).unwrap();
    Setup {
        net,
        names,
        pki,
        kms,
        kms_trust,
        dr,
        operator,
        oc,
        ot,
    }
}

fn copy(c: &Credentials) -> Credentials {
    Credentials {
        key: c.key.clone(),
        cert: c.cert.clone(),
    }
}

impl Setup {
    /// Meter `id` asking for `projects` at enrolment, with a fresh certificate.
    async fn meter(&self, id: u32, projects: &[&str]) -> Arc<Meter> {
        let creds = self.pki.issue(&self.names.meter(id)).unwrap();
        self.meter_with(id, projects, creds).await
    }

    async fn meter_with(&self, id: u32, projects: &[&str], creds: Credentials) -> Arc<Meter> {
        let c = connect(&self.net.uri).await.unwrap();
        let cfg = MeterConfig::new(
            self.names.clone(),
            id,
            projects.iter().map(|p| p.to_string()).collect(),
        );
        let trust = Trust::new(&self.names, self.pki.anchor(), &c).unwrap();
        Meter::start(cfg, creds, trust, &c).await.unwrap()
    }

    async fn entitle_as(
        &self,
        key: &Credentials,
        a: &[(u32, Vec<String>)],
    ) -> amicn_ami::Result<amicn_ami::Status> {
        entitle(&self.oc, &self.names, &self.ot, &key.key, a).await
    }

    async fn command_as(
        &self,
        key: &Credentials,
        verb: &str,
        meter: u32,
    ) -> amicn_ami::Result<amicn_ami::Status> {
        meter_command(&self.oc, &self.names, &self.ot, &key.key, verb, meter).await
    }

    /// Commits and lets every meter follow to that epoch; checks each holds exactly what the
    /// KMS says it is entitled to.
    async fn commit_and_sync(&self, label: &str, meters: &[&Arc<Meter>]) -> u32 {
        let rec = self.kms.commit_epoch(label).unwrap();
        for m in meters {
            let r = m.sync_keys(Some(rec.epoch)).await.unwrap();
            assert!(!r.departed, "meter {} departed", m.id());
            assert_eq!(
                m.held_keys().len() as u64,
                self.kms.member_key_count(m.id()).unwrap(),
                "meter {}",
                m.id()
            );
        }
        rec.epoch
    }
}

fn refusal(r: amicn_ami::Result<u32>) -> String {
    match r {
        Err(AmiError::EnrolRefused { why, .. }) => why,
        other => panic!("enrolment should be refused, got {other:?}"),
    }
}

fn refused_command(r: amicn_ami::Result<amicn_ami::Status>) -> (u64, String) {
    match r {
        Err(AmiError::Refused { code, why, .. }) => (code, why),
        other => panic!("command should be refused, got {other:?}"),
    }
}

fn p(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_is_limited_to_entitled_projects() {
    let s = setup("entitled", true).await;
    let m1 = s.meter(1, &["p1"]).await;
    let m2 = s.meter(2, &[]).await;

    let why = refusal(m1.enrol().await);
    assert!(why.starts_with("not-entitled: "), "{why}");
    assert!(why.contains("\"p1\""), "{why}");
    assert!(!m1.is_enrolled());
    assert!(!s.kms.has_staged(), "a refused enrolment stages nothing");

    let st = s.entitle_as(&s.dr, &[(1, p(&["p1"]))]).await.unwrap();
    assert_eq!(st.code, 200);
    let next = s.kms.epoch() + 1;
    assert_eq!(m1.enrol().await.unwrap(), next);
    // No entitlement and no request: joins with the broadcast key only.
    assert_eq!(m2.enrol().await.unwrap(), next);
    let rec = s.kms.commit_epoch("enrol").unwrap();
    assert_eq!(rec.joins, vec![1, 2]);
    for m in [&m1, &m2] {
        let r = m.sync_keys(Some(rec.epoch)).await.unwrap();
        assert_eq!((r.epoch, r.departed), (rec.epoch, false));
        assert!(m.is_member());
        assert_eq!(
            m.held_keys().len() as u64,
            s.kms.member_key_count(m.id()).unwrap()
        );
    }
    assert_eq!(m1.held_projects(), vec!["p1".to_string()]);
    assert!(
        m1.held_keys()
            .iter()
            .any(|k| k.starts_with("/test-utility/ami/dr/p1/KEK/")),
        "{:?}",
        m1.held_keys()
    );
    assert!(m2.held_projects().is_empty(), "{:?}", m2.held_keys());
    assert!(
        m2.held_keys()
            .iter()
            .any(|k| k.starts_with("/test-utility/ami/bcast/KEK/")),
        "{:?}",
        m2.held_keys()
    );
    assert_eq!(s.kms.enrolments(), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entitlement_signed_by_a_meter_or_pricing_is_refused() {
    let s = setup("entitle-forged", true).await;
    let creds = s.pki.issue(&s.names.meter(1)).unwrap();
    let pricing = s.pki.issue(&s.names.price_prefix()).unwrap();
    // Known to the KMS, so the refusal is the trust rule's, not a missing certificate.
    s.kms_trust.add_certificate(creds.cert.clone());
    s.kms_trust.add_certificate(pricing.cert.clone());
    let m1 = s.meter_with(1, &["p1"], copy(&creds)).await;

    for signer in [&creds, &pricing] {
        let (code, why) = refused_command(s.entitle_as(signer, &[(1, p(&["p1"]))]).await);
        assert_eq!(code, 403, "{why}");
        assert!(why.starts_with("not-authorised: "), "{why}");
    }
    // The utility operator is not the DR operator either.
    let (code, why) = refused_command(s.entitle_as(&s.operator, &[(1, p(&["p1"]))]).await);
    assert_eq!(code, 403, "{why}");
    assert!(why.starts_with("not-authorised: "), "{why}");
    assert_eq!(s.kms.counters().commands, 0);
    assert_eq!(
        s.kms.counters().command_refused.get("not-authorised"),
        Some(&3)
    );

    // Nothing changed: the meter still cannot enrol into p1.
    let why = refusal(m1.enrol().await);
    assert!(why.starts_with("not-entitled: "), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_retirement_signed_by_the_dr_operator_are_refused() {
    let s = setup("revoke-by-dr", true).await;
    let m1 = s.meter(1, &[]).await;
    m1.enrol().await.unwrap();
    let e = s.commit_and_sync("enrol", &[&m1]).await;

    for verb in ["revoke", "leave"] {
        let (code, why) = refused_command(s.command_as(&s.dr, verb, 1).await);
        assert_eq!(code, 403, "{verb}: {why}");
        assert!(why.starts_with("not-authorised: "), "{verb}: {why}");
    }
    assert!(s.kms.revoked().is_empty());
    assert!(!s.kms.has_staged());
    assert_eq!(s.kms.members(), vec![1]);
    assert_eq!(s.kms.epoch(), e, "no epoch was committed");
}

/// The status code and text of a KMS answer, after checking the KMS signed it.
async fn status_of(s: &Setup, reply: Reply) -> (u64, String) {
    let data: Data = match reply {
        Reply::Data { data, .. } => data,
        other => panic!("expected a status, got {other:?}"),
    };
    s.ot.verify_data(&data).await.unwrap();
    let mut r = TlvReader::new(data.content.clone());
    let code = r.expect(STATUS_CODE, "StatusCode").unwrap().nni().unwrap();
    let text = r.expect(STATUS_TEXT, "StatusText").unwrap();
    (code, String::from_utf8(text.value.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_command_is_refused() {
    // No Content Store: the second Interest must reach the KMS, not a cached answer.
    let s = setup("replay", false).await;
    let mut inner = BytesMut::new();
    amicn_tlv::encode_nni_tlv(&mut inner, METER_ID, 5);
    amicn_tlv::encode_tlv(&mut inner, PROJECT, b"p1");
    let mut params = BytesMut::new();
    amicn_tlv::encode_tlv(&mut params, ASSIGNMENT, &inner);

    let mut i = Interest::new(s.names.command("entitle"));
    i.app_parameters = Some(params.freeze());
    i.lifetime_ms = Some(4_000);
    i.must_be_fresh = true;
    // No Interest Nonce: the forwarder adds a fresh one to each copy, so the second copy is not
    // dropped as a loop; the signed part (SignatureNonce, SignatureTime) is identical.
    let wire: Bytes = s.dr.key.sign_interest(&mut i, now_ms()).unwrap();
    let sent = Interest::decode(wire.clone()).unwrap();
    let send = || {
        s.oc.express_wire(&sent.name, false, wire.clone(), Duration::from_secs(4))
    };

    let (code, text) = status_of(&s, send().await.unwrap()).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(s.kms.counters().commands, 1);

    // The identical signed Interest reaches the KMS again (its answers are never stored) and
    // is refused by the replay check.
    let (code, text) = status_of(&s, send().await.unwrap()).await;
    assert_eq!(code, 403, "{text}");
    assert!(text.starts_with("replay"), "{text}");
    assert_eq!(s.kms.counters().commands, 1);
    assert_eq!(s.kms.counters().command_refused.get("replay"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_meter_certificate_cannot_enrol() {
    let s = setup("expired", true).await;
    let now_s = now_ms() / 1000;
    let creds = s
        .pki
        .issue_with_validity(
            &s.names.meter(4),
            Validity {
                not_before: now_s - 7_200,
                not_after: now_s - 3_600,
            },
        )
        .unwrap();
    let cert_name = creds.cert.name().to_string();
    let m4 = s.meter_with(4, &[], creds).await;
    let why = refusal(m4.enrol().await);
    // The trust code reports `certificate <name> expired at <YYYYMMDDThhmmss>`.
    assert!(why.starts_with("certificate-expired: "), "{why}");
    assert!(
        why.contains(&format!("certificate {cert_name} expired at ")),
        "{why}"
    );
    assert!(!m4.is_enrolled());
    assert!(!s.kms.has_staged());
    assert_eq!(s.kms.enrolments(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revocation_departs_the_meter_for_good() {
    let s = setup("revoke", true).await;
    s.entitle_as(&s.dr, &[(1, p(&["p1"]))]).await.unwrap();
    let m1 = s.meter(1, &["p1"]).await;
    let m2 = s.meter(2, &[]).await;
    let m3 = s.meter(3, &[]).await;
    for m in [&m1, &m2, &m3] {
        m.enrol().await.unwrap();
    }
    s.commit_and_sync("enrol", &[&m1, &m2, &m3]).await;

    let st = s.command_as(&s.operator, "revoke", 1).await.unwrap();
    assert_eq!(st.code, 200, "{}", st.text);
    let e = st.epoch.expect("a revocation of a member commits an epoch");
    assert_eq!(s.kms.epoch(), e);
    assert!(s.kms.revoked().contains_key(&1));
    assert!(!s.kms.members().contains(&1));

    let r = m1.sync_keys(Some(e)).await.unwrap();
    assert!(r.departed);
    assert!(m1.held_keys().is_empty());
    assert!(m1.held_projects().is_empty());
    for m in [&m2, &m3] {
        let r = m.sync_keys(Some(e)).await.unwrap();
        assert!(!r.departed);
        assert_eq!(
            m.held_keys().len() as u64,
            s.kms.member_key_count(m.id()).unwrap()
        );
    }
    let why = refusal(m1.enrol().await);
    assert!(why.starts_with("revoked: "), "{why}");
    assert!(!s.kms.has_staged());

    // Retirement by the operator: staged, carried out by the next commit.
    let st = s.command_as(&s.operator, "leave", 3).await.unwrap();
    assert_eq!((st.code, st.epoch), (200, Some(e + 1)), "{}", st.text);
    let rec = s.kms.commit_epoch("leave").unwrap();
    assert_eq!(rec.departs, vec![3]);
    assert!(m3.sync_keys(Some(rec.epoch)).await.unwrap().departed);
    assert!(!m2.sync_keys(Some(rec.epoch)).await.unwrap().departed);
    // Retired, not revoked: it may enrol again.
    assert!(!s.kms.revoked().contains_key(&3));
    assert_eq!(m3.enrol().await.unwrap(), rec.epoch + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_asked_again_after_a_lost_answer_gets_the_same_answer() {
    // TLV types of the enrolment request (`ami/src/wire.rs`).
    const X25519_KEY: u32 = 0xE0;
    const CERTIFICATE: u32 = 0xE4;
    let s = setup("lost-answer", false).await;
    let creds = s.pki.issue(&s.names.meter(9)).unwrap();
    let enrol = |x25519: [u8; 32], at_ms: u64| {
        let mut params = BytesMut::new();
        amicn_tlv::encode_tlv(&mut params, X25519_KEY, &x25519);
        amicn_tlv::encode_tlv(&mut params, CERTIFICATE, &creds.cert.to_wire());
        let mut i = Interest::new(s.names.enrol(9));
        i.app_parameters = Some(params.freeze());
        i.lifetime_ms = Some(4_000);
        let wire: Bytes = creds.key.sign_interest(&mut i, at_ms).unwrap();
        let name = Interest::decode(wire.clone()).unwrap().name;
        (name, wire)
    };
    let oc = &s.oc;
    let answer = |name: amicn_tlv::Name, wire: Bytes| async move {
        match oc
            .express_wire(&name, false, wire, Duration::from_secs(4))
            .await
            .unwrap()
        {
            Reply::Data { data, .. } => data,
            other => panic!("expected an answer, got {other:?}"),
        }
    };
    let key = amicn_kms::establish::EphemeralAgreement::generate().public_key();
    let t = now_ms();
    let (n1, w1) = enrol(key, t);
    let first = answer(n1.clone(), w1.clone()).await;
    assert_ne!(first.meta_info.content_type, 3, "{:?}", first.content);
    // A retransmitted copy of the same signed Interest (a replay to the KMS) is answered the
    // same, not refused: its answer may be the one that got through.
    let copy = answer(n1, w1).await;
    assert_eq!(copy.content, first.content);
    // The answer is lost on the way; the meter asks again, signed anew, with the same key.
    let (n2, w2) = enrol(key, t + 10);
    let again = answer(n2, w2).await;
    assert_eq!(
        again.content, first.content,
        "the same salt, KMS key and epoch"
    );
    assert_eq!(s.kms.counters().enrol_repeated, 2);
    assert_eq!(s.kms.counters().enrolled, 1);
    // Another key for an enrolled meter is still refused: nobody re-keys a member this way.
    let other = amicn_kms::establish::EphemeralAgreement::generate().public_key();
    let (n3, w3) = enrol(other, t + 20);
    let refused = answer(n3, w3).await;
    assert_eq!(refused.meta_info.content_type, 3);
    assert!(
        String::from_utf8_lossy(&refused.content).contains("already-enrolled"),
        "{:?}",
        refused.content
    );
}
