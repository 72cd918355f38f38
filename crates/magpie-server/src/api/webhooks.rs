//! `/api/v1/webhooks/...`: notifications from bank providers. Not signed in: each is verified by the
//! provider's own scheme (Plaid: an ES256 JWT over the body's SHA-256, at most five minutes old) and
//! answered quickly; the work it triggers (a sync) is queued.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use magpie_sync::plaid::WebhookError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{AppError, Problem, Result};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_plaid_webhook))
}

/// Largest webhook body read (Plaid's are a few hundred bytes).
const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// A webhook was accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Always true.
    pub received: bool,
    /// Connections it concerned.
    pub connections: usize,
}

/// Plaid webhooks: `SYNC_UPDATES_AVAILABLE` queues a sync; `ITEM/ERROR` (login required) marks the
/// connection EXPIRED, `LOGIN_REPAIRED` ACTIVE again; `PENDING_EXPIRATION` records when consent ends;
/// `USER_PERMISSION_REVOKED` marks it ERROR.
#[utoipa::path(
    post, path = "/webhooks/plaid", tag = "connections",
    params(("Plaid-Verification" = String, Header, description = "Plaid's ES256 JWT")),
    request_body(content = String, content_type = "application/json", description = "Plaid's webhook body"),
    responses(
        (status = 200, body = WebhookAccepted),
        (status = 401, description = "Not signed by Plaid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Plaid is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receive_plaid_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAccepted>> {
    let plaid = state.bank.plaid().map_err(|_| AppError::NotFound)?;
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    let jwt = headers.get("plaid-verification").and_then(|v| v.to_str().ok());
    let event = plaid.verify_webhook(jwt, &body, Utc::now()).await.map_err(|e| {
        tracing::warn!(error = %e, "refused a Plaid webhook");
        match e {
            WebhookError::Provider(_) => AppError::Unavailable("Cannot verify the webhook right now.".into()),
            other => AppError::Unauthorized(format!("webhook verification failed: {other}")),
        }
    })?;
    let connections = crate::sync::on_plaid_webhook(&state, &event).await?;
    tracing::info!(kind = %event.webhook_type, code = %event.webhook_code, connections, "Plaid webhook");
    Ok(Json(WebhookAccepted { received: true, connections }))
}
