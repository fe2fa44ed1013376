//! Forwarding-core benchmarks, each reported next to a baseline measured in the same run.
//!
//! - `pipeline/decode_only`: decoding the Interest and the Data of one exchange (the floor any
//!   forwarder pays); `pipeline/cs_miss`: Interest in → Interest upstream → Data in → Data
//!   downstream through the whole core (PIT insert, FIB LPM, strategy, CS insert and eviction);
//!   `pipeline/cs_miss_prefix`: the same with CanBePrefix Interests, whose CS lookups use (and
//!   keep up to date) the name-ordered index that exact lookups skip;
//!   `pipeline/cs_hit`: Interest in → Data out of the Content Store.
//! - `fib_lpm/1M_routes`: longest-prefix match against a FIB of 1,000,000 prefixes.
//! - `face_removal/pit_100k` against `face_removal/pit_empty`: a face connects, leaves one
//!   Interest pending and goes away while other faces hold 100,000 PIT entries (or none);
//!   removal visits only the entries the face took part in, so the two should be close.
//! - Memory per PIT entry, per CS entry (beyond the cached packet) and per FIB entry with
//!   1,000,000 entries each, counted by an instrumented allocator and printed before the runs.
//!
//! Run: `cargo bench -p amicn-forwarder --bench core` (add `-- --quick` for a short run).

use std::alloc::System;
use std::hint::black_box;
use std::time::Duration;

use amicn_forwarder::core::{
    Config, FaceId, FaceOptions, FaceScope, Forwarder, Time, UnsolicitedPolicy,
};
use amicn_tlv::{Component, Data, Interest, Name, decode_packet};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CONTENT: [u8; 100] = [0x5a; 100];

fn meter_name(i: u32) -> Name {
    Name::from_uri("/example-utility/ami/meter")
        .unwrap_or_default()
        .append(Component::generic(format!("m{}", i % 4096).into_bytes()))
        .append(Component::generic(b"reading".to_vec()))
        .append(Component::timestamp(u64::from(i)))
}

fn interest_wire(name: &Name, nonce: u32) -> Bytes {
    interest_wire_cbp(name, nonce, false)
}

fn interest_wire_cbp(name: &Name, nonce: u32, can_be_prefix: bool) -> Bytes {
    let mut i = Interest::new(name.clone());
    i.nonce = Some(nonce);
    i.can_be_prefix = can_be_prefix;
    i.lifetime_ms = Some(4000);
    i.encode()
}

fn data_wire(name: &Name) -> Bytes {
    let mut d = Data::new(name.clone(), Bytes::from_static(&CONTENT));
    d.meta_info.freshness_period_ms = Some(10_000);
    d.sign_digest_sha256()
}

struct Rig {
    fw: Forwarder,
    consumer: FaceId,
    producer: FaceId,
}

fn rig(config: Config) -> Rig {
    let mut fw = Forwarder::new(config);
    let consumer = fw.add_face(FaceOptions {
        scope: FaceScope::Local,
        ..Default::default()
    });
    let producer = fw.add_face(FaceOptions {
        scope: FaceScope::Local,
        ..Default::default()
    });
    if let Ok(prefix) = Name::from_uri("/example-utility/ami") {
        let _ = fw.fib_add_nexthop(&prefix, producer, 0);
    }
    Rig {
        fw,
        consumer,
        producer,
    }
}

fn drain(fw: &mut Forwarder) -> usize {
    let mut n = 0;
    while let Some((_, p)) = fw.poll_transmit() {
        n += p.len();
    }
    n
}

fn pipeline(c: &mut Criterion) {
    const N: u32 = 1 << 16;
    let packets: Vec<(Bytes, Bytes)> = (0..N)
        .map(|i| {
            let n = meter_name(i);
            (
                interest_wire(&n, i.wrapping_mul(2_654_435_761)),
                data_wire(&n),
            )
        })
        .collect();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));

    let mut k = 0usize;
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let (i, d) = &packets[k % packets.len()];
            k += 1;
            let a = decode_packet(i.clone()).is_ok();
            let b2 = decode_packet(d.clone()).is_ok();
            black_box((a, b2))
        })
    });

    // CS capacity far below the working set: every Interest misses and every Data is
    // inserted and evicts another.
    let mut r = rig(Config {
        cs_capacity_packets: 1024,
        ..Config::default()
    });
    let mut now = Time::from_millis(1);
    let mut k = 0usize;
    g.bench_function("cs_miss", |b| {
        b.iter(|| {
            let (i, d) = &packets[k % packets.len()];
            k += 1;
            now = now.saturating_add(Duration::from_micros(1));
            r.fw.on_packet(now, r.consumer, i.clone());
            let up = r.fw.poll_transmit();
            r.fw.on_packet(now, r.producer, d.clone());
            let down = r.fw.poll_transmit();
            r.fw.on_timeout(now);
            black_box((up.is_some(), down.is_some()))
        })
    });
    assert_eq!(
        r.fw.counters().n_satisfied_interests,
        r.fw.counters().n_in_interests
    );
    assert_eq!(r.fw.cs_info().n_hits, 0);

    let prefix_interests: Vec<Bytes> = (0..N)
        .map(|i| interest_wire_cbp(&meter_name(i), i.wrapping_mul(2_654_435_761), true))
        .collect();
    let mut r = rig(Config {
        cs_capacity_packets: 1024,
        ..Config::default()
    });
    let mut k = 0usize;
    g.bench_function("cs_miss_prefix", |b| {
        b.iter(|| {
            let i = &prefix_interests[k % packets.len()];
            let (_, d) = &packets[k % packets.len()];
            k += 1;
            now = now.saturating_add(Duration::from_micros(1));
            r.fw.on_packet(now, r.consumer, i.clone());
            let up = r.fw.poll_transmit();
            r.fw.on_packet(now, r.producer, d.clone());
            let down = r.fw.poll_transmit();
            r.fw.on_timeout(now);
            black_box((up.is_some(), down.is_some()))
        })
    });
    assert_eq!(
        r.fw.counters().n_satisfied_interests,
        r.fw.counters().n_in_interests
    );
    assert_eq!(r.fw.cs_info().n_hits, 0);
    drop(prefix_interests);

    let mut r = rig(Config::default());
    let hot = 1024usize;
    for (i, d) in packets.iter().take(hot) {
        r.fw.on_packet(now, r.consumer, i.clone());
        r.fw.on_packet(now, r.producer, d.clone());
    }
    drain(&mut r.fw);
    let mut k = 0usize;
    g.bench_function("cs_hit", |b| {
        b.iter(|| {
            let (i, _) = &packets[k % hot];
            k += 1;
            r.fw.on_packet(now, r.consumer, i.clone());
            black_box(r.fw.poll_transmit().is_some())
        })
    });
    assert_eq!(
        r.fw.counters().n_out_interests,
        hot as u64,
        "all served from the CS"
    );
    g.finish();
}

fn route_name(a: u32, b: u32) -> Name {
    Name::from_uri("/example-utility")
        .unwrap_or_default()
        .append(Component::generic(format!("region{a}").into_bytes()))
        .append(Component::generic(format!("feeder{b}").into_bytes()))
}

fn fib_with_1m_routes() -> (Forwarder, Vec<Name>) {
    let mut fw = Forwarder::new(Config::default());
    let face = fw.add_face(FaceOptions::default());
    fw.fib_reserve(1_000_000);
    for a in 0..1000 {
        for b in 0..1000 {
            let _ = fw.fib_add_nexthop(&route_name(a, b), face, 1);
        }
    }
    let queries: Vec<Name> = (0..4096u32)
        .map(|i| {
            // Seven components, four of them below the matching route; one in 16 misses.
            let b = if i % 16 == 0 {
                5000 + i
            } else {
                (i * 7) % 1000
            };
            route_name((i * 13) % 1000, b)
                .append(Component::generic(b"meter".to_vec()))
                .append(Component::generic(format!("m{i}").into_bytes()))
                .append(Component::sequence_num(u64::from(i)))
                .append(Component::segment(0))
        })
        .collect();
    (fw, queries)
}

fn fib_lpm(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib_lpm");
    g.throughput(Throughput::Elements(1));
    // Built on first use so a filtered-out run does not pay for (or profile) the build.
    let mut state: Option<(Forwarder, Vec<Name>)> = None;
    let mut k = 0usize;
    g.bench_function("1M_routes", |b| {
        let (fw, queries) = state.get_or_insert_with(fib_with_1m_routes);
        b.iter(|| {
            let q = &queries[k % queries.len()];
            k += 1;
            black_box(fw.fib_lookup(q).map(|(d, _)| d))
        })
    });
    g.finish();
}

fn net_bytes(r: &Region<'_, System>) -> i64 {
    let s = r.change();
    // stats_alloc already folds realloc growth/shrink into bytes_(de)allocated;
    // bytes_reallocated repeats it and must not be added again.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Allocator bytes per entry with 1 M entries in each table.
fn memory_per_entry() {
    const M: u32 = 1_000_000;
    // FIB.
    let mut fw = Forwarder::new(Config::default());
    let face = fw.add_face(FaceOptions::default());
    let region = Region::new(GLOBAL);
    for a in 0..1000 {
        for b in 0..1000 {
            let _ = fw.fib_add_nexthop(&route_name(a, b), face, 1);
        }
    }
    let fib = net_bytes(&region) as f64 / f64::from(M);
    let fib_key = route_name(500, 500).value_wire().len();
    drop(fw);

    // PIT: 1 M pending Interests toward an upstream that never answers. The same loop with
    // a PIT limit of 0 (every Interest dropped) measures what the harness itself keeps.
    let mut pit_net = [0f64; 2];
    let mut pit_wire = 0f64;
    for (k, cap) in [0usize, 2_000_000].into_iter().enumerate() {
        let cfg = Config {
            pit_max_entries: cap,
            pit_max_per_face: cap,
            pit_max_bytes: usize::MAX,
            pit_max_bytes_per_face: usize::MAX,
            cs_capacity_packets: 0,
            ..Config::default()
        };
        let mut r = rig(cfg);
        let mut wire_bytes = 0usize;
        let region = Region::new(GLOBAL);
        for i in 0..M {
            let w = interest_wire(&meter_name(i), i);
            wire_bytes += w.len();
            r.fw.on_packet(Time::from_millis(1), r.consumer, w);
            if i % 1024 == 0 {
                drain(&mut r.fw);
            }
        }
        drain(&mut r.fw);
        pit_net[k] = net_bytes(&region) as f64 / f64::from(M);
        pit_wire = wire_bytes as f64 / f64::from(M);
        assert_eq!(r.fw.pit_len(), cap.min(M as usize));
    }
    let pit_total = pit_net[1] - pit_net[0];

    // CS: 1 M cached Data (admitted as unsolicited to isolate the CS).
    let cfg = Config {
        cs_capacity_packets: M as usize,
        cs_capacity_bytes: usize::MAX,
        unsolicited: UnsolicitedPolicy::AdmitAll,
        ..Config::default()
    };
    let mut r = rig(cfg);
    let mut wire_bytes = 0usize;
    let region = Region::new(GLOBAL);
    for i in 0..M {
        let w = data_wire(&meter_name(i));
        wire_bytes += w.len();
        r.fw.on_packet(Time::from_millis(1), r.producer, w);
    }
    let cs_total = net_bytes(&region) as f64 / f64::from(M);
    let cs_wire = wire_bytes as f64 / f64::from(M);
    assert_eq!(r.fw.cs_info().n_entries, M as usize);
    drop(r);

    println!("memory per entry with 1,000,000 entries (allocator bytes):");
    println!("  FIB entry  {fib:7.1} B  (prefix TLV-VALUE of {fib_key} B copied into the entry)");
    println!(
        "  PIT entry  {pit_total:7.1} B  = {pit_wire:.1} B retained Interest packet + {:.1} B overhead (harness baseline {:.1} B subtracted)",
        pit_total - pit_wire,
        pit_net[0]
    );
    println!(
        "  CS entry   {cs_total:7.1} B  = {cs_wire:.1} B cached Data packet + {:.1} B overhead",
        cs_total - cs_wire
    );
    println!(
        "  sizes: Interest {} B, Name {} B (inline component index)",
        std::mem::size_of::<Interest>(),
        std::mem::size_of::<Name>()
    );
}

/// Runs the memory measurement unless a benchmark filter that excludes it was given (it
/// allocates a few GB and would distort profiles of the other benchmarks).
fn memory(_: &mut Criterion) {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(a) = args.next() {
        if a == "--profile-time" || a == "--save-baseline" || a == "--baseline" {
            args.next();
        } else if !a.starts_with('-') {
            filter = Some(a);
        }
    }
    if filter.is_none_or(|f| "memory".contains(f.as_str())) {
        memory_per_entry();
    }
}

fn face_removal(c: &mut Criterion) {
    let mut g = c.benchmark_group("face_removal");
    g.throughput(Throughput::Elements(1));
    for (label, held) in [("pit_empty", 0u32), ("pit_100k", 100_000)] {
        let mut r = rig(Config {
            pit_max_entries: 200_000,
            pit_max_per_face: 200_000,
            pit_max_bytes: usize::MAX / 2,
            pit_max_bytes_per_face: usize::MAX / 2,
            ..Config::default()
        });
        for i in 0..held {
            r.fw.on_packet(Time::ZERO, r.consumer, interest_wire(&meter_name(i), i));
        }
        assert_eq!(r.fw.pit_len(), held as usize, "the PIT holds every entry");
        while r.fw.poll_transmit().is_some() {}
        let mut n = held;
        g.bench_function(label, |b| {
            b.iter(|| {
                let f = r.fw.add_face(FaceOptions::default());
                n = n.wrapping_add(1);
                r.fw.on_packet(Time::ZERO, f, interest_wire(&meter_name(n), n));
                black_box(r.fw.remove_face(f));
                while r.fw.poll_transmit().is_some() {}
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = memory, pipeline, fib_lpm, face_removal
}
criterion_main!(benches);
