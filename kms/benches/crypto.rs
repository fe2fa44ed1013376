//! Cost of the KMS's public-key and envelope primitives, each next to a SHA-256 baseline of the
//! same bytes measured in the same run (ratios are what to compare across machines).
//!
//! Run: `cargo bench -p amicn-kms --bench crypto` (add `-- --measurement-time 2` for a quick pass).

use std::hint::black_box;
use std::time::Duration;

use amicn_kms::SymmetricKey;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::envelope::{EnvelopeKey, Purpose};
use amicn_kms::establish::{EphemeralAgreement, Role};
use amicn_kms::ibe::Pkg;
use amicn_kms::identity::{KeyPair, PublicKey, verify_batch, verify_data};
use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
use amicn_tlv::{Data, Name};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

fn name(s: &str) -> Name {
    Name::from_uri(s).unwrap_or_default()
}

fn signing(c: &mut Criterion) {
    let key = KeyPair::generate(&name("/u/ami/meter/1"));
    let pk = key.public_key();
    let mut data = Data::new(
        name("/u/ami/meter/1/reading/t=1"),
        Bytes::from(vec![7u8; 100]),
    );
    let wire = key.sign_data(&mut data).unwrap_or_default();
    let decoded = Data::decode(wire).unwrap_or_default();
    let portion = decoded.signed_portion();

    let mut g = c.benchmark_group("signature");
    g.bench_function("sha256_signed_portion(baseline)", |b| {
        b.iter(|| Sha256::digest(black_box(&portion[..])))
    });
    g.bench_function("ed25519_sign_data", |b| {
        b.iter(|| {
            let mut d = data.clone();
            key.sign_data(black_box(&mut d))
        })
    });
    g.bench_function("ed25519_verify_data", |b| {
        b.iter(|| verify_data(black_box(&decoded), &pk))
    });

    // Full validation of the same Data: policy, 2-certificate chain to an anchor, signature.
    // The chain is verified once and then served from the validator's cache.
    let root = KeyPair::generate(&name("/u"));
    let v = Validity::starting_now(1_795_564_800, 365 * 86_400);
    let anchor = Certificate::self_signed(&root, 1, v).ok();
    let kms = KeyPair::generate(&name("/u/ami/KMS"));
    let mut store = CertStore::new();
    if let (Some(anchor), Ok(kms_cert), Ok(meter_cert)) = (
        anchor,
        Certificate::issue(kms.key_name(), kms.public_key(), &root, b"root", 1, v),
        Certificate::issue(key.key_name(), pk, &kms, b"kms", 1, v),
    ) {
        store.insert(kms_cert);
        store.insert(meter_cert);
        if let Ok(policy) = TrustPolicy::ami(&name("/u")) {
            let mut validator = Validator::new(policy);
            if validator.add_anchor(anchor).is_ok() {
                let now_ms = 1_795_600_000_000;
                if let Err(e) = validator.validate_data(&decoded, &store, now_ms) {
                    eprintln!("benchmark setup: validation fails: {e}");
                }
                g.bench_function("validate_data_chain_cached", |b| {
                    b.iter(|| validator.validate_data(black_box(&decoded), &store, now_ms))
                });
                let uncached = validator.clone().with_chain_cache(0);
                g.bench_function("validate_data_chain_uncached", |b| {
                    b.iter(|| uncached.validate_data(black_box(&decoded), &store, now_ms))
                });
            }
        }
    }

    // 64 Data from 64 different meters, verified one by one and as one batch.
    let keys: Vec<KeyPair> = (0..64)
        .map(|i| KeyPair::generate(&name(&format!("/u/ami/meter/{i}"))))
        .collect();
    let datas: Vec<Data> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut d = Data::new(
                name(&format!("/u/ami/meter/{i}/reading/t=1")),
                Bytes::from(vec![i as u8; 100]),
            );
            Data::decode(k.sign_data(&mut d).unwrap_or_default()).unwrap_or_default()
        })
        .collect();
    let pks: Vec<PublicKey> = keys.iter().map(KeyPair::public_key).collect();
    let portions: Vec<Bytes> = datas.iter().map(Data::signed_portion).collect();
    g.throughput(Throughput::Elements(64));
    g.bench_function("sha256_64_portions(baseline)", |b| {
        b.iter(|| {
            for p in &portions {
                black_box(Sha256::digest(&p[..]));
            }
        })
    });
    g.bench_function("ed25519_verify_64_single", |b| {
        b.iter(|| {
            for (d, k) in datas.iter().zip(&pks) {
                let _ = black_box(verify_data(d, k));
            }
        })
    });
    g.bench_function("ed25519_verify_64_batch", |b| {
        b.iter(|| {
            let items: Vec<(&[u8], &[u8], &PublicKey)> = portions
                .iter()
                .zip(&datas)
                .zip(&pks)
                .map(|((p, d), k)| (&p[..], &d.signature_value[..], k))
                .collect();
            verify_batch(black_box(&items))
        })
    });
    g.finish();
}

fn agreement(c: &mut Criterion) {
    let meter = name("/u/ami/meter/1");
    let kms = name("/u/ami/KMS");
    let salt = [9u8; 32];
    let peer = EphemeralAgreement::generate().public_key();
    let mut g = c.benchmark_group("establish");
    g.bench_function("sha256_64B(baseline)", |b| {
        b.iter(|| Sha256::digest(black_box(&salt[..])))
    });
    let secret = x25519_dalek::StaticSecret::random_from_rng(&mut rand::rng());
    let peer_pk = x25519_dalek::PublicKey::from(peer);
    g.bench_function("x25519_diffie_hellman", |b| {
        b.iter(|| secret.diffie_hellman(black_box(&peer_pk)))
    });
    g.bench_function("x25519_generate+agree+hkdf", |b| {
        b.iter(|| {
            EphemeralAgreement::generate().agree(
                Role::Initiator,
                &meter,
                &kms,
                black_box(&peer),
                &salt,
            )
        })
    });
    // Identity-based agreement (one pairing and one hash-to-curve per side, no message), in the
    // same group so the ratio to X25519 + HKDF is read off one run.
    let pkg = Pkg::generate(&mut rand::rng());
    let mdms = name("/u/ami/mdms");
    let meter_key = pkg.extract(&meter);
    let mdms_key = pkg.extract(&mdms);
    g.bench_function("ibe_sok_meter_agree(pairing+h2c+hkdf)", |b| {
        b.iter(|| meter_key.agree(black_box(&mdms)))
    });
    g.bench_function("ibe_sok_mdms_agree(pairing+h2c+hkdf)", |b| {
        b.iter(|| mdms_key.agree(black_box(&meter)))
    });
    g.bench_function("ibe_pkg_extract", |b| {
        b.iter(|| pkg.extract(black_box(&meter)))
    });
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let key = SymmetricKey::generate();
    let key_name = name("/u/ami/meter/1/KEK/v=3");
    let ek = EnvelopeKey::derive(&key, &key_name, Purpose::Content);
    let data_name = name("/u/ami/meter/1/reading/t=1");
    let mut g = c.benchmark_group("envelope");
    for size in [100usize, 8192] {
        let pt = vec![0x5au8; size];
        let sealed = ek.seal(&data_name, &pt).unwrap_or_default();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("sha256_{size}B(baseline)"), |b| {
            b.iter(|| Sha256::digest(black_box(&pt[..])))
        });
        g.bench_function(format!("seal_{size}B"), |b| {
            b.iter(|| ek.seal(&data_name, black_box(&pt)))
        });
        g.bench_function(format!("open_{size}B"), |b| {
            b.iter(|| ek.open(&data_name, black_box(&sealed)))
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("derive_subkey", |b| {
        b.iter(|| EnvelopeKey::derive(black_box(&key), &key_name, Purpose::Content))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = signing, agreement, envelope
}
criterion_main!(benches);
