//! `amicn put`: publish a file or stdin as a versioned, segmented, signed object and serve it.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use amicn_face::client::{Client, ClientOptions};
use amicn_producer::{Producer, PublishOptions};
use amicn_tlv::Name;
use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::key::{ConnectArgs, SignArgs};

/// Publish a file (or stdin) as a versioned, segmented, signed object and keep serving it.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints the versioned name (/<prefix>/v=<version>) on stdout once it is being served.
Consumers find the latest version with `32=metadata` or CanBePrefix discovery.

Examples:
  amicn put /example-utility/dataset/june readings.csv
  tar c logs | amicn put --digest /lab/logs
  amicn put --identity /example-utility/mdms --segment-size 4000 /example-utility/tariffs t.json
  amicn put --listen /tmp/direct.sock /bench/obj big.bin     # serve consumers directly, no forwarder"
)]
pub(crate) struct PutArgs {
    /// Name prefix to publish under
    prefix: String,
    /// File to publish [default: stdin]
    file: Option<PathBuf>,
    /// Content bytes per segment
    #[arg(long, default_value_t = 8000)]
    segment_size: usize,
    /// Version number [default: microseconds since the Unix epoch]
    #[arg(long)]
    version: Option<u64>,
    /// FreshnessPeriod of segments in milliseconds
    #[arg(long, default_value_t = 10_000)]
    freshness: u64,
    /// Sign each segment when it is first requested instead of all before serving
    #[arg(long)]
    lazy_sign: bool,
    /// Concurrent answering tasks
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Accept consumer connections on this Unix socket instead of registering with a forwarder
    #[arg(long, value_name = "PATH")]
    listen: Option<PathBuf>,
    /// Stop serving after this many seconds [default: serve until interrupted]
    #[arg(long, value_name = "SECS")]
    serve_for: Option<u64>,
    /// Print the published name and sizes as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sign: SignArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `amicn put`.
pub(crate) fn run(args: PutArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: PutArgs) -> anyhow::Result<()> {
    let prefix: Name = args
        .prefix
        .parse()
        .with_context(|| format!("{:?} is not an NDN name", args.prefix))?;
    let content = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => {
            let mut v = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut v)
                .context("reading stdin")?;
            v
        }
    };
    let len = content.len();
    let setup = args.sign.setup()?;
    let producer = Producer::new(setup.signer.clone());
    let opts = PublishOptions {
        segment_size: args.segment_size,
        version: args.version,
        freshness_ms: args.freshness,
        sign_eagerly: !args.lazy_sign,
        signing_threads: 2,
    };
    let versioned = {
        let producer = producer.clone();
        let prefix = prefix.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .publish(&prefix, Bytes::from(content), &opts)
                .map_err(anyhow::Error::from)
        })
        .await??
    };
    let segments = amicn_producer::segment_count(len, args.segment_size);
    // Serve our certificate too, so consumers can fetch it by KeyLocator.
    let cert_prefix = setup.certificate.as_ref().map(|c| {
        producer.store().insert(c.data().clone());
        c.key_name()
    });

    let announce = || {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "name": versioned.to_string(),
                    "bytes": len,
                    "segments": segments,
                    "signer": cert_prefix.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "DigestSha256".into()),
                })
            );
        } else {
            println!("{versioned}");
        }
    };

    // Pre-signed segments are answered on the connection's reader task (no hand-off);
    // on-the-fly signing runs on worker tasks so it never stalls the connection.
    let inline = !args.lazy_sign;
    let prefixes: Vec<Name> = std::iter::once(prefix.clone())
        .chain(cert_prefix.clone())
        .collect();
    let serve = async {
        if let Some(path) = &args.listen {
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("listening on {}", path.display()))?;
            announce();
            loop {
                let (stream, _) = listener.accept().await?;
                let client = Client::from_stream(stream, ClientOptions::default());
                let producer = producer.clone();
                let prefixes = prefixes.clone();
                let workers = args.workers;
                tokio::spawn(async move {
                    for p in prefixes {
                        if inline {
                            let _ = producer.serve_inline(&client, p, false).await;
                        } else {
                            let rx = client.serve_local(p);
                            let (producer, client) = (producer.clone(), client.clone());
                            tokio::spawn(async move { producer.run(&client, rx, workers).await });
                        }
                    }
                    client.wait_connected(false).await;
                });
            }
        } else {
            let client = args.connect.client().await?;
            let mut tasks = Vec::new();
            for p in &prefixes {
                if p != &prefix && prefix.is_prefix_of(p) {
                    continue;
                }
                if inline {
                    producer
                        .serve_inline(&client, p.clone(), true)
                        .await
                        .with_context(|| format!("registering {p}"))?;
                } else {
                    let rx = client
                        .register(p.clone())
                        .await
                        .with_context(|| format!("registering {p}"))?;
                    let (producer, client) = (producer.clone(), client.clone());
                    let workers = args.workers;
                    tasks.push(tokio::spawn(async move {
                        producer.run(&client, rx, workers).await
                    }));
                }
            }
            announce();
            // The client reconnects and registers again by itself; serve until stopped.
            std::future::pending::<()>().await;
            drop(tasks);
            Ok(())
        }
    };
    let stop = async {
        match args.serve_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = serve => r,
        () = stop => Ok(()),
        r = tokio::signal::ctrl_c() => { r?; Ok(()) }
    }
}
