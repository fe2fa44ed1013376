//! Flat key management (KMSSC): one key per meter, one DR-project (group) key and one broadcast
//! key, both replaced on every membership change and re-sent to every member under its own key —
//! the survey's `2n|K|` unicast row, with nothing sent in broadcast.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroize;

use super::{Knowledge, PREFIX, PublicInfo, Rekeying, Scheme, SchemeError, SchemeResult};
use crate::graph::names::{self, KeyRef};
use crate::graph::{WrapMode, wrap};
use crate::key::{KEY_LEN, SymmetricKey};

const PROJECT: &str = "default";

/// The flat server.
pub struct FlatScheme {
    meters: BTreeMap<u32, ([u8; KEY_LEN], u32)>,
    group: [u8; KEY_LEN],
    bcast: [u8; KEY_LEN],
    epoch: u32,
    rng: StdRng,
}

impl std::fmt::Debug for FlatScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatScheme")
            .field("members", &self.meters.len())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Drop for FlatScheme {
    fn drop(&mut self) {
        self.group.zeroize();
        self.bcast.zeroize();
        for (k, _) in self.meters.values_mut() {
            k.zeroize();
        }
    }
}

impl FlatScheme {
    /// Setup: meters `0..n`, each with its own key, plus a group and a broadcast key.
    pub fn new(n: u32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x464c4154);
        let mut meters = BTreeMap::new();
        for m in 0..n {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            meters.insert(m, (k, 1));
        }
        let mut group = [0u8; KEY_LEN];
        let mut bcast = [0u8; KEY_LEN];
        rng.fill_bytes(&mut group);
        rng.fill_bytes(&mut bcast);
        FlatScheme {
            meters,
            group,
            bcast,
            epoch: 1,
            rng,
        }
    }

    /// New group and broadcast keys, each wrapped under every member's key.
    fn rekey(&mut self, out: &mut Rekeying) {
        self.epoch += 1;
        out.epoch = self.epoch;
        self.rng.fill_bytes(&mut self.group);
        self.rng.fill_bytes(&mut self.bcast);
        out.counts.fresh_keys += 2;
        let g_name = names::key_name(PREFIX, KeyRef::Project(PROJECT), self.epoch);
        let b_name = names::key_name(PREFIX, KeyRef::Root, self.epoch);
        out.wraps.reserve(2 * self.meters.len());
        for (&m, (k, e)) in &self.meters {
            let by = names::key_name(PREFIX, KeyRef::Meter(m), *e);
            for (target, key) in [(&g_name, &self.group), (&b_name, &self.bcast)] {
                let name = format!("{target}/ENCRYPTED-BY{by}");
                out.counts.count_wrap(WrapMode::Unicast);
                out.wraps
                    .push(wrap::seal(&mut self.rng, k, name, WrapMode::Unicast, key));
            }
        }
    }

    fn add(&mut self, meter: u32, out: &mut Rekeying) -> SchemeResult<()> {
        if self.meters.contains_key(&meter) {
            return Err(SchemeError::AlreadyMember { meter });
        }
        let mut k = [0u8; KEY_LEN];
        self.rng.fill_bytes(&mut k);
        out.counts.fresh_keys += 1;
        let e = self.epoch + 1;
        self.meters.insert(meter, (k, e));
        out.provisioned.push((
            meter,
            names::key_name(PREFIX, KeyRef::Meter(meter), e),
            SymmetricKey::from_bytes(k),
        ));
        k.zeroize();
        Ok(())
    }

    fn remove(&mut self, meter: u32) -> SchemeResult<()> {
        let (mut k, _) = self
            .meters
            .remove(&meter)
            .ok_or(SchemeError::NotMember { meter })?;
        k.zeroize();
        Ok(())
    }
}

impl Scheme for FlatScheme {
    fn label(&self) -> &'static str {
        "flat"
    }

    fn members(&self) -> Vec<u32> {
        self.meters.keys().copied().collect()
    }

    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>> {
        let (k, e) = self
            .meters
            .get(&meter)
            .ok_or(SchemeError::NotMember { meter })?;
        Ok(vec![
            (
                names::key_name(PREFIX, KeyRef::Meter(meter), *e),
                SymmetricKey::from_bytes(*k),
            ),
            (
                names::key_name(PREFIX, KeyRef::Project(PROJECT), self.epoch),
                SymmetricKey::from_bytes(self.group),
            ),
            self.group_key(),
        ])
    }

    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        self.batch(&[meter], &[])
    }

    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        self.batch(&[], &[meter])
    }

    fn batch(&mut self, joins: &[u32], leaves: &[u32]) -> SchemeResult<Rekeying> {
        for m in joins {
            if leaves.contains(m) {
                return Err(SchemeError::BadParameter(format!(
                    "meter {m} both joins and leaves in one batch"
                )));
            }
        }
        // Validate before changing anything so a refused batch leaves the state as it was.
        for &m in leaves {
            if !self.meters.contains_key(&m) {
                return Err(SchemeError::NotMember { meter: m });
            }
        }
        for &m in joins {
            if self.meters.contains_key(&m) {
                return Err(SchemeError::AlreadyMember { meter: m });
            }
        }
        let mut out = Rekeying::default();
        for &m in leaves {
            self.remove(m)?;
        }
        for &m in joins {
            self.add(m, &mut out)?;
        }
        self.rekey(&mut out);
        Ok(out)
    }

    fn refresh(&mut self) -> SchemeResult<Rekeying> {
        let mut out = Rekeying::default();
        self.rekey(&mut out);
        Ok(out)
    }

    fn group_key(&self) -> (String, SymmetricKey) {
        (
            names::key_name(PREFIX, KeyRef::Root, self.epoch),
            SymmetricKey::from_bytes(self.bcast),
        )
    }

    fn member_storage(&self, meter: u32) -> Option<u64> {
        self.meters.contains_key(&meter).then_some(3)
    }

    fn server_storage(&self) -> u64 {
        self.meters.len() as u64 + 2
    }

    fn derive(&self, _info: &PublicInfo, _known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])> {
        Vec::new()
    }
}
