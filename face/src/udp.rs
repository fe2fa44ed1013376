//! UDP faces: one unicast channel socket (port 6363) shared by every peer, with an on-demand
//! face created for each new remote address, and UDP multicast faces (NFD's 224.0.23.170:56363).
//! Datagrams larger than the face MTU are fragmented with NDNLPv2; fragments are reassembled per
//! peer before the forwarder sees them.
//!
//! Unicast UDP faces are never local (as in NFD): a source address on loopback proves nothing
//! about who sent a datagram. Source addresses can be forged, so the on-demand peer table is
//! bounded with eviction of the longest-silent on-demand face, and an on-demand face may send
//! only a bounded multiple of what it received ([`crate::ChannelLimits`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_tlv::lp::Frame;
use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::emulation;
use crate::fragment::{Fragmenter, Reassembled, Reassembler};
use crate::link::{
    Channel, ChannelCounters, ChannelLimits, CloseReason, FaceCounters, FaceKind, FaceMeta,
    FaceToken, FaceTx, Inbound, InboundTx, Persistency, next_face_token,
};
use crate::stream::FaceOptions;
use crate::uri::FaceUri;
use crate::{MAX_PACKET_SIZE, io_err};

/// Default MTU of UDP faces (NFD `unicast_mtu`): whole 8800-byte packets in one datagram on
/// loopback; set lower (e.g. 1400) on real links so NDNLPv2 fragmentation keeps datagrams
/// under the path MTU.
pub const DEFAULT_UDP_MTU: usize = MAX_PACKET_SIZE;
/// Datagrams drained per wakeup before handing the batch to the forwarder.
const RECV_BATCH: usize = 64;
/// Most senders a multicast face keeps reassembly state for (spoofed-source floods must not
/// grow memory without bound); unicast channels use [`ChannelLimits::max_udp_peers`].
pub const MAX_PEERS: usize = 4096;
/// How long an on-demand UDP face may stay silent before it is closed (NFD: 600 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Receive buffer chunk; datagrams are sliced out of it without copying.
const RECV_CHUNK: usize = 256 * 1024;

struct Peer {
    face: FaceToken,
    cancel: CancellationToken,
    reassembler: Reassembler,
    counters: Arc<FaceCounters>,
    persistency: Persistency,
    /// Created by configuration or management: not held to the amplification budget.
    established: Arc<AtomicBool>,
    last_seen: Instant,
}

type PeerMap = Arc<Mutex<HashMap<SocketAddr, Peer>>>;

/// A UDP unicast channel: the shared socket plus the table of peers that have faces.
#[derive(Debug)]
pub struct UdpChannel {
    channel: Channel,
    socket: Arc<UdpSocket>,
    peers: PeerMap,
    inbound: InboundTx,
    opts: FaceOptions,
    mtu: usize,
    counters: Arc<ChannelCounters>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("face", &self.face).finish()
    }
}

impl UdpChannel {
    /// Binds `addr` and starts receiving; every new remote address becomes an on-demand face.
    pub async fn bind(
        addr: SocketAddr,
        inbound: InboundTx,
        opts: FaceOptions,
        mtu: usize,
    ) -> crate::Result<Self> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| io_err("bind udp", addr, e))?;
        Self::from_socket(socket, addr, inbound, opts, mtu)
    }

    /// Like [`UdpChannel::bind`], closing on-demand faces silent for longer than `idle`.
    pub async fn bind_with_idle(
        addr: SocketAddr,
        inbound: InboundTx,
        mut opts: FaceOptions,
        mtu: usize,
        idle: Duration,
    ) -> crate::Result<Self> {
        opts.limits.idle_timeout = idle;
        Self::bind(addr, inbound, opts, mtu).await
    }

    fn from_socket(
        socket: UdpSocket,
        addr: SocketAddr,
        inbound: InboundTx,
        opts: FaceOptions,
        mtu: usize,
    ) -> crate::Result<Self> {
        let bound = socket
            .local_addr()
            .map_err(|e| io_err("local_addr", addr, e))?;
        let socket = Arc::new(socket);
        let peers: PeerMap = Arc::default();
        let cancel = CancellationToken::new();
        let counters = Arc::new(ChannelCounters::default());
        let chan = Self {
            channel: Channel::new(
                FaceUri::Udp(bound).to_string(),
                Some(bound),
                cancel.clone(),
                None,
                counters.clone(),
            ),
            socket: socket.clone(),
            peers: peers.clone(),
            inbound: inbound.clone(),
            opts,
            mtu,
            counters: counters.clone(),
        };
        let ctx = PeerCtx {
            socket,
            peers,
            inbound,
            opts,
            mtu,
            local: bound,
            counters,
        };
        tokio::spawn(recv_loop(ctx, cancel));
        Ok(chan)
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.channel.local_addr()
    }

    /// The channel's local URI.
    pub fn local_uri(&self) -> &str {
        self.channel.local_uri()
    }

    /// What the channel refused, evicted or closed on its own.
    pub fn counters(&self) -> &Arc<ChannelCounters> {
        &self.counters
    }

    /// Creates (or returns the existing) face toward `remote`, as `faces/create` does. An
    /// existing on-demand face asked for as persistent becomes persistent (no idle expiry, no
    /// eviction, no amplification budget).
    pub async fn create_face(
        &self,
        remote: SocketAddr,
        persistency: Persistency,
    ) -> Option<FaceToken> {
        if let Ok(mut map) = self.peers.lock()
            && let Some(p) = map.get_mut(&remote)
            && !p.cancel.is_cancelled()
        {
            if persistency != Persistency::OnDemand {
                p.persistency = persistency;
                p.established.store(true, Ordering::Relaxed);
            }
            return Some(p.face);
        }
        let ctx = PeerCtx {
            socket: self.socket.clone(),
            peers: self.peers.clone(),
            inbound: self.inbound.clone(),
            opts: self.opts,
            mtu: self.mtu,
            local: self.local_addr()?,
            counters: self.counters.clone(),
        };
        ctx.open_peer(remote, persistency).await
    }
}

#[derive(Clone)]
struct PeerCtx {
    socket: Arc<UdpSocket>,
    peers: PeerMap,
    inbound: InboundTx,
    opts: FaceOptions,
    mtu: usize,
    local: SocketAddr,
    counters: Arc<ChannelCounters>,
}

impl PeerCtx {
    async fn open_peer(&self, remote: SocketAddr, persistency: Persistency) -> Option<FaceToken> {
        let face = next_face_token();
        let counters = Arc::new(FaceCounters::default());
        let (tx, rx, cancel) = FaceTx::new(self.opts.queue, counters.clone());
        let meta = FaceMeta {
            kind: FaceKind::Udp,
            remote_uri: FaceUri::Udp(remote).to_string(),
            local_uri: FaceUri::Udp(self.local).to_string(),
            local: false,
            persistency,
            mtu: self.mtu,
        };
        let established = Arc::new(AtomicBool::new(persistency != Persistency::OnDemand));
        self.inbound
            .send(Inbound::Opened { face, meta, tx })
            .await
            .ok()?;
        let rx = match self.opts.emulation {
            Some(emu) if !emu.is_noop() => {
                emulation::insert_stage(rx, emu, counters.clone(), self.opts.queue.capacity)
            }
            _ => rx,
        };
        if let Ok(mut map) = self.peers.lock() {
            map.insert(
                remote,
                Peer {
                    face,
                    cancel: cancel.clone(),
                    reassembler: Reassembler::default(),
                    counters: counters.clone(),
                    persistency,
                    established: established.clone(),
                    last_seen: Instant::now(),
                },
            );
        }
        let socket = self.socket.clone();
        let (mtu, batch, inbound) = (self.mtu, self.opts.queue.batch, self.inbound.clone());
        let budget = Budget {
            established,
            limits: self.opts.limits,
        };
        tokio::spawn(async move {
            send_loop(socket, remote, rx, counters, cancel, mtu, batch, budget).await;
            // Tell the runtime when the channel closed the face (idle expiry); after a
            // runtime-initiated close the token is already unknown there and this is ignored.
            let reason = CloseReason::Requested;
            let _ = inbound.send(Inbound::Closed { face, reason }).await;
        });
        Some(face)
    }
}

async fn recv_loop(ctx: PeerCtx, cancel: CancellationToken) {
    let mut buf = BytesMut::with_capacity(RECV_CHUNK);
    let mut batch: Vec<(SocketAddr, Bytes)> = Vec::with_capacity(RECV_BATCH);
    let sweep_every = (ctx.opts.limits.idle_timeout / 2)
        .min(Duration::from_secs(10))
        .max(Duration::from_millis(1));
    let mut next_sweep = Instant::now() + sweep_every;
    loop {
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + sweep_every;
            close_idle(&ctx, now);
        }
        if buf.capacity() - buf.len() < MAX_PACKET_SIZE + 1024 {
            buf = BytesMut::with_capacity(RECV_CHUNK);
        }
        let first = tokio::select! {
            () = cancel.cancelled() => break,
            r = ctx.socket.recv_buf_from(&mut buf) => r,
        };
        match first {
            Ok((n, from)) => batch.push((from, buf.split_to(n).freeze())),
            Err(e) => {
                tracing::debug!(error = %e, "udp recv failed");
                continue;
            }
        }
        while batch.len() < RECV_BATCH {
            if buf.capacity() - buf.len() < MAX_PACKET_SIZE + 1024 {
                buf = BytesMut::with_capacity(RECV_CHUNK);
            }
            match ctx.socket.try_recv_buf_from(&mut buf) {
                Ok((n, from)) => batch.push((from, buf.split_to(n).freeze())),
                Err(_) => break,
            }
        }
        if !deliver(&ctx, &mut batch).await {
            break;
        }
    }
}

/// Closes on-demand peer faces that have been silent longer than the idle timeout.
fn close_idle(ctx: &PeerCtx, now: Instant) {
    let limit = ctx.opts.limits.idle_timeout;
    if let Ok(mut map) = ctx.peers.lock() {
        map.retain(|_, p| {
            let idle = p.persistency == Persistency::OnDemand
                && now.saturating_duration_since(p.last_seen) > limit;
            if idle && !p.cancel.is_cancelled() {
                ctx.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
            }
            if idle || p.cancel.is_cancelled() {
                p.cancel.cancel();
                false
            } else {
                true
            }
        });
    }
}

/// Makes room for a new peer in a full table by closing the on-demand face silent for
/// longest; false when every face is persistent (the datagram is then dropped).
fn evict_oldest(ctx: &PeerCtx) -> bool {
    let Ok(mut map) = ctx.peers.lock() else {
        return false;
    };
    let oldest = map
        .iter()
        .filter(|(_, p)| p.persistency == Persistency::OnDemand)
        .min_by_key(|(_, p)| p.last_seen)
        .map(|(a, _)| *a);
    match oldest.and_then(|a| map.remove(&a)) {
        Some(p) => {
            p.cancel.cancel();
            ctx.counters.evicted.fetch_add(1, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Hands a batch of datagrams to the forwarder grouped by peer, opening faces for new peers.
async fn deliver(ctx: &PeerCtx, batch: &mut Vec<(SocketAddr, Bytes)>) -> bool {
    let now = Instant::now();
    let mut out: Vec<(FaceToken, Vec<Bytes>)> = Vec::new();
    let mut unknown: Vec<(SocketAddr, Bytes)> = Vec::new();
    if let Ok(mut map) = ctx.peers.lock() {
        for (from, dgram) in batch.drain(..) {
            match map.get_mut(&from) {
                Some(peer) if !peer.cancel.is_cancelled() => {
                    push_datagram(peer, now, dgram, &mut out);
                }
                _ => {
                    map.remove(&from);
                    unknown.push((from, dgram));
                }
            }
        }
    }
    for (from, dgram) in unknown {
        let known = ctx
            .peers
            .lock()
            .map(|m| m.contains_key(&from))
            .unwrap_or(false);
        if !known {
            let max = ctx.opts.limits.max_udp_peers.max(1);
            let table_full = || ctx.peers.lock().map(|m| m.len() >= max).unwrap_or(true);
            if table_full() {
                close_idle(ctx, now);
            }
            if table_full() && !evict_oldest(ctx) {
                ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "udp peer table full of persistent faces; datagram dropped");
                continue;
            }
            if ctx.open_peer(from, Persistency::OnDemand).await.is_none() {
                return false;
            }
        }
        if let Ok(mut map) = ctx.peers.lock()
            && let Some(peer) = map.get_mut(&from)
        {
            push_datagram(peer, now, dgram, &mut out);
        }
    }
    for (face, packets) in out {
        if ctx
            .inbound
            .send(Inbound::Packets { face, packets })
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

fn push_datagram(
    peer: &mut Peer,
    now: Instant,
    dgram: Bytes,
    out: &mut Vec<(FaceToken, Vec<Bytes>)>,
) {
    peer.last_seen = now;
    FaceCounters::add(&peer.counters.in_bytes, dgram.len() as u64);
    let pkt = match peer.reassembler.push(now, dgram) {
        Reassembled::Packet(p) => p,
        Reassembled::Pending => {
            FaceCounters::add(&peer.counters.in_fragments, 1);
            return;
        }
        Reassembled::Dropped => {
            FaceCounters::add(&peer.counters.reassembly_drops, 1);
            return;
        }
    };
    FaceCounters::add(&peer.counters.in_packets, 1);
    match out.last_mut() {
        Some((f, v)) if *f == peer.face => v.push(pkt),
        _ => out.push((peer.face, vec![pkt])),
    }
}

/// How much a face may send before its peer is vouched for.
struct Budget {
    established: Arc<AtomicBool>,
    limits: ChannelLimits,
}

impl Budget {
    /// A face that is never limited (multicast: the group is not a forged source).
    fn unlimited() -> Self {
        Budget {
            established: Arc::new(AtomicBool::new(true)),
            limits: ChannelLimits::default(),
        }
    }

    /// Whether `len` more bytes stay within `factor × received + credit`.
    fn allows(&self, counters: &FaceCounters, len: usize) -> bool {
        let factor = self.limits.udp_amplification_factor;
        if factor == 0 || self.established.load(Ordering::Relaxed) {
            return true;
        }
        let received = FaceCounters::get(&counters.in_bytes);
        let sent = FaceCounters::get(&counters.out_bytes);
        let allowed = received
            .saturating_mul(factor)
            .saturating_add(self.limits.udp_amplification_credit);
        sent.saturating_add(len as u64) <= allowed
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Frame>,
    counters: Arc<FaceCounters>,
    cancel: CancellationToken,
    mtu: usize,
    batch: usize,
    budget: Budget,
) {
    let mut frag = Fragmenter::new(mtu, seq_seed(remote));
    let mut pkts = Vec::with_capacity(batch.max(1));
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut pkts, batch.max(1)) => n,
            () = cancel.cancelled() => break,
        };
        if n == 0 {
            break;
        }
        for pkt in pkts.drain(..) {
            if !budget.allows(&counters, pkt.len()) {
                tracing::debug!(%remote, len = pkt.len(), "udp amplification budget; packet dropped");
                FaceCounters::add(&counters.amplification_drops, 1);
                continue;
            }
            // A datagram is one buffer: the header and packet are joined here.
            let dgrams = match frag.fragment(pkt.into_bytes()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(error = %e, %remote, "cannot fragment; packet dropped");
                    FaceCounters::add(&counters.queue_drops, 1);
                    continue;
                }
            };
            if dgrams.len() > 1 {
                FaceCounters::add(&counters.out_fragments, dgrams.len() as u64);
            }
            for d in dgrams {
                match socket.send_to(&d, remote).await {
                    Ok(len) => {
                        FaceCounters::add(&counters.out_bytes, len as u64);
                    }
                    Err(e) => {
                        // ICMP errors from an absent peer are routine for UDP; count, go on.
                        tracing::debug!(error = %e, %remote, "udp send failed");
                        FaceCounters::add(&counters.queue_drops, 1);
                    }
                }
            }
            FaceCounters::add(&counters.out_packets, 1);
        }
    }
    cancel.cancel();
}

fn seq_seed(remote: SocketAddr) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(remote.port()) << 48)
}

/// Joins a UDP multicast group on the interface with address `iface` and starts one
/// multi-access face for the group.
pub async fn multicast_face(
    group: SocketAddrV4,
    iface: Ipv4Addr,
    inbound: InboundTx,
    opts: FaceOptions,
    mtu: usize,
    loopback: bool,
) -> crate::Result<FaceToken> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |what, e| io_err(what, group, e);
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| err("socket", e))?;
    sock.set_reuse_address(true)
        .map_err(|e| err("SO_REUSEADDR", e))?;
    sock.set_reuse_port(true)
        .map_err(|e| err("SO_REUSEPORT", e))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())
        .map_err(|e| err("bind multicast", e))?;
    sock.join_multicast_v4(group.ip(), &iface)
        .map_err(|e| err("join multicast", e))?;
    sock.set_multicast_if_v4(&iface)
        .map_err(|e| err("IP_MULTICAST_IF", e))?;
    sock.set_multicast_loop_v4(loopback)
        .map_err(|e| err("IP_MULTICAST_LOOP", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| err("nonblocking", e))?;
    let socket = Arc::new(
        UdpSocket::from_std(sock.into()).map_err(|e| err("register multicast socket", e))?,
    );
    let face = next_face_token();
    let counters = Arc::new(FaceCounters::default());
    let (tx, rx, cancel) = FaceTx::new(opts.queue, counters.clone());
    let meta = FaceMeta {
        kind: FaceKind::UdpMulticast,
        remote_uri: FaceUri::Udp(SocketAddr::V4(group)).to_string(),
        local_uri: FaceUri::Udp(SocketAddr::V4(SocketAddrV4::new(iface, group.port()))).to_string(),
        local: false,
        persistency: Persistency::Permanent,
        mtu,
    };
    inbound
        .send(Inbound::Opened { face, meta, tx })
        .await
        .map_err(|_| err("announce face", std::io::ErrorKind::BrokenPipe.into()))?;
    tokio::spawn(send_loop(
        socket.clone(),
        SocketAddr::V4(group),
        rx,
        counters.clone(),
        cancel.clone(),
        mtu,
        opts.queue.batch,
        Budget::unlimited(),
    ));
    tokio::spawn(async move {
        // One reassembler per sender: fragments from different hosts must not mix.
        let mut senders: HashMap<SocketAddr, Reassembler> = HashMap::new();
        let mut buf = BytesMut::with_capacity(RECV_CHUNK);
        loop {
            if buf.capacity() - buf.len() < MAX_PACKET_SIZE + 1024 {
                buf = BytesMut::with_capacity(RECV_CHUNK);
            }
            let got = tokio::select! {
                () = cancel.cancelled() => break,
                r = socket.recv_buf_from(&mut buf) => r,
            };
            let Ok((n, from)) = got else { continue };
            let dgram = buf.split_to(n).freeze();
            FaceCounters::add(&counters.in_bytes, n as u64);
            if senders.len() >= MAX_PEERS && !senders.contains_key(&from) {
                senders.clear();
            }
            let r = senders.entry(from).or_default();
            if let Reassembled::Packet(p) = r.push(Instant::now(), dgram) {
                FaceCounters::add(&counters.in_packets, 1);
                let ev = Inbound::Packets {
                    face,
                    packets: vec![p],
                };
                if inbound.send(ev).await.is_err() {
                    break;
                }
            }
        }
        cancel.cancel();
    });
    Ok(face)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn on_demand_face_per_peer_and_fragmented_replies() {
        let (itx, mut irx) = mpsc::channel(16);
        let ch = UdpChannel::bind(
            "127.0.0.1:0".parse().unwrap(),
            itx,
            FaceOptions::default(),
            1000,
        )
        .await
        .unwrap();
        let addr = ch.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        peer.send_to(&[5, 1, 0], addr).await.unwrap();
        let Some(Inbound::Opened { face, meta, tx }) = irx.recv().await else {
            panic!("expected Opened")
        };
        assert_eq!(meta.kind, FaceKind::Udp);
        assert!(
            !meta.local,
            "a unicast UDP face is never local, even from loopback"
        );
        assert_eq!(meta.persistency, Persistency::OnDemand);
        let Some(Inbound::Packets { face: f, packets }) = irx.recv().await else {
            panic!("expected Packets")
        };
        assert_eq!(f, face);
        assert_eq!(&packets[0][..], &[5, 1, 0]);

        // Second datagram from the same peer: same face, no new Opened.
        peer.send_to(&[5, 1, 1], addr).await.unwrap();
        let Some(Inbound::Packets { face: f2, .. }) = irx.recv().await else {
            panic!("expected Packets")
        };
        assert_eq!(f2, face);

        // A 3000-byte packet leaves as fragments no larger than the MTU.
        let mut big = vec![0x06, 0xFD, 0x0B, 0xB4];
        big.resize(3000, 7);
        tx.send(Bytes::from(big.clone()));
        let mut r = Reassembler::default();
        let mut buf = vec![0u8; 9000];
        let whole = loop {
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            assert!(n <= 1000);
            if let Reassembled::Packet(p) =
                r.push(Instant::now(), Bytes::copy_from_slice(&buf[..n]))
            {
                break p;
            }
        };
        assert_eq!(&whole[..], &big[..]);

        // The channel can also create a face toward a peer on request.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let made = ch
            .create_face(other.local_addr().unwrap(), Persistency::Persistent)
            .await
            .unwrap();
        let Some(Inbound::Opened { face, meta, .. }) = irx.recv().await else {
            panic!("expected Opened")
        };
        assert_eq!(face, made);
        assert_eq!(meta.persistency, Persistency::Persistent);
    }

    #[tokio::test]
    async fn idle_on_demand_faces_close_and_persistent_ones_stay() {
        let t0 = Instant::now();
        let (itx, mut irx) = mpsc::channel(16);
        let ch = UdpChannel::bind_with_idle(
            "127.0.0.1:0".parse().unwrap(),
            itx,
            FaceOptions::default(),
            1400,
            Duration::from_millis(60),
        )
        .await
        .unwrap();
        let addr = ch.local_addr().unwrap();
        let kept = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let persistent = ch
            .create_face(kept.local_addr().unwrap(), Persistency::Persistent)
            .await
            .unwrap();
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        quiet.send_to(&[5, 1, 0], addr).await.unwrap();
        // The runtime keeps every face's send handle; a face whose handles are all gone ends.
        let mut handles = Vec::new();
        let mut on_demand = None;
        while on_demand.is_none() {
            if let Some(Inbound::Opened { face, meta, tx }) = irx.recv().await {
                handles.push(tx);
                if meta.persistency == Persistency::OnDemand {
                    on_demand = Some(face);
                }
            }
        }
        // Keep datagrams flowing from another peer so the channel sweeps; the quiet peer's
        // face must be reported closed, the persistent one never.
        let chatty = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let closed = loop {
            chatty.send_to(&[5, 1, 1], addr).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(20), irx.recv()).await {
                Ok(Some(Inbound::Closed { face, .. })) => break face,
                Ok(Some(Inbound::Opened { tx, .. })) => handles.push(tx),
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("channel ended"),
            }
        };
        assert!(
            t0.elapsed() >= Duration::from_millis(60),
            "closed before the idle timeout"
        );
        assert_eq!(Some(closed), on_demand);
        assert_ne!(closed, persistent);
    }

    async fn opened(irx: &mut mpsc::Receiver<Inbound>) -> (FaceToken, FaceMeta, FaceTx) {
        loop {
            match irx.recv().await {
                Some(Inbound::Opened { face, meta, tx }) => return (face, meta, tx),
                Some(_) => {}
                None => panic!("channel ended"),
            }
        }
    }

    #[tokio::test]
    async fn a_full_peer_table_evicts_the_longest_silent_on_demand_face() {
        let (itx, mut irx) = mpsc::channel(64);
        let opts = FaceOptions {
            limits: ChannelLimits {
                max_udp_peers: 2,
                ..ChannelLimits::default()
            },
            ..FaceOptions::default()
        };
        let ch = UdpChannel::bind("127.0.0.1:0".parse().unwrap(), itx, opts, 1400)
            .await
            .unwrap();
        let addr = ch.local_addr().unwrap();
        let mut handles = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..3 {
            let p = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            p.send_to(&[5, 1, 0], addr).await.unwrap();
            let (face, _, tx) = opened(&mut irx).await;
            handles.push((face, tx));
            peers.push(p);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The third peer got a face (no lock-out) and the first one was evicted for it.
        assert_eq!(ChannelCounters::get(&ch.counters().evicted), 1);
        let closed = loop {
            if let Some(Inbound::Closed { face, .. }) = irx.recv().await {
                break face;
            }
        };
        assert_eq!(closed, handles[0].0);
        assert_eq!(ch.peers.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn on_demand_faces_send_a_bounded_multiple_of_what_they_received() {
        let (itx, mut irx) = mpsc::channel(64);
        let opts = FaceOptions {
            limits: ChannelLimits {
                udp_amplification_factor: 4,
                udp_amplification_credit: 100,
                ..ChannelLimits::default()
            },
            ..FaceOptions::default()
        };
        let ch = UdpChannel::bind("127.0.0.1:0".parse().unwrap(), itx, opts, 8800)
            .await
            .unwrap();
        let addr = ch.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // 10 bytes in: 4 * 10 + 100 = 140 bytes may go back.
        peer.send_to(&[5, 8, 0, 0, 0, 0, 0, 0, 0, 0], addr)
            .await
            .unwrap();
        let (_, _, tx) = opened(&mut irx).await;
        let pkt = |n: usize| {
            let mut v = vec![6, n as u8 - 2];
            v.resize(n, 0);
            Bytes::from(v)
        };
        tx.send(pkt(120));
        tx.send(pkt(60));
        tx.send(pkt(20));
        let mut buf = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(n, 120);
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(n, 20, "the 60-byte packet would have exceeded the budget");
        assert_eq!(FaceCounters::get(&tx.counters().amplification_drops), 1);

        // Asking for the peer as a persistent face lifts the bound.
        let face = ch
            .create_face(peer.local_addr().unwrap(), Persistency::Persistent)
            .await
            .unwrap();
        assert!(ch.peers.lock().unwrap().values().any(|p| p.face == face));
        tx.send(pkt(200));
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(n, 200);
        assert_eq!(FaceCounters::get(&tx.counters().amplification_drops), 1);
    }
}
