//! The KMS's enrolment handler (`/<u>/ami/KMS/enrol/<id>`): meters asking to join,
//! with their certificates, projects and X25519 keys varied. Valid signed requests are built from
//! a test PKI and mutated as the input says; see `common/kms.rs` for the input format and the
//! properties checked.
#![no_main]

#[path = "common/kms.rs"]
mod kms;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kms::run(kms::Focus::Enrol, data));
