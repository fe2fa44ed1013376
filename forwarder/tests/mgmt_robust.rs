//! Management never panics on damaged command Interests: every byte of every captured command
//! is overwritten with a few values and every prefix length is tried, through the real core.
//! Whatever decodes gets at most one reply, always to the face that asked.
#![allow(clippy::unwrap_used)]

use amicn_forwarder::core::{Config, FaceOptions, FaceScope, Forwarder, Time};
use amicn_forwarder::mgmt::{Management, NoFaceSystem};
use bytes::Bytes;

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const VECTORS: [&str; 5] = [
    include_str!("mgmt_vectors/python-ndn-v1.to-forwarder.hex"),
    include_str!("mgmt_vectors/python-ndn-v2.to-forwarder.hex"),
    include_str!("mgmt_vectors/ndn-cxx-registerPrefix.to-forwarder.hex"),
    include_str!("mgmt_vectors/ndnts.to-forwarder.hex"),
    include_str!("mgmt_vectors/nfdc-route-add.to-forwarder.hex"),
];

#[test]
fn damaged_commands_never_panic_and_replies_go_to_the_requester() {
    let mut fw = Forwarder::new(Config::default());
    let mut mgmt = Management::default();
    let app = fw.add_face(FaceOptions {
        scope: FaceScope::Local,
        ..FaceOptions::default()
    });
    let mut now = Time::from_millis(1);
    let mut fed = 0u64;
    let mut replies = 0u64;
    let mut run = |fw: &mut Forwarder, mgmt: &mut Management, pkt: Vec<u8>| {
        now = now.add_millis(1);
        fw.on_packet(now, app, Bytes::from(pkt));
        mgmt.process(now, fw, &mut NoFaceSystem);
        mgmt.on_timeout_core(now, fw);
        let out: Vec<_> = std::iter::from_fn(|| fw.poll_transmit()).collect();
        assert!(out.len() <= 1, "one command, at most one reply");
        for (face, _) in &out {
            assert_eq!(*face, app);
        }
        fed += 1;
        replies += out.len() as u64;
    };
    for v in VECTORS {
        let wire = unhex(v);
        for i in 0..wire.len() {
            for b in [0x00, 0xFF, wire[i].wrapping_add(1), 0xFD] {
                let mut m = wire.clone();
                m[i] = b;
                run(&mut fw, &mut mgmt, m);
            }
        }
        for len in 0..wire.len() {
            run(&mut fw, &mut mgmt, wire[..len].to_vec());
        }
    }
    assert!(fed > 3000);
    // Many mutations hit bytes that do not matter (nonce, signature value): those still work.
    assert!(replies > 100, "only {replies} replies to {fed} packets");
}
