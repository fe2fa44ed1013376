//! The 32-byte symmetric key used throughout the KMS (tree keys, group keys, content keys).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length in bytes of every symmetric key the KMS handles.
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key.
///
/// The bytes are wiped when the value is dropped, `Debug` never prints them, and equality is
/// evaluated in constant time so comparing keys does not leak how many leading bytes matched.
/// `Clone` is deliberately not derived: copies of secrets should be explicit (`duplicate`).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; KEY_LEN]);

impl SymmetricKey {
    /// Wraps raw key bytes. The caller should wipe its own copy afterwards.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Copies a key out of a slice; `None` unless the slice is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// Draws a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = [0u8; KEY_LEN];
        fill_random(&mut k);
        let key = Self(k);
        k.zeroize();
        key
    }

    /// Borrows the raw key bytes (for feeding a cipher or KDF).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Makes an explicit second copy of the secret.
    pub fn duplicate(&self) -> Self {
        Self(self.0)
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    use rand::Rng;
    rand::rng().fill_bytes(buf);
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

impl ConstantTimeEq for SymmetricKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SymmetricKey {}

impl From<[u8; KEY_LEN]> for SymmetricKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = SymmetricKey::from_bytes([0xAB; KEY_LEN]);
        let s = format!("{k:?}");
        assert!(!s.to_lowercase().contains("ab"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn equality_and_generation() {
        let a = SymmetricKey::generate();
        let b = SymmetricKey::generate();
        assert_ne!(a, b);
        assert_eq!(a, a.duplicate());
        assert!(SymmetricKey::from_slice(&[0u8; 31]).is_none());
        assert_eq!(
            SymmetricKey::from_slice(&[7u8; 32]),
            Some(SymmetricKey::from_bytes([7u8; 32]))
        );
    }
}
