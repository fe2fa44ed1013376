//! Subcommand implementations, one module each.
