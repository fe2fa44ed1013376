//! Keys the KMS hands to the head-end roles that run beside it.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use amicn_kms::SymmetricKey;
use amicn_tlv::Name;

#[derive(Default)]
struct Inner {
    /// User keys by key name (`/<u>/ami/meter/<id>/KEK/v=<e>`), with the meter they belong to.
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

/// What the MDMS, the pricing publisher and the DR operator get from the KMS: each meter's user
/// keys (to decrypt readings), the current broadcast and project keys (to encrypt prices and DR
/// events), the set of current members and the revocation list.
///
/// This is the in-process form of the utility's internal head-end key channel; the KMS updates it
/// after every committed epoch and the roles only read it. Keys leave it as explicit duplicates.
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

    /// The user key named `key_name` and the meter it belongs to.
    pub fn user_key(&self, key_name: &Name) -> Option<(u32, SymmetricKey)> {
        self.read()
            .user
            .get(key_name)
            .map(|(m, k)| (*m, k.duplicate()))
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

    pub(crate) fn add_user(&self, meter: u32, key_name: Name, key: SymmetricKey) {
        let mut g = self.write();
        g.user.insert(key_name, (meter, key));
        g.departed.remove(&meter);
        g.active.entry(meter).or_insert_with(crate::net::now_us);
    }

    /// Marks `meter` as departed now. Its user keys are kept so that readings it stamped while
    /// a member (still on their way to the MDMS) can be opened; the MDMS refuses later ones.
    pub(crate) fn depart(&self, meter: u32) {
        let mut g = self.write();
        g.active.remove(&meter);
        let now = crate::net::now_us();
        g.departed.entry(meter).or_insert(now);
    }

    pub(crate) fn revoke(&self, meter: u32) {
        let now = crate::net::now_us();
        self.write().revoked.entry(meter).or_insert(now);
    }

    pub(crate) fn set_root(&self, key: Option<(Name, SymmetricKey)>) {
        self.write().root = key;
    }

    pub(crate) fn set_project(&self, project: &str, key: Option<(Name, SymmetricKey)>) {
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
