//! **Emulated** physically unclonable function (PUF) and PUF-based meter authentication, for
//! comparing the message and computation costs of SEES-style and PUF hash-chain authentication
//! with amicn's other schemes.
//!
//! This is an emulation, not a security mechanism: the "PUF" is a keyed hash of a device secret
//! held in memory ([`EmulatedPuf`]), with bit flips added at a chosen rate to model a weak PUF's
//! noisy responses. Nothing in amicn authenticates a real meter with it.
//!
//! - **Fuzzy extractor** (code-offset with a repetition code): [`generate`] draws a random
//!   128-bit secret, spreads each bit over `r` response bits and publishes `helper = w ⊕ c`;
//!   [`reproduce`] decodes `w' ⊕ helper` by majority, so up to `(r − 1) / 2` flipped bits per
//!   block are corrected. The helper data is public.
//! - **Authentication with a hash chain** ([`PufVerifier`], [`respond`]): at enrolment the utility
//!   reads the device's response to a challenge `C₀` once and stores `(C₀, helper₀, K₀)`. Each
//!   authentication sends `(C_i, helper_i, nonce)`; the meter regenerates `K_i` from its PUF and
//!   answers with an HMAC under `K_i`, together with the helper data of the next challenge
//!   `C_{i+1} = H(K_i ‖ C_i)` and its key `K_{i+1}` masked by `H(K_i ‖ nonce)`. Every challenge
//!   is retired once answered and every nonce is used once: a replayed answer or another
//!   device's answer fails the HMAC.
//!
//! The costs per authentication are counted as they are spent ([`AuthCost`]): two messages,
//! two PUF evaluations and a decode and an encode at the meter, one-way function evaluations on
//! both sides.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::identity::hmac_sha256;
use crate::key::{KEY_LEN, SymmetricKey};

/// Bits of the secret a fuzzy extractor hides in a response.
pub const SECRET_BITS: usize = 128;
/// Default repetition factor: 15 response bits per secret bit, corrects 7 flips per block.
/// Enrolment reads a noisy response too, so the decoder sees about twice the device's flip rate:
/// at 5 % per reading, about one authentication in 400 fails and is retried.
pub const DEFAULT_REPETITION: u8 = 15;
/// Challenge length.
pub const CHALLENGE_LEN: usize = 32;
/// Nonce length.
pub const NONCE_LEN: usize = 16;

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many authentication answers or helper records this process refused.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// What can go wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PufError {
    /// A parameter out of range.
    #[error("emulated PUF: {0}")]
    BadParameter(String),
    /// Helper data of the wrong shape.
    #[error("helper data: {len} bytes for repetition {repetition}, expected {expected}")]
    BadHelper {
        /// Repetition factor.
        repetition: u8,
        /// Length found.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// No challenge is outstanding (a replay, or an answer to a challenge already used).
    #[error("meter {meter}: no outstanding challenge")]
    NoChallenge {
        /// Meter id.
        meter: u32,
    },
    /// The answer's tag does not verify under the enrolled key.
    #[error("meter {meter}: PUF authentication failed")]
    Rejected {
        /// Meter id.
        meter: u32,
    },
}

fn refuse<T>(e: PufError) -> Result<T, PufError> {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    Err(e)
}

/// An emulated weak PUF: the device secret stands for the silicon's variation; every response
/// bit is flipped independently with probability `flip`.
pub struct EmulatedPuf {
    secret: Zeroizing<[u8; 32]>,
    /// Flip threshold on a uniform `u32`.
    flip: u32,
    noise: StdRng,
}

impl fmt::Debug for EmulatedPuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatedPuf")
            .field("flip_probability", &self.flip_probability())
            .finish_non_exhaustive()
    }
}

impl EmulatedPuf {
    /// A device with secret `secret` whose responses flip each bit with probability `flip` (in
    /// `[0, 0.5)`); `noise_seed` seeds the noise (a fixed seed makes tests reproducible).
    pub fn new(secret: [u8; 32], flip: f64, noise_seed: u64) -> Result<EmulatedPuf, PufError> {
        if !(0.0..0.5).contains(&flip) {
            return Err(PufError::BadParameter(format!(
                "flip probability {flip} not in [0, 0.5)"
            )));
        }
        Ok(EmulatedPuf {
            secret: Zeroizing::new(secret),
            flip: (flip * f64::from(u32::MAX)) as u32,
            noise: StdRng::seed_from_u64(noise_seed),
        })
    }

    /// The bit-flip probability.
    pub fn flip_probability(&self) -> f64 {
        f64::from(self.flip) / f64::from(u32::MAX)
    }

    /// The noiseless response of `bits` bits (a multiple of 8) to `challenge`.
    fn ideal(&self, challenge: &[u8], bytes: usize) -> Zeroizing<Vec<u8>> {
        let key = SymmetricKey::from_bytes(*self.secret);
        let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
        let mut block = 0u32;
        while out.len() < bytes {
            let mut msg = Vec::with_capacity(challenge.len() + 24);
            msg.extend_from_slice(b"amicn emulated puf v1");
            msg.extend_from_slice(&block.to_be_bytes());
            msg.extend_from_slice(challenge);
            out.extend_from_slice(&hmac_sha256(&key, &msg));
            block += 1;
        }
        out.truncate(bytes);
        out
    }

    /// A noisy response of `bytes` bytes to `challenge`.
    pub fn respond(&mut self, challenge: &[u8], bytes: usize) -> Zeroizing<Vec<u8>> {
        let mut w = self.ideal(challenge, bytes);
        if self.flip > 0 {
            for byte in w.iter_mut() {
                for bit in 0..8 {
                    if self.noise.next_u32() < self.flip {
                        *byte ^= 1 << bit;
                    }
                }
            }
        }
        w
    }
}

/// Public helper data of the code-offset fuzzy extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// Repetition factor `r` (odd).
    pub repetition: u8,
    /// `w ⊕ c`, `SECRET_BITS · r / 8` bytes.
    pub offset: Vec<u8>,
}

/// Response bytes a repetition factor needs.
pub fn response_len(repetition: u8) -> usize {
    SECRET_BITS * usize::from(repetition) / 8
}

fn bit(b: &[u8], i: usize) -> u8 {
    (b[i / 8] >> (i % 8)) & 1
}

/// Gen: draws the secret, returns it and the helper data for response `w`.
pub fn generate<R: Rng + ?Sized>(
    w: &[u8],
    repetition: u8,
    rng: &mut R,
) -> Result<(Zeroizing<[u8; SECRET_BITS / 8]>, Helper), PufError> {
    if repetition.is_multiple_of(2) {
        return Err(PufError::BadParameter(format!(
            "repetition {repetition} must be odd"
        )));
    }
    let r = usize::from(repetition);
    if w.len() != response_len(repetition) {
        return Err(PufError::BadHelper {
            repetition,
            len: w.len(),
            expected: response_len(repetition),
        });
    }
    let mut secret = Zeroizing::new([0u8; SECRET_BITS / 8]);
    rng.fill_bytes(secret.as_mut());
    let mut offset = w.to_vec();
    for i in 0..SECRET_BITS {
        let s = bit(secret.as_ref(), i);
        for j in 0..r {
            let at = i * r + j;
            offset[at / 8] ^= s << (at % 8);
        }
    }
    Ok((secret, Helper { repetition, offset }))
}

/// Rep: recovers the secret from a noisy response `w'` and the helper data (majority per block).
pub fn reproduce(w: &[u8], helper: &Helper) -> Result<Zeroizing<[u8; SECRET_BITS / 8]>, PufError> {
    let expected = response_len(helper.repetition);
    if helper.repetition.is_multiple_of(2) || helper.offset.len() != expected || w.len() != expected
    {
        return refuse(PufError::BadHelper {
            repetition: helper.repetition,
            len: helper.offset.len().min(w.len()),
            expected,
        });
    }
    let r = usize::from(helper.repetition);
    let mut secret = Zeroizing::new([0u8; SECRET_BITS / 8]);
    for i in 0..SECRET_BITS {
        let ones: usize = (0..r)
            .map(|j| usize::from(bit(w, i * r + j) ^ bit(&helper.offset, i * r + j)))
            .sum();
        if 2 * ones > r {
            secret[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(secret)
}

/// What one authentication cost, counted where it is spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthCost {
    /// Messages: the challenge and the answer.
    pub messages: u64,
    /// Bytes of the challenge and the answer (payload, without NDN names and signatures).
    pub bytes: u64,
    /// PUF evaluations at the meter.
    pub puf_evals: u64,
    /// Fuzzy-extractor decodes (Rep) plus encodes (Gen) at the meter.
    pub extractor_ops: u64,
    /// One-way function evaluations (SHA-256, HMAC-SHA256) at the meter.
    pub meter_one_way: u64,
    /// One-way function evaluations at the utility.
    pub server_one_way: u64,
}

fn h(count: &mut u64, parts: &[&[u8]]) -> [u8; 32] {
    *count += 1;
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn derive_key(count: &mut u64, secret: &[u8], challenge: &[u8]) -> SymmetricKey {
    SymmetricKey::from_bytes(h(count, &[b"amicn puf key v1", secret, challenge]))
}

fn next_challenge(count: &mut u64, key: &SymmetricKey, challenge: &[u8]) -> [u8; CHALLENGE_LEN] {
    h(count, &[b"amicn puf chain v1", key.as_bytes(), challenge])
}

fn mask(count: &mut u64, key: &SymmetricKey, nonce: &[u8]) -> [u8; KEY_LEN] {
    h(count, &[b"amicn puf mask v1", key.as_bytes(), nonce])
}

fn tag(
    count: &mut u64,
    key: &SymmetricKey,
    meter: u32,
    c: &AuthChallenge,
    next: &Helper,
    masked: &[u8; KEY_LEN],
) -> [u8; 32] {
    *count += 1;
    let mut msg = Vec::with_capacity(96 + next.offset.len());
    msg.extend_from_slice(b"amicn puf auth v1");
    msg.extend_from_slice(&meter.to_be_bytes());
    msg.extend_from_slice(&c.nonce);
    msg.extend_from_slice(&c.challenge);
    msg.push(next.repetition);
    msg.extend_from_slice(&next.offset);
    msg.extend_from_slice(masked);
    hmac_sha256(key, &msg)
}

/// The utility's challenge: which CRP to answer, its helper data, a fresh nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChallenge {
    /// Meter addressed.
    pub meter: u32,
    /// Challenge `C_i`.
    pub challenge: [u8; CHALLENGE_LEN],
    /// Helper data of `C_i`.
    pub helper: Helper,
    /// Single-use nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl AuthChallenge {
    /// Payload bytes.
    pub fn len(&self) -> usize {
        4 + CHALLENGE_LEN + 1 + self.helper.offset.len() + NONCE_LEN
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The meter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResponse {
    /// Meter answering.
    pub meter: u32,
    /// HMAC under `K_i` of nonce, challenge and the rest of the answer.
    pub tag: [u8; 32],
    /// Helper data of the next challenge.
    pub next_helper: Helper,
    /// `K_{i+1} ⊕ H(K_i ‖ nonce)`.
    pub next_masked: [u8; KEY_LEN],
    /// What the meter spent.
    pub cost: AuthCost,
}

impl AuthResponse {
    /// Payload bytes.
    pub fn len(&self) -> usize {
        4 + 32 + 1 + self.next_helper.offset.len() + KEY_LEN
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The meter's side: answers `c` with its PUF (the key is regenerated, never stored).
pub fn respond<R: Rng + ?Sized>(
    puf: &mut EmulatedPuf,
    c: &AuthChallenge,
    rng: &mut R,
) -> Result<AuthResponse, PufError> {
    let mut cost = AuthCost::default();
    let len = response_len(c.helper.repetition);
    let w = puf.respond(&c.challenge, len);
    cost.puf_evals += 1;
    let secret = reproduce(&w, &c.helper)?;
    cost.extractor_ops += 1;
    let k = derive_key(&mut cost.meter_one_way, secret.as_ref(), &c.challenge);
    let next = next_challenge(&mut cost.meter_one_way, &k, &c.challenge);
    let w_next = puf.respond(&next, len);
    cost.puf_evals += 1;
    let (s_next, next_helper) = generate(&w_next, c.helper.repetition, rng)?;
    cost.extractor_ops += 1;
    let k_next = derive_key(&mut cost.meter_one_way, s_next.as_ref(), &next);
    let m = mask(&mut cost.meter_one_way, &k, &c.nonce);
    let mut next_masked = *k_next.as_bytes();
    for (a, b) in next_masked.iter_mut().zip(m) {
        *a ^= b;
    }
    let t = tag(
        &mut cost.meter_one_way,
        &k,
        c.meter,
        c,
        &next_helper,
        &next_masked,
    );
    let mut r = AuthResponse {
        meter: c.meter,
        tag: t,
        next_helper,
        next_masked,
        cost,
    };
    r.cost.messages = 2;
    r.cost.bytes = (c.len() + r.len()) as u64;
    Ok(r)
}

struct Record {
    challenge: [u8; CHALLENGE_LEN],
    helper: Helper,
    key: SymmetricKey,
}

/// The utility's side for one meter: the current challenge–response pair and the outstanding
/// challenge.
pub struct PufVerifier {
    meter: u32,
    record: Record,
    pending: Option<AuthChallenge>,
    rng: StdRng,
    rounds: u64,
}

impl fmt::Debug for PufVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PufVerifier")
            .field("meter", &self.meter)
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

impl PufVerifier {
    /// Enrolment in the utility's trusted facility: reads the device's response to a fresh
    /// challenge once and keeps `(C₀, helper₀, K₀)`.
    pub fn enrol(
        meter: u32,
        puf: &mut EmulatedPuf,
        repetition: u8,
        seed: u64,
    ) -> Result<PufVerifier, PufError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        let w = puf.respond(&challenge, response_len(repetition));
        let (secret, helper) = generate(&w, repetition, &mut rng)?;
        let key = derive_key(&mut 0, secret.as_ref(), &challenge);
        Ok(PufVerifier {
            meter,
            record: Record {
                challenge,
                helper,
                key,
            },
            pending: None,
            rng,
            rounds: 0,
        })
    }

    /// Issues the challenge of the next authentication (replacing any unanswered one).
    pub fn challenge(&mut self) -> AuthChallenge {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let c = AuthChallenge {
            meter: self.meter,
            challenge: self.record.challenge,
            helper: self.record.helper.clone(),
            nonce,
        };
        self.pending = Some(c.clone());
        c
    }

    /// Checks an answer to the outstanding challenge; on success moves along the hash chain and
    /// returns the utility's one-way function count. The challenge is spent either way.
    pub fn verify(&mut self, r: &AuthResponse) -> Result<u64, PufError> {
        let Some(c) = self.pending.take() else {
            return refuse(PufError::NoChallenge { meter: r.meter });
        };
        let mut count = 0;
        let expected = tag(
            &mut count,
            &self.record.key,
            self.meter,
            &c,
            &r.next_helper,
            &r.next_masked,
        );
        if r.meter != self.meter || !bool::from(expected.ct_eq(&r.tag)) {
            return refuse(PufError::Rejected { meter: r.meter });
        }
        if r.next_helper.repetition.is_multiple_of(2)
            || r.next_helper.offset.len() != response_len(r.next_helper.repetition)
        {
            return refuse(PufError::BadHelper {
                repetition: r.next_helper.repetition,
                len: r.next_helper.offset.len(),
                expected: response_len(r.next_helper.repetition),
            });
        }
        let next = next_challenge(&mut count, &self.record.key, &c.challenge);
        let m = mask(&mut count, &self.record.key, &c.nonce);
        let mut k = r.next_masked;
        for (a, b) in k.iter_mut().zip(m) {
            *a ^= b;
        }
        self.record = Record {
            challenge: next,
            helper: r.next_helper.clone(),
            key: SymmetricKey::from_bytes(k),
        };
        self.rounds += 1;
        Ok(count)
    }

    /// Successful authentications so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn device(secret: u8, flip: f64, seed: u64) -> EmulatedPuf {
        EmulatedPuf::new([secret; 32], flip, seed).unwrap()
    }

    #[test]
    fn noise_is_at_the_requested_rate_and_the_extractor_corrects_it() {
        let mut puf = device(1, 0.05, 7);
        let quiet = device(1, 0.0, 0);
        let c = [3u8; CHALLENGE_LEN];
        let len = response_len(DEFAULT_REPETITION);
        let ideal = quiet.ideal(&c, len);
        let noisy = puf.respond(&c, len);
        let flips: u32 = ideal
            .iter()
            .zip(noisy.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        // 1920 bits at 5 %: about 96 flips; far from 0 and from half.
        assert!((50..150).contains(&flips), "{flips} flips");
        let mut rng = StdRng::seed_from_u64(1);
        let (s, helper) = generate(&ideal, DEFAULT_REPETITION, &mut rng).unwrap();
        assert_eq!(reproduce(&noisy, &helper).unwrap(), s);
        // Another device's response does not decode to the secret.
        let other = device(2, 0.0, 0).ideal(&c, len);
        assert_ne!(reproduce(&other, &helper).unwrap(), s);
        // Bad shapes are errors.
        assert!(reproduce(&noisy[..10], &helper).is_err());
        assert!(generate(&ideal, 8, &mut rng).is_err());
        assert!(EmulatedPuf::new([0; 32], 0.5, 0).is_err());
    }

    #[test]
    fn genuine_meter_authenticates_along_the_chain() {
        let mut puf = device(1, 0.05, 11);
        let mut v = PufVerifier::enrol(7, &mut puf, DEFAULT_REPETITION, 5).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        let mut challenges = Vec::new();
        for _ in 0..20 {
            let c = v.challenge();
            challenges.push(c.challenge);
            let r = respond(&mut puf, &c, &mut rng).unwrap();
            assert_eq!(r.cost.messages, 2);
            assert_eq!(r.cost.puf_evals, 2);
            assert_eq!(r.cost.meter_one_way, 5);
            assert_eq!(v.verify(&r).unwrap(), 3);
        }
        assert_eq!(v.rounds(), 20);
        challenges.sort_unstable();
        challenges.dedup();
        assert_eq!(challenges.len(), 20, "a challenge was used twice");
    }

    #[test]
    fn other_device_replay_and_excess_noise_are_rejected() {
        let mut puf = device(1, 0.02, 11);
        let mut v = PufVerifier::enrol(7, &mut puf, DEFAULT_REPETITION, 5).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        let before = refused();

        // A clone with another device secret.
        let mut fake = device(9, 0.02, 3);
        let c = v.challenge();
        let r = respond(&mut fake, &c, &mut rng).unwrap();
        assert_eq!(v.verify(&r), Err(PufError::Rejected { meter: 7 }));

        // A genuine answer, then the same answer replayed: once with no challenge outstanding,
        // once against a fresh challenge.
        let c = v.challenge();
        let r = respond(&mut puf, &c, &mut rng).unwrap();
        v.verify(&r).unwrap();
        assert_eq!(v.verify(&r), Err(PufError::NoChallenge { meter: 7 }));
        let _ = v.challenge();
        assert_eq!(v.verify(&r), Err(PufError::Rejected { meter: 7 }));

        // The genuine device still authenticates after the rejections.
        let c = v.challenge();
        let r = respond(&mut puf, &c, &mut rng).unwrap();
        v.verify(&r).unwrap();

        // The genuine device with noise far above what repetition 15 corrects.
        let mut worn = EmulatedPuf::new([1; 32], 0.45, 4).unwrap();
        let c = v.challenge();
        let r = respond(&mut worn, &c, &mut rng).unwrap();
        assert_eq!(v.verify(&r), Err(PufError::Rejected { meter: 7 }));
        assert!(refused() >= before + 4);
    }
}
