//! Saved state loaded from arbitrary bytes: the KMS key graph image, a member's image and the
//! replay checker's records.
#![no_main]

use std::path::Path;

use amicn_kms::persist::{decode_graph, decode_member, encode_graph, encode_member};
use amicn_kms::replay::ReplayChecker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.state");
    if let Ok(g) = decode_graph(data, path) {
        let again = encode_graph(&g);
        assert!(decode_graph(&again, path).is_ok(), "re-encoded graph loads");
    }
    if let Ok(m) = decode_member(data, path) {
        let again = encode_member(&m);
        assert!(
            decode_member(&again, path).is_ok(),
            "re-encoded member loads"
        );
    }
    let _ = ReplayChecker::from_bytes(data);
});
