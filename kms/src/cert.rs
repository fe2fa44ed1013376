//! NDN certificates (packet spec "Certificate"): `/<identity>/KEY/<key-id>/<issuer-id>/<version>`,
//! a Data with ContentType KEY, Content = the key's SubjectPublicKeyInfo DER (Ed25519 per RFC 8410,
//! EC P-256 per RFC 5480 or RSA, as ndn-cxx writes them), a FreshnessPeriod of one hour and a
//! ValidityPeriod in its SignatureInfo. Any key type may issue for any other.
//!
//! Trust anchors are self-signed (`issuer-id = self`); other certificates are issued by a key
//! pair whose own certificate chains to an anchor (see [`crate::trust`]).

use std::fmt;

use amicn_tlv::{Component, Data, KeyLocator, MetaInfo, Name, SignatureInfo, ValidityPeriod};
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::identity::{KeyPair, PublicKey};
use crate::signature::{Signer, VerifyKey, verify_data_key};

/// FreshnessPeriod written into certificates (one hour, the spec's recommendation).
pub const CERT_FRESHNESS_MS: u64 = 3_600_000;
/// Issuer id of self-signed certificates.
pub const SELF_ISSUER: &[u8] = b"self";
/// ContentType KEY.
pub const CONTENT_TYPE_KEY: u64 = 2;

/// A validity period in whole seconds since the Unix epoch (UTC), inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First second the certificate is valid.
    pub not_before: u64,
    /// Last second the certificate is valid.
    pub not_after: u64,
}

impl Validity {
    /// Valid from `now_s` for `secs` seconds.
    pub fn starting_now(now_s: u64, secs: u64) -> Self {
        Self {
            not_before: now_s,
            not_after: now_s.saturating_add(secs),
        }
    }

    /// Whether `now_s` lies inside the period.
    pub fn contains(&self, now_s: u64) -> bool {
        self.not_before <= now_s && now_s <= self.not_after
    }

    fn to_tlv(self) -> ValidityPeriod {
        ValidityPeriod {
            not_before: format_timestamp(self.not_before),
            not_after: format_timestamp(self.not_after),
        }
    }

    fn from_tlv(v: &ValidityPeriod) -> Result<Self> {
        Ok(Self {
            not_before: parse_timestamp(&v.not_before)?,
            not_after: parse_timestamp(&v.not_after)?,
        })
    }
}

/// A decoded, structurally valid certificate. The signature is checked by the validator, not here.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    data: Data,
    key: VerifyKey,
    validity: Validity,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("name", &self.data.name.to_string())
            .field("signer", &self.signer().map(|n| n.to_string()))
            .field("not_before", &format_timestamp(self.validity.not_before))
            .field("not_after", &format_timestamp(self.validity.not_after))
            .finish()
    }
}

impl Certificate {
    /// Builds and signs a certificate for `subject`'s public key. `issuer` signs it; pass the same
    /// key pair for a self-signed trust anchor. `issuer_id` is the opaque IssuerId component.
    /// The issuer's key type decides the certificate's SignatureType.
    pub fn issue(
        subject_key_name: &Name,
        subject_public: impl Into<VerifyKey>,
        issuer: &dyn Signer,
        issuer_id: &[u8],
        version: u64,
        validity: Validity,
    ) -> Result<Self> {
        check_key_name(subject_key_name)?;
        let subject_public: VerifyKey = subject_public.into();
        let name = subject_key_name
            .append(Component::generic(Bytes::copy_from_slice(issuer_id)))
            .append(Component::version(version));
        let mut data = Data::new(name, Bytes::from(subject_public.to_spki()));
        data.meta_info = MetaInfo {
            content_type: CONTENT_TYPE_KEY,
            freshness_period_ms: Some(CERT_FRESHNESS_MS),
            ..MetaInfo::default()
        };
        let sig_info = SignatureInfo {
            validity: Some(validity.to_tlv()),
            ..issuer.signature_info()
        };
        let wire = data.sign_with(sig_info, |portion| issuer.sign(portion));
        Self::from_data(Data::decode(wire)?)
    }

    /// A self-signed certificate (trust anchor) for `key`.
    pub fn self_signed(key: &KeyPair, version: u64, validity: Validity) -> Result<Self> {
        Self::issue(
            key.key_name(),
            key.public_key(),
            key,
            SELF_ISSUER,
            version,
            validity,
        )
    }

    /// A self-signed certificate for any signer that has a public key (e.g. an
    /// [`crate::signature::EcdsaSigner`]); `key_name` is `/<identity>/KEY/<key-id>`.
    pub fn self_signed_by(
        signer: &dyn Signer,
        key_name: &Name,
        version: u64,
        validity: Validity,
    ) -> Result<Self> {
        let public = signer.verify_key().ok_or_else(|| Error::NotACertificate {
            name: key_name.to_string(),
            reason: "DigestSha256 and HMAC signers have no public key to certify",
        })?;
        Self::issue(key_name, public, signer, SELF_ISSUER, version, validity)
    }

    /// Checks the certificate rules on a Data: name shape, ContentType KEY, FreshnessPeriod, SPKI
    /// content and a ValidityPeriod.
    pub fn from_data(data: Data) -> Result<Self> {
        let bad = |reason| Error::NotACertificate {
            name: data.name.to_string(),
            reason,
        };
        if !is_cert_name(&data.name) {
            return Err(bad(
                "name is not /<identity>/KEY/<key-id>/<issuer-id>/<version>",
            ));
        }
        if data.meta_info.content_type != CONTENT_TYPE_KEY {
            return Err(bad("ContentType is not KEY (2)"));
        }
        if data.meta_info.freshness_period_ms.is_none() {
            return Err(bad("FreshnessPeriod missing"));
        }
        let validity = data
            .signature_info
            .validity
            .as_ref()
            .ok_or_else(|| bad("SignatureInfo has no ValidityPeriod"))?;
        let validity = Validity::from_tlv(validity)?;
        if validity.not_before > validity.not_after {
            return Err(bad("NotBefore is after NotAfter"));
        }
        let key = VerifyKey::from_spki(&data.content)
            .map_err(|_| bad("Content is not an Ed25519, EC P-256 or RSA SubjectPublicKeyInfo"))?;
        Ok(Self {
            data,
            key,
            validity,
        })
    }

    /// Decodes a certificate from its Data wire encoding.
    pub fn decode(wire: Bytes) -> Result<Self> {
        Self::from_data(Data::decode(wire)?)
    }

    /// The full certificate name.
    pub fn name(&self) -> &Name {
        &self.data.name
    }

    /// `/<identity>/KEY/<key-id>`.
    pub fn key_name(&self) -> Name {
        self.data.name.prefix(self.data.name.len() - 2)
    }

    /// `/<identity>`.
    pub fn identity(&self) -> Name {
        self.data.name.prefix(self.data.name.len() - 4)
    }

    /// The IssuerId component value.
    pub fn issuer_id(&self) -> Vec<u8> {
        self.data
            .name
            .get(self.data.name.len() - 2)
            .map(|c| c.value().to_vec())
            .unwrap_or_default()
    }

    /// The version component, if it is a VersionNameComponent.
    pub fn version(&self) -> Option<u64> {
        self.data
            .name
            .get(self.data.name.len() - 1)
            .and_then(|c| c.as_version())
    }

    /// The certified public key, of any type.
    pub fn key(&self) -> &VerifyKey {
        &self.key
    }

    /// The certified key if it is an Ed25519 key (the AMI roles use only those).
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.key.as_ed25519()
    }

    /// The validity period.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// The KeyLocator name of the issuer, if the certificate carries one.
    pub fn signer(&self) -> Option<&Name> {
        match &self.data.signature_info.key_locator {
            Some(KeyLocator::Name(n)) => Some(n),
            _ => None,
        }
    }

    /// Whether the KeyLocator points at this certificate's own key (a self-signed anchor).
    pub fn is_self_signed(&self) -> bool {
        self.signer()
            .is_some_and(|s| s.is_prefix_of(&self.data.name) && self.key_name().is_prefix_of(s))
    }

    /// Whether `locator` (a key name or a certificate name) designates this certificate.
    pub fn matches_locator(&self, locator: &Name) -> bool {
        locator == &self.data.name || *locator == self.key_name()
    }

    /// Checks the ValidityPeriod against `now_s` (seconds since the Unix epoch).
    pub fn check_validity(&self, now_s: u64) -> Result<()> {
        if now_s < self.validity.not_before {
            return Err(Error::CertificateNotYetValid {
                cert: self.data.name.to_string(),
                not_before: format_timestamp(self.validity.not_before),
            });
        }
        if now_s > self.validity.not_after {
            return Err(Error::CertificateExpired {
                cert: self.data.name.to_string(),
                not_after: format_timestamp(self.validity.not_after),
            });
        }
        Ok(())
    }

    /// Verifies a self-signed certificate's signature with its own key.
    pub fn verify_self_signature(&self) -> Result<()> {
        verify_data_key(&self.data, &self.key)
    }

    /// The underlying Data.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The Data wire encoding.
    pub fn to_wire(&self) -> Bytes {
        self.data
            .wire()
            .cloned()
            .unwrap_or_else(|| self.data.encode())
    }
}

/// Whether `name` has the shape `/<identity>/KEY/<key-id>` (identity may be empty).
pub fn is_key_name(name: &Name) -> bool {
    name.len() >= 2 && name.get(name.len() - 2).is_some_and(|c| is_key_marker(&c))
}

/// Whether `name` has the shape `/<identity>/KEY/<key-id>/<issuer-id>/<version>`.
pub fn is_cert_name(name: &Name) -> bool {
    name.len() >= 4 && name.get(name.len() - 4).is_some_and(|c| is_key_marker(&c))
}

fn is_key_marker(c: &Component) -> bool {
    c.typ() == amicn_tlv::tt::GENERIC_COMPONENT && c.value() == b"KEY"
}

pub(crate) fn check_key_name(name: &Name) -> Result<()> {
    if is_key_name(name) {
        Ok(())
    } else {
        Err(Error::BadKeyName {
            name: name.to_string(),
            reason: "expected /<identity>/KEY/<key-id>",
        })
    }
}

/// Formats seconds since the Unix epoch as the ValidityPeriod string `YYYYMMDDThhmmss` (UTC).
pub fn format_timestamp(secs: u64) -> String {
    amicn_tlv::sig::format_timestamp(secs)
}

/// Parses `YYYYMMDDThhmmss` (UTC) into seconds since the Unix epoch. Dates that do not exist
/// (February 30, second 60) are rejected: the string must be the canonical form of its value.
pub fn parse_timestamp(s: &str) -> Result<u64> {
    amicn_tlv::sig::parse_timestamp(s)
        .filter(|&t| format_timestamp(t) == s)
        .ok_or_else(|| Error::BadTimestamp {
            value: s.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_golden() {
        assert_eq!(format_timestamp(0), "19700101T000000");
        // 2000-02-29 12:34:56 UTC = 951827696
        assert_eq!(format_timestamp(951_827_696), "20000229T123456");
        assert_eq!(parse_timestamp("20000229T123456").unwrap(), 951_827_696);
        // 2026-11-25 00:00:00 UTC
        assert_eq!(parse_timestamp("20261125T000000").unwrap(), 1_795_564_800);
        assert_eq!(format_timestamp(4_102_444_799), "20991231T235959");
        for bad in [
            "20010229T000000",
            "2026112T000000",
            "20261125 000000",
            "20261325T000000",
            "20261125T240000",
            "+0261125T000000",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        for s in [
            0u64,
            59,
            86_399,
            86_400,
            1_000_000_000,
            1_795_564_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(s)).unwrap(), s);
        }
    }
}
