//! NDNLPv2 fragmentation and reassembly for datagram faces (never used on streams: python-ndn
//! has no reassembly). A packet larger than the face MTU is cut into LpPackets that carry
//! Sequence, FragIndex and FragCount; LP headers of the original packet travel in the first
//! fragment only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use amicn_tlv::LpPacket;
use bytes::{Bytes, BytesMut};

use crate::MAX_PACKET_SIZE;

/// TLV-TYPE of LpPacket.
const LP_PACKET_TYPE: u8 = 100;
/// Room kept for the LpPacket and Fragment TLV headers and the Sequence/FragIndex/FragCount
/// fields on top of whatever other LP headers the packet already had.
const FRAG_OVERHEAD: usize = 4 + 4 + 10 + 4 + 4;
/// Most fragments one packet may be cut into (bounds reassembly state).
pub const MAX_FRAGMENTS: u64 = 64;
/// Partial packets kept per peer before the oldest is abandoned.
const MAX_PARTIAL: usize = 32;
/// A partial packet older than this is abandoned.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a packet could not be fragmented.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The MTU leaves no room for payload.
    #[error("MTU {0} too small to carry NDNLPv2 fragments")]
    MtuTooSmall(usize),
    /// The packet would need more than [`MAX_FRAGMENTS`] pieces.
    #[error("packet of {0} bytes needs too many fragments")]
    TooManyFragments(usize),
    /// The packet is an LpPacket that does not decode.
    #[error("LpPacket does not decode: {0}")]
    Lp(#[from] amicn_tlv::Error),
}

/// Cuts outgoing packets for one face.
#[derive(Debug)]
pub struct Fragmenter {
    mtu: usize,
    next_seq: u64,
}

impl Fragmenter {
    /// A fragmenter for a face with this MTU; `seed` starts the Sequence numbers.
    pub fn new(mtu: usize, seed: u64) -> Self {
        Self {
            mtu,
            next_seq: seed,
        }
    }

    /// The face MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Returns the datagrams to send for `pkt`: `pkt` itself when it fits.
    pub fn fragment(&mut self, pkt: Bytes) -> Result<Vec<Bytes>, FragmentError> {
        if pkt.len() <= self.mtu {
            return Ok(vec![pkt]);
        }
        let (headers, payload) = if pkt.first() == Some(&LP_PACKET_TYPE) {
            let mut lp = LpPacket::decode(pkt.clone())?;
            let payload = lp.fragment.take().unwrap_or_default();
            (lp, payload)
        } else {
            (LpPacket::default(), pkt)
        };
        let header_len = headers.encode().len();
        let room = self
            .mtu
            .checked_sub(header_len + FRAG_OVERHEAD)
            .filter(|r| *r >= 64)
            .ok_or(FragmentError::MtuTooSmall(self.mtu))?;
        let count = payload.len().div_ceil(room);
        if count as u64 > MAX_FRAGMENTS {
            return Err(FragmentError::TooManyFragments(payload.len()));
        }
        let base = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(count as u64);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let start = i * room;
            let end = (start + room).min(payload.len());
            let mut lp = if i == 0 {
                headers.clone()
            } else {
                LpPacket::default()
            };
            lp.sequence = Some(base.wrapping_add(i as u64));
            lp.frag_index = Some(i as u64);
            lp.frag_count = Some(count as u64);
            lp.fragment = Some(payload.slice(start..end));
            out.push(lp.encode());
        }
        Ok(out)
    }
}

struct Partial {
    started: Instant,
    pieces: Vec<Option<Bytes>>,
    have: usize,
    first: Option<LpPacket>,
}

/// Reassembles fragments from one peer.
#[derive(Default)]
pub struct Reassembler {
    partial: HashMap<u64, Partial>,
}

/// Outcome of feeding one datagram to the [`Reassembler`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// A whole packet (the datagram itself when it was not a fragment).
    Packet(Bytes),
    /// A fragment was stored; the packet is not complete yet.
    Pending,
    /// The fragment was inconsistent and dropped.
    Dropped,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("partial", &self.partial.len())
            .finish()
    }
}

impl Reassembler {
    /// Feeds one datagram. Non-LP and unfragmented packets pass through unchanged.
    pub fn push(&mut self, now: Instant, datagram: Bytes) -> Reassembled {
        if datagram.first() != Some(&LP_PACKET_TYPE) {
            return Reassembled::Packet(datagram);
        }
        let Ok(mut lp) = LpPacket::decode(datagram.clone()) else {
            // Let the core count and drop it with the right reason.
            return Reassembled::Packet(datagram);
        };
        let count = lp.frag_count.unwrap_or(1);
        if count <= 1 {
            return Reassembled::Packet(datagram);
        }
        let (Some(index), Some(seq)) = (lp.frag_index, lp.sequence) else {
            return Reassembled::Dropped;
        };
        if count > MAX_FRAGMENTS || index >= count || seq < index {
            return Reassembled::Dropped;
        }
        let base = seq - index;
        self.expire(now);
        if !self.partial.contains_key(&base)
            && self.partial.len() >= MAX_PARTIAL
            && let Some(oldest) = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| *k)
        {
            self.partial.remove(&oldest);
        }
        let entry = self.partial.entry(base).or_insert_with(|| Partial {
            started: now,
            pieces: vec![None; count as usize],
            have: 0,
            first: None,
        });
        if entry.pieces.len() as u64 != count {
            self.partial.remove(&base);
            return Reassembled::Dropped;
        }
        let piece = lp.fragment.take().unwrap_or_default();
        let Some(slot) = entry.pieces.get_mut(index as usize) else {
            return Reassembled::Dropped;
        };
        if slot.is_none() {
            *slot = Some(piece);
            entry.have += 1;
        }
        if index == 0 {
            entry.first = Some(lp);
        }
        if entry.have < entry.pieces.len() {
            return Reassembled::Pending;
        }
        let Some(done) = self.partial.remove(&base) else {
            return Reassembled::Dropped;
        };
        let total: usize = done.pieces.iter().flatten().map(Bytes::len).sum();
        if total > MAX_PACKET_SIZE {
            return Reassembled::Dropped;
        }
        let mut whole = BytesMut::with_capacity(total);
        for p in done.pieces.iter().flatten() {
            whole.extend_from_slice(p);
        }
        let whole = whole.freeze();
        let mut first = done.first.unwrap_or_default();
        first.sequence = None;
        first.frag_index = None;
        first.frag_count = None;
        if first == LpPacket::default() {
            Reassembled::Packet(whole)
        } else {
            first.fragment = Some(whole);
            Reassembled::Packet(first.encode())
        }
    }

    fn expire(&mut self, now: Instant) {
        self.partial
            .retain(|_, p| now.saturating_duration_since(p.started) < REASSEMBLY_TIMEOUT);
    }

    /// Partial packets currently held.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data_like(len: usize) -> Bytes {
        // A Data-typed TLV of `len` total bytes (3-octet length form).
        let mut v = vec![0x06, 0xFD];
        let body = len - 4;
        v.extend_from_slice(&(body as u16).to_be_bytes());
        v.extend((0..body).map(|i| (i % 251) as u8));
        Bytes::from(v)
    }

    #[test]
    fn small_packets_pass_through() {
        let mut f = Fragmenter::new(1400, 0);
        let p = data_like(500);
        assert_eq!(f.fragment(p.clone()).unwrap(), vec![p.clone()]);
        let mut r = Reassembler::default();
        assert_eq!(r.push(Instant::now(), p.clone()), Reassembled::Packet(p));
    }

    #[test]
    fn fragments_fit_mtu_and_reassemble_in_any_order() {
        let mut f = Fragmenter::new(1400, 1000);
        let p = data_like(8000);
        let frags = f.fragment(p.clone()).unwrap();
        assert!(frags.len() >= 6);
        assert!(frags.iter().all(|d| d.len() <= 1400));
        let mut r = Reassembler::default();
        let now = Instant::now();
        let mut order: Vec<usize> = (0..frags.len()).rev().collect();
        order.rotate_left(2);
        let mut got = None;
        for i in order {
            match r.push(now, frags[i].clone()) {
                Reassembled::Packet(pkt) => got = Some(pkt),
                Reassembled::Pending => {}
                Reassembled::Dropped => panic!("dropped fragment {i}"),
            }
        }
        assert_eq!(got.unwrap(), p);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn lp_headers_survive_fragmentation() {
        let mut lp = LpPacket::default();
        lp.pit_token = Some(Bytes::from_static(&[1, 2, 3, 4]));
        lp.fragment = Some(data_like(3000));
        let wrapped = lp.encode();
        let mut f = Fragmenter::new(1000, 7);
        let frags = f.fragment(wrapped.clone()).unwrap();
        let mut r = Reassembler::default();
        let now = Instant::now();
        let mut out = None;
        for d in frags {
            if let Reassembled::Packet(p) = r.push(now, d) {
                out = Some(p);
            }
        }
        let back = LpPacket::decode(out.unwrap()).unwrap();
        assert_eq!(back.pit_token, lp.pit_token);
        assert_eq!(back.fragment, lp.fragment);
    }

    #[test]
    fn stale_and_bogus_fragments_are_bounded() {
        let mut f = Fragmenter::new(1000, 0);
        let frags = f.fragment(data_like(2500)).unwrap();
        let mut r = Reassembler::default();
        let t0 = Instant::now();
        assert_eq!(r.push(t0, frags[0].clone()), Reassembled::Pending);
        // After the timeout the partial packet is gone, so the rest never completes it.
        let later = t0 + REASSEMBLY_TIMEOUT + Duration::from_millis(1);
        for d in &frags[1..] {
            assert_eq!(r.push(later, d.clone()), Reassembled::Pending);
        }
        // FragIndex beyond FragCount is dropped.
        let mut lp = LpPacket::default();
        lp.sequence = Some(10);
        lp.frag_index = Some(5);
        lp.frag_count = Some(2);
        lp.fragment = Some(Bytes::from_static(b"x"));
        assert_eq!(r.push(later, lp.encode()), Reassembled::Dropped);
        assert!(r.pending() <= MAX_PARTIAL);
    }
}
