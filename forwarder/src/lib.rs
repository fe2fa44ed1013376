//! The amicn forwarder: sans-IO forwarding core (PIT, FIB, CS, strategies), tokio runtime and NFD-compatible management.
