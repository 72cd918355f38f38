//! Authentication tables: sign-in sessions with rotating refresh tokens, personal access tokens, failed
//! sign-ins for throttling, and server-wide generated secrets. Tokens are only ever stored as hashes;
//! hashing happens in the server, this module sees hex digests.

use magpie_domain::{SessionId, Timestamp, TokenId, TokenScope, UserId};

use crate::{Conn, Result, on_conn};

/// A row of `auth_sessions`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    /// Id (the `sid` claim of access tokens).
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    /// When it was revoked (logout, password change, refresh-token reuse).
    pub revoked_at: Option<Timestamp>,
    /// Client's user agent at sign-in.
    pub user_agent: Option<String>,
    /// Client's address at sign-in.
    pub client_ip: Option<String>,
}

/// Start a session with its first refresh token.
#[tracing::instrument(skip_all, fields(user.id = %session.user_id))]
pub async fn create_session(mut conn: Conn<'_>, session: &Session, refresh_hash: &str) -> Result<()> {
    on_conn!(conn.reborrow(), c => {
        sqlx::query("insert into auth_sessions (id, user_id, created_at, expires_at, revoked_at, user_agent, client_ip) \
                     values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(session.id).bind(session.user_id).bind(session.created_at).bind(session.expires_at)
            .bind(session.revoked_at).bind(session.user_agent.as_deref()).bind(session.client_ip.as_deref())
            .execute(&mut *c).await?;
    });
    insert_refresh_token(conn, session.id, refresh_hash, session.expires_at).await
}

/// Add a refresh token to a session.
pub async fn insert_refresh_token(conn: Conn<'_>, session: SessionId, hash: &str, expires_at: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(hash).bind(session).bind(Timestamp::now()).bind(expires_at)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// Whether a session is live (exists, belongs to the user, not revoked, not expired): checked on every
/// request made with an access token, so revocation takes effect immediately.
pub async fn session_is_active(conn: Conn<'_>, user: UserId, id: SessionId, now: Timestamp) -> Result<bool> {
    const SQL: &str =
        "select count(*) from auth_sessions where id = $1 and user_id = $2 and revoked_at is null and expires_at > $3";
    let n: i64 = on_conn!(conn, c => sqlx::query_scalar(SQL).bind(id).bind(user).bind(now).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was live and is now used; the caller issues the next one in this session.
    Rotated {
        /// Session.
        session: SessionId,
        /// Owner.
        user: UserId,
        /// Session end.
        expires_at: Timestamp,
        /// Sign-in time (sessions end at an absolute lifetime after it, however often refreshed).
        created_at: Timestamp,
    },
    /// The token had already been used: the session has now been revoked (token theft suspected).
    Reused,
    /// Unknown, expired, or its session is revoked or expired.
    Invalid,
}

/// Consume a refresh token. Run inside a transaction together with inserting its successor. Two
/// concurrent presentations of the same token cannot both rotate: the `used_at is null` guard lets exactly
/// one update through and the other is treated as reuse.
#[tracing::instrument(skip_all)]
pub async fn use_refresh_token(mut conn: Conn<'_>, hash: &str, now: Timestamp) -> Result<RefreshOutcome> {
    const FIND: &str = "select t.session_id, s.user_id, s.expires_at, t.used_at, t.expires_at, s.revoked_at, s.created_at \
        from refresh_tokens t join auth_sessions s on s.id = t.session_id where t.token_hash = $1";
    type Row = (SessionId, UserId, Timestamp, Option<Timestamp>, Timestamp, Option<Timestamp>, Timestamp);
    let row: Option<Row> =
        on_conn!(conn.reborrow(), c => sqlx::query_as(FIND).bind(hash).fetch_optional(&mut *c).await?);
    let Some((session, user, session_expires, used_at, token_expires, revoked_at, created_at)) = row else {
        return Ok(RefreshOutcome::Invalid);
    };
    if revoked_at.is_some() || session_expires <= now || token_expires <= now {
        return Ok(RefreshOutcome::Invalid);
    }
    if used_at.is_some() {
        revoke_session(conn, user, session, now).await?;
        return Ok(RefreshOutcome::Reused);
    }
    const MARK: &str = "update refresh_tokens set used_at = $2 where token_hash = $1 and used_at is null";
    let n =
        on_conn!(conn.reborrow(), c => sqlx::query(MARK).bind(hash).bind(now).execute(&mut *c).await?.rows_affected());
    if n == 0 {
        revoke_session(conn, user, session, now).await?;
        return Ok(RefreshOutcome::Reused);
    }
    Ok(RefreshOutcome::Rotated { session, user, expires_at: session_expires, created_at })
}

/// Revoke one of the user's sessions. False if there was no such live session.
pub async fn revoke_session(conn: Conn<'_>, user: UserId, id: SessionId, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update auth_sessions set revoked_at = $3 where id = $1 and user_id = $2 and revoked_at is null")
        .bind(id).bind(user).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Revoke every session of the user except `keep`; returns how many were revoked.
pub async fn revoke_sessions_except(
    conn: Conn<'_>,
    user: UserId,
    keep: Option<SessionId>,
    now: Timestamp,
) -> Result<u64> {
    Ok(on_conn!(conn, c => sqlx::query(
        "update auth_sessions set revoked_at = $3 where user_id = $1 and revoked_at is null and ($2 is null or id <> $2)")
        .bind(user).bind(keep).bind(now).execute(&mut *c).await?.rows_affected()))
}

/// The user's live sessions, newest first.
pub async fn list_active_sessions(conn: Conn<'_>, user: UserId, now: Timestamp) -> Result<Vec<Session>> {
    Ok(on_conn!(conn, c => sqlx::query_as(
        "select id, user_id, created_at, expires_at, revoked_at, user_agent, client_ip from auth_sessions \
         where user_id = $1 and revoked_at is null and expires_at > $2 order by created_at desc")
        .bind(user).bind(now).fetch_all(&mut *c).await?))
}

/// Delete the user's expired or long-revoked sessions (their refresh tokens go by cascade).
pub async fn prune_sessions(conn: Conn<'_>, user: UserId, revoked_before: Timestamp, now: Timestamp) -> Result<u64> {
    Ok(on_conn!(conn, c => sqlx::query(
        "delete from auth_sessions where user_id = $1 and (expires_at <= $3 or revoked_at < $2)")
        .bind(user).bind(revoked_before).bind(now).execute(&mut *c).await?.rows_affected()))
}

/// A row of `personal_access_tokens` (without the hash).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PersonalToken {
    /// Id.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// Name given by the user.
    pub name: String,
    /// First characters of the token, to recognise it in a list.
    pub token_prefix: String,
    /// `read` or `read-write`.
    pub scope: TokenScope,
    /// Creation time.
    pub created_at: Timestamp,
    /// Optional expiry.
    pub expires_at: Option<Timestamp>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

macro_rules! pat_cols {
    () => {
        "id, user_id, name, token_prefix, scope, created_at, expires_at, last_used_at, revoked_at"
    };
}

/// Store a new personal access token.
pub async fn create_personal_token(conn: Conn<'_>, token: &PersonalToken, hash: &str) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query(concat!("insert into personal_access_tokens (", pat_cols!(), ", token_hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(token.id).bind(token.user_id).bind(&token.name).bind(&token.token_prefix).bind(token.scope)
            .bind(token.created_at).bind(token.expires_at).bind(token.last_used_at).bind(token.revoked_at).bind(hash)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The live token with this hash (not revoked, not expired).
pub async fn find_personal_token(conn: Conn<'_>, hash: &str, now: Timestamp) -> Result<Option<PersonalToken>> {
    Ok(on_conn!(conn, c => sqlx::query_as(concat!(
        "select ", pat_cols!(), " from personal_access_tokens where token_hash = $1 and revoked_at is null \
         and (expires_at is null or expires_at > $2)"))
        .bind(hash).bind(now).fetch_optional(&mut *c).await?))
}

/// Record a use, at most once a minute per token so that reads do not each cost a write.
pub async fn touch_personal_token(conn: Conn<'_>, id: TokenId, now: Timestamp, not_since: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update personal_access_tokens set last_used_at = $2 where id = $1 and (last_used_at is null or last_used_at < $3)")
            .bind(id).bind(now).bind(not_since).execute(&mut *c).await?;
    });
    Ok(())
}

/// The user's tokens that are not revoked, newest first.
pub async fn list_personal_tokens(conn: Conn<'_>, user: UserId) -> Result<Vec<PersonalToken>> {
    Ok(on_conn!(conn, c => sqlx::query_as(concat!(
        "select ", pat_cols!(), " from personal_access_tokens where user_id = $1 and revoked_at is null order by created_at desc, id desc"))
        .bind(user).fetch_all(&mut *c).await?))
}

/// Revoke one of the user's tokens. False if there is no such live token of this user.
pub async fn revoke_personal_token(conn: Conn<'_>, user: UserId, id: TokenId, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update personal_access_tokens set revoked_at = $3 where id = $1 and user_id = $2 and revoked_at is null")
        .bind(id).bind(user).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Revoke every personal access token of the user; returns how many were live.
pub async fn revoke_personal_tokens(conn: Conn<'_>, user: UserId, now: Timestamp) -> Result<u64> {
    Ok(on_conn!(conn, c => sqlx::query(
        "update personal_access_tokens set revoked_at = $2 where user_id = $1 and revoked_at is null")
        .bind(user).bind(now).execute(&mut *c).await?.rows_affected()))
}

/// Reserve a sign-in attempt under each throttle key before the password is checked: one row per key is
/// written (and, outside a transaction, committed) first, then the rows under each key since `since`
/// are counted, this attempt's included. Concurrent attempts therefore each count every attempt
/// committed before their count, so no more than the limit can pass however many arrive at once.
/// Returns the new rows (to release on success or refusal) and, per key, (count, oldest).
pub async fn reserve_login_attempt(
    mut conn: Conn<'_>,
    keys: &[&str],
    now: Timestamp,
    since: Timestamp,
) -> Result<(Vec<uuid::Uuid>, Vec<(i64, Option<Timestamp>)>)> {
    let mut ids = Vec::with_capacity(keys.len());
    for key in keys {
        let id = uuid::Uuid::now_v7();
        on_conn!(conn.reborrow(), c => {
            sqlx::query("insert into login_failures (id, throttle_key, failed_at) values ($1, $2, $3)")
                .bind(id).bind(*key).bind(now).execute(&mut *c).await?;
        });
        ids.push(id);
    }
    let mut counts = Vec::with_capacity(keys.len());
    for key in keys {
        counts.push(login_failures_since(conn.reborrow(), key, since).await?);
    }
    Ok((ids, counts))
}

/// Withdraw reserved attempts (the sign-in succeeded, or was refused before any check).
pub async fn release_login_attempt(mut conn: Conn<'_>, ids: &[uuid::Uuid]) -> Result<()> {
    for id in ids {
        on_conn!(conn.reborrow(), c => {
            sqlx::query("delete from login_failures where id = $1").bind(*id).execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// Forget attempts older than `before`, under every key.
pub async fn prune_login_failures(conn: Conn<'_>, before: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("delete from login_failures where failed_at < $1").bind(before).execute(&mut *c).await?;
    });
    Ok(())
}

/// Failures under `key` since `since`: (count, oldest).
pub async fn login_failures_since(conn: Conn<'_>, key: &str, since: Timestamp) -> Result<(i64, Option<Timestamp>)> {
    Ok(on_conn!(conn, c => sqlx::query_as(
        "select count(*), min(failed_at) from login_failures where throttle_key = $1 and failed_at >= $2")
        .bind(key).bind(since).fetch_one(&mut *c).await?))
}

/// Forget the failures under `key` (after a successful sign-in).
pub async fn clear_login_failures(conn: Conn<'_>, key: &str) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("delete from login_failures where throttle_key = $1").bind(key).execute(&mut *c).await?;
    });
    Ok(())
}

/// The server secret `name`, creating it with `generate()` if it does not exist yet. Several processes
/// starting at once agree on one value: the first insert wins and everyone reads it back.
pub async fn get_or_create_secret(mut conn: Conn<'_>, name: &str, generate: impl FnOnce() -> String) -> Result<String> {
    let value = generate();
    on_conn!(conn.reborrow(), c => {
        sqlx::query("insert into server_secrets (name, value, created_at) values ($1, $2, $3) on conflict (name) do nothing")
            .bind(name).bind(&value).bind(Timestamp::now()).execute(&mut *c).await?;
    });
    Ok(on_conn!(conn, c => sqlx::query_scalar("select value from server_secrets where name = $1")
        .bind(name).fetch_one(&mut *c).await?))
}

/// Slide a session's end forward (each refresh keeps an active session alive).
pub async fn extend_session(conn: Conn<'_>, id: SessionId, expires_at: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update auth_sessions set expires_at = $2 where id = $1").bind(id).bind(expires_at).execute(&mut *c).await?;
    });
    Ok(())
}
