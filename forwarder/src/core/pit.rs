//! Pending Interest Table storage: a slab of entries indexed by name hash, with generation
//! counters so an 8-byte PIT token (slot + generation) finds an entry in O(1) and a stale token
//! never matches a reused slot.
//!
//! Entries are keyed by (Name, CanBePrefix, MustBeFresh) as in NFD; entries with the same name
//! share one hash chain. The chain is chosen by a keyed hash of the name bytes (random per
//! table by default): the Name's own prefix hashes are unkeyed, so names from the network
//! could otherwise be crafted to share one chain and make every lookup a long walk. The pipelines in `forwarder.rs` own the semantics (aggregation, loop
//! detection, expiry); this module only stores and finds.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use amicn_tlv::{Interest, NackReason, Name};
use bytes::Bytes;

use super::strategy::{RetxSuppression, StrategyKind};
use super::{FaceId, IdHasher, Time};

const NONE: u32 = u32::MAX;
const LOCALHOST: &[u8] = b"\x08\x09localhost";
const LOCALHOP: &[u8] = b"\x08\x08localhop";

/// A short list stored inline while it has one element (the common case: one downstream,
/// one upstream), so a PIT entry needs no allocation for its records.
#[derive(Clone, Debug, Default)]
pub(crate) enum Records<T> {
    #[default]
    Empty,
    One(T),
    Many(Vec<T>),
}

impl<T> std::ops::Deref for Records<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Records::Empty => &[],
            Records::One(t) => std::slice::from_ref(t),
            Records::Many(v) => v,
        }
    }
}

impl<T> std::ops::DerefMut for Records<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Records::Empty => &mut [],
            Records::One(t) => std::slice::from_mut(t),
            Records::Many(v) => v,
        }
    }
}

impl<'a, T> IntoIterator for &'a Records<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> Records<T> {
    pub(crate) fn push(&mut self, x: T) {
        *self = match std::mem::take(self) {
            Records::Empty => Records::One(x),
            Records::One(a) => Records::Many(vec![a, x]),
            Records::Many(mut v) => {
                v.push(x);
                Records::Many(v)
            }
        };
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        match self {
            Records::Empty => {}
            Records::One(t) => {
                if !keep(t) {
                    *self = Records::Empty;
                }
            }
            Records::Many(v) => v.retain(|t| keep(t)),
        }
    }
}

/// A downstream that is waiting for Data.
#[derive(Clone, Debug)]
pub(crate) struct InRecord {
    pub(crate) face: FaceId,
    pub(crate) nonce: u32,
    pub(crate) expiry: Time,
    /// The downstream's PitToken, echoed on the Data or Nack sent back.
    pub(crate) pit_token: Option<Bytes>,
    /// PIT bytes charged to the downstream face for this record.
    pub(crate) charge: u32,
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

/// One PIT entry. The name is kept as a range of the retained Interest packet (no copy, no
/// decoded Interest, no second handle on the buffer) so an entry costs a few hundred bytes.
pub(crate) struct PitEntry {
    /// Where the Name TLV-VALUE sits in `fwd_wire`.
    name_at: (u32, u32),
    /// The Name TLV-VALUE when `fwd_wire` does not hold it where an Interest's name belongs
    /// (never for wires built by this crate; kept so a foreign encoding cannot break matching).
    name_spill: Option<Bytes>,
    pub(crate) name_hash: u64,
    /// Keyed hash of the name bytes: which index chain the entry is on.
    index_hash: u64,
    pub(crate) name_len: u16,
    pub(crate) can_be_prefix: bool,
    pub(crate) must_be_fresh: bool,
    /// The last name component is an ImplicitSha256DigestComponent.
    pub(crate) digest_name: bool,
    /// HopLimit is present and zero after decrementing: only local faces may receive it.
    pub(crate) hop_zero: bool,
    /// Name under `/localhost`: never leaves by a non-local face.
    pub(crate) localhost: bool,
    /// Name under `/localhop`: one hop beyond the first non-local face only.
    pub(crate) localhop: bool,
    /// Nonce of the Interest in `fwd_wire`.
    pub(crate) nonce: u32,
    /// The bare Interest wire sent upstream (HopLimit decremented, Nonce present); replaced
    /// only through [`PitEntry::set_fwd_wire`], which keeps `name_at` pointing into it.
    fwd_wire: Bytes,
    pub(crate) in_records: Records<InRecord>,
    pub(crate) out_records: Records<OutRecord>,
    pub(crate) expiry: Time,
    pub(crate) strategy: StrategyKind,
    pub(crate) retx: RetxSuppression,
    /// FIB prefix the adaptive strategy measures under (set only for that strategy).
    pub(crate) meas: Option<Box<Name>>,
    chain_next: u32,
}

impl PitEntry {
    /// A new entry. `fwd_wire` must be a buffer of its own (not a slice of a receive buffer)
    /// so a long-lived entry pins nothing else; the name is kept as a slice of it.
    pub(crate) fn new(interest: &Interest, fwd_wire: Bytes, strategy: StrategyKind) -> Self {
        let name = &interest.name;
        let (name_at, name_spill) = locate_name(&fwd_wire, name.value_wire());
        PitEntry {
            name_at,
            name_spill,
            name_hash: name.prefix_hash(name.len()),
            index_hash: 0,
            name_len: u16::try_from(name.len()).unwrap_or(u16::MAX),
            can_be_prefix: interest.can_be_prefix,
            must_be_fresh: interest.must_be_fresh,
            digest_name: is_digest_name(name),
            hop_zero: interest.hop_limit == Some(0),
            localhost: name.component_wire(0) == Some(LOCALHOST),
            localhop: name.component_wire(0) == Some(LOCALHOP),
            nonce: interest.nonce.unwrap_or(0),
            fwd_wire,
            in_records: Records::Empty,
            out_records: Records::Empty,
            expiry: Time::ZERO,
            strategy,
            retx: RetxSuppression::default(),
            meas: None,
            chain_next: NONE,
        }
    }

    /// The bare Interest wire sent upstream.
    pub(crate) fn fwd_wire(&self) -> &Bytes {
        &self.fwd_wire
    }

    /// Replaces the Interest sent upstream (same name, another Nonce or HopLimit).
    pub(crate) fn set_fwd_wire(&mut self, fwd_wire: Bytes) {
        let (name_at, spill) = locate_name(&fwd_wire, self.name());
        if spill.is_some() && self.name_spill.is_some() {
            // Already spilled: keep that copy rather than making another.
            self.name_at = name_at;
        } else {
            self.name_at = name_at;
            self.name_spill = spill;
        }
        self.fwd_wire = fwd_wire;
    }

    /// Name TLV-VALUE.
    pub(crate) fn name(&self) -> &[u8] {
        if let Some(n) = &self.name_spill {
            return n;
        }
        let (s, e) = self.name_at;
        self.fwd_wire
            .get(s as usize..e as usize)
            .unwrap_or_default()
    }

    /// Whether this entry's name is exactly `name`.
    pub(crate) fn is_named(&self, name: &Name) -> bool {
        self.name_len as usize == name.len() && self.name() == name.value_wire()
    }

    /// Whether this entry's name is a prefix of `name` (a byte prefix of a sequence of whole
    /// component TLVs is a component prefix).
    pub(crate) fn is_prefix_of(&self, name: &Name) -> bool {
        self.name_len as usize <= name.len() && name.value_wire().starts_with(self.name())
    }

    /// Whether this entry is satisfied by a Data named `data_name` (without digest matching).
    pub(crate) fn matches_data_name(&self, data_name: &Name) -> bool {
        if self.can_be_prefix {
            self.is_prefix_of(data_name)
        } else {
            self.is_named(data_name)
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
    name.len()
        .checked_sub(1)
        .and_then(|i| name.component_type(i))
        == Some(amicn_tlv::tt::IMPLICIT_SHA256_DIGEST_COMPONENT)
}

/// Where the name `value` sits in an Interest `wire`, or a copy of it when it is not there.
fn locate_name(wire: &[u8], value: &[u8]) -> ((u32, u32), Option<Bytes>) {
    if let Some((s, e)) = super::wire::name_value_range(wire)
        && wire.get(s..e) == Some(value)
        && let (Ok(s), Ok(e)) = (u32::try_from(s), u32::try_from(e))
    {
        return ((s, e), None);
    }
    ((0, 0), Some(Bytes::copy_from_slice(value)))
}

/// The table; `S` hashes names for the index (tests inject degenerate hashers).
#[derive(Default)]
pub(crate) struct Pit<S = RandomState> {
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
    /// First byte of every token this table hands out.
    pub(crate) shard: u8,
    hasher: S,
}

impl Pit {
    pub(crate) fn with_shard(shard: u8) -> Self {
        Pit {
            shard,
            ..Pit::default()
        }
    }
}

impl<S: BuildHasher> Pit<S> {
    fn key(&self, name_value: &[u8]) -> u64 {
        self.hasher.hash_one(name_value)
    }

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

    /// The 8-byte token put on Interests sent upstream for this entry:
    /// `[shard][slot: 4 bytes][generation: low 3 bytes]`, big-endian. The shard byte lets a
    /// multi-threaded runtime send returning Data to the core that owns the entry.
    pub(crate) fn token(&self, idx: u32) -> [u8; 8] {
        let g = self.generation(idx).to_be_bytes();
        let i = idx.to_be_bytes();
        [self.shard, i[0], i[1], i[2], i[3], g[1], g[2], g[3]]
    }

    /// The live entry a token designates.
    pub(crate) fn by_token(&self, token: &[u8]) -> Option<u32> {
        let t: [u8; 8] = token.try_into().ok()?;
        if t[0] != self.shard {
            return None;
        }
        let idx = u32::from_be_bytes([t[1], t[2], t[3], t[4]]);
        let generation = u32::from_be_bytes([0, t[5], t[6], t[7]]);
        let slot = self.slots.get(idx as usize)?;
        (slot.generation & 0x00FF_FFFF == generation && slot.entry.is_some()).then_some(idx)
    }

    /// The entry for (name, CanBePrefix, MustBeFresh).
    pub(crate) fn find(&self, name: &Name, cbp: bool, mbf: bool) -> Option<u32> {
        let mut cur = *self.index.get(&self.key(name.value_wire()))?;
        while cur != NONE {
            let e = self.get(cur)?;
            if e.can_be_prefix == cbp && e.must_be_fresh == mbf && e.is_named(name) {
                return Some(cur);
            }
            cur = e.chain_next;
        }
        None
    }

    /// Inserts a new entry; the caller checked `find` first.
    pub(crate) fn insert(&mut self, mut entry: PitEntry) -> u32 {
        let h = self.key(entry.name());
        entry.index_hash = h;
        let cbp_depth = entry.can_be_prefix.then_some(entry.name_len as usize);
        let digest = entry.digest_name;
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
        let h = entry.index_hash;
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
        if entry.can_be_prefix
            && let Some(c) = self.cbp_depths.get_mut(entry.name_len as usize)
        {
            *c = c.saturating_sub(1);
        }
        if entry.digest_name {
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
        let value = data_name.value_wire();
        self.collect_chain(self.key(value), |e| e.matches_data_name(data_name), out);
        let top = data_name.len().min(self.cbp_depths.len());
        // `end` = where the first `depth` components end in the name's TLV-VALUE.
        let mut end = 0usize;
        for depth in 0..top {
            if depth > 0 {
                end += data_name.component_wire(depth - 1).map_or(0, <[u8]>::len);
            }
            if self.cbp_depths.get(depth).copied().unwrap_or(0) == 0 {
                continue;
            }
            self.collect_chain(
                self.key(value.get(..end).unwrap_or_default()),
                |e| e.can_be_prefix && e.name_len as usize == depth && e.is_prefix_of(data_name),
                out,
            );
        }
    }

    /// Appends every entry whose name equals `full_name` (the Data name plus its digest).
    pub(crate) fn match_full_name(&self, full_name: &Name, out: &mut Vec<u32>) {
        self.collect_chain(
            self.key(full_name.value_wire()),
            |e| e.is_named(full_name),
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

    /// Whether slot `idx` still holds the entry it held at `generation`.
    pub(crate) fn is_live(&self, idx: u32, generation: u32) -> bool {
        self.slots
            .get(idx as usize)
            .is_some_and(|s| s.generation == generation && s.entry.is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use amicn_tlv::Component;

    #[test]
    fn records_grow_and_shrink() {
        let mut r: Records<u32> = Records::Empty;
        assert!(r.is_empty());
        r.push(1);
        assert!(matches!(r, Records::One(1)));
        r.push(2);
        r.push(3);
        assert_eq!(&r[..], &[1, 2, 3]);
        r.iter_mut().for_each(|x| *x *= 10);
        r.retain(|x| *x != 20);
        assert_eq!(&r[..], &[10, 30]);
        let mut one = Records::One(5u32);
        one.retain(|x| *x != 5);
        assert!(one.is_empty());
    }

    fn entry(uri: &str, cbp: bool, mbf: bool) -> PitEntry {
        let mut i = Interest::new(Name::from_uri(uri).unwrap());
        i.can_be_prefix = cbp;
        i.must_be_fresh = mbf;
        i.nonce = Some(1);
        let w = i.encode();
        PitEntry::new(&i, w, StrategyKind::BestRoute)
    }

    #[test]
    fn key_is_name_and_selectors() {
        let mut pit: Pit = Pit::default();
        let a = pit.insert(entry("/a/b", false, false));
        let b = pit.insert(entry("/a/b", true, false));
        let c = pit.insert(entry("/a/b", false, true));
        let n = Name::from_uri("/a/b").unwrap();
        assert_eq!(pit.find(&n, false, false), Some(a));
        assert_eq!(pit.find(&n, true, false), Some(b));
        assert_eq!(pit.find(&n, false, true), Some(c));
        assert_eq!(pit.find(&n, true, true), None);
        assert_eq!(pit.len(), 3);
        pit.remove(b);
        assert_eq!(pit.find(&n, false, false), Some(a));
        assert_eq!(pit.find(&n, false, true), Some(c));
        assert_eq!(pit.find(&n, true, false), None);
    }

    #[test]
    fn tokens_go_stale_when_the_slot_is_reused() {
        let mut pit: Pit = Pit::default();
        let a = pit.insert(entry("/t/1", false, false));
        let tok = pit.token(a);
        assert_eq!(pit.by_token(&tok), Some(a));
        pit.remove(a);
        assert_eq!(pit.by_token(&tok), None);
        let b = pit.insert(entry("/t/2", false, false));
        assert_eq!(b, a, "slot reused");
        assert_eq!(pit.by_token(&tok), None, "old generation");
        assert_eq!(pit.by_token(&pit.token(b)), Some(b));
        assert_eq!(pit.by_token(&[1, 2, 3]), None, "foreign token length");
    }

    #[test]
    fn entry_name_is_a_slice_of_its_own_wire() {
        let mut i = Interest::new(Name::from_uri("/own/wire").unwrap());
        i.nonce = Some(3);
        let orig = i.encode();
        let fwd = crate::core::wire::interest_wire(&orig, &i, false, false);
        assert_ne!(
            fwd.as_ptr(),
            orig.as_ptr(),
            "copied out of the received buffer"
        );
        let e = PitEntry::new(&i, fwd.clone(), StrategyKind::BestRoute);
        let range = fwd.as_ptr() as usize..fwd.as_ptr() as usize + fwd.len();
        assert!(range.contains(&(e.name().as_ptr() as usize)));
        assert!(e.name_spill.is_none());
        assert!(e.is_named(&i.name));
        // A new Nonce re-encodes the wire; the name follows it into the new buffer.
        let mut j = i.clone();
        j.nonce = Some(4);
        j.lifetime_ms = Some(300_000);
        let fwd2 = j.encode();
        let mut e = e;
        e.set_fwd_wire(fwd2.clone());
        let range = fwd2.as_ptr() as usize..fwd2.as_ptr() as usize + fwd2.len();
        assert!(range.contains(&(e.name().as_ptr() as usize)));
        assert!(e.is_named(&i.name) && e.name_spill.is_none());
        // A wire without the name where it belongs keeps a copy instead.
        e.set_fwd_wire(Bytes::from_static(&[0x05, 0x00]));
        assert!(e.is_named(&i.name) && e.is_prefix_of(&i.name.append(Component::segment(1))));
        assert!(!e.is_named(&Name::from_uri("/own").unwrap()));
    }

    #[test]
    fn tokens_carry_the_shard() {
        let mut pit: Pit = Pit {
            shard: 7,
            ..Pit::default()
        };
        let a = pit.insert(entry("/s/1", false, false));
        let tok = pit.token(a);
        assert_eq!(tok[0], 7);
        assert_eq!(crate::core::token_shard(&tok), Some(7));
        assert_eq!(pit.by_token(&tok), Some(a));
        let mut other = tok;
        other[0] = 8;
        assert_eq!(pit.by_token(&other), None, "another shard's token");
    }

    #[derive(Default, Clone, Copy)]
    struct Collide;

    impl BuildHasher for Collide {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn one_chain_for_every_name_still_finds_the_right_entries() {
        let mut pit: Pit<Collide> = Pit::default();
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.push(pit.insert(entry(&format!("/c/{i}"), false, false)));
        }
        let prefix = pit.insert(entry("/c", true, false));
        for (i, id) in ids.iter().enumerate() {
            let n = Name::from_uri(&format!("/c/{i}")).unwrap();
            assert_eq!(pit.find(&n, false, false), Some(*id));
            assert_eq!(pit.find(&n, true, false), None);
            let mut out = Vec::new();
            pit.match_data(&n, &mut out);
            out.sort_unstable();
            let mut want = vec![*id, prefix];
            want.sort_unstable();
            assert_eq!(out, want, "/c/{i}");
        }
        for id in ids.iter().step_by(2) {
            pit.remove(*id);
        }
        for (i, id) in ids.iter().enumerate() {
            let n = Name::from_uri(&format!("/c/{i}")).unwrap();
            let want = (i % 2 == 1).then_some(*id);
            assert_eq!(pit.find(&n, false, false), want, "/c/{i}");
        }
        assert_eq!(pit.len(), 26);
    }

    #[test]
    fn data_matches_exact_and_prefix_entries_only() {
        let mut pit: Pit = Pit::default();
        let exact = pit.insert(entry("/d/x/1", false, false));
        let prefix = pit.insert(entry("/d/x", true, false));
        let _not_prefix = pit.insert(entry("/d/x", false, false));
        let _other = pit.insert(entry("/d/y", true, false));
        let _root = pit.insert(entry("/", true, true));
        let mut out = Vec::new();
        pit.match_data(&Name::from_uri("/d/x/1").unwrap(), &mut out);
        out.sort_unstable();
        let mut want = vec![exact, prefix, 4];
        want.sort_unstable();
        assert_eq!(out, want);
    }
}
