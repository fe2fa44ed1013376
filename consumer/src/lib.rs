//! Consumer library: express Interests with retransmission, fetch segmented objects, verify and decrypt.
//!
//! A [`Consumer`] sits on a [`amicn_face::client::Client`] connection. [`Consumer::fetch`]
//! sends one Interest, retransmits it (fresh Nonce) when it times out, turns a Nack into an
//! error naming the reason, checks the answer against the [`trust::Validator`] and decrypts its
//! content when a [`Decryptor`] knows the key. Dropping the future cancels the fetch.
//! [`Consumer::fetch_object`] finds the latest version of a segmented object (`32=metadata` or
//! CanBePrefix + MustBeFresh), then keeps a congestion window of segment Interests in flight
//! ([`cc::Aimd`] with an RFC 6298 retransmission timer), halving it on CongestionMark, Nack
//! Congestion or loss, verifies segments in batches and writes them in order.

// Errors name the Data or Interest involved; `Name` keeps its components inline by design and
// errors are the cold path, so they are not boxed.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod cc;
mod pipeline;
pub mod trust;

pub use pipeline::{Discovery, FetchOptions, FetchSummary, Progress};

use std::sync::Arc;
use std::time::Duration;

use amicn_face::client::{Client, ClientError, Reply};
use amicn_tlv::{Data, Interest, NackReason, Name};
use bytes::Bytes;

/// What can go wrong while fetching.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The forwarder connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No answer after every retransmission.
    #[error("no Data for {name} after {attempts} attempt(s) (is a producer serving this prefix?)")]
    Timeout {
        /// Interest name.
        name: Name,
        /// Interests sent.
        attempts: u32,
    },
    /// The network refused the Interest.
    #[error("Interest {name} was Nacked: {reason:?}")]
    Nack {
        /// Interest name.
        name: Name,
        /// Nack reason.
        reason: NackReason,
    },
    /// A signature does not verify.
    #[error(
        "signature of {name} does not verify (signer {signer}): the Data was altered or forged"
    )]
    BadSignature {
        /// Data name.
        name: Name,
        /// Key or signature kind involved.
        signer: String,
    },
    /// A segment announcing the end of the object fails verification: the fetch stops rather
    /// than end early on a forged FinalBlockId.
    #[error(
        "segment {name} says the object ends at segment {final_block}, but it fails verification ({source}): refusing a possibly forged FinalBlockId"
    )]
    UnverifiedFinalBlockId {
        /// Segment name.
        name: Name,
        /// The FinalBlockId segment number it carries.
        final_block: u64,
        /// Why verification failed.
        source: Box<Error>,
    },
    /// A segment kept failing verification after being fetched again.
    #[error(
        "{name} failed verification {attempts} time(s), fetched again each time with MustBeFresh: {source}"
    )]
    VerificationFailed {
        /// Segment name.
        name: Name,
        /// Copies received and refused.
        attempts: u32,
        /// Why the last copy was refused.
        source: Box<Error>,
    },
    /// The signer is not trusted by the policy.
    #[error(
        "Data {name} is signed by {signer}, which is not trusted: {why} (use --trust-anchor with the signer's certificate, or --no-verify)"
    )]
    Untrusted {
        /// Data name.
        name: Name,
        /// Key name or signature kind.
        signer: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// The trust policy does not let this signer sign this name.
    #[error(
        "{name} is signed by {signer}, which trust rule {rule:?} does not allow to sign it (wrong signer for the name)"
    )]
    SignerNotAllowed {
        /// Data (or certificate) name.
        name: Name,
        /// Its KeyLocator name.
        signer: String,
        /// The rule that matched the name.
        rule: String,
    },
    /// A certificate on the chain is outside its ValidityPeriod.
    #[error(
        "certificate {certificate} needed to verify {name} is outside its ValidityPeriod ({when})"
    )]
    CertificateExpired {
        /// Data being verified.
        name: Name,
        /// The certificate.
        certificate: Name,
        /// `expired at ...` or `not valid before ...`.
        when: String,
    },
    /// Refused by the trust policy for another reason.
    #[error("{name} refused by the trust policy: {reason}")]
    Refused {
        /// Packet or certificate name.
        name: Name,
        /// Why.
        reason: String,
    },
    /// The SignatureType is not supported.
    #[error("Data {name} has unsupported SignatureType {sig_type}")]
    UnsupportedSignature {
        /// Data name.
        name: Name,
        /// Its SignatureType.
        sig_type: u64,
    },
    /// A certificate is malformed.
    #[error("certificate {name}: {why}")]
    BadCertificate {
        /// Certificate name.
        name: Name,
        /// What is wrong.
        why: &'static str,
    },
    /// The signer's certificate could not be retrieved.
    #[error("cannot fetch certificate {certificate} needed to verify {name}: {why}")]
    CertificateFetch {
        /// Data being verified.
        name: Name,
        /// Certificate wanted.
        certificate: Name,
        /// Why the fetch failed.
        why: String,
    },
    /// Content could not be decrypted.
    #[error("cannot decrypt {name}: {why}")]
    Decrypt {
        /// Data name.
        name: Name,
        /// Why.
        why: String,
    },
    /// The producer answered something that breaks the segmentation conventions.
    #[error("{name}: {why}")]
    Protocol {
        /// Name involved.
        name: Name,
        /// What is wrong.
        why: &'static str,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with the consumer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Decrypts enveloped content (a `kms` envelope) when it knows the key.
pub trait Decryptor: Send + Sync {
    /// `Some(plaintext)` if `content` of Data `name` is an envelope this decryptor opens;
    /// `None` if the content is not encrypted (or not for a key it holds).
    fn decrypt(&self, name: &Name, content: &Bytes) -> Option<std::result::Result<Bytes, String>>;
}

/// Content keys this consumer holds: opens `kms` envelopes whose key name matches one of them.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<amicn_kms::envelope::EnvelopeKey>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds a content key.
    pub fn add(&mut self, key: amicn_kms::envelope::EnvelopeKey) {
        self.keys.push(key);
    }
}

impl Decryptor for KeyRing {
    fn decrypt(&self, name: &Name, content: &Bytes) -> Option<std::result::Result<Bytes, String>> {
        // Content that is not an envelope is plaintext; an envelope under a key we lack is
        // an error (the caller asked for decryption and cannot read the object).
        let envelope = amicn_kms::envelope::EncryptedContent::decode(content.clone()).ok()?;
        let Some(key) = self
            .keys
            .iter()
            .find(|k| *k.key_name() == envelope.key_name)
        else {
            return Some(Err(format!("no key {} in the key ring", envelope.key_name)));
        };
        Some(
            key.open(name, content)
                .map(|p| Bytes::copy_from_slice(&p))
                .map_err(|e| e.to_string()),
        )
    }
}

/// Retransmission settings for single fetches.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Retransmissions after the first Interest times out.
    pub max_retries: u32,
    /// InterestLifetime of each Interest.
    pub lifetime: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            max_retries: 3,
            lifetime: Duration::from_secs(4),
        }
    }
}

/// Fetches, verifies and decrypts named data over one forwarder connection.
#[derive(Clone)]
pub struct Consumer {
    client: Client,
    validator: Option<Arc<trust::Validator>>,
    decryptor: Option<Arc<dyn Decryptor>>,
    options: ConsumerOptions,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("validator", &self.validator)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer on `client` that does not verify signatures (see [`Consumer::with_trust`]).
    pub fn new(client: Client) -> Consumer {
        Consumer {
            client,
            validator: None,
            decryptor: None,
            options: ConsumerOptions::default(),
        }
    }

    /// Verifies every Data against `mode`; certificates are fetched over this connection. Any
    /// key may sign any name ([`Consumer::with_trust_policy`] adds name rules).
    pub fn with_trust(self, mode: trust::TrustMode, allow_digest: bool) -> Consumer {
        self.with_trust_policy(
            mode,
            allow_digest,
            amicn_kms::trust::TrustPolicy::any_signer(),
        )
    }

    /// Like [`Consumer::with_trust`], with `policy`'s name rules deciding which key may sign
    /// which Data and which issuer which certificate.
    pub fn with_trust_policy(
        mut self,
        mode: trust::TrustMode,
        allow_digest: bool,
        policy: amicn_kms::trust::TrustPolicy,
    ) -> Consumer {
        let client = self.client.clone();
        let fetcher: trust::CertFetcher = Arc::new(move |name: Name| {
            let c = Consumer::new(client.clone());
            Box::pin(async move {
                let mut i = Interest::new(name);
                i.can_be_prefix = true;
                c.fetch_unverified(i).await
            })
        });
        self.validator = Some(Arc::new(
            trust::Validator::new(mode, allow_digest)
                .with_policy(policy)
                .with_fetcher(fetcher),
        ));
        self
    }

    /// Opens enveloped content with `decryptor`.
    pub fn with_decryptor(mut self, decryptor: Arc<dyn Decryptor>) -> Consumer {
        self.decryptor = Some(decryptor);
        self
    }

    /// Sets retransmission options.
    pub fn with_options(mut self, options: ConsumerOptions) -> Consumer {
        self.options = options;
        self
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Fetches one Data: retransmits on timeout, fails on Nack, verifies and decrypts.
    pub async fn fetch(&self, interest: Interest) -> Result<Data> {
        let mut data = self.fetch_unverified(interest).await?;
        if let Some(v) = &self.validator {
            v.verify(std::slice::from_ref(&data)).await?;
        }
        if let Some(plain) = self.decrypt(&data)? {
            data.content = plain;
        }
        Ok(data)
    }

    /// Fetches one Data with retransmission and Nack handling but no verification.
    pub async fn fetch_unverified(&self, mut interest: Interest) -> Result<Data> {
        if interest.lifetime_ms.is_none() {
            interest.lifetime_ms = Some(self.options.lifetime.as_millis() as u64);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            interest.nonce = Some(rand::random());
            match self.client.express(&interest).await {
                Ok(Reply::Data { data, .. }) => return Ok(data),
                Ok(Reply::Nack { reason }) => {
                    // Duplicate means our own Interest looped or was aggregated: try a new Nonce.
                    if reason != NackReason::Duplicate || attempts > self.options.max_retries {
                        return Err(Error::Nack {
                            name: interest.name,
                            reason,
                        });
                    }
                }
                Err(ClientError::Timeout { .. }) => {
                    if attempts > self.options.max_retries {
                        return Err(Error::Timeout {
                            name: interest.name,
                            attempts,
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The trust policy in use, if any.
    pub fn validator(&self) -> Option<&Arc<trust::Validator>> {
        self.validator.as_ref()
    }

    fn decrypt(&self, data: &Data) -> Result<Option<Bytes>> {
        let Some(d) = &self.decryptor else {
            return Ok(None);
        };
        match d.decrypt(&data.name, &data.content) {
            None => Ok(None),
            Some(Ok(p)) => Ok(Some(p)),
            Some(Err(why)) => Err(Error::Decrypt {
                name: data.name.clone(),
                why,
            }),
        }
    }
}
