//! `amicn`: the one binary of the amicn named-data overlay.

fn main() {}
