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
    payload[24..24 + KEY_LEN].copy_from_slice(key);
    seal_in_place(kek, &mut payload, name.as_bytes());
    Wrap {
        name,
        mode,
        payload,
    }
}

/// Encrypts `payload[24..56]` in place under `kek` with nonce `payload[..24]` and writes the tag.
fn seal_in_place(kek: &[u8; KEY_LEN], payload: &mut [u8; WRAP_LEN], aad: &[u8]) {
    let (nonce, rest) = payload.split_at_mut(24);
    let (body, tag_out) = rest.split_at_mut(KEY_LEN);
    let cipher = XChaCha20Poly1305::new(kek.into());
    let nonce_arr: &[u8; 24] = (&*nonce).try_into().unwrap_or(&[0u8; 24]);
    // A 32-byte message and a short AAD are far below the cipher's length limits, so sealing
    // cannot fail; keep the tag zeroed (and thus unverifiable) rather than panic if it ever did.
    if let Ok(tag) = cipher.encrypt_inout_detached(nonce_arr.into(), aad, InOutBuf::from(body)) {
        tag_out.copy_from_slice(&tag);
    }
}

/// Below this many wraps an epoch is sealed on the calling thread: spawning workers costs more
/// than the ~40 wraps of a single leave.
const PARALLEL_MIN: usize = 512;

/// The wraps of one epoch, named and given their nonces in order, sealed together at the end.
///
/// Nonces are drawn from the caller's generator when a wrap is added, so the output (and the
/// generator's state) is the same as sealing each wrap on the spot; only the AEAD work is
/// deferred, which lets a large batch spread it over the machine's cores. Until [`Self::finish`]
/// a pending payload holds the plaintext key; both it and the stored wrapping keys are wiped on
/// drop.
pub(crate) struct SealBatch {
    wraps: Vec<Wrap>,
    keks: Vec<[u8; KEY_LEN]>,
}

impl SealBatch {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self {
            wraps: Vec::new(),
            keks: Vec::new(),
        }
    }

    /// Queues `key` sealed under `kek` as `name`.
    pub(crate) fn push<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        kek: &[u8; KEY_LEN],
        name: String,
        mode: WrapMode,
        key: &[u8; KEY_LEN],
    ) {
        let mut payload = [0u8; WRAP_LEN];
        rng.fill_bytes(&mut payload[..24]);
        payload[24..24 + KEY_LEN].copy_from_slice(key);
        self.keks.push(*kek);
        self.wraps.push(Wrap {
            name,
            mode,
            payload,
        });
    }

    /// Seals every queued wrap and returns them in the order they were queued.
    pub(crate) fn finish(mut self) -> Vec<Wrap> {
        let mut wraps = std::mem::take(&mut self.wraps);
        let threads = if wraps.len() < PARALLEL_MIN {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        if threads <= 1 {
            seal_all(&mut wraps, &self.keks);
        } else {
            let chunk = wraps.len().div_ceil(threads);
            std::thread::scope(|s| {
                let mut parts = wraps.chunks_mut(chunk).zip(self.keks.chunks(chunk));
                let own = parts.next();
                for (w, k) in parts {
                    s.spawn(move || seal_all(w, k));
                }
                if let Some((w, k)) = own {
                    seal_all(w, k);
                }
            });
        }
        wraps
    }
}

fn seal_all(wraps: &mut [Wrap], keks: &[[u8; KEY_LEN]]) {
    for (w, kek) in wraps.iter_mut().zip(keks) {
        seal_in_place(kek, &mut w.payload, w.name.as_bytes());
    }
}

impl Drop for SealBatch {
    fn drop(&mut self) {
        for k in &mut self.keks {
            k.zeroize();
        }
        for w in &mut self.wraps {
            w.payload.zeroize();
        }
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
    fn batch_sealing_matches_one_by_one_on_every_thread_count() {
        use rand::SeedableRng;
        use rand::rngs::StdRng;
        // Above and below the threshold, so both the spread-out and the inline path run.
        for n in [3usize, PARALLEL_MIN + 7] {
            let mut one = StdRng::seed_from_u64(5);
            let mut batched = StdRng::seed_from_u64(5);
            let mut batch = SealBatch::new();
            let mut expect = Vec::new();
            for i in 0..n {
                let kek = [(i % 251) as u8; KEY_LEN];
                let key = [(i % 13) as u8 ^ 0x5a; KEY_LEN];
                let name = format!("/u/k/v={i}/ENCRYPTED-BY/u/c/v={i}");
                expect.push(seal(
                    &mut one,
                    &kek,
                    name.clone(),
                    WrapMode::Multicast,
                    &key,
                ));
                batch.push(&mut batched, &kek, name, WrapMode::Multicast, &key);
            }
            let got = batch.finish();
            assert_eq!(got.len(), n);
            for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
                assert_eq!(g.name, e.name);
                assert_eq!(g.payload, e.payload, "wrap {i} of {n}");
                let kek = [(i % 251) as u8; KEY_LEN];
                assert_eq!(
                    open(g, &e.name, &kek).unwrap().as_bytes(),
                    &[(i % 13) as u8 ^ 0x5a; KEY_LEN]
                );
            }
            // The generators advanced identically, so later draws stay deterministic too.
            assert_eq!(one.next_u64(), batched.next_u64());
        }
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
