//! Deciding whether a Data may be believed: signature checks against a trust policy, with
//! signer certificates fetched by KeyLocator and cached.
//!
//! All cryptography is `amicn_kms`'s ([`amicn_kms::signature`]): this module only decides which
//! key should have signed a packet and fetches the certificates that say so. DigestSha256 Data is
//! checked for integrity (and refused when the policy demands a key). Ed25519, ECDSA P-256 and
//! RSA Data name their signer's key or certificate in KeyLocator; the certificate (ContentType
//! KEY, a SubjectPublicKeyInfo of one of those types) is fetched, its own signature checked, and
//! so on up to a trust anchor (anchored policy) or a self-signed certificate (integrity policy).
//! Many segments are verified together: Ed25519 ones with batch verification, falling back to
//! one-by-one strict verification to name the packet at fault.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use amicn_kms::signature::{VerifyKey, verify_data_batch, verify_data_key};
use amicn_tlv::{Component, Data, KeyLocator, Name};
use bytes::Bytes;

use crate::Error;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Longest certificate chain followed.
const MAX_CHAIN: usize = 5;
/// ContentType KEY.
const CONTENT_TYPE_KEY: u64 = 2;

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

/// A trusted key: its name (`/<id>/KEY/<kid>`) and public key (Ed25519, ECDSA P-256 or RSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// Key name (certificate name without issuer and version).
    pub key_name: Name,
    /// Public key.
    pub key: VerifyKey,
}

impl TrustAnchor {
    /// The anchor described by a certificate Data.
    pub fn from_certificate(cert: &Data) -> Result<TrustAnchor, Error> {
        let key = certificate_key(cert)?;
        let key_name = key_name_of(&cert.name).ok_or_else(|| Error::BadCertificate {
            name: cert.name.clone(),
            why: "name has no KEY component",
        })?;
        Ok(TrustAnchor { key_name, key })
    }
}

/// The public key a certificate Data carries: ContentType KEY and a SubjectPublicKeyInfo DER of
/// an Ed25519, EC P-256 or RSA key.
pub fn certificate_key(cert: &Data) -> Result<VerifyKey, Error> {
    if cert.meta_info.content_type != CONTENT_TYPE_KEY {
        return Err(Error::BadCertificate {
            name: cert.name.clone(),
            why: "ContentType is not KEY (2): not a certificate",
        });
    }
    VerifyKey::from_spki(&cert.content).map_err(|_| Error::BadCertificate {
        name: cert.name.clone(),
        why: "content is not an Ed25519, EC P-256 or RSA SubjectPublicKeyInfo",
    })
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
    cache: moka::sync::Cache<Name, VerifyKey>,
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
        data: Data,
    },
    Key {
        index: usize,
        data: Data,
        key: VerifyKey,
    },
}

fn signer_label(d: &Data) -> String {
    match &d.signature_info.key_locator {
        Some(KeyLocator::Name(n)) => n.to_string(),
        _ if d.signature_info.sig_type == amicn_tlv::sig::DIGEST_SHA256 => {
            "DigestSha256".to_owned()
        }
        _ => "?".to_owned(),
    }
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

    /// Whether DigestSha256 Data is accepted.
    pub fn allows_digest(&self) -> bool {
        self.allow_digest
    }

    /// Verifies every Data in `batch`, or names the first that fails.
    pub async fn verify(&self, batch: &[Data]) -> Result<(), Error> {
        if matches!(self.mode, TrustMode::AcceptAll) {
            return Ok(());
        }
        let mut checks = Vec::with_capacity(batch.len());
        for (index, data) in batch.iter().enumerate() {
            use amicn_tlv::sig::{DIGEST_SHA256, ED25519, SHA256_WITH_ECDSA, SHA256_WITH_RSA};
            match data.signature_info.sig_type {
                DIGEST_SHA256 => {
                    if !self.allow_digest {
                        return Err(Error::Untrusted {
                            name: data.name.clone(),
                            signer: "DigestSha256 (no key)".to_owned(),
                            why: "the trust policy requires a key signature",
                        });
                    }
                    checks.push(Check::Digest {
                        index,
                        data: data.clone(),
                    });
                }
                ED25519 | SHA256_WITH_ECDSA | SHA256_WITH_RSA => {
                    let Some(KeyLocator::Name(locator)) = &data.signature_info.key_locator else {
                        return Err(Error::Untrusted {
                            name: data.name.clone(),
                            signer: "?".to_owned(),
                            why: "signature without a KeyLocator name",
                        });
                    };
                    let key = self.resolve(&data.name, locator).await?;
                    checks.push(Check::Key {
                        index,
                        data: data.clone(),
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
                signer: signer_label(d),
            }),
        }
    }

    /// The verified key that `locator` names, trusted under the policy.
    async fn resolve(&self, data_name: &Name, locator: &Name) -> Result<VerifyKey, Error> {
        let mut chain: Vec<(Data, VerifyKey)> = Vec::new();
        let mut want = locator.clone();
        // Walk up until a trusted or cached key is found, collecting certificates to check.
        let mut trusted: Option<VerifyKey> = None;
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
            let pk = certificate_key(&cert)?;
            match &cert.signature_info.validity {
                Some(v) if v.contains(now_s()) => {}
                Some(_) => {
                    return Err(Error::BadCertificate {
                        name: cert.name.clone(),
                        why: "outside its ValidityPeriod (expired or not yet valid)",
                    });
                }
                None => {
                    return Err(Error::BadCertificate {
                        name: cert.name.clone(),
                        why: "no ValidityPeriod",
                    });
                }
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
            chain.push((cert, pk.clone()));
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
        for (cert, pk) in chain.into_iter().rev() {
            verify_data_key(&cert, &issuer_key).map_err(|_| Error::BadSignature {
                name: cert.name.clone(),
                signer: signer_label(&cert),
            })?;
            if let Some(k) = key_name_of(&cert.name) {
                self.cache.insert(k, pk.clone());
            }
            self.cache.insert(cert.name.clone(), pk.clone());
            issuer_key = pk;
        }
        Ok(issuer_key)
    }

    /// A key already believed: an anchor or a cached verified certificate.
    fn known(&self, locator: &Name) -> Option<VerifyKey> {
        if let TrustMode::Anchored(anchors) = &self.mode
            && let Some(a) = anchors.iter().find(|a| a.key_name.is_prefix_of(locator))
        {
            return Some(a.key.clone());
        }
        if let Some(pk) = self.cache.get(locator) {
            return Some(pk);
        }
        key_name_of(locator).and_then(|k| self.cache.get(&k))
    }
}

/// Runs the checks; returns the batch index of the first failure.
fn run_checks(checks: &[Check]) -> Option<usize> {
    let mut keyed: Vec<(usize, &Data, &VerifyKey)> = Vec::new();
    for c in checks {
        match c {
            Check::Digest { index, data } => {
                if amicn_kms::identity::verify_data_digest(data).is_err() {
                    return Some(*index);
                }
            }
            Check::Key { index, data, key } => keyed.push((*index, data, key)),
        }
    }
    let items: Vec<(&Data, &VerifyKey)> = keyed.iter().map(|(_, d, k)| (*d, *k)).collect();
    verify_data_batch(&items)
        .iter()
        .zip(&keyed)
        .find_map(|(r, (i, _, _))| r.is_err().then_some(*i))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::identity::ED25519_SPKI_PREFIX;
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
        let si = amicn_tlv::SignatureInfo {
            sig_type: amicn_tlv::sig::ED25519,
            key_locator: Some(KeyLocator::Name(name(issuer_locator))),
            validity: Some(amicn_tlv::ValidityPeriod::from_unix(0, 4_000_000_000)),
            ..Default::default()
        };
        Data::decode(d.sign_with(si, |p| issuer.sign(p).to_bytes().to_vec())).unwrap()
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
        let k = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let c = cert("/a", &k, &k, "/a/KEY/k");
        assert_eq!(
            certificate_key(&c).unwrap().to_spki(),
            spki(k.verifying_key().to_bytes()).to_vec()
        );
        // Neither a non-KEY Data nor a raw 32-byte key is taken as a certificate.
        let mut plain = c.clone();
        plain.meta_info.content_type = 0;
        assert!(certificate_key(&plain).is_err());
        let mut raw = c;
        raw.content = Bytes::from(k.verifying_key().to_bytes().to_vec());
        assert!(certificate_key(&raw).is_err());
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

    fn vector(file: &str) -> Bytes {
        let path = format!(
            "{}/../kms/tests/identity_vectors/ndn-cxx-keys/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        if file.ends_with(".hex") {
            return Bytes::from(hex::decode(text.trim()).unwrap());
        }
        let text: String = text.split_whitespace().collect();
        use base64ct::Encoding;
        Bytes::from(base64ct::Base64::decode_vec(&text).unwrap())
    }

    #[tokio::test]
    async fn ndn_cxx_ecdsa_and_rsa_data_verify_and_tampering_is_caught() {
        for k in ["ecdsa", "rsa"] {
            let cert = Data::decode(vector(&format!("{k}.cert.b64"))).unwrap();
            let wire = vector(&format!("{k}.data.hex"));
            let data = Data::decode(wire.clone()).unwrap();
            // Anchored at the certificate, and in integrity mode with the certificate fetched.
            let anchored = Validator::new(
                TrustMode::Anchored(vec![TrustAnchor::from_certificate(&cert).unwrap()]),
                false,
            );
            anchored.verify(std::slice::from_ref(&data)).await.unwrap();
            let integrity =
                Validator::new(TrustMode::Integrity, false).with_fetcher(fetcher(vec![cert]));
            integrity.verify(std::slice::from_ref(&data)).await.unwrap();
            let mut w = wire.to_vec();
            let at = w.windows(7).position(|x| x == b"payload").unwrap();
            w[at] ^= 1;
            let bad = Data::decode(Bytes::from(w)).unwrap();
            match anchored.verify(&[data.clone(), bad]).await.unwrap_err() {
                Error::BadSignature { name: n, .. } => assert_eq!(n, data.name),
                e => panic!("{k}: unexpected {e}"),
            }
        }
    }
}
