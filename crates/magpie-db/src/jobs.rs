//! The `jobs` queue: background work (model training now; bank syncs and forecasts later) that any
//! replica of the server may run, each job exactly once.
//!
//! A worker claims the oldest due job in one statement: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! concurrent workers never take the same row; a single `UPDATE … RETURNING` on SQLite, whose writes
//! are serialized anyway. A claim is a lease (`locked_until`): a job whose worker died is claimed again
//! once its lease runs out, up to `max_attempts` times. Jobs are written so that running one twice
//! does no harm.

use chrono::Duration;
use magpie_domain::{JobId, JobStatus, Timestamp, UserId};
use sqlx::types::Json;

use crate::{Conn, Result, on_conn};

/// A row of `jobs`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// What to do (`train_categorizer`, ...).
    pub kind: String,
    /// The user it is for, if any.
    pub user_id: Option<UserId>,
    /// Parameters.
    pub payload: Json<serde_json::Value>,
    /// State.
    pub status: JobStatus,
    /// Claims so far.
    pub attempts: i32,
    /// Claims allowed.
    pub max_attempts: i32,
    /// Not before.
    pub run_at: Timestamp,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// What it produced.
    pub result: Option<Json<serde_json::Value>>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

macro_rules! cols {
    () => {
        "id, kind, user_id, payload, status, attempts, max_attempts, run_at, last_error, result, created_at, \
         updated_at, finished_at"
    };
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Kind.
    pub kind: &'a str,
    /// User.
    pub user_id: Option<UserId>,
    /// Parameters.
    pub payload: serde_json::Value,
    /// At most one queued job per key: queuing again returns the one already waiting.
    pub dedupe_key: Option<String>,
    /// Not before.
    pub run_at: Timestamp,
    /// Claims allowed.
    pub max_attempts: i32,
}

/// Queue a job; with a `dedupe_key` that already has a queued job, that job's id is returned instead
/// (and `false`).
#[tracing::instrument(skip_all, fields(kind = job.kind))]
pub async fn enqueue(mut conn: Conn<'_>, job: &NewJob<'_>) -> Result<(JobId, bool)> {
    const INSERT: &str = "insert into jobs (id, kind, user_id, payload, status, dedupe_key, attempts, max_attempts, \
        run_at, created_at, updated_at) values ($1, $2, $3, $4, 'QUEUED', $5, 0, $6, $7, $8, $8) \
        on conflict (dedupe_key) where status = 'QUEUED' do nothing returning id";
    let now = Timestamp::now();
    let inserted: Option<JobId> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(INSERT)
        .bind(JobId::new()).bind(job.kind).bind(job.user_id).bind(Json(&job.payload)).bind(job.dedupe_key.as_deref())
        .bind(job.max_attempts).bind(job.run_at).bind(now)
        .fetch_optional(&mut *c).await?);
    if let Some(id) = inserted {
        return Ok((id, true));
    }
    const EXISTING: &str = "select id from jobs where dedupe_key = $1 and status = 'QUEUED'";
    let id: JobId =
        on_conn!(conn, c => sqlx::query_scalar(EXISTING).bind(job.dedupe_key.as_deref()).fetch_one(&mut *c).await?);
    Ok((id, false))
}

/// Claim the oldest due job (or one whose worker's lease ran out) for `worker`, leased for `lease`.
#[tracing::instrument(skip_all)]
pub async fn claim(mut conn: Conn<'_>, worker: &str, lease: Duration) -> Result<Option<Job>> {
    let now = Timestamp::now();
    let until = Timestamp::from_datetime(now.as_datetime() + lease);
    // A job whose last lease ran out with no attempts left has failed for good.
    const GIVE_UP: &str = "update jobs set status = 'FAILED', finished_at = $1, updated_at = $1, \
        last_error = coalesce(last_error, 'the worker stopped before finishing (no attempts left)') \
        where status = 'RUNNING' and locked_until < $1 and attempts >= max_attempts";
    on_conn!(conn.reborrow(), c => {
        sqlx::query(GIVE_UP).bind(now).execute(&mut *c).await?;
    });
    const DUE: &str = "(status = 'QUEUED' and run_at <= $1) or (status = 'RUNNING' and locked_until < $1 and attempts < max_attempts)";
    let sql_pg = format!(
        "update jobs set status = 'RUNNING', attempts = attempts + 1, locked_until = $2, locked_by = $3, updated_at = $1 \
         where id = (select id from jobs where {DUE} order by run_at, id limit 1 for update skip locked) returning {}",
        cols!()
    );
    let sql_sqlite = format!(
        "update jobs set status = 'RUNNING', attempts = attempts + 1, locked_until = $2, locked_by = $3, updated_at = $1 \
         where id = (select id from jobs where {DUE} order by run_at, id limit 1) returning {}",
        cols!()
    );
    Ok(match conn {
        Conn::Sqlite(c) => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql_sqlite))
                .bind(now)
                .bind(until)
                .bind(worker)
                .fetch_optional(&mut *c)
                .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql_pg))
                .bind(now)
                .bind(until)
                .bind(worker)
                .fetch_optional(&mut *c)
                .await?
        }
    })
}

/// Extend a running job's lease (long jobs call this while they work).
pub async fn extend_lease(conn: Conn<'_>, id: JobId, worker: &str, lease: Duration) -> Result<bool> {
    let until = Timestamp::from_datetime(Timestamp::now().as_datetime() + lease);
    let n = on_conn!(conn, c => sqlx::query(
        "update jobs set locked_until = $3 where id = $1 and locked_by = $2 and status = 'RUNNING'")
        .bind(id).bind(worker).bind(until).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The job succeeded. False when `worker` no longer holds it (its lease ran out and another worker
/// took it over).
pub async fn complete(conn: Conn<'_>, id: JobId, worker: &str, result: &serde_json::Value) -> Result<bool> {
    let now = Timestamp::now();
    let n = on_conn!(conn, c => sqlx::query(
        "update jobs set status = 'DONE', result = $3, finished_at = $4, updated_at = $4, locked_until = null \
         where id = $1 and locked_by = $2 and status = 'RUNNING'")
        .bind(id).bind(worker).bind(Json(result)).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The job failed: queued again at `retry_at` if it has attempts left, else failed for good. A retry
/// that would duplicate a job queued meanwhile with the same key is dropped in its favour.
pub async fn fail(mut conn: Conn<'_>, id: JobId, worker: &str, error: &str, retry_at: Option<Timestamp>) -> Result<()> {
    let now = Timestamp::now();
    let error: String = error.chars().take(2000).collect();
    if let Some(at) = retry_at {
        const RETRY: &str = "update jobs set status = 'QUEUED', run_at = $4, last_error = $3, updated_at = $5, \
            locked_until = null, locked_by = null \
            where id = $1 and locked_by = $2 and status = 'RUNNING' and attempts < max_attempts \
            and (dedupe_key is null or not exists (select 1 from jobs other where other.dedupe_key = jobs.dedupe_key \
                 and other.status = 'QUEUED'))";
        let n = on_conn!(conn.reborrow(), c => sqlx::query(RETRY)
            .bind(id).bind(worker).bind(&error).bind(at).bind(now).execute(&mut *c).await?.rows_affected());
        if n > 0 {
            return Ok(());
        }
    }
    on_conn!(conn, c => {
        sqlx::query("update jobs set status = 'FAILED', last_error = $3, finished_at = $4, updated_at = $4, \
                     locked_until = null where id = $1 and locked_by = $2 and status = 'RUNNING'")
            .bind(id).bind(worker).bind(&error).bind(now).execute(&mut *c).await?;
    });
    Ok(())
}

/// One of the user's jobs.
pub async fn get(conn: Conn<'_>, user: UserId, id: JobId) -> Result<Option<Job>> {
    const SQL: &str = concat!("select ", cols!(), " from jobs where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's latest jobs, newest first.
pub async fn recent_for_user(conn: Conn<'_>, user: UserId, limit: i64) -> Result<Vec<Job>> {
    const SQL: &str =
        concat!("select ", cols!(), " from jobs where user_id = $1 order by created_at desc, id desc limit $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(limit).fetch_all(&mut *c).await?))
}

/// Any job (for operators and tests).
pub async fn get_any(conn: Conn<'_>, id: JobId) -> Result<Option<Job>> {
    const SQL: &str = concat!("select ", cols!(), " from jobs where id = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).fetch_optional(&mut *c).await?))
}

/// Every job of a kind, oldest first (operators and tests).
pub async fn of_kind(conn: Conn<'_>, kind: &str) -> Result<Vec<Job>> {
    const SQL: &str = concat!("select ", cols!(), " from jobs where kind = $1 order by created_at, id");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(kind).fetch_all(&mut *c).await?))
}

/// Jobs that failed for good, by kind (for `/metrics`).
pub async fn failed_by_kind(conn: Conn<'_>) -> Result<Vec<(String, i64)>> {
    const SQL: &str = "select kind, count(*) from jobs where status = 'FAILED' group by kind order by kind";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_all(&mut *c).await?))
}

/// Jobs waiting or running, and the age of the oldest waiting one (for `/metrics`).
pub async fn depth(conn: Conn<'_>) -> Result<(i64, i64, Option<Timestamp>)> {
    const SQL: &str = "select \
        coalesce(sum(case when status = 'QUEUED' then 1 else 0 end), 0), \
        coalesce(sum(case when status = 'RUNNING' then 1 else 0 end), 0), \
        min(case when status = 'QUEUED' then run_at end) \
        from jobs where status in ('QUEUED', 'RUNNING')";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_one(&mut *c).await?))
}
