//! Interest decoding; whatever decodes must re-encode to something that decodes equal.
#![no_main]

use amicn_tlv::Interest;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(i) = Interest::decode(Bytes::copy_from_slice(data)) {
        let _ = i.signed_portion();
        let _ = i.check_params_digest();
        let mut again = Interest::decode(i.encode()).expect("re-encoded Interest must decode");
        again.clear_wire();
        if i.check_params_digest() {
            assert_eq!(again, i);
        }
    }
});
