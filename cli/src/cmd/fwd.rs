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
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
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

    #[test]
    fn zero_config_listens_like_nfd() {
        let (rc, _) = build_config(&FwdArgs::default()).unwrap();
        assert!(rc.unix_path.is_some());
        assert_eq!(rc.tcp, vec!["0.0.0.0:6363".parse::<SocketAddr>().unwrap()]);
        assert_eq!(rc.udp, vec!["0.0.0.0:6363".parse::<SocketAddr>().unwrap()]);
        assert!(rc.listen_best_effort);
    }
}
