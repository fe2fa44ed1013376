//! PostgreSQL plumbing shared by the repository ([`crate::repo`]) and the MDMS reading store
//! ([`crate::store`]).
//!
//! The `postgres` client is synchronous: every call drives a private tokio runtime with
//! `block_on`, and dropping the client drops that runtime. Both panic when they happen on a
//! thread that is driving asynchronous tasks, which is where the serving path and the collector
//! call their stores. [`Pg`] runs each call (and the final drop) where blocking is allowed:
//! directly outside any runtime, through `block_in_place` on a multi-threaded runtime, and on
//! a scoped thread of its own on a current-thread runtime.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` where it may block the thread (see the module documentation).
pub(crate) fn run_blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::CurrentThread => {
            std::thread::scope(|s| match s.spawn(f).join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        }
        Ok(_) => tokio::task::block_in_place(f),
    }
}

/// `($1, $2, …), (…)`: the placeholders of a multi-row VALUES list, `cols` per row.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * cols + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// A PostgreSQL connection usable from synchronous and asynchronous callers alike, with the
/// statements it has prepared.
pub(crate) struct Pg {
    client: Option<postgres::Client>,
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
}

impl Pg {
    /// Connects to `url` (no TLS: the server is local or reached over a trusted network).
    pub(crate) fn connect(url: &str) -> std::result::Result<Self, postgres::Error> {
        run_blocking(|| postgres::Client::connect(url, postgres::NoTls)).map(|c| Pg {
            client: Some(c),
            prepared: std::collections::HashMap::new(),
        })
    }

    /// Runs `f` with the connection, where blocking is allowed.
    pub(crate) fn with<T: Send>(&mut self, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        // `Some` from `connect` until `drop`.
        let client = self
            .client
            .as_mut()
            .expect("connection present until dropped");
        run_blocking(|| f(client))
    }

    /// Runs `f` with the connection and `sql` prepared on it (once per connection: a query
    /// by text would be parsed and planned on every call, one more round trip each).
    pub(crate) fn with_prepared<T: Send>(
        &mut self,
        sql: &'static str,
        f: impl FnOnce(
            &mut postgres::Client,
            &postgres::Statement,
        ) -> std::result::Result<T, postgres::Error>
        + Send,
    ) -> std::result::Result<T, postgres::Error> {
        let client = self
            .client
            .as_mut()
            .expect("connection present until dropped");
        let prepared = &mut self.prepared;
        run_blocking(move || {
            let st = match prepared.get(sql) {
                Some(st) => st.clone(),
                None => {
                    let st = client.prepare(sql)?;
                    prepared.insert(sql, st.clone());
                    st
                }
            };
            f(client, &st)
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.prepared.clear();
            run_blocking(move || drop(c));
        }
    }
}

/// A throwaway database on the test server `AMICN_TEST_PG_URL` names, dropped with the guard.
#[cfg(test)]
pub(crate) struct TestDatabase {
    admin: String,
    name: String,
    /// URL of the new database.
    pub(crate) url: String,
}

#[cfg(test)]
impl TestDatabase {
    /// A fresh database, or `None` when no test server is configured (an error when
    /// `AMICN_REQUIRE_POSTGRES=1`, as `scripts/test` sets it).
    pub(crate) fn create(tag: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("AMICN_TEST_PG_URL") else {
            assert!(
                std::env::var("AMICN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "AMICN_REQUIRE_POSTGRES=1 but AMICN_TEST_PG_URL is not set"
            );
            eprintln!("PostgreSQL engine not tested: AMICN_TEST_PG_URL is not set");
            return None;
        };
        let name = format!(
            "amicn_{}_{}_{}",
            tag.replace('-', "_"),
            std::process::id(),
            crate::net::now_us() % 1_000_000_000
        );
        let mut c = Pg::connect(&admin).expect("connect to the test server");
        c.with(|c| c.batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("create a test database");
        let (base, _) = admin.rsplit_once('/').expect("URL ends in a database name");
        let url = format!("{base}/{name}");
        Some(TestDatabase { admin, name, url })
    }
}

#[cfg(test)]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = Pg::connect(&self.admin) {
            let name = &self.name;
            let _ = c
                .with(|c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
    }

    #[test]
    fn a_connection_works_inside_both_runtime_flavours_and_outside() {
        let Some(db) = TestDatabase::create("pg-runtimes") else {
            return;
        };
        let one = |pg: &mut Pg| {
            pg.with(|c| {
                c.query_one("SELECT 1::INT", &[])
                    .map(|r| r.get::<_, i32>(0))
            })
        };
        let mut pg = Pg::connect(&db.url).unwrap();
        assert_eq!(one(&mut pg).unwrap(), 1);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let mut pg = multi.block_on(async move {
            assert_eq!(one(&mut pg).unwrap(), 1);
            pg
        });
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        current.block_on(async {
            assert_eq!(one(&mut pg).unwrap(), 1);
            // Connected and dropped inside the runtime, too.
            let mut inner = Pg::connect(&db.url).unwrap();
            assert_eq!(one(&mut inner).unwrap(), 1);
            drop(inner);
            drop(pg);
        });
    }
}
