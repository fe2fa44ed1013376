//! The survey's unit costs (Table I), measured on this machine.
//!
//! | symbol | what is timed |
//! | --- | --- |
//! | C_P | one BLS12-381 pairing `e(P, Q)` (bls12_381) |
//! | C_M | one BLS12-381 G1 scalar multiplication |
//! | C_ε | sealing one 32-byte key: XChaCha20-Poly1305 under a named wrap (the KMS's wrap) |
//! | C_r | drawing one 32-byte key from the KMS's key generator (ChaCha-based `StdRng`) |
//! | C_f | one blinding `g(k) = SHA-256(label ‖ k)` (the OFT one-way function) |
//!
//! Beside them, one X25519 + HKDF-SHA256 user-key establishment (KMS side: ephemeral key pair,
//! agreement, derivation) and one identity-based agreement of [`crate::ibe`] (MDMS side:
//! hash-to-curve of the meter's name, one pairing, HKDF) for comparison with the survey's
//! `A = C_P + C_M`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bls12_381::{G1Affine, G1Projective, G2Affine, Scalar, pairing};
use hkdf::Hkdf;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;

use super::skm;
use crate::graph::oft::blind;
use crate::graph::{WrapMode, wrap};
use crate::ibe::Pkg;

/// Unit costs in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct UnitCosts {
    /// C_P: one pairing.
    pub pairing: f64,
    /// C_M: one scalar multiplication.
    pub mult: f64,
    /// C_ε: one encryption of a key.
    pub encrypt: f64,
    /// C_r: generating one key.
    pub keygen: f64,
    /// C_f: one one-way function evaluation.
    pub one_way: f64,
    /// One X25519 + HKDF user-key establishment at the KMS.
    pub x25519_hkdf: f64,
    /// One identity-based (SOK, BLS12-381) agreement at the MDMS.
    pub ibe_agree: f64,
}

impl UnitCosts {
    /// The survey's `A = C_P + C_M`.
    pub fn a(&self) -> f64 {
        self.pairing + self.mult
    }

    /// The survey's `B = C_ε + C_f`.
    pub fn b(&self) -> f64 {
        self.encrypt + self.one_way
    }

    /// Times each operation for about `per_op` (median of three rounds).
    pub fn measure(per_op: Duration) -> UnitCosts {
        let mut rng = StdRng::seed_from_u64(7);
        let scalar = |rng: &mut StdRng| {
            let mut w = [0u8; 64];
            rng.fill_bytes(&mut w);
            Scalar::from_bytes_wide(&w)
        };
        let p = G1Affine::from(G1Affine::generator() * scalar(&mut rng));
        let q = G2Affine::from(G2Affine::generator() * scalar(&mut rng));
        let g = G1Projective::from(p);
        let s = scalar(&mut rng);
        let kek = [3u8; 32];
        let key = [4u8; 32];
        let name = "/example-utility/ami/KMS/tree/p1/node/3.17/KEK/v=9/ENCRYPTED-BY/example-utility/ami/KMS/tree/p1/node/2.34/KEK/v=9";
        let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([9u8; 32]));
        let pkg = Pkg::generate(&mut StdRng::seed_from_u64(4));
        let mdms = pkg.extract(&skm::mdms_identity());
        let meter = skm::meter_identity(17);
        UnitCosts {
            pairing: time(per_op, || {
                black_box(pairing(black_box(&p), black_box(&q)));
            }),
            mult: time(per_op, || {
                black_box(black_box(g) * black_box(s));
            }),
            encrypt: {
                let mut r = StdRng::seed_from_u64(1);
                time(per_op, || {
                    black_box(wrap::seal(
                        &mut r,
                        black_box(&kek),
                        name.to_string(),
                        WrapMode::Multicast,
                        black_box(&key),
                    ));
                })
            },
            keygen: {
                let mut r = StdRng::seed_from_u64(2);
                time(per_op, || {
                    let mut k = [0u8; 32];
                    r.fill_bytes(&mut k);
                    black_box(k);
                })
            },
            one_way: time(per_op, || {
                black_box(blind(black_box(&key)));
            }),
            x25519_hkdf: {
                let mut r = StdRng::seed_from_u64(3);
                time(per_op, || {
                    let mut sk = [0u8; 32];
                    r.fill_bytes(&mut sk);
                    let secret = x25519_dalek::StaticSecret::from(sk);
                    black_box(x25519_dalek::PublicKey::from(&secret));
                    let shared = secret.diffie_hellman(black_box(&peer));
                    let hk = Hkdf::<Sha256>::new(None, shared.as_bytes());
                    let mut out = [0u8; 32];
                    let _ = hk.expand(b"amicn ami-user-key x25519 v1", &mut out);
                    black_box(out);
                })
            },
            ibe_agree: time(per_op, || {
                let _ = black_box(mdms.agree(black_box(&meter)));
            }),
        }
    }
}

/// Nanoseconds per call of `f`: three rounds of about `budget / 3`, median.
pub fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    let round = budget / 3;
    let mut per = [0f64; 3];
    for slot in &mut per {
        let start = Instant::now();
        let mut calls = 0u64;
        while calls < 3 || start.elapsed() < round {
            for _ in 0..8 {
                f();
            }
            calls += 8;
        }
        *slot = start.elapsed().as_nanos() as f64 / calls as f64;
    }
    per.sort_by(f64::total_cmp);
    per[1]
}
