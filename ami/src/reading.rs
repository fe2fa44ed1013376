//! The plaintext of a meter reading: one interval of a meter's registers, as DLMS/COSEM names
//! and scales them, in the project's TLV encoding (VAR-NUMBER TLV-TYPE and TLV-LENGTH, as
//! [`amicn_tlv`] reads and writes them). A meter seals one [`Reading`] under its reading key;
//! a [`ReadingBlock`] holds several consecutive readings of one meter (data sets, back-fill).
//!
//! # Format, version 1
//!
//! ```text
//! Reading       = READING-TYPE TLV-LENGTH
//!                   FormatVersion         NNI, always 1; first, so a decoder can tell the format
//!                   MeterId               NNI < 2^32
//!                   IntervalStart         NNI, µs since the Unix epoch (UTC)
//!                   IntervalLength        NNI, ms, 1 to 2^32-1
//!                   QualityFlags          NNI < 2^32, the bit set below
//!                   *Register             at most one per OBIS code, in the meter's order
//! Register      = REGISTER-TYPE TLV-LENGTH
//!                   Obis                  6 octets A B C D E F
//!                   Value                 1 to 8 octets, signed, two's complement, big-endian,
//!                                         shortest form
//!                   ScalerUnit            2 octets: scaler (i8), unit (u8), as COSEM scal_unit_type
//! ReadingBlock  = READING-BLOCK-TYPE TLV-LENGTH
//!                   FormatVersion         1
//!                   MeterId               the meter of every reading in the block
//!                   1*Reading             complete readings, strictly increasing IntervalStart
//! ```
//!
//! A register's quantity is `Value × 10^scaler` in `unit`, exactly as a COSEM Register
//! attribute 2 with its scaler_unit: 2297 with scaler −1 and unit 35 is 229.7 V. Values are
//! two's complement (not zig-zag) because the shortest two's-complement form is as short as
//! zig-zag for every value and needs no transformation to read in a hex dump; a decoder
//! refuses a value with a redundant leading `00` or `FF` octet, so a value has exactly one
//! encoding (the encoder also writes every NonNegativeInteger in its shortest form, and
//! decoding then encoding gives back the same bytes unless skipped elements were dropped).
//! The interval ends at `IntervalStart + IntervalLength`; a meter names the
//! reading `/<u>/ami/meter/<id>/reading/t=<end µs>` and the MDMS checks that the plaintext's
//! meter and end match the name.
//!
//! ## TLV-TYPE numbers
//!
//! NDN leaves the one-octet numbers 128–252 to applications. The AMI messages of `wire.rs`
//! use even numbers from 0xC0 up and the envelope 0x82–0x86; readings take the odd numbers
//! 0xA1–0xB5, so they collide with neither (nor with a top-level NDN packet type, which is how
//! `amicn dissect` recognises a reading) and every element of version 1 is critical.
//!
//! | TLV-TYPE | hex | element | value |
//! | --- | --- | --- | --- |
//! | 161 | 0xA1 | [`Reading`](tt::READING) | nested |
//! | 163 | 0xA3 | [`ReadingBlock`](tt::READING_BLOCK) | nested |
//! | 165 | 0xA5 | [`FormatVersion`](tt::FORMAT_VERSION) | NNI = 1 |
//! | 167 | 0xA7 | [`MeterId`](tt::METER_ID) | NNI < 2^32 |
//! | 169 | 0xA9 | [`IntervalStart`](tt::INTERVAL_START) | NNI, µs since 1970-01-01T00:00:00Z |
//! | 171 | 0xAB | [`IntervalLength`](tt::INTERVAL_LENGTH) | NNI, ms, > 0 and < 2^32 |
//! | 173 | 0xAD | [`QualityFlags`](tt::QUALITY_FLAGS) | NNI < 2^32 |
//! | 175 | 0xAF | [`Register`](tt::REGISTER) | nested |
//! | 177 | 0xB1 | [`Obis`](tt::OBIS) | 6 octets |
//! | 179 | 0xB3 | [`Value`](tt::VALUE) | 1–8 octets, two's complement |
//! | 181 | 0xB5 | [`ScalerUnit`](tt::SCALER_UNIT) | 2 octets: i8 scaler, u8 unit |
//!
//! **Evolvability** follows the NDN packet format's rule ([`is_critical`]): a TLV-TYPE is
//! critical if it is at most 31 or odd. Inside a Reading, Register or ReadingBlock an
//! unrecognised critical element is an error; an unrecognised non-critical one (even, ≥ 32;
//! the even numbers 0xA0–0xBE are kept for extensions of this format) is skipped wherever it
//! appears after FormatVersion, and is not kept when the reading is encoded again. Known
//! elements must appear once each (Register and the block's Reading may repeat), in the order
//! above. A later version that changes the meaning of a field changes FormatVersion; this
//! decoder refuses any version but 1.
//!
//! ## Quality flags
//!
//! | bit | mask | flag | meaning |
//! | --- | --- | --- | --- |
//! | 0 | 0x01 | [`ESTIMATED`](Flags::ESTIMATED) | values are estimated, not measured |
//! | 1 | 0x02 | [`EDITED`](Flags::EDITED) | values were edited after capture |
//! | 2 | 0x04 | [`CLOCK_ADJUSTED`](Flags::CLOCK_ADJUSTED) | the meter's clock was set during the interval |
//! | 3 | 0x08 | [`POWER_OUTAGE`](Flags::POWER_OUTAGE) | the meter was without power (or down) during the interval |
//! | 4 | 0x10 | [`TAMPER`](Flags::TAMPER) | a tamper event was detected during the interval |
//! | 5–31 | 0xFFFF_FFE0 | reserved | kept as read: decoding and encoding again preserves them |
//!
//! ## Units
//!
//! Units are the numbers of the DLMS/COSEM unit enumeration (Blue Book, class 3
//! scal_unit_type). Any octet is accepted and kept; these have a symbol:
//!
//! | unit | symbol | quantity |
//! | --- | --- | --- |
//! | 27 | W | active power |
//! | 28 | VA | apparent power |
//! | 29 | var | reactive power |
//! | 30 | Wh | active energy |
//! | 31 | VAh | apparent energy |
//! | 32 | varh | reactive energy |
//! | 33 | A | current |
//! | 35 | V | voltage |
//! | 44 | Hz | frequency |
//! | 255 | (count) | no unit |
//!
//! Registers with a constant here ([`Obis`]): 1-0:1.8.0 active import energy (+A), 1-0:2.8.0
//! active export energy (−A), 1-0:3.8.0 reactive import energy (+R), 1-0:4.8.0 reactive
//! export energy (−R), 1-0:1.7.0 instantaneous active import power (+P), 1-0:32.7.0 voltage L1,
//! 1-0:31.7.0 current L1. An OBIS code is shown `A-B:C.D.E*F`, or `A-B:C.D.E` with `{:#}` when
//! F is 255 (the usual "not used" billing-period field).
//!
//! ## Worked example
//!
//! Meter 17, the quarter hour ending 2024-01-15T12:00:00Z, no flags, 1 234 567 Wh imported,
//! nothing exported, 98 765 varh reactive, 1840 W at 229.7 V and 8.26 A. 153 octets; the
//! unit test `worked_example_matches_the_docs` reads the dump below from this file and checks
//! it byte for byte against the encoder, so the two cannot drift apart.
//!
//! <!-- worked-example: the hex columns below are checked by a unit test -->
//! ```text
//! a1 97                          Reading, 151 octets
//!   a5 01 01                     FormatVersion 1
//!   a7 01 11                     MeterId 17
//!   a9 08 00 06 0e fa 8b 2f 27 00  IntervalStart 1705319100000000 µs = 2024-01-15T11:45:00Z
//!   ab 04 00 0d bb a0            IntervalLength 900000 ms = 15 min
//!   ad 01 00                     QualityFlags 0 (none)
//!   af 11                        Register, 17 octets
//!     b1 06 01 00 01 08 00 ff    Obis 1-0:1.8.0*255 (active import energy)
//!     b3 03 12 d6 87             Value 1234567
//!     b5 02 00 1e                ScalerUnit 10^0, unit 30 (Wh)  -> 1234567 Wh
//!   af 0f                        Register, 15 octets
//!     b1 06 01 00 02 08 00 ff    Obis 1-0:2.8.0*255 (active export energy)
//!     b3 01 00                   Value 0
//!     b5 02 00 1e                ScalerUnit 10^0, unit 30 (Wh)  -> 0 Wh
//!   af 11                        Register, 17 octets
//!     b1 06 01 00 03 08 00 ff    Obis 1-0:3.8.0*255 (reactive import energy)
//!     b3 03 01 81 cd             Value 98765
//!     b5 02 00 20                ScalerUnit 10^0, unit 32 (varh)  -> 98765 varh
//!   af 0f                        Register, 15 octets
//!     b1 06 01 00 04 08 00 ff    Obis 1-0:4.8.0*255 (reactive export energy)
//!     b3 01 00                   Value 0
//!     b5 02 00 20                ScalerUnit 10^0, unit 32 (varh)  -> 0 varh
//!   af 10                        Register, 16 octets
//!     b1 06 01 00 01 07 00 ff    Obis 1-0:1.7.0*255 (active power)
//!     b3 02 07 30                Value 1840
//!     b5 02 00 1b                ScalerUnit 10^0, unit 27 (W)  -> 1840 W
//!   af 10                        Register, 16 octets
//!     b1 06 01 00 20 07 00 ff    Obis 1-0:32.7.0*255 (voltage L1)
//!     b3 02 08 f9                Value 2297
//!     b5 02 ff 23                ScalerUnit 10^-1, unit 35 (V)  -> 229.7 V
//!   af 10                        Register, 16 octets
//!     b1 06 01 00 1f 07 00 ff    Obis 1-0:31.7.0*255 (current L1)
//!     b3 02 03 3a                Value 826
//!     b5 02 fe 21                ScalerUnit 10^-2, unit 33 (A)  -> 8.26 A
//! ```
//!
//! The same reading through the API:
//!
//! ```
//! use amicn_ami::reading::{Obis, Reading, Register, Unit};
//!
//! let r = Reading::new(17, 1_705_319_100_000_000, 900_000)
//!     .with(Register::new(Obis::ACTIVE_IMPORT_ENERGY, 1_234_567, 0, Unit::WH))
//!     .with(Register::new(Obis::ACTIVE_EXPORT_ENERGY, 0, 0, Unit::WH))
//!     .with(Register::new(Obis::REACTIVE_IMPORT_ENERGY, 98_765, 0, Unit::VARH))
//!     .with(Register::new(Obis::REACTIVE_EXPORT_ENERGY, 0, 0, Unit::VARH))
//!     .with(Register::new(Obis::ACTIVE_POWER, 1_840, 0, Unit::W))
//!     .with(Register::new(Obis::VOLTAGE_L1, 2_297, -1, Unit::V))
//!     .with(Register::new(Obis::CURRENT_L1, 826, -2, Unit::A));
//! let wire = r.encode()?;
//! assert_eq!(wire.len(), 153);
//! assert_eq!(wire[..8], [0xa1, 0x97, 0xa5, 0x01, 0x01, 0xa7, 0x01, 0x11]);
//!
//! let back = Reading::decode(&wire)?;
//! assert_eq!(back, r);
//! assert_eq!(back.end_us(), 1_705_320_000_000_000);
//! assert_eq!((back.active_import_wh(), back.active_power_w()), (Some(1_234_567), Some(1_840)));
//! let volts = back.register(Obis::VOLTAGE_L1).map(|g| g.value_f64());
//! assert!(volts.is_some_and(|v| (v - 229.7).abs() < 1e-9));
//! println!("{back}"); // reading v1: meter 17, 2024-01-15T11:45:00Z + 15 min, flags 0x00 (none) ...
//! # Ok::<(), amicn_ami::reading::ReadingError>(())
//! ```

use std::collections::HashSet;
use std::fmt;

use amicn_tlv::walk::Node;
use amicn_tlv::{Element, TlvReader, encode_nni_tlv, encode_tl, nni_tlv_len, tlv_len};
use bytes::{BufMut, Bytes, BytesMut};

/// The format version this module writes and the only one it reads.
pub const FORMAT_VERSION: u64 = 1;

/// TLV-TYPE numbers of the reading format (see the table in the module documentation).
pub mod tt {
    /// One interval reading.
    pub const READING: u32 = 0xA1;
    /// Several interval readings of one meter.
    pub const READING_BLOCK: u32 = 0xA3;
    /// Format version (NNI, 1).
    pub const FORMAT_VERSION: u32 = 0xA5;
    /// Meter id (NNI).
    pub const METER_ID: u32 = 0xA7;
    /// Start of the interval (NNI, µs since the Unix epoch).
    pub const INTERVAL_START: u32 = 0xA9;
    /// Length of the interval (NNI, ms).
    pub const INTERVAL_LENGTH: u32 = 0xAB;
    /// Quality and status flags (NNI bit set).
    pub const QUALITY_FLAGS: u32 = 0xAD;
    /// One register.
    pub const REGISTER: u32 = 0xAF;
    /// OBIS code (6 octets).
    pub const OBIS: u32 = 0xB1;
    /// Register value (1 to 8 octets, two's complement).
    pub const VALUE: u32 = 0xB3;
    /// Scaler (i8) and unit (u8).
    pub const SCALER_UNIT: u32 = 0xB5;
}

/// Whether an unrecognised element of this TLV-TYPE must fail decoding (the NDN packet format
/// rule: TLV-TYPEs up to 31 and odd ones are critical, even ones from 32 up may be skipped).
pub const fn is_critical(typ: u32) -> bool {
    typ <= 31 || typ % 2 == 1
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a reading or a block did not decode (or, with offset 0, could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadingError {
    /// No bytes at all.
    #[error("empty input: a reading is one TLV element")]
    Empty,
    /// The input ended inside an element.
    #[error("truncated {what} at offset {offset}: need {need} bytes, {have} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the element.
        offset: usize,
        /// Bytes the element announces.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// A TLV header that does not parse (non-minimal VAR-NUMBER, TLV-TYPE 0).
    #[error("bad TLV framing: {0}")]
    Framing(amicn_tlv::Error),
    /// The outer element is not the one asked for.
    #[error("expected a {expected} but found TLV-TYPE {found} at offset {offset}")]
    WrongType {
        /// Reading or ReadingBlock.
        expected: &'static str,
        /// TLV-TYPE found.
        found: u32,
        /// Offset of the element.
        offset: usize,
    },
    /// Bytes after the one element.
    #[error("{count} trailing bytes after the {what} at offset {offset}")]
    TrailingBytes {
        /// The complete element.
        what: &'static str,
        /// Number of extra bytes.
        count: usize,
        /// Offset of the first extra byte.
        offset: usize,
    },
    /// A Reading or ReadingBlock whose first element is not FormatVersion.
    #[error("{container} at offset {offset} does not start with FormatVersion")]
    MissingVersion {
        /// Reading or ReadingBlock.
        container: &'static str,
        /// Offset of the container.
        offset: usize,
    },
    /// FormatVersion appears twice.
    #[error("FormatVersion repeated in {container} at offset {offset}")]
    DuplicateVersion {
        /// Reading or ReadingBlock.
        container: &'static str,
        /// Offset of the second FormatVersion.
        offset: usize,
    },
    /// A format version this decoder does not read.
    #[error("format version {version} at offset {offset} is not supported (this decoder reads 1)")]
    UnsupportedVersion {
        /// The version found.
        version: u64,
        /// Offset of the FormatVersion element.
        offset: usize,
    },
    /// A non-repeatable element appears twice.
    #[error("{what} repeated in {container} at offset {offset}")]
    Duplicate {
        /// The enclosing element.
        container: &'static str,
        /// The repeated element.
        what: &'static str,
        /// Offset of the second occurrence.
        offset: usize,
    },
    /// A known element after one that must follow it.
    #[error("{what} out of order in {container} at offset {offset}")]
    OutOfOrder {
        /// The enclosing element.
        container: &'static str,
        /// The misplaced element.
        what: &'static str,
        /// Its offset.
        offset: usize,
    },
    /// A required element is absent.
    #[error("{container} at offset {offset} is missing its {what}")]
    Missing {
        /// The enclosing element.
        container: &'static str,
        /// The missing element.
        what: &'static str,
        /// Offset of the enclosing element.
        offset: usize,
    },
    /// An unrecognised element whose TLV-TYPE is critical ([`is_critical`]).
    #[error("unrecognised critical TLV-TYPE {typ} in {container} at offset {offset}")]
    UnknownCritical {
        /// The enclosing element.
        container: &'static str,
        /// The TLV-TYPE.
        typ: u32,
        /// Offset of the element.
        offset: usize,
    },
    /// A NonNegativeInteger whose length is not 1, 2, 4 or 8.
    #[error("{what} at offset {offset} has {len} octets; a NonNegativeInteger has 1, 2, 4 or 8")]
    BadNni {
        /// The element.
        what: &'static str,
        /// Its TLV-LENGTH.
        len: usize,
        /// Its offset.
        offset: usize,
    },
    /// A number too large for its field.
    #[error("{what} {value} at offset {offset} exceeds {max}")]
    OutOfRange {
        /// The element.
        what: &'static str,
        /// The value read.
        value: u64,
        /// The largest allowed.
        max: u64,
        /// Its offset.
        offset: usize,
    },
    /// An OBIS code that is not 6 octets.
    #[error("Obis at offset {offset} has {len} octets, not 6")]
    BadObisLength {
        /// Its TLV-LENGTH.
        len: usize,
        /// Its offset.
        offset: usize,
    },
    /// A ScalerUnit that is not 2 octets.
    #[error("ScalerUnit at offset {offset} has {len} octets, not 2")]
    BadScalerUnitLength {
        /// Its TLV-LENGTH.
        len: usize,
        /// Its offset.
        offset: usize,
    },
    /// A register Value of 0 or more than 8 octets.
    #[error("Value at offset {offset} has {len} octets, not 1 to 8")]
    BadValueLength {
        /// Its TLV-LENGTH.
        len: usize,
        /// Its offset.
        offset: usize,
    },
    /// A register Value with a redundant leading sign octet.
    #[error("Value at offset {offset} is not in its shortest two's-complement form")]
    NonMinimalValue {
        /// Its offset.
        offset: usize,
    },
    /// An IntervalLength of zero.
    #[error("IntervalLength at offset {offset} is zero")]
    ZeroInterval {
        /// Its offset.
        offset: usize,
    },
    /// Two registers with the same OBIS code in one reading.
    #[error("register {obis} appears twice (again at offset {offset})")]
    DuplicateRegister {
        /// The OBIS code.
        obis: Obis,
        /// Offset of the second register.
        offset: usize,
    },
    /// A ReadingBlock without readings.
    #[error("ReadingBlock at offset {offset} holds no reading")]
    EmptyBlock {
        /// Offset of the block.
        offset: usize,
    },
    /// A reading of another meter inside a block.
    #[error("reading of meter {reading} at offset {offset} in the block of meter {block}")]
    BlockMeterMismatch {
        /// The block's meter.
        block: u32,
        /// The reading's meter.
        reading: u32,
        /// Offset of the reading.
        offset: usize,
    },
    /// A reading in a block that does not start after the one before it.
    #[error("reading at offset {offset} does not start after the one before it in its block")]
    BlockOrder {
        /// Offset of the reading.
        offset: usize,
    },
}

/// Result with [`ReadingError`].
pub type Result<T> = std::result::Result<T, ReadingError>;

fn tlv_err(e: amicn_tlv::Error) -> ReadingError {
    match e {
        amicn_tlv::Error::Truncated {
            what,
            offset,
            need,
            have,
        } => ReadingError::Truncated {
            what,
            offset,
            need,
            have,
        },
        other => ReadingError::Framing(other),
    }
}

// ---------------------------------------------------------------------------------------------
// OBIS codes, units, flags

/// An OBIS code `A-B:C.D.E*F` (IEC 62056-61): medium, channel, quantity, processing, tariff,
/// billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Obis(pub [u8; 6]);

impl Obis {
    /// 1-0:1.8.0*255, active energy import (+A), total.
    pub const ACTIVE_IMPORT_ENERGY: Obis = Obis([1, 0, 1, 8, 0, 255]);
    /// 1-0:2.8.0*255, active energy export (−A), total.
    pub const ACTIVE_EXPORT_ENERGY: Obis = Obis([1, 0, 2, 8, 0, 255]);
    /// 1-0:3.8.0*255, reactive energy import (+R), total.
    pub const REACTIVE_IMPORT_ENERGY: Obis = Obis([1, 0, 3, 8, 0, 255]);
    /// 1-0:4.8.0*255, reactive energy export (−R), total.
    pub const REACTIVE_EXPORT_ENERGY: Obis = Obis([1, 0, 4, 8, 0, 255]);
    /// 1-0:1.7.0*255, instantaneous active import power (+P).
    pub const ACTIVE_POWER: Obis = Obis([1, 0, 1, 7, 0, 255]);
    /// 1-0:32.7.0*255, instantaneous voltage, phase L1.
    pub const VOLTAGE_L1: Obis = Obis([1, 0, 32, 7, 0, 255]);
    /// 1-0:31.7.0*255, instantaneous current, phase L1.
    pub const CURRENT_L1: Obis = Obis([1, 0, 31, 7, 0, 255]);
    /// 0-0:96.3.10*255, disconnect control output state (1 = supply connected, 0 = open).
    pub const DISCONNECT_CONTROL: Obis = Obis([0, 0, 96, 3, 10, 255]);
    /// 0-0:17.0.0*255, load limiter threshold (W); present only when a limit is set.
    pub const LOAD_LIMIT: Obis = Obis([0, 0, 17, 0, 0, 255]);

    /// The code `a-b:c.d.e*f`.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Obis {
        Obis([a, b, c, d, e, f])
    }

    /// What the registers with a constant here measure.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Obis::ACTIVE_IMPORT_ENERGY => "active import energy",
            Obis::ACTIVE_EXPORT_ENERGY => "active export energy",
            Obis::REACTIVE_IMPORT_ENERGY => "reactive import energy",
            Obis::REACTIVE_EXPORT_ENERGY => "reactive export energy",
            Obis::ACTIVE_POWER => "active power",
            Obis::VOLTAGE_L1 => "voltage L1",
            Obis::CURRENT_L1 => "current L1",
            Obis::DISCONNECT_CONTROL => "disconnect control state",
            Obis::LOAD_LIMIT => "load limit threshold",
            _ => return None,
        })
    }
}

impl fmt::Display for Obis {
    /// `1-0:1.8.0*255`; with `{:#}`, `1-0:1.8.0` when F is 255.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a}-{b}:{c}.{d}.{e}")?;
        if !(f.alternate() && g == 255) {
            write!(f, "*{g}")?;
        }
        Ok(())
    }
}

/// Text that is not an OBIS code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an OBIS code (A-B:C.D.E or A-B:C.D.E*F, each 0 to 255)")]
pub struct ObisParseError(pub String);

impl std::str::FromStr for Obis {
    type Err = ObisParseError;

    /// Parses `A-B:C.D.E*F`, or `A-B:C.D.E` meaning F = 255.
    fn from_str(s: &str) -> std::result::Result<Obis, ObisParseError> {
        let bad = || ObisParseError(s.to_string());
        let (a, rest) = s.split_once('-').ok_or_else(bad)?;
        let (b, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (cde, f) = match rest.split_once('*') {
            Some((cde, f)) => (cde, Some(f)),
            None => (rest, None),
        };
        let mut it = cde.split('.');
        let mut next = || it.next().ok_or_else(bad);
        let (c, d, e) = (next()?, next()?, next()?);
        if it.next().is_some() {
            return Err(bad());
        }
        let n = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u8>().map_err(|_| bad())
        };
        let f = match f {
            Some(f) => n(f)?,
            None => 255,
        };
        Ok(Obis([n(a)?, n(b)?, n(c)?, n(d)?, n(e)?, f]))
    }
}

/// A DLMS/COSEM unit enumeration number (any octet is kept; see the table in the module
/// documentation for the ones with a symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit(pub u8);

impl Unit {
    /// 27: W, active power.
    pub const W: Unit = Unit(27);
    /// 28: VA, apparent power.
    pub const VA: Unit = Unit(28);
    /// 29: var, reactive power.
    pub const VAR: Unit = Unit(29);
    /// 30: Wh, active energy.
    pub const WH: Unit = Unit(30);
    /// 31: VAh, apparent energy.
    pub const VAH: Unit = Unit(31);
    /// 32: varh, reactive energy.
    pub const VARH: Unit = Unit(32);
    /// 33: A, current.
    pub const A: Unit = Unit(33);
    /// 35: V, voltage.
    pub const V: Unit = Unit(35);
    /// 44: Hz, frequency.
    pub const HZ: Unit = Unit(44);
    /// 255: a count, no unit.
    pub const COUNT: Unit = Unit(255);

    /// The unit's symbol, if this module knows it (empty for [`Unit::COUNT`]).
    pub fn symbol(self) -> Option<&'static str> {
        Some(match self {
            Unit::W => "W",
            Unit::VA => "VA",
            Unit::VAR => "var",
            Unit::WH => "Wh",
            Unit::VAH => "VAh",
            Unit::VARH => "varh",
            Unit::A => "A",
            Unit::V => "V",
            Unit::HZ => "Hz",
            Unit::COUNT => "",
            _ => return None,
        })
    }
}

impl fmt::Display for Unit {
    /// The symbol, or `unit <n>` for a number without one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.symbol() {
            Some(s) => f.write_str(s),
            None => write!(f, "unit {}", self.0),
        }
    }
}

/// Quality and status flags of one interval (see the table in the module documentation).
/// Reserved bits are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Flags(pub u32);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// Bit 0: the values are estimated.
    pub const ESTIMATED: Flags = Flags(1 << 0);
    /// Bit 1: the values were edited after capture.
    pub const EDITED: Flags = Flags(1 << 1);
    /// Bit 2: the meter's clock was adjusted during the interval.
    pub const CLOCK_ADJUSTED: Flags = Flags(1 << 2);
    /// Bit 3: the meter was without power (or not running) during part of the interval.
    pub const POWER_OUTAGE: Flags = Flags(1 << 3);
    /// Bit 4: a tamper event was detected during the interval.
    pub const TAMPER: Flags = Flags(1 << 4);
    /// Every bit version 1 defines.
    pub const DEFINED: Flags = Flags(0x1F);

    const NAMES: [(Flags, &'static str); 5] = [
        (Flags::ESTIMATED, "estimated"),
        (Flags::EDITED, "edited"),
        (Flags::CLOCK_ADJUSTED, "clock-adjusted"),
        (Flags::POWER_OUTAGE, "power-outage"),
        (Flags::TAMPER, "tamper"),
    ];

    /// The raw bit set.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bits version 1 does not define.
    pub const fn reserved(self) -> u32 {
        self.0 & !Flags::DEFINED.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Flags {
    /// `0x09 (estimated, power-outage)`, `0x00 (none)`, reserved bits as `reserved 0x…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} (", self.0)?;
        if self.is_empty() {
            return f.write_str("none)");
        }
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for (flag, name) in Flags::NAMES {
            if self.contains(flag) {
                sep(f)?;
                f.write_str(name)?;
            }
        }
        if self.reserved() != 0 {
            sep(f)?;
            write!(f, "reserved {:#x}", self.reserved())?;
        }
        f.write_str(")")
    }
}

// ---------------------------------------------------------------------------------------------
// Registers and readings

/// One register: an OBIS code and its value, `value × 10^scaler` in `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// What the register measures.
    pub obis: Obis,
    /// Raw value.
    pub value: i64,
    /// Power of ten the raw value is multiplied by.
    pub scaler: i8,
    /// DLMS/COSEM unit.
    pub unit: Unit,
}

impl Register {
    /// A register of `obis` holding `value × 10^scaler` `unit`.
    pub const fn new(obis: Obis, value: i64, scaler: i8, unit: Unit) -> Register {
        Register {
            obis,
            value,
            scaler,
            unit,
        }
    }

    /// The quantity in `unit`, with the scaler applied.
    pub fn value_f64(&self) -> f64 {
        self.value as f64 * 10f64.powi(i32::from(self.scaler))
    }

    /// The quantity in whole `unit`s, rounded down; `None` if it does not fit in an `i128`.
    pub fn whole_units(&self) -> Option<i128> {
        let v = i128::from(self.value);
        let k = u32::from(self.scaler.unsigned_abs());
        if self.scaler >= 0 {
            if v == 0 {
                return Some(0);
            }
            10i128.checked_pow(k).and_then(|p| v.checked_mul(p))
        } else {
            // |v| < 10^19, so a divisor of 10^39 or more leaves 0 (or -1 below zero).
            match 10i128.checked_pow(k) {
                Some(p) => Some(v.div_euclid(p)),
                None => Some(if v < 0 { -1 } else { 0 }),
            }
        }
    }

    /// The quantity as an exact decimal: 2297 with scaler −1 is `229.7`, 5 with scaler 3 is
    /// `5000`.
    pub fn decimal(&self) -> String {
        let digits = self.value.unsigned_abs().to_string();
        let sign = if self.value < 0 { "-" } else { "" };
        let k = usize::from(self.scaler.unsigned_abs());
        if self.scaler >= 0 {
            if self.value == 0 {
                return "0".into();
            }
            return format!("{sign}{digits}{}", "0".repeat(k));
        }
        let padded = if digits.len() <= k {
            format!("{}{digits}", "0".repeat(k + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - k);
        format!("{sign}{int}.{frac}")
    }

    fn value_len(&self) -> usize {
        tlv_len(tt::OBIS, 6) + tlv_len(tt::VALUE, int_len(self.value)) + tlv_len(tt::SCALER_UNIT, 2)
    }

    fn encode_to(&self, buf: &mut BytesMut) {
        encode_tl(buf, tt::REGISTER, self.value_len());
        encode_tl(buf, tt::OBIS, 6);
        buf.put_slice(&self.obis.0);
        let n = int_len(self.value);
        encode_tl(buf, tt::VALUE, n);
        buf.put_slice(&self.value.to_be_bytes()[8 - n..]);
        encode_tl(buf, tt::SCALER_UNIT, 2);
        buf.put_slice(&[self.scaler.to_be_bytes()[0], self.unit.0]);
    }
}

impl fmt::Display for Register {
    /// `1-0:1.8.0 active import energy = 1234567 Wh`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.obis)?;
        if let Some(n) = self.obis.name() {
            write!(f, " {n}")?;
        }
        write!(f, " = {}", self.decimal())?;
        match self.unit.symbol() {
            Some("") => Ok(()),
            Some(s) => write!(f, " {s}"),
            None => write!(f, " (unit {})", self.unit.0),
        }
    }
}

/// Octets of the shortest two's-complement form of `v` (1 to 8).
fn int_len(v: i64) -> usize {
    (1..8)
        .find(|&n| {
            let bits = 8 * n as u32 - 1;
            (-(1i64 << bits)..(1i64 << bits)).contains(&v)
        })
        .unwrap_or(8)
}

fn decode_int(value: &[u8], offset: usize) -> Result<i64> {
    if value.is_empty() || value.len() > 8 {
        return Err(ReadingError::BadValueLength {
            len: value.len(),
            offset,
        });
    }
    if let [a, b, ..] = *value
        && ((a == 0x00 && b & 0x80 == 0) || (a == 0xFF && b & 0x80 != 0))
    {
        return Err(ReadingError::NonMinimalValue { offset });
    }
    let negative = value.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xFF; 8] } else { [0; 8] };
    buf[8 - value.len()..].copy_from_slice(value);
    Ok(i64::from_be_bytes(buf))
}

/// One interval reading of one meter (see the module documentation for its encoding).
///
/// Not to be confused with [`crate::Reading`], the meter's record of what it published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Meter id.
    pub meter: u32,
    /// Start of the interval, µs since the Unix epoch.
    pub start_us: u64,
    /// Length of the interval, ms (at least 1).
    pub interval_ms: u32,
    /// Quality and status flags.
    pub flags: Flags,
    /// Registers, at most one per OBIS code.
    pub registers: Vec<Register>,
}

impl Reading {
    /// A reading of `meter` for the interval of `interval_ms` starting at `start_us`, without
    /// flags or registers yet.
    pub fn new(meter: u32, start_us: u64, interval_ms: u32) -> Reading {
        Reading {
            meter,
            start_us,
            interval_ms,
            flags: Flags::NONE,
            registers: Vec::new(),
        }
    }

    /// The same reading with `r` appended.
    pub fn with(mut self, r: Register) -> Reading {
        self.registers.push(r);
        self
    }

    /// End of the interval, µs since the Unix epoch (the timestamp in the reading's name).
    pub fn end_us(&self) -> u64 {
        self.start_us
            .saturating_add(u64::from(self.interval_ms) * 1_000)
    }

    /// The register with this OBIS code.
    pub fn register(&self, obis: Obis) -> Option<&Register> {
        self.registers.iter().find(|r| r.obis == obis)
    }

    /// Active import energy (1-0:1.8.0 in Wh, scaler applied, rounded down), if the reading
    /// has that register and it is not negative.
    pub fn active_import_wh(&self) -> Option<u64> {
        let r = self.register(Obis::ACTIVE_IMPORT_ENERGY)?;
        if r.unit != Unit::WH {
            return None;
        }
        u64::try_from(r.whole_units()?).ok()
    }

    /// Instantaneous active import power (1-0:1.7.0 in W, scaler applied, rounded down), if the
    /// reading has that register and it fits a `u32`.
    pub fn active_power_w(&self) -> Option<u32> {
        let r = self.register(Obis::ACTIVE_POWER)?;
        if r.unit != Unit::W {
            return None;
        }
        u32::try_from(r.whole_units()?).ok()
    }

    /// Checks what the decoder would refuse: a zero interval, two registers with one code.
    pub fn validate(&self) -> Result<()> {
        if self.interval_ms == 0 {
            return Err(ReadingError::ZeroInterval { offset: 0 });
        }
        let mut seen = HashSet::with_capacity(self.registers.len());
        for r in &self.registers {
            if !seen.insert(r.obis) {
                return Err(ReadingError::DuplicateRegister {
                    obis: r.obis,
                    offset: 0,
                });
            }
        }
        Ok(())
    }

    fn value_len(&self) -> usize {
        nni_tlv_len(tt::FORMAT_VERSION, FORMAT_VERSION)
            + nni_tlv_len(tt::METER_ID, u64::from(self.meter))
            + nni_tlv_len(tt::INTERVAL_START, self.start_us)
            + nni_tlv_len(tt::INTERVAL_LENGTH, u64::from(self.interval_ms))
            + nni_tlv_len(tt::QUALITY_FLAGS, u64::from(self.flags.0))
            + self
                .registers
                .iter()
                .map(|r| tlv_len(tt::REGISTER, r.value_len()))
                .sum::<usize>()
    }

    /// Octets of the encoding.
    pub fn encoded_len(&self) -> usize {
        tlv_len(tt::READING, self.value_len())
    }

    /// Appends the encoding to `buf` (after [`Reading::validate`]).
    pub fn encode_to(&self, buf: &mut BytesMut) -> Result<()> {
        self.validate()?;
        buf.reserve(self.encoded_len());
        encode_tl(buf, tt::READING, self.value_len());
        encode_nni_tlv(buf, tt::FORMAT_VERSION, FORMAT_VERSION);
        encode_nni_tlv(buf, tt::METER_ID, u64::from(self.meter));
        encode_nni_tlv(buf, tt::INTERVAL_START, self.start_us);
        encode_nni_tlv(buf, tt::INTERVAL_LENGTH, u64::from(self.interval_ms));
        encode_nni_tlv(buf, tt::QUALITY_FLAGS, u64::from(self.flags.0));
        for r in &self.registers {
            r.encode_to(buf);
        }
        Ok(())
    }

    /// The encoding (after [`Reading::validate`]).
    pub fn encode(&self) -> Result<Bytes> {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode_to(&mut b)?;
        Ok(b.freeze())
    }

    /// Decodes exactly one Reading element.
    pub fn decode(wire: &[u8]) -> Result<Reading> {
        let e = one_element(Bytes::copy_from_slice(wire), 0, tt::READING, "Reading")?;
        decode_reading(&e)
    }

    /// One line: meter, interval and flags.
    fn summary(&self) -> String {
        format!(
            "meter {}, {} + {}, flags {}",
            self.meter,
            utc(self.start_us),
            duration_ms(self.interval_ms),
            self.flags
        )
    }
}

impl fmt::Display for Reading {
    /// A summary line, then one indented line per register.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reading v{FORMAT_VERSION}: {}", self.summary())?;
        for r in &self.registers {
            write!(f, "\n  {r}")?;
        }
        Ok(())
    }
}

/// Several interval readings of one meter, in strictly increasing start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingBlock {
    /// Meter id of every reading.
    pub meter: u32,
    /// The readings (at least one).
    pub readings: Vec<Reading>,
}

impl ReadingBlock {
    /// Checks what the decoder would refuse: no readings, another meter's reading, readings
    /// out of order, an invalid reading.
    pub fn validate(&self) -> Result<()> {
        if self.readings.is_empty() {
            return Err(ReadingError::EmptyBlock { offset: 0 });
        }
        let mut prev: Option<u64> = None;
        for r in &self.readings {
            if r.meter != self.meter {
                return Err(ReadingError::BlockMeterMismatch {
                    block: self.meter,
                    reading: r.meter,
                    offset: 0,
                });
            }
            if prev.is_some_and(|p| r.start_us <= p) {
                return Err(ReadingError::BlockOrder { offset: 0 });
            }
            prev = Some(r.start_us);
            r.validate()?;
        }
        Ok(())
    }

    fn value_len(&self) -> usize {
        nni_tlv_len(tt::FORMAT_VERSION, FORMAT_VERSION)
            + nni_tlv_len(tt::METER_ID, u64::from(self.meter))
            + self
                .readings
                .iter()
                .map(Reading::encoded_len)
                .sum::<usize>()
    }

    /// Octets of the encoding.
    pub fn encoded_len(&self) -> usize {
        tlv_len(tt::READING_BLOCK, self.value_len())
    }

    /// The encoding (after [`ReadingBlock::validate`]).
    pub fn encode(&self) -> Result<Bytes> {
        self.validate()?;
        let mut b = BytesMut::with_capacity(self.encoded_len());
        encode_tl(&mut b, tt::READING_BLOCK, self.value_len());
        encode_nni_tlv(&mut b, tt::FORMAT_VERSION, FORMAT_VERSION);
        encode_nni_tlv(&mut b, tt::METER_ID, u64::from(self.meter));
        for r in &self.readings {
            r.encode_to(&mut b)?;
        }
        Ok(b.freeze())
    }

    /// Decodes exactly one ReadingBlock element.
    pub fn decode(wire: &[u8]) -> Result<ReadingBlock> {
        let e = one_element(
            Bytes::copy_from_slice(wire),
            0,
            tt::READING_BLOCK,
            "ReadingBlock",
        )?;
        decode_block(&e)
    }
}

impl fmt::Display for ReadingBlock {
    /// A header line, then each reading indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reading block v{FORMAT_VERSION}: meter {}, {} readings",
            self.meter,
            self.readings.len()
        )?;
        for r in &self.readings {
            for line in r.to_string().lines() {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

/// A decoded plaintext: one reading or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One interval reading.
    Reading(Reading),
    /// Several readings of one meter.
    Block(ReadingBlock),
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Reading(r) => r.fmt(f),
            Payload::Block(b) => b.fmt(f),
        }
    }
}

/// Decodes exactly one Reading or ReadingBlock element.
pub fn decode_any(wire: &[u8]) -> Result<Payload> {
    decode_any_at(Bytes::copy_from_slice(wire), 0)
}

/// [`decode_any`] with error offsets counted from `base`.
fn decode_any_at(wire: Bytes, base: usize) -> Result<Payload> {
    match wire.first().map(|&b| u32::from(b)) {
        Some(tt::READING_BLOCK) => {
            let e = one_element(wire, base, tt::READING_BLOCK, "ReadingBlock")?;
            decode_block(&e).map(Payload::Block)
        }
        _ => {
            let e = one_element(wire, base, tt::READING, "Reading")?;
            decode_reading(&e).map(Payload::Reading)
        }
    }
}

/// Whether `wire` starts like a reading or a block: the outer TLV-TYPE is Reading or
/// ReadingBlock and the first element inside is FormatVersion. Looks at a few octets only, so
/// it also answers for truncated input; decoding decides the rest.
pub fn looks_like_reading(wire: &[u8]) -> bool {
    let Some((&t, rest)) = wire.split_first() else {
        return false;
    };
    if u32::from(t) != tt::READING && u32::from(t) != tt::READING_BLOCK {
        return false;
    }
    let Some(&len_first) = rest.first() else {
        return false;
    };
    let skip = amicn_tlv::var_number_width(len_first);
    rest.get(skip).map(|&b| u32::from(b)) == Some(tt::FORMAT_VERSION)
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn one_element(wire: Bytes, base: usize, typ: u32, what: &'static str) -> Result<Element> {
    if wire.is_empty() {
        return Err(ReadingError::Empty);
    }
    let mut r = TlvReader::with_base(wire, base);
    let e = r.read().map_err(tlv_err)?;
    if e.typ != typ {
        return Err(ReadingError::WrongType {
            expected: what,
            found: e.typ,
            offset: base,
        });
    }
    if !r.is_empty() {
        return Err(ReadingError::TrailingBytes {
            what,
            count: r.remaining(),
            offset: r.offset(),
        });
    }
    Ok(e)
}

fn nni_of(e: &Element, what: &'static str) -> Result<u64> {
    e.nni().map_err(|_| ReadingError::BadNni {
        what,
        len: e.value.len(),
        offset: e.offset,
    })
}

fn u32_of(e: &Element, what: &'static str) -> Result<u32> {
    let v = nni_of(e, what)?;
    u32::try_from(v).map_err(|_| ReadingError::OutOfRange {
        what,
        value: v,
        max: u64::from(u32::MAX),
        offset: e.offset,
    })
}

/// Reads the FormatVersion that must open `container`.
fn read_version(r: &mut TlvReader, container: &'static str, offset: usize) -> Result<()> {
    let missing = ReadingError::MissingVersion { container, offset };
    if r.peek_type().map_err(tlv_err)? != Some(tt::FORMAT_VERSION) {
        // A damaged first header is reported as such rather than as a missing version.
        if !r.is_empty() {
            r.clone().read().map_err(tlv_err)?;
        }
        return Err(missing);
    }
    let v = r.read().map_err(tlv_err)?;
    let version = nni_of(&v, "FormatVersion")?;
    if version != FORMAT_VERSION {
        return Err(ReadingError::UnsupportedVersion {
            version,
            offset: v.offset,
        });
    }
    Ok(())
}

/// Reads the elements of a container in order. `fields` lists the known TLV-TYPEs in their
/// order with their names and whether they may repeat; FormatVersion (already read) is
/// refused as a duplicate, unknown non-critical elements are skipped.
fn read_fields(
    r: &mut TlvReader,
    container: &'static str,
    fields: &[(u32, &'static str, bool)],
    mut on: impl FnMut(usize, Element) -> Result<()>,
) -> Result<()> {
    let mut last: Option<usize> = None;
    while !r.is_empty() {
        let e = r.read().map_err(tlv_err)?;
        let Some(idx) = fields.iter().position(|f| f.0 == e.typ) else {
            if e.typ == tt::FORMAT_VERSION && container != "Register" {
                return Err(ReadingError::DuplicateVersion {
                    container,
                    offset: e.offset,
                });
            }
            if is_critical(e.typ) {
                return Err(ReadingError::UnknownCritical {
                    container,
                    typ: e.typ,
                    offset: e.offset,
                });
            }
            continue;
        };
        let (_, what, repeats) = fields[idx];
        match last {
            Some(l) if idx < l => {
                return Err(ReadingError::OutOfOrder {
                    container,
                    what,
                    offset: e.offset,
                });
            }
            Some(l) if idx == l && !repeats => {
                return Err(ReadingError::Duplicate {
                    container,
                    what,
                    offset: e.offset,
                });
            }
            _ => {}
        }
        last = Some(idx);
        on(idx, e)?;
    }
    Ok(())
}

const READING_FIELDS: [(u32, &str, bool); 5] = [
    (tt::METER_ID, "MeterId", false),
    (tt::INTERVAL_START, "IntervalStart", false),
    (tt::INTERVAL_LENGTH, "IntervalLength", false),
    (tt::QUALITY_FLAGS, "QualityFlags", false),
    (tt::REGISTER, "Register", true),
];

fn decode_reading(e: &Element) -> Result<Reading> {
    const C: &str = "Reading";
    let mut r = e.reader();
    read_version(&mut r, C, e.offset)?;
    let (mut meter, mut start, mut interval, mut flags) = (None, None, None, None);
    let mut registers: Vec<Register> = Vec::new();
    let mut seen = HashSet::new();
    read_fields(&mut r, C, &READING_FIELDS, |idx, f| {
        match idx {
            0 => meter = Some(u32_of(&f, "MeterId")?),
            1 => start = Some(nni_of(&f, "IntervalStart")?),
            2 => {
                let v = u32_of(&f, "IntervalLength")?;
                if v == 0 {
                    return Err(ReadingError::ZeroInterval { offset: f.offset });
                }
                interval = Some(v);
            }
            3 => flags = Some(Flags(u32_of(&f, "QualityFlags")?)),
            _ => {
                let reg = decode_register(&f)?;
                if !seen.insert(reg.obis) {
                    return Err(ReadingError::DuplicateRegister {
                        obis: reg.obis,
                        offset: f.offset,
                    });
                }
                registers.push(reg);
            }
        }
        Ok(())
    })?;
    let missing = |what| ReadingError::Missing {
        container: C,
        what,
        offset: e.offset,
    };
    Ok(Reading {
        meter: meter.ok_or_else(|| missing("MeterId"))?,
        start_us: start.ok_or_else(|| missing("IntervalStart"))?,
        interval_ms: interval.ok_or_else(|| missing("IntervalLength"))?,
        flags: flags.ok_or_else(|| missing("QualityFlags"))?,
        registers,
    })
}

const REGISTER_FIELDS: [(u32, &str, bool); 3] = [
    (tt::OBIS, "Obis", false),
    (tt::VALUE, "Value", false),
    (tt::SCALER_UNIT, "ScalerUnit", false),
];

fn decode_register(e: &Element) -> Result<Register> {
    const C: &str = "Register";
    let mut r = e.reader();
    let (mut obis, mut value, mut su) = (None, None, None);
    read_fields(&mut r, C, &REGISTER_FIELDS, |idx, f| {
        match idx {
            0 => {
                let o = <[u8; 6]>::try_from(f.value.as_ref()).map_err(|_| {
                    ReadingError::BadObisLength {
                        len: f.value.len(),
                        offset: f.offset,
                    }
                })?;
                obis = Some(Obis(o));
            }
            1 => value = Some(decode_int(&f.value, f.offset)?),
            _ => {
                let [s, u] = <[u8; 2]>::try_from(f.value.as_ref()).map_err(|_| {
                    ReadingError::BadScalerUnitLength {
                        len: f.value.len(),
                        offset: f.offset,
                    }
                })?;
                su = Some((i8::from_be_bytes([s]), Unit(u)));
            }
        }
        Ok(())
    })?;
    let missing = |what| ReadingError::Missing {
        container: C,
        what,
        offset: e.offset,
    };
    let (scaler, unit) = su.ok_or_else(|| missing("ScalerUnit"))?;
    Ok(Register {
        obis: obis.ok_or_else(|| missing("Obis"))?,
        value: value.ok_or_else(|| missing("Value"))?,
        scaler,
        unit,
    })
}

const BLOCK_FIELDS: [(u32, &str, bool); 2] = [
    (tt::METER_ID, "MeterId", false),
    (tt::READING, "Reading", true),
];

fn decode_block(e: &Element) -> Result<ReadingBlock> {
    const C: &str = "ReadingBlock";
    let mut r = e.reader();
    read_version(&mut r, C, e.offset)?;
    let mut meter = None;
    let mut readings: Vec<Reading> = Vec::new();
    read_fields(&mut r, C, &BLOCK_FIELDS, |idx, f| {
        if idx == 0 {
            meter = Some(u32_of(&f, "MeterId")?);
            return Ok(());
        }
        let reading = decode_reading(&f)?;
        // MeterId precedes every Reading (the order rule), so it is known here.
        let block = meter.ok_or(ReadingError::Missing {
            container: C,
            what: "MeterId",
            offset: e.offset,
        })?;
        if reading.meter != block {
            return Err(ReadingError::BlockMeterMismatch {
                block,
                reading: reading.meter,
                offset: f.offset,
            });
        }
        if readings
            .last()
            .is_some_and(|p| reading.start_us <= p.start_us)
        {
            return Err(ReadingError::BlockOrder { offset: f.offset });
        }
        readings.push(reading);
        Ok(())
    })?;
    let meter = meter.ok_or(ReadingError::Missing {
        container: C,
        what: "MeterId",
        offset: e.offset,
    })?;
    if readings.is_empty() {
        return Err(ReadingError::EmptyBlock { offset: e.offset });
    }
    Ok(ReadingBlock { meter, readings })
}

// ---------------------------------------------------------------------------------------------
// Dissection

/// The element tree of one reading or block (as `amicn dissect` prints it), after decoding it
/// strictly; offsets count from `base`. Skipped non-critical elements appear unlabelled.
pub fn dissect(wire: Bytes, base: usize) -> Result<Node> {
    let payload = decode_any_at(wire.clone(), base)?;
    let mut r = TlvReader::with_base(wire, base);
    let e = r.read().map_err(tlv_err)?;
    let mut node = tree(&e, Ctx::Top)?;
    node.decoded = Some(match &payload {
        Payload::Reading(x) => x.summary(),
        Payload::Block(b) => format!("meter {}, {} readings", b.meter, b.readings.len()),
    });
    Ok(node)
}

#[derive(Clone, Copy)]
enum Ctx {
    Top,
    Reading,
    Register,
    Block,
}

fn tree(e: &Element, ctx: Ctx) -> Result<Node> {
    let label = match (ctx, e.typ) {
        (Ctx::Top | Ctx::Block, tt::READING) => Some("Reading"),
        (Ctx::Top, tt::READING_BLOCK) => Some("ReadingBlock"),
        (Ctx::Reading | Ctx::Block, tt::FORMAT_VERSION) => Some("FormatVersion"),
        (Ctx::Reading | Ctx::Block, tt::METER_ID) => Some("MeterId"),
        (Ctx::Reading, tt::INTERVAL_START) => Some("IntervalStart"),
        (Ctx::Reading, tt::INTERVAL_LENGTH) => Some("IntervalLength"),
        (Ctx::Reading, tt::QUALITY_FLAGS) => Some("QualityFlags"),
        (Ctx::Reading, tt::REGISTER) => Some("Register"),
        (Ctx::Register, tt::OBIS) => Some("Obis"),
        (Ctx::Register, tt::VALUE) => Some("Value"),
        (Ctx::Register, tt::SCALER_UNIT) => Some("ScalerUnit"),
        _ => None,
    };
    let mut node = Node {
        typ: e.typ,
        label,
        offset: e.offset,
        header_len: e.wire.len() - e.value.len(),
        value: e.value.clone(),
        decoded: None,
        children: Vec::new(),
    };
    let nested = match label {
        Some("Reading") => Some(Ctx::Reading),
        Some("ReadingBlock") => Some(Ctx::Block),
        Some("Register") => Some(Ctx::Register),
        _ => None,
    };
    if let Some(inner) = nested {
        for c in e.reader() {
            node.children.push(tree(&c.map_err(tlv_err)?, inner)?);
        }
    }
    let nni = || nni_of(e, "element");
    node.decoded = match label {
        Some("Reading") if matches!(ctx, Ctx::Block) => Some(decode_reading(e)?.summary()),
        Some("FormatVersion" | "MeterId") => Some(nni()?.to_string()),
        Some("IntervalStart") => {
            let v = nni()?;
            Some(format!("{v} µs = {}", utc(v)))
        }
        Some("IntervalLength") => {
            let v = u32_of(e, "IntervalLength")?;
            Some(format!("{v} ms = {}", duration_ms(v)))
        }
        Some("QualityFlags") => Some(Flags(u32_of(e, "QualityFlags")?).to_string()),
        Some("Register") => Some(decode_register(e)?.to_string()),
        Some("Obis") => {
            let o = Obis(<[u8; 6]>::try_from(e.value.as_ref()).unwrap_or_default());
            Some(match o.name() {
                Some(n) => format!("{o} ({n})"),
                None => o.to_string(),
            })
        }
        Some("Value") => Some(decode_int(&e.value, e.offset)?.to_string()),
        Some("ScalerUnit") => match *e.value {
            [s, u] => {
                let unit = Unit(u);
                Some(format!(
                    "scaler {}, unit {u} ({unit})",
                    i8::from_be_bytes([s])
                ))
            }
            _ => None,
        },
        None if !is_critical(e.typ) => Some("unrecognised, non-critical: skipped".into()),
        _ => None,
    };
    Ok(node)
}

// ---------------------------------------------------------------------------------------------
// Human-readable times

/// `2024-01-15T11:45:00Z` (with `.ffffff` when there are microseconds).
fn utc(us: u64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if frac != 0 {
        out.push_str(&format!(".{frac:06}"));
    }
    out.push('Z');
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `15 min`, `900 ms`, `1.5 s`.
fn duration_ms(ms: u32) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    /// The reading of the worked example in the module documentation.
    fn example() -> Reading {
        Reading::new(17, 1_705_319_100_000_000, 900_000)
            .with(Register::new(
                Obis::ACTIVE_IMPORT_ENERGY,
                1_234_567,
                0,
                Unit::WH,
            ))
            .with(Register::new(Obis::ACTIVE_EXPORT_ENERGY, 0, 0, Unit::WH))
            .with(Register::new(
                Obis::REACTIVE_IMPORT_ENERGY,
                98_765,
                0,
                Unit::VARH,
            ))
            .with(Register::new(
                Obis::REACTIVE_EXPORT_ENERGY,
                0,
                0,
                Unit::VARH,
            ))
            .with(Register::new(Obis::ACTIVE_POWER, 1_840, 0, Unit::W))
            .with(Register::new(Obis::VOLTAGE_L1, 2_297, -1, Unit::V))
            .with(Register::new(Obis::CURRENT_L1, 826, -2, Unit::A))
    }

    /// The bytes of the annotated dump in this file's module documentation.
    fn documented_bytes() -> Vec<u8> {
        let src = include_str!("reading.rs");
        let mut lines = src
            .lines()
            .skip_while(|l| !l.starts_with("//! <!-- worked-example"))
            .skip(2);
        let mut out = Vec::new();
        for line in lines.by_ref() {
            let body = line.strip_prefix("//!").unwrap().trim_start();
            if body.starts_with("```") {
                break;
            }
            let hex = body.split("  ").next().unwrap();
            for tok in hex.split(' ') {
                assert_eq!(tok.len(), 2, "{line}");
                out.push(u8::from_str_radix(tok, 16).unwrap());
            }
        }
        out
    }

    #[test]
    fn worked_example_matches_the_docs() {
        let doc = documented_bytes();
        assert_eq!(doc.len(), 153);
        let enc = example().encode().unwrap();
        assert_eq!(hex(&enc), hex(&doc));
        assert_eq!(example().encoded_len(), 153);
        assert_eq!(Reading::decode(&doc).unwrap(), example());
        assert!(looks_like_reading(&doc));
        let r = example();
        assert_eq!(r.end_us(), 1_705_320_000_000_000);
        assert_eq!(r.active_import_wh(), Some(1_234_567));
        assert_eq!(r.active_power_w(), Some(1_840));
        assert_eq!(
            r.to_string().lines().next().unwrap(),
            "reading v1: meter 17, 2024-01-15T11:45:00Z + 15 min, flags 0x00 (none)"
        );
        assert!(
            r.to_string()
                .contains("\n  1-0:32.7.0 voltage L1 = 229.7 V")
        );
        assert!(r.to_string().contains("\n  1-0:31.7.0 current L1 = 8.26 A"));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn tlv(typ: u32, value: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        amicn_tlv::encode_tlv(&mut b, typ, value);
        b.to_vec()
    }

    fn nni(typ: u32, v: u64) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, typ, v);
        b.to_vec()
    }

    fn reg(obis: &[u8], value: &[u8], su: &[u8]) -> Vec<u8> {
        let mut v = tlv(tt::OBIS, obis);
        v.extend(tlv(tt::VALUE, value));
        v.extend(tlv(tt::SCALER_UNIT, su));
        tlv(tt::REGISTER, &v)
    }

    /// A Reading holding `parts`, concatenated.
    fn reading_of(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(tt::READING, &parts.concat())
    }

    fn header() -> Vec<Vec<u8>> {
        vec![
            nni(tt::FORMAT_VERSION, 1),
            nni(tt::METER_ID, 5),
            nni(tt::INTERVAL_START, 1_000_000),
            nni(tt::INTERVAL_LENGTH, 60_000),
            nni(tt::QUALITY_FLAGS, 0),
        ]
    }

    fn with(mut parts: Vec<Vec<u8>>, more: &[Vec<u8>]) -> Vec<u8> {
        parts.extend_from_slice(more);
        reading_of(&parts)
    }

    const E: [u8; 6] = [1, 0, 1, 8, 0, 255];

    #[test]
    fn hand_built_reading_decodes() {
        let w = with(header(), &[reg(&E, &[0x01, 0x00], &[0, 30])]);
        let r = Reading::decode(&w).unwrap();
        assert_eq!((r.meter, r.start_us, r.interval_ms), (5, 1_000_000, 60_000));
        assert_eq!(r.register(Obis::ACTIVE_IMPORT_ENERGY).unwrap().value, 256);
        assert_eq!(r.encode().unwrap().as_ref(), &w[..]);
    }

    #[test]
    fn each_defect_has_its_own_error() {
        use ReadingError as R;
        let ok_reg = reg(&E, &[1], &[0, 30]);
        let d = |w: &[u8]| Reading::decode(w).unwrap_err();
        assert_eq!(d(&[]), R::Empty);
        assert!(matches!(d(&[0xA1, 5, 0xA5]), R::Truncated { .. }));
        assert!(matches!(d(&[0xA1, 0xFD, 0, 3]), R::Framing(_)));
        assert!(matches!(d(&tlv(6, &[])), R::WrongType { found: 6, .. }));
        let mut trailing = with(header(), &[]);
        trailing.push(0);
        assert!(matches!(d(&trailing), R::TrailingBytes { count: 1, .. }));
        let mut h = header();
        h.remove(0);
        assert!(matches!(d(&reading_of(&h)), R::MissingVersion { .. }));
        assert!(matches!(d(&reading_of(&[])), R::MissingVersion { .. }));
        let mut h = header();
        h.insert(1, nni(tt::FORMAT_VERSION, 1));
        assert!(matches!(d(&reading_of(&h)), R::DuplicateVersion { .. }));
        let mut h = header();
        h[0] = nni(tt::FORMAT_VERSION, 2);
        assert!(matches!(
            d(&reading_of(&h)),
            R::UnsupportedVersion { version: 2, .. }
        ));
        let mut h = header();
        h.insert(2, nni(tt::METER_ID, 5));
        assert!(matches!(
            d(&reading_of(&h)),
            R::Duplicate {
                what: "MeterId",
                ..
            }
        ));
        let mut h = header();
        h.swap(1, 2);
        assert!(matches!(
            d(&reading_of(&h)),
            R::OutOfOrder {
                what: "MeterId",
                ..
            }
        ));
        let mut h = header();
        h.pop();
        assert!(matches!(
            d(&reading_of(&h)),
            R::Missing {
                what: "QualityFlags",
                ..
            }
        ));
        assert!(matches!(
            d(&with(header(), &[tlv(0xBF, &[])])),
            R::UnknownCritical { typ: 0xBF, .. }
        ));
        // Even but below 32: critical too.
        assert!(matches!(
            d(&with(header(), &[tlv(30, &[])])),
            R::UnknownCritical { typ: 30, .. }
        ));
        let mut h = header();
        h[1] = tlv(tt::METER_ID, &[0, 0, 1]);
        assert!(matches!(
            d(&reading_of(&h)),
            R::BadNni {
                what: "MeterId",
                len: 3,
                ..
            }
        ));
        let mut h = header();
        h[1] = nni(tt::METER_ID, 1 << 32);
        assert!(matches!(
            d(&reading_of(&h)),
            R::OutOfRange {
                what: "MeterId",
                ..
            }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&[1, 0, 1, 8, 0], &[1], &[0, 30])])),
            R::BadObisLength { len: 5, .. }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&E, &[1], &[0])])),
            R::BadScalerUnitLength { len: 1, .. }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&E, &[], &[0, 30])])),
            R::BadValueLength { len: 0, .. }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&E, &[0; 9], &[0, 30])])),
            R::BadValueLength { len: 9, .. }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&E, &[0x00, 0x7F], &[0, 30])])),
            R::NonMinimalValue { .. }
        ));
        assert!(matches!(
            d(&with(header(), &[reg(&E, &[0xFF, 0x80], &[0, 30])])),
            R::NonMinimalValue { .. }
        ));
        let mut h = header();
        h[3] = nni(tt::INTERVAL_LENGTH, 0);
        assert!(matches!(d(&reading_of(&h)), R::ZeroInterval { .. }));
        assert!(matches!(
            d(&with(header(), &[ok_reg.clone(), ok_reg.clone()])),
            R::DuplicateRegister { .. }
        ));
        // A register without its Value.
        let mut v = tlv(tt::OBIS, &E);
        v.extend(tlv(tt::SCALER_UNIT, &[0, 30]));
        assert!(matches!(
            d(&with(header(), &[tlv(tt::REGISTER, &v)])),
            R::Missing {
                container: "Register",
                what: "Value",
                ..
            }
        ));
        // Registers before the flags.
        let mut h = header();
        let flags = h.pop().unwrap();
        h.push(ok_reg.clone());
        h.push(flags);
        assert!(matches!(
            d(&reading_of(&h)),
            R::OutOfOrder {
                what: "QualityFlags",
                ..
            }
        ));

        let b = |parts: &[Vec<u8>]| ReadingBlock::decode(&tlv(tt::READING_BLOCK, &parts.concat()));
        let r5 = with(header(), &[]);
        let mut later = header();
        later[2] = nni(tt::INTERVAL_START, 2_000_000);
        let r5b = reading_of(&later);
        let mut other = header();
        other[1] = nni(tt::METER_ID, 6);
        let r6 = reading_of(&other);
        let v = nni(tt::FORMAT_VERSION, 1);
        let m = nni(tt::METER_ID, 5);
        assert!(b(&[v.clone(), m.clone(), r5.clone(), r5b.clone()]).is_ok());
        assert!(matches!(
            b(&[v.clone(), m.clone()]).unwrap_err(),
            R::EmptyBlock { .. }
        ));
        assert!(matches!(
            b(&[v.clone(), m.clone(), r6]).unwrap_err(),
            R::BlockMeterMismatch {
                block: 5,
                reading: 6,
                ..
            }
        ));
        assert!(matches!(
            b(&[v.clone(), m.clone(), r5b, r5.clone()]).unwrap_err(),
            R::BlockOrder { .. }
        ));
        assert!(matches!(
            b(&[v.clone(), r5.clone()]).unwrap_err(),
            R::OutOfOrder { .. } | R::Missing { .. }
        ));
        assert!(matches!(
            b(&[m.clone(), r5.clone()]).unwrap_err(),
            R::MissingVersion {
                container: "ReadingBlock",
                ..
            }
        ));
        assert!(matches!(
            ReadingBlock::decode(&r5).unwrap_err(),
            R::WrongType { .. }
        ));
    }

    #[test]
    fn non_critical_elements_are_skipped_and_reserved_flags_kept() {
        let mut h = header();
        h[4] = nni(tt::QUALITY_FLAGS, 0x8000_0009);
        h.insert(2, tlv(0xA2, b"ext"));
        let mut v = tlv(tt::OBIS, &E);
        v.extend(tlv(0xB6, &[1, 2, 3]));
        v.extend(tlv(tt::VALUE, &[5]));
        v.extend(tlv(tt::SCALER_UNIT, &[0, 30]));
        h.push(tlv(tt::REGISTER, &v));
        h.push(tlv(300, &[]));
        let r = Reading::decode(&reading_of(&h)).unwrap();
        assert_eq!(r.flags, Flags(0x8000_0009));
        assert!(r.flags.contains(Flags::ESTIMATED | Flags::POWER_OUTAGE));
        assert_eq!(r.flags.reserved(), 0x8000_0000);
        assert_eq!(
            r.flags.to_string(),
            "0x80000009 (estimated, power-outage, reserved 0x80000000)"
        );
        assert_eq!(r.registers, vec![Register::new(Obis(E), 5, 0, Unit::WH)]);
        let again = Reading::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(again.flags.bits(), 0x8000_0009);
        // The dissected tree shows the skipped elements unlabelled.
        let n = dissect(Bytes::from(reading_of(&h)), 0).unwrap();
        assert!(
            n.children
                .iter()
                .any(|c| c.typ == 0xA2 && c.label.is_none())
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        let mut r = example();
        r.interval_ms = 0;
        assert!(matches!(r.encode(), Err(ReadingError::ZeroInterval { .. })));
        let r = example().with(Register::new(Obis::VOLTAGE_L1, 1, 0, Unit::V));
        assert!(matches!(
            r.encode(),
            Err(ReadingError::DuplicateRegister { .. })
        ));
        let mut later = example();
        later.start_us += 900_000_000;
        let block = ReadingBlock {
            meter: 17,
            readings: vec![later.clone(), example()],
        };
        assert!(matches!(
            block.encode(),
            Err(ReadingError::BlockOrder { .. })
        ));
        let block = ReadingBlock {
            meter: 17,
            readings: vec![example(), later],
        };
        let w = block.encode().unwrap();
        assert_eq!(w.len(), block.encoded_len());
        assert_eq!(ReadingBlock::decode(&w).unwrap(), block);
        assert_eq!(decode_any(&w).unwrap(), Payload::Block(block.clone()));
        assert!(looks_like_reading(&w));
        assert!(
            block
                .to_string()
                .starts_with("reading block v1: meter 17, 2 readings\n  reading v1")
        );
        assert!(matches!(
            ReadingBlock {
                meter: 17,
                readings: vec![]
            }
            .encode(),
            Err(ReadingError::EmptyBlock { .. })
        ));
    }

    #[test]
    fn obis_units_and_values_render() {
        assert_eq!(Obis::ACTIVE_IMPORT_ENERGY.to_string(), "1-0:1.8.0*255");
        assert_eq!(format!("{:#}", Obis::ACTIVE_IMPORT_ENERGY), "1-0:1.8.0");
        assert_eq!(format!("{:#}", Obis::new(1, 0, 1, 8, 1, 3)), "1-0:1.8.1*3");
        assert_eq!(
            "1-0:1.8.0".parse::<Obis>().unwrap(),
            Obis::ACTIVE_IMPORT_ENERGY
        );
        assert_eq!("1-0:32.7.0*255".parse::<Obis>().unwrap(), Obis::VOLTAGE_L1);
        for bad in [
            "",
            "1-0:1.8",
            "1-0:1.8.0.0",
            "1-0:1.8.256",
            "1:0-1.8.0",
            "1-0:1.8.+0",
        ] {
            assert!(bad.parse::<Obis>().is_err(), "{bad}");
        }
        assert_eq!(Unit(30).to_string(), "Wh");
        assert_eq!(Unit(200).to_string(), "unit 200");
        let r = |v, s| Register::new(Obis::VOLTAGE_L1, v, s, Unit::V);
        assert_eq!(r(2297, -1).decimal(), "229.7");
        assert_eq!(r(-5, -3).decimal(), "-0.005");
        assert_eq!(r(5, 3).decimal(), "5000");
        assert_eq!(r(0, 3).decimal(), "0");
        assert_eq!(r(i64::MIN, 0).decimal(), i64::MIN.to_string());
        assert_eq!(r(2297, -1).whole_units(), Some(229));
        assert_eq!(r(-2297, -1).whole_units(), Some(-230));
        assert_eq!(r(7, 3).whole_units(), Some(7000));
        assert_eq!(r(7, 127).whole_units(), None);
        assert_eq!(r(0, 127).whole_units(), Some(0));
        assert_eq!(r(i64::MAX, -128).whole_units(), Some(0));
        assert_eq!(r(-1, -128).whole_units(), Some(-1));
        assert!((r(2297, -1).value_f64() - 229.7).abs() < 1e-9);
        assert_eq!(
            Register::new(Obis::new(0, 0, 96, 7, 21, 255), 3, 0, Unit::COUNT).to_string(),
            "0-0:96.7.21 = 3"
        );
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert!(utc(u64::MAX).ends_with(".551615Z"));
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            32_767,
            32_768,
            i64::MAX,
            i64::MIN,
        ] {
            let b = v.to_be_bytes();
            let n = int_len(v);
            assert_eq!(decode_int(&b[8 - n..], 0).unwrap(), v, "{v}");
            if n > 1 {
                // One octet fewer does not hold it.
                let shorter = decode_int(&b[9 - n..], 0);
                assert_ne!(shorter.ok(), Some(v), "{v}");
            }
        }
    }

    #[test]
    fn dissect_labels_every_field() {
        let n = dissect(example().encode().unwrap(), 10).unwrap();
        assert_eq!(
            (n.label, n.offset, n.children.len()),
            (Some("Reading"), 10, 12)
        );
        let reg = &n.children[5];
        assert_eq!(reg.label, Some("Register"));
        assert_eq!(
            reg.decoded.as_deref(),
            Some("1-0:1.8.0 active import energy = 1234567 Wh")
        );
        assert_eq!(
            reg.children[0].decoded.as_deref(),
            Some("1-0:1.8.0*255 (active import energy)")
        );
        assert_eq!(
            n.children[10].children[2].decoded.as_deref(),
            Some("scaler -1, unit 35 (V)")
        );
        assert_eq!(
            n.children[2].decoded.as_deref(),
            Some("1705319100000000 µs = 2024-01-15T11:45:00Z")
        );
        assert!(dissect(Bytes::from_static(&[0xA1, 0]), 0).is_err());
        // Errors count offsets from the base too.
        let mut w = example().encode().unwrap().to_vec();
        assert_eq!(w[37], 0xB3, "the first register's Value");
        w[37] = 0xB7;
        assert_eq!(
            dissect(Bytes::from(w), 100).unwrap_err(),
            ReadingError::UnknownCritical {
                container: "Register",
                typ: 0xB7,
                offset: 137
            }
        );
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    fn value() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            -70_000i64..70_000,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0)
        ]
    }

    fn register() -> impl Strategy<Value = Register> {
        (any::<[u8; 6]>(), value(), any::<i8>(), any::<u8>())
            .prop_map(|(o, v, s, u)| Register::new(Obis(o), v, s, Unit(u)))
    }

    fn reading() -> impl Strategy<Value = Reading> {
        (
            any::<u32>(),
            prop_oneof![any::<u64>(), 0u64..1_000, Just(u64::MAX)],
            prop_oneof![1u32..=u32::MAX, Just(1u32), Just(u32::MAX)],
            any::<u32>(),
            proptest::collection::vec(register(), 0..10),
        )
            .prop_map(|(meter, start_us, interval_ms, flags, regs)| {
                let mut seen = HashSet::new();
                Reading {
                    meter,
                    start_us,
                    interval_ms,
                    flags: Flags(flags),
                    registers: regs.into_iter().filter(|r| seen.insert(r.obis)).collect(),
                }
            })
    }

    fn block() -> impl Strategy<Value = ReadingBlock> {
        (any::<u32>(), proptest::collection::vec(reading(), 1..6)).prop_map(|(meter, rs)| {
            let mut rs: Vec<Reading> = rs
                .into_iter()
                .map(|mut r| {
                    r.meter = meter;
                    r
                })
                .collect();
            rs.sort_by_key(|r| r.start_us);
            rs.dedup_by_key(|r| r.start_us);
            ReadingBlock {
                meter,
                readings: rs,
            }
        })
    }

    proptest! {
        #[test]
        fn readings_round_trip(r in reading()) {
            let w = r.encode().unwrap();
            prop_assert_eq!(w.len(), r.encoded_len());
            prop_assert!(looks_like_reading(&w));
            let back = Reading::decode(&w).unwrap();
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(back.encode().unwrap(), w.clone());
            prop_assert_eq!(decode_any(&w).unwrap(), Payload::Reading(r));
            prop_assert!(dissect(w, 0).is_ok());
        }

        #[test]
        fn blocks_round_trip(b in block()) {
            let w = b.encode().unwrap();
            prop_assert_eq!(w.len(), b.encoded_len());
            let back = ReadingBlock::decode(&w).unwrap();
            prop_assert_eq!(&back, &b);
            prop_assert_eq!(back.encode().unwrap(), w.clone());
            prop_assert!(dissect(w, 0).is_ok());
        }

        #[test]
        fn every_truncation_is_an_error(r in reading(), b in block()) {
            let w = r.encode().unwrap();
            for k in 0..w.len() {
                prop_assert!(Reading::decode(&w[..k]).is_err(), "prefix {}", k);
                prop_assert!(decode_any(&w[..k]).is_err(), "prefix {}", k);
            }
            let w = b.encode().unwrap();
            for k in 0..w.len() {
                prop_assert!(ReadingBlock::decode(&w[..k]).is_err(), "prefix {}", k);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_any(&b);
            let _ = Reading::decode(&b);
            let _ = ReadingBlock::decode(&b);
            let _ = looks_like_reading(&b);
            let _ = dissect(Bytes::from(b.clone()), 0);
            // The same bytes behind a valid start, so the decoder gets past the header.
            for outer in [tt::READING, tt::READING_BLOCK] {
                let mut v = nni(tt::FORMAT_VERSION, 1);
                v.extend_from_slice(&b);
                let w = tlv(outer, &v);
                let _ = decode_any(&w);
                let _ = dissect(Bytes::from(w), 0);
            }
        }

        #[test]
        fn damaged_encodings_never_panic(
            r in reading(),
            pos in any::<usize>(),
            val in any::<u8>(),
        ) {
            let mut w = r.encode().unwrap().to_vec();
            let i = pos % w.len();
            w[i] = val;
            let _ = decode_any(&w);
            let _ = dissect(Bytes::from(w), 0);
        }
    }
}
