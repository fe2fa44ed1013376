//! `amicn demo-attacker` (hidden; started by `amicn demo`): a node on a concentrator that
//! answers every wrap and reading Interest it sees at once with forged Data of the same name —
//! what anyone who predicts the next wrap or reading name could do to be first into a cache.
//! It cannot know the real packet's implicit digest, so a fetch by digest never matches it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amicn_face::client::{Client, ClientOptions, IncomingInterest};
use amicn_tlv::{Data, Name};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;

/// Answer wrap and reading Interests with forged Data (demo only).
#[derive(Debug, Args)]
pub(crate) struct AttackerArgs {
    /// Forwarder to attach to.
    #[arg(long, value_name = "URI")]
    forwarder: String,
    /// Utility prefix.
    #[arg(long = "u", value_name = "PREFIX", default_value = "/example-utility")]
    utility: String,
    /// Where to write `{"answered": N}`.
    #[arg(long, value_name = "FILE")]
    stats: PathBuf,
}

fn forged(i: &IncomingInterest) -> Option<Data> {
    let name = &i.interest.name;
    let targeted = name
        .iter()
        .any(|c| c.value() == b"ENCRYPTED-BY" || c.value() == b"reading");
    if !targeted {
        return None;
    }
    // The name without its implicit digest component: the best a forger can do.
    let base: Name = match name.last() {
        Some(c) if c.is_implicit_digest() => name.prefix(name.len() - 1),
        _ => name.clone(),
    };
    let junk: [u8; 72] = std::array::from_fn(|k| (k as u8).wrapping_mul(37) ^ 0x5a);
    let mut d = Data::new(base, Bytes::copy_from_slice(&junk));
    d.meta_info.freshness_period_ms = Some(3_600_000);
    Some(d)
}

/// Entry point of `amicn demo-attacker`.
pub(crate) fn run(a: AttackerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let uri = a.forwarder.parse().context("forwarder URI")?;
        let client = Client::connect(&uri, ClientOptions::default()).await?;
        let u = Name::from_uri(&a.utility)?;
        let answered = Arc::new(AtomicU64::new(0));
        for p in ["ami/meter", "ami/KMS/tree", "ami/bcast", "ami/dr"] {
            let mut prefix = u.clone();
            for c in p.split('/') {
                prefix = prefix.append_generic(Bytes::copy_from_slice(c.as_bytes()));
            }
            let mut rx = client.register(prefix).await?;
            let c = client.clone();
            let n = answered.clone();
            tokio::spawn(async move {
                while let Some(i) = rx.recv().await {
                    if let Some(mut d) = forged(&i) {
                        let wire = d.sign_digest_sha256();
                        if c.put_data(wire, i.pit_token.as_ref()).await.is_ok() {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let write = |n: u64| {
            let _ = std::fs::write(&a.stats, format!("{{\"answered\": {n}}}\n"));
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tick.tick() => write(answered.load(Ordering::Relaxed)),
            }
        }
        write(answered.load(Ordering::Relaxed));
        anyhow::Ok(())
    })
}
