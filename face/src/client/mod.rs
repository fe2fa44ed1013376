//! The application side of a face: how a producer or consumer reaches its forwarder.
//!
//! A [`Client`] owns one connection (Unix, TCP or UDP) to a forwarder, found the way NDN users
//! expect (`NDN_CLIENT_TRANSPORT`, `client.conf` `transport=`, then the default Unix socket
//! `/run/nfd/nfd.sock` with the fallbacks python-ndn and NDNts use). It multiplexes many
//! outstanding Interests over that connection: every Interest goes out in an LpPacket carrying a
//! PitToken the client chose, and the Data or Nack that comes back is routed to its waiting task by
//! that token, or by name when the forwarder did not echo it. Interests arriving from the forwarder
//! are handed to the handler registered for the longest matching prefix. Prefixes are registered
//! through NFD's management protocol (`/localhost/nfd/rib/register`, v0.3 signed Interest with
//! DigestSha256) and registered again after every reconnect.

// Errors and replies carry a `Name`, which keeps its components inline by design; they are on the
// cold path (timeouts, refusals) or moved once per packet, so boxing would only add allocations.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amicn_tlv::{Component, Data, Interest, NackReason, Name, NetPacket, tt};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

mod connection;
mod multiplexing;
mod transport;

use connection::{Conn, open, run_connection};
pub use transport::{
    DEFAULT_PORT, DEFAULT_UNIX_PATH, FALLBACK_UNIX_PATHS, TransportUri, default_transport,
    resolve_transport,
};

/// Largest packet accepted from the forwarder (NDN practical limit plus LpPacket headroom).
const MAX_PACKET: usize = 8800 + 1024;

/// What went wrong talking to the forwarder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The transport URI could not be understood.
    #[error(
        "invalid transport URI {uri:?}: {why} (expected unix:///path, tcp://host[:port] or udp://host[:port])"
    )]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting to the forwarder failed.
    #[error(
        "cannot connect to forwarder at {uri}: {source} (is the forwarder running? set NDN_CLIENT_TRANSPORT or --connect)"
    )]
    Connect {
        /// The transport tried.
        uri: String,
        /// The socket error.
        source: io::Error,
    },
    /// The connection is gone and will not come back.
    #[error("connection to the forwarder is closed")]
    Closed,
    /// No Data or Nack arrived within the Interest lifetime.
    #[error("Interest {name} timed out")]
    Timeout {
        /// The Interest name.
        name: Name,
    },
    /// The forwarder refused a management command.
    #[error("forwarder refused {verb} of {prefix}: {code} {text}")]
    Command {
        /// Command verb (e.g. `rib/register`).
        verb: &'static str,
        /// Prefix concerned.
        prefix: Name,
        /// ControlResponse StatusCode.
        code: u64,
        /// ControlResponse StatusText.
        text: String,
    },
    /// A packet could not be encoded or decoded.
    #[error("packet encoding: {0}")]
    Tlv(#[from] amicn_tlv::Error),
}

/// Tunables of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Reconnect after the connection drops (with exponential backoff).
    pub reconnect: bool,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Outgoing queue length in packets.
    pub send_queue: usize,
    /// Queue length of each Interest handler.
    pub handler_queue: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            reconnect: true,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            send_queue: 4096,
            handler_queue: 4096,
        }
    }
}

/// What answered an Interest.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A Data packet.
    Data {
        /// The decoded Data (its wire bytes are kept inside).
        data: Data,
        /// CongestionMark carried in the LpPacket header (0 if none).
        congestion_mark: u64,
    },
    /// A network Nack.
    Nack {
        /// Why the network refused the Interest.
        reason: NackReason,
    },
}

/// An Interest delivered to a registered handler.
#[derive(Debug, Clone)]
pub struct IncomingInterest {
    /// The Interest.
    pub interest: Interest,
    /// The PitToken the forwarder attached, to be echoed on the answer.
    pub pit_token: Option<Bytes>,
}

/// Counters of one client connection.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// Packets written.
    pub tx_packets: AtomicU64,
    /// Packets read.
    pub rx_packets: AtomicU64,
    /// Data or Nack that matched no pending Interest.
    pub unsolicited: AtomicU64,
    /// Interests dropped because no handler matched or its queue was full.
    pub interests_dropped: AtomicU64,
    /// Packets that did not decode.
    pub malformed: AtomicU64,
    /// Successful (re)connections.
    pub connects: AtomicU64,
}

struct Pending {
    name: Name,
    can_be_prefix: bool,
    tx: oneshot::Sender<Reply>,
}

/// A synchronous Interest handler run on the connection's reader task: returns the encoded
/// answer, or `None` to stay silent. For cheap answers (lookups of pre-signed Data) only.
pub type InlineHandler = Arc<dyn Fn(&Interest) -> Option<Bytes> + Send + Sync>;

enum Sink {
    Queue(mpsc::Sender<IncomingInterest>),
    Inline(InlineHandler),
}

struct Handler {
    prefix: Name,
    sink: Sink,
    /// Registered with the forwarder (re-registered after reconnect) or local only.
    announce: bool,
}

struct Inner {
    pending: Mutex<HashMap<u64, Pending>>,
    handlers: RwLock<Vec<Handler>>,
    next_token: AtomicU64,
    out: mpsc::Sender<Outgoing>,
    connected: watch::Sender<bool>,
    closed: AtomicBool,
    /// Signalled when the last application handle is dropped: the connection closes.
    app_gone: tokio::sync::Notify,
    counters: ClientCounters,
    options: ClientOptions,
}

/// Shared by every application-held clone of a [`Client`]; when the last one is dropped the
/// connection closes (internal tasks hold the connection state, not this handle).
struct AppHandle {
    inner: std::sync::Weak<Inner>,
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        if let Some(i) = self.inner.upgrade() {
            // A stored permit: the connection task sees it even if it is not waiting yet.
            i.app_gone.notify_one();
        }
    }
}

/// A connection from an application to its forwarder. Cheap to clone; all clones share it,
/// and it closes when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// `None` for the library's own short-lived handles (re-registration after reconnect).
    _app: Option<Arc<AppHandle>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connected", &*self.inner.connected.borrow())
            .finish()
    }
}

impl Client {
    /// Connects to the forwarder found by [`default_transport`].
    pub async fn connect_default() -> Result<Client, ClientError> {
        Client::connect(&default_transport()?, ClientOptions::default()).await
    }

    /// Connects to the forwarder at `uri`. Fails if the first connection attempt fails; after
    /// that, lost connections are re-established in the background when `options.reconnect`.
    pub async fn connect(
        uri: &TransportUri,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let conn = open(uri).await?;
        let (client, rx) = Client::new_inner(options);
        let inner = client.inner.clone();
        let uri = uri.clone();
        tokio::spawn(async move { run_connection(inner, Some(uri), conn, rx).await });
        Ok(client)
    }

    /// Wraps an already connected byte stream (a socket accepted by a listener, or an in-memory
    /// pipe in tests). There is no reconnect: when the stream ends the client is closed.
    pub fn from_stream<S>(stream: S, options: ClientOptions) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let (client, rx) = Client::new_inner(ClientOptions {
            reconnect: false,
            ..options
        });
        let inner = client.inner.clone();
        tokio::spawn(async move {
            run_connection(inner, None, Conn::Stream(Box::new(r), Box::new(w)), rx).await
        });
        client
    }

    fn new_inner(options: ClientOptions) -> (Client, mpsc::Receiver<Outgoing>) {
        let (out, rx) = mpsc::channel(options.send_queue.max(1));
        let (connected, _) = watch::channel(true);
        let seed = rand::random::<u64>() & 0xFFFF_FFFF_0000_0000;
        let inner = Inner {
            pending: Mutex::new(HashMap::new()),
            handlers: RwLock::new(Vec::new()),
            next_token: AtomicU64::new(seed),
            out,
            connected,
            closed: AtomicBool::new(false),
            app_gone: tokio::sync::Notify::new(),
            counters: ClientCounters::default(),
            options,
        };
        let inner = Arc::new(inner);
        let app = Arc::new(AppHandle {
            inner: Arc::downgrade(&inner),
        });
        (
            Client {
                inner,
                _app: Some(app),
            },
            rx,
        )
    }

    /// Counters of this connection.
    pub fn counters(&self) -> &ClientCounters {
        &self.inner.counters
    }

    /// True while the connection is up.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Sends already encoded bytes (a bare packet or an LpPacket) to the forwarder.
    pub async fn send_raw(&self, wire: Bytes) -> Result<(), ClientError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(ClientError::Closed);
        }
        self.send_parts(None, wire).await
    }

    async fn send_parts(&self, head: Option<Bytes>, body: Bytes) -> Result<(), ClientError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(ClientError::Closed);
        }
        self.inner
            .out
            .send(Outgoing { head, body })
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Sends an Interest and waits for its Data or Nack, at most the Interest lifetime.
    /// Dropping the returned future withdraws the Interest from the pending table.
    pub async fn express(&self, interest: &Interest) -> Result<Reply, ClientError> {
        let wire = interest.encode();
        self.express_wire(
            &interest.name,
            interest.can_be_prefix,
            wire,
            interest.lifetime(),
        )
        .await
    }

    /// Like [`Client::express`] for an Interest already encoded to `wire` (name and
    /// CanBePrefix are what replies are matched against when the forwarder drops the PitToken).
    pub async fn express_wire(
        &self,
        name: &Name,
        can_be_prefix: bool,
        wire: Bytes,
        lifetime: Duration,
    ) -> Result<Reply, ClientError> {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(
            token,
            Pending {
                name: name.clone(),
                can_be_prefix,
                tx,
            },
        );
        let guard = PendingGuard {
            inner: &self.inner,
            token,
        };
        let lp = lp_wrap(&token.to_be_bytes(), &wire);
        self.send_raw(lp).await?;
        let res = match tokio::time::timeout(lifetime, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout { name: name.clone() }),
        };
        drop(guard);
        res
    }

    /// Answers an Interest with an encoded Data, echoing the PitToken it came with.
    pub async fn put_data(
        &self,
        data_wire: Bytes,
        pit_token: Option<&Bytes>,
    ) -> Result<(), ClientError> {
        // The LpPacket header goes out as its own buffer so the Data bytes are never copied
        // just to prepend it.
        let head = pit_token.map(|t| lp_header(t, data_wire.len()));
        self.send_parts(head, data_wire).await
    }

    /// Answers an Interest with a network Nack.
    pub async fn put_nack(
        &self,
        interest: &Interest,
        reason: u64,
        pit_token: Option<&Bytes>,
    ) -> Result<(), ClientError> {
        let fragment = interest
            .wire()
            .cloned()
            .unwrap_or_else(|| interest.encode());
        let out = amicn_tlv::lp::wrap(
            &fragment,
            &amicn_tlv::lp::OutHeaders {
                pit_token: pit_token.map(|t| &t[..]),
                nack: Some(NackReason::from_code(reason)),
                ..Default::default()
            },
        );
        self.send_raw(out).await
    }

    /// Installs a handler for Interests under `prefix` without telling the forwarder (for a
    /// connection where the peer sends Interests directly, or a route configured elsewhere).
    pub fn serve_local(&self, prefix: Name) -> mpsc::Receiver<IncomingInterest> {
        self.add_handler(prefix, false)
    }

    fn add_handler(&self, prefix: Name, announce: bool) -> mpsc::Receiver<IncomingInterest> {
        let (tx, rx) = mpsc::channel(self.inner.options.handler_queue.max(1));
        self.install(prefix, Sink::Queue(tx), announce);
        rx
    }

    /// Answers Interests under `prefix` with `handler`, called on the reader task as each
    /// Interest arrives (no task hop); registers the prefix with the forwarder when `announce`.
    /// The answer is sent with the Interest's PitToken echoed.
    pub async fn serve_inline(
        &self,
        prefix: Name,
        handler: InlineHandler,
        announce: bool,
    ) -> Result<(), ClientError> {
        self.install(prefix.clone(), Sink::Inline(handler), announce);
        if announce {
            register_prefix(self, &prefix).await?;
        }
        Ok(())
    }

    fn install(&self, prefix: Name, sink: Sink, announce: bool) {
        let mut handlers = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        handlers.retain(|h| h.prefix != prefix);
        handlers.push(Handler {
            prefix,
            sink,
            announce,
        });
    }

    /// Registers `prefix` with the forwarder (`rib/register`) and returns the stream of
    /// Interests under it. The registration is repeated after every reconnect.
    pub async fn register(
        &self,
        prefix: Name,
    ) -> Result<mpsc::Receiver<IncomingInterest>, ClientError> {
        let rx = self.add_handler(prefix.clone(), true);
        register_prefix(self, &prefix).await?;
        Ok(rx)
    }

    /// Sends an NFD management command `/localhost/nfd/<verb>/<ControlParameters>` as a v0.3
    /// signed Interest (DigestSha256, SignatureNonce + SignatureTime) and returns the response
    /// status code and text, failing unless the code is below 400.
    pub async fn command(
        &self,
        verb: &'static str,
        control_parameters: &[u8],
        prefix: &Name,
    ) -> Result<(u64, String), ClientError> {
        let (name, wire) = make_command(verb, control_parameters)?;
        let reply = self
            .express_wire(&name, false, wire, Duration::from_secs(4))
            .await?;
        let data = match reply {
            Reply::Data { data, .. } => data,
            Reply::Nack { reason } => {
                return Err(ClientError::Command {
                    verb,
                    prefix: prefix.clone(),
                    code: 0,
                    text: format!("Nack {reason:?}"),
                });
            }
        };
        let (code, text) = parse_control_response(&data.content);
        if code >= 400 || code == 0 {
            return Err(ClientError::Command {
                verb,
                prefix: prefix.clone(),
                code,
                text,
            });
        }
        Ok((code, text))
    }

    /// Like [`Client::command`], returning the whole ControlResponse (with the completed
    /// ControlParameters, e.g. the FaceId `faces/create` assigned).
    pub async fn command_response(
        &self,
        verb: &'static str,
        control_parameters: &[u8],
        prefix: &Name,
    ) -> Result<amicn_tlv::mgmt::ControlResponse, ClientError> {
        let (name, wire) = make_command(verb, control_parameters)?;
        let reply = self
            .express_wire(&name, false, wire, Duration::from_secs(4))
            .await?;
        let fail = |code, text| ClientError::Command {
            verb,
            prefix: prefix.clone(),
            code,
            text,
        };
        let data = match reply {
            Reply::Data { data, .. } => data,
            Reply::Nack { reason } => return Err(fail(0, format!("Nack {reason:?}"))),
        };
        let resp = amicn_tlv::mgmt::ControlResponse::decode(data.content.clone())
            .map_err(|e| fail(0, format!("unreadable ControlResponse: {e}")))?;
        if resp.status_code >= 400 || resp.status_code == 0 {
            return Err(fail(resp.status_code, resp.status_text));
        }
        Ok(resp)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the connection state changes to `up`.
    pub async fn wait_connected(&self, up: bool) {
        let mut rx = self.inner.connected.subscribe();
        while *rx.borrow_and_update() != up {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

struct PendingGuard<'a> {
    inner: &'a Inner,
    token: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

async fn register_prefix(client: &Client, prefix: &Name) -> Result<(), ClientError> {
    let wrapped = amicn_tlv::mgmt::ControlParameters {
        name: Some(prefix.clone()),
        origin: Some(amicn_tlv::mgmt::ORIGIN_APP),
        cost: Some(0),
        flags: Some(amicn_tlv::mgmt::ROUTE_FLAG_CHILD_INHERIT),
        ..Default::default()
    }
    .encode();
    // A command Interest lost in flight is simply repeated (NFD's rib/register is idempotent).
    let mut last = ClientError::Closed;
    for _ in 0..3 {
        match client.command("rib/register", &wrapped, prefix).await {
            Ok(_) => return Ok(()),
            Err(e @ ClientError::Timeout { .. }) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Builds `/localhost/nfd/<verb>/<cp>/params-sha256=..` as a v0.3 signed Interest.
fn make_command(verb: &str, control_parameters: &[u8]) -> Result<(Name, Bytes), ClientError> {
    let mut name = Name::default()
        .append(Component::generic(Bytes::from_static(b"localhost")))
        .append(Component::generic(Bytes::from_static(b"nfd")));
    for part in verb.split('/') {
        name = name.append(Component::generic(Bytes::copy_from_slice(part.as_bytes())));
    }
    name = name.append(Component::generic(Bytes::copy_from_slice(
        control_parameters,
    )));

    let nonce: [u8; 8] = rand::random();
    let mut sig_info = BytesMut::new();
    encode_nni_tlv(&mut sig_info, tt::SIGNATURE_TYPE, 0); // DigestSha256
    encode_tlv(&mut sig_info, tt::SIGNATURE_NONCE, &nonce);
    encode_nni_tlv(&mut sig_info, tt::SIGNATURE_TIME, now_ms());
    let mut params = BytesMut::new();
    encode_tlv(&mut params, tt::APPLICATION_PARAMETERS, &[]);
    encode_tlv(&mut params, tt::INTEREST_SIGNATURE_INFO, &sig_info);

    // Signed portion: the name's components (without the digest) then AppParameters..SigInfo.
    let mut hasher = Sha256::new();
    hasher.update(name.value_wire());
    hasher.update(&params);
    let sig: [u8; 32] = hasher.finalize().into();
    encode_tlv(&mut params, tt::INTEREST_SIGNATURE_VALUE, &sig);
    let digest: [u8; 32] = Sha256::digest(&params).into();
    let full = name.append(Component::params_sha256_digest(digest));

    let mut body = BytesMut::new();
    full.encode(&mut body);
    encode_tlv(&mut body, tt::NONCE, &rand::random::<[u8; 4]>());
    encode_nni_tlv(&mut body, tt::INTEREST_LIFETIME, 4000);
    body.extend_from_slice(&params);
    let mut wire = BytesMut::new();
    encode_tlv(&mut wire, tt::INTEREST, &body);
    Ok((full, wire.freeze()))
}

/// StatusCode and StatusText of a ControlResponse; (0, "") if it does not parse.
pub fn parse_control_response(content: &Bytes) -> (u64, String) {
    match amicn_tlv::mgmt::ControlResponse::decode(content.clone()) {
        Ok(r) => (r.status_code, r.status_text),
        Err(_) => (0, String::new()),
    }
}

use amicn_tlv::{encode_nni_tlv, encode_tlv};

/// One queued write: an optional LpPacket header, then the packet bytes.
#[derive(Debug)]
struct Outgoing {
    head: Option<Bytes>,
    body: Bytes,
}

/// The bytes of an LpPacket carrying `pit_token` up to (and including) the Fragment's TLV-LENGTH;
/// the `packet_len` bytes of the fragment follow.
pub fn lp_header(pit_token: &[u8], packet_len: usize) -> Bytes {
    amicn_tlv::lp::pit_token_header(pit_token, packet_len)
}

/// Wraps an encoded network packet in an LpPacket carrying `pit_token`.
pub fn lp_wrap(pit_token: &[u8], packet: &[u8]) -> Bytes {
    let h = amicn_tlv::lp::OutHeaders {
        pit_token: Some(pit_token),
        ..Default::default()
    };
    let mut out = BytesMut::with_capacity(h.header_len(packet.len()) + packet.len());
    h.encode_header(&mut out, packet.len());
    out.extend_from_slice(packet);
    out.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::transport::transport_from_client_conf;
    use super::*;
    use amicn_tlv::TlvReader;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_transport_uris() {
        assert_eq!(
            "unix:///run/nfd/nfd.sock".parse::<TransportUri>().unwrap(),
            TransportUri::Unix("/run/nfd/nfd.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1".parse::<TransportUri>().unwrap(),
            TransportUri::Tcp("127.0.0.1:6363".into())
        );
        assert_eq!(
            "tcp://localhost:7000".parse::<TransportUri>().unwrap(),
            TransportUri::Tcp("localhost:7000".into())
        );
        assert_eq!(
            "udp://[::1]".parse::<TransportUri>().unwrap(),
            TransportUri::Udp("[::1]:6363".into())
        );
        assert_eq!(
            "udp://[::1]:9".parse::<TransportUri>().unwrap(),
            TransportUri::Udp("[::1]:9".into())
        );
        assert!("http://x".parse::<TransportUri>().is_err());
        assert!("tcp://".parse::<TransportUri>().is_err());
    }

    #[test]
    fn reads_client_conf_transport() {
        let dir = std::env::temp_dir().join(format!("amicn-clientconf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("client.conf");
        std::fs::write(
            &p,
            "; comment\nprotocol=nrd-0.1\ntransport=tcp4://10.0.0.1:6464\n",
        )
        .unwrap();
        assert_eq!(
            transport_from_client_conf(&p).as_deref(),
            Some("tcp4://10.0.0.1:6464")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lp_wrap_golden() {
        assert_eq!(
            lp_header(&[1, 2], 2).as_ref(),
            &[100, 8, 98, 2, 1, 2, 80, 2]
        );
        let w = lp_wrap(&[1, 2], &[5, 0]);
        assert_eq!(w.as_ref(), &[100, 8, 98, 2, 1, 2, 80, 2, 5, 0]);
    }

    #[test]
    fn control_response_parses() {
        let c = Bytes::from_static(&[101, 7, 102, 1, 200, 103, 2, b'O', b'K']);
        assert_eq!(parse_control_response(&c), (200, "OK".to_owned()));
        assert_eq!(parse_control_response(&Bytes::from_static(&[1, 2])).0, 0);
    }

    #[test]
    fn command_interest_is_v03_signed() {
        let (name, wire) = make_command("rib/register", &[104, 0]).unwrap();
        assert_eq!(name.len(), 6);
        let interest = Interest::decode(wire).unwrap();
        assert_eq!(interest.name, name);
        assert!(name.get(5).unwrap().is_params_digest());
        let si = interest.signature_info.clone().unwrap();
        assert_eq!(si.sig_type, 0);
        assert!(si.nonce.is_some() && si.time_ms.is_some());
        assert!(interest.check_params_digest());
        let expect: [u8; 32] = Sha256::digest(interest.signed_portion()).into();
        assert_eq!(interest.signature_value.as_deref(), Some(&expect[..]));
    }

    /// A forwarder stand-in: answers every `rib/register` with 200 on each accepted
    /// connection, and closes the first connection right after answering.
    async fn fake_forwarder(
        listener: tokio::net::UnixListener,
        registered: mpsc::Sender<(usize, Name)>,
    ) {
        let mut conn_no = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            conn_no += 1;
            let mut buf = BytesMut::new();
            'conn: loop {
                if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    break;
                }
                while let Ok(Some(n)) = amicn_tlv::split_first_tlv(&buf) {
                    let rx = amicn_tlv::decode_packet(buf.split_to(n).freeze()).unwrap();
                    let NetPacket::Interest(i) = rx.packet else {
                        continue;
                    };
                    let cp = i.name.get(4).unwrap();
                    let params = TlvReader::new(Bytes::copy_from_slice(cp.value()))
                        .read()
                        .unwrap();
                    let first = TlvReader::new(params.value).read().unwrap();
                    let prefix = Name::from_value(first.value).unwrap();
                    let resp = Bytes::from_static(&[101, 7, 102, 1, 200, 103, 2, b'O', b'K']);
                    let mut d = Data::new(i.name.clone(), resp);
                    let wire = d.sign_digest_sha256();
                    let out = match &rx.lp.pit_token {
                        Some(t) => lp_wrap(t, &wire),
                        None => wire,
                    };
                    s.write_all(&out).await.unwrap();
                    registered.send((conn_no, prefix)).await.unwrap();
                    if conn_no == 1 {
                        break 'conn;
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn registers_again_after_reconnect() {
        let dir =
            std::env::temp_dir().join(format!("amicn-client-reconnect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fwd.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(fake_forwarder(listener, tx));
        let opts = ClientOptions {
            backoff_initial: Duration::from_millis(10),
            ..ClientOptions::default()
        };
        let client = Client::connect(&TransportUri::Unix(path.clone()), opts)
            .await
            .unwrap();
        let prefix: Name = "/meter/7".parse().unwrap();
        let _interests = client.register(prefix.clone()).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), (1, prefix.clone()));
        // The stand-in hangs up; the client reconnects and registers the prefix again.
        let again = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, (2, prefix));
        assert!(client.counters().connects.load(Ordering::Relaxed) >= 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn dropping_an_express_future_withdraws_the_interest() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let client = Client::from_stream(near, ClientOptions::default());
        let mut i = Interest::new("/never/answered".parse().unwrap());
        i.lifetime_ms = Some(60_000);
        let r = tokio::time::timeout(Duration::from_millis(50), client.express(&i)).await;
        assert!(r.is_err(), "nothing can answer this Interest");
        assert!(
            client.lock_pending().is_empty(),
            "a cancelled Interest stays pending"
        );
        // It did go out, wrapped with our PitToken.
        let mut buf = BytesMut::new();
        far.read_buf(&mut buf).await.unwrap();
        let rx = amicn_tlv::decode_packet(buf.freeze()).unwrap();
        assert_eq!(rx.lp.pit_token.map(|t| t.len()), Some(8));
        assert!(matches!(rx.packet, NetPacket::Interest(ref x) if x.name == i.name));
    }

    #[tokio::test]
    async fn aggregated_interests_are_all_answered_by_one_data() {
        // A forwarder keeps one in-record per face: identical Interests on one connection get
        // one Data carrying the last PitToken. Every one of them must complete, also when the
        // name ends in the Data's implicit digest.
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let client = Client::from_stream(near, ClientOptions::default());
        let mut d = Data::new("/m/r/seq=1".parse().unwrap(), Bytes::from_static(b"x"));
        let wire = d.sign_digest_sha256();
        let full = Data::decode(wire.clone()).unwrap().full_name();
        let c2 = client.clone();
        let asked = tokio::spawn(async move {
            let a = Interest::new(full.clone());
            let b = Interest::new(full);
            let (ra, rb) = tokio::join!(c2.express(&a), c2.express(&b));
            (ra.unwrap(), rb.unwrap())
        });
        let mut buf = BytesMut::new();
        let mut tokens = Vec::new();
        while tokens.len() < 2 {
            far.read_buf(&mut buf).await.unwrap();
            while let Ok(Some(n)) = amicn_tlv::split_first_tlv(&buf) {
                let rx = amicn_tlv::decode_packet(buf.split_to(n).freeze()).unwrap();
                if let NetPacket::Interest(_) = rx.packet {
                    tokens.push(rx.lp.pit_token.unwrap());
                }
            }
        }
        far.write_all(&lp_wrap(&tokens[1], &wire)).await.unwrap();
        let (ra, rb) = asked.await.unwrap();
        for r in [ra, rb] {
            assert!(matches!(r, Reply::Data { ref data, .. } if data.name == d.name));
        }
        assert_eq!(client.counters().unsolicited.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn nack_and_tokenless_data_reach_their_interests() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let client = Client::from_stream(near, ClientOptions::default());
        let c2 = client.clone();
        let asked = tokio::spawn(async move {
            let mut a = Interest::new("/a".parse().unwrap());
            a.can_be_prefix = true;
            let b = Interest::new("/b".parse().unwrap());
            let (ra, rb) = tokio::join!(c2.express(&a), c2.express(&b));
            (ra.unwrap(), rb.unwrap())
        });
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            far.read_buf(&mut buf).await.unwrap();
            while let Ok(Some(n)) = amicn_tlv::split_first_tlv(&buf) {
                let rx = amicn_tlv::decode_packet(buf.split_to(n).freeze()).unwrap();
                if let NetPacket::Interest(i) = rx.packet {
                    seen.push(i);
                }
            }
        }
        for i in seen {
            if i.name.to_string() == "/a" {
                // Answer without a PitToken, under a longer name: matched by CanBePrefix.
                let mut d = Data::new("/a/v=1".parse().unwrap(), Bytes::from_static(b"x"));
                far.write_all(&d.sign_digest_sha256()).await.unwrap();
            } else {
                let nack = amicn_tlv::encode_nack(i.encode(), NackReason::NoRoute, None);
                far.write_all(&nack).await.unwrap();
            }
        }
        let (ra, rb) = asked.await.unwrap();
        assert!(matches!(ra, Reply::Data { ref data, .. } if data.name.to_string() == "/a/v=1"));
        assert!(matches!(
            rb,
            Reply::Nack {
                reason: NackReason::NoRoute
            }
        ));
    }

    #[tokio::test]
    async fn inline_handler_answers_with_the_pit_token_echoed() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let client = Client::from_stream(near, ClientOptions::default());
        let handler: InlineHandler = Arc::new(|i: &Interest| {
            let mut d = Data::new(i.name.clone(), Bytes::from_static(b"ok"));
            Some(d.sign_digest_sha256())
        });
        client
            .serve_inline("/svc".parse().unwrap(), handler, false)
            .await
            .unwrap();
        let interest = Interest::new("/svc/x".parse().unwrap());
        far.write_all(&lp_wrap(&[7, 7, 7], &interest.encode()))
            .await
            .unwrap();
        // An Interest outside the prefix is not answered (and counted as dropped).
        far.write_all(&Interest::new("/other".parse().unwrap()).encode())
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        while amicn_tlv::split_first_tlv(&buf).unwrap().is_none() {
            far.read_buf(&mut buf).await.unwrap();
        }
        let rx = amicn_tlv::decode_packet(buf.freeze()).unwrap();
        assert_eq!(rx.lp.pit_token.as_deref(), Some(&[7u8, 7, 7][..]));
        assert!(matches!(rx.packet, NetPacket::Data(ref d) if d.name.to_string() == "/svc/x"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            client.counters().interests_dropped.load(Ordering::Relaxed),
            1
        );
    }
}
