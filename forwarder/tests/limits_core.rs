//! What a remote peer can make the core keep or accept: Data only from the upstream an
//! Interest went to, PIT entries bounded in time (InterestLifetime cap) and in bytes (total
//! and per face), pushback limits that last only while an upstream pushes back, and fresh
//! Nonces that differ between differently seeded cores.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use amicn_forwarder::core::{
    Config, DropReason, FaceId, FaceOptions, FaceScope, Forwarder, PIT_ENTRY_OVERHEAD, Time,
};
use amicn_tlv::{Data, Interest, LpHeaders, Name, NetPacket, wrap_fragment};
use bytes::Bytes;

fn name(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

fn interest(uri: &str, nonce: Option<u32>, lifetime_ms: Option<u64>) -> Bytes {
    let mut i = Interest::new(name(uri));
    i.nonce = nonce;
    i.lifetime_ms = lifetime_ms;
    i.encode()
}

fn data(uri: &str, content: &[u8]) -> Bytes {
    Data::new(name(uri), Bytes::copy_from_slice(content)).sign_digest_sha256()
}

fn face(fw: &mut Forwarder, scope: FaceScope) -> FaceId {
    fw.add_face(FaceOptions {
        scope,
        ..FaceOptions::default()
    })
}

/// A core with a consumer app, an upstream with a route for `/p`, and a third face.
fn setup(config: Config) -> (Forwarder, FaceId, FaceId, FaceId) {
    let mut fw = Forwarder::new(config);
    let app = face(&mut fw, FaceScope::Local);
    let up = face(&mut fw, FaceScope::NonLocal);
    let other = face(&mut fw, FaceScope::NonLocal);
    fw.fib_add_nexthop(&name("/p"), up, 1).unwrap();
    (fw, app, up, other)
}

fn sent(fw: &mut Forwarder) -> Vec<(FaceId, NetPacket)> {
    let mut out = Vec::new();
    while let Some((f, b)) = fw.poll_transmit() {
        out.push((f, amicn_tlv::decode_packet(b).unwrap().packet));
    }
    out
}

#[test]
fn data_from_a_face_the_interest_did_not_go_to_is_dropped_and_not_cached() {
    let (mut fw, app, up, other) = setup(Config::default());
    let t = Time::ZERO;
    fw.on_packet(t, app, interest("/p/x", Some(1), Some(1000)));
    assert!(matches!(&sent(&mut fw)[..], [(f, NetPacket::Interest(_))] if *f == up));
    // Another neighbour answers first: it never received the Interest.
    fw.on_packet(t, other, data("/p/x", b"forged"));
    assert!(sent(&mut fw).is_empty(), "forged Data forwarded");
    assert_eq!(fw.counters().drops.get(DropReason::WrongFace), 1);
    assert_eq!(fw.status().counters.drops.get(DropReason::WrongFace), 1);
    assert_eq!(fw.cs_info().n_entries, 0, "forged Data cached");
    assert_eq!(fw.pit_len(), 1, "entry still waits for the real upstream");
    // The consumer's own face is no upstream either.
    fw.on_packet(t, app, data("/p/x", b"forged"));
    assert_eq!(fw.counters().drops.get(DropReason::WrongFace), 2);
    // The upstream's Data satisfies the entry and is cached.
    fw.on_packet(t, up, data("/p/x", b"real"));
    match &sent(&mut fw)[..] {
        [(f, NetPacket::Data(d))] => {
            assert_eq!(*f, app);
            assert_eq!(&d.content[..], b"real");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fw.cs_info().n_entries, 1);
    assert_eq!(fw.pit_len(), 0);
}

#[test]
fn a_pit_token_does_not_let_another_face_answer() {
    let (mut fw, app, up, other) = setup(Config::default());
    let t = Time::ZERO;
    fw.on_packet(t, app, interest("/p/tok", Some(2), Some(1000)));
    let (f, wire) = fw.poll_transmit().unwrap();
    assert_eq!(f, up);
    let token = amicn_tlv::decode_packet(wire)
        .unwrap()
        .lp
        .pit_token
        .unwrap();
    let lp = LpHeaders {
        pit_token: Some(token),
        ..LpHeaders::default()
    };
    fw.on_packet(
        t,
        other,
        wrap_fragment(data("/p/tok", b"forged"), &lp, None),
    );
    assert_eq!(fw.counters().drops.get(DropReason::WrongFace), 1);
    assert_eq!(fw.pit_len(), 1);
    fw.on_packet(t, up, wrap_fragment(data("/p/tok", b"real"), &lp, None));
    assert_eq!(fw.pit_len(), 0);
}

#[test]
fn interest_lifetime_is_capped() {
    let config = Config {
        max_interest_lifetime: Duration::from_secs(10),
        ..Config::default()
    };
    let (mut fw, app, _up, _other) = setup(config);
    // 0xFFFFFFFF ms would hold the entry for 49 days.
    fw.on_packet(
        Time::ZERO,
        app,
        interest("/p/long", Some(4), Some(u64::from(u32::MAX))),
    );
    assert_eq!(fw.pit_len(), 1);
    let wake = fw.poll_timeout().unwrap();
    assert!(
        wake <= Time::ZERO.saturating_add(Duration::from_secs(10)),
        "next timer at {wake:?}"
    );
    fw.on_timeout(Time::ZERO.saturating_add(Duration::from_secs(11)));
    assert_eq!(fw.pit_len(), 0, "entry outlived the cap");
    // Lifetimes below the cap are kept as they are.
    fw.on_packet(Time::ZERO, app, interest("/p/short", Some(5), Some(500)));
    fw.on_timeout(Time::ZERO.saturating_add(Duration::from_millis(400)));
    assert_eq!(fw.pit_len(), 1);
}

#[test]
fn pit_bytes_are_bounded_per_face_and_in_total() {
    let probe = interest("/p/0000", Some(1), Some(1000)).len() + PIT_ENTRY_OVERHEAD;
    let config = Config {
        pit_max_bytes_per_face: probe * 3,
        pit_max_bytes: probe * 5,
        ..Config::default()
    };
    let mut fw = Forwarder::new(config);
    let a = face(&mut fw, FaceScope::NonLocal);
    let b = face(&mut fw, FaceScope::NonLocal);
    let c = face(&mut fw, FaceScope::NonLocal);
    let up = face(&mut fw, FaceScope::NonLocal);
    fw.fib_add_nexthop(&name("/p"), up, 1).unwrap();
    let t = Time::ZERO;
    for i in 0..4u32 {
        fw.on_packet(
            t,
            a,
            interest(&format!("/p/a{i:03}"), Some(10 + i), Some(1000)),
        );
    }
    assert_eq!(fw.pit_len(), 3, "face a held to its share");
    assert_eq!(fw.counters().drops.get(DropReason::PitMemory), 1);
    assert_eq!(fw.faces().get(a).unwrap().pit_bytes(), probe * 3);
    for i in 0..3u32 {
        fw.on_packet(
            t,
            b,
            interest(&format!("/p/b{i:03}"), Some(20 + i), Some(1000)),
        );
    }
    assert_eq!(fw.pit_len(), 5, "total budget reached");
    assert_eq!(fw.counters().drops.get(DropReason::PitMemory), 2);
    // Satisfying entries gives the budget back.
    fw.on_packet(t, up, data("/p/a000", b"x"));
    fw.on_packet(t, c, interest("/p/c000", Some(30), Some(1000)));
    assert_eq!(fw.pit_len(), 5);
    assert_eq!(fw.counters().drops.get(DropReason::PitMemory), 2);
    // Removing a face releases its share.
    fw.remove_face(a);
    assert_eq!(fw.pit_len(), 3);
    fw.on_packet(t, c, interest("/p/c001", Some(31), Some(1000)));
    assert_eq!(fw.pit_len(), 4);
}

#[test]
fn cores_with_different_seeds_add_different_nonces() {
    let nonce_of = |seed: u64| {
        let (mut fw, app, _up, _other) = setup(Config {
            rng_seed: seed,
            ..Config::default()
        });
        fw.on_packet(Time::ZERO, app, interest("/p/n", None, Some(1000)));
        match sent(&mut fw).pop() {
            Some((_, NetPacket::Interest(i))) => i.nonce.unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(nonce_of(7), nonce_of(7), "a fixed seed is deterministic");
    assert_ne!(nonce_of(7), nonce_of(8));
}

#[test]
fn flooding_faces_fill_only_their_fair_shares_of_the_pit() {
    let config = Config {
        pit_max_entries: 100,
        ..Config::default()
    };
    let mut fw = Forwarder::new(config);
    let attackers = [
        face(&mut fw, FaceScope::NonLocal),
        face(&mut fw, FaceScope::NonLocal),
    ];
    let consumer = face(&mut fw, FaceScope::NonLocal);
    let up = face(&mut fw, FaceScope::NonLocal);
    fw.fib_add_nexthop(&name("/p"), up, 1).unwrap();
    let t = Time::ZERO;
    // Each attacker sends as many unique, never-answered Interests as the whole table holds.
    let mut nonce = 1u32;
    for round in 0..100 {
        for (k, a) in attackers.iter().enumerate() {
            nonce += 1;
            let uri = format!("/p/flood/{k}/{round}");
            fw.on_packet(t, *a, interest(&uri, Some(nonce), Some(4_000)));
        }
    }
    let held = |fw: &Forwarder, f: FaceId| fw.faces().get(f).unwrap().pit_in_records();
    // Two holders plus a share kept free: each attacker is held to a third of the cap.
    for a in attackers {
        assert_eq!(held(&fw, a), 100 / 3);
    }
    assert!(fw.pit_len() < 100, "room is left");
    assert!(fw.counters().drops.get(DropReason::FairShare) > 0);
    let _ = sent(&mut fw);
    // A consumer arriving in the middle of the flood is admitted and its Interest forwarded.
    fw.on_packet(
        t,
        consumer,
        interest("/p/legit/1", Some(9_001), Some(1_000)),
    );
    assert_eq!(
        held(&fw, consumer),
        1,
        "the consumer's Interest was admitted"
    );
    let out = sent(&mut fw);
    assert!(
        out.iter().any(|(f, p)| *f == up
            && matches!(p, NetPacket::Interest(i) if i.name == name("/p/legit/1"))),
        "and forwarded: {out:?}"
    );
    // With three holders the attackers' shares shrink to a quarter: they cannot grow again.
    let before = fw.counters().drops.get(DropReason::FairShare);
    nonce += 1;
    fw.on_packet(
        t,
        attackers[0],
        interest("/p/flood/0/x", Some(nonce), Some(4_000)),
    );
    assert_eq!(held(&fw, attackers[0]), 100 / 3);
    assert_eq!(fw.counters().drops.get(DropReason::FairShare), before + 1);
}

/// Interests that an upstream whose send queue is congested would get from a face with a poor
/// record are refused with Nack Congestion; a face whose Interests are answered is not, and a
/// flooder gains nothing by reconnecting, because a new face starts from how newcomers fared.
#[test]
fn a_congested_upstream_is_kept_for_the_faces_whose_interests_are_answered() {
    let mut fw = Forwarder::new(Config::default());
    let mut flooder = face(&mut fw, FaceScope::NonLocal);
    let consumer = face(&mut fw, FaceScope::NonLocal);
    let up = face(&mut fw, FaceScope::NonLocal);
    fw.fib_add_nexthop(&name("/p"), up, 1).unwrap();
    let mut t = Time::ZERO;
    let mut nonce = 1u32;
    let mut next = || {
        nonce += 1;
        nonce
    };
    // Before the attack both faces build a record: the consumer's Interests are answered, the
    // flooder's (reconnecting after each few Interests) expire unanswered or go away with it.
    for round in 0..64 {
        let uri = format!("/p/d/{round}");
        fw.on_packet(t, consumer, interest(&uri, Some(next()), Some(1_000)));
        fw.on_packet(t, up, data(&uri, b"x"));
        let hole = format!("/p/hole/{round}");
        fw.on_packet(t, flooder, interest(&hole, Some(next()), Some(100)));
        if round % 4 == 3 {
            fw.remove_face(flooder);
            flooder = face(&mut fw, FaceScope::NonLocal);
        }
        t = t + Duration::from_millis(200);
        fw.on_timeout(t);
    }
    let _ = sent(&mut fw);
    fw.set_face_congested(up, true);
    let refused_before = fw.counters().drops.get(DropReason::CongestedUpstream);
    // The flooder comes back on a fresh face and floods the congested upstream.
    fw.remove_face(flooder);
    let flooder = face(&mut fw, FaceScope::NonLocal);
    for k in 0..200 {
        let uri = format!("/p/hole/new/{k}");
        fw.on_packet(t, flooder, interest(&uri, Some(next()), Some(4_000)));
    }
    for k in 0..50 {
        let uri = format!("/p/d/new/{k}");
        fw.on_packet(t, consumer, interest(&uri, Some(next()), Some(1_000)));
    }
    let out = sent(&mut fw);
    let to_up = |prefix: &str| {
        out.iter()
            .filter(|(f, p)| {
                *f == up
                    && matches!(p, NetPacket::Interest(i) if i.name.to_uri().starts_with(prefix))
            })
            .count()
    };
    assert_eq!(
        to_up("/p/d/new"),
        50,
        "every answered face's Interest forwarded"
    );
    let flood_forwarded = to_up("/p/hole/new");
    assert!(
        flood_forwarded <= 16,
        "the reconnected flooder got {flood_forwarded}/200 through"
    );
    let refused = fw.counters().drops.get(DropReason::CongestedUpstream) - refused_before;
    assert_eq!(refused as usize, 200 - flood_forwarded);
    let nacks = out
        .iter()
        .filter(|(f, p)| *f == flooder && matches!(p, NetPacket::Nack(_)))
        .count();
    assert_eq!(nacks, 200 - flood_forwarded, "refusals are Nacked");
    // Once the upstream drains, nobody is refused.
    fw.set_face_congested(up, false);
    fw.on_packet(
        t,
        flooder,
        interest("/p/hole/calm", Some(next()), Some(4_000)),
    );
    assert!(
        sent(&mut fw)
            .iter()
            .any(|(f, p)| *f == up && matches!(p, NetPacket::Interest(_))),
        "no refusal without congestion"
    );
}

#[test]
fn removing_a_face_releases_exactly_its_records_after_many_reused_entries() {
    let (mut fw, a, up, b) = setup(Config::default());
    let t = Time::ZERO;
    // Hundreds of answered Interests: PIT slots are reused many times over and the face's
    // list of entries it took part in is compacted along the way.
    for i in 0..600u32 {
        let uri = format!("/p/done{i}");
        fw.on_packet(t, a, interest(&uri, Some(1000 + i), Some(1000)));
        fw.on_packet(t, up, data(&uri, b"x"));
    }
    assert_eq!(fw.pit_len(), 0);
    sent(&mut fw);
    for i in 0..3u32 {
        fw.on_packet(
            t,
            a,
            interest(&format!("/p/a{i}"), Some(10 + i), Some(1000)),
        );
    }
    for i in 0..2u32 {
        fw.on_packet(
            t,
            b,
            interest(&format!("/p/b{i}"), Some(20 + i), Some(1000)),
        );
    }
    // One entry both faces wait for.
    fw.on_packet(t, a, interest("/p/shared", Some(30), Some(1000)));
    fw.on_packet(t, b, interest("/p/shared", Some(31), Some(1000)));
    assert_eq!(fw.pit_len(), 6);
    let b_bytes = fw.faces().get(b).unwrap().pit_bytes();
    sent(&mut fw);

    assert!(fw.remove_face(a));
    assert!(!fw.remove_face(a), "a face is removed once");
    assert_eq!(
        fw.pit_len(),
        3,
        "a's own entries end, b's and the shared one stay"
    );
    assert_eq!(fw.faces().get(b).unwrap().pit_in_records(), 3);
    assert_eq!(fw.faces().get(b).unwrap().pit_bytes(), b_bytes);
    // The shared entry now answers b alone.
    fw.on_packet(t, up, data("/p/shared", b"y"));
    let out = sent(&mut fw);
    assert!(
        matches!(&out[..], [(f, NetPacket::Data(_))] if *f == b),
        "{out:?}"
    );
    assert_eq!(fw.pit_len(), 2);
    // Removing the upstream leaves b's entries waiting for their lifetime, then they expire.
    assert!(fw.remove_face(up));
    assert_eq!(fw.pit_len(), 2);
    fw.on_timeout(Time::ZERO.saturating_add(Duration::from_secs(2)));
    assert_eq!(fw.pit_len(), 0);
    assert_eq!(fw.faces().get(b).unwrap().pit_in_records(), 0);
}

/// The pending-entry limit an upstream's Nack Congestion teaches lasts while it keeps pushing
/// back, and is forgotten once it has been quiet for a while: a burst long after an attack is
/// not held to what the attack left behind.
#[test]
fn a_learned_pushback_limit_is_forgotten_after_a_quiet_period() {
    let mut fw = Forwarder::new(Config::default());
    let consumer = face(&mut fw, FaceScope::NonLocal);
    let up = face(&mut fw, FaceScope::NonLocal);
    fw.fib_add_nexthop(&name("/p"), up, 1).unwrap();
    let mut t = Time::ZERO;
    for k in 0..40u32 {
        let uri = format!("/p/burst/{k}");
        fw.on_packet(t, consumer, interest(&uri, Some(100 + k), Some(60_000)));
    }
    let forwarded: Vec<Interest> = sent(&mut fw)
        .into_iter()
        .filter_map(|(f, p)| match p {
            NetPacket::Interest(i) if f == up => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(forwarded.len(), 40);
    // The upstream refuses one of them: it holds no more than half of what was pending.
    let nack = amicn_tlv::encode_nack(
        forwarded[0].encode(),
        amicn_tlv::NackReason::Congestion,
        None,
    );
    fw.on_packet(t, up, nack);
    let limit = |fw: &Forwarder| fw.faces().get(up).unwrap().pushback_limit();
    assert_eq!(limit(&fw), Some(20.0));
    // While the limit holds, the consumer may keep only its share of it pending upstream.
    t = t + Duration::from_secs(1);
    let _ = sent(&mut fw);
    let refused_before = fw.counters().drops.get(DropReason::CongestedUpstream);
    fw.on_packet(t, consumer, interest("/p/later/0", Some(7), Some(60_000)));
    assert_eq!(
        fw.counters().drops.get(DropReason::CongestedUpstream),
        refused_before + 1,
        "39 pending is over the learned limit"
    );
    // Ten quiet seconds later the limit is gone and the consumer's Interest goes upstream.
    t = t + Duration::from_secs(10);
    fw.on_packet(t, consumer, interest("/p/later/1", Some(8), Some(60_000)));
    assert_eq!(limit(&fw), None);
    assert!(
        sent(&mut fw).iter().any(|(f, p)| *f == up
            && matches!(p, NetPacket::Interest(i) if i.name == name("/p/later/1"))),
        "forwarded once the limit is forgotten"
    );
}
