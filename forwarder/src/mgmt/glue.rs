//! Management attached to the forwarding core: the core's tables behind [`Tables`], and the
//! loop that takes queued management Interests and face events from the core and sends the
//! replies back through it (so they get the requester's PitToken and the face's counters).

use amicn_tlv::Name;
use bytes::Bytes;

use super::{CsState, FaceSystem, ForwarderCounters, Management, Tables};
use crate::core::{
    FaceCounters, FaceEvent, FaceEventKind as CoreFaceEvent, FaceId, FaceOptions, Forwarder,
    ForwarderStatus, MgmtRequest, Time,
};

impl Tables for Forwarder {
    fn face(&self, face: FaceId) -> Option<(FaceOptions, FaceCounters)> {
        Forwarder::face(self, face).map(|f| (f.options.clone(), f.counters))
    }

    fn faces(&self) -> Vec<(FaceId, FaceOptions, FaceCounters)> {
        Forwarder::faces(self)
            .iter()
            .map(|f| (f.id, f.options.clone(), f.counters))
            .collect()
    }

    fn update_face(&mut self, face: FaceId, options: FaceOptions) -> bool {
        match self.face_mut(face) {
            Some(f) => {
                f.options = options;
                true
            }
            None => false,
        }
    }

    fn fib_add_next_hop(&mut self, prefix: &Name, face: FaceId, cost: u64) {
        // A face that vanished between the RIB update and now simply gets no next hop, as
        // NFD's FIB updater ignores 410 for faces other than the requester's.
        let _ = self.fib_add_nexthop(prefix, face, cost);
    }

    fn fib_remove_next_hop(&mut self, prefix: &Name, face: FaceId) {
        self.fib_remove_nexthop(prefix, face);
    }

    fn fib_entries(&self) -> Vec<(Name, Vec<(FaceId, u64)>)> {
        Forwarder::fib_entries(self)
            .into_iter()
            // Next hops stay in the core's order, lowest cost first, as NFD lists them.
            .map(|e| {
                (
                    e.name,
                    e.nexthops.iter().map(|h| (h.face, h.cost)).collect(),
                )
            })
            .collect()
    }

    fn cs_state(&self) -> CsState {
        let i = self.cs_info();
        CsState {
            capacity: i.capacity_packets as u64,
            admit: i.admit,
            serve: i.serve,
            entries: i.n_entries as u64,
            hits: i.n_hits,
            misses: i.n_misses,
        }
    }

    fn cs_configure(&mut self, capacity: Option<u64>, admit: Option<bool>, serve: Option<bool>) {
        let capacity = capacity.map(|c| usize::try_from(c).unwrap_or(usize::MAX));
        self.cs_config(capacity, None, admit, serve);
    }

    fn cs_erase(&mut self, prefix: &Name, limit: usize) -> usize {
        Forwarder::cs_erase(self, prefix, limit)
    }

    fn strategy_choices(&self) -> Vec<(Name, Name)> {
        Forwarder::strategy_choices(self)
    }

    fn strategy_set(&mut self, prefix: &Name, strategy: &Name) -> Option<Name> {
        self.set_strategy(prefix, strategy).ok()
    }

    fn strategy_unset(&mut self, prefix: &Name) {
        let _ = self.unset_strategy(prefix);
    }

    fn forwarder_counters(&self) -> ForwarderCounters {
        ForwarderCounters::from(&self.status())
    }
}

impl From<&ForwarderStatus> for ForwarderCounters {
    fn from(s: &ForwarderStatus) -> Self {
        ForwarderCounters {
            n_name_tree_entries: s.n_name_tree_entries,
            n_fib_entries: s.n_fib_entries,
            n_pit_entries: s.n_pit_entries,
            n_measurements_entries: s.n_measurements_entries,
            n_cs_entries: s.n_cs_entries,
            n_in_interests: s.counters.n_in_interests,
            n_in_data: s.counters.n_in_data,
            n_in_nacks: s.counters.n_in_nacks,
            n_out_interests: s.counters.n_out_interests,
            n_out_data: s.counters.n_out_data,
            n_out_nacks: s.counters.n_out_nacks,
            n_satisfied_interests: s.counters.n_satisfied_interests,
            n_unsatisfied_interests: s.counters.n_unsatisfied_interests,
        }
    }
}

/// The forwarding core as management drives it: its [`Tables`], plus the queues of management
/// Interests and face events it fills and the reply path it sends through. [`Forwarder`]
/// implements it; so does the runtime's view of a sharded forwarder (shard 0, with every table
/// change mirrored to the other shards), so both run the one loop in [`Management::process`].
pub trait ManagedCore: Tables {
    /// The next face event (created / destroyed).
    fn poll_face_event(&mut self) -> Option<FaceEvent>;
    /// The next queued `/localhost/nfd` Interest.
    fn poll_management(&mut self) -> Option<MgmtRequest>;
    /// Sends a reply Data to `face`, echoing the request's PitToken.
    fn reply_management(&mut self, face: FaceId, pit_token: Option<Bytes>, data: Bytes);
}

impl ManagedCore for Forwarder {
    fn poll_face_event(&mut self) -> Option<FaceEvent> {
        Forwarder::poll_face_event(self)
    }

    fn poll_management(&mut self) -> Option<MgmtRequest> {
        Forwarder::poll_management(self)
    }

    fn reply_management(&mut self, face: FaceId, pit_token: Option<Bytes>, data: Bytes) {
        Forwarder::reply_management(self, face, pit_token, data);
    }
}

impl Management {
    /// Serves everything the core queued for management: face events (RIB cleanup and
    /// notifications), then `/localhost/nfd` Interests; replies go out through
    /// [`ManagedCore::reply_management`]. Call it after feeding packets to the core and before
    /// draining [`Forwarder::poll_transmit`].
    pub fn process(&mut self, now: Time, core: &mut dyn ManagedCore, faces: &mut dyn FaceSystem) {
        while let Some(ev) = core.poll_face_event() {
            match ev.kind {
                CoreFaceEvent::Created => self.on_face_added(now, ev.face, core),
                CoreFaceEvent::Destroyed => self.on_face_removed(now, ev.face, core),
            }
        }
        while let Some(req) = core.poll_management() {
            self.on_interest(now, req.face, &req.interest, req.pit_token, core, faces);
        }
        self.flush(core);
    }

    /// Route expiry and other timers; replies (none today) go out through the core.
    pub fn on_timeout_core(&mut self, now: Time, core: &mut dyn ManagedCore) {
        self.on_timeout(now, core);
        self.flush(core);
    }

    /// Sends queued replies through the core.
    pub fn flush(&mut self, core: &mut dyn ManagedCore) {
        while let Some(r) = self.poll_reply() {
            core.reply_management(r.face, r.pit_token, r.data);
        }
    }
}
