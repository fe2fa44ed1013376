//! `amicn get`: fetch a segmented object to a file or stdout.

use std::path::{Path, PathBuf};

use amicn_consumer::trust::{TrustAnchor, TrustMode};
use amicn_consumer::{Consumer, Discovery, FetchOptions, Progress};
use amicn_kms::trust::TrustPolicy;
use amicn_tlv::Name;
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::key::{ConnectArgs, read_anchor};

/// The error of `amicn get` / `amicn peek` when no trust policy was chosen.
pub(crate) fn no_anchor_help(tool: &str) -> String {
    format!(
        "no trust anchor configured: amicn {tool} will not guess whom to believe.\n\
         Add one with --trust-anchor FILE, the certificate of the signer or of the authority \
         that issued its certificate (on the publisher: `amicn key cert <identity> -o FILE`, \
         or `ndnsec cert-dump -i <identity>`).\n\
         To check only that signatures match the keys their KeyLocators name (integrity, not \
         origin), pass --integrity-only; to skip verification, --no-verify."
    )
}

/// Reads `--trust-policy FILE` (TOML `[[rule]]` tables); without one any key may sign any
/// name. Returns the policy and the words `get` and `peek` add to the policy they report.
pub(crate) fn read_policy(path: Option<&Path>) -> anyhow::Result<(TrustPolicy, String)> {
    let Some(path) = path else {
        return Ok((TrustPolicy::any_signer(), String::new()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--trust-policy: reading {}", path.display()))?;
    let policy = TrustPolicy::from_toml(&text)
        .with_context(|| format!("--trust-policy {}", path.display()))?;
    let ids: Vec<&str> = policy
        .config()
        .rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    let words = format!(
        "; name rules from {} ({} rule(s): {})",
        path.display(),
        ids.len(),
        ids.join(", ")
    );
    Ok((policy, words))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiscoveryArg {
    /// `32=metadata`, then CanBePrefix
    Auto,
    /// `32=metadata` only (ndnget)
    Metadata,
    /// CanBePrefix + MustBeFresh
    Prefix,
    /// The name is already versioned
    Exact,
}

/// Fetch a versioned, segmented object (as published by `amicn put`, ndnputchunks or python-ndn).
#[derive(Debug, Args)]
#[command(
    after_help = "Signatures are always verified: Ed25519, ECDSA P-256 and RSA segments against the
certificate named in KeyLocator (fetched and cached), DigestSha256 segments by recomputing the
digest. FinalBlockId and the version are believed only from segments that verify; a segment
that fails is asked for again (MustBeFresh, new Nonce) and the fetch stops after
--verify-retries failures. A trust policy must be chosen: --trust-anchor (the signer must chain
to one of the given certificates, binary or base64 as `ndnsec cert-dump` prints it), or
--integrity-only (signatures checked, signer not), or --no-verify. With --trust-policy FILE the
packet and every certificate on its chain must also satisfy the file's name rules (TOML
`[[rule]]` tables with `id`, `data`, `signer`; the first rule whose data pattern matches
decides), e.g.

  [[rule]]
  id = \"dataset\"
  data = \"/example-utility/dataset/...\"
  signer = \"/example-utility/mdms/KEY/...\"

Examples:
  amicn get --trust-anchor mdms.cert /example-utility/dataset/june -o june.csv
  amicn get --trust-anchor root.cert --trust-policy trust.toml /example-utility/dataset/june
  amicn get --integrity-only /example-utility/tariffs > t.json
  amicn get --json --connect tcp://10.0.0.1 /lab/logs -o logs.tar"
)]
pub(crate) struct GetArgs {
    /// Object name (prefix; a version is discovered unless it ends in v=)
    name: String,
    /// Output file [default: stdout]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// How the latest version is found
    #[arg(long, value_enum, default_value = "auto")]
    discovery: DiscoveryArg,
    /// Certificate file (`amicn key cert`, or `ndnsec cert-dump` base64) of a trusted signer; repeatable
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<PathBuf>,
    /// TOML trust policy: which key may sign which names (see below)
    #[arg(long, value_name = "FILE", conflicts_with = "no_verify")]
    trust_policy: Option<PathBuf>,
    /// With --trust-anchor, still accept DigestSha256-signed segments
    #[arg(long)]
    allow_digest: bool,
    /// Without a trust anchor: check every signature against the key its KeyLocator names, but
    /// not who that key belongs to
    #[arg(long, conflicts_with_all = ["trust_anchor", "no_verify"])]
    integrity_only: bool,
    /// Do not verify signatures
    #[arg(long, conflicts_with = "trust_anchor")]
    no_verify: bool,
    /// Times a segment that fails verification is fetched again before the fetch fails
    #[arg(long, default_value_t = 3)]
    verify_retries: u32,
    /// Largest congestion window (Interests in flight)
    #[arg(long, default_value_t = 512.0)]
    max_window: f64,
    /// Retransmissions per segment
    #[arg(long, default_value_t = 15)]
    retries: u32,
    /// No progress bar
    #[arg(short, long)]
    quiet: bool,
    /// Print the transfer summary as JSON (on stdout when writing to a file, else stderr)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `amicn get`.
pub(crate) fn run(args: GetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: GetArgs) -> anyhow::Result<()> {
    let name: Name = args
        .name
        .parse()
        .with_context(|| format!("{:?} is not an NDN name", args.name))?;
    let mode = if args.no_verify {
        TrustMode::AcceptAll
    } else if args.integrity_only {
        TrustMode::Integrity
    } else if args.trust_anchor.is_empty() {
        anyhow::bail!("{}", no_anchor_help("get"));
    } else {
        let mut anchors = Vec::new();
        for p in &args.trust_anchor {
            anchors.push(TrustAnchor::from_certificate(&read_anchor(p)?)?);
        }
        TrustMode::Anchored(anchors)
    };
    let allow_digest = args.trust_anchor.is_empty() || args.allow_digest;
    let (rules, rule_words) = read_policy(args.trust_policy.as_deref())?;
    let policy = match &mode {
        TrustMode::AcceptAll => "none: signatures not checked (--no-verify)".to_owned(),
        TrustMode::Integrity => "integrity only: each signature checked against the key its \
             KeyLocator names, which anyone can create (give --trust-anchor to check who signed)"
            .to_owned(),
        TrustMode::Anchored(a) => format!(
            "anchored: signers must chain to {} trust anchor(s){}",
            a.len(),
            if allow_digest {
                ", DigestSha256 also accepted"
            } else {
                ""
            }
        ),
    } + &rule_words;
    let client = args.connect.client().await?;
    let consumer = Consumer::new(client).with_trust_policy(mode, allow_digest, rules);
    let opts = FetchOptions {
        discovery: match args.discovery {
            DiscoveryArg::Auto => Discovery::Auto,
            DiscoveryArg::Metadata => Discovery::Metadata,
            DiscoveryArg::Prefix => Discovery::CanBePrefix,
            DiscoveryArg::Exact => Discovery::Exact,
        },
        max_window: args.max_window,
        max_retries: args.retries,
        verify_retries: args.verify_retries,
        ..FetchOptions::default()
    };

    let show_bar = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = indicatif::ProgressBar::hidden();
    if show_bar {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes} {binary_bytes_per_sec} [{bar:30}] {pos}/{len} segments {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let mut on_progress = |p: &Progress| {
        if let Some(t) = p.total_segments {
            bar.set_length(t);
        }
        bar.set_position(p.segments);
        bar.set_message(format!("window {} retx {}", p.window, p.retransmissions));
    };

    let summary = match &args.output {
        Some(path) => {
            let file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
            consumer
                .fetch_object(&name, &opts, &mut w, &mut on_progress)
                .await
        }
        None => {
            let mut w = tokio::io::BufWriter::with_capacity(1 << 20, tokio::io::stdout());
            consumer
                .fetch_object(&name, &opts, &mut w, &mut on_progress)
                .await
        }
    };
    bar.finish_and_clear();
    let s = summary?;
    let srtt_ms = s.srtt.map(|d| d.as_secs_f64() * 1e3);
    if args.json {
        let j = serde_json::json!({
            "name": s.versioned_name.to_string(),
            "bytes": s.bytes,
            "segments": s.segments,
            "seconds": s.elapsed.as_secs_f64(),
            "mb_per_s": s.mbps(),
            "retransmissions": s.retransmissions,
            "timeouts": s.timeouts,
            "congestion_marks": s.congestion_marks,
            "nacks": s.nacks,
            "window_decreases": s.window_decreases,
            "max_window": s.max_window,
            "srtt_ms": srtt_ms,
            "verify_failures": s.verify_failures,
            "verify_refetches": s.verify_refetches,
            "trust": policy,
        });
        if args.output.is_some() {
            println!("{j}");
        } else {
            eprintln!("{j}");
        }
    } else if !args.quiet {
        eprintln!(
            "{}: {} bytes in {} segments, {:.3} s, {:.1} MB/s (retransmissions {}, congestion marks {}, max window {}, srtt {})",
            s.versioned_name,
            s.bytes,
            s.segments,
            s.elapsed.as_secs_f64(),
            s.mbps(),
            s.retransmissions,
            s.congestion_marks,
            s.max_window,
            srtt_ms
                .map(|m| format!("{m:.2} ms"))
                .unwrap_or_else(|| "-".into()),
        );
        if s.verify_failures > 0 {
            eprintln!(
                "{} segment(s) failed verification and were fetched again ({} refetches)",
                s.verify_failures, s.verify_refetches
            );
        }
        eprintln!("trust policy applied: {policy}");
    }
    Ok(())
}
