//! The tokio driver of the sans-IO core: one forwarding thread runs a current-thread runtime
//! that owns the core, management and every face task. With `workers > 1` that thread is
//! shard 0 and also hands packets to shards 1..N (see `shard.rs`): Interests by a hash of
//! their first name components, Data and Nacks by the shard byte of our PitToken.
//!
//! Data path: face tasks cut whole packets out of their sockets and send them, batched per
//! wakeup and tagged with the face, on one bounded channel; the forwarding loop drains up to
//! [`EVENT_BATCH`] events per wakeup, feeds each packet to [`crate::core::Forwarder::on_packet`],
//! hands management Interests to [`crate::mgmt::Management`], then drains
//! `poll_transmit` into each face's bounded send queue, whose writer task flushes in batches.
//! Timers come from `poll_timeout`. A face whose send queue is above its threshold is marked
//! congested in the core, which then sets CongestionMark on what it sends there.

pub mod config;
mod fair;
pub mod metrics;
mod shard;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amicn_face::emulation::Emulation;
use amicn_face::udp::UdpChannel;
use amicn_face::{
    Channel, ChannelCounters, FaceCounters as LinkCounters, FaceKind, FaceMeta,
    FaceOptions as LinkOptions, FaceToken, FaceTx, FaceUri, Frame, Inbound, Persistency,
    SendStatus,
};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{
    DropReason, FaceId, FaceOptions, FacePersistency, FaceScope, Forwarder, ForwarderStatus,
    IdHasher, LinkType, Time,
};
use crate::mgmt::{
    FaceCreateError, FaceCreateRequest, FaceSystem, ManagedCore, Management, MgmtConfig, Route,
};

pub use config::{MulticastFace, RuntimeConfig, StaticFace, StaticRoute};
use metrics::{Histogram, MetricsRequest, render_metric};
use shard::{Mirrored, ShardMsg, Shards};

/// Most events drained from the inbound channel per loop iteration.
pub const EVENT_BATCH: usize = 64;

/// Most events moved from the inbound channel into the fair queue per loop iteration.
const INBOUND_DRAIN_MAX: usize = 4096;

/// Most packets taken from the fair queue per loop iteration; timers, management and the
/// send queues are served between passes.
const FAIR_PASS: usize = 1024;
/// Packets and bytes one face may have waiting in the fair queue.
const FAIR_MAX_PER_FACE: usize = 4096;
const FAIR_MAX_BYTES_PER_FACE: usize = 4 << 20;
/// Above this many bytes waiting in all faces' queues, no new batches are taken.
const FAIR_MAX_BYTES: usize = 64 << 20;

/// Most forwarding threads: a shard's id is one byte of the PitTokens it issues.
pub const MAX_WORKERS: usize = 64;

/// Errors starting or running the forwarder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A face or channel could not be set up.
    #[error(transparent)]
    Face(#[from] amicn_face::Error),
    /// The metrics listener could not bind.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A static face could not be created.
    #[error("static face {uri}: {why}")]
    StaticFace {
        /// Its URI.
        uri: String,
        /// What failed.
        why: String,
    },
    /// The forwarding thread could not start or died.
    #[error("forwarding thread: {0}")]
    Thread(String),
    /// Writing the stats snapshot failed.
    #[error("stats snapshot {path}: {source}")]
    Stats {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the running forwarder listens (useful when binding port 0).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Unix socket path.
    pub unix: Option<PathBuf>,
    /// Bound TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// Bound UDP addresses.
    pub udp: Vec<SocketAddr>,
    /// Bound metrics address.
    pub metrics: Option<SocketAddr>,
}

/// A forwarder running on its own thread.
#[derive(Debug)]
pub struct RunningForwarder {
    endpoints: Endpoints,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<serde_json::Value, RuntimeError>>>,
}

impl RunningForwarder {
    /// Starts the forwarding thread and returns once every channel is bound.
    pub fn start(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("amicn-fwd".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| RuntimeError::Thread(e.to_string()))?;
                rt.block_on(run(config, stop2, ready_tx))
            })
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(endpoints)) => Ok(Self {
                endpoints,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(RuntimeError::Thread("exited before becoming ready".into())),
            },
        }
    }

    /// Where it listens.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// A token that stops the forwarder when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the forwarder, removes its socket file and returns the final counters.
    pub fn shutdown(mut self) -> Result<serde_json::Value, RuntimeError> {
        self.stop.cancel();
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<serde_json::Value, RuntimeError> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| RuntimeError::Thread("forwarding thread panicked".into()))?,
            None => Ok(serde_json::Value::Null),
        }
    }

    /// Waits until the forwarder stops (after the stop token is cancelled).
    pub fn wait(mut self) -> Result<serde_json::Value, RuntimeError> {
        self.join_thread()
    }
}

impl Drop for RunningForwarder {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = self.join_thread();
    }
}

/// Messages to the forwarding loop from helper tasks.
enum Control {
    /// An asynchronous face creation finished.
    Created {
        request: Option<u64>,
        result: Result<FaceToken, FaceCreateError>,
    },
    /// Render the metrics text.
    Metrics(MetricsRequest),
}

struct FaceEntry {
    token: FaceToken,
    tx: FaceTx,
    meta: FaceMeta,
    congested: bool,
}

/// The sockets side: face handles by id, channels, and face creation for management.
struct FaceRegistry {
    // Looked up for every packet: keyed by small integers, so a multiply hash beats SipHash.
    by_token: HashMap<FaceToken, FaceId, IdHasher>,
    by_id: HashMap<FaceId, FaceEntry, IdHasher>,
    channels: Vec<Channel>,
    udp: Vec<Arc<UdpChannel>>,
    inbound: mpsc::Sender<Inbound>,
    control: mpsc::Sender<Control>,
    opts: LinkOptions,
    /// Creations whose face token is known but whose `Opened` event was not seen yet.
    awaiting_open: HashMap<FaceToken, Option<u64>>,
    /// Faces management asked to destroy.
    to_destroy: Vec<FaceId>,
}

impl FaceRegistry {
    fn start_create(&mut self, request: Option<u64>, uri: FaceUri, emulation: Option<Emulation>) {
        let control = self.control.clone();
        let mut opts = self.opts;
        if emulation.is_some() {
            opts.emulation = emulation;
        }
        match uri {
            FaceUri::Tcp(addr) => {
                let inbound = self.inbound.clone();
                tokio::spawn(async move {
                    let result = amicn_face::tcp::connect_tcp(addr, inbound, opts)
                        .await
                        .map_err(|e| FaceCreateError::Failed(e.to_string()));
                    let _ = control.send(Control::Created { request, result }).await;
                });
            }
            FaceUri::Udp(addr) => {
                let chan = self
                    .udp
                    .iter()
                    .find(|c| {
                        c.local_addr()
                            .is_some_and(|l| l.is_ipv4() == addr.is_ipv4())
                    })
                    .cloned();
                tokio::spawn(async move {
                    let result = match chan {
                        Some(c) => c
                            .create_face(addr, Persistency::Persistent)
                            .await
                            .ok_or_else(|| FaceCreateError::Failed("UDP channel closed".into())),
                        None => Err(FaceCreateError::UnsupportedProtocol),
                    };
                    let _ = control.send(Control::Created { request, result }).await;
                });
            }
            FaceUri::Unix(_) => {
                let _ = self.control.try_send(Control::Created {
                    request,
                    result: Err(FaceCreateError::UnsupportedProtocol),
                });
            }
        }
    }

    /// Every listening channel's URI and counters.
    fn channel_counters(&self) -> Vec<(String, Arc<ChannelCounters>)> {
        let mut v: Vec<(String, Arc<ChannelCounters>)> = self
            .channels
            .iter()
            .map(|c| (c.local_uri().to_string(), c.counters().clone()))
            .collect();
        v.extend(
            self.udp
                .iter()
                .map(|c| (c.local_uri().to_string(), c.counters().clone())),
        );
        v
    }

    fn find_remote(&self, uri: &str) -> Option<FaceId> {
        self.by_id
            .iter()
            .find(|(_, e)| e.meta.remote_uri == uri)
            .map(|(id, _)| *id)
    }
}

impl FaceSystem for FaceRegistry {
    fn create_face(
        &mut self,
        request: u64,
        params: &FaceCreateRequest,
    ) -> Option<Result<FaceId, FaceCreateError>> {
        let uri = match FaceUri::parse(&params.remote_uri) {
            Ok(u) => u,
            Err(_) => {
                // NFD knows these schemes but this forwarder has no channel for them.
                let scheme = params.remote_uri.split("://").next().unwrap_or("");
                let known = ["ether", "dev", "ws", "wss", "fd"].contains(&scheme);
                return Some(Err(if known {
                    FaceCreateError::UnsupportedProtocol
                } else {
                    FaceCreateError::MalformedUri
                }));
            }
        };
        if uri.to_string() != params.remote_uri {
            return Some(Err(FaceCreateError::NonCanonicalUri));
        }
        if let Some(id) = self.find_remote(&params.remote_uri) {
            return Some(Err(FaceCreateError::Exists(id)));
        }
        if params.persistency == FacePersistency::OnDemand {
            return Some(Err(FaceCreateError::InvalidProperties(
                "Outgoing faces cannot be on-demand".into(),
            )));
        }
        self.start_create(Some(request), uri, None);
        None
    }

    fn destroy_face(&mut self, face: FaceId) {
        if let Some(e) = self.by_id.get(&face) {
            e.tx.close();
        }
        self.to_destroy.push(face);
    }

    fn channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .channels
            .iter()
            .map(|c| c.local_uri().to_string())
            .collect();
        v.extend(self.udp.iter().map(|c| c.local_uri().to_string()));
        v
    }
}

/// The forwarding loop's state.
struct Driver {
    core: Forwarder,
    mgmt: Management,
    faces: FaceRegistry,
    epoch: Instant,
    batch_latency: Histogram,
    batch_packets: u64,
    loops: u64,
    loopback_is_local: bool,
    /// Framing errors of faces already closed (their counters leave with them).
    closed_oversized: u64,
    closed_malformed: u64,
    /// Forwarding shards 1..N when `workers > 1`; this thread's core is shard 0.
    shards: Option<Shards>,
    /// Received packets waiting for their face's turn.
    fair: fair::FairQueue,
}

fn core_options(meta: &FaceMeta) -> FaceOptions {
    FaceOptions {
        remote_uri: meta.remote_uri.clone(),
        local_uri: meta.local_uri.clone(),
        scope: if meta.local {
            FaceScope::Local
        } else {
            FaceScope::NonLocal
        },
        link_type: if meta.kind == FaceKind::UdpMulticast {
            LinkType::MultiAccess
        } else {
            LinkType::PointToPoint
        },
        persistency: match meta.persistency {
            Persistency::Persistent => FacePersistency::Persistent,
            Persistency::OnDemand => FacePersistency::OnDemand,
            Persistency::Permanent => FacePersistency::Permanent,
        },
        local_fields_enabled: false,
        congestion_marking: true,
        mtu: matches!(meta.kind, FaceKind::Udp | FaceKind::UdpMulticast).then_some(meta.mtu),
    }
}

impl Driver {
    fn now(&self) -> Time {
        Time::from_duration(self.epoch.elapsed())
    }

    fn on_event(&mut self, now: Time, ev: Inbound) {
        match ev {
            Inbound::Packets { face, packets } => {
                // Nothing waits and the batch fits one turn: the queue would hand it straight
                // back, so skip it (the common case when the forwarder keeps up).
                if self.fair.is_empty() && packets.len() <= fair::FairQueue::QUANTUM {
                    if let Some(id) = self.faces.by_token.get(&face).copied() {
                        for p in packets {
                            Self::feed(&mut self.core, &mut self.shards, now, id, p);
                        }
                    }
                    return;
                }
                let dropped = self.fair.push(face, packets);
                if dropped > 0
                    && let Some(id) = self.faces.by_token.get(&face).copied()
                {
                    self.core
                        .count_inbound_drops(id, DropReason::FairQueue, dropped as u64);
                }
            }
            Inbound::Opened { face, meta, tx } => {
                let mut options = core_options(&meta);
                // The loopback rule is NFD's and covers TCP only: unicast UDP is never local
                // (the face layer reports it so), since a datagram's source can be forged.
                if (!self.loopback_is_local && meta.kind == FaceKind::Tcp)
                    || matches!(meta.kind, FaceKind::Udp | FaceKind::UdpMulticast)
                {
                    options.scope = FaceScope::NonLocal;
                }
                let id = self.core.add_face(options.clone());
                if let Some(shards) = &mut self.shards {
                    shards.broadcast(ShardMsg::AddFace {
                        id,
                        options,
                        tx: tx.clone(),
                    });
                }
                tracing::info!(face = %id, remote = %meta.remote_uri, local = %meta.local_uri, "face up");
                self.faces.by_token.insert(face, id);
                self.faces.by_id.insert(
                    id,
                    FaceEntry {
                        token: face,
                        tx,
                        meta,
                        congested: false,
                    },
                );
                if let Some(request) = self.faces.awaiting_open.remove(&face) {
                    self.created(now, request, Ok(id));
                }
            }
            Inbound::Closed { face, reason } => {
                if let Some(id) = self.faces.by_token.get(&face).copied() {
                    // What the face sent before it closed is still forwarded.
                    for p in self.fair.take_face(face) {
                        Self::feed(&mut self.core, &mut self.shards, now, id, p);
                    }
                    tracing::info!(face = %id, ?reason, "face down");
                    self.remove_face(id);
                }
            }
        }
    }

    /// Hands one received packet to the core or to the shard its name belongs to.
    fn feed(core: &mut Forwarder, shards: &mut Option<Shards>, now: Time, id: FaceId, p: Bytes) {
        match shards {
            None => core.on_packet(now, id, p),
            Some(shards) => match shards.pick(&p) {
                0 => core.on_packet(now, id, p),
                s => shards.queue(s, id, p),
            },
        }
    }

    /// Processes up to [`FAIR_PASS`] waiting packets, a quantum per face per turn.
    fn serve_fair(&mut self, now: Time) {
        let Driver {
            core,
            shards,
            faces,
            fair,
            ..
        } = self;
        fair.serve(FAIR_PASS, |token, p| {
            if let Some(id) = faces.by_token.get(&token).copied() {
                Self::feed(core, shards, now, id, p);
            }
        });
    }

    fn remove_face(&mut self, id: FaceId) {
        self.core.remove_face(id);
        if let Some(shards) = &mut self.shards {
            shards.broadcast(ShardMsg::RemoveFace(id));
        }
        if let Some(e) = self.faces.by_id.remove(&id) {
            e.tx.close();
            self.closed_oversized += LinkCounters::get(&e.tx.counters().oversized);
            self.closed_malformed += LinkCounters::get(&e.tx.counters().malformed);
            self.faces.by_token.remove(&e.token);
        }
    }

    fn created(
        &mut self,
        now: Time,
        request: Option<u64>,
        result: Result<FaceId, FaceCreateError>,
    ) {
        if let Some(r) = request {
            self.with_mgmt(|mgmt, core, _| {
                mgmt.on_face_created(now, r, result, core);
                mgmt.flush(core);
            });
        }
    }

    /// Runs `f` on management and the core as management sees it: this thread's core, with
    /// every table change mirrored to the other shards when sharded.
    fn with_mgmt(
        &mut self,
        f: impl FnOnce(&mut Management, &mut dyn ManagedCore, &mut FaceRegistry),
    ) {
        match &mut self.shards {
            None => f(&mut self.mgmt, &mut self.core, &mut self.faces),
            Some(shards) => {
                let mut t = Mirrored {
                    core: &mut self.core,
                    shards,
                };
                f(&mut self.mgmt, &mut t, &mut self.faces);
            }
        }
    }

    fn on_control(&mut self, now: Time, c: Control) {
        match c {
            Control::Created { request, result } => match result {
                Ok(token) => match self.faces.by_token.get(&token).copied() {
                    Some(id) => self.created(now, request, Ok(id)),
                    None => {
                        self.faces.awaiting_open.insert(token, request);
                    }
                },
                Err(e) => self.created(now, request, Err(e)),
            },
            Control::Metrics(reply) => {
                let _ = reply.send(self.render_metrics());
            }
        }
    }

    /// Runs management and drains every output into the face queues.
    fn flush(&mut self, now: Time) {
        self.process_mgmt(now);
        if !self.faces.to_destroy.is_empty() {
            for id in std::mem::take(&mut self.faces.to_destroy) {
                self.remove_face(id);
            }
            self.process_mgmt(now);
        }
        while let Some((face, pkt)) = self.core.poll_transmit_frame() {
            self.send(face, pkt);
        }
        if let Some(shards) = &mut self.shards {
            shards.flush();
        }
    }

    /// [`Management::process`], with table changes mirrored to every shard when sharded.
    fn process_mgmt(&mut self, now: Time) {
        self.with_mgmt(|mgmt, core, faces| mgmt.process(now, core, faces));
    }

    /// Counters of every shard added up (table sizes too; the mirrored FIB counts once).
    fn status(&self) -> (ForwarderStatus, Vec<(DropReason, u64)>) {
        let first = self.core.status();
        match &self.shards {
            None => (first, first.counters.drops.iter().collect()),
            Some(s) => shard::merge_status(first, &s.statuses()),
        }
    }

    fn send(&mut self, face: FaceId, pkt: Frame) {
        let Some(e) = self.faces.by_id.get_mut(&face) else {
            return;
        };
        let congested = match e.tx.send(pkt) {
            SendStatus::Queued => false,
            SendStatus::Congested => true,
            SendStatus::Dropped | SendStatus::Closed => e.congested,
        };
        if congested != e.congested {
            e.congested = congested;
            self.core.set_face_congested(face, congested);
        }
    }

    fn next_timeout(&mut self) -> Option<Time> {
        match (self.core.poll_timeout(), self.mgmt.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timeout(&mut self, now: Time) {
        self.core.on_timeout(now);
        self.with_mgmt(|mgmt, core, _| mgmt.on_timeout_core(now, core));
    }

    /// Framing errors over all faces, open or closed: (oversized, malformed).
    fn link_errors(&self) -> (u64, u64) {
        let mut o = self.closed_oversized;
        let mut m = self.closed_malformed;
        for e in self.faces.by_id.values() {
            o += LinkCounters::get(&e.tx.counters().oversized);
            m += LinkCounters::get(&e.tx.counters().malformed);
        }
        (o, m)
    }

    fn render_metrics(&self) -> String {
        let mut out = String::new();
        let (oversized, malformed) = self.link_errors();
        render_metric(
            &mut out,
            "counter",
            "amicn_link_oversized_frames_total",
            "Stream frames over the packet size limit (face closed)",
            oversized,
        );
        render_metric(
            &mut out,
            "counter",
            "amicn_link_malformed_frames_total",
            "Stream frames that were not TLV (face closed)",
            malformed,
        );
        let (st, drops) = self.status();
        let c = st.counters;
        for (name, help, v) in [
            (
                "amicn_in_interests_total",
                "Interests received",
                c.n_in_interests,
            ),
            (
                "amicn_out_interests_total",
                "Interests sent",
                c.n_out_interests,
            ),
            ("amicn_in_data_total", "Data received", c.n_in_data),
            ("amicn_out_data_total", "Data sent", c.n_out_data),
            ("amicn_in_nacks_total", "Nacks received", c.n_in_nacks),
            ("amicn_out_nacks_total", "Nacks sent", c.n_out_nacks),
            (
                "amicn_satisfied_interests_total",
                "PIT entries satisfied",
                c.n_satisfied_interests,
            ),
            (
                "amicn_unsatisfied_interests_total",
                "PIT entries expired or nacked",
                c.n_unsatisfied_interests,
            ),
            ("amicn_cs_hits_total", "Content Store hits", c.n_cs_hits),
            (
                "amicn_cs_misses_total",
                "Content Store misses",
                c.n_cs_misses,
            ),
        ] {
            render_metric(&mut out, "counter", name, help, v);
        }
        for (name, help, v) in [
            ("amicn_pit_entries", "PIT entries", st.n_pit_entries),
            ("amicn_fib_entries", "FIB entries", st.n_fib_entries),
            ("amicn_cs_entries", "Content Store entries", st.n_cs_entries),
            ("amicn_faces", "Faces", self.faces.by_id.len() as u64),
            (
                "amicn_fair_queue_packets",
                "Received packets waiting for their face's turn",
                self.fair.len() as u64,
            ),
            (
                "amicn_fair_queue_bytes",
                "Bytes of received packets waiting for their face's turn",
                self.fair.bytes() as u64,
            ),
        ] {
            render_metric(&mut out, "gauge", name, help, v);
        }
        out.push_str(
            "# HELP amicn_drops_total Packets dropped by the forwarding core, by reason\n",
        );
        out.push_str("# TYPE amicn_drops_total counter\n");
        for (reason, n) in drops {
            out.push_str(&format!(
                "amicn_drops_total{{reason=\"{}\"}} {n}\n",
                reason.as_str()
            ));
        }
        let m = self.mgmt.counters();
        render_metric(
            &mut out,
            "counter",
            "amicn_mgmt_commands_total",
            "Management commands answered",
            m.commands,
        );
        out.push_str(
            "# HELP amicn_mgmt_refused_total Management commands refused by authorization, by reason\n",
        );
        out.push_str("# TYPE amicn_mgmt_refused_total counter\n");
        for (reason, n) in self.mgmt.verifier_refusals() {
            out.push_str(&format!(
                "amicn_mgmt_refused_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        let mut ids: Vec<&FaceId> = self.faces.by_id.keys().collect();
        ids.sort();
        out.push_str("# HELP amicn_face_packets_total Packets through each face's transport\n");
        out.push_str("# TYPE amicn_face_packets_total counter\n");
        for id in &ids {
            if let Some(e) = self.faces.by_id.get(id) {
                let fc = e.tx.counters();
                for (dir, v) in [
                    ("in", LinkCounters::get(&fc.in_packets)),
                    ("out", LinkCounters::get(&fc.out_packets)),
                ] {
                    out.push_str(&format!(
                        "amicn_face_packets_total{{face=\"{id}\",dir=\"{dir}\"}} {v}\n"
                    ));
                }
            }
        }
        out.push_str(
            "# HELP amicn_face_drops_total Packets a face's transport dropped, by reason\n",
        );
        out.push_str("# TYPE amicn_face_drops_total counter\n");
        for id in &ids {
            if let Some(e) = self.faces.by_id.get(id) {
                let fc = e.tx.counters();
                for (why, v) in [
                    ("oversized", LinkCounters::get(&fc.oversized)),
                    ("malformed", LinkCounters::get(&fc.malformed)),
                    ("queue_full", LinkCounters::get(&fc.queue_drops)),
                    ("emulated_loss", LinkCounters::get(&fc.emulated_losses)),
                    ("reassembly", LinkCounters::get(&fc.reassembly_drops)),
                    ("amplification", LinkCounters::get(&fc.amplification_drops)),
                ] {
                    out.push_str(&format!(
                        "amicn_face_drops_total{{face=\"{id}\",reason=\"{why}\"}} {v}\n"
                    ));
                }
            }
        }
        for (name, help) in [
            (
                "amicn_channel_refused_total",
                "Connections or new peers a channel refused because it was full",
            ),
            (
                "amicn_channel_idle_closed_total",
                "On-demand faces a channel closed after its idle timeout",
            ),
            (
                "amicn_channel_evicted_total",
                "On-demand UDP faces closed to make room for a new peer",
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (uri, c) in self.faces.channel_counters() {
                let v = match name {
                    "amicn_channel_refused_total" => ChannelCounters::get(&c.refused),
                    "amicn_channel_idle_closed_total" => ChannelCounters::get(&c.idle_closed),
                    _ => ChannelCounters::get(&c.evicted),
                };
                out.push_str(&format!("{name}{{channel=\"{uri}\"}} {v}\n"));
            }
        }
        self.batch_latency.render(
            &mut out,
            "amicn_forwarding_batch_seconds",
            "Time the forwarding loop spends on one batch of events, from wakeup to the last packet queued",
        );
        render_metric(
            &mut out,
            "counter",
            "amicn_forwarded_events_total",
            "Events processed by the forwarding loop",
            self.batch_packets,
        );
        render_metric(
            &mut out,
            "counter",
            "amicn_loop_iterations_total",
            "Forwarding loop wakeups",
            self.loops,
        );
        if let Some(s) = &self.shards {
            render_metric(
                &mut out,
                "counter",
                "amicn_shard_queue_drops_total",
                "Packets dropped because a forwarding shard's queue was full",
                s.queue_drops,
            );
        }
        out
    }

    fn mgmt_snapshot(&self) -> serde_json::Value {
        let m = self.mgmt.counters();
        let refused: serde_json::Map<String, serde_json::Value> = self
            .mgmt
            .verifier_refusals()
            .into_iter()
            .map(|(r, n)| (r.to_string(), n.into()))
            .collect();
        serde_json::json!({
            "commands": m.commands,
            "dropped": m.dropped,
            "unauthorized": m.unauthorized,
            "refused": refused,
        })
    }

    fn snapshot(&self) -> serde_json::Value {
        let (st, drops) = self.status();
        let c = st.counters;
        let drops: serde_json::Map<String, serde_json::Value> = drops
            .into_iter()
            .map(|(r, n)| (r.as_str().to_string(), n.into()))
            .collect();
        let channels: Vec<serde_json::Value> = self
            .faces
            .channel_counters()
            .into_iter()
            .map(|(uri, c)| {
                serde_json::json!({
                    "local_uri": uri,
                    "refused": ChannelCounters::get(&c.refused),
                    "idle_closed": ChannelCounters::get(&c.idle_closed),
                    "evicted": ChannelCounters::get(&c.evicted),
                })
            })
            .collect();
        let mut faces = Vec::new();
        let mut ids: Vec<&FaceId> = self.faces.by_id.keys().collect();
        ids.sort();
        for id in ids {
            if let Some(e) = self.faces.by_id.get(id) {
                let fc = e.tx.counters();
                faces.push(serde_json::json!({
                    "face_id": id.0,
                    "remote_uri": e.meta.remote_uri,
                    "local_uri": e.meta.local_uri,
                    "in_packets": LinkCounters::get(&fc.in_packets),
                    "in_bytes": LinkCounters::get(&fc.in_bytes),
                    "out_packets": LinkCounters::get(&fc.out_packets),
                    "out_bytes": LinkCounters::get(&fc.out_bytes),
                    "oversized": LinkCounters::get(&fc.oversized),
                    "malformed": LinkCounters::get(&fc.malformed),
                    "queue_drops": LinkCounters::get(&fc.queue_drops),
                    "congestion_marks": LinkCounters::get(&fc.congestion_marks),
                }));
            }
        }
        let (oversized, malformed) = self.link_errors();
        serde_json::json!({
            "link_oversized_frames": oversized,
            "link_malformed_frames": malformed,
            "in_interests": c.n_in_interests,
            "out_interests": c.n_out_interests,
            "in_data": c.n_in_data,
            "out_data": c.n_out_data,
            "in_nacks": c.n_in_nacks,
            "out_nacks": c.n_out_nacks,
            "satisfied_interests": c.n_satisfied_interests,
            "unsatisfied_interests": c.n_unsatisfied_interests,
            "cs_hits": c.n_cs_hits,
            "cs_misses": c.n_cs_misses,
            "pit_entries": st.n_pit_entries,
            "fib_entries": st.n_fib_entries,
            "cs_entries": st.n_cs_entries,
            "drops": drops,
            "faces": faces,
            "channels": channels,
            "forwarding_batch_p50_us": self.batch_latency.quantile_us(0.5),
            "forwarding_batch_p99_us": self.batch_latency.quantile_us(0.99),
            "workers": self.shards.as_ref().map_or(1, Shards::len),
            "shard_queue_drops": self.shards.as_ref().map_or(0, |s| s.queue_drops),
            "management": self.mgmt_snapshot(),
        })
    }
}

/// The core configuration with its Nonce seed: the configured one, or one from the OS so
/// that forwarders never share a Nonce sequence (shards add their id to it).
fn seeded_core(config: &RuntimeConfig) -> crate::core::Config {
    let mut core = config.core.clone();
    core.rng_seed = config.rng_seed.unwrap_or_else(os_seed);
    core
}

/// 64 bits from the OS random source (through rand's thread generator, which the OS seeds).
fn os_seed() -> u64 {
    rand::random()
}

async fn run(
    config: RuntimeConfig,
    stop: CancellationToken,
    ready: std::sync::mpsc::Sender<Result<Endpoints, RuntimeError>>,
) -> Result<serde_json::Value, RuntimeError> {
    match setup(&config, &stop).await {
        Ok((driver, inbound_rx, control_rx, endpoints)) => {
            let _ = ready.send(Ok(endpoints));
            let mut driver = forward(driver, inbound_rx, control_rx, stop).await;
            if let Some(s) = &mut driver.shards {
                s.stop();
            }
            let snap = driver.snapshot();
            if let Some(path) = &config.stats_json {
                let text = serde_json::to_string_pretty(&snap).unwrap_or_default();
                std::fs::write(path, text + "\n").map_err(|source| RuntimeError::Stats {
                    path: path.clone(),
                    source,
                })?;
            }
            // Channels drop here: listeners stop and the Unix socket file is removed.
            drop(driver);
            Ok(snap)
        }
        Err(e) => {
            let _ = ready.send(Err(RuntimeError::Thread(e.to_string())));
            Err(e)
        }
    }
}

type Setup = (
    Driver,
    mpsc::Receiver<Inbound>,
    mpsc::Receiver<Control>,
    Endpoints,
);

async fn setup(config: &RuntimeConfig, stop: &CancellationToken) -> Result<Setup, RuntimeError> {
    let workers = config.workers.clamp(1, MAX_WORKERS);
    if workers != config.workers {
        tracing::warn!(
            requested = config.workers,
            workers,
            "forwarding threads limited"
        );
    }
    let (inbound_tx, mut inbound_rx) = mpsc::channel(config.inbound_capacity.max(16));
    let (control_tx, control_rx) = mpsc::channel(256);
    let opts = LinkOptions {
        queue: config.queue,
        emulation: None,
        limits: config.channel_limits,
    };
    let seeded = seeded_core(config);
    let epoch = Instant::now();
    let epoch_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let shards = if workers > 1 {
        let k = config.shard_prefix_components.max(1);
        tracing::info!(
            workers,
            components = k,
            "forwarding shards by name-prefix hash"
        );
        Some(
            Shards::start(workers, k, &seeded, epoch)
                .map_err(|e| RuntimeError::Thread(e.to_string()))?,
        )
    } else {
        None
    };
    let mut core_config = seeded.clone();
    if shards.is_some() {
        core_config = shard::share_limits(&seeded, workers);
        core_config.shard_id = 0;
    }
    let mut driver = Driver {
        core: Forwarder::new(core_config),
        mgmt: Management::new(MgmtConfig {
            epoch_unix_ms,
            ..MgmtConfig::default()
        }),
        faces: FaceRegistry {
            by_token: HashMap::default(),
            by_id: HashMap::default(),
            channels: Vec::new(),
            udp: Vec::new(),
            inbound: inbound_tx.clone(),
            control: control_tx.clone(),
            opts,
            awaiting_open: HashMap::new(),
            to_destroy: Vec::new(),
        },
        epoch,
        batch_latency: Histogram::default(),
        batch_packets: 0,
        loops: 0,
        loopback_is_local: config.loopback_is_local,
        closed_oversized: 0,
        closed_malformed: 0,
        shards,
        fair: fair::FairQueue::new(FAIR_MAX_PER_FACE, FAIR_MAX_BYTES_PER_FACE),
    };
    if let Some(v) = &config.mgmt_verifier {
        driver.mgmt.set_verifier(Box::new(v.clone()));
    }
    let mut endpoints = Endpoints::default();

    for addr in &config.udp {
        match UdpChannel::bind(*addr, inbound_tx.clone(), opts, config.udp_mtu).await {
            Ok(ch) => {
                endpoints.udp.extend(ch.local_addr());
                driver.faces.udp.push(Arc::new(ch));
            }
            Err(e) if config.listen_best_effort => {
                tracing::warn!(error = %e, "UDP channel skipped")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let needs_udp = config
        .faces
        .iter()
        .map(|f| &f.uri)
        .chain(config.routes.iter().map(|r| &r.face));
    let needs_udp = needs_udp.into_iter().any(|u| matches!(u, FaceUri::Udp(_)));
    if needs_udp && driver.faces.udp.is_empty() {
        // Uplinks over UDP need a socket even when no UDP channel listens.
        let ch = UdpChannel::bind(
            "0.0.0.0:0"
                .parse()
                .map_err(|_| RuntimeError::Thread("addr".into()))?,
            inbound_tx.clone(),
            opts,
            config.udp_mtu,
        )
        .await?;
        driver.faces.udp.push(Arc::new(ch));
    }
    for m in &config.multicast {
        amicn_face::udp::multicast_face(
            m.group,
            m.iface,
            inbound_tx.clone(),
            opts,
            config.udp_mtu,
            m.loopback,
        )
        .await?;
    }

    // Static faces: created one by one so routes can name them.
    let mut wanted: Vec<StaticFace> = config.faces.clone();
    for r in &config.routes {
        if !wanted.iter().any(|f| f.uri == r.face) {
            wanted.push(StaticFace {
                uri: r.face.clone(),
                mtu: None,
                emulation: None,
            });
        }
    }
    let mut control_rx = control_rx;
    for f in &wanted {
        driver.faces.start_create(None, f.uri.clone(), f.emulation);
        let token = match control_rx.recv().await {
            Some(Control::Created { result: Ok(t), .. }) => t,
            Some(Control::Created { result: Err(e), .. }) => {
                return Err(RuntimeError::StaticFace {
                    uri: f.uri.to_string(),
                    why: format!("{e:?}"),
                });
            }
            _ => {
                return Err(RuntimeError::StaticFace {
                    uri: f.uri.to_string(),
                    why: "creation did not complete".into(),
                });
            }
        };
        while !driver.faces.by_token.contains_key(&token) {
            match inbound_rx.recv().await {
                Some(ev) => {
                    let now = driver.now();
                    driver.on_event(now, ev);
                }
                None => break,
            }
        }
        if let Some(id) = driver.faces.by_token.get(&token).copied()
            && let Some(mtu) = f.mtu
            && let Some(face) = driver.core.face_mut(id)
        {
            face.options.mtu = Some(mtu);
            let options = face.options.clone();
            if let Some(s) = &mut driver.shards {
                s.broadcast(ShardMsg::UpdateFace(id, options));
            }
        }
    }
    for r in &config.routes {
        let uri = r.face.to_string();
        let Some(id) = driver.faces.find_remote(&uri) else {
            return Err(RuntimeError::StaticFace {
                uri,
                why: "face for route is not up".into(),
            });
        };
        let route = Route {
            face: id.0,
            origin: 255,
            cost: r.cost,
            flags: 1,
            expires: None,
        };
        let prefix = r.prefix.clone();
        driver.with_mgmt(|mgmt, core, _| mgmt.add_route(core, prefix, route));
    }
    for (prefix, strategy) in &config.strategies {
        if let Err(e) = driver.core.set_strategy(prefix, strategy) {
            return Err(RuntimeError::StaticFace {
                uri: strategy.to_string(),
                why: e.to_string(),
            });
        }
        if let Some(s) = &mut driver.shards {
            s.broadcast(ShardMsg::StrategySet(prefix.clone(), strategy.clone()));
        }
    }

    if let Some(path) = &config.unix_path {
        let ch =
            amicn_face::unix::listen_unix_with(path, inbound_tx.clone(), opts, &config.unix_access)
                .await?;
        endpoints.unix = Some(path.clone());
        driver.faces.channels.push(ch);
    }
    for addr in &config.tcp {
        match amicn_face::tcp::listen_tcp(*addr, inbound_tx.clone(), opts).await {
            Ok(ch) => {
                endpoints.tcp.extend(ch.local_addr());
                driver.faces.channels.push(ch);
            }
            Err(e) if config.listen_best_effort => {
                tracing::warn!(error = %e, "TCP channel skipped")
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(addr) = config.metrics {
        let (mtx, mut mrx) = mpsc::channel::<MetricsRequest>(16);
        let (bound, _task) = metrics::serve(addr, mtx, stop.clone())
            .await
            .map_err(|source| RuntimeError::Metrics { addr, source })?;
        endpoints.metrics = Some(bound);
        let control = control_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = mrx.recv().await {
                if control.send(Control::Metrics(r)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(inbound_tx);
    drop(control_tx);
    Ok((driver, inbound_rx, control_rx, endpoints))
}

async fn forward(
    mut d: Driver,
    mut inbound: mpsc::Receiver<Inbound>,
    mut control: mpsc::Receiver<Control>,
    stop: CancellationToken,
) -> Driver {
    let mut events: Vec<Inbound> = Vec::with_capacity(EVENT_BATCH);
    let mut stop_fut = std::pin::pin!(stop.cancelled_owned());
    let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(far_future));
    let mut armed = far_future;
    loop {
        // One timer for the loop, re-armed only when the core's next deadline moves: a fresh
        // timer per wakeup would cost a wheel insert and removal per batch.
        let deadline = d.next_timeout().map_or(far_future, |t| {
            tokio::time::Instant::from_std(d.epoch + t.since_epoch())
        });
        if deadline != armed {
            timer.as_mut().reset(deadline);
            armed = deadline;
        }
        let accepting = d.fair.bytes() < FAIR_MAX_BYTES;
        let backlog = !d.fair.is_empty();
        tokio::select! {
            biased;
            () = &mut stop_fut => break,
            n = inbound.recv_many(&mut events, EVENT_BATCH), if accepting => {
                if n == 0 {
                    break;
                }
                let started = Instant::now();
                let now = d.now();
                let mut n = n;
                for ev in events.drain(..) {
                    d.on_event(now, ev);
                }
                // Take whatever else already waits as well (at most a channel's worth), so a
                // consumer's small batch queued behind a flood's large ones reaches its face
                // queue in this pass instead of many passes later: the channel is first come,
                // first served across faces, the face queues are not.
                while n < INBOUND_DRAIN_MAX && d.fair.bytes() < FAIR_MAX_BYTES {
                    let Ok(ev) = inbound.try_recv() else { break };
                    d.on_event(now, ev);
                    n += 1;
                }
                d.batch_packets += n as u64;
                d.serve_fair(now);
                // Timers that fell due while busy are handled in the same pass.
                if d.next_timeout().is_some_and(|t| t <= now) {
                    d.on_timeout(now);
                }
                d.flush(now);
                d.batch_latency.observe(started.elapsed());
            }
            Some(c) = control.recv() => {
                let now = d.now();
                d.on_control(now, c);
                d.flush(now);
            }
            () = &mut timer => {
                armed = far_future;
                timer.as_mut().reset(far_future);
                let now = d.now();
                d.on_timeout(now);
                d.flush(now);
            }
            // Packets still waiting after a pass: serve the next one once new events, control
            // and timers have had their chance.
            () = std::future::ready(()), if backlog => {
                let now = d.now();
                d.serve_fair(now);
                if d.next_timeout().is_some_and(|t| t <= now) {
                    d.on_timeout(now);
                }
                d.flush(now);
            }
        }
        d.loops += 1;
    }
    tracing::info!("forwarder stopping");
    let ids: Vec<FaceId> = d.faces.by_id.keys().copied().collect();
    for id in ids {
        if let Some(e) = d.faces.by_id.get(&id) {
            e.tx.close();
        }
    }
    // Give face writers a moment to flush what is already queued.
    tokio::time::sleep(Duration::from_millis(5)).await;
    d
}

async fn wait_signal(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs the forwarder on this thread until SIGINT/SIGTERM, then shuts down cleanly.
pub fn run_until_signal(config: RuntimeConfig) -> Result<serde_json::Value, RuntimeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Thread(e.to_string()))?;
    // Handlers go in before any socket exists: a supervisor may signal as soon as the socket
    // accepts, and the default action would leave the socket file behind.
    let (mut int, mut term) = {
        let _ctx = rt.enter();
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    let fwd = RunningForwarder::start(config)?;
    let stop = fwd.stop_token();
    rt.block_on(async {
        tokio::select! {
            () = wait_signal(int.as_mut()) => tracing::info!("SIGINT"),
            () = wait_signal(term.as_mut()) => tracing::info!("SIGTERM"),
            () = stop.cancelled() => {}
        }
    });
    fwd.shutdown()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_start_draws_its_own_nonce_seed_unless_one_is_given() {
        let config = RuntimeConfig::default();
        let a = seeded_core(&config).rng_seed;
        let b = seeded_core(&config).rng_seed;
        assert_ne!(a, b, "two forwarders would share a Nonce sequence");
        assert_ne!(a, crate::core::Config::default().rng_seed);
        let fixed = RuntimeConfig {
            rng_seed: Some(42),
            ..RuntimeConfig::default()
        };
        assert_eq!(seeded_core(&fixed).rng_seed, 42);
    }

    #[test]
    fn face_meta_maps_to_core_options() {
        let meta = FaceMeta {
            kind: FaceKind::UdpMulticast,
            remote_uri: "udp4://224.0.23.170:56363".into(),
            local_uri: "udp4://10.0.0.1:56363".into(),
            local: false,
            persistency: Persistency::Permanent,
            mtu: 1400,
        };
        let o = core_options(&meta);
        assert_eq!(o.scope, FaceScope::NonLocal);
        assert_eq!(o.link_type, LinkType::MultiAccess);
        assert_eq!(o.persistency, FacePersistency::Permanent);
        assert_eq!(o.mtu, Some(1400));
        let unix = FaceMeta {
            kind: FaceKind::Unix,
            local: true,
            persistency: Persistency::OnDemand,
            mtu: 8800,
            ..meta
        };
        let o = core_options(&unix);
        assert_eq!(o.scope, FaceScope::Local);
        assert_eq!(o.mtu, None);
        assert_eq!(o.persistency, FacePersistency::OnDemand);
    }
}
