//! Transports between NDN nodes: Unix, TCP and UDP faces with TLV stream framing, and the client-side connection applications use to reach a forwarder.
//!
//! This crate owns the bytes between a socket and the forwarder: a stream framer that cuts
//! back-to-back TLVs by their outer length ([`codec::TlvCodec`]), face tasks for stream sockets
//! ([`stream`]), listeners ([`unix`], [`tcp`]), UDP unicast with on-demand faces per peer and
//! UDP multicast ([`udp`]), NDNLPv2 fragmentation/reassembly for datagram faces
//! ([`fragment`]) and an opt-in delay/loss emulation stage ([`emulation`]).
//! It does not decode Interests or Data and never decides where a packet goes: every face
//! hands batches of whole packets to one inbound channel ([`Inbound`]) and drains one bounded
//! outbound queue ([`FaceTx`]); the forwarder runtime sits between the two.

pub mod client;
pub mod codec;
pub mod emulation;
pub mod fragment;
pub mod link;
pub mod stream;
pub mod tcp;
pub mod udp;
pub mod unix;
pub mod uri;

pub use amicn_tlv::lp::Frame;
pub use codec::TlvCodec;
pub use link::{
    Channel, ChannelCounters, ChannelLimits, CloseReason, FaceCounters, FaceKind, FaceMeta,
    FaceToken, FaceTx, Inbound, InboundTx, Persistency, QueueConfig, SendStatus, next_face_token,
};
pub use stream::FaceOptions;
pub use uri::FaceUri;

/// Largest network-layer packet a face accepts or sends (ndn-cxx `MAX_NDN_PACKET_SIZE`).
pub const MAX_PACKET_SIZE: usize = 8800;

/// NFD's TCP and UDP port for NDN.
pub const NDN_PORT: u16 = 6363;

/// NFD's default UDP multicast group and port (IPv4).
pub const DEFAULT_MULTICAST: std::net::SocketAddrV4 =
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(224, 0, 23, 170), 56363);

/// Errors of the face layer; each names the transport, address or frame involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stream frame's outer TLV declares more bytes than [`MAX_PACKET_SIZE`].
    #[error("frame of {len} bytes exceeds the {max}-byte packet limit")]
    FrameTooLarge {
        /// Declared total frame length (TLV-TYPE + TLV-LENGTH + TLV-VALUE), or a lower bound.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The stream does not start with a well-formed TLV header.
    #[error("malformed TLV header in stream: {0}")]
    Malformed(#[from] amicn_tlv::Error),
    /// A face URI could not be parsed.
    #[error("invalid face URI {uri:?}: {why}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// What was wrong with it.
        why: &'static str,
    },
    /// A socket operation failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// The operation (bind, connect, ...).
        what: &'static str,
        /// The address or path involved.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process already listens on this Unix socket path.
    #[error("another forwarder already listens on {0}")]
    SocketInUse(String),
    /// The directory for the Unix socket could be tampered with by another user.
    #[error(
        "refusing socket directory {dir}: {why}; remove it, fix its owner and mode (0700), or choose another socket path"
    )]
    InsecureSocketDir {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        why: String,
    },
    /// A configured socket group does not exist.
    #[error("unknown group {0:?} for the Unix socket (not in /etc/group and not a number)")]
    UnknownGroup(String),
    /// A stream read or write failed.
    #[error(transparent)]
    Stream(#[from] std::io::Error),
}

/// `Result` with the face layer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(what: &'static str, addr: impl ToString, source: std::io::Error) -> Error {
    Error::Io {
        what,
        addr: addr.to_string(),
        source,
    }
}
