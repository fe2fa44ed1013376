//! Payload formats of the AMI protocol messages that are not key-graph objects.
//!
//! TLV-TYPEs come from the range NDN reserves for applications (128–252), above the NAC
//! numbers the envelope uses (0x82–0x86):
//!
//! ```text
//! EnrolRequest  = *X25519Key 0xE0 (32 B), *Project 0xE2 (UTF-8, repeatable), Certificate 0xE4 (Data)
//! EnrolReply    = X25519Key 0xE0, Salt 0xE6 (32 B), Epoch 0xE8 (NNI)
//! RekeyManifest = ManifestBytes 0xEA, ManifestSignature 0xEC, *WrapDigest 0xEE
//! WrapDigest    = Name, Digest 0xF0 (32 B)          the implicit digest of one wrap Data
//! Pointer       = *PointerEntry 0xF2                 newest first
//! PointerEntry  = Timestamp 0xF4 (NNI, µs), Digest 0xF0
//! KeyRequest    = X25519Key 0xE0, Kind 0xCE (UTF-8), [Next 0xC4 (NNI)]
//! KeyReply      = X25519Key 0xE0, Salt 0xE6, Sealed 0xF6 (EncryptedContent of a KeyBundle)
//! KeyBundle     = *KeyEntry 0xF8, [Next 0xC4]        Next = cursor of the following page
//! KeyEntry      = Name (key name), KeyBytes 0xFA (32 B), [MeterId 0xFC], [Since 0xC0 (µs)]
//! Entitle       = *Assignment 0xC6                   ApplicationParameters of a DR command
//! Assignment    = MeterId 0xFC, *Project 0xE2
//! MeterCommand  = MeterId 0xFC                       revoke / leave
//! Status        = StatusCode 0xC8 (NNI), StatusText 0xCA (UTF-8), [Epoch 0xE8]
//! Revocations   = *Revoked 0xCC
//! Revoked       = MeterId 0xFC, Since 0xC0 (µs)
//! ```
//!
//! A segmented object (manifest, revocation list) is the concatenation of its segments'
//! contents; every segment is signed by its producer and carries FinalBlockId.
//!
//! A reading's plaintext has its own versioned format, in [`crate::reading`].

use std::collections::HashMap;

use amicn_tlv::{Name, TlvReader, encode_nni_tlv, encode_tlv};
use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

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
/// A wrap's name and implicit digest, listed in its manifest.
pub(crate) const WRAP_DIGEST: u32 = 0xEE;
/// A SHA-256 digest.
pub(crate) const DIGEST: u32 = 0xF0;
/// One reading listed by a meter's latest pointer.
pub(crate) const POINTER_ENTRY: u32 = 0xF2;
/// A reading's timestamp (µs since the Unix epoch).
pub(crate) const TIMESTAMP: u32 = 0xF4;
/// An EncryptedContent sealed under a key agreed for one request.
pub(crate) const SEALED: u32 = 0xF6;
/// One key of a service key bundle.
pub(crate) const KEY_ENTRY: u32 = 0xF8;
/// Raw symmetric key bytes.
pub(crate) const KEY_BYTES: u32 = 0xFA;
/// A meter id.
pub(crate) const METER_ID: u32 = 0xFC;
/// Since when a key or a revocation applies (µs since the Unix epoch).
pub(crate) const SINCE: u32 = 0xC0;
/// Paging cursor.
pub(crate) const NEXT: u32 = 0xC4;
/// One meter's project assignment.
pub(crate) const ASSIGNMENT: u32 = 0xC6;
/// Command status code (NFD's numbering: 200 OK, 400 bad, 403 refused, 404 unknown).
pub(crate) const STATUS_CODE: u32 = 0xC8;
/// Command status text.
pub(crate) const STATUS_TEXT: u32 = 0xCA;
/// One revocation.
pub(crate) const REVOKED: u32 = 0xCC;
/// What a service key request asks for.
pub(crate) const KIND: u32 = 0xCE;
/// TLV-TYPE of Name.
const NAME: u32 = 7;

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

/// Content of a rekey manifest object: the graph's manifest bytes, the KMS signature over them
/// and the implicit digest of every wrap the epoch published (wraps are fetched by digest).
pub(crate) fn encode_manifest(bytes: &[u8], signature: &[u8], wraps: &[(Name, [u8; 32])]) -> Bytes {
    let mut b = BytesMut::with_capacity(bytes.len() + signature.len() + wraps.len() * 120 + 8);
    encode_tlv(&mut b, MANIFEST_BYTES, bytes);
    encode_tlv(&mut b, MANIFEST_SIGNATURE, signature);
    let mut inner = BytesMut::new();
    for (name, digest) in wraps {
        inner.clear();
        name.encode(&mut inner);
        encode_tlv(&mut inner, DIGEST, digest);
        encode_tlv(&mut b, WRAP_DIGEST, &inner);
    }
    b.freeze()
}

/// A decoded manifest object.
pub(crate) struct ManifestObject {
    pub(crate) bytes: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) wraps: HashMap<Name, [u8; 32]>,
}

fn digest_of(e: &amicn_tlv::Element, what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(e.value.as_ref())
        .map_err(|_| AmiError::protocol(what, "digest is not 32 bytes"))
}

/// Splits a rekey manifest object.
pub(crate) fn decode_manifest(content: Bytes) -> Result<ManifestObject> {
    let mut r = TlvReader::new(content);
    let m = r.expect(MANIFEST_BYTES, "ManifestBytes")?;
    let s = r.expect(MANIFEST_SIGNATURE, "ManifestSignature")?;
    let mut wraps = HashMap::new();
    while !r.is_empty() {
        let e = r.expect(WRAP_DIGEST, "WrapDigest")?;
        let mut w = e.reader();
        let n = w.expect(NAME, "Name")?;
        let name = Name::from_value(n.value)?;
        let d = digest_of(&w.expect(DIGEST, "Digest")?, "WrapDigest")?;
        w.finish("WrapDigest")?;
        wraps.insert(name, d);
    }
    Ok(ManifestObject {
        bytes: m.value.to_vec(),
        signature: s.value.to_vec(),
        wraps,
    })
}

/// A meter's latest pointer: the readings it still serves, newest first, by timestamp and
/// implicit digest.
pub(crate) fn encode_pointer(entries: &[(u64, [u8; 32])]) -> Bytes {
    let mut b = BytesMut::with_capacity(entries.len() * 46);
    let mut inner = BytesMut::new();
    for (t, d) in entries {
        inner.clear();
        encode_nni_tlv(&mut inner, TIMESTAMP, *t);
        encode_tlv(&mut inner, DIGEST, d);
        encode_tlv(&mut b, POINTER_ENTRY, &inner);
    }
    b.freeze()
}

/// Parses a latest pointer.
pub(crate) fn decode_pointer(content: Bytes) -> Result<Vec<(u64, [u8; 32])>> {
    let mut r = TlvReader::new(content);
    let mut out = Vec::new();
    while !r.is_empty() {
        let e = r.expect(POINTER_ENTRY, "PointerEntry")?;
        let mut p = e.reader();
        let t = p.expect(TIMESTAMP, "Timestamp")?.nni()?;
        let d = digest_of(&p.expect(DIGEST, "Digest")?, "PointerEntry")?;
        p.finish("PointerEntry")?;
        out.push((t, d));
    }
    Ok(out)
}

/// A service's request for keys (ApplicationParameters of its signed Interest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRequest {
    pub(crate) x25519: [u8; 32],
    pub(crate) kind: String,
    pub(crate) next: Option<u64>,
}

impl KeyRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_tlv(&mut b, X25519_KEY, &self.x25519);
        encode_tlv(&mut b, KIND, self.kind.as_bytes());
        if let Some(n) = self.next {
            encode_nni_tlv(&mut b, NEXT, n);
        }
        b.freeze()
    }

    pub(crate) fn decode(params: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("key request", why);
        let mut r = TlvReader::new(params);
        let x = r.expect(X25519_KEY, "X25519Key")?;
        let k = r.expect(KIND, "Kind")?;
        let next = match r.peek_type()? {
            Some(NEXT) => Some(r.read()?.nni()?),
            _ => None,
        };
        r.finish("KeyRequest")?;
        Ok(KeyRequest {
            x25519: <[u8; 32]>::try_from(x.value.as_ref())
                .map_err(|_| bad("X25519 key is not 32 bytes"))?,
            kind: std::str::from_utf8(&k.value)
                .map_err(|_| bad("kind is not UTF-8"))?
                .to_string(),
            next,
        })
    }
}

/// The KMS's answer to a key request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyReply {
    pub(crate) x25519: [u8; 32],
    pub(crate) salt: [u8; 32],
    pub(crate) sealed: Bytes,
}

impl KeyReply {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_tlv(&mut b, X25519_KEY, &self.x25519);
        encode_tlv(&mut b, SALT, &self.salt);
        encode_tlv(&mut b, SEALED, &self.sealed);
        b.freeze()
    }

    pub(crate) fn decode(content: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("key reply", why);
        let mut r = TlvReader::new(content);
        let x = r.expect(X25519_KEY, "X25519Key")?;
        let s = r.expect(SALT, "Salt")?;
        let sealed = r.expect(SEALED, "Sealed")?.value;
        r.finish("KeyReply")?;
        Ok(KeyReply {
            x25519: <[u8; 32]>::try_from(x.value.as_ref())
                .map_err(|_| bad("X25519 key is not 32 bytes"))?,
            salt: <[u8; 32]>::try_from(s.value.as_ref())
                .map_err(|_| bad("salt is not 32 bytes"))?,
            sealed,
        })
    }
}

/// One key handed to a service.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    pub(crate) name: Name,
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) meter: Option<u32>,
    pub(crate) since_us: Option<u64>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("name", &self.name)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}

/// Encodes a key bundle (the plaintext sealed in a [`KeyReply`]). The buffer is zeroized by
/// the caller after sealing.
pub(crate) fn encode_bundle(entries: &[KeyEntry], next: Option<u64>) -> Zeroizing<Vec<u8>> {
    let mut b = BytesMut::with_capacity(entries.len() * 90 + 8);
    let mut inner = BytesMut::new();
    for e in entries {
        inner.clear();
        e.name.encode(&mut inner);
        encode_tlv(&mut inner, KEY_BYTES, e.key.as_ref());
        if let Some(m) = e.meter {
            encode_nni_tlv(&mut inner, METER_ID, u64::from(m));
        }
        if let Some(t) = e.since_us {
            encode_nni_tlv(&mut inner, SINCE, t);
        }
        encode_tlv(&mut b, KEY_ENTRY, &inner);
        inner.iter_mut().for_each(|x| *x = 0);
    }
    if let Some(n) = next {
        encode_nni_tlv(&mut b, NEXT, n);
    }
    Zeroizing::new(b.to_vec())
}

/// Decodes a key bundle.
pub(crate) fn decode_bundle(plain: &[u8]) -> Result<(Vec<KeyEntry>, Option<u64>)> {
    let bad = |why: &str| AmiError::protocol("key bundle", why);
    let mut r = TlvReader::new(Bytes::copy_from_slice(plain));
    let mut out = Vec::new();
    let mut next = None;
    while !r.is_empty() {
        let e = r.read()?;
        match e.typ {
            KEY_ENTRY if next.is_none() => {
                let mut k = e.reader();
                let name = Name::from_value(k.expect(NAME, "Name")?.value)?;
                let kb = k.expect(KEY_BYTES, "KeyBytes")?;
                let key = Zeroizing::new(
                    <[u8; 32]>::try_from(kb.value.as_ref())
                        .map_err(|_| bad("key is not 32 bytes"))?,
                );
                let mut meter = None;
                let mut since_us = None;
                while !k.is_empty() {
                    let f = k.read()?;
                    match f.typ {
                        METER_ID if meter.is_none() => {
                            meter = Some(
                                u32::try_from(f.nni()?).map_err(|_| bad("meter id too large"))?,
                            )
                        }
                        SINCE if since_us.is_none() => since_us = Some(f.nni()?),
                        _ => return Err(bad("unexpected element in KeyEntry")),
                    }
                }
                out.push(KeyEntry {
                    name,
                    key,
                    meter,
                    since_us,
                });
            }
            NEXT if next.is_none() => next = Some(e.nni()?),
            _ => return Err(bad("unexpected or repeated element")),
        }
    }
    Ok((out, next))
}

/// A DR operator's project assignments (meter → its complete project set).
pub(crate) fn encode_assignments(a: &[(u32, Vec<String>)]) -> Bytes {
    let mut b = BytesMut::new();
    let mut inner = BytesMut::new();
    for (m, ps) in a {
        inner.clear();
        encode_nni_tlv(&mut inner, METER_ID, u64::from(*m));
        for p in ps {
            encode_tlv(&mut inner, PROJECT, p.as_bytes());
        }
        encode_tlv(&mut b, ASSIGNMENT, &inner);
    }
    b.freeze()
}

/// Parses project assignments.
pub(crate) fn decode_assignments(params: Bytes) -> Result<Vec<(u32, Vec<String>)>> {
    let bad = |why: &str| AmiError::protocol("assignments", why);
    let mut r = TlvReader::new(params);
    let mut out = Vec::new();
    while !r.is_empty() {
        let e = r.expect(ASSIGNMENT, "Assignment")?;
        let mut a = e.reader();
        let m = u32::try_from(a.expect(METER_ID, "MeterId")?.nni()?)
            .map_err(|_| bad("meter id too large"))?;
        let mut ps = Vec::new();
        while !a.is_empty() {
            let p = a.expect(PROJECT, "Project")?;
            ps.push(
                std::str::from_utf8(&p.value)
                    .map_err(|_| bad("project name is not UTF-8"))?
                    .to_string(),
            );
        }
        out.push((m, ps));
    }
    Ok(out)
}

/// A command naming one meter (revoke, leave).
pub(crate) fn encode_meter(m: u32) -> Bytes {
    let mut b = BytesMut::new();
    encode_nni_tlv(&mut b, METER_ID, u64::from(m));
    b.freeze()
}

/// Parses a one-meter command.
pub(crate) fn decode_meter(params: Bytes) -> Result<u32> {
    let mut r = TlvReader::new(params);
    let m = r.expect(METER_ID, "MeterId")?.nni()?;
    r.finish("MeterCommand")?;
    u32::try_from(m).map_err(|_| AmiError::protocol("meter command", "meter id too large"))
}

/// The answer to a command: NFD-style status code, text, and the epoch that carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// 200 done, 400 malformed, 403 not allowed, 404 unknown meter, 409 conflicts with state.
    pub code: u64,
    /// What happened.
    pub text: String,
    /// The epoch in which the change takes effect, if any.
    pub epoch: Option<u32>,
}

impl Status {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, STATUS_CODE, self.code);
        encode_tlv(&mut b, STATUS_TEXT, self.text.as_bytes());
        if let Some(e) = self.epoch {
            encode_nni_tlv(&mut b, EPOCH, u64::from(e));
        }
        b.freeze()
    }

    pub(crate) fn decode(content: Bytes) -> Result<Self> {
        let mut r = TlvReader::new(content);
        let code = r.expect(STATUS_CODE, "StatusCode")?.nni()?;
        let t = r.expect(STATUS_TEXT, "StatusText")?;
        let epoch = match r.peek_type()? {
            Some(EPOCH) => Some(
                u32::try_from(r.read()?.nni()?)
                    .map_err(|_| AmiError::protocol("status", "epoch exceeds 32 bits"))?,
            ),
            _ => None,
        };
        r.finish("Status")?;
        Ok(Status {
            code,
            text: String::from_utf8_lossy(&t.value).into_owned(),
            epoch,
        })
    }
}

/// A revocation list: meters and since when they are revoked.
pub(crate) fn encode_revocations(list: &[(u32, u64)]) -> Bytes {
    let mut b = BytesMut::with_capacity(list.len() * 16);
    let mut inner = BytesMut::new();
    for (m, t) in list {
        inner.clear();
        encode_nni_tlv(&mut inner, METER_ID, u64::from(*m));
        encode_nni_tlv(&mut inner, SINCE, *t);
        encode_tlv(&mut b, REVOKED, &inner);
    }
    b.freeze()
}

/// Parses a revocation list.
pub(crate) fn decode_revocations(content: Bytes) -> Result<Vec<(u32, u64)>> {
    let mut r = TlvReader::new(content);
    let mut out = Vec::new();
    while !r.is_empty() {
        let e = r.expect(REVOKED, "Revoked")?;
        let mut v = e.reader();
        let m = u32::try_from(v.expect(METER_ID, "MeterId")?.nni()?)
            .map_err(|_| AmiError::protocol("revocations", "meter id too large"))?;
        let t = v.expect(SINCE, "Since")?.nni()?;
        v.finish("Revoked")?;
        out.push((m, t));
    }
    Ok(out)
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
        assert!(decode_pointer(Bytes::from_static(&[0xF2, 2, 0xF4, 0])).is_err());
        assert!(decode_bundle(&[0xF8, 1, 7]).is_err());
        assert!(decode_assignments(Bytes::from_static(&[0xC6, 0])).is_err());
        assert!(decode_meter(Bytes::from_static(&[0xFC, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9])).is_err());
    }

    #[test]
    fn manifest_and_messages_round_trip() {
        let w = Name::from_uri("/u/ami/bcast/KEK/v=2/ENCRYPTED-BY/x").unwrap();
        let c = encode_manifest(b"AKM1", &[9; 64], &[(w.clone(), [3; 32])]);
        let m = decode_manifest(c).unwrap();
        assert_eq!((m.bytes, m.signature), (b"AKM1".to_vec(), vec![9; 64]));
        assert_eq!(m.wraps.get(&w), Some(&[3; 32]));
        let p = vec![(9, [1; 32]), (5, [2; 32])];
        assert_eq!(decode_pointer(encode_pointer(&p)).unwrap(), p);
        let a = vec![(7, vec!["p1".to_string()]), (8, vec![])];
        assert_eq!(decode_assignments(encode_assignments(&a)).unwrap(), a);
        assert_eq!(decode_meter(encode_meter(70_000)).unwrap(), 70_000);
        let st = Status {
            code: 403,
            text: "no".into(),
            epoch: Some(4),
        };
        assert_eq!(Status::decode(st.encode()).unwrap(), st);
        let rv = vec![(3, 1_700_000_000_000_000)];
        assert_eq!(decode_revocations(encode_revocations(&rv)).unwrap(), rv);
        let e = KeyEntry {
            name: Name::from_uri("/u/ami/meter/3/READ/v=1").unwrap(),
            key: Zeroizing::new([4; 32]),
            meter: Some(3),
            since_us: Some(12),
        };
        let b = encode_bundle(std::slice::from_ref(&e), Some(4));
        assert_eq!(decode_bundle(&b).unwrap(), (vec![e], Some(4)));
        let kr = KeyRequest {
            x25519: [1; 32],
            kind: "meters".into(),
            next: Some(5),
        };
        assert_eq!(KeyRequest::decode(kr.encode()).unwrap(), kr);
    }

    proptest::proptest! {
        /// Every decoder of data from the network or from disk answers arbitrary bytes with a
        /// value or an error, never a panic.
        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let by = Bytes::from(b.clone());
            let _ = EnrolRequest::decode(by.clone());
            let _ = EnrolReply::decode(by.clone());
            let _ = decode_manifest(by.clone());
            let _ = decode_pointer(by.clone());
            let _ = KeyRequest::decode(by.clone());
            let _ = KeyReply::decode(by.clone());
            let _ = decode_bundle(&b);
            let _ = decode_assignments(by.clone());
            let _ = decode_meter(by.clone());
            let _ = Status::decode(by.clone());
            let _ = decode_revocations(by.clone());
            let _ = crate::kms_journal::decode(&b);
            let mut j = b"AKJ1".to_vec();
            j.extend_from_slice(&b);
            let _ = crate::kms_journal::decode(&j);
        }

        /// Valid encodings survive single-byte damage without panics either.
        #[test]
        fn damaged_encodings_never_panic(pos in 0usize..400, val in proptest::num::u8::ANY) {
            let w = Name::from_uri("/u/ami/bcast/KEK/v=2/ENCRYPTED-BY/x").unwrap();
            let mut m = encode_manifest(b"AKM1", &[9; 64], &[(w, [3; 32])]).to_vec();
            let mut p = encode_pointer(&[(9, [1; 32]), (5, [2; 32])]).to_vec();
            let mut a = encode_assignments(&[(7, vec!["p1".to_string()])]).to_vec();
            for v in [&mut m, &mut p, &mut a] {
                let i = pos % v.len();
                v[i] = val;
            }
            let _ = decode_manifest(Bytes::from(m));
            let _ = decode_pointer(Bytes::from(p));
            let _ = decode_assignments(Bytes::from(a));
        }
    }
}
