//! The sans-IO forwarding core: PIT, FIB, Content Store, strategies and the packet pipelines,
//! with no sockets, no clock and no locks.
//!
//! The runtime (tokio) and the simulator in `tests/sim_*.rs` drive it the same way:
//!
//! ```text
//! let mut fw = Forwarder::new(Config::default());
//! let face = fw.add_face(FaceOptions { scope: FaceScope::Local, ..Default::default() });
//! fw.on_packet(now, face, bytes);           // one received link-layer packet (bare or LpPacket)
//! fw.on_timeout(now);                      // whenever poll_timeout() is reached
//! while let Some((face, bytes)) = fw.poll_transmit() { /* write to the face */ }
//! let next_wakeup: Option<Time> = fw.poll_timeout();
//! ```
//!
//! Time is a [`Time`] (nanoseconds since an epoch the driver picks); the core never reads a
//! clock, so tests run many cores in virtual time deterministically.
//!
//! # API used by the runtime
//! - [`Forwarder::new`]`(Config)`, [`Forwarder::add_face`]`(FaceOptions) -> FaceId`,
//!   [`Forwarder::remove_face`]`(FaceId) -> bool`, [`Forwarder::face_mut`] (update options),
//!   [`Forwarder::set_face_congested`]`(FaceId, bool)` (send queue building up → CongestionMark).
//! - [`Forwarder::on_packet`]`(Time, FaceId, Bytes)`, [`Forwarder::on_timeout`]`(Time)`,
//!   [`Forwarder::poll_transmit`]` -> Option<(FaceId, Bytes)>`,
//!   [`Forwarder::poll_timeout`]` -> Option<Time>`.
//! - Several cores (one per thread): give each a distinct [`Config::shard_id`]; returning Data
//!   and Nacks whose PitToken satisfies [`token_shard`]` == Some(id)` belong to that core,
//!   token-less ones to the core chosen by the name-prefix hash.
//! - Packets larger than [`Config::max_packet_size`] are dropped; fragments must be reassembled
//!   by the face before `on_packet` (an LpPacket with FragCount > 1 is dropped as `Fragment`).
//!
//! # API used by management
//! - Management Interests: names under `/localhost/nfd` arriving on a **local** face are not
//!   forwarded but queued; [`Forwarder::poll_management`]` -> Option<MgmtRequest>` hands them
//!   out (face, decoded Interest, the requester's PitToken), and
//!   [`Forwarder::reply_management`]`(face, pit_token, data_wire)` sends the encoded response
//!   Data back. On a non-local face they are dropped by the scope rule (counted).
//! - Face events: [`Forwarder::poll_face_event`]` -> Option<FaceEvent>` (created / destroyed);
//!   faces and their counters: [`Forwarder::faces`]` -> &FaceTable` ([`FaceTable::iter`],
//!   [`Face::counters`], [`Face::options`]).
//! - FIB: [`Forwarder::fib_add_nexthop`]`(&Name, FaceId, cost) -> Result<(), Error>`,
//!   [`Forwarder::fib_remove_nexthop`]`(&Name, FaceId) -> bool`,
//!   [`Forwarder::fib_remove_entry`], [`Forwarder::fib_entries`]` -> Vec<FibEntry>` (sorted),
//!   [`Forwarder::fib_get`], [`Forwarder::fib_lookup`].
//! - CS: [`Forwarder::cs_config`]`(Option<packets>, Option<bytes>, Option<admit>,
//!   Option<serve>)`, [`Forwarder::cs_erase`]`(&Name, limit) -> usize`,
//!   [`Forwarder::cs_info`]` -> CsInfo`.
//! - Strategy choice: [`Forwarder::set_strategy`]`(&Name prefix, &Name strategy) ->
//!   Result<Name, Error>` (accepts `/localhost/nfd/strategy/best-route[/v=5]`,
//!   `multicast[/v=4]`, `asf[/v=5]`), [`Forwarder::unset_strategy`],
//!   [`Forwarder::strategy_choices`]` -> Vec<(Name, Name)>`.
//! - Status: [`Forwarder::status`]` -> ForwarderStatus` (table sizes, NFD counters, CS
//!   hits/misses, [`DropCounters`] by [`DropReason`]).
//!
//! # Forwarding rules (NFD semantics)
//! PIT entries aggregate by (Name, CanBePrefix, MustBeFresh); a Nonce seen in the entry from
//! another face, in an out-record or in the Dead Nonce List is a loop (Nack Duplicate on
//! point-to-point faces, silent drop on multi-access). HopLimit 0 on arrival is dropped, else
//! decremented; an Interest with HopLimit 0 left only goes to local faces. Interests sent
//! upstream carry our 8-byte PitToken (shard, PIT slot, generation) and returning Data is
//! matched by it first, by name otherwise; the downstream's own token is echoed on Data and
//! Nacks. The PIT and CS keep their own compact copies of packets, never slices of receive
//! buffers, so table caps bound memory.
//! `/localhost` never crosses a non-local face; `/localhop` from a non-local face only goes to
//! local faces. Unsolicited Data is dropped by default.

mod config;
mod counters;
mod cs;
mod dnl;
mod error;
mod face;
mod forwarder;
mod name_map;
mod pit;
mod strategy;
mod time;
mod wire;

use std::hash::{BuildHasherDefault, Hasher};

use amicn_tlv::{Interest, Name};
use bytes::Bytes;

pub use config::{Config, PIT_ENTRY_OVERHEAD, UnsolicitedPolicy};
pub use counters::{Counters, DropCounters, DropReason, ForwarderStatus};
pub use cs::CsInfo;
pub use dnl::DeadNonceList;
pub use error::Error;
pub use face::{
    Face, FaceCounters, FaceId, FaceOptions, FacePersistency, FaceScope, FaceTable, LinkType,
};
pub use forwarder::{CONTENT_STORE_FACE_ID, FibEntry, Forwarder, NextHop};
pub use name_map::NameMap;
pub use strategy::{FaceMeasurement, Measurements, StrategyKind};
pub use time::{Time, TimerWheel};

/// The shard (forwarding core) a PitToken returned by an upstream belongs to, if the token is
/// one of ours: lets a multi-threaded runtime route Data and Nacks to the owning core.
pub fn token_shard(token: &[u8]) -> Option<u8> {
    (token.len() == 8).then(|| token[0])
}

/// A management Interest handed to the management module.
#[derive(Clone, Debug)]
pub struct MgmtRequest {
    /// The (local) face it arrived on: the face a `rib/register` with FaceId 0 means.
    pub face: FaceId,
    /// The command or dataset Interest.
    pub interest: Interest,
    /// The requester's PitToken, to echo on the response.
    pub pit_token: Option<Bytes>,
}

/// What happened to a face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceEventKind {
    /// Added.
    Created,
    /// Removed.
    Destroyed,
}

/// A face event for the management notification stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceEvent {
    /// The face.
    pub face: FaceId,
    /// What happened.
    pub kind: FaceEventKind,
}

/// Fairness hook in the Interest pipeline, consulted before an Interest takes a new PIT
/// in-record (after the fixed per-face and total PIT limits).
pub trait InterestAdmission: Send {
    /// `face_records` = in-records the face already holds, `pit_len` = PIT entries in total.
    /// Return false to drop the Interest (counted as [`DropReason::Admission`]).
    fn admit(&mut self, face: FaceId, name: &Name, face_records: usize, pit_len: usize) -> bool;
}

/// Hasher for keys that already are good hashes (name prefix hashes) or small ids: one
/// multiply, no per-lookup SipHash.
#[derive(Default, Clone, Copy)]
pub struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// `BuildHasher` for [`IdHash`].
pub type IdHasher = BuildHasherDefault<IdHash>;
