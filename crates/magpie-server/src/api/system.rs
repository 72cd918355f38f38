//! Operational routes: liveness, readiness, Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{AppError, Problem, Result};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_healthz)).routes(routes!(get_readyz)).routes(routes!(get_metrics))
}

/// Liveness and readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// `sqlite` or `postgres` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

/// The process is up (does not touch the database).
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = HealthResponse)))]
pub async fn get_healthz() -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse { status: "ok", version: env!("CARGO_PKG_VERSION"), database: None })
}

/// The database answers; a load balancer should only route here when this is 200.
#[utoipa::path(
    get, path = "/readyz", tag = "system",
    responses((status = 200, body = HealthResponse), (status = 503, body = Problem, content_type = "application/problem+json"))
)]
pub async fn get_readyz(State(state): State<AppState>) -> Result<axum::Json<HealthResponse>> {
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(HealthResponse {
            status: "ready",
            version: env!("CARGO_PKG_VERSION"),
            database: Some(state.db.engine().as_str()),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(AppError::Unavailable("The database is not reachable.".to_owned()))
        }
        Err(_) => Err(AppError::Unavailable("The database did not answer within 2 seconds.".to_owned())),
    }
}

/// Prometheus metrics: HTTP requests and latency by route and status, database pool occupancy and
/// connection wait times. Off unless `metrics_enabled`; with `metrics_token` set, it needs
/// `Authorization: Bearer <metrics_token>` (the figures tell how busy the server is and how many
/// people use it).
#[utoipa::path(
    get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "The metrics token is missing or wrong", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Metrics are off", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse> {
    if !state.config.metrics_enabled {
        return Err(AppError::NotFound);
    }
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = token.expose().as_bytes();
        let same =
            given.len() == expected.len() && given.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(AppError::Unauthorized("Send the metrics token as `Authorization: Bearer <token>`.".into()));
        }
    }
    let pool = state.db.pool_stats();
    metrics::gauge!("magpie_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!("magpie_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("magpie_db_pool_max_connections").set(f64::from(pool.max));
    // The database's view, shared by every replica: the job queue, the bank connections, the models.
    if let Err(e) = database_gauges(&state).await {
        tracing::warn!(error = %e, "metrics: the database gauges could not be read");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()))
}

async fn database_gauges(state: &AppState) -> Result<(), magpie_db::DbError> {
    let mut conn = state.db.conn().await?;
    let (queued, running, oldest) = magpie_db::jobs::depth(conn.c()).await?;
    metrics::gauge!("magpie_jobs", "state" => "queued").set(queued as f64);
    metrics::gauge!("magpie_jobs", "state" => "running").set(running as f64);
    let age = oldest.map_or(0.0, |t| (chrono::Utc::now() - t.as_datetime()).num_milliseconds().max(0) as f64 / 1000.0);
    metrics::gauge!("magpie_jobs_oldest_queued_age_seconds").set(age);
    for (kind, n) in magpie_db::jobs::failed_by_kind(conn.c()).await? {
        metrics::gauge!("magpie_jobs_failed", "kind" => kind).set(n as f64);
    }
    for (provider, status, n) in magpie_db::connections::status_counts(conn.c()).await? {
        metrics::gauge!("magpie_connections", "provider" => provider, "status" => status).set(n as f64);
    }
    for (kind, global, n, accuracy) in magpie_db::models::active_summary(conn.c()).await? {
        let scope = if global { "global" } else { "user" };
        metrics::gauge!("magpie_models_active", "type" => kind.clone(), "scope" => scope).set(n as f64);
        if let Some(a) = accuracy {
            metrics::gauge!("magpie_models_active_accuracy_mean", "type" => kind, "scope" => scope).set(a);
        }
    }
    Ok(())
}
