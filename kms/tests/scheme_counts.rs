//! Exact message counts and storage of every scheme against the survey's formulas (Tables IV
//! and V), where the formula is exact: full trees and the flat scheme.
#![allow(clippy::unwrap_used)]

use amicn_kms::scheme::acv::AcvScheme;
use amicn_kms::scheme::flat::FlatScheme;
use amicn_kms::scheme::lkh::LkhScheme;
use amicn_kms::scheme::oft::OftScheme;
use amicn_kms::scheme::wire::{data_bytes, rekey_bytes};
use amicn_kms::scheme::{Scheme, SchemeError};

#[test]
fn flat_resends_two_keys_unicast_to_every_member() {
    let n = 64u64;
    let mut s = FlatScheme::new(n as u32, 1);
    // Table V, KMSSC with N_pr = 1: MDMS n + N_pr + 1, meter N_sub + 2.
    assert_eq!(s.server_storage(), n + 2);
    assert_eq!(s.member_storage(0), Some(3));
    // Table IV, KMSSC: 2n|K| unicast, 0 broadcast, n counted after the change.
    let j = s.join(1000).unwrap().counts;
    assert_eq!((j.unicast, j.multicast, j.broadcast), (2 * (n + 1), 0, 0));
    let l = s.leave(5).unwrap().counts;
    assert_eq!((l.unicast, l.multicast, l.broadcast), (2 * n, 0, 0));
    // A batch of 3 leaves and 2 joins is one rekey for the n − 1 remaining meters.
    let b = s.batch(&[2000, 2001], &[1, 2, 3]).unwrap();
    assert_eq!(b.counts.unicast, 2 * (n - 1));
    assert_eq!(b.counts.fresh_keys, 2 + 2);
    assert_eq!(b.provisioned.len(), 2);
    // A refused batch changes nothing.
    assert!(matches!(
        s.batch(&[3000], &[9999]),
        Err(SchemeError::NotMember { meter: 9999 })
    ));
    assert_eq!(s.members().len() as u64, n - 1);
}

#[test]
fn oft_full_tree_leave_is_h_and_join_is_2h() {
    for h in [3u32, 6, 10] {
        let n = 1u32 << h;
        let (mut s, _) = OftScheme::new(n, u64::from(n), 1).unwrap();
        assert_eq!(u32::from(s.height()), h);
        // Table V, eSKAMI (one project, m = n): MDMS 2(m − 1) + 1; meter leaf + H blinded keys.
        assert_eq!(s.server_storage(), 2 * (u64::from(n) - 1) + 1);
        assert_eq!(s.member_storage(7), Some(u64::from(h) + 1));
        let l = s.leave(n / 3).unwrap().counts;
        // One blinded key per level to the sibling subtree: a leaf (unicast), then subtrees.
        assert_eq!((l.unicast, l.multicast), (1, u64::from(h) - 1), "h={h}");
        assert_eq!(l.broadcast, 1, "the version record");
        // The joiner takes the vacated leaf: H blinded keys to the siblings + H to the joiner,
        // the survey's 2h_j unicast (it counts every blinded key as unicast).
        let j = s.join(50_000).unwrap().counts;
        assert_eq!(j.unicast + j.multicast, 2 * u64::from(h), "h={h}");
        assert_eq!(j.unicast, 1 + u64::from(h));
        assert!(matches!(s.join(50_001), Err(SchemeError::Full { .. })));
    }
}

#[test]
fn lkh_full_binary_tree_counts() {
    for h in [3u32, 6, 10] {
        let n = 1u32 << h;
        let mut s = LkhScheme::new(n, 2, &[], true, false, 1).unwrap();
        // Leaf + H path keys + broadcast key.
        assert_eq!(s.member_storage(3), Some(u64::from(h) + 2));
        // All 2n − 1 tree nodes and the broadcast key.
        assert_eq!(s.server_storage(), 2 * u64::from(n) - 1 + 1);
        // Leave: d·H − 1 tree wraps and one broadcast wrap.
        let l = s.leave(n / 3).unwrap().counts;
        assert_eq!(l.unicast + l.multicast, 2 * u64::from(h) - 1, "h={h}");
        assert_eq!(l.unicast, 1);
        assert_eq!(l.broadcast, 1);
        // Join into the vacated leaf with the LKH+ ratchet: H wraps down the joiner's path
        // (one unicast, under its own key) and the ratcheted broadcast key under the root.
        let j = s.join(60_000).unwrap().counts;
        assert_eq!(j.unicast + j.multicast, u64::from(h), "h={h}");
        assert_eq!(j.unicast, 1);
        assert_eq!(j.broadcast, 1);
        assert_eq!(j.fresh_keys, 0);
    }
}

#[test]
fn lkh_batch_of_k_leaves_costs_less_than_k_single_leaves() {
    // Four departures sharing the top of the tree: the batch rekeys the union of the paths once.
    let leaves = [1u32, 2, 200, 700];
    let mut one = LkhScheme::new(1024, 2, &[], true, false, 1).unwrap();
    let mut bat = LkhScheme::new(1024, 2, &[], true, true, 1).unwrap();
    let a = one.batch(&[], &leaves).unwrap().counts;
    let b = bat.batch(&[], &leaves).unwrap().counts;
    // One by one: 4·(2H − 1) tree wraps + 4 broadcast, H = 10.
    assert_eq!(a.unicast + a.multicast, 4 * 19);
    assert_eq!(a.broadcast, 4);
    // Batched, hand-counted: leaves 1 and 2 share every ancestor above height 1 (2 and 3 are
    // in different pairs), 200 and 700 join them at heights 8 and 10. Fresh nodes: 4 at
    // height 1, 3 at heights 2..=7 (1 and 2 share from height 2), 2 at height 8, 2 at height 9,
    // 1 at height 10, plus the broadcast key. Each fresh node is wrapped under its occupied
    // children: one at height 1 (its other leaf left), two above.
    assert_eq!(b.fresh_keys, 4 + 3 * 6 + 2 + 2 + 1 + 1);
    assert_eq!(b.unicast, 4);
    assert_eq!(b.multicast, 2 * (3 * 6 + 2 + 2 + 1));
    assert_eq!(b.broadcast, 1);
}

#[test]
fn acv_sends_nothing_unicast_and_one_record_of_2n_plus_1_elements() {
    let n = 20u32;
    let (mut s, setup) = AcvScheme::new(n, 1);
    assert_eq!(setup.counts.broadcast, 1);
    assert_eq!(s.member_storage(0), Some(2));
    for step in 0..3 {
        let r = match step {
            0 => s.join(100),
            1 => s.leave(4),
            _ => s.refresh(),
        }
        .unwrap();
        assert_eq!((r.counts.unicast, r.counts.multicast), (0, 0));
        assert_eq!(r.counts.broadcast, 1);
        assert!(r.wraps.is_empty());
        // N = members + 1 (the server-only row); record = epoch, N, N nonces, N + 1 entries,
        // commitment.
        let members = s.members().len();
        let rows = members + 1;
        assert_eq!(
            r.public[0].bytes.len(),
            8 + 32 * rows + 32 * (rows + 1) + 16
        );
        // Gaussian elimination of a rows × (rows + 1) matrix: between rows²(rows+1)/2 and
        // rows²(rows + 1) multiplications (each pivot row scaled, every other row reduced).
        let m = r.counts.field_mults as usize;
        assert!(
            m >= rows * rows * (rows + 1) / 2 && m <= rows * rows * (rows + 2),
            "{m}"
        );
    }
}

#[test]
fn wire_bytes_count_name_content_and_signature() {
    // Data(6) · Name(7) "/a" · MetaInfo absent · Content(21) 1 byte · SignatureInfo(22)
    // with type 5 and a KeyLocator name · SignatureValue(23) 64 bytes.
    let one = data_bytes("/a", &[0]);
    let two = data_bytes("/ab", &[0, 0]);
    assert_eq!(two, one + 2, "one more name byte and one more content byte");
    let (mut s, _) = OftScheme::new(8, 8, 1).unwrap();
    let r = s.leave(0).unwrap();
    let total = rekey_bytes(&r);
    let payload: u64 = r.wraps.iter().map(|w| w.payload.len() as u64).sum::<u64>()
        + r.public.iter().map(|p| p.bytes.len() as u64).sum::<u64>();
    let names: u64 = r.wraps.iter().map(|w| w.name.len() as u64).sum();
    // Every packet carries at least its 64-byte signature and its name on top of the payload.
    let packets = (r.wraps.len() + r.public.len()) as u64;
    assert!(total > payload + 64 * packets + names / 2, "{total}");
}
