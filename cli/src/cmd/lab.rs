//! A whole AMI on one forwarder, as separate processes, for the fault and endurance benches
//! (`amicn bench chaos`, `amicn bench soak`): one `amicn fwd` on a Unix socket, the KMS, MDMS
//! (SQLite), pricing and DR daemons, a meter-data repository that takes signed inserts, and the
//! meters in a few group processes. Every role can be SIGKILLed and restarted on its own state;
//! every process is stopped by PID when the lab is dropped.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amicn_ami::provision::{ProvisionSpec, provision};
use amicn_tlv::{Data, Name};
use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::Value;

use super::mesh::{Procs, args, counter, meter_views, read_json, ready};

/// The forwarder's role name.
pub(crate) const FORWARDER: &str = "fwd";
/// The KMS's role name.
pub(crate) const KMS: &str = "kms";
/// The MDMS's role name.
pub(crate) const MDMS: &str = "mdms";
/// The repository's role name.
pub(crate) const REPO: &str = "repo";
/// Where the repository takes insert commands and answers its status dataset.
const REPO_COMMANDS: &str = "/localhost/amicn-repo";

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct LabSpec {
    /// Utility name (first name component).
    pub(crate) utility: String,
    /// Meters, ids 1..=meters.
    pub(crate) meters: u32,
    /// Meter group processes.
    pub(crate) groups: u32,
    /// DR projects p1..pN; meter i is entitled to pj when bit j-1 of i is set.
    pub(crate) projects: u32,
    /// Reading interval of every meter.
    pub(crate) interval: Duration,
}

/// The running deployment.
pub(crate) struct Lab {
    /// Scratch directory: node directories, logs, socket, databases.
    pub(crate) dir: PathBuf,
    prov: PathBuf,
    exe: PathBuf,
    keychain: PathBuf,
    /// Every process started, stopped by PID on drop.
    pub(crate) procs: Procs,
    /// The meter groups: process name and meter ids.
    pub(crate) groups: Vec<(String, Vec<u32>)>,
    spec: LabSpec,
    publisher: String,
    inserts: u64,
    runs: BTreeMap<String, u32>,
}

/// Checks a bench's lab options, creates its report directory and starts the runtime it runs
/// on.
pub(crate) fn prepare(
    meters: u32,
    groups: u32,
    out: &Path,
) -> anyhow::Result<tokio::runtime::Runtime> {
    if groups > meters {
        bail!("--groups {groups} is more than --meters {meters}: every group needs a meter");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Meter `id`'s entitled DR projects: pj when bit j-1 of `id` is set.
fn plan(id: u32, projects: u32) -> Vec<String> {
    (1..=projects)
        .filter(|j| (id >> (j - 1)) & 1 == 1)
        .map(|j| format!("p{j}"))
        .collect()
}

impl Lab {
    /// Provisions the utility and starts every role; returns once each has said it is ready
    /// and every meter is a member.
    pub(crate) async fn start(spec: LabSpec, tag: &str) -> anyhow::Result<Lab> {
        let exe = std::env::current_exe().context("locating the amicn binary")?;
        let dir = std::env::temp_dir().join(format!(
            "amicn-{tag}-{}-{}",
            std::process::id(),
            amicn_ami::now_ms()
        ));
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let prov = dir.join("nodes");
        let groups = super::node::meter_groups(spec.meters, spec.groups);
        provision(&ProvisionSpec {
            utility: spec.utility.clone(),
            out: prov.clone(),
            projects: (1..=spec.projects).map(|j| format!("p{j}")).collect(),
            meter_groups: groups.clone(),
            validity_s: amicn_ami::provision::NODE_CERT_VALIDITY_S,
        })?;
        let mut lab = Lab {
            keychain: dir.join("publisher-keychain"),
            publisher: format!("/{}/archive-publisher", spec.utility),
            procs: Procs {
                list: Vec::new(),
                exe: exe.clone(),
                logs,
            },
            dir,
            prov,
            exe,
            groups,
            spec,
            inserts: 0,
            runs: BTreeMap::new(),
        };
        // The repository's publisher: a key of its own, certified for the archive prefix.
        lab.tool(&["key", "create", &lab.publisher.clone()])?;
        let cert = lab.dir.join("publisher.cert").display().to_string();
        lab.tool(&["key", "cert", &lab.publisher.clone(), "-o", &cert])?;

        lab.launch(FORWARDER).await?;
        lab.launch(KMS).await?;
        let mut by_set: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for id in 1..=lab.spec.meters {
            by_set
                .entry(plan(id, lab.spec.projects))
                .or_default()
                .push(id);
        }
        super::mesh::entitle_sets(&lab.exe, &lab.node("dr"), &lab.forwarder_uri(), &by_set)?;
        for role in [MDMS, "pricing", "dr", REPO] {
            lab.launch(role).await?;
        }
        for g in lab.group_names() {
            lab.launch(&g).await?;
        }
        let n = lab.spec.meters as usize;
        super::mesh::wait_for(
            "every meter to join",
            Duration::from_secs(30 + u64::from(lab.spec.meters) / 10),
            || lab.members().len() == n,
        )
        .await?;
        Ok(lab)
    }

    /// Names of the meter group processes.
    pub(crate) fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|(g, _)| g.clone()).collect()
    }

    /// Every role process, forwarder first.
    pub(crate) fn roles(&self) -> Vec<String> {
        let mut v: Vec<String> = [FORWARDER, KMS, MDMS, "pricing", "dr", REPO]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(self.group_names());
        v
    }

    /// PID of the live process of a role.
    pub(crate) fn pid(&mut self, role: &str) -> Option<u32> {
        let p = self.procs.get(role)?;
        matches!(p.child.try_wait(), Ok(None)).then(|| p.child.id())
    }

    fn node(&self, n: &str) -> String {
        self.prov.join(n).join("node.toml").display().to_string()
    }

    /// The forwarder's Unix socket.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("fwd.sock")
    }

    /// Transport URI of the forwarder.
    pub(crate) fn forwarder_uri(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The MDMS's reading database.
    pub(crate) fn mdms_db(&self) -> PathBuf {
        self.prov.join("mdms/state/readings.db")
    }

    /// The repository's database.
    pub(crate) fn repo_db(&self) -> PathBuf {
        self.dir.join("repo.db")
    }

    /// The KMS's durable state.
    pub(crate) fn kms_db(&self) -> PathBuf {
        self.prov.join("kms/state/kms.db")
    }

    /// The latest metrics snapshot of a daemon or meter group.
    pub(crate) fn metrics(&self, role: &str) -> Option<Value> {
        read_json(&self.prov.join(role).join("state").join("metrics.json"))
    }

    /// The KMS's current epoch, from its metrics.
    pub(crate) fn kms_epoch(&self) -> u64 {
        counter(&self.metrics(KMS), "epoch") as u64
    }

    /// Every meter that says it is a member, with the epoch it holds keys of.
    pub(crate) fn members(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for (g, _) in &self.groups {
            for (id, m) in meter_views(&self.metrics(g)) {
                if m["member"].as_bool() == Some(true) {
                    out.insert(id, m["epoch"].as_u64().unwrap_or(0));
                }
            }
        }
        out
    }

    /// Meters that are not members at the KMS's current epoch.
    pub(crate) fn out_of_sync(&self) -> Vec<u32> {
        let e = self.kms_epoch();
        let members = self.members();
        (1..=self.spec.meters)
            .filter(|id| members.get(id) != Some(&e))
            .collect()
    }

    fn role_args(&self, role: &str) -> Vec<String> {
        let uri = self.forwarder_uri();
        let interval = format!("{}ms", self.spec.interval.as_millis());
        let publish = format!("{}ms", (self.spec.interval.as_millis() * 3).max(500));
        let daemon = |verb: &[&str], extra: &[&str]| {
            let mut v = args(verb);
            v.extend(args(&[
                "-c",
                &self.node(role),
                "--forwarder",
                &uri,
                "--metrics-interval",
                "250ms",
            ]));
            v.extend(args(extra));
            v
        };
        match role {
            FORWARDER => args(&[
                "fwd",
                "--socket",
                &self.socket().display().to_string(),
                "--no-tcp",
                "--no-udp",
                // Small enough to fill during a soak's warm-up: a full cache is the steady state.
                "--cs-capacity",
                "2048",
                "--log-level",
                "warn",
            ]),
            KMS => daemon(&["kms", "serve"], &["--rekey-interval", "1s"]),
            MDMS => daemon(
                &[MDMS],
                &["--poll-interval", &interval, "--key-refresh", "1s"],
            ),
            "pricing" | "dr" => daemon(
                &[role],
                &["--publish-interval", &publish, "--key-refresh", "1s"],
            ),
            REPO => args(&[
                "repo",
                "serve",
                "--db",
                &self.repo_db().display().to_string(),
                "--prefix",
                &format!("/{}/archive", self.spec.utility),
                "--publisher",
                &self.dir.join("publisher.cert").display().to_string(),
                "--command-prefix",
                REPO_COMMANDS,
                "--connect",
                &uri,
            ]),
            _ => {
                let sync = format!("{}ms", self.spec.interval.as_millis().clamp(200, 1000));
                daemon(
                    &["meter"],
                    &["--reading-interval", &interval, "--sync-interval", &sync],
                )
            }
        }
    }

    /// Starts a role and waits until it is ready (bounded).
    async fn launch(&mut self, role: &str) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(self.prov.join(role).join("state").join("ready"));
        // Each run of a role keeps its own log: <role>.log is the live one, <role>.<k>.log
        // the k-th run before it.
        let log = self.procs.logs.join(format!("{role}.log"));
        if log.exists() {
            let runs = self.runs.entry(role.to_string()).or_insert(0);
            *runs += 1;
            let _ = std::fs::rename(&log, self.procs.logs.join(format!("{role}.{runs}.log")));
        }
        let a = self.role_args(role);
        self.procs.spawn(role, &a)?;
        let limit = Duration::from_secs(20);
        match role {
            FORWARDER => {
                let sock = self.socket();
                super::mesh::wait_for("the forwarder's socket", limit, || {
                    UnixStream::connect(&sock).is_ok()
                })
                .await
            }
            REPO => {
                let log = self.procs.logs.join(format!("{REPO}.log"));
                super::mesh::wait_for("the repository", limit, || {
                    std::fs::read_to_string(&log).is_ok_and(|s| s.contains("serving"))
                })
                .await
            }
            _ => {
                let prov = self.prov.clone();
                super::mesh::wait_for(role, limit, || ready(&prov, role)).await
            }
        }
    }

    /// Moves meter `id` to the DR projects `set` (comma-separated) by the DR operator's signed
    /// command, which the KMS stages for its next rekey.
    pub(crate) fn entitle(&self, id: u32, set: &str) -> anyhow::Result<String> {
        self.tool(&[
            "ami",
            "entitle",
            "-c",
            &self.node("dr"),
            "--forwarder",
            &self.forwarder_uri(),
            "--meters",
            &id.to_string(),
            "--set",
            set,
        ])
    }

    /// SIGKILLs a role, as a crash would.
    pub(crate) fn crash(&mut self, role: &str) -> anyhow::Result<()> {
        self.procs.crash(role)
    }

    /// Starts a crashed role again on the same state and waits until it is ready.
    pub(crate) async fn restart(&mut self, role: &str) -> anyhow::Result<()> {
        self.launch(role).await
    }

    /// Roles whose process has exited although it was not killed.
    pub(crate) fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &mut self.procs.list {
            if !p.name.ends_with("(killed)") && !matches!(p.child.try_wait(), Ok(None)) {
                out.push(p.name.clone());
            }
        }
        out
    }

    /// Runs `amicn ARGS` to completion with the publisher's keychain; its stdout, or why it
    /// failed.
    fn tool(&self, a: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.exe)
            .args(a)
            .env("AMICN_KEYCHAIN", &self.keychain)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running amicn {}", a.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            bail!(
                "amicn {} failed: {text} {}",
                a.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }

    /// A batch of `per` archive objects for insert number `k`, as their names and wire.
    pub(crate) fn archive_batch(&mut self, per: u32) -> (u64, Vec<Name>, Vec<u8>) {
        self.inserts += 1;
        let k = self.inserts;
        let mut names = Vec::new();
        let mut wire = Vec::new();
        for j in 0..per {
            let Ok(base) = Name::from_uri(&format!("/{}/archive/b{k}", self.spec.utility)) else {
                continue;
            };
            let name = base.append(amicn_tlv::Component::segment(u64::from(j)));
            let mut d = Data::new(name.clone(), Bytes::from(format!("batch {k} object {j}")));
            wire.extend_from_slice(&d.sign_digest_sha256());
            names.push(name);
        }
        (k, names, wire)
    }

    /// An insert command that sends `wire` to the repository by signed Interest; runs in its
    /// own process so it can be started before, and race, a crash.
    pub(crate) fn inserter(&self) -> Inserter {
        Inserter {
            exe: self.exe.clone(),
            keychain: self.keychain.clone(),
            dir: self.dir.clone(),
            publisher: self.publisher.clone(),
            uri: self.forwarder_uri(),
        }
    }

    /// Archive names the repository does not hold.
    pub(crate) fn missing_from_repo(&self, names: &[Name]) -> anyhow::Result<Vec<Name>> {
        let store = amicn_ami::repo::RepoStore::open(self.repo_db())?;
        let mut out = Vec::new();
        for n in names {
            let i = amicn_tlv::Interest::new(n.clone());
            if store
                .get(&i, amicn_ami::repo::PrefixMatch::First)?
                .is_none()
            {
                out.push(n.clone());
            }
        }
        Ok(out)
    }

    /// Stops every process by PID.
    pub(crate) fn stop(&mut self) {
        self.procs.stop_all(Duration::from_secs(5));
    }
}

/// A repository insert that can run on another thread.
#[derive(Debug, Clone)]
pub(crate) struct Inserter {
    exe: PathBuf,
    keychain: PathBuf,
    dir: PathBuf,
    publisher: String,
    uri: String,
}

impl Inserter {
    /// Sends insert number `k`; Ok once the repository acknowledged (committed) every object.
    pub(crate) fn insert(&self, k: u64, wire: &[u8]) -> anyhow::Result<()> {
        let file = self.dir.join(format!("insert-{k}.tlv"));
        std::fs::write(&file, wire).with_context(|| format!("writing {}", file.display()))?;
        let out = Command::new(&self.exe)
            .args([
                "repo",
                "insert",
                "--remote",
                REPO_COMMANDS,
                "--identity",
                &self.publisher,
                "--connect",
                &self.uri,
            ])
            .arg(&file)
            .env("AMICN_KEYCHAIN", &self.keychain)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .context("running amicn repo insert")?;
        let _ = std::fs::remove_file(&file);
        if out.status.success() {
            Ok(())
        } else {
            bail!(
                "insert {k}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
    }
}

/// `PRAGMA integrity_check` of a SQLite file: `ok`, or what SQLite found.
pub(crate) fn sqlite_intact(path: &Path) -> anyhow::Result<()> {
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    c.busy_timeout(Duration::from_secs(5))?;
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .with_context(|| format!("checking {}", path.display()))?;
    if r == "ok" {
        Ok(())
    } else {
        bail!("{} is corrupt: {r}", path.display())
    }
}

/// Waits up to `limit` for `ok`, polling every 50 ms; the time it took, or `None`.
pub(crate) async fn time_until(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if ok() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
