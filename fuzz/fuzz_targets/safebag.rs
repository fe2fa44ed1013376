//! SafeBag import: arbitrary bytes as an `ndnsec export` file opened with a fixed passphrase;
//! see `common/safebag.rs` for the properties checked.
#![no_main]

#[path = "common/safebag.rs"]
mod safebag;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = safebag::run(data);
});
