//! The demand-response operator: sends events to the members of one DR project under that
//! project's group key.

use std::sync::Arc;
use std::time::Duration;

use amicn_face::client::Client;
use amicn_kms::envelope::{EnvelopeKey, Purpose};
use amicn_tlv::{Data, Name};
use serde::{Deserialize, Serialize};

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::Publisher;
use crate::pki::Credentials;

/// One DR event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrEvent {
    /// DR project.
    pub project: String,
    /// Sequence number (the `seq=` component).
    pub seq: u64,
    /// Start, seconds since the Unix epoch.
    pub start_s: u64,
    /// Duration in seconds.
    pub duration_s: u32,
    /// Requested load reduction per meter, W.
    pub reduce_w: u32,
}

/// Publishes `/<u>/ami/dr/<p>/event/seq=<n>`, encrypted under project `p`'s current key and
/// signed with the DR operator's key.
pub struct DrOperator {
    names: AmiNames,
    creds: Credentials,
    keys: Arc<HeadEndKeys>,
    publisher: Publisher,
    freshness: Duration,
}

impl std::fmt::Debug for DrOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrOperator")
            .field("key", &self.creds.key)
            .finish_non_exhaustive()
    }
}

impl DrOperator {
    /// Registers `/<u>/ami/dr/<p>/event` for every project and `/<u>/ami/dr/KEY` (its
    /// certificate) on `client`.
    pub async fn start(
        names: AmiNames,
        creds: Credentials,
        keys: Arc<HeadEndKeys>,
        client: &Client,
        projects: &[String],
        freshness: Duration,
    ) -> Result<Self> {
        let publisher = Publisher::new(client, creds.key.clone(), None);
        publisher.pin_wire(creds.cert.to_wire())?;
        publisher.serve(creds.key.key_name().clone()).await?;
        for p in projects {
            publisher.serve(names.dr_event_prefix(p)).await?;
        }
        Ok(DrOperator {
            names,
            creds,
            keys,
            publisher,
            freshness,
        })
    }

    /// Encrypts and publishes `event`; returns its name and the project key name used.
    pub fn publish(&self, event: &DrEvent) -> Result<(Name, Name)> {
        let (key_name, key) = self.keys.project_key(&event.project).ok_or_else(|| {
            AmiError::Config(format!(
                "no key for DR project {:?}: it has no members",
                event.project
            ))
        })?;
        let name = self.names.dr_event(&event.project, event.seq);
        let plain = serde_json::to_vec(event).map_err(|e| AmiError::Config(e.to_string()))?;
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(&name, &plain)?;
        let mut d = Data::new(name.clone(), content);
        d.meta_info.freshness_period_ms = Some(self.freshness.as_millis() as u64);
        self.publisher.put_wire(self.creds.key.sign_data(&mut d)?)?;
        Ok((name, key_name))
    }
}
