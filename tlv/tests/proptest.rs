//! Property tests: encode/decode and URI round trips, canonical order, no panics on noise.
#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;

use amicn_tlv::{
    Component, Data, Interest, KeyLocator, LpPacket, MetaInfo, NackReason, Name, SignatureInfo,
    decode_packet,
};
use bytes::Bytes;
use proptest::prelude::*;

fn component() -> impl Strategy<Value = Component> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Component::generic),
        1 => proptest::collection::vec(prop_oneof![Just(b'.'), any::<u8>()], 0..4).prop_map(Component::generic),
        1 => any::<u64>().prop_map(Component::segment),
        1 => any::<u64>().prop_map(Component::version),
        1 => any::<u64>().prop_map(Component::timestamp),
        1 => any::<u64>().prop_map(Component::sequence_num),
        1 => any::<u64>().prop_map(Component::byte_offset),
        1 => any::<[u8; 32]>().prop_map(Component::implicit_sha256_digest),
        1 => (3u32..=65535, proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(t, v)| Component::new(t, v).unwrap()),
    ]
}

fn name() -> impl Strategy<Value = Name> {
    proptest::collection::vec(component(), 0..20).prop_map(|c| c.into_iter().collect())
}

fn reference_cmp(a: &Name, b: &Name) -> Ordering {
    // Canonical order by definition: component by component, each by TLV-TYPE, then length,
    // then octets; a proper prefix sorts first.
    for (x, y) in a.iter().zip(b.iter()) {
        let o = x
            .typ()
            .cmp(&y.typ())
            .then(x.value().len().cmp(&y.value().len()))
            .then(x.value().cmp(y.value()));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn sig_info() -> impl Strategy<Value = SignatureInfo> {
    (
        0u64..300,
        proptest::option::of(name().prop_map(KeyLocator::Name)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..16).prop_map(Bytes::from)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(sig_type, key_locator, nonce, time_ms, seq_num)| SignatureInfo {
                sig_type,
                key_locator,
                nonce,
                time_ms,
                seq_num,
                validity: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn name_wire_and_uri_round_trip(n in name()) {
        let back = Name::decode(n.to_wire()).unwrap();
        prop_assert_eq!(&back, &n);
        prop_assert_eq!(back.prefix_hashes(), n.prefix_hashes());
        let uri = n.to_string();
        let parsed = Name::from_uri(&uri).unwrap();
        prop_assert_eq!(&parsed, &n, "uri {}", uri);
        prop_assert_eq!(parsed.to_string(), uri);
        for k in 0..=n.len() {
            let p = n.prefix(k);
            prop_assert_eq!(p.prefix_hash(k), n.prefix_hash(k));
            prop_assert!(p.is_prefix_of(&n));
            let rebuilt: Name = n.iter().take(k).collect();
            prop_assert_eq!(rebuilt.prefix_hashes(), p.prefix_hashes());
        }
    }

    #[test]
    fn canonical_order(a in name(), b in name()) {
        prop_assert_eq!(a.cmp(&b), reference_cmp(&a, &b));
        prop_assert_eq!(a.cmp(&b), a.value_wire().cmp(b.value_wire()));
        prop_assert_eq!(a == b, a.prefix_hash(a.len()) == b.prefix_hash(b.len()) && a.value_wire() == b.value_wire());
    }

    #[test]
    fn interest_round_trip(
        n in name(),
        flags in any::<(bool, bool)>(),
        nonce in proptest::option::of(any::<u32>()),
        lifetime in proptest::option::of(any::<u64>()),
        hop in proptest::option::of(any::<u8>()),
        hint in proptest::collection::vec(name(), 0..3),
        params in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        signed in proptest::option::of(sig_info()),
    ) {
        let n: Name = n.iter().filter(|c| !c.is_params_digest()).collect();
        let mut i = Interest::new(n);
        (i.can_be_prefix, i.must_be_fresh) = flags;
        i.nonce = nonce;
        i.lifetime_ms = lifetime;
        i.hop_limit = hop;
        i.forwarding_hint = hint.into_iter().filter(|h| !h.is_empty()).collect();
        i.app_parameters = params.map(Bytes::from);
        let wire = match signed {
            Some(si) => i.sign_with(si, |p| p.iter().rev().copied().collect()),
            None => { i.update_params_digest(); i.encode() }
        };
        prop_assert_eq!(wire.len(), i.encoded_len());
        let d = Interest::decode(wire.clone()).unwrap();
        prop_assert_eq!(&d, &i);
        prop_assert!(d.check_params_digest());
        prop_assert_eq!(d.signed_portion(), i.signed_portion());
        prop_assert_eq!(d.encode(), wire);
    }

    #[test]
    fn data_round_trip(
        n in name(),
        content in proptest::collection::vec(any::<u8>(), 0..300),
        ct in 0u64..10,
        fresh in proptest::option::of(any::<u64>()),
        fbi in proptest::option::of(component()),
        si in sig_info(),
    ) {
        let mut d = Data::new(n, content);
        d.meta_info = MetaInfo { content_type: ct, freshness_period_ms: fresh, final_block_id: fbi };
        let wire = d.sign_with(si, |p| p.len().to_be_bytes().to_vec());
        let back = Data::decode(wire.clone()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.signed_portion(), d.signed_portion());
        prop_assert_eq!(back.encode(), wire);
        prop_assert_eq!(back.implicit_digest(), d.implicit_digest());
    }

    #[test]
    fn lp_round_trip(
        seq in proptest::option::of(any::<u64>()),
        frag in proptest::option::of((0u64..10, 1u64..10)),
        token in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=32)),
        nack in proptest::option::of(prop_oneof![Just(NackReason::None), Just(NackReason::NoRoute), any::<u64>().prop_map(NackReason::from_code)]),
        ids in any::<(Option<u64>, Option<u64>, Option<u64>, Option<u64>)>(),
        acks in proptest::collection::vec(any::<u64>(), 0..3),
        tx in proptest::option::of(any::<u64>()),
        nd in any::<bool>(),
        fragment in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
    ) {
        let p = LpPacket {
            sequence: seq,
            frag_index: frag.map(|f| f.0),
            frag_count: frag.map(|f| f.1),
            hop_count: None,
            pit_token: token.map(Bytes::from),
            nack,
            incoming_face_id: ids.0,
            next_hop_face_id: ids.1,
            cache_policy: ids.2,
            congestion_mark: ids.3,
            acks,
            tx_sequence: tx,
            non_discovery: nd,
            prefix_announcement: None,
            fragment: fragment.map(Bytes::from),
        };
        let w = p.encode();
        prop_assert_eq!(w.len(), p.encoded_len());
        prop_assert_eq!(LpPacket::decode(w).unwrap(), p);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let b = Bytes::from(bytes);
        let _ = decode_packet(b.clone());
        let _ = Name::decode(b.clone());
        let _ = LpPacket::decode(b.clone());
        let _ = amicn_tlv::mgmt::ControlParameters::decode(b.clone());
        let _ = amicn_tlv::split_first_tlv(&b);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = Name::from_uri(s);
        }
    }

    #[test]
    fn uri_parse_never_panics(s in "[/a-zA-Z0-9%=._~-]{0,40}") {
        if let Ok(n) = Name::from_uri(&s) {
            prop_assert_eq!(Name::from_uri(&n.to_string()).unwrap(), n);
        }
    }
}

proptest! {
    #[test]
    fn var_number_round_trip(v in prop_oneof![0u64..=300, 0u64..=0x1_0010, any::<u32>().prop_map(u64::from), any::<u64>()]) {
        let mut buf = Vec::new();
        amicn_tlv::encode_var_number(&mut buf, v);
        prop_assert_eq!(buf.len(), amicn_tlv::var_number_len(v));
        prop_assert_eq!(amicn_tlv::var_number_width(buf[0]), buf.len());
        prop_assert_eq!(amicn_tlv::read_var_number(&buf).unwrap(), (v, buf.len()));
        // Any truncation is rejected, never misread.
        for cut in 0..buf.len() {
            prop_assert!(amicn_tlv::read_var_number(&buf[..cut]).is_err());
        }
    }

    #[test]
    fn views_frame_what_the_writers_wrote(
        elems in proptest::collection::vec((1u32..=70_000, proptest::collection::vec(any::<u8>(), 0..300)), 0..8)
    ) {
        let mut buf = Vec::new();
        for (t, v) in &elems {
            amicn_tlv::encode_tlv(&mut buf, *t, v);
        }
        let got: Vec<(u32, Vec<u8>)> = amicn_tlv::view::elements(&buf)
            .map(|e| e.map(|e| (e.typ, e.value.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(&got, &elems);
        let owned: Vec<(u32, Vec<u8>)> = amicn_tlv::TlvReader::new(Bytes::from(buf.clone()))
            .map(|e| e.map(|e| (e.typ, e.value.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(owned, elems);
    }

    #[test]
    fn views_never_panic_on_noise(noise in proptest::collection::vec(any::<u8>(), 0..64)) {
        for e in amicn_tlv::view::elements(&noise).flatten() {
            let _ = e.nni();
            let _ = e.elements().count();
        }
        let _ = amicn_tlv::view::single(&noise);
    }
}
