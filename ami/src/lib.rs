//! The AMI roles of amicn, built from the KMS, the producer/consumer libraries and a forwarder
//! connection: [`Meter`], [`MdmsCollector`], [`PricingPublisher`], [`DrOperator`] and
//! [`KmsService`].
//!
//! Each role is a struct with a plain configuration and one [`amicn_face::client::Client`]
//! connection to its local forwarder; roles never talk to each other directly, only by name
//! through the forwarder. The mapping of the three AMI traffic modes onto names and keys follows
//! the design's mode table:
//!
//! | traffic | name | encrypted under | signed by |
//! | --- | --- | --- | --- |
//! | reading | `/<u>/ami/meter/<id>/reading/t=<µs>` | the meter's reading key (from its user key) | the meter |
//! | latest pointer | `/<u>/ami/meter/<id>/latest/v=<µs>` | — | the meter |
//! | meter event | `/<u>/ami/meter/<id>/event/seq=<n>` | the meter's reading key | the meter |
//! | price, tariff | `/<u>/ami/price/<tariff>/v=<ver>` | the broadcast (root) key | pricing |
//! | tariff pointer | `/<u>/ami/price/latest/<tariff>/v=<ver>` | — | pricing |
//! | DR event | `/<u>/ami/dr/<p>/event/seq=<n>` | the project key of `p` | DR operator |
//! | DR acknowledgement | `/<u>/ami/dr/<p>/ack/<id>/seq=<n>` (signed Interest) | — | the meter |
//! | rekey manifest | `/<u>/ami/KMS/rekey/<epoch>/seg=<k>` | — | the KMS |
//! | revocation list | `/<u>/ami/KMS/revoked/v=<n>/seg=<k>` | — | the KMS |
//! | key wraps | `.../KEK/v=<e>/ENCRYPTED-BY/<key>` | the wrapping key | DigestSha256; the manifest commits to every key |
//!
//! Meters enrol with a signed Interest carrying an ephemeral X25519 key (the user key comes out
//! of X25519 + HKDF on both sides), hold their key-graph member state, and follow every rekey by
//! fetching the signed manifest of each epoch and the few wraps on their own path; the wraps are
//! immutable Data, so forwarder caches serve the many meters that need the same one.
//! The head-end roles (MDMS, pricing, DR operator) hold the keys they encrypt or decrypt with in
//! a [`HeadEndKeys`], filled from the KMS over NDN by a [`KeyClient`] (signed key requests,
//! answers sealed under a per-request X25519 key), or directly by an in-process KMS.
//!
//! [`daemon`] runs each role as a long-running process (node config, state directory, counters,
//! readiness, SIGTERM); [`provision`] is the utility's offline ceremony that creates the trust
//! anchor and one directory per node. The KMS keeps its state in SQLite (`kms_store`, with the
//! epoch journal of `kms_journal`), the MDMS its readings with the signed Data they came in.
//!
//! A reading's plaintext is the versioned TLV format of [`reading`]: an interval with its
//! DLMS/COSEM registers (OBIS code, value, scaler, unit) and quality flags.

pub mod daemon;
pub mod dataset_keys;
mod dr;
mod error;
pub mod events;
pub mod grid_ops;
mod key_client;
mod keys;
mod kms_journal;
mod kms_service;
mod kms_store;
pub mod loadgen;
mod mdms;
mod meter;
pub mod names;
mod net;
pub mod ops;
mod pg;
mod pki;
mod pricing;
pub mod provision;
pub mod reading;
pub mod repo;
pub mod repo_insert;
pub mod scenario;
mod stats;
pub mod store;
pub mod tariff;
pub mod topo;
pub mod vee;
mod wire;

pub use dr::{DrAck, DrEvent, DrEventReport, DrOperator};
pub use error::{AmiError, Result};
pub use key_client::{KeyClient, entitle, meter_command, send_command};
pub use keys::{HeadEndKeys, reading_key};
pub use kms_service::{
    EpochRecord, EpochSummary, KmsConfig, KmsCounters, KmsService, SubgroupInfo, label_of,
};
pub use mdms::{MdmsCollector, MdmsConfig, MdmsCounters, Rejection, RoundReport};
pub use meter::{Meter, MeterConfig, MeterCounters, MeterModel, Reading, SyncReport};
pub use names::AmiNames;
pub use net::{Publisher, connect, now_ms, now_us};
pub use ops::{CommandOutcome, MeterCommander, MeterOp, Supply};
pub use pki::{Credentials, Pki, Trust, ami_policy};
pub use pricing::{Price, PricingPublisher};
pub use stats::Latencies;
pub use store::{
    MemoryReadingStore, PostgresReadingStore, ReadingStore, SqliteReadingStore, StoredReading,
    open_reading_store,
};
pub use wire::Status;
