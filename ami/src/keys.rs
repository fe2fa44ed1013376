//! The keys the head-end roles work with, and how a reading key is derived from a user key.
//!
//! A meter encrypts its readings under a *reading key* derived one-way from its user key (HKDF,
//! labelled with the reading key's name). The MDMS holds reading keys only: holding every one
//! of them yields no user key, hence no tree, project or broadcast key.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use amicn_kms::SymmetricKey;
use amicn_kms::envelope::{Purpose, derive_subkey};
use amicn_tlv::{Component, Name};
use bytes::Bytes;

use crate::error::{AmiError, Result};

/// The reading key of the user key named `user_key_name` (`/<u>/ami/meter/<id>/KEK/v=<e>`):
/// named `/<u>/ami/meter/<id>/READ/v=<e>`, derived by HKDF from the user key.
pub fn reading_key(user_key: &SymmetricKey, user_key_name: &Name) -> Result<(Name, SymmetricKey)> {
    let n = user_key_name.len();
    let kek = user_key_name.get(n.wrapping_sub(2));
    let version = user_key_name.last();
    match (kek, version) {
        (Some(k), Some(v)) if n >= 2 && k.value() == b"KEK" && v.as_version().is_some() => {
            let name = user_key_name
                .prefix(n - 2)
                .append(Component::generic(Bytes::from_static(b"READ")))
                .append(v);
            let key = derive_subkey(user_key, &name, Purpose::Other("reading-key"));
            Ok((name, key))
        }
        _ => Err(AmiError::protocol(
            user_key_name,
            "not a user key name (.../KEK/v=<epoch>)",
        )),
    }
}

#[derive(Default)]
struct Inner {
    /// Reading keys by key name (`/<u>/ami/meter/<id>/READ/v=<e>`), with their meter.
    user: HashMap<Name, (u32, SymmetricKey)>,
    root: Option<(Name, SymmetricKey)>,
    projects: HashMap<String, (Name, SymmetricKey)>,
    /// Current members and when they became members (µs since the Unix epoch).
    active: BTreeMap<u32, u64>,
    /// Meters that left, and when (µs): their readings stamped before that stay decryptable.
    departed: HashMap<u32, u64>,
    /// Revoked meters, and when (µs).
    revoked: HashMap<u32, u64>,
}

/// What the MDMS, the pricing publisher and the DR operator hold: each meter's reading keys (to
/// decrypt readings), the current broadcast and project keys (to encrypt prices and DR events),
/// the set of current members and the revocation list.
///
/// Networked roles fill it from the KMS with signed key requests ([`crate::KeyClient`]); in one
/// process the KMS updates it after every committed epoch. Keys leave it as explicit duplicates.
#[derive(Default)]
pub struct HeadEndKeys {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for HeadEndKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.read();
        f.debug_struct("HeadEndKeys")
            .field("user_keys", &g.user.len())
            .field("active", &g.active.len())
            .field("revoked", &g.revoked.len())
            .finish_non_exhaustive()
    }
}

impl HeadEndKeys {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The reading key named `key_name` and the meter it belongs to.
    pub fn user_key(&self, key_name: &Name) -> Option<(u32, SymmetricKey)> {
        self.read()
            .user
            .get(key_name)
            .map(|(m, k)| (*m, k.duplicate()))
    }

    /// The newest reading key of `meter` (highest epoch) and its name.
    pub fn newest_user_key(&self, meter: u32) -> Option<(Name, SymmetricKey)> {
        self.read()
            .user
            .iter()
            .filter(|(_, (m, _))| *m == meter)
            .max_by_key(|(n, _)| n.last().and_then(|c| c.as_version()).unwrap_or(0))
            .map(|(n, (_, k))| (n.clone(), k.duplicate()))
    }

    /// Any key held under `key_name`: a reading key, the broadcast key or a project key.
    pub fn key_named(&self, key_name: &Name) -> Option<SymmetricKey> {
        let g = self.read();
        if let Some((_, k)) = g.user.get(key_name) {
            return Some(k.duplicate());
        }
        g.root
            .iter()
            .chain(g.projects.values())
            .find(|(n, _)| n == key_name)
            .map(|(_, k)| k.duplicate())
    }

    /// The current broadcast key and its name (with epoch).
    pub fn root_key(&self) -> Option<(Name, SymmetricKey)> {
        self.read()
            .root
            .as_ref()
            .map(|(n, k)| (n.clone(), k.duplicate()))
    }

    /// The current key of DR project `project` and its name (with epoch).
    pub fn project_key(&self, project: &str) -> Option<(Name, SymmetricKey)> {
        self.read()
            .projects
            .get(project)
            .map(|(n, k)| (n.clone(), k.duplicate()))
    }

    /// Current members, ascending, with the time (µs since the Unix epoch) they became members.
    pub fn active_meters(&self) -> Vec<(u32, u64)> {
        self.read().active.iter().map(|(m, t)| (*m, *t)).collect()
    }

    /// When `meter` was revoked (µs since the Unix epoch), if it was.
    pub fn revoked_at(&self, meter: u32) -> Option<u64> {
        self.read().revoked.get(&meter).copied()
    }

    /// When `meter` left the key graph (µs since the Unix epoch), if it did.
    pub fn departed_at(&self, meter: u32) -> Option<u64> {
        self.read().departed.get(&meter).copied()
    }

    /// Whether `meter` is a current member here.
    pub fn has_member(&self, meter: u32) -> bool {
        self.read().active.contains_key(&meter)
    }

    /// Adds the reading key of `meter` (a member since `since_us`).
    pub fn add_user(&self, meter: u32, key_name: Name, key: SymmetricKey, since_us: u64) {
        let mut g = self.write();
        g.user.insert(key_name, (meter, key));
        g.departed.remove(&meter);
        g.active.entry(meter).or_insert(since_us);
    }

    /// Marks `meter` as departed now. Its user keys are kept so that readings it stamped while
    /// a member (still on their way to the MDMS) can be opened; the MDMS refuses later ones.
    pub fn depart(&self, meter: u32) {
        let mut g = self.write();
        g.active.remove(&meter);
        let now = crate::net::now_us();
        g.departed.entry(meter).or_insert(now);
    }

    /// Records that `meter` is revoked since `at_us`.
    pub fn revoke_at(&self, meter: u32, at_us: u64) {
        self.write().revoked.entry(meter).or_insert(at_us);
    }

    /// Replaces the current broadcast key.
    pub fn set_root(&self, key: Option<(Name, SymmetricKey)>) {
        self.write().root = key;
    }

    /// Replaces the current key of `project`.
    pub fn set_project(&self, project: &str, key: Option<(Name, SymmetricKey)>) {
        let mut g = self.write();
        match key {
            Some(k) => {
                g.projects.insert(project.to_string(), k);
            }
            None => {
                g.projects.remove(project);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reading_keys_are_named_and_one_way() {
        let uk = SymmetricKey::from_bytes([9; 32]);
        let n = Name::from_uri("/u/ami/meter/7/KEK/v=3").unwrap();
        let (rn, rk) = reading_key(&uk, &n).unwrap();
        assert_eq!(rn.to_string(), "/u/ami/meter/7/READ/v=3");
        assert_ne!(rk.as_bytes(), uk.as_bytes());
        let (_, again) = reading_key(&uk, &n).unwrap();
        assert_eq!(again.as_bytes(), rk.as_bytes());
        assert!(reading_key(&uk, &Name::from_uri("/u/ami/meter/7/READ/v=3").unwrap()).is_err());
    }
}
