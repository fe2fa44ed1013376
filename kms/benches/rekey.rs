//! Rekey benchmarks (filled in below).
fn main() {}
