//! TCP channel (port 6363) and outgoing TCP faces. A TCP face is local when the peer is on a
//! loopback address, as NFD decides scope (the runtime may override that). A listener keeps at
//! most [`crate::ChannelLimits::max_stream_faces`] faces open and closes on-demand faces of
//! non-loopback peers that stay silent for the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::link::{
    Channel, ChannelCounters, FaceKind, FaceMeta, FaceToken, InboundTx, Persistency,
};
use crate::stream::{Accepted, FaceOptions, FaceSlot, spawn_accepted_face, spawn_stream_face};
use crate::uri::FaceUri;
use crate::{MAX_PACKET_SIZE, io_err};

fn meta(local: SocketAddr, remote: SocketAddr, persistency: Persistency) -> FaceMeta {
    FaceMeta {
        kind: FaceKind::Tcp,
        remote_uri: FaceUri::Tcp(remote).to_string(),
        local_uri: FaceUri::Tcp(local).to_string(),
        local: remote.ip().is_loopback(),
        persistency,
        mtu: MAX_PACKET_SIZE,
    }
}

/// Listens on `addr` and turns each accepted connection into an on-demand face.
pub async fn listen_tcp(
    addr: SocketAddr,
    inbound: InboundTx,
    opts: FaceOptions,
) -> crate::Result<Channel> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io_err("bind tcp", addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| io_err("local_addr", addr, e))?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let counters = Arc::new(ChannelCounters::default());
    let chan_counters = counters.clone();
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let Some(slot) = FaceSlot::take(&open, opts.limits.max_stream_faces) else {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%remote, "tcp channel full; connection refused");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().unwrap_or(bound);
                    let (r, w) = stream.into_split();
                    let m = meta(local, remote, Persistency::OnDemand);
                    let accepted = Accepted {
                        slot: Some(slot),
                        idle: (!remote.ip().is_loopback())
                            .then(|| (opts.limits.idle_timeout, counters.clone())),
                    };
                    if spawn_accepted_face(r, w, m, inbound.clone(), opts, accepted)
                        .await
                        .is_none()
                    {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(Channel::new(
        FaceUri::Tcp(bound).to_string(),
        Some(bound),
        cancel,
        None,
        chan_counters,
    ))
}

/// Connects to a remote forwarder and starts a persistent face.
pub async fn connect_tcp(
    remote: SocketAddr,
    inbound: InboundTx,
    opts: FaceOptions,
) -> crate::Result<FaceToken> {
    let stream = TcpStream::connect(remote)
        .await
        .map_err(|e| io_err("connect tcp", remote, e))?;
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map_err(|e| io_err("local_addr", remote, e))?;
    let (r, w) = stream.into_split();
    spawn_stream_face(
        r,
        w,
        meta(local, remote, Persistency::Persistent),
        inbound,
        opts,
    )
    .await
    .ok_or_else(|| io_err("start face", remote, std::io::ErrorKind::BrokenPipe.into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::link::Inbound;

    #[tokio::test]
    async fn loopback_peer_is_local_and_packets_flow_both_ways() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let ch = listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            tx.clone(),
            FaceOptions::default(),
        )
        .await
        .unwrap();
        let addr = ch.local_addr().unwrap();
        let out = connect_tcp(addr, tx, FaceOptions::default()).await.unwrap();
        let mut opened = Vec::new();
        while opened.len() < 2 {
            if let Some(Inbound::Opened { face, meta, tx }) = rx.recv().await {
                assert!(meta.local);
                opened.push((face, meta, tx));
            }
        }
        let (_, _, out_tx) = opened.iter().find(|(f, _, _)| *f == out).unwrap();
        out_tx.send(bytes::Bytes::from_static(&[5, 1, 0]));
        match rx.recv().await {
            Some(Inbound::Packets { face, packets }) => {
                assert_ne!(face, out);
                assert_eq!(&packets[0][..], &[5, 1, 0]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            FaceUri::parse("tcp4://127.0.0.1:1").unwrap(),
            FaceUri::Tcp(_)
        ));
    }

    #[tokio::test]
    async fn connections_beyond_the_face_limit_are_refused_and_counted() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let opts = FaceOptions {
            limits: crate::ChannelLimits {
                max_stream_faces: 1,
                ..crate::ChannelLimits::default()
            },
            ..FaceOptions::default()
        };
        let ch = listen_tcp("127.0.0.1:0".parse().unwrap(), tx, opts)
            .await
            .unwrap();
        let addr = ch.local_addr().unwrap();
        let _first = TcpStream::connect(addr).await.unwrap();
        // The runtime holds the send handle; without it the face would end at once.
        let Some(Inbound::Opened { tx: _tx, .. }) = rx.recv().await else {
            panic!("expected Opened");
        };
        let mut second = TcpStream::connect(addr).await.unwrap();
        // The listener closes the refused connection at once.
        let mut b = [0u8; 1];
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), second.read(&mut b))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(ChannelCounters::get(&ch.counters().refused), 1);
    }
}
