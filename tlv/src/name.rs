//! Names and name components (`name.rst`): typed components, canonical order, the NDN URI form
//! and per-prefix hashes computed once at decode.
//!
//! A [`Name`] is one shared buffer holding the Name TLV-VALUE plus, inline, the end offset of
//! each component and the hash of each prefix; names up to [`INLINE_COMPONENTS`] components
//! never touch the heap beyond the packet buffer they were decoded from.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoding::{decode_nni, encode_nni, encode_tl, parse_tlv, tl_len, tlv_len};
use crate::{Error, Result, tt};

/// Components whose offsets and prefix hashes are stored without a heap allocation.
pub const INLINE_COMPONENTS: usize = 16;

/// Largest TLV-TYPE a name component may have (`name.rst`).
pub const MAX_COMPONENT_TYPE: u32 = 65535;

/// One name component: a TLV-TYPE and a value sliced from a shared buffer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Component {
    typ: u32,
    value: Bytes,
}

impl Component {
    /// A component of any type, validating the type range and fixed digest lengths.
    pub fn new(typ: u32, value: impl Into<Bytes>) -> Result<Component> {
        let value = value.into();
        check_component(typ, value.len(), 0)?;
        Ok(Component { typ, value })
    }

    /// A GenericNameComponent.
    pub fn generic(value: impl Into<Bytes>) -> Component {
        Component {
            typ: tt::GENERIC_COMPONENT,
            value: value.into(),
        }
    }

    /// A KeywordNameComponent.
    pub fn keyword(value: impl Into<Bytes>) -> Component {
        Component {
            typ: tt::KEYWORD_COMPONENT,
            value: value.into(),
        }
    }

    /// A component of type `typ` whose value is the NonNegativeInteger `v`.
    pub fn number(typ: u32, v: u64) -> Component {
        let mut b = BytesMut::with_capacity(8);
        encode_nni(&mut b, v);
        Component {
            typ,
            value: b.freeze(),
        }
    }

    /// A SegmentNameComponent (`seg=`).
    pub fn segment(v: u64) -> Component {
        Component::number(tt::SEGMENT_COMPONENT, v)
    }

    /// A ByteOffsetNameComponent (`off=`).
    pub fn byte_offset(v: u64) -> Component {
        Component::number(tt::BYTE_OFFSET_COMPONENT, v)
    }

    /// A VersionNameComponent (`v=`).
    pub fn version(v: u64) -> Component {
        Component::number(tt::VERSION_COMPONENT, v)
    }

    /// A TimestampNameComponent (`t=`, microseconds since the Unix epoch).
    pub fn timestamp(v: u64) -> Component {
        Component::number(tt::TIMESTAMP_COMPONENT, v)
    }

    /// A SequenceNumNameComponent (`seq=`).
    pub fn sequence_num(v: u64) -> Component {
        Component::number(tt::SEQUENCE_NUM_COMPONENT, v)
    }

    /// An ImplicitSha256DigestComponent (`sha256digest=`).
    pub fn implicit_sha256_digest(d: [u8; 32]) -> Component {
        Component {
            typ: tt::IMPLICIT_SHA256_DIGEST_COMPONENT,
            value: Bytes::copy_from_slice(&d),
        }
    }

    /// A ParametersSha256DigestComponent (`params-sha256=`).
    pub fn params_sha256_digest(d: [u8; 32]) -> Component {
        Component {
            typ: tt::PARAMETERS_SHA256_DIGEST_COMPONENT,
            value: Bytes::copy_from_slice(&d),
        }
    }

    /// Decodes one whole component TLV.
    pub fn decode(wire: Bytes) -> Result<Component> {
        let (typ, vs, ve) = parse_tlv(&wire, 0, "name component")?;
        if ve != wire.len() {
            return Err(Error::TrailingBytes {
                what: "name component",
                count: wire.len() - ve,
                offset: ve,
            });
        }
        check_component(typ, ve - vs, 0)?;
        Ok(Component {
            typ,
            value: wire.slice(vs..ve),
        })
    }

    /// Parses one component in URI form (no `/`).
    pub fn from_uri(s: &str) -> Result<Component> {
        let mut b = BytesMut::new();
        parse_component_uri(s, 0, &mut b)?;
        Component::decode(b.freeze())
    }

    /// TLV-TYPE.
    pub fn typ(&self) -> u32 {
        self.typ
    }

    /// TLV-VALUE.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// TLV-VALUE as a shared buffer.
    pub fn value_bytes(&self) -> &Bytes {
        &self.value
    }

    /// The value as a NonNegativeInteger, if it is one.
    pub fn as_number(&self) -> Option<u64> {
        decode_nni(&self.value, self.typ, 0).ok()
    }

    fn as_typed(&self, typ: u32) -> Option<u64> {
        if self.typ == typ {
            self.as_number()
        } else {
            None
        }
    }

    /// The segment number if this is a SegmentNameComponent.
    pub fn as_segment(&self) -> Option<u64> {
        self.as_typed(tt::SEGMENT_COMPONENT)
    }

    /// The byte offset if this is a ByteOffsetNameComponent.
    pub fn as_byte_offset(&self) -> Option<u64> {
        self.as_typed(tt::BYTE_OFFSET_COMPONENT)
    }

    /// The version if this is a VersionNameComponent.
    pub fn as_version(&self) -> Option<u64> {
        self.as_typed(tt::VERSION_COMPONENT)
    }

    /// The timestamp if this is a TimestampNameComponent.
    pub fn as_timestamp(&self) -> Option<u64> {
        self.as_typed(tt::TIMESTAMP_COMPONENT)
    }

    /// The sequence number if this is a SequenceNumNameComponent.
    pub fn as_sequence_num(&self) -> Option<u64> {
        self.as_typed(tt::SEQUENCE_NUM_COMPONENT)
    }

    /// Whether this is a GenericNameComponent.
    pub fn is_generic(&self) -> bool {
        self.typ == tt::GENERIC_COMPONENT
    }

    /// Whether this is a ParametersSha256DigestComponent.
    pub fn is_params_digest(&self) -> bool {
        self.typ == tt::PARAMETERS_SHA256_DIGEST_COMPONENT
    }

    /// Whether this is an ImplicitSha256DigestComponent.
    pub fn is_implicit_digest(&self) -> bool {
        self.typ == tt::IMPLICIT_SHA256_DIGEST_COMPONENT
    }

    /// Encoded length of the whole component TLV.
    pub fn encoded_len(&self) -> usize {
        tlv_len(self.typ, self.value.len())
    }

    /// Appends the component TLV.
    pub fn encode(&self, buf: &mut BytesMut) {
        encode_tl(buf, self.typ, self.value.len());
        buf.put_slice(&self.value);
    }

    /// The component TLV as bytes.
    pub fn to_wire(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b);
        b.freeze()
    }
}

impl Ord for Component {
    fn cmp(&self, other: &Self) -> Ordering {
        // Canonical order (`name.rst`): TLV-TYPE, then TLV-LENGTH, then the octets.
        self.typ
            .cmp(&other.typ)
            .then(self.value.len().cmp(&other.value.len()))
            .then_with(|| self.value[..].cmp(&other.value[..]))
    }
}

impl PartialOrd for Component {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_component_uri(f, self.typ, &self.value)
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Component({self})")
    }
}

impl FromStr for Component {
    type Err = Error;
    fn from_str(s: &str) -> Result<Component> {
        Component::from_uri(s)
    }
}

fn check_component(typ: u32, len: usize, offset: usize) -> Result<()> {
    if typ == 0 || typ > MAX_COMPONENT_TYPE {
        return Err(Error::Invalid {
            what: "name component",
            reason: "TLV-TYPE outside 1..=65535",
            offset,
        });
    }
    if (typ == tt::IMPLICIT_SHA256_DIGEST_COMPONENT
        || typ == tt::PARAMETERS_SHA256_DIGEST_COMPONENT)
        && len != 32
    {
        return Err(Error::Invalid {
            what: "digest name component",
            reason: "value must be 32 octets",
            offset,
        });
    }
    Ok(())
}

/// Component end offsets and prefix hashes; inline up to [`INLINE_COMPONENTS`] components
/// (with offsets below 64 KiB, always true for names decoded from packets).
#[derive(Clone)]
struct Index {
    len: usize,
    ends: [u16; INLINE_COMPONENTS],
    hashes: [u64; INLINE_COMPONENTS],
    // Holds every entry instead of the arrays once a name outgrows them.
    spill: Option<Box<Spill>>,
}

#[derive(Clone)]
struct Spill {
    ends: Vec<u32>,
    hashes: Vec<u64>,
}

impl Index {
    const EMPTY: Index = Index {
        len: 0,
        ends: [0; INLINE_COMPONENTS],
        hashes: [0; INLINE_COMPONENTS],
        spill: None,
    };

    #[inline]
    fn push(&mut self, end: usize, hash: u64) {
        let i = self.len;
        if self.spill.is_none() && i < INLINE_COMPONENTS && end <= u16::MAX as usize {
            if let (Some(e), Some(h)) = (self.ends.get_mut(i), self.hashes.get_mut(i)) {
                *e = end as u16;
                *h = hash;
            }
        } else {
            let spill = self.spill.get_or_insert_with(|| {
                let n = i.min(INLINE_COMPONENTS);
                Box::new(Spill {
                    ends: self.ends.iter().take(n).map(|&e| u32::from(e)).collect(),
                    hashes: self.hashes.iter().take(n).copied().collect(),
                })
            });
            spill.ends.push(end as u32);
            spill.hashes.push(hash);
        }
        self.len += 1;
    }

    #[inline]
    fn hashes(&self) -> &[u64] {
        match &self.spill {
            None => self.hashes.get(..self.len).unwrap_or(&[]),
            Some(s) => &s.hashes,
        }
    }

    #[inline]
    fn end(&self, i: usize) -> usize {
        match &self.spill {
            None => self.ends.get(i).copied().unwrap_or(0) as usize,
            Some(s) => s.ends.get(i).copied().unwrap_or(0) as usize,
        }
    }

    #[inline]
    fn hash(&self, i: usize) -> u64 {
        self.hashes().get(i).copied().unwrap_or(HASH_SEED)
    }

    fn truncated(&self, n: usize) -> Index {
        let mut ix = Index::EMPTY;
        for i in 0..n.min(self.len) {
            ix.push(self.end(i), self.hash(i));
        }
        ix
    }
}

/// Hash of the empty name; every prefix hash chains from it.
const HASH_SEED: u64 = 0x243F_6A88_85A3_08D3;
const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Loads up to 7 trailing octets as one word without a byte-wise copy (overlapping reads, as
/// wyhash does); the length is mixed in separately.
#[inline(always)]
fn load_tail(rest: &[u8]) -> u64 {
    let n = rest.len();
    if n >= 4 {
        let lo = rest
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b));
        let hi = rest.last_chunk::<4>().map_or(0, |b| u32::from_le_bytes(*b));
        (lo as u64) | ((hi as u64) << 32)
    } else if n > 0 {
        let a = rest.first().copied().unwrap_or(0) as u64;
        let b = rest.get(n / 2).copied().unwrap_or(0) as u64;
        let c = rest.last().copied().unwrap_or(0) as u64;
        a | (b << 8) | (c << 16)
    } else {
        0
    }
}

/// Chains the hash of one component's whole TLV onto the hash of the prefix before it. Stable
/// across runs and machines so it can be stored and compared; the component TLV carries its own
/// length, so boundaries are unambiguous.
#[inline]
fn chain_hash(prev: u64, comp_wire: &[u8]) -> u64 {
    let mut h = prev ^ K2;
    let mut chunks = comp_wire.chunks_exact(8);
    for c in &mut chunks {
        let w = c.first_chunk::<8>().map_or(0, |b| u64::from_le_bytes(*b));
        h = fold_mul(h ^ w, K1);
    }
    let rest = chunks.remainder();
    h = fold_mul(h ^ load_tail(rest) ^ ((rest.len() as u64) << 59), K1);
    fold_mul(h, K2)
}

/// An NDN name: a sequence of components kept as one slice of the packet it came from.
#[derive(Clone)]
pub struct Name {
    value: Bytes,
    index: Index,
}

impl Default for Name {
    fn default() -> Self {
        Name::new()
    }
}

impl Name {
    /// The empty name `/`.
    pub fn new() -> Name {
        Name {
            value: Bytes::new(),
            index: Index::EMPTY,
        }
    }

    /// Parses a name from its NDN URI (`/a/b`, `ndn:/a`, typed components like `seg=3`).
    pub fn from_uri(uri: &str) -> Result<Name> {
        let mut s = uri;
        let mut at = 0;
        if let Some(rest) = s.strip_prefix("ndn:") {
            s = rest;
            at = 4;
            if let Some(rest) = s.strip_prefix("//") {
                // Skip an authority part; NDN names have none, but ndn: URIs may carry one.
                let skip = rest.find('/').unwrap_or(rest.len());
                s = rest.get(skip..).unwrap_or("");
                at += 2 + skip;
            }
        }
        if let Some(rest) = s.strip_prefix('/') {
            s = rest;
            at += 1;
        }
        let mut buf = BytesMut::with_capacity(s.len() + 8);
        if !s.is_empty() {
            let s = s.strip_suffix('/').unwrap_or(s);
            for part in s.split('/') {
                parse_component_uri(part, at, &mut buf)?;
                at += part.len() + 1;
            }
        }
        Name::from_value(buf.freeze())
    }

    /// Decodes a whole Name TLV (type 7), rejecting trailing bytes.
    pub fn decode(wire: Bytes) -> Result<Name> {
        let (typ, vs, ve) = parse_tlv(&wire, 0, "Name")?;
        if typ != tt::NAME {
            return Err(Error::UnexpectedType {
                what: "Name",
                expected: tt::NAME,
                found: typ,
                offset: 0,
            });
        }
        if ve != wire.len() {
            return Err(Error::TrailingBytes {
                what: "Name",
                count: wire.len() - ve,
                offset: ve,
            });
        }
        Name::from_range(&wire, vs, ve)
    }

    /// Decodes a Name from its TLV-VALUE (the concatenated component TLVs).
    pub fn from_value(value: Bytes) -> Result<Name> {
        let len = value.len();
        Name::from_range(&value, 0, len)
    }

    /// Decodes the Name whose TLV-VALUE is `buf[start..end]`; error offsets are in `buf`.
    pub(crate) fn from_range(buf: &Bytes, start: usize, end: usize) -> Result<Name> {
        let mut n = Name::new();
        n.decode_into(buf, start, end)?;
        Ok(n)
    }

    /// Decodes in place (a decoded packet's Name is large enough that moving it shows up in
    /// profiles). `self` must be empty.
    #[inline]
    pub(crate) fn decode_into(&mut self, buf: &Bytes, start: usize, end: usize) -> Result<()> {
        let region = buf.get(..end).unwrap_or(&[]);
        let mut pos = start;
        let mut h = HASH_SEED;
        while pos < end {
            let (typ, vs, ve) = parse_tlv(region, pos, "name component")?;
            check_component(typ, ve - vs, pos)?;
            h = chain_hash(h, region.get(pos..ve).unwrap_or(&[]));
            self.index.push(ve - start, h);
            pos = ve;
        }
        self.value = buf.slice(start..end);
        Ok(())
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether this is the empty name.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    fn bounds(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.index.len {
            return None;
        }
        let start = if i == 0 { 0 } else { self.index.end(i - 1) };
        Some((start, self.index.end(i)))
    }

    /// The whole TLV of component `i`, borrowed.
    pub fn component_wire(&self, i: usize) -> Option<&[u8]> {
        let (s, e) = self.bounds(i)?;
        self.value.get(s..e)
    }

    /// Component `i` (negative indices are not supported; use `len() - k`).
    pub fn get(&self, i: usize) -> Option<Component> {
        let (s, e) = self.bounds(i)?;
        let wire = self.value.get(s..e)?;
        let (typ, vs, ve) = parse_tlv(wire, 0, "name component").ok()?;
        Some(Component {
            typ,
            value: self.value.slice(s + vs..s + ve),
        })
    }

    /// The last component.
    pub fn last(&self) -> Option<Component> {
        self.index.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// TLV-TYPE of component `i`, without slicing the buffer.
    pub fn component_type(&self, i: usize) -> Option<u32> {
        let wire = self.component_wire(i)?;
        parse_tlv(wire, 0, "name component").ok().map(|t| t.0)
    }

    /// Iterates over the components.
    pub fn iter(&self) -> impl Iterator<Item = Component> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Same as [`Name::iter`].
    pub fn components(&self) -> impl Iterator<Item = Component> + '_ {
        self.iter()
    }

    /// The first `n` components (all of them if `n >= len()`); shares this name's buffer.
    pub fn prefix(&self, n: usize) -> Name {
        if n >= self.index.len {
            return self.clone();
        }
        let end = if n == 0 { 0 } else { self.index.end(n - 1) };
        Name {
            value: self.value.slice(..end),
            index: self.index.truncated(n),
        }
    }

    /// This name with `c` appended.
    pub fn append(&self, c: Component) -> Name {
        let mut b = BytesMut::with_capacity(self.value.len() + c.encoded_len());
        b.put_slice(&self.value);
        let start = b.len();
        c.encode(&mut b);
        let mut index = self.index.clone();
        let h = chain_hash(self.prefix_hash(self.len()), b.get(start..).unwrap_or(&[]));
        index.push(b.len(), h);
        Name {
            value: b.freeze(),
            index,
        }
    }

    /// This name with a GenericNameComponent appended.
    pub fn append_generic(&self, value: impl Into<Bytes>) -> Name {
        self.append(Component::generic(value))
    }

    /// Whether every component of `self` is a leading component of `other`.
    pub fn is_prefix_of(&self, other: &Name) -> bool {
        // Both values are sequences of whole component TLVs, so a byte prefix is a component
        // prefix.
        self.len() <= other.len()
            && self.prefix_hash(self.len()) == other.prefix_hash(self.len())
            && other.value.starts_with(&self.value)
    }

    /// Encoded length of the whole Name TLV.
    pub fn encoded_len(&self) -> usize {
        tlv_len(tt::NAME, self.value.len())
    }

    /// Appends the whole Name TLV.
    pub fn encode(&self, buf: &mut BytesMut) {
        encode_tl(buf, tt::NAME, self.value.len());
        buf.put_slice(&self.value);
    }

    /// The whole Name TLV.
    pub fn to_wire(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b);
        b.freeze()
    }

    /// The Name TLV-VALUE (concatenated component TLVs).
    pub fn value_wire(&self) -> &[u8] {
        &self.value
    }

    /// The Name TLV-VALUE as a shared buffer.
    pub fn value_bytes(&self) -> &Bytes {
        &self.value
    }

    /// Hash of the first `n` components (clamped to `len()`), computed at decode: equal for equal
    /// prefixes, `prefix_hash(0)` is the same for every name.
    #[inline]
    pub fn prefix_hash(&self, n: usize) -> u64 {
        match n.min(self.index.len) {
            0 => HASH_SEED,
            n => self.index.hash(n - 1),
        }
    }

    /// `prefix_hash(1) ..= prefix_hash(len())`, in order.
    pub fn prefix_hashes(&self) -> &[u64] {
        self.index.hashes()
    }

    /// Iterator over `prefix_hash(1) ..= prefix_hash(len())`.
    pub fn prefix_hash_iter(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.prefix_hashes().iter().copied()
    }

    /// Index of the first ParametersSha256DigestComponent, if any.
    pub fn params_digest_index(&self) -> Option<usize> {
        (0..self.len())
            .find(|&i| self.component_type(i) == Some(tt::PARAMETERS_SHA256_DIGEST_COMPONENT))
    }

    /// Canonical URI.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Name {}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        // Memcmp of the TLV-VALUE equals the canonical component-wise order because VAR-NUMBERs
        // are shortest-form and therefore order-preserving.
        self.value[..].cmp(&other.value[..])
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.prefix_hash(self.len()));
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("/");
        }
        for i in 0..self.len() {
            let Some(wire) = self.component_wire(i) else {
                break;
            };
            let Ok((typ, vs, ve)) = parse_tlv(wire, 0, "name component") else {
                break;
            };
            f.write_str("/")?;
            write_component_uri(f, typ, wire.get(vs..ve).unwrap_or(&[]))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Name> {
        Name::from_uri(s)
    }
}

impl From<Component> for Name {
    fn from(c: Component) -> Name {
        Name::new().append(c)
    }
}

impl FromIterator<Component> for Name {
    fn from_iter<T: IntoIterator<Item = Component>>(iter: T) -> Name {
        let comps: Vec<Component> = iter.into_iter().collect();
        let mut b = BytesMut::with_capacity(comps.iter().map(Component::encoded_len).sum());
        for c in &comps {
            c.encode(&mut b);
        }
        Name::from_value(b.freeze()).unwrap_or_default()
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Writes the escaped value part of a component URI (`%XX` for reserved octets, three extra
/// periods for an all-period value).
fn write_escaped(f: &mut dyn fmt::Write, value: &[u8]) -> fmt::Result {
    if value.iter().all(|&b| b == b'.') {
        for _ in 0..value.len() + 3 {
            f.write_char('.')?;
        }
        return Ok(());
    }
    for &b in value {
        if is_unreserved(b) {
            f.write_char(b as char)?;
        } else {
            f.write_char('%')?;
            f.write_char(HEX_UPPER[(b >> 4) as usize] as char)?;
            f.write_char(HEX_UPPER[(b & 15) as usize] as char)?;
        }
    }
    Ok(())
}

fn write_hex(f: &mut dyn fmt::Write, value: &[u8]) -> fmt::Result {
    for &b in value {
        f.write_char(HEX_LOWER[(b >> 4) as usize] as char)?;
        f.write_char(HEX_LOWER[(b & 15) as usize] as char)?;
    }
    Ok(())
}

/// Alternate URI prefixes for typed components (naming conventions rev3).
const NUMERIC_PREFIXES: [(&str, u32); 5] = [
    ("seg", tt::SEGMENT_COMPONENT),
    ("off", tt::BYTE_OFFSET_COMPONENT),
    ("v", tt::VERSION_COMPONENT),
    ("t", tt::TIMESTAMP_COMPONENT),
    ("seq", tt::SEQUENCE_NUM_COMPONENT),
];

/// Writes one component in canonical URI form.
pub(crate) fn write_component_uri(f: &mut dyn fmt::Write, typ: u32, value: &[u8]) -> fmt::Result {
    match typ {
        tt::GENERIC_COMPONENT => write_escaped(f, value),
        tt::IMPLICIT_SHA256_DIGEST_COMPONENT if value.len() == 32 => {
            f.write_str("sha256digest=")?;
            write_hex(f, value)
        }
        tt::PARAMETERS_SHA256_DIGEST_COMPONENT if value.len() == 32 => {
            f.write_str("params-sha256=")?;
            write_hex(f, value)
        }
        _ => {
            // Only a shortest-form number prints as `seg=` etc.: `seq=109` must parse back to
            // the same octets, so a padded value keeps the numeric-type form.
            if let Some((p, _)) = NUMERIC_PREFIXES.iter().find(|(_, t)| *t == typ)
                && let Ok(n) = decode_nni(value, typ, 0)
                && value.len() == crate::encoding::nni_len(n)
            {
                return write!(f, "{p}={n}");
            }
            write!(f, "{typ}=")?;
            write_escaped(f, value)
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn bad(reason: &'static str, at: usize) -> Error {
    Error::BadUri { reason, at }
}

/// Percent-decodes `s` (after the `...` rule) into `out`.
fn unescape(s: &str, at: usize, out: &mut Vec<u8>) -> Result<()> {
    let b = s.as_bytes();
    if b.iter().all(|&c| c == b'.') {
        if b.len() < 3 {
            return Err(bad(
                "a component of only periods needs three extra periods",
                at,
            ));
        }
        out.extend(std::iter::repeat_n(b'.', b.len() - 3));
        return Ok(());
    }
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_val);
            let lo = b.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(bad("'%' must be followed by two hex digits", at + i)),
            }
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(())
}

fn parse_decimal(s: &str, at: usize) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a decimal number", at));
    }
    s.parse::<u64>().map_err(|_| bad("number too large", at))
}

/// Parses one URI component (between slashes) and appends its TLV to `out`.
fn parse_component_uri(s: &str, at: usize, out: &mut BytesMut) -> Result<()> {
    if s.is_empty() {
        return Err(bad(
            "empty component (write the empty component as ...)",
            at,
        ));
    }
    let mut value = Vec::new();
    let typ = match s.split_once('=') {
        None => {
            unescape(s, at, &mut value)?;
            tt::GENERIC_COMPONENT
        }
        Some((prefix, rest)) => {
            let vat = at + prefix.len() + 1;
            if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) {
                let typ = prefix
                    .parse::<u32>()
                    .ok()
                    .filter(|t| (1..=MAX_COMPONENT_TYPE).contains(t))
                    .ok_or(bad("component TLV-TYPE must be in 1..=65535", at))?;
                unescape(rest, vat, &mut value)?;
                typ
            } else if let Some((_, typ)) = NUMERIC_PREFIXES.iter().find(|(p, _)| *p == prefix) {
                let n = parse_decimal(rest, vat)?;
                let mut b = BytesMut::with_capacity(8);
                encode_nni(&mut b, n);
                value.extend_from_slice(&b);
                *typ
            } else if prefix == "sha256digest" || prefix == "params-sha256" {
                let hb = rest.as_bytes();
                if hb.len() != 64 {
                    return Err(bad("digest must be 64 hex digits", vat));
                }
                for (k, pair) in hb.chunks_exact(2).enumerate() {
                    match (
                        pair.first().copied().and_then(hex_val),
                        pair.get(1).copied().and_then(hex_val),
                    ) {
                        (Some(h), Some(l)) => value.push(h << 4 | l),
                        _ => return Err(bad("digest must be 64 hex digits", vat + 2 * k)),
                    }
                }
                if prefix == "sha256digest" {
                    tt::IMPLICIT_SHA256_DIGEST_COMPONENT
                } else {
                    tt::PARAMETERS_SHA256_DIGEST_COMPONENT
                }
            } else {
                return Err(bad("unknown component type prefix before '='", at));
            }
        }
    };
    check_component(typ, value.len(), 0)
        .map_err(|_| bad("digest component must be 32 octets", at))?;
    out.reserve(tl_len(typ, value.len()) + value.len());
    encode_tl(out, typ, value.len());
    out.put_slice(&value);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    #[test]
    fn uri_round_trip_and_wire() {
        let name = n("/localhost/nfd/rib/register");
        assert_eq!(name.len(), 4);
        assert_eq!(name.to_string(), "/localhost/nfd/rib/register");
        assert_eq!(
            hex(&name.to_wire()),
            "071f08096c6f63616c686f737408036e6664080372696208087265676973746572"
        );
        assert_eq!(Name::decode(name.to_wire()).unwrap(), name);
        assert_eq!(n("ndn:/a/b"), n("/a/b"));
        assert_eq!(n("/a/b/"), n("/a/b"));
        assert_eq!(n("/").len(), 0);
        assert_eq!(n("").len(), 0);
        assert_eq!(Name::new().to_string(), "/");
    }

    #[test]
    fn typed_components_uri() {
        let name = n("/a/seg=3/off=4/v=1700000000000/t=5/seq=6/32=metadata");
        assert_eq!(
            name.to_string(),
            "/a/seg=3/off=4/v=1700000000000/t=5/seq=6/32=metadata"
        );
        assert_eq!(name.get(1).unwrap().as_segment(), Some(3));
        assert_eq!(name.get(3).unwrap().as_version(), Some(1_700_000_000_000));
        assert_eq!(name.get(6).unwrap().typ(), tt::KEYWORD_COMPONENT);
        assert_eq!(n("/50=%01").get(0).unwrap().as_segment(), Some(1));
        assert_eq!(n("/50=%01").to_string(), "/seg=1");
        // A segment component whose value is not a valid NNI prints in numeric form.
        assert_eq!(n("/50=%01%02%03").to_string(), "/50=%01%02%03");
        // A padded number keeps the numeric form so the URI round-trips to the same octets.
        assert_eq!(n("/58=%00m").to_string(), "/58=%00m");
        assert_eq!(n("/58=%00m").get(0).unwrap().as_sequence_num(), Some(109));
        let d = "sha256digest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(n(&format!("/x/{d}")).to_string(), format!("/x/{d}"));
        let p = "params-sha256=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(n(&format!("/x/{p}")).get(1).unwrap().typ(), 2);
        assert_eq!(
            n(&format!("/x/{p}")).to_string(),
            format!("/x/{}", p.to_lowercase())
        );
        assert!(Name::from_uri("/sha256digest=00").is_err());
        assert!(Name::from_uri("/1=abc").is_err());
        assert!(Name::from_uri("/0=abc").is_err());
        assert!(Name::from_uri("/65536=abc").is_err());
        assert!(Name::from_uri("/seg=x").is_err());
        assert!(Name::from_uri("/foo=x").is_err());
    }

    #[test]
    fn escaping_and_periods() {
        assert_eq!(n("/...").get(0).unwrap().value(), b"");
        assert_eq!(n("/....").get(0).unwrap().value(), b".");
        assert_eq!(n("/.....").to_string(), "/.....");
        assert_eq!(Name::from(Component::generic(&b""[..])).to_string(), "/...");
        assert_eq!(
            Name::from(Component::generic(&b".."[..])).to_string(),
            "/....."
        );
        assert!(Name::from_uri("/..").is_err());
        assert!(Name::from_uri("/.").is_err());
        assert!(Name::from_uri("/a//b").is_err());
        assert!(Name::from_uri("/a%2").is_err());
        assert!(Name::from_uri("/a%zz").is_err());
        let c = Component::generic(&b"a b/c%~._-Z"[..]);
        assert_eq!(c.to_string(), "a%20b%2Fc%25~._-Z");
        assert_eq!(Component::from_uri(&c.to_string()).unwrap(), c);
        assert_eq!(n("/%41%62").to_string(), "/Ab");
        assert_eq!(n("/8=...").to_string(), "/...");
        assert_eq!(n("/100=...").to_string(), "/100=...");
    }

    #[test]
    fn canonical_order() {
        let mut v = [
            n("/b"),
            n("/a/b"),
            n("/aa"),
            n("/a"),
            n("/seg=1"),
            n("/"),
            n("/sha256digest=0000000000000000000000000000000000000000000000000000000000000000"),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            s,
            [
                "/",
                "/sha256digest=0000000000000000000000000000000000000000000000000000000000000000",
                "/a",
                "/a/b",
                "/b",
                "/aa",
                "/seg=1"
            ]
        );
        assert!(Component::generic(&b"z"[..]) < Component::generic(&b"aa"[..]));
        assert!(Component::segment(1) > Component::generic(&b"zzzz"[..]));
    }

    #[test]
    fn prefixes_and_hashes() {
        let a = n("/a/b/c/d");
        let b = n("/a/b/x");
        assert_eq!(a.prefix_hash(2), b.prefix_hash(2));
        assert_ne!(a.prefix_hash(3), b.prefix_hash(3));
        assert_eq!(a.prefix_hash(0), Name::new().prefix_hash(0));
        assert_eq!(a.prefix(2), n("/a/b"));
        assert_eq!(a.prefix(2).prefix_hash(2), a.prefix_hash(2));
        assert!(a.prefix(2).is_prefix_of(&a));
        assert!(a.is_prefix_of(&a));
        assert!(!b.is_prefix_of(&a));
        assert!(Name::new().is_prefix_of(&a));
        assert!(!n("/a/bb").is_prefix_of(&n("/a/b/b")));
        assert_eq!(a.prefix_hashes().len(), 4);
        assert_eq!(a.prefix_hashes()[3], a.prefix_hash(4));
        let appended = n("/a/b/c").append(Component::generic(&b"d"[..]));
        assert_eq!(appended, a);
        assert_eq!(appended.prefix_hashes(), a.prefix_hashes());
        assert_eq!(a.prefix(10), a);
        assert_eq!(a.last().unwrap().value(), b"d");
    }

    #[test]
    fn long_names_spill_to_heap() {
        let uri: String = (0..40).map(|i| format!("/c{i}")).collect();
        let name = n(&uri);
        assert_eq!(name.len(), 40);
        assert_eq!(name.to_string(), uri);
        assert_eq!(name.get(39).unwrap().value(), b"c39");
        let p = name.prefix(20);
        assert_eq!(p.len(), 20);
        assert_eq!(p.prefix_hash(20), name.prefix_hash(20));
        let p5 = name.prefix(5);
        assert_eq!(p5.prefix_hash(5), name.prefix_hash(5));
        assert_eq!(p5.to_string(), "/c0/c1/c2/c3/c4");
        let mut grown = Name::new();
        for i in 0..40 {
            grown = grown.append_generic(format!("c{i}").into_bytes());
        }
        assert_eq!(grown, name);
        assert_eq!(grown.prefix_hash(40), name.prefix_hash(40));
        assert_eq!(name.prefix_hash_iter().count(), 40);
    }

    #[test]
    fn decode_rejects_bad_components() {
        // Component type 0.
        assert!(Name::decode(Bytes::from_static(&[7, 2, 0, 0])).is_err());
        // Implicit digest with wrong length.
        assert!(Name::decode(Bytes::from_static(&[7, 3, 1, 1, 0])).is_err());
        // Component overruns the Name.
        assert!(Name::decode(Bytes::from_static(&[7, 3, 8, 5, 0])).is_err());
        // Trailing byte after the Name.
        assert!(Name::decode(Bytes::from_static(&[7, 0, 0])).is_err());
        // Component type above 65535.
        assert!(Name::decode(Bytes::from_static(&[7, 6, 0xFE, 0, 1, 0, 0, 0])).is_err());
    }

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
