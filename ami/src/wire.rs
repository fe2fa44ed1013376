//! Payload formats of the AMI protocol messages that are not key-graph objects.
//!
//! TLV-TYPEs come from the range NDN reserves for applications (128–252), above the NAC
//! numbers the envelope uses (0x82–0x86):
//!
//! ```text
//! EnrolRequest  = *X25519Key 0xE0 (32 B), *Project 0xE2 (UTF-8, repeatable), Certificate 0xE4 (Data)
//! EnrolReply    = X25519Key 0xE0, Salt 0xE6 (32 B), Epoch 0xE8 (NNI)
//! RekeyManifest = ManifestBytes 0xEA, ManifestSignature 0xEC
//! ```
//!
//! A reading's plaintext is 12 bytes: energy register in Wh (u64) and instantaneous power in W
//! (u32), big-endian.

use amicn_tlv::{TlvReader, encode_nni_tlv, encode_tlv};
use bytes::{Bytes, BytesMut};

use crate::error::{AmiError, Result};

/// X25519 public key.
pub(crate) const X25519_KEY: u32 = 0xE0;
/// A DR project name.
pub(crate) const PROJECT: u32 = 0xE2;
/// The requester's certificate (a whole Data packet).
pub(crate) const CERTIFICATE: u32 = 0xE4;
/// HKDF salt chosen by the KMS.
pub(crate) const SALT: u32 = 0xE6;
/// Epoch in which the join takes effect.
pub(crate) const EPOCH: u32 = 0xE8;
/// Encoded key-graph manifest.
pub(crate) const MANIFEST_BYTES: u32 = 0xEA;
/// KMS signature over the manifest bytes.
pub(crate) const MANIFEST_SIGNATURE: u32 = 0xEC;

/// A meter's enrolment request (ApplicationParameters of the signed enrolment Interest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnrolRequest {
    pub(crate) x25519: [u8; 32],
    pub(crate) projects: Vec<String>,
    pub(crate) certificate: Bytes,
}

impl EnrolRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_tlv(&mut b, X25519_KEY, &self.x25519);
        for p in &self.projects {
            encode_tlv(&mut b, PROJECT, p.as_bytes());
        }
        encode_tlv(&mut b, CERTIFICATE, &self.certificate);
        b.freeze()
    }

    pub(crate) fn decode(params: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("enrolment request", why);
        let mut r = TlvReader::new(params);
        let mut x25519 = None;
        let mut projects = Vec::new();
        let mut certificate = None;
        while !r.is_empty() {
            let e = r.read()?;
            match e.typ {
                X25519_KEY if x25519.is_none() => {
                    x25519 = Some(
                        <[u8; 32]>::try_from(e.value.as_ref())
                            .map_err(|_| bad("X25519 key is not 32 bytes"))?,
                    );
                }
                PROJECT => {
                    let p = std::str::from_utf8(&e.value)
                        .map_err(|_| bad("project name is not UTF-8"))?;
                    projects.push(p.to_string());
                }
                CERTIFICATE if certificate.is_none() => certificate = Some(e.value),
                _ => return Err(bad("unexpected or repeated element")),
            }
        }
        Ok(EnrolRequest {
            x25519: x25519.ok_or_else(|| bad("X25519 key missing"))?,
            projects,
            certificate: certificate.ok_or_else(|| bad("certificate missing"))?,
        })
    }
}

/// The KMS's answer to an accepted enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnrolReply {
    pub(crate) x25519: [u8; 32],
    pub(crate) salt: [u8; 32],
    pub(crate) epoch: u32,
}

impl EnrolReply {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_tlv(&mut b, X25519_KEY, &self.x25519);
        encode_tlv(&mut b, SALT, &self.salt);
        encode_nni_tlv(&mut b, EPOCH, u64::from(self.epoch));
        b.freeze()
    }

    pub(crate) fn decode(content: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("enrolment reply", why);
        let mut r = TlvReader::new(content);
        let x = r.expect(X25519_KEY, "X25519Key")?;
        let s = r.expect(SALT, "Salt")?;
        let e = r.expect(EPOCH, "Epoch")?;
        r.finish("EnrolReply")?;
        Ok(EnrolReply {
            x25519: <[u8; 32]>::try_from(x.value.as_ref())
                .map_err(|_| bad("X25519 key is not 32 bytes"))?,
            salt: <[u8; 32]>::try_from(s.value.as_ref())
                .map_err(|_| bad("salt is not 32 bytes"))?,
            epoch: u32::try_from(e.nni()?).map_err(|_| bad("epoch exceeds 32 bits"))?,
        })
    }
}

/// Content of a rekey manifest Data: the graph's manifest bytes and the KMS signature over them.
pub(crate) fn encode_manifest(bytes: &[u8], signature: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(bytes.len() + signature.len() + 8);
    encode_tlv(&mut b, MANIFEST_BYTES, bytes);
    encode_tlv(&mut b, MANIFEST_SIGNATURE, signature);
    b.freeze()
}

/// Splits a rekey manifest Data's content.
pub(crate) fn decode_manifest(content: Bytes) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut r = TlvReader::new(content);
    let m = r.expect(MANIFEST_BYTES, "ManifestBytes")?;
    let s = r.expect(MANIFEST_SIGNATURE, "ManifestSignature")?;
    r.finish("RekeyManifest")?;
    Ok((m.value.to_vec(), s.value.to_vec()))
}

/// Reading plaintext: energy register (Wh) and power (W).
pub(crate) fn encode_reading(energy_wh: u64, power_w: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&energy_wh.to_be_bytes());
    out[8..].copy_from_slice(&power_w.to_be_bytes());
    out
}

/// Parses a reading plaintext.
pub(crate) fn decode_reading(p: &[u8]) -> Option<(u64, u32)> {
    let e: [u8; 8] = p.get(..8)?.try_into().ok()?;
    let w: [u8; 4] = p.get(8..12)?.try_into().ok()?;
    (p.len() == 12).then(|| (u64::from_be_bytes(e), u32::from_be_bytes(w)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn enrol_messages_round_trip_with_golden_reply() {
        let req = EnrolRequest {
            x25519: [7; 32],
            projects: vec!["p1".into(), "p2".into()],
            certificate: Bytes::from_static(b"\x06\x00"),
        };
        assert_eq!(EnrolRequest::decode(req.encode()).unwrap(), req);
        let rep = EnrolReply {
            x25519: [1; 32],
            salt: [2; 32],
            epoch: 300,
        };
        let wire = rep.encode();
        // 0xE0 len 32, 0xE6 len 32, 0xE8 len 2 0x012C.
        assert_eq!(&wire[..2], &[0xE0, 32]);
        assert_eq!(&wire[34..36], &[0xE6, 32]);
        assert_eq!(&wire[68..], &[0xE8, 2, 0x01, 0x2C]);
        assert_eq!(EnrolReply::decode(wire).unwrap(), rep);
    }

    #[test]
    fn malformed_messages_are_rejected() {
        assert!(EnrolRequest::decode(Bytes::from_static(&[0xE0, 3, 1, 2, 3])).is_err());
        assert!(EnrolRequest::decode(Bytes::from_static(&[0xE2, 1, b'p'])).is_err());
        assert!(EnrolReply::decode(Bytes::from_static(&[0xE0, 1, 0])).is_err());
        assert!(decode_manifest(Bytes::from_static(&[0xEA, 1, 0])).is_err());
        assert!(decode_manifest(Bytes::from_static(&[0xEA, 5, 0])).is_err());
    }

    #[test]
    fn manifest_and_reading_round_trip() {
        let c = encode_manifest(b"AKM1", &[9; 64]);
        assert_eq!(decode_manifest(c).unwrap(), (b"AKM1".to_vec(), vec![9; 64]));
        let r = encode_reading(123_456, 789);
        assert_eq!(decode_reading(&r), Some((123_456, 789)));
        assert_eq!(decode_reading(&r[..11]), None);
    }
}
