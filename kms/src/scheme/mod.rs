//! The survey's key-management schemes behind one interface, for side-by-side comparison.
//!
//! Every scheme manages one group of meters (the utility's broadcast group) and answers the same
//! operations — setup (its constructor), [`Scheme::join`], [`Scheme::leave`], [`Scheme::batch`]
//! and [`Scheme::refresh`] — with a [`Rekeying`]: the real wraps (XChaCha20-Poly1305, the
//! [`crate::graph::wrap`] format), the public rekey records, the secrets handed to joining meters
//! over their key-establishment channel, and counters. Nothing here is a counting model: a meter
//! learns the group key only by opening wraps and applying the scheme's public derivations
//! ([`adversary::closure`]), which is also how the property tests show that a departed meter
//! cannot follow and a joiner cannot look back.
//!
//! | scheme | survey rows | module |
//! | --- | --- | --- |
//! | multi-group LKH (today's [`crate::graph::KeyGraph`]), with or without batching | SAMI, MK-AMI, VerSAMI | [`lkh`] |
//! | one-way function tree with blinded keys | eSKAMI | [`oft`] |
//! | flat per-meter keys, group and broadcast keys re-sent unicast | KMSSC | [`flat`] |
//! | access-control-vector broadcast GKM over a prime field | SEES | [`acv`] |
//! | identity-based (pairing) leaf keys over the LKH graph | SKM | [`skm`] |
//!
//! [`units`] times the survey's unit costs, [`survey`] evaluates its formulas and [`wire`]
//! counts the bytes of a rekey as NDN Data packets.
//!
//! Sits beside the key graph: the KMS daemon runs [`crate::graph`]; this module is what
//! `amicn kms compare` and the scheme property tests run.

pub mod acv;
pub mod adversary;
pub mod flat;
pub mod lkh;
pub mod oft;
pub mod skm;
pub mod survey;
pub mod units;
pub mod wire;

use std::collections::HashMap;

use zeroize::Zeroize;

use crate::graph::{GraphError, Wrap, WrapMode};
use crate::key::{KEY_LEN, SymmetricKey};

/// Utility prefix every scheme names its keys under.
pub const PREFIX: &str = "/example-utility";

/// Result alias for scheme operations.
pub type SchemeResult<T> = std::result::Result<T, SchemeError>;

/// What can go wrong in a scheme operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemeError {
    /// The meter is already a member.
    #[error("meter {meter} is already a member")]
    AlreadyMember {
        /// Meter id.
        meter: u32,
    },
    /// The meter is not a member.
    #[error("meter {meter} is not a member")]
    NotMember {
        /// Meter id.
        meter: u32,
    },
    /// A fixed-capacity structure has no free place left.
    #[error("{scheme}: no free place for another member (capacity {capacity})")]
    Full {
        /// Scheme label.
        scheme: &'static str,
        /// Its capacity.
        capacity: u64,
    },
    /// The operation has no meaning for this scheme.
    #[error("{scheme} has no {op} operation")]
    Unsupported {
        /// Scheme label.
        scheme: &'static str,
        /// Operation.
        op: &'static str,
    },
    /// Invalid parameters.
    #[error("invalid scheme parameter: {0}")]
    BadParameter(String),
    /// The key graph refused the operation.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// A public rekey record: published in clear (signed), read by every meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicInfo {
    /// NDN name it is published under.
    pub name: String,
    /// Encoded content.
    pub bytes: Vec<u8>,
}

/// Counters of one operation, in the survey's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpCounts {
    /// Wraps under one meter's own key (the survey's unicast).
    pub unicast: u64,
    /// Wraps under a key shared by part of the group.
    pub multicast: u64,
    /// Wraps or public records every meter reads (the survey's broadcast).
    pub broadcast: u64,
    /// Encryptions performed by the server (C_ε each).
    pub encryptions: u64,
    /// Fresh random keys drawn (C_r each).
    pub fresh_keys: u64,
    /// One-way function evaluations at the server (C_f each): blinds, mixes, ratchets, hashes.
    pub one_way: u64,
    /// Prime-field multiplications at the server (ACV-BGKM).
    pub field_mults: u64,
}

impl OpCounts {
    /// Every rekey message: wraps plus public records.
    pub fn messages(&self) -> u64 {
        self.unicast + self.multicast + self.broadcast
    }

    fn add(&mut self, o: &OpCounts) {
        self.unicast += o.unicast;
        self.multicast += o.multicast;
        self.broadcast += o.broadcast;
        self.encryptions += o.encryptions;
        self.fresh_keys += o.fresh_keys;
        self.one_way += o.one_way;
        self.field_mults += o.field_mults;
    }

    pub(crate) fn count_wrap(&mut self, mode: WrapMode) {
        match mode {
            WrapMode::Unicast => self.unicast += 1,
            WrapMode::Multicast => self.multicast += 1,
            WrapMode::Broadcast => self.broadcast += 1,
        }
        self.encryptions += 1;
    }
}

/// Everything one operation publishes or hands out.
#[derive(Debug, Default)]
pub struct Rekeying {
    /// Epoch after the operation.
    pub epoch: u32,
    /// Wraps, each fetched under its own name.
    pub wraps: Vec<Wrap>,
    /// Public rekey records.
    pub public: Vec<PublicInfo>,
    /// Secrets a joining meter receives over its key-establishment channel (not rekey traffic):
    /// `(meter, key name, key)`.
    pub provisioned: Vec<(u32, String, SymmetricKey)>,
    /// Counters.
    pub counts: OpCounts,
}

impl Rekeying {
    /// Appends `o` (used to express a batch as individual operations).
    pub fn absorb(&mut self, o: Rekeying) {
        self.epoch = o.epoch;
        self.wraps.extend(o.wraps);
        self.public.extend(o.public);
        self.provisioned.extend(o.provisioned);
        self.counts.add(&o.counts);
    }
}

/// What a meter or an adversary knows: keys by name.
#[derive(Default)]
pub struct Knowledge {
    keys: HashMap<String, [u8; KEY_LEN]>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Knowledge {
    fn drop(&mut self) {
        for k in self.keys.values_mut() {
            k.zeroize();
        }
    }
}

impl Knowledge {
    /// Adds a key; returns whether it was new.
    pub fn insert(&mut self, name: &str, key: &[u8; KEY_LEN]) -> bool {
        if self.keys.contains_key(name) {
            return false;
        }
        self.keys.insert(name.to_string(), *key);
        true
    }

    /// The key under `name`, if known.
    pub fn get(&self, name: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.get(name)
    }

    /// Every known `(name, key)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8; KEY_LEN])> {
        self.keys.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// Number of known keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One key-management scheme: a server managing one group of meters.
pub trait Scheme {
    /// Short label, e.g. `"lkh"`.
    fn label(&self) -> &'static str;
    /// Current member ids (ascending).
    fn members(&self) -> Vec<u32>;
    /// Keys a meter enrolled at setup holds, as handed over in its enrolment exchange.
    fn enrolment_keys(&self, meter: u32) -> SchemeResult<Vec<(String, SymmetricKey)>>;
    /// Adds `meter` to the group.
    fn join(&mut self, meter: u32) -> SchemeResult<Rekeying>;
    /// Removes `meter` from the group.
    fn leave(&mut self, meter: u32) -> SchemeResult<Rekeying>;
    /// Applies several changes; schemes without a batch rekey apply them one by one.
    fn batch(&mut self, joins: &[u32], leaves: &[u32]) -> SchemeResult<Rekeying> {
        one_by_one(self, joins, leaves)
    }
    /// Replaces the group key without a membership change.
    fn refresh(&mut self) -> SchemeResult<Rekeying>;
    /// The current group key and its name.
    fn group_key(&self) -> (String, SymmetricKey);
    /// Keys `meter` stores (None if not a member).
    fn member_storage(&self, meter: u32) -> Option<u64>;
    /// Keys the server stores.
    fn server_storage(&self) -> u64;
    /// Keys anyone can compute from the public record `info` and the keys in `known`: the
    /// scheme's public derivations (OFT mixing, LKH+ ratchets, ACV key extraction). Uses nothing
    /// but its arguments.
    fn derive(&self, info: &PublicInfo, known: &Knowledge) -> Vec<(String, [u8; KEY_LEN])>;
}

/// Applies `leaves`, then `joins`, each as its own operation.
pub fn one_by_one<S: Scheme + ?Sized>(
    s: &mut S,
    joins: &[u32],
    leaves: &[u32],
) -> SchemeResult<Rekeying> {
    let mut out = Rekeying::default();
    for &m in leaves {
        out.absorb(s.leave(m)?);
    }
    for &m in joins {
        out.absorb(s.join(m)?);
    }
    Ok(out)
}

/// `ceil(log2(n))`, at least 1.
pub(crate) fn ceil_log2(n: u64) -> u8 {
    if n <= 2 {
        1
    } else {
        (64 - (n - 1).leading_zeros()) as u8
    }
}
