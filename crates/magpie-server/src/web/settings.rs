//! Settings: profile, password, personal access tokens, export of the ledger, account deletion.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use magpie_domain::{TokenId, TokenScope};
use serde::Deserialize;

use crate::api::me::{
    ChangePasswordRequest, CreateTokenRequest, DeleteMeRequest, UpdateMeRequest, change_password, create_token,
    delete_me, delete_token, get_me, list_tokens, update_me,
};
use crate::api::transactions::{ListQuery, list_page};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::http::extract::ApiJson;
use crate::web::session::{self, Flash, SESSION_COOKIE, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, finish, page, redirect_with};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(show_settings))
        .route("/settings/profile", post(save_profile))
        .route("/settings/password", post(save_password))
        .route("/settings/tokens", post(add_token))
        .route("/settings/tokens/{id}/revoke", post(revoke_token))
        .route("/settings/export.csv", get(export_csv))
        .route("/settings/export.zip", get(export_zip))
        .route("/settings/delete", post(delete_account))
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub prefix: String,
    pub created: String,
    pub expires: String,
    pub used: String,
}

pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub added: String,
    pub used: String,
}

pub struct IdentityRow {
    pub id: String,
    pub issuer: String,
    pub email: String,
    pub added: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    l: Layout,
    email: String,
    first_name: String,
    last_name: String,
    tokens: Vec<TokenRow>,
    new_token: String,
    activity: Vec<(String, String, String)>,
    totp_enabled: bool,
    recovery_left: i64,
    passkeys_offered: bool,
    passkeys: Vec<PasskeyRow>,
    oidc: Option<String>,
    identities: Vec<IdentityRow>,
}

async fn render(state: &AppState, user: &WebUser, new_token: String) -> Result<Response, WebError> {
    let me = get_me(State(state.clone()), user.auth).await?.0;
    let fmt = |t: Option<magpie_domain::Timestamp>| {
        t.map(|t| t.as_datetime().format("%Y-%m-%d").to_string()).unwrap_or_else(|| "—".into())
    };
    let tokens = list_tokens(State(state.clone()), user.auth)
        .await?
        .0
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            scope: t.scope.as_str().to_lowercase(),
            prefix: t.token_prefix,
            created: fmt(Some(t.created_at)),
            expires: fmt(t.expires_at),
            used: fmt(t.last_used_at),
        })
        .collect();
    let (activity, totp, recovery_left, passkeys, identities) = {
        use magpie_db::security;
        let mut conn = state.db.conn().await?;
        (
            magpie_db::audit::list(conn.c(), user.id(), 20).await?,
            security::get_totp(conn.c(), user.id()).await?,
            security::recovery_codes_left(conn.c(), user.id()).await?,
            security::list_passkeys(conn.c(), user.id()).await?,
            security::list_identities(conn.c(), user.id()).await?,
        )
    };
    let passkeys = passkeys
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id.to_string(),
            name: p.name,
            added: fmt(Some(p.created_at)),
            used: fmt(p.last_used_at),
        })
        .collect();
    let identities = identities
        .into_iter()
        .map(|i| IdentityRow {
            id: i.id.to_string(),
            issuer: i.issuer,
            email: i.email.unwrap_or_default(),
            added: fmt(Some(i.created_at)),
        })
        .collect();
    let activity = activity
        .into_iter()
        .map(|e| {
            let what = match e.kind.as_str() {
                "sign_in" => "Signed in".to_owned(),
                "sign_in_failed" => "Failed sign-in (wrong password)".to_owned(),
                "password_changed" => "Password changed".to_owned(),
                "email_changed" => "Email changed".to_owned(),
                "token_created" => format!("Token “{}” created", e.detail.0["name"].as_str().unwrap_or("")),
                "token_revoked" => "Token revoked".to_owned(),
                "sessions_revoked" => "Signed out everywhere".to_owned(),
                "connection_created" => format!("Bank connected: {}", e.detail.0["institution"].as_str().unwrap_or("")),
                "connection_deleted" => format!("Bank removed: {}", e.detail.0["institution"].as_str().unwrap_or("")),
                "export" => "Data exported".to_owned(),
                "import" => "Data imported from an export".to_owned(),
                "second_factor_failed" => "Wrong two-step code".to_owned(),
                "totp_enabled" => "Two-step sign-in turned on".to_owned(),
                "totp_disabled" => "Two-step sign-in turned off".to_owned(),
                "recovery_codes_created" => "New recovery codes".to_owned(),
                "recovery_code_used" => "Recovery code used".to_owned(),
                "passkey_added" => format!("Passkey “{}” added", e.detail.0["name"].as_str().unwrap_or("")),
                "passkey_renamed" => "Passkey renamed".to_owned(),
                "passkey_removed" => "Passkey removed".to_owned(),
                "identity_linked" => "Identity provider linked".to_owned(),
                "identity_removed" => "Identity provider unlinked".to_owned(),
                other => other.to_owned(),
            };
            let from = [e.client_ip.unwrap_or_default(), e.user_agent.unwrap_or_default()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" · ");
            (e.created_at.as_datetime().format("%Y-%m-%d %H:%M UTC").to_string(), what, from)
        })
        .collect();
    let tpl = SettingsPage {
        l: Layout::new(user, "Settings", "settings"),
        email: me.email.to_string(),
        first_name: me.first_name.unwrap_or_default(),
        last_name: me.last_name.unwrap_or_default(),
        tokens,
        new_token,
        activity,
        totp_enabled: totp.is_some_and(|t| t.confirmed_at.is_some()),
        recovery_left,
        passkeys_offered: state.config.public_url.is_some(),
        passkeys,
        oidc: state.oidc.as_ref().map(|_| state.config.oidc_button_label.clone()),
        identities,
    };
    Ok(page(&tpl, user.flash.is_some()))
}

async fn show_settings(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    render(&state, &user, String::new()).await
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    current_password: String,
}

async fn save_profile(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<ProfileForm>,
) -> Response {
    let name = |s: &str| Some((!s.trim().is_empty()).then(|| s.trim().to_owned()));
    let email = f.email.trim().to_lowercase();
    let changing_email = !email.is_empty() && email != user.email;
    let req = UpdateMeRequest {
        first_name: name(&f.first_name),
        last_name: name(&f.last_name),
        email: changing_email.then_some(email),
        current_password: (changing_email && !f.current_password.is_empty()).then_some(f.current_password),
    };
    let result = update_me(State(state.clone()), user.auth, client, ApiJson(req)).await;
    finish(&state, result, "/settings", |_| "Profile saved.".into())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn save_password(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<PasswordForm>,
) -> Response {
    let req = ChangePasswordRequest { current_password: f.current_password, new_password: f.new_password };
    let result = change_password(State(state.clone()), user.auth, client, ApiJson(req)).await;
    finish(&state, result, "/settings", |_| "Password changed. Your other sessions were signed out.".into())
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires: String,
}

/// A new token is shown on the page that answers the form, once, and never put in a cookie or URL.
async fn add_token(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<TokenForm>,
) -> Result<Response, WebError> {
    let scope = if f.scope == "read" { TokenScope::Read } else { TokenScope::ReadWrite };
    let expires_at = match f.expires.trim() {
        "" => None,
        d => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => d.and_hms_opt(23, 59, 59).map(|t| t.and_utc()),
            Err(_) => {
                return Ok(back_with_error(
                    &state,
                    crate::error::AppError::field("expires", "a date, YYYY-MM-DD"),
                    "/settings",
                ));
            }
        },
    };
    let req = CreateTokenRequest { name: f.name.trim().to_owned(), scope, expires_at };
    match create_token(State(state.clone()), user.auth, client, ApiJson(req)).await {
        Ok((_, t)) => {
            let shown = WebUser {
                flash: Some(Flash::ok(format!("Token “{}” created. Copy it now: it is not shown again.", t.0.name))),
                ..user
            };
            let mut res = render(&state, &shown, t.0.token.clone().unwrap_or_default()).await?;
            // The page holds a secret: the browser must not keep it in its history cache.
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        Err(e) => Ok(back_with_error(&state, e, "/settings")),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    Path(id): Path<TokenId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = delete_token(State(state.clone()), user.auth, client, Path(id)).await;
    finish(&state, result, "/settings", |_| "Token revoked.".into())
}

/// Everything, as the API's export zip.
async fn export_zip(State(state): State<AppState>, user: WebUser, client: ClientInfo) -> Result<Response, WebError> {
    Ok(crate::api::export::export_me(State(state), user.auth, client).await?)
}

/// Every live transaction as CSV (`date,description,amount,type,category,source`), oldest first.
async fn export_csv(State(state): State<AppState>, user: WebUser, client: ClientInfo) -> Result<Response, WebError> {
    let mut out = String::from("date,description,amount,type,category,source\n");
    let mut cursor: Option<String> = None;
    loop {
        let params =
            ListQuery { sort: Some("date".into()), limit: Some(500), cursor: cursor.clone(), ..ListQuery::default() }
                .parse()?;
        let page = list_page(&state, user.id(), &params).await?;
        for t in &page.items {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                t.date,
                crate::api::export::csv_cell(&t.description),
                t.amount,
                t.kind.as_str(),
                crate::api::export::csv_cell(t.category.as_str()),
                t.source.as_str()
            ));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    tracing::info!(user.id = %user.id(), "ledger exported (web)");
    crate::audit::record(&state, user.id(), "export", &client, serde_json::json!({"format": "csv"})).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"magpie-transactions.csv\""),
        ],
        out,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    password: String,
}

async fn delete_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<DeleteForm>,
) -> Response {
    match delete_me(State(state.clone()), user.auth, client, ApiJson(DeleteMeRequest { password: f.password })).await {
        Ok(_) => {
            let mut res =
                redirect_with(&state, "/signin", Some(Flash::ok("Your account and all its data were deleted.")));
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
                SESSION_COOKIE,
                "",
                Some(0),
                session::is_secure(&state, &headers),
            )) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => back_with_error(&state, e, "/settings"),
    }
}
