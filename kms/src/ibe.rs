//! Non-interactive identity-based key agreement on BLS12-381 (Sakai–Ohgishi–Kasahara), with the
//! KMS as private-key generator (PKG).
//!
//! The PKG holds a master secret `s`. An identity is an NDN name (`/<utility>/ami/meter/<id>`,
//! `/<utility>/ami/mdms`); its private key is the pair `(s·H1(id), s·H2(id))` with `H1` and `H2`
//! hash-to-curve into G1 and G2 (RFC 9380, SSWU, SHA-256, amicn's own domain-separation tags).
//! Two identities `a` and `b` agree on a key without sending anything: order them by the wire
//! encoding of their names, `lo < hi`; then
//!
//! ```text
//! e(s·H1(lo), H2(hi)) = e(H1(lo), H2(hi))^s = e(H1(lo), s·H2(hi))
//! ```
//!
//! so `lo` uses its G1 half and `hi` its G2 half, and both feed the same target-group element to
//! HKDF-SHA256 (salt: the PKG's public parameters; info: a label and both names). A party with
//! another identity, or with keys from another PKG, computes a different element. This is the
//! establishment cost the survey writes `A = C_P + C_M`: one pairing and one hash-to-curve per
//! side, no message.
//!
//! Like every identity-based scheme, the PKG can compute every pairwise key; here the PKG is the
//! KMS, which distributes the group keys anyway.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use amicn_tlv::Name;
use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
use bls12_381::{G1Affine, G1Projective, G2Affine, G2Projective, Gt, Scalar, pairing};
use bytes::Bytes;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::key::{KEY_LEN, SymmetricKey};

/// Domain-separation tag of `H1` (identity to G1).
pub const DST_G1: &[u8] = b"AMICN-IBKA-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// Domain-separation tag of `H2` (identity to G2).
pub const DST_G2: &[u8] = b"AMICN-IBKA-V01-CS02-with-BLS12381G2_XMD:SHA-256_SSWU_RO_";
/// HKDF `info` label of a key from identity-based agreement.
pub const IBKA_LABEL: &[u8] = b"amicn ami-user-key sok-ibka v1";
/// Compressed G1 point.
pub const G1_LEN: usize = 48;
/// Compressed G2 point.
pub const G2_LEN: usize = 96;
/// Encoded public parameters: `s·g1 ‖ s·g2`.
pub const PUBLIC_LEN: usize = G1_LEN + G2_LEN;
/// A target-group element as twelve base-field coefficients.
const GT_LEN: usize = 12 * 48;

type Xmd = ExpandMsgXmd<sha2_h2c::Sha256>;

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many encoded identity keys or public parameters this process refused.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// What can go wrong with identity-based agreement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IbeError {
    /// An encoding has the wrong length.
    #[error("{what}: {len} bytes, expected {expected}")]
    Length {
        /// What was decoded.
        what: &'static str,
        /// Length found.
        len: usize,
        /// Length (or minimum) expected.
        expected: usize,
    },
    /// Bytes that are not a point of the prime-order subgroup, or the identity point.
    #[error("{what}: not a valid group element")]
    BadPoint {
        /// What was decoded.
        what: &'static str,
    },
    /// The identity name is not a valid Name TLV.
    #[error("identity key: bad identity name: {0}")]
    BadName(String),
    /// The key was not issued by this PKG for this identity.
    #[error("identity key of {identity} was not issued by this PKG")]
    NotIssued {
        /// Identity name.
        identity: String,
    },
    /// Both sides have the same identity.
    #[error("agreement of {identity} with itself")]
    SameIdentity {
        /// Identity name.
        identity: String,
    },
}

fn refuse<T>(e: IbeError) -> Result<T, IbeError> {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    Err(e)
}

/// `H1(id)`: the identity's name (Name TLV) hashed into G1.
pub fn h1(id: &Name) -> G1Affine {
    G1Affine::from(<G1Projective as HashToCurve<Xmd>>::hash_to_curve(
        [id.to_wire()],
        DST_G1,
    ))
}

/// `H2(id)`: the identity's name (Name TLV) hashed into G2.
pub fn h2(id: &Name) -> G2Affine {
    G2Affine::from(<G2Projective as HashToCurve<Xmd>>::hash_to_curve(
        [id.to_wire()],
        DST_G2,
    ))
}

/// The PKG's public parameters `(s·g1, s·g2)`: they name the PKG (HKDF salt) and let a key
/// holder check that its key was issued for its identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicParams {
    p1: G1Affine,
    p2: G2Affine,
}

impl fmt::Debug for PublicParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicParams")
            .field("p1", &hex::encode(self.p1.to_compressed()))
            .finish_non_exhaustive()
    }
}

impl PublicParams {
    /// `s·g1 ‖ s·g2`, compressed.
    pub fn to_bytes(&self) -> [u8; PUBLIC_LEN] {
        let mut out = [0u8; PUBLIC_LEN];
        out[..G1_LEN].copy_from_slice(&self.p1.to_compressed());
        out[G1_LEN..].copy_from_slice(&self.p2.to_compressed());
        out
    }

    /// Decodes [`PublicParams::to_bytes`]; rejects points off the subgroup and the identity.
    pub fn from_bytes(b: &[u8]) -> Result<Self, IbeError> {
        if b.len() != PUBLIC_LEN {
            return refuse(IbeError::Length {
                what: "public parameters",
                len: b.len(),
                expected: PUBLIC_LEN,
            });
        }
        let (p1, p2) = decode_points(b, "public parameters")?;
        Ok(PublicParams { p1, p2 })
    }

    /// Whether `key` is `(s·H1(id), s·H2(id))` for this PKG's `s`: `e(d1, g2) = e(H1(id), s·g2)`
    /// and `e(g1, d2) = e(s·g1, H2(id))`. Four pairings.
    pub fn verify(&self, key: &IdentityKey) -> Result<(), IbeError> {
        let ok1 = pairing(&key.d1, &G2Affine::generator()) == pairing(&h1(&key.id), &self.p2);
        let ok2 = pairing(&G1Affine::generator(), &key.d2) == pairing(&self.p1, &h2(&key.id));
        if ok1 && ok2 {
            Ok(())
        } else {
            refuse(IbeError::NotIssued {
                identity: key.id.to_string(),
            })
        }
    }
}

fn decode_points(b: &[u8], what: &'static str) -> Result<(G1Affine, G2Affine), IbeError> {
    let mut a = [0u8; G1_LEN];
    let mut c = [0u8; G2_LEN];
    a.copy_from_slice(&b[..G1_LEN]);
    c.copy_from_slice(&b[G1_LEN..G1_LEN + G2_LEN]);
    let p1 = Option::<G1Affine>::from(G1Affine::from_compressed(&a));
    let p2 = Option::<G2Affine>::from(G2Affine::from_compressed(&c));
    a.zeroize();
    c.zeroize();
    match (p1, p2) {
        (Some(p1), Some(p2)) if !bool::from(p1.is_identity()) && !bool::from(p2.is_identity()) => {
            Ok((p1, p2))
        }
        _ => refuse(IbeError::BadPoint { what }),
    }
}

/// The private-key generator: the master secret, zeroized on drop.
pub struct Pkg {
    s: Scalar,
    public: PublicParams,
}

impl fmt::Debug for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkg")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Drop for Pkg {
    fn drop(&mut self) {
        self.s.zeroize();
    }
}

impl Pkg {
    /// A PKG with a master secret drawn from `rng` (the OS CSPRNG in service; a seeded generator
    /// in simulations and tests).
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Pkg {
        loop {
            let mut wide = Zeroizing::new([0u8; 64]);
            rng.fill_bytes(wide.as_mut());
            let s = Scalar::from_bytes_wide(&wide);
            if s != Scalar::zero() {
                let public = PublicParams {
                    p1: G1Affine::from(G1Affine::generator() * s),
                    p2: G2Affine::from(G2Affine::generator() * s),
                };
                return Pkg { s, public };
            }
        }
    }

    /// The public parameters.
    pub fn public(&self) -> PublicParams {
        self.public
    }

    /// Extracts the private key of `id`: `(s·H1(id), s·H2(id))`.
    pub fn extract(&self, id: &Name) -> IdentityKey {
        IdentityKey {
            id: id.clone(),
            d1: G1Affine::from(h1(id) * self.s),
            d2: G2Affine::from(h2(id) * self.s),
            public: self.public,
        }
    }
}

/// An identity's private key, as the PKG hands it to the meter at manufacture or registration.
#[derive(Clone)]
pub struct IdentityKey {
    id: Name,
    d1: G1Affine,
    d2: G2Affine,
    public: PublicParams,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("id", &self.id.to_string())
            .finish_non_exhaustive()
    }
}

impl Drop for IdentityKey {
    fn drop(&mut self) {
        self.d1.zeroize();
        self.d2.zeroize();
    }
}

impl IdentityKey {
    /// The identity this key belongs to.
    pub fn identity(&self) -> &Name {
        &self.id
    }

    /// The issuing PKG's public parameters.
    pub fn public(&self) -> PublicParams {
        self.public
    }

    /// `d1 ‖ d2 ‖ s·g1 ‖ s·g2 ‖ identity Name TLV` (compressed points). Secret: store it as a
    /// private key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let name = self.id.to_wire();
        let mut out = Zeroizing::new(Vec::with_capacity(2 * PUBLIC_LEN + name.len()));
        out.extend_from_slice(&self.d1.to_compressed());
        out.extend_from_slice(&self.d2.to_compressed());
        out.extend_from_slice(&self.public.to_bytes());
        out.extend_from_slice(&name);
        out
    }

    /// Decodes [`IdentityKey::to_bytes`] and checks that the key was issued by the PKG named in
    /// it for the identity named in it ([`PublicParams::verify`]).
    pub fn from_bytes(b: &[u8]) -> Result<IdentityKey, IbeError> {
        if b.len() <= 2 * PUBLIC_LEN {
            return refuse(IbeError::Length {
                what: "identity key",
                len: b.len(),
                expected: 2 * PUBLIC_LEN + 2,
            });
        }
        let (d1, d2) = decode_points(b, "identity key")?;
        let public = PublicParams::from_bytes(&b[PUBLIC_LEN..2 * PUBLIC_LEN])?;
        let id = match Name::decode(Bytes::copy_from_slice(&b[2 * PUBLIC_LEN..])) {
            Ok(n) => n,
            Err(e) => return refuse(IbeError::BadName(e.to_string())),
        };
        let key = IdentityKey { id, d1, d2, public };
        public.verify(&key)?;
        Ok(key)
    }

    /// The 32-byte key shared with `peer`, computed without any message. Both sides get the same
    /// key iff both hold keys from the same PKG for their own names.
    pub fn agree(&self, peer: &Name) -> Result<SymmetricKey, IbeError> {
        let own = self.id.to_wire();
        let other = peer.to_wire();
        let gt = match own.as_ref().cmp(other.as_ref()) {
            std::cmp::Ordering::Less => pairing(&self.d1, &h2(peer)),
            std::cmp::Ordering::Greater => pairing(&h1(peer), &self.d2),
            std::cmp::Ordering::Equal => {
                return Err(IbeError::SameIdentity {
                    identity: self.id.to_string(),
                });
            }
        };
        let (lo, hi) = if own < other {
            (own, other)
        } else {
            (other, own)
        };
        Ok(derive(&gt, &self.public, &lo, &hi))
    }
}

impl Pkg {
    /// The key `a` and `b` agree on, as the PKG computes it from the master secret (the KMS's
    /// side when it is one of the two identities and keeps no private key of its own).
    pub fn pairwise(&self, a: &Name, b: &Name) -> Result<SymmetricKey, IbeError> {
        let (wa, wb) = (a.to_wire(), b.to_wire());
        let (lo, hi) = match wa.as_ref().cmp(wb.as_ref()) {
            std::cmp::Ordering::Less => ((a, wa), (b, wb)),
            std::cmp::Ordering::Greater => ((b, wb), (a, wa)),
            std::cmp::Ordering::Equal => {
                return Err(IbeError::SameIdentity {
                    identity: a.to_string(),
                });
            }
        };
        let gt = pairing(&G1Affine::from(h1(lo.0) * self.s), &h2(hi.0));
        Ok(derive(&gt, &self.public, &lo.1, &hi.1))
    }
}

fn derive(gt: &Gt, public: &PublicParams, lo: &[u8], hi: &[u8]) -> SymmetricKey {
    let ikm = gt_bytes(gt);
    let hk = Hkdf::<Sha256>::new(Some(&public.to_bytes()), ikm.as_ref());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // A 32-byte expand from SHA-256 HKDF cannot fail (limit is 255 * 32).
    let _ = hk.expand_multi_info(&[IBKA_LABEL, lo, hi], okm.as_mut());
    SymmetricKey::from_bytes(*okm)
}

/// The canonical encoding of a target-group element: its twelve base-field coefficients, each as
/// 48 big-endian bytes, in the order bls12_381 prints them (`c0.c0.c0 … c1.c2.c1`). bls12_381
/// exposes no byte encoding of `Gt`, only this canonical textual form.
fn gt_bytes(gt: &Gt) -> Zeroizing<Vec<u8>> {
    let text = Zeroizing::new(format!("{gt:?}"));
    let mut out = Zeroizing::new(Vec::with_capacity(GT_LEN));
    let mut rest = text.as_str();
    while let Some(i) = rest.find("0x") {
        let digits = &rest[i + 2..];
        let end = digits
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(digits.len());
        let mut buf = Zeroizing::new(vec![0u8; end / 2]);
        if hex::decode_to_slice(&digits[..end], buf.as_mut_slice()).is_ok() {
            out.extend_from_slice(&buf);
        }
        rest = &digits[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    fn meter(i: u32) -> Name {
        name(&format!("/example-utility/ami/meter/{i}"))
    }

    fn mdms() -> Name {
        name("/example-utility/ami/mdms")
    }

    fn pkg(seed: u64) -> Pkg {
        Pkg::generate(&mut StdRng::seed_from_u64(seed))
    }

    #[test]
    fn gt_encoding_is_twelve_coefficients() {
        let a = gt_bytes(&Gt::identity());
        assert_eq!(a.len(), GT_LEN);
        // 1 = (1, 0, …, 0): the first coefficient is 1, the rest zero.
        assert_eq!(a[47], 1);
        assert_eq!(a.iter().map(|&b| u32::from(b)).sum::<u32>(), 1);
        let g = gt_bytes(&pairing(&G1Affine::generator(), &G2Affine::generator()));
        assert_eq!(g.len(), GT_LEN);
        assert_ne!(a, g);
    }

    #[test]
    fn meter_and_mdms_derive_the_same_key() {
        let p = pkg(1);
        let m = p.extract(&meter(7));
        let d = p.extract(&mdms());
        let km = m.agree(&mdms()).unwrap();
        let kd = d.agree(&meter(7)).unwrap();
        assert_eq!(km.as_bytes(), kd.as_bytes());
        assert_eq!(
            p.pairwise(&mdms(), &meter(7)).unwrap().as_bytes(),
            km.as_bytes()
        );
        assert_eq!(
            p.pairwise(&meter(7), &mdms()).unwrap().as_bytes(),
            km.as_bytes()
        );
        // Not the trivial all-zero output.
        assert_ne!(km.as_bytes(), &[0u8; 32]);
    }

    #[test]
    fn known_answer_is_stable() {
        // The derivation depends only on the seed, names, DSTs and label: fix its output so that
        // a change in any of them (or in the Gt encoding) is noticed.
        let p = pkg(42);
        let k = p.pairwise(&meter(1), &mdms()).unwrap();
        let again = pkg(42).extract(&meter(1)).agree(&mdms()).unwrap();
        assert_eq!(k.as_bytes(), again.as_bytes());
        let hex = hex::encode(k.as_bytes());
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, KAT_SEED42_METER1_MDMS, "derivation changed");
    }

    /// Recorded from this implementation (regression vector: a seeded master secret).
    const KAT_SEED42_METER1_MDMS: &str =
        "95a44a611aae7127d38ce2fef68c7aee980eafdccf5525675590ec452ee9e2d9";

    #[test]
    fn wrong_identity_or_other_pkg_does_not_derive_it() {
        let p = pkg(1);
        let real = p.extract(&meter(7)).agree(&mdms()).unwrap();
        // Meter 8 pretending to talk as meter 7 does not get meter 7's key.
        let m8 = p.extract(&meter(8));
        assert_ne!(m8.agree(&mdms()).unwrap().as_bytes(), real.as_bytes());
        // The MDMS's key with meter 8 is meter 8's, not meter 7's.
        let d = p.extract(&mdms());
        assert_ne!(d.agree(&meter(8)).unwrap().as_bytes(), real.as_bytes());
        // The same names under another PKG.
        let q = pkg(2);
        assert_ne!(
            q.extract(&meter(7)).agree(&mdms()).unwrap().as_bytes(),
            real.as_bytes()
        );
        // A key of meter 7 from PKG 2 against the MDMS of PKG 1 does not match either side.
        let mixed = q.extract(&meter(7)).agree(&mdms()).unwrap();
        assert_ne!(mixed.as_bytes(), d.agree(&meter(7)).unwrap().as_bytes());
        assert!(matches!(
            p.extract(&mdms()).agree(&mdms()),
            Err(IbeError::SameIdentity { .. })
        ));
    }

    #[test]
    fn private_key_round_trips_and_bad_bytes_are_errors() {
        let p = pkg(3);
        let k = p.extract(&meter(5));
        let b = k.to_bytes();
        let back = IdentityKey::from_bytes(&b).unwrap();
        assert_eq!(back.identity(), &meter(5));
        assert_eq!(
            back.agree(&mdms()).unwrap().as_bytes(),
            k.agree(&mdms()).unwrap().as_bytes()
        );
        let before = refused();
        // Truncated, empty, flipped bits in each part, a renamed identity.
        assert!(IdentityKey::from_bytes(&[]).is_err());
        assert!(IdentityKey::from_bytes(&b[..2 * PUBLIC_LEN]).is_err());
        for at in [0, G1_LEN + 3, PUBLIC_LEN + 1, PUBLIC_LEN + G1_LEN + 5] {
            let mut bad = b.to_vec();
            bad[at] ^= 0x04;
            assert!(IdentityKey::from_bytes(&bad).is_err(), "flip at {at}");
        }
        let mut renamed = b[..2 * PUBLIC_LEN].to_vec();
        renamed.extend_from_slice(&meter(6).to_wire());
        assert!(matches!(
            IdentityKey::from_bytes(&renamed),
            Err(IbeError::NotIssued { .. })
        ));
        let mut junk = b[..2 * PUBLIC_LEN].to_vec();
        junk.extend_from_slice(&[0x07, 0x05, 0x08]);
        assert!(matches!(
            IdentityKey::from_bytes(&junk),
            Err(IbeError::BadName(_))
        ));
        // A key from another PKG presented with this PKG's parameters.
        let mut foreign = pkg(4).extract(&meter(5)).to_bytes().to_vec();
        foreign[PUBLIC_LEN..2 * PUBLIC_LEN].copy_from_slice(&p.public().to_bytes());
        assert!(IdentityKey::from_bytes(&foreign).is_err());
        assert!(refused() >= before + 8);
        // Identity point as public parameters.
        let mut zero = [0u8; PUBLIC_LEN];
        zero[..G1_LEN].copy_from_slice(&G1Affine::identity().to_compressed());
        zero[G1_LEN..].copy_from_slice(&G2Affine::identity().to_compressed());
        assert!(PublicParams::from_bytes(&zero).is_err());
        assert_eq!(
            PublicParams::from_bytes(&p.public().to_bytes()).unwrap(),
            p.public()
        );
    }
}
