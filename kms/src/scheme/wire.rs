//! Bytes on the wire of a rekey: every wrap and every public record as one NDN Data packet, with
//! its name, its content and an Ed25519 signature whose KeyLocator names the KMS key.

use amicn_tlv::{Data, SignatureInfo};

use super::{PREFIX, Rekeying};
use crate::graph::names::to_ndn_name;

/// Name of the KMS signing key in every KeyLocator.
pub fn kms_key_name() -> String {
    format!("{PREFIX}/ami/KMS/KEY/kms-1")
}

/// Bytes of one Data packet named `name` carrying `content` (Ed25519-signed, 64-byte value).
/// A name that is not a valid NDN URI counts as its UTF-8 bytes plus the packet overhead.
pub fn data_bytes(name: &str, content: &[u8]) -> u64 {
    let Ok(n) = to_ndn_name(name) else {
        return name.len() as u64 + content.len() as u64 + 64;
    };
    let Ok(key) = to_ndn_name(&kms_key_name()) else {
        return name.len() as u64 + content.len() as u64 + 64;
    };
    let mut d = Data::new(n, content.to_vec());
    let info = SignatureInfo::with_key(amicn_tlv::sig::ED25519, key);
    d.sign_with(info, |_| vec![0u8; 64]).len() as u64
}

/// Bytes of everything `r` publishes (wraps and public records; not the provisioned secrets,
/// which travel in the key-establishment exchange).
pub fn rekey_bytes(r: &Rekeying) -> u64 {
    let w: u64 = r
        .wraps
        .iter()
        .map(|w| data_bytes(&w.name, &w.payload))
        .sum();
    let p: u64 = r.public.iter().map(|p| data_bytes(&p.name, &p.bytes)).sum();
    w + p
}
