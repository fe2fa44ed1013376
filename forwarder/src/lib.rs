//! The amicn forwarder: sans-IO forwarding core (PIT, FIB, CS, strategies), tokio runtime and NFD-compatible management.
//!
//! - [`core`]: tables and pipelines, driven by `on_packet` / `on_timeout` / `poll_transmit`,
//!   no I/O and no clock.

pub mod core;
pub mod mgmt;
pub mod runtime;

pub use crate::core::Error;
