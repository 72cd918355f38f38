//! Passkeys (WebAuthn): `/api/v1/me/passkeys` to register, list, rename and remove them, and
//! `/api/v1/auth/passkey` to sign in with one. Offered when `public_url` is configured (a passkey is
//! bound to the site's host). Each ceremony is two calls: options with a fresh challenge (stored for
//! five minutes, usable once, by any replica), then the browser's answer. See
//! [`crate::auth::webauthn`] for what is verified.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::TimeDelta;
use magpie_db::security::{self, Passkey};
use magpie_db::users;
use magpie_domain::{Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{TokenResponse, sign_in};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::webauthn::{self, AssertionCredential, RegistrationCredential, RelyingParty, StoredCredential};
use crate::auth::{AuthUser, throttle, token};
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_passkey_options))
        .routes(routes!(create_passkey, list_passkeys))
        .routes(routes!(rename_passkey, delete_passkey))
        .routes(routes!(create_sign_in_options))
        .routes(routes!(sign_in_with_passkey))
}

/// How long a ceremony's challenge lives.
const CHALLENGE_SECS: i64 = 300;

/// The relying party, or 404 when passkeys are not offered.
pub(crate) fn relying_party(state: &AppState) -> Result<RelyingParty> {
    state.config.public_url.as_deref().and_then(RelyingParty::from_public_url).ok_or_else(|| {
        AppError::NotFoundDetail("Passkeys are not offered: the server's public_url is not configured.".to_owned())
    })
}

/// Store a new challenge for `purpose`; returns its bytes.
async fn new_challenge(state: &AppState, purpose: &str, user: Option<UserId>) -> Result<Vec<u8>> {
    let challenge = token::random_bytes::<32>().to_vec();
    let expires = Timestamp::from_datetime(Timestamp::now().as_datetime() + TimeDelta::seconds(CHALLENGE_SECS));
    let mut conn = state.db.conn().await?;
    security::create_challenge(conn.c(), &challenge_key(&challenge), purpose, user, &serde_json::json!({}), expires)
        .await?;
    Ok(challenge)
}

/// Challenges are stored under the hash of their bytes: the browser's answer names its challenge.
fn challenge_key(challenge: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(challenge).iter().map(|b| format!("{b:02x}")).collect()
}

/// Options for the browser.
#[derive(Serialize, ToSchema)]
pub struct CeremonyOptions {
    /// For `PublicKeyCredential.parseCreationOptionsFromJSON` (registration) or
    /// `parseRequestOptionsFromJSON` (sign-in), then `navigator.credentials.create()` / `.get()`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// A passkey, as listed.
#[derive(Serialize, ToSchema)]
pub struct PasskeyResponse {
    /// Id.
    pub id: uuid::Uuid,
    /// The name given to it.
    pub name: String,
    /// How the browser reaches it (`internal`, `usb`, `hybrid`…).
    pub transports: Vec<String>,
    /// Added.
    pub created_at: Timestamp,
    /// Last sign-in with it.
    pub last_used_at: Option<Timestamp>,
}

impl From<Passkey> for PasskeyResponse {
    fn from(p: Passkey) -> Self {
        PasskeyResponse {
            id: p.id,
            name: p.name,
            transports: p.transports.map(|t| t.split(',').map(str::to_owned).collect()).unwrap_or_default(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// Start adding a passkey: the options for `navigator.credentials.create()`.
#[utoipa::path(
    post, path = "/me/passkeys/options", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = CeremonyOptions),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a signed-in session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Passkeys are not offered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_passkey_options(State(state): State<AppState>, user: AuthUser) -> Result<Json<CeremonyOptions>> {
    user.require_session()?;
    let rp = relying_party(&state)?;
    let mut conn = state.db.conn().await?;
    let me = users::get(conn.c(), user.id).await?.ok_or(AppError::NotFound)?;
    let existing: Vec<String> =
        security::list_passkeys(conn.c(), user.id).await?.into_iter().map(|p| p.credential_id).collect();
    drop(conn);
    let challenge = new_challenge(&state, "passkey_register", Some(user.id)).await?;
    let options = rp.creation_options(&challenge, user.id.0.as_bytes(), me.email.as_str(), &existing);
    Ok(Json(CeremonyOptions { options }))
}

/// A new passkey.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePasskeyRequest {
    /// A name to recognise it by (1 to 100 characters), e.g. "Laptop".
    pub name: String,
    /// `credential.toJSON()` of what `navigator.credentials.create()` returned.
    pub credential: RegistrationCredential,
}

/// Add a passkey: the browser's answer to the options.
#[utoipa::path(
    post, path = "/me/passkeys", tag = "me", security(("bearer" = [])), request_body = CreatePasskeyRequest,
    responses(
        (status = 201, body = PasskeyResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This passkey is registered already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid answer to this account's challenge", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_passkey(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<CreatePasskeyRequest>,
) -> Result<(StatusCode, Json<PasskeyResponse>)> {
    user.require_session()?;
    let rp = relying_party(&state)?;
    let name = magpie_domain::input::name(&req.name).map_err(|e| AppError::field("name", e.to_string()))?;
    let refused = |e: webauthn::WebauthnError| AppError::field("credential", e.to_string());
    let challenge = webauthn::challenge_of(&req.credential.response.client_data_json).map_err(refused)?;
    let now = Timestamp::now();
    let mut conn = state.db.conn().await?;
    let stored = security::take_challenge(conn.c(), &challenge_key(&challenge), "passkey_register", now).await?;
    if stored.and_then(|c| c.user_id) != Some(user.id) {
        return Err(refused(webauthn::WebauthnError::Challenge));
    }
    let created = webauthn::verify_registration(&rp, &challenge, &req.credential).map_err(refused)?;
    let passkey = Passkey {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        credential_id: created.credential_id,
        public_key: created.public_key,
        algorithm: created.algorithm as i32,
        sign_count: i64::from(created.sign_count),
        name,
        transports: (!created.transports.is_empty()).then(|| created.transports.join(",")),
        created_at: now,
        last_used_at: None,
    };
    security::create_passkey(conn.c(), &passkey).await.map_err(|e| {
        if e.is_unique_violation() {
            AppError::Conflict("This passkey is registered already.".to_owned())
        } else {
            e.into()
        }
    })?;
    drop(conn);
    crate::audit::record(&state, user.id, "passkey_added", &client, serde_json::json!({"name": passkey.name})).await?;
    Ok((StatusCode::CREATED, Json(passkey.into())))
}

/// The account's passkeys.
#[utoipa::path(
    get, path = "/me/passkeys", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<PasskeyResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_passkeys(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<PasskeyResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(security::list_passkeys(conn.c(), user.id).await?.into_iter().map(Into::into).collect()))
}

/// A new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    /// 1 to 100 characters.
    pub name: String,
}

/// Rename a passkey.
#[utoipa::path(
    patch, path = "/me/passkeys/{id}", tag = "me", security(("bearer" = [])), request_body = RenamePasskeyRequest,
    params(("id" = uuid::Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Renamed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rename_passkey(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
    ApiJson(req): ApiJson<RenamePasskeyRequest>,
) -> Result<StatusCode> {
    user.require_session()?;
    let name = magpie_domain::input::name(&req.name).map_err(|e| AppError::field("name", e.to_string()))?;
    let mut conn = state.db.conn().await?;
    if !security::rename_passkey(conn.c(), user.id, id, &name).await? {
        return Err(AppError::NotFound);
    }
    drop(conn);
    crate::audit::record(&state, user.id, "passkey_renamed", &client, serde_json::json!({"name": name})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a passkey: it no longer signs in.
#[utoipa::path(
    delete, path = "/me/passkeys/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_passkey(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
) -> Result<StatusCode> {
    user.require_session()?;
    let mut conn = state.db.conn().await?;
    if !security::delete_passkey(conn.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    drop(conn);
    crate::audit::record(&state, user.id, "passkey_removed", &client, serde_json::json!({"id": id})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start signing in with a passkey: the options for `navigator.credentials.get()`.
#[utoipa::path(
    post, path = "/auth/passkey/options", tag = "auth",
    responses(
        (status = 200, body = CeremonyOptions),
        (status = 404, description = "Passkeys are not offered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_sign_in_options(State(state): State<AppState>) -> Result<Json<CeremonyOptions>> {
    let rp = relying_party(&state)?;
    let challenge = new_challenge(&state, "passkey_sign_in", None).await?;
    Ok(Json(CeremonyOptions { options: rp.request_options(&challenge) }))
}

/// A passkey's answer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInRequest {
    /// `credential.toJSON()` of what `navigator.credentials.get()` returned.
    pub credential: AssertionCredential,
}

/// Sign in with a passkey (no password, no second factor: the passkey verified the person). Failures
/// are throttled per client address.
#[utoipa::path(
    post, path = "/auth/passkey", tag = "auth", request_body = PasskeySignInRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Not accepted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Passkeys are not offered", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in_with_passkey(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasskeySignInRequest>,
) -> Result<Json<TokenResponse>> {
    let user = authenticate(&state, &client, &req.credential).await?;
    Ok(Json(sign_in(&state, user, &client, "passkey").await?))
}

/// Check a passkey answer and return whose it is (shared by the API and the web sign-in).
pub(crate) async fn authenticate(
    state: &AppState,
    client: &ClientInfo,
    credential: &AssertionCredential,
) -> Result<UserId> {
    let rp = relying_party(state)?;
    let keys = throttle::Keys::new("passkey", client.ip.as_deref());
    let refused = |e: webauthn::WebauthnError| AppError::Unauthorized(format!("The passkey was not accepted: {e}."));
    let now = Timestamp::now();
    let mut conn = state.db.conn().await?;
    let attempt = throttle::reserve(conn.c(), &state.config, &keys).await?;
    let challenge = webauthn::challenge_of(&credential.response.client_data_json).map_err(refused)?;
    if security::take_challenge(conn.c(), &challenge_key(&challenge), "passkey_sign_in", now).await?.is_none() {
        return Err(refused(webauthn::WebauthnError::Challenge));
    }
    let id = credential.id.trim_end_matches('=');
    let Some(passkey) = security::find_passkey(conn.c(), id).await? else {
        return Err(AppError::Unauthorized("This passkey is not registered here (it may have been removed).".into()));
    };
    let stored = StoredCredential {
        public_key: &passkey.public_key,
        sign_count: u32::try_from(passkey.sign_count).unwrap_or(u32::MAX),
        user_handle: passkey.user_id.0.as_bytes(),
    };
    let count = webauthn::verify_assertion(&rp, &challenge, credential, &stored).map_err(refused)?;
    if !security::touch_passkey(conn.c(), passkey.id, i64::from(count), now).await? {
        return Err(refused(webauthn::WebauthnError::Counter));
    }
    throttle::succeeded(conn.c(), attempt, &keys).await?;
    Ok(passkey.user_id)
}
