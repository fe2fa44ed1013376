//! Routing Information Base: routes per name prefix, and the FIB next hops they imply.
//!
//! A route says "Data under this prefix may be found through this face". Several origins
//! (applications, static configuration, a routing protocol) can each install a route for the
//! same prefix and face. The FIB the forwarding core uses is derived from the RIB the way NFD's
//! `rib/fib-updater.cpp` derives it:
//!
//! * a prefix's own routes contribute one next hop per face, at the lowest cost among them;
//! * routes flagged ChildInherit on shorter prefixes are inherited by every longer prefix that
//!   has a RIB entry, the nearest ancestor winning for a given face, unless the longer prefix
//!   already has a route of its own on that face;
//! * inheritance stops at an entry holding a Capture route: that entry's own ChildInherit
//!   routes are still passed down, but nothing from above it, and an entry with Capture inherits
//!   nothing at all;
//! * a prefix with no RIB entry gets no FIB entry (longest-prefix match in the FIB finds the
//!   ancestor instead).
//!
//! Every mutation returns the FIB changes it causes, computed by evaluating the affected
//! sub-tree before and after the change, so the caller can apply them to the core's FIB.
//! Time is whatever the caller says it is (`now` arguments); nothing here reads a clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use amicn_tlv::Name;

use crate::core::Time;

/// Route flag: longer prefixes inherit this route (NFD `ROUTE_FLAG_CHILD_INHERIT`).
pub const ROUTE_FLAG_CHILD_INHERIT: u64 = 1;
/// Route flag: this prefix does not inherit routes from shorter prefixes (`ROUTE_FLAG_CAPTURE`).
pub const ROUTE_FLAG_CAPTURE: u64 = 2;

/// Route origin of an application registration (`ROUTE_ORIGIN_APP`).
pub const ORIGIN_APP: u64 = 0;
/// Route origin of automatic registration for new faces (`ROUTE_ORIGIN_AUTOREG`).
pub const ORIGIN_AUTOREG: u64 = 64;
/// Route origin of a client-side registration, e.g. NDNts (`ROUTE_ORIGIN_CLIENT`).
pub const ORIGIN_CLIENT: u64 = 65;
/// Route origin of the auto-configuration process (`ROUTE_ORIGIN_AUTOCONF`).
pub const ORIGIN_AUTOCONF: u64 = 66;
/// Route origin of NLSR (`ROUTE_ORIGIN_NLSR`).
pub const ORIGIN_NLSR: u64 = 128;
/// Route origin of a prefix announcement (`ROUTE_ORIGIN_PREFIXANN`).
pub const ORIGIN_PREFIX_ANN: u64 = 129;
/// Route origin of static configuration (`ROUTE_ORIGIN_STATIC`).
pub const ORIGIN_STATIC: u64 = 255;

/// One route of a RIB entry; (face, origin) identifies it within its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Next-hop face.
    pub face: u64,
    /// Who installed the route (`ORIGIN_*`).
    pub origin: u64,
    /// Administrative cost; lower is preferred.
    pub cost: u64,
    /// `ROUTE_FLAG_*` bits.
    pub flags: u64,
    /// When the route disappears by itself; `None` = until unregistered or its face goes away.
    pub expires: Option<Time>,
}

impl Route {
    /// Whether longer prefixes inherit this route.
    pub fn child_inherit(&self) -> bool {
        self.flags & ROUTE_FLAG_CHILD_INHERIT != 0
    }

    /// Whether this route stops inheritance from shorter prefixes.
    pub fn capture(&self) -> bool {
        self.flags & ROUTE_FLAG_CAPTURE != 0
    }

    /// Time left before expiry at `now` (zero once expired), `None` for a permanent route.
    pub fn remaining(&self, now: Time) -> Option<Duration> {
        self.expires.map(|at| at.saturating_since(now))
    }
}

/// A change the RIB asks the FIB to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibUpdate {
    /// Add the next hop, or change its cost if the face is already a next hop of `name`.
    AddNextHop {
        /// FIB entry name.
        name: Name,
        /// Next-hop face.
        face: u64,
        /// Cost of the next hop.
        cost: u64,
    },
    /// Remove the face from the next hops of `name` (the FIB drops an entry left empty).
    RemoveNextHop {
        /// FIB entry name.
        name: Name,
        /// Next-hop face.
        face: u64,
    },
}

/// Next hops of one FIB entry: face → cost, ordered by face.
pub type NextHops = BTreeMap<u64, u64>;

/// The routing information base.
#[derive(Debug, Default)]
pub struct Rib {
    entries: BTreeMap<Name, Vec<Route>>,
    /// Expiry schedule; stale items (route changed or gone) are skipped when popped.
    expiry: BinaryHeap<Reverse<(Time, Name, u64, u64)>>,
    route_count: usize,
}

/// Outcome of [`Rib::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// Whether a route with the same (name, face, origin) existed and was updated in place.
    pub updated: bool,
    /// FIB changes to apply.
    pub fib: Vec<FibUpdate>,
}

impl Rib {
    /// An empty RIB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of prefixes with at least one route.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the RIB holds no route at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of routes over all prefixes.
    pub fn route_count(&self) -> usize {
        self.route_count
    }

    /// Routes of `name` (empty if there is no entry).
    pub fn routes(&self, name: &Name) -> &[Route] {
        self.entries.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every entry in canonical name order (the `rib/list` dataset order).
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &[Route])> {
        self.entries.iter().map(|(n, r)| (n, r.as_slice()))
    }

    /// Adds a route, or updates cost, flags and expiry of the route with the same face and origin
    /// (NFD semantics: registration is idempotent and refreshes the route).
    pub fn register(&mut self, name: Name, route: Route) -> RegisterOutcome {
        let affected = self.subtree(&name);
        let before = self.evaluate(&affected, Some(&name));
        let routes = self.entries.entry(name.clone()).or_default();
        let updated = match routes
            .iter_mut()
            .find(|r| r.face == route.face && r.origin == route.origin)
        {
            Some(existing) => {
                *existing = route;
                true
            }
            None => {
                routes.push(route);
                self.route_count += 1;
                false
            }
        };
        if let Some(at) = route.expires {
            self.expiry
                .push(Reverse((at, name.clone(), route.face, route.origin)));
        }
        let after = self.evaluate(&affected, Some(&name));
        RegisterOutcome {
            updated,
            fib: diff(&before, &after),
        }
    }

    /// Removes the route (name, face, origin). Returns `None` if there was no such route.
    pub fn unregister(&mut self, name: &Name, face: u64, origin: u64) -> Option<Vec<FibUpdate>> {
        let routes = self.entries.get(name)?;
        routes
            .iter()
            .position(|r| r.face == face && r.origin == origin)?;
        let affected = self.subtree(name);
        let before = self.evaluate(&affected, None);
        self.remove_route(name, face, origin);
        let after = self.evaluate(&affected, None);
        Some(diff(&before, &after))
    }

    /// Removes every route through `face` (the face was destroyed).
    pub fn remove_face(&mut self, face: u64) -> Vec<FibUpdate> {
        let hit: Vec<(Name, Vec<u64>)> = self
            .entries
            .iter()
            .filter_map(|(n, rs)| {
                let origins: Vec<u64> = rs
                    .iter()
                    .filter(|r| r.face == face)
                    .map(|r| r.origin)
                    .collect();
                (!origins.is_empty()).then(|| (n.clone(), origins))
            })
            .collect();
        self.remove_many(
            hit.into_iter()
                .flat_map(|(n, os)| os.into_iter().map(move |o| (n.clone(), face, o))),
        )
    }

    /// Earliest pending route expiry, for the caller's timer.
    pub fn next_expiry(&mut self) -> Option<Time> {
        while let Some(Reverse((at, name, face, origin))) = self.expiry.peek() {
            if self.is_live_expiry(*at, name, *face, *origin) {
                return Some(*at);
            }
            self.expiry.pop();
        }
        None
    }

    /// Removes every route whose expiry is at or before `now`.
    pub fn expire(&mut self, now: Time) -> Vec<FibUpdate> {
        let mut due = Vec::new();
        while let Some(Reverse((at, name, face, origin))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            if self.is_live_expiry(*at, name, *face, *origin) {
                due.push((name.clone(), *face, *origin));
            }
            self.expiry.pop();
        }
        if due.is_empty() {
            return Vec::new();
        }
        self.remove_many(due.into_iter())
    }

    /// The FIB next hops `name` gets from the RIB (empty if `name` has no RIB entry).
    pub fn next_hops(&self, name: &Name) -> NextHops {
        match self.entries.get(name) {
            Some(own) => self.compute(name, own),
            None => NextHops::new(),
        }
    }

    /// The whole FIB implied by the RIB, in name order.
    pub fn fib(&self) -> Vec<(Name, NextHops)> {
        self.entries
            .iter()
            .map(|(n, own)| (n.clone(), self.compute(n, own)))
            .filter(|(_, hops)| !hops.is_empty())
            .collect()
    }

    fn is_live_expiry(&self, at: Time, name: &Name, face: u64, origin: u64) -> bool {
        self.entries.get(name).is_some_and(|rs| {
            rs.iter()
                .any(|r| r.face == face && r.origin == origin && r.expires == Some(at))
        })
    }

    fn remove_many(&mut self, removals: impl Iterator<Item = (Name, u64, u64)>) -> Vec<FibUpdate> {
        let removals: Vec<(Name, u64, u64)> = removals.collect();
        let mut affected = BTreeSet::new();
        for (name, _, _) in &removals {
            affected.extend(self.subtree(name));
        }
        let affected: Vec<Name> = affected.into_iter().collect();
        let before = self.evaluate(&affected, None);
        for (name, face, origin) in &removals {
            self.remove_route(name, *face, *origin);
        }
        let after = self.evaluate(&affected, None);
        diff(&before, &after)
    }

    fn remove_route(&mut self, name: &Name, face: u64, origin: u64) {
        if let Some(routes) = self.entries.get_mut(name) {
            let len = routes.len();
            routes.retain(|r| !(r.face == face && r.origin == origin));
            self.route_count -= len - routes.len();
            if routes.is_empty() {
                self.entries.remove(name);
            }
        }
    }

    /// `name` and every RIB entry below it. Extensions of a name sort right after it in
    /// canonical order, so they form one contiguous range.
    fn subtree(&self, name: &Name) -> Vec<Name> {
        let mut out = vec![name.clone()];
        out.extend(
            self.entries
                .range(name.clone()..)
                .map(|(n, _)| n)
                .skip_while(|n| *n == name)
                .take_while(|n| name.is_prefix_of(n))
                .cloned(),
        );
        out
    }

    /// Next hops of each name in `names`; names without an entry map to nothing, except
    /// `force` which is included (empty) so a new entry's next hops all show up as additions.
    fn evaluate(&self, names: &[Name], force: Option<&Name>) -> BTreeMap<Name, NextHops> {
        let mut out = BTreeMap::new();
        for n in names {
            match self.entries.get(n) {
                Some(own) => {
                    out.insert(n.clone(), self.compute(n, own));
                }
                None if Some(n) == force => {
                    out.insert(n.clone(), NextHops::new());
                }
                None => {}
            }
        }
        out
    }

    fn compute(&self, name: &Name, own: &[Route]) -> NextHops {
        let mut hops = NextHops::new();
        for r in own {
            hops.entry(r.face)
                .and_modify(|c| *c = (*c).min(r.cost))
                .or_insert(r.cost);
        }
        if own.iter().any(Route::capture) {
            return hops;
        }
        // Faces already decided by a nearer entry (own routes or a nearer ancestor).
        let mut decided: BTreeSet<u64> = hops.keys().copied().collect();
        for len in (0..name.len()).rev() {
            let Some(parent) = self.entries.get(&name.prefix(len)) else {
                continue;
            };
            let mut from_parent = NextHops::new();
            for r in parent.iter().filter(|r| r.child_inherit()) {
                if decided.contains(&r.face) {
                    continue;
                }
                from_parent
                    .entry(r.face)
                    .and_modify(|c| *c = (*c).min(r.cost))
                    .or_insert(r.cost);
            }
            for (face, cost) in from_parent {
                decided.insert(face);
                hops.insert(face, cost);
            }
            if parent.iter().any(Route::capture) {
                break;
            }
        }
        hops
    }
}

fn diff(before: &BTreeMap<Name, NextHops>, after: &BTreeMap<Name, NextHops>) -> Vec<FibUpdate> {
    let empty = NextHops::new();
    let mut out = Vec::new();
    let names: BTreeSet<&Name> = before.keys().chain(after.keys()).collect();
    for name in names {
        let b = before.get(name).unwrap_or(&empty);
        let a = after.get(name).unwrap_or(&empty);
        for face in b.keys() {
            if !a.contains_key(face) {
                out.push(FibUpdate::RemoveNextHop {
                    name: name.clone(),
                    face: *face,
                });
            }
        }
        for (face, cost) in a {
            if b.get(face) != Some(cost) {
                out.push(FibUpdate::AddNextHop {
                    name: name.clone(),
                    face: *face,
                    cost: *cost,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(uri: &str) -> Name {
        Name::from_uri(uri).unwrap()
    }

    fn route(face: u64, origin: u64, cost: u64, flags: u64) -> Route {
        Route {
            face,
            origin,
            cost,
            flags,
            expires: None,
        }
    }

    fn add(name: &str, face: u64, cost: u64) -> FibUpdate {
        FibUpdate::AddNextHop {
            name: n(name),
            face,
            cost,
        }
    }

    fn rm(name: &str, face: u64) -> FibUpdate {
        FibUpdate::RemoveNextHop {
            name: n(name),
            face,
        }
    }

    fn hops(pairs: &[(u64, u64)]) -> NextHops {
        pairs.iter().copied().collect()
    }

    const CI: u64 = ROUTE_FLAG_CHILD_INHERIT;
    const CAP: u64 = ROUTE_FLAG_CAPTURE;

    #[test]
    fn new_entry_inherits_child_inherit_routes_of_ancestors() {
        let mut rib = Rib::new();
        let out = rib.register(n("/"), route(1, 0, 50, CI));
        assert_eq!(out.fib, vec![add("/", 1, 50)]);
        let out = rib.register(n("/a/b"), route(2, 0, 10, 0));
        assert_eq!(out.fib, vec![add("/a/b", 1, 50), add("/a/b", 2, 10)]);
        assert!(!out.updated);
        assert_eq!(rib.next_hops(&n("/a/b")), hops(&[(1, 50), (2, 10)]));
        // No RIB entry, no FIB entry: the FIB's longest-prefix match falls back to "/".
        assert!(rib.next_hops(&n("/a")).is_empty());
    }

    #[test]
    fn route_without_child_inherit_is_not_inherited() {
        let mut rib = Rib::new();
        rib.register(n("/a"), route(1, 0, 5, 0));
        let out = rib.register(n("/a/b"), route(2, 0, 5, CI));
        assert_eq!(out.fib, vec![add("/a/b", 2, 5)]);
    }

    #[test]
    fn own_route_on_a_face_beats_inherited_route_even_if_costlier() {
        let mut rib = Rib::new();
        rib.register(n("/a"), route(1, 0, 1, CI));
        let out = rib.register(n("/a/b"), route(1, 0, 100, 0));
        assert_eq!(out.fib, vec![add("/a/b", 1, 100)]);
    }

    #[test]
    fn lowest_cost_per_face_among_origins() {
        let mut rib = Rib::new();
        rib.register(n("/p"), route(7, ORIGIN_APP, 30, CI));
        let out = rib.register(n("/p"), route(7, ORIGIN_STATIC, 10, CI));
        assert_eq!(out.fib, vec![add("/p", 7, 10)]);
        assert_eq!(rib.routes(&n("/p")).len(), 2);
        // Removing the cheaper route falls back to the other origin's cost.
        let out = rib.unregister(&n("/p"), 7, ORIGIN_STATIC).unwrap();
        assert_eq!(out, vec![add("/p", 7, 30)]);
        let out = rib.unregister(&n("/p"), 7, ORIGIN_APP).unwrap();
        assert_eq!(out, vec![rm("/p", 7)]);
        assert!(rib.is_empty());
        assert_eq!(rib.route_count(), 0);
    }

    #[test]
    fn nearest_ancestor_wins_for_a_face() {
        let mut rib = Rib::new();
        rib.register(n("/"), route(1, 0, 1, CI));
        rib.register(n("/a"), route(1, 0, 20, CI));
        rib.register(n("/a/b/c"), route(3, 0, 0, 0));
        assert_eq!(rib.next_hops(&n("/a/b/c")), hops(&[(1, 20), (3, 0)]));
    }

    #[test]
    fn capture_blocks_routes_from_above_but_passes_its_own_down() {
        let mut rib = Rib::new();
        rib.register(n("/"), route(1, 0, 0, CI));
        rib.register(n("/a/b"), route(3, 0, 0, 0));
        assert_eq!(rib.next_hops(&n("/a/b")), hops(&[(1, 0), (3, 0)]));
        // A capture route on /a: /a/b must lose face 1 and gain face 2.
        let out = rib.register(n("/a"), route(2, 0, 4, CI | CAP));
        assert_eq!(
            out.fib,
            vec![add("/a", 2, 4), rm("/a/b", 1), add("/a/b", 2, 4)]
        );
        assert_eq!(rib.next_hops(&n("/a")), hops(&[(2, 4)]));
        // Turning capture off again (same face+origin, new flags) restores inheritance.
        let out = rib.register(n("/a"), route(2, 0, 4, CI));
        assert!(out.updated);
        assert_eq!(out.fib, vec![add("/a", 1, 0), add("/a/b", 1, 0)]);
    }

    #[test]
    fn capture_without_child_inherit_blocks_everything_below() {
        let mut rib = Rib::new();
        rib.register(n("/"), route(1, 0, 0, CI));
        rib.register(n("/a"), route(2, 0, 0, CAP));
        rib.register(n("/a/b"), route(3, 0, 0, 0));
        assert_eq!(rib.next_hops(&n("/a")), hops(&[(2, 0)]));
        assert_eq!(rib.next_hops(&n("/a/b")), hops(&[(3, 0)]));
    }

    #[test]
    fn unregistering_parent_removes_inherited_next_hops() {
        let mut rib = Rib::new();
        rib.register(n("/a"), route(1, 0, 0, CI));
        rib.register(n("/a/b"), route(2, 0, 0, CI));
        rib.register(n("/a/b/c"), route(3, 0, 0, 0));
        let out = rib.unregister(&n("/a"), 1, 0).unwrap();
        assert_eq!(out, vec![rm("/a", 1), rm("/a/b", 1), rm("/a/b/c", 1)]);
        assert!(rib.unregister(&n("/a"), 1, 0).is_none());
        assert!(rib.unregister(&n("/a/b"), 9, 0).is_none());
    }

    #[test]
    fn sibling_subtrees_are_not_affected() {
        let mut rib = Rib::new();
        rib.register(n("/a/x"), route(4, 0, 0, 0));
        rib.register(n("/ab"), route(5, 0, 0, 0));
        let out = rib.register(n("/a"), route(1, 0, 0, CI));
        assert_eq!(out.fib, vec![add("/a", 1, 0), add("/a/x", 1, 0)]);
    }

    #[test]
    fn remove_face_drops_all_its_routes() {
        let mut rib = Rib::new();
        rib.register(n("/a"), route(1, 0, 0, CI));
        rib.register(n("/a"), route(1, 255, 3, CI));
        rib.register(n("/b"), route(1, 0, 0, 0));
        rib.register(n("/a/c"), route(2, 0, 0, 0));
        let out = rib.remove_face(1);
        assert_eq!(out, vec![rm("/a", 1), rm("/a/c", 1), rm("/b", 1)]);
        assert_eq!(rib.len(), 1);
        assert_eq!(rib.route_count(), 1);
        assert_eq!(rib.fib(), vec![(n("/a/c"), hops(&[(2, 0)]))]);
    }

    #[test]
    fn routes_expire_in_virtual_time_and_refresh_moves_expiry() {
        let t0 = Time::from_millis(5_000);
        let mut rib = Rib::new();
        let mut r = route(1, 65, 0, CAP);
        r.expires = Some(t0.add_millis(10_000));
        rib.register(n("/e"), r);
        rib.register(n("/keep"), route(2, 0, 0, CI));
        assert_eq!(rib.next_expiry(), Some(t0.add_millis(10_000)));
        // Re-registering refreshes: the old deadline must no longer fire.
        r.expires = Some(t0.add_millis(20_000));
        assert!(rib.register(n("/e"), r).updated);
        assert!(rib.expire(t0.add_millis(15_000)).is_empty());
        assert_eq!(rib.next_expiry(), Some(t0.add_millis(20_000)));
        assert_eq!(
            rib.routes(&n("/e"))[0].remaining(t0.add_millis(15_000)),
            Some(Duration::from_secs(5))
        );
        let out = rib.expire(t0.add_millis(20_000));
        assert_eq!(out, vec![rm("/e", 1)]);
        assert_eq!(rib.next_expiry(), None);
        assert_eq!(rib.len(), 1);
    }
}
