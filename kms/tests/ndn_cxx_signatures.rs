//! Golden tests: certificates and Data signed by ndn-cxx 0.9.0 / ndn-tools 24.07 (ECDSA P-256,
//! RSA 2048 and DigestSha256; see `identity_vectors/ndn-cxx-keys/README.md`) verify, and
//! tampered copies are refused. Also: certificates of every key type issued by amicn.
#![allow(clippy::unwrap_used, missing_docs)]

use amicn_kms::Error;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::identity::{KeyPair, verify_data_digest};
use amicn_kms::signature::{EcdsaSigner, Signer, VerifyKey, verify_data_key};
use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
use amicn_tlv::{Data, Name};
use base64ct::{Base64, Encoding};
use bytes::Bytes;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/identity_vectors/ndn-cxx-keys/"
);
/// 2026-12-02, inside the vectors' ValidityPeriod (2026-12-01 .. 2046-11-26).
const NOW_MS: u64 = 1_796_256_000_000;

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{DIR}{file}")).unwrap()
}

fn b64(file: &str) -> Bytes {
    let text: String = read(file).split_whitespace().collect();
    Bytes::from(Base64::decode_vec(&text).unwrap())
}

fn hex_file(file: &str) -> Bytes {
    Bytes::from(hex::decode(read(file).trim()).unwrap())
}

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

fn tampered(wire: &Bytes, at: usize) -> Data {
    let mut w = wire.to_vec();
    w[at] ^= 0x01;
    Data::decode(Bytes::from(w)).unwrap()
}

/// Index of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

fn policy(k: &str) -> TrustPolicy {
    TrustPolicy::from_toml(&format!(
        "[[rule]]\nid = \"{k}-data\"\ndata = \"/example/{k}/data/...\"\nsigner = \"/example/{k}/KEY/...\"\n"
    ))
    .unwrap()
}

fn check_vector(k: &str, sig_type: u64, algorithm: &str) {
    let cert = Certificate::decode(b64(&format!("{k}.cert.b64"))).unwrap();
    assert_eq!(cert.identity(), n(&format!("/example/{k}")));
    assert_eq!(cert.key().algorithm(), algorithm);
    assert_eq!(cert.data().signature_info.sig_type, sig_type);
    assert!(cert.is_self_signed());
    cert.verify_self_signature().unwrap();
    cert.check_validity(NOW_MS / 1000).unwrap();
    // amicn writes the SubjectPublicKeyInfo byte for byte as ndn-cxx did.
    assert_eq!(cert.key().to_spki(), cert.data().content.to_vec());

    let wire = hex_file(&format!("{k}.data.hex"));
    let data = Data::decode(wire.clone()).unwrap();
    assert_eq!(data.name, n(&format!("/example/{k}/data/v=1")));
    assert_eq!(data.signature_info.sig_type, sig_type);
    verify_data_key(&data, cert.key()).unwrap();

    // The validator accepts it under a rule tying the signer to the name, with the certificate as
    // the anchor...
    let mut v = Validator::new(policy(k));
    v.add_anchor(cert.clone()).unwrap();
    let ok = v.validate_data(&data, &CertStore::new(), NOW_MS).unwrap();
    assert_eq!(ok.rule, format!("{k}-data"));
    assert_eq!(ok.chain, vec![cert.name().clone()]);
    assert!(
        v.validate_data_batch(std::slice::from_ref(&data), &CertStore::new(), NOW_MS)[0].is_ok()
    );
    // ...but not after the anchor expired.
    assert!(matches!(
        v.validate_data(&data, &CertStore::new(), 2_500_000_000_000),
        Err(Error::CertificateExpired { .. })
    ));

    // A changed content byte, a changed signature byte, and a changed name are refused.
    let content_at = find(&wire, b"payload signed by");
    let t = tampered(&wire, content_at);
    assert!(matches!(
        verify_data_key(&t, cert.key()),
        Err(Error::BadSignature { .. })
    ));
    let r = v.validate_data_batch(&[t, data.clone()], &CertStore::new(), NOW_MS);
    assert!(matches!(r[0], Err(Error::BadSignature { .. })) && r[1].is_ok());
    let t = tampered(&wire, wire.len() - 3);
    assert!(verify_data_key(&t, cert.key()).is_err());
    let t = tampered(&wire, find(&wire, b"data"));
    assert!(verify_data_key(&t, cert.key()).is_err());

    // A tampered certificate is not accepted as an anchor.
    let cw = b64(&format!("{k}.cert.b64"));
    let bad = Certificate::from_data(tampered(&cw, find(&cw, b"self") + 1)).unwrap();
    assert!(bad.verify_self_signature().is_err());
    let mut v2 = Validator::new(policy(k));
    assert!(v2.add_anchor(bad).is_err());
}

#[test]
fn ndn_cxx_ecdsa_certificate_and_data_verify() {
    check_vector("ecdsa", 3, "ECDSA P-256");
}

#[test]
fn ndn_cxx_rsa_certificate_and_data_verify() {
    check_vector("rsa", 1, "RSA");
}

#[test]
fn ndn_cxx_digest_data_verifies() {
    let wire = hex_file("digest.data.hex");
    let d = Data::decode(wire.clone()).unwrap();
    assert_eq!(d.content.as_ref(), b"hello\n");
    verify_data_digest(&d).unwrap();
    let t = tampered(&wire, find(&wire, b"hello"));
    assert!(matches!(
        verify_data_digest(&t),
        Err(Error::DigestMismatch { .. })
    ));
}

#[test]
fn wrong_key_type_is_its_own_error() {
    let ecdsa = Certificate::decode(b64("ecdsa.cert.b64")).unwrap();
    let rsa = Certificate::decode(b64("rsa.cert.b64")).unwrap();
    let d = Data::decode(hex_file("ecdsa.data.hex")).unwrap();
    assert!(matches!(
        verify_data_key(&d, rsa.key()),
        Err(Error::KeyTypeMismatch { sig_type: 3, .. })
    ));
    // Signed by the ECDSA key but claiming the RSA identity: the chain resolves to the RSA anchor,
    // whose key type does not match.
    let mut v = Validator::new(
        TrustPolicy::from_toml(
            "[[rule]]\nid = \"x\"\ndata = \"/example/...\"\nsigner = \"/example/<_>/KEY/...\"\n",
        )
        .unwrap(),
    );
    v.add_anchor(rsa).unwrap();
    assert!(v.validate_data(&d, &CertStore::new(), NOW_MS).is_err());
    v.add_anchor(ecdsa).unwrap();
    v.validate_data(&d, &CertStore::new(), NOW_MS).unwrap();
}

#[test]
fn certificates_of_every_key_type_chain_to_each_other() {
    let now_s = NOW_MS / 1000;
    let validity = Validity::starting_now(now_s - 10, 86_400);
    // An ECDSA root issues an Ed25519 certificate, which signs Data; an Ed25519 root issues an
    // ECDSA certificate, which signs Data.
    let ec_root = EcdsaSigner::generate(n("/u/KEY/ec-root"));
    let ec_root_cert =
        Certificate::self_signed_by(&ec_root, &n("/u/KEY/ec-root"), 1, validity).unwrap();
    assert_eq!(ec_root_cert.data().signature_info.sig_type, 3);
    assert_eq!(ec_root_cert.key(), &ec_root.public_key());
    ec_root_cert.verify_self_signature().unwrap();

    let ed_root = KeyPair::generate(&n("/u"));
    let ed_root_cert = Certificate::self_signed(&ed_root, 1, validity).unwrap();

    let meter = KeyPair::generate(&n("/u/meter/1"));
    let meter_cert = Certificate::issue(
        meter.key_name(),
        meter.public_key(),
        &ec_root,
        b"root",
        1,
        validity,
    )
    .unwrap();
    assert_eq!(meter_cert.data().signature_info.sig_type, 3);
    let dr = EcdsaSigner::generate(n("/u/dr/KEY/e1"));
    let dr_cert = Certificate::issue(
        &n("/u/dr/KEY/e1"),
        dr.public_key(),
        &ed_root,
        b"root",
        1,
        validity,
    )
    .unwrap();
    assert_eq!(dr_cert.data().signature_info.sig_type, 5);
    assert!(dr_cert.public_key().is_none());

    let mut store = CertStore::new();
    store.insert(meter_cert.clone());
    store.insert(dr_cert.clone());
    let policy = TrustPolicy::from_toml(
        "[[rule]]\nid = \"certs\"\ndata = \"/u/<_>/KEY/...\"\nsigner = \"/u/KEY/...\"\n\
         [[rule]]\nid = \"meter-certs\"\ndata = \"/u/meter/<_>/KEY/...\"\nsigner = \"/u/KEY/...\"\n\
         [[rule]]\nid = \"meter\"\ndata = \"/u/meter/<m>/...\"\nsigner = \"/u/meter/<m>/KEY/...\"\n\
         [[rule]]\nid = \"dr\"\ndata = \"/u/dr/...\"\nsigner = \"/u/dr/KEY/...\"\n",
    )
    .unwrap();
    let mut v = Validator::new(policy);
    v.add_anchor(ec_root_cert).unwrap();
    v.add_anchor(ed_root_cert).unwrap();

    let mut a = Data::new(n("/u/meter/1/reading/5"), Bytes::from_static(b"42"));
    let a = Data::decode(amicn_kms::signature::sign_data(&meter, &mut a)).unwrap();
    let mut b = Data::new(n("/u/dr/event/1"), Bytes::from_static(b"shed"));
    let b = Data::decode(amicn_kms::signature::sign_data(&dr, &mut b)).unwrap();
    assert_eq!(b.signature_info.sig_type, 3);
    let r = v.validate_data(&a, &store, NOW_MS).unwrap();
    assert_eq!(r.chain.len(), 2);
    v.validate_data(&b, &store, NOW_MS).unwrap();
    let batch = v.validate_data_batch(&[a.clone(), b.clone()], &store, NOW_MS);
    assert!(batch.iter().all(Result::is_ok), "{batch:?}");
    // A certificate re-read from its wire form keeps its key, and Signer::verify_key agrees.
    let back = Certificate::decode(dr_cert.to_wire()).unwrap();
    assert_eq!(back.key(), &dr.verify_key().unwrap());
    assert_eq!(
        VerifyKey::from_spki(&back.data().content).unwrap(),
        dr.public_key()
    );
}
