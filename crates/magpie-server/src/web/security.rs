//! Settings, sign-in security: the authenticator app (set up with a QR code, recovery codes shown once,
//! turned off with the password and a code), passkeys (added through the browser's WebAuthn API by
//! `app.js`, renamed, removed) and identities at the OpenID Connect provider. Every form calls the
//! API's handler, so the rules (password needed, sessions only, audit log) are the API's.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde::Deserialize;

use crate::api::passkeys::{CreatePasskeyRequest, RenamePasskeyRequest, create_passkey, create_passkey_options};
use crate::api::totp::{BeginTotpRequest, ConfirmTotpRequest, TotpChangeRequest};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::http::extract::ApiJson;
use crate::web::session::{Flash, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, filled, finish, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/totp", post(begin_totp))
        .route("/settings/totp/confirm", post(confirm_totp))
        .route("/settings/totp/disable", post(disable_totp))
        .route("/settings/totp/recovery-codes", post(new_recovery_codes))
        .route("/settings/passkeys/options", post(passkey_options))
        .route("/settings/passkeys", post(add_passkey))
        .route("/settings/passkeys/{id}/rename", post(rename_passkey))
        .route("/settings/passkeys/{id}/remove", post(remove_passkey))
        .route("/settings/identities/{id}/remove", post(remove_identity))
}

#[derive(Template)]
#[template(path = "totp_setup.html")]
struct TotpSetupPage {
    l: Layout,
    secret: String,
    qr: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage {
    l: Layout,
    codes: Vec<String>,
}

/// A page holding a secret: never kept in the browser's history cache.
fn secret_page(template: &impl Template) -> Response {
    let mut res = page(template, false);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

async fn begin_totp(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<PasswordForm>,
) -> Response {
    let req = BeginTotpRequest { password: f.password };
    match crate::api::totp::begin_totp(State(state.clone()), user.auth, client, ApiJson(req)).await {
        Ok((_, axum::Json(e))) => {
            let qr = format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes())
            );
            let l = Layout::new(&user, "Set up the authenticator app", "settings");
            secret_page(&TotpSetupPage { l, secret: e.secret, qr })
        }
        Err(e) => back_with_error(&state, e, "/settings"),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn confirm_totp(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<CodeForm>,
) -> Response {
    let req = ConfirmTotpRequest { code: f.code };
    match crate::api::totp::confirm_totp(State(state.clone()), user.auth, client, ApiJson(req)).await {
        Ok(axum::Json(r)) => {
            let l = Layout {
                flash: Some(Flash::ok("Two-step sign-in is on.")),
                ..Layout::new(&user, "Recovery codes", "settings")
            };
            secret_page(&RecoveryCodesPage { l, codes: r.recovery_codes })
        }
        Err(e) => back_with_error(&state, e, "/settings"),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

impl ChangeForm {
    /// A code of the app, or (longer) a recovery code, in the one field.
    fn request(self) -> TotpChangeRequest {
        let code = self.code.trim().to_owned();
        let digits = code.chars().filter(|c| !c.is_whitespace()).all(|c| c.is_ascii_digit());
        TotpChangeRequest {
            password: self.password,
            code: (digits && !code.is_empty()).then(|| code.clone()),
            recovery_code: (!digits).then_some(code),
        }
    }
}

async fn disable_totp(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<ChangeForm>,
) -> Response {
    let result = crate::api::totp::delete_totp(State(state.clone()), user.auth, client, ApiJson(f.request())).await;
    finish(&state, result, "/settings", |_| "Two-step sign-in is off.".into())
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<ChangeForm>,
) -> Response {
    let result =
        crate::api::totp::create_recovery_codes(State(state.clone()), user.auth, client, ApiJson(f.request())).await;
    match result {
        Ok(axum::Json(r)) => secret_page(&RecoveryCodesPage {
            l: Layout::new(&user, "Recovery codes", "settings"),
            codes: r.recovery_codes,
        }),
        Err(e) => back_with_error(&state, e, "/settings"),
    }
}

/// The options for `navigator.credentials.create()`, as JSON for the page's script.
async fn passkey_options(
    State(state): State<AppState>,
    user: WebUser,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let options = create_passkey_options(State(state), user.auth).await?;
    Ok(options.into_response())
}

#[derive(Deserialize)]
pub struct AddPasskeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
}

async fn add_passkey(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<AddPasskeyForm>,
) -> Response {
    let credential = match serde_json::from_str(&f.credential) {
        Ok(c) => c,
        Err(_) => {
            let e = crate::error::AppError::field("credential", "the browser's answer did not arrive; try again");
            return back_with_error(&state, e, "/settings");
        }
    };
    let name = filled(&f.name).unwrap_or_else(|| "Passkey".to_owned());
    let req = CreatePasskeyRequest { name, credential };
    let result = create_passkey(State(state.clone()), user.auth, client, ApiJson(req)).await;
    finish(&state, result, "/settings", |(_, p)| format!("Passkey “{}” added.", p.0.name))
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

async fn rename_passkey(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
    WebForm(f): WebForm<RenameForm>,
) -> Response {
    let req = RenamePasskeyRequest { name: f.name };
    let result =
        crate::api::passkeys::rename_passkey(State(state.clone()), user.auth, client, Path(id), ApiJson(req)).await;
    finish(&state, result, "/settings", |_| "Passkey renamed.".into())
}

async fn remove_passkey(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = crate::api::passkeys::delete_passkey(State(state.clone()), user.auth, client, Path(id)).await;
    finish(&state, result, "/settings", |_| "Passkey removed.".into())
}

async fn remove_identity(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    Path(id): Path<uuid::Uuid>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = crate::api::identities::delete_identity(State(state.clone()), user.auth, client, Path(id)).await;
    finish(&state, result, "/settings", |_| "Identity unlinked.".into())
}
