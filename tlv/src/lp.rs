//! NDNLPv2 (`ndn-cxx/lp/tlv.hpp`, NDNLPv2 wiki): TLV-TYPE numbers and the [`LpPacket`] with
//! every header field, the ignorable-field rule for unknown headers, and [`NackReason`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoding::{encode_nni_tlv, encode_tl, nni_tlv_len, tl_len, tlv_len};
use crate::fields::{Fields, outer};
use crate::{Error, Result};

/// LpPacket.
pub const LP_PACKET: u32 = 100;
/// Fragment: the network-layer packet or a piece of it.
pub const FRAGMENT: u32 = 80;
/// Sequence (fixed 8 octets when we encode).
pub const SEQUENCE: u32 = 81;
/// FragIndex.
pub const FRAG_INDEX: u32 = 82;
/// FragCount.
pub const FRAG_COUNT: u32 = 83;
/// HopCount (ndnSIM, python-ndn only).
pub const HOP_COUNT: u32 = 84;
/// PitToken (1..=32 opaque octets).
pub const PIT_TOKEN: u32 = 98;
/// Nack.
pub const NACK: u32 = 800;
/// NackReason.
pub const NACK_REASON: u32 = 801;
/// IncomingFaceId.
pub const INCOMING_FACE_ID: u32 = 812;
/// NextHopFaceId.
pub const NEXT_HOP_FACE_ID: u32 = 816;
/// CachePolicy.
pub const CACHE_POLICY: u32 = 820;
/// CachePolicyType.
pub const CACHE_POLICY_TYPE: u32 = 821;
/// CachePolicyType value NoCache.
pub const CACHE_POLICY_NO_CACHE: u64 = 1;
/// CongestionMark.
pub const CONGESTION_MARK: u32 = 832;
/// Ack.
pub const ACK: u32 = 836;
/// TxSequence.
pub const TX_SEQUENCE: u32 = 840;
/// NonDiscovery.
pub const NON_DISCOVERY: u32 = 844;
/// PrefixAnnouncement.
pub const PREFIX_ANNOUNCEMENT: u32 = 848;

/// Whether an unknown LpPacket header may be ignored: in [800, 959] with the two low bits 00.
#[inline]
pub const fn is_ignorable(typ: u32) -> bool {
    typ >= 800 && typ <= 959 && typ & 3 == 0
}

/// Why an Interest was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NackReason {
    /// No reason given (0).
    None,
    /// Congestion (50).
    Congestion,
    /// Duplicate Nonce (100).
    Duplicate,
    /// No route (150).
    NoRoute,
    /// Any other code.
    Other(u64),
}

impl NackReason {
    /// The wire code.
    pub fn code(self) -> u64 {
        match self {
            NackReason::None => 0,
            NackReason::Congestion => 50,
            NackReason::Duplicate => 100,
            NackReason::NoRoute => 150,
            NackReason::Other(c) => c,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u64) -> NackReason {
        match c {
            0 => NackReason::None,
            50 => NackReason::Congestion,
            100 => NackReason::Duplicate,
            150 => NackReason::NoRoute,
            c => NackReason::Other(c),
        }
    }

    /// Spec name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            NackReason::None => "None",
            NackReason::Congestion => "Congestion",
            NackReason::Duplicate => "Duplicate",
            NackReason::NoRoute => "NoRoute",
            NackReason::Other(_) => "Other",
        }
    }

    fn value_len(self) -> usize {
        if self == NackReason::None {
            0
        } else {
            nni_tlv_len(NACK_REASON, self.code())
        }
    }
}

impl std::fmt::Display for NackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NackReason::Other(c) => write!(f, "Other({c})"),
            r => f.write_str(r.as_str()),
        }
    }
}

/// An NDNLPv2 packet: header fields plus an optional Fragment. Decoded packets slice every
/// byte-valued field from the input buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LpPacket {
    /// Sequence.
    pub sequence: Option<u64>,
    /// FragIndex.
    pub frag_index: Option<u64>,
    /// FragCount.
    pub frag_count: Option<u64>,
    /// HopCount (decoded for interoperability; not emitted unless set).
    pub hop_count: Option<u64>,
    /// PitToken.
    pub pit_token: Option<Bytes>,
    /// Nack (with its reason).
    pub nack: Option<NackReason>,
    /// IncomingFaceId.
    pub incoming_face_id: Option<u64>,
    /// NextHopFaceId.
    pub next_hop_face_id: Option<u64>,
    /// CachePolicyType inside CachePolicy.
    pub cache_policy: Option<u64>,
    /// CongestionMark.
    pub congestion_mark: Option<u64>,
    /// Ack (repeatable).
    pub acks: Vec<u64>,
    /// TxSequence.
    pub tx_sequence: Option<u64>,
    /// NonDiscovery.
    pub non_discovery: bool,
    /// PrefixAnnouncement (the wrapped Data TLV).
    pub prefix_announcement: Option<Bytes>,
    /// Fragment.
    pub fragment: Option<Bytes>,
}

fn fixed_u64(v: &[u8], typ: u32, offset: usize) -> Result<u64> {
    if v.is_empty() || v.len() > 8 {
        return Err(Error::BadNni {
            typ,
            len: v.len(),
            offset,
        });
    }
    Ok(v.iter().fold(0u64, |a, &b| a << 8 | b as u64))
}

fn once(seen: u32, bit: u32, c: &crate::fields::Child) -> Result<u32> {
    if seen & (1 << bit) != 0 {
        return Err(Error::OutOfOrder {
            container: "LpPacket",
            typ: c.typ,
            offset: c.start,
        });
    }
    Ok(seen | 1 << bit)
}

impl LpPacket {
    /// A packet carrying `fragment` and no headers.
    pub fn with_fragment(fragment: Bytes) -> LpPacket {
        LpPacket {
            fragment: Some(fragment),
            ..LpPacket::default()
        }
    }

    /// Decodes an LpPacket TLV.
    pub fn decode(wire: Bytes) -> Result<LpPacket> {
        let (vs, ve) = outer(&wire, LP_PACKET, "LpPacket")?;
        LpPacket::decode_range(&wire, vs, ve)
    }

    pub(crate) fn decode_range(wire: &Bytes, vs: usize, ve: usize) -> Result<LpPacket> {
        let mut f = Fields::new(wire, vs, ve, "LpPacket");
        let mut p = LpPacket::default();
        // Header order is not enforced: implementations differ (python-ndn writes TxSequence
        // before Ack). Each non-repeatable header may appear once; Fragment comes last.
        let mut seen = 0u32;
        while let Some(c) = f.next_child()? {
            if p.fragment.is_some() {
                return Err(Error::OutOfOrder {
                    container: "LpPacket",
                    typ: c.typ,
                    offset: c.start,
                });
            }
            match c.typ {
                FRAGMENT => p.fragment = Some(wire.slice(c.vs..c.ve)),
                SEQUENCE => {
                    seen = once(seen, 1, &c)?;
                    p.sequence = Some(fixed_u64(f.value(&c), c.typ, c.start)?);
                }
                FRAG_INDEX => {
                    seen = once(seen, 2, &c)?;
                    p.frag_index = Some(f.nni(&c)?);
                }
                FRAG_COUNT => {
                    seen = once(seen, 3, &c)?;
                    p.frag_count = Some(f.nni(&c)?);
                }
                HOP_COUNT => {
                    seen = once(seen, 4, &c)?;
                    p.hop_count = Some(f.nni(&c)?);
                }
                PIT_TOKEN => {
                    seen = once(seen, 5, &c)?;
                    let v = f.value(&c);
                    if v.is_empty() || v.len() > 32 {
                        return Err(Error::Invalid {
                            what: "PitToken",
                            reason: "must be 1 to 32 octets",
                            offset: c.start,
                        });
                    }
                    p.pit_token = Some(wire.slice(c.vs..c.ve));
                }
                NACK => {
                    seen = once(seen, 6, &c)?;
                    let mut inner = Fields::new(wire, c.vs, c.ve, "Nack");
                    let mut reason = NackReason::None;
                    while let Some(n) = inner.next_child()? {
                        match n.typ {
                            NACK_REASON => {
                                inner.order(&n, 1)?;
                                reason = NackReason::from_code(inner.nni(&n)?);
                            }
                            _ => inner.unknown(&n)?,
                        }
                    }
                    p.nack = Some(reason);
                }
                INCOMING_FACE_ID => {
                    seen = once(seen, 7, &c)?;
                    p.incoming_face_id = Some(f.nni(&c)?);
                }
                NEXT_HOP_FACE_ID => {
                    seen = once(seen, 8, &c)?;
                    p.next_hop_face_id = Some(f.nni(&c)?);
                }
                CACHE_POLICY => {
                    seen = once(seen, 9, &c)?;
                    let mut inner = Fields::new(wire, c.vs, c.ve, "CachePolicy");
                    while let Some(n) = inner.next_child()? {
                        match n.typ {
                            CACHE_POLICY_TYPE => {
                                inner.order(&n, 1)?;
                                p.cache_policy = Some(inner.nni(&n)?);
                            }
                            _ => inner.unknown(&n)?,
                        }
                    }
                    if p.cache_policy.is_none() {
                        return Err(Error::Missing {
                            container: "CachePolicy",
                            what: "CachePolicyType",
                        });
                    }
                }
                CONGESTION_MARK => {
                    seen = once(seen, 10, &c)?;
                    p.congestion_mark = Some(f.nni(&c)?);
                }
                ACK => {
                    p.acks.push(fixed_u64(f.value(&c), c.typ, c.start)?);
                }
                TX_SEQUENCE => {
                    seen = once(seen, 12, &c)?;
                    p.tx_sequence = Some(fixed_u64(f.value(&c), c.typ, c.start)?);
                }
                NON_DISCOVERY => {
                    seen = once(seen, 13, &c)?;
                    p.non_discovery = true;
                }
                PREFIX_ANNOUNCEMENT => {
                    seen = once(seen, 14, &c)?;
                    p.prefix_announcement = Some(wire.slice(c.vs..c.ve));
                }
                t if is_ignorable(t) => {}
                _ => {
                    return Err(Error::UnknownCritical {
                        container: "LpPacket",
                        typ: c.typ,
                        offset: c.start,
                    });
                }
            }
        }
        Ok(p)
    }

    /// Length of the TLV-VALUE.
    pub fn value_len(&self) -> usize {
        let mut n = 0;
        if self.sequence.is_some() {
            n += tlv_len(SEQUENCE, 8);
        }
        if let Some(v) = self.frag_index {
            n += nni_tlv_len(FRAG_INDEX, v);
        }
        if let Some(v) = self.frag_count {
            n += nni_tlv_len(FRAG_COUNT, v);
        }
        if let Some(v) = self.hop_count {
            n += nni_tlv_len(HOP_COUNT, v);
        }
        if let Some(t) = &self.pit_token {
            n += tlv_len(PIT_TOKEN, t.len());
        }
        if let Some(r) = self.nack {
            n += tlv_len(NACK, r.value_len());
        }
        if let Some(v) = self.incoming_face_id {
            n += nni_tlv_len(INCOMING_FACE_ID, v);
        }
        if let Some(v) = self.next_hop_face_id {
            n += nni_tlv_len(NEXT_HOP_FACE_ID, v);
        }
        if let Some(v) = self.cache_policy {
            n += tlv_len(CACHE_POLICY, nni_tlv_len(CACHE_POLICY_TYPE, v));
        }
        if let Some(v) = self.congestion_mark {
            n += nni_tlv_len(CONGESTION_MARK, v);
        }
        n += self.acks.len() * tlv_len(ACK, 8);
        if self.tx_sequence.is_some() {
            n += tlv_len(TX_SEQUENCE, 8);
        }
        if self.non_discovery {
            n += tlv_len(NON_DISCOVERY, 0);
        }
        if let Some(p) = &self.prefix_announcement {
            n += tlv_len(PREFIX_ANNOUNCEMENT, p.len());
        }
        if let Some(f) = &self.fragment {
            n += tlv_len(FRAGMENT, f.len());
        }
        n
    }

    /// Encoded length of the whole LpPacket TLV.
    pub fn encoded_len(&self) -> usize {
        tlv_len(LP_PACKET, self.value_len())
    }

    /// Appends the LpPacket TLV (headers in increasing TLV-TYPE order, Fragment last).
    pub fn encode_to(&self, buf: &mut BytesMut) {
        encode_tl(buf, LP_PACKET, self.value_len());
        if let Some(v) = self.sequence {
            encode_tl(buf, SEQUENCE, 8);
            buf.put_u64(v);
        }
        if let Some(v) = self.frag_index {
            encode_nni_tlv(buf, FRAG_INDEX, v);
        }
        if let Some(v) = self.frag_count {
            encode_nni_tlv(buf, FRAG_COUNT, v);
        }
        if let Some(v) = self.hop_count {
            encode_nni_tlv(buf, HOP_COUNT, v);
        }
        if let Some(t) = &self.pit_token {
            encode_tl(buf, PIT_TOKEN, t.len());
            buf.put_slice(t);
        }
        if let Some(r) = self.nack {
            encode_tl(buf, NACK, r.value_len());
            if r != NackReason::None {
                encode_nni_tlv(buf, NACK_REASON, r.code());
            }
        }
        if let Some(v) = self.incoming_face_id {
            encode_nni_tlv(buf, INCOMING_FACE_ID, v);
        }
        if let Some(v) = self.next_hop_face_id {
            encode_nni_tlv(buf, NEXT_HOP_FACE_ID, v);
        }
        if let Some(v) = self.cache_policy {
            encode_tl(buf, CACHE_POLICY, nni_tlv_len(CACHE_POLICY_TYPE, v));
            encode_nni_tlv(buf, CACHE_POLICY_TYPE, v);
        }
        if let Some(v) = self.congestion_mark {
            encode_nni_tlv(buf, CONGESTION_MARK, v);
        }
        for a in &self.acks {
            encode_tl(buf, ACK, 8);
            buf.put_u64(*a);
        }
        if let Some(v) = self.tx_sequence {
            encode_tl(buf, TX_SEQUENCE, 8);
            buf.put_u64(v);
        }
        if self.non_discovery {
            encode_tl(buf, NON_DISCOVERY, 0);
        }
        if let Some(p) = &self.prefix_announcement {
            encode_tl(buf, PREFIX_ANNOUNCEMENT, p.len());
            buf.put_slice(p);
        }
        if let Some(f) = &self.fragment {
            encode_tl(buf, FRAGMENT, f.len());
            buf.put_slice(f);
        }
    }

    /// Encodes the LpPacket.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode_to(&mut b);
        b.freeze()
    }
}

/// The link-layer fields put on an outgoing packet, borrowed from the caller: what a forwarder
/// adds on its send path and what a client echoes back. [`wrap`] writes them straight into the
/// output buffer without building an [`LpPacket`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutHeaders<'a> {
    /// PitToken.
    pub pit_token: Option<&'a [u8]>,
    /// Nack header (the fragment is then the nacked Interest).
    pub nack: Option<NackReason>,
    /// IncomingFaceId.
    pub incoming_face_id: Option<u64>,
    /// CongestionMark; 0 is not sent.
    pub congestion_mark: u64,
}

impl OutHeaders<'_> {
    /// Whether there is nothing to send, so the packet goes bare.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pit_token.is_none()
            && self.nack.is_none()
            && self.incoming_face_id.is_none()
            && self.congestion_mark == 0
    }

    /// Length of the LpPacket TLV-VALUE around a fragment of `fragment_len` octets.
    #[inline]
    fn value_len(&self, fragment_len: usize) -> usize {
        let mut n = tlv_len(FRAGMENT, fragment_len);
        if let Some(t) = self.pit_token {
            n += tlv_len(PIT_TOKEN, t.len());
        }
        if let Some(r) = self.nack {
            n += tlv_len(NACK, r.value_len());
        }
        if let Some(id) = self.incoming_face_id {
            n += nni_tlv_len(INCOMING_FACE_ID, id);
        }
        if self.congestion_mark != 0 {
            n += nni_tlv_len(CONGESTION_MARK, self.congestion_mark);
        }
        n
    }

    /// Octets [`OutHeaders::encode_header`] writes for a fragment of `fragment_len` octets.
    #[inline]
    pub fn header_len(&self, fragment_len: usize) -> usize {
        let v = self.value_len(fragment_len);
        tl_len(LP_PACKET, v) + v - fragment_len
    }

    /// Appends everything of the LpPacket up to and including the Fragment's TLV-LENGTH; the
    /// `fragment_len` octets of the fragment follow. Headers go in increasing TLV-TYPE order.
    #[inline]
    pub fn encode_header<B: BufMut + ?Sized>(&self, buf: &mut B, fragment_len: usize) {
        encode_tl(buf, LP_PACKET, self.value_len(fragment_len));
        if let Some(t) = self.pit_token {
            encode_tl(buf, PIT_TOKEN, t.len());
            buf.put_slice(t);
        }
        if let Some(r) = self.nack {
            encode_tl(buf, NACK, r.value_len());
            if r != NackReason::None {
                encode_nni_tlv(buf, NACK_REASON, r.code());
            }
        }
        if let Some(id) = self.incoming_face_id {
            encode_nni_tlv(buf, INCOMING_FACE_ID, id);
        }
        if self.congestion_mark != 0 {
            encode_nni_tlv(buf, CONGESTION_MARK, self.congestion_mark);
        }
        encode_tl(buf, FRAGMENT, fragment_len);
    }
}

/// The packet as it goes on the link: `fragment` itself (a reference count bump) when there is
/// no header to carry, else an LpPacket with the headers followed by the Fragment.
#[inline]
pub fn wrap(fragment: &Bytes, h: &OutHeaders<'_>) -> Bytes {
    if h.is_empty() {
        return fragment.clone();
    }
    let mut out = BytesMut::with_capacity(h.header_len(fragment.len()) + fragment.len());
    h.encode_header(&mut out, fragment.len());
    out.put_slice(fragment);
    out.freeze()
}

/// A packet ready for the link, in two parts: the LpPacket header up to the Fragment's
/// TLV-LENGTH (empty for a bare packet) and the network packet itself. A writer sends the two
/// as one vectored write, so wrapping a packet never copies it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// LpPacket header octets; empty when the packet goes bare.
    pub header: Bytes,
    /// The network packet (the Fragment's TLV-VALUE when `header` is not empty).
    pub packet: Bytes,
}

impl Frame {
    /// A packet sent as it is, without an LpPacket around it.
    #[inline]
    pub fn bare(packet: Bytes) -> Self {
        Self {
            header: Bytes::new(),
            packet,
        }
    }

    /// `fragment` with `h` in front of it: bare when there is no header to carry.
    #[inline]
    pub fn wrap(fragment: &Bytes, h: &OutHeaders<'_>) -> Self {
        if h.is_empty() {
            return Self::bare(fragment.clone());
        }
        let mut header = BytesMut::with_capacity(h.header_len(fragment.len()));
        h.encode_header(&mut header, fragment.len());
        Self {
            header: header.freeze(),
            packet: fragment.clone(),
        }
    }

    /// Octets on the link.
    #[inline]
    pub fn len(&self) -> usize {
        self.header.len() + self.packet.len()
    }

    /// Whether there is nothing to send.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.packet.is_empty()
    }

    /// The frame in one buffer (for datagrams and fragmentation); a bare packet is returned
    /// without copying.
    pub fn to_bytes(&self) -> Bytes {
        if self.header.is_empty() {
            return self.packet.clone();
        }
        let mut out = BytesMut::with_capacity(self.len());
        out.put_slice(&self.header);
        out.put_slice(&self.packet);
        out.freeze()
    }

    /// The frame in one buffer, consuming it.
    pub fn into_bytes(self) -> Bytes {
        if self.header.is_empty() {
            self.packet
        } else {
            self.to_bytes()
        }
    }
}

impl From<Bytes> for Frame {
    fn from(packet: Bytes) -> Self {
        Self::bare(packet)
    }
}

/// The bytes of an LpPacket carrying `pit_token` up to (and including) the Fragment's
/// TLV-LENGTH; the `packet_len` bytes of the fragment follow.
pub fn pit_token_header(pit_token: &[u8], packet_len: usize) -> Bytes {
    let h = OutHeaders {
        pit_token: Some(pit_token),
        ..OutHeaders::default()
    };
    let mut out = BytesMut::with_capacity(h.header_len(packet_len));
    h.encode_header(&mut out, packet_len);
    out.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frame_parts_concatenate_to_the_wrapped_packet() {
        let frag = Bytes::from_static(&[0x06, 0x03, 0x07, 0x01, 0x08]);
        let tok = [9u8, 8, 7, 6];
        let h = OutHeaders {
            pit_token: Some(&tok),
            congestion_mark: 3,
            ..OutHeaders::default()
        };
        let f = Frame::wrap(&frag, &h);
        assert_eq!(f.len(), f.header.len() + frag.len());
        assert_eq!(
            f.packet.as_ptr(),
            frag.as_ptr(),
            "the packet is shared, not copied"
        );
        assert_eq!(f.to_bytes(), wrap(&frag, &h));
        assert_eq!(f.clone().into_bytes(), wrap(&frag, &h));
        let bare = Frame::wrap(&frag, &OutHeaders::default());
        assert!(bare.header.is_empty());
        assert_eq!(bare.to_bytes().as_ptr(), frag.as_ptr());
        assert_eq!(Frame::from(frag.clone()), bare);
    }

    #[test]
    fn out_headers_match_the_full_encoder() {
        let frag = Bytes::from_static(&[0x05, 0x03, 0x07, 0x01, 0x08]);
        let tok = [1u8, 2, 3];
        for h in [
            OutHeaders {
                pit_token: Some(&tok),
                ..OutHeaders::default()
            },
            OutHeaders {
                pit_token: Some(&tok),
                nack: Some(NackReason::NoRoute),
                incoming_face_id: Some(300),
                congestion_mark: 1,
            },
            OutHeaders {
                nack: Some(NackReason::None),
                ..OutHeaders::default()
            },
        ] {
            let reference = LpPacket {
                pit_token: h.pit_token.map(Bytes::copy_from_slice),
                nack: h.nack,
                incoming_face_id: h.incoming_face_id,
                congestion_mark: (h.congestion_mark != 0).then_some(h.congestion_mark),
                fragment: Some(frag.clone()),
                ..LpPacket::default()
            }
            .encode();
            let w = wrap(&frag, &h);
            assert_eq!(w, reference);
            assert_eq!(h.header_len(frag.len()) + frag.len(), w.len());
            assert_eq!(LpPacket::decode(w).unwrap().fragment, Some(frag.clone()));
        }
        assert_eq!(wrap(&frag, &OutHeaders::default()), frag);
        assert_eq!(
            pit_token_header(&[1, 2], 2).as_ref(),
            &[0x64, 0x08, 0x62, 0x02, 0x01, 0x02, 0x50, 0x02]
        );
    }
    use crate::name::tests::hex;

    #[test]
    fn nack_golden() {
        let p = LpPacket {
            nack: Some(NackReason::NoRoute),
            pit_token: Some(Bytes::from_static(&[1, 2])),
            fragment: Some(Bytes::from_static(&[5, 3, 7, 1, 8])),
            ..LpPacket::default()
        };
        let w = p.encode();
        assert_eq!(
            hex(&w),
            "6414620201 02fd032005fd03210196 5005 0503070108".replace(' ', "")
        );
        assert_eq!(LpPacket::decode(w).unwrap(), p);
    }

    #[test]
    fn all_fields_round_trip() {
        let p = LpPacket {
            sequence: Some(0x0102030405060708),
            frag_index: Some(1),
            frag_count: Some(3),
            hop_count: Some(2),
            pit_token: Some(Bytes::from_static(&[9; 6])),
            nack: Some(NackReason::None),
            incoming_face_id: Some(260),
            next_hop_face_id: Some(1),
            cache_policy: Some(CACHE_POLICY_NO_CACHE),
            congestion_mark: Some(1),
            acks: vec![1, 2],
            tx_sequence: Some(77),
            non_discovery: true,
            prefix_announcement: Some(Bytes::from_static(&[6, 0])),
            fragment: Some(Bytes::from_static(&[1, 2, 3])),
        };
        let w = p.encode();
        assert_eq!(w.len(), p.encoded_len());
        assert_eq!(LpPacket::decode(w).unwrap(), p);
    }

    #[test]
    fn ignorable_rule() {
        // 804 (0x324) is ignorable, 805 critical, 960 outside the range.
        assert!(LpPacket::decode(Bytes::from_static(&[100, 6, 0xFD, 3, 0x24, 0, 80, 0])).is_ok());
        assert!(matches!(
            LpPacket::decode(Bytes::from_static(&[100, 6, 0xFD, 3, 0x25, 0, 80, 0])),
            Err(Error::UnknownCritical { typ: 805, .. })
        ));
        assert!(LpPacket::decode(Bytes::from_static(&[100, 6, 0xFD, 3, 0xC0, 0, 80, 0])).is_err());
        // Headers in any order, but not twice.
        assert!(LpPacket::decode(Bytes::from_static(&[100, 8, 83, 1, 2, 82, 1, 1, 80, 0])).is_ok());
        assert!(
            LpPacket::decode(Bytes::from_static(&[100, 8, 82, 1, 2, 82, 1, 1, 80, 0])).is_err()
        );
        // Header after Fragment.
        assert!(LpPacket::decode(Bytes::from_static(&[100, 5, 80, 0, 98, 1, 1])).is_err());
        // PitToken too long.
        let mut v = vec![100, 35, 98, 33];
        v.extend([0; 33]);
        assert!(LpPacket::decode(Bytes::from(v)).is_err());
        assert!(
            is_ignorable(800 + 48) && !is_ignorable(801) && !is_ignorable(960) && is_ignorable(956)
        );
    }
}
