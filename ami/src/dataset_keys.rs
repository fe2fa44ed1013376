//! Meter data sets encrypted under the KMS's keys.
//!
//! `amicn data import --encrypt KIND --key-node NODE` seals every reading's content in the
//! same envelope the meters use ([`amicn_kms::envelope`], ChaCha20-Poly1305 bound to the Data
//! name), under a key the KMS hands to the role of `NODE`:
//!
//! | KIND | key | node role | who can read the data set |
//! | --- | --- | --- | --- |
//! | `meter` | the meter's newest reading key | `mdms` | the MDMS, and the meter itself (its user key derives the reading key) |
//! | `broadcast` | the current broadcast (root) key | `pricing` | every current member |
//! | `project:P` | the current key of DR project P | `dr` | the project's members |
//!
//! The envelope names its key (with the epoch), so `amicn data query --key-node NODE` finds the
//! key among those the KMS gives that node, and a reader without it learns nothing but names
//! and sizes. A reading of a meter the KMS has no key for is a bad row, reported with its line.

use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_tlv::Name;
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;

/// Which key a data set is encrypted under (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetKey {
    /// Each reading under its meter's reading key.
    Meter,
    /// The broadcast key.
    Broadcast,
    /// The key of one DR project.
    Project(String),
}

impl std::str::FromStr for DatasetKey {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "meter" => Ok(DatasetKey::Meter),
            "broadcast" => Ok(DatasetKey::Broadcast),
            _ => match s.strip_prefix("project:") {
                Some(p) if !p.is_empty() => Ok(DatasetKey::Project(p.to_string())),
                _ => Err(format!("{s:?}: use meter, broadcast or project:NAME")),
            },
        }
    }
}

impl DatasetKey {
    /// The node role whose service keys hold this key.
    pub fn node_role(&self) -> &'static str {
        match self {
            DatasetKey::Meter => "mdms",
            DatasetKey::Broadcast => "pricing",
            DatasetKey::Project(_) => "dr",
        }
    }

    /// Seals `plain` as the content of the Data `name` carrying a reading of `meter`.
    pub fn seal(&self, keys: &HeadEndKeys, meter: u32, name: &Name, plain: &[u8]) -> Result<Bytes> {
        let (key_name, key) = match self {
            DatasetKey::Meter => keys.newest_user_key(meter).ok_or_else(|| {
                AmiError::Config(format!("the KMS gave no reading key of meter {meter}"))
            })?,
            DatasetKey::Broadcast => keys
                .root_key()
                .ok_or_else(|| AmiError::Config("the KMS gave no broadcast key".into()))?,
            DatasetKey::Project(p) => keys
                .project_key(p)
                .ok_or_else(|| AmiError::Config(format!("the KMS gave no key of project {p:?}")))?,
        };
        Ok(EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(name, plain)?)
    }
}

/// Opens the sealed content of the Data `name` with whichever of `keys` it names.
pub fn open(keys: &HeadEndKeys, name: &Name, content: &Bytes) -> Result<Zeroizing<Vec<u8>>> {
    let ec = EncryptedContent::decode(content.clone())?;
    let key = keys.key_named(&ec.key_name).ok_or_else(|| {
        AmiError::Config(format!("no key {} among those the KMS gave", ec.key_name))
    })?;
    Ok(EnvelopeKey::derive(&key, &ec.key_name, Purpose::Content).open_decoded(name, &ec)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::SymmetricKey;

    fn keys() -> HeadEndKeys {
        let k = HeadEndKeys::default();
        for (epoch, byte) in [(3u64, 3u8), (5, 5)] {
            k.add_user(
                7,
                Name::from_uri(&format!("/u/ami/meter/7/READ/v={epoch}")).unwrap(),
                SymmetricKey::from_bytes([byte; 32]),
                1,
            );
        }
        k.set_root(Some((
            Name::from_uri("/u/ami/price/KEY/v=5").unwrap(),
            SymmetricKey::from_bytes([9; 32]),
        )));
        k.set_project(
            "p1",
            Some((
                Name::from_uri("/u/ami/dr/p1/KEY/v=5").unwrap(),
                SymmetricKey::from_bytes([11; 32]),
            )),
        );
        k
    }

    #[test]
    fn every_kind_seals_under_its_key_and_opens_only_with_it() {
        let k = keys();
        let name = Name::from_uri("/u/ami/meter/7/reading/t=900").unwrap();
        for kind in ["meter", "broadcast", "project:p1"] {
            let kind: DatasetKey = kind.parse().unwrap();
            let sealed = kind.seal(&k, 7, &name, b"reading").unwrap();
            assert_eq!(open(&k, &name, &sealed).unwrap().as_slice(), b"reading");
            // Bound to the name: the same content under another name does not open.
            let other = Name::from_uri("/u/ami/meter/7/reading/t=1800").unwrap();
            assert!(open(&k, &other, &sealed).is_err());
            // Without the key, nothing opens.
            assert!(open(&HeadEndKeys::default(), &name, &sealed).is_err());
        }
        // The meter kind takes the newest epoch's key.
        let sealed = DatasetKey::Meter.seal(&k, 7, &name, b"x").unwrap();
        let ec = EncryptedContent::decode(sealed).unwrap();
        assert_eq!(ec.key_name.to_string(), "/u/ami/meter/7/READ/v=5");
        assert!(DatasetKey::Meter.seal(&k, 8, &name, b"x").is_err());
        assert!(
            DatasetKey::Project("p2".into())
                .seal(&k, 7, &name, b"x")
                .is_err()
        );
    }

    #[test]
    fn kinds_parse_or_say_what_is_allowed() {
        assert_eq!("project:p2".parse(), Ok(DatasetKey::Project("p2".into())));
        let e = "project:".parse::<DatasetKey>().unwrap_err();
        assert!(e.contains("meter, broadcast or project:NAME"), "{e}");
        assert!("group".parse::<DatasetKey>().is_err());
    }
}
