//! Identities, certificates and trust for the AMI roles.
//!
//! The utility's root key is the trust anchor; it certifies the KMS, pricing, DR-operator and
//! MDMS keys and (as the utility's meter CA) every meter's factory identity. [`Trust`] checks
//! packets against the AMI trust policy and fetches missing certificates over NDN by their
//! KeyLocator, so a role needs nothing but the anchor to start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amicn_consumer::Consumer;
use amicn_face::client::Client;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::identity::{KeyPair, PublicKey};
use amicn_kms::trust::{
    CertSource, CertStore, OneOrMany, PacketKind, RuleConfig, TrustPolicy, Validated, Validator,
};
use amicn_tlv::{Data, Interest, Name};

use crate::error::{AmiError, Result};
use crate::names::AmiNames;
use crate::net::{consumer, now_ms};

/// How long issued certificates are valid.
const CERT_VALIDITY_S: u64 = 30 * 24 * 3600;
/// Certificates a chain may need fetched for one packet before giving up.
const MAX_CERT_FETCHES: usize = 4;
/// Signers whose validated chains the validator remembers.
const CHAIN_CACHE_SIGNERS: usize = 1 << 18;

/// A signing key with its certificate.
#[derive(Debug)]
pub struct Credentials {
    /// The Ed25519 key pair.
    pub key: Arc<KeyPair>,
    /// Its certificate.
    pub cert: Certificate,
}

/// The utility's certificate authority: the root key and the certificates it issues.
#[derive(Debug)]
pub struct Pki {
    names: AmiNames,
    root: Credentials,
}

impl Pki {
    /// A fresh root key `/<u>/KEY/<kid>` with a self-signed certificate.
    pub fn new(names: &AmiNames) -> Result<Self> {
        let key = KeyPair::generate(names.utility());
        let now_s = now_ms() / 1000;
        // Start a minute back so that slightly skewed clocks accept fresh certificates.
        let validity = Validity::starting_now(now_s.saturating_sub(60), CERT_VALIDITY_S);
        let cert = Certificate::self_signed(&key, now_ms(), validity)?;
        Ok(Pki {
            names: names.clone(),
            root: Credentials {
                key: Arc::new(key),
                cert,
            },
        })
    }

    /// The CA of `names` with an existing root key and its self-signed certificate.
    pub fn from_root(names: &AmiNames, root: Credentials) -> Self {
        Pki {
            names: names.clone(),
            root,
        }
    }

    /// The root key and certificate (kept offline, in the CA directory).
    pub fn root(&self) -> &Credentials {
        &self.root
    }

    /// Like [`Pki::issue`] with an explicit validity (e.g. short-lived or already expired
    /// certificates for tests).
    pub fn issue_with_validity(&self, identity: &Name, validity: Validity) -> Result<Credentials> {
        let key = KeyPair::generate(identity);
        let cert = Certificate::issue(
            key.key_name(),
            key.public_key(),
            &*self.root.key,
            b"root",
            now_ms(),
            validity,
        )?;
        Ok(Credentials {
            key: Arc::new(key),
            cert,
        })
    }

    /// The trust anchor every role is provisioned with.
    pub fn anchor(&self) -> &Certificate {
        &self.root.cert
    }

    /// A new key for `identity` with a certificate issued by the root key.
    pub fn issue(&self, identity: &Name) -> Result<Credentials> {
        let now_s = now_ms() / 1000;
        let validity = Validity::starting_now(now_s.saturating_sub(60), CERT_VALIDITY_S);
        self.issue_with_validity(identity, validity)
    }

    /// The AMI trust policy of this utility.
    pub fn policy(&self) -> Result<TrustPolicy> {
        ami_policy(&self.names)
    }
}

/// The AMI trust policy: the KMS crate's default rules for the utility, preceded by the rules of
/// the networked roles: meter X signs only enrolment Interests named for meter X, the DR
/// operator alone signs entitlement commands, the utility operator alone signs revocation and
/// retirement commands, service `r` asks for keys only under `/<u>/ami/KMS/svc/r`, meter
/// commands come from the utility operator (any verb) or the MDMS (reads only), and meter X
/// alone acknowledges DR events as X.
pub fn ami_policy(names: &AmiNames) -> Result<TrustPolicy> {
    let base = TrustPolicy::ami(names.utility())?;
    let mut cfg = base.config().clone();
    let u = names.prefix_str();
    let rule = |id: &str, data: String, signers: Vec<String>| RuleConfig {
        id: id.into(),
        data,
        signer: OneOrMany::Many(signers),
        packet: None,
    };
    // A rule for command Interests only: the answers signed under the same names fall through
    // to the data rules below.
    let command = |id: &str, data: String, signers: Vec<String>| RuleConfig {
        packet: Some(PacketKind::Interest),
        ..rule(id, data, signers)
    };
    let kms = format!("{u}/ami/KMS/KEY/...");
    let head: Vec<RuleConfig> = vec![
        rule(
            "meter-enrolment",
            format!("{u}/ami/KMS/enrol/<id>/..."),
            vec![format!("{u}/ami/meter/<id>/KEY/..."), kms.clone()],
        ),
        // Only the DR operator assigns meters to projects; only the utility operator revokes or
        // retires them. The KMS signs the status answers under the same names.
        rule(
            "dr-entitlements",
            format!("{u}/ami/KMS/cmd/entitle/..."),
            vec![format!("{u}/ami/dr/KEY/..."), kms.clone()],
        ),
        rule(
            "utility-commands",
            format!("{u}/ami/KMS/cmd/..."),
            vec![format!("{u}/ami/operator/KEY/..."), kms.clone()],
        ),
        // Meter commands: the utility operator sends every verb, the MDMS only on-demand
        // reads. The meter signs its answers under the same names (the meter-data rule).
        command(
            "meter-read",
            format!("{u}/ami/meter/<id>/cmd/read/..."),
            vec![
                format!("{u}/ami/operator/KEY/..."),
                format!("{u}/ami/mdms/KEY/..."),
            ],
        ),
        command(
            "meter-commands",
            format!("{u}/ami/meter/<id>/cmd/..."),
            vec![format!("{u}/ami/operator/KEY/...")],
        ),
        // DR acknowledgements: meter X acknowledges only as X; the DR operator signs the
        // receipts under the same names (the dr-events rule).
        command(
            "dr-acks",
            format!("{u}/ami/dr/<p>/ack/<id>/..."),
            vec![format!("{u}/ami/meter/<id>/KEY/...")],
        ),
        // The MDMS signs what it answers under its own name (event receipts).
        rule(
            "mdms-answers",
            format!("{u}/ami/mdms/notify/..."),
            vec![format!("{u}/ami/mdms/KEY/...")],
        ),
        // A service asks for keys only under its own role's name.
        rule(
            "service-keys",
            format!("{u}/ami/KMS/svc/<role>/..."),
            vec![format!("{u}/ami/<role>/KEY/..."), kms],
        ),
    ];
    for (i, r) in head.into_iter().enumerate() {
        cfg.rules.insert(i, r);
    }
    Ok(TrustPolicy::from_config(cfg)?)
}

/// Validates packets against the AMI policy and the root anchor, fetching certificates that are
/// not known yet by their KeyLocator through the forwarder.
///
/// A chain, once validated, is remembered per signing key by the validator's bounded chain
/// cache (never beyond the certificates' NotAfter), so the next packet from the same signer
/// costs one signature check plus the policy rule instead of a walk to the anchor.
pub struct Trust {
    validator: Validator,
    certs: Mutex<CertStore>,
    fetcher: Consumer,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("certs", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// A validator for `names`' policy anchored at `anchor`, fetching certificates on `client`.
    pub fn new(names: &AmiNames, anchor: &Certificate, client: &Client) -> Result<Arc<Self>> {
        Self::with_policy(ami_policy(names)?, anchor, client)
    }

    /// A validator for an explicit trust policy (e.g. a node's `trust.toml`).
    pub fn with_policy(
        policy: TrustPolicy,
        anchor: &Certificate,
        client: &Client,
    ) -> Result<Arc<Self>> {
        // One chain per signer: an MDMS sees every meter, so the cache is sized for a utility
        // (the default 4,096 would be emptied over and over by 100,000 meters).
        let mut validator = Validator::new(policy).with_chain_cache(CHAIN_CACHE_SIGNERS);
        validator.add_anchor(anchor.clone())?;
        Ok(Arc::new(Trust {
            validator,
            certs: Mutex::new(CertStore::new()),
            fetcher: consumer(client, Duration::from_millis(1000), 2),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CertStore> {
        self.certs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a certificate (e.g. one carried inside an enrolment request). It is trusted only
    /// through the chain the validator checks, never by being here.
    pub fn add_certificate(&self, cert: Certificate) {
        self.lock().insert(cert);
    }

    /// Certificates known.
    pub fn certificates(&self) -> usize {
        self.lock().len()
    }

    /// The public key of a validated packet's signer.
    pub fn signer_key(&self, v: &Validated) -> Option<PublicKey> {
        let name = v.chain.first()?;
        self.lock()
            .certificate(name)
            .and_then(|c| c.public_key().copied())
    }

    async fn fetch_certificate(&self, key_locator: &str) -> Result<()> {
        let name = Name::from_uri(key_locator)?;
        let mut i = Interest::new(name);
        i.can_be_prefix = true;
        let data = self.fetcher.fetch_unverified(i).await?;
        self.add_certificate(Certificate::from_data(data)?);
        Ok(())
    }

    /// Validates a Data packet: signature, policy rule for its name, certificate chain to the
    /// anchor (fetching missing certificates).
    pub async fn verify_data(&self, data: &Data) -> Result<Validated> {
        for _ in 0..=MAX_CERT_FETCHES {
            let r = {
                let certs = self.lock();
                self.validator
                    .validate_data(data, &*certs as &dyn CertSource, now_ms())
            };
            match r {
                Err(amicn_kms::Error::CertificateNotFound { key_locator }) => {
                    self.fetch_certificate(&key_locator).await?
                }
                Ok(v) => return Ok(v),
                Err(e) => return Err(e.into()),
            }
        }
        Err(AmiError::protocol(
            &data.name,
            "certificate chain needs too many fetches",
        ))
    }

    /// Validates many Data with one batch signature check; packets whose chain needs a
    /// certificate not known yet are completed one by one with fetching.
    pub async fn verify_batch(&self, packets: &[Data]) -> Vec<Result<Validated>> {
        let first = {
            let certs = self.lock();
            self.validator
                .validate_data_batch(packets, &*certs as &dyn CertSource, now_ms())
        };
        let mut out = Vec::with_capacity(packets.len());
        for (d, r) in packets.iter().zip(first) {
            out.push(match r {
                Err(amicn_kms::Error::CertificateNotFound { .. }) => self.verify_data(d).await,
                other => other.map_err(AmiError::from),
            });
        }
        out
    }

    /// Validates a signed Interest (no certificate fetching: the caller adds what it needs).
    pub fn verify_interest(&self, interest: &Interest) -> Result<Validated> {
        let certs = self.lock();
        Ok(self
            .validator
            .validate_interest(interest, &*certs as &dyn CertSource, now_ms())?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn enrolment_rule_binds_meter_to_its_own_name() {
        let n = AmiNames::new("/u").unwrap();
        let p = ami_policy(&n).unwrap();
        let enrol =
            Name::from_uri("/u/ami/KMS/enrol/7/params-sha256=00").unwrap_or_else(|_| n.enrol(7));
        let m7 = Name::from_uri("/u/ami/meter/7/KEY/k").unwrap();
        let m8 = Name::from_uri("/u/ami/meter/8/KEY/k").unwrap();
        let kms = Name::from_uri("/u/ami/KMS/KEY/k").unwrap();
        assert!(p.check(&enrol, &m7).is_ok());
        assert!(p.check(&enrol, &kms).is_ok());
        assert!(p.check(&enrol, &m8).is_err());
        // Everything else under /u/ami/KMS stays KMS-only.
        assert!(p.check(&n.manifest(3), &m7).is_err());
        assert!(p.check(&n.manifest(3), &kms).is_ok());
        // Readings: only the meter itself.
        assert!(p.check(&n.reading(7, 1), &m7).is_ok());
        assert!(p.check(&n.reading(7, 1), &m8).is_err());
        assert!(
            p.check(
                &n.price("flat", 1),
                &Name::from_uri("/u/ami/price/KEY/k").unwrap()
            )
            .is_ok()
        );
        assert!(p.check(&n.price("flat", 1), &kms).is_err());
        assert!(
            p.check(
                &n.dr_event("p1", 1),
                &Name::from_uri("/u/ami/dr/KEY/k").unwrap()
            )
            .is_ok()
        );
        assert!(p.check(&n.dr_event("p1", 1), &m7).is_err());
        // Meter commands: the operator any verb, the MDMS reads only, never another meter.
        let op = Name::from_uri("/u/ami/operator/KEY/k").unwrap();
        let mdms = Name::from_uri("/u/ami/mdms/KEY/k").unwrap();
        let read = n.meter_command(7, "read");
        let cut = n.meter_command(7, "disconnect");
        assert_eq!(p.check_interest(&read, &op).unwrap(), "meter-read");
        assert_eq!(p.check_interest(&read, &mdms).unwrap(), "meter-read");
        assert!(p.check_interest(&read, &m8).is_err());
        assert_eq!(p.check_interest(&cut, &op).unwrap(), "meter-commands");
        assert!(p.check_interest(&cut, &mdms).is_err());
        assert!(p.check_interest(&cut, &m8).is_err());
        assert!(p.check_interest(&cut, &kms).is_err());
        // The meter never commands itself, but signs its answers there.
        assert!(p.check_interest(&cut, &m7).is_err());
        assert_eq!(p.check(&cut, &m7).unwrap(), "meter-data");
        assert!(p.check(&cut, &op).is_err());
    }

    #[test]
    fn issued_certificates_chain_to_the_anchor() {
        let n = AmiNames::new("/u").unwrap();
        let pki = Pki::new(&n).unwrap();
        let kms = pki.issue(&n.kms()).unwrap();
        let mut v = Validator::new(pki.policy().unwrap());
        v.add_anchor(pki.anchor().clone()).unwrap();
        let mut store = CertStore::new();
        store.insert(kms.cert.clone());
        let mut d = Data::new(n.manifest(2), bytes::Bytes::from_static(b"m"));
        let wire = kms.key.sign_data(&mut d).unwrap();
        let d = Data::decode(wire).unwrap();
        let ok = v
            .validate_data(&d, &store as &dyn CertSource, now_ms())
            .unwrap();
        assert_eq!(ok.rule, "kms-objects");
        // The same packet signed by a meter key is refused by policy.
        let meter = pki.issue(&n.meter(1)).unwrap();
        store.insert(meter.cert.clone());
        let mut d2 = Data::new(n.manifest(2), bytes::Bytes::from_static(b"m"));
        let d2 = Data::decode(meter.key.sign_data(&mut d2).unwrap()).unwrap();
        assert!(
            v.validate_data(&d2, &store as &dyn CertSource, now_ms())
                .is_err()
        );
    }
}
