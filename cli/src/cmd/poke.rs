//! `amicn poke`: publish one Data and answer the first Interest for it.

use std::io::Read;
use std::time::Duration;

use amicn_producer::Producer;
use amicn_tlv::{Data, Name};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;

use super::key::{ConnectArgs, SignArgs};

/// Serve one Data packet with content from stdin (ndnpoke).
#[derive(Debug, Args)]
#[command(
    after_help = "Registers the name, answers the first Interest it receives, then exits.

Examples:
  echo 'tariff 0.21' | amicn poke /example-utility/ami/price/residential/v=3
  amicn poke --digest --content hello /lab/hello"
)]
pub(crate) struct PokeArgs {
    /// Data name
    name: String,
    /// Content (instead of stdin)
    #[arg(long)]
    content: Option<String>,
    /// FreshnessPeriod in milliseconds
    #[arg(short = 'x', long, default_value_t = 10_000)]
    freshness: u64,
    /// Set FinalBlockId to the last name component
    #[arg(short = 'F', long)]
    final_block: bool,
    /// Give up if no Interest arrives within this many milliseconds
    #[arg(short = 'w', long, default_value_t = 10_000)]
    timeout: u64,
    #[command(flatten)]
    sign: SignArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `amicn poke`.
pub(crate) fn run(args: PokeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let name: Name = args.name.parse().with_context(|| format!("{:?} is not an NDN name", args.name))?;
        let content = match &args.content {
            Some(c) => Bytes::from(c.clone().into_bytes()),
            None => {
                let mut v = Vec::new();
                std::io::stdin().lock().read_to_end(&mut v)?;
                Bytes::from(v)
            }
        };
        let setup = args.sign.setup()?;
        let producer = Producer::new(setup.signer);
        let mut data = Data::new(name.clone(), content);
        data.meta_info.freshness_period_ms = Some(args.freshness);
        if args.final_block {
            data.meta_info.final_block_id = name.get(name.len().wrapping_sub(1));
        }
        let wire = producer.sign_data(data)?;
        let client = args.connect.client().await?;
        let mut rx = client.register(name.clone()).await.with_context(|| format!("registering {name}"))?;
        let deadline = tokio::time::sleep(Duration::from_millis(args.timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                incoming = rx.recv() => {
                    let Some(incoming) = incoming else { bail!("connection to the forwarder closed") };
                    let i = &incoming.interest;
                    let matches = i.name == name || (i.can_be_prefix && i.name.is_prefix_of(&name));
                    if matches {
                        client.put_data(wire.clone(), incoming.pit_token.as_ref()).await?;
                        // Give the writer a moment to flush before the process exits.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return Ok(());
                    }
                }
                () = &mut deadline => bail!("no Interest for {name} within {} ms", args.timeout),
            }
        }
    })
}
