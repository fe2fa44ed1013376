//! Producer library: register a prefix, answer Interests, sign, encrypt and segment Data.
