//! Content Store: Data packets kept as a compact copy of the received packet, capped in packets
//! and bytes, evicted least-recently-used first.
//!
//! Entries live in a slab threaded by an intrusive LRU list. Exact lookups (the common case:
//! segment fetches, meter readings by exact name) go through a hash chain keyed by the full-name
//! hash, comparing the Name TLV-VALUE only on a hash hit. CanBePrefix lookups and prefix erasure
//! need names in canonical order; the TLV-VALUE's byte order is that order, so an ordered map
//! keyed by it answers them with one range scan from the prefix. That map is maintained lazily:
//! new entries wait in a pending list and are merged only when an ordered query arrives, so a
//! store that only sees exact lookups (and churns through entries that are evicted unseen)
//! never pays for ordered insertion and removal.

use std::collections::BTreeMap;

use amicn_tlv::Name;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Time;

const NONE: u32 = u32::MAX;

/// At most this many entries are examined per CanBePrefix lookup, bounding the work a prefix
/// with many stale entries can cause.
const MAX_PREFIX_SCAN: usize = 256;

struct CsEntry {
    /// The bare Data packet, possibly followed by a copy of the name TLV-VALUE when the name
    /// could not be located inside the packet (see [`compact`]).
    buf: Bytes,
    /// Length of the Data packet at the start of `buf`.
    wire_len: u32,
    /// Where the name TLV-VALUE sits in `buf`.
    key_start: u32,
    key_len: u32,
    name_hash: u64,
    /// Fresh strictly before this time; `Time::ZERO` = never fresh.
    fresh_until: Time,
    prev: u32,
    next: u32,
    chain: u32,
    /// Whether the entry is in the ordered map (otherwise it is on the pending list).
    in_ordered: bool,
}

impl CsEntry {
    /// Name TLV-VALUE.
    fn key(&self) -> &[u8] {
        let s = self.key_start as usize;
        self.buf
            .get(s..s + self.key_len as usize)
            .unwrap_or_default()
    }

    /// Name TLV-VALUE as a slice of the cached buffer (no copy), for the ordered map.
    fn key_bytes(&self) -> Bytes {
        let s = self.key_start as usize;
        let e = s + self.key_len as usize;
        if e <= self.buf.len() {
            self.buf.slice(s..e)
        } else {
            Bytes::new()
        }
    }

    fn wire(&self) -> &[u8] {
        self.buf.get(..self.wire_len as usize).unwrap_or_default()
    }

    fn wire_bytes(&self) -> Bytes {
        if self.wire_len as usize == self.buf.len() {
            self.buf.clone()
        } else {
            self.buf
                .slice(..(self.wire_len as usize).min(self.buf.len()))
        }
    }
}

/// Content Store statistics and settings (what `cs/info` reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsInfo {
    /// Capacity in packets.
    pub capacity_packets: usize,
    /// Capacity in bytes of cached packets.
    pub capacity_bytes: usize,
    /// Whether Data is admitted.
    pub admit: bool,
    /// Whether lookups are served.
    pub serve: bool,
    /// Entries.
    pub n_entries: usize,
    /// Bytes of cached packets.
    pub n_bytes: usize,
    /// Hits.
    pub n_hits: u64,
    /// Misses.
    pub n_misses: u64,
}

/// The Content Store.
pub(crate) struct Cs {
    slots: Vec<Option<CsEntry>>,
    free: Vec<u32>,
    /// Hash chain heads: `buckets[bucket(hash)]` is the first entry whose name hash falls in
    /// that bucket, the rest follow through [`CsEntry::chain`]. A power-of-two count no smaller
    /// than the number of entries (4 octets per entry, where a map from hash to head costs
    /// about eight times as much).
    buckets: Vec<u32>,
    /// Entries in canonical name order; complete only after [`Cs::sync_ordered`].
    ordered: BTreeMap<Bytes, u32>,
    /// Slots inserted since the last merge into `ordered`. May hold slots that were evicted
    /// (or evicted and reused) since; the merge skips those by their `in_ordered` flag.
    pending: Vec<u32>,
    n_entries: usize,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    n_bytes: usize,
    pub(crate) capacity_packets: usize,
    pub(crate) capacity_bytes: usize,
    pub(crate) admit: bool,
    pub(crate) serve: bool,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

/// What an Interest asks of the CS.
pub(crate) struct CsQuery<'a> {
    pub(crate) name: &'a Name,
    pub(crate) can_be_prefix: bool,
    pub(crate) must_be_fresh: bool,
}

/// A copy of `wire` in its own allocation, and where the name's TLV-VALUE sits in it. The name
/// is normally a slice of `wire`; if it is not, the copy carries the TLV-VALUE after the packet.
fn compact(name: &Name, wire: &[u8]) -> (Bytes, u32, u32) {
    let value = name.value_wire();
    let off = (value.as_ptr() as usize).wrapping_sub(wire.as_ptr() as usize);
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    let inside = off
        .checked_add(value.len())
        .and_then(|end| wire.get(off..end))
        .is_some_and(|k| k.as_ptr() == value.as_ptr());
    match u32::try_from(off) {
        Ok(start) if inside => (Bytes::copy_from_slice(wire), start, len),
        _ => {
            let mut v = Vec::with_capacity(wire.len() + value.len());
            v.extend_from_slice(wire);
            v.extend_from_slice(value);
            let start = u32::try_from(wire.len()).unwrap_or(u32::MAX);
            (Bytes::from(v), start, len)
        }
    }
}

fn digest(wire: &[u8]) -> [u8; 32] {
    Sha256::digest(wire).into()
}

impl Cs {
    pub(crate) fn new(
        capacity_packets: usize,
        capacity_bytes: usize,
        admit: bool,
        serve: bool,
    ) -> Self {
        Cs {
            slots: Vec::new(),
            free: Vec::new(),
            buckets: Vec::new(),
            ordered: BTreeMap::new(),
            pending: Vec::new(),
            n_entries: 0,
            head: NONE,
            tail: NONE,
            n_bytes: 0,
            capacity_packets,
            capacity_bytes,
            admit,
            serve,
            hits: 0,
            misses: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.n_entries
    }

    pub(crate) fn info(&self) -> CsInfo {
        CsInfo {
            capacity_packets: self.capacity_packets,
            capacity_bytes: self.capacity_bytes,
            admit: self.admit,
            serve: self.serve,
            n_entries: self.len(),
            n_bytes: self.n_bytes,
            n_hits: self.hits,
            n_misses: self.misses,
        }
    }

    fn entry(&self, i: u32) -> Option<&CsEntry> {
        self.slots.get(i as usize)?.as_ref()
    }

    fn entry_mut(&mut self, i: u32) -> Option<&mut CsEntry> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.entry(i) {
            Some(e) => (e.prev, e.next),
            None => return,
        };
        match self.entry_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.entry_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(e) = self.entry_mut(i) {
            e.prev = NONE;
            e.next = old;
        }
        match self.entry_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// The bucket of a name hash (Fibonacci hashing: the top bits of the product).
    fn bucket(&self, name_hash: u64) -> usize {
        let bits = self.buckets.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        (name_hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn chain_head(&self, name_hash: u64) -> u32 {
        let b = self.bucket(name_hash);
        self.buckets.get(b).copied().unwrap_or(NONE)
    }

    fn set_chain_head(&mut self, name_hash: u64, i: u32) {
        let b = self.bucket(name_hash);
        if let Some(head) = self.buckets.get_mut(b) {
            *head = i;
        }
    }

    /// Doubles the bucket array once the entries outnumber it and rethreads every chain.
    fn grow_buckets(&mut self, entries: usize) {
        if entries <= self.buckets.len() {
            return;
        }
        let n = entries.next_power_of_two().max(64);
        self.buckets = vec![NONE; n];
        for i in 0..self.slots.len() {
            let Some(h) = self
                .slots
                .get(i)
                .and_then(Option::as_ref)
                .map(|e| e.name_hash)
            else {
                continue;
            };
            let head = self.chain_head(h);
            if let Some(e) = self.slots.get_mut(i).and_then(Option::as_mut) {
                e.chain = head;
            }
            self.set_chain_head(h, u32::try_from(i).unwrap_or(NONE));
        }
    }

    fn find_exact(&self, name_hash: u64, key: &[u8]) -> Option<u32> {
        let mut cur = self.chain_head(name_hash);
        while let Some(e) = self.entry(cur) {
            if e.name_hash == name_hash && e.key() == key {
                return Some(cur);
            }
            cur = e.chain;
        }
        None
    }

    /// Merges the pending entries into the ordered map.
    fn sync_ordered(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for &i in &pending {
            if let Some(e) = self.slots.get_mut(i as usize).and_then(Option::as_mut)
                && !e.in_ordered
            {
                e.in_ordered = true;
                self.ordered.insert(e.key_bytes(), i);
            }
        }
        pending.clear();
        self.pending = pending;
    }

    /// Queues a slot for the ordered map, rebuilding the queue from the live entries when stale
    /// slots make it outgrow the slab (so it stays O(capacity) without ever being merged).
    fn queue_ordered(&mut self, i: u32) {
        self.pending.push(i);
        if self.pending.len() > 2 * self.slots.len() + 64 {
            self.pending.clear();
            for (j, s) in self.slots.iter().enumerate() {
                if let Some(e) = s
                    && !e.in_ordered
                {
                    self.pending.push(u32::try_from(j).unwrap_or(NONE));
                }
            }
        }
    }

    fn usable(e: &CsEntry, must_be_fresh: bool, now: Time) -> bool {
        !must_be_fresh || now < e.fresh_until
    }

    /// Looks an Interest up; on a hit returns the cached packet and refreshes its LRU position.
    pub(crate) fn find(&mut self, q: &CsQuery<'_>, now: Time) -> Option<Bytes> {
        if q.can_be_prefix && !self.pending.is_empty() {
            self.sync_ordered();
        }
        let found = self.lookup(q, now);
        match found {
            Some(i) => {
                self.hits += 1;
                self.touch(i);
                self.entry(i).map(CsEntry::wire_bytes)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Needs the ordered map synced when `q.can_be_prefix`.
    fn lookup(&self, q: &CsQuery<'_>, now: Time) -> Option<u32> {
        let name = q.name;
        // An Interest naming a Data by its full name (last component = implicit digest). The
        // type is checked on the wire first so the common case slices no component.
        if let Some(n) = name.len().checked_sub(1)
            && name.component_type(n) == Some(amicn_tlv::tt::IMPLICIT_SHA256_DIGEST_COMPONENT)
            && let Some(last) = name.get(n)
        {
            let data_name = name.prefix(n);
            let i = self.find_exact(name.prefix_hash(n), data_name.value_wire())?;
            let e = self.entry(i)?;
            return (Self::usable(e, q.must_be_fresh, now)
                && digest(e.wire())[..] == *last.value())
            .then_some(i);
        }
        if !q.can_be_prefix {
            let i = self.find_exact(name.prefix_hash(name.len()), name.value_wire())?;
            return self
                .entry(i)
                .filter(|e| Self::usable(e, q.must_be_fresh, now))
                .map(|_| i);
        }
        let prefix = name.value_wire();
        self.ordered
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take(MAX_PREFIX_SCAN)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .find(|i| {
                self.entry(*i)
                    .is_some_and(|e| Self::usable(e, q.must_be_fresh, now))
            })
    }

    /// Caches a Data packet (replacing one with the same name) and evicts to stay within both
    /// capacities. `freshness_ms` is the FreshnessPeriod (absent or 0: never fresh).
    ///
    /// The packet is copied: a received packet is usually a slice of a larger read buffer, and
    /// caching the slice would pin that whole buffer for as long as the entry lives (and make
    /// the byte capacity meaningless). Taking `&[u8]` lets the caller keep its own handle.
    pub(crate) fn insert(
        &mut self,
        name: &Name,
        wire: &[u8],
        freshness_ms: Option<u64>,
        now: Time,
    ) {
        if self.capacity_packets == 0 || wire.len() > self.capacity_bytes {
            return;
        }
        let Ok(wire_len) = u32::try_from(wire.len()) else {
            return;
        };
        let fresh_until = match freshness_ms {
            Some(ms) if ms > 0 => now.add_millis(ms),
            _ => Time::ZERO,
        };
        let (buf, key_start, key_len) = compact(name, wire);
        let h = name.prefix_hash(name.len());
        if let Some(i) = self.find_exact(h, name.value_wire()) {
            let mut stale_key = None;
            if let Some(e) = self.entry_mut(i) {
                let old_len = e.wire_len as usize;
                e.buf = buf;
                e.wire_len = wire_len;
                e.key_start = key_start;
                e.key_len = key_len;
                e.fresh_until = fresh_until;
                // The ordered map's key points into the old packet: re-key it so the old
                // packet is released.
                if e.in_ordered {
                    e.in_ordered = false;
                    stale_key = Some(i);
                }
                self.n_bytes = self.n_bytes - old_len + wire.len();
            }
            if stale_key.is_some() {
                self.ordered.remove(name.value_wire());
                self.queue_ordered(i);
            }
            self.touch(i);
        } else {
            self.grow_buckets(self.n_entries + 1);
            let entry = CsEntry {
                buf,
                wire_len,
                key_start,
                key_len,
                name_hash: h,
                fresh_until,
                prev: NONE,
                next: NONE,
                chain: self.chain_head(h),
                in_ordered: false,
            };
            let i = match self.free.pop() {
                Some(i) => {
                    if let Some(slot) = self.slots.get_mut(i as usize) {
                        *slot = Some(entry);
                    }
                    i
                }
                None => {
                    self.slots.push(Some(entry));
                    u32::try_from(self.slots.len() - 1).unwrap_or(NONE - 1)
                }
            };
            self.set_chain_head(h, i);
            self.queue_ordered(i);
            self.n_entries += 1;
            self.n_bytes += wire.len();
            self.push_front(i);
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.len() > self.capacity_packets || self.n_bytes > self.capacity_bytes {
            let victim = self.tail;
            if self.remove(victim).is_none() {
                break;
            }
        }
    }

    /// Removes one entry; `None` if the slot was empty.
    fn remove(&mut self, i: u32) -> Option<()> {
        self.unlink(i);
        let e = self.slots.get_mut(i as usize)?.take()?;
        // Unlink from the hash chain.
        let head = self.chain_head(e.name_hash);
        if head == i {
            self.set_chain_head(e.name_hash, e.chain);
        } else {
            let mut cur = head;
            while let Some(c) = self.entry(cur) {
                let next = c.chain;
                if next == i {
                    if let Some(c) = self.entry_mut(cur) {
                        c.chain = e.chain;
                    }
                    break;
                }
                cur = next;
            }
        }
        if e.in_ordered {
            self.ordered.remove(e.key());
        }
        self.n_entries -= 1;
        self.n_bytes -= e.wire_len as usize;
        self.free.push(i);
        Some(())
    }

    /// Applies new capacities, evicting as needed.
    pub(crate) fn set_capacity(&mut self, packets: usize, bytes: usize) {
        self.capacity_packets = packets;
        self.capacity_bytes = bytes;
        self.evict();
    }

    /// Erases up to `limit` entries under `prefix`; returns how many.
    pub(crate) fn erase(&mut self, prefix: &Name, limit: usize) -> usize {
        self.sync_ordered();
        let p = prefix.value_wire();
        let victims: Vec<u32> = self
            .ordered
            .range::<[u8], _>((std::ops::Bound::Included(p), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(p))
            .take(limit)
            .map(|(_, i)| *i)
            .collect();
        victims
            .into_iter()
            .filter(|i| self.remove(*i).is_some())
            .count()
    }

    /// Entries reachable through the hash chains (tests).
    #[cfg(test)]
    fn chained(&self) -> usize {
        let mut n = 0;
        for &head in &self.buckets {
            let mut cur = head;
            while let Some(e) = self.entry(cur) {
                n += 1;
                cur = e.chain;
            }
        }
        n
    }

    /// Names in LRU order, most recent first (tests and diagnostics).
    #[cfg(test)]
    fn lru_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut cur = self.head;
        while let Some(e) = self.entry(cur) {
            v.push(
                Name::from_value(e.key_bytes())
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            );
            cur = e.next;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    fn put(cs: &mut Cs, uri: &str, size: usize, fresh: Option<u64>, now: Time) {
        let name = n(uri);
        // The key must be a slice of the stored packet in the real pipeline; here the packet is
        // the name value followed by padding, which keeps the same property.
        let mut w = name.value_wire().to_vec();
        w.resize(size.max(w.len()), 0xAA);
        let wire = Bytes::from(w);
        let name = Name::from_value(wire.slice(..name.value_wire().len())).unwrap();
        cs.insert(&name, &wire, fresh, now);
    }

    fn q<'a>(name: &'a Name, cbp: bool, mbf: bool) -> CsQuery<'a> {
        CsQuery {
            name,
            can_be_prefix: cbp,
            must_be_fresh: mbf,
        }
    }

    #[test]
    fn hash_chains_survive_growth_eviction_and_reuse() {
        let mut cs = Cs::new(700, 1 << 30, true, true);
        let t = Time::from_millis(1);
        for i in 0..1000 {
            put(&mut cs, &format!("/g/{i}"), 40, None, t);
        }
        // The 300 oldest were evicted; every other entry is found exactly once.
        assert_eq!(cs.len(), 700);
        assert_eq!(cs.chained(), 700);
        assert!(cs.buckets.len().is_power_of_two() && cs.buckets.len() >= 700);
        for i in 0..1000 {
            let hit = cs.find(&q(&n(&format!("/g/{i}")), false, false), t);
            assert_eq!(hit.is_some(), i >= 300, "/g/{i}");
        }
        // Re-inserting a cached name replaces it in place.
        put(&mut cs, "/g/999", 60, None, t);
        assert_eq!((cs.len(), cs.chained()), (700, 700));
        assert_eq!(
            cs.find(&q(&n("/g/999"), false, false), t).unwrap().len(),
            60
        );
        assert_eq!(cs.erase(&n("/g"), 1000), 700);
        assert_eq!((cs.len(), cs.chained()), (0, 0));
    }

    #[test]
    fn exact_prefix_and_freshness() {
        let mut cs = Cs::new(100, 1 << 20, true, true);
        let t0 = Time::from_millis(1000);
        put(&mut cs, "/a/b/1", 50, Some(100), t0);
        put(&mut cs, "/a/b/2", 50, None, t0);
        let ab = n("/a/b");
        assert!(
            cs.find(&q(&ab, false, false), t0).is_none(),
            "exact needs equal name"
        );
        assert!(cs.find(&q(&ab, true, false), t0).is_some());
        assert!(
            cs.find(&q(&n("/a/b/2"), false, true), t0).is_none(),
            "no FreshnessPeriod = stale"
        );
        assert!(
            cs.find(&q(&n("/a/b/1"), false, true), t0.add_millis(99))
                .is_some()
        );
        assert!(
            cs.find(&q(&n("/a/b/1"), false, true), t0.add_millis(100))
                .is_none()
        );
        assert!(cs.find(&q(&ab, true, true), t0.add_millis(100)).is_none());
        assert!(
            cs.find(&q(&n("/a/bc"), true, false), t0).is_none(),
            "component boundary"
        );
        assert_eq!(cs.info().n_hits, 2);
        assert_eq!(cs.info().n_misses, 5);
    }

    #[test]
    fn lru_within_packet_and_byte_caps() {
        let mut cs = Cs::new(3, 1000, true, true);
        let t = Time::ZERO;
        put(&mut cs, "/x/1", 100, None, t);
        put(&mut cs, "/x/2", 100, None, t);
        put(&mut cs, "/x/3", 100, None, t);
        assert!(cs.find(&q(&n("/x/1"), false, false), t).is_some());
        put(&mut cs, "/x/4", 100, None, t);
        assert_eq!(cs.lru_names(), vec!["/x/4", "/x/1", "/x/3"]);
        put(&mut cs, "/x/5", 800, None, t);
        // 4 packets and 1100 bytes: the least recently used (/x/3) goes.
        assert_eq!(cs.lru_names(), vec!["/x/5", "/x/4", "/x/1"]);
        assert!(cs.info().n_bytes <= 1000 && cs.len() <= 3);
        put(&mut cs, "/x/big", 2000, None, t);
        assert!(
            cs.find(&q(&n("/x/big"), false, false), t).is_none(),
            "larger than the byte cap"
        );
        assert_eq!(cs.erase(&n("/x"), 10), 3);
        assert_eq!(cs.info().n_bytes, 0);
    }

    #[test]
    fn replace_same_name_and_erase_limit() {
        let mut cs = Cs::new(10, 10_000, true, true);
        put(&mut cs, "/p/a", 100, None, Time::ZERO);
        put(&mut cs, "/p/a", 300, Some(5), Time::ZERO);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs.info().n_bytes, 300);
        put(&mut cs, "/p/b", 10, None, Time::ZERO);
        put(&mut cs, "/q/c", 10, None, Time::ZERO);
        assert_eq!(cs.erase(&n("/p"), 1), 1);
        assert_eq!(cs.erase(&n("/p"), 10), 1);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs.info().n_bytes, 10);
    }

    #[test]
    fn cached_packets_do_not_pin_the_receive_buffer() {
        let name = n("/pin/1");
        let mut big = vec![0u8; 65_536];
        let nv = name.value_wire().to_vec();
        big[100..100 + nv.len()].copy_from_slice(&nv);
        let big = Bytes::from(big);
        let wire = big.slice(100..300);
        let sliced_name = Name::from_value(wire.slice(..nv.len())).unwrap();
        let mut cs = Cs::new(10, 10_000, true, true);
        cs.insert(&sliced_name, &wire, None, Time::ZERO);
        let e = cs.entry(cs.head).unwrap();
        let range = big.as_ptr() as usize..big.as_ptr() as usize + big.len();
        assert!(
            !range.contains(&(e.buf.as_ptr() as usize)),
            "packet copied out"
        );
        assert!(
            !range.contains(&(e.key().as_ptr() as usize)),
            "key points into the copy"
        );
        assert_eq!(e.key(), &nv[..]);
        assert_eq!(e.wire(), &wire[..]);
        let hit = cs.find(&q(&name, false, false), Time::ZERO).unwrap();
        assert_eq!(hit.len(), 200);
    }

    #[test]
    fn implicit_digest_lookup() {
        let mut cs = Cs::new(10, 10_000, true, true);
        put(&mut cs, "/d/1", 64, None, Time::ZERO);
        let name = n("/d/1");
        let mut w = name.value_wire().to_vec();
        w.resize(64, 0xAA);
        let good = name.append(amicn_tlv::Component::implicit_sha256_digest(digest(&w)));
        let bad = name.append(amicn_tlv::Component::implicit_sha256_digest([0; 32]));
        assert!(cs.find(&q(&good, false, false), Time::ZERO).is_some());
        assert!(cs.find(&q(&bad, false, false), Time::ZERO).is_none());
    }

    #[test]
    fn prefix_lookups_see_entries_added_and_removed_between_them() {
        let mut cs = Cs::new(4, 1 << 20, true, true);
        let t = Time::ZERO;
        // Churn well past the capacity before the first ordered query: the evicted entries
        // were never ordered and must not surface.
        for k in 0..300 {
            put(&mut cs, &format!("/c/{k}"), 40, None, t);
        }
        assert_eq!(cs.len(), 4);
        assert!(cs.pending.len() <= 2 * cs.slots.len() + 64);
        assert!(cs.find(&q(&n("/c/1"), true, false), t).is_none());
        let hit = cs.find(&q(&n("/c"), true, false), t).unwrap();
        // Canonical order: /c/296 < /c/297 < /c/298 < /c/299 (same length, bytewise).
        assert_eq!(
            &hit[..n("/c/296").value_wire().len()],
            n("/c/296").value_wire()
        );
        // Replacing an ordered entry re-keys it; the old packet is released.
        put(&mut cs, "/c/296", 80, Some(10), t);
        assert_eq!(
            cs.find(&q(&n("/c"), true, true), t).unwrap().len(),
            80,
            "the fresh replacement is found by prefix"
        );
        assert_eq!(cs.ordered.len(), 4);
        for e in cs.slots.iter().flatten() {
            assert!(cs.ordered.keys().any(|k| k.as_ptr() == e.key().as_ptr()));
        }
        // Entries added after a sync are merged on the next ordered query, evicted ones leave.
        put(&mut cs, "/c/0", 40, None, t);
        put(&mut cs, "/b/0", 40, None, t);
        assert_eq!(cs.lru_names(), vec!["/b/0", "/c/0", "/c/296", "/c/299"]);
        let hit = cs.find(&q(&n("/c"), true, false), t).unwrap();
        assert_eq!(&hit[..n("/c/0").value_wire().len()], n("/c/0").value_wire());
        assert_eq!(cs.ordered.len(), 4);
        assert_eq!(cs.erase(&n("/c"), 10), 3);
        assert_eq!(cs.lru_names(), vec!["/b/0"]);
        assert!(cs.ordered.len() == 1 && cs.chained() == 1);
    }

    #[test]
    fn name_outside_the_packet_is_kept_after_it() {
        let mut cs = Cs::new(4, 1 << 20, true, true);
        let name = n("/o/1");
        let wire = Bytes::from(vec![0x55u8; 30]);
        cs.insert(&name, &wire, None, Time::ZERO);
        assert_eq!(cs.info().n_bytes, 30);
        let hit = cs.find(&q(&name, false, false), Time::ZERO).unwrap();
        assert_eq!(hit, wire, "only the packet is returned");
        assert!(cs.find(&q(&n("/o"), true, false), Time::ZERO).is_some());
        assert_eq!(cs.lru_names(), vec!["/o/1"]);
    }
}
