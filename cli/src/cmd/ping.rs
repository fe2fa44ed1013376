//! `amicn ping` / `amicn ping-server`: reachability and round-trip time, with ndnping's name
//! scheme (`/<prefix>/ping/<seq>`, MustBeFresh) so either side interoperates with ndn-tools.

use std::time::{Duration, Instant};

use amicn_face::client::{ClientError, Reply};
use amicn_producer::{DigestSigner, Producer};
use amicn_tlv::{Component, Data, Interest, Name};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::key::{ConnectArgs, SignArgs};

/// Ping a prefix served by `amicn ping-server` or ndnpingserver.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  amicn ping /example-utility/router1 -c 5
  amicn ping --json -c 100 -i 10 /lab/node2")]
pub(crate) struct PingArgs {
    /// Prefix the server answers under (Interests are `/<prefix>/ping/<seq>`)
    prefix: String,
    /// Number of pings [default: until interrupted]
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Interval between pings in milliseconds
    #[arg(short = 'i', long, default_value_t = 1000)]
    interval: u64,
    /// InterestLifetime in milliseconds
    #[arg(short = 't', long, default_value_t = 4000)]
    timeout: u64,
    /// First sequence number [default: random]
    #[arg(short = 'n', long)]
    start_seq: Option<u64>,
    /// One JSON object per reply, then a summary object
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Answer pings under a prefix (ndnpingserver).
#[derive(Debug, Args)]
#[command(
    after_help = "Replies are DigestSha256-signed like ndnpingserver's unless --identity is given.

Examples:
  amicn ping-server /example-utility/router1
  amicn ping-server -s 1000 /lab/node2"
)]
pub(crate) struct PingServerArgs {
    /// Prefix to answer under (registers `/<prefix>/ping`)
    prefix: String,
    /// Payload size of each reply in bytes
    #[arg(short = 's', long, default_value_t = 0)]
    size: usize,
    /// FreshnessPeriod of replies in milliseconds
    #[arg(short = 'x', long, default_value_t = 1000)]
    freshness: u64,
    /// Exit after this many pings
    #[arg(short = 'p', long)]
    max_pings: Option<u64>,
    /// Sign with this identity instead of DigestSha256
    #[arg(long)]
    identity: Option<String>,
    #[command(flatten)]
    keychain: super::key::KeychainArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `amicn ping`.
pub(crate) fn run(args: PingArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let prefix: Name = args.prefix.parse().with_context(|| format!("{:?} is not an NDN name", args.prefix))?;
        let client = args.connect.client().await?;
        let mut seq = args.start_seq.unwrap_or_else(|| u64::from(rand::random::<u32>()));
        let (mut sent, mut received, mut nacked) = (0u64, 0u64, 0u64);
        let mut rtts: Vec<f64> = Vec::new();
        let base = prefix.append(Component::generic(Bytes::from_static(b"ping")));
        if !args.json {
            println!("PING {base}");
        }
        let started = Instant::now();
        loop {
            if args.count.is_some_and(|c| sent >= c) {
                break;
            }
            let mut i = Interest::new(base.append(Component::generic(Bytes::from(seq.to_string().into_bytes()))));
            i.must_be_fresh = true;
            i.nonce = Some(rand::random());
            i.lifetime_ms = Some(args.timeout);
            let t0 = Instant::now();
            sent += 1;
            let reply = client.express(&i).await;
            let rtt_ms = t0.elapsed().as_secs_f64() * 1e3;
            let (status, reason) = match reply {
                Ok(Reply::Data { .. }) => {
                    received += 1;
                    rtts.push(rtt_ms);
                    ("data", None)
                }
                Ok(Reply::Nack { reason }) => {
                    nacked += 1;
                    ("nack", Some(format!("{reason:?}")))
                }
                Err(ClientError::Timeout { .. }) => ("timeout", None),
                Err(e) => return Err(e.into()),
            };
            if args.json {
                println!("{}", serde_json::json!({"seq": seq, "status": status, "rtt_ms": (status == "data").then_some(rtt_ms), "reason": reason}));
            } else {
                match status {
                    "data" => println!("content from {base}: seq={seq} time={rtt_ms:.3} ms"),
                    "nack" => println!("nack from {base}: seq={seq} reason={}", reason.unwrap_or_default()),
                    _ => println!("timeout from {base}: seq={seq}"),
                }
            }
            seq = seq.wrapping_add(1);
            if args.count.is_none_or(|c| sent < c) {
                let wait = Duration::from_millis(args.interval).saturating_sub(t0.elapsed());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        let loss = if sent > 0 { 100.0 * (sent - received) as f64 / sent as f64 } else { 0.0 };
        let (min, max) = rtts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        let avg = if rtts.is_empty() { 0.0 } else { rtts.iter().sum::<f64>() / rtts.len() as f64 };
        if args.json {
            println!(
                "{}",
                serde_json::json!({"summary": {"sent": sent, "received": received, "nacked": nacked, "loss_percent": loss,
                    "rtt_min_ms": (!rtts.is_empty()).then_some(min), "rtt_avg_ms": (!rtts.is_empty()).then_some(avg),
                    "rtt_max_ms": (!rtts.is_empty()).then_some(max), "seconds": started.elapsed().as_secs_f64()}})
            );
        } else {
            println!("\n--- {base} ping statistics ---");
            println!("{sent} packets transmitted, {received} received, {nacked} nacked, {loss:.1}% lost");
            if !rtts.is_empty() {
                println!("rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
            }
        }
        if received == 0 && sent > 0 {
            anyhow::bail!("no replies from {base}");
        }
        Ok(())
    })
}

/// Runs `amicn ping-server`.
pub(crate) fn run_server(args: PingServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let prefix: Name = args
            .prefix
            .parse()
            .with_context(|| format!("{:?} is not an NDN name", args.prefix))?;
        let base = prefix.append(Component::generic(Bytes::from_static(b"ping")));
        let signer = if args.identity.is_some() {
            let s = SignArgs {
                digest: false,
                identity: args.identity.clone(),
                keychain: args.keychain.clone(),
            };
            s.setup()?.signer
        } else {
            std::sync::Arc::new(DigestSigner)
        };
        let producer = Producer::new(signer);
        let payload = Bytes::from(vec![b'a'; args.size]);
        let client = args.connect.client().await?;
        let mut rx = client
            .register(base.clone())
            .await
            .with_context(|| format!("registering {base}"))?;
        println!("ping-server on {base}");
        let mut answered = 0u64;
        while let Some(incoming) = rx.recv().await {
            // ndnping protocol: /<prefix>/ping/<seq> or /<prefix>/ping/<client-id>/<seq>.
            let extra = incoming.interest.name.len().saturating_sub(base.len());
            if !(1..=2).contains(&extra) {
                continue;
            }
            let mut d = Data::new(incoming.interest.name.clone(), payload.clone());
            d.meta_info.freshness_period_ms = Some(args.freshness);
            let wire = producer.sign_data(d)?;
            client.put_data(wire, incoming.pit_token.as_ref()).await?;
            answered += 1;
            if args.max_pings.is_some_and(|m| answered >= m) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                break;
            }
        }
        Ok(())
    })
}
