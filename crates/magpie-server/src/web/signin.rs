//! Sign up, sign in and sign out. Sign-in goes through the API's own handler (same throttling, same
//! equal work for unknown emails); its session is then carried by the cookie instead of a bearer token.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::auth::{LoginRequest, RegisterRequest, create_session, create_user};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::error::AppError;
use crate::http::extract::ApiJson;
use crate::web::session::{self, Flash, PRE_COOKIE, SESSION_COOKIE, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, filled, page, redirect};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(show_signin).post(submit_signin))
        .route("/signup", get(show_signup).post(submit_signup))
        .route("/signout", post(submit_signout))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    l: Layout,
    signup: bool,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `next` only when it is a path of this site (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.starts_with("/signout") => {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn show_form(state: &AppState, headers: &HeaderMap, signup: bool, next: Option<&str>) -> Response {
    let flash = session::cookie(headers, session::FLASH_COOKIE).and_then(|v| Flash::decode(&state.cookie_key, v));
    let existing = session::cookie(headers, PRE_COOKIE).filter(|v| v.len() >= 20 && v.len() <= 100).map(str::to_owned);
    let pre = existing.clone().unwrap_or_else(|| crate::auth::token::generate(""));
    let title = if signup { "Create your account" } else { "Sign in" };
    let csrf = session::csrf_for_pre(&state.cookie_key, &pre);
    let shown = flash.is_some();
    let mut res = page(&SigninPage { l: Layout::public(title, csrf, flash), signup, next: safe_next(next) }, shown);
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

/// Sign in through the API handler, then set the session cookie.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientInfo,
    email: String,
    password: String,
) -> Result<String, AppError> {
    let tokens = create_session(State(state.clone()), client, ApiJson(LoginRequest { email, password })).await?;
    let claims = state
        .jwt
        .verify(&tokens.access_token, chrono::Utc::now().timestamp())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a fresh access token does not verify: {e:?}")))?;
    let value = session::session_cookie_value(&state.cookie_key, claims.sub, claims.sid);
    let max_age = i64::try_from(state.config.refresh_token_ttl_days).unwrap_or(30) * 86_400;
    Ok(session::set_cookie(SESSION_COOKIE, &value, Some(max_age), session::is_secure(state, headers)))
}

fn signed_in(cookie: String, next: &str) -> Response {
    let mut res = redirect(next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn submit_signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    WebForm(form): WebForm<SigninForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    match start(&state, &headers, client, form.email, form.password).await {
        Ok(cookie) => signed_in(cookie, &next),
        Err(e) => back_with_error(&state, e, &format!("/signin?next={}", super::format::urlencode(&next))),
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
    };
    if let Err(e) = create_user(State(state.clone()), ApiJson(req)).await {
        return back_with_error(&state, e, "/signup");
    }
    match start(&state, &headers, client, form.email, form.password).await {
        Ok(cookie) => signed_in(cookie, "/"),
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
