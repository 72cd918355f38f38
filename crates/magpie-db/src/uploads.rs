//! `web_uploads`: statement files the web app holds between the preview and the commit.

use magpie_domain::{Timestamp, UserId};

use crate::{Conn, Result, on_conn};

/// A held upload.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    /// Id.
    pub id: uuid::Uuid,
    /// Owner.
    pub user_id: UserId,
    /// The file's name.
    pub filename: Option<String>,
    /// The account the person named for it.
    pub account: Option<String>,
    /// The file.
    pub content: Vec<u8>,
    /// When.
    pub created_at: Timestamp,
}

/// Keep a file; drops the user's uploads older than `stale_before` on the way.
pub async fn put(
    conn: Conn<'_>,
    user: UserId,
    filename: Option<&str>,
    account: Option<&str>,
    content: &[u8],
    stale_before: Timestamp,
) -> Result<uuid::Uuid> {
    let id = uuid::Uuid::new_v4();
    let filename = filename.map(|f| f.chars().take(255).collect::<String>());
    let account = account.map(|a| a.chars().take(100).collect::<String>());
    on_conn!(conn, c => {
        sqlx::query("delete from web_uploads where user_id = $1 and created_at < $2")
            .bind(user).bind(stale_before).execute(&mut *c).await?;
        sqlx::query("insert into web_uploads (id, user_id, filename, account, content, created_at) values ($1, $2, $3, $4, $5, $6)")
            .bind(id).bind(user).bind(filename).bind(account).bind(content).bind(Timestamp::now())
            .execute(&mut *c).await?;
    });
    Ok(id)
}

/// The user's upload `id`.
pub async fn get(conn: Conn<'_>, user: UserId, id: uuid::Uuid) -> Result<Option<Upload>> {
    const SQL: &str =
        "select id, user_id, filename, account, content, created_at from web_uploads where user_id = $1 and id = $2";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(id).fetch_optional(&mut *c).await?))
}

/// Forget the user's upload `id`; false when there was none.
pub async fn delete(conn: Conn<'_>, user: UserId, id: uuid::Uuid) -> Result<bool> {
    Ok(on_conn!(conn, c => sqlx::query("delete from web_uploads where user_id = $1 and id = $2")
        .bind(user).bind(id).execute(&mut *c).await?.rows_affected() == 1))
}
