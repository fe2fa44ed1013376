//! The head-end services' side of the key channel, and signed commands to the KMS.
//!
//! A service (`mdms`, `price` or `dr`) asks the KMS for exactly the keys its job needs with a
//! signed Interest `/<u>/ami/KMS/svc/<role>/<params-digest>` carrying a fresh X25519 key; the
//! KMS answers with its own ephemeral key, a salt and the key bundle sealed under the key both
//! sides derive (X25519 + HKDF bound to both names, as meters enrol). The answer is signed by
//! the KMS and checked against the trust rules before anything in it is used. The MDMS also
//! follows the published revocation list.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amicn_consumer::Consumer;
use amicn_face::client::Client;
use amicn_kms::SymmetricKey;
use amicn_kms::envelope::{EnvelopeKey, Purpose};
use amicn_kms::establish::{EphemeralAgreement, Role};
use amicn_kms::identity::KeyPair;
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::{consumer, fetch_segmented};
use crate::pki::Trust;
use crate::wire::{self, KeyReply, KeyRequest, Status};

/// ContentType NACK.
const CONTENT_TYPE_NACK: u64 = 3;
/// Pages of reading keys fetched in one refresh at most (64 keys each).
const MAX_PAGES: usize = 1 << 16;

/// Fetches a service's keys from the KMS into a [`HeadEndKeys`] (see the module docs).
pub struct KeyClient {
    names: AmiNames,
    role: String,
    key: Arc<KeyPair>,
    trust: Arc<Trust>,
    fetch: Consumer,
    keys: Arc<HeadEndKeys>,
    /// Refreshes that completed.
    pub refreshes: AtomicU64,
    /// Refreshes that failed.
    pub failures: AtomicU64,
    /// Received Data that failed validation.
    pub rejected_data: AtomicU64,
}

impl std::fmt::Debug for KeyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyClient")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Sends a signed command Interest `/<u>/ami/KMS/cmd/<verb>` with `params` and returns the
/// KMS's verified status; a status other than 200 is an [`AmiError::Refused`].
pub async fn send_command(
    client: &Client,
    names: &AmiNames,
    trust: &Trust,
    key: &KeyPair,
    verb: &str,
    params: Bytes,
) -> Result<Status> {
    let mut i = Interest::new(names.command(verb));
    i.app_parameters = Some(params);
    i.lifetime_ms = Some(4_000);
    i.must_be_fresh = true;
    key.sign_interest(&mut i, crate::net::signature_time())?;
    let c = consumer(client, Duration::from_secs(4), 1);
    let d = c.fetch_unverified(i).await?;
    trust.verify_data(&d).await?;
    let st = Status::decode(d.content.clone())?;
    if st.code != 200 {
        return Err(AmiError::Refused {
            what: format!("command {verb}"),
            code: st.code,
            why: st.text,
        });
    }
    Ok(st)
}

/// Entitles meters to DR projects (each meter's complete set), as the DR operator.
pub async fn entitle(
    client: &Client,
    names: &AmiNames,
    trust: &Trust,
    dr_key: &KeyPair,
    assignments: &[(u32, Vec<String>)],
) -> Result<Status> {
    let mut last = None;
    // Batches small enough for one signed Interest.
    for chunk in assignments.chunks(256) {
        let p = wire::encode_assignments(chunk);
        last = Some(send_command(client, names, trust, dr_key, "entitle", p).await?);
    }
    last.ok_or_else(|| AmiError::Config("no assignments given".into()))
}

/// Revokes (`verb` = "revoke") or retires (`"leave"`) a meter, as the utility operator.
pub async fn meter_command(
    client: &Client,
    names: &AmiNames,
    trust: &Trust,
    operator_key: &KeyPair,
    verb: &str,
    meter: u32,
) -> Result<Status> {
    send_command(
        client,
        names,
        trust,
        operator_key,
        verb,
        wire::encode_meter(meter),
    )
    .await
}

impl KeyClient {
    /// A key client for service `role` (`mdms`, `price` or `dr`) signing with `key`.
    pub fn new(
        names: AmiNames,
        role: &str,
        key: Arc<KeyPair>,
        trust: Arc<Trust>,
        client: &Client,
        keys: Arc<HeadEndKeys>,
    ) -> Arc<Self> {
        Arc::new(KeyClient {
            names,
            role: role.to_string(),
            key,
            trust,
            fetch: consumer(client, Duration::from_secs(2), 2),
            keys,
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected_data: AtomicU64::new(0),
        })
    }

    /// The keys this client fills.
    pub fn keys(&self) -> &Arc<HeadEndKeys> {
        &self.keys
    }

    async fn request(
        &self,
        kind: &str,
        next: Option<u64>,
    ) -> Result<(Vec<wire::KeyEntry>, Option<u64>)> {
        let eph = EphemeralAgreement::generate();
        let req = KeyRequest {
            x25519: eph.public_key(),
            kind: kind.to_string(),
            next,
        };
        let mut i = Interest::new(self.names.service_keys(&self.role));
        i.app_parameters = Some(req.encode());
        i.lifetime_ms = Some(2_000);
        i.must_be_fresh = true;
        self.key
            .sign_interest(&mut i, crate::net::signature_time())?;
        let d: Data = self.fetch.fetch_unverified(i).await?;
        if let Err(e) = self.trust.verify_data(&d).await {
            self.rejected_data.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        if d.meta_info.content_type == CONTENT_TYPE_NACK {
            let st = Status::decode(d.content.clone())?;
            return Err(AmiError::Refused {
                what: format!("{} key request", self.role),
                code: st.code,
                why: st.text,
            });
        }
        let rep = KeyReply::decode(d.content.clone())?;
        let k: SymmetricKey = eph.agree(
            Role::Initiator,
            &self.names.role(&self.role),
            &self.names.kms(),
            &rep.x25519,
            &rep.salt,
        )?;
        let plain = EnvelopeKey::derive(
            &k,
            &self.names.service_keys(&self.role),
            Purpose::Other("service-keys"),
        )
        .open(&d.name, &rep.sealed)?;
        wire::decode_bundle(&plain)
    }

    /// Fetches the role's keys once and installs them; returns how many keys arrived.
    pub async fn refresh(&self) -> Result<usize> {
        let r = self.refresh_inner().await;
        match &r {
            Ok(_) => self.refreshes.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failures.fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    async fn refresh_inner(&self) -> Result<usize> {
        match self.role.as_str() {
            "mdms" => {
                let mut seen = std::collections::BTreeSet::new();
                let mut next = None;
                let mut n = 0;
                for _ in 0..MAX_PAGES {
                    let (entries, more) = self.request("readings", next).await?;
                    for e in entries {
                        if let Some(m) = e.meter {
                            seen.insert(m);
                            self.keys.add_user(
                                m,
                                e.name,
                                SymmetricKey::from_bytes(*e.key),
                                e.since_us.unwrap_or_else(crate::net::now_us),
                            );
                            n += 1;
                        }
                    }
                    match more {
                        Some(c) => next = Some(c),
                        None => break,
                    }
                }
                for (m, _) in self.keys.active_meters() {
                    if !seen.contains(&m) {
                        self.keys.depart(m);
                    }
                }
                self.follow_revocations().await?;
                Ok(n)
            }
            "price" => {
                let (entries, _) = self.request("broadcast", None).await?;
                let n = entries.len();
                self.keys.set_root(
                    entries
                        .into_iter()
                        .next()
                        .map(|e| (e.name, SymmetricKey::from_bytes(*e.key))),
                );
                Ok(n)
            }
            "dr" => {
                let (entries, _) = self.request("projects", None).await?;
                let n = entries.len();
                let at = self.names.utility().len() + 2;
                for e in entries {
                    let Some(p) = e.name.get(at) else { continue };
                    let p = String::from_utf8_lossy(p.value()).into_owned();
                    self.keys
                        .set_project(&p, Some((e.name, SymmetricKey::from_bytes(*e.key))));
                }
                Ok(n)
            }
            other => Err(AmiError::Config(format!(
                "no key channel for role {other:?} (mdms, price or dr)"
            ))),
        }
    }

    /// Fetches the newest revocation list and records every revocation in it.
    pub async fn follow_revocations(&self) -> Result<()> {
        let mut i = Interest::new(self.names.revocations_prefix());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        let d = match self.fetch.fetch_unverified(i).await {
            Ok(d) => d,
            // Nothing revoked yet: nothing published.
            Err(_) => return Ok(()),
        };
        let base = self.names.revocations_prefix().len();
        let Some(version) = d.name.get(base).filter(|c| c.as_version().is_some()) else {
            return Err(AmiError::protocol(&d.name, "not a revocation list name"));
        };
        let prefix: Name = d.name.prefix(base).append(version);
        let (content, _) =
            fetch_segmented(&self.fetch, &self.trust, &prefix, &self.rejected_data).await?;
        for (m, at) in wire::decode_revocations(Bytes::from(content))? {
            self.keys.revoke_at(m, at);
        }
        Ok(())
    }

    /// Refreshes every `every` until the task is dropped.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::debug!("{} key refresh: {e}", self.role);
            }
            tokio::time::sleep(every).await;
        }
    }
}
