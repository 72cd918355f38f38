//! `/api/v1/auth`: registration, sign-in (with a second factor when the account has one), token
//! refresh, sign-out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::TimeDelta;
use magpie_db::{DbTx, auth, security, users};
use magpie_domain::{Email, NewPassword, SessionId, Timestamp, TokenScope, UserId, parse_name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::{AuthUser, Via, throttle, token, totp};
use crate::config::Registration;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(create_session))
        .routes(routes!(complete_second_factor))
        .routes(routes!(get_sign_in_methods))
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
    /// The invitation code (`magpie user invite`), when sign-up is by invitation.
    #[serde(default)]
    pub invite_code: Option<String>,
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

/// Register an account. Open to anyone unless the server's `registration` is `invite` (an
/// `invite_code` is needed) or `closed`; sign-ups per client address are throttled.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 403, description = "Sign-up is closed or needs an invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many sign-ups from this address", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserResponse>)> {
    let mode = state.config.registration;
    if mode == Registration::Closed || state.config.oidc_only {
        return Err(AppError::Forbidden(
            "Sign-up is closed on this server; ask its operator for an account.".to_owned(),
        ));
    }
    let mut v = Validator::new();
    let email = v.check("email", Email::parse(&req.email));
    let password = v.check("password", NewPassword::parse(&req.password));
    let first_name = v.check("first_name", parse_name("first_name", req.first_name.as_deref().unwrap_or_default()));
    let last_name = v.check("last_name", parse_name("last_name", req.last_name.as_deref().unwrap_or_default()));
    let invite = req.invite_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if mode == Registration::Invite && invite.is_none() {
        v.error("invite_code", "an invitation code is needed to sign up on this server");
    }
    v.finish()?;
    let (Some(email), Some(password), Some(first_name), Some(last_name)) = (email, password, first_name, last_name)
    else {
        unreachable!("Validator::finish returned Ok, so every field parsed");
    };
    let taken = || AppError::Conflict("An account with this email already exists.".to_owned());
    // Throttled, and a taken email is refused, before the expensive hash: sign-ups cost no CPU for free.
    let mut conn = state.db.conn().await?;
    throttle::reserve_registration(conn.c(), &state.config, client.ip.as_deref()).await?;
    if users::find_by_email(conn.c(), &email).await?.is_some() {
        return Err(taken());
    }
    drop(conn);
    let password_hash = state.passwords.hash(&password).await?;
    let mut tx = state.db.begin().await?;
    let invite_hash = invite.filter(|_| mode == Registration::Invite).map(token::hash);
    if let Some(hash) = &invite_hash
        && !security::use_invite(tx.c(), hash, email.as_str(), Timestamp::now()).await?
    {
        return Err(AppError::field(
            "invite_code",
            "the invitation code is unknown, used, expired or for another email",
        ));
    }
    let user = users::create(tx.c(), &users::NewUser { email, password_hash, first_name, last_name })
        .await
        .map_err(|e| if e.is_unique_violation() { taken() } else { e.into() })?;
    if let Some(hash) = &invite_hash {
        security::invite_used_by(tx.c(), hash, user.id).await?;
    }
    tx.commit().await?;
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

/// What a password sign-in answers: tokens, or (when the account has two-factor sign-in) a challenge to
/// complete with `POST /auth/second-factor`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInResponse {
    /// Signed in.
    Tokens(TokenResponse),
    /// The password was right; a second factor is needed.
    SecondFactor(SecondFactorChallenge),
}

/// A pending sign-in waiting for its second factor.
#[derive(Serialize, ToSchema)]
pub struct SecondFactorChallenge {
    /// Always true.
    pub second_factor_required: bool,
    /// Send back with the code to `POST /auth/second-factor` (single use, 5 minutes).
    pub challenge_token: String,
    /// What may complete it: `totp` (a code from the authenticator app), `recovery_code`.
    pub methods: Vec<&'static str>,
    /// Seconds the challenge stays valid.
    pub expires_in: u64,
}

/// How long a second-factor challenge lasts.
const CHALLENGE_SECS: i64 = 300;
/// Wrong codes one challenge takes before it is void (sign in again).
const CHALLENGE_ATTEMPTS: i32 = 5;

/// Sign in. A wrong password and an unknown email get the same answer after the same amount of work.
/// Attempts are throttled per account and address, per address, and per account (429 with
/// `Retry-After`); each attempt is counted before the password is checked. When the account has a
/// second factor, the answer is a challenge instead of tokens.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = SignInResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Passwords are turned off (OpenID Connect only)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<SignInResponse>> {
    if state.config.oidc_only {
        return Err(AppError::Forbidden(format!(
            "This server signs in through {} only.",
            state.config.oidc_issuer.as_deref().unwrap_or("its identity provider")
        )));
    }
    let keys = throttle::Keys::new(&req.email, client.ip.as_deref());
    let mut conn = state.db.conn().await?;
    let attempt = throttle::reserve(conn.c(), &state.config, &keys).await?;
    let user = match Email::parse(&req.email) {
        Ok(email) => users::find_by_email(conn.c(), &email).await?,
        Err(_) => None,
    };
    drop(conn);
    let ok = state.passwords.verify(&req.password, user.as_ref().map(|u| &u.password_hash)).await?;
    let known = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|_| ok) else {
        // The reserved attempt stays: it is the failure's record.
        drop(attempt);
        // A wrong password for an existing account is the owner's business; an unknown email has no owner.
        if let Some(id) = known {
            crate::audit::record(&state, id, "sign_in_failed", &client, serde_json::json!({})).await?;
        }
        tracing::info!("sign-in failed");
        return Err(AppError::Unauthorized("Wrong email or password.".to_owned()));
    };
    let mut conn = state.db.conn().await?;
    throttle::succeeded(conn.c(), attempt, &keys).await?;
    let totp = security::get_totp(conn.c(), user.id).await?.filter(|t| t.confirmed_at.is_some());
    if totp.is_some() {
        let challenge = token::generate(token::CHALLENGE_PREFIX);
        let expires = Timestamp::from_datetime(Timestamp::now().as_datetime() + TimeDelta::seconds(CHALLENGE_SECS));
        let payload = serde_json::json!({"email": user.email.as_str()});
        security::create_challenge(
            conn.c(),
            &token::hash(&challenge),
            "second_factor",
            Some(user.id),
            &payload,
            expires,
        )
        .await?;
        tracing::info!(user.id = %user.id, "password accepted; waiting for the second factor");
        return Ok(Json(SignInResponse::SecondFactor(SecondFactorChallenge {
            second_factor_required: true,
            challenge_token: challenge,
            methods: vec!["totp", "recovery_code"],
            expires_in: CHALLENGE_SECS as u64,
        })));
    }
    drop(conn);
    let tokens = sign_in(&state, user.id, &client, "password").await?;
    Ok(Json(SignInResponse::Tokens(tokens)))
}

/// Start a session for a user whose credentials were all checked, and record it in the audit log.
pub async fn sign_in(state: &AppState, user: UserId, client: &ClientInfo, method: &str) -> Result<TokenResponse> {
    let mut tx = state.db.begin().await?;
    let tokens = start_session(state, &mut tx, user, client).await?;
    tx.commit().await?;
    crate::audit::record(state, user, "sign_in", client, serde_json::json!({"method": method})).await?;
    tracing::info!(user.id = %user, method, "signed in");
    Ok(tokens)
}

/// The second step of a sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRequest {
    /// From the sign-in's answer.
    pub challenge_token: String,
    /// The 6-digit code of the authenticator app.
    #[serde(default)]
    pub code: Option<String>,
    /// Or one of the recovery codes (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// Complete a sign-in with the second factor: a code from the authenticator app (each code works
/// once) or a recovery code. Wrong codes are throttled like passwords, and a challenge is void after
/// five of them.
#[utoipa::path(
    post, path = "/auth/second-factor", tag = "auth", request_body = SecondFactorRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong code, or the challenge is invalid or expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complete_second_factor(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<SecondFactorRequest>,
) -> Result<Json<TokenResponse>> {
    let (code, recovery) = (
        req.code.as_deref().map(str::trim).filter(|c| !c.is_empty()),
        req.recovery_code.as_deref().map(str::trim).filter(|c| !c.is_empty()),
    );
    if code.is_some() == recovery.is_some() {
        return Err(AppError::field("code", "send either code or recovery_code"));
    }
    let hash = token::hash(req.challenge_token.trim());
    let now = Timestamp::now();
    let void = || AppError::Unauthorized("The sign-in has expired or is not valid; sign in again.".to_owned());
    let mut conn = state.db.conn().await?;
    let challenge = security::get_challenge(conn.c(), &hash, "second_factor", now).await?.ok_or_else(void)?;
    let user = challenge.user_id.ok_or_else(void)?;
    let email = challenge.payload.0["email"].as_str().unwrap_or_default().to_owned();
    let keys = throttle::Keys::new(&email, client.ip.as_deref());
    let attempt = throttle::reserve(conn.c(), &state.config, &keys).await?;
    if challenge.attempts >= CHALLENGE_ATTEMPTS {
        security::delete_challenge(conn.c(), &hash).await?;
        return Err(void());
    }
    let accepted = match (code, recovery) {
        (Some(code), _) => crate::api::totp::accept_code(&state, conn.c(), user, code, now).await?,
        (_, Some(recovery)) => {
            let used =
                security::use_recovery_code(conn.c(), user, &totp::recovery_code_hash(user, recovery), now).await?;
            if used {
                let left = security::recovery_codes_left(conn.c(), user).await?;
                drop(conn);
                crate::audit::record(&state, user, "recovery_code_used", &client, serde_json::json!({"left": left}))
                    .await?;
                conn = state.db.conn().await?;
            }
            used
        }
        (None, None) => false,
    };
    if !accepted {
        drop(attempt);
        let attempts = security::fail_challenge(conn.c(), &hash).await?;
        drop(conn);
        crate::audit::record(&state, user, "second_factor_failed", &client, serde_json::json!({"attempts": attempts}))
            .await?;
        return Err(AppError::Unauthorized("The code is wrong or was already used.".to_owned()));
    }
    // Exactly one request completes a challenge.
    if security::take_challenge(conn.c(), &hash, "second_factor", now).await?.is_none() {
        return Err(void());
    }
    throttle::succeeded(conn.c(), attempt, &keys).await?;
    drop(conn);
    let method = if code.is_some() { "password+totp" } else { "password+recovery_code" };
    Ok(Json(sign_in(&state, user, &client, method).await?))
}

/// How this server lets people sign in.
#[derive(Serialize, ToSchema)]
pub struct SignInMethods {
    /// Email and password (off in OpenID-Connect-only mode).
    pub password: bool,
    /// `open`, `invite` or `closed`.
    pub registration: &'static str,
    /// Passkeys (WebAuthn), when `public_url` is configured.
    pub passkeys: bool,
    /// The OpenID Connect provider's button label, when one is configured (the web app's
    /// `/auth/oidc/start` starts it).
    pub oidc: Option<String>,
}

/// The sign-in methods this server offers.
#[utoipa::path(get, path = "/auth/methods", tag = "auth", responses((status = 200, body = SignInMethods)))]
pub async fn get_sign_in_methods(State(state): State<AppState>) -> Json<SignInMethods> {
    let c = &state.config;
    Json(SignInMethods {
        password: !c.oidc_only,
        registration: if c.oidc_only {
            "closed"
        } else {
            match c.registration {
                Registration::Open => "open",
                Registration::Invite => "invite",
                Registration::Closed => "closed",
            }
        },
        passkeys: c.public_url.is_some(),
        oidc: c.oidc_issuer.as_ref().map(|_| c.oidc_button_label.clone()),
    })
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
        auth::RefreshOutcome::Rotated { session, user, created_at, .. } => {
            let refresh = token::generate(token::REFRESH_PREFIX);
            // Refreshing slides the session forward, but never past its absolute end.
            let absolute_end = Timestamp::from_datetime(
                created_at.as_datetime() + TimeDelta::days(state.config.session_max_days as i64),
            );
            if absolute_end <= now {
                return Err(AppError::Unauthorized(
                    "The session has reached its maximum age; sign in again.".to_owned(),
                ));
            }
            let expires_at = state.refresh_expiry(now).min(absolute_end);
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
        return Err(AppError::Forbidden(
            "Personal access tokens have no session; revoke one with DELETE /api/v1/me/tokens/{id}.".to_owned(),
        ));
    };
    let mut conn = state.db.conn().await?;
    auth::revoke_session(conn.c(), user.id, session, Timestamp::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options of signing out everywhere.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutAllQuery {
    /// Also revoke every personal access token (scripts stop working until given a new one).
    #[serde(default)]
    pub include_tokens: bool,
}

/// Sign out everywhere: end every session of the account (and with `include_tokens=true` revoke every
/// personal access token). Needs a signed-in session: a personal access token cannot sign its owner out.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])), params(LogoutAllQuery),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Called with a personal access token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_all_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiQuery(q): ApiQuery<LogoutAllQuery>,
) -> Result<StatusCode> {
    user.require_session()?;
    let now = Timestamp::now();
    let mut tx = state.db.begin().await?;
    let n = auth::revoke_sessions_except(tx.c(), user.id, None, now).await?;
    let tokens = if q.include_tokens { auth::revoke_personal_tokens(tx.c(), user.id, now).await? } else { 0 };
    tx.commit().await?;
    let detail = serde_json::json!({"sessions": n, "personal_tokens": tokens});
    crate::audit::record(&state, user.id, "sessions_revoked", &client, detail).await?;
    tracing::info!(user.id = %user.id, sessions = n, personal_tokens = tokens, "signed out everywhere");
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
