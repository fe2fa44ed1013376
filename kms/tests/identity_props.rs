//! Property tests: decoders never panic on arbitrary input, seal/open round-trips for any
//! plaintext and names, and the replay checker never accepts a replay.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_kms::identity::KeyPair;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_kms::trust::{Captures, NamePattern};
use amicn_kms::{Error, SymmetricKey};
use amicn_tlv::{Component, Name};
use bytes::Bytes;
use proptest::prelude::*;

fn name_strategy() -> impl Strategy<Value = Name> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..6).prop_map(|comps| {
        comps.into_iter().fold(Name::default(), |n, c| {
            n.append(Component::generic(Bytes::from(c)))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn envelope_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = EncryptedContent::decode(Bytes::from(bytes));
    }

    #[test]
    fn seal_open_round_trip(
        pt in prop::collection::vec(any::<u8>(), 0..2000),
        key in any::<[u8; 32]>(),
        key_name in name_strategy(),
        data_name in name_strategy(),
        other in name_strategy(),
    ) {
        let ek = EnvelopeKey::derive(&SymmetricKey::from_bytes(key), &key_name, Purpose::Content);
        let sealed = ek.seal(&data_name, &pt).unwrap();
        prop_assert_eq!(&ek.open(&data_name, &sealed).unwrap()[..], &pt[..]);
        if other != data_name {
            let wrong = matches!(ek.open(&other, &sealed), Err(Error::DecryptFailed { .. }));
            prop_assert!(wrong, "opened under another name");
        }
    }

    #[test]
    fn mutated_certificates_never_panic(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let k = KeyPair::from_seed(&[7; 32], Name::from_uri("/p/KEY/1").unwrap()).unwrap();
        let cert = Certificate::self_signed(&k, 1, Validity::starting_now(0, 1000)).unwrap();
        let mut w = cert.to_wire().to_vec();
        let i = pos.index(w.len());
        w[i] ^= xor;
        if let Ok(c) = Certificate::decode(Bytes::from(w)) {
            // Anything that still decodes must fail its self-signature: every byte that can
            // change without breaking the TLV structure is covered by the signature.
            let same = c == cert;
            prop_assert!(c.verify_self_signature().is_err() || same, "mutation at {} accepted", i);
        }
    }

    #[test]
    fn pattern_rest_matches_every_extension(base in name_strategy(), ext in name_strategy()) {
        let mut pat = String::new();
        for _ in 0..base.len() {
            pat.push_str("/<_>");
        }
        pat.push_str("/...");
        let p = NamePattern::parse(&pat).unwrap();
        let mut full = base.clone();
        for c in ext.iter() {
            full = full.append(c);
        }
        prop_assert!(p.matches(&full, &mut Captures::new()));
        prop_assert!(p.matches(&base, &mut Captures::new()));
        let exact = NamePattern::parse(&pat[..pat.len() - 4]).unwrap();
        prop_assert_eq!(exact.matches(&full, &mut Captures::new()), ext.is_empty());
    }

    #[test]
    fn replay_checker_never_accepts_a_replay(
        events in prop::collection::vec((0u8..3, -70_000i64..70_000, 0u8..6), 1..200),
    ) {
        let now: u64 = 1_800_000_000_000;
        let mut c = ReplayChecker::new(ReplayConfig { nonce_capacity: 1 << 16, ..ReplayConfig::default() });
        let keys: Vec<Name> = (0..3).map(|i| Name::from_uri(&format!("/k{i}/KEY/1")).unwrap()).collect();
        let mut last: HashMap<u8, u64> = HashMap::new();
        let mut seen: HashSet<(u8, u8)> = HashSet::new();
        for (k, dt, nonce) in events {
            let t = now.wrapping_add_signed(dt);
            let ok = c.check(&keys[k as usize], Some(t), Some(&[nonce]), now).is_ok();
            let expect = dt.abs() <= 60_000
                && last.get(&k).is_none_or(|&l| t > l)
                && !seen.contains(&(k, nonce));
            prop_assert_eq!(ok, expect);
            if ok {
                last.insert(k, t);
                seen.insert((k, nonce));
            }
        }
    }
}
