//! The error type of the AMI roles.

/// `Result` with [`AmiError`].
pub type Result<T> = std::result::Result<T, AmiError>;

/// What can go wrong in an AMI role. Variants name the packet, key or meter involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AmiError {
    /// Identity, certificate, trust or envelope failure from the KMS crate.
    #[error(transparent)]
    Kms(Box<amicn_kms::Error>),
    /// Key-graph or member-state failure.
    #[error(transparent)]
    Graph(Box<amicn_kms::graph::GraphError>),
    /// A fetch through the forwarder failed (timeout, Nack, connection).
    #[error(transparent)]
    Fetch(Box<amicn_consumer::Error>),
    /// Serving Data failed.
    #[error(transparent)]
    Produce(Box<amicn_producer::Error>),
    /// The forwarder connection failed or refused a registration.
    #[error(transparent)]
    Client(Box<amicn_face::client::ClientError>),
    /// A packet or name could not be encoded or decoded.
    #[error(transparent)]
    Tlv(Box<amicn_tlv::Error>),
    /// A peer answered something this protocol does not allow.
    #[error("{name}: {why}")]
    Protocol {
        /// Name of the packet involved.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The KMS refused an enrolment.
    #[error("enrolment of meter {meter} refused by the KMS: {why}")]
    EnrolRefused {
        /// Meter id.
        meter: u32,
        /// Reason given by the KMS.
        why: String,
    },
    /// Content is encrypted under a key this party does not hold.
    #[error("{data_name} is encrypted under {key_name}, which this party does not hold")]
    KeyNotHeld {
        /// The encrypted Data.
        data_name: String,
        /// The key named in its EncryptedContent.
        key_name: String,
    },
    /// The meter is not (or no longer) a member of the key graph.
    #[error("meter {meter} holds no user key: it has not joined or has departed")]
    NotJoined {
        /// Meter id.
        meter: u32,
    },
    /// A reading plaintext does not decode, or a reading cannot be encoded.
    #[error(transparent)]
    Reading(Box<crate::reading::ReadingError>),
    /// The reading store failed.
    #[error("reading store: {0}")]
    Store(Box<rusqlite::Error>),
    /// A state file or database is unusable (damaged, wrong version, unsafe to open).
    #[error("state {}: {why}", path.display())]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A command or request was refused by its receiver.
    #[error("{what} refused ({code}): {why}")]
    Refused {
        /// What was refused.
        what: String,
        /// Status code (403 not allowed, 404 unknown, 409 conflicts with state).
        code: u64,
        /// Reason given.
        why: String,
    },
    /// A role was configured with unusable parameters.
    #[error("invalid configuration: {0}")]
    Config(String),
}

// Foreign errors are boxed so that `Result<T>` stays small on every path.
macro_rules! boxed_from {
    ($($ty:ty => $var:ident),* $(,)?) => {
        $(impl From<$ty> for AmiError {
            fn from(e: $ty) -> Self {
                AmiError::$var(Box::new(e))
            }
        })*
    };
}

boxed_from! {
    amicn_consumer::Error => Fetch,
    amicn_producer::Error => Produce,
    amicn_face::client::ClientError => Client,
    amicn_kms::Error => Kms,
    amicn_kms::graph::GraphError => Graph,
    amicn_tlv::Error => Tlv,
    rusqlite::Error => Store,
    crate::reading::ReadingError => Reading,
}

impl AmiError {
    pub(crate) fn protocol(name: impl ToString, why: impl Into<String>) -> Self {
        AmiError::Protocol {
            name: name.to_string(),
            why: why.into(),
        }
    }
}
