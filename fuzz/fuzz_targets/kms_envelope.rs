//! Content envelopes: arbitrary Data Content opened under a fixed key, and arbitrary bytes
//! parsed as an EncryptedContent element. The corpus seed is a reading sealed under the same
//! key (written by kms/tests/robust_decoders.rs `write_fuzz_seeds`).
#![no_main]

use amicn_kms::SymmetricKey;
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_tlv::Name;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Ok(key_name), Ok(data_name)) = (
        Name::from_uri("/ami/kms/KEY/root/v=1"),
        Name::from_uri("/ami/meter/7/reading/seq=1"),
    ) else {
        return;
    };
    let key = EnvelopeKey::derive(
        &SymmetricKey::from_bytes([9; 32]),
        &key_name,
        Purpose::Content,
    );
    let content = Bytes::copy_from_slice(data);
    if let Ok(ec) = EncryptedContent::decode(content.clone()) {
        let _ = key.open_decoded(&data_name, &ec);
    }
    // The only thing that opens under this key is the corpus seed, sealed with it; any change
    // to it must be caught, so whatever opens is that reading.
    if let Ok(plain) = key.open(&data_name, &content) {
        assert_eq!(&plain[..], b"kWh=12.5");
    }
});
