//! `amicn repo`: a durable named-data repository (`amicn_ami::repo`). `serve` registers its
//! prefixes with the local forwarder and answers every Interest from the database with the
//! bytes that were signed; `insert`, `delete` and `stats` work on the same database from
//! another process while it serves (SQLite WAL), guarded by the file's permissions. With
//! `--publisher`, `serve` also takes inserts by signed command Interest
//! (`amicn_ami::repo_insert`), which `insert --remote` sends.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amicn_ami::repo::{PrefixMatch, RepoStore};
use amicn_tlv::{Component, Data, Name};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};

use super::key::ConnectArgs;

#[derive(Debug, Args)]
pub(crate) struct RepoArgs {
    #[command(subcommand)]
    cmd: RepoCmd,
}

#[derive(Debug, Subcommand)]
enum RepoCmd {
    /// Serve every Data under the given prefixes from the database
    Serve(ServeArgs),
    /// Store Data packets (files of concatenated Data TLVs, or standard input)
    Insert(InsertArgs),
    /// Delete every Data under a prefix
    Delete(DeleteArgs),
    /// Objects and bytes held (from the database, or from a serving repository's status)
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
struct DbArg {
    /// Repository database: a SQLite file (created if missing) or a postgres:// URL
    #[arg(long)]
    db: PathBuf,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Repository database: a SQLite file or a postgres:// URL
    #[arg(long, required_unless_present = "remote", conflicts_with = "remote")]
    db: Option<PathBuf>,
    /// Ask the repository serving this command prefix for its status instead (JSON: what it
    /// holds and what it served, missed and refused), e.g. /localhost/amicn-repo
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MatchArg {
    First,
    Last,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    /// Prefixes to register (repeatable)
    #[arg(long = "prefix", required = true)]
    prefixes: Vec<String>,
    /// Accept signed insert commands from the key of this certificate, for Data under the
    /// served prefixes or under the given ones: CERT or CERT=PREFIX[,PREFIX...] (repeatable)
    #[arg(long = "publisher", value_name = "CERT[=PREFIXES]")]
    publishers: Vec<String>,
    /// Where insert commands and the status dataset (`<prefix>/status`) are received
    #[arg(long, value_name = "NAME", default_value = "/localhost/amicn-repo")]
    command_prefix: String,
    /// Which Data a CanBePrefix Interest gets among several: first or last in canonical order
    #[arg(long, value_enum, default_value_t = MatchArg::Last)]
    prefix_match: MatchArg,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
struct InsertArgs {
    /// Repository database to write directly: a SQLite file or a postgres:// URL
    #[arg(long, required_unless_present = "remote", conflicts_with = "remote")]
    db: Option<PathBuf>,
    /// Send signed insert commands to the repository serving this command prefix instead
    /// (see `repo serve --publisher`), e.g. /localhost/amicn-repo
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// Identity or key name that signs the commands [default: the keychain's default]
    #[arg(long, value_name = "NAME", requires = "remote")]
    identity: Option<String>,
    #[command(flatten)]
    keychain: super::key::KeychainArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Files of concatenated Data TLVs (standard input when none)
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    #[command(flatten)]
    db: DbArg,
    /// Prefix whose Data are deleted
    #[arg(long)]
    prefix: String,
}

/// The verb of the status dataset under the command prefix.
const STATUS_VERB: &[u8] = b"status";

pub(crate) fn run(a: RepoArgs) -> anyhow::Result<()> {
    match a.cmd {
        RepoCmd::Serve(s) => serve(s),
        RepoCmd::Insert(i) => insert(i),
        RepoCmd::Delete(d) => {
            let store = RepoStore::open(&d.db.db)?;
            let prefix: Name = d
                .prefix
                .parse()
                .with_context(|| format!("{:?} is not an NDN name", d.prefix))?;
            println!(
                "deleted {} Data under {prefix}",
                store.delete_prefix(&prefix)?
            );
            Ok(())
        }
        RepoCmd::Stats(d) => match (&d.db, &d.remote) {
            (Some(db), _) => {
                let s = RepoStore::open(db)?.stats()?;
                println!("{} Data, {} bytes", s.objects, s.bytes);
                Ok(())
            }
            (None, remote) => remote_status(remote.as_deref().unwrap_or_default(), &d.connect),
        },
    }
}

/// Splits a byte stream of concatenated TLVs into packets; an incomplete tail is an error.
pub(crate) fn split_packets(mut buf: Bytes) -> anyhow::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        match amicn_tlv::split_first_tlv(&buf) {
            Ok(Some(n)) => out.push(buf.split_to(n)),
            _ => anyhow::bail!(
                "truncated or malformed TLV after {} packets ({} bytes left)",
                out.len(),
                buf.len()
            ),
        }
    }
    Ok(out)
}

fn insert(i: InsertArgs) -> anyhow::Result<()> {
    let mut packets = Vec::new();
    if i.files.is_empty() {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        packets.extend(split_packets(Bytes::from(b)).context("standard input")?);
    }
    for f in &i.files {
        let b = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        packets.extend(split_packets(Bytes::from(b)).with_context(|| f.display().to_string())?);
    }
    for (k, p) in packets.iter().enumerate() {
        Data::decode(p.clone()).with_context(|| format!("packet {k} is not a Data"))?;
    }
    let (Some(db), None) = (&i.db, &i.remote) else {
        return insert_remote(&i, &packets);
    };
    let n = RepoStore::open(db)?.insert(&packets)?;
    println!("stored {n} Data (committed)");
    Ok(())
}

/// Fetches and prints a serving repository's status dataset.
fn remote_status(prefix: &str, connect: &ConnectArgs) -> anyhow::Result<()> {
    let prefix: Name = prefix
        .parse()
        .with_context(|| format!("--remote {prefix:?} is not an NDN name"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let client = connect.client().await?;
        let mut i = amicn_tlv::Interest::new(
            prefix.append(Component::generic(Bytes::from_static(STATUS_VERB))),
        );
        i.must_be_fresh = true;
        i.lifetime_ms = Some(4_000);
        match client.express(&i).await? {
            amicn_face::client::Reply::Data { data, .. } => {
                let v: serde_json::Value = serde_json::from_slice(&data.content)
                    .with_context(|| format!("{}: not a repository status", data.name))?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                anyhow::Ok(())
            }
            other => bail!("no status from {prefix}: {other:?} (is a repository serving it?)"),
        }
    })
}

/// Sends `packets` in signed insert commands; each is acknowledged only after its commit.
fn insert_remote(i: &InsertArgs, packets: &[Bytes]) -> anyhow::Result<()> {
    let prefix: Name = i
        .remote
        .as_deref()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("--remote {:?} is not an NDN name", i.remote))?;
    let kc = i.keychain.open()?;
    let key_name = match &i.identity {
        Some(id) => super::key::resolve_key(&kc, id)?,
        None => kc
            .default_key()?
            .context("the keychain has no default key; pass --identity")?,
    };
    let key = kc
        .key(&key_name)
        .with_context(|| format!("no secret key {key_name} in the keychain"))?;
    let payloads = amicn_ami::repo_insert::command_payloads(packets)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stored = rt.block_on(async {
        let client = i.connect.client().await?;
        let mut stored = 0u64;
        for (k, p) in payloads.into_iter().enumerate() {
            let cmd =
                amicn_ami::repo_insert::insert_command(&prefix, p, &key, amicn_ami::now_ms())?;
            let reply = client
                .express(&cmd)
                .await
                .with_context(|| format!("insert command {} of {prefix}", k + 1))?;
            let amicn_face::client::Reply::Data { data, .. } = reply else {
                bail!(
                    "insert command {}: {reply:?} (is a repository serving {prefix}?)",
                    k + 1
                );
            };
            let r = amicn_tlv::mgmt::ControlResponse::decode(data.content.clone())
                .with_context(|| format!("insert command {}: not a ControlResponse", k + 1))?;
            if r.status_code != 200 {
                bail!(
                    "insert command {} refused: {} {} ({stored} Data stored before it)",
                    k + 1,
                    r.status_code,
                    r.status_text
                );
            }
            stored += r
                .status_text
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        anyhow::Ok(stored)
    })?;
    println!("stored {stored} Data (committed, acknowledged by the repository)");
    Ok(())
}

fn serve(s: ServeArgs) -> anyhow::Result<()> {
    crate::cmd::fwd::init_logging(Some("info"), false);
    let store = Arc::new(RepoStore::open(&s.db.db)?);
    let prefixes: Vec<Name> = s
        .prefixes
        .iter()
        .map(|p| {
            p.parse()
                .with_context(|| format!("{p:?} is not an NDN name"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut policy = amicn_ami::repo_insert::InsertPolicy::default();
    for spec in &s.publishers {
        let (file, allowed) = match spec.split_once('=') {
            Some((f, list)) => (
                f,
                list.split(',')
                    .map(|p| {
                        p.parse::<Name>()
                            .with_context(|| format!("--publisher {spec:?}: {p:?} is not a name"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
            None => (spec.as_str(), prefixes.clone()),
        };
        let wire = std::fs::read(file).with_context(|| format!("--publisher: reading {file}"))?;
        let cert = amicn_kms::cert::Certificate::decode(Bytes::from(wire))
            .with_context(|| format!("--publisher: {file} is not a certificate"))?;
        policy
            .allow(cert, allowed)
            .with_context(|| format!("--publisher {spec:?}"))?;
    }
    let command_prefix: Name = s
        .command_prefix
        .parse()
        .with_context(|| format!("--command-prefix {:?} is not an NDN name", s.command_prefix))?;
    let policy = Arc::new(policy);
    let choice = match s.prefix_match {
        MatchArg::First => PrefixMatch::First,
        MatchArg::Last => PrefixMatch::Last,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let client = s.connect.client().await?;
        let served = Arc::new(AtomicU64::new(0));
        let missed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        for p in &prefixes {
            let (store, served, missed, failed) = (
                store.clone(),
                served.clone(),
                missed.clone(),
                failed.clone(),
            );
            let handler: amicn_face::client::InlineHandler =
                Arc::new(move |i| match store.get(i, choice) {
                    Ok(Some(w)) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        Some(w)
                    }
                    Ok(None) => {
                        missed.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("lookup of {}: {e}", i.name);
                        None
                    }
                });
            client
                .serve_inline(p.clone(), handler, true)
                .await
                .with_context(|| format!("registering {p}"))?;
        }
        {
            // Insert commands and the status dataset, off the serving path: a commit waits
            // for the disk and a status counts the table, so both run on blocking threads.
            let mut commands = client
                .register(command_prefix.clone())
                .await
                .with_context(|| format!("registering {command_prefix}"))?;
            let (store, policy, client, command_prefix) = (
                store.clone(),
                policy.clone(),
                client.clone(),
                command_prefix.clone(),
            );
            let counters = [served.clone(), missed.clone(), failed.clone()];
            let (database, served_prefixes) = (
                amicn_ami::repo::redact(&s.db.db.to_string_lossy()),
                prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            );
            tokio::spawn(async move {
                while let Some(inc) = commands.recv().await {
                    let name = inc.interest.name.clone();
                    let verb = name.get(command_prefix.len()).map(|c| c.value().to_vec());
                    let (content, freshness) = match verb.as_deref() {
                        Some(v) if v == amicn_ami::repo_insert::INSERT_VERB => {
                            let (store, policy) = (store.clone(), policy.clone());
                            let cmd = inc.interest.clone();
                            let resp = tokio::task::spawn_blocking(move || {
                                if policy.is_empty() {
                                    amicn_tlv::mgmt::ControlResponse::new(
                                        403,
                                        "this repository takes no inserts (no --publisher)",
                                    )
                                } else {
                                    policy.handle(&store, &cmd, amicn_ami::now_ms())
                                }
                            })
                            .await;
                            let Ok(resp) = resp else { continue };
                            let mut body = bytes::BytesMut::new();
                            resp.encode_to(&mut body);
                            (body.freeze(), 0)
                        }
                        Some(v) if v == STATUS_VERB => {
                            let counted = store.clone();
                            let Ok(Ok(st)) =
                                tokio::task::spawn_blocking(move || counted.stats()).await
                            else {
                                continue;
                            };
                            let c = &policy.counters;
                            let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
                            let v = serde_json::json!({
                                "engine": store.engine(),
                                "database": database,
                                "prefixes": served_prefixes,
                                "objects": st.objects,
                                "bytes": st.bytes,
                                "served": n(&counters[0]),
                                "missed": n(&counters[1]),
                                "failed": n(&counters[2]),
                                "inserts": {
                                    "publishers": !policy.is_empty(),
                                    "accepted": n(&c.accepted),
                                    "stored": n(&c.stored),
                                    "malformed": n(&c.malformed),
                                    "unauthenticated": n(&c.unauthenticated),
                                    "signer_refused": n(&c.signer_refused),
                                    "forbidden": n(&c.forbidden),
                                    "replayed": n(&c.replayed),
                                    "failed": n(&c.failed),
                                },
                            });
                            (Bytes::from(v.to_string()), 1_000)
                        }
                        _ => continue,
                    };
                    let mut d = Data::new(name.clone(), content);
                    d.meta_info.freshness_period_ms = Some(freshness);
                    let wire = d.sign_digest_sha256();
                    if let Err(e) = client.put_data(wire, inc.pit_token.as_ref()).await {
                        tracing::warn!("answering {name}: {e}");
                    }
                }
            });
        }
        // One line on standard output once every prefix is registered: scripts wait for it.
        println!(
            "serving {}",
            prefixes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let st = store.stats()?;
        tracing::info!(
            objects = st.objects,
            bytes = st.bytes,
            "serving {} prefix(es) from {}",
            prefixes.len(),
            amicn_ami::repo::redact(&s.db.db.to_string_lossy())
        );
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        let term = async {
            #[cfg(unix)]
            {
                if let Ok(mut t) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    t.recv().await;
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        tokio::pin!(term);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let c = &policy.counters;
                    tracing::info!(
                        served = served.load(Ordering::Relaxed),
                        missed = missed.load(Ordering::Relaxed),
                        failed = failed.load(Ordering::Relaxed),
                        inserts = c.accepted.load(Ordering::Relaxed),
                        inserted = c.stored.load(Ordering::Relaxed),
                        refused_malformed = c.malformed.load(Ordering::Relaxed),
                        refused_unauthenticated = c.unauthenticated.load(Ordering::Relaxed),
                        refused_signer = c.signer_refused.load(Ordering::Relaxed),
                        refused_forbidden = c.forbidden.load(Ordering::Relaxed),
                        refused_replayed = c.replayed.load(Ordering::Relaxed),
                        "repo"
                    );
                }
                _ = tokio::signal::ctrl_c() => break,
                () = &mut term => break,
            }
        }
        tracing::info!(
            served = served.load(Ordering::Relaxed),
            missed = missed.load(Ordering::Relaxed),
            "stopped"
        );
        anyhow::Ok(())
    })
}
