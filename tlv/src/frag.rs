//! NDNLPv2 fragmentation and reassembly (indexed fragmentation: Sequence, FragIndex,
//! FragCount). Sans-IO: the reassembler takes the caller's `now`, bounds its memory and counts
//! what it discards. Only datagram faces fragment; stream faces never do (python-ndn cannot
//! reassemble).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::encoding::{nni_tlv_len, tlv_len};
use crate::lp::{self, LpPacket};
use crate::{Error, Result};

/// Most fragments one packet may be split into; larger counts are rejected on receipt.
pub const MAX_FRAGMENTS: u64 = 256;

fn invalid(reason: &'static str) -> Error {
    Error::Invalid {
        what: "fragment",
        reason,
        offset: 0,
    }
}

/// Splits `packet` into LpPackets of at most `mtu` bytes. Headers of `template` (its Fragment is
/// ignored) go on the first fragment only; fragments are numbered with Sequence `first_seq`,
/// `first_seq + 1`, ... When the whole packet fits, one LpPacket without
/// Sequence/FragIndex/FragCount is returned.
pub fn fragment(
    packet: Bytes,
    template: &LpPacket,
    mtu: usize,
    first_seq: u64,
) -> Result<Vec<Bytes>> {
    let mut head = template.clone();
    head.fragment = None;
    head.sequence = None;
    head.frag_index = None;
    head.frag_count = None;
    let headers_len = head.value_len();
    let whole = tlv_len(
        lp::LP_PACKET,
        headers_len + tlv_len(lp::FRAGMENT, packet.len()),
    );
    if whole <= mtu {
        head.fragment = Some(packet);
        return Ok(vec![head.encode()]);
    }
    // Per-fragment overhead depends on the count through FragIndex/FragCount widths; iterate
    // to a fixed point (at most a few rounds).
    let mut count: u64 = 2;
    for _ in 0..8 {
        let fixed = 4
            + tlv_len(lp::SEQUENCE, 8)
            + nni_tlv_len(lp::FRAG_INDEX, count - 1)
            + nni_tlv_len(lp::FRAG_COUNT, count)
            + 4;
        let cap_first = mtu.checked_sub(fixed + headers_len).filter(|c| *c > 0);
        let cap_other = mtu.checked_sub(fixed).filter(|c| *c > 0);
        let (Some(cap_first), Some(cap_other)) = (cap_first, cap_other) else {
            return Err(invalid("MTU too small for NDNLPv2 headers"));
        };
        let rest = packet.len().saturating_sub(cap_first);
        let needed = 1 + rest.div_ceil(cap_other) as u64;
        if needed > MAX_FRAGMENTS {
            return Err(invalid("packet needs too many fragments for this MTU"));
        }
        if needed <= count {
            let mut out = Vec::with_capacity(needed as usize);
            let mut pos = 0;
            for i in 0..needed {
                let cap = if i == 0 { cap_first } else { cap_other };
                let end = (pos + cap).min(packet.len());
                let mut p = if i == 0 {
                    head.clone()
                } else {
                    LpPacket::default()
                };
                p.sequence = Some(first_seq.wrapping_add(i));
                p.frag_index = Some(i);
                p.frag_count = Some(needed);
                p.fragment = Some(packet.slice(pos..end));
                pos = end;
                out.push(p.encode());
            }
            return Ok(out);
        }
        count = needed;
    }
    Err(invalid("fragment count did not converge"))
}

/// Why the reassembler discarded data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyDrops {
    /// Partial packets that expired before completing.
    pub timed_out: u64,
    /// Partial packets evicted to stay within the memory bounds.
    pub evicted: u64,
    /// Fragments with missing or inconsistent Sequence/FragIndex/FragCount.
    pub invalid: u64,
    /// Fragments already received.
    pub duplicate: u64,
}

struct Partial {
    count: u64,
    received: u64,
    bytes: usize,
    deadline: Instant,
    pieces: Vec<Option<LpPacket>>,
}

/// Reassembles fragmented LpPackets from one peer, keyed by Sequence base
/// (`Sequence - FragIndex`).
pub struct Reassembler {
    partials: HashMap<u64, Partial>,
    max_partials: usize,
    max_bytes: usize,
    timeout: Duration,
    bytes: usize,
    drops: ReassemblyDrops,
}

impl Reassembler {
    /// A reassembler holding at most `max_partials` incomplete packets and `max_bytes` of
    /// fragment payload, each kept for at most `timeout`.
    pub fn new(max_partials: usize, max_bytes: usize, timeout: Duration) -> Reassembler {
        Reassembler {
            partials: HashMap::new(),
            max_partials: max_partials.max(1),
            max_bytes,
            timeout,
            bytes: 0,
            drops: ReassemblyDrops::default(),
        }
    }

    /// Counters of discarded data.
    pub fn drops(&self) -> ReassemblyDrops {
        self.drops
    }

    /// Number of incomplete packets held.
    pub fn pending(&self) -> usize {
        self.partials.len()
    }

    /// Drops partial packets whose time is up.
    pub fn expire(&mut self, now: Instant) {
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.drops.timed_out += (before - self.partials.len()) as u64;
    }

    fn evict_oldest(&mut self) {
        if let Some((&k, _)) = self.partials.iter().min_by_key(|(_, p)| p.deadline)
            && let Some(p) = self.partials.remove(&k)
        {
            self.bytes -= p.bytes;
            self.drops.evicted += 1;
        }
    }

    /// Accepts one received LpPacket. Unfragmented packets come straight back; a fragment
    /// returns the reassembled LpPacket (headers of fragment 0, whole Fragment) once the last
    /// piece arrives, `None` before that.
    pub fn on_fragment(&mut self, p: LpPacket, now: Instant) -> Result<Option<LpPacket>> {
        let count = p.frag_count.unwrap_or(1);
        let index = p.frag_index.unwrap_or(0);
        if count <= 1 && index == 0 {
            return Ok(Some(p));
        }
        self.expire(now);
        let Some(seq) = p.sequence else {
            self.drops.invalid += 1;
            return Err(invalid("fragment without Sequence"));
        };
        if index >= count || count > MAX_FRAGMENTS || seq < index {
            self.drops.invalid += 1;
            return Err(invalid("FragIndex/FragCount out of range"));
        }
        let size = p.fragment.as_ref().map_or(0, Bytes::len);
        if size > self.max_bytes {
            self.drops.invalid += 1;
            return Err(invalid("fragment larger than the reassembly buffer"));
        }
        let base = seq - index;
        if !self.partials.contains_key(&base) {
            while self.partials.len() >= self.max_partials {
                self.evict_oldest();
            }
        }
        while self.bytes + size > self.max_bytes && !self.partials.is_empty() {
            if self.partials.len() == 1 && self.partials.contains_key(&base) {
                break;
            }
            self.evict_oldest();
        }
        let deadline = now.checked_add(self.timeout).unwrap_or(now);
        let entry = self.partials.entry(base).or_insert_with(|| Partial {
            count,
            received: 0,
            bytes: 0,
            deadline,
            pieces: (0..count).map(|_| None).collect(),
        });
        if entry.count != count {
            self.drops.invalid += 1;
            return Err(invalid("FragCount differs between fragments"));
        }
        let Some(slot) = entry.pieces.get_mut(index as usize) else {
            self.drops.invalid += 1;
            return Err(invalid("FragIndex out of range"));
        };
        if slot.is_some() {
            self.drops.duplicate += 1;
            return Ok(None);
        }
        *slot = Some(p);
        entry.received += 1;
        entry.bytes += size;
        self.bytes += size;
        if entry.received < entry.count {
            return Ok(None);
        }
        let Some(done) = self.partials.remove(&base) else {
            return Ok(None);
        };
        self.bytes -= done.bytes;
        let mut whole = BytesMut::with_capacity(done.bytes);
        let mut first = None;
        for piece in done.pieces.into_iter().flatten() {
            if let Some(f) = &piece.fragment {
                whole.extend_from_slice(f);
            }
            if first.is_none() {
                first = Some(piece);
            }
        }
        let mut out = first.unwrap_or_default();
        out.sequence = None;
        out.frag_index = None;
        out.frag_count = None;
        out.fragment = Some(whole.freeze());
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Data, NackReason, Name, from_lp};

    fn big_data() -> Bytes {
        let mut d = Data::new(
            Name::from_uri("/big").unwrap(),
            Bytes::from(vec![7u8; 5000]),
        );
        d.sign_digest_sha256()
    }

    #[test]
    fn split_and_join() {
        let pkt = big_data();
        let template = LpPacket {
            pit_token: Some(Bytes::from_static(b"tok")),
            ..LpPacket::default()
        };
        let frags = fragment(pkt.clone(), &template, 1400, 1000).unwrap();
        assert_eq!(frags.len(), 4);
        assert!(frags.iter().all(|f| f.len() <= 1400));
        let mut r = Reassembler::new(4, 64 * 1024, Duration::from_secs(1));
        let now = Instant::now();
        let mut out = None;
        // Out of order and with a duplicate.
        for k in [2, 0, 3, 0, 1] {
            let p = LpPacket::decode(frags[k].clone()).unwrap();
            assert!(k == 0 || p.pit_token.is_none());
            if let Some(done) = r.on_fragment(p, now).unwrap() {
                out = Some(done);
            }
        }
        let done = out.unwrap();
        assert_eq!(done.fragment.as_ref().unwrap(), &pkt);
        assert_eq!(done.pit_token.as_deref(), Some(&b"tok"[..]));
        assert_eq!(r.drops().duplicate, 1);
        assert_eq!(r.pending(), 0);
        assert!(matches!(
            from_lp(done).unwrap().packet,
            crate::NetPacket::Data(_)
        ));
    }

    #[test]
    fn small_packet_is_not_fragmented() {
        let template = LpPacket {
            nack: Some(NackReason::NoRoute),
            ..LpPacket::default()
        };
        let f = fragment(Bytes::from_static(&[5, 3, 7, 1, 8]), &template, 1400, 0).unwrap();
        assert_eq!(f.len(), 1);
        let p = LpPacket::decode(f[0].clone()).unwrap();
        assert_eq!(
            (p.sequence, p.frag_count, p.nack),
            (None, None, Some(NackReason::NoRoute))
        );
        assert!(fragment(big_data(), &LpPacket::default(), 20, 0).is_err());
    }

    #[test]
    fn bounded_and_expiring() {
        let frags = fragment(big_data(), &LpPacket::default(), 1000, 0).unwrap();
        let mut r = Reassembler::new(2, 64 * 1024, Duration::from_millis(100));
        let t0 = Instant::now();
        // Three different packets' first fragments: the oldest is evicted.
        for base in [0u64, 100, 200] {
            let mut p = LpPacket::decode(frags[0].clone()).unwrap();
            p.sequence = Some(base);
            assert!(r.on_fragment(p, t0).unwrap().is_none());
        }
        assert_eq!(r.pending(), 2);
        assert_eq!(r.drops().evicted, 1);
        r.expire(t0 + Duration::from_millis(200));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.drops().timed_out, 2);
        // Inconsistent fields are counted and rejected.
        let mut p = LpPacket::decode(frags[1].clone()).unwrap();
        p.sequence = None;
        assert!(r.on_fragment(p, t0).is_err());
        let mut p = LpPacket::decode(frags[1].clone()).unwrap();
        p.frag_index = Some(99);
        assert!(r.on_fragment(p, t0).is_err());
        assert_eq!(r.drops().invalid, 2);
        // Byte bound.
        let mut tiny = Reassembler::new(8, 1500, Duration::from_secs(1));
        for k in 0..3 {
            let mut p = LpPacket::decode(frags[0].clone()).unwrap();
            p.sequence = Some(k * 100);
            let _ = tiny.on_fragment(p, t0);
        }
        assert!(tiny.pending() <= 1);
    }
}
