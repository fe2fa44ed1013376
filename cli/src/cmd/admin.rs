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
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amicn_tlv::{Component, Data, Interest, Name, SignatureInfo};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// Options shared by every admin subcommand.
#[derive(Debug, Args)]
pub(crate) struct Conn {
    /// Forwarder to talk to: `unix:///path`, `tcp://host:port` (default: $NDN_CLIENT_TRANSPORT,
    /// else /run/nfd/nfd.sock or the first existing fallback).
    #[arg(long, global = true, env = "NDN_CLIENT_TRANSPORT")]
    transport: Option<String>,
    /// How long to wait for each answer, in milliseconds.
    #[arg(long, global = true, default_value_t = 4000)]
    timeout_ms: u64,
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

// ---- ControlParameters / TLV helpers -------------------------------------------------------

const CONTROL_PARAMETERS: u64 = 104;
const FACE_ID: u64 = 105;
const COST: u64 = 106;
const STRATEGY: u64 = 107;
const FLAGS: u64 = 108;
const EXPIRATION_PERIOD: u64 = 109;
const ORIGIN: u64 = 111;
const MASK: u64 = 112;
const URI: u64 = 114;
const LOCAL_URI: u64 = 129;
const CAPACITY: u64 = 131;
const COUNT: u64 = 132;
const FACE_PERSISTENCY: u64 = 133;
const MTU: u64 = 137;

fn put_var(b: &mut Vec<u8>, v: u64) {
    match v {
        0..=252 => b.push(v as u8),
        253..=0xFFFF => {
            b.push(0xFD);
            b.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            b.push(0xFE);
            b.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            b.push(0xFF);
            b.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn put_tlv(b: &mut Vec<u8>, typ: u64, value: &[u8]) {
    put_var(b, typ);
    put_var(b, value.len() as u64);
    b.extend_from_slice(value);
}

fn put_nni(b: &mut Vec<u8>, typ: u64, v: u64) {
    let bytes = v.to_be_bytes();
    let keep = if v <= 0xFF {
        1
    } else if v <= 0xFFFF {
        2
    } else if v <= 0xFFFF_FFFF {
        4
    } else {
        8
    };
    put_tlv(b, typ, &bytes[8 - keep..]);
}

fn read_var(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    match first {
        0..=252 => Some((u64::from(first), 1)),
        0xFD => Some((
            u64::from(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?)),
            3,
        )),
        0xFE => Some((
            u64::from(u32::from_be_bytes(b.get(1..5)?.try_into().ok()?)),
            5,
        )),
        _ => Some((u64::from_be_bytes(b.get(1..9)?.try_into().ok()?), 9)),
    }
}

/// Splits the first TLV off `b`: (type, value, whole element length).
fn read_tlv(b: &[u8]) -> Option<(u64, &[u8], usize)> {
    let (typ, n1) = read_var(b)?;
    let (len, n2) = read_var(b.get(n1..)?)?;
    let start = n1 + n2;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((typ, b.get(start..end)?, end))
}

/// All top-level elements of a TLV sequence (stops at the first malformed one).
fn elements(mut b: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while let Some((t, v, n)) = read_tlv(b) {
        out.push((t, v));
        b = &b[n..];
    }
    out
}

fn nni(v: &[u8]) -> u64 {
    v.iter()
        .take(8)
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn name_uri(wire_value: &[u8]) -> String {
    let mut wire = Vec::new();
    put_tlv(&mut wire, 7, wire_value);
    Name::decode(wire.into()).map_or_else(|_| "(bad name)".to_string(), |n| n.to_string())
}

fn parse_name(uri: &str) -> anyhow::Result<Name> {
    Name::from_uri(uri).with_context(|| format!("{uri:?} is not a valid NDN name URI"))
}

fn params(fields: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    fields(&mut v);
    let mut out = Vec::new();
    put_tlv(&mut out, CONTROL_PARAMETERS, &v);
    out
}

fn put_name(b: &mut Vec<u8>, name: &Name) {
    b.extend_from_slice(&name.to_wire());
}

// ---- transport ------------------------------------------------------------------------------

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(conn: &Conn) -> anyhow::Result<Box<dyn Stream>> {
    let timeout = Some(Duration::from_millis(conn.timeout_ms.max(1)));
    let uri = match &conn.transport {
        Some(t) => t.clone(),
        None => {
            let path = [
                "/run/nfd/nfd.sock",
                "/run/nfd.sock",
                "/run/ndn/nfd.sock",
                "/var/run/nfd/nfd.sock",
            ]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("/run/nfd/nfd.sock");
            format!("unix://{path}")
        }
    };
    if let Some(path) = uri.strip_prefix("unix://") {
        let s = UnixStream::connect(path)
            .with_context(|| format!("cannot connect to forwarder at {uri} (is it running?)"))?;
        s.set_read_timeout(timeout)?;
        return Ok(Box::new(s));
    }
    if let Some(addr) = uri
        .strip_prefix("tcp://")
        .or_else(|| uri.strip_prefix("tcp4://"))
    {
        let addr = if addr.contains(':') {
            addr.to_string()
        } else {
            format!("{addr}:6363")
        };
        let s = TcpStream::connect(&addr)
            .with_context(|| format!("cannot connect to forwarder at {uri} (is it running?)"))?;
        s.set_read_timeout(timeout)?;
        return Ok(Box::new(s));
    }
    bail!("unsupported transport {uri:?}: use unix:///path or tcp://host:port")
}

/// The network-layer packet inside an LpPacket, or the packet itself; `Err` for a Nack.
fn unwrap_lp(packet: &[u8]) -> Result<Option<&[u8]>, u64> {
    let Some((typ, value, _)) = read_tlv(packet) else {
        return Ok(None);
    };
    if typ != 100 {
        return Ok(Some(packet));
    }
    let mut fragment = None;
    for (t, v) in elements(value) {
        match t {
            800 => {
                let reason = elements(v)
                    .into_iter()
                    .find(|(t, _)| *t == 801)
                    .map_or(0, |(_, v)| nni(v));
                return Err(reason);
            }
            80 => fragment = Some(v),
            _ => {}
        }
    }
    Ok(fragment)
}

struct Session {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Session {
    fn open(conn: &Conn) -> anyhow::Result<Session> {
        Ok(Session {
            stream: connect(conn)?,
            buf: Vec::new(),
            timeout: Duration::from_millis(conn.timeout_ms.max(1)),
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
            while let Some((_, _, n)) = read_tlv(&self.buf) {
                let packet: Vec<u8> = self.buf.drain(..n).collect();
                match unwrap_lp(&packet) {
                    Err(reason) => {
                        bail!("{what}: the forwarder answered with a Nack (reason {reason})")
                    }
                    Ok(Some(net)) if net.first() == Some(&6) => {
                        let data = Data::decode(net.to_vec().into())
                            .context("undecodable Data from the forwarder")?;
                        if accept(&data.name) {
                            return Ok(data);
                        }
                    }
                    Ok(_) => {}
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

    /// Sends a control command; returns the response body (ControlParameters value) on success.
    fn command(&mut self, verb: &str, cp: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let mut name = parse_name("/localhost/nfd")?;
        for part in verb.split('/') {
            name = name.append(Component::generic(part.as_bytes().to_vec()));
        }
        name = name.append(Component::generic(cp));
        let mut interest = Interest::new(name);
        interest.nonce = Some(nonce32());
        interest.lifetime_ms = Some(self.timeout.as_millis().try_into().unwrap_or(4000));
        let mut sig = SignatureInfo::digest_sha256();
        sig.nonce = Some(nonce64().to_vec().into());
        sig.time_ms = Some(now_ms());
        let wire = interest.sign_digest_sha256(sig);
        let want = interest.name.clone();
        let data = self.exchange(&wire, verb, |n| *n == want)?;
        let Some((101, resp, _)) = read_tlv(&data.content) else {
            bail!("{verb}: the answer is not a ControlResponse");
        };
        let (mut code, mut status_text, mut body) = (0, String::new(), Vec::new());
        for (t, v) in elements(resp) {
            match t {
                102 => code = nni(v),
                103 => status_text = text(v),
                CONTROL_PARAMETERS => body = v.to_vec(),
                _ => {}
            }
        }
        if !(200..400).contains(&code) {
            bail!("{verb} refused: {code} {status_text}");
        }
        Ok(body)
    }

    /// Fetches every segment of a status dataset and returns the concatenated payload.
    fn dataset(&mut self, path: &str) -> anyhow::Result<Vec<u8>> {
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
        Ok(payload)
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

fn status(conn: &Conn) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    let payload = s.dataset("status/general")?;
    let mut start = 0;
    for (t, v) in elements(&payload) {
        let label = match t {
            128 => {
                println!("version={}", text(v));
                continue;
            }
            129 => {
                start = nni(v);
                println!("startTime={start}");
                continue;
            }
            130 => {
                let now = nni(v);
                println!("currentTime={now}");
                println!("uptime={} seconds", now.saturating_sub(start) / 1000);
                continue;
            }
            131 => "nNameTreeEntries",
            132 => "nFibEntries",
            133 => "nPitEntries",
            134 => "nMeasurementsEntries",
            135 => "nCsEntries",
            144 => "nInInterests",
            145 => "nInData",
            151 => "nInNacks",
            146 => "nOutInterests",
            147 => "nOutData",
            152 => "nOutNacks",
            153 => "nSatisfiedInterests",
            154 => "nUnsatisfiedInterests",
            _ => continue,
        };
        println!("{label}={}", nni(v));
    }
    Ok(())
}

fn persistency_name(p: u64) -> &'static str {
    match p {
        0 => "persistent",
        1 => "on-demand",
        2 => "permanent",
        _ => "unknown",
    }
}

fn describe_face_params(body: &[u8]) -> String {
    let mut parts = Vec::new();
    for (t, v) in elements(body) {
        match t {
            FACE_ID => parts.push(format!("id={}", nni(v))),
            URI => parts.push(format!("remote={}", text(v))),
            LOCAL_URI => parts.push(format!("local={}", text(v))),
            FACE_PERSISTENCY => parts.push(format!("persistency={}", persistency_name(nni(v)))),
            MTU => parts.push(format!("mtu={}", nni(v))),
            _ => {}
        }
    }
    parts.join(" ")
}

fn face(conn: &Conn, action: FaceAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        FaceAction::List => {
            for (t, entry) in elements(&s.dataset("faces/list")?) {
                if t != 128 {
                    continue;
                }
                let mut line = Vec::new();
                let (mut scope, mut pers, mut link) = ("", "", "");
                let mut c = std::collections::BTreeMap::new();
                for (t, v) in elements(entry) {
                    match t {
                        FACE_ID => line.push(format!("faceid={}", nni(v))),
                        URI => line.push(format!("remote={}", text(v))),
                        LOCAL_URI => line.push(format!("local={}", text(v))),
                        132 => scope = if nni(v) == 1 { "local" } else { "non-local" },
                        133 => pers = persistency_name(nni(v)),
                        134 => {
                            link = match nni(v) {
                                1 => "multi-access",
                                2 => "ad-hoc",
                                _ => "point-to-point",
                            }
                        }
                        MTU => line.push(format!("mtu={}", nni(v))),
                        144..=152 => {
                            c.insert(t, nni(v));
                        }
                        _ => {}
                    }
                }
                let g = |t: u64| c.get(&t).copied().unwrap_or(0);
                let counters = [
                    format!("in={{{}i {}d {}n {}B}}", g(144), g(145), g(151), g(148)),
                    format!("out={{{}i {}d {}n {}B}}", g(146), g(147), g(152), g(149)),
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
                "persistent" => 0,
                "on-demand" => 1,
                "permanent" => 2,
                other => {
                    bail!("unknown persistency {other:?}: use persistent, permanent or on-demand")
                }
            };
            let cp = params(|b| {
                put_tlv(b, URI, uri.as_bytes());
                if let Some(l) = &local {
                    put_tlv(b, LOCAL_URI, l.as_bytes());
                }
                put_nni(b, FACE_PERSISTENCY, p);
                if let Some(m) = mtu {
                    put_nni(b, MTU, m);
                }
            });
            let body = s.command("faces/create", cp)?;
            println!("face-created {}", describe_face_params(&body));
        }
        FaceAction::Destroy { face } => {
            s.command("faces/destroy", params(|b| put_nni(b, FACE_ID, face)))?;
            println!("face-destroyed id={face}");
        }
    }
    Ok(())
}

fn route_flags(flags: u64) -> String {
    let mut f = Vec::new();
    if flags & 1 != 0 {
        f.push("child-inherit");
    }
    if flags & 2 != 0 {
        f.push("capture");
    }
    format!("{{{}}}", f.join(" "))
}

fn route(conn: &Conn, action: RouteAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        RouteAction::List => {
            for (t, entry) in elements(&s.dataset("rib/list")?) {
                if t != 128 {
                    continue;
                }
                let mut prefix = String::new();
                for (t, v) in elements(entry) {
                    if t == 7 {
                        prefix = name_uri(v);
                    } else if t == 129 {
                        let mut r = std::collections::BTreeMap::new();
                        for (t, v) in elements(v) {
                            r.insert(t, nni(v));
                        }
                        let expires = r
                            .get(&EXPIRATION_PERIOD)
                            .map_or_else(|| "never".to_string(), |ms| format!("{}s", ms / 1000));
                        println!(
                            "prefix={prefix} nexthop={} origin={} cost={} flags={} expires={expires}",
                            r.get(&FACE_ID).copied().unwrap_or(0),
                            r.get(&ORIGIN).copied().unwrap_or(0),
                            r.get(&COST).copied().unwrap_or(0),
                            route_flags(r.get(&FLAGS).copied().unwrap_or(0)),
                        );
                    }
                }
            }
        }
        RouteAction::Fib => {
            for (t, entry) in elements(&s.dataset("fib/list")?) {
                if t != 128 {
                    continue;
                }
                let mut prefix = String::new();
                let mut hops = Vec::new();
                for (t, v) in elements(entry) {
                    if t == 7 {
                        prefix = name_uri(v);
                    } else if t == 129 {
                        let (mut face, mut cost) = (0, 0);
                        for (t, v) in elements(v) {
                            match t {
                                FACE_ID => face = nni(v),
                                COST => cost = nni(v),
                                _ => {}
                            }
                        }
                        hops.push(format!("faceid={face} (cost={cost})"));
                    }
                }
                println!("{prefix} nexthops={{{}}}", hops.join(", "));
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
            let exists = elements(&s.dataset("faces/list")?)
                .into_iter()
                .any(|(t, v)| {
                    t == 128
                        && elements(v)
                            .first()
                            .is_some_and(|(t, v)| *t == FACE_ID && nni(v) == face)
                });
            if !exists {
                bail!("there is no face {face} (see `amicn face list`)");
            }
            let flags = u64::from(!no_inherit) | (u64::from(capture) << 1);
            let cp = params(|b| {
                put_name(b, &name);
                put_nni(b, FACE_ID, face);
                put_nni(b, ORIGIN, origin);
                put_nni(b, COST, cost);
                put_nni(b, FLAGS, flags);
                if let Some(ms) = expires_ms {
                    put_nni(b, EXPIRATION_PERIOD, ms);
                }
            });
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
            let cp = params(|b| {
                put_name(b, &name);
                put_nni(b, FACE_ID, face);
                put_nni(b, ORIGIN, origin);
            });
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
            for (t, entry) in elements(&s.dataset("strategy-choice/list")?) {
                if t != 128 {
                    continue;
                }
                let (mut prefix, mut strat) = (String::new(), String::new());
                for (t, v) in elements(entry) {
                    if t == 7 {
                        prefix = name_uri(v);
                    } else if t == STRATEGY
                        && let Some((7, n, _)) = read_tlv(v)
                    {
                        strat = name_uri(n);
                    }
                }
                println!("prefix={prefix} strategy={strat}");
            }
        }
        StrategyAction::Set { prefix, strategy } => {
            let (name, strat) = (parse_name(&prefix)?, parse_name(&strategy)?);
            let cp = params(|b| {
                put_name(b, &name);
                let mut s = Vec::new();
                put_name(&mut s, &strat);
                put_tlv(b, STRATEGY, &s);
            });
            let body = s.command("strategy-choice/set", cp)?;
            let chosen = elements(&body)
                .into_iter()
                .find(|(t, _)| *t == STRATEGY)
                .and_then(|(_, v)| read_tlv(v).map(|(_, n, _)| name_uri(n)))
                .unwrap_or(strategy);
            println!("strategy-set prefix={name} strategy={chosen}");
        }
        StrategyAction::Unset { prefix } => {
            let name = parse_name(&prefix)?;
            s.command("strategy-choice/unset", params(|b| put_name(b, &name)))?;
            println!("strategy-unset prefix={name}");
        }
    }
    Ok(())
}

fn cs(conn: &Conn, action: CsAction) -> anyhow::Result<()> {
    let mut s = Session::open(conn)?;
    match action {
        CsAction::Info => {
            for (t, entry) in elements(&s.dataset("cs/info")?) {
                if t != 128 {
                    continue;
                }
                let f: std::collections::BTreeMap<u64, u64> = elements(entry)
                    .into_iter()
                    .map(|(t, v)| (t, nni(v)))
                    .collect();
                let flags = f.get(&FLAGS).copied().unwrap_or(0);
                println!("capacity={}", f.get(&CAPACITY).copied().unwrap_or(0));
                println!("admit={}", if flags & 1 != 0 { "on" } else { "off" });
                println!("serve={}", if flags & 2 != 0 { "on" } else { "off" });
                println!("nEntries={}", f.get(&135).copied().unwrap_or(0));
                println!("nHits={}", f.get(&129).copied().unwrap_or(0));
                println!("nMisses={}", f.get(&130).copied().unwrap_or(0));
            }
        }
        CsAction::Config {
            capacity,
            admit,
            serve,
        } => {
            let (mut flags, mut mask) = (0u64, 0u64);
            for (bit, v) in [(1u64, admit), (2u64, serve)] {
                if let Some(v) = v {
                    mask |= bit;
                    if matches!(v, OnOff::On) {
                        flags |= bit;
                    }
                }
            }
            let cp = params(|b| {
                if let Some(c) = capacity {
                    put_nni(b, CAPACITY, c);
                }
                if mask != 0 {
                    put_nni(b, FLAGS, flags);
                    put_nni(b, MASK, mask);
                }
            });
            let body = s.command("cs/config", cp)?;
            let f: std::collections::BTreeMap<u64, u64> = elements(&body)
                .into_iter()
                .map(|(t, v)| (t, nni(v)))
                .collect();
            let flags = f.get(&FLAGS).copied().unwrap_or(0);
            println!(
                "cs-config-updated capacity={} admit={} serve={}",
                f.get(&CAPACITY).copied().unwrap_or(0),
                if flags & 1 != 0 { "on" } else { "off" },
                if flags & 2 != 0 { "on" } else { "off" }
            );
        }
        CsAction::Erase { prefix, count } => {
            let name = parse_name(&prefix)?;
            let cp = params(|b| {
                put_name(b, &name);
                if let Some(c) = count {
                    put_nni(b, COUNT, c);
                }
            });
            let body = s.command("cs/erase", cp)?;
            let erased = elements(&body)
                .into_iter()
                .find(|(t, _)| *t == COUNT)
                .map_or(0, |(_, v)| nni(v));
            println!("cs-erased prefix={name} count={erased}");
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
                while let Some((_, _, len)) = read_tlv(&buf) {
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
        };
        (session, handle)
    }

    #[test]
    fn commands_and_datasets_against_a_live_core() {
        let (mut s, handle) = forwarder_session();
        // Route to the second face (257) with a cost, as `amicn route add /meters 257 --cost 3`.
        let name = parse_name("/meters").unwrap();
        let cp = params(|b| {
            put_name(b, &name);
            put_nni(b, FACE_ID, 257);
            put_nni(b, ORIGIN, 255);
            put_nni(b, COST, 3);
            put_nni(b, FLAGS, 1);
        });
        let body = s.command("rib/register", cp).unwrap();
        let fields: Vec<u64> = elements(&body).into_iter().map(|(t, _)| t).collect();
        assert_eq!(fields, [7, FACE_ID, ORIGIN, COST, FLAGS]);
        let fib = s.dataset("fib/list").unwrap();
        let entries = elements(&fib);
        assert_eq!(entries.len(), 1);
        let inner = elements(entries[0].1);
        assert_eq!(name_uri(inner[0].1), "/meters");
        let hop: Vec<u64> = elements(inner[1].1)
            .into_iter()
            .map(|(_, v)| nni(v))
            .collect();
        assert_eq!(hop, [257, 3]);
        let faces = s.dataset("faces/list").unwrap();
        assert_eq!(elements(&faces).len(), 2);
        // A refused command becomes an error carrying NFD's code and text.
        let err = s.command(
            "strategy-choice/unset",
            params(|b| put_name(b, &Name::default())),
        );
        assert!(err.unwrap_err().to_string().contains("400"));
        drop(s);
        let fw = handle.join().unwrap();
        assert!(fw.fib_get(&name).is_some());
    }

    #[test]
    fn nni_uses_shortest_length() {
        let mut b = Vec::new();
        put_nni(&mut b, 106, 0);
        put_nni(&mut b, 106, 256);
        put_nni(&mut b, 109, 1_200_000);
        assert_eq!(
            b,
            [0x6a, 1, 0, 0x6a, 2, 1, 0, 0x6d, 4, 0x00, 0x12, 0x4f, 0x80]
        );
    }

    #[test]
    fn lp_nack_and_fragment_are_told_apart() {
        // LpPacket { Nack { NackReason 150 }, Fragment { 0x05 0x00 } }
        let nack = [
            0x64, 0x0b, 0xfd, 0x03, 0x20, 0x05, 0xfd, 0x03, 0x21, 0x01, 0x96, 0x50, 0x00,
        ];
        assert_eq!(unwrap_lp(&nack), Err(150));
        let wrapped = [0x64, 0x06, 0x62, 0x01, 0xaa, 0x50, 0x01, 0x06];
        assert_eq!(unwrap_lp(&wrapped), Ok(Some(&[0x06u8][..])));
        assert_eq!(unwrap_lp(&[0x06, 0x00]), Ok(Some(&[0x06u8, 0x00][..])));
    }
}
