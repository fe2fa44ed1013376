//! Time-of-use (TOU) and critical-peak-pricing (CPP) tariffs, and the per-period energy
//! registers a meter keeps under them.
//!
//! A tariff version is published by the pricing service as `/<u>/ami/price/<tariff>/v=<ver>`,
//! encrypted under the broadcast (root) key and signed by the pricing key, beside a signed,
//! unencrypted pointer `/<u>/ami/price/latest/<tariff>/v=<ver>` with a short FreshnessPeriod
//! (one second by default). A meter learns that a new version exists with one Interest for
//! `/<u>/ami/price/latest/<tariff>` (CanBePrefix, MustBeFresh), which any cache may answer
//! for that second, and fetches the version the pointer names by its implicit digest only when
//! it is newer than the one it holds: no polling of every version, and a cache cannot hand it a
//! version the pricing service did not sign.
//!
//! The plaintext is the JSON of a [`Tariff`]:
//!
//! ```text
//! {
//!   "tariff": "tou-res", "version": 3, "kind": "cpp",
//!   "valid_from_s": 1767225600, "valid_to_s": 1769904000,   // [from, to), to optional
//!   "utc_offset_min": 60,                                    // the periods' local time
//!   "periods": [                                             // minutes of the local day
//!     {"name": "off-peak", "from_min": 1320, "to_min": 420,  "millicents_per_kwh": 900},
//!     {"name": "shoulder", "from_min": 420,  "to_min": 1020, "millicents_per_kwh": 1500},
//!     {"name": "peak",     "from_min": 1020, "to_min": 1320, "millicents_per_kwh": 3200}
//!   ],
//!   "critical_peak_millicents_per_kwh": 9000,                // kind "cpp" only
//!   "critical_peaks": [{"from_s": 1767290400, "to_s": 1767297600}]
//! }
//! ```
//!
//! Periods are half-open `[from_min, to_min)` in minutes of the local day (local = UTC +
//! `utc_offset_min`); one whose `from_min` is above its `to_min` wraps midnight. Together they
//! cover every minute of the day exactly once. During a critical-peak window (absolute
//! seconds, half-open) the critical-peak rate replaces the period's. Prices are thousandths of
//! a cent per kWh, as in [`crate::Price`]. A `tou` tariff has no critical peaks.
//!
//! A meter accumulates the energy of every captured interval into one register per period
//! name plus `critical-peak` ([`TariffRegisters`]), splitting an interval that crosses a
//! boundary in proportion to time; energy measured outside the validity goes to `unpriced`.
//! The bill is each register times its rate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{AmiError, Result};

/// FreshnessPeriod of a tariff's latest pointer: how long a cache may tell a meter that the
/// version it names is the newest.
pub const POINTER_FRESHNESS: std::time::Duration = std::time::Duration::from_secs(1);
/// Minutes in a day.
const DAY_MIN: u32 = 1_440;
/// Register of the energy used in critical-peak windows.
pub const CRITICAL_PEAK: &str = "critical-peak";
/// Register of energy measured outside the tariff's validity.
pub const UNPRICED: &str = "unpriced";
/// Periods a tariff may have.
pub const MAX_PERIODS: usize = 24;
/// Critical-peak windows a tariff may list.
pub const MAX_CRITICAL_PEAKS: usize = 366;

/// Time-of-use only, or time-of-use with critical-peak windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TariffKind {
    /// Time-of-use.
    Tou,
    /// Time-of-use with critical-peak windows.
    Cpp,
}

/// One time-of-use period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Register name (e.g. `peak`).
    pub name: String,
    /// First minute of the local day, inclusive.
    pub from_min: u32,
    /// Minute of the local day it ends, exclusive (below `from_min`: it wraps midnight).
    pub to_min: u32,
    /// Price, thousandths of a cent per kWh.
    pub millicents_per_kwh: u64,
}

impl Period {
    fn contains(&self, minute: u32) -> bool {
        if self.from_min < self.to_min {
            (self.from_min..self.to_min).contains(&minute)
        } else {
            minute >= self.from_min || minute < self.to_min
        }
    }
}

/// One critical-peak window, absolute seconds `[from_s, to_s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalPeak {
    /// Start, seconds since the Unix epoch.
    pub from_s: u64,
    /// End, exclusive.
    pub to_s: u64,
}

/// One version of a TOU or CPP tariff (see the module documentation for the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    /// Tariff id (a name component).
    pub tariff: String,
    /// Version (the `v=` component).
    pub version: u64,
    /// TOU or CPP.
    pub kind: TariffKind,
    /// Start of validity, seconds since the Unix epoch.
    pub valid_from_s: u64,
    /// End of validity (exclusive); open-ended if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to_s: Option<u64>,
    /// Offset of the periods' local time from UTC, minutes.
    #[serde(default)]
    pub utc_offset_min: i32,
    /// The periods of the day.
    pub periods: Vec<Period>,
    /// Price during critical peaks (CPP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_peak_millicents_per_kwh: Option<u64>,
    /// Critical-peak windows (CPP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_peaks: Vec<CriticalPeak>,
}

impl Tariff {
    /// Checks the rules of the module documentation.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(AmiError::Config(format!("tariff {:?}: {why}", self.tariff)));
        if self.tariff.is_empty()
            || self.tariff == "latest"
            || !self
                .tariff
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("the id must be letters, digits, - or _, and not \"latest\"".into());
        }
        if self.periods.is_empty() || self.periods.len() > MAX_PERIODS {
            return bad(format!("needs 1 to {MAX_PERIODS} periods"));
        }
        if self.valid_to_s.is_some_and(|t| t <= self.valid_from_s) {
            return bad("valid_to_s is not after valid_from_s".into());
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            return bad("utc_offset_min beyond ±14 h".into());
        }
        let mut owner: Vec<Option<usize>> = vec![None; DAY_MIN as usize];
        for (i, p) in self.periods.iter().enumerate() {
            if p.from_min >= DAY_MIN || p.to_min >= DAY_MIN || p.from_min == p.to_min {
                return bad(format!("period {:?} has bad bounds", p.name));
            }
            if p.name.is_empty() || p.name == CRITICAL_PEAK || p.name == UNPRICED {
                return bad(format!("period name {:?} is reserved or empty", p.name));
            }
            if self.periods[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("period {:?} appears twice", p.name));
            }
            for m in 0..DAY_MIN {
                if p.contains(m) {
                    if let Some(j) = owner[m as usize] {
                        return bad(format!(
                            "periods {:?} and {:?} overlap at minute {m}",
                            self.periods[j].name, p.name
                        ));
                    }
                    owner[m as usize] = Some(i);
                }
            }
        }
        if let Some(m) = owner.iter().position(Option::is_none) {
            return bad(format!("no period covers minute {m} of the day"));
        }
        match self.kind {
            TariffKind::Tou => {
                if !self.critical_peaks.is_empty()
                    || self.critical_peak_millicents_per_kwh.is_some()
                {
                    return bad("a tou tariff has no critical peaks".into());
                }
            }
            TariffKind::Cpp => {
                if self.critical_peak_millicents_per_kwh.is_none() {
                    return bad("a cpp tariff needs critical_peak_millicents_per_kwh".into());
                }
                if self.critical_peaks.len() > MAX_CRITICAL_PEAKS {
                    return bad(format!("more than {MAX_CRITICAL_PEAKS} critical peaks"));
                }
                if self.critical_peaks.iter().any(|c| c.to_s <= c.from_s) {
                    return bad("a critical peak ends before it starts".into());
                }
            }
        }
        Ok(())
    }

    /// Parses and validates the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let t: Tariff =
            serde_json::from_slice(bytes).map_err(|e| AmiError::Config(format!("tariff: {e}")))?;
        t.validate()?;
        Ok(t)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn valid_at(&self, t_s: u64) -> bool {
        t_s >= self.valid_from_s && self.valid_to_s.is_none_or(|to| t_s < to)
    }

    fn local_minute(&self, t_s: u64) -> u32 {
        let local = t_s as i64 / 60 + i64::from(self.utc_offset_min);
        local.rem_euclid(i64::from(DAY_MIN)) as u32
    }

    /// The register and price in force at `t_s` (seconds); `None` outside the validity.
    pub fn rate_at(&self, t_s: u64) -> Option<(&str, u64)> {
        if !self.valid_at(t_s) {
            return None;
        }
        if let Some(r) = self.critical_peak_millicents_per_kwh
            && self
                .critical_peaks
                .iter()
                .any(|c| (c.from_s..c.to_s).contains(&t_s))
        {
            return Some((CRITICAL_PEAK, r));
        }
        let m = self.local_minute(t_s);
        self.periods
            .iter()
            .find(|p| p.contains(m))
            .map(|p| (p.name.as_str(), p.millicents_per_kwh))
    }

    /// The price of register `name` (`None` for [`UNPRICED`] or an unknown name).
    pub fn rate_of(&self, name: &str) -> Option<u64> {
        if name == CRITICAL_PEAK {
            return self.critical_peak_millicents_per_kwh;
        }
        self.periods
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.millicents_per_kwh)
    }

    /// Every instant in `(from_s, to_s)` (seconds) at which the rate may change.
    fn boundaries(&self, from_s: u64, to_s: u64) -> Vec<u64> {
        let mut out = vec![self.valid_from_s];
        out.extend(self.valid_to_s);
        for c in &self.critical_peaks {
            out.extend([c.from_s, c.to_s]);
        }
        // Period edges, day by day (in local time) over the span.
        let off = i64::from(self.utc_offset_min) * 60;
        let day = i64::from(DAY_MIN) * 60;
        let first_day = (from_s as i64 + off).div_euclid(day);
        let last_day = (to_s as i64 + off).div_euclid(day);
        for d in first_day..=last_day {
            for p in &self.periods {
                let t = d * day + i64::from(p.from_min) * 60 - off;
                if let Ok(t) = u64::try_from(t) {
                    out.push(t);
                }
            }
        }
        out.retain(|&t| t > from_s && t < to_s);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The per-period energy registers of one meter (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffRegisters {
    /// Tariff id.
    pub tariff: String,
    /// Version in force for the newest interval.
    pub version: u64,
    /// Energy per register, mWh.
    pub energy_mwh: BTreeMap<String, u64>,
}

impl TariffRegisters {
    /// Adds `energy_mwh` measured over `[start_us, end_us)` under `tariff`, split across the
    /// periods and windows it crosses in proportion to time (the last piece takes the rounding,
    /// so the registers add up to exactly what was measured). Interval bounds are taken in
    /// whole seconds.
    pub fn accumulate(&mut self, tariff: &Tariff, start_us: u64, end_us: u64, energy_mwh: u64) {
        self.tariff.clone_from(&tariff.tariff);
        self.version = tariff.version;
        let (a, b) = (start_us / 1_000_000, end_us / 1_000_000);
        let mut add = |name: &str, v: u64| {
            *self.energy_mwh.entry(name.to_string()).or_insert(0) += v;
        };
        if b <= a {
            add(tariff.rate_at(a).map_or(UNPRICED, |r| r.0), energy_mwh);
            return;
        }
        let mut cuts = vec![a];
        cuts.extend(tariff.boundaries(a, b));
        cuts.push(b);
        let total = u128::from(b - a);
        let mut given = 0u64;
        for (k, w) in cuts.windows(2).enumerate() {
            let share = if k + 2 == cuts.len() {
                energy_mwh - given
            } else {
                (u128::from(energy_mwh) * u128::from(w[1] - w[0]) / total) as u64
            };
            given += share;
            add(tariff.rate_at(w[0]).map_or(UNPRICED, |r| r.0), share);
        }
    }

    /// The energy of every priced register times its price under `tariff`, in thousandths of
    /// a cent (rounded down once, at the end).
    pub fn bill_millicents(&self, tariff: &Tariff) -> u64 {
        let micro: u128 = self
            .energy_mwh
            .iter()
            .filter_map(|(n, e)| tariff.rate_of(n).map(|r| u128::from(*e) * u128::from(r)))
            .sum();
        // mWh × millicents/kWh = 10⁻⁶ millicents.
        (micro / 1_000_000) as u64
    }
}

/// The content of a tariff's latest pointer: the version and the implicit digest of its Data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffPointer {
    /// Tariff id.
    pub tariff: String,
    /// Newest version.
    pub version: u64,
    /// SHA-256 of that version's Data packet, hex.
    pub digest: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const DAY0: u64 = 1_767_225_600;

    fn period(name: &str, from_min: u32, to_min: u32, rate: u64) -> Period {
        Period {
            name: name.into(),
            from_min,
            to_min,
            millicents_per_kwh: rate,
        }
    }

    /// Off-peak 22:00–07:00 (across midnight), shoulder 07:00–17:00, peak 17:00–22:00.
    fn tou() -> Tariff {
        Tariff {
            tariff: "tou-res".into(),
            version: 1,
            kind: TariffKind::Tou,
            valid_from_s: DAY0,
            valid_to_s: Some(DAY0 + 7 * 86_400),
            utc_offset_min: 0,
            periods: vec![
                period("off-peak", 1_320, 420, 900),
                period("shoulder", 420, 1_020, 1_500),
                period("peak", 1_020, 1_320, 3_200),
            ],
            critical_peak_millicents_per_kwh: None,
            critical_peaks: Vec::new(),
        }
    }

    fn us(s: u64) -> u64 {
        s * 1_000_000
    }

    #[test]
    fn three_periods_across_midnight() {
        let t = tou();
        t.validate().unwrap();
        assert_eq!(t.rate_at(DAY0 + 3 * 3_600), Some(("off-peak", 900)));
        assert_eq!(t.rate_at(DAY0 + 7 * 3_600), Some(("shoulder", 1_500)));
        assert_eq!(t.rate_at(DAY0 + 22 * 3_600 - 1), Some(("peak", 3_200)));
        assert_eq!(t.rate_at(DAY0 + 23 * 3_600), Some(("off-peak", 900)));
        assert_eq!(t.rate_at(DAY0 - 1), None);
        // 21:00 to 01:00 next day, 4,000 Wh evenly: 1 h peak, 3 h off-peak across midnight.
        let mut r = TariffRegisters::default();
        r.accumulate(&t, us(DAY0 + 21 * 3_600), us(DAY0 + 25 * 3_600), 4_000_000);
        assert_eq!(r.energy_mwh["peak"], 1_000_000);
        assert_eq!(r.energy_mwh["off-peak"], 3_000_000);
        assert!(!r.energy_mwh.contains_key("shoulder"));
        // 06:30 to 07:30, 1,000 Wh: half off-peak, half shoulder.
        r.accumulate(
            &t,
            us(DAY0 + 30 * 3_600 + 1_800),
            us(DAY0 + 31 * 3_600 + 1_800),
            1_000_000,
        );
        assert_eq!(r.energy_mwh["off-peak"], 3_500_000);
        assert_eq!(r.energy_mwh["shoulder"], 500_000);
        // Bill: 1 kWh × 3,200 + 3.5 kWh × 900 + 0.5 kWh × 1,500 = 3,200 + 3,150 + 750.
        assert_eq!(r.bill_millicents(&t), 7_100);
        // A third of an odd amount: the registers still add up to exactly what was measured.
        let mut r = TariffRegisters::default();
        r.accumulate(&t, us(DAY0 + 16 * 3_600), us(DAY0 + 19 * 3_600), 1_000);
        assert_eq!(r.energy_mwh["shoulder"], 333);
        assert_eq!(r.energy_mwh["peak"], 667);
    }

    #[test]
    fn local_time_shifts_the_periods() {
        let mut t = tou();
        t.utc_offset_min = 120;
        // 15:30 UTC is 17:30 local: peak.
        assert_eq!(t.rate_at(DAY0 + 15 * 3_600 + 1_800).unwrap().0, "peak");
        t.utc_offset_min = -300;
        // 02:00 UTC is 21:00 local the day before: peak.
        assert_eq!(t.rate_at(DAY0 + 2 * 3_600).unwrap().0, "peak");
    }

    #[test]
    fn a_critical_peak_overrides_the_period_and_validity_bounds_the_tariff() {
        let mut t = tou();
        t.kind = TariffKind::Cpp;
        t.critical_peak_millicents_per_kwh = Some(9_000);
        // 18:00–20:00 on the first day.
        t.critical_peaks = vec![CriticalPeak {
            from_s: DAY0 + 18 * 3_600,
            to_s: DAY0 + 20 * 3_600,
        }];
        t.validate().unwrap();
        assert_eq!(t.rate_at(DAY0 + 19 * 3_600), Some((CRITICAL_PEAK, 9_000)));
        assert_eq!(t.rate_at(DAY0 + 20 * 3_600), Some(("peak", 3_200)));
        // The next day's 19:00 is ordinary peak.
        assert_eq!(t.rate_at(DAY0 + 86_400 + 19 * 3_600), Some(("peak", 3_200)));
        // 17:00–21:00, 4,000 Wh: 1 h peak, 2 h critical peak, 1 h peak.
        let mut r = TariffRegisters::default();
        r.accumulate(&t, us(DAY0 + 17 * 3_600), us(DAY0 + 21 * 3_600), 4_000_000);
        assert_eq!(r.energy_mwh["peak"], 2_000_000);
        assert_eq!(r.energy_mwh[CRITICAL_PEAK], 2_000_000);
        // 2 kWh × 3,200 + 2 kWh × 9,000.
        assert_eq!(r.bill_millicents(&t), 24_400);
        // The last hour of validity and the hour after it: half unpriced.
        let end = DAY0 + 7 * 86_400;
        r.accumulate(&t, us(end - 3_600), us(end + 3_600), 2_000_000);
        assert_eq!(r.energy_mwh[UNPRICED], 1_000_000);
        assert_eq!(r.energy_mwh["off-peak"], 1_000_000);
        // Unpriced energy costs nothing: + 1 kWh × 900.
        assert_eq!(r.bill_millicents(&t), 25_300);
        let json = t.to_json();
        assert_eq!(Tariff::from_json(&json).unwrap(), t);
    }

    #[test]
    fn malformed_tariffs_are_refused() {
        let mut gap = tou();
        gap.periods[1].to_min = 1_000;
        let mut overlap = tou();
        overlap.periods[1].to_min = 1_030;
        let mut latest = tou();
        latest.tariff = "latest".into();
        let mut cpp_in_tou = tou();
        cpp_in_tou.critical_peaks = vec![CriticalPeak { from_s: 1, to_s: 2 }];
        let mut cpp_no_rate = tou();
        cpp_no_rate.kind = TariffKind::Cpp;
        let mut backwards = tou();
        backwards.valid_to_s = Some(DAY0);
        let mut twice = tou();
        twice.periods[2].name = "shoulder".into();
        for (why, t) in [
            ("gap", gap),
            ("overlap", overlap),
            ("latest", latest),
            ("cpp in tou", cpp_in_tou),
            ("cpp without rate", cpp_no_rate),
            ("validity backwards", backwards),
            ("name twice", twice),
        ] {
            assert!(t.validate().is_err(), "{why}");
        }
        assert!(Tariff::from_json(br#"{"tariff":"x"}"#).is_err());
    }
}
