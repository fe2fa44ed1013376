//! What a meter can compute: the closure of its keys under every published wrap and every public
//! derivation of a scheme.
//!
//! An honest member and an adversary are the same thing here: start from the keys a meter was
//! ever given, open every wrap whose wrapping key is known (the AEAD check proves the key is
//! right, the wrap's name names what it carries), apply [`Scheme::derive`] to every public
//! record, and repeat until nothing new appears. A current member must end up with the group
//! key; a departed meter must not reach any later group key, nor a joiner an earlier one.

use std::collections::HashMap;

use super::{Knowledge, PublicInfo, Scheme};
use crate::graph::Wrap;
use crate::graph::names::split_wrap_name;
use crate::graph::wrap::open;

/// Everything published so far, indexed for the closure.
#[derive(Debug, Default)]
pub struct Published {
    by_kek: HashMap<String, Vec<Wrap>>,
    public: Vec<PublicInfo>,
    wraps: usize,
}

impl Published {
    /// Records the output of one operation.
    pub fn add(&mut self, wraps: &[Wrap], public: &[PublicInfo]) {
        for w in wraps {
            if let Some((_, kek)) = split_wrap_name(&w.name) {
                self.by_kek
                    .entry(kek.to_string())
                    .or_default()
                    .push(w.clone());
                self.wraps += 1;
            }
        }
        self.public.extend(public.iter().cloned());
    }

    /// Wraps recorded.
    pub fn wraps(&self) -> usize {
        self.wraps
    }

    /// Public records recorded.
    pub fn public(&self) -> &[PublicInfo] {
        &self.public
    }
}

/// Extends `known` with everything computable from it and `published` under `scheme`'s rules.
pub fn closure(scheme: &dyn Scheme, known: &mut Knowledge, published: &Published) {
    let mut queue: Vec<String> = known.iter().map(|(n, _)| n.to_string()).collect();
    loop {
        while let Some(name) = queue.pop() {
            let Some(kek) = known.get(&name).copied() else {
                continue;
            };
            for w in published.by_kek.get(&name).into_iter().flatten() {
                let Some((target, _)) = split_wrap_name(&w.name) else {
                    continue;
                };
                if known.get(target).is_some() {
                    continue;
                }
                if let Ok(k) = open(w, &w.name, &kek) {
                    known.insert(target, k.as_bytes());
                    queue.push(target.to_string());
                }
            }
        }
        let mut found = Vec::new();
        for p in &published.public {
            for (n, k) in scheme.derive(p, known) {
                if known.insert(&n, &k) {
                    found.push(n);
                }
            }
        }
        if found.is_empty() {
            return;
        }
        queue = found;
    }
}
