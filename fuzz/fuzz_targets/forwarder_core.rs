//! The whole forwarding core with management attached, fed a stream of packets.
//!
//! Input is a sequence of records `[ctl, len_hi, len_lo, packet...]`: the low two bits of `ctl`
//! pick the arrival face (local app, two non-local links, a face that was already removed),
//! bits 2..5 advance the clock in 250 ms steps, and bit 7 also fires the core's and
//! management's timers. The same framing is replayed deterministically by
//! forwarder/tests/robust_core.rs.
#![no_main]

use amicn_forwarder::core::{
    Config, FaceId, FaceOptions, FacePersistency, FaceScope, Forwarder, LinkType, Time,
};
use amicn_forwarder::mgmt::{Management, MgmtConfig, NoFaceSystem};
use amicn_tlv::Name;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fn face(fw: &mut Forwarder, scope: FaceScope, link_type: LinkType) -> FaceId {
    fw.add_face(FaceOptions {
        remote_uri: "udp4://192.0.2.1:6363".into(),
        local_uri: "udp4://192.0.2.2:6363".into(),
        scope,
        link_type,
        persistency: FacePersistency::Persistent,
        local_fields_enabled: scope == FaceScope::Local,
        ..FaceOptions::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut fw = Forwarder::new(Config::default());
    let mut mgmt = Management::new(MgmtConfig::default());
    let mut now = Time::from_millis(1);
    let app = face(&mut fw, FaceScope::Local, LinkType::PointToPoint);
    let up = face(&mut fw, FaceScope::NonLocal, LinkType::PointToPoint);
    let lan = face(&mut fw, FaceScope::NonLocal, LinkType::MultiAccess);
    let gone = face(&mut fw, FaceScope::NonLocal, LinkType::PointToPoint);
    fw.remove_face(gone);
    if let Ok(p) = Name::from_uri("/") {
        let _ = fw.fib_add_nexthop(&p, up, 10);
    }
    if let Ok(p) = Name::from_uri("/ami") {
        let _ = fw.fib_add_nexthop(&p, lan, 5);
        let _ = fw.fib_add_nexthop(&p, up, 20);
    }
    mgmt.process(now, &mut fw, &mut NoFaceSystem);
    let faces = [app, up, lan, gone];

    let mut rest = data;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (pkt, after) = tail.split_at(len);
        rest = after;
        now = now.add_millis(u64::from((ctl >> 2) & 0x0f) * 250);
        let from = faces[usize::from(ctl & 3)];
        fw.on_packet(now, from, Bytes::copy_from_slice(pkt));
        mgmt.process(now, &mut fw, &mut NoFaceSystem);
        if ctl & 0x80 != 0 {
            fw.on_timeout(now);
            mgmt.on_timeout_core(now, &mut fw);
        }
        while let Some((to, _)) = fw.poll_transmit() {
            assert_ne!(to, gone, "nothing goes out on a removed face");
        }
    }
    now = now.add_millis(60_000);
    fw.on_timeout(now);
    mgmt.on_timeout_core(now, &mut fw);
    while fw.poll_transmit().is_some() {}
});
