//! Signing Data. The [`Signer`] trait and its implementations (Ed25519, ECDSA P-256, HMAC,
//! DigestSha256) are `amicn_kms`'s; the producer holds no crypto of its own.

use amicn_tlv::Data;
use bytes::Bytes;

pub use amicn_kms::signature::{DigestSigner, EcdsaSigner, Ed25519Signer, HmacSigner, Signer};

use crate::Result;

/// Signs `data` with `signer` and returns the wire encoding.
pub(crate) fn sign(signer: &dyn Signer, mut data: Data) -> Result<Bytes> {
    Ok(amicn_kms::signature::sign_data(signer, &mut data))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::signature::verify_data_key;

    #[test]
    fn digest_signature_is_sha256_of_signed_portion() {
        let data = Data::new("/a/b".parse().unwrap(), Bytes::from_static(b"hello"));
        let back = Data::decode(sign(&DigestSigner, data).unwrap()).unwrap();
        assert_eq!(back.signature_info.sig_type, 0);
        amicn_kms::identity::verify_data_digest(&back).unwrap();
    }

    #[test]
    fn key_signatures_verify_and_tampering_is_caught() {
        let ed = Ed25519Signer::from_seed(&[7; 32], "/alice/KEY/k1".parse().unwrap());
        let ec = EcdsaSigner::from_secret(&[7; 32], "/alice/KEY/k2".parse().unwrap()).unwrap();
        for (signer, sig_type) in [(&ed as &dyn Signer, 5), (&ec as &dyn Signer, 3)] {
            let data = Data::new("/alice/x".parse().unwrap(), Bytes::from_static(b"v"));
            let back = Data::decode(sign(signer, data).unwrap()).unwrap();
            assert_eq!(back.signature_info.sig_type, sig_type);
            let key = signer.verify_key().unwrap();
            verify_data_key(&back, &key).unwrap();
            let mut tampered = back.clone();
            tampered.content = Bytes::from_static(b"w");
            tampered.clear_wire();
            assert!(verify_data_key(&tampered, &key).is_err());
        }
    }
}
