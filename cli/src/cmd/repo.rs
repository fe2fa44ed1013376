//! `amicn repo`: a durable named-data repository (`amicn_ami::repo`). `serve` registers its
//! prefixes with the local forwarder and answers every Interest from the database with the
//! bytes that were signed; `insert`, `delete` and `stats` work on the same database from
//! another process while it serves (SQLite WAL), guarded by the file's permissions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amicn_ami::repo::{PrefixMatch, RepoStore};
use amicn_tlv::{Data, Name};
use anyhow::Context;
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
    /// Objects and bytes held
    Stats(DbArg),
}

#[derive(Debug, Args)]
struct DbArg {
    /// Repository database: a SQLite file (created if missing) or a postgres:// URL
    #[arg(long)]
    db: PathBuf,
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
    /// Which Data a CanBePrefix Interest gets among several: first or last in canonical order
    #[arg(long, value_enum, default_value_t = MatchArg::Last)]
    prefix_match: MatchArg,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
struct InsertArgs {
    #[command(flatten)]
    db: DbArg,
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
        RepoCmd::Stats(d) => {
            let s = RepoStore::open(&d.db)?.stats()?;
            println!("{} Data, {} bytes", s.objects, s.bytes);
            Ok(())
        }
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
    let store = RepoStore::open(&i.db.db)?;
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
    let n = store.insert(&packets)?;
    println!("stored {n} Data (committed)");
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
                _ = tick.tick() => tracing::info!(
                    served = served.load(Ordering::Relaxed),
                    missed = missed.load(Ordering::Relaxed),
                    failed = failed.load(Ordering::Relaxed),
                    "repo"
                ),
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
