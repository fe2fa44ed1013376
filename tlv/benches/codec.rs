//! Codec throughput. Every group measures a plain copy of the same packet bytes
//! (`Bytes::copy_from_slice`) in the same run, so the figures to compare are ratios to that
//! baseline, not absolute times.
//!
//! The shared build machine is often oversubscribed, which inflates means by preemption. The
//! `*-min` variants report, per iteration, the fastest of many 200-iteration batches: a batch
//! that ran without being descheduled approximates the cost on an idle core.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use amicn_tlv::{Data, Interest, Name, SignatureInfo};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};

const NAME: &str = "/ami/region-3/feeder-12/meter-4711/power/seq=42";

fn shared(b: Bytes) -> Bytes {
    let mut m = BytesMut::with_capacity(b.len() + 16);
    m.extend_from_slice(&b);
    let _rest = m.split_off(b.len());
    m.freeze()
}

/// Time of `iters` iterations, extrapolated from the fastest 200-iteration batch.
fn min_of_batches(iters: u64, mut f: impl FnMut()) -> Duration {
    const BATCH: u64 = 200;
    let mut best = f64::MAX;
    let mut done = 0;
    while done < iters {
        let n = BATCH.min(iters - done);
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
        done += n;
    }
    Duration::from_secs_f64(best * iters as f64)
}

fn interest() -> Interest {
    let mut i = Interest::new(Name::from_uri(NAME).unwrap());
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    i.nonce = Some(0xDEADBEEF);
    i.lifetime_ms = Some(2000);
    i.hop_limit = Some(32);
    i
}

fn data(content: usize) -> Data {
    let mut d = Data::new(Name::from_uri(NAME).unwrap(), vec![0x5A; content]);
    d.meta_info.freshness_period_ms = Some(1000);
    d.sign_with(
        SignatureInfo::with_key(
            amicn_tlv::sig::ED25519,
            Name::from_uri("/ami/meter-4711/KEY/1").unwrap(),
        ),
        |_| vec![7; 64],
    );
    d
}

fn bench_interest(c: &mut Criterion) {
    let i = interest();
    let wire = shared(i.encode());
    let mut g = c.benchmark_group(format!("interest-6comp-{}B", wire.len()));
    g.bench_function("baseline-memcpy", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&wire[..])))
    });
    g.bench_function("decode", |b| {
        b.iter(|| Interest::decode(black_box(wire.clone())).unwrap())
    });
    g.bench_function("baseline-memcpy-min", |b| {
        b.iter_custom(|n| {
            min_of_batches(n, || {
                drop(black_box(Bytes::copy_from_slice(black_box(&wire[..]))))
            })
        })
    });
    g.bench_function("decode-min", |b| {
        b.iter_custom(|n| {
            min_of_batches(n, || {
                drop(black_box(
                    Interest::decode(black_box(wire.clone())).unwrap(),
                ))
            })
        })
    });
    g.bench_function("encode", |b| b.iter(|| black_box(&i).encode()));
    g.finish();
}

fn bench_data(c: &mut Criterion) {
    for size in [100usize, 8000] {
        let d = data(size);
        let wire = shared(d.encode());
        let mut g = c.benchmark_group(format!("data-{size}B-content-{}B", wire.len()));
        g.bench_function("baseline-memcpy", |b| {
            b.iter(|| Bytes::copy_from_slice(black_box(&wire[..])))
        });
        g.bench_function("decode", |b| {
            b.iter(|| Data::decode(black_box(wire.clone())).unwrap())
        });
        g.bench_function("baseline-memcpy-min", |b| {
            b.iter_custom(|n| {
                min_of_batches(n, || {
                    drop(black_box(Bytes::copy_from_slice(black_box(&wire[..]))))
                })
            })
        });
        g.bench_function("decode-min", |b| {
            b.iter_custom(|n| {
                min_of_batches(n, || {
                    drop(black_box(Data::decode(black_box(wire.clone())).unwrap()))
                })
            })
        });
        g.bench_function("encode", |b| b.iter(|| black_box(&d).encode()));
        g.finish();
    }
}

fn bench_name(c: &mut Criterion) {
    let name = Name::from_uri(NAME).unwrap();
    let value = Bytes::copy_from_slice(name.value_wire());
    let mut g = c.benchmark_group("name-6comp");
    g.bench_function("baseline-memcpy-uri", |b| {
        b.iter(|| String::from(black_box(NAME)))
    });
    g.bench_function("uri-parse", |b| {
        b.iter(|| Name::from_uri(black_box(NAME)).unwrap())
    });
    g.bench_function("uri-print", |b| b.iter(|| black_box(&name).to_string()));
    g.bench_function("baseline-memcpy-value", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&value[..])))
    });
    // Decoding a Name computes every prefix hash once; reading them afterwards is free.
    g.bench_function("decode-with-all-prefix-hashes", |b| {
        b.iter(|| {
            Name::from_value(black_box(value.clone()))
                .unwrap()
                .prefix_hash(6)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_interest, bench_data, bench_name);
criterion_main!(benches);
