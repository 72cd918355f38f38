//! Backups and restores.
//!
//! * **SQLite**: `VACUUM INTO` writes an online, transactionally consistent copy of the database to a
//!   new file (the server may keep running). Restoring attaches that file and replaces every table's
//!   rows with its rows in one transaction (foreign keys checked at commit), so a running server sees
//!   either the old data or the restored data, never a mix.
//! * **PostgreSQL**: a logical dump: every table's rows as JSON (`row_to_json`), read through cursors
//!   inside one `REPEATABLE READ` snapshot, tables in foreign-key order. Restoring reads the rows back
//!   with `json_populate_recordset` into the same tables in one transaction. No `pg_dump` binary is
//!   needed, and the file is the same on every PostgreSQL version.
//!
//! Both refuse a backup made at another schema version (restore with the magpie version that made it,
//! then upgrade), and both refuse to overwrite a database that has accounts unless told to.
//!
//! The dump format (PostgreSQL): UTF-8 lines. The first is a JSON header
//! `{"magpie_backup":1,"engine":"postgres","migrations":[1,2,…],"created_at":…}`; then for each table a
//! line `T <table>` followed by one line `R <row as JSON>` per row. The caller compresses it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use crate::{Db, DbError, Result};

/// Format version of the dump.
pub const FORMAT: u32 = 1;

/// What a backup or restore moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
}

impl Counts {
    /// Rows in all.
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
}

fn invalid(message: impl Into<String>) -> DbError {
    DbError::Invalid(message.into())
}

/// The migration versions applied to `db`.
pub async fn migrations(db: &Db) -> Result<Vec<i64>> {
    Ok(db.migration_status().await?.into_iter().filter(|(_, _, applied)| *applied).map(|(v, _, _)| v).collect())
}

/// The user tables of the database (not sqlx's bookkeeping), in an order where every table comes after
/// the tables its foreign keys point at.
pub async fn tables_in_dependency_order(db: &Db) -> Result<Vec<String>> {
    let (tables, edges): (Vec<String>, Vec<(String, String)>) = match db {
        Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "select table_name::text from information_schema.tables \
                 where table_schema = current_schema() and table_type = 'BASE TABLE' and table_name <> '_sqlx_migrations'",
            )
            .fetch_all(pool)
            .await?;
            let edges: Vec<(String, String)> = sqlx::query_as(
                "select cl.relname::text, ref.relname::text from pg_constraint c \
                 join pg_class cl on cl.oid = c.conrelid join pg_class ref on ref.oid = c.confrelid \
                 join pg_namespace n on n.oid = cl.relnamespace \
                 where c.contype = 'f' and n.nspname = current_schema()",
            )
            .fetch_all(pool)
            .await?;
            (tables, edges)
        }
        Db::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name <> '_sqlx_migrations'",
            )
            .fetch_all(pool)
            .await?;
            let mut edges = Vec::new();
            for t in &tables {
                let refs: Vec<String> = sqlx::query_scalar("select \"table\" from pragma_foreign_key_list($1)")
                    .bind(t)
                    .fetch_all(pool)
                    .await?;
                edges.extend(refs.into_iter().map(|r| (t.clone(), r)));
            }
            (tables, edges)
        }
    };
    let mut order = Vec::with_capacity(tables.len());
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut left: BTreeSet<String> = tables.into_iter().collect();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|t| edges.iter().filter(|(from, to)| from == *t && to != *t).all(|(_, to)| done.contains(to)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(invalid(format!("the foreign keys of {left:?} form a cycle")));
        }
        for t in ready {
            left.remove(&t);
            done.insert(t.clone());
            order.push(t);
        }
    }
    Ok(order)
}

/// SQLite: write a consistent copy of the database to `path` (which must not exist).
pub async fn sqlite_copy(db: &Db, path: &std::path::Path) -> Result<Counts> {
    let Db::Sqlite(pool) = db else { return Err(invalid("not a SQLite database")) };
    if path.exists() {
        return Err(invalid(format!("{} exists; choose a new file", path.display())));
    }
    let target = path.to_str().ok_or_else(|| invalid("the backup path is not valid UTF-8"))?;
    // VACUUM INTO writes into an empty file it finds: created here readable by the owner only (SQLite
    // would create it 0644), because a backup holds everything the database does.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| invalid(format!("cannot create {}: {e}", path.display())))?;
    sqlx::query("vacuum into $1").bind(target).execute(pool).await?;
    let mut counts = Counts::default();
    for t in tables_in_dependency_order(db).await? {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from \"{t}\""))).fetch_one(pool).await?;
        counts.tables.insert(t, n as u64);
    }
    Ok(counts)
}

/// Whether the database has accounts (a restore over it must be forced).
pub async fn has_users(db: &Db) -> Result<bool> {
    let n: i64 = match db {
        Db::Sqlite(p) => sqlx::query_scalar("select count(*) from users").fetch_one(p).await?,
        Db::Postgres(p) => sqlx::query_scalar("select count(*) from users").fetch_one(p).await?,
    };
    Ok(n > 0)
}

/// SQLite: replace every table's rows with those of the backup file at `path`, in one transaction.
pub async fn sqlite_restore(db: &Db, path: &std::path::Path) -> Result<Counts> {
    let Db::Sqlite(pool) = db else { return Err(invalid("not a SQLite database")) };
    let source = path.to_str().ok_or_else(|| invalid("the backup path is not valid UTF-8"))?;
    let ours = migrations(db).await?;
    let tables = tables_in_dependency_order(db).await?;
    let mut conn = pool.acquire().await?;
    sqlx::query("attach database $1 as backup").bind(source).execute(&mut *conn).await?;
    let result = async {
        let theirs: Vec<i64> =
            sqlx::query_scalar("select version from backup._sqlx_migrations where success order by version")
                .fetch_all(&mut *conn)
                .await
                .map_err(|_| invalid("the file is not a magpie SQLite backup"))?;
        if theirs != ours {
            return Err(invalid(format!(
                "the backup is at schema version {:?}, this database at {:?}: restore with the magpie version that made it",
                theirs.last(),
                ours.last()
            )));
        }
        sqlx::query("begin immediate").execute(&mut *conn).await?;
        let copied = async {
            sqlx::query("pragma defer_foreign_keys = on").execute(&mut *conn).await?;
            let mut counts = Counts::default();
            for t in tables.iter().rev() {
                sqlx::query(sqlx::AssertSqlSafe(format!("delete from main.\"{t}\""))).execute(&mut *conn).await?;
            }
            for t in &tables {
                let n = sqlx::query(sqlx::AssertSqlSafe(format!("insert into main.\"{t}\" select * from backup.\"{t}\"")))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                counts.tables.insert(t.clone(), n);
            }
            Ok::<_, DbError>(counts)
        }
        .await;
        match copied {
            Ok(counts) => {
                sqlx::query("commit").execute(&mut *conn).await?;
                Ok(counts)
            }
            Err(e) => {
                let _ = sqlx::query("rollback").execute(&mut *conn).await;
                Err(e)
            }
        }
    }
    .await;
    let _ = sqlx::query("detach database backup").execute(&mut *conn).await;
    result
}

/// PostgreSQL: write the logical dump to `out`.
pub async fn pg_dump(db: &Db, out: &mut (impl Write + Send)) -> Result<Counts> {
    let Db::Postgres(pool) = db else { return Err(invalid("not a PostgreSQL database")) };
    let tables = tables_in_dependency_order(db).await?;
    let header = serde_json::json!({
        "magpie_backup": FORMAT,
        "engine": "postgres",
        "migrations": migrations(db).await?,
        "created_at": chrono::Utc::now().to_rfc3339(),
    });
    let io = |e: std::io::Error| invalid(format!("cannot write the backup: {e}"));
    writeln!(out, "{header}").map_err(io)?;
    let mut conn = pool.acquire().await?;
    sqlx::query("begin isolation level repeatable read read only").execute(&mut *conn).await?;
    let mut counts = Counts::default();
    for t in &tables {
        writeln!(out, "T {t}").map_err(io)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "declare dump no scroll cursor for select row_to_json(t)::text from \"{t}\" t"
        )))
        .execute(&mut *conn)
        .await?;
        let mut n = 0u64;
        loop {
            let rows: Vec<String> = sqlx::query_scalar("fetch forward 2000 from dump").fetch_all(&mut *conn).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                writeln!(out, "R {r}").map_err(io)?;
            }
            n += rows.len() as u64;
        }
        sqlx::query("close dump").execute(&mut *conn).await?;
        counts.tables.insert(t.clone(), n);
    }
    sqlx::query("commit").execute(&mut *conn).await?;
    out.flush().map_err(io)?;
    Ok(counts)
}

/// PostgreSQL: replace every table's rows with the dump's, in one transaction. `lines` are the dump's
/// lines (without their line ends).
pub async fn pg_restore(db: &Db, mut lines: impl Iterator<Item = std::io::Result<String>>) -> Result<Counts> {
    let Db::Postgres(pool) = db else { return Err(invalid("not a PostgreSQL database")) };
    let io = |e: std::io::Error| invalid(format!("cannot read the backup: {e}"));
    let first = lines.next().ok_or_else(|| invalid("the backup is empty"))?.map_err(io)?;
    let header: serde_json::Value =
        serde_json::from_str(&first).map_err(|_| invalid("the file is not a magpie PostgreSQL backup"))?;
    if header["magpie_backup"] != FORMAT || header["engine"] != "postgres" {
        return Err(invalid("the file is not a magpie PostgreSQL backup (format 1)"));
    }
    let theirs: Vec<i64> = serde_json::from_value(header["migrations"].clone()).unwrap_or_default();
    let ours = migrations(db).await?;
    if theirs != ours {
        return Err(invalid(format!(
            "the backup is at schema version {:?}, this database at {:?}: restore with the magpie version that made it",
            theirs.last(),
            ours.last()
        )));
    }
    let tables = tables_in_dependency_order(db).await?;
    let known: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    let mut tx = pool.begin().await?;
    let list = tables.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!("truncate table {list}"))).execute(&mut *tx).await?;
    let mut counts = Counts::default();
    let mut table: Option<String> = None;
    let mut batch: Vec<String> = Vec::new();
    async fn flush(tx: &mut sqlx::PgConnection, table: &str, batch: &mut Vec<String>) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let json = format!("[{}]", batch.join(","));
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into \"{table}\" select * from json_populate_recordset(null::\"{table}\", $1::json)"
        )))
        .bind(json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        batch.clear();
        Ok(n)
    }
    for line in lines {
        let line = line.map_err(io)?;
        if let Some(name) = line.strip_prefix("T ") {
            if let Some(t) = &table {
                *counts.tables.entry(t.clone()).or_default() += flush(&mut tx, t, &mut batch).await?;
            }
            if !known.contains(name) {
                return Err(invalid(format!("the backup has a table this database does not: {name}")));
            }
            table = Some(name.to_owned());
            counts.tables.entry(name.to_owned()).or_default();
        } else if let Some(row) = line.strip_prefix("R ") {
            let t = table.as_ref().ok_or_else(|| invalid("a row before any table"))?;
            batch.push(row.to_owned());
            if batch.len() >= 1000 {
                *counts.tables.entry(t.clone()).or_default() += flush(&mut tx, t, &mut batch).await?;
            }
        } else if !line.is_empty() {
            return Err(invalid("the backup has a malformed line"));
        }
    }
    if let Some(t) = &table {
        *counts.tables.entry(t.clone()).or_default() += flush(&mut tx, t, &mut batch).await?;
    }
    tx.commit().await?;
    Ok(counts)
}
