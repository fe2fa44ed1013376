//! Pending Interest Table storage: a slab of entries indexed by name hash, with generation
//! counters so an 8-byte PIT token (slot + generation) finds an entry in O(1) and a stale token
//! never matches a reused slot.
//!
//! Entries are keyed by (Name, CanBePrefix, MustBeFresh) as in NFD; entries with the same name
//! share one hash chain. The pipelines in `forwarder.rs` own the semantics (aggregation, loop
//! detection, expiry); this module only stores and finds.

use std::collections::HashMap;

use amicn_tlv::{Interest, NackReason, Name};
use bytes::Bytes;

use super::strategy::{RetxSuppression, StrategyKind};
use super::{FaceId, IdHasher, Time};

const NONE: u32 = u32::MAX;

/// A downstream that is waiting for Data.
#[derive(Clone, Debug)]
pub(crate) struct InRecord {
    pub(crate) face: FaceId,
    pub(crate) nonce: u32,
    pub(crate) expiry: Time,
    /// The downstream's PitToken, echoed on the Data or Nack sent back.
    pub(crate) pit_token: Option<Bytes>,
}

/// An upstream the Interest was forwarded to.
#[derive(Clone, Debug)]
pub(crate) struct OutRecord {
    pub(crate) face: FaceId,
    pub(crate) nonce: u32,
    pub(crate) sent: Time,
    pub(crate) nack: Option<NackReason>,
    /// Per-upstream suppression (multicast).
    pub(crate) suppress: RetxSuppression,
}

/// Where the adaptive strategy keeps measurements for this entry: the FIB prefix it matched,
/// as (forwarding-hint index or none, prefix length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MeasKey {
    pub(crate) hint: Option<u8>,
    pub(crate) depth: u16,
}

/// One PIT entry.
pub(crate) struct PitEntry {
    /// The Interest as accepted (HopLimit already decremented, Nonce present).
    pub(crate) interest: Interest,
    /// The bare Interest wire sent upstream for the current nonce.
    pub(crate) fwd_wire: Bytes,
    pub(crate) in_records: Vec<InRecord>,
    pub(crate) out_records: Vec<OutRecord>,
    pub(crate) expiry: Time,
    pub(crate) strategy: StrategyKind,
    pub(crate) retx: RetxSuppression,
    pub(crate) meas: Option<MeasKey>,
    chain_next: u32,
}

impl PitEntry {
    pub(crate) fn new(interest: Interest, fwd_wire: Bytes, strategy: StrategyKind) -> Self {
        PitEntry {
            interest,
            fwd_wire,
            in_records: Vec::new(),
            out_records: Vec::new(),
            expiry: Time::ZERO,
            strategy,
            retx: RetxSuppression::default(),
            meas: None,
            chain_next: NONE,
        }
    }

    pub(crate) fn name(&self) -> &Name {
        &self.interest.name
    }

    /// Whether this entry is satisfied by a Data named `data_name` (without digest matching).
    pub(crate) fn matches_data_name(&self, data_name: &Name) -> bool {
        let n = &self.interest.name;
        if self.interest.can_be_prefix {
            n.is_prefix_of(data_name)
        } else {
            n == data_name
        }
    }

    /// Latest time an Interest was sent upstream.
    pub(crate) fn last_out(&self) -> Option<Time> {
        self.out_records.iter().map(|o| o.sent).max()
    }
}

struct Slot {
    generation: u32,
    entry: Option<PitEntry>,
}

fn is_digest_name(name: &Name) -> bool {
    name.last().is_some_and(|c| c.is_implicit_digest())
}

/// The table.
#[derive(Default)]
pub(crate) struct Pit {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<u64, u32, IdHasher>,
    len: usize,
    /// Count of CanBePrefix entries per name length, so Data matching only probes prefix lengths
    /// that can match.
    cbp_depths: Vec<u32>,
    /// Entries whose name ends in an ImplicitSha256DigestComponent; when zero, Data never needs
    /// its digest computed.
    pub(crate) digest_entries: usize,
}

impl Pit {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, idx: u32) -> Option<&PitEntry> {
        self.slots.get(idx as usize)?.entry.as_ref()
    }

    pub(crate) fn get_mut(&mut self, idx: u32) -> Option<&mut PitEntry> {
        self.slots.get_mut(idx as usize)?.entry.as_mut()
    }

    pub(crate) fn generation(&self, idx: u32) -> u32 {
        self.slots.get(idx as usize).map_or(0, |s| s.generation)
    }

    /// The 8-byte token put on Interests sent upstream for this entry.
    pub(crate) fn token(&self, idx: u32) -> [u8; 8] {
        let mut t = [0u8; 8];
        t[..4].copy_from_slice(&idx.to_be_bytes());
        t[4..].copy_from_slice(&self.generation(idx).to_be_bytes());
        t
    }

    /// The live entry a token designates.
    pub(crate) fn by_token(&self, token: &[u8]) -> Option<u32> {
        let t: [u8; 8] = token.try_into().ok()?;
        let idx = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        let generation = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let slot = self.slots.get(idx as usize)?;
        (slot.generation == generation && slot.entry.is_some()).then_some(idx)
    }

    /// The entry for (name, CanBePrefix, MustBeFresh).
    pub(crate) fn find(&self, name: &Name, cbp: bool, mbf: bool) -> Option<u32> {
        let mut cur = *self.index.get(&name.prefix_hash(name.len()))?;
        while cur != NONE {
            let e = self.get(cur)?;
            if e.interest.can_be_prefix == cbp
                && e.interest.must_be_fresh == mbf
                && e.name() == name
            {
                return Some(cur);
            }
            cur = e.chain_next;
        }
        None
    }

    /// Inserts a new entry; the caller checked `find` first.
    pub(crate) fn insert(&mut self, mut entry: PitEntry) -> u32 {
        let name = entry.name();
        let h = name.prefix_hash(name.len());
        let cbp_depth = entry.interest.can_be_prefix.then(|| name.len());
        let digest = is_digest_name(name);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(NONE - 1)
            }
        };
        entry.chain_next = self.index.get(&h).copied().unwrap_or(NONE);
        self.index.insert(h, idx);
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            slot.entry = Some(entry);
        }
        if let Some(d) = cbp_depth {
            if self.cbp_depths.len() <= d {
                self.cbp_depths.resize(d + 1, 0);
            }
            self.cbp_depths[d] += 1;
        }
        if digest {
            self.digest_entries += 1;
        }
        self.len += 1;
        idx
    }

    /// Removes an entry, bumping its slot's generation so old tokens go stale.
    pub(crate) fn remove(&mut self, idx: u32) -> Option<PitEntry> {
        let entry = self.slots.get_mut(idx as usize)?.entry.take()?;
        let name = entry.name();
        let h = name.prefix_hash(name.len());
        // Unlink from the hash chain.
        let head = self.index.get(&h).copied().unwrap_or(NONE);
        if head == idx {
            if entry.chain_next == NONE {
                self.index.remove(&h);
            } else {
                self.index.insert(h, entry.chain_next);
            }
        } else {
            let mut cur = head;
            while cur != NONE {
                let next = self.get(cur).map_or(NONE, |e| e.chain_next);
                if next == idx {
                    if let Some(e) = self.get_mut(cur) {
                        e.chain_next = entry.chain_next;
                    }
                    break;
                }
                cur = next;
            }
        }
        if entry.interest.can_be_prefix
            && let Some(c) = self.cbp_depths.get_mut(name.len())
        {
            *c = c.saturating_sub(1);
        }
        if is_digest_name(name) {
            self.digest_entries = self.digest_entries.saturating_sub(1);
        }
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            slot.generation = slot.generation.wrapping_add(1);
        }
        self.free.push(idx);
        self.len -= 1;
        Some(entry)
    }

    /// Appends every entry a Data named `data_name` satisfies by name (exact name, or a
    /// CanBePrefix entry whose name is a prefix). Digest-named entries are found separately.
    pub(crate) fn match_data(&self, data_name: &Name, out: &mut Vec<u32>) {
        self.collect_chain(
            data_name.prefix_hash(data_name.len()),
            |e| e.matches_data_name(data_name),
            out,
        );
        let top = data_name.len().min(self.cbp_depths.len());
        for depth in 0..top {
            if self.cbp_depths.get(depth).copied().unwrap_or(0) == 0 {
                continue;
            }
            self.collect_chain(
                data_name.prefix_hash(depth),
                |e| {
                    e.interest.can_be_prefix
                        && e.name().len() == depth
                        && e.name().is_prefix_of(data_name)
                },
                out,
            );
        }
    }

    /// Appends every entry whose name equals `full_name` (the Data name plus its digest).
    pub(crate) fn match_full_name(&self, full_name: &Name, out: &mut Vec<u32>) {
        self.collect_chain(
            full_name.prefix_hash(full_name.len()),
            |e| e.name() == full_name,
            out,
        );
    }

    fn collect_chain(&self, h: u64, pred: impl Fn(&PitEntry) -> bool, out: &mut Vec<u32>) {
        let mut cur = self.index.get(&h).copied().unwrap_or(NONE);
        while cur != NONE {
            let Some(e) = self.get(cur) else { break };
            if pred(e) && !out.contains(&cur) {
                out.push(cur);
            }
            cur = e.chain_next;
        }
    }

    /// Every live entry index (for face removal sweeps).
    pub(crate) fn indices(&self) -> Vec<u32> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }
}
