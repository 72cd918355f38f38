//! Sign up, sign in and sign out. Sign-in goes through the API's own handler (same throttling, same
//! equal work for unknown emails); its session is then carried by the cookie instead of a bearer token.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::auth::{
    LoginRequest, RegisterRequest, SecondFactorRequest, SignInResponse, TokenResponse, complete_second_factor,
    create_session, create_user,
};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::error::AppError;
use crate::http::extract::ApiJson;
use crate::web::session::{self, Flash, PRE_COOKIE, SESSION_COOKIE, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, filled, page, redirect};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(show_signin).post(submit_signin))
        .route("/signin/second-factor", post(submit_second_factor))
        .route("/signin/passkey/options", post(passkey_options))
        .route("/signin/passkey", post(submit_passkey))
        .route("/signup", get(show_signup).post(submit_signup))
        .route("/signout", post(submit_signout))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    l: Layout,
    signup: bool,
    next: String,
    /// `next`, URL-encoded for links.
    next_q: String,
    /// Email and password sign-in (off in OpenID-Connect-only mode).
    password: bool,
    /// Sign-up is possible (`Some(true)` when it needs an invitation code).
    registration: Option<bool>,
    /// Passkeys are offered.
    passkeys: bool,
    /// The OpenID Connect button's label.
    oidc: Option<String>,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage {
    l: Layout,
    next: String,
    challenge: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `next` only when it is a path of this site (no open redirect). Browsers drop tabs and line breaks
/// from a URL and read `\` as `/`, so `/\t/evil.example` becomes `//evil.example`: any control
/// character, backslash or second leading slash (after such cleaning) sends people home instead.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else { return "/".to_owned() };
    let cleaned: String = n.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let ok = cleaned.starts_with('/')
        && !cleaned[1..].starts_with(['/', '\\'])
        && !n.chars().any(|c| c.is_control() || c == '\\')
        && !cleaned.starts_with("/signout")
        && cleaned.len() <= 2000;
    if ok { cleaned } else { "/".to_owned() }
}

async fn show_form(state: &AppState, headers: &HeaderMap, signup: bool, next: Option<&str>) -> Response {
    let flash = session::cookie(headers, session::FLASH_COOKIE).and_then(|v| Flash::decode(&state.cookie_key, v));
    let existing = session::cookie(headers, PRE_COOKIE).filter(|v| v.len() >= 20 && v.len() <= 100).map(str::to_owned);
    let pre = existing.clone().unwrap_or_else(|| crate::auth::token::generate(""));
    let title = if signup { "Create your account" } else { "Sign in" };
    let csrf = session::csrf_before_sign_in(&state.cookie_key, headers, &pre);
    let shown = flash.is_some();
    let c = &state.config;
    let registration = match (c.oidc_only, c.registration) {
        (true, _) | (_, crate::config::Registration::Closed) => None,
        (_, crate::config::Registration::Open) => Some(false),
        (_, crate::config::Registration::Invite) => Some(true),
    };
    let template = SigninPage {
        l: Layout::public(title, csrf, flash),
        signup,
        next: safe_next(next),
        next_q: super::format::urlencode(&safe_next(next)),
        password: !c.oidc_only,
        registration,
        passkeys: c.public_url.is_some(),
        oidc: c.oidc_issuer.as_ref().map(|_| c.oidc_button_label.clone()),
    };
    let mut res = page(&template, shown);
    if existing.is_none()
        && let Ok(v) =
            HeaderValue::from_str(&session::set_cookie(PRE_COOKIE, &pre, None, session::is_secure(state, headers)))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn show_signin(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    show_form(&state, &headers, false, q.next.as_deref()).await
}

async fn show_signup(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    show_form(&state, &headers, true, q.next.as_deref()).await
}

#[derive(Deserialize)]
pub struct SigninForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// The session cookie for tokens a sign-in issued.
pub fn session_cookie(state: &AppState, headers: &HeaderMap, tokens: &TokenResponse) -> Result<String, AppError> {
    let claims = state
        .jwt
        .verify(&tokens.access_token, chrono::Utc::now().timestamp())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a fresh access token does not verify: {e:?}")))?;
    let value = session::session_cookie_value(&state.cookie_key, claims.sub, claims.sid);
    let max_age = i64::try_from(state.config.refresh_token_ttl_days).unwrap_or(30) * 86_400;
    Ok(session::set_cookie(SESSION_COOKIE, &value, Some(max_age), session::is_secure(state, headers)))
}

/// Signed in: the session cookie, then `next`. The pre-sign-in cookie is dropped: from now on forms
/// carry the session's CSRF token only.
pub fn signed_in(cookie: String, next: &str, state: &AppState, headers: &HeaderMap) -> Response {
    let mut res = redirect(next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(PRE_COOKIE, "", Some(0), session::is_secure(state, headers)))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The page asking for the second factor (rendered, never redirected to: the challenge token must not
/// go into a URL), with `error` when a code was wrong.
fn second_factor_page(
    state: &AppState,
    headers: &HeaderMap,
    challenge: String,
    next: &str,
    error: Option<String>,
) -> Response {
    let pre = session::cookie(headers, PRE_COOKIE).unwrap_or_default();
    let csrf = session::csrf_before_sign_in(&state.cookie_key, headers, pre);
    let flash = error.map(|e| Flash::error(e, Vec::new()));
    page(
        &SecondFactorPage { l: Layout::public("Two-step sign-in", csrf, flash), next: next.to_owned(), challenge },
        false,
    )
}

async fn submit_signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    WebForm(form): WebForm<SigninForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let back = format!("/signin?next={}", super::format::urlencode(&next));
    let login = LoginRequest { email: form.email, password: form.password };
    match create_session(State(state.clone()), client, ApiJson(login)).await {
        Ok(axum::Json(SignInResponse::Tokens(tokens))) => match session_cookie(&state, &headers, &tokens) {
            Ok(cookie) => signed_in(cookie, &next, &state, &headers),
            Err(e) => back_with_error(&state, e, &back),
        },
        Ok(axum::Json(SignInResponse::SecondFactor(c))) => {
            second_factor_page(&state, &headers, c.challenge_token, &next, None)
        }
        Err(e) => back_with_error(&state, e, &back),
    }
}

#[derive(Deserialize)]
pub struct SecondFactorForm {
    challenge: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    recovery_code: String,
    #[serde(default)]
    next: Option<String>,
}

async fn submit_second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    WebForm(form): WebForm<SecondFactorForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let req = SecondFactorRequest {
        challenge_token: form.challenge.clone(),
        code: filled(&form.code),
        recovery_code: filled(&form.recovery_code),
    };
    match complete_second_factor(State(state.clone()), client, ApiJson(req)).await {
        Ok(axum::Json(tokens)) => match session_cookie(&state, &headers, &tokens) {
            Ok(cookie) => signed_in(cookie, &next, &state, &headers),
            Err(e) => back_with_error(&state, e, "/signin"),
        },
        // A wrong code: ask again on the same challenge (it allows a few tries).
        Err(AppError::Unauthorized(detail)) if detail.starts_with("The code") => {
            second_factor_page(&state, &headers, form.challenge, &next, Some(detail))
        }
        Err(e) => back_with_error(&state, e, "/signin"),
    }
}

/// The options for `navigator.credentials.get()`, as JSON for the page's script.
async fn passkey_options(State(state): State<AppState>, WebForm(_): WebForm<Empty>) -> Response {
    match crate::api::passkeys::create_sign_in_options(State(state.clone())).await {
        Ok(json) => json.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    #[serde(default)]
    credential: String,
    #[serde(default)]
    next: Option<String>,
}

async fn submit_passkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    WebForm(form): WebForm<PasskeyForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let back = format!("/signin?next={}", super::format::urlencode(&next));
    let credential = match serde_json::from_str(&form.credential) {
        Ok(c) => c,
        Err(_) => {
            let e = AppError::field("credential", "the browser's passkey answer did not arrive; try again");
            return back_with_error(&state, e, &back);
        }
    };
    let result = async {
        let user = crate::api::passkeys::authenticate(&state, &client, &credential).await?;
        let tokens = crate::api::auth::sign_in(&state, user, &client, "passkey").await?;
        session_cookie(&state, &headers, &tokens)
    }
    .await;
    match result {
        Ok(cookie) => signed_in(cookie, &next, &state, &headers),
        Err(e) => back_with_error(&state, e, &back),
    }
}

#[derive(Deserialize)]
pub struct SignupForm {
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    invite_code: String,
}

async fn submit_signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    WebForm(form): WebForm<SignupForm>,
) -> Response {
    let req = RegisterRequest {
        email: form.email.clone(),
        password: form.password.clone(),
        first_name: filled(&form.first_name),
        last_name: filled(&form.last_name),
        invite_code: filled(&form.invite_code),
    };
    if let Err(e) = create_user(State(state.clone()), client.clone(), ApiJson(req)).await {
        return back_with_error(&state, e, "/signup");
    }
    let login = LoginRequest { email: form.email, password: form.password };
    match create_session(State(state.clone()), client, ApiJson(login)).await {
        Ok(axum::Json(SignInResponse::Tokens(tokens))) => match session_cookie(&state, &headers, &tokens) {
            Ok(cookie) => signed_in(cookie, "/", &state, &headers),
            Err(e) => back_with_error(&state, e, "/signin"),
        },
        Ok(axum::Json(SignInResponse::SecondFactor(c))) => {
            second_factor_page(&state, &headers, c.challenge_token, "/", None)
        }
        Err(e) => back_with_error(&state, e, "/signin"),
    }
}

/// Sign out: the session row is revoked (the cookie is worthless from now on) and the cookie deleted.
async fn submit_signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(sid) = user.auth.session() {
        let mut conn = state.db.conn().await?;
        magpie_db::auth::revoke_session(conn.c(), user.id(), sid, magpie_domain::Timestamp::now()).await?;
    }
    tracing::info!(user.id = %user.id(), "signed out (web)");
    let mut res = super::redirect_with(&state, "/signin", Some(Flash::ok("You are signed out.")));
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(SESSION_COOKIE, "", Some(0), session::is_secure(&state, &headers)))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res.into_response())
}
