//! Forwarder-wide counters: NFD ForwarderStatus fields plus one counter per drop reason.

/// Why the core dropped a packet. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The packet did not decode (bad TLV, truncated, trailing bytes).
    Malformed,
    /// Larger than the maximum packet size (8800 bytes).
    Oversized,
    /// Contained an unrecognised critical TLV element.
    UnknownCritical,
    /// Duplicate Nonce (PIT or Dead Nonce List).
    Loop,
    /// HopLimit was zero on arrival, or reached zero toward a non-local face.
    HopLimit,
    /// `/localhost` on a non-local face, `/localhop` beyond one hop, or management from afar.
    Scope,
    /// No FIB entry or no eligible next hop (a Nack NoRoute is sent when possible).
    NoRoute,
    /// PIT full (total or the face's share).
    PitFull,
    /// Data that matched no PIT entry and the unsolicited policy refused it.
    Unsolicited,
    /// The output queue (total or per face) was full.
    QueueFull,
    /// Packet from or to a face that does not exist (any more).
    UnknownFace,
    /// A Nack that matched no pending out-record, or arrived on a multi-access face.
    InvalidNack,
    /// Refused by the Interest admission (fairness) hook.
    Admission,
    /// Retransmission held back by the strategy's suppression interval.
    Suppressed,
    /// Management queue full.
    ManagementQueueFull,
    /// A fragment or LP packet without a network packet (fragments are reassembled by faces).
    Fragment,
    /// Data whose name matched PIT entries, none of which had forwarded the Interest to the
    /// face the Data came from (an off-path injection: neither cached nor forwarded).
    WrongFace,
    /// PIT byte budget (total or the face's share) exhausted by retained Interest wires.
    PitMemory,
    /// The PIT is half full or more and the face already holds its share of it.
    FairShare,
    /// The runtime was overloaded and the face already had its most packets waiting for
    /// their turn in the fair queue before the pipelines.
    FairQueue,
    /// Under pushback, a new Interest from a poorly satisfied face towards an upstream whose
    /// send queue is congested (answered with Nack Congestion).
    CongestedUpstream,
}

impl DropReason {
    /// Every reason, in the order of [`DropCounters::iter`].
    pub const ALL: [DropReason; DROP_REASONS] = [
        DropReason::Malformed,
        DropReason::Oversized,
        DropReason::UnknownCritical,
        DropReason::Loop,
        DropReason::HopLimit,
        DropReason::Scope,
        DropReason::NoRoute,
        DropReason::PitFull,
        DropReason::Unsolicited,
        DropReason::QueueFull,
        DropReason::UnknownFace,
        DropReason::InvalidNack,
        DropReason::Admission,
        DropReason::Suppressed,
        DropReason::ManagementQueueFull,
        DropReason::Fragment,
        DropReason::WrongFace,
        DropReason::PitMemory,
        DropReason::FairShare,
        DropReason::FairQueue,
        DropReason::CongestedUpstream,
    ];

    /// A short stable name for logs and metrics (`drop_reason="loop"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Oversized => "oversized",
            DropReason::UnknownCritical => "unknown_critical",
            DropReason::Loop => "loop",
            DropReason::HopLimit => "hop_limit",
            DropReason::Scope => "scope",
            DropReason::NoRoute => "no_route",
            DropReason::PitFull => "pit_full",
            DropReason::Unsolicited => "unsolicited",
            DropReason::QueueFull => "queue_full",
            DropReason::UnknownFace => "unknown_face",
            DropReason::InvalidNack => "invalid_nack",
            DropReason::Admission => "admission",
            DropReason::Suppressed => "suppressed",
            DropReason::ManagementQueueFull => "management_queue_full",
            DropReason::Fragment => "fragment",
            DropReason::WrongFace => "wrong_face",
            DropReason::PitMemory => "pit_memory",
            DropReason::FairShare => "fair_share",
            DropReason::FairQueue => "fair_queue",
            DropReason::CongestedUpstream => "congested_upstream",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Number of [`DropReason`] variants.
const DROP_REASONS: usize = 21;

/// Drop counters, one per [`DropReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DROP_REASONS]);

impl DropCounters {
    /// The counter for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` pairs in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().copied().zip(self.0.iter().copied())
    }

    pub(crate) fn bump(&mut self, reason: DropReason) {
        self.add(reason, 1);
    }

    pub(crate) fn add(&mut self, reason: DropReason, n: u64) {
        if let Some(c) = self.0.get_mut(reason.index()) {
            *c += n;
        }
    }
}

/// Forwarder-wide packet counters (NFD ForwarderStatus counters 144–154 and more).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Interests received on all faces.
    pub n_in_interests: u64,
    /// Interests sent on all faces.
    pub n_out_interests: u64,
    /// Data received.
    pub n_in_data: u64,
    /// Data sent.
    pub n_out_data: u64,
    /// Nacks received.
    pub n_in_nacks: u64,
    /// Nacks sent.
    pub n_out_nacks: u64,
    /// PIT entries satisfied by Data.
    pub n_satisfied_interests: u64,
    /// PIT entries that expired or were nacked without Data.
    pub n_unsatisfied_interests: u64,
    /// Content Store hits.
    pub n_cs_hits: u64,
    /// Content Store misses.
    pub n_cs_misses: u64,
    /// Drops by reason.
    pub drops: DropCounters,
}

/// A snapshot of forwarder status (what `status/general` reports), taken by
/// [`crate::core::Forwarder::status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwarderStatus {
    /// Distinct names indexed by the tables (FIB + PIT + measurements + strategy choices).
    pub n_name_tree_entries: u64,
    /// FIB entries.
    pub n_fib_entries: u64,
    /// PIT entries.
    pub n_pit_entries: u64,
    /// Measurements entries (adaptive strategy state).
    pub n_measurements_entries: u64,
    /// Content Store entries.
    pub n_cs_entries: u64,
    /// Counters.
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot() {
        let mut d = DropCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                d.bump(*r);
            }
        }
        for (i, (r, n)) in d.iter().enumerate() {
            assert_eq!(n, i as u64 + 1, "{}", r.as_str());
        }
        assert_eq!(d.get(DropReason::Fragment), 16);
        assert_eq!(d.get(DropReason::PitMemory), 18);
        assert_eq!(d.get(DropReason::FairShare), 19);
        assert_eq!(d.get(DropReason::FairQueue), 20);
        assert_eq!(d.get(DropReason::CongestedUpstream), DROP_REASONS as u64);
        assert_eq!(d.total(), (1..=DROP_REASONS as u64).sum::<u64>());
    }
}
