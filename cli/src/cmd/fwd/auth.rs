//! Management command authorisation for `amicn fwd`, as NFD's `authorizations` section does it:
//! each entry names trust anchors (NDN certificate files, or `any`) and the management modules
//! (`faces`, `fib`, `rib`, `strategy-choice`, `cs`) whose commands they may sign.
//!
//! A command for a module granted to `any` runs without checks (NFD's shipped `certfile any`).
//! Otherwise the command must be a signed Interest — the v0.3 form (InterestSignatureInfo and
//! InterestSignatureValue) or the old form whose last four name components are timestamp,
//! nonce, SignatureInfo and SignatureValue — whose signer chains, through
//! [`amicn_kms::trust::Validator`], to an anchor of an entry granting the module; then its
//! SignatureTime (or timestamp component) must lie within the grace window and be newer than the
//! last one accepted from that key, and its nonce must not repeat. Anything else is refused with
//! 403 and counted by reason. Certificates are read from local files at start: judging a
//! command never waits for the network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use amicn_forwarder::core::Time;
use amicn_forwarder::mgmt::{CommandVerifier, Verdict};
use amicn_kms::Error as KmsError;
use amicn_kms::cert::Certificate;
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
use amicn_tlv::{Interest, KeyLocator, Name, SignatureInfo, sig, tt};
use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// The management modules whose commands can be granted (NFD's privilege names).
pub(crate) const MODULES: [&str; 5] = ["faces", "fib", "rib", "strategy-choice", "cs"];

/// Why a command was refused; each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Refusal {
    /// No signature, or DigestSha256 only (integrity, no signer).
    Unsigned,
    /// The signature fields do not parse.
    Malformed,
    /// The signature does not verify with the signer's key.
    BadSignature,
    /// The signer does not chain to any configured anchor (or a certificate on the way is
    /// missing or outside its validity period).
    UntrustedSigner,
    /// The signer chains to an anchor that is not granted this module.
    NotGranted,
    /// SignatureTime outside the grace window, not newer than the last one, or a repeated nonce.
    Replay,
}

impl Refusal {
    /// The counter label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::UntrustedSigner => "untrusted_signer",
            Refusal::NotGranted => "not_granted",
            Refusal::Replay => "replay",
        }
    }

    const ALL: [Refusal; 6] = [
        Refusal::Unsigned,
        Refusal::Malformed,
        Refusal::BadSignature,
        Refusal::UntrustedSigner,
        Refusal::NotGranted,
        Refusal::Replay,
    ];
}

/// A certificate file or `any`, as written in one entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One `[[authorization]]` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizationSection {
    /// Trust anchor certificate file(s), or `"any"`.
    certfile: OneOrMany,
    /// Modules granted.
    privileges: Vec<String>,
    /// Certificates linking signers to these anchors (issued by them), if signers are not the
    /// anchors' own keys.
    #[serde(default)]
    certs: Vec<PathBuf>,
}

/// One entry, with paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// `None` = `any`.
    pub(crate) certfile: Option<PathBuf>,
    pub(crate) modules: BTreeSet<String>,
    pub(crate) certs: Vec<PathBuf>,
}

fn modules(field: &str, list: &[String]) -> anyhow::Result<BTreeSet<String>> {
    if list.is_empty() {
        bail!(
            "{field}: grants no privilege; allowed: {}",
            MODULES.join(", ")
        );
    }
    let mut out = BTreeSet::new();
    for m in list {
        if !MODULES.contains(&m.as_str()) {
            bail!(
                "{field}: unknown privilege {m:?}; allowed: {}",
                MODULES.join(", ")
            );
        }
        out.insert(m.clone());
    }
    Ok(out)
}

/// Resolves the config file's entries (relative paths are relative to the file's directory).
pub(crate) fn grants_from_file(
    entries: &[AuthorizationSection],
    base: &Path,
) -> anyhow::Result<Vec<Grant>> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("authorization[{i}]");
        let modules = modules(&format!("{field}.privileges"), &e.privileges)?;
        let files = e.certfile.to_vec();
        if files.is_empty() {
            bail!("{field}.certfile: names no certificate; expected a file or \"any\"");
        }
        let certs: Vec<PathBuf> = e.certs.iter().map(|p| base.join(p)).collect();
        for f in files {
            if f.trim().is_empty() {
                bail!("{field}.certfile: empty; expected a certificate file or \"any\"");
            }
            out.push(Grant {
                certfile: (f != "any").then(|| base.join(&f)),
                modules: modules.clone(),
                certs: certs.clone(),
            });
        }
    }
    Ok(out)
}

/// Parses `--authorize CERTFILE=MODULE[,MODULE...]` (CERTFILE may be `any`).
pub(crate) fn parse_flag(s: &str) -> anyhow::Result<Grant> {
    let Some((file, mods)) = s.rsplit_once('=') else {
        bail!(
            "authorization (--authorize) {s:?}: expected CERTFILE=MODULE[,MODULE...] or any=MODULE[,...]; modules: {}",
            MODULES.join(", ")
        );
    };
    if file.trim().is_empty() {
        bail!("authorization (--authorize) {s:?}: no certificate file before '='");
    }
    let list: Vec<String> = mods
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Grant {
        certfile: (file != "any").then(|| PathBuf::from(file)),
        modules: modules(&format!("authorization (--authorize) {s:?}"), &list)?,
        certs: Vec::new(),
    })
}

/// Reads one NDN certificate file (binary, or base64 as `ndnsec cert-dump` prints it).
fn read_certificate(path: &Path) -> anyhow::Result<Certificate> {
    let data = crate::cmd::key::read_anchor(&path.to_path_buf())?;
    Certificate::from_data(data)
        .with_context(|| format!("{} is not a usable certificate", path.display()))
}

/// Judges management command Interests against the configured grants.
pub(crate) struct Authorizer {
    validator: Validator,
    certs: CertStore,
    /// Anchor name (certificate or key name) → modules it grants.
    grants: HashMap<Name, BTreeSet<String>>,
    /// Modules granted to `any`.
    any: BTreeSet<String>,
    replay: ReplayChecker,
    refused: BTreeMap<Refusal, u64>,
    accepted: u64,
    clock: fn() -> u64,
    /// The entries in config-file syntax.
    description: String,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("anchors", &self.grants.len())
            .field("any", &self.any)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Authorizer {
    /// Loads every certificate the grants name; `grace_ms` bounds the SignatureTime skew.
    pub(crate) fn new(grants: &[Grant], grace_ms: u64) -> anyhow::Result<Self> {
        let mut validator = Validator::new(TrustPolicy::any_signer());
        let mut certs = CertStore::new();
        let mut by_anchor: HashMap<Name, BTreeSet<String>> = HashMap::new();
        let mut any = BTreeSet::new();
        for g in grants {
            for p in &g.certs {
                certs.insert(
                    read_certificate(p)
                        .with_context(|| format!("authorization certs: {}", p.display()))?,
                );
            }
            let Some(path) = &g.certfile else {
                any.extend(g.modules.iter().cloned());
                continue;
            };
            let cert = read_certificate(path).with_context(|| {
                format!(
                    "authorization certfile {}: expected an NDN certificate file or \"any\"",
                    path.display()
                )
            })?;
            // A self-signed certificate anchors as itself; one issued by somebody else anchors
            // its key (as NFD trusts the key of any configured certfile).
            let anchor = if cert.is_self_signed() {
                cert.name().clone()
            } else {
                cert.key_name()
            };
            if !by_anchor.contains_key(&anchor) {
                if cert.is_self_signed() {
                    validator
                        .add_anchor(cert.clone())
                        .with_context(|| format!("authorization certfile {}", path.display()))?;
                } else {
                    validator.add_key_anchor(cert.key_name(), cert.key().clone());
                }
            }
            by_anchor
                .entry(anchor)
                .or_default()
                .extend(g.modules.iter().cloned());
        }
        let mut description = String::new();
        for g in grants {
            let file = g
                .certfile
                .as_ref()
                .map_or_else(|| "any".to_owned(), |p| p.display().to_string());
            let mods: Vec<String> = g.modules.iter().map(|m| format!("{m:?}")).collect();
            description.push_str(&format!(
                "[[authorization]]\ncertfile = {file:?}\nprivileges = [{}]\n",
                mods.join(", ")
            ));
            if !g.certs.is_empty() {
                let certs: Vec<String> = g
                    .certs
                    .iter()
                    .map(|p| format!("{:?}", p.display().to_string()))
                    .collect();
                description.push_str(&format!("certs = [{}]\n", certs.join(", ")));
            }
        }
        Ok(Self {
            validator,
            certs,
            grants: by_anchor,
            any,
            replay: ReplayChecker::new(ReplayConfig {
                grace_ms,
                ..ReplayConfig::default()
            }),
            refused: BTreeMap::new(),
            accepted: 0,
            clock: wall_clock_ms,
            description,
        })
    }

    /// Uses another clock (milliseconds since the Unix epoch), for tests.
    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Commands accepted so far.
    #[cfg(test)]
    fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Refusals of one kind so far.
    #[cfg(test)]
    fn refused(&self, r: Refusal) -> u64 {
        self.refused.get(&r).copied().unwrap_or(0)
    }

    /// Decides one command; `Err` says why it is refused.
    pub(crate) fn judge(&mut self, interest: &Interest) -> Result<(), Refusal> {
        // /localhost/nfd/<module>/<verb>/...
        let module = interest
            .name
            .get(2)
            .map(|c| String::from_utf8_lossy(c.value()).into_owned())
            .unwrap_or_default();
        if self.any.contains(&module) {
            return Ok(());
        }
        let now_ms = (self.clock)();
        let signed = signed_parts(interest)?;
        if signed.info.sig_type == sig::DIGEST_SHA256 {
            return Err(Refusal::Unsigned);
        }
        let validated = self
            .validator
            .validate_parts(
                &signed.name,
                &signed.info,
                signed.portion,
                &signed.value,
                &self.certs,
                now_ms,
            )
            .map_err(classify)?;
        let anchor = validated.chain.last().cloned().unwrap_or_default();
        if !self
            .grants
            .get(&anchor)
            .is_some_and(|m| m.contains(&module))
        {
            return Err(Refusal::NotGranted);
        }
        self.replay
            .check_fields(
                &validated.signer,
                signed.time_ms,
                signed.nonce.as_deref(),
                signed.seq_num,
                now_ms,
            )
            .map_err(|_| Refusal::Replay)?;
        Ok(())
    }
}

impl CommandVerifier for Authorizer {
    fn verify(&mut self, _now: Time, interest: &Interest) -> Verdict {
        match self.judge(interest) {
            Ok(()) => {
                self.accepted += 1;
                Verdict::Accept
            }
            Err(r) => {
                *self.refused.entry(r).or_default() += 1;
                tracing::warn!(
                    name = %interest.name,
                    reason = r.as_str(),
                    "management command refused"
                );
                Verdict::Reject
            }
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.as_str(), self.refused.get(r).copied().unwrap_or(0)))
            .collect()
    }
}

fn classify(e: KmsError) -> Refusal {
    match e {
        KmsError::BadSignature { .. }
        | KmsError::DigestMismatch { .. }
        | KmsError::KeyTypeMismatch { .. }
        | KmsError::BadSignatureEncoding { .. }
        | KmsError::SignatureLength { .. }
        | KmsError::ParamsDigest { .. } => Refusal::BadSignature,
        KmsError::NotSigned { .. } => Refusal::Unsigned,
        KmsError::MissingKeyLocator { .. }
        | KmsError::UnsupportedSignatureType { .. }
        | KmsError::Tlv(_) => Refusal::Malformed,
        _ => Refusal::UntrustedSigner,
    }
}

/// The signature of a command in either form.
struct Signed {
    name: Name,
    info: SignatureInfo,
    portion: Bytes,
    value: Bytes,
    time_ms: Option<u64>,
    nonce: Option<Bytes>,
    seq_num: Option<u64>,
}

/// Big-endian NonNegativeInteger of 1, 2, 4 or 8 bytes.
fn non_negative(v: &[u8]) -> Option<u64> {
    if !matches!(v.len(), 1 | 2 | 4 | 8) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
}

fn signed_parts(interest: &Interest) -> Result<Signed, Refusal> {
    if let (Some(info), Some(value)) = (&interest.signature_info, &interest.signature_value) {
        if interest.app_parameters.is_none() || !interest.check_params_digest() {
            return Err(Refusal::BadSignature);
        }
        return Ok(Signed {
            name: interest.name.clone(),
            info: info.clone(),
            portion: interest.signed_portion(),
            value: value.clone(),
            time_ms: info.time_ms,
            nonce: info.nonce.clone(),
            seq_num: info.seq_num,
        });
    }
    // Old form: /localhost/nfd/<module>/<verb>/<params>/<timestamp>/<nonce>/<SigInfo>/<SigValue>.
    let name = &interest.name;
    let n = name.len();
    if n < 9 {
        return Err(Refusal::Unsigned);
    }
    let (Some(ts), Some(nonce), Some(info), Some(value)) = (
        name.get(n - 4),
        name.get(n - 3),
        name.get(n - 2),
        name.get(n - 1),
    ) else {
        return Err(Refusal::Unsigned);
    };
    let Some(first) = info.value().first() else {
        return Err(Refusal::Unsigned);
    };
    if u64::from(*first) != tt::SIGNATURE_INFO as u64 {
        return Err(Refusal::Unsigned);
    }
    let info = SignatureInfo::decode(info.value_bytes().clone()).map_err(|_| Refusal::Malformed)?;
    let mut r = amicn_tlv::TlvReader::new(value.value_bytes().clone());
    let value = r
        .read()
        .ok()
        .filter(|e| e.typ == tt::SIGNATURE_VALUE)
        .ok_or(Refusal::Malformed)?
        .value;
    let time_ms = non_negative(ts.value()).ok_or(Refusal::Malformed)?;
    let mut portion = BytesMut::new();
    for k in 0..n - 1 {
        if let Some(w) = name.component_wire(k) {
            portion.extend_from_slice(w);
        }
    }
    let key_locator = match &info.key_locator {
        Some(KeyLocator::Name(_)) | None => info.key_locator.clone(),
        Some(_) => return Err(Refusal::Malformed),
    };
    Ok(Signed {
        name: name.prefix(n - 4),
        info: SignatureInfo {
            key_locator,
            ..info
        },
        portion: portion.freeze(),
        value,
        time_ms: Some(time_ms),
        nonce: Some(nonce.value_bytes().clone()),
        seq_num: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::cert::Validity;
    use amicn_kms::identity::KeyPair;
    use amicn_tlv::Component;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn clock() -> u64 {
        NOW_MS
    }

    fn validity() -> Validity {
        Validity {
            not_before: NOW_MS / 1000 - 10,
            not_after: NOW_MS / 1000 + 86_400,
        }
    }

    struct Key {
        pair: KeyPair,
        cert: Certificate,
        file: PathBuf,
    }

    fn key(dir: &Path, id: &str) -> Key {
        let pair = KeyPair::generate(&id.parse().unwrap());
        let cert = Certificate::self_signed(&pair, 1, validity()).unwrap();
        let file = dir.join(format!("{}.cert", id.replace('/', "_")));
        std::fs::write(&file, cert.data().encode()).unwrap();
        Key { pair, cert, file }
    }

    fn command(module: &str, time_ms: u64, nonce: u8) -> Interest {
        let name: Name = format!("/localhost/nfd/{module}/register").parse().unwrap();
        let mut i = Interest::new(name.append(Component::generic(vec![0x68, 0])));
        i.nonce = Some(7);
        i.signature_info = Some(SignatureInfo {
            time_ms: Some(time_ms),
            nonce: Some(vec![nonce; 8].into()),
            ..SignatureInfo::default()
        });
        i
    }

    fn signed(k: &Key, module: &str, time_ms: u64, nonce: u8) -> Interest {
        let mut i = command(module, time_ms, nonce);
        let mut info = i.signature_info.take().unwrap();
        info.sig_type = sig::ED25519;
        info.key_locator = Some(KeyLocator::Name(k.cert.name().clone()));
        let wire = i.sign_with(info, |p| k.pair.sign(p).to_vec());
        Interest::decode(wire).unwrap()
    }

    fn old_form(k: &Key, module: &str, time_ms: u64, nonce: u8) -> Interest {
        let mut name: Name = format!("/localhost/nfd/{module}/register").parse().unwrap();
        name = name.append(Component::generic(vec![0x68, 0]));
        name = name.append(Component::generic(time_ms.to_be_bytes().to_vec()));
        name = name.append(Component::generic(vec![nonce; 8]));
        let info = SignatureInfo::with_key(sig::ED25519, k.cert.name().clone());
        let mut buf = BytesMut::new();
        info.encode(&mut buf, tt::SIGNATURE_INFO);
        name = name.append(Component::generic(buf.to_vec()));
        let portion = name.value_wire().to_vec();
        let sig = k.pair.sign(&portion);
        let mut v = vec![tt::SIGNATURE_VALUE as u8, 64];
        v.extend_from_slice(&sig);
        Interest::new(name.append(Component::generic(v)))
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("amicn-auth-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn grant(k: &Key, mods: &[&str]) -> Grant {
        Grant {
            certfile: Some(k.file.clone()),
            modules: mods.iter().map(|m| m.to_string()).collect(),
            certs: Vec::new(),
        }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let dir = scratch("reasons");
        let op = key(&dir, "/op");
        let other = key(&dir, "/other");
        let mut a = Authorizer::new(&[grant(&op, &["rib"])], 60_000)
            .unwrap()
            .with_clock(clock);
        let good = signed(&op, "rib", NOW_MS, 1);
        assert_eq!(a.judge(&good), Ok(()));
        assert_eq!(a.judge(&good), Err(Refusal::Replay), "same command again");
        assert_eq!(
            a.judge(&signed(&op, "rib", NOW_MS - 1, 2)),
            Err(Refusal::Replay),
            "older than the last"
        );
        assert_eq!(
            a.judge(&signed(&op, "rib", NOW_MS - 120_000, 3)),
            Err(Refusal::Replay),
            "outside the grace window"
        );
        assert_eq!(a.judge(&signed(&op, "rib", NOW_MS + 1, 4)), Ok(()));
        assert_eq!(
            a.judge(&signed(&other, "rib", NOW_MS + 2, 5)),
            Err(Refusal::UntrustedSigner)
        );
        assert_eq!(
            a.judge(&signed(&op, "faces", NOW_MS + 3, 6)),
            Err(Refusal::NotGranted)
        );
        assert_eq!(
            a.judge(&command("rib", NOW_MS, 7)),
            Err(Refusal::Unsigned),
            "no signature"
        );
        let mut digest = command("rib", NOW_MS + 4, 8);
        let info = digest.signature_info.take().unwrap();
        let wire = digest.sign_digest_sha256(info);
        assert_eq!(
            a.judge(&Interest::decode(wire).unwrap()),
            Err(Refusal::Unsigned)
        );
        let mut forged = signed(&op, "rib", NOW_MS + 5, 9);
        let mut v = forged.signature_value.clone().unwrap().to_vec();
        v[0] ^= 1;
        forged.signature_value = Some(v.into());
        assert_eq!(a.judge(&forged), Err(Refusal::BadSignature));
    }

    #[test]
    fn old_form_commands_are_checked_too() {
        let dir = scratch("old");
        let op = key(&dir, "/op");
        let other = key(&dir, "/other");
        let mut a = Authorizer::new(&[grant(&op, &["rib", "faces"])], 60_000)
            .unwrap()
            .with_clock(clock);
        let good = old_form(&op, "rib", NOW_MS, 1);
        assert_eq!(a.judge(&good), Ok(()));
        assert_eq!(a.judge(&good), Err(Refusal::Replay));
        assert_eq!(
            a.judge(&old_form(&other, "rib", NOW_MS + 1, 2)),
            Err(Refusal::UntrustedSigner)
        );
        assert_eq!(
            a.judge(&old_form(&op, "cs", NOW_MS + 2, 3)),
            Err(Refusal::NotGranted)
        );
        // One flipped bit in the signed parameters.
        let mut name = old_form(&op, "faces", NOW_MS + 3, 4).name;
        let params = Component::generic(vec![0x68, 1]);
        let mut parts: Vec<Component> = name.components().collect();
        parts[4] = params;
        name = Name::new();
        for c in parts {
            name = name.append(c);
        }
        assert_eq!(a.judge(&Interest::new(name)), Err(Refusal::BadSignature));
    }

    #[test]
    fn any_grants_without_checks_and_counters_add_up() {
        let dir = scratch("any");
        let op = key(&dir, "/op");
        let grants = vec![
            grant(&op, &["faces"]),
            Grant {
                certfile: None,
                modules: ["rib".to_string()].into(),
                certs: Vec::new(),
            },
        ];
        let mut a = Authorizer::new(&grants, 60_000).unwrap().with_clock(clock);
        let now = Time::ZERO;
        assert_eq!(a.verify(now, &command("rib", 0, 1)), Verdict::Accept);
        assert_eq!(a.verify(now, &command("faces", 0, 1)), Verdict::Reject);
        assert_eq!(
            a.verify(now, &signed(&op, "faces", NOW_MS, 2)),
            Verdict::Accept
        );
        assert_eq!(a.accepted(), 2);
        assert_eq!(a.refused(Refusal::Unsigned), 1);
        let r = a.refusals();
        assert_eq!(r.len(), Refusal::ALL.len());
        assert_eq!(r.iter().map(|(_, n)| n).sum::<u64>(), 1);
    }

    #[test]
    fn issued_certificates_chain_to_the_anchor() {
        let dir = scratch("chain");
        let root = key(&dir, "/op/root");
        let alice = KeyPair::generate(&"/op/alice".parse().unwrap());
        let issued = Certificate::issue(
            alice.key_name(),
            alice.public_key(),
            &root.pair,
            b"root",
            1,
            validity(),
        )
        .unwrap();
        let issued_file = dir.join("alice.cert");
        std::fs::write(&issued_file, issued.data().encode()).unwrap();
        let mut g = grant(&root, &["rib"]);
        g.certs = vec![issued_file];
        let mut a = Authorizer::new(&[g], 60_000).unwrap().with_clock(clock);
        let k = Key {
            pair: alice,
            cert: issued,
            file: PathBuf::new(),
        };
        assert_eq!(a.judge(&signed(&k, "rib", NOW_MS, 1)), Ok(()));
    }

    /// Commands captured from python-ndn (old and v0.3 form), NDNts, nfdc and ndn-cxx.
    fn captured(file: &str) -> Interest {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../forwarder/tests/mgmt_vectors"
        );
        let text = std::fs::read_to_string(format!("{dir}/{file}.to-forwarder.hex")).unwrap();
        let mut wire = hex::decode(text.trim()).unwrap();
        // The capture may hold several packets; the first is the command.
        let n = amicn_tlv::split_first_tlv(&wire).unwrap().unwrap();
        wire.truncate(n);
        match amicn_tlv::decode_packet(wire.into()).unwrap().packet {
            amicn_tlv::NetPacket::Interest(i) => i,
            other => panic!("{file}: not an Interest: {other:?}"),
        }
    }

    #[test]
    fn commands_of_other_stacks_need_a_granted_key_or_any() {
        let dir = scratch("captured");
        let op = key(&dir, "/op");
        let all: Vec<&str> = MODULES.to_vec();
        let mut strict = Authorizer::new(&[grant(&op, &all)], 60_000).unwrap();
        let any = Grant {
            certfile: None,
            modules: all.iter().map(|m| m.to_string()).collect(),
            certs: Vec::new(),
        };
        let mut open = Authorizer::new(&[any], 60_000).unwrap();
        for (file, why) in [
            ("python-ndn-v1", Refusal::Unsigned),
            ("python-ndn-v2", Refusal::Unsigned),
            ("nfdc-route-add", Refusal::Unsigned),
            ("ndn-cxx-registerPrefix", Refusal::Unsigned),
            ("ndnts", Refusal::Unsigned),
        ] {
            let i = captured(file);
            assert_eq!(strict.judge(&i), Err(why), "{file}");
            assert_eq!(open.judge(&i), Ok(()), "{file}");
        }
    }

    #[test]
    fn bad_entries_name_the_field() {
        let e = parse_flag("x.cert=rib,routes").unwrap_err().to_string();
        assert!(e.contains("--authorize") && e.contains("\"routes\""), "{e}");
        assert!(e.contains("strategy-choice"), "{e}");
        let e = parse_flag("rib").unwrap_err().to_string();
        assert!(e.contains("CERTFILE=MODULE"), "{e}");
        let g = parse_flag("any=rib,faces").unwrap();
        assert_eq!(g.certfile, None);
        assert_eq!(g.modules.len(), 2);
        let entries: Vec<AuthorizationSection> = vec![AuthorizationSection {
            certfile: OneOrMany::One("a.cert".into()),
            privileges: vec![],
            certs: vec![],
        }];
        let e = grants_from_file(&entries, Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("authorization[0].privileges"), "{e}");
        let missing = Authorizer::new(&[parse_flag("/nonexistent.cert=rib").unwrap()], 1)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("authorization certfile /nonexistent.cert"),
            "{missing}"
        );
    }
}
