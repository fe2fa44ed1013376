//! A generic, schema-aware TLV tree for inspection tools (`amicn dissect`): every element with
//! its spec name, offset and, for leaves, a decoded rendering (URIs for names, numbers for
//! NonNegativeIntegers, text for strings). Nesting is capped at [`crate::MAX_NESTING_DEPTH`].
//!
//! Opaque values that often hold TLVs (a GenericNameComponent carrying ControlParameters, a
//! Content carrying a ControlResponse or a status dataset, a Fragment) are shown nested when
//! they parse completely and start with a plausible element, as ndn-dissect does.

use bytes::Bytes;

use crate::encoding::{decode_nni, parse_tlv, rebase};
use crate::lp;
use crate::mgmt as m;
use crate::name::write_component_uri;
use crate::tt;
use crate::{Error, MAX_NESTING_DEPTH, Name, Result};

/// One element of a dissected packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// TLV-TYPE.
    pub typ: u32,
    /// Spec name of the element in its context, or `None` if unrecognized.
    pub label: Option<&'static str>,
    /// Offset of the element from the start of the input.
    pub offset: usize,
    /// Octets of TLV-TYPE and TLV-LENGTH.
    pub header_len: usize,
    /// TLV-VALUE.
    pub value: Bytes,
    /// Human-readable rendering of a leaf value (URI, number, text).
    pub decoded: Option<String>,
    /// Child elements (empty for leaves).
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    Interest,
    Data,
    Name,
    MetaInfo,
    FinalBlockId,
    SigInfo,
    KeyLocator,
    Validity,
    ForwardingHint,
    Lp,
    Nack,
    CachePolicy,
    ControlParameters,
    ControlResponse,
    Strategy,
    FaceRecord,
    CsInfo,
    FibEntry,
    RibEntry,
    NextHop,
    Route,
    StrategyChoice,
    ChannelStatus,
    /// Inside an opaque value (Content, ApplicationParameters): datasets or ForwarderStatus.
    Payload,
    Description,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container(Ctx),
    /// Opaque, but shown nested when it parses as TLVs starting with one of these types.
    MaybeNested(&'static [u32]),
    Name,
    Component,
    Nni,
    Text,
    Empty,
    Bytes,
    /// Context-dependent dataset entry decided by its content.
    DatasetEntry,
    /// TLV-TYPE 130: a ChannelStatus entry, or ForwarderStatus CurrentTimestamp.
    ChannelOrTimestamp,
}

const IN_COMPONENT: &[u32] = &[
    m::CONTROL_PARAMETERS,
    tt::SIGNATURE_INFO,
    tt::SIGNATURE_VALUE,
    m::FACE_QUERY_FILTER,
];
const IN_CONTENT: &[u32] = &[
    m::CONTROL_RESPONSE,
    m::FACE_STATUS,
    m::CHANNEL_STATUS,
    m::FACE_EVENT_NOTIFICATION,
    m::FACE_QUERY_FILTER,
    tt::INTEREST,
    tt::DATA,
    tt::NAME,
    lp::LP_PACKET,
];
const IN_FRAGMENT: &[u32] = &[tt::INTEREST, tt::DATA];

fn describe(typ: u32, ctx: Ctx) -> (Option<&'static str>, Kind) {
    use Kind::*;
    let face_fields = matches!(
        ctx,
        Ctx::ControlParameters | Ctx::FaceRecord | Ctx::ChannelStatus
    );
    let r: (&'static str, Kind) = match (ctx, typ) {
        (Ctx::Name | Ctx::FinalBlockId, _) => (component_label(typ), Component),
        (_, tt::INTEREST) => ("Interest", Container(Ctx::Interest)),
        (_, tt::DATA) => ("Data", Container(Ctx::Data)),
        (_, tt::NAME) => ("Name", Name),
        (_, lp::LP_PACKET) => ("LpPacket", Container(Ctx::Lp)),
        (Ctx::Interest, tt::CAN_BE_PREFIX) => ("CanBePrefix", Empty),
        (Ctx::Interest, tt::MUST_BE_FRESH) => ("MustBeFresh", Empty),
        (Ctx::Interest, tt::FORWARDING_HINT) => ("ForwardingHint", Container(Ctx::ForwardingHint)),
        (Ctx::Interest, tt::NONCE) => ("Nonce", Bytes),
        (Ctx::Interest, tt::INTEREST_LIFETIME) => ("InterestLifetime", Nni),
        (Ctx::Interest, tt::HOP_LIMIT) => ("HopLimit", Nni),
        (Ctx::Interest, tt::APPLICATION_PARAMETERS) => {
            ("ApplicationParameters", MaybeNested(IN_CONTENT))
        }
        (Ctx::Interest, tt::INTEREST_SIGNATURE_INFO) => {
            ("InterestSignatureInfo", Container(Ctx::SigInfo))
        }
        (Ctx::Interest, tt::INTEREST_SIGNATURE_VALUE) => ("InterestSignatureValue", Bytes),
        (Ctx::Data, tt::META_INFO) => ("MetaInfo", Container(Ctx::MetaInfo)),
        (Ctx::Data, tt::CONTENT) => ("Content", MaybeNested(IN_CONTENT)),
        (_, tt::SIGNATURE_INFO) => ("SignatureInfo", Container(Ctx::SigInfo)),
        (_, tt::SIGNATURE_VALUE) => ("SignatureValue", Bytes),
        (Ctx::MetaInfo, tt::CONTENT_TYPE) => ("ContentType", Nni),
        (Ctx::MetaInfo, tt::FRESHNESS_PERIOD) => ("FreshnessPeriod", Nni),
        (Ctx::MetaInfo, tt::FINAL_BLOCK_ID) => ("FinalBlockId", Container(Ctx::FinalBlockId)),
        (Ctx::SigInfo, tt::SIGNATURE_TYPE) => ("SignatureType", Nni),
        (Ctx::SigInfo, tt::KEY_LOCATOR) => ("KeyLocator", Container(Ctx::KeyLocator)),
        (Ctx::KeyLocator, tt::KEY_DIGEST) => ("KeyDigest", Bytes),
        (Ctx::SigInfo, tt::SIGNATURE_NONCE) => ("SignatureNonce", Bytes),
        (Ctx::SigInfo, tt::SIGNATURE_TIME) => ("SignatureTime", Nni),
        (Ctx::SigInfo, tt::SIGNATURE_SEQ_NUM) => ("SignatureSeqNum", Nni),
        (Ctx::SigInfo, tt::VALIDITY_PERIOD) => ("ValidityPeriod", Container(Ctx::Validity)),
        (Ctx::SigInfo, tt::ADDITIONAL_DESCRIPTION) => {
            ("AdditionalDescription", Container(Ctx::Description))
        }
        (Ctx::Description, tt::DESCRIPTION_ENTRY) => {
            ("DescriptionEntry", Container(Ctx::Description))
        }
        (Ctx::Description, tt::DESCRIPTION_KEY) => ("DescriptionKey", Text),
        (Ctx::Description, tt::DESCRIPTION_VALUE) => ("DescriptionValue", Text),
        (Ctx::Validity, tt::NOT_BEFORE) => ("NotBefore", Text),
        (Ctx::Validity, tt::NOT_AFTER) => ("NotAfter", Text),
        (Ctx::Lp, lp::FRAGMENT) => ("Fragment", MaybeNested(IN_FRAGMENT)),
        (Ctx::Lp, lp::SEQUENCE) => ("Sequence", Nni),
        (Ctx::Lp, lp::FRAG_INDEX) => ("FragIndex", Nni),
        (Ctx::Lp, lp::FRAG_COUNT) => ("FragCount", Nni),
        (Ctx::Lp, lp::HOP_COUNT) => ("HopCount", Nni),
        (Ctx::Lp, lp::PIT_TOKEN) => ("PitToken", Bytes),
        (Ctx::Lp, lp::NACK) => ("Nack", Container(Ctx::Nack)),
        (Ctx::Nack, lp::NACK_REASON) => ("NackReason", Nni),
        (Ctx::Lp, lp::INCOMING_FACE_ID) => ("IncomingFaceId", Nni),
        (Ctx::Lp, lp::NEXT_HOP_FACE_ID) => ("NextHopFaceId", Nni),
        (Ctx::Lp, lp::CACHE_POLICY) => ("CachePolicy", Container(Ctx::CachePolicy)),
        (Ctx::CachePolicy, lp::CACHE_POLICY_TYPE) => ("CachePolicyType", Nni),
        (Ctx::Lp, lp::CONGESTION_MARK) => ("CongestionMark", Nni),
        (Ctx::Lp, lp::ACK) => ("Ack", Nni),
        (Ctx::Lp, lp::TX_SEQUENCE) => ("TxSequence", Nni),
        (Ctx::Lp, lp::NON_DISCOVERY) => ("NonDiscovery", Empty),
        (Ctx::Lp, lp::PREFIX_ANNOUNCEMENT) => ("PrefixAnnouncement", MaybeNested(IN_FRAGMENT)),
        (_, m::CONTROL_PARAMETERS) => ("ControlParameters", Container(Ctx::ControlParameters)),
        (_, m::CONTROL_RESPONSE) => ("ControlResponse", Container(Ctx::ControlResponse)),
        (Ctx::ControlResponse, m::STATUS_CODE) => ("StatusCode", Nni),
        (Ctx::ControlResponse, m::STATUS_TEXT) => ("StatusText", Text),
        (Ctx::Payload | Ctx::Top, m::FACE_STATUS) => ("DatasetEntry", DatasetEntry),
        (Ctx::Payload | Ctx::Top, m::CHANNEL_STATUS) => ("ChannelStatus", ChannelOrTimestamp),
        (_, m::FACE_QUERY_FILTER) => ("FaceQueryFilter", Container(Ctx::FaceRecord)),
        (_, m::FACE_EVENT_NOTIFICATION) => ("FaceEventNotification", Container(Ctx::FaceRecord)),
        (Ctx::FaceRecord, m::FACE_EVENT_KIND) => ("FaceEventKind", Nni),
        (Ctx::FibEntry, m::NEXT_HOP_RECORD) => ("NextHopRecord", Container(Ctx::NextHop)),
        (Ctx::RibEntry, m::ROUTE) => ("Route", Container(Ctx::Route)),
        (Ctx::CsInfo, m::N_HITS) => ("NHits", Nni),
        (Ctx::CsInfo, m::N_MISSES) => ("NMisses", Nni),
        (Ctx::CsInfo, m::CAPACITY) => ("Capacity", Nni),
        (Ctx::CsInfo, m::N_CS_ENTRIES) => ("NCsEntries", Nni),
        (Ctx::Payload, m::START_TIMESTAMP) => ("StartTimestamp", Nni),
        (Ctx::Payload, m::N_NAME_TREE_ENTRIES) => ("NNameTreeEntries", Nni),
        (Ctx::Payload, m::N_FIB_ENTRIES) => ("NFibEntries", Nni),
        (Ctx::Payload, m::N_PIT_ENTRIES) => ("NPitEntries", Nni),
        (Ctx::Payload, m::N_MEASUREMENTS_ENTRIES) => ("NMeasurementsEntries", Nni),
        (Ctx::Payload, m::N_CS_ENTRIES) => ("NCsEntries", Nni),
        (Ctx::ControlParameters | Ctx::StrategyChoice, m::STRATEGY) => {
            ("Strategy", Container(Ctx::Strategy))
        }
        (_, m::FACE_ID) => ("FaceId", Nni),
        (_, m::COST) => ("Cost", Nni),
        (_, m::FLAGS) => ("Flags", Nni),
        (_, m::EXPIRATION_PERIOD) => ("ExpirationPeriod", Nni),
        (_, m::ORIGIN) => ("Origin", Nni),
        (_, m::MASK) => ("Mask", Nni),
        (_, m::URI) => ("Uri", Text),
        (_, m::LOCAL_URI) if face_fields => ("LocalUri", Text),
        (Ctx::FaceRecord, m::URI_SCHEME) => ("UriScheme", Text),
        (Ctx::ControlParameters, m::CAPACITY) => ("Capacity", Nni),
        (Ctx::ControlParameters, m::COUNT) => ("Count", Nni),
        (Ctx::FaceRecord, m::FACE_SCOPE) => ("FaceScope", Nni),
        (_, m::FACE_PERSISTENCY) if face_fields => ("FacePersistency", Nni),
        (_, m::LINK_TYPE) if face_fields => ("LinkType", Nni),
        (_, m::BASE_CONGESTION_MARKING_INTERVAL) if face_fields => {
            ("BaseCongestionMarkingInterval", Nni)
        }
        (_, m::DEFAULT_CONGESTION_THRESHOLD) if face_fields => ("DefaultCongestionThreshold", Nni),
        (_, m::MTU) if face_fields => ("Mtu", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_IN_INTERESTS) => ("NInInterests", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_IN_DATA) => ("NInData", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_IN_NACKS) => ("NInNacks", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_OUT_INTERESTS) => ("NOutInterests", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_OUT_DATA) => ("NOutData", Nni),
        (Ctx::FaceRecord | Ctx::Payload, m::N_OUT_NACKS) => ("NOutNacks", Nni),
        (Ctx::FaceRecord, m::N_IN_BYTES) => ("NInBytes", Nni),
        (Ctx::FaceRecord, m::N_OUT_BYTES) => ("NOutBytes", Nni),
        (Ctx::Payload, m::N_SATISFIED_INTERESTS) => ("NSatisfiedInterests", Nni),
        (Ctx::Payload, m::N_UNSATISFIED_INTERESTS) => ("NUnsatisfiedInterests", Nni),
        _ => return (None, Kind::Bytes),
    };
    (Some(r.0), r.1)
}

fn component_label(typ: u32) -> &'static str {
    match typ {
        tt::GENERIC_COMPONENT => "GenericNameComponent",
        tt::IMPLICIT_SHA256_DIGEST_COMPONENT => "ImplicitSha256DigestComponent",
        tt::PARAMETERS_SHA256_DIGEST_COMPONENT => "ParametersSha256DigestComponent",
        tt::KEYWORD_COMPONENT => "KeywordNameComponent",
        tt::SEGMENT_COMPONENT => "SegmentNameComponent",
        tt::BYTE_OFFSET_COMPONENT => "ByteOffsetNameComponent",
        tt::VERSION_COMPONENT => "VersionNameComponent",
        tt::TIMESTAMP_COMPONENT => "TimestampNameComponent",
        tt::SEQUENCE_NUM_COMPONENT => "SequenceNumNameComponent",
        _ => "NameComponent",
    }
}

/// Dissects a buffer of back-to-back elements (several packets are fine).
pub fn walk(buf: Bytes) -> Result<Vec<Node>> {
    walk_seq(&buf, 0, Ctx::Top, 0)
}

/// Like [`walk`] for a buffer that starts at offset `base` of a larger input; node offsets and
/// error offsets are reported relative to that input.
pub fn walk_at(buf: Bytes, base: usize) -> Result<Vec<Node>> {
    walk_seq(&buf, base, Ctx::Top, 0)
}

fn walk_seq(buf: &Bytes, base: usize, ctx: Ctx, depth: usize) -> Result<Vec<Node>> {
    if depth > MAX_NESTING_DEPTH {
        return Err(Error::TooDeep {
            max: MAX_NESTING_DEPTH,
            offset: base,
        });
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (typ, vs, ve) = parse_tlv(buf, pos, "element").map_err(|e| rebase(e, base))?;
        let value = buf.slice(vs..ve);
        let offset = base + pos;
        let (label, kind) = describe(typ, ctx);
        let mut node = Node {
            typ,
            label,
            offset,
            header_len: vs - pos,
            value: value.clone(),
            decoded: None,
            children: Vec::new(),
        };
        let vbase = base + vs;
        match kind {
            Kind::Container(c) => node.children = walk_seq(&value, vbase, c, depth + 1)?,
            Kind::MaybeNested(first) => {
                if let Ok(ch) = walk_seq(&value, vbase, Ctx::Payload, depth + 1)
                    && ch.first().is_some_and(|n| first.contains(&n.typ))
                {
                    node.children = ch;
                } else if !value.is_empty() {
                    node.decoded = Some(hex(&value));
                }
            }
            Kind::DatasetEntry => match classify_entry(&value, vbase, depth) {
                Some((label, children)) => {
                    node.label = Some(label);
                    node.children = children;
                }
                None => {
                    node.label = Some("NfdVersion");
                    node.decoded = Some(String::from_utf8_lossy(&value).into_owned());
                }
            },
            Kind::ChannelOrTimestamp => {
                match walk_seq(&value, vbase, Ctx::ChannelStatus, depth + 1) {
                    Ok(ch) if ch.first().is_some_and(|n| n.typ == m::LOCAL_URI) => {
                        node.children = ch
                    }
                    _ => {
                        node.label = Some("CurrentTimestamp");
                        node.decoded = Some(decode_nni(&value, typ, offset)?.to_string());
                    }
                }
            }
            Kind::Name => {
                let n = Name::from_value(value.clone()).map_err(|e| rebase(e, vbase))?;
                node.decoded = Some(n.to_string());
                node.children = walk_seq(&value, vbase, Ctx::Name, depth + 1)?;
            }
            Kind::Component => {
                let mut s = String::new();
                let _ = write_component_uri(&mut s, typ, &value);
                node.decoded = Some(s);
                if typ == tt::GENERIC_COMPONENT
                    && let Ok(ch) = walk_seq(&value, vbase, Ctx::Payload, depth + 1)
                    && ch.first().is_some_and(|n| IN_COMPONENT.contains(&n.typ))
                {
                    node.children = ch;
                }
            }
            Kind::Nni => {
                node.decoded = Some(decode_nni(&value, typ, offset)?.to_string());
            }
            Kind::Text => node.decoded = Some(String::from_utf8_lossy(&value).into_owned()),
            Kind::Empty => {}
            Kind::Bytes => {
                if !value.is_empty() {
                    node.decoded = Some(hex(&value));
                }
            }
        }
        out.push(node);
        pos = ve;
    }
    Ok(out)
}

/// Decides what a TLV-TYPE 128 entry of a status dataset is from the elements it holds.
fn classify_entry(value: &Bytes, vbase: usize, depth: usize) -> Option<(&'static str, Vec<Node>)> {
    let probe = shallow(value)?;
    let has = |t: u32| probe.iter().any(|(typ, _)| *typ == t);
    let (label, ctx) = if has(m::FACE_ID) && has(m::URI) {
        ("FaceStatus", Ctx::FaceRecord)
    } else if has(tt::NAME) && has(m::STRATEGY) {
        ("StrategyChoice", Ctx::StrategyChoice)
    } else if has(tt::NAME) {
        let route = probe
            .iter()
            .filter(|(t, _)| *t == m::ROUTE)
            .any(|(_, v)| shallow(v).is_some_and(|c| c.iter().any(|(t, _)| *t == m::ORIGIN)));
        if route {
            ("RibEntry", Ctx::RibEntry)
        } else {
            ("FibEntry", Ctx::FibEntry)
        }
    } else if has(m::N_HITS) || has(m::N_MISSES) || has(m::CAPACITY) {
        ("CsInfo", Ctx::CsInfo)
    } else {
        return None;
    };
    let children = walk_seq(value, vbase, ctx, depth + 1).ok()?;
    Some((label, children))
}

/// Frames the children of a value without interpreting them.
fn shallow(value: &Bytes) -> Option<Vec<(u32, Bytes)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < value.len() {
        let (typ, vs, ve) = parse_tlv(value, pos, "element").ok()?;
        out.push((typ, value.slice(vs..ve)));
        pos = ve;
    }
    Some(out)
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mgmt::{ControlParameters, ControlResponse, FaceStatus};
    use crate::{Data, Interest, LpHeaders, NackReason, encode_nack};

    fn labels(nodes: &[Node], out: &mut Vec<String>, depth: usize) {
        for n in nodes {
            out.push(format!(
                "{}{}={}",
                " ".repeat(depth),
                n.label.unwrap_or("?"),
                n.decoded.clone().unwrap_or_default()
            ));
            labels(&n.children, out, depth + 1);
        }
    }

    #[test]
    fn dissects_command_and_response() {
        let cp = ControlParameters {
            name: Some(Name::from_uri("/a").unwrap()),
            cost: Some(7),
            ..ControlParameters::default()
        };
        let mut i = Interest::new(
            Name::from_uri("/localhost/nfd/rib/register")
                .unwrap()
                .append_generic(cp.encode()),
        );
        i.nonce = Some(1);
        let w = encode_nack(
            i.encode(),
            NackReason::NoRoute,
            Some(Bytes::from_static(b"tk")),
        );
        let mut d = Data::new(i.name.clone(), ControlResponse::ok(cp).encode());
        let dw = d.sign_digest_sha256();
        let mut all = w.to_vec();
        all.extend_from_slice(&dw);
        let tree = walk(Bytes::from(all)).unwrap();
        assert_eq!(tree.len(), 2);
        let mut l = Vec::new();
        labels(&tree, &mut l, 0);
        let text = l.join("\n");
        assert!(text.contains("  Interest="), "{text}");
        assert!(text.contains("NackReason=150"), "{text}");
        assert!(text.contains("PitToken=746b"), "{text}");
        assert!(text.contains("     ControlParameters="), "{text}");
        assert!(text.contains("      Cost=7"), "{text}");
        assert!(text.contains(" Content="), "{text}");
        assert!(text.contains("  ControlResponse="), "{text}");
        assert!(text.contains("   StatusCode=200"), "{text}");
        assert!(text.contains("   StatusText=OK"), "{text}");
        let _ = LpHeaders::default();
    }

    #[test]
    fn dataset_entries_and_errors() {
        let fs = FaceStatus {
            face_id: Some(1),
            uri: Some("internal://".into()),
            ..FaceStatus::default()
        };
        let d = Data::new(Name::from_uri("/x").unwrap(), fs.encode());
        let tree = walk(d.encode()).unwrap();
        let content = tree[0]
            .children
            .iter()
            .find(|n| n.typ == tt::CONTENT)
            .unwrap();
        assert_eq!(content.children[0].label, Some("FaceStatus"));
        assert_eq!(
            content.children[0].children[1].decoded.as_deref(),
            Some("internal://")
        );
        // Errors carry the absolute offset.
        let err = walk(Bytes::from_static(&[5, 4, 7, 2, 8, 5])).unwrap_err();
        assert!(matches!(err, Error::Truncated { offset: 4, .. }), "{err:?}");
        // Nesting cap: ControlParameters nested 40 deep.
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..40 {
            inner = [&[104u8, inner.len() as u8][..], &inner].concat();
        }
        assert!(matches!(
            walk(Bytes::from(inner)),
            Err(Error::TooDeep { .. })
        ));
    }
}
