//! Where the MDMS keeps readings: the decoded values beside the signed Data they arrived in.
//!
//! Three stores share one interface, [`ReadingStore`]: in memory (tests and the in-process
//! scenario), SQLite (bundled, the zero-set-up default: a file path) and PostgreSQL (a
//! `postgres://` URL) for deployments that outgrow one machine. [`open_reading_store`] picks
//! by the target's form.
//!
//! Both databases hold one table, `reading`, with the primary key (meter, t_us) and a second
//! index on t_us: one meter's readings over a time range ([`ReadingStore::meter_range`]) are a
//! range of the primary key, all meters' readings in an interval ([`ReadingStore::interval`])
//! a range of the time index; neither scans the table. A reading is stored when its
//! transaction commits, and the collector counts it only then.
//!
//! Meter events ([`crate::events`]) live beside the readings in a second table, `meter_event`,
//! keyed by (meter, seq), with the signed Data they arrived in.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{AmiError, Result};
use crate::events::{EventKind, MeterEvent, StoredEvent};
use crate::pg::Pg;
use crate::reading::Flags;
use crate::repo::{is_postgres_url, redact};

/// Rows per PostgreSQL INSERT statement (8 parameters each, well below the 65,535 limit).
const PG_ROWS_PER_STATEMENT: usize = 500;

/// A verified, decrypted reading as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReading {
    /// Meter id.
    pub meter: u32,
    /// Timestamp in the name, µs.
    pub t_us: u64,
    /// Active import energy register (1-0:1.8.0), Wh.
    pub energy_wh: u64,
    /// Instantaneous active power (1-0:1.7.0), W.
    pub power_w: u32,
    /// Quality flags of the interval (reserved bits as the meter sent them).
    pub flags: Flags,
    /// The user key (with epoch) it was encrypted under.
    pub key_name: String,
    /// When the collector stored it, µs.
    pub received_us: u64,
}

/// Where the collector keeps readings.
pub trait ReadingStore: Send {
    /// Stores `r` with the signed Data it came in (`wire`); `false` if a reading with the same
    /// meter and timestamp was already there (the stored one is kept).
    fn insert_wire(&mut self, r: &StoredReading, wire: &[u8]) -> Result<bool>;
    /// Stores readings with their signed Data as one transaction; returns for each whether it
    /// was new (of repeats within `rows`, the first is).
    fn insert_batch(&mut self, rows: &[(StoredReading, Vec<u8>)]) -> Result<Vec<bool>>;
    /// The stored reading of `meter` at `t_us`.
    fn get(&self, meter: u32, t_us: u64) -> Result<Option<StoredReading>>;
    /// The signed Data a stored reading arrived in, byte for byte (`None`: no such reading, or
    /// stored without it).
    fn signed_data(&self, meter: u32, t_us: u64) -> Result<Option<Vec<u8>>>;
    /// `meter`'s readings with `from_us <= t_us < to_us`, ascending.
    fn meter_range(&self, meter: u32, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>>;
    /// Every meter's readings with `from_us <= t_us < to_us`, by time then meter.
    fn interval(&self, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>>;
    /// Readings stored per meter, with the newest timestamp of each.
    fn per_meter(&self) -> Result<BTreeMap<u32, (u64, u64)>>;
    /// Number of stored readings.
    fn len(&self) -> Result<u64>;
    /// Stores a meter event with its signed Data; `false` if the meter's event with this
    /// sequence number was already there (the stored one is kept).
    fn insert_event(&mut self, e: &StoredEvent, wire: &[u8]) -> Result<bool>;
    /// Every stored event, by meter then sequence number.
    fn events(&self) -> Result<Vec<StoredEvent>>;

    /// Stores `r` without its signed Data.
    fn insert(&mut self, r: &StoredReading) -> Result<bool> {
        self.insert_wire(r, &[])
    }
    /// Whether a reading of `meter` at `t_us` is stored.
    fn contains(&self, meter: u32, t_us: u64) -> Result<bool> {
        Ok(self.get(meter, t_us)?.is_some())
    }
    /// The newest stored timestamp of every meter.
    fn newest(&self) -> Result<HashMap<u32, u64>> {
        Ok(self
            .per_meter()?
            .into_iter()
            .map(|(m, (_, t))| (m, t))
            .collect())
    }
    /// Every stored (meter, timestamp), ascending.
    fn keys(&self) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for meter in self.per_meter()?.into_keys() {
            out.extend(
                self.meter_range(meter, 0, u64::MAX)?
                    .into_iter()
                    .map(|r| (r.meter, r.t_us)),
            );
        }
        Ok(out)
    }
    /// Whether nothing is stored.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Opens the reading store at `target`: a `postgres://` URL, or a SQLite file (created if
/// missing).
pub fn open_reading_store(target: &str) -> Result<Box<dyn ReadingStore>> {
    Ok(if is_postgres_url(target) {
        Box::new(PostgresReadingStore::open(target)?)
    } else {
        Box::new(SqliteReadingStore::open(target)?)
    })
}

/// An in-memory reading store.
#[derive(Debug, Default)]
pub struct MemoryReadingStore {
    rows: BTreeMap<(u32, u64), (StoredReading, Vec<u8>)>,
    events: BTreeMap<(u32, u64), (StoredEvent, Vec<u8>)>,
}

impl ReadingStore for MemoryReadingStore {
    fn insert_wire(&mut self, r: &StoredReading, wire: &[u8]) -> Result<bool> {
        if self.rows.contains_key(&(r.meter, r.t_us)) {
            return Ok(false);
        }
        self.rows
            .insert((r.meter, r.t_us), (r.clone(), wire.to_vec()));
        Ok(true)
    }

    fn insert_batch(&mut self, rows: &[(StoredReading, Vec<u8>)]) -> Result<Vec<bool>> {
        rows.iter().map(|(r, w)| self.insert_wire(r, w)).collect()
    }

    fn get(&self, meter: u32, t_us: u64) -> Result<Option<StoredReading>> {
        Ok(self.rows.get(&(meter, t_us)).map(|(r, _)| r.clone()))
    }

    fn signed_data(&self, meter: u32, t_us: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .rows
            .get(&(meter, t_us))
            .and_then(|(_, w)| (!w.is_empty()).then(|| w.clone())))
    }

    fn meter_range(&self, meter: u32, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        if from_us >= to_us {
            return Ok(Vec::new());
        }
        Ok(self
            .rows
            .range((meter, from_us)..(meter, to_us))
            .map(|(_, (r, _))| r.clone())
            .collect())
    }

    fn interval(&self, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        let mut out: Vec<StoredReading> = self
            .rows
            .values()
            .filter(|(r, _)| (from_us..to_us).contains(&r.t_us))
            .map(|(r, _)| r.clone())
            .collect();
        out.sort_by_key(|r| (r.t_us, r.meter));
        Ok(out)
    }

    fn per_meter(&self) -> Result<BTreeMap<u32, (u64, u64)>> {
        let mut out = BTreeMap::new();
        for (meter, t) in self.rows.keys() {
            let e = out.entry(*meter).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(*t);
        }
        Ok(out)
    }

    fn len(&self) -> Result<u64> {
        Ok(self.rows.len() as u64)
    }

    fn insert_event(&mut self, e: &StoredEvent, wire: &[u8]) -> Result<bool> {
        let key = (e.event.meter, e.event.seq);
        if self.events.contains_key(&key) {
            return Ok(false);
        }
        self.events.insert(key, (e.clone(), wire.to_vec()));
        Ok(true)
    }

    fn events(&self) -> Result<Vec<StoredEvent>> {
        Ok(self.events.values().map(|(e, _)| e.clone()).collect())
    }
}

/// An event row: meter, seq, kind, t_us, clock step, received_us.
type RawEvent = (i64, i64, String, i64, Option<i64>, i64);

fn event_from(raw: RawEvent) -> std::result::Result<StoredEvent, String> {
    let (meter, seq, kind, t, step, received) = raw;
    Ok(StoredEvent {
        event: MeterEvent {
            meter: from_sql(meter, "meter id")?,
            seq: from_sql(seq, "event sequence number")?,
            kind: EventKind::from_label(&kind)
                .ok_or_else(|| format!("unknown event kind {kind:?}"))?,
            t_us: from_sql(t, "event time")?,
            clock_step_us: step,
        },
        received_us: from_sql(received, "event receive time")?,
    })
}

const EVENT_COLUMNS: &str = "meter, seq, kind, t_us, clock_step_us, received_us";

// Database integers are signed 64-bit; timestamps and registers fit (µs since 1970 < 2^63), and
// a value read back that does not fit is a corrupt row.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql<T: TryFrom<i64>>(v: i64, what: &str) -> std::result::Result<T, String> {
    T::try_from(v).map_err(|_| format!("stored {what} {v} is out of range"))
}

/// The columns every query reads, in [`row_from`] order.
const COLUMNS: &str = "meter, t_us, energy_wh, power_w, key_name, received_us, flags";

type RawRow = (i64, i64, i64, i64, String, i64, i64);

fn row_from(raw: RawRow) -> std::result::Result<StoredReading, String> {
    let (meter, t, energy, power, key_name, received, flags) = raw;
    Ok(StoredReading {
        meter: from_sql(meter, "meter id")?,
        t_us: from_sql(t, "timestamp")?,
        energy_wh: from_sql(energy, "energy register")?,
        power_w: from_sql(power, "power")?,
        key_name,
        received_us: from_sql(received, "receive time")?,
        flags: Flags(from_sql(flags, "flags")?),
    })
}

/// A SQLite reading store (one table, primary key meter + timestamp; `flags` holds the quality
/// flags, `wire` the signed Data). A database from before the `flags` column gains it, 0 for
/// the rows already there.
#[derive(Debug)]
pub struct SqliteReadingStore {
    path: PathBuf,
    conn: rusqlite::Connection,
}

/// Refuses a SQLite file shorter than its own header says, or not a whole number of pages:
/// SQLite reads pages lazily, so a file cut short (a bad copy, a full disk during a restore)
/// would otherwise open and fail, or quietly miss rows, only when the lost pages are read.
fn check_not_truncated(path: &Path) -> Result<()> {
    use std::io::Read;
    let damaged = |why: String| AmiError::State {
        path: path.to_path_buf(),
        why: format!("damaged: {why}"),
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(AmiError::State {
                path: path.to_path_buf(),
                why: e.to_string(),
            });
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(());
    }
    let mut header = [0u8; 100];
    if f.read_exact(&mut header).is_err() {
        return Err(damaged(format!(
            "{len} bytes is shorter than a SQLite header"
        )));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(AmiError::State {
            path: path.to_path_buf(),
            why: "not a usable reading database: no SQLite header".into(),
        });
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n => u64::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(damaged(format!("page size {page_size} in the header")));
    }
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    // The in-header size is valid when its version number matches the change counter. Pages
    // still in a write-ahead log (a checkpoint that could not finish, e.g. on a full disk)
    // may lie beyond the end of the file, so the size is only checked without one.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let valid = header[24..28] == header[92..96] && !wal_pending;
    if len % page_size != 0 || (valid && len < pages * page_size) {
        return Err(damaged(format!(
            "{len} bytes, but the header describes {pages} pages of {page_size} bytes \
             (truncated?)"
        )));
    }
    Ok(())
}

impl SqliteReadingStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_not_truncated(&path)?;
        let conn = rusqlite::Connection::open(&path).map_err(|e| AmiError::State {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Self::init(path, conn)
    }

    /// A database in memory.
    pub fn in_memory() -> Result<Self> {
        Self::init(
            PathBuf::from(":memory:"),
            rusqlite::Connection::open_in_memory()?,
        )
    }

    fn init(path: PathBuf, conn: rusqlite::Connection) -> Result<Self> {
        // WAL with synchronous = FULL: the WAL is fsynced at every commit, so a reading the
        // collector counts as stored survives a crash or power loss; a round's readings share
        // one transaction (one fsync), which is what makes this affordable at scale. The busy
        // timeout lets an operator's query run beside the collector.
        let store = SqliteReadingStore { path, conn };
        store
            .conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS reading (
                     meter INTEGER NOT NULL,
                     t_us INTEGER NOT NULL,
                     energy_wh INTEGER NOT NULL,
                     power_w INTEGER NOT NULL,
                     key_name TEXT NOT NULL,
                     received_us INTEGER NOT NULL,
                     wire BLOB,
                     flags INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (meter, t_us)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS reading_by_time ON reading (t_us);
                 CREATE TABLE IF NOT EXISTS meter_event (
                     meter INTEGER NOT NULL,
                     seq INTEGER NOT NULL,
                     kind TEXT NOT NULL,
                     t_us INTEGER NOT NULL,
                     clock_step_us INTEGER,
                     received_us INTEGER NOT NULL,
                     wire BLOB,
                     PRIMARY KEY (meter, seq)
                 ) WITHOUT ROWID;",
            )
            .map_err(|e| store.err(format!("not a usable reading database: {e}")))?;
        let has_flags = store
            .conn
            .prepare("SELECT 1 FROM pragma_table_info('reading') WHERE name = 'flags'")
            .and_then(|mut st| st.exists([]))
            .map_err(|e| store.err(e))?;
        if !has_flags {
            store
                .conn
                .execute_batch("ALTER TABLE reading ADD COLUMN flags INTEGER NOT NULL DEFAULT 0")
                .map_err(|e| store.err(e))?;
        }
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> AmiError {
        AmiError::State {
            path: self.path.clone(),
            why: e.to_string(),
        }
    }

    /// The engine's plan for `sql` (to show that a query uses an index, not a scan).
    pub fn plan(&self, sql: &str) -> Result<String> {
        let mut st = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(|e| self.err(e))?;
        let n = st.parameter_count();
        let params: Vec<i64> = vec![0; n];
        let rows = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| self.err(e))?);
        }
        Ok(out.join("; "))
    }

    fn select(&self, sql: &str, params: &[i64]) -> Result<Vec<StoredReading>> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(row_from(raw.map_err(|e| self.err(e))?).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }
}

const SQLITE_INSERT: &str = "INSERT OR IGNORE INTO reading
     (meter, t_us, energy_wh, power_w, key_name, received_us, wire, flags)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

fn sqlite_insert(
    st: &mut rusqlite::CachedStatement<'_>,
    r: &StoredReading,
    wire: &[u8],
) -> rusqlite::Result<bool> {
    let wire = (!wire.is_empty()).then_some(wire);
    let n = st.execute(rusqlite::params![
        r.meter,
        to_sql(r.t_us),
        to_sql(r.energy_wh),
        r.power_w,
        r.key_name,
        to_sql(r.received_us),
        wire,
        r.flags.bits()
    ])?;
    Ok(n == 1)
}

impl ReadingStore for SqliteReadingStore {
    fn insert_wire(&mut self, r: &StoredReading, wire: &[u8]) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached(SQLITE_INSERT)
            .map_err(|e| self.err(e))?;
        sqlite_insert(&mut st, r, wire).map_err(|e| self.err(e))
    }

    fn insert_batch(&mut self, rows: &[(StoredReading, Vec<u8>)]) -> Result<Vec<bool>> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| AmiError::State {
            path: path.clone(),
            why: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut out = Vec::with_capacity(rows.len());
        {
            let mut st = tx.prepare_cached(SQLITE_INSERT).map_err(err)?;
            for (r, wire) in rows {
                out.push(sqlite_insert(&mut st, r, wire).map_err(err)?);
            }
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn get(&self, meter: u32, t_us: u64) -> Result<Option<StoredReading>> {
        Ok(self
            .select(
                &format!("SELECT {COLUMNS} FROM reading WHERE meter = ?1 AND t_us = ?2"),
                &[i64::from(meter), to_sql(t_us)],
            )?
            .pop())
    }

    fn signed_data(&self, meter: u32, t_us: u64) -> Result<Option<Vec<u8>>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT wire FROM reading WHERE meter = ?1 AND t_us = ?2")
            .map_err(|e| self.err(e))?;
        let mut rows = st
            .query(rusqlite::params![meter, to_sql(t_us)])
            .map_err(|e| self.err(e))?;
        Ok(match rows.next().map_err(|e| self.err(e))? {
            Some(r) => r.get(0).map_err(|e| self.err(e))?,
            None => None,
        })
    }

    fn meter_range(&self, meter: u32, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM reading WHERE meter = ?1 AND t_us >= ?2 AND t_us < ?3 \
                 ORDER BY t_us"
            ),
            &[i64::from(meter), to_sql(from_us), to_sql(to_us)],
        )
    }

    fn interval(&self, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM reading WHERE t_us >= ?1 AND t_us < ?2 \
                 ORDER BY t_us, meter"
            ),
            &[to_sql(from_us), to_sql(to_us)],
        )
    }

    fn per_meter(&self) -> Result<BTreeMap<u32, (u64, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT meter, COUNT(*), MAX(t_us) FROM reading GROUP BY meter")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (m, c, t) = row.map_err(|e| self.err(e))?;
            out.insert(
                from_sql(m, "meter id").map_err(|e| self.err(e))?,
                (u64::try_from(c).unwrap_or(0), u64::try_from(t).unwrap_or(0)),
            );
        }
        Ok(out)
    }

    fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM reading", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn insert_event(&mut self, e: &StoredEvent, wire: &[u8]) -> Result<bool> {
        let wire = (!wire.is_empty()).then_some(wire);
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO meter_event \
                 (meter, seq, kind, t_us, clock_step_us, received_us, wire) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    e.event.meter,
                    to_sql(e.event.seq),
                    e.event.kind.label(),
                    to_sql(e.event.t_us),
                    e.event.clock_step_us,
                    to_sql(e.received_us),
                    wire
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn events(&self) -> Result<Vec<StoredEvent>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM meter_event ORDER BY meter, seq"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(event_from(raw.map_err(|e| self.err(e))?).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }
}

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reading (
    meter BIGINT NOT NULL,
    t_us BIGINT NOT NULL,
    energy_wh BIGINT NOT NULL,
    power_w BIGINT NOT NULL,
    key_name TEXT NOT NULL,
    received_us BIGINT NOT NULL,
    wire BYTEA,
    flags BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (meter, t_us)
);
CREATE INDEX IF NOT EXISTS reading_by_time ON reading (t_us);
CREATE TABLE IF NOT EXISTS meter_event (
    meter BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    t_us BIGINT NOT NULL,
    clock_step_us BIGINT,
    received_us BIGINT NOT NULL,
    wire BYTEA,
    PRIMARY KEY (meter, seq)
);
";

/// A PostgreSQL reading store: the SQLite store's table and behaviour on a server (PostgreSQL
/// has no unsigned integers, so meter ids, power and flags are BIGINT). Commits are synchronous
/// (the server's default), so a committed reading survives a crash of either side.
pub struct PostgresReadingStore {
    /// The URL without its password.
    target: PathBuf,
    conn: RefCell<Pg>,
}

impl std::fmt::Debug for PostgresReadingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReadingStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresReadingStore {
    /// Connects to the database at `url` and creates the table if needed.
    pub fn open(url: &str) -> Result<Self> {
        let target = PathBuf::from(redact(url));
        let state = |why: String| AmiError::State {
            path: target.clone(),
            why,
        };
        let mut conn = Pg::connect(url).map_err(|e| state(format!("cannot connect: {e}")))?;
        conn.with(|c| c.batch_execute(POSTGRES_SCHEMA))
            .map_err(|e| state(format!("not a usable reading database: {e}")))?;
        Ok(PostgresReadingStore {
            target,
            conn: RefCell::new(conn),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> AmiError {
        AmiError::State {
            path: self.target.clone(),
            why: e.to_string(),
        }
    }

    /// The engine's plan for `sql` with every parameter bound to 0.
    pub fn plan(&self, sql: &str, params: usize) -> Result<String> {
        let zeros = vec![0i64; params];
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = zeros
            .iter()
            .map(|z| z as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = self
            .conn
            .borrow_mut()
            .with(|c| c.query(format!("EXPLAIN {sql}").as_str(), &refs))
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Updates the planner's statistics (after a bulk load).
    pub fn analyze(&self) -> Result<()> {
        self.conn
            .borrow_mut()
            .with(|c| c.batch_execute("ANALYZE reading"))
            .map_err(|e| self.err(e))
    }

    fn select(&self, sql: &str, params: &[i64]) -> Result<Vec<StoredReading>> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = self
            .conn
            .borrow_mut()
            .with(|c| c.query(sql, &refs))
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                row_from((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                ))
                .map_err(|e| self.err(e))
            })
            .collect()
    }
}

/// Inserts `rows` in one transaction of multi-row statements; returns the (meter, t_us) keys
/// that were new.
fn pg_insert(
    client: &mut postgres::Client,
    rows: &[(StoredReading, Vec<u8>)],
) -> std::result::Result<std::collections::HashSet<(i64, i64)>, postgres::Error> {
    struct Row<'a> {
        meter: i64,
        t: i64,
        energy: i64,
        power: i64,
        key: &'a str,
        received: i64,
        wire: Option<&'a [u8]>,
        flags: i64,
    }
    let vals: Vec<Row<'_>> = rows
        .iter()
        .map(|(r, w)| Row {
            meter: i64::from(r.meter),
            t: to_sql(r.t_us),
            energy: to_sql(r.energy_wh),
            power: i64::from(r.power_w),
            key: &r.key_name,
            received: to_sql(r.received_us),
            wire: (!w.is_empty()).then_some(w.as_slice()),
            flags: i64::from(r.flags.bits()),
        })
        .collect();
    let mut new = std::collections::HashSet::new();
    let mut tx = client.transaction()?;
    for chunk in vals.chunks(PG_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO reading \
             (meter, t_us, energy_wh, power_w, key_name, received_us, wire, flags) VALUES {} \
             ON CONFLICT (meter, t_us) DO NOTHING RETURNING meter, t_us",
            crate::pg::placeholders(chunk.len(), 8)
        );
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            Vec::with_capacity(chunk.len() * 8);
        for v in chunk {
            params.extend([
                &v.meter as &(dyn postgres::types::ToSql + Sync),
                &v.t,
                &v.energy,
                &v.power,
                &v.key,
                &v.received,
                &v.wire,
                &v.flags,
            ]);
        }
        for r in tx.query(sql.as_str(), &params)? {
            new.insert((r.get(0), r.get(1)));
        }
    }
    tx.commit()?;
    Ok(new)
}

impl ReadingStore for PostgresReadingStore {
    fn insert_wire(&mut self, r: &StoredReading, wire: &[u8]) -> Result<bool> {
        Ok(self.insert_batch(&[(r.clone(), wire.to_vec())])?[0])
    }

    fn insert_batch(&mut self, rows: &[(StoredReading, Vec<u8>)]) -> Result<Vec<bool>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut new = self
            .conn
            .get_mut()
            .with(|c| pg_insert(c, rows))
            .map_err(|e| self.err(e))?;
        // A statement inserts the first of repeated keys and skips the rest.
        Ok(rows
            .iter()
            .map(|(r, _)| new.remove(&(i64::from(r.meter), to_sql(r.t_us))))
            .collect())
    }

    fn get(&self, meter: u32, t_us: u64) -> Result<Option<StoredReading>> {
        Ok(self
            .select(
                &format!("SELECT {COLUMNS} FROM reading WHERE meter = $1 AND t_us = $2"),
                &[i64::from(meter), to_sql(t_us)],
            )?
            .pop())
    }

    fn signed_data(&self, meter: u32, t_us: u64) -> Result<Option<Vec<u8>>> {
        let row = self
            .conn
            .borrow_mut()
            .with(|c| {
                c.query_opt(
                    "SELECT wire FROM reading WHERE meter = $1 AND t_us = $2",
                    &[&i64::from(meter), &to_sql(t_us)],
                )
            })
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    fn meter_range(&self, meter: u32, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM reading WHERE meter = $1 AND t_us >= $2 AND t_us < $3 \
                 ORDER BY t_us"
            ),
            &[i64::from(meter), to_sql(from_us), to_sql(to_us)],
        )
    }

    fn interval(&self, from_us: u64, to_us: u64) -> Result<Vec<StoredReading>> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM reading WHERE t_us >= $1 AND t_us < $2 \
                 ORDER BY t_us, meter"
            ),
            &[to_sql(from_us), to_sql(to_us)],
        )
    }

    fn per_meter(&self) -> Result<BTreeMap<u32, (u64, u64)>> {
        let rows = self
            .conn
            .borrow_mut()
            .with(|c| {
                c.query(
                    "SELECT meter, COUNT(*)::BIGINT, MAX(t_us) FROM reading GROUP BY meter",
                    &[],
                )
            })
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for r in rows {
            let (m, c, t): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            out.insert(
                from_sql(m, "meter id").map_err(|e| self.err(e))?,
                (u64::try_from(c).unwrap_or(0), u64::try_from(t).unwrap_or(0)),
            );
        }
        Ok(out)
    }

    fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .borrow_mut()
            .with(|c| c.query_one("SELECT COUNT(*)::BIGINT FROM reading", &[]))
            .map_err(|e| self.err(e))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn insert_event(&mut self, e: &StoredEvent, wire: &[u8]) -> Result<bool> {
        let (meter, seq, t, received) = (
            i64::from(e.event.meter),
            to_sql(e.event.seq),
            to_sql(e.event.t_us),
            to_sql(e.received_us),
        );
        let kind = e.event.kind.label();
        let wire = (!wire.is_empty()).then_some(wire);
        let n = self
            .conn
            .get_mut()
            .with(|c| {
                c.execute(
                    "INSERT INTO meter_event \
                     (meter, seq, kind, t_us, clock_step_us, received_us, wire) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (meter, seq) DO NOTHING",
                    &[
                        &meter,
                        &seq,
                        &kind,
                        &t,
                        &e.event.clock_step_us,
                        &received,
                        &wire,
                    ],
                )
            })
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn events(&self) -> Result<Vec<StoredEvent>> {
        let rows = self
            .conn
            .borrow_mut()
            .with(|c| {
                c.query(
                    format!("SELECT {EVENT_COLUMNS} FROM meter_event ORDER BY meter, seq").as_str(),
                    &[],
                )
            })
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                event_from((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                    .map_err(|e| self.err(e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pg::TestDatabase;

    fn r(meter: u32, t_us: u64) -> StoredReading {
        StoredReading {
            meter,
            t_us,
            energy_wh: 5,
            power_w: 6,
            flags: Flags((meter % 2) * 0x8000_0008),
            key_name: "/u/ami/meter/1/KEK/v=2".into(),
            received_us: 9,
        }
    }

    /// The behaviour every store shares.
    fn exercise(s: &mut dyn ReadingStore) {
        assert!(s.is_empty().unwrap());
        assert!(s.insert(&r(1, 100)).unwrap());
        assert!(
            !s.insert(&r(1, 100)).unwrap(),
            "same meter and timestamp is a duplicate"
        );
        assert!(s.insert(&r(1, 101)).unwrap());
        assert!(s.insert_wire(&r(2, 100), b"\x06\x01\x00").unwrap());
        assert_eq!(s.len().unwrap(), 3);
        assert!(s.contains(2, 100).unwrap());
        assert!(!s.contains(2, 101).unwrap());
        assert_eq!(s.get(1, 101).unwrap(), Some(r(1, 101)));
        assert_eq!(
            s.signed_data(2, 100).unwrap(),
            Some(b"\x06\x01\x00".to_vec())
        );
        assert_eq!(s.signed_data(1, 100).unwrap(), None);
        // A batch with a repeat inside it and one already stored: the first new copy counts.
        let batch = vec![
            (r(3, 50), b"\x06\x00".to_vec()),
            (r(1, 100), Vec::new()),
            (r(3, 50), Vec::new()),
            (r(3, 70), Vec::new()),
        ];
        assert_eq!(
            s.insert_batch(&batch).unwrap(),
            vec![true, false, false, true]
        );
        assert_eq!(s.signed_data(3, 50).unwrap(), Some(b"\x06\x00".to_vec()));
        // Ranges are half-open and ordered.
        let ts = |v: Vec<StoredReading>| v.iter().map(|r| (r.meter, r.t_us)).collect::<Vec<_>>();
        assert_eq!(
            ts(s.meter_range(1, 100, 102).unwrap()),
            [(1, 100), (1, 101)]
        );
        assert_eq!(ts(s.meter_range(1, 100, 101).unwrap()), [(1, 100)]);
        assert!(s.meter_range(1, 101, 100).unwrap().is_empty());
        assert_eq!(
            ts(s.interval(60, 101).unwrap()),
            [(3, 70), (1, 100), (2, 100)]
        );
        let per = s.per_meter().unwrap();
        assert_eq!(per[&1], (2, 101));
        assert_eq!(per[&3], (2, 70));
        assert_eq!(s.newest().unwrap()[&2], 100);
        // Values that need all 64 bits of the database's signed integers survive.
        let mut big = r(u32::MAX, 1_700_000_000_000_000);
        big.power_w = u32::MAX;
        big.flags = Flags(u32::MAX);
        assert!(s.insert(&big).unwrap());
        assert_eq!(s.get(u32::MAX, 1_700_000_000_000_000).unwrap(), Some(big));
        // Events: keyed by (meter, seq), listed by meter then seq, kinds and steps kept.
        let ev = |meter: u32, seq: u64, kind: EventKind, step: Option<i64>| StoredEvent {
            event: MeterEvent {
                meter,
                seq,
                kind,
                t_us: 1_700_000_000_000_000 + seq,
                clock_step_us: step,
            },
            received_us: 1_700_000_000_000_500,
        };
        assert!(s.events().unwrap().is_empty());
        assert!(
            s.insert_event(&ev(2, 1, EventKind::LastGasp, None), b"\x06\x00")
                .unwrap()
        );
        assert!(
            !s.insert_event(&ev(2, 1, EventKind::Restoration, None), &[])
                .unwrap()
        );
        assert!(
            s.insert_event(&ev(1, 9, EventKind::ClockAdjusted, Some(-7)), &[])
                .unwrap()
        );
        assert!(
            s.insert_event(&ev(2, 2, EventKind::Restoration, None), &[])
                .unwrap()
        );
        assert_eq!(
            s.events().unwrap(),
            vec![
                ev(1, 9, EventKind::ClockAdjusted, Some(-7)),
                ev(2, 1, EventKind::LastGasp, None),
                ev(2, 2, EventKind::Restoration, None),
            ]
        );
        // Events are not readings.
        assert_eq!(s.len().unwrap(), 6);
    }

    #[test]
    fn memory_store_behaves_like_the_databases() {
        exercise(&mut MemoryReadingStore::default());
    }

    #[test]
    fn sqlite_store_rejects_duplicates_and_persists() {
        exercise(&mut SqliteReadingStore::in_memory().unwrap());
        let dir = std::env::temp_dir().join(format!("amicn-mdms-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("readings.db");
        let _ = std::fs::remove_file(&path);
        {
            let mut s = SqliteReadingStore::open(&path).unwrap();
            assert!(s.insert(&r(7, 1_700_000_000_000_000)).unwrap());
        }
        let s = open_reading_store(path.to_str().unwrap()).unwrap();
        assert_eq!(
            s.get(7, 1_700_000_000_000_000).unwrap(),
            Some(r(7, 1_700_000_000_000_000))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn postgres_store_behaves_like_sqlite_and_persists() {
        let Some(db) = TestDatabase::create("readings") else {
            return;
        };
        {
            let mut s = open_reading_store(&db.url).unwrap();
            exercise(s.as_mut());
        }
        // Committed rows are there for the next connection.
        let s = PostgresReadingStore::open(&db.url).unwrap();
        assert_eq!(s.len().unwrap(), 6);
        assert_eq!(s.get(1, 101).unwrap(), Some(r(1, 101)));
        // And so are the meter_event rows, kinds and clock steps as written.
        let ev = s.events().unwrap();
        assert_eq!(
            ev.iter()
                .map(|e| (
                    e.event.meter,
                    e.event.seq,
                    e.event.kind,
                    e.event.clock_step_us
                ))
                .collect::<Vec<_>>(),
            vec![
                (1, 9, EventKind::ClockAdjusted, Some(-7)),
                (2, 1, EventKind::LastGasp, None),
                (2, 2, EventKind::Restoration, None),
            ]
        );
    }

    #[test]
    fn queries_use_indexes_not_scans() {
        let s = SqliteReadingStore::in_memory().unwrap();
        let range = s
            .plan("SELECT * FROM reading WHERE meter = ?1 AND t_us >= ?2 AND t_us < ?3")
            .unwrap();
        assert!(range.contains("PRIMARY KEY"), "{range}");
        let interval = s
            .plan("SELECT * FROM reading WHERE t_us >= ?1 AND t_us < ?2")
            .unwrap();
        assert!(interval.contains("reading_by_time"), "{interval}");
        for plan in [range, interval] {
            assert!(!plan.contains("SCAN"), "{plan}");
        }

        let Some(db) = TestDatabase::create("reading-plans") else {
            return;
        };
        let mut pg = PostgresReadingStore::open(&db.url).unwrap();
        // The planner scans tiny tables; with rows and statistics it uses the indexes.
        let rows: Vec<(StoredReading, Vec<u8>)> = (0..20_000u64)
            .map(|k| (r((k % 200) as u32, 1_000 + k / 200), Vec::new()))
            .collect();
        pg.insert_batch(&rows).unwrap();
        pg.analyze().unwrap();
        let range = pg
            .plan(
                "SELECT * FROM reading WHERE meter = $1 AND t_us >= $2 AND t_us < $3",
                3,
            )
            .unwrap();
        let interval = pg
            .plan("SELECT * FROM reading WHERE t_us >= $1 AND t_us < $2", 2)
            .unwrap();
        for plan in [range, interval] {
            assert!(plan.contains("Index"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
        }
    }

    #[test]
    fn sqlite_store_adds_the_flags_column_to_an_old_database() {
        let dir = std::env::temp_dir().join(format!("amicn-mdms-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("readings.db");
        let _ = std::fs::remove_file(&path);
        {
            // The schema before quality flags, with one row in it.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE reading (
                     meter INTEGER NOT NULL, t_us INTEGER NOT NULL,
                     energy_wh INTEGER NOT NULL, power_w INTEGER NOT NULL,
                     key_name TEXT NOT NULL, received_us INTEGER NOT NULL, wire BLOB,
                     PRIMARY KEY (meter, t_us)
                 ) WITHOUT ROWID;
                 INSERT INTO reading VALUES (2, 100, 5, 6, '/u/ami/meter/1/KEK/v=2', 9, x'06');",
            )
            .unwrap();
        }
        let mut s = SqliteReadingStore::open(&path).unwrap();
        assert_eq!(s.get(2, 100).unwrap(), Some(r(2, 100)));
        assert_eq!(s.signed_data(2, 100).unwrap(), Some(vec![6]));
        assert!(s.insert_wire(&r(3, 100), b"\x06\x00").unwrap());
        assert_eq!(s.get(3, 100).unwrap().unwrap().flags.bits(), 0x8000_0008);
        drop(s);
        // Opening again finds the column and leaves it alone.
        let s = SqliteReadingStore::open(&path).unwrap();
        assert_eq!(s.get(3, 100).unwrap(), Some(r(3, 100)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("amicn-mdms-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("readings.db");
        std::fs::write(&path, vec![0x5Au8; 8192]).unwrap();
        let e = open_reading_store(path.to_str().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("readings.db"), "{e}");
        assert!(e.contains("not a usable reading database"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
