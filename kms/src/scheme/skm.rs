//! SKM-style hybrid: identity-based key establishment for each meter's individual key, a key graph
//! for the group keys.
//!
//! The KMS is the private-key generator of [`crate::ibe`]. Every meter holds the identity key of
//! its name `/<utility>/ami/meter/<id>` (issued at manufacture or registration); the MDMS holds
//! the one of `/<utility>/ami/mdms`. A meter's leaf key in the key graph is their
//! non-interactive agreement, which both ends compute from their own identity key and the other's
//! name: enrolment and joins transport no individual key, and the only rekey traffic is the key
//! graph's ([`super::lkh`], run here without the LKH+ join ratchet, so a join re-sends the new
//! path keys as SKM does).
//!
//! In [`Rekeying::provisioned`] the joiner's leaf key is listed as for every scheme, but here it
//! stands for what the meter computes itself; nothing is sent for it. The pairwise key of a meter
//! is the same on every stay (it is a function of the two names and the PKG): a meter that leaves
//! and rejoins gets its old leaf key back under a new name, which gives it nothing it did not
//! already hold.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::lkh::LkhScheme;
use super::{Knowledge, PREFIX, PublicInfo, Rekeying, Scheme, SchemeError, SchemeResult};
use crate::ibe::{IdentityKey, Pkg};
use crate::key::{KEY_LEN, SymmetricKey};
use amicn_tlv::Name;

/// SKM: identity-based leaf keys over a multi-group LKH graph.
pub struct SkmScheme {
    lkh: LkhScheme,
    pkg: Pkg,
    mdms: IdentityKey,
    agreements: u64,
}

impl std::fmt::Debug for SkmScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkmScheme")
            .field("lkh", &self.lkh)
            .field("agreements", &self.agreements)
            .finish_non_exhaustive()
    }
}

/// The identity of meter `m`: `/<utility>/ami/meter/<m>`.
pub fn meter_identity(m: u32) -> Name {
    name(&format!("{PREFIX}/ami/meter/{m}"))
}

/// The MDMS's identity: `/<utility>/ami/mdms`.
pub fn mdms_identity() -> Name {
    name(&format!("{PREFIX}/ami/mdms"))
}

fn name(uri: &str) -> Name {
    // Built from PREFIX and a number: always a valid URI.
    Name::from_uri(uri).unwrap_or_default()
}

fn agree(mdms: &IdentityKey, m: u32) -> SchemeResult<SymmetricKey> {
    mdms.agree(&meter_identity(m))
        .map_err(|e| SchemeError::BadParameter(e.to_string()))
}

impl SkmScheme {
    /// Setup: a PKG (master secret from `seed`), meters `0..n` enrolled in `projects` of a tree
    /// of degree `degree`, each leaf key from the MDMS's agreement with the meter (`n`
    /// pairings).
    pub fn new(n: u32, degree: u32, projects: &[&str], seed: u64) -> SchemeResult<Self> {
        let pkg = Pkg::generate(&mut StdRng::seed_from_u64(seed ^ 0x534b4d));
        let mdms = pkg.extract(&mdms_identity());
        let mut failed = None;
        let mut leaf = |m: u32| match agree(&mdms, m) {
            Ok(k) => k,
            Err(e) => {
                failed = Some(e);
                SymmetricKey::from_bytes([0; KEY_LEN])
            }
        };
        let lkh = LkhScheme::new_keyed(n, degree, projects, false, false, seed, Some(&mut leaf))?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(SkmScheme {
            lkh,
            pkg,
            mdms,
            agreements: u64::from(n),
        })
    }

    /// The identity key the PKG issues to meter `m` (what the meter holds from manufacture).
    pub fn meter_key(&self, m: u32) -> IdentityKey {
        self.pkg.extract(&meter_identity(m))
    }

    /// Identity-based agreements the MDMS has run (one pairing each).
    pub fn agreements(&self) -> u64 {
        self.agreements
    }

    /// The key graph under the scheme.
    pub fn lkh(&self) -> &LkhScheme {
        &self.lkh
    }

    fn leaf(&mut self, m: u32) -> SchemeResult<SymmetricKey> {
        self.agreements += 1;
        agree(&self.mdms, m)
    }
}

impl Scheme for SkmScheme {
    fn label(&self) -> &'static str {
        "skm"
    }

    fn members(&self) -> Vec<u32> {
        self.lkh.members()
    }

    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>> {
        self.lkh.enrolment_keys(meter)
    }

    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        if self.lkh.graph().is_member(meter) {
            return Err(SchemeError::AlreadyMember { meter });
        }
        let k = self.leaf(meter)?;
        self.lkh.join_keyed(meter, k)
    }

    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        self.lkh.leave(meter)
    }

    fn batch(&mut self, joins: &[u32], leaves: &[u32]) -> SchemeResult<Rekeying> {
        let mut keyed = Vec::with_capacity(joins.len());
        for &m in joins {
            keyed.push((m, self.leaf(m)?));
        }
        self.lkh.batch_keyed(keyed, leaves)
    }

    fn refresh(&mut self) -> SchemeResult<Rekeying> {
        self.lkh.refresh()
    }

    fn group_key(&self) -> (String, SymmetricKey) {
        self.lkh.group_key()
    }

    fn member_storage(&self, meter: u32) -> Option<u64> {
        self.lkh.member_storage(meter)
    }

    fn server_storage(&self) -> u64 {
        self.lkh.server_storage()
    }

    fn derive(&self, info: &PublicInfo, known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])> {
        self.lkh.derive(info, known)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn leaf_keys_are_the_meters_own_agreement_and_nothing_is_sent_for_them() {
        let mut s = SkmScheme::new(4, 2, &[], 9).unwrap();
        let mdms = mdms_identity();
        for m in 0..4 {
            let own = s.meter_key(m).agree(&mdms).unwrap();
            let (leaf_name, leaf) = &s.enrolment_keys(m).unwrap()[0];
            assert!(leaf_name.contains("/meter/"), "{leaf_name}");
            assert_eq!(leaf.as_bytes(), own.as_bytes(), "meter {m}");
        }
        let r = s.join(10).unwrap();
        let own = s.meter_key(10).agree(&mdms).unwrap();
        assert_eq!(r.provisioned.len(), 1);
        assert_eq!(r.provisioned[0].2.as_bytes(), own.as_bytes());
        // No wrap carries the joiner's leaf key: every wrap is keyed by it or by a graph key.
        assert!(
            r.wraps
                .iter()
                .all(|w| !w.name.starts_with(&r.provisioned[0].1))
        );
        assert!(r.counts.messages() > 0);
        assert_eq!(s.agreements(), 5);
        // Another meter's identity key does not give meter 10's leaf.
        let other = s.meter_key(11).agree(&mdms).unwrap();
        assert_ne!(other.as_bytes(), own.as_bytes());
    }
}
