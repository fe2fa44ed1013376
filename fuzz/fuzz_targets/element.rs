//! Generic element framing and the schema-aware tree walker.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = amicn_tlv::split_first_tlv(data);
    let b = Bytes::copy_from_slice(data);
    for e in amicn_tlv::TlvReader::new(b.clone()).flatten() {
        let _ = e.nni();
        for inner in e.reader().flatten() {
            let _ = inner.nni();
        }
    }
    let _ = amicn_tlv::walk::walk(b);
});
