//! `AuthUser`: the authenticated caller of a request, from `Authorization: Bearer <token>`.
//!
//! Two kinds of bearer token are accepted:
//! * an access token (JWT) from sign-in: full access, tied to a session that is checked on every request,
//!   so sign-out and password changes take effect at once rather than when the token expires;
//! * a personal access token (`mgp_pat_…`) for scripts, with scope `read` or `read-write`.
//!
//! A `read` token is refused (403) on every method that can change something, here, once, rather than in
//! each handler: no route can forget to check it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use chrono::TimeDelta;
use magpie_db::auth;
use magpie_domain::{SessionId, Timestamp, TokenId, TokenScope, UserId};

use crate::app::AppState;
use crate::auth::token::{self, PAT_PREFIX};
use crate::error::AppError;

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A signed-in session (access token).
    Session(SessionId),
    /// A personal access token.
    PersonalToken(TokenId),
}

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// Who.
    pub id: UserId,
    /// What the credential may do.
    pub scope: TokenScope,
    /// Which credential.
    pub via: Via,
    /// Access-token expiry (seconds since the epoch), for sessions.
    pub expires_at: Option<i64>,
}

impl AuthUser {
    /// The session, when signed in interactively.
    pub fn session(&self) -> Option<SessionId> {
        match self.via {
            Via::Session(s) => Some(s),
            Via::PersonalToken(_) => None,
        }
    }

    /// Account-level changes (password, email, tokens, deletion) need a signed-in session: a leaked
    /// script token must not be able to take over or delete the account.
    pub fn require_session(&self) -> Result<SessionId, AppError> {
        self.session().ok_or_else(|| {
            AppError::Forbidden("This needs a signed-in session; personal access tokens cannot do it.".to_owned())
        })
    }
}

fn unauthorized(detail: &str) -> AppError {
    AppError::Unauthorized(detail.to_owned())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header =
            parts.headers.get(AUTHORIZATION).ok_or_else(|| unauthorized("Send `Authorization: Bearer <token>`."))?;
        let value = header.to_str().map_err(|_| unauthorized("The Authorization header is not valid."))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| unauthorized("Use the Bearer scheme."))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized("Use the Bearer scheme."));
        }
        let token = token.trim();
        let now = Timestamp::now();
        let mut conn = state.db.conn().await?;
        let user = if token.starts_with(PAT_PREFIX) {
            let found = auth::find_personal_token(conn.c(), &token::hash(token), now)
                .await?
                .ok_or_else(|| unauthorized("The token is invalid, expired or revoked."))?;
            let not_since = Timestamp::from_datetime(now.as_datetime() - TimeDelta::minutes(1));
            auth::touch_personal_token(conn.c(), found.id, now, not_since).await?;
            AuthUser { id: found.user_id, scope: found.scope, via: Via::PersonalToken(found.id), expires_at: None }
        } else {
            let claims = state
                .jwt
                .verify(token, now.as_datetime().timestamp())
                .map_err(|_| unauthorized("The access token is invalid or expired; refresh it or sign in again."))?;
            if !auth::session_is_active(conn.c(), claims.sub, claims.sid, now).await? {
                return Err(unauthorized("The session has ended; sign in again."));
            }
            AuthUser {
                id: claims.sub,
                scope: TokenScope::ReadWrite,
                via: Via::Session(claims.sid),
                expires_at: Some(claims.exp),
            }
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if user.scope == TokenScope::Read && !safe {
            return Err(AppError::Forbidden("This token has the read scope and cannot change anything.".to_owned()));
        }
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        Ok(user)
    }
}

/// Who is calling, for sessions and throttling: the client address (from the connection, or from
/// `X-Forwarded-For` when `trust_forwarded_for` is on) and the user agent.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client address.
    pub ip: Option<String>,
    /// User agent, truncated to 200 characters.
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()))
            .flatten()
            // The proxy appends the address it saw, so the last entry is the one we can trust.
            .and_then(|v| v.rsplit(',').next())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 64);
        let ip = forwarded.or_else(|| {
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
        });
        let user_agent =
            parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(200).collect());
        Ok(ClientInfo { ip, user_agent })
    }
}
