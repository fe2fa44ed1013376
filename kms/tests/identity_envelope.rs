//! Content envelope and user-key establishment.
#![allow(clippy::unwrap_used)]

use amicn_kms::envelope::{
    ENCRYPTED_CONTENT, EncryptedContent, EnvelopeKey, NONCE_LEN, Purpose, TAG_LEN, derive_subkey,
    open, seal,
};
use amicn_kms::establish::{EphemeralAgreement, Role, psk_epoch_key};
use amicn_kms::{Error, SymmetricKey};
use amicn_tlv::Name;
use bytes::Bytes;

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

fn setup() -> (SymmetricKey, Name, Name) {
    (
        SymmetricKey::from_bytes([0x42; 32]),
        n("/u/ami/meter/7/KEK/v=3"),
        n("/u/ami/meter/7/reading/t=1000"),
    )
}

#[test]
fn seal_open_round_trip_and_wire_shape() {
    let (key, key_name, data_name) = setup();
    let ek = EnvelopeKey::derive(&key, &key_name, Purpose::Content);
    let pt = b"active_import_kwh=1234.5";
    let sealed = ek.seal(&data_name, pt).unwrap();
    assert_eq!(&ek.open(&data_name, &sealed).unwrap()[..], pt);
    // One-shot helpers agree with the prepared key.
    assert_eq!(
        &open(&key, &key_name, Purpose::Content, &data_name, &sealed).unwrap()[..],
        pt
    );
    let s2 = seal(&key, &key_name, Purpose::Content, &data_name, pt).unwrap();
    assert_ne!(s2, sealed, "random nonces make every seal different");
    // Wire: 0x82 { 0x84 ct||tag, 0x85 24-byte nonce, Name(7) of the key }.
    assert_eq!(sealed[0], ENCRYPTED_CONTENT as u8);
    let ec = EncryptedContent::decode(sealed.clone()).unwrap();
    assert_eq!(ec.key_name, key_name);
    assert_eq!(ec.payload.len(), pt.len() + TAG_LEN);
    assert_eq!(ec.encode(), sealed);
    let inner = &sealed[2..];
    assert_eq!(inner[0], 0x84);
    assert_eq!(inner[1] as usize, pt.len() + TAG_LEN);
    let iv_at = 2 + inner[1] as usize;
    assert_eq!(&inner[iv_at..iv_at + 2], &[0x85, NONCE_LEN as u8]);
    assert_eq!(&inner[iv_at + 2 + NONCE_LEN..], &key_name.to_wire()[..]);
    // Sealing into an existing buffer appends exactly `sealed_len` bytes that open the same way.
    let mut buf = bytes::BytesMut::from(&b"prefix"[..]);
    ek.seal_into(&data_name, pt, &mut buf).unwrap();
    assert_eq!(buf.len(), 6 + ek.sealed_len(pt.len()));
    assert_eq!(sealed.len(), ek.sealed_len(pt.len()));
    let tail = buf.freeze().slice(6..);
    assert_eq!(&ek.open(&data_name, &tail).unwrap()[..], pt);
    // Empty plaintext works too.
    let e = ek.seal(&data_name, b"").unwrap();
    assert!(ek.open(&data_name, &e).unwrap().is_empty());
}

#[test]
fn golden_vector_with_fixed_nonce() {
    // Fixed key, names and nonce: guards the subkey derivation, AAD and TLV layout against
    // accidental change (a change here breaks every deployed reader).
    let (key, key_name, data_name) = setup();
    let ek = EnvelopeKey::derive(&key, &key_name, Purpose::Content);
    let sealed = ek
        .seal_with_nonce(&data_name, b"hello", [7u8; NONCE_LEN])
        .unwrap();
    let sub = derive_subkey(&key, &key_name, Purpose::Content);
    assert_ne!(sub, key);
    let again = EnvelopeKey::derive(&key, &key_name, Purpose::Content)
        .seal_with_nonce(&data_name, b"hello", [7u8; NONCE_LEN])
        .unwrap();
    assert_eq!(sealed, again, "deterministic for a fixed nonce");
    assert_eq!(hex::encode(&sealed), GOLDEN);
}

/// Computed independently of this crate (Python `cryptography`: HKDF-SHA256, then HChaCha20 by
/// hand and IETF ChaCha20-Poly1305), so it checks the construction, not just stability.
const GOLDEN: &str = concat!(
    "824d8415f0d32d6f5e04d79e8e8cd7339ecc3076b7467576ef85180707070707",
    "07070707070707070707070707070707070707071a0801750803616d6908056d",
    "6574657208013708034b454b360103",
);

#[test]
fn tampering_is_rejected_with_clear_errors() {
    let (key, key_name, data_name) = setup();
    let ek = EnvelopeKey::derive(&key, &key_name, Purpose::Content);
    let sealed = ek.seal(&data_name, b"meter reading").unwrap();
    // Wrong key (same name).
    let other = EnvelopeKey::derive(
        &SymmetricKey::from_bytes([1; 32]),
        &key_name,
        Purpose::Content,
    );
    assert!(matches!(
        other.open(&data_name, &sealed),
        Err(Error::DecryptFailed { .. })
    ));
    // Same key, other purpose: domain separation means it does not open.
    let wrap = EnvelopeKey::derive(&key, &key_name, Purpose::KeyWrap);
    assert!(matches!(
        wrap.open(&data_name, &sealed),
        Err(Error::DecryptFailed { .. })
    ));
    // Other epoch of the key: the envelope names v=3, the caller holds v=4.
    let v4 = EnvelopeKey::derive(&key, &n("/u/ami/meter/7/KEK/v=4"), Purpose::Content);
    assert!(matches!(
        v4.open(&data_name, &sealed),
        Err(Error::WrongKeyName { .. })
    ));
    // Ciphertext moved under another Data name.
    assert!(matches!(
        ek.open(&n("/u/ami/meter/7/reading/t=1001"), &sealed),
        Err(Error::DecryptFailed { .. })
    ));
    // Every bit of payload, tag and nonce matters.
    let ec = EncryptedContent::decode(sealed.clone()).unwrap();
    let body_len = ec.payload.len() + 2 + NONCE_LEN + 2;
    for i in 2..2 + body_len {
        if i == 2 || i == 3 || i == 4 + ec.payload.len() || i == 5 + ec.payload.len() {
            continue; // TLV headers: covered by the malformed cases below
        }
        let mut w = sealed.to_vec();
        w[i] ^= 0x01;
        assert!(
            matches!(
                ek.open(&data_name, &Bytes::from(w)),
                Err(Error::DecryptFailed { .. })
            ),
            "flip at {i}"
        );
    }
    // Malformed containers.
    for bad in [
        &b""[..],
        &[0x82, 0x00][..],
        &[0x81, 0x00][..],
        &sealed[..sealed.len() - 1],
    ] {
        let r = ek.open(&data_name, &Bytes::copy_from_slice(bad));
        assert!(
            matches!(r, Err(Error::MalformedEnvelope(_)) | Err(Error::Tlv(_))),
            "{r:?}"
        );
    }
    let mut trailing = sealed.to_vec();
    trailing.push(0);
    assert!(ek.open(&data_name, &Bytes::from(trailing)).is_err());
    let short_iv = EncryptedContent {
        key_name: key_name.clone(),
        nonce: [0; NONCE_LEN],
        payload: Bytes::from_static(&[0; 3]),
    };
    assert!(matches!(
        EncryptedContent::decode(short_iv.encode()),
        Err(Error::MalformedEnvelope(
            "EncryptedPayload shorter than the tag"
        ))
    ));
}

#[test]
fn agreement_both_sides_equal_and_bound_to_names() {
    let meter = n("/u/ami/meter/7");
    let kms = n("/u/ami/KMS");
    let salt = [5u8; 32];
    let a = EphemeralAgreement::generate();
    let b = EphemeralAgreement::generate();
    let (pa, pb) = (a.public_key(), b.public_key());
    let ka = a.agree(Role::Initiator, &meter, &kms, &pb, &salt).unwrap();
    let kb = b.agree(Role::Responder, &kms, &meter, &pa, &salt).unwrap();
    assert_eq!(ka, kb);
    assert_ne!(ka, SymmetricKey::from_bytes([0; 32]));

    // The responder believes it talks to meter 8: keys differ.
    let a = EphemeralAgreement::generate();
    let b = EphemeralAgreement::generate();
    let (pa, pb) = (a.public_key(), b.public_key());
    let ka = a.agree(Role::Initiator, &meter, &kms, &pb, &salt).unwrap();
    let kb = b
        .agree(Role::Responder, &kms, &n("/u/ami/meter/8"), &pa, &salt)
        .unwrap();
    assert_ne!(ka, kb);

    // Different salt: keys differ.
    let a = EphemeralAgreement::generate();
    let b = EphemeralAgreement::generate();
    let (pa, pb) = (a.public_key(), b.public_key());
    let ka = a.agree(Role::Initiator, &meter, &kms, &pb, &salt).unwrap();
    let kb = b
        .agree(Role::Responder, &kms, &meter, &pa, &[6u8; 32])
        .unwrap();
    assert_ne!(ka, kb);

    // Both claim to be the initiator: the transcript order differs, so do the keys.
    let a = EphemeralAgreement::generate();
    let b = EphemeralAgreement::generate();
    let (pa, pb) = (a.public_key(), b.public_key());
    let ka = a.agree(Role::Initiator, &meter, &kms, &pb, &salt).unwrap();
    let kb = b.agree(Role::Initiator, &kms, &meter, &pa, &salt).unwrap();
    assert_ne!(ka, kb);
}

#[test]
fn agreement_rejects_low_order_and_reflected_keys() {
    let meter = n("/u/ami/meter/7");
    let kms = n("/u/ami/KMS");
    // Small-order points on Curve25519 (the all-zero point, 1, and an order-8 point).
    let order8 =
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    let mut lows: Vec<[u8; 32]> = vec![[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }];
    lows.push(order8.try_into().unwrap());
    for low in lows {
        let a = EphemeralAgreement::generate();
        assert!(matches!(
            a.agree(Role::Initiator, &meter, &kms, &low, &[0; 32]),
            Err(Error::NonContributory { .. })
        ));
    }
    let a = EphemeralAgreement::generate();
    let own = a.public_key();
    assert!(matches!(
        a.agree(Role::Initiator, &meter, &kms, &own, &[0; 32]),
        Err(Error::ReflectedKey { .. })
    ));
}

#[test]
fn psk_fallback_is_per_epoch_and_per_meter() {
    let psk = SymmetricKey::from_bytes([9; 32]);
    let kms = n("/u/ami/KMS");
    let m7 = n("/u/ami/meter/7");
    let e1 = psk_epoch_key(&psk, 1, &m7, &kms);
    assert_eq!(e1, psk_epoch_key(&psk, 1, &m7, &kms));
    assert_ne!(e1, psk_epoch_key(&psk, 2, &m7, &kms));
    assert_ne!(e1, psk_epoch_key(&psk, 1, &n("/u/ami/meter/8"), &kms));
    assert_ne!(e1, psk);
}

/// Hands out one fixed 32-byte secret: lets a test build an agreement key pair with known bytes.
struct FixedSecret([u8; 32]);

impl rand::TryRng for FixedSecret {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for (d, s) in dst.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
        Ok(())
    }
}

impl rand::TryCryptoRng for FixedSecret {}

#[test]
fn agreement_and_psk_golden_vectors() {
    // Expected values computed outside this crate (Python `cryptography`: X25519 and HKDF-SHA256
    // with info = label ‖ initiator Name TLV ‖ responder Name TLV ‖ pk_i ‖ pk_r).
    let meter = n("/u/ami/meter/7");
    let kms = n("/u/ami/KMS");
    let a = EphemeralAgreement::from_rng(&mut FixedSecret([0x11; 32]));
    let b = EphemeralAgreement::from_rng(&mut FixedSecret([0x22; 32]));
    let (pa, pb) = (a.public_key(), b.public_key());
    assert_eq!(
        hex::encode(pa),
        "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13"
    );
    assert_eq!(
        hex::encode(pb),
        "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20"
    );
    let expected = "6d43ed44f175508ab6fc70bbffb3775a0adbfc2a320291602a7343c9b8524deb";
    let ka = a
        .agree(Role::Initiator, &meter, &kms, &pb, &[5; 32])
        .unwrap();
    let kb = b
        .agree(Role::Responder, &kms, &meter, &pa, &[5; 32])
        .unwrap();
    assert_eq!(hex::encode(ka.as_bytes()), expected);
    assert_eq!(hex::encode(kb.as_bytes()), expected);
    let psk = psk_epoch_key(&SymmetricKey::from_bytes([9; 32]), 3, &meter, &kms);
    assert_eq!(
        hex::encode(psk.as_bytes()),
        "24a6c2d44f30253214c5f529838ad430611d8e1fe6385d286103e2af0cfefdc6"
    );
}
