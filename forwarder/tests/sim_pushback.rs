//! Satisfaction-based pushback across a line of three forwarders, in virtual time: attackers
//! behind the far forwarder flood unique Interests that the producer never answers while a
//! legitimate consumer on the same forwarder fetches through the same upstream faces.

#![allow(clippy::unwrap_used)]

mod sim_net;

use std::time::Duration;

use amicn_forwarder::core::{Config, DropReason, FaceScope};
use amicn_tlv::{Interest, Name};
use sim_net::{LinkOpts, Sim, count_data, data, interest, name};

const ATTACKERS: usize = 4;
const TICK: Duration = Duration::from_millis(10);

struct Outcome {
    /// Legitimate Interests sent and answered in the second half of the run.
    legit_sent: usize,
    legit_answered: usize,
    /// Interests refused at each forwarder (r0 next to the producer, r2 next to the
    /// attackers) for their faces' PIT shares or towards an upstream that pushed back.
    squeeze_drops: [u64; 3],
    /// Pushback-weighted satisfaction ratio of the attackers' faces at r2.
    attacker_ratio: f64,
}

/// r0 — r1 — r2, producer on r0, attackers and the consumer on r2; every forwarder has the
/// same PIT cap. The flood alone would fill the upstream faces' shares. Each attacker sends
/// `per_tick` Interests every 10 ms, the consumer two: 25 per tick is a flood of 50 times the
/// legitimate rate.
fn run(pushback: bool, seconds: u64, per_tick: usize) -> Outcome {
    let cfg = Config {
        pit_max_entries: 400,
        pushback,
        ..Config::default()
    };
    let mut sim = Sim::new(41);
    let r: Vec<usize> = (0..3).map(|_| sim.add_node(cfg.clone())).collect();
    let (_, up10) = sim.link(r[0], r[1], LinkOpts::default());
    let (_, up21) = sim.link(r[1], r[2], LinkOpts::default());
    sim.nodes[r[1]]
        .fib_add_nexthop(&name("/p"), up10, 1)
        .unwrap();
    sim.nodes[r[2]]
        .fib_add_nexthop(&name("/p"), up21, 1)
        .unwrap();
    let _producer = sim.producer(
        r[0],
        "/p",
        Box::new(|i: &Interest| {
            i.name
                .to_string()
                .starts_with("/p/ok/")
                .then(|| data(&i.name, b"reading", None))
        }),
    );
    let attackers: Vec<usize> = (0..ATTACKERS)
        .map(|_| sim.attach_app(r[2], FaceScope::NonLocal))
        .collect();
    let legit = sim.attach_app(r[2], FaceScope::Local);
    let ticks = seconds * 1000 / TICK.as_millis() as u64;
    let mut nonce = 1u32;
    let (mut legit_sent, mut legit_answered) = (0, 0);
    for t in 0..ticks {
        for &a in &attackers {
            for _ in 0..per_tick {
                nonce += 1;
                sim.express(a, &interest(&format!("/p/flood/{a}/{nonce}"), nonce));
            }
        }
        let second_half = t >= ticks / 2;
        for _ in 0..2 {
            nonce += 1;
            let mut i = Interest::new(Name::from_uri(&format!("/p/ok/{nonce}")).unwrap());
            i.nonce = Some(nonce);
            i.lifetime_ms = Some(500);
            sim.express(legit, &i);
            if second_half {
                legit_sent += 1;
            }
        }
        sim.run_for(TICK);
        let got = count_data(&sim.take_inbox(legit));
        if second_half {
            legit_answered += got;
        }
    }
    let squeeze_drops = [0, 1, 2].map(|k| {
        let drops = &sim.nodes[r[k]].counters().drops;
        drops.get(DropReason::FairShare) + drops.get(DropReason::CongestedUpstream)
    });
    let attacker_ratio = attackers
        .iter()
        .map(|&a| {
            sim.nodes[r[2]]
                .face(sim.apps[a].face)
                .unwrap()
                .satisfaction_ratio()
        })
        .fold(0.0, f64::max);
    Outcome {
        legit_sent,
        legit_answered,
        squeeze_drops,
        attacker_ratio,
    }
}

#[test]
fn pushback_keeps_the_legitimate_consumer_served_through_a_flooded_line() {
    let with = run(true, 6, 25);
    let without = run(false, 6, 25);
    for (label, o) in [("pushback", &with), ("equal shares", &without)] {
        eprintln!(
            "{label}: legitimate {}/{} answered, squeeze drops r0/r1/r2 {:?}, attacker ratio {:.3}",
            o.legit_answered, o.legit_sent, o.squeeze_drops, o.attacker_ratio
        );
    }
    assert!(
        share(&with) >= 0.95,
        "with pushback {}/{} answered",
        with.legit_answered,
        with.legit_sent
    );
    assert!(
        share(&without) < 0.5,
        "equal shares alone let the flood crowd the upstream: {}/{} answered",
        without.legit_answered,
        without.legit_sent
    );
    assert!(with.attacker_ratio < 0.05, "{}", with.attacker_ratio);
    // The squeeze happens next to the attackers, so the forwarders upstream see little of it.
    assert!(with.squeeze_drops[2] > 0);
    assert!(with.squeeze_drops[0] < with.squeeze_drops[2] / 10);
}

fn share(o: &Outcome) -> f64 {
    o.legit_answered as f64 / o.legit_sent as f64
}

/// Past the point where refusing most of the flood at r2 still lets enough of it through to
/// fill r1's table: the limit r2 learns from r1's Nacks, shared out by the faces' records,
/// keeps the flood's part of it small however fast the attackers send.
#[test]
fn pushback_holds_at_two_hundred_and_a_thousand_times_the_legitimate_rate() {
    for per_tick in [100, 500] {
        let o = run(true, 6, per_tick);
        eprintln!(
            "{}× flood: legitimate {}/{} answered, squeeze drops r0/r1/r2 {:?}, attacker ratio {:.3}",
            per_tick * ATTACKERS / 2,
            o.legit_answered,
            o.legit_sent,
            o.squeeze_drops,
            o.attacker_ratio
        );
        assert!(
            share(&o) >= 0.95,
            "{per_tick} per tick: {}/{} answered",
            o.legit_answered,
            o.legit_sent
        );
        assert!(
            o.squeeze_drops[0] < o.squeeze_drops[2] / 10,
            "{:?}",
            o.squeeze_drops
        );
    }
}
