//! Data decoding; whatever decodes must re-encode to something that decodes equal.
#![no_main]

use amicn_tlv::Data;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Data::decode(Bytes::copy_from_slice(data)) {
        let _ = d.signed_portion();
        let _ = d.full_name();
        let again = Data::decode(d.encode()).expect("re-encoded Data must decode");
        assert_eq!(again, d);
    }
});
