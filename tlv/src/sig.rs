//! Signature types (`signature.rst`) and the SignatureInfo / InterestSignatureInfo element with
//! KeyLocator and ValidityPeriod.

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoding::{encode_nni_tlv, encode_tl, nni_tlv_len, tlv_len};
use crate::fields::Fields;
use crate::{Error, Name, Result, tt};

/// DigestSha256: SHA-256 of the signed portion, 32 octets.
pub const DIGEST_SHA256: u64 = 0;
/// SignatureSha256WithRsa.
pub const SHA256_WITH_RSA: u64 = 1;
/// SignatureSha256WithEcdsa.
pub const SHA256_WITH_ECDSA: u64 = 3;
/// SignatureHmacWithSha256.
pub const HMAC_WITH_SHA256: u64 = 4;
/// SignatureEd25519, 64 octets.
pub const ED25519: u64 = 5;

/// Where to find the key that verifies a signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
// Names carry their component index inline by design; boxing would cost an allocation per decode.
#[allow(clippy::large_enum_variant)]
pub enum KeyLocator {
    /// The name of the key or certificate.
    Name(Name),
    /// A digest of the key.
    KeyDigest(Bytes),
}

impl KeyLocator {
    fn value_len(&self) -> usize {
        match self {
            KeyLocator::Name(n) => n.encoded_len(),
            KeyLocator::KeyDigest(d) => tlv_len(tt::KEY_DIGEST, d.len()),
        }
    }

    /// Encoded length of the whole KeyLocator TLV.
    pub fn encoded_len(&self) -> usize {
        tlv_len(tt::KEY_LOCATOR, self.value_len())
    }

    /// Appends the KeyLocator TLV.
    pub fn encode(&self, buf: &mut BytesMut) {
        encode_tl(buf, tt::KEY_LOCATOR, self.value_len());
        match self {
            KeyLocator::Name(n) => n.encode(buf),
            KeyLocator::KeyDigest(d) => {
                encode_tl(buf, tt::KEY_DIGEST, d.len());
                buf.put_slice(d);
            }
        }
    }

    fn decode_into(out: &mut Option<KeyLocator>, buf: &Bytes, vs: usize, ve: usize) -> Result<()> {
        let mut f = Fields::new(buf, vs, ve, "KeyLocator");
        while let Some(c) = f.next_child()? {
            match c.typ {
                tt::NAME => {
                    f.order(&c, 1)?;
                    let slot = out.insert(KeyLocator::Name(Name::new()));
                    if let KeyLocator::Name(n) = slot {
                        n.decode_into(buf, c.vs, c.ve)?;
                    }
                }
                tt::KEY_DIGEST => {
                    f.order(&c, 1)?;
                    *out = Some(KeyLocator::KeyDigest(buf.slice(c.vs..c.ve)));
                }
                _ => f.unknown(&c)?,
            }
        }
        if out.is_none() {
            return Err(Error::Missing {
                container: "KeyLocator",
                what: "Name or KeyDigest",
            });
        }
        Ok(())
    }
}

/// Certificate validity (`certificate.rst`), as `YYYYMMDDThhmmss` UTC strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidityPeriod {
    /// NotBefore.
    pub not_before: String,
    /// NotAfter.
    pub not_after: String,
}

impl ValidityPeriod {
    /// A period between two Unix times (seconds).
    pub fn from_unix(not_before: u64, not_after: u64) -> ValidityPeriod {
        ValidityPeriod {
            not_before: format_timestamp(not_before),
            not_after: format_timestamp(not_after),
        }
    }

    /// NotBefore as Unix seconds.
    pub fn not_before_unix(&self) -> Option<u64> {
        parse_timestamp(&self.not_before)
    }

    /// NotAfter as Unix seconds.
    pub fn not_after_unix(&self) -> Option<u64> {
        parse_timestamp(&self.not_after)
    }

    /// Whether `unix_secs` lies inside the period (inclusive).
    pub fn contains(&self, unix_secs: u64) -> bool {
        matches!((self.not_before_unix(), self.not_after_unix()), (Some(a), Some(b)) if a <= unix_secs && unix_secs <= b)
    }

    fn value_len(&self) -> usize {
        tlv_len(tt::NOT_BEFORE, self.not_before.len())
            + tlv_len(tt::NOT_AFTER, self.not_after.len())
    }

    fn encoded_len(&self) -> usize {
        tlv_len(tt::VALIDITY_PERIOD, self.value_len())
    }

    fn encode(&self, buf: &mut BytesMut) {
        encode_tl(buf, tt::VALIDITY_PERIOD, self.value_len());
        encode_tl(buf, tt::NOT_BEFORE, self.not_before.len());
        buf.put_slice(self.not_before.as_bytes());
        encode_tl(buf, tt::NOT_AFTER, self.not_after.len());
        buf.put_slice(self.not_after.as_bytes());
    }

    fn decode_range(buf: &Bytes, vs: usize, ve: usize) -> Result<ValidityPeriod> {
        let mut f = Fields::new(buf, vs, ve, "ValidityPeriod");
        let (mut nb, mut na) = (None, None);
        while let Some(c) = f.next_child()? {
            let slot = match c.typ {
                tt::NOT_BEFORE => {
                    f.order(&c, 1)?;
                    &mut nb
                }
                tt::NOT_AFTER => {
                    f.order(&c, 2)?;
                    &mut na
                }
                _ => {
                    f.unknown(&c)?;
                    continue;
                }
            };
            let v = f.value(&c);
            if parse_timestamp_bytes(v).is_none() {
                return Err(Error::Invalid {
                    what: "ValidityPeriod",
                    reason: "time must be YYYYMMDDThhmmss",
                    offset: c.start,
                });
            }
            *slot = Some(String::from_utf8_lossy(v).into_owned());
        }
        match (nb, na) {
            (Some(not_before), Some(not_after)) => Ok(ValidityPeriod {
                not_before,
                not_after,
            }),
            _ => Err(Error::Missing {
                container: "ValidityPeriod",
                what: "NotBefore and NotAfter",
            }),
        }
    }
}

// Civil-date conversion (proleptic Gregorian, days since 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats Unix seconds as `YYYYMMDDThhmmss`.
pub fn format_timestamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses `YYYYMMDDThhmmss` into Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    parse_timestamp_bytes(s.as_bytes())
}

fn parse_timestamp_bytes(b: &[u8]) -> Option<u64> {
    if b.len() != 15 || b.get(8) != Some(&b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = b.get(r)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(s.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || y < 1970
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// SignatureInfo (Data, type 22) or InterestSignatureInfo (type 44).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureInfo {
    /// SignatureType (see the constants in this module).
    pub sig_type: u64,
    /// KeyLocator.
    pub key_locator: Option<KeyLocator>,
    /// SignatureNonce (signed Interests).
    pub nonce: Option<Bytes>,
    /// SignatureTime, ms since the Unix epoch (signed Interests).
    pub time_ms: Option<u64>,
    /// SignatureSeqNum (signed Interests).
    pub seq_num: Option<u64>,
    /// ValidityPeriod (certificates).
    pub validity: Option<ValidityPeriod>,
}

impl SignatureInfo {
    /// A SignatureInfo with only a SignatureType.
    pub fn new(sig_type: u64) -> SignatureInfo {
        SignatureInfo {
            sig_type,
            ..SignatureInfo::default()
        }
    }

    /// DigestSha256 with no KeyLocator.
    pub fn digest_sha256() -> SignatureInfo {
        SignatureInfo::new(DIGEST_SHA256)
    }

    /// A SignatureInfo of `sig_type` naming the signing key.
    pub fn with_key(sig_type: u64, key: Name) -> SignatureInfo {
        SignatureInfo {
            sig_type,
            key_locator: Some(KeyLocator::Name(key)),
            ..SignatureInfo::default()
        }
    }

    /// Length of the TLV-VALUE.
    pub fn value_len(&self) -> usize {
        nni_tlv_len(tt::SIGNATURE_TYPE, self.sig_type)
            + self.key_locator.as_ref().map_or(0, KeyLocator::encoded_len)
            + self
                .nonce
                .as_ref()
                .map_or(0, |n| tlv_len(tt::SIGNATURE_NONCE, n.len()))
            + self
                .time_ms
                .map_or(0, |t| nni_tlv_len(tt::SIGNATURE_TIME, t))
            + self
                .seq_num
                .map_or(0, |t| nni_tlv_len(tt::SIGNATURE_SEQ_NUM, t))
            + self
                .validity
                .as_ref()
                .map_or(0, ValidityPeriod::encoded_len)
    }

    /// Encoded length of the whole element with outer type `typ`.
    pub fn encoded_len(&self, typ: u32) -> usize {
        tlv_len(typ, self.value_len())
    }

    /// Appends the element with outer type `typ` (22 for Data, 44 for Interest).
    pub fn encode(&self, buf: &mut BytesMut, typ: u32) {
        encode_tl(buf, typ, self.value_len());
        encode_nni_tlv(buf, tt::SIGNATURE_TYPE, self.sig_type);
        if let Some(k) = &self.key_locator {
            k.encode(buf);
        }
        if let Some(n) = &self.nonce {
            encode_tl(buf, tt::SIGNATURE_NONCE, n.len());
            buf.put_slice(n);
        }
        if let Some(t) = self.time_ms {
            encode_nni_tlv(buf, tt::SIGNATURE_TIME, t);
        }
        if let Some(t) = self.seq_num {
            encode_nni_tlv(buf, tt::SIGNATURE_SEQ_NUM, t);
        }
        if let Some(v) = &self.validity {
            v.encode(buf);
        }
    }

    /// Decodes a whole SignatureInfo or InterestSignatureInfo TLV.
    pub fn decode(wire: Bytes) -> Result<SignatureInfo> {
        let (typ, vs, ve) = crate::encoding::parse_tlv(&wire, 0, "SignatureInfo")?;
        if typ != tt::SIGNATURE_INFO && typ != tt::INTEREST_SIGNATURE_INFO {
            return Err(Error::UnexpectedType {
                what: "SignatureInfo",
                expected: tt::SIGNATURE_INFO,
                found: typ,
                offset: 0,
            });
        }
        if ve != wire.len() {
            return Err(Error::TrailingBytes {
                what: "SignatureInfo",
                count: wire.len() - ve,
                offset: ve,
            });
        }
        SignatureInfo::decode_range(&wire, vs, ve)
    }

    pub(crate) fn decode_range(buf: &Bytes, vs: usize, ve: usize) -> Result<SignatureInfo> {
        let mut si = SignatureInfo::default();
        si.fill(buf, vs, ve)?;
        Ok(si)
    }

    /// Decodes into a default-valued `self`, avoiding a move of the (large) result.
    pub(crate) fn fill(&mut self, buf: &Bytes, vs: usize, ve: usize) -> Result<()> {
        let si = self;
        let mut f = Fields::new(buf, vs, ve, "SignatureInfo");
        let mut have_type = false;
        while let Some(c) = f.next_child()? {
            match c.typ {
                tt::SIGNATURE_TYPE => {
                    f.order(&c, 1)?;
                    si.sig_type = f.nni(&c)?;
                    have_type = true;
                }
                tt::KEY_LOCATOR => {
                    f.order(&c, 2)?;
                    KeyLocator::decode_into(&mut si.key_locator, buf, c.vs, c.ve)?;
                }
                tt::SIGNATURE_NONCE => {
                    f.order(&c, 3)?;
                    si.nonce = Some(buf.slice(c.vs..c.ve));
                }
                tt::SIGNATURE_TIME => {
                    f.order(&c, 4)?;
                    si.time_ms = Some(f.nni(&c)?);
                }
                tt::SIGNATURE_SEQ_NUM => {
                    f.order(&c, 5)?;
                    si.seq_num = Some(f.nni(&c)?);
                }
                tt::VALIDITY_PERIOD => {
                    f.order(&c, 6)?;
                    si.validity = Some(ValidityPeriod::decode_range(buf, c.vs, c.ve)?);
                }
                _ => f.unknown(&c)?,
            }
        }
        if !have_type {
            return Err(Error::Missing {
                container: "SignatureInfo",
                what: "SignatureType",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "19700101T000000");
        assert_eq!(format_timestamp(1_700_000_000), "20231114T221320");
        assert_eq!(parse_timestamp("20231114T221320"), Some(1_700_000_000));
        assert_eq!(
            parse_timestamp("20240229T000000")
                .map(format_timestamp)
                .as_deref(),
            Some("20240229T000000")
        );
        assert_eq!(parse_timestamp("2023111T221320"), None);
        assert_eq!(parse_timestamp("20231314T221320"), None);
        let vp = ValidityPeriod::from_unix(10, 20);
        assert!(vp.contains(15) && !vp.contains(21) && !vp.contains(9));
    }

    #[test]
    fn signature_info_round_trip() {
        let si = SignatureInfo {
            sig_type: ED25519,
            key_locator: Some(KeyLocator::Name(Name::from_uri("/a/KEY/k").unwrap())),
            nonce: Some(Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8])),
            time_ms: Some(1_700_000_000_000),
            seq_num: Some(7),
            validity: Some(ValidityPeriod::from_unix(0, 1_700_000_000)),
        };
        let mut b = BytesMut::new();
        si.encode(&mut b, tt::SIGNATURE_INFO);
        assert_eq!(b.len(), si.encoded_len(tt::SIGNATURE_INFO));
        assert_eq!(SignatureInfo::decode(b.freeze()).unwrap(), si);
        let kd = SignatureInfo {
            key_locator: Some(KeyLocator::KeyDigest(Bytes::from_static(b"abc"))),
            ..SignatureInfo::digest_sha256()
        };
        let mut b = BytesMut::new();
        kd.encode(&mut b, tt::INTEREST_SIGNATURE_INFO);
        assert_eq!(
            b.to_vec(),
            [44, 10, 27, 1, 0, 28, 5, 29, 3, b'a', b'b', b'c']
        );
        assert_eq!(SignatureInfo::decode(b.freeze()).unwrap(), kd);
    }

    #[test]
    fn signature_info_rules() {
        // Missing SignatureType.
        assert!(SignatureInfo::decode(Bytes::from_static(&[22, 0])).is_err());
        // Unknown non-critical element is skipped, critical one rejected.
        assert!(SignatureInfo::decode(Bytes::from_static(&[22, 5, 27, 1, 0, 100, 0])).is_ok());
        assert!(matches!(
            SignatureInfo::decode(Bytes::from_static(&[22, 5, 27, 1, 0, 101, 0])),
            Err(Error::UnknownCritical {
                typ: 101,
                offset: 5,
                ..
            })
        ));
        // Out of order.
        assert!(SignatureInfo::decode(Bytes::from_static(&[22, 6, 40, 1, 0, 27, 1, 0])).is_err());
        // Bad NNI length.
        assert!(SignatureInfo::decode(Bytes::from_static(&[22, 5, 27, 3, 0, 0, 0])).is_err());
    }
}
