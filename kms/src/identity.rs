//! Ed25519 identities: key pairs, public keys in SubjectPublicKeyInfo form, and signing and
//! verification of Data and signed Interests (SignatureEd25519 = 5, and DigestSha256 = 0).
//!
//! Key names follow the NDN convention `/<identity>/KEY/<key-id>` with an 8-byte random key id.
//! Verification is always `verify_strict` (rejects small-order keys and non-canonical
//! signatures); batch verification is offered for bulk Data and callers fall back to single
//! checks when a batch fails.

use std::fmt;

use amicn_tlv::{Component, Data, Interest, KeyLocator, Name, SignatureInfo};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::cert::check_key_name;
use crate::error::{Error, Result};
use crate::key::{SymmetricKey, fill_random};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 },
/// BIT STRING (0 unused bits) } followed by the 32 key bytes.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Length of an Ed25519 SPKI.
pub const ED25519_SPKI_LEN: usize = 44;
/// Length of an Ed25519 SignatureValue.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a DigestSha256 SignatureValue.
pub const DIGEST_LEN: usize = 32;
/// Length of the random key id component.
pub const KEY_ID_LEN: usize = 8;

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0.as_bytes()))
    }
}

impl PublicKey {
    /// From the raw 32 bytes; fails for encodings that are not a curve point.
    /// Small-order ("weak") keys are refused: no honest key is one, and refusing them keeps batch
    /// verification in agreement with strict single verification.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())
            .map(Self)
            .ok_or(Error::BadPublicKey {
                name: String::new(),
                reason: "not an Ed25519 point, or a small-order point",
            })
    }

    /// From an Ed25519 SubjectPublicKeyInfo DER (exactly the 12-byte prefix and 32 key bytes).
    pub fn from_spki(der: &[u8]) -> Result<Self> {
        let bad = |reason| Error::BadPublicKey {
            name: String::new(),
            reason,
        };
        if der.len() != ED25519_SPKI_LEN {
            return Err(bad("SubjectPublicKeyInfo is not 44 bytes"));
        }
        let (prefix, key) = der.split_at(ED25519_SPKI_PREFIX.len());
        if prefix != ED25519_SPKI_PREFIX {
            return Err(bad("SubjectPublicKeyInfo is not Ed25519 (OID 1.3.101.112)"));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| bad("key length"))?;
        Self::from_bytes(&key)
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The SubjectPublicKeyInfo DER (certificate Content).
    pub fn to_spki(&self) -> [u8; ED25519_SPKI_LEN] {
        let mut out = [0u8; ED25519_SPKI_LEN];
        out[..12].copy_from_slice(&ED25519_SPKI_PREFIX);
        out[12..].copy_from_slice(self.0.as_bytes());
        out
    }

    /// SHA-256 of the SPKI: the KeyDigest form of a KeyLocator.
    pub fn key_digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_spki()).into()
    }

    /// Strict Ed25519 verification of `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.0.verify_strict(msg, &sig).is_ok()
    }

    fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// An Ed25519 signing key with its NDN key name. The secret is wiped on drop and never printed.
pub struct KeyPair {
    signing: SigningKey,
    key_name: Name,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_name", &self.key_name.to_string())
            .field(
                "public",
                &hex::encode(self.signing.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key for `identity`, named `/<identity>/KEY/<8 random bytes>`.
    pub fn generate(identity: &Name) -> Self {
        let mut id = [0u8; KEY_ID_LEN];
        fill_random(&mut id);
        let key_name = key_name(identity, &id);
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(seed.as_mut());
        Self {
            signing: SigningKey::from_bytes(&seed),
            key_name,
        }
    }

    /// Rebuilds a key pair from its 32-byte seed and key name.
    pub fn from_seed(seed: &[u8; 32], key_name: Name) -> Result<Self> {
        check_key_name(&key_name)?;
        Ok(Self {
            signing: SigningKey::from_bytes(seed),
            key_name,
        })
    }

    /// The secret seed, for storage. Wiped when the returned value is dropped.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// `/<identity>/KEY/<key-id>`.
    pub fn key_name(&self) -> &Name {
        &self.key_name
    }

    /// `/<identity>`.
    pub fn identity(&self) -> Name {
        self.key_name.prefix(self.key_name.len().saturating_sub(2))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// Raw Ed25519 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(msg).to_bytes()
    }

    /// SignatureInfo naming this key: SignatureEd25519 with KeyLocator = key name.
    pub fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::with_key(amicn_tlv::sig::ED25519, self.key_name.clone())
    }

    /// Signs `data` in place (SignatureEd25519, KeyLocator = key name) and returns its wire encoding.
    pub fn sign_data(&self, data: &mut Data) -> Result<Bytes> {
        self.sign_data_with_info(data, self.signature_info())
    }

    /// Signs `data` with a caller-built SignatureInfo (e.g. carrying a ValidityPeriod).
    pub fn sign_data_with_info(&self, data: &mut Data, info: SignatureInfo) -> Result<Bytes> {
        if info.sig_type != amicn_tlv::sig::ED25519 {
            return Err(Error::UnsupportedSignatureType {
                name: data.name.to_string(),
                sig_type: info.sig_type,
            });
        }
        Ok(data.sign_with(info, |portion| self.sign(portion).to_vec()))
    }

    /// Signs an Interest (packet spec v0.3 signed Interest): sets ApplicationParameters if absent,
    /// InterestSignatureInfo with a fresh 8-byte SignatureNonce and SignatureTime `now_ms`, appends
    /// the ParametersSha256DigestComponent, and returns the wire encoding.
    pub fn sign_interest(&self, interest: &mut Interest, now_ms: u64) -> Result<Bytes> {
        let mut nonce = [0u8; 8];
        fill_random(&mut nonce);
        let info = SignatureInfo {
            nonce: Some(Bytes::copy_from_slice(&nonce)),
            time_ms: Some(now_ms),
            ..self.signature_info()
        };
        Ok(interest.sign_with(info, |portion| self.sign(portion).to_vec()))
    }
}

/// `/<identity>/KEY/<key-id>`.
pub fn key_name(identity: &Name, key_id: &[u8]) -> Name {
    identity
        .append(Component::generic(Bytes::from_static(b"KEY")))
        .append(Component::generic(Bytes::copy_from_slice(key_id)))
}

/// Verifies an Ed25519 signature over `portion`; `name` and `signer` only label the error.
pub fn verify_ed25519(
    name: &Name,
    signer: &Name,
    portion: &[u8],
    value: &[u8],
    key: &PublicKey,
) -> Result<()> {
    if value.len() != SIGNATURE_LEN {
        return Err(Error::SignatureLength {
            name: name.to_string(),
            len: value.len(),
            expected: SIGNATURE_LEN,
        });
    }
    if key.verify(portion, value) {
        Ok(())
    } else {
        Err(Error::BadSignature {
            name: name.to_string(),
            signer: signer.to_string(),
        })
    }
}

fn locator_name(info: &SignatureInfo) -> Name {
    match &info.key_locator {
        Some(KeyLocator::Name(n)) => n.clone(),
        Some(KeyLocator::KeyDigest(d)) => Name::default().append(Component::generic(Bytes::from(
            format!("key-digest={}", hex::encode(d)),
        ))),
        None => Name::default(),
    }
}

/// Verifies a Data's SignatureEd25519 with `key` (KeyLocator and trust are not checked here).
pub fn verify_data(data: &Data, key: &PublicKey) -> Result<()> {
    if data.signature_info.sig_type != amicn_tlv::sig::ED25519 {
        return Err(Error::UnsupportedSignatureType {
            name: data.name.to_string(),
            sig_type: data.signature_info.sig_type,
        });
    }
    let signer = locator_name(&data.signature_info);
    verify_ed25519(
        &data.name,
        &signer,
        &data.signed_portion(),
        &data.signature_value,
        key,
    )
}

/// Verifies a DigestSha256-signed Data (integrity only; no signer).
pub fn verify_data_digest(data: &Data) -> Result<()> {
    if data.signature_info.sig_type != amicn_tlv::sig::DIGEST_SHA256 {
        return Err(Error::UnsupportedSignatureType {
            name: data.name.to_string(),
            sig_type: data.signature_info.sig_type,
        });
    }
    check_digest(&data.name, &data.signed_portion(), &data.signature_value)
}

fn check_digest(name: &Name, portion: &[u8], value: &[u8]) -> Result<()> {
    if value.len() != DIGEST_LEN {
        return Err(Error::SignatureLength {
            name: name.to_string(),
            len: value.len(),
            expected: DIGEST_LEN,
        });
    }
    let digest: [u8; 32] = Sha256::digest(portion).into();
    if bool::from(digest.ct_eq(value)) {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            name: name.to_string(),
        })
    }
}

/// Signs `data` with DigestSha256 and returns its wire encoding.
pub fn sign_data_digest(data: &mut Data) -> Result<Bytes> {
    Ok(data.sign_with(SignatureInfo::digest_sha256(), |portion| {
        Sha256::digest(portion).to_vec()
    }))
}

/// The signature info, value and signed portion of a signed Interest, after checking that the
/// name ends in the correct ParametersSha256DigestComponent.
pub fn interest_signed_parts(interest: &Interest) -> Result<(&SignatureInfo, &[u8], Bytes)> {
    let name = || interest.name.to_string();
    let (Some(info), Some(value)) = (&interest.signature_info, &interest.signature_value) else {
        return Err(Error::NotSigned { name: name() });
    };
    if interest.app_parameters.is_none() || !interest.check_params_digest() {
        return Err(Error::ParamsDigest { name: name() });
    }
    Ok((info, value.as_ref(), interest.signed_portion()))
}

/// Verifies a signed Interest's SignatureEd25519 with `key` (replay and trust are checked elsewhere).
pub fn verify_interest(interest: &Interest, key: &PublicKey) -> Result<()> {
    let (info, value, portion) = interest_signed_parts(interest)?;
    if info.sig_type != amicn_tlv::sig::ED25519 {
        return Err(Error::UnsupportedSignatureType {
            name: interest.name.to_string(),
            sig_type: info.sig_type,
        });
    }
    verify_ed25519(&interest.name, &locator_name(info), &portion, value, key)
}

/// Verifies a DigestSha256-signed Interest.
pub fn verify_interest_digest(interest: &Interest) -> Result<()> {
    let (info, value, portion) = interest_signed_parts(interest)?;
    if info.sig_type != amicn_tlv::sig::DIGEST_SHA256 {
        return Err(Error::UnsupportedSignatureType {
            name: interest.name.to_string(),
            sig_type: info.sig_type,
        });
    }
    check_digest(&interest.name, &portion, value)
}

/// Length of a SignatureHmacWithSha256 value.
pub const HMAC_LEN: usize = 32;

pub(crate) fn hmac_sha256(key: &SymmetricKey, msg: &[u8]) -> [u8; HMAC_LEN] {
    use hkdf::hmac::{Hmac, KeyInit, Mac};
    // HMAC takes keys of any length; a 32-byte key never fails.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()) else {
        return [0u8; HMAC_LEN];
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Signs `data` with SignatureHmacWithSha256 (type 4) under a shared key named `key_name` — for
/// meters that hold only a pre-shared key and cannot afford Ed25519.
pub fn sign_data_hmac(data: &mut Data, key: &SymmetricKey, key_name: &Name) -> Bytes {
    let info = SignatureInfo::with_key(amicn_tlv::sig::HMAC_WITH_SHA256, key_name.clone());
    data.sign_with(info, |portion| hmac_sha256(key, portion).to_vec())
}

/// Verifies a SignatureHmacWithSha256 Data with the shared key (constant-time comparison).
pub fn verify_data_hmac(data: &Data, key: &SymmetricKey) -> Result<()> {
    let info = &data.signature_info;
    if info.sig_type != amicn_tlv::sig::HMAC_WITH_SHA256 {
        return Err(Error::UnsupportedSignatureType {
            name: data.name.to_string(),
            sig_type: info.sig_type,
        });
    }
    check_hmac(
        &data.name,
        &locator_name(info),
        &data.signed_portion(),
        &data.signature_value,
        key,
    )
}

/// Signs an Interest with SignatureHmacWithSha256 (with SignatureNonce and SignatureTime).
pub fn sign_interest_hmac(
    interest: &mut Interest,
    key: &SymmetricKey,
    key_name: &Name,
    now_ms: u64,
) -> Bytes {
    let mut nonce = [0u8; 8];
    fill_random(&mut nonce);
    let info = SignatureInfo {
        nonce: Some(Bytes::copy_from_slice(&nonce)),
        time_ms: Some(now_ms),
        ..SignatureInfo::with_key(amicn_tlv::sig::HMAC_WITH_SHA256, key_name.clone())
    };
    interest.sign_with(info, |portion| hmac_sha256(key, portion).to_vec())
}

/// Verifies a SignatureHmacWithSha256 signed Interest with the shared key.
pub fn verify_interest_hmac(interest: &Interest, key: &SymmetricKey) -> Result<()> {
    let (info, value, portion) = interest_signed_parts(interest)?;
    if info.sig_type != amicn_tlv::sig::HMAC_WITH_SHA256 {
        return Err(Error::UnsupportedSignatureType {
            name: interest.name.to_string(),
            sig_type: info.sig_type,
        });
    }
    check_hmac(&interest.name, &locator_name(info), &portion, value, key)
}

fn check_hmac(
    name: &Name,
    signer: &Name,
    portion: &[u8],
    value: &[u8],
    key: &SymmetricKey,
) -> Result<()> {
    if value.len() != HMAC_LEN {
        return Err(Error::SignatureLength {
            name: name.to_string(),
            len: value.len(),
            expected: HMAC_LEN,
        });
    }
    if bool::from(hmac_sha256(key, portion).ct_eq(value)) {
        Ok(())
    } else {
        Err(Error::BadSignature {
            name: name.to_string(),
            signer: signer.to_string(),
        })
    }
}

/// Parts of a pre-v0.3 command Interest (`.../<timestamp>/<nonce>/<SignatureInfo>/<SignatureValue>`
/// as name components, still sent by older clients such as python-ndn's v1 `NDNApp`): the decoded
/// SignatureInfo, the signature value, and the signed portion — the TLV encodings of every name
/// component before the SignatureValue component.
pub fn legacy_command_parts(interest: &Interest) -> Result<(SignatureInfo, Bytes, Bytes)> {
    let name = &interest.name;
    let not_signed = || Error::NotSigned {
        name: name.to_string(),
    };
    let n = name.len();
    if n < 4 {
        return Err(not_signed());
    }
    let info_comp = name.get(n - 2).ok_or_else(not_signed)?;
    let value_comp = name.get(n - 1).ok_or_else(not_signed)?;
    let info = SignatureInfo::decode(info_comp.value_bytes().clone()).map_err(|_| not_signed())?;
    let mut reader = amicn_tlv::TlvReader::new(value_comp.value_bytes().clone());
    let el = reader.read().map_err(|_| not_signed())?;
    if el.typ != amicn_tlv::tt::SIGNATURE_VALUE || !reader.is_empty() {
        return Err(not_signed());
    }
    let mut portion = bytes::BytesMut::new();
    for k in 0..n - 1 {
        portion.extend_from_slice(name.component_wire(k).ok_or_else(not_signed)?);
    }
    Ok((info, el.value, portion.freeze()))
}

/// Verifies a pre-v0.3 command Interest signed with DigestSha256.
pub fn verify_legacy_command_digest(interest: &Interest) -> Result<()> {
    let (info, value, portion) = legacy_command_parts(interest)?;
    if info.sig_type != amicn_tlv::sig::DIGEST_SHA256 {
        return Err(Error::UnsupportedSignatureType {
            name: interest.name.to_string(),
            sig_type: info.sig_type,
        });
    }
    check_digest(&interest.name, &portion, &value)
}

/// Verifies many `(message, signature, key)` triples with one Ed25519 batch equation.
///
/// Succeeds only if every signature is valid. Batch and single verification can disagree on
/// crafted edge cases, so on failure callers should re-check individually with
/// [`PublicKey::verify`] (strict) to decide which ones to reject.
pub fn verify_batch(items: &[(&[u8], &[u8], &PublicKey)]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut msgs = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (i, (m, s, k)) in items.iter().enumerate() {
        let sig = Signature::from_slice(s).map_err(|_| Error::BadSignature {
            name: format!("batch item {i}"),
            signer: hex::encode(k.to_bytes()),
        })?;
        msgs.push(*m);
        sigs.push(sig);
        keys.push(*k.verifying_key());
    }
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).map_err(|_| Error::BadSignature {
        name: format!("batch of {}", items.len()),
        signer: String::new(),
    })
}

/// Verifies many Data signed with SignatureEd25519, each with its given key. Returns per-packet
/// results: one batch check when all are good, individual strict checks otherwise.
pub fn verify_data_batch(items: &[(&Data, &PublicKey)]) -> Vec<Result<()>> {
    let portions: Vec<Bytes> = items.iter().map(|(d, _)| d.signed_portion()).collect();
    let all_ed25519 = items
        .iter()
        .all(|(d, _)| d.signature_info.sig_type == amicn_tlv::sig::ED25519);
    if all_ed25519 {
        let triples: Vec<(&[u8], &[u8], &PublicKey)> = items
            .iter()
            .zip(&portions)
            .map(|((d, k), p)| (p.as_ref(), d.signature_value.as_ref(), *k))
            .collect();
        if verify_batch(&triples).is_ok() {
            return items.iter().map(|_| Ok(())).collect();
        }
    }
    items.iter().map(|(d, k)| verify_data(d, k)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spki_round_trip_and_rejections() {
        let k = KeyPair::from_seed(&[1u8; 32], Name::from_uri("/a/KEY/1").unwrap()).unwrap();
        let pk = k.public_key();
        let spki = pk.to_spki();
        assert_eq!(spki.len(), ED25519_SPKI_LEN);
        assert_eq!(PublicKey::from_spki(&spki).unwrap(), pk);
        assert_eq!(pk.key_digest(), <[u8; 32]>::from(Sha256::digest(spki)));
        let mut wrong_oid = spki;
        wrong_oid[8] = 0x6e; // 1.3.101.110 is X25519
        assert!(PublicKey::from_spki(&wrong_oid).is_err());
        assert!(PublicKey::from_spki(&spki[..43]).is_err());
        // The identity point (small order) is refused.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PublicKey::from_bytes(&ident).is_err());
        // Key names must have the KEY marker.
        assert!(KeyPair::from_seed(&[1u8; 32], Name::from_uri("/a/b").unwrap()).is_err());
        assert_eq!(k.identity(), Name::from_uri("/a").unwrap());
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1 TEST 1: empty message.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let k = KeyPair::from_seed(&seed, Name::from_uri("/t/KEY/1").unwrap()).unwrap();
        assert_eq!(
            hex::encode(k.public_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = k.sign(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(k.public_key().verify(b"", &sig));
        assert!(!k.public_key().verify(b"x", &sig));
    }
}
