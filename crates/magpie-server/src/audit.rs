//! The audit log: sensitive actions recorded for the account's owner to read (`GET /api/v1/me/audit`,
//! and the settings page). Also written to the log under the `audit` target. Account deletion is only
//! logged: the account's events go with it.

use magpie_domain::UserId;

use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::error::AppError;

/// Record `kind` for `user`, from `client`, with `detail` (never a secret).
pub async fn record(
    state: &AppState,
    user: UserId,
    kind: &str,
    client: &ClientInfo,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    tracing::info!(target: "audit", user_id = %user, kind, ip = client.ip.as_deref().unwrap_or(""), %detail, "audit");
    metrics::counter!("magpie_audit_events_total", "kind" => kind.to_owned()).increment(1);
    let mut conn = state.db.conn().await?;
    magpie_db::audit::record(conn.c(), user, kind, client.ip.as_deref(), client.user_agent.as_deref(), &detail).await?;
    Ok(())
}
