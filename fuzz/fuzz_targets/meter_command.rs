//! The meter's command handler (`/<u>/ami/meter/<id>/cmd/<verb>`): signed commands from a
//! test PKI, mutated as the input says, checked by meter 1; see `common/meter_command.rs` for
//! the input format and the properties checked.
#![no_main]

#[path = "common/meter_command.rs"]
mod meter_command;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meter_command::run(data);
});
