//! Network packets as a face sees them: a bare Interest or Data, or one wrapped in an LpPacket
//! with link-layer headers and possibly a Nack. Every face accepts both forms (`face.cpp`: a
//! bare packet is a valid LpPacket).

use bytes::{Bytes, BytesMut};

use crate::encoding::parse_tlv;
use crate::lp::{self, LpPacket, NackReason};
use crate::{Data, Error, Interest, MAX_PACKET_SIZE, Result, tt};

/// A refused Interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Why.
    pub reason: NackReason,
    /// The Interest being refused.
    pub interest: Interest,
}

/// A network-layer packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetPacket {
    /// Interest.
    Interest(Interest),
    /// Data.
    Data(Data),
    /// Nack (an Interest inside an LpPacket with a Nack header).
    Nack(Nack),
}

impl NetPacket {
    /// The name of the packet (of the nacked Interest for a Nack).
    pub fn name(&self) -> &crate::Name {
        match self {
            NetPacket::Interest(i) => &i.name,
            NetPacket::Data(d) => &d.name,
            NetPacket::Nack(n) => &n.interest.name,
        }
    }

    /// The network-layer bytes (reusing the decoded wire when available). A Nack yields the
    /// Interest; the Nack header travels in the LpPacket.
    pub fn network_wire(&self) -> Bytes {
        match self {
            NetPacket::Interest(i) => i.wire().cloned().unwrap_or_else(|| i.encode()),
            NetPacket::Data(d) => d.wire().cloned().unwrap_or_else(|| d.encode()),
            NetPacket::Nack(n) => n
                .interest
                .wire()
                .cloned()
                .unwrap_or_else(|| n.interest.encode()),
        }
    }
}

/// The link-layer headers that matter above the face: the subset of [`LpPacket`] fields that
/// travel with one network packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LpHeaders {
    /// PitToken.
    pub pit_token: Option<Bytes>,
    /// IncomingFaceId.
    pub incoming_face_id: Option<u64>,
    /// NextHopFaceId.
    pub next_hop_face_id: Option<u64>,
    /// CachePolicyType.
    pub cache_policy: Option<u64>,
    /// CongestionMark.
    pub congestion_mark: Option<u64>,
    /// NonDiscovery.
    pub non_discovery: bool,
    /// PrefixAnnouncement.
    pub prefix_announcement: Option<Bytes>,
}

impl LpHeaders {
    /// Whether no header is set (the packet can go bare).
    pub fn is_empty(&self) -> bool {
        self == &LpHeaders::default()
    }

    /// Headers carried by an LpPacket.
    pub fn from_lp(p: &LpPacket) -> LpHeaders {
        LpHeaders {
            pit_token: p.pit_token.clone(),
            incoming_face_id: p.incoming_face_id,
            next_hop_face_id: p.next_hop_face_id,
            cache_policy: p.cache_policy,
            congestion_mark: p.congestion_mark,
            non_discovery: p.non_discovery,
            prefix_announcement: p.prefix_announcement.clone(),
        }
    }

    /// An LpPacket with these headers, `nack` and `fragment`.
    pub fn to_lp(&self, nack: Option<NackReason>, fragment: Bytes) -> LpPacket {
        LpPacket {
            pit_token: self.pit_token.clone(),
            nack,
            incoming_face_id: self.incoming_face_id,
            next_hop_face_id: self.next_hop_face_id,
            cache_policy: self.cache_policy,
            congestion_mark: self.congestion_mark,
            non_discovery: self.non_discovery,
            prefix_announcement: self.prefix_announcement.clone(),
            fragment: Some(fragment),
            ..LpPacket::default()
        }
    }
}

/// A decoded packet and the link-layer headers it arrived with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The network packet.
    pub packet: NetPacket,
    /// Headers (all empty for a bare packet).
    pub lp: LpHeaders,
}

/// Decodes a packet received on a face: a bare Interest or Data, or an LpPacket carrying a
/// whole one (with or without Nack). Fragments and idle LpPackets are reported as
/// [`Error::Fragmented`] and [`Error::NoFragment`].
pub fn decode_packet(wire: Bytes) -> Result<Received> {
    if wire.len() > MAX_PACKET_SIZE {
        return Err(Error::TooLarge {
            len: wire.len(),
            max: MAX_PACKET_SIZE,
        });
    }
    let (typ, _, _) = parse_tlv(&wire, 0, "packet")?;
    match typ {
        tt::INTEREST => Ok(Received {
            packet: NetPacket::Interest(Interest::decode(wire)?),
            lp: LpHeaders::default(),
        }),
        tt::DATA => Ok(Received {
            packet: NetPacket::Data(Data::decode(wire)?),
            lp: LpHeaders::default(),
        }),
        lp::LP_PACKET => {
            let p = LpPacket::decode(wire)?;
            from_lp(p)
        }
        typ => Err(Error::NotAPacket { typ }),
    }
}

/// Interprets a whole (unfragmented or reassembled) LpPacket.
pub fn from_lp(p: LpPacket) -> Result<Received> {
    if let Some(count) = p.frag_count
        && count > 1
    {
        return Err(Error::Fragmented {
            index: p.frag_index.unwrap_or(0),
            count,
        });
    }
    let lp_headers = LpHeaders::from_lp(&p);
    let frag = p.fragment.ok_or(Error::NoFragment)?;
    let (typ, _, _) = parse_tlv(&frag, 0, "Fragment")?;
    let packet = match (typ, p.nack) {
        (tt::INTEREST, None) => NetPacket::Interest(Interest::decode(frag)?),
        (tt::INTEREST, Some(reason)) => NetPacket::Nack(Nack {
            reason,
            interest: Interest::decode(frag)?,
        }),
        (tt::DATA, None) => NetPacket::Data(Data::decode(frag)?),
        (tt::DATA, Some(_)) => {
            return Err(Error::Invalid {
                what: "Nack",
                reason: "a Nack must carry an Interest",
                offset: 0,
            });
        }
        (typ, _) => return Err(Error::NotAPacket { typ }),
    };
    Ok(Received {
        packet,
        lp: lp_headers,
    })
}

/// Wraps network-layer bytes in an LpPacket with `lp` headers and an optional Nack. Returns the
/// bytes unchanged when there is nothing to add, as ndn-cxx does.
pub fn wrap_fragment(fragment: Bytes, lp: &LpHeaders, nack: Option<NackReason>) -> Bytes {
    if nack.is_none() && lp.is_empty() {
        return fragment;
    }
    let p = lp.to_lp(nack, fragment);
    let mut b = BytesMut::with_capacity(p.encoded_len());
    p.encode_to(&mut b);
    b.freeze()
}

/// Encodes `packet` for a face, wrapping it in an LpPacket when it is a Nack or `lp` carries
/// headers (PitToken, CongestionMark, ...).
pub fn encode_with_lp(packet: &NetPacket, lp: &LpHeaders) -> Bytes {
    let nack = match packet {
        NetPacket::Nack(n) => Some(n.reason),
        _ => None,
    };
    wrap_fragment(packet.network_wire(), lp, nack)
}

/// `LpPacket{Nack{reason}, [PitToken], Fragment=interest}` — the only Nack form clients accept.
pub fn encode_nack(interest_wire: Bytes, reason: NackReason, pit_token: Option<Bytes>) -> Bytes {
    let lp = LpHeaders {
        pit_token,
        ..LpHeaders::default()
    };
    wrap_fragment(interest_wire, &lp, Some(reason))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Name;

    #[test]
    fn bare_and_wrapped() {
        let mut i = Interest::new(Name::from_uri("/a/b").unwrap());
        i.nonce = Some(7);
        let w = i.encode();
        let r = decode_packet(w.clone()).unwrap();
        assert_eq!(r.packet, NetPacket::Interest(i.clone()));
        assert!(r.lp.is_empty());
        let lp = LpHeaders {
            pit_token: Some(Bytes::from_static(b"tok")),
            congestion_mark: Some(1),
            ..LpHeaders::default()
        };
        let wrapped = encode_with_lp(&NetPacket::Interest(i.clone()), &lp);
        assert_eq!(wrapped[0], 100);
        let r = decode_packet(wrapped).unwrap();
        assert_eq!(r.lp, lp);
        assert_eq!(r.packet, NetPacket::Interest(i.clone()));
        assert_eq!(
            encode_with_lp(&NetPacket::Interest(i.clone()), &LpHeaders::default()),
            w
        );

        let nack = encode_nack(
            w.clone(),
            NackReason::Duplicate,
            Some(Bytes::from_static(b"t")),
        );
        match decode_packet(nack).unwrap() {
            Received {
                packet: NetPacket::Nack(n),
                lp,
            } => {
                assert_eq!(n.reason, NackReason::Duplicate);
                assert_eq!(n.interest, i);
                assert_eq!(lp.pit_token.as_deref(), Some(&b"t"[..]));
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut d = crate::Data::new(Name::from_uri("/a/b").unwrap(), Bytes::from_static(b"x"));
        let dw = d.sign_digest_sha256();
        assert!(matches!(
            decode_packet(dw).unwrap().packet,
            NetPacket::Data(_)
        ));
        assert!(matches!(
            decode_packet(Bytes::from_static(&[7, 0])),
            Err(Error::NotAPacket { typ: 7 })
        ));
        assert!(matches!(
            decode_packet(Bytes::from_static(&[100, 0])),
            Err(Error::NoFragment)
        ));
    }
}
