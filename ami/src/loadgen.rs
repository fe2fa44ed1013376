//! Synthetic meter data: realistic, seeded load profiles for N meters over a period.
//!
//! Each meter gets a profile drawn from the seed — a household (morning and evening peaks,
//! later and flatter on weekends) or a commercial site (a business-hours plateau on weekdays,
//! a low base on weekends) — scaled by its own size, with seasonal variation (more load in
//! winter, more sun in summer), noise per interval, and on a share of meters a rooftop PV
//! system whose midday generation, varied by a cloudiness drawn per day, is netted against the
//! load. Every interval yields the registers a smart meter keeps, consistent with each other:
//!
//! - active import and export energy (Wh, cumulative): the interval's net power integrated over
//!   the interval, split by sign, so `Δimport·3600/len = max(P, 0)` up to rounding;
//! - reactive import energy (varh, cumulative), from a power factor between 0.93 and 0.99;
//! - mean active power (W, signed: negative while exporting), voltage (V, about 230 V with a
//!   load-dependent drop and PV rise) and current (A, `|P| / (V·pf)`).
//!
//! The same seed, meters and period give the same values for a given amicn release (the
//! generator is `rand`'s seeded `StdRng`, pinned by the lock file); one meter's values do not
//! depend on how many others are generated.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Meters, ids `first_id..first_id + meters`.
    pub meters: u32,
    /// Id of the first meter.
    pub first_id: u32,
    /// Start of the first interval, seconds since the Unix epoch (UTC; local time is UTC).
    pub start_s: u64,
    /// Interval length in seconds (e.g. 900).
    pub interval_s: u32,
    /// Intervals per meter.
    pub intervals: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Share of meters with rooftop PV, in `[0, 1]`.
    pub pv_share: f64,
    /// Share of meters that are commercial sites, in `[0, 1]`.
    pub commercial_share: f64,
}

impl GenConfig {
    /// Checks the parameters; the error says which is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_s == 0 {
            return Err("interval must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.pv_share) {
            return Err(format!("pv share {} is not in [0, 1]", self.pv_share));
        }
        if !(0.0..=1.0).contains(&self.commercial_share) {
            return Err(format!(
                "commercial share {} is not in [0, 1]",
                self.commercial_share
            ));
        }
        if self.first_id == 0 || u64::from(self.first_id) + u64::from(self.meters) > 1 << 32 {
            return Err("meter ids must lie in 1..2^32".into());
        }
        Ok(())
    }
}

/// Kind of site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A household.
    Household,
    /// A commercial site (shop, office).
    Commercial,
}

/// One meter's fixed characteristics, drawn from the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterProfile {
    /// Meter id.
    pub id: u32,
    /// Kind of site.
    pub site: Site,
    /// Mean load in W.
    pub mean_w: f64,
    /// Peak PV output in W (0 without PV).
    pub pv_peak_w: f64,
    /// Power factor of the load.
    pub power_factor: f64,
}

/// One interval of one meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Meter id.
    pub meter: u32,
    /// Start of the interval, seconds since the Unix epoch.
    pub start_s: u64,
    /// Length in seconds.
    pub len_s: u32,
    /// Active import energy register at the end of the interval (Wh).
    pub import_wh: u64,
    /// Active export energy register at the end of the interval (Wh).
    pub export_wh: u64,
    /// Reactive import energy register at the end of the interval (varh).
    pub reactive_varh: u64,
    /// Mean active power over the interval (W; negative while exporting).
    pub power_w: i64,
    /// Voltage (V).
    pub voltage_v: f64,
    /// Current (A).
    pub current_a: f64,
}

/// A meter's generator: its profile and its registers, stepped one interval at a time.
#[derive(Debug)]
pub struct MeterGen {
    profile: MeterProfile,
    rng: StdRng,
    /// Registers in mWh / mvarh, so rounding never drifts.
    import_mwh: u64,
    export_mwh: u64,
    reactive_mvarh: u64,
    /// Cloudiness of the current day and which day it is.
    day: Option<(u64, f64)>,
    cfg: GenConfig,
    next: u32,
}

/// SplitMix64 finaliser: decorrelates the per-meter seeds derived from one seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Days since 1970-01-01 → (day of week with Monday = 0, day of year 0-based).
fn calendar(days: u64) -> (u32, u32) {
    // 1970-01-01 was a Thursday.
    let dow = ((days + 3) % 7) as u32;
    // Civil from days (Hinnant), enough for the year and the day in it.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    // Day of year counted from 1 March; shift to 1 January (approximate for leap years, which
    // only moves the seasonal curve by a day).
    let doy = (doy_mar + 59).rem_euclid(365) as u32;
    (dow, doy)
}

/// Household load shape (multiple of the mean) at `hour` (fractional).
fn household_shape(hour: f64, weekend: bool) -> f64 {
    let bump =
        |centre: f64, width: f64, height: f64| height * (-((hour - centre) / width).powi(2)).exp();
    let (morning, evening) = if weekend { (9.5, 19.0) } else { (7.5, 19.5) };
    0.45 + bump(morning, 1.3, if weekend { 0.7 } else { 0.9 })
        + bump(13.0, 2.5, if weekend { 0.5 } else { 0.2 })
        + bump(evening, 2.0, 1.5)
}

/// Commercial load shape at `hour`.
fn commercial_shape(hour: f64, weekend: bool) -> f64 {
    if weekend {
        return 0.35;
    }
    let open = 1.0 / (1.0 + (-(hour - 8.0) * 2.5).exp());
    let close = 1.0 / (1.0 + ((hour - 18.5) * 2.5).exp());
    0.3 + 1.6 * open * close
}

impl MeterGen {
    /// The generator of meter `id` under `cfg` (its profile depends only on the seed and id).
    pub fn new(cfg: &GenConfig, id: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(cfg.seed ^ mix(u64::from(id))));
        let commercial = rng.random::<f64>() < cfg.commercial_share;
        let site = if commercial {
            Site::Commercial
        } else {
            Site::Household
        };
        // Sizes spread log-normally: most households near 400 W mean, a few much larger.
        let spread = (rng.random::<f64>() - 0.5) * 1.2;
        let mean_w = match site {
            Site::Household => 400.0 * spread.exp(),
            Site::Commercial => 4_000.0 * spread.exp(),
        };
        let pv = rng.random::<f64>() < cfg.pv_share;
        let pv_peak_w = if pv {
            match site {
                Site::Household => 2_500.0 + rng.random::<f64>() * 5_000.0,
                Site::Commercial => 10_000.0 + rng.random::<f64>() * 30_000.0,
            }
        } else {
            0.0
        };
        let power_factor = 0.93 + rng.random::<f64>() * 0.06;
        // Registers start somewhere in a meter's life.
        let import_mwh = (rng.random::<f64>() * 20_000_000.0 * 1_000.0) as u64;
        MeterGen {
            profile: MeterProfile {
                id,
                site,
                mean_w,
                pv_peak_w,
                power_factor,
            },
            rng,
            import_mwh,
            export_mwh: 0,
            reactive_mvarh: import_mwh / 5,
            day: None,
            cfg: cfg.clone(),
            next: 0,
        }
    }

    /// The meter's characteristics.
    pub fn profile(&self) -> &MeterProfile {
        &self.profile
    }

    fn cloudiness(&mut self, day: u64) -> f64 {
        match self.day {
            Some((d, c)) if d == day => c,
            _ => {
                // Shared weather: every meter sees the same sky on a day (seeded by the day).
                let mut sky = StdRng::seed_from_u64(mix(self.cfg.seed ^ mix(day ^ 0x5157)));
                let c = sky.random::<f64>().powf(1.5);
                self.day = Some((day, c));
                c
            }
        }
    }
}

impl Iterator for MeterGen {
    type Item = Interval;

    fn next(&mut self) -> Option<Interval> {
        if self.next >= self.cfg.intervals {
            return None;
        }
        let len = u64::from(self.cfg.interval_s);
        let start_s = self.cfg.start_s + u64::from(self.next) * len;
        self.next += 1;
        let mid = start_s + len / 2;
        let days = mid / 86_400;
        let hour = (mid % 86_400) as f64 / 3_600.0;
        let (dow, doy) = calendar(days);
        let weekend = dow >= 5;
        // Seasons: phase 0 at mid-January (coldest, darkest).
        let season = (2.0 * std::f64::consts::PI * (f64::from(doy) - 15.0) / 365.0).cos();
        let shape = match self.profile.site {
            Site::Household => household_shape(hour, weekend) * (1.0 + 0.25 * season),
            Site::Commercial => commercial_shape(hour, weekend) * (1.0 + 0.10 * season),
        };
        let noise = 1.0 + (self.rng.random::<f64>() - 0.5) * 0.5;
        let load_w = (self.profile.mean_w * shape * noise).max(20.0);
        let pv_w = if self.profile.pv_peak_w > 0.0 {
            // Day length and height of the sun follow the season.
            let half_day = 6.0 - 2.0 * season;
            let x = (hour - 12.5) / half_day;
            let sun = if x.abs() < 1.0 {
                (std::f64::consts::FRAC_PI_2 * x).cos().powi(2)
            } else {
                0.0
            };
            let cloud = self.cloudiness(days);
            self.profile.pv_peak_w * sun * (0.75 - 0.25 * season) * (1.0 - 0.8 * cloud)
        } else {
            0.0
        };
        let net_w = load_w - pv_w;
        // Energy over the interval in mWh: W · s / 3.6.
        let e_mwh = (net_w.abs() * len as f64 / 3.6).round() as u64;
        if net_w >= 0.0 {
            self.import_mwh += e_mwh;
        } else {
            self.export_mwh += e_mwh;
        }
        let pf = self.profile.power_factor;
        let q_w = load_w * (1.0 / (pf * pf) - 1.0).sqrt();
        self.reactive_mvarh += (q_w * len as f64 / 3.6).round() as u64;
        // The connection is sized for the site: the drop under load (or the rise while
        // exporting) stays within a few volts of 230 V.
        let sag = (4.0 * net_w / (3.0 * self.profile.mean_w)).clamp(-8.0, 8.0);
        let voltage_v = 230.0 - sag + (self.rng.random::<f64>() - 0.5) * 2.0;
        let current_a = net_w.abs() / (voltage_v * pf);
        Some(Interval {
            meter: self.profile.id,
            start_s,
            len_s: self.cfg.interval_s,
            import_wh: self.import_mwh / 1_000,
            export_wh: self.export_mwh / 1_000,
            reactive_varh: self.reactive_mvarh / 1_000,
            power_w: net_w.round() as i64,
            voltage_v: (voltage_v * 10.0).round() / 10.0,
            current_a: (current_a * 100.0).round() / 100.0,
        })
    }
}

/// Header of [`Interval::csv_row`].
pub const CSV_HEADER: &str =
    "meter,interval_start,interval_s,import_wh,export_wh,reactive_varh,power_w,voltage_v,current_a";

impl Interval {
    /// One CSV row (interval start in seconds since the Unix epoch).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{:.1},{:.2}",
            self.meter,
            self.start_s,
            self.len_s,
            self.import_wh,
            self.export_wh,
            self.reactive_varh,
            self.power_w,
            self.voltage_v,
            self.current_a
        )
    }

    /// The interval in the reading format, with the registers `amicn data import` takes from
    /// the CSV columns: energies in Wh / varh, power in W, voltage in 0.1 V, current in 0.01 A.
    pub fn reading(&self) -> crate::reading::Reading {
        use crate::reading::{Obis, Reading, Register, Unit};
        let energy = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Reading::new(
            self.meter,
            self.start_s * 1_000_000,
            self.len_s.saturating_mul(1_000),
        )
        .with(Register::new(
            Obis::ACTIVE_IMPORT_ENERGY,
            energy(self.import_wh),
            0,
            Unit::WH,
        ))
        .with(Register::new(
            Obis::ACTIVE_EXPORT_ENERGY,
            energy(self.export_wh),
            0,
            Unit::WH,
        ))
        .with(Register::new(
            Obis::REACTIVE_IMPORT_ENERGY,
            energy(self.reactive_varh),
            0,
            Unit::VARH,
        ))
        .with(Register::new(Obis::ACTIVE_POWER, self.power_w, 0, Unit::W))
        .with(Register::new(
            Obis::VOLTAGE_L1,
            (self.voltage_v * 10.0).round() as i64,
            -1,
            Unit::V,
        ))
        .with(Register::new(
            Obis::CURRENT_L1,
            (self.current_a * 100.0).round() as i64,
            -2,
            Unit::A,
        ))
    }
}

/// Parses `YYYY-MM-DD` (UTC midnight) or plain seconds since the Unix epoch.
pub fn parse_start(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(format!(
            "{s:?} is neither YYYY-MM-DD nor seconds since 1970"
        ));
    };
    let (y, m, d): (i64, i64, i64) = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) if (1..=12).contains(&m) && (1..=31).contains(&d) && y >= 1970 => {
            (y, m, d)
        }
        _ => return Err(format!("{s:?} is not a valid date")),
    };
    // Days from civil (Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days as u64 * 86_400)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(meters: u32, intervals: u32) -> GenConfig {
        GenConfig {
            meters,
            first_id: 1,
            start_s: parse_start("2026-06-01").unwrap(),
            interval_s: 900,
            intervals,
            seed: 7,
            pv_share: 0.3,
            commercial_share: 0.2,
        }
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_start("1970-01-01").unwrap(), 0);
        assert_eq!(parse_start("2026-12-02").unwrap(), 1_796_169_600);
        assert_eq!(parse_start("86400").unwrap(), 86_400);
        assert!(parse_start("2026-13-01").is_err());
        assert!(parse_start("yesterday").is_err());
        // 2026-12-02 is a Wednesday (Monday = 0).
        assert_eq!(calendar(1_796_169_600 / 86_400).0, 2);
    }

    #[test]
    fn intervals_become_valid_readings_with_every_register() {
        use crate::reading::{Obis, Reading};
        for iv in MeterGen::new(&cfg(5, 96), 2) {
            let r = iv.reading();
            r.validate().unwrap();
            let back = Reading::decode(&r.encode().unwrap()).unwrap();
            assert_eq!(back, r);
            assert_eq!(
                back.end_us(),
                (iv.start_s + u64::from(iv.len_s)) * 1_000_000
            );
            let reg = |o| back.register(o).unwrap();
            assert_eq!(reg(Obis::ACTIVE_IMPORT_ENERGY).value, iv.import_wh as i64);
            assert_eq!(reg(Obis::ACTIVE_POWER).value, iv.power_w);
            assert_eq!(reg(Obis::VOLTAGE_L1).scaler, -1);
        }
    }

    #[test]
    fn same_seed_same_data_independent_of_population() {
        let a: Vec<Interval> = MeterGen::new(&cfg(10, 96), 3).collect();
        let b: Vec<Interval> = MeterGen::new(&cfg(1000, 96), 3).collect();
        assert_eq!(a, b);
        let mut other = cfg(10, 96);
        other.seed = 8;
        let c: Vec<Interval> = MeterGen::new(&other, 3).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn registers_are_monotone_and_consistent_with_power() {
        let c = cfg(50, 96 * 7);
        for id in 1..=50 {
            let mut prev: Option<Interval> = None;
            for iv in MeterGen::new(&c, id) {
                if let Some(p) = &prev {
                    assert!(iv.import_wh >= p.import_wh && iv.export_wh >= p.export_wh);
                    assert!(iv.reactive_varh >= p.reactive_varh);
                    // The energy of the interval matches its mean power (registers are whole Wh).
                    let d_in = (iv.import_wh - p.import_wh) as f64;
                    let d_out = (iv.export_wh - p.export_wh) as f64;
                    let from_power = iv.power_w.unsigned_abs() as f64 * 0.25;
                    let moved = if iv.power_w >= 0 { d_in } else { d_out };
                    assert!(
                        (moved - from_power).abs() <= 1.5,
                        "meter {id}: {moved} vs {from_power}"
                    );
                    assert_eq!(iv.start_s, p.start_s + 900);
                }
                assert!(
                    iv.voltage_v > 215.0 && iv.voltage_v < 245.0,
                    "{}",
                    iv.voltage_v
                );
                prev = Some(iv);
            }
        }
    }

    #[test]
    fn pv_exports_midday_and_only_with_pv() {
        let c = cfg(200, 96 * 7);
        let mut exporters = 0;
        for id in 1..=200 {
            let g = MeterGen::new(&c, id);
            let has_pv = g.profile().pv_peak_w > 0.0;
            let last = g.last().unwrap();
            if !has_pv {
                assert_eq!(last.export_wh, 0, "meter {id} exports without PV");
            } else if last.export_wh > 0 {
                exporters += 1;
            }
        }
        assert!(
            exporters > 10,
            "{exporters} PV meters exported in a June week"
        );
    }

    #[test]
    fn commercial_weekends_are_quiet_and_winter_loads_more() {
        let mut c = cfg(400, 96 * 7);
        c.pv_share = 0.0;
        c.commercial_share = 1.0;
        // 2026-06-01 is a Monday: days 0-4 weekdays, 5-6 weekend.
        let mut weekday = 0.0;
        let mut weekend = 0.0;
        for id in 1..=40 {
            for (k, iv) in MeterGen::new(&c, id).enumerate() {
                let day = k / 96;
                let hour = (k % 96) / 4;
                if (10..16).contains(&hour) {
                    if day < 5 {
                        weekday += iv.power_w as f64;
                    } else {
                        weekend += iv.power_w as f64;
                    }
                }
            }
        }
        assert!(weekday / 5.0 > 2.0 * weekend / 2.0);
        let household = |start: &str| {
            let mut c = cfg(1, 96 * 7);
            c.pv_share = 0.0;
            c.commercial_share = 0.0;
            c.start_s = parse_start(start).unwrap();
            (1..=40)
                .map(|id| MeterGen::new(&c, id).map(|i| i.power_w as f64).sum::<f64>())
                .sum::<f64>()
        };
        assert!(household("2026-01-12") > 1.2 * household("2026-07-13"));
    }
}
