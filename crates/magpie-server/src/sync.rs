//! The sync engine: runs a connection's sync as a job, exactly once at a time, and applies what the
//! provider returned in one database transaction with the provider's new state.
//!
//! 1. Take the connection's lease (one statement; a second process gets "busy" and the job is queued
//!    again for when the lease ends).
//! 2. Open the sealed token and ask the provider for everything new (`magpie_sync::Provider::sync`).
//!    Nothing is written while the provider is being read, so a crash here leaves nothing behind.
//! 3. Plan against the stored rows (`magpie_sync::reconcile`), categorize new rows (rules, remembered
//!    corrections, the provider's category if it is sure enough, then the models), apply, recompute
//!    tracked goals, and store the new cursor/windows and `last_sync`, all in one transaction, only while
//!    still holding the lease.
//! 4. On a provider error, map it to the connection's status (EXPIRED, ERROR, or ACTIVE with a retry
//!    after an exponential backoff or the provider's own delay) and keep the data and state as they were.
//!
//! The scheduler (in every worker) queues due connections; Plaid's webhooks queue them too.

use std::time::Duration as StdDuration;

use chrono::Utc;
use magpie_db::connections::{self, Connection, SyncSuccess};
use magpie_db::jobs::NewJob;
use magpie_db::sync::{self as repo, NewSynced, ProviderRow, SyncedUpdate};
use magpie_domain::{
    BankProvider, Category, CategorySource, Confidence, ConnectionId, ConnectionStatus, JobId, Money, Timestamp,
    TransactionType, UserId,
};
use magpie_sync::gocardless::{GocardlessClient, GocardlessConfig};
use magpie_sync::plaid::{PlaidClient, PlaidConfig, WebhookEvent};
use magpie_sync::reconcile::{self, Action, PlanStats, Stored, Tolerance};
use magpie_sync::simplefin::{SimplefinClient, SimplefinConfig};
use magpie_sync::{Batch, Notice, Provider, Secret, SyncError, SyncOptions, Txn};
use serde::Serialize;
use serde_json::json;

use crate::app::AppState;
use crate::config::Config;
use crate::ml::{Categorizing, MemoryScope, Subject};
use crate::sealing::Keyring;

/// Job kind: sync one connection (payload `{"connection_id", "manual"}`).
pub const SYNC_CONNECTION: &str = "sync_connection";
/// When a connection is being synced by another process, how soon to look again.
const BUSY_RETRY_SECS: i64 = 10;
/// Days a window starts before the previous one ended.
const OVERLAP_DAYS: u32 = 10;
/// Longest provider ids and descriptions kept (the columns' limits).
const MAX_ACCOUNT_ID: usize = 100;
const MAX_TXN_ID: usize = 200;
const MAX_DESCRIPTION: usize = 500;

/// The provider clients and the keyring.
pub struct BankSync {
    /// Plaid, when configured.
    pub plaid: Option<PlaidClient>,
    /// SimpleFIN (needs no app credentials).
    pub simplefin: SimplefinClient,
    /// GoCardless, when configured.
    pub gocardless: Option<GocardlessClient>,
    /// Seals and opens tokens.
    pub keyring: Keyring,
}

fn not_configured(provider: BankProvider) -> SyncError {
    SyncError::Invalid {
        code: "not_configured".into(),
        message: format!("{} is not configured on this server", provider.as_str()),
    }
}

impl BankSync {
    /// Clients from the configuration.
    pub fn new(config: &Config, keyring: Keyring) -> BankSync {
        let plaid = match (&config.plaid_client_id, &config.plaid_secret) {
            (Some(id), Some(secret)) => {
                let mut cfg =
                    PlaidConfig::new(&config.plaid_base_url, id.clone(), Secret::new(secret.expose().clone()));
                cfg.webhook_url = config.plaid_webhook_url.clone();
                Some(PlaidClient::new(cfg))
            }
            _ => None,
        };
        let simplefin = SimplefinClient::new(SimplefinConfig {
            allowed_hosts: config
                .simplefin_allowed_hosts
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            ..SimplefinConfig::default()
        });
        let gocardless = match (&config.gocardless_secret_id, &config.gocardless_secret_key) {
            (Some(id), Some(key)) => Some(GocardlessClient::new(GocardlessConfig {
                base_url: config.gocardless_base_url.clone(),
                secret_id: id.clone(),
                secret_key: Secret::new(key.expose().clone()),
                timeout: StdDuration::from_secs(30),
            })),
            _ => None,
        };
        BankSync { plaid, simplefin, gocardless, keyring }
    }

    /// Plaid, or the error saying it is not configured.
    pub fn plaid(&self) -> Result<&PlaidClient, SyncError> {
        self.plaid.as_ref().ok_or_else(|| not_configured(BankProvider::Plaid))
    }

    /// GoCardless, or the error saying it is not configured.
    pub fn gocardless(&self) -> Result<&GocardlessClient, SyncError> {
        self.gocardless.as_ref().ok_or_else(|| not_configured(BankProvider::Gocardless))
    }

    /// Which providers this server offers.
    pub fn enabled(&self) -> Vec<BankProvider> {
        let mut v = Vec::new();
        if self.plaid.is_some() {
            v.push(BankProvider::Plaid);
        }
        v.push(BankProvider::Simplefin);
        if self.gocardless.is_some() {
            v.push(BankProvider::Gocardless);
        }
        v
    }

    async fn fetch(
        &self,
        provider: BankProvider,
        secret: &Secret,
        state: &serde_json::Value,
        options: &SyncOptions,
    ) -> Result<Batch, SyncError> {
        match provider {
            BankProvider::Plaid => self.plaid()?.sync(secret, state, options).await,
            BankProvider::Simplefin => self.simplefin.sync(secret, state, options).await,
            BankProvider::Gocardless => self.gocardless()?.sync(secret, state, options).await,
        }
    }

    /// Revoke a connection's access at its provider.
    pub async fn revoke(&self, provider: BankProvider, secret: &Secret) -> Result<(), SyncError> {
        match provider {
            BankProvider::Plaid => self.plaid()?.revoke(secret).await,
            BankProvider::Simplefin => self.simplefin.revoke(secret).await,
            BankProvider::Gocardless => self.gocardless()?.revoke(secret).await,
        }
    }
}

/// What a sync did (the job's result).
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `synced`, `failed`, `busy` (another process holds the connection), `skipped` (not ACTIVE) or
    /// `gone` (deleted).
    pub outcome: &'static str,
    /// Rows inserted, updated, posted, removed and unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<PlanStats>,
    /// Provider requests made.
    pub requests: u32,
    /// Things worth knowing that did not stop the sync.
    pub notices: Vec<Notice>,
    /// The connection's status afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectionStatus>,
    /// The provider error's code, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// When it runs next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_sync_at: Option<Timestamp>,
}

impl SyncReport {
    fn bare(outcome: &'static str) -> SyncReport {
        SyncReport {
            outcome,
            stats: None,
            requests: 0,
            notices: Vec::new(),
            status: None,
            error_code: None,
            next_sync_at: None,
        }
    }
}

/// Queue a sync of a connection (at most one waits per connection).
pub async fn enqueue(
    state: &AppState,
    connection: ConnectionId,
    user: UserId,
    manual: bool,
    at: Timestamp,
) -> anyhow::Result<(JobId, bool)> {
    let mut conn = state.db.conn().await?;
    let job = NewJob {
        kind: SYNC_CONNECTION,
        user_id: Some(user),
        payload: json!({"connection_id": connection, "manual": manual}),
        dedupe_key: Some(format!("{SYNC_CONNECTION}:{connection}")),
        run_at: at,
        max_attempts: 3,
    };
    let queued = magpie_db::jobs::enqueue(conn.c(), &job).await?;
    state.jobs_wakeup.notify();
    Ok(queued)
}

fn secs(d: StdDuration) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
}

/// `base` plus or minus `percent` of it, at random: replicas and connections do not all fire at once.
fn jitter(base: chrono::Duration, percent: i64) -> chrono::Duration {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let spread = base.num_milliseconds() * percent / 100;
    if spread <= 0 {
        return base;
    }
    let offset = (u64::from_le_bytes(r) % (2 * spread as u64 + 1)) as i64 - spread;
    base + chrono::Duration::milliseconds(offset)
}

/// The next attempt after `failures` failures in a row: one minute, doubling, at most the interval.
fn backoff(config: &Config, failures: i32) -> chrono::Duration {
    let exp = failures.clamp(1, 20) - 1;
    let secs = (60u64 << exp).min(config.sync_interval_secs);
    jitter(chrono::Duration::seconds(secs as i64), 20)
}

/// The status and next attempt a provider error leads to.
fn classify(config: &Config, e: &SyncError, failures: i32) -> (ConnectionStatus, Option<Timestamp>) {
    let now = Utc::now();
    match e {
        SyncError::LoginRequired { .. } => (ConnectionStatus::Expired, None),
        SyncError::Revoked { .. } | SyncError::Invalid { .. } => (ConnectionStatus::Error, None),
        SyncError::RateLimited { retry_after, .. } => {
            let wait = retry_after.map(|d| secs(d) + jitter(chrono::Duration::seconds(30), 50));
            (
                ConnectionStatus::Active,
                Some(Timestamp::from_datetime(now + wait.unwrap_or_else(|| backoff(config, failures)))),
            )
        }
        SyncError::Transient { .. } => {
            (ConnectionStatus::Active, Some(Timestamp::from_datetime(now + backoff(config, failures))))
        }
    }
}

/// Sync one connection now. `manual`: asked for by the person (runs even when not ACTIVE, since they may
/// have repaired the login); otherwise only ACTIVE connections sync.
pub async fn run(state: &AppState, id: ConnectionId, manual: bool, worker: &str) -> anyhow::Result<SyncReport> {
    let mut conn = state.db.conn().await?;
    let Some(c) = connections::get_any(conn.c(), id).await? else { return Ok(SyncReport::bare("gone")) };
    if !manual && c.status != ConnectionStatus::Active {
        return Ok(SyncReport { status: Some(c.status), ..SyncReport::bare("skipped") });
    }
    let lease = chrono::Duration::seconds(i64::try_from(state.config.sync_lease_secs).unwrap_or(600));
    if !connections::acquire_lease(conn.c(), id, worker, lease).await? {
        // Another process is syncing it: look again shortly (a sync takes seconds; its lease, which
        // only matters if that process died, can be minutes), at the latest when the lease ends.
        let until = connections::lease_until(conn.c(), id).await?.unwrap_or_else(Timestamp::now);
        drop(conn);
        let soon = Utc::now() + chrono::Duration::seconds(BUSY_RETRY_SECS);
        let at = Timestamp::from_datetime((until.as_datetime() + chrono::Duration::seconds(1)).min(soon));
        enqueue(state, id, c.user_id, manual, at).await?;
        return Ok(SyncReport { next_sync_at: Some(at), ..SyncReport::bare("busy") });
    }
    drop(conn);
    let outcome = sync_leased(state, &c, worker).await;
    if outcome.is_err() {
        // A database failure mid-apply rolled everything back; let the next attempt in without waiting
        // for the lease to run out.
        if let Ok(mut conn) = state.db.conn().await {
            let _ = connections::release_lease(conn.c(), id, worker).await;
        }
    }
    outcome
}

async fn sync_leased(state: &AppState, c: &Connection, worker: &str) -> anyhow::Result<SyncReport> {
    let started = std::time::Instant::now();
    let provider = c.provider.as_str();
    let secret = match state.bank.keyring.open(&c.access_token, c.id, c.user_id) {
        Ok(s) => s,
        Err(e) => {
            let mut conn = state.db.conn().await?;
            let message = format!("the stored bank token cannot be opened: {e}");
            connections::record_failure(conn.c(), c.id, worker, ConnectionStatus::Error, &message, None).await?;
            tracing::error!(connection.id = %c.id, error = %e, "cannot open a sealed bank token");
            return Ok(SyncReport {
                status: Some(ConnectionStatus::Error),
                error_code: Some("token".into()),
                ..SyncReport::bare("failed")
            });
        }
    };
    let options =
        SyncOptions { now: Utc::now(), initial_days: state.config.sync_initial_days, overlap_days: OVERLAP_DAYS };
    let fetched = state.bank.fetch(c.provider, &secret, &c.sync_state.0, &options).await;
    drop(secret);
    let batch = match fetched {
        Ok(b) => b,
        Err(e) => {
            let (status, next) = classify(&state.config, &e, c.consecutive_failures + 1);
            let mut conn = state.db.conn().await?;
            connections::record_failure(conn.c(), c.id, worker, status, &e.to_string(), next).await?;
            metrics::counter!("magpie_syncs_total", "provider" => provider, "outcome" => "failed").increment(1);
            tracing::warn!(connection.id = %c.id, provider, code = e.code(), status = status.as_str(), "sync failed");
            return Ok(SyncReport {
                status: Some(status),
                error_code: Some(e.code().to_owned()),
                next_sync_at: next,
                ..SyncReport::bare("failed")
            });
        }
    };
    let report = apply(state, c, batch, worker).await?;
    metrics::counter!("magpie_syncs_total", "provider" => provider, "outcome" => "synced").increment(1);
    metrics::histogram!("magpie_sync_seconds", "provider" => provider).record(started.elapsed().as_secs_f64());
    tracing::info!(connection.id = %c.id, provider, stats = ?report.stats, requests = report.requests,
                   seconds = started.elapsed().as_secs_f64(), "sync committed");
    if report.stats.is_some_and(|s| s.inserted > 0) {
        crate::ml::train_if_due(state, c.user_id, None).await;
    }
    Ok(report)
}

/// A provider row that fits the columns, or a notice saying why it was skipped.
fn provider_row(t: &Txn) -> Result<ProviderRow, Notice> {
    if t.account_id.chars().count() > MAX_ACCOUNT_ID || t.id.chars().count() > MAX_TXN_ID || t.id.is_empty() {
        return Err(Notice { code: "bad_id".into(), message: "a transaction with an unusable id was skipped".into() });
    }
    let amount = Money::from_decimal(t.amount).ok().filter(|m| m.abs() <= Money::MAX_COLUMN).ok_or_else(|| Notice {
        code: "bad_amount".into(),
        message: "a transaction with an out-of-range amount was skipped".into(),
    })?;
    let description: String = t.description.chars().filter(|c| *c != '\0').take(MAX_DESCRIPTION).collect();
    Ok(ProviderRow {
        account_id: t.account_id.clone(),
        provider_txn_id: t.id.clone(),
        pending: t.pending,
        date: t.date,
        amount,
        description,
        weak_id: t.weak_id,
    })
}

fn decide(categorizing: &Categorizing, p: &ProviderRow, t: &Txn) -> (Category, CategorySource, Option<Confidence>) {
    let kind = if p.amount.is_negative() { TransactionType::Expense } else { TransactionType::Income };
    let subject = Subject { description: &p.description, amount: p.amount.abs(), kind, date: p.date };
    let hint = t.category.as_ref().and_then(|pc| {
        let category = Category::parse(pc.category).ok()?;
        Some((category, pc.confidence.and_then(|d| Confidence::from_decimal(d).ok())))
    });
    let d = categorizing.decide_with_hint(&subject, hint.as_ref().map(|(c, conf)| (c, *conf)));
    (d.category, d.source, d.confidence)
}

/// Apply a batch in one transaction with the connection's new state.
async fn apply(state: &AppState, c: &Connection, mut batch: Batch, worker: &str) -> anyhow::Result<SyncReport> {
    let user = c.user_id;
    let categorizing = {
        let mut conn = state.db.conn().await?;
        Categorizing::load(&state.ml, conn.c(), user, MemoryScope::All).await?
    };
    // Rows that cannot be stored are reported and left out; the rest of the batch still lands.
    let mut rows = Vec::with_capacity(batch.upserts.len());
    for t in std::mem::take(&mut batch.upserts) {
        match provider_row(&t) {
            Ok(p) => rows.push((t, p)),
            Err(n) => {
                if !batch.notices.contains(&n) {
                    batch.notices.push(n);
                }
            }
        }
    }
    batch.upserts = rows.iter().map(|(t, _)| t.clone()).collect();
    let mut tx = state.db.begin().await?;
    let stored_rows = repo::rows(tx.c(), user, c.id).await?;
    let stored: Vec<Stored<usize>> = stored_rows
        .iter()
        .enumerate()
        .map(|(i, r)| Stored {
            key: i,
            account_id: r.provider.account_id.clone(),
            id: r.provider.provider_txn_id.clone(),
            pending: r.provider.pending,
            date: r.provider.date,
            amount: r.provider.amount.as_decimal(),
            description: r.provider.description.clone(),
        })
        .collect();
    let plan = reconcile::plan(&stored, &batch, &Tolerance::default());
    let provider_of = |t: &Txn| {
        rows.iter()
            .find(|(u, _)| u.account_id == t.account_id && u.id == t.id)
            .map(|(_, p)| p.clone())
            .expect("every planned row came from the batch")
    };
    let mut inserts = Vec::new();
    for action in &plan.actions {
        match action {
            Action::Insert(t) => {
                let p = provider_of(t);
                let (category, category_source, confidence_score) = decide(&categorizing, &p, t);
                inserts.push(NewSynced { provider: p, category, category_source, confidence_score });
            }
            Action::Update { key, txn, posted } => {
                let row = &stored_rows[*key];
                let p = provider_of(txn);
                // The person's words and categories win over the bank's: a description they changed
                // stays, and so does a category they chose.
                let last = &row.provider;
                let edited = row.current_description != last.description;
                let description = (!edited && last.description != p.description).then(|| p.description.clone());
                let text_changed = last.description != p.description;
                let category = (row.category_source != CategorySource::User && !edited && (text_changed || *posted))
                    .then(|| decide(&categorizing, &p, txn));
                repo::update(
                    tx.c(),
                    user,
                    c.id,
                    &SyncedUpdate {
                        transaction_id: row.transaction_id,
                        old_account_id: last.account_id.clone(),
                        old_provider_txn_id: last.provider_txn_id.clone(),
                        provider: p,
                        description,
                        category,
                    },
                )
                .await?;
            }
            Action::Remove { key, .. } => repo::remove(tx.c(), user, c.id, stored_rows[*key].transaction_id).await?,
        }
    }
    repo::insert(tx.c(), user, c.id, &inserts).await?;
    magpie_db::goals::recompute_tracked(tx.c(), user).await?;
    let status = if batch.needs_reauth.is_some() { ConnectionStatus::Expired } else { ConnectionStatus::Active };
    let next = match batch.retry_after {
        Some(d) => Utc::now() + secs(d),
        None => Utc::now() + jitter(chrono::Duration::seconds(state.config.sync_interval_secs as i64), 10),
    };
    let next_sync_at = Timestamp::from_datetime(next);
    let success = SyncSuccess {
        sync_state: batch.state.clone(),
        accounts: serde_json::to_value(&batch.accounts)?,
        status,
        last_error: batch.needs_reauth.as_ref().map(|n| n.message.clone()),
        next_sync_at,
    };
    if !connections::record_success(tx.c(), c.id, worker, &success).await? {
        tx.rollback().await?;
        anyhow::bail!("another worker took over this connection's sync (its lease ran out); nothing was written");
    }
    tx.commit().await?;
    if plan.stats.inserted + plan.stats.updated + plan.stats.removed > 0 {
        crate::ledger_cache::ledger_changed(state, user);
    }
    Ok(SyncReport {
        outcome: "synced",
        stats: Some(plan.stats),
        requests: batch.requests,
        notices: batch.notices,
        status: Some(status),
        error_code: None,
        next_sync_at: Some(next_sync_at),
    })
}

/// Queue the syncs that are due. Every worker calls this now and then; a connection is claimed by one.
pub async fn schedule_due(state: &AppState) -> anyhow::Result<usize> {
    let placeholder =
        Timestamp::from_datetime(Utc::now() + chrono::Duration::seconds(state.config.sync_lease_secs as i64));
    let due = {
        let mut conn = state.db.conn().await?;
        connections::claim_due(conn.c(), placeholder, 100).await?
    };
    for (id, user) in &due {
        enqueue(state, *id, *user, false, Timestamp::now()).await?;
    }
    Ok(due.len())
}

/// Act on a verified Plaid webhook. Returns how many connections it concerned.
pub async fn on_plaid_webhook(state: &AppState, event: &WebhookEvent) -> anyhow::Result<usize> {
    let Some(item) = &event.item_id else { return Ok(0) };
    let found = {
        let mut conn = state.db.conn().await?;
        connections::find_by_external(conn.c(), BankProvider::Plaid, item).await?
    };
    for c in &found {
        let mut conn = state.db.conn().await?;
        match (event.webhook_type.as_str(), event.webhook_code.as_str()) {
            (
                "TRANSACTIONS",
                "SYNC_UPDATES_AVAILABLE"
                | "DEFAULT_UPDATE"
                | "INITIAL_UPDATE"
                | "HISTORICAL_UPDATE"
                | "TRANSACTIONS_REMOVED",
            ) if c.status == ConnectionStatus::Active => {
                drop(conn);
                enqueue(state, c.id, c.user_id, false, Timestamp::now()).await?;
            }
            ("ITEM", "ERROR") => {
                let (status, message) = match event.error_code.as_deref() {
                    Some("ITEM_LOGIN_REQUIRED") | None => (
                        ConnectionStatus::Expired,
                        "the bank needs you to sign in again (ITEM_LOGIN_REQUIRED)".to_owned(),
                    ),
                    Some(code) => (
                        ConnectionStatus::Error,
                        format!("Plaid reported an error for this connection ({})", magpie_sync::sanitize(code)),
                    ),
                };
                connections::set_status(conn.c(), c.id, status, Some(&message), None).await?;
            }
            ("ITEM", "LOGIN_REPAIRED") => {
                connections::set_status(conn.c(), c.id, ConnectionStatus::Active, None, None).await?;
                drop(conn);
                enqueue(state, c.id, c.user_id, false, Timestamp::now()).await?;
            }
            ("ITEM", "PENDING_EXPIRATION" | "PENDING_DISCONNECT") => {
                let at = event.consent_expiration_time.map(Timestamp::from_datetime);
                let message = "the bank consent ends soon; reconnect to keep syncing";
                connections::set_status(conn.c(), c.id, c.status, Some(message), at).await?;
            }
            ("ITEM", "USER_PERMISSION_REVOKED" | "USER_ACCOUNT_REVOKED") => {
                connections::set_status(
                    conn.c(),
                    c.id,
                    ConnectionStatus::Error,
                    Some("access was revoked at the bank"),
                    None,
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(found.len())
}
