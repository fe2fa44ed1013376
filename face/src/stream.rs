//! Face tasks for stream sockets (Unix, TCP): a reader that cuts whole TLVs out of each read and
//! hands them over in one batch, and a writer that drains the send queue in batches with
//! vectored writes.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use amicn_tlv::lp::Frame;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::emulation::{self, Emulation};
use crate::link::{
    ChannelCounters, ChannelLimits, CloseReason, FaceCounters, FaceMeta, FaceToken, FaceTx,
    Inbound, InboundTx, QueueConfig, next_face_token,
};
use crate::{Error, TlvCodec};

/// Bytes requested from the socket per read; several packets arrive per wakeup under load.
const READ_CHUNK: usize = 64 * 1024;
/// Most iovecs handed to one `writev`.
const MAX_IOV: usize = 128;

/// Options shared by every face a listener or connector creates.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaceOptions {
    /// Send queue sizing.
    pub queue: QueueConfig,
    /// Emulated delay/loss on the send path (experiments only; `None` by default).
    pub emulation: Option<Emulation>,
    /// Face count, idle and amplification limits of listening channels.
    pub limits: ChannelLimits,
}

/// One of a listener's [`ChannelLimits::max_stream_faces`] places, held by a face's reader
/// and given back when the face ends.
#[derive(Debug)]
pub(crate) struct FaceSlot(Arc<AtomicUsize>);

impl FaceSlot {
    /// Takes a place if fewer than `max` are taken.
    pub(crate) fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| FaceSlot(open.clone()))
    }
}

impl Drop for FaceSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a listener adds to the faces it accepts: the place the face holds and, for
/// non-local on-demand faces, an idle timeout counted on the channel.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    pub(crate) slot: Option<FaceSlot>,
    pub(crate) idle: Option<(Duration, Arc<ChannelCounters>)>,
}

/// Starts the reader and writer tasks of a stream face and announces it on `inbound`.
///
/// Returns the face's token; the face reports `Inbound::Opened` before any packet.
pub async fn spawn_stream_face<R, W>(
    reader: R,
    writer: W,
    meta: FaceMeta,
    inbound: InboundTx,
    opts: FaceOptions,
) -> Option<FaceToken>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    spawn_accepted_face(reader, writer, meta, inbound, opts, Accepted::default()).await
}

/// [`spawn_stream_face`] for a face a listener accepted under its limits.
pub(crate) async fn spawn_accepted_face<R, W>(
    reader: R,
    writer: W,
    meta: FaceMeta,
    inbound: InboundTx,
    opts: FaceOptions,
    accepted: Accepted,
) -> Option<FaceToken>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let face = next_face_token();
    let counters = Arc::new(FaceCounters::default());
    let (tx, rx, cancel) = FaceTx::new(opts.queue, counters.clone());
    if inbound
        .send(Inbound::Opened { face, meta, tx })
        .await
        .is_err()
    {
        return None;
    }
    let rx = match opts.emulation {
        Some(emu) if !emu.is_noop() => {
            emulation::insert_stage(rx, emu, counters.clone(), opts.queue.capacity)
        }
        _ => rx,
    };
    tokio::spawn(write_loop(
        writer,
        rx,
        counters.clone(),
        cancel.clone(),
        opts.queue.batch,
    ));
    tokio::spawn(read_loop(face, reader, inbound, counters, cancel, accepted));
    Some(face)
}

/// Resolves after `idle`, or never without one.
async fn idle_expired(idle: Option<Duration>) {
    match idle {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    face: FaceToken,
    mut reader: R,
    inbound: InboundTx,
    counters: Arc<FaceCounters>,
    cancel: CancellationToken,
    accepted: Accepted,
) {
    // The listener's place is given back only when this reader ends.
    let _slot = accepted.slot;
    let idle = accepted.idle.as_ref().map(|(d, _)| *d);
    let mut codec = TlvCodec::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let reason = loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            () = cancel.cancelled() => break CloseReason::Requested,
            r = reader.read_buf(&mut buf) => r,
            () = idle_expired(idle) => {
                if let Some((_, c)) = &accepted.idle {
                    FaceCounters::add(&c.idle_closed, 1);
                }
                break CloseReason::Idle;
            }
        };
        match read {
            Ok(0) => break CloseReason::Eof,
            Ok(_) => {}
            Err(e) => break CloseReason::Io(e.to_string()),
        }
        let (packets, err) = drain_frames(&mut codec, &mut buf, &counters);
        if !packets.is_empty()
            && inbound
                .send(Inbound::Packets { face, packets })
                .await
                .is_err()
        {
            break CloseReason::Requested;
        }
        if let Some(reason) = err {
            break reason;
        }
    };
    tracing::debug!(face, ?reason, "stream face closing");
    cancel.cancel();
    let _ = inbound.send(Inbound::Closed { face, reason }).await;
}

/// Cuts every complete frame out of `buf`; a framing error ends the face after the frames
/// before it are delivered.
fn drain_frames(
    codec: &mut TlvCodec,
    buf: &mut BytesMut,
    counters: &FaceCounters,
) -> (Vec<Bytes>, Option<CloseReason>) {
    let mut packets = Vec::new();
    let mut bytes = 0u64;
    let err = loop {
        match codec.decode(buf) {
            Ok(Some(p)) => {
                bytes += p.len() as u64;
                packets.push(p);
            }
            Ok(None) => break None,
            Err(Error::FrameTooLarge { len, .. }) => {
                tracing::warn!(len, "oversized frame; closing stream face");
                FaceCounters::add(&counters.oversized, 1);
                break Some(CloseReason::Oversized);
            }
            Err(e) => {
                tracing::warn!(error = %e, "malformed frame; closing stream face");
                FaceCounters::add(&counters.malformed, 1);
                break Some(CloseReason::Malformed);
            }
        }
    };
    FaceCounters::add(&counters.in_packets, packets.len() as u64);
    FaceCounters::add(&counters.in_bytes, bytes);
    (packets, err)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Frame>,
    counters: Arc<FaceCounters>,
    cancel: CancellationToken,
    batch: usize,
) {
    let mut frames = Vec::with_capacity(batch.max(1));
    // Every queued frame's header and packet, in order, for one vectored write: the packets
    // go out from the buffers they were received in.
    let mut parts: Vec<Bytes> = Vec::with_capacity(2 * batch.max(1));
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut frames, batch.max(1)) => n,
            () = cancel.cancelled() => break,
        };
        if n == 0 {
            break;
        }
        let mut bytes = 0usize;
        for f in frames.drain(..) {
            bytes += f.len();
            if !f.header.is_empty() {
                parts.push(f.header);
            }
            parts.push(f.packet);
        }
        if let Err(e) = write_all_vectored(&mut writer, &parts).await {
            tracing::debug!(error = %e, "stream face write failed");
            break;
        }
        FaceCounters::add(&counters.out_packets, n as u64);
        FaceCounters::add(&counters.out_bytes, bytes as u64);
        parts.clear();
    }
    cancel.cancel();
    let _ = writer.shutdown().await;
}

/// Writes every packet in order with as few `writev` calls as the socket allows.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    pkts: &[Bytes],
) -> std::io::Result<()> {
    let mut idx = 0;
    let mut off = 0;
    while let Some(first) = pkts.get(idx) {
        let head = first.get(off..).unwrap_or_default();
        let rest = pkts.get(idx + 1..).unwrap_or_default();
        let slices: Vec<IoSlice<'_>> = std::iter::once(head)
            .chain(rest.iter().map(|b| &b[..]))
            .take(MAX_IOV)
            .map(IoSlice::new)
            .collect();
        let mut n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(cur) = pkts.get(idx) else { break };
            let remaining = cur.len() - off;
            if n >= remaining {
                n -= remaining;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
        // Skip empty packets so the loop always makes progress.
        while pkts.get(idx).is_some_and(|p| p.len() == off) {
            idx += 1;
            off = 0;
        }
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::link::{FaceKind, Persistency};

    fn meta() -> FaceMeta {
        FaceMeta {
            kind: FaceKind::Unix,
            remote_uri: "fd://test".into(),
            local_uri: "unix:///test".into(),
            local: true,
            persistency: Persistency::OnDemand,
            mtu: crate::MAX_PACKET_SIZE,
        }
    }

    #[tokio::test]
    async fn stream_face_frames_batches_and_writes() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let (itx, mut irx) = mpsc::channel(16);
        let face = spawn_stream_face(ar, aw, meta(), itx, FaceOptions::default())
            .await
            .unwrap();
        let Some(Inbound::Opened { face: f, tx, .. }) = irx.recv().await else {
            panic!("expected Opened");
        };
        assert_eq!(f, face);

        // Two packets in one write arrive as one batch.
        bw.write_all(&[5, 1, 0, 6, 2, 0xAA, 0xBB]).await.unwrap();
        let Some(Inbound::Packets { packets, .. }) = irx.recv().await else {
            panic!("expected Packets");
        };
        assert_eq!(packets.len(), 2);
        assert_eq!(&packets[1][..], &[6, 2, 0xAA, 0xBB]);

        // Sending through the handle writes the bytes back to back.
        tx.send(Bytes::from_static(&[5, 0]));
        tx.send(Bytes::from_static(&[6, 1, 9]));
        let mut got = [0u8; 5];
        br.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [5, 0, 6, 1, 9]);

        // A frame's header goes out right in front of its packet.
        tx.send(Frame {
            header: Bytes::from_static(&[0x64, 0x04, 0x50, 0x02]),
            packet: Bytes::from_static(&[5, 0]),
        });
        tx.send(Bytes::from_static(&[6, 0]));
        let mut got = [0u8; 8];
        br.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0x64, 0x04, 0x50, 0x02, 5, 0, 6, 0]);

        // An oversized header closes the face and is counted.
        bw.write_all(&[6, 0xFD, 0x30, 0x00]).await.unwrap();
        let Some(Inbound::Closed { reason, .. }) = irx.recv().await else {
            panic!("expected Closed");
        };
        assert_eq!(reason, CloseReason::Oversized);
        assert_eq!(FaceCounters::get(&tx.counters().oversized), 1);
        assert_eq!(FaceCounters::get(&tx.counters().in_packets), 2);
    }

    #[tokio::test]
    async fn vectored_write_handles_partial_writes() {
        // A tiny duplex buffer forces many partial writes.
        let (mut a, mut b) = tokio::io::duplex(7);
        let pkts: Vec<Bytes> = (0..50u8)
            .map(|i| Bytes::from(vec![i; usize::from(i % 13)]))
            .collect();
        let expect: Vec<u8> = pkts.iter().flat_map(|p| p.iter().copied()).collect();
        let n = expect.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; n];
            b.read_exact(&mut got).await.unwrap();
            got
        });
        write_all_vectored(&mut a, &pkts).await.unwrap();
        assert_eq!(reader.await.unwrap(), expect);
    }

    #[tokio::test(start_paused = true)]
    async fn an_accepted_face_with_an_idle_timeout_closes_when_silent() {
        let (a, b) = tokio::io::duplex(1 << 12);
        let (ar, aw) = tokio::io::split(a);
        let (_br, mut bw) = tokio::io::split(b);
        let (itx, mut irx) = mpsc::channel(16);
        let chan = Arc::new(ChannelCounters::default());
        let open = Arc::new(AtomicUsize::new(0));
        let slot = FaceSlot::take(&open, 1).unwrap();
        assert!(FaceSlot::take(&open, 1).is_none(), "one place only");
        let accepted = Accepted {
            slot: Some(slot),
            idle: Some((Duration::from_secs(30), chan.clone())),
        };
        spawn_accepted_face(ar, aw, meta(), itx, FaceOptions::default(), accepted)
            .await
            .unwrap();
        // The runtime holds the send handle; without it the face would end at once.
        let Some(Inbound::Opened { tx: _tx, .. }) = irx.recv().await else {
            panic!("expected Opened");
        };
        tokio::time::sleep(Duration::from_secs(20)).await;
        bw.write_all(&[5, 0]).await.unwrap();
        assert!(matches!(irx.recv().await, Some(Inbound::Packets { .. })));
        // Traffic restarted the clock; 30 s of silence after it closes the face.
        let t0 = tokio::time::Instant::now();
        let Some(Inbound::Closed { reason, .. }) = irx.recv().await else {
            panic!("expected Closed");
        };
        assert_eq!(reason, CloseReason::Idle);
        assert!(t0.elapsed() >= Duration::from_secs(30));
        assert_eq!(ChannelCounters::get(&chan.idle_closed), 1);
        // The place is free again.
        tokio::task::yield_now().await;
        assert!(FaceSlot::take(&open, 1).is_some());
    }
}
