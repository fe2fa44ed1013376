//! Validation, estimation and editing (VEE) of interval data at the MDMS.
//!
//! VEE works on a meter's stored readings (the active import register at each interval end)
//! and never touches them: the signed originals stay in the reading store byte for byte. What
//! it derives is a validated interval series beside them, and every estimate and edit is an
//! [`AuditEntry`] naming the original reading, the rule, the value before and after.
//!
//! The interval consumption of a reading is its register minus the previous reading's. Rules,
//! in the order they are applied to each interval:
//!
//! | rule | condition | action |
//! | --- | --- | --- |
//! | `gap` | `k ≥ 1` whole intervals missing between two readings | `k` estimated intervals (flag [`Flags::ESTIMATED`]) sharing the register advance linearly: each gets `⌊Δ/(k+1)⌋`, the reading after the gap the rest |
//! | `rollback` | the register is below the previous reading's | edited to 0 Wh (flag [`Flags::EDITED`]); the next interval is measured from the last valid register |
//! | `spike` | consumption above `spike_factor` × the meter's median and above `spike_min_wh` | edited to the median (flag `EDITED`) |
//! | `zero` | `zero_run` or more consecutive intervals of 0 Wh | flagged, not edited (a vacant home or an open relay is possible) |
//! | `outage` | the reading carries [`Flags::POWER_OUTAGE`], or its interval overlaps an outage window the MDMS learned from events | flagged, not edited |
//!
//! The median is the median of the meter's measured (not estimated) non-negative interval
//! consumptions in the run; with fewer than [`MIN_SPIKE_SAMPLES`] of them no spike is judged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reading::Flags;
use crate::store::StoredReading;

/// Measured intervals a meter needs before its spikes are judged.
pub const MIN_SPIKE_SAMPLES: usize = 4;

/// VEE settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VeeConfig {
    /// The meters' interval, µs.
    pub interval_us: u64,
    /// A consumption above this many times the meter's median is a spike.
    pub spike_factor: u64,
    /// ... and above this many Wh (small loads vary a lot relative to their median).
    pub spike_min_wh: u64,
    /// Consecutive zero-consumption intervals that are flagged.
    pub zero_run: usize,
}

impl VeeConfig {
    /// Defaults for readings every `interval_us`: spikes above 10 × median and 1 kWh, zero
    /// runs of 4 intervals.
    pub fn new(interval_us: u64) -> Self {
        VeeConfig {
            interval_us: interval_us.max(1),
            spike_factor: 10,
            spike_min_wh: 1_000,
            zero_run: 4,
        }
    }
}

/// How a validated interval's value came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quality {
    /// As measured.
    Actual,
    /// Estimated for a missing interval.
    Estimated,
    /// Measured, then edited by a rule.
    Edited,
}

fn flag_bits<S: serde::Serializer>(f: &Flags, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(f.bits())
}

/// One interval of the validated series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interval {
    /// Interval end, µs.
    pub end_us: u64,
    /// Consumption in the interval, Wh.
    pub consumption_wh: u64,
    /// Actual, estimated or edited.
    pub quality: Quality,
    /// Quality flags: the reading's, plus ESTIMATED or EDITED (the bits, in JSON).
    #[serde(serialize_with = "flag_bits")]
    pub flags: Flags,
    /// The rules that fired on it.
    pub rules: Vec<&'static str>,
}

/// One estimate, edit or flag, kept beside the untouched signed original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Meter.
    pub meter: u32,
    /// The interval's end, µs (for a gap: the estimated interval's end; no original exists).
    pub end_us: u64,
    /// The rule.
    pub rule: String,
    /// `estimate`, `edit` or `flag`.
    pub action: String,
    /// Consumption before (Wh; negative for a roll-back); `None` for an estimate.
    pub original_wh: Option<i64>,
    /// Consumption after (Wh); `None` for a flag.
    pub value_wh: Option<u64>,
    /// The stored reading the entry refers to (meter, timestamp), if any.
    pub reading_t_us: Option<u64>,
}

/// Per-meter VEE summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterSummary {
    /// Readings validated.
    pub readings: u64,
    /// Intervals in the validated series.
    pub intervals: u64,
    /// Intervals as measured.
    pub actual: u64,
    /// Intervals estimated for gaps.
    pub estimated: u64,
    /// Intervals edited.
    pub edited: u64,
    /// Gaps (runs of missing intervals).
    pub gaps: u64,
    /// Spikes edited.
    pub spikes: u64,
    /// Register roll-backs edited.
    pub rollbacks: u64,
    /// Zero-consumption intervals flagged (in runs of at least `zero_run`).
    pub zero_flagged: u64,
    /// Outage-flagged intervals.
    pub outage_flagged: u64,
    /// Validated consumption, Wh.
    pub total_wh: u64,
    /// Of which estimated, Wh.
    pub estimated_wh: u64,
}

/// The VEE result for one meter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeterVee {
    /// The validated interval series (from the second reading on).
    pub intervals: Vec<Interval>,
    /// Every estimate, edit and flag.
    pub audit: Vec<AuditEntry>,
    /// Counts.
    pub summary: MeterSummary,
}

fn median(v: &[u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    })
}

/// Validates one meter's readings (any order; duplicates by timestamp are ignored after the
/// first) against `outages` (µs windows `[from, to)` learned from the meter's events).
pub fn validate_meter(
    cfg: &VeeConfig,
    meter: u32,
    readings: &[StoredReading],
    outages: &[(u64, u64)],
) -> MeterVee {
    let mut rs: Vec<&StoredReading> = readings.iter().filter(|r| r.meter == meter).collect();
    rs.sort_by_key(|r| r.t_us);
    rs.dedup_by_key(|r| r.t_us);
    let mut out = MeterVee::default();
    out.summary.readings = rs.len() as u64;
    let iv = cfg.interval_us.max(1);
    // The median of measured, non-negative consumptions between adjacent readings.
    let measured: Vec<u64> = rs
        .windows(2)
        .filter(|w| slots_between(w[0].t_us, w[1].t_us, iv) == 1)
        .filter_map(|w| w[1].energy_wh.checked_sub(w[0].energy_wh))
        .collect();
    let med = (measured.len() >= MIN_SPIKE_SAMPLES)
        .then(|| median(&measured))
        .flatten();
    let audit = |out: &mut MeterVee, e: AuditEntry| out.audit.push(e);
    let entry = |end_us: u64,
                 rule: &str,
                 action: &str,
                 original: Option<i64>,
                 value: Option<u64>,
                 t: Option<u64>| AuditEntry {
        meter,
        end_us,
        rule: rule.into(),
        action: action.into(),
        original_wh: original,
        value_wh: value,
        reading_t_us: t,
    };
    let Some(first) = rs.first() else {
        return out;
    };
    // The last valid register: a roll-back does not move it.
    let mut last_wh = first.energy_wh;
    let mut last_t = first.t_us;
    for r in rs.iter().skip(1) {
        let k = slots_between(last_t, r.t_us, iv).saturating_sub(1);
        let advance = r.energy_wh.saturating_sub(last_wh);
        let rolled_back = r.energy_wh < last_wh;
        let mut remaining = advance;
        if k > 0 {
            out.summary.gaps += 1;
            let share = advance / (k + 1);
            for j in 1..=k {
                let end_us = last_t + j * iv;
                out.intervals.push(Interval {
                    end_us,
                    consumption_wh: share,
                    quality: Quality::Estimated,
                    flags: Flags::ESTIMATED,
                    rules: vec!["gap"],
                });
                audit(
                    &mut out,
                    entry(end_us, "gap", "estimate", None, Some(share), None),
                );
                remaining -= share;
            }
        }
        let mut iv_out = Interval {
            end_us: r.t_us,
            consumption_wh: remaining,
            quality: Quality::Actual,
            flags: r.flags,
            rules: Vec::new(),
        };
        if rolled_back {
            let original = r.energy_wh as i64 - last_wh as i64;
            iv_out.consumption_wh = 0;
            iv_out.quality = Quality::Edited;
            iv_out.flags |= Flags::EDITED;
            iv_out.rules.push("rollback");
            out.summary.rollbacks += 1;
            audit(
                &mut out,
                entry(
                    r.t_us,
                    "rollback",
                    "edit",
                    Some(original),
                    Some(0),
                    Some(r.t_us),
                ),
            );
        } else if let Some(m) = med
            && k == 0
            && remaining > m.saturating_mul(cfg.spike_factor)
            && remaining > cfg.spike_min_wh
        {
            iv_out.consumption_wh = m;
            iv_out.quality = Quality::Edited;
            iv_out.flags |= Flags::EDITED;
            iv_out.rules.push("spike");
            out.summary.spikes += 1;
            audit(
                &mut out,
                entry(
                    r.t_us,
                    "spike",
                    "edit",
                    Some(remaining as i64),
                    Some(m),
                    Some(r.t_us),
                ),
            );
        }
        let start = r.t_us.saturating_sub(iv);
        if r.flags.contains(Flags::POWER_OUTAGE)
            || outages.iter().any(|&(a, b)| a < r.t_us && start < b)
        {
            iv_out.rules.push("outage");
            iv_out.flags |= Flags::POWER_OUTAGE;
            out.summary.outage_flagged += 1;
            audit(
                &mut out,
                entry(r.t_us, "outage", "flag", None, None, Some(r.t_us)),
            );
        }
        out.intervals.push(iv_out);
        if !rolled_back {
            last_wh = r.energy_wh;
        }
        last_t = r.t_us;
    }
    // Zero runs, over the series (estimates included: a gap estimated at 0 Wh is still 0 Wh).
    let mut i = 0;
    while i < out.intervals.len() {
        let mut j = i;
        while j < out.intervals.len() && out.intervals[j].consumption_wh == 0 {
            j += 1;
        }
        if j - i >= cfg.zero_run.max(1) {
            for k in i..j {
                let end_us = out.intervals[k].end_us;
                out.intervals[k].rules.push("zero");
                out.summary.zero_flagged += 1;
                let t = (out.intervals[k].quality != Quality::Estimated).then_some(end_us);
                out.audit
                    .push(entry(end_us, "zero", "flag", Some(0), None, t));
            }
        }
        i = j.max(i + 1);
    }
    for v in &out.intervals {
        out.summary.intervals += 1;
        out.summary.total_wh += v.consumption_wh;
        match v.quality {
            Quality::Actual => out.summary.actual += 1,
            Quality::Estimated => {
                out.summary.estimated += 1;
                out.summary.estimated_wh += v.consumption_wh;
            }
            Quality::Edited => out.summary.edited += 1,
        }
    }
    out.audit
        .sort_by(|a, b| (a.end_us, &a.rule).cmp(&(b.end_us, &b.rule)));
    out
}

/// Whole intervals of `iv` from `a` to `b` (rounded to the nearest, at least 1 when b > a).
fn slots_between(a: u64, b: u64, iv: u64) -> u64 {
    let d = b.saturating_sub(a);
    ((d + iv / 2) / iv).max(u64::from(d > 0))
}

/// Validates every meter of `readings`; `outages` per meter.
pub fn validate_all(
    cfg: &VeeConfig,
    readings: &[StoredReading],
    outages: &BTreeMap<u32, Vec<(u64, u64)>>,
) -> BTreeMap<u32, MeterVee> {
    let mut by: BTreeMap<u32, Vec<StoredReading>> = BTreeMap::new();
    for r in readings {
        by.entry(r.meter).or_default().push(r.clone());
    }
    by.into_iter()
        .map(|(m, rs)| {
            let o = outages.get(&m).map(Vec::as_slice).unwrap_or(&[]);
            (m, validate_meter(cfg, m, &rs, o))
        })
        .collect()
}

/// The reading interval of `readings`, inferred as the median over meters of each meter's
/// median spacing; `None` with fewer than two readings of any meter.
pub fn infer_interval(readings: &[StoredReading]) -> Option<u64> {
    let mut by: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in readings {
        by.entry(r.meter).or_default().push(r.t_us);
    }
    let per: Vec<u64> = by
        .values_mut()
        .filter_map(|ts| {
            ts.sort_unstable();
            ts.dedup();
            let d: Vec<u64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
            median(&d)
        })
        .collect();
    median(&per).filter(|&d| d > 0)
}

/// The MDMS's VEE record in its state directory: `vee-audit.jsonl`, one [`AuditEntry`] per
/// line, appended and never rewritten (an entry is written once, the first time its rule
/// fires on that interval), and `vee.json`, the latest run's summary per meter.
#[derive(Debug)]
pub struct VeeLog {
    dir: std::path::PathBuf,
    recorded: std::collections::HashSet<(u32, u64, String)>,
}

impl VeeLog {
    /// Opens the record in `dir`, reading what the audit trail already holds.
    pub fn open(dir: &std::path::Path) -> crate::Result<Self> {
        let path = dir.join("vee-audit.jsonl");
        let mut recorded = std::collections::HashSet::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    // A line torn by a crash is skipped; its entry is written again.
                    if let Ok(e) = serde_json::from_str::<AuditEntry>(line) {
                        recorded.insert((e.meter, e.end_us, e.rule));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(crate::AmiError::State {
                    path,
                    why: e.to_string(),
                });
            }
        }
        Ok(VeeLog {
            dir: dir.to_path_buf(),
            recorded,
        })
    }

    /// Appends the entries of `run` not recorded yet and writes the summary; returns how many
    /// entries were appended.
    pub fn record(&mut self, run: &BTreeMap<u32, MeterVee>) -> crate::Result<usize> {
        use std::io::Write as _;
        let path = self.dir.join("vee-audit.jsonl");
        let io = |e: std::io::Error| crate::AmiError::State {
            path: path.clone(),
            why: e.to_string(),
        };
        let mut lines = String::new();
        let mut fresh = Vec::new();
        for v in run.values() {
            for e in &v.audit {
                let k = (e.meter, e.end_us, e.rule.clone());
                if !self.recorded.contains(&k) {
                    lines.push_str(
                        &serde_json::to_string(e)
                            .map_err(|e| crate::AmiError::Config(e.to_string()))?,
                    );
                    lines.push('\n');
                    fresh.push(k);
                }
            }
        }
        if !lines.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            f.write_all(lines.as_bytes()).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        let n = fresh.len();
        self.recorded.extend(fresh);
        let summary: BTreeMap<u32, &MeterSummary> =
            run.iter().map(|(m, v)| (*m, &v.summary)).collect();
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| crate::AmiError::Config(e.to_string()))?;
        amicn_kms::keychain::write_atomic(&self.dir.join("vee.json"), &json, 0o600)?;
        Ok(n)
    }

    /// Audit entries recorded so far.
    pub fn recorded(&self) -> usize {
        self.recorded.len()
    }

    /// Forgets which entries ending before `t_us` were written: readings that old are outside
    /// the acceptance window and no run looks at them again, so the set stays bounded.
    pub fn forget_before(&mut self, t_us: u64) {
        self.recorded.retain(|(_, end_us, _)| *end_us >= t_us);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const IV: u64 = 900_000_000;
    const T0: u64 = 1_705_276_800_000_000;

    fn r(slot: u64, wh: u64, flags: Flags) -> StoredReading {
        StoredReading {
            meter: 7,
            t_us: T0 + slot * IV,
            energy_wh: wh,
            power_w: 0,
            flags,
            key_name: String::new(),
            received_us: 0,
        }
    }

    fn at(v: &MeterVee, slot: u64) -> &Interval {
        v.intervals
            .iter()
            .find(|i| i.end_us == T0 + slot * IV)
            .unwrap()
    }

    /// Slots 0..=14 with two missing (4, 5), a spike at 8, a roll-back at 10, four zero
    /// intervals 12..=15 and an outage flag at 16.
    fn day() -> Vec<StoredReading> {
        let n = Flags::NONE;
        vec![
            r(0, 1_000, n),
            r(1, 1_010, n),
            r(2, 1_020, n),
            r(3, 1_030, n),
            // 4 and 5 missing; the register advanced 40 Wh over slots 4, 5 and 6.
            r(6, 1_070, n),
            r(7, 1_082, n),
            r(8, 4_082, n), // +3,000 Wh: a spike
            r(9, 4_094, n),
            r(10, 4_000, n), // below 4,094: a roll-back
            r(11, 4_105, n), // measured from 4,094: 11 Wh
            r(12, 4_105, n),
            r(13, 4_105, n),
            r(14, 4_105, n),
            r(15, 4_105, n),
            r(16, 4_115, Flags::POWER_OUTAGE),
        ]
    }

    #[test]
    fn rules_estimate_edit_and_flag_as_hand_computed() {
        let v = validate_meter(&VeeConfig::new(IV), 7, &day(), &[]);
        // Measured adjacent consumptions: 10,10,10, 12,3000,12, 105 (4,000 → 4,105), 0,0,0,0,
        // 10; the roll-back (negative) is not one. Sorted: 0,0,0,0,10,10,10,10,12,12,105,3000
        // → median (10 + 10) / 2 = 10.
        // Gap: 40 Wh over 3 intervals: ⌊40/3⌋ = 13 for slots 4 and 5, 40 − 26 = 14 for slot 6.
        assert_eq!(at(&v, 4).consumption_wh, 13);
        assert_eq!(at(&v, 4).quality, Quality::Estimated);
        assert!(at(&v, 4).flags.contains(Flags::ESTIMATED));
        assert_eq!(at(&v, 5).consumption_wh, 13);
        assert_eq!(at(&v, 6).consumption_wh, 14);
        assert_eq!(at(&v, 6).quality, Quality::Actual);
        // Spike: 3,000 > 10 × 10 and > 1,000 → edited to the median 10.
        assert_eq!(at(&v, 8).consumption_wh, 10);
        assert_eq!(at(&v, 8).quality, Quality::Edited);
        assert_eq!(at(&v, 8).rules, vec!["spike"]);
        // Roll-back: 4,000 < 4,094 → 0, and slot 11 is measured from 4,094.
        assert_eq!(at(&v, 10).consumption_wh, 0);
        assert_eq!(at(&v, 10).rules, vec!["rollback"]);
        assert!(at(&v, 10).flags.contains(Flags::EDITED));
        assert_eq!(at(&v, 11).consumption_wh, 11);
        // Zero run: slots 12..=15 are 0 Wh (4 ≥ zero_run 4); the roll-back's 0 at slot 10 is
        // alone (slot 11 is 11 Wh).
        for s in 12..=15 {
            assert_eq!(at(&v, s).rules, vec!["zero"], "slot {s}");
        }
        assert!(!at(&v, 10).rules.contains(&"zero"));
        // Outage flag carried by the reading.
        assert_eq!(at(&v, 16).rules, vec!["outage"]);
        assert_eq!(at(&v, 16).consumption_wh, 10);

        let s = &v.summary;
        assert_eq!(s.readings, 15);
        assert_eq!(s.intervals, 16);
        assert_eq!((s.estimated, s.edited, s.actual), (2, 2, 12));
        assert_eq!((s.gaps, s.spikes, s.rollbacks), (1, 1, 1));
        assert_eq!((s.zero_flagged, s.outage_flagged), (4, 1));
        // 10+10+10 + 13+13+14 + 12+10+12 + 0+11 + 0+0+0+0 + 10 = 125.
        assert_eq!(s.total_wh, 125);
        assert_eq!(s.estimated_wh, 26);

        // The audit trail: two estimates, two edits with their originals, five flags.
        let actions: Vec<(&str, &str)> = v
            .audit
            .iter()
            .map(|a| (a.rule.as_str(), a.action.as_str()))
            .collect();
        assert_eq!(actions.iter().filter(|a| a.1 == "estimate").count(), 2);
        assert_eq!(actions.iter().filter(|a| a.1 == "edit").count(), 2);
        assert_eq!(actions.iter().filter(|a| a.1 == "flag").count(), 5);
        let spike = v.audit.iter().find(|a| a.rule == "spike").unwrap();
        assert_eq!(
            (spike.original_wh, spike.value_wh, spike.reading_t_us),
            (Some(3_000), Some(10), Some(T0 + 8 * IV))
        );
        let rb = v.audit.iter().find(|a| a.rule == "rollback").unwrap();
        assert_eq!((rb.original_wh, rb.value_wh), (Some(-94), Some(0)));
        let gap = v.audit.iter().find(|a| a.rule == "gap").unwrap();
        assert_eq!((gap.original_wh, gap.reading_t_us), (None, None));
    }

    #[test]
    fn the_originals_are_not_altered() {
        let rs = day();
        let before = rs.clone();
        let _ = validate_meter(&VeeConfig::new(IV), 7, &rs, &[(0, 1)]);
        assert_eq!(rs, before);
    }

    #[test]
    fn outage_windows_from_events_flag_overlapping_intervals() {
        let n = Flags::NONE;
        let rs = vec![r(0, 100, n), r(1, 110, n), r(2, 110, n), r(3, 125, n)];
        // An outage from the middle of slot 2's interval (which runs from slot 1 to slot 2)
        // to exactly slot 2's end: only slot 2 overlaps ([a, b) windows, (start, end] intervals).
        let outage = (T0 + IV + IV / 2, T0 + 2 * IV);
        let v = validate_meter(&VeeConfig::new(IV), 7, &rs, &[outage]);
        assert_eq!(at(&v, 1).rules, Vec::<&str>::new());
        assert_eq!(at(&v, 2).rules, vec!["outage"]);
        assert!(at(&v, 2).flags.contains(Flags::POWER_OUTAGE));
        assert_eq!(at(&v, 3).rules, Vec::<&str>::new());
        assert_eq!(v.summary.outage_flagged, 1);
    }

    #[test]
    fn too_few_intervals_judge_no_spike_and_empty_input_is_empty() {
        let n = Flags::NONE;
        // Only 3 measured intervals (< MIN_SPIKE_SAMPLES): the jump stays as measured.
        let rs = vec![r(0, 0, n), r(1, 10, n), r(2, 20, n), r(3, 5_020, n)];
        let v = validate_meter(&VeeConfig::new(IV), 7, &rs, &[]);
        assert_eq!(at(&v, 3).consumption_wh, 5_000);
        assert_eq!(v.summary.spikes, 0);
        let e = validate_meter(&VeeConfig::new(IV), 7, &[], &[]);
        assert_eq!(e, MeterVee::default());
        // A single reading: nothing to compare.
        let one = validate_meter(&VeeConfig::new(IV), 7, &rs[..1], &[]);
        assert_eq!((one.summary.readings, one.summary.intervals), (1, 0));
    }

    #[test]
    fn the_interval_is_inferred_and_the_audit_trail_only_grows() {
        assert_eq!(infer_interval(&day()), Some(IV));
        assert_eq!(infer_interval(&day()[..1]), None);
        let dir = std::env::temp_dir().join(format!(
            "amicn-vee-{}-{}",
            std::process::id(),
            crate::now_us()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run = validate_all(&VeeConfig::new(IV), &day(), &BTreeMap::new());
        let mut log = VeeLog::open(&dir).unwrap();
        assert_eq!(log.record(&run).unwrap(), 9);
        // The same run again adds nothing; a reopened log knows what it holds.
        assert_eq!(log.record(&run).unwrap(), 0);
        let mut again = VeeLog::open(&dir).unwrap();
        assert_eq!(again.recorded(), 9);
        assert_eq!(again.record(&run).unwrap(), 0);
        let text = std::fs::read_to_string(dir.join("vee-audit.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 9);
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("vee.json")).unwrap()).unwrap();
        assert_eq!(summary["7"]["estimated"], 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_gap_across_a_rollback_estimates_zero() {
        let n = Flags::NONE;
        let rs = vec![r(0, 500, n), r(3, 400, n)];
        let v = validate_meter(&VeeConfig::new(IV), 7, &rs, &[]);
        assert_eq!(at(&v, 1).consumption_wh, 0);
        assert_eq!(at(&v, 2).consumption_wh, 0);
        assert_eq!(at(&v, 3).rules, vec!["rollback"]);
        assert_eq!(at(&v, 3).quality, Quality::Edited);
    }
}
