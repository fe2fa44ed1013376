//! Borrowed views of TLV elements: iterate over the elements of a `&[u8]` without taking a
//! [`bytes::Bytes`] handle per element or copying anything.
//!
//! These sit beside the owned decoders ([`crate::TlvReader`], [`crate::Interest`],
//! [`crate::Data`], the [`crate::mgmt`] records) for code that only looks at a few fields of a
//! packet and keeps none of them, such as a forwarder scanning LpPacket headers or a tool
//! printing a status dataset. Framing follows the same rules as the owned decoders: shortest
//! VAR-NUMBERs, TLV-TYPE in `1..=u32::MAX`, values within the buffer.

use crate::encoding::{decode_nni, read_tlv_header, rebase};
use crate::{Error, Result};

/// One element borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementRef<'a> {
    /// TLV-TYPE.
    pub typ: u32,
    /// TLV-VALUE.
    pub value: &'a [u8],
    /// The whole element (TLV-TYPE, TLV-LENGTH and TLV-VALUE).
    pub wire: &'a [u8],
    /// Offset of the element in the buffer it was read from (plus the iterator's base).
    pub offset: usize,
}

impl<'a> ElementRef<'a> {
    /// The value as a NonNegativeInteger.
    #[inline]
    pub fn nni(&self) -> Result<u64> {
        decode_nni(self.value, self.typ, self.offset)
    }

    /// The children of this element.
    #[inline]
    pub fn elements(&self) -> Elements<'a> {
        Elements::with_base(
            self.value,
            self.offset + (self.wire.len() - self.value.len()),
        )
    }

    /// The first child of type `typ`, if the value frames cleanly up to it.
    pub fn find(&self, typ: u32) -> Option<ElementRef<'a>> {
        self.elements().find_type(typ)
    }
}

/// Iterator over consecutive elements of a buffer. After the first framing error it yields that
/// error and then ends: the rest of the buffer cannot be framed.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// The elements of `buf`, in order.
#[inline]
pub fn elements(buf: &[u8]) -> Elements<'_> {
    Elements::with_base(buf, 0)
}

impl<'a> Elements<'a> {
    /// The elements of `buf`, reporting offsets as `base + position in buf`.
    #[inline]
    pub fn with_base(buf: &'a [u8], base: usize) -> Elements<'a> {
        Elements { buf, pos: 0, base }
    }

    /// Bytes not yet framed.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The first element of type `typ`; `None` if there is none or framing fails before it.
    pub fn find_type(mut self, typ: u32) -> Option<ElementRef<'a>> {
        self.find_map(|e| e.ok().filter(|e| e.typ == typ))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<ElementRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Result<ElementRef<'a>>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        match read_tlv_header(self.buf, start) {
            Ok((typ, vs, ve)) => {
                self.pos = ve;
                Some(Ok(ElementRef {
                    typ,
                    value: &self.buf[vs..ve],
                    wire: &self.buf[start..ve],
                    offset: self.base + start,
                }))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(rebase(e, self.base)))
            }
        }
    }
}

/// Exactly one element filling `wire`.
pub fn single(wire: &[u8]) -> Result<ElementRef<'_>> {
    let (typ, vs, ve) = read_tlv_header(wire, 0)?;
    if ve != wire.len() {
        return Err(Error::TrailingBytes {
            what: "element",
            count: wire.len() - ve,
            offset: ve,
        });
    }
    Ok(ElementRef {
        typ,
        value: &wire[vs..ve],
        wire,
        offset: 0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn iterates_nested_elements_with_offsets() {
        // 0x64 { 0x62 { aa bb } 0x50 { 05 00 } }
        let w = [0x64, 0x08, 0x62, 0x02, 0xAA, 0xBB, 0x50, 0x02, 0x05, 0x00];
        let top = single(&w).unwrap();
        assert_eq!(top.typ, 0x64);
        let kids: Vec<_> = top.elements().map(Result::unwrap).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(
            (kids[0].typ, kids[0].value, kids[0].offset),
            (0x62, &[0xAA, 0xBB][..], 2)
        );
        assert_eq!(
            (kids[1].typ, kids[1].wire, kids[1].offset),
            (0x50, &w[6..], 6)
        );
        assert_eq!(top.find(0x50).unwrap().value, &[0x05, 0x00]);
        assert!(top.find(0x51).is_none());
    }

    #[test]
    fn stops_after_a_framing_error() {
        // A good element, then one whose length runs past the end.
        let w = [0x08, 0x01, 0x61, 0x08, 0x05, 0x00];
        let mut it = elements(&w);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(Error::Truncated { offset: 3, .. }))
        ));
        assert!(it.next().is_none());
        // Non-minimal TLV-LENGTH.
        assert!(matches!(
            elements(&[0x08, 0xFD, 0x00, 0x01, 0x61]).next(),
            Some(Err(Error::NonMinimalVarNumber { .. }))
        ));
        // TLV-TYPE 0 is invalid.
        assert!(matches!(
            elements(&[0x00, 0x00]).next(),
            Some(Err(Error::InvalidType { .. }))
        ));
        assert!(matches!(
            single(&[0x08, 0x00, 0x00]),
            Err(Error::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn nni_of_a_view() {
        let w = [0x6A, 0x02, 0x01, 0x00];
        assert_eq!(single(&w).unwrap().nni().unwrap(), 256);
        assert!(single(&[0x6A, 0x03, 0, 0, 1]).unwrap().nni().is_err());
    }
}
