//! LpPacket and face-level packet decoding, plus the reassembler.
#![no_main]

use std::time::{Duration, Instant};

use amicn_tlv::LpPacket;
use amicn_tlv::frag::Reassembler;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    let _ = amicn_tlv::decode_packet(b.clone());
    if let Ok(p) = LpPacket::decode(b) {
        assert_eq!(
            LpPacket::decode(p.encode()).expect("re-encoded LpPacket must decode"),
            p
        );
        let mut r = Reassembler::new(4, 16 * 1024, Duration::from_secs(1));
        let _ = r.on_fragment(p, Instant::now());
    }
});
