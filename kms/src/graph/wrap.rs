//! Wrap objects (a new key encrypted under a child key), key commitments and the LKH+ ratchet.
//!
//! A wrap is XChaCha20-Poly1305 with a random 24-byte nonce and the wrap's own name as associated
//! data, so a ciphertext cannot be replayed under another name. Payload layout:
//! `nonce (24) ‖ ciphertext (32) ‖ tag (16)` = [`WRAP_LEN`] bytes.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use rand::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::error::{GraphError, GraphResult};
use crate::key::{KEY_LEN, SymmetricKey};

/// Bytes of one wrap payload on the wire.
pub const WRAP_LEN: usize = 24 + KEY_LEN + 16;
/// Bytes of a key commitment carried in the manifest.
pub const COMMIT_LEN: usize = 16;

const COMMIT_LABEL: &[u8] = b"amicn-kms key commitment v1";
const RATCHET_LABEL: &[u8] = b"amicn-kms lkh+ join ratchet v1";

/// Which delivery mode a wrap is meant for (the survey's unicast / multicast / broadcast split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrapMode {
    /// Encrypted under one meter's user key.
    Unicast,
    /// Encrypted under a subgroup-tree or project key, fetched by part of one group.
    Multicast,
    /// Carries the broadcast (root) key.
    Broadcast,
}

/// One published wrap: the name it is fetched under, its mode and the AEAD payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Wrap {
    /// `<wrapped key name>/ENCRYPTED-BY<wrapping key name>`.
    pub name: String,
    /// Delivery mode.
    pub mode: WrapMode,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub payload: [u8; WRAP_LEN],
}

impl std::fmt::Debug for Wrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrap")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Seals `key` under `kek` with the wrap name as associated data.
pub fn seal<R: Rng + ?Sized>(
    rng: &mut R,
    kek: &[u8; KEY_LEN],
    name: String,
    mode: WrapMode,
    key: &[u8; KEY_LEN],
) -> Wrap {
    let mut payload = [0u8; WRAP_LEN];
    rng.fill_bytes(&mut payload[..24]);
    let (nonce, rest) = payload.split_at_mut(24);
    let (body, tag_out) = rest.split_at_mut(KEY_LEN);
    body.copy_from_slice(key);
    let cipher = XChaCha20Poly1305::new(kek.into());
    let nonce_arr: &[u8; 24] = (&*nonce).try_into().unwrap_or(&[0u8; 24]);
    // A 32-byte message and a short AAD are far below the cipher's length limits, so sealing
    // cannot fail; keep the tag zeroed (and thus unverifiable) rather than panic if it ever did.
    if let Ok(tag) =
        cipher.encrypt_inout_detached(nonce_arr.into(), name.as_bytes(), InOutBuf::from(body))
    {
        tag_out.copy_from_slice(&tag);
    }
    Wrap {
        name,
        mode,
        payload,
    }
}

/// Opens `wrap`, which must be named `expected`, under `kek`.
pub fn open(wrap: &Wrap, expected: &str, kek: &[u8; KEY_LEN]) -> GraphResult<SymmetricKey> {
    if wrap.name != expected {
        return Err(GraphError::WrapNameMismatch {
            expected: expected.to_string(),
            found: wrap.name.clone(),
        });
    }
    let mut buf = [0u8; KEY_LEN];
    let (nonce, rest) = wrap.payload.split_at(24);
    let (body, tag) = rest.split_at(KEY_LEN);
    buf.copy_from_slice(body);
    let cipher = XChaCha20Poly1305::new(kek.into());
    let nonce_arr: [u8; 24] = nonce.try_into().map_err(|_| auth_failed(expected))?;
    let tag_arr: [u8; 16] = tag.try_into().map_err(|_| auth_failed(expected))?;
    let r = cipher.decrypt_inout_detached(
        (&nonce_arr).into(),
        expected.as_bytes(),
        InOutBuf::from(&mut buf[..]),
        (&tag_arr).into(),
    );
    if r.is_err() {
        buf.zeroize();
        return Err(auth_failed(expected));
    }
    let key = SymmetricKey::from_bytes(buf);
    buf.zeroize();
    Ok(key)
}

fn auth_failed(name: &str) -> GraphError {
    GraphError::WrapAuthFailed {
        name: name.to_string(),
    }
}

/// Commitment to a key under its name: lets a member detect a wrap forged by another member
/// who also holds the wrapping key. Reveals nothing about a uniformly random 256-bit key.
pub fn commitment(key_name: &str, key: &[u8; KEY_LEN]) -> [u8; COMMIT_LEN] {
    let mut h = Sha256::new();
    h.update(COMMIT_LABEL);
    h.update((key_name.len() as u32).to_be_bytes());
    h.update(key_name.as_bytes());
    h.update(key);
    let d = h.finalize();
    let mut out = [0u8; COMMIT_LEN];
    out.copy_from_slice(&d[..COMMIT_LEN]);
    out
}

/// The LKH+ join ratchet: the key a node gets when only joins happened below it. `new_name` is
/// the node's name at its new epoch, so every step of the chain is distinct.
pub fn ratchet(old: &[u8; KEY_LEN], new_name: &str) -> [u8; KEY_LEN] {
    let hk = Hkdf::<Sha256>::new(None, old);
    let mut out = [0u8; KEY_LEN];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    let _ = hk.expand_multi_info(&[RATCHET_LABEL, new_name.as_bytes()], &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = rand::rng();
        let kek = [1u8; 32];
        let key = [2u8; 32];
        let w = seal(
            &mut rng,
            &kek,
            "/u/a/ENCRYPTED-BY/u/b".into(),
            WrapMode::Multicast,
            &key,
        );
        assert_eq!(
            open(&w, "/u/a/ENCRYPTED-BY/u/b", &kek).unwrap().as_bytes(),
            &key
        );
        assert!(matches!(
            open(&w, "/u/x", &kek),
            Err(GraphError::WrapNameMismatch { .. })
        ));
        assert!(matches!(
            open(&w, "/u/a/ENCRYPTED-BY/u/b", &[9u8; 32]),
            Err(GraphError::WrapAuthFailed { .. })
        ));
        for i in 0..WRAP_LEN {
            let mut t = w.clone();
            t.payload[i] ^= 0x01;
            assert!(
                matches!(
                    open(&t, "/u/a/ENCRYPTED-BY/u/b", &kek),
                    Err(GraphError::WrapAuthFailed { .. })
                ),
                "byte {i}"
            );
        }
        // The same ciphertext moved under another name fails, since the name is the AAD.
        let mut moved = w.clone();
        moved.name = "/u/c/ENCRYPTED-BY/u/b".into();
        assert!(matches!(
            open(&moved, "/u/c/ENCRYPTED-BY/u/b", &kek),
            Err(GraphError::WrapAuthFailed { .. })
        ));
    }

    #[test]
    fn ratchet_and_commitment_are_deterministic_and_name_bound() {
        let k = [5u8; 32];
        assert_eq!(ratchet(&k, "/a/v=2"), ratchet(&k, "/a/v=2"));
        assert_ne!(ratchet(&k, "/a/v=2"), ratchet(&k, "/a/v=3"));
        assert_ne!(ratchet(&k, "/a/v=2"), k);
        assert_ne!(commitment("/a", &k), commitment("/b", &k));
    }
}
