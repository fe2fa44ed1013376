//! Certificates from arbitrary bytes: decode, every accessor, validity and self-signature
//! checks; and identity export files from arbitrary text.
#![no_main]

use amicn_kms::cert::Certificate;
use amicn_kms::keychain::decode_export;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::decode(Bytes::copy_from_slice(data)) {
        let _ = cert.key_name();
        let _ = cert.identity();
        let _ = cert.issuer_id();
        let _ = cert.version();
        let _ = cert.validity();
        let _ = cert.signer();
        let _ = cert.is_self_signed();
        let _ = cert.check_validity(0);
        let _ = cert.check_validity(u64::MAX);
        let _ = cert.verify_self_signature();
        let _ = cert.key().to_spki();
        let _ = cert.key().algorithm();
        let again = Certificate::decode(cert.to_wire()).expect("re-encoded certificate decodes");
        assert_eq!(again.name(), cert.name());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // Without a passphrase only plain exports can succeed; encrypted ones need one.
        let _ = decode_export(text, None);
    }
});
