//! The Interest packet (`interest.rst`), including ForwardingHint, signed-Interest fields, the
//! signed portion and the ParametersSha256DigestComponent computation.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::encoding::{encode_nni_tlv, encode_tl, nni_tlv_len, tlv_len};
use crate::fields::{Fields, outer};
use crate::{Error, Name, Result, SignatureInfo, tt};

/// Interest lifetime used when the packet carries none (`interest.rst`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_millis(4000);

/// An Interest. Fields are public; [`Interest::wire`] keeps the bytes it was decoded from so a
/// forwarder can pass them on without re-encoding.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    /// Name.
    pub name: Name,
    /// CanBePrefix.
    pub can_be_prefix: bool,
    /// MustBeFresh.
    pub must_be_fresh: bool,
    /// ForwardingHint names (empty when absent).
    pub forwarding_hint: Vec<Name>,
    /// Nonce (4 octets).
    pub nonce: Option<u32>,
    /// InterestLifetime in milliseconds.
    pub lifetime_ms: Option<u64>,
    /// HopLimit.
    pub hop_limit: Option<u8>,
    /// ApplicationParameters.
    pub app_parameters: Option<Bytes>,
    /// InterestSignatureInfo.
    pub signature_info: Option<SignatureInfo>,
    /// InterestSignatureValue.
    pub signature_value: Option<Bytes>,
    wire: Option<Bytes>,
    // Offsets in `wire` of ApplicationParameters and InterestSignatureValue (0 when absent).
    params_at: u32,
    sig_value_at: u32,
}

impl PartialEq for Interest {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.can_be_prefix == o.can_be_prefix
            && self.must_be_fresh == o.must_be_fresh
            && self.forwarding_hint == o.forwarding_hint
            && self.nonce == o.nonce
            && self.lifetime_ms == o.lifetime_ms
            && self.hop_limit == o.hop_limit
            && self.app_parameters == o.app_parameters
            && self.signature_info == o.signature_info
            && self.signature_value == o.signature_value
    }
}

impl Eq for Interest {}

impl Interest {
    /// An Interest for `name` with every optional field absent.
    pub fn new(name: Name) -> Interest {
        Interest {
            name,
            ..Interest::default()
        }
    }

    /// The bytes this Interest was decoded from, if it was decoded and not re-signed since.
    pub fn wire(&self) -> Option<&Bytes> {
        self.wire.as_ref()
    }

    /// Forgets the original wire bytes (call after changing fields of a decoded Interest whose
    /// [`Interest::wire`] someone might otherwise reuse).
    pub fn clear_wire(&mut self) {
        self.wire = None;
        self.params_at = 0;
        self.sig_value_at = 0;
    }

    /// InterestLifetime, or the 4 s default.
    pub fn lifetime(&self) -> Duration {
        self.lifetime_ms
            .map_or(DEFAULT_LIFETIME, Duration::from_millis)
    }

    /// Whether the Interest carries InterestSignatureInfo.
    pub fn is_signed(&self) -> bool {
        self.signature_info.is_some()
    }

    /// Decodes an Interest TLV, keeping `wire` as the backing buffer of every field.
    pub fn decode(wire: Bytes) -> Result<Interest> {
        // Filled in place inside the value that is returned: an Interest is several hundred
        // bytes, and moving it out of a local showed up as a third of the decode time.
        let mut out = Ok(Interest::default());
        if let Ok(i) = &mut out
            && let Err(e) = i.fill(wire)
        {
            out = Err(e);
        }
        out
    }

    fn fill(&mut self, wire: Bytes) -> Result<()> {
        let i = self;
        let (vs, ve) = outer(&wire, tt::INTEREST, "Interest")?;
        let mut f = Fields::new(&wire, vs, ve, "Interest");
        let mut have_name = false;
        while let Some(c) = f.next_child()? {
            match c.typ {
                tt::NAME => {
                    f.order(&c, 1)?;
                    i.name.decode_into(&wire, c.vs, c.ve)?;
                    have_name = true;
                }
                _ if !have_name => {
                    return Err(Error::UnexpectedType {
                        what: "Name",
                        expected: tt::NAME,
                        found: c.typ,
                        offset: c.start,
                    });
                }
                tt::CAN_BE_PREFIX => {
                    f.order(&c, 2)?;
                    empty(&c, "CanBePrefix")?;
                    i.can_be_prefix = true;
                }
                tt::MUST_BE_FRESH => {
                    f.order(&c, 3)?;
                    empty(&c, "MustBeFresh")?;
                    i.must_be_fresh = true;
                }
                tt::FORWARDING_HINT => {
                    f.order(&c, 4)?;
                    i.forwarding_hint = decode_hint(&wire, c.vs, c.ve)?;
                }
                tt::NONCE => {
                    f.order(&c, 5)?;
                    match *f.value(&c) {
                        [a, b, cc, d] => i.nonce = Some(u32::from_be_bytes([a, b, cc, d])),
                        _ => return Err(invalid("Nonce", "must be 4 octets", c.start)),
                    }
                }
                tt::INTEREST_LIFETIME => {
                    f.order(&c, 6)?;
                    i.lifetime_ms = Some(f.nni(&c)?);
                }
                tt::HOP_LIMIT => {
                    f.order(&c, 7)?;
                    match *f.value(&c) {
                        [h] => i.hop_limit = Some(h),
                        _ => return Err(invalid("HopLimit", "must be 1 octet", c.start)),
                    }
                }
                tt::APPLICATION_PARAMETERS => {
                    f.order(&c, 8)?;
                    i.app_parameters = Some(wire.slice(c.vs..c.ve));
                    i.params_at = c.start as u32;
                }
                tt::INTEREST_SIGNATURE_INFO => {
                    f.order(&c, 9)?;
                    i.signature_info = Some(SignatureInfo::decode_range(&wire, c.vs, c.ve)?);
                }
                tt::INTEREST_SIGNATURE_VALUE => {
                    f.order(&c, 10)?;
                    i.signature_value = Some(wire.slice(c.vs..c.ve));
                    i.sig_value_at = c.start as u32;
                }
                _ => f.unknown(&c)?,
            }
        }
        if !have_name {
            return Err(Error::Missing {
                container: "Interest",
                what: "Name",
            });
        }
        if i.signature_info.is_some() != i.signature_value.is_some() {
            return Err(Error::Missing {
                container: "signed Interest",
                what: "InterestSignatureInfo and InterestSignatureValue together",
            });
        }
        if i.signature_info.is_some() && i.app_parameters.is_none() {
            return Err(Error::Missing {
                container: "signed Interest",
                what: "ApplicationParameters",
            });
        }
        let digests = count_params_digests(&i.name);
        match (i.app_parameters.is_some(), digests) {
            (false, 0) | (true, 1) => {}
            (true, 0) => {
                return Err(Error::Missing {
                    container: "Interest with ApplicationParameters",
                    what: "ParametersSha256DigestComponent",
                });
            }
            (false, _) => {
                return Err(invalid(
                    "Interest",
                    "ParametersSha256DigestComponent without ApplicationParameters",
                    vs,
                ));
            }
            (true, _) => {
                return Err(invalid(
                    "Interest",
                    "more than one ParametersSha256DigestComponent",
                    vs,
                ));
            }
        }
        i.wire = Some(wire);
        Ok(())
    }

    /// Length of the TLV-VALUE of the parameters part (ApplicationParameters through
    /// InterestSignatureValue).
    fn tail_len(&self) -> usize {
        let mut n = 0;
        if let Some(p) = &self.app_parameters {
            n += tlv_len(tt::APPLICATION_PARAMETERS, p.len());
            if let Some(si) = &self.signature_info {
                n += si.encoded_len(tt::INTEREST_SIGNATURE_INFO);
            }
            if let Some(sv) = &self.signature_value {
                n += tlv_len(tt::INTEREST_SIGNATURE_VALUE, sv.len());
            }
        }
        n
    }

    fn encode_tail(&self, buf: &mut BytesMut, with_value: bool) {
        if let Some(p) = &self.app_parameters {
            encode_tl(buf, tt::APPLICATION_PARAMETERS, p.len());
            buf.put_slice(p);
            if let Some(si) = &self.signature_info {
                si.encode(buf, tt::INTEREST_SIGNATURE_INFO);
            }
            if with_value && let Some(sv) = &self.signature_value {
                encode_tl(buf, tt::INTEREST_SIGNATURE_VALUE, sv.len());
                buf.put_slice(sv);
            }
        }
    }

    fn middle_len(&self) -> usize {
        let mut n = 0;
        if self.can_be_prefix {
            n += 2;
        }
        if self.must_be_fresh {
            n += 2;
        }
        if !self.forwarding_hint.is_empty() {
            n += tlv_len(tt::FORWARDING_HINT, self.hint_len());
        }
        if self.nonce.is_some() {
            n += 6;
        }
        if let Some(l) = self.lifetime_ms {
            n += nni_tlv_len(tt::INTEREST_LIFETIME, l);
        }
        if self.hop_limit.is_some() {
            n += 3;
        }
        n
    }

    fn hint_len(&self) -> usize {
        self.forwarding_hint.iter().map(Name::encoded_len).sum()
    }

    /// Encoded length of the whole Interest TLV [`Interest::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        let name_value = self.name.value_wire().len() + self.digest_growth();
        tlv_len(
            tt::INTEREST,
            tlv_len(tt::NAME, name_value) + self.middle_len() + self.tail_len(),
        )
    }

    fn digest_growth(&self) -> usize {
        if self.app_parameters.is_some() && self.name.params_digest_index().is_none() {
            34
        } else {
            0
        }
    }

    /// Encodes the Interest. When ApplicationParameters are present, the name's
    /// ParametersSha256DigestComponent is (re)computed, or appended if missing, so the result is
    /// always a valid packet.
    pub fn encode(&self) -> Bytes {
        let mut tail = BytesMut::new();
        let digest = if self.app_parameters.is_some() {
            tail.reserve(self.tail_len());
            self.encode_tail(&mut tail, true);
            Some(sha256(&tail))
        } else {
            None
        };
        let name_value = self.name.value_wire().len() + self.digest_growth();
        let value_len = tlv_len(tt::NAME, name_value) + self.middle_len() + tail.len();
        let mut buf = BytesMut::with_capacity(tlv_len(tt::INTEREST, value_len));
        encode_tl(&mut buf, tt::INTEREST, value_len);
        encode_tl(&mut buf, tt::NAME, name_value);
        match digest {
            None => buf.put_slice(self.name.value_wire()),
            Some(d) => {
                let mut replaced = false;
                for k in 0..self.name.len() {
                    if !replaced
                        && self.name.component_type(k)
                            == Some(tt::PARAMETERS_SHA256_DIGEST_COMPONENT)
                    {
                        encode_tl(&mut buf, tt::PARAMETERS_SHA256_DIGEST_COMPONENT, 32);
                        buf.put_slice(&d);
                        replaced = true;
                    } else if let Some(w) = self.name.component_wire(k) {
                        buf.put_slice(w);
                    }
                }
                if !replaced {
                    encode_tl(&mut buf, tt::PARAMETERS_SHA256_DIGEST_COMPONENT, 32);
                    buf.put_slice(&d);
                }
            }
        }
        if self.can_be_prefix {
            encode_tl(&mut buf, tt::CAN_BE_PREFIX, 0);
        }
        if self.must_be_fresh {
            encode_tl(&mut buf, tt::MUST_BE_FRESH, 0);
        }
        if !self.forwarding_hint.is_empty() {
            encode_tl(&mut buf, tt::FORWARDING_HINT, self.hint_len());
            for n in &self.forwarding_hint {
                n.encode(&mut buf);
            }
        }
        if let Some(n) = self.nonce {
            encode_tl(&mut buf, tt::NONCE, 4);
            buf.put_u32(n);
        }
        if let Some(l) = self.lifetime_ms {
            encode_nni_tlv(&mut buf, tt::INTEREST_LIFETIME, l);
        }
        if let Some(h) = self.hop_limit {
            encode_tl(&mut buf, tt::HOP_LIMIT, 1);
            buf.put_u8(h);
        }
        buf.put_slice(&tail);
        buf.freeze()
    }

    /// Sets the name's ParametersSha256DigestComponent to match the current parameters (no-op
    /// without ApplicationParameters).
    pub fn update_params_digest(&mut self) {
        let Some(d) = self.compute_params_digest() else {
            return;
        };
        let comp = crate::Component::params_sha256_digest(d);
        self.name = match self.name.params_digest_index() {
            Some(k) => {
                let mut n = self.name.prefix(k).append(comp);
                for c in self.name.iter().skip(k + 1) {
                    n = n.append(c);
                }
                n
            }
            None => self.name.append(comp),
        };
        self.clear_wire();
    }

    /// SHA-256 over ApplicationParameters through the end of the Interest, the value the
    /// ParametersSha256DigestComponent must carry; `None` without ApplicationParameters.
    pub fn compute_params_digest(&self) -> Option<[u8; 32]> {
        self.app_parameters.as_ref()?;
        if let Some(w) = &self.wire
            && self.params_at != 0
        {
            return w.get(self.params_at as usize..).map(sha256);
        }
        let mut tail = BytesMut::with_capacity(self.tail_len());
        self.encode_tail(&mut tail, true);
        Some(sha256(&tail))
    }

    /// Whether the ParametersSha256DigestComponent is present exactly when ApplicationParameters
    /// are, and carries the correct digest.
    pub fn check_params_digest(&self) -> bool {
        match (
            self.compute_params_digest(),
            self.name.params_digest_index(),
        ) {
            (None, None) => true,
            (Some(d), Some(k)) => self.name.get(k).is_some_and(|c| c.value() == d),
            _ => false,
        }
    }

    /// The bytes a signed-Interest signature covers (`signed-interest.rst`): every name
    /// component except the ParametersSha256DigestComponent, then ApplicationParameters through
    /// InterestSignatureInfo.
    pub fn signed_portion(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.name.value_wire().len() + self.tail_len());
        for k in 0..self.name.len() {
            if self.name.component_type(k) != Some(tt::PARAMETERS_SHA256_DIGEST_COMPONENT)
                && let Some(w) = self.name.component_wire(k)
            {
                buf.put_slice(w);
            }
        }
        match &self.wire {
            Some(w) if self.params_at != 0 && self.sig_value_at > self.params_at => {
                buf.put_slice(
                    w.get(self.params_at as usize..self.sig_value_at as usize)
                        .unwrap_or(&[]),
                );
            }
            _ => self.encode_tail(&mut buf, false),
        }
        buf.freeze()
    }

    /// Signs the Interest: sets empty ApplicationParameters if there are none, installs
    /// `sig_info`, signs the signed portion with `signer`, fixes the parameters digest and
    /// returns the encoded packet.
    pub fn sign_with(
        &mut self,
        sig_info: SignatureInfo,
        signer: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Bytes {
        if self.app_parameters.is_none() {
            self.app_parameters = Some(Bytes::new());
        }
        self.signature_info = Some(sig_info);
        self.signature_value = None;
        self.clear_wire();
        let portion = self.signed_portion();
        self.signature_value = Some(Bytes::from(signer(&portion)));
        self.update_params_digest();
        self.encode()
    }

    /// Whether a DigestSha256 signature over the signed portion is correct (false when unsigned
    /// or signed with another type).
    pub fn verify_digest_sha256(&self) -> bool {
        match (&self.signature_info, &self.signature_value) {
            (Some(si), Some(sv)) if si.sig_type == crate::sig::DIGEST_SHA256 => {
                sha256(&self.signed_portion())[..] == sv[..]
            }
            _ => false,
        }
    }

    /// Signs with DigestSha256 (SHA-256 of the signed portion).
    pub fn sign_digest_sha256(&mut self, sig_info: SignatureInfo) -> Bytes {
        self.sign_with(sig_info, |p| sha256(p).to_vec())
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn count_params_digests(name: &Name) -> usize {
    // TLV-TYPE 2 is always the single octet 0x02 in shortest form.
    (0..name.len())
        .filter(|&k| name.component_wire(k).and_then(|w| w.first()) == Some(&2))
        .count()
}

fn decode_hint(buf: &Bytes, vs: usize, ve: usize) -> Result<Vec<Name>> {
    let mut f = Fields::new(buf, vs, ve, "ForwardingHint");
    let mut out = Vec::new();
    while let Some(c) = f.next_child()? {
        match c.typ {
            tt::NAME => out.push(Name::from_range(buf, c.vs, c.ve)?),
            _ => f.unknown(&c)?,
        }
    }
    if out.is_empty() {
        return Err(Error::Missing {
            container: "ForwardingHint",
            what: "Name",
        });
    }
    Ok(out)
}

fn empty(c: &crate::fields::Child, what: &'static str) -> Result<()> {
    if c.ve == c.vs {
        Ok(())
    } else {
        Err(invalid(what, "must be empty", c.start))
    }
}

fn invalid(what: &'static str, reason: &'static str, offset: usize) -> Error {
    Error::Invalid {
        what,
        reason,
        offset,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::name::tests::hex;

    fn unhex(s: &str) -> Bytes {
        Bytes::from(
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn golden_simple_interest() {
        let mut i = Interest::new(Name::from_uri("/a/b").unwrap());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        i.nonce = Some(0x01020304);
        i.lifetime_ms = Some(4000);
        i.hop_limit = Some(64);
        let w = i.encode();
        assert_eq!(
            hex(&w),
            "05190706080161080162210012000a04010203040c020fa0220140"
        );
        assert_eq!(w.len(), i.encoded_len());
        let d = Interest::decode(w.clone()).unwrap();
        assert_eq!(d, i);
        assert_eq!(d.wire(), Some(&w));
        assert_eq!(d.lifetime(), Duration::from_millis(4000));
        assert_eq!(Interest::new(Name::new()).lifetime(), DEFAULT_LIFETIME);
    }

    #[test]
    fn rejects_malformed() {
        // Name missing.
        assert!(Interest::decode(unhex("05060a0401020304")).is_err());
        // Nonce of 3 octets.
        assert!(matches!(
            Interest::decode(unhex("050a0703080161 0a03010203".replace(' ', "").as_str())),
            Err(Error::Invalid { what: "Nonce", .. })
        ));
        // MustBeFresh before CanBePrefix.
        assert!(matches!(
            Interest::decode(unhex("0509070308016112002100")),
            Err(Error::OutOfOrder {
                typ: 33,
                offset: 9,
                ..
            })
        ));
        // Duplicate Nonce.
        assert!(
            Interest::decode(unhex(
                "05110703080161 0a0401020304 0a0401020304"
                    .replace(' ', "")
                    .as_str()
            ))
            .is_err()
        );
        // Unknown critical element.
        assert!(Interest::decode(unhex("050707030801610300")).is_err());
        // Unknown non-critical element is skipped.
        assert!(Interest::decode(unhex("050707030801616400")).is_ok());
        // Trailing bytes after the Interest.
        assert!(matches!(
            Interest::decode(unhex("05050703080161ff")),
            Err(Error::TrailingBytes { .. })
        ));
        // Truncated.
        assert!(Interest::decode(unhex("050607030801")).is_err());
        // ApplicationParameters without the digest component.
        assert!(Interest::decode(unhex("05070703080161 2400".replace(' ', "").as_str())).is_err());
        // HopLimit of 2 octets.
        assert!(
            Interest::decode(unhex("05090703080161 22020000".replace(' ', "").as_str())).is_err()
        );
    }

    #[test]
    fn params_digest_and_signing() {
        let mut i = Interest::new(Name::from_uri("/a").unwrap());
        i.app_parameters = Some(Bytes::from_static(b"hello"));
        let w = i.encode();
        let d = Interest::decode(w.clone()).unwrap();
        assert!(d.check_params_digest());
        assert_eq!(d.name.len(), 2);
        assert!(d.name.get(1).unwrap().is_params_digest());
        assert_eq!(
            d.name.get(1).unwrap().value(),
            sha256(&unhex("240568656c6c6f"))
        );
        // Re-encoding a decoded packet is byte-exact.
        assert_eq!(d.encode(), w);
        // A tampered digest is detected.
        let mut bad = w.to_vec();
        let k = bad.len() - 1;
        bad[k] ^= 1;
        assert!(
            !Interest::decode(Bytes::from(bad))
                .unwrap()
                .check_params_digest()
        );

        let mut s = Interest::new(Name::from_uri("/localhost/nfd/rib/register").unwrap());
        let si = SignatureInfo {
            nonce: Some(Bytes::from_static(&[9; 8])),
            time_ms: Some(1_700_000_000_000),
            ..SignatureInfo::digest_sha256()
        };
        let w = s.sign_digest_sha256(si);
        let d = Interest::decode(w.clone()).unwrap();
        assert!(d.check_params_digest());
        assert_eq!(d.app_parameters.as_deref(), Some(&b""[..]));
        let portion = d.signed_portion();
        assert_eq!(portion, s.signed_portion());
        assert_eq!(d.signature_value.as_deref().unwrap(), sha256(&portion));
        assert!(d.verify_digest_sha256());
        assert!(!Interest::new(Name::new()).verify_digest_sha256());
        // The signed portion starts with the name components and excludes the digest component.
        assert!(
            portion.starts_with(
                Name::from_uri("/localhost/nfd/rib/register")
                    .unwrap()
                    .value_wire()
            )
        );
        assert_eq!(
            portion.len(),
            31 + 2 + s.signature_info.as_ref().unwrap().encoded_len(44)
        );
    }

    #[test]
    fn forwarding_hint() {
        let mut i = Interest::new(Name::from_uri("/a").unwrap());
        i.forwarding_hint = vec![
            Name::from_uri("/isp").unwrap(),
            Name::from_uri("/other/x").unwrap(),
        ];
        let w = i.encode();
        assert_eq!(Interest::decode(w).unwrap(), i);
        assert!(Interest::decode(unhex("050707030801611e00")).is_err());
    }
}
