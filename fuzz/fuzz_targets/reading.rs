//! The reading format: arbitrary bytes decoded as a reading and as a block of readings. What
//! decodes must re-encode to something that decodes to the same value, and validation never
//! panics. The corpus seed is a reading made by `amicn data generate` + `amicn data import`.
#![no_main]

use amicn_ami::reading::{Reading, ReadingBlock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reading::decode(data) {
        let _ = r.validate();
        if let Ok(wire) = r.encode() {
            assert_eq!(Reading::decode(&wire).ok().as_ref(), Some(&r));
        }
    }
    if let Ok(b) = ReadingBlock::decode(data) {
        let _ = b.validate();
        if let Ok(wire) = b.encode() {
            assert_eq!(ReadingBlock::decode(&wire).ok().as_ref(), Some(&b));
        }
    }
});
