//! The `connections` table: a user's links to banks. `access_token` is stored sealed (AES-256-GCM,
//! sealed and opened by the server, never by this crate) and is never returned by the API.
//!
//! Besides the seed's columns a connection carries what syncing needs (docs/schema.md, "Bank sync"):
//! the provider, its id for the link, the sync state committed with the data, the accounts, the last
//! error, the schedule, and a lease so that one sync per connection runs at a time across replicas.

use chrono::Duration;
use magpie_domain::{BankProvider, ConnectionId, ConnectionStatus, SealedToken, Timestamp, UserId};
use sqlx::types::Json;

use crate::{Conn, Result, on_conn};

/// A row of `connections`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Owner.
    pub user_id: UserId,
    /// Provider's institution id.
    pub institution_id: String,
    /// Human-readable institution name.
    pub institution_name: String,
    /// Sealed provider access token.
    pub access_token: SealedToken,
    /// Last successful sync.
    pub last_sync: Option<Timestamp>,
    /// ACTIVE, EXPIRED or ERROR.
    pub status: ConnectionStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// PLAID, SIMPLEFIN or GOCARDLESS.
    pub provider: BankProvider,
    /// The provider's id of the link (Plaid `item_id`; hashes for the others). Not secret.
    pub external_id: Option<String>,
    /// Where the next sync resumes (cursor, window ends, quotas).
    pub sync_state: Json<serde_json::Value>,
    /// The accounts behind the link, as last synced.
    pub accounts: Json<serde_json::Value>,
    /// The last failure (sanitised provider text), cleared by a successful sync.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<Timestamp>,
    /// When the bank consent runs out, if it does.
    pub consent_expires_at: Option<Timestamp>,
    /// When the scheduler syncs it next.
    pub next_sync_at: Option<Timestamp>,
    /// Failed syncs in a row (drives the backoff).
    pub consecutive_failures: i32,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What creating a connection needs.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// Id, chosen by the caller because it is part of the token's associated data when sealing.
    pub id: ConnectionId,
    /// Provider's institution id (at most 100 characters).
    pub institution_id: String,
    /// Institution name (at most 200 characters).
    pub institution_name: String,
    /// Sealed access token.
    pub access_token: SealedToken,
    /// The aggregator.
    pub provider: BankProvider,
    /// The provider's id of the link.
    pub external_id: Option<String>,
    /// Initial sync state.
    pub sync_state: serde_json::Value,
    /// Accounts found while linking.
    pub accounts: serde_json::Value,
    /// When the consent runs out.
    pub consent_expires_at: Option<Timestamp>,
    /// First scheduled sync.
    pub next_sync_at: Option<Timestamp>,
}

impl NewConnection {
    /// A connection with empty sync state, no accounts and no schedule.
    pub fn new(
        id: ConnectionId,
        provider: BankProvider,
        institution_id: impl Into<String>,
        institution_name: impl Into<String>,
        access_token: SealedToken,
    ) -> NewConnection {
        NewConnection {
            id,
            institution_id: institution_id.into(),
            institution_name: institution_name.into(),
            access_token,
            provider,
            external_id: None,
            sync_state: serde_json::json!({}),
            accounts: serde_json::json!([]),
            consent_expires_at: None,
            next_sync_at: None,
        }
    }
}

macro_rules! cols {
    () => {
        "id, user_id, institution_id, institution_name, access_token, last_sync, status, created_at, provider, \
         external_id, sync_state, accounts, last_error, last_error_at, consent_expires_at, next_sync_at, \
         consecutive_failures, updated_at"
    };
}

/// Insert a connection for `user`, ACTIVE.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, new: &NewConnection) -> Result<Connection> {
    const SQL: &str = concat!(
        "insert into connections (",
        cols!(),
        ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    );
    let now = Timestamp::now();
    let row = Connection {
        id: new.id,
        user_id: user,
        institution_id: new.institution_id.clone(),
        institution_name: new.institution_name.clone(),
        access_token: new.access_token.clone(),
        last_sync: None,
        status: ConnectionStatus::Active,
        created_at: now,
        provider: new.provider,
        external_id: new.external_id.clone(),
        sync_state: Json(new.sync_state.clone()),
        accounts: Json(new.accounts.clone()),
        last_error: None,
        last_error_at: None,
        consent_expires_at: new.consent_expires_at,
        next_sync_at: new.next_sync_at,
        consecutive_failures: 0,
        updated_at: now,
    };
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(row.id).bind(row.user_id).bind(&row.institution_id).bind(&row.institution_name)
            .bind(&row.access_token).bind(row.last_sync).bind(row.status).bind(row.created_at)
            .bind(row.provider).bind(&row.external_id).bind(&row.sync_state).bind(&row.accounts)
            .bind(&row.last_error).bind(row.last_error_at).bind(row.consent_expires_at).bind(row.next_sync_at)
            .bind(row.consecutive_failures).bind(row.updated_at)
            .execute(&mut *c).await?;
    });
    Ok(row)
}
/// One of the user's connections.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get(conn: Conn<'_>, user: UserId, id: ConnectionId) -> Result<Option<Connection>> {
    const SQL: &str = concat!("select ", cols!(), " from connections where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's connections, optionally only those with one status (index `idx_connections_user_status`).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list(conn: Conn<'_>, user: UserId, status: Option<ConnectionStatus>) -> Result<Vec<Connection>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from connections where user_id = $1 and ($2 is null or status = $2) \
         order by created_at, id"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(status).fetch_all(&mut *c).await?))
}

/// The user's connections to one institution (index `idx_connections_user_institution`).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list_by_institution(conn: Conn<'_>, user: UserId, institution_id: &str) -> Result<Vec<Connection>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from connections where user_id = $1 and institution_id = $2 order by created_at, id"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(institution_id).fetch_all(&mut *c).await?))
}

/// Set the status, and `last_sync` when given (only after a committed sync).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update_status(
    conn: Conn<'_>,
    user: UserId,
    id: ConnectionId,
    status: ConnectionStatus,
    last_sync: Option<Timestamp>,
) -> Result<Option<Connection>> {
    const SQL: &str = concat!(
        "update connections set status = $3, last_sync = coalesce($4, last_sync) \
         where id = $1 and user_id = $2 returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(user).bind(status).bind(last_sync)
        .fetch_optional(&mut *c).await?))
}

/// Replace the sealed token (re-encryption under a new key, or a refreshed provider token).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update_token(conn: Conn<'_>, user: UserId, id: ConnectionId, token: &SealedToken) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("update connections set access_token = $3 where id = $1 and user_id = $2")
        .bind(id).bind(user).bind(token).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Delete a connection. Its transactions stay, with `connection_id` set to NULL by the foreign key.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn delete(conn: Conn<'_>, user: UserId, id: ConnectionId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from connections where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Any connection by id (the sync worker, which is not acting for a request).
pub async fn get_any(conn: Conn<'_>, id: ConnectionId) -> Result<Option<Connection>> {
    const SQL: &str = concat!("select ", cols!(), " from connections where id = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).fetch_optional(&mut *c).await?))
}

/// Connections of a provider with this link id (webhooks name the item, not the user).
pub async fn find_by_external(conn: Conn<'_>, provider: BankProvider, external_id: &str) -> Result<Vec<Connection>> {
    const SQL: &str = concat!("select ", cols!(), " from connections where provider = $1 and external_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(provider).bind(external_id).fetch_all(&mut *c).await?))
}

/// Every sealed token with the ids it is bound to (key rotation and the start-up key check).
pub async fn all_tokens(conn: Conn<'_>) -> Result<Vec<(ConnectionId, UserId, SealedToken)>> {
    const SQL: &str = "select id, user_id, access_token from connections order by id";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_all(&mut *c).await?))
}

/// Replace a sealed token whatever the user (key rotation; the caller re-sealed it for this row).
pub async fn replace_token(conn: Conn<'_>, id: ConnectionId, old: &SealedToken, new: &SealedToken) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update connections set access_token = $3 where id = $1 and access_token = $2")
        .bind(id).bind(old).bind(new).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Take the connection's sync lease for `owner` until `until`, unless another live lease holds it.
/// One statement, so of two replicas racing for it exactly one wins.
pub async fn acquire_lease(conn: Conn<'_>, id: ConnectionId, owner: &str, lease: Duration) -> Result<bool> {
    let now = Timestamp::now();
    let until = Timestamp::from_datetime(now.as_datetime() + lease);
    let n = on_conn!(conn, c => sqlx::query(
        "update connections set sync_lease_until = $3, sync_lease_owner = $2 \
         where id = $1 and (sync_lease_until is null or sync_lease_until < $4 or sync_lease_owner = $2)")
        .bind(id).bind(owner).bind(until).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// When the current lease runs out, if one is held.
pub async fn lease_until(conn: Conn<'_>, id: ConnectionId) -> Result<Option<Timestamp>> {
    Ok(on_conn!(conn, c => sqlx::query_scalar("select sync_lease_until from connections where id = $1")
        .bind(id).fetch_optional(&mut *c).await?)
    .flatten())
}

/// Give the lease back (nothing happens if `owner` no longer holds it).
pub async fn release_lease(conn: Conn<'_>, id: ConnectionId, owner: &str) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update connections set sync_lease_until = null, sync_lease_owner = null \
                     where id = $1 and sync_lease_owner = $2")
            .bind(id).bind(owner).execute(&mut *c).await?;
    });
    Ok(())
}

/// What a committed sync leaves on the connection.
#[derive(Debug, Clone)]
pub struct SyncSuccess {
    /// The provider's new state.
    pub sync_state: serde_json::Value,
    /// The accounts.
    pub accounts: serde_json::Value,
    /// ACTIVE, or EXPIRED when part of the data needs the user to sign in again.
    pub status: ConnectionStatus,
    /// A problem worth showing (or none).
    pub last_error: Option<String>,
    /// Next scheduled sync.
    pub next_sync_at: Timestamp,
}

/// Record a successful sync in the caller's transaction, with the data, while `owner` still holds the
/// lease; releases it. False (and nothing written) when the lease was lost: the caller rolls back.
pub async fn record_success(conn: Conn<'_>, id: ConnectionId, owner: &str, s: &SyncSuccess) -> Result<bool> {
    let now = Timestamp::now();
    let error_at = s.last_error.as_ref().map(|_| now);
    let n = on_conn!(conn, c => sqlx::query(
        "update connections set sync_state = $3, accounts = $4, status = $5, last_error = $6, last_error_at = $7, \
         next_sync_at = $8, last_sync = $9, updated_at = $9, consecutive_failures = 0, \
         sync_lease_until = null, sync_lease_owner = null \
         where id = $1 and sync_lease_owner = $2")
        .bind(id).bind(owner).bind(Json(&s.sync_state)).bind(Json(&s.accounts)).bind(s.status)
        .bind(&s.last_error).bind(error_at).bind(s.next_sync_at).bind(now)
        .execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Record a failed sync: the status the error maps to, the error, the next attempt; releases the lease.
/// Data and state are untouched.
pub async fn record_failure(
    conn: Conn<'_>,
    id: ConnectionId,
    owner: &str,
    status: ConnectionStatus,
    error: &str,
    next_sync_at: Option<Timestamp>,
) -> Result<()> {
    let now = Timestamp::now();
    let error: String = error.chars().take(500).collect();
    on_conn!(conn, c => {
        sqlx::query(
            "update connections set status = $3, last_error = $4, last_error_at = $5, next_sync_at = $6, \
             consecutive_failures = consecutive_failures + 1, updated_at = $5, \
             sync_lease_until = null, sync_lease_owner = null \
             where id = $1 and sync_lease_owner = $2")
            .bind(id).bind(owner).bind(status).bind(&error).bind(now).bind(next_sync_at)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// Set a connection's status from outside a sync (a webhook), with its message (`None` clears it) and
/// the consent's end when known.
pub async fn set_status(
    conn: Conn<'_>,
    id: ConnectionId,
    status: ConnectionStatus,
    error: Option<&str>,
    consent_expires_at: Option<Timestamp>,
) -> Result<()> {
    let now = Timestamp::now();
    let error_at = error.map(|_| now);
    on_conn!(conn, c => {
        sqlx::query(
            "update connections set status = $2, last_error = $3, last_error_at = $4, \
             consent_expires_at = coalesce($5, consent_expires_at), updated_at = $6 where id = $1")
            .bind(id).bind(status).bind(error).bind(error_at).bind(consent_expires_at).bind(now)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// Move a connection's next scheduled sync.
pub async fn set_next_sync(conn: Conn<'_>, id: ConnectionId, at: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update connections set next_sync_at = $2 where id = $1").bind(id).bind(at).execute(&mut *c).await?;
    });
    Ok(())
}

/// ACTIVE connections whose scheduled sync is due, at most `limit`, each pushed to `placeholder` so
/// that another replica's scheduler does not take it too (the sync itself sets the real next time).
pub async fn claim_due(conn: Conn<'_>, placeholder: Timestamp, limit: i64) -> Result<Vec<(ConnectionId, UserId)>> {
    let now = Timestamp::now();
    // The outer condition is evaluated again on PostgreSQL after waiting for a concurrent update of the
    // row, so a connection claimed meanwhile is skipped.
    const SQL: &str = "update connections set next_sync_at = $2 \
        where id in (select id from connections where status = 'ACTIVE' and next_sync_at <= $1 \
                     order by next_sync_at limit $3) \
        and status = 'ACTIVE' and next_sync_at <= $1 returning id, user_id";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(now).bind(placeholder).bind(limit).fetch_all(&mut *c).await?))
}

/// Connections by provider and status (for `/metrics`).
pub async fn status_counts(conn: Conn<'_>) -> Result<Vec<(String, String, i64)>> {
    const SQL: &str = "select provider, status, count(*) from connections group by provider, status order by 1, 2";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_all(&mut *c).await?))
}
