//! NFD management elements.
#![no_main]

use amicn_tlv::mgmt::{ControlParameters, ControlResponse, FaceStatus, FibEntry, RibEntry};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok(cp) = ControlParameters::decode(b.clone()) {
        assert_eq!(
            ControlParameters::decode(cp.encode()).expect("re-encoded must decode"),
            cp
        );
    }
    let _ = ControlResponse::decode(b.clone());
    let _ = FaceStatus::decode_list(b.clone());
    let _ = FibEntry::decode_list(b.clone());
    let _ = RibEntry::decode_list(b);
});
