//! `/api/v1/me/totp`: two-factor sign-in with an authenticator app (TOTP, RFC 6238) and its one-time
//! recovery codes.
//!
//! Enrolment is two calls: `POST /me/totp` (with the password) returns a new seed, its `otpauth://` URI
//! and a QR code; `POST /me/totp/confirm` with a first code switches two-factor sign-in on and returns
//! ten recovery codes, shown once. Turning it off, or replacing the recovery codes, needs the password
//! and a code. The seed is sealed with the server's encryption key; recovery codes are stored hashed.
//! Every change goes to the audit log. These calls need a signed-in session (not a personal token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use magpie_db::{Conn, security, users};
use magpie_domain::{Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::me::confirm_password;
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::{AuthUser, totp};
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_totp, begin_totp, delete_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(create_recovery_codes))
}

/// Whether a code (for `user`'s confirmed or pending authenticator) is right now, and use it: the step
/// it belongs to is recorded atomically, so the same code never works twice, even at once.
pub(crate) async fn accept_code(
    state: &AppState,
    mut conn: Conn<'_>,
    user: UserId,
    code: &str,
    now: Timestamp,
) -> Result<bool> {
    let Some(row) = security::get_totp(conn.reborrow(), user).await? else { return Ok(false) };
    let seed = state
        .bank
        .keyring
        .open_totp(&row.secret_sealed, user)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot open a two-factor seed: {e}")))?;
    let secret = totp::base32_decode(&seed)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a stored two-factor seed is not base32")))?;
    let Some(step) = totp::verify(&secret, code, now.as_datetime().timestamp(), row.last_step) else {
        return Ok(false);
    };
    Ok(security::use_totp_step(conn, user, step, now).await?)
}

/// Two-factor status.
#[derive(Serialize, ToSchema)]
pub struct TotpStatus {
    /// Sign-in asks for a code.
    pub enabled: bool,
    /// An enrolment waits for its first code.
    pub pending: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

/// Whether two-factor sign-in is on.
#[utoipa::path(
    get, path = "/me/totp", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = TotpStatus), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn get_totp(State(state): State<AppState>, user: AuthUser) -> Result<Json<TotpStatus>> {
    let mut conn = state.db.conn().await?;
    let row = security::get_totp(conn.c(), user.id).await?;
    let left = security::recovery_codes_left(conn.c(), user.id).await?;
    Ok(Json(TotpStatus {
        enabled: row.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
        pending: row.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
        recovery_codes_left: left,
    }))
}

/// The password, to start an enrolment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginTotpRequest {
    /// The account's password.
    pub password: String,
}

/// A new authenticator to add to an app.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The seed in base32, for typing into the app (shown this once).
    pub secret: String,
    /// The `otpauth://totp/…` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code, an SVG document.
    pub qr_svg: String,
}

/// Start adding an authenticator app: returns its seed and QR code. Confirm with a first code.
#[utoipa::path(
    post, path = "/me/totp", tag = "me", security(("bearer" = [])), request_body = BeginTotpRequest,
    responses(
        (status = 201, body = TotpEnrolment),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a signed-in session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Two-factor sign-in is already on", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong password", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn begin_totp(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<BeginTotpRequest>,
) -> Result<(StatusCode, Json<TotpEnrolment>)> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    drop(conn);
    confirm_password(&state, &me, &req.password, &client).await.map_err(password_field)?;
    let secret = totp::generate_secret();
    let sealed = state
        .bank
        .keyring
        .seal_totp(&secret, user.id)
        .map_err(|e| AppError::Unavailable(format!("two-factor sign-in needs the server's encryption key: {e}")))?;
    let mut conn = state.db.conn().await?;
    if !security::begin_totp(conn.c(), user.id, &sealed).await? {
        return Err(AppError::Conflict("Two-factor sign-in is already on; turn it off first to replace it.".into()));
    }
    let uri = totp::otpauth_uri(&secret, me.email.as_str(), "Magpie");
    let qr_svg = totp::qr_svg(&uri);
    Ok((StatusCode::CREATED, Json(TotpEnrolment { secret, otpauth_uri: uri, qr_svg })))
}

fn password_field(e: AppError) -> AppError {
    match e {
        AppError::Validation { .. } => AppError::field("password", "the password is wrong"),
        other => other,
    }
}

/// A code from the app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    /// The 6-digit code the app shows now.
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten codes; each signs in once in place of an app code. Keep them somewhere safe.
    pub recovery_codes: Vec<String>,
}

async fn new_recovery_codes(state: &AppState, user: UserId) -> Result<Vec<String>> {
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(user, c)).collect();
    let mut conn = state.db.conn().await?;
    security::replace_recovery_codes(conn.c(), user, &hashes).await?;
    Ok(codes)
}

/// Switch two-factor sign-in on with a first code from the app; returns the recovery codes.
#[utoipa::path(
    post, path = "/me/totp/confirm", tag = "me", security(("bearer" = [])), request_body = ConfirmTotpRequest,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No enrolment is waiting, or it is already on", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong code", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<ConfirmTotpRequest>,
) -> Result<Json<RecoveryCodes>> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    match security::get_totp(conn.c(), user.id).await? {
        None => return Err(AppError::Conflict("Start with POST /me/totp.".into())),
        Some(t) if t.confirmed_at.is_some() => {
            return Err(AppError::Conflict("Two-factor sign-in is already on.".into()));
        }
        Some(_) => {}
    }
    if !accept_code(&state, conn.c(), user.id, &req.code, Timestamp::now()).await? {
        return Err(AppError::field("code", "the code is wrong; check the app's clock and try the next code"));
    }
    drop(conn);
    let codes = new_recovery_codes(&state, user.id).await?;
    crate::audit::record(&state, user.id, "totp_enabled", &client, serde_json::json!({})).await?;
    tracing::info!(user.id = %user.id, "two-factor sign-in enabled");
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

/// The password and a second factor, for turning two-factor sign-in off or replacing recovery codes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpChangeRequest {
    /// The account's password.
    pub password: String,
    /// A code from the app.
    #[serde(default)]
    pub code: Option<String>,
    /// Or a recovery code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// Check the password and then a code or recovery code.
async fn confirm_both(state: &AppState, user: &AuthUser, client: &ClientInfo, req: &TotpChangeRequest) -> Result<()> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    let enabled = security::get_totp(conn.c(), user.id).await?.is_some_and(|t| t.confirmed_at.is_some());
    drop(conn);
    if !enabled {
        return Err(AppError::Conflict("Two-factor sign-in is not on.".into()));
    }
    confirm_password(state, &me, &req.password, client).await.map_err(password_field)?;
    let now = Timestamp::now();
    let mut conn = state.db.conn().await?;
    let ok = match (req.code.as_deref(), req.recovery_code.as_deref()) {
        (Some(code), _) => accept_code(state, conn.c(), user.id, code, now).await?,
        (None, Some(r)) => {
            security::use_recovery_code(conn.c(), user.id, &totp::recovery_code_hash(user.id, r), now).await?
        }
        (None, None) => return Err(AppError::field("code", "a code from the app (or a recovery code) is needed")),
    };
    if !ok {
        drop(conn);
        crate::audit::record(state, user.id, "second_factor_failed", client, serde_json::json!({})).await?;
        return Err(AppError::field("code", "the code is wrong or was already used"));
    }
    Ok(())
}

/// Turn two-factor sign-in off (needs the password and a code); the recovery codes go too.
#[utoipa::path(
    delete, path = "/me/totp", tag = "me", security(("bearer" = [])), request_body = TotpChangeRequest,
    responses(
        (status = 204, description = "Off"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is not on", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong password or code", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_totp(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<TotpChangeRequest>,
) -> Result<StatusCode> {
    confirm_both(&state, &user, &client, &req).await?;
    let mut conn = state.db.conn().await?;
    security::delete_totp(conn.c(), user.id).await?;
    drop(conn);
    crate::audit::record(&state, user.id, "totp_disabled", &client, serde_json::json!({})).await?;
    tracing::info!(user.id = %user.id, "two-factor sign-in disabled");
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the recovery codes (the old ones stop working); needs the password and a code.
#[utoipa::path(
    post, path = "/me/totp/recovery-codes", tag = "me", security(("bearer" = [])), request_body = TotpChangeRequest,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Two-factor sign-in is not on", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong password or code", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_recovery_codes(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<TotpChangeRequest>,
) -> Result<Json<RecoveryCodes>> {
    confirm_both(&state, &user, &client, &req).await?;
    let codes = new_recovery_codes(&state, user.id).await?;
    crate::audit::record(&state, user.id, "recovery_codes_created", &client, serde_json::json!({})).await?;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}
