//! Strategy behaviour in virtual time: best-route failover and retransmission suppression,
//! multicast fan-out, and the adaptive strategy moving away from a next hop that times out.

#![allow(clippy::unwrap_used)]

mod sim_net;

use std::time::Duration;

use amicn_forwarder::core::{Config, DropReason, FaceScope, StrategyKind};
use sim_net::{LinkOpts, Sim, count_data, echo_producer, interest, nack_reasons, name};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// R0 with two upstreams R1 (cost 1) and R2 (cost 5) for `prefix`; returns (sim, r0, r1, r2,
/// face R0->R1, face R0->R2).
fn diamond(
    seed: u64,
    prefix: &str,
) -> (
    Sim,
    usize,
    usize,
    usize,
    amicn_forwarder::core::FaceId,
    amicn_forwarder::core::FaceId,
) {
    let mut sim = Sim::new(seed);
    let r0 = sim.add_node(Config::default());
    let r1 = sim.add_node(Config::default());
    let r2 = sim.add_node(Config::default());
    let (f01, _) = sim.link(r0, r1, LinkOpts::default());
    let (f02, _) = sim.link(
        r0,
        r2,
        LinkOpts {
            delay: ms(20),
            ..LinkOpts::default()
        },
    );
    sim.nodes[r0]
        .fib_add_nexthop(&name(prefix), f01, 1)
        .unwrap();
    sim.nodes[r0]
        .fib_add_nexthop(&name(prefix), f02, 5)
        .unwrap();
    (sim, r0, r1, r2, f01, f02)
}

#[test]
fn best_route_prefers_lowest_cost_and_fails_over_on_nack() {
    let (mut sim, r0, r1, r2, _, _) = diamond(21, "/f");
    let p2 = sim.producer(r2, "/f", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    // R1 has no route: it nacks, and R0 tries R2.
    sim.express(c, &interest("/f/a", 1));
    sim.run_for(ms(200));
    let inbox = sim.take_inbox(c);
    assert_eq!(count_data(&inbox), 1);
    assert!(
        nack_reasons(&inbox).is_empty(),
        "the consumer never sees R1's Nack"
    );
    assert_eq!(sim.nodes[r1].counters().n_in_interests, 1, "cheapest first");
    assert_eq!(sim.apps[p2].interests_seen, 1);
    // Once R1 can answer, the cheaper path is used again.
    let p1 = sim.producer(r1, "/f", echo_producer(None));
    sim.express(c, &interest("/f/b", 2));
    sim.run_for(ms(200));
    assert_eq!(count_data(&sim.take_inbox(c)), 1);
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(sim.apps[p2].interests_seen, 1);
}

#[test]
fn all_upstreams_nacked_gives_the_least_severe_reason() {
    // Neither R1 nor R2 has a route: R0 tries both, then nacks its consumer once.
    let (mut sim, r0, _r1, _r2, _, _) = diamond(22, "/g");
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/g/a", 1));
    sim.run_for(ms(200));
    assert_eq!(
        nack_reasons(&sim.take_inbox(c)),
        vec![amicn_tlv::NackReason::NoRoute]
    );
    assert_eq!(sim.nodes[r0].pit_len(), 0);
    assert_eq!(sim.nodes[r0].counters().n_out_interests, 2, "R1 then R2");
}

#[test]
fn best_route_suppresses_fast_retransmissions_then_tries_another_upstream() {
    let (mut sim, r0, r1, r2, _, _) = diamond(23, "/s");
    let p1 = sim.producer(r1, "/s", Box::new(|_| None));
    let p2 = sim.producer(r2, "/s", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/s/x", 1));
    sim.run_for(ms(3));
    // A retransmission 3 ms later (new nonce) is within the 10 ms suppression interval.
    sim.express(c, &interest("/s/x", 2));
    sim.run_for(ms(3));
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::Suppressed),
        1
    );
    assert_eq!(sim.apps[p2].interests_seen, 0);
    // 20 ms later it is forwarded, to the next hop not tried yet.
    sim.run_for(ms(20));
    sim.express(c, &interest("/s/x", 3));
    sim.run_for(ms(100));
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(sim.apps[p2].interests_seen, 1);
    assert_eq!(count_data(&sim.take_inbox(c)), 1);
}

#[test]
fn multicast_sends_to_every_upstream_and_returns_one_data() {
    let (mut sim, r0, r1, r2, _, _) = diamond(24, "/m");
    sim.nodes[r0]
        .set_strategy(&name("/m"), &name("/localhost/nfd/strategy/multicast"))
        .unwrap();
    let p1 = sim.producer(r1, "/m", echo_producer(None));
    let p2 = sim.producer(r2, "/m", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/m/all", 1));
    sim.run_for(ms(200));
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(sim.apps[p2].interests_seen, 1);
    assert_eq!(
        count_data(&sim.take_inbox(c)),
        1,
        "the slower copy is unsolicited at R0"
    );
    assert_eq!(
        sim.nodes[r0].counters().drops.get(DropReason::Unsolicited),
        1
    );
    assert_eq!(
        sim.nodes[r0]
            .strategy_choices()
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect::<Vec<_>>(),
        vec![
            (
                "/".to_string(),
                "/localhost/nfd/strategy/best-route/v=5".to_string()
            ),
            (
                "/m".to_string(),
                "/localhost/nfd/strategy/multicast/v=4".to_string()
            ),
        ]
    );
    assert_eq!(
        sim.nodes[r0].effective_strategy(&name("/m/x")),
        StrategyKind::Multicast
    );
    assert!(sim.nodes[r0].unset_strategy(&name("/m")).unwrap());
    assert!(sim.nodes[r0].unset_strategy(&name("/")).is_err());
    assert!(
        sim.nodes[r0]
            .set_strategy(&name("/m"), &name("/localhost/nfd/strategy/nope"))
            .is_err()
    );
}

#[test]
fn asf_moves_to_the_other_next_hop_after_a_timeout() {
    let (mut sim, r0, r1, r2, _, f02) = diamond(25, "/a");
    sim.nodes[r0]
        .set_strategy(&name("/a"), &name("/localhost/nfd/strategy/asf/v=5"))
        .unwrap();
    let p1 = sim.producer(r1, "/a", Box::new(|_| None));
    let p2 = sim.producer(r2, "/a", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    // First Interest: both unmeasured, cheaper R1 is chosen; it never answers.
    let mut i = interest("/a/1", 1);
    i.lifetime_ms = Some(200);
    sim.express(c, &i);
    sim.run_for(ms(300));
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(count_data(&sim.take_inbox(c)), 0);
    let m = sim.nodes[r0].measurements(&name("/a")).unwrap();
    let f01 = m.faces.iter().find(|f| f.face != f02).unwrap();
    assert_eq!(f01.timeouts, 1);
    // Next Interests go to R2, which answers; its RTT is measured (2 x 20 ms links + app).
    for n in 2..5u32 {
        sim.express(c, &interest(&format!("/a/{n}"), n));
        sim.run_for(ms(100));
    }
    assert_eq!(count_data(&sim.take_inbox(c)), 3);
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(sim.apps[p2].interests_seen, 3);
    let srtt = sim.nodes[r0]
        .measurements(&name("/a"))
        .unwrap()
        .get(f02)
        .unwrap()
        .srtt_ns
        .unwrap();
    assert!((40_000_000..45_000_000).contains(&srtt), "srtt {srtt}");
}

#[test]
fn asf_retransmission_goes_to_an_unused_next_hop() {
    let (mut sim, r0, r1, r2, _, _) = diamond(26, "/r");
    sim.nodes[r0]
        .set_strategy(&name("/r"), &name("/localhost/nfd/strategy/asf"))
        .unwrap();
    let p1 = sim.producer(r1, "/r", Box::new(|_| None));
    let p2 = sim.producer(r2, "/r", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/r/x", 1));
    sim.run_for(ms(50));
    sim.express(c, &interest("/r/x", 2));
    sim.run_for(ms(100));
    assert_eq!(sim.apps[p1].interests_seen, 1);
    assert_eq!(sim.apps[p2].interests_seen, 1);
    assert_eq!(count_data(&sim.take_inbox(c)), 1);
}

#[test]
fn asf_probes_an_alternative_after_the_probing_interval() {
    let mut sim = Sim::new(27);
    let cfg = Config {
        asf_probing_interval: Duration::from_secs(1),
        ..Config::default()
    };
    let r0 = sim.add_node(cfg);
    let r1 = sim.add_node(Config::default());
    let r2 = sim.add_node(Config::default());
    let (f01, _) = sim.link(r0, r1, LinkOpts::default());
    let (f02, _) = sim.link(r0, r2, LinkOpts::default());
    sim.nodes[r0].fib_add_nexthop(&name("/q"), f01, 1).unwrap();
    sim.nodes[r0].fib_add_nexthop(&name("/q"), f02, 5).unwrap();
    sim.nodes[r0]
        .set_strategy(&name("/q"), &name("/localhost/nfd/strategy/asf"))
        .unwrap();
    let p1 = sim.producer(r1, "/q", echo_producer(None));
    let p2 = sim.producer(r2, "/q", echo_producer(None));
    let c = sim.attach_app(r0, FaceScope::Local);
    for n in 0..30u32 {
        sim.express(c, &interest(&format!("/q/{n}"), n + 1));
        sim.run_for(ms(100));
    }
    assert_eq!(
        sim.apps[p1].interests_seen, 30,
        "best path carries everything"
    );
    assert!(
        (2..=3).contains(&sim.apps[p2].interests_seen),
        "one probe per second: {}",
        sim.apps[p2].interests_seen
    );
    let m = sim.nodes[r0].measurements(&name("/q")).unwrap();
    assert!(
        m.get(f02).unwrap().srtt_ns.is_some(),
        "the alternative got measured"
    );
}

#[test]
fn removing_a_face_cleans_fib_and_pit() {
    let (mut sim, r0, r1, _r2, f01, f02) = diamond(28, "/x");
    let _p1 = sim.producer(r1, "/x", Box::new(|_| None));
    let c = sim.attach_app(r0, FaceScope::Local);
    sim.express(c, &interest("/x/1", 1));
    sim.run_for(ms(20));
    assert_eq!(sim.nodes[r0].pit_len(), 1);
    assert!(sim.nodes[r0].remove_face(f01));
    assert_eq!(
        sim.nodes[r0]
            .fib_get(&name("/x"))
            .unwrap()
            .iter()
            .map(|h| h.face)
            .collect::<Vec<_>>(),
        vec![f02]
    );
    let cf = sim.apps[c].face;
    assert!(sim.nodes[r0].remove_face(cf));
    assert_eq!(
        sim.nodes[r0].pit_len(),
        0,
        "entry without downstreams is gone"
    );
    assert!(!sim.nodes[r0].remove_face(cf));
    let mut kinds = Vec::new();
    while let Some(e) = sim.nodes[r0].poll_face_event() {
        kinds.push((e.face, e.kind));
    }
    assert_eq!(kinds.len(), 5, "3 created + 2 destroyed: {kinds:?}");
    assert_eq!(sim.nodes[r0].fib_entries().len(), 1);
}
