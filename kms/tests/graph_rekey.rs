//! End-to-end rekeying between the KMS graph and member state machines, and the member's
//! rejections of tampered, misnamed, replayed and forged rekey objects.
#![allow(clippy::unwrap_used)]

mod graph_common;

use amicn_kms::graph::manifest::{Ed25519Signer, Ed25519Verifier, Manifest, ManifestSigner};
use amicn_kms::graph::names::{self, KeyRef};
use amicn_kms::graph::wrap::{self, WrapMode};
use amicn_kms::graph::{GraphError, MemberState, Rekey, Wrap};
use graph_common::{PREFIX, World};

fn world() -> World {
    let mut w = World::new(2, true, &["p1", "p2"], 11);
    w.enroll(&(0..8).collect::<Vec<_>>(), &["p1"]);
    w.enroll(&(8..12).collect::<Vec<_>>(), &["p1", "p2"]);
    w.enroll(&(12..14).collect::<Vec<_>>(), &[]);
    w
}

fn ingest(st: &mut MemberState, w: &World, r: &Rekey, wraps: &[Wrap]) -> Result<(), GraphError> {
    let mut fetch = |n: &str| wraps.iter().find(|x| x.name == n).cloned();
    st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch)
        .map(|_| ())
}

#[test]
fn leave_rekeys_path_projects_and_root_and_members_follow() {
    let mut w = world();
    let r = w.g.leave(3, w.signer.as_ref()).unwrap();
    // Subgroup p1 has 8 members in a binary tree of height 3: 2·3 − 1 tree wraps; p1's key
    // goes under both subgroups subscribing to it; the broadcast key under all three.
    assert_eq!(r.stats.tree_wraps, 5);
    assert_eq!(r.stats.project_wraps, 2);
    assert_eq!(r.stats.root_wraps, 3);
    assert_eq!(r.stats.unicast_wraps, 1);
    assert_eq!(r.stats.broadcast_wraps, 3);
    assert_eq!(r.manifest.departs, vec![3]);
    w.publish(&r);
    // Meter 2 (the leaver's sibling) fetched the wraps of its whole path; meter 12 only the
    // broadcast key.
    assert!(w.states[&3].keys().is_empty());
    assert_eq!(w.states[&2].root_key().unwrap().0, r.manifest.epoch);
    assert_eq!(w.states[&12].project_key("p1"), None);
}

#[test]
fn join_with_ratchet_sends_only_the_joiners_path() {
    let mut w = world();
    let r = w.g.leave(3, w.signer.as_ref()).unwrap();
    w.publish(&r);
    w.stage_join(40, &["p1"]).unwrap();
    let r = w.commit();
    // The joiner takes the vacated leaf: H = 3 path wraps (1 unicast), p1 and the broadcast
    // key once each under the subgroup key; everybody else ratchets.
    assert_eq!(r.stats.tree_wraps, 3);
    assert_eq!(r.stats.unicast_wraps, 1);
    assert_eq!(r.stats.project_wraps, 1);
    assert_eq!(r.stats.root_wraps, 1);
    assert_eq!(r.stats.fresh_keys, 0);
    assert_eq!(r.manifest.joins.len(), 1);
    assert_eq!(r.manifest.joins[0].pos, 3);
}

#[test]
fn move_rekeys_only_what_was_left() {
    let mut w = world();
    let r = w.g.move_to(9, &["p1"], w.signer.as_ref()).unwrap();
    w.publish(&r);
    // p2 was left: fresh. p1 was kept: untouched. Broadcast key: untouched.
    let p2 = r.manifest.projects.iter().find(|(n, _)| n == "p2").unwrap();
    assert_eq!(p2.1.kind, amicn_kms::graph::manifest::ChangeKind::Fresh);
    assert!(r.manifest.projects.iter().all(|(n, _)| n != "p1"));
    assert!(r.manifest.root.is_none());
    assert_eq!(w.states[&9].project_key("p2"), None);
    assert!(w.states[&9].project_key("p1").is_some());
}

#[test]
fn revoked_meter_cannot_rejoin() {
    let mut w = world();
    let r = w.revoke(5);
    assert_eq!(r.manifest.departs, vec![5]);
    assert!(matches!(
        w.stage_join(5, &["p1"]),
        Err(GraphError::Revoked { meter: 5 })
    ));
    // The vacant-leaf marker is not a meter id.
    assert!(matches!(
        w.stage_join(u32::MAX, &["p1"]),
        Err(GraphError::BadParameter(_))
    ));
}

/// Names of the wraps meter `m` fetches to follow `r`, from an honest run.
fn fetched_by(w0: &World, m: u32, r: &Rekey) -> Vec<String> {
    let mut st = w0.g.export_member(m).unwrap();
    let mut names = Vec::new();
    let mut fetch = |n: &str| {
        names.push(n.to_string());
        r.wraps.iter().find(|x| x.name == n).cloned()
    };
    st.ingest(&r.signed, w0.verifier.as_ref(), &mut fetch)
        .unwrap();
    names
}

fn key_names(st: &MemberState) -> Vec<String> {
    st.keys().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn flipped_bit_in_any_needed_wrap_is_rejected_and_state_kept() {
    let w0 = world();
    let mut w = world();
    let r = w.g.leave(3, w.signer.as_ref()).unwrap();
    let needed = fetched_by(&w0, 2, &r);
    // Meter 2 is the leaver's sibling: its whole path (3), p1 and the broadcast key.
    assert_eq!(needed.len(), 5, "{needed:?}");
    for name in &needed {
        for bit in [0usize, 24 * 8 + 5, 71 * 8 + 7] {
            let mut st = w0.g.export_member(2).unwrap();
            let before = key_names(&st);
            let mut wraps = r.wraps.clone();
            let t = wraps.iter_mut().find(|x| &x.name == name).unwrap();
            t.payload[bit / 8] ^= 1 << (bit % 8);
            match ingest(&mut st, &w, &r, &wraps) {
                Err(GraphError::WrapAuthFailed { name: n }) => assert_eq!(&n, name),
                other => panic!("tampered wrap {name} bit {bit}: {other:?}"),
            }
            assert_eq!(
                key_names(&st),
                before,
                "state changed after a rejected rekey"
            );
            assert_eq!(st.epoch(), w0.g.epoch());
        }
    }
}

#[test]
fn wrap_under_a_wrong_name_is_rejected() {
    let w0 = world();
    let mut w = world();
    let r = w.g.leave(3, w.signer.as_ref()).unwrap();
    let needed = fetched_by(&w0, 2, &r);
    let other = r
        .wraps
        .iter()
        .find(|x| !needed.contains(&x.name))
        .unwrap()
        .clone();
    // (a) The object served for the requested name carries another name.
    let mut st = w0.g.export_member(2).unwrap();
    let mut fetch = |n: &str| {
        if n == needed[0] {
            Some(other.clone())
        } else {
            r.wraps.iter().find(|x| x.name == n).cloned()
        }
    };
    match st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch) {
        Err(GraphError::WrapNameMismatch { expected, found }) => {
            assert_eq!(expected, needed[0]);
            assert_eq!(found, other.name);
        }
        e => panic!("{e:?}"),
    }
    // (b) Another wrap's ciphertext re-labelled with the requested name: the AAD differs.
    let mut st = w0.g.export_member(2).unwrap();
    let mut moved = other.clone();
    moved.name = needed[0].clone();
    let mut fetch = |n: &str| {
        if n == needed[0] {
            Some(moved.clone())
        } else {
            r.wraps.iter().find(|x| x.name == n).cloned()
        }
    };
    assert!(matches!(
        st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch),
        Err(GraphError::WrapAuthFailed { .. })
    ));
    // (c) Not served at all.
    let mut st = w0.g.export_member(2).unwrap();
    let mut fetch = |n: &str| {
        if n == needed[1] {
            None
        } else {
            r.wraps.iter().find(|x| x.name == n).cloned()
        }
    };
    assert!(
        matches!(st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch), Err(GraphError::MissingWrap { name }) if name == needed[1])
    );
}

#[test]
fn old_epoch_replay_is_rejected() {
    let mut w = world();
    let r1 = w.g.leave(3, w.signer.as_ref()).unwrap();
    w.publish(&r1);
    let r2 = w.g.leave(4, w.signer.as_ref()).unwrap();
    w.publish(&r2);
    let st = w.states.get_mut(&0).unwrap();
    let wraps = w.wraps.clone();
    let mut fetch = |n: &str| wraps.get(n).cloned();
    for old in [&r2, &r1] {
        match st.ingest(&old.signed, w.verifier.as_ref(), &mut fetch) {
            Err(GraphError::StaleEpoch { got, have, name }) => {
                assert_eq!(got, old.manifest.epoch);
                assert_eq!(have, r2.manifest.epoch);
                assert_eq!(name, names::manifest_name(PREFIX, got));
            }
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn manifest_signed_by_another_key_or_modified_is_rejected() {
    let w0 = world();
    let mut w = world();
    let r = w.g.leave(3, w.signer.as_ref()).unwrap();
    let rogue = Ed25519Signer(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]));
    let mut forged = r.signed.clone();
    forged.signature = rogue.sign(&forged.bytes);
    let mut st = w0.g.export_member(2).unwrap();
    let mut fetch = |n: &str| r.wraps.iter().find(|x| x.name == n).cloned();
    assert!(matches!(
        st.ingest(&forged, w.verifier.as_ref(), &mut fetch),
        Err(GraphError::BadManifestSignature { epoch, .. }) if epoch == r.manifest.epoch
    ));
    let mut modified = r.signed.clone();
    let last = modified.bytes.len() - 1;
    modified.bytes[last] ^= 1;
    assert!(matches!(
        st.ingest(&modified, w.verifier.as_ref(), &mut fetch),
        Err(GraphError::BadManifestSignature { .. })
    ));
    // A verifier for the rogue key accepts the rogue signature: the check is really keyed.
    let rogue_v = Ed25519Verifier(rogue.0.verifying_key());
    let other: &dyn amicn_kms::graph::ManifestVerifier = &rogue_v;
    assert!(other.verify(&forged.bytes, &forged.signature).is_ok());
    assert!(
        st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch)
            .is_ok()
    );
}

#[test]
fn wrap_forged_by_an_insider_fails_the_commitment() {
    let w0 = world();
    let mut w = world();
    // Meter 9 (subgroup p1+p2) moves to p1 only: p2 gets a fresh key wrapped under the p1+p2
    // subgroup key, which meter 8 also holds. Meter 8 forges a valid-looking wrap of a key of
    // its choosing for meter 10.
    let r = w.g.move_to(9, &["p1"], w.signer.as_ref()).unwrap();
    let p2 = Manifest::decode(&r.signed.bytes).unwrap().epoch;
    let mut st8 = w0.g.export_member(8).unwrap();
    let mut fetch8 = |n: &str| r.wraps.iter().find(|x| x.name == n).cloned();
    st8.ingest(&r.signed, w.verifier.as_ref(), &mut fetch8)
        .unwrap();
    let sg_key = st8
        .keys()
        .into_iter()
        .find(|(n, _)| n.contains("/tree/p1+p2/node/2.0/"))
        .map(|(_, k)| *k.as_bytes())
        .unwrap();
    let needed = fetched_by(&w0, 10, &r);
    let target = needed
        .iter()
        .find(|n| n.starts_with(&names::key_name(PREFIX, KeyRef::Project("p2"), p2)))
        .unwrap()
        .clone();
    let mut rng = rand::rng();
    let forged = wrap::seal(
        &mut rng,
        &sg_key,
        target.clone(),
        WrapMode::Multicast,
        &[0x42; 32],
    );
    let mut st = w0.g.export_member(10).unwrap();
    let mut fetch = |n: &str| {
        if n == target {
            Some(forged.clone())
        } else {
            r.wraps.iter().find(|x| x.name == n).cloned()
        }
    };
    assert!(matches!(
        st.ingest(&r.signed, w.verifier.as_ref(), &mut fetch),
        Err(GraphError::CommitmentMismatch { .. })
    ));
}

#[test]
fn periodic_refresh_replaces_group_keys_only() {
    let mut w = world();
    let before = w.states[&9].root_key().unwrap().0;
    w.g.stage_refresh(true, true);
    let r = w.commit();
    // p1 under its 2 subgroups, p2 under 1, the broadcast key under all 3; no tree key moves.
    assert_eq!(
        (
            r.stats.project_wraps,
            r.stats.root_wraps,
            r.stats.tree_wraps
        ),
        (3, 3, 0)
    );
    assert_eq!(r.stats.fresh_keys, 3);
    assert_eq!(w.states[&9].root_key().unwrap().0, r.manifest.epoch);
    assert!(r.manifest.epoch > before);
    assert_eq!(w.states[&9].project_key("p2").unwrap().0, r.manifest.epoch);
}
