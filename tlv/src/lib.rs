//! NDN packet format v0.3 and NDNLPv2 codec: names, Interests, Data, link-layer packets and NFD
//! management elements. Pure and sans-IO: bytes in, typed packets out, and back.
//!
//! This crate sits at the bottom of amicn: faces frame streams with [`split_first_tlv`] and
//! decode with [`decode_packet`]; the forwarder uses [`Name`] prefix hashes for its tables; the
//! key-management and application crates build and sign [`Interest`]s and [`Data`]. It owns no
//! sockets, clocks or keys — signing takes a closure, reassembly takes the caller's `now`.
//!
//! Decoding is zero-copy: a decoded packet keeps the one [`bytes::Bytes`] it came from and every
//! byte-valued field is a slice of it. Decoders enforce the spec's rules (shortest VAR-NUMBER,
//! NonNegativeInteger lengths, element order, the critical-bit rule, the 8800-byte cap, no
//! trailing bytes) and never panic on untrusted input; errors name the element and offset.

mod data;
mod encoding;
mod error;
mod fields;
pub mod frag;
mod interest;
pub mod lp;
pub mod mgmt;
mod name;
mod packet;
pub mod sig;
pub mod tt;
pub mod view;
pub mod walk;

pub use data::{Data, MetaInfo};
pub use encoding::{
    Element, TlvReader, decode_nni, encode_nni, encode_nni_tlv, encode_tl, encode_tlv,
    encode_var_number, nni_len, nni_tlv_len, read_tlv_header, read_var_number, split_first_tlv,
    tl_len, tlv_len, var_number_len, var_number_width,
};
pub use error::{Error, Result};
pub use interest::{DEFAULT_LIFETIME, Interest};
pub use lp::{LpPacket, NackReason};
pub use name::{Component, INLINE_COMPONENTS, MAX_COMPONENT_TYPE, Name};
pub use packet::{
    LpHeaders, Nack, NetPacket, Received, decode_packet, encode_nack, encode_with_lp, from_lp,
    wrap_fragment,
};
pub use sig::{KeyLocator, SignatureInfo, ValidityPeriod};

/// Largest packet accepted or produced (ndn-cxx `MAX_NDN_PACKET_SIZE`, NFD UDP MTU).
pub const MAX_PACKET_SIZE: usize = 8800;

/// Deepest TLV nesting the generic tree walker follows.
pub const MAX_NESTING_DEPTH: usize = 32;
