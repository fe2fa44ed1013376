//! Multi-forwarder scenarios in virtual time: aggregation, loops and the Dead Nonce List, PIT
//! expiry, Nack propagation, Content Store semantics, PitToken echo, scope, HopLimit, caps.

#![allow(clippy::unwrap_used)]

mod sim_net;

use std::time::Duration;

use amicn_forwarder::core::{Config, DropReason, FaceScope, LinkType, UnsolicitedPolicy};
use amicn_tlv::{Component, Interest, LpHeaders, NackReason, NetPacket, wrap_fragment};
use bytes::Bytes;
use sim_net::{LinkOpts, Sim, count_data, data, echo_producer, interest, nack_reasons, name};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// consumer app(s) -> R0 -> R1 -> producer app
fn chain(seed: u64, cfg0: Config) -> (Sim, usize, usize) {
    let mut sim = Sim::new(seed);
    let r0 = sim.add_node(cfg0);
    let r1 = sim.add_node(Config::default());
    let (f01, _) = sim.link(r0, r1, LinkOpts::default());
    sim.nodes[r0].fib_add_nexthop(&name("/p"), f01, 10).unwrap();
    (sim, r0, r1)
}

#[test]
fn identical_interests_aggregate_into_one_upstream_interest() {
    let (mut sim, r0, r1) = chain(1, Config::default());
    let prod = sim.producer(r1, "/p", echo_producer(Some(1000)));
    let c1 = sim.attach_app(r0, FaceScope::Local);
    let c2 = sim.attach_app(r0, FaceScope::Local);
    sim.express(c1, &interest("/p/x", 1));
    sim.express(c2, &interest("/p/x", 2));
    sim.run_for(ms(100));
    assert_eq!(sim.apps[prod].interests_seen, 1, "aggregated at R0");
    assert_eq!(sim.data_names(c1), vec!["/p/x"]);
    assert_eq!(sim.data_names(c2), vec!["/p/x"]);
    let st = sim.nodes[r0].status();
    assert_eq!(st.counters.n_in_interests, 2);
    assert_eq!(st.counters.n_out_interests, 1);
    assert_eq!(st.counters.n_satisfied_interests, 1);
    assert_eq!(st.n_pit_entries, 0);
    // A different MustBeFresh is a different PIT entry (NFD key), so it is not aggregated.
    let mut fresh = interest("/p/y", 3);
    fresh.must_be_fresh = true;
    sim.express(c1, &interest("/p/y", 4));
    sim.express(c2, &fresh);
    sim.run_for(ms(100));
    assert_eq!(sim.apps[prod].interests_seen, 3);
}

#[test]
fn interest_expires_after_its_lifetime_and_counts_unsatisfied() {
    let (mut sim, r0, r1) = chain(2, Config::default());
    let prod = sim.producer(r1, "/p", Box::new(|_| None));
    let c = sim.attach_app(r0, FaceScope::Local);
    let mut i = interest("/p/silent", 9);
    i.lifetime_ms = Some(300);
    sim.express(c, &i);
    sim.run_for(ms(250));
    assert_eq!(sim.nodes[r0].pit_len(), 1);
    assert_eq!(sim.apps[prod].interests_seen, 1);
    sim.run_for(ms(100));
    assert_eq!(sim.nodes[r0].pit_len(), 0, "expired by the timer wheel");
    assert_eq!(sim.nodes[r1].pit_len(), 0);
    assert_eq!(sim.nodes[r0].status().counters.n_unsatisfied_interests, 1);
    assert!(
        sim.take_inbox(c).is_empty(),
        "expiry sends nothing downstream"
    );
}

#[test]
fn no_route_nack_propagates_back_to_the_consumer() {
    let mut sim = Sim::new(3);
    let r0 = sim.add_node(Config::default());
    let r1 = sim.add_node(Config::default());
    let r2 = sim.add_node(Config::default());
    let (f01, _) = sim.link(r0, r1, LinkOpts::default());
    let (f12, _) = sim.link(r1, r2, LinkOpts::default());
    sim.nodes[r0].fib_add_nexthop(&name("/n"), f01, 1).unwrap();
    sim.nodes[r1].fib_add_nexthop(&name("/n"), f12, 1).unwrap();
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/n/a", 77));
    sim.run_for(ms(100));
    let inbox = sim.take_inbox(c);
    assert_eq!(nack_reasons(&inbox), vec![NackReason::NoRoute]);
    match &inbox[0].1.packet {
        NetPacket::Nack(n) => assert_eq!(n.interest.nonce, Some(77), "the consumer's own Interest"),
        _ => unreachable!(),
    }
    for n in [r0, r1, r2] {
        assert_eq!(sim.nodes[n].pit_len(), 0);
    }
    assert_eq!(sim.nodes[r2].counters().drops.get(DropReason::NoRoute), 1);
    // A Nack arriving for nothing pending is counted, not forwarded.
    let stray = amicn_tlv::encode_nack(interest("/n/zzz", 5).encode(), NackReason::NoRoute, None);
    let r0_face = sim.apps[c].face;
    sim.nodes[r0].on_packet(sim.now, r0_face, stray);
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::InvalidNack),
        1
    );
}

#[test]
fn dead_nonce_list_catches_a_returning_nonce_after_the_entry_is_gone() {
    let (mut sim, r0, _r1) = chain(4, Config::default());
    // R1 has no route: the Interest is nacked and R0's entry leaves the PIT.
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/p/loop", 4242));
    sim.run_for(ms(100));
    assert_eq!(nack_reasons(&sim.take_inbox(c)), vec![NackReason::NoRoute]);
    assert_eq!(sim.nodes[r0].pit_len(), 0);
    // The same Interest (same nonce) comes back: a loop, answered with Nack Duplicate.
    sim.express(c, &interest("/p/loop", 4242));
    sim.run_for(ms(100));
    assert_eq!(
        nack_reasons(&sim.take_inbox(c)),
        vec![NackReason::Duplicate]
    );
    assert_eq!(sim.nodes[r0].counters().drops.get(DropReason::Loop), 1);
    // After the Dead Nonce List lifetime (6 s) the nonce is forgotten.
    sim.run_for(Duration::from_secs(7));
    sim.express(c, &interest("/p/loop", 4242));
    sim.run_for(ms(100));
    assert_eq!(nack_reasons(&sim.take_inbox(c)), vec![NackReason::NoRoute]);
}

#[test]
fn routing_loop_is_cut_by_duplicate_nonce_detection() {
    let mut sim = Sim::new(5);
    let r: Vec<usize> = (0..3).map(|_| sim.add_node(Config::default())).collect();
    let (f01, _) = sim.link(r[0], r[1], LinkOpts::default());
    let (f12, _) = sim.link(r[1], r[2], LinkOpts::default());
    let (f20, _) = sim.link(r[2], r[0], LinkOpts::default());
    sim.nodes[r[0]]
        .fib_add_nexthop(&name("/loop"), f01, 1)
        .unwrap();
    sim.nodes[r[1]]
        .fib_add_nexthop(&name("/loop"), f12, 1)
        .unwrap();
    sim.nodes[r[2]]
        .fib_add_nexthop(&name("/loop"), f20, 1)
        .unwrap();
    let c = sim.attach_app(r[0], FaceScope::Local);
    sim.express(c, &interest("/loop/x", 11));
    sim.run_for(ms(500));
    let total_loops: u64 = r
        .iter()
        .map(|&n| sim.nodes[n].counters().drops.get(DropReason::Loop))
        .sum();
    assert_eq!(total_loops, 1, "R0 sees its own Interest come back once");
    let sent: u64 = r
        .iter()
        .map(|&n| sim.nodes[n].counters().n_out_interests)
        .sum();
    assert_eq!(sent, 3, "one trip around the loop, no more");
    assert_eq!(
        nack_reasons(&sim.take_inbox(c)),
        vec![NackReason::Duplicate]
    );
    for n in r {
        assert_eq!(sim.nodes[n].pit_len(), 0);
    }
}

#[test]
fn content_store_serves_can_be_prefix_and_honours_must_be_fresh() {
    let (mut sim, r0, r1) = chain(6, Config::default());
    let prod = sim.producer(
        r1,
        "/p",
        Box::new(|i: &Interest| {
            Some(data(
                &i.name.append(Component::version(7)),
                b"v7",
                Some(1000),
            ))
        }),
    );
    let c = sim.attach_app(r0, FaceScope::Local);
    let mut q = interest("/p/meter", 1);
    q.can_be_prefix = true;
    sim.express(c, &q);
    sim.run_for(ms(50));
    assert_eq!(sim.data_names(c), vec!["/p/meter/v=7"]);
    assert_eq!(sim.apps[prod].interests_seen, 1);
    // Served from R0's CS, by prefix, fresh.
    let mut q2 = interest("/p/meter", 2);
    q2.can_be_prefix = true;
    q2.must_be_fresh = true;
    sim.express(c, &q2);
    sim.run_for(ms(50));
    assert_eq!(sim.data_names(c), vec!["/p/meter/v=7"]);
    assert_eq!(sim.apps[prod].interests_seen, 1);
    assert_eq!(sim.nodes[r0].cs_info().n_hits, 1);
    // Exact name, no CanBePrefix: also a hit.
    sim.express(c, &interest("/p/meter/v=7", 3));
    sim.run_for(ms(50));
    assert_eq!(sim.data_names(c), vec!["/p/meter/v=7"]);
    // Without CanBePrefix the prefix name does not match the cached Data.
    sim.express(c, &interest("/p/meter", 4));
    sim.run_for(ms(50));
    assert_eq!(sim.apps[prod].interests_seen, 2);
    sim.take_inbox(c);
    // After FreshnessPeriod (1 s) MustBeFresh misses, a plain CanBePrefix still hits.
    sim.run_for(ms(1000));
    let mut q5 = interest("/p/meter", 5);
    q5.can_be_prefix = true;
    sim.express(c, &q5);
    sim.run_for(ms(50));
    assert_eq!(
        sim.apps[prod].interests_seen, 2,
        "stale data serves non-MustBeFresh"
    );
    let mut q6 = interest("/p/meter", 6);
    q6.can_be_prefix = true;
    q6.must_be_fresh = true;
    sim.express(c, &q6);
    sim.run_for(ms(50));
    assert_eq!(
        sim.apps[prod].interests_seen, 3,
        "stale data does not serve MustBeFresh"
    );
    assert_eq!(sim.data_names(c).len(), 2);
}

#[test]
fn implicit_digest_interest_is_served_from_the_cs() {
    let (mut sim, r0, r1) = chain(7, Config::default());
    let wire = data(&name("/p/obj"), b"immutable", None);
    let digest = amicn_tlv::Data::decode(wire.clone())
        .unwrap()
        .implicit_digest();
    let w2 = wire.clone();
    let prod = sim.producer(r1, "/p", Box::new(move |_| Some(w2.clone())));
    let c = sim.attach_app(r0, FaceScope::Local);
    let full = name("/p/obj").append(Component::implicit_sha256_digest(digest));
    let mut i = Interest::new(full.clone());
    i.nonce = Some(1);
    sim.express(c, &i);
    sim.run_for(ms(50));
    assert_eq!(
        sim.data_names(c),
        vec!["/p/obj"],
        "satisfied through the digest PIT match"
    );
    i.nonce = Some(2);
    sim.express(c, &i);
    sim.run_for(ms(50));
    assert_eq!(sim.data_names(c), vec!["/p/obj"]);
    assert_eq!(sim.apps[prod].interests_seen, 1, "second one from the CS");
    let wrong = name("/p/obj").append(Component::implicit_sha256_digest([7; 32]));
    let mut j = Interest::new(wrong);
    j.nonce = Some(3);
    sim.express(c, &j);
    sim.run_for(ms(50));
    assert_eq!(
        sim.apps[prod].interests_seen, 2,
        "wrong digest misses the CS"
    );
}

#[test]
fn pit_tokens_are_echoed_downstream_and_used_upstream() {
    let (mut sim, r0, r1) = chain(8, Config::default());
    let prod = sim.producer(r1, "/p", echo_producer(None));
    sim.apps[prod].echo_token = true;
    let c = sim.attach_app(r0, FaceScope::Local);
    let token = Bytes::from_static(&[0xAB, 0xCD, 0xEF]);
    let lp = LpHeaders {
        pit_token: Some(token.clone()),
        ..Default::default()
    };
    sim.app_send(c, wrap_fragment(interest("/p/t", 1).encode(), &lp, None));
    sim.run_for(ms(100));
    let prod_in = sim.take_inbox(prod);
    let up_token = prod_in[0]
        .1
        .lp
        .pit_token
        .clone()
        .expect("R1 stamps its own token");
    assert_eq!(up_token.len(), 8);
    let inbox = sim.take_inbox(c);
    assert_eq!(count_data(&inbox), 1);
    assert_eq!(
        inbox[0].1.lp.pit_token.as_ref(),
        Some(&token),
        "consumer's token echoed"
    );
    // Without a token the consumer gets a bare Data (no LpPacket needed).
    sim.express(c, &interest("/p/u", 2));
    sim.run_for(ms(100));
    let inbox = sim.take_inbox(c);
    assert_eq!(inbox[0].1.lp, LpHeaders::default());
}

#[test]
fn stale_token_falls_back_to_name_matching() {
    let (mut sim, r0, r1) = chain(9, Config::default());
    // The producer answers with a foreign 8-byte token: name matching must still work.
    let prod = sim.producer(
        r1,
        "/p",
        Box::new(|i: &Interest| {
            let lp = LpHeaders {
                pit_token: Some(Bytes::from_static(&[9; 8])),
                ..Default::default()
            };
            Some(wrap_fragment(data(&i.name, b"x", None), &lp, None))
        }),
    );
    let _ = prod;
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/p/fallback", 1));
    sim.run_for(ms(100));
    assert_eq!(sim.data_names(c), vec!["/p/fallback"]);
}

#[test]
fn localhost_scope_and_management_routing() {
    let (mut sim, r0, r1) = chain(10, Config::default());
    let local = sim.attach_app(r0, FaceScope::Local);
    let remote = sim.attach_app(r0, FaceScope::NonLocal);
    sim.express(remote, &interest("/localhost/nfd/rib/list", 1));
    sim.express(remote, &interest("/localhost/anything", 2));
    sim.run_for(ms(10));
    assert_eq!(sim.nodes[r0].counters().drops.get(DropReason::Scope), 2);
    assert!(sim.nodes[r0].poll_management().is_none());
    sim.express(local, &interest("/localhost/nfd/faces/list", 3));
    sim.run_for(ms(10));
    let req = sim.nodes[r0]
        .poll_management()
        .expect("queued for management");
    assert_eq!(req.face, sim.apps[local].face);
    assert_eq!(req.interest.name.to_string(), "/localhost/nfd/faces/list");
    let reply = data(&req.interest.name, b"resp", Some(1000));
    sim.nodes[r0].reply_management(req.face, req.pit_token, reply);
    sim.run_for(ms(10));
    assert_eq!(sim.data_names(local), vec!["/localhost/nfd/faces/list"]);
    // /localhost never leaves by a non-local face, even with a route.
    let f01 = sim.nodes[r0].fib_lookup(&name("/p")).unwrap().1[0].face;
    sim.nodes[r0]
        .fib_add_nexthop(&name("/localhost/x"), f01, 1)
        .unwrap();
    sim.express(local, &interest("/localhost/x/1", 4));
    sim.run_for(ms(50));
    assert_eq!(
        nack_reasons(&sim.take_inbox(local)),
        vec![NackReason::NoRoute]
    );
    assert_eq!(sim.nodes[r1].counters().n_in_interests, 0);
}

#[test]
fn localhop_goes_one_hop_only() {
    let mut sim = Sim::new(11);
    let r0 = sim.add_node(Config::default());
    let r1 = sim.add_node(Config::default());
    let r2 = sim.add_node(Config::default());
    let (f01, _) = sim.link(r0, r1, LinkOpts::default());
    let (f12, _) = sim.link(r1, r2, LinkOpts::default());
    sim.nodes[r0]
        .fib_add_nexthop(&name("/localhop"), f01, 1)
        .unwrap();
    sim.nodes[r1]
        .fib_add_nexthop(&name("/localhop"), f12, 1)
        .unwrap();
    let prod = sim.producer(r1, "/localhop/svc", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/localhop/svc/a", 1));
    sim.express(c, &interest("/localhop/other/b", 2));
    sim.run_for(ms(100));
    assert_eq!(
        sim.apps[prod].interests_seen, 1,
        "delivered to R1's local app"
    );
    assert_eq!(
        sim.nodes[r2].counters().n_in_interests,
        0,
        "not forwarded a second hop"
    );
    let inbox = sim.take_inbox(c);
    assert_eq!(count_data(&inbox), 1);
    assert_eq!(nack_reasons(&inbox), vec![NackReason::NoRoute]);
}

#[test]
fn hop_limit_is_decremented_and_zero_is_dropped() {
    let (mut sim, r0, r1) = chain(12, Config::default());
    let prod = sim.producer(r1, "/p", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    let mut i = interest("/p/h2", 1);
    i.hop_limit = Some(2);
    sim.express(c, &i);
    sim.run_for(ms(50));
    let seen = sim.take_inbox(prod);
    match &seen[0].1.packet {
        NetPacket::Interest(i) => assert_eq!(
            i.hop_limit,
            Some(0),
            "2 - R0 - R1 = 0, still local delivery"
        ),
        _ => unreachable!(),
    }
    assert_eq!(sim.data_names(c), vec!["/p/h2"]);
    // HopLimit 1: zero after R0, so it cannot go to the non-local face toward R1.
    let mut j = interest("/p/h1", 2);
    j.hop_limit = Some(1);
    sim.express(c, &j);
    let mut k = interest("/p/h0", 3);
    k.hop_limit = Some(0);
    sim.express(c, &k);
    sim.run_for(ms(50));
    assert_eq!(sim.apps[prod].interests_seen, 1);
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::HopLimit),
        1,
        "HopLimit 0 on arrival"
    );
    assert_eq!(nack_reasons(&sim.take_inbox(c)), vec![NackReason::NoRoute]);
}

#[test]
fn cs_capacity_is_enforced_in_bytes() {
    let cfg = Config {
        cs_capacity_bytes: 600,
        ..Config::default()
    };
    let (mut sim, r0, r1) = chain(13, cfg);
    let _prod = sim.producer(
        r1,
        "/p",
        Box::new(|i: &Interest| Some(data(&i.name, &[0u8; 150], Some(10_000)))),
    );
    let c = sim.attach_app(r0, FaceScope::Local);
    for n in 0..10u32 {
        sim.express(c, &interest(&format!("/p/seg{n}"), n + 1));
        sim.run_for(ms(20));
    }
    assert_eq!(sim.data_names(c).len(), 10);
    let info = sim.nodes[r0].cs_info();
    assert!(info.n_bytes <= 600, "{info:?}");
    assert!(info.n_entries >= 2 && info.n_entries < 10, "{info:?}");
    // The most recent segment is still cached, the oldest is not.
    let n_before = sim.nodes[r0].cs_info().n_hits;
    sim.express(c, &interest("/p/seg9", 100));
    sim.express(c, &interest("/p/seg0", 101));
    sim.run_for(ms(20));
    assert_eq!(sim.nodes[r0].cs_info().n_hits, n_before + 1);
    // cs/erase and cs/config.
    assert!(sim.nodes[r0].cs_erase(&name("/p"), 100) >= 2);
    assert_eq!(sim.nodes[r0].cs_info().n_entries, 0);
    sim.nodes[r0].cs_config(Some(1), None, None, Some(false));
    assert_eq!(sim.nodes[r0].cs_info().capacity_packets, 1);
    assert!(!sim.nodes[r0].cs_info().serve);
}

#[test]
fn unsolicited_data_is_dropped_unless_policy_admits_it() {
    let (mut sim, r0, _) = chain(14, Config::default());
    let app = sim.attach_app(r0, FaceScope::Local);
    sim.app_send(app, data(&name("/u/1"), b"x", Some(1000)));
    sim.run_for(ms(10));
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::Unsolicited),
        1
    );
    assert_eq!(sim.nodes[r0].cs_info().n_entries, 0);

    let cfg = Config {
        unsolicited: UnsolicitedPolicy::AdmitLocal,
        ..Config::default()
    };
    let (mut sim, r0, _) = chain(15, cfg);
    let app = sim.attach_app(r0, FaceScope::Local);
    let remote = sim.attach_app(r0, FaceScope::NonLocal);
    sim.app_send(app, data(&name("/u/1"), b"x", Some(1000)));
    sim.app_send(remote, data(&name("/u/2"), b"x", Some(1000)));
    sim.run_for(ms(10));
    assert_eq!(sim.nodes[r0].cs_info().n_entries, 1);
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::Unsolicited),
        1
    );
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/u/1", 5));
    sim.run_for(ms(10));
    assert_eq!(sim.data_names(c), vec!["/u/1"]);
}

#[test]
fn flood_of_unique_interests_is_bounded_by_pit_caps() {
    let cfg = Config {
        pit_max_entries: 100,
        pit_max_per_face: 60,
        ..Config::default()
    };
    let (mut sim, r0, r1) = chain(16, cfg);
    let _blackhole = sim.producer(r1, "/p", Box::new(|_| None));
    let _ok = sim.producer(r0, "/ok", echo_producer(None));
    let attacker = sim.attach_app(r0, FaceScope::NonLocal);
    for n in 0..1000u32 {
        sim.express(attacker, &interest(&format!("/p/flood/{n}"), n + 1));
    }
    sim.run_for(ms(50));
    // Once the table is half full, the only face holding entries gets its fair share (half
    // the cap: one share for it, one kept free), below its configured per-face cap of 60.
    assert_eq!(sim.nodes[r0].pit_len(), 50, "fair share");
    let drops = sim.nodes[r0].counters().drops;
    assert_eq!(
        drops.get(DropReason::PitFull) + drops.get(DropReason::FairShare),
        950
    );
    assert_eq!(
        sim.nodes[r0]
            .face(sim.apps[attacker].face)
            .unwrap()
            .pit_in_records(),
        50
    );
    let legit = sim.attach_app(r0, FaceScope::Local);
    sim.express(legit, &interest("/ok/1", 5));
    sim.run_for(ms(50));
    assert_eq!(
        sim.data_names(legit),
        vec!["/ok/1"],
        "other faces still get service"
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.nodes[r0].pit_len(), 0);
    assert_eq!(
        sim.nodes[r0]
            .face(sim.apps[attacker].face)
            .unwrap()
            .pit_in_records(),
        0
    );
}

#[test]
fn malformed_and_oversized_packets_are_counted() {
    let (mut sim, r0, _) = chain(17, Config::default());
    let app = sim.attach_app(r0, FaceScope::Local);
    sim.app_send(app, Bytes::from_static(&[0x05, 0x10, 0x07]));
    sim.app_send(app, Bytes::from(vec![0x06; 9000]));
    // Interest with an unknown critical element (type 0x4B = odd) after the Name.
    sim.app_send(
        app,
        Bytes::from_static(&[0x05, 0x08, 0x07, 0x03, 0x08, 0x01, 0x61, 0x4B, 0x01, 0x00]),
    );
    // LpPacket with an unknown non-ignorable header.
    sim.app_send(app, Bytes::from_static(&[0x64, 0x03, 0x55, 0x01, 0x00]));
    sim.run_for(ms(10));
    let d = sim.nodes[r0].counters().drops;
    assert_eq!(d.get(DropReason::Malformed), 1);
    assert_eq!(d.get(DropReason::Oversized), 1);
    assert_eq!(d.get(DropReason::UnknownCritical), 2);
}

#[test]
fn congestion_marks_are_added_and_propagated() {
    let (mut sim, r0, r1) = chain(18, Config::default());
    let prod = sim.producer(
        r1,
        "/p",
        Box::new(|i: &Interest| {
            let lp = LpHeaders {
                congestion_mark: Some(1),
                ..Default::default()
            };
            Some(wrap_fragment(data(&i.name, b"x", None), &lp, None))
        }),
    );
    let c = sim.attach_app(r0, FaceScope::Local);
    let cf = sim.apps[c].face;
    sim.express(c, &interest("/p/cm", 1));
    sim.run_for(ms(50));
    let inbox = sim.take_inbox(c);
    assert_eq!(
        inbox[0].1.lp.congestion_mark,
        Some(1),
        "mark from upstream Data kept"
    );
    // A congested face marks what leaves it (R1's face toward the producer).
    let pf = sim.apps[prod].face;
    sim.nodes[r1].set_face_congested(pf, true);
    sim.express(c, &interest("/p/cm2", 2));
    sim.run_for(ms(50));
    let up = sim.take_inbox(prod);
    assert_eq!(up.last().unwrap().1.lp.congestion_mark, Some(1));
    assert_eq!(
        up.first().unwrap().1.lp.congestion_mark,
        None,
        "not congested before"
    );
    let _ = cf;
}

#[test]
fn lossy_links_still_deliver_with_consumer_retransmission() {
    let mut sim = Sim::new(19);
    let r0 = sim.add_node(Config::default());
    let r1 = sim.add_node(Config::default());
    let (f01, _) = sim.link(
        r0,
        r1,
        LinkOpts {
            loss_ppm: 300_000,
            link_type: LinkType::PointToPoint,
            ..LinkOpts::default()
        },
    );
    sim.nodes[r0].fib_add_nexthop(&name("/p"), f01, 1).unwrap();
    let _prod = sim.producer(r1, "/p", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    let mut got = 0;
    for n in 0..20u32 {
        for attempt in 0..8u32 {
            sim.express(c, &interest(&format!("/p/{n}"), n * 100 + attempt + 1));
            sim.run_for(ms(300));
            if count_data(&sim.take_inbox(c)) > 0 {
                got += 1;
                break;
            }
        }
    }
    assert_eq!(got, 20);
    assert!(
        sim.nodes[r0].counters().n_out_interests > 20,
        "some retransmissions were needed"
    );
}

#[test]
fn admission_hook_can_refuse_interests() {
    struct OnlyTwoPerFace;
    impl amicn_forwarder::core::InterestAdmission for OnlyTwoPerFace {
        fn admit(
            &mut self,
            _face: amicn_forwarder::core::FaceId,
            name: &amicn_tlv::Name,
            face_records: usize,
            _pit_len: usize,
        ) -> bool {
            face_records < 2 && name.len() > 1
        }
    }
    let (mut sim, r0, r1) = chain(20, Config::default());
    let _silent = sim.producer(r1, "/p", Box::new(|_| None));
    sim.nodes[r0].set_admission(Box::new(OnlyTwoPerFace));
    let c = sim.attach_app(r0, FaceScope::Local);
    for n in 0..5u32 {
        sim.express(c, &interest(&format!("/p/{n}"), n + 1));
    }
    sim.run_for(ms(10));
    assert_eq!(sim.nodes[r0].pit_len(), 2);
    assert_eq!(sim.nodes[r0].counters().drops.get(DropReason::Admission), 3);
}

#[test]
fn no_cache_policy_keeps_data_out_of_the_cs() {
    let (mut sim, r0, r1) = chain(21, Config::default());
    let _prod = sim.producer(
        r1,
        "/p",
        Box::new(|i: &Interest| {
            let lp = LpHeaders {
                cache_policy: Some(1),
                ..Default::default()
            };
            Some(wrap_fragment(
                data(&i.name, b"secret", Some(1000)),
                &lp,
                None,
            ))
        }),
    );
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/p/nc", 1));
    sim.run_for(ms(50));
    assert_eq!(sim.data_names(c), vec!["/p/nc"]);
    assert_eq!(
        sim.nodes[r1].cs_info().n_entries,
        0,
        "NoCache at the first hop"
    );
    // R1 forwards the Data without the hop-by-hop CachePolicy, so R0 may cache it.
    assert_eq!(sim.nodes[r0].cs_info().n_entries, 1);
}

#[test]
fn next_hop_face_id_and_incoming_face_id_on_local_faces() {
    let (mut sim, r0, r1) = chain(22, Config::default());
    let _p1 = sim.producer(r1, "/p", echo_producer(None));
    // A second local producer on R0 that the route does not point to.
    let p0 = sim.producer(r0, "/other", echo_producer(None));
    let p0_face = sim.apps[p0].face;
    let c = sim.attach_app(r0, FaceScope::Local);
    let cf = sim.apps[c].face;
    sim.nodes[r0]
        .face_mut(cf)
        .unwrap()
        .options
        .local_fields_enabled = true;
    let lp = LpHeaders {
        next_hop_face_id: Some(p0_face.0),
        ..Default::default()
    };
    sim.app_send(
        c,
        wrap_fragment(interest("/p/direct", 1).encode(), &lp, None),
    );
    sim.run_for(ms(50));
    assert_eq!(
        sim.apps[p0].interests_seen, 1,
        "NextHopFaceId overrides the FIB"
    );
    let inbox = sim.take_inbox(c);
    assert_eq!(count_data(&inbox), 1);
    assert_eq!(
        inbox[0].1.lp.incoming_face_id,
        Some(p0_face.0),
        "IncomingFaceId = producer face"
    );
    // Served again from the CS: IncomingFaceId is the Content Store's reserved id 254.
    sim.express(c, &interest("/p/direct", 2));
    sim.run_for(ms(50));
    let inbox = sim.take_inbox(c);
    assert_eq!(inbox[0].1.lp.incoming_face_id, Some(254));
    // NextHopFaceId from a non-local face is ignored: the FIB decides.
    let remote = sim.attach_app(r0, FaceScope::NonLocal);
    let lp = LpHeaders {
        next_hop_face_id: Some(p0_face.0),
        ..Default::default()
    };
    sim.app_send(
        remote,
        wrap_fragment(interest("/p/viafib", 3).encode(), &lp, None),
    );
    sim.run_for(ms(50));
    assert_eq!(sim.apps[p0].interests_seen, 1);
    assert_eq!(sim.data_names(remote), vec!["/p/viafib"]);
}

#[test]
fn aggregated_entry_lives_as_long_as_its_longest_in_record() {
    let (mut sim, r0, r1) = chain(23, Config::default());
    let _silent = sim.producer(r1, "/p", Box::new(|_| None));
    let c1 = sim.attach_app(r0, FaceScope::Local);
    let c2 = sim.attach_app(r0, FaceScope::Local);
    let mut short = interest("/p/agg", 1);
    short.lifetime_ms = Some(200);
    let mut long = interest("/p/agg", 2);
    long.lifetime_ms = Some(2000);
    sim.express(c1, &short);
    sim.express(c2, &long);
    sim.run_for(ms(1000));
    assert_eq!(sim.nodes[r0].pit_len(), 1, "kept for the longer lifetime");
    sim.run_for(ms(1100));
    assert_eq!(sim.nodes[r0].pit_len(), 0);
    assert_eq!(sim.nodes[r0].status().counters.n_unsatisfied_interests, 1);
}

#[test]
fn duplicate_nonce_on_a_multi_access_link_is_dropped_without_nack() {
    let mut sim = Sim::new(24);
    let r0 = sim.add_node(Config::default());
    let r1 = sim.add_node(Config::default());
    let opts = LinkOpts {
        link_type: LinkType::MultiAccess,
        ..LinkOpts::default()
    };
    let (f01, f10) = sim.link(r0, r1, opts);
    sim.nodes[r0].fib_add_nexthop(&name("/ma"), f01, 1).unwrap();
    sim.nodes[r1].fib_add_nexthop(&name("/ma"), f10, 1).unwrap();
    let _silent = sim.producer(r0, "/ma/x", Box::new(|_| None));
    let c = sim.attach_app(r1, FaceScope::Local);
    // R1 forwards the consumer's Interest to R0 over the multi-access link; R0's producer is
    // silent, so the entry stays pending.
    sim.express(c, &interest("/ma/x/1", 9));
    sim.run_for(ms(20));
    // The same Interest (same nonce) heard again on the multi-access face.
    let dup = interest("/ma/x/1", 9).encode();
    sim.nodes[r0].on_packet(sim.now, f01, dup);
    sim.run_for(ms(20));
    assert_eq!(sim.nodes[r0].counters().drops.get(DropReason::Loop), 1);
    assert_eq!(
        sim.nodes[r0].counters().n_out_nacks,
        0,
        "no Nack on multi-access links"
    );
}
