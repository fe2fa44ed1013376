//! The Data packet (`data.rst`): MetaInfo, Content, signature, the signed portion and the
//! implicit SHA-256 digest.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::encoding::{encode_nni_tlv, encode_tl, nni_tlv_len, parse_tlv, tlv_len};
use crate::fields::{Fields, outer};
use crate::{Component, Error, Name, Result, SignatureInfo, tt};

/// MetaInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaInfo {
    /// ContentType (0 = BLOB, the default and omitted on the wire).
    pub content_type: u64,
    /// FreshnessPeriod in milliseconds.
    pub freshness_period_ms: Option<u64>,
    /// FinalBlockId.
    pub final_block_id: Option<Component>,
}

impl MetaInfo {
    /// Whether nothing would be encoded.
    pub fn is_empty(&self) -> bool {
        self.content_type == 0
            && self.freshness_period_ms.is_none()
            && self.final_block_id.is_none()
    }

    fn value_len(&self) -> usize {
        let mut n = 0;
        if self.content_type != 0 {
            n += nni_tlv_len(tt::CONTENT_TYPE, self.content_type);
        }
        if let Some(f) = self.freshness_period_ms {
            n += nni_tlv_len(tt::FRESHNESS_PERIOD, f);
        }
        if let Some(c) = &self.final_block_id {
            n += tlv_len(tt::FINAL_BLOCK_ID, c.encoded_len());
        }
        n
    }

    /// Encoded length of the MetaInfo TLV (0 when empty, as it is then omitted).
    pub fn encoded_len(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            tlv_len(tt::META_INFO, self.value_len())
        }
    }

    /// Appends the MetaInfo TLV unless it is empty.
    pub fn encode(&self, buf: &mut BytesMut) {
        if self.is_empty() {
            return;
        }
        encode_tl(buf, tt::META_INFO, self.value_len());
        if self.content_type != 0 {
            encode_nni_tlv(buf, tt::CONTENT_TYPE, self.content_type);
        }
        if let Some(f) = self.freshness_period_ms {
            encode_nni_tlv(buf, tt::FRESHNESS_PERIOD, f);
        }
        if let Some(c) = &self.final_block_id {
            encode_tl(buf, tt::FINAL_BLOCK_ID, c.encoded_len());
            c.encode(buf);
        }
    }

    fn decode_range(buf: &Bytes, vs: usize, ve: usize) -> Result<MetaInfo> {
        let mut f = Fields::new(buf, vs, ve, "MetaInfo");
        let mut m = MetaInfo::default();
        while let Some(c) = f.next_child()? {
            match c.typ {
                tt::CONTENT_TYPE => {
                    f.order(&c, 1)?;
                    m.content_type = f.nni(&c)?;
                }
                tt::FRESHNESS_PERIOD => {
                    f.order(&c, 2)?;
                    m.freshness_period_ms = Some(f.nni(&c)?);
                }
                tt::FINAL_BLOCK_ID => {
                    f.order(&c, 3)?;
                    let region = buf.get(..c.ve).unwrap_or(&[]);
                    let (typ, cvs, cve) = parse_tlv(region, c.vs, "FinalBlockId")?;
                    if cve != c.ve {
                        return Err(Error::TrailingBytes {
                            what: "FinalBlockId component",
                            count: c.ve - cve,
                            offset: cve,
                        });
                    }
                    m.final_block_id =
                        Some(Component::new(typ, buf.slice(cvs..cve)).map_err(|_| {
                            Error::Invalid {
                                what: "FinalBlockId",
                                reason: "not a valid name component",
                                offset: c.start,
                            }
                        })?);
                }
                _ => f.unknown(&c)?,
            }
        }
        Ok(m)
    }
}

/// A Data packet. [`Data::wire`] keeps the decoded bytes; the signed portion and implicit digest
/// come from them without re-encoding.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// Name.
    pub name: Name,
    /// MetaInfo.
    pub meta_info: MetaInfo,
    /// Content (empty when absent).
    pub content: Bytes,
    /// SignatureInfo.
    pub signature_info: SignatureInfo,
    /// SignatureValue.
    pub signature_value: Bytes,
    wire: Option<Bytes>,
    // Signed portion = wire[signed_start..signed_end] when decoded.
    signed_start: u32,
    signed_end: u32,
}

impl PartialEq for Data {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.meta_info == o.meta_info
            && self.content == o.content
            && self.signature_info == o.signature_info
            && self.signature_value == o.signature_value
    }
}

impl Eq for Data {}

impl Data {
    /// Unsigned Data (DigestSha256 SignatureInfo, empty SignatureValue) with `content`.
    pub fn new(name: Name, content: impl Into<Bytes>) -> Data {
        Data {
            name,
            content: content.into(),
            ..Data::default()
        }
    }

    /// The bytes this Data was decoded from, or produced by the last `sign_*` call.
    pub fn wire(&self) -> Option<&Bytes> {
        self.wire.as_ref()
    }

    /// Forgets the stored wire bytes after fields were changed.
    pub fn clear_wire(&mut self) {
        self.wire = None;
        self.signed_start = 0;
        self.signed_end = 0;
    }

    /// FreshnessPeriod (zero when absent: never fresh).
    pub fn freshness(&self) -> Duration {
        Duration::from_millis(self.meta_info.freshness_period_ms.unwrap_or(0))
    }

    /// Decodes a Data TLV, keeping `wire` as the backing buffer of every field.
    pub fn decode(wire: Bytes) -> Result<Data> {
        // Filled in place inside the returned value to avoid moving a large struct.
        let mut out = Ok(Data::default());
        if let Ok(d) = &mut out
            && let Err(e) = d.fill(wire)
        {
            out = Err(e);
        }
        out
    }

    fn fill(&mut self, wire: Bytes) -> Result<()> {
        let d = self;
        let (vs, ve) = outer(&wire, tt::DATA, "Data")?;
        let mut f = Fields::new(&wire, vs, ve, "Data");
        let (mut have_name, mut have_si, mut have_sv) = (false, false, false);
        while let Some(c) = f.next_child()? {
            match c.typ {
                tt::NAME => {
                    f.order(&c, 1)?;
                    d.name.decode_into(&wire, c.vs, c.ve)?;
                    d.signed_start = c.start as u32;
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
                tt::META_INFO => {
                    f.order(&c, 2)?;
                    d.meta_info = MetaInfo::decode_range(&wire, c.vs, c.ve)?;
                }
                tt::CONTENT => {
                    f.order(&c, 3)?;
                    d.content = wire.slice(c.vs..c.ve);
                }
                tt::SIGNATURE_INFO => {
                    f.order(&c, 4)?;
                    d.signature_info.fill(&wire, c.vs, c.ve)?;
                    have_si = true;
                }
                tt::SIGNATURE_VALUE => {
                    f.order(&c, 5)?;
                    d.signature_value = wire.slice(c.vs..c.ve);
                    d.signed_end = c.start as u32;
                    have_sv = true;
                }
                _ => f.unknown(&c)?,
            }
        }
        if !have_name {
            return Err(Error::Missing {
                container: "Data",
                what: "Name",
            });
        }
        if !have_si || !have_sv {
            return Err(Error::Missing {
                container: "Data",
                what: if have_si {
                    "SignatureValue"
                } else {
                    "SignatureInfo"
                },
            });
        }
        d.wire = Some(wire);
        Ok(())
    }

    fn portion_len(&self) -> usize {
        self.name.encoded_len()
            + self.meta_info.encoded_len()
            + tlv_len(tt::CONTENT, self.content.len())
            + self.signature_info.encoded_len(tt::SIGNATURE_INFO)
    }

    fn encode_portion(&self, buf: &mut BytesMut) {
        self.name.encode(buf);
        self.meta_info.encode(buf);
        encode_tl(buf, tt::CONTENT, self.content.len());
        buf.put_slice(&self.content);
        self.signature_info.encode(buf, tt::SIGNATURE_INFO);
    }

    /// Encoded length of the whole Data TLV.
    pub fn encoded_len(&self) -> usize {
        tlv_len(
            tt::DATA,
            self.portion_len() + tlv_len(tt::SIGNATURE_VALUE, self.signature_value.len()),
        )
    }

    /// Encodes the Data with its current SignatureInfo and SignatureValue.
    pub fn encode(&self) -> Bytes {
        let value_len =
            self.portion_len() + tlv_len(tt::SIGNATURE_VALUE, self.signature_value.len());
        let mut buf = BytesMut::with_capacity(tlv_len(tt::DATA, value_len));
        encode_tl(&mut buf, tt::DATA, value_len);
        self.encode_portion(&mut buf);
        encode_tl(&mut buf, tt::SIGNATURE_VALUE, self.signature_value.len());
        buf.put_slice(&self.signature_value);
        buf.freeze()
    }

    /// The bytes the signature covers: Name through SignatureInfo (`data.rst`). Sliced from the
    /// wire when decoded.
    pub fn signed_portion(&self) -> Bytes {
        if let Some(w) = &self.wire
            && self.signed_end > self.signed_start
        {
            return w.slice(self.signed_start as usize..self.signed_end as usize);
        }
        let mut buf = BytesMut::with_capacity(self.portion_len());
        self.encode_portion(&mut buf);
        buf.freeze()
    }

    /// Installs `sig_info`, signs the signed portion with `signer` and returns the encoded packet
    /// (also kept as [`Data::wire`]).
    pub fn sign_with(
        &mut self,
        sig_info: SignatureInfo,
        signer: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Bytes {
        self.signature_info = sig_info;
        self.clear_wire();
        let portion_len = self.portion_len();
        let mut portion = BytesMut::with_capacity(portion_len);
        self.encode_portion(&mut portion);
        let sig = signer(&portion);
        let value_len = portion_len + tlv_len(tt::SIGNATURE_VALUE, sig.len());
        let mut buf = BytesMut::with_capacity(tlv_len(tt::DATA, value_len));
        encode_tl(&mut buf, tt::DATA, value_len);
        let start = buf.len();
        buf.put_slice(&portion);
        let end = buf.len();
        encode_tl(&mut buf, tt::SIGNATURE_VALUE, sig.len());
        buf.put_slice(&sig);
        let wire = buf.freeze();
        self.signature_value = wire.slice(end + (wire.len() - end - sig.len())..);
        self.signed_start = start as u32;
        self.signed_end = end as u32;
        self.wire = Some(wire.clone());
        wire
    }

    /// Signs with DigestSha256 (no KeyLocator).
    pub fn sign_digest_sha256(&mut self) -> Bytes {
        self.sign_with(SignatureInfo::digest_sha256(), |p| {
            Sha256::digest(p).to_vec()
        })
    }

    /// Whether a DigestSha256 signature is correct (false for other signature types).
    pub fn verify_digest_sha256(&self) -> bool {
        self.signature_info.sig_type == crate::sig::DIGEST_SHA256
            && Sha256::digest(self.signed_portion())[..] == self.signature_value[..]
    }

    /// SHA-256 of the whole Data TLV, the value of its ImplicitSha256DigestComponent.
    pub fn implicit_digest(&self) -> [u8; 32] {
        match &self.wire {
            Some(w) => Sha256::digest(w).into(),
            None => Sha256::digest(self.encode()).into(),
        }
    }

    /// The name with the implicit digest appended.
    pub fn full_name(&self) -> Name {
        self.name
            .append(Component::implicit_sha256_digest(self.implicit_digest()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::name::tests::hex;

    #[test]
    fn golden_digest_data() {
        let mut d = Data::new(Name::from_uri("/a").unwrap(), Bytes::from_static(b"hi"));
        d.meta_info.freshness_period_ms = Some(1000);
        let w = d.sign_digest_sha256();
        let sig = Sha256::digest(hex_to(
            &"0703080161140419 0203e8 15026869 16031b0100".replace(' ', ""),
        ));
        let expect = format!(
            "0636 0703080161 14041902 03e8 15026869 16031b0100 1720{}",
            hex(&sig)
        )
        .replace(' ', "");
        assert_eq!(hex(&w), expect);
        let back = Data::decode(w.clone()).unwrap();
        assert_eq!(back, d);
        assert!(back.verify_digest_sha256());
        assert_eq!(back.signed_portion(), d.signed_portion());
        assert_eq!(back.encode(), w);
        assert_eq!(back.implicit_digest(), <[u8; 32]>::from(Sha256::digest(&w)));
        assert_eq!(back.full_name().len(), 2);
        assert!(back.full_name().get(1).unwrap().is_implicit_digest());
        assert_eq!(back.freshness(), Duration::from_secs(1));
    }

    fn hex_to(s: &str) -> Vec<u8> {
        let s = s.replace(' ', "");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn final_block_and_types() {
        let mut d = Data::new(Name::from_uri("/a/v=1/seg=0").unwrap(), Bytes::new());
        d.meta_info = MetaInfo {
            content_type: tt::content_type::KEY,
            freshness_period_ms: Some(0),
            final_block_id: Some(Component::segment(9)),
        };
        d.signature_value = Bytes::from_static(&[0; 64]);
        d.signature_info =
            SignatureInfo::with_key(crate::sig::ED25519, Name::from_uri("/k/KEY/1").unwrap());
        let w = d.encode();
        assert_eq!(w.len(), d.encoded_len());
        assert_eq!(Data::decode(w).unwrap(), d);
    }

    #[test]
    fn rejects_malformed() {
        // No signature.
        assert!(Data::decode(Bytes::from(hex_to("06050703080161"))).is_err());
        // Content before MetaInfo.
        assert!(matches!(
            Data::decode(Bytes::from(hex_to("061007030801611500140016031b01001700"))),
            Err(Error::OutOfOrder { typ: 20, .. })
        ));
        // Unknown critical element in MetaInfo.
        assert!(matches!(
            Data::decode(Bytes::from(hex_to("0610070308016114020100 16031b01001700"))),
            Err(Error::UnknownCritical {
                typ: 1,
                offset: 9,
                ..
            })
        ));
        // Unknown non-critical element in MetaInfo is skipped.
        assert!(
            Data::decode(Bytes::from(hex_to(
                "061007030801611402c000 16031b01001700"
                    .replace(' ', "")
                    .as_str()
            )))
            .is_ok()
        );
    }
}
