//! The crate's error type: every way a key, certificate, signature, policy or envelope check can fail.

use std::path::PathBuf;

/// Result alias for the KMS crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the KMS. Variants name the object (by NDN name where one exists)
/// and what was wrong with it, so a log line is enough to diagnose a rejection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A packet or TLV structure could not be decoded.
    #[error("TLV decoding failed: {0}")]
    Tlv(#[from] amicn_tlv::Error),

    /// The signature does not verify against the signer's public key.
    #[error("signature of {name} does not verify with key {signer}")]
    BadSignature {
        /// Name of the signed packet.
        name: String,
        /// Key or certificate name that was expected to have signed it.
        signer: String,
    },
    /// A DigestSha256 signature value does not equal the SHA-256 of the signed portion.
    #[error("DigestSha256 of {name} does not match its signed portion")]
    DigestMismatch {
        /// Name of the packet.
        name: String,
    },
    /// The SignatureType is not one this crate can verify in the requested context.
    #[error("SignatureType {sig_type} of {name} is not accepted here")]
    UnsupportedSignatureType {
        /// Name of the packet.
        name: String,
        /// The SignatureType value found.
        sig_type: u64,
    },
    /// The SignatureType does not match the type of the key that should verify it.
    #[error("{name} has SignatureType {sig_type}, but its signer's key is {key}")]
    KeyTypeMismatch {
        /// Name of the packet.
        name: String,
        /// The SignatureType value found.
        sig_type: u64,
        /// Algorithm of the key.
        key: &'static str,
    },
    /// A SignatureValue is not in the encoding its SignatureType requires.
    #[error("SignatureValue of {name} is malformed: {reason}")]
    BadSignatureEncoding {
        /// Name of the packet.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A SignatureValue has the wrong length for its SignatureType.
    #[error("SignatureValue of {name} is {len} bytes, expected {expected}")]
    SignatureLength {
        /// Name of the packet.
        name: String,
        /// Length found.
        len: usize,
        /// Length required by the SignatureType.
        expected: usize,
    },
    /// The packet has no KeyLocator, or a KeyDigest where a key Name is required.
    #[error("{name} has no KeyLocator Name identifying its signer")]
    MissingKeyLocator {
        /// Name of the packet.
        name: String,
    },
    /// An Interest that should be signed carries no InterestSignatureInfo/Value.
    #[error("Interest {name} is not signed")]
    NotSigned {
        /// Name of the Interest.
        name: String,
    },
    /// The last name component of a signed Interest is not the correct ParametersSha256Digest.
    #[error("Interest {name}: ParametersSha256DigestComponent missing or wrong")]
    ParamsDigest {
        /// Name of the Interest.
        name: String,
    },
    /// The signing key pair and the key name passed along with it disagree, or a key name is malformed.
    #[error("bad key name {name}: {reason}")]
    BadKeyName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A public key could not be parsed (wrong SPKI prefix, wrong length, not a valid point).
    #[error("bad public key in {name}: {reason}")]
    BadPublicKey {
        /// Name of the object carrying the key.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A Data packet is not a well-formed NDN certificate.
    #[error("{name} is not a valid certificate: {reason}")]
    NotACertificate {
        /// Name of the Data.
        name: String,
        /// Which certificate rule it breaks.
        reason: &'static str,
    },
    /// A ValidityPeriod timestamp is not `YYYYMMDDThhmmss` or describes an impossible date.
    #[error("bad ValidityPeriod timestamp {value:?}")]
    BadTimestamp {
        /// The string as found.
        value: String,
    },
    /// The certificate's NotBefore lies in the future.
    #[error("certificate {cert} is not valid before {not_before}")]
    CertificateNotYetValid {
        /// Certificate name.
        cert: String,
        /// NotBefore as `YYYYMMDDThhmmss`.
        not_before: String,
    },
    /// The certificate's NotAfter lies in the past.
    #[error("certificate {cert} expired at {not_after}")]
    CertificateExpired {
        /// Certificate name.
        cert: String,
        /// NotAfter as `YYYYMMDDThhmmss`.
        not_after: String,
    },
    /// No certificate for the signer could be found in the store or through the fetch callback.
    #[error("no certificate found for signer {key_locator}")]
    CertificateNotFound {
        /// The KeyLocator name that was looked up.
        key_locator: String,
    },
    /// The chain did not reach a trust anchor within the configured depth, or looped.
    #[error(
        "certificate chain from {name} does not reach a trust anchor (stopped at depth {depth})"
    )]
    NoTrustAnchor {
        /// Name of the packet being validated.
        name: String,
        /// How many certificates were followed.
        depth: usize,
    },
    /// The chain ends at a self-signed certificate that is not a configured trust anchor:
    /// anyone can make one.
    #[error("{name} chains to self-signed certificate {certificate}, which is not a trust anchor")]
    UntrustedSelfSigned {
        /// Name of the packet being validated.
        name: String,
        /// The self-signed certificate.
        certificate: String,
    },
    /// No trust rule covers this data name.
    #[error("no trust rule covers {name}")]
    NoTrustRule {
        /// The unmatched name.
        name: String,
    },
    /// A trust rule matched the data name but the signer is not allowed by it.
    #[error("trust rule {rule:?}: {name} may not be signed by {signer}")]
    SignerNotAllowed {
        /// Identifier of the rule that matched the data name.
        rule: String,
        /// The data (or certificate) name.
        name: String,
        /// The KeyLocator name that signed it.
        signer: String,
    },
    /// A trust policy pattern or configuration file is malformed.
    #[error("trust policy: {0}")]
    PolicyConfig(String),

    /// A signed Interest lacks a SignatureTime or SignatureNonce that the replay checker requires.
    #[error("signed Interest {name} lacks {field}")]
    ReplayFieldMissing {
        /// Name of the Interest.
        name: String,
        /// `SignatureTime` or `SignatureNonce`.
        field: &'static str,
    },
    /// SignatureTime is outside the accepted window around the verifier's clock.
    #[error(
        "signed Interest from {key}: SignatureTime {time_ms} ms is outside now {now_ms} ms ± grace"
    )]
    ReplayOutsideWindow {
        /// Signer key name.
        key: String,
        /// SignatureTime found.
        time_ms: u64,
        /// Verifier's clock.
        now_ms: u64,
    },
    /// SignatureTime does not increase over the last accepted one for this key.
    #[error(
        "signed Interest from {key}: SignatureTime {time_ms} is not after the last accepted {last_ms}"
    )]
    ReplayStaleTime {
        /// Signer key name.
        key: String,
        /// SignatureTime found.
        time_ms: u64,
        /// Last accepted SignatureTime for this key.
        last_ms: u64,
    },
    /// SignatureSeqNum does not increase over the last accepted one for this key.
    #[error(
        "signed Interest from {key}: SignatureSeqNum {seq} is not after the last accepted {last}"
    )]
    ReplayStaleSeqNum {
        /// Signer key name.
        key: String,
        /// SignatureSeqNum found.
        seq: u64,
        /// Last accepted SignatureSeqNum for this key.
        last: u64,
    },
    /// The SignatureNonce was already seen.
    #[error("signed Interest from {key}: SignatureNonce was already used")]
    ReplayNonce {
        /// Signer key name.
        key: String,
    },

    /// Persisted replay records could not be restored.
    #[error("replay records unusable: {0}")]
    ReplayRecords(String),

    /// The EncryptedContent TLV is malformed.
    #[error("malformed EncryptedContent: {0}")]
    MalformedEnvelope(&'static str),
    /// The envelope names a different key than the one offered for decryption.
    #[error("envelope is encrypted under {found}, not {expected}")]
    WrongKeyName {
        /// Key name the caller supplied.
        expected: String,
        /// Key name carried in the envelope.
        found: String,
    },
    /// AEAD authentication failed: wrong key, modified ciphertext, or the Data name differs from the one sealed.
    #[error(
        "cannot decrypt content of {data_name} under {key_name}: wrong key, tampered ciphertext or different Data name"
    )]
    DecryptFailed {
        /// Data name used as associated data.
        data_name: String,
        /// Key name the envelope was opened with.
        key_name: String,
    },

    /// X25519 produced an all-zero (non-contributory) shared secret: the peer sent a low-order point.
    #[error("key agreement with {peer} is not contributory (low-order public key)")]
    NonContributory {
        /// Peer name.
        peer: String,
    },
    /// The peer presented our own ephemeral public key back to us.
    #[error("key agreement with {peer}: peer reflected our own public key")]
    ReflectedKey {
        /// Peer name.
        peer: String,
    },

    /// A keychain file could not be read or written.
    #[error("keychain I/O on {path}: {source}")]
    KeychainIo {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A secret-key file that users other than its owner may read or write.
    #[error(
        "key file {path} is accessible by other users (mode {mode:04o}); run `chmod 600` on it \
         (keys are written 0600)"
    )]
    UnsafeKeyPermissions {
        /// File involved.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A keychain file exists but its content is unusable.
    #[error("keychain file {path} is corrupt: {reason}")]
    KeychainCorrupt {
        /// File involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested identity, key or certificate is not in the keychain.
    #[error("{what} {name} not found in the keychain")]
    KeychainNotFound {
        /// `identity`, `key` or `certificate`.
        what: &'static str,
        /// The name looked up.
        name: String,
    },
    /// An exported identity could not be imported.
    #[error("cannot import identity: {0}")]
    Import(String),
    /// The passphrase does not decrypt the exported identity (or the file was modified).
    #[error("wrong passphrase or modified export file")]
    WrongPassphrase,
    /// A SafeBag (`ndnsec export` format) is malformed or uses an unsupported protection.
    #[error("not a usable SafeBag: {reason}")]
    BadSafeBag {
        /// What is wrong with it.
        reason: String,
    },
    /// A key of another algorithm was found where an Ed25519 key is required.
    #[error("key {name} is {algorithm}, but an Ed25519 key is required here")]
    NotEd25519 {
        /// The key name.
        name: String,
        /// Its algorithm.
        algorithm: &'static str,
    },
}
