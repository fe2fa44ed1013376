//! The networked demo's meter operations: on-demand reads by the MDMS, remote disconnect,
//! load limit and reconnect by the utility operator, and the commands meters must refuse
//! (signed by the MDMS or a meter, replayed, for another meter), each through `amicn ami`
//! against the running meter daemons.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::mesh::{Latency, args, latency_of, run_tool};
use super::netdemo::Check;

/// What the operations step measured.
pub(crate) struct OpsOutcome {
    pub(crate) checks: Vec<Check>,
    pub(crate) latency: BTreeMap<String, Latency>,
    pub(crate) summary: Value,
}

/// Where the tools find the deployment.
pub(crate) struct OpsPlan<'a> {
    pub(crate) exe: &'a Path,
    pub(crate) prov: &'a Path,
    pub(crate) head_uri: &'a str,
    /// Members to read on demand.
    pub(crate) members: Vec<u32>,
    /// The meter switched, limited and probed.
    pub(crate) target: u32,
    /// Another member (named in the parameters of a command sent to `target`).
    pub(crate) other: u32,
    /// A meter node and one of its meters, to sign a command as that meter.
    pub(crate) meter_node: (String, u32),
}

fn ids(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

impl OpsPlan<'_> {
    fn node(&self, n: &str) -> String {
        self.prov.join(n).join("node.toml").display().to_string()
    }

    /// Runs `amicn ami <verb> --json` with the node config `node`; the parsed summary or the
    /// tool's error.
    fn tool(&self, verb: &str, node: &str, extra: &[&str]) -> Result<Value, String> {
        let mut a = args(&[
            "ami",
            verb,
            "-c",
            &self.node(node),
            "--forwarder",
            self.head_uri,
            "--json",
        ]);
        a.extend(args(extra));
        let out = run_tool(self.exe, &a)?;
        serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
    }
}

fn rows(v: &Result<Value, String>) -> Vec<Value> {
    v.as_ref()
        .ok()
        .and_then(|v| v["rows"].as_array().cloned())
        .unwrap_or_default()
}

fn code(r: &Value) -> Option<u64> {
    r["code"].as_u64()
}

fn kind_is(r: &Value, code_want: u64, kind: &str) -> bool {
    code(r) == Some(code_want)
        && r["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("{kind}: ")))
}

fn brief(v: &Result<Value, String>) -> String {
    match v {
        Ok(v) => rows(&Ok(v.clone()))
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["code"].as_u64().map_or("-".into(), |c| c.to_string()),
                    r["text"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs the operations against the deployment and judges them.
pub(crate) fn run(p: &OpsPlan<'_>) -> OpsOutcome {
    let mut checks = Vec::new();
    let mut add = |name: &str, pass: bool, detail: String| {
        checks.push(Check {
            name: name.to_string(),
            pass,
            detail,
        })
    };
    let t = p.target.to_string();

    // 1. On-demand reads of every member by the MDMS, twice each.
    let reads = p.tool(
        "read",
        "mdms",
        &["--meters", &ids(&p.members), "--repeat", "2"],
    );
    let read_rows = rows(&reads);
    let opened = read_rows
        .iter()
        .filter(|r| code(r) == Some(200) && r["energy_wh"].as_u64().is_some())
        .count();
    let samples: Vec<u64> = read_rows
        .iter()
        .filter_map(|r| r["latency_us"].as_u64())
        .collect();
    let (read_lat, _) = latency_of(&json!({ "samples_us": samples, "count": samples.len() }));
    add(
        "on-demand read: every member answers the MDMS's signed command with a fresh sealed reading, well under 15 s",
        opened == p.members.len() * 2 && read_lat.p99_us.is_some_and(|u| u < 15_000_000),
        format!(
            "{opened}/{} readings opened; p50 {:?} µs, p99 {:?} µs",
            p.members.len() * 2,
            read_lat.p50_us,
            read_lat.p99_us
        ),
    );

    // 2. Disconnect, read, limit, read, reconnect.
    let mut cmd_samples = Vec::new();
    let mut note = |v: &Result<Value, String>| {
        cmd_samples.extend(rows(v).iter().filter_map(|r| r["latency_us"].as_u64()));
    };
    let cut = p.tool("disconnect", "operator", &["--meters", &t]);
    note(&cut);
    let after_cut = p.tool("read", "mdms", &["--meters", &t]);
    let limit = p.tool("limit", "operator", &["--meters", &t, "--watts", "800"]);
    note(&limit);
    let reconnect = p.tool("connect", "operator", &["--meters", &t]);
    note(&reconnect);
    let after_limit = p.tool("read", "mdms", &["--meters", &t]);
    let unlimit = p.tool("limit", "operator", &["--meters", &t, "--watts", "0"]);
    note(&unlimit);
    let first = |v: &Result<Value, String>| rows(v).into_iter().next().unwrap_or(Value::Null);
    let (c, ac, l, rc, al, ul) = (
        first(&cut),
        first(&after_cut),
        first(&limit),
        first(&reconnect),
        first(&after_limit),
        first(&unlimit),
    );
    add(
        "remote disconnect and reconnect: the operator's commands switch the relay; the meter's reading shows it",
        code(&c) == Some(200)
            && c["connected"] == json!(false)
            && ac["connected"] == json!(false)
            && ac["power_w"] == json!(0)
            && code(&rc) == Some(200)
            && rc["connected"] == json!(true),
        format!(
            "disconnect: {}; reading after: relay connected={}, {} W; reconnect: {}",
            brief(&cut),
            ac["connected"],
            ac["power_w"],
            brief(&reconnect)
        ),
    );
    add(
        "load limit: the operator's limit caps what the meter draws and is removed again",
        code(&l) == Some(200)
            && l["limit_w"] == json!(800)
            && al["limit_w"] == json!(800)
            && al["power_w"].as_u64().is_some_and(|w| w <= 800)
            && code(&ul) == Some(200)
            && ul["limit_w"].is_null(),
        format!(
            "limit: {}; reading: {} W under limit {}; removed: {}",
            brief(&limit),
            al["power_w"],
            al["limit_w"],
            brief(&unlimit)
        ),
    );

    // 3. What meters must refuse.
    let by_mdms = p.tool("disconnect", "mdms", &["--meters", &t, "--allow-refused"]);
    let (mnode, mid) = &p.meter_node;
    let by_meter = p.tool(
        "disconnect",
        mnode,
        &["--meters", &t, "--as-meter", &mid.to_string()],
    );
    let replay = p.tool("disconnect", "operator", &["--meters", &t, "--replay"]);
    let restore = p.tool("connect", "operator", &["--meters", &t]);
    let wrong = p.tool(
        "disconnect",
        "operator",
        &["--meters", &t, "--target", &p.other.to_string()],
    );
    let after = p.tool("read", "mdms", &["--meters", &t]);
    add(
        "authority: a disconnect signed by the MDMS or by a meter is refused",
        kind_is(&first(&by_mdms), 403, "signer") && kind_is(&first(&by_meter), 403, "signer"),
        format!(
            "MDMS: {}; meter {mid}: {}",
            brief(&by_mdms),
            brief(&by_meter)
        ),
    );
    let rr = rows(&replay);
    add(
        "replay: the same signed disconnect sent twice is executed once, the copy refused",
        rr.len() == 2 && code(&rr[0]) == Some(200) && kind_is(&rr[1], 403, "replay"),
        brief(&replay),
    );
    add(
        "wrong meter: a command naming another meter is refused by the meter it reaches",
        kind_is(&first(&wrong), 404, "wrong-meter")
            && code(&first(&restore)) == Some(200)
            && first(&after)["connected"] == json!(true),
        format!(
            "{}; the meter stays connected: {}",
            brief(&wrong),
            first(&after)["connected"]
        ),
    );
    let (cmd_lat, _) =
        latency_of(&json!({ "samples_us": cmd_samples, "count": cmd_samples.len() }));
    let mut latency = BTreeMap::new();
    latency.insert("on-demand read".to_string(), read_lat);
    latency.insert("meter command".to_string(), cmd_lat);
    let summary = json!({
        "reads": reads.as_ref().ok().map(|v| json!({
            "commands": v["commands"], "ok": v["ok"], "p50_us": v["p50_us"], "p99_us": v["p99_us"],
        })),
        "target": p.target,
        "refusals": {
            "mdms_disconnect": brief(&by_mdms),
            "meter_disconnect": brief(&by_meter),
            "replay": brief(&replay),
            "wrong_meter": brief(&wrong),
        },
    });
    OpsOutcome {
        checks,
        latency,
        summary,
    }
}

/// The meter daemons' own count of refused commands, summed over `groups`' snapshots.
pub(crate) fn refused_by_meters(metrics: &[Option<Value>]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for v in metrics.iter().flatten() {
        if let Some(c) = v["counters"].as_object() {
            for (k, n) in c {
                if let Some(kind) = k.strip_prefix("commands_refused_") {
                    *out.entry(kind.to_string()).or_insert(0.0) += n.as_f64().unwrap_or(0.0);
                }
            }
        }
    }
    out
}
