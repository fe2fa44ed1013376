//! Decoding an Interest or a Data must not touch the heap: the packet buffer is shared, names
//! keep their component index inline. Counted with an instrumented global allocator in this
//! test binary of its own.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use amicn_tlv::{Data, Interest, LpPacket, Name, SignatureInfo, decode_packet};
use bytes::Bytes;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn interest_wire() -> Bytes {
    let mut i =
        Interest::new(Name::from_uri("/ami/region-3/feeder-12/meter-4711/power/seq=42").unwrap());
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    i.nonce = Some(0xDEADBEEF);
    i.lifetime_ms = Some(2000);
    i.hop_limit = Some(32);
    i.encode()
}

fn data_wire(size: usize) -> Bytes {
    let mut d = Data::new(
        Name::from_uri("/ami/region-3/feeder-12/meter-4711/power/seq=42").unwrap(),
        vec![0x5A; size],
    );
    d.meta_info.freshness_period_ms = Some(1000);
    d.sign_with(
        SignatureInfo::with_key(
            amicn_tlv::sig::ED25519,
            Name::from_uri("/ami/meter-4711/KEY/1").unwrap(),
        ),
        |_| vec![7; 64],
    )
}

/// Buffers read from a socket are shared `Bytes` (split off a `BytesMut`); make the test buffer
/// shared the same way, so slicing it only bumps a reference count.
fn shared(b: Bytes) -> Bytes {
    let mut m = bytes::BytesMut::with_capacity(b.len() + 16);
    m.extend_from_slice(&b);
    let _other_half = m.split_off(b.len());
    m.freeze()
}

fn allocations(f: impl Fn()) -> usize {
    f(); // warm-up: any one-time lazy initialisation is not per-packet cost
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        f();
    }
    region.change().allocations
}

// Run without the libtest harness (see Cargo.toml): the counter is process-wide.
fn main() {
    // Speak just enough of the libtest listing protocol for runners such as cargo-nextest.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("decoding_does_not_allocate: test");
        }
        return;
    }
    interest_decode_does_not_allocate();
    data_decode_does_not_allocate();
    lp_wrapped_decode_does_not_allocate();
    the_counter_counts();
    println!("alloc: 0 heap allocations per Interest, Data and LpPacket decode");
}

fn interest_decode_does_not_allocate() {
    let w = shared(interest_wire());
    let n = allocations(|| {
        let i = Interest::decode(w.clone()).unwrap();
        assert_eq!(i.name.len(), 6);
        std::hint::black_box(i.name.prefix_hash(3));
    });
    assert_eq!(n, 0, "heap allocations in 100 Interest decodes");
}

fn data_decode_does_not_allocate() {
    for size in [100, 8000 - 200] {
        let w = shared(data_wire(size));
        let n = allocations(|| {
            let d = Data::decode(w.clone()).unwrap();
            assert_eq!(d.content.len(), size);
            std::hint::black_box(d.signed_portion());
        });
        assert_eq!(
            n, 0,
            "heap allocations in 100 Data decodes of {size} content bytes"
        );
    }
}

fn lp_wrapped_decode_does_not_allocate() {
    let lp = LpPacket {
        pit_token: Some(Bytes::from_static(&[1, 2, 3, 4, 5, 6])),
        congestion_mark: Some(1),
        fragment: Some(interest_wire()),
        ..LpPacket::default()
    };
    let w = shared(lp.encode());
    let n = allocations(|| {
        let r = decode_packet(w.clone()).unwrap();
        std::hint::black_box(&r);
    });
    assert_eq!(n, 0, "heap allocations in 100 LpPacket+Interest decodes");
}

fn the_counter_counts() {
    // Guard against a counter that cannot fail: re-encoding does allocate.
    let w = shared(interest_wire());
    let i = Interest::decode(w).unwrap();
    assert!(
        allocations(|| {
            std::hint::black_box(i.encode());
        }) >= 100
    );
}
