//! The KMS service: owns the key-graph server, admits meters, carries out the DR operator's and
//! the utility's commands, runs joins, leaves, moves and revocations as batch rekeys per epoch,
//! publishes every rekey as Data and hands the head-end services the keys their job needs.
//!
//! Enrolment: a meter sends a signed Interest `/<u>/ami/KMS/enrol/<id>/<params-digest>` whose
//! ApplicationParameters carry its ephemeral X25519 key, the DR projects it expects and its
//! certificate. The KMS checks the signature, the trust rule (meter X may only enrol as X),
//! replay fields and the revocation list before doing any key agreement, and admits the meter
//! only into the projects the DR operator entitled it to: a project the meter names without an
//! entitlement is refused. The user key comes out of X25519 + HKDF; the enrolment is written to
//! the state database before the answer leaves.
//!
//! Authority: `/<u>/ami/KMS/cmd/entitle` (signed by the DR operator) sets meters' project sets;
//! `/<u>/ami/KMS/cmd/revoke` and `/<u>/ami/KMS/cmd/leave` (signed by the utility operator)
//! revoke or retire a meter. Each is checked against the trust rules and the replay records,
//! persisted, and answered with a signed status.
//!
//! Each commit publishes the manifest object `/<u>/ami/KMS/rekey/<epoch>/seg=<k>` (the key
//! graph's manifest and its signature, plus the implicit digest of every wrap, segmented and
//! signed) and the immutable wraps `.../KEK/v=<e>/ENCRYPTED-BY/<key>`, DigestSha256-signed: a
//! meter fetches each wrap by the digest its signed manifest lists, so a forged wrap never
//! matches. A revocation also publishes the revocation list `/<u>/ami/KMS/revoked/v=<e>`.
//! Everything an epoch publishes is durable in the state database before it is served (with
//! the epoch's journal entry, see [`crate::kms_journal`]); a restarted KMS replays the journal,
//! serves the same bytes and continues with the next epoch.
//!
//! Service keys: the MDMS, pricing and DR roles send a signed Interest
//! `/<u>/ami/KMS/svc/<role>/<params-digest>` with an ephemeral X25519 key; the answer is sealed
//! under the key agreed for that request and holds exactly what the role needs: reading keys
//! (derived one-way from the user keys) for the MDMS, the broadcast key for pricing, the
//! project keys for the DR operator.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_face::client::Client;
use amicn_kms::SymmetricKey;
use amicn_kms::cert::Certificate;
use amicn_kms::envelope::{EnvelopeKey, Purpose};
use amicn_kms::establish::{EphemeralAgreement, Role};
use amicn_kms::graph::names::{label_projects, subgroup_label};
use amicn_kms::graph::{GraphConfig, KeyGraph, Rekey, RekeyStats};
use amicn_kms::identity::sign_data_digest;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_tlv::{Component, Data, Interest, Name};
use bytes::Bytes;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{AmiError, Result};
use crate::keys::{HeadEndKeys, reading_key};
use crate::kms_journal::{self, Op};
use crate::kms_store::{EpochWrite, KmsStore, PendingJoin, StagedOp};
use crate::names::AmiNames;
use crate::net::{Publisher, now_ms, now_us, segment_object};
use crate::pki::{Credentials, Trust};
use crate::wire::{self, EnrolReply, EnrolRequest, KeyEntry, KeyReply, KeyRequest, Status};

/// One of the KMS's Interest handlers.
type Handler = fn(&KmsService, &Interest) -> Data;

/// Epochs between two graph images (each epoch in between appends one journal entry).
const JOURNAL_COMPACT_EVERY: u32 = 64;

fn fresh_seed() -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(s.as_mut());
    s
}

/// ContentType NACK (application-level negative answer).
const CONTENT_TYPE_NACK: u64 = 3;
/// Reading keys per page of the MDMS's key bundle (keeps each answer below 8800 bytes).
const KEYS_PER_PAGE: usize = 64;

/// Settings of the KMS service.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// Utility names.
    pub names: AmiNames,
    /// Degree of every subgroup tree.
    pub degree: u32,
    /// DR projects the utility runs.
    pub projects: Vec<String>,
    /// FreshnessPeriod of wrap objects (immutable, so long).
    pub wrap_freshness_ms: u64,
    /// FreshnessPeriod of manifests (how long a cached one answers a MustBeFresh discovery).
    pub manifest_freshness_ms: u64,
    /// The state database; `None` keeps state in memory (tests and the in-process scenario).
    pub state_db: Option<PathBuf>,
}

impl KmsConfig {
    /// Binary trees, one-hour wraps, one-second manifests, state in memory.
    pub fn new(names: AmiNames, projects: Vec<String>) -> Self {
        KmsConfig {
            names,
            degree: 2,
            projects,
            wrap_freshness_ms: 3_600_000,
            manifest_freshness_ms: 1_000,
            state_db: None,
        }
    }
}

/// One subgroup of the key graph (meters with the same DR projects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SubgroupInfo {
    /// Label (`p1+p2`, or `base` for no project).
    pub label: String,
    /// Its DR projects.
    pub projects: Vec<String>,
    /// Members.
    pub members: u32,
    /// Tree height H.
    pub height: u8,
}

/// What one committed epoch did and published.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    /// Epoch number.
    pub epoch: u32,
    /// Caller's label for the step (e.g. "initial enrolment").
    pub label: String,
    /// The key graph's counters.
    pub stats: RekeyStats,
    /// Meters placed in this epoch.
    pub joins: Vec<u32>,
    /// Meters that departed in this epoch.
    pub departs: Vec<u32>,
    /// Names of the wrap objects.
    pub wraps: Vec<Name>,
    /// The same names exactly as the key graph wrote them (the AEAD associated data).
    pub wrap_uris: Vec<String>,
    /// Name of the manifest object (its segments are `<name>/seg=<k>`).
    pub manifest: Name,
    /// Segments of the manifest object.
    pub manifest_segments: usize,
    /// Encoded size of all manifest segments.
    pub manifest_wire_bytes: usize,
    /// Encoded size of all wrap Data.
    pub wraps_wire_bytes: usize,
    /// Subgroups before the commit.
    pub before: Vec<SubgroupInfo>,
    /// Subgroups after the commit.
    pub after: Vec<SubgroupInfo>,
}

/// The durable summary of one epoch (the KMS's epoch log, also in its metrics snapshot).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EpochSummary {
    /// Epoch.
    pub epoch: u32,
    /// What caused it.
    pub label: String,
    /// Meters placed.
    pub joins: usize,
    /// Meters departed.
    pub departs: usize,
    /// Wraps by delivery mode.
    pub unicast_wraps: u64,
    /// Wraps by delivery mode.
    pub multicast_wraps: u64,
    /// Wraps by delivery mode.
    pub broadcast_wraps: u64,
    /// Wraps of subgroup-tree keys.
    #[serde(default)]
    pub tree_wraps: u64,
    /// Wraps of project keys.
    #[serde(default)]
    pub project_wraps: u64,
    /// Wraps of the broadcast key.
    #[serde(default)]
    pub root_wraps: u64,
    /// Meters placed.
    #[serde(default)]
    pub joined: Vec<u32>,
    /// Meters departed.
    #[serde(default)]
    pub departed: Vec<u32>,
    /// Subgroups before the epoch.
    #[serde(default)]
    pub before: Vec<SubgroupInfo>,
    /// Subgroups after the epoch.
    #[serde(default)]
    pub after: Vec<SubgroupInfo>,
    /// Segments of the manifest object.
    pub manifest_segments: usize,
    /// Bytes of everything the epoch published (encoded Data).
    pub wire_bytes: usize,
    /// SHA-256 over every Data the epoch published, in publication order.
    pub content_digest: String,
    /// When it was committed (µs since the Unix epoch).
    pub committed_us: u64,
}

/// Counters of the KMS service.
#[derive(Debug, Default, Clone, Serialize)]
pub struct KmsCounters {
    /// Enrolments accepted.
    pub enrolled: u64,
    /// Enrolments refused, by reason.
    pub enrol_refused: BTreeMap<String, u64>,
    /// Enrolments asked again with the same key after a lost answer, answered the same.
    pub enrol_repeated: u64,
    /// Commands carried out.
    pub commands: u64,
    /// Commands refused, by reason.
    pub command_refused: BTreeMap<String, u64>,
    /// Service key requests answered.
    pub key_requests: u64,
    /// Service key requests refused, by reason.
    pub key_refused: BTreeMap<String, u64>,
    /// Epochs committed by this process.
    pub epochs_committed: u64,
    /// Epochs restored from the state database at start.
    pub epochs_restored: u64,
}

struct State {
    graph: KeyGraph,
    store: KmsStore,
    /// User keys of joins staged in this epoch.
    staged_keys: HashMap<u32, SymmetricKey>,
    entitlements: BTreeMap<u32, Vec<String>>,
    revoked: BTreeMap<u32, u64>,
    since: BTreeMap<u32, u64>,
    replay: ReplayChecker,
    history: Vec<EpochRecord>,
    counters: KmsCounters,
    /// A commit that could not be made durable leaves memory ahead of disk: refuse everything.
    failed: Option<String>,
    /// Operations staged in this epoch, in order (its journal entry).
    ops: Vec<Op>,
    /// The key generator's seed for this epoch.
    seed: Zeroizing<[u8; 32]>,
    /// Journal entries since the last graph image.
    journal_len: u32,
    /// Replay records changed since they were last written.
    replay_dirty: bool,
    /// Recent accepted enrolments: the meter's X25519 key and the answer it was given, so a
    /// meter whose answer was lost and who asks again with the same key gets the same answer.
    answered: HashMap<u32, ([u8; 32], EnrolReply, Instant)>,
    /// Earlier leaf versions of meters that moved (their user key is the same, its name
    /// version changed): the MDMS gets those reading keys too, for readings sealed before the
    /// move that are still on their way. Persisted in the state's meta table.
    moved_from: BTreeMap<u32, Vec<u64>>,
}

/// Earlier leaf versions kept per moved meter.
const MOVED_VERSIONS_KEPT: usize = 4;

/// How long an enrolment answer is kept for a meter that lost it and asks again.
const ENROL_ANSWER_KEPT: Duration = Duration::from_secs(600);

/// The KMS service (see the module documentation).
pub struct KmsService {
    cfg: KmsConfig,
    creds: Credentials,
    trust: Arc<Trust>,
    keys: Arc<HeadEndKeys>,
    publisher: Publisher,
    state: Mutex<State>,
}

impl Drop for KmsService {
    fn drop(&mut self) {
        // The answering tasks hold the connection: end them with the service.
        self.publisher.shutdown();
    }
}

impl std::fmt::Debug for KmsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsService")
            .field("key", &self.creds.key)
            .finish_non_exhaustive()
    }
}

fn classify(name: &Name) -> &'static str {
    let has = |s: &str| name.iter().any(|c| c.value() == s.as_bytes());
    if has("ENCRYPTED-BY") {
        "wrap"
    } else if has("rekey") {
        "manifest"
    } else if has("enrol") {
        "enrol"
    } else if has("revoked") {
        "revocations"
    } else if has("KEY") {
        "certificate"
    } else {
        "other"
    }
}

fn summary(g: &KeyGraph) -> Vec<SubgroupInfo> {
    g.subgroups()
        .into_iter()
        .map(|(label, members, height)| SubgroupInfo {
            projects: label_projects(&label)
                .into_iter()
                .map(str::to_string)
                .collect(),
            label,
            members,
            height,
        })
        .collect()
}

fn status_data(name: &Name, st: &Status) -> Data {
    let mut d = Data::new(name.clone(), st.encode());
    d.meta_info.freshness_period_ms = Some(1_000);
    d
}

fn sorted(p: &[String]) -> Vec<String> {
    let mut v = p.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Why a request was refused: a short kind for counters and a status code.
struct Refusal {
    kind: &'static str,
    code: u64,
    why: String,
}

impl Refusal {
    fn new(kind: &'static str, code: u64, why: impl Into<String>) -> Self {
        Refusal {
            kind,
            code,
            why: why.into(),
        }
    }
}

impl From<AmiError> for Refusal {
    fn from(e: AmiError) -> Self {
        let kind = match &e {
            AmiError::Kms(k) => match **k {
                amicn_kms::Error::ReplayNonce { .. }
                | amicn_kms::Error::ReplayOutsideWindow { .. }
                | amicn_kms::Error::ReplayStaleTime { .. }
                | amicn_kms::Error::ReplayStaleSeqNum { .. }
                | amicn_kms::Error::ReplayFieldMissing { .. } => "replay",
                amicn_kms::Error::CertificateExpired { .. }
                | amicn_kms::Error::CertificateNotYetValid { .. } => "certificate-expired",
                amicn_kms::Error::SignerNotAllowed { .. }
                | amicn_kms::Error::NoTrustRule { .. } => "not-authorised",
                _ => "untrusted",
            },
            AmiError::Protocol { .. } | AmiError::Tlv(_) => "malformed",
            AmiError::Graph(_) => "graph",
            _ => "error",
        };
        let code = match kind {
            "malformed" => 400,
            "graph" => 409,
            _ => 403,
        };
        Refusal::new(kind, code, e.to_string())
    }
}

impl KmsService {
    /// Opens (or creates) the state, builds or restores the key graph, registers `/<u>/ami/KMS`,
    /// `/<u>/ami/bcast` and every `/<u>/ami/dr/<p>/KEK` with the forwarder on `client`, and
    /// starts answering.
    pub async fn start(
        cfg: KmsConfig,
        creds: Credentials,
        trust: Arc<Trust>,
        client: &Client,
    ) -> Result<Arc<Self>> {
        let publisher = Publisher::new(client, creds.key.clone(), Some(classify));
        let names = cfg.names.clone();
        let projects = cfg.projects.clone();
        let svc = Self::open(cfg, creds, trust, publisher.clone())?;
        for prefix in Self::request_prefixes(&names) {
            let weak = Arc::downgrade(&svc);
            publisher.on_interest(
                prefix,
                Arc::new(move |i: &Interest| weak.upgrade().and_then(|s| s.on_interest(i))),
            );
        }
        publisher.serve(names.kms()).await?;
        publisher.serve(names.bcast_prefix()).await?;
        for p in &projects {
            publisher.serve(names.dr_kek_prefix(p)).await?;
        }
        Ok(svc)
    }

    /// The service without its forwarder registrations: opens (or creates) the state, builds or
    /// restores the key graph and puts everything it publishes into `publisher`'s store.
    /// Requests reach it through [`KmsService::on_interest`]; [`KmsService::start`] is this plus
    /// the registrations.
    pub fn open(
        cfg: KmsConfig,
        creds: Credentials,
        trust: Arc<Trust>,
        publisher: Publisher,
    ) -> Result<Arc<Self>> {
        let store = KmsStore::open(cfg.state_db.as_deref())?;
        publisher.pin_wire(creds.cert.to_wire())?;
        let mut restored = 0;
        let mut journal_len = 0;
        let mut graph = match store.graph_image()? {
            Some(img) => {
                let mut g = amicn_kms::persist::decode_graph(&img, store.path())?;
                let key = creds.key.clone();
                let signer = move |b: &[u8]| key.sign(b).to_vec();
                for (e, entry) in store.journal()? {
                    let bad = |why: String| AmiError::State {
                        path: store.path().to_path_buf(),
                        why: format!("journal entry of epoch {e}: {why}"),
                    };
                    let ent = kms_journal::decode(&entry).map_err(bad)?;
                    kms_journal::replay(&mut g, e, &ent, &signer).map_err(bad)?;
                    journal_len += 1;
                }
                for wire in store.published()? {
                    publisher.put_wire(Bytes::from(wire))?;
                }
                restored = u64::from(g.epoch());
                g
            }
            None => KeyGraph::new(GraphConfig::new(cfg.names.prefix_str(), cfg.degree))?,
        };
        let mut seed = fresh_seed();
        graph.reseed(*seed);
        let mut ops = Vec::new();
        let existing: Vec<String> = graph.project_sizes().into_iter().map(|(p, _)| p).collect();
        for p in &cfg.projects {
            if !existing.contains(p) {
                graph.add_project(p)?;
                ops.push(Op::AddProject(p.clone()));
            }
        }
        if restored == 0 {
            let mut img = amicn_kms::persist::encode_graph(&graph);
            let r = store.save_graph_image(&img);
            zeroize::Zeroize::zeroize(&mut img);
            r?;
            // The image holds the projects: the first epoch's journal starts after it.
            ops.clear();
            seed = fresh_seed();
            graph.reseed(*seed);
        }
        let replay = match store.meta("replay")? {
            Some(b) => ReplayChecker::from_bytes(&b).map_err(|e| AmiError::State {
                path: store.path().to_path_buf(),
                why: format!("replay records: {e}"),
            })?,
            None => ReplayChecker::new(ReplayConfig::default()),
        };
        let moved_from: BTreeMap<u32, Vec<u64>> = match store.meta("moved_from")? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| AmiError::State {
                path: store.path().to_path_buf(),
                why: format!("earlier leaf versions of moved meters: {e}"),
            })?,
            None => BTreeMap::new(),
        };
        let mut st = State {
            moved_from,
            entitlements: store.entitlements()?,
            revoked: store.revocations()?,
            since: store.member_since()?,
            graph,
            staged_keys: HashMap::new(),
            answered: HashMap::new(),
            replay,
            history: Vec::new(),
            counters: KmsCounters {
                epochs_restored: restored,
                ..KmsCounters::default()
            },
            failed: None,
            ops,
            seed,
            journal_len,
            replay_dirty: false,
            store,
        };
        // Work accepted before a restart and not committed yet is staged again.
        for p in st.store.pending()? {
            let key = SymmetricKey::from_bytes(*p.user_key);
            let projects: Vec<&str> = p.projects.iter().map(String::as_str).collect();
            match st.graph.stage_join(p.meter, &projects, key.duplicate()) {
                Ok(()) => {
                    st.ops.push(Op::Join {
                        meter: p.meter,
                        key: Zeroizing::new(*key.as_bytes()),
                        projects: p.projects.clone(),
                    });
                    st.staged_keys.insert(p.meter, key);
                }
                Err(e) => tracing::warn!("pending enrolment of meter {}: {e}", p.meter),
            }
        }
        for (m, op) in st.store.staged()? {
            let r = match &op {
                StagedOp::Leave => st.graph.stage_leave(m).map(|()| Op::Leave(m)),
                StagedOp::Move(p) => {
                    let refs: Vec<&str> = p.iter().map(String::as_str).collect();
                    note_move(&mut st, cfg.names.prefix_str(), m);
                    st.graph
                        .stage_move(m, &refs)
                        .map(|()| Op::Move(m, p.clone()))
                }
            };
            match r {
                Ok(op) => st.ops.push(op),
                Err(e) => tracing::warn!("staged change of meter {m}: {e}"),
            }
        }
        let svc = Arc::new(KmsService {
            cfg,
            creds,
            trust,
            keys: Arc::new(HeadEndKeys::default()),
            publisher,
            state: Mutex::new(st),
        });
        // A revocation recorded just before a crash, whose epoch was not committed yet, is
        // carried out now.
        let unfinished: Vec<u32> = {
            let st = svc.lock();
            st.revoked
                .keys()
                .copied()
                .filter(|m| st.graph.is_member(*m) || st.staged_keys.contains_key(m))
                .collect()
        };
        for m in unfinished {
            let by = svc.creds.key.identity().to_string();
            if let Err(r) = svc.revoke_inner(m, "revocation (resumed)", &by) {
                return Err(AmiError::State {
                    path: svc.lock().store.path().to_path_buf(),
                    why: format!("resuming the revocation of meter {m}: {}", r.why),
                });
            }
        }
        {
            let mut st = svc.lock();
            svc.refresh_head_end(&st)?;
            // Followers find a (possibly empty) list from the start instead of timing out.
            if restored == 0 {
                svc.publish_revocations(&mut st)?;
            }
        }
        Ok(svc)
    }

    /// The prefixes of the requests the KMS answers: enrolments, service key requests and
    /// operator commands.
    fn request_prefixes(names: &AmiNames) -> [Name; 3] {
        [
            names.enrol_prefix(),
            names.kms().append_generic(Bytes::from_static(b"svc")),
            names.kms().append_generic(Bytes::from_static(b"cmd")),
        ]
    }

    /// Answers one request Interest from the network: an enrolment
    /// (`/<u>/ami/KMS/enrol/...`), a service key request (`.../svc/...`) or an operator command
    /// (`.../cmd/...`). The answer is unsigned (the publisher signs it) and named like the
    /// Interest; a refusal is an answer too. `None` if the name is under none of those prefixes.
    pub fn on_interest(&self, interest: &Interest) -> Option<Data> {
        let handlers: [Handler; 3] = [
            KmsService::on_enrol,
            KmsService::on_keys,
            KmsService::on_command,
        ];
        Self::request_prefixes(&self.cfg.names)
            .iter()
            .zip(handlers)
            .find(|(p, _)| p.is_prefix_of(&interest.name))
            .map(|(_, f)| f(self, interest))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys shared with head-end roles running in this process (the in-process scenario);
    /// networked roles obtain theirs with signed key requests.
    pub fn head_end_keys(&self) -> Arc<HeadEndKeys> {
        self.keys.clone()
    }

    /// The KMS certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.creds.cert
    }

    /// The publisher (its counters show what the KMS itself served).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Epoch of the last commit.
    pub fn epoch(&self) -> u32 {
        self.lock().graph.epoch()
    }

    /// Every epoch committed by this process.
    pub fn history(&self) -> Vec<EpochRecord> {
        self.lock().history.clone()
    }

    /// The durable epoch log (every epoch ever committed, across restarts).
    pub fn epoch_log(&self) -> Result<Vec<EpochSummary>> {
        let st = self.lock();
        let mut out = Vec::new();
        for (e, json) in st.store.epoch_log()? {
            out.push(serde_json::from_str(&json).map_err(|err| AmiError::State {
                path: st.store.path().to_path_buf(),
                why: format!("epoch log entry {e}: {err}"),
            })?);
        }
        Ok(out)
    }

    /// Counters.
    pub fn counters(&self) -> KmsCounters {
        self.lock().counters.clone()
    }

    /// Whether joins, leaves, moves or refreshes wait for the next commit.
    pub fn has_staged(&self) -> bool {
        self.lock().graph.has_staged()
    }

    /// The reason the KMS stopped accepting work, if a commit could not be made durable.
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Subgroups of the key graph now.
    pub fn subgroups(&self) -> Vec<SubgroupInfo> {
        summary(&self.lock().graph)
    }

    /// Current members.
    pub fn members(&self) -> Vec<u32> {
        self.lock().graph.member_ids()
    }

    /// Revoked meters and when (µs).
    pub fn revoked(&self) -> BTreeMap<u32, u64> {
        self.lock().revoked.clone()
    }

    /// Keys `meter` is entitled to hold, counted (tree path with user key, projects, root).
    pub fn member_key_count(&self, meter: u32) -> Option<u64> {
        self.lock().graph.member_key_count(meter)
    }

    /// Names (with epochs) of every key `meter` is entitled to now.
    pub fn entitled_key_names(&self, meter: u32) -> Vec<String> {
        self.lock()
            .graph
            .entitled_keys(meter)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Keys the server stores.
    pub fn server_keys(&self) -> u64 {
        self.lock().graph.server_keys()
    }

    /// Enrolments accepted and refused so far.
    pub fn enrolments(&self) -> (u64, u64) {
        let g = self.lock();
        (g.counters.enrolled, g.counters.enrol_refused.values().sum())
    }

    fn refuse(map: &mut BTreeMap<String, u64>, r: &Refusal) {
        *map.entry(r.kind.to_string()).or_insert(0) += 1;
    }

    fn on_enrol(&self, interest: &Interest) -> Data {
        let (content, nack) = match self.enrol(interest) {
            Ok((rep, repeated)) => {
                if !repeated {
                    self.lock().counters.enrolled += 1;
                }
                (rep.encode(), false)
            }
            Err(r) => {
                Self::refuse(&mut self.lock().counters.enrol_refused, &r);
                tracing::info!(
                    "enrolment {} refused ({}): {}",
                    interest.name,
                    r.kind,
                    r.why
                );
                (Bytes::from(format!("{}: {}", r.kind, r.why)), true)
            }
        };
        let mut d = Data::new(interest.name.clone(), content);
        d.meta_info.freshness_period_ms = Some(1_000);
        if nack {
            d.meta_info.content_type = CONTENT_TYPE_NACK;
        }
        d
    }

    /// The meter id after `base` in `name`.
    fn meter_id(base: &Name, name: &Name) -> std::result::Result<u32, Refusal> {
        let bad = |why: &str| Refusal::new("malformed", 400, why);
        let c = name
            .get(base.len())
            .ok_or_else(|| bad("meter id missing"))?;
        let s = std::str::from_utf8(c.value()).map_err(|_| bad("meter id is not a number"))?;
        let id: u32 = s.parse().map_err(|_| bad("meter id is not a number"))?;
        if id.to_string() != s {
            return Err(bad("meter id is not in canonical decimal form"));
        }
        Ok(id)
    }

    /// Replay check and durable replay records, so a restart does not reopen the window.
    /// Replay check. The records are written to the state database by
    /// [`KmsService::flush_replay`] (every epoch and every daemon tick), not per Interest: they
    /// hold up to 65,536 nonces. What a crash can forget is the last tick's records, and every
    /// command is safe to repeat (an entitlement sets the same set, a revocation or leave of a
    /// meter that already left is refused, an enrolment of an enrolled meter is refused).
    fn check_replay(st: &mut State, interest: &Interest) -> std::result::Result<(), Refusal> {
        st.replay
            .check_interest(interest, now_ms())
            .map_err(|e| Refusal::from(AmiError::from(e)))?;
        st.replay_dirty = true;
        Ok(())
    }

    /// Writes the replay records if they changed since the last write.
    pub fn flush_replay(&self) -> Result<()> {
        let mut st = self.lock();
        if !st.replay_dirty {
            return Ok(());
        }
        let bytes = st.replay.to_bytes();
        st.store.set_meta("replay", &bytes)?;
        st.replay_dirty = false;
        Ok(())
    }

    /// Handles one enrolment; the flag says whether it repeated one answered before.
    fn enrol(&self, interest: &Interest) -> std::result::Result<(EnrolReply, bool), Refusal> {
        let names = &self.cfg.names;
        let id = Self::meter_id(&names.enrol_prefix(), &interest.name)?;
        let params = interest
            .app_parameters
            .clone()
            .ok_or_else(|| Refusal::new("malformed", 400, "no ApplicationParameters"))?;
        let req = EnrolRequest::decode(params)?;
        let cert = Certificate::decode(req.certificate.clone()).map_err(AmiError::from)?;
        if cert.identity() != names.meter(id) {
            return Err(Refusal::new(
                "not-authorised",
                403,
                "the enclosed certificate is not this meter's",
            ));
        }
        self.trust.add_certificate(cert);
        // Signature, trust rule (meter X enrols only as X), chain and validity, then replay
        // fields: all before any key agreement, so an unauthenticated Interest costs no X25519.
        self.trust.verify_interest(interest)?;
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(Refusal::new("unavailable", 503, f.clone()));
        }
        let repeated = st
            .answered
            .get(&id)
            .filter(|(key, _, _)| *key == req.x25519)
            .map(|(_, reply, _)| reply.clone())
            .filter(|_| st.graph.is_member(id) || st.staged_keys.contains_key(&id));
        if let Err(r) = Self::check_replay(&mut st, interest) {
            // A retransmitted copy of an accepted request (its answer lost): the same answer.
            // It is authenticated, and says nothing its first answer did not.
            return match repeated {
                Some(reply) if r.kind == "replay" => {
                    st.counters.enrol_repeated += 1;
                    Ok((reply, true))
                }
                _ => Err(r),
            };
        }
        if st.revoked.contains_key(&id) {
            return Err(Refusal::new(
                "revoked",
                403,
                format!("meter {id} is revoked"),
            ));
        }
        let entitled = st.entitlements.get(&id).cloned().unwrap_or_default();
        if let Some(p) = req.projects.iter().find(|p| !entitled.contains(p)) {
            return Err(Refusal::new(
                "not-entitled",
                403,
                format!("meter {id} is not entitled to DR project {p:?}"),
            ));
        }
        if let Some(reply) = repeated {
            // The same enrolment again (its answer was lost): the same answer, so the meter
            // derives the user key the KMS holds. Authenticated and replay-checked above.
            st.counters.enrol_repeated += 1;
            return Ok((reply, true));
        }
        if st.graph.is_member(id) || st.staged_keys.contains_key(&id) {
            return Err(Refusal::new(
                "already-enrolled",
                409,
                format!("meter {id} is already enrolled; its keys continue"),
            ));
        }
        let eph = EphemeralAgreement::generate();
        let kms_public = eph.public_key();
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let user_key = eph
            .agree(
                Role::Responder,
                &names.kms(),
                &names.meter(id),
                &req.x25519,
                &salt,
            )
            .map_err(AmiError::from)?;
        let projects: Vec<&str> = entitled.iter().map(String::as_str).collect();
        st.graph
            .stage_join(id, &projects, user_key.duplicate())
            .map_err(AmiError::from)?;
        st.ops.push(Op::Join {
            meter: id,
            key: Zeroizing::new(*user_key.as_bytes()),
            projects: entitled.clone(),
        });
        let pending = PendingJoin {
            meter: id,
            user_key: Zeroizing::new(*user_key.as_bytes()),
            projects: entitled.clone(),
        };
        if let Err(e) = st.store.put_pending(&pending, now_us()) {
            // Memory is ahead of disk now: stop accepting work (a restart resumes from disk).
            let why = format!("enrolment of meter {id} could not be made durable: {e}");
            st.failed = Some(why.clone());
            return Err(Refusal::new("state", 500, why));
        }
        st.staged_keys.insert(id, user_key);
        let epoch = st.graph.epoch() + 1;
        let reply = EnrolReply {
            x25519: kms_public,
            salt,
            epoch,
        };
        let now = Instant::now();
        if st.answered.len() >= 4096 {
            st.answered
                .retain(|_, (_, _, at)| now.duration_since(*at) < ENROL_ANSWER_KEPT);
        }
        st.answered.insert(id, (req.x25519, reply.clone(), now));
        Ok((reply, false))
    }

    fn on_command(&self, interest: &Interest) -> Data {
        let st = match self.command(interest) {
            Ok(s) => {
                self.lock().counters.commands += 1;
                s
            }
            Err(r) => {
                Self::refuse(&mut self.lock().counters.command_refused, &r);
                tracing::info!("command {} refused ({}): {}", interest.name, r.kind, r.why);
                Status {
                    code: r.code,
                    text: format!("{}: {}", r.kind, r.why),
                    epoch: None,
                }
            }
        };
        status_data(&interest.name, &st)
    }

    fn command(&self, interest: &Interest) -> std::result::Result<Status, Refusal> {
        let names = &self.cfg.names;
        let base = names.kms().append_generic(Bytes::from_static(b"cmd"));
        let verb = interest
            .name
            .get(base.len())
            .map(|c| String::from_utf8_lossy(c.value()).into_owned())
            .ok_or_else(|| Refusal::new("malformed", 400, "no command verb"))?;
        // The trust rules bind each verb to its principal: entitle to the DR operator, revoke
        // and leave to the utility operator.
        let v = self.trust.verify_interest(interest)?;
        let by = v.signer.to_string();
        let params = interest
            .app_parameters
            .clone()
            .ok_or_else(|| Refusal::new("malformed", 400, "no ApplicationParameters"))?;
        match verb.as_str() {
            "entitle" => {
                let a = wire::decode_assignments(params)?;
                let mut st = self.lock();
                Self::check_replay(&mut st, interest)?;
                self.entitle_locked(&mut st, &a, &by)
            }
            "revoke" => {
                let m = wire::decode_meter(params)?;
                {
                    let mut st = self.lock();
                    Self::check_replay(&mut st, interest)?;
                }
                let e = self.revoke_by(m, "revocation", &by)?;
                Ok(Status {
                    code: 200,
                    text: format!("meter {m} revoked"),
                    epoch: e,
                })
            }
            "leave" => {
                let m = wire::decode_meter(params)?;
                let mut st = self.lock();
                Self::check_replay(&mut st, interest)?;
                Self::stage_leave_locked(&mut st, m)?;
                Ok(Status {
                    code: 200,
                    text: format!("meter {m} leaves"),
                    epoch: Some(st.graph.epoch() + 1),
                })
            }
            other => Err(Refusal::new(
                "malformed",
                404,
                format!("unknown command {other:?}"),
            )),
        }
    }

    /// Sets the project sets of meters, as the DR operator decided (`by`). Members whose set
    /// changes move at the next commit; others join with their set when they enrol.
    pub fn entitle(&self, assignments: &[(u32, Vec<String>)], by: &str) -> Result<Status> {
        let mut st = self.lock();
        self.entitle_locked(&mut st, assignments, by)
            .map_err(|r| AmiError::Refused {
                what: "entitlement".into(),
                code: r.code,
                why: r.why,
            })
    }

    fn entitle_locked(
        &self,
        st: &mut State,
        assignments: &[(u32, Vec<String>)],
        by: &str,
    ) -> std::result::Result<Status, Refusal> {
        for (m, ps) in assignments {
            if let Some(p) = ps.iter().find(|p| !self.cfg.projects.contains(p)) {
                return Err(Refusal::new(
                    "unknown-project",
                    404,
                    format!("meter {m}: unknown DR project {p:?}"),
                ));
            }
        }
        // Stage the moves in memory, then write every entitlement and staged move in one
        // transaction: a crash leaves either all of the command or none of it.
        let mut rows = Vec::with_capacity(assignments.len());
        let mut moves = Vec::new();
        let mut skipped = Vec::new();
        for (m, ps) in assignments {
            let ps = sorted(ps);
            if st.graph.is_member(*m) && !st.staged_keys.contains_key(m) {
                let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                note_move(st, self.cfg.names.prefix_str(), *m);
                match st.graph.stage_move(*m, &refs) {
                    Ok(()) => {
                        st.ops.push(Op::Move(*m, ps.clone()));
                        moves.push((*m, ps.clone()));
                    }
                    Err(amicn_kms::graph::GraphError::SameProjects { .. }) => {}
                    Err(e) => {
                        // Already leaving or moving in this epoch: its entitlement still
                        // applies from its next change on.
                        skipped.push(format!("meter {m}: {e}"));
                    }
                }
            }
            rows.push((*m, ps));
        }
        if let Err(e) = st.store.entitle(&rows, &moves, by, now_us()) {
            let why = format!("entitlements could not be made durable: {e}");
            st.failed = Some(why.clone());
            return Err(Refusal::new("state", 500, why));
        }
        for (m, ps) in rows {
            st.entitlements.insert(m, ps);
        }
        Ok(Status {
            code: 200,
            text: format!(
                "{} meters entitled, {} move at the next epoch{}",
                assignments.len(),
                moves.len(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; not moved now: {}", skipped.join(", "))
                }
            ),
            epoch: Some(st.graph.epoch() + 1),
        })
    }

    fn on_keys(&self, interest: &Interest) -> Data {
        match self.keys_for(interest) {
            Ok(d) => {
                self.lock().counters.key_requests += 1;
                d
            }
            Err(r) => {
                Self::refuse(&mut self.lock().counters.key_refused, &r);
                tracing::info!(
                    "key request {} refused ({}): {}",
                    interest.name,
                    r.kind,
                    r.why
                );
                let mut d = status_data(
                    &interest.name,
                    &Status {
                        code: r.code,
                        text: format!("{}: {}", r.kind, r.why),
                        epoch: None,
                    },
                );
                d.meta_info.content_type = CONTENT_TYPE_NACK;
                d
            }
        }
    }

    fn keys_for(&self, interest: &Interest) -> std::result::Result<Data, Refusal> {
        let names = &self.cfg.names;
        let base = names.kms().append_generic(Bytes::from_static(b"svc"));
        let role = interest
            .name
            .get(base.len())
            .map(|c| String::from_utf8_lossy(c.value()).into_owned())
            .ok_or_else(|| Refusal::new("malformed", 400, "no role"))?;
        // Rule: /<u>/ami/KMS/svc/<role>/... is signed only by /<u>/ami/<role>/KEY/...
        self.trust.verify_interest(interest)?;
        let params = interest
            .app_parameters
            .clone()
            .ok_or_else(|| Refusal::new("malformed", 400, "no ApplicationParameters"))?;
        let req = KeyRequest::decode(params)?;
        let mut st = self.lock();
        Self::check_replay(&mut st, interest)?;
        let (entries, next) = match (role.as_str(), req.kind.as_str()) {
            ("mdms", "readings") => Self::reading_keys(&st, names, req.next.unwrap_or(0))?,
            ("price", "broadcast") => (self.group_keys(&st, true)?, None),
            ("dr", "projects") => (self.group_keys(&st, false)?, None),
            (r, k) => {
                return Err(Refusal::new(
                    "not-entitled",
                    403,
                    format!("role {r:?} may not ask for {k:?} keys"),
                ));
            }
        };
        drop(st);
        let eph = EphemeralAgreement::generate();
        let kms_public = eph.public_key();
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let peer = names.role(&role);
        let k = eph
            .agree(Role::Responder, &names.kms(), &peer, &req.x25519, &salt)
            .map_err(AmiError::from)?;
        let plain = wire::encode_bundle(&entries, next);
        let sealed = EnvelopeKey::derive(
            &k,
            &names.service_keys(&role),
            Purpose::Other("service-keys"),
        )
        .seal(&interest.name, &plain)
        .map_err(AmiError::from)?;
        let rep = KeyReply {
            x25519: kms_public,
            salt,
            sealed,
        };
        // Answers are per request (the name carries the parameters digest): never cached long.
        let mut d = Data::new(interest.name.clone(), rep.encode());
        d.meta_info.freshness_period_ms = Some(1);
        Ok(d)
    }

    fn reading_keys(
        st: &State,
        names: &AmiNames,
        from: u64,
    ) -> std::result::Result<(Vec<KeyEntry>, Option<u64>), Refusal> {
        let prefix = names.prefix_str();
        let members = st.graph.member_ids();
        let mut out = Vec::new();
        let mut next = None;
        for m in members.into_iter().filter(|&m| u64::from(m) >= from) {
            if out.len() == KEYS_PER_PAGE {
                next = Some(u64::from(m));
                break;
            }
            let Some((uname, ukey)) = st
                .graph
                .entitled_keys(m)
                .into_iter()
                .find(|(n, _)| n.starts_with(&format!("{prefix}/ami/meter/{m}/")))
            else {
                continue;
            };
            let uname = Name::from_uri(&uname).map_err(AmiError::from)?;
            let current = uname.last().and_then(|c| c.as_version());
            let earlier = st
                .moved_from
                .get(&m)
                .into_iter()
                .flatten()
                .filter(|v| Some(**v) != current)
                .map(|v| uname.prefix(uname.len() - 1).append(Component::version(*v)));
            for name in std::iter::once(uname.clone()).chain(earlier) {
                let (rname, rkey) = reading_key(&ukey, &name).map_err(Refusal::from)?;
                out.push(KeyEntry {
                    name: rname,
                    key: Zeroizing::new(*rkey.as_bytes()),
                    meter: Some(m),
                    since_us: st.since.get(&m).copied(),
                });
            }
        }
        Ok((out, next))
    }

    fn group_keys(&self, st: &State, root: bool) -> std::result::Result<Vec<KeyEntry>, Refusal> {
        let found = self.current_group_keys(st).map_err(Refusal::from)?;
        Ok(found
            .into_iter()
            .filter(|(is_root, _, _)| *is_root == root)
            .map(|(_, n, k)| KeyEntry {
                name: n,
                key: Zeroizing::new(*k.as_bytes()),
                meter: None,
                since_us: None,
            })
            .collect())
    }

    /// The current broadcast key and project keys as `(is_root, name, key)`.
    fn current_group_keys(&self, st: &State) -> Result<Vec<(bool, Name, SymmetricKey)>> {
        let prefix = self.cfg.names.prefix_str();
        let members = st.graph.member_ids();
        let mut out = Vec::new();
        let mut want_root = true;
        let mut want: Vec<&String> = self.cfg.projects.iter().collect();
        for m in members {
            if !want_root && want.is_empty() {
                break;
            }
            for (n, k) in st.graph.entitled_keys(m) {
                if want_root && n.starts_with(&format!("{prefix}/ami/bcast/KEK/")) {
                    out.push((true, Name::from_uri(&n)?, k));
                    want_root = false;
                } else if let Some(i) = want
                    .iter()
                    .position(|p| n.starts_with(&format!("{prefix}/ami/dr/{p}/KEK/")))
                {
                    out.push((false, Name::from_uri(&n)?, k));
                    want.swap_remove(i);
                }
            }
        }
        Ok(out)
    }

    /// Rebuilds the in-process head-end key view from the graph.
    fn refresh_head_end(&self, st: &State) -> Result<()> {
        let prefix = self.cfg.names.prefix_str();
        let members = st.graph.member_ids();
        for &m in &members {
            if self.keys.has_member(m) {
                continue;
            }
            if let Some((uname, ukey)) = st
                .graph
                .entitled_keys(m)
                .into_iter()
                .find(|(n, _)| n.starts_with(&format!("{prefix}/ami/meter/{m}/")))
            {
                let (rname, rkey) = reading_key(&ukey, &Name::from_uri(&uname)?)?;
                let since = st.since.get(&m).copied().unwrap_or_else(now_us);
                self.keys.add_user(m, rname, rkey, since);
            }
        }
        for m in self.keys.active_meters().into_iter().map(|(m, _)| m) {
            if !st.graph.is_member(m) {
                self.keys.depart(m);
            }
        }
        for (&m, &at) in &st.revoked {
            self.keys.revoke_at(m, at);
        }
        let groups = self.current_group_keys(st)?;
        let mut root = None;
        let mut projects: HashMap<String, (Name, SymmetricKey)> = HashMap::new();
        for (is_root, n, k) in groups {
            if is_root {
                root = Some((n, k));
            } else if let Some(p) = self
                .cfg
                .projects
                .iter()
                .find(|p| n.to_string().starts_with(&format!("{prefix}/ami/dr/{p}/")))
            {
                projects.insert(p.clone(), (n, k));
            }
        }
        self.keys.set_root(root);
        for p in &self.cfg.projects {
            self.keys.set_project(p, projects.remove(p));
        }
        Ok(())
    }

    fn stage_leave_locked(st: &mut State, meter: u32) -> std::result::Result<(), Refusal> {
        st.graph.stage_leave(meter).map_err(AmiError::from)?;
        st.ops.push(Op::Leave(meter));
        st.store
            .put_staged(meter, &StagedOp::Leave)
            .map_err(|e| Refusal::new("state", 500, e.to_string()))
    }

    /// Stages the departure of `meter` for the next commit (ordinary churn waits for the batch).
    pub fn stage_leave(&self, meter: u32) -> Result<()> {
        let mut st = self.lock();
        Self::stage_leave_locked(&mut st, meter).map_err(|r| AmiError::Refused {
            what: format!("leave of meter {meter}"),
            code: r.code,
            why: r.why,
        })
    }

    /// Stages a periodic refresh of every project key and/or the broadcast key for the next
    /// commit (fresh keys even without membership changes, bounding how long one key is used).
    pub fn stage_refresh(&self, projects: bool, root: bool) {
        let mut st = self.lock();
        st.graph.stage_refresh(projects, root);
        st.ops.push(Op::Refresh { projects, root });
    }

    /// Commits everything staged as one epoch and publishes it.
    pub fn commit_epoch(&self, label: &str) -> Result<EpochRecord> {
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(AmiError::protocol(self.cfg.names.kms(), f.clone()));
        }
        let before = summary(&st.graph);
        let key = self.creds.key.clone();
        let signer = move |b: &[u8]| key.sign(b).to_vec();
        let rekey = st.graph.commit(&signer);
        self.finish(&mut st, rekey, label, before, false)
    }

    /// Revokes `meter` at once: it leaves every group in an immediate commit (together with
    /// anything staged) and may never enrol again, also after a restart.
    pub fn revoke(&self, meter: u32, label: &str) -> Result<EpochRecord> {
        let by = self.creds.key.identity().to_string();
        match self.revoke_inner(meter, label, &by) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(AmiError::NotJoined { meter }),
            Err(r) => Err(AmiError::Refused {
                what: format!("revocation of meter {meter}"),
                code: r.code,
                why: r.why,
            }),
        }
    }

    fn revoke_by(
        &self,
        meter: u32,
        label: &str,
        by: &str,
    ) -> std::result::Result<Option<u32>, Refusal> {
        Ok(self.revoke_inner(meter, label, by)?.map(|r| r.epoch))
    }

    fn revoke_inner(
        &self,
        meter: u32,
        label: &str,
        by: &str,
    ) -> std::result::Result<Option<EpochRecord>, Refusal> {
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(Refusal::new("unavailable", 503, f.clone()));
        }
        let at = now_us();
        st.store
            .add_revocation(meter, at, by)
            .map_err(|e| Refusal::new("state", 500, e.to_string()))?;
        st.revoked.entry(meter).or_insert(at);
        self.keys.revoke_at(meter, at);
        let was_member = st.graph.is_member(meter) || st.staged_keys.contains_key(&meter);
        let before = summary(&st.graph);
        let key = self.creds.key.clone();
        let signer = move |b: &[u8]| key.sign(b).to_vec();
        if !was_member {
            // Not in the graph: the revocation list alone records it (published with an epoch).
            st.graph.stage_refresh(false, false);
            if !st.graph.has_staged() {
                self.publish_revocations(&mut st)
                    .map_err(|e| Refusal::new("state", 500, e.to_string()))?;
                return Ok(None);
            }
        }
        let rekey = if was_member {
            let r = st.graph.revoke(meter, &signer).map_err(AmiError::from)?;
            st.ops.push(Op::Revoke(meter));
            r
        } else {
            st.graph.commit(&signer)
        };
        st.staged_keys.remove(&meter);
        let rec = self
            .finish(&mut st, rekey, label, before, true)
            .map_err(Refusal::from)?;
        Ok(Some(rec))
    }

    /// Publishes the revocation list outside an epoch (a revoked meter that was not a member):
    /// it is versioned with the current epoch and a counter, durable before it is served.
    fn publish_revocations(&self, st: &mut State) -> Result<()> {
        let version = u64::from(st.graph.epoch()) << 20 | (st.revoked.len() as u64 & 0xF_FFFF);
        let wires = self.revocation_list(st, version)?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = wires
            .iter()
            .map(|w| Data::decode(w.clone()).map(|d| (d.name.to_wire().to_vec(), w.to_vec())))
            .collect::<std::result::Result<_, _>>()?;
        st.store.put_published(st.graph.epoch(), &rows)?;
        for w in wires {
            self.publisher.put_wire(w)?;
        }
        Ok(())
    }

    fn revocation_list(&self, st: &State, version: u64) -> Result<Vec<Bytes>> {
        let list: Vec<(u32, u64)> = st.revoked.iter().map(|(m, t)| (*m, *t)).collect();
        let prefix = self
            .cfg
            .names
            .revocations_prefix()
            .append(amicn_tlv::Component::version(version));
        segment_object(
            &prefix,
            &wire::encode_revocations(&list),
            self.cfg.manifest_freshness_ms,
            &self.creds.key,
        )
    }

    fn finish(
        &self,
        st: &mut State,
        rekey: Rekey,
        label: &str,
        before: Vec<SubgroupInfo>,
        revocation: bool,
    ) -> Result<EpochRecord> {
        let names = &self.cfg.names;
        let epoch = rekey.manifest.epoch;

        // 1. Build every Data of the epoch.
        let mut wraps = Vec::with_capacity(rekey.wraps.len());
        let mut digests = Vec::with_capacity(rekey.wraps.len());
        let mut wires: Vec<Bytes> = Vec::with_capacity(rekey.wraps.len() + 4);
        let mut wraps_wire_bytes = 0;
        for w in &rekey.wraps {
            let name = Name::from_uri(&w.name)?;
            let mut d = Data::new(name.clone(), Bytes::copy_from_slice(&w.payload));
            d.meta_info.freshness_period_ms = Some(self.cfg.wrap_freshness_ms);
            let wire = sign_data_digest(&mut d)?;
            wraps_wire_bytes += wire.len();
            let digest: [u8; 32] = amicn_tlv::Data::decode(wire.clone())?.implicit_digest();
            digests.push((name.clone(), digest));
            wires.push(wire);
            wraps.push(name);
        }
        let manifest = names.manifest(epoch);
        let content = wire::encode_manifest(&rekey.signed.bytes, &rekey.signed.signature, &digests);
        let segments = segment_object(
            &manifest,
            &content,
            self.cfg.manifest_freshness_ms,
            &self.creds.key,
        )?;
        let manifest_segments = segments.len();
        let manifest_wire_bytes = segments.iter().map(Bytes::len).sum();
        // Wraps first, so a meter that sees the manifest finds every wrap.
        wires.extend(segments);
        if revocation || !rekey.manifest.departs.is_empty() && !st.revoked.is_empty() {
            wires.extend(self.revocation_list(st, u64::from(epoch) << 20)?);
        }

        // 2. Make the epoch durable before anything of it is served.
        let joins: Vec<u32> = rekey.manifest.joins.iter().map(|j| j.meter).collect();
        let now = now_us();
        for &m in &joins {
            st.since.entry(m).or_insert(now);
        }
        for m in &rekey.manifest.departs {
            st.since.remove(m);
        }
        let joined: Vec<(u32, u64)> = joins
            .iter()
            .map(|m| (*m, st.since.get(m).copied().unwrap_or(now)))
            .collect();
        let mut hasher = Sha256::new();
        let mut rows = Vec::with_capacity(wires.len());
        for w in &wires {
            hasher.update(w);
            let d = Data::decode(w.clone())?;
            rows.push((d.name.to_wire().to_vec(), w.to_vec()));
        }
        let sum = EpochSummary {
            epoch,
            label: label.to_string(),
            joins: joins.len(),
            departs: rekey.manifest.departs.len(),
            unicast_wraps: rekey.stats.unicast_wraps,
            multicast_wraps: rekey.stats.multicast_wraps,
            broadcast_wraps: rekey.stats.broadcast_wraps,
            tree_wraps: rekey.stats.tree_wraps,
            project_wraps: rekey.stats.project_wraps,
            root_wraps: rekey.stats.root_wraps,
            joined: joins.clone(),
            departed: rekey.manifest.departs.clone(),
            before: before.clone(),
            after: summary(&st.graph),
            manifest_segments,
            wire_bytes: wires.iter().map(Bytes::len).sum(),
            content_digest: hex_lower(&hasher.finalize()),
            committed_us: now,
        };
        let summary_json =
            serde_json::to_string(&sum).map_err(|e| AmiError::Config(e.to_string()))?;
        let entry = kms_journal::encode(&st.seed, &rekey.signed.bytes, &st.ops);
        let compact = st.journal_len + 1 >= JOURNAL_COMPACT_EVERY;
        let mut image =
            Zeroizing::new(compact.then(|| amicn_kms::persist::encode_graph(&st.graph)));
        let r = st.store.commit_epoch(&EpochWrite {
            epoch,
            graph_image: image.as_deref(),
            journal_entry: &entry,
            published: &rows,
            joined: &joined,
            departed: &rekey.manifest.departs,
            summary_json: &summary_json,
        });
        if let Some(img) = image.as_mut() {
            img.iter_mut().for_each(|b| *b = 0);
        }
        if let Err(e) = r {
            let why = format!("epoch {epoch} could not be made durable: {e}");
            tracing::error!("{why}");
            st.failed = Some(why);
            return Err(e);
        }
        st.counters.epochs_committed += 1;
        if st.replay_dirty {
            let b = st.replay.to_bytes();
            if st.store.set_meta("replay", &b).is_ok() {
                st.replay_dirty = false;
            }
        }
        st.ops.clear();
        st.journal_len = if compact { 0 } else { st.journal_len + 1 };
        // The next epoch's keys come from a fresh seed, which its journal entry records.
        st.seed = fresh_seed();
        let seed = *st.seed;
        st.graph.reseed(seed);

        // 3. Serve it.
        for w in wires {
            self.publisher.put_wire(w)?;
        }
        for &m in &joins {
            st.staged_keys.remove(&m);
        }
        let mut forgot = false;
        for m in &rekey.manifest.departs {
            st.staged_keys.remove(m);
            self.keys.depart(*m);
            // A departed meter that enrols again gets a new user key: its old versions go.
            forgot |= st.moved_from.remove(m).is_some();
        }
        if forgot && let Ok(b) = serde_json::to_vec(&st.moved_from) {
            let _ = st.store.set_meta("moved_from", &b);
        }
        self.refresh_head_end(st)?;

        let rec = EpochRecord {
            epoch,
            label: label.to_string(),
            stats: rekey.stats,
            joins,
            departs: rekey.manifest.departs.clone(),
            wraps,
            wrap_uris: rekey.wraps.iter().map(|w| w.name.clone()).collect(),
            manifest,
            manifest_segments,
            manifest_wire_bytes,
            wraps_wire_bytes,
            before,
            after: summary(&st.graph),
        };
        st.history.push(rec.clone());
        Ok(rec)
    }
}

/// The version of meter `m`'s current user key name (`.../meter/<m>/KEK/v=<e>`).
fn user_key_version(st: &State, prefix: &str, m: u32) -> Option<u64> {
    let own = format!("{prefix}/ami/meter/{m}/");
    let (uname, _) = st
        .graph
        .entitled_keys(m)
        .into_iter()
        .find(|(n, _)| n.starts_with(&own))?;
    Name::from_uri(&uname).ok()?.last()?.as_version()
}

/// Before a move: remembers the meter's current leaf version (see `State::moved_from`).
fn note_move(st: &mut State, prefix: &str, m: u32) {
    let Some(v) = user_key_version(st, prefix, m) else {
        return;
    };
    let e = st.moved_from.entry(m).or_default();
    if e.contains(&v) {
        return;
    }
    e.push(v);
    if e.len() > MOVED_VERSIONS_KEPT {
        e.remove(0);
    }
    match serde_json::to_vec(&st.moved_from) {
        Ok(b) => {
            if let Err(e) = st.store.set_meta("moved_from", &b) {
                tracing::warn!("earlier leaf versions could not be saved: {e}");
            }
        }
        Err(e) => tracing::warn!("earlier leaf versions could not be encoded: {e}"),
    }
}

fn hex_lower(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Subgroup label of a project set (for reports).
pub fn label_of(projects: &[String]) -> String {
    let mut v: Vec<&str> = projects.iter().map(String::as_str).collect();
    v.sort_unstable();
    subgroup_label(&v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use amicn_face::client::ClientOptions;

    use super::*;
    use crate::net::signature_time;
    use crate::pki::Pki;

    fn status(d: &Data) -> Status {
        Status::decode(d.content.clone()).unwrap()
    }

    /// The request path without a forwarder: what `start` registers for the three prefixes is
    /// `on_interest`, so driving it directly is what the network sees (minus the signature).
    #[tokio::test]
    async fn on_interest_answers_commands_enrolments_and_key_requests() {
        let names = AmiNames::new("/u").unwrap();
        let pki = Pki::new(&names).unwrap();
        // Never driven: nothing here goes through the connection.
        let client = Client::from_stream(tokio::io::duplex(1 << 12).0, ClientOptions::default());
        let trust = Trust::new(&names, pki.anchor(), &client).unwrap();
        let dr = pki.issue(&names.role("dr")).unwrap();
        let operator = pki.issue(&names.role("operator")).unwrap();
        let mdms = pki.issue(&names.role("mdms")).unwrap();
        for c in [&dr, &operator, &mdms] {
            trust.add_certificate(c.cert.clone());
        }
        let creds = pki.issue(&names.kms()).unwrap();
        let publisher = Publisher::new(&client, creds.key.clone(), Some(classify));
        let cfg = KmsConfig::new(names.clone(), vec!["p1".into()]);
        let kms = KmsService::open(cfg, creds, trust, publisher).unwrap();

        let mut entitle = Interest::new(names.command("entitle"));
        entitle.app_parameters = Some(wire::encode_assignments(&[(7, vec!["p1".into()])]));
        dr.key
            .sign_interest(&mut entitle, signature_time())
            .unwrap();
        let d = kms.on_interest(&entitle).unwrap();
        assert_eq!(d.name, entitle.name);
        assert_eq!(status(&d).code, 200);
        // The same signed command again is a replay, and changes nothing.
        let again = status(&kms.on_interest(&entitle).unwrap());
        assert_eq!((again.code, again.text.starts_with("replay")), (403, true));

        // Revocation is the utility operator's: the DR operator's signature is refused.
        let mut revoke = Interest::new(names.command("revoke"));
        revoke.app_parameters = Some(wire::encode_meter(7));
        dr.key.sign_interest(&mut revoke, signature_time()).unwrap();
        assert_eq!(status(&kms.on_interest(&revoke).unwrap()).code, 403);
        assert!(kms.revoked().is_empty());

        let meter = pki.issue(&names.meter(7)).unwrap();
        let mut enrol = Interest::new(names.enrol(7));
        enrol.app_parameters = Some(
            EnrolRequest {
                x25519: EphemeralAgreement::generate().public_key(),
                projects: vec!["p1".into()],
                certificate: meter.cert.to_wire(),
            }
            .encode(),
        );
        meter
            .key
            .sign_interest(&mut enrol, signature_time())
            .unwrap();
        let d = kms.on_interest(&enrol).unwrap();
        assert_ne!(d.meta_info.content_type, CONTENT_TYPE_NACK);
        assert_eq!(
            EnrolReply::decode(d.content).unwrap().epoch,
            kms.epoch() + 1
        );
        assert!(kms.has_staged());
        kms.commit_epoch("test").unwrap();
        assert_eq!(kms.members(), vec![7]);

        let mut keys = Interest::new(names.service_keys("mdms"));
        keys.app_parameters = Some(
            KeyRequest {
                x25519: EphemeralAgreement::generate().public_key(),
                kind: "readings".into(),
                next: None,
            }
            .encode(),
        );
        mdms.key.sign_interest(&mut keys, signature_time()).unwrap();
        let d = kms.on_interest(&keys).unwrap();
        assert_ne!(d.meta_info.content_type, CONTENT_TYPE_NACK);
        assert!(KeyReply::decode(d.content).is_ok());

        let c = kms.counters();
        assert_eq!((c.commands, c.enrolled, c.key_requests), (1, 1, 1));
        assert_eq!(c.command_refused.values().sum::<u64>(), 2);
        // Outside the request prefixes: no answer (published objects come from the store).
        assert!(kms.on_interest(&Interest::new(names.manifest(1))).is_none());
    }
}
