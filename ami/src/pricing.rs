//! The pricing publisher: broadcasts tariffs under the broadcast (root) key: flat prices
//! ([`Price`]) and time-of-use / critical-peak tariffs ([`crate::tariff::Tariff`]) with their
//! signed latest pointers.

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
use crate::tariff::{POINTER_FRESHNESS, Tariff, TariffPointer};

/// One version of a tariff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Tariff id.
    pub tariff: String,
    /// Version (the `v=` component).
    pub version: u64,
    /// Price in thousandths of a cent per kWh.
    pub millicents_per_kwh: u64,
    /// Start of validity, seconds since the Unix epoch.
    pub valid_from_s: u64,
}

/// Publishes `/<u>/ami/price/<tariff>/v=<ver>`, encrypted under the current broadcast key and
/// signed with the pricing key.
pub struct PricingPublisher {
    names: AmiNames,
    creds: Credentials,
    keys: Arc<HeadEndKeys>,
    publisher: Publisher,
    freshness: Duration,
}

impl std::fmt::Debug for PricingPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PricingPublisher")
            .field("key", &self.creds.key)
            .finish_non_exhaustive()
    }
}

impl PricingPublisher {
    /// Registers `/<u>/ami/price` on `client`; `freshness` is the prices' FreshnessPeriod.
    pub async fn start(
        names: AmiNames,
        creds: Credentials,
        keys: Arc<HeadEndKeys>,
        client: &Client,
        freshness: Duration,
    ) -> Result<Self> {
        let publisher = Publisher::new(client, creds.key.clone(), None);
        publisher.pin_wire(creds.cert.to_wire())?;
        publisher.serve(names.price_prefix()).await?;
        Ok(PricingPublisher {
            names,
            creds,
            keys,
            publisher,
            freshness,
        })
    }

    /// Validates, encrypts and publishes one version of a TOU/CPP tariff, then its signed
    /// latest pointer `/<u>/ami/price/latest/<tariff>/v=<ver>` (FreshnessPeriod
    /// [`crate::tariff::POINTER_FRESHNESS`]) naming the version's implicit digest; returns the version's name
    /// and the broadcast key name used.
    pub fn publish_tariff(&self, tariff: &Tariff) -> Result<(Name, Name)> {
        tariff.validate()?;
        let (key_name, key) = self
            .keys
            .root_key()
            .ok_or_else(|| AmiError::Config("no broadcast key yet: no meter has joined".into()))?;
        let name = self.names.price(&tariff.tariff, tariff.version);
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content)
            .seal(&name, &tariff.to_json())?;
        let mut d = Data::new(name.clone(), content);
        d.meta_info.freshness_period_ms = Some(self.freshness.as_millis() as u64);
        let data = self.publisher.put_wire(self.creds.key.sign_data(&mut d)?)?;
        let pointer = TariffPointer {
            tariff: tariff.tariff.clone(),
            version: tariff.version,
            digest: hex::encode(data.implicit_digest()),
        };
        let body = serde_json::to_vec(&pointer).map_err(|e| AmiError::Config(e.to_string()))?;
        let mut p = Data::new(
            self.names.tariff_latest(&tariff.tariff, tariff.version),
            bytes::Bytes::from(body),
        );
        p.meta_info.freshness_period_ms = Some(POINTER_FRESHNESS.as_millis() as u64);
        self.publisher.put_wire(self.creds.key.sign_data(&mut p)?)?;
        Ok((name, key_name))
    }

    /// Encrypts and publishes `price`; returns its name and the broadcast key name used.
    pub fn publish(&self, price: &Price) -> Result<(Name, Name)> {
        let (key_name, key) = self
            .keys
            .root_key()
            .ok_or_else(|| AmiError::Config("no broadcast key yet: no meter has joined".into()))?;
        let name = self.names.price(&price.tariff, price.version);
        let plain = serde_json::to_vec(price).map_err(|e| AmiError::Config(e.to_string()))?;
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(&name, &plain)?;
        let mut d = Data::new(name.clone(), content);
        d.meta_info.freshness_period_ms = Some(self.freshness.as_millis() as u64);
        self.publisher.put_wire(self.creds.key.sign_data(&mut d)?)?;
        Ok((name, key_name))
    }
}
