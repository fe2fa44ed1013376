//! What the runtime is told to build: channels, static faces and routes, limits, observability.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use amicn_face::emulation::Emulation;
use amicn_face::unix::UnixAccess;
use amicn_face::{ChannelLimits, FaceUri, QueueConfig};
use amicn_tlv::Name;

use crate::core::Config as CoreConfig;
use crate::mgmt::SharedVerifier;

/// A face the forwarder opens at start (an uplink to another forwarder).
#[derive(Debug, Clone)]
pub struct StaticFace {
    /// Remote endpoint (`tcp4://...` or `udp4://...`).
    pub uri: FaceUri,
    /// MTU for a UDP face (fragmentation threshold); `None` = the channel's.
    pub mtu: Option<usize>,
    /// EMULATION ONLY: artificial delay/loss on this face's send path.
    pub emulation: Option<Emulation>,
}

/// A route installed at start (origin static, as `nfdc route add` with origin 255).
#[derive(Debug, Clone)]
pub struct StaticRoute {
    /// Name prefix.
    pub prefix: Name,
    /// The face, by remote URI; created if no static face has it.
    pub face: FaceUri,
    /// Route cost.
    pub cost: u64,
}

/// A UDP multicast face to open at start.
#[derive(Debug, Clone, Copy)]
pub struct MulticastFace {
    /// Group and port (NFD: 224.0.23.170:56363).
    pub group: SocketAddrV4,
    /// Address of the interface to join on.
    pub iface: Ipv4Addr,
    /// Receive our own transmissions (tests on one host).
    pub loopback: bool,
}

/// Everything `amicn fwd` can set; `RuntimeConfig::default()` is the zero-config forwarder.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Forwarding-core limits and policies (CS capacity, PIT limits, strategy).
    pub core: CoreConfig,
    /// Unix socket path; `None` disables the Unix channel.
    pub unix_path: Option<PathBuf>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// UDP unicast listen addresses.
    pub udp: Vec<SocketAddr>,
    /// MTU of UDP faces (packets above it are fragmented with NDNLPv2).
    pub udp_mtu: usize,
    /// Multicast faces.
    pub multicast: Vec<MulticastFace>,
    /// Faces opened at start.
    pub faces: Vec<StaticFace>,
    /// Routes installed at start.
    pub routes: Vec<StaticRoute>,
    /// Strategy choices at start: (prefix, strategy name such as `/localhost/nfd/strategy/multicast`).
    pub strategies: Vec<(Name, Name)>,
    /// Per-face send queue sizing and congestion threshold.
    pub queue: QueueConfig,
    /// Capacity of the channel from faces to the forwarding loop (events, each a batch).
    pub inbound_capacity: usize,
    /// Prometheus metrics listen address (opt-in).
    pub metrics: Option<SocketAddr>,
    /// Write a JSON counters snapshot here at exit.
    pub stats_json: Option<PathBuf>,
    /// Log and skip TCP/UDP listeners that cannot bind instead of failing (the zero-config
    /// default ports may be taken by another forwarder).
    pub listen_best_effort: bool,
    /// Treat TCP peers on loopback addresses as local (NFD's rule), so they may send
    /// management commands. Unicast UDP faces are never local, whatever the address. Turn off
    /// when several forwarders on one host talk over loopback and must not exchange
    /// `/localhost` traffic, or when only users admitted to the Unix socket may manage.
    pub loopback_is_local: bool,
    /// Who may connect to the Unix socket (file mode and group; default 0660, owner's group).
    pub unix_access: UnixAccess,
    /// Face limits of the TCP, Unix and UDP channels: faces per listener, UDP peers, idle
    /// timeout of non-local on-demand faces, UDP amplification bound.
    pub channel_limits: ChannelLimits,
    /// Seed of the Nonce generator (`Config::rng_seed` of every core); `None`, the default,
    /// draws one from the OS at start so no two forwarders share a Nonce sequence. Set it only
    /// for reproducible experiments.
    pub rng_seed: Option<u64>,
    /// Forwarding threads, each with its own PIT and CS (1 = everything on one thread).
    pub workers: usize,
    /// Name components hashed to pick a forwarding thread when `workers > 1` (names shorter
    /// than this hash whole). Traffic under one prefix of this length stays on one thread.
    pub shard_prefix_components: usize,
    /// Checks management command Interests before they run (403 when refused); `None`, the
    /// default, accepts every command from a local face as NFD's shipped configuration does.
    pub mgmt_verifier: Option<SharedVerifier>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            core: CoreConfig::default(),
            unix_path: Some(amicn_face::unix::default_socket_path()),
            tcp: Vec::new(),
            udp: Vec::new(),
            udp_mtu: amicn_face::udp::DEFAULT_UDP_MTU,
            multicast: Vec::new(),
            faces: Vec::new(),
            routes: Vec::new(),
            strategies: Vec::new(),
            queue: QueueConfig::default(),
            inbound_capacity: 1024,
            metrics: None,
            stats_json: None,
            listen_best_effort: false,
            loopback_is_local: true,
            unix_access: UnixAccess::default(),
            channel_limits: ChannelLimits::default(),
            rng_seed: None,
            workers: 1,
            shard_prefix_components: 2,
            mgmt_verifier: None,
        }
    }
}
