//! Encodings of NFD's status datasets and face event notifications, field for field in the
//! order ndn-cxx writes and expects them (`ndn-cxx/mgmt/nfd/*.cpp`), so that `nfdc`, pynfdc
//! and NDNts decode them. The records and their field order are [`amicn_tlv::mgmt`]'s; this
//! module only fills them from the forwarder's tables.

use amicn_tlv::mgmt::{
    ChannelStatus, CsInfo, FaceEventNotification, FaceQueryFilter, FaceStatus, FibEntry,
    ForwarderStatus, NextHopRecord, RibEntry, Route, StrategyChoice,
};
use bytes::{Bytes, BytesMut};

use super::{FaceEventKind, FaceSystem, Rib, Tables, face_flags};
use crate::core::{FaceCounters, FaceId, FaceOptions, FaceScope, LinkType, Time};

/// NFD's defaults for faces that have no congestion settings of their own.
const DEFAULT_BASE_MARKING_INTERVAL_NS: u64 = 100_000_000;
const DEFAULT_CONGESTION_THRESHOLD_BYTES: u64 = 65_536;

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
    FaceStatus {
        face_id: Some(face.0),
        uri: Some(o.remote_uri.clone()),
        local_uri: Some(o.local_uri.clone()),
        expiration_period: None,
        face_scope: Some(scope_u64(o.scope)),
        face_persistency: Some(o.persistency.to_u64()),
        link_type: Some(link_type_u64(o.link_type)),
        base_congestion_marking_interval: Some(DEFAULT_BASE_MARKING_INTERVAL_NS),
        default_congestion_threshold: Some(DEFAULT_CONGESTION_THRESHOLD_BYTES),
        mtu: o.mtu.map(|m| m as u64),
        n_in_interests: Some(c.n_in_interests),
        n_in_data: Some(c.n_in_data),
        n_in_nacks: Some(c.n_in_nacks),
        n_out_interests: Some(c.n_out_interests),
        n_out_data: Some(c.n_out_data),
        n_out_nacks: Some(c.n_out_nacks),
        n_in_bytes: Some(c.n_in_bytes),
        n_out_bytes: Some(c.n_out_bytes),
        flags: Some(face_flags(o)),
    }
    .encode_to(b);
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
        ChannelStatus {
            local_uri: Some(uri),
        }
        .encode_to(&mut b);
    }
    b.freeze()
}

/// `fib/list`: FibEntry (128) = Name + NextHopRecord (129) { FaceId, Cost }*.
pub(crate) fn fib(tables: &dyn Tables) -> Bytes {
    let mut b = BytesMut::new();
    for (name, hops) in tables.fib_entries() {
        FibEntry {
            name,
            next_hops: hops
                .into_iter()
                .map(|(face, cost)| NextHopRecord {
                    face_id: Some(face.0),
                    cost: Some(cost),
                })
                .collect(),
        }
        .encode_to(&mut b);
    }
    b.freeze()
}

/// `rib/list`: RibEntry (128) = Name + Route (129) { FaceId, Origin, Cost, Flags,
/// [ExpirationPeriod remaining ms] }*.
pub(crate) fn rib(rib: &Rib, now: Time) -> Bytes {
    let mut b = BytesMut::new();
    for (name, routes) in rib.iter() {
        RibEntry {
            name: name.clone(),
            routes: routes
                .iter()
                .map(|r| Route {
                    face_id: Some(r.face),
                    origin: Some(r.origin),
                    cost: Some(r.cost),
                    flags: Some(r.flags),
                    expiration_period: r
                        .remaining(now)
                        .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
                })
                .collect(),
        }
        .encode_to(&mut b);
    }
    b.freeze()
}

/// `cs/info`: one CsInfo (128) { Capacity, Flags, NCsEntries, NHits, NMisses }.
pub(crate) fn cs(tables: &dyn Tables) -> Bytes {
    let st = tables.cs_state();
    CsInfo {
        capacity: Some(st.capacity),
        flags: Some(super::cs_flags(&st)),
        n_cs_entries: Some(st.entries),
        n_hits: Some(st.hits),
        n_misses: Some(st.misses),
    }
    .encode()
}

/// `strategy-choice/list`: StrategyChoice (128) = Name + Strategy (107) { Name }.
pub(crate) fn strategies(tables: &dyn Tables) -> Bytes {
    let mut b = BytesMut::new();
    for (prefix, strategy) in tables.strategy_choices() {
        StrategyChoice {
            name: Some(prefix),
            strategy: Some(strategy),
        }
        .encode_to(&mut b);
    }
    b.freeze()
}

/// `status/general`: the ForwarderStatus fields, not wrapped (NFD appends the elements of
/// its Content block one by one).
pub(crate) fn general(tables: &dyn Tables, version: &str, start_ms: u64, now_ms: u64) -> Bytes {
    let c = tables.forwarder_counters();
    let mut b = BytesMut::new();
    ForwarderStatus {
        nfd_version: Some(version.to_owned()),
        start_timestamp: Some(start_ms),
        current_timestamp: Some(now_ms),
        n_name_tree_entries: Some(c.n_name_tree_entries),
        n_fib_entries: Some(c.n_fib_entries),
        n_pit_entries: Some(c.n_pit_entries),
        n_measurements_entries: Some(c.n_measurements_entries),
        n_cs_entries: Some(c.n_cs_entries),
        n_in_interests: Some(c.n_in_interests),
        n_in_data: Some(c.n_in_data),
        n_in_nacks: Some(c.n_in_nacks),
        n_out_interests: Some(c.n_out_interests),
        n_out_data: Some(c.n_out_data),
        n_out_nacks: Some(c.n_out_nacks),
        n_satisfied_interests: Some(c.n_satisfied_interests),
        n_unsatisfied_interests: Some(c.n_unsatisfied_interests),
    }
    .encode_value(&mut b);
    b.freeze()
}

/// FaceEventNotification (192) { FaceEventKind, FaceId, Uri, LocalUri, FaceScope,
/// FacePersistency, LinkType, Flags }.
pub(crate) fn face_event(kind: FaceEventKind, face: FaceId, o: &FaceOptions) -> Bytes {
    FaceEventNotification {
        kind: Some(kind as u64),
        face_id: Some(face.0),
        uri: Some(o.remote_uri.clone()),
        local_uri: Some(o.local_uri.clone()),
        face_scope: Some(scope_u64(o.scope)),
        face_persistency: Some(o.persistency.to_u64()),
        link_type: Some(link_type_u64(o.link_type)),
        flags: Some(face_flags(o)),
    }
    .encode()
}
