//! The forwarding core: incoming-Interest, incoming-Data and incoming-Nack pipelines over the
//! PIT, CS, FIB, strategy choice and measurements tables (NFD forwarding semantics).

use std::collections::VecDeque;

use amicn_tlv::{Component, Interest, NackReason, Name};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{Config, PIT_ENTRY_OVERHEAD, UnsolicitedPolicy};
use super::counters::{Counters, DropReason, ForwarderStatus};
use super::cs::{Cs, CsInfo, CsQuery};
use super::dnl::DeadNonceList;
use super::face::{Face, FaceId, FaceOptions, FaceTable, LinkType, Satisfaction};
use super::name_map::NameMap;
use super::pit::{InRecord, OutRecord, Pit, PitEntry};
use super::strategy::{self, Context, Measurements, Ranked, Strategy, StrategyKind, Verdict};
use super::time::{Time, TimerWheel};
use super::wire::{self, DataView, Frame, Incoming, LpIn, LpOut};
use super::{Error, FaceEvent, FaceEventKind, InterestAdmission, MgmtRequest};
use std::time::Duration;

/// FaceId NFD reports as IncomingFaceId for Data served from the Content Store.
pub const CONTENT_STORE_FACE_ID: FaceId = FaceId(254);

const LOCALHOST: &[u8] = b"\x08\x09localhost";
const NFD: &[u8] = b"\x08\x03nfd";
const MAX_FACE_EVENTS: usize = 1024;
/// Smallest weight a face's satisfaction ratio gives its PIT share under pushback, so a face
/// that has only seen timeouts can still place a few Interests and prove itself again.
const MIN_PUSHBACK_WEIGHT: f64 = 0.02;

/// Under pushback, a new Interest towards a congested upstream from a face weighing less than
/// this is refused with probability `1 - weight / CONGESTION_WEIGHT` (Nack Congestion); faces
/// whose Interests are mostly answered are never refused.
const CONGESTION_WEIGHT: f64 = 0.5;

/// A face counts as a newcomer, and its outcomes also go to the newcomers' record, until it
/// has this many outcomes of its own.
const NEWCOMER_OUTCOMES: u32 = 16;

/// How long a Nack Congestion from an upstream makes it count as congested for pushback.
const PUSHED_BACK_FOR: Duration = Duration::from_millis(250);

/// Smallest pending-entry limit pushback lowers an upstream's to.
const MIN_PUSH_LIMIT: f64 = 16.0;
/// How long an upstream must go without answering Nack Congestion before the pending-entry
/// limit learned from its Nacks is forgotten: growing back by Data alone takes about as many
/// Data as the square of the limit, so a burst long after an attack would still be held to
/// the limit the attack left behind.
const PUSH_LIMIT_FORGET: Duration = Duration::from_secs(10);

/// How long the sum of the faces' pushback weights is reused before it is counted again.
const WEIGHT_SUM_REFRESH: Duration = Duration::from_millis(1);

fn is_localhost(name: &Name) -> bool {
    name.component_wire(0) == Some(LOCALHOST)
}

/// One next hop of a FIB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The upstream face.
    pub face: FaceId,
    /// Routing cost (lower is preferred).
    pub cost: u64,
}

/// A FIB entry as listed for management (`fib/list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibEntry {
    /// The prefix.
    pub name: Name,
    /// Next hops, lowest cost first.
    pub nexthops: Vec<NextHop>,
}

/// What kind of packet is being queued (for counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OutKind {
    Interest,
    Data,
    Nack,
}

/// The sans-IO forwarder. See the module documentation of [`crate::core`] for the contract.
pub struct Forwarder {
    config: Config,
    faces: FaceTable,
    fib: NameMap<Vec<NextHop>>,
    strategies: NameMap<StrategyKind>,
    measurements: NameMap<Measurements>,
    pit: Pit,
    cs: Cs,
    dnl: DeadNonceList,
    wheel: TimerWheel<(u32, u32)>,
    out: VecDeque<(FaceId, Frame)>,
    mgmt: VecDeque<MgmtRequest>,
    events: VecDeque<FaceEvent>,
    counters: Counters,
    /// Nonces for Interests that arrive without one: a cryptographically strong generator, so
    /// nobody who sees some can predict the next and pre-empt them as loops; seeded from
    /// [`Config::rng_seed`] so a simulation repeats exactly.
    rng: StdRng,
    admission: Option<Box<dyn InterestAdmission>>,
    scratch_idx: Vec<u32>,
    scratch_hops: Vec<NextHop>,
    scratch_fired: Vec<(u32, u32)>,
    scratch_ranked: Vec<Ranked>,
    scratch_send: Vec<FaceId>,
    /// PIT bytes charged to in-records, against [`Config::pit_max_bytes`].
    pit_bytes: usize,
    /// How the Interests of young faces fared, pending ones of faces that went away counted
    /// as failures: the weight a new face starts with under pushback, so a flooder cannot
    /// shed its record by reconnecting.
    newcomers: Satisfaction,
    /// Sum of the pushback weights of the faces holding PIT in-records and their number, as
    /// counted at the time beside them (see [`WEIGHT_SUM_REFRESH`]).
    weight_sum: (Time, f64, usize),
    /// Latest time seen on an input, for work done outside one (face removal).
    now: Time,
}

impl Forwarder {
    /// A forwarder with no faces, an empty FIB and `config.default_strategy` for `/`.
    pub fn new(config: Config) -> Self {
        let mut strategies = NameMap::new();
        strategies.insert(&Name::new(), config.default_strategy);
        let lifetime_ns = u64::try_from(config.dead_nonce_lifetime.as_nanos()).unwrap_or(u64::MAX);
        let shard = config.shard_id;
        Forwarder {
            cs: Cs::new(
                config.cs_capacity_packets,
                config.cs_capacity_bytes,
                config.cs_admit,
                config.cs_serve,
            ),
            dnl: DeadNonceList::new(lifetime_ns, config.dead_nonce_capacity),
            rng: StdRng::seed_from_u64(config.rng_seed),
            config,
            faces: FaceTable::new(),
            fib: NameMap::new(),
            strategies,
            measurements: NameMap::new(),
            pit: Pit::with_shard(shard),
            wheel: TimerWheel::new(),
            out: VecDeque::new(),
            mgmt: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            admission: None,
            scratch_idx: Vec::new(),
            scratch_hops: Vec::new(),
            scratch_fired: Vec::new(),
            scratch_ranked: Vec::new(),
            scratch_send: Vec::new(),
            pit_bytes: 0,
            newcomers: Satisfaction::default(),
            weight_sum: (Time::ZERO, 0.0, 0),
            now: Time::ZERO,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----------------------------------------------------------------------------------------
    // Faces

    /// Adds a face; a `Created` event is queued for [`Forwarder::poll_face_event`].
    pub fn add_face(&mut self, options: FaceOptions) -> FaceId {
        let id = self.faces.add(options);
        self.push_event(id, FaceEventKind::Created);
        id
    }

    /// Removes a face: its next hops leave the FIB, its PIT records are dropped, packets still
    /// queued for it are discarded. Returns false if it did not exist.
    pub fn remove_face(&mut self, id: FaceId) -> bool {
        let Some(face) = self.faces.remove(id) else {
            return false;
        };
        self.fib.retain(|hops| {
            hops.retain(|h| h.face != id);
            !hops.is_empty()
        });
        for m in self.measurements.values_mut() {
            m.faces.retain(|f| f.face != id);
        }
        // Only the entries the face took part in: a face that reconnects over and over must
        // not cost a walk over the whole PIT each time.
        for (idx, generation) in face.pit_refs {
            if !self.pit.is_live(idx, generation) {
                continue;
            }
            let Some(e) = self.pit.get_mut(idx) else {
                continue;
            };
            let mut released = 0usize;
            let before = e.in_records.len();
            e.in_records.retain(|r| {
                if r.face == id {
                    released += r.charge as usize;
                }
                r.face != id
            });
            if e.in_records.len() < before {
                self.newcomers.record(false);
            }
            e.out_records.retain(|r| r.face != id);
            self.pit_bytes = self.pit_bytes.saturating_sub(released);
            if e.in_records.is_empty() {
                self.finalize(idx, false);
            }
        }
        self.out.retain(|(f, _)| *f != id);
        self.push_event(id, FaceEventKind::Destroyed);
        true
    }

    /// Notes that `face` now has a record in PIT entry `idx`, compacting the face's list of
    /// such entries when it has grown to twice its live size.
    fn track_pit_ref(&mut self, face: FaceId, idx: u32) {
        let generation = self.pit.generation(idx);
        let Some(f) = self.faces.get_mut(face) else {
            return;
        };
        f.pit_refs.push((idx, generation));
        if f.pit_refs.len() >= 2 * f.pit_refs_live + 64 {
            let pit = &self.pit;
            f.pit_refs.retain(|&(i, g)| pit.is_live(i, g));
            f.pit_refs_live = f.pit_refs.len();
        }
    }

    fn push_event(&mut self, face: FaceId, kind: FaceEventKind) {
        if self.events.len() >= MAX_FACE_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(FaceEvent { face, kind });
    }

    /// The face table (FaceStatus datasets read options and counters from it).
    pub fn faces(&self) -> &FaceTable {
        &self.faces
    }

    /// One face, for reading.
    pub fn face(&self, id: FaceId) -> Option<&Face> {
        self.faces.get(id)
    }

    /// One face, for updating its options (`faces/update`).
    pub fn face_mut(&mut self, id: FaceId) -> Option<&mut Face> {
        self.faces.get_mut(id)
    }

    /// Sets or clears a face's congestion flag: while set, packets sent out of it carry a
    /// CongestionMark. The runtime sets it when the face's send queue builds up.
    pub fn set_face_congested(&mut self, id: FaceId, congested: bool) {
        if let Some(f) = self.faces.get_mut(id) {
            f.congested = congested;
        }
    }

    /// Installs the fairness hook consulted before an Interest gets a new PIT in-record.
    pub fn set_admission(&mut self, hook: Box<dyn InterestAdmission>) {
        self.admission = Some(hook);
    }

    // ----------------------------------------------------------------------------------------
    // Inputs and outputs

    /// Processes one packet received on `face` (bare Interest/Data or an NDNLPv2 LpPacket).
    pub fn on_packet(&mut self, now: Time, face: FaceId, packet: Bytes) {
        self.now = self.now.max(now);
        let len = packet.len() as u64;
        let Some(f) = self.faces.get_mut(face) else {
            self.counters.drops.bump(DropReason::UnknownFace);
            return;
        };
        f.counters.n_in_bytes += len;
        if packet.len() > self.config.max_packet_size {
            self.drop_in(face, DropReason::Oversized);
            return;
        }
        match wire::decode(packet) {
            Err(reason) => self.drop_in(face, reason),
            Ok(Incoming::Interest(i, w, lp)) => self.on_interest(now, face, i, w, lp),
            Ok(Incoming::Data(d, w, lp)) => self.on_data(now, face, &d, w, &lp),
            Ok(Incoming::Nack(reason, i, lp)) => self.on_nack(now, face, reason, &i, &lp),
            Ok(Incoming::Empty) => {}
        }
    }

    /// Fires every timer due at `now` (PIT expiry) and ages the Dead Nonce List.
    pub fn on_timeout(&mut self, now: Time) {
        self.now = self.now.max(now);
        let mut fired = std::mem::take(&mut self.scratch_fired);
        fired.clear();
        self.wheel.poll(now, &mut fired);
        for &(idx, generation) in &fired {
            if self.pit.generation(idx) != generation {
                continue;
            }
            let Some(e) = self.pit.get_mut(idx) else {
                continue;
            };
            if e.expiry > now {
                let at = e.expiry;
                self.wheel.insert(at, (idx, generation));
                continue;
            }
            self.expire(idx);
        }
        self.scratch_fired = fired;
        self.dnl.expire(now);
    }

    /// The next packet to send: `(face, link-layer packet)` in one buffer.
    pub fn poll_transmit(&mut self) -> Option<(FaceId, Bytes)> {
        self.poll_transmit_frame()
            .map(|(face, frame)| (face, frame.into_bytes()))
    }

    /// The next packet to send as its LpPacket header and the packet it carries, for a writer
    /// that sends both in one vectored write without copying the packet.
    pub fn poll_transmit_frame(&mut self) -> Option<(FaceId, Frame)> {
        let (face, pkt) = self.out.pop_front()?;
        if let Some(f) = self.faces.get_mut(face) {
            f.queued = f.queued.saturating_sub(1);
        }
        Some((face, pkt))
    }

    /// Number of packets waiting in [`Forwarder::poll_transmit`].
    pub fn pending_transmit(&self) -> usize {
        self.out.len()
    }

    /// When [`Forwarder::on_timeout`] should next be called (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.wheel.next_deadline()
    }

    /// The next management Interest (`/localhost/nfd/...` from a local face).
    pub fn poll_management(&mut self) -> Option<MgmtRequest> {
        self.mgmt.pop_front()
    }

    /// Sends a management response (an encoded Data) to `face`, echoing the request's PitToken.
    pub fn reply_management(&mut self, face: FaceId, pit_token: Option<Bytes>, data: Bytes) {
        let pkt = wire::frame(
            &data,
            &LpOut {
                pit_token: pit_token.as_deref(),
                ..LpOut::default()
            },
        );
        self.enqueue(face, pkt, OutKind::Data);
    }

    /// The next face event (created / destroyed) for the notification stream.
    pub fn poll_face_event(&mut self) -> Option<FaceEvent> {
        self.events.pop_front()
    }

    // ----------------------------------------------------------------------------------------
    // Tables for management

    /// Adds or updates a next hop (`fib/add-nexthop`).
    pub fn fib_add_nexthop(&mut self, prefix: &Name, face: FaceId, cost: u64) -> Result<(), Error> {
        if !self.faces.contains(face) {
            return Err(Error::UnknownFace(face));
        }
        let hops = self
            .fib
            .get_or_insert_with(prefix, || Vec::with_capacity(1));
        match hops.iter_mut().find(|h| h.face == face) {
            Some(h) => h.cost = cost,
            None => hops.push(NextHop { face, cost }),
        }
        hops.sort_by_key(|h| (h.cost, h.face));
        Ok(())
    }

    /// Removes a next hop (`fib/remove-nexthop`); the entry goes when its last next hop does.
    /// Returns whether the next hop existed.
    pub fn fib_remove_nexthop(&mut self, prefix: &Name, face: FaceId) -> bool {
        let Some(hops) = self.fib.get_mut(prefix) else {
            return false;
        };
        let before = hops.len();
        hops.retain(|h| h.face != face);
        let removed = hops.len() != before;
        if hops.is_empty() {
            self.fib.remove(prefix);
            self.measurements.remove(prefix);
        }
        removed
    }

    /// Removes a whole FIB entry.
    pub fn fib_remove_entry(&mut self, prefix: &Name) -> bool {
        self.measurements.remove(prefix);
        self.fib.remove(prefix).is_some()
    }

    /// The next hops of exactly `prefix`.
    pub fn fib_get(&self, prefix: &Name) -> Option<&[NextHop]> {
        self.fib.get(prefix).map(Vec::as_slice)
    }

    /// Longest-prefix match: (matched prefix length, next hops).
    pub fn fib_lookup(&self, name: &Name) -> Option<(usize, &[NextHop])> {
        self.fib.lpm(name).map(|(d, v)| (d, v.as_slice()))
    }

    /// Number of FIB entries.
    pub fn fib_len(&self) -> usize {
        self.fib.len()
    }

    /// Reserves FIB capacity (bulk loads).
    pub fn fib_reserve(&mut self, n: usize) {
        self.fib.reserve(n);
    }

    /// Every FIB entry, sorted by name (`fib/list`).
    pub fn fib_entries(&self) -> Vec<FibEntry> {
        let mut v: Vec<FibEntry> = self
            .fib
            .names()
            .map(|(name, hops)| FibEntry {
                name,
                nexthops: hops.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Changes CS settings (`cs/config`); `None` leaves a setting as it is.
    pub fn cs_config(
        &mut self,
        capacity_packets: Option<usize>,
        capacity_bytes: Option<usize>,
        admit: Option<bool>,
        serve: Option<bool>,
    ) {
        let p = capacity_packets.unwrap_or(self.cs.capacity_packets);
        let b = capacity_bytes.unwrap_or(self.cs.capacity_bytes);
        self.cs.set_capacity(p, b);
        if let Some(a) = admit {
            self.cs.admit = a;
        }
        if let Some(s) = serve {
            self.cs.serve = s;
        }
    }

    /// Erases up to `limit` cached Data under `prefix` (`cs/erase`); returns how many.
    pub fn cs_erase(&mut self, prefix: &Name, limit: usize) -> usize {
        self.cs.erase(prefix, limit)
    }

    /// CS settings and statistics (`cs/info`).
    pub fn cs_info(&self) -> CsInfo {
        self.cs.info()
    }

    /// Chooses a strategy for a prefix (`strategy-choice/set`). `strategy` may omit the version.
    /// Returns the instance name in force (with version).
    pub fn set_strategy(&mut self, prefix: &Name, strategy: &Name) -> Result<Name, Error> {
        let kind = StrategyKind::from_name(strategy)
            .ok_or_else(|| Error::UnknownStrategy(strategy.to_string()))?;
        self.strategies.insert(prefix, kind);
        Ok(kind.instance_name())
    }

    /// Removes a prefix's strategy choice (`strategy-choice/unset`); `/` cannot be unset.
    /// Returns whether a choice existed.
    pub fn unset_strategy(&mut self, prefix: &Name) -> Result<bool, Error> {
        if prefix.is_empty() {
            return Err(Error::RootStrategy);
        }
        Ok(self.strategies.remove(prefix).is_some())
    }

    /// Every strategy choice as (prefix, strategy instance name), sorted by prefix.
    pub fn strategy_choices(&self) -> Vec<(Name, Name)> {
        let mut v: Vec<(Name, Name)> = self
            .strategies
            .names()
            .map(|(n, k)| (n, k.instance_name()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The strategy that applies to `name` (longest-prefix match).
    pub fn effective_strategy(&self, name: &Name) -> StrategyKind {
        self.strategies
            .lpm(name)
            .map_or(self.config.default_strategy, |(_, k)| *k)
    }

    /// Adaptive-strategy measurements for a FIB prefix.
    pub fn measurements(&self, prefix: &Name) -> Option<&Measurements> {
        self.measurements.get(prefix)
    }

    /// Forwarder-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A status snapshot (`status/general`).
    pub fn status(&self) -> ForwarderStatus {
        let fib = self.fib.len() as u64;
        let pit = self.pit.len() as u64;
        let meas = self.measurements.len() as u64;
        let sc = self.strategies.len() as u64;
        ForwarderStatus {
            n_name_tree_entries: fib + pit + meas + sc,
            n_fib_entries: fib,
            n_pit_entries: pit,
            n_measurements_entries: meas,
            n_cs_entries: self.cs.len() as u64,
            counters: Counters {
                n_cs_hits: self.cs.hits,
                n_cs_misses: self.cs.misses,
                ..self.counters
            },
        }
    }

    /// Number of PIT entries.
    pub fn pit_len(&self) -> usize {
        self.pit.len()
    }

    // ----------------------------------------------------------------------------------------
    // Pipelines

    /// Counts `n` packets received on `face` that its driver dropped before they reached the
    /// pipelines (the runtime's fair queue), as any other inbound drop.
    pub fn count_inbound_drops(&mut self, face: FaceId, reason: DropReason, n: u64) {
        self.counters.drops.add(reason, n);
        if let Some(f) = self.faces.get_mut(face) {
            f.counters.n_in_dropped += n;
        }
    }

    fn drop_in(&mut self, face: FaceId, reason: DropReason) {
        self.counters.drops.bump(reason);
        if let Some(f) = self.faces.get_mut(face) {
            f.counters.n_in_dropped += 1;
        }
    }

    fn next_nonce(&mut self) -> u32 {
        self.rng.next_u32()
    }

    fn on_interest(
        &mut self,
        now: Time,
        in_face: FaceId,
        mut interest: Interest,
        wire: Bytes,
        lp: LpIn,
    ) {
        self.counters.n_in_interests += 1;
        let (in_local, link) = match self.faces.get_mut(in_face) {
            Some(f) => {
                f.counters.n_in_interests += 1;
                (f.is_local(), f.options.link_type)
            }
            None => return,
        };
        // HopLimit: zero on arrival is dropped, otherwise decremented here (NFD); a zero left
        // after decrementing still allows delivery to local faces.
        let mut hop_changed = false;
        if let Some(h) = interest.hop_limit {
            if h == 0 {
                self.drop_in(in_face, DropReason::HopLimit);
                return;
            }
            interest.hop_limit = Some(h - 1);
            hop_changed = true;
        }
        if is_localhost(&interest.name) {
            if !in_local {
                self.drop_in(in_face, DropReason::Scope);
                return;
            }
            if interest.name.component_wire(1) == Some(NFD) {
                if self.mgmt.len() >= self.config.mgmt_queue_max {
                    self.drop_in(in_face, DropReason::ManagementQueueFull);
                } else {
                    self.mgmt.push_back(MgmtRequest {
                        face: in_face,
                        interest,
                        pit_token: lp.pit_token,
                    });
                }
                return;
            }
        }
        let nonce_changed = interest.nonce.is_none();
        let nonce = match interest.nonce {
            Some(n) => n,
            None => {
                let n = self.next_nonce();
                interest.nonce = Some(n);
                n
            }
        };
        let name_hash = interest.name.prefix_hash(interest.name.len());
        // Age the list first: no timer is armed for it, so an entry past its lifetime must
        // not be mistaken for a loop when the core was idle.
        self.dnl.expire(now);
        if self.dnl.contains(self.dnl.key(name_hash, nonce)) {
            self.on_loop(in_face, link, &wire, &lp);
            return;
        }
        let existing = self.pit.find(
            &interest.name,
            interest.can_be_prefix,
            interest.must_be_fresh,
        );
        let needs_in_record = match existing {
            Some(idx) => {
                let Some(e) = self.pit.get(idx) else { return };
                let dup_in = e.in_records.iter().any(|r| {
                    r.nonce == nonce && (r.face != in_face || link != LinkType::PointToPoint)
                });
                let dup_out = e.out_records.iter().any(|r| r.nonce == nonce);
                if dup_in || dup_out {
                    self.on_loop(in_face, link, &wire, &lp);
                    return;
                }
                !e.in_records.iter().any(|r| r.face == in_face)
            }
            None => {
                if self.cs.serve {
                    let q = CsQuery {
                        name: &interest.name,
                        can_be_prefix: interest.can_be_prefix,
                        must_be_fresh: interest.must_be_fresh,
                    };
                    if let Some(data) = self.cs.find(&q, now) {
                        self.send_data(
                            in_face,
                            &data,
                            lp.pit_token.as_deref(),
                            CONTENT_STORE_FACE_ID,
                            0,
                        );
                        return;
                    }
                }
                if self.pit.len() >= self.config.pit_max_entries {
                    self.drop_in(in_face, DropReason::PitFull);
                    return;
                }
                true
            }
        };
        let charge = wire.len().saturating_add(PIT_ENTRY_OVERHEAD);
        if needs_in_record {
            let (held, held_bytes) = self
                .faces
                .get(in_face)
                .map_or((0, 0), |f| (f.pit_in_records, f.pit_bytes));
            if held >= self.config.pit_max_per_face {
                self.drop_in(in_face, DropReason::PitFull);
                return;
            }
            if self.over_fair_share(in_face, held) {
                self.drop_in(in_face, DropReason::FairShare);
                if self.config.pushback {
                    // Tell the downstream, so a forwarder there can hold back the faces
                    // whose Interests go unanswered instead of sending everything on.
                    self.send_nack(
                        in_face,
                        &wire,
                        NackReason::Congestion,
                        lp.pit_token.as_deref(),
                    );
                }
                return;
            }
            if self.pit_bytes.saturating_add(charge) > self.config.pit_max_bytes
                || held_bytes.saturating_add(charge) > self.config.pit_max_bytes_per_face
            {
                self.drop_in(in_face, DropReason::PitMemory);
                return;
            }
            if let Some(hook) = self.admission.as_mut()
                && !hook.admit(in_face, &interest.name, held, self.pit.len())
            {
                self.drop_in(in_face, DropReason::Admission);
                return;
            }
        }
        let expiry = now.saturating_add(interest.lifetime().min(self.config.max_interest_lifetime));
        let is_new = existing.is_none();
        let idx = match existing {
            Some(idx) => {
                if let Some(e) = self.pit.get_mut(idx)
                    && e.nonce != nonce
                {
                    e.set_fwd_wire(wire::interest_wire(
                        &wire,
                        &interest,
                        nonce_changed,
                        hop_changed,
                    ));
                    e.nonce = nonce;
                    e.hop_zero = interest.hop_limit == Some(0);
                }
                idx
            }
            None => {
                let strategy = self.effective_strategy(&interest.name);
                let fwd = wire::interest_wire(&wire, &interest, nonce_changed, hop_changed);
                self.pit.insert(PitEntry::new(&interest, fwd, strategy))
            }
        };
        let generation = self.pit.generation(idx);
        let Some(e) = self.pit.get_mut(idx) else {
            return;
        };
        let mut new_in_record = false;
        match e.in_records.iter_mut().find(|r| r.face == in_face) {
            Some(r) => {
                r.nonce = nonce;
                r.expiry = expiry;
                r.pit_token = lp.pit_token;
            }
            None => {
                new_in_record = true;
                let charge_u32 = u32::try_from(charge).unwrap_or(u32::MAX);
                e.in_records.push(InRecord {
                    face: in_face,
                    nonce,
                    expiry,
                    pit_token: lp.pit_token,
                    charge: charge_u32,
                });
                self.pit_bytes = self.pit_bytes.saturating_add(charge_u32 as usize);
                if let Some(f) = self.faces.get_mut(in_face) {
                    f.pit_in_records += 1;
                    f.pit_bytes = f.pit_bytes.saturating_add(charge_u32 as usize);
                }
            }
        }
        let new_expiry = e
            .in_records
            .iter()
            .map(|r| r.expiry)
            .max()
            .unwrap_or(expiry);
        let rearm = is_new || new_expiry < e.expiry;
        e.expiry = new_expiry;
        if rearm {
            self.wheel.insert(new_expiry, (idx, generation));
        }
        if new_in_record {
            self.track_pit_ref(in_face, idx);
        }
        // NextHopFaceId from a local application bypasses the strategy (NFD).
        if let Some(nh) = lp.next_hop_face_id
            && in_local
        {
            let out = FaceId(nh);
            if self.faces.contains(out) {
                self.send_interest(now, idx, out);
            } else {
                self.counters.drops.bump(DropReason::NoRoute);
            }
            return;
        }
        self.after_receive_interest(now, idx, in_face, &interest);
    }

    fn on_loop(&mut self, in_face: FaceId, link: LinkType, wire: &Bytes, lp: &LpIn) {
        self.drop_in(in_face, DropReason::Loop);
        if link == LinkType::PointToPoint {
            self.send_nack(
                in_face,
                wire,
                NackReason::Duplicate,
                lp.pit_token.as_deref(),
            );
        }
    }

    /// Next hops for an Interest into `scratch_hops`: by the first ForwardingHint delegation
    /// that has a route, else by the Interest name. Returns the matched FIB prefix as
    /// (delegation index or none, prefix length).
    fn lookup_nexthops(&mut self, interest: &Interest) -> Option<(Option<usize>, usize)> {
        self.scratch_hops.clear();
        for (i, hint) in interest.forwarding_hint.iter().enumerate() {
            if let Some((depth, hops)) = self.fib.lpm(hint) {
                self.scratch_hops.extend_from_slice(hops);
                return Some((Some(i), depth));
            }
        }
        let (depth, hops) = self.fib.lpm(&interest.name)?;
        self.scratch_hops.extend_from_slice(hops);
        Some((None, depth))
    }

    /// Runs `decide` on the strategy of entry `idx`, with a context over the tables; the
    /// upstreams it chooses are left in `scratch_send`. `None` if the entry is gone.
    fn with_strategy<R>(
        &mut self,
        now: Time,
        idx: u32,
        hops: &[NextHop],
        decide: impl FnOnce(StrategyKind, &mut Context<'_>) -> R,
    ) -> Option<R> {
        let entry = self.pit.get_mut(idx)?;
        let kind = entry.strategy;
        self.scratch_send.clear();
        let mut ctx = Context {
            now,
            config: &self.config,
            hops,
            entry,
            faces: &self.faces,
            measurements: &mut self.measurements,
            ranked: &mut self.scratch_ranked,
            send: &mut self.scratch_send,
        };
        Some(decide(kind, &mut ctx))
    }

    fn after_receive_interest(
        &mut self,
        now: Time,
        idx: u32,
        in_face: FaceId,
        interest: &Interest,
    ) {
        let matched = self.lookup_nexthops(interest);
        let hops = std::mem::take(&mut self.scratch_hops);
        if let Some(e) = self.pit.get_mut(idx)
            && e.strategy.measures()
        {
            e.meas = matched.and_then(|(hint, depth)| {
                let base = match hint {
                    Some(i) => interest.forwarding_hint.get(i)?,
                    None => &interest.name,
                };
                Some(Box::new(base.prefix(depth)))
            });
        }
        let verdict = self.with_strategy(now, idx, &hops, |s, ctx| {
            s.after_receive_interest(ctx, in_face)
        });
        self.scratch_hops = hops;
        match verdict {
            None => {}
            Some(Verdict::Forward) => {
                let mut send = std::mem::take(&mut self.scratch_send);
                if self.config.pushback {
                    let before = send.len();
                    send.retain(|&f| !self.refuse_for_congestion(in_face, f));
                    if send.is_empty() && before > 0 && self.refuse_entry(idx, in_face) {
                        self.scratch_send = send;
                        return;
                    }
                }
                for &f in &send {
                    self.send_interest(now, idx, f);
                }
                self.scratch_send = send;
            }
            Some(Verdict::NoRoute) => self.no_route(idx),
            Some(Verdict::Suppressed) => self.counters.drops.bump(DropReason::Suppressed),
        }
    }

    /// Whether pushback refuses to forward a new Interest from `in_face` to the congested
    /// `out_face`: never for a face whose Interests are mostly answered, almost always for
    /// one whose Interests go unanswered (a flood of names nobody serves), so the upstream's
    /// queue keeps room for the answered traffic instead of dropping without regard to source.
    ///
    /// Once the upstream has pushed back, it also has a learned limit of pending entries
    /// (`Face::push_limit`), shared out among the downstream faces as the PIT is: a face may
    /// hold its weighted share of that limit and no more, so a flood that is let through
    /// only now and then still cannot fill the upstream's table again. The limit is forgotten
    /// once the upstream has sent no Nack Congestion for [`PUSH_LIMIT_FORGET`].
    fn refuse_for_congestion(&mut self, in_face: FaceId, out_face: FaceId) -> bool {
        let now = self.now;
        let Some(up) = self.faces.get(out_face) else {
            return false;
        };
        let congested = up.congested || now < up.pushed_back_until;
        let mut limit = up.push_limit;
        if limit > 0.0 && now >= up.pushed_back_until + PUSH_LIMIT_FORGET {
            if let Some(up) = self.faces.get_mut(out_face) {
                up.push_limit = 0.0;
            }
            limit = 0.0;
        }
        if !congested && limit <= 0.0 {
            return false;
        }
        let prior = self.newcomers.ratio();
        if limit > 0.0 {
            let (sum, holders) = self.weight_sum(prior);
            let Some(f) = self.faces.get(in_face) else {
                return false;
            };
            let own = f.pushback_weight(prior).max(MIN_PUSHBACK_WEIGHT);
            let reserve = sum / holders.max(1) as f64;
            let allowance = (limit * own / (sum + reserve)).floor().max(1.0);
            if f.pit_in_records as f64 > allowance {
                return true;
            }
        }
        if !congested {
            return false;
        }
        let Some(f) = self.faces.get(in_face) else {
            return false;
        };
        // A newcomer has no record of its own yet: until its first answers come back it may
        // hold only a few entries towards a congested upstream (a slow start), so a flooder
        // cannot pour a burst through each new connection before its record catches up.
        if f.satisfaction.outcomes() < NEWCOMER_OUTCOMES
            && f.pit_in_records > NEWCOMER_OUTCOMES as usize
        {
            return true;
        }
        let weight = f.pushback_weight(prior);
        if weight >= CONGESTION_WEIGHT {
            return false;
        }
        let draw = f64::from(self.rng.next_u32()) / f64::from(u32::MAX);
        draw >= weight / CONGESTION_WEIGHT
    }

    /// The sum of the pushback weights of the faces holding PIT in-records, and how many
    /// they are, counted again at most every [`WEIGHT_SUM_REFRESH`].
    fn weight_sum(&mut self, prior: f64) -> (f64, usize) {
        let (at, sum, holders) = self.weight_sum;
        if holders > 0 && self.now < at + WEIGHT_SUM_REFRESH {
            return (sum, holders);
        }
        let (mut sum, mut holders) = (0.0, 0);
        for f in self.faces.iter().filter(|f| f.pit_in_records > 0) {
            sum += f.pushback_weight(prior).max(MIN_PUSHBACK_WEIGHT);
            holders += 1;
        }
        self.weight_sum = (self.now, sum, holders);
        (sum, holders)
    }

    /// Answers a new entry that pushback refused everywhere with Nack Congestion and removes
    /// it without counting an outcome for `in_face` (it never had a chance to be answered).
    /// False (nothing done) when other downstreams share the entry.
    fn refuse_entry(&mut self, idx: u32, in_face: FaceId) -> bool {
        let Some(e) = self.pit.get(idx) else {
            return false;
        };
        if e.in_records.len() != 1 || !e.out_records.is_empty() {
            return false;
        }
        self.drop_in(in_face, DropReason::CongestedUpstream);
        self.nack_downstreams(idx, NackReason::Congestion);
        if let Some(e) = self.pit.remove(idx) {
            self.release_in_records(&e, None);
            self.counters.n_unsatisfied_interests += 1;
        }
        true
    }

    /// Gives back the PIT shares and bytes a removed entry's in-records held and, with an
    /// `outcome`, records it for each downstream face (and for newcomers while it is young);
    /// the upstreams its out-records name have one entry less pending.
    fn release_in_records(&mut self, e: &PitEntry, outcome: Option<bool>) {
        for o in &e.out_records {
            if let Some(f) = self.faces.get_mut(o.face) {
                f.out_pending = f.out_pending.saturating_sub(1);
            }
        }
        for r in &e.in_records {
            self.pit_bytes = self.pit_bytes.saturating_sub(r.charge as usize);
            if let Some(f) = self.faces.get_mut(r.face) {
                f.pit_in_records = f.pit_in_records.saturating_sub(1);
                f.pit_bytes = f.pit_bytes.saturating_sub(r.charge as usize);
                if let Some(satisfied) = outcome {
                    if f.satisfaction.outcomes() < NEWCOMER_OUTCOMES {
                        self.newcomers.record(satisfied);
                    }
                    f.satisfaction.record(satisfied);
                }
            }
        }
    }

    fn no_route(&mut self, idx: u32) {
        self.counters.drops.bump(DropReason::NoRoute);
        self.nack_downstreams(idx, NackReason::NoRoute);
        self.finalize(idx, false);
    }

    fn send_interest(&mut self, now: Time, idx: u32, out_face: FaceId) {
        let token = self.pit.token(idx);
        let Some(e) = self.pit.get_mut(idx) else {
            return;
        };
        let nonce = e.nonce;
        match e.out_records.iter_mut().find(|o| o.face == out_face) {
            Some(o) => {
                o.nonce = nonce;
                o.sent = now;
                o.nack = None;
            }
            None => {
                e.out_records.push(OutRecord {
                    face: out_face,
                    nonce,
                    sent: now,
                    nack: None,
                    suppress: Default::default(),
                });
                self.track_pit_ref(out_face, idx);
                if let Some(f) = self.faces.get_mut(out_face) {
                    f.out_pending += 1;
                }
            }
        }
        let Some(e) = self.pit.get(idx) else {
            return;
        };
        let downstream = e.in_records.last().map(|r| r.face);
        let Some(f) = self.faces.get(out_face) else {
            return;
        };
        let lp = LpOut {
            pit_token: Some(&token),
            nack: None,
            incoming_face_id: if f.options.local_fields_enabled {
                downstream.map(|d| d.0)
            } else {
                None
            },
            congestion_mark: u64::from(f.congested),
        };
        let pkt = wire::frame_copied(e.fwd_wire(), &lp);
        self.enqueue(out_face, pkt, OutKind::Interest);
    }

    fn send_data(
        &mut self,
        out_face: FaceId,
        data: &Bytes,
        token: Option<&[u8]>,
        from: FaceId,
        mark: u64,
    ) {
        let Some(f) = self.faces.get(out_face) else {
            return;
        };
        let lp = LpOut {
            pit_token: token,
            nack: None,
            incoming_face_id: f.options.local_fields_enabled.then_some(from.0),
            congestion_mark: mark.max(u64::from(f.congested)),
        };
        let pkt = wire::frame(data, &lp);
        self.enqueue(out_face, pkt, OutKind::Data);
    }

    fn send_nack(
        &mut self,
        out_face: FaceId,
        interest_wire: &Bytes,
        reason: NackReason,
        token: Option<&[u8]>,
    ) {
        let Some(f) = self.faces.get(out_face) else {
            return;
        };
        if f.options.link_type == LinkType::MultiAccess {
            // Nacks are not sent on multi-access links (NFD).
            return;
        }
        let lp = LpOut {
            pit_token: token,
            nack: Some(reason),
            incoming_face_id: None,
            congestion_mark: u64::from(f.congested),
        };
        let pkt = wire::frame(interest_wire, &lp);
        self.enqueue(out_face, pkt, OutKind::Nack);
    }

    /// Nacks every downstream of an entry, each with the Interest as it sent it (its nonce).
    fn nack_downstreams(&mut self, idx: u32, reason: NackReason) {
        let Some(e) = self.pit.get(idx) else { return };
        let records: Vec<(FaceId, u32, Option<Bytes>)> = e
            .in_records
            .iter()
            .map(|r| (r.face, r.nonce, r.pit_token.clone()))
            .collect();
        let current = e.nonce;
        let fwd = e.fwd_wire().clone();
        for (face, nonce, token) in records {
            // The forwarded wire always carries a Nonce, so patching cannot fail in practice.
            let w = if nonce == current {
                fwd.clone()
            } else {
                wire::patch_interest(&fwd, Some(nonce), None).unwrap_or_else(|| fwd.clone())
            };
            self.send_nack(face, &w, reason, token.as_deref());
        }
    }

    fn enqueue(&mut self, face: FaceId, pkt: Frame, kind: OutKind) {
        let total_full = self.out.len() >= self.config.out_queue_max;
        let per_face_max = self.config.out_queue_max_per_face;
        let Some(f) = self.faces.get_mut(face) else {
            self.counters.drops.bump(DropReason::UnknownFace);
            return;
        };
        if total_full || f.queued >= per_face_max {
            f.counters.n_out_dropped += 1;
            self.counters.drops.bump(DropReason::QueueFull);
            return;
        }
        f.queued += 1;
        f.counters.n_out_bytes += pkt.len() as u64;
        match kind {
            OutKind::Interest => {
                f.counters.n_out_interests += 1;
                self.counters.n_out_interests += 1;
            }
            OutKind::Data => {
                f.counters.n_out_data += 1;
                self.counters.n_out_data += 1;
            }
            OutKind::Nack => {
                f.counters.n_out_nacks += 1;
                self.counters.n_out_nacks += 1;
            }
        }
        self.out.push_back((face, pkt));
    }

    /// Whether `face`, holding `held` PIT in-records, may not take one more. Once the PIT is
    /// half full the cap is divided into shares, one per face holding entries (the asking one
    /// included) plus one kept free for a face that has none yet. Faces that flood the table
    /// with Interests nobody answers fill only their own shares, and a newcomer always finds
    /// room. With [`Config::pushback`] the shares are weighted by each face's satisfaction
    /// ratio (a newcomer counts as fully satisfied): a face whose Interests time out gets a
    /// share that shrinks with its ratio, and between forwarders the squeeze travels hop by
    /// hop towards the flood's source, as in satisfaction-based pushback.
    fn over_fair_share(&self, face: FaceId, held: usize) -> bool {
        let cap = self.config.pit_max_entries;
        if self.pit.len() < cap / 2 {
            return false;
        }
        if !self.config.pushback {
            let holders =
                self.faces.iter().filter(|f| f.pit_in_records > 0).count() + usize::from(held == 0);
            return held >= cap / (holders + 1);
        }
        let prior = self.newcomers.ratio();
        let weight = |f: &Face| f.pushback_weight(prior).max(MIN_PUSHBACK_WEIGHT);
        let own = self.faces.get(face).map_or(1.0, weight);
        let (mut sum, mut holders) = (if held == 0 { own } else { 0.0 }, usize::from(held == 0));
        for f in self.faces.iter().filter(|f| f.pit_in_records > 0) {
            sum += weight(f);
            holders += 1;
        }
        // The share kept free for a newcomer weighs as much as the holders do on average, so
        // equal weights give the equal shares above and only the faces' relative records
        // matter: a lone downstream keeps half the table however poor its record, and the
        // squeeze falls on the forwarder where flooders and consumers arrive on different faces.
        let reserve = sum / holders.max(1) as f64;
        (held as f64) >= (cap as f64 * own / (sum + reserve)).floor()
    }

    /// Removes an entry: releases its faces' PIT shares, records its nonces in the Dead Nonce
    /// List when a looping copy could still arrive, and counts it.
    fn finalize(&mut self, idx: u32, satisfied: bool) -> Option<PitEntry> {
        self.finalize_with(idx, satisfied, Some(satisfied))
    }

    /// [`Self::finalize`] recording `outcome` (none: no outcome) for the downstream faces.
    fn finalize_with(
        &mut self,
        idx: u32,
        satisfied: bool,
        outcome: Option<bool>,
    ) -> Option<PitEntry> {
        let e = self.pit.remove(idx)?;
        self.release_in_records(&e, outcome);
        if !satisfied || e.must_be_fresh {
            let h = e.name_hash;
            for o in &e.out_records {
                let key = self.dnl.key(h, o.nonce);
                self.dnl.add(self.now, key);
            }
        }
        if satisfied {
            self.counters.n_satisfied_interests += 1;
        } else {
            self.counters.n_unsatisfied_interests += 1;
        }
        Some(e)
    }

    fn expire(&mut self, idx: u32) {
        self.with_strategy(self.now, idx, &[], |s, ctx| s.before_expire(ctx));
        self.finalize(idx, false);
    }

    fn on_data(&mut self, now: Time, in_face: FaceId, data: &DataView, wire: Bytes, lp: &LpIn) {
        self.counters.n_in_data += 1;
        let (in_local, in_link) = match self.faces.get_mut(in_face) {
            Some(f) => {
                f.counters.n_in_data += 1;
                (f.is_local(), f.options.link_type)
            }
            None => return,
        };
        if is_localhost(&data.name) && !in_local {
            self.drop_in(in_face, DropReason::Scope);
            return;
        }
        let mut matches = std::mem::take(&mut self.scratch_idx);
        matches.clear();
        let mut full_name: Option<Name> = None;
        if let Some(idx) = lp.pit_token.as_deref().and_then(|t| self.pit.by_token(t))
            && let Some(e) = self.pit.get(idx)
        {
            let ok = e.matches_data_name(&data.name)
                || (e.name_len as usize == data.name.len() + 1 && {
                    let full = data
                        .name
                        .append(Component::implicit_sha256_digest(sha256(&wire)));
                    let hit = e.is_named(&full) || (e.can_be_prefix && e.is_prefix_of(&full));
                    full_name = Some(full);
                    hit
                });
            if ok {
                matches.push(idx);
            }
        }
        if matches.is_empty() {
            self.pit.match_data(&data.name, &mut matches);
            if self.pit.digest_entries > 0 {
                let full = full_name.take().unwrap_or_else(|| {
                    data.name
                        .append(Component::implicit_sha256_digest(sha256(&wire)))
                });
                self.pit.match_full_name(&full, &mut matches);
            }
        }
        // Only an upstream the Interest went to may answer it: Data from any other face is an
        // off-path injection and must neither satisfy the entry nor reach the CS. On a
        // multi-access face the out-record is per face, so any neighbour on the link may reply.
        if !matches.is_empty() {
            let pit = &self.pit;
            matches.retain(|&idx| {
                pit.get(idx)
                    .is_some_and(|e| e.out_records.iter().any(|o| o.face == in_face))
            });
            if matches.is_empty() {
                self.drop_in(in_face, DropReason::WrongFace);
                self.scratch_idx = matches;
                return;
            }
        }
        if matches.is_empty() {
            strategy::measure_late_probe(
                &self.fib,
                &mut self.measurements,
                now,
                in_face,
                &data.name,
            );
            let admit = match self.config.unsolicited {
                UnsolicitedPolicy::DropAll => false,
                UnsolicitedPolicy::AdmitLocal => in_local,
                UnsolicitedPolicy::AdmitNetwork => !in_local,
                UnsolicitedPolicy::AdmitAll => true,
            };
            if admit && self.cs.admit && !lp.no_cache {
                self.cs.insert(&data.name, &wire, data.freshness_ms, now);
            } else {
                self.drop_in(in_face, DropReason::Unsolicited);
            }
            self.scratch_idx = matches;
            return;
        }
        if self.cs.admit && !lp.no_cache {
            self.cs.insert(&data.name, &wire, data.freshness_ms, now);
        }
        // Additive increase of a learned pushback limit: one entry per limit's worth of Data,
        // up to the PIT's own cap.
        let cap = self.config.pit_max_entries as f64;
        if let Some(f) = self.faces.get_mut(in_face)
            && f.push_limit > 0.0
        {
            f.push_limit = (f.push_limit + matches.len() as f64 / f.push_limit).min(cap);
        }
        for &idx in &matches {
            self.with_strategy(now, idx, &[], |s, ctx| s.before_satisfy(ctx, in_face));
            let Some(e) = self.finalize(idx, true) else {
                continue;
            };
            for r in &e.in_records {
                if r.expiry < now {
                    continue;
                }
                if r.face == in_face && in_link != LinkType::AdHoc {
                    continue;
                }
                self.send_data(
                    r.face,
                    &wire,
                    r.pit_token.as_deref(),
                    in_face,
                    lp.congestion_mark,
                );
            }
        }
        self.scratch_idx = matches;
    }

    fn on_nack(
        &mut self,
        now: Time,
        in_face: FaceId,
        reason: NackReason,
        nacked: &Interest,
        lp: &LpIn,
    ) {
        self.counters.n_in_nacks += 1;
        let link = match self.faces.get_mut(in_face) {
            Some(f) => {
                f.counters.n_in_nacks += 1;
                f.options.link_type
            }
            None => return,
        };
        if link == LinkType::MultiAccess {
            self.drop_in(in_face, DropReason::InvalidNack);
            return;
        }
        let by_token = lp
            .pit_token
            .as_deref()
            .and_then(|t| self.pit.by_token(t))
            .filter(|&i| self.pit.get(i).is_some_and(|e| e.is_named(&nacked.name)));
        let idx = by_token.or_else(|| {
            self.pit
                .find(&nacked.name, nacked.can_be_prefix, nacked.must_be_fresh)
        });
        let Some(idx) = idx else {
            self.drop_in(in_face, DropReason::InvalidNack);
            return;
        };
        let Some(e) = self.pit.get_mut(idx) else {
            return;
        };
        let Some(o) = e
            .out_records
            .iter_mut()
            .find(|o| o.face == in_face && Some(o.nonce) == nacked.nonce)
        else {
            self.drop_in(in_face, DropReason::InvalidNack);
            return;
        };
        o.nack = Some(reason);
        if reason == NackReason::Congestion
            && let Some(f) = self.faces.get_mut(in_face)
        {
            f.pushed_back_until = now + PUSHED_BACK_FOR;
            // Multiplicative decrease, at most once per pushback period: the upstream holds
            // no more than what was pending towards it when it began to refuse.
            if self.config.pushback
                && (f.push_limit <= 0.0 || now >= f.push_limit_cut + PUSHED_BACK_FOR)
            {
                let pending = f.out_pending as f64;
                let base = if f.push_limit > 0.0 {
                    f.push_limit.min(pending)
                } else {
                    pending
                };
                f.push_limit = (base / 2.0).max(MIN_PUSH_LIMIT);
                f.push_limit_cut = now;
            }
        }
        if reason == NackReason::Duplicate {
            self.scratch_hops.clear();
        } else {
            self.lookup_nexthops(nacked);
        }
        let hops = std::mem::take(&mut self.scratch_hops);
        let next = self
            .with_strategy(now, idx, &hops, |s, ctx| {
                s.after_receive_nack(ctx, in_face, reason)
            })
            .flatten();
        self.scratch_hops = hops;
        if let Some(f) = next {
            self.send_interest(now, idx, f);
            return;
        }
        let Some(e) = self.pit.get(idx) else { return };
        if e.out_records.iter().any(|o| o.nack.is_none()) {
            return;
        }
        let least = e
            .out_records
            .iter()
            .filter_map(|o| o.nack)
            .min_by_key(|r| severity(*r));
        let least = least.unwrap_or(reason);
        self.nack_downstreams(idx, least);
        // An upstream's congestion says nothing about the downstreams' Interests: it counts
        // against no face's satisfaction record (pushback weighs faces by their own records).
        let outcome = (least != NackReason::Congestion).then_some(false);
        self.finalize_with(idx, false, outcome);
    }
}

/// NFD's Nack severity order: Congestion < Duplicate < NoRoute < anything else.
fn severity(r: NackReason) -> u64 {
    match r {
        NackReason::Congestion => 1,
        NackReason::Duplicate => 2,
        NackReason::NoRoute => 3,
        _ => 4,
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
