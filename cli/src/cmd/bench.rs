//! `amicn bench fwd`: end-to-end forwarder throughput and latency over Unix sockets, measured
//! against two references in the same run — the consumer and producer connected directly, and a
//! null relay (one thread that only frames by TLV length and copies) — so every figure is a
//! ratio on this machine, at this moment.
//!
//! The consumer and producer are deliberately cheap: packets are pre-encoded templates whose
//! sequence number and Nonce are patched in place, reads and writes are batched, and each runs
//! on its own blocking thread so the forwarder (or relay) keeps a core to itself.

use std::io::{IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use amicn_tlv::mgmt::ControlParameters;
use amicn_tlv::{Interest, Name, lp};
use anyhow::{Context, bail};
use bytes::BytesMut;
use clap::{Args, Subcommand};

/// Benchmarks.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Forwarder throughput/latency vs. direct connection and a null relay
    Fwd(FwdBenchArgs),
    /// AMI at scale: MDMS ingest vs. batch verification, rekey delivery through caches
    Ami(super::bench_ami::AmiBenchArgs),
    /// Meter-data repository: import rate vs. signing, serve rate vs. the forwarder's CS
    Repo(super::bench_repo::RepoBenchArgs),
    /// Interest flooding: a legitimate consumer's satisfaction while attackers flood the forwarder
    Flood(super::bench_flood::FloodBenchArgs),
    /// Kill loops: SIGKILL forwarder, KMS, MDMS, repository and meters; judge every recovery
    Chaos(super::bench_chaos::ChaosArgs),
    /// Soak: the whole AMI at steady load; memory, descriptors, queues and latency over time
    Soak(super::bench_soak::SoakArgs),
}

/// Options of `amicn bench fwd`.
#[derive(Debug, Args)]
struct FwdBenchArgs {
    /// Measured time per cell (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    duration: Duration,
    /// Data content sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,8000")]
    sizes: Vec<usize>,
    /// Consumer windows (outstanding Interests).
    #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
    windows: Vec<usize>,
    /// Forwarding threads for the forwarder under test.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Name components the forwarder hashes to pick a thread. Bench names are
    /// `/bench/<cell>/<seq>`, so only 3 spreads one cell's traffic over several threads.
    #[arg(long, default_value_t = 2)]
    shard_components: usize,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        _ => return Err(format!("bad duration unit in {s:?} (use s, ms)")),
    };
    if !(0.01..=600.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range (10ms..600s)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Entry point of `amicn bench`.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Fwd(a) => bench_fwd(a),
        BenchWhat::Ami(a) => super::bench_ami::run(a),
        BenchWhat::Repo(a) => super::bench_repo::run(a),
        BenchWhat::Flood(a) => super::bench_flood::run(a),
        BenchWhat::Chaos(a) => super::bench_chaos::run(a),
        BenchWhat::Soak(a) => super::bench_soak::run(a),
    }
}

// ---------------------------------------------------------------------------------------------
// Packet templates

/// Interest `/bench/<tag>/<8-byte seq>` with Nonce and InterestLifetime 4 s: 34 bytes.
const INTEREST_LEN: usize = 34;
const SEQ_AT: usize = 16;
const NONCE_AT: usize = 26;
/// Names served from the cache in CS-hit cells.
const HOT_NAMES: u64 = 1024;
/// Send-time ring (power of two, larger than any window).
const RING: usize = 1 << 16;

fn interest_template(tag: u8) -> [u8; INTEREST_LEN] {
    let mut t = [0u8; INTEREST_LEN];
    let head: [u8; 16] = [
        0x05, 32, // Interest
        0x07, 20, // Name
        0x08, 5, b'b', b'e', b'n', b'c', b'h', // "bench"
        0x08, 1, tag, // tag
        0x08, 8, // seq follows
    ];
    t[..16].copy_from_slice(&head);
    t[24..28].copy_from_slice(&[0x0A, 4, 0, 0]);
    t[30..34].copy_from_slice(&[0x0C, 2, 0x0F, 0xA0]);
    t
}

fn put_var(out: &mut Vec<u8>, v: usize) {
    amicn_tlv::encode_var_number(out, v as u64);
}

/// Everything of a Data after its Name: Content of `size` bytes, DigestSha256 SignatureInfo and
/// a 32-byte SignatureValue (not checked by forwarders).
fn data_tail(size: usize) -> Vec<u8> {
    let mut t = vec![0x15];
    put_var(&mut t, size);
    t.extend(std::iter::repeat_n(0xA5, size));
    t.extend_from_slice(&[0x16, 3, 0x1B, 1, 0]);
    t.extend_from_slice(&[0x17, 32]);
    t.extend(std::iter::repeat_n(0x5A, 32));
    t
}

/// Splits a TLV at `at` into (type, value range, end).
fn tlv_at(b: &[u8], at: usize) -> Option<(usize, std::ops::Range<usize>, usize)> {
    let (t, start, end) = amicn_tlv::read_tlv_header(b, at).ok()?;
    Some((t as usize, start..end, end))
}

/// What a received frame holds once the optional LpPacket is peeled off.
struct Unwrapped<'a> {
    packet: &'a [u8],
    pit_token: Option<&'a [u8]>,
    nack: bool,
}

/// Network packet inside an optional LpPacket, plus the LP PitToken and whether it is a Nack.
fn unwrap_lp(frame: &[u8]) -> Option<Unwrapped<'_>> {
    let (typ, value, _) = tlv_at(frame, 0)?;
    if typ != lp::LP_PACKET as usize {
        return Some(Unwrapped {
            packet: frame,
            pit_token: None,
            nack: false,
        });
    }
    let (mut at, end) = (value.start, value.end);
    let (mut token, mut nack, mut frag) = (None, false, None);
    while at < end {
        let (t, v, next) = tlv_at(frame, at)?;
        match t {
            t if t == lp::PIT_TOKEN as usize => token = frame.get(v),
            t if t == lp::NACK as usize => nack = true,
            t if t == lp::FRAGMENT as usize => frag = frame.get(v),
            _ => {}
        }
        at = next;
    }
    Some(Unwrapped {
        packet: frag?,
        pit_token: token,
        nack,
    })
}

fn split_frames(buf: &mut BytesMut) -> anyhow::Result<Vec<bytes::Bytes>> {
    let mut out = Vec::new();
    while let Some(n) = amicn_tlv::split_first_tlv(buf)? {
        out.push(buf.split_to(n).freeze());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Producer

fn producer(mut s: UnixStream, size: usize, stop: Arc<AtomicBool>) {
    let tail = data_tail(size);
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut heads: Vec<usize> = Vec::new();
    let big = tail.len() >= 1024;
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let Ok(frames) = split_frames(&mut buf) else {
            return;
        };
        out.clear();
        heads.clear();
        for f in &frames {
            let Some(Unwrapped {
                packet: pkt,
                pit_token: token,
                ..
            }) = unwrap_lp(f)
            else {
                continue;
            };
            let Some((5, iv, _)) = tlv_at(pkt, 0) else {
                continue;
            };
            let Some((7, _, name_end)) = tlv_at(pkt, iv.start) else {
                continue;
            };
            let name = pkt.get(iv.start..name_end).unwrap_or_default();
            let data_len = name.len() + tail.len();
            let mut data_hdr = vec![0x06];
            put_var(&mut data_hdr, data_len);
            let data_total = data_hdr.len() + data_len;
            if let Some(tok) = token {
                // Echo the forwarder's PitToken so it can match Data to the PIT entry directly.
                amicn_tlv::lp::OutHeaders {
                    pit_token: Some(tok),
                    ..Default::default()
                }
                .encode_header(&mut out, data_total);
            }
            out.extend_from_slice(&data_hdr);
            out.extend_from_slice(name);
            if big {
                // Large content goes out by reference (writev), never copied per Data.
                heads.push(out.len());
            } else {
                out.extend_from_slice(&tail);
            }
        }
        let res = if big {
            let mut slices = Vec::with_capacity(2 * heads.len());
            let mut start = 0;
            for &end in &heads {
                slices.push(IoSlice::new(out.get(start..end).unwrap_or_default()));
                slices.push(IoSlice::new(&tail));
                start = end;
            }
            write_all_iov(&mut s, &mut slices)
        } else if out.is_empty() {
            Ok(())
        } else {
            s.write_all(&out)
        };
        if res.is_err() {
            return;
        }
    }
}

fn write_all_iov(s: &mut UnixStream, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = s.write_vectored(slices.get(..1024).unwrap_or(slices))?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consumer

#[derive(Debug, Default, Clone, serde::Serialize)]
struct CellResult {
    mode: String,
    size: usize,
    window: usize,
    pairs_per_sec: f64,
    mb_per_sec: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    nacks: u64,
    completed: u64,
    offered_per_sec: Option<f64>,
}

fn percentile(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map(|v| f64::from(*v) / 1000.0)
}

struct ConsumerPlan {
    tag: u8,
    window: usize,
    /// Cycle over `HOT_NAMES` names (CS hit) instead of unique names.
    hot: bool,
    warmup: u64,
    duration: Duration,
    /// Open-loop rate (pairs/s); `None` = closed loop at the window.
    rate: Option<f64>,
}

/// Seq/nonce generator shared by the closed- and open-loop consumers.
struct Gen {
    tpl: [u8; INTEREST_LEN],
    next: u64,
    nonce: u32,
    hot: bool,
}

impl Gen {
    fn push(&mut self, out: &mut Vec<u8>, sent_at: &[AtomicU64], now_ns: u64) {
        let seq = if self.hot {
            self.next % HOT_NAMES
        } else {
            self.next
        };
        self.next += 1;
        self.nonce = self.nonce.wrapping_add(0x9E37_79B9);
        self.tpl[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
        self.tpl[NONCE_AT..NONCE_AT + 4].copy_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.tpl);
        if let Some(slot) = sent_at.get(seq as usize & (RING - 1)) {
            slot.store(now_ns, Ordering::Relaxed);
        }
    }
}

/// Reads Data/Nacks; returns (completions, nacks) and appends latency samples (ns).
fn absorb(
    frames: &[bytes::Bytes],
    sent_at: &[AtomicU64],
    now_ns: u64,
    samples: Option<&mut Vec<u32>>,
) -> (u64, u64) {
    let (mut done, mut nacks) = (0, 0);
    let mut lat = Vec::new();
    for f in frames {
        let Some(Unwrapped {
            packet: pkt,
            nack: is_nack,
            ..
        }) = unwrap_lp(f)
        else {
            continue;
        };
        done += 1;
        if is_nack {
            nacks += 1;
            continue;
        }
        let Some((6, dv, _)) = tlv_at(pkt, 0) else {
            continue;
        };
        let Some((7, nv, _)) = tlv_at(pkt, dv.start) else {
            continue;
        };
        let seq = pkt
            .get(nv.end.saturating_sub(8)..nv.end)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if let Some(slot) = sent_at.get(seq as usize & (RING - 1)) {
            let t = slot.load(Ordering::Relaxed);
            lat.push(u32::try_from(now_ns.saturating_sub(t)).unwrap_or(u32::MAX));
        }
    }
    if let Some(s) = samples {
        s.extend(lat);
    }
    (done, nacks)
}

fn consumer(s: UnixStream, plan: &ConsumerPlan) -> anyhow::Result<(u64, u64, f64, Vec<u32>)> {
    match plan.rate {
        None => closed_loop(s, plan),
        Some(rate) => open_loop(s, plan, rate),
    }
}

fn closed_loop(
    mut s: UnixStream,
    plan: &ConsumerPlan,
) -> anyhow::Result<(u64, u64, f64, Vec<u32>)> {
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let sent_at: Vec<AtomicU64> = (0..RING).map(|_| AtomicU64::new(0)).collect();
    let epoch = Instant::now();
    let ns = || epoch.elapsed().as_nanos() as u64;
    let mut g = Gen {
        tpl: interest_template(plan.tag),
        next: 0,
        nonce: rand::random(),
        hot: plan.hot,
    };
    let mut out = Vec::with_capacity(plan.window * INTEREST_LEN);
    let now = ns();
    for _ in 0..plan.window {
        g.push(&mut out, &sent_at, now);
    }
    s.write_all(&out)?;
    let mut outstanding = plan.window as u64;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 18];
    let (mut done_total, mut nacks, mut measured) = (0u64, 0u64, 0u64);
    let mut samples = Vec::with_capacity(1 << 20);
    let mut t0: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let elapsed = loop {
        let n = s
            .read(&mut chunk)
            .context("consumer read (forwarder stalled?)")?;
        if n == 0 {
            bail!("connection closed during the benchmark");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let frames = split_frames(&mut buf)?;
        let now_i = Instant::now();
        let now = ns();
        let measuring = t0.is_some() && deadline.is_some_and(|d| now_i < d);
        let (done, nk) = absorb(
            &frames,
            &sent_at,
            now,
            if measuring { Some(&mut samples) } else { None },
        );
        done_total += done;
        outstanding -= done.min(outstanding);
        if measuring {
            measured += done;
            nacks += nk;
        }
        if t0.is_none() && done_total >= plan.warmup {
            t0 = Some(now_i);
            deadline = Some(now_i + plan.duration);
        }
        if let (Some(start), Some(d)) = (t0, deadline)
            && now_i >= d
        {
            break (now_i - start).as_secs_f64();
        }
        out.clear();
        while (outstanding as usize) < plan.window {
            g.push(&mut out, &sent_at, now);
            outstanding += 1;
        }
        if !out.is_empty() {
            s.write_all(&out)?;
        }
    };
    drain(&mut s, &mut buf, &mut chunk, outstanding);
    samples.sort_unstable();
    Ok((measured, nacks, elapsed, samples))
}

/// Reads the answers still in flight so the next cell starts from a quiet forwarder.
fn drain(s: &mut UnixStream, buf: &mut BytesMut, chunk: &mut [u8], mut outstanding: u64) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    while outstanding > 0 {
        match s.read(chunk) {
            Ok(n) if n > 0 => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                let k = split_frames(buf).map(|f| f.len()).unwrap_or(0) as u64;
                outstanding -= k.min(outstanding);
            }
            _ => break,
        }
    }
}

fn open_loop(
    s: UnixStream,
    plan: &ConsumerPlan,
    rate: f64,
) -> anyhow::Result<(u64, u64, f64, Vec<u32>)> {
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..RING).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let mut w = s.try_clone()?;
    let sender = {
        let (sent_at, received, stop) = (sent_at.clone(), received.clone(), stop.clone());
        let (tag, hot, window) = (plan.tag, plan.hot, plan.window as u64);
        std::thread::spawn(move || -> std::io::Result<u64> {
            let mut g = Gen {
                tpl: interest_template(tag),
                next: 0,
                nonce: rand::random(),
                hot,
            };
            let mut out = Vec::with_capacity(64 * INTEREST_LEN);
            while !stop.load(Ordering::Relaxed) {
                let el = epoch.elapsed();
                let due = (el.as_secs_f64() * rate) as u64;
                let inflight = g.next.saturating_sub(received.load(Ordering::Relaxed));
                let room = window.saturating_sub(inflight);
                let k = due.saturating_sub(g.next).min(room);
                if k == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                    continue;
                }
                out.clear();
                let now = el.as_nanos() as u64;
                for _ in 0..k {
                    g.push(&mut out, &sent_at, now);
                }
                w.write_all(&out)?;
            }
            Ok(g.next)
        })
    };
    let mut r = s;
    r.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 18];
    let mut samples = Vec::new();
    let (mut measured, mut nacks) = (0u64, 0u64);
    let warm_until = Duration::from_millis(200);
    let end = warm_until + plan.duration;
    loop {
        let el = epoch.elapsed();
        if el >= end {
            break;
        }
        let n = match r.read(&mut chunk) {
            Ok(0) => bail!("connection closed during the benchmark"),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let frames = split_frames(&mut buf)?;
        let el = epoch.elapsed();
        let now = el.as_nanos() as u64;
        let measuring = el >= warm_until;
        let (done, nk) = absorb(
            &frames,
            &sent_at,
            now,
            if measuring { Some(&mut samples) } else { None },
        );
        received.fetch_add(done, Ordering::Relaxed);
        if measuring {
            measured += done;
            nacks += nk;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    let outstanding = sent.saturating_sub(received.load(Ordering::Relaxed));
    drain(&mut r, &mut buf, &mut chunk, outstanding);
    samples.sort_unstable();
    Ok((measured, nacks, plan.duration.as_secs_f64(), samples))
}

// ---------------------------------------------------------------------------------------------
// The three set-ups

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Relay,
    FwdMiss,
    FwdHit,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Relay => "null-relay",
            Mode::FwdMiss => "fwd-cs-miss",
            Mode::FwdHit => "fwd-cs-hit",
        }
    }
}

/// One thread, two sockets: frames by TLV length and copies whole frames across.
fn null_relay(a: UnixStream, b: UnixStream) -> anyhow::Result<std::thread::JoinHandle<()>> {
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok(std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let (Ok(a), Ok(b)) = (
                tokio::net::UnixStream::from_std(a),
                tokio::net::UnixStream::from_std(b),
            ) else {
                return;
            };
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            let one = tokio::spawn(copy_frames(ar, bw));
            let two = tokio::spawn(copy_frames(br, aw));
            let _ = tokio::join!(one, two);
        });
    }))
}

async fn copy_frames(
    mut r: tokio::net::unix::OwnedReadHalf,
    mut w: tokio::net::unix::OwnedWriteHalf,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = BytesMut::with_capacity(1 << 18);
    loop {
        if buf.capacity() - buf.len() < 1 << 16 {
            buf.reserve(1 << 18);
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut whole = 0;
        while let Ok(Some(n)) = amicn_tlv::split_first_tlv(buf.get(whole..).unwrap_or_default()) {
            whole += n;
        }
        if whole > 0 {
            let frames = buf.split_to(whole);
            if w.write_all(&frames).await.is_err() {
                return;
            }
        }
    }
}

fn register_command(prefix: &str) -> anyhow::Result<bytes::Bytes> {
    let cp = ControlParameters {
        name: Some(Name::from_uri(prefix)?),
        ..ControlParameters::default()
    };
    let name = Name::from_uri("/localhost/nfd/rib/register")?.append_generic(cp.encode());
    let mut i = Interest::new(name);
    i.nonce = Some(rand::random());
    Ok(i.encode())
}

struct Setup {
    consumer: UnixStream,
    producer: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
    relay: Option<std::thread::JoinHandle<()>>,
    fwd: Option<RunningForwarder>,
    dir: Option<PathBuf>,
}

fn setup(mode: Mode, size: usize, workers: (usize, usize), cell: usize) -> anyhow::Result<Setup> {
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_producer = |s: UnixStream, stop: Arc<AtomicBool>| {
        std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || producer(s, size, stop))
    };
    match mode {
        Mode::Direct => {
            let (c, p) = UnixStream::pair()?;
            Ok(Setup {
                consumer: c,
                producer: spawn_producer(p, stop.clone())?,
                stop,
                relay: None,
                fwd: None,
                dir: None,
            })
        }
        Mode::Relay => {
            let (c, r1) = UnixStream::pair()?;
            let (r2, p) = UnixStream::pair()?;
            let relay = null_relay(r1, r2)?;
            Ok(Setup {
                consumer: c,
                producer: spawn_producer(p, stop.clone())?,
                stop,
                relay: Some(relay),
                fwd: None,
                dir: None,
            })
        }
        Mode::FwdMiss | Mode::FwdHit => {
            let dir =
                std::env::temp_dir().join(format!("amicn-bench-{}-{cell}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let sock = dir.join("fwd.sock");
            let cfg = RuntimeConfig {
                unix_path: Some(sock.clone()),
                workers: workers.0,
                shard_prefix_components: workers.1,
                ..RuntimeConfig::default()
            };
            let fwd = RunningForwarder::start(cfg).context("starting the forwarder")?;
            let mut p = UnixStream::connect(&sock)?;
            p.write_all(&register_command("/bench")?)?;
            p.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 4096];
            while amicn_tlv::split_first_tlv(&buf)?.is_none() {
                let n = p
                    .read(&mut chunk)
                    .context("waiting for rib/register reply")?;
                if n == 0 {
                    bail!("forwarder closed the producer's face");
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            let c = UnixStream::connect(&sock)?;
            Ok(Setup {
                consumer: c,
                producer: spawn_producer(p, stop.clone())?,
                stop,
                relay: None,
                fwd: Some(fwd),
                dir: Some(dir),
            })
        }
    }
}

fn run_cell(
    mode: Mode,
    size: usize,
    window: usize,
    duration: Duration,
    rate: Option<f64>,
    workers: (usize, usize),
    cell: usize,
) -> anyhow::Result<CellResult> {
    let st = setup(mode, size, workers, cell)?;
    let hot = mode == Mode::FwdHit;
    let plan = ConsumerPlan {
        tag: (cell % 250) as u8,
        window,
        hot,
        warmup: if hot { HOT_NAMES * 2 } else { 2000 },
        duration,
        rate,
    };
    let res = consumer(st.consumer.try_clone()?, &plan);
    st.stop.store(true, Ordering::Relaxed);
    let _ = st.consumer.shutdown(std::net::Shutdown::Both);
    if let Some(f) = st.fwd {
        let _ = f.shutdown();
    }
    let _ = st.producer.join();
    if let Some(r) = st.relay {
        let _ = r.join();
    }
    if let Some(d) = st.dir {
        let _ = std::fs::remove_dir_all(d);
    }
    let (done, nacks, secs, samples) = res?;
    let pps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let wire = 2 + 22 + data_tail(size).len() + 2;
    Ok(CellResult {
        mode: mode.label().into(),
        size,
        window,
        pairs_per_sec: pps,
        mb_per_sec: pps * wire as f64 / 1e6,
        p50_us: percentile(&samples, 0.5),
        p99_us: percentile(&samples, 0.99),
        nacks,
        completed: done,
        offered_per_sec: rate,
    })
}

fn bench_fwd(a: FwdBenchArgs) -> anyhow::Result<()> {
    let workers = (a.workers, a.shard_components);
    let mut cells: Vec<CellResult> = Vec::new();
    let mut n = 0usize;
    for &size in &a.sizes {
        if size > 8000 {
            bail!("Data content {size} B would exceed the 8800-byte packet limit (max 8000)");
        }
        for &window in &a.windows {
            for mode in [Mode::Direct, Mode::Relay, Mode::FwdMiss, Mode::FwdHit] {
                n += 1;
                let r = run_cell(mode, size, window, a.duration, None, workers, n)?;
                if !a.json {
                    eprintln!(
                        "  {:<12} {:>5} B  w={:<4} {:>10.0} pairs/s",
                        r.mode, size, window, r.pairs_per_sec
                    );
                }
                cells.push(r);
            }
        }
    }
    // Latency at half of the peak load, for the forwarder and the relay (smallest size).
    let small = a.sizes.iter().copied().min().unwrap_or(100);
    let mut half = Vec::new();
    for mode in [Mode::Relay, Mode::FwdMiss] {
        let peak = cells
            .iter()
            .filter(|c| c.mode == mode.label() && c.size == small)
            .map(|c| c.pairs_per_sec)
            .fold(0.0, f64::max);
        if peak > 0.0 {
            n += 1;
            let r = run_cell(mode, small, 128, a.duration, Some(peak / 2.0), workers, n)?;
            half.push(r);
        }
    }
    if a.json {
        let v = serde_json::json!({
            "cells": cells,
            "half_load": half,
            "workers": a.workers,
            "shard_components": a.shard_components,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_table(&cells, &half);
    Ok(())
}

fn find(cells: &[CellResult], mode: Mode, size: usize, w: usize) -> Option<&CellResult> {
    cells
        .iter()
        .find(|c| c.mode == mode.label() && c.size == size && c.window == w)
}

fn print_table(cells: &[CellResult], half: &[CellResult]) {
    let k = |v: f64| format!("{:.1}k", v / 1e3);
    println!(
        "{:>6} {:>4} | {:>9} {:>9} | {:>9} {:>7} {:>8} | {:>9} {:>8} {:>7} | {:>8}",
        "size",
        "win",
        "direct",
        "relay",
        "fwd-miss",
        "xrelay",
        "MB/s",
        "fwd-hit",
        "xdirect",
        "xrelay",
        "MB/s hit"
    );
    let mut sizes: Vec<usize> = cells.iter().map(|c| c.size).collect();
    sizes.dedup();
    let mut windows: Vec<usize> = cells.iter().map(|c| c.window).collect();
    windows.sort_unstable();
    windows.dedup();
    for &s in &sizes {
        for &w in &windows {
            let (Some(d), Some(r), Some(m), Some(h)) = (
                find(cells, Mode::Direct, s, w),
                find(cells, Mode::Relay, s, w),
                find(cells, Mode::FwdMiss, s, w),
                find(cells, Mode::FwdHit, s, w),
            ) else {
                continue;
            };
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            println!(
                "{:>6} {:>4} | {:>9} {:>9} | {:>9} {:>7.2} {:>8.1} | {:>9} {:>8.2} {:>7.2} | {:>8.1}",
                s,
                w,
                k(d.pairs_per_sec),
                k(r.pairs_per_sec),
                k(m.pairs_per_sec),
                ratio(m.pairs_per_sec, r.pairs_per_sec),
                m.mb_per_sec,
                k(h.pairs_per_sec),
                ratio(h.pairs_per_sec, d.pairs_per_sec),
                ratio(h.pairs_per_sec, r.pairs_per_sec),
                h.mb_per_sec
            );
        }
    }
    println!();
    println!("round-trip latency, window 1 (µs, p50 / p99):");
    for &s in &sizes {
        let line: Vec<String> = [Mode::Direct, Mode::Relay, Mode::FwdMiss, Mode::FwdHit]
            .iter()
            .filter_map(|m| find(cells, *m, s, 1))
            .map(|c| {
                format!(
                    "{} {:.0}/{:.0}",
                    c.mode,
                    c.p50_us.unwrap_or(f64::NAN),
                    c.p99_us.unwrap_or(f64::NAN)
                )
            })
            .collect();
        println!("  {s:>5} B: {}", line.join("  "));
    }
    for h in half {
        println!(
            "half load ({} B, {:.0} pairs/s offered) {}: p50 {:.0} µs, p99 {:.0} µs, achieved {:.0} pairs/s",
            h.size,
            h.offered_per_sec.unwrap_or(0.0),
            h.mode,
            h.p50_us.unwrap_or(f64::NAN),
            h.p99_us.unwrap_or(f64::NAN),
            h.pairs_per_sec
        );
    }
    let nacks: u64 = cells.iter().map(|c| c.nacks).sum();
    if nacks > 0 {
        println!("warning: {nacks} Nacks received during measurement");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn templates_decode_with_the_codec() {
        let t = interest_template(3);
        let i = Interest::decode(bytes::Bytes::copy_from_slice(&t)).unwrap();
        assert_eq!(i.name.len(), 3);
        assert_eq!(i.lifetime_ms, Some(4000));
        let mut g = Gen {
            tpl: t,
            next: 0x0102,
            nonce: 0,
            hot: false,
        };
        let ring: Vec<AtomicU64> = (0..RING).map(|_| AtomicU64::new(0)).collect();
        let mut out = Vec::new();
        g.push(&mut out, &ring, 5);
        let i = Interest::decode(bytes::Bytes::from(out)).unwrap();
        assert_eq!(i.name.get(2).unwrap().value(), &0x0102u64.to_be_bytes());
        assert!(i.nonce.is_some());

        // The producer's answer decodes as Data of the same name.
        let (mut a, b) = UnixStream::pair().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = std::thread::spawn(move || producer(b, 100, stop));
        a.write_all(&t).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = a.read(&mut buf).unwrap();
        let d = amicn_tlv::Data::decode(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
        assert_eq!(d.name.len(), 3);
        assert_eq!(d.content.len(), 100);
        drop(a);
        h.join().unwrap();

        // Large content leaves by writev; two answers must arrive whole and in order.
        let (mut a, b) = UnixStream::pair().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = std::thread::spawn(move || producer(b, 8000, stop));
        let mut two = t.to_vec();
        two.extend_from_slice(&t);
        a.write_all(&two).unwrap();
        let mut acc = BytesMut::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = a.read(&mut buf).unwrap();
            assert!(n > 0);
            acc.extend_from_slice(&buf[..n]);
            got.extend(split_frames(&mut acc).unwrap());
        }
        for f in got {
            let d = amicn_tlv::Data::decode(f).unwrap();
            assert_eq!(d.content.len(), 8000);
        }
        drop(a);
        h.join().unwrap();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
