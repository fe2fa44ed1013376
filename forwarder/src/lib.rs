//! The amicn forwarder: sans-IO forwarding core (PIT, FIB, CS, strategies), tokio runtime and NFD-compatible management.
//!
//! - [`core`]: tables and pipelines, driven by `on_packet` / `on_timeout` / `poll_transmit`,
//!   no I/O and no clock.
//! - [`mgmt`]: the `/localhost/nfd` management protocol over the core's tables, sans-IO too.
//! - `runtime` (cargo feature `runtime`, on by default): the tokio sockets, worker shards and
//!   metrics. `default-features = false` leaves the core and management alone, without tokio.

pub mod core;
pub mod mgmt;
#[cfg(feature = "runtime")]
pub mod runtime;

pub use crate::core::Error;
