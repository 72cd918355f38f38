//! `GET /api/v1/me/audit`: the account's audit log.

use axum::Json;
use axum::extract::State;
use magpie_domain::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Problem, Result};
use crate::http::extract::ApiQuery;
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// An event of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// `sign_in`, `sign_in_failed`, `password_changed`, `email_changed`, `token_created`,
    /// `token_revoked`, `sessions_revoked`, `connection_created`, `connection_deleted`, `export` or
    /// `import`.
    pub kind: String,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Particulars (a token's name and scope, a bank's name).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    pub created_at: Timestamp,
}

/// How many.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// The latest sensitive actions on your account, newest first: sign-ins (and failed ones), password and
/// email changes, tokens created and revoked, sign-outs everywhere, bank connections linked and
/// removed, exports and imports.
#[utoipa::path(
    get, path = "/me/audit", tag = "me", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, body = Vec<AuditEventResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit_events(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEventResponse>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        let mut v = Validator::new();
        v.error("query.limit", "limit must be between 1 and 500");
        v.finish()?;
    }
    let mut conn = state.db.conn().await?;
    let events = magpie_db::audit::list(conn.c(), user.id, limit).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditEventResponse {
                kind: e.kind,
                client_ip: e.client_ip,
                user_agent: e.user_agent,
                detail: e.detail.0,
                created_at: e.created_at,
            })
            .collect(),
    ))
}
