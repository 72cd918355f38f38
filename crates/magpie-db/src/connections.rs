//! The `connections` table: a user's links to banks. `access_token` is stored sealed (AES-256-GCM,
//! sealed and opened by the server, never by this crate) and is never returned by the API.

use magpie_domain::{ConnectionId, ConnectionStatus, SealedToken, Timestamp, UserId};

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
}

macro_rules! cols {
    () => {
        "id, user_id, institution_id, institution_name, access_token, last_sync, status, created_at"
    };
}

/// Insert a connection for `user`, ACTIVE.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, new: &NewConnection) -> Result<Connection> {
    const SQL: &str = concat!("insert into connections (", cols!(), ") values ($1, $2, $3, $4, $5, $6, $7, $8)");
    let row = Connection {
        id: new.id,
        user_id: user,
        institution_id: new.institution_id.clone(),
        institution_name: new.institution_name.clone(),
        access_token: new.access_token.clone(),
        last_sync: None,
        status: ConnectionStatus::Active,
        created_at: Timestamp::now(),
    };
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(row.id).bind(row.user_id).bind(&row.institution_id).bind(&row.institution_name)
            .bind(&row.access_token).bind(row.last_sync).bind(row.status).bind(row.created_at)
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
