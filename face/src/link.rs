//! The contract between face tasks and the forwarder runtime: what a face reports on the
//! shared inbound channel, and the handle the runtime keeps to send on a face.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amicn_tlv::lp::Frame;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Identifies a face between the face layer and the runtime (unique per process).
pub type FaceToken = u64;

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Allocates a fresh [`FaceToken`].
pub fn next_face_token() -> FaceToken {
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

/// Transport kind of a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceKind {
    /// Unix stream socket (always local scope).
    Unix,
    /// TCP connection.
    Tcp,
    /// UDP unicast peer.
    Udp,
    /// UDP multicast group.
    UdpMulticast,
    /// In-process face (tests, management).
    Internal,
}

/// How a face came to exist (NFD FacePersistency numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistency {
    /// Created by configuration or `faces/create`; survives idle periods.
    Persistent = 0,
    /// Created when a peer connected; closed when idle or on error.
    OnDemand = 1,
    /// Never closed by the forwarder.
    Permanent = 2,
}

/// What the runtime needs to know about a new face.
#[derive(Debug, Clone)]
pub struct FaceMeta {
    /// Transport kind.
    pub kind: FaceKind,
    /// Remote URI (`unix://...`, `tcp4://1.2.3.4:6363`, ...).
    pub remote_uri: String,
    /// Local URI.
    pub local_uri: String,
    /// Local scope: management under `/localhost` is accepted only on local faces.
    pub local: bool,
    /// Persistency.
    pub persistency: Persistency,
    /// Largest packet this face can send in one unit (datagram MTU; 8800 for streams).
    pub mtu: usize,
}

/// Why a face stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the connection.
    Eof,
    /// A frame exceeded the packet size limit; the stream cannot resynchronise.
    Oversized,
    /// The stream carried bytes that are not a TLV.
    Malformed,
    /// A socket error.
    Io(String),
    /// The runtime asked the face to close.
    Requested,
    /// Nothing was received for longer than the channel's idle timeout.
    Idle,
}

/// Events from face tasks to the runtime, all on one bounded channel.
#[derive(Debug)]
pub enum Inbound {
    /// A new face is up; the runtime registers it with the core and keeps `tx`.
    Opened {
        /// Token the face uses in later events.
        face: FaceToken,
        /// Description.
        meta: FaceMeta,
        /// Send handle for this face.
        tx: FaceTx,
    },
    /// Whole packets read from one face in one wakeup (batched to save channel operations).
    Packets {
        /// Which face.
        face: FaceToken,
        /// The packets, one TLV each.
        packets: Vec<Bytes>,
    },
    /// The face's transport ended.
    Closed {
        /// Which face.
        face: FaceToken,
        /// Why.
        reason: CloseReason,
    },
}

/// Sender side of the shared inbound channel.
pub type InboundTx = mpsc::Sender<Inbound>;

/// Per-face counters, shared between the face tasks and the runtime's metrics.
#[derive(Debug, Default)]
pub struct FaceCounters {
    /// Packets received.
    pub in_packets: AtomicU64,
    /// Bytes received.
    pub in_bytes: AtomicU64,
    /// Packets written.
    pub out_packets: AtomicU64,
    /// Bytes written.
    pub out_bytes: AtomicU64,
    /// Frames rejected for exceeding the packet size limit.
    pub oversized: AtomicU64,
    /// Frames rejected as malformed TLV.
    pub malformed: AtomicU64,
    /// Packets dropped because the send queue was full.
    pub queue_drops: AtomicU64,
    /// Outgoing packets sent while the queue was above the congestion threshold.
    pub congestion_marks: AtomicU64,
    /// Packets dropped by the loss emulation.
    pub emulated_losses: AtomicU64,
    /// Fragments received.
    pub in_fragments: AtomicU64,
    /// Fragments sent.
    pub out_fragments: AtomicU64,
    /// Reassemblies abandoned (missing fragments, inconsistent headers).
    pub reassembly_drops: AtomicU64,
    /// Packets not sent on an on-demand UDP face because they would have exceeded its
    /// amplification budget (see [`ChannelLimits::udp_amplification_factor`]).
    pub amplification_drops: AtomicU64,
}

/// Per-channel counters of what a listener refused or closed on its own, shared with the
/// runtime's metrics.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Connections (TCP, Unix) refused because the channel had [`ChannelLimits::max_stream_faces`]
    /// faces open.
    pub refused: AtomicU64,
    /// On-demand faces closed after [`ChannelLimits::idle_timeout`] without traffic.
    pub idle_closed: AtomicU64,
    /// On-demand UDP faces closed to make room for a new peer when the peer table was full.
    pub evicted: AtomicU64,
}

impl ChannelCounters {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Limits a channel applies to the faces remote peers open on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelLimits {
    /// Most faces one TCP or Unix listener keeps open; further connections are closed at once
    /// (counted in [`ChannelCounters::refused`]).
    pub max_stream_faces: usize,
    /// Most peers with a face on one UDP channel; a new peer beyond it evicts the on-demand
    /// face silent for longest (counted in [`ChannelCounters::evicted`]).
    pub max_udp_peers: usize,
    /// On-demand faces of non-local peers (UDP; TCP when not local) that receive nothing for
    /// this long are closed (NFD's UDP `idle_timeout`, 600 s).
    pub idle_timeout: std::time::Duration,
    /// An on-demand UDP face (a peer whose source address nobody has vouched for) may send
    /// at most this many bytes per byte it received, plus [`ChannelLimits::udp_amplification_credit`]:
    /// a spoofed Interest cannot make the forwarder flood the forged address with large Data.
    /// 0 = no bound. Faces created by configuration or management are not limited.
    pub udp_amplification_factor: u64,
    /// Bytes an on-demand UDP face may send beyond the factor (lets the first replies through).
    pub udp_amplification_credit: u64,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self {
            max_stream_faces: 1024,
            max_udp_peers: 4096,
            idle_timeout: std::time::Duration::from_secs(600),
            udp_amplification_factor: 10,
            udp_amplification_credit: 256 * 1024,
        }
    }
}

impl FaceCounters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Send-queue sizing for a face.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    /// Capacity of the per-face send queue, in packets.
    pub capacity: usize,
    /// Queue length above which outgoing packets should carry a CongestionMark.
    pub congestion_threshold: usize,
    /// Most packets written in one batch.
    pub batch: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            congestion_threshold: 1024,
            batch: 256,
        }
    }
}

/// The runtime's handle to one face: a bounded send queue plus a close switch.
#[derive(Debug, Clone)]
pub struct FaceTx {
    tx: mpsc::Sender<Frame>,
    cancel: CancellationToken,
    counters: Arc<FaceCounters>,
    congestion_threshold: usize,
}

/// Result of [`FaceTx::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; the queue is below the congestion threshold.
    Queued,
    /// Queued; the queue is above the congestion threshold.
    Congested,
    /// Dropped: the queue is full.
    Dropped,
    /// Dropped: the face is closed.
    Closed,
}

impl FaceTx {
    /// Builds a handle and the receiving end for the face's writer.
    pub fn new(
        queue: QueueConfig,
        counters: Arc<FaceCounters>,
    ) -> (Self, mpsc::Receiver<Frame>, CancellationToken) {
        let (tx, rx) = mpsc::channel(queue.capacity.max(1));
        let cancel = CancellationToken::new();
        (
            Self {
                tx,
                cancel: cancel.clone(),
                counters,
                congestion_threshold: queue.congestion_threshold,
            },
            rx,
            cancel,
        )
    }

    /// Queues one packet without waiting; a full queue drops it (counted). A [`Frame`] keeps
    /// its LpPacket header apart from the packet, which the writer sends without copying.
    pub fn send(&self, pkt: impl Into<Frame>) -> SendStatus {
        match self.tx.try_send(pkt.into()) {
            Ok(()) => {
                if self.queue_len() > self.congestion_threshold {
                    FaceCounters::add(&self.counters.congestion_marks, 1);
                    SendStatus::Congested
                } else {
                    SendStatus::Queued
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                FaceCounters::add(&self.counters.queue_drops, 1);
                SendStatus::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => SendStatus::Closed,
        }
    }

    /// Packets waiting in the send queue.
    pub fn queue_len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// True when the queue is above the congestion threshold.
    pub fn is_congested(&self) -> bool {
        self.queue_len() > self.congestion_threshold
    }

    /// Counters of this face.
    pub fn counters(&self) -> &Arc<FaceCounters> {
        &self.counters
    }

    /// Asks the face's tasks to stop and release the socket.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// True once the face was closed (by the runtime or its transport).
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }
}

/// A listening endpoint (Unix path, TCP or UDP port); dropping it stops accepting and, for a
/// Unix socket, removes the socket file.
#[derive(Debug)]
pub struct Channel {
    local_uri: String,
    local_addr: Option<std::net::SocketAddr>,
    cancel: CancellationToken,
    cleanup: Option<std::path::PathBuf>,
    counters: Arc<ChannelCounters>,
}

impl Channel {
    pub(crate) fn new(
        local_uri: String,
        local_addr: Option<std::net::SocketAddr>,
        cancel: CancellationToken,
        cleanup: Option<std::path::PathBuf>,
        counters: Arc<ChannelCounters>,
    ) -> Self {
        Self {
            local_uri,
            local_addr,
            cancel,
            cleanup,
            counters,
        }
    }

    /// What the channel refused or closed on its own.
    pub fn counters(&self) -> &Arc<ChannelCounters> {
        &self.counters
    }

    /// The channel's local URI (`unix:///path`, `tcp4://0.0.0.0:6363`, ...).
    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }

    /// Bound socket address (TCP/UDP), useful when binding port 0.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// Stops accepting new peers.
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(path) = self.cleanup.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
