//! Deciding whether a Data may be believed: signature checks against a trust policy, with
//! signer certificates fetched by KeyLocator and cached.
//!
//! DigestSha256 Data is checked for integrity (and refused when the policy demands a key).
//! Ed25519 Data names its signer's key or certificate in KeyLocator; the certificate is fetched
//! (CanBePrefix), its own signature checked, and so on up to a trust anchor (anchored policy) or
//! a self-signed certificate (integrity policy). Many segments signed by one key are verified
//! together with batch verification, falling back to one-by-one strict verification to name
//! the packet at fault.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use amicn_tlv::{Component, Data, KeyLocator, Name};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::Error;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the key's 32 bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Longest certificate chain followed.
const MAX_CHAIN: usize = 5;

/// Fetches a certificate (or any Data) by name; the consumer supplies one over its connection.
pub type CertFetcher =
    Arc<dyn Fn(Name) -> Pin<Box<dyn Future<Output = Result<Data, Error>> + Send>> + Send + Sync>;

/// Who is believed.
#[derive(Debug, Clone)]
pub enum TrustMode {
    /// No checks at all.
    AcceptAll,
    /// Signatures must verify under the key their KeyLocator names (certificate chains may end
    /// at any self-signed certificate): protects integrity, not authenticity.
    Integrity,
    /// Signatures must chain to one of these anchors.
    Anchored(Vec<TrustAnchor>),
}

/// A trusted key: its name (`/<id>/KEY/<kid>`) and Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// Key name (certificate name without issuer and version).
    pub key_name: Name,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
}

impl TrustAnchor {
    /// The anchor described by an (Ed25519) certificate Data.
    pub fn from_certificate(cert: &Data) -> Result<TrustAnchor, Error> {
        let public_key =
            ed25519_public_key(&cert.content).ok_or_else(|| Error::BadCertificate {
                name: cert.name.clone(),
                why: "content is not an Ed25519 public key",
            })?;
        let key_name = key_name_of(&cert.name).ok_or_else(|| Error::BadCertificate {
            name: cert.name.clone(),
            why: "name has no KEY component",
        })?;
        Ok(TrustAnchor {
            key_name,
            public_key,
        })
    }
}

/// The 32-byte Ed25519 key in certificate content (SPKI DER, or the raw key).
pub fn ed25519_public_key(content: &[u8]) -> Option<[u8; 32]> {
    let raw = match content.len() {
        32 => content,
        44 if content.starts_with(&ED25519_SPKI_PREFIX) => content.get(12..)?,
        _ => return None,
    };
    raw.try_into().ok()
}

/// `/<id>/KEY/<kid>` from a key or certificate name (the last `KEY` component plus one).
pub fn key_name_of(name: &Name) -> Option<Name> {
    let key = Component::generic(Bytes::from_static(b"KEY"));
    let idx = (0..name.len())
        .rev()
        .find(|&i| name.get(i).as_ref() == Some(&key))?;
    if idx + 1 >= name.len() {
        return None;
    }
    Some(name.prefix(idx + 2))
}

/// The trust policy with its certificate cache.
pub struct Validator {
    mode: TrustMode,
    allow_digest: bool,
    cache: moka::sync::Cache<Name, [u8; 32]>,
    fetcher: Option<CertFetcher>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("mode", &self.mode)
            .field("allow_digest", &self.allow_digest)
            .finish_non_exhaustive()
    }
}

/// One signature check, owned so it can move to a blocking thread.
enum Check {
    Digest {
        index: usize,
        message: Bytes,
        value: Bytes,
    },
    Ed25519 {
        index: usize,
        message: Bytes,
        signature: ed25519_dalek::Signature,
        key: ed25519_dalek::VerifyingKey,
    },
}

impl Validator {
    /// A validator in `mode`; DigestSha256 Data is accepted (after a digest check) only if
    /// `allow_digest`.
    pub fn new(mode: TrustMode, allow_digest: bool) -> Validator {
        Validator {
            mode,
            allow_digest,
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            fetcher: None,
        }
    }

    /// Sets how certificates are fetched.
    pub fn with_fetcher(mut self, fetcher: CertFetcher) -> Validator {
        self.fetcher = Some(fetcher);
        self
    }

    /// The policy's mode.
    pub fn mode(&self) -> &TrustMode {
        &self.mode
    }

    /// Verifies every Data in `batch`, or names the first that fails.
    pub async fn verify(&self, batch: &[Data]) -> Result<(), Error> {
        if matches!(self.mode, TrustMode::AcceptAll) {
            return Ok(());
        }
        let mut checks = Vec::with_capacity(batch.len());
        for (index, data) in batch.iter().enumerate() {
            match data.signature_info.sig_type {
                amicn_tlv::sig::DIGEST_SHA256 => {
                    if !self.allow_digest {
                        return Err(Error::Untrusted {
                            name: data.name.clone(),
                            signer: "DigestSha256 (no key)".to_owned(),
                            why: "the trust policy requires a key signature",
                        });
                    }
                    checks.push(Check::Digest {
                        index,
                        message: data.signed_portion(),
                        value: data.signature_value.clone(),
                    });
                }
                amicn_tlv::sig::ED25519 => {
                    let Some(KeyLocator::Name(locator)) = &data.signature_info.key_locator else {
                        return Err(Error::Untrusted {
                            name: data.name.clone(),
                            signer: "?".to_owned(),
                            why: "Ed25519 signature without a KeyLocator name",
                        });
                    };
                    let key = self.resolve(&data.name, locator).await?;
                    checks.push(Check::Ed25519 {
                        index,
                        message: data.signed_portion(),
                        signature: signature_of(data)?,
                        key,
                    });
                }
                other => {
                    return Err(Error::UnsupportedSignature {
                        name: data.name.clone(),
                        sig_type: other,
                    });
                }
            }
        }
        // Signature arithmetic and hashing are CPU work: off the async workers when there is
        // enough of it, so the fetch pipeline keeps Interests flowing meanwhile.
        let failed = if checks.len() >= 8 && tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(move || run_checks(&checks))
                .await
                .unwrap_or(Some(0))
        } else {
            run_checks(&checks)
        };
        match failed.and_then(|i| batch.get(i)) {
            None => Ok(()),
            Some(d) => Err(Error::BadSignature {
                name: d.name.clone(),
                signer: match &d.signature_info.key_locator {
                    Some(KeyLocator::Name(n)) => n.to_string(),
                    _ => "DigestSha256".to_owned(),
                },
            }),
        }
    }

    /// The verified Ed25519 key that `locator` names, trusted under the policy.
    async fn resolve(
        &self,
        data_name: &Name,
        locator: &Name,
    ) -> Result<ed25519_dalek::VerifyingKey, Error> {
        let mut chain: Vec<Data> = Vec::new();
        let mut want = locator.clone();
        // Walk up until a trusted or cached key is found, collecting certificates to check.
        let mut trusted: Option<[u8; 32]> = None;
        for _ in 0..MAX_CHAIN {
            if let Some(pk) = self.known(&want) {
                trusted = Some(pk);
                break;
            }
            let Some(fetch) = &self.fetcher else {
                return Err(Error::Untrusted {
                    name: data_name.clone(),
                    signer: want.to_string(),
                    why: "its certificate is unknown and cannot be fetched",
                });
            };
            let cert = fetch(want.clone())
                .await
                .map_err(|e| Error::CertificateFetch {
                    name: data_name.clone(),
                    certificate: want.clone(),
                    why: e.to_string(),
                })?;
            let pk = ed25519_public_key(&cert.content).ok_or_else(|| Error::BadCertificate {
                name: cert.name.clone(),
                why: "content is not an Ed25519 public key",
            })?;
            if let Some(v) = &cert.signature_info.validity
                && !v.contains(now_s())
            {
                return Err(Error::BadCertificate {
                    name: cert.name.clone(),
                    why: "outside its ValidityPeriod (expired or not yet valid)",
                });
            }
            let issuer = match &cert.signature_info.key_locator {
                Some(KeyLocator::Name(n)) => n.clone(),
                _ => {
                    return Err(Error::BadCertificate {
                        name: cert.name.clone(),
                        why: "no issuer KeyLocator",
                    });
                }
            };
            let self_signed = key_name_of(&issuer).is_some_and(|k| k.is_prefix_of(&cert.name));
            chain.push(cert);
            if self_signed {
                if let TrustMode::Anchored(_) = self.mode {
                    return Err(Error::Untrusted {
                        name: data_name.clone(),
                        signer: locator.to_string(),
                        why: "its certificate chain ends at a self-signed certificate that is not a trust anchor",
                    });
                }
                trusted = Some(pk);
                break;
            }
            want = issuer;
        }
        let Some(mut issuer_key) = trusted else {
            return Err(Error::Untrusted {
                name: data_name.clone(),
                signer: locator.to_string(),
                why: "certificate chain too long",
            });
        };
        // Check from the trusted end down to the Data's signer.
        for cert in chain.iter().rev() {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&issuer_key).map_err(|_| {
                Error::BadCertificate {
                    name: cert.name.clone(),
                    why: "issuer key is not a valid Ed25519 point",
                }
            })?;
            let sig = signature_of(cert)?;
            vk.verify_strict(&cert.signed_portion(), &sig)
                .map_err(|_| Error::BadSignature {
                    name: cert.name.clone(),
                    signer: "issuer".to_owned(),
                })?;
            let pk = ed25519_public_key(&cert.content).ok_or_else(|| Error::BadCertificate {
                name: cert.name.clone(),
                why: "content is not an Ed25519 public key",
            })?;
            if let Some(k) = key_name_of(&cert.name) {
                self.cache.insert(k, pk);
            }
            self.cache.insert(cert.name.clone(), pk);
            issuer_key = pk;
        }
        ed25519_dalek::VerifyingKey::from_bytes(&issuer_key).map_err(|_| Error::BadCertificate {
            name: locator.clone(),
            why: "key is not a valid Ed25519 point",
        })
    }

    /// A key already believed: an anchor or a cached verified certificate.
    fn known(&self, locator: &Name) -> Option<[u8; 32]> {
        if let TrustMode::Anchored(anchors) = &self.mode
            && let Some(a) = anchors.iter().find(|a| a.key_name.is_prefix_of(locator))
        {
            return Some(a.public_key);
        }
        if let Some(pk) = self.cache.get(locator) {
            return Some(pk);
        }
        key_name_of(locator).and_then(|k| self.cache.get(&k))
    }
}

fn signature_of(data: &Data) -> Result<ed25519_dalek::Signature, Error> {
    ed25519_dalek::Signature::from_slice(&data.signature_value).map_err(|_| Error::BadSignature {
        name: data.name.clone(),
        signer: "malformed Ed25519 SignatureValue".to_owned(),
    })
}

/// Runs the checks; returns the batch index of the first failure.
fn run_checks(checks: &[Check]) -> Option<usize> {
    let mut messages: Vec<&[u8]> = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    for c in checks {
        match c {
            Check::Digest {
                index,
                message,
                value,
            } => {
                if Sha256::digest(message).as_slice() != value.as_ref() {
                    return Some(*index);
                }
            }
            Check::Ed25519 {
                message,
                signature,
                key,
                ..
            } => {
                messages.push(message.as_ref());
                signatures.push(*signature);
                keys.push(*key);
            }
        }
    }
    if messages.is_empty()
        || (messages.len() > 1
            && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok())
    {
        return None;
    }
    // Batch and strict single verification may disagree on edge cases: strict decides.
    checks.iter().find_map(|c| match c {
        Check::Ed25519 {
            index,
            message,
            signature,
            key,
        } => key
            .verify_strict(message, signature)
            .is_err()
            .then_some(*index),
        Check::Digest { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::Signer as _;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn spki(pk: [u8; 32]) -> Bytes {
        let mut v = ED25519_SPKI_PREFIX.to_vec();
        v.extend_from_slice(&pk);
        Bytes::from(v)
    }

    fn signed(mut d: Data, key: &ed25519_dalek::SigningKey, locator: &str) -> Data {
        let si = amicn_tlv::SignatureInfo {
            sig_type: amicn_tlv::sig::ED25519,
            key_locator: Some(KeyLocator::Name(name(locator))),
            ..Default::default()
        };
        Data::decode(d.sign_with(si, |p| key.sign(p).to_bytes().to_vec())).unwrap()
    }

    fn cert(
        id: &str,
        key: &ed25519_dalek::SigningKey,
        issuer: &ed25519_dalek::SigningKey,
        issuer_locator: &str,
    ) -> Data {
        let mut d = Data::new(
            name(&format!("{id}/KEY/k/self/v=1")),
            spki(key.verifying_key().to_bytes()),
        );
        d.meta_info.content_type = 2;
        signed(d, issuer, issuer_locator)
    }

    fn fetcher(certs: Vec<Data>) -> CertFetcher {
        Arc::new(move |n: Name| {
            let found = certs.iter().find(|c| n.is_prefix_of(&c.name)).cloned();
            Box::pin(async move {
                found.ok_or(Error::Timeout {
                    name: n,
                    attempts: 1,
                })
            })
        })
    }

    #[test]
    fn key_names() {
        assert_eq!(
            key_name_of(&name("/a/b/KEY/k1/self/v=3")).unwrap(),
            name("/a/b/KEY/k1")
        );
        assert_eq!(key_name_of(&name("/a/KEY/k1")).unwrap(), name("/a/KEY/k1"));
        assert!(key_name_of(&name("/a/KEY")).is_none());
        assert_eq!(ed25519_public_key(&spki([9; 32])), Some([9; 32]));
        assert_eq!(ed25519_public_key(&[1; 44]), None);
    }

    #[test]
    fn batch_verification_accepts_our_segments_without_fallback() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let ds: Vec<Data> = (0..10)
            .map(|i| {
                signed(
                    Data::new(
                        name(&format!("/k/seg={i}")),
                        Bytes::from(vec![i as u8; 100]),
                    ),
                    &k,
                    "/k/KEY/k",
                )
            })
            .collect();
        let msgs: Vec<Bytes> = ds.iter().map(|d| d.signed_portion()).collect();
        let m: Vec<&[u8]> = msgs.iter().map(|b| b.as_ref()).collect();
        let sigs: Vec<_> = ds.iter().map(|d| signature_of(d).unwrap()).collect();
        ed25519_dalek::verify_batch(&m, &sigs, &vec![k.verifying_key(); 10]).unwrap();
    }

    #[tokio::test]
    async fn anchored_policy_accepts_signer_and_rejects_stranger() {
        let alice = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let mallory = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let alice_cert = cert("/alice", &alice, &alice, "/alice/KEY/k");
        let mallory_cert = cert("/mallory", &mallory, &mallory, "/mallory/KEY/k");
        let anchor = TrustAnchor::from_certificate(&alice_cert).unwrap();
        let v = Validator::new(TrustMode::Anchored(vec![anchor]), false)
            .with_fetcher(fetcher(vec![alice_cert, mallory_cert]));

        let good: Vec<Data> = (0..4)
            .map(|i| {
                signed(
                    Data::new(name(&format!("/alice/f/seg={i}")), Bytes::from_static(b"x")),
                    &alice,
                    "/alice/KEY/k",
                )
            })
            .collect();
        v.verify(&good).await.unwrap();

        let bad = signed(
            Data::new(name("/alice/f/seg=9"), Bytes::from_static(b"x")),
            &mallory,
            "/mallory/KEY/k",
        );
        let err = v.verify(&[bad]).await.unwrap_err();
        assert!(matches!(err, Error::Untrusted { .. }), "{err}");

        // Claims to be Alice but is signed by Mallory's key: fails signature check, names the packet.
        let forged = signed(
            Data::new(name("/alice/f/seg=5"), Bytes::from_static(b"x")),
            &mallory,
            "/alice/KEY/k",
        );
        let mut batch = good.clone();
        batch.push(forged);
        match v.verify(&batch).await.unwrap_err() {
            Error::BadSignature { name: n, .. } => assert_eq!(n, name("/alice/f/seg=5")),
            e => panic!("unexpected {e}"),
        }
    }

    #[tokio::test]
    async fn expired_certificate_is_refused() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        let mut c = Data::new(
            name("/old/KEY/k/self/v=1"),
            spki(k.verifying_key().to_bytes()),
        );
        c.meta_info.content_type = 2;
        let si = amicn_tlv::SignatureInfo {
            sig_type: amicn_tlv::sig::ED25519,
            key_locator: Some(KeyLocator::Name(name("/old/KEY/k"))),
            validity: Some(amicn_tlv::ValidityPeriod::from_unix(1_000_000, 2_000_000)),
            ..Default::default()
        };
        let c = Data::decode(c.sign_with(si, |p| k.sign(p).to_bytes().to_vec())).unwrap();
        let v = Validator::new(TrustMode::Integrity, false).with_fetcher(fetcher(vec![c]));
        let d = signed(
            Data::new(name("/old/x"), Bytes::from_static(b"y")),
            &k,
            "/old/KEY/k",
        );
        let err = v.verify(&[d]).await.unwrap_err();
        assert!(err.to_string().contains("ValidityPeriod"), "{err}");
    }

    #[tokio::test]
    async fn integrity_policy_follows_chain_and_checks_digests() {
        let root = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let leaf = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let root_cert = cert("/root", &root, &root, "/root/KEY/k");
        let leaf_cert = cert("/leaf", &leaf, &root, "/root/KEY/k");
        let v = Validator::new(TrustMode::Integrity, true)
            .with_fetcher(fetcher(vec![root_cert, leaf_cert]));
        let d = signed(
            Data::new(name("/leaf/x"), Bytes::from_static(b"y")),
            &leaf,
            "/leaf/KEY/k",
        );
        v.verify(&[d]).await.unwrap();

        let dig =
            Data::decode(Data::new(name("/d"), Bytes::from_static(b"z")).sign_digest_sha256())
                .unwrap();
        v.verify(std::slice::from_ref(&dig)).await.unwrap();
        let mut broken = dig.clone();
        broken.signature_value = Bytes::from(vec![0u8; 32]);
        assert!(matches!(
            v.verify(&[broken]).await,
            Err(Error::BadSignature { .. })
        ));
        let strict = Validator::new(TrustMode::Integrity, false);
        assert!(matches!(
            strict.verify(&[dig]).await,
            Err(Error::Untrusted { .. })
        ));
    }
}
