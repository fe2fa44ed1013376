//! Errors of the key graph, its rekey objects and the member-side state machine.

/// Result alias for key-graph operations.
pub type GraphResult<T> = std::result::Result<T, GraphError>;

/// Everything that can go wrong while managing the key graph or ingesting a rekey on a member.
///
/// Variants name the key, wrap or manifest involved, so a rejected rekey can be diagnosed from the
/// log line alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The meter is already a member of the graph.
    #[error("meter {meter} is already a member")]
    AlreadyMember {
        /// Meter id.
        meter: u32,
    },
    /// The meter is not a member of the graph.
    #[error("meter {meter} is not a member")]
    NotMember {
        /// Meter id.
        meter: u32,
    },
    /// The meter was revoked and may not rejoin.
    #[error("meter {meter} was revoked and cannot rejoin")]
    Revoked {
        /// Meter id.
        meter: u32,
    },
    /// A second membership change for the same meter inside one batch epoch.
    #[error("meter {meter} already has a membership change pending in this epoch; commit first")]
    AlreadyStaged {
        /// Meter id.
        meter: u32,
    },
    /// A move to the project set the meter already has.
    #[error("meter {meter} already subscribes to exactly these projects")]
    SameProjects {
        /// Meter id.
        meter: u32,
    },
    /// A DR project name that is not registered with the graph.
    #[error("unknown DR project {name:?}")]
    UnknownProject {
        /// Project name as given.
        name: String,
    },
    /// A DR project name that cannot be used as a name component or subgroup label.
    #[error("invalid DR project name {name:?}: {reason}")]
    BadProjectName {
        /// Project name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Invalid graph parameters (degree, prefix, sizes).
    #[error("invalid key-graph parameter: {0}")]
    BadParameter(String),
    /// A subgroup tree cannot grow any further (leaf positions are 32-bit).
    #[error("subgroup {label} is full")]
    TreeFull {
        /// Subgroup label.
        label: String,
    },
    /// The manifest signature did not verify under the KMS key the member trusts.
    #[error("rekey manifest for epoch {epoch} has a bad signature: {reason}")]
    BadManifestSignature {
        /// Epoch the manifest claims (unauthenticated).
        epoch: u32,
        /// What the verifier reported.
        reason: String,
    },
    /// The manifest bytes could not be decoded.
    #[error("malformed rekey manifest: {what} at byte {offset}")]
    MalformedManifest {
        /// The field being read.
        what: &'static str,
        /// Byte offset into the manifest.
        offset: usize,
    },
    /// A manifest or key epoch that is not newer than what the member already installed.
    #[error("stale epoch for {name}: got {got}, already at {have}")]
    StaleEpoch {
        /// Manifest or key name.
        name: String,
        /// Epoch offered.
        got: u32,
        /// Epoch already installed.
        have: u32,
    },
    /// A wrap the member needs was not supplied.
    #[error("wrap {name} is missing")]
    MissingWrap {
        /// Name of the wrap that was looked up.
        name: String,
    },
    /// A wrap object carries another name than the one requested.
    #[error("wrap name mismatch: requested {expected}, object is named {found}")]
    WrapNameMismatch {
        /// Requested name.
        expected: String,
        /// Name carried by the object.
        found: String,
    },
    /// AEAD authentication of a wrap failed: modified bytes, wrong wrapping key, or a ciphertext
    /// moved from another name (the name is the associated data).
    #[error("wrap {name} failed authentication (tampered, wrong key, or moved from another name)")]
    WrapAuthFailed {
        /// Name of the wrap.
        name: String,
    },
    /// A key recovered from a wrap does not match the commitment in the signed manifest.
    #[error("key {name} does not match the manifest's commitment")]
    CommitmentMismatch {
        /// Key name with epoch.
        name: String,
    },
    /// A wrap payload has the wrong length.
    #[error("wrap {name} is {len} bytes, expected {expected}")]
    WrapLength {
        /// Wrap name.
        name: String,
        /// Length found.
        len: usize,
        /// Length required.
        expected: usize,
    },
    /// The member needs a key the manifest neither changes nor the member holds.
    #[error("member lacks key {name} and the manifest does not deliver it")]
    KeyNotDelivered {
        /// Key name (without epoch).
        name: String,
    },
    /// Persisted state could not be read or written.
    #[error("state file {path}: {source}")]
    Io {
        /// File or directory involved.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A persisted state file is truncated, torn or corrupt.
    #[error("state file {path} is corrupt: {reason}")]
    CorruptState {
        /// File involved.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
