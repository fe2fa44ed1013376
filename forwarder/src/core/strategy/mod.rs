//! Forwarding strategies and the per-prefix strategy choice.
//!
//! Three strategies, named as in NFD so `nfdc strategy set` works unchanged:
//! - best-route (`/localhost/nfd/strategy/best-route/v=5`, [`best_route`]): lowest-cost
//!   eligible next hop; retransmissions are suppressed with an exponentially growing interval
//!   (10 ms → 250 ms) and otherwise go to an unused next hop first; a Nack makes it try the next
//!   unused next hop;
//! - multicast (`/localhost/nfd/strategy/multicast/v=4`, [`multicast`]): every eligible next
//!   hop, per-upstream retransmission suppression;
//! - asf (`/localhost/nfd/strategy/asf/v=5`, [`asf`]): adaptive, ranks next hops by smoothed RTT
//!   measured per FIB prefix, treats unanswered Interests as timeouts that demote a next hop, and
//!   periodically sends a copy to an alternative next hop to keep measurements fresh.
//!
//! Each implements [`Strategy`]. The pipelines in `forwarder.rs` hand a strategy a [`Context`]
//! (the FIB next hops, the PIT entry, the face table and the measurements table) and carry out
//! what it decided; the strategy never sends anything itself. [`StrategyKind`] is what a PIT
//! entry and the choice table store, and dispatches to the three with a `match`, so choosing a
//! strategy costs no allocation and no indirect call per packet.

mod asf;
mod best_route;
mod multicast;

use std::time::Duration;

use amicn_tlv::{Component, NackReason, Name};

use super::config::Config;
use super::face::{FaceId, FaceTable, LinkType};
use super::forwarder::NextHop;
use super::name_map::NameMap;
use super::pit::PitEntry;
use super::time::Time;

pub(crate) use asf::measure_late_probe;
pub use asf::{FaceMeasurement, Measurements};

/// What a strategy decided for an Interest, besides the upstreams it put in
/// [`Context::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Forward to the upstreams listed (possibly none: nothing to do).
    Forward,
    /// No eligible upstream: Nack the downstreams NoRoute and drop the entry.
    NoRoute,
    /// A retransmission arrived too soon and is not forwarded.
    Suppressed,
}

/// An eligible next hop ranked by the adaptive strategy: (face, (class, value, cost)).
pub(crate) type Ranked = (FaceId, (u8, u64, u64));

/// What a strategy sees of the forwarder for one PIT entry.
pub(crate) struct Context<'a> {
    /// The time of the event being handled.
    pub(crate) now: Time,
    /// Retransmission suppression and probing settings.
    pub(crate) config: &'a Config,
    /// The FIB next hops of the Interest (by ForwardingHint or name), lowest cost first; empty
    /// where the event needs none (Data, expiry, a Duplicate Nack).
    pub(crate) hops: &'a [NextHop],
    /// The PIT entry: its in- and out-records and retransmission state.
    pub(crate) entry: &'a mut PitEntry,
    /// Face state (scope, link type) for eligibility.
    pub(crate) faces: &'a FaceTable,
    /// Per-prefix measurements (adaptive strategy).
    pub(crate) measurements: &'a mut NameMap<Measurements>,
    /// Scratch space for ranking next hops, kept by the forwarder between packets.
    pub(crate) ranked: &'a mut Vec<Ranked>,
    /// Output: the upstreams to send the entry's Interest to, in order.
    pub(crate) send: &'a mut Vec<FaceId>,
}

impl Context<'_> {
    /// Whether `out` may receive this entry's Interest that came from `downstream` (any
    /// downstream of the entry when `None`): never back where it came from except on ad hoc
    /// links, and the `/localhost`, `/localhop` and HopLimit-zero scope rules.
    pub(crate) fn eligible(&self, downstream: Option<FaceId>, out: FaceId) -> bool {
        eligible(self.faces, self.entry, downstream, out)
    }

    /// Retransmission suppression on the entry as a whole; true = may forward.
    pub(crate) fn retx_allowed(&mut self) -> bool {
        let now = self.now;
        let since = self
            .entry
            .last_out()
            .map_or(Duration::MAX, |t| now.saturating_since(t));
        self.entry.retx.allow(
            since,
            self.config.retx_suppression_initial,
            self.config.retx_suppression_max,
        )
    }

    /// Whether the entry's Interest was already sent to `face`.
    pub(crate) fn tried(&self, face: FaceId) -> bool {
        self.entry.out_records.iter().any(|o| o.face == face)
    }
}

/// See [`Context::eligible`]; a free function so it can be used while other fields of the
/// context are borrowed.
pub(crate) fn eligible(
    faces: &FaceTable,
    e: &PitEntry,
    downstream: Option<FaceId>,
    out: FaceId,
) -> bool {
    let Some(f) = faces.get(out) else {
        return false;
    };
    let back = match downstream {
        Some(d) => d == out,
        None => e.in_records.iter().any(|r| r.face == out),
    };
    if back && f.options.link_type != LinkType::AdHoc {
        return false;
    }
    if !f.is_local() {
        if e.localhost {
            return false;
        }
        if e.localhop && !e.in_records.iter().any(|r| faces.is_local(r.face)) {
            return false;
        }
        if e.hop_zero {
            return false;
        }
    }
    true
}

/// A forwarding strategy: decides where an entry's Interest goes, and learns from what comes
/// back. Decisions are written into the [`Context`]; the forwarder carries them out.
pub(crate) trait Strategy {
    /// Whether the strategy keeps measurements under the matched FIB prefix (the PIT entry then
    /// remembers that prefix).
    fn measures(&self) -> bool {
        false
    }

    /// An Interest from `in_face` was added to the entry (new or retransmitted).
    fn after_receive_interest(&self, ctx: &mut Context<'_>, in_face: FaceId) -> Verdict;

    /// `from` Nacked the entry's Interest with `reason` (its out-record already carries the
    /// Nack): the upstream to try next, if any.
    fn after_receive_nack(
        &self,
        ctx: &mut Context<'_>,
        from: FaceId,
        reason: NackReason,
    ) -> Option<FaceId>;

    /// Data from `from` is about to satisfy the entry.
    fn before_satisfy(&self, _ctx: &mut Context<'_>, _from: FaceId) {}

    /// The entry expired unanswered.
    fn before_expire(&self, _ctx: &mut Context<'_>) {}
}

macro_rules! dispatch {
    ($kind:expr, $s:ident => $body:expr) => {
        match $kind {
            StrategyKind::BestRoute => {
                let $s = best_route::BestRoute;
                $body
            }
            StrategyKind::Multicast => {
                let $s = multicast::Multicast;
                $body
            }
            StrategyKind::Asf => {
                let $s = asf::Asf;
                $body
            }
        }
    };
}

impl Strategy for StrategyKind {
    fn measures(&self) -> bool {
        dispatch!(self, s => s.measures())
    }

    fn after_receive_interest(&self, ctx: &mut Context<'_>, in_face: FaceId) -> Verdict {
        dispatch!(self, s => s.after_receive_interest(ctx, in_face))
    }

    fn after_receive_nack(
        &self,
        ctx: &mut Context<'_>,
        from: FaceId,
        reason: NackReason,
    ) -> Option<FaceId> {
        dispatch!(self, s => s.after_receive_nack(ctx, from, reason))
    }

    fn before_satisfy(&self, ctx: &mut Context<'_>, from: FaceId) {
        dispatch!(self, s => s.before_satisfy(ctx, from))
    }

    fn before_expire(&self, ctx: &mut Context<'_>) {
        dispatch!(self, s => s.before_expire(ctx))
    }
}

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
}
