//! The topology model of experiments and lab meshes: which nodes exist (one head-end, data
//! concentrators, nodes hosting simulated meters), how they are linked (delay, loss, bandwidth,
//! routing cost, scheduled failures), how long a run lasts and what its summary must show.
//!
//! A [`Topology`] is read from a TOML file ([`Topology::load`], [`Topology::from_toml`]), built by
//! a generator ([`generate`]: line, tree, grid, random geometric) or imported from a Mini-NDN
//! topology file ([`from_minindn_conf`]). Every constructor validates it
//! ([`Topology::validate`]), so a runner can rely on the rules below. From a topology follow the
//! static routes of every forwarder ([`Topology::routes`]), including after link failures, and
//! the IPv4 addresses of every link ([`Topology::addresses`]).
//!
//! # File format
//!
//! ```toml
//! name = "tree-10"                # used for namespace/run names; [a-z0-9-], <= 24 chars
//! utility = "/lab-utility"        # NDN prefix of the utility
//! projects = ["p1", "p2"]         # DR projects
//!
//! [defaults]                      # per-node settings, each overridable on a node
//! cs_capacity = 65536             # forwarder Content Store entries
//! strategy = "/localhost/nfd/strategy/best-route"
//! reading_interval = "2s"         # humantime-like: "500ms", "2s", "15m", "1h"
//!
//! [[node]]
//! name = "head"                   # [a-z0-9-], <= 12 chars, unique
//! role = "head-end"               # head-end | concentrator | meters
//! # services = ["kms", "mdms", "pricing", "dr"]   # head-end only; default all four
//!
//! [[node]]
//! name = "c1"
//! role = "concentrator"
//! cs_capacity = 1000
//!
//! [[node]]
//! name = "m1"
//! role = "meters"
//! meters = 10                     # simulated meters in this node (required, >= 1, for role meters)
//! projects = ["p1"]               # DR projects its meters are entitled to (must be in top-level projects)
//! reading_interval = "1s"
//!
//! [[link]]
//! a = "head"
//! b = "c1"
//! bandwidth_mbit = 100.0          # optional
//! delay_ms = 5.0                  # default 0
//! loss = 0.0                      # fraction in [0, 1), default 0
//! cost = 10                       # routing cost, default 1, >= 1
//! # down_at = "20s"               # optional: link fails this long after the run starts
//! # up_at = "40s"                 # optional: and comes back (requires down_at, > down_at)
//!
//! [[link]]
//! a = "c1"
//! b = "m1"
//!
//! [run]
//! duration = "30s"                # default "30s"
//!
//! [[assert]]
//! metric = "satisfaction"         # a metric name from the run summary
//! min = 0.99                      # min and/or max
//!
//! [[event]]                       # scenario steps, timed from the start of the measurement
//! at = "10s"
//! action = "leave"                # leave | revoke (a meter) | kill (a node, SIGKILL)
//! meter = 3
//! ```
//!
//! An `[[assert]]` names any metric of the run summary (`summary.json` lists them), among them
//! `satisfaction` (the MDMS's collection requests answered), `meters_heard_ratio`,
//! `failover_heard_ratio` (of the meters whose path to the head-end crossed a link that
//! failed, those heard while it was down), `events_ok`, `forwarder_satisfaction`,
//! `cache_hit_ratio` and `latency_p99_ms.<class>`.
//!
//! Unknown keys are errors (a misspelt key would otherwise be silently ignored). Durations are
//! strings: a decimal number (`2`, `1.5`) followed by `ms`, `s`, `m` or `h`
//! ([`parse_duration`], [`format_duration`]). Node-level `strategy`, `cs_capacity` and
//! `reading_interval` override `[defaults]`; `projects` on a node is allowed only on role
//! `meters`. [`Topology::to_toml`] writes the same format back (without the comments).
//!
//! # Validation rules
//!
//! [`Topology::validate`] checks, and each error names the node or link and says why:
//! the topology name is `[a-z0-9-]`, at most 24 characters; node names are `[a-z0-9-]`, at most 12
//! characters and unique (names never start with `-`, so they cannot be mistaken for command-line
//! options when used as namespace names); exactly one node is the head-end; `meters >= 1` exactly
//! on role `meters`; `services` only on the head-end, each one of [`SERVICES`], no repeats;
//! projects are non-empty, `/`-free and unique at the top level, and every node project is one of
//! them; links join two different known nodes, no (unordered) pair twice; `loss` in `[0, 1)`,
//! `delay_ms >= 0`, `1 <= cost <=` [`MAX_COST`], `bandwidth_mbit > 0` when set; `up_at` requires
//! `down_at` and is later than it; at most [`MAX_LINKS`] links; the graph of all links (ignoring
//! failures) is connected; the utility and every strategy parse as NDN names starting with `/`;
//! intervals and the run duration are positive; every assertion has a `min` or a `max`, finite,
//! and `min <= max`.
//!
//! # Routes
//!
//! The head-end announces the *upstream prefix* `<utility>/ami`, under which everything the
//! head-end services publish lives (KMS, prices, DR events, MDMS, certificates); every meters
//! node announces `<utility>/ami/meter/<id>` for each of its meters ([`Topology::meter_ids`]).
//! [`Topology::routes`] gives every node a route to every prefix announced by another node, over
//! its first hop on a least-cost path (ties by smaller link index), with per-meter routes omitted
//! wherever they would use the same next hop as the upstream route: a concentrator carries routes
//! only for the meters beneath it, the head-end one per meter.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use amicn_tlv::Name;
use petgraph::graph::{NodeIndex, UnGraph};
use petgraph::visit::{Bfs, EdgeRef};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// The services a head-end can run; a head-end whose file has no `services` key runs all four.
pub const SERVICES: [&str; 4] = ["kms", "mdms", "pricing", "dr"];

/// The most links a topology may have. Link `i` is addressed from the `/30` at
/// `10.0.0.0 + 4·i` ([`Topology::addresses`]), so 2^20 links use exactly `10.0.0.0/10`.
pub const MAX_LINKS: usize = 1 << 20;

/// The highest routing cost of one link; with at most [`MAX_LINKS`] links every path cost fits
/// in a `u64` with room to spare.
pub const MAX_COST: u64 = u32::MAX as u64;

const DEFAULT_STRATEGY: &str = "/localhost/nfd/strategy/best-route";
const MAX_TOPO_NAME: usize = 24;
const MAX_NODE_NAME: usize = 12;
const MAX_GEN_ROUTERS: u64 = 100_000;
const MAX_GEN_RANDOM: u32 = 5_000;
const MAX_GEN_METER_NODES: u32 = 100_000;

/// What can go wrong reading, validating, generating or importing a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopoError {
    /// An error in a topology file, with the file's path.
    #[error("{}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<TopoError>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The text is not TOML of the topology format (the message carries line and column).
    #[error("topology TOML: {0}")]
    Toml(Box<toml::de::Error>),
    /// The topology breaks a validation rule.
    #[error("{what}: {why}")]
    Invalid {
        /// The node, link, assertion or `topology` setting involved.
        what: String,
        /// Which rule it breaks.
        why: String,
    },
    /// A duration string could not be parsed.
    #[error("duration {input:?}: {why}")]
    Duration {
        /// The string.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A line of a Mini-NDN topology file could not be imported.
    #[error("Mini-NDN conf line {line}: {why}")]
    MiniNdnLine {
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A Mini-NDN topology file as a whole could not be imported.
    #[error("Mini-NDN import: {0}")]
    MiniNdn(String),
    /// A generator was given unusable parameters.
    #[error("cannot generate topology: {0}")]
    Generate(String),
}

fn invalid(what: impl Into<String>, why: impl Into<String>) -> TopoError {
    TopoError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

/// The role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The head-end: the utility's services ([`SERVICES`]) and its forwarder (`head-end`).
    HeadEnd,
    /// A data concentrator: a forwarder between the head-end and the meters (`concentrator`).
    Concentrator,
    /// A node hosting simulated meters behind its own forwarder (`meters`).
    Meters,
}

impl Role {
    /// The name of the role in topology files: `head-end`, `concentrator` or `meters`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HeadEnd => "head-end",
            Role::Concentrator => "concentrator",
            Role::Meters => "meters",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-node settings that every node has unless it overrides them (`[defaults]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    /// Forwarder Content Store capacity in entries (default 65536).
    pub cs_capacity: usize,
    /// Forwarding strategy name (default `/localhost/nfd/strategy/best-route`).
    pub strategy: String,
    /// Interval between a meter's readings (default 2 s).
    #[serde(with = "dur_str")]
    pub reading_interval: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cs_capacity: 65536,
            strategy: DEFAULT_STRATEGY.to_string(),
            reading_interval: Duration::from_secs(2),
        }
    }
}

/// One node (`[[node]]`): a network namespace with a forwarder and the roles of its [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NodeFile", into = "NodeFile")]
pub struct Node {
    /// Unique name: `[a-z0-9-]`, at most 12 characters.
    pub name: String,
    /// What the node does.
    pub role: Role,
    /// Simulated meters in this node: at least 1 on role `meters`, 0 elsewhere.
    pub meters: u32,
    /// Head-end services this node runs (head-end only; all of [`SERVICES`] when the file has
    /// no `services` key).
    pub services: Vec<String>,
    /// DR projects this node's meters are entitled to (role `meters` only).
    pub projects: Vec<String>,
    /// Content Store capacity, overriding [`Defaults::cs_capacity`].
    pub cs_capacity: Option<usize>,
    /// Strategy, overriding [`Defaults::strategy`].
    pub strategy: Option<String>,
    /// Reading interval, overriding [`Defaults::reading_interval`].
    pub reading_interval: Option<Duration>,
}

impl Node {
    fn new(name: impl Into<String>, role: Role) -> Node {
        Node {
            name: name.into(),
            role,
            meters: 0,
            services: if role == Role::HeadEnd {
                all_services()
            } else {
                Vec::new()
            },
            projects: Vec::new(),
            cs_capacity: None,
            strategy: None,
            reading_interval: None,
        }
    }

    /// The Content Store capacity of this node's forwarder.
    pub fn cs_capacity(&self, d: &Defaults) -> usize {
        self.cs_capacity.unwrap_or(d.cs_capacity)
    }

    /// The strategy of this node's forwarder.
    pub fn strategy<'a>(&'a self, d: &'a Defaults) -> &'a str {
        self.strategy.as_deref().unwrap_or(&d.strategy)
    }

    /// The reading interval of this node's meters.
    pub fn reading_interval(&self, d: &Defaults) -> Duration {
        self.reading_interval.unwrap_or(d.reading_interval)
    }

    /// Whether this node runs head-end service `s` (one of [`SERVICES`]).
    pub fn has_service(&self, s: &str) -> bool {
        self.services.iter().any(|x| x == s)
    }
}

fn all_services() -> Vec<String> {
    SERVICES.iter().map(|s| (*s).to_string()).collect()
}

/// A node as written in the file: `services` absent means "the default for the role".
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    name: String,
    role: Role,
    #[serde(default, skip_serializing_if = "is_zero")]
    meters: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    services: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cs_capacity: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur_str")]
    reading_interval: Option<Duration>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<NodeFile> for Node {
    fn from(f: NodeFile) -> Node {
        let services = match f.services {
            Some(s) => s,
            None if f.role == Role::HeadEnd => all_services(),
            None => Vec::new(),
        };
        Node {
            name: f.name,
            role: f.role,
            meters: f.meters,
            services,
            projects: f.projects,
            cs_capacity: f.cs_capacity,
            strategy: f.strategy,
            reading_interval: f.reading_interval,
        }
    }
}

impl From<Node> for NodeFile {
    fn from(n: Node) -> NodeFile {
        let default_services = (n.role == Role::HeadEnd && n.services == all_services())
            || (n.role != Role::HeadEnd && n.services.is_empty());
        NodeFile {
            name: n.name,
            role: n.role,
            meters: n.meters,
            services: (!default_services).then_some(n.services),
            projects: n.projects,
            cs_capacity: n.cs_capacity,
            strategy: n.strategy,
            reading_interval: n.reading_interval,
        }
    }
}

/// One link (`[[link]]`) between two nodes, with its emulated properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One end (a node name).
    pub a: String,
    /// The other end (a node name).
    pub b: String,
    /// Rate limit in Mbit/s (unlimited when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbit: Option<f64>,
    /// One-way delay in milliseconds (default 0).
    #[serde(default)]
    pub delay_ms: f64,
    /// Packet loss as a fraction in `[0, 1)` (default 0).
    #[serde(default)]
    pub loss: f64,
    /// Routing cost, `1..=`[`MAX_COST`] (default 1).
    #[serde(default = "one")]
    pub cost: u64,
    /// When the link fails, counted from the start of the run.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur_str")]
    pub down_at: Option<Duration>,
    /// When the failed link comes back (requires `down_at`, later than it).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur_str")]
    pub up_at: Option<Duration>,
}

fn one() -> u64 {
    1
}

impl Link {
    fn new(a: &str, b: &str, delay_ms: f64, bandwidth_mbit: Option<f64>) -> Link {
        Link {
            a: a.to_string(),
            b: b.to_string(),
            bandwidth_mbit,
            delay_ms,
            loss: 0.0,
            cost: 1,
            down_at: None,
            up_at: None,
        }
    }
}

/// A condition on a metric of the run summary (`[[assert]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// The metric's name in the run summary.
    pub metric: String,
    /// Lowest acceptable value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest acceptable value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Assertion {
    /// Whether `value` satisfies the bounds (NaN never does).
    pub fn check(&self, value: f64) -> bool {
        !value.is_nan()
            && self.min.is_none_or(|m| value >= m)
            && self.max.is_none_or(|m| value <= m)
    }
}

/// How a run goes (`[run]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// How long the run lasts (default 30 s).
    #[serde(with = "dur_str")]
    pub duration: Duration,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            duration: Duration::from_secs(30),
        }
    }
}

/// What a scenario step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Meter `meter` leaves the utility (the operator's signed command).
    Leave,
    /// Meter `meter` is revoked (the operator's signed command).
    Revoke,
    /// Every process of node `node` is killed (SIGKILL), as a power loss would.
    Kill,
}

/// One scenario step (`[[event]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, counted from the start of the measurement.
    #[serde(with = "dur_str")]
    pub at: Duration,
    /// What happens.
    pub action: Action,
    /// The meter of a `leave` or `revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<u32>,
    /// The node of a `kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A whole topology: the file format of the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Name for namespaces and runs: `[a-z0-9-]`, at most 24 characters.
    pub name: String,
    /// NDN prefix of the utility, e.g. `/lab-utility`.
    pub utility: String,
    /// The DR projects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Per-node settings unless overridden.
    #[serde(default)]
    pub defaults: Defaults,
    /// The nodes, in file order (`[[node]]`).
    #[serde(default, rename = "node", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// The links, in file order (`[[link]]`); a link's index is its position here.
    #[serde(default, rename = "link", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Run settings.
    #[serde(default)]
    pub run: RunSpec,
    /// Conditions on the run summary (`[[assert]]`).
    #[serde(default, rename = "assert", skip_serializing_if = "Vec::is_empty")]
    pub asserts: Vec<Assertion>,
    /// Scenario steps (`[[event]]`), in file order.
    #[serde(default, rename = "event", skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// A static route of one node's forwarder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The announced prefix, in canonical NDN URI form.
    pub prefix: String,
    /// Index of the outgoing link.
    pub link: usize,
    /// The node at the other end of that link.
    pub next_hop: String,
    /// Total cost of the path to the announcing node.
    pub cost: u64,
}

/// The IPv4 addresses of one link's two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkAddrs {
    /// Address of the end [`Link::a`].
    pub a: Ipv4Addr,
    /// Address of the end [`Link::b`].
    pub b: Ipv4Addr,
    /// Prefix length of the link's subnet (30).
    pub prefix_len: u8,
}

// A placeholder for `head_end` on a topology that never passed validation.
static NO_HEAD_END: Node = Node {
    name: String::new(),
    role: Role::HeadEnd,
    meters: 0,
    services: Vec::new(),
    projects: Vec::new(),
    cs_capacity: None,
    strategy: None,
    reading_interval: None,
};

/// One step of a least-cost path: out over `link` to node index `next`, `cost` in total.
#[derive(Debug, Clone, Copy)]
struct Hop {
    link: usize,
    next: usize,
    cost: u64,
}

type Graph = UnGraph<(), (usize, u64)>;

impl Topology {
    /// Parses a topology from TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Topology, TopoError> {
        let topo: Topology = toml::from_str(text).map_err(|e| TopoError::Toml(Box::new(e)))?;
        topo.validate()?;
        Ok(topo)
    }

    /// Reads, parses and validates a topology file; errors name the file.
    pub fn load(path: &Path) -> Result<Topology, TopoError> {
        let text = std::fs::read_to_string(path).map_err(|error| TopoError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Topology::from_toml(&text).map_err(|e| TopoError::File {
            path: path.to_path_buf(),
            error: Box::new(e),
        })
    }

    /// The topology as TOML, in the file format; [`Topology::from_toml`] reads it back equal.
    pub fn to_toml(&self) -> String {
        // Serialization of these types cannot fail (no maps with non-string keys, no `None`
        // inside arrays); should it ever, the text says why instead of panicking.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize topology: {e}\n"))
    }

    /// Checks every rule of the module documentation; the error names the node or link
    /// involved and why it is wrong.
    pub fn validate(&self) -> Result<(), TopoError> {
        check_ident(&self.name, MAX_TOPO_NAME)
            .map_err(|why| invalid("topology", format!("name {:?} {why}", self.name)))?;
        check_ndn_prefix(&self.utility)
            .map_err(|why| invalid("topology", format!("utility {:?} {why}", self.utility)))?;
        let mut projects = BTreeSet::new();
        for p in &self.projects {
            if p.is_empty() || p.contains('/') || p.trim() != p {
                return Err(invalid(
                    "topology",
                    format!("project {p:?} must be non-empty, without '/' or outer spaces"),
                ));
            }
            if !projects.insert(p.as_str()) {
                return Err(invalid(
                    "topology",
                    format!("project {p:?} is listed twice"),
                ));
            }
        }
        check_ndn_prefix(&self.defaults.strategy).map_err(|why| {
            invalid(
                "[defaults]",
                format!("strategy {:?} {why}", self.defaults.strategy),
            )
        })?;
        if self.defaults.reading_interval.is_zero() {
            return Err(invalid("[defaults]", "reading_interval must be positive"));
        }
        if self.run.duration.is_zero() {
            return Err(invalid("[run]", "duration must be positive"));
        }
        self.validate_nodes(&projects)?;
        self.validate_links()?;
        self.validate_connected()?;
        self.validate_events()?;
        for (i, a) in self.asserts.iter().enumerate() {
            let what = format!("assertion {i} ({:?})", a.metric);
            if a.metric.trim().is_empty() {
                return Err(invalid(what, "metric is empty"));
            }
            if a.min.is_none() && a.max.is_none() {
                return Err(invalid(what, "needs min, max or both"));
            }
            if a.min.is_some_and(|v| !v.is_finite()) || a.max.is_some_and(|v| !v.is_finite()) {
                return Err(invalid(what, "min and max must be finite numbers"));
            }
            if let (Some(lo), Some(hi)) = (a.min, a.max)
                && lo > hi
            {
                return Err(invalid(what, format!("min {lo} is above max {hi}")));
            }
        }
        Ok(())
    }

    fn validate_nodes(&self, projects: &BTreeSet<&str>) -> Result<(), TopoError> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut head: Option<&str> = None;
        let mut total: u32 = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let what = format!("node {:?}", n.name);
            check_ident(&n.name, MAX_NODE_NAME)
                .map_err(|why| invalid(&what, format!("name {why}")))?;
            if let Some(first) = seen.insert(&n.name, i) {
                return Err(invalid(
                    what,
                    format!("name used twice (nodes {first} and {i})"),
                ));
            }
            if n.role == Role::HeadEnd {
                if let Some(h) = head {
                    return Err(invalid(
                        what,
                        format!("a second head-end; {h:?} is already the head-end"),
                    ));
                }
                head = Some(&n.name);
            }
            match (n.role, n.meters) {
                (Role::Meters, 0) => {
                    return Err(invalid(what, "role meters needs meters >= 1"));
                }
                (Role::Meters, m) => {
                    total = total.checked_add(m).ok_or_else(|| {
                        invalid(&what, "more than 4294967295 meters in the topology")
                    })?;
                }
                (role, m) if m > 0 => {
                    return Err(invalid(
                        what,
                        format!("meters = {m} on a {role}; only role meters has meters"),
                    ));
                }
                _ => {}
            }
            if !n.services.is_empty() && n.role != Role::HeadEnd {
                return Err(invalid(
                    what,
                    format!("services on a {}; only the head-end runs services", n.role),
                ));
            }
            let mut services = BTreeSet::new();
            for s in &n.services {
                if !SERVICES.contains(&s.as_str()) {
                    return Err(invalid(
                        what,
                        format!("unknown service {s:?} (known: {})", SERVICES.join(", ")),
                    ));
                }
                if !services.insert(s) {
                    return Err(invalid(what, format!("service {s:?} listed twice")));
                }
            }
            if !n.projects.is_empty() && n.role != Role::Meters {
                return Err(invalid(
                    what,
                    format!("projects on a {}; only role meters has projects", n.role),
                ));
            }
            let mut mine = BTreeSet::new();
            for p in &n.projects {
                if !projects.contains(p.as_str()) {
                    return Err(invalid(
                        what,
                        format!("project {p:?} is not in the top-level projects"),
                    ));
                }
                if !mine.insert(p) {
                    return Err(invalid(what, format!("project {p:?} listed twice")));
                }
            }
            if let Some(s) = &n.strategy {
                check_ndn_prefix(s)
                    .map_err(|why| invalid(&what, format!("strategy {s:?} {why}")))?;
            }
            if n.reading_interval.is_some_and(|d| d.is_zero()) {
                return Err(invalid(what, "reading_interval must be positive"));
            }
        }
        if head.is_none() {
            return Err(invalid("topology", "no node has role \"head-end\""));
        }
        Ok(())
    }

    fn validate_links(&self) -> Result<(), TopoError> {
        if self.links.len() > MAX_LINKS {
            return Err(invalid(
                "topology",
                format!(
                    "{} links; at most {MAX_LINKS} can be addressed",
                    self.links.len()
                ),
            ));
        }
        let mut pairs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, l) in self.links.iter().enumerate() {
            let what = format!("link {i} ({} - {})", l.a, l.b);
            for end in [&l.a, &l.b] {
                if self.node(end).is_none() {
                    return Err(invalid(what, format!("unknown node {end:?}")));
                }
            }
            if l.a == l.b {
                return Err(invalid(what, "links a node to itself"));
            }
            let key = if l.a < l.b {
                (l.a.as_str(), l.b.as_str())
            } else {
                (l.b.as_str(), l.a.as_str())
            };
            if let Some(first) = pairs.insert(key, i) {
                return Err(invalid(what, format!("the same two nodes as link {first}")));
            }
            if !(l.loss.is_finite() && (0.0..1.0).contains(&l.loss)) {
                return Err(invalid(
                    what,
                    format!("loss {} is not a fraction in [0, 1)", l.loss),
                ));
            }
            if !(l.delay_ms.is_finite() && l.delay_ms >= 0.0) {
                return Err(invalid(
                    what,
                    format!("delay_ms {} must be >= 0", l.delay_ms),
                ));
            }
            if !(1..=MAX_COST).contains(&l.cost) {
                return Err(invalid(
                    what,
                    format!("cost {} is not in 1..={MAX_COST}", l.cost),
                ));
            }
            if let Some(bw) = l.bandwidth_mbit
                && !(bw.is_finite() && bw > 0.0)
            {
                return Err(invalid(what, format!("bandwidth_mbit {bw} must be > 0")));
            }
            match (l.down_at, l.up_at) {
                (None, Some(_)) => return Err(invalid(what, "up_at without down_at")),
                (Some(down), Some(up)) if up <= down => {
                    return Err(invalid(
                        what,
                        format!(
                            "up_at {} is not after down_at {}",
                            format_duration(up),
                            format_duration(down)
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_events(&self) -> Result<(), TopoError> {
        let meters = self.total_meters();
        for (i, e) in self.events.iter().enumerate() {
            let what = format!("event {i} ({:?} at {})", e.action, format_duration(e.at));
            match e.action {
                Action::Leave | Action::Revoke => match e.meter {
                    Some(m) if (1..=meters).contains(&m) => {}
                    Some(m) => {
                        return Err(invalid(what, format!("meter {m} is not in 1..={meters}")));
                    }
                    None => return Err(invalid(what, "needs `meter`")),
                },
                Action::Kill => match e.node.as_deref().map(|n| self.node(n)) {
                    Some(Some(n)) if n.role == Role::HeadEnd => {
                        return Err(invalid(what, "the head-end cannot be killed"));
                    }
                    Some(Some(_)) => {}
                    Some(None) => return Err(invalid(what, "unknown node")),
                    None => return Err(invalid(what, "needs `node`")),
                },
            }
            if e.at >= self.run.duration {
                return Err(invalid(what, "is not before the end of the run"));
            }
        }
        Ok(())
    }

    fn validate_connected(&self) -> Result<(), TopoError> {
        let Some(head) = self.head_index() else {
            return Ok(());
        };
        let g = self.graph(&BTreeSet::new());
        let mut reached = vec![false; self.nodes.len()];
        let mut bfs = Bfs::new(&g, NodeIndex::new(head));
        while let Some(n) = bfs.next(&g) {
            if let Some(r) = reached.get_mut(n.index()) {
                *r = true;
            }
        }
        let cut: Vec<&str> = self
            .nodes
            .iter()
            .zip(&reached)
            .filter(|(_, r)| !**r)
            .map(|(n, _)| n.name.as_str())
            .collect();
        if let Some(first) = cut.first() {
            let more = match cut.len() {
                1 => String::new(),
                k => format!(" (and {} more)", k - 1),
            };
            return Err(invalid(
                "topology",
                format!(
                    "not connected: node {first:?}{more} cannot be reached from the head-end {:?}",
                    self.head_end().name
                ),
            ));
        }
        Ok(())
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn head_index(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.role == Role::HeadEnd)
    }

    /// The head-end. A validated topology has exactly one; on one that never passed
    /// [`Topology::validate`] and has none, this is a placeholder node with an empty name.
    pub fn head_end(&self) -> &Node {
        self.head_index()
            .and_then(|i| self.nodes.get(i))
            .unwrap_or(&NO_HEAD_END)
    }

    /// The meter ids of every meters node: meters nodes in file order get consecutive ids
    /// starting at 1 (`m1` with 3 meters gets 1..=3, the next meters node 4.. and so on).
    pub fn meter_ids(&self) -> BTreeMap<String, Vec<u32>> {
        let mut next: u32 = 1;
        let mut out = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.role == Role::Meters) {
            let end = next.saturating_add(n.meters);
            out.insert(n.name.clone(), (next..end).collect());
            next = end;
        }
        out
    }

    /// The number of meters in all meters nodes.
    pub fn total_meters(&self) -> u32 {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Meters)
            .fold(0u32, |acc, n| acc.saturating_add(n.meters))
    }

    /// The links of node `name` (including failing ones), in link order: (link index, the node
    /// at the other end).
    pub fn neighbours(&self, name: &str) -> Vec<(usize, &str)> {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                if l.a == name {
                    Some((i, l.b.as_str()))
                } else if l.b == name {
                    Some((i, l.a.as_str()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// The upstream prefix `<utility>/ami` in canonical NDN URI form, announced by the
    /// head-end.
    pub fn upstream_prefix(&self) -> String {
        let utility = match Name::from_uri(&self.utility) {
            Ok(n) if !n.is_empty() => n.to_string(),
            _ => self.utility.trim_end_matches('/').to_string(),
        };
        format!("{utility}/ami")
    }

    /// The static routes of every node (every node has an entry, possibly empty), each list
    /// sorted by prefix, with the links in `down` treated as failed. See the module
    /// documentation for which prefixes are announced and when per-meter routes are omitted;
    /// destinations unreachable over the remaining links get no route.
    pub fn routes(&self, down: &BTreeSet<usize>) -> BTreeMap<String, Vec<Route>> {
        let g = self.graph(down);
        let upstream = self.upstream_prefix();
        let mut out: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        let up_hops = match self.head_index() {
            Some(h) => first_hops(&g, h),
            None => vec![None; self.nodes.len()],
        };
        let ids = self.meter_ids();
        let mut per_node: Vec<Vec<Route>> = vec![Vec::new(); self.nodes.len()];
        for (x, hop) in up_hops.iter().enumerate() {
            if let (Some(h), Some(routes)) = (hop, per_node.get_mut(x)) {
                routes.push(self.route(upstream.clone(), h));
            }
        }
        for (y, dest) in self.nodes.iter().enumerate() {
            if dest.role != Role::Meters {
                continue;
            }
            let Some(dest_ids) = ids.get(&dest.name) else {
                continue;
            };
            let hops = first_hops(&g, y);
            for (x, hop) in hops.iter().enumerate() {
                let Some(h) = hop else { continue };
                let via_upstream = up_hops
                    .get(x)
                    .copied()
                    .flatten()
                    .is_some_and(|u| u.link == h.link);
                if via_upstream {
                    continue;
                }
                if let Some(routes) = per_node.get_mut(x) {
                    for id in dest_ids {
                        routes.push(self.route(format!("{upstream}/meter/{id}"), h));
                    }
                }
            }
        }
        for (n, mut routes) in self.nodes.iter().zip(per_node) {
            routes.sort_by(|a, b| a.prefix.cmp(&b.prefix).then(a.link.cmp(&b.link)));
            out.entry(n.name.clone()).or_default().extend(routes);
        }
        out
    }

    fn route(&self, prefix: String, h: &Hop) -> Route {
        Route {
            prefix,
            link: h.link,
            next_hop: self
                .nodes
                .get(h.next)
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            cost: h.cost,
        }
    }

    /// The addresses of every link, one per link at the same index: link `i` gets the `/30` at
    /// `10.0.0.0 + 4·i`, end `a` its `.1` and end `b` its `.2`. Distinct for up to
    /// [`MAX_LINKS`] links (all inside `10.0.0.0/10`); [`Topology::validate`] rejects more.
    pub fn addresses(&self) -> Vec<LinkAddrs> {
        (0..self.links.len())
            .map(|i| {
                let base = 0x0A00_0000u32.wrapping_add((i as u32).wrapping_mul(4));
                LinkAddrs {
                    a: Ipv4Addr::from(base | 1),
                    b: Ipv4Addr::from(base | 2),
                    prefix_len: 30,
                }
            })
            .collect()
    }

    /// The graph of all nodes (node index = file index) and the links not in `down`, each edge
    /// weighted with (link index, cost).
    fn graph(&self, down: &BTreeSet<usize>) -> Graph {
        let mut g = Graph::with_capacity(self.nodes.len(), self.links.len());
        for _ in &self.nodes {
            g.add_node(());
        }
        for (i, l) in self.links.iter().enumerate() {
            if down.contains(&i) {
                continue;
            }
            if let (Some(a), Some(b)) = (self.index_of(&l.a), self.index_of(&l.b)) {
                g.add_edge(
                    NodeIndex::new(a),
                    NodeIndex::new(b),
                    (i, l.cost.clamp(1, MAX_COST)),
                );
            }
        }
        g
    }
}

/// For every node, its first hop towards `dest` on a least-cost path (ties by smaller link
/// index), or `None` for `dest` itself and for nodes that cannot reach it.
fn first_hops(g: &Graph, dest: usize) -> Vec<Option<Hop>> {
    let dist = petgraph::algo::dijkstra(g, NodeIndex::new(dest), None, |e| e.weight().1);
    (0..g.node_count())
        .map(|x| {
            if x == dest {
                return None;
            }
            let xi = NodeIndex::new(x);
            let dx = *dist.get(&xi)?;
            g.edges(xi)
                .filter_map(|e| {
                    let other = if e.source() == xi {
                        e.target()
                    } else {
                        e.source()
                    };
                    let (link, cost) = *e.weight();
                    let dy = *dist.get(&other)?;
                    (dy.checked_add(cost) == Some(dx)).then_some(Hop {
                        link,
                        next: other.index(),
                        cost: dx,
                    })
                })
                .min_by_key(|h| h.link)
        })
        .collect()
}

/// `Ok` when `s` is `[a-z0-9-]`, 1..=`max` characters, not starting with `-`; else why not.
fn check_ident(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!(
            "is {} characters long; at most {max} are allowed",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("contains {c:?}; only a-z, 0-9 and '-' are allowed"));
    }
    if s.starts_with('-') {
        return Err("starts with '-'".into());
    }
    Ok(())
}

/// `Ok` when `s` is an NDN name URI starting with `/` with at least one component.
fn check_ndn_prefix(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("must be an NDN name starting with '/'".into());
    }
    match Name::from_uri(s) {
        Ok(n) if n.is_empty() => Err("must have at least one name component".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("is not an NDN name: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Durations

/// Parses a duration: a decimal number (`500`, `1.5`, `.5`) followed by `ms`, `s`, `m` or `h`,
/// e.g. `"500ms"`, `"2s"`, `"1.5m"`, `"1h"`. Precision is one nanosecond (further digits are
/// dropped).
pub fn parse_duration(s: &str) -> Result<Duration, TopoError> {
    let err = |why: &str| TopoError::Duration {
        input: s.to_string(),
        why: why.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err("must start with a number, e.g. \"2s\""));
    }
    let unit_ns: u128 = match unit.trim_start() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(err("missing unit (ms, s, m or h)")),
        _ => return Err(err("unknown unit; use ms, s, m or h")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') {
        return Err(err("more than one decimal point"));
    }
    if int.is_empty() && frac.is_empty() {
        return Err(err("must start with a number, e.g. \"2s\""));
    }
    let too_large = || err("too large");
    let mut ns: u128 = 0;
    for d in int.bytes() {
        ns = ns
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(d - b'0')))
            .filter(|n| *n <= u128::from(u64::MAX))
            .ok_or_else(too_large)?;
    }
    ns = ns.checked_mul(unit_ns).ok_or_else(too_large)?;
    // 18 fractional digits are far below a nanosecond even for hours, and keep the product
    // below 2^128.
    let frac = frac.get(..frac.len().min(18)).unwrap_or(frac);
    if !frac.is_empty() {
        let mut num: u128 = 0;
        for d in frac.bytes() {
            num = num * 10 + u128::from(d - b'0');
        }
        let den = 10u128.pow(frac.len() as u32);
        ns = ns.checked_add(num * unit_ns / den).ok_or_else(too_large)?;
    }
    let secs = u64::try_from(ns / 1_000_000_000).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (ns % 1_000_000_000) as u32))
}

/// Formats a duration in the largest unit that shows it exactly (`"1h"`, `"15m"`, `"90s"`,
/// `"500ms"`, `"0.25ms"`); [`parse_duration`] reads it back equal.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;
    const M: u128 = 60 * S;
    const H: u128 = 60 * M;
    if ns == 0 {
        "0s".to_string()
    } else if ns.is_multiple_of(H) {
        format!("{}h", ns / H)
    } else if ns.is_multiple_of(M) {
        format!("{}m", ns / M)
    } else if ns.is_multiple_of(S) {
        format!("{}s", ns / S)
    } else if ns.is_multiple_of(MS) {
        format!("{}ms", ns / MS)
    } else {
        let frac = format!("{:06}", ns % MS);
        format!("{}.{}ms", ns / MS, frac.trim_end_matches('0'))
    }
}

mod dur_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(D::Error::custom)
    }
}

mod opt_dur_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_duration(&s)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generators

/// The router (concentrator) layout of a generated topology.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `head - c1 - c2 - … - cN`; meter nodes hang off `cN`.
    Line {
        /// Number of concentrators, at least 1.
        routers: u32,
    },
    /// A complete `degree`-ary tree of concentrators, `depth` levels below the head-end (depth 1
    /// = `degree` concentrators under it); meter nodes hang off the leaves.
    Tree {
        /// Children per node, at least 1.
        degree: u32,
        /// Levels of concentrators, at least 1.
        depth: u32,
    },
    /// A `rows`×`cols` grid of concentrators (`c1` at (0, 0), row by row), the head-end
    /// attached to `c1`; meter nodes hang off the routers with the fewest neighbours.
    Grid {
        /// Rows, at least 1.
        rows: u32,
        /// Columns, at least 1.
        cols: u32,
    },
    /// `routers` points uniform in the unit square, linked when at most `radius` apart, with
    /// the components then joined by their closest pairs; the head-end attached to the router
    /// nearest the centre; meter nodes hang off the routers with the fewest neighbours.
    RandomGeometric {
        /// Number of concentrators, 1..=5000.
        routers: u32,
        /// Link radius (unit square), finite and >= 0.
        radius: f64,
        /// Seed of the point positions (the same seed gives the same topology).
        seed: u64,
    },
}

/// Parameters of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    /// The router layout.
    pub shape: Shape,
    /// Number of meters nodes `m1..mK`, attached round-robin to the edge routers.
    pub meter_nodes: u32,
    /// Meters in each meters node (at least 1 when `meter_nodes > 0`).
    pub meters_per_node: u32,
    /// Topology name.
    pub name: String,
    /// Utility prefix.
    pub utility: String,
    /// DR projects; meters node `m(j+1)` is entitled to `projects[j % len]`.
    pub projects: Vec<String>,
    /// Delay of every link.
    pub delay_ms: f64,
    /// Bandwidth of every link.
    pub bandwidth_mbit: Option<f64>,
    /// Reserved for randomness outside the shape; no generator uses it yet (the random
    /// geometric layout is seeded by the `seed` of [`Shape::RandomGeometric`]).
    pub seed: u64,
}

/// The routers of a shape: how many, which pairs are linked (router indices), which routers
/// the head-end attaches to and which are the edge routers that get the meter nodes.
struct Layout {
    routers: usize,
    links: Vec<(usize, usize)>,
    head_links: Vec<usize>,
    edge: Vec<usize>,
}

impl Layout {
    /// Edge routers = those with the fewest links (head-end links included), in router order.
    fn with_fewest_neighbours(mut self) -> Layout {
        let mut degree = vec![0usize; self.routers];
        for &(a, b) in &self.links {
            for r in [a, b] {
                if let Some(d) = degree.get_mut(r) {
                    *d += 1;
                }
            }
        }
        for &r in &self.head_links {
            if let Some(d) = degree.get_mut(r) {
                *d += 1;
            }
        }
        let min = degree.iter().copied().min().unwrap_or(0);
        self.edge = (0..self.routers)
            .filter(|r| degree.get(*r) == Some(&min))
            .collect();
        self
    }
}

/// Builds a topology of the given shape: the head-end `head`, concentrators `c1..`, meters
/// nodes `m1..` attached round-robin to the edge routers (the leaves of a tree, the last
/// router of a line, the routers with the fewest neighbours in a grid or random layout, in
/// router order). Every link costs 1 and has the spec's delay and bandwidth. The result is
/// validated.
pub fn generate(spec: &GenSpec) -> Result<Topology, TopoError> {
    let gen_err = |s: String| TopoError::Generate(s);
    if spec.meter_nodes > MAX_GEN_METER_NODES {
        return Err(gen_err(format!(
            "{} meter nodes; at most {MAX_GEN_METER_NODES}",
            spec.meter_nodes
        )));
    }
    if spec.meter_nodes > 0 && spec.meters_per_node == 0 {
        return Err(gen_err("meters_per_node must be at least 1".into()));
    }
    let layout = match spec.shape {
        Shape::Line { routers } => {
            check_routers(u64::from(routers))?;
            let n = routers as usize;
            Layout {
                routers: n,
                links: (1..n).map(|i| (i - 1, i)).collect(),
                head_links: vec![0],
                edge: vec![n - 1],
            }
        }
        Shape::Tree { degree, depth } => tree_layout(degree, depth)?,
        Shape::Grid { rows, cols } => {
            check_routers(u64::from(rows) * u64::from(cols))?;
            let (rows, cols) = (rows as usize, cols as usize);
            let mut links = Vec::new();
            for r in 0..rows {
                for c in 0..cols {
                    let i = r * cols + c;
                    if c + 1 < cols {
                        links.push((i, i + 1));
                    }
                    if r + 1 < rows {
                        links.push((i, i + cols));
                    }
                }
            }
            Layout {
                routers: rows * cols,
                links,
                head_links: vec![0],
                edge: Vec::new(),
            }
            .with_fewest_neighbours()
        }
        Shape::RandomGeometric {
            routers,
            radius,
            seed,
        } => random_layout(routers, radius, seed)?,
    };

    let mut nodes = vec![Node::new("head", Role::HeadEnd)];
    nodes.extend((1..=layout.routers).map(|i| Node::new(format!("c{i}"), Role::Concentrator)));
    let router = |i: usize| format!("c{}", i + 1);
    let link = |a: &str, b: &str| Link::new(a, b, spec.delay_ms, spec.bandwidth_mbit);
    let mut links: Vec<Link> = layout
        .head_links
        .iter()
        .map(|&r| link("head", &router(r)))
        .collect();
    links.extend(
        layout
            .links
            .iter()
            .map(|&(a, b)| link(&router(a), &router(b))),
    );
    if spec.meter_nodes > 0 && layout.edge.is_empty() {
        return Err(gen_err(
            "the shape has no router to attach meters to".into(),
        ));
    }
    for j in 0..spec.meter_nodes as usize {
        let mut m = Node::new(format!("m{}", j + 1), Role::Meters);
        m.meters = spec.meters_per_node;
        if !spec.projects.is_empty()
            && let Some(p) = spec.projects.get(j % spec.projects.len())
        {
            m.projects = vec![p.clone()];
        }
        if let Some(&r) = layout.edge.get(j % layout.edge.len().max(1)) {
            links.push(link(&router(r), &m.name));
        }
        nodes.push(m);
    }
    let topo = Topology {
        name: spec.name.clone(),
        utility: spec.utility.clone(),
        projects: spec.projects.clone(),
        defaults: Defaults::default(),
        nodes,
        links,
        run: RunSpec::default(),
        asserts: Vec::new(),
        events: Vec::new(),
    };
    topo.validate()?;
    Ok(topo)
}

fn check_routers(n: u64) -> Result<(), TopoError> {
    if n == 0 {
        return Err(TopoError::Generate(
            "the shape has no routers; it needs at least 1".into(),
        ));
    }
    if n > MAX_GEN_ROUTERS {
        return Err(TopoError::Generate(format!(
            "{n} routers; at most {MAX_GEN_ROUTERS}"
        )));
    }
    Ok(())
}

fn tree_layout(degree: u32, depth: u32) -> Result<Layout, TopoError> {
    if degree == 0 || depth == 0 {
        return Err(TopoError::Generate(
            "a tree needs degree >= 1 and depth >= 1".into(),
        ));
    }
    // Routers level by level: degree + degree^2 + … + degree^depth.
    let mut total: u64 = 0;
    let mut level: u64 = 1;
    for _ in 0..depth {
        level = level.saturating_mul(u64::from(degree));
        total = total.saturating_add(level);
        if total > MAX_GEN_ROUTERS {
            break;
        }
    }
    check_routers(total)?;
    let (n, d, leaves) = (total as usize, degree as usize, level as usize);
    Ok(Layout {
        routers: n,
        // Router i (0-based, breadth-first) below the first level hangs off (i - d) / d.
        links: (d..n).map(|i| ((i - d) / d, i)).collect(),
        head_links: (0..d).collect(),
        edge: (n - leaves..n).collect(),
    })
}

fn random_layout(routers: u32, radius: f64, seed: u64) -> Result<Layout, TopoError> {
    check_routers(u64::from(routers))?;
    if routers > MAX_GEN_RANDOM {
        return Err(TopoError::Generate(format!(
            "{routers} routers; a random geometric layout has at most {MAX_GEN_RANDOM}"
        )));
    }
    if !(radius.is_finite() && radius >= 0.0) {
        return Err(TopoError::Generate(format!(
            "radius {radius} must be finite and >= 0"
        )));
    }
    let n = routers as usize;
    // A generator with a fixed, documented algorithm (not StdRng, which may change between
    // rand releases), so a seed gives the same layout everywhere.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let pts: Vec<(f64, f64)> = (0..n)
        .map(|_| (rng.random::<f64>(), rng.random::<f64>()))
        .collect();
    let at = |i: usize| pts.get(i).copied().unwrap_or((0.0, 0.0));
    let dist = |i: usize, j: usize| {
        let ((x1, y1), (x2, y2)) = (at(i), at(j));
        (x1 - x2).hypot(y1 - y2)
    };
    let mut uf = UnionFind::new(n);
    let mut links = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            if dist(i, j) <= radius {
                links.push((i, j));
                uf.union(i, j);
            }
        }
    }
    // Join the components: grow a set from router 0's component, each time adding the
    // component of the outside router closest to the set, linked over that closest pair.
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        members.entry(uf.find(i)).or_default().push(i);
    }
    let mut in_set = vec![false; n];
    let mut best: Vec<(f64, usize)> = vec![(f64::INFINITY, 0); n];
    let add_component = |root: usize, in_set: &mut [bool], best: &mut [(f64, usize)]| {
        for &m in members.get(&root).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(s) = in_set.get_mut(m) {
                *s = true;
            }
        }
        for &m in members.get(&root).map(Vec::as_slice).unwrap_or(&[]) {
            for (p, b) in best.iter_mut().enumerate() {
                let d = dist(m, p);
                if !in_set.get(p).copied().unwrap_or(true) && d < b.0 {
                    *b = (d, m);
                }
            }
        }
    };
    add_component(uf.find(0), &mut in_set, &mut best);
    loop {
        let next = (0..n)
            .filter(|p| !in_set.get(*p).copied().unwrap_or(true))
            .min_by(|p, q| {
                let (bp, bq) = (best.get(*p), best.get(*q));
                let dp = bp.map_or(f64::INFINITY, |b| b.0);
                let dq = bq.map_or(f64::INFINITY, |b| b.0);
                dp.total_cmp(&dq).then(p.cmp(q))
            });
        let Some(p) = next else { break };
        let from = best.get(p).map_or(0, |b| b.1);
        links.push((from.min(p), from.max(p)));
        add_component(uf.find(p), &mut in_set, &mut best);
    }
    let centre = (0..n)
        .min_by(|p, q| {
            let d = |i: usize| {
                let (x, y) = at(i);
                (x - 0.5).hypot(y - 0.5)
            };
            d(*p).total_cmp(&d(*q)).then(p.cmp(q))
        })
        .unwrap_or(0);
    Ok(Layout {
        routers: n,
        links,
        head_links: vec![centre],
        edge: Vec::new(),
    }
    .with_fewest_neighbours())
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind((0..n).collect())
    }

    fn find(&mut self, mut i: usize) -> usize {
        while let Some(&p) = self.0.get(i) {
            if p == i {
                break;
            }
            let gp = self.0.get(p).copied().unwrap_or(p);
            if let Some(slot) = self.0.get_mut(i) {
                *slot = gp;
            }
            i = gp;
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb
            && let Some(slot) = self.0.get_mut(ra.max(rb))
        {
            *slot = ra.min(rb);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mini-NDN import

/// Options of [`from_minindn_conf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniNdnImport {
    /// Topology name.
    pub name: String,
    /// Utility prefix.
    pub utility: String,
    /// The Mini-NDN node that becomes the head-end (its name in the file, or its mapped name);
    /// the first node listed when `None`.
    pub head: Option<String>,
    /// Meters in each added meters node; 0 adds no meters nodes.
    pub meters_per_node: u32,
}

struct ConfLink {
    line: usize,
    a: String,
    b: String,
    delay_ms: f64,
    bandwidth_mbit: Option<f64>,
    loss: f64,
}

/// Imports a Mini-NDN topology file (`[nodes]` lines `name: …`, `[links]` lines
/// `a:b delay=10ms bw=100 loss=1`, with loss in percent; other keys, other sections, `#`
/// comments and blank lines are ignored). Every node becomes a concentrator except
/// `opts.head` (or the first node listed), which becomes the head-end; with
/// `meters_per_node > 0` a meters node `m-<router>` is attached to every concentrator with a
/// single link (or to every concentrator when none has a single link). Names are lowercased,
/// other characters than `[a-z0-9-]` become `-`, cut to 12 characters and made unique with a
/// number. The result is validated; errors about a line carry its number.
pub fn from_minindn_conf(text: &str, opts: &MiniNdnImport) -> Result<Topology, TopoError> {
    enum Section {
        None,
        Nodes,
        Links,
        Other,
    }
    let line_err = |line: usize, why: String| TopoError::MiniNdnLine { line, why };
    let mut section = Section::None;
    let mut originals: Vec<(String, usize)> = Vec::new();
    let mut conf_links: Vec<ConfLink> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        if let Some(rest) = l.strip_prefix('[') {
            let Some(sec) = rest.strip_suffix(']') else {
                return Err(line_err(line, format!("malformed section header {l:?}")));
            };
            section = match sec.trim().to_ascii_lowercase().as_str() {
                "nodes" => Section::Nodes,
                "links" => Section::Links,
                _ => Section::Other,
            };
            continue;
        }
        match section {
            Section::None => {
                return Err(line_err(
                    line,
                    "text before the first section; expected [nodes]".into(),
                ));
            }
            Section::Other => {}
            Section::Nodes => {
                let name = l.split(':').next().unwrap_or("").trim();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(line_err(line, format!("expected `name: …`, found {l:?}")));
                }
                if let Some((_, first)) = originals.iter().find(|(n, _)| n == name) {
                    return Err(line_err(
                        line,
                        format!("node {name:?} is already listed on line {first}"),
                    ));
                }
                originals.push((name.to_string(), line));
            }
            Section::Links => conf_links.push(parse_conf_link(line, l)?),
        }
    }
    if originals.is_empty() {
        return Err(TopoError::MiniNdn("no nodes in a [nodes] section".into()));
    }

    // Names.
    let mut taken = BTreeSet::new();
    let mapped: Vec<String> = originals
        .iter()
        .map(|(orig, _)| unique_name(&sanitize_name(orig), &mut taken))
        .collect();
    let head = match &opts.head {
        None => 0,
        Some(h) => originals
            .iter()
            .position(|(o, _)| o == h)
            .or_else(|| mapped.iter().position(|m| m == h))
            .ok_or_else(|| TopoError::MiniNdn(format!("head node {h:?} is not in [nodes]")))?,
    };
    let lookup = |line: usize, name: &str| {
        originals
            .iter()
            .position(|(o, _)| o == name)
            .ok_or_else(|| {
                line_err(
                    line,
                    format!("link to unknown node {name:?} (not in [nodes])"),
                )
            })
    };
    let mut nodes: Vec<Node> = mapped
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let role = if i == head {
                Role::HeadEnd
            } else {
                Role::Concentrator
            };
            Node::new(name.clone(), role)
        })
        .collect();
    let mut links = Vec::new();
    let mut degree = vec![0usize; nodes.len()];
    let mut pairs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for cl in &conf_links {
        let (a, b) = (lookup(cl.line, &cl.a)?, lookup(cl.line, &cl.b)?);
        if a == b {
            return Err(line_err(cl.line, format!("link from {:?} to itself", cl.a)));
        }
        if let Some(first) = pairs.insert((a.min(b), a.max(b)), cl.line) {
            return Err(line_err(
                cl.line,
                format!(
                    "{:?} and {:?} are already linked on line {first}",
                    cl.a, cl.b
                ),
            ));
        }
        for e in [a, b] {
            if let Some(d) = degree.get_mut(e) {
                *d += 1;
            }
        }
        let name = |i: usize| mapped.get(i).cloned().unwrap_or_default();
        links.push(Link {
            loss: cl.loss,
            ..Link::new(&name(a), &name(b), cl.delay_ms, cl.bandwidth_mbit)
        });
    }
    if opts.meters_per_node > 0 {
        let concentrators: Vec<usize> = (0..nodes.len()).filter(|&i| i != head).collect();
        let leaves: Vec<usize> = concentrators
            .iter()
            .copied()
            .filter(|&i| degree.get(i) == Some(&1))
            .collect();
        let attach = if leaves.is_empty() {
            concentrators
        } else {
            leaves
        };
        for r in attach {
            let router = mapped.get(r).cloned().unwrap_or_default();
            let name = unique_name(&sanitize_name(&format!("m-{router}")), &mut taken);
            let mut m = Node::new(name.clone(), Role::Meters);
            m.meters = opts.meters_per_node;
            nodes.push(m);
            links.push(Link::new(&router, &name, 0.0, None));
        }
    }
    let topo = Topology {
        name: opts.name.clone(),
        utility: opts.utility.clone(),
        projects: Vec::new(),
        defaults: Defaults::default(),
        nodes,
        links,
        run: RunSpec::default(),
        asserts: Vec::new(),
        events: Vec::new(),
    };
    topo.validate()?;
    Ok(topo)
}

fn parse_conf_link(line: usize, l: &str) -> Result<ConfLink, TopoError> {
    let line_err = |why: String| TopoError::MiniNdnLine { line, why };
    let mut tokens = l.split_whitespace();
    let ends = tokens.next().unwrap_or("");
    let Some((a, b)) = ends
        .split_once(':')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains(':'))
    else {
        return Err(line_err(format!("expected `a:b key=value …`, found {l:?}")));
    };
    let mut link = ConfLink {
        line,
        a: a.to_string(),
        b: b.to_string(),
        delay_ms: 0.0,
        bandwidth_mbit: None,
        loss: 0.0,
    };
    let number = |key: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| line_err(format!("{key}={v}: not a number >= 0")))
    };
    for tok in tokens {
        let Some((key, v)) = tok.split_once('=') else {
            continue;
        };
        match key {
            "delay" => {
                link.delay_ms = if v.ends_with(|c: char| c.is_ascii_digit() || c == '.') {
                    number(key, v)?
                } else {
                    parse_duration(v)
                        .map_err(|e| line_err(format!("delay={v}: {e}")))?
                        .as_secs_f64()
                        * 1000.0
                };
            }
            "bw" => {
                let bw = number(key, v)?;
                if bw == 0.0 {
                    return Err(line_err(format!("bw={v}: must be > 0")));
                }
                link.bandwidth_mbit = Some(bw);
            }
            "loss" => {
                let pct = number(key, v)?;
                if pct >= 100.0 {
                    return Err(line_err(format!(
                        "loss={v}: a percentage below 100 is needed"
                    )));
                }
                link.loss = pct / 100.0;
            }
            _ => {}
        }
    }
    Ok(link)
}

/// Lowercases, maps other characters than `[a-z0-9-]` to `-`, drops leading `-` and cuts to
/// the node-name length; `n` when nothing is left.
fn sanitize_name(orig: &str) -> String {
    let s: String = orig
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s
        .trim_start_matches('-')
        .chars()
        .take(MAX_NODE_NAME)
        .collect();
    if s.is_empty() { "n".to_string() } else { s }
}

/// `base`, or `base` (cut to fit) with the smallest number from 2 that is not yet taken.
fn unique_name(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = base.to_string();
    let mut k: u64 = 2;
    while taken.contains(&name) {
        let suffix = k.to_string();
        let stem: String = base
            .chars()
            .take(MAX_NODE_NAME.saturating_sub(suffix.len()))
            .collect();
        name = format!("{stem}{suffix}");
        k += 1;
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DOC_EXAMPLE: &str = r#"
name = "tree-10"                # used for namespace/run names; [a-z0-9-], <= 24 chars
utility = "/lab-utility"        # NDN prefix of the utility
projects = ["p1", "p2"]         # DR projects

[defaults]                      # per-node settings, each overridable on a node
cs_capacity = 65536             # forwarder Content Store entries
strategy = "/localhost/nfd/strategy/best-route"
reading_interval = "2s"         # humantime-like: "500ms", "2s", "15m", "1h"

[[node]]
name = "head"                   # [a-z0-9-], <= 12 chars, unique
role = "head-end"               # head-end | concentrator | meters
# services = ["kms", "mdms", "pricing", "dr"]   # head-end only; default all four

[[node]]
name = "c1"
role = "concentrator"
cs_capacity = 1000

[[node]]
name = "m1"
role = "meters"
meters = 10                     # simulated meters in this node (required, >= 1, for role meters)
projects = ["p1"]               # DR projects its meters are entitled to (must be in top-level projects)
reading_interval = "1s"

[[link]]
a = "head"
b = "c1"
bandwidth_mbit = 100.0          # optional
delay_ms = 5.0                  # default 0
loss = 0.0                      # fraction in [0, 1), default 0
cost = 10                       # routing cost, default 1, >= 1
# down_at = "20s"               # optional: link fails this long after the run starts
# up_at = "40s"                 # optional: and comes back (requires down_at, > down_at)

[[link]]
a = "c1"
b = "m1"

[run]
duration = "30s"                # default "30s"

[[assert]]
metric = "satisfaction"         # a metric name from the run summary
min = 0.99                      # min and/or max
"#;

    const TREE: &str = include_str!("../../examples/topo-tree.toml");
    const LINE: &str = include_str!("../../examples/topo-line.toml");
    const MININDN: &str = include_str!("../../examples/minindn-sample.conf");

    fn err_of(text: &str) -> String {
        Topology::from_toml(text).unwrap_err().to_string()
    }

    /// A minimal valid topology to append broken parts to.
    fn base(extra: &str) -> String {
        format!(
            r#"
name = "t"
utility = "/u"
projects = ["p1"]
[[node]]
name = "head"
role = "head-end"
[[node]]
name = "c1"
role = "concentrator"
[[node]]
name = "m1"
role = "meters"
meters = 2
[[link]]
a = "head"
b = "c1"
[[link]]
a = "c1"
b = "m1"
{extra}
"#
        )
    }

    fn route<'a>(routes: &'a [Route], prefix: &str) -> Option<&'a Route> {
        routes.iter().find(|r| r.prefix == prefix)
    }

    fn prefixes(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|r| r.prefix.as_str()).collect()
    }

    #[test]
    fn events_are_validated() {
        let base = include_str!("../../examples/topo-tree.toml");
        let ok = format!("{base}\n[[event]]\nat = \"5s\"\naction = \"leave\"\nmeter = 2\n");
        let t = Topology::from_toml(&ok).unwrap();
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.events[0].action, Action::Leave);
        assert_eq!(Topology::from_toml(&t.to_toml()).unwrap(), t);
        for (extra, why) in [
            ("at = \"5s\"\naction = \"leave\"\n", "needs `meter`"),
            (
                "at = \"5s\"\naction = \"revoke\"\nmeter = 100000\n",
                "is not in",
            ),
            (
                "at = \"5s\"\naction = \"kill\"\nnode = \"head\"\n",
                "cannot be killed",
            ),
            (
                "at = \"5s\"\naction = \"kill\"\nnode = \"nope\"\n",
                "unknown node",
            ),
            (
                "at = \"1h\"\naction = \"kill\"\nnode = \"c1\"\n",
                "before the end",
            ),
        ] {
            let text = format!("{base}\n[[event]]\n{extra}");
            let e = Topology::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(why), "{extra}: {e}");
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let t = Topology::from_toml(DOC_EXAMPLE).unwrap();
        assert_eq!(t.name, "tree-10");
        assert_eq!(t.utility, "/lab-utility");
        assert_eq!(t.projects, ["p1", "p2"]);
        assert_eq!(t.defaults, Defaults::default());
        assert_eq!(t.nodes.len(), 3);
        let head = t.head_end();
        assert_eq!(head.name, "head");
        assert_eq!(head.services, SERVICES);
        assert!(head.has_service("kms") && head.has_service("dr"));
        assert!(!head.has_service("meter"));
        let c1 = t.node("c1").unwrap();
        assert_eq!(c1.role, Role::Concentrator);
        assert_eq!(c1.cs_capacity(&t.defaults), 1000);
        assert!(c1.services.is_empty());
        assert_eq!(c1.strategy(&t.defaults), DEFAULT_STRATEGY);
        let m1 = t.node("m1").unwrap();
        assert_eq!((m1.role, m1.meters), (Role::Meters, 10));
        assert_eq!(m1.projects, ["p1"]);
        assert_eq!(m1.reading_interval(&t.defaults), Duration::from_secs(1));
        assert_eq!(m1.cs_capacity(&t.defaults), 65536);
        assert_eq!(c1.reading_interval(&t.defaults), Duration::from_secs(2));
        let l = &t.links[0];
        assert_eq!((l.a.as_str(), l.b.as_str()), ("head", "c1"));
        assert_eq!(l.bandwidth_mbit, Some(100.0));
        assert_eq!((l.delay_ms, l.loss, l.cost), (5.0, 0.0, 10));
        assert_eq!((l.down_at, l.up_at), (None, None));
        let l = &t.links[1];
        assert_eq!(
            (l.bandwidth_mbit, l.delay_ms, l.loss, l.cost),
            (None, 0.0, 0.0, 1)
        );
        assert_eq!(t.run.duration, Duration::from_secs(30));
        assert_eq!(t.asserts.len(), 1);
        assert_eq!(t.asserts[0].metric, "satisfaction");
        assert_eq!((t.asserts[0].min, t.asserts[0].max), (Some(0.99), None));
        assert_eq!(t.total_meters(), 10);
        assert_eq!(t.upstream_prefix(), "/lab-utility/ami");
        assert_eq!(t.neighbours("c1"), vec![(0, "head"), (1, "m1")]);
    }

    #[test]
    fn defaults_apply_when_sections_are_missing() {
        let t = Topology::from_toml(&base("")).unwrap();
        assert_eq!(t.defaults, Defaults::default());
        assert_eq!(t.run, RunSpec::default());
        assert!(t.asserts.is_empty());
        let t = Topology::from_toml(&base("[defaults]\ncs_capacity = 7\n")).unwrap();
        assert_eq!(t.defaults.cs_capacity, 7);
        assert_eq!(t.defaults.reading_interval, Duration::from_secs(2));
        // Integers are accepted for float fields.
        let t = Topology::from_toml(&base("")).unwrap();
        let mut text = t.to_toml();
        text = text.replace("delay_ms = 0.0", "delay_ms = 3");
        assert_eq!(Topology::from_toml(&text).unwrap().links[0].delay_ms, 3.0);
    }

    #[test]
    fn round_trips_through_toml() {
        let mut t = Topology::from_toml(DOC_EXAMPLE).unwrap();
        t.links[1].down_at = Some(Duration::from_millis(20_500));
        t.links[1].up_at = Some(Duration::from_secs(40));
        t.nodes[0].services = vec!["kms".into(), "dr".into()];
        t.nodes[1].strategy = Some("/localhost/nfd/strategy/multicast".into());
        t.asserts.push(Assertion {
            metric: "latency_p99_ms".into(),
            min: None,
            max: Some(250.0),
        });
        t.validate().unwrap();
        let text = t.to_toml();
        assert_eq!(Topology::from_toml(&text).unwrap(), t, "{text}");
        for text in [TREE, LINE] {
            let t = Topology::from_toml(text).unwrap();
            assert_eq!(Topology::from_toml(&t.to_toml()).unwrap(), t);
        }
        let g = generate(&gen_spec(Shape::RandomGeometric {
            routers: 12,
            radius: 0.3,
            seed: 7,
        }))
        .unwrap();
        assert_eq!(Topology::from_toml(&g.to_toml()).unwrap(), g);
        // An explicitly empty service list stays empty.
        let mut t = Topology::from_toml(&base("")).unwrap();
        t.nodes[0].services.clear();
        assert_eq!(Topology::from_toml(&t.to_toml()).unwrap(), t);
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("amicn-topo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, LINE).unwrap();
        assert_eq!(Topology::load(&good).unwrap().name, "line-3");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, base("[[link]]\na = \"head\"\nb = \"nowhere\"\n")).unwrap();
        let e = Topology::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("nowhere"), "{e}");
        let e = Topology::load(&dir.join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation_errors_name_the_culprit() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[node]]\nname = \"c1\"\nrole = \"concentrator\"\n",
                &["node \"c1\"", "twice"],
            ),
            (
                "[[link]]\na = \"c1\"\nb = \"c9\"\n",
                &["link 2 (c1 - c9)", "unknown node \"c9\""],
            ),
            (
                "[[node]]\nname = \"head2\"\nrole = \"head-end\"\n[[link]]\na = \"head2\"\nb = \"c1\"\n",
                &["node \"head2\"", "second head-end", "\"head\""],
            ),
            (
                "[[node]]\nname = \"c2\"\nrole = \"concentrator\"\n[[node]]\nname = \"m2\"\nrole = \"meters\"\nmeters = 1\n[[link]]\na = \"c2\"\nb = \"m2\"\n",
                &["not connected", "\"c2\"", "1 more"],
            ),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\nloss = 1.0\n",
                &["link 2 (head - m1)", "loss 1"],
            ),
            (
                "[[node]]\nname = \"c2\"\nrole = \"concentrator\"\nmeters = 3\n[[link]]\na = \"c2\"\nb = \"c1\"\n",
                &["node \"c2\"", "meters = 3 on a concentrator"],
            ),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\nup_at = \"10s\"\n",
                &["link 2 (head - m1)", "up_at without down_at"],
            ),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\ndown_at = \"10s\"\nup_at = \"10s\"\n",
                &["link 2", "not after down_at"],
            ),
            (
                "[[link]]\na = \"m1\"\nb = \"c1\"\n",
                &["link 2 (m1 - c1)", "same two nodes as link 1"],
            ),
            ("[[link]]\na = \"c1\"\nb = \"c1\"\n", &["link 2", "itself"]),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\ncost = 0\n",
                &["link 2", "cost 0"],
            ),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\ndelay_ms = -1.0\n",
                &["link 2", "delay_ms -1"],
            ),
            (
                "[[link]]\na = \"head\"\nb = \"m1\"\nbandwidth_mbit = 0.0\n",
                &["link 2", "bandwidth_mbit 0"],
            ),
            (
                "[[node]]\nname = \"m2\"\nrole = \"meters\"\n[[link]]\na = \"m2\"\nb = \"c1\"\n",
                &["node \"m2\"", "meters >= 1"],
            ),
            (
                "[[node]]\nname = \"m2\"\nrole = \"meters\"\nmeters = 1\nservices = [\"kms\"]\n[[link]]\na = \"m2\"\nb = \"c1\"\n",
                &["node \"m2\"", "only the head-end"],
            ),
            (
                "[[node]]\nname = \"m2\"\nrole = \"meters\"\nmeters = 1\nprojects = [\"p7\"]\n[[link]]\na = \"m2\"\nb = \"c1\"\n",
                &["node \"m2\"", "\"p7\""],
            ),
            (
                "[[node]]\nname = \"Big\"\nrole = \"concentrator\"\n[[link]]\na = \"Big\"\nb = \"c1\"\n",
                &["node \"Big\"", "'B'"],
            ),
            (
                "[[node]]\nname = \"much-too-long-name\"\nrole = \"concentrator\"\n",
                &["much-too-long-name", "at most 12"],
            ),
            (
                "[[assert]]\nmetric = \"satisfaction\"\n",
                &["assertion 0", "min, max"],
            ),
        ];
        for (extra, needles) in cases {
            let e = err_of(&base(extra));
            for n in *needles {
                assert!(e.contains(n), "error {e:?} lacks {n:?} (case {extra:?})");
            }
        }
        let no_head = base("").replace("role = \"head-end\"", "role = \"concentrator\"");
        assert!(err_of(&no_head).contains("no node has role \"head-end\""));
        let bad_utility = base("").replace("\"/u\"", "\"lab\"");
        assert!(err_of(&bad_utility).contains("utility \"lab\""));
        let bad_name = base("").replace("name = \"t\"", "name = \"Tree_1\"");
        assert!(err_of(&bad_name).contains("topology"));
        // Unknown keys and bad durations are TOML errors naming the key or value.
        let e = err_of(&base(
            "[[link]]\na = \"head\"\nb = \"m1\"\ndelai_ms = 3.0\n",
        ));
        assert!(e.contains("delai_ms"), "{e}");
        let e = err_of(&base("[run]\nduration = \"30 seconds\"\n"));
        assert!(e.contains("30 seconds"), "{e}");
        let e = err_of(&base("[[node]]\nname = \"x\"\nrole = \"router\"\n"));
        assert!(e.contains("router"), "{e}");
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("15m", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.25ms", Duration::from_micros(250)),
            (".5m", Duration::from_secs(30)),
            (" 3 s ", Duration::from_secs(3)),
            ("0s", Duration::ZERO),
            ("1.000000001s", Duration::new(1, 1)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_duration(s).unwrap(), d, "{s}");
        }
        for s in [
            "",
            "5",
            "5x",
            "-1s",
            "1.2.3s",
            ".s",
            "s",
            "1e3s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} should fail");
        }
        let e = parse_duration("5").unwrap_err().to_string();
        assert!(e.contains("\"5\"") && e.contains("unit"), "{e}");
        for d in [
            Duration::ZERO,
            Duration::from_secs(7200),
            Duration::from_secs(90),
            Duration::from_millis(1500),
            Duration::from_micros(250),
            Duration::new(3, 7),
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_micros(250)), "0.25ms");
    }

    #[test]
    fn assertions_check_bounds() {
        let a = Assertion {
            metric: "x".into(),
            min: Some(0.5),
            max: Some(1.0),
        };
        assert!(a.check(0.5) && a.check(1.0) && a.check(0.7));
        assert!(!a.check(0.49) && !a.check(1.01) && !a.check(f64::NAN));
        let lo = Assertion {
            metric: "x".into(),
            min: Some(0.99),
            max: None,
        };
        assert!(lo.check(1e9) && !lo.check(0.98));
    }

    /// head ─(2)─ c1 ─ m1 (3 meters), m2 (2 meters); head ─(1)─ c2 ─(4)─ m3 (1 meter).
    const SMALL_TREE: &str = r#"
name = "small"
utility = "/u"
[[node]]
name = "head"
role = "head-end"
[[node]]
name = "c1"
role = "concentrator"
[[node]]
name = "c2"
role = "concentrator"
[[node]]
name = "m1"
role = "meters"
meters = 3
[[node]]
name = "m2"
role = "meters"
meters = 2
[[node]]
name = "m3"
role = "meters"
meters = 1
[[link]]
a = "head"
b = "c1"
cost = 2
[[link]]
a = "head"
b = "c2"
[[link]]
a = "c1"
b = "m1"
[[link]]
a = "m2"
b = "c1"
[[link]]
a = "c2"
b = "m3"
cost = 4
"#;

    #[test]
    fn routes_on_a_small_tree() {
        let t = Topology::from_toml(SMALL_TREE).unwrap();
        let ids = t.meter_ids();
        assert_eq!(ids["m1"], [1, 2, 3]);
        assert_eq!(ids["m2"], [4, 5]);
        assert_eq!(ids["m3"], [6]);
        let routes = t.routes(&BTreeSet::new());
        assert_eq!(routes.len(), 6);

        // The head-end: one route per meter, no upstream route.
        let head = &routes["head"];
        assert_eq!(head.len(), 6);
        assert!(route(head, "/u/ami").is_none());
        for id in 1..=5 {
            let r = route(head, &format!("/u/ami/meter/{id}")).unwrap();
            assert_eq!((r.next_hop.as_str(), r.link, r.cost), ("c1", 0, 3));
        }
        let r = route(head, "/u/ami/meter/6").unwrap();
        assert_eq!((r.next_hop.as_str(), r.link, r.cost), ("c2", 1, 5));

        // c1: upstream plus only its subtree's meters; sorted by prefix.
        let c1 = &routes["c1"];
        assert_eq!(
            prefixes(c1),
            [
                "/u/ami",
                "/u/ami/meter/1",
                "/u/ami/meter/2",
                "/u/ami/meter/3",
                "/u/ami/meter/4",
                "/u/ami/meter/5"
            ]
        );
        let up = route(c1, "/u/ami").unwrap();
        assert_eq!((up.next_hop.as_str(), up.link, up.cost), ("head", 0, 2));
        let r = route(c1, "/u/ami/meter/4").unwrap();
        assert_eq!((r.next_hop.as_str(), r.link, r.cost), ("m2", 3, 1));

        // c2: upstream and m3's meter.
        let c2 = &routes["c2"];
        assert_eq!(prefixes(c2), ["/u/ami", "/u/ami/meter/6"]);
        assert_eq!(route(c2, "/u/ami/meter/6").unwrap().cost, 4);

        // Meters nodes: everything goes upstream (cost = path sum).
        let m3 = &routes["m3"];
        assert_eq!(m3.len(), 1);
        assert_eq!(
            (m3[0].prefix.as_str(), m3[0].next_hop.as_str(), m3[0].cost),
            ("/u/ami", "c2", 5)
        );
        assert_eq!(prefixes(&routes["m1"]), ["/u/ami"]);
        assert_eq!(route(&routes["m1"], "/u/ami").unwrap().cost, 3);
    }

    /// head ─ c1; c1..c4 a 2×2 grid (c1-c2, c1-c3, c2-c4, c3-c4); m1 at c4, m2 at c2.
    const SMALL_GRID: &str = r#"
name = "grid"
utility = "/u"
[[node]]
name = "head"
role = "head-end"
[[node]]
name = "c1"
role = "concentrator"
[[node]]
name = "c2"
role = "concentrator"
[[node]]
name = "c3"
role = "concentrator"
[[node]]
name = "c4"
role = "concentrator"
[[node]]
name = "m1"
role = "meters"
meters = 2
[[node]]
name = "m2"
role = "meters"
meters = 1
[[link]]
a = "head"
b = "c1"
[[link]]
a = "c1"
b = "c2"
[[link]]
a = "c1"
b = "c3"
[[link]]
a = "c2"
b = "c4"
[[link]]
a = "c3"
b = "c4"
[[link]]
a = "c4"
b = "m1"
[[link]]
a = "c2"
b = "m2"
"#;

    #[test]
    fn failed_links_reroute_and_drop_unreachable_meters() {
        let t = Topology::from_toml(SMALL_GRID).unwrap();
        let all = t.routes(&BTreeSet::new());
        // Equal-cost paths c1-c2-c4 and c1-c3-c4: the smaller link index (1, via c2) wins.
        let r = route(&all["c1"], "/u/ami/meter/1").unwrap();
        assert_eq!((r.next_hop.as_str(), r.link, r.cost), ("c2", 1, 3));
        let r = route(&all["head"], "/u/ami/meter/1").unwrap();
        assert_eq!((r.next_hop.as_str(), r.cost), ("c1", 4));
        assert!(route(&all["c3"], "/u/ami/meter/1").is_some());

        // c2-c4 fails: c1 reaches m1 over c3 instead, at the same cost.
        let down = BTreeSet::from([3]);
        let rerouted = t.routes(&down);
        let r = route(&rerouted["c1"], "/u/ami/meter/1").unwrap();
        assert_eq!((r.next_hop.as_str(), r.link, r.cost), ("c3", 2, 3));
        // c4 now goes upstream over c3, and c2 has no m1 route left.
        let up = route(&rerouted["c4"], "/u/ami").unwrap();
        assert_eq!((up.next_hop.as_str(), up.cost), ("c3", 3));
        assert!(route(&rerouted["c2"], "/u/ami/meter/1").is_none());
        assert!(route(&rerouted["c2"], "/u/ami/meter/3").is_some());

        // c3-c4 fails too: c4 and m1 are cut off, so only c4 (on the same island) routes to
        // m1's meters, and neither has an upstream route.
        let down = BTreeSet::from([3, 4]);
        let cut = t.routes(&down);
        for (node, routes) in cut.iter().filter(|(n, _)| *n != "c4") {
            for id in [1, 2] {
                assert!(
                    route(routes, &format!("/u/ami/meter/{id}")).is_none(),
                    "{node} still routes meter {id}"
                );
            }
        }
        assert!(cut["m1"].is_empty());
        assert_eq!(prefixes(&cut["c4"]), ["/u/ami/meter/1", "/u/ami/meter/2"]);
        assert!(route(&cut["head"], "/u/ami/meter/3").is_some());
        // Failures do not change validation (the graph of all links is connected).
        t.validate().unwrap();
    }

    fn gen_spec(shape: Shape) -> GenSpec {
        GenSpec {
            shape,
            meter_nodes: 4,
            meters_per_node: 3,
            name: "gen".into(),
            utility: "/lab-utility".into(),
            projects: vec!["p1".into(), "p2".into()],
            delay_ms: 2.0,
            bandwidth_mbit: Some(50.0),
            seed: 0,
        }
    }

    fn count(t: &Topology, role: Role) -> usize {
        t.nodes.iter().filter(|n| n.role == role).count()
    }

    /// Every node reaches the head-end when no link is down.
    fn fully_routed(t: &Topology) -> bool {
        let routes = t.routes(&BTreeSet::new());
        t.nodes
            .iter()
            .filter(|n| n.role != Role::HeadEnd)
            .all(|n| route(&routes[&n.name], &t.upstream_prefix()).is_some())
            && routes[&t.head_end().name].len() == t.total_meters() as usize
    }

    #[test]
    fn generates_a_line() {
        let t = generate(&gen_spec(Shape::Line { routers: 3 })).unwrap();
        assert_eq!(
            (
                count(&t, Role::HeadEnd),
                count(&t, Role::Concentrator),
                count(&t, Role::Meters)
            ),
            (1, 3, 4)
        );
        assert_eq!(t.neighbours("head"), vec![(0, "c1")]);
        for m in ["m1", "m2", "m3", "m4"] {
            assert_eq!(t.neighbours(m)[0].1, "c3");
        }
        assert_eq!(t.node("m1").unwrap().projects, ["p1"]);
        assert_eq!(t.node("m2").unwrap().projects, ["p2"]);
        assert_eq!(t.node("m3").unwrap().projects, ["p1"]);
        assert!(
            t.links
                .iter()
                .all(|l| l.cost == 1 && l.delay_ms == 2.0 && l.bandwidth_mbit == Some(50.0))
        );
        assert_eq!(t.total_meters(), 12);
        assert!(fully_routed(&t));
    }

    #[test]
    fn generates_a_tree() {
        let mut spec = gen_spec(Shape::Tree {
            degree: 3,
            depth: 2,
        });
        spec.meter_nodes = 11;
        let t = generate(&spec).unwrap();
        assert_eq!(t.nodes.len(), 1 + 3 + 9 + 11);
        assert_eq!(count(&t, Role::Concentrator), 12);
        assert_eq!(t.links.len(), t.nodes.len() - 1); // a tree
        let mut head_children: Vec<&str> = t.neighbours("head").iter().map(|n| n.1).collect();
        head_children.sort_unstable();
        assert_eq!(head_children, ["c1", "c2", "c3"]);
        // c4..c6 hang off c1; meters only off the leaves c4..c12, round-robin.
        let c1: Vec<&str> = t.neighbours("c1").iter().map(|n| n.1).collect();
        assert_eq!(c1, ["head", "c4", "c5", "c6"]);
        assert_eq!(t.neighbours("m1")[0].1, "c4");
        assert_eq!(t.neighbours("m9")[0].1, "c12");
        assert_eq!(t.neighbours("m10")[0].1, "c4");
        assert!(fully_routed(&t));
        // c1 carries exactly its subtree's meters.
        let routes = t.routes(&BTreeSet::new());
        let meter_routes = routes["c1"]
            .iter()
            .filter(|r| r.prefix != "/lab-utility/ami");
        // Leaves c4, c5, c6 host m1, m2, m3, m10, m11 (5 meter nodes × 3 meters).
        assert_eq!(meter_routes.count(), 15);
    }

    #[test]
    fn generates_a_grid() {
        let t = generate(&gen_spec(Shape::Grid { rows: 3, cols: 3 })).unwrap();
        assert_eq!(count(&t, Role::Concentrator), 9);
        assert_eq!(count(&t, Role::Meters), 4);
        assert_eq!(t.links.len(), 1 + 12 + 4);
        assert_eq!(t.neighbours("head"), vec![(0, "c1")]);
        // Corners other than c1 (which also has the head-end) have the fewest neighbours.
        let hosts: Vec<&str> = ["m1", "m2", "m3", "m4"]
            .iter()
            .map(|m| t.neighbours(m)[0].1)
            .collect();
        assert_eq!(hosts, ["c3", "c7", "c9", "c3"]);
        assert!(fully_routed(&t));
    }

    #[test]
    fn generates_a_random_geometric_mesh() {
        let shape = Shape::RandomGeometric {
            routers: 30,
            radius: 0.15,
            seed: 42,
        };
        let a = generate(&gen_spec(shape)).unwrap();
        let b = generate(&gen_spec(shape)).unwrap();
        assert_eq!(a, b, "same seed, same topology");
        assert_eq!(count(&a, Role::Concentrator), 30);
        assert_eq!(count(&a, Role::Meters), 4);
        assert!(fully_routed(&a));
        let other = generate(&gen_spec(Shape::RandomGeometric {
            routers: 30,
            radius: 0.15,
            seed: 43,
        }))
        .unwrap();
        assert_ne!(a.links, other.links);
        // Radius 0: only the joining links, a spanning tree of the routers.
        let sparse = generate(&gen_spec(Shape::RandomGeometric {
            routers: 20,
            radius: 0.0,
            seed: 1,
        }))
        .unwrap();
        assert_eq!(sparse.links.len(), 1 + 19 + 4);
        assert!(fully_routed(&sparse));
        // Radius 2: every pair is linked.
        let dense = generate(&gen_spec(Shape::RandomGeometric {
            routers: 6,
            radius: 2.0,
            seed: 1,
        }))
        .unwrap();
        assert_eq!(dense.links.len(), 1 + 15 + 4);
    }

    #[test]
    fn generator_errors() {
        for shape in [
            Shape::Line { routers: 0 },
            Shape::Tree {
                degree: 0,
                depth: 2,
            },
            Shape::Tree {
                degree: 10,
                depth: 10,
            },
            Shape::Grid { rows: 0, cols: 3 },
            Shape::RandomGeometric {
                routers: 5,
                radius: f64::NAN,
                seed: 0,
            },
        ] {
            assert!(
                matches!(generate(&gen_spec(shape)), Err(TopoError::Generate(_))),
                "{shape:?}"
            );
        }
        let mut spec = gen_spec(Shape::Line { routers: 1 });
        spec.meters_per_node = 0;
        assert!(generate(&spec).is_err());
        spec.meters_per_node = 1;
        spec.name = "Bad Name".into();
        assert!(matches!(generate(&spec), Err(TopoError::Invalid { .. })));
    }

    #[test]
    fn imports_the_minindn_sample() {
        let opts = MiniNdnImport {
            name: "minindn".into(),
            utility: "/lab-utility".into(),
            head: None,
            meters_per_node: 4,
        };
        let t = from_minindn_conf(MININDN, &opts).unwrap();
        assert_eq!(t.head_end().name, "hub");
        assert_eq!(count(&t, Role::Concentrator), 4);
        // The two degree-1 routers get a meters node each.
        let meters: Vec<&str> = t
            .nodes
            .iter()
            .filter(|n| n.role == Role::Meters)
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(meters, ["m-sub-a", "m-substation"]);
        assert_eq!(t.total_meters(), 8);
        assert!(fully_routed(&t));
        let headed = from_minindn_conf(
            MININDN,
            &MiniNdnImport {
                head: Some("west".into()),
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(headed.head_end().name, "west");
        assert_eq!(headed.node("hub").unwrap().role, Role::Concentrator);
    }

    #[test]
    fn imports_minindn_details() {
        let conf = "
# a comment
[nodes]
Alpha: _ network=/world router=/world/alpha   # trailing comment
alpha_: _
B.Node.With.Long.Name: _

[switches]
s1: _

[links]
Alpha:alpha_ delay=10ms bw=100 loss=1
alpha_:B.Node.With.Long.Name delay=2.5 max_queue_size=10 jitter=1ms
";
        let opts = MiniNdnImport {
            name: "imp".into(),
            utility: "/u".into(),
            head: Some("Alpha".into()),
            meters_per_node: 0,
        };
        let t = from_minindn_conf(conf, &opts).unwrap();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["alpha", "alpha-", "b-node-with-"]);
        assert_eq!(t.head_end().name, "alpha");
        let l = &t.links[0];
        assert_eq!((l.a.as_str(), l.b.as_str()), ("alpha", "alpha-"));
        assert_eq!((l.delay_ms, l.bandwidth_mbit), (10.0, Some(100.0)));
        assert!((l.loss - 0.01).abs() < 1e-12);
        let l = &t.links[1];
        assert_eq!((l.delay_ms, l.bandwidth_mbit, l.loss), (2.5, None, 0.0));
        assert_eq!(count(&t, Role::Meters), 0);

        // Name collisions get numbers; meters attach to every concentrator when none is a leaf.
        let ring = "[nodes]\nA:\na:\nb:\n[links]\nA:a\na:b\nb:A\n";
        let t = from_minindn_conf(
            ring,
            &MiniNdnImport {
                meters_per_node: 1,
                head: None,
                ..opts.clone()
            },
        )
        .unwrap();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "a2", "b", "m-a2", "m-b"]);

        // Errors carry the line number.
        let opts = MiniNdnImport { head: None, ..opts };
        let bad = "[nodes]\na: _\nb: _\n[links]\na:b\n\n# c\na:zz delay=1ms\n";
        let e = from_minindn_conf(bad, &opts).unwrap_err();
        assert!(
            matches!(&e, TopoError::MiniNdnLine { line: 8, why } if why.contains("\"zz\"")),
            "{e}"
        );
        assert!(e.to_string().contains("line 8"), "{e}");
        let e = from_minindn_conf("[nodes]\na:\nb:\n[links]\na:b loss=100\n", &opts).unwrap_err();
        assert!(matches!(e, TopoError::MiniNdnLine { line: 5, .. }), "{e}");
        let e = from_minindn_conf("[nodes]\na:\nb:\n[links]\na:b delay=5xs\n", &opts).unwrap_err();
        assert!(matches!(e, TopoError::MiniNdnLine { line: 5, .. }), "{e}");
        let e = from_minindn_conf("a: _\n", &opts).unwrap_err();
        assert!(matches!(e, TopoError::MiniNdnLine { line: 1, .. }), "{e}");
        let e = from_minindn_conf("[nodes]\na:\nb:\n[links]\n", &opts).unwrap_err();
        assert!(e.to_string().contains("not connected"), "{e}");
    }

    #[test]
    fn addresses_are_distinct_slash_30s() {
        let t = generate(&gen_spec(Shape::Grid { rows: 4, cols: 5 })).unwrap();
        let addrs = t.addresses();
        assert_eq!(addrs.len(), t.links.len());
        let mut seen = BTreeSet::new();
        for (i, la) in addrs.iter().enumerate() {
            assert_eq!(la.prefix_len, 30);
            assert_ne!(la.a, la.b);
            let (a, b) = (u32::from(la.a), u32::from(la.b));
            assert_eq!(a & !3, b & !3, "same /30");
            assert_eq!(a & !3, 0x0A00_0000 + 4 * i as u32);
            assert_eq!((a & 3, b & 3), (1, 2));
            assert!(seen.insert(la.a) && seen.insert(la.b));
        }
        assert_eq!(addrs[0].a, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(addrs[1].b, Ipv4Addr::new(10, 0, 0, 6));
        // The last addressable link still lies inside 10.0.0.0/10.
        let last = 0x0A00_0000u32 + 4 * (MAX_LINKS as u32 - 1);
        assert_eq!(
            Ipv4Addr::from(last) & Ipv4Addr::new(255, 192, 0, 0),
            Ipv4Addr::new(10, 0, 0, 0)
        );
    }

    #[test]
    fn meter_ids_are_consecutive_from_one() {
        let t = Topology::from_toml(TREE).unwrap();
        let ids = t.meter_ids();
        assert_eq!(ids.len(), 6);
        let mut all: Vec<u32> = Vec::new();
        for n in t.nodes.iter().filter(|n| n.role == Role::Meters) {
            let mine = &ids[&n.name];
            assert_eq!(mine.len(), n.meters as usize);
            all.extend(mine);
        }
        assert_eq!(all, (1..=t.total_meters()).collect::<Vec<_>>());
        assert_eq!(t.total_meters(), 30);
    }

    #[test]
    fn example_files_parse() {
        let tree = Topology::from_toml(TREE).unwrap();
        assert_eq!(
            (
                count(&tree, Role::HeadEnd),
                count(&tree, Role::Concentrator),
                count(&tree, Role::Meters)
            ),
            (1, 3, 6)
        );
        assert_eq!(tree.nodes.len(), 10);
        assert_eq!(tree.run.duration, Duration::from_secs(20));
        assert_eq!(tree.asserts[0].metric, "satisfaction");
        assert_eq!(tree.asserts[0].min, Some(0.99));
        assert!(tree.links.iter().any(|l| l.cost > 1));
        assert!(tree.links.iter().any(|l| l.delay_ms > 0.0));
        assert!(fully_routed(&tree));
        let line = Topology::from_toml(LINE).unwrap();
        assert_eq!(line.nodes.len(), 4);
        assert!(fully_routed(&line));
    }

    #[test]
    fn head_end_of_an_unvalidated_topology_does_not_panic() {
        let t = Topology {
            name: "x".into(),
            utility: "/u".into(),
            projects: Vec::new(),
            defaults: Defaults::default(),
            nodes: Vec::new(),
            links: Vec::new(),
            run: RunSpec::default(),
            asserts: Vec::new(),
            events: Vec::new(),
        };
        assert_eq!(t.head_end().name, "");
        assert!(t.routes(&BTreeSet::new()).is_empty());
        assert!(t.validate().is_err());
    }
}
