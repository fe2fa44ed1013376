//! Forwarder connections: connecting, serving pre-signed Data with a producer, fetching.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amicn_consumer::{Consumer, ConsumerOptions};
use amicn_face::client::{Client, ClientOptions, TransportUri};
use amicn_kms::identity::KeyPair;
use amicn_producer::{Handler, MemoryStore, Producer, Signer, Store};
use amicn_tlv::{Data, Interest, Name, SignatureInfo};
use bytes::Bytes;

use crate::error::Result;

/// NFD route flag Capture.
const ROUTE_FLAG_CAPTURE: u64 = 2;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// SignatureTime for the next signed Interest of this process: the clock in milliseconds, but
/// always after the previous one, since a verifier accepts a key's times only in increasing
/// order (two requests within one millisecond would otherwise look like a replay).
pub(crate) fn signature_time() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Connects a role to its forwarder at `uri`.
pub async fn connect(uri: &TransportUri) -> Result<Client> {
    Ok(Client::connect(uri, ClientOptions::default()).await?)
}

/// A consumer with the retransmission settings the AMI roles use on a local forwarder.
pub(crate) fn consumer(client: &Client, lifetime: Duration, retries: u32) -> Consumer {
    Consumer::new(client.clone()).with_options(ConsumerOptions {
        max_retries: retries,
        lifetime,
    })
}

/// Fetches one Data by exact name (no verification; callers verify with [`crate::Trust`]).
pub(crate) async fn fetch_exact(c: &Consumer, name: Name) -> Result<Data> {
    Ok(c.fetch_unverified(Interest::new(name)).await?)
}

/// Lets the producer library sign with a KMS identity key (SignatureEd25519, KeyLocator = key
/// name), so every role signs through one key type.
pub(crate) struct KeyPairSigner(pub(crate) Arc<KeyPair>);

impl Signer for KeyPairSigner {
    fn signature_info(&self) -> SignatureInfo {
        self.0.signature_info()
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        self.0.sign(signed_portion).to_vec()
    }
}

/// The producer's store, counting which kinds of Data it answered (to compare the KMS's own
/// egress with what meters fetched through the forwarder).
struct CountingStore {
    inner: MemoryStore,
    classify: fn(&Name) -> &'static str,
    served: Mutex<HashMap<&'static str, u64>>,
}

impl Store for CountingStore {
    fn insert(&self, data: Data) {
        self.inner.insert(data);
    }

    fn find(&self, interest: &Interest) -> Option<Bytes> {
        let found = self.inner.find(interest);
        if found.is_some() {
            let kind = (self.classify)(&interest.name);
            *self
                .served
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(kind)
                .or_insert(0) += 1;
        }
        found
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

/// Serves Data under one or more registered prefixes: pre-signed packets put into its store,
/// plus optional handlers for Interests that need an answer computed on demand.
#[derive(Clone)]
pub struct Publisher {
    producer: Arc<Producer>,
    store: Arc<CountingStore>,
    client: Client,
    published: Arc<AtomicU64>,
    /// The answering tasks of served prefixes (each holds a clone of the connection).
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stored", &self.store.len())
            .finish_non_exhaustive()
    }
}

fn no_class(_: &Name) -> &'static str {
    "data"
}

impl Publisher {
    /// A publisher on `client` whose handler answers are signed with `key`; `classify` labels
    /// the Interests its store answers (see [`Publisher::served`]).
    pub fn new(
        client: &Client,
        key: Arc<KeyPair>,
        classify: Option<fn(&Name) -> &'static str>,
    ) -> Self {
        Self::with_capacity(client, key, classify, 1 << 20)
    }

    /// Like [`Publisher::new`], keeping at most `capacity` packets (oldest dropped first).
    pub fn with_capacity(
        client: &Client,
        key: Arc<KeyPair>,
        classify: Option<fn(&Name) -> &'static str>,
        capacity: usize,
    ) -> Self {
        let store = Arc::new(CountingStore {
            inner: MemoryStore::with_capacity(capacity),
            classify: classify.unwrap_or(no_class),
            served: Mutex::new(HashMap::new()),
        });
        let producer = Producer::with_store(Arc::new(KeyPairSigner(key)), store.clone());
        Publisher {
            producer,
            store,
            client: client.clone(),
            published: Arc::new(AtomicU64::new(0)),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn track(&self, h: tokio::task::JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h.abort_handle());
    }

    /// Stops answering: ends every answering task, releasing their hold on the connection (it
    /// closes, and the forwarder drops the registrations, once the owner's handle goes too).
    pub fn shutdown(&self) {
        for h in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }

    /// Registers `prefix` with the forwarder and answers Interests under it in the background.
    /// Returns once the forwarder accepted the registration.
    pub async fn serve(&self, prefix: Name) -> Result<()> {
        let rx = self.client.register(prefix).await?;
        let producer = self.producer.clone();
        let client = self.client.clone();
        self.track(tokio::spawn(async move {
            let _ = producer.run(&client, rx, 2).await;
        }));
        Ok(())
    }

    /// Registers `prefix` with NFD's Capture flag, so the forwarder does not also send its
    /// Interests to routes of shorter prefixes (ChildInherit): this publisher alone answers
    /// under it. Returns once the forwarder accepted the registration.
    pub async fn serve_captured(&self, prefix: Name) -> Result<()> {
        let rx = self.client.serve_local(prefix.clone());
        let cp = amicn_tlv::mgmt::ControlParameters {
            name: Some(prefix.clone()),
            origin: Some(0),
            cost: Some(0),
            flags: Some(ROUTE_FLAG_CAPTURE),
            ..Default::default()
        };
        self.client
            .command("rib/register", &cp.encode(), &prefix)
            .await?;
        let producer = self.producer.clone();
        let client = self.client.clone();
        self.track(tokio::spawn(async move {
            let _ = producer.run(&client, rx, 2).await;
        }));
        Ok(())
    }

    /// Installs a handler for requests under `prefix` (signed Interests): answered afresh for
    /// every Interest, never from the store.
    pub(crate) fn on_interest(&self, prefix: Name, handler: Handler) {
        self.producer.on_request(prefix, handler);
    }

    /// The stored Data (or handler answer) for `interest`, if any, without a forwarder.
    pub(crate) fn answer(&self, interest: &Interest) -> Option<Bytes> {
        self.producer.answer(interest)
    }

    /// Adds an already signed Data (its wire encoding) to the store.
    pub fn put_wire(&self, wire: Bytes) -> Result<Data> {
        let data = Data::decode(wire)?;
        self.store.insert(data.clone());
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(data)
    }

    /// Adds an already signed Data that must stay served however much else is published
    /// after it (the publisher's own certificate: evicting it would leave every consumer that
    /// has not cached it unable to verify anything this publisher signs).
    pub fn pin_wire(&self, wire: Bytes) -> Result<Data> {
        let data = Data::decode(wire)?;
        self.store.inner.pin(data.clone());
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(data)
    }

    /// Packets put into the store.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Interests answered from the store, by kind.
    pub fn served(&self) -> HashMap<&'static str, u64> {
        self.store
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The forwarder connection.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Content bytes per segment of a segmented object (leaves room for name and signature within
/// the 8800-byte packet limit).
pub(crate) const SEGMENT_SIZE: usize = 7_000;

/// Splits `content` into Data `<prefix>/seg=<k>`, each with FinalBlockId and signed by `key`.
/// An empty object is one empty segment.
pub(crate) fn segment_object(
    prefix: &Name,
    content: &[u8],
    freshness_ms: u64,
    key: &KeyPair,
) -> Result<Vec<Bytes>> {
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![&[][..]]
    } else {
        content.chunks(SEGMENT_SIZE).collect()
    };
    let last = amicn_tlv::Component::segment(chunks.len() as u64 - 1);
    let mut out = Vec::with_capacity(chunks.len());
    for (k, c) in chunks.iter().enumerate() {
        let mut d = Data::new(
            prefix.append(amicn_tlv::Component::segment(k as u64)),
            Bytes::copy_from_slice(c),
        );
        d.meta_info.freshness_period_ms = Some(freshness_ms);
        d.meta_info.final_block_id = Some(last.clone());
        out.push(key.sign_data(&mut d)?);
    }
    Ok(out)
}

/// Most segments a segmented AMI object may have (a 100,000-meter rekey is far below).
const MAX_SEGMENTS: u64 = 4_096;

/// Fetches every segment of `<prefix>/seg=<k>`, validating each against the trust policy
/// before using anything in it (FinalBlockId included), and returns the concatenated content.
/// A segment that fails validation is counted in `bad` and fetched again with MustBeFresh, so a
/// forged packet in a cache does not stop the fetch.
pub(crate) async fn fetch_segmented(
    c: &Consumer,
    trust: &crate::pki::Trust,
    prefix: &Name,
    bad: &AtomicU64,
) -> Result<(Vec<u8>, amicn_kms::trust::Validated)> {
    let mut out = Vec::new();
    let mut k = 0u64;
    let mut last: Option<u64> = None;
    let mut first = None;
    loop {
        let name = prefix.append(amicn_tlv::Component::segment(k));
        let (d, v) = fetch_validated(c, trust, name, bad).await?;
        let first_v = first.get_or_insert(v);
        let fb = d
            .meta_info
            .final_block_id
            .as_ref()
            .and_then(amicn_tlv::Component::as_segment)
            .ok_or_else(|| crate::AmiError::protocol(&d.name, "segment without FinalBlockId"))?;
        if fb >= MAX_SEGMENTS || last.is_some_and(|l| l != fb) {
            return Err(crate::AmiError::protocol(
                &d.name,
                "FinalBlockId changes between segments or is too large",
            ));
        }
        last = Some(fb);
        out.extend_from_slice(&d.content);
        if k >= fb {
            return Ok((out, first_v.clone()));
        }
        k += 1;
    }
}

/// Fetches `name` and validates it; a Data that fails validation is counted in `bad` and the
/// Interest sent again with MustBeFresh (past a poisoned cache entry), at most twice.
pub(crate) async fn fetch_validated(
    c: &Consumer,
    trust: &crate::pki::Trust,
    name: Name,
    bad: &AtomicU64,
) -> Result<(Data, amicn_kms::trust::Validated)> {
    let mut last_err = None;
    for attempt in 0..3 {
        let mut i = Interest::new(name.clone());
        i.must_be_fresh = attempt > 0;
        let d = c.fetch_unverified(i).await?;
        match trust.verify_data(&d).await {
            Ok(v) => return Ok((d, v)),
            Err(e) => {
                bad.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{}: failed validation ({e}); fetching again", d.name);
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| crate::AmiError::protocol(&name, "validation failed")))
}
