//! `/api/v1/auth`: registration, sign-in, token refresh, sign-out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::TimeDelta;
use magpie_db::{DbTx, auth, users};
use magpie_domain::{Email, NewPassword, SessionId, Timestamp, TokenScope, UserId, parse_name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::{AuthUser, Via, throttle, token};
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(create_session))
        .routes(routes!(refresh_session))
        .routes(routes!(delete_session))
        .routes(routes!(delete_all_sessions))
        .routes(routes!(get_session))
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (trimmed and lower-cased).
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters, at most 72 bytes, not one character repeated.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// First name (optional, at most 100 characters).
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name (optional, at most 100 characters).
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A user, as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// Id.
    pub id: UserId,
    /// Email.
    pub email: Email,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl From<users::User> for UserResponse {
    fn from(u: users::User) -> Self {
        UserResponse {
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Register an account.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserResponse>)> {
    let mut v = Validator::new();
    let email = v.check("email", Email::parse(&req.email));
    let password = v.check("password", NewPassword::parse(&req.password));
    let first_name = v.check("first_name", parse_name("first_name", req.first_name.as_deref().unwrap_or_default()));
    let last_name = v.check("last_name", parse_name("last_name", req.last_name.as_deref().unwrap_or_default()));
    v.finish()?;
    let (Some(email), Some(password), Some(first_name), Some(last_name)) = (email, password, first_name, last_name)
    else {
        unreachable!("Validator::finish returned Ok, so every field parsed");
    };
    let password_hash = state.passwords.hash(&password).await?;
    let mut conn = state.db.conn().await?;
    let user = users::create(conn.c(), &users::NewUser { email, password_hash, first_name, last_name }).await.map_err(
        |e| match e {
            e if e.is_unique_violation() => AppError::Conflict("An account with this email already exists.".to_owned()),
            e => e.into(),
        },
    )?;
    tracing::info!(user.id = %user.id, "account registered");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Password.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// Tokens, with OAuth2's field names.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Single-use token for `POST /auth/refresh`.
    pub refresh_token: String,
}

impl AppState {
    fn access_token(&self, user: UserId, session: SessionId, now: Timestamp) -> String {
        self.jwt.issue(user, session, now.as_datetime().timestamp(), self.config.access_token_ttl_secs as i64)
    }

    fn refresh_expiry(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_datetime(now.as_datetime() + TimeDelta::days(self.config.refresh_token_ttl_days as i64))
    }
}

/// Start a session for `user` inside `tx` and issue its first tokens.
async fn start_session(state: &AppState, tx: &mut DbTx, user: UserId, client: &ClientInfo) -> Result<TokenResponse> {
    let now = Timestamp::now();
    let session = auth::Session {
        id: SessionId::new(),
        user_id: user,
        created_at: now,
        expires_at: state.refresh_expiry(now),
        revoked_at: None,
        user_agent: client.user_agent.clone(),
        client_ip: client.ip.clone(),
    };
    let refresh = token::generate(token::REFRESH_PREFIX);
    auth::create_session(tx.c(), &session, &token::hash(&refresh)).await?;
    // Housekeeping: drop this user's expired sessions and ones revoked over a day ago.
    let day_ago = Timestamp::from_datetime(now.as_datetime() - TimeDelta::days(1));
    auth::prune_sessions(tx.c(), user, day_ago, now).await?;
    Ok(TokenResponse {
        access_token: state.access_token(user, session.id, now),
        token_type: "Bearer",
        expires_in: state.config.access_token_ttl_secs,
        refresh_token: refresh,
    })
}

/// Sign in. A wrong password and an unknown email get the same answer after the same amount of work.
/// Repeated failures for one account or from one address are throttled (429 with `Retry-After`).
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>> {
    let keys = throttle::Keys::new(&req.email, client.ip.as_deref());
    let mut conn = state.db.conn().await?;
    throttle::check(conn.c(), &state.config, &keys).await?;
    let user = match Email::parse(&req.email) {
        Ok(email) => users::find_by_email(conn.c(), &email).await?,
        Err(_) => None,
    };
    drop(conn);
    let ok = state.passwords.verify(&req.password, user.as_ref().map(|u| &u.password_hash)).await?;
    let mut conn = state.db.conn().await?;
    let known = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|_| ok) else {
        throttle::record_failure(conn.c(), &state.config, &keys).await?;
        drop(conn);
        // A wrong password for an existing account is the owner's business; an unknown email has no owner.
        if let Some(id) = known {
            crate::audit::record(&state, id, "sign_in_failed", &client, serde_json::json!({})).await?;
        }
        tracing::info!("sign-in failed");
        return Err(AppError::Unauthorized("Wrong email or password.".to_owned()));
    };
    throttle::record_success(conn.c(), &keys).await?;
    drop(conn);
    let mut tx = state.db.begin().await?;
    let tokens = start_session(&state, &mut tx, user.id, &client).await?;
    tx.commit().await?;
    crate::audit::record(&state, user.id, "sign_in", &client, serde_json::json!({})).await?;
    tracing::info!(user.id = %user.id, "signed in");
    Ok(Json(tokens))
}

/// A refresh token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from sign-in or the previous refresh.
    pub refresh_token: String,
}

/// Exchange a refresh token for new tokens. The presented token stops working; presenting it again
/// (a sign that it was stolen) ends the whole session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Invalid, expired or reused token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh_session(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>> {
    let now = Timestamp::now();
    let mut tx = state.db.begin().await?;
    match auth::use_refresh_token(tx.c(), &token::hash(req.refresh_token.trim()), now).await? {
        auth::RefreshOutcome::Rotated { session, user, .. } => {
            let refresh = token::generate(token::REFRESH_PREFIX);
            let expires_at = state.refresh_expiry(now);
            auth::insert_refresh_token(tx.c(), session, &token::hash(&refresh), expires_at).await?;
            auth::extend_session(tx.c(), session, expires_at).await?;
            tx.commit().await?;
            Ok(Json(TokenResponse {
                access_token: state.access_token(user, session, now),
                token_type: "Bearer",
                expires_in: state.config.access_token_ttl_secs,
                refresh_token: refresh,
            }))
        }
        auth::RefreshOutcome::Reused => {
            // Commit the revocation before refusing.
            tx.commit().await?;
            tracing::warn!("a used refresh token was presented again: session revoked");
            Err(AppError::Unauthorized("This refresh token was already used; the session has been ended.".to_owned()))
        }
        auth::RefreshOutcome::Invalid => {
            Err(AppError::Unauthorized("The refresh token is invalid or expired; sign in again.".to_owned()))
        }
    }
}

/// Sign out: end the current session (its access and refresh tokens stop working).
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn delete_session(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode> {
    let Via::Session(session) = user.via else {
        return Err(AppError::BadRequest(
            "Personal access tokens have no session; revoke one with DELETE /api/v1/me/tokens/{id}.".to_owned(),
        ));
    };
    let mut conn = state.db.conn().await?;
    auth::revoke_session(conn.c(), user.id, session, Timestamp::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: end every session of the account.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Every session ended"), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn delete_all_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
) -> Result<StatusCode> {
    let mut conn = state.db.conn().await?;
    let n = auth::revoke_sessions_except(conn.c(), user.id, None, Timestamp::now()).await?;
    drop(conn);
    crate::audit::record(&state, user.id, "sessions_revoked", &client, serde_json::json!({"sessions": n})).await?;
    tracing::info!(user.id = %user.id, sessions = n, "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// The current credential.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// The user.
    pub user_id: UserId,
    /// `session` or `personal_token`.
    pub kind: &'static str,
    /// `read` or `read-write`.
    pub scope: TokenScope,
    /// When the access token expires (sessions only).
    pub expires_at: Option<Timestamp>,
}

/// Who am I: the user and credential behind the bearer token.
#[utoipa::path(
    get, path = "/auth/session", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionResponse), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn get_session(user: AuthUser) -> Json<SessionResponse> {
    Json(SessionResponse {
        user_id: user.id,
        kind: match user.via {
            Via::Session(_) => "session",
            Via::PersonalToken(_) => "personal_token",
        },
        scope: user.scope,
        expires_at: user.expires_at.and_then(|s| chrono::DateTime::from_timestamp(s, 0)).map(Timestamp::from_datetime),
    })
}
