//! asf (adaptive SRTT-based forwarding): ranks eligible next hops by the smoothed RTT measured
//! under the matched FIB prefix, then unmeasured ones, then ones whose Interests timed out
//! (by cost within a class); every probing interval a copy of a new Interest also goes to the
//! best alternative, preferring one never measured, to keep measurements fresh.

use amicn_tlv::{NackReason, Name};

use super::{Context, Strategy, Verdict, eligible};
use crate::core::FaceId;
use crate::core::forwarder::NextHop;
use crate::core::name_map::NameMap;
use crate::core::time::Time;

/// The adaptive strategy.
pub(crate) struct Asf;

/// Fills `ctx.ranked` with the eligible next hops, best first.
fn rank(ctx: &mut Context<'_>, downstream: Option<FaceId>) {
    let meas = ctx
        .entry
        .meas
        .as_deref()
        .and_then(|p| ctx.measurements.get(p));
    ctx.ranked.clear();
    for h in ctx.hops {
        if !eligible(ctx.faces, ctx.entry, downstream, h.face) {
            continue;
        }
        let (class, val) = meas
            .and_then(|m| m.get(h.face))
            .map_or((1, 0), FaceMeasurement::rank_class);
        ctx.ranked.push((h.face, (class, val, h.cost)));
    }
    ctx.ranked.sort_by_key(|(f, k)| (*k, *f));
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Strategy for Asf {
    fn measures(&self) -> bool {
        true
    }

    fn after_receive_interest(&self, ctx: &mut Context<'_>, in_face: FaceId) -> Verdict {
        rank(ctx, Some(in_face));
        if !ctx.entry.out_records.is_empty() {
            if !ctx.retx_allowed() {
                return Verdict::Suppressed;
            }
            let pick = ctx
                .ranked
                .iter()
                .find(|(f, _)| !ctx.entry.out_records.iter().any(|o| o.face == *f))
                .or(ctx.ranked.first())
                .map(|(f, _)| *f);
            if let Some(f) = pick {
                ctx.send.push(f);
            }
            return Verdict::Forward;
        }
        let Some(&(best, _)) = ctx.ranked.first() else {
            return Verdict::NoRoute;
        };
        ctx.send.push(best);
        // Probe: keep an alternative measured, preferring one never measured.
        let Some(prefix) = ctx.entry.meas.as_deref() else {
            return Verdict::Forward;
        };
        let now = ctx.now.as_nanos();
        let interval_ns = nanos(ctx.config.asf_probing_interval);
        let can_create = ctx.measurements.len() < ctx.config.measurements_max;
        let due = match ctx.measurements.get_mut(prefix) {
            Some(m) => now >= m.next_probe_ns,
            None if can_create => {
                // The first probe waits one interval, like NFD's randomised first probe.
                let m = Measurements {
                    next_probe_ns: now.saturating_add(interval_ns),
                    ..Measurements::default()
                };
                ctx.measurements.insert(prefix, m);
                false
            }
            None => false,
        };
        if !due || ctx.ranked.len() < 2 {
            return Verdict::Forward;
        }
        let probe = ctx
            .ranked
            .iter()
            .skip(1)
            .min_by_key(|(f, (class, val, cost))| {
                let pref = if *class == 1 { 0 } else { *class + 1 };
                (pref, *val, *cost, *f)
            })
            .map(|(f, _)| *f);
        if let Some(m) = ctx.measurements.get_mut(prefix) {
            m.next_probe_ns = now.saturating_add(interval_ns);
            m.probe = probe.map(|f| (f, ctx.now));
        }
        if let Some(p) = probe {
            ctx.send.push(p);
        }
        Verdict::Forward
    }

    fn after_receive_nack(
        &self,
        ctx: &mut Context<'_>,
        from: FaceId,
        reason: NackReason,
    ) -> Option<FaceId> {
        if let Some(p) = ctx.entry.meas.as_deref()
            && let Some(m) = ctx.measurements.get_mut(p)
        {
            m.get_mut(from).timeouts += 1;
        }
        if reason == NackReason::Duplicate {
            return None;
        }
        rank(ctx, None);
        ctx.ranked
            .iter()
            .map(|(f, _)| *f)
            .find(|f| !ctx.entry.out_records.iter().any(|o| o.face == *f))
    }

    fn before_satisfy(&self, ctx: &mut Context<'_>, from: FaceId) {
        // RTT sample from the out-record of the face the Data came from.
        if let Some(o) = ctx.entry.out_records.iter().find(|o| o.face == from)
            && let Some(p) = ctx.entry.meas.as_deref()
            && let Some(m) = ctx.measurements.get_mut(p)
        {
            m.get_mut(from)
                .add_rtt(nanos(ctx.now.saturating_since(o.sent)));
        }
    }

    fn before_expire(&self, ctx: &mut Context<'_>) {
        if let Some(p) = ctx.entry.meas.as_deref()
            && let Some(m) = ctx.measurements.get_mut(p)
        {
            for o in ctx.entry.out_records.iter() {
                m.get_mut(o.face).timeouts += 1;
            }
        }
    }
}

/// RTT of a probe whose Data came after the entry was satisfied by the primary path (so it
/// arrives as unsolicited Data and is matched against the outstanding probe of its prefix).
pub(crate) fn measure_late_probe(
    fib: &NameMap<Vec<NextHop>>,
    measurements: &mut NameMap<Measurements>,
    now: Time,
    in_face: FaceId,
    data_name: &Name,
) {
    if measurements.is_empty() {
        return;
    }
    let Some((depth, _)) = fib.lpm(data_name) else {
        return;
    };
    let prefix = data_name.prefix(depth);
    if let Some(m) = measurements.get_mut(&prefix)
        && let Some((face, sent)) = m.probe
        && face == in_face
    {
        m.probe = None;
        m.get_mut(face).add_rtt(nanos(now.saturating_since(sent)));
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
    pub(crate) probe: Option<(FaceId, Time)>,
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
    use super::*;

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
