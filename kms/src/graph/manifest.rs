//! The rekey manifest: one signed object per rekey epoch listing every key that changed.
//!
//! Published as `/<u>/ami/KMS/rekey/<epoch>`. It tells each member which keys on its path changed
//! (fresh, ratcheted or removed), the key commitments, where joiners were placed and who departed.
//! From it a member derives the exact wrap names it has to fetch; the wraps themselves are not
//! signed one by one (one signature per rekey, not one per wrap).
//!
//! Binary layout (big-endian integers, strings as u16 length + UTF-8):
//! `"AKM1" epoch:u32 prefix departs:[u32] joins:[meter:u32 section:u32 pos:u32]
//!  sections:[label degree:u8 height:u8 changes:[height:u8 pos:u32 Change]]
//!  projects:[name Change] root:(u8 flag, Change)` with `Change = kind:u8 from:u32 commit:[16]`
//! and every list prefixed by a u32 count.

use super::error::{GraphError, GraphResult};
use super::wrap::COMMIT_LEN;

const MAGIC: &[u8; 4] = b"AKM1";

/// How a key changed in this epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Replaced by a fresh random key (someone lost access, or a periodic refresh).
    Fresh,
    /// Replaced by the one-way ratchet of its previous epoch (only joins below it).
    Ratchet,
    /// Nobody is left under it; the key is gone.
    Removed,
}

/// One changed key: kind, the epoch it replaces, and the commitment to the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Kind of change.
    pub kind: ChangeKind,
    /// Epoch of the key it replaces (0 if the key did not exist).
    pub from: u32,
    /// Commitment to the new key under its new name (zero for `Removed`).
    pub commit: [u8; COMMIT_LEN],
}

/// Changes inside one subgroup tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Subgroup label (its DR projects joined with `+`).
    pub label: String,
    /// Tree degree.
    pub degree: u8,
    /// Tree height after this epoch.
    pub height: u8,
    /// Changed interior nodes as `(height, pos, change)`, ordered bottom-up.
    pub changes: Vec<(u8, u32, Change)>,
}

/// A joiner (or a meter moving to another subgroup) and where it was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Meter id.
    pub meter: u32,
    /// Index into [`Manifest::sections`].
    pub section: u32,
    /// Leaf position in that subgroup's tree.
    pub pos: u32,
}

/// The content of one rekey manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Epoch of this rekey; every new key is named with it.
    pub epoch: u32,
    /// Utility prefix (`/<u>`).
    pub prefix: String,
    /// Meters that left the utility or were revoked.
    pub departs: Vec<u32>,
    /// Joiners and movers.
    pub joins: Vec<Placement>,
    /// Per-subgroup tree changes.
    pub sections: Vec<Section>,
    /// DR project key changes.
    pub projects: Vec<(String, Change)>,
    /// Broadcast key change.
    pub root: Option<Change>,
}

/// Signs manifest bytes on behalf of the KMS (e.g. with its Ed25519 key).
pub trait ManifestSigner {
    /// Returns the signature over `bytes`.
    fn sign(&self, bytes: &[u8]) -> Vec<u8>;
}

impl<F: Fn(&[u8]) -> Vec<u8>> ManifestSigner for F {
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self(bytes)
    }
}

/// Verifies a manifest signature on the member side.
pub trait ManifestVerifier {
    /// `Ok(())` if `sig` is the KMS's signature over `bytes`, else a reason.
    fn verify(&self, bytes: &[u8], sig: &[u8]) -> Result<(), String>;
}

impl<F: Fn(&[u8], &[u8]) -> Result<(), String>> ManifestVerifier for F {
    fn verify(&self, bytes: &[u8], sig: &[u8]) -> Result<(), String> {
        self(bytes, sig)
    }
}

/// A plain Ed25519 manifest signer (the identity layer may supply its own certificate-backed one).
pub struct Ed25519Signer(pub ed25519_dalek::SigningKey);

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Signer(<redacted>)")
    }
}

impl ManifestSigner for Ed25519Signer {
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        self.0.sign(bytes).to_bytes().to_vec()
    }
}

/// Verifies manifests against one Ed25519 public key (strict verification).
#[derive(Debug, Clone)]
pub struct Ed25519Verifier(pub ed25519_dalek::VerifyingKey);

impl ManifestVerifier for Ed25519Verifier {
    fn verify(&self, bytes: &[u8], sig: &[u8]) -> Result<(), String> {
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|e| e.to_string())?;
        self.0.verify_strict(bytes, &sig).map_err(|e| e.to_string())
    }
}

/// A manifest as published: its bytes and the signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// Encoded manifest.
    pub bytes: Vec<u8>,
    /// Signature over `bytes`.
    pub signature: Vec<u8>,
}

/// A manifest whose signature has been checked, decoded once: what a member applies. Only
/// [`SignedManifest::verify`] makes one, so an unverified manifest can never be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest {
    manifest: Manifest,
}

impl VerifiedManifest {
    /// The decoded manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its epoch.
    pub fn epoch(&self) -> u32 {
        self.manifest.epoch
    }
}

impl SignedManifest {
    /// Checks the signature with `verifier`, then decodes.
    pub fn verify(&self, verifier: &dyn ManifestVerifier) -> GraphResult<VerifiedManifest> {
        let claimed = Manifest::peek_epoch(&self.bytes);
        verifier
            .verify(&self.bytes, &self.signature)
            .map_err(|reason| GraphError::BadManifestSignature {
                epoch: claimed,
                reason,
            })?;
        Ok(VerifiedManifest {
            manifest: Manifest::decode(&self.bytes)?,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_change(out: &mut Vec<u8>, c: &Change) {
    out.push(match c.kind {
        ChangeKind::Fresh => 1,
        ChangeKind::Ratchet => 2,
        ChangeKind::Removed => 3,
    });
    out.extend_from_slice(&c.from.to_be_bytes());
    out.extend_from_slice(&c.commit);
}

impl Manifest {
    /// Encodes the manifest (the exact bytes that are signed).
    pub fn encode(&self) -> Vec<u8> {
        let changes: usize = self.sections.iter().map(|s| s.changes.len()).sum();
        let mut out =
            Vec::with_capacity(64 + changes * 26 + self.joins.len() * 12 + self.departs.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        put_str(&mut out, &self.prefix);
        out.extend_from_slice(&(self.departs.len() as u32).to_be_bytes());
        for m in &self.departs {
            out.extend_from_slice(&m.to_be_bytes());
        }
        out.extend_from_slice(&(self.joins.len() as u32).to_be_bytes());
        for j in &self.joins {
            out.extend_from_slice(&j.meter.to_be_bytes());
            out.extend_from_slice(&j.section.to_be_bytes());
            out.extend_from_slice(&j.pos.to_be_bytes());
        }
        out.extend_from_slice(&(self.sections.len() as u32).to_be_bytes());
        for s in &self.sections {
            put_str(&mut out, &s.label);
            out.push(s.degree);
            out.push(s.height);
            out.extend_from_slice(&(s.changes.len() as u32).to_be_bytes());
            for (h, p, c) in &s.changes {
                out.push(*h);
                out.extend_from_slice(&p.to_be_bytes());
                put_change(&mut out, c);
            }
        }
        out.extend_from_slice(&(self.projects.len() as u32).to_be_bytes());
        for (name, c) in &self.projects {
            put_str(&mut out, name);
            put_change(&mut out, c);
        }
        match &self.root {
            Some(c) => {
                out.push(1);
                put_change(&mut out, c);
            }
            None => out.push(0),
        }
        out
    }

    /// Decodes manifest bytes, rejecting truncation, unknown kinds and trailing bytes.
    pub fn decode(bytes: &[u8]) -> GraphResult<Manifest> {
        let mut r = Reader { b: bytes, off: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(GraphError::MalformedManifest {
                what: "magic",
                offset: 0,
            });
        }
        let epoch = r.u32("epoch")?;
        let prefix = r.string("prefix")?;
        let n = r.count("departs", 4)?;
        let mut departs = Vec::with_capacity(n);
        for _ in 0..n {
            departs.push(r.u32("departed meter")?);
        }
        let n = r.count("joins", 12)?;
        let mut joins = Vec::with_capacity(n);
        for _ in 0..n {
            joins.push(Placement {
                meter: r.u32("join meter")?,
                section: r.u32("join section")?,
                pos: r.u32("join pos")?,
            });
        }
        let n = r.count("sections", 8)?;
        let mut sections = Vec::with_capacity(n);
        for _ in 0..n {
            let label = r.string("section label")?;
            let at = r.off;
            let degree = r.u8("degree")?;
            if degree < 2 {
                return Err(GraphError::MalformedManifest {
                    what: "degree",
                    offset: at,
                });
            }
            let height = r.u8("height")?;
            let k = r.count("changes", 26)?;
            let mut changes = Vec::with_capacity(k);
            for _ in 0..k {
                let h = r.u8("node height")?;
                let p = r.u32("node pos")?;
                changes.push((h, p, r.change()?));
            }
            sections.push(Section {
                label,
                degree,
                height,
                changes,
            });
        }
        let n = r.count("projects", 23)?;
        let mut projects = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("project name")?;
            projects.push((name, r.change()?));
        }
        let root = match r.u8("root flag")? {
            0 => None,
            1 => Some(r.change()?),
            _ => {
                return Err(GraphError::MalformedManifest {
                    what: "root flag",
                    offset: r.off - 1,
                });
            }
        };
        for j in &joins {
            if j.section as usize >= sections.len() {
                return Err(GraphError::MalformedManifest {
                    what: "join section index",
                    offset: r.off,
                });
            }
        }
        if r.off != bytes.len() {
            return Err(GraphError::MalformedManifest {
                what: "trailing bytes",
                offset: r.off,
            });
        }
        Ok(Manifest {
            epoch,
            prefix,
            departs,
            joins,
            sections,
            projects,
            root,
        })
    }

    /// Reads the epoch field without decoding the rest (used before signature checks to report).
    pub fn peek_epoch(bytes: &[u8]) -> u32 {
        bytes
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// Number of changed keys listed.
    pub fn changed_keys(&self) -> usize {
        self.sections.iter().map(|s| s.changes.len()).sum::<usize>()
            + self.projects.len()
            + usize::from(self.root.is_some())
    }
}

struct Reader<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> GraphResult<&'a [u8]> {
        let end = self.off.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(e) => {
                let s = &self.b[self.off..e];
                self.off = e;
                Ok(s)
            }
            None => Err(GraphError::MalformedManifest {
                what,
                offset: self.off,
            }),
        }
    }
    fn u8(&mut self, what: &'static str) -> GraphResult<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> GraphResult<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A list count, bounded by what the remaining bytes can hold (no huge preallocation).
    fn count(&mut self, what: &'static str, min_item: usize) -> GraphResult<usize> {
        let at = self.off;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.b.len() - self.off {
            return Err(GraphError::MalformedManifest { what, offset: at });
        }
        Ok(n)
    }
    fn string(&mut self, what: &'static str) -> GraphResult<String> {
        let s = self.take(2, what)?;
        let n = usize::from(u16::from_be_bytes([s[0], s[1]]));
        let at = self.off;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| GraphError::MalformedManifest { what, offset: at })
    }
    fn change(&mut self) -> GraphResult<Change> {
        let at = self.off;
        let kind = match self.u8("change kind")? {
            1 => ChangeKind::Fresh,
            2 => ChangeKind::Ratchet,
            3 => ChangeKind::Removed,
            _ => {
                return Err(GraphError::MalformedManifest {
                    what: "change kind",
                    offset: at,
                });
            }
        };
        let from = self.u32("change from-epoch")?;
        let mut commit = [0u8; COMMIT_LEN];
        commit.copy_from_slice(self.take(COMMIT_LEN, "commitment")?);
        Ok(Change { kind, from, commit })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Manifest {
        let c = |kind, from| Change {
            kind,
            from,
            commit: [from as u8; COMMIT_LEN],
        };
        Manifest {
            epoch: 7,
            prefix: "/u".into(),
            departs: vec![3],
            joins: vec![Placement {
                meter: 9,
                section: 0,
                pos: 4,
            }],
            sections: vec![Section {
                label: "p1".into(),
                degree: 2,
                height: 3,
                changes: vec![
                    (1, 2, c(ChangeKind::Fresh, 5)),
                    (2, 1, c(ChangeKind::Ratchet, 6)),
                ],
            }],
            projects: vec![("p1".into(), c(ChangeKind::Fresh, 4))],
            root: Some(c(ChangeKind::Removed, 1)),
        }
    }

    #[test]
    fn round_trip_and_golden_prefix() {
        let m = sample();
        let b = m.encode();
        assert_eq!(&b[..14], b"AKM1\x00\x00\x00\x07\x00\x02/u\x00\x00");
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        assert_eq!(Manifest::peek_epoch(&b), 7);
        assert_eq!(m.changed_keys(), 4);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_rejected() {
        let b = sample().encode();
        for n in 0..b.len() {
            assert!(
                Manifest::decode(&b[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        let mut t = b.clone();
        t.push(0);
        assert!(matches!(
            Manifest::decode(&t),
            Err(GraphError::MalformedManifest {
                what: "trailing bytes",
                ..
            })
        ));
        let mut huge = b.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Manifest::decode(&huge).is_err());
    }

    #[test]
    fn degree_below_two_is_rejected() {
        let mut m = sample();
        m.sections[0].degree = 0;
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(GraphError::MalformedManifest { what: "degree", .. })
        ));
    }

    #[test]
    fn ed25519_signer_and_verifier_agree() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let v = Ed25519Verifier(sk.verifying_key());
        let s = Ed25519Signer(sk);
        let sig = s.sign(b"abc");
        assert!(v.verify(b"abc", &sig).is_ok());
        assert!(v.verify(b"abd", &sig).is_err());
        assert!(v.verify(b"abc", &sig[..63]).is_err());
    }
}
