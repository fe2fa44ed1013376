//! Key management: every NDN signature type, identities and certificates, trust rules, the AMI key graph with rekeying, key establishment and the content envelope. No I/O.

pub mod cert;
pub mod cost;
pub mod envelope;
pub mod error;
pub mod establish;
pub mod graph;
pub mod ibe;
pub mod identity;
pub mod key;
pub mod keychain;
pub mod persist;
pub mod puf;
pub mod replay;
pub mod safebag;
pub mod scheme;
pub mod signature;
pub mod trust;

pub use error::{Error, Result};
pub use key::SymmetricKey;

#[cfg(test)]
mod tests {
    #[test]
    fn crypto_generation_links() {
        let mut rng = rand::rng();
        let sk = ed25519_dalek::SigningKey::generate(&mut rng);
        use ed25519_dalek::Signer;
        let sig = sk.sign(b"x");
        assert!(sk.verifying_key().verify_strict(b"x", &sig).is_ok());
        let a = x25519_dalek::StaticSecret::random_from_rng(&mut rng);
        let _ = x25519_dalek::PublicKey::from(&a);
    }
}
