//! Replay checking for signed Interests (NDN packet spec, "Signed Interest" rules).
//!
//! Two independent mechanisms, each optional by configuration:
//! - **SignatureTime**: accepted only within `now ± grace` (60 s by default, the spec's
//!   recommendation) and only if strictly greater than the last time accepted for the same key.
//!   A key never seen before starts at `now − grace`, so forgetting a key whose last time is older
//!   than that loses no protection; this is how the per-key table stays bounded.
//! - **SignatureNonce**: remembered per key in a bounded first-in-first-out memory; a repeat within
//!   the memory is a replay. (A nonce is only ever inserted, never looked up successfully twice,
//!   so least-recently-used and first-in-first-out eviction coincide.)
//! - **SignatureSeqNum**, when a signer sends one: must be strictly greater than the last accepted
//!   one for the same key.
//!
//! The checker is sans-IO: the caller passes `now_ms` (milliseconds since the Unix epoch), and the
//! state can be exported to bytes and restored after a restart, so a producer that crashes does
//! not reopen its replay window.

use std::collections::{HashMap, HashSet, VecDeque};

use amicn_tlv::{Interest, KeyLocator, Name};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Replay checker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayConfig {
    /// Accepted clock difference between signer and verifier, in milliseconds.
    pub grace_ms: u64,
    /// Reject signed Interests without SignatureTime.
    pub require_time: bool,
    /// Reject signed Interests without SignatureNonce.
    pub require_nonce: bool,
    /// Nonces remembered in total (oldest forgotten first).
    pub nonce_capacity: usize,
    /// Per-key time records kept before stale ones are pruned.
    pub key_capacity: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            grace_ms: 60_000,
            require_time: true,
            require_nonce: true,
            nonce_capacity: 65_536,
            key_capacity: 1 << 20,
        }
    }
}

/// Counters of what the checker rejected and forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStats {
    /// Interests accepted.
    pub accepted: u64,
    /// Rejected for a SignatureTime outside the window.
    pub outside_window: u64,
    /// Rejected for a SignatureTime not after the last one.
    pub stale_time: u64,
    /// Rejected for a SignatureSeqNum not after the last one.
    #[serde(default)]
    pub stale_seq_num: u64,
    /// Rejected for a repeated nonce.
    pub repeated_nonce: u64,
    /// Rejected for a missing field.
    pub missing_field: u64,
    /// Nonces forgotten because the memory was full.
    pub nonces_evicted: u64,
}

type NonceKey = (Name, Bytes);

/// Per-key SignatureTime and nonce memory.
#[derive(Debug, Clone)]
pub struct ReplayChecker {
    config: ReplayConfig,
    last_time: HashMap<Name, u64>,
    last_seq: HashMap<Name, u64>,
    nonce_set: HashSet<NonceKey>,
    /// Nonces of Interests with a SignatureTime in the order they were remembered, each with
    /// the last time (ms) a replay of its Interest could still pass the SignatureTime window.
    nonce_order: VecDeque<(NonceKey, u64)>,
    /// Nonces of Interests without a time, oldest first: kept until the capacity pushes them
    /// out. They have a queue of their own so that they never hold up the forgetting of the
    /// timed ones behind them.
    untimed: VecDeque<NonceKey>,
    stats: ReplayStats,
}

/// Serializable snapshot of a [`ReplayChecker`] (key names as URIs, nonces as hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecords {
    /// Settings in force when the snapshot was taken.
    pub config: ReplayConfig,
    /// Last accepted SignatureTime per key name.
    pub last_time: Vec<(String, u64)>,
    /// Remembered nonces per key name: those of Interests without a time, then the timed ones,
    /// each oldest first.
    pub nonces: Vec<(String, String)>,
    /// Last accepted SignatureSeqNum per key name.
    #[serde(default)]
    pub last_seq: Vec<(String, u64)>,
    /// For each of `nonces`, the last time (ms) a replay of its Interest could pass the
    /// SignatureTime window (`u64::MAX` for an Interest without a time); empty in records
    /// written by older versions.
    #[serde(default)]
    pub nonce_until: Vec<u64>,
}

impl ReplayChecker {
    /// An empty checker.
    pub fn new(config: ReplayConfig) -> Self {
        Self {
            config,
            last_time: HashMap::new(),
            last_seq: HashMap::new(),
            nonce_set: HashSet::new(),
            nonce_order: VecDeque::new(),
            untimed: VecDeque::new(),
            stats: ReplayStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Number of keys with a time record.
    pub fn tracked_keys(&self) -> usize {
        self.last_time.len()
    }

    /// Number of remembered nonces.
    pub fn remembered_nonces(&self) -> usize {
        self.nonce_order.len() + self.untimed.len()
    }

    /// Checks and records one signed Interest's SignatureTime and SignatureNonce for `key`.
    /// Nothing is recorded when the Interest is rejected.
    pub fn check(
        &mut self,
        key: &Name,
        time_ms: Option<u64>,
        nonce: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<()> {
        self.check_fields(key, time_ms, nonce, None, now_ms)
    }

    /// Like [`ReplayChecker::check`], also enforcing an increasing SignatureSeqNum when present.
    pub fn check_fields(
        &mut self,
        key: &Name,
        time_ms: Option<u64>,
        nonce: Option<&[u8]>,
        seq_num: Option<u64>,
        now_ms: u64,
    ) -> Result<()> {
        let key_s = || key.to_string();
        match time_ms {
            None if self.config.require_time => {
                self.stats.missing_field += 1;
                return Err(Error::ReplayFieldMissing {
                    name: key_s(),
                    field: "SignatureTime",
                });
            }
            None => {}
            Some(t) => {
                if t.abs_diff(now_ms) > self.config.grace_ms {
                    self.stats.outside_window += 1;
                    return Err(Error::ReplayOutsideWindow {
                        key: key_s(),
                        time_ms: t,
                        now_ms,
                    });
                }
                if let Some(&last) = self.last_time.get(key)
                    && t <= last
                {
                    self.stats.stale_time += 1;
                    return Err(Error::ReplayStaleTime {
                        key: key_s(),
                        time_ms: t,
                        last_ms: last,
                    });
                }
            }
        }
        if let Some(seq) = seq_num
            && let Some(&last) = self.last_seq.get(key)
            && seq <= last
        {
            self.stats.stale_seq_num += 1;
            return Err(Error::ReplayStaleSeqNum {
                key: key_s(),
                seq,
                last,
            });
        }
        let nonce_key = match nonce {
            None if self.config.require_nonce => {
                self.stats.missing_field += 1;
                return Err(Error::ReplayFieldMissing {
                    name: key_s(),
                    field: "SignatureNonce",
                });
            }
            None => None,
            Some(n) => {
                let nk = (key.clone(), Bytes::copy_from_slice(n));
                if self.nonce_set.contains(&nk) {
                    self.stats.repeated_nonce += 1;
                    return Err(Error::ReplayNonce { key: key_s() });
                }
                Some(nk)
            }
        };

        if let Some(t) = time_ms {
            if !self.last_time.contains_key(key) && self.last_time.len() >= self.config.key_capacity
            {
                self.prune_times(now_ms);
            }
            self.last_time.insert(key.clone(), t);
        }
        if let Some(seq) = seq_num {
            self.last_seq.insert(key.clone(), seq);
        }
        if let Some(nk) = nonce_key {
            let until = time_ms.map_or(u64::MAX, |t| t.saturating_add(self.config.grace_ms));
            self.remember_nonce(nk, until, now_ms);
        }
        self.stats.accepted += 1;
        Ok(())
    }

    /// Checks a signed Interest, taking the key from its KeyLocator Name and the fields from its
    /// InterestSignatureInfo. The signature itself must be verified separately (first).
    pub fn check_interest(&mut self, interest: &Interest, now_ms: u64) -> Result<()> {
        let info = interest
            .signature_info
            .as_ref()
            .ok_or_else(|| Error::NotSigned {
                name: interest.name.to_string(),
            })?;
        let key = match &info.key_locator {
            Some(KeyLocator::Name(n)) => n.clone(),
            // DigestSha256 Interests have no signer; they share one replay record.
            _ => Name::default(),
        };
        self.check_fields(
            &key,
            info.time_ms,
            info.nonce.as_deref(),
            info.seq_num,
            now_ms,
        )
    }

    /// Forgets time records that no longer add protection (older than `now − grace`).
    pub fn prune_times(&mut self, now_ms: u64) {
        let floor = now_ms.saturating_sub(self.config.grace_ms);
        self.last_time.retain(|_, t| *t >= floor);
    }

    /// Remembers `nk` until `until` (ms; `u64::MAX` for an Interest without a time). Nonces
    /// whose Interests the SignatureTime window already refuses are forgotten first, from the
    /// oldest on, so steady traffic keeps about a window's worth of nonces instead of filling
    /// the whole capacity. At capacity the oldest timed nonce goes first (its key's time
    /// record still refuses a replay of its Interest), then the oldest untimed one.
    fn remember_nonce(&mut self, nk: NonceKey, until: u64, now_ms: u64) {
        while self.nonce_order.front().is_some_and(|(_, u)| *u < now_ms) {
            if let Some((old, _)) = self.nonce_order.pop_front() {
                self.nonce_set.remove(&old);
            }
        }
        while self.remembered_nonces() >= self.config.nonce_capacity.max(1) {
            let old = match self.nonce_order.pop_front() {
                Some((old, _)) => old,
                None => match self.untimed.pop_front() {
                    Some(old) => old,
                    None => break,
                },
            };
            self.nonce_set.remove(&old);
            self.stats.nonces_evicted += 1;
        }
        self.nonce_set.insert(nk.clone());
        if until == u64::MAX {
            self.untimed.push_back(nk);
        } else {
            self.nonce_order.push_back((nk, until));
        }
    }

    /// Exports the state for persistence.
    pub fn records(&self) -> ReplayRecords {
        let mut last_time: Vec<(String, u64)> = self
            .last_time
            .iter()
            .map(|(k, t)| (k.to_string(), *t))
            .collect();
        last_time.sort();
        let mut last_seq: Vec<(String, u64)> = self
            .last_seq
            .iter()
            .map(|(k, t)| (k.to_string(), *t))
            .collect();
        last_seq.sort();
        ReplayRecords {
            config: self.config,
            last_time,
            nonces: self
                .untimed
                .iter()
                .chain(self.nonce_order.iter().map(|(nk, _)| nk))
                .map(|(k, n)| (k.to_string(), hex::encode(n)))
                .collect(),
            last_seq,
            nonce_until: self
                .untimed
                .iter()
                .map(|_| u64::MAX)
                .chain(self.nonce_order.iter().map(|(_, u)| *u))
                .collect(),
        }
    }

    /// Rebuilds a checker from exported records.
    pub fn from_records(records: &ReplayRecords) -> Result<Self> {
        let mut c = Self::new(records.config);
        for (k, t) in &records.last_time {
            c.last_time.insert(parse_key(k)?, *t);
        }
        for (k, s) in &records.last_seq {
            c.last_seq.insert(parse_key(k)?, *s);
        }
        // Records written before deadlines were saved have none: those nonces are kept until
        // the capacity pushes them out.
        let untils = (records.nonce_until.len() == records.nonces.len())
            .then_some(records.nonce_until.as_slice());
        for (i, (k, n)) in records.nonces.iter().enumerate() {
            let nonce = hex::decode(n)
                .map_err(|_| Error::ReplayRecords(format!("nonce {n:?} is not hex")))?;
            let until = untils.and_then(|u| u.get(i).copied()).unwrap_or(u64::MAX);
            c.remember_nonce((parse_key(k)?, Bytes::from(nonce)), until, 0);
        }
        Ok(c)
    }

    /// Serializes the state as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(&self.records()).unwrap_or_default()
    }

    /// Restores the state from [`ReplayChecker::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let records: ReplayRecords =
            serde_json::from_slice(bytes).map_err(|e| Error::ReplayRecords(e.to_string()))?;
        Self::from_records(&records)
    }
}

fn parse_key(uri: &str) -> Result<Name> {
    Name::from_uri(uri).map_err(|e| Error::ReplayRecords(format!("key {uri:?}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    const NOW: u64 = 1_780_000_000_000;

    #[test]
    fn time_must_increase_and_stay_in_window() {
        let mut c = ReplayChecker::new(ReplayConfig::default());
        let k = key("/u/ami/meter/7/KEY/k1");
        c.check(&k, Some(NOW), Some(b"n1"), NOW).unwrap();
        assert!(matches!(
            c.check(&k, Some(NOW), Some(b"n2"), NOW),
            Err(Error::ReplayStaleTime { .. })
        ));
        assert!(matches!(
            c.check(&k, Some(NOW - 5), Some(b"n3"), NOW),
            Err(Error::ReplayStaleTime { .. })
        ));
        c.check(&k, Some(NOW + 1), Some(b"n4"), NOW).unwrap();
        assert!(matches!(
            c.check(&k, Some(NOW + 60_001), Some(b"n5"), NOW),
            Err(Error::ReplayOutsideWindow { .. })
        ));
        assert!(matches!(
            c.check(&key("/other/KEY/x"), Some(NOW - 60_001), Some(b"n6"), NOW),
            Err(Error::ReplayOutsideWindow { .. })
        ));
        // Another key has its own record.
        c.check(&key("/other/KEY/x"), Some(NOW - 1000), Some(b"n1"), NOW)
            .unwrap();
        assert_eq!(c.stats().accepted, 3);
        assert_eq!(c.stats().stale_time, 2);
        assert_eq!(c.stats().outside_window, 2);
    }

    #[test]
    fn repeated_nonce_rejected_and_not_recorded_on_failure() {
        let cfg = ReplayConfig {
            require_time: false,
            ..ReplayConfig::default()
        };
        let mut c = ReplayChecker::new(cfg);
        let k = key("/a/KEY/1");
        c.check(&k, None, Some(b"abc"), NOW).unwrap();
        assert!(matches!(
            c.check(&k, None, Some(b"abc"), NOW),
            Err(Error::ReplayNonce { .. })
        ));
        assert!(matches!(
            c.check(&k, None, None, NOW),
            Err(Error::ReplayFieldMissing {
                field: "SignatureNonce",
                ..
            })
        ));
        // A rejected time does not burn the nonce.
        let mut strict = ReplayChecker::new(ReplayConfig::default());
        assert!(
            strict
                .check(&k, Some(NOW + 100_000), Some(b"x"), NOW)
                .is_err()
        );
        strict.check(&k, Some(NOW), Some(b"x"), NOW).unwrap();
    }

    #[test]
    fn nonce_memory_is_bounded_fifo() {
        let cfg = ReplayConfig {
            require_time: false,
            nonce_capacity: 3,
            ..ReplayConfig::default()
        };
        let mut c = ReplayChecker::new(cfg);
        let k = key("/a/KEY/1");
        for n in [b"1", b"2", b"3", b"4"] {
            c.check(&k, None, Some(n), NOW).unwrap();
        }
        assert_eq!(c.remembered_nonces(), 3);
        assert_eq!(c.stats().nonces_evicted, 1);
        // "1" was forgotten, "4" is still remembered.
        c.check(&k, None, Some(b"1"), NOW).unwrap();
        assert!(c.check(&k, None, Some(b"4"), NOW).is_err());
    }

    #[test]
    fn nonces_are_forgotten_once_the_time_window_refuses_their_interests() {
        let mut c = ReplayChecker::new(ReplayConfig::default());
        let grace = c.config().grace_ms;
        for i in 0..100u64 {
            let k = key(&format!("/u/ami/meter/{i}/KEY/k"));
            c.check(&k, Some(NOW + i), Some(b"n"), NOW + i).unwrap();
        }
        assert_eq!(c.remembered_nonces(), 100);
        // A window later, each new Interest finds the old nonces useless and drops them...
        let later = NOW + 99 + grace + 1;
        let k = key("/u/ami/meter/x/KEY/k");
        c.check(&k, Some(later), Some(b"m"), later).unwrap();
        assert_eq!(c.remembered_nonces(), 1);
        assert_eq!(c.stats().nonces_evicted, 0, "forgetting is not eviction");
        // ...while a replay of an old Interest is still refused, by its time.
        let old = key("/u/ami/meter/5/KEY/k");
        assert!(matches!(
            c.check(&old, Some(NOW + 5), Some(b"n"), later),
            Err(Error::ReplayOutsideWindow { .. })
        ));
        // Nonces of Interests without a time are only ever pushed out by the capacity.
        let cfg = ReplayConfig {
            require_time: false,
            ..ReplayConfig::default()
        };
        let mut c = ReplayChecker::new(cfg);
        let k = key("/a/KEY/1");
        c.check(&k, None, Some(b"1"), NOW).unwrap();
        c.check(&k, None, Some(b"2"), NOW + 10 * grace).unwrap();
        assert!(c.check(&k, None, Some(b"1"), NOW + 20 * grace).is_err());
    }

    #[test]
    fn restored_and_untimed_nonces_do_not_hold_up_forgetting() {
        let cfg = ReplayConfig {
            require_time: false,
            ..ReplayConfig::default()
        };
        let grace = cfg.grace_ms;
        let mut c = ReplayChecker::new(cfg);
        // One Interest without a time first, then timed ones behind it.
        c.check(&key("/a/KEY/1"), None, Some(b"untimed"), NOW)
            .unwrap();
        for i in 0..50u64 {
            let k = key(&format!("/u/ami/meter/{i}/KEY/k"));
            c.check(&k, Some(NOW + i), Some(b"n"), NOW + i).unwrap();
        }
        // Saved and restored (a daemon restart), the timed nonces keep their deadlines.
        let mut c = ReplayChecker::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(c.remembered_nonces(), 51);
        let later = NOW + 49 + grace + 1;
        c.check(&key("/u/ami/meter/x/KEY/k"), Some(later), Some(b"m"), later)
            .unwrap();
        assert_eq!(c.remembered_nonces(), 2, "the untimed one and the new one");
        // The untimed nonce is still remembered, so its Interest is still refused.
        assert!(
            c.check(&key("/a/KEY/1"), None, Some(b"untimed"), later)
                .is_err()
        );
        // Records from before deadlines were saved still load; their nonces stay.
        let mut old = c.records();
        old.nonce_until.clear();
        let c = ReplayChecker::from_records(&old).unwrap();
        assert_eq!(c.remembered_nonces(), 2);
    }

    #[test]
    fn stale_time_records_are_pruned_at_capacity() {
        let cfg = ReplayConfig {
            key_capacity: 2,
            ..ReplayConfig::default()
        };
        let mut c = ReplayChecker::new(cfg);
        c.check(&key("/a/KEY/1"), Some(NOW), Some(b"1"), NOW)
            .unwrap();
        c.check(&key("/b/KEY/1"), Some(NOW), Some(b"1"), NOW)
            .unwrap();
        let later = NOW + 120_000;
        c.check(&key("/c/KEY/1"), Some(later), Some(b"1"), later)
            .unwrap();
        assert_eq!(c.tracked_keys(), 1);
    }

    #[test]
    fn records_survive_a_round_trip() {
        let mut c = ReplayChecker::new(ReplayConfig::default());
        let k = key("/u/ami/meter/9/KEY/%01%02");
        c.check(&k, Some(NOW), Some(&[0, 255, 7]), NOW).unwrap();
        let bytes = c.to_bytes();
        let mut restored = ReplayChecker::from_bytes(&bytes).unwrap();
        assert_eq!(restored.records(), c.records());
        assert!(matches!(
            restored.check(&k, Some(NOW), Some(b"new"), NOW),
            Err(Error::ReplayStaleTime { .. })
        ));
        assert!(matches!(
            restored.check(&k, Some(NOW + 1), Some(&[0, 255, 7]), NOW),
            Err(Error::ReplayNonce { .. })
        ));
        assert!(ReplayChecker::from_bytes(b"{not json").is_err());
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let cfg = ReplayConfig {
            require_time: false,
            require_nonce: false,
            ..ReplayConfig::default()
        };
        let mut c = ReplayChecker::new(cfg);
        let k = key("/a/KEY/1");
        c.check_fields(&k, None, None, Some(5), NOW).unwrap();
        assert!(matches!(
            c.check_fields(&k, None, None, Some(5), NOW),
            Err(Error::ReplayStaleSeqNum {
                seq: 5,
                last: 5,
                ..
            })
        ));
        c.check_fields(&k, None, None, Some(6), NOW).unwrap();
        let restored = ReplayChecker::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(
            restored.records().last_seq,
            vec![("/a/KEY/1".to_string(), 6)]
        );
        // Records written before sequence numbers were tracked still load.
        let old = br#"{"config":{"grace_ms":60000,"require_time":true,"require_nonce":true,"nonce_capacity":8,"key_capacity":8},"last_time":[],"nonces":[]}"#;
        assert!(ReplayChecker::from_bytes(old).is_ok());
    }
}
