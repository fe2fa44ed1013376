//! `amicn ami read|connect|disconnect|limit`: signed commands to meters ([`amicn_ami::ops`]).
//!
//! Signed with the key of the node config given: the utility operator's (every command) or the
//! MDMS's (reads only; it also fetches its reading keys from the KMS and opens the readings).
//! `--as-meter`, `--target` and `--replay` send what the meters must refuse (a command signed
//! by a meter, one for another meter, a replayed copy), to check a deployment's refusals.

use std::sync::Arc;
use std::time::Duration;

use amicn_ami::provision::{load_anchor, load_credentials, load_meter_credentials};
use amicn_ami::reading::Obis;
use amicn_ami::{HeadEndKeys, KeyClient, MeterCommander, MeterOp, Trust, connect};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use super::node::{NodeArgs, parse_ids};

/// Flags of the meter commands.
#[derive(Debug, Args)]
pub(crate) struct MeterOpArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Meters, e.g. 7 or 1-50,77.
    #[arg(value_name = "METERS", required_unless_present = "meters_flag")]
    meters_pos: Option<String>,
    /// Meters, as a flag (the same as METERS).
    #[arg(long = "meters", value_name = "IDS", conflicts_with = "meters_pos")]
    meters_flag: Option<String>,
    /// `limit`: the load limit in kW after METERS (0 removes it; the same as --watts).
    #[arg(value_name = "KW")]
    kw: Option<f64>,
    /// Commands sent to each meter, one after the other (latency percentiles over all).
    #[arg(long, value_name = "N", default_value_t = 1)]
    repeat: u32,
    /// `limit`: the load limit in W (0 removes it).
    #[arg(long, value_name = "W")]
    watts: Option<u32>,
    /// Sign as meter ID of a meter node's keychain (meters must refuse it).
    #[arg(long, value_name = "ID")]
    as_meter: Option<u32>,
    /// Name meter ID in the parameters while addressing each meter (it must refuse).
    #[arg(long, value_name = "ID")]
    target: Option<u32>,
    /// Send each signed command a second time, unchanged (the copy must be refused).
    #[arg(long)]
    replay: bool,
    /// Exit 0 when every command was answered, even if meters refused some.
    #[arg(long)]
    allow_refused: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    meter: u32,
    /// Whether this answers the unchanged second copy of a command (`--replay`).
    replayed: bool,
    code: Option<u64>,
    text: String,
    connected: Option<bool>,
    limit_w: Option<u32>,
    energy_wh: Option<u64>,
    power_w: Option<u32>,
    sealed: bool,
    latency_us: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    verb: String,
    signer: String,
    commands: usize,
    answered: usize,
    ok: usize,
    refused: std::collections::BTreeMap<String, u64>,
    unanswered: usize,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
    rows: Vec<Row>,
}

fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

/// Entry point of the meter commands.
pub(crate) fn run(verb: &str, a: &MeterOpArgs) -> anyhow::Result<()> {
    let op = match verb {
        "read" => MeterOp::Read,
        "connect" => MeterOp::Connect,
        "disconnect" => MeterOp::Disconnect,
        "limit" => {
            let w = match (a.kw, a.watts) {
                (Some(kw), None) if kw.is_finite() && (0.0..=4_000_000.0).contains(&kw) => {
                    (kw * 1_000.0).round() as u32
                }
                (Some(kw), None) => bail!("load limit {kw} kW is out of range"),
                (None, Some(w)) => w,
                (Some(_), Some(_)) => bail!("give the limit once: KW or --watts W"),
                (None, None) => bail!("limit needs KW (or --watts W); 0 removes the limit"),
            };
            MeterOp::Limit((w > 0).then_some(w))
        }
        other => bail!("unknown meter command {other:?}"),
    };
    if verb != "limit" && (a.kw.is_some() || a.watts.is_some()) {
        bail!("only limit takes a load limit");
    }
    let role = match &a.node.config {
        Some(p) => amicn_ami::daemon::NodeConfig::load(p)?.0.role,
        None => None,
    };
    let role = role.unwrap_or_else(|| "operator".into());
    if !["operator", "mdms", "meter"].contains(&role.as_str()) {
        bail!("meter commands are signed by the operator or the MDMS, not a {role} node");
    }
    if role == "meter" && a.as_meter.is_none() {
        bail!("with a meter node's config, say which meter signs with --as-meter ID");
    }
    let node = a.node.node_for_tool(&role)?;
    let ids = parse_ids(
        a.meters_pos
            .as_deref()
            .or(a.meters_flag.as_deref())
            .unwrap_or_default(),
    )?;
    crate::cmd::fwd::init_logging(a.node.log_level.as_deref().or(Some("warn")), false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let probing = a.allow_refused || a.as_meter.is_some() || a.target.is_some() || a.replay;
    let summary = rt.block_on(async {
        let client = connect(&node.forwarder).await?;
        let creds = match a.as_meter {
            Some(m) => load_meter_credentials(&node.keychain, &node.names)?
                .into_iter()
                .find(|(id, _)| *id == m)
                .map(|(_, c)| c)
                .with_context(|| format!("no key of meter {m} in {}", node.keychain.display()))?,
            None => load_credentials(&node.keychain)?,
        };
        let signer = creds.key.key_name().to_string();
        let anchor = load_anchor(&node.anchor)?;
        let trust = Trust::new(&node.names, &anchor, &client)?;
        let keys = if role == "mdms" && a.as_meter.is_none() {
            let keys = Arc::new(HeadEndKeys::default());
            let kc = KeyClient::new(
                node.names.clone(),
                "mdms",
                creds.key.clone(),
                trust.clone(),
                &client,
                keys.clone(),
            );
            kc.refresh()
                .await
                .context("fetching the MDMS's reading keys")?;
            Some(keys)
        } else {
            None
        };
        let cmd = MeterCommander::new(node.names.clone(), creds, trust, &client, keys);
        let mut rows = Vec::new();
        for &id in &ids {
            for _ in 0..a.repeat.max(1) {
                let (i, wire) = cmd.signed(id, a.target.unwrap_or(id), op)?;
                let copies = if a.replay { 2 } else { 1 };
                for copy in 0..copies {
                    let row = match cmd.send_wire(id, &i, wire.clone()).await {
                        Ok(o) => Row {
                            meter: id,
                            replayed: copy == 1,
                            code: Some(o.status.code),
                            text: o.status.text.clone(),
                            connected: Some(o.supply.connected),
                            limit_w: o.supply.limit_w,
                            energy_wh: o.reading.as_ref().and_then(|r| r.active_import_wh()),
                            power_w: o.reading.as_ref().and_then(|r| r.active_power_w()),
                            sealed: o.sealed,
                            latency_us: Some(o.latency.as_micros() as u64),
                        },
                        Err(e) => Row {
                            meter: id,
                            replayed: copy == 1,
                            code: None,
                            text: format!("not answering: {e}"),
                            connected: None,
                            limit_w: None,
                            energy_wh: None,
                            power_w: None,
                            sealed: false,
                            latency_us: None,
                        },
                    };
                    rows.push(row);
                }
            }
        }
        let mut lat: Vec<u64> = rows.iter().filter_map(|r| r.latency_us).collect();
        lat.sort_unstable();
        let mut refused = std::collections::BTreeMap::new();
        for r in rows.iter().filter(|r| r.code.is_some_and(|c| c != 200)) {
            let kind = r.text.split(':').next().unwrap_or("").to_string();
            *refused.entry(kind).or_insert(0) += 1;
        }
        anyhow::Ok(Summary {
            verb: op.verb().to_string(),
            signer,
            commands: rows.len(),
            answered: rows.iter().filter(|r| r.code.is_some()).count(),
            ok: rows.iter().filter(|r| r.code == Some(200)).count(),
            refused,
            unanswered: rows.iter().filter(|r| r.code.is_none()).count(),
            p50_us: quantile(&lat, 0.5),
            p99_us: quantile(&lat, 0.99),
            rows,
        })
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_text(&summary);
    }
    if summary.unanswered > 0 {
        bail!(
            "{} command(s) got no answer (is the meter running and routed from this forwarder?)",
            summary.unanswered
        );
    }
    if !probing && summary.ok < summary.commands {
        bail!("{} command(s) refused", summary.commands - summary.ok);
    }
    Ok(())
}

fn print_text(s: &Summary) {
    for r in &s.rows {
        let state = match (r.connected, r.limit_w) {
            (Some(c), l) => format!(
                "relay {}{}",
                if c { "connected" } else { "open" },
                l.map(|w| format!(", limit {w} W")).unwrap_or_default()
            ),
            (None, _) => String::new(),
        };
        let reading = match (r.energy_wh, r.power_w, r.sealed) {
            (Some(e), Some(p), _) => format!("; {e} Wh ({}), {p} W", Obis::ACTIVE_IMPORT_ENERGY),
            (_, _, true) => "; reading sealed (no reading key)".into(),
            _ => String::new(),
        };
        println!(
            "meter {}{}: {} {}; {state}{reading}{}",
            r.meter,
            if r.replayed { " (replayed copy)" } else { "" },
            r.code.map(|c| c.to_string()).unwrap_or_else(|| "—".into()),
            r.text,
            r.latency_us
                .map(|u| format!(" [{:.1} ms]", Duration::from_micros(u).as_secs_f64() * 1e3))
                .unwrap_or_default()
        );
    }
    let ms = |u: Option<u64>| {
        u.map(|u| format!("{:.1} ms", u as f64 / 1e3))
            .unwrap_or_else(|| "—".into())
    };
    println!(
        "{} {} command(s) signed by {}: {} done, {} refused {:?}, {} unanswered; latency p50 {}, p99 {}",
        s.commands,
        s.verb,
        s.signer,
        s.ok,
        s.answered - s.ok,
        s.refused,
        s.unanswered,
        ms(s.p50_us),
        ms(s.p99_us)
    );
}
