//! Content envelopes: arbitrary Data Content opened under a fixed key, and arbitrary bytes
//! parsed as an EncryptedContent element.
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
    // Nothing random decrypts under a key the input cannot know.
    assert!(key.open(&data_name, &content).is_err());
});
