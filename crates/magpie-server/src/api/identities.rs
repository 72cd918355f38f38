//! `/api/v1/me/identities`: the accounts at the OpenID Connect provider linked to this one (linking
//! happens in the browser: Settings, "Link"). Removing one is refused when it is the last way into an
//! account that has no password and no passkey.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_db::{security, users};
use magpie_domain::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::{AuthUser, password};
use crate::error::{AppError, Problem, Result};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_identities)).routes(routes!(delete_identity))
}

/// A linked identity.
#[derive(Serialize, ToSchema)]
pub struct IdentityResponse {
    /// Id.
    pub id: uuid::Uuid,
    /// The provider.
    pub issuer: String,
    /// The email it had when linked.
    pub email: Option<String>,
    /// Linked.
    pub created_at: Timestamp,
    /// Last sign-in with it.
    pub last_used_at: Option<Timestamp>,
}

impl From<security::Identity> for IdentityResponse {
    fn from(i: security::Identity) -> Self {
        IdentityResponse {
            id: i.id,
            issuer: i.issuer,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

/// The linked identities.
#[utoipa::path(
    get, path = "/me/identities", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<IdentityResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_identities(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<IdentityResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(security::list_identities(conn.c(), user.id).await?.into_iter().map(Into::into).collect()))
}

/// Unlink an identity: it no longer signs in to this account.
#[utoipa::path(
    delete, path = "/me/identities/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Identity id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is the only way into this account", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_identity(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
) -> Result<StatusCode> {
    user.require_session()?;
    let mut tx = state.db.begin().await?;
    let identities = security::list_identities(tx.c(), user.id).await?;
    let Some(target) = identities.iter().find(|i| i.id == id) else { return Err(AppError::NotFound) };
    let me = users::get(tx.c(), user.id).await?.ok_or(AppError::NotFound)?;
    let passkeys = security::list_passkeys(tx.c(), user.id).await?.len();
    if identities.len() == 1 && passkeys == 0 && !password::has_password(&me.password_hash) {
        return Err(AppError::Conflict(
            "This is the only way into this account (it has no password and no passkey); add a passkey first.".into(),
        ));
    }
    security::delete_identity(tx.c(), user.id, id).await?;
    tx.commit().await?;
    let detail = serde_json::json!({"issuer": target.issuer});
    crate::audit::record(&state, user.id, "identity_removed", &client, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}
