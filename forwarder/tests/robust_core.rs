//! Damaged packets never panic the forwarding core: captured management commands and
//! hand-built Interests, Data, Nacks and LpPackets are mutated deterministically (truncations,
//! bit flips, overwrites, insertions, deletions, splices from a seeded generator) and replayed
//! through the same harness as the `forwarder_core` fuzz target — a local app face, two
//! non-local links with FIB routes, a removed face, management attached, time advancing and
//! timers firing. Framing damage must show up in the drop counters.
#![allow(clippy::unwrap_used)]

use amicn_forwarder::core::{
    Config, DropReason, FaceId, FaceOptions, FacePersistency, FaceScope, Forwarder, LinkType, Time,
};
use amicn_forwarder::mgmt::{Management, MgmtConfig, NoFaceSystem};
use amicn_tlv::{Name, TlvReader};
use bytes::Bytes;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt, SeedableRng};

/// Mutation choices from a seeded generator, so a failing case repeats with its seed.
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn seeded(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }
}

fn tlv(typ: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in [u64::from(typ), value.len() as u64] {
        if n < 253 {
            out.push(n as u8);
        } else if n <= 0xffff {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

fn name(comps: &[&str]) -> Vec<u8> {
    let v: Vec<u8> = comps.iter().flat_map(|c| tlv(8, c.as_bytes())).collect();
    tlv(7, &v)
}

fn interest(comps: &[&str], nonce: u32, prefix: bool, lifetime_ms: u16) -> Vec<u8> {
    let mut v = name(comps);
    if prefix {
        v.extend(tlv(0x21, &[]));
    }
    v.extend(tlv(0x0a, &nonce.to_be_bytes()));
    v.extend(tlv(0x0c, &lifetime_ms.to_be_bytes()));
    tlv(5, &v)
}

fn data(comps: &[&str]) -> Vec<u8> {
    let mut v = name(comps);
    v.extend(tlv(0x14, &tlv(0x19, &[0x03, 0xe8])));
    v.extend(tlv(0x15, b"kWh=12.5"));
    v.extend(tlv(0x16, &tlv(0x1b, &[0])));
    v.extend(tlv(0x17, &[0; 32]));
    tlv(6, &v)
}

fn lp(headers: &[u8], fragment: &[u8]) -> Vec<u8> {
    let mut v = headers.to_vec();
    v.extend(tlv(0x50, fragment));
    tlv(100, &v)
}

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn split(mut all: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(n) = amicn_tlv::split_first_tlv(all).unwrap() {
        out.push(all[..n].to_vec());
        all = &all[n..];
    }
    out
}

const MGMT: [&str; 5] = [
    include_str!("mgmt_vectors/python-ndn-v1.to-forwarder.hex"),
    include_str!("mgmt_vectors/python-ndn-v2.to-forwarder.hex"),
    include_str!("mgmt_vectors/ndn-cxx-registerPrefix.to-forwarder.hex"),
    include_str!("mgmt_vectors/ndnts.to-forwarder.hex"),
    include_str!("mgmt_vectors/nfdc-route-add.to-forwarder.hex"),
];

/// Face indices as the fuzz target numbers them.
const APP: u8 = 0;
const UP: u8 = 1;
const LAN: u8 = 2;
const GONE: u8 = 3;

/// Seed streams: `(arrival face, packet)` records.
fn seeds() -> Vec<Vec<(u8, Vec<u8>)>> {
    let mut out: Vec<Vec<(u8, Vec<u8>)>> = MGMT
        .iter()
        .map(|h| split(&unhex(h)).into_iter().map(|p| (APP, p)).collect())
        .collect();
    let reading = ["ami", "meter", "7", "reading"];
    let i = interest(&reading, 1, false, 2000);
    out.push(vec![
        (APP, i.clone()),
        (UP, data(&reading)),
        (APP, i.clone()),
    ]);
    let nack = {
        let reason = tlv(0x0320, &tlv(0x0321, &[150]));
        lp(&reason, &i)
    };
    out.push(vec![(LAN, i.clone()), (UP, nack)]);
    let token = tlv(0x62, &[0xaa; 8]);
    out.push(vec![
        (APP, lp(&token, &interest(&["ami"], 2, true, 1000))),
        (LAN, data(&["ami", "x"])),
        (APP, interest(&["ami"], 3, true, 1000)),
    ]);
    out.push(vec![
        (UP, data(&["x"])),
        (GONE, i),
        (UP, tlv(5, &tlv(7, &[]))),
    ]);
    out
}

struct Node {
    fw: Forwarder,
    mgmt: Management,
    now: Time,
    faces: [FaceId; 4],
}

fn add(fw: &mut Forwarder, scope: FaceScope, link_type: LinkType) -> FaceId {
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

impl Node {
    fn new() -> Node {
        let mut fw = Forwarder::new(Config::default());
        let mut mgmt = Management::new(MgmtConfig::default());
        let now = Time::from_millis(1);
        let app = add(&mut fw, FaceScope::Local, LinkType::PointToPoint);
        let up = add(&mut fw, FaceScope::NonLocal, LinkType::PointToPoint);
        let lan = add(&mut fw, FaceScope::NonLocal, LinkType::MultiAccess);
        let gone = add(&mut fw, FaceScope::NonLocal, LinkType::PointToPoint);
        fw.remove_face(gone);
        fw.fib_add_nexthop(&Name::from_uri("/").unwrap(), up, 10)
            .unwrap();
        let ami = Name::from_uri("/ami").unwrap();
        fw.fib_add_nexthop(&ami, lan, 5).unwrap();
        fw.fib_add_nexthop(&ami, up, 20).unwrap();
        mgmt.process(now, &mut fw, &mut NoFaceSystem);
        Node {
            fw,
            mgmt,
            now,
            faces: [app, up, lan, gone],
        }
    }

    /// One record of the fuzz target's stream; returns how many packets went out.
    fn feed(&mut self, ctl: u8, pkt: &[u8]) -> usize {
        self.now = self.now.add_millis(u64::from((ctl >> 2) & 0x0f) * 250);
        let from = self.faces[usize::from(ctl & 3)];
        self.fw
            .on_packet(self.now, from, Bytes::copy_from_slice(pkt));
        self.mgmt.process(self.now, &mut self.fw, &mut NoFaceSystem);
        if ctl & 0x80 != 0 {
            self.fw.on_timeout(self.now);
            self.mgmt.on_timeout_core(self.now, &mut self.fw);
        }
        let mut sent = 0;
        while let Some((to, _)) = self.fw.poll_transmit() {
            assert_ne!(to, self.faces[3], "nothing goes out on a removed face");
            sent += 1;
        }
        sent
    }

    fn finish(&mut self) {
        self.now = self.now.add_millis(60_000);
        self.fw.on_timeout(self.now);
        self.mgmt.on_timeout_core(self.now, &mut self.fw);
        while self.fw.poll_transmit().is_some() {}
    }
}

/// Whether `pkt` is not even one complete TLV element.
fn badly_framed(pkt: &[u8]) -> bool {
    let mut r = TlvReader::new(Bytes::copy_from_slice(pkt));
    !(r.read().is_ok() && r.is_empty())
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(7) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len() * 8);
                m[i / 8] ^= 1 << (i % 8);
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = [0, 0xff, 0xfd, 0xfe, 0x7f, 0x80, rng.next() as u8][rng.below(7)];
            }
            2 => {
                let i = rng.below(m.len() + 1);
                m.insert(i, rng.next() as u8);
            }
            3 if !m.is_empty() => {
                let i = rng.below(m.len());
                let n = rng.below(m.len() - i + 1);
                m.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let cut = rng.below(m.len() + 1);
                let from = rng.below(other.len());
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            5 => {
                let n = rng.below(m.len() + 1);
                m.truncate(n);
            }
            _ => {
                // Nest into a LpPacket fragment, as an NDNLPv2 link would deliver it.
                m = lp(&[], &m);
            }
        }
    }
    m
}

#[test]
fn undamaged_seeds_are_forwarded() {
    let reading = ["ami", "meter", "7", "reading"];
    let mut node = Node::new();
    assert_eq!(node.feed(APP, &interest(&reading, 9, false, 2000)), 1);
    // /ami goes out on the LAN (cost 5); only that upstream may answer.
    assert_eq!(
        node.feed(UP, &data(&reading)),
        0,
        "Data from a face never asked"
    );
    assert_eq!(
        node.feed(LAN, &data(&reading)),
        1,
        "Data goes back to the app"
    );
    for s in seeds() {
        let mut node = Node::new();
        let mut sent = 0;
        for (face, p) in &s {
            sent += node.feed(*face, p);
        }
        node.finish();
        assert!(
            sent > 0,
            "every seed stream makes the forwarder send something"
        );
    }
}

#[test]
fn truncated_packets_are_counted_as_malformed() {
    let mut total = 0;
    for s in seeds() {
        for (face, p) in s.iter().filter(|(f, _)| *f != GONE) {
            let mut node = Node::new();
            let f = node.faces[usize::from(*face)];
            for n in 0..p.len() {
                let before = node.fw.counters().drops.get(DropReason::Malformed);
                let face_before = node.fw.face(f).unwrap().counters.n_in_dropped;
                node.feed(*face, &p[..n]);
                if n > 0 {
                    assert_eq!(
                        node.fw.counters().drops.get(DropReason::Malformed),
                        before + 1,
                        "{n}-byte truncation of {p:02x?}"
                    );
                    assert_eq!(
                        node.fw.face(f).unwrap().counters.n_in_dropped,
                        face_before + 1
                    );
                    total += 1;
                }
            }
        }
    }
    assert!(total > 500);
}

#[test]
fn mutated_streams_never_panic_and_framing_damage_is_dropped() {
    let seeds = seeds();
    let pool: Vec<u8> = seeds
        .iter()
        .flatten()
        .flat_map(|(_, p)| p.clone())
        .collect();
    let mut rng = Rng::seeded(0x5eed);
    let mut framing = 0;
    for round in 0..3000 {
        let s = &seeds[round % seeds.len()];
        let mut node = Node::new();
        for (face, p) in s {
            for _ in 0..4 {
                let m = mutate(p, &pool, &mut rng);
                let ctl = if rng.below(4) == 0 {
                    rng.next() as u8
                } else {
                    *face | (rng.below(4) as u8) << 2
                };
                let live = ctl & 3 != GONE;
                let drops = node.fw.counters().drops.total();
                node.feed(ctl, &m);
                if live && badly_framed(&m) {
                    framing += 1;
                    assert!(
                        node.fw.counters().drops.total() > drops,
                        "badly framed {m:02x?} was not counted"
                    );
                }
            }
            node.feed(*face, p);
        }
        node.finish();
    }
    assert!(framing > 100);
}

#[test]
fn an_interest_asking_for_a_lifetime_of_years_expires_without_spinning() {
    let mut node = Node::new();
    let mut v = name(&["ami", "meter", "7"]);
    v.extend(tlv(0x0a, &[1, 2, 3, 4]));
    v.extend(tlv(0x0c, &u64::MAX.to_be_bytes()));
    assert_eq!(node.feed(APP, &tlv(5, &v)), 1);
    assert_eq!(node.fw.pit_len(), 1);
    // Firing the timers once used to cascade the clamped deadline into the current slot forever.
    node.feed(0x80, &[]);
    node.finish();
    assert_eq!(node.fw.pit_len(), 1, "still pending after a minute");
}
