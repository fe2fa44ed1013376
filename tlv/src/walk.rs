//! Generic TLV tree walking.
