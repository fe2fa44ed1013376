//! Trust policy and validation: which keys may sign which names, and whether a packet's signer
//! chains to a trust anchor.
//!
//! A policy is an ordered list of rules. Each rule has a *data* pattern and one or more *signer*
//! patterns; the first rule whose data pattern matches a packet's name decides, and the packet's
//! KeyLocator name must match one of that rule's signer patterns. Patterns are names written as
//! URIs in which a component may be
//!
//! - a literal (`ami`, `KEY`, `%01`, `v=3`),
//! - `<var>` — exactly one component, captured; the same variable in the signer pattern must be
//!   the same component (this is how "meter X only signs under meter X" is said),
//! - `<_>` — exactly one component, not captured,
//! - `...` — any number (zero or more) of remaining components; only as the last element.
//!
//! The readable form is TOML:
//!
//! ```toml
//! # First matching rule decides: put certificate rules before the data rules they overlap.
//! [[rule]]
//! id = "meter-cert"
//! data = "/<u>/ami/meter/<id>/KEY/..."
//! signer = ["/<u>/ami/KMS/KEY/...", "/<u>/KEY/..."]
//!
//! [[rule]]
//! id = "meter-data"
//! data = "/<u>/ami/meter/<id>/..."
//! signer = "/<u>/ami/meter/<id>/KEY/..."
//! ```
//!
//! A rule may be limited to one kind of packet with `packet = "interest"` (command Interests,
//! checked by [`Validator::validate_interest`]) or `packet = "data"` (Data and certificates);
//! rules for the other kind are skipped. A command rule can then name who may send a command
//! without also deciding who signs the answers under the same names:
//!
//! ```toml
//! [[rule]]
//! id = "meter-commands"
//! packet = "interest"
//! data = "/<u>/ami/meter/<id>/cmd/..."
//! signer = "/<u>/ami/operator/KEY/..."
//! ```
//!
//! The validator applies the policy to every link of the chain (the packet, then each certificate
//! that is not a trust anchor), checks each signature (Ed25519 strictly) and each certificate's
//! ValidityPeriod, and stops at a configured anchor. Any public-key SignatureType may appear on any
//! link (Ed25519, ECDSA P-256, RSA); Ed25519 links of a batch share one batch verification.

use std::collections::{BTreeMap, HashMap};

use amicn_tlv::{Component, Data, Interest, KeyLocator, Name, SignatureInfo};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::{self, PublicKey};
use crate::signature::VerifyKey;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pat {
    Literal(Component),
    Capture(String),
    Any,
    Rest,
}

/// A compiled name pattern (see the module documentation for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    source: String,
    parts: Vec<Pat>,
}

/// Captured components, by variable name.
pub type Captures = HashMap<String, Component>;

impl NamePattern {
    /// Compiles a pattern.
    pub fn parse(source: &str) -> Result<Self> {
        let bad = |why: &str| Error::PolicyConfig(format!("pattern {source:?}: {why}"));
        let body = source
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'"))?;
        let mut parts = Vec::new();
        if !body.is_empty() {
            for seg in body.split('/') {
                if matches!(parts.last(), Some(Pat::Rest)) {
                    return Err(bad("'...' must be the last element"));
                }
                let p = if seg == "..." {
                    Pat::Rest
                } else if seg == "<_>" {
                    Pat::Any
                } else if let Some(var) = seg.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                    if var.is_empty()
                        || !var
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(bad("variable names are letters, digits, '_' and '-'"));
                    }
                    Pat::Capture(var.to_string())
                } else {
                    let n = Name::from_uri(&format!("/{seg}"))
                        .map_err(|e| bad(&format!("component {seg:?}: {e}")))?;
                    match (n.len(), n.get(0)) {
                        (1, Some(c)) => Pat::Literal(c),
                        _ => return Err(bad(&format!("{seg:?} is not one name component"))),
                    }
                };
                parts.push(p);
            }
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Matches `name`, honouring and extending `caps`. On failure `caps` is left unchanged.
    pub fn matches(&self, name: &Name, caps: &mut Captures) -> bool {
        let mut new: Vec<(String, Component)> = Vec::new();
        let mut i = 0usize;
        for p in &self.parts {
            match p {
                Pat::Rest => {
                    caps.extend(new);
                    return true;
                }
                _ => {
                    let Some(c) = name.get(i) else { return false };
                    match p {
                        Pat::Literal(l) if *l != c => return false,
                        Pat::Capture(v) => {
                            let bound = caps
                                .get(v)
                                .or_else(|| new.iter().find(|(k, _)| k == v).map(|(_, c)| c));
                            match bound {
                                Some(b) if *b != c => return false,
                                Some(_) => {}
                                None => new.push((v.clone(), c)),
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
        }
        if i == name.len() {
            caps.extend(new);
            true
        } else {
            false
        }
    }
}

/// One or several strings (lets a config say `signer = "..."` or `signer = ["...", "..."]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single pattern.
    One(String),
    /// Several alternatives.
    Many(Vec<String>),
}

impl OneOrMany {
    fn iter(&self) -> impl Iterator<Item = &String> {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s).iter(),
            OneOrMany::Many(v) => v.iter(),
        }
    }
}

/// Which signed packets a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    /// Data packets (and the certificates of every chain, which are Data).
    Data,
    /// Signed Interests (command Interests).
    Interest,
}

/// One rule as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleConfig {
    /// Identifier shown in errors.
    pub id: String,
    /// Pattern for the signed packet's name.
    pub data: String,
    /// Pattern(s) for the KeyLocator name allowed to sign it.
    pub signer: OneOrMany,
    /// Only for this kind of packet (`packet = "interest"` or `"data"`); absent: both. A rule
    /// for the other kind is skipped, so a command rule does not shadow the answers signed under
    /// the same names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<PacketKind>,
}

/// The configuration file: an ordered list of `[[rule]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Rules in priority order.
    #[serde(rename = "rule", default)]
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    packet: Option<PacketKind>,
    data: NamePattern,
    signers: Vec<NamePattern>,
}

/// A compiled trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    config: PolicyConfig,
    rules: Vec<Rule>,
}

impl TrustPolicy {
    /// Compiles a configuration.
    pub fn from_config(config: PolicyConfig) -> Result<Self> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for r in &config.rules {
            let signers = r
                .signer
                .iter()
                .map(|s| NamePattern::parse(s))
                .collect::<Result<Vec<_>>>()?;
            if signers.is_empty() {
                return Err(Error::PolicyConfig(format!(
                    "rule {:?} allows no signer",
                    r.id
                )));
            }
            rules.push(Rule {
                id: r.id.clone(),
                packet: r.packet,
                data: NamePattern::parse(&r.data)?,
                signers,
            });
        }
        Ok(Self { config, rules })
    }

    /// A policy letting any key sign any name; chains must still reach an anchor. For tools
    /// that are given anchors but no name rules.
    pub fn any_signer() -> Self {
        let rest = NamePattern {
            source: "/...".to_owned(),
            parts: vec![Pat::Rest],
        };
        Self {
            config: PolicyConfig {
                rules: vec![RuleConfig {
                    id: "any".to_owned(),
                    data: "/...".to_owned(),
                    signer: OneOrMany::One("/...".to_owned()),
                    packet: None,
                }],
            },
            rules: vec![Rule {
                id: "any".to_owned(),
                packet: None,
                data: rest.clone(),
                signers: vec![rest],
            }],
        }
    }

    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: PolicyConfig =
            toml::from_str(text).map_err(|e| Error::PolicyConfig(format!("TOML: {e}")))?;
        Self::from_config(config)
    }

    /// Writes the TOML form.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.config).unwrap_or_default()
    }

    /// The configuration this policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// A starting policy for one utility prefix: the KMS signs everything under `/<u>/ami/KMS`
    /// and all key objects (`.../KEK/...` under dr and bcast), meter X signs `/<u>/ami/meter/X/...`,
    /// certificates of the KMS are issued by the utility root key `/<u>/KEY/...`, meter certificates
    /// by the KMS or the root.
    pub fn ami(utility: &Name) -> Result<Self> {
        let u = utility.to_string();
        let u = if u == "/" { String::new() } else { u };
        let rule = |id: &str, data: String, signer: Vec<String>| RuleConfig {
            id: id.to_string(),
            data,
            signer: OneOrMany::Many(signer),
            packet: None,
        };
        let root = format!("{u}/KEY/...");
        let kms = format!("{u}/ami/KMS/KEY/...");
        Self::from_config(PolicyConfig {
            rules: vec![
                rule(
                    "kms-cert",
                    format!("{u}/ami/KMS/KEY/..."),
                    vec![root.clone()],
                ),
                rule("kms-objects", format!("{u}/ami/KMS/..."), vec![kms.clone()]),
                rule(
                    "meter-cert",
                    format!("{u}/ami/meter/<id>/KEY/..."),
                    vec![kms.clone(), root.clone()],
                ),
                rule(
                    "meter-data",
                    format!("{u}/ami/meter/<id>/..."),
                    vec![format!("{u}/ami/meter/<id>/KEY/...")],
                ),
                rule(
                    "project-keys",
                    format!("{u}/ami/dr/<p>/KEK/..."),
                    vec![kms.clone()],
                ),
                rule(
                    "broadcast-keys",
                    format!("{u}/ami/bcast/..."),
                    vec![kms.clone()],
                ),
                rule(
                    "role-cert",
                    format!("{u}/ami/<role>/KEY/..."),
                    vec![root.clone()],
                ),
                rule(
                    "dr-events",
                    format!("{u}/ami/dr/..."),
                    vec![format!("{u}/ami/dr/KEY/...")],
                ),
                rule(
                    "price",
                    format!("{u}/ami/price/..."),
                    vec![format!("{u}/ami/price/KEY/...")],
                ),
            ],
        })
    }

    /// Decides whether `signer` (a KeyLocator name) may sign the Data `name`. Returns the
    /// deciding rule's id.
    pub fn check(&self, name: &Name, signer: &Name) -> Result<&str> {
        self.check_packet(name, signer, PacketKind::Data)
    }

    /// Decides whether `signer` may sign the command Interest `name`.
    pub fn check_interest(&self, name: &Name, signer: &Name) -> Result<&str> {
        self.check_packet(name, signer, PacketKind::Interest)
    }

    /// Decides whether `signer` may sign a packet of `kind` named `name`: the first rule for
    /// that kind whose data pattern matches decides.
    pub fn check_packet(&self, name: &Name, signer: &Name, kind: PacketKind) -> Result<&str> {
        for rule in &self.rules {
            if rule.packet.is_some_and(|k| k != kind) {
                continue;
            }
            let mut caps = Captures::new();
            if rule.data.matches(name, &mut caps) {
                return if rule
                    .signers
                    .iter()
                    .any(|s| s.matches(signer, &mut caps.clone()))
                {
                    Ok(&rule.id)
                } else {
                    Err(Error::SignerNotAllowed {
                        rule: rule.id.clone(),
                        name: name.to_string(),
                        signer: signer.to_string(),
                    })
                };
            }
        }
        Err(Error::NoTrustRule {
            name: name.to_string(),
        })
    }
}

/// Where the validator looks up certificates it does not already have as anchors.
pub trait CertSource {
    /// The certificate designated by `locator` (a key name or a certificate name), if known.
    fn certificate(&self, locator: &Name) -> Option<Certificate>;
}

impl<F: Fn(&Name) -> Option<Certificate>> CertSource for F {
    fn certificate(&self, locator: &Name) -> Option<Certificate> {
        self(locator)
    }
}

/// An in-memory certificate store indexed by certificate name.
#[derive(Debug, Clone, Default)]
pub struct CertStore {
    certs: BTreeMap<Name, Certificate>,
}

impl CertStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a certificate.
    pub fn insert(&mut self, cert: Certificate) {
        self.certs.insert(cert.name().clone(), cert);
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// All certificates, in canonical name order.
    pub fn iter(&self) -> impl Iterator<Item = &Certificate> {
        self.certs.values()
    }
}

impl CertSource for CertStore {
    fn certificate(&self, locator: &Name) -> Option<Certificate> {
        if let Some(c) = self.certs.get(locator) {
            return Some(c.clone());
        }
        // A key name designates the newest certificate of that key (last in canonical order).
        self.certs
            .range(locator.clone()..)
            .take_while(|(n, _)| locator.is_prefix_of(n))
            .filter(|(_, c)| c.matches_locator(locator))
            .last()
            .map(|(_, c)| c.clone())
    }
}

/// What a successful validation established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// KeyLocator name of the packet's signer.
    pub signer: Name,
    /// Id of the rule that allowed the packet.
    pub rule: String,
    /// Certificate names followed, from the signer's certificate up to the anchor.
    pub chain: Vec<Name>,
}

/// Checks packets against a [`TrustPolicy`] and a set of trust anchors.
///
/// Verified chains are remembered per signer (bounded, default 4,096 signers) until the first
/// NotAfter or before the last NotBefore on the chain, so a stream of packets from one meter
/// costs one signature check each instead of one per certificate. When full, the cache evicts
/// the entries least likely to be used again (moka's TinyLFU) rather than starting over. After
/// revoking a certificate, call [`Validator::clear_chain_cache`] (or [`Validator::forget_signer`]).
pub struct Validator {
    policy: TrustPolicy,
    anchors: Vec<Anchor>,
    any_self_signed: bool,
    max_depth: usize,
    cache_capacity: usize,
    chain_cache: moka::sync::Cache<Name, ResolvedChain>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("policy", &self.policy)
            .field("anchors", &self.anchors)
            .field("max_depth", &self.max_depth)
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}

/// A trust anchor: a self-signed certificate, or a bare key known out of band.
#[derive(Debug, Clone)]
// A validator holds a handful of anchors: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Anchor {
    Cert(Certificate),
    Key { key_name: Name, key: VerifyKey },
}

impl Anchor {
    fn matches_locator(&self, locator: &Name) -> bool {
        match self {
            Self::Cert(c) => c.matches_locator(locator),
            // A bare key anchors its key name and every certificate name under it.
            Self::Key { key_name, .. } => key_name.is_prefix_of(locator),
        }
    }

    fn key(&self) -> &VerifyKey {
        match self {
            Self::Cert(c) => c.key(),
            Self::Key { key, .. } => key,
        }
    }

    fn name(&self) -> &Name {
        match self {
            Self::Cert(c) => c.name(),
            Self::Key { key_name, .. } => key_name,
        }
    }

    fn validity(&self) -> crate::cert::Validity {
        match self {
            Self::Cert(c) => c.validity(),
            Self::Key { .. } => crate::cert::Validity {
                not_before: 0,
                not_after: u64::MAX,
            },
        }
    }

    fn check_validity(&self, now_s: u64) -> Result<()> {
        match self {
            Self::Cert(c) => c.check_validity(now_s),
            Self::Key { .. } => Ok(()),
        }
    }
}

fn chain_cache(capacity: usize) -> moka::sync::Cache<Name, ResolvedChain> {
    moka::sync::Cache::new(capacity as u64)
}

/// A resolved chain and the window (seconds) in which every certificate on it is valid.
#[derive(Debug, Clone)]
struct ResolvedChain {
    key: VerifyKey,
    chain: Vec<Name>,
    from_s: u64,
    until_s: u64,
}

impl Clone for Validator {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            anchors: self.anchors.clone(),
            any_self_signed: self.any_self_signed,
            max_depth: self.max_depth,
            cache_capacity: self.cache_capacity,
            chain_cache: chain_cache(self.cache_capacity),
        }
    }
}

/// A certificate signature check deferred to a batch.
struct SigCheck {
    name: Name,
    signer: Name,
    portion: Bytes,
    sig_type: u64,
    value: Bytes,
    key: VerifyKey,
}

impl SigCheck {
    fn of(data: &Data, key: &VerifyKey) -> Self {
        Self {
            name: data.name.clone(),
            signer: locator_of(&data.signature_info),
            portion: data.signed_portion(),
            sig_type: data.signature_info.sig_type,
            value: data.signature_value.clone(),
            key: key.clone(),
        }
    }

    fn verify(&self) -> Result<()> {
        self.key.verify(
            &self.name,
            &self.signer,
            self.sig_type,
            &self.portion,
            &self.value,
        )
    }
}

/// The signed parts of a packet, borrowed for one check.
struct Signed<'a> {
    kind: PacketKind,
    name: &'a Name,
    info: &'a SignatureInfo,
    portion: Bytes,
    value: &'a [u8],
}

impl Validator {
    /// A validator with no anchors yet and a maximum chain length of 8 certificates.
    pub fn new(policy: TrustPolicy) -> Self {
        Self {
            policy,
            anchors: Vec::new(),
            any_self_signed: false,
            max_depth: 8,
            cache_capacity: 4096,
            chain_cache: chain_cache(4096),
        }
    }

    /// Sets how many verified signer chains are remembered (0 disables the cache).
    pub fn with_chain_cache(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self.chain_cache = chain_cache(capacity);
        self
    }

    /// Forgets every remembered chain (e.g. after a revocation).
    pub fn clear_chain_cache(&self) {
        self.chain_cache.invalidate_all();
    }

    /// Forgets the remembered chain of one signer (KeyLocator name).
    pub fn forget_signer(&self, signer: &Name) {
        self.chain_cache.invalidate(signer);
    }

    /// Number of remembered chains.
    pub fn cached_chains(&self) -> usize {
        // moka counts lazily: settle pending inserts and evictions first.
        self.chain_cache.run_pending_tasks();
        usize::try_from(self.chain_cache.entry_count()).unwrap_or(usize::MAX)
    }

    /// Limits how many certificates a chain may contain.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Adds a trust anchor. It must be self-signed with a valid signature.
    pub fn add_anchor(&mut self, cert: Certificate) -> Result<()> {
        if !cert.is_self_signed() {
            return Err(Error::NotACertificate {
                name: cert.name().to_string(),
                reason: "a trust anchor must be self-signed",
            });
        }
        cert.verify_self_signature()?;
        self.anchors.push(Anchor::Cert(cert));
        Ok(())
    }

    /// Trusts the key of a certificate configured out of band (a repository's publisher, a
    /// peer's), whoever issued it: packets signed by that key (KeyLocator = its key name or
    /// certificate name) need no chain, but the certificate's ValidityPeriod is still checked.
    pub fn pin_certificate(&mut self, cert: Certificate) {
        self.anchors.push(Anchor::Cert(cert));
    }

    /// Trusts a bare public key for `key_name` (`/<identity>/KEY/<id>`) and every certificate
    /// name under it, with no validity limit: for keys distributed out of band.
    pub fn add_key_anchor(&mut self, key_name: Name, key: VerifyKey) {
        self.anchors.push(Anchor::Key { key_name, key });
    }

    /// Integrity-only checking: a chain may also end at any self-signed certificate whose own
    /// signature verifies. Signatures, validity periods and the policy are still checked, but
    /// anyone can make such a certificate, so this proves integrity, not origin.
    pub fn accept_any_self_signed(mut self, yes: bool) -> Self {
        self.any_self_signed = yes;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    fn anchor_for(&self, locator: &Name) -> Option<&Anchor> {
        self.anchors.iter().find(|a| a.matches_locator(locator))
    }

    /// Validates a Data packet at time `now_ms` (milliseconds since the Unix epoch).
    pub fn validate_data(
        &self,
        data: &Data,
        certs: &dyn CertSource,
        now_ms: u64,
    ) -> Result<Validated> {
        let signed = Signed {
            kind: PacketKind::Data,
            name: &data.name,
            info: &data.signature_info,
            portion: data.signed_portion(),
            value: &data.signature_value,
        };
        self.validate(signed, certs, now_ms)
    }

    /// Validates a signed Interest (signature, chain, policy; also its ParametersSha256Digest).
    /// Replay checking is separate ([`crate::replay::ReplayChecker`]) and must follow.
    pub fn validate_interest(
        &self,
        interest: &Interest,
        certs: &dyn CertSource,
        now_ms: u64,
    ) -> Result<Validated> {
        let (info, value, portion) = identity::interest_signed_parts(interest)?;
        let signed = Signed {
            kind: PacketKind::Interest,
            name: &interest.name,
            info,
            portion,
            value,
        };
        self.validate(signed, certs, now_ms)
    }

    /// Validates an Interest signature given as its parts: the Interest's name, its
    /// SignatureInfo, the bytes the signature covers and the SignatureValue. For signed forms
    /// the other methods do not parse, such as the old command Interest whose SignatureInfo
    /// and SignatureValue are its last two name components; Interest rules of the policy apply.
    pub fn validate_parts(
        &self,
        name: &Name,
        info: &SignatureInfo,
        signed_portion: Bytes,
        value: &[u8],
        certs: &dyn CertSource,
        now_ms: u64,
    ) -> Result<Validated> {
        let signed = Signed {
            kind: PacketKind::Interest,
            name,
            info,
            portion: signed_portion,
            value,
        };
        self.validate(signed, certs, now_ms)
    }

    /// Validates a command Interest completely: signature, chain and policy first, then the
    /// replay rules, so an unauthenticated Interest can never advance the replay state.
    pub fn validate_command(
        &self,
        interest: &Interest,
        certs: &dyn CertSource,
        replay: &mut crate::replay::ReplayChecker,
        now_ms: u64,
    ) -> Result<Validated> {
        let v = self.validate_interest(interest, certs, now_ms)?;
        replay.check_interest(interest, now_ms)?;
        Ok(v)
    }

    /// Validates many Data at once: chains are resolved once per distinct signer, and every
    /// signature the batch needs — the packets' own and those of certificates not verified
    /// before — is checked with one Ed25519 batch verification (falling back to one-by-one
    /// checks to pinpoint failures). A chain is remembered only after its signatures passed.
    /// Results are in input order.
    pub fn validate_data_batch(
        &self,
        packets: &[Data],
        certs: &dyn CertSource,
        now_ms: u64,
    ) -> Vec<Result<Validated>> {
        let now_s = now_ms / 1000;
        // Chains resolved in this batch: from the cache (no checks) or newly walked, with the
        // certificate signature checks they still need (`checks[range]`).
        let mut chains: HashMap<Name, (ResolvedChain, std::ops::Range<usize>)> = HashMap::new();
        let mut checks: Vec<SigCheck> = Vec::new();
        // Packets whose chain resolved hold `Ok` provisionally until their signatures are checked.
        let mut out: Vec<Result<Validated>> = Vec::with_capacity(packets.len());
        let mut pending: Vec<(usize, VerifyKey)> = Vec::new();
        for (i, d) in packets.iter().enumerate() {
            let checked = self
                .precheck(&d.name, &d.signature_info, &d.signature_value)
                .and_then(|(signer, rule)| {
                    // Only chains that resolved are kept; a failing one is re-resolved so every
                    // packet gets its own error value.
                    let key = match chains.get(&signer) {
                        Some((c, _)) => (c.key.clone(), c.chain.clone()),
                        None => {
                            let first = checks.len();
                            let c = match self.cached_chain(&signer, now_s) {
                                Some(c) => c,
                                None => self.resolve_chain_uncached(
                                    &signer,
                                    certs,
                                    now_s,
                                    &mut |data, key| {
                                        checks.push(SigCheck::of(data, key));
                                        Ok(())
                                    },
                                )?,
                            };
                            let key = (c.key.clone(), c.chain.clone());
                            chains.insert(signer.clone(), (c, first..checks.len()));
                            key
                        }
                    };
                    Ok((
                        key.0,
                        Validated {
                            signer,
                            rule,
                            chain: key.1,
                        },
                    ))
                });
            match checked {
                Ok((pk, v)) => {
                    pending.push((i, pk));
                    out.push(Ok(v));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let portions: Vec<Bytes> = pending
            .iter()
            .map(|(i, _)| packets[*i].signed_portion())
            .collect();
        // Ed25519 signatures share one batch equation; the other types are checked one by one.
        let mut others_good = true;
        let mut items: Vec<(&[u8], &[u8], &PublicKey)> = Vec::new();
        for c in &checks {
            match (&c.key, c.sig_type) {
                (VerifyKey::Ed25519(pk), amicn_tlv::sig::ED25519) => {
                    items.push((c.portion.as_ref(), c.value.as_ref(), pk));
                }
                _ => others_good &= c.verify().is_ok(),
            }
        }
        for ((i, key), p) in pending.iter().zip(&portions) {
            let d = &packets[*i];
            match (key, d.signature_info.sig_type) {
                (VerifyKey::Ed25519(pk), amicn_tlv::sig::ED25519) => {
                    items.push((p.as_ref(), d.signature_value.as_ref(), pk));
                }
                _ => {
                    others_good &= key
                        .verify(
                            &d.name,
                            &locator_of(&d.signature_info),
                            d.signature_info.sig_type,
                            p,
                            &d.signature_value,
                        )
                        .is_ok();
                }
            }
        }
        let all_good = others_good && identity::verify_batch(&items).is_ok();
        // Batch and single verification may disagree on crafted inputs; the strict single check
        // decides, and names the packets (and certificates) that failed.
        let cert_failed: Vec<bool> = if all_good {
            vec![false; checks.len()]
        } else {
            checks.iter().map(|c| c.verify().is_err()).collect()
        };
        // Per signer: the first certificate check of its chain that failed, if any.
        let mut chain_failure: HashMap<&Name, Option<usize>> = HashMap::new();
        for (signer, (chain, range)) in &chains {
            let failed = range.clone().find(|&k| cert_failed[k]);
            if failed.is_none() && !range.is_empty() {
                self.remember_chain(signer, chain.clone());
            }
            chain_failure.insert(signer, failed);
        }
        if all_good {
            return out;
        }
        for ((i, pk), portion) in pending.iter().zip(&portions) {
            let d = &packets[*i];
            let signer = locator_of(&d.signature_info);
            let verdict = match chain_failure.get(&signer) {
                Some(Some(k)) => checks[*k].verify(),
                _ => pk.verify(
                    &d.name,
                    &signer,
                    d.signature_info.sig_type,
                    portion,
                    &d.signature_value,
                ),
            };
            if let Err(e) = verdict {
                out[*i] = Err(e);
            }
        }
        out
    }

    /// Signature type, KeyLocator and policy check of one link; returns the signer and rule id.
    /// Only public-key types chain to anchors: RSA, ECDSA and Ed25519.
    fn precheck(&self, name: &Name, info: &SignatureInfo, value: &[u8]) -> Result<(Name, String)> {
        self.precheck_kind(name, info, value, PacketKind::Data)
    }

    fn precheck_kind(
        &self,
        name: &Name,
        info: &SignatureInfo,
        value: &[u8],
        kind: PacketKind,
    ) -> Result<(Name, String)> {
        use amicn_tlv::sig::{ED25519, SHA256_WITH_ECDSA, SHA256_WITH_RSA};
        if ![ED25519, SHA256_WITH_ECDSA, SHA256_WITH_RSA].contains(&info.sig_type) {
            return Err(Error::UnsupportedSignatureType {
                name: name.to_string(),
                sig_type: info.sig_type,
            });
        }
        if info.sig_type == ED25519 && value.len() != identity::SIGNATURE_LEN {
            return Err(Error::SignatureLength {
                name: name.to_string(),
                len: value.len(),
                expected: identity::SIGNATURE_LEN,
            });
        }
        let signer = match &info.key_locator {
            Some(KeyLocator::Name(n)) => n.clone(),
            _ => {
                return Err(Error::MissingKeyLocator {
                    name: name.to_string(),
                });
            }
        };
        let rule = self.policy.check_packet(name, &signer, kind)?.to_string();
        Ok((signer, rule))
    }

    /// Follows certificates from `signer` up to an anchor; returns the signer's public key and the
    /// certificate names on the way.
    fn resolve_chain(
        &self,
        signer: &Name,
        certs: &dyn CertSource,
        now_ms: u64,
    ) -> Result<(VerifyKey, Vec<Name>)> {
        let now_s = now_ms / 1000;
        if let Some(c) = self.cached_chain(signer, now_s) {
            return Ok((c.key, c.chain));
        }
        let c = self.resolve_chain_uncached(signer, certs, now_s, &mut |data, key| {
            crate::signature::verify_data_key(data, key)
        })?;
        let out = (c.key.clone(), c.chain.clone());
        self.remember_chain(signer, c);
        Ok(out)
    }

    /// The remembered chain of `signer`, if every certificate on it is valid at `now_s`.
    fn cached_chain(&self, signer: &Name, now_s: u64) -> Option<ResolvedChain> {
        if self.cache_capacity == 0 {
            return None;
        }
        self.chain_cache
            .get(signer)
            .filter(|c| c.from_s <= now_s && now_s <= c.until_s)
    }

    /// Remembers a chain whose signatures have all been verified.
    fn remember_chain(&self, signer: &Name, chain: ResolvedChain) {
        if self.cache_capacity == 0 {
            return;
        }
        self.chain_cache.insert(signer.clone(), chain);
    }

    /// Follows certificates from `signer` up to an anchor, checking validity and policy of each
    /// link; every certificate signature is handed to `verify` (which checks it at once, or
    /// defers it to a batch). Returns the signer's key, the certificate names, and the window in
    /// which all of them are valid.
    fn resolve_chain_uncached(
        &self,
        signer: &Name,
        certs: &dyn CertSource,
        now_s: u64,
        verify: &mut dyn FnMut(&Data, &VerifyKey) -> Result<()>,
    ) -> Result<ResolvedChain> {
        let mut from_s = 0u64;
        let mut until_s = u64::MAX;
        let mut chain: Vec<Name> = Vec::new();
        // The packet's signer: an anchor directly, or the first certificate of the chain.
        if let Some(anchor) = self.anchor_for(signer) {
            anchor.check_validity(now_s)?;
            let v = anchor.validity();
            return Ok(ResolvedChain {
                key: anchor.key().clone(),
                chain: vec![anchor.name().clone()],
                from_s: v.not_before,
                until_s: v.not_after,
            });
        }
        let mut cert = self.fetch(signer, certs)?;
        let leaf_key = cert.key().clone();
        loop {
            if chain.contains(cert.name()) || chain.len() >= self.max_depth {
                // A loop or too long.
                return Err(Error::NoTrustAnchor {
                    name: signer.to_string(),
                    depth: chain.len(),
                });
            }
            if cert.is_self_signed() {
                if !self.any_self_signed {
                    return Err(Error::UntrustedSelfSigned {
                        name: signer.to_string(),
                        certificate: cert.name().to_string(),
                    });
                }
                cert.check_validity(now_s)?;
                verify(cert.data(), cert.key())?;
                chain.push(cert.name().clone());
                return Ok(ResolvedChain {
                    key: leaf_key,
                    chain,
                    from_s: from_s.max(cert.validity().not_before),
                    until_s: until_s.min(cert.validity().not_after),
                });
            }
            cert.check_validity(now_s)?;
            from_s = from_s.max(cert.validity().not_before);
            until_s = until_s.min(cert.validity().not_after);
            chain.push(cert.name().clone());
            let data = cert.data();
            let (issuer, _) =
                self.precheck(&data.name, &data.signature_info, &data.signature_value)?;
            if let Some(anchor) = self.anchor_for(&issuer) {
                anchor.check_validity(now_s)?;
                verify(data, anchor.key())?;
                from_s = from_s.max(anchor.validity().not_before);
                until_s = until_s.min(anchor.validity().not_after);
                chain.push(anchor.name().clone());
                return Ok(ResolvedChain {
                    key: leaf_key,
                    chain,
                    from_s,
                    until_s,
                });
            }
            let issuer_cert = self.fetch(&issuer, certs)?;
            verify(data, issuer_cert.key())?;
            cert = issuer_cert;
        }
    }

    fn fetch(&self, locator: &Name, certs: &dyn CertSource) -> Result<Certificate> {
        certs
            .certificate(locator)
            .filter(|c| c.matches_locator(locator))
            .ok_or_else(|| Error::CertificateNotFound {
                key_locator: locator.to_string(),
            })
    }

    fn validate(&self, p: Signed<'_>, certs: &dyn CertSource, now_ms: u64) -> Result<Validated> {
        let (signer, rule) = self.precheck_kind(p.name, p.info, p.value, p.kind)?;
        let (pk, chain) = self.resolve_chain(&signer, certs, now_ms)?;
        pk.verify(p.name, &signer, p.info.sig_type, &p.portion, p.value)?;
        Ok(Validated {
            signer,
            rule,
            chain,
        })
    }
}

fn locator_of(info: &SignatureInfo) -> Name {
    match &info.key_locator {
        Some(KeyLocator::Name(n)) => n.clone(),
        _ => Name::default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_uri(s).unwrap()
    }

    #[test]
    fn patterns_capture_and_rest() {
        let p = NamePattern::parse("/<u>/ami/meter/<id>/...").unwrap();
        let mut caps = Captures::new();
        assert!(p.matches(&n("/utility/ami/meter/42/reading/7"), &mut caps));
        assert_eq!(caps["id"].value(), b"42");
        assert_eq!(caps["u"].value(), b"utility");
        let s = NamePattern::parse("/<u>/ami/meter/<id>/KEY/...").unwrap();
        assert!(s.matches(
            &n("/utility/ami/meter/42/KEY/k/self/v=1"),
            &mut caps.clone()
        ));
        assert!(!s.matches(&n("/utility/ami/meter/43/KEY/k"), &mut caps.clone()));
        // Rest matches zero components too; Any exactly one.
        assert!(p.matches(&n("/x/ami/meter/1"), &mut Captures::new()));
        let a = NamePattern::parse("/a/<_>").unwrap();
        assert!(a.matches(&n("/a/b"), &mut Captures::new()));
        assert!(!a.matches(&n("/a"), &mut Captures::new()));
        assert!(!a.matches(&n("/a/b/c"), &mut Captures::new()));
        // Repeated variable inside one pattern.
        let r = NamePattern::parse("/<x>/<x>").unwrap();
        assert!(r.matches(&n("/q/q"), &mut Captures::new()));
        assert!(!r.matches(&n("/q/r"), &mut Captures::new()));
        for bad in ["a/b", "/.../x", "/<>", "/<a b>"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interest_rules_do_not_shadow_the_answers_under_the_same_names() {
        let text = r#"
[[rule]]
id = "meter-commands"
packet = "interest"
data = "/u/ami/meter/<id>/cmd/..."
signer = "/u/ami/operator/KEY/..."

[[rule]]
id = "meter-data"
data = "/u/ami/meter/<id>/..."
signer = "/u/ami/meter/<id>/KEY/..."
"#;
        let p = TrustPolicy::from_toml(text).unwrap();
        let cmd = n("/u/ami/meter/7/cmd/disconnect/x");
        let op = n("/u/ami/operator/KEY/a");
        let m7 = n("/u/ami/meter/7/KEY/a");
        assert_eq!(p.check_interest(&cmd, &op).unwrap(), "meter-commands");
        // The meter may not command itself, but signs the answer Data under that name.
        assert!(matches!(
            p.check_interest(&cmd, &m7),
            Err(Error::SignerNotAllowed { ref rule, .. }) if rule == "meter-commands"
        ));
        assert_eq!(p.check(&cmd, &m7).unwrap(), "meter-data");
        assert!(p.check(&cmd, &op).is_err());
        // The kind survives a TOML round trip.
        let back = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert_eq!(back.config(), p.config());
        assert!(
            TrustPolicy::from_toml("[[rule]]\nid='x'\ndata='/a'\nsigner='/b'\npacket='nack'")
                .is_err()
        );
    }

    #[test]
    fn policy_toml_first_match_decides() {
        let text = r#"
[[rule]]
id = "meter-cert"
data = "/<u>/ami/meter/<id>/KEY/..."
signer = ["/<u>/ami/KMS/KEY/...", "/<u>/KEY/..."]

[[rule]]
id = "meter-data"
data = "/<u>/ami/meter/<id>/..."
signer = "/<u>/ami/meter/<id>/KEY/..."

[[rule]]
id = "kms"
data = "/<u>/ami/KMS/..."
signer = "/<u>/ami/KMS/KEY/..."
"#;
        let p = TrustPolicy::from_toml(text).unwrap();
        assert_eq!(
            p.check(&n("/u1/ami/meter/7/reading/1"), &n("/u1/ami/meter/7/KEY/a"))
                .unwrap(),
            "meter-data"
        );
        assert!(matches!(
            p.check(&n("/u1/ami/meter/7/reading/1"), &n("/u1/ami/meter/8/KEY/a")),
            Err(Error::SignerNotAllowed { ref rule, .. }) if rule == "meter-data"
        ));
        assert!(matches!(
            p.check(&n("/u1/ami/KMS/rekey/3"), &n("/u1/ami/meter/7/KEY/a")),
            Err(Error::SignerNotAllowed { .. })
        ));
        assert_eq!(
            p.check(&n("/u1/ami/meter/7/KEY/a/kms/v=1"), &n("/u1/ami/KMS/KEY/z"))
                .unwrap(),
            "meter-cert"
        );
        assert!(matches!(
            p.check(&n("/other/thing"), &n("/u1/KEY/a")),
            Err(Error::NoTrustRule { .. })
        ));
        // The TOML form round-trips.
        let again = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert_eq!(again.config(), p.config());
        assert!(TrustPolicy::from_toml("[[rule]]\nid = 1").is_err());
    }

    #[test]
    fn ami_template_rules() {
        let p = TrustPolicy::ami(&n("/example-utility")).unwrap();
        let ok = |d: &str, s: &str| p.check(&n(d), &n(s)).is_ok();
        assert!(ok(
            "/example-utility/ami/KMS/rekey/5",
            "/example-utility/ami/KMS/KEY/k"
        ));
        assert!(!ok(
            "/example-utility/ami/KMS/rekey/5",
            "/example-utility/ami/meter/1/KEY/k"
        ));
        assert!(ok(
            "/example-utility/ami/meter/1/reading/9",
            "/example-utility/ami/meter/1/KEY/k"
        ));
        assert!(!ok(
            "/example-utility/ami/meter/1/reading/9",
            "/example-utility/ami/meter/2/KEY/k"
        ));
        assert!(ok(
            "/example-utility/ami/dr/p1/KEK/v=3/ENCRYPTED-BY/x",
            "/example-utility/ami/KMS/KEY/k"
        ));
        assert!(!ok(
            "/example-utility/ami/dr/p1/KEK/v=3",
            "/example-utility/ami/dr/KEY/k"
        ));
        assert!(ok(
            "/example-utility/ami/KMS/KEY/k/root/v=1",
            "/example-utility/KEY/r"
        ));
        assert!(!ok(
            "/example-utility/ami/KMS/KEY/k/root/v=1",
            "/example-utility/ami/KMS/KEY/k"
        ));
    }
}
