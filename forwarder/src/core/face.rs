//! Faces as the forwarding core sees them: identifiers, scope, link type, options and counters.
//!
//! The runtime owns the sockets; the core only keeps what forwarding decisions and the
//! management datasets (FaceStatus) need.

use std::collections::HashMap;

use super::IdHasher;
use super::time::Time;

/// Identifier of a face, never reused while the forwarder runs (NFD numbering: the first
/// face added gets 256; 0 means "invalid / the face a command arrived on").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaceId(pub u64);

impl FaceId {
    /// The invalid face id (NFD `INVALID_FACEID`).
    pub const INVALID: FaceId = FaceId(0);
    /// First id handed out to a real face (NFD reserves 1..=255).
    pub const FIRST: FaceId = FaceId(256);
}

impl std::fmt::Display for FaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Face scope (NFD FaceScope): local faces may carry `/localhost` traffic and management.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FaceScope {
    /// Reaches another host.
    #[default]
    NonLocal,
    /// Reaches an application on this host (Unix socket, loopback TCP/UDP, internal).
    Local,
}

/// Link type (NFD LinkType), which decides whether an Interest may leave by the face it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LinkType {
    /// Exactly one peer.
    #[default]
    PointToPoint,
    /// Many peers share the link (UDP multicast); duplicates are dropped rather than nacked.
    MultiAccess,
    /// Wireless ad hoc link: forwarding back out of the incoming face is allowed.
    AdHoc,
}

/// Face persistency (NFD FacePersistency numbering on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FacePersistency {
    /// Kept until destroyed or failed (0).
    #[default]
    Persistent,
    /// Created by an incoming peer, closed when idle or failed (1).
    OnDemand,
    /// Never closed by failures (2).
    Permanent,
}

impl FacePersistency {
    /// The NFD wire value.
    pub fn to_u64(self) -> u64 {
        match self {
            FacePersistency::Persistent => 0,
            FacePersistency::OnDemand => 1,
            FacePersistency::Permanent => 2,
        }
    }

    /// From the NFD wire value.
    pub fn from_u64(v: u64) -> Option<Self> {
        match v {
            0 => Some(FacePersistency::Persistent),
            1 => Some(FacePersistency::OnDemand),
            2 => Some(FacePersistency::Permanent),
            _ => None,
        }
    }
}

/// Everything the runtime tells the core about a face when it is added.
#[derive(Clone, Debug, Default)]
pub struct FaceOptions {
    /// Remote URI as shown in FaceStatus (`unix://...`, `udp4://1.2.3.4:6363`).
    pub remote_uri: String,
    /// Local URI as shown in FaceStatus.
    pub local_uri: String,
    /// Local or non-local.
    pub scope: FaceScope,
    /// Point-to-point, multi-access or ad hoc.
    pub link_type: LinkType,
    /// Persistency.
    pub persistency: FacePersistency,
    /// Attach IncomingFaceId to packets sent to this face (NFD LocalFieldsEnabled, local faces).
    pub local_fields_enabled: bool,
    /// Whether congestion marking is enabled on this face (NFD flag bit 4).
    pub congestion_marking: bool,
    /// Link MTU when the face has one (datagram faces); `None` for streams.
    pub mtu: Option<usize>,
}

/// Per-face traffic counters (the counter fields of NFD FaceStatus, plus drops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaceCounters {
    /// Interests received.
    pub n_in_interests: u64,
    /// Interests sent.
    pub n_out_interests: u64,
    /// Data received.
    pub n_in_data: u64,
    /// Data sent.
    pub n_out_data: u64,
    /// Nacks received.
    pub n_in_nacks: u64,
    /// Nacks sent.
    pub n_out_nacks: u64,
    /// Bytes received (whole link-layer packets).
    pub n_in_bytes: u64,
    /// Bytes handed to the face for sending.
    pub n_out_bytes: u64,
    /// Packets received on this face and dropped, whatever the reason.
    pub n_in_dropped: u64,
    /// Packets for this face dropped because the output queue was full.
    pub n_out_dropped: u64,
}

/// One face in the core's table.
#[derive(Clone, Debug)]
pub struct Face {
    /// Its id.
    pub id: FaceId,
    /// Options given when the face was added (updatable through [`FaceTable::get_mut`]).
    pub options: FaceOptions,
    /// Counters.
    pub counters: FaceCounters,
    /// Set by the runtime while the face's send queue builds up: packets sent out of it carry
    /// a CongestionMark.
    pub congested: bool,
    /// PIT in-records currently held by this face (per-face PIT limit).
    pub(crate) pit_in_records: usize,
    /// PIT bytes charged to this face's in-records (per-face PIT byte budget).
    pub(crate) pit_bytes: usize,
    /// Packets queued for this face in the core's output queue.
    pub(crate) queued: usize,
    /// How often the PIT entries this face's Interests created were answered.
    pub(crate) satisfaction: Satisfaction,
    /// Until when the upstream on this face is taken to be overloaded because it answered
    /// with Nack Congestion (pushback between forwarders).
    pub(crate) pushed_back_until: Time,
    /// PIT entries with an out-record towards this face (Interests it was sent and that are
    /// still pending here, answered with a Nack or not).
    pub(crate) out_pending: usize,
    /// Under pushback, how many pending entries the upstream on this face has shown it will
    /// hold for this forwarder (0.0: no limit learned): halved on Nack Congestion, grown by
    /// one per window of Data, shared out among the downstream faces by their records, and
    /// forgotten after a quiet period without Nack Congestion.
    pub(crate) push_limit: f64,
    /// When `push_limit` was last lowered.
    pub(crate) push_limit_cut: Time,
    /// PIT entries (slot, generation) this face has an in- or out-record in, so removing the
    /// face visits only those entries instead of the whole PIT. Entries that ended since are
    /// dropped lazily (see `pit_refs_live`).
    pub(crate) pit_refs: Vec<(u32, u32)>,
    /// Length of `pit_refs` after its last compaction: it is compacted again once it has grown
    /// to twice that (plus a constant), which keeps it within a constant factor of the live
    /// references at amortised constant cost per record.
    pub(crate) pit_refs_live: usize,
}

impl Face {
    /// Whether the face is local.
    pub fn is_local(&self) -> bool {
        self.options.scope == FaceScope::Local
    }

    /// PIT in-records currently held by this face.
    pub fn pit_in_records(&self) -> usize {
        self.pit_in_records
    }

    /// PIT bytes charged to this face's in-records.
    pub fn pit_bytes(&self) -> usize {
        self.pit_bytes
    }

    /// PIT entries with an out-record towards this face.
    pub fn out_pending(&self) -> usize {
        self.out_pending
    }

    /// The pending-entry limit pushback learned for the upstream on this face, if any.
    pub fn pushback_limit(&self) -> Option<f64> {
        (self.push_limit > 0.0).then_some(self.push_limit)
    }

    /// The share of this face's recent PIT in-records that were satisfied (1.0 for a face with
    /// no history yet).
    pub fn satisfaction_ratio(&self) -> f64 {
        self.satisfaction.ratio()
    }

    /// [`Face::satisfaction_ratio`] with the imagined first outcome worth `prior` instead of a
    /// success: what pushback weighs the face by, `prior` being how newcomers fared lately.
    pub fn pushback_weight(&self, prior: f64) -> f64 {
        self.satisfaction.ratio_with_prior(prior)
    }
}

/// Recent outcomes of the PIT in-records of one face, as decaying counts: once their sum
/// reaches [`Satisfaction::WINDOW`] both are halved, so the ratio follows the last few
/// hundred outcomes and a face that turns from flooding to honest regains its share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Satisfaction {
    satisfied: u32,
    unsatisfied: u32,
}

impl Satisfaction {
    /// Outcomes remembered (roughly) before older ones fade.
    pub(crate) const WINDOW: u32 = 512;

    /// Records one in-record's outcome.
    pub(crate) fn record(&mut self, satisfied: bool) {
        if satisfied {
            self.satisfied += 1;
        } else {
            self.unsatisfied += 1;
        }
        if self.satisfied + self.unsatisfied >= Self::WINDOW {
            self.satisfied /= 2;
            self.unsatisfied /= 2;
        }
    }

    /// Satisfied share with one imagined success, so a new face starts at 1.0 and one failure
    /// does not zero a face.
    pub(crate) fn ratio(self) -> f64 {
        self.ratio_with_prior(1.0)
    }

    /// Satisfied share with one imagined outcome worth `prior` (0.0..=1.0): a new face starts
    /// at `prior`, and its own outcomes outweigh it quickly.
    pub(crate) fn ratio_with_prior(self, prior: f64) -> f64 {
        (f64::from(self.satisfied) + prior.clamp(0.0, 1.0))
            / f64::from(self.satisfied + self.unsatisfied + 1)
    }

    /// Outcomes currently remembered.
    pub(crate) fn outcomes(self) -> u32 {
        self.satisfied + self.unsatisfied
    }
}

/// The core's face table.
#[derive(Default)]
pub struct FaceTable {
    faces: HashMap<u64, Face, IdHasher>,
    next_id: u64,
}

impl FaceTable {
    /// An empty table whose first face will get id 256.
    pub fn new() -> Self {
        FaceTable {
            faces: HashMap::default(),
            next_id: FaceId::FIRST.0,
        }
    }

    /// Adds a face and returns its new id.
    pub fn add(&mut self, options: FaceOptions) -> FaceId {
        let id = FaceId(self.next_id);
        self.next_id += 1;
        self.faces.insert(
            id.0,
            Face {
                id,
                options,
                counters: FaceCounters::default(),
                congested: false,
                pit_in_records: 0,
                pit_bytes: 0,
                queued: 0,
                satisfaction: Satisfaction::default(),
                pushed_back_until: Time::ZERO,
                out_pending: 0,
                push_limit: 0.0,
                push_limit_cut: Time::ZERO,
                pit_refs: Vec::new(),
                pit_refs_live: 0,
            },
        );
        id
    }

    /// Removes a face, returning it.
    pub fn remove(&mut self, id: FaceId) -> Option<Face> {
        self.faces.remove(&id.0)
    }

    /// Looks a face up.
    pub fn get(&self, id: FaceId) -> Option<&Face> {
        self.faces.get(&id.0)
    }

    /// Looks a face up for modification.
    pub fn get_mut(&mut self, id: FaceId) -> Option<&mut Face> {
        self.faces.get_mut(&id.0)
    }

    /// Whether the face exists.
    pub fn contains(&self, id: FaceId) -> bool {
        self.faces.contains_key(&id.0)
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.faces.len()
    }

    /// Whether there is no face.
    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    /// All faces in ascending id order (for datasets).
    pub fn iter(&self) -> impl Iterator<Item = &Face> {
        let mut v: Vec<&Face> = self.faces.values().collect();
        v.sort_unstable_by_key(|f| f.id);
        v.into_iter()
    }

    pub(crate) fn is_local(&self, id: FaceId) -> bool {
        self.get(id).is_some_and(Face::is_local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_256_and_are_not_reused() {
        let mut t = FaceTable::new();
        let a = t.add(FaceOptions::default());
        let b = t.add(FaceOptions {
            scope: FaceScope::Local,
            ..Default::default()
        });
        assert_eq!(a, FaceId(256));
        assert_eq!(b, FaceId(257));
        assert!(t.is_local(b) && !t.is_local(a));
        assert!(t.remove(a).is_some());
        assert!(t.get(a).is_none());
        let c = t.add(FaceOptions::default());
        assert_eq!(c, FaceId(258));
        let ids: Vec<_> = t.iter().map(|f| f.id.0).collect();
        assert_eq!(ids, vec![257, 258]);
    }

    #[test]
    fn persistency_wire_values() {
        for p in [
            FacePersistency::Persistent,
            FacePersistency::OnDemand,
            FacePersistency::Permanent,
        ] {
            assert_eq!(FacePersistency::from_u64(p.to_u64()), Some(p));
        }
        assert_eq!(FacePersistency::OnDemand.to_u64(), 1);
        assert_eq!(FacePersistency::from_u64(3), None);
    }
}
