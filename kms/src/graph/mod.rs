//! The AMI key graph (VerSAMI/SAMI multi-group structure) and its rekeying.
//!
//! Meters are grouped into *subgroups* by their exact set of DR projects. Each subgroup has an
//! LKH tree of degree d ([`tree::LkhTree`]) whose leaves are the meters' user keys and whose
//! root is the subgroup key. Every DR project key sits above the subgroup keys of the subgroups
//! that subscribe to it, and the broadcast (root) key sits above every subgroup key. A meter
//! therefore holds `H + 1` tree keys, one key per project and the broadcast key.
//!
//! Membership changes are staged and applied once per epoch ([`KeyGraph::commit`]): the union of
//! the affected leaf-to-root paths is marked (Li–Yang–Gouda–Lam batch rekeying), and each marked
//! node is rekeyed exactly once:
//! - a node with a departure below it (or when join ratcheting is off) gets a **fresh** key,
//!   wrapped under the post-update key of each occupied child — `d·H − 1` wraps for one leave in a
//!   full tree;
//! - a node with only joins below it is **ratcheted** (LKH+: `k' = HKDF(k, name‖epoch)`), which
//!   every current member computes itself; only the children containing joiners get a wrap;
//! - a node left without members loses its key.
//!
//! Project and broadcast keys follow the same rule one level up: fresh when someone lost access
//! (or on a periodic refresh), ratcheted when someone only gained access. Each commit yields the
//! wraps ([`wrap::Wrap`]), one manifest ([`manifest::Manifest`]) signed once by a
//! [`manifest::ManifestSigner`], and counters ([`RekeyStats`]). [`member::MemberState`] is the
//! meter side: it ingests a manifest plus the wraps it fetches and ends with exactly its keys.

pub mod error;
pub mod manifest;
pub mod member;
pub mod names;
pub mod oft;
pub mod tree;
pub mod wrap;

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroize;

pub use error::{GraphError, GraphResult};
pub use manifest::{Manifest, ManifestSigner, ManifestVerifier, SignedManifest, VerifiedManifest};
pub use member::MemberState;
pub use names::KeyRef;
pub use tree::LkhTree;
pub use wrap::{WRAP_LEN, Wrap, WrapMode};

use crate::key::{KEY_LEN, SymmetricKey};
use manifest::{Change, ChangeKind, Placement, Section};
use wrap::SealBatch;

const LEAVE: u8 = 1;
const JOIN: u8 = 2;
const ABSENT: u32 = u32::MAX;

/// Parameters of a key graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    /// Utility prefix, e.g. `/example-utility`.
    pub prefix: String,
    /// Degree d of every subgroup tree (≥ 2).
    pub degree: u32,
    /// Ratchet keys on joins (LKH+) instead of replacing them with fresh ones.
    pub ratchet_joins: bool,
}

impl GraphConfig {
    /// A configuration with join ratcheting on.
    pub fn new(prefix: impl Into<String>, degree: u32) -> Self {
        GraphConfig {
            prefix: prefix.into(),
            degree,
            ratchet_joins: true,
        }
    }
}

/// Counters of one rekey epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RekeyStats {
    /// Epoch of the rekey.
    pub epoch: u32,
    /// Wraps under a single meter's user key.
    pub unicast_wraps: u64,
    /// Wraps under subgroup-tree keys carrying tree or project keys.
    pub multicast_wraps: u64,
    /// Wraps carrying the broadcast key.
    pub broadcast_wraps: u64,
    /// Wraps of subgroup-tree nodes.
    pub tree_wraps: u64,
    /// Wraps of DR project keys.
    pub project_wraps: u64,
    /// Wraps of the broadcast key.
    pub root_wraps: u64,
    /// Keys replaced by fresh random keys.
    pub fresh_keys: u64,
    /// Keys replaced by the join ratchet.
    pub ratcheted_keys: u64,
    /// Keys deleted because nobody is left below them.
    pub removed_keys: u64,
    /// Wrap payload bytes ([`WRAP_LEN`] per wrap).
    pub wrap_payload_bytes: u64,
    /// Bytes of the wraps' names (URI form).
    pub wrap_name_bytes: u64,
    /// Bytes of the encoded manifest (without signature).
    pub manifest_bytes: u64,
    /// Bytes of the manifest signature.
    pub signature_bytes: u64,
}

impl RekeyStats {
    /// All wraps of the epoch.
    pub fn wraps(&self) -> u64 {
        self.unicast_wraps + self.multicast_wraps + self.broadcast_wraps
    }

    /// Everything published: wrap payloads, wrap names, manifest and signature.
    pub fn bytes(&self) -> u64 {
        self.wrap_payload_bytes + self.wrap_name_bytes + self.manifest_bytes + self.signature_bytes
    }

    fn count(&mut self, mode: WrapMode, name_len: usize, class: WrapClass) {
        match mode {
            WrapMode::Unicast => self.unicast_wraps += 1,
            WrapMode::Multicast => self.multicast_wraps += 1,
            WrapMode::Broadcast => self.broadcast_wraps += 1,
        }
        match class {
            WrapClass::Tree => self.tree_wraps += 1,
            WrapClass::Project => self.project_wraps += 1,
            WrapClass::Root => self.root_wraps += 1,
        }
        self.wrap_payload_bytes += WRAP_LEN as u64;
        self.wrap_name_bytes += name_len as u64;
    }
}

#[derive(Clone, Copy)]
enum WrapClass {
    Tree,
    Project,
    Root,
}

/// Everything one rekey epoch publishes.
#[derive(Debug, Clone)]
pub struct Rekey {
    /// The manifest content.
    pub manifest: Manifest,
    /// The encoded manifest and its signature.
    pub signed: SignedManifest,
    /// The wrap objects.
    pub wraps: Vec<Wrap>,
    /// Counters.
    pub stats: RekeyStats,
}

pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) key: [u8; KEY_LEN],
    pub(crate) epoch: u32,
    pub(crate) subgroups: Vec<u32>,
}

pub(crate) struct Subgroup {
    pub(crate) label: String,
    pub(crate) projects: Vec<u16>,
    pub(crate) tree: LkhTree,
}

/// Where a meter sits: subgroup index and leaf position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) sg: u32,
    pub(crate) pos: u32,
}

const NO_SLOT: Slot = Slot {
    sg: ABSENT,
    pos: ABSENT,
};

/// Estimated bytes per entry of the member table: B-tree nodes run one half to two thirds full,
/// so about twice the id and slot they store.
const MEMBER_ENTRY_BYTES: usize = 2 * (std::mem::size_of::<u32>() + std::mem::size_of::<Slot>());

#[derive(Default)]
struct Pending {
    /// Slot of each touched meter at the start of the epoch.
    touched: HashMap<u32, Slot>,
    /// Meters placed in a tree this epoch (joiners and movers).
    placed: HashSet<u32>,
    /// Leaf marks per subgroup: `(pos, LEAVE|JOIN)`.
    marks: HashMap<u32, Vec<(u32, u8)>>,
    refresh_projects: bool,
    refresh_root: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.touched.is_empty() && !self.refresh_projects && !self.refresh_root
    }
}

/// The KMS side of the key graph.
pub struct KeyGraph {
    pub(crate) cfg: GraphConfig,
    pub(crate) epoch: u32,
    rng: StdRng,
    pub(crate) projects: Vec<Project>,
    pub(crate) project_index: HashMap<String, u16>,
    pub(crate) root_key: [u8; KEY_LEN],
    pub(crate) root_epoch: u32,
    pub(crate) subgroups: Vec<Subgroup>,
    pub(crate) subgroup_index: HashMap<Vec<u16>, u32>,
    /// Slot of every current member by meter id. Sparse: a meter id is any `u32` but
    /// [`u32::MAX`], so memory follows the number of members, never the largest id.
    pub(crate) members: BTreeMap<u32, Slot>,
    pub(crate) revoked: HashSet<u32>,
    pending: Pending,
}

impl std::fmt::Debug for KeyGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGraph")
            .field("cfg", &self.cfg)
            .field("epoch", &self.epoch)
            .field("projects", &self.projects.len())
            .field("subgroups", &self.subgroups.len())
            .finish_non_exhaustive()
    }
}

impl Drop for KeyGraph {
    fn drop(&mut self) {
        self.root_key.zeroize();
        for p in &mut self.projects {
            p.key.zeroize();
        }
    }
}

impl KeyGraph {
    /// A new, empty graph whose keys come from a CSPRNG seeded by the operating system.
    pub fn new(cfg: GraphConfig) -> GraphResult<Self> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let g = Self::build(cfg, StdRng::from_seed(seed));
        seed.zeroize();
        g
    }

    /// A graph with a deterministic key stream (tests and reproducible cost runs only).
    pub fn with_seed(cfg: GraphConfig, seed: u64) -> GraphResult<Self> {
        Self::build(cfg, StdRng::seed_from_u64(seed))
    }

    fn build(cfg: GraphConfig, mut rng: StdRng) -> GraphResult<Self> {
        if !(2..=255).contains(&cfg.degree) {
            return Err(GraphError::BadParameter(format!(
                "degree {} must be in 2..=255",
                cfg.degree
            )));
        }
        if !cfg.prefix.starts_with('/') || cfg.prefix.ends_with('/') || cfg.prefix.len() > 200 {
            return Err(GraphError::BadParameter(format!(
                "prefix {:?} must look like /name",
                cfg.prefix
            )));
        }
        let mut root_key = [0u8; KEY_LEN];
        rng.fill_bytes(&mut root_key);
        Ok(KeyGraph {
            cfg,
            epoch: 1,
            rng,
            projects: Vec::new(),
            project_index: HashMap::new(),
            root_key,
            root_epoch: 1,
            subgroups: Vec::new(),
            subgroup_index: HashMap::new(),
            members: BTreeMap::new(),
            revoked: HashSet::new(),
            pending: Pending::default(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        cfg: GraphConfig,
        epoch: u32,
        projects: Vec<Project>,
        root_key: [u8; KEY_LEN],
        root_epoch: u32,
        subgroups: Vec<Subgroup>,
        members: BTreeMap<u32, Slot>,
        revoked: HashSet<u32>,
    ) -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let project_index = projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect();
        let subgroup_index = subgroups
            .iter()
            .enumerate()
            .map(|(i, s)| (s.projects.clone(), i as u32))
            .collect();
        let g = KeyGraph {
            cfg,
            epoch,
            rng: StdRng::from_seed(seed),
            projects,
            project_index,
            root_key,
            root_epoch,
            subgroups,
            subgroup_index,
            members,
            revoked,
            pending: Pending::default(),
        };
        seed.zeroize();
        g
    }

    /// Replaces the graph's key generator with one seeded from `seed`. From here on the keys and
    /// nonces of staging and committing are a function of the seed and the operations, so a
    /// journal of `(seed, operations)` per epoch replays an epoch exactly. Draw the seed fresh
    /// from the OS for every epoch: a stored seed reveals only the epoch it was used for.
    pub fn reseed(&mut self, seed: [u8; 32]) {
        self.rng = StdRng::from_seed(seed);
    }

    /// Whether membership changes or refreshes are staged and not yet committed.
    pub fn has_staged(&self) -> bool {
        !self.pending.is_empty() || !self.pending.marks.is_empty()
    }

    /// Configuration.
    pub fn config(&self) -> &GraphConfig {
        &self.cfg
    }

    /// Epoch of the last committed rekey.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Registers a DR project with a fresh key.
    pub fn add_project(&mut self, name: &str) -> GraphResult<()> {
        names::valid_project_name(name).map_err(|reason| GraphError::BadProjectName {
            name: name.into(),
            reason,
        })?;
        if self.project_index.contains_key(name) {
            return Ok(());
        }
        if self.projects.len() >= usize::from(u16::MAX) {
            return Err(GraphError::BadParameter("too many DR projects".into()));
        }
        let mut key = [0u8; KEY_LEN];
        self.rng.fill_bytes(&mut key);
        self.project_index
            .insert(name.to_string(), self.projects.len() as u16);
        self.projects.push(Project {
            name: name.to_string(),
            key,
            epoch: self.epoch,
            subgroups: Vec::new(),
        });
        Ok(())
    }

    fn resolve(&self, projects: &[&str]) -> GraphResult<Vec<u16>> {
        let mut v = Vec::with_capacity(projects.len());
        for p in projects {
            v.push(
                *self
                    .project_index
                    .get(*p)
                    .ok_or_else(|| GraphError::UnknownProject {
                        name: (*p).to_string(),
                    })?,
            );
        }
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    fn subgroup_for(&mut self, set: Vec<u16>, capacity: u64) -> u32 {
        if let Some(&i) = self.subgroup_index.get(&set) {
            return i;
        }
        let idx = self.subgroups.len() as u32;
        let mut names: Vec<&str> = set
            .iter()
            .map(|&p| self.projects[usize::from(p)].name.as_str())
            .collect();
        names.sort_unstable();
        let label = names::subgroup_label(&names);
        for &p in &set {
            self.projects[usize::from(p)].subgroups.push(idx);
        }
        self.subgroups.push(Subgroup {
            label,
            projects: set.clone(),
            tree: LkhTree::with_capacity(self.cfg.degree, capacity),
        });
        self.subgroup_index.insert(set, idx);
        idx
    }

    fn slot(&self, meter: u32) -> Slot {
        self.members.get(&meter).copied().unwrap_or(NO_SLOT)
    }

    fn set_slot(&mut self, meter: u32, slot: Slot) {
        if slot.sg == ABSENT {
            self.members.remove(&meter);
        } else {
            self.members.insert(meter, slot);
        }
    }

    /// Whether `meter` is currently a member (including changes staged in this epoch).
    pub fn is_member(&self, meter: u32) -> bool {
        self.slot(meter).sg != ABSENT
    }

    /// Enrols many meters with the same project set at once, as initial provisioning: user keys
    /// and all tree keys are drawn at random at the current epoch and no rekey objects are made
    /// (the meters receive their keys in their enrolment exchange). Used to build large graphs.
    pub fn bulk_enroll(&mut self, meters: &[u32], projects: &[&str]) -> GraphResult<()> {
        if !self.pending.is_empty() {
            return Err(GraphError::BadParameter(
                "bulk enrolment needs an empty epoch; commit first".into(),
            ));
        }
        let set = self.resolve(projects)?;
        for &m in meters {
            if m == ABSENT {
                return Err(GraphError::BadParameter(format!(
                    "meter id {m} is reserved"
                )));
            }
            if self.is_member(m) {
                return Err(GraphError::AlreadyMember { meter: m });
            }
            if self.revoked.contains(&m) {
                return Err(GraphError::Revoked { meter: m });
            }
        }
        let sg = self.subgroup_for(set, meters.len() as u64);
        let epoch = self.epoch;
        let mut placed = Vec::with_capacity(meters.len());
        for &m in meters {
            let s = &mut self.subgroups[sg as usize];
            let pos = s.tree.place(m).ok_or_else(|| GraphError::TreeFull {
                label: s.label.clone(),
            })?;
            placed.push((m, pos));
        }
        for &(m, pos) in &placed {
            self.set_slot(m, Slot { sg, pos });
        }
        // Every occupied node gets a fresh key at the current epoch (one RNG pass per level).
        let rng = &mut self.rng;
        let tree = &mut self.subgroups[sg as usize].tree;
        for h in 0..tree.levels.len() {
            let level = &mut tree.levels[h];
            for i in 0..level.len() {
                let occupied = if h == 0 {
                    level.nodes[i].occ != tree::VACANT
                } else {
                    level.nodes[i].occ > 0
                };
                if occupied && level.nodes[i].epoch == 0 {
                    rng.fill_bytes(&mut level.nodes[i].key);
                    level.nodes[i].epoch = epoch;
                }
            }
        }
        Ok(())
    }

    /// [`KeyGraph::bulk_enroll`] with each meter's user (leaf) key given by `user_key` instead of
    /// drawn: for schemes whose meter and server both derive the leaf key (identity-based
    /// agreement), so enrolment transports no key.
    pub fn bulk_enroll_keyed(
        &mut self,
        meters: &[u32],
        projects: &[&str],
        mut user_key: impl FnMut(u32) -> SymmetricKey,
    ) -> GraphResult<()> {
        self.bulk_enroll(meters, projects)?;
        for &m in meters {
            let slot = self.slot(m);
            let k = user_key(m);
            let node =
                &mut self.subgroups[slot.sg as usize].tree.levels[0].nodes[slot.pos as usize];
            node.key = *k.as_bytes();
        }
        Ok(())
    }

    /// Stages a join of `meter` to the DR projects `projects` with its established user key.
    pub fn stage_join(
        &mut self,
        meter: u32,
        projects: &[&str],
        user_key: SymmetricKey,
    ) -> GraphResult<()> {
        if meter == ABSENT {
            return Err(GraphError::BadParameter(format!(
                "meter id {meter} is reserved"
            )));
        }
        if self.revoked.contains(&meter) {
            return Err(GraphError::Revoked { meter });
        }
        if self.is_member(meter) {
            return Err(GraphError::AlreadyMember { meter });
        }
        if self.pending.touched.contains_key(&meter) {
            return Err(GraphError::AlreadyStaged { meter });
        }
        let set = self.resolve(projects)?;
        self.place(meter, set, user_key.as_bytes())?;
        self.pending.touched.insert(meter, NO_SLOT);
        Ok(())
    }

    fn place(&mut self, meter: u32, set: Vec<u16>, user_key: &[u8; KEY_LEN]) -> GraphResult<()> {
        let sg = self.subgroup_for(set, 1);
        let next = self.epoch + 1;
        let s = &mut self.subgroups[sg as usize];
        let pos = s.tree.place(meter).ok_or_else(|| GraphError::TreeFull {
            label: s.label.clone(),
        })?;
        s.tree.set_key(0, pos, user_key, next);
        self.pending.marks.entry(sg).or_default().push((pos, JOIN));
        self.pending.placed.insert(meter);
        self.set_slot(meter, Slot { sg, pos });
        Ok(())
    }

    fn unplace(&mut self, slot: Slot) {
        self.subgroups[slot.sg as usize].tree.vacate(slot.pos);
        self.pending
            .marks
            .entry(slot.sg)
            .or_default()
            .push((slot.pos, LEAVE));
    }

    fn check_member_unstaged(&self, meter: u32) -> GraphResult<Slot> {
        let slot = self.slot(meter);
        if slot.sg == ABSENT {
            return Err(GraphError::NotMember { meter });
        }
        if self.pending.touched.contains_key(&meter) {
            return Err(GraphError::AlreadyStaged { meter });
        }
        Ok(slot)
    }

    /// Stages the departure of `meter` from the utility (every group it is in).
    pub fn stage_leave(&mut self, meter: u32) -> GraphResult<()> {
        let slot = self.check_member_unstaged(meter)?;
        self.unplace(slot);
        self.set_slot(meter, NO_SLOT);
        self.pending.touched.insert(meter, slot);
        Ok(())
    }

    /// Stages a change of `meter`'s DR projects: it moves to the subgroup of the new set.
    pub fn stage_move(&mut self, meter: u32, projects: &[&str]) -> GraphResult<()> {
        let slot = self.check_member_unstaged(meter)?;
        let set = self.resolve(projects)?;
        if self.subgroups[slot.sg as usize].projects == set {
            return Err(GraphError::SameProjects { meter });
        }
        let user_key = *self.subgroups[slot.sg as usize].tree.key(0, slot.pos).0;
        self.unplace(slot);
        let r = self.place(meter, set, &user_key);
        let mut k = user_key;
        k.zeroize();
        r?;
        self.pending.touched.insert(meter, slot);
        Ok(())
    }

    /// Stages a periodic refresh of every project key and/or the broadcast key.
    pub fn stage_refresh(&mut self, projects: bool, root: bool) {
        self.pending.refresh_projects |= projects;
        self.pending.refresh_root |= root;
    }

    /// Revokes `meter` now: it leaves every group in a rekey committed immediately (together
    /// with whatever else is staged) and can never rejoin.
    pub fn revoke(&mut self, meter: u32, signer: &dyn ManifestSigner) -> GraphResult<Rekey> {
        if self.is_member(meter) {
            self.stage_leave(meter)?;
        } else if !self.pending.touched.contains_key(&meter) {
            // Neither a member nor leaving in this epoch.
            return Err(GraphError::NotMember { meter });
        }
        self.revoked.insert(meter);
        Ok(self.commit(signer))
    }

    /// Convenience: stage one join and commit.
    pub fn join(
        &mut self,
        meter: u32,
        projects: &[&str],
        user_key: SymmetricKey,
        signer: &dyn ManifestSigner,
    ) -> GraphResult<Rekey> {
        self.stage_join(meter, projects, user_key)?;
        Ok(self.commit(signer))
    }

    /// Convenience: stage one leave and commit.
    pub fn leave(&mut self, meter: u32, signer: &dyn ManifestSigner) -> GraphResult<Rekey> {
        self.stage_leave(meter)?;
        Ok(self.commit(signer))
    }

    /// Convenience: stage one move and commit.
    pub fn move_to(
        &mut self,
        meter: u32,
        projects: &[&str],
        signer: &dyn ManifestSigner,
    ) -> GraphResult<Rekey> {
        self.stage_move(meter, projects)?;
        Ok(self.commit(signer))
    }

    /// Applies every staged change as one rekey epoch.
    pub fn commit(&mut self, signer: &dyn ManifestSigner) -> Rekey {
        let pending = std::mem::take(&mut self.pending);
        let epoch = self.epoch + 1;
        let prefix = self.cfg.prefix.clone();
        let ratchet = self.cfg.ratchet_joins;
        let mut stats = RekeyStats {
            epoch,
            ..RekeyStats::default()
        };
        let mut wraps = SealBatch::new();
        let mut manifest = Manifest {
            epoch,
            prefix: prefix.clone(),
            ..Manifest::default()
        };

        // 1. Subgroup trees, in subgroup order so output is deterministic.
        let mut sgs: Vec<(u32, Vec<(u32, u8)>)> = pending.marks.into_iter().collect();
        sgs.sort_unstable_by_key(|(sg, _)| *sg);
        let mut section_of: HashMap<u32, u32> = HashMap::with_capacity(sgs.len());
        for (sg, marks) in sgs {
            let s = &mut self.subgroups[sg as usize];
            let section = rekey_tree(
                &mut self.rng,
                &prefix,
                &s.label,
                &mut s.tree,
                marks,
                ratchet,
                epoch,
                &mut wraps,
                &mut stats,
            );
            section_of.insert(sg, manifest.sections.len() as u32);
            manifest.sections.push(section);
        }

        // 2. Who lost or gained which group key.
        let mut lost = vec![false; self.projects.len()];
        let mut gained: Vec<Vec<u32>> = vec![Vec::new(); self.projects.len()];
        let mut root_lost = false;
        let mut root_gained: Vec<u32> = Vec::new();
        let mut touched: Vec<(u32, Slot)> = pending.touched.into_iter().collect();
        touched.sort_unstable_by_key(|(m, _)| *m);
        let empty: Vec<u16> = Vec::new();
        for &(m, start) in &touched {
            let now = self.slot(m);
            let before = if start.sg == ABSENT {
                &empty
            } else {
                &self.subgroups[start.sg as usize].projects
            };
            let after = if now.sg == ABSENT {
                &empty
            } else {
                &self.subgroups[now.sg as usize].projects
            };
            for p in before {
                if !after.contains(p) {
                    lost[usize::from(*p)] = true;
                }
            }
            for p in after {
                if !before.contains(p) {
                    gained[usize::from(*p)].push(now.sg);
                }
            }
            match (start.sg == ABSENT, now.sg == ABSENT) {
                (true, false) => root_gained.push(now.sg),
                (false, true) => {
                    root_lost = true;
                    manifest.departs.push(m);
                }
                _ => {}
            }
            if now.sg != ABSENT
                && pending.placed.contains(&m)
                && let Some(&section) = section_of.get(&now.sg)
            {
                manifest.joins.push(Placement {
                    meter: m,
                    section,
                    pos: now.pos,
                });
            }
        }

        // 3. Project keys, then the broadcast key, over the post-update subgroup keys.
        for p in 0..self.projects.len() {
            let mut g = std::mem::take(&mut gained[p]);
            g.sort_unstable();
            g.dedup();
            let must_fresh = lost[p] || pending.refresh_projects || (!ratchet && !g.is_empty());
            if !must_fresh && g.is_empty() {
                continue;
            }
            let project = &mut self.projects[p];
            let change = rekey_group(
                &mut self.rng,
                &prefix,
                &self.subgroups,
                KeyRef::Project(&project.name),
                &mut project.key,
                &mut project.epoch,
                &project.subgroups,
                &g,
                must_fresh,
                epoch,
                WrapMode::Multicast,
                WrapClass::Project,
                &mut wraps,
                &mut stats,
            );
            manifest.projects.push((project.name.clone(), change));
        }
        root_gained.sort_unstable();
        root_gained.dedup();
        let must_fresh = root_lost || pending.refresh_root || (!ratchet && !root_gained.is_empty());
        if must_fresh || !root_gained.is_empty() {
            let all: Vec<u32> = (0..self.subgroups.len() as u32).collect();
            let change = rekey_group(
                &mut self.rng,
                &prefix,
                &self.subgroups,
                KeyRef::Root,
                &mut self.root_key,
                &mut self.root_epoch,
                &all,
                &root_gained,
                must_fresh,
                epoch,
                WrapMode::Broadcast,
                WrapClass::Root,
                &mut wraps,
                &mut stats,
            );
            manifest.root = Some(change);
        }

        let bytes = manifest.encode();
        let signature = signer.sign(&bytes);
        stats.manifest_bytes = bytes.len() as u64;
        stats.signature_bytes = signature.len() as u64;
        self.epoch = epoch;
        Rekey {
            manifest,
            signed: SignedManifest { bytes, signature },
            wraps: wraps.finish(),
            stats,
        }
    }

    /// Keys the KMS stores: occupied tree nodes (user keys included), project keys and the
    /// broadcast key.
    pub fn server_keys(&self) -> u64 {
        let tree: u64 = self.subgroups.iter().map(|s| s.tree.occupied_nodes).sum();
        let projects = self.projects.iter().filter(|p| p.epoch != 0).count() as u64;
        tree + projects + 1
    }

    /// The current broadcast (root) key and its name.
    pub fn broadcast_key(&self) -> (String, SymmetricKey) {
        (
            names::key_name(&self.cfg.prefix, KeyRef::Root, self.root_epoch),
            SymmetricKey::from_bytes(self.root_key),
        )
    }

    /// Keys `meter` is entitled to hold (tree path incl. its user key, projects, broadcast).
    pub fn member_key_count(&self, meter: u32) -> Option<u64> {
        let slot = self.slot(meter);
        if slot.sg == ABSENT {
            return None;
        }
        let s = &self.subgroups[slot.sg as usize];
        Some(u64::from(s.tree.height()) + 1 + s.projects.len() as u64 + 1)
    }

    /// Number of members of the subgroup `meter` is in.
    pub fn subgroup_size(&self, meter: u32) -> Option<u32> {
        let slot = self.slot(meter);
        (slot.sg != ABSENT).then(|| self.subgroups[slot.sg as usize].tree.members())
    }

    /// Subgroups as `(label, members, tree height)`.
    pub fn subgroups(&self) -> Vec<(String, u32, u8)> {
        self.subgroups
            .iter()
            .map(|s| (s.label.clone(), s.tree.members(), s.tree.height()))
            .collect()
    }

    /// Members of each DR project.
    pub fn project_sizes(&self) -> Vec<(String, u64)> {
        self.projects
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.subgroups
                        .iter()
                        .map(|&s| u64::from(self.subgroups[s as usize].tree.members()))
                        .sum(),
                )
            })
            .collect()
    }

    /// Current members' ids (ascending).
    pub fn member_ids(&self) -> Vec<u32> {
        self.members.keys().copied().collect()
    }

    /// Bytes held by the server's arrays (trees, member table, group keys).
    pub fn heap_bytes(&self) -> usize {
        let trees: usize = self.subgroups.iter().map(|s| s.tree.heap_bytes()).sum();
        trees
            + self.members.len() * MEMBER_ENTRY_BYTES
            + self.projects.len() * (KEY_LEN + 64)
            + KEY_LEN
    }

    /// The keys `meter` is entitled to right now, by name (with epoch). For provisioning and tests.
    pub fn entitled_keys(&self, meter: u32) -> Vec<(String, SymmetricKey)> {
        let slot = self.slot(meter);
        let mut out = Vec::new();
        if slot.sg == ABSENT {
            return out;
        }
        let prefix = &self.cfg.prefix;
        let s = &self.subgroups[slot.sg as usize];
        let (k, e) = s.tree.key(0, slot.pos);
        out.push((
            names::key_name(prefix, KeyRef::Meter(meter), e),
            SymmetricKey::from_bytes(*k),
        ));
        let mut pos = slot.pos;
        for h in 1..=s.tree.height() {
            pos /= s.tree.degree();
            let (k, e) = s.tree.key(h, pos);
            out.push((
                names::key_name(
                    prefix,
                    KeyRef::Node {
                        subgroup: &s.label,
                        height: h,
                        pos,
                    },
                    e,
                ),
                SymmetricKey::from_bytes(*k),
            ));
        }
        for &p in &s.projects {
            let p = &self.projects[usize::from(p)];
            out.push((
                names::key_name(prefix, KeyRef::Project(&p.name), p.epoch),
                SymmetricKey::from_bytes(p.key),
            ));
        }
        out.push((
            names::key_name(prefix, KeyRef::Root, self.root_epoch),
            SymmetricKey::from_bytes(self.root_key),
        ));
        out
    }

    /// The member-side state of an already enrolled meter, as handed over at enrolment.
    pub fn export_member(&self, meter: u32) -> GraphResult<MemberState> {
        let slot = self.slot(meter);
        if slot.sg == ABSENT {
            return Err(GraphError::NotMember { meter });
        }
        let s = &self.subgroups[slot.sg as usize];
        let (uk, ue) = s.tree.key(0, slot.pos);
        let mut st = MemberState::new(&self.cfg.prefix, meter, SymmetricKey::from_bytes(*uk));
        let mut path = Vec::new();
        let mut pos = slot.pos;
        for h in 1..=s.tree.height() {
            pos /= s.tree.degree();
            let (k, e) = s.tree.key(h, pos);
            path.push(Some((e, SymmetricKey::from_bytes(*k))));
        }
        let projects = s
            .projects
            .iter()
            .map(|&p| {
                let p = &self.projects[usize::from(p)];
                (p.name.clone(), (p.epoch, SymmetricKey::from_bytes(p.key)))
            })
            .collect();
        st.provision(
            member::Place {
                label: s.label.clone(),
                degree: s.tree.degree(),
                pos: slot.pos,
            },
            ue,
            path,
            projects,
            (self.root_epoch, SymmetricKey::from_bytes(self.root_key)),
            self.epoch,
        );
        Ok(st)
    }
}

#[allow(clippy::too_many_arguments)]
fn rekey_tree(
    rng: &mut StdRng,
    prefix: &str,
    label: &str,
    tree: &mut LkhTree,
    mut marks: Vec<(u32, u8)>,
    ratchet: bool,
    epoch: u32,
    wraps: &mut SealBatch,
    stats: &mut RekeyStats,
) -> Section {
    let d = tree.degree();
    marks.sort_unstable_by_key(|&(p, _)| p);
    let mut cur = merge_marks(marks);
    let mut changes = Vec::new();
    let mut next: Vec<(u32, u8)> = Vec::with_capacity(cur.len());
    let mut target_name = String::with_capacity(96);
    for h in 1..=tree.height() {
        next.clear();
        let mut i = 0;
        while i < cur.len() {
            let parent = cur[i].0 / d;
            let mut j = i;
            let mut flags = 0u8;
            while j < cur.len() && cur[j].0 / d == parent {
                flags |= cur[j].1;
                j += 1;
            }
            let group = &cur[i..j];
            let (_, old_epoch) = tree.key(h, parent);
            let node = KeyRef::Node {
                subgroup: label,
                height: h,
                pos: parent,
            };
            if !tree.occupied(h, parent) {
                if old_epoch != 0 {
                    tree.clear_key(h, parent);
                    stats.removed_keys += 1;
                    changes.push((
                        h,
                        parent,
                        Change {
                            kind: ChangeKind::Removed,
                            from: old_epoch,
                            commit: [0; wrap::COMMIT_LEN],
                        },
                    ));
                }
            } else {
                target_name.clear();
                names::write_key_name(&mut target_name, prefix, node, epoch);
                let fresh = flags & LEAVE != 0 || !ratchet || old_epoch == 0;
                let mut new_key = [0u8; KEY_LEN];
                if fresh {
                    rng.fill_bytes(&mut new_key);
                    stats.fresh_keys += 1;
                } else {
                    new_key = wrap::ratchet(tree.key(h, parent).0, &target_name);
                    stats.ratcheted_keys += 1;
                }
                let commit = wrap::commitment(&target_name, &new_key);
                tree.set_key(h, parent, &new_key, epoch);
                // Fresh: every occupied child. Ratchet: only children with a joiner below.
                for c in parent * d..parent * d + d {
                    let wanted = tree.occupied(h - 1, c)
                        && (fresh || group.iter().any(|&(gc, f)| gc == c && f & JOIN != 0));
                    if !wanted {
                        continue;
                    }
                    let (ck, ce) = tree.key(h - 1, c);
                    let (by, mode) = if h == 1 {
                        (
                            KeyRef::Meter(tree.owner(c).unwrap_or(tree::VACANT)),
                            WrapMode::Unicast,
                        )
                    } else {
                        (
                            KeyRef::Node {
                                subgroup: label,
                                height: h - 1,
                                pos: c,
                            },
                            WrapMode::Multicast,
                        )
                    };
                    let mut name = String::with_capacity(target_name.len() + 80);
                    name.push_str(&target_name);
                    name.push_str("/ENCRYPTED-BY");
                    names::write_key_name(&mut name, prefix, by, ce);
                    stats.count(mode, name.len(), WrapClass::Tree);
                    wraps.push(rng, ck, name, mode, &new_key);
                }
                new_key.zeroize();
                changes.push((
                    h,
                    parent,
                    Change {
                        kind: if fresh {
                            ChangeKind::Fresh
                        } else {
                            ChangeKind::Ratchet
                        },
                        from: old_epoch,
                        commit,
                    },
                ));
            }
            next.push((parent, flags));
            i = j;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    Section {
        label: label.to_string(),
        degree: d as u8,
        height: tree.height(),
        changes,
    }
}

fn merge_marks(sorted: Vec<(u32, u8)>) -> Vec<(u32, u8)> {
    let mut out: Vec<(u32, u8)> = Vec::with_capacity(sorted.len());
    for (p, f) in sorted {
        match out.last_mut() {
            Some(last) if last.0 == p => last.1 |= f,
            _ => out.push((p, f)),
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn rekey_group(
    rng: &mut StdRng,
    prefix: &str,
    subgroups: &[Subgroup],
    target: KeyRef<'_>,
    key: &mut [u8; KEY_LEN],
    key_epoch: &mut u32,
    subscribers: &[u32],
    gained: &[u32],
    must_fresh: bool,
    epoch: u32,
    mode: WrapMode,
    class: WrapClass,
    wraps: &mut SealBatch,
    stats: &mut RekeyStats,
) -> Change {
    let from = *key_epoch;
    let occupied = subscribers
        .iter()
        .any(|&s| subgroups[s as usize].tree.members() > 0);
    if !occupied {
        key.zeroize();
        *key_epoch = 0;
        stats.removed_keys += 1;
        return Change {
            kind: ChangeKind::Removed,
            from,
            commit: [0; wrap::COMMIT_LEN],
        };
    }
    let target_name = names::key_name(prefix, target, epoch);
    let fresh = must_fresh || from == 0;
    if fresh {
        rng.fill_bytes(key);
        stats.fresh_keys += 1;
    } else {
        *key = wrap::ratchet(key, &target_name);
        stats.ratcheted_keys += 1;
    }
    *key_epoch = epoch;
    let to: &[u32] = if fresh { subscribers } else { gained };
    for &s in to {
        let sg = &subgroups[s as usize];
        if sg.tree.members() == 0 {
            continue;
        }
        let h = sg.tree.height();
        let (sk, se) = sg.tree.key(h, 0);
        let mut name = String::with_capacity(target_name.len() + 80);
        name.push_str(&target_name);
        name.push_str("/ENCRYPTED-BY");
        names::write_key_name(
            &mut name,
            prefix,
            KeyRef::Node {
                subgroup: &sg.label,
                height: h,
                pos: 0,
            },
            se,
        );
        stats.count(mode, name.len(), class);
        wraps.push(rng, sk, name, mode, key);
    }
    Change {
        kind: if fresh {
            ChangeKind::Fresh
        } else {
            ChangeKind::Ratchet
        },
        from,
        commit: wrap::commitment(&target_name, key),
    }
}
