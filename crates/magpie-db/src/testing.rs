//! Test support (feature `testing`): a fresh, migrated database per test on either engine.
//!
//! SQLite: a new file in a temporary folder, removed on drop. PostgreSQL: a new schema in the database of
//! `MAGPIE_TEST_DATABASE_URL`, dropped on drop; when the variable is not set, PostgreSQL tests are skipped
//! with a message on stderr (not captured by the test harness, so it is visible in `cargo test` output).
//! When it is set but the server cannot be reached, the test fails: CI must not silently skip.

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use crate::{Db, DbOptions};

/// The environment variable naming the PostgreSQL database tests may use.
pub const TEST_DATABASE_URL_VAR: &str = "MAGPIE_TEST_DATABASE_URL";

/// A migrated database that lives as long as the value.
pub struct TestDb {
    /// The handle.
    pub db: Db,
    /// The URL it was opened with (for tests that start a server process on the same database).
    pub url: String,
    /// The PostgreSQL schema, if any.
    pub pg_schema: Option<String>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "kept alive until drop, which deletes the folder")] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    /// A fresh SQLite database in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("magpie.db").display());
        let mut opts = DbOptions::new(url.clone());
        opts.max_connections = 8;
        let db = Db::connect(&opts).await.expect("open SQLite");
        db.migrate().await.expect("migrate SQLite");
        TestDb { db, url, pg_schema: None, cleanup: Cleanup::Sqlite(dir) }
    }

    /// A fresh PostgreSQL schema, or `None` (with a notice) when `MAGPIE_TEST_DATABASE_URL` is unset.
    pub async fn postgres() -> Option<TestDb> {
        let t = Self::postgres_unmigrated().await?;
        t.db.migrate().await.expect("migrate PostgreSQL");
        Some(t)
    }

    /// A fresh, empty PostgreSQL schema (for tests of migration itself).
    pub async fn postgres_unmigrated() -> Option<TestDb> {
        let Some(admin_url) = postgres_url() else {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nnote: {TEST_DATABASE_URL_VAR} is not set: PostgreSQL variants of the database tests are \
                     SKIPPED (they return early and report ok). Set it, e.g. \
                     {TEST_DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/magpie_test, to run them.\n"
                );
            });
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Db::connect(&DbOptions { max_connections: 1, ..DbOptions::new(admin_url.clone()) })
            .await
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
        let mut c = admin.conn().await.expect("PostgreSQL connection");
        crate::on_conn!(c.c(), c => {
            sqlx::query(sqlx::AssertSqlSafe(format!("create schema {schema}"))).execute(&mut *c).await.expect("create schema");
        });
        drop(c);
        admin.close().await;
        let opts =
            DbOptions { max_connections: 8, pg_schema: Some(schema.clone()), ..DbOptions::new(admin_url.clone()) };
        let db = Db::connect(&opts).await.expect("open PostgreSQL");
        Some(TestDb {
            db,
            url: admin_url.clone(),
            pg_schema: Some(schema.clone()),
            cleanup: Cleanup::Postgres { admin_url, schema },
        })
    }

    /// A URL that selects this database (and for PostgreSQL its schema, through the `options`
    /// parameter), for starting a server process on it.
    pub fn url_with_schema(&self) -> String {
        match &self.pg_schema {
            Some(schema) => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}options=-c%20search_path%3D{schema}", self.url)
            }
            None => self.url.clone(),
        }
    }

    /// Whether a table exists in this database (schema).
    pub async fn table_exists(&self, table: &str) -> bool {
        let mut c = self.db.conn().await.expect("connection");
        let n: i64 = crate::on_conn!(c.c(), c => sqlx::query_scalar(match self.db.engine() {
            crate::Engine::Sqlite => "select count(*) from sqlite_master where type = 'table' and name = $1",
            crate::Engine::Postgres => "select count(*) from information_schema.tables where table_schema = current_schema() and table_name = $1",
        }).bind(table).fetch_one(&mut *c).await.expect("catalog query"));
        n > 0
    }

    /// Options equal to the ones this database was opened with, for opening a second pool on it.
    pub fn options(&self) -> DbOptions {
        DbOptions { max_connections: 8, pg_schema: self.pg_schema.clone(), ..DbOptions::new(self.url.clone()) }
    }
}

/// `MAGPIE_TEST_DATABASE_URL`, when set and non-empty.
pub fn postgres_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_VAR).ok().filter(|s| !s.trim().is_empty())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
            let (admin_url, schema) = (admin_url.clone(), schema.clone());
            let db = self.db.clone();
            // Drop runs outside async context guarantees: do the cleanup on a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), db.close()).await;
                    if let Ok(admin) = Db::connect(&DbOptions { max_connections: 1, ..DbOptions::new(admin_url) }).await {
                        if let Ok(mut c) = admin.conn().await {
                            crate::on_conn!(c.c(), c => {
                                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop schema if exists {schema} cascade")))
                                    .execute(&mut *c).await;
                            });
                        }
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Declares one async test that runs on SQLite and, when configured, on PostgreSQL:
/// `db_test!(name, |db| { ... })` makes `name::sqlite` and `name::postgres`, with `db: &Db`.
#[macro_export]
macro_rules! db_test {
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test_db = $crate::testing::TestDb::sqlite().await;
                let $db: &$crate::Db = &test_db.db;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(test_db) = $crate::testing::TestDb::postgres().await else { return };
                let $db: &$crate::Db = &test_db.db;
                $body
            }
        }
    };
}
