//! Inserts into a serving repository by signed command Interest.
//!
//! A publisher sends `<command prefix>/insert/<ParametersSha256Digest>` whose
//! ApplicationParameters hold one or more complete Data packets (concatenated TLVs, so at most
//! about 8 KB per command; bulk loads go straight to the database with `amicn repo insert
//! --db`). The Interest carries a v0.3 Ed25519 signature with SignatureTime and
//! SignatureNonce. The repository accepts it only when
//!
//! 1. the KeyLocator names a publisher key it was configured with (`--publisher CERT`), whose
//!    certificate is within its validity period,
//! 2. the signature verifies, and the SignatureTime/SignatureNonce pass the replay checker (a
//!    replayed command is refused, not stored twice),
//! 3. every Data decodes and lies under a prefix that publisher may write,
//!
//! and then stores all of them in one transaction. The answer, a Data under the command's name
//! carrying an NFD ControlResponse, is sent only after the commit: 200 means every Data in the
//! command is durable. Refusals are 400 (malformed), 401 (unsigned, unknown key, bad signature,
//! expired certificate), 403 (a name the publisher may not write) and 409 (replay), each
//! counted in [`InsertCounters`].
//!
//! The command prefix defaults to `/localhost/amicn-repo`: `/localhost` Interests never leave
//! the host, so only local publishers reach it; a prefix outside `/localhost` lets remote
//! publishers in, still only with a configured key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use amicn_kms::cert::Certificate;
use amicn_kms::identity::KeyPair;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_kms::signature::{VerifyKey, verify_interest_key};
use amicn_tlv::mgmt::ControlResponse;
use amicn_tlv::{Component, Data, Interest, KeyLocator, Name, split_first_tlv};
use bytes::{Bytes, BytesMut};

use crate::error::Result;
use crate::repo::RepoStore;

/// The verb component of an insert command.
pub const INSERT_VERB: &[u8] = b"insert";

/// Largest ApplicationParameters a command carries (the Interest stays below NDN's 8,800-byte
/// packet limit with name and signature).
pub const MAX_COMMAND_PAYLOAD: usize = 8_000;

/// What the insert handler accepted and refused.
#[derive(Debug, Default)]
pub struct InsertCounters {
    /// Commands stored.
    pub accepted: AtomicU64,
    /// Data stored by commands.
    pub stored: AtomicU64,
    /// Refused as malformed (no parameters, not Data, bad TLV).
    pub malformed: AtomicU64,
    /// Refused: unsigned, unknown key, expired certificate or bad signature.
    pub unauthenticated: AtomicU64,
    /// Refused: a Data name outside the publisher's prefixes.
    pub forbidden: AtomicU64,
    /// Refused by the replay checker.
    pub replayed: AtomicU64,
    /// Failed to commit.
    pub failed: AtomicU64,
}

struct Publisher {
    key: VerifyKey,
    cert: Certificate,
    prefixes: Vec<Name>,
}

/// Who may insert, and where (see the module documentation).
pub struct InsertPolicy {
    publishers: HashMap<Name, Publisher>,
    replay: Mutex<ReplayChecker>,
    /// Counters of the handler.
    pub counters: InsertCounters,
}

impl std::fmt::Debug for InsertPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertPolicy")
            .field("publishers", &self.publishers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for InsertPolicy {
    fn default() -> Self {
        InsertPolicy {
            publishers: HashMap::new(),
            replay: Mutex::new(ReplayChecker::new(ReplayConfig::default())),
            counters: InsertCounters::default(),
        }
    }
}

impl InsertPolicy {
    /// Lets the key certified by `cert` insert Data under `prefixes`.
    pub fn allow(&mut self, cert: Certificate, prefixes: Vec<Name>) {
        self.publishers.insert(
            cert.key_name(),
            Publisher {
                key: cert.key().clone(),
                cert,
                prefixes,
            },
        );
    }

    /// Whether any publisher is configured.
    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }

    /// Checks one command (clock `now_ms`) and, when it passes, stores its Data in `store`.
    pub fn handle(&self, store: &RepoStore, cmd: &Interest, now_ms: u64) -> ControlResponse {
        match self.check(cmd, now_ms) {
            Ok(packets) => match store.insert(&packets) {
                Ok(n) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    self.counters.stored.fetch_add(n as u64, Ordering::Relaxed);
                    ControlResponse::new(200, format!("stored {n} Data"))
                }
                Err(e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("insert command {}: {e}", cmd.name);
                    ControlResponse::new(500, "the repository could not store the Data")
                }
            },
            Err((code, why)) => {
                let c = match code {
                    400 => &self.counters.malformed,
                    401 => &self.counters.unauthenticated,
                    403 => &self.counters.forbidden,
                    _ => &self.counters.replayed,
                };
                c.fetch_add(1, Ordering::Relaxed);
                tracing::info!("insert command {} refused ({code}): {why}", cmd.name);
                ControlResponse::new(code, why)
            }
        }
    }

    fn check(&self, cmd: &Interest, now_ms: u64) -> std::result::Result<Vec<Bytes>, (u64, String)> {
        let info = cmd
            .signature_info
            .as_ref()
            .ok_or((401, "the command is not signed".to_string()))?;
        let key_name = match &info.key_locator {
            Some(KeyLocator::Name(n)) => n.clone(),
            _ => return Err((401, "the command's KeyLocator names no key".into())),
        };
        let p = self.publishers.get(&key_name).ok_or_else(|| {
            (
                401,
                format!("{key_name} is not a publisher of this repository"),
            )
        })?;
        p.cert
            .check_validity(now_ms / 1_000)
            .map_err(|e| (401, e.to_string()))?;
        verify_interest_key(cmd, &p.key).map_err(|e| (401, e.to_string()))?;
        let params = cmd.app_parameters.clone().ok_or((
            400,
            "no Data in the command's ApplicationParameters".to_string(),
        ))?;
        let packets = split(params).map_err(|e| (400, e))?;
        for w in &packets {
            let d = Data::decode(w.clone()).map_err(|e| (400, format!("not a Data: {e}")))?;
            if !p.prefixes.iter().any(|pre| pre.is_prefix_of(&d.name)) {
                return Err((403, format!("{key_name} may not write {}", d.name)));
            }
        }
        // Last, so that a refused command does not advance the signer's replay state.
        self.replay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check_fields(
                &key_name,
                info.time_ms,
                info.nonce.as_deref(),
                info.seq_num,
                now_ms,
            )
            .map_err(|e| (409, e.to_string()))?;
        Ok(packets)
    }
}

fn split(mut b: Bytes) -> std::result::Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        match split_first_tlv(&b) {
            Ok(Some(n)) => out.push(b.split_to(n)),
            _ => return Err(format!("truncated TLV after {} Data", out.len())),
        }
    }
    if out.is_empty() {
        return Err("no Data in the command's ApplicationParameters".into());
    }
    Ok(out)
}

/// Whether `name` is an insert command under `prefix`.
pub fn is_insert_command(prefix: &Name, name: &Name) -> bool {
    prefix.is_prefix_of(name)
        && name
            .get(prefix.len())
            .is_some_and(|c| c.value() == INSERT_VERB)
}

/// Groups encoded Data into commands of at most [`MAX_COMMAND_PAYLOAD`] bytes; a Data larger
/// than that on its own is an error.
pub fn command_payloads(packets: &[Bytes]) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut cur = BytesMut::new();
    for p in packets {
        if p.len() > MAX_COMMAND_PAYLOAD {
            return Err(crate::error::AmiError::Config(format!(
                "a Data of {} bytes does not fit in one insert command (at most {MAX_COMMAND_PAYLOAD}); \
                 insert it with --db",
                p.len()
            )));
        }
        if cur.len() + p.len() > MAX_COMMAND_PAYLOAD {
            out.push(cur.split().freeze());
        }
        cur.extend_from_slice(p);
    }
    if !cur.is_empty() {
        out.push(cur.freeze());
    }
    Ok(out)
}

/// The signed insert command carrying `payload` (from [`command_payloads`]).
pub fn insert_command(
    prefix: &Name,
    payload: Bytes,
    key: &KeyPair,
    now_ms: u64,
) -> Result<Interest> {
    let mut i = Interest::new(prefix.append(Component::generic(Bytes::from_static(INSERT_VERB))));
    i.app_parameters = Some(payload);
    i.must_be_fresh = true;
    i.lifetime_ms = Some(10_000);
    key.sign_interest(&mut i, now_ms)?;
    Ok(i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::cert::Validity;

    fn setup() -> (RepoStore, InsertPolicy, KeyPair, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "amicn-repo-insert-{}-{}.db",
            std::process::id(),
            crate::net::now_us()
        ));
        let store = RepoStore::open(&path).unwrap();
        let key = KeyPair::generate(&Name::from_uri("/lab/publisher").unwrap());
        let validity = Validity::starting_now(crate::net::now_ms() / 1_000, 3_600);
        let cert = Certificate::self_signed(&key, 1, validity).unwrap();
        let mut policy = InsertPolicy::default();
        policy.allow(cert, vec![Name::from_uri("/lab/data").unwrap()]);
        (store, policy, key, path)
    }

    fn data(uri: &str) -> Bytes {
        Data::new(Name::from_uri(uri).unwrap(), Bytes::from_static(b"x")).sign_digest_sha256()
    }

    fn prefix() -> Name {
        Name::from_uri("/localhost/amicn-repo").unwrap()
    }

    #[test]
    fn a_signed_command_stores_its_data_once_and_a_replay_is_refused() {
        let (store, policy, key, path) = setup();
        let now = crate::net::now_ms();
        let payload = command_payloads(&[data("/lab/data/a"), data("/lab/data/b")]).unwrap();
        assert_eq!(payload.len(), 1);
        let cmd = insert_command(&prefix(), payload[0].clone(), &key, now).unwrap();
        assert!(is_insert_command(&prefix(), &cmd.name));
        let r = policy.handle(&store, &cmd, now);
        assert_eq!(
            (r.status_code, r.status_text.as_str()),
            (200, "stored 2 Data")
        );
        assert_eq!(store.stats().unwrap().objects, 2);
        // The same command again: refused as a replay.
        assert_eq!(policy.handle(&store, &cmd, now + 5).status_code, 409);
        assert_eq!(policy.counters.replayed.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn unknown_keys_bad_signatures_and_foreign_names_are_refused_and_counted() {
        let (store, policy, key, path) = setup();
        let now = crate::net::now_ms();
        // A key the repository was not told about.
        let other = KeyPair::generate(&Name::from_uri("/lab/other").unwrap());
        let cmd = insert_command(&prefix(), data("/lab/data/a"), &other, now).unwrap();
        assert_eq!(policy.handle(&store, &cmd, now).status_code, 401);
        // A publisher's command altered after signing.
        let mut cmd = insert_command(&prefix(), data("/lab/data/a"), &key, now).unwrap();
        cmd.app_parameters = Some(data("/lab/data/z"));
        assert_eq!(policy.handle(&store, &cmd, now).status_code, 401);
        // Unsigned.
        let mut plain =
            Interest::new(prefix().append(Component::generic(Bytes::from_static(INSERT_VERB))));
        plain.app_parameters = Some(data("/lab/data/a"));
        assert_eq!(policy.handle(&store, &plain, now).status_code, 401);
        // A name outside the publisher's prefix; and bytes that are not Data.
        let cmd = insert_command(&prefix(), data("/lab/elsewhere/a"), &key, now).unwrap();
        assert_eq!(policy.handle(&store, &cmd, now + 1).status_code, 403);
        let cmd = insert_command(
            &prefix(),
            Bytes::from_static(b"\x05\x01\x00"),
            &key,
            now + 2,
        )
        .unwrap();
        assert_eq!(policy.handle(&store, &cmd, now + 2).status_code, 400);
        assert_eq!(policy.counters.unauthenticated.load(Ordering::Relaxed), 3);
        assert_eq!(policy.counters.forbidden.load(Ordering::Relaxed), 1);
        assert_eq!(policy.counters.malformed.load(Ordering::Relaxed), 1);
        assert_eq!(
            store.stats().unwrap().objects,
            0,
            "nothing refused was stored"
        );
        // A refused command did not use up the signer's replay window: a good one still passes.
        let cmd = insert_command(&prefix(), data("/lab/data/ok"), &key, now + 3).unwrap();
        assert_eq!(policy.handle(&store, &cmd, now + 3).status_code, 200);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn payloads_are_split_below_the_packet_limit() {
        let big: Vec<Bytes> = (0..40)
            .map(|k| {
                Data::new(
                    Name::from_uri(&format!("/lab/data/{k}")).unwrap(),
                    Bytes::from(vec![7u8; 900]),
                )
                .sign_digest_sha256()
            })
            .collect();
        let parts = command_payloads(&big).unwrap();
        assert!(parts.len() >= 5);
        assert!(parts.iter().all(|p| p.len() <= MAX_COMMAND_PAYLOAD));
        assert_eq!(
            parts
                .iter()
                .map(|p| split(p.clone()).unwrap().len())
                .sum::<usize>(),
            40
        );
        let huge = Data::new(
            Name::from_uri("/lab/data/h").unwrap(),
            Bytes::from(vec![0u8; 9_000]),
        )
        .sign_digest_sha256();
        assert!(command_payloads(&[huge]).is_err());
    }
}
