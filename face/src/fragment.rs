//! NDNLPv2 fragmentation and reassembly for datagram faces (never used on streams: python-ndn
//! has no reassembly), on top of the codec's sans-IO helpers in `amicn_tlv::frag`. A packet
//! larger than the face MTU is cut into LpPackets that carry Sequence, FragIndex and FragCount;
//! LP headers of the original packet travel in the first fragment only. Packets that fit are
//! sent unchanged (bare stays bare).

use std::time::{Duration, Instant};

use amicn_tlv::LpPacket;
use amicn_tlv::frag;
use bytes::Bytes;

use crate::MAX_PACKET_SIZE;

/// TLV-TYPE of LpPacket.
const LP_PACKET_TYPE: u8 = 100;
/// Most fragments one packet may be cut into when sending (bounds the peer's reassembly).
pub const MAX_FRAGMENTS: u64 = 64;
/// Partial packets kept per peer before the oldest is abandoned.
const MAX_PARTIAL: usize = 32;
/// Fragment payload bytes kept per peer.
const MAX_PARTIAL_BYTES: usize = 4 * MAX_PACKET_SIZE;
/// A partial packet older than this is abandoned.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a packet could not be fragmented.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The packet would need more than [`MAX_FRAGMENTS`] pieces.
    #[error("packet of {0} bytes needs too many fragments")]
    TooManyFragments(usize),
    /// The packet is an LpPacket that does not decode, or the MTU leaves no room.
    #[error("cannot fragment: {0}")]
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
        let (template, payload) = if pkt.first() == Some(&LP_PACKET_TYPE) {
            let mut lp = LpPacket::decode(pkt)?;
            let payload = lp.fragment.take().unwrap_or_default();
            (lp, payload)
        } else {
            (LpPacket::default(), pkt)
        };
        let len = payload.len();
        let out = frag::fragment(payload, &template, self.mtu, self.next_seq)?;
        if out.len() as u64 > MAX_FRAGMENTS {
            return Err(FragmentError::TooManyFragments(len));
        }
        self.next_seq = self.next_seq.wrapping_add(out.len() as u64);
        Ok(out)
    }
}

/// Reassembles fragments from one peer.
pub struct Reassembler {
    inner: frag::Reassembler,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self {
            inner: frag::Reassembler::new(MAX_PARTIAL, MAX_PARTIAL_BYTES, REASSEMBLY_TIMEOUT),
        }
    }
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.inner.pending())
            .finish()
    }
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

impl Reassembler {
    /// Feeds one datagram. Non-LP and unfragmented packets pass through unchanged.
    pub fn push(&mut self, now: Instant, datagram: Bytes) -> Reassembled {
        if datagram.first() != Some(&LP_PACKET_TYPE) {
            return Reassembled::Packet(datagram);
        }
        let Ok(lp) = LpPacket::decode(datagram.clone()) else {
            // Let the core count and drop it with the right reason.
            return Reassembled::Packet(datagram);
        };
        if lp.frag_count.unwrap_or(1) <= 1 && lp.frag_index.unwrap_or(0) == 0 {
            return Reassembled::Packet(datagram);
        }
        match self.inner.on_fragment(lp, now) {
            Ok(Some(mut whole)) => {
                whole.sequence = None;
                whole.frag_index = None;
                whole.frag_count = None;
                let payload = whole.fragment.take().unwrap_or_default();
                if payload.len() > MAX_PACKET_SIZE {
                    return Reassembled::Dropped;
                }
                if whole == LpPacket::default() {
                    Reassembled::Packet(payload)
                } else {
                    whole.fragment = Some(payload);
                    Reassembled::Packet(whole.encode())
                }
            }
            Ok(None) => Reassembled::Pending,
            Err(_) => Reassembled::Dropped,
        }
    }

    /// Partial packets currently held.
    pub fn pending(&self) -> usize {
        self.inner.pending()
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
        let lp = LpPacket {
            pit_token: Some(Bytes::from_static(&[1, 2, 3, 4])),
            fragment: Some(data_like(3000)),
            ..LpPacket::default()
        };
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
        let lp = LpPacket {
            sequence: Some(10),
            frag_index: Some(5),
            frag_count: Some(2),
            fragment: Some(Bytes::from_static(b"x")),
            ..LpPacket::default()
        };
        assert_eq!(r.push(later, lp.encode()), Reassembled::Dropped);
        assert!(r.pending() <= MAX_PARTIAL);
    }
}
