//! Congestion window and retransmission timer of the segmented fetch, with no I/O and no clock:
//! callers pass `Instant`s in, so the behaviour is tested deterministically.

use std::time::{Duration, Instant};

/// RTT estimator and retransmission timeout after RFC 6298 (α = 1/8, β = 1/4, K = 4).
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// A fresh estimator: RTO starts at `initial` and stays within `[min_rto, max_rto]`.
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            min_rto,
            max_rto,
        }
    }

    /// Feeds one RTT sample (only from segments that were not retransmitted — Karn's rule).
    pub fn on_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + rtt / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + (self.rttvar * 4).max(Duration::from_millis(1)))
            .clamp(self.min_rto, self.max_rto);
    }

    /// Doubles the RTO after a timeout (exponential backoff, capped).
    pub fn on_timeout(&mut self) {
        self.rto = (self.rto * 2).min(self.max_rto);
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Smoothed RTT, once a sample has been seen.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
}

/// Why the window shrank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionSignal {
    /// A Data carried a CongestionMark.
    Mark,
    /// A segment timed out.
    Loss,
    /// A Nack with reason Congestion.
    Nack,
}

/// AIMD window in Interests: slow start to `ssthresh`, then +1 per window; halves at most once
/// per RTT on a congestion signal (so a burst of marks from one window counts once).
#[derive(Debug, Clone)]
pub struct Aimd {
    cwnd: f64,
    ssthresh: f64,
    min_window: f64,
    max_window: f64,
    /// Signals for Interests sent before this instant were already reacted to.
    recovery_until: Option<Instant>,
    decreases: u64,
}

impl Aimd {
    /// A window starting at `initial` Interests, never below 1 or above `max_window`.
    pub fn new(initial: f64, max_window: f64) -> Aimd {
        Aimd {
            cwnd: initial.max(1.0),
            ssthresh: f64::INFINITY,
            min_window: 1.0,
            max_window: max_window.max(1.0),
            recovery_until: None,
            decreases: 0,
        }
    }

    /// Current window in Interests (whole).
    pub fn window(&self) -> usize {
        self.cwnd.floor() as usize
    }

    /// Current window as a float.
    pub fn cwnd(&self) -> f64 {
        self.cwnd
    }

    /// Number of multiplicative decreases so far.
    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// A segment sent at `sent_at` was answered by unmarked Data.
    pub fn on_ack(&mut self, sent_at: Instant) {
        let _ = sent_at;
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else {
            self.cwnd += 1.0 / self.cwnd;
        }
        self.cwnd = self.cwnd.min(self.max_window);
    }

    /// A congestion signal about an Interest sent at `sent_at`; `now` is when it is seen.
    /// Returns true when the window was actually reduced.
    pub fn on_congestion(
        &mut self,
        _signal: CongestionSignal,
        sent_at: Instant,
        now: Instant,
    ) -> bool {
        if self.recovery_until.is_some_and(|t| sent_at < t) {
            return false;
        }
        self.ssthresh = (self.cwnd / 2.0).max(self.min_window);
        self.cwnd = self.ssthresh;
        self.recovery_until = Some(now);
        self.decreases += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_follows_rfc6298() {
        let mut e = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(10),
            Duration::from_secs(60),
        );
        e.on_sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 4*50 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.on_sample(Duration::from_millis(100));
        // RTTVAR = 3/4*50 + 0 = 37.5; SRTT = 100; RTO = 250 ms.
        assert_eq!(e.rto(), Duration::from_micros(250_000));
        e.on_timeout();
        assert_eq!(e.rto(), Duration::from_millis(500));
    }

    #[test]
    fn window_halves_once_per_rtt() {
        let t0 = Instant::now();
        let mut w = Aimd::new(2.0, 1000.0);
        for _ in 0..30 {
            w.on_ack(t0);
        }
        assert_eq!(w.window(), 32);
        let t1 = t0 + Duration::from_millis(50);
        assert!(w.on_congestion(CongestionSignal::Mark, t0, t1));
        assert_eq!(w.window(), 16);
        // Another mark for an Interest sent before the reaction does not halve again.
        assert!(!w.on_congestion(CongestionSignal::Loss, t0, t1 + Duration::from_millis(1)));
        assert_eq!(w.window(), 16);
        // Congestion avoidance: about +1 per window of acks (1/cwnd each, cwnd growing).
        for _ in 0..17 {
            w.on_ack(t1);
        }
        assert_eq!(w.window(), 17);
        let t2 = t1 + Duration::from_millis(10);
        assert!(w.on_congestion(CongestionSignal::Nack, t2, t2));
        assert_eq!(w.window(), 8);
        assert_eq!(w.decreases(), 2);
    }

    #[test]
    fn window_never_below_one() {
        let t = Instant::now();
        let mut w = Aimd::new(1.0, 10.0);
        for i in 0..5 {
            w.on_congestion(
                CongestionSignal::Loss,
                t + Duration::from_millis(i * 10),
                t + Duration::from_millis(i * 10),
            );
        }
        assert_eq!(w.window(), 1);
    }
}
