//! Every NDN signature type in one place (packet spec "Signature"): public keys of each kind as
//! certificates carry them (SubjectPublicKeyInfo DER), signers, and verification of Data and
//! signed Interests.
//!
//! | SignatureType | verify | sign |
//! | --- | --- | --- |
//! | 0 DigestSha256 | [`crate::identity::verify_data_digest`] | [`DigestSigner`] |
//! | 1 SignatureSha256WithRsa (PKCS#1 v1.5) | [`VerifyKey::Rsa`] | [`RsaSigner`] |
//! | 3 SignatureSha256WithEcdsa (P-256, DER signature) | [`VerifyKey::EcdsaP256`] | [`EcdsaSigner`] |
//! | 4 SignatureHmacWithSha256 | [`crate::identity::verify_data_hmac`] | [`HmacSigner`] |
//! | 5 SignatureEd25519 | [`VerifyKey::Ed25519`] | [`Ed25519Signer`], [`KeyPair`] |
//!
//! The producer and consumer crates hold no crypto of their own: they sign with a [`Signer`] and
//! verify with [`verify_data_key`] / [`verify_data_batch`]. Chains of certificates and trust
//! rules sit one level up, in [`crate::trust`].

use std::fmt;

use amicn_tlv::{Data, Interest, KeyLocator, Name, SignatureInfo, sig};
use bytes::Bytes;
use ed25519_dalek::Signer as _;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::{self, KeyPair, PublicKey};
use crate::key::{SymmetricKey, fill_random};

/// Object identifier of Ed25519 keys (RFC 8410).
const OID_ED25519: &str = "1.3.101.112";
/// Object identifier of elliptic-curve public keys (RFC 5480 id-ecPublicKey).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// Object identifier of RSA public keys (RFC 8017 rsaEncryption).
const OID_RSA: &str = "1.2.840.113549.1.1.1";
/// Smallest RSA modulus accepted, in bits (ndn-cxx generates 2048-bit keys).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: bounds the cost of one verification.
pub const RSA_MAX_BITS: usize = 4096;
/// Longest DER encoding of a P-256 ECDSA signature.
pub const ECDSA_P256_MAX_DER_LEN: usize = 72;

/// A public key of any type NDN certificates carry.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyKey {
    /// Ed25519 (SignatureEd25519).
    Ed25519(PublicKey),
    /// ECDSA over NIST P-256 (SignatureSha256WithEcdsa).
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// RSA, 2048 to 4096 bits (SignatureSha256WithRsa).
    Rsa(Box<rsa::PublicKey>),
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VerifyKey({} {})",
            self.algorithm(),
            hex::encode(&self.key_digest()[..8])
        )
    }
}

impl From<PublicKey> for VerifyKey {
    fn from(k: PublicKey) -> Self {
        Self::Ed25519(k)
    }
}

impl From<&PublicKey> for VerifyKey {
    fn from(k: &PublicKey) -> Self {
        Self::Ed25519(*k)
    }
}

impl From<&VerifyKey> for VerifyKey {
    fn from(k: &VerifyKey) -> Self {
        k.clone()
    }
}

impl VerifyKey {
    /// Parses a SubjectPublicKeyInfo DER (certificate Content): Ed25519, EC P-256 or RSA.
    pub fn from_spki(der: &[u8]) -> Result<Self> {
        let bad = |reason| Error::BadPublicKey {
            name: String::new(),
            reason,
        };
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|_| bad("Content is not a SubjectPublicKeyInfo DER"))?;
        match info.algorithm.oid.to_string().as_str() {
            OID_ED25519 => PublicKey::from_spki(der).map(Self::Ed25519),
            OID_EC_PUBLIC_KEY => p256::PublicKey::from_public_key_der(der)
                .map(|k| Self::EcdsaP256(k.into()))
                .map_err(|_| bad("EC key is not a valid point on NIST P-256")),
            OID_RSA => {
                let k = rsa::PublicKey::from_public_key_der(der)
                    .map_err(|_| bad("malformed RSA public key"))?;
                let bits = k.n().bit_width() as usize;
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(bad("RSA modulus is not between 2048 and 4096 bits"));
                }
                Ok(Self::Rsa(Box::new(k)))
            }
            _ => Err(bad(
                "key algorithm is not Ed25519, EC P-256 or RSA (unknown OID)",
            )),
        }
    }

    /// The SubjectPublicKeyInfo DER, as ndn-cxx writes it into certificates.
    pub fn to_spki(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.to_spki().to_vec(),
            Self::EcdsaP256(k) => k
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
            Self::Rsa(k) => k
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// SHA-256 of the SPKI: the KeyDigest form of a KeyLocator.
    pub fn key_digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_spki()).into()
    }

    /// Human-readable algorithm name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "Ed25519",
            Self::EcdsaP256(_) => "ECDSA P-256",
            Self::Rsa(_) => "RSA",
        }
    }

    /// The SignatureType this key verifies.
    pub fn sig_type(&self) -> u64 {
        match self {
            Self::Ed25519(_) => sig::ED25519,
            Self::EcdsaP256(_) => sig::SHA256_WITH_ECDSA,
            Self::Rsa(_) => sig::SHA256_WITH_RSA,
        }
    }

    /// The Ed25519 key, if this is one.
    pub fn as_ed25519(&self) -> Option<&PublicKey> {
        match self {
            Self::Ed25519(k) => Some(k),
            _ => None,
        }
    }

    /// Verifies `value` (a SignatureValue of type `sig_type`) over `portion`; `name` and `signer`
    /// only label the error.
    pub fn verify(
        &self,
        name: &Name,
        signer: &Name,
        sig_type: u64,
        portion: &[u8],
        value: &[u8],
    ) -> Result<()> {
        if sig_type != self.sig_type() {
            return Err(Error::KeyTypeMismatch {
                name: name.to_string(),
                sig_type,
                key: self.algorithm(),
            });
        }
        let bad = || Error::BadSignature {
            name: name.to_string(),
            signer: signer.to_string(),
        };
        match self {
            Self::Ed25519(k) => identity::verify_ed25519(name, signer, portion, value, k),
            Self::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier;
                if value.len() > ECDSA_P256_MAX_DER_LEN {
                    return Err(Error::SignatureLength {
                        name: name.to_string(),
                        len: value.len(),
                        expected: ECDSA_P256_MAX_DER_LEN,
                    });
                }
                let s = p256::ecdsa::Signature::from_der(value).map_err(|_| {
                    Error::BadSignatureEncoding {
                        name: name.to_string(),
                        reason: "ECDSA SignatureValue is not a DER SEQUENCE of two INTEGERs",
                    }
                })?;
                k.verify(portion, &s).map_err(|_| bad())
            }
            Self::Rsa(k) => {
                if value.len() != k.size() {
                    return Err(Error::SignatureLength {
                        name: name.to_string(),
                        len: value.len(),
                        expected: k.size(),
                    });
                }
                let hashed = Sha256::digest(portion);
                k.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed, value)
                    .map_err(|_| bad())
            }
        }
    }
}

/// Produces SignatureInfo and SignatureValue for Data and signed Interests.
pub trait Signer: Send + Sync {
    /// The SignatureInfo to put in every packet (type, KeyLocator).
    fn signature_info(&self) -> SignatureInfo;
    /// The SignatureValue over `signed_portion`.
    fn sign(&self, signed_portion: &[u8]) -> Vec<u8>;
    /// The public key that verifies these signatures (none for DigestSha256 and HMAC).
    fn verify_key(&self) -> Option<VerifyKey> {
        None
    }
}

/// DigestSha256 (SignatureType 0): integrity only, no key.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestSigner;

impl Signer for DigestSigner {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::digest_sha256()
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        Sha256::digest(signed_portion).to_vec()
    }
}

impl Signer for KeyPair {
    fn signature_info(&self) -> SignatureInfo {
        KeyPair::signature_info(self)
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        KeyPair::sign(self, signed_portion).to_vec()
    }

    fn verify_key(&self) -> Option<VerifyKey> {
        Some(VerifyKey::Ed25519(self.public_key()))
    }
}

/// Ed25519 (SignatureType 5) with a KeyLocator naming the signer's key or certificate.
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    key_locator: Name,
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_locator", &self.key_locator.to_string())
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// A signer from a 32-byte Ed25519 secret seed; `key_locator` names its key or certificate.
    pub fn from_seed(seed: &[u8; 32], key_locator: Name) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
            key_locator,
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The name carried in KeyLocator.
    pub fn key_locator(&self) -> &Name {
        &self.key_locator
    }
}

impl Signer for Ed25519Signer {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::with_key(sig::ED25519, self.key_locator.clone())
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        self.key.sign(signed_portion).to_bytes().to_vec()
    }

    fn verify_key(&self) -> Option<VerifyKey> {
        PublicKey::from_bytes(&self.public_key())
            .ok()
            .map(VerifyKey::Ed25519)
    }
}

/// ECDSA over NIST P-256 with SHA-256 (SignatureType 3), DER-encoded signatures as ndn-cxx and
/// python-ndn write them. Signing is deterministic (RFC 6979). The secret is wiped on drop.
pub struct EcdsaSigner {
    key: p256::ecdsa::SigningKey,
    key_locator: Name,
}

impl fmt::Debug for EcdsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaSigner")
            .field("key_locator", &self.key_locator.to_string())
            .finish_non_exhaustive()
    }
}

impl EcdsaSigner {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate(key_locator: Name) -> Self {
        loop {
            let mut secret = Zeroizing::new([0u8; 32]);
            fill_random(secret.as_mut());
            // A uniformly random 256-bit string is a valid scalar except with probability ~2^-32.
            if let Ok(s) = Self::from_secret(&secret, key_locator.clone()) {
                return s;
            }
        }
    }

    /// From the 32-byte big-endian secret scalar.
    pub fn from_secret(secret: &[u8; 32], key_locator: Name) -> Result<Self> {
        let key = p256::ecdsa::SigningKey::from_slice(secret).map_err(|_| Error::BadPublicKey {
            name: key_locator.to_string(),
            reason: "secret is not a valid P-256 scalar",
        })?;
        Ok(Self { key, key_locator })
    }

    /// From an unencrypted PKCS#8 PrivateKeyInfo DER (what `ndnsec export` encrypts).
    pub fn from_pkcs8_der(der: &[u8], key_locator: Name) -> Result<Self> {
        let key =
            p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| Error::BadPublicKey {
                name: key_locator.to_string(),
                reason: "not a PKCS#8 P-256 private key",
            })?;
        Ok(Self { key, key_locator })
    }

    /// The PKCS#8 PrivateKeyInfo DER (with the named curve and public key, as ndn-cxx writes
    /// it). Wiped when the returned value is dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        use p256::pkcs8::EncodePrivateKey;
        self.key
            .to_pkcs8_der()
            .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|_| Error::BadPublicKey {
                name: self.key_locator.to_string(),
                reason: "P-256 key cannot be encoded as PKCS#8",
            })
    }

    /// From a SEC1 ECPrivateKey DER (how python-ndn's file TPM stores EC keys).
    pub fn from_sec1_der(der: &[u8], key_locator: Name) -> Result<Self> {
        let secret = p256::SecretKey::from_sec1_der(der).map_err(|_| Error::BadPublicKey {
            name: key_locator.to_string(),
            reason: "not a SEC1 P-256 private key",
        })?;
        Ok(Self {
            key: secret.into(),
            key_locator,
        })
    }

    /// The secret scalar, for storage. Wiped when the returned value is dropped.
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&self.key.to_bytes());
        out
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyKey {
        VerifyKey::EcdsaP256(*self.key.verifying_key())
    }

    /// The name carried in KeyLocator.
    pub fn key_locator(&self) -> &Name {
        &self.key_locator
    }
}

impl Signer for EcdsaSigner {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::with_key(sig::SHA256_WITH_ECDSA, self.key_locator.clone())
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let s: p256::ecdsa::Signature = self.key.sign(signed_portion);
        s.to_der().as_bytes().to_vec()
    }

    fn verify_key(&self) -> Option<VerifyKey> {
        Some(self.public_key())
    }
}

/// RSA PKCS#1 v1.5 with SHA-256 (SignatureType 1), 2048 to 4096 bits, as ndn-cxx's default
/// keys sign. Private-key operations are blinded with fresh randomness.
pub struct RsaSigner {
    key: rsa::PrivateKey,
    key_locator: Name,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigner")
            .field("key_locator", &self.key_locator.to_string())
            .finish_non_exhaustive()
    }
}

impl RsaSigner {
    /// From an unencrypted PKCS#8 PrivateKeyInfo DER (what `ndnsec export` encrypts).
    pub fn from_pkcs8_der(der: &[u8], key_locator: Name) -> Result<Self> {
        let bad = |reason| Error::BadPublicKey {
            name: key_locator.to_string(),
            reason,
        };
        let key = rsa::PrivateKey::from_pkcs8_der(der)
            .map_err(|_| bad("not a PKCS#8 RSA private key"))?;
        let bits = key.n().bit_width() as usize;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(bad("RSA modulus is not between 2048 and 4096 bits"));
        }
        Ok(Self { key, key_locator })
    }

    /// From a PKCS#1 RSAPrivateKey DER (how python-ndn's file TPM stores RSA keys).
    pub fn from_pkcs1_der(der: &[u8], key_locator: Name) -> Result<Self> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = rsa::PrivateKey::from_pkcs1_der(der).map_err(|_| Error::BadPublicKey {
            name: key_locator.to_string(),
            reason: "not a PKCS#1 RSA private key",
        })?;
        Self::checked(key, key_locator)
    }

    fn checked(key: rsa::PrivateKey, key_locator: Name) -> Result<Self> {
        let bits = key.n().bit_width() as usize;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(Error::BadPublicKey {
                name: key_locator.to_string(),
                reason: "RSA modulus is not between 2048 and 4096 bits",
            });
        }
        Ok(Self { key, key_locator })
    }

    /// The PKCS#8 PrivateKeyInfo DER, for storage. Wiped when the returned value is dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        use p256::pkcs8::EncodePrivateKey;
        self.key
            .to_pkcs8_der()
            .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|_| Error::BadPublicKey {
                name: self.key_locator.to_string(),
                reason: "RSA key cannot be encoded as PKCS#8",
            })
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyKey {
        VerifyKey::Rsa(Box::new(self.key.to_public_key()))
    }

    /// The name carried in KeyLocator.
    pub fn key_locator(&self) -> &Name {
        &self.key_locator
    }
}

impl Signer for RsaSigner {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::with_key(sig::SHA256_WITH_RSA, self.key_locator.clone())
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        let hashed = Sha256::digest(signed_portion);
        // Signing with a checked 2048..4096-bit key over a 32-byte digest cannot fail; an empty
        // value (refused by every verifier) is returned rather than panicking if it ever did.
        self.key
            .sign_with_rng(
                &mut rand::rng(),
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                &hashed,
            )
            .unwrap_or_default()
    }

    fn verify_key(&self) -> Option<VerifyKey> {
        Some(self.public_key())
    }
}

/// SignatureHmacWithSha256 (SignatureType 4) under a shared key named in KeyLocator.
pub struct HmacSigner {
    key: SymmetricKey,
    key_name: Name,
}

impl fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSigner")
            .field("key_name", &self.key_name.to_string())
            .finish_non_exhaustive()
    }
}

impl HmacSigner {
    /// A signer with shared key `key`, named `key_name` in KeyLocator.
    pub fn new(key: SymmetricKey, key_name: Name) -> Self {
        Self { key, key_name }
    }
}

impl Signer for HmacSigner {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo::with_key(sig::HMAC_WITH_SHA256, self.key_name.clone())
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        identity::hmac_sha256(&self.key, signed_portion).to_vec()
    }
}

/// Signs `data` with `signer` and returns its wire encoding.
pub fn sign_data(signer: &dyn Signer, data: &mut Data) -> Bytes {
    data.sign_with(signer.signature_info(), |portion| signer.sign(portion))
}

/// Signs an Interest (v0.3 signed Interest, fresh 8-byte SignatureNonce, SignatureTime `now_ms`)
/// and returns its wire encoding.
pub fn sign_interest(signer: &dyn Signer, interest: &mut Interest, now_ms: u64) -> Bytes {
    let mut nonce = [0u8; 8];
    fill_random(&mut nonce);
    let info = SignatureInfo {
        nonce: Some(Bytes::copy_from_slice(&nonce)),
        time_ms: Some(now_ms),
        ..signer.signature_info()
    };
    interest.sign_with(info, |portion| signer.sign(portion))
}

fn locator_name(info: &SignatureInfo) -> Name {
    match &info.key_locator {
        Some(KeyLocator::Name(n)) => n.clone(),
        _ => Name::default(),
    }
}

/// Verifies a Data signed with a public-key type (RSA, ECDSA or Ed25519) with `key`. KeyLocator
/// and trust are not checked here (see [`crate::trust`]).
pub fn verify_data_key(data: &Data, key: &VerifyKey) -> Result<()> {
    let info = &data.signature_info;
    key.verify(
        &data.name,
        &locator_name(info),
        info.sig_type,
        &data.signed_portion(),
        &data.signature_value,
    )
}

/// Verifies a signed Interest of a public-key type with `key` (replay is checked elsewhere).
pub fn verify_interest_key(interest: &Interest, key: &VerifyKey) -> Result<()> {
    let (info, value, portion) = identity::interest_signed_parts(interest)?;
    key.verify(
        &interest.name,
        &locator_name(info),
        info.sig_type,
        &portion,
        value,
    )
}

/// Verifies many Data, each with its key. Ed25519 signatures share one batch equation (strict
/// single checks name the culprits if it fails); the other types are checked one by one.
/// Results are in input order.
pub fn verify_data_batch(items: &[(&Data, &VerifyKey)]) -> Vec<Result<()>> {
    let mut out: Vec<Option<Result<()>>> = items.iter().map(|_| None).collect();
    let mut ed: Vec<(usize, Bytes, &PublicKey)> = Vec::new();
    for (i, (d, k)) in items.iter().enumerate() {
        match k {
            VerifyKey::Ed25519(pk) if d.signature_info.sig_type == sig::ED25519 => {
                ed.push((i, d.signed_portion(), pk));
            }
            _ => out[i] = Some(verify_data_key(d, k)),
        }
    }
    let triples: Vec<(&[u8], &[u8], &PublicKey)> = ed
        .iter()
        .map(|(i, p, k)| (p.as_ref(), items[*i].0.signature_value.as_ref(), *k))
        .collect();
    let batch_ok = ed.len() > 1 && identity::verify_batch(&triples).is_ok();
    for (i, _, _) in &ed {
        out[*i] = Some(if batch_ok {
            Ok(())
        } else {
            verify_data_key(items[*i].0, items[*i].1)
        });
    }
    out.into_iter()
        .map(|r| r.unwrap_or(Ok(())))
        .collect::<Vec<_>>()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    #[test]
    fn ecdsa_sign_verify_and_refusals() {
        let s = EcdsaSigner::from_secret(&[7u8; 32], n("/e/KEY/k")).unwrap();
        let mut d = Data::new(n("/e/x"), Bytes::from_static(b"payload"));
        let d = Data::decode(sign_data(&s, &mut d)).unwrap();
        assert_eq!(d.signature_info.sig_type, sig::SHA256_WITH_ECDSA);
        // DER: SEQUENCE of two INTEGERs, at most 72 bytes.
        assert_eq!(d.signature_value[0], 0x30);
        assert!(d.signature_value.len() <= ECDSA_P256_MAX_DER_LEN);
        let pk = s.public_key();
        verify_data_key(&d, &pk).unwrap();
        // The SPKI round-trips and is the 91-byte named-curve form ndn-cxx writes.
        let spki = pk.to_spki();
        assert_eq!(spki.len(), 91);
        assert_eq!(VerifyKey::from_spki(&spki).unwrap(), pk);
        // Tampered content, a raw (r||s) value and another key are refused, each in its own way.
        let mut t = d.clone();
        t.content = Bytes::from_static(b"pAyload");
        t.clear_wire();
        assert!(matches!(
            verify_data_key(&t, &pk),
            Err(Error::BadSignature { .. })
        ));
        let mut raw = d.clone();
        raw.signature_value = Bytes::from(vec![1u8; 64]);
        assert!(matches!(
            verify_data_key(&raw, &pk),
            Err(Error::BadSignatureEncoding { .. })
        ));
        let other = EcdsaSigner::from_secret(&[8u8; 32], n("/e/KEY/k")).unwrap();
        assert!(verify_data_key(&d, &other.public_key()).is_err());
        // An ECDSA signature checked with an Ed25519 key is a type mismatch, not a bad signature.
        let ed = KeyPair::from_seed(&[1u8; 32], n("/e/KEY/k")).unwrap();
        assert!(matches!(
            verify_data_key(&d, &VerifyKey::Ed25519(ed.public_key())),
            Err(Error::KeyTypeMismatch { sig_type: 3, .. })
        ));
        assert!(EcdsaSigner::from_secret(&[0u8; 32], n("/e/KEY/k")).is_err());
    }

    #[test]
    fn ecdsa_known_answer_rfc6979() {
        // RFC 6979 A.2.5, P-256 with SHA-256, message "sample".
        let secret: [u8; 32] =
            hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
                .unwrap()
                .try_into()
                .unwrap();
        let s = EcdsaSigner::from_secret(&secret, n("/r/KEY/k")).unwrap();
        let der = Signer::sign(&s, b"sample");
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert_eq!(
            hex::encode_upper(sig.to_bytes()),
            "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716\
             F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
        );
        s.public_key()
            .verify(&n("/m"), &n("/r"), 3, b"sample", &der)
            .unwrap();
    }

    #[test]
    fn hmac_and_digest_signers_match_the_identity_checks() {
        let key = SymmetricKey::from_bytes([3u8; 32]);
        let h = HmacSigner::new(key.duplicate(), n("/h/KEY/shared"));
        let mut d = Data::new(n("/h/x"), Bytes::from_static(b"v"));
        let d = Data::decode(sign_data(&h, &mut d)).unwrap();
        identity::verify_data_hmac(&d, &key).unwrap();
        assert!(identity::verify_data_hmac(&d, &SymmetricKey::from_bytes([4u8; 32])).is_err());
        let mut g = Data::new(n("/g"), Bytes::from_static(b"v"));
        let g = Data::decode(sign_data(&DigestSigner, &mut g)).unwrap();
        identity::verify_data_digest(&g).unwrap();
        assert!(h.verify_key().is_none() && DigestSigner.verify_key().is_none());
    }

    #[test]
    fn batch_mixes_types_and_names_the_culprit() {
        let e = EcdsaSigner::from_secret(&[9u8; 32], n("/a/KEY/e")).unwrap();
        let k = KeyPair::from_seed(&[2u8; 32], n("/a/KEY/d")).unwrap();
        let mut ds = Vec::new();
        for i in 0..6u8 {
            let mut d = Data::new(n(&format!("/a/{i}")), Bytes::from(vec![i; 10]));
            let w = if i % 2 == 0 {
                sign_data(&k, &mut d)
            } else {
                sign_data(&e, &mut d)
            };
            ds.push(Data::decode(w).unwrap());
        }
        let (ek, dk) = (e.public_key(), VerifyKey::Ed25519(k.public_key()));
        let keyed = |ds: &[Data]| -> Vec<Result<()>> {
            let items: Vec<(&Data, &VerifyKey)> = ds
                .iter()
                .enumerate()
                .map(|(i, d)| (d, if i % 2 == 0 { &dk } else { &ek }))
                .collect();
            verify_data_batch(&items)
        };
        assert!(keyed(&ds).iter().all(Result::is_ok));
        let mut bad = ds.clone();
        bad[2].signature_value = Bytes::from(vec![0u8; 64]);
        bad[3].content = Bytes::from_static(b"x");
        bad[3].clear_wire();
        let r = keyed(&bad);
        let failed: Vec<usize> = (0..6).filter(|&i| r[i].is_err()).collect();
        assert_eq!(failed, vec![2, 3]);
    }

    #[test]
    fn spki_refusals() {
        assert!(VerifyKey::from_spki(b"").is_err());
        assert!(VerifyKey::from_spki(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        // X25519 OID (1.3.101.110) is not a signing key.
        let mut x = PublicKey::from_bytes(&[
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ])
        .unwrap()
        .to_spki();
        let ed = VerifyKey::from_spki(&x).unwrap();
        assert_eq!(ed.algorithm(), "Ed25519");
        x[8] = 0x6e;
        assert!(VerifyKey::from_spki(&x).is_err());
    }
}
