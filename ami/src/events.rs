//! Meter events: last gasp and restoration, tamper (cover open, magnetic field) and clock
//! adjustment, pushed from the meter to the MDMS without waiting for the next interval.
//!
//! A meter publishes each event as Data `/<u>/ami/meter/<id>/event/seq=<n>` (sequence numbers
//! count up from 1 and survive restarts), signed by the meter and sealed under its reading key
//! (from its user key, exactly as its readings), so only the MDMS can open it. The plaintext is
//! the JSON of a [`MeterEvent`]:
//!
//! ```text
//! {"meter": 7, "seq": 3, "kind": "last-gasp", "t_us": 1700000000000000}
//! {"meter": 7, "seq": 5, "kind": "clock-adjusted", "t_us": …, "clock_step_us": -1500000}
//! ```
//!
//! `kind` is one of `last-gasp`, `restoration`, `cover-open`, `magnetic-tamper`,
//! `clock-adjusted`; `clock_step_us` (only for `clock-adjusted`) is the correction applied.
//!
//! **How the MDMS learns of an event.** The meter sends one notification Interest
//! `/<u>/ami/mdms/notify/<id>/seq=<n>`; the MDMS fetches the event by name, checks it (trust
//! rule "meter X signs `/<u>/ami/meter/X/...`", the key it is sealed under belongs to meter X,
//! the plaintext names the same meter and sequence number, the timestamp is in the window, the
//! event is not stored already), commits it to its store beside the signed Data, and only then
//! answers the notification with a Status signed by the MDMS (200 stored; 400 malformed, 403
//! untrusted, 404 wrong meter, 409 duplicate, 422 out of window, 504 not fetchable).
//! The notification is a hint: it carries no data and needs no signature, since the MDMS trusts
//! only what it fetched and verified; a forged one costs one fetch and is counted.
//!
//! The alternative, a long-lived Interest the MDMS keeps outstanding per meter
//! (`/event`, CanBePrefix), holds one PIT entry per meter in every forwarder on the path for
//! as long as no event happens, and has to be re-expressed at every InterestLifetime: with a
//! million meters that is a constant refresh load to hear about rare events, and every
//! forwarder restart silently drops them. A notification costs nothing until an event happens,
//! and the event Data is still fetched by name, so caches and the signature rules apply as for
//! any other Data. (DR events go the other way, one producer to many consumers, where
//! outstanding Interests aggregate in the PIT; see [`crate::DrOperator`].)
//!
//! The MDMS derives outage windows from last-gasp/restoration pairs
//! ([`outage_windows`]); VEE flags every interval that overlaps one.

use std::collections::BTreeMap;
use std::time::Duration;

use amicn_tlv::Name;
use serde::{Deserialize, Serialize};

use crate::wire::Status;

/// What happened at the meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The supply failed (sent on the meter's last stored energy).
    LastGasp,
    /// The supply came back.
    Restoration,
    /// The terminal cover was opened.
    CoverOpen,
    /// A strong magnetic field was detected (an attempt to stall the measuring element).
    MagneticTamper,
    /// The meter's clock was corrected.
    ClockAdjusted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 5] = [
        EventKind::LastGasp,
        EventKind::Restoration,
        EventKind::CoverOpen,
        EventKind::MagneticTamper,
        EventKind::ClockAdjusted,
    ];

    /// The label used in the JSON format, the store and counters.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::LastGasp => "last-gasp",
            EventKind::Restoration => "restoration",
            EventKind::CoverOpen => "cover-open",
            EventKind::MagneticTamper => "magnetic-tamper",
            EventKind::ClockAdjusted => "clock-adjusted",
        }
    }

    /// The kind with label `s`.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.label() == s)
    }

    /// Whether it is a tamper alarm.
    pub fn is_tamper(self) -> bool {
        matches!(self, EventKind::CoverOpen | EventKind::MagneticTamper)
    }
}

/// One event, as the meter seals it (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterEvent {
    /// Meter id.
    pub meter: u32,
    /// Sequence number (the `seq=` component).
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// When, µs since the Unix epoch (the meter's clock).
    pub t_us: u64,
    /// For `clock-adjusted`: the correction applied, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_step_us: Option<i64>,
}

/// An event as the MDMS stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event.
    pub event: MeterEvent,
    /// When the MDMS committed it, µs.
    pub received_us: u64,
}

/// What the MDMS answered to one event notification.
#[derive(Debug, Clone)]
pub struct EventOutcome {
    /// The event's name.
    pub name: Name,
    /// Its sequence number.
    pub seq: u64,
    /// The MDMS's status (200 stored, 409 already stored, other codes refused).
    pub status: Status,
    /// Notification sent to the MDMS's verified answer (the event committed by then).
    pub latency: Duration,
}

/// Outage windows `[last gasp, restoration)` per meter, in µs, from stored events (any order).
/// A last gasp without a later restoration opens a window to `u64::MAX` (the meter is still
/// out, as far as the MDMS knows); a restoration without a preceding last gasp (the gasp was
/// lost) closes nothing; repeated last gasps keep the first.
pub fn outage_windows(events: &[StoredEvent]) -> BTreeMap<u32, Vec<(u64, u64)>> {
    let mut by: BTreeMap<u32, Vec<&MeterEvent>> = BTreeMap::new();
    for e in events {
        by.entry(e.event.meter).or_default().push(&e.event);
    }
    let mut out = BTreeMap::new();
    for (m, mut evs) in by {
        evs.sort_by_key(|e| (e.t_us, e.seq));
        let mut windows = Vec::new();
        let mut open: Option<u64> = None;
        for e in evs {
            match e.kind {
                EventKind::LastGasp if open.is_none() => open = Some(e.t_us),
                EventKind::Restoration => {
                    if let Some(a) = open.take() {
                        windows.push((a, e.t_us.max(a)));
                    }
                }
                _ => {}
            }
        }
        if let Some(a) = open {
            windows.push((a, u64::MAX));
        }
        if !windows.is_empty() {
            out.insert(m, windows);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(meter: u32, seq: u64, kind: EventKind, t_us: u64) -> StoredEvent {
        StoredEvent {
            event: MeterEvent {
                meter,
                seq,
                kind,
                t_us,
                clock_step_us: None,
            },
            received_us: t_us + 1,
        }
    }

    #[test]
    fn the_format_is_the_documented_json() {
        let e = MeterEvent {
            meter: 7,
            seq: 5,
            kind: EventKind::ClockAdjusted,
            t_us: 10,
            clock_step_us: Some(-1_500_000),
        };
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"meter":7,"seq":5,"kind":"clock-adjusted","t_us":10,"clock_step_us":-1500000}"#
        );
        assert_eq!(serde_json::from_str::<MeterEvent>(&j).unwrap(), e);
        assert!(
            serde_json::from_str::<MeterEvent>(
                r#"{"meter":7,"seq":5,"kind":"earthquake","t_us":10}"#
            )
            .is_err()
        );
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_label(k.label()), Some(k));
        }
        assert!(EventKind::CoverOpen.is_tamper() && !EventKind::LastGasp.is_tamper());
    }

    #[test]
    fn outage_windows_pair_last_gasps_with_restorations() {
        use EventKind::*;
        let events = vec![
            // Meter 1: out 100..250, tamper in between changes nothing, out again from 400.
            ev(1, 3, Restoration, 250),
            ev(1, 1, LastGasp, 100),
            ev(1, 2, CoverOpen, 200),
            ev(1, 4, LastGasp, 400),
            // Meter 2: a restoration whose gasp was lost, then a gasp repeated once.
            ev(2, 1, Restoration, 50),
            ev(2, 2, LastGasp, 60),
            ev(2, 3, LastGasp, 70),
            ev(2, 4, Restoration, 90),
            // Meter 3: only a clock adjustment.
            ev(3, 1, ClockAdjusted, 10),
        ];
        let w = outage_windows(&events);
        assert_eq!(w.get(&1), Some(&vec![(100, 250), (400, u64::MAX)]));
        assert_eq!(w.get(&2), Some(&vec![(60, 90)]));
        assert_eq!(w.get(&3), None);
    }
}
