//! `amicn bench chaos`: kill loops. A whole AMI on one forwarder (`super::lab`) runs while the
//! forwarder, the KMS, the MDMS, the repository and a meter group are SIGKILLed in a seeded
//! random order, at random moments, each restarted on its own state:
//!
//! - before each KMS kill a membership change is sent, so the KMS dies with a rekey staged;
//! - every kill races a signed repository insert that is in flight when the process dies;
//! - after each restart the bench waits for recovery: every member back at the KMS's epoch, a
//!   reading newer than the kill from every meter, and a repository insert acknowledged.
//!
//! Judged throughout: no reading the MDMS had committed is lost, no meter's energy register
//! goes back, no acknowledged insert is missing, the KMS's epoch never goes back, no process
//! exits on its own, and every SQLite file passes `PRAGMA integrity_check` at the end. The
//! report goes to the terminal (text or JSON) and to `--out`: `summary.json`, `kills.csv` and
//! `recovery.png`. The exit status is non-zero when a check fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::bench::parse_duration;
use super::lab::{FORWARDER, KMS, Lab, LabSpec, MDMS, REPO, sqlite_intact, time_until};

/// Options of `amicn bench chaos`.
#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Kills of each role (forwarder, KMS, MDMS, repository, one meter group).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    kills: u32,
    /// Roles to kill (default all): fwd, kms, mdms, repo, meters.
    #[arg(long, value_delimiter = ',', value_parser = ["fwd", "kms", "mdms", "repo", "meters"])]
    roles: Vec<String>,
    /// Simulated meters.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(2..=5_000))]
    meters: u32,
    /// Meter group processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// Reading interval of every meter.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    interval: Duration,
    /// Longest random pause between one recovery and the next kill.
    #[arg(long, default_value = "1500ms", value_parser = parse_duration)]
    max_delay: Duration,
    /// Longest a recovery may take before the kill counts as failed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    recovery_limit: Duration,
    /// Seed of the kill order and timing (default: from the clock; printed for reruns).
    #[arg(long)]
    seed: Option<u64>,
    /// Report directory.
    #[arg(long, default_value = "chaos-report")]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// One kill and what followed.
#[derive(Debug, Serialize)]
struct Kill {
    index: usize,
    role: String,
    at_s: f64,
    delay_ms: u64,
    restart_ms: Option<u64>,
    recovery_ms: Option<u64>,
    epoch_before: u64,
    epoch_after: u64,
    readings_before: usize,
    readings_after: usize,
    inflight_insert: &'static str,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct RoleSummary {
    role: String,
    kills: usize,
    recovered: usize,
    recovery_p50_ms: Option<u64>,
    recovery_max_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    pass: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    meters: u32,
    groups: u32,
    kills: Vec<Kill>,
    roles: Vec<RoleSummary>,
    readings_committed: usize,
    inserts_acked: usize,
    inserts_refused_while_down: usize,
    objects_acked: usize,
    checks: Vec<Check>,
    pass: bool,
    elapsed_s: f64,
    out: String,
}

/// Entry point of `amicn bench chaos`.
pub(crate) fn run(a: ChaosArgs) -> anyhow::Result<()> {
    let rt = super::lab::prepare(a.meters, a.groups, &a.out)?;
    let report = rt.block_on(chaos(&a))?;
    std::fs::write(
        a.out.join("summary.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    let mut csv = String::from(
        "index,role,at_s,delay_ms,restart_ms,recovery_ms,epoch_before,epoch_after,readings_before,readings_after,inflight_insert,problem\n",
    );
    for k in &report.kills {
        let _ = writeln!(
            csv,
            "{},{},{:.3},{},{},{},{},{},{},{},{},{}",
            k.index,
            k.role,
            k.at_s,
            k.delay_ms,
            k.restart_ms.map(|v| v.to_string()).unwrap_or_default(),
            k.recovery_ms.map(|v| v.to_string()).unwrap_or_default(),
            k.epoch_before,
            k.epoch_after,
            k.readings_before,
            k.readings_after,
            k.inflight_insert,
            k.problem.as_deref().unwrap_or("").replace(',', ";")
        );
    }
    std::fs::write(a.out.join("kills.csv"), csv)?;
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for k in &report.kills {
        if let Some(r) = k.recovery_ms {
            series
                .entry(k.role.clone())
                .or_default()
                .push((k.at_s, r as f64));
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = series.into_iter().collect();
    super::plots::time_series(
        &a.out.join("recovery.png"),
        "Recovery after SIGKILL, by role",
        "recovery (ms)",
        &series,
        None,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    if !report.pass {
        bail!(
            "kill loop failed (seed {}; see {})",
            report.seed,
            report.out
        );
    }
    Ok(())
}

fn print_text(r: &Report) {
    println!(
        "amicn bench chaos — {} kills, {} meters in {} groups, seed {}, {:.1} s",
        r.kills.len(),
        r.meters,
        r.groups,
        r.seed,
        r.elapsed_s
    );
    println!(
        "{:<12} {:>6} {:>10} {:>14} {:>14}",
        "role", "kills", "recovered", "recovery p50", "recovery max"
    );
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    for s in &r.roles {
        println!(
            "{:<12} {:>6} {:>10} {:>14} {:>14}",
            s.role,
            s.kills,
            s.recovered,
            ms(s.recovery_p50_ms),
            ms(s.recovery_max_ms)
        );
    }
    println!(
        "readings committed {} · inserts acknowledged {} ({} objects), {} refused while a role was down",
        r.readings_committed, r.inserts_acked, r.objects_acked, r.inserts_refused_while_down
    );
    for c in &r.checks {
        println!(
            "{} {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!("report: {}", r.out);
}

/// Committed readings: (meter, t_us) → energy register.
fn committed(lab: &Lab) -> BTreeMap<(u32, u64), u64> {
    let Ok(store) = amicn_ami::open_reading_store(&lab.mdms_db().display().to_string()) else {
        return BTreeMap::new();
    };
    let Ok(rows) = store.interval(0, u64::MAX / 2) else {
        return BTreeMap::new();
    };
    rows.into_iter()
        .map(|r| ((r.meter, r.t_us), r.energy_wh))
        .collect()
}

/// Newest reading time of every meter.
fn newest(lab: &Lab) -> BTreeMap<u32, u64> {
    amicn_ami::open_reading_store(&lab.mdms_db().display().to_string())
        .and_then(|s| s.per_meter())
        .map(|m| m.into_iter().map(|(id, (_, t))| (id, t)).collect())
        .unwrap_or_default()
}

/// Meters whose energy register goes back between consecutive readings.
fn registers_back(rows: &BTreeMap<(u32, u64), u64>) -> Vec<u32> {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let mut bad = BTreeSet::new();
    for (&(m, _), &e) in rows {
        if let Some(&prev) = last.get(&m)
            && e < prev
        {
            bad.insert(m);
        }
        last.insert(m, e);
    }
    bad.into_iter().collect()
}

fn quantile(v: &mut [u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

async fn chaos(a: &ChaosArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let seed = a.seed.unwrap_or_else(amicn_ami::now_us);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let spec = LabSpec {
        utility: "chaos-utility".into(),
        meters: a.meters,
        groups: a.groups,
        projects: 2,
        interval: a.interval,
    };
    let mut lab = Lab::start(spec, "chaos").await?;
    let victim_group = lab.group_names().first().cloned().unwrap_or_default();
    let victims: Vec<&str> = [FORWARDER, KMS, MDMS, REPO, victim_group.as_str()]
        .into_iter()
        .filter(|r| {
            a.roles.is_empty()
                || a.roles
                    .iter()
                    .any(|w| w == r || (w == "meters" && *r == victim_group))
        })
        .collect();
    let mut order: Vec<String> = Vec::new();
    for role in &victims {
        order.extend((0..a.kills).map(|_| role.to_string()));
    }
    order.shuffle(&mut rng);

    let bar = ProgressBar::new(order.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut kills = Vec::new();
    let mut acked: Vec<amicn_tlv::Name> = Vec::new();
    let mut inserts_acked = 0usize;
    let mut refused = 0usize;
    let mut max_epoch = lab.kms_epoch();
    let mut epoch_back = Vec::new();
    let mut lost_total = BTreeSet::new();
    let mut exited = BTreeSet::new();
    let mut moves = 0u32;

    for (index, role) in order.iter().enumerate() {
        bar.set_message(format!("kill {role}"));
        let delay = rng.random_range(0..=a.max_delay.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let mut problem: Option<String> = None;
        // The KMS dies with a membership change staged.
        if role == KMS {
            moves += 1;
            let id = 1 + moves % a.meters;
            let set = if moves.is_multiple_of(2) {
                "p1"
            } else {
                "p1,p2"
            };
            if let Err(e) = lab.entitle(id, set) {
                problem = Some(format!("entitle before the kill: {e}"));
            }
        }
        let before = committed(&lab);
        let epoch_before = lab.kms_epoch();
        // An insert in flight when the process dies.
        let (k, names, wire) = lab.archive_batch(5);
        let inserter = lab.inserter();
        let inflight = tokio::task::spawn_blocking(move || inserter.insert(k, &wire));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
        let t_kill = Instant::now();
        let kill_us = amicn_ami::now_us();
        lab.crash(role)?;
        let restarted = lab.restart(role).await;
        let restart_ms = restarted
            .is_ok()
            .then(|| t_kill.elapsed().as_millis() as u64);
        if let Err(e) = &restarted {
            problem = Some(format!("restart: {e:#}"));
        }
        // Recovery: members at the epoch, a fresh reading from every meter, an insert.
        let meters = a.meters;
        let synced = time_until(a.recovery_limit, || {
            lab.out_of_sync().is_empty() && {
                let heard = newest(&lab);
                heard.len() == meters as usize && heard.values().all(|&t| t > kill_us)
            }
        })
        .await;
        let mut recovery_ms = None;
        if synced.is_some() {
            let until = t_kill + a.recovery_limit;
            loop {
                let (k, names, wire) = lab.archive_batch(2);
                let ins = lab.inserter();
                match tokio::task::spawn_blocking(move || ins.insert(k, &wire)).await {
                    Ok(Ok(())) => {
                        acked.extend(names);
                        inserts_acked += 1;
                        recovery_ms = Some(t_kill.elapsed().as_millis() as u64);
                        break;
                    }
                    _ if Instant::now() < until => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => break,
                }
            }
        }
        // Judged after recovery: an insert whose command died with the repository is only
        // refused when its command lifetime (10 s) runs out, which says nothing about how
        // fast the deployment came back.
        let inflight_insert = match inflight.await {
            Ok(Ok(())) => {
                acked.extend(names);
                inserts_acked += 1;
                "acked"
            }
            Ok(Err(_)) => {
                refused += 1;
                "refused"
            }
            Err(_) => "lost",
        };
        if recovery_ms.is_none() && problem.is_none() {
            problem = Some(format!(
                "no recovery within {:?}: out of sync {:?}",
                a.recovery_limit,
                lab.out_of_sync()
            ));
        }
        let after = committed(&lab);
        let lost: Vec<_> = before.keys().filter(|k| !after.contains_key(k)).collect();
        if !lost.is_empty() && problem.is_none() {
            problem = Some(format!("{} committed readings lost", lost.len()));
        }
        lost_total.extend(lost.into_iter().copied());
        let epoch_after = lab.kms_epoch();
        if epoch_after < max_epoch {
            epoch_back.push(format!("{max_epoch}→{epoch_after} after kill {index}"));
        }
        max_epoch = max_epoch.max(epoch_after);
        exited.extend(lab.exited());
        kills.push(Kill {
            index,
            role: role.clone(),
            at_s: started.elapsed().as_secs_f64(),
            delay_ms: delay,
            restart_ms,
            recovery_ms,
            epoch_before,
            epoch_after,
            readings_before: before.len(),
            readings_after: after.len(),
            inflight_insert,
            problem,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let rows = committed(&lab);
    let back = registers_back(&rows);
    let missing = lab.missing_from_repo(&acked)?;
    lab.stop();
    let mut checks = Vec::new();
    let mut check = |name: &str, pass: bool, detail: String| {
        checks.push(Check {
            name: name.to_string(),
            pass,
            detail,
        });
    };
    let failed: Vec<String> = kills
        .iter()
        .filter_map(|k| {
            k.problem
                .as_ref()
                .map(|p| format!("#{} {}: {p}", k.index, k.role))
        })
        .collect();
    check(
        "every kill recovered: members at the KMS epoch, fresh readings, inserts acknowledged",
        failed.is_empty(),
        if failed.is_empty() {
            format!("{} of {} kills", kills.len(), kills.len())
        } else {
            failed.join("; ")
        },
    );
    check(
        "no committed reading lost",
        lost_total.is_empty() && !rows.is_empty(),
        format!(
            "{} readings committed, {} lost",
            rows.len(),
            lost_total.len()
        ),
    );
    check(
        "no meter's energy register goes back (no reading replayed out of order)",
        back.is_empty(),
        format!("meters with a register going back: {back:?}"),
    );
    check(
        "every acknowledged repository insert is stored",
        missing.is_empty() && !acked.is_empty(),
        format!(
            "{} objects acknowledged, {} missing",
            acked.len(),
            missing.len()
        ),
    );
    check(
        "the KMS epoch never goes back",
        epoch_back.is_empty(),
        if epoch_back.is_empty() {
            format!("epoch {max_epoch} at the end")
        } else {
            epoch_back.join("; ")
        },
    );
    check(
        "no process exited on its own",
        exited.is_empty(),
        format!("{exited:?}"),
    );
    for (what, path) in [
        ("MDMS readings", lab.mdms_db()),
        ("KMS state", lab.kms_db()),
        ("repository", lab.repo_db()),
    ] {
        let r = sqlite_intact(&path);
        check(
            &format!("{what} database passes integrity_check"),
            r.is_ok(),
            match r {
                Ok(()) => path.display().to_string(),
                Err(e) => format!("{e:#}"),
            },
        );
    }
    let mut roles = Vec::new();
    for role in victims {
        let of: Vec<&Kill> = kills.iter().filter(|k| k.role == role).collect();
        let mut rec: Vec<u64> = of.iter().filter_map(|k| k.recovery_ms).collect();
        roles.push(RoleSummary {
            role: role.to_string(),
            kills: of.len(),
            recovered: rec.len(),
            recovery_p50_ms: quantile(&mut rec, 0.5),
            recovery_max_ms: rec.iter().max().copied(),
        });
    }
    let pass = checks.iter().all(|c| c.pass);
    if pass {
        let _ = std::fs::remove_dir_all(&lab.dir);
    }
    Ok(Report {
        seed,
        meters: a.meters,
        groups: a.groups,
        kills,
        roles,
        readings_committed: rows.len(),
        inserts_acked,
        inserts_refused_while_down: refused,
        objects_acked: acked.len(),
        checks,
        pass,
        elapsed_s: started.elapsed().as_secs_f64(),
        out: if pass {
            a.out.display().to_string()
        } else {
            format!("{} (lab kept at {})", a.out.display(), lab.dir.display())
        },
    })
}
