//! Signing, certificates and trust-policy validation end to end.
#![allow(clippy::unwrap_used)]

use amicn_kms::Error;
use amicn_kms::cert::{Certificate, Validity, format_timestamp};
use amicn_kms::identity::{
    ED25519_SPKI_PREFIX, KeyPair, PublicKey, sign_data_digest, verify_batch, verify_data,
    verify_data_batch, verify_data_digest, verify_interest,
};
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_kms::trust::{CertSource, CertStore, TrustPolicy, Validator};
use amicn_tlv::{Data, Interest, KeyLocator, Name};
use bytes::Bytes;

const NOW_S: u64 = 1_795_564_800; // 2026-11-25T00:00:00Z
const NOW_MS: u64 = NOW_S * 1000;
const YEAR: u64 = 365 * 86_400;

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

/// Root anchor, KMS key issued by the root, two meters issued by the KMS.
struct Pki {
    root: KeyPair,
    root_cert: Certificate,
    kms: KeyPair,
    meter7: KeyPair,
    meter8: KeyPair,
    store: CertStore,
    validator: Validator,
}

fn pki() -> Pki {
    let root = KeyPair::generate(&n("/u"));
    let root_cert =
        Certificate::self_signed(&root, 1, Validity::starting_now(NOW_S - 10, YEAR)).unwrap();
    let kms = KeyPair::generate(&n("/u/ami/KMS"));
    let meter7 = KeyPair::generate(&n("/u/ami/meter/7"));
    let meter8 = KeyPair::generate(&n("/u/ami/meter/8"));
    let v = Validity::starting_now(NOW_S - 10, YEAR);
    let mut store = CertStore::new();
    store.insert(
        Certificate::issue(kms.key_name(), kms.public_key(), &root, b"root", 1, v).unwrap(),
    );
    for m in [&meter7, &meter8] {
        store.insert(Certificate::issue(m.key_name(), m.public_key(), &kms, b"kms", 1, v).unwrap());
    }
    let mut validator = Validator::new(TrustPolicy::ami(&n("/u")).unwrap());
    validator.add_anchor(root_cert.clone()).unwrap();
    Pki {
        root,
        root_cert,
        kms,
        meter7,
        meter8,
        store,
        validator,
    }
}

fn reading(meter: &str) -> Data {
    Data::new(
        n(&format!("/u/ami/meter/{meter}/reading/t=1")),
        Bytes::from_static(b"kWh=42"),
    )
}

#[test]
fn certificate_shape_follows_the_spec() {
    let p = pki();
    let c = &p.root_cert;
    assert_eq!(c.data().meta_info.content_type, 2);
    assert_eq!(c.data().meta_info.freshness_period_ms, Some(3_600_000));
    assert_eq!(c.data().content.len(), 44);
    assert_eq!(&c.data().content[..12], &ED25519_SPKI_PREFIX);
    assert_eq!(
        &c.data().content[..12],
        &hex::decode("302a300506032b6570032100").unwrap()[..]
    );
    assert_eq!(c.data().signature_info.sig_type, 5);
    assert_eq!(c.data().signature_value.len(), 64);
    let vp = c.data().signature_info.validity.as_ref().unwrap();
    assert_eq!(vp.not_before, "20261124T235950");
    assert_eq!(vp.not_before, format_timestamp(NOW_S - 10));
    assert_eq!(c.name().len(), 5);
    assert_eq!(c.name().get(3).unwrap().value(), b"self");
    assert_eq!(c.issuer_id(), b"self");
    assert_eq!(c.version(), Some(1));
    assert!(c.is_self_signed());
    c.verify_self_signature().unwrap();
    // Decoding the wire form gives the same certificate.
    let again = Certificate::decode(c.to_wire()).unwrap();
    assert_eq!(&again, c);
    assert_eq!(again.key_name(), *p.root.key_name());
    // A non-certificate Data is rejected with a reason.
    let mut d = reading("7");
    let wire = p.meter7.sign_data(&mut d).unwrap();
    assert!(matches!(
        Certificate::decode(wire),
        Err(Error::NotACertificate { .. })
    ));
}

#[test]
fn sign_verify_round_trip_and_tamper() {
    let p = pki();
    let mut d = reading("7");
    let wire = p.meter7.sign_data(&mut d).unwrap();
    let decoded = Data::decode(wire.clone()).unwrap();
    verify_data(&decoded, &p.meter7.public_key()).unwrap();
    assert_eq!(
        decoded.signature_info.key_locator,
        Some(KeyLocator::Name(p.meter7.key_name().clone()))
    );
    // Wrong key.
    assert!(matches!(
        verify_data(&decoded, &p.meter8.public_key()),
        Err(Error::BadSignature { .. })
    ));
    // Every single-bit flip inside the signed portion is caught (or makes the packet undecodable).
    let portion = decoded.signed_portion();
    let start = wire
        .windows(portion.len())
        .position(|w| w == &portion[..])
        .unwrap();
    for i in (start..start + portion.len()).step_by(3) {
        let mut w = wire.to_vec();
        w[i] ^= 0x10;
        if let Ok(t) = Data::decode(Bytes::from(w)) {
            assert!(
                verify_data(&t, &p.meter7.public_key()).is_err(),
                "flip at {i} accepted"
            );
        }
    }
    // Flipping the signature itself.
    let mut w = wire.to_vec();
    let last = w.len() - 1;
    w[last] ^= 1;
    let t = Data::decode(Bytes::from(w)).unwrap();
    assert!(matches!(
        verify_data(&t, &p.meter7.public_key()),
        Err(Error::BadSignature { .. })
    ));
}

#[test]
fn digest_sha256_round_trip() {
    let mut d = reading("7");
    let wire = sign_data_digest(&mut d).unwrap();
    let decoded = Data::decode(wire).unwrap();
    verify_data_digest(&decoded).unwrap();
    let mut t = decoded.clone();
    t.content = Bytes::from_static(b"kWh=43");
    t.clear_wire();
    assert!(matches!(
        verify_data_digest(&t),
        Err(Error::DigestMismatch { .. })
    ));
    // A DigestSha256 packet is never accepted where a trusted signer is required.
    let p = pki();
    assert!(matches!(
        p.validator.validate_data(&decoded, &p.store, NOW_MS),
        Err(Error::UnsupportedSignatureType { sig_type: 0, .. })
    ));
}

#[test]
fn validator_accepts_good_chains() {
    let p = pki();
    let mut d = reading("7");
    let d = Data::decode(p.meter7.sign_data(&mut d).unwrap()).unwrap();
    let v = p.validator.validate_data(&d, &p.store, NOW_MS).unwrap();
    assert_eq!(v.rule, "meter-data");
    assert_eq!(v.chain.len(), 3, "{:?}", v.chain);
    assert_eq!(v.chain[2], *p.root_cert.name());
    // The KMS signs its own namespace.
    let mut k = Data::new(n("/u/ami/KMS/rekey/5"), Bytes::from_static(b"manifest"));
    let k = Data::decode(p.kms.sign_data(&mut k).unwrap()).unwrap();
    assert_eq!(
        p.validator
            .validate_data(&k, &p.store, NOW_MS)
            .unwrap()
            .rule,
        "kms-objects"
    );
    // A fetch callback works as a certificate source too.
    let fetch = |l: &Name| p.store.certificate(l);
    p.validator.validate_data(&d, &fetch, NOW_MS).unwrap();
}

#[test]
fn validator_rejects_wrong_signer_by_policy() {
    let p = pki();
    // Meter 8 signs a reading under meter 7's name: valid chain, wrong signer.
    let mut d = reading("7");
    let d = Data::decode(p.meter8.sign_data(&mut d).unwrap()).unwrap();
    assert!(matches!(
        p.validator.validate_data(&d, &p.store, NOW_MS),
        Err(Error::SignerNotAllowed { ref rule, .. }) if rule == "meter-data"
    ));
    // A meter signing under the KMS namespace.
    let mut k = Data::new(n("/u/ami/KMS/rekey/5"), Bytes::new());
    let k = Data::decode(p.meter7.sign_data(&mut k).unwrap()).unwrap();
    assert!(matches!(
        p.validator.validate_data(&k, &p.store, NOW_MS),
        Err(Error::SignerNotAllowed { .. })
    ));
    // A name no rule covers.
    let mut o = Data::new(n("/elsewhere/x"), Bytes::new());
    let o = Data::decode(p.meter7.sign_data(&mut o).unwrap()).unwrap();
    assert!(matches!(
        p.validator.validate_data(&o, &p.store, NOW_MS),
        Err(Error::NoTrustRule { .. })
    ));
}

#[test]
fn validator_rejects_expired_unknown_and_rogue_certificates() {
    let p = pki();
    let mut d = reading("7");
    let d = Data::decode(p.meter7.sign_data(&mut d).unwrap()).unwrap();
    // Two years later every certificate has expired.
    assert!(matches!(
        p.validator
            .validate_data(&d, &p.store, NOW_MS + 2 * YEAR * 1000),
        Err(Error::CertificateExpired { .. })
    ));
    assert!(matches!(
        p.validator
            .validate_data(&d, &p.store, (NOW_S - 3600) * 1000),
        Err(Error::CertificateNotYetValid { .. })
    ));
    // No certificate for the signer.
    let empty = CertStore::new();
    assert!(matches!(
        p.validator.validate_data(&d, &empty, NOW_MS),
        Err(Error::CertificateNotFound { .. })
    ));
    // A meter certificate issued by a rogue key that claims the KMS's name.
    let rogue = KeyPair::generate(&n("/u/ami/KMS"));
    let v = Validity::starting_now(NOW_S - 10, YEAR);
    let mut store = CertStore::new();
    let rogue_cert =
        Certificate::issue(rogue.key_name(), rogue.public_key(), &rogue, b"self", 1, v).unwrap();
    store.insert(rogue_cert);
    let m = KeyPair::generate(&n("/u/ami/meter/9"));
    store.insert(Certificate::issue(m.key_name(), m.public_key(), &rogue, b"kms", 1, v).unwrap());
    let mut r = reading("9");
    let r = Data::decode(m.sign_data(&mut r).unwrap()).unwrap();
    assert!(matches!(
        p.validator.validate_data(&r, &store, NOW_MS),
        Err(Error::SignerNotAllowed { .. })
            | Err(Error::NoTrustAnchor { .. })
            | Err(Error::UntrustedSelfSigned { .. })
    ));
    // A certificate whose signature was forged (issued by the root's name but another key).
    let forger = KeyPair::from_seed(&[3u8; 32], p.root.key_name().clone()).unwrap();
    let mut store2 = CertStore::new();
    for c in p.store.iter() {
        if c.key_name() != *p.kms.key_name() {
            store2.insert(c.clone());
        }
    }
    store2.insert(
        Certificate::issue(p.kms.key_name(), p.kms.public_key(), &forger, b"root", 2, v).unwrap(),
    );
    assert!(matches!(
        p.validator.validate_data(&d, &store2, NOW_MS),
        Err(Error::BadSignature { .. })
    ));
}

#[test]
fn expired_intermediate_is_reported() {
    let p = pki();
    let mut store = CertStore::new();
    let short = Validity::starting_now(NOW_S - 100, 50);
    store.insert(
        Certificate::issue(
            p.kms.key_name(),
            p.kms.public_key(),
            &p.root,
            b"root",
            1,
            short,
        )
        .unwrap(),
    );
    let v = Validity::starting_now(NOW_S - 10, YEAR);
    store.insert(
        Certificate::issue(
            p.meter7.key_name(),
            p.meter7.public_key(),
            &p.kms,
            b"kms",
            1,
            v,
        )
        .unwrap(),
    );
    let mut d = reading("7");
    let d = Data::decode(p.meter7.sign_data(&mut d).unwrap()).unwrap();
    match p.validator.validate_data(&d, &store, NOW_MS) {
        Err(Error::CertificateExpired { cert, .. }) => assert!(cert.contains("KMS"), "{cert}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn batch_verification_pinpoints_bad_packets() {
    let p = pki();
    let keys: Vec<KeyPair> = (0..64)
        .map(|i| KeyPair::generate(&n(&format!("/u/ami/meter/{i}"))))
        .collect();
    let mut datas: Vec<Data> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut d = reading(&i.to_string());
            Data::decode(k.sign_data(&mut d).unwrap()).unwrap()
        })
        .collect();
    let pks: Vec<PublicKey> = keys.iter().map(KeyPair::public_key).collect();
    let items: Vec<(&Data, &PublicKey)> = datas.iter().zip(&pks).collect();
    assert!(verify_data_batch(&items).iter().all(Result::is_ok));
    let portions: Vec<Bytes> = datas.iter().map(Data::signed_portion).collect();
    let triples: Vec<(&[u8], &[u8], &PublicKey)> = portions
        .iter()
        .zip(&datas)
        .zip(&pks)
        .map(|((p, d), k)| (&p[..], &d.signature_value[..], k))
        .collect();
    verify_batch(&triples).unwrap();
    // Packet 17 is signed by the wrong meter.
    let mut d = reading("17");
    datas[17] = Data::decode(p.meter8.sign_data(&mut d).unwrap()).unwrap();
    let items: Vec<(&Data, &PublicKey)> = datas.iter().zip(&pks).collect();
    let res = verify_data_batch(&items);
    let bad: Vec<usize> = res
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![17]);

    // The validator's batch path agrees with the single path.
    let mut store = p.store.clone();
    let v = Validity::starting_now(NOW_S - 10, YEAR);
    for k in &keys {
        store.insert(
            Certificate::issue(k.key_name(), k.public_key(), &p.kms, b"kms", 1, v).unwrap(),
        );
    }
    let res = p.validator.validate_data_batch(&datas, &store, NOW_MS);
    assert_eq!(res.len(), 64);
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 17, "packet {i}: {r:?}");
        assert_eq!(
            r.is_ok(),
            p.validator.validate_data(&datas[i], &store, NOW_MS).is_ok()
        );
    }
}

#[test]
fn batch_checks_new_certificates_and_caches_only_good_chains() {
    let p = pki();
    let v = Validity::starting_now(NOW_S - 10, YEAR);
    // Meters 20..30 certified by the KMS; meter 25's certificate forged under the KMS's name.
    let forger = KeyPair::from_seed(&[9u8; 32], p.kms.key_name().clone()).unwrap();
    let mut store = p.store.clone();
    let keys: Vec<KeyPair> = (20..30)
        .map(|i| KeyPair::generate(&n(&format!("/u/ami/meter/{i}"))))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let issuer = if i == 5 { &forger } else { &p.kms };
        store.insert(
            Certificate::issue(k.key_name(), k.public_key(), issuer, b"kms", 1, v).unwrap(),
        );
    }
    // Two readings per meter, so a chain resolved in the batch serves a second packet.
    let datas: Vec<Data> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, k)| {
            (0..2).map(move |t| {
                let mut d = Data::new(
                    n(&format!("/u/ami/meter/{}/reading/t={t}", 20 + i)),
                    Bytes::from_static(b"kWh=1"),
                );
                Data::decode(k.sign_data(&mut d).unwrap()).unwrap()
            })
        })
        .collect();
    let mut validator = Validator::new(TrustPolicy::ami(&n("/u")).unwrap());
    validator.add_anchor(p.root_cert.clone()).unwrap();
    let res = validator.validate_data_batch(&datas, &store, NOW_MS);
    for (j, r) in res.iter().enumerate() {
        if j / 2 == 5 {
            assert!(matches!(r, Err(Error::BadSignature { .. })), "{j}: {r:?}");
        } else {
            assert!(r.is_ok(), "{j}: {r:?}");
        }
    }
    // Nine meters' chains are remembered; the forged chain is not, and stays refused.
    assert_eq!(validator.cached_chains(), 9);
    let again = validator.validate_data_batch(&datas[10..12], &store, NOW_MS);
    assert!(again.iter().all(Result::is_err));
    assert!(matches!(
        validator.validate_data(&datas[10], &store, NOW_MS),
        Err(Error::BadSignature { .. })
    ));
}

#[test]
fn signed_interest_validation_and_replay() {
    let p = pki();
    let mut i = Interest::new(n("/u/ami/meter/7/cmd/read"));
    i.app_parameters = Some(Bytes::from_static(b"now"));
    let wire = p.meter7.sign_interest(&mut i, NOW_MS).unwrap();
    let decoded = Interest::decode(wire.clone()).unwrap();
    assert!(
        decoded
            .name
            .get(decoded.name.len() - 1)
            .unwrap()
            .is_params_digest()
    );
    verify_interest(&decoded, &p.meter7.public_key()).unwrap();
    let v = p
        .validator
        .validate_interest(&decoded, &p.store, NOW_MS)
        .unwrap();
    assert_eq!(v.rule, "meter-data");
    // Another meter may not command under meter 7's name.
    let mut j = Interest::new(n("/u/ami/meter/7/cmd/read"));
    let j = Interest::decode(p.meter8.sign_interest(&mut j, NOW_MS).unwrap()).unwrap();
    assert!(matches!(
        p.validator.validate_interest(&j, &p.store, NOW_MS),
        Err(Error::SignerNotAllowed { .. })
    ));
    // Tampered parameters break the digest component.
    let mut t = decoded.clone();
    t.app_parameters = Some(Bytes::from_static(b"later"));
    t.clear_wire();
    assert!(matches!(
        verify_interest(&t, &p.meter7.public_key()),
        Err(Error::ParamsDigest { .. })
    ));

    // Replay: the same packet twice is rejected by time and by nonce.
    let mut replay = ReplayChecker::new(ReplayConfig::default());
    replay.check_interest(&decoded, NOW_MS + 5).unwrap();
    assert!(matches!(
        replay.check_interest(&decoded, NOW_MS + 10),
        Err(Error::ReplayStaleTime { .. })
    ));
    let nonce_only = ReplayConfig {
        require_time: false,
        ..ReplayConfig::default()
    };
    let mut r2 = ReplayChecker::new(nonce_only);
    let mut no_time = Interest::new(n("/u/ami/meter/7/cmd/x"));
    let info = amicn_tlv::SignatureInfo {
        nonce: Some(Bytes::from_static(b"12345678")),
        ..p.meter7.signature_info()
    };
    let w = no_time.sign_with(info, |portion| p.meter7.sign(portion).to_vec());
    let no_time = Interest::decode(w).unwrap();
    r2.check_interest(&no_time, NOW_MS).unwrap();
    assert!(matches!(
        r2.check_interest(&no_time, NOW_MS),
        Err(Error::ReplayNonce { .. })
    ));
    // A fresh signature a second later passes; one from 2 minutes ago does not.
    let mut later = Interest::new(n("/u/ami/meter/7/cmd/read"));
    let later =
        Interest::decode(p.meter7.sign_interest(&mut later, NOW_MS + 1000).unwrap()).unwrap();
    replay.check_interest(&later, NOW_MS + 1000).unwrap();
    let mut old = Interest::new(n("/u/ami/meter/7/cmd/read"));
    let old =
        Interest::decode(p.meter7.sign_interest(&mut old, NOW_MS - 120_000).unwrap()).unwrap();
    assert!(matches!(
        replay.check_interest(&old, NOW_MS + 2000),
        Err(Error::ReplayOutsideWindow { .. })
    ));
    // The state survives a restart.
    let mut restored = ReplayChecker::from_bytes(&replay.to_bytes()).unwrap();
    assert!(restored.check_interest(&later, NOW_MS + 1500).is_err());
}

#[test]
fn anchors_must_be_self_signed_and_debug_hides_secrets() {
    let p = pki();
    let kms_cert = p.store.certificate(p.kms.key_name()).unwrap();
    let mut v = Validator::new(TrustPolicy::ami(&n("/u")).unwrap());
    assert!(v.add_anchor(kms_cert).is_err());
    let seed = p.kms.seed();
    let dbg = format!("{:?}", p.kms);
    assert!(!dbg.contains(&hex::encode(seed.as_ref())), "{dbg}");
    assert!(dbg.contains("KEY"));
}

#[test]
fn chain_cache_respects_validity_and_can_be_cleared() {
    let p = pki();
    let mut d = reading("7");
    let d = Data::decode(p.meter7.sign_data(&mut d).unwrap()).unwrap();
    assert_eq!(p.validator.cached_chains(), 0);
    p.validator.validate_data(&d, &p.store, NOW_MS).unwrap();
    assert_eq!(p.validator.cached_chains(), 1);
    // Cached: the store is no longer consulted for this signer.
    let empty = CertStore::new();
    p.validator
        .validate_data(&d, &empty, NOW_MS + 1000)
        .unwrap();
    // The packet's own signature is still checked on every call.
    let mut forged = d.clone();
    forged.content = Bytes::from_static(b"kWh=0");
    forged.clear_wire();
    let forged = Data::decode(forged.encode()).unwrap();
    assert!(matches!(
        p.validator.validate_data(&forged, &empty, NOW_MS),
        Err(Error::BadSignature { .. })
    ));
    // Outside the chain's validity window the cache does not answer.
    assert!(matches!(
        p.validator
            .validate_data(&d, &p.store, NOW_MS + 2 * YEAR * 1000),
        Err(Error::CertificateExpired { .. })
    ));
    // After forgetting (e.g. a revocation) the store decides again.
    p.validator.forget_signer(p.meter7.key_name());
    assert!(matches!(
        p.validator.validate_data(&d, &empty, NOW_MS),
        Err(Error::CertificateNotFound { .. })
    ));
    p.validator.validate_data(&d, &p.store, NOW_MS).unwrap();
    p.validator.clear_chain_cache();
    assert_eq!(p.validator.cached_chains(), 0);
    // With the cache disabled nothing is remembered.
    let v = p.validator.clone().with_chain_cache(0);
    v.validate_data(&d, &p.store, NOW_MS).unwrap();
    assert_eq!(v.cached_chains(), 0);
    assert!(v.validate_data(&d, &empty, NOW_MS).is_err());
}

#[test]
fn command_validation_runs_replay_only_after_authentication() {
    let p = pki();
    let mut replay = ReplayChecker::new(ReplayConfig::default());
    // A forged command (meter 8 under meter 7's name) is rejected and leaves no replay record.
    let mut forged = Interest::new(n("/u/ami/meter/7/cmd/disconnect"));
    let forged =
        Interest::decode(p.meter8.sign_interest(&mut forged, NOW_MS + 50).unwrap()).unwrap();
    assert!(
        p.validator
            .validate_command(&forged, &p.store, &mut replay, NOW_MS)
            .is_err()
    );
    assert_eq!(replay.tracked_keys(), 0);
    let mut good = Interest::new(n("/u/ami/meter/7/cmd/disconnect"));
    let good = Interest::decode(p.meter7.sign_interest(&mut good, NOW_MS).unwrap()).unwrap();
    p.validator
        .validate_command(&good, &p.store, &mut replay, NOW_MS)
        .unwrap();
    assert!(matches!(
        p.validator
            .validate_command(&good, &p.store, &mut replay, NOW_MS + 1),
        Err(Error::ReplayStaleTime { .. })
    ));
}

#[test]
fn hmac_signatures_for_psk_meters() {
    use amicn_kms::SymmetricKey;
    use amicn_kms::identity::{
        sign_data_hmac, sign_interest_hmac, verify_data_hmac, verify_interest_hmac,
    };
    let key = SymmetricKey::from_bytes([0x77; 32]);
    let key_name = n("/u/ami/meter/7/KEY/psk");
    let mut d = Data::new(n("/u/ami/meter/7/reading/1"), Bytes::from_static(b"kWh=42"));
    let wire = sign_data_hmac(&mut d, &key, &key_name);
    let d = Data::decode(wire.clone()).unwrap();
    assert_eq!(d.signature_info.sig_type, 4);
    // HMAC-SHA256 over the signed portion, computed outside this crate (Python hmac/hashlib).
    assert_eq!(
        hex::encode(&d.signature_value),
        HMAC_GOLDEN,
        "wire {}",
        hex::encode(&wire)
    );
    verify_data_hmac(&d, &key).unwrap();
    assert!(matches!(
        verify_data_hmac(&d, &SymmetricKey::from_bytes([0x78; 32])),
        Err(Error::BadSignature { .. })
    ));
    let mut t = d.clone();
    t.content = Bytes::from_static(b"kWh=43");
    t.clear_wire();
    assert!(verify_data_hmac(&t, &key).is_err());
    // Ed25519 verification refuses an HMAC packet and vice versa.
    assert!(verify_data(&d, &pki().meter7.public_key()).is_err());

    let mut i = Interest::new(n("/u/ami/meter/7/cmd/read"));
    let i = Interest::decode(sign_interest_hmac(&mut i, &key, &key_name, NOW_MS)).unwrap();
    verify_interest_hmac(&i, &key).unwrap();
    assert!(verify_interest_hmac(&i, &SymmetricKey::from_bytes([1; 32])).is_err());
    let mut replay = ReplayChecker::new(ReplayConfig::default());
    replay.check_interest(&i, NOW_MS).unwrap();
    assert!(replay.check_interest(&i, NOW_MS).is_err());
}

const HMAC_GOLDEN: &str = "1cdfa3a5b8b9c0c28714d2d57a6cc96bc951f42aaec512cf82f7a3decf9aac3e";
