//! The MDMS collector: fetches every member's readings, validates them, decrypts them with the
//! meter's user key and stores them, rejecting duplicates, out-of-window timestamps, revoked
//! meters and anything the trust policy refuses.
//!
//! The collector does not need the meters' clocks: in each round it fetches every member's
//! signed latest pointer `/<u>/ami/meter/<id>/latest` (CanBePrefix, MustBeFresh), which lists
//! the readings the meter still serves by timestamp and implicit digest, and fetches each one it
//! has not stored by that digest, so only the packet the meter signed can answer, whatever a
//! cache holds under the name. After an outage it catches up on everything the meters kept.
//! Signatures of a round are verified in one batch; cheap checks (name, duplicate, window,
//! revocation) run before any signature check. A reading counts as stored only after the
//! database commit, and the SQLite store keeps the signed Data byte for byte beside the values.
//!
//! A decrypted plaintext must be a version-1 [`crate::reading::Reading`] of the meter and the
//! interval its name says (meter id, interval end = the name's timestamp) with an active import
//! energy register (1-0:1.8.0 in Wh) and an active power register (1-0:1.7.0 in W); anything
//! else is refused as [`Rejection::Malformed`]. The store keeps those two values and the
//! interval's quality flags; the signed Data beside them holds the rest.
//!
//! Meter events (last gasp, restoration, tamper, clock adjustment) arrive between intervals:
//! [`MdmsCollector::serve_events`] answers the meters' notifications by fetching, checking and
//! committing each event (see [`crate::events`]), and [`MdmsCollector::outage_windows`] turns
//! the stored last-gasp/restoration pairs into the windows VEE flags.
//!
//! (The fixed-schedule mode, [`MdmsCollector::run`], asks for `/reading/t=<slot>` by exact name
//! and needs meter and collector clocks to agree; it serves the in-process scenario.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_consumer::Consumer;
use amicn_face::client::Client;
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_tlv::{Component, Data, Interest, Name};

use crate::error::Result;
use crate::events::{MeterEvent, StoredEvent};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::{consumer, fetch_exact, now_us};
use crate::pki::Credentials;
use crate::pki::Trust;
use crate::reading;
use crate::stats::Latencies;
use crate::store::{ReadingStore, StoredReading};
use crate::wire::Status;

/// Fetches a collector keeps in flight at once (bounded like a pipeline window).
const MAX_IN_FLIGHT: usize = 256;
/// Readings per collection round: one batch verification and one store transaction.
const ROUND_READINGS: usize = 10_000;

/// Settings of the collector.
#[derive(Debug, Clone)]
pub struct MdmsConfig {
    /// Utility names.
    pub names: AmiNames,
    /// Readings older than this (by the timestamp in their name) are rejected.
    pub window: Duration,
    /// Readings stamped further than this in the future are rejected.
    pub max_future: Duration,
    /// InterestLifetime of reading fetches.
    pub lifetime: Duration,
    /// Retransmissions of a reading fetch.
    pub retries: u32,
}

impl MdmsConfig {
    /// A window of `window` into the past, one second of clock skew into the future.
    pub fn new(names: AmiNames, window: Duration) -> Self {
        MdmsConfig {
            names,
            window,
            max_future: Duration::from_secs(1),
            lifetime: Duration::from_millis(500),
            retries: 2,
        }
    }
}

/// Why a reading was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The name is not `/<u>/ami/meter/<id>/reading/t=<µs>`.
    NotAReading,
    /// A reading with this meter and timestamp is already stored (a replay).
    Duplicate,
    /// The timestamp is outside the acceptance window.
    OutOfWindow {
        /// Timestamp in the name.
        t_us: u64,
        /// Collector's clock.
        now_us: u64,
    },
    /// The meter was revoked before the reading's timestamp.
    Revoked,
    /// The meter had left the key graph before the reading's timestamp.
    Departed,
    /// Signature, trust rule or certificate chain failed.
    Untrusted(String),
    /// The user key named in the envelope is not one of this meter's keys.
    UnknownKey(String),
    /// The envelope does not open (tampered, or encrypted under another key).
    DecryptFailed(String),
    /// The plaintext is not a reading (of this meter and interval), or the store failed.
    Malformed(String),
}

impl Rejection {
    /// Short label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::NotAReading => "not-a-reading",
            Rejection::Duplicate => "duplicate",
            Rejection::OutOfWindow { .. } => "out-of-window",
            Rejection::Revoked => "revoked",
            Rejection::Departed => "departed",
            Rejection::Untrusted(_) => "untrusted",
            Rejection::UnknownKey(_) => "unknown-key",
            Rejection::DecryptFailed(_) => "decrypt-failed",
            Rejection::Malformed(_) => "malformed",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OutOfWindow { t_us, now_us } => {
                write!(f, "out-of-window: stamped {t_us} µs, now {now_us} µs")
            }
            Rejection::Untrusted(s)
            | Rejection::UnknownKey(s)
            | Rejection::DecryptFailed(s)
            | Rejection::Malformed(s) => {
                write!(f, "{}: {s}", self.kind())
            }
            _ => f.write_str(self.kind()),
        }
    }
}

/// Counters of the collector.
#[derive(Debug, Default)]
pub struct MdmsCounters {
    /// Reading Interests sent (one per requested name, retransmissions not counted).
    pub requested: AtomicU64,
    /// Readings received (Data came back).
    pub received: AtomicU64,
    /// Readings whose signature, trust rule and chain passed.
    pub verified: AtomicU64,
    /// Readings decrypted and stored.
    pub stored: AtomicU64,
    /// Requested readings that never arrived.
    pub missing: AtomicU64,
    /// Schedule slots skipped because the collector fell more than half a window behind.
    pub skipped_slots: AtomicU64,
    /// Latest pointers fetched and validated.
    pub pointers: AtomicU64,
    /// Latest pointers that did not arrive (meter unreachable).
    pub pointers_missing: AtomicU64,
    /// Latest pointers that failed validation (forged or damaged).
    pub pointers_rejected: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    per_meter: Mutex<HashMap<u32, u64>>,
    /// Events committed, by kind.
    events: Mutex<BTreeMap<&'static str, u64>>,
    /// Event notifications refused, by kind.
    events_refused: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump(m: &Mutex<BTreeMap<&'static str, u64>>, k: &'static str) {
    *m.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(k)
        .or_insert(0) += 1;
}

impl MdmsCounters {
    /// Readings stored from `meter`.
    pub fn stored_from(&self, meter: u32) -> u64 {
        self.per_meter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&meter)
            .copied()
            .unwrap_or(0)
    }

    /// Events committed, by kind (`last-gasp`, …).
    pub fn events(&self) -> BTreeMap<&'static str, u64> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Event notifications refused, by kind (`malformed`, `missing`, `untrusted`,
    /// `unknown-key`, `wrong-meter`, `decrypt-failed`, `out-of-window`, `revoked`,
    /// `duplicate`, `state`).
    pub fn events_refused(&self) -> BTreeMap<&'static str, u64> {
        self.events_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rejections by kind.
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reject(&self, r: &Rejection) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(r.kind())
            .or_insert(0) += 1;
    }
}

/// What one collection round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// Names requested.
    pub requested: usize,
    /// Readings stored.
    pub stored: Vec<StoredReading>,
    /// Readings received but rejected.
    pub rejected: Vec<(Name, Rejection)>,
    /// Names that could not be fetched.
    pub missing: Vec<(Name, String)>,
}

/// Readings fetched for one round, not checked yet.
struct FetchedRound {
    report: RoundReport,
    arrived: Vec<Data>,
}

/// The MDMS collector (see the module documentation).
pub struct MdmsCollector {
    cfg: MdmsConfig,
    trust: Arc<Trust>,
    keys: Arc<HeadEndKeys>,
    fetch: Consumer,
    store: Mutex<Box<dyn ReadingStore>>,
    /// Per meter, the timestamps its latest pointer listed that are known to be stored (so a
    /// round looks up the store only for readings it has not seen yet).
    known: Mutex<HashMap<u32, BTreeSet<u64>>>,
    running: AtomicBool,
    stopped: tokio::sync::Notify,
    /// Counters.
    pub counters: MdmsCounters,
    /// Interest-to-Data time of reading fetches.
    pub fetch_latency: Latencies,
    /// From an event's timestamp at the meter to its commit at the MDMS.
    pub event_latency: Latencies,
}

/// Why an event notification was refused: status code, counter kind, explanation.
type EventRefusal = (u64, &'static str, String);

impl std::fmt::Debug for MdmsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdmsCollector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl MdmsCollector {
    /// A collector fetching over `client`, decrypting with user keys from `keys`.
    pub fn new(
        cfg: MdmsConfig,
        trust: Arc<Trust>,
        keys: Arc<HeadEndKeys>,
        client: &Client,
        store: Box<dyn ReadingStore>,
    ) -> Arc<Self> {
        let fetch = consumer(client, cfg.lifetime, cfg.retries);
        Arc::new(MdmsCollector {
            cfg,
            trust,
            keys,
            fetch,
            store: Mutex::new(store),
            known: Mutex::new(HashMap::new()),
            running: AtomicBool::new(true),
            stopped: tokio::sync::Notify::new(),
            counters: MdmsCounters::default(),
            fetch_latency: Latencies::new(),
            event_latency: Latencies::new(),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn ReadingStore>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readings stored.
    pub fn stored(&self) -> u64 {
        self.store().len().unwrap_or(0)
    }

    /// Outage windows per meter learned from the meters' events (`[from, to)`, µs), for VEE:
    /// see [`crate::events::outage_windows`].
    pub fn outage_windows(&self) -> BTreeMap<u32, Vec<(u64, u64)>> {
        crate::events::outage_windows(&self.events())
    }

    /// Every stored event, by meter then sequence number (none if the store fails).
    pub fn events(&self) -> Vec<StoredEvent> {
        match self.store().events() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("reading events from the store: {e}");
                Vec::new()
            }
        }
    }

    /// Registers `/<u>/ami/mdms/notify` on `client` and answers every meter's event
    /// notification in the background (until the connection closes or
    /// [`MdmsCollector::stop`]): fetch the event, check it, commit it, answer with a Status
    /// signed by `creds` (see [`crate::events`]).
    pub async fn serve_events(self: &Arc<Self>, creds: Credentials, client: &Client) -> Result<()> {
        // Meters verify the answers: the MDMS serves its certificate.
        let cert = crate::net::Publisher::new(client, creds.key.clone(), None);
        cert.pin_wire(creds.cert.to_wire())?;
        cert.serve(creds.key.key_name().clone()).await?;
        let mut rx = client
            .register(self.cfg.names.event_notify_prefix())
            .await?;
        let me = self.clone();
        let client = client.clone();
        let key = creds.key.clone();
        tokio::spawn(async move {
            // Notifications are handled concurrently, a bounded number at a time.
            let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
            let _cert = cert;
            loop {
                let next = tokio::select! {
                    n = rx.recv() => n,
                    () = me.stopped.notified() => None,
                };
                let Some(incoming) = next else { break };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let (me, client, key) = (me.clone(), client.clone(), key.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let status = match me.take_event(&incoming.interest).await {
                        Ok(ev) => {
                            bump(&me.counters.events, ev.event.kind.label());
                            Status {
                                code: 200,
                                text: format!("{} stored", ev.event.kind.label()),
                                epoch: None,
                            }
                        }
                        Err((code, kind, why)) => {
                            bump(&me.counters.events_refused, kind);
                            tracing::info!(
                                "event {} refused ({kind}): {why}",
                                incoming.interest.name
                            );
                            Status {
                                code,
                                text: format!("{kind}: {why}"),
                                epoch: None,
                            }
                        }
                    };
                    let mut d = Data::new(incoming.interest.name.clone(), status.encode());
                    d.meta_info.freshness_period_ms = Some(0);
                    match key.sign_data(&mut d) {
                        Ok(wire) => {
                            let _ = client.put_data(wire, incoming.pit_token.as_ref()).await;
                        }
                        Err(e) => tracing::warn!("signing an event answer: {e}"),
                    }
                });
            }
        });
        Ok(())
    }

    /// Fetches, checks and commits the event a notification names.
    async fn take_event(
        &self,
        notice: &Interest,
    ) -> std::result::Result<StoredEvent, EventRefusal> {
        let names = &self.cfg.names;
        let (meter, seq) = names.parse_event_notify(&notice.name).ok_or_else(|| {
            (
                400,
                "malformed",
                "not an event notification name".to_string(),
            )
        })?;
        let d = fetch_exact(&self.fetch, names.event(meter, seq))
            .await
            .map_err(|e| (504, "missing", e.to_string()))?;
        self.trust
            .verify_data(&d)
            .await
            .map_err(|e| (403, "untrusted", e.to_string()))?;
        let ec = EncryptedContent::decode(d.content.clone())
            .map_err(|e| (400, "malformed", e.to_string()))?;
        let (owner, key) = self
            .keys
            .user_key(&ec.key_name)
            .ok_or_else(|| (403, "unknown-key", ec.key_name.to_string()))?;
        if owner != meter {
            return Err((
                404,
                "wrong-meter",
                format!("sealed under meter {owner}'s key, named for meter {meter}"),
            ));
        }
        let plain = EnvelopeKey::derive(&key, &ec.key_name, Purpose::Content)
            .open_decoded(&d.name, &ec)
            .map_err(|e| (403, "decrypt-failed", e.to_string()))?;
        let ev: MeterEvent = serde_json::from_slice(&plain)
            .map_err(|e| (400, "malformed", format!("not an event: {e}")))?;
        if ev.meter != meter {
            return Err((
                404,
                "wrong-meter",
                format!("meter {}'s event under meter {meter}'s name", ev.meter),
            ));
        }
        if ev.seq != seq {
            return Err((
                400,
                "malformed",
                format!("event {} under the name of event {seq}", ev.seq),
            ));
        }
        let now = now_us();
        let oldest = now.saturating_sub(self.cfg.window.as_micros() as u64);
        let newest = now.saturating_add(self.cfg.max_future.as_micros() as u64);
        if ev.t_us < oldest || ev.t_us > newest {
            return Err((
                422,
                "out-of-window",
                format!("stamped {} µs, now {now} µs", ev.t_us),
            ));
        }
        if self.keys.revoked_at(meter).is_some_and(|at| ev.t_us >= at) {
            return Err((403, "revoked", format!("meter {meter} is revoked")));
        }
        let stored = StoredEvent {
            event: ev,
            received_us: now_us(),
        };
        let wire = d.wire().map(|w| w.to_vec()).unwrap_or_default();
        match self.store().insert_event(&stored, &wire) {
            Ok(true) => {}
            Ok(false) => {
                return Err((
                    409,
                    "duplicate",
                    format!("event {seq} of meter {meter} is stored"),
                ));
            }
            Err(e) => return Err((500, "state", e.to_string())),
        }
        let committed = now_us();
        self.event_latency.record(Duration::from_micros(
            committed.saturating_sub(stored.event.t_us),
        ));
        Ok(stored)
    }

    /// Every stored reading with `from_us <= t_us < to_us`.
    pub fn readings_between(&self, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        self.store().interval(from_us, to_us)
    }

    /// The stored reading of `meter` at `t_us`.
    pub fn reading(&self, meter: u32, t_us: u64) -> Option<StoredReading> {
        self.store().get(meter, t_us).ok().flatten()
    }

    /// Name, duplicate, window and revocation checks: everything before cryptography.
    fn precheck(&self, data: &Data, now: u64) -> std::result::Result<(u32, u64), Rejection> {
        let (meter, t_us) = self.precheck_fresh(data, now)?;
        if self.store().contains(meter, t_us).unwrap_or(false) {
            return Err(Rejection::Duplicate);
        }
        Ok((meter, t_us))
    }

    /// [`MdmsCollector::precheck`] without the store lookup, for rounds whose names were chosen
    /// among readings not stored yet: their transaction refuses a duplicate anyway.
    fn precheck_fresh(&self, data: &Data, now: u64) -> std::result::Result<(u32, u64), Rejection> {
        let (meter, t_us) = self
            .cfg
            .names
            .parse_reading(&data.name)
            .ok_or(Rejection::NotAReading)?;
        let oldest = now.saturating_sub(self.cfg.window.as_micros() as u64);
        let newest = now.saturating_add(self.cfg.max_future.as_micros() as u64);
        if t_us < oldest || t_us > newest {
            return Err(Rejection::OutOfWindow { t_us, now_us: now });
        }
        // A reading stamped after revocation is refused outright. One stamped before it is
        // judged like any other: the window bounds how far a compromised meter can backdate.
        if self.keys.revoked_at(meter).is_some_and(|at| t_us >= at) {
            return Err(Rejection::Revoked);
        }
        if self.keys.departed_at(meter).is_some_and(|at| t_us >= at) {
            return Err(Rejection::Departed);
        }
        Ok((meter, t_us))
    }

    /// Decrypts a verified reading with the meter's reading key.
    fn open_reading(
        &self,
        data: &Data,
        meter: u32,
        t_us: u64,
    ) -> std::result::Result<StoredReading, Rejection> {
        let ec = EncryptedContent::decode(data.content.clone())
            .map_err(|e| Rejection::Malformed(e.to_string()))?;
        let (owner, key) = self
            .keys
            .user_key(&ec.key_name)
            .ok_or_else(|| Rejection::UnknownKey(ec.key_name.to_string()))?;
        if owner != meter {
            return Err(Rejection::UnknownKey(format!(
                "{} belongs to meter {owner}, not {meter}",
                ec.key_name
            )));
        }
        let plain = EnvelopeKey::derive(&key, &ec.key_name, Purpose::Content)
            .open_decoded(&data.name, &ec)
            .map_err(|e| Rejection::DecryptFailed(e.to_string()))?;
        let r = reading::Reading::decode(&plain)
            .map_err(|e| Rejection::Malformed(format!("not a reading: {e}")))?;
        if r.meter != meter || r.end_us() != t_us {
            return Err(Rejection::Malformed(format!(
                "plaintext is meter {}'s interval ending at {} µs, the name says meter {meter} at {t_us} µs",
                r.meter,
                r.end_us()
            )));
        }
        let energy_wh = r.active_import_wh().ok_or_else(|| {
            Rejection::Malformed("no active import energy register (1-0:1.8.0 in Wh)".into())
        })?;
        let power_w = r.active_power_w().ok_or_else(|| {
            Rejection::Malformed("no active power register (1-0:1.7.0 in W)".into())
        })?;
        Ok(StoredReading {
            meter,
            t_us,
            energy_wh,
            power_w,
            flags: r.flags,
            key_name: ec.key_name.to_string(),
            received_us: now_us(),
        })
    }

    /// Decrypts a verified reading and stores it.
    fn open_and_store(
        &self,
        data: &Data,
        meter: u32,
        t_us: u64,
    ) -> std::result::Result<StoredReading, Rejection> {
        let r = self.open_reading(data, meter, t_us)?;
        let wire = data.wire().map(|w| w.to_vec()).unwrap_or_default();
        match self.store().insert_batch(&[(r.clone(), wire)]) {
            Ok(v) if v.first() == Some(&true) => Ok(r),
            Ok(_) => Err(Rejection::Duplicate),
            Err(e) => Err(Rejection::Malformed(format!("store: {e}"))),
        }
    }

    fn account(&self, r: &std::result::Result<StoredReading, Rejection>) {
        match r {
            Ok(r) => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                *self
                    .counters
                    .per_meter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(r.meter)
                    .or_insert(0) += 1;
            }
            Err(rej) => self.counters.reject(rej),
        }
    }

    /// Runs every check on one received reading and stores it if it passes.
    pub async fn ingest(&self, data: &Data) -> std::result::Result<StoredReading, Rejection> {
        let r = self.ingest_inner(data).await;
        self.account(&r);
        r
    }

    async fn ingest_inner(&self, data: &Data) -> std::result::Result<StoredReading, Rejection> {
        let (meter, t_us) = self.precheck(data, now_us())?;
        self.trust
            .verify_data(data)
            .await
            .map_err(|e| Rejection::Untrusted(e.to_string()))?;
        self.counters.verified.fetch_add(1, Ordering::Relaxed);
        self.open_and_store(data, meter, t_us)
    }

    /// Fetches one reading by name and ingests it.
    pub async fn fetch_and_ingest(
        &self,
        name: Name,
    ) -> Result<std::result::Result<StoredReading, Rejection>> {
        self.counters.requested.fetch_add(1, Ordering::Relaxed);
        let d = fetch_exact(&self.fetch, name).await?;
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        Ok(self.ingest(&d).await)
    }

    /// Fetches `names` concurrently, verifies what arrives with one batch signature check and
    /// stores what passes every check in one transaction; a reading stored before is refused
    /// as a duplicate when that transaction runs.
    pub async fn collect(&self, names: Vec<Name>) -> RoundReport {
        let fetched = self.fetch_round(names).await;
        self.ingest_round(fetched).await
    }

    /// [`MdmsCollector::collect`] over many rounds, fetching round k+1 while round k is
    /// verified, decrypted and committed, so the network and the CPU work overlap.
    pub async fn collect_pipelined(&self, rounds: Vec<Vec<Name>>) -> Vec<RoundReport> {
        let mut out = Vec::with_capacity(rounds.len());
        let mut rounds = rounds.into_iter();
        let Some(first) = rounds.next() else {
            return out;
        };
        let mut fetched = self.fetch_round(first).await;
        for names in rounds {
            // The fetch goes first: it spawns its requests before the ingest holds this task.
            let (next, report) = tokio::join!(self.fetch_round(names), self.ingest_round(fetched));
            out.push(report);
            fetched = next;
        }
        out.push(self.ingest_round(fetched).await);
        out
    }

    async fn fetch_round(&self, names: Vec<Name>) -> FetchedRound {
        let mut report = RoundReport {
            requested: names.len(),
            ..RoundReport::default()
        };
        let mut tasks = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        for name in names {
            self.counters.requested.fetch_add(1, Ordering::Relaxed);
            let c = self.fetch.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let started = Instant::now();
                let r = fetch_exact(&c, name.clone()).await;
                (name, r, started.elapsed())
            });
        }
        let mut arrived = Vec::new();
        while let Some(j) = tasks.join_next().await {
            let Ok((name, r, took)) = j else { continue };
            match r {
                Ok(d) => {
                    self.fetch_latency.record(took);
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    arrived.push(d);
                }
                Err(e) => {
                    self.counters.missing.fetch_add(1, Ordering::Relaxed);
                    report.missing.push((name, e.to_string()));
                }
            }
        }
        FetchedRound { report, arrived }
    }

    async fn ingest_round(&self, fetched: FetchedRound) -> RoundReport {
        let FetchedRound {
            mut report,
            arrived,
        } = fetched;
        let now = now_us();
        let mut pending = Vec::new();
        let mut ids = Vec::new();
        for d in arrived {
            match self.precheck_fresh(&d, now) {
                Ok(id) => {
                    pending.push(d);
                    ids.push(id);
                }
                Err(rej) => {
                    self.counters.reject(&rej);
                    report.rejected.push((d.name.clone(), rej));
                }
            }
        }
        let verdicts = self.trust.verify_batch(&pending).await;
        // Decrypt everything that verified, then store the round in one transaction: a reading
        // counts as stored only once that transaction has committed.
        let mut opened = Vec::with_capacity(pending.len());
        for ((d, (meter, t_us)), v) in pending.iter().zip(ids).zip(verdicts) {
            let r = match v {
                Ok(_) => {
                    self.counters.verified.fetch_add(1, Ordering::Relaxed);
                    self.open_reading(d, meter, t_us)
                }
                Err(e) => Err(Rejection::Untrusted(e.to_string())),
            };
            match r {
                Ok(s) => {
                    let wire = d.wire().map(|w| w.to_vec()).unwrap_or_default();
                    opened.push((d.name.clone(), s, wire));
                }
                Err(rej) => {
                    self.counters.reject(&rej);
                    report.rejected.push((d.name.clone(), rej));
                }
            }
        }
        let rows: Vec<(StoredReading, Vec<u8>)> = opened
            .iter()
            .map(|(_, s, w)| (s.clone(), w.clone()))
            .collect();
        let outcome = self.store().insert_batch(&rows);
        for (k, (name, s, _)) in opened.into_iter().enumerate() {
            let r = match &outcome {
                Ok(v) if v.get(k) == Some(&true) => Ok(s),
                Ok(_) => Err(Rejection::Duplicate),
                Err(e) => Err(Rejection::Malformed(format!("store: {e}"))),
            };
            self.account(&r);
            match r {
                Ok(s) => report.stored.push(s),
                Err(rej) => report.rejected.push((name, rej)),
            }
        }
        report
    }

    /// One collection round without synchronised clocks: every member's latest pointer, then
    /// every listed reading not stored yet, each by its implicit digest.
    pub async fn poll_round(&self) -> RoundReport {
        let meters = self.keys.active_meters();
        let mut tasks = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        for (m, _) in meters {
            let c = self.fetch.clone();
            let limit = limit.clone();
            let mut i = Interest::new(self.cfg.names.latest_prefix(m));
            i.can_be_prefix = true;
            i.must_be_fresh = true;
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (m, c.fetch_unverified(i).await)
            });
        }
        let mut arrived = Vec::new();
        while let Some(j) = tasks.join_next().await {
            let Ok((m, r)) = j else { continue };
            match r {
                Ok(d) => arrived.push((m, d)),
                Err(_) => {
                    self.counters
                        .pointers_missing
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let packets: Vec<Data> = arrived.iter().map(|(_, d)| d.clone()).collect();
        let verdicts = self.trust.verify_batch(&packets).await;
        let now = now_us();
        let oldest = now.saturating_sub(self.cfg.window.as_micros() as u64);
        let mut names = Vec::new();
        for ((m, d), v) in arrived.into_iter().zip(verdicts) {
            // The rule "meter X signs /<u>/ami/meter/X/..." ties the pointer to its meter.
            let entries = match v {
                Err(e) => Err(e.to_string()),
                Ok(_) if !self.cfg.names.latest_prefix(m).is_prefix_of(&d.name) => {
                    Err(format!("{} is not meter {m}'s pointer", d.name))
                }
                Ok(_) => crate::wire::decode_pointer(d.content.clone()).map_err(|e| e.to_string()),
            };
            let entries = match entries {
                Ok(e) => e,
                Err(why) => {
                    tracing::debug!(meter = m, "latest pointer refused: {why}");
                    self.counters
                        .pointers_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.counters.pointers.fetch_add(1, Ordering::Relaxed);
            // Every listed reading not stored yet is fetched, older ones included: a reading
            // that failed once (e.g. under a key not known yet) is tried again next round.
            let listed: BTreeSet<u64> = entries.iter().map(|(t, _)| *t).collect();
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            let seen = known.entry(m).or_default();
            seen.retain(|t| listed.contains(t));
            for (t, digest) in entries {
                if t < oldest || seen.contains(&t) {
                    continue;
                }
                if self.store().contains(m, t).unwrap_or(false) {
                    seen.insert(t);
                    continue;
                }
                names.push(
                    self.cfg
                        .names
                        .reading(m, t)
                        .append(Component::implicit_sha256_digest(digest)),
                );
            }
        }
        // Large populations in rounds of one batch verification and one transaction each,
        // the next round's fetches overlapping this round's checks.
        let rounds: Vec<Vec<Name>> = names.chunks(ROUND_READINGS).map(<[Name]>::to_vec).collect();
        let mut report = RoundReport::default();
        for r in self.collect_pipelined(rounds).await {
            report.requested += r.requested;
            report.stored.extend(r.stored);
            report.rejected.extend(r.rejected);
            report.missing.extend(r.missing);
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for r in &report.stored {
            known.entry(r.meter).or_default().insert(r.t_us);
        }
        report
    }

    /// Runs [`MdmsCollector::poll_round`] every `interval` until [`MdmsCollector::stop`].
    pub async fn run_polling(self: Arc<Self>, interval: Duration) {
        loop {
            let started = Instant::now();
            let _ = self.poll_round().await;
            let wait = interval.saturating_sub(started.elapsed());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stopped.notified() => break,
            }
            if !self.running.load(Ordering::Relaxed) {
                break;
            }
        }
    }

    /// Collects every member's reading of each slot `start_us + k·interval`, half an interval
    /// after the slot, until `until` or [`MdmsCollector::stop`]. A meter is asked only for slots
    /// at least half an interval after it became a member, so it has had time to get its keys.
    pub async fn run(
        self: Arc<Self>,
        start_us: u64,
        interval: Duration,
        until: Instant,
    ) -> Vec<RoundReport> {
        let iv = (interval.as_micros() as u64).max(1);
        let grace = iv / 2;
        let mut k = now_us().saturating_sub(start_us).div_ceil(iv);
        let mut rounds = Vec::new();
        loop {
            let now = now_us();
            // Far behind schedule (an overloaded host): jump to the newest due slot rather than
            // chase readings that are about to leave the acceptance window.
            let slack = (self.cfg.window.as_micros() as u64) / 2;
            if now > start_us + k * iv + grace + slack {
                let newest = ((now - grace).saturating_sub(start_us) / iv).max(k);
                self.counters
                    .skipped_slots
                    .fetch_add(newest - k, Ordering::Relaxed);
                k = newest;
            }
            let t = start_us + k * iv;
            let due = t + grace;
            if due > now {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_micros(due - now)) => {}
                    () = self.stopped.notified() => break,
                }
            }
            if Instant::now() >= until || !self.running.load(Ordering::Relaxed) {
                break;
            }
            let names: Vec<Name> = self
                .keys
                .active_meters()
                .into_iter()
                .filter(|&(_, since)| since.saturating_add(grace) <= t)
                .map(|(m, _)| self.cfg.names.reading(m, t))
                .collect();
            rounds.push(self.collect(names).await);
            k += 1;
        }
        rounds
    }

    /// Whether [`MdmsCollector::stop`] has not been called.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Stops [`MdmsCollector::run`] at its next slot.
    pub fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
        self.stopped.notify_waiters();
    }

    /// Rejections so far, by kind.
    pub fn rejections(&self) -> HashMap<&'static str, u64> {
        self.counters.rejected().into_iter().collect()
    }
}
