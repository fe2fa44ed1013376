//! The KMS's service key handler (`/<u>/ami/KMS/svc/<role>`): the MDMS, pricing and DR
//! roles asking for the keys of their job. Valid signed requests are built from
//! a test PKI and mutated as the input says; see `common/kms.rs` for the input format and the
//! properties checked.
#![no_main]

#[path = "common/kms.rs"]
mod kms;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms::run(kms::Focus::KeyRequest, data));
