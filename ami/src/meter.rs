//! A smart meter: enrols with the KMS, follows every rekey, publishes signed and encrypted
//! readings, and fetches and decrypts prices and DR events.
//!
//! Key following: for each epoch the meter fetches the manifest `/<u>/ami/KMS/rekey/<e>`,
//! validates it against the trust policy (only the KMS signs it), checks the key graph's own
//! signature over the manifest bytes with the KMS key, and lets its member state pull exactly
//! the wraps on its own path by name. Those fetches are ordinary Interests, so the forwarder's
//! cache answers most of them: every meter under the same tree node asks for the same wrap.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_consumer::Consumer;
use amicn_face::client::Client;
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_kms::establish::{EphemeralAgreement, Role};
use amicn_kms::graph::manifest::{SignedManifest, VerifiedManifest};
use amicn_kms::graph::wrap::{self, WRAP_LEN, Wrap, WrapMode};
use amicn_kms::graph::{GraphError, MemberState};
use amicn_tlv::{Component, Data, Interest, Name};
use bytes::Bytes;
use rand::RngExt;
use zeroize::Zeroizing;

use crate::dr::{DrAck, DrEvent};
use crate::error::{AmiError, Result};
use crate::events::{EventKind, EventOutcome, MeterEvent};
use crate::keys::reading_key;
use crate::names::AmiNames;
use crate::net::{Publisher, consumer, fetch_exact, fetch_segmented, now_us};
use crate::ops::{CommandCounters, CommandReply, CommandState, MeterOp, Refusal, Supply};
use crate::pki::{Credentials, Trust};
use crate::pricing::Price;
use crate::reading::{self, Flags, Obis, Register, Unit};
use crate::stats::Latencies;
use crate::tariff::{Tariff, TariffPointer, TariffRegisters};
use crate::wire::{self, EnrolReply, EnrolRequest, Status};

/// ContentType NACK.
const CONTENT_TYPE_NACK: u64 = 3;
/// Upper bound of wrap fetches while ingesting one manifest (a path plus group keys is far less).
const MAX_WRAPS_PER_EPOCH: usize = 256;

/// A manifest object checked against the KMS key and decoded: its manifest and the digest of
/// every wrap it lists.
struct CheckedManifest {
    verified: VerifiedManifest,
    wraps: HashMap<Name, [u8; 32]>,
}

/// Manifests checked recently in this process, by epoch, KMS key and SHA-256 of the whole
/// object. Meters
/// simulated in one process fetch and validate every segment themselves, then share the one
/// decoded copy of an identical object while they fetch their wraps; an entry lives only as
/// long as some meter holds it.
type ManifestCache = Mutex<HashMap<(u32, [u8; 32], [u8; 32]), std::sync::Weak<CheckedManifest>>>;

static MANIFESTS: std::sync::LazyLock<ManifestCache> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

fn shared_manifest(
    epoch: u32,
    content: Vec<u8>,
    kms_key: &amicn_kms::identity::PublicKey,
) -> Result<Arc<CheckedManifest>> {
    use sha2::Digest as _;
    let key = (
        epoch,
        kms_key.to_bytes(),
        sha2::Sha256::digest(&content).into(),
    );
    if let Some(m) = MANIFESTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .and_then(std::sync::Weak::upgrade)
    {
        return Ok(m);
    }
    let obj = wire::decode_manifest(Bytes::from(content))?;
    let signed = SignedManifest {
        bytes: obj.bytes,
        signature: obj.signature,
    };
    let kms_key = *kms_key;
    let verifier = move |b: &[u8], s: &[u8]| {
        if kms_key.verify(b, s) {
            Ok(())
        } else {
            Err("not signed by the KMS key".to_string())
        }
    };
    let checked = Arc::new(CheckedManifest {
        verified: signed.verify(&verifier)?,
        wraps: obj.wraps,
    });
    let mut cache = MANIFESTS.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|_, w| w.strong_count() > 0);
    cache.insert(key, Arc::downgrade(&checked));
    Ok(checked)
}
/// Interval readings a meter keeps while it waits for its keys (then publishes them late, as a
/// meter back-fills its load profile after an outage).
const MAX_BACKLOG: usize = 64;

/// Settings of one meter.
#[derive(Debug, Clone)]
pub struct MeterConfig {
    /// Utility names.
    pub names: AmiNames,
    /// Meter id (its name is `/<u>/ami/meter/<id>`).
    pub id: u32,
    /// DR projects it subscribes to.
    pub projects: Vec<String>,
    /// Reading interval (also the readings' FreshnessPeriod).
    pub reading_interval: Duration,
    /// Random delay before each manifest fetch, so meters do not all ask at the same instant
    /// (as real meters polling on their own clocks would not).
    pub sync_jitter: Duration,
    /// InterestLifetime of the meter's fetches.
    pub lifetime: Duration,
    /// Readings kept and served (the MDMS catches up from these after an outage).
    pub keep_readings: usize,
    /// Where the meter keeps its key state and registers across restarts; `None` = memory.
    pub state_dir: Option<PathBuf>,
    /// Whether the household takes part in DR events (it acknowledges either way).
    pub dr_opt_in: bool,
}

impl MeterConfig {
    /// A meter with 15-minute readings and no sync jitter.
    pub fn new(names: AmiNames, id: u32, projects: Vec<String>) -> Self {
        MeterConfig {
            names,
            id,
            projects,
            reading_interval: Duration::from_secs(900),
            sync_jitter: Duration::ZERO,
            lifetime: Duration::from_millis(1000),
            keep_readings: 64,
            state_dir: None,
            dr_opt_in: true,
        }
    }
}

/// Counters of one meter.
#[derive(Debug, Default)]
pub struct MeterCounters {
    /// Readings published.
    pub readings: AtomicU64,
    /// Manifests ingested.
    pub manifests: AtomicU64,
    /// Wraps fetched and opened.
    pub wraps_fetched: AtomicU64,
    /// Keys advanced by the join ratchet.
    pub ratcheted: AtomicU64,
    /// Received Data that failed validation (forged or damaged), fetched again past the cache.
    pub rejected_data: AtomicU64,
    /// Enrolment refusals.
    pub enrol_refused: AtomicU64,
    /// Events published.
    pub events: AtomicU64,
    /// Events the MDMS confirmed as stored (or already stored).
    pub events_confirmed: AtomicU64,
    /// DR events received (verified and decrypted).
    pub dr_events: AtomicU64,
    /// DR acknowledgements the operator accepted.
    pub dr_acks: AtomicU64,
    /// Tariff pointers checked.
    pub tariff_checks: AtomicU64,
    /// New tariff versions fetched and adopted.
    pub tariff_updates: AtomicU64,
}

/// What one key synchronisation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Manifests ingested.
    pub manifests: u32,
    /// Wraps fetched and opened.
    pub wraps_fetched: u32,
    /// Keys ratcheted.
    pub ratcheted: u32,
    /// The KMS says this meter departed.
    pub departed: bool,
    /// Epoch reached.
    pub epoch: u32,
}

/// What a meter published for one interval: the values the MDMS stores (the whole plaintext
/// is a [`reading::Reading`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Meter id.
    pub meter: u32,
    /// Timestamp in the name (µs since the Unix epoch), the end of the interval.
    pub t_us: u64,
    /// Active import energy register (1-0:1.8.0), Wh.
    pub energy_wh: u64,
    /// Instantaneous active power (1-0:1.7.0), W.
    pub power_w: u32,
    /// Quality flags of the interval.
    pub flags: Flags,
}

/// The simulated household behind a meter and the registers it accumulates.
///
/// Each meter id gets its own base load, evening and morning peaks and power factor; the
/// power of an interval follows the time of day (UTC taken as local time) with ±30 % noise,
/// between 50 W and 9 kW. Every captured interval advances the active import register by
/// power × interval (kept in mWh, published in whole Wh, so it never decreases), the reactive
/// import register likewise by the reactive power of the power factor; voltage is 230 V with
/// a little noise and a small drop under load, current is the apparent power over the voltage.
/// Nothing is exported (no PV is modelled), so 2.8.0 and 4.8.0 stay 0.
#[derive(Debug, Clone)]
pub struct MeterModel {
    id: u32,
    base_w: f64,
    peak_w: f64,
    power_factor: f64,
    energy_mwh: u64,
    reactive_mvarh: u64,
}

impl MeterModel {
    /// The household of meter `id`, its active import register at `energy_wh`.
    pub fn new(id: u32, energy_wh: u64) -> Self {
        Self::restore(id, energy_wh.saturating_mul(1_000), 0)
    }

    /// A household whose registers were saved as `energy_mwh` and `reactive_mvarh`.
    pub fn restore(id: u32, energy_mwh: u64, reactive_mvarh: u64) -> Self {
        // Per-meter constants from a SplitMix64 hash of the id.
        let mut h = u64::from(id).wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        let unit = |shift: u32| ((h >> shift) & 0xFFFF) as f64 / 65_535.0;
        MeterModel {
            id,
            base_w: 120.0 + 280.0 * unit(0),
            peak_w: 800.0 + 2_200.0 * unit(16),
            power_factor: 0.95 + 0.04 * unit(32),
            energy_mwh,
            reactive_mvarh,
        }
    }

    /// Active import register, mWh.
    pub fn energy_mwh(&self) -> u64 {
        self.energy_mwh
    }

    /// Reactive import register, mvarh.
    pub fn reactive_mvarh(&self) -> u64 {
        self.reactive_mvarh
    }

    /// Measures the interval of `interval` ending at `end_us` and returns its reading, with
    /// the registers of [`MeterModel::capture_with`], the supply connected and unlimited.
    pub fn capture(&mut self, end_us: u64, interval: Duration, flags: Flags) -> reading::Reading {
        self.capture_with(end_us, interval, flags, Supply::default())
    }

    /// Measures the interval of `interval` ending at `end_us` under `supply` (a disconnected
    /// household draws nothing, a limited one at most its limit) and returns its reading: the
    /// seven measuring registers of [`Obis`]'s constants, the disconnect control state
    /// (0-0:96.3.10) and, with a limit, the limiter threshold (0-0:17.0.0), and `flags`.
    pub fn capture_with(
        &mut self,
        end_us: u64,
        interval: Duration,
        flags: Flags,
        supply: Supply,
    ) -> reading::Reading {
        let interval_ms = u32::try_from(interval.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        let (power_w, q) = self.power(end_us, supply);
        // mWh = W × ms / 3600.
        let ms = u64::from(interval_ms);
        self.energy_mwh = self
            .energy_mwh
            .saturating_add((power_w as u64).saturating_mul(ms) / 3_600);
        self.reactive_mvarh = self
            .reactive_mvarh
            .saturating_add((q as u64).saturating_mul(ms) / 3_600);
        self.reading(
            end_us.saturating_sub(ms * 1_000),
            interval_ms,
            flags,
            (power_w, q),
            supply,
        )
    }

    /// An instantaneous reading at `at_us` (what an on-demand read answers): the registers as
    /// they stand, without advancing them, and the power of the moment, as a 1 ms interval
    /// ending at `at_us`.
    pub fn snapshot(&self, at_us: u64, supply: Supply) -> reading::Reading {
        let pq = self.power(at_us, supply);
        self.reading(at_us.saturating_sub(1_000), 1, Flags::NONE, pq, supply)
    }

    /// Active and reactive power drawn at `at_us` (W, var).
    fn power(&self, at_us: u64, supply: Supply) -> (f64, f64) {
        let mut rng = rand::rng();
        let hour = (at_us / 1_000_000 % 86_400) as f64 / 3_600.0;
        let bump = |at: f64, width: f64| (-((hour - at) / width).powi(2) / 2.0).exp();
        let shape = bump(19.0, 2.0) + 0.5 * bump(7.5, 1.2);
        let noise = rng.random_range(0.7..1.3);
        let demand = ((self.base_w + self.peak_w * shape) * noise).clamp(50.0, 9_000.0);
        let power_w = supply.drawn_w(demand).round();
        let q = power_w * (1.0 / (self.power_factor * self.power_factor) - 1.0).sqrt();
        (power_w, q)
    }

    fn reading(
        &self,
        start_us: u64,
        interval_ms: u32,
        flags: Flags,
        (power_w, q): (f64, f64),
        supply: Supply,
    ) -> reading::Reading {
        let mut rng = rand::rng();
        let volts = 230.0 + rng.random_range(-2.5..2.5) - power_w / 1_000.0 * 0.6;
        let amps = (power_w * power_w + q * q).sqrt() / volts;
        let wh = |m: u64| i64::try_from(m / 1_000).unwrap_or(i64::MAX);
        let mut r = reading::Reading::new(self.id, start_us, interval_ms);
        r.flags = flags;
        r.registers = vec![
            Register::new(Obis::ACTIVE_IMPORT_ENERGY, wh(self.energy_mwh), 0, Unit::WH),
            Register::new(Obis::ACTIVE_EXPORT_ENERGY, 0, 0, Unit::WH),
            Register::new(
                Obis::REACTIVE_IMPORT_ENERGY,
                wh(self.reactive_mvarh),
                0,
                Unit::VARH,
            ),
            Register::new(Obis::REACTIVE_EXPORT_ENERGY, 0, 0, Unit::VARH),
            Register::new(Obis::ACTIVE_POWER, power_w as i64, 0, Unit::W),
            Register::new(Obis::VOLTAGE_L1, (volts * 10.0).round() as i64, -1, Unit::V),
            Register::new(Obis::CURRENT_L1, (amps * 100.0).round() as i64, -2, Unit::A),
            Register::new(
                Obis::DISCONNECT_CONTROL,
                i64::from(supply.connected),
                0,
                Unit::COUNT,
            ),
        ];
        if let Some(l) = supply.limit_w {
            r.registers
                .push(Register::new(Obis::LOAD_LIMIT, i64::from(l), 0, Unit::W));
        }
        r
    }
}

struct KeyState {
    member: Option<MemberState>,
    /// Next manifest epoch to ingest; 0 = not following (not enrolled, or departed).
    next_epoch: u32,
}

/// A meter (see the module documentation).
pub struct Meter {
    cfg: MeterConfig,
    creds: Credentials,
    trust: Arc<Trust>,
    publisher: Publisher,
    fetch: Consumer,
    keys: Mutex<KeyState>,
    model: Mutex<MeterModel>,
    /// Flags the next captured interval carries (a restart marks it as an outage).
    pending_flags: Mutex<Flags>,
    readings_on: AtomicBool,
    /// Intervals captured while waiting for keys, sealed and published once they arrive.
    backlog: Mutex<VecDeque<reading::Reading>>,
    /// Readings served, newest first: timestamp and implicit digest (the latest pointer).
    recent: Mutex<VecDeque<(u64, [u8; 32])>>,
    /// Counters.
    pub counters: MeterCounters,
    /// Time to ingest one manifest with its wraps.
    pub sync_latency: Latencies,
    /// The key of an enrolment not answered yet: a retry asks with the same key, so an answer
    /// the network lost is given again (the KMS keeps it) instead of being refused.
    enrolling: Mutex<Option<EphemeralAgreement>>,
    /// Signed commands: replay records, supply state, counters ([`crate::ops`]).
    commands: CommandState,
    /// Sequence number of the next event ([`crate::events`]), kept in the state directory.
    next_event: Mutex<u64>,
    /// The TOU/CPP tariff in force and the per-period registers ([`crate::tariff`]), kept in
    /// the state directory beside the energy registers.
    tariff: Mutex<(Option<Tariff>, TariffRegisters)>,
    /// Whether the meter came back from saved state (it was down: a restoration to report).
    restarted: bool,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("id", &self.cfg.id)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// Registers `/<u>/ami/meter/<id>` on `client` (serving the meter's certificate and
    /// readings) and returns the meter, not yet enrolled.
    pub async fn start(
        cfg: MeterConfig,
        creds: Credentials,
        trust: Arc<Trust>,
        client: &Client,
    ) -> Result<Arc<Self>> {
        // Readings, their pointers and the certificate.
        let capacity = cfg.keep_readings.max(1) * 2 + 8;
        let publisher = Publisher::with_capacity(client, creds.key.clone(), None, capacity);
        publisher.pin_wire(creds.cert.to_wire())?;
        publisher.serve(cfg.names.meter(cfg.id)).await?;
        let fetch = consumer(client, cfg.lifetime, 3);
        let saved = match &cfg.state_dir {
            Some(d) => load_state(d)?,
            None => None,
        };
        let restarted = saved.is_some();
        let (member, next_epoch, model) = match saved {
            Some(s) => (
                Some(s.member),
                s.next_epoch,
                MeterModel::restore(cfg.id, s.energy_mwh, s.reactive_mvarh),
            ),
            None => (
                None,
                0,
                MeterModel::new(cfg.id, u64::from(cfg.id) * 1_000 + 10_000),
            ),
        };
        // A meter that comes back from saved state was down for a while: its first interval
        // says so.
        let pending = if restarted {
            Flags::POWER_OUTAGE
        } else {
            Flags::NONE
        };
        let commands = CommandState::open(&cfg.names, cfg.id, cfg.state_dir.as_deref())?;
        let next_event = match &cfg.state_dir {
            Some(d) => load_next_event(d)?,
            None => 1,
        };
        let commands_prefix = cfg.names.meter_commands(cfg.id);
        let tariff = match &cfg.state_dir {
            Some(d) => load_tariff(d)?,
            None => (None, TariffRegisters::default()),
        };
        let meter = Arc::new(Meter {
            model: Mutex::new(model),
            pending_flags: Mutex::new(pending),
            recent: Mutex::new(VecDeque::new()),
            cfg,
            creds,
            trust,
            publisher,
            fetch,
            keys: Mutex::new(KeyState { member, next_epoch }),
            readings_on: AtomicBool::new(true),
            backlog: Mutex::new(VecDeque::new()),
            counters: MeterCounters::default(),
            sync_latency: Latencies::new(),
            enrolling: Mutex::new(None),
            commands,
            next_event: Mutex::new(next_event),
            tariff: Mutex::new(tariff),
            restarted,
        });
        let weak = Arc::downgrade(&meter);
        meter.publisher.on_interest(
            commands_prefix,
            Arc::new(move |i: &Interest| weak.upgrade().map(|m| m.on_command(i))),
        );
        Ok(meter)
    }

    /// The supply state (relay, load limit) the utility's commands set.
    pub fn supply(&self) -> Supply {
        self.commands.supply()
    }

    /// Whether the meter started from the state of an earlier run (so it was down in between).
    pub fn was_restarted(&self) -> bool {
        self.restarted
    }

    /// Counters of the signed commands this meter received.
    pub fn command_counters(&self) -> &CommandCounters {
        &self.commands.counters
    }

    /// Answers one command Interest (see [`crate::ops`]): checks it, executes it and returns
    /// the reply to sign; a refusal is an answer too, and counted.
    fn on_command(&self, interest: &Interest) -> Data {
        let outcome = self
            .commands
            .check(&self.trust, interest)
            .and_then(|(op, _)| self.execute(op, &interest.name).map(|s| (op, s)));
        let (status, sealed) = match outcome {
            Ok((op, sealed)) => {
                self.commands.counters.accept(op.verb());
                tracing::info!(meter = self.cfg.id, verb = op.verb(), "command executed");
                let text = format!("{} done", op.verb());
                (
                    Status {
                        code: 200,
                        text,
                        epoch: None,
                    },
                    sealed,
                )
            }
            Err(r) => {
                self.commands.counters.refuse(r.kind);
                tracing::info!(
                    meter = self.cfg.id,
                    "command {} refused ({}): {}",
                    interest.name,
                    r.kind,
                    r.why
                );
                (
                    Status {
                        code: r.code,
                        text: format!("{}: {}", r.kind, r.why),
                        epoch: None,
                    },
                    None,
                )
            }
        };
        let reply = CommandReply {
            status,
            supply: self.commands.supply(),
            sealed,
        };
        crate::ops::reply_data(&interest.name, &reply)
    }

    /// Executes an accepted command; a read returns its sealed reading.
    fn execute(&self, op: MeterOp, name: &Name) -> std::result::Result<Option<Bytes>, Refusal> {
        if op != MeterOp::Read {
            self.commands.apply(op)?;
            return Ok(None);
        }
        let (key_name, key) = self
            .reading_key()
            .map_err(|e| Refusal::new("not-joined", 409, e.to_string()))?;
        let r = self.model().snapshot(now_us(), self.commands.supply());
        let failed = |e: AmiError| Refusal::new("state", 500, e.to_string());
        let plain = Zeroizing::new(r.encode().map_err(|e| failed(e.into()))?.to_vec());
        let sealed = EnvelopeKey::derive(&key, &key_name, Purpose::Content)
            .seal(name, &plain)
            .map_err(|e| failed(e.into()))?;
        Ok(Some(sealed))
    }

    /// The current reading key (from the newest user key held) and its name.
    fn reading_key(&self) -> Result<(Name, amicn_kms::SymmetricKey)> {
        let st = self.lock();
        let member = st
            .member
            .as_ref()
            .ok_or(AmiError::NotJoined { meter: self.cfg.id })?;
        let keys = member.keys();
        let (n, k) = keys
            .first()
            .ok_or(AmiError::NotJoined { meter: self.cfg.id })?;
        reading_key(k, &Name::from_uri(n)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Meter id.
    pub fn id(&self) -> u32 {
        self.cfg.id
    }

    /// DR projects it subscribes to.
    pub fn projects(&self) -> &[String] {
        &self.cfg.projects
    }

    /// Enrols with the KMS (signed Interest, X25519 + HKDF user key) and returns the epoch in
    /// which the join takes effect.
    pub async fn enrol(&self) -> Result<u32> {
        let names = &self.cfg.names;
        let eph = self
            .enrolling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(EphemeralAgreement::generate);
        let req = EnrolRequest {
            x25519: eph.public_key(),
            projects: self.cfg.projects.clone(),
            certificate: self.creds.cert.to_wire(),
        };
        let mut interest = Interest::new(names.enrol(self.cfg.id));
        interest.app_parameters = Some(req.encode());
        interest.lifetime_ms = Some(self.cfg.lifetime.as_millis() as u64);
        self.creds
            .key
            .sign_interest(&mut interest, crate::net::signature_time())?;
        let keep = |eph: EphemeralAgreement| {
            *self.enrolling.lock().unwrap_or_else(|e| e.into_inner()) = Some(eph);
        };
        let data = match self.fetch.fetch_unverified(interest).await {
            Ok(d) => d,
            Err(e) => {
                keep(eph);
                return Err(e.into());
            }
        };
        if let Err(e) = self.trust.verify_data(&data).await {
            keep(eph);
            return Err(e);
        }
        if data.meta_info.content_type == CONTENT_TYPE_NACK {
            self.counters.enrol_refused.fetch_add(1, Ordering::Relaxed);
            // A refusal may answer a retransmitted copy of a request the KMS did accept (it is
            // a replay then): the next attempt must ask with the same key.
            keep(eph);
            return Err(AmiError::EnrolRefused {
                meter: self.cfg.id,
                why: String::from_utf8_lossy(&data.content).into_owned(),
            });
        }
        let rep = EnrolReply::decode(data.content.clone())?;
        let user_key = eph.agree(
            Role::Initiator,
            &names.meter(self.cfg.id),
            &names.kms(),
            &rep.x25519,
            &rep.salt,
        )?;
        {
            let mut st = self.lock();
            st.member = Some(MemberState::new(names.prefix_str(), self.cfg.id, user_key));
            st.next_epoch = rep.epoch;
        }
        self.save()?;
        Ok(rep.epoch)
    }

    /// Whether the meter holds enrolment state (enrolled, possibly waiting for its placement).
    pub fn is_enrolled(&self) -> bool {
        let st = self.lock();
        st.member.is_some() && st.next_epoch != 0
    }

    /// Writes the key state and the energy registers to the state directory, if there is one.
    pub fn save(&self) -> Result<()> {
        let Some(dir) = &self.cfg.state_dir else {
            return Ok(());
        };
        let (energy_mwh, reactive_mvarh) = {
            let m = self.model();
            (m.energy_mwh(), m.reactive_mvarh())
        };
        let saved = {
            let st = self.lock();
            save_state(
                dir,
                st.member.as_ref(),
                st.next_epoch,
                energy_mwh,
                reactive_mvarh,
            )
        };
        self.save_tariff(dir)?;
        saved
    }

    /// Writes the energy registers (and the enrolment record beside them) to the state
    /// directory, leaving the key state as last saved; cheaper than [`Meter::save`] and done at
    /// every captured interval.
    pub fn save_registers(&self) -> Result<()> {
        let Some(dir) = &self.cfg.state_dir else {
            return Ok(());
        };
        let (energy_mwh, reactive_mvarh) = {
            let m = self.model();
            (m.energy_mwh(), m.reactive_mvarh())
        };
        let (next_epoch, enrolled) = {
            let st = self.lock();
            (st.next_epoch, st.member.is_some())
        };
        self.save_tariff(dir)?;
        write_record(dir, next_epoch, enrolled, energy_mwh, reactive_mvarh)
    }

    /// Writes the tariff in force and its per-period registers (`tariff.json`), if any.
    fn save_tariff(&self, dir: &Path) -> Result<()> {
        let json = {
            let t = self.tariff.lock().unwrap_or_else(|e| e.into_inner());
            if t.0.is_none() && t.1.energy_mwh.is_empty() {
                return Ok(());
            }
            serde_json::to_vec(&serde_json::json!({ "tariff": t.0, "registers": t.1 }))
                .map_err(|e| AmiError::Config(e.to_string()))?
        };
        amicn_kms::persist::write_atomic(&dir.join("tariff.json"), &json)?;
        Ok(())
    }

    fn model(&self) -> std::sync::MutexGuard<'_, MeterModel> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest manifest epoch, found with CanBePrefix + MustBeFresh.
    pub async fn discover_epoch(&self) -> Result<u32> {
        let mut i = Interest::new(self.cfg.names.manifest_prefix());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        let d = self.fetch.fetch_unverified(i).await?;
        // Only a validated segment moves the meter forward; a forged one is counted and the
        // meter stays where it is until the next discovery.
        if let Err(e) = self.trust.verify_data(&d).await {
            self.counters.rejected_data.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        self.cfg
            .names
            .parse_manifest(&d.name)
            .ok_or_else(|| AmiError::protocol(&d.name, "not a manifest name"))
    }

    /// The next manifest epoch this meter will ingest (0 when it is not following).
    pub fn next_epoch(&self) -> u32 {
        self.lock().next_epoch
    }

    /// Ingests every manifest from the next one up to `target` (or the latest discovered).
    pub async fn sync_keys(&self, target: Option<u32>) -> Result<SyncReport> {
        let target = match target {
            Some(t) => t,
            None => self.discover_epoch().await?,
        };
        let mut rep = SyncReport::default();
        loop {
            let e = self.lock().next_epoch;
            if e == 0 || e > target {
                break;
            }
            if !self.cfg.sync_jitter.is_zero() {
                let max = self.cfg.sync_jitter.as_micros() as u64;
                let d = rand::rng().random_range(0..=max);
                tokio::time::sleep(Duration::from_micros(d)).await;
            }
            let started = Instant::now();
            let one = self.ingest_epoch(e).await?;
            self.sync_latency.record(started.elapsed());
            rep.manifests += 1;
            rep.wraps_fetched += one.wraps_fetched;
            rep.ratcheted += one.ratcheted;
            rep.departed |= one.departed;
            rep.epoch = e;
            if one.departed {
                self.backlog
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                break;
            }
        }
        if self.is_member() {
            self.flush_backlog();
        }
        Ok(rep)
    }

    /// Enrolled and waiting for the manifest that places it (not departed).
    fn awaiting_keys(&self) -> bool {
        let st = self.lock();
        st.next_epoch != 0 && st.member.as_ref().is_some_and(|m| m.place().is_none())
    }

    fn flush_backlog(&self) {
        let slots: Vec<reading::Reading> = self
            .backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for r in slots {
            let t = r.end_us();
            if let Err(e) = self.publish_captured(t, &r) {
                tracing::debug!("meter {}: back-filled reading at {t}: {e}", self.cfg.id);
            }
        }
    }

    async fn ingest_epoch(&self, e: u32) -> Result<SyncReport> {
        let (content, validated) = fetch_segmented(
            &self.fetch,
            &self.trust,
            &self.cfg.names.manifest(e),
            &self.counters.rejected_data,
        )
        .await?;
        let manifest_name = self.cfg.names.manifest(e);
        let kms_key = self
            .trust
            .signer_key(&validated)
            .ok_or_else(|| AmiError::protocol(&manifest_name, "signer certificate vanished"))?;
        let shared = shared_manifest(e, content, &kms_key)?;
        let (verified, digests) = (&shared.verified, &shared.wraps);
        let mut cache: HashMap<String, Wrap> = HashMap::new();
        for _ in 0..=MAX_WRAPS_PER_EPOCH {
            let mut missing: Option<String> = None;
            let result = {
                let mut st = self.lock();
                let member = st
                    .member
                    .as_mut()
                    .ok_or(AmiError::NotJoined { meter: self.cfg.id })?;
                // The member state is all-or-nothing, so an attempt that stops at a wrap not
                // fetched yet leaves it untouched; fetch that wrap and try again.
                member.ingest_verified(verified, &mut |name: &str| match cache.get(name) {
                    Some(w) => Some(w.clone()),
                    None => {
                        missing = Some(name.to_string());
                        None
                    }
                })
            };
            match (result, missing) {
                (Ok(ir), _) => {
                    {
                        let mut st = self.lock();
                        st.next_epoch = if ir.departed { 0 } else { e + 1 };
                    }
                    self.save()?;
                    self.counters.manifests.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .wraps_fetched
                        .fetch_add(u64::from(ir.fetched), Ordering::Relaxed);
                    self.counters
                        .ratcheted
                        .fetch_add(u64::from(ir.ratcheted), Ordering::Relaxed);
                    return Ok(SyncReport {
                        manifests: 1,
                        wraps_fetched: ir.fetched,
                        ratcheted: ir.ratcheted,
                        departed: ir.departed,
                        epoch: e,
                    });
                }
                (Err(GraphError::MissingWrap { .. }), Some(name)) => {
                    let n = Name::from_uri(&name)?;
                    let digest = digests.get(&n).copied().ok_or_else(|| {
                        AmiError::protocol(&manifest_name, format!("lists no digest for {name}"))
                    })?;
                    let w = self.fetch_wrap(&name, Some(digest)).await?;
                    cache.insert(name, w);
                }
                (Err(err), _) => return Err(err.into()),
            }
        }
        Err(AmiError::protocol(
            &manifest_name,
            "manifest needs too many wraps",
        ))
    }

    /// Fetches a wrap; with `digest` (from the signed manifest) by its implicit digest, so only
    /// the exact packet the KMS published can answer, whatever caches hold under its name.
    async fn fetch_wrap(&self, uri: &str, digest: Option<[u8; 32]>) -> Result<Wrap> {
        let mut name = Name::from_uri(uri)?;
        if let Some(d) = digest {
            name = name.append(Component::implicit_sha256_digest(d));
        }
        let d = fetch_exact(&self.fetch, name).await?;
        let payload: [u8; WRAP_LEN] = d
            .content
            .as_ref()
            .try_into()
            .map_err(|_| AmiError::protocol(&d.name, "wrap payload is not 72 bytes"))?;
        // The mode is informational; opening checks the name (as AAD) and the tag.
        Ok(Wrap {
            name: uri.to_string(),
            mode: WrapMode::Multicast,
            payload,
        })
    }

    /// Names (with epochs) of every key this meter holds.
    pub fn held_keys(&self) -> Vec<String> {
        let st = self.lock();
        st.member
            .as_ref()
            .map(|m| m.keys().into_iter().map(|(n, _)| n).collect())
            .unwrap_or_default()
    }

    /// Whether the meter currently holds a place in the key graph.
    pub fn is_member(&self) -> bool {
        self.lock()
            .member
            .as_ref()
            .is_some_and(|m| m.place().is_some())
    }

    /// Epoch of the last manifest ingested.
    pub fn epoch(&self) -> u32 {
        self.lock()
            .member
            .as_ref()
            .map(MemberState::epoch)
            .unwrap_or(0)
    }

    /// Measures the interval ending at `t_us` (advancing the registers, the tariff's
    /// per-period registers too) without publishing it.
    pub fn capture(&self, t_us: u64) -> reading::Reading {
        let flags =
            std::mem::take(&mut *self.pending_flags.lock().unwrap_or_else(|e| e.into_inner()));
        let supply = self.commands.supply();
        let (r, used_mwh) = {
            let mut m = self.model();
            let before = m.energy_mwh();
            let r = m.capture_with(t_us, self.cfg.reading_interval, flags, supply);
            (r, m.energy_mwh() - before)
        };
        let mut t = self.tariff.lock().unwrap_or_else(|e| e.into_inner());
        let (tariff, registers) = &mut *t;
        if let Some(tariff) = tariff {
            let start = t_us.saturating_sub(self.cfg.reading_interval.as_micros() as u64);
            registers.accumulate(tariff, start, t_us, used_mwh);
        }
        r
    }

    /// The TOU/CPP tariff in force (the newest version learned) and the per-period registers.
    pub fn tariff(&self) -> (Option<Tariff>, TariffRegisters) {
        self.tariff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks `tariff`'s signed latest pointer (one Interest, CanBePrefix + MustBeFresh) and,
    /// if it names a newer version than the one held, fetches that version by its implicit
    /// digest, decrypts it with the broadcast key and adopts it. Returns the version adopted,
    /// or `None` if the one held is current.
    pub async fn refresh_tariff(&self, tariff: &str) -> Result<Option<u64>> {
        let names = &self.cfg.names;
        self.counters.tariff_checks.fetch_add(1, Ordering::Relaxed);
        let p = self
            .fetch_latest(names.tariff_latest_prefix(tariff))
            .await?;
        let ptr: TariffPointer = serde_json::from_slice(&p.content)
            .map_err(|e| AmiError::protocol(&p.name, format!("tariff pointer: {e}")))?;
        if ptr.tariff != tariff || p.name != names.tariff_latest(tariff, ptr.version) {
            return Err(AmiError::protocol(
                &p.name,
                "pointer names another tariff or version",
            ));
        }
        let held = {
            let t = self.tariff.lock().unwrap_or_else(|e| e.into_inner());
            t.0.as_ref()
                .filter(|h| h.tariff == tariff)
                .map(|h| h.version)
        };
        if held.is_some_and(|v| v >= ptr.version) {
            return Ok(None);
        }
        let digest: [u8; 32] = hex::decode(&ptr.digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| AmiError::protocol(&p.name, "pointer digest is not 32 bytes of hex"))?;
        let d = self
            .fetch_verified(
                names
                    .price(tariff, ptr.version)
                    .append(Component::implicit_sha256_digest(digest)),
            )
            .await?;
        let plain = self.decrypt(&d)?;
        let t = Tariff::from_json(&plain)?;
        if t.tariff != tariff || t.version != ptr.version {
            return Err(AmiError::protocol(
                &d.name,
                "tariff content names another version",
            ));
        }
        let v = t.version;
        self.tariff.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(t);
        self.counters.tariff_updates.fetch_add(1, Ordering::Relaxed);
        if let Some(dir) = &self.cfg.state_dir {
            self.save_tariff(dir)?;
        }
        Ok(Some(v))
    }

    /// Measures the interval ending at `t_us`, encodes it in the [`reading`] format, encrypts it
    /// under the reading key (derived from the user key), signs it, serves it, and publishes a
    /// new latest pointer listing it.
    pub fn publish_reading(&self, t_us: u64) -> Result<Reading> {
        let r = self.capture(t_us);
        // The registers this reading shows reach the disk before anyone can fetch it, so a
        // crash never makes a later reading show less energy than one already published.
        self.save_registers()?;
        self.publish_captured(t_us, &r)
    }

    /// Publishes a captured interval as the reading stamped `t_us` (its end).
    fn publish_captured(&self, t_us: u64, r: &reading::Reading) -> Result<Reading> {
        let plain = Zeroizing::new(r.encode()?.to_vec());
        self.publish_plaintext(t_us, &plain)?;
        Ok(Reading {
            meter: self.cfg.id,
            t_us,
            energy_wh: r.active_import_wh().unwrap_or(0),
            power_w: r.active_power_w().unwrap_or(0),
            flags: r.flags,
        })
    }

    /// Seals `plain` as the reading stamped `t_us`, whatever it holds, signs, serves and lists
    /// it. [`Meter::publish_reading`] is the way to publish a reading; this is for tests and the
    /// demo's checks of what the MDMS refuses.
    pub fn publish_plaintext(&self, t_us: u64, plain: &[u8]) -> Result<()> {
        let (key_name, key) = self.reading_key()?;
        let name = self.cfg.names.reading(self.cfg.id, t_us);
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(&name, plain)?;
        let mut d = Data::new(name, content);
        d.meta_info.freshness_period_ms = Some(self.cfg.reading_interval.as_millis() as u64);
        let wire = self.creds.key.sign_data(&mut d)?;
        let digest = Data::decode(wire.clone())?.implicit_digest();
        self.publisher.put_wire(wire)?;
        self.counters.readings.fetch_add(1, Ordering::Relaxed);
        self.publish_pointer(t_us, digest)?;
        Ok(())
    }

    /// Adds a reading to the latest pointer and publishes the pointer's next version
    /// (`/<u>/ami/meter/<id>/latest/v=<t>`, short-lived so MustBeFresh discovery sees new ones).
    fn publish_pointer(&self, t_us: u64, digest: [u8; 32]) -> Result<()> {
        let entries: Vec<(u64, [u8; 32])> = {
            let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            r.retain(|(t, _)| *t != t_us);
            r.push_front((t_us, digest));
            r.make_contiguous()
                .sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
            r.truncate(self.cfg.keep_readings.max(1));
            r.iter().copied().collect()
        };
        let newest = entries.first().map_or(t_us, |e| e.0);
        let mut p = Data::new(
            self.cfg.names.latest(self.cfg.id, newest),
            wire::encode_pointer(&entries),
        );
        let fresh = (self.cfg.reading_interval.as_millis() as u64 / 2).max(50);
        p.meta_info.freshness_period_ms = Some(fresh);
        self.publisher.put_wire(self.creds.key.sign_data(&mut p)?)?;
        Ok(())
    }

    /// Publishes a reading at every interval boundary `start_us + k·interval` until
    /// [`Meter::stop_readings`] (or until `until`). Slots that pass between enrolment and the
    /// manifest that places the meter are kept and published once the keys arrive; slots
    /// before enrolment or after departure are skipped.
    pub async fn run_readings(self: Arc<Self>, start_us: u64, until: Instant) {
        let interval = (self.cfg.reading_interval.as_micros() as u64).max(1);
        let now = now_us();
        let mut k = now.saturating_sub(start_us).div_ceil(interval);
        loop {
            let t = start_us + k * interval;
            let now = now_us();
            if t > now {
                tokio::time::sleep(Duration::from_micros(t - now)).await;
            }
            if Instant::now() >= until || !self.readings_on.load(Ordering::Relaxed) {
                break;
            }
            if self.is_member() {
                if let Err(e) = self.publish_reading(t) {
                    tracing::debug!("meter {}: reading at {t}: {e}", self.cfg.id);
                }
            } else if self.awaiting_keys() {
                // The interval is measured now and published when the keys arrive.
                let r = self.capture(t);
                if let Err(e) = self.save_registers() {
                    tracing::warn!("meter {}: saving registers: {e}", self.cfg.id);
                }
                let mut b = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
                if b.len() == MAX_BACKLOG {
                    b.pop_front();
                }
                b.push_back(r);
            }
            k += 1;
        }
    }

    /// Stops the reading loop at its next slot.
    pub fn stop_readings(&self) {
        self.readings_on.store(false, Ordering::Relaxed);
    }

    /// Decrypts enveloped content with the key its EncryptedContent names, if held.
    pub fn decrypt(&self, data: &Data) -> Result<Zeroizing<Vec<u8>>> {
        let ec = EncryptedContent::decode(data.content.clone())?;
        let st = self.lock();
        let member = st
            .member
            .as_ref()
            .ok_or(AmiError::NotJoined { meter: self.cfg.id })?;
        for (n, k) in member.keys() {
            if Name::from_uri(&n)? == ec.key_name {
                let key = EnvelopeKey::derive(k, &ec.key_name, Purpose::Content);
                return Ok(key.open_decoded(&data.name, &ec)?);
            }
        }
        Err(AmiError::KeyNotHeld {
            data_name: data.name.to_string(),
            key_name: ec.key_name.to_string(),
        })
    }

    /// Tries every key the meter holds, whatever its name or epoch, against enveloped content;
    /// returns how many open it. What an adversary keeping its old keys would attempt.
    pub fn keys_that_open(&self, data: &Data) -> Result<usize> {
        let ec = EncryptedContent::decode(data.content.clone())?;
        let st = self.lock();
        let Some(member) = st.member.as_ref() else {
            return Ok(0);
        };
        Ok(member
            .keys()
            .into_iter()
            .filter(|(_, k)| {
                EnvelopeKey::derive(k, &ec.key_name, Purpose::Content)
                    .open_decoded(&data.name, &ec)
                    .is_ok()
            })
            .count())
    }

    /// Fetches the wraps named `uris` and tries every held key on each; returns how many
    /// (wrap, key) pairs open. A departed meter must get 0 on the wraps of its departure epoch.
    pub async fn wraps_opened_with_held_keys(&self, uris: &[String]) -> Result<usize> {
        let mut opened = 0;
        for uri in uris {
            let w = self.fetch_wrap(uri, None).await?;
            let st = self.lock();
            if let Some(member) = st.member.as_ref() {
                opened += member
                    .keys()
                    .into_iter()
                    .filter(|(_, k)| wrap::open(&w, uri, k.as_bytes()).is_ok())
                    .count();
            }
        }
        Ok(opened)
    }

    /// Fetches a Data by name and validates it against the trust policy.
    pub async fn fetch_verified(&self, name: Name) -> Result<Data> {
        let d = fetch_exact(&self.fetch, name).await?;
        self.trust.verify_data(&d).await?;
        Ok(d)
    }

    /// Fetches the newest Data under `prefix` (CanBePrefix, MustBeFresh) and validates it; a
    /// forged answer is counted and asked for again past the cache.
    async fn fetch_latest(&self, prefix: Name) -> Result<Data> {
        let mut last = None;
        for _ in 0..2 {
            let mut i = Interest::new(prefix.clone());
            i.can_be_prefix = true;
            i.must_be_fresh = true;
            let d = self.fetch.fetch_unverified(i).await?;
            match self.trust.verify_data(&d).await {
                Ok(_) => return Ok(d),
                Err(e) => {
                    self.counters.rejected_data.fetch_add(1, Ordering::Relaxed);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| AmiError::protocol(&prefix, "validation failed")))
    }

    /// Fetches, validates and decrypts the newest version of `tariff`.
    pub async fn fetch_latest_price(&self, tariff: &str) -> Result<Price> {
        let d = self.fetch_latest(self.cfg.names.tariff(tariff)).await?;
        let plain = self.decrypt(&d)?;
        serde_json::from_slice(&plain)
            .map_err(|e| AmiError::protocol(&d.name, format!("price: {e}")))
    }

    /// Fetches, validates and decrypts the newest DR event of `project`.
    pub async fn fetch_latest_dr_event(&self, project: &str) -> Result<DrEvent> {
        let d = self
            .fetch_latest(self.cfg.names.dr_event_prefix(project))
            .await?;
        let plain = self.decrypt(&d)?;
        serde_json::from_slice(&plain)
            .map_err(|e| AmiError::protocol(&d.name, format!("DR event: {e}")))
    }

    /// DR projects whose key this meter holds now.
    pub fn held_projects(&self) -> Vec<String> {
        let dr = format!("{}/ami/dr/", self.cfg.names.prefix_str());
        let mut out: Vec<String> = self
            .held_keys()
            .into_iter()
            .filter_map(|n| {
                n.strip_prefix(&dr)
                    .and_then(|r| r.split('/').next())
                    .map(str::to_string)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Fetches, validates and decrypts a price.
    pub async fn fetch_price(&self, tariff: &str, version: u64) -> Result<Price> {
        let d = self
            .fetch_verified(self.cfg.names.price(tariff, version))
            .await?;
        let plain = self.decrypt(&d)?;
        serde_json::from_slice(&plain)
            .map_err(|e| AmiError::protocol(&d.name, format!("price: {e}")))
    }

    /// Fetches, validates and decrypts a DR event.
    pub async fn fetch_dr_event(&self, project: &str, seq: u64) -> Result<DrEvent> {
        let d = self
            .fetch_verified(self.cfg.names.dr_event(project, seq))
            .await?;
        let plain = self.decrypt(&d)?;
        serde_json::from_slice(&plain)
            .map_err(|e| AmiError::protocol(&d.name, format!("DR event: {e}")))
    }

    /// Publishes event `kind` now (the next sequence number, sealed under the reading key) and
    /// notifies the MDMS; returns the MDMS's signed answer and the round trip.
    pub async fn raise_event(
        &self,
        kind: EventKind,
        clock_step_us: Option<i64>,
    ) -> Result<EventOutcome> {
        let seq = self.take_event_seq()?;
        let ev = MeterEvent {
            meter: self.cfg.id,
            seq,
            kind,
            t_us: now_us(),
            clock_step_us,
        };
        self.publish_event(&ev)?;
        self.notify_event(seq).await
    }

    /// Reserves the next event sequence number (persisted first, so a restart never reuses
    /// one).
    pub fn take_event_seq(&self) -> Result<u64> {
        let mut next = self.next_event.lock().unwrap_or_else(|e| e.into_inner());
        let seq = *next;
        if let Some(d) = &self.cfg.state_dir {
            std::fs::create_dir_all(d).map_err(|e| AmiError::State {
                path: d.clone(),
                why: e.to_string(),
            })?;
            let json = serde_json::json!({ "next_seq": seq + 1 }).to_string();
            amicn_kms::persist::write_atomic(&d.join("events.json"), json.as_bytes())?;
        }
        *next = seq + 1;
        Ok(seq)
    }

    /// Seals `ev` (whatever it says) under the reading key and serves it as this meter's event
    /// `ev.seq`. [`Meter::raise_event`] is the way to report an event; this is for tests and
    /// the demo's checks of what the MDMS refuses.
    pub fn publish_event(&self, ev: &MeterEvent) -> Result<Name> {
        let (key_name, key) = self.reading_key()?;
        let name = self.cfg.names.event(self.cfg.id, ev.seq);
        let plain =
            Zeroizing::new(serde_json::to_vec(ev).map_err(|e| AmiError::Config(e.to_string()))?);
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(&name, &plain)?;
        let mut d = Data::new(name.clone(), content);
        d.meta_info.freshness_period_ms = Some(60_000);
        self.publisher.put_wire(self.creds.key.sign_data(&mut d)?)?;
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        Ok(name)
    }

    /// Tells the MDMS that event `seq` is waiting and returns its checked answer.
    pub async fn notify_event(&self, seq: u64) -> Result<EventOutcome> {
        let started = Instant::now();
        let name = self.cfg.names.event_notify(self.cfg.id, seq);
        let mut i = Interest::new(name.clone());
        i.must_be_fresh = true;
        // The MDMS answers after fetching, verifying and committing the event.
        i.lifetime_ms = Some(self.cfg.lifetime.as_millis() as u64 * 4);
        let d = self.fetch.fetch_unverified(i).await?;
        // The mdms-answers rule lets only the MDMS key sign under its notify names.
        self.trust.verify_data(&d).await?;
        let status = Status::decode(d.content.clone())?;
        if status.code == 200 || status.code == 409 {
            self.counters
                .events_confirmed
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(EventOutcome {
            name: self.cfg.names.event(self.cfg.id, seq),
            seq,
            status,
            latency: started.elapsed(),
        })
    }

    /// Waits up to `wait` for event `seq` of `project`: one Interest for its exact name, which
    /// forwarders aggregate with the other members' and the DR operator holds until it
    /// publishes (see [`crate::DrOperator`]). Verifies and decrypts what arrives.
    pub async fn await_dr_event(&self, project: &str, seq: u64, wait: Duration) -> Result<DrEvent> {
        let name = self.cfg.names.dr_event(project, seq);
        let mut i = Interest::new(name.clone());
        i.lifetime_ms = Some(wait.as_millis() as u64);
        let d = match self.publisher.client().express(&i).await? {
            amicn_face::client::Reply::Data { data, .. } => data,
            amicn_face::client::Reply::Nack { reason } => {
                return Err(AmiError::protocol(&name, format!("Nacked: {reason:?}")));
            }
        };
        if d.name != name {
            return Err(AmiError::protocol(&d.name, "not the event asked for"));
        }
        if let Err(e) = self.trust.verify_data(&d).await {
            self.counters.rejected_data.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        let plain = self.decrypt(&d)?;
        let ev: DrEvent = serde_json::from_slice(&plain)
            .map_err(|e| AmiError::protocol(&d.name, format!("DR event: {e}")))?;
        if ev.project != project || ev.seq != seq {
            return Err(AmiError::protocol(
                &d.name,
                "event content names another event",
            ));
        }
        self.counters.dr_events.fetch_add(1, Ordering::Relaxed);
        Ok(ev)
    }

    /// The signed acknowledgement of `ev` naming meter `as_meter` (this meter's id, except in
    /// refusal tests), opted in or out as configured, with its wire encoding.
    pub fn dr_ack(
        &self,
        ev: &DrEvent,
        as_meter: u32,
        received_us: u64,
    ) -> Result<(Interest, Bytes)> {
        let opt_in = self.cfg.dr_opt_in;
        let start_at_s = opt_in
            .then(|| ev.start_s + rand::rng().random_range(0..=u64::from(ev.randomization_s)));
        let ack = DrAck {
            meter: as_meter,
            project: ev.project.clone(),
            seq: ev.seq,
            event_id: ev.id(),
            opt_in,
            start_at_s,
            received_us,
        };
        let mut i = Interest::new(self.cfg.names.dr_ack(&ev.project, as_meter, ev.seq));
        i.app_parameters = Some(ack.encode(&self.creds.cert.to_wire()));
        i.lifetime_ms = Some(self.cfg.lifetime.as_millis() as u64);
        i.must_be_fresh = true;
        let wire = self
            .creds
            .key
            .sign_interest(&mut i, crate::net::signature_time())?;
        Ok((Interest::decode(wire.clone())?, wire))
    }

    /// Sends a signed acknowledgement and returns the DR operator's checked answer.
    pub async fn send_dr_ack(&self, i: &Interest, wire: Bytes) -> Result<Status> {
        let reply = self
            .publisher
            .client()
            .express_wire(&i.name, false, wire, self.cfg.lifetime)
            .await?;
        let d = match reply {
            amicn_face::client::Reply::Data { data, .. } => data,
            amicn_face::client::Reply::Nack { reason } => {
                return Err(AmiError::protocol(&i.name, format!("Nacked: {reason:?}")));
            }
        };
        // Receipts fall to the dr-events rule: only the DR operator's key signs under dr/.
        self.trust.verify_data(&d).await?;
        let status = Status::decode(d.content.clone())?;
        if status.code == 200 {
            self.counters.dr_acks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(status)
    }

    /// Waits for event `seq` of `project` and acknowledges it; returns the event and the
    /// operator's answer.
    pub async fn respond_dr(
        &self,
        project: &str,
        seq: u64,
        wait: Duration,
    ) -> Result<(DrEvent, Status)> {
        let ev = self.await_dr_event(project, seq, wait).await?;
        let (i, wire) = self.dr_ack(&ev, self.cfg.id, now_us())?;
        let status = self.send_dr_ack(&i, wire).await?;
        Ok((ev, status))
    }

    /// Follows `project`'s events from `seq` on until `until`, acknowledging each: one
    /// outstanding Interest at a time, re-expressed when it expires.
    pub async fn follow_dr(self: Arc<Self>, project: String, mut seq: u64, until: Instant) {
        while Instant::now() < until {
            let wait = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(4));
            if wait.is_zero() {
                break;
            }
            match self.respond_dr(&project, seq, wait).await {
                Ok(_) => seq += 1,
                Err(e) => tracing::debug!(meter = self.cfg.id, "DR {project}/{seq}: {e}"),
            }
        }
    }

    /// The meter's publisher (readings and certificate).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

/// The next event sequence number saved in `dir` (1 if none).
/// The tariff and per-period registers [`Meter::save_tariff`] wrote (none yet: no tariff).
fn load_tariff(dir: &Path) -> Result<(Option<Tariff>, TariffRegisters)> {
    #[derive(serde::Deserialize)]
    struct Saved {
        tariff: Option<Tariff>,
        registers: TariffRegisters,
    }
    let path = dir.join("tariff.json");
    match std::fs::read(&path) {
        Ok(b) => {
            let s: Saved = serde_json::from_slice(&b).map_err(|e| AmiError::State {
                path,
                why: format!("damaged: {e}"),
            })?;
            Ok((s.tariff, s.registers))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((None, TariffRegisters::default()))
        }
        Err(e) => Err(AmiError::State {
            path,
            why: e.to_string(),
        }),
    }
}

fn load_next_event(dir: &Path) -> Result<u64> {
    let path = dir.join("events.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v["next_seq"].as_u64())
            .ok_or_else(|| AmiError::State {
                path,
                why: "damaged: no next_seq".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(e) => Err(AmiError::State {
            path,
            why: e.to_string(),
        }),
    }
}

/// The member state file and the small record beside it (next epoch, energy registers).
fn state_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("member.bin"), dir.join("meter.json"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MeterRecord {
    next_epoch: u32,
    /// Active import register, whole Wh (what older state files hold alone).
    energy_wh: u64,
    enrolled: bool,
    /// Active import register, mWh.
    #[serde(default)]
    energy_mwh: Option<u64>,
    /// Reactive import register, mvarh.
    #[serde(default)]
    reactive_mvarh: Option<u64>,
}

/// What a meter restores from its state directory.
struct SavedState {
    member: MemberState,
    next_epoch: u32,
    energy_mwh: u64,
    reactive_mvarh: u64,
}

fn save_state(
    dir: &Path,
    member: Option<&MemberState>,
    next_epoch: u32,
    energy_mwh: u64,
    reactive_mvarh: u64,
) -> Result<()> {
    let io = |e: std::io::Error| AmiError::State {
        path: dir.to_path_buf(),
        why: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let (m, _) = state_files(dir);
    if let Some(member) = member {
        amicn_kms::persist::save_member(member, &m)?;
    }
    write_record(
        dir,
        next_epoch,
        member.is_some(),
        energy_mwh,
        reactive_mvarh,
    )
}

fn write_record(
    dir: &Path,
    next_epoch: u32,
    enrolled: bool,
    energy_mwh: u64,
    reactive_mvarh: u64,
) -> Result<()> {
    let (_, r) = state_files(dir);
    let rec = MeterRecord {
        next_epoch,
        energy_wh: energy_mwh / 1_000,
        enrolled,
        energy_mwh: Some(energy_mwh),
        reactive_mvarh: Some(reactive_mvarh),
    };
    let json = serde_json::to_vec(&rec).map_err(|e| AmiError::Config(e.to_string()))?;
    amicn_kms::persist::write_atomic(&r, &json)?;
    Ok(())
}

fn load_state(dir: &Path) -> Result<Option<SavedState>> {
    let (m, r) = state_files(dir);
    let text = match std::fs::read(&r) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AmiError::State {
                path: r,
                why: e.to_string(),
            });
        }
    };
    let rec: MeterRecord = serde_json::from_slice(&text).map_err(|e| AmiError::State {
        path: r.clone(),
        why: format!("damaged: {e}"),
    })?;
    if !rec.enrolled {
        return Ok(None);
    }
    let member = amicn_kms::persist::load_member(&m)?;
    Ok(Some(SavedState {
        member,
        next_epoch: rec.next_epoch,
        energy_mwh: rec
            .energy_mwh
            .unwrap_or_else(|| rec.energy_wh.saturating_mul(1_000)),
        reactive_mvarh: rec.reactive_mvarh.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_supply_state_shows_in_readings_and_registers() {
        let quarter = Duration::from_secs(900);
        let evening = 1_705_276_800_000_000u64 + 19 * 3_600_000_000;
        let mut m = MeterModel::new(9, 1_000);
        let off = Supply {
            connected: false,
            limit_w: None,
        };
        let r = m.capture_with(evening, quarter, Flags::NONE, off);
        // Nothing drawn: the register stays at 1,000 Wh, power and current are 0.
        assert_eq!(r.active_import_wh(), Some(1_000));
        assert_eq!(r.active_power_w(), Some(0));
        assert_eq!(r.register(Obis::CURRENT_L1).unwrap().value, 0);
        assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 0);
        let limited = Supply {
            connected: true,
            limit_w: Some(60),
        };
        let r = m.capture_with(evening + 900_000_000, quarter, Flags::NONE, limited);
        // Every household draws at least 50 W and the evening peak far more: capped at 60 W,
        // which is 60 W × 15 min = 15 Wh (15,000 mWh) on the register.
        assert_eq!(r.active_power_w(), Some(60));
        assert_eq!(m.energy_mwh(), 1_015_000);
        assert_eq!(r.register(Obis::LOAD_LIMIT).unwrap().value, 60);
        assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 1);
        // A snapshot reads the registers without advancing them.
        let snap = m.snapshot(evening + 1_000_000_000, limited);
        snap.validate().unwrap();
        assert_eq!(snap.active_import_wh(), Some(1_015));
        assert_eq!(snap.end_us(), evening + 1_000_000_000);
        assert_eq!(m.energy_mwh(), 1_015_000);
    }

    #[test]
    fn simulated_registers_are_consistent() {
        let quarter = Duration::from_secs(900);
        let mut m = MeterModel::new(42, 52_000);
        // A day of quarter hours from 2024-01-15T00:15:00Z.
        let day0 = 1_705_276_800_000_000u64;
        let mut last_wh = 52_000u64;
        let mut last_mwh = m.energy_mwh();
        let mut peak = 0u32;
        let mut trough = u32::MAX;
        for k in 1..=96u64 {
            let end = day0 + k * 900_000_000;
            let r = m.capture(end, quarter, Flags::NONE);
            r.validate().unwrap();
            assert_eq!((r.meter, r.end_us(), r.interval_ms), (42, end, 900_000));
            assert_eq!(r.registers.len(), 8);
            assert_eq!(r.register(Obis::DISCONNECT_CONTROL).unwrap().value, 1);
            assert!(r.register(Obis::LOAD_LIMIT).is_none());
            let wh = r.active_import_wh().unwrap();
            let w = r.active_power_w().unwrap();
            assert!((50..=9_000).contains(&w), "{w} W");
            // The register advances by this interval's power × 15 min (kept in mWh).
            assert_eq!(m.energy_mwh() - last_mwh, u64::from(w) * 900_000 / 3_600);
            assert!(wh >= last_wh);
            assert_eq!(wh, m.energy_mwh() / 1_000);
            let v = r.register(Obis::VOLTAGE_L1).unwrap().value_f64();
            assert!((220.0..240.0).contains(&v), "{v} V");
            let a = r.register(Obis::CURRENT_L1).unwrap().value_f64();
            let expect = f64::from(w) / v;
            // Current is apparent power over voltage: P/V up to the power factor (≥ 0.95).
            assert!(
                a >= expect * 0.99 && a <= expect / 0.94 + 0.01,
                "{a} A at {w} W {v} V"
            );
            let q = r.register(Obis::REACTIVE_IMPORT_ENERGY).unwrap().value;
            assert!(q >= 0 && (q as u64) < wh);
            assert_eq!(r.register(Obis::ACTIVE_EXPORT_ENERGY).unwrap().value, 0);
            assert_eq!(r.register(Obis::REACTIVE_EXPORT_ENERGY).unwrap().value, 0);
            last_wh = wh;
            last_mwh = m.energy_mwh();
            peak = peak.max(w);
            trough = trough.min(w);
        }
        // The evening peak shows in the profile.
        assert!(peak > 2 * trough, "peak {peak} W, trough {trough} W");
        let restored = MeterModel::restore(42, m.energy_mwh(), m.reactive_mvarh());
        assert_eq!(restored.energy_mwh(), m.energy_mwh());
        assert_eq!(restored.base_w, m.base_w);
    }
}
