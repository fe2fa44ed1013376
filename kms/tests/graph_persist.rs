//! Crash safety of the persisted KMS graph and member state: every truncated or torn image is
//! refused, an interrupted save leaves the previous state loadable, and a writer process killed
//! at a random moment never leaves an unloadable state behind.
#![allow(clippy::unwrap_used)]

mod graph_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amicn_kms::graph::GraphError;
use amicn_kms::persist::{
    decode_graph, decode_member, encode_graph, encode_member, is_temp_of, load_graph, load_member,
    save_graph, save_member,
};
use graph_common::World;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amicn-kms-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn world() -> World {
    let mut w = World::new(2, true, &["p1", "p2"], 21).with_test_signer();
    w.enroll(&(0..40).collect::<Vec<_>>(), &["p1"]);
    w.enroll(&(40..50).collect::<Vec<_>>(), &["p1", "p2"]);
    w.enroll(&(50..53).collect::<Vec<_>>(), &[]);
    w
}

#[test]
fn graph_round_trip_continues_rekeying() {
    let dir = scratch("roundtrip");
    let path = dir.join("kms.state");
    let mut w = world();
    w.g.stage_leave(3).unwrap();
    w.stage_join(100, &["p2"]).unwrap();
    w.commit();
    w.revoke(44);
    save_graph(&w.g, &path).unwrap();
    let loaded = load_graph(&path).unwrap();
    assert_eq!(encode_graph(&loaded), encode_graph(&w.g));
    assert_eq!(loaded.epoch(), w.g.epoch());
    assert_eq!(loaded.server_keys(), w.g.server_keys());
    // The restored KMS keeps serving the same members: they follow its next rekeys.
    w.g = loaded;
    w.g.stage_leave(7).unwrap();
    w.g.stage_move(41, &["p2"]).unwrap();
    w.commit();
    assert!(w.revoke_fails_rejoin(44));
    assert!(w.adversary_excess_all().is_empty());
}

impl World {
    fn revoke_fails_rejoin(&mut self, m: u32) -> bool {
        matches!(self.stage_join(m, &["p1"]), Err(GraphError::Revoked { .. }))
    }
}

#[test]
fn interrupted_save_keeps_previous_state_and_torn_images_are_refused() {
    let dir = scratch("torn");
    let path = dir.join("kms.state");
    let mut w = world();
    save_graph(&w.g, &path).unwrap();
    let v1 = encode_graph(&w.g);
    let r = w.g.leave(5, w.signer.as_ref()).unwrap();
    w.publish(&r);
    let v2 = encode_graph(&w.g);
    assert_ne!(v1, v2);
    let cuts: Vec<usize> = (0..v2.len())
        .step_by(97)
        .chain([v2.len() - 1, v2.len() - 32, 8])
        .collect();
    for &cut in &cuts {
        // Crash while writing the temporary file: the old image is what loads.
        std::fs::write(dir.join(".kms.state.00112233aabbccdd.tmp"), &v2[..cut]).unwrap();
        assert_eq!(
            encode_graph(&load_graph(&path).unwrap()),
            v1,
            "cut at {cut}"
        );
        // A torn image in place of the real file (what a non-atomic writer could leave).
        match decode_graph(&v2[..cut], Path::new("torn")) {
            Err(GraphError::CorruptState { .. }) => {}
            other => panic!("torn image of {cut} bytes: {:?}", other.map(|g| g.epoch())),
        }
    }
    for i in (0..v2.len()).step_by(251) {
        let mut flipped = v2.clone();
        flipped[i] ^= 0x10;
        assert!(
            matches!(
                decode_graph(&flipped, Path::new("x")),
                Err(GraphError::CorruptState { .. })
            ),
            "flip at {i}"
        );
    }
    // A half-applied epoch is never written.
    w.g.stage_leave(6).unwrap();
    assert!(matches!(
        save_graph(&w.g, &path),
        Err(GraphError::BadParameter(_))
    ));
    w.commit();
    let v2 = encode_graph(&w.g);
    // Completing the save switches to the new image.
    save_graph(&w.g, &path).unwrap();
    assert_eq!(encode_graph(&load_graph(&path).unwrap()), v2);
    // Only the torn file planted above is a temporary; the save left none of its own.
    let temps: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_temp_of(&path, p))
        .collect();
    assert_eq!(temps, vec![dir.join(".kms.state.00112233aabbccdd.tmp")]);
    // State files are the owner's only, and a symlink planted beside them is never followed.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let victim = dir.join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("kms.state.tmp")).unwrap();
    for _ in 0..8 {
        save_graph(&w.g, &path).unwrap();
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn member_state_survives_and_refuses_torn_images() {
    let dir = scratch("member");
    let path = dir.join("meter-3.state");
    let mut w = world();
    w.g.stage_leave(2).unwrap();
    w.commit();
    let st = &w.states[&3];
    save_member(st, &path).unwrap();
    let loaded = load_member(&path).unwrap();
    assert_eq!(encode_member(&loaded), encode_member(st));
    let names: Vec<String> = loaded.keys().into_iter().map(|(n, _)| n).collect();
    let want: Vec<String> = w.g.entitled_keys(3).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, want);
    let bytes = encode_member(st);
    for cut in 0..bytes.len() {
        assert!(
            decode_member(&bytes[..cut], Path::new("m")).is_err(),
            "cut {cut}"
        );
    }
    // A restored member keeps following rekeys.
    w.states.insert(3, loaded);
    w.g.stage_leave(1).unwrap();
    w.commit();
}

const CHILD_ENV: &str = "AMICN_KMS_CRASH_DIR";

/// Runs only as the child of `writer_killed_mid_save_leaves_a_loadable_state`: saves ever newer
/// graph generations as fast as it can until killed (or 20 s pass).
#[test]
#[ignore = "helper process for the kill test"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = Path::new(&dir).join("kms.state");
    let mut w = World::new(2, true, &["p1"], 5).with_test_signer();
    w.g.bulk_enroll(&(0..20_000).collect::<Vec<_>>(), &["p1"])
        .unwrap();
    let start = Instant::now();
    let mut m = 0;
    while start.elapsed() < Duration::from_secs(20) {
        save_graph(&w.g, &path).unwrap();
        w.g.leave(m, w.signer.as_ref()).unwrap();
        m += 1;
    }
}

#[test]
fn writer_killed_mid_save_leaves_a_loadable_state() {
    let dir = scratch("kill");
    let path = dir.join("kms.state");
    let exe = std::env::current_exe().unwrap();
    let mut epochs = Vec::new();
    for delay_ms in [150u64, 290, 430, 610] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a first complete image (bounded), then kill at an arbitrary point.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !path.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let g = load_graph(&path)
            .unwrap_or_else(|e| panic!("state unloadable after kill at +{delay_ms} ms: {e}"));
        assert_eq!(g.member_ids().len() + (g.epoch() as usize - 1), 20_000);
        epochs.push(g.epoch());
    }
    assert_eq!(epochs.len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
