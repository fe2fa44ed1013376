//! The KMS's operator command handler (`/<u>/ami/KMS/cmd/<verb>`): entitle, revoke and
//! leave, signed by the right and the wrong principals. Valid signed requests are built from
//! a test PKI and mutated as the input says; see `common/kms.rs` for the input format and the
//! properties checked.
#![no_main]

#[path = "common/kms.rs"]
mod kms;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms::run(kms::Focus::Command, data));
