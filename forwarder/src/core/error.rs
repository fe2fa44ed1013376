//! The forwarder crate's error type.

use super::FaceId;

/// Errors of forwarder operations (table updates from management, runtime setup).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The face does not exist (any more).
    #[error("face {0} does not exist")]
    UnknownFace(FaceId),
    /// The strategy name matches no strategy this forwarder implements.
    #[error("strategy {0} is not supported")]
    UnknownStrategy(String),
    /// The strategy of `/` can be changed but not removed.
    #[error("the strategy choice of / cannot be unset")]
    RootStrategy,
    /// A packet or name failed to decode or encode.
    #[error(transparent)]
    Tlv(#[from] amicn_tlv::Error),
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (socket path, address).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}
