//! Storage faults: a torn or truncated state file and a full disk give a clear error, never a
//! silent reset, and never lose what was committed before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use amicn_ami::reading::Flags;
use amicn_ami::{ReadingStore, SqliteReadingStore, StoredReading, now_us};

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "amicn-storage-{tag}-{}-{}",
        std::process::id(),
        now_us()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn reading(meter: u32, k: u64) -> StoredReading {
    StoredReading {
        meter,
        t_us: 1_000_000 * (k + 1),
        energy_wh: 10 * k,
        power_w: 500,
        flags: Flags::NONE,
        key_name: "/u/ami/meter/1/KEY/e1".into(),
        received_us: now_us(),
    }
}

/// A SQLite reading database cut short at several points is refused on open with an error
/// naming the file, or opens with every reading it still fully holds; it never opens empty as
/// if it had been reset.
#[test]
fn a_truncated_reading_database_is_refused_not_reset() {
    let dir = scratch("torn-db");
    let db = dir.join("readings.db");
    {
        let mut s = SqliteReadingStore::open(&db).unwrap();
        for k in 0..2000 {
            s.insert_wire(&reading(1, k), &[0u8; 200]).unwrap();
        }
    }
    // Checkpointed into the main file by the close above.
    let whole = std::fs::read(&db).unwrap();
    assert!(whole.len() > 64 * 1024, "{} bytes", whole.len());
    for cut in [100, 4096 + 7, whole.len() / 2, whole.len() - 1] {
        let torn = dir.join(format!("torn-{cut}.db"));
        std::fs::write(&torn, &whole[..cut]).unwrap();
        match SqliteReadingStore::open(&torn).and_then(|s| s.len()) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&torn.display().to_string()), "{msg}");
            }
            Ok(n) => panic!(
                "a database cut at {cut} of {} bytes opened with {n} readings",
                whole.len()
            ),
        }
        // The damaged file is left for inspection, not replaced.
        assert_eq!(std::fs::metadata(&torn).unwrap().len(), cut as u64);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Mounts a tmpfs of `kib` KiB at `at`; false (with the reason printed) where this process
/// may not mount.
fn small_tmpfs(at: &Path, kib: u32) -> bool {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(at)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a small tmpfs ({}); run as root to test a full disk",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount ({e})");
            false
        }
    }
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// On a full disk the reading store's insert fails with an error (counted by the caller,
/// who then does not acknowledge), every reading committed before stays readable, the file
/// passes SQLite's integrity check, and an atomic state write fails without touching the old
/// file.
#[test]
fn a_full_disk_fails_inserts_cleanly_and_keeps_what_was_committed() {
    let mnt = scratch("full-disk");
    if !small_tmpfs(&mnt, 2048) {
        let _ = std::fs::remove_dir_all(&mnt);
        return;
    }
    let _guard = Unmount(mnt.clone());
    let db = mnt.join("readings.db");
    let mut s = SqliteReadingStore::open(&db).unwrap();
    let mut committed = 0u64;
    let mut error = None;
    for k in 0..100_000 {
        match s.insert_wire(&reading(1, k), &[0xA5; 600]) {
            Ok(true) => committed += 1,
            Ok(false) => panic!("reading {k} reported as a duplicate"),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let error = error.expect("a 2 MiB file system never filled up");
    assert!(committed > 10, "only {committed} readings fit: {error}");
    assert!(
        error.contains("full") || error.contains("disk") || error.contains("space"),
        "{error}"
    );
    // Everything acknowledged before the failure is there, in this connection and a new one.
    assert_eq!(s.len().unwrap(), committed);
    drop(s);
    let s = SqliteReadingStore::open(&db).unwrap();
    assert_eq!(s.len().unwrap(), committed);
    assert!(s.get(1, 1_000_000 * committed).unwrap().is_some());
    let c = rusqlite::Connection::open(&db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // A meter's state record on the full disk: the write fails, the old record survives whole.
    let rec = mnt.join("meter.json");
    amicn_kms::persist::write_atomic(&rec, b"{\"next_epoch\":3}").ok();
    let before = std::fs::read(&rec).ok();
    let big = vec![b' '; 1 << 20];
    assert!(amicn_kms::persist::write_atomic(&rec, &big).is_err());
    assert_eq!(std::fs::read(&rec).ok(), before);
}
