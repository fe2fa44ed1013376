//! Prefix announcements (NDN PrefixAnnouncement protocol): a Data named
//! `/<prefix>/32=PA/<version>/<segment>` with ContentType PREFIX_ANN whose Content holds an
//! ExpirationPeriod and optionally a ValidityPeriod.

use amicn_tlv::sig::parse_timestamp;
use amicn_tlv::tt::{self, content_type};
use amicn_tlv::{Data, Name, TlvReader, decode_nni};

/// Cost of a route created from a prefix announcement (NFD `PA_ROUTE_COST`).
pub(crate) const ROUTE_COST: u64 = 2048;

/// The announced prefix and how long the route may live (ms from now, 0 = already expired),
/// or `None` if `pa` is not a well-formed announcement.
pub(crate) fn parse(pa: &Data, now_unix_ms: u64) -> Option<(Name, u64)> {
    if pa.meta_info.content_type != content_type::PREFIX_ANN {
        return None;
    }
    let n = pa.name.len();
    let keyword = pa.name.get(n.checked_sub(3)?)?;
    if keyword.typ() != tt::KEYWORD_COMPONENT || keyword.value() != b"PA" {
        return None;
    }
    pa.name.get(n - 2)?.as_version()?;
    pa.name.get(n - 1)?.as_segment()?;
    let mut expiration = None;
    let mut validity_end_ms = None;
    let mut r = TlvReader::new(pa.content.clone());
    while !r.is_empty() {
        let el = r.read().ok()?;
        match el.typ {
            amicn_tlv::mgmt::EXPIRATION_PERIOD => {
                expiration = Some(decode_nni(&el.value, el.typ, 0).ok()?);
            }
            tt::VALIDITY_PERIOD => {
                let (not_before, not_after) = validity(el.value.clone())?;
                let now_s = now_unix_ms / 1000;
                validity_end_ms = Some(if (not_before..=not_after).contains(&now_s) {
                    not_after.saturating_sub(now_s).saturating_mul(1000)
                } else {
                    0
                });
            }
            t if t <= 31 || t % 2 == 1 => return None,
            _ => {}
        }
    }
    let lifetime = expiration?.min(validity_end_ms.unwrap_or(u64::MAX));
    Some((pa.name.prefix(n - 3), lifetime))
}

/// NotBefore and NotAfter of a ValidityPeriod value, as Unix seconds.
fn validity(value: bytes::Bytes) -> Option<(u64, u64)> {
    let mut r = TlvReader::new(value);
    let nb = r.read().ok().filter(|e| e.typ == tt::NOT_BEFORE)?;
    let na = r.read().ok().filter(|e| e.typ == tt::NOT_AFTER)?;
    let nb = parse_timestamp(std::str::from_utf8(&nb.value).ok()?)?;
    let na = parse_timestamp(std::str::from_utf8(&na.value).ok()?)?;
    Some((nb, na))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_tlv::{Component, encode_nni_tlv, encode_tlv};
    use bytes::BytesMut;

    pub(crate) fn make(prefix: &str, expiration_ms: u64, validity: Option<(u64, u64)>) -> Data {
        let name = Name::from_uri(prefix)
            .unwrap()
            .append(Component::keyword(bytes::Bytes::from_static(b"PA")))
            .append(Component::version(1))
            .append(Component::segment(0));
        let mut c = BytesMut::new();
        encode_nni_tlv(&mut c, amicn_tlv::mgmt::EXPIRATION_PERIOD, expiration_ms);
        if let Some((a, b)) = validity {
            let mut v = BytesMut::new();
            encode_tlv(
                &mut v,
                tt::NOT_BEFORE,
                amicn_tlv::sig::format_timestamp(a).as_bytes(),
            );
            encode_tlv(
                &mut v,
                tt::NOT_AFTER,
                amicn_tlv::sig::format_timestamp(b).as_bytes(),
            );
            encode_tlv(&mut c, tt::VALIDITY_PERIOD, &v);
        }
        let mut d = Data::new(name, c.freeze());
        d.meta_info.content_type = content_type::PREFIX_ANN;
        let wire = d.sign_digest_sha256();
        Data::decode(wire).unwrap()
    }

    #[test]
    fn expiration_and_validity_bound_the_lifetime() {
        let now_ms = 1_700_000_000_000;
        let pa = make("/p/q", 60_000, None);
        assert_eq!(
            parse(&pa, now_ms),
            Some((Name::from_uri("/p/q").unwrap(), 60_000))
        );
        let pa = make("/p", 3_600_000, Some((1_699_999_000, 1_700_000_010)));
        assert_eq!(parse(&pa, now_ms).unwrap().1, 10_000);
        let pa = make("/p", 3_600_000, Some((1_600_000_000, 1_600_000_010)));
        assert_eq!(
            parse(&pa, now_ms).unwrap().1,
            0,
            "outside validity: expired"
        );
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let mut pa = make("/p", 1000, None);
        pa.meta_info.content_type = content_type::BLOB;
        assert!(parse(&pa, 0).is_none());
        let mut pa = make("/p", 1000, None);
        pa.name = Name::from_uri("/p/v=1/seg=0").unwrap();
        assert!(parse(&pa, 0).is_none());
        let mut pa = make("/p", 1000, None);
        pa.content = bytes::Bytes::new();
        assert!(parse(&pa, 0).is_none(), "ExpirationPeriod is required");
    }
}
