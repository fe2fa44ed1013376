//! Building blocks shared by the commands that run amicn as a mesh of processes (`amicn demo`,
//! `amicn exp run`): processes stopped by PID, readiness waits, NFD management calls, and the
//! daemons' metrics snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amicn_face::client::{Client, ClientOptions, Reply, TransportUri};
use amicn_tlv::mgmt::ControlParameters;
use amicn_tlv::{Interest, Name};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: usize,
    pub(crate) p50_us: Option<u64>,
    pub(crate) p90_us: Option<u64>,
    pub(crate) p99_us: Option<u64>,
}

pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) peak_rss_kib: Option<u64>,
}

/// Every process the demo started; stopped by PID when dropped (also on error or Ctrl-C).
pub(crate) struct Procs {
    pub(crate) list: Vec<Proc>,
    pub(crate) exe: PathBuf,
    pub(crate) logs: PathBuf,
}

pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// A kB field of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Procs {
    pub(crate) fn spawn(&mut self, name: &str, args: &[String]) -> anyhow::Result<u32> {
        self.spawn_in(&[], name, args)
    }

    /// Starts `amicn ARGS` as `name` behind `wrapper` (e.g. `ip netns exec NS` or
    /// `nsenter -t PID -n --`, which exec in place: the PID is amicn's own); an empty wrapper
    /// starts it directly. Output goes to `<logs>/<name>.log`.
    pub(crate) fn spawn_in(
        &mut self,
        wrapper: &[String],
        name: &str,
        args: &[String],
    ) -> anyhow::Result<u32> {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        cmd.args(args);
        self.start(name, cmd)
    }

    /// Starts any program (`argv[0]` with the rest as arguments) as `name`, logged and stopped
    /// like the others.
    pub(crate) fn spawn_program(&mut self, name: &str, argv: &[String]) -> anyhow::Result<u32> {
        let (program, rest) = argv
            .split_first()
            .with_context(|| format!("starting {name}: empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(rest);
        self.start(name, cmd)
    }

    fn start(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<u32> {
        let log = self.logs.join(format!("{name}.log"));
        let f =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .env(
                "RUST_LOG",
                std::env::var("AMICN_DEMO_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        self.list.push(Proc {
            name: name.to_string(),
            child,
            peak_rss_kib: None,
        });
        Ok(pid)
    }

    pub(crate) fn get(&mut self, name: &str) -> Option<&mut Proc> {
        self.list.iter_mut().rev().find(|p| p.name == name)
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn crash(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self
            .get(name)
            .with_context(|| format!("no process {name}"))?;
        p.peak_rss_kib = peak_rss_kib(p.child.id());
        p.child.kill().with_context(|| format!("killing {name}"))?;
        let _ = p.child.wait();
        p.name = format!("{name} (killed)");
        Ok(())
    }

    /// SIGTERM to every live process, then SIGKILL to whatever is left after `grace`.
    pub(crate) fn stop_all(&mut self, grace: Duration) {
        for p in &mut self.list {
            if matches!(p.child.try_wait(), Ok(None)) {
                p.peak_rss_kib = peak_rss_kib(p.child.id()).or(p.peak_rss_kib);
                signal(p.child.id(), "TERM");
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .list
                .iter_mut()
                .any(|p| matches!(p.child.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in &mut self.list {
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }

    pub(crate) fn all_exited(&mut self) -> bool {
        self.list
            .iter_mut()
            .all(|p| matches!(p.child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(3));
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

pub(crate) async fn wait_for(
    what: &str,
    deadline: Duration,
    mut ok: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !ok() {
        if Instant::now() > until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub(crate) async fn connect_when_up(sock: &Path) -> anyhow::Result<Client> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if sock.exists()
            && let Ok(c) = Client::connect(
                &TransportUri::Unix(sock.to_path_buf()),
                ClientOptions::default(),
            )
            .await
        {
            return Ok(c);
        }
        if Instant::now() > until {
            bail!("forwarder at {} did not come up", sock.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `exe ARGS` to completion; returns its trimmed stdout, or stdout and stderr when it
/// failed.
pub(crate) fn run_tool(exe: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Entitles meters to DR projects with the DR operator's signed command (`amicn ami
/// entitle`), one command per project set.
pub(crate) fn entitle_sets(
    exe: &Path,
    dr_config: &str,
    forwarder: &str,
    by_set: &BTreeMap<Vec<String>, Vec<u32>>,
) -> anyhow::Result<()> {
    for (set, ids) in by_set {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        let a: Vec<String> = [
            "ami",
            "entitle",
            "-c",
            dr_config,
            "--forwarder",
            forwarder,
            "--meters",
            &list.join(","),
            "--set",
            &set.join(","),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        run_tool(exe, &a).map_err(|e| anyhow::anyhow!("entitling meters: {e}"))?;
    }
    Ok(())
}

/// `faces/create` toward `tcp4://127.0.0.1:port`; returns the FaceId.
pub(crate) async fn face_to(c: &Client, port: u16) -> anyhow::Result<u64> {
    let cp = ControlParameters {
        uri: Some(format!("tcp4://127.0.0.1:{port}")),
        face_persistency: Some(0),
        ..Default::default()
    };
    let r = c
        .command_response("faces/create", &cp.encode(), &Name::new())
        .await
        .context("faces/create")?;
    r.body
        .and_then(|b| b.face_id)
        .context("faces/create answered without a FaceId")
}

pub(crate) async fn route(c: &Client, prefix: &Name, face: u64, cost: u64) -> anyhow::Result<()> {
    let cp = ControlParameters {
        name: Some(prefix.clone()),
        face_id: Some(face),
        cost: Some(cost),
        origin: Some(255),
        ..Default::default()
    };
    c.command("rib/register", &cp.encode(), prefix)
        .await
        .with_context(|| format!("rib/register {prefix}"))?;
    Ok(())
}

/// `rib/unregister` of a route [`route`] (or a static route of the forwarder's config) added.
pub(crate) async fn unroute(c: &Client, prefix: &Name, face: u64) -> anyhow::Result<()> {
    let cp = ControlParameters {
        name: Some(prefix.clone()),
        face_id: Some(face),
        origin: Some(255),
        ..Default::default()
    };
    c.command("rib/unregister", &cp.encode(), prefix)
        .await
        .with_context(|| format!("rib/unregister {prefix}"))?;
    Ok(())
}

/// FaceId by remote URI, from NFD's `faces/list` dataset.
pub(crate) async fn face_ids(c: &Client) -> anyhow::Result<BTreeMap<String, u64>> {
    let list = amicn_tlv::mgmt::FaceStatus::decode_list(dataset(c, "faces/list").await?)?;
    Ok(list
        .into_iter()
        .filter_map(|f| Some((f.uri?, f.face_id?)))
        .collect())
}

/// Meters with at least one reading in the MDMS database at `db` (a SQLite file or a
/// `postgres://` URL; none while it does not exist).
pub(crate) fn meters_heard(db: &str) -> BTreeMap<u32, u64> {
    amicn_ami::open_reading_store(db)
        .and_then(|s| s.per_meter())
        .map(|m| m.into_iter().map(|(id, (n, _))| (id, n)).collect())
        .unwrap_or_default()
}

pub(crate) async fn strategy(c: &Client, prefix: &Name, strategy: &str) -> anyhow::Result<()> {
    let cp = ControlParameters {
        name: Some(prefix.clone()),
        strategy: Some(Name::from_uri(strategy)?),
        ..Default::default()
    };
    c.command("strategy-choice/set", &cp.encode(), prefix)
        .await
        .context("strategy-choice/set")?;
    Ok(())
}

/// The content of an NFD status dataset (`/localhost/nfd/<path>`), every segment of it.
pub(crate) async fn dataset(c: &Client, path: &str) -> anyhow::Result<bytes::Bytes> {
    let mut i = Interest::new(Name::from_uri(&format!("/localhost/nfd/{path}"))?);
    i.can_be_prefix = true;
    i.must_be_fresh = true;
    i.lifetime_ms = Some(1000);
    let mut out = bytes::BytesMut::new();
    let mut seg = 0u64;
    loop {
        let data = match c.express(&i).await? {
            Reply::Data { data, .. } => data,
            Reply::Nack { reason } => bail!("{path} was Nacked: {reason:?}"),
        };
        out.extend_from_slice(&data.content);
        let last = data
            .meta_info
            .final_block_id
            .as_ref()
            .and_then(|c| c.as_segment());
        let this = data.name.last().and_then(|c| c.as_segment());
        match (this, last) {
            (Some(k), Some(l)) if k < l && seg < 10_000 => {
                seg = k + 1;
                let base = data.name.prefix(data.name.len() - 1);
                i = Interest::new(base.append(amicn_tlv::Component::segment(seg)));
                i.lifetime_ms = Some(1000);
            }
            _ => return Ok(out.freeze()),
        }
    }
}

/// Content Store hits and misses from NFD's `cs/info` dataset.
pub(crate) async fn cs_counts(c: &Client) -> anyhow::Result<(u64, u64)> {
    let infos = amicn_tlv::mgmt::CsInfo::decode_list(dataset(c, "cs/info").await?)?;
    let f = infos.first();
    Ok((
        f.and_then(|x| x.n_hits).unwrap_or(0),
        f.and_then(|x| x.n_misses).unwrap_or(0),
    ))
}

pub(crate) fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

pub(crate) fn counter(v: &Option<Value>, k: &str) -> f64 {
    v.as_ref()
        .and_then(|v| v["counters"][k].as_f64())
        .unwrap_or(0.0)
}

pub(crate) fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn ready(prov: &Path, node: &str) -> bool {
    prov.join(node).join("state").join("ready").exists()
}

/// Meters of a group's snapshot, by id.
pub(crate) fn meter_views(v: &Option<Value>) -> BTreeMap<u32, Value> {
    let mut out = BTreeMap::new();
    if let Some(list) = v.as_ref().and_then(|v| v["details"]["meters"].as_array()) {
        for m in list {
            if let Some(id) = m["id"].as_u64() {
                out.insert(id as u32, m.clone());
            }
        }
    }
    out
}

pub(crate) fn latency_of(v: &Value) -> (Latency, Vec<u64>) {
    let samples: Vec<u64> = v["samples_us"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut s = samples.clone();
    s.sort_unstable();
    let q = |q: f64| {
        if s.is_empty() {
            None
        } else {
            let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s.get(rank - 1).copied()
        }
    };
    (
        Latency {
            samples: v["count"].as_u64().unwrap_or(0) as usize,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
        },
        samples,
    )
}
