//! TLV primitives (`tlv.rst`): VAR-NUMBER and NonNegativeInteger encoding, a bounds-checked
//! element reader over a shared [`Bytes`] buffer, and stream framing.
//!
//! Decoders in this crate work on byte offsets into one buffer and only slice it (a reference
//! count bump, never a copy) for fields that outlive the decode.

use bytes::{BufMut, Bytes};

use crate::{Error, MAX_PACKET_SIZE, Result};

/// Number of octets the VAR-NUMBER encoding of `v` takes (1, 3, 5 or 9).
#[inline]
pub const fn var_number_len(v: u64) -> usize {
    if v <= 252 {
        1
    } else if v <= 0xFFFF {
        3
    } else if v <= 0xFFFF_FFFF {
        5
    } else {
        9
    }
}

/// Appends the shortest VAR-NUMBER encoding of `v`.
#[inline]
pub fn encode_var_number<B: BufMut + ?Sized>(buf: &mut B, v: u64) {
    if v <= 252 {
        buf.put_u8(v as u8);
    } else if v <= 0xFFFF {
        buf.put_u8(253);
        buf.put_u16(v as u16);
    } else if v <= 0xFFFF_FFFF {
        buf.put_u8(254);
        buf.put_u32(v as u32);
    } else {
        buf.put_u8(255);
        buf.put_u64(v);
    }
}

/// Length of the TLV-TYPE and TLV-LENGTH header of an element.
#[inline]
pub const fn tl_len(typ: u32, value_len: usize) -> usize {
    var_number_len(typ as u64) + var_number_len(value_len as u64)
}

/// Total encoded length of an element whose TLV-VALUE is `value_len` octets.
#[inline]
pub const fn tlv_len(typ: u32, value_len: usize) -> usize {
    tl_len(typ, value_len) + value_len
}

/// Appends TLV-TYPE and TLV-LENGTH.
#[inline]
pub fn encode_tl<B: BufMut + ?Sized>(buf: &mut B, typ: u32, value_len: usize) {
    encode_var_number(buf, typ as u64);
    encode_var_number(buf, value_len as u64);
}

/// Appends a whole element with the given value.
#[inline]
pub fn encode_tlv<B: BufMut + ?Sized>(buf: &mut B, typ: u32, value: &[u8]) {
    encode_tl(buf, typ, value.len());
    buf.put_slice(value);
}

/// Octets of the shortest NonNegativeInteger encoding of `v` (1, 2, 4 or 8).
#[inline]
pub const fn nni_len(v: u64) -> usize {
    if v <= 0xFF {
        1
    } else if v <= 0xFFFF {
        2
    } else if v <= 0xFFFF_FFFF {
        4
    } else {
        8
    }
}

/// Appends the shortest NonNegativeInteger encoding of `v` (TLV-VALUE only).
#[inline]
pub fn encode_nni<B: BufMut + ?Sized>(buf: &mut B, v: u64) {
    match nni_len(v) {
        1 => buf.put_u8(v as u8),
        2 => buf.put_u16(v as u16),
        4 => buf.put_u32(v as u32),
        _ => buf.put_u64(v),
    }
}

/// Total encoded length of an element holding the NonNegativeInteger `v`.
#[inline]
pub const fn nni_tlv_len(typ: u32, v: u64) -> usize {
    tlv_len(typ, nni_len(v))
}

/// Appends an element of type `typ` holding the NonNegativeInteger `v`.
#[inline]
pub fn encode_nni_tlv<B: BufMut + ?Sized>(buf: &mut B, typ: u32, v: u64) {
    encode_tl(buf, typ, nni_len(v));
    encode_nni(buf, v);
}

/// Decodes a NonNegativeInteger TLV-VALUE; `typ` and `offset` only label the error.
#[inline]
pub fn decode_nni(value: &[u8], typ: u32, offset: usize) -> Result<u64> {
    match *value {
        [a] => Ok(a as u64),
        [a, b] => Ok(u16::from_be_bytes([a, b]) as u64),
        [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d]) as u64),
        [a, b, c, d, e, f, g, h] => Ok(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(Error::BadNni {
            typ,
            len: value.len(),
            offset,
        }),
    }
}

/// Octets a VAR-NUMBER takes, judged from its first octet alone (1, 3, 5 or 9).
#[inline]
pub const fn var_number_width(first: u8) -> usize {
    match first {
        0..=252 => 1,
        253 => 3,
        254 => 5,
        255 => 9,
    }
}

/// Reads the VAR-NUMBER at the start of `buf`, enforcing the shortest form. Returns the value
/// and the number of octets it took.
#[inline]
pub fn read_var_number(buf: &[u8]) -> Result<(u64, usize)> {
    var_number_at(buf, 0, "VAR-NUMBER")
}

/// Reads the TLV-TYPE and TLV-LENGTH at `pos` and checks that the value fits in `buf`
/// (TLV-TYPE 0 and types above `u32::MAX` are rejected). Returns `(type, value_start,
/// value_end)` as offsets into `buf`; nothing is copied.
#[inline]
pub fn read_tlv_header(buf: &[u8], pos: usize) -> Result<(u32, usize, usize)> {
    parse_tlv(buf, pos, "element")
}

/// Reads the VAR-NUMBER at `pos`, enforcing the shortest form. Returns the value and the position
/// after it.
#[inline(always)]
pub(crate) fn var_number_at(buf: &[u8], pos: usize, what: &'static str) -> Result<(u64, usize)> {
    let trunc = |need: usize| Error::Truncated {
        what,
        offset: pos,
        need,
        have: buf.len().saturating_sub(pos),
    };
    let Some(&first) = buf.get(pos) else {
        return Err(trunc(1));
    };
    let rest = buf.get(pos + 1..).unwrap_or(&[]);
    let nonmin = Error::NonMinimalVarNumber { what, offset: pos };
    match first {
        0..=252 => Ok((first as u64, pos + 1)),
        253 => match *rest {
            [a, b, ..] => {
                let v = u16::from_be_bytes([a, b]) as u64;
                if v < 253 {
                    Err(nonmin)
                } else {
                    Ok((v, pos + 3))
                }
            }
            _ => Err(trunc(3)),
        },
        254 => match *rest {
            [a, b, c, d, ..] => {
                let v = u32::from_be_bytes([a, b, c, d]) as u64;
                if v <= 0xFFFF {
                    Err(nonmin)
                } else {
                    Ok((v, pos + 5))
                }
            }
            _ => Err(trunc(5)),
        },
        255 => match *rest {
            [a, b, c, d, e, f, g, h, ..] => {
                let v = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                if v <= 0xFFFF_FFFF {
                    Err(nonmin)
                } else {
                    Ok((v, pos + 9))
                }
            }
            _ => Err(trunc(9)),
        },
    }
}

/// Parses the TLV header at `pos` and checks that the value fits in `buf`. Returns
/// `(type, value_start, value_end)` as offsets into `buf`.
#[inline(always)]
pub(crate) fn parse_tlv(buf: &[u8], pos: usize, what: &'static str) -> Result<(u32, usize, usize)> {
    let (typ, p) = var_number_at(buf, pos, what)?;
    if typ == 0 || typ > u32::MAX as u64 {
        return Err(Error::InvalidType { typ, offset: pos });
    }
    let (len, vs) = var_number_at(buf, p, what)?;
    let avail = buf.len() - vs;
    if len > avail as u64 {
        return Err(Error::Truncated {
            what,
            offset: pos,
            need: usize::try_from(len).unwrap_or(usize::MAX),
            have: avail,
        });
    }
    Ok((typ as u32, vs, vs + len as usize))
}

/// One decoded element: its TLV-TYPE, its TLV-VALUE and its whole wire encoding, both slices of
/// the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// TLV-TYPE.
    pub typ: u32,
    /// TLV-VALUE.
    pub value: Bytes,
    /// The whole element (TLV-TYPE, TLV-LENGTH and TLV-VALUE).
    pub wire: Bytes,
    /// Offset of the element from the start of the outermost buffer being read.
    pub offset: usize,
}

impl Element {
    /// Decodes exactly one element from `wire`, rejecting trailing bytes.
    pub fn decode(wire: Bytes) -> Result<Element> {
        let mut r = TlvReader::new(wire);
        let e = r.read()?;
        r.finish("element")?;
        Ok(e)
    }

    /// Offset of the TLV-VALUE from the start of the outermost buffer.
    pub fn value_offset(&self) -> usize {
        self.offset + (self.wire.len() - self.value.len())
    }

    /// A reader over the children of this element, reporting offsets in the outer buffer.
    pub fn reader(&self) -> TlvReader {
        TlvReader::with_base(self.value.clone(), self.value_offset())
    }

    /// The value as a NonNegativeInteger.
    pub fn nni(&self) -> Result<u64> {
        decode_nni(&self.value, self.typ, self.offset)
    }
}

/// A bounds-checked reader of consecutive elements in one buffer.
#[derive(Debug, Clone)]
pub struct TlvReader {
    buf: Bytes,
    pos: usize,
    base: usize,
}

impl TlvReader {
    /// Reads elements from the start of `buf`.
    pub fn new(buf: Bytes) -> TlvReader {
        TlvReader::with_base(buf, 0)
    }

    /// Reads elements from `buf`, reporting offsets as `base + position in buf`.
    pub fn with_base(buf: Bytes, base: usize) -> TlvReader {
        TlvReader { buf, pos: 0, base }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the next element in the outermost buffer.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// TLV-TYPE of the next element without consuming it, `None` at the end.
    pub fn peek_type(&self) -> Result<Option<u32>> {
        if self.is_empty() {
            return Ok(None);
        }
        let (typ, _) =
            var_number_at(&self.buf, self.pos, "TLV-TYPE").map_err(|e| self.rebase(e))?;
        if typ == 0 || typ > u32::MAX as u64 {
            return Err(Error::InvalidType {
                typ,
                offset: self.offset(),
            });
        }
        Ok(Some(typ as u32))
    }

    /// Reads the next element.
    pub fn read(&mut self) -> Result<Element> {
        let start = self.pos;
        let (typ, vs, ve) = parse_tlv(&self.buf, start, "element").map_err(|e| self.rebase(e))?;
        self.pos = ve;
        Ok(Element {
            typ,
            value: self.buf.slice(vs..ve),
            wire: self.buf.slice(start..ve),
            offset: self.base + start,
        })
    }

    /// Reads the next element and checks its type.
    pub fn expect(&mut self, typ: u32, what: &'static str) -> Result<Element> {
        let offset = self.offset();
        let e = self.read()?;
        if e.typ != typ {
            return Err(Error::UnexpectedType {
                what,
                expected: typ,
                found: e.typ,
                offset,
            });
        }
        Ok(e)
    }

    /// Fails with [`Error::TrailingBytes`] unless every byte has been consumed.
    pub fn finish(&self, what: &'static str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                what,
                count: self.remaining(),
                offset: self.offset(),
            })
        }
    }

    fn rebase(&self, e: Error) -> Error {
        rebase(e, self.base)
    }
}

impl Iterator for TlvReader {
    type Item = Result<Element>;

    fn next(&mut self) -> Option<Result<Element>> {
        if self.is_empty() {
            return None;
        }
        let r = self.read();
        if r.is_err() {
            // Stop after the first error: the rest of the buffer cannot be framed.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

/// Shifts the offset carried by an error by `base`.
pub(crate) fn rebase(e: Error, base: usize) -> Error {
    if base == 0 {
        return e;
    }
    match e {
        Error::Truncated {
            what,
            offset,
            need,
            have,
        } => Error::Truncated {
            what,
            offset: offset + base,
            need,
            have,
        },
        Error::NonMinimalVarNumber { what, offset } => Error::NonMinimalVarNumber {
            what,
            offset: offset + base,
        },
        Error::InvalidType { typ, offset } => Error::InvalidType {
            typ,
            offset: offset + base,
        },
        Error::BadNni { typ, len, offset } => Error::BadNni {
            typ,
            len,
            offset: offset + base,
        },
        Error::UnexpectedType {
            what,
            expected,
            found,
            offset,
        } => Error::UnexpectedType {
            what,
            expected,
            found,
            offset: offset + base,
        },
        Error::UnknownCritical {
            container,
            typ,
            offset,
        } => Error::UnknownCritical {
            container,
            typ,
            offset: offset + base,
        },
        Error::OutOfOrder {
            container,
            typ,
            offset,
        } => Error::OutOfOrder {
            container,
            typ,
            offset: offset + base,
        },
        Error::TrailingBytes {
            what,
            count,
            offset,
        } => Error::TrailingBytes {
            what,
            count,
            offset: offset + base,
        },
        Error::TooDeep { max, offset } => Error::TooDeep {
            max,
            offset: offset + base,
        },
        Error::Invalid {
            what,
            reason,
            offset,
        } => Error::Invalid {
            what,
            reason,
            offset: offset + base,
        },
        other => other,
    }
}

/// Length of the first complete element at the start of a stream buffer, `None` if more bytes
/// are needed. Stream faces carry back-to-back packets without extra framing, so this is the
/// whole framing rule. Elements longer than [`MAX_PACKET_SIZE`] are rejected before they are
/// buffered.
pub fn split_first_tlv(buf: &[u8]) -> Result<Option<usize>> {
    let (typ, p) = match var_number_at(buf, 0, "TLV-TYPE") {
        Ok(v) => v,
        Err(Error::Truncated { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if typ == 0 || typ > u32::MAX as u64 {
        return Err(Error::InvalidType { typ, offset: 0 });
    }
    let (len, vs) = match var_number_at(buf, p, "TLV-LENGTH") {
        Ok(v) => v,
        Err(Error::Truncated { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let total = (vs as u64).saturating_add(len);
    if total > MAX_PACKET_SIZE as u64 {
        return Err(Error::TooLarge {
            len: usize::try_from(total).unwrap_or(usize::MAX),
            max: MAX_PACKET_SIZE,
        });
    }
    let total = total as usize;
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::BytesMut;

    fn enc(v: u64) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_var_number(&mut b, v);
        b.to_vec()
    }

    #[test]
    fn var_number_golden() {
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(252), [252]);
        assert_eq!(enc(253), [0xFD, 0, 253]);
        assert_eq!(enc(1024), [0xFD, 0x04, 0x00]);
        assert_eq!(enc(65536), [0xFE, 0, 1, 0, 0]);
        assert_eq!(enc(1 << 32), [0xFF, 0, 0, 0, 1, 0, 0, 0, 0]);
        for v in [
            0u64,
            252,
            253,
            65535,
            65536,
            u32::MAX as u64,
            1 << 32,
            u64::MAX,
        ] {
            let e = enc(v);
            assert_eq!(e.len(), var_number_len(v));
            assert_eq!(var_number_at(&e, 0, "t").unwrap(), (v, e.len()));
        }
    }

    #[test]
    fn var_number_rejects_non_minimal() {
        for bad in [
            &[0xFD, 0, 252][..],
            &[0xFE, 0, 0, 0xFF, 0xFF],
            &[0xFF, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            assert!(matches!(
                var_number_at(bad, 0, "t"),
                Err(Error::NonMinimalVarNumber { .. })
            ));
        }
        assert!(matches!(
            var_number_at(&[0xFD, 1], 0, "t"),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn public_var_number_reader() {
        assert_eq!(
            read_var_number(&[0xFD, 0x01, 0x00, 0x77]).unwrap(),
            (256, 3)
        );
        assert_eq!(read_var_number(&[7]).unwrap(), (7, 1));
        for bad in [&[0xFD, 0, 0xFC][..], &[0xFE, 0, 0, 1, 0]] {
            assert!(matches!(
                read_var_number(bad),
                Err(Error::NonMinimalVarNumber { .. })
            ));
        }
        for short in [&[][..], &[0xFD, 1], &[0xFE, 0, 1, 0], &[0xFF, 0, 0, 0, 1]] {
            assert!(matches!(
                read_var_number(short),
                Err(Error::Truncated { .. })
            ));
        }
        for first in 0..=255u8 {
            let v: u64 = match first {
                0..=252 => u64::from(first),
                253 => 253,
                254 => 1 << 16,
                255 => 1 << 32,
            };
            assert_eq!(var_number_width(first), var_number_len(v));
        }
    }

    #[test]
    fn tlv_header_reader() {
        assert_eq!(
            read_tlv_header(&[9, 9, 0x08, 2, 1, 2], 2).unwrap(),
            (8, 4, 6)
        );
        assert!(matches!(
            read_tlv_header(&[0x08, 3, 1, 2], 0),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            read_tlv_header(&[0x00, 0], 0),
            Err(Error::InvalidType { .. })
        ));
        assert!(matches!(
            read_tlv_header(&[0xFD, 0, 8, 0], 0),
            Err(Error::NonMinimalVarNumber { .. })
        ));
        // Writers into a plain Vec produce the same octets as into a BytesMut.
        let mut v: Vec<u8> = Vec::new();
        encode_nni_tlv(&mut v, 300, 65536);
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, 300, 65536);
        assert_eq!(v, b.to_vec());
        assert_eq!(v, [0xFD, 0x01, 0x2C, 4, 0, 1, 0, 0]);
    }

    #[test]
    fn nni_golden() {
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, 12, 0);
        encode_nni_tlv(&mut b, 12, 256);
        encode_nni_tlv(&mut b, 12, 65536);
        encode_nni_tlv(&mut b, 12, 1 << 32);
        assert_eq!(
            b.to_vec(),
            [
                12, 1, 0, 12, 2, 1, 0, 12, 4, 0, 1, 0, 0, 12, 8, 0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
        assert!(decode_nni(&[1, 2, 3], 12, 0).is_err());
        assert!(decode_nni(&[], 12, 0).is_err());
        assert_eq!(decode_nni(&[0, 0, 1, 0], 12, 0).unwrap(), 256);
    }

    #[test]
    fn reader_and_offsets() {
        let wire = Bytes::from_static(&[7, 3, 8, 1, b'a', 10, 4, 1, 2, 3, 4]);
        let mut r = TlvReader::new(wire);
        let name = r.read().unwrap();
        assert_eq!(name.typ, 7);
        let mut inner = name.reader();
        let c = inner.read().unwrap();
        assert_eq!((c.typ, c.offset, &c.value[..]), (8, 2, &b"a"[..]));
        assert!(inner.is_empty());
        let n = r.expect(10, "Nonce").unwrap();
        assert_eq!(n.offset, 5);
        r.finish("x").unwrap();
        let mut r = TlvReader::with_base(Bytes::from_static(&[7, 5, 8]), 100);
        assert_eq!(
            r.read(),
            Err(Error::Truncated {
                what: "element",
                offset: 100,
                need: 5,
                have: 1
            })
        );
        assert!(matches!(
            Element::decode(Bytes::from_static(&[0, 0])),
            Err(Error::InvalidType { typ: 0, .. })
        ));
        assert!(matches!(
            Element::decode(Bytes::from_static(&[8, 0, 1])),
            Err(Error::TrailingBytes {
                count: 1,
                offset: 2,
                ..
            })
        ));
    }

    #[test]
    fn split_first() {
        assert_eq!(split_first_tlv(&[]).unwrap(), None);
        assert_eq!(split_first_tlv(&[5]).unwrap(), None);
        assert_eq!(split_first_tlv(&[5, 0xFD, 0x01]).unwrap(), None);
        assert_eq!(split_first_tlv(&[5, 2, 1]).unwrap(), None);
        assert_eq!(split_first_tlv(&[5, 2, 1, 2, 6]).unwrap(), Some(4));
        assert!(split_first_tlv(&[5, 0xFD, 0x30, 0x00]).is_err());
        assert!(split_first_tlv(&[5, 0xFD, 0x00, 0x01]).is_err());
    }
}
