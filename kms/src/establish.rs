//! User-key establishment between a meter and the KMS: ephemeral X25519 + HKDF-SHA256, and a
//! pre-shared-key fallback for meters that cannot afford public-key operations.
//!
//! The derived key is bound to the whole transcript: `info = label ‖ initiator name ‖ responder name
//! ‖ initiator public key ‖ responder public key`, with names as complete Name TLVs (self-delimiting,
//! so no two different transcripts produce the same `info`). A man in the middle who substitutes
//! either public key or either name therefore ends up with a different key than the honest side.

use std::fmt;

use amicn_tlv::Name;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KEY_LEN, SymmetricKey};

/// HKDF `info` label for a user key from X25519 agreement.
pub const AGREEMENT_LABEL: &[u8] = b"amicn ami-user-key x25519 v1";
/// HKDF `info` label for a per-epoch user key from a pre-shared key.
pub const PSK_LABEL: &[u8] = b"amicn ami-user-key psk v1";
/// Length of an X25519 public key.
pub const X25519_PUBLIC_LEN: usize = 32;

/// Which side of the exchange this party is; fixes the order of names and keys in the HKDF info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that sends its key first (the meter enrolling).
    Initiator,
    /// The side that answers (the KMS).
    Responder,
}

/// One party's single-use X25519 key pair. Consumed by [`EphemeralAgreement::agree`], so a secret
/// can never be used for two agreements.
pub struct EphemeralAgreement {
    secret: EphemeralSecret,
    public: PublicKey,
}

impl fmt::Debug for EphemeralAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralAgreement")
            .field("public", &hex::encode(self.public.as_bytes()))
            .finish_non_exhaustive()
    }
}

impl Default for EphemeralAgreement {
    fn default() -> Self {
        Self::generate()
    }
}

impl EphemeralAgreement {
    /// Generates a fresh ephemeral key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        let secret = EphemeralSecret::random_from_rng(&mut rand::rng());
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// Generates the key pair from a caller-supplied CSPRNG (an HSM-backed source, or a seeded
    /// generator in deterministic simulations and test vectors).
    pub fn from_rng<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let secret = EphemeralSecret::random_from_rng(rng);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key to send to the peer.
    pub fn public_key(&self) -> [u8; X25519_PUBLIC_LEN] {
        self.public.to_bytes()
    }

    /// Completes the agreement and derives the 32-byte user key.
    ///
    /// `salt` is chosen by the responder (32 random bytes recommended) and sent with its public key.
    /// Fails if the peer's public key is a low-order point (all-zero shared secret) or is our own
    /// public key reflected back.
    pub fn agree(
        self,
        role: Role,
        own_name: &Name,
        peer_name: &Name,
        peer_public: &[u8; X25519_PUBLIC_LEN],
        salt: &[u8],
    ) -> Result<SymmetricKey> {
        let own_public = self.public.to_bytes();
        if bool::from(own_public.ct_eq(peer_public)) {
            return Err(Error::ReflectedKey {
                peer: peer_name.to_string(),
            });
        }
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(Error::NonContributory {
                peer: peer_name.to_string(),
            });
        }
        let (init_name, resp_name, init_pk, resp_pk) = match role {
            Role::Initiator => (own_name, peer_name, &own_public, peer_public),
            Role::Responder => (peer_name, own_name, peer_public, &own_public),
        };
        let init_wire = init_name.to_wire();
        let resp_wire = resp_name.to_wire();
        let hk = Hkdf::<Sha256>::new(Some(salt), shared.as_bytes());
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        // A 32-byte expand from SHA-256 HKDF cannot fail (limit is 255 * 32).
        let _ = hk.expand_multi_info(
            &[AGREEMENT_LABEL, &init_wire, &resp_wire, init_pk, resp_pk],
            okm.as_mut(),
        );
        Ok(SymmetricKey::from_bytes(*okm))
    }
}

/// Derives the user key of `epoch` from a provisioned pre-shared key, so the PSK itself never
/// encrypts traffic and each epoch's key is independent of the others' disclosure.
pub fn psk_epoch_key(psk: &SymmetricKey, epoch: u64, meter: &Name, kms: &Name) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(Some(&epoch.to_be_bytes()), psk.as_bytes());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    let meter_wire = meter.to_wire();
    let kms_wire = kms.to_wire();
    // A 32-byte expand from SHA-256 HKDF cannot fail (limit is 255 * 32).
    let _ = hk.expand_multi_info(&[PSK_LABEL, &meter_wire, &kms_wire], okm.as_mut());
    SymmetricKey::from_bytes(*okm)
}
