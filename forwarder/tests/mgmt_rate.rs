//! Registration throughput through the core and management (decode, RIB, FIB, signed reply),
//! and the cost of a large `rib/list`. A measurement, not a timed assertion: run with
//! `cargo test --release -p amicn-forwarder --test mgmt_rate -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use amicn_forwarder::core::{Config, FaceOptions, FaceScope, Forwarder, Time};
use amicn_forwarder::mgmt::{Management, NoFaceSystem};
use amicn_tlv::mgmt::{ControlParameters, RibEntry};
use amicn_tlv::{Component, Interest, Name, NetPacket, SignatureInfo, decode_packet};

#[test]
#[ignore = "measurement; run explicitly with --release"]
fn registration_rate() {
    let n = 100_000usize;
    let mut fw = Forwarder::new(Config::default());
    let mut mgmt = Management::default();
    let app = fw.add_face(FaceOptions {
        scope: FaceScope::Local,
        ..FaceOptions::default()
    });
    let commands: Vec<_> = (0..n)
        .map(|i| {
            let cp = ControlParameters {
                name: Some(Name::from_uri(&format!("/utility/meter/{i}")).unwrap()),
                ..ControlParameters::default()
            };
            let name = Name::from_uri("/localhost/nfd/rib/register")
                .unwrap()
                .append(Component::generic(cp.encode()));
            let mut interest = Interest::new(name);
            interest.nonce = Some(i as u32);
            let mut si = SignatureInfo::digest_sha256();
            si.time_ms = Some(i as u64);
            interest.sign_digest_sha256(si)
        })
        .collect();
    let start = Instant::now();
    let mut replies = 0;
    for (i, c) in commands.into_iter().enumerate() {
        let now = Time::from_millis(i as u64 + 1);
        fw.on_packet(now, app, c);
        mgmt.process(now, &mut fw, &mut NoFaceSystem);
        while fw.poll_transmit().is_some() {
            replies += 1;
        }
    }
    let took = start.elapsed();
    assert_eq!(replies, n);
    assert_eq!(fw.fib_len(), n);
    println!(
        "{n} rib/register commands: {:.3} s, {:.0} commands/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    let now = Time::from_millis(n as u64 + 10);
    let start = Instant::now();
    let mut list = Interest::new(Name::from_uri("/localhost/nfd/rib/list").unwrap());
    list.can_be_prefix = true;
    list.nonce = Some(1);
    fw.on_packet(now, app, list.encode());
    mgmt.process(now, &mut fw, &mut NoFaceSystem);
    let (_, seg0) = fw.poll_transmit().unwrap();
    let built = start.elapsed();
    let NetPacket::Data(d0) = decode_packet(seg0).unwrap().packet else {
        panic!("not Data")
    };
    // Fetch the remaining segments and decode every entry.
    let mut payload = d0.content.to_vec();
    let mut seg = 0;
    loop {
        seg += 1;
        let mut i = Interest::new(
            d0.name
                .prefix(d0.name.len() - 1)
                .append(Component::segment(seg)),
        );
        i.nonce = Some(seg as u32 + 7);
        fw.on_packet(now, app, i.encode());
        mgmt.process(now, &mut fw, &mut NoFaceSystem);
        let (_, pkt) = fw.poll_transmit().unwrap();
        let NetPacket::Data(d) = decode_packet(pkt).unwrap().packet else {
            panic!("not Data")
        };
        payload.extend_from_slice(&d.content);
        if d.meta_info.final_block_id.is_some() {
            break;
        }
    }
    let entries = RibEntry::decode_list(payload.into()).unwrap();
    assert_eq!(entries.len(), n);
    println!(
        "rib/list of {n} routes: built in {:.3} s, {} segments",
        built.as_secs_f64(),
        seg + 1
    );
}
