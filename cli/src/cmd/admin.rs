//! `amicn status | face | route | strategy | cs`: operate a running forwarder through NFD's
//! management protocol, as `nfdc` does.
//!
//! Commands go out as v0.3 signed Interests (DigestSha256 with SignatureNonce and SignatureTime)
//! to `/localhost/nfd/<module>/<verb>/<ControlParameters>`; status datasets are fetched segment by
//! segment under `/localhost/nfd/<module>/<dataset>/v=<version>`. The exchange is a plain
//! blocking socket conversation: one request, wait for the answer, with a timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amicn_face::client::TransportUri;
use amicn_tlv::mgmt::{
    self, ControlParameters, ControlResponse, CsInfo, FaceStatus, FibEntry, ForwarderStatus,
    RibEntry, StrategyChoice,
};
use amicn_tlv::{
    Component, Data, Interest, Name, NetPacket, Received, SignatureInfo, decode_packet,
    split_first_tlv,
};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};

/// Options shared by every admin subcommand.
#[derive(Debug, Args)]
pub(crate) struct Conn {
    /// Forwarder to talk to: `unix:///path`, `tcp://host[:port]`
    /// [default: AMICN_SOCKET, NDN_CLIENT_TRANSPORT, client.conf transport=, /run/nfd/nfd.sock]
    #[arg(long, global = true, value_name = "URI")]
    transport: Option<String>,
    /// How long to wait for each answer, in milliseconds.
    #[arg(long, global = true, default_value_t = 4000)]
    timeout_ms: u64,
    /// Sign commands with this identity or key from the keychain (for a forwarder that
    /// requires authorised commands) instead of DigestSha256
    #[arg(long, global = true, value_name = "NAME")]
    sign_with: Option<String>,
    /// Keychain directory holding the --sign-with key [default: AMICN_KEYCHAIN, ~/.amicn/keychain]
    #[arg(long, global = true, value_name = "DIR")]
    keychain: Option<std::path::PathBuf>,
}

/// The admin subcommands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Show the forwarder's general status and counters (`status/general`).
    Status(Conn),
    /// List, create or destroy faces.
    Face {
        #[command(subcommand)]
        /// What to do.
        action: FaceAction,
        #[command(flatten)]
        /// Connection options.
        conn: Conn,
    },
    /// List, add or remove routes (RIB); `route fib` lists the FIB.
    Route {
        #[command(subcommand)]
        /// What to do.
        action: RouteAction,
        #[command(flatten)]
        /// Connection options.
        conn: Conn,
    },
    /// List, set or unset strategy choices.
    Strategy {
        #[command(subcommand)]
        /// What to do.
        action: StrategyAction,
        #[command(flatten)]
        /// Connection options.
        conn: Conn,
    },
    /// Inspect, configure or erase the Content Store.
    Cs {
        #[command(subcommand)]
        /// What to do.
        action: CsAction,
        #[command(flatten)]
        /// Connection options.
        conn: Conn,
    },
}

/// `amicn face ...`
#[derive(Debug, Subcommand)]
pub(crate) enum FaceAction {
    /// List faces (`faces/list`).
    List,
    /// Create a face toward a remote FaceUri (`faces/create`), e.g. `udp4://192.0.2.1:6363`.
    Create {
        /// Remote FaceUri.
        uri: String,
        /// persistent, permanent or on-demand.
        #[arg(long, default_value = "persistent")]
        persistency: String,
        /// Local FaceUri to bind.
        #[arg(long)]
        local: Option<String>,
        /// MTU for datagram faces.
        #[arg(long)]
        mtu: Option<u64>,
    },
    /// Destroy a face by id (`faces/destroy`).
    Destroy {
        /// FaceId.
        face: u64,
    },
}

/// `amicn route ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RouteAction {
    /// List RIB routes (`rib/list`).
    List,
    /// List the FIB (`fib/list`).
    Fib,
    /// Add a route (`rib/register`).
    Add {
        /// Name prefix.
        prefix: String,
        /// Next-hop FaceId.
        face: u64,
        /// Route origin (255 = static, as nfdc uses).
        #[arg(long, default_value_t = 255)]
        origin: u64,
        /// Route cost.
        #[arg(long, default_value_t = 0)]
        cost: u64,
        /// Do not let longer prefixes inherit the route.
        #[arg(long)]
        no_inherit: bool,
        /// Do not inherit routes of shorter prefixes.
        #[arg(long)]
        capture: bool,
        /// Expire the route after this many milliseconds.
        #[arg(long)]
        expires_ms: Option<u64>,
    },
    /// Remove a route (`rib/unregister`).
    Remove {
        /// Name prefix.
        prefix: String,
        /// Next-hop FaceId.
        face: u64,
        /// Route origin.
        #[arg(long, default_value_t = 255)]
        origin: u64,
    },
}

/// `amicn strategy ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StrategyAction {
    /// List strategy choices (`strategy-choice/list`).
    List,
    /// Choose a strategy for a prefix (`strategy-choice/set`).
    Set {
        /// Name prefix.
        prefix: String,
        /// Strategy name, e.g. /localhost/nfd/strategy/multicast.
        strategy: String,
    },
    /// Remove the strategy choice of a prefix (`strategy-choice/unset`).
    Unset {
        /// Name prefix.
        prefix: String,
    },
}

/// `amicn cs ...`
#[derive(Debug, Subcommand)]
pub(crate) enum CsAction {
    /// Show capacity, switches and hit/miss counters (`cs/info`).
    Info,
    /// Change capacity or the admit / serve switches (`cs/config`).
    Config {
        /// Capacity in packets.
        #[arg(long)]
        capacity: Option<u64>,
        /// Admit Data into the CS: on or off.
        #[arg(long)]
        admit: Option<OnOff>,
        /// Serve Interests from the CS: on or off.
        #[arg(long)]
        serve: Option<OnOff>,
    },
    /// Erase cached Data under a prefix (`cs/erase`).
    Erase {
        /// Name prefix.
        prefix: String,
        /// Erase at most this many entries.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// A switch value.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Runs one admin subcommand.
pub(crate) fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Status(conn) => status(&conn),
        AdminCommand::Face { action, conn } => face(&conn, action),
        AdminCommand::Route { action, conn } => route(&conn, action),
        AdminCommand::Strategy { action, conn } => strategy(&conn, action),
        AdminCommand::Cs { action, conn } => cs(&conn, action),
    }
}

// ---- helpers --------------------------------------------------------------------------------

fn parse_name(uri: &str) -> anyhow::Result<Name> {
    Name::from_uri(uri).with_context(|| format!("{uri:?} is not a valid NDN name URI"))
}

// ---- transport ------------------------------------------------------------------------------

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Conn {
    /// The forwarder to talk to, found as every other command finds it.
    fn uri_with(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<TransportUri> {
        super::key::transport(self.transport.as_deref(), env)
    }
}

fn connect(conn: &Conn) -> anyhow::Result<Box<dyn Stream>> {
    let timeout = Some(Duration::from_millis(conn.timeout_ms.max(1)));
    let uri = conn.uri_with(&|v| std::env::var(v).ok())?;
    match &uri {
        TransportUri::Unix(path) => {
            let s = UnixStream::connect(path).with_context(|| {
                format!("cannot connect to forwarder at {uri} (is it running?)")
            })?;
            s.set_read_timeout(timeout)?;
            Ok(Box::new(s))
        }
        TransportUri::Tcp(addr) => {
            let s = TcpStream::connect(addr).with_context(|| {
                format!("cannot connect to forwarder at {uri} (is it running?)")
            })?;
            s.set_read_timeout(timeout)?;
            Ok(Box::new(s))
        }
        TransportUri::Udp(_) => {
            bail!("unsupported transport {uri}: management needs unix:///path or tcp://host:port")
        }
    }
}

struct Session {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    timeout: Duration,
    /// Key that signs commands; `None` = DigestSha256.
    signer: Option<std::sync::Arc<dyn amicn_producer::Signer>>,
}

impl Session {
    fn open(conn: &Conn) -> anyhow::Result<Session> {
        let signer = match &conn.sign_with {
            Some(id) => {
                let sign = super::key::SignArgs {
                    digest: false,
                    identity: Some(id.clone()),
                    keychain: super::key::KeychainArgs {
                        keychain: conn
                            .keychain
                            .clone()
                            .or_else(|| std::env::var_os("AMICN_KEYCHAIN").map(Into::into)),
                    },
                };
                Some(sign.setup()?.signer)
            }
            None => None,
        };
        Ok(Session {
            stream: connect(conn)?,
            buf: Vec::new(),
            timeout: Duration::from_millis(conn.timeout_ms.max(1)),
            signer,
        })
    }

    /// Sends an Interest and waits for Data whose name `accept` likes.
    fn exchange(
        &mut self,
        wire: &[u8],
        what: &str,
        accept: impl Fn(&Name) -> bool,
    ) -> anyhow::Result<Data> {
        self.stream
            .write_all(wire)
            .context("sending to the forwarder")?;
        let deadline = Instant::now() + self.timeout;
        loop {
            while let Some(n) =
                split_first_tlv(&self.buf).context("malformed stream from the forwarder")?
            {
                let packet = Bytes::from(self.buf.drain(..n).collect::<Vec<u8>>());
                let is_data = packet.first() == Some(&6);
                match decode_packet(packet) {
                    Ok(Received {
                        packet: NetPacket::Nack(nack),
                        ..
                    }) => {
                        bail!(
                            "{what}: the forwarder answered with a Nack (reason {})",
                            nack.reason.code()
                        )
                    }
                    Ok(Received {
                        packet: NetPacket::Data(data),
                        ..
                    }) if accept(&data.name) => return Ok(data),
                    Err(e) if is_data => {
                        return Err(e).context("undecodable Data from the forwarder");
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what}: no answer from the forwarder within {} ms",
                    self.timeout.as_millis()
                );
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("{what}: the forwarder closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!(
                        "{what}: no answer from the forwarder within {} ms",
                        self.timeout.as_millis()
                    )
                }
                Err(e) => return Err(e).context("reading from the forwarder"),
            }
        }
    }

    /// Sends a control command; returns the response body (ControlParameters) on success.
    fn command(&mut self, verb: &str, cp: ControlParameters) -> anyhow::Result<ControlParameters> {
        let mut name = parse_name("/localhost/nfd")?;
        for part in verb.split('/') {
            name = name.append(Component::generic(part.as_bytes().to_vec()));
        }
        name = name.append(Component::generic(cp.encode().to_vec()));
        let mut interest = Interest::new(name);
        interest.nonce = Some(nonce32());
        interest.lifetime_ms = Some(self.timeout.as_millis().try_into().unwrap_or(4000));
        let mut sig = match &self.signer {
            Some(s) => s.signature_info(),
            None => SignatureInfo::digest_sha256(),
        };
        sig.nonce = Some(nonce64().to_vec().into());
        sig.time_ms = Some(now_ms());
        let wire = match &self.signer {
            Some(s) => interest.sign_with(sig, |p| s.sign(p)),
            None => interest.sign_digest_sha256(sig),
        };
        let want = interest.name.clone();
        let data = self.exchange(&wire, verb, |n| *n == want)?;
        let Ok(resp) = ControlResponse::decode(data.content.clone()) else {
            bail!("{verb}: the answer is not a ControlResponse");
        };
        let code = resp.status_code;
        if !(200..400).contains(&code) {
            bail!("{verb} refused: {code} {}", resp.status_text);
        }
        Ok(resp.body.unwrap_or_default())
    }

    /// Fetches every segment of a status dataset and returns the concatenated payload.
    fn dataset(&mut self, path: &str) -> anyhow::Result<Bytes> {
        let prefix = parse_name(&format!("/localhost/nfd/{path}"))?;
        let mut first = Interest::new(prefix.clone());
        first.can_be_prefix = true;
        first.must_be_fresh = true;
        first.nonce = Some(nonce32());
        let wire = first.encode();
        let p = prefix.clone();
        let data = self.exchange(&wire, path, |n| p.is_prefix_of(n) && n.len() == p.len() + 2)?;
        let versioned = data.name.prefix(prefix.len() + 1);
        let mut payload = data.content.to_vec();
        let mut last = final_segment(&data);
        let mut seg = data
            .name
            .get(prefix.len() + 1)
            .and_then(|c| c.as_segment())
            .unwrap_or(0);
        while last.is_none_or(|l| seg < l) {
            seg += 1;
            if seg > 10_000 {
                bail!("{path}: dataset too long");
            }
            let name = versioned.append(Component::segment(seg));
            let mut i = Interest::new(name.clone());
            i.nonce = Some(nonce32());
            let d = self.exchange(&i.encode(), path, |n| *n == name)?;
            payload.extend_from_slice(&d.content);
            last = final_segment(&d).or(last);
        }
        Ok(payload.into())
    }
}

fn final_segment(d: &Data) -> Option<u64> {
    d.meta_info
        .final_block_id
        .as_ref()
        .and_then(|c| c.as_segment())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Non-cryptographic uniqueness for Nonce fields: clock nanoseconds mixed with the pid.
fn nonce64() -> [u8; 8] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finaliser spreads the low-entropy bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).to_be_bytes()
}

fn nonce32() -> u32 {
    let b = nonce64();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ---- subcommands ----------------------------------------------------------------------------

/// Decodes a status dataset, naming it in the error.
fn decoded<T>(path: &str, r: Result<T, amicn_tlv::Error>) -> anyhow::Result<T> {
    r.with_context(|| format!("{path}: undecodable dataset from the forwarder"))
}

fn status(conn: &Conn) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    let payload = s.dataset("status/general")?;
    let st = decoded("status/general", ForwarderStatus::decode_value(payload))?;
    if let Some(v) = &st.nfd_version {
        println!("version={v}");
    }
    let start = st.start_timestamp.unwrap_or(0);
    if let Some(t) = st.start_timestamp {
        println!("startTime={t}");
    }
    if let Some(now) = st.current_timestamp {
        println!("currentTime={now}");
        println!("uptime={} seconds", now.saturating_sub(start) / 1000);
    }
    let counters = [
        ("nNameTreeEntries", st.n_name_tree_entries),
        ("nFibEntries", st.n_fib_entries),
        ("nPitEntries", st.n_pit_entries),
        ("nMeasurementsEntries", st.n_measurements_entries),
        ("nCsEntries", st.n_cs_entries),
        ("nInInterests", st.n_in_interests),
        ("nInData", st.n_in_data),
        ("nInNacks", st.n_in_nacks),
        ("nOutInterests", st.n_out_interests),
        ("nOutData", st.n_out_data),
        ("nOutNacks", st.n_out_nacks),
        ("nSatisfiedInterests", st.n_satisfied_interests),
        ("nUnsatisfiedInterests", st.n_unsatisfied_interests),
    ];
    for (label, v) in counters {
        if let Some(v) = v {
            println!("{label}={v}");
        }
    }
    Ok(())
}

fn persistency_name(p: u64) -> &'static str {
    match p {
        mgmt::PERSISTENCY_PERSISTENT => "persistent",
        mgmt::PERSISTENCY_ON_DEMAND => "on-demand",
        mgmt::PERSISTENCY_PERMANENT => "permanent",
        _ => "unknown",
    }
}

fn describe_face_params(body: &ControlParameters) -> String {
    let mut parts = Vec::new();
    if let Some(id) = body.face_id {
        parts.push(format!("id={id}"));
    }
    if let Some(u) = &body.uri {
        parts.push(format!("remote={u}"));
    }
    if let Some(u) = &body.local_uri {
        parts.push(format!("local={u}"));
    }
    if let Some(p) = body.face_persistency {
        parts.push(format!("persistency={}", persistency_name(p)));
    }
    if let Some(m) = body.mtu {
        parts.push(format!("mtu={m}"));
    }
    parts.join(" ")
}

fn faces_list(s: &mut Session) -> anyhow::Result<Vec<FaceStatus>> {
    decoded(
        "faces/list",
        FaceStatus::decode_list(s.dataset("faces/list")?),
    )
}

fn face(conn: &Conn, action: FaceAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        FaceAction::List => {
            for f in faces_list(&mut s)? {
                let mut line = Vec::new();
                if let Some(id) = f.face_id {
                    line.push(format!("faceid={id}"));
                }
                if let Some(u) = &f.uri {
                    line.push(format!("remote={u}"));
                }
                if let Some(u) = &f.local_uri {
                    line.push(format!("local={u}"));
                }
                if let Some(m) = f.mtu {
                    line.push(format!("mtu={m}"));
                }
                let scope = match f.face_scope {
                    Some(mgmt::SCOPE_LOCAL) => "local",
                    Some(_) => "non-local",
                    None => "",
                };
                let pers = f.face_persistency.map_or("", persistency_name);
                let link = match f.link_type {
                    Some(mgmt::LINK_MULTI_ACCESS) => "multi-access",
                    Some(mgmt::LINK_AD_HOC) => "ad-hoc",
                    Some(_) => "point-to-point",
                    None => "",
                };
                let g = |v: Option<u64>| v.unwrap_or(0);
                let counters = [
                    format!(
                        "in={{{}i {}d {}n {}B}}",
                        g(f.n_in_interests),
                        g(f.n_in_data),
                        g(f.n_in_nacks),
                        g(f.n_in_bytes)
                    ),
                    format!(
                        "out={{{}i {}d {}n {}B}}",
                        g(f.n_out_interests),
                        g(f.n_out_data),
                        g(f.n_out_nacks),
                        g(f.n_out_bytes)
                    ),
                ];
                line.push(format!("counters={{{}}}", counters.join(" ")));
                line.push(format!("flags={{{scope} {pers} {link}}}"));
                println!("{}", line.join(" "));
            }
        }
        FaceAction::Create {
            uri,
            persistency,
            local,
            mtu,
        } => {
            let p = match persistency.as_str() {
                "persistent" => mgmt::PERSISTENCY_PERSISTENT,
                "on-demand" => mgmt::PERSISTENCY_ON_DEMAND,
                "permanent" => mgmt::PERSISTENCY_PERMANENT,
                other => {
                    bail!("unknown persistency {other:?}: use persistent, permanent or on-demand")
                }
            };
            let cp = ControlParameters {
                uri: Some(uri),
                local_uri: local,
                face_persistency: Some(p),
                mtu,
                ..ControlParameters::default()
            };
            let body = s.command("faces/create", cp)?;
            println!("face-created {}", describe_face_params(&body));
        }
        FaceAction::Destroy { face } => {
            let cp = ControlParameters {
                face_id: Some(face),
                ..ControlParameters::default()
            };
            s.command("faces/destroy", cp)?;
            println!("face-destroyed id={face}");
        }
    }
    Ok(())
}

fn route_flags(flags: u64) -> String {
    let mut f = Vec::new();
    if flags & mgmt::ROUTE_FLAG_CHILD_INHERIT != 0 {
        f.push("child-inherit");
    }
    if flags & mgmt::ROUTE_FLAG_CAPTURE != 0 {
        f.push("capture");
    }
    format!("{{{}}}", f.join(" "))
}

fn route(conn: &Conn, action: RouteAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        RouteAction::List => {
            for entry in decoded("rib/list", RibEntry::decode_list(s.dataset("rib/list")?))? {
                let prefix = &entry.name;
                for r in &entry.routes {
                    let expires = r
                        .expiration_period
                        .map_or_else(|| "never".to_string(), |ms| format!("{}s", ms / 1000));
                    println!(
                        "prefix={prefix} nexthop={} origin={} cost={} flags={} expires={expires}",
                        r.face_id.unwrap_or(0),
                        r.origin.unwrap_or(0),
                        r.cost.unwrap_or(0),
                        route_flags(r.flags.unwrap_or(0)),
                    );
                }
            }
        }
        RouteAction::Fib => {
            for entry in decoded("fib/list", FibEntry::decode_list(s.dataset("fib/list")?))? {
                let hops: Vec<String> = entry
                    .next_hops
                    .iter()
                    .map(|h| {
                        format!(
                            "faceid={} (cost={})",
                            h.face_id.unwrap_or(0),
                            h.cost.unwrap_or(0)
                        )
                    })
                    .collect();
                println!("{} nexthops={{{}}}", entry.name, hops.join(", "));
            }
        }
        RouteAction::Add {
            prefix,
            face,
            origin,
            cost,
            no_inherit,
            capture,
            expires_ms,
        } => {
            let name = parse_name(&prefix)?;
            // The forwarder accepts a route to a missing face and installs nothing (as NFD
            // does); say so here instead of reporting success.
            let exists = faces_list(&mut s)?.iter().any(|f| f.face_id == Some(face));
            if !exists {
                bail!("there is no face {face} (see `amicn face list`)");
            }
            let flags = (u64::from(!no_inherit) * mgmt::ROUTE_FLAG_CHILD_INHERIT)
                | (u64::from(capture) * mgmt::ROUTE_FLAG_CAPTURE);
            let cp = ControlParameters {
                name: Some(name.clone()),
                face_id: Some(face),
                origin: Some(origin),
                cost: Some(cost),
                flags: Some(flags),
                expiration_period: expires_ms,
                ..ControlParameters::default()
            };
            s.command("rib/register", cp)?;
            println!(
                "route-add-accepted prefix={name} nexthop={face} origin={origin} cost={cost} flags={}",
                route_flags(flags)
            );
        }
        RouteAction::Remove {
            prefix,
            face,
            origin,
        } => {
            let name = parse_name(&prefix)?;
            let cp = ControlParameters {
                name: Some(name.clone()),
                face_id: Some(face),
                origin: Some(origin),
                ..ControlParameters::default()
            };
            s.command("rib/unregister", cp)?;
            println!("route-removed prefix={name} nexthop={face} origin={origin}");
        }
    }
    Ok(())
}

fn strategy(conn: &Conn, action: StrategyAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        StrategyAction::List => {
            let path = "strategy-choice/list";
            for sc in decoded(path, StrategyChoice::decode_list(s.dataset(path)?))? {
                let show = |n: &Option<Name>| n.as_ref().map(Name::to_string).unwrap_or_default();
                println!("prefix={} strategy={}", show(&sc.name), show(&sc.strategy));
            }
        }
        StrategyAction::Set { prefix, strategy } => {
            let (name, strat) = (parse_name(&prefix)?, parse_name(&strategy)?);
            let cp = ControlParameters {
                name: Some(name.clone()),
                strategy: Some(strat),
                ..ControlParameters::default()
            };
            let body = s.command("strategy-choice/set", cp)?;
            let chosen = body.strategy.map_or(strategy, |n| n.to_string());
            println!("strategy-set prefix={name} strategy={chosen}");
        }
        StrategyAction::Unset { prefix } => {
            let name = parse_name(&prefix)?;
            let cp = ControlParameters {
                name: Some(name.clone()),
                ..ControlParameters::default()
            };
            s.command("strategy-choice/unset", cp)?;
            println!("strategy-unset prefix={name}");
        }
    }
    Ok(())
}

fn on_off(flags: u64, bit: u64) -> &'static str {
    if flags & bit != 0 { "on" } else { "off" }
}

fn cs(conn: &Conn, action: CsAction) -> anyhow::Result<()> {
    const ADMIT: u64 = 1;
    const SERVE: u64 = 2;
    let mut s = Session::open(conn)?;
    match action {
        CsAction::Info => {
            for info in decoded("cs/info", CsInfo::decode_list(s.dataset("cs/info")?))? {
                let flags = info.flags.unwrap_or(0);
                println!("capacity={}", info.capacity.unwrap_or(0));
                println!("admit={}", on_off(flags, ADMIT));
                println!("serve={}", on_off(flags, SERVE));
                println!("nEntries={}", info.n_cs_entries.unwrap_or(0));
                println!("nHits={}", info.n_hits.unwrap_or(0));
                println!("nMisses={}", info.n_misses.unwrap_or(0));
            }
        }
        CsAction::Config {
            capacity,
            admit,
            serve,
        } => {
            let (mut flags, mut mask) = (0u64, 0u64);
            for (bit, v) in [(ADMIT, admit), (SERVE, serve)] {
                if let Some(v) = v {
                    mask |= bit;
                    if matches!(v, OnOff::On) {
                        flags |= bit;
                    }
                }
            }
            let cp = ControlParameters {
                capacity,
                flags: (mask != 0).then_some(flags),
                mask: (mask != 0).then_some(mask),
                ..ControlParameters::default()
            };
            let body = s.command("cs/config", cp)?;
            let flags = body.flags.unwrap_or(0);
            println!(
                "cs-config-updated capacity={} admit={} serve={}",
                body.capacity.unwrap_or(0),
                on_off(flags, ADMIT),
                on_off(flags, SERVE)
            );
        }
        CsAction::Erase { prefix, count } => {
            let name = parse_name(&prefix)?;
            let cp = ControlParameters {
                name: Some(name.clone()),
                count,
                ..ControlParameters::default()
            };
            let body = s.command("cs/erase", cp)?;
            println!("cs-erased prefix={name} count={}", body.count.unwrap_or(0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_forwarder::core::{Config, FaceOptions, FaceScope, Forwarder, Time};
    use amicn_forwarder::mgmt::{Management, NoFaceSystem};

    /// A forwarder core with management on the far end of a socket pair, serving until the
    /// client end closes.
    fn forwarder_session() -> (Session, std::thread::JoinHandle<Forwarder>) {
        let (client, server) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let handle = std::thread::spawn(move || {
            let mut server = server;
            let mut fw = Forwarder::new(Config::default());
            let mut mgmt = Management::default();
            let face = fw.add_face(FaceOptions {
                scope: FaceScope::Local,
                ..FaceOptions::default()
            });
            let _other = fw.add_face(FaceOptions::default());
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut ms = 1;
            loop {
                let n = match server.read(&mut chunk) {
                    Ok(0) | Err(_) => return fw,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(len) = split_first_tlv(&buf).unwrap() {
                    let pkt: Vec<u8> = buf.drain(..len).collect();
                    ms += 1;
                    fw.on_packet(Time::from_millis(ms), face, pkt.into());
                }
                mgmt.process(Time::from_millis(ms), &mut fw, &mut NoFaceSystem);
                while let Some((_, out)) = fw.poll_transmit() {
                    server.write_all(&out).unwrap();
                }
            }
        });
        let session = Session {
            stream: Box::new(client),
            buf: Vec::new(),
            timeout: Duration::from_secs(5),
            signer: None,
        };
        (session, handle)
    }

    #[test]
    fn commands_and_datasets_against_a_live_core() {
        let (mut s, handle) = forwarder_session();
        // Route to the second face (257) with a cost, as `amicn route add /meters 257 --cost 3`.
        let name = parse_name("/meters").unwrap();
        let cp = ControlParameters {
            name: Some(name.clone()),
            face_id: Some(257),
            origin: Some(255),
            cost: Some(3),
            flags: Some(1),
            ..ControlParameters::default()
        };
        let body = s.command("rib/register", cp.clone()).unwrap();
        assert_eq!(body, cp);
        let fib = FibEntry::decode_list(s.dataset("fib/list").unwrap()).unwrap();
        assert_eq!(fib.len(), 1);
        assert_eq!(fib[0].name.to_string(), "/meters");
        let hop = &fib[0].next_hops;
        assert_eq!(
            (hop.len(), hop[0].face_id, hop[0].cost),
            (1, Some(257), Some(3))
        );
        assert_eq!(faces_list(&mut s).unwrap().len(), 2);
        // A refused command becomes an error carrying NFD's code and text.
        let unset_root = ControlParameters {
            name: Some(Name::default()),
            ..ControlParameters::default()
        };
        let err = s.command("strategy-choice/unset", unset_root);
        assert!(err.unwrap_err().to_string().contains("400"));
        drop(s);
        let fw = handle.join().unwrap();
        assert!(fw.fib_get(&name).is_some());
    }

    #[test]
    fn status_and_peek_resolve_the_same_forwarder() {
        use super::super::key::ConnectArgs;
        let dir = std::env::temp_dir().join(format!("amicn-admin-conf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".ndn")).unwrap();
        std::fs::write(
            dir.join(".ndn/client.conf"),
            "transport=tcp://192.0.2.9:7000\n",
        )
        .unwrap();
        let home = dir.to_string_lossy().into_owned();
        let admin = Conn {
            transport: None,
            timeout_ms: 1,
            sign_with: None,
            keychain: None,
        };
        let peek = ConnectArgs { connect: None };
        let cases: [&[(&str, &str)]; 4] = [
            &[("HOME", &home)],
            &[
                ("HOME", &home),
                ("NDN_CLIENT_TRANSPORT", "unix:///tmp/ndn.sock"),
            ],
            &[
                ("HOME", &home),
                ("NDN_CLIENT_TRANSPORT", "unix:///tmp/ndn.sock"),
                ("AMICN_SOCKET", "/tmp/amicn.sock"),
            ],
            &[],
        ];
        let mut seen = Vec::new();
        for vars in cases {
            let env = |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            };
            let a = admin.uri_with(&env).unwrap();
            assert_eq!(a, peek.uri_with(&env).unwrap(), "{vars:?}");
            seen.push(a.to_string());
        }
        assert_eq!(seen[0], "tcp://192.0.2.9:7000");
        assert_eq!(seen[1], "unix:///tmp/ndn.sock");
        assert_eq!(seen[2], "unix:///tmp/amicn.sock");
        // A URI given on the command line wins over the environment for both.
        let flag = Conn {
            transport: Some("tcp://127.0.0.1".into()),
            timeout_ms: 1,
            sign_with: None,
            keychain: None,
        };
        let env = |k: &str| (k == "AMICN_SOCKET").then(|| "/tmp/a.sock".to_owned());
        assert_eq!(
            flag.uri_with(&env).unwrap(),
            ConnectArgs {
                connect: Some("tcp://127.0.0.1".into())
            }
            .uri_with(&env)
            .unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
