//! Access-control-vector broadcast group key management (ACV-BGKM, as SEES uses it).
//!
//! Each meter `i` holds a secret `s_i` received at enrolment. To set a group key `K`, the server
//! draws nonces `z_1..z_N`, builds the matrix `A` whose row `i` is
//! `(1, H(s_i‖z_1), …, H(s_i‖z_N))` over the prime field of order
//! ℓ = 2^252 + 27742317777372353535851937790883648493 (curve25519-dalek's [`Scalar`]), finds a
//! non-zero `Y` with `A·Y = 0` by Gaussian elimination, and publishes
//! `ACV = Y + K·e_1` with the nonces. Member `i` recomputes its row `x_i` and gets
//! `x_i·ACV = K + x_i·Y = K`; for anyone else the row is unrelated to `Y` and the product is a
//! random field element. Every rekey is one public record and no unicast message; the record
//! grows with the group (`(2N + 1)` field elements) and the server's work is cubic in it.
//!
//! One extra row belongs to a secret only the server knows, so the null space never covers the
//! unit vector (with no member at all, `ACV_0` alone would otherwise be the key). The record
//! carries a key commitment, which lets a meter tell a derived key from garbage.

use std::collections::BTreeMap;

use curve25519_dalek::Scalar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroize;

use super::{Knowledge, PREFIX, PublicInfo, Rekeying, Scheme, SchemeError, SchemeResult};
use crate::graph::wrap::{COMMIT_LEN, commitment};
use crate::key::{KEY_LEN, SymmetricKey};

const KEV_LABEL: &[u8] = b"amicn-kms acv kev v1";
const KEY_LABEL: &[u8] = b"amicn-kms acv group key v1";

/// Name of meter `m`'s BGKM secret given at epoch `e`.
pub fn secret_name(m: u32, e: u32) -> String {
    format!("{PREFIX}/ami/meter/{m}/BGKM-SECRET/v={e}")
}

/// Name of the group key of epoch `e`.
pub fn group_key_name(e: u32) -> String {
    format!("{PREFIX}/ami/bcast/BGKM/v={e}")
}

fn record_name(e: u32) -> String {
    format!("{PREFIX}/ami/KMS/bgkm/rekey/{e}")
}

fn kev(secret: &[u8; KEY_LEN], z: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(KEV_LABEL);
    h.update(secret);
    h.update(z);
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn key_from(k: &Scalar, epoch: u32) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(KEY_LABEL);
    h.update(group_key_name(epoch).as_bytes());
    h.update(k.as_bytes());
    h.finalize().into()
}

/// A non-zero vector in the null space of `a` (rows × `cols`, rows < cols), by reduction to
/// reduced row-echelon form. Counts field multiplications in `mults`.
fn null_vector(a: &mut [Vec<Scalar>], cols: usize, mults: &mut u64) -> Vec<Scalar> {
    let rows = a.len();
    let mut pivots: Vec<usize> = Vec::with_capacity(rows);
    let mut rank = 0;
    for col in 0..cols {
        if rank == rows {
            break;
        }
        let Some(p) = (rank..rows).find(|&r| a[r][col] != Scalar::ZERO) else {
            continue;
        };
        a.swap(rank, p);
        let inv = a[rank][col].invert();
        for x in a[rank][col..].iter_mut() {
            *x *= inv;
        }
        *mults += (cols - col) as u64;
        let pivot_row = a[rank][col..].to_vec();
        for (r, row) in a.iter_mut().enumerate() {
            if r == rank || row[col] == Scalar::ZERO {
                continue;
            }
            let f = row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row) {
                *x -= f * p;
            }
            *mults += (cols - col) as u64;
        }
        pivots.push(col);
        rank += 1;
    }
    // rank ≤ rows < cols, so some column has no pivot.
    let free = (0..cols)
        .rev()
        .find(|c| !pivots.contains(c))
        .unwrap_or(cols - 1);
    let mut y = vec![Scalar::ZERO; cols];
    y[free] = Scalar::ONE;
    for (r, &p) in pivots.iter().enumerate() {
        y[p] = -a[r][free];
    }
    y
}

/// A parsed public record.
struct Record<'a> {
    epoch: u32,
    nonces: Vec<&'a [u8]>,
    acv: Vec<Scalar>,
    commit: &'a [u8],
}

fn parse(bytes: &[u8]) -> Option<Record<'_>> {
    let epoch = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let n = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let need = 8usize
        .checked_add(n.checked_mul(32)?)?
        .checked_add((n + 1).checked_mul(32)?)?
        .checked_add(COMMIT_LEN)?;
    if bytes.len() != need {
        return None;
    }
    let nonces = (0..n)
        .map(|j| &bytes[8 + 32 * j..8 + 32 * j + 32])
        .collect();
    let base = 8 + 32 * n;
    let mut acv = Vec::with_capacity(n + 1);
    for j in 0..=n {
        let b: [u8; 32] = bytes[base + 32 * j..base + 32 * j + 32].try_into().ok()?;
        acv.push(Option::<Scalar>::from(Scalar::from_canonical_bytes(b))?);
    }
    Some(Record {
        epoch,
        nonces,
        acv,
        commit: &bytes[need - COMMIT_LEN..],
    })
}

/// What member secret `s` extracts from a record, if the commitment confirms it.
fn extract(rec: &Record<'_>, s: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
    let mut k = rec.acv[0];
    for (z, a) in rec.nonces.iter().zip(&rec.acv[1..]) {
        k += kev(s, z) * a;
    }
    let key = key_from(&k, rec.epoch);
    k.zeroize();
    let c = commitment(&group_key_name(rec.epoch), &key);
    bool::from(subtle::ConstantTimeEq::ct_eq(&c[..], rec.commit)).then_some(key)
}

/// The ACV-BGKM server.
pub struct AcvScheme {
    secrets: BTreeMap<u32, ([u8; KEY_LEN], u32)>,
    key: [u8; KEY_LEN],
    epoch: u32,
    rng: StdRng,
}

impl std::fmt::Debug for AcvScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcvScheme")
            .field("members", &self.secrets.len())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Drop for AcvScheme {
    fn drop(&mut self) {
        self.key.zeroize();
        for (s, _) in self.secrets.values_mut() {
            s.zeroize();
        }
    }
}

impl AcvScheme {
    /// Setup: meters `0..n` with their secrets, and the first group key published.
    pub fn new(n: u32, seed: u64) -> (Self, Rekeying) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x414356);
        let mut secrets = BTreeMap::new();
        for m in 0..n {
            let mut s = [0u8; KEY_LEN];
            rng.fill_bytes(&mut s);
            secrets.insert(m, (s, 1));
        }
        let mut me = AcvScheme {
            secrets,
            key: [0u8; KEY_LEN],
            epoch: 0,
            rng,
        };
        let mut out = Rekeying::default();
        me.rekey(&mut out);
        (me, out)
    }

    fn rekey(&mut self, out: &mut Rekeying) {
        self.epoch += 1;
        out.epoch = self.epoch;
        let mut dummy = [0u8; KEY_LEN];
        self.rng.fill_bytes(&mut dummy);
        let rows = self.secrets.len() + 1;
        let n = rows;
        let mut nonces = vec![[0u8; 32]; n];
        for z in &mut nonces {
            self.rng.fill_bytes(z);
        }
        let mut a: Vec<Vec<Scalar>> = Vec::with_capacity(rows);
        for s in self
            .secrets
            .values()
            .map(|(s, _)| s)
            .chain(std::iter::once(&dummy))
        {
            let mut row = Vec::with_capacity(n + 1);
            row.push(Scalar::ONE);
            row.extend(nonces.iter().map(|z| kev(s, z)));
            a.push(row);
        }
        dummy.zeroize();
        out.counts.one_way += (rows * n) as u64;
        let mut y = null_vector(&mut a, n + 1, &mut out.counts.field_mults);
        for row in &mut a {
            row.zeroize();
        }
        let mut wide = [0u8; 64];
        self.rng.fill_bytes(&mut wide);
        let mut k = Scalar::from_bytes_mod_order_wide(&wide);
        wide.zeroize();
        out.counts.fresh_keys += 1;
        y[0] += k;
        self.key = key_from(&k, self.epoch);
        k.zeroize();
        let mut bytes = Vec::with_capacity(8 + 32 * (2 * n + 1) + COMMIT_LEN);
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.extend_from_slice(&(n as u32).to_be_bytes());
        for z in &nonces {
            bytes.extend_from_slice(z);
        }
        for v in &y {
            bytes.extend_from_slice(v.as_bytes());
        }
        bytes.extend_from_slice(&commitment(&group_key_name(self.epoch), &self.key));
        out.public.push(PublicInfo {
            name: record_name(self.epoch),
            bytes,
        });
        out.counts.broadcast += 1;
    }
}

impl Scheme for AcvScheme {
    fn label(&self) -> &'static str {
        "acv-bgkm"
    }

    fn members(&self) -> Vec<u32> {
        self.secrets.keys().copied().collect()
    }

    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>> {
        let (s, e) = self
            .secrets
            .get(&meter)
            .ok_or(SchemeError::NotMember { meter })?;
        Ok(vec![(secret_name(meter, *e), SymmetricKey::from_bytes(*s))])
    }

    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        self.batch(&[meter], &[])
    }

    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying> {
        self.batch(&[], &[meter])
    }

    fn batch(&mut self, joins: &[u32], leaves: &[u32]) -> SchemeResult<Rekeying> {
        for &m in leaves {
            if !self.secrets.contains_key(&m) || joins.contains(&m) {
                return Err(SchemeError::NotMember { meter: m });
            }
        }
        for &m in joins {
            if self.secrets.contains_key(&m) {
                return Err(SchemeError::AlreadyMember { meter: m });
            }
        }
        let mut out = Rekeying::default();
        for &m in leaves {
            if let Some((mut s, _)) = self.secrets.remove(&m) {
                s.zeroize();
            }
        }
        let e = self.epoch + 1;
        for &m in joins {
            let mut s = [0u8; KEY_LEN];
            self.rng.fill_bytes(&mut s);
            out.counts.fresh_keys += 1;
            self.secrets.insert(m, (s, e));
            out.provisioned
                .push((m, secret_name(m, e), SymmetricKey::from_bytes(s)));
            s.zeroize();
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
            group_key_name(self.epoch),
            SymmetricKey::from_bytes(self.key),
        )
    }

    fn member_storage(&self, meter: u32) -> Option<u64> {
        self.secrets.contains_key(&meter).then_some(2)
    }

    fn server_storage(&self) -> u64 {
        self.secrets.len() as u64 + 1
    }

    fn derive(&self, info: &PublicInfo, known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])> {
        if !info
            .name
            .starts_with(&format!("{PREFIX}/ami/KMS/bgkm/rekey/"))
        {
            return Vec::new();
        }
        let Some(rec) = parse(&info.bytes) else {
            return Vec::new();
        };
        let name = group_key_name(rec.epoch);
        if known.get(&name).is_some() {
            return Vec::new();
        }
        for (n, s) in known.iter() {
            if n.contains("/BGKM-SECRET/")
                && let Some(k) = extract(&rec, s)
            {
                return vec![(name, k)];
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn members_extract_the_key_and_outsiders_do_not() {
        let (mut s, r) = AcvScheme::new(6, 1);
        let rec = parse(&r.public[0].bytes).unwrap();
        let (_, k) = s.group_key();
        for m in 0..6 {
            let sec = s.secrets[&m].0;
            assert_eq!(&extract(&rec, &sec).unwrap(), k.as_bytes());
        }
        assert!(extract(&rec, &[9u8; 32]).is_none());
        let old = s.secrets[&2].0;
        let r = s.leave(2).unwrap();
        assert_eq!(r.counts.unicast + r.counts.multicast, 0);
        assert_eq!(r.counts.broadcast, 1);
        let rec = parse(&r.public[0].bytes).unwrap();
        assert!(
            extract(&rec, &old).is_none(),
            "evicted meter derived the new key"
        );
        let sec = s.secrets[&3].0;
        assert_eq!(&extract(&rec, &sec).unwrap(), s.group_key().1.as_bytes());
        // Record: epoch, N, N nonces, N + 1 vector entries, commitment; N = members + 1.
        assert_eq!(r.public[0].bytes.len(), 8 + 32 * 6 + 32 * 7 + COMMIT_LEN);
    }

    #[test]
    fn a_vector_from_the_null_space_annihilates_every_row() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut a: Vec<Vec<Scalar>> = (0..5)
            .map(|_| {
                (0..7)
                    .map(|_| {
                        let mut w = [0u8; 64];
                        rng.fill_bytes(&mut w);
                        Scalar::from_bytes_mod_order_wide(&w)
                    })
                    .collect()
            })
            .collect();
        // A dependent row must not break the reduction.
        let dup = a[0].clone();
        a.push(dup);
        let orig = a.clone();
        let mut m = 0;
        let y = null_vector(&mut a, 7, &mut m);
        assert!(y.iter().any(|v| *v != Scalar::ZERO));
        for row in &orig {
            let dot: Scalar = row.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert_eq!(dot, Scalar::ZERO);
        }
        assert!(m > 0);
    }

    #[test]
    fn malformed_records_are_refused() {
        let (_s, r) = AcvScheme::new(2, 1);
        let b = &r.public[0].bytes;
        assert!(parse(&b[..b.len() - 1]).is_none());
        let mut long = b.clone();
        long.push(0);
        assert!(parse(&long).is_none());
        let mut huge = b.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&huge).is_none());
        // A non-canonical field element.
        let mut bad = b.clone();
        let at = 8 + 32 * 3;
        bad[at..at + 32].copy_from_slice(&[0xff; 32]);
        assert!(parse(&bad).is_none());
    }
}
