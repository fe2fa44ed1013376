//! `amicn kms`: the KMS daemon (`amicn kms serve`) and key-management tools. `amicn kms cost` sizes a rollout by running the real key
//! graph and printing the rekey counts of one join, leave, move, revocation and batch.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use amicn_kms::cost::{CostParams, CostReport, measure, parse_projects};
use amicn_kms::graph::RekeyStats;

/// `amicn kms ...`
#[derive(Debug, Args)]
pub(crate) struct KmsArgs {
    #[command(subcommand)]
    cmd: KmsCmd,
}

#[derive(Debug, Subcommand)]
enum KmsCmd {
    /// Run the KMS: enrolment, commands, epochs, key requests (durable state)
    Serve(Box<crate::cmd::node::NodeArgs>),
    /// Rekey cost of a rollout: wraps per mode, bytes, keys per meter and at the KMS
    Cost(CostArgs),
    /// The survey's Tables III–V beside amicn's LKH, OFT, flat and ACV-BGKM, measured here
    Compare(crate::cmd::kms_compare::CompareArgs),
}

/// Parameters of `amicn kms cost`.
#[derive(Debug, Args)]
pub(crate) struct CostArgs {
    /// Meters enrolled before measuring
    #[arg(long, default_value_t = 1000)]
    members: u32,
    /// Key-tree degree d
    #[arg(long, default_value_t = 2)]
    degree: u32,
    /// DR projects and their sizes, e.g. "p1:400,p2:300"
    #[arg(long, default_value = "")]
    projects: String,
    /// DR projects of the measured meter
    #[arg(long, default_value_t = 1)]
    meter_projects: usize,
    /// Departures in the measured batch
    #[arg(long, default_value_t = 100)]
    batch: u32,
    /// Joins in the measured batch
    #[arg(long, default_value_t = 0)]
    batch_joins: u32,
    /// Replace keys with fresh ones on joins instead of the LKH+ ratchet
    #[arg(long)]
    no_ratchet: bool,
    /// Seed for keys and the batch choice
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: KmsArgs) -> anyhow::Result<()> {
    match args.cmd {
        KmsCmd::Cost(a) => cost(a),
        KmsCmd::Compare(a) => crate::cmd::kms_compare::run(a),
        KmsCmd::Serve(a) => crate::cmd::node::run_daemon("kms", &a),
    }
}

fn cost(a: CostArgs) -> anyhow::Result<()> {
    let params = CostParams {
        members: a.members,
        degree: a.degree,
        projects: parse_projects(&a.projects)?,
        meter_projects: a.meter_projects,
        batch_leaves: a.batch,
        batch_joins: a.batch_joins,
        ratchet_joins: !a.no_ratchet,
        seed: a.seed,
    };
    if a.batch >= a.members {
        anyhow::bail!(
            "--batch ({}) must be smaller than --members ({})",
            a.batch,
            a.members
        );
    }
    let report = measure(&params).context("running the key graph")?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&params, &report))?
        );
    } else {
        print_table(&params, &report);
    }
    Ok(())
}

fn stats_json(s: &RekeyStats) -> serde_json::Value {
    serde_json::json!({
        "wraps": s.wraps(),
        "unicast_wraps": s.unicast_wraps,
        "multicast_wraps": s.multicast_wraps,
        "broadcast_wraps": s.broadcast_wraps,
        "tree_wraps": s.tree_wraps,
        "project_wraps": s.project_wraps,
        "root_wraps": s.root_wraps,
        "fresh_keys": s.fresh_keys,
        "ratcheted_keys": s.ratcheted_keys,
        "removed_keys": s.removed_keys,
        "wrap_payload_bytes": s.wrap_payload_bytes,
        "wrap_name_bytes": s.wrap_name_bytes,
        "manifest_bytes": s.manifest_bytes,
        "signature_bytes": s.signature_bytes,
        "bytes": s.bytes(),
    })
}

fn to_json(p: &CostParams, r: &CostReport) -> serde_json::Value {
    let h = u64::from(r.subject_tree_height);
    let d = u64::from(p.degree);
    serde_json::json!({
        "params": {
            "members": p.members,
            "degree": p.degree,
            "projects": p.projects.iter().map(|(n, s)| serde_json::json!({"name": n, "size": s})).collect::<Vec<_>>(),
            "meter_projects": p.meter_projects,
            "batch_leaves": p.batch_leaves,
            "batch_joins": p.batch_joins,
            "ratchet_joins": p.ratchet_joins,
            "seed": p.seed,
        },
        "subject": {
            "subgroup": r.subject_subgroup,
            "subgroup_size": r.subject_subgroup_size,
            "tree_height": r.subject_tree_height,
            "leave_tree_wraps_formula_dH_minus_1": (d * h).saturating_sub(1),
        },
        "join": stats_json(&r.join),
        "leave": stats_json(&r.leave),
        "move": r.move_.as_ref().map(stats_json),
        "revoke": stats_json(&r.revoke),
        "batch": stats_json(&r.batch),
        "batch_as_individual_rekeys": stats_json(&r.batch_individual),
        "keys_per_member": r.member_keys,
        "keys_at_server": r.server_keys,
        "server_heap_bytes": r.server_heap_bytes,
        "subgroups": r.subgroups,
        "project_sizes": r.project_sizes.iter().map(|(n, s)| serde_json::json!({"name": n, "members": s})).collect::<Vec<_>>(),
    })
}

fn print_table(p: &CostParams, r: &CostReport) {
    let d = u64::from(p.degree);
    let h = u64::from(r.subject_tree_height);
    println!(
        "key graph: {} meters, degree {}, {} DR projects, {} subgroups; measured meter in subgroup {} ({} meters, tree height {})",
        p.members,
        p.degree,
        p.projects.len(),
        r.subgroups,
        r.subject_subgroup,
        r.subject_subgroup_size,
        h
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10}",
        "operation",
        "unicast",
        "multicst",
        "bcast",
        "wraps",
        "tree",
        "proj",
        "root",
        "wrap B",
        "manifest B",
        "total B"
    );
    let row = |name: &str, s: &RekeyStats| {
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10}",
            name,
            s.unicast_wraps,
            s.multicast_wraps,
            s.broadcast_wraps,
            s.wraps(),
            s.tree_wraps,
            s.project_wraps,
            s.root_wraps,
            s.wrap_payload_bytes + s.wrap_name_bytes,
            s.manifest_bytes,
            s.bytes()
        );
    };
    row("join", &r.join);
    row("leave", &r.leave);
    if let Some(m) = &r.move_ {
        row("move (drop 1 project)", m);
    }
    row("revoke", &r.revoke);
    row(
        &format!("batch ({}L+{}J)", p.batch_leaves, p.batch_joins),
        &r.batch,
    );
    row("same, one by one", &r.batch_individual);
    println!(
        "leave tree wraps: {} (LKH formula d·H − 1 = {})",
        r.leave.tree_wraps,
        (d * h).saturating_sub(1)
    );
    println!(
        "keys per meter: {} (tree H+1 = {}, projects {}, broadcast 1); keys at KMS: {}; KMS arrays: {:.1} MiB",
        r.member_keys,
        h + 1,
        r.member_keys.saturating_sub(h + 2),
        r.server_keys,
        r.server_heap_bytes as f64 / (1024.0 * 1024.0)
    );
}
