//! The one error type of the codec. Every variant names the element or TLV-TYPE involved and,
//! where the input is a byte buffer, the offset of the offending TLV from the start of that buffer.

/// Why decoding or encoding an NDN element failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ended before the element was complete.
    #[error("truncated {what} at offset {offset}: need {need} more bytes, {have} available")]
    Truncated {
        /// The element or field being read.
        what: &'static str,
        /// Offset of the element being read.
        offset: usize,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A VAR-NUMBER did not use its shortest encoding (`tlv.rst`).
    #[error("non-minimal VAR-NUMBER in {what} at offset {offset}")]
    NonMinimalVarNumber {
        /// TLV-TYPE or TLV-LENGTH.
        what: &'static str,
        /// Offset of the VAR-NUMBER.
        offset: usize,
    },
    /// A TLV-TYPE outside [1, 2^32-1].
    #[error("invalid TLV-TYPE {typ} at offset {offset}")]
    InvalidType {
        /// The value read.
        typ: u64,
        /// Offset of the TLV.
        offset: usize,
    },
    /// A NonNegativeInteger whose TLV-LENGTH is not 1, 2, 4 or 8.
    #[error(
        "NonNegativeInteger in TLV-TYPE {typ} at offset {offset} has length {len} (must be 1, 2, 4 or 8)"
    )]
    BadNni {
        /// The element holding the integer.
        typ: u32,
        /// Its TLV-LENGTH.
        len: usize,
        /// Offset of the element.
        offset: usize,
    },
    /// A different element was found where a specific one was required.
    #[error("expected {what} (TLV-TYPE {expected}) but found TLV-TYPE {found} at offset {offset}")]
    UnexpectedType {
        /// The element expected.
        what: &'static str,
        /// Its TLV-TYPE.
        expected: u32,
        /// The TLV-TYPE found.
        found: u32,
        /// Offset of the element found.
        offset: usize,
    },
    /// An unrecognized element whose TLV-TYPE is critical (odd, or < 32).
    #[error("unrecognized critical TLV-TYPE {typ} in {container} at offset {offset}")]
    UnknownCritical {
        /// The enclosing element.
        container: &'static str,
        /// The TLV-TYPE.
        typ: u32,
        /// Offset of the element.
        offset: usize,
    },
    /// A known element appeared twice or after an element that must follow it.
    #[error("TLV-TYPE {typ} repeated or out of order in {container} at offset {offset}")]
    OutOfOrder {
        /// The enclosing element.
        container: &'static str,
        /// The TLV-TYPE.
        typ: u32,
        /// Offset of the element.
        offset: usize,
    },
    /// A required element is absent.
    #[error("{container} is missing its {what}")]
    Missing {
        /// The enclosing element.
        container: &'static str,
        /// The missing element.
        what: &'static str,
    },
    /// Bytes were left over after a complete element.
    #[error("{count} trailing bytes after {what} at offset {offset}")]
    TrailingBytes {
        /// The complete element.
        what: &'static str,
        /// Number of extra bytes.
        count: usize,
        /// Offset of the first extra byte.
        offset: usize,
    },
    /// A packet larger than [`crate::MAX_PACKET_SIZE`].
    #[error("packet of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Actual length.
        len: usize,
        /// Allowed length.
        max: usize,
    },
    /// TLV nesting deeper than [`crate::MAX_NESTING_DEPTH`].
    #[error("TLV nesting deeper than {max} levels at offset {offset}")]
    TooDeep {
        /// The cap.
        max: usize,
        /// Offset of the element that went too deep.
        offset: usize,
    },
    /// An element whose value violates the spec (wrong fixed length, bad content).
    #[error("invalid {what} at offset {offset}: {reason}")]
    Invalid {
        /// The element.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
        /// Offset of the element (0 when not decoding a buffer).
        offset: usize,
    },
    /// An NDN URI that does not parse.
    #[error("invalid NDN URI at character {at}: {reason}")]
    BadUri {
        /// What is wrong.
        reason: &'static str,
        /// Byte position in the URI string.
        at: usize,
    },
    /// An LpPacket carrying a fragment of a larger packet, which needs the reassembler.
    #[error("LpPacket carries fragment {index} of {count}; reassemble it first")]
    Fragmented {
        /// FragIndex.
        index: u64,
        /// FragCount.
        count: u64,
    },
    /// An LpPacket without a Fragment (an idle acknowledgement), which has no network packet.
    #[error("LpPacket carries no Fragment")]
    NoFragment,
    /// A packet whose outer TLV-TYPE is neither Interest, Data nor LpPacket.
    #[error("TLV-TYPE {typ} is not a network packet (Interest, Data or LpPacket)")]
    NotAPacket {
        /// The outer TLV-TYPE.
        typ: u32,
    },
}

/// Result alias for the codec.
pub type Result<T> = std::result::Result<T, Error>;
