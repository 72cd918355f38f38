//! `/api/v1/models` and `/api/v1/jobs`: the model registry (the user's own models and the global
//! ones), training on demand, activation (roll back or forward), and the state of background jobs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_db::jobs::Job;
use magpie_db::models::{self as repo, MlModel};
use magpie_domain::{JobId, JobStatus, ModelId, ModelType, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(train_model))
        .routes(routes!(activate_model))
        .routes(routes!(get_job))
}

/// A model of the registry. Accuracy, precision (macro) and recall (macro) are held out: measured by
/// cross-validation on the training data, each transaction predicted by a model that did not see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelResponse {
    /// Id.
    pub id: ModelId,
    /// CATEGORIZATION or PREDICTION.
    pub model_type: ModelType,
    /// Whether it is the global model (shared by every user) rather than one of yours.
    pub global: bool,
    /// Version (`v1`, `v2`, ... per owner and type).
    pub version: String,
    /// Held-out accuracy, 0 to 1.
    pub accuracy: Option<f64>,
    /// Held-out macro-averaged precision, 0 to 1.
    pub precision: Option<f64>,
    /// Held-out macro-averaged recall, 0 to 1.
    pub recall: Option<f64>,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Whether predictions use it.
    pub is_active: bool,
}

impl From<MlModel> for ModelResponse {
    fn from(m: MlModel) -> Self {
        ModelResponse {
            id: m.id,
            model_type: m.model_type,
            global: m.user_id.is_none(),
            version: m.version,
            accuracy: m.accuracy,
            precision: m.precision,
            recall: m.recall,
            trained_at: m.trained_at,
            is_active: m.is_active,
        }
    }
}

/// Your models and the global ones, newest first.
#[utoipa::path(
    get, path = "/models", tag = "models", security(("bearer" = [])),
    responses((status = 200, body = Vec<ModelResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_models(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<ModelResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::list_visible(conn.c(), user.id, None).await?.into_iter().map(Into::into).collect()))
}

/// A queued job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    /// Id; poll `GET /jobs/{id}`.
    pub id: JobId,
    /// What it does.
    pub kind: String,
    /// QUEUED, RUNNING, DONE or FAILED.
    pub status: JobStatus,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure.
    pub last_error: Option<String>,
    /// What it produced (for a training: the model id, version, rows, accuracy, or why it was skipped).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

impl From<Job> for JobResponse {
    fn from(j: Job) -> Self {
        JobResponse {
            id: j.id,
            kind: j.kind,
            status: j.status,
            attempts: j.attempts,
            last_error: j.last_error,
            result: j.result.map(|r| r.0),
            created_at: j.created_at,
            finished_at: j.finished_at,
        }
    }
}

/// Train your categorization model now, in the background. It needs more than 50 categorized
/// transactions; the job's result says so if there are fewer. Asking again while one is queued returns
/// that job.
#[utoipa::path(
    post, path = "/models/train", tag = "models", security(("bearer" = [])),
    responses(
        (status = 202, body = JobResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn train_model(State(state): State<AppState>, user: AuthUser) -> Result<(StatusCode, Json<JobResponse>)> {
    let (id, _) = crate::jobs::enqueue_training(&state, user.id).await?;
    let mut conn = state.db.conn().await?;
    let job = magpie_db::jobs::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// Make one of your models the active one of its type (roll back to an older version, or forward).
/// Global models are managed by the operator.
#[utoipa::path(
    post, path = "/models/{id}/activate", tag = "models", security(("bearer" = [])),
    params(("id" = ModelId, Path, description = "Model id")),
    responses(
        (status = 200, body = ModelResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn activate_model(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ModelId>,
) -> Result<Json<ModelResponse>> {
    let mut tx = state.db.begin().await?;
    if !repo::activate(tx.c(), Some(user.id), id).await? {
        return Err(AppError::NotFound);
    }
    let model = repo::get_own(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    tracing::info!(user.id = %user.id, model.id = %id, version = %model.version, "model activated");
    Ok(Json(model.into()))
}

/// A background job of yours.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "models", security(("bearer" = [])),
    params(("id" = JobId, Path, description = "Job id")),
    responses(
        (status = 200, body = JobResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<JobId>,
) -> Result<Json<JobResponse>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(magpie_db::jobs::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?.into()))
}
