//! Encodings of NFD's status datasets and face event notifications, field for field in the
//! order ndn-cxx writes and expects them (`ndn-cxx/mgmt/nfd/*.cpp`), so that `nfdc`, pynfdc
//! and NDNts decode them. Type numbers are NFD's (`ndn-cxx/encoding/tlv-nfd.hpp`); inside a
//! dataset entry 128..=154 mean whatever that entry's schema says.

use amicn_tlv::Name;
use amicn_tlv::mgmt::FaceQueryFilter;
use bytes::{BufMut, Bytes, BytesMut};

use super::{FaceEventKind, FaceSystem, Rib, Tables, face_flags};
use crate::core::{FaceCounters, FaceId, FaceOptions, FaceScope, LinkType, Time};

const FACE_ID: u64 = 105;
const URI: u64 = 114;
const LOCAL_URI: u64 = 129;
const EXPIRATION_PERIOD: u64 = 109;
const FACE_SCOPE: u64 = 132;
const FACE_PERSISTENCY: u64 = 133;
const LINK_TYPE: u64 = 134;
const BASE_CONGESTION_MARKING_INTERVAL: u64 = 135;
const DEFAULT_CONGESTION_THRESHOLD: u64 = 136;
const MTU: u64 = 137;
const N_IN_INTERESTS: u64 = 144;
const N_IN_DATA: u64 = 145;
const N_OUT_INTERESTS: u64 = 146;
const N_OUT_DATA: u64 = 147;
const N_IN_BYTES: u64 = 148;
const N_OUT_BYTES: u64 = 149;
const N_IN_NACKS: u64 = 151;
const N_OUT_NACKS: u64 = 152;
const N_SATISFIED_INTERESTS: u64 = 153;
const N_UNSATISFIED_INTERESTS: u64 = 154;
const FLAGS: u64 = 108;
const COST: u64 = 106;
const ORIGIN: u64 = 111;
const STRATEGY: u64 = 107;

const FACE_STATUS: u64 = 128;
const CHANNEL_STATUS: u64 = 130;
const FIB_ENTRY: u64 = 128;
const NEXT_HOP_RECORD: u64 = 129;
const RIB_ENTRY: u64 = 128;
const ROUTE: u64 = 129;
const CS_INFO: u64 = 128;
const CAPACITY: u64 = 131;
const N_CS_ENTRIES: u64 = 135;
const N_HITS: u64 = 129;
const N_MISSES: u64 = 130;
const STRATEGY_CHOICE: u64 = 128;
const FACE_EVENT_NOTIFICATION: u64 = 192;
const FACE_EVENT_KIND: u64 = 193;
const NFD_VERSION: u64 = 128;
const START_TIMESTAMP: u64 = 129;
const CURRENT_TIMESTAMP: u64 = 130;
const N_NAME_TREE_ENTRIES: u64 = 131;
const N_FIB_ENTRIES: u64 = 132;
const N_PIT_ENTRIES: u64 = 133;
const N_MEASUREMENTS_ENTRIES: u64 = 134;

/// NFD's defaults for faces that have no congestion settings of their own.
const DEFAULT_BASE_MARKING_INTERVAL_NS: u64 = 100_000_000;
const DEFAULT_CONGESTION_THRESHOLD_BYTES: u64 = 65_536;

fn put_tlv(b: &mut BytesMut, typ: u64, value: &[u8]) {
    amicn_tlv::encode_tlv(b, typ as u32, value);
}

/// NonNegativeInteger in the shortest of 1, 2, 4 or 8 octets.
fn put_nni(b: &mut BytesMut, typ: u64, v: u64) {
    amicn_tlv::encode_nni_tlv(b, typ as u32, v);
}

fn put_name(b: &mut BytesMut, name: &Name) {
    b.put_slice(&name.to_wire());
}

fn scope_u64(s: FaceScope) -> u64 {
    match s {
        FaceScope::NonLocal => 0,
        FaceScope::Local => 1,
    }
}

fn link_type_u64(l: LinkType) -> u64 {
    match l {
        LinkType::PointToPoint => 0,
        LinkType::MultiAccess => 1,
        LinkType::AdHoc => 2,
    }
}

/// One FaceStatus (type 128) as `faces/list` carries it.
pub(crate) fn face_status(b: &mut BytesMut, face: FaceId, o: &FaceOptions, c: &FaceCounters) {
    let mut v = BytesMut::new();
    put_nni(&mut v, FACE_ID, face.0);
    put_tlv(&mut v, URI, o.remote_uri.as_bytes());
    put_tlv(&mut v, LOCAL_URI, o.local_uri.as_bytes());
    put_nni(&mut v, FACE_SCOPE, scope_u64(o.scope));
    put_nni(&mut v, FACE_PERSISTENCY, o.persistency.to_u64());
    put_nni(&mut v, LINK_TYPE, link_type_u64(o.link_type));
    put_nni(
        &mut v,
        BASE_CONGESTION_MARKING_INTERVAL,
        DEFAULT_BASE_MARKING_INTERVAL_NS,
    );
    put_nni(
        &mut v,
        DEFAULT_CONGESTION_THRESHOLD,
        DEFAULT_CONGESTION_THRESHOLD_BYTES,
    );
    if let Some(mtu) = o.mtu {
        put_nni(&mut v, MTU, mtu as u64);
    }
    put_nni(&mut v, N_IN_INTERESTS, c.n_in_interests);
    put_nni(&mut v, N_IN_DATA, c.n_in_data);
    put_nni(&mut v, N_IN_NACKS, c.n_in_nacks);
    put_nni(&mut v, N_OUT_INTERESTS, c.n_out_interests);
    put_nni(&mut v, N_OUT_DATA, c.n_out_data);
    put_nni(&mut v, N_OUT_NACKS, c.n_out_nacks);
    put_nni(&mut v, N_IN_BYTES, c.n_in_bytes);
    put_nni(&mut v, N_OUT_BYTES, c.n_out_bytes);
    put_nni(&mut v, FLAGS, face_flags(o));
    put_tlv(b, FACE_STATUS, &v);
}

/// Whether a face passes a `faces/query` filter: every field present in it must match.
fn filter_matches(f: &FaceQueryFilter, face: FaceId, o: &FaceOptions) -> bool {
    let scheme = o.remote_uri.split("://").next().unwrap_or("");
    f.face_id.is_none_or(|id| id == face.0)
        && f.uri_scheme.as_deref().is_none_or(|s| s == scheme)
        && f.uri.as_deref().is_none_or(|u| u == o.remote_uri)
        && f.local_uri.as_deref().is_none_or(|u| u == o.local_uri)
        && f.face_scope.is_none_or(|s| s == scope_u64(o.scope))
        && f.face_persistency
            .is_none_or(|p| p == o.persistency.to_u64())
        && f.link_type.is_none_or(|l| l == link_type_u64(o.link_type))
}

/// Reads one TLV from the front of `b`: (type, value, rest).
#[cfg(test)]
pub(crate) fn read_tlv(b: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let (typ, vs, ve) = amicn_tlv::read_tlv_header(b, 0).ok()?;
    Some((u64::from(typ), &b[vs..ve], &b[ve..]))
}

/// `faces/list` (no filter) or `faces/query`.
pub(crate) fn faces(tables: &dyn Tables, filter: Option<&FaceQueryFilter>) -> Bytes {
    let mut b = BytesMut::new();
    for (id, o, c) in tables.faces() {
        if filter.is_none_or(|f| filter_matches(f, id, &o)) {
            face_status(&mut b, id, &o, &c);
        }
    }
    b.freeze()
}

/// `faces/channels`: one ChannelStatus (type 130) with a LocalUri per listening socket.
pub(crate) fn channels(faces: &dyn FaceSystem) -> Bytes {
    let mut b = BytesMut::new();
    for uri in faces.channels() {
        let mut v = BytesMut::new();
        put_tlv(&mut v, LOCAL_URI, uri.as_bytes());
        put_tlv(&mut b, CHANNEL_STATUS, &v);
    }
    b.freeze()
}

/// `fib/list`: FibEntry (128) = Name + NextHopRecord (129) { FaceId, Cost }*.
pub(crate) fn fib(tables: &dyn Tables) -> Bytes {
    let mut b = BytesMut::new();
    for (name, hops) in tables.fib_entries() {
        let mut v = BytesMut::new();
        put_name(&mut v, &name);
        for (face, cost) in hops {
            let mut h = BytesMut::new();
            put_nni(&mut h, FACE_ID, face.0);
            put_nni(&mut h, COST, cost);
            put_tlv(&mut v, NEXT_HOP_RECORD, &h);
        }
        put_tlv(&mut b, FIB_ENTRY, &v);
    }
    b.freeze()
}

/// `rib/list`: RibEntry (128) = Name + Route (129) { FaceId, Origin, Cost, Flags,
/// [ExpirationPeriod remaining ms] }*.
pub(crate) fn rib(rib: &Rib, now: Time) -> Bytes {
    let mut b = BytesMut::new();
    for (name, routes) in rib.iter() {
        let mut v = BytesMut::new();
        put_name(&mut v, name);
        for r in routes {
            let mut h = BytesMut::new();
            put_nni(&mut h, FACE_ID, r.face);
            put_nni(&mut h, ORIGIN, r.origin);
            put_nni(&mut h, COST, r.cost);
            put_nni(&mut h, FLAGS, r.flags);
            if let Some(left) = r.remaining(now) {
                put_nni(
                    &mut h,
                    EXPIRATION_PERIOD,
                    u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                );
            }
            put_tlv(&mut v, ROUTE, &h);
        }
        put_tlv(&mut b, RIB_ENTRY, &v);
    }
    b.freeze()
}

/// `cs/info`: one CsInfo (128) { Capacity, Flags, NCsEntries, NHits, NMisses }.
pub(crate) fn cs(tables: &dyn Tables) -> Bytes {
    let st = tables.cs_state();
    let mut v = BytesMut::new();
    put_nni(&mut v, CAPACITY, st.capacity);
    put_nni(&mut v, FLAGS, super::cs_flags(&st));
    put_nni(&mut v, N_CS_ENTRIES, st.entries);
    put_nni(&mut v, N_HITS, st.hits);
    put_nni(&mut v, N_MISSES, st.misses);
    let mut b = BytesMut::new();
    put_tlv(&mut b, CS_INFO, &v);
    b.freeze()
}

/// `strategy-choice/list`: StrategyChoice (128) = Name + Strategy (107) { Name }.
pub(crate) fn strategies(tables: &dyn Tables) -> Bytes {
    let mut b = BytesMut::new();
    for (prefix, strategy) in tables.strategy_choices() {
        let mut v = BytesMut::new();
        put_name(&mut v, &prefix);
        let mut s = BytesMut::new();
        put_name(&mut s, &strategy);
        put_tlv(&mut v, STRATEGY, &s);
        put_tlv(&mut b, STRATEGY_CHOICE, &v);
    }
    b.freeze()
}

/// `status/general`: the ForwarderStatus fields, not wrapped (NFD appends the elements of
/// its Content block one by one).
pub(crate) fn general(tables: &dyn Tables, version: &str, start_ms: u64, now_ms: u64) -> Bytes {
    let c = tables.forwarder_counters();
    let mut b = BytesMut::new();
    put_tlv(&mut b, NFD_VERSION, version.as_bytes());
    put_nni(&mut b, START_TIMESTAMP, start_ms);
    put_nni(&mut b, CURRENT_TIMESTAMP, now_ms);
    put_nni(&mut b, N_NAME_TREE_ENTRIES, c.n_name_tree_entries);
    put_nni(&mut b, N_FIB_ENTRIES, c.n_fib_entries);
    put_nni(&mut b, N_PIT_ENTRIES, c.n_pit_entries);
    put_nni(&mut b, N_MEASUREMENTS_ENTRIES, c.n_measurements_entries);
    put_nni(&mut b, N_CS_ENTRIES, c.n_cs_entries);
    put_nni(&mut b, N_IN_INTERESTS, c.n_in_interests);
    put_nni(&mut b, N_IN_DATA, c.n_in_data);
    put_nni(&mut b, N_IN_NACKS, c.n_in_nacks);
    put_nni(&mut b, N_OUT_INTERESTS, c.n_out_interests);
    put_nni(&mut b, N_OUT_DATA, c.n_out_data);
    put_nni(&mut b, N_OUT_NACKS, c.n_out_nacks);
    put_nni(&mut b, N_SATISFIED_INTERESTS, c.n_satisfied_interests);
    put_nni(&mut b, N_UNSATISFIED_INTERESTS, c.n_unsatisfied_interests);
    b.freeze()
}

/// FaceEventNotification (192) { FaceEventKind, FaceId, Uri, LocalUri, FaceScope,
/// FacePersistency, LinkType, Flags }.
pub(crate) fn face_event(kind: FaceEventKind, face: FaceId, o: &FaceOptions) -> Bytes {
    let mut v = BytesMut::new();
    put_nni(&mut v, FACE_EVENT_KIND, kind as u64);
    put_nni(&mut v, FACE_ID, face.0);
    put_tlv(&mut v, URI, o.remote_uri.as_bytes());
    put_tlv(&mut v, LOCAL_URI, o.local_uri.as_bytes());
    put_nni(&mut v, FACE_SCOPE, scope_u64(o.scope));
    put_nni(&mut v, FACE_PERSISTENCY, o.persistency.to_u64());
    put_nni(&mut v, LINK_TYPE, link_type_u64(o.link_type));
    put_nni(&mut v, FLAGS, face_flags(o));
    let mut b = BytesMut::new();
    put_tlv(&mut b, FACE_EVENT_NOTIFICATION, &v);
    b.freeze()
}
