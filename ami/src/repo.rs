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
//! Two engines keep the same schema and behaviour: SQLite (bundled, the zero-set-up default:
//! a file path) and PostgreSQL (a `postgres://` URL), whose `bytea` comparison is the same
//! `memcmp`, for data sets that outgrow one machine.
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`, PostgreSQL with its default
//! synchronous commit; either way an insert is acknowledged only after its transaction is on
//! disk, so a SIGKILL (or power loss) never loses an acknowledged Data. WAL keeps readers (the
//! serving path) from blocking on a writer in another process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{AmiError, Result};
use crate::net::now_ms;
use crate::pg::Pg;

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data (
    name BLOB PRIMARY KEY,
    wire BLOB NOT NULL,
    freshness_ms INTEGER,
    inserted_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data (
    name BYTEA PRIMARY KEY,
    wire BYTEA NOT NULL,
    freshness_ms BIGINT,
    inserted_ms BIGINT NOT NULL
);
";

/// Rows per PostgreSQL INSERT statement (4 parameters each, well below the 65,535 limit).
const PG_ROWS_PER_STATEMENT: usize = 500;

/// Which Data a CanBePrefix Interest gets when several lie under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMatch {
    /// The first in canonical order.
    First,
    /// The last in canonical order (the newest version of a versioned object).
    Last,
}

/// Counts of what the repository holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoStats {
    /// Data held.
    pub objects: u64,
    /// Bytes of Data held.
    pub bytes: u64,
}

enum Engine {
    Sqlite(Mutex<Connection>),
    Postgres(Box<Mutex<Pg>>),
}

/// The repository's storage (see the module documentation).
pub struct RepoStore {
    /// The file, or the URL without its password.
    target: PathBuf,
    engine: Engine,
}

impl std::fmt::Debug for RepoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoStore")
            .field("target", &self.target)
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

/// Whether `target` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// `target` (a path or URL) with any password replaced, for messages and logs.
pub fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &target[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &target[..s + 3], &target[at..]),
                None => target.to_string(),
            }
        }
        _ => target.to_string(),
    }
}

/// A lookup's SQL (positional `$n` parameters in order of appearance, which both engines
/// bind) and whether it binds the range end and the time.
struct Lookup {
    sql: &'static str,
    end: Option<Vec<u8>>,
    now: Option<i64>,
}

/// The SQL of a lookup: exact or by prefix (first or last), with or without an upper bound,
/// with or without the freshness condition.
fn lookup_sql(prefix: Option<PrefixMatch>, bounded: bool, fresh: bool) -> String {
    let mut sql = String::from("SELECT wire FROM data WHERE ");
    let mut n = 2;
    match prefix {
        None => sql.push_str("name = $1"),
        Some(_) => {
            sql.push_str("name >= $1");
            if bounded {
                sql.push_str(" AND name < $2");
                n = 3;
            }
        }
    }
    if fresh {
        sql.push_str(&format!(
            " AND freshness_ms IS NOT NULL AND inserted_ms + freshness_ms > ${n}"
        ));
    }
    match prefix {
        Some(PrefixMatch::First) => sql.push_str(" ORDER BY name ASC LIMIT 1"),
        Some(PrefixMatch::Last) => sql.push_str(" ORDER BY name DESC LIMIT 1"),
        None => {}
    }
    sql
}

fn lookup(key: &[u8], prefix: Option<PrefixMatch>, fresh: bool) -> Lookup {
    // Built once: the serving path looks up one of these for every Interest.
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = SQL.get_or_init(|| {
        let mut v = Vec::with_capacity(12);
        for p in [None, Some(PrefixMatch::First), Some(PrefixMatch::Last)] {
            for bounded in [false, true] {
                for fresh in [false, true] {
                    v.push(lookup_sql(p, bounded, fresh));
                }
            }
        }
        v
    });
    let end = prefix.and_then(|_| successor(key));
    let p = match prefix {
        None => 0,
        Some(PrefixMatch::First) => 1,
        Some(PrefixMatch::Last) => 2,
    };
    let i = p * 4 + usize::from(end.is_some()) * 2 + usize::from(fresh);
    Lookup {
        sql: &table[i],
        end,
        now: fresh.then(|| now_ms() as i64),
    }
}

/// Writes `rows` (name key, freshness) with their `wires`, in `order`, as one transaction of
/// multi-row statements.
fn pg_insert(
    client: &mut postgres::Client,
    rows: &[(Vec<u8>, Option<i64>)],
    wires: &[Bytes],
    order: &[usize],
    now: i64,
) -> std::result::Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    for chunk in order.chunks(PG_ROWS_PER_STATEMENT) {
        let mut sql =
            String::from("INSERT INTO data (name, wire, freshness_ms, inserted_ms) VALUES ");
        sql.push_str(&crate::pg::placeholders(chunk.len(), 4));
        sql.push_str(
            " ON CONFLICT (name) DO UPDATE SET wire = EXCLUDED.wire, \
             freshness_ms = EXCLUDED.freshness_ms, inserted_ms = EXCLUDED.inserted_ms",
        );
        let wire_refs: Vec<&[u8]> = chunk.iter().map(|i| wires[*i].as_ref()).collect();
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            Vec::with_capacity(chunk.len() * 4);
        for (k, i) in chunk.iter().enumerate() {
            params.push(&rows[*i].0);
            params.push(&wire_refs[k]);
            params.push(&rows[*i].1);
            params.push(&now);
        }
        tx.execute(sql.as_str(), &params)?;
    }
    tx.commit()
}

impl RepoStore {
    /// Opens (creating) the repository: a SQLite file path, or a `postgres://` URL. A file
    /// that is not a repository, or a server that cannot be reached, gives an error naming it.
    pub fn open(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref();
        let text = target.to_string_lossy().into_owned();
        if is_postgres_url(&text) {
            return Self::open_postgres(&text);
        }
        let path = target.to_path_buf();
        let state = |why: String| AmiError::State {
            path: path.clone(),
            why,
        };
        let conn = Connection::open(&path).map_err(|e| state(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -65536;",
        )
        .and_then(|()| conn.execute_batch(SQLITE_SCHEMA))
        .map_err(|e| state(format!("not a usable repository database: {e}")))?;
        Ok(RepoStore {
            target: path,
            engine: Engine::Sqlite(Mutex::new(conn)),
        })
    }

    fn open_postgres(url: &str) -> Result<Self> {
        let target = PathBuf::from(redact(url));
        let state = |why: String| AmiError::State {
            path: target.clone(),
            why,
        };
        let mut client = Pg::connect(url).map_err(|e| state(format!("cannot connect: {e}")))?;
        client
            .with(|c| c.batch_execute(POSTGRES_SCHEMA))
            .map_err(|e| state(format!("not a usable repository database: {e}")))?;
        Ok(RepoStore {
            target,
            engine: Engine::Postgres(Box::new(Mutex::new(client))),
        })
    }

    /// Which engine holds the data: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> AmiError {
        AmiError::State {
            path: self.target.clone(),
            why: e.to_string(),
        }
    }

    /// Stores encoded Data packets (each checked to decode) in one transaction; a Data under a
    /// name already held replaces it. Returns how many were stored, after the commit.
    pub fn insert(&self, wires: &[Bytes]) -> Result<usize> {
        let mut rows = Vec::with_capacity(wires.len());
        for w in wires {
            let d = Data::decode(w.clone())?;
            rows.push((
                key_of(&d.name),
                d.meta_info.freshness_period_ms.map(|f| f as i64),
            ));
        }
        let now = now_ms() as i64;
        match &self.engine {
            Engine::Sqlite(c) => {
                let mut conn = c.lock().unwrap_or_else(|e| e.into_inner());
                let tx = conn.transaction().map_err(|e| self.err(e))?;
                {
                    let mut st = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO data (name, wire, freshness_ms, inserted_ms) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .map_err(|e| self.err(e))?;
                    for ((key, fresh), w) in rows.iter().zip(wires) {
                        st.execute(rusqlite::params![key, w.as_ref(), fresh, now])
                            .map_err(|e| self.err(e))?;
                    }
                }
                tx.commit().map_err(|e| self.err(e))?;
            }
            Engine::Postgres(c) => {
                // Multi-row statements (one round trip per 500 Data). A statement may not touch
                // a row twice, so of repeated names within the batch the last one counts, as it
                // would have one by one.
                let mut last: std::collections::HashMap<&[u8], usize> =
                    std::collections::HashMap::with_capacity(rows.len());
                for (i, (key, _)) in rows.iter().enumerate() {
                    last.insert(key.as_slice(), i);
                }
                let order: Vec<usize> = (0..rows.len())
                    .filter(|i| last.get(rows[*i].0.as_slice()) == Some(i))
                    .collect();
                let mut client = c.lock().unwrap_or_else(|e| e.into_inner());
                client
                    .with(|client| pg_insert(client, &rows, wires, &order, now))
                    .map_err(|e| self.err(e))?;
            }
        }
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
        let prefix = (interest.can_be_prefix && digest.is_none()).then_some(choice);
        let q = lookup(&key, prefix, interest.must_be_fresh);
        let wire: Option<Vec<u8>> = match &self.engine {
            Engine::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                let mut st = conn.prepare_cached(q.sql).map_err(|e| self.err(e))?;
                let r = match (&q.end, q.now) {
                    (Some(e), Some(n)) => st.query_row(rusqlite::params![key, e, n], |r| r.get(0)),
                    (Some(e), None) => st.query_row(rusqlite::params![key, e], |r| r.get(0)),
                    (None, Some(n)) => st.query_row(rusqlite::params![key, n], |r| r.get(0)),
                    (None, None) => st.query_row(rusqlite::params![key], |r| r.get(0)),
                };
                r.optional().map_err(|e| self.err(e))?
            }
            Engine::Postgres(c) => {
                let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&key];
                if let Some(e) = &q.end {
                    params.push(e);
                }
                if let Some(n) = &q.now {
                    params.push(n);
                }
                c.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .with_prepared(q.sql, |c, st| c.query_opt(st, &params))
                    .map_err(|e| self.err(e))?
                    .map(|row| row.get::<_, Vec<u8>>(0))
            }
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
        let end = successor(&key);
        let n = match (&self.engine, &end) {
            (Engine::Sqlite(c), Some(e)) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .execute(
                    "DELETE FROM data WHERE name >= $1 AND name < $2",
                    rusqlite::params![key, e],
                )
                .map_err(|e| self.err(e))?,
            (Engine::Sqlite(c), None) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .execute("DELETE FROM data WHERE name >= $1", rusqlite::params![key])
                .map_err(|e| self.err(e))?,
            (Engine::Postgres(c), Some(e)) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .with(|c| {
                    c.execute(
                        "DELETE FROM data WHERE name >= $1 AND name < $2",
                        &[&key, e],
                    )
                })
                .map_err(|e| self.err(e))? as usize,
            (Engine::Postgres(c), None) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .with(|c| c.execute("DELETE FROM data WHERE name >= $1", &[&key]))
                .map_err(|e| self.err(e))? as usize,
        };
        Ok(n)
    }

    /// Objects and bytes held.
    pub fn stats(&self) -> Result<RepoStats> {
        let sql = "SELECT COUNT(*), COALESCE(SUM(LENGTH(wire)), 0) FROM data";
        let (objects, bytes): (i64, i64) = match &self.engine {
            Engine::Sqlite(c) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?,
            Engine::Postgres(c) => {
                let row = c
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .with(|c| {
                        c.query_one(
                            "SELECT COUNT(*)::BIGINT, COALESCE(SUM(LENGTH(wire)), 0)::BIGINT \
                             FROM data",
                            &[],
                        )
                    })
                    .map_err(|e| self.err(e))?;
                (row.get(0), row.get(1))
            }
        };
        Ok(RepoStats {
            objects: objects as u64,
            bytes: bytes as u64,
        })
    }

    /// The engine's plan for an exact-name lookup (to show it uses the primary key, not a
    /// scan).
    pub fn exact_lookup_plan(&self) -> Result<String> {
        match &self.engine {
            Engine::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                let mut st = conn
                    .prepare("EXPLAIN QUERY PLAN SELECT wire FROM data WHERE name = $1")
                    .map_err(|e| self.err(e))?;
                let rows = st
                    .query_map(rusqlite::params![Vec::<u8>::new()], |r| {
                        r.get::<_, String>(3)
                    })
                    .map_err(|e| self.err(e))?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(r.map_err(|e| self.err(e))?);
                }
                Ok(out.join("; "))
            }
            Engine::Postgres(c) => {
                let rows = c
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .with(|c| {
                        c.query(
                            "EXPLAIN SELECT wire FROM data WHERE name = '\\x0801'::bytea",
                            &[],
                        )
                    })
                    .map_err(|e| self.err(e))?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        }
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

    /// Where a test's repository lives; removed when dropped.
    enum Place {
        File(PathBuf),
        // Dropped after the store (declaration order of the tuple): its connection goes first.
        Database(#[allow(dead_code)] crate::pg::TestDatabase),
    }

    impl Drop for Place {
        fn drop(&mut self) {
            if let Place::File(p) = self {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn sqlite(tag: &str) -> (RepoStore, Place) {
        let p = std::env::temp_dir().join(format!(
            "amicn-repo-{tag}-{}-{}.db",
            std::process::id(),
            crate::net::now_us()
        ));
        (RepoStore::open(&p).unwrap(), Place::File(p))
    }

    /// A repository on each engine: SQLite always, PostgreSQL when `AMICN_TEST_PG_URL` names a
    /// server (`scripts/test` starts one; it is required there).
    fn stores(tag: &str) -> Vec<(RepoStore, Place)> {
        let mut out = vec![sqlite(tag)];
        if let Some(db) = crate::pg::TestDatabase::create(tag) {
            out.push((RepoStore::open(&db.url).unwrap(), Place::Database(db)));
        }
        out
    }

    fn interest(uri: &str, prefix: bool, fresh: bool) -> Interest {
        let mut i = Interest::new(Name::from_uri(uri).unwrap());
        i.can_be_prefix = prefix;
        i.must_be_fresh = fresh;
        i
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://ami:s3cret@db.lab/x"),
            "postgres://ami:***@db.lab/x"
        );
        assert_eq!(redact("postgres://ami@db.lab/x"), "postgres://ami@db.lab/x");
        assert_eq!(redact("/var/lib/repo.db"), "/var/lib/repo.db");
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
        for (s, _place) in stores("ops") {
            exact_prefix_fresh_digest_and_delete_on(&s);
        }
    }

    fn exact_prefix_fresh_digest_and_delete_on(s: &RepoStore) {
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
        // The same name twice in one batch: the later Data counts.
        let a = data("/r/twice", Some(1));
        let b = data("/r/twice", Some(2));
        s.insert(&[a, b.clone()]).unwrap();
        assert_eq!(
            s.get(&interest("/r/twice", false, false), PrefixMatch::Last)
                .unwrap(),
            Some(b)
        );
        assert_eq!(
            s.delete_prefix(&Name::from_uri("/r/twice").unwrap())
                .unwrap(),
            1
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
                .is_none(),
            "{}",
            s.engine()
        );
    }

    #[test]
    fn exact_lookups_use_the_primary_key() {
        for (s, _place) in stores("plan") {
            if s.engine() == "postgres" {
                // The planner scans tiny tables; with rows and statistics it uses the key.
                let wires: Vec<Bytes> =
                    (0..5_000).map(|k| data(&format!("/p/{k}"), None)).collect();
                s.insert(&wires).unwrap();
                if let Engine::Postgres(c) = &s.engine {
                    c.lock()
                        .unwrap()
                        .with(|c| c.batch_execute("ANALYZE data"))
                        .unwrap();
                }
                let plan = s.exact_lookup_plan().unwrap();
                assert!(plan.contains("Index"), "{plan}");
                assert!(!plan.contains("Seq Scan"), "{plan}");
            } else {
                let plan = s.exact_lookup_plan().unwrap();
                assert!(plan.contains("PRIMARY KEY"), "{plan}");
                assert!(!plan.contains("SCAN"), "{plan}");
            }
        }
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
