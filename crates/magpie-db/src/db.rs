//! The `Db` handle: pools, connections, transactions and migrations on either engine.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::{DbError, Result};

/// Migrations embedded in the binary, one set per engine with identical file names.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite file (the default).
    Sqlite,
    /// PostgreSQL server (production, several replicas).
    Postgres,
}

impl Engine {
    /// Engine from a database URL's scheme.
    pub fn from_url(url: &str) -> Result<Engine> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            _ => Err(DbError::Config("database URL must start with sqlite:// or postgres://".to_owned())),
        }
    }

    /// Lower-case name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// How to open a [`Db`].
#[derive(Clone)]
pub struct DbOptions {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// Most connections the pool opens (the seed's pool size is 20).
    pub max_connections: u32,
    /// Statements slower than this are logged at WARN with their SQL (the seed's slow-query log, 100 ms).
    pub slow_statement_threshold: Duration,
    /// How long a request waits for a free pooled connection before failing.
    pub acquire_timeout: Duration,
    /// PostgreSQL only: the schema to use (tests isolate themselves in a schema each).
    pub pg_schema: Option<String>,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("DbOptions")
            .field("engine", &Engine::from_url(&self.url).ok())
            .field("max_connections", &self.max_connections)
            .field("slow_statement_threshold", &self.slow_statement_threshold)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("pg_schema", &self.pg_schema)
            .finish_non_exhaustive()
    }
}

impl DbOptions {
    /// Options with the seed's defaults (pool of 20, 100 ms slow-query threshold) for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        DbOptions {
            url: url.into(),
            max_connections: 20,
            slow_statement_threshold: Duration::from_millis(100),
            acquire_timeout: Duration::from_secs(10),
            pg_schema: None,
        }
    }
}

/// Occupancy of the connection pool, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections currently open.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool may open.
    pub max: u32,
}

/// The database: a connection pool over one engine. Cheap to clone (pools are reference-counted).
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// A borrowed connection on either engine: what repository functions run their SQL on. Get one from
/// [`DbConn::c`] or [`DbTx::c`].
pub enum Conn<'c> {
    /// SQLite connection.
    Sqlite(&'c mut SqliteConnection),
    /// PostgreSQL connection.
    Postgres(&'c mut PgConnection),
}

/// Runs one block of code against whichever engine a [`Conn`] holds, compiled once per engine, with the
/// connection bound to `$c` (`&mut SqliteConnection` or `&mut PgConnection`).
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Sqlite($c) => $body,
            $crate::Conn::Postgres($c) => $body,
        }
    };
}

/// A connection checked out of the pool; returned to it on drop.
pub enum DbConn {
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

impl DbConn {
    /// Borrow for repository calls.
    pub fn c(&mut self) -> Conn<'_> {
        match self {
            DbConn::Sqlite(c) => Conn::Sqlite(c),
            DbConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// An open transaction. Dropped without [`DbTx::commit`], it rolls back: an error anywhere in a
/// multi-row change leaves nothing behind.
pub enum DbTx {
    /// SQLite (`BEGIN IMMEDIATE`).
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl DbTx {
    /// Borrow for repository calls.
    pub fn c(&mut self) -> Conn<'_> {
        match self {
            DbTx::Sqlite(t) => Conn::Sqlite(t),
            DbTx::Postgres(t) => Conn::Postgres(t),
        }
    }

    /// Make the changes durable.
    pub async fn commit(self) -> Result<()> {
        match self {
            DbTx::Sqlite(t) => t.commit().await?,
            DbTx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Throw the changes away (also what dropping does).
    pub async fn rollback(self) -> Result<()> {
        match self {
            DbTx::Sqlite(t) => t.rollback().await?,
            DbTx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

impl Db {
    /// Open a pool for `opts.url`. For SQLite the file and its folder are created if missing, and every
    /// connection gets WAL, `synchronous=NORMAL`, a busy timeout and `foreign_keys=ON` (without it SQLite
    /// ignores foreign keys, cascades and SET NULL).
    pub async fn connect(opts: &DbOptions) -> Result<Db> {
        match Engine::from_url(&opts.url)? {
            Engine::Sqlite => {
                let co = SqliteConnectOptions::from_str(&opts.url)
                    .map_err(|e| DbError::Config(format!("invalid SQLite URL: {e}")))?;
                let filename = co.get_filename().to_owned();
                if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_dir(dir)?;
                }
                make_private(&filename)?;
                let co = co
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .pragma("temp_store", "memory")
                    .log_statements(log::LevelFilter::Debug)
                    .log_slow_statements(log::LevelFilter::Warn, opts.slow_statement_threshold);
                let pool = SqlitePoolOptions::new()
                    .max_connections(opts.max_connections)
                    .min_connections(0)
                    .acquire_timeout(opts.acquire_timeout)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .connect_with(co)
                    .await?;
                Ok(Db::Sqlite(pool))
            }
            Engine::Postgres => {
                let mut co = PgConnectOptions::from_str(&opts.url)
                    .map_err(|e| DbError::Config(format!("invalid PostgreSQL URL: {e}")))?
                    .application_name("magpie")
                    .log_statements(log::LevelFilter::Debug)
                    .log_slow_statements(log::LevelFilter::Warn, opts.slow_statement_threshold);
                if let Some(schema) = &opts.pg_schema {
                    co = co.options([("search_path", schema.as_str())]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .min_connections(0)
                    .acquire_timeout(opts.acquire_timeout)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .connect_with(co)
                    .await?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    /// Apply pending migrations of this engine. Safe to run from several processes at once: PostgreSQL
    /// takes an advisory lock, SQLite a write lock.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Apply the migrations up to and including `version` only: the schema of an earlier release, for
    /// tests of the upgrade from it (with data in it) to this one.
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<()> {
        fn upto(m: &sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
            sqlx::migrate::Migrator {
                migrations: std::borrow::Cow::Owned(m.iter().filter(|x| x.version <= version).cloned().collect()),
                ..sqlx::migrate::Migrator::DEFAULT
            }
        }
        match self {
            Db::Sqlite(p) => upto(&SQLITE_MIGRATOR, version).run(p).await?,
            Db::Postgres(p) => upto(&POSTGRES_MIGRATOR, version).run(p).await?,
        }
        Ok(())
    }

    /// Versions of the migrations this binary carries, and whether each is applied.
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>> {
        let migrator = match self {
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
            Db::Postgres(_) => &POSTGRES_MIGRATOR,
        };
        let applied: Vec<i64> = {
            let mut conn = self.conn().await?;
            let exists = on_conn!(conn.c(), c => {
                sqlx::query_scalar::<_, i64>(match self.engine() {
                    Engine::Sqlite => "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
                    Engine::Postgres => "select count(*) from information_schema.tables where table_name = '_sqlx_migrations' and table_schema = current_schema()",
                })
                .fetch_one(&mut *c)
                .await?
            });
            if exists == 0 {
                Vec::new()
            } else {
                on_conn!(conn.c(), c => {
                    sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
                        .fetch_all(&mut *c)
                        .await?
                })
            }
        };
        Ok(migrator.iter().map(|m| (m.version, m.description.to_string(), applied.contains(&m.version))).collect())
    }

    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Check out a connection. The time spent waiting for one is recorded as
    /// `magpie_db_pool_acquire_seconds` (the seed's "connection pool: usage and wait times").
    pub async fn conn(&self) -> Result<DbConn> {
        let started = Instant::now();
        let conn = match self {
            Db::Sqlite(p) => DbConn::Sqlite(p.acquire().await?),
            Db::Postgres(p) => DbConn::Postgres(p.acquire().await?),
        };
        metrics::histogram!("magpie_db_pool_acquire_seconds").record(started.elapsed().as_secs_f64());
        Ok(conn)
    }

    /// Begin a transaction. On SQLite it is `BEGIN IMMEDIATE`: taking the write lock up front means a
    /// transaction that reads and then writes never fails half-way with SQLITE_BUSY.
    pub async fn begin(&self) -> Result<DbTx> {
        let started = Instant::now();
        let tx = match self {
            Db::Sqlite(p) => DbTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => DbTx::Postgres(p.begin().await?),
        };
        metrics::histogram!("magpie_db_pool_acquire_seconds").record(started.elapsed().as_secs_f64());
        Ok(tx)
    }

    /// Begin a read-only transaction: one consistent view of the data for several reads, without taking
    /// SQLite's write lock.
    pub async fn begin_read(&self) -> Result<DbTx> {
        let started = Instant::now();
        let tx = match self {
            Db::Sqlite(p) => DbTx::Sqlite(p.begin_with("BEGIN DEFERRED").await?),
            Db::Postgres(p) => DbTx::Postgres(p.begin_with("BEGIN READ ONLY").await?),
        };
        metrics::histogram!("magpie_db_pool_acquire_seconds").record(started.elapsed().as_secs_f64());
        Ok(tx)
    }

    /// Refresh planner statistics (and, on PostgreSQL, the visibility map), as autovacuum and SQLite's
    /// `PRAGMA optimize` do in the background after bulk changes.
    pub async fn refresh_statistics(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        match conn.c() {
            Conn::Sqlite(c) => {
                sqlx::query("pragma optimize").execute(&mut *c).await?;
            }
            Conn::Postgres(c) => {
                sqlx::query("vacuum (analyze) transactions").execute(&mut *c).await?;
            }
        }
        Ok(())
    }

    /// Round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        on_conn!(conn.c(), c => {
            sqlx::query("select 1").execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Pool occupancy.
    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Db::Sqlite(p) => {
                PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() }
            }
            Db::Postgres(p) => {
                PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() }
            }
        }
    }

    /// Close the pool: waits for checked-out connections to come back, then closes them all.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Create the database folder (mode 0700 for what is created here: it holds everyone's finances).
fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| DbError::Config(format!("cannot create database folder {}: {e}", dir.display())))
}

/// The SQLite file readable by its owner only (0600), created so when missing, tightened when an older
/// version left it 0644, with its `-wal` and `-shm` companions. SQLite creates those with the database
/// file's permissions, so once the file is private they are too.
fn make_private(file: &Path) -> Result<()> {
    let name = file.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file::memory:") {
        return Ok(());
    }
    let fail = |e: std::io::Error| DbError::Config(format!("cannot create database file {}: {e}", file.display()));
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{name}{suffix}"));
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
            }
        }
    }
    Ok(())
}

impl Conn<'_> {
    /// Reborrow, to pass the same connection to several repository calls in turn.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl Conn<'_> {
    /// The engine of this connection, for the few statements whose SQL differs by dialect.
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }
}

impl Db {
    /// After a bulk load: refresh the planner's statistics, and on SQLite fold the write-ahead log back
    /// into the database file (until then every read looks pages up in a large WAL).
    pub async fn analyze(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        if self.engine() == Engine::Sqlite {
            on_conn!(conn.c(), c => {
                sqlx::query("pragma wal_checkpoint(truncate)").execute(&mut *c).await?;
            });
        }
        on_conn!(conn.c(), c => {
            sqlx::query("analyze").execute(&mut *c).await?;
        });
        Ok(())
    }
}

/// Scratch databases for benchmarks that must compare two fresh, identical tables in one run.
impl Db {
    /// A new, migrated database next to the one `base` points at: a new file in a temporary folder for
    /// SQLite (the folder is returned and must be kept alive), a new database on the same server for
    /// PostgreSQL (dropped with [`Db::drop_scratch`]).
    pub async fn scratch(base: &DbOptions, name: &str) -> Result<(Db, DbOptions)> {
        let opts = match Engine::from_url(&base.url)? {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join(format!("magpie-scratch-{name}-{}", uuid::Uuid::new_v4().simple()));
                create_dir(&dir)?;
                DbOptions { url: format!("sqlite://{}", dir.join("scratch.db").display()), ..base.clone() }
            }
            Engine::Postgres => {
                let admin = Db::connect(&DbOptions { max_connections: 1, ..base.clone() }).await?;
                let db_name = format!("magpie_scratch_{name}_{}", uuid::Uuid::new_v4().simple());
                let mut conn = admin.conn().await?;
                on_conn!(conn.c(), c => {
                    sqlx::query(sqlx::AssertSqlSafe(format!("create database {db_name}"))).execute(&mut *c).await?;
                });
                drop(conn);
                admin.close().await;
                let mut co = base.url.clone();
                let (head, _) =
                    co.rsplit_once('/').ok_or_else(|| DbError::Config("database URL has no database name".into()))?;
                co = format!("{head}/{db_name}");
                DbOptions { url: co, ..base.clone() }
            }
        };
        let db = Db::connect(&opts).await?;
        db.migrate().await?;
        Ok((db, opts))
    }

    /// Remove a scratch database made by [`Db::scratch`].
    pub async fn drop_scratch(self, base: &DbOptions, scratch: &DbOptions) -> Result<()> {
        self.close().await;
        match Engine::from_url(&scratch.url)? {
            Engine::Sqlite => {
                let path = scratch.url.trim_start_matches("sqlite://");
                if let Some(dir) = Path::new(path).parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Engine::Postgres => {
                let name =
                    scratch.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
                if name.starts_with("magpie_scratch_") {
                    let admin = Db::connect(&DbOptions { max_connections: 1, ..base.clone() }).await?;
                    let mut conn = admin.conn().await?;
                    on_conn!(conn.c(), c => {
                        sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists {name}"))).execute(&mut *c).await?;
                    });
                    drop(conn);
                    admin.close().await;
                }
            }
        }
        Ok(())
    }
}
