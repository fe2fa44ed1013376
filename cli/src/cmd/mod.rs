//! Subcommand implementations, one module each.
pub(crate) mod admin;
pub(crate) mod attacker;
pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod dissect;
pub(crate) mod fwd;
pub(crate) mod get;
pub(crate) mod key;
pub(crate) mod kms;
pub(crate) mod name;
pub(crate) mod netdemo;
pub(crate) mod node;
pub(crate) mod peek;
pub(crate) mod ping;
pub(crate) mod plots;
pub(crate) mod poke;
pub(crate) mod put;
