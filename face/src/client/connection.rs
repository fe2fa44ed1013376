//! One connection to the forwarder: opening the socket the transport URI names, the read and
//! write loops, and reconnecting (with prefix re-registration) after the forwarder goes away.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::multiplexing::on_packet;
use super::*;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

pub(super) enum Conn {
    Stream(BoxRead, BoxWrite),
    Datagram(tokio::net::UdpSocket),
}

pub(super) async fn open(uri: &TransportUri) -> Result<Conn, ClientError> {
    let err = |source| ClientError::Connect {
        uri: uri.to_string(),
        source,
    };
    match uri {
        TransportUri::Unix(path) => {
            let s = tokio::net::UnixStream::connect(path).await.map_err(err)?;
            let (r, w) = s.into_split();
            Ok(Conn::Stream(Box::new(r), Box::new(w)))
        }
        TransportUri::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map_err(err)?;
            s.set_nodelay(true).map_err(err)?;
            let (r, w) = s.into_split();
            Ok(Conn::Stream(Box::new(r), Box::new(w)))
        }
        TransportUri::Udp(addr) => {
            let target = tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(err)?
                .next()
                .ok_or_else(|| {
                    err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "host has no address",
                    ))
                })?;
            let local = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = tokio::net::UdpSocket::bind(local).await.map_err(err)?;
            s.connect(target).await.map_err(err)?;
            Ok(Conn::Datagram(s))
        }
    }
}

pub(super) async fn run_connection(
    inner: Arc<Inner>,
    uri: Option<TransportUri>,
    first: Conn,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut conn = Some(first);
    let mut backoff = inner.options.backoff_initial;
    let mut first_time = true;
    loop {
        if let Some(c) = conn.take() {
            inner.counters.connects.fetch_add(1, Ordering::Relaxed);
            let _ = inner.connected.send(true);
            backoff = inner.options.backoff_initial;
            if !first_time {
                spawn_reregister(inner.clone());
            }
            first_time = false;
            let ended_by_app = drive(&inner, c, &mut rx).await;
            let _ = inner.connected.send(false);
            // Anything waiting on the old connection will never hear back; fail it now.
            inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            if ended_by_app || !inner.options.reconnect {
                break;
            }
        }
        let Some(uri) = uri.as_ref() else { break };
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(inner.options.backoff_max);
        if inner.out.is_closed() {
            break;
        }
        match open(uri).await {
            Ok(c) => conn = Some(c),
            Err(e) => tracing::debug!("reconnect to {uri} failed: {e}"),
        }
    }
    inner.closed.store(true, Ordering::Relaxed);
    rx.close();
}

fn spawn_reregister(inner: Arc<Inner>) {
    let prefixes: Vec<Name> = inner
        .handlers
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|h| h.announce)
        .map(|h| h.prefix.clone())
        .collect();
    if prefixes.is_empty() {
        return;
    }
    let client = Client { inner, _app: None };
    tokio::spawn(async move {
        for p in prefixes {
            if let Err(e) = register_prefix(&client, &p).await {
                tracing::warn!("re-registering {p} after reconnect failed: {e}");
            }
        }
    });
}

/// Runs one connection until it fails (false) or the application side is gone (true).
async fn drive(inner: &Arc<Inner>, conn: Conn, rx: &mut mpsc::Receiver<Outgoing>) -> bool {
    match conn {
        Conn::Stream(mut r, mut w) => {
            let reader = async {
                let mut buf = BytesMut::with_capacity(256 * 1024);
                loop {
                    if buf.capacity() - buf.len() < MAX_PACKET {
                        buf.reserve(256 * 1024);
                    }
                    match r.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    loop {
                        match amicn_tlv::split_first_tlv(&buf) {
                            Ok(Some(n)) if n <= buf.len() => {
                                let pkt = buf.split_to(n).freeze();
                                on_packet(inner, pkt);
                            }
                            Ok(_) => {
                                if buf.len() > 16 * MAX_PACKET {
                                    return;
                                }
                                break;
                            }
                            Err(_) => {
                                inner.counters.malformed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                }
            };
            let writer = async {
                let mut batch = Vec::with_capacity(256);
                let mut out = BytesMut::with_capacity(256 * 1024);
                loop {
                    if rx.recv_many(&mut batch, 256).await == 0 {
                        return true;
                    }
                    out.clear();
                    inner
                        .counters
                        .tx_packets
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for p in batch.drain(..) {
                        if let Some(h) = &p.head {
                            out.extend_from_slice(h);
                        }
                        out.extend_from_slice(&p.body);
                    }
                    if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
                        return false;
                    }
                }
            };
            tokio::select! {
                () = reader => false,
                app_gone = writer => app_gone,
                () = inner.app_gone.notified() => true,
            }
        }
        Conn::Datagram(sock) => {
            let reader = async {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv(&mut buf).await {
                        Ok(n) => on_packet(
                            inner,
                            Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()),
                        ),
                        Err(_) => return,
                    }
                }
            };
            let writer = async {
                while let Some(p) = rx.recv().await {
                    inner.counters.tx_packets.fetch_add(1, Ordering::Relaxed);
                    let datagram = match &p.head {
                        Some(h) => [h.as_ref(), p.body.as_ref()].concat().into(),
                        None => p.body,
                    };
                    if sock.send(&datagram).await.is_err() {
                        return false;
                    }
                }
                true
            };
            tokio::select! {
                () = reader => false,
                app_gone = writer => app_gone,
                () = inner.app_gone.notified() => true,
            }
        }
    }
}
