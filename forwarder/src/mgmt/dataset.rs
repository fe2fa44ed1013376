//! Status datasets and notification streams as NFD publishes them.
//!
//! A dataset request `/localhost/nfd/<module>/<dataset>` (CanBePrefix, MustBeFresh) is answered
//! with a fresh version: the encoded entries are cut into segments
//! `<request name>/v=<ms>/seg=<n>`, each a DigestSha256-signed Data with FreshnessPeriod 1 s and
//! FinalBlockId on the last one. Segment 0 goes back right away; the other segments wait in a
//! small cache where follow-up Interests (which already end in a version or segment component)
//! find them. NFD's `Dispatcher` does the same with its in-memory storage.

use std::collections::VecDeque;

use amicn_tlv::{Component, Data, Interest, Name};
use bytes::Bytes;

use crate::core::Time;

/// Payload bytes per dataset segment: with a short name and the 40-byte digest signature a
/// segment stays under ndn-cxx's 8800-byte packet limit.
pub const SEGMENT_PAYLOAD: usize = 8000;
/// FreshnessPeriod of every management reply and dataset segment, as NFD sets it.
pub const FRESHNESS_MS: u64 = 1000;

/// Builds the signed Data packets of one dataset version.
pub(crate) fn segment(prefix: &Name, version: u64, content: &Bytes) -> Vec<(Name, Bytes)> {
    let count = content.len().div_ceil(SEGMENT_PAYLOAD).max(1);
    let versioned = prefix.append(Component::version(version));
    (0..count)
        .map(|i| {
            let start = (i * SEGMENT_PAYLOAD).min(content.len());
            let end = ((i + 1) * SEGMENT_PAYLOAD).min(content.len());
            let name = versioned.append(Component::segment(i as u64));
            let mut data = Data::new(name.clone(), content.slice(start..end));
            data.meta_info.freshness_period_ms = Some(FRESHNESS_MS);
            if i + 1 == count {
                data.meta_info.final_block_id = Some(Component::segment(i as u64));
            }
            (name, sign(data))
        })
        .collect()
}

/// Encodes `data` with a DigestSha256 signature.
pub(crate) fn sign(mut data: Data) -> Bytes {
    data.sign_digest_sha256()
}

/// Whether the last component is a version or a segment number: such an Interest asks for a
/// dataset version that already exists.
pub(crate) fn names_existing_version(name: &Name) -> bool {
    name.len()
        .checked_sub(1)
        .and_then(|i| name.get(i))
        .is_some_and(|c| c.as_version().is_some() || c.as_segment().is_some())
}

struct Cached {
    name: Name,
    wire: Bytes,
    stored_at: Time,
}

/// Recently published management Data (dataset segments, notifications), bounded in bytes,
/// each kept for a limited time.
pub(crate) struct ReplyCache {
    items: VecDeque<Cached>,
    bytes: usize,
    max_bytes: usize,
    lifetime_ms: u64,
}

impl ReplyCache {
    /// A cache holding at most `max_bytes` of packets, each for `lifetime_ms`.
    pub(crate) fn new(max_bytes: usize, lifetime_ms: u64) -> Self {
        ReplyCache {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            lifetime_ms,
        }
    }

    pub(crate) fn insert(&mut self, now: Time, name: Name, wire: Bytes) {
        self.insert_all(now, vec![(name, wire)]);
    }

    /// Stores packets published together (all segments of one dataset version). Older packets
    /// make room first; the batch itself is never cut, so a version larger than the bound
    /// stays complete until the next publication.
    pub(crate) fn insert_all(&mut self, now: Time, batch: Vec<(Name, Bytes)>) {
        self.evict(now);
        let incoming: usize = batch.iter().map(|(_, w)| w.len()).sum();
        while self.bytes + incoming > self.max_bytes {
            match self.items.pop_front() {
                Some(old) => self.bytes -= old.wire.len(),
                None => break,
            }
        }
        for (name, wire) in batch {
            self.bytes += wire.len();
            self.items.push_back(Cached {
                name,
                wire,
                stored_at: now,
            });
        }
    }

    /// The newest cached packet the Interest matches (exact name, or any name under it with
    /// CanBePrefix; with MustBeFresh and `honor_fresh` only packets younger than their
    /// FreshnessPeriod). Segment fetchers that already know the version may send MustBeFresh
    /// on every segment; those are served while the version is cached, so a slow reader still
    /// gets a consistent dataset.
    pub(crate) fn find(
        &mut self,
        now: Time,
        interest: &Interest,
        honor_fresh: bool,
    ) -> Option<Bytes> {
        self.evict(now);
        self.items
            .iter()
            .rev()
            .filter(|c| {
                !(interest.must_be_fresh && honor_fresh)
                    || now.saturating_since(c.stored_at).as_millis() < u128::from(FRESHNESS_MS)
            })
            .find(|c| {
                if interest.can_be_prefix {
                    interest.name.is_prefix_of(&c.name)
                } else {
                    interest.name == c.name
                }
            })
            .map(|c| c.wire.clone())
    }

    fn evict(&mut self, now: Time) {
        while let Some(front) = self.items.front() {
            if now.saturating_since(front.stored_at).as_millis() >= u128::from(self.lifetime_ms) {
                self.bytes -= front.wire.len();
                self.items.pop_front();
            } else {
                break;
            }
        }
    }
}
