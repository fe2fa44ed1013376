//! Limits and policies of one forwarding core.

use std::time::Duration;

use super::strategy::StrategyKind;

/// What the CS does with Data that matched no PIT entry (NFD `cs_unsolicited_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnsolicitedPolicy {
    /// Drop it (NFD default).
    #[default]
    DropAll,
    /// Cache it when it arrived on a local face.
    AdmitLocal,
    /// Cache it when it arrived on a non-local face.
    AdmitNetwork,
    /// Cache it whatever the face.
    AdmitAll,
}

/// Bytes a PIT entry costs beyond its Interest wire (entry, records, index), for
/// [`Config::pit_max_bytes`].
pub const PIT_ENTRY_OVERHEAD: usize = 256;

/// Configuration of a [`crate::core::Forwarder`]. `Config::default()` mirrors NFD's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Maximum PIT entries in total (flood defence).
    pub pit_max_entries: usize,
    /// Maximum PIT in-records one face may hold (fairness between downstreams).
    pub pit_max_per_face: usize,
    /// Satisfaction-based pushback: once the PIT is half full, each face's share of it is
    /// weighted by the satisfied share of its recent Interests, so a face sending Interests
    /// nobody answers (a flooder, or a neighbour forwarding a flood) is squeezed while faces
    /// whose Interests are answered keep their room; refusals are answered with Nack
    /// Congestion, and towards an upstream that is congested (its send queue, or a Nack
    /// Congestion from it) new Interests from poorly satisfied faces are refused. Off: equal
    /// shares, silent refusals, no refusal for congestion.
    pub pushback: bool,
    /// Maximum bytes of Interest wires the PIT retains in total (each entry keeps the
    /// Interest it sends upstream; an entry is charged its wire plus [`PIT_ENTRY_OVERHEAD`]).
    pub pit_max_bytes: usize,
    /// Maximum PIT bytes charged to one face (the face whose Interest created an entry, or
    /// joined it, is charged the entry's size).
    pub pit_max_bytes_per_face: usize,
    /// Longest time a PIT entry waits for Data: a larger InterestLifetime is shortened to this
    /// (the Interest is still forwarded unchanged). NFD has no cap; a few minutes keeps a
    /// remote peer from pinning entries for the 49 days a 32-bit lifetime allows.
    pub max_interest_lifetime: Duration,
    /// CS capacity in packets (NFD default 65,536).
    pub cs_capacity_packets: usize,
    /// CS capacity in bytes of cached packets.
    pub cs_capacity_bytes: usize,
    /// Whether Data may be admitted to the CS.
    pub cs_admit: bool,
    /// Whether the CS answers Interests.
    pub cs_serve: bool,
    /// Unsolicited-Data policy.
    pub unsolicited: UnsolicitedPolicy,
    /// Dead Nonce List entry lifetime (NFD 6 s).
    pub dead_nonce_lifetime: Duration,
    /// Dead Nonce List capacity.
    pub dead_nonce_capacity: usize,
    /// Maximum packets waiting in the output queue across all faces.
    pub out_queue_max: usize,
    /// Maximum packets waiting in the output queue for one face.
    pub out_queue_max_per_face: usize,
    /// Maximum management Interests waiting for [`crate::core::Forwarder::poll_management`].
    pub mgmt_queue_max: usize,
    /// Largest packet accepted or produced (ndn-cxx `MAX_NDN_PACKET_SIZE`).
    pub max_packet_size: usize,
    /// Strategy for `/` when nothing else is chosen.
    pub default_strategy: StrategyKind,
    /// Initial retransmission suppression interval (NFD best-route: 10 ms).
    pub retx_suppression_initial: Duration,
    /// Maximum retransmission suppression interval (NFD best-route: 250 ms).
    pub retx_suppression_max: Duration,
    /// How often the adaptive strategy probes an alternative next hop (NFD ASF: 60 s).
    pub asf_probing_interval: Duration,
    /// Maximum measurements entries (adaptive strategy state per FIB prefix).
    pub measurements_max: usize,
    /// Seed of the generator for Nonces the forwarder adds to Interests that arrive without
    /// one. The default is a fixed value so the simulator and tests are deterministic; the
    /// runtime replaces it with OS randomness unless told otherwise.
    pub rng_seed: u64,
    /// Identifies this core among several forwarding threads: the first byte of the PitTokens
    /// it puts on Interests (see [`crate::core::token_shard`]).
    pub shard_id: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pit_max_entries: 1 << 20,
            pit_max_per_face: 1 << 18,
            pushback: true,
            pit_max_bytes: 256 << 20,
            pit_max_bytes_per_face: 64 << 20,
            max_interest_lifetime: Duration::from_secs(120),
            cs_capacity_packets: 65_536,
            cs_capacity_bytes: 512 << 20,
            cs_admit: true,
            cs_serve: true,
            unsolicited: UnsolicitedPolicy::DropAll,
            dead_nonce_lifetime: Duration::from_secs(6),
            dead_nonce_capacity: 1 << 16,
            out_queue_max: 1 << 16,
            out_queue_max_per_face: 1 << 14,
            mgmt_queue_max: 1024,
            max_packet_size: 8800,
            default_strategy: StrategyKind::BestRoute,
            retx_suppression_initial: Duration::from_millis(10),
            retx_suppression_max: Duration::from_millis(250),
            asf_probing_interval: Duration::from_secs(60),
            measurements_max: 1 << 16,
            rng_seed: 0x616d_6963_6e00_0001,
            shard_id: 0,
        }
    }
}
