//! `amicn topo`: topology files for experiments and lab meshes — generate, import from
//! Mini-NDN, show routes, and write one configuration directory per node.
//!
//! `amicn topo configs topo.toml --out DIR` runs the provisioning ceremony for the topology and
//! lays out what each machine needs:
//!
//! ```text
//! DIR/topology.toml        the topology, as read
//! DIR/routes.txt           every node's static routes
//! DIR/pki/                 the ceremony: ca/ (the utility's offline CA), anchor.cert, nodes.json
//! DIR/<head>/fwd.toml      the head-end forwarder
//! DIR/<head>/kms|mdms|pricing|dr|operator/   the head-end roles (node.toml, keychain, trust)
//! DIR/<router>/fwd.toml    a concentrator
//! DIR/<meters>/fwd.toml    a meters node's forwarder
//! DIR/<meters>/meters/     its simulated meters (one keychain with every identity)
//! DIR/<node>/commands.sh   the commands that start the node, in order
//! ```
//!
//! Faces are UDP between the link addresses of [`Topology::addresses`] (port 6363), routes are
//! the shortest paths of [`Topology::routes`]. With `--emulate-links` the forwarders add each
//! link's delay and loss themselves (for hosts whose kernel has no netem); on real links leave
//! it off.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use amicn_ami::provision::{ProvisionSpec, provision};
use amicn_ami::topo::{GenSpec, MiniNdnImport, Role, Route, Shape, Topology};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

/// UDP port of every forwarder's listener and faces.
pub(crate) const NDN_PORT: u16 = 6363;

/// Principals the provisioning ceremony names; no node may be called like one.
const PRINCIPALS: [&str; 6] = ["ca", "kms", "mdms", "pricing", "dr", "operator"];

#[derive(Debug, Args)]
pub(crate) struct TopoArgs {
    #[command(subcommand)]
    cmd: TopoCmd,
}

#[derive(Debug, Subcommand)]
enum TopoCmd {
    /// Generate a topology of a usual AMI shape
    Gen(GenArgs),
    /// Convert a Mini-NDN topology (.conf) into a topology file
    Import(ImportArgs),
    /// Check a topology file and print every node's routes
    Routes(RoutesArgs),
    /// Provision the utility and write one configuration directory per node
    Configs(ConfigsArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShapeArg {
    Line,
    Tree,
    Grid,
    Random,
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Shape of the concentrator mesh
    #[arg(long, value_enum)]
    shape: ShapeArg,
    /// Concentrators (line, random)
    #[arg(long, default_value_t = 4)]
    routers: u32,
    /// Children per concentrator (tree)
    #[arg(long, default_value_t = 3)]
    degree: u32,
    /// Concentrator levels below the head-end (tree)
    #[arg(long, default_value_t = 2)]
    depth: u32,
    /// Grid rows
    #[arg(long, default_value_t = 3)]
    rows: u32,
    /// Grid columns
    #[arg(long, default_value_t = 3)]
    cols: u32,
    /// Link radius in the unit square (random geometric)
    #[arg(long, default_value_t = 0.35)]
    radius: f64,
    /// Seed of the random layout
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Meters nodes, attached to the edge concentrators
    #[arg(long, default_value_t = 6)]
    meter_nodes: u32,
    /// Simulated meters per meters node
    #[arg(long, default_value_t = 10)]
    meters_per_node: u32,
    /// Topology name
    #[arg(long)]
    name: Option<String>,
    /// Utility prefix
    #[arg(long, default_value = "/lab-utility")]
    utility: String,
    /// DR projects, comma-separated (meters nodes are entitled to one each, in turn)
    #[arg(long, value_delimiter = ',', default_value = "p1,p2")]
    projects: Vec<String>,
    /// One-way delay of every link (ms)
    #[arg(long, default_value_t = 1.0)]
    delay_ms: f64,
    /// Bandwidth of every link (Mbit/s)
    #[arg(long)]
    bandwidth_mbit: Option<f64>,
    /// Write the topology here instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Mini-NDN topology file
    conf: PathBuf,
    /// The node that becomes the head-end (default: the first listed)
    #[arg(long)]
    head: Option<String>,
    /// Simulated meters behind each edge node (0: none)
    #[arg(long, default_value_t = 10)]
    meters_per_node: u32,
    /// Topology name (default: the file's stem)
    #[arg(long)]
    name: Option<String>,
    /// Utility prefix
    #[arg(long, default_value = "/lab-utility")]
    utility: String,
    /// Write the topology here instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RoutesArgs {
    /// Topology file
    topology: PathBuf,
    /// Treat these links (index, or `a-b`) as failed
    #[arg(long, value_delimiter = ',')]
    down: Vec<String>,
}

#[derive(Debug, Args)]
struct ConfigsArgs {
    /// Topology file
    topology: PathBuf,
    /// Output directory (must not exist yet, or be empty)
    #[arg(long)]
    out: PathBuf,
    /// Forwarders emulate each link's delay and loss on their faces (hosts without netem)
    #[arg(long)]
    emulate_links: bool,
}

pub(crate) fn run(a: TopoArgs) -> anyhow::Result<()> {
    match a.cmd {
        TopoCmd::Gen(g) => gen_cmd(g),
        TopoCmd::Import(i) => import_cmd(i),
        TopoCmd::Routes(r) => routes_cmd(r),
        TopoCmd::Configs(c) => {
            let topo = Topology::load(&c.topology)?;
            let layout = write_configs(&topo, &c.out, c.emulate_links)?;
            println!(
                "wrote {} node directories under {} ({} meters); routes in {}",
                topo.nodes.len(),
                c.out.display(),
                topo.total_meters(),
                layout.routes.display()
            );
            Ok(())
        }
    }
}

fn emit(topo: &Topology, output: Option<&Path>) -> anyhow::Result<()> {
    let text = topo.to_toml();
    match output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn gen_cmd(g: GenArgs) -> anyhow::Result<()> {
    let shape = match g.shape {
        ShapeArg::Line => Shape::Line { routers: g.routers },
        ShapeArg::Tree => Shape::Tree {
            degree: g.degree,
            depth: g.depth,
        },
        ShapeArg::Grid => Shape::Grid {
            rows: g.rows,
            cols: g.cols,
        },
        ShapeArg::Random => Shape::RandomGeometric {
            routers: g.routers,
            radius: g.radius,
            seed: g.seed,
        },
    };
    let name = g.name.unwrap_or_else(|| {
        format!("{:?}-{}", g.shape, g.meter_nodes * g.meters_per_node).to_lowercase()
    });
    let topo = amicn_ami::topo::generate(&GenSpec {
        shape,
        meter_nodes: g.meter_nodes,
        meters_per_node: g.meters_per_node,
        name,
        utility: g.utility,
        projects: g.projects,
        delay_ms: g.delay_ms,
        bandwidth_mbit: g.bandwidth_mbit,
        seed: g.seed,
    })?;
    emit(&topo, g.output.as_deref())
}

fn import_cmd(i: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&i.conf)
        .with_context(|| format!("reading {}", i.conf.display()))?;
    let name = i.name.unwrap_or_else(|| {
        let stem = i
            .conf
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let clean: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(24)
            .collect();
        if clean.is_empty() {
            "imported".into()
        } else {
            clean
        }
    });
    let topo = amicn_ami::topo::from_minindn_conf(
        &text,
        &MiniNdnImport {
            name,
            utility: i.utility,
            head: i.head,
            meters_per_node: i.meters_per_node,
        },
    )
    .with_context(|| format!("importing {}", i.conf.display()))?;
    emit(&topo, i.output.as_deref())
}

/// Link indices from `index` or `a-b` forms.
pub(crate) fn parse_links(topo: &Topology, specs: &[String]) -> anyhow::Result<BTreeSet<usize>> {
    let mut out = BTreeSet::new();
    for s in specs {
        if let Ok(i) = s.parse::<usize>() {
            if i >= topo.links.len() {
                bail!("link {i}: the topology has {} links", topo.links.len());
            }
            out.insert(i);
            continue;
        }
        let (a, b) = s
            .split_once('-')
            .with_context(|| format!("link {s:?}: expected an index or A-B"))?;
        let i = topo
            .links
            .iter()
            .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
            .with_context(|| format!("no link between {a:?} and {b:?}"))?;
        out.insert(i);
    }
    Ok(out)
}

fn routes_text(routes: &BTreeMap<String, Vec<Route>>) -> String {
    let mut out = String::new();
    for (node, routes) in routes {
        let _ = writeln!(out, "{node}:");
        for r in routes {
            let _ = writeln!(
                out,
                "  {:<40} via {:<12} (link {}) cost {}",
                r.prefix, r.next_hop, r.link, r.cost
            );
        }
    }
    out
}

fn routes_cmd(r: RoutesArgs) -> anyhow::Result<()> {
    let topo = Topology::load(&r.topology)?;
    let down = parse_links(&topo, &r.down)?;
    print!("{}", routes_text(&topo.routes(&down)));
    Ok(())
}

/// Where [`write_configs`] put things.
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) routes: PathBuf,
}

impl Layout {
    /// A node's directory.
    pub(crate) fn node(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The `node.toml` of a head-end role (`kms`, `mdms`, `pricing`, `dr`, `operator`).
    pub(crate) fn role_config(&self, head: &str, role: &str) -> PathBuf {
        self.root.join(head).join(role).join("node.toml")
    }

    /// A head-end role's directory.
    pub(crate) fn role_dir(&self, head: &str, role: &str) -> PathBuf {
        self.root.join(head).join(role)
    }

    /// The `node.toml` of a meters node's meters.
    pub(crate) fn meters_config(&self, node: &str) -> PathBuf {
        self.root.join(node).join("meters").join("node.toml")
    }

    /// The meters directory of a meters node.
    pub(crate) fn meters_dir(&self, node: &str) -> PathBuf {
        self.root.join(node).join("meters")
    }

    /// A node's forwarder configuration.
    pub(crate) fn fwd_config(&self, node: &str) -> PathBuf {
        self.root.join(node).join("fwd.toml")
    }
}

/// `udp4://ADDR:6363` of the far end of link `link` seen from `node`.
pub(crate) fn peer_uri(topo: &Topology, link: usize, node: &str) -> Option<String> {
    let l = topo.links.get(link)?;
    let addrs = topo.addresses();
    let a = addrs.get(link)?;
    let peer = if l.a == node { a.b } else { a.a };
    Some(format!("udp4://{peer}:{NDN_PORT}"))
}

/// The forwarder configuration of one node.
/// The forwarder configuration of one node, with `routes` of every node (`Topology::routes`,
/// computed once for all of them).
pub(crate) fn fwd_toml(
    topo: &Topology,
    routes: &BTreeMap<String, Vec<Route>>,
    node: &str,
    emulate: bool,
) -> anyhow::Result<String> {
    let n = topo
        .node(node)
        .with_context(|| format!("no node {node:?}"))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# amicn fwd of node {node:?} ({}) in topology {:?}, written by `amicn topo configs`.",
        n.role, topo.name
    );
    let _ = writeln!(
        s,
        "# Run: amicn fwd --config fwd.toml   (flags override, e.g. --socket PATH)"
    );
    let _ = writeln!(s, "socket = \"/run/nfd/nfd.sock\"");
    let _ = writeln!(s, "udp = [\"0.0.0.0:{NDN_PORT}\"]");
    let _ = writeln!(s, "tcp = []");
    let _ = writeln!(s, "log_level = \"warn\"");
    let _ = writeln!(s, "\n[cs]\ncapacity = {}", n.cs_capacity(&topo.defaults));
    for (link, other) in topo.neighbours(node) {
        let l = &topo.links[link];
        let uri = peer_uri(topo, link, node).context("link address")?;
        let _ = writeln!(s, "\n# link {link}: {node} - {other}");
        let _ = writeln!(s, "[[face]]\nuri = \"{uri}\"");
        if emulate && (l.delay_ms > 0.0 || l.loss > 0.0) {
            let _ = writeln!(
                s,
                "# EMULATED by the forwarder (this host has no netem): the link's delay and loss"
            );
            if l.delay_ms > 0.0 {
                let _ = writeln!(s, "emulate_delay_ms = {}", l.delay_ms.round() as u64);
            }
            if l.loss > 0.0 {
                let _ = writeln!(s, "emulate_loss = {}", l.loss);
                let _ = writeln!(s, "emulate_seed = {}", link + 1);
            }
        }
    }
    for r in routes.get(node).into_iter().flatten() {
        let uri = peer_uri(topo, r.link, node).context("link address")?;
        let _ = writeln!(
            s,
            "\n[[route]]\nprefix = \"{}\"\nface = \"{uri}\"\ncost = {}",
            r.prefix, r.cost
        );
    }
    let _ = writeln!(
        s,
        "\n[[strategy]]\nprefix = \"{}\"\nstrategy = \"{}\"",
        topo.upstream_prefix(),
        n.strategy(&topo.defaults)
    );
    Ok(s)
}

fn commands_sh(topo: &Topology, node: &str) -> String {
    let mut s = format!(
        "#!/bin/sh\n# Starts node {node:?} of topology {:?}: its forwarder first, then its roles.\n\
         # Run from this directory.\nset -e\namicn fwd --config fwd.toml &\nsleep 1\n",
        topo.name
    );
    let Some(n) = topo.node(node) else {
        return s;
    };
    match n.role {
        Role::HeadEnd => {
            if n.has_service("kms") {
                s.push_str("amicn kms serve -c kms/node.toml &\n");
                s.push_str(
                    "# Entitle meters to DR projects (the DR operator's signed command), e.g.:\n\
                     # amicn ami entitle -c dr/node.toml --meters 1,2,3 --set p1\n",
                );
            }
            for role in ["mdms", "pricing", "dr"] {
                if n.has_service(role) {
                    let _ = writeln!(s, "amicn {role} -c {role}/node.toml &");
                }
            }
        }
        Role::Meters => {
            let _ = writeln!(
                s,
                "amicn meter -c meters/node.toml --reading-interval {} &",
                amicn_ami::topo::format_duration(n.reading_interval(&topo.defaults))
            );
        }
        Role::Concentrator => {}
    }
    s.push_str("wait\n");
    s
}

/// Provisions the utility of `topo` and writes every node's directory under `out` (see the
/// module documentation).
pub(crate) fn write_configs(topo: &Topology, out: &Path, emulate: bool) -> anyhow::Result<Layout> {
    for n in &topo.nodes {
        if PRINCIPALS.contains(&n.name.as_str()) || n.name == "pki" {
            bail!(
                "node {:?}: the name is reserved for a provisioned principal; rename the node",
                n.name
            );
        }
    }
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pki = out.join("pki");
    let ids = topo.meter_ids();
    let meter_groups: Vec<(String, Vec<u32>)> =
        ids.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    provision(&ProvisionSpec {
        utility: topo.utility.clone(),
        out: pki.clone(),
        projects: topo.projects.clone(),
        meter_groups,
        validity_s: amicn_ami::provision::NODE_CERT_VALIDITY_S,
    })?;
    let layout = Layout {
        root: out.to_path_buf(),
        routes: out.join("routes.txt"),
    };
    let head = topo.head_end().name.clone();
    let routes = topo.routes(&BTreeSet::new());
    for n in &topo.nodes {
        let dir = layout.node(&n.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(
            layout.fwd_config(&n.name),
            fwd_toml(topo, &routes, &n.name, emulate)?,
        )
        .with_context(|| format!("writing {}", layout.fwd_config(&n.name).display()))?;
        std::fs::write(dir.join("commands.sh"), commands_sh(topo, &n.name))
            .with_context(|| format!("writing commands.sh of {}", n.name))?;
        if n.role == Role::Meters {
            let from = pki.join(&n.name);
            std::fs::rename(&from, layout.meters_dir(&n.name))
                .with_context(|| format!("moving {}", from.display()))?;
        }
    }
    // Every head-end role keeps its own directory (keychain, state) inside the head-end node.
    for role in ["kms", "mdms", "pricing", "dr", "operator"] {
        let from = pki.join(role);
        std::fs::rename(&from, layout.role_dir(&head, role))
            .with_context(|| format!("moving {}", from.display()))?;
    }
    std::fs::write(out.join("topology.toml"), topo.to_toml())
        .with_context(|| format!("writing {}/topology.toml", out.display()))?;
    std::fs::write(&layout.routes, routes_text(&routes))
        .with_context(|| format!("writing {}", layout.routes.display()))?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree() -> Topology {
        Topology::from_toml(include_str!("../../../examples/topo-tree.toml")).unwrap()
    }

    #[test]
    fn forwarder_configs_parse_and_carry_the_routes() {
        let t = tree();
        let all = t.routes(&BTreeSet::new());
        for n in &t.nodes {
            let text = fwd_toml(&t, &all, &n.name, true).unwrap();
            let v: toml::Value = toml::from_str(&text).unwrap();
            let faces = v["face"].as_array().unwrap();
            assert_eq!(faces.len(), t.neighbours(&n.name).len(), "{}", n.name);
            let routes = t.routes(&BTreeSet::new());
            let want = routes.get(&n.name).map_or(0, Vec::len);
            let got = v
                .get("route")
                .and_then(|r| r.as_array())
                .map_or(0, Vec::len);
            assert_eq!(got, want, "{}", n.name);
        }
    }

    #[test]
    fn configs_lay_out_one_directory_per_node() {
        let t = tree();
        let dir = std::env::temp_dir().join(format!("amicn-topo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let layout = write_configs(&t, &dir, false).unwrap();
        for n in &t.nodes {
            assert!(layout.fwd_config(&n.name).exists());
            if n.role == Role::Meters {
                assert!(layout.meters_config(&n.name).exists());
            }
        }
        for role in ["kms", "mdms", "pricing", "dr", "operator"] {
            assert!(layout.role_config("head", role).exists(), "{role}");
        }
        // The ceremony keeps only the CA and the public index.
        assert!(dir.join("pki/ca").exists());
        assert!(!dir.join("pki/kms").exists());
        // A second run into the same directory is refused.
        assert!(write_configs(&t, &dir, false).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reserved_names_are_refused() {
        let mut t = tree();
        t.nodes[1].name = "kms".into();
        for l in &mut t.links {
            if l.a == "c1" {
                l.a = "kms".into();
            }
            if l.b == "c1" {
                l.b = "kms".into();
            }
        }
        let dir = std::env::temp_dir().join(format!("amicn-topo-r-{}", std::process::id()));
        let e = write_configs(&t, &dir, false).err().unwrap().to_string();
        assert!(e.contains("reserved"), "{e}");
    }
}
