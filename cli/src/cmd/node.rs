//! The AMI role daemons (`amicn kms serve`, `amicn mdms`, `amicn pricing`, `amicn dr`,
//! `amicn meter`), the provisioning ceremony (`amicn pki`) and the operator tools
//! (`amicn ami entitle|revoke|leave`). Each daemon reads a node config (TOML, see
//! `examples/node-*.toml`), takes a flag for every setting, and runs until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use amicn_ami::daemon::{Node, NodeConfig};
use amicn_ami::provision::{
    ProvisionSpec, load_anchor, load_credentials, load_meter_credentials, provision,
};
use amicn_ami::{AmiNames, Trust, connect};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// Settings shared by every role daemon; each overrides the node config's field of that name.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct NodeArgs {
    /// Node config (TOML); relative paths in it start at its directory.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Local forwarder, e.g. unix:///run/nfd/nfd.sock [default: NFD's conventions].
    #[arg(long, value_name = "URI")]
    pub(crate) forwarder: Option<String>,
    /// Utility prefix [default: /example-utility].
    #[arg(long = "u", value_name = "PREFIX")]
    pub(crate) utility: Option<String>,
    /// State directory [default: state].
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Keychain directory [default: keychain].
    #[arg(long, value_name = "DIR")]
    pub(crate) keychain: Option<PathBuf>,
    /// Trust anchor certificate [default: anchor.cert].
    #[arg(long, value_name = "FILE")]
    pub(crate) anchor: Option<PathBuf>,
    /// DR projects, comma-separated (KMS: run; DR: serve; meter: ask for at enrolment).
    #[arg(long, value_name = "P1,P2", value_delimiter = ',')]
    pub(crate) projects: Option<Vec<String>>,
    /// Key-tree degree (KMS) [default: 2].
    #[arg(long, value_name = "D")]
    pub(crate) degree: Option<u32>,
    /// Epoch commit interval (KMS) [default: 2s].
    #[arg(long, value_name = "TIME")]
    pub(crate) rekey_interval: Option<String>,
    /// Reading interval (meter) [default: 15m].
    #[arg(long, value_name = "TIME")]
    pub(crate) reading_interval: Option<String>,
    /// Epoch/price/DR check interval (meter) [default: 5s].
    #[arg(long, value_name = "TIME")]
    pub(crate) sync_interval: Option<String>,
    /// Collection round interval (MDMS) [default: 60s].
    #[arg(long, value_name = "TIME")]
    pub(crate) poll_interval: Option<String>,
    /// Key refresh interval (MDMS, pricing, DR) [default: 10s].
    #[arg(long, value_name = "TIME")]
    pub(crate) key_refresh: Option<String>,
    /// Publish interval (pricing, DR) [default: 60s].
    #[arg(long, value_name = "TIME")]
    pub(crate) publish_interval: Option<String>,
    /// Acceptance window for readings (MDMS) [default: 1d].
    #[arg(long, value_name = "TIME")]
    pub(crate) window: Option<String>,
    /// Readings each meter keeps for the MDMS (meter) [default: 64].
    #[arg(long, value_name = "N")]
    pub(crate) keep_readings: Option<usize>,
    /// Simulate only the first N meters of the keychain (meter).
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u32>,
    /// Counters snapshot interval [default: 1s].
    #[arg(long, value_name = "TIME")]
    pub(crate) metrics_interval: Option<String>,
    /// Tariff id (pricing, meter) [default: tou].
    #[arg(long, value_name = "ID")]
    pub(crate) tariff: Option<String>,
    /// Readings database (MDMS): a SQLite file or a postgres:// URL [default: STATE_DIR/readings.db].
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) db: Option<String>,
    /// Log level or filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    pub(crate) log_json: bool,
}

impl NodeArgs {
    fn flags(&self, role: &str) -> NodeConfig {
        NodeConfig {
            role: Some(role.to_string()),
            utility: self.utility.clone(),
            forwarder: self.forwarder.clone(),
            state_dir: self.state_dir.clone(),
            keychain: self.keychain.clone(),
            anchor: self.anchor.clone(),
            projects: self.projects.clone(),
            degree: self.degree,
            rekey_interval: self.rekey_interval.clone(),
            reading_interval: self.reading_interval.clone(),
            sync_interval: self.sync_interval.clone(),
            poll_interval: self.poll_interval.clone(),
            key_refresh: self.key_refresh.clone(),
            publish_interval: self.publish_interval.clone(),
            window: self.window.clone(),
            keep_readings: self.keep_readings,
            count: self.count,
            metrics_interval: self.metrics_interval.clone(),
            tariff: self.tariff.clone(),
            db: self.db.clone(),
        }
    }

    /// The resolved node: config file (if any) overridden by flags. A config written for
    /// another role is refused.
    pub(crate) fn node(&self, role: &str) -> anyhow::Result<Node> {
        let (file, base) = match &self.config {
            Some(p) => NodeConfig::load(p)?,
            None => (NodeConfig::default(), PathBuf::from(".")),
        };
        if let Some(r) = &file.role
            && r != role
        {
            bail!(
                "{} is a {r} node config, not a {role} one",
                self.config
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            );
        }
        // Paths given as flags are relative to the working directory, not the config file.
        let mut flags = self.flags(role);
        let cwd = std::env::current_dir().context("working directory")?;
        for p in [&mut flags.state_dir, &mut flags.keychain, &mut flags.anchor]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        }
        Ok(Node::resolve(file.overridden_by(flags), &base)?)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs a role daemon until SIGTERM or SIGINT.
pub(crate) fn run_daemon(role: &str, args: &NodeArgs) -> anyhow::Result<()> {
    let node = args.node(role)?;
    crate::cmd::fwd::init_logging(args.log_level.as_deref(), args.log_json);
    let rt = runtime()?;
    let r = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        };
        amicn_ami::daemon::run(node, stop)
            .await
            .with_context(|| format!("{role} failed"))
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    r
}

/// `amicn meter`: N simulated meters, or a one-off enrolment probe.
#[derive(Debug, Args, Default)]
pub(crate) struct MeterArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Instead of running: enrol these meters once from fresh state (ids, e.g. 3,7) and print
    /// each outcome as JSON; exits non-zero if any enrolment is refused.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub(crate) probe_enrol: Option<Vec<u32>>,
}

/// Entry point of `amicn meter`.
pub(crate) fn run_meter(a: MeterArgs) -> anyhow::Result<()> {
    let Some(ids) = a.probe_enrol else {
        return run_daemon("meter", &a.node);
    };
    let node = a.node.node("meter")?;
    crate::cmd::fwd::init_logging(a.node.log_level.as_deref().or(Some("warn")), false);
    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let client = connect(&node.forwarder).await?;
        let creds: Vec<_> = load_meter_credentials(&node.keychain, &node.names)?
            .into_iter()
            .filter(|(id, _)| ids.contains(id))
            .collect();
        if creds.len() != ids.len() {
            bail!("the keychain does not hold every meter of {ids:?}");
        }
        Ok(amicn_ami::daemon::probe_enrol(&node, &client, creds).await?)
    })?;
    let mut refused = 0;
    let out: Vec<serde_json::Value> = outcomes
        .into_iter()
        .map(|(id, r)| match r {
            Ok(e) => serde_json::json!({"meter": id, "enrolled": true, "epoch": e}),
            Err(why) => {
                refused += 1;
                serde_json::json!({"meter": id, "enrolled": false, "error": why})
            }
        })
        .collect();
    println!("{}", serde_json::to_string(&out)?);
    if refused > 0 {
        bail!("{refused} enrolment(s) refused");
    }
    Ok(())
}

/// `amicn pki`: create the trust anchor and one directory per node.
#[derive(Debug, Args)]
pub(crate) struct PkiArgs {
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Utility prefix.
    #[arg(long = "u", value_name = "PREFIX", default_value = "/example-utility")]
    utility: String,
    /// DR projects the utility runs, comma-separated.
    #[arg(
        long,
        value_name = "P1,P2",
        value_delimiter = ',',
        default_value = "p1,p2"
    )]
    projects: Vec<String>,
    /// Meters to certify (ids 1..=N).
    #[arg(long, value_name = "N", default_value_t = 100)]
    meters: u32,
    /// Meter-group directories the meters are split into (one process each).
    #[arg(long, value_name = "K", default_value_t = 2)]
    meter_groups: u32,
    /// Certificate lifetime.
    #[arg(long, value_name = "TIME", default_value = "365d")]
    validity: String,
}

/// Entry point of `amicn pki`.
pub(crate) fn run_pki(a: PkiArgs) -> anyhow::Result<()> {
    if a.meter_groups == 0 || a.meter_groups > a.meters.max(1) {
        bail!("--meter-groups must be between 1 and --meters");
    }
    let validity = amicn_ami::daemon::parse_duration(&a.validity).map_err(anyhow::Error::msg)?;
    let spec = ProvisionSpec {
        utility: a.utility,
        out: a.out.clone(),
        projects: a.projects,
        meter_groups: meter_groups(a.meters, a.meter_groups),
        validity_s: validity.as_secs().max(60),
    };
    let t = std::time::Instant::now();
    let nodes = provision(&spec)?;
    for n in &nodes {
        println!(
            "{:<10} {:<9} {}",
            n.node,
            n.role,
            if n.meters.is_empty() {
                n.identities.join(" ")
            } else {
                format!(
                    "{} meters ({}..={})",
                    n.meters.len(),
                    n.meters.first().copied().unwrap_or(0),
                    n.meters.last().copied().unwrap_or(0)
                )
            }
        );
    }
    println!(
        "provisioned {} nodes under {} in {:.1} s; the CA key is in {}/ca (keep it offline)",
        nodes.len(),
        a.out.display(),
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// Splits meters 1..=n into `k` contiguous groups named `meters-<j>`.
pub(crate) fn meter_groups(n: u32, k: u32) -> Vec<(String, Vec<u32>)> {
    let per = n.div_ceil(k.max(1)).max(1);
    (0..k)
        .map(|j| {
            let ids: Vec<u32> = (j * per + 1..=((j + 1) * per).min(n)).collect();
            (format!("meters-{}", j + 1), ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

/// `amicn ami ...`: operator commands to the KMS, signed with the operator's keychain.
#[derive(Debug, Args)]
pub(crate) struct AmiArgs {
    #[command(subcommand)]
    cmd: AmiCmd,
}

#[derive(Debug, Subcommand)]
enum AmiCmd {
    /// Assign meters to DR projects (signed by the DR operator's key)
    Entitle(EntitleArgs),
    /// Revoke a meter: it leaves every group now and may never enrol again (utility operator)
    Revoke(MeterCmdArgs),
    /// Retire a meter at the next epoch (utility operator)
    Leave(MeterCmdArgs),
    /// Ask meters for a fresh reading now (signed by the MDMS, which opens it, or the operator)
    Read(super::meter_ops::MeterOpArgs),
    /// Close meters' supply relays (utility operator)
    Connect(super::meter_ops::MeterOpArgs),
    /// Open meters' supply relays (utility operator)
    Disconnect(super::meter_ops::MeterOpArgs),
    /// Set or remove meters' load limit, --watts W (utility operator)
    Limit(super::meter_ops::MeterOpArgs),
}

#[derive(Debug, Args)]
struct EntitleArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Meters, e.g. 1-50,77.
    #[arg(long, value_name = "IDS")]
    meters: String,
    /// Their complete project set, comma-separated (empty: no project).
    #[arg(
        long = "set",
        value_name = "P1,P2",
        value_delimiter = ',',
        default_value = ""
    )]
    set: Vec<String>,
}

#[derive(Debug, Args)]
struct MeterCmdArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Meter id.
    #[arg(long, value_name = "ID")]
    meter: u32,
}

/// Parses `1-50,77` into ids.
pub(crate) fn parse_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse()?, b.parse()?);
                if b < a || b - a > 10_000_000 {
                    bail!("bad meter range {part:?}");
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().with_context(|| format!("meter id {part:?}"))?),
        }
    }
    if out.is_empty() {
        bail!("no meter ids given");
    }
    Ok(out)
}

/// Entry point of `amicn ami`.
pub(crate) fn run_ami(a: AmiArgs) -> anyhow::Result<()> {
    let (node_args, role) = match &a.cmd {
        AmiCmd::Entitle(e) => (&e.node, "dr"),
        AmiCmd::Revoke(m) | AmiCmd::Leave(m) => (&m.node, "operator"),
        AmiCmd::Read(o) => return super::meter_ops::run("read", o),
        AmiCmd::Connect(o) => return super::meter_ops::run("connect", o),
        AmiCmd::Disconnect(o) => return super::meter_ops::run("disconnect", o),
        AmiCmd::Limit(o) => return super::meter_ops::run("limit", o),
    };
    // The operator's node config carries role "operator"; accept it for operator commands.
    let node = node_args.node_for_tool(role)?;
    crate::cmd::fwd::init_logging(node_args.log_level.as_deref().or(Some("warn")), false);
    let rt = runtime()?;
    let st = rt.block_on(async {
        let client = connect(&node.forwarder).await?;
        let creds = load_credentials(&node.keychain)?;
        let anchor = load_anchor(&node.anchor)?;
        let trust = Trust::new(&node.names, &anchor, &client)?;
        let names: &AmiNames = &node.names;
        let st = match &a.cmd {
            AmiCmd::Entitle(e) => {
                let ids = parse_ids(&e.meters)?;
                let set: Vec<String> = e.set.iter().filter(|p| !p.is_empty()).cloned().collect();
                let assignments: Vec<(u32, Vec<String>)> =
                    ids.into_iter().map(|m| (m, set.clone())).collect();
                let st =
                    amicn_ami::entitle(&client, names, &trust, &creds.key, &assignments).await?;
                // The DR daemon accepts acknowledgements from the members on record.
                if st.code == 200 {
                    amicn_ami::daemon::record_entitlements(&node.state_dir, &assignments)?;
                }
                st
            }
            AmiCmd::Revoke(m) => {
                amicn_ami::meter_command(&client, names, &trust, &creds.key, "revoke", m.meter)
                    .await?
            }
            AmiCmd::Leave(m) => {
                amicn_ami::meter_command(&client, names, &trust, &creds.key, "leave", m.meter)
                    .await?
            }
            AmiCmd::Read(_) | AmiCmd::Connect(_) | AmiCmd::Disconnect(_) | AmiCmd::Limit(_) => {
                bail!("meter commands are answered by the meters, not the KMS")
            }
        };
        anyhow::Ok(st)
    })?;
    println!(
        "{} {}{}",
        st.code,
        st.text,
        st.epoch
            .map(|e| format!(" (epoch {e})"))
            .unwrap_or_default()
    );
    Ok(())
}

impl NodeArgs {
    /// Like [`NodeArgs::node`] for the one-shot operator tools, whose identity lives in the
    /// `dr` or `operator` node directory.
    pub(crate) fn node_for_tool(&self, role: &str) -> anyhow::Result<Node> {
        let (file, base) = match &self.config {
            Some(p) => NodeConfig::load(p)?,
            None => (NodeConfig::default(), PathBuf::from(".")),
        };
        if let Some(r) = &file.role
            && r != role
        {
            bail!("this command needs the {role} node's config, not a {r} one");
        }
        let mut flags = self.flags("dr");
        flags.role = Some("dr".into());
        let mut file = file;
        file.role = Some("dr".into());
        let cwd = std::env::current_dir().context("working directory")?;
        for p in [&mut flags.state_dir, &mut flags.keychain, &mut flags.anchor]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        }
        Ok(Node::resolve(file.overridden_by(flags), &base)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_and_groups() {
        assert_eq!(parse_ids("1-3,7").unwrap(), vec![1, 2, 3, 7]);
        assert!(parse_ids("3-1").is_err());
        assert!(parse_ids("x").is_err());
        let g = meter_groups(10, 3);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].1, vec![1, 2, 3, 4]);
        assert_eq!(g[2].1, vec![9, 10]);
        assert_eq!(g.iter().map(|(_, v)| v.len()).sum::<usize>(), 10);
    }

    #[test]
    fn example_node_configs_parse_and_flags_win() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        for role in ["kms", "mdms", "pricing", "dr", "meter"] {
            let path = PathBuf::from(format!("{dir}/node-{role}.toml"));
            let a = NodeArgs {
                config: Some(path.clone()),
                ..NodeArgs::default()
            };
            let n = a
                .node(role)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert_eq!(n.role, role);
            assert!(n.state_dir.ends_with("examples/state"), "{:?}", n.state_dir);
            // A config for one role is refused for another.
            let other = if role == "kms" { "mdms" } else { "kms" };
            assert!(a.node(other).is_err());
        }
        let a = NodeArgs {
            config: Some(format!("{dir}/node-kms.toml").into()),
            rekey_interval: Some("250ms".into()),
            degree: Some(4),
            ..NodeArgs::default()
        };
        let n = a.node("kms").unwrap();
        assert_eq!(
            (n.rekey_interval, n.degree),
            (Duration::from_millis(250), 4)
        );
        let bad = NodeArgs {
            config: Some(format!("{dir}/node-kms.toml").into()),
            rekey_interval: Some("soon".into()),
            ..NodeArgs::default()
        };
        assert!(bad.node("kms").is_err());
    }
}
