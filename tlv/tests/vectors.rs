//! Golden tests against prefix-registration exchanges captured between real NDN clients
//! (python-ndn, ndn-cxx, nfdc, NDNts) and NFD 24.07; the `.txt` files are ndn-dissect's view of
//! the same bytes.
#![allow(clippy::unwrap_used)]

use amicn_tlv::mgmt::{ControlParameters, ControlResponse, FaceStatus};
use amicn_tlv::{
    Component, Data, Interest, LpPacket, NetPacket, TlvReader, decode_packet, split_first_tlv, tt,
};
use bytes::Bytes;
use sha2::{Digest, Sha256};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

fn packets(stem: &str) -> Vec<Bytes> {
    let text = std::fs::read_to_string(format!("{DIR}/{stem}.hex")).unwrap();
    let all = hex::decode(text.split_whitespace().collect::<String>()).unwrap();
    let mut out = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let n = split_first_tlv(rest).unwrap().expect("complete packet");
        out.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    out
}

#[derive(Debug)]
struct Node {
    typ: u32,
    size: usize,
    leaf: Option<String>,
    children: Vec<Node>,
}

fn parse_txt(stem: &str) -> Vec<Node> {
    let text = std::fs::read_to_string(format!("{DIR}/{stem}.txt")).unwrap();
    let mut flat = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let chars: Vec<char> = line.chars().collect();
        let start = chars.iter().position(|c| c.is_ascii_digit()).unwrap();
        let depth = start / 2;
        let body: String = chars[start..].iter().collect();
        let typ: u32 = body.split(' ').next().unwrap().parse().unwrap();
        let size_at = body.find("(size: ").unwrap() + 7;
        let size: usize = body[size_at..body[size_at..].find(')').unwrap() + size_at]
            .parse()
            .unwrap();
        let leaf = body
            .find("[[")
            .map(|i| body[i + 2..body.len() - 2].to_string());
        flat.push((
            depth,
            Node {
                typ,
                size,
                leaf,
                children: Vec::new(),
            },
        ));
    }
    fn build(
        flat: &mut std::iter::Peekable<std::vec::IntoIter<(usize, Node)>>,
        depth: usize,
    ) -> Vec<Node> {
        let mut out = Vec::new();
        while let Some((d, _)) = flat.peek() {
            if *d < depth {
                break;
            }
            let (d, mut node) = flat.next().unwrap();
            node.children = build(flat, d + 1);
            out.push(node);
        }
        out
    }
    build(&mut flat.into_iter().peekable(), 0)
}

// ndn-dissect prints leaf values with the NDN URI escaping, minus the all-periods rule.
fn escape(v: &[u8]) -> String {
    v.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn compare(nodes: &[Node], mut r: TlvReader, path: &str) {
    for (k, node) in nodes.iter().enumerate() {
        let e = r.read().unwrap_or_else(|e| panic!("{path}/{k}: {e}"));
        assert_eq!(e.typ, node.typ, "{path}/{k}");
        assert_eq!(e.value.len(), node.size, "{path}/{k} type {}", node.typ);
        if node.children.is_empty() {
            if let Some(leaf) = &node.leaf {
                assert_eq!(&escape(&e.value), leaf, "{path}/{k} type {}", node.typ);
            }
        } else {
            compare(&node.children, e.reader(), &format!("{path}/{k}"));
        }
    }
    r.finish("dissected element").unwrap();
}

const STEMS: [&str; 10] = [
    "python-ndn-v1.to-forwarder",
    "python-ndn-v1.from-forwarder",
    "python-ndn-v2.to-forwarder",
    "python-ndn-v2.from-forwarder",
    "ndn-cxx-registerPrefix.to-forwarder",
    "ndn-cxx-registerPrefix.from-forwarder",
    "nfdc-route-add.to-forwarder",
    "nfdc-route-add.from-forwarder",
    "ndnts.to-forwarder",
    "ndnts.from-forwarder",
];

#[test]
fn element_trees_match_ndn_dissect() {
    for stem in STEMS {
        let pkts = packets(stem);
        let tree = parse_txt(stem);
        assert_eq!(pkts.len(), tree.len(), "{stem}");
        for (p, node) in pkts.iter().zip(&tree) {
            compare(std::slice::from_ref(node), TlvReader::new(p.clone()), stem);
        }
    }
}

/// Decodes every captured packet, re-encodes it byte for byte and checks the fields.
#[test]
fn every_capture_decodes_and_reencodes_exactly() {
    let mut commands = 0;
    let mut responses = 0;
    for stem in STEMS {
        for wire in packets(stem) {
            let rx = decode_packet(wire.clone()).unwrap_or_else(|e| panic!("{stem}: {e}"));
            let network = match wire[0] {
                100 => {
                    let lp = LpPacket::decode(wire.clone()).unwrap();
                    assert_eq!(lp.encode(), wire, "{stem} LpPacket");
                    assert_eq!(
                        rx.lp.pit_token.as_deref(),
                        Some(&[0xE0, 0x47, 0xFF, 0xFF, 0xFF, 0xFF][..])
                    );
                    lp.fragment.unwrap()
                }
                _ => wire.clone(),
            };
            match rx.packet {
                NetPacket::Interest(i) => {
                    assert_eq!(i.encode(), network, "{stem} Interest re-encode");
                    assert!(i.check_params_digest(), "{stem}");
                    assert_eq!(i.name.get(0).unwrap().value(), b"localhost");
                    assert_eq!(i.name.get(1).unwrap().value(), b"nfd");
                    if i.name.get(2).unwrap().value() == b"rib" {
                        commands += 1;
                        let cp =
                            ControlParameters::decode(i.name.get(4).unwrap().value_bytes().clone())
                                .unwrap();
                        assert_eq!(cp.name.as_ref().unwrap().get(0).unwrap().value(), b"cap");
                        if let Some(si) = &i.signature_info {
                            // Every v0.3 client here signs with DigestSha256 + nonce + time.
                            assert_eq!(si.sig_type, amicn_tlv::sig::DIGEST_SHA256);
                            assert_eq!(si.nonce.as_ref().unwrap().len(), 8);
                            assert!(si.time_ms.unwrap() > 1_700_000_000_000);
                            let digest = Sha256::digest(i.signed_portion());
                            assert_eq!(
                                i.signature_value.as_deref().unwrap(),
                                &digest[..],
                                "{stem}"
                            );
                        }
                    }
                }
                NetPacket::Data(d) => {
                    assert_eq!(d.encode(), network, "{stem} Data re-encode");
                    assert!(
                        d.verify_digest_sha256(),
                        "{stem}: NFD signs replies with a correct DigestSha256"
                    );
                    assert_eq!(d.meta_info.freshness_period_ms, Some(1000));
                    if d.name.get(2).unwrap().value() == b"rib" {
                        responses += 1;
                        let r = ControlResponse::decode(d.content.clone()).unwrap();
                        assert_eq!((r.status_code, r.status_text.as_str()), (200, "Success"));
                        let body = r.body.unwrap();
                        assert!(body.face_id.unwrap() != 0);
                        assert!(body.origin.is_some());
                        if d.name.get(3).unwrap().value() == b"register" {
                            assert!(body.cost.is_some() && body.flags.is_some(), "{stem}");
                        }
                        // The reply name is exactly the command Interest's name.
                        assert!(d.name.len() >= 5);
                    }
                }
                NetPacket::Nack(_) => panic!("{stem}: no Nacks captured"),
            }
        }
    }
    assert_eq!(commands, 6);
    assert_eq!(responses, 6);
}

#[test]
fn specific_fields() {
    // python-ndn v1: old-style command Interest with 9 components, no parameters.
    let i = Interest::decode(packets("python-ndn-v1.to-forwarder")[0].clone()).unwrap();
    assert_eq!(i.name.len(), 9);
    assert_eq!(i.lifetime_ms, Some(1000));
    assert!(i.app_parameters.is_none());
    assert_eq!(i.nonce, Some(0x66E6CB1B));
    let si =
        amicn_tlv::SignatureInfo::decode(i.name.get(7).unwrap().value_bytes().clone()).unwrap();
    assert_eq!(si.sig_type, 0);
    // Its DigestSha256 covers the name components up to and including the SignatureInfo one.
    let portion: Vec<u8> = (0..8)
        .flat_map(|k| i.name.component_wire(k).unwrap().to_vec())
        .collect();
    let sv = Bytes::copy_from_slice(i.name.get(8).unwrap().value());
    let mut r = TlvReader::new(sv);
    assert_eq!(r.read().unwrap().value[..], Sha256::digest(&portion)[..]);

    // NDNts: Origin 65, Capture, ExpirationPeriod 1,200,000 ms.
    let lp = LpPacket::decode(packets("ndnts.to-forwarder")[0].clone()).unwrap();
    let i = Interest::decode(lp.fragment.unwrap()).unwrap();
    assert_eq!(i.name.to_string().split('/').nth(3), Some("rib"));
    assert!(i.name.get(5).unwrap().is_params_digest());
    let cp = ControlParameters::decode(i.name.get(4).unwrap().value_bytes().clone()).unwrap();
    assert_eq!(cp.name.as_ref().unwrap().to_string(), "/cap/ndnts");
    assert_eq!(
        (cp.origin, cp.cost, cp.flags, cp.expiration_period),
        (Some(65), Some(0), Some(2), Some(1_200_000))
    );
    assert_eq!(cp.encode(), i.name.get(4).unwrap().value_bytes().clone());

    // nfdc: faces/query dataset reply carrying one FaceStatus; name ends v=<ms>/seg=0.
    let d = Data::decode(packets("nfdc-route-add.from-forwarder")[0].clone()).unwrap();
    assert!(d.name.get(5).unwrap().as_version().is_some());
    assert_eq!(d.name.get(6).unwrap().as_segment(), Some(0));
    assert_eq!(d.meta_info.final_block_id, Some(Component::segment(0)));
    let faces = FaceStatus::decode_list(d.content.clone()).unwrap();
    assert_eq!(faces.len(), 1);
    let f = &faces[0];
    assert_eq!(f.face_id, Some(1));
    assert_eq!(f.uri.as_deref(), Some("internal://"));
    assert_eq!(f.mtu, Some(8800));
    assert_eq!(f.face_persistency, Some(2));
    assert_eq!(f.n_in_data, Some(0x60));
    assert_eq!(f.flags, Some(1));
    let filter = Interest::decode(packets("nfdc-route-add.to-forwarder")[0].clone()).unwrap();
    assert!(filter.can_be_prefix && filter.must_be_fresh);
    assert_eq!(
        filter.name.get(4).unwrap().value()[0] as u32,
        tt::mgmt::FACE_QUERY_FILTER
    );

    // ndn-cxx: ControlParameters with only Name and Flags.
    let i = Interest::decode(packets("ndn-cxx-registerPrefix.to-forwarder")[0].clone()).unwrap();
    let cp = ControlParameters::decode(i.name.get(4).unwrap().value_bytes().clone()).unwrap();
    assert_eq!(cp.name.unwrap().to_string(), "/cap/ndn-cxx/ping");
    assert_eq!((cp.flags, cp.origin), (Some(1), None));
    assert_eq!(i.lifetime_ms, Some(10_000));
}
