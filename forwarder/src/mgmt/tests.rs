//! Management against a table double: golden comparisons with NFD's captured answers and the
//! status codes of every command.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use amicn_tlv::{Data, Interest, Name, NetPacket, decode_packet};
use bytes::{Bytes, BytesMut};

use super::*;
use crate::core::{FaceScope, LinkType};
use amicn_tlv::mgmt::{ControlParameters, ControlResponse};

pub(crate) fn unhex(s: &str) -> Bytes {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// Splits a capture holding several packets back to back.
pub(crate) fn packets(hex: &str) -> Vec<Bytes> {
    let mut all = unhex(hex);
    let mut out = Vec::new();
    while !all.is_empty() {
        let n = amicn_tlv::split_first_tlv(&all).unwrap().unwrap();
        out.push(all.split_to(n));
    }
    out
}

#[derive(Default)]
struct MockTables {
    faces: BTreeMap<u64, (FaceOptions, FaceCounters)>,
    fib: BTreeMap<Name, BTreeMap<u64, u64>>,
    cs: CsState,
    erased: usize,
    strategies: BTreeMap<Name, Name>,
}

impl MockTables {
    fn with_faces(ids: &[u64]) -> Self {
        let mut t = MockTables::default();
        for id in ids {
            t.faces.insert(
                *id,
                (
                    FaceOptions {
                        remote_uri: format!("fd://{id}"),
                        local_uri: "unix:///run/nfd/nfd.sock".into(),
                        scope: FaceScope::Local,
                        persistency: FacePersistency::OnDemand,
                        ..FaceOptions::default()
                    },
                    FaceCounters::default(),
                ),
            );
        }
        t.cs = CsState {
            capacity: 65536,
            admit: true,
            serve: true,
            ..CsState::default()
        };
        t.strategies.insert(
            Name::default(),
            Name::from_uri("/localhost/nfd/strategy/best-route/v=5").unwrap(),
        );
        t
    }
}

impl Tables for MockTables {
    fn face(&self, face: FaceId) -> Option<(FaceOptions, FaceCounters)> {
        self.faces.get(&face.0).cloned()
    }
    fn faces(&self) -> Vec<(FaceId, FaceOptions, FaceCounters)> {
        self.faces
            .iter()
            .map(|(id, (o, c))| (FaceId(*id), o.clone(), *c))
            .collect()
    }
    fn update_face(&mut self, face: FaceId, options: FaceOptions) -> bool {
        match self.faces.get_mut(&face.0) {
            Some(f) => {
                f.0 = options;
                true
            }
            None => false,
        }
    }
    fn fib_add_next_hop(&mut self, prefix: &Name, face: FaceId, cost: u64) {
        self.fib
            .entry(prefix.clone())
            .or_default()
            .insert(face.0, cost);
    }
    fn fib_remove_next_hop(&mut self, prefix: &Name, face: FaceId) {
        if let Some(e) = self.fib.get_mut(prefix) {
            e.remove(&face.0);
            if e.is_empty() {
                self.fib.remove(prefix);
            }
        }
    }
    fn fib_entries(&self) -> Vec<(Name, Vec<(FaceId, u64)>)> {
        self.fib
            .iter()
            .map(|(n, h)| (n.clone(), h.iter().map(|(f, c)| (FaceId(*f), *c)).collect()))
            .collect()
    }
    fn cs_state(&self) -> CsState {
        self.cs
    }
    fn cs_configure(&mut self, capacity: Option<u64>, admit: Option<bool>, serve: Option<bool>) {
        if let Some(c) = capacity {
            self.cs.capacity = c;
        }
        if let Some(a) = admit {
            self.cs.admit = a;
        }
        if let Some(s) = serve {
            self.cs.serve = s;
        }
    }
    fn cs_erase(&mut self, _prefix: &Name, limit: usize) -> usize {
        self.erased = limit.min(3);
        self.erased
    }
    fn strategy_choices(&self) -> Vec<(Name, Name)> {
        self.strategies
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect()
    }
    fn strategy_set(&mut self, prefix: &Name, strategy: &Name) -> Option<Name> {
        let known = Name::from_uri("/localhost/nfd/strategy/multicast").unwrap();
        if !known.is_prefix_of(strategy) {
            return None;
        }
        let inst = known.append(amicn_tlv::Component::version(4));
        self.strategies.insert(prefix.clone(), inst.clone());
        Some(inst)
    }
    fn strategy_unset(&mut self, prefix: &Name) {
        self.strategies.remove(prefix);
    }
    fn forwarder_counters(&self) -> ForwarderCounters {
        ForwarderCounters {
            n_fib_entries: self.fib.len() as u64,
            n_in_interests: 7,
            ..ForwarderCounters::default()
        }
    }
}

fn interest_of(wire: Bytes) -> (Interest, Option<Bytes>) {
    let r = decode_packet(wire).unwrap();
    match r.packet {
        NetPacket::Interest(i) => (i, r.lp.pit_token),
        other => panic!("not an Interest: {other:?}"),
    }
}

fn drain(m: &mut Management) -> Vec<(FaceId, Bytes)> {
    std::iter::from_fn(|| m.poll_reply())
        .map(|r| (r.face, r.to_wire()))
        .collect()
}

fn feed(m: &mut Management, t: &mut MockTables, face: u64, wire: Bytes) -> Vec<(FaceId, Bytes)> {
    let (i, tok) = interest_of(wire);
    m.on_interest(Time::ZERO, FaceId(face), &i, tok, t, &mut NoFaceSystem);
    drain(m)
}

fn reply_data(wire: &Bytes) -> Data {
    match decode_packet(wire.clone()).unwrap().packet {
        NetPacket::Data(d) => d,
        other => panic!("not Data: {other:?}"),
    }
}

fn command(uri_prefix: &str, cp: &ControlParameters) -> Bytes {
    let name = Name::from_uri(uri_prefix)
        .unwrap()
        .append(amicn_tlv::Component::generic(cp.encode()));
    let mut i = Interest::new(name);
    i.nonce = Some(1);
    i.sign_digest_sha256(amicn_tlv::SignatureInfo::digest_sha256())
}

fn status_of(out: &[(FaceId, Bytes)]) -> (u64, ControlResponse) {
    assert_eq!(out.len(), 1, "exactly one reply expected");
    let d = reply_data(&out[0].1);
    let r = ControlResponse::decode(d.content.clone()).unwrap();
    (r.status_code, r)
}

/// Our answer to each captured registration must be byte-identical to NFD's, given the same
/// requesting face id: same name, MetaInfo, ControlResponse body and DigestSha256 value (and
/// the same PitToken wrapping for NDNts).
#[test]
fn registration_replies_are_byte_identical_to_nfd() {
    let cases = [
        (
            "python-ndn-v1",
            include_str!("../../tests/mgmt_vectors/python-ndn-v1.to-forwarder.hex"),
            include_str!("../../tests/mgmt_vectors/python-ndn-v1.from-forwarder.hex"),
        ),
        (
            "python-ndn-v2",
            include_str!("../../tests/mgmt_vectors/python-ndn-v2.to-forwarder.hex"),
            include_str!("../../tests/mgmt_vectors/python-ndn-v2.from-forwarder.hex"),
        ),
        (
            "ndn-cxx",
            include_str!("../../tests/mgmt_vectors/ndn-cxx-registerPrefix.to-forwarder.hex"),
            include_str!("../../tests/mgmt_vectors/ndn-cxx-registerPrefix.from-forwarder.hex"),
        ),
        (
            "ndnts",
            include_str!("../../tests/mgmt_vectors/ndnts.to-forwarder.hex"),
            include_str!("../../tests/mgmt_vectors/ndnts.from-forwarder.hex"),
        ),
    ];
    for (who, to, from) in cases {
        let sent = packets(to);
        let nfd = packets(from);
        assert_eq!(sent.len(), nfd.len(), "{who}");
        // The face NFD saw the command on is the FaceId in its completed parameters.
        let nfd_body = ControlResponse::decode(reply_data(&nfd[0]).content.clone())
            .unwrap()
            .body
            .unwrap();
        let face = nfd_body.face_id.unwrap();
        let mut t = MockTables::with_faces(&[face]);
        let mut m = Management::default();
        for (cmd, want) in sent.into_iter().zip(nfd) {
            let out = feed(&mut m, &mut t, face, cmd);
            assert_eq!(out.len(), 1, "{who}");
            assert_eq!(out[0].0, FaceId(face), "{who}");
            let ours = reply_data(&out[0].1);
            assert!(ours.verify_digest_sha256(), "{who}: digest must verify");
            assert_eq!(ours.meta_info.freshness_period_ms, Some(1000), "{who}");
            assert_eq!(out[0].1, want, "{who}: reply differs from NFD's");
        }
    }
}

#[test]
fn registration_installs_fib_next_hop_for_the_requesting_face() {
    let to = include_str!("../../tests/mgmt_vectors/python-ndn-v1.to-forwarder.hex");
    let mut t = MockTables::with_faces(&[300]);
    let mut m = Management::default();
    let out = feed(&mut m, &mut t, 300, packets(to).remove(0));
    let (code, r) = status_of(&out);
    assert_eq!(code, 200);
    assert_eq!(r.body.unwrap().face_id, Some(300));
    let prefix = Name::from_uri("/cap/python-v1").unwrap();
    assert_eq!(t.fib.get(&prefix).unwrap().get(&300), Some(&0));
    // The face goes away: its route and next hop with it.
    m.on_face_removed(Time::ZERO, FaceId(300), &mut t);
    assert!(t.fib.is_empty());
    assert!(m.rib().is_empty());
}

#[test]
fn ndnts_route_expires_and_unregister_removes_route() {
    let sent = packets(include_str!(
        "../../tests/mgmt_vectors/ndnts.to-forwarder.hex"
    ));
    let mut t = MockTables::with_faces(&[292]);
    let mut m = Management::default();
    let (i, tok) = interest_of(sent[0].clone());
    m.on_interest(Time::ZERO, FaceId(292), &i, tok, &mut t, &mut NoFaceSystem);
    let prefix = Name::from_uri("/cap/ndnts").unwrap();
    assert!(t.fib.contains_key(&prefix));
    assert_eq!(m.poll_timeout(), Some(Time::from_millis(1_200_000)));
    m.on_timeout(Time::from_millis(1_199_999), &mut t);
    assert!(t.fib.contains_key(&prefix));
    m.on_timeout(Time::from_millis(1_200_000), &mut t);
    assert!(!t.fib.contains_key(&prefix));
    // Register again, then unregister (origin 65 as NDNts sends it).
    m.on_interest(Time::ZERO, FaceId(292), &i, None, &mut t, &mut NoFaceSystem);
    assert!(t.fib.contains_key(&prefix));
    let (u, _) = interest_of(sent[1].clone());
    m.on_interest(Time::ZERO, FaceId(292), &u, None, &mut t, &mut NoFaceSystem);
    assert!(!t.fib.contains_key(&prefix));
}

#[test]
fn faces_query_dataset_is_byte_identical_to_nfd() {
    let sent = packets(include_str!(
        "../../tests/mgmt_vectors/nfdc-route-add.to-forwarder.hex"
    ));
    let nfd = packets(include_str!(
        "../../tests/mgmt_vectors/nfdc-route-add.from-forwarder.hex"
    ));
    let mut t = MockTables::default();
    // NFD's internal face as its FaceStatus in the capture describes it.
    t.faces.insert(
        1,
        (
            FaceOptions {
                remote_uri: "internal://".into(),
                local_uri: "internal://".into(),
                scope: FaceScope::Local,
                link_type: LinkType::PointToPoint,
                persistency: FacePersistency::Permanent,
                local_fields_enabled: true,
                congestion_marking: false,
                mtu: Some(8800),
            },
            FaceCounters {
                n_in_data: 0x60,
                n_out_interests: 0x62,
                n_in_bytes: 0x3f69,
                n_out_bytes: 0x2023,
                ..FaceCounters::default()
            },
        ),
    );
    t.faces.insert(
        2,
        (
            FaceOptions {
                remote_uri: "udp4://10.0.0.1:6363".into(),
                ..FaceOptions::default()
            },
            FaceCounters::default(),
        ),
    );
    let mut m = Management::new(MgmtConfig {
        epoch_unix_ms: 0x0000_01a2_0f44_9ef1,
        ..MgmtConfig::default()
    });
    let out = feed(&mut m, &mut t, 1, sent[0].clone());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, nfd[0], "faces/query answer differs from NFD's");
    // The registration that follows names face 1 explicitly.
    let out = feed(&mut m, &mut t, 400, sent[1].clone());
    assert_eq!(out[0].1, nfd[1]);
    assert!(
        t.fib
            .get(&Name::from_uri("/cap/nfdc").unwrap())
            .unwrap()
            .contains_key(&1)
    );
}

#[test]
fn undecodable_parameters_and_unknown_verbs_get_no_answer() {
    let mut t = MockTables::with_faces(&[256]);
    let mut m = Management::default();
    // Component 4 is not a ControlParameters TLV.
    let mut i = Interest::new(Name::from_uri("/localhost/nfd/rib/register/garbage").unwrap());
    i.nonce = Some(3);
    assert!(feed(&mut m, &mut t, 256, i.encode()).is_empty());
    // No parameters at all.
    let i = Interest::new(Name::from_uri("/localhost/nfd/rib/register").unwrap());
    assert!(feed(&mut m, &mut t, 256, i.encode()).is_empty());
    // Unknown verb with valid parameters.
    let cp = ControlParameters {
        name: Some(Name::from_uri("/a").unwrap()),
        ..Default::default()
    };
    assert!(
        feed(
            &mut m,
            &mut t,
            256,
            command("/localhost/nfd/rib/frobnicate", &cp)
        )
        .is_empty()
    );
    // Not under /localhost/nfd.
    assert!(
        feed(
            &mut m,
            &mut t,
            256,
            command("/localhost/other/rib/register", &cp)
        )
        .is_empty()
    );
    assert_eq!(m.counters().dropped, 4);
}

#[test]
fn validation_and_name_length_codes() {
    let mut t = MockTables::with_faces(&[256]);
    let mut m = Management::default();
    // Forbidden field (Uri) in rib/register.
    let cp = ControlParameters {
        name: Some(Name::from_uri("/a").unwrap()),
        uri: Some("udp4://1.2.3.4".into()),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(
        (code, r.status_text.as_str()),
        (400, "failed in validating parameters")
    );
    // Missing required Name.
    let cp = ControlParameters {
        cost: Some(1),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(code, 400);
    // 33 components.
    let long: String = (0..33).map(|i| format!("/c{i}")).collect();
    let cp = ControlParameters {
        name: Some(Name::from_uri(&long).unwrap()),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(code, 414);
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/fib/add-nexthop", &cp),
    ));
    assert_eq!(code, 414);
    // 32 is fine.
    let ok: String = (0..32).map(|i| format!("/c{i}")).collect();
    let cp = ControlParameters {
        name: Some(Name::from_uri(&ok).unwrap()),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(code, 200);
    let body = r.body.unwrap();
    assert_eq!(
        (body.face_id, body.origin, body.cost, body.flags),
        (Some(256), Some(0), Some(0), Some(1))
    );
    assert_eq!(body.expiration_period, None);
}

struct RejectAll;

impl CommandVerifier for RejectAll {
    fn verify(&mut self, _now: Time, interest: &Interest) -> Verdict {
        if interest.signature_info.is_some() {
            Verdict::Reject
        } else {
            Verdict::Drop
        }
    }
}

#[test]
fn verifier_rejects_with_403_or_drops() {
    let mut t = MockTables::with_faces(&[256]);
    let mut m = Management::default();
    m.set_verifier(Box::new(RejectAll));
    let cp = ControlParameters {
        name: Some(Name::from_uri("/a").unwrap()),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(
        (code, r.status_text.as_str()),
        (403, "authorization rejected")
    );
    assert!(t.fib.is_empty());
    // Old-style command from python-ndn: no InterestSignatureInfo → malformed → dropped.
    let old = packets(include_str!(
        "../../tests/mgmt_vectors/python-ndn-v1.to-forwarder.hex"
    ));
    assert!(feed(&mut m, &mut t, 256, old[0].clone()).is_empty());
}

#[test]
fn fib_strategy_and_cs_commands() {
    let mut t = MockTables::with_faces(&[256, 257]);
    let mut m = Management::default();
    let p = Name::from_uri("/x").unwrap();
    let cp = ControlParameters {
        name: Some(p.clone()),
        face_id: Some(257),
        cost: Some(9),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/fib/add-nexthop", &cp),
    ));
    assert_eq!(code, 200);
    assert_eq!(t.fib[&p][&257], 9);
    let cp = ControlParameters {
        name: Some(p.clone()),
        face_id: Some(999),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/fib/add-nexthop", &cp),
    ));
    assert_eq!(code, 410);
    let cp = ControlParameters {
        name: Some(p.clone()),
        face_id: Some(257),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/fib/remove-nexthop", &cp),
    ));
    assert_eq!(code, 200);
    assert!(t.fib.is_empty());

    let strat = Name::from_uri("/localhost/nfd/strategy/multicast").unwrap();
    let cp = ControlParameters {
        name: Some(p.clone()),
        strategy: Some(strat),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/strategy-choice/set", &cp),
    ));
    assert_eq!(code, 200);
    assert_eq!(
        r.body.unwrap().strategy.unwrap().to_string(),
        "/localhost/nfd/strategy/multicast/v=4"
    );
    let cp = ControlParameters {
        name: Some(p.clone()),
        strategy: Some(Name::from_uri("/nope").unwrap()),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/strategy-choice/set", &cp),
    ));
    assert_eq!(code, 404);
    let cp = ControlParameters {
        name: Some(Name::default()),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/strategy-choice/unset", &cp),
    ));
    assert_eq!(code, 400, "unsetting the root is invalid");
    let cp = ControlParameters {
        name: Some(p.clone()),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/strategy-choice/unset", &cp),
    ));
    assert_eq!(code, 200);
    assert!(!t.strategies.contains_key(&p));

    let cp = ControlParameters {
        capacity: Some(10),
        flags: Some(0),
        mask: Some(1),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/cs/config", &cp),
    ));
    assert_eq!(code, 200);
    let b = r.body.unwrap();
    assert_eq!((b.capacity, b.flags), (Some(10), Some(2)));
    let cp = ControlParameters {
        flags: Some(0),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/cs/config", &cp),
    ));
    assert_eq!(code, 400, "Flags without Mask");
    let cp = ControlParameters {
        name: Some(p.clone()),
        count: Some(2),
        ..Default::default()
    };
    let (code, r) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/cs/erase", &cp),
    ));
    assert_eq!(code, 200);
    let b = r.body.unwrap();
    assert_eq!((b.count, b.capacity), (Some(2), Some(2)));
}

#[test]
fn face_commands_use_the_face_system() {
    struct Fs(Vec<FaceId>);
    impl FaceSystem for Fs {
        fn create_face(
            &mut self,
            _r: u64,
            p: &FaceCreateRequest,
        ) -> Option<Result<FaceId, FaceCreateError>> {
            Some(match p.remote_uri.as_str() {
                "udp4://192.0.2.1:6363" => Ok(FaceId(256)),
                "udp4://192.0.2.2:6363" => Err(FaceCreateError::Exists(FaceId(256))),
                "bogus" => Err(FaceCreateError::MalformedUri),
                _ => Err(FaceCreateError::UnsupportedProtocol),
            })
        }
        fn destroy_face(&mut self, face: FaceId) {
            self.0.push(face);
        }
        fn channels(&self) -> Vec<String> {
            vec!["udp4://0.0.0.0:6363".into()]
        }
    }
    let mut t = MockTables::with_faces(&[256, 300]);
    let mut m = Management::default();
    let mut fs = Fs(Vec::new());
    let run = |m: &mut Management,
               t: &mut MockTables,
               fs: &mut Fs,
               prefix: &str,
               cp: &ControlParameters| {
        let (i, _) = interest_of(command(prefix, cp));
        m.on_interest(Time::ZERO, FaceId(300), &i, None, t, fs);
        let out = drain(m);
        status_of(&out)
    };
    let mk = |u: &str| ControlParameters {
        uri: Some(u.into()),
        ..Default::default()
    };
    let (code, r) = run(
        &mut m,
        &mut t,
        &mut fs,
        "/localhost/nfd/faces/create",
        &mk("udp4://192.0.2.1:6363"),
    );
    assert_eq!(code, 200);
    assert_eq!(r.body.unwrap().face_id, Some(256));
    assert_eq!(
        run(
            &mut m,
            &mut t,
            &mut fs,
            "/localhost/nfd/faces/create",
            &mk("udp4://192.0.2.2:6363")
        )
        .0,
        409
    );
    assert_eq!(
        run(
            &mut m,
            &mut t,
            &mut fs,
            "/localhost/nfd/faces/create",
            &mk("bogus")
        )
        .0,
        400
    );
    assert_eq!(
        run(
            &mut m,
            &mut t,
            &mut fs,
            "/localhost/nfd/faces/create",
            &mk("ether://x")
        )
        .0,
        406
    );
    let cp = ControlParameters {
        face_id: Some(999),
        ..Default::default()
    };
    assert_eq!(
        run(&mut m, &mut t, &mut fs, "/localhost/nfd/faces/update", &cp).0,
        404
    );
    let cp = ControlParameters {
        face_persistency: Some(2),
        ..Default::default()
    };
    let (code, r) = run(&mut m, &mut t, &mut fs, "/localhost/nfd/faces/update", &cp);
    assert_eq!(code, 200);
    assert_eq!(
        r.body.unwrap().face_id,
        Some(300),
        "FaceId 0/absent = requesting face"
    );
    assert_eq!(t.faces[&300].0.persistency, FacePersistency::Permanent);
    let cp = ControlParameters {
        face_id: Some(256),
        ..Default::default()
    };
    assert_eq!(
        run(&mut m, &mut t, &mut fs, "/localhost/nfd/faces/destroy", &cp).0,
        200
    );
    assert_eq!(fs.0, vec![FaceId(256)]);
    let cp = ControlParameters {
        face_id: Some(0),
        ..Default::default()
    };
    assert_eq!(
        run(&mut m, &mut t, &mut fs, "/localhost/nfd/faces/destroy", &cp).0,
        400
    );
}

#[test]
fn datasets_are_segmented_versioned_and_served_from_cache() {
    let mut t = MockTables::with_faces(&[256]);
    // Enough FIB entries for more than one segment.
    for i in 0..400 {
        let n = Name::from_uri(&format!(
            "/utility/region-{i:04}/meter-with-a-long-name/readings"
        ))
        .unwrap();
        t.fib.entry(n).or_default().insert(256, u64::from(i as u32));
    }
    let mut m = Management::new(MgmtConfig {
        epoch_unix_ms: 1_700_000_000_000,
        ..MgmtConfig::default()
    });
    let mut first = Interest::new(Name::from_uri("/localhost/nfd/fib/list").unwrap());
    first.can_be_prefix = true;
    first.must_be_fresh = true;
    let out = feed(&mut m, &mut t, 256, first.encode());
    assert_eq!(out.len(), 1);
    let d0 = reply_data(&out[0].1);
    assert!(d0.verify_digest_sha256());
    assert_eq!(d0.meta_info.freshness_period_ms, Some(1000));
    assert_eq!(d0.name.len(), 6);
    let version = d0.name.get(4).unwrap().as_version().unwrap();
    assert_eq!(version, 1_700_000_000_000);
    assert_eq!(d0.name.get(5).unwrap().as_segment(), Some(0));
    assert!(
        d0.meta_info.final_block_id.is_none(),
        "more segments follow"
    );
    let mut payload = d0.content.to_vec();
    let mut seg = 0;
    loop {
        seg += 1;
        let name = d0.name.prefix(5).append(amicn_tlv::Component::segment(seg));
        let out = feed(&mut m, &mut t, 256, Interest::new(name.clone()).encode());
        assert_eq!(out.len(), 1, "segment {seg} from the cache");
        let d = reply_data(&out[0].1);
        assert_eq!(d.name, name);
        payload.extend_from_slice(&d.content);
        if let Some(last) = d
            .meta_info
            .final_block_id
            .as_ref()
            .and_then(|c| c.as_segment())
        {
            assert_eq!(last, seg);
            break;
        }
    }
    assert!(seg >= 2, "400 long entries need several 8000-byte segments");
    // Decode FibEntry elements back.
    let mut r = amicn_tlv::TlvReader::new(payload.into());
    let mut n = 0;
    while !r.is_empty() {
        let e = r.read().unwrap();
        assert_eq!(e.typ, 128);
        let mut inner = amicn_tlv::TlvReader::new(e.value.clone());
        let name = inner.read().unwrap();
        assert_eq!(name.typ, 7);
        let hop = inner.read().unwrap();
        assert_eq!(hop.typ, 129);
        n += 1;
    }
    assert_eq!(n, 400);
    // A second request gets a newer version.
    let out = feed(&mut m, &mut t, 256, first.encode());
    let v2 = reply_data(&out[0].1)
        .name
        .get(4)
        .unwrap()
        .as_version()
        .unwrap();
    assert!(v2 > version);
    // Unknown version: nothing.
    let stale = Name::from_uri("/localhost/nfd/fib/list/v=5/seg=0").unwrap();
    assert!(feed(&mut m, &mut t, 256, Interest::new(stale).encode()).is_empty());
}

#[test]
fn small_datasets_decode() {
    let mut t = MockTables::with_faces(&[256, 257]);
    let mut m = Management::default();
    let get = |m: &mut Management, t: &mut MockTables, what: &str| {
        let mut i = Interest::new(Name::from_uri(what).unwrap());
        i.can_be_prefix = true;
        let out = feed(m, t, 256, i.encode());
        let d = reply_data(&out[0].1);
        assert_eq!(
            d.meta_info
                .final_block_id
                .as_ref()
                .and_then(|c| c.as_segment()),
            Some(0)
        );
        d.content
    };
    let faces = get(&mut m, &mut t, "/localhost/nfd/faces/list");
    assert_eq!(status_datasets::read_tlv(&faces).unwrap().0, 128);
    let cs = get(&mut m, &mut t, "/localhost/nfd/cs/info");
    assert_eq!(
        &cs[..],
        &[
            0x80, 0x12, 0x83, 0x04, 0, 1, 0, 0, 0x6c, 1, 3, 0x87, 1, 0, 0x81, 1, 0, 0x82, 1, 0
        ][..]
    );
    let sc = get(&mut m, &mut t, "/localhost/nfd/strategy-choice/list");
    assert_eq!(sc[0], 0x80);
    let st = get(&mut m, &mut t, "/localhost/nfd/status/general");
    assert_eq!(st[0], 128, "NfdVersion comes first, unwrapped");
    // faces/query with a filter matching only face 257.
    let mut filter = BytesMut::new();
    amicn_tlv::encode_tlv(&mut filter, 150, &[105, 2, 1, 1]);
    let q = Name::from_uri("/localhost/nfd/faces/query")
        .unwrap()
        .append(amicn_tlv::Component::generic(filter.freeze()));
    let mut i = Interest::new(q);
    i.can_be_prefix = true;
    let out = feed(&mut m, &mut t, 256, i.encode());
    let d = reply_data(&out[0].1);
    let (typ, v, rest) = status_datasets::read_tlv(&d.content).unwrap();
    assert_eq!(typ, 128);
    assert!(rest.is_empty());
    assert_eq!(&v[..3], &[105, 2, 1]);
    // rib/list after a registration shows the route.
    let cp = ControlParameters {
        name: Some(Name::from_uri("/r").unwrap()),
        expiration_period: Some(5000),
        ..Default::default()
    };
    feed(
        &mut m,
        &mut t,
        257,
        command("/localhost/nfd/rib/register", &cp),
    );
    let rib = get(&mut m, &mut t, "/localhost/nfd/rib/list");
    let (typ, v, _) = status_datasets::read_tlv(&rib).unwrap();
    assert_eq!(typ, 128);
    let (_, _, after_name) = status_datasets::read_tlv(v).unwrap();
    let (rt, route, _) = status_datasets::read_tlv(after_name).unwrap();
    assert_eq!(rt, 129);
    // FaceId 257, Origin 0, Cost 0, Flags 1, ExpirationPeriod 5000.
    assert_eq!(
        route,
        &[
            105, 2, 1, 1, 111, 1, 0, 106, 1, 0, 108, 1, 1, 109, 2, 0x13, 0x88
        ][..]
    );
}

#[test]
fn face_events_reach_waiting_interests() {
    let mut t = MockTables::with_faces(&[256, 257]);
    let mut m = Management::default();
    let mut i = Interest::new(Name::from_uri("/localhost/nfd/faces/events").unwrap());
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    assert!(
        feed(&mut m, &mut t, 256, i.encode()).is_empty(),
        "waits for the next event"
    );
    m.on_face_added(Time::ZERO, FaceId(257), &mut t);
    let out = drain(&mut m);
    assert_eq!(out.len(), 1);
    let d = reply_data(&out[0].1);
    assert_eq!(d.name.get(4).unwrap().as_sequence_num(), Some(1));
    let (typ, v, _) = status_datasets::read_tlv(&d.content).unwrap();
    assert_eq!(typ, 192);
    assert_eq!(&v[..3], &[193, 1, 1], "Created");
    // The follow-up Interest for seq=2 waits, then gets the Destroyed event.
    let next = Name::from_uri("/localhost/nfd/faces/events")
        .unwrap()
        .append(amicn_tlv::Component::sequence_num(2));
    assert!(feed(&mut m, &mut t, 256, Interest::new(next).encode()).is_empty());
    m.on_face_removed(Time::ZERO, FaceId(257), &mut t);
    let out = drain(&mut m);
    assert_eq!(out.len(), 1);
    let d = reply_data(&out[0].1);
    assert_eq!(d.name.get(4).unwrap().as_sequence_num(), Some(2));
    let (_, v, _) = status_datasets::read_tlv(&d.content).unwrap();
    assert_eq!(&v[..3], &[193, 1, 2], "Destroyed");
}

/// Every dataset we publish decodes with the independent decoders of `amicn_tlv::mgmt`
/// (written from ndn-cxx's schemas), field for field.
#[test]
fn datasets_decode_with_the_codec_crate() {
    use amicn_tlv::mgmt as tm;
    let mut t = MockTables::with_faces(&[256, 257]);
    t.faces.get_mut(&257).unwrap().1.n_in_interests = 70_000;
    let mut m = Management::new(MgmtConfig {
        epoch_unix_ms: 1_700_000_000_000,
        nfd_version: "test-1".into(),
        ..MgmtConfig::default()
    });
    let cp = ControlParameters {
        name: Some(Name::from_uri("/a/b").unwrap()),
        cost: Some(300),
        expiration_period: Some(60_000),
        ..Default::default()
    };
    feed(
        &mut m,
        &mut t,
        257,
        command("/localhost/nfd/rib/register", &cp),
    );
    let mut get = |what: &str| {
        let mut i = Interest::new(Name::from_uri(what).unwrap());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        let out = feed(&mut m, &mut t, 256, i.encode());
        reply_data(&out[0].1).content
    };
    let faces = tm::FaceStatus::decode_list(get("/localhost/nfd/faces/list")).unwrap();
    assert_eq!(faces.len(), 2);
    assert_eq!(faces[1].face_id, Some(257));
    assert_eq!(faces[1].n_in_interests, Some(70_000));
    assert_eq!(faces[1].uri.as_deref(), Some("fd://257"));
    assert_eq!(faces[1].face_persistency, Some(1));
    let fib = tm::FibEntry::decode_list(get("/localhost/nfd/fib/list")).unwrap();
    assert_eq!(fib.len(), 1);
    assert_eq!(fib[0].name.to_string(), "/a/b");
    assert_eq!(fib[0].next_hops[0].face_id, Some(257));
    assert_eq!(fib[0].next_hops[0].cost, Some(300));
    let rib = tm::RibEntry::decode_list(get("/localhost/nfd/rib/list")).unwrap();
    assert_eq!(rib[0].routes[0].expiration_period, Some(60_000));
    assert_eq!(rib[0].routes[0].flags, Some(1));
    let cs = tm::CsInfo::decode_list(get("/localhost/nfd/cs/info")).unwrap();
    assert_eq!(cs[0].capacity, Some(65536));
    assert_eq!(cs[0].flags, Some(3));
    let sc = tm::StrategyChoice::decode_list(get("/localhost/nfd/strategy-choice/list")).unwrap();
    assert_eq!(
        sc[0].strategy.as_ref().unwrap().to_string(),
        "/localhost/nfd/strategy/best-route/v=5"
    );
    let st = tm::ForwarderStatus::decode_value(get("/localhost/nfd/status/general")).unwrap();
    assert_eq!(st.nfd_version.as_deref(), Some("test-1"));
    assert_eq!(st.current_timestamp, Some(1_700_000_000_000));
    assert_eq!(st.n_in_interests, Some(7));
    assert_eq!(st.n_fib_entries, Some(1));
    m.on_face_removed(Time::ZERO, FaceId(257), &mut t);
    let ev = Name::from_uri("/localhost/nfd/faces/events").unwrap();
    let mut i = Interest::new(ev);
    i.can_be_prefix = true;
    let out = feed(&mut m, &mut t, 256, i.encode());
    let n = tm::FaceEventNotification::decode(reply_data(&out[0].1).content).unwrap();
    assert_eq!((n.kind, n.face_id), (Some(2), Some(257)));
}

#[test]
fn rib_announce_installs_a_prefix_announcement_route() {
    let mut t = MockTables::with_faces(&[256]);
    let mut m = Management::new(MgmtConfig {
        epoch_unix_ms: 1_700_000_000_000,
        ..MgmtConfig::default()
    });
    let pa = super::announcement::tests::make("/ann/x", 30_000, None);
    let mut i = Interest::new(Name::from_uri("/localhost/nfd/rib/announce").unwrap());
    i.app_parameters = Some(pa.wire().unwrap().clone());
    i.nonce = Some(9);
    let wire = i.sign_digest_sha256(amicn_tlv::SignatureInfo::digest_sha256());
    let (code, r) = status_of(&feed(&mut m, &mut t, 256, wire));
    assert_eq!(code, 200);
    let b = r.body.unwrap();
    assert_eq!(b.name.unwrap().to_string(), "/ann/x");
    assert_eq!(
        (b.face_id, b.origin, b.cost, b.flags),
        (Some(256), Some(129), Some(2048), Some(1))
    );
    assert_eq!(b.expiration_period, Some(30_000));
    let prefix = Name::from_uri("/ann/x").unwrap();
    assert_eq!(t.fib[&prefix][&256], 2048);
    m.on_timeout(Time::from_millis(30_000), &mut t);
    assert!(!t.fib.contains_key(&prefix));
    // Without ApplicationParameters the command is dropped.
    let i = Interest::new(Name::from_uri("/localhost/nfd/rib/announce").unwrap());
    assert!(feed(&mut m, &mut t, 256, i.encode()).is_empty());
}

#[test]
fn expiration_period_zero_removes_and_max_never_expires() {
    let mut t = MockTables::with_faces(&[256]);
    let mut m = Management::default();
    let p = Name::from_uri("/e").unwrap();
    let cp = ControlParameters {
        name: Some(p.clone()),
        expiration_period: Some(u64::MAX >> 1),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(code, 200);
    assert_eq!(m.poll_timeout(), None, "i64::MAX ms means no expiry");
    assert!(t.fib.contains_key(&p));
    let cp = ControlParameters {
        name: Some(p.clone()),
        expiration_period: Some(0),
        ..Default::default()
    };
    let (code, _) = status_of(&feed(
        &mut m,
        &mut t,
        256,
        command("/localhost/nfd/rib/register", &cp),
    ));
    assert_eq!(code, 200);
    assert!(!t.fib.contains_key(&p));
    assert!(m.rib().is_empty());
}

#[test]
fn digest_verifier_accepts_real_commands_and_rejects_tampered_ones() {
    use super::verify::DigestVerifier;
    let mut v = DigestVerifier;
    for hex in [
        include_str!("../../tests/mgmt_vectors/python-ndn-v1.to-forwarder.hex"),
        include_str!("../../tests/mgmt_vectors/python-ndn-v2.to-forwarder.hex"),
        include_str!("../../tests/mgmt_vectors/ndn-cxx-registerPrefix.to-forwarder.hex"),
        include_str!("../../tests/mgmt_vectors/ndnts.to-forwarder.hex"),
    ] {
        for pkt in packets(hex) {
            let (i, _) = interest_of(pkt.clone());
            assert_eq!(v.verify(Time::ZERO, &i), Verdict::Accept, "{}", i.name);
            // Flip one byte of the ControlParameters: the digest no longer matches.
            let (mut bad, _) = interest_of(pkt);
            let mut cp = bad.name.get(4).unwrap().value().to_vec();
            let last = cp.len() - 1;
            cp[last] ^= 1;
            let mut name = bad.name.prefix(4).append(amicn_tlv::Component::generic(cp));
            for k in 5..bad.name.len() {
                name = name.append(bad.name.get(k).unwrap());
            }
            bad.name = name;
            assert_eq!(v.verify(Time::ZERO, &bad), Verdict::Reject, "{}", bad.name);
        }
    }
    // Unsigned: dropped.
    let i = Interest::new(Name::from_uri("/localhost/nfd/rib/register/x").unwrap());
    assert_eq!(v.verify(Time::ZERO, &i), Verdict::Drop);
    // Installed in management, a good command goes through.
    let mut t = MockTables::with_faces(&[290]);
    let mut m = Management::default();
    m.set_verifier(Box::new(DigestVerifier));
    let to = include_str!("../../tests/mgmt_vectors/python-ndn-v1.to-forwarder.hex");
    let (code, _) = status_of(&feed(&mut m, &mut t, 290, packets(to).remove(0)));
    assert_eq!(code, 200);
}

#[test]
fn newest_dataset_version_stays_whole_even_beyond_the_cache_bound() {
    let mut t = MockTables::with_faces(&[256]);
    for i in 0..600 {
        let n = Name::from_uri(&format!("/utility/region-{i:04}/meter/readings")).unwrap();
        t.fib.entry(n).or_default().insert(256, 1);
    }
    let mut m = Management::new(MgmtConfig {
        cache_bytes: 10_000,
        ..MgmtConfig::default()
    });
    let mut first = Interest::new(Name::from_uri("/localhost/nfd/fib/list").unwrap());
    first.can_be_prefix = true;
    let fetch_all = |m: &mut Management, t: &mut MockTables| {
        let d0 = reply_data(&feed(m, t, 256, first.encode())[0].1);
        let mut n = 0u64;
        loop {
            n += 1;
            let name = d0.name.prefix(5).append(amicn_tlv::Component::segment(n));
            let out = feed(m, t, 256, Interest::new(name).encode());
            assert_eq!(out.len(), 1, "segment {n} must still be cached");
            let d = reply_data(&out[0].1);
            if d.meta_info.final_block_id.is_some() {
                return (d0.name.prefix(5), n);
            }
        }
    };
    let (v1, last) = fetch_all(&mut m, &mut t);
    assert!(last >= 2);
    let (v2, _) = fetch_all(&mut m, &mut t);
    assert_ne!(v1, v2);
    // The older version made room for the newer one.
    let old = v1.append(amicn_tlv::Component::segment(1));
    assert!(feed(&mut m, &mut t, 256, Interest::new(old).encode()).is_empty());
}
