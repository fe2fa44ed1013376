//! The core's view of the wire: NDNLPv2 unwrapping on input (bare packets and LpPacket both
//! accepted), LpPacket wrapping on output only when there is a header to carry, and in-place
//! patching of an Interest's Nonce / HopLimit so forwarding does not re-encode the packet.

use amicn_tlv::{Interest, NackReason, Name, TlvReader, lp, tt};
use bytes::{Bytes, BytesMut};

use super::counters::DropReason;

/// Link-layer fields of a received packet that the core acts on.
#[derive(Clone, Debug, Default)]
pub(crate) struct LpIn {
    pub(crate) pit_token: Option<Bytes>,
    pub(crate) next_hop_face_id: Option<u64>,
    pub(crate) congestion_mark: u64,
    pub(crate) no_cache: bool,
}

/// A received network packet.
pub(crate) enum Incoming {
    /// An Interest and its bare wire.
    Interest(Interest, Bytes, LpIn),
    /// A Data (the fields forwarding needs) and its bare wire.
    Data(DataView, Bytes, LpIn),
    /// A Nack: reason and the nacked Interest.
    Nack(NackReason, Interest, LpIn),
    /// An LpPacket without a complete network packet (idle / ack-only / fragment).
    Empty,
}

fn classify(e: &amicn_tlv::Error) -> DropReason {
    match e {
        amicn_tlv::Error::UnknownCritical { .. } => DropReason::UnknownCritical,
        _ => DropReason::Malformed,
    }
}

const MALFORMED: DropReason = DropReason::Malformed;

/// The TLV at `pos` in `buf`: (TLV-TYPE, value start, value end), bounds checked.
///
/// The forwarder's own scans (LpPacket headers, Data envelope) use this instead of a reader
/// that slices a `Bytes` handle per element: only the fields kept are sliced.
#[inline(always)]
fn read_tl(buf: &[u8], pos: usize) -> Result<(u32, usize, usize), DropReason> {
    amicn_tlv::read_tlv_header(buf, pos).map_err(|_| MALFORMED)
}

/// A NonNegativeInteger value (1, 2, 4 or 8 octets).
#[inline(always)]
fn nni(v: &[u8]) -> Result<u64, DropReason> {
    amicn_tlv::decode_nni(v, 0, 0).map_err(|_| MALFORMED)
}

fn is_critical(typ: u32) -> bool {
    typ < 32 || typ & 1 == 1
}

/// Whether an unknown LP header field may be ignored (NDNLPv2: [800, 959] with the two low bits
/// clear).
fn lp_ignorable(typ: u32) -> bool {
    (800..=959).contains(&typ) && typ & 0b11 == 0
}

fn nack_reason(value: &[u8]) -> Result<NackReason, DropReason> {
    let mut pos = 0;
    let mut reason = NackReason::None;
    while pos < value.len() {
        let (t, s, e) = read_tl(value, pos)?;
        if t == lp::NACK_REASON {
            reason = NackReason::from_code(nni(&value[s..e])?);
        }
        pos = e;
    }
    Ok(reason)
}

/// What the forwarder needs of a Data: its name and FreshnessPeriod. The packet itself is
/// forwarded and cached as received, so the signature fields are only checked for presence
/// and order, not decoded (forwarders do not verify signatures).
#[derive(Clone, Debug)]
pub(crate) struct DataView {
    pub(crate) name: Name,
    pub(crate) freshness_ms: Option<u64>,
}

fn meta_freshness(meta: &[u8]) -> Result<Option<u64>, DropReason> {
    let mut pos = 0;
    let mut fresh = None;
    while pos < meta.len() {
        let (t, s, e) = read_tl(meta, pos)?;
        match t {
            tt::FRESHNESS_PERIOD => fresh = Some(nni(&meta[s..e])?),
            tt::CONTENT_TYPE | tt::FINAL_BLOCK_ID => {}
            t if is_critical(t) => return Err(DropReason::UnknownCritical),
            _ => {}
        }
        pos = e;
    }
    Ok(fresh)
}

/// Decodes the Data TLV `wire` (exactly one element) into a [`DataView`].
pub(crate) fn decode_data(wire: &Bytes) -> Result<DataView, DropReason> {
    let (t, vs, ve) = read_tl(wire, 0)?;
    if t != tt::DATA || ve != wire.len() {
        return Err(MALFORMED);
    }
    let body = &wire[..ve];
    let (nt, ns, ne) = read_tl(body, vs)?;
    if nt != tt::NAME {
        return Err(MALFORMED);
    }
    let name = Name::from_value(wire.slice(ns..ne)).map_err(|e| classify(&e))?;
    let mut pos = ne;
    let mut stage = 0u8;
    let mut saw_sig_info = false;
    let mut freshness_ms = None;
    while pos < ve {
        let (t, s, e) = read_tl(body, pos)?;
        pos = e;
        let st = match t {
            tt::META_INFO => 1,
            tt::CONTENT => 2,
            tt::SIGNATURE_INFO => 3,
            tt::SIGNATURE_VALUE => 4,
            t if is_critical(t) => return Err(DropReason::UnknownCritical),
            _ => continue,
        };
        if st <= stage {
            return Err(MALFORMED);
        }
        saw_sig_info |= st == 3;
        if st == 1 {
            freshness_ms = meta_freshness(&body[s..e])?;
        }
        stage = st;
    }
    if stage != 4 || !saw_sig_info {
        return Err(MALFORMED);
    }
    Ok(DataView { name, freshness_ms })
}

/// Decodes one received packet (bare Interest/Data or LpPacket).
pub(crate) fn decode(pkt: Bytes) -> Result<Incoming, DropReason> {
    let (t, vs, ve) = read_tl(&pkt, 0)?;
    if ve != pkt.len() {
        return Err(MALFORMED);
    }
    match t {
        tt::INTEREST => {
            let i = Interest::decode(pkt.clone()).map_err(|e| classify(&e))?;
            Ok(Incoming::Interest(i, pkt, LpIn::default()))
        }
        tt::DATA => {
            let d = decode_data(&pkt)?;
            Ok(Incoming::Data(d, pkt, LpIn::default()))
        }
        lp::LP_PACKET => decode_lp(&pkt, vs, ve),
        t if is_critical(t) => Err(DropReason::UnknownCritical),
        _ => Err(MALFORMED),
    }
}

fn decode_lp(pkt: &Bytes, vs: usize, ve: usize) -> Result<Incoming, DropReason> {
    let body = &pkt[..ve];
    let mut lpin = LpIn::default();
    let mut nack: Option<NackReason> = None;
    let mut fragment: Option<(usize, usize)> = None;
    let mut fragmented = false;
    let mut pos = vs;
    while pos < ve {
        let (t, s, e) = read_tl(body, pos)?;
        pos = e;
        if fragment.is_some() {
            // Nothing may follow the Fragment.
            return Err(MALFORMED);
        }
        let v = &body[s..e];
        match t {
            lp::FRAGMENT => fragment = Some((s, e)),
            lp::PIT_TOKEN => {
                if v.is_empty() || v.len() > 32 {
                    return Err(MALFORMED);
                }
                lpin.pit_token = Some(pkt.slice(s..e));
            }
            lp::NACK => nack = Some(nack_reason(v)?),
            lp::NEXT_HOP_FACE_ID => lpin.next_hop_face_id = Some(nni(v)?),
            lp::CONGESTION_MARK => lpin.congestion_mark = nni(v)?,
            lp::CACHE_POLICY => {
                let mut cp = 0;
                while cp < v.len() {
                    let (ct, cs, ce) = read_tl(v, cp)?;
                    if ct == lp::CACHE_POLICY_TYPE {
                        lpin.no_cache = nni(&v[cs..ce])? == lp::CACHE_POLICY_NO_CACHE;
                    }
                    cp = ce;
                }
            }
            lp::FRAG_COUNT => fragmented = nni(v)? > 1,
            lp::FRAG_INDEX | lp::SEQUENCE | lp::INCOMING_FACE_ID | lp::ACK | lp::TX_SEQUENCE => {}
            lp::HOP_COUNT | lp::NON_DISCOVERY | lp::PREFIX_ANNOUNCEMENT => {}
            t if lp_ignorable(t) => {}
            _ => return Err(DropReason::UnknownCritical),
        }
    }
    if fragmented {
        return Err(DropReason::Fragment);
    }
    let Some((fs, fe)) = fragment else {
        return Ok(Incoming::Empty);
    };
    let (pt, _, pe) = read_tl(&body[..fe], fs)?;
    if pe != fe {
        return Err(MALFORMED);
    }
    let inner = pkt.slice(fs..fe);
    match (pt, nack) {
        (tt::INTEREST, None) => {
            let i = Interest::decode(inner.clone()).map_err(|e| classify(&e))?;
            Ok(Incoming::Interest(i, inner, lpin))
        }
        (tt::INTEREST, Some(reason)) => {
            let i = Interest::decode(inner).map_err(|e| classify(&e))?;
            Ok(Incoming::Nack(reason, i, lpin))
        }
        (tt::DATA, None) => {
            let d = decode_data(&inner)?;
            Ok(Incoming::Data(d, inner, lpin))
        }
        _ => Err(MALFORMED),
    }
}

/// Link-layer fields to put on an outgoing packet.
pub(crate) use amicn_tlv::lp::OutHeaders as LpOut;

/// A packet as it goes on the link.
pub(crate) use amicn_tlv::lp::Frame;

/// The packet as it goes on the link: bare when there is no header, else an LpPacket header
/// (headers in increasing TLV-TYPE order, then the Fragment's TLV-LENGTH) beside the packet,
/// which is shared, not copied.
#[inline]
pub(crate) fn frame(fragment: &Bytes, h: &LpOut<'_>) -> Frame {
    Frame::wrap(fragment, h)
}

/// The packet and its header written into one new buffer, for a packet a table keeps (the
/// PIT's Interest): sharing it instead would add a reference-count header to every entry for
/// the entry's whole life, to save copying a packet of a few dozen octets.
#[inline]
pub(crate) fn frame_copied(fragment: &Bytes, h: &LpOut<'_>) -> Frame {
    Frame::bare(lp::wrap(fragment, h))
}

/// [`frame`] in one buffer.
#[cfg(test)]
pub(crate) fn wrap(fragment: &Bytes, h: &LpOut<'_>) -> Bytes {
    frame(fragment, h).into_bytes()
}

/// Where the Name TLV-VALUE sits in an Interest's wire.
pub(crate) fn name_value_range(interest_wire: &[u8]) -> Option<(usize, usize)> {
    let (t, vs, _) = read_tl(interest_wire, 0).ok()?;
    let (nt, ns, ne) = read_tl(interest_wire, vs).ok()?;
    (t == tt::INTEREST && nt == tt::NAME).then_some((ns, ne))
}

/// A copy of an Interest's wire with the Nonce and/or HopLimit values replaced in place; `None`
/// when a field to set is absent from the wire (the caller then re-encodes).
pub(crate) fn patch_interest(
    wire: &Bytes,
    nonce: Option<u32>,
    hop_limit: Option<u8>,
) -> Option<Bytes> {
    let mut r = TlvReader::new(wire.clone());
    let top = r.read().ok()?;
    let mut fields = top.reader();
    let mut nonce_at = None;
    let mut hop_at = None;
    while !fields.is_empty() {
        let e = fields.read().ok()?;
        let value_at = e.value_offset();
        match e.typ {
            tt::NONCE if e.value.len() == 4 => nonce_at = Some(value_at),
            tt::HOP_LIMIT if e.value.len() == 1 => hop_at = Some(value_at),
            _ => {}
        }
    }
    let mut out = BytesMut::from(&wire[..]);
    if let Some(n) = nonce {
        let at = nonce_at?;
        out.get_mut(at..at + 4)?.copy_from_slice(&n.to_be_bytes());
    }
    if let Some(h) = hop_limit {
        let at = hop_at?;
        *out.get_mut(at)? = h;
    }
    Some(out.freeze())
}

/// The Interest's wire with `nonce` and `hop_limit` applied, patched in place when possible.
pub(crate) fn interest_wire(
    orig: &Bytes,
    interest: &Interest,
    nonce_changed: bool,
    hop_changed: bool,
) -> Bytes {
    if !nonce_changed && !hop_changed {
        // Copied, not sliced: the PIT keeps this for the Interest's lifetime and must not pin
        // the receive buffer the packet arrived in.
        return Bytes::copy_from_slice(orig);
    }
    let nonce = if nonce_changed { interest.nonce } else { None };
    let hop = if hop_changed {
        interest.hop_limit
    } else {
        None
    };
    patch_interest(orig, nonce, hop).unwrap_or_else(|| interest.encode())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wrap_golden_bytes_and_bare_passthrough() {
        let frag = Bytes::from_static(&[0x05, 0x02, 0x07, 0x00]);
        let h = LpOut {
            pit_token: Some(&[0xAA, 0xBB]),
            nack: Some(NackReason::NoRoute),
            ..LpOut::default()
        };
        let want: &[u8] = &[
            0x64, 0x13, 0x62, 0x02, 0xAA, 0xBB, 0xFD, 0x03, 0x20, 0x05, 0xFD, 0x03, 0x21, 0x01,
            0x96, 0x50, 0x04, 0x05, 0x02, 0x07, 0x00,
        ];
        assert_eq!(&wrap(&frag, &h)[..], want);
        assert_eq!(
            wrap(&frag, &LpOut::default()),
            frag,
            "no header: the packet itself"
        );
    }

    #[test]
    fn wrapped_packets_decode_with_the_codec() {
        let name = amicn_tlv::Name::from_uri("/a/b").unwrap();
        let mut i = Interest::new(name);
        i.nonce = Some(0x0102_0304);
        let w = i.encode();
        let h = LpOut {
            congestion_mark: 1,
            incoming_face_id: Some(300),
            ..LpOut::default()
        };
        let rx = amicn_tlv::decode_packet(wrap(&w, &h)).unwrap();
        assert_eq!(rx.lp.congestion_mark, Some(1));
        assert_eq!(rx.lp.incoming_face_id, Some(300));
        let Incoming::Interest(back, bare, lp) = decode(wrap(&w, &h)).unwrap() else {
            panic!("not an Interest")
        };
        assert_eq!(back.nonce, Some(0x0102_0304));
        assert_eq!(bare, w);
        assert_eq!(lp.congestion_mark, 1);
    }

    #[test]
    fn patch_replaces_nonce_and_hop_limit_in_place() {
        let mut i = Interest::new(amicn_tlv::Name::from_uri("/x").unwrap());
        i.nonce = Some(1);
        i.hop_limit = Some(9);
        i.lifetime_ms = Some(100);
        let w = i.encode();
        let p = patch_interest(&w, Some(0xDEAD_BEEF), Some(3)).unwrap();
        assert_eq!(p.len(), w.len());
        let back = Interest::decode(p).unwrap();
        assert_eq!(
            (back.nonce, back.hop_limit, back.lifetime_ms),
            (Some(0xDEAD_BEEF), Some(3), Some(100))
        );
        // No HopLimit on the wire: cannot patch it in place.
        let mut j = Interest::new(amicn_tlv::Name::from_uri("/x").unwrap());
        j.nonce = Some(1);
        assert!(patch_interest(&j.encode(), None, Some(3)).is_none());
    }

    #[test]
    fn ignorable_lp_headers_are_skipped_and_fragments_refused() {
        let mut i = Interest::new(amicn_tlv::Name::from_uri("/x").unwrap());
        i.nonce = Some(7);
        let w = i.encode();
        // Unknown header 0x0348 + 4 = 844 (NonDiscovery is known); use 0x0390 = 912, ignorable.
        let mut pkt = vec![
            0x64,
            (4 + 2 + w.len()) as u8,
            0xFD,
            0x03,
            0x90,
            0x00,
            0x50,
            w.len() as u8,
        ];
        pkt.extend_from_slice(&w);
        assert!(matches!(
            decode(Bytes::from(pkt)),
            Ok(Incoming::Interest(..))
        ));
        let mut frag = vec![
            0x64,
            (3 + 2 + w.len()) as u8,
            0x53,
            0x01,
            0x02,
            0x50,
            w.len() as u8,
        ];
        frag.extend_from_slice(&w);
        assert!(matches!(
            decode(Bytes::from(frag)),
            Err(DropReason::Fragment)
        ));
        // An LpPacket with only headers (idle) carries nothing.
        assert!(matches!(
            decode(Bytes::from_static(&[0x64, 0x00])),
            Ok(Incoming::Empty)
        ));
    }
}

#[cfg(test)]
mod data_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data_wire(fresh: Option<u64>) -> Bytes {
        let mut d =
            amicn_tlv::Data::new(Name::from_uri("/d/1").unwrap(), Bytes::from_static(b"hi"));
        d.meta_info.freshness_period_ms = fresh;
        d.sign_digest_sha256()
    }

    #[test]
    fn data_view_reads_name_and_freshness() {
        let v = decode_data(&data_wire(Some(1500))).unwrap();
        assert_eq!(v.name.to_string(), "/d/1");
        assert_eq!(v.freshness_ms, Some(1500));
        assert_eq!(decode_data(&data_wire(None)).unwrap().freshness_ms, None);
    }

    #[test]
    fn data_view_rejects_missing_signature_and_unknown_critical() {
        // Data { Name /a, Content "x" } without signature fields.
        let no_sig =
            Bytes::from_static(&[0x06, 0x08, 0x07, 0x03, 0x08, 0x01, 0x61, 0x15, 0x01, 0x78]);
        assert!(matches!(decode_data(&no_sig), Err(DropReason::Malformed)));
        // Data { Name /a, 0x81 (odd, unknown) , SignatureInfo{type 0}, SignatureValue }.
        let crit = Bytes::from_static(&[
            0x06, 0x10, 0x07, 0x03, 0x08, 0x01, 0x61, 0x81, 0x00, 0x16, 0x03, 0x1B, 0x01, 0x00,
            0x17, 0x01, 0x00, 0x00,
        ]);
        assert!(decode_data(&crit).is_err());
        // Same with an even unknown type (non-critical): accepted.
        let ok = Bytes::from_static(&[
            0x06, 0x0F, 0x07, 0x03, 0x08, 0x01, 0x61, 0x80, 0x00, 0x16, 0x03, 0x1B, 0x01, 0x00,
            0x17, 0x01, 0x00,
        ]);
        assert_eq!(decode_data(&ok).unwrap().name.to_string(), "/a");
        let crit_ok_len = Bytes::from_static(&[
            0x06, 0x0F, 0x07, 0x03, 0x08, 0x01, 0x61, 0x81, 0x00, 0x16, 0x03, 0x1B, 0x01, 0x00,
            0x17, 0x01, 0x00,
        ]);
        assert!(matches!(
            decode_data(&crit_ok_len),
            Err(DropReason::UnknownCritical)
        ));
        // Elements out of order (SignatureValue before SignatureInfo).
        let swapped = Bytes::from_static(&[
            0x06, 0x0D, 0x07, 0x03, 0x08, 0x01, 0x61, 0x17, 0x01, 0x00, 0x16, 0x03, 0x1B, 0x01,
            0x00,
        ]);
        assert!(matches!(decode_data(&swapped), Err(DropReason::Malformed)));
    }
}

#[cfg(test)]
mod robustness_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn var_numbers_must_be_minimal() {
        assert_eq!(read_tl(&[0xFC, 0x00], 0), Ok((252, 2, 2)));
        assert_eq!(read_tl(&[0xFD, 0x00, 0xFD, 0x00], 0), Ok((253, 4, 4)));
        assert_eq!(
            read_tl(&[0xFD, 0x00, 0x05, 0x00], 0),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            read_tl(&[0x05, 0xFE, 0x00, 0x00, 0xFF, 0xFF], 0),
            Err(DropReason::Malformed)
        );
        assert_eq!(read_tl(&[0xFD, 0x01], 0), Err(DropReason::Malformed));
        assert_eq!(
            read_tl(&[0x05, 0x03, 0x00], 0),
            Err(DropReason::Malformed),
            "length past end"
        );
        assert_eq!(
            read_tl(&[0x00, 0x00], 0),
            Err(DropReason::Malformed),
            "type 0"
        );
    }

    /// Random and mutated packets: decoding returns a result, never panics.
    #[test]
    fn decoding_garbage_never_panics() {
        let mut i = Interest::new(Name::from_uri("/a/b/c").unwrap());
        i.nonce = Some(5);
        let mut d = amicn_tlv::Data::new(Name::from_uri("/a/b").unwrap(), Bytes::from_static(b"x"));
        d.meta_info.freshness_period_ms = Some(10);
        let seeds = [
            i.encode(),
            d.sign_digest_sha256(),
            wrap(
                &i.encode(),
                &LpOut {
                    pit_token: Some(&[1, 2]),
                    nack: Some(NackReason::NoRoute),
                    ..LpOut::default()
                },
            ),
        ];
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut accepted = 0;
        for round in 0..20_000 {
            let seed = &seeds[round % seeds.len()];
            let mut buf = seed.to_vec();
            let flips = 1 + (next() % 4) as usize;
            for _ in 0..flips {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
            if next() % 8 == 0 {
                buf.truncate((next() as usize) % buf.len());
            }
            if decode(Bytes::from(buf)).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted < 20_000, "mutations must be rejected sometimes");
        for _ in 0..5_000 {
            let len = (next() % 64) as usize;
            let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode(Bytes::from(buf));
        }
    }
}
