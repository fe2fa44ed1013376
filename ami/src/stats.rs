//! Latency samples and their percentiles.

use std::sync::Mutex;
use std::time::Duration;

/// Latency samples (microseconds) with nearest-rank percentiles: the newest 65,536 samples
/// are kept (a ring), so memory and the cost of a percentile stay bounded however long a
/// daemon runs, while [`Latencies::count`] counts every sample ever recorded.
#[derive(Debug, Default)]
pub struct Latencies {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    kept: Vec<u64>,
    /// Where the next sample goes once `kept` is full.
    next: usize,
    total: usize,
}

/// Samples kept for percentiles and plots.
const KEPT: usize = 1 << 16;

impl Latencies {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        let v = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut r = self.ring();
        r.total += 1;
        if r.kept.len() < KEPT {
            r.kept.push(v);
        } else {
            let at = r.next;
            r.kept[at] = v;
            r.next = (at + 1) % KEPT;
        }
    }

    /// Number of samples ever recorded.
    pub fn count(&self) -> usize {
        self.ring().total
    }

    /// Up to `max` samples (µs), evenly spread over those kept, for CDF plots.
    pub fn samples(&self, max: usize) -> Vec<u64> {
        let r = self.ring();
        let s = &r.kept;
        if s.len() <= max || max == 0 {
            return if max == 0 { Vec::new() } else { s.clone() };
        }
        let step = s.len() as f64 / max as f64;
        (0..max)
            .filter_map(|i| s.get((i as f64 * step) as usize).copied())
            .collect()
    }

    /// The `q`-quantile (0.0..=1.0) of the kept samples in microseconds, nearest rank; `None`
    /// without samples.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let s = self.ring().kept.clone();
        nearest_rank(s, q)
    }

    /// The `q`-quantile of the newest `last` samples only: what latency is now, in a long run.
    pub fn recent_quantile_us(&self, q: f64, last: usize) -> Option<u64> {
        let s = {
            let r = self.ring();
            let n = last.min(r.kept.len());
            if r.kept.len() < KEPT {
                r.kept[r.kept.len() - n..].to_vec()
            } else {
                // Oldest sample at `next`; the newest `n` end just before it.
                (0..n)
                    .map(|i| r.kept[(r.next + KEPT - n + i) % KEPT])
                    .collect()
            }
        };
        nearest_rank(s, q)
    }
}

fn nearest_rank(mut s: Vec<u64>, q: f64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.sort_unstable();
    let q = q.clamp(0.0, 1.0);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latencies::new();
        assert_eq!(l.quantile_us(0.5), None);
        for us in (1..=100).rev() {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.count(), 100);
        assert_eq!(l.quantile_us(0.5), Some(50));
        assert_eq!(l.quantile_us(0.99), Some(99));
        assert_eq!(l.quantile_us(1.0), Some(100));
        assert_eq!(l.quantile_us(0.0), Some(1));
    }

    #[test]
    fn recent_percentiles_see_only_the_newest_samples() {
        let l = Latencies::new();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        // The newest 100 samples are 901..=1000.
        assert_eq!(l.recent_quantile_us(0.0, 100), Some(901));
        assert_eq!(l.recent_quantile_us(0.5, 100), Some(950));
        assert_eq!(l.recent_quantile_us(0.5, 10_000), Some(500));
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_and_counts_all() {
        let l = Latencies::new();
        let n = KEPT + 1000;
        for us in 1..=n as u64 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.count(), n);
        // Kept: 1001..=n; the oldest thousand were overwritten.
        assert_eq!(l.quantile_us(0.0), Some(1001));
        assert_eq!(l.quantile_us(1.0), Some(n as u64));
        assert_eq!(l.recent_quantile_us(0.0, 10), Some(n as u64 - 9));
        assert_eq!(l.recent_quantile_us(1.0, 10), Some(n as u64));
        assert_eq!(l.samples(10).len(), 10);
    }
}
