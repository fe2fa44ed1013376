//! The DR operator's acknowledgement parameters; see `common/dr_ack.rs`.
#![no_main]

#[path = "common/dr_ack.rs"]
mod dr_ack;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dr_ack::run(data);
});
