//! A keychain on disk: Ed25519, ECDSA P-256 and RSA keys and NDN certificates, one file each.
//!
//! Layout under the keychain directory (created with mode 0700):
//!
//! ```text
//! keys/<h>.key      mode 0600, TOML: format, key name, algorithm, public key, secret (hex:
//!                   the Ed25519 seed, or the PKCS#8 DER of ECDSA and RSA keys)
//! certs/<h>.cert    the certificate's Data wire encoding
//! default           URI of the default identity's key name
//! ```
//!
//! `<h>` is the first 32 hex digits of SHA-256 over the name's URI, so any name maps to a safe,
//! fixed-length file name. Every write goes to a temporary file in the same directory (created
//! 0600), is fsynced, renamed over the target and followed by an fsync of the directory, so a
//! crash leaves either the old or the new file, never a torn one.
//!
//! Export format (TOML text, `format = "amicn-identity-v1"`): `key_name`, `certificate` (hex of
//! the certificate Data), and either `secret` (hex of the 32-byte Ed25519 seed, **unprotected**:
//! treat the file like the key itself) or an `[encrypted]` table: PBKDF2-HMAC-SHA256 over the
//! passphrase with `salt` and `iterations`, expanded by HKDF-SHA256, then XChaCha20-Poly1305 over
//! the seed with `nonce` and the key name's Name TLV as associated data.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use amicn_tlv::Name;
use bytes::Bytes;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hkdf::hmac::Hmac;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::cert::{Certificate, Validity};
use crate::error::{Error, Result};
use crate::identity::KeyPair;
use crate::key::fill_random;
use crate::safebag::{PrivateKey, SafeBag};

const KEY_FORMAT: &str = "amicn-key-v1";
const EXPORT_FORMAT: &str = "amicn-identity-v1";
const EXPORT_KDF: &str = "pbkdf2-hmac-sha256+hkdf-sha256";
const EXPORT_AEAD: &str = "xchacha20poly1305";
/// PBKDF2 iterations used by [`Keychain::export_identity`] unless told otherwise.
pub const DEFAULT_EXPORT_ITERATIONS: u32 = 200_000;
/// The fewest PBKDF2 iterations [`Keychain::export_identity`] accepts: fewer would make a
/// stolen export cheap to brute-force.
pub const MIN_EXPORT_ITERATIONS: u32 = 100_000;
/// The most PBKDF2 iterations an export may use: the count comes from the file, and a damaged
/// or hostile one must not keep an import busy for hours.
pub const MAX_EXPORT_ITERATIONS: u32 = 10_000_000;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    name: String,
    algorithm: String,
    public: String,
    secret: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct ExportFile {
    format: String,
    key_name: String,
    certificate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted: Option<EncryptedSecret>,
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        if let Some(s) = &mut self.secret {
            s.zeroize();
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EncryptedSecret {
    kdf: String,
    aead: String,
    iterations: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// A keychain rooted at one directory.
#[derive(Debug, Clone)]
pub struct Keychain {
    root: PathBuf,
}

impl Keychain {
    /// Opens (creating if needed) the keychain at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        for dir in [root.clone(), root.join("keys"), root.join("certs")] {
            fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err(&dir, e))?;
        }
        Ok(Self { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn key_path(&self, key_name: &Name) -> PathBuf {
        self.root
            .join("keys")
            .join(format!("{}.key", file_stem(key_name)))
    }

    fn cert_path(&self, cert_name: &Name) -> PathBuf {
        self.root
            .join("certs")
            .join(format!("{}.cert", file_stem(cert_name)))
    }

    /// Creates a new identity: a key pair and a self-signed certificate valid for `validity_s`
    /// seconds from `now_s`, both stored. The first identity becomes the default.
    pub fn create_identity(
        &self,
        identity: &Name,
        now_s: u64,
        validity_s: u64,
    ) -> Result<(KeyPair, Certificate)> {
        let key = KeyPair::generate(identity);
        let cert = Certificate::self_signed(
            &key,
            now_s.saturating_mul(1000),
            Validity::starting_now(now_s, validity_s),
        )?;
        self.add_key(&key)?;
        self.add_certificate(&cert)?;
        if self.default_key()?.is_none() {
            self.set_default_key(key.key_name())?;
        }
        Ok((key, cert))
    }

    /// Stores a key pair (mode 0600).
    pub fn add_key(&self, key: &KeyPair) -> Result<()> {
        let file = KeyFile {
            format: KEY_FORMAT.to_string(),
            name: key.key_name().to_string(),
            algorithm: "ed25519".to_string(),
            public: hex::encode(key.public_key().to_bytes()),
            secret: hex::encode(key.seed().as_ref()),
        };
        self.write_key_file(key.key_name(), &file)
    }

    /// Stores a private key of any type (mode 0600). Ed25519 keys are written as by
    /// [`Keychain::add_key`]; ECDSA and RSA keys as their PKCS#8 DER with the SPKI beside it.
    pub fn add_private_key(&self, key: &PrivateKey) -> Result<()> {
        if let PrivateKey::Ed25519(k) = key {
            return self.add_key(k);
        }
        let der = key.to_pkcs8_der()?;
        let file = KeyFile {
            format: KEY_FORMAT.to_string(),
            name: key.key_name().to_string(),
            algorithm: key.algorithm().to_string(),
            public: hex::encode(key.public_key().to_spki()),
            secret: hex::encode(der.as_slice()),
        };
        self.write_key_file(key.key_name(), &file)
    }

    fn write_key_file(&self, key_name: &Name, file: &KeyFile) -> Result<()> {
        let text = Zeroizing::new(toml::to_string(file).map_err(|e| Error::Import(e.to_string()))?);
        write_atomic(&self.key_path(key_name), text.as_bytes(), 0o600)
    }

    /// Loads an Ed25519 key pair by key name (the AMI roles and amicn's own export use only
    /// those); [`Keychain::private_key`] loads any type.
    pub fn key(&self, key_name: &Name) -> Result<KeyPair> {
        match self.private_key(key_name)? {
            PrivateKey::Ed25519(k) => Ok(k),
            other => Err(Error::NotEd25519 {
                name: key_name.to_string(),
                algorithm: other.algorithm(),
            }),
        }
    }

    /// Loads a private key of any type by key name.
    pub fn private_key(&self, key_name: &Name) -> Result<PrivateKey> {
        let path = self.key_path(key_name);
        let key = load_key(&path)?.ok_or_else(|| Error::KeychainNotFound {
            what: "key",
            name: key_name.to_string(),
        })?;
        if key.key_name() != key_name {
            return Err(corrupt(
                &path,
                format!("file holds key {} instead", key.key_name()),
            ));
        }
        Ok(key)
    }

    /// Names of all stored keys, sorted.
    pub fn keys(&self) -> Result<Vec<Name>> {
        let mut out = Vec::new();
        for path in list(&self.root.join("keys"), "key")? {
            if let Some(k) = load_key(&path)? {
                out.push(k.key_name().clone());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Identities that own at least one stored key (`/<identity>` of each `/<identity>/KEY/<id>`).
    pub fn identities(&self) -> Result<Vec<Name>> {
        let mut ids: Vec<Name> = self
            .keys()?
            .into_iter()
            .map(|k| k.prefix(k.len().saturating_sub(2)))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Keys of one identity, sorted.
    pub fn keys_of(&self, identity: &Name) -> Result<Vec<Name>> {
        Ok(self
            .keys()?
            .into_iter()
            .filter(|k| k.len() == identity.len() + 2 && identity.is_prefix_of(k))
            .collect())
    }

    /// Deletes a key (its certificates stay).
    pub fn delete_key(&self, key_name: &Name) -> Result<()> {
        let path = self.key_path(key_name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::KeychainNotFound {
                what: "key",
                name: key_name.to_string(),
            }),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Stores a certificate.
    pub fn add_certificate(&self, cert: &Certificate) -> Result<()> {
        write_atomic(&self.cert_path(cert.name()), &cert.to_wire(), 0o644)
    }

    /// All stored certificates.
    pub fn certificates(&self) -> Result<Vec<Certificate>> {
        let mut out = Vec::new();
        for path in list(&self.root.join("certs"), "cert")? {
            let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
            out.push(
                Certificate::decode(Bytes::from(bytes))
                    .map_err(|e| corrupt(&path, e.to_string()))?,
            );
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out)
    }

    /// The certificate designated by `locator` (certificate name, or key name → newest certificate).
    pub fn certificate(&self, locator: &Name) -> Result<Certificate> {
        let direct = self.cert_path(locator);
        if direct.exists() {
            let bytes = fs::read(&direct).map_err(|e| io_err(&direct, e))?;
            return Certificate::decode(Bytes::from(bytes))
                .map_err(|e| corrupt(&direct, e.to_string()));
        }
        self.certificates()?
            .into_iter()
            .rfind(|c| c.matches_locator(locator))
            .ok_or_else(|| Error::KeychainNotFound {
                what: "certificate",
                name: locator.to_string(),
            })
    }

    /// Sets the default key.
    pub fn set_default_key(&self, key_name: &Name) -> Result<()> {
        self.private_key(key_name)?;
        write_atomic(
            &self.root.join("default"),
            key_name.to_string().as_bytes(),
            0o600,
        )
    }

    /// The default key name, if set.
    pub fn default_key(&self) -> Result<Option<Name>> {
        let path = self.root.join("default");
        match fs::read_to_string(&path) {
            Ok(s) => Name::from_uri(s.trim())
                .map(Some)
                .map_err(|e| corrupt(&path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Exports a key and its newest certificate. With a passphrase the seed is encrypted
    /// (PBKDF2 with `iterations`, at least [`MIN_EXPORT_ITERATIONS`], then XChaCha20-Poly1305);
    /// without, it is written in clear.
    pub fn export_identity(
        &self,
        key_name: &Name,
        passphrase: Option<&str>,
        iterations: u32,
    ) -> Result<String> {
        let key = self.key(key_name)?;
        let cert = self.certificate(key_name)?;
        let seed = key.seed();
        let (secret, encrypted) = match passphrase {
            None => (Some(hex::encode(seed.as_ref())), None),
            Some(p) => {
                if iterations > MAX_EXPORT_ITERATIONS {
                    return Err(Error::Import(format!(
                        "{iterations} PBKDF2 iterations is above the limit of {MAX_EXPORT_ITERATIONS}"
                    )));
                }
                if iterations < MIN_EXPORT_ITERATIONS {
                    return Err(Error::Import(format!(
                        "{iterations} PBKDF2 iterations is below the minimum of {MIN_EXPORT_ITERATIONS}: \
                         a passphrase-protected export must be expensive to guess"
                    )));
                }
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; 24];
                fill_random(&mut salt);
                fill_random(&mut nonce);
                let cipher = export_cipher(p, &salt, iterations);
                let mut buf = seed.to_vec();
                cipher
                    .encrypt_in_place(&XNonce::from(nonce), &key_name.to_wire(), &mut buf)
                    .map_err(|_| Error::Import("encryption failed".into()))?;
                let enc = EncryptedSecret {
                    kdf: EXPORT_KDF.into(),
                    aead: EXPORT_AEAD.into(),
                    iterations,
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(&buf),
                };
                (None, Some(enc))
            }
        };
        let file = ExportFile {
            format: EXPORT_FORMAT.into(),
            key_name: key_name.to_string(),
            certificate: hex::encode(cert.to_wire()),
            secret,
            encrypted,
        };
        toml::to_string(&file).map_err(|e| Error::Import(e.to_string()))
    }

    /// Imports an exported identity into this keychain; returns its key name.
    pub fn import_identity(&self, text: &str, passphrase: Option<&str>) -> Result<Name> {
        let (key, cert) = decode_export(text, passphrase)?;
        self.add_key(&key)?;
        self.add_certificate(&cert)?;
        if self.default_key()?.is_none() {
            self.set_default_key(key.key_name())?;
        }
        Ok(key.key_name().clone())
    }
}

impl Keychain {
    /// Imports a SafeBag (`ndnsec export`, TLV or base64): decrypts the key with `passphrase`,
    /// stores it and its certificate; returns the key name. The first key becomes the default.
    pub fn import_safebag(&self, file: &[u8], passphrase: &[u8]) -> Result<Name> {
        let bag = SafeBag::decode(file)?;
        let key = bag.open(passphrase)?;
        self.add_private_key(&key)?;
        self.add_certificate(bag.certificate())?;
        if self.default_key()?.is_none() {
            self.set_default_key(key.key_name())?;
        }
        Ok(key.key_name().clone())
    }

    /// Imports an unencrypted private key (PKCS#8, SEC1 or PKCS#1 DER, or base64 of one, as
    /// python-ndn's file TPM keeps them) together with its certificate; returns the key name.
    pub fn import_private_key(&self, key_file: &[u8], cert: &Certificate) -> Result<Name> {
        let key = PrivateKey::from_der_any(key_file, cert.key_name())?;
        if key.public_key() != *cert.key() {
            return Err(Error::Import(format!(
                "the private key does not belong to certificate {}",
                cert.name()
            )));
        }
        self.add_private_key(&key)?;
        self.add_certificate(cert)?;
        if self.default_key()?.is_none() {
            self.set_default_key(key.key_name())?;
        }
        Ok(key.key_name().clone())
    }

    /// Exports a key and its newest certificate as a SafeBag that `ndnsec import` reads
    /// (PBKDF2-HMAC-SHA256 with `iterations`, at least [`MIN_EXPORT_ITERATIONS`], and
    /// AES-256-CBC).
    pub fn export_safebag(
        &self,
        key_name: &Name,
        passphrase: &[u8],
        iterations: u32,
    ) -> Result<SafeBag> {
        let key = self.private_key(key_name)?;
        let cert = self.certificate(key_name)?;
        SafeBag::seal(&key, &cert, passphrase, iterations)
    }
}

/// Parses an export file into a key pair and certificate, checking that they belong together.
pub fn decode_export(text: &str, passphrase: Option<&str>) -> Result<(KeyPair, Certificate)> {
    let file: ExportFile =
        toml::from_str(text).map_err(|e| Error::Import(format!("not an export file: {e}")))?;
    if file.format != EXPORT_FORMAT {
        return Err(Error::Import(format!("unknown format {:?}", file.format)));
    }
    let key_name =
        Name::from_uri(&file.key_name).map_err(|e| Error::Import(format!("key_name: {e}")))?;
    let cert_wire = hex::decode(&file.certificate)
        .map_err(|_| Error::Import("certificate is not hex".into()))?;
    let cert = Certificate::decode(Bytes::from(cert_wire))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    match (&file.secret, &file.encrypted, passphrase) {
        (Some(s), None, _) => {
            hex::decode_to_slice(s, seed.as_mut())
                .map_err(|_| Error::Import("secret is not 64 hex digits".into()))?;
        }
        (None, Some(enc), Some(p)) => {
            if enc.kdf != EXPORT_KDF || enc.aead != EXPORT_AEAD {
                return Err(Error::Import(format!(
                    "unsupported protection {} / {}",
                    enc.kdf, enc.aead
                )));
            }
            if enc.iterations > MAX_EXPORT_ITERATIONS {
                return Err(Error::Import(format!(
                    "{} PBKDF2 iterations is above the limit of {MAX_EXPORT_ITERATIONS}",
                    enc.iterations
                )));
            }
            let salt =
                hex::decode(&enc.salt).map_err(|_| Error::Import("salt is not hex".into()))?;
            let nonce: [u8; 24] = hex::decode(&enc.nonce)
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| Error::Import("nonce is not 24 bytes of hex".into()))?;
            let mut buf = Zeroizing::new(
                hex::decode(&enc.ciphertext)
                    .map_err(|_| Error::Import("ciphertext is not hex".into()))?,
            );
            export_cipher(p, &salt, enc.iterations.max(1))
                .decrypt_in_place(&XNonce::from(nonce), &key_name.to_wire(), &mut *buf)
                .map_err(|_| Error::WrongPassphrase)?;
            if buf.len() != 32 {
                return Err(Error::Import("decrypted secret is not 32 bytes".into()));
            }
            seed.copy_from_slice(&buf);
        }
        (None, Some(_), None) => {
            return Err(Error::Import(
                "the export is encrypted: a passphrase is needed".into(),
            ));
        }
        _ => {
            return Err(Error::Import(
                "exactly one of secret / [encrypted] must be present".into(),
            ));
        }
    }
    let key = KeyPair::from_seed(&seed, key_name)?;
    if !cert.matches_locator(key.key_name()) || cert.public_key() != Some(&key.public_key()) {
        return Err(Error::Import(
            "certificate does not belong to the key".into(),
        ));
    }
    Ok((key, cert))
}

fn export_cipher(passphrase: &str, salt: &[u8], iterations: u32) -> XChaCha20Poly1305 {
    let stretched = pbkdf2_sha256(passphrase.as_bytes(), salt, iterations);
    let hk = Hkdf::<Sha256>::new(Some(salt), stretched.as_ref());
    let mut okm = Zeroizing::new([0u8; 32]);
    // A 32-byte expand from SHA-256 HKDF cannot fail.
    let _ = hk.expand(b"amicn identity export v1", okm.as_mut());
    XChaCha20Poly1305::new((&*okm).into())
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) filling `out`, from the RustCrypto `pbkdf2` crate.
fn pbkdf2_sha256_into(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    // HMAC accepts keys of any length, so the only error (InvalidLength) cannot happen; the
    // output stays zero rather than panicking if it ever did, and decryption then fails.
    let _ = pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations.max(1), out);
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2_sha256_into(password, salt, iterations, out.as_mut());
    out
}

fn file_stem(name: &Name) -> String {
    let digest = Sha256::digest(name.to_string().as_bytes());
    hex::encode(&digest[..16])
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::KeychainIo {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::KeychainCorrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn list(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn load_key(path: &Path) -> Result<Option<PrivateKey>> {
    // A secret others could read may already be known to them, and one they could write may
    // have been replaced: refused, as ssh refuses such identity files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                return Err(Error::UnsafeKeyPermissions {
                    path: path.to_path_buf(),
                    mode: m.permissions().mode() & 0o7777,
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, e)),
        }
    }
    let text = match fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(corrupt(path, "not UTF-8 text"));
        }
        Err(e) => return Err(io_err(path, e)),
    };
    let file: KeyFile =
        toml::from_str(&text).map_err(|e| corrupt(path, format!("not a key file: {e}")))?;
    if file.format != KEY_FORMAT {
        return Err(corrupt(
            path,
            format!("unsupported format {:?}", file.format),
        ));
    }
    let name = Name::from_uri(&file.name).map_err(|e| corrupt(path, format!("key name: {e}")))?;
    let key = match file.algorithm.as_str() {
        "ed25519" => {
            let mut seed = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(&file.secret, seed.as_mut())
                .map_err(|_| corrupt(path, "secret is not 64 hex digits"))?;
            let key = KeyPair::from_seed(&seed, name).map_err(|e| corrupt(path, e.to_string()))?;
            if hex::encode(key.public_key().to_bytes()) != file.public {
                return Err(corrupt(path, "public key does not match the secret"));
            }
            PrivateKey::Ed25519(key)
        }
        alg @ ("ecdsa-p256" | "rsa") => {
            let der = Zeroizing::new(
                hex::decode(&file.secret).map_err(|_| corrupt(path, "secret is not hex"))?,
            );
            let key =
                PrivateKey::from_pkcs8_der(&der, name).map_err(|e| corrupt(path, e.to_string()))?;
            if key.algorithm() != alg {
                return Err(corrupt(path, format!("secret is not an {alg} key")));
            }
            if hex::encode(key.public_key().to_spki()) != file.public {
                return Err(corrupt(path, "public key does not match the secret"));
            }
            key
        }
        other => {
            return Err(corrupt(path, format!("unsupported algorithm {other:?}")));
        }
    };
    Ok(Some(key))
}

/// Writes `bytes` to `path` atomically: temp file (mode `mode`) in the same directory, fsync,
/// rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    crate::persist::replace_file(path, bytes, mode).map_err(|(p, e)| io_err(&p, e))
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pbkdf2_hmac_sha256_known_answers() {
        // RFC 7914 section 11 (PBKDF2-HMAC-SHA256, 64-byte output).
        let mut out = [0u8; 64];
        pbkdf2_sha256_into(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        pbkdf2_sha256_into(b"Password", b"NaCl", 80_000, &mut out);
        assert_eq!(
            hex::encode(out),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
        // The RFC 6070 inputs with SHA-256 as the PRF, 32-byte output.
        for (c, want) in [
            (
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ] {
            assert_eq!(
                hex::encode(*pbkdf2_sha256(b"password", b"salt", c)),
                want,
                "c={c}"
            );
        }
    }
}
