//! Forwarding shards: with `workers > 1` the packet space is split by a hash of the first k
//! name components over N cores, each with its own PIT and CS on its own thread.
//!
//! The thread that owns the sockets and management is shard 0. It classifies every received
//! packet ([`route_key`]) and hands the packets of shards 1..N to their threads over ordered
//! channels; state changes (faces, FIB next hops, strategies, CS settings) travel on the same
//! channels, so a shard always sees a route before any Interest that arrived after the command
//! that added it. Every shard adds and removes faces in the same order, so face ids agree.
//! Shards send straight into the faces' send queues.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_face::{FaceTx, SendStatus};
use amicn_tlv::{Name, TlvReader, lp, tt};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::core::{
    Config as CoreConfig, DropReason, FaceCounters, FaceEvent, FaceId, FaceOptions, Forwarder,
    ForwarderStatus, IdHasher, MgmtRequest, Time, token_shard,
};
use crate::mgmt::{CsState, ForwarderCounters, ManagedCore, Tables};

use super::EVENT_BATCH;

/// Packets that may wait in one shard's channel before further ones are dropped.
const SHARD_QUEUE_PACKETS: usize = 1 << 14;

/// How often a shard publishes its counters for status and metrics.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Encoded `/localhost/nfd` prefix of a Name's TLV-VALUE: management lives on shard 0.
const MGMT_PREFIX: &[u8] = b"\x08\x09localhost\x08\x03nfd";

/// How a packet picks its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKey {
    /// A Data or Nack carrying a PitToken that names its shard.
    Token(u8),
    /// Hash of the first k name components (of the whole name when shorter).
    Hash(u64),
    /// `/localhost/nfd`, or anything that could not be parsed: shard 0, where the core
    /// counts the drop.
    Zero,
}

/// Reads just enough of a packet to choose its shard: the LpPacket's PitToken, Nack header and
/// fragment, then the network packet's type and Name.
pub(crate) fn route_key(pkt: &Bytes, k: usize) -> RouteKey {
    route_key_inner(pkt, k).unwrap_or(RouteKey::Zero)
}

fn route_key_inner(pkt: &Bytes, k: usize) -> Option<RouteKey> {
    let outer = TlvReader::new(pkt.clone()).read().ok()?;
    let mut token = None;
    let mut nack = false;
    let net = if outer.typ == lp::LP_PACKET {
        let mut r = TlvReader::new(outer.value);
        let mut frag = None;
        while !r.is_empty() {
            let e = r.read().ok()?;
            match e.typ {
                lp::PIT_TOKEN => token = Some(e.value),
                lp::NACK => nack = true,
                lp::FRAGMENT => frag = Some(e.value),
                _ => {}
            }
        }
        frag?
    } else {
        outer.wire
    };
    let p = TlvReader::new(net).read().ok()?;
    let answer = match p.typ {
        tt::INTEREST => nack,
        tt::DATA => true,
        _ => return None,
    };
    // A downstream's token on an Interest is its own business; only answers carry ours.
    if answer && let Some(s) = token.as_deref().and_then(token_shard) {
        return Some(RouteKey::Token(s));
    }
    let name_el = TlvReader::new(p.value).read().ok()?;
    if name_el.typ != tt::NAME {
        return None;
    }
    if name_el.value.starts_with(MGMT_PREFIX) {
        return Some(RouteKey::Zero);
    }
    let name = Name::decode(name_el.wire).ok()?;
    Some(RouteKey::Hash(name.prefix_hash(k)))
}

/// Shard index for a key among `n` shards.
pub(crate) fn shard_index(key: RouteKey, n: usize) -> usize {
    match key {
        RouteKey::Token(s) if usize::from(s) < n => usize::from(s),
        // A token from a core that does not exist here (stale or foreign): the name decides
        // in the core of shard 0, which matches by name when the token is not its own.
        RouteKey::Token(_) | RouteKey::Zero => 0,
        // Multiply-high spreads a 64-bit hash over n without modulo bias in the low bits.
        RouteKey::Hash(h) => ((u128::from(h) * n as u128) >> 64) as usize,
    }
}

/// A state change or work item for shards 1..N, applied in order.
#[derive(Clone)]
pub(crate) enum ShardMsg {
    Packets(Vec<(FaceId, Bytes)>),
    AddFace {
        id: FaceId,
        options: FaceOptions,
        tx: FaceTx,
    },
    RemoveFace(FaceId),
    UpdateFace(FaceId, FaceOptions),
    FibAdd(Name, FaceId, u64),
    FibRemove(Name, FaceId),
    CsConfigure(Option<u64>, Option<bool>, Option<bool>),
    CsErase(Name, usize),
    StrategySet(Name, Name),
    StrategyUnset(Name),
}

struct Peer {
    tx: mpsc::UnboundedSender<ShardMsg>,
    pending: Vec<(FaceId, Bytes)>,
    in_flight: Arc<AtomicUsize>,
    published: Arc<Mutex<ForwarderStatus>>,
    thread: Option<std::thread::JoinHandle<ForwarderStatus>>,
}

/// Shards 1..N as seen from shard 0.
pub(crate) struct Shards {
    n: usize,
    k: usize,
    peers: Vec<Peer>,
    /// Forwarder-wide CS capacity in packets, as configured (each shard holds a share).
    cs_capacity: u64,
    /// Packets dropped because a shard's channel was full.
    pub(crate) queue_drops: u64,
}

impl Shards {
    /// Starts shards 1..n, each on its own thread with a copy of `core` (its own shard id).
    pub(crate) fn start(
        n: usize,
        k: usize,
        core: &CoreConfig,
        epoch: Instant,
    ) -> std::io::Result<Self> {
        let mut peers = Vec::with_capacity(n.saturating_sub(1));
        let cs_capacity = core.cs_capacity_packets as u64;
        let core = &share_limits(core, n);
        for i in 1..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let in_flight = Arc::new(AtomicUsize::new(0));
            let published = Arc::new(Mutex::new(ForwarderStatus::default()));
            let mut cfg = core.clone();
            cfg.shard_id = u8::try_from(i).unwrap_or(u8::MAX);
            cfg.rng_seed = cfg.rng_seed.wrapping_add(i as u64);
            let worker = Worker {
                core: Forwarder::new(cfg),
                faces: std::collections::HashMap::default(),
                epoch,
                in_flight: in_flight.clone(),
                published: published.clone(),
                last_publish: Instant::now(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("amicn-fwd-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                    {
                        Ok(rt) => rt.block_on(worker.run(rx)),
                        Err(e) => {
                            tracing::error!(shard = i, error = %e, "shard runtime failed");
                            ForwarderStatus::default()
                        }
                    }
                })?;
            peers.push(Peer {
                tx,
                pending: Vec::with_capacity(EVENT_BATCH),
                in_flight,
                published,
                thread: Some(thread),
            });
        }
        Ok(Self {
            n,
            k,
            peers,
            cs_capacity,
            queue_drops: 0,
        })
    }

    /// Number of shards, shard 0 included.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// The shard a received packet belongs to.
    pub(crate) fn pick(&self, pkt: &Bytes) -> usize {
        shard_index(route_key(pkt, self.k), self.n)
    }

    /// Queues a packet for shard `shard` (≥ 1); sent at the next [`Shards::flush`].
    pub(crate) fn queue(&mut self, shard: usize, face: FaceId, pkt: Bytes) {
        let Some(p) = self.peers.get_mut(shard.wrapping_sub(1)) else {
            return;
        };
        if p.in_flight.load(Ordering::Relaxed) + p.pending.len() >= SHARD_QUEUE_PACKETS {
            self.queue_drops += 1;
            return;
        }
        p.pending.push((face, pkt));
    }

    /// Sends the queued packets of every shard.
    pub(crate) fn flush(&mut self) {
        for p in &mut self.peers {
            if !p.pending.is_empty() {
                let batch = std::mem::replace(&mut p.pending, Vec::with_capacity(EVENT_BATCH));
                p.in_flight.fetch_add(batch.len(), Ordering::Relaxed);
                let _ = p.tx.send(ShardMsg::Packets(batch));
            }
        }
    }

    /// Applies a state change on every other shard, after the packets already queued.
    pub(crate) fn broadcast(&mut self, msg: ShardMsg) {
        self.flush();
        for p in &self.peers {
            let _ = p.tx.send(msg.clone());
        }
    }

    /// The latest counters each other shard published (final ones after [`Shards::stop`]).
    pub(crate) fn statuses(&self) -> Vec<ForwarderStatus> {
        self.peers
            .iter()
            .map(|p| p.published.lock().map(|s| *s).unwrap_or_default())
            .collect()
    }

    /// Stops the other shards and keeps their final counters.
    pub(crate) fn stop(&mut self) {
        for p in &mut self.peers {
            // Closing the channel ends the shard's loop once it has drained it.
            let (dead, _) = mpsc::unbounded_channel();
            drop(std::mem::replace(&mut p.tx, dead));
            if let Some(t) = p.thread.take()
                && let Ok(st) = t.join()
                && let Ok(mut g) = p.published.lock()
            {
                *g = st;
            }
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One shard's share of the forwarder-wide table limits: the PIT and CS caps are totals, so
/// N shards together hold what one core would.
pub(crate) fn share_limits(core: &CoreConfig, n: usize) -> CoreConfig {
    let n = n.max(1);
    let mut c = core.clone();
    c.cs_capacity_packets = c.cs_capacity_packets.div_ceil(n);
    c.cs_capacity_bytes = c.cs_capacity_bytes.div_ceil(n);
    c.pit_max_entries = c.pit_max_entries.div_ceil(n);
    c.pit_max_per_face = c.pit_max_per_face.div_ceil(n);
    c.pit_max_bytes = c.pit_max_bytes.div_ceil(n);
    c.pit_max_bytes_per_face = c.pit_max_bytes_per_face.div_ceil(n);
    c
}

/// Forwarder-wide figures from shard 0's status plus the other shards': counters and table
/// sizes add up, the FIB (mirrored everywhere) is counted once. Drop counters come back
/// separately because the core's per-reason counters only add inside the core.
pub(crate) fn merge_status(
    first: ForwarderStatus,
    others: &[ForwarderStatus],
) -> (ForwarderStatus, Vec<(DropReason, u64)>) {
    let mut drops: Vec<(DropReason, u64)> = first.counters.drops.iter().collect();
    let mut s = first;
    for o in others {
        s.n_name_tree_entries += o.n_name_tree_entries;
        s.n_pit_entries += o.n_pit_entries;
        s.n_measurements_entries += o.n_measurements_entries;
        s.n_cs_entries += o.n_cs_entries;
        let (c, d) = (&mut s.counters, &o.counters);
        c.n_in_interests += d.n_in_interests;
        c.n_out_interests += d.n_out_interests;
        c.n_in_data += d.n_in_data;
        c.n_out_data += d.n_out_data;
        c.n_in_nacks += d.n_in_nacks;
        c.n_out_nacks += d.n_out_nacks;
        c.n_satisfied_interests += d.n_satisfied_interests;
        c.n_unsatisfied_interests += d.n_unsatisfied_interests;
        c.n_cs_hits += d.n_cs_hits;
        c.n_cs_misses += d.n_cs_misses;
        for (slot, (_, n)) in drops.iter_mut().zip(d.drops.iter()) {
            slot.1 += n;
        }
    }
    (s, drops)
}

/// Shard 0's core seen by management: reads come from shard 0 (counters from every shard),
/// every change is applied to shard 0 and mirrored to the others.
pub(crate) struct Mirrored<'a> {
    pub(crate) core: &'a mut Forwarder,
    pub(crate) shards: &'a mut Shards,
}

impl Tables for Mirrored<'_> {
    fn face(&self, face: FaceId) -> Option<(FaceOptions, FaceCounters)> {
        Tables::face(&*self.core, face)
    }

    fn faces(&self) -> Vec<(FaceId, FaceOptions, FaceCounters)> {
        Tables::faces(&*self.core)
    }

    fn update_face(&mut self, face: FaceId, options: FaceOptions) -> bool {
        let ok = Tables::update_face(self.core, face, options.clone());
        if ok {
            self.shards.broadcast(ShardMsg::UpdateFace(face, options));
        }
        ok
    }

    fn fib_add_next_hop(&mut self, prefix: &Name, face: FaceId, cost: u64) {
        Tables::fib_add_next_hop(self.core, prefix, face, cost);
        self.shards
            .broadcast(ShardMsg::FibAdd(prefix.clone(), face, cost));
    }

    fn fib_remove_next_hop(&mut self, prefix: &Name, face: FaceId) {
        Tables::fib_remove_next_hop(self.core, prefix, face);
        self.shards
            .broadcast(ShardMsg::FibRemove(prefix.clone(), face));
    }

    fn fib_entries(&self) -> Vec<(Name, Vec<(FaceId, u64)>)> {
        Tables::fib_entries(&*self.core)
    }

    fn cs_state(&self) -> CsState {
        let mut s = Tables::cs_state(&*self.core);
        s.capacity = self.shards.cs_capacity;
        for o in self.shards.statuses() {
            s.entries += o.n_cs_entries;
            s.hits += o.counters.n_cs_hits;
            s.misses += o.counters.n_cs_misses;
        }
        s
    }

    fn cs_configure(&mut self, capacity: Option<u64>, admit: Option<bool>, serve: Option<bool>) {
        if let Some(c) = capacity {
            self.shards.cs_capacity = c;
        }
        let capacity = capacity.map(|c| c.div_ceil(self.shards.n as u64));
        Tables::cs_configure(self.core, capacity, admit, serve);
        self.shards
            .broadcast(ShardMsg::CsConfigure(capacity, admit, serve));
    }

    fn cs_erase(&mut self, prefix: &Name, limit: usize) -> usize {
        // Each shard erases up to `limit` on its own; the reply counts shard 0's.
        let n = Tables::cs_erase(self.core, prefix, limit);
        self.shards
            .broadcast(ShardMsg::CsErase(prefix.clone(), limit));
        n
    }

    fn strategy_choices(&self) -> Vec<(Name, Name)> {
        Tables::strategy_choices(&*self.core)
    }

    fn strategy_set(&mut self, prefix: &Name, strategy: &Name) -> Option<Name> {
        let r = Tables::strategy_set(self.core, prefix, strategy);
        if r.is_some() {
            self.shards
                .broadcast(ShardMsg::StrategySet(prefix.clone(), strategy.clone()));
        }
        r
    }

    fn strategy_unset(&mut self, prefix: &Name) {
        Tables::strategy_unset(self.core, prefix);
        self.shards
            .broadcast(ShardMsg::StrategyUnset(prefix.clone()));
    }

    fn forwarder_counters(&self) -> ForwarderCounters {
        let (s, _) = merge_status(self.core.status(), &self.shards.statuses());
        ForwarderCounters::from(&s)
    }
}

impl ManagedCore for Mirrored<'_> {
    fn poll_face_event(&mut self) -> Option<FaceEvent> {
        self.core.poll_face_event()
    }

    fn poll_management(&mut self) -> Option<MgmtRequest> {
        self.core.poll_management()
    }

    fn reply_management(&mut self, face: FaceId, pit_token: Option<Bytes>, data: Bytes) {
        self.core.reply_management(face, pit_token, data);
    }
}

struct WorkerFace {
    tx: FaceTx,
    congested: bool,
}

/// One of shards 1..N: a core, the face send queues, and its loop.
struct Worker {
    core: Forwarder,
    faces: std::collections::HashMap<FaceId, WorkerFace, IdHasher>,
    epoch: Instant,
    in_flight: Arc<AtomicUsize>,
    published: Arc<Mutex<ForwarderStatus>>,
    last_publish: Instant,
}

impl Worker {
    fn now(&self) -> Time {
        Time::from_duration(self.epoch.elapsed())
    }

    fn on_msg(&mut self, now: Time, m: ShardMsg) {
        match m {
            ShardMsg::Packets(pkts) => {
                self.in_flight.fetch_sub(pkts.len(), Ordering::Relaxed);
                for (face, p) in pkts {
                    self.core.on_packet(now, face, p);
                }
            }
            ShardMsg::AddFace { id, options, tx } => {
                let got = self.core.add_face(options);
                if got != id {
                    // Cannot happen while every shard sees the same add/remove sequence.
                    tracing::error!(expected = %id, got = %got, "shard face ids diverged");
                }
                self.faces.insert(
                    got,
                    WorkerFace {
                        tx,
                        congested: false,
                    },
                );
            }
            ShardMsg::RemoveFace(id) => {
                self.core.remove_face(id);
                self.faces.remove(&id);
            }
            ShardMsg::UpdateFace(id, options) => {
                Tables::update_face(&mut self.core, id, options);
            }
            ShardMsg::FibAdd(prefix, face, cost) => {
                Tables::fib_add_next_hop(&mut self.core, &prefix, face, cost)
            }
            ShardMsg::FibRemove(prefix, face) => {
                Tables::fib_remove_next_hop(&mut self.core, &prefix, face)
            }
            ShardMsg::CsConfigure(c, a, s) => Tables::cs_configure(&mut self.core, c, a, s),
            ShardMsg::CsErase(prefix, limit) => {
                self.core.cs_erase(&prefix, limit);
            }
            ShardMsg::StrategySet(prefix, strategy) => {
                let _ = self.core.set_strategy(&prefix, &strategy);
            }
            ShardMsg::StrategyUnset(prefix) => {
                let _ = self.core.unset_strategy(&prefix);
            }
        }
    }

    fn flush(&mut self) {
        // Management never runs here: its Interests go to shard 0.
        while self.core.poll_management().is_some() {}
        while self.core.poll_face_event().is_some() {}
        while let Some((face, pkt)) = self.core.poll_transmit_frame() {
            let Some(e) = self.faces.get_mut(&face) else {
                continue;
            };
            let congested = match e.tx.send(pkt) {
                SendStatus::Queued => false,
                SendStatus::Congested => true,
                SendStatus::Dropped | SendStatus::Closed => e.congested,
            };
            if congested != e.congested {
                e.congested = congested;
                self.core.set_face_congested(face, congested);
            }
        }
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Ok(mut g) = self.published.lock() {
            *g = self.core.status();
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ShardMsg>) -> ForwarderStatus {
        let mut msgs: Vec<ShardMsg> = Vec::with_capacity(EVENT_BATCH);
        let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut timer = std::pin::pin!(tokio::time::sleep_until(far_future));
        let mut armed = far_future;
        loop {
            let deadline = self.core.poll_timeout().map_or(far_future, |t| {
                tokio::time::Instant::from_std(self.epoch + t.since_epoch())
            });
            if deadline != armed {
                timer.as_mut().reset(deadline);
                armed = deadline;
            }
            tokio::select! {
                biased;
                n = rx.recv_many(&mut msgs, EVENT_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let now = self.now();
                    for m in msgs.drain(..) {
                        self.on_msg(now, m);
                    }
                    if self.core.poll_timeout().is_some_and(|t| t <= now) {
                        self.core.on_timeout(now);
                    }
                    self.flush();
                }
                () = &mut timer => {
                    armed = far_future;
                    timer.as_mut().reset(far_future);
                    let now = self.now();
                    self.core.on_timeout(now);
                    self.flush();
                }
            }
        }
        self.core.status()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_tlv::{Data, Interest};

    fn interest(uri: &str) -> Bytes {
        Interest::new(Name::from_uri(uri).unwrap()).encode()
    }

    fn data(uri: &str) -> Bytes {
        Data::new(Name::from_uri(uri).unwrap(), Bytes::from_static(b"x")).encode()
    }

    #[test]
    fn data_follows_interest_by_name_prefix() {
        for k in [1, 2] {
            for i in 0..50 {
                let i_key = route_key(&interest(&format!("/a{i}/b{i}/c")), k);
                let d_key = route_key(&data(&format!("/a{i}/b{i}/c/seg=0")), k);
                assert!(matches!(i_key, RouteKey::Hash(_)));
                assert_eq!(i_key, d_key);
            }
        }
        // Shorter than k: the whole name on both sides.
        assert_eq!(route_key(&interest("/x"), 2), route_key(&data("/x"), 2));
    }

    #[test]
    fn names_spread_over_shards() {
        let mut seen = [0usize; 2];
        for i in 0..200 {
            let s = shard_index(route_key(&interest(&format!("/p/{i}/z")), 2), 2);
            seen[s] += 1;
        }
        assert!(seen[0] > 40 && seen[1] > 40, "{seen:?}");
    }

    #[test]
    fn management_and_garbage_go_to_shard_zero() {
        let mut nfd = false;
        for i in 0..32 {
            let k = route_key(&interest(&format!("/localhost/nfd/rib/register/{i}")), 1);
            assert_eq!(k, RouteKey::Zero);
            nfd = true;
        }
        assert!(nfd);
        assert_eq!(
            route_key(&Bytes::from_static(&[0x05, 0x10, 0x07]), 1),
            RouteKey::Zero
        );
        assert_eq!(route_key(&Bytes::new(), 1), RouteKey::Zero);
    }

    #[test]
    fn limits_are_shared_not_multiplied() {
        let c = CoreConfig::default();
        let s = share_limits(&c, 3);
        assert_eq!(s.cs_capacity_packets, 65_536usize.div_ceil(3));
        assert_eq!(s.pit_max_entries, (1usize << 20).div_ceil(3));
        assert_eq!(share_limits(&c, 1).cs_capacity_packets, 65_536);
    }

    #[test]
    fn answers_use_the_token_interests_do_not() {
        let token = Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 7]);
        let wrap = |inner: Bytes, nack: bool| {
            amicn_tlv::LpPacket {
                pit_token: Some(token.clone()),
                nack: nack.then_some(amicn_tlv::NackReason::NoRoute),
                fragment: Some(inner),
                ..amicn_tlv::LpPacket::default()
            }
            .encode()
        };
        let d = wrap(data("/q/r"), false);
        assert_eq!(route_key(&d, 1), RouteKey::Token(1));
        assert_eq!(shard_index(route_key(&d, 1), 2), 1);
        assert_eq!(shard_index(route_key(&d, 1), 1), 0);
        let n = wrap(interest("/q/r"), true);
        assert_eq!(route_key(&n, 1), RouteKey::Token(1));
        let i = wrap(interest("/q/r"), false);
        assert_eq!(route_key(&i, 1), route_key(&interest("/q/r"), 1));
    }
}
