//! The KMS's durable state: one SQLite database in the KMS state directory.
//!
//! It holds everything a restarted KMS needs to continue the same epoch sequence: the key graph
//! image of the last committed epoch, every Data it ever published (the exact signed bytes, so a
//! restart serves the same content under the same names), enrolments accepted but not yet
//! committed (with their user keys), staged leaves and moves, entitlements granted by the DR
//! operator, revocations, and the replay records of signed commands.
//!
//! The key graph is saved as a journal: each epoch appends one small entry (the operations it
//! carried out and the seed of its key generator) instead of a whole image, and every so many
//! epochs the image is rewritten and the entries it covers are dropped (compaction), so saving
//! an epoch does not cost a full snapshot of a million-member graph.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a transaction is on disk (fsync of the
//! WAL) when `COMMIT` returns. An epoch's rows, its graph image and the removal of the staged
//! operations it carried out are one transaction, written before any of its Data is served: a
//! crash either loses the whole epoch (nothing of it was ever served; its operations are staged
//! again on restart) or keeps it whole. The file holds secret keys: it is created 0600 inside a
//! 0700 directory, and a symlink in its place is refused rather than followed.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::{AmiError, Result};

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS published (
    name BLOB PRIMARY KEY, epoch INTEGER NOT NULL, wire BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS published_epoch ON published (epoch);
CREATE TABLE IF NOT EXISTS pending (
    meter INTEGER PRIMARY KEY, user_key BLOB NOT NULL, projects TEXT NOT NULL,
    enrolled_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS staged (
    meter INTEGER PRIMARY KEY, op TEXT NOT NULL, projects TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entitlement (
    meter INTEGER PRIMARY KEY, projects TEXT NOT NULL, granted_by TEXT NOT NULL,
    at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked (
    meter INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, revoked_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS member_since (meter INTEGER PRIMARY KEY, since_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS epoch_log (epoch INTEGER PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (epoch INTEGER PRIMARY KEY, entry BLOB NOT NULL);
";

/// A join accepted at enrolment and not committed yet.
#[derive(Clone)]
pub(crate) struct PendingJoin {
    pub(crate) meter: u32,
    pub(crate) user_key: Zeroizing<[u8; 32]>,
    pub(crate) projects: Vec<String>,
}

/// A staged leave or move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StagedOp {
    Leave,
    Move(Vec<String>),
}

/// What one committed epoch writes.
pub(crate) struct EpochWrite<'a> {
    pub(crate) epoch: u32,
    /// A new image of the graph after this epoch (compaction), or `None` to append only.
    pub(crate) graph_image: Option<&'a [u8]>,
    /// The epoch's journal entry.
    pub(crate) journal_entry: &'a [u8],
    pub(crate) published: &'a [(Vec<u8>, Vec<u8>)],
    pub(crate) joined: &'a [(u32, u64)],
    pub(crate) departed: &'a [u32],
    pub(crate) summary_json: &'a str,
}

/// The KMS database (see the module documentation).
pub(crate) struct KmsStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for KmsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsStore")
            .field("path", &self.path)
            .finish()
    }
}

fn join_projects(p: &[String]) -> String {
    p.join(",")
}

fn split_projects(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl KmsStore {
    /// Opens (creating if needed) the database at `path`, or a private in-memory one.
    pub(crate) fn open(path: Option<&Path>) -> Result<Self> {
        let (conn, path) = match path {
            None => (Connection::open_in_memory()?, PathBuf::from(":memory:")),
            Some(p) => {
                prepare_file(p)?;
                (
                    Connection::open(p).map_err(|e| state_err(p, e))?,
                    p.to_path_buf(),
                )
            }
        };
        let s = KmsStore { conn, path };
        s.init()?;
        Ok(s)
    }

    fn err(&self, e: rusqlite::Error) -> AmiError {
        state_err(&self.path, e)
    }

    fn init(&self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(AmiError::State {
                path: self.path.clone(),
                why: format!(
                    "schema version {version} is newer than this amicn ({SCHEMA_VERSION})"
                ),
            });
        }
        // FULL: the WAL is fsynced at every commit, so an epoch is durable before it is served.
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(|e| self.err(e))?;
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if check != "ok" {
            return Err(AmiError::State {
                path: self.path.clone(),
                why: format!("database is damaged: {check}"),
            });
        }
        self.conn.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The database file (or `:memory:`).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The key-graph image of the last committed epoch.
    pub(crate) fn graph_image(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT v FROM meta WHERE k = 'graph'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.map(Zeroizing::new))
    }

    /// Journal entries after the saved image, ascending by epoch.
    pub(crate) fn journal(&self) -> Result<Vec<(u32, Zeroizing<Vec<u8>>)>> {
        let mut st = self
            .conn
            .prepare("SELECT epoch, entry FROM journal ORDER BY epoch")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (e, b) = row.map_err(|e| self.err(e))?;
            out.push((e, Zeroizing::new(b)));
        }
        Ok(out)
    }

    /// Saves the initial graph image (before any epoch).
    pub(crate) fn save_graph_image(&self, image: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (k, v) VALUES ('graph', ?1)",
                params![image],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A stored meta blob (e.g. replay records).
    pub(crate) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT v FROM meta WHERE k = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Replaces a meta blob.
    pub(crate) fn set_meta(&self, key: &str, v: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)",
                params![key, v],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every published Data, in epoch order.
    pub(crate) fn published(&self) -> Result<Vec<Vec<u8>>> {
        let mut st = self
            .conn
            .prepare("SELECT wire FROM published ORDER BY epoch, rowid")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The bytes published under `name` (its TLV encoding), if any.
    #[cfg(test)]
    pub(crate) fn published_wire(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT wire FROM published WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Writes one committed epoch in a single transaction. Refuses (and writes nothing) if any
    /// name was already published with different bytes.
    pub(crate) fn commit_epoch(&mut self, w: &EpochWrite<'_>) -> Result<()> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| state_err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut get = tx
                .prepare_cached("SELECT wire FROM published WHERE name = ?1")
                .map_err(e)?;
            let mut put = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO published (name, epoch, wire) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            for (name, wire) in w.published {
                let old: Option<Vec<u8>> = get
                    .query_row(params![name], |r| r.get(0))
                    .optional()
                    .map_err(e)?;
                match old {
                    Some(o) if &o != wire => {
                        return Err(AmiError::State {
                            path: path.clone(),
                            why: format!(
                                "epoch {} would publish different content under a name already published",
                                w.epoch
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        put.execute(params![name, w.epoch, wire]).map_err(e)?;
                    }
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO journal (epoch, entry) VALUES (?1, ?2)",
                params![w.epoch, w.journal_entry],
            )
            .map_err(e)?;
            if let Some(img) = w.graph_image {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (k, v) VALUES ('graph', ?1)",
                    params![img],
                )
                .map_err(e)?;
                tx.execute("DELETE FROM journal WHERE epoch <= ?1", params![w.epoch])
                    .map_err(e)?;
            }
            for (m, since) in w.joined {
                tx.execute("DELETE FROM pending WHERE meter = ?1", params![m])
                    .map_err(e)?;
                tx.execute(
                    "INSERT OR REPLACE INTO member_since (meter, since_us) VALUES (?1, ?2)",
                    params![m, i(*since)],
                )
                .map_err(e)?;
            }
            for m in w.departed {
                tx.execute("DELETE FROM member_since WHERE meter = ?1", params![m])
                    .map_err(e)?;
                tx.execute("DELETE FROM pending WHERE meter = ?1", params![m])
                    .map_err(e)?;
            }
            tx.execute("DELETE FROM staged", []).map_err(e)?;
            tx.execute(
                "INSERT OR REPLACE INTO epoch_log (epoch, summary) VALUES (?1, ?2)",
                params![w.epoch, w.summary_json],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Publishes Data outside an epoch commit (a revocation list), refusing different bytes under
    /// an existing name like [`KmsStore::commit_epoch`].
    pub(crate) fn put_published(&mut self, epoch: u32, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| state_err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        for (name, wire) in rows {
            let old: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT wire FROM published WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(e)?;
            match old {
                Some(o) if &o != wire => {
                    return Err(AmiError::State {
                        path: path.clone(),
                        why: "different content under a name already published".into(),
                    });
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO published (name, epoch, wire) VALUES (?1, ?2, ?3)",
                        params![name, epoch, wire],
                    )
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)
    }

    /// Records an accepted enrolment (replacing an earlier uncommitted one of the same meter).
    pub(crate) fn put_pending(&self, p: &PendingJoin, now_us: u64) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO pending (meter, user_key, projects, enrolled_us)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    p.meter,
                    &p.user_key[..],
                    join_projects(&p.projects),
                    i(now_us)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Enrolments not committed yet, by meter.
    pub(crate) fn pending(&self) -> Result<Vec<PendingJoin>> {
        let mut st = self
            .conn
            .prepare("SELECT meter, user_key, projects FROM pending ORDER BY meter")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (meter, key, projects) = row.map_err(|e| self.err(e))?;
            let key = Zeroizing::new(key);
            let user_key: [u8; 32] = key.as_slice().try_into().map_err(|_| AmiError::State {
                path: self.path.clone(),
                why: format!("pending enrolment of meter {meter} has a damaged key"),
            })?;
            out.push(PendingJoin {
                meter,
                user_key: Zeroizing::new(user_key),
                projects: split_projects(&projects),
            });
        }
        Ok(out)
    }

    /// Records a staged leave or move (carried out by the next commit).
    pub(crate) fn put_staged(&self, meter: u32, op: &StagedOp) -> Result<()> {
        let (o, p) = match op {
            StagedOp::Leave => ("leave", String::new()),
            StagedOp::Move(p) => ("move", join_projects(p)),
        };
        self.conn
            .execute(
                "INSERT OR REPLACE INTO staged (meter, op, projects) VALUES (?1, ?2, ?3)",
                params![meter, o, p],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Staged leaves and moves not committed yet.
    pub(crate) fn staged(&self) -> Result<Vec<(u32, StagedOp)>> {
        let mut st = self
            .conn
            .prepare("SELECT meter, op, projects FROM staged ORDER BY meter")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (m, op, p) = row.map_err(|e| self.err(e))?;
            out.push((
                m,
                if op == "leave" {
                    StagedOp::Leave
                } else {
                    StagedOp::Move(split_projects(&p))
                },
            ));
        }
        Ok(out)
    }

    /// Sets the project sets of meters and records the moves they cause, in one transaction.
    pub(crate) fn entitle(
        &mut self,
        rows: &[(u32, Vec<String>)],
        moves: &[(u32, Vec<String>)],
        by: &str,
        now_us: u64,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| state_err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        for (m, p) in rows {
            tx.execute(
                "INSERT OR REPLACE INTO entitlement (meter, projects, granted_by, at_us)
                 VALUES (?1, ?2, ?3, ?4)",
                params![m, join_projects(p), by, i(now_us)],
            )
            .map_err(e)?;
        }
        for (m, p) in moves {
            tx.execute(
                "INSERT OR REPLACE INTO staged (meter, op, projects) VALUES (?1, 'move', ?2)",
                params![m, join_projects(p)],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Every entitlement.
    pub(crate) fn entitlements(&self) -> Result<BTreeMap<u32, Vec<String>>> {
        let mut st = self
            .conn
            .prepare("SELECT meter, projects FROM entitlement")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (m, p) = row.map_err(|e| self.err(e))?;
            out.insert(m, split_projects(&p));
        }
        Ok(out)
    }

    /// Records a revocation (the first one of a meter wins).
    pub(crate) fn add_revocation(&self, meter: u32, at_us: u64, by: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO revoked (meter, at_us, revoked_by) VALUES (?1, ?2, ?3)",
                params![meter, i(at_us), by],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every revocation, by meter.
    pub(crate) fn revocations(&self) -> Result<BTreeMap<u32, u64>> {
        self.meter_times("SELECT meter, at_us FROM revoked")
    }

    /// When each current member joined (µs).
    pub(crate) fn member_since(&self) -> Result<BTreeMap<u32, u64>> {
        self.meter_times("SELECT meter, since_us FROM member_since")
    }

    /// Runs a `SELECT meter, <µs>` query into a map.
    fn meter_times(&self, sql: &str) -> Result<BTreeMap<u32, u64>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (m, t) = row.map_err(|e| self.err(e))?;
            out.insert(m, u(t));
        }
        Ok(out)
    }

    /// The epoch log (JSON summaries), ascending.
    pub(crate) fn epoch_log(&self) -> Result<Vec<(u32, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT epoch, summary FROM epoch_log ORDER BY epoch")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }
}

fn state_err(path: &Path, e: rusqlite::Error) -> AmiError {
    AmiError::State {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// Creates the database file 0600 (its directory 0700) if it does not exist; refuses a symlink.
fn prepare_file(p: &Path) -> Result<()> {
    let io = |why: String| AmiError::State {
        path: p.to_path_buf(),
        why,
    };
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating its directory: {e}")))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(format!("restricting its directory: {e}")))?;
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io("is a symbolic link; refusing to follow it".into()));
        }
        Ok(m) if !m.is_file() => return Err(io("is not a regular file".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                // O_CREAT | O_EXCL: never follows a symlink planted after the check above.
                .mode(0o600)
                .open(p)
                .map_err(|e| io(format!("creating: {e}")))?;
        }
        Err(e) => return Err(io(e.to_string())),
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io(format!("restricting: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "amicn-kms-store-{tag}-{}-{}",
            std::process::id(),
            crate::net::now_us()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn epochs_persist_and_names_never_change_content() {
        let d = tmp("epochs");
        let p = d.join("state/kms.db");
        {
            let mut s = KmsStore::open(Some(&p)).unwrap();
            s.put_pending(
                &PendingJoin {
                    meter: 4,
                    user_key: Zeroizing::new([7; 32]),
                    projects: vec!["p1".into()],
                },
                1,
            )
            .unwrap();
            s.put_staged(9, &StagedOp::Move(vec!["p2".into()])).unwrap();
            s.commit_epoch(&EpochWrite {
                epoch: 1,
                graph_image: Some(b"image-1"),
                journal_entry: b"j1",
                published: &[(b"n1".to_vec(), b"w1".to_vec())],
                joined: &[(4, 10)],
                departed: &[],
                summary_json: "{}",
            })
            .unwrap();
            let bad = s.commit_epoch(&EpochWrite {
                epoch: 2,
                graph_image: None,
                journal_entry: b"j2",
                published: &[
                    (b"n2".to_vec(), b"w2".to_vec()),
                    (b"n1".to_vec(), b"other".to_vec()),
                ],
                joined: &[],
                departed: &[],
                summary_json: "{}",
            });
            assert!(matches!(bad, Err(AmiError::State { .. })));
            s.add_revocation(3, 55, "/u/ami/operator").unwrap();
            s.entitle(&[(4, vec!["p1".into(), "p2".into()])], &[], "/u/ami/dr", 2)
                .unwrap();
        }
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let s = KmsStore::open(Some(&p)).unwrap();
        assert_eq!(&s.graph_image().unwrap().unwrap()[..], b"image-1");
        assert!(
            s.journal().unwrap().is_empty(),
            "the image of epoch 1 covers its entry"
        );
        assert_eq!(s.published().unwrap(), vec![b"w1".to_vec()]);
        assert!(
            s.published_wire(b"n2").unwrap().is_none(),
            "the refused epoch left nothing"
        );
        assert!(s.pending().unwrap().is_empty());
        assert!(s.staged().unwrap().is_empty());
        assert_eq!(s.member_since().unwrap().get(&4), Some(&10));
        assert_eq!(s.revocations().unwrap().get(&3), Some(&55));
        assert_eq!(s.entitlements().unwrap()[&4], vec!["p1", "p2"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn symlinks_and_damaged_files_are_refused_with_the_path() {
        let d = tmp("bad");
        let target = d.join("elsewhere.db");
        std::fs::write(&target, b"").unwrap();
        let link = d.join("kms.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = KmsStore::open(Some(&link)).unwrap_err().to_string();
        assert!(e.contains("kms.db") && e.contains("symbolic link"), "{e}");
        let junk = d.join("junk.db");
        std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
        let e = KmsStore::open(Some(&junk)).unwrap_err().to_string();
        assert!(e.contains("junk.db"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
