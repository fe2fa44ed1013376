//! TLV-TYPE numbers of the NDN packet format v0.3 (`types.rst`), one named constant each.
//!
//! NDNLPv2 numbers live in [`crate::lp`], NFD management numbers in [`mgmt`] (re-exported as
//! [`crate::mgmt`] constants), signature types in [`crate::sig`].

/// Interest packet.
pub const INTEREST: u32 = 5;
/// Data packet.
pub const DATA: u32 = 6;
/// Name.
pub const NAME: u32 = 7;
/// ImplicitSha256DigestComponent (32 octets).
pub const IMPLICIT_SHA256_DIGEST_COMPONENT: u32 = 1;
/// ParametersSha256DigestComponent (32 octets).
pub const PARAMETERS_SHA256_DIGEST_COMPONENT: u32 = 2;
/// GenericNameComponent.
pub const GENERIC_COMPONENT: u32 = 8;
/// KeywordNameComponent.
pub const KEYWORD_COMPONENT: u32 = 32;
/// SegmentNameComponent (naming conventions rev3).
pub const SEGMENT_COMPONENT: u32 = 50;
/// ByteOffsetNameComponent.
pub const BYTE_OFFSET_COMPONENT: u32 = 52;
/// VersionNameComponent.
pub const VERSION_COMPONENT: u32 = 54;
/// TimestampNameComponent.
pub const TIMESTAMP_COMPONENT: u32 = 56;
/// SequenceNumNameComponent.
pub const SEQUENCE_NUM_COMPONENT: u32 = 58;
/// CanBePrefix (empty).
pub const CAN_BE_PREFIX: u32 = 33;
/// MustBeFresh (empty).
pub const MUST_BE_FRESH: u32 = 18;
/// ForwardingHint (1*Name).
pub const FORWARDING_HINT: u32 = 30;
/// Nonce (4 octets).
pub const NONCE: u32 = 10;
/// InterestLifetime (NNI milliseconds).
pub const INTEREST_LIFETIME: u32 = 12;
/// HopLimit (1 octet).
pub const HOP_LIMIT: u32 = 34;
/// ApplicationParameters.
pub const APPLICATION_PARAMETERS: u32 = 36;
/// InterestSignatureInfo.
pub const INTEREST_SIGNATURE_INFO: u32 = 44;
/// InterestSignatureValue.
pub const INTEREST_SIGNATURE_VALUE: u32 = 46;
/// MetaInfo.
pub const META_INFO: u32 = 20;
/// Content.
pub const CONTENT: u32 = 21;
/// SignatureInfo.
pub const SIGNATURE_INFO: u32 = 22;
/// SignatureValue.
pub const SIGNATURE_VALUE: u32 = 23;
/// ContentType (NNI).
pub const CONTENT_TYPE: u32 = 24;
/// FreshnessPeriod (NNI milliseconds).
pub const FRESHNESS_PERIOD: u32 = 25;
/// FinalBlockId (one name component).
pub const FINAL_BLOCK_ID: u32 = 26;
/// SignatureType (NNI).
pub const SIGNATURE_TYPE: u32 = 27;
/// KeyLocator.
pub const KEY_LOCATOR: u32 = 28;
/// KeyDigest.
pub const KEY_DIGEST: u32 = 29;
/// SignatureNonce.
pub const SIGNATURE_NONCE: u32 = 38;
/// SignatureTime (NNI milliseconds since the Unix epoch).
pub const SIGNATURE_TIME: u32 = 40;
/// SignatureSeqNum (NNI).
pub const SIGNATURE_SEQ_NUM: u32 = 42;
/// ValidityPeriod (certificates).
pub const VALIDITY_PERIOD: u32 = 253;
/// NotBefore (`YYYYMMDDThhmmss`).
pub const NOT_BEFORE: u32 = 254;
/// NotAfter (`YYYYMMDDThhmmss`).
pub const NOT_AFTER: u32 = 255;
/// AdditionalDescription (certificates).
pub const ADDITIONAL_DESCRIPTION: u32 = 258;
/// DescriptionEntry.
pub const DESCRIPTION_ENTRY: u32 = 512;
/// DescriptionKey.
pub const DESCRIPTION_KEY: u32 = 513;
/// DescriptionValue.
pub const DESCRIPTION_VALUE: u32 = 514;

/// ContentType values.
pub mod content_type {
    /// Opaque application payload (the default).
    pub const BLOB: u64 = 0;
    /// A Link object.
    pub const LINK: u64 = 1;
    /// A public key or certificate.
    pub const KEY: u64 = 2;
    /// Application-level negative acknowledgement.
    pub const NACK: u64 = 3;
    /// A prefix announcement.
    pub const PREFIX_ANN: u64 = 5;
}

/// NFD management TLV-TYPE numbers (`ndn-cxx/encoding/tlv-nfd.hpp`). Status datasets reuse
/// numbers in 128..=154 with a meaning that depends on the enclosing dataset.
pub mod mgmt {
    /// ControlParameters.
    pub const CONTROL_PARAMETERS: u32 = 104;
    /// FaceId.
    pub const FACE_ID: u32 = 105;
    /// Cost.
    pub const COST: u32 = 106;
    /// Strategy (wraps a Name).
    pub const STRATEGY: u32 = 107;
    /// Flags.
    pub const FLAGS: u32 = 108;
    /// ExpirationPeriod (ms).
    pub const EXPIRATION_PERIOD: u32 = 109;
    /// Origin.
    pub const ORIGIN: u32 = 111;
    /// Mask.
    pub const MASK: u32 = 112;
    /// Uri.
    pub const URI: u32 = 114;
    /// LocalUri.
    pub const LOCAL_URI: u32 = 129;
    /// Capacity.
    pub const CAPACITY: u32 = 131;
    /// Count.
    pub const COUNT: u32 = 132;
    /// FacePersistency.
    pub const FACE_PERSISTENCY: u32 = 133;
    /// BaseCongestionMarkingInterval (ns).
    pub const BASE_CONGESTION_MARKING_INTERVAL: u32 = 135;
    /// DefaultCongestionThreshold (bytes).
    pub const DEFAULT_CONGESTION_THRESHOLD: u32 = 136;
    /// Mtu.
    pub const MTU: u32 = 137;
    /// ControlResponse.
    pub const CONTROL_RESPONSE: u32 = 101;
    /// StatusCode.
    pub const STATUS_CODE: u32 = 102;
    /// StatusText.
    pub const STATUS_TEXT: u32 = 103;

    /// FaceStatus (faces/list dataset entry).
    pub const FACE_STATUS: u32 = 128;
    /// ChannelStatus (faces/channels dataset entry).
    pub const CHANNEL_STATUS: u32 = 130;
    /// FaceScope.
    pub const FACE_SCOPE: u32 = 132;
    /// LinkType.
    pub const LINK_TYPE: u32 = 134;
    /// NInInterests.
    pub const N_IN_INTERESTS: u32 = 144;
    /// NInData.
    pub const N_IN_DATA: u32 = 145;
    /// NOutInterests.
    pub const N_OUT_INTERESTS: u32 = 146;
    /// NOutData.
    pub const N_OUT_DATA: u32 = 147;
    /// NInBytes.
    pub const N_IN_BYTES: u32 = 148;
    /// NOutBytes.
    pub const N_OUT_BYTES: u32 = 149;
    /// FaceQueryFilter.
    pub const FACE_QUERY_FILTER: u32 = 150;
    /// NInNacks.
    pub const N_IN_NACKS: u32 = 151;
    /// NOutNacks.
    pub const N_OUT_NACKS: u32 = 152;
    /// NSatisfiedInterests.
    pub const N_SATISFIED_INTERESTS: u32 = 153;
    /// NUnsatisfiedInterests.
    pub const N_UNSATISFIED_INTERESTS: u32 = 154;

    /// ForwarderStatus NfdVersion.
    pub const NFD_VERSION: u32 = 128;
    /// ForwarderStatus StartTimestamp.
    pub const START_TIMESTAMP: u32 = 129;
    /// ForwarderStatus CurrentTimestamp.
    pub const CURRENT_TIMESTAMP: u32 = 130;
    /// ForwarderStatus NNameTreeEntries.
    pub const N_NAME_TREE_ENTRIES: u32 = 131;
    /// ForwarderStatus NFibEntries.
    pub const N_FIB_ENTRIES: u32 = 132;
    /// ForwarderStatus NPitEntries.
    pub const N_PIT_ENTRIES: u32 = 133;
    /// ForwarderStatus NMeasurementsEntries.
    pub const N_MEASUREMENTS_ENTRIES: u32 = 134;
    /// ForwarderStatus / CsInfo NCsEntries.
    pub const N_CS_ENTRIES: u32 = 135;

    /// CsInfo.
    pub const CS_INFO: u32 = 128;
    /// CsInfo NHits.
    pub const N_HITS: u32 = 129;
    /// CsInfo NMisses.
    pub const N_MISSES: u32 = 130;

    /// FibEntry.
    pub const FIB_ENTRY: u32 = 128;
    /// NextHopRecord.
    pub const NEXT_HOP_RECORD: u32 = 129;
    /// StrategyChoice.
    pub const STRATEGY_CHOICE: u32 = 128;
    /// RibEntry.
    pub const RIB_ENTRY: u32 = 128;
    /// Route.
    pub const ROUTE: u32 = 129;

    /// FaceEventNotification.
    pub const FACE_EVENT_NOTIFICATION: u32 = 192;
    /// FaceEventKind.
    pub const FACE_EVENT_KIND: u32 = 193;
}

/// Whether an unrecognized TLV-TYPE must cause an error (`tlv.rst` critical-bit rule):
/// types 0..=31 and odd types are critical, even types from 32 up may be skipped.
#[inline]
pub const fn is_critical(typ: u32) -> bool {
    typ < 32 || typ & 1 == 1
}
