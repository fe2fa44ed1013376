//! A [`CommandVerifier`] for DigestSha256-signed commands, the kind python-ndn, NDNts and
//! `amicn` send by default: checks the digest of v0.3 signed Interests and of old-style
//! command Interests (python-ndn 0.5 `make_command`), whose last two name components are the
//! SignatureInfo and SignatureValue TLVs and whose signature covers every component before the
//! last. It proves integrity, not identity; key-based trust needs another verifier.

use amicn_tlv::{Interest, SignatureInfo, sig, tt};
use sha2::{Digest, Sha256};

use super::{CommandVerifier, Verdict};
use crate::core::Time;

/// Accepts commands whose DigestSha256 signature is correct; rejects (403) wrong digests and
/// other signature types; drops commands that carry no recognisable signature.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestVerifier;

impl CommandVerifier for DigestVerifier {
    fn verify(&mut self, _now: Time, interest: &Interest) -> Verdict {
        if let (Some(info), Some(value)) = (&interest.signature_info, &interest.signature_value) {
            if info.sig_type != sig::DIGEST_SHA256 {
                return Verdict::Reject;
            }
            let digest: [u8; 32] = Sha256::digest(interest.signed_portion()).into();
            return if interest.check_params_digest() && value.as_ref() == digest {
                Verdict::Accept
            } else {
                Verdict::Reject
            };
        }
        old_style(interest)
    }
}

/// `/localhost/nfd/<module>/<verb>/<params>/<timestamp>/<nonce>/<SignatureInfo>/<SignatureValue>`.
fn old_style(interest: &Interest) -> Verdict {
    let name = &interest.name;
    if name.len() < 9 {
        return Verdict::Drop;
    }
    let (Some(info), Some(value)) = (name.get(name.len() - 2), name.get(name.len() - 1)) else {
        return Verdict::Drop;
    };
    let Ok(info) = SignatureInfo::decode(info.value_bytes().clone()) else {
        return Verdict::Drop;
    };
    let mut r = amicn_tlv::TlvReader::new(value.value_bytes().clone());
    let Some(sig_value) = r.read().ok().filter(|e| e.typ == tt::SIGNATURE_VALUE) else {
        return Verdict::Drop;
    };
    if info.sig_type != sig::DIGEST_SHA256 {
        return Verdict::Reject;
    }
    let mut h = Sha256::new();
    for k in 0..name.len() - 1 {
        if let Some(w) = name.component_wire(k) {
            h.update(w);
        }
    }
    let digest: [u8; 32] = h.finalize().into();
    if sig_value.value.as_ref() == digest {
        Verdict::Accept
    } else {
        Verdict::Reject
    }
}
