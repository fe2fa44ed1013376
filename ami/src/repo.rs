//! A durable named-data repository: every Data it holds, served byte for byte as it was signed.
//!
//! Data live in one SQLite table keyed by the Name's TLV-VALUE (the concatenated component
//! TLVs). SQLite compares BLOBs with `memcmp`, and for NDN names that byte order *is* the
//! canonical order: components compare by TLV-TYPE, then TLV-LENGTH, then value, and both TYPE
//! and LENGTH are VAR-NUMBERs whose encodings sort like the numbers they encode (1-byte values
//! below 253, then 0xFD + 2 bytes, 0xFE + 4, 0xFF + 8, each big-endian); a name sorts before
//! every longer name it is a prefix of. So an exact name is one primary-key lookup and the
//! names under a prefix are one index range `[prefix, successor(prefix))`, the first or the
//! last of it in canonical order without a scan.
//!
//! Durability: WAL with `synchronous = FULL` — an insert is acknowledged only after its
//! transaction is on disk, so a SIGKILL (or power loss) never loses an acknowledged Data; WAL
//! keeps readers (the serving path) from blocking on the writer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{AmiError, Result};
use crate::net::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data (
    name BLOB PRIMARY KEY,
    wire BLOB NOT NULL,
    freshness_ms INTEGER,
    inserted_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Which Data a CanBePrefix Interest gets when several lie under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMatch {
    /// The first in canonical order.
    First,
    /// The last in canonical order (the newest version of a versioned object).
    Last,
}

/// Counts of what the repository holds and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoStats {
    /// Data held.
    pub objects: u64,
    /// Bytes of Data held.
    pub bytes: u64,
}

/// The repository's storage (see the module documentation).
pub struct RepoStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for RepoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The Name TLV-VALUE of `name`: its components' TLVs, the repository's key.
fn key_of(name: &Name) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for c in name.components() {
        c.encode(&mut out);
    }
    out.to_vec()
}

/// The smallest byte string greater than every string starting with `p` (`None`: no bound).
fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

impl RepoStore {
    /// Opens (creating) the repository at `path`. A file that is not a repository gives an
    /// error naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let state = |why: String| AmiError::State {
            path: path.clone(),
            why,
        };
        let conn = Connection::open(&path).map_err(|e| state(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .and_then(|()| conn.execute_batch(SCHEMA))
        .map_err(|e| state(format!("not a usable repository database: {e}")))?;
        Ok(RepoStore {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> AmiError {
        AmiError::State {
            path: self.path.clone(),
            why: e.to_string(),
        }
    }

    /// Stores encoded Data packets (each checked to decode) in one transaction; a Data under a
    /// name already held replaces it. Returns how many were stored, after the commit.
    pub fn insert(&self, wires: &[Bytes]) -> Result<usize> {
        let mut rows = Vec::with_capacity(wires.len());
        for w in wires {
            let d = Data::decode(w.clone())?;
            rows.push((key_of(&d.name), d.meta_info.freshness_period_ms));
        }
        let now = now_ms() as i64;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO data (name, wire, freshness_ms, inserted_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.err(e))?;
            for ((key, fresh), w) in rows.iter().zip(wires) {
                st.execute(params![key, w.as_ref(), fresh.map(|f| f as i64), now])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rows.len())
    }

    /// The Data that answers `interest`: exact name (a trailing implicit digest must match),
    /// or with CanBePrefix the first or last under its name; MustBeFresh skips Data whose
    /// FreshnessPeriod has run out since it was stored.
    pub fn get(&self, interest: &Interest, choice: PrefixMatch) -> Result<Option<Bytes>> {
        let mut name = interest.name.clone();
        let digest = match name.last() {
            Some(c) if c.is_implicit_digest() => {
                let d = c.value().to_vec();
                name = name.prefix(name.len() - 1);
                Some(d)
            }
            _ => None,
        };
        let key = key_of(&name);
        let now = now_ms() as i64;
        let fresh = if interest.must_be_fresh {
            "AND freshness_ms IS NOT NULL AND inserted_ms + freshness_ms > ?2"
        } else {
            "AND ?2 = ?2"
        };
        let conn = self.conn();
        let wire: Option<Vec<u8>> = if interest.can_be_prefix && digest.is_none() {
            let order = match choice {
                PrefixMatch::First => "ASC",
                PrefixMatch::Last => "DESC",
            };
            match successor(&key) {
                Some(end) => conn
                    .prepare_cached(&format!(
                        "SELECT wire FROM data WHERE name >= ?1 AND name < ?3 {fresh} \
                         ORDER BY name {order} LIMIT 1"
                    ))
                    .and_then(|mut s| {
                        s.query_row(params![key, now, end], |r| r.get(0)).optional()
                    }),
                None => conn
                    .prepare_cached(&format!(
                        "SELECT wire FROM data WHERE name >= ?1 {fresh} ORDER BY name {order} LIMIT 1"
                    ))
                    .and_then(|mut s| s.query_row(params![key, now], |r| r.get(0)).optional()),
            }
            .map_err(|e| self.err(e))?
        } else {
            conn.prepare_cached(&format!("SELECT wire FROM data WHERE name = ?1 {fresh}"))
                .and_then(|mut s| s.query_row(params![key, now], |r| r.get(0)).optional())
                .map_err(|e| self.err(e))?
        };
        let Some(wire) = wire else {
            return Ok(None);
        };
        let wire = Bytes::from(wire);
        if let Some(d) = digest {
            let data = Data::decode(wire.clone())?;
            if data.implicit_digest()[..] != d[..] {
                return Ok(None);
            }
        }
        Ok(Some(wire))
    }

    /// Deletes every Data under `prefix`; returns how many.
    pub fn delete_prefix(&self, prefix: &Name) -> Result<usize> {
        let key = key_of(prefix);
        let conn = self.conn();
        let n = match successor(&key) {
            Some(end) => conn.execute(
                "DELETE FROM data WHERE name >= ?1 AND name < ?2",
                params![key, end],
            ),
            None => conn.execute("DELETE FROM data WHERE name >= ?1", params![key]),
        }
        .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Objects and bytes held.
    pub fn stats(&self) -> Result<RepoStats> {
        let conn = self.conn();
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(wire)), 0) FROM data",
            [],
            |r| {
                Ok(RepoStats {
                    objects: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                })
            },
        )
        .map_err(|e| self.err(e))
    }

    /// SQLite's plan for an exact-name lookup (to show it uses the primary key, not a scan).
    pub fn exact_lookup_plan(&self) -> Result<String> {
        let conn = self.conn();
        let mut st = conn
            .prepare("EXPLAIN QUERY PLAN SELECT wire FROM data WHERE name = ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![Vec::<u8>::new()], |r| r.get::<_, String>(3))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| self.err(e))?);
        }
        Ok(out.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_tlv::Component;

    fn data(uri: &str, fresh: Option<u64>) -> Bytes {
        let mut d = Data::new(Name::from_uri(uri).unwrap(), Bytes::from(uri.to_string()));
        d.meta_info.freshness_period_ms = fresh;
        d.sign_digest_sha256()
    }

    fn store(tag: &str) -> (RepoStore, PathBuf) {
        let p = std::env::temp_dir().join(format!(
            "amicn-repo-{tag}-{}-{}.db",
            std::process::id(),
            crate::net::now_us()
        ));
        (RepoStore::open(&p).unwrap(), p)
    }

    fn interest(uri: &str, prefix: bool, fresh: bool) -> Interest {
        let mut i = Interest::new(Name::from_uri(uri).unwrap());
        i.can_be_prefix = prefix;
        i.must_be_fresh = fresh;
        i
    }

    #[test]
    fn byte_order_of_keys_is_canonical_order() {
        let names = [
            "/a",
            "/a/b",
            "/a/%FF",
            "/a/%00%00",
            "/b",
            "/a/seg=1",
            "/a/seg=300",
            "/a/v=2",
            "/a/v=10",
            "/a/v=70000",
            "/a/300=x",
            "/a/1000=x",
        ];
        // The canonical order as NDN defines it: component by component, by TLV-TYPE, then
        // length, then value; a prefix sorts first.
        fn canonical(a: &Name, b: &Name) -> std::cmp::Ordering {
            for (x, y) in a.components().zip(b.components()) {
                let o = x
                    .typ()
                    .cmp(&y.typ())
                    .then(x.value().len().cmp(&y.value().len()))
                    .then(x.value().cmp(y.value()));
                if o.is_ne() {
                    return o;
                }
            }
            a.len().cmp(&b.len())
        }
        let mut by_key: Vec<Name> = names.iter().map(|u| Name::from_uri(u).unwrap()).collect();
        // Values longer than 252 bytes take a 3-byte TLV-LENGTH.
        for n in [10, 252, 253, 300] {
            by_key.push(Name::from_uri(&format!("/a/{}", "x".repeat(n))).unwrap());
        }
        let mut reference = by_key.clone();
        by_key.sort_by_key(key_of);
        reference.sort_by(canonical);
        assert_eq!(by_key, reference);
    }

    #[test]
    fn exact_prefix_fresh_digest_and_delete() {
        let (s, p) = store("ops");
        let wires: Vec<Bytes> = ["/r/x/v=1", "/r/x/v=2", "/r/x/v=10", "/r/y"]
            .iter()
            .map(|u| data(u, Some(60_000)))
            .collect();
        assert_eq!(s.insert(&wires).unwrap(), 4);
        s.insert(&[data("/r/stale", Some(0))]).unwrap();
        // Exact, byte for byte.
        assert_eq!(
            s.get(&interest("/r/x/v=2", false, false), PrefixMatch::Last)
                .unwrap(),
            Some(wires[1].clone())
        );
        assert_eq!(
            s.get(&interest("/r/x", false, false), PrefixMatch::Last)
                .unwrap(),
            None
        );
        // CanBePrefix: first and last in canonical order (v=10 after v=2).
        assert_eq!(
            s.get(&interest("/r/x", true, false), PrefixMatch::Last)
                .unwrap(),
            Some(wires[2].clone())
        );
        assert_eq!(
            s.get(&interest("/r/x", true, false), PrefixMatch::First)
                .unwrap(),
            Some(wires[0].clone())
        );
        // MustBeFresh skips Data whose freshness ran out.
        assert!(
            s.get(&interest("/r/stale", false, true), PrefixMatch::Last)
                .unwrap()
                .is_none()
        );
        assert!(
            s.get(&interest("/r/stale", false, false), PrefixMatch::Last)
                .unwrap()
                .is_some()
        );
        // A full name with the implicit digest: only the exact packet answers.
        let d = Data::decode(wires[3].clone()).unwrap();
        let full = d.full_name();
        let i = Interest::new(full);
        assert_eq!(
            s.get(&i, PrefixMatch::Last).unwrap(),
            Some(wires[3].clone())
        );
        let wrong = Name::from_uri("/r/y")
            .unwrap()
            .append(Component::implicit_sha256_digest([7; 32]));
        assert!(
            s.get(&Interest::new(wrong), PrefixMatch::Last)
                .unwrap()
                .is_none()
        );
        // Delete by prefix.
        assert_eq!(
            s.delete_prefix(&Name::from_uri("/r/x").unwrap()).unwrap(),
            3
        );
        assert_eq!(s.stats().unwrap().objects, 2);
        // Malformed input is refused, and nothing of the batch is stored.
        assert!(
            s.insert(&[data("/r/z", None), Bytes::from_static(b"\x06\x05junk")])
                .is_err()
        );
        assert!(
            s.get(&interest("/r/z", false, false), PrefixMatch::Last)
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn exact_lookups_use_the_primary_key() {
        let (s, p) = store("plan");
        let plan = s.exact_lookup_plan().unwrap();
        assert!(plan.contains("PRIMARY KEY"), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_file_that_is_not_a_repository_is_refused_with_its_name() {
        let p = std::env::temp_dir().join(format!("amicn-repo-junk-{}.db", std::process::id()));
        std::fs::write(&p, vec![0x5a; 8192]).unwrap();
        let e = RepoStore::open(&p).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        let _ = std::fs::remove_file(p);
    }
}
