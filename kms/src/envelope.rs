//! The content envelope: XChaCha20-Poly1305 under a named, epoch-versioned key.
//!
//! Wire form, in NAC's vocabulary (TLV numbers from name-based-access-control `common.hpp`):
//!
//! ```text
//! EncryptedContent (0x82) {
//!     EncryptedPayload     (0x84)  ciphertext ‖ 16-byte Poly1305 tag
//!     InitializationVector (0x85)  24-byte random XChaCha20 nonce
//!     Name                 (7)     name of the key, ending in its epoch (v=<e>)
//! }
//! ```
//!
//! NAC uses AES-CBC with no tag; here the tag is appended to the payload ("attached" form) so
//! NAC's element set stays unchanged. The associated data is the complete Name TLV of the Data
//! that carries the envelope, so a ciphertext moved under another name fails to open.
//!
//! The AEAD key is never the epoch key itself: [`EnvelopeKey::derive`] runs HKDF-SHA256 over it
//! with the purpose and the key name (which includes the epoch) as `info`. Content encryption and
//! key wrapping under the same epoch key therefore use unrelated AEAD keys, and every epoch gets
//! fresh ones. Random 24-byte nonces make collisions negligible (≈ q²/2¹⁹³) even for long-lived
//! group keys and for replicated encryptors that share no counter.

use std::fmt;

use amicn_tlv::{Name, TlvReader, encode_var_number};
use bytes::{BufMut, Bytes, BytesMut};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KEY_LEN, SymmetricKey, fill_random};

/// TLV-TYPE of EncryptedContent.
pub const ENCRYPTED_CONTENT: u32 = 0x82;
/// TLV-TYPE of EncryptedPayload (ciphertext ‖ tag).
pub const ENCRYPTED_PAYLOAD: u32 = 0x84;
/// TLV-TYPE of InitializationVector (the nonce).
pub const INITIALIZATION_VECTOR: u32 = 0x85;
/// XChaCha20 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// HKDF salt fixing the envelope's key-derivation version.
const SUBKEY_SALT: &[u8] = b"amicn envelope subkey v1";

/// What an envelope key is used for; each purpose gets its own HKDF subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Application content (readings, prices, DR events).
    Content,
    /// Wrapping other keys (rekey objects).
    KeyWrap,
    /// Anything else, named by a short label that must not collide with the ones above.
    Other(&'static str),
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Content => b"content",
            Purpose::KeyWrap => b"key-wrap",
            Purpose::Other(s) => s.as_bytes(),
        }
    }
}

/// Derives the AEAD subkey for `purpose` from an epoch key named `key_name`.
pub fn derive_subkey(key: &SymmetricKey, key_name: &Name, purpose: Purpose) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(Some(SUBKEY_SALT), key.as_bytes());
    let label = purpose.label();
    let name_wire = key_name.to_wire();
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // Length-prefix the label so an `Other` label cannot run into the name bytes.
    let label_len = [u8::try_from(label.len()).unwrap_or(u8::MAX)];
    // A 32-byte expand from SHA-256 HKDF cannot fail (limit is 255 * 32).
    let _ = hk.expand_multi_info(&[&label_len, label, &name_wire], okm.as_mut());
    SymmetricKey::from_bytes(*okm)
}

/// Decoded EncryptedContent element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedContent {
    /// Name of the key (with epoch) that decrypts the payload.
    pub key_name: Name,
    /// The XChaCha20 nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub payload: Bytes,
}

impl EncryptedContent {
    /// Parses an EncryptedContent TLV (the whole element, e.g. a Data's Content).
    pub fn decode(wire: Bytes) -> Result<Self> {
        let mut outer = TlvReader::new(wire);
        let el = outer.read()?;
        if el.typ != ENCRYPTED_CONTENT {
            return Err(Error::MalformedEnvelope(
                "outer element is not EncryptedContent (0x82)",
            ));
        }
        if !outer.is_empty() {
            return Err(Error::MalformedEnvelope(
                "trailing bytes after EncryptedContent",
            ));
        }
        let mut payload = None;
        let mut nonce = None;
        let mut key_name = None;
        let mut inner = TlvReader::new(el.value.clone());
        while !inner.is_empty() {
            let e = inner.read()?;
            match e.typ {
                ENCRYPTED_PAYLOAD if payload.is_none() => payload = Some(e.value),
                INITIALIZATION_VECTOR if nonce.is_none() => {
                    let n: [u8; NONCE_LEN] = e.value.as_ref().try_into().map_err(|_| {
                        Error::MalformedEnvelope("InitializationVector is not 24 bytes")
                    })?;
                    nonce = Some(n);
                }
                amicn_tlv::tt::NAME if key_name.is_none() => {
                    key_name = Some(Name::decode(e.wire.clone())?);
                }
                ENCRYPTED_PAYLOAD | INITIALIZATION_VECTOR | amicn_tlv::tt::NAME => {
                    return Err(Error::MalformedEnvelope("repeated element"));
                }
                // Unknown non-critical (even, >31) elements may be ignored; anything else is an error.
                t if t > 31 && t % 2 == 0 => {}
                _ => return Err(Error::MalformedEnvelope("unknown critical element")),
            }
        }
        let payload = payload.ok_or(Error::MalformedEnvelope("EncryptedPayload missing"))?;
        if payload.len() < TAG_LEN {
            return Err(Error::MalformedEnvelope(
                "EncryptedPayload shorter than the tag",
            ));
        }
        Ok(Self {
            key_name: key_name.ok_or(Error::MalformedEnvelope("key Name missing"))?,
            nonce: nonce.ok_or(Error::MalformedEnvelope("InitializationVector missing"))?,
            payload,
        })
    }

    /// Encodes the element.
    pub fn encode(&self) -> Bytes {
        let name_len = self.key_name.encoded_len();
        let inner_len = tlv_len(ENCRYPTED_PAYLOAD, self.payload.len())
            + tlv_len(INITIALIZATION_VECTOR, NONCE_LEN)
            + name_len;
        let mut buf = BytesMut::with_capacity(tlv_len(ENCRYPTED_CONTENT, inner_len));
        put_header(&mut buf, ENCRYPTED_CONTENT, inner_len);
        put_header(&mut buf, ENCRYPTED_PAYLOAD, self.payload.len());
        buf.put_slice(&self.payload);
        put_header(&mut buf, INITIALIZATION_VECTOR, NONCE_LEN);
        buf.put_slice(&self.nonce);
        self.key_name.encode(&mut buf);
        buf.freeze()
    }
}

fn put_header(buf: &mut BytesMut, typ: u32, len: usize) {
    encode_var_number(buf, u64::from(typ));
    encode_var_number(buf, len as u64);
}

fn tlv_len(typ: u32, len: usize) -> usize {
    amicn_tlv::var_number_len(u64::from(typ)) + amicn_tlv::var_number_len(len as u64) + len
}

/// An AEAD key ready to seal and open envelopes for one key name and purpose.
pub struct EnvelopeKey {
    cipher: XChaCha20Poly1305,
    key_name: Name,
    purpose: Purpose,
}

impl fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeKey")
            .field("key_name", &self.key_name.to_string())
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl EnvelopeKey {
    /// Derives the subkey for `purpose` from the epoch key `key` named `key_name`.
    pub fn derive(key: &SymmetricKey, key_name: &Name, purpose: Purpose) -> Self {
        let sub = derive_subkey(key, key_name, purpose);
        let cipher = XChaCha20Poly1305::new(sub.as_bytes().into());
        Self {
            cipher,
            key_name: key_name.clone(),
            purpose,
        }
    }

    /// The key name (with epoch) carried in every envelope.
    pub fn key_name(&self) -> &Name {
        &self.key_name
    }

    /// Encrypts `plaintext` for the Data named `data_name`; returns the EncryptedContent TLV.
    pub fn seal(&self, data_name: &Name, plaintext: &[u8]) -> Result<Bytes> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_with_nonce(data_name, plaintext, nonce)
    }

    /// Encrypts with a caller-chosen nonce. Only for reproducible test vectors: a nonce must never
    /// repeat under one key.
    #[doc(hidden)]
    pub fn seal_with_nonce(
        &self,
        data_name: &Name,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.sealed_len(plaintext.len()));
        self.seal_into_with_nonce(data_name, plaintext, nonce, &mut out)?;
        Ok(out.freeze())
    }

    /// Length of the EncryptedContent TLV for a plaintext of `plaintext_len` bytes.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        tlv_len(ENCRYPTED_CONTENT, self.inner_len(plaintext_len))
    }

    fn inner_len(&self, plaintext_len: usize) -> usize {
        tlv_len(ENCRYPTED_PAYLOAD, plaintext_len + TAG_LEN)
            + tlv_len(INITIALIZATION_VECTOR, NONCE_LEN)
            + self.key_name.encoded_len()
    }

    /// Appends the EncryptedContent TLV to `out`, encrypting in place in the output buffer (no
    /// intermediate copy; e.g. straight into a Content being built).
    pub fn seal_into(&self, data_name: &Name, plaintext: &[u8], out: &mut BytesMut) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_into_with_nonce(data_name, plaintext, nonce, out)
    }

    fn seal_into_with_nonce(
        &self,
        data_name: &Name,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
        out: &mut BytesMut,
    ) -> Result<()> {
        let aad = data_name.to_wire();
        let inner_len = self.inner_len(plaintext.len());
        out.reserve(tlv_len(ENCRYPTED_CONTENT, inner_len));
        put_header(out, ENCRYPTED_CONTENT, inner_len);
        put_header(out, ENCRYPTED_PAYLOAD, plaintext.len() + TAG_LEN);
        let start = out.len();
        out.put_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &aad, out[start..].as_mut().into())
            .map_err(|_| Error::MalformedEnvelope("plaintext too long for XChaCha20-Poly1305"))?;
        out.put_slice(&tag);
        put_header(out, INITIALIZATION_VECTOR, NONCE_LEN);
        out.put_slice(&nonce);
        self.key_name.encode(out);
        Ok(())
    }

    /// Decrypts an EncryptedContent TLV found in the Data named `data_name`.
    pub fn open(&self, data_name: &Name, content: &Bytes) -> Result<Zeroizing<Vec<u8>>> {
        let ec = EncryptedContent::decode(content.clone())?;
        self.open_decoded(data_name, &ec)
    }

    /// Decrypts an already decoded envelope.
    pub fn open_decoded(
        &self,
        data_name: &Name,
        ec: &EncryptedContent,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if ec.key_name != self.key_name {
            return Err(Error::WrongKeyName {
                expected: self.key_name.to_string(),
                found: ec.key_name.to_string(),
            });
        }
        let aad = data_name.to_wire();
        let mut buf = Zeroizing::new(ec.payload.to_vec());
        self.cipher
            .decrypt_in_place(&XNonce::from(ec.nonce), &aad, &mut *buf)
            .map_err(|_| Error::DecryptFailed {
                data_name: data_name.to_string(),
                key_name: self.key_name.to_string(),
            })?;
        Ok(buf)
    }
}

/// One-shot [`EnvelopeKey::seal`].
pub fn seal(
    key: &SymmetricKey,
    key_name: &Name,
    purpose: Purpose,
    data_name: &Name,
    plaintext: &[u8],
) -> Result<Bytes> {
    EnvelopeKey::derive(key, key_name, purpose).seal(data_name, plaintext)
}

/// One-shot [`EnvelopeKey::open`].
pub fn open(
    key: &SymmetricKey,
    key_name: &Name,
    purpose: Purpose,
    data_name: &Name,
    content: &Bytes,
) -> Result<Zeroizing<Vec<u8>>> {
    EnvelopeKey::derive(key, key_name, purpose).open(data_name, content)
}
