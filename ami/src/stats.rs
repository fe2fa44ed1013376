//! Latency samples and their percentiles.

use std::sync::Mutex;
use std::time::Duration;

/// A bounded set of latency samples (microseconds) with nearest-rank percentiles.
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Mutex<Vec<u64>>,
}

/// Most samples kept; later ones are dropped (a demo run stays far below this).
const MAX_SAMPLES: usize = 1 << 20;

impl Latencies {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < MAX_SAMPLES {
            s.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Up to `max` samples (µs), evenly spread over all recorded, for CDF plots.
    pub fn samples(&self, max: usize) -> Vec<u64> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() <= max || max == 0 {
            return if max == 0 { Vec::new() } else { s.clone() };
        }
        let step = s.len() as f64 / max as f64;
        (0..max)
            .filter_map(|i| s.get((i as f64 * step) as usize).copied())
            .collect()
    }

    /// The `q`-quantile (0.0..=1.0) in microseconds, nearest rank; `None` without samples.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let mut s = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if s.is_empty() {
            return None;
        }
        s.sort_unstable();
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s.get(rank - 1).copied()
    }
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
}
