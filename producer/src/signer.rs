//! Signing Data: the [`Signer`] trait and its two stock implementations.

use amicn_tlv::{Data, KeyLocator, Name, SignatureInfo};
use bytes::Bytes;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

use crate::Result;

/// Produces SignatureInfo and SignatureValue for Data (an identity key from `kms`, or a digest).
pub trait Signer: Send + Sync {
    /// The SignatureInfo to put in every Data (type, KeyLocator).
    fn signature_info(&self) -> SignatureInfo;
    /// The SignatureValue over `signed_portion`.
    fn sign(&self, signed_portion: &[u8]) -> Vec<u8>;
}

/// DigestSha256 (SignatureType 0): integrity only, no key.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestSigner;

impl Signer for DigestSigner {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo {
            sig_type: amicn_tlv::sig::DIGEST_SHA256,
            ..SignatureInfo::default()
        }
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        Sha256::digest(signed_portion).to_vec()
    }
}

/// Ed25519 (SignatureType 5) with a KeyLocator naming the signer's key or certificate.
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    key_locator: Name,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_locator", &self.key_locator.to_string())
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// A signer from a 32-byte Ed25519 secret seed; `key_locator` names its key or certificate.
    pub fn from_seed(seed: &[u8; 32], key_locator: Name) -> Ed25519Signer {
        Ed25519Signer {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
            key_locator,
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The name carried in KeyLocator.
    pub fn key_locator(&self) -> &Name {
        &self.key_locator
    }
}

impl Signer for Ed25519Signer {
    fn signature_info(&self) -> SignatureInfo {
        SignatureInfo {
            sig_type: amicn_tlv::sig::ED25519,
            key_locator: Some(KeyLocator::Name(self.key_locator.clone())),
            ..SignatureInfo::default()
        }
    }

    fn sign(&self, signed_portion: &[u8]) -> Vec<u8> {
        self.key.sign(signed_portion).to_bytes().to_vec()
    }
}

/// Signs `data` with `signer` and returns the wire encoding.
pub(crate) fn sign(signer: &dyn Signer, mut data: Data) -> Result<Bytes> {
    Ok(data.sign_with(signer.signature_info(), |portion| signer.sign(portion)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digest_signature_is_sha256_of_signed_portion() {
        let data = Data::new("/a/b".parse().unwrap(), Bytes::from_static(b"hello"));
        let wire = sign(&DigestSigner, data).unwrap();
        let back = Data::decode(wire).unwrap();
        assert_eq!(back.signature_info.sig_type, 0);
        let expect = Sha256::digest(back.signed_portion());
        assert_eq!(back.signature_value.as_ref(), expect.as_slice());
    }

    #[test]
    fn ed25519_signature_verifies() {
        let signer = Ed25519Signer::from_seed(&[7; 32], "/alice/KEY/k1".parse().unwrap());
        let data = Data::new("/alice/x".parse().unwrap(), Bytes::from_static(b"v"));
        let back = Data::decode(sign(&signer, data).unwrap()).unwrap();
        assert_eq!(back.signature_info.sig_type, 5);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&signer.public_key()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&back.signature_value).unwrap();
        vk.verify_strict(&back.signed_portion(), &sig).unwrap();
        let mut tampered = back.signed_portion().to_vec();
        if let Some(b) = tampered.last_mut() {
            *b ^= 1;
        }
        assert!(vk.verify_strict(&tampered, &sig).is_err());
    }
}
