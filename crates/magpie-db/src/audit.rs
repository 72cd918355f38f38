//! `audit_events`: what happened to an account that its owner may want to check (sign-ins, failed
//! sign-ins, password and email changes, tokens, bank connections, exports).

use magpie_domain::{Timestamp, UserId};
use sqlx::types::Json;

use crate::{Conn, Result, on_conn};

/// An audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    /// Id.
    pub id: uuid::Uuid,
    /// Whose account.
    pub user_id: UserId,
    /// What (`sign_in`, `sign_in_failed`, `password_changed`, `email_changed`, `token_created`,
    /// `token_revoked`, `sessions_revoked`, `connection_created`, `connection_deleted`, `export`,
    /// `import`).
    pub kind: String,
    /// From which address.
    pub client_ip: Option<String>,
    /// With which client.
    pub user_agent: Option<String>,
    /// Particulars (a token's name, a bank's name); never a secret.
    pub detail: Json<serde_json::Value>,
    /// When.
    pub created_at: Timestamp,
}

/// Record an event.
pub async fn record(
    conn: Conn<'_>,
    user: UserId,
    kind: &str,
    client_ip: Option<&str>,
    user_agent: Option<&str>,
    detail: &serde_json::Value,
) -> Result<()> {
    let ip = client_ip.map(|s| s.chars().take(64).collect::<String>());
    let ua = user_agent.map(|s| s.chars().take(200).collect::<String>());
    on_conn!(conn, c => {
        sqlx::query("insert into audit_events (id, user_id, kind, client_ip, user_agent, detail, created_at) values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(uuid::Uuid::now_v7()).bind(user).bind(kind).bind(ip).bind(ua).bind(Json(detail)).bind(Timestamp::now())
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The user's latest events, newest first.
pub async fn list(conn: Conn<'_>, user: UserId, limit: i64) -> Result<Vec<AuditEvent>> {
    const SQL: &str = "select id, user_id, kind, client_ip, user_agent, detail, created_at from audit_events \
                       where user_id = $1 order by created_at desc, id desc limit $2";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(limit).fetch_all(&mut *c).await?))
}
