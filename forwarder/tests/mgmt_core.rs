//! Management attached to the real forwarding core: the command Interests that python-ndn
//! (old and v0.3 forms), ndn-cxx, nfdc and NDNts actually sent to NFD go through
//! `Forwarder::on_packet`, management answers through the core, and the FIB then routes the
//! registered prefix to the registering face.
#![allow(clippy::unwrap_used)]

use amicn_forwarder::core::{
    Config, DropReason, FaceId, FaceOptions, FacePersistency, FaceScope, Forwarder, Time,
};
use amicn_forwarder::mgmt::{Management, MgmtConfig, NoFaceSystem};
use amicn_tlv::mgmt::{ControlResponse, FaceStatus, FibEntry, RibEntry};
use amicn_tlv::{Component, Data, Interest, Name, NetPacket, decode_packet};
use bytes::Bytes;

fn unhex(s: &str) -> Bytes {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn packets(hex: &str) -> Vec<Bytes> {
    let mut all = unhex(hex);
    let mut out = Vec::new();
    while !all.is_empty() {
        let n = amicn_tlv::split_first_tlv(&all).unwrap().unwrap();
        out.push(all.split_to(n));
    }
    out
}

struct Node {
    fw: Forwarder,
    mgmt: Management,
    now: Time,
}

impl Node {
    fn new() -> Node {
        Node {
            fw: Forwarder::new(Config::default()),
            mgmt: Management::new(MgmtConfig::default()),
            now: Time::from_millis(1),
        }
    }

    fn face(&mut self, scope: FaceScope) -> FaceId {
        let id = self.fw.add_face(FaceOptions {
            remote_uri: "fd://x".into(),
            local_uri: "unix:///run/nfd/nfd.sock".into(),
            scope,
            persistency: FacePersistency::OnDemand,
            ..FaceOptions::default()
        });
        self.mgmt.process(self.now, &mut self.fw, &mut NoFaceSystem);
        id
    }

    /// Delivers a packet and returns everything the core sends as a result.
    fn deliver(&mut self, face: FaceId, pkt: Bytes) -> Vec<(FaceId, Bytes)> {
        self.fw.on_packet(self.now, face, pkt);
        self.mgmt.process(self.now, &mut self.fw, &mut NoFaceSystem);
        std::iter::from_fn(|| self.fw.poll_transmit()).collect()
    }
}

fn data_of(pkt: &Bytes) -> (Data, Option<Bytes>) {
    let r = decode_packet(pkt.clone()).unwrap();
    match r.packet {
        NetPacket::Data(d) => (d, r.lp.pit_token),
        other => panic!("expected Data, got {other:?}"),
    }
}

fn interest_of(pkt: &Bytes) -> (Interest, Option<Bytes>) {
    let r = decode_packet(pkt.clone()).unwrap();
    match r.packet {
        NetPacket::Interest(i) => (i, r.lp.pit_token),
        other => panic!("expected Interest, got {other:?}"),
    }
}

const CASES: [(&str, &str, &str, &str); 4] = [
    (
        "python-ndn-v1",
        include_str!("mgmt_vectors/python-ndn-v1.to-forwarder.hex"),
        include_str!("mgmt_vectors/python-ndn-v1.from-forwarder.hex"),
        "/cap/python-v1",
    ),
    (
        "python-ndn-v2",
        include_str!("mgmt_vectors/python-ndn-v2.to-forwarder.hex"),
        include_str!("mgmt_vectors/python-ndn-v2.from-forwarder.hex"),
        "/cap/python-v2",
    ),
    (
        "ndn-cxx",
        include_str!("mgmt_vectors/ndn-cxx-registerPrefix.to-forwarder.hex"),
        include_str!("mgmt_vectors/ndn-cxx-registerPrefix.from-forwarder.hex"),
        "/cap/ndn-cxx/ping",
    ),
    (
        "ndnts",
        include_str!("mgmt_vectors/ndnts.to-forwarder.hex"),
        include_str!("mgmt_vectors/ndnts.from-forwarder.hex"),
        "/cap/ndnts",
    ),
];

#[test]
fn captured_registrations_get_nfd_shaped_replies_and_routes() {
    for (who, to, _, prefix) in CASES {
        let mut node = Node::new();
        let app = node.face(FaceScope::Local);
        let consumer = node.face(FaceScope::NonLocal);
        let register = packets(to).remove(0);
        let (cmd, token) = interest_of(&register);
        let out = node.deliver(app, register);
        assert_eq!(out.len(), 1, "{who}: one reply");
        assert_eq!(out[0].0, app, "{who}: reply goes to the requesting face");
        let (reply, echoed) = data_of(&out[0].1);
        assert_eq!(echoed, token, "{who}: PitToken echoed");
        assert_eq!(
            reply.name, cmd.name,
            "{who}: named exactly like the command"
        );
        assert_eq!(reply.meta_info.freshness_period_ms, Some(1000), "{who}");
        assert_eq!(reply.signature_info.sig_type, 0, "{who}: DigestSha256");
        assert!(reply.verify_digest_sha256(), "{who}: digest verifies");
        let resp = ControlResponse::decode(reply.content.clone()).unwrap();
        assert_eq!(resp.status_code, 200, "{who}");
        let body = resp.body.unwrap();
        assert_eq!(body.name.as_ref().unwrap().to_string(), prefix, "{who}");
        assert_eq!(
            body.face_id,
            Some(app.0),
            "{who}: FaceId 0 completed to the requester"
        );
        assert!(
            body.origin.is_some() && body.cost.is_some() && body.flags.is_some(),
            "{who}"
        );

        // The FIB now sends Interests under the prefix to the registering face.
        let mut i = Interest::new(
            Name::from_uri(prefix)
                .unwrap()
                .append(Component::generic(Bytes::from_static(b"reading"))),
        );
        i.nonce = Some(0x1234_5678);
        i.lifetime_ms = Some(1000);
        let out = node.deliver(consumer, i.encode());
        assert_eq!(out.len(), 1, "{who}: forwarded once");
        assert_eq!(out[0].0, app, "{who}: to the producer");
        assert_eq!(interest_of(&out[0].1).0.name, i.name, "{who}");
    }
}

/// With the face ids NFD had, the whole reply packet — LpPacket wrapping included — is
/// byte-identical to what NFD sent.
#[test]
fn replies_through_the_core_match_nfd_bytes() {
    for (who, to, from, _) in CASES {
        if who == "ndnts" {
            continue; // its reply file is checked below with both packets
        }
        let nfd = packets(from);
        let body = ControlResponse::decode(data_of(&nfd[0]).0.content)
            .unwrap()
            .body
            .unwrap();
        let target = FaceId(body.face_id.unwrap());
        let mut node = Node::new();
        let mut face = node.face(FaceScope::Local);
        while face != target {
            face = node.face(FaceScope::Local);
        }
        let out = node.deliver(face, packets(to).remove(0));
        assert_eq!(out[0].1, nfd[0], "{who}");
    }
    let sent = packets(include_str!("mgmt_vectors/ndnts.to-forwarder.hex"));
    let nfd = packets(include_str!("mgmt_vectors/ndnts.from-forwarder.hex"));
    let mut node = Node::new();
    let mut face = node.face(FaceScope::Local);
    while face != FaceId(0x124) {
        face = node.face(FaceScope::Local);
    }
    for (cmd, want) in sent.into_iter().zip(nfd) {
        let out = node.deliver(face, cmd);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, want, "ndnts");
    }
    // The unregister removed the route again.
    assert!(
        node.fw
            .fib_get(&Name::from_uri("/cap/ndnts").unwrap())
            .is_none()
    );
}

#[test]
fn management_from_a_non_local_face_is_refused() {
    let mut node = Node::new();
    let remote = node.face(FaceScope::NonLocal);
    let register = packets(CASES[1].1).remove(0);
    let before = node.fw.counters().drops.get(DropReason::Scope);
    let out = node.deliver(remote, register);
    assert!(out.is_empty(), "no reply to a remote command");
    assert_eq!(node.fw.counters().drops.get(DropReason::Scope), before + 1);
    assert_eq!(node.mgmt.rib().route_count(), 0);
    assert!(
        node.fw
            .fib_get(&Name::from_uri("/cap/python-v2").unwrap())
            .is_none()
    );
}

#[test]
fn destroying_the_face_removes_its_routes() {
    let mut node = Node::new();
    let app = node.face(FaceScope::Local);
    node.deliver(app, packets(CASES[0].1).remove(0));
    let prefix = Name::from_uri("/cap/python-v1").unwrap();
    assert!(node.fw.fib_get(&prefix).is_some());
    assert_eq!(node.mgmt.rib().route_count(), 1);
    node.fw.remove_face(app);
    node.mgmt.process(node.now, &mut node.fw, &mut NoFaceSystem);
    assert_eq!(node.mgmt.rib().route_count(), 0);
    assert!(node.fw.fib_get(&prefix).is_none());
}

#[test]
fn nfdc_session_faces_query_then_register_on_another_face() {
    let sent = packets(include_str!("mgmt_vectors/nfdc-route-add.to-forwarder.hex"));
    let mut node = Node::new();
    let nfdc = node.face(FaceScope::Local);
    // faces/query with a filter for FaceId 1: no such face here, an empty dataset.
    let out = node.deliver(nfdc, sent[0].clone());
    assert_eq!(out.len(), 1);
    let (seg0, _) = data_of(&out[0].1);
    let (q, _) = interest_of(&sent[0]);
    assert!(q.name.is_prefix_of(&seg0.name));
    assert_eq!(seg0.name.len(), q.name.len() + 2);
    assert!(seg0.name.get(q.name.len()).unwrap().as_version().is_some());
    assert_eq!(
        seg0.name.get(q.name.len() + 1).unwrap().as_segment(),
        Some(0)
    );
    assert_eq!(
        seg0.meta_info
            .final_block_id
            .as_ref()
            .and_then(Component::as_segment),
        Some(0)
    );
    assert!(
        FaceStatus::decode_list(seg0.content.clone())
            .unwrap()
            .is_empty()
    );
    // rib/register naming face 1, which does not exist: NFD still answers 200 but installs
    // nothing.
    let out = node.deliver(nfdc, sent[1].clone());
    let resp = ControlResponse::decode(data_of(&out[0].1).0.content).unwrap();
    assert_eq!(resp.status_code, 200);
    assert_eq!(resp.body.unwrap().face_id, Some(1));
    assert_eq!(node.fw.fib_len(), 0);
}

#[test]
fn datasets_through_the_core_decode() {
    let mut node = Node::new();
    let app = node.face(FaceScope::Local);
    let admin = node.face(FaceScope::Local);
    node.deliver(app, packets(CASES[2].1).remove(0));
    let fetch = |node: &mut Node, what: &str| {
        let mut i = Interest::new(Name::from_uri(what).unwrap());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        i.nonce = Some(node.now.as_nanos() as u32 ^ what.len() as u32);
        node.now = node.now.add_millis(1);
        let out = node.deliver(admin, i.encode());
        assert_eq!(out.len(), 1, "{what}");
        data_of(&out[0].1).0.content
    };
    let faces = FaceStatus::decode_list(fetch(&mut node, "/localhost/nfd/faces/list")).unwrap();
    assert_eq!(faces.len(), 2);
    assert_eq!(faces[0].face_id, Some(app.0));
    assert!(faces[0].n_in_interests.unwrap() >= 1);
    let fib = FibEntry::decode_list(fetch(&mut node, "/localhost/nfd/fib/list")).unwrap();
    assert_eq!(fib.len(), 1);
    assert_eq!(fib[0].name.to_string(), "/cap/ndn-cxx/ping");
    assert_eq!(fib[0].next_hops[0].face_id, Some(app.0));
    let rib = RibEntry::decode_list(fetch(&mut node, "/localhost/nfd/rib/list")).unwrap();
    assert_eq!(rib[0].routes[0].origin, Some(0));
    assert_eq!(rib[0].routes[0].flags, Some(1));
}
