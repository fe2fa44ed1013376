//! Virtual time for the sans-IO core and the hierarchical timer wheel that drives PIT expiry.
//!
//! The core never reads a clock: every input carries a [`Time`] chosen by the driver (the tokio
//! runtime converts `Instant`s, the simulator advances a counter). Deadlines are kept in one
//! wheel per core, not one timer per entry, so arming and cancelling are O(1).

use std::time::Duration;

/// A point in virtual time: nanoseconds since an epoch chosen by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);

    /// A time `ns` nanoseconds after the epoch.
    pub const fn from_nanos(ns: u64) -> Time {
        Time(ns)
    }

    /// A time `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms.saturating_mul(1_000_000))
    }

    /// A time `d` after the epoch (saturating).
    pub fn from_duration(d: Duration) -> Time {
        Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The elapsed time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// `self + ms` milliseconds, saturating.
    pub const fn add_millis(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms.saturating_mul(1_000_000)))
    }

    /// `self - earlier`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The wheel tick (1 ms) at or after this time, so that a deadline never fires early.
    pub(crate) const fn tick_ceil(self) -> u64 {
        self.0.div_ceil(1_000_000)
    }

    /// The wheel tick (1 ms) at or before this time.
    pub(crate) const fn tick_floor(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The time at the start of a tick.
    pub(crate) const fn from_tick(tick: u64) -> Time {
        Time(tick.saturating_mul(1_000_000))
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// 6 levels of 64 slots at 1 ms cover 2^36 ms (about two years); later deadlines are clamped.
const LEVELS: usize = 6;
/// The farthest a deadline may be armed ahead: 63 top-level slots (about 2.1 years). A full
/// 64 would let a deadline land in the top-level slot that is current, which `poll` would then
/// cascade back into itself forever.
const MAX_DELTA: u64 = SLOT_MASK << (BITS as usize * (LEVELS - 1));

struct Level<T> {
    slots: Vec<Vec<(u64, T)>>,
    occupied: u64,
}

impl<T> Level<T> {
    fn new() -> Self {
        Level {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: 0,
        }
    }

    /// The earliest non-empty slot of this level as seen from `elapsed`: (slot, its start tick).
    fn next_expiration(&self, level: usize, elapsed: u64) -> Option<(usize, u64)> {
        if self.occupied == 0 {
            return None;
        }
        let shift = BITS * level as u32;
        let slot_range = 1u64 << shift;
        let level_range = slot_range << BITS;
        let now_slot = ((elapsed >> shift) & SLOT_MASK) as u32;
        let zeros = self.occupied.rotate_right(now_slot).trailing_zeros();
        let slot = (zeros + now_slot) as usize % SLOTS;
        let level_start = elapsed & !(level_range - 1);
        let mut deadline = level_start + slot as u64 * slot_range;
        if (slot as u32) < now_slot {
            deadline += level_range;
        }
        Some((slot, deadline))
    }
}

/// A hierarchical timing wheel (1 ms ticks, 64 slots per level) holding items of type `T`.
///
/// Cancellation is lazy: owners keep a generation or deadline in their own entry and ignore
/// stale firings, which keeps the wheel free of back-pointers.
pub struct TimerWheel<T> {
    elapsed: u64,
    levels: Vec<Level<T>>,
    len: usize,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            elapsed: 0,
            levels: (0..LEVELS).map(|_| Level::new()).collect(),
            len: 0,
        }
    }

    /// Number of armed (possibly stale) timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer that fires at the first `poll` with `now >= at`.
    pub fn insert(&mut self, at: Time, item: T) {
        let when = at
            .tick_ceil()
            .clamp(self.elapsed, self.elapsed.saturating_add(MAX_DELTA));
        self.insert_tick(when, item);
        self.len += 1;
    }

    fn insert_tick(&mut self, when: u64, item: T) {
        let masked = (self.elapsed ^ when) | SLOT_MASK;
        let significant = 63 - masked.leading_zeros();
        let level = ((significant / BITS) as usize).min(LEVELS - 1);
        let slot = ((when >> (BITS * level as u32)) & SLOT_MASK) as usize;
        let lvl = &mut self.levels[level];
        lvl.slots[slot].push((when, item));
        lvl.occupied |= 1 << slot;
    }

    /// The earliest time at which `poll` may have something to do (never later than the real
    /// earliest deadline; possibly earlier when a higher level must cascade).
    pub fn next_deadline(&self) -> Option<Time> {
        self.next_expiration()
            .map(|(_, _, tick)| Time::from_tick(tick))
    }

    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        self.levels.iter().enumerate().find_map(|(i, lvl)| {
            lvl.next_expiration(i, self.elapsed)
                .map(|(slot, deadline)| (i, slot, deadline))
        })
    }

    /// Moves the wheel to `now` and appends every item whose deadline has passed to `out`.
    pub fn poll(&mut self, now: Time, out: &mut Vec<T>) {
        let now_tick = now.tick_floor();
        while let Some((level, slot, deadline)) = self.next_expiration() {
            if deadline > now_tick {
                break;
            }
            self.elapsed = self.elapsed.max(deadline);
            let lvl = &mut self.levels[level];
            lvl.occupied &= !(1 << slot);
            let items = std::mem::take(&mut lvl.slots[slot]);
            if level == 0 {
                self.len -= items.len();
                out.extend(items.into_iter().map(|(_, item)| item));
            } else {
                for (when, item) in items {
                    self.insert_tick(when.max(self.elapsed), item);
                }
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fire(w: &mut TimerWheel<u32>, ms: u64) -> Vec<u32> {
        let mut v = Vec::new();
        w.poll(Time::from_millis(ms), &mut v);
        v.sort_unstable();
        v
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new();
        w.insert(Time::from_millis(10), 1);
        w.insert(Time::from_millis(4000), 2);
        w.insert(Time::from_millis(70_000), 3);
        assert_eq!(w.len(), 3);
        assert_eq!(fire(&mut w, 9), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 10), vec![1]);
        assert_eq!(fire(&mut w, 3999), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 4000), vec![2]);
        assert_eq!(fire(&mut w, 69_999), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 70_000), vec![3]);
        assert!(w.is_empty());
    }

    #[test]
    fn big_jump_fires_everything_due() {
        let mut w = TimerWheel::new();
        for i in 0..1000u32 {
            w.insert(Time::from_millis(u64::from(i) * 37 + 1), i);
        }
        let got = fire(&mut w, 20_000);
        let want: Vec<u32> = (0..1000).filter(|i| u64::from(*i) * 37 < 20_000).collect();
        assert_eq!(got, want);
        let rest = fire(&mut w, 1_000_000);
        assert_eq!(rest.len() + want.len(), 1000);
    }

    #[test]
    fn next_deadline_is_never_late() {
        let mut w = TimerWheel::new();
        w.poll(Time::from_millis(123), &mut Vec::new());
        w.insert(Time::from_millis(5123), 7);
        let mut now = 123;
        let mut fired = Vec::new();
        while fired.is_empty() {
            let d = w.next_deadline().unwrap().as_millis();
            assert!(d <= 5123, "deadline {d} later than the timer");
            assert!(d >= now);
            now = d;
            w.poll(Time::from_millis(now), &mut fired);
        }
        assert_eq!(now, 5123);
        assert_eq!(fired, vec![7]);
    }

    #[test]
    fn past_deadline_fires_on_next_poll() {
        let mut w = TimerWheel::new();
        w.poll(Time::from_millis(500), &mut Vec::new());
        w.insert(Time::from_millis(100), 9);
        assert_eq!(fire(&mut w, 500), vec![9]);
    }

    #[test]
    fn farthest_deadline_neither_spins_nor_fires_early() {
        // An Interest can ask for a lifetime of years; the clamped deadline must sit in a
        // future top-level slot, not the current one.
        let mut w = TimerWheel::new();
        w.poll(Time::from_millis(1), &mut Vec::new());
        w.insert(Time::from_nanos(u64::MAX), 4);
        assert_eq!(fire(&mut w, 2), Vec::<u32>::new());
        assert_eq!(fire(&mut w, MAX_DELTA), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 1 + MAX_DELTA), vec![4]);
    }

    #[test]
    fn sub_millisecond_deadline_rounds_up() {
        let mut w = TimerWheel::new();
        w.insert(Time::from_nanos(1_500_000), 1);
        assert_eq!(fire(&mut w, 1), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 2), vec![1]);
    }
}
