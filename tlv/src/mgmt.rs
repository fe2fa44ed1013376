//! NFD management elements (`ndn-cxx/encoding/tlv-nfd.hpp`, NFD management protocol):
//! ControlParameters, ControlResponse, the status datasets and FaceEventNotification.
//!
//! Records decode their fields in any order, as NFD's own decoders do (captured FaceStatus puts
//! NInNacks before NOutInterests), reject a repeated field, and apply the critical-bit rule to
//! unknown ones. They encode in NFD's field order. Every field is optional so that one type
//! serves commands, responses and datasets; the forwarder checks which are required.

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoding::{decode_nni, encode_nni_tlv, encode_tl, parse_tlv};
use crate::fields::{Child, Fields};
use crate::{Error, Name, Result};

pub use crate::tt::mgmt::*;

/// Route flag ChildInherit.
pub const ROUTE_FLAG_CHILD_INHERIT: u64 = 1;
/// Route flag Capture.
pub const ROUTE_FLAG_CAPTURE: u64 = 2;
/// Face flag LocalFieldsEnabled.
pub const FACE_FLAG_LOCAL_FIELDS_ENABLED: u64 = 1;
/// Face flag LpReliabilityEnabled.
pub const FACE_FLAG_LP_RELIABILITY_ENABLED: u64 = 2;
/// Face flag CongestionMarkingEnabled.
pub const FACE_FLAG_CONGESTION_MARKING_ENABLED: u64 = 4;
/// Route origin: application.
pub const ORIGIN_APP: u64 = 0;
/// Route origin: auto-registration.
pub const ORIGIN_AUTOREG: u64 = 64;
/// Route origin: client.
pub const ORIGIN_CLIENT: u64 = 65;
/// Route origin: auto-configuration.
pub const ORIGIN_AUTOCONF: u64 = 66;
/// Route origin: NLSR.
pub const ORIGIN_NLSR: u64 = 128;
/// Route origin: prefix announcement.
pub const ORIGIN_PREFIX_ANN: u64 = 129;
/// Route origin: static.
pub const ORIGIN_STATIC: u64 = 255;
/// Face persistency: persistent.
pub const PERSISTENCY_PERSISTENT: u64 = 0;
/// Face persistency: on-demand.
pub const PERSISTENCY_ON_DEMAND: u64 = 1;
/// Face persistency: permanent.
pub const PERSISTENCY_PERMANENT: u64 = 2;
/// Face scope: non-local.
pub const SCOPE_NON_LOCAL: u64 = 0;
/// Face scope: local.
pub const SCOPE_LOCAL: u64 = 1;
/// Link type: point-to-point.
pub const LINK_POINT_TO_POINT: u64 = 0;
/// Link type: multi-access.
pub const LINK_MULTI_ACCESS: u64 = 1;
/// Link type: ad hoc.
pub const LINK_AD_HOC: u64 = 2;
/// FaceQueryFilter UriScheme.
pub const URI_SCHEME: u32 = 131;
/// FaceEventKind: created.
pub const FACE_EVENT_CREATED: u64 = 1;
/// FaceEventKind: destroyed.
pub const FACE_EVENT_DESTROYED: u64 = 2;
/// FaceEventKind: up.
pub const FACE_EVENT_UP: u64 = 3;
/// FaceEventKind: down.
pub const FACE_EVENT_DOWN: u64 = 4;

/// How one field type goes to and from the wire.
pub trait FieldCodec {
    /// The Rust type of the field.
    type T;
    /// Appends the field as element `typ`.
    fn enc(buf: &mut BytesMut, typ: u32, v: &Self::T);
    /// Decodes the field from a child element.
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn dec(buf: &Bytes, f: &Fields<'_>, c: &Child) -> Result<Self::T>;
}

/// NonNegativeInteger field.
#[derive(Debug)]
pub struct Nni;
impl FieldCodec for Nni {
    type T = u64;
    fn enc(buf: &mut BytesMut, typ: u32, v: &u64) {
        encode_nni_tlv(buf, typ, *v);
    }
    #[allow(private_interfaces)]
    fn dec(_: &Bytes, f: &Fields<'_>, c: &Child) -> Result<u64> {
        f.nni(c)
    }
}

/// UTF-8 string field.
#[derive(Debug)]
pub struct Text;
impl FieldCodec for Text {
    type T = String;
    fn enc(buf: &mut BytesMut, typ: u32, v: &String) {
        encode_tl(buf, typ, v.len());
        buf.put_slice(v.as_bytes());
    }
    #[allow(private_interfaces)]
    fn dec(_: &Bytes, f: &Fields<'_>, c: &Child) -> Result<String> {
        std::str::from_utf8(f.value(c))
            .map(str::to_owned)
            .map_err(|_| Error::Invalid {
                what: "text field",
                reason: "not UTF-8",
                offset: c.start,
            })
    }
}

/// A Name field (the element is the Name TLV itself).
#[derive(Debug)]
pub struct NameField;
impl FieldCodec for NameField {
    type T = Name;
    fn enc(buf: &mut BytesMut, _typ: u32, v: &Name) {
        v.encode(buf);
    }
    #[allow(private_interfaces)]
    fn dec(buf: &Bytes, _: &Fields<'_>, c: &Child) -> Result<Name> {
        Name::from_range(buf, c.vs, c.ve)
    }
}

/// An element wrapping one Name (Strategy).
#[derive(Debug)]
pub struct WrappedName;
impl FieldCodec for WrappedName {
    type T = Name;
    fn enc(buf: &mut BytesMut, typ: u32, v: &Name) {
        encode_tl(buf, typ, v.encoded_len());
        v.encode(buf);
    }
    #[allow(private_interfaces)]
    fn dec(buf: &Bytes, _: &Fields<'_>, c: &Child) -> Result<Name> {
        let region = buf.get(..c.ve).unwrap_or(&[]);
        let (t, vs, ve) = parse_tlv(region, c.vs, "wrapped Name")?;
        if t != crate::tt::NAME || ve != c.ve {
            return Err(Error::Invalid {
                what: "Strategy",
                reason: "must contain exactly one Name",
                offset: c.start,
            });
        }
        Name::from_range(buf, vs, ve)
    }
}

macro_rules! record {
    (
        $(#[$m:meta])*
        pub struct $name:ident = $typ:expr, $label:literal {
            $( $(#[$fm:meta])* $field:ident : $codec:ty = $ftyp:expr, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: Option<<$codec as FieldCodec>::T>, )*
        }

        impl $name {
            /// TLV-TYPE of this record.
            pub const TLV_TYPE: u32 = $typ;

            /// Appends the TLV-VALUE (the fields, in NFD's order).
            pub fn encode_value(&self, buf: &mut BytesMut) {
                $( if let Some(v) = &self.$field { <$codec>::enc(buf, $ftyp, v); } )*
            }

            /// Appends the whole TLV.
            pub fn encode_to(&self, buf: &mut BytesMut) {
                let mut v = BytesMut::new();
                self.encode_value(&mut v);
                encode_tl(buf, $typ, v.len());
                buf.put_slice(&v);
            }

            /// The whole TLV.
            pub fn encode(&self) -> Bytes {
                let mut b = BytesMut::new();
                self.encode_to(&mut b);
                b.freeze()
            }

            /// Decodes one whole TLV, rejecting trailing bytes.
            pub fn decode(wire: Bytes) -> Result<$name> {
                let (vs, ve) = whole(&wire, $typ, $label)?;
                $name::decode_range(&wire, vs, ve)
            }

            /// Decodes the fields from a TLV-VALUE.
            pub fn decode_value(value: Bytes) -> Result<$name> {
                let len = value.len();
                $name::decode_range(&value, 0, len)
            }

            /// Decodes a dataset: back-to-back records of this type (other elements are
            /// skipped by the critical-bit rule).
            pub fn decode_list(content: Bytes) -> Result<Vec<$name>> {
                let mut out = Vec::new();
                let len = content.len();
                let mut f = Fields::new(&content, 0, len, $label);
                while let Some(c) = f.next_child()? {
                    if c.typ == $typ {
                        out.push($name::decode_range(&content, c.vs, c.ve)?);
                    } else {
                        f.unknown(&c)?;
                    }
                }
                Ok(out)
            }

            pub(crate) fn decode_range(buf: &Bytes, vs: usize, ve: usize) -> Result<$name> {
                let mut f = Fields::new(buf, vs, ve, $label);
                let mut out = $name::default();
                while let Some(c) = f.next_child()? {
                    match c.typ {
                        $(
                            t if t == $ftyp => {
                                if out.$field.is_some() {
                                    return Err(Error::OutOfOrder { container: $label, typ: c.typ, offset: c.start });
                                }
                                out.$field = Some(<$codec>::dec(buf, &f, &c)?);
                            }
                        )*
                        _ => f.unknown(&c)?,
                    }
                }
                Ok(out)
            }
        }
    };
}

fn whole(wire: &[u8], typ: u32, what: &'static str) -> Result<(usize, usize)> {
    let (t, vs, ve) = parse_tlv(wire, 0, what)?;
    if t != typ {
        return Err(Error::UnexpectedType {
            what,
            expected: typ,
            found: t,
            offset: 0,
        });
    }
    if ve != wire.len() {
        return Err(Error::TrailingBytes {
            what,
            count: wire.len() - ve,
            offset: ve,
        });
    }
    Ok((vs, ve))
}

record! {
    /// ControlParameters (104): the arguments of a management command and its response body.
    pub struct ControlParameters = CONTROL_PARAMETERS, "ControlParameters" {
        /// Name.
        name: NameField = crate::tt::NAME,
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// Uri.
        uri: Text = URI,
        /// LocalUri.
        local_uri: Text = LOCAL_URI,
        /// Origin.
        origin: Nni = ORIGIN,
        /// Cost.
        cost: Nni = COST,
        /// Capacity.
        capacity: Nni = CAPACITY,
        /// Count.
        count: Nni = COUNT,
        /// Flags.
        flags: Nni = FLAGS,
        /// Mask.
        mask: Nni = MASK,
        /// Strategy.
        strategy: WrappedName = STRATEGY,
        /// ExpirationPeriod (ms).
        expiration_period: Nni = EXPIRATION_PERIOD,
        /// FacePersistency.
        face_persistency: Nni = FACE_PERSISTENCY,
        /// BaseCongestionMarkingInterval (ns).
        base_congestion_marking_interval: Nni = BASE_CONGESTION_MARKING_INTERVAL,
        /// DefaultCongestionThreshold (bytes).
        default_congestion_threshold: Nni = DEFAULT_CONGESTION_THRESHOLD,
        /// Mtu.
        mtu: Nni = MTU,
    }
}

record! {
    /// FaceStatus (128), one entry of `faces/list` and the `faces/query` answer.
    pub struct FaceStatus = FACE_STATUS, "FaceStatus" {
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// Uri.
        uri: Text = URI,
        /// LocalUri.
        local_uri: Text = LOCAL_URI,
        /// ExpirationPeriod (ms).
        expiration_period: Nni = EXPIRATION_PERIOD,
        /// FaceScope.
        face_scope: Nni = FACE_SCOPE,
        /// FacePersistency.
        face_persistency: Nni = FACE_PERSISTENCY,
        /// LinkType.
        link_type: Nni = LINK_TYPE,
        /// BaseCongestionMarkingInterval (ns).
        base_congestion_marking_interval: Nni = BASE_CONGESTION_MARKING_INTERVAL,
        /// DefaultCongestionThreshold (bytes).
        default_congestion_threshold: Nni = DEFAULT_CONGESTION_THRESHOLD,
        /// Mtu.
        mtu: Nni = MTU,
        /// NInInterests.
        n_in_interests: Nni = N_IN_INTERESTS,
        /// NInData.
        n_in_data: Nni = N_IN_DATA,
        /// NInNacks.
        n_in_nacks: Nni = N_IN_NACKS,
        /// NOutInterests.
        n_out_interests: Nni = N_OUT_INTERESTS,
        /// NOutData.
        n_out_data: Nni = N_OUT_DATA,
        /// NOutNacks.
        n_out_nacks: Nni = N_OUT_NACKS,
        /// NInBytes.
        n_in_bytes: Nni = N_IN_BYTES,
        /// NOutBytes.
        n_out_bytes: Nni = N_OUT_BYTES,
        /// Flags.
        flags: Nni = FLAGS,
    }
}

record! {
    /// ChannelStatus (130), one entry of `faces/channels`.
    pub struct ChannelStatus = CHANNEL_STATUS, "ChannelStatus" {
        /// LocalUri.
        local_uri: Text = LOCAL_URI,
    }
}

record! {
    /// FaceQueryFilter (150), the argument of `faces/query`.
    pub struct FaceQueryFilter = FACE_QUERY_FILTER, "FaceQueryFilter" {
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// UriScheme.
        uri_scheme: Text = URI_SCHEME,
        /// Uri.
        uri: Text = URI,
        /// LocalUri.
        local_uri: Text = LOCAL_URI,
        /// FaceScope.
        face_scope: Nni = FACE_SCOPE,
        /// FacePersistency.
        face_persistency: Nni = FACE_PERSISTENCY,
        /// LinkType.
        link_type: Nni = LINK_TYPE,
    }
}

record! {
    /// ForwarderStatus (`status/general`); on the wire it is a Content element (21) whose value
    /// is the Data Content, so use [`ForwarderStatus::decode_value`] on a Data's content.
    pub struct ForwarderStatus = crate::tt::CONTENT, "ForwarderStatus" {
        /// NfdVersion.
        nfd_version: Text = NFD_VERSION,
        /// StartTimestamp (ms since the Unix epoch).
        start_timestamp: Nni = START_TIMESTAMP,
        /// CurrentTimestamp (ms since the Unix epoch).
        current_timestamp: Nni = CURRENT_TIMESTAMP,
        /// NNameTreeEntries.
        n_name_tree_entries: Nni = N_NAME_TREE_ENTRIES,
        /// NFibEntries.
        n_fib_entries: Nni = N_FIB_ENTRIES,
        /// NPitEntries.
        n_pit_entries: Nni = N_PIT_ENTRIES,
        /// NMeasurementsEntries.
        n_measurements_entries: Nni = N_MEASUREMENTS_ENTRIES,
        /// NCsEntries.
        n_cs_entries: Nni = N_CS_ENTRIES,
        /// NInInterests.
        n_in_interests: Nni = N_IN_INTERESTS,
        /// NInData.
        n_in_data: Nni = N_IN_DATA,
        /// NInNacks.
        n_in_nacks: Nni = N_IN_NACKS,
        /// NOutInterests.
        n_out_interests: Nni = N_OUT_INTERESTS,
        /// NOutData.
        n_out_data: Nni = N_OUT_DATA,
        /// NOutNacks.
        n_out_nacks: Nni = N_OUT_NACKS,
        /// NSatisfiedInterests.
        n_satisfied_interests: Nni = N_SATISFIED_INTERESTS,
        /// NUnsatisfiedInterests.
        n_unsatisfied_interests: Nni = N_UNSATISFIED_INTERESTS,
    }
}

record! {
    /// CsInfo (128), the `cs/info` dataset.
    pub struct CsInfo = CS_INFO, "CsInfo" {
        /// Capacity.
        capacity: Nni = CAPACITY,
        /// Flags (1 = admit, 2 = serve).
        flags: Nni = FLAGS,
        /// NCsEntries.
        n_cs_entries: Nni = N_CS_ENTRIES,
        /// NHits.
        n_hits: Nni = N_HITS,
        /// NMisses.
        n_misses: Nni = N_MISSES,
    }
}

record! {
    /// NextHopRecord (129) inside a FibEntry.
    pub struct NextHopRecord = NEXT_HOP_RECORD, "NextHopRecord" {
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// Cost.
        cost: Nni = COST,
    }
}

record! {
    /// Route (129) inside a RibEntry.
    pub struct Route = ROUTE, "Route" {
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// Origin.
        origin: Nni = ORIGIN,
        /// Cost.
        cost: Nni = COST,
        /// Flags.
        flags: Nni = FLAGS,
        /// ExpirationPeriod (ms).
        expiration_period: Nni = EXPIRATION_PERIOD,
    }
}

record! {
    /// StrategyChoice (128), one entry of `strategy-choice/list`.
    pub struct StrategyChoice = STRATEGY_CHOICE, "StrategyChoice" {
        /// Name (the namespace).
        name: NameField = crate::tt::NAME,
        /// Strategy.
        strategy: WrappedName = STRATEGY,
    }
}

record! {
    /// FaceEventNotification (192), published on `/localhost/nfd/faces/events`.
    pub struct FaceEventNotification = FACE_EVENT_NOTIFICATION, "FaceEventNotification" {
        /// FaceEventKind.
        kind: Nni = FACE_EVENT_KIND,
        /// FaceId.
        face_id: Nni = FACE_ID,
        /// Uri.
        uri: Text = URI,
        /// LocalUri.
        local_uri: Text = LOCAL_URI,
        /// FaceScope.
        face_scope: Nni = FACE_SCOPE,
        /// FacePersistency.
        face_persistency: Nni = FACE_PERSISTENCY,
        /// LinkType.
        link_type: Nni = LINK_TYPE,
        /// Flags.
        flags: Nni = FLAGS,
    }
}

macro_rules! entry_with_list {
    (
        $(#[$m:meta])*
        pub struct $name:ident = $typ:expr, $label:literal { $(#[$lm:meta])* $list:ident : Vec<$item:ident> }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            /// Name (the prefix).
            pub name: Name,
            $(#[$lm])*
            pub $list: Vec<$item>,
        }

        impl $name {
            /// TLV-TYPE of this record.
            pub const TLV_TYPE: u32 = $typ;

            /// Appends the whole TLV.
            pub fn encode_to(&self, buf: &mut BytesMut) {
                let mut v = BytesMut::new();
                self.name.encode(&mut v);
                for r in &self.$list {
                    r.encode_to(&mut v);
                }
                encode_tl(buf, $typ, v.len());
                buf.put_slice(&v);
            }

            /// The whole TLV.
            pub fn encode(&self) -> Bytes {
                let mut b = BytesMut::new();
                self.encode_to(&mut b);
                b.freeze()
            }

            /// Decodes one whole TLV.
            pub fn decode(wire: Bytes) -> Result<$name> {
                let (vs, ve) = whole(&wire, $typ, $label)?;
                $name::decode_range(&wire, vs, ve)
            }

            /// Decodes a dataset of back-to-back records.
            pub fn decode_list(content: Bytes) -> Result<Vec<$name>> {
                let mut out = Vec::new();
                let len = content.len();
                let mut f = Fields::new(&content, 0, len, $label);
                while let Some(c) = f.next_child()? {
                    if c.typ == $typ {
                        out.push($name::decode_range(&content, c.vs, c.ve)?);
                    } else {
                        f.unknown(&c)?;
                    }
                }
                Ok(out)
            }

            fn decode_range(buf: &Bytes, vs: usize, ve: usize) -> Result<$name> {
                let mut f = Fields::new(buf, vs, ve, $label);
                let mut out = $name::default();
                let mut have_name = false;
                while let Some(c) = f.next_child()? {
                    match c.typ {
                        crate::tt::NAME => {
                            f.order(&c, 1)?;
                            out.name = Name::from_range(buf, c.vs, c.ve)?;
                            have_name = true;
                        }
                        t if t == $item::TLV_TYPE => {
                            f.repeat(&c, 2)?;
                            out.$list.push($item::decode_range(buf, c.vs, c.ve)?);
                        }
                        _ => f.unknown(&c)?,
                    }
                }
                if !have_name {
                    return Err(Error::Missing { container: $label, what: "Name" });
                }
                Ok(out)
            }
        }
    };
}

entry_with_list! {
    /// FibEntry (128), one entry of `fib/list`.
    pub struct FibEntry = FIB_ENTRY, "FibEntry" {
        /// NextHopRecords.
        next_hops: Vec<NextHopRecord>
    }
}

entry_with_list! {
    /// RibEntry (128), one entry of `rib/list`.
    pub struct RibEntry = RIB_ENTRY, "RibEntry" {
        /// Routes.
        routes: Vec<Route>
    }
}

/// ControlResponse (101): the Content of a command's reply Data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlResponse {
    /// StatusCode (HTTP-like: 200 OK, 400, 403, 404, ...).
    pub status_code: u64,
    /// StatusText.
    pub status_text: String,
    /// The body: the completed ControlParameters of a successful command.
    pub body: Option<ControlParameters>,
}

impl ControlResponse {
    /// A response with a status and no body.
    pub fn new(status_code: u64, status_text: impl Into<String>) -> ControlResponse {
        ControlResponse {
            status_code,
            status_text: status_text.into(),
            body: None,
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: ControlParameters) -> ControlResponse {
        ControlResponse {
            status_code: 200,
            status_text: "OK".to_owned(),
            body: Some(body),
        }
    }

    /// Appends the whole TLV.
    pub fn encode_to(&self, buf: &mut BytesMut) {
        let mut v = BytesMut::new();
        encode_nni_tlv(&mut v, STATUS_CODE, self.status_code);
        encode_tl(&mut v, STATUS_TEXT, self.status_text.len());
        v.put_slice(self.status_text.as_bytes());
        if let Some(b) = &self.body {
            b.encode_to(&mut v);
        }
        encode_tl(buf, CONTROL_RESPONSE, v.len());
        buf.put_slice(&v);
    }

    /// The whole TLV.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode_to(&mut b);
        b.freeze()
    }

    /// Decodes a ControlResponse TLV.
    pub fn decode(wire: Bytes) -> Result<ControlResponse> {
        let (vs, ve) = whole(&wire, CONTROL_RESPONSE, "ControlResponse")?;
        let mut f = Fields::new(&wire, vs, ve, "ControlResponse");
        let mut out = ControlResponse::default();
        let (mut have_code, mut have_text) = (false, false);
        while let Some(c) = f.next_child()? {
            match c.typ {
                STATUS_CODE => {
                    f.order(&c, 1)?;
                    out.status_code = decode_nni(f.value(&c), c.typ, c.start)?;
                    have_code = true;
                }
                STATUS_TEXT => {
                    f.order(&c, 2)?;
                    out.status_text = Text::dec(&wire, &f, &c)?;
                    have_text = true;
                }
                CONTROL_PARAMETERS => {
                    f.order(&c, 3)?;
                    out.body = Some(ControlParameters::decode_range(&wire, c.vs, c.ve)?);
                }
                _ => f.unknown(&c)?,
            }
        }
        if !have_code || !have_text {
            return Err(Error::Missing {
                container: "ControlResponse",
                what: if have_code {
                    "StatusText"
                } else {
                    "StatusCode"
                },
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::name::tests::hex;

    #[test]
    fn control_parameters_golden() {
        // The ControlParameters NDNts sends in its rib/register command (captured).
        let cp = ControlParameters {
            name: Some(Name::from_uri("/cap/ndnts").unwrap()),
            origin: Some(ORIGIN_CLIENT),
            cost: Some(0),
            flags: Some(ROUTE_FLAG_CAPTURE),
            expiration_period: Some(1_200_000),
            ..ControlParameters::default()
        };
        let w = cp.encode();
        assert_eq!(
            hex(&w),
            "681d070c080363617008056e646e74736f01416a01006c01026d0400124f80"
        );
        assert_eq!(ControlParameters::decode(w).unwrap(), cp);
    }

    #[test]
    fn any_order_but_no_repeats() {
        let cp =
            ControlParameters::decode(Bytes::from_static(&[104, 6, 106, 1, 5, 105, 1, 7])).unwrap();
        assert_eq!((cp.face_id, cp.cost), (Some(7), Some(5)));
        assert!(
            ControlParameters::decode(Bytes::from_static(&[104, 6, 106, 1, 5, 106, 1, 7])).is_err()
        );
        assert!(ControlParameters::decode(Bytes::from_static(&[104, 3, 0x8D, 1, 5])).is_err());
        assert!(ControlParameters::decode(Bytes::from_static(&[104, 3, 0x8E, 1, 5])).is_ok());
    }

    #[test]
    fn response_and_datasets_round_trip() {
        let r = ControlResponse::ok(ControlParameters {
            name: Some(Name::from_uri("/a").unwrap()),
            face_id: Some(260),
            strategy: Some(Name::from_uri("/localhost/nfd/strategy/best-route/v=5").unwrap()),
            uri: Some("udp4://127.0.0.1:6363".into()),
            ..ControlParameters::default()
        });
        assert_eq!(ControlResponse::decode(r.encode()).unwrap(), r);
        let fib = FibEntry {
            name: Name::from_uri("/a").unwrap(),
            next_hops: vec![
                NextHopRecord {
                    face_id: Some(1),
                    cost: Some(0),
                },
                NextHopRecord {
                    face_id: Some(2),
                    cost: Some(10),
                },
            ],
        };
        let rib = RibEntry {
            name: Name::from_uri("/b").unwrap(),
            routes: vec![Route {
                face_id: Some(3),
                origin: Some(255),
                cost: Some(1),
                flags: Some(1),
                expiration_period: None,
            }],
        };
        let mut content = BytesMut::new();
        fib.encode_to(&mut content);
        fib.encode_to(&mut content);
        assert_eq!(
            FibEntry::decode_list(content.freeze()).unwrap(),
            vec![fib.clone(), fib]
        );
        assert_eq!(RibEntry::decode(rib.encode()).unwrap(), rib);
        let ev = FaceEventNotification {
            kind: Some(FACE_EVENT_CREATED),
            face_id: Some(300),
            uri: Some("tcp4://1.2.3.4:6363".into()),
            ..FaceEventNotification::default()
        };
        assert_eq!(FaceEventNotification::decode(ev.encode()).unwrap(), ev);
        let cs = CsInfo {
            capacity: Some(65536),
            flags: Some(3),
            n_cs_entries: Some(1),
            n_hits: Some(2),
            n_misses: Some(3),
        };
        assert_eq!(CsInfo::decode(cs.encode()).unwrap(), cs);
        let sc = StrategyChoice {
            name: Some(Name::new()),
            strategy: Some(Name::from_uri("/localhost/nfd/strategy/best-route").unwrap()),
        };
        assert_eq!(StrategyChoice::decode(sc.encode()).unwrap(), sc);
        let mut fs = ForwarderStatus {
            nfd_version: Some("24.07".into()),
            n_pit_entries: Some(4),
            ..ForwarderStatus::default()
        };
        let mut v = BytesMut::new();
        fs.encode_value(&mut v);
        assert_eq!(ForwarderStatus::decode_value(v.freeze()).unwrap(), fs);
        fs.n_in_nacks = Some(1);
        assert_eq!(ForwarderStatus::decode(fs.encode()).unwrap(), fs);
    }
}
