//! Meter ids anywhere in `u32` (but the reserved `u32::MAX`) cost what small ids cost: the
//! member table is sparse, so joins, rekeys, leaves and saved images of meters with ids near
//! `u32::MAX` take the memory and bytes of the same number of meters numbered from 0.
#![allow(clippy::unwrap_used)]

mod graph_common;

use std::path::Path;
use std::time::{Duration, Instant};

use amicn_kms::SymmetricKey;
use amicn_kms::graph::GraphError;
use amicn_kms::persist::{decode_graph, decode_member, encode_graph, encode_member};
use graph_common::World;

const LARGE: [u32; 6] = [
    u32::MAX - 1,
    u32::MAX - 2,
    u32::MAX / 2,
    1 << 31,
    123_456_789,
    0,
];

/// Enrols two meters, joins the rest of `ids` in one epoch, then has one leave and one move.
fn run_flow(ids: &[u32]) -> World {
    let mut w = World::new(2, true, &["p1", "p2"], 5).with_test_signer();
    w.enroll(&ids[..2], &["p1"]);
    for &m in &ids[2..] {
        w.stage_join(m, &["p1"]).unwrap();
    }
    w.commit();
    w.g.stage_leave(ids[0]).unwrap();
    w.g.stage_move(ids[2], &["p1", "p2"]).unwrap();
    w.commit();
    w
}

#[test]
fn meters_with_ids_near_u32_max_join_rekey_and_leave_like_small_ones() {
    let start = Instant::now();
    let large = run_flow(&LARGE);
    let small = run_flow(&[0, 1, 2, 3, 4, 5]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );

    let mut want: Vec<u32> = LARGE[1..].to_vec();
    want.sort_unstable();
    assert_eq!(large.members(), want);
    // Every remaining meter holds exactly its keys (checked on each publish), and no meter,
    // the departed one included, can derive more than it was entitled to.
    let mut large = large;
    assert!(large.adversary_excess_all().is_empty());
    assert_eq!(large.g.entitled_keys(LARGE[0]), Vec::new());
    assert!(!large.g.entitled_keys(u32::MAX - 2).is_empty());

    // Memory and image size follow the member count, not the ids.
    assert_eq!(large.g.heap_bytes(), small.g.heap_bytes());
    let image = encode_graph(&large.g);
    assert_eq!(image.len(), encode_graph(&small.g).len());
    assert!(image.len() < 64 * 1024, "{}", image.len());

    let back = decode_graph(&image, Path::new("kms.state")).unwrap();
    assert_eq!(back.member_ids(), large.members());
    assert_eq!(encode_graph(&back), image);
    let state = &large.states[&(u32::MAX - 1)];
    let saved = decode_member(&encode_member(state), Path::new("meter.state")).unwrap();
    assert_eq!(saved.meter(), u32::MAX - 1);
    assert_eq!(saved.keys().len(), state.keys().len());
}

#[test]
fn the_reserved_id_u32_max_is_refused_without_touching_the_graph() {
    let mut w = World::new(2, true, &["p1"], 9).with_test_signer();
    w.enroll(&[u32::MAX - 1], &["p1"]);
    let before = encode_graph(&w.g);

    let e =
        w.g.stage_join(u32::MAX, &["p1"], SymmetricKey::from_bytes([1; 32]))
            .unwrap_err();
    assert!(matches!(e, GraphError::BadParameter(_)), "{e:?}");
    assert!(e.to_string().contains("reserved"), "{e}");
    let e = w.g.bulk_enroll(&[7, u32::MAX], &["p1"]).unwrap_err();
    assert!(e.to_string().contains("reserved"), "{e}");
    assert!(!w.g.is_member(7));
    assert!(matches!(
        w.g.stage_leave(u32::MAX),
        Err(GraphError::NotMember { .. })
    ));
    assert!(matches!(
        w.g.stage_move(u32::MAX, &[]),
        Err(GraphError::NotMember { .. })
    ));
    assert!(!w.g.has_staged());
    assert_eq!(encode_graph(&w.g), before);

    // The graph goes on working for the large id next to it.
    w.stage_join(u32::MAX - 3, &["p1"]).unwrap();
    w.commit();
    assert_eq!(w.members(), vec![u32::MAX - 3, u32::MAX - 1]);
}
