//! Forwarding strategies and the per-prefix strategy choice.
//!
//! Three strategies, named as in NFD so `nfdc strategy set` works unchanged:
//! - best-route (`/localhost/nfd/strategy/best-route/v=5`): lowest-cost eligible next hop;
//!   retransmissions are suppressed with an exponentially growing interval (10 ms → 250 ms) and
//!   otherwise go to an unused next hop first; a Nack makes it try the next unused next hop;
//! - multicast (`/localhost/nfd/strategy/multicast/v=4`): every eligible next hop, per-upstream
//!   retransmission suppression;
//! - asf (`/localhost/nfd/strategy/asf/v=5`): adaptive, ranks next hops by smoothed RTT measured
//!   per FIB prefix, treats unanswered Interests as timeouts that demote a next hop, and
//!   periodically sends a copy to an alternative next hop to keep measurements fresh.
//!
//! The decision code lives in the forwarder's pipelines (it needs the FIB, PIT and face table
//! at once); this module holds the names, the choice table and the measurement arithmetic.

use std::time::Duration;

use amicn_tlv::{Component, Name};

use super::FaceId;

/// The strategies the core implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StrategyKind {
    /// Best route.
    #[default]
    BestRoute,
    /// Multicast.
    Multicast,
    /// Adaptive SRTT-based forwarding.
    Asf,
}

const PREFIX: &str = "/localhost/nfd/strategy";

impl StrategyKind {
    /// Every strategy, for listings.
    pub const ALL: [StrategyKind; 3] = [
        StrategyKind::BestRoute,
        StrategyKind::Multicast,
        StrategyKind::Asf,
    ];

    /// The short name (`best-route`).
    pub fn short_name(self) -> &'static str {
        match self {
            StrategyKind::BestRoute => "best-route",
            StrategyKind::Multicast => "multicast",
            StrategyKind::Asf => "asf",
        }
    }

    /// The version we implement (NFD's current ones).
    pub fn version(self) -> u64 {
        match self {
            StrategyKind::BestRoute => 5,
            StrategyKind::Multicast => 4,
            StrategyKind::Asf => 5,
        }
    }

    /// The full instance name, e.g. `/localhost/nfd/strategy/best-route/v=5`.
    pub fn instance_name(self) -> Name {
        let base = Name::from_uri(PREFIX).unwrap_or_default();
        base.append(Component::generic(self.short_name().as_bytes().to_vec()))
            .append(Component::version(self.version()))
    }

    /// Resolves a strategy name as given to `strategy-choice/set`: with or without the version
    /// component (without = latest, as NFD does); an unknown name or version gives `None`.
    /// Parameters after the version are not supported and give `None`.
    pub fn from_name(name: &Name) -> Option<StrategyKind> {
        let base = Name::from_uri(PREFIX).ok()?;
        if !base.is_prefix_of(name) || name.len() < base.len() + 1 {
            return None;
        }
        let short = name.get(base.len())?;
        if !short.is_generic() {
            return None;
        }
        let kind = StrategyKind::ALL
            .into_iter()
            .find(|k| short.value() == k.short_name().as_bytes())?;
        match name.len() - base.len() {
            1 => Some(kind),
            2 => (name.get(base.len() + 1)?.as_version()? == kind.version()).then_some(kind),
            _ => None,
        }
    }
}

/// Exponential retransmission suppression state (NFD RetxSuppressionExponential).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RetxSuppression {
    /// Current interval in ns; 0 until the first retransmission is forwarded.
    pub(crate) interval_ns: u64,
}

impl RetxSuppression {
    /// Decides for a retransmission arriving `since_last_out` after the latest out-record:
    /// `true` = forward (and grow the interval), `false` = suppress.
    pub(crate) fn allow(
        &mut self,
        since_last_out: Duration,
        initial: Duration,
        max: Duration,
    ) -> bool {
        let initial_ns = u64::try_from(initial.as_nanos()).unwrap_or(u64::MAX);
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let interval = if self.interval_ns == 0 {
            initial_ns
        } else {
            self.interval_ns
        };
        let since = u64::try_from(since_last_out.as_nanos()).unwrap_or(u64::MAX);
        if since < interval {
            return false;
        }
        self.interval_ns = interval.saturating_mul(2).min(max_ns);
        true
    }
}

/// RTT state of one next hop under one FIB prefix (adaptive strategy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceMeasurement {
    /// The next hop.
    pub face: FaceId,
    /// Smoothed RTT in ns (RFC 6298), `None` before the first sample.
    pub srtt_ns: Option<u64>,
    /// RTT variation in ns.
    pub rttvar_ns: u64,
    /// Consecutive Interests that expired unanswered after being sent there.
    pub timeouts: u32,
}

impl FaceMeasurement {
    pub(crate) fn new(face: FaceId) -> Self {
        FaceMeasurement {
            face,
            srtt_ns: None,
            rttvar_ns: 0,
            timeouts: 0,
        }
    }

    /// Adds one RTT sample (α = 1/8, β = 1/4) and clears the timeout streak.
    pub(crate) fn add_rtt(&mut self, rtt_ns: u64) {
        match self.srtt_ns {
            None => {
                self.srtt_ns = Some(rtt_ns);
                self.rttvar_ns = rtt_ns / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt_ns);
                self.rttvar_ns = (3 * self.rttvar_ns + diff) / 4;
                self.srtt_ns = Some((7 * srtt + rtt_ns) / 8);
            }
        }
        self.timeouts = 0;
    }

    /// Ranking key: working measured hops by SRTT, then unmeasured ones (by cost, which the
    /// caller adds), then hops that timed out.
    pub(crate) fn rank_class(&self) -> (u8, u64) {
        match (self.timeouts, self.srtt_ns) {
            (0, Some(s)) => (0, s),
            (0, None) => (1, 0),
            (t, _) => (2, u64::from(t)),
        }
    }
}

/// Measurements kept per FIB prefix by the adaptive strategy.
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    /// One record per next hop that has been used.
    pub faces: Vec<FaceMeasurement>,
    /// When the next probe may be sent (ns of virtual time).
    pub(crate) next_probe_ns: u64,
    /// The outstanding probe (face, sent at): its Data usually arrives after the primary path
    /// satisfied the entry, so it is measured from the unsolicited-Data path.
    pub(crate) probe: Option<(FaceId, super::Time)>,
}

impl Measurements {
    /// The record of one face.
    pub fn get(&self, face: FaceId) -> Option<&FaceMeasurement> {
        self.faces.iter().find(|m| m.face == face)
    }

    pub(crate) fn get_mut(&mut self, face: FaceId) -> &mut FaceMeasurement {
        if let Some(i) = self.faces.iter().position(|m| m.face == face) {
            return &mut self.faces[i];
        }
        self.faces.push(FaceMeasurement::new(face));
        let last = self.faces.len() - 1;
        &mut self.faces[last]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_versionless_means_latest() {
        for k in StrategyKind::ALL {
            assert_eq!(StrategyKind::from_name(&k.instance_name()), Some(k));
        }
        assert_eq!(
            StrategyKind::BestRoute.instance_name().to_string(),
            "/localhost/nfd/strategy/best-route/v=5"
        );
        let n = |s| Name::from_uri(s).unwrap();
        assert_eq!(
            StrategyKind::from_name(&n("/localhost/nfd/strategy/multicast")),
            Some(StrategyKind::Multicast)
        );
        assert_eq!(
            StrategyKind::from_name(&n("/localhost/nfd/strategy/asf/v=5")),
            Some(StrategyKind::Asf)
        );
        assert_eq!(
            StrategyKind::from_name(&n("/localhost/nfd/strategy/asf/v=1")),
            None
        );
        assert_eq!(
            StrategyKind::from_name(&n("/localhost/nfd/strategy/self-learning")),
            None
        );
        assert_eq!(StrategyKind::from_name(&n("/localhost/nfd/strategy")), None);
    }

    #[test]
    fn suppression_interval_doubles_up_to_max() {
        let mut r = RetxSuppression::default();
        let ms = Duration::from_millis;
        let (i, m) = (ms(10), ms(250));
        assert!(!r.allow(ms(5), i, m));
        assert!(r.allow(ms(10), i, m));
        assert!(!r.allow(ms(15), i, m), "interval is now 20 ms");
        assert!(r.allow(ms(20), i, m));
        for _ in 0..10 {
            assert!(r.allow(ms(1000), i, m));
        }
        assert_eq!(r.interval_ns, 250_000_000);
        assert!(!r.allow(ms(249), i, m));
    }

    #[test]
    fn rtt_smoothing_and_ranking() {
        let mut m = FaceMeasurement::new(FaceId(300));
        assert_eq!(m.rank_class(), (1, 0));
        m.add_rtt(80);
        assert_eq!(m.srtt_ns, Some(80));
        m.add_rtt(160);
        assert_eq!(m.srtt_ns, Some(90));
        assert_eq!(m.rank_class(), (0, 90));
        m.timeouts = 2;
        assert_eq!(m.rank_class(), (2, 2));
        m.add_rtt(90);
        assert_eq!(m.timeouts, 0);
    }
}
