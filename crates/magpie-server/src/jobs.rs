//! The background worker: claims jobs from the `jobs` table and runs them. Every `magpie serve`
//! process runs one (unless `jobs_worker = false`); the claim statement guarantees that each job runs
//! once however many replicas share the database, and a job whose worker died is picked up again when
//! its lease runs out.

use std::time::Duration;

use magpie_db::jobs::{self, Job, NewJob};
use magpie_domain::{JobId, Timestamp, UserId};
use serde_json::json;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::app::AppState;

/// Train a user's categorization model (payload: none; the job's `user_id`).
pub const TRAIN_CATEGORIZER: &str = "train_categorizer";
/// Train a user's PREDICTION (forecast) model (payload: none; the job's `user_id`).
pub const TRAIN_FORECAST: &str = "train_forecast";
/// Retrain the global categorization model from the shipped training set (payload: none).
pub const TRAIN_GLOBAL_CATEGORIZER: &str = "train_global_categorizer";

/// How often an idle worker looks for due jobs (new jobs queued by this process wake it at once).
const POLL: Duration = Duration::from_secs(2);
/// How often a worker queues the bank syncs that are due.
const SCHEDULE: Duration = Duration::from_secs(15);

/// Wakes this process's worker when a job is queued here.
#[derive(Default)]
pub struct Wakeup(Notify);

impl Wakeup {
    /// Wake the worker.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Queue a training of `user`'s model (at most one waits at a time).
pub async fn enqueue_training(state: &AppState, user: UserId) -> anyhow::Result<(JobId, bool)> {
    let mut conn = state.db.conn().await?;
    let job = NewJob {
        kind: TRAIN_CATEGORIZER,
        user_id: Some(user),
        payload: json!({}),
        dedupe_key: Some(format!("{TRAIN_CATEGORIZER}:{user}")),
        run_at: Timestamp::now(),
        max_attempts: 3,
    };
    let queued = jobs::enqueue(conn.c(), &job).await?;
    state.jobs_wakeup.notify();
    Ok(queued)
}

/// Queue a training of `user`'s forecast model (at most one waits at a time).
pub async fn enqueue_forecast(state: &AppState, user: UserId) -> anyhow::Result<(JobId, bool)> {
    let mut conn = state.db.conn().await?;
    let job = NewJob {
        kind: TRAIN_FORECAST,
        user_id: Some(user),
        payload: json!({}),
        dedupe_key: Some(format!("{TRAIN_FORECAST}:{user}")),
        run_at: Timestamp::now(),
        max_attempts: 3,
    };
    let queued = jobs::enqueue(conn.c(), &job).await?;
    state.jobs_wakeup.notify();
    Ok(queued)
}

/// Queue a retraining of the global model.
pub async fn enqueue_global_training(state: &AppState) -> anyhow::Result<JobId> {
    let mut conn = state.db.conn().await?;
    let job = NewJob {
        kind: TRAIN_GLOBAL_CATEGORIZER,
        user_id: None,
        payload: json!({}),
        dedupe_key: Some(TRAIN_GLOBAL_CATEGORIZER.to_owned()),
        run_at: Timestamp::now(),
        max_attempts: 3,
    };
    let (id, _) = jobs::enqueue(conn.c(), &job).await?;
    state.jobs_wakeup.notify();
    Ok(id)
}

/// A name for this worker in `locked_by`: host, process and a random part.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!("{host}:{}:{:08x}", std::process::id(), u32::from_le_bytes(random))
}

/// Run one job of `job.kind`; its result is stored with it.
async fn execute(state: &AppState, job: &Job, worker: &str) -> anyhow::Result<serde_json::Value> {
    match job.kind.as_str() {
        crate::sync::SYNC_CONNECTION => {
            let id: magpie_domain::ConnectionId = serde_json::from_value(job.payload.0["connection_id"].clone())
                .map_err(|e| anyhow::anyhow!("a sync job needs a connection_id: {e}"))?;
            let manual = job.payload.0["manual"].as_bool().unwrap_or(false);
            let report = crate::sync::run(state, id, manual, worker).await?;
            Ok(serde_json::to_value(report)?)
        }
        TRAIN_CATEGORIZER => {
            let user = job.user_id.ok_or_else(|| anyhow::anyhow!("a training job needs a user"))?;
            let model = magpie_domain::ModelId::from(job.id.as_uuid());
            let outcome = crate::ml::training::train_user_as(state, user, model).await?;
            Ok(serde_json::to_value(outcome)?)
        }
        TRAIN_FORECAST => {
            let user = job.user_id.ok_or_else(|| anyhow::anyhow!("a forecast job needs a user"))?;
            let model = magpie_domain::ModelId::from(job.id.as_uuid());
            let outcome = crate::forecasting::train(state, user, chrono::Utc::now().date_naive(), model).await?;
            Ok(serde_json::to_value(outcome)?)
        }
        TRAIN_GLOBAL_CATEGORIZER => {
            let model = magpie_domain::ModelId::from(job.id.as_uuid());
            let outcome =
                crate::ml::training::train_global(state, crate::ml::training::GLOBAL_ROWS_PER_CATEGORY, model).await?;
            Ok(serde_json::to_value(outcome)?)
        }
        other => anyhow::bail!("unknown job kind '{other}'"),
    }
}

/// Claim and run one due job. Returns whether there was one.
pub async fn run_one(state: &AppState, worker: &str) -> anyhow::Result<bool> {
    let job = {
        let mut conn = state.db.conn().await?;
        // A claim lasts this long before another worker may take the job over (a crashed worker's job
        // runs again elsewhere); longer than any job takes.
        let lease = chrono::Duration::seconds(i64::try_from(state.config.job_lease_secs).unwrap_or(600));
        jobs::claim(conn.c(), worker, lease).await?
    };
    let Some(job) = job else { return Ok(false) };
    let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, attempt = job.attempts);
    finish(state, worker, job).instrument(span).await?;
    Ok(true)
}

async fn finish(state: &AppState, worker: &str, job: Job) -> anyhow::Result<()> {
    tracing::info!("job started");
    let started = std::time::Instant::now();
    let outcome = execute(state, &job, worker).await;
    let mut conn = state.db.conn().await?;
    match outcome {
        Ok(result) => {
            if !jobs::complete(conn.c(), job.id, worker, &result).await? {
                tracing::warn!("job finished after its lease was taken over; its result is dropped");
            }
            metrics::counter!("magpie_jobs_total", "kind" => job.kind.clone(), "outcome" => "done").increment(1);
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "job done");
        }
        Err(e) => {
            // Backoff: 30 s, 2 min, 8 min, ...
            let delay = chrono::Duration::seconds(30 * 4i64.pow((job.attempts.max(1) - 1).min(5) as u32));
            let retry = (job.attempts < job.max_attempts).then(|| Timestamp::from_datetime(chrono::Utc::now() + delay));
            jobs::fail(conn.c(), job.id, worker, &format!("{e:#}"), retry).await?;
            metrics::counter!("magpie_jobs_total", "kind" => job.kind.clone(), "outcome" => "failed").increment(1);
            tracing::warn!(error = %format!("{e:#}"), will_retry = retry.is_some(), "job failed");
        }
    }
    Ok(())
}

/// Run due jobs until there are none (tests and `magpie` commands use this instead of the worker).
pub async fn run_pending(state: &AppState) -> anyhow::Result<usize> {
    let worker = worker_name();
    let mut n = 0;
    while run_one(state, &worker).await? {
        n += 1;
    }
    Ok(n)
}

/// The worker loop, until `shutdown` says stop (a running job is finished first).
pub async fn work(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let worker = worker_name();
    tracing::info!(worker, "background worker started");
    let mut scheduled = tokio::time::Instant::now() - SCHEDULE;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if scheduled.elapsed() >= SCHEDULE {
            scheduled = tokio::time::Instant::now();
            match crate::sync::schedule_due(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(connections = n, "queued scheduled bank syncs"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot queue scheduled syncs"),
            }
        }
        match run_one(&state, &worker).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "background worker: cannot claim a job"),
        }
        tokio::select! {
            _ = state.jobs_wakeup.0.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("background worker stopped");
}
