//! Producer library: register a prefix, answer Interests, sign, encrypt and segment Data.
//!
//! A [`Producer`] answers Interests arriving on [`amicn_face::client::Client`] connections
//! (registered with a forwarder, or direct). It answers, in order:
//! segments of objects published with [`Producer::publish`] (versioned, segmented, FinalBlockId
//! on every segment, signed eagerly or on the fly when first asked for), `32=metadata` and
//! CanBePrefix discovery of an object's latest version, any Data held in its [`Store`] (so a
//! repeated Interest is answered without calling the application again), and finally the
//! application's [`Handler`]. Every Data it emits is signed by its [`Signer`] (Ed25519 by
//! default, DigestSha256 on request) and optionally encrypted by an [`Encryptor`]. The PitToken
//! of each Interest is echoed on its Data so the producer also works behind NDN-DPDK-style
//! forwarders. Key material and envelopes come from `kms`; this crate only drives them.

// Errors name the Data or Interest involved; `Name` keeps its components inline by design and
// errors are the cold path, so they are not boxed.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

mod object;
mod signer;
mod store;

pub use object::{Object, PublishOptions, metadata_component, segment_count};
pub use signer::{DigestSigner, EcdsaSigner, Ed25519Signer, HmacSigner, Signer};
pub use store::{MemoryStore, Store};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use amicn_face::client::{Client, ClientError, IncomingInterest};
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;

/// What can go wrong while producing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The forwarder connection failed or refused a registration.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A packet could not be encoded.
    #[error("encoding Data {name}: {source}")]
    Encode {
        /// Name of the Data.
        name: Name,
        /// Codec error.
        source: amicn_tlv::Error,
    },
    /// Encrypting content failed.
    #[error("encrypting content of {name}: {why}")]
    Encrypt {
        /// Name of the Data.
        name: Name,
        /// Why.
        why: String,
    },
    /// Publishing options are unusable.
    #[error("invalid publish options: {0}")]
    Options(&'static str),
}

/// `Result` with the producer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Encrypts Data content under a named key (an envelope from `kms`).
pub trait Encryptor: Send + Sync {
    /// Returns the encrypted content for the Data named `name` (the name is bound as AAD).
    fn encrypt(&self, name: &Name, plaintext: &[u8]) -> std::result::Result<Bytes, String>;
}

/// The `kms` content envelope (XChaCha20-Poly1305 under a named, epoch-versioned key).
impl Encryptor for amicn_kms::envelope::EnvelopeKey {
    fn encrypt(&self, name: &Name, plaintext: &[u8]) -> std::result::Result<Bytes, String> {
        self.seal(name, plaintext).map_err(|e| e.to_string())
    }
}

/// Application callback: given an Interest no stored Data answers, return an unsigned Data
/// (name, MetaInfo, content) or `None` to stay silent. The producer signs and stores it.
pub type Handler = Arc<dyn Fn(&Interest) -> Option<Data> + Send + Sync>;

/// Serves named data; one producer can answer on several connections at once.
pub struct Producer {
    signer: Arc<dyn Signer>,
    encryptor: Option<Arc<dyn Encryptor>>,
    store: Arc<dyn Store>,
    objects: RwLock<HashMap<Name, Arc<Object>>>,
    /// Unversioned object prefix → versioned names, latest last.
    latest: RwLock<BTreeMap<Name, Name>>,
    /// Application handlers: prefix, handler, and whether its answers are kept in the store.
    handlers: RwLock<Vec<(Name, Handler, bool)>>,
    freshness_ms: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("freshness_ms", &self.freshness_ms)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer that signs with `signer` and keeps answers in a [`MemoryStore`].
    pub fn new(signer: Arc<dyn Signer>) -> Arc<Producer> {
        Producer::with_store(signer, Arc::new(MemoryStore::default()))
    }

    /// A producer with a caller-provided [`Store`] (for example a durable repository).
    pub fn with_store(signer: Arc<dyn Signer>, store: Arc<dyn Store>) -> Arc<Producer> {
        Arc::new(Producer {
            signer,
            encryptor: None,
            store,
            objects: RwLock::new(HashMap::new()),
            latest: RwLock::new(BTreeMap::new()),
            handlers: RwLock::new(Vec::new()),
            freshness_ms: 10_000,
        })
    }

    /// A producer that also encrypts every Data it signs with `encryptor` (for example a
    /// `kms` envelope key), so content is only readable by holders of that key.
    pub fn encrypting(
        signer: Arc<dyn Signer>,
        store: Arc<dyn Store>,
        encryptor: Arc<dyn Encryptor>,
    ) -> Arc<Producer> {
        let mut p = Producer::with_store(signer, store);
        if let Some(inner) = Arc::get_mut(&mut p) {
            inner.encryptor = Some(encryptor);
        }
        p
    }

    /// The store holding Data this producer has answered with.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Publishes `content` as a versioned, segmented object under `prefix` and returns the
    /// versioned name. Segments are signed now (`opts.sign_eagerly`) or when first requested.
    pub fn publish(&self, prefix: &Name, content: Bytes, opts: &PublishOptions) -> Result<Name> {
        let object = Arc::new(Object::new(
            prefix,
            content,
            opts,
            self.signer.clone(),
            self.encryptor.clone(),
        )?);
        if opts.sign_eagerly {
            object.sign_all(opts.signing_threads)?;
        }
        let versioned = object.versioned_name().clone();
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(versioned.clone(), object);
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(prefix.clone(), versioned.clone());
        Ok(versioned)
    }

    /// Adds an application handler for Interests under `prefix` (longest prefix wins).
    /// Answers are kept in the store, so a repeated Interest is answered without the handler.
    pub fn on_interest(&self, prefix: Name, handler: Handler) {
        self.add_handler(prefix, handler, true);
    }

    /// Adds a handler for requests (e.g. signed command Interests) whose answers are computed
    /// for each Interest and never stored: a repeated Interest reaches the handler again, which
    /// can then refuse it as a replay.
    pub fn on_request(&self, prefix: Name, handler: Handler) {
        self.add_handler(prefix, handler, false);
    }

    fn add_handler(&self, prefix: Name, handler: Handler, keep: bool) {
        let mut hs = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        hs.retain(|(p, _, _)| *p != prefix);
        hs.push((prefix, handler, keep));
    }

    /// Signs (and encrypts, if configured) an unsigned Data and returns its wire encoding.
    pub fn sign_data(&self, mut data: Data) -> Result<Bytes> {
        if let Some(enc) = &self.encryptor {
            data.content =
                enc.encrypt(&data.name, &data.content)
                    .map_err(|why| Error::Encrypt {
                        name: data.name.clone(),
                        why,
                    })?;
        }
        signer::sign(&*self.signer, data)
    }

    /// Registers `prefix` with the forwarder on `client` and answers Interests under it until
    /// the connection closes. Runs `workers` concurrent answering tasks (signing is CPU work).
    pub async fn serve(
        self: &Arc<Self>,
        client: &Client,
        prefix: Name,
        workers: usize,
    ) -> Result<()> {
        let rx = client.register(prefix).await?;
        self.run(client, rx, workers).await;
        Ok(())
    }

    /// Answers Interests under `prefix` arriving on a direct connection (no registration).
    pub async fn serve_local(self: &Arc<Self>, client: &Client, prefix: Name, workers: usize) {
        let rx = client.serve_local(prefix);
        self.run(client, rx, workers).await;
    }

    /// Answers Interests under `prefix` on the connection's reader task itself, with no
    /// hand-off to worker tasks: the fastest path, for producers whose answers are already
    /// signed (objects published with `sign_eagerly`, stored Data). Application handlers and
    /// on-the-fly signing would stall the connection there; use [`Producer::serve`] for those.
    pub async fn serve_inline(
        self: &Arc<Self>,
        client: &Client,
        prefix: Name,
        announce: bool,
    ) -> Result<()> {
        let me = self.clone();
        let handler: amicn_face::client::InlineHandler = Arc::new(move |i: &Interest| me.answer(i));
        client.serve_inline(prefix, handler, announce).await?;
        Ok(())
    }

    /// Answers Interests from `rx` on `client` with `workers` tasks until `rx` ends.
    pub async fn run(
        self: &Arc<Self>,
        client: &Client,
        rx: tokio::sync::mpsc::Receiver<IncomingInterest>,
        workers: usize,
    ) {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // A JoinSet, so that dropping this future (a caller aborting it) ends the workers and
        // the connection handles they hold.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let me = self.clone();
            let rx = rx.clone();
            let client = client.clone();
            tasks.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(incoming) = next else { break };
                    if let Some(wire) = me.answer(&incoming.interest)
                        && client
                            .put_data(wire, incoming.pit_token.as_ref())
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The encoded Data answering `interest`, if this producer has one. Public so that
    /// other transports (and tests) can drive the producer without a forwarder.
    pub fn answer(&self, interest: &Interest) -> Option<Bytes> {
        match self.answer_inner(interest) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("cannot answer {}: {e}", interest.name);
                None
            }
        }
    }

    fn answer_inner(&self, interest: &Interest) -> Result<Option<Bytes>> {
        let name = &interest.name;
        // 1. A segment of a published object: /<versioned>/seg=N.
        if name.len() >= 2 {
            let versioned = name.prefix(name.len() - 1);
            let seg = name.get(name.len() - 1).and_then(|c| c.as_segment());
            if let Some(seg) = seg {
                let object = self
                    .objects
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&versioned)
                    .cloned();
                if let Some(object) = object {
                    return object.segment(seg);
                }
            }
        }
        // 2. `32=metadata` discovery (ndnget / ndn-cxx RDR convention).
        if let Some(last) = name.get(name.len().wrapping_sub(1))
            && last == metadata_component()
        {
            let prefix = name.prefix(name.len() - 1);
            let versioned = self
                .latest
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&prefix)
                .cloned();
            if let Some(versioned) = versioned {
                let data = object::metadata_data(name, &versioned);
                return signer::sign(&*self.signer, data).map(Some);
            }
        }
        // 3. CanBePrefix discovery of the latest version of an object.
        if interest.can_be_prefix {
            let found = {
                let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
                latest
                    .iter()
                    .filter(|(p, v)| {
                        name.is_prefix_of(p) || (p.is_prefix_of(name) && name.is_prefix_of(v))
                    })
                    .map(|(_, v)| v.clone())
                    .max()
            };
            if let Some(versioned) = found {
                let object = self
                    .objects
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&versioned)
                    .cloned();
                if let Some(object) = object {
                    return object.segment(0);
                }
            }
        }
        // 4. Data answered before.
        if let Some(wire) = self.store.find(interest) {
            return Ok(Some(wire));
        }
        // 5. The application.
        let handler = {
            let hs = self.handlers.read().unwrap_or_else(|e| e.into_inner());
            hs.iter()
                .filter(|(p, _, _)| p.is_prefix_of(name))
                .max_by_key(|(p, _, _)| p.len())
                .map(|(_, h, keep)| (h.clone(), *keep))
        };
        let Some((handler, keep)) = handler else {
            return Ok(None);
        };
        let Some(mut data) = handler(interest) else {
            return Ok(None);
        };
        if data.meta_info.freshness_period_ms.is_none() {
            data.meta_info.freshness_period_ms = Some(self.freshness_ms);
        }
        let wire = self.sign_data(data)?;
        if keep && let Ok(decoded) = Data::decode(wire.clone()) {
            self.store.insert(decoded);
        }
        Ok(Some(wire))
    }
}
