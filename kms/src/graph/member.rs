//! The meter side of rekeying: a state machine that ingests one signed manifest and the wraps it
//! needs, and ends with exactly the keys the meter is entitled to.
//!
//! Ingestion is all-or-nothing: the state is updated only if the signature, the epoch, every
//! fetched wrap (name, AEAD tag) and every key commitment check out.

use std::collections::BTreeMap;

use super::error::{GraphError, GraphResult};
use super::manifest::{
    Change, ChangeKind, Manifest, ManifestVerifier, SignedManifest, VerifiedManifest,
};
use super::names::{self, KeyRef};
use super::wrap::{self, Wrap};
use crate::key::SymmetricKey;

/// Where the meter sits in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Subgroup label (its DR projects).
    pub label: String,
    /// Tree degree.
    pub degree: u32,
    /// Leaf position.
    pub pos: u32,
}

/// What one ingestion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Wraps fetched and opened.
    pub fetched: u32,
    /// Keys advanced with the join ratchet.
    pub ratcheted: u32,
    /// Keys dropped because the meter is no longer entitled to them.
    pub dropped: u32,
    /// The manifest says this meter departed.
    pub departed: bool,
}

type Held = (u32, SymmetricKey);

/// Keys and position of one meter.
#[derive(Debug)]
pub struct MemberState {
    pub(crate) prefix: String,
    pub(crate) meter: u32,
    pub(crate) user_key: SymmetricKey,
    pub(crate) leaf_epoch: u32,
    pub(crate) place: Option<Place>,
    /// Keys of the path nodes at heights 1..=H (index h − 1).
    pub(crate) path: Vec<Option<Held>>,
    pub(crate) projects: BTreeMap<String, Held>,
    pub(crate) root: Option<Held>,
    pub(crate) epoch: u32,
}

fn dup(h: &Option<Held>) -> Option<Held> {
    h.as_ref().map(|(e, k)| (*e, k.duplicate()))
}

impl MemberState {
    /// A meter that holds only its user key and waits for the manifest placing it.
    pub fn new(prefix: &str, meter: u32, user_key: SymmetricKey) -> Self {
        MemberState {
            prefix: prefix.to_string(),
            meter,
            user_key,
            leaf_epoch: 0,
            place: None,
            path: Vec::new(),
            projects: BTreeMap::new(),
            root: None,
            epoch: 0,
        }
    }

    pub(crate) fn provision(
        &mut self,
        place: Place,
        leaf_epoch: u32,
        path: Vec<Option<Held>>,
        projects: BTreeMap<String, Held>,
        root: Held,
        epoch: u32,
    ) {
        self.place = Some(place);
        self.leaf_epoch = leaf_epoch;
        self.path = path;
        self.projects = projects;
        self.root = Some(root);
        self.epoch = epoch;
    }

    fn duplicate(&self) -> Self {
        MemberState {
            prefix: self.prefix.clone(),
            meter: self.meter,
            user_key: self.user_key.duplicate(),
            leaf_epoch: self.leaf_epoch,
            place: self.place.clone(),
            path: self.path.iter().map(dup).collect(),
            projects: self
                .projects
                .iter()
                .map(|(n, (e, k))| (n.clone(), (*e, k.duplicate())))
                .collect(),
            root: dup(&self.root),
            epoch: self.epoch,
        }
    }

    /// Meter id.
    pub fn meter(&self) -> u32 {
        self.meter
    }

    /// Epoch of the last manifest ingested.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Current position, if the meter is a member.
    pub fn place(&self) -> Option<&Place> {
        self.place.as_ref()
    }

    /// The user key (the meter's tree leaf).
    pub fn user_key(&self) -> &SymmetricKey {
        &self.user_key
    }

    /// Every key held, named with its epoch (user key first, then the path, projects, root).
    pub fn keys(&self) -> Vec<(String, &SymmetricKey)> {
        let mut out = Vec::new();
        let Some(place) = &self.place else {
            return out;
        };
        out.push((
            names::key_name(&self.prefix, KeyRef::Meter(self.meter), self.leaf_epoch),
            &self.user_key,
        ));
        let mut pos = place.pos;
        for (i, held) in self.path.iter().enumerate() {
            pos /= place.degree;
            if let Some((e, k)) = held {
                let r = KeyRef::Node {
                    subgroup: &place.label,
                    height: i as u8 + 1,
                    pos,
                };
                out.push((names::key_name(&self.prefix, r, *e), k));
            }
        }
        for (n, (e, k)) in &self.projects {
            out.push((names::key_name(&self.prefix, KeyRef::Project(n), *e), k));
        }
        if let Some((e, k)) = &self.root {
            out.push((names::key_name(&self.prefix, KeyRef::Root, *e), k));
        }
        out
    }

    /// The current key of DR project `name`, with its epoch.
    pub fn project_key(&self, name: &str) -> Option<(u32, &SymmetricKey)> {
        self.projects.get(name).map(|(e, k)| (*e, k))
    }

    /// The current broadcast key, with its epoch.
    pub fn root_key(&self) -> Option<(u32, &SymmetricKey)> {
        self.root.as_ref().map(|(e, k)| (*e, k))
    }

    /// Ingests one signed manifest, fetching the wraps it needs by name through `fetch`.
    pub fn ingest(
        &mut self,
        signed: &SignedManifest,
        verifier: &dyn ManifestVerifier,
        fetch: &mut dyn FnMut(&str) -> Option<Wrap>,
    ) -> GraphResult<IngestReport> {
        self.ingest_verified(&signed.verify(verifier)?, fetch)
    }

    /// Applies a manifest verified before (see [`SignedManifest::verify`]): a member fetching
    /// wraps one at a time retries this, all-or-nothing, without checking the signature over
    /// the whole manifest again each time.
    pub fn ingest_verified(
        &mut self,
        m: &VerifiedManifest,
        fetch: &mut dyn FnMut(&str) -> Option<Wrap>,
    ) -> GraphResult<IngestReport> {
        let m = m.manifest();
        if m.epoch <= self.epoch {
            return Err(GraphError::StaleEpoch {
                name: names::manifest_name(&self.prefix, m.epoch),
                got: m.epoch,
                have: self.epoch,
            });
        }
        let mut next = self.duplicate();
        let report = next.apply(m, fetch)?;
        *self = next;
        Ok(report)
    }

    fn apply(
        &mut self,
        m: &Manifest,
        fetch: &mut dyn FnMut(&str) -> Option<Wrap>,
    ) -> GraphResult<IngestReport> {
        let mut rep = IngestReport::default();
        self.epoch = m.epoch;
        if m.departs.contains(&self.meter) {
            rep.dropped = self.keys().len() as u32;
            rep.departed = true;
            self.place = None;
            self.path.clear();
            self.projects.clear();
            self.root = None;
            return Ok(rep);
        }
        if let Some(j) = m.joins.iter().find(|j| j.meter == self.meter) {
            let section = &m.sections[j.section as usize];
            let before = self.keys().len() as u32;
            self.place = Some(Place {
                label: section.label.clone(),
                degree: u32::from(section.degree),
                pos: j.pos,
            });
            self.leaf_epoch = m.epoch;
            self.path.clear();
            let mine = names::label_projects(&section.label);
            self.projects.retain(|n, _| mine.contains(&n.as_str()));
            rep.dropped = before
                .saturating_sub(1 + self.projects.len() as u32 + u32::from(self.root.is_some()));
        }
        let Some(place) = self.place.clone() else {
            return Ok(rep);
        };
        let prefix = self.prefix.clone();

        // Tree path, bottom-up.
        let section = m.sections.iter().find(|s| s.label == place.label);
        if let Some(s) = section {
            let h = usize::from(s.height);
            if self.path.len() < h {
                self.path.resize_with(h, || None);
            }
        }
        let height = self.path.len() as u8;
        let mut pos = place.pos;
        for h in 1..=height {
            let child_pos = pos;
            pos /= place.degree;
            let change = section.and_then(|s| {
                s.changes
                    .binary_search_by(|(ch, cp, _)| (*ch, *cp).cmp(&(h, pos)))
                    .ok()
                    .map(|i| &s.changes[i].2)
            });
            let target = KeyRef::Node {
                subgroup: &place.label,
                height: h,
                pos,
            };
            let idx = usize::from(h) - 1;
            match change {
                None => {
                    if self.path[idx].is_none() {
                        return Err(GraphError::KeyNotDelivered {
                            name: names::key_name(&prefix, target, 0),
                        });
                    }
                }
                Some(c) if c.kind == ChangeKind::Removed => self.path[idx] = None,
                Some(c) => {
                    let (by, by_held) = if h == 1 {
                        (
                            KeyRef::Meter(self.meter),
                            Some((self.leaf_epoch, &self.user_key)),
                        )
                    } else {
                        (
                            KeyRef::Node {
                                subgroup: &place.label,
                                height: h - 1,
                                pos: child_pos,
                            },
                            self.path[idx - 1].as_ref().map(|(e, k)| (*e, k)),
                        )
                    };
                    let new = obtain(
                        &prefix,
                        target,
                        m.epoch,
                        c,
                        self.path[idx].as_ref(),
                        by,
                        by_held,
                        fetch,
                        &mut rep,
                    )?;
                    self.path[idx] = Some((m.epoch, new));
                }
            }
        }

        // Group keys over the subgroup key.
        let top = self
            .path
            .last()
            .and_then(|h| h.as_ref())
            .map(|(e, k)| (*e, k.duplicate()));
        let Some((top_epoch, top_key)) = top else {
            return Err(GraphError::KeyNotDelivered {
                name: format!("{prefix}/ami/KMS/tree/{}", place.label),
            });
        };
        let by = KeyRef::Node {
            subgroup: &place.label,
            height,
            pos: 0,
        };
        for p in names::label_projects(&place.label) {
            let change = m.projects.iter().find(|(n, _)| n == p).map(|(_, c)| c);
            let target = KeyRef::Project(p);
            match change {
                None => {
                    if !self.projects.contains_key(p) {
                        return Err(GraphError::KeyNotDelivered {
                            name: names::key_name(&prefix, target, 0),
                        });
                    }
                }
                Some(c) if c.kind == ChangeKind::Removed => {
                    self.projects.remove(p);
                }
                Some(c) => {
                    let held = self.projects.get(p);
                    let new = obtain(
                        &prefix,
                        target,
                        m.epoch,
                        c,
                        held,
                        by,
                        Some((top_epoch, &top_key)),
                        fetch,
                        &mut rep,
                    )?;
                    self.projects.insert(p.to_string(), (m.epoch, new));
                }
            }
        }
        match &m.root {
            None => {
                if self.root.is_none() {
                    return Err(GraphError::KeyNotDelivered {
                        name: names::key_name(&prefix, KeyRef::Root, 0),
                    });
                }
            }
            Some(c) if c.kind == ChangeKind::Removed => self.root = None,
            Some(c) => {
                let new = obtain(
                    &prefix,
                    KeyRef::Root,
                    m.epoch,
                    c,
                    self.root.as_ref(),
                    by,
                    Some((top_epoch, &top_key)),
                    fetch,
                    &mut rep,
                )?;
                self.root = Some((m.epoch, new));
            }
        }
        Ok(rep)
    }
}

/// Gets the new key of `target`: by ratcheting the held key when the manifest says so and the
/// held epoch is the one replaced, otherwise from the wrap under `by`.
#[allow(clippy::too_many_arguments)]
fn obtain(
    prefix: &str,
    target: KeyRef<'_>,
    epoch: u32,
    change: &Change,
    held: Option<&Held>,
    by: KeyRef<'_>,
    by_held: Option<(u32, &SymmetricKey)>,
    fetch: &mut dyn FnMut(&str) -> Option<Wrap>,
    rep: &mut IngestReport,
) -> GraphResult<SymmetricKey> {
    let target_name = names::key_name(prefix, target, epoch);
    if let Some((e, _)) = held
        && *e >= epoch
    {
        return Err(GraphError::StaleEpoch {
            name: target_name,
            got: epoch,
            have: *e,
        });
    }
    let key = match (change.kind, held) {
        (ChangeKind::Ratchet, Some((e, k))) if *e == change.from => {
            rep.ratcheted += 1;
            SymmetricKey::from_bytes(wrap::ratchet(k.as_bytes(), &target_name))
        }
        _ => {
            let Some((by_epoch, by_key)) = by_held else {
                return Err(GraphError::KeyNotDelivered {
                    name: names::key_name(prefix, by, 0),
                });
            };
            let mut name = target_name.clone();
            name.push_str("/ENCRYPTED-BY");
            names::write_key_name(&mut name, prefix, by, by_epoch);
            let w = fetch(&name).ok_or_else(|| GraphError::MissingWrap { name: name.clone() })?;
            rep.fetched += 1;
            wrap::open(&w, &name, by_key.as_bytes())?
        }
    };
    if wrap::commitment(&target_name, key.as_bytes()) != change.commit {
        return Err(GraphError::CommitmentMismatch { name: target_name });
    }
    Ok(key)
}
