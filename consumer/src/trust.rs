//! Deciding whether a Data may be believed, with [`amicn_kms::trust::Validator`] making every
//! decision.
//!
//! The kms validator applies the trust policy (name rules with captures) to the packet and each
//! certificate, walks the chain to an anchor, checks validity periods and every signature, and
//! remembers verified chains in its bounded cache. It does no I/O: when it lacks a certificate it
//! says so ([`amicn_kms::Error::CertificateNotFound`]), and this module fetches that certificate
//! by its KeyLocator name over the consumer's connection and asks again. DigestSha256 Data is
//! checked for integrity here (and refused when the policy demands a key).
//!
//! [`TrustMode::Anchored`] trusts only the given anchors; [`TrustMode::Integrity`] also lets a
//! chain end at any self-signed certificate (integrity, not origin). The default policy lets any
//! key sign any name; [`Validator::with_policy`] narrows that.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use amicn_kms::cert::Certificate;
use amicn_kms::signature::VerifyKey;
use amicn_kms::trust::{CertStore, TrustPolicy};
use amicn_tlv::{Component, Data, KeyLocator, Name};
use bytes::Bytes;

use crate::Error;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Most certificates fetched while resolving one batch: bounds what a hostile chain can make
/// the consumer ask for.
const MAX_CERT_FETCHES: usize = 16;
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

/// The trust policy, deciding through [`amicn_kms::trust::Validator`] and fetching the
/// certificates it asks for.
pub struct Validator {
    mode: TrustMode,
    allow_digest: bool,
    kms: Arc<amicn_kms::trust::Validator>,
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

fn parse_name(s: &str) -> Name {
    Name::from_uri(s).unwrap_or_default()
}

/// A kms refusal as a consumer error about `data` (the packet being verified).
fn refusal(data: &Data, e: amicn_kms::Error) -> Error {
    use amicn_kms::Error as K;
    let signer = match &data.signature_info.key_locator {
        Some(KeyLocator::Name(n)) => n.to_string(),
        _ => "?".to_owned(),
    };
    match e {
        K::BadSignature { name, signer: s } => Error::BadSignature {
            name: parse_name(&name),
            signer: s,
        },
        K::KeyTypeMismatch { name, .. }
        | K::SignatureLength { name, .. }
        | K::BadSignatureEncoding { name, .. } => Error::BadSignature {
            name: parse_name(&name),
            signer,
        },
        K::UnsupportedSignatureType { name, sig_type } => Error::UnsupportedSignature {
            name: parse_name(&name),
            sig_type,
        },
        K::SignerNotAllowed {
            rule,
            name,
            signer: s,
        } => Error::SignerNotAllowed {
            name: parse_name(&name),
            signer: s,
            rule,
        },
        K::NoTrustRule { .. } => Error::Untrusted {
            name: data.name.clone(),
            signer,
            why: "no trust rule covers this name",
        },
        K::MissingKeyLocator { .. } => Error::Untrusted {
            name: data.name.clone(),
            signer,
            why: "signature without a KeyLocator name",
        },
        K::UntrustedSelfSigned { certificate, .. } => Error::Untrusted {
            name: data.name.clone(),
            signer: format!("{signer} (self-signed certificate {certificate})"),
            why: "its certificate chain ends at a self-signed certificate that is not a trust anchor",
        },
        K::NoTrustAnchor { depth, .. } => Error::Untrusted {
            name: data.name.clone(),
            signer: format!("{signer} (after {depth} certificates)"),
            why: "its certificate chain loops or is too long to reach a trust anchor",
        },
        K::CertificateExpired { cert, not_after } => Error::CertificateExpired {
            name: data.name.clone(),
            certificate: parse_name(&cert),
            when: format!("expired at {not_after}"),
        },
        K::CertificateNotYetValid { cert, not_before } => Error::CertificateExpired {
            name: data.name.clone(),
            certificate: parse_name(&cert),
            when: format!("not valid before {not_before}"),
        },
        K::CertificateNotFound { key_locator } => Error::CertificateFetch {
            name: data.name.clone(),
            certificate: parse_name(&key_locator),
            why: "the certificate is not known and no way to fetch it is configured".to_owned(),
        },
        other => Error::Refused {
            name: data.name.clone(),
            reason: other.to_string(),
        },
    }
}

impl Validator {
    /// A validator in `mode`; DigestSha256 Data is accepted (after a digest check) only if
    /// `allow_digest`. Any key may sign any name until [`Validator::with_policy`] says otherwise.
    pub fn new(mode: TrustMode, allow_digest: bool) -> Validator {
        let mut v = Validator {
            mode,
            allow_digest,
            kms: Arc::new(amicn_kms::trust::Validator::new(TrustPolicy::any_signer())),
            fetcher: None,
        };
        v.rebuild(TrustPolicy::any_signer());
        v
    }

    fn rebuild(&mut self, policy: TrustPolicy) {
        let mut kms = amicn_kms::trust::Validator::new(policy)
            .accept_any_self_signed(matches!(self.mode, TrustMode::Integrity));
        if let TrustMode::Anchored(anchors) = &self.mode {
            for a in anchors {
                kms.add_key_anchor(a.key_name.clone(), a.key.clone());
            }
        }
        self.kms = Arc::new(kms);
    }

    /// Applies `policy`'s name rules: which key may sign which Data (and which issuer which
    /// certificate).
    pub fn with_policy(mut self, policy: TrustPolicy) -> Validator {
        self.rebuild(policy);
        self
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

    /// The kms validator making the decisions (its chain cache is the only one).
    pub fn kms(&self) -> &amicn_kms::trust::Validator {
        &self.kms
    }

    /// Verifies every Data in `batch`, or names the first that fails.
    pub async fn verify(&self, batch: &[Data]) -> Result<(), Error> {
        if matches!(self.mode, TrustMode::AcceptAll) {
            return Ok(());
        }
        use amicn_tlv::sig::DIGEST_SHA256;
        let mut keyed: Vec<usize> = Vec::new();
        for (index, data) in batch.iter().enumerate() {
            if data.signature_info.sig_type == DIGEST_SHA256 {
                if !self.allow_digest {
                    return Err(Error::Untrusted {
                        name: data.name.clone(),
                        signer: "DigestSha256 (no key)".to_owned(),
                        why: "the trust policy requires a key signature",
                    });
                }
            } else {
                keyed.push(index);
            }
        }
        // Certificates the kms validator asks for, fetched once per batch; verified chains end
        // up in its cache, so later batches from the same signers fetch nothing.
        let mut store = CertStore::new();
        let mut seen_signers: HashSet<Name> = HashSet::new();
        let mut fetched = 0usize;
        let now = now_ms();
        for &i in &keyed {
            let data = &batch[i];
            let signer = match &data.signature_info.key_locator {
                Some(KeyLocator::Name(n)) => n.clone(),
                _ => Name::default(),
            };
            if !seen_signers.insert(signer) {
                continue;
            }
            // Settled (either way) once nothing is missing: the batch check below reports it
            // in order.
            while let Err(amicn_kms::Error::CertificateNotFound { key_locator }) =
                self.kms.validate_data(data, &store, now)
            {
                let Some(fetch) = &self.fetcher else {
                    break;
                };
                let want = parse_name(&key_locator);
                if fetched >= MAX_CERT_FETCHES {
                    return Err(Error::CertificateFetch {
                        name: data.name.clone(),
                        certificate: want,
                        why: format!(
                            "more than {MAX_CERT_FETCHES} certificates needed for one batch"
                        ),
                    });
                }
                fetched += 1;
                let cert = fetch(want.clone())
                    .await
                    .map_err(|e| Error::CertificateFetch {
                        name: data.name.clone(),
                        certificate: want.clone(),
                        why: e.to_string(),
                    })?;
                certificate_key(&cert)?;
                let name = cert.name.clone();
                let cert = Certificate::from_data(cert).map_err(|e| Error::Refused {
                    name: name.clone(),
                    reason: format!("not a certificate: {e}"),
                })?;
                if !cert.matches_locator(&want) {
                    return Err(Error::CertificateFetch {
                        name: data.name.clone(),
                        certificate: want,
                        why: format!("the answer is {name}, another certificate"),
                    });
                }
                store.insert(cert);
            }
        }
        // Signature arithmetic and hashing are CPU work: off the async workers when there is
        // enough of it, so the fetch pipeline keeps Interests flowing meanwhile.
        let kms = self.kms.clone();
        let packets: Vec<Data> = keyed.iter().map(|&i| batch[i].clone()).collect();
        let run = move || kms.validate_data_batch(&packets, &store, now);
        let results = if keyed.len() >= 8 && tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|_| Error::Refused {
                    name: Name::default(),
                    reason: "verification task failed".to_owned(),
                })?
        } else {
            run()
        };
        let mut results = keyed.iter().zip(results);
        let mut next = results.next();
        for (index, data) in batch.iter().enumerate() {
            if data.signature_info.sig_type == DIGEST_SHA256 {
                if amicn_kms::identity::verify_data_digest(data).is_err() {
                    return Err(Error::BadSignature {
                        name: data.name.clone(),
                        signer: "DigestSha256".to_owned(),
                    });
                }
                continue;
            }
            if let Some((&i, r)) = next.take() {
                debug_assert_eq!(i, index);
                if let Err(e) = r {
                    return Err(refusal(data, e));
                }
                next = results.next();
            }
        }
        Ok(())
    }
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
        d.meta_info.freshness_period_ms = Some(3_600_000);
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
        c.meta_info.freshness_period_ms = Some(3_600_000);
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

    /// A root anchor, an intermediate issued by it, and a counting fetcher over `certs`.
    struct Pki {
        root: amicn_kms::identity::KeyPair,
        root_cert: Certificate,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    }

    fn now_s() -> u64 {
        now_ms() / 1000
    }

    fn kp(id: &str, seed: u8) -> amicn_kms::identity::KeyPair {
        amicn_kms::identity::KeyPair::from_seed(&[seed; 32], name(&format!("{id}/KEY/k"))).unwrap()
    }

    fn issue(
        subject: &amicn_kms::identity::KeyPair,
        issuer: &amicn_kms::identity::KeyPair,
        validity: amicn_kms::cert::Validity,
    ) -> Certificate {
        Certificate::issue(
            subject.key_name(),
            subject.public_key(),
            issuer,
            b"issuer",
            1,
            validity,
        )
        .unwrap()
    }

    fn pki() -> Pki {
        let root = kp("/root", 31);
        let root_cert = Certificate::self_signed(
            &root,
            1,
            amicn_kms::cert::Validity::starting_now(now_s() - 60, 86400),
        )
        .unwrap();
        Pki {
            root,
            root_cert,
            fetches: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    impl Pki {
        fn validator(&self, certs: Vec<Certificate>, policy: Option<&str>) -> Validator {
            let anchor = TrustAnchor::from_certificate(self.root_cert.data()).unwrap();
            let fetches = self.fetches.clone();
            let datas: Vec<Data> = certs.iter().map(|c| c.data().clone()).collect();
            let inner = fetcher(datas);
            let counting: CertFetcher = Arc::new(move |n: Name| {
                fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                inner(n)
            });
            let v = Validator::new(TrustMode::Anchored(vec![anchor]), false).with_fetcher(counting);
            match policy {
                Some(p) => v.with_policy(TrustPolicy::from_toml(p).unwrap()),
                None => v,
            }
        }

        fn good(&self) -> amicn_kms::cert::Validity {
            amicn_kms::cert::Validity::starting_now(now_s() - 60, 3600)
        }
    }

    fn data_by(key: &amicn_kms::identity::KeyPair, n: &str) -> Data {
        let mut d = Data::new(name(n), Bytes::from_static(b"reading"));
        Data::decode(key.sign_data(&mut d).unwrap()).unwrap()
    }

    const POLICY: &str = "[[rule]]\nid = \"cert\"\ndata = \"/<_>/KEY/...\"\nsigner = \"/root/KEY/...\"\n\
                          [[rule]]\nid = \"own-data\"\ndata = \"/<who>/...\"\nsigner = \"/<who>/KEY/...\"\n";

    #[tokio::test]
    async fn chains_resolve_through_the_kms_validator_and_its_cache() {
        let p = pki();
        let alice = kp("/alice", 32);
        let v = p.validator(vec![issue(&alice, &p.root, p.good())], Some(POLICY));
        v.verify(&[data_by(&alice, "/alice/r/1")]).await.unwrap();
        assert_eq!(p.fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
        // The verified chain is in the kms validator's cache: nothing is fetched again.
        v.verify(&[data_by(&alice, "/alice/r/2"), data_by(&alice, "/alice/r/3")])
            .await
            .unwrap();
        assert_eq!(p.fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(v.kms().cached_chains(), 1);
    }

    #[tokio::test]
    async fn wrong_signer_for_a_name_is_its_own_error() {
        let p = pki();
        let bob = kp("/bob", 33);
        // Bob's certificate is genuine, but the policy says only Alice signs under /alice.
        let v = p.validator(vec![issue(&bob, &p.root, p.good())], Some(POLICY));
        v.verify(&[data_by(&bob, "/bob/r/1")]).await.unwrap();
        match v.verify(&[data_by(&bob, "/alice/r/1")]).await.unwrap_err() {
            Error::SignerNotAllowed { name: n, rule, .. } => {
                assert_eq!(n, name("/alice/r/1"));
                assert_eq!(rule, "own-data");
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[tokio::test]
    async fn self_made_certificate_is_its_own_error() {
        let p = pki();
        let mallory = kp("/alice", 34);
        let own = Certificate::self_signed(&mallory, 1, p.good()).unwrap();
        let v = p.validator(vec![own], None);
        let err = v
            .verify(&[data_by(&mallory, "/alice/r/1")])
            .await
            .unwrap_err();
        match &err {
            Error::Untrusted { why, .. } => assert!(why.contains("self-signed"), "{err}"),
            e => panic!("unexpected {e}"),
        }
        // The same certificate is enough in integrity-only mode.
        let integrity = Validator::new(TrustMode::Integrity, false).with_fetcher(fetcher(vec![
            Certificate::self_signed(&mallory, 1, p.good())
                .unwrap()
                .data()
                .clone(),
        ]));
        integrity
            .verify(&[data_by(&mallory, "/alice/r/1")])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn expired_certificate_is_its_own_error() {
        let p = pki();
        let alice = kp("/alice", 35);
        let old = amicn_kms::cert::Validity {
            not_before: now_s() - 7200,
            not_after: now_s() - 3600,
        };
        let v = p.validator(vec![issue(&alice, &p.root, old)], Some(POLICY));
        match v
            .verify(&[data_by(&alice, "/alice/r/1")])
            .await
            .unwrap_err()
        {
            Error::CertificateExpired {
                certificate, when, ..
            } => {
                assert!(certificate.to_string().starts_with("/alice/KEY/k"));
                assert!(when.starts_with("expired"), "{when}");
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[tokio::test]
    async fn truncated_chain_is_its_own_error() {
        let p = pki();
        let ca = kp("/ca", 36);
        let alice = kp("/alice", 37);
        // Alice's certificate is issued by /ca, whose own certificate nobody serves.
        let v = p.validator(vec![issue(&alice, &ca, p.good())], None);
        match v
            .verify(&[data_by(&alice, "/alice/r/1")])
            .await
            .unwrap_err()
        {
            Error::CertificateFetch { certificate, .. } => {
                assert_eq!(certificate, name("/ca/KEY/k"));
            }
            e => panic!("unexpected {e}"),
        }
        // With the missing link served, the same chain validates.
        let v = p.validator(
            vec![issue(&alice, &ca, p.good()), issue(&ca, &p.root, p.good())],
            None,
        );
        v.verify(&[data_by(&alice, "/alice/r/1")]).await.unwrap();
    }
}
