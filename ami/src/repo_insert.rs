//! Inserts into a serving repository by signed command Interest.
//!
//! A publisher sends `<command prefix>/insert/<ParametersSha256Digest>` whose
//! ApplicationParameters hold one or more complete Data packets (concatenated TLVs, so at most
//! about 8 KB per command; bulk loads go straight to the database with `amicn repo insert
//! --db`). The Interest carries a v0.3 Ed25519 signature with SignatureTime and
//! SignatureNonce. The decisions are those of the KMS validator ([`amicn_kms::trust`]) with a
//! [`TrustPolicy`] built from the configured publishers (see [`InsertPolicy::trust_policy`]):
//! the repository accepts a command only when
//!
//! 1. the rule `repo-insert` lets its KeyLocator sign insert commands (only the publisher keys
//!    it was configured with, `--publisher CERT`),
//! 2. the signature verifies with that publisher's certificate, which is within its validity
//!    period,
//! 3. every Data decodes and the `write` rule for its name lets that publisher write it,
//! 4. the SignatureTime/SignatureNonce pass the replay checker (a replayed command is refused,
//!    not stored twice),
//!
//! and then stores all of them in one transaction. The answer, a Data under the command's name
//! carrying an NFD ControlResponse, is sent only after the commit: 200 means every Data in the
//! command is durable. Refusals are 400 (malformed), 401 (unsigned, bad signature, expired
//! certificate), 403 (a signer the policy does not allow, or a name the publisher may not
//! write) and 409 (replay), each counted in [`InsertCounters`].
//!
//! The command prefix defaults to `/localhost/amicn-repo`: `/localhost` Interests never leave
//! the host, so only local publishers reach it; a prefix outside `/localhost` lets remote
//! publishers in, still only with a configured key.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use amicn_kms::cert::Certificate;
use amicn_kms::identity::KeyPair;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_kms::trust::{
    CertStore, OneOrMany, PacketKind, PolicyConfig, RuleConfig, TrustPolicy, Validator,
};
use amicn_tlv::mgmt::ControlResponse;
use amicn_tlv::{Component, Data, Interest, Name, split_first_tlv};
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
    /// Refused: unsigned, expired certificate or bad signature.
    pub unauthenticated: AtomicU64,
    /// Refused: a signer the trust policy does not let send insert commands.
    pub signer_refused: AtomicU64,
    /// Refused: a Data name outside the publisher's prefixes.
    pub forbidden: AtomicU64,
    /// Refused by the replay checker.
    pub replayed: AtomicU64,
    /// Failed to commit.
    pub failed: AtomicU64,
}

struct Publisher {
    cert: Certificate,
    prefixes: Vec<Name>,
}

/// Who may insert, and where (see the module documentation).
pub struct InsertPolicy {
    publishers: Vec<Publisher>,
    /// The validator for the configured publishers (none configured: every command refused).
    validator: Option<Validator>,
    replay: Mutex<ReplayChecker>,
    /// Counters of the handler.
    pub counters: InsertCounters,
}

impl std::fmt::Debug for InsertPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertPolicy")
            .field(
                "publishers",
                &self
                    .publishers
                    .iter()
                    .map(|p| p.cert.key_name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for InsertPolicy {
    fn default() -> Self {
        InsertPolicy {
            publishers: Vec::new(),
            validator: None,
            replay: Mutex::new(ReplayChecker::new(ReplayConfig::default())),
            counters: InsertCounters::default(),
        }
    }
}

/// The pattern matching `name` and every name under it.
fn under(name: &Name) -> String {
    if name.is_empty() {
        "/...".to_string()
    } else {
        format!("{name}/...")
    }
}

impl InsertPolicy {
    /// Lets the key certified by `cert` insert Data under `prefixes`. The certificate is pinned:
    /// it need not chain anywhere, but must be within its validity period when commands arrive.
    pub fn allow(&mut self, cert: Certificate, prefixes: Vec<Name>) -> Result<()> {
        let key = cert.key_name();
        let mut publishers: Vec<Publisher> = std::mem::take(&mut self.publishers)
            .into_iter()
            .filter(|p| p.cert.key_name() != key)
            .collect();
        publishers.push(Publisher { cert, prefixes });
        let policy = match Self::build_policy(&publishers) {
            Ok(p) => p,
            Err(e) => {
                publishers.pop();
                self.publishers = publishers;
                return Err(e);
            }
        };
        let mut validator = Validator::new(policy);
        for p in &publishers {
            validator.pin_certificate(p.cert.clone());
        }
        self.validator = Some(validator);
        self.publishers = publishers;
        Ok(())
    }

    /// The trust policy the handler applies: `repo-insert` (insert command Interests, signed
    /// by any configured publisher key), then one `write:<prefix>` rule per configured prefix,
    /// longest first, allowing every publisher whose prefixes cover it.
    /// `None` while no publisher is configured.
    pub fn trust_policy(&self) -> Option<&TrustPolicy> {
        self.validator.as_ref().map(Validator::policy)
    }

    fn build_policy(publishers: &[Publisher]) -> Result<TrustPolicy> {
        let signer = |p: &Publisher| under(&p.cert.key_name());
        let mut rules = vec![RuleConfig {
            id: "repo-insert".into(),
            data: "/...".into(),
            signer: OneOrMany::Many(publishers.iter().map(signer).collect()),
            packet: Some(PacketKind::Interest),
        }];
        let mut prefixes: Vec<&Name> = publishers.iter().flat_map(|p| &p.prefixes).collect();
        prefixes.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        prefixes.dedup();
        for pre in prefixes {
            let writers: Vec<String> = publishers
                .iter()
                .filter(|p| p.prefixes.iter().any(|q| q.is_prefix_of(pre)))
                .map(signer)
                .collect();
            rules.push(RuleConfig {
                id: format!("write:{pre}"),
                data: under(pre),
                signer: OneOrMany::Many(writers),
                packet: Some(PacketKind::Data),
            });
        }
        Ok(TrustPolicy::from_config(PolicyConfig { rules })?)
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
                    SIGNER_REFUSED => &self.counters.signer_refused,
                    403 => &self.counters.forbidden,
                    _ => &self.counters.replayed,
                };
                let code = if code == SIGNER_REFUSED { 403 } else { code };
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
        // Signature type, KeyLocator, the repo-insert rule, the pinned certificate's validity
        // and the signature: one validator decides.
        let validator = self.validator.as_ref().ok_or((
            SIGNER_REFUSED,
            "this repository has no publishers configured".to_string(),
        ))?;
        let v = validator
            .validate_interest(cmd, &CertStore::new(), now_ms)
            .map_err(|e| match e {
                amicn_kms::Error::SignerNotAllowed { .. }
                | amicn_kms::Error::NoTrustRule { .. } => (SIGNER_REFUSED, e.to_string()),
                e => (401, e.to_string()),
            })?;
        let params = cmd.app_parameters.clone().ok_or((
            400,
            "no Data in the command's ApplicationParameters".to_string(),
        ))?;
        let packets = split(params).map_err(|e| (400, e))?;
        let policy = validator.policy();
        for w in &packets {
            let d = Data::decode(w.clone()).map_err(|e| (400, format!("not a Data: {e}")))?;
            policy
                .check(&d.name, &v.signer)
                .map_err(|e| (403, format!("{} may not write {}: {e}", v.signer, d.name)))?;
        }
        // Last, so that a refused command does not advance the signer's replay state.
        self.replay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check_fields(
                &v.signer,
                info.time_ms,
                info.nonce.as_deref(),
                info.seq_num,
                now_ms,
            )
            .map_err(|e| (409, e.to_string()))?;
        Ok(packets)
    }
}

/// Internal code of a signer refused by the policy (answered as 403, counted apart).
const SIGNER_REFUSED: u64 = 1403;

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
        policy
            .allow(cert, vec![Name::from_uri("/lab/data").unwrap()])
            .unwrap();
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
        let r = policy.handle(&store, &cmd, now);
        assert_eq!(r.status_code, 403);
        assert!(r.status_text.contains("repo-insert"), "{}", r.status_text);
        assert_eq!(policy.counters.signer_refused.load(Ordering::Relaxed), 1);
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
        assert_eq!(policy.counters.unauthenticated.load(Ordering::Relaxed), 2);
        assert_eq!(policy.counters.signer_refused.load(Ordering::Relaxed), 1);
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
    fn write_rules_follow_each_publishers_prefixes_and_expired_certificates_are_refused() {
        let (store, mut policy, key, path) = setup();
        let now = crate::net::now_ms();
        // A second publisher for all of /lab: it may write under /lab/data too, the first
        // publisher still only there.
        let wide = KeyPair::generate(&Name::from_uri("/lab/wide").unwrap());
        let validity = Validity::starting_now(now / 1_000, 3_600);
        let cert = Certificate::self_signed(&wide, 1, validity).unwrap();
        policy
            .allow(cert, vec![Name::from_uri("/lab").unwrap()])
            .unwrap();
        let p = policy.trust_policy().unwrap();
        assert_eq!(
            p.check(
                &Name::from_uri("/lab/data/x").unwrap(),
                &wide.key_name().clone()
            )
            .unwrap(),
            "write:/lab/data"
        );
        let cmd = insert_command(&prefix(), data("/lab/data/w"), &wide, now).unwrap();
        assert_eq!(policy.handle(&store, &cmd, now).status_code, 200);
        let cmd = insert_command(&prefix(), data("/lab/other/x"), &key, now + 1).unwrap();
        let r = policy.handle(&store, &cmd, now + 1);
        assert_eq!(r.status_code, 403);
        assert!(r.status_text.contains("write:/lab"), "{}", r.status_text);
        assert_eq!(policy.counters.forbidden.load(Ordering::Relaxed), 1);
        // A publisher whose certificate has expired.
        let old = KeyPair::generate(&Name::from_uri("/lab/old").unwrap());
        let validity = Validity::starting_now(now / 1_000 - 7_200, 3_600);
        let cert = Certificate::self_signed(&old, 1, validity).unwrap();
        policy
            .allow(cert, vec![Name::from_uri("/lab").unwrap()])
            .unwrap();
        let cmd = insert_command(&prefix(), data("/lab/data/o"), &old, now + 2).unwrap();
        assert_eq!(policy.handle(&store, &cmd, now + 2).status_code, 401);
        assert_eq!(policy.counters.unauthenticated.load(Ordering::Relaxed), 1);
        // With no publisher at all, everything is refused as a signer.
        let none = InsertPolicy::default();
        let cmd = insert_command(&prefix(), data("/lab/data/n"), &key, now + 3).unwrap();
        assert_eq!(none.handle(&store, &cmd, now + 3).status_code, 403);
        assert_eq!(none.counters.signer_refused.load(Ordering::Relaxed), 1);
        assert_eq!(store.stats().unwrap().objects, 1);
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
