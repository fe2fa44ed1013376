//! SafeBag: the key export format of `ndnsec export` / `ndnsec import` (ndn-cxx).
//!
//! ```text
//! SafeBag      = 128 TLV-LENGTH Data EncryptedKey
//! Data         = the key's certificate
//! EncryptedKey = 129 TLV-LENGTH *OCTET   ; DER PKCS#8 EncryptedPrivateKeyInfo
//! ```
//!
//! ndn-cxx encrypts the PKCS#8 PrivateKeyInfo with PBES2 (RFC 8018): PBKDF2 with HMAC-SHA256 as
//! the PRF, then AES-256-CBC; `ndnsec export` writes the SafeBag as base64 text. amicn reads any
//! PBES2 + PBKDF2 SafeBag (iteration count bounded, so a hostile file cannot keep an import busy)
//! and writes the same algorithms with a 16-byte salt, a fresh IV and at least
//! [`MIN_SAFEBAG_ITERATIONS`] iterations. Ed25519, ECDSA P-256 and RSA keys are carried.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amicn_tlv::{Name, TlvReader};
use bytes::{Bytes, BytesMut};
use pkcs8::der::Encode;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::KeyPair;
use crate::key::fill_random;
use crate::keychain::{MAX_EXPORT_ITERATIONS, MIN_EXPORT_ITERATIONS};
use crate::signature::{EcdsaSigner, RsaSigner, Signer, VerifyKey};

/// TLV-TYPE of SafeBag.
pub const SAFE_BAG: u32 = 128;
/// TLV-TYPE of EncryptedKey.
pub const ENCRYPTED_KEY: u32 = 129;
/// The fewest PBKDF2 iterations [`SafeBag::seal`] writes (the same floor as amicn's own export).
pub const MIN_SAFEBAG_ITERATIONS: u32 = MIN_EXPORT_ITERATIONS;
/// The most PBKDF2 iterations [`SafeBag::open`] spends on a file.
pub const MAX_SAFEBAG_ITERATIONS: u32 = MAX_EXPORT_ITERATIONS;
/// Largest SafeBag accepted (an RSA 4096 certificate and key are well under 8 KiB).
pub const MAX_SAFEBAG_LEN: usize = 64 * 1024;

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
/// RFC 8410 PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many SafeBags this process refused (malformed, wrong passphrase, key and certificate
/// not matching).
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

fn refuse<T>(e: Error) -> Result<T> {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    Err(e)
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadSafeBag {
        reason: reason.into(),
    }
}

/// A private key of any type amicn signs with.
pub enum PrivateKey {
    /// Ed25519 (SignatureType 5).
    Ed25519(KeyPair),
    /// ECDSA over NIST P-256 (SignatureType 3).
    EcdsaP256(EcdsaSigner),
    /// RSA PKCS#1 v1.5 (SignatureType 1).
    Rsa(RsaSigner),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({} {})", self.algorithm(), self.key_name())
    }
}

impl PrivateKey {
    /// Parses an unencrypted PKCS#8 PrivateKeyInfo DER; `key_name` is `/<identity>/KEY/<id>`
    /// and becomes the KeyLocator of everything the key signs.
    pub fn from_pkcs8_der(der: &[u8], key_name: Name) -> Result<Self> {
        let info = PrivateKeyInfoRef::try_from(der).map_err(|_| Error::BadPublicKey {
            name: key_name.to_string(),
            reason: "not a PKCS#8 PrivateKeyInfo",
        })?;
        match info.algorithm.oid.to_string().as_str() {
            OID_ED25519 => {
                // CurvePrivateKey ::= OCTET STRING (32 bytes), itself inside the OCTET STRING.
                let inner = info.private_key.as_bytes();
                let seed: Zeroizing<[u8; 32]> = match inner {
                    [0x04, 0x20, rest @ ..] if rest.len() == 32 => {
                        let mut s = Zeroizing::new([0u8; 32]);
                        s.copy_from_slice(rest);
                        s
                    }
                    _ => {
                        return Err(Error::BadPublicKey {
                            name: key_name.to_string(),
                            reason: "Ed25519 private key is not a 32-byte OCTET STRING",
                        });
                    }
                };
                KeyPair::from_seed(&seed, key_name).map(Self::Ed25519)
            }
            OID_EC_PUBLIC_KEY => EcdsaSigner::from_pkcs8_der(der, key_name).map(Self::EcdsaP256),
            OID_RSA => RsaSigner::from_pkcs8_der(der, key_name).map(Self::Rsa),
            _ => Err(Error::BadPublicKey {
                name: key_name.to_string(),
                reason: "private key is not Ed25519, EC P-256 or RSA (unknown OID)",
            }),
        }
    }

    /// Parses an unencrypted private key DER in any form the NDN tools write: PKCS#8, SEC1
    /// (python-ndn EC keys) or PKCS#1 (python-ndn RSA keys), or the same as base64 text (a
    /// python-ndn file-TPM `.privkey` file).
    pub fn from_der_any(file: &[u8], key_name: Name) -> Result<Self> {
        let der: Zeroizing<Vec<u8>> = if file.first() == Some(&0x30) {
            Zeroizing::new(file.to_vec())
        } else {
            use base64ct::{Base64, Encoding};
            let text: Zeroizing<Vec<u8>> = Zeroizing::new(
                file.iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect(),
            );
            let text = std::str::from_utf8(&text).map_err(|_| Error::BadPublicKey {
                name: key_name.to_string(),
                reason: "neither a private key DER nor base64 text",
            })?;
            Zeroizing::new(Base64::decode_vec(text).map_err(|_| Error::BadPublicKey {
                name: key_name.to_string(),
                reason: "neither a private key DER nor base64 text",
            })?)
        };
        Self::from_pkcs8_der(&der, key_name.clone())
            .or_else(|_| EcdsaSigner::from_sec1_der(&der, key_name.clone()).map(Self::EcdsaP256))
            .or_else(|_| RsaSigner::from_pkcs1_der(&der, key_name.clone()).map(Self::Rsa))
            .map_err(|_| Error::BadPublicKey {
                name: key_name.to_string(),
                reason: "not a PKCS#8, SEC1 (P-256) or PKCS#1 (RSA) private key",
            })
    }

    /// The PKCS#8 PrivateKeyInfo DER. Wiped when the returned value is dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Self::Ed25519(k) => {
                let mut out = Zeroizing::new(Vec::with_capacity(48));
                out.extend_from_slice(&ED25519_PKCS8_PREFIX);
                out.extend_from_slice(k.seed().as_ref());
                Ok(out)
            }
            Self::EcdsaP256(k) => k.to_pkcs8_der(),
            Self::Rsa(k) => k.to_pkcs8_der(),
        }
    }

    /// `/<identity>/KEY/<key-id>`.
    pub fn key_name(&self) -> &Name {
        match self {
            Self::Ed25519(k) => k.key_name(),
            Self::EcdsaP256(k) => k.key_locator(),
            Self::Rsa(k) => k.key_locator(),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyKey {
        match self {
            Self::Ed25519(k) => VerifyKey::Ed25519(k.public_key()),
            Self::EcdsaP256(k) => k.public_key(),
            Self::Rsa(k) => k.public_key(),
        }
    }

    /// The keychain's name for the algorithm: `ed25519`, `ecdsa-p256` or `rsa`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "ed25519",
            Self::EcdsaP256(_) => "ecdsa-p256",
            Self::Rsa(_) => "rsa",
        }
    }

    /// Borrows the key as a signer.
    pub fn signer(&self) -> &dyn Signer {
        match self {
            Self::Ed25519(k) => k,
            Self::EcdsaP256(k) => k,
            Self::Rsa(k) => k,
        }
    }

    /// Turns the key into a shareable signer.
    pub fn into_signer(self) -> Arc<dyn Signer> {
        match self {
            Self::Ed25519(k) => Arc::new(k),
            Self::EcdsaP256(k) => Arc::new(k),
            Self::Rsa(k) => Arc::new(k),
        }
    }
}

/// A decoded SafeBag: a certificate and its still-encrypted private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SafeBag {
    certificate: Certificate,
    encrypted_key: Vec<u8>,
}

impl fmt::Debug for SafeBag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeBag")
            .field("certificate", &self.certificate.name().to_string())
            .field("encrypted_key_len", &self.encrypted_key.len())
            .finish()
    }
}

impl SafeBag {
    /// Decodes a SafeBag from its TLV wire encoding, or from the base64 text `ndnsec export`
    /// writes (whitespace ignored).
    pub fn decode(file: &[u8]) -> Result<Self> {
        match Self::decode_inner(file) {
            Ok(b) => Ok(b),
            Err(e) => refuse(e),
        }
    }

    fn decode_inner(file: &[u8]) -> Result<Self> {
        if file.len() > MAX_SAFEBAG_LEN * 2 {
            return Err(bad(format!("file is larger than {MAX_SAFEBAG_LEN} bytes")));
        }
        let wire = if file.first() == Some(&(SAFE_BAG as u8)) {
            Bytes::copy_from_slice(file)
        } else {
            use base64ct::{Base64, Encoding};
            let text: Vec<u8> = file
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let text = std::str::from_utf8(&text)
                .map_err(|_| bad("neither a SafeBag TLV nor base64 text"))?;
            Bytes::from(
                Base64::decode_vec(text)
                    .map_err(|_| bad("neither a SafeBag TLV nor base64 text"))?,
            )
        };
        if wire.len() > MAX_SAFEBAG_LEN {
            return Err(bad(format!(
                "SafeBag is larger than {MAX_SAFEBAG_LEN} bytes"
            )));
        }
        let mut outer = TlvReader::new(wire);
        let bag = outer
            .expect(SAFE_BAG, "SafeBag")
            .map_err(|e| bad(format!("not a SafeBag: {e}")))?;
        outer
            .finish("SafeBag")
            .map_err(|e| bad(format!("after the SafeBag: {e}")))?;
        let mut r = bag.reader();
        let data = r
            .expect(amicn_tlv::tt::DATA, "SafeBag certificate")
            .map_err(|e| bad(format!("certificate: {e}")))?;
        let key = r
            .expect(ENCRYPTED_KEY, "SafeBag EncryptedKey")
            .map_err(|e| bad(format!("EncryptedKey: {e}")))?;
        r.finish("SafeBag")
            .map_err(|e| bad(format!("inside the SafeBag: {e}")))?;
        let certificate =
            Certificate::decode(data.wire).map_err(|e| bad(format!("certificate: {e}")))?;
        // Structure and algorithms are checked now, so a damaged file fails before any
        // passphrase is asked for.
        pbkdf2_params(&key.value)?;
        Ok(Self {
            certificate,
            encrypted_key: key.value.to_vec(),
        })
    }

    /// Encrypts `key` under `passphrase` (PBES2: PBKDF2-HMAC-SHA256 with `iterations`, at least
    /// [`MIN_SAFEBAG_ITERATIONS`], and AES-256-CBC) and bags it with `certificate`.
    pub fn seal(
        key: &PrivateKey,
        certificate: &Certificate,
        passphrase: &[u8],
        iterations: u32,
    ) -> Result<Self> {
        if iterations < MIN_SAFEBAG_ITERATIONS {
            return Err(Error::Import(format!(
                "{iterations} PBKDF2 iterations is below the minimum of {MIN_SAFEBAG_ITERATIONS}: \
                 a passphrase-protected export must be expensive to guess"
            )));
        }
        if iterations > MAX_SAFEBAG_ITERATIONS {
            return Err(Error::Import(format!(
                "{iterations} PBKDF2 iterations is above the limit of {MAX_SAFEBAG_ITERATIONS}"
            )));
        }
        if certificate.key() != &key.public_key() || !certificate.matches_locator(key.key_name()) {
            return Err(Error::Import(
                "certificate does not belong to the key".into(),
            ));
        }
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        fill_random(&mut salt);
        fill_random(&mut iv);
        let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, &salt, iv)
            .map_err(|e| Error::Import(format!("PBES2 parameters: {e}")))?;
        let plain = key.to_pkcs8_der()?;
        let ciphertext = params
            .encrypt(passphrase, &plain)
            .map_err(|e| Error::Import(format!("encryption failed: {e}")))?;
        let encrypted_data = OctetStringRef::new(&ciphertext)
            .map_err(|e| Error::Import(format!("encrypted key: {e}")))?;
        let info = EncryptedPrivateKeyInfoRef {
            encryption_algorithm: params.into(),
            encrypted_data,
        };
        let encrypted_key = info
            .to_der()
            .map_err(|e| Error::Import(format!("encrypted key: {e}")))?;
        Ok(Self {
            certificate: certificate.clone(),
            encrypted_key,
        })
    }

    /// Decrypts the private key with `passphrase` and checks that it is the certificate's key.
    pub fn open(&self, passphrase: &[u8]) -> Result<PrivateKey> {
        match self.open_inner(passphrase) {
            Ok(k) => Ok(k),
            Err(e) => refuse(e),
        }
    }

    fn open_inner(&self, passphrase: &[u8]) -> Result<PrivateKey> {
        pbkdf2_params(&self.encrypted_key)?;
        let info =
            EncryptedPrivateKeyInfoRef::try_from(self.encrypted_key.as_slice()).map_err(|e| {
                bad(format!(
                    "EncryptedKey is not a PKCS#8 EncryptedPrivateKeyInfo: {e}"
                ))
            })?;
        // A wrong passphrase shows as bad CBC padding or, rarely, as plaintext that is not DER.
        let plain = info
            .decrypt(passphrase)
            .map_err(|_| Error::WrongPassphrase)?;
        let key = PrivateKey::from_pkcs8_der(plain.as_bytes(), self.certificate.key_name())
            .map_err(|_| Error::WrongPassphrase)?;
        if key.public_key() != *self.certificate.key() {
            return Err(bad(format!(
                "the private key does not belong to certificate {}",
                self.certificate.name()
            )));
        }
        Ok(key)
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The DER EncryptedPrivateKeyInfo.
    pub fn encrypted_key(&self) -> &[u8] {
        &self.encrypted_key
    }

    /// The PBKDF2 iteration count the key is protected with.
    pub fn iterations(&self) -> Result<u32> {
        pbkdf2_params(&self.encrypted_key)
    }

    /// The TLV wire encoding (what `ndnsec import` reads after base64 decoding).
    pub fn to_wire(&self) -> Bytes {
        let cert = self.certificate.to_wire();
        let mut inner = BytesMut::with_capacity(cert.len() + self.encrypted_key.len() + 8);
        inner.extend_from_slice(&cert);
        amicn_tlv::encode_tlv(&mut inner, ENCRYPTED_KEY, &self.encrypted_key);
        let mut out = BytesMut::with_capacity(inner.len() + 4);
        amicn_tlv::encode_tlv(&mut out, SAFE_BAG, &inner);
        out.freeze()
    }

    /// Base64 text with 64-character lines, as `ndnsec export` writes it.
    pub fn to_base64(&self) -> String {
        use base64ct::{Base64, Encoding};
        let b64 = Base64::encode_string(&self.to_wire());
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out
    }
}

/// Checks that `der` is a PBES2 + PBKDF2 EncryptedPrivateKeyInfo with a cipher we support and a
/// bounded iteration count; returns the count.
fn pbkdf2_params(der: &[u8]) -> Result<u32> {
    let info = EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| {
        bad(format!(
            "EncryptedKey is not a PKCS#8 EncryptedPrivateKeyInfo: {e}"
        ))
    })?;
    let params = info
        .encryption_algorithm
        .pbes2()
        .ok_or_else(|| bad("key is not protected with PBES2"))?;
    let kdf = params
        .kdf
        .pbkdf2()
        .ok_or_else(|| bad("PBES2 key derivation is not PBKDF2"))?;
    if !matches!(
        params.encryption,
        pbes2::EncryptionScheme::Aes128Cbc { .. }
            | pbes2::EncryptionScheme::Aes192Cbc { .. }
            | pbes2::EncryptionScheme::Aes256Cbc { .. }
    ) {
        return Err(bad("PBES2 cipher is not AES-CBC"));
    }
    if kdf.iteration_count == 0 || kdf.iteration_count > MAX_SAFEBAG_ITERATIONS {
        return Err(bad(format!(
            "{} PBKDF2 iterations is outside 1..={MAX_SAFEBAG_ITERATIONS}",
            kdf.iteration_count
        )));
    }
    Ok(kdf.iteration_count)
}
