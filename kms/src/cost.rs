//! Rekey cost of a concrete rollout, measured by running the real key graph (`amicn kms cost`).
//!
//! Meters `0..members` are assigned to DR projects by laying each project's members out as a
//! contiguous run (wrapping around) after the previous project's, so projects overlap as soon
//! as their sizes add up to more than the meter count; meters are then grouped into subgroups by
//! their exact project set. A *subject* meter with `meter_projects` projects is used for the
//! single join, leave, move and revocation; the batch applies `batch_leaves` random departures
//! and `batch_joins` joins in one epoch and is compared with the same changes applied one by one.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::graph::{GraphConfig, GraphError, GraphResult, KeyGraph, RekeyStats};
use crate::key::SymmetricKey;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostParams {
    /// Meters enrolled before measuring.
    pub members: u32,
    /// Tree degree.
    pub degree: u32,
    /// DR projects and their member counts.
    pub projects: Vec<(String, u32)>,
    /// How many DR projects the subject meter subscribes to.
    pub meter_projects: usize,
    /// Departures in the batch.
    pub batch_leaves: u32,
    /// Joins in the batch.
    pub batch_joins: u32,
    /// LKH+ ratchet on joins.
    pub ratchet_joins: bool,
    /// Seed of the key stream and the batch choice (results are reproducible).
    pub seed: u64,
}

/// Counts of one measured operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCost {
    /// Counters of the rekey epoch.
    pub stats: RekeyStats,
}

/// Everything `amicn kms cost` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostReport {
    /// Subject meter's subgroup label.
    pub subject_subgroup: String,
    /// Members of that subgroup before the measurements.
    pub subject_subgroup_size: u32,
    /// Height of that subgroup's tree.
    pub subject_tree_height: u8,
    /// One join of a new meter into the subject's subgroup.
    pub join: RekeyStats,
    /// One departure (from the utility) of a subject-subgroup meter.
    pub leave: RekeyStats,
    /// One meter of the subject subgroup dropping its first DR project (if it has one).
    pub move_: Option<RekeyStats>,
    /// One revocation of a subject-subgroup meter.
    pub revoke: RekeyStats,
    /// The batch as one epoch.
    pub batch: RekeyStats,
    /// The same batch applied one change per epoch, summed.
    pub batch_individual: RekeyStats,
    /// Keys the subject meter stores.
    pub member_keys: u64,
    /// Keys the KMS stores (after the single operations, before the batch).
    pub server_keys: u64,
    /// Bytes of the server's arrays.
    pub server_heap_bytes: u64,
    /// Number of subgroups.
    pub subgroups: usize,
    /// Project sizes as enrolled.
    pub project_sizes: Vec<(String, u64)>,
}

fn add(a: &mut RekeyStats, b: &RekeyStats) {
    a.unicast_wraps += b.unicast_wraps;
    a.multicast_wraps += b.multicast_wraps;
    a.broadcast_wraps += b.broadcast_wraps;
    a.tree_wraps += b.tree_wraps;
    a.project_wraps += b.project_wraps;
    a.root_wraps += b.root_wraps;
    a.fresh_keys += b.fresh_keys;
    a.ratcheted_keys += b.ratcheted_keys;
    a.removed_keys += b.removed_keys;
    a.wrap_payload_bytes += b.wrap_payload_bytes;
    a.wrap_name_bytes += b.wrap_name_bytes;
    a.manifest_bytes += b.manifest_bytes;
    a.signature_bytes += b.signature_bytes;
}

/// Builds the graph of `p` with every meter enrolled; returns it and each meter's project set.
pub fn build(p: &CostParams) -> GraphResult<(KeyGraph, Vec<Vec<usize>>)> {
    if p.members == 0 {
        return Err(GraphError::BadParameter(
            "--members must be at least 1".into(),
        ));
    }
    let cfg = GraphConfig {
        prefix: "/example-utility".into(),
        degree: p.degree,
        ratchet_joins: p.ratchet_joins,
    };
    let mut g = KeyGraph::with_seed(cfg, p.seed)?;
    for (name, size) in &p.projects {
        if *size > p.members {
            return Err(GraphError::BadParameter(format!(
                "project {name} has {size} members but there are only {}",
                p.members
            )));
        }
        g.add_project(name)?;
    }
    let n = u64::from(p.members);
    let mut sets: Vec<Vec<usize>> = vec![Vec::new(); p.members as usize];
    let mut offset = 0u64;
    for (j, (_, size)) in p.projects.iter().enumerate() {
        for k in 0..u64::from(*size) {
            sets[((offset + k) % n) as usize].push(j);
        }
        offset = (offset + u64::from(*size)) % n;
    }
    let mut groups: std::collections::BTreeMap<Vec<usize>, Vec<u32>> =
        std::collections::BTreeMap::new();
    for (m, s) in sets.iter().enumerate() {
        groups.entry(s.clone()).or_default().push(m as u32);
    }
    for (set, meters) in groups {
        let names: Vec<&str> = set.iter().map(|&j| p.projects[j].0.as_str()).collect();
        g.bulk_enroll(&meters, &names)?;
    }
    Ok((g, sets))
}

fn null_signer(_: &[u8]) -> Vec<u8> {
    vec![0u8; 64]
}

/// Runs the measurements of `p`.
pub fn measure(p: &CostParams) -> GraphResult<CostReport> {
    let (mut g, sets) = build(p)?;
    let signer = null_signer;
    let k = p.meter_projects.min(p.projects.len());
    // Subject set: that of the first meter with exactly k projects, else the first k projects.
    let subject_set: Vec<usize> = sets
        .iter()
        .find(|s| s.len() == k)
        .cloned()
        .unwrap_or_else(|| (0..k).collect());
    let names: Vec<&str> = subject_set
        .iter()
        .map(|&j| p.projects[j].0.as_str())
        .collect();
    let mut same: Vec<u32> = sets
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == subject_set)
        .map(|(m, _)| m as u32)
        .collect();

    let mut rng = StdRng::seed_from_u64(p.seed ^ 0x5eed);
    let mut next_id = p.members;
    let fresh_key = |rng: &mut StdRng| {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        SymmetricKey::from_bytes(k)
    };

    let joiner = next_id;
    next_id += 1;
    let join = g.join(joiner, &names, fresh_key(&mut rng), &signer)?.stats;
    same.push(joiner);
    let subject = *same.first().unwrap_or(&joiner);
    let mut report = CostReport {
        subject_subgroup: crate::graph::names::subgroup_label(&{
            let mut n = names.clone();
            n.sort_unstable();
            n
        }),
        subject_subgroup_size: g.subgroup_size(subject).unwrap_or(0),
        member_keys: g.member_key_count(subject).unwrap_or(0),
        join,
        ..CostReport::default()
    };
    report.subject_tree_height = g
        .subgroups()
        .iter()
        .find(|s| s.0 == report.subject_subgroup)
        .map_or(0, |s| s.2);

    // Leave, revocation and move use other meters of the subject's subgroup, spread over the
    // tree so that one operation does not shorten the next one's path.
    let spread = |k: usize| -> Option<u32> {
        let i = k * same.len() / 4;
        (i > 0 && same.len() >= 4).then(|| same[i])
    };
    let (revokee, mover) = (spread(2), spread(3));
    let leaver = spread(1).unwrap_or(*same.get(1).unwrap_or(&joiner));
    report.leave = g.leave(leaver, &signer)?.stats;
    if let Some(m) = revokee {
        report.revoke = g.revoke(m, &signer)?.stats;
    }
    if let (Some(m), false) = (mover, names.is_empty()) {
        report.move_ = Some(g.move_to(m, &names[1..], &signer)?.stats);
    }
    report.server_keys = g.server_keys();
    report.server_heap_bytes = g.heap_bytes() as u64;
    report.subgroups = g.subgroups().len();
    report.project_sizes = g.project_sizes();

    // Batch: the same random departures and joins, once as one epoch, once one by one.
    let mut ids = g.member_ids();
    ids.shuffle(&mut rng);
    let leaves: Vec<u32> = ids.into_iter().take(p.batch_leaves as usize).collect();
    let joins: Vec<(u32, Vec<&str>)> = (0..p.batch_joins)
        .map(|i| {
            let m = next_id + i;
            let set = &sets[(m as usize * 7919) % sets.len()];
            (m, set.iter().map(|&j| p.projects[j].0.as_str()).collect())
        })
        .collect();
    for &m in &leaves {
        g.stage_leave(m)?;
    }
    for (m, set) in &joins {
        g.stage_join(*m, set, fresh_key(&mut rng))?;
    }
    report.batch = g.commit(&signer).stats;

    // Replay on an identical graph, one change per epoch.
    let (mut g2, _) = build(p)?;
    g2.join(joiner, &names, fresh_key(&mut rng), &signer)?;
    g2.leave(leaver, &signer)?;
    if let Some(m) = revokee {
        g2.revoke(m, &signer)?;
    }
    if let (Some(m), false) = (mover, names.is_empty()) {
        g2.move_to(m, &names[1..], &signer)?;
    }
    let mut sum = RekeyStats::default();
    for &m in &leaves {
        add(&mut sum, &g2.leave(m, &signer)?.stats);
    }
    for (m, set) in &joins {
        add(
            &mut sum,
            &g2.join(*m, set, fresh_key(&mut rng), &signer)?.stats,
        );
    }
    report.batch_individual = sum;
    Ok(report)
}

/// Parses `p1:size,p2:size`.
pub fn parse_projects(s: &str) -> GraphResult<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, size) = part.split_once(':').ok_or_else(|| {
            GraphError::BadParameter(format!("project {part:?} must be name:size"))
        })?;
        let size: u32 = size.parse().map_err(|_| {
            GraphError::BadParameter(format!("size of project {name:?} is not a number"))
        })?;
        out.push((name.to_string(), size));
    }
    Ok(out)
}
