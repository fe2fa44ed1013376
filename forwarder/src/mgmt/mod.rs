//! NFD-compatible management: the `/localhost/nfd` control commands, status datasets and face
//! event notifications that `nfdc`, python-ndn, NDNts and ndn-cxx applications speak.
//!
//! Management is sans-IO like the forwarding core. The core hands it every Interest under
//! `/localhost/nfd` that arrived on a local face; management parses the command name, updates the
//! RIB (which yields FIB changes), the FIB, strategy choices and the CS through [`Tables`], asks the
//! runtime to create or destroy sockets through [`FaceSystem`], and queues the reply Data for the
//! requesting face ([`Management::poll_reply`]). Replies are named exactly like the command
//! Interest, carry a ControlResponse, FreshnessPeriod 1 s and a DigestSha256 signature, as NFD's
//! `Dispatcher` produces them (WIRE.md §5).
//!
//! Command Interests are accepted without signature verification, as NFD's shipped configuration
//! does for `/localhost`; a [`CommandVerifier`] (e.g. [`DigestVerifier`]) can be installed.
//!
//! Driving it next to a [`crate::core::Forwarder`]:
//!
//! ```text
//! fw.on_packet(now, face, bytes);              // management Interests queue up in the core
//! mgmt.process(now, &mut fw, &mut face_system); // face events, commands, datasets; replies
//!                                               // go back out through the core
//! mgmt.on_timeout_core(now, &mut fw);           // when mgmt.poll_timeout() is reached
//! while let Some((face, bytes)) = fw.poll_transmit() { /* write */ }
//! ```

mod announcement;
pub mod dataset;
mod glue;
pub(crate) mod params;
mod request;
pub mod rib;
mod verify;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use amicn_tlv::mgmt::{ControlParameters, ControlResponse, FaceQueryFilter};
use amicn_tlv::{Component, Data, Interest, Name};
use bytes::Bytes;

use crate::core::{FaceCounters, FaceId, FaceOptions, FacePersistency, Time};

pub use glue::ManagedCore;
pub use rib::{FibUpdate, Rib, Route};
pub use verify::DigestVerifier;

use dataset::{FRESHNESS_MS, ReplyCache};
use request::{Command, Dataset, Request, Verb};

/// Most name components a route or FIB prefix may have (NFD `Fib::getMaxDepth()`).
pub const MAX_PREFIX_COMPONENTS: usize = 32;

/// ControlResponse status codes used by NFD's managers.
pub mod status {
    /// Command succeeded.
    pub const OK: u64 = 200;
    /// Parameters missing, forbidden or invalid; malformed face URI.
    pub const BAD_REQUEST: u64 = 400;
    /// Command signature rejected by the verifier.
    pub const UNAUTHORIZED: u64 = 403;
    /// No such face / strategy.
    pub const NOT_FOUND: u64 = 404;
    /// Face URI scheme not supported.
    pub const UNSUPPORTED_PROTOCOL: u64 = 406;
    /// Face already exists, or the requested face properties conflict.
    pub const CONFLICT: u64 = 409;
    /// The next-hop face does not exist (`fib/add-nexthop`).
    pub const FACE_NOT_FOUND: u64 = 410;
    /// Prefix longer than [`super::MAX_PREFIX_COMPONENTS`].
    pub const NAME_TOO_LONG: u64 = 414;
    /// Face creation did not complete.
    pub const FACE_CREATION_FAILED: u64 = 504;
}

/// Outcome of checking a command Interest's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Execute the command.
    Accept,
    /// Answer 403 "authorization rejected".
    Reject,
    /// The signature is malformed: drop the command without answering.
    Drop,
}

/// Optional signature verification of command Interests (none by default, as in NFD's
/// shipped `localhost_security` configuration).
pub trait CommandVerifier {
    /// Judges one command Interest.
    fn verify(&mut self, now: Time, interest: &Interest) -> Verdict;

    /// Refusals so far by reason (`(reason, count)`), for status snapshots and metrics.
    fn refusals(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// What the verifier enforces, for an operator reading the effective configuration.
    fn describe(&self) -> String {
        String::new()
    }
}

/// A [`CommandVerifier`] behind a shared lock, so it can travel in a cloneable configuration
/// (the runtime's) while its owner keeps a handle to read its counters.
#[derive(Clone)]
pub struct SharedVerifier(Arc<Mutex<Box<dyn CommandVerifier + Send>>>);

impl SharedVerifier {
    /// Wraps a verifier.
    pub fn new(verifier: impl CommandVerifier + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(verifier))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn CommandVerifier + Send>> {
        // A panic while judging one command leaves nothing half-updated that matters more
        // than refusing management altogether would.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CommandVerifier for SharedVerifier {
    fn verify(&mut self, now: Time, interest: &Interest) -> Verdict {
        self.lock().verify(now, interest)
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.lock().refusals()
    }

    fn describe(&self) -> String {
        self.lock().describe()
    }
}

impl std::fmt::Debug for SharedVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedVerifier")
            .field("enforces", &self.describe())
            .field("refusals", &self.refusals())
            .finish_non_exhaustive()
    }
}

/// Everything management reads from and changes in the forwarding core.
pub trait Tables {
    /// Options and counters of a face, if it exists.
    fn face(&self, face: FaceId) -> Option<(FaceOptions, FaceCounters)>;
    /// Every face in ascending id order.
    fn faces(&self) -> Vec<(FaceId, FaceOptions, FaceCounters)>;
    /// Changes the updatable options of a face (persistency, flags, MTU); false if it is gone.
    fn update_face(&mut self, face: FaceId, options: FaceOptions) -> bool;
    /// Adds a FIB next hop or changes its cost, creating the entry if needed.
    fn fib_add_next_hop(&mut self, prefix: &Name, face: FaceId, cost: u64);
    /// Removes a FIB next hop; the entry goes away with its last next hop.
    fn fib_remove_next_hop(&mut self, prefix: &Name, face: FaceId);
    /// The FIB in name order: prefix and (face, cost) next hops.
    fn fib_entries(&self) -> Vec<(Name, Vec<(FaceId, u64)>)>;
    /// Content Store state.
    fn cs_state(&self) -> CsState;
    /// Changes CS capacity (packets) and the admit / serve switches; `None` leaves a setting.
    fn cs_configure(&mut self, capacity: Option<u64>, admit: Option<bool>, serve: Option<bool>);
    /// Erases up to `limit` cached Data under `prefix`, returning how many went.
    fn cs_erase(&mut self, prefix: &Name, limit: usize) -> usize;
    /// Strategy choices: (prefix, versioned strategy name), in name order.
    fn strategy_choices(&self) -> Vec<(Name, Name)>;
    /// Chooses a strategy for a prefix; returns the versioned instance name, `None` if no such
    /// strategy exists.
    fn strategy_set(&mut self, prefix: &Name, strategy: &Name) -> Option<Name>;
    /// Removes the strategy choice of a prefix (the root keeps its choice).
    fn strategy_unset(&mut self, prefix: &Name);
    /// Table sizes and packet counters for `status/general`.
    fn forwarder_counters(&self) -> ForwarderCounters;
}

/// Content Store figures for `cs/info` and `cs/config` replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsState {
    /// Capacity in packets.
    pub capacity: u64,
    /// Whether Data is admitted.
    pub admit: bool,
    /// Whether cached Data satisfies Interests.
    pub serve: bool,
    /// Packets currently cached.
    pub entries: u64,
    /// Lookups that found Data.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

/// Forwarder-wide figures for `status/general` (NFD ForwarderStatus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderCounters {
    /// Name-tree entries (or the closest equivalent: distinct table names).
    pub n_name_tree_entries: u64,
    /// FIB entries.
    pub n_fib_entries: u64,
    /// PIT entries.
    pub n_pit_entries: u64,
    /// Measurements entries.
    pub n_measurements_entries: u64,
    /// CS entries.
    pub n_cs_entries: u64,
    /// Interests received.
    pub n_in_interests: u64,
    /// Data received.
    pub n_in_data: u64,
    /// Nacks received.
    pub n_in_nacks: u64,
    /// Interests sent.
    pub n_out_interests: u64,
    /// Data sent.
    pub n_out_data: u64,
    /// Nacks sent.
    pub n_out_nacks: u64,
    /// Interests satisfied.
    pub n_satisfied_interests: u64,
    /// Interests that expired unsatisfied.
    pub n_unsatisfied_interests: u64,
}

/// What `faces/create` asks the runtime for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceCreateRequest {
    /// Remote FaceUri (`udp4://192.0.2.1:6363`, `tcp4://...`).
    pub remote_uri: String,
    /// Local FaceUri, if the requester chose one.
    pub local_uri: Option<String>,
    /// Requested persistency (default persistent).
    pub persistency: FacePersistency,
    /// Requested MTU.
    pub mtu: Option<u64>,
    /// Requested face flag bits (only those set in the mask matter).
    pub flags: u64,
    /// Which flag bits are requested.
    pub mask: u64,
}

/// Why the runtime could not create a face; each maps to the code NFD's FaceManager sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaceCreateError {
    /// The URI does not parse (400).
    MalformedUri,
    /// The URI is not canonical, e.g. a host name instead of an address (400).
    NonCanonicalUri,
    /// No channel serves this scheme (406).
    UnsupportedProtocol,
    /// A face with this remote URI exists already (409, with that face's parameters).
    Exists(FaceId),
    /// The requested properties cannot be honoured (409).
    InvalidProperties(String),
    /// Connecting failed (504).
    Failed(String),
}

/// The runtime's side of face management: sockets live there.
pub trait FaceSystem {
    /// Starts creating a face. Returns the result if it is known at once; `None` means the
    /// runtime will call [`Management::on_face_created`] with `request` later.
    fn create_face(
        &mut self,
        request: u64,
        params: &FaceCreateRequest,
    ) -> Option<Result<FaceId, FaceCreateError>>;
    /// Closes a face (the runtime then removes it from the core and tells management through
    /// [`Management::on_face_removed`]).
    fn destroy_face(&mut self, face: FaceId);
    /// Local URIs of the channels (listening sockets) for `faces/channels`.
    fn channels(&self) -> Vec<String>;
}

/// A [`FaceSystem`] that has no sockets (tests, or a core without a runtime): creation is
/// refused as unsupported, destruction is ignored.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaceSystem;

impl FaceSystem for NoFaceSystem {
    fn create_face(
        &mut self,
        _request: u64,
        _params: &FaceCreateRequest,
    ) -> Option<Result<FaceId, FaceCreateError>> {
        Some(Err(FaceCreateError::UnsupportedProtocol))
    }

    fn destroy_face(&mut self, _face: FaceId) {}

    fn channels(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Settings of the management module.
#[derive(Debug, Clone)]
pub struct MgmtConfig {
    /// Unix time in ms at virtual time zero, to stamp dataset versions and
    /// `status/general` timestamps with wall-clock values as NFD does.
    pub epoch_unix_ms: u64,
    /// NFD version string reported by `status/general`.
    pub nfd_version: String,
    /// Bytes of dataset segments and notifications kept for follow-up Interests (the newest
    /// dataset version is always kept whole).
    pub cache_bytes: usize,
    /// How long they are kept, in ms.
    pub cache_lifetime_ms: u64,
}

impl Default for MgmtConfig {
    fn default() -> Self {
        MgmtConfig {
            epoch_unix_ms: 0,
            nfd_version: concat!("amicn-", env!("CARGO_PKG_VERSION")).to_string(),
            cache_bytes: 4 << 20,
            cache_lifetime_ms: 10_000,
        }
    }
}

/// Counters of what management did with the Interests it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MgmtCounters {
    /// Commands answered (any status).
    pub commands: u64,
    /// Dataset segments sent.
    pub dataset_segments: u64,
    /// Interests dropped: unknown module/verb, undecodable parameters, malformed signature.
    pub dropped: u64,
    /// Commands refused by the verifier.
    pub unauthorized: u64,
}

struct PendingCreate {
    face: FaceId,
    name: Name,
    pit_token: Option<Bytes>,
}

struct PendingInterest {
    face: FaceId,
    interest: Interest,
    pit_token: Option<Bytes>,
    expires: Time,
}

/// Kind of a face event notification (NFD FaceEventKind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceEventKind {
    /// Face created.
    Created = 1,
    /// Face destroyed.
    Destroyed = 2,
    /// Face came up.
    Up = 3,
    /// Face went down.
    Down = 4,
}

/// Most face-event Interests kept waiting for the next notification (oldest go first).
const MAX_PENDING_EVENT_INTERESTS: usize = 64;
/// Largest number of CS entries one `cs/erase` removes (NFD's limit).
const CS_ERASE_LIMIT: usize = 256;

/// The management module.
pub struct Management {
    config: MgmtConfig,
    rib: Rib,
    verifier: Option<Box<dyn CommandVerifier + Send>>,
    cache: ReplyCache,
    last_version: u64,
    started: Option<Time>,
    next_event_seq: u64,
    event_waiters: VecDeque<PendingInterest>,
    pending_creates: HashMap<u64, PendingCreate>,
    next_request: u64,
    /// Options of live faces, so a Destroyed notification can describe a face the core has
    /// already forgotten.
    known_faces: HashMap<FaceId, FaceOptions>,
    out: VecDeque<Reply>,
    counters: MgmtCounters,
}

/// A management answer for the core to send: Data wire plus the PitToken to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Face that asked.
    pub face: FaceId,
    /// The requester's PitToken (NDNLPv2), echoed around the Data.
    pub pit_token: Option<Bytes>,
    /// The encoded, signed Data.
    pub data: Bytes,
}

impl Reply {
    /// The packet as it goes on the wire: the Data, LpPacket-wrapped when there is a PitToken.
    pub fn to_wire(&self) -> Bytes {
        match &self.pit_token {
            Some(token) => amicn_tlv::lp::wrap(
                &self.data,
                &amicn_tlv::lp::OutHeaders {
                    pit_token: Some(token),
                    ..Default::default()
                },
            ),
            None => self.data.clone(),
        }
    }
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("routes", &self.rib.route_count())
            .field("queued", &self.out.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Default for Management {
    fn default() -> Self {
        Self::new(MgmtConfig::default())
    }
}

impl Management {
    /// Management with an empty RIB and no command verification.
    pub fn new(config: MgmtConfig) -> Self {
        let cache = ReplyCache::new(config.cache_bytes, config.cache_lifetime_ms);
        Management {
            config,
            rib: Rib::new(),
            verifier: None,
            cache,
            last_version: 0,
            started: None,
            next_event_seq: 1,
            event_waiters: VecDeque::new(),
            pending_creates: HashMap::new(),
            next_request: 1,
            known_faces: HashMap::new(),
            out: VecDeque::new(),
            counters: MgmtCounters::default(),
        }
    }

    /// Installs a command verifier (403 on rejection).
    pub fn set_verifier(&mut self, verifier: Box<dyn CommandVerifier + Send>) {
        self.verifier = Some(verifier);
    }

    /// The RIB.
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// What management did so far.
    pub fn counters(&self) -> MgmtCounters {
        self.counters
    }

    /// The installed verifier's refusals by reason (empty without a verifier).
    pub fn verifier_refusals(&self) -> Vec<(&'static str, u64)> {
        self.verifier
            .as_ref()
            .map(|v| v.refusals())
            .unwrap_or_default()
    }

    /// Next reply to send.
    pub fn poll_reply(&mut self) -> Option<Reply> {
        self.out.pop_front()
    }

    /// Earliest time [`Management::on_timeout`] has work (route expiry, waiting Interests).
    pub fn poll_timeout(&mut self) -> Option<Time> {
        let waiter = self.event_waiters.iter().map(|w| w.expires).min();
        match (self.rib.next_expiry(), waiter) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires routes and waiting notification Interests due at `now`.
    pub fn on_timeout(&mut self, now: Time, tables: &mut dyn Tables) {
        let updates = self.rib.expire(now);
        apply_fib(tables, &updates);
        self.event_waiters.retain(|w| w.expires > now);
    }

    /// Installs a route as static configuration would (`amicn fwd` config file routes).
    pub fn add_route(&mut self, tables: &mut dyn Tables, prefix: Name, route: Route) {
        let out = self.rib.register(prefix, route);
        apply_fib(tables, &out.fib);
    }

    /// A face was added to the core: publishes the Created notification.
    pub fn on_face_added(&mut self, now: Time, face: FaceId, tables: &mut dyn Tables) {
        self.started.get_or_insert(now);
        if let Some((options, _)) = tables.face(face) {
            // A new face starts up; NFD announces only its creation, Up/Down follow state changes.
            self.notify_face_event(now, FaceEventKind::Created, face, &options);
            self.known_faces.insert(face, options);
        }
    }

    /// A face is being removed: drops its routes (and the FIB next hops they implied) and
    /// publishes the Destroyed notification. Call it before the face leaves the core's table so
    /// its options can still be read; it also works afterwards.
    pub fn on_face_removed(&mut self, now: Time, face: FaceId, tables: &mut dyn Tables) {
        let updates = self.rib.remove_face(face.0);
        apply_fib(tables, &updates);
        let options = self
            .known_faces
            .remove(&face)
            .or_else(|| tables.face(face).map(|(o, _)| o))
            .unwrap_or_default();
        self.notify_face_event(now, FaceEventKind::Destroyed, face, &options);
    }

    /// Completes a `faces/create` the runtime answered asynchronously.
    pub fn on_face_created(
        &mut self,
        _now: Time,
        request: u64,
        result: Result<FaceId, FaceCreateError>,
        tables: &mut dyn Tables,
    ) {
        if let Some(p) = self.pending_creates.remove(&request) {
            let resp = face_create_response(result, tables);
            self.reply(p.face, &p.name, p.pit_token, resp);
        }
    }

    /// Handles one Interest under `/localhost/nfd` that arrived on local face `face`.
    /// `pit_token` is the Interest's NDNLPv2 PitToken, echoed on the reply.
    pub fn on_interest(
        &mut self,
        now: Time,
        face: FaceId,
        interest: &Interest,
        pit_token: Option<Bytes>,
        tables: &mut dyn Tables,
        faces: &mut dyn FaceSystem,
    ) {
        self.started.get_or_insert(now);
        match Request::parse(interest) {
            None => self.counters.dropped += 1,
            Some(Request::Dataset(d)) => {
                self.dataset(now, face, interest, pit_token, d, tables, faces);
            }
            Some(Request::FaceEvents) => self.event_interest(now, face, interest, pit_token),
            Some(Request::Command(c)) => {
                self.command(now, face, interest, pit_token, c, tables, faces);
            }
        }
    }

    /// Every control command: authorize, validate, execute, reply.
    #[allow(clippy::too_many_arguments)]
    fn command(
        &mut self,
        now: Time,
        face: FaceId,
        interest: &Interest,
        pit_token: Option<Bytes>,
        command: Command,
        tables: &mut dyn Tables,
        faces: &mut dyn FaceSystem,
    ) {
        if !self.authorize(now, face, interest, &pit_token) {
            return;
        }
        let resp = match command {
            Command::Announce(pa) => self.announce(now, face, &pa, tables),
            Command::Control(verb, cp) if !verb.validate(&cp) => {
                response(status::BAD_REQUEST, "failed in validating parameters", None)
            }
            Command::Control(verb, cp) => match verb {
                Verb::RibRegister => self.rib_register(now, face, cp, tables),
                Verb::RibUnregister => self.rib_unregister(face, cp, tables),
                Verb::FacesCreate => {
                    let request = self.next_request;
                    self.next_request += 1;
                    let req = FaceCreateRequest {
                        remote_uri: cp.uri.clone().unwrap_or_default(),
                        local_uri: cp.local_uri.clone(),
                        persistency: cp
                            .face_persistency
                            .and_then(FacePersistency::from_u64)
                            .unwrap_or_default(),
                        mtu: cp.mtu,
                        flags: cp.flags.unwrap_or(0),
                        mask: cp.mask.unwrap_or(0),
                    };
                    match faces.create_face(request, &req) {
                        Some(result) => face_create_response(result, tables),
                        None => {
                            self.pending_creates.insert(
                                request,
                                PendingCreate {
                                    face,
                                    name: interest.name.clone(),
                                    pit_token,
                                },
                            );
                            return;
                        }
                    }
                }
                Verb::FacesUpdate => face_update(face, cp, tables),
                Verb::FacesDestroy => {
                    let target = FaceId(cp.face_id.unwrap_or(0));
                    if tables.face(target).is_some() {
                        faces.destroy_face(target);
                    }
                    response(status::OK, "OK", Some(cp))
                }
                Verb::FibAddNextHop => fib_add_next_hop(face, cp, tables),
                Verb::FibRemoveNextHop => fib_remove_next_hop(face, cp, tables),
                Verb::StrategySet => strategy_set(cp, tables),
                Verb::StrategyUnset => {
                    if let Some(prefix) = cp.name.as_ref() {
                        tables.strategy_unset(prefix);
                    }
                    response(status::OK, "OK", Some(cp))
                }
                Verb::CsConfig => cs_config(cp, tables),
                Verb::CsErase => cs_erase(cp, tables),
            },
        };
        self.reply(face, &interest.name, pit_token, resp);
    }

    /// Runs the verifier, answering 403 or dropping as it says; true = go ahead.
    fn authorize(
        &mut self,
        now: Time,
        face: FaceId,
        interest: &Interest,
        pit_token: &Option<Bytes>,
    ) -> bool {
        let Some(v) = self.verifier.as_mut() else {
            return true;
        };
        match v.verify(now, interest) {
            Verdict::Accept => true,
            Verdict::Reject => {
                self.counters.unauthorized += 1;
                let resp = response(status::UNAUTHORIZED, "authorization rejected", None);
                self.reply(face, &interest.name, pit_token.clone(), resp);
                false
            }
            Verdict::Drop => {
                self.counters.dropped += 1;
                false
            }
        }
    }

    /// `rib/announce`: the PrefixAnnouncement travels in ApplicationParameters; the route gets
    /// origin prefix-announcement, cost 2048 and ChildInherit, and lives as long as the
    /// announcement's ExpirationPeriod (cut short by its ValidityPeriod), as NFD's
    /// `Route(PrefixAnnouncement, FaceId)` does.
    fn announce(
        &mut self,
        now: Time,
        face: FaceId,
        pa: &Data,
        tables: &mut dyn Tables,
    ) -> ControlResponse {
        match announcement::parse(pa, self.config.epoch_unix_ms + now.as_millis()) {
            None => response(status::BAD_REQUEST, "failed in validating parameters", None),
            Some((prefix, _)) if prefix.len() > MAX_PREFIX_COMPONENTS => response(
                status::NAME_TOO_LONG,
                "Route prefix cannot exceed 32 components",
                None,
            ),
            Some((prefix, lifetime_ms)) => {
                let route = Route {
                    face: face.0,
                    origin: rib::ORIGIN_PREFIX_ANN,
                    cost: announcement::ROUTE_COST,
                    flags: rib::ROUTE_FLAG_CHILD_INHERIT,
                    expires: Some(now.add_millis(lifetime_ms)),
                };
                if lifetime_ms > 0 {
                    let out = self.rib.register(prefix.clone(), route);
                    apply_fib(tables, &out.fib);
                }
                let body = ControlParameters {
                    name: Some(prefix),
                    face_id: Some(face.0),
                    origin: Some(route.origin),
                    cost: Some(route.cost),
                    flags: Some(route.flags),
                    expiration_period: Some(lifetime_ms),
                    ..ControlParameters::default()
                };
                response(status::OK, "Success", Some(body))
            }
        }
    }

    fn rib_register(
        &mut self,
        now: Time,
        face: FaceId,
        mut cp: ControlParameters,
        tables: &mut dyn Tables,
    ) -> ControlResponse {
        params::register_defaults(&mut cp);
        let prefix = match route_prefix(&mut cp, face) {
            Ok(prefix) => prefix,
            Err((code, text)) => return response(code, text, None),
        };
        let route = Route {
            face: cp.face_id.unwrap_or(face.0),
            origin: cp.origin.unwrap_or(rib::ORIGIN_APP),
            cost: cp.cost.unwrap_or(0),
            flags: cp.flags.unwrap_or(rib::ROUTE_FLAG_CHILD_INHERIT),
            // The largest signed millisecond count means "never" to ndn-cxx.
            expires: cp
                .expiration_period
                .filter(|ms| *ms < i64::MAX as u64)
                .map(|ms| now.add_millis(ms)),
        };
        if cp.expiration_period == Some(0) {
            // Expired on arrival: NFD treats it as the route's expiry, removing an older one.
            if let Some(updates) = self.rib.unregister(&prefix, route.face, route.origin) {
                apply_fib(tables, &updates);
            }
        } else if tables.face(FaceId(route.face)).is_some() {
            // NFD answers before the route is installed and installs nothing for a face that
            // does not exist (its FIB update fails with 410); the answer is the same either way.
            let out = self.rib.register(prefix, route);
            apply_fib(tables, &out.fib);
        }
        response(status::OK, "Success", Some(cp))
    }

    fn rib_unregister(
        &mut self,
        face: FaceId,
        mut cp: ControlParameters,
        tables: &mut dyn Tables,
    ) -> ControlResponse {
        params::unregister_defaults(&mut cp);
        let prefix = match route_prefix(&mut cp, face) {
            Ok(prefix) => prefix,
            Err((code, text)) => return response(code, text, None),
        };
        let target = cp.face_id.unwrap_or(face.0);
        if let Some(updates) =
            self.rib
                .unregister(&prefix, target, cp.origin.unwrap_or(rib::ORIGIN_APP))
        {
            apply_fib(tables, &updates);
        }
        response(status::OK, "Success", Some(cp))
    }

    fn reply(
        &mut self,
        face: FaceId,
        name: &Name,
        pit_token: Option<Bytes>,
        resp: ControlResponse,
    ) {
        self.counters.commands += 1;
        let mut data = Data::new(name.clone(), resp.encode());
        data.meta_info.freshness_period_ms = Some(FRESHNESS_MS);
        let wire = dataset::sign(data);
        self.send(face, wire, pit_token);
    }

    fn send(&mut self, face: FaceId, data: Bytes, pit_token: Option<Bytes>) {
        self.out.push_back(Reply {
            face,
            pit_token,
            data,
        });
    }

    /// Dataset version: wall-clock ms, strictly increasing even if the clock stalls.
    fn next_version(&mut self, now: Time) -> u64 {
        let v = self
            .config
            .epoch_unix_ms
            .saturating_add(now.as_millis())
            .max(self.last_version + 1);
        self.last_version = v;
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn dataset(
        &mut self,
        now: Time,
        face: FaceId,
        interest: &Interest,
        pit_token: Option<Bytes>,
        which: Dataset,
        tables: &mut dyn Tables,
        faces: &mut dyn FaceSystem,
    ) {
        if dataset::names_existing_version(&interest.name) {
            match self.cache.find(now, interest, false) {
                Some(wire) => {
                    self.counters.dataset_segments += 1;
                    self.send(face, wire, pit_token);
                }
                None => self.counters.dropped += 1,
            }
            return;
        }
        let content = match which {
            Dataset::FacesList => status_datasets::faces(tables, None),
            Dataset::FacesQuery => {
                // The filter is the component after the verb; an undecodable one is dropped.
                let filter = match name_component_value(&interest.name, 4) {
                    Some(v) => match FaceQueryFilter::decode(v) {
                        Ok(f) => Some(f),
                        Err(_) => {
                            self.counters.dropped += 1;
                            return;
                        }
                    },
                    None => None,
                };
                status_datasets::faces(tables, filter.as_ref())
            }
            Dataset::FacesChannels => status_datasets::channels(faces),
            Dataset::FibList => status_datasets::fib(tables),
            Dataset::RibList => status_datasets::rib(&self.rib, now),
            Dataset::CsInfo => status_datasets::cs(tables),
            Dataset::StrategyChoiceList => status_datasets::strategies(tables),
            Dataset::StatusGeneral => {
                let version = &self.config.nfd_version;
                let start_ms = self
                    .config
                    .epoch_unix_ms
                    .saturating_add(self.started.unwrap_or(now).as_millis());
                let now_ms = self.config.epoch_unix_ms.saturating_add(now.as_millis());
                status_datasets::general(tables, version, start_ms, now_ms)
            }
        };
        let version = self.next_version(now);
        let segments = dataset::segment(&interest.name, version, &content);
        let first = segments.first().map(|(_, w)| w.clone());
        self.cache.insert_all(now, segments);
        if let Some(wire) = first {
            self.counters.dataset_segments += 1;
            self.send(face, wire, pit_token);
        }
    }

    fn event_interest(
        &mut self,
        now: Time,
        face: FaceId,
        interest: &Interest,
        pit_token: Option<Bytes>,
    ) {
        if let Some(wire) = self.cache.find(now, interest, true) {
            self.send(face, wire, pit_token);
            return;
        }
        if self.event_waiters.len() >= MAX_PENDING_EVENT_INTERESTS {
            self.event_waiters.pop_front();
        }
        let lifetime = interest.lifetime_ms.unwrap_or(4000);
        self.event_waiters.push_back(PendingInterest {
            face,
            interest: interest.clone(),
            pit_token,
            expires: now.add_millis(lifetime),
        });
    }

    fn notify_face_event(
        &mut self,
        now: Time,
        kind: FaceEventKind,
        face: FaceId,
        options: &FaceOptions,
    ) {
        let seq = self.next_event_seq;
        self.next_event_seq += 1;
        let name = Name::from_uri("/localhost/nfd/faces/events")
            .unwrap_or_default()
            .append(Component::sequence_num(seq));
        let content = status_datasets::face_event(kind, face, options);
        let mut data = Data::new(name.clone(), content);
        data.meta_info.freshness_period_ms = Some(FRESHNESS_MS);
        let wire = dataset::sign(data);
        self.cache.insert(now, name.clone(), wire.clone());
        let waiters = std::mem::take(&mut self.event_waiters);
        for w in waiters {
            let matches = if w.interest.can_be_prefix {
                w.interest.name.is_prefix_of(&name)
            } else {
                w.interest.name == name
            };
            if matches && w.expires > now {
                self.send(w.face, wire.clone(), w.pit_token);
            } else if w.expires > now {
                self.event_waiters.push_back(w);
            }
        }
    }
}

mod status_datasets;
#[cfg(test)]
mod tests;

fn response(code: u64, text: &str, body: Option<ControlParameters>) -> ControlResponse {
    ControlResponse {
        status_code: code,
        status_text: text.to_string(),
        body,
    }
}

/// The prefix of a `rib/register` or `rib/unregister` command, checked as NFD does (a Name is
/// required, at most 32 components), with FaceId 0 completed to the requesting face.
/// A refusal comes back as the status code and text of the reply.
fn route_prefix(cp: &mut ControlParameters, face: FaceId) -> Result<Name, (u64, &'static str)> {
    let Some(prefix) = cp.name.clone() else {
        return Err((status::BAD_REQUEST, "failed in validating parameters"));
    };
    if prefix.len() > MAX_PREFIX_COMPONENTS {
        return Err((
            status::NAME_TOO_LONG,
            "Route prefix cannot exceed 32 components",
        ));
    }
    if cp.face_id == Some(0) {
        cp.face_id = Some(face.0);
    }
    Ok(prefix)
}

fn apply_fib(tables: &mut dyn Tables, updates: &[FibUpdate]) {
    for u in updates {
        match u {
            FibUpdate::AddNextHop { name, face, cost } => {
                tables.fib_add_next_hop(name, FaceId(*face), *cost);
            }
            FibUpdate::RemoveNextHop { name, face } => {
                tables.fib_remove_next_hop(name, FaceId(*face));
            }
        }
    }
}

fn is_localhost_nfd(name: &Name) -> bool {
    generic(name, 0).is_some_and(|c| c.value() == b"localhost")
        && generic(name, 1).is_some_and(|c| c.value() == b"nfd")
}

/// Component `i` if it is a GenericNameComponent.
fn generic(name: &Name, i: usize) -> Option<Component> {
    name.get(i).filter(Component::is_generic)
}

fn name_component_value(name: &Name, i: usize) -> Option<Bytes> {
    name.get(i).map(|c| c.value_bytes().clone())
}

fn face_create_response(
    result: Result<FaceId, FaceCreateError>,
    tables: &mut dyn Tables,
) -> ControlResponse {
    match result {
        Ok(face) => match tables.face(face) {
            Some((options, _)) => response(status::OK, "OK", Some(face_params(face, &options))),
            None => response(
                status::FACE_CREATION_FAILED,
                "Face closed during creation",
                None,
            ),
        },
        Err(FaceCreateError::MalformedUri) => {
            response(status::BAD_REQUEST, "Malformed FaceUri", None)
        }
        Err(FaceCreateError::NonCanonicalUri) => {
            response(status::BAD_REQUEST, "Non-canonical FaceUri", None)
        }
        Err(FaceCreateError::UnsupportedProtocol) => {
            response(status::UNSUPPORTED_PROTOCOL, "Unsupported protocol", None)
        }
        Err(FaceCreateError::Exists(face)) => {
            let body = tables.face(face).map(|(o, _)| face_params(face, &o));
            response(
                status::CONFLICT,
                "Face with remote URI already exists",
                body,
            )
        }
        Err(FaceCreateError::InvalidProperties(why)) => response(status::CONFLICT, &why, None),
        Err(FaceCreateError::Failed(why)) => response(status::FACE_CREATION_FAILED, &why, None),
    }
}

/// Face flag bits as NFD numbers them.
const FACE_FLAG_LOCAL_FIELDS: u64 = 1;
const FACE_FLAG_CONGESTION_MARKING: u64 = 4;

fn face_flags(options: &FaceOptions) -> u64 {
    let mut f = 0;
    if options.local_fields_enabled {
        f |= FACE_FLAG_LOCAL_FIELDS;
    }
    if options.congestion_marking {
        f |= FACE_FLAG_CONGESTION_MARKING;
    }
    f
}

/// The ControlParameters NFD returns for a face (create/update responses).
fn face_params(face: FaceId, options: &FaceOptions) -> ControlParameters {
    ControlParameters {
        face_id: Some(face.0),
        uri: Some(options.remote_uri.clone()),
        local_uri: Some(options.local_uri.clone()),
        face_persistency: Some(options.persistency.to_u64()),
        mtu: options.mtu.map(|m| m as u64),
        flags: Some(face_flags(options)),
        ..ControlParameters::default()
    }
}

fn face_update(
    requester: FaceId,
    cp: ControlParameters,
    tables: &mut dyn Tables,
) -> ControlResponse {
    let target = match cp.face_id {
        None | Some(0) => requester,
        Some(id) => FaceId(id),
    };
    let Some((mut options, _)) = tables.face(target) else {
        return response(status::NOT_FOUND, "Specified face does not exist", None);
    };
    if let Some(p) = cp.face_persistency {
        match FacePersistency::from_u64(p) {
            Some(p) => options.persistency = p,
            None => {
                return response(status::CONFLICT, "Invalid properties", None);
            }
        }
    }
    if let (Some(flags), Some(mask)) = (cp.flags, cp.mask) {
        if mask & FACE_FLAG_LOCAL_FIELDS != 0 {
            if flags & FACE_FLAG_LOCAL_FIELDS != 0 && options.scope != crate::core::FaceScope::Local
            {
                return response(
                    status::CONFLICT,
                    "Local fields can only be enabled on faces with local scope",
                    None,
                );
            }
            options.local_fields_enabled = flags & FACE_FLAG_LOCAL_FIELDS != 0;
        }
        if mask & FACE_FLAG_CONGESTION_MARKING != 0 {
            options.congestion_marking = flags & FACE_FLAG_CONGESTION_MARKING != 0;
        }
    }
    if let Some(mtu) = cp.mtu {
        options.mtu = usize::try_from(mtu).ok();
    }
    if !tables.update_face(target, options.clone()) {
        return response(status::NOT_FOUND, "Specified face does not exist", None);
    }
    let mut body = face_params(target, &options);
    body.uri = None;
    body.local_uri = None;
    response(status::OK, "OK", Some(body))
}

fn fib_add_next_hop(
    requester: FaceId,
    mut cp: ControlParameters,
    tables: &mut dyn Tables,
) -> ControlResponse {
    let Some(prefix) = cp.name.clone() else {
        return response(status::BAD_REQUEST, "failed in validating parameters", None);
    };
    if prefix.len() > MAX_PREFIX_COMPONENTS {
        return response(
            status::NAME_TOO_LONG,
            "Prefix has too many components (limit is 32)",
            None,
        );
    }
    let face = match cp.face_id {
        None | Some(0) => requester,
        Some(id) => FaceId(id),
    };
    cp.face_id = Some(face.0);
    let cost = *cp.cost.get_or_insert(0);
    if tables.face(face).is_none() {
        return response(status::FACE_NOT_FOUND, "Face not found", None);
    }
    tables.fib_add_next_hop(&prefix, face, cost);
    response(status::OK, "Success", Some(cp))
}

fn fib_remove_next_hop(
    requester: FaceId,
    mut cp: ControlParameters,
    tables: &mut dyn Tables,
) -> ControlResponse {
    let Some(prefix) = cp.name.clone() else {
        return response(status::BAD_REQUEST, "failed in validating parameters", None);
    };
    let face = match cp.face_id {
        None | Some(0) => requester,
        Some(id) => FaceId(id),
    };
    cp.face_id = Some(face.0);
    tables.fib_remove_next_hop(&prefix, face);
    response(status::OK, "Success", Some(cp))
}

fn strategy_set(mut cp: ControlParameters, tables: &mut dyn Tables) -> ControlResponse {
    let (Some(prefix), Some(strategy)) = (cp.name.clone(), cp.strategy.clone()) else {
        return response(status::BAD_REQUEST, "failed in validating parameters", None);
    };
    if prefix.len() > MAX_PREFIX_COMPONENTS {
        return response(
            status::NAME_TOO_LONG,
            "Prefix has too many components (limit is 32)",
            None,
        );
    }
    match tables.strategy_set(&prefix, &strategy) {
        Some(instance) => {
            cp.strategy = Some(instance);
            response(status::OK, "OK", Some(cp))
        }
        None => response(status::NOT_FOUND, "Strategy not registered", None),
    }
}

/// CS flag bits in `cs/config` (NFD CsFlagBit).
const CS_ENABLE_ADMIT: u64 = 1;
const CS_ENABLE_SERVE: u64 = 2;

fn cs_config(cp: ControlParameters, tables: &mut dyn Tables) -> ControlResponse {
    let (mut admit, mut serve) = (None, None);
    if let (Some(flags), Some(mask)) = (cp.flags, cp.mask) {
        if mask & CS_ENABLE_ADMIT != 0 {
            admit = Some(flags & CS_ENABLE_ADMIT != 0);
        }
        if mask & CS_ENABLE_SERVE != 0 {
            serve = Some(flags & CS_ENABLE_SERVE != 0);
        }
    }
    tables.cs_configure(cp.capacity, admit, serve);
    let st = tables.cs_state();
    let body = ControlParameters {
        capacity: Some(st.capacity),
        flags: Some(cs_flags(&st)),
        ..ControlParameters::default()
    };
    response(status::OK, "OK", Some(body))
}

fn cs_flags(st: &CsState) -> u64 {
    let mut f = 0;
    if st.admit {
        f |= CS_ENABLE_ADMIT;
    }
    if st.serve {
        f |= CS_ENABLE_SERVE;
    }
    f
}

fn cs_erase(cp: ControlParameters, tables: &mut dyn Tables) -> ControlResponse {
    let Some(prefix) = cp.name.clone() else {
        return response(status::BAD_REQUEST, "failed in validating parameters", None);
    };
    let limit = cp.count.map_or(CS_ERASE_LIMIT, |c| {
        usize::try_from(c).unwrap_or(usize::MAX).min(CS_ERASE_LIMIT)
    });
    let erased = tables.cs_erase(&prefix, limit);
    let mut body = ControlParameters {
        name: Some(prefix),
        count: Some(erased as u64),
        ..ControlParameters::default()
    };
    if erased == limit {
        body.capacity = Some(limit as u64);
    }
    response(status::OK, "OK", Some(body))
}
