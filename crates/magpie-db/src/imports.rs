//! Import batches and the dedup keys of imported transactions.
//!
//! Rows are written with their dedup keys (`external_key`, `fingerprint`, both unique per user) and the
//! batch they came in. Bulk writing is the one place where the engines differ most: multi-row `INSERT`
//! on SQLite, `COPY` on PostgreSQL.

use std::collections::HashSet;

use chrono::NaiveDate;
use magpie_domain::{ImportBatchId, Money, Timestamp, TransactionId, TransactionType, UserId};

use crate::transactions::NewTransaction;
use crate::{Conn, DbError, Result, on_conn};

/// A row of `import_batches`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ImportBatch {
    /// Id.
    pub id: ImportBatchId,
    /// Owner.
    pub user_id: UserId,
    /// Uploaded file name.
    pub filename: Option<String>,
    /// csv, ofx, qif, camt or mt940.
    pub format: String,
    /// Character encoding read.
    pub encoding: Option<String>,
    /// COMMITTED or REVERTED.
    pub status: String,
    /// Rows read from the file.
    pub rows_read: i64,
    /// Transactions added.
    pub imported: i64,
    /// Rows already in the ledger.
    pub duplicates: i64,
    /// Rows left out on purpose (pending, zero amount).
    pub skipped: i64,
    /// Rows that could not be read.
    pub errors: i64,
    /// When.
    pub created_at: Timestamp,
    /// When it was reverted.
    pub reverted_at: Option<Timestamp>,
}

/// The counts of a finished import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows read.
    pub rows_read: i64,
    /// Added.
    pub imported: i64,
    /// Already there.
    pub duplicates: i64,
    /// Left out.
    pub skipped: i64,
    /// Unreadable.
    pub errors: i64,
}

macro_rules! batch_cols {
    () => {
        "id, user_id, filename, format, encoding, status, rows_read, imported, duplicates, skipped, errors, created_at, reverted_at"
    };
}

/// Start a batch (counts filled in by [`finish_batch`] in the same transaction).
pub async fn create_batch(
    conn: Conn<'_>,
    user: UserId,
    filename: Option<&str>,
    format: &str,
    encoding: Option<&str>,
) -> Result<ImportBatch> {
    const SQL: &str = concat!(
        "insert into import_batches (id, user_id, filename, format, encoding, status, rows_read, imported, duplicates, skipped, errors, created_at) \
         values ($1, $2, $3, $4, $5, 'COMMITTED', 0, 0, 0, 0, 0, $6) returning ",
        batch_cols!()
    );
    let filename = filename.map(|f| f.chars().take(255).collect::<String>());
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(ImportBatchId::new()).bind(user).bind(filename).bind(format).bind(encoding).bind(Timestamp::now())
        .fetch_one(&mut *c).await?))
}

/// Record a batch's counts.
pub async fn finish_batch(conn: Conn<'_>, id: ImportBatchId, counts: Counts) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update import_batches set rows_read = $2, imported = $3, duplicates = $4, skipped = $5, errors = $6 where id = $1")
            .bind(id).bind(counts.rows_read).bind(counts.imported).bind(counts.duplicates).bind(counts.skipped).bind(counts.errors)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The user's batches, newest first.
pub async fn list_batches(conn: Conn<'_>, user: UserId) -> Result<Vec<ImportBatch>> {
    const SQL: &str =
        concat!("select ", batch_cols!(), " from import_batches where user_id = $1 order by created_at desc, id desc");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?))
}

/// One of the user's batches.
pub async fn get_batch(conn: Conn<'_>, user: UserId, id: ImportBatchId) -> Result<Option<ImportBatch>> {
    const SQL: &str = concat!("select ", batch_cols!(), " from import_batches where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// Undo a committed batch: delete its transactions (with their dedup keys, so the file can be imported
/// again) and mark it REVERTED. `None` when there is no such committed batch of this user.
pub async fn revert_batch(mut conn: Conn<'_>, user: UserId, id: ImportBatchId) -> Result<Option<u64>> {
    let marked = on_conn!(conn.reborrow(), c => sqlx::query(
        "update import_batches set status = 'REVERTED', reverted_at = $3 where id = $1 and user_id = $2 and status = 'COMMITTED'")
        .bind(id).bind(user).bind(Timestamp::now()).execute(&mut *c).await?.rows_affected());
    if marked == 0 {
        return Ok(None);
    }
    let deleted = on_conn!(conn, c => sqlx::query("delete from transactions where user_id = $1 and import_batch_id = $2")
        .bind(user).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(Some(deleted))
}

/// A transaction to import with its dedup keys.
#[derive(Debug, Clone)]
pub struct ImportedRow {
    /// The transaction.
    pub tx: NewTransaction,
    /// Key of the file's own id, if it had one.
    pub external_key: Option<String>,
    /// Fingerprint.
    pub fingerprint: String,
}

/// The dedup keys of a chunk of rows, to look up in a ledger.
#[derive(Debug, Default)]
pub struct KeyLookup<'a> {
    /// External keys (the file's own ids).
    pub external: Vec<&'a str>,
    /// Fingerprints.
    pub fingerprints: Vec<&'a str>,
    /// First and last booking date of the rows. A fingerprint includes the date, so only ledger rows
    /// of those days can share one.
    pub dates: Option<(NaiveDate, NaiveDate)>,
}

/// Widest date range for which [`existing_keys`] reads the ledger's fingerprints of the whole range
/// instead of probing the index for each one.
const FINGERPRINT_WINDOW_DAYS: i64 = 31;

/// Which of the keys the user's ledger already holds, deleted rows included.
///
/// External keys are probed one by one in their index. Fingerprints of a chunk spanning a few weeks
/// (a statement sorted by date, the usual case) are checked against the ledger's fingerprints of those
/// weeks, read in one range scan of the (user, date) index: on a first import there are none, and on a
/// re-import they are the rows themselves. Probing a million-row index for keys it does not hold cost
/// 20-30 µs a key on PostgreSQL (the index no longer fits in shared buffers), which made a first import
/// of a million rows twice as slow.
pub async fn existing_keys(mut conn: Conn<'_>, user: UserId, keys: &KeyLookup<'_>) -> Result<HashSet<String>> {
    let mut found: HashSet<String> = HashSet::new();
    if !keys.external.is_empty() {
        found.extend(probe_keys(conn.reborrow(), user, "external_key", &keys.external).await?);
    }
    if keys.fingerprints.is_empty() {
        return Ok(found);
    }
    match keys.dates {
        Some((first, last)) if (last - first).num_days() <= FINGERPRINT_WINDOW_DAYS => {
            let wanted: HashSet<&str> = keys.fingerprints.iter().copied().collect();
            let in_range: Vec<String> = on_conn!(conn, c => {
                sqlx::query_scalar(
                    "select fingerprint from transactions \
                     where user_id = $1 and date between $2 and $3 and fingerprint is not null",
                )
                .bind(user)
                .bind(first)
                .bind(last)
                .fetch_all(&mut *c)
                .await?
            });
            found.extend(in_range.into_iter().filter(|f| wanted.contains(f.as_str())));
        }
        _ => found.extend(probe_keys(conn, user, "fingerprint", &keys.fingerprints).await?),
    }
    Ok(found)
}

/// Which of `keys` the user's rows hold in `column` (`external_key` or `fingerprint`). The keys travel
/// as one array parameter (a JSON array on SQLite), so the statement is the same for every chunk size
/// and short in the slow-query log.
async fn probe_keys(conn: Conn<'_>, user: UserId, column: &'static str, keys: &[&str]) -> Result<Vec<String>> {
    Ok(match conn {
        Conn::Sqlite(c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select {column} from transactions where user_id = ?1 and {column} in (select value from json_each(?2))"
            )))
            .bind(user)
            .bind(serde_json::Value::from(keys).to_string())
            .fetch_all(&mut *c)
            .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select {column} from transactions where user_id = $1 and {column} = any($2)"
            )))
            .bind(user)
            .bind(keys)
            // Planned for each call (an unnamed statement). An import checks chunk after chunk in one
            // transaction; a generic plan cached while the ledger was still empty (its first chunks)
            // is a sequential scan that then slows down with every chunk inserted (a 100,000-row first
            // import ran 15 times slower). Forcing custom plans for the whole transaction instead would
            // also re-plan the foreign-key checks of every inserted row.
            .persistent(false)
            .fetch_all(&mut *c)
            .await?
        }
    })
}

/// Write imported rows in one go: multi-row `INSERT` on SQLite (1,000 rows a statement), `COPY` on
/// PostgreSQL. Keys are expected to be new (checked with [`existing_keys`]); a key that appeared in the
/// meantime (a concurrent import of the same file) fails the statement with a unique violation, so the
/// caller's transaction rolls back and nothing is half-imported.
pub async fn insert_imported(
    conn: Conn<'_>,
    user: UserId,
    batch: Option<ImportBatchId>,
    rows: &[ImportedRow],
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let now = Timestamp::now();
    match conn {
        Conn::Sqlite(c) => {
            let mut n = 0;
            for chunk in rows.chunks(1000) {
                let mut qb = sqlx::QueryBuilder::new(
                    "insert into transactions (id, user_id, amount, date, description, category, type, source, \
                     confidence_score, category_source, connection_id, created_at, updated_at, import_batch_id, \
                     external_key, fingerprint) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(TransactionId::new())
                        .push_bind(user)
                        .push_bind(r.tx.amount)
                        .push_bind(r.tx.date)
                        .push_bind(r.tx.description.as_str())
                        .push_bind(r.tx.category.as_str())
                        .push_bind(r.tx.kind)
                        .push_bind(r.tx.source)
                        .push_bind(r.tx.confidence_score)
                        .push_bind(r.tx.category_source)
                        .push_bind(r.tx.connection_id)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(batch)
                        .push_bind(r.external_key.as_deref())
                        .push_bind(r.fingerprint.as_str());
                });
                n += qb.build().execute(&mut *c).await?.rows_affected();
            }
            Ok(n)
        }
        Conn::Postgres(c) => {
            let mut copy = c
                .copy_in_raw(
                    "copy transactions (id, user_id, amount, date, description, category, type, source, confidence_score, \
                     category_source, connection_id, created_at, updated_at, import_batch_id, external_key, fingerprint) \
                     from stdin",
                )
                .await?;
            let now_text = now.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            let batch_text = batch.map(|b| b.to_string());
            let mut buf = String::with_capacity(256 * 1024);
            for r in rows {
                copy_field(&mut buf, &TransactionId::new().to_string());
                copy_field(&mut buf, &user.to_string());
                copy_field(&mut buf, &r.tx.amount.to_string());
                copy_field(&mut buf, &r.tx.date.to_string());
                copy_field(&mut buf, &r.tx.description);
                copy_field(&mut buf, r.tx.category.as_str());
                copy_field(&mut buf, r.tx.kind.as_str());
                copy_field(&mut buf, r.tx.source.as_str());
                copy_opt(&mut buf, r.tx.confidence_score.map(|c| c.to_string()).as_deref());
                copy_field(&mut buf, r.tx.category_source.as_str());
                copy_opt(&mut buf, r.tx.connection_id.map(|c| c.to_string()).as_deref());
                copy_field(&mut buf, &now_text);
                copy_field(&mut buf, &now_text);
                copy_opt(&mut buf, batch_text.as_deref());
                copy_opt(&mut buf, r.external_key.as_deref());
                buf.push_str(&escape_copy(&r.fingerprint));
                buf.push('\n');
                if buf.len() > 192 * 1024 {
                    copy.send(buf.as_bytes()).await?;
                    buf.clear();
                }
            }
            if !buf.is_empty() {
                copy.send(buf.as_bytes()).await?;
            }
            copy.finish().await.map_err(DbError::from)
        }
    }
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
fn escape_copy(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\t', '\n', '\r']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn copy_field(buf: &mut String, s: &str) {
    buf.push_str(&escape_copy(s));
    buf.push('\t');
}

fn copy_opt(buf: &mut String, s: Option<&str>) {
    match s {
        Some(s) => buf.push_str(&escape_copy(s)),
        None => buf.push_str("\\N"),
    }
    buf.push('\t');
}

/// A ledger transaction that might be the same as an imported row (for "possible duplicate" hints).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Candidate {
    /// Id.
    pub id: TransactionId,
    /// Date.
    pub date: NaiveDate,
    /// Amount.
    pub amount: Money,
    /// Type.
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// Description.
    pub description: String,
}

/// The user's transactions (deleted included) with one of `amounts` dated within `from..=to`.
pub async fn candidates(
    conn: Conn<'_>,
    user: UserId,
    from: NaiveDate,
    to: NaiveDate,
    amounts: &[Money],
) -> Result<Vec<Candidate>> {
    if amounts.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new("select id, date, amount, type, description from transactions where user_id = ");
        qb.push_bind(user).push(" and date >= ").push_bind(from).push(" and date <= ").push_bind(to).push(" and amount in (");
        let mut sep = qb.separated(", ");
        for a in amounts {
            sep.push_bind(*a);
        }
        qb.push(")");
        qb.build_query_as().fetch_all(&mut *c).await?
    }))
}
