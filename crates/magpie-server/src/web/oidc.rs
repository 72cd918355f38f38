//! Sign-in through the OpenID Connect provider, and linking it to an existing account, in the browser.
//!
//! `GET /auth/oidc/start` (or the settings page's "link" form) stores the sign-in's `state`, `nonce`
//! and PKCE verifier as a single-use challenge (any replica can finish it), puts `state` in an HttpOnly
//! cookie (a callback in another browser, or a second one, is refused: no login CSRF), and sends the
//! browser to the provider. `GET /auth/oidc/callback` checks all of that, exchanges the code and
//! validates the ID token ([`crate::auth::oidc`]), applies the allowed domains and groups, then:
//! * an identity already linked (same issuer and subject) signs its account in;
//! * in link mode, the identity is linked to the signed-in account;
//! * otherwise, with a verified email no account has, a new account is created (when
//!   `oidc_create_accounts`); an email that an account already has is never linked on its own: the
//!   person signs in with the password and links the provider from Settings.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::TimeDelta;
use magpie_db::{security, users};
use magpie_domain::{Email, PasswordHash, Timestamp, UserId};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::auth::oidc::{self, Identity};
use crate::auth::token;
use crate::config::Config;
use crate::error::AppError;
use crate::web::session::{self, Flash, WebUser};
use crate::web::signin::{safe_next, session_cookie, signed_in};
use crate::web::{Empty, WebError, WebForm, redirect, redirect_with};

/// The cookie holding the sign-in's `state`.
const STATE_COOKIE: &str = "magpie_oidc";
/// How long a sign-in at the provider may take.
const STATE_SECS: i64 = 600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/start", get(start_sign_in))
        .route(oidc::CALLBACK_PATH, get(finish))
        .route("/settings/identities/link", post(start_link))
}

#[derive(Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    next: Option<String>,
}

fn provider(state: &AppState) -> Result<&oidc::OidcClient, AppError> {
    state.oidc.as_ref().ok_or_else(|| AppError::NotFoundDetail("No identity provider is configured.".to_owned()))
}

/// Store the sign-in and send the browser to the provider.
async fn begin(state: &AppState, headers: &HeaderMap, next: &str, link: Option<UserId>) -> Result<Response, AppError> {
    let client = provider(state)?;
    let (state_value, nonce, verifier) = (oidc::random_value(), oidc::random_value(), oidc::random_value());
    let url = client.authorization_url(&state_value, &nonce, &verifier).await.map_err(oidc_error)?;
    let payload = serde_json::json!({"nonce": nonce, "verifier": verifier, "next": next, "link": link});
    let expires = Timestamp::from_datetime(Timestamp::now().as_datetime() + TimeDelta::seconds(STATE_SECS));
    let mut conn = state.db.conn().await?;
    security::create_challenge(conn.c(), &token::hash(&state_value), "oidc", link, &payload, expires).await?;
    let mut res = redirect(&url);
    let cookie = session::set_cookie(STATE_COOKIE, &state_value, Some(STATE_SECS), session::is_secure(state, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

async fn start_sign_in(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<StartQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    match begin(&state, &headers, &next, None).await {
        Ok(res) => res,
        Err(e) => redirect_with(&state, "/signin", Some(Flash::error(e.problem().detail, Vec::new()))),
    }
}

async fn start_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    match begin(&state, &headers, "/settings", Some(user.id())).await {
        Ok(res) => Ok(res),
        Err(e) => Ok(redirect_with(&state, "/settings", Some(Flash::error(e.problem().detail, Vec::new())))),
    }
}

fn oidc_error(e: oidc::OidcError) -> AppError {
    match e {
        oidc::OidcError::Unavailable(_) => AppError::Unavailable(e.to_string()),
        other => AppError::Unauthorized(other.to_string()),
    }
}

#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Whether the configured domains and groups let this identity in.
pub fn admit(config: &Config, id: &Identity) -> Result<(), String> {
    let domains: Vec<String> =
        config.oidc_allowed_domains.split(',').map(|d| d.trim().to_lowercase()).filter(|d| !d.is_empty()).collect();
    if !domains.is_empty() {
        let domain = id.email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_owned());
        match domain {
            Some(d) if id.email_verified && domains.contains(&d) => {}
            _ => return Err("Your account at the identity provider is not from an allowed email domain.".into()),
        }
    }
    let groups: Vec<&str> = config.oidc_allowed_groups.split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
    if !groups.is_empty() && !id.groups.iter().any(|g| groups.contains(&g.as_str())) {
        return Err("Your account at the identity provider is not in a group allowed here.".into());
    }
    Ok(())
}

/// Clear the state cookie on `res`.
fn clear_state(state: &AppState, headers: &HeaderMap, mut res: Response) -> Response {
    let cookie = session::set_cookie(STATE_COOKIE, "", Some(0), session::is_secure(state, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let res = match callback(&state, &headers, &client, q).await {
        Ok(res) => res,
        Err((to, e)) => {
            tracing::info!(error = %e.problem().detail, "OpenID Connect sign-in refused");
            redirect_with(&state, to, Some(Flash::error(e.problem().detail, Vec::new())))
        }
    };
    clear_state(&state, &headers, res)
}

type Failed = (&'static str, AppError);

async fn callback(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
    q: CallbackQuery,
) -> Result<Response, Failed> {
    let at_signin = |e: AppError| ("/signin", e);
    let provider = provider(state).map_err(at_signin)?;
    if let Some(error) = q.error {
        let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(60).collect();
        return Err(at_signin(AppError::Unauthorized(format!("The identity provider did not sign you in ({error})."))));
    }
    let (Some(code), Some(state_value)) = (q.code, q.state) else {
        return Err(at_signin(AppError::BadRequest("The identity provider's answer is incomplete.".into())));
    };
    // The sign-in must have started in this browser: its state cookie, and a live, unused challenge.
    let cookie = session::cookie(headers, STATE_COOKIE).unwrap_or_default();
    let same = cookie.len() == state_value.len()
        && cookie.bytes().zip(state_value.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    let stale = || AppError::Unauthorized("This sign-in has expired or was already used; start again.".into());
    if !same {
        return Err(at_signin(stale()));
    }
    let now = Timestamp::now();
    let mut conn = state.db.conn().await.map_err(|e| at_signin(e.into()))?;
    let challenge = security::take_challenge(conn.c(), &token::hash(&state_value), "oidc", now)
        .await
        .map_err(|e| at_signin(e.into()))?
        .ok_or_else(|| at_signin(stale()))?;
    drop(conn);
    let payload = challenge.payload.0;
    let text = |k: &str| payload[k].as_str().unwrap_or_default().to_owned();
    let link: Option<UserId> = challenge.user_id;
    let back = if link.is_some() { "/settings" } else { "/signin" };
    let identity =
        provider.finish(&code, &text("verifier"), &text("nonce")).await.map_err(|e| (back, oidc_error(e)))?;
    admit(&state.config, &identity).map_err(|m| (back, AppError::Forbidden(m)))?;
    let mut conn = state.db.conn().await.map_err(|e| (back, e.into()))?;
    let existing =
        security::find_identity(conn.c(), &identity.issuer, &identity.subject).await.map_err(|e| (back, e.into()))?;
    drop(conn);
    if let Some(owner) = link {
        return link_identity(state, headers, client, owner, existing, &identity).await.map_err(|e| ("/settings", e));
    }
    let user = match existing {
        Some(found) => {
            let mut conn = state.db.conn().await.map_err(|e| at_signin(e.into()))?;
            security::touch_identity(conn.c(), found.id, now).await.map_err(|e| at_signin(e.into()))?;
            found.user_id
        }
        None => create_account(state, client, &identity).await.map_err(at_signin)?,
    };
    let tokens = crate::api::auth::sign_in(state, user, client, "oidc").await.map_err(at_signin)?;
    let cookie = session_cookie(state, headers, &tokens).map_err(at_signin)?;
    Ok(signed_in(cookie, &safe_next(Some(&text("next"))), state, headers))
}

async fn link_identity(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
    owner: UserId,
    existing: Option<security::Identity>,
    identity: &Identity,
) -> Result<Response, AppError> {
    // Linking needs the browser to still be signed in as the account that asked.
    let key = &state.cookie_key;
    let signed_in_as =
        session::cookie(headers, session::SESSION_COOKIE).and_then(|v| session::parse_session_cookie(key, v));
    let mut conn = state.db.conn().await?;
    let live = match signed_in_as {
        Some((user, sid)) if user == owner => {
            magpie_db::auth::session_is_active(conn.c(), user, sid, Timestamp::now()).await?
        }
        _ => false,
    };
    if !live {
        return Err(AppError::Unauthorized("Sign in again to link your account.".into()));
    }
    match existing {
        Some(found) if found.user_id == owner => {
            return Ok(redirect_with(state, "/settings", Some(Flash::ok("This account is already linked."))));
        }
        Some(_) => {
            return Err(AppError::Conflict(
                "That account at the identity provider is linked to another Magpie account.".into(),
            ));
        }
        None => {}
    }
    let row = security::Identity {
        id: uuid::Uuid::now_v7(),
        user_id: owner,
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        created_at: Timestamp::now(),
        last_used_at: None,
    };
    security::create_identity(conn.c(), &row).await?;
    drop(conn);
    let detail = serde_json::json!({"issuer": identity.issuer, "email": identity.email});
    crate::audit::record(state, owner, "identity_linked", client, detail).await?;
    Ok(redirect_with(state, "/settings", Some(Flash::ok("Your account at the identity provider is linked."))))
}

/// A new account for a first sign-in, when allowed: never for an email some account already has.
async fn create_account(state: &AppState, client: &ClientInfo, identity: &Identity) -> Result<UserId, AppError> {
    if !state.config.oidc_create_accounts {
        return Err(AppError::Forbidden("No account here is linked to your account at the identity provider.".into()));
    }
    let email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(|e| Email::parse(e).ok())
        .ok_or_else(|| AppError::Forbidden("The identity provider did not confirm your email address.".into()))?;
    let mut tx = state.db.begin().await?;
    if users::find_by_email(tx.c(), &email).await?.is_some() {
        return Err(AppError::Conflict(
            "An account with this email already exists: sign in with its password, then link the identity provider \
             in Settings."
                .into(),
        ));
    }
    let (first, last) = match identity.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => match name.split_once(' ') {
            Some((f, l)) => (Some(f.to_owned()), Some(l.trim().to_owned())),
            None => (Some(name.to_owned()), None),
        },
        None => (None, None),
    };
    let name = |n: Option<String>| n.and_then(|n| magpie_domain::parse_name("name", &n).ok().flatten());
    let new = users::NewUser {
        email,
        password_hash: PasswordHash::new(crate::auth::password::NO_PASSWORD),
        first_name: name(first),
        last_name: name(last),
    };
    let user = users::create(tx.c(), &new).await?;
    let row = security::Identity {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        created_at: Timestamp::now(),
        last_used_at: Some(Timestamp::now()),
    };
    security::create_identity(tx.c(), &row).await?;
    tx.commit().await?;
    tracing::info!(user.id = %user.id, "account created by an OpenID Connect sign-in");
    crate::audit::record(state, user.id, "identity_linked", client, serde_json::json!({"issuer": identity.issuer}))
        .await?;
    Ok(user.id)
}
