//! `amicn peek`: send one Interest and print the Data that answers it.

use std::io::Write;
use std::time::Duration;

use amicn_consumer::trust::{TrustAnchor, TrustMode};
use amicn_consumer::{Consumer, ConsumerOptions};
use amicn_tlv::{Data, Interest, KeyLocator, Name};
use anyhow::Context;
use clap::Args;

use super::key::{ConnectArgs, read_anchor};

/// Express one Interest and print the Data (ndnpeek).
#[derive(Debug, Args)]
#[command(
    after_help = "By default the Data packet (wire format) is written to stdout, as ndnpeek does,
without verification. --trust-anchor or --integrity-only verify it first (--verify needs one
of them); the policy applied is printed on stderr.

Examples:
  amicn peek -p /example-utility/ami/price/residential --prefix --fresh
  amicn peek --json /localhost/nfd/status/general --prefix --fresh
  amicn peek /example-utility/dataset/june/v=1700000000/seg=0 > seg0.tlv
  amicn peek --trust-anchor mdms.cert -p /example-utility/tariffs/v=1/seg=0"
)]
pub(crate) struct PeekArgs {
    /// Interest name
    name: String,
    /// Set CanBePrefix
    #[arg(short = 'P', long)]
    prefix: bool,
    /// Set MustBeFresh
    #[arg(short = 'f', long)]
    fresh: bool,
    /// InterestLifetime in milliseconds
    #[arg(short = 'l', long, default_value_t = 4000)]
    lifetime: u64,
    /// Retransmissions after a timeout
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Print only the Content
    #[arg(short = 'p', long)]
    payload: bool,
    /// Verify the signature (DigestSha256, or Ed25519 / ECDSA / RSA via the certificate in
    /// KeyLocator) under --trust-anchor or --integrity-only
    #[arg(long)]
    verify: bool,
    /// Certificate file of a trusted signer (implies --verify); repeatable
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<std::path::PathBuf>,
    /// TOML trust policy (as for `amicn get`): which key may sign which names; needs
    /// --trust-anchor or --integrity-only
    #[arg(long, value_name = "FILE")]
    trust_policy: Option<std::path::PathBuf>,
    /// With --trust-anchor, still accept a DigestSha256 signature
    #[arg(long)]
    allow_digest: bool,
    /// Verify without a trust anchor: the signature must match the key its KeyLocator names
    /// (implies --verify)
    #[arg(long, conflicts_with = "trust_anchor")]
    integrity_only: bool,
    /// Print a JSON description of the Data instead
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// A JSON description of a Data packet (shared with `poke`/`ping` output).
pub(crate) fn data_json(d: &Data) -> serde_json::Value {
    let content = match std::str::from_utf8(&d.content) {
        Ok(s) if !s.contains('\0') => serde_json::json!({ "utf8": s }),
        _ => serde_json::json!({ "hex": hex::encode(&d.content) }),
    };
    serde_json::json!({
        "name": d.name.to_string(),
        "content_type": d.meta_info.content_type,
        "freshness_ms": d.meta_info.freshness_period_ms,
        "final_block_id": d.meta_info.final_block_id.as_ref().map(|c| c.to_string()),
        "signature_type": d.signature_info.sig_type,
        "key_locator": match &d.signature_info.key_locator {
            Some(KeyLocator::Name(n)) => Some(n.to_string()),
            Some(KeyLocator::KeyDigest(k)) => Some(format!("digest:{}", hex::encode(k))),
            None => None,
        },
        "content_length": d.content.len(),
        "content": content,
    })
}

/// Runs `amicn peek`.
pub(crate) fn run(args: PeekArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let name: Name = args
            .name
            .parse()
            .with_context(|| format!("{:?} is not an NDN name", args.name))?;
        let client = args.connect.client().await?;
        let mut consumer = Consumer::new(client).with_options(ConsumerOptions {
            max_retries: args.retries,
            lifetime: Duration::from_millis(args.lifetime),
        });
        let (rules, rule_words) = super::get::read_policy(args.trust_policy.as_deref())?;
        let policy = if !args.trust_anchor.is_empty() {
            let mut anchors = Vec::new();
            for p in &args.trust_anchor {
                anchors.push(TrustAnchor::from_certificate(&read_anchor(p)?)?);
            }
            let n = anchors.len();
            consumer =
                consumer.with_trust_policy(TrustMode::Anchored(anchors), args.allow_digest, rules);
            Some(format!(
                "anchored: the signer must chain to {n} trust anchor(s){}{rule_words}",
                if args.allow_digest {
                    ", DigestSha256 also accepted"
                } else {
                    ""
                }
            ))
        } else if args.integrity_only {
            consumer = consumer.with_trust_policy(TrustMode::Integrity, true, rules);
            Some(format!(
                "integrity only: the signature checked against the key its KeyLocator names, \
                 which anyone can create{rule_words}"
            ))
        } else if args.verify || args.trust_policy.is_some() {
            anyhow::bail!("{}", super::get::no_anchor_help("peek"));
        } else {
            None
        };
        let mut interest = Interest::new(name);
        interest.can_be_prefix = args.prefix;
        interest.must_be_fresh = args.fresh;
        interest.lifetime_ms = Some(args.lifetime);
        let data = consumer.fetch(interest).await?;
        if let Some(p) = &policy {
            eprintln!("trust policy applied: {p}");
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", data_json(&data))?;
        } else if args.payload {
            out.write_all(&data.content)?;
        } else {
            out.write_all(&data.wire().cloned().unwrap_or_else(|| data.encode()))?;
        }
        out.flush()?;
        Ok(())
    })
}
