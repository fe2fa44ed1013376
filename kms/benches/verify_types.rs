//! Verification rate per NDN signature type, each against a SHA-256 of the same signed portion
//! measured in the same run: the ratios, not the absolute rates, are what carry across machines.
//!
//! Every packet is an 8000-byte segment (the size `amicn put` and `ndnputchunks` use). Rounds
//! are interleaved (every type once per round, five rounds) and the median round is reported,
//! so a burst of load from other processes hits all types alike.
//!
//! Run: `cargo bench -p amicn-kms --bench verify_types`

use std::hint::black_box;
use std::time::{Duration, Instant};

use amicn_kms::SymmetricKey;
use amicn_kms::identity::{KeyPair, verify_data_digest, verify_data_hmac};
use amicn_kms::signature::{
    DigestSigner, EcdsaSigner, HmacSigner, Signer, VerifyKey, sign_data, verify_data_batch,
    verify_data_key,
};
use amicn_tlv::{Data, Name};
use bytes::Bytes;
use sha2::{Digest, Sha256};

const SEGMENT: usize = 8000;
const ROUNDS: usize = 5;
const ROUND_TIME: Duration = Duration::from_millis(300);

fn name(s: &str) -> Name {
    Name::from_uri(s).unwrap_or_default()
}

fn segment(i: usize) -> Data {
    Data::new(
        name(&format!("/u/file/v=1/seg={i}")),
        Bytes::from(vec![(i % 251) as u8; SEGMENT]),
    )
}

fn signed(signer: &dyn Signer, i: usize) -> Data {
    Data::decode(sign_data(signer, &mut segment(i))).unwrap_or_default()
}

/// Packets verified per second by `f`, which verifies `per_call` packets per call.
fn rate(per_call: usize, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < ROUND_TIME {
        f();
        calls += 1;
    }
    (calls as f64 * per_call as f64) / start.elapsed().as_secs_f64()
}

/// An RSA 2048 PKCS#1 v1.5 signature (SignatureType 1), as ndn-cxx makes: amicn verifies RSA
/// but does not sign with it, so the bench signs with the `rsa` crate directly.
fn rsa_signed(key: &rsa::PrivateKey, i: usize) -> Data {
    let mut d = segment(i);
    let info =
        amicn_tlv::SignatureInfo::with_key(amicn_tlv::sig::SHA256_WITH_RSA, name("/u/KEY/r"));
    let wire = d.sign_with(info, |portion| {
        key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(portion))
            .unwrap_or_default()
    });
    Data::decode(wire).unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run one quick round.
    let quick = !std::env::args().any(|a| a == "--bench");
    let ed = KeyPair::generate(&name("/u"));
    let ec = EcdsaSigner::generate(name("/u/KEY/e"));
    let hmac_key = SymmetricKey::from_bytes([5u8; 32]);
    let hmac = HmacSigner::new(hmac_key.duplicate(), name("/u/KEY/h"));
    let mut rng = rand::rng();
    let Ok(rsa_key) = rsa::PrivateKey::new(&mut rng, 2048) else {
        eprintln!("RSA key generation failed");
        return;
    };
    let rsa_pub = VerifyKey::Rsa(Box::new(rsa_key.to_public_key()));
    let (ed_pub, ec_pub) = (VerifyKey::Ed25519(ed.public_key()), ec.public_key());

    let digest = signed(&DigestSigner, 0);
    let hm = signed(&hmac, 0);
    let ed1 = signed(&ed, 0);
    let ec1 = signed(&ec, 0);
    let rs1 = rsa_signed(&rsa_key, 0);
    let ed_batch: Vec<Data> = (0..64).map(|i| signed(&ed, i)).collect();
    let ec_batch: Vec<Data> = (0..64).map(|i| signed(&ec, i)).collect();
    for (d, k) in [(&ed1, &ed_pub), (&ec1, &ec_pub), (&rs1, &rsa_pub)] {
        if verify_data_key(d, k).is_err() {
            eprintln!("{} signature does not verify", k.algorithm());
            return;
        }
    }
    let portion = ed1.signed_portion();

    type Case<'a> = (&'a str, usize, Box<dyn FnMut() + 'a>);
    let mut cases: Vec<Case<'_>> = vec![
        (
            "SHA-256 of the signed portion (baseline)",
            1,
            Box::new(|| {
                black_box(Sha256::digest(black_box(&portion[..])));
            }),
        ),
        (
            "DigestSha256 (0)",
            1,
            Box::new(|| {
                black_box(verify_data_digest(black_box(&digest)).is_ok());
            }),
        ),
        (
            "HmacWithSha256 (4)",
            1,
            Box::new(|| {
                black_box(verify_data_hmac(black_box(&hm), &hmac_key).is_ok());
            }),
        ),
        (
            "Ed25519 (5), single",
            1,
            Box::new(|| {
                black_box(verify_data_key(black_box(&ed1), &ed_pub).is_ok());
            }),
        ),
        (
            "Ed25519 (5), batch of 64",
            64,
            Box::new(|| {
                let items: Vec<(&Data, &VerifyKey)> =
                    ed_batch.iter().map(|d| (d, &ed_pub)).collect();
                black_box(verify_data_batch(&items));
            }),
        ),
        (
            "ECDSA P-256 (3), single",
            1,
            Box::new(|| {
                black_box(verify_data_key(black_box(&ec1), &ec_pub).is_ok());
            }),
        ),
        (
            "ECDSA P-256 (3), batch of 64",
            64,
            Box::new(|| {
                let items: Vec<(&Data, &VerifyKey)> =
                    ec_batch.iter().map(|d| (d, &ec_pub)).collect();
                black_box(verify_data_batch(&items));
            }),
        ),
        (
            "RSA 2048 (1), single",
            1,
            Box::new(|| {
                black_box(verify_data_key(black_box(&rs1), &rsa_pub).is_ok());
            }),
        ),
    ];
    let rounds = if quick { 1 } else { ROUNDS };
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, per_call, f)) in cases.iter_mut().enumerate() {
            rates[i].push(rate(*per_call, f.as_mut()));
        }
    }
    let median: Vec<f64> = rates
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    println!(
        "Verification of one {SEGMENT}-byte segment ({} B signed portion), median of {rounds} round(s):\n",
        portion.len()
    );
    println!("| check | packets/s | time relative to SHA-256 of the same bytes |");
    println!("| --- | ---: | ---: |");
    for ((label, _, _), r) in cases.iter().zip(&median) {
        println!("| {label} | {r:.0} | {:.2}x |", median[0] / r);
    }
}
