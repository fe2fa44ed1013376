//! The KMS service: owns the key-graph server, admits meters, runs joins, leaves and
//! revocations as batch rekeys per epoch, and publishes every rekey as Data.
//!
//! Enrolment: a meter sends a signed Interest `/<u>/ami/KMS/enrol/<id>/<params-digest>` whose
//! ApplicationParameters carry its ephemeral X25519 key, its DR projects and its certificate.
//! The KMS checks the signature, the trust rule (meter X may only enrol as X) and replay fields
//! before doing any key agreement, derives the user key by X25519 + HKDF, stages the join and
//! answers with its own ephemeral key, the salt and the epoch in which the join takes effect.
//!
//! Each commit publishes one signed manifest `/<u>/ami/KMS/rekey/<epoch>` (Ed25519 over the Data,
//! plus the key graph's own signature over the manifest bytes) and the immutable wrap objects
//! `.../KEK/v=<e>/ENCRYPTED-BY/<key>`, DigestSha256-signed: a wrap is authenticated by its AEAD
//! tag and by the key commitment in the signed manifest, so one signature covers a whole rekey.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use amicn_face::client::Client;
use amicn_kms::SymmetricKey;
use amicn_kms::cert::Certificate;
use amicn_kms::establish::{EphemeralAgreement, Role};
use amicn_kms::graph::names::{KeyRef, key_name, label_projects};
use amicn_kms::graph::{GraphConfig, KeyGraph, Rekey, RekeyStats};
use amicn_kms::identity::sign_data_digest;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use rand::Rng;

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::{Publisher, now_ms};
use crate::pki::{Credentials, Trust};
use crate::wire::{self, EnrolReply, EnrolRequest};

/// ContentType NACK (application-level negative answer).
const CONTENT_TYPE_NACK: u64 = 3;

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
}

impl KmsConfig {
    /// Binary trees, one-hour wraps, one-second manifests.
    pub fn new(names: AmiNames, projects: Vec<String>) -> Self {
        KmsConfig {
            names,
            degree: 2,
            projects,
            wrap_freshness_ms: 3_600_000,
            manifest_freshness_ms: 1_000,
        }
    }
}

/// One subgroup of the key graph (meters with the same DR projects).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Name of the manifest.
    pub manifest: Name,
    /// Encoded size of the manifest Data.
    pub manifest_wire_bytes: usize,
    /// Encoded size of all wrap Data.
    pub wraps_wire_bytes: usize,
    /// Subgroups before the commit.
    pub before: Vec<SubgroupInfo>,
    /// Subgroups after the commit.
    pub after: Vec<SubgroupInfo>,
}

struct State {
    graph: KeyGraph,
    user_keys: HashMap<u32, SymmetricKey>,
    projects_of: HashMap<u32, Vec<String>>,
    replay: ReplayChecker,
    history: Vec<EpochRecord>,
    enrolled: u64,
    refused: u64,
}

/// The KMS service (see the module documentation).
pub struct KmsService {
    cfg: KmsConfig,
    creds: Credentials,
    trust: Arc<Trust>,
    keys: Arc<HeadEndKeys>,
    publisher: Publisher,
    state: Mutex<State>,
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

impl KmsService {
    /// Builds the key graph, registers `/<u>/ami/KMS`, `/<u>/ami/bcast` and every
    /// `/<u>/ami/dr/<p>/KEK` with the forwarder on `client`, and starts answering.
    pub async fn start(
        cfg: KmsConfig,
        creds: Credentials,
        trust: Arc<Trust>,
        client: &Client,
    ) -> Result<Arc<Self>> {
        let mut graph = KeyGraph::new(GraphConfig::new(cfg.names.prefix_str(), cfg.degree))?;
        for p in &cfg.projects {
            graph.add_project(p)?;
        }
        let publisher = Publisher::new(client, creds.key.clone(), Some(classify));
        publisher.put_wire(creds.cert.to_wire())?;
        let names = cfg.names.clone();
        let projects = cfg.projects.clone();
        let svc = Arc::new(KmsService {
            cfg,
            creds,
            trust,
            keys: Arc::new(HeadEndKeys::default()),
            publisher: publisher.clone(),
            state: Mutex::new(State {
                graph,
                user_keys: HashMap::new(),
                projects_of: HashMap::new(),
                replay: ReplayChecker::new(ReplayConfig::default()),
                history: Vec::new(),
                enrolled: 0,
                refused: 0,
            }),
        });
        let weak = Arc::downgrade(&svc);
        publisher.on_interest(
            names.enrol_prefix(),
            Arc::new(move |i: &Interest| weak.upgrade().map(|s| s.on_enrol(i))),
        );
        publisher.serve(names.kms()).await?;
        publisher.serve(names.bcast_prefix()).await?;
        for p in &projects {
            publisher.serve(names.dr_kek_prefix(p)).await?;
        }
        Ok(svc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys shared with the head-end roles.
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

    /// Every committed epoch so far.
    pub fn history(&self) -> Vec<EpochRecord> {
        self.lock().history.clone()
    }

    /// Subgroups of the key graph now.
    pub fn subgroups(&self) -> Vec<SubgroupInfo> {
        summary(&self.lock().graph)
    }

    /// Keys `meter` is entitled to hold, counted (tree path with user key, projects, root).
    pub fn member_key_count(&self, meter: u32) -> Option<u64> {
        self.lock().graph.member_key_count(meter)
    }

    /// Keys the server stores.
    pub fn server_keys(&self) -> u64 {
        self.lock().graph.server_keys()
    }

    /// Enrolments accepted and refused so far.
    pub fn enrolments(&self) -> (u64, u64) {
        let g = self.lock();
        (g.enrolled, g.refused)
    }

    fn on_enrol(&self, interest: &Interest) -> Data {
        let (content, nack) = match self.enrol(interest) {
            Ok(rep) => {
                self.lock().enrolled += 1;
                (rep.encode(), false)
            }
            Err(e) => {
                self.lock().refused += 1;
                tracing::info!("enrolment {} refused: {e}", interest.name);
                (Bytes::from(e.to_string()), true)
            }
        };
        let mut d = Data::new(interest.name.clone(), content);
        d.meta_info.freshness_period_ms = Some(1_000);
        if nack {
            d.meta_info.content_type = CONTENT_TYPE_NACK;
        }
        d
    }

    fn enrol(&self, interest: &Interest) -> Result<EnrolReply> {
        let names = &self.cfg.names;
        let bad = |why: &str| AmiError::protocol(&interest.name, why);
        let base = names.enrol_prefix();
        if !base.is_prefix_of(&interest.name) {
            return Err(bad("not an enrolment name"));
        }
        let id_c = interest
            .name
            .get(base.len())
            .ok_or_else(|| bad("meter id missing"))?;
        let id: u32 = std::str::from_utf8(id_c.value())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("meter id is not a number"))?;
        let params = interest
            .app_parameters
            .clone()
            .ok_or_else(|| bad("no ApplicationParameters"))?;
        let req = EnrolRequest::decode(params)?;
        let cert = Certificate::decode(req.certificate.clone())?;
        if cert.identity() != names.meter(id) {
            return Err(bad("the enclosed certificate is not this meter's"));
        }
        self.trust.add_certificate(cert);
        // Signature, trust rule (meter X enrols only as X) and chain, then replay fields: all
        // before any key agreement, so an unauthenticated Interest costs no X25519.
        self.trust.verify_interest(interest)?;
        let mut st = self.lock();
        st.replay.check_interest(interest, now_ms())?;
        for p in &req.projects {
            if !self.cfg.projects.contains(p) {
                return Err(bad(&format!("unknown DR project {p:?}")));
            }
        }
        let eph = EphemeralAgreement::generate();
        let kms_public = eph.public_key();
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let user_key = eph.agree(
            Role::Responder,
            &names.kms(),
            &names.meter(id),
            &req.x25519,
            &salt,
        )?;
        let projects: Vec<&str> = req.projects.iter().map(String::as_str).collect();
        st.graph.stage_join(id, &projects, user_key.duplicate())?;
        st.user_keys.insert(id, user_key);
        st.projects_of.insert(id, req.projects.clone());
        let epoch = st.graph.epoch() + 1;
        Ok(EnrolReply {
            x25519: kms_public,
            salt,
            epoch,
        })
    }

    /// Stages the departure of `meter` for the next commit (ordinary churn waits for the batch).
    pub fn stage_leave(&self, meter: u32) -> Result<()> {
        Ok(self.lock().graph.stage_leave(meter)?)
    }

    /// Stages a periodic refresh of every project key and/or the broadcast key for the next
    /// commit (fresh keys even without membership changes, bounding how long one key is used).
    pub fn stage_refresh(&self, projects: bool, root: bool) {
        self.lock().graph.stage_refresh(projects, root);
    }

    /// Commits everything staged as one epoch and publishes it.
    pub fn commit_epoch(&self, label: &str) -> Result<EpochRecord> {
        let mut st = self.lock();
        let before = summary(&st.graph);
        let key = self.creds.key.clone();
        let signer = move |b: &[u8]| key.sign(b).to_vec();
        let rekey = st.graph.commit(&signer);
        self.finish(&mut st, rekey, label, before)
    }

    /// Revokes `meter` at once: it leaves every group in an immediate commit (together with
    /// anything staged) and may never enrol again.
    pub fn revoke(&self, meter: u32, label: &str) -> Result<EpochRecord> {
        let mut st = self.lock();
        let before = summary(&st.graph);
        let key = self.creds.key.clone();
        let signer = move |b: &[u8]| key.sign(b).to_vec();
        let rekey = st.graph.revoke(meter, &signer)?;
        self.keys.revoke(meter);
        self.finish(&mut st, rekey, label, before)
    }

    fn finish(
        &self,
        st: &mut State,
        rekey: Rekey,
        label: &str,
        before: Vec<SubgroupInfo>,
    ) -> Result<EpochRecord> {
        let names = &self.cfg.names;
        let prefix = names.prefix_str().to_string();
        let epoch = rekey.manifest.epoch;

        // 1. Publish: wraps first, so a meter that sees the manifest finds every wrap.
        let mut wraps = Vec::with_capacity(rekey.wraps.len());
        let mut wraps_wire_bytes = 0;
        for w in &rekey.wraps {
            let name = Name::from_uri(&w.name)?;
            let mut d = Data::new(name.clone(), Bytes::copy_from_slice(&w.payload));
            d.meta_info.freshness_period_ms = Some(self.cfg.wrap_freshness_ms);
            let wire = sign_data_digest(&mut d)?;
            wraps_wire_bytes += wire.len();
            self.publisher.put_wire(wire)?;
            wraps.push(name);
        }
        let manifest = names.manifest(epoch);
        let mut d = Data::new(
            manifest.clone(),
            wire::encode_manifest(&rekey.signed.bytes, &rekey.signed.signature),
        );
        d.meta_info.freshness_period_ms = Some(self.cfg.manifest_freshness_ms);
        let wire = self.creds.key.sign_data(&mut d)?;
        let manifest_wire_bytes = wire.len();
        self.publisher.put_wire(wire)?;

        // 2. Head-end keys: new members' user keys, departures, current group keys.
        let joins: Vec<u32> = rekey.manifest.joins.iter().map(|j| j.meter).collect();
        for &m in &joins {
            if let Some(k) = st.user_keys.get(&m) {
                let n = Name::from_uri(&key_name(&prefix, KeyRef::Meter(m), epoch))?;
                self.keys.add_user(m, n, k.duplicate());
            }
        }
        for &m in &rekey.manifest.departs {
            self.keys.depart(m);
            st.user_keys.remove(&m);
            st.projects_of.remove(&m);
        }
        let members = st.graph.member_ids();
        let find = |m: u32, start: &str| -> Result<Option<(Name, SymmetricKey)>> {
            for (n, k) in st.graph.entitled_keys(m) {
                if n.starts_with(start) {
                    return Ok(Some((Name::from_uri(&n)?, k)));
                }
            }
            Ok(None)
        };
        let root = match members.first() {
            Some(&m) => find(m, &format!("{prefix}/ami/bcast/KEK/"))?,
            None => None,
        };
        self.keys.set_root(root);
        for p in &self.cfg.projects {
            let holder = members
                .iter()
                .copied()
                .find(|m| st.projects_of.get(m).is_some_and(|ps| ps.contains(p)));
            let key = match holder {
                Some(m) => find(m, &format!("{prefix}/ami/dr/{p}/KEK/"))?,
                None => None,
            };
            self.keys.set_project(p, key);
        }

        let rec = EpochRecord {
            epoch,
            label: label.to_string(),
            stats: rekey.stats,
            joins,
            departs: rekey.manifest.departs.clone(),
            wraps,
            wrap_uris: rekey.wraps.iter().map(|w| w.name.clone()).collect(),
            manifest,
            manifest_wire_bytes,
            wraps_wire_bytes,
            before,
            after: summary(&st.graph),
        };
        st.history.push(rec.clone());
        Ok(rec)
    }
}
