//! `/api/v1/me`: the signed-in user's profile, password, personal access tokens, and account deletion.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_db::{auth, users};
use magpie_domain::{Email, NewPassword, Timestamp, TokenId, TokenScope, parse_name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::UserResponse;
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::{AuthUser, throttle, token};
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;
use crate::http::validate::{Validator, double_option};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me, delete_me))
        .routes(routes!(change_password))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
}

/// The signed-in user's profile.
#[utoipa::path(
    get, path = "/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Json<UserResponse>> {
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(me.into()))
}

/// Profile changes; absent fields are left alone, `null` clears a name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New first name (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub first_name: Option<Option<String>>,
    /// New last name (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub last_name: Option<Option<String>>,
    /// New email; needs `current_password`.
    #[serde(default)]
    pub email: Option<String>,
    /// The current password, required to change the email.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// Change names, or the email (with the current password).
#[utoipa::path(
    patch, path = "/me", tag = "me", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>> {
    let mut v = Validator::new();
    let first =
        req.first_name.map(|n| v.check("first_name", parse_name("first_name", n.as_deref().unwrap_or_default())));
    let last = req.last_name.map(|n| v.check("last_name", parse_name("last_name", n.as_deref().unwrap_or_default())));
    let email = req.email.as_deref().map(|e| v.check("email", Email::parse(e)));
    if email.is_some() && req.current_password.is_none() {
        v.error("current_password", "the current password is required to change the email");
    }
    v.finish()?;
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    drop(conn);
    if let (Some(Some(new_email)), Some(password)) = (email, req.current_password.as_deref()) {
        user.require_session()?;
        confirm_password(&state, &me, password, &client).await?;
        let mut conn = state.db.conn().await?;
        users::update_email(conn.c(), user.id, &new_email).await.map_err(|e| match e {
            e if e.is_unique_violation() => AppError::Conflict("An account with this email already exists.".to_owned()),
            e => e.into(),
        })?;
        drop(conn);
        let detail = serde_json::json!({"from": me.email.as_str(), "to": new_email.as_str()});
        crate::audit::record(&state, user.id, "email_changed", &client, detail).await?;
    }
    let mut conn = state.db.conn().await?;
    let updated = if first.is_some() || last.is_some() {
        let first_name = match first {
            Some(n) => n.flatten(),
            None => me.first_name.clone(),
        };
        let last_name = match last {
            Some(n) => n.flatten(),
            None => me.last_name.clone(),
        };
        users::update_names(conn.c(), user.id, first_name.as_deref(), last_name.as_deref()).await?
    } else {
        users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?
    };
    Ok(Json(updated.into()))
}

/// Check the account's password for a sensitive change; attempts are throttled like sign-ins.
pub(crate) async fn confirm_password(
    state: &AppState,
    me: &users::User,
    password: &str,
    client: &ClientInfo,
) -> Result<()> {
    let keys = throttle::Keys::new(me.email.as_str(), client.ip.as_deref());
    let mut conn = state.db.conn().await?;
    let attempt = throttle::reserve(conn.c(), &state.config, &keys).await?;
    drop(conn);
    if state.passwords.verify(password, Some(&me.password_hash)).await? {
        let mut conn = state.db.conn().await?;
        throttle::succeeded(conn.c(), attempt, &keys).await?;
        return Ok(());
    }
    Err(AppError::field("current_password", "the password is wrong"))
}

/// Current and new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password (same rules as at registration).
    pub new_password: String,
}

/// What a password change ended.
#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Other sessions signed out (this one stays).
    pub other_sessions_revoked: u64,
    /// Personal access tokens revoked: scripts need a new one.
    pub personal_tokens_revoked: u64,
}

/// Change the password. Every other session is signed out (this one stays) and every personal access
/// token is revoked: whoever knew the old password may have made one.
#[utoipa::path(
    post, path = "/me/password", tag = "me", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<Json<PasswordChanged>> {
    let session = user.require_session()?;
    let mut v = Validator::new();
    let new_password = v.check("new_password", NewPassword::parse(&req.new_password));
    v.finish()?;
    let new_password = new_password.expect("validated");
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    drop(conn);
    confirm_password(&state, &me, &req.current_password, &client).await?;
    let hash = state.passwords.hash(&new_password).await?;
    let now = Timestamp::now();
    let mut tx = state.db.begin().await?;
    users::update_password_hash(tx.c(), user.id, &hash).await?;
    let revoked = auth::revoke_sessions_except(tx.c(), user.id, Some(session), now).await?;
    let tokens = auth::revoke_personal_tokens(tx.c(), user.id, now).await?;
    tx.commit().await?;
    tracing::info!(user.id = %user.id, other_sessions_revoked = revoked, personal_tokens_revoked = tokens, "password changed");
    crate::audit::record(
        &state,
        user.id,
        "password_changed",
        &client,
        serde_json::json!({"other_sessions_revoked": revoked, "personal_tokens_revoked": tokens}),
    )
    .await?;
    Ok(Json(PasswordChanged { other_sessions_revoked: revoked, personal_tokens_revoked: tokens }))
}

/// Password confirmation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMeRequest {
    /// The account's password.
    pub password: String,
}

/// Delete the account and, by cascade, every transaction, budget, goal, model, connection and token.
#[utoipa::path(
    delete, path = "/me", tag = "me", security(("bearer" = [])), request_body = DeleteMeRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<DeleteMeRequest>,
) -> Result<StatusCode> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    drop(conn);
    confirm_password(&state, &me, &req.password, &client).await.map_err(|e| match e {
        AppError::Validation { .. } => AppError::field("password", "the password is wrong"),
        other => other,
    })?;
    let mut conn = state.db.conn().await?;
    users::delete(conn.c(), user.id).await?;
    drop(conn);
    // After the rows: a failure here leaves files nobody can reach, never an account without its models.
    if let Err(e) = state.ml.forget_user(user.id).await {
        tracing::error!(user.id = %user.id, error = %format!("{e:#}"), "cannot delete the model files of a deleted account");
    }
    tracing::info!(target: "audit", user_id = %user.id, kind = "account_deleted", ip = client.ip.as_deref().unwrap_or(""), "audit");
    tracing::info!(user.id = %user.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A new personal access token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A name to recognise it by (1 to 100 characters).
    #[schema(example = "nightly export script")]
    pub name: String,
    /// `read` (cannot change anything) or `read-write`.
    pub scope: TokenScope,
    /// Optional expiry (RFC 3339, in the future).
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A personal access token (the secret itself only in the creation response).
#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    /// Id.
    pub id: TokenId,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: TokenScope,
    /// First characters, to recognise it.
    pub token_prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
    /// The token: shown once, at creation. Store it now; it cannot be retrieved again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<auth::PersonalToken> for TokenInfo {
    fn from(t: auth::PersonalToken) -> Self {
        TokenInfo {
            id: t.id,
            name: t.name,
            scope: t.scope,
            token_prefix: t.token_prefix,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            token: None,
        }
    }
}

/// Create a personal access token for scripts. The token is in this response only.
#[utoipa::path(
    post, path = "/me/tokens", tag = "me", security(("bearer" = [])), request_body = CreateTokenRequest,
    responses(
        (status = 201, body = TokenInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a signed-in session", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<TokenInfo>)> {
    user.require_session()?;
    let mut v = Validator::new();
    let name = v.check(
        "name",
        magpie_domain::text::bounded_text("name", req.name.trim(), 100).map(|()| req.name.trim().to_owned()),
    );
    let now = Timestamp::now();
    let expires_at = req.expires_at.map(Timestamp::from_datetime);
    if expires_at.is_some_and(|e| e <= now) {
        v.error("expires_at", "must be in the future");
    }
    v.finish()?;
    let secret = token::generate(token::PAT_PREFIX);
    let row = auth::PersonalToken {
        id: TokenId::new(),
        user_id: user.id,
        name: name.expect("validated"),
        token_prefix: secret.chars().take(12).collect(),
        scope: req.scope,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let mut conn = state.db.conn().await?;
    auth::create_personal_token(conn.c(), &row, &token::hash(&secret)).await?;
    drop(conn);
    tracing::info!(user.id = %user.id, token.id = %row.id, scope = %row.scope, "personal access token created");
    let detail = serde_json::json!({"name": row.name, "scope": row.scope, "token_prefix": row.token_prefix});
    crate::audit::record(&state, user.id, "token_created", &client, detail).await?;
    let mut info = TokenInfo::from(row);
    info.token = Some(secret);
    Ok((StatusCode::CREATED, Json(info)))
}

/// The account's live personal access tokens (without the secrets).
#[utoipa::path(
    get, path = "/me/tokens", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenInfo>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_tokens(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<TokenInfo>>> {
    let mut conn = state.db.conn().await?;
    let tokens = auth::list_personal_tokens(conn.c(), user.id).await?;
    Ok(Json(tokens.into_iter().map(TokenInfo::from).collect()))
}

/// Revoke a personal access token.
#[utoipa::path(
    delete, path = "/me/tokens/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = TokenId, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_token(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    Path(id): Path<TokenId>,
) -> Result<StatusCode> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    if !auth::revoke_personal_token(conn.c(), user.id, id, Timestamp::now()).await? {
        return Err(AppError::NotFound);
    }
    drop(conn);
    tracing::info!(user.id = %user.id, token.id = %id, "personal access token revoked");
    crate::audit::record(&state, user.id, "token_revoked", &client, serde_json::json!({"token_id": id})).await?;
    Ok(StatusCode::NO_CONTENT)
}
