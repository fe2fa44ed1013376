//! The rules table every container decoder applies (`tlv.rst`): known elements in their fixed
//! order, at most once unless repeatable; unknown elements skipped when non-critical and
//! rejected when critical.

use crate::encoding::parse_tlv;
use crate::{Error, Result, tt};

/// One child element: TLV-TYPE, offset of the TLV, value start and end (all in the buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child {
    pub(crate) typ: u32,
    pub(crate) start: usize,
    pub(crate) vs: usize,
    pub(crate) ve: usize,
}

/// Walks the children of one container whose TLV-VALUE is `buf[pos..end]`.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    container: &'static str,
    rank: u32,
}

impl<'a> Fields<'a> {
    #[inline]
    pub(crate) fn new(
        buf: &'a [u8],
        start: usize,
        end: usize,
        container: &'static str,
    ) -> Fields<'a> {
        Fields {
            buf: buf.get(..end).unwrap_or(&[]),
            pos: start,
            container,
            rank: 0,
        }
    }

    /// The next child, or `None` at the end of the container.
    #[inline]
    pub(crate) fn next_child(&mut self) -> Result<Option<Child>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (typ, vs, ve) = parse_tlv(self.buf, start, self.container)?;
        self.pos = ve;
        Ok(Some(Child { typ, start, vs, ve }))
    }

    /// Checks that a known element with order `rank` comes after every element seen so far
    /// (equal rank is allowed only for repeatable elements, via [`Fields::repeat`]).
    #[inline]
    pub(crate) fn order(&mut self, c: &Child, rank: u32) -> Result<()> {
        if rank <= self.rank {
            return Err(Error::OutOfOrder {
                container: self.container,
                typ: c.typ,
                offset: c.start,
            });
        }
        self.rank = rank;
        Ok(())
    }

    /// Like [`Fields::order`] but allows the same element again.
    #[inline]
    pub(crate) fn repeat(&mut self, c: &Child, rank: u32) -> Result<()> {
        if rank < self.rank {
            return Err(Error::OutOfOrder {
                container: self.container,
                typ: c.typ,
                offset: c.start,
            });
        }
        self.rank = rank;
        Ok(())
    }

    /// Skips an unrecognized element if the critical-bit rule allows it.
    #[inline]
    pub(crate) fn unknown(&self, c: &Child) -> Result<()> {
        if tt::is_critical(c.typ) {
            Err(Error::UnknownCritical {
                container: self.container,
                typ: c.typ,
                offset: c.start,
            })
        } else {
            Ok(())
        }
    }

    /// Value bytes of a child.
    #[inline]
    pub(crate) fn value(&self, c: &Child) -> &'a [u8] {
        self.buf.get(c.vs..c.ve).unwrap_or(&[])
    }

    /// The child's value as a NonNegativeInteger.
    #[inline]
    pub(crate) fn nni(&self, c: &Child) -> Result<u64> {
        crate::encoding::decode_nni(self.value(c), c.typ, c.start)
    }
}

/// Decodes the outer TLV of `buf`, checking type, size cap and trailing bytes. Returns the value
/// range.
#[inline]
pub(crate) fn outer(buf: &[u8], typ: u32, what: &'static str) -> Result<(usize, usize)> {
    if buf.len() > crate::MAX_PACKET_SIZE {
        return Err(Error::TooLarge {
            len: buf.len(),
            max: crate::MAX_PACKET_SIZE,
        });
    }
    let (t, vs, ve) = parse_tlv(buf, 0, what)?;
    if t != typ {
        return Err(Error::UnexpectedType {
            what,
            expected: typ,
            found: t,
            offset: 0,
        });
    }
    if ve != buf.len() {
        return Err(Error::TrailingBytes {
            what,
            count: buf.len() - ve,
            offset: ve,
        });
    }
    Ok((vs, ve))
}
