//! `amicn fwd`: run the forwarder. Every setting of the TOML config file is also a flag; flags
//! win over the file. With no config at all it listens like NFD: the Unix socket
//! (`/run/nfd/nfd.sock` when writable), TCP and UDP on port 6363 (skipped if taken).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use amicn_face::FaceUri;
use amicn_face::emulation::Emulation;
use amicn_forwarder::runtime::{
    MulticastFace, RuntimeConfig, StaticFace, StaticRoute, run_until_signal,
};
use amicn_tlv::Name;
use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

mod auth;

/// Run the NDN forwarder.
#[derive(Debug, Args, Default)]
pub(crate) struct FwdArgs {
    /// TOML config file (see examples/fwd-*.toml); flags override its settings.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Unix socket path applications connect to (default: /run/nfd/nfd.sock if writable, else
    /// $XDG_RUNTIME_DIR/amicn/nfd.sock or /tmp/amicn/nfd.sock).
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Do not open the Unix socket.
    #[arg(long)]
    pub(crate) no_unix: bool,
    /// Permission bits of the Unix socket file, in octal (default 0660: owner and group).
    #[arg(long, value_name = "OCTAL")]
    pub(crate) socket_mode: Option<String>,
    /// Group given the Unix socket file, by name or id (default: the creator's group).
    #[arg(long, value_name = "GROUP")]
    pub(crate) socket_group: Option<String>,
    /// Whether TCP peers on loopback addresses are local and may manage the forwarder
    /// (default true; UDP faces are never local).
    #[arg(long, value_name = "BOOL")]
    pub(crate) loopback_is_local: Option<bool>,
    /// Fixed seed of the Nonce generator, for reproducible experiments (default: from the OS).
    #[arg(long, value_name = "N")]
    pub(crate) rng_seed: Option<u64>,
    /// TCP listen address (repeatable; default 0.0.0.0:6363).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) tcp: Vec<SocketAddr>,
    /// UDP listen address (repeatable; default 0.0.0.0:6363).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) udp: Vec<SocketAddr>,
    /// Do not listen on TCP.
    #[arg(long)]
    pub(crate) no_tcp: bool,
    /// Do not listen on UDP.
    #[arg(long)]
    pub(crate) no_udp: bool,
    /// MTU of UDP faces; larger packets are fragmented with NDNLPv2.
    #[arg(long, value_name = "BYTES")]
    pub(crate) udp_mtu: Option<usize>,
    /// UDP multicast face GROUP:PORT@IFACE_ADDR (repeatable), e.g. 224.0.23.170:56363@10.0.0.1.
    #[arg(long, value_name = "GROUP:PORT@IFACE")]
    pub(crate) multicast: Vec<String>,
    /// Face to open at start (repeatable): tcp4://HOST:PORT or udp4://HOST:PORT.
    #[arg(long, value_name = "FACEURI")]
    pub(crate) face: Vec<String>,
    /// Static route `PREFIX=FACEURI[,COST]` (repeatable); the face is opened if needed.
    #[arg(long, value_name = "PREFIX=FACEURI")]
    pub(crate) route: Vec<String>,
    /// Strategy choice PREFIX=STRATEGY (repeatable), e.g. /=/localhost/nfd/strategy/multicast.
    #[arg(long, value_name = "PREFIX=STRATEGY")]
    pub(crate) strategy: Vec<String>,
    /// Content Store capacity in packets.
    #[arg(long, value_name = "PACKETS")]
    pub(crate) cs_capacity: Option<usize>,
    /// Content Store capacity in bytes.
    #[arg(long, value_name = "BYTES")]
    pub(crate) cs_capacity_bytes: Option<usize>,
    /// Maximum PIT entries.
    #[arg(long, value_name = "N")]
    pub(crate) pit_max: Option<usize>,
    /// Weight each face's PIT share by how many of its Interests were answered once the PIT
    /// is half full (satisfaction-based pushback; default true).
    #[arg(long, value_name = "BOOL")]
    pub(crate) pushback: Option<bool>,
    /// Maximum bytes of Interests the PIT holds in total (default 268435456).
    #[arg(long, value_name = "BYTES")]
    pub(crate) pit_max_bytes: Option<usize>,
    /// Maximum PIT bytes charged to one face (default 67108864).
    #[arg(long, value_name = "BYTES")]
    pub(crate) pit_max_bytes_per_face: Option<usize>,
    /// Longest a PIT entry waits for Data; longer InterestLifetimes are cut to it (default 120000).
    #[arg(long, value_name = "MS")]
    pub(crate) max_interest_lifetime_ms: Option<u64>,
    /// Most faces one TCP or Unix listener keeps open (default 1024).
    #[arg(long, value_name = "N")]
    pub(crate) max_stream_faces: Option<usize>,
    /// Most peers with a face on one UDP channel (default 4096).
    #[arg(long, value_name = "N")]
    pub(crate) max_udp_peers: Option<usize>,
    /// Close on-demand faces of non-local peers silent this long (default 600).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_timeout_s: Option<u64>,
    /// Bytes an on-demand UDP face may send per byte received, 0 = unbounded (default 10).
    #[arg(long, value_name = "N")]
    pub(crate) udp_amplification_factor: Option<u64>,
    /// Bytes an on-demand UDP face may send beyond the factor (default 262144).
    #[arg(long, value_name = "BYTES")]
    pub(crate) udp_amplification_credit: Option<u64>,
    /// Per-face send queue capacity in packets.
    #[arg(long, value_name = "PACKETS")]
    pub(crate) queue_capacity: Option<usize>,
    /// Send-queue length above which packets get a CongestionMark.
    #[arg(long, value_name = "PACKETS")]
    pub(crate) congestion_threshold: Option<usize>,
    /// Forwarding threads, each with its own PIT and Content Store; Interests are spread by a
    /// hash of their first name components, Data follows its PitToken.
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Name components hashed to choose a forwarding thread (default 2).
    #[arg(long, value_name = "K")]
    pub(crate) shard_components: Option<usize>,
    /// Require signed management commands: CERTFILE=MODULE[,MODULE...] grants the modules
    /// (faces, fib, rib, strategy-choice, cs) to commands whose signer chains to the NDN
    /// certificate in CERTFILE; `any=MODULE,...` lets every command for them through
    /// (repeatable; adds to the file's `[[authorization]]` entries). Without any entry every
    /// command from a local face is accepted, as NFD's default `certfile any` does.
    #[arg(long, value_name = "CERTFILE=MODULES")]
    pub(crate) authorize: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) metrics: Option<SocketAddr>,
    /// Write a JSON counters snapshot to FILE at exit.
    #[arg(long, value_name = "FILE")]
    pub(crate) stats_json: Option<PathBuf>,
    /// Log level or filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    pub(crate) log_json: bool,
    /// Parse and check the configuration, print it, and exit.
    #[arg(long)]
    pub(crate) check: bool,
}

/// The TOML config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    socket: Option<PathBuf>,
    unix: Option<bool>,
    /// Read as a TOML value so an integer gets a clear error, not a silent decimal mode.
    socket_mode: Option<toml::Value>,
    socket_group: Option<String>,
    loopback_is_local: Option<bool>,
    rng_seed: Option<u64>,
    tcp: Option<Vec<SocketAddr>>,
    udp: Option<Vec<SocketAddr>>,
    udp_mtu: Option<usize>,
    workers: Option<usize>,
    shard_components: Option<usize>,
    metrics: Option<SocketAddr>,
    stats_json: Option<PathBuf>,
    log_level: Option<String>,
    cs: Option<CsSection>,
    limits: Option<LimitsSection>,
    #[serde(default)]
    face: Vec<FaceSection>,
    #[serde(default)]
    route: Vec<RouteSection>,
    #[serde(default)]
    strategy: Vec<StrategySection>,
    #[serde(default)]
    multicast: Vec<MulticastSection>,
    #[serde(default)]
    authorization: Vec<auth::AuthorizationSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsSection {
    capacity: Option<usize>,
    capacity_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    pit_max_entries: Option<usize>,
    pit_max_per_face: Option<usize>,
    pushback: Option<bool>,
    pit_max_bytes: Option<usize>,
    pit_max_bytes_per_face: Option<usize>,
    max_interest_lifetime_ms: Option<u64>,
    max_stream_faces: Option<usize>,
    max_udp_peers: Option<usize>,
    idle_timeout_s: Option<u64>,
    udp_amplification_factor: Option<u64>,
    udp_amplification_credit: Option<u64>,
    queue_capacity: Option<usize>,
    congestion_threshold: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceSection {
    uri: String,
    mtu: Option<usize>,
    /// EMULATION ONLY: added one-way delay in milliseconds.
    emulate_delay_ms: Option<u64>,
    /// EMULATION ONLY: drop probability in [0, 1].
    emulate_loss: Option<f64>,
    emulate_seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    prefix: String,
    face: String,
    #[serde(default)]
    cost: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategySection {
    prefix: String,
    strategy: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MulticastSection {
    group: SocketAddrV4,
    iface: Ipv4Addr,
    #[serde(default)]
    loopback: bool,
}

fn parse_uri(s: &str) -> anyhow::Result<FaceUri> {
    let u = FaceUri::parse(s).with_context(|| format!("face URI {s:?}"))?;
    if matches!(u, FaceUri::Unix(_)) {
        bail!("face URI {s:?}: the forwarder cannot open Unix faces; use tcp4:// or udp4://");
    }
    Ok(u)
}

fn parse_name(s: &str) -> anyhow::Result<Name> {
    Name::from_uri(s).map_err(|e| anyhow::anyhow!("name {s:?}: {e}"))
}

fn parse_route(s: &str) -> anyhow::Result<StaticRoute> {
    let (prefix, rest) = s
        .split_once('=')
        .with_context(|| format!("route {s:?}: expected PREFIX=FACEURI[,COST]"))?;
    let (uri, cost) = match rest.rsplit_once(',') {
        Some((u, c)) => (
            u,
            c.parse()
                .with_context(|| format!("route {s:?}: cost {c:?} is not a number"))?,
        ),
        None => (rest, 0),
    };
    Ok(StaticRoute {
        prefix: parse_name(prefix)?,
        face: parse_uri(uri)?,
        cost,
    })
}

fn parse_multicast(s: &str) -> anyhow::Result<MulticastFace> {
    let (g, i) = s
        .split_once('@')
        .with_context(|| format!("multicast {s:?}: expected GROUP:PORT@IFACE_ADDR"))?;
    let group: SocketAddrV4 = g
        .parse()
        .with_context(|| format!("multicast group {g:?}"))?;
    if !group.ip().is_multicast() {
        bail!("multicast {s:?}: {} is not a multicast address", group.ip());
    }
    Ok(MulticastFace {
        group,
        iface: i
            .parse()
            .with_context(|| format!("interface address {i:?}"))?,
        loopback: false,
    })
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // One line naming the offending line of the file, instead of toml's multi-line snippet.
        let at = e.span().map(|span| {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!(" line {line_no} `{line}`")
        });
        anyhow::anyhow!(
            "config file {}{}: {}",
            path.display(),
            at.unwrap_or_default(),
            e.message().trim()
        )
    })
}

/// How far a signed command's SignatureTime may be from the forwarder's clock.
const AUTH_GRACE_MS: u64 = 60_000;

/// A setting with its config-file key and flag, for error messages.
fn setting(key: &str) -> String {
    format!("{key} (--{})", key.replace('_', "-"))
}

/// Refuses 0 for a limit where 0 would stop the forwarder from working at all.
fn nonzero<T: Default + PartialEq + std::fmt::Display>(
    key: &str,
    v: Option<T>,
) -> anyhow::Result<Option<T>> {
    match v {
        Some(v) if v == T::default() => bail!("{} must be at least 1, not 0", setting(key)),
        v => Ok(v),
    }
}

/// Parses a Unix permission mode written in octal ("0660", "660" or "0o660").
fn parse_socket_mode(s: &str) -> anyhow::Result<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = (!digits.is_empty() && digits.len() <= 4)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|m| *m <= 0o777);
    let Some(mode) = mode else {
        bail!(
            "{} {s:?} is not a permission mode: expected octal digits 0-7 up to 0777, e.g. \"0660\"",
            setting("socket_mode")
        );
    };
    if mode & 0o200 == 0 {
        bail!(
            "{} {s:?} denies the owner write permission, which connecting needs; e.g. \"0600\"",
            setting("socket_mode")
        );
    }
    Ok(mode)
}

fn file_socket_mode(v: &toml::Value) -> anyhow::Result<u32> {
    match v {
        toml::Value::String(s) => parse_socket_mode(s),
        other => bail!(
            "{} must be a quoted octal string such as \"0660\", not {other}",
            setting("socket_mode")
        ),
    }
}

/// The settings `amicn fwd --check` lists in config-file syntax: every key of the file that
/// is not a listener, face, route or strategy, with the value in effect.
pub(crate) fn effective_settings(rc: &RuntimeConfig) -> String {
    use amicn_forwarder::mgmt::CommandVerifier;
    use std::fmt::Write;
    let mut out = String::new();
    let core = &rc.core;
    let ch = &rc.channel_limits;
    let _ = writeln!(out, "loopback_is_local = {}", rc.loopback_is_local);
    let _ = writeln!(out, "socket_mode = \"{:04o}\"", rc.unix_access.mode);
    match &rc.unix_access.group {
        Some(g) => _ = writeln!(out, "socket_group = {g:?}"),
        None => _ = writeln!(out, "# socket_group unset: the creator's group"),
    }
    match rc.rng_seed {
        Some(seed) => _ = writeln!(out, "rng_seed = {seed}"),
        None => _ = writeln!(out, "# rng_seed unset: drawn from the OS at start"),
    }
    let _ = writeln!(out, "udp_mtu = {}", rc.udp_mtu);
    let _ = writeln!(out, "workers = {}", rc.workers);
    let _ = writeln!(out, "shard_components = {}", rc.shard_prefix_components);
    let _ = writeln!(out, "\n[cs]");
    let _ = writeln!(out, "capacity = {}", core.cs_capacity_packets);
    let _ = writeln!(out, "capacity_bytes = {}", core.cs_capacity_bytes);
    let _ = writeln!(out, "\n[limits]");
    let _ = writeln!(out, "pit_max_entries = {}", core.pit_max_entries);
    let _ = writeln!(out, "pit_max_per_face = {}", core.pit_max_per_face);
    let _ = writeln!(out, "pushback = {}", core.pushback);
    let _ = writeln!(out, "pit_max_bytes = {}", core.pit_max_bytes);
    let _ = writeln!(
        out,
        "pit_max_bytes_per_face = {}",
        core.pit_max_bytes_per_face
    );
    let _ = writeln!(
        out,
        "max_interest_lifetime_ms = {}",
        core.max_interest_lifetime.as_millis()
    );
    let _ = writeln!(out, "max_stream_faces = {}", ch.max_stream_faces);
    let _ = writeln!(out, "max_udp_peers = {}", ch.max_udp_peers);
    let _ = writeln!(out, "idle_timeout_s = {}", ch.idle_timeout.as_secs());
    let _ = writeln!(
        out,
        "udp_amplification_factor = {}",
        ch.udp_amplification_factor
    );
    let _ = writeln!(
        out,
        "udp_amplification_credit = {}",
        ch.udp_amplification_credit
    );
    let _ = writeln!(out, "queue_capacity = {}", rc.queue.capacity);
    let _ = writeln!(
        out,
        "congestion_threshold = {}",
        rc.queue.congestion_threshold
    );
    match &rc.mgmt_verifier {
        Some(v) => _ = write!(out, "\n{}", v.describe()),
        None => {
            _ = writeln!(
                out,
                "\n# no [[authorization]]: every management command from a local face runs"
            )
        }
    }
    out
}

/// Builds the runtime configuration from the file (if any) and the flags.
pub(crate) fn build_config(args: &FwdArgs) -> anyhow::Result<(RuntimeConfig, Option<String>)> {
    let file = match &args.config {
        Some(p) => load_file(p)?,
        None => FileConfig::default(),
    };
    let mut rc = RuntimeConfig::default();
    let zero_config_ports =
        args.tcp.is_empty() && args.udp.is_empty() && file.tcp.is_none() && file.udp.is_none();
    rc.listen_best_effort = zero_config_ports;
    let nfd_port = |ip: [u8; 4]| SocketAddr::from((ip, amicn_face::NDN_PORT));

    rc.unix_path = if args.no_unix || file.unix == Some(false) {
        None
    } else {
        Some(
            args.socket
                .clone()
                .or(file.socket.clone())
                .unwrap_or_else(amicn_face::unix::default_socket_path),
        )
    };
    rc.tcp = if args.no_tcp {
        Vec::new()
    } else if !args.tcp.is_empty() {
        args.tcp.clone()
    } else {
        file.tcp
            .clone()
            .unwrap_or_else(|| vec![nfd_port([0, 0, 0, 0])])
    };
    rc.udp = if args.no_udp {
        Vec::new()
    } else if !args.udp.is_empty() {
        args.udp.clone()
    } else {
        file.udp
            .clone()
            .unwrap_or_else(|| vec![nfd_port([0, 0, 0, 0])])
    };
    if let Some(m) = args.udp_mtu.or(file.udp_mtu) {
        if !(576..=65_000).contains(&m) {
            bail!("UDP MTU {m} out of range (576..=65000)");
        }
        rc.udp_mtu = m;
    }
    rc.workers = args.workers.or(file.workers).unwrap_or(1);
    if rc.workers == 0 || rc.workers > amicn_forwarder::runtime::MAX_WORKERS {
        bail!(
            "--workers must be between 1 and {}",
            amicn_forwarder::runtime::MAX_WORKERS
        );
    }
    if let Some(k) = args.shard_components.or(file.shard_components) {
        if !(1..=8).contains(&k) {
            bail!("--shard-components must be between 1 and 8");
        }
        rc.shard_prefix_components = k;
    }
    rc.metrics = args.metrics.or(file.metrics);
    rc.stats_json = args.stats_json.clone().or(file.stats_json.clone());

    let cs = file.cs.unwrap_or_default();
    if let Some(c) = args.cs_capacity.or(cs.capacity) {
        rc.core.cs_capacity_packets = c;
    }
    if let Some(c) = args.cs_capacity_bytes.or(cs.capacity_bytes) {
        rc.core.cs_capacity_bytes = c;
    }
    let limits = file.limits.unwrap_or_default();
    if let Some(p) = args.pit_max.or(limits.pit_max_entries) {
        rc.core.pit_max_entries = p;
    }
    if let Some(p) = limits.pit_max_per_face {
        rc.core.pit_max_per_face = p;
    }
    if let Some(p) = args.pushback.or(limits.pushback) {
        rc.core.pushback = p;
    }
    if let Some(q) = args.queue_capacity.or(limits.queue_capacity) {
        if q == 0 {
            bail!("queue capacity must be at least 1");
        }
        rc.queue.capacity = q;
        rc.queue.congestion_threshold = rc.queue.congestion_threshold.min(q);
    }
    if let Some(t) = args.congestion_threshold.or(limits.congestion_threshold) {
        rc.queue.congestion_threshold = t;
    }
    if let Some(b) = nonzero("pit_max_bytes", args.pit_max_bytes.or(limits.pit_max_bytes))? {
        rc.core.pit_max_bytes = b;
    }
    let per_face = args
        .pit_max_bytes_per_face
        .or(limits.pit_max_bytes_per_face);
    if let Some(b) = nonzero("pit_max_bytes_per_face", per_face)? {
        rc.core.pit_max_bytes_per_face = b;
    }
    let lifetime = args
        .max_interest_lifetime_ms
        .or(limits.max_interest_lifetime_ms);
    if let Some(ms) = nonzero("max_interest_lifetime_ms", lifetime)? {
        rc.core.max_interest_lifetime = Duration::from_millis(ms);
    }
    let stream_faces = args.max_stream_faces.or(limits.max_stream_faces);
    if let Some(n) = nonzero("max_stream_faces", stream_faces)? {
        rc.channel_limits.max_stream_faces = n;
    }
    if let Some(n) = nonzero("max_udp_peers", args.max_udp_peers.or(limits.max_udp_peers))? {
        rc.channel_limits.max_udp_peers = n;
    }
    if let Some(s) = nonzero(
        "idle_timeout_s",
        args.idle_timeout_s.or(limits.idle_timeout_s),
    )? {
        rc.channel_limits.idle_timeout = Duration::from_secs(s);
    }
    // Both may be 0: factor 0 lifts the bound, credit 0 allows only `factor` bytes per byte.
    if let Some(f) = args
        .udp_amplification_factor
        .or(limits.udp_amplification_factor)
    {
        rc.channel_limits.udp_amplification_factor = f;
    }
    if let Some(c) = args
        .udp_amplification_credit
        .or(limits.udp_amplification_credit)
    {
        rc.channel_limits.udp_amplification_credit = c;
    }

    if let Some(b) = args.loopback_is_local.or(file.loopback_is_local) {
        rc.loopback_is_local = b;
    }
    if let Some(m) = &args.socket_mode {
        rc.unix_access.mode = parse_socket_mode(m)?;
    } else if let Some(v) = &file.socket_mode {
        rc.unix_access.mode = file_socket_mode(v)?;
    }
    if let Some(g) = args.socket_group.clone().or(file.socket_group.clone()) {
        if g.trim().is_empty() || g.contains(':') {
            bail!(
                "{} {g:?} must be a group name or a numeric group id",
                setting("socket_group")
            );
        }
        rc.unix_access.group = Some(g);
    }
    rc.rng_seed = args.rng_seed.or(file.rng_seed);

    for f in &file.face {
        let emulation = match (f.emulate_delay_ms, f.emulate_loss) {
            (None, None) => None,
            (d, l) => {
                let loss = l.unwrap_or(0.0);
                if !(0.0..=1.0).contains(&loss) {
                    bail!("face {}: emulate_loss {loss} must be within [0, 1]", f.uri);
                }
                Some(Emulation {
                    delay: Duration::from_millis(d.unwrap_or(0)),
                    loss,
                    seed: f.emulate_seed.unwrap_or(1),
                })
            }
        };
        rc.faces.push(StaticFace {
            uri: parse_uri(&f.uri)?,
            mtu: f.mtu,
            emulation,
        });
    }
    for f in &args.face {
        rc.faces.push(StaticFace {
            uri: parse_uri(f)?,
            mtu: None,
            emulation: None,
        });
    }
    for r in &file.route {
        rc.routes.push(StaticRoute {
            prefix: parse_name(&r.prefix)?,
            face: parse_uri(&r.face)?,
            cost: r.cost,
        });
    }
    for r in &args.route {
        rc.routes.push(parse_route(r)?);
    }
    for s in &file.strategy {
        rc.strategies
            .push((parse_name(&s.prefix)?, parse_name(&s.strategy)?));
    }
    for s in &args.strategy {
        let (p, st) = s
            .split_once('=')
            .with_context(|| format!("strategy {s:?}: expected PREFIX=STRATEGY"))?;
        rc.strategies.push((parse_name(p)?, parse_name(st)?));
    }
    for m in &file.multicast {
        if !m.group.ip().is_multicast() {
            bail!("multicast group {} is not a multicast address", m.group);
        }
        rc.multicast.push(MulticastFace {
            group: m.group,
            iface: m.iface,
            loopback: m.loopback,
        });
    }
    for m in &args.multicast {
        rc.multicast.push(parse_multicast(m)?);
    }
    let base = args
        .config
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    let mut grants = auth::grants_from_file(&file.authorization, base)?;
    for g in &args.authorize {
        grants.push(auth::parse_flag(g)?);
    }
    if !grants.is_empty() {
        let authorizer = auth::Authorizer::new(&grants, AUTH_GRACE_MS)?;
        rc.mgmt_verifier = Some(amicn_forwarder::mgmt::SharedVerifier::new(authorizer));
    }
    let log = args.log_level.clone().or(file.log_level);
    Ok((rc, log))
}

pub(crate) fn init_logging(filter: Option<&str>, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| filter.map(str::to_owned))
        .unwrap_or_else(|| "info".into());
    let env = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Entry point of `amicn fwd`.
pub(crate) fn run(args: FwdArgs) -> anyhow::Result<()> {
    let (config, log) = build_config(&args)?;
    if args.check {
        println!("{config:#?}");
        println!("\n# Effective settings, as config-file keys:");
        print!("{}", effective_settings(&config));
        return Ok(());
    }
    init_logging(log.as_deref(), args.log_json);
    tracing::info!(
        unix = ?config.unix_path,
        tcp = ?config.tcp,
        udp = ?config.udp,
        "amicn forwarder starting"
    );
    run_until_signal(config).context("forwarder failed")?;
    tracing::info!("forwarder stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_override_file_and_routes_parse() {
        let dir = std::env::temp_dir().join(format!("amicn-fwd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        std::fs::write(
            &path,
            r#"
socket = "/tmp/x.sock"
tcp = ["127.0.0.1:7000"]
udp = []
[cs]
capacity = 10
[[face]]
uri = "udp4://127.0.0.1:7001"
mtu = 1400
emulate_delay_ms = 5
[[route]]
prefix = "/a"
face = "udp4://127.0.0.1:7001"
cost = 3
"#,
        )
        .unwrap();
        let args = FwdArgs {
            config: Some(path),
            cs_capacity: Some(99),
            route: vec!["/b/c=tcp4://127.0.0.1:7002,7".into()],
            ..FwdArgs::default()
        };
        let (rc, _) = build_config(&args).unwrap();
        assert_eq!(rc.unix_path, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(
            rc.tcp,
            vec!["127.0.0.1:7000".parse::<SocketAddr>().unwrap()]
        );
        assert!(rc.udp.is_empty());
        assert!(!rc.listen_best_effort);
        assert_eq!(rc.core.cs_capacity_packets, 99);
        assert_eq!(rc.faces.len(), 1);
        assert_eq!(rc.faces[0].mtu, Some(1400));
        assert_eq!(
            rc.faces[0].emulation.unwrap().delay,
            Duration::from_millis(5)
        );
        assert_eq!(rc.routes.len(), 2);
        assert_eq!(rc.routes[1].cost, 7);
        assert_eq!(rc.routes[1].prefix.to_string(), "/b/c");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let bad_route = FwdArgs {
            route: vec!["/a".into()],
            ..FwdArgs::default()
        };
        let e = build_config(&bad_route).unwrap_err().to_string();
        assert!(e.contains("PREFIX=FACEURI"), "{e}");
        let bad_uri = FwdArgs {
            face: vec!["ether://x".into()],
            ..FwdArgs::default()
        };
        assert!(build_config(&bad_uri).is_err());
        let zero = FwdArgs {
            workers: Some(0),
            ..FwdArgs::default()
        };
        assert!(build_config(&zero).is_err());
        let sharded = FwdArgs {
            workers: Some(2),
            shard_components: Some(1),
            ..FwdArgs::default()
        };
        let (rc, _) = build_config(&sharded).unwrap();
        assert_eq!((rc.workers, rc.shard_prefix_components), (2, 1));
        let too_many = FwdArgs {
            workers: Some(amicn_forwarder::runtime::MAX_WORKERS + 1),
            ..FwdArgs::default()
        };
        assert!(build_config(&too_many).is_err());
        let no_components = FwdArgs {
            workers: Some(2),
            shard_components: Some(0),
            ..FwdArgs::default()
        };
        assert!(build_config(&no_components).is_err());

        let dir = std::env::temp_dir().join(format!("amicn-fwd-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "sockett = \"/x\"\n").unwrap();
        let e = format!(
            "{:#}",
            build_config(&FwdArgs {
                config: Some(path),
                ..FwdArgs::default()
            })
            .unwrap_err()
        );
        assert!(e.contains("sockett"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shipped_example_configs_parse() {
        for f in ["fwd-minimal.toml", "fwd-router.toml"] {
            let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")).join(f);
            let args = FwdArgs {
                config: Some(path),
                ..FwdArgs::default()
            };
            let (rc, _) = build_config(&args).unwrap_or_else(|e| panic!("{f}: {e:#}"));
            assert!(rc.unix_path.is_some(), "{f}");
        }
        let router = FwdArgs {
            config: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../examples/fwd-router.toml"
            ))),
            ..FwdArgs::default()
        };
        let (rc, _) = build_config(&router).unwrap();
        assert_eq!(rc.routes.len(), 2);
        assert_eq!(rc.strategies.len(), 2);
        assert_eq!(rc.udp_mtu, 1400);
        assert!(rc.faces[1].emulation.is_some());
    }

    fn write_config(tag: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amicn-fwd-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn limit_and_access_keys_reach_the_runtime_config_and_flags_win() {
        let path = write_config(
            "limits",
            r#"
socket_mode = "0600"
socket_group = "dialout"
loopback_is_local = false
rng_seed = 99
[limits]
pit_max_bytes = 1000000
pit_max_bytes_per_face = 2000
max_interest_lifetime_ms = 4000
max_stream_faces = 5
max_udp_peers = 6
idle_timeout_s = 7
udp_amplification_factor = 0
udp_amplification_credit = 0
"#,
        );
        let from_file = FwdArgs {
            config: Some(path.clone()),
            ..FwdArgs::default()
        };
        let (rc, _) = build_config(&from_file).unwrap();
        assert_eq!(rc.unix_access.mode, 0o600);
        assert_eq!(rc.unix_access.group.as_deref(), Some("dialout"));
        assert!(!rc.loopback_is_local);
        assert_eq!(rc.rng_seed, Some(99));
        assert_eq!(rc.core.pit_max_bytes, 1_000_000);
        assert_eq!(rc.core.pit_max_bytes_per_face, 2000);
        assert_eq!(rc.core.max_interest_lifetime, Duration::from_secs(4));
        let ch = &rc.channel_limits;
        assert_eq!((ch.max_stream_faces, ch.max_udp_peers), (5, 6));
        assert_eq!(ch.idle_timeout, Duration::from_secs(7));
        assert_eq!(
            (ch.udp_amplification_factor, ch.udp_amplification_credit),
            (0, 0)
        );

        let flags = FwdArgs {
            config: Some(path.clone()),
            socket_mode: Some("0o640".into()),
            socket_group: Some("1000".into()),
            loopback_is_local: Some(true),
            rng_seed: Some(u64::MAX),
            pit_max_bytes: Some(11),
            pit_max_bytes_per_face: Some(12),
            max_interest_lifetime_ms: Some(13),
            max_stream_faces: Some(14),
            max_udp_peers: Some(15),
            idle_timeout_s: Some(16),
            udp_amplification_factor: Some(17),
            udp_amplification_credit: Some(18),
            ..FwdArgs::default()
        };
        let (rc, _) = build_config(&flags).unwrap();
        assert_eq!(rc.unix_access.mode, 0o640);
        assert_eq!(rc.unix_access.group.as_deref(), Some("1000"));
        assert!(rc.loopback_is_local);
        assert_eq!(rc.rng_seed, Some(u64::MAX));
        assert_eq!(
            (rc.core.pit_max_bytes, rc.core.pit_max_bytes_per_face),
            (11, 12)
        );
        assert_eq!(rc.core.max_interest_lifetime, Duration::from_millis(13));
        let ch = &rc.channel_limits;
        assert_eq!((ch.max_stream_faces, ch.max_udp_peers), (14, 15));
        assert_eq!(ch.idle_timeout, Duration::from_secs(16));
        assert_eq!(
            (ch.udp_amplification_factor, ch.udp_amplification_credit),
            (17, 18)
        );
        let listed = effective_settings(&rc);
        for line in [
            "socket_mode = \"0640\"",
            "socket_group = \"1000\"",
            "rng_seed = 18446744073709551615",
            "max_interest_lifetime_ms = 13",
            "idle_timeout_s = 16",
            "udp_amplification_credit = 18",
        ] {
            assert!(listed.lines().any(|l| l == line), "{line:?} in\n{listed}");
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn bad_limit_and_access_flags_name_the_setting() {
        let cases: [(FwdArgs, &str); 9] = [
            (
                FwdArgs {
                    socket_mode: Some("999".into()),
                    ..FwdArgs::default()
                },
                "socket_mode",
            ),
            (
                FwdArgs {
                    socket_mode: Some("1777".into()),
                    ..FwdArgs::default()
                },
                "socket_mode",
            ),
            (
                FwdArgs {
                    socket_mode: Some("0440".into()),
                    ..FwdArgs::default()
                },
                "socket_mode",
            ),
            (
                FwdArgs {
                    socket_group: Some(String::new()),
                    ..FwdArgs::default()
                },
                "socket_group",
            ),
            (
                FwdArgs {
                    pit_max_bytes: Some(0),
                    ..FwdArgs::default()
                },
                "pit_max_bytes",
            ),
            (
                FwdArgs {
                    max_interest_lifetime_ms: Some(0),
                    ..FwdArgs::default()
                },
                "max_interest_lifetime_ms",
            ),
            (
                FwdArgs {
                    max_stream_faces: Some(0),
                    ..FwdArgs::default()
                },
                "max_stream_faces",
            ),
            (
                FwdArgs {
                    max_udp_peers: Some(0),
                    ..FwdArgs::default()
                },
                "max_udp_peers",
            ),
            (
                FwdArgs {
                    idle_timeout_s: Some(0),
                    ..FwdArgs::default()
                },
                "idle_timeout_s",
            ),
        ];
        for (args, key) in cases {
            let e = format!("{:#}", build_config(&args).unwrap_err());
            assert!(e.contains(key), "{key}: {e}");
            assert!(!e.contains('\n'), "{key}: {e}");
        }
        for ok in ["660", "0660", "0o600", "0777"] {
            assert!(parse_socket_mode(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn commented_keys_of_the_examples_are_the_defaults() {
        for f in ["fwd-minimal.toml", "fwd-router.toml"] {
            let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")).join(f);
            let text = std::fs::read_to_string(&path).unwrap();
            // Uncomment `# key = value` lines of the top level and [limits] (the sections with
            // commented settings), dropping the multicast example at the end.
            let uncommented: String = text
                .lines()
                .take_while(|l| !l.starts_with("# [[multicast]]"))
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest)
                        if rest.split_once(" = ").is_some_and(|(k, _)| {
                            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        }) =>
                    {
                        rest
                    }
                    _ => l,
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let path = write_config("example", &uncommented);
            let (rc, _) = build_config(&FwdArgs {
                config: Some(path.clone()),
                ..FwdArgs::default()
            })
            .unwrap_or_else(|e| panic!("{f} uncommented: {e:#}"));
            let d = RuntimeConfig::default();
            assert_eq!(rc.unix_access.mode, d.unix_access.mode, "{f}");
            assert_eq!(rc.loopback_is_local, d.loopback_is_local, "{f}");
            assert_eq!(rc.core.pit_max_bytes, d.core.pit_max_bytes, "{f}");
            assert_eq!(
                rc.core.pit_max_bytes_per_face, d.core.pit_max_bytes_per_face,
                "{f}"
            );
            assert_eq!(
                rc.core.max_interest_lifetime, d.core.max_interest_lifetime,
                "{f}"
            );
            let (c, dc) = (&rc.channel_limits, &d.channel_limits);
            assert_eq!(c.max_stream_faces, dc.max_stream_faces, "{f}");
            assert_eq!(c.max_udp_peers, dc.max_udp_peers, "{f}");
            assert_eq!(c.idle_timeout, dc.idle_timeout, "{f}");
            assert_eq!(
                c.udp_amplification_factor, dc.udp_amplification_factor,
                "{f}"
            );
            assert_eq!(
                c.udp_amplification_credit, dc.udp_amplification_credit,
                "{f}"
            );
            assert!(
                rc.rng_seed.is_some() && rc.unix_access.group.is_some(),
                "{f}"
            );
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    }

    #[test]
    fn zero_config_listens_like_nfd() {
        let (rc, _) = build_config(&FwdArgs::default()).unwrap();
        assert!(rc.unix_path.is_some());
        assert_eq!(rc.tcp, vec!["0.0.0.0:6363".parse::<SocketAddr>().unwrap()]);
        assert_eq!(rc.udp, vec!["0.0.0.0:6363".parse::<SocketAddr>().unwrap()]);
        assert!(rc.listen_best_effort);
    }
}
