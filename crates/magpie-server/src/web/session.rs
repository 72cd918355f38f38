//! Browser sessions: a signed cookie naming a row of `auth_sessions`, CSRF tokens bound to it, and
//! one-shot flash messages.
//!
//! The cookie is `<user id>.<session id>.<mac>`: the MAC (HMAC-SHA256 under a key derived from the
//! server's signing secret) stops anyone from naming a session they did not get, and the session row is
//! checked on every request, so signing out (here, through the API, or "sign out everywhere") ends it at
//! once. The cookie is HttpOnly, SameSite=Lax and, over TLS, Secure.
//!
//! CSRF: every form carries `csrf`, an HMAC of the session id (or, before sign-in, of a random
//! `magpie_pre` cookie). A cross-site page can neither read it nor compute it. A request whose `Origin`
//! names another site is refused as well.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use magpie_domain::{SessionId, Timestamp, TokenScope, UserId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::app::AppState;
use crate::auth::extract::{AuthUser, Via};
use crate::web::WebError;

/// The session cookie.
pub const SESSION_COOKIE: &str = "magpie_session";
/// The pre-sign-in CSRF cookie.
pub const PRE_COOKIE: &str = "magpie_pre";
/// The flash message cookie.
pub const FLASH_COOKIE: &str = "magpie_flash";

/// The key cookies and CSRF tokens are signed with.
#[derive(Clone)]
pub struct CookieKey(Vec<u8>);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A key derived from the server's signing secret (so every replica derives the same one), separate
    /// from the access-token key: a cookie MAC can never pass as a token signature or the reverse.
    pub fn derive(secret: &[u8]) -> CookieKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"magpie web cookies v1");
        CookieKey(mac.finalize().into_bytes().to_vec())
    }

    fn mac(&self, purpose: &str, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(message.as_bytes());
        mac
    }

    /// The MAC of `message` for `purpose`, base64url.
    pub fn sign(&self, purpose: &str, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, message).finalize().into_bytes())
    }

    /// Whether `signature` is `message`'s MAC for `purpose` (constant time).
    pub fn verify(&self, purpose: &str, message: &str, signature: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(signature) {
            Ok(bytes) => self.mac(purpose, message).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value. `max_age` None is a session cookie; Some(0) deletes.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Whether cookies must be Secure: configured so, or the request reached a trusted proxy over TLS.
pub fn is_secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || (state.config.trust_forwarded_for
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https")))
}

/// The session cookie's value for a session.
pub fn session_cookie_value(key: &CookieKey, user: UserId, session: SessionId) -> String {
    let msg = format!("{user}.{session}");
    format!("{msg}.{}", key.sign("session", &msg))
}

/// The (user, session) a cookie value names, when its MAC is right.
pub fn parse_session_cookie(key: &CookieKey, value: &str) -> Option<(UserId, SessionId)> {
    let (msg, sig) = value.rsplit_once('.')?;
    if !key.verify("session", msg, sig) {
        return None;
    }
    let (user, session) = msg.split_once('.')?;
    Some((user.parse().ok()?, session.parse().ok()?))
}

/// The CSRF token of a session.
pub fn csrf_for_session(key: &CookieKey, session: SessionId) -> String {
    key.sign("csrf", &session.to_string())
}

/// The CSRF token for the pre-sign-in cookie value.
pub fn csrf_for_pre(key: &CookieKey, pre: &str) -> String {
    key.sign("csrf-pre", pre)
}

/// The CSRF token for a form shown before sign-in: the session's when the browser still carries a
/// session cookie (which [`csrf_ok`] then requires), else the pre-sign-in cookie's.
pub fn csrf_before_sign_in(key: &CookieKey, headers: &HeaderMap, pre: &str) -> String {
    match cookie(headers, SESSION_COOKIE).and_then(|v| parse_session_cookie(key, v)) {
        Some((_, session)) => csrf_for_session(key, session),
        None => csrf_for_pre(key, pre),
    }
}

/// Whether `token` is a valid CSRF token for the cookies of this request. Once signed in (a session
/// cookie with a valid MAC), only the session's token is accepted: the pre-sign-in token is bound to a
/// cookie a sibling site could plant, so it only ever opens the sign-in and sign-up forms.
pub fn csrf_ok(state: &AppState, headers: &HeaderMap, token: &str) -> bool {
    let key = &state.cookie_key;
    if let Some((_, session)) = cookie(headers, SESSION_COOKIE).and_then(|v| parse_session_cookie(key, v)) {
        return constant_eq(&csrf_for_session(key, session), token);
    }
    cookie(headers, PRE_COOKIE).is_some_and(|pre| !pre.is_empty() && constant_eq(&csrf_for_pre(key, pre), token))
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request's `Origin` (when the browser sent one) is this site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else { return false };
    let forwarded = headers.get("x-forwarded-host").and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    origin_host.eq_ignore_ascii_case(host) || forwarded.is_some_and(|f| origin_host.eq_ignore_ascii_case(f))
}

/// A message shown once on the next page.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Flash {
    /// `ok` or `error`.
    pub kind: String,
    /// The message.
    pub text: String,
    /// Per-field messages (`field: message`).
    #[serde(default)]
    pub fields: Vec<String>,
}

impl Flash {
    /// A success message.
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash { kind: "ok".into(), text: text.into(), fields: Vec::new() }
    }

    /// An error message.
    pub fn error(text: impl Into<String>, fields: Vec<String>) -> Flash {
        Flash { kind: "error".into(), text: text.into(), fields }
    }

    /// The cookie value: signed JSON, so nothing but this server can put words on its pages.
    pub fn encode(&self, key: &CookieKey) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        format!("{body}.{}", key.sign("flash", &body))
    }

    /// Read a cookie value.
    pub fn decode(key: &CookieKey, value: &str) -> Option<Flash> {
        let (body, sig) = value.rsplit_once('.')?;
        if !key.verify("flash", body, sig) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }
}

/// The signed-in browser user of a request. Without a valid session the request is sent to sign in.
#[derive(Debug, Clone)]
pub struct WebUser {
    /// The same identity the API handlers take, so the web app shares their tenancy rules.
    pub auth: AuthUser,
    /// The user's email (for the page header).
    pub email: String,
    /// The CSRF token for this page's forms.
    pub csrf: String,
    /// A message left by the previous request.
    pub flash: Option<Flash>,
}

impl WebUser {
    /// The user id.
    pub fn id(&self) -> UserId {
        self.auth.id
    }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let back = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let to_sign_in = || WebError::SignIn { next: back.clone() };
        let (user, session) = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|v| parse_session_cookie(&state.cookie_key, v))
            .ok_or_else(to_sign_in)?;
        let now = Timestamp::now();
        let mut conn = state.db.conn().await.map_err(|e| WebError::App(e.into()))?;
        if !magpie_db::auth::session_is_active(conn.c(), user, session, now)
            .await
            .map_err(|e| WebError::App(e.into()))?
        {
            return Err(to_sign_in());
        }
        let me =
            magpie_db::users::get(conn.c(), user).await.map_err(|e| WebError::App(e.into()))?.ok_or_else(to_sign_in)?;
        tracing::Span::current().record("user_id", tracing::field::display(user));
        let flash = cookie(&parts.headers, FLASH_COOKIE).and_then(|v| Flash::decode(&state.cookie_key, v));
        Ok(WebUser {
            auth: AuthUser { id: user, scope: TokenScope::ReadWrite, via: Via::Session(session), expires_at: None },
            email: me.email.as_str().to_owned(),
            csrf: csrf_for_session(&state.cookie_key, session),
            flash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_round_trips_and_rejects_tampering() {
        let key = CookieKey::derive(b"0123456789abcdef0123456789abcdef");
        let (u, s) = (UserId::new(), SessionId::new());
        let v = session_cookie_value(&key, u, s);
        assert_eq!(parse_session_cookie(&key, &v), Some((u, s)));
        let other = UserId::new();
        let forged = v.replacen(&u.to_string(), &other.to_string(), 1);
        assert_eq!(parse_session_cookie(&key, &forged), None);
        let other_key = CookieKey::derive(b"fedcba9876543210fedcba9876543210");
        assert_eq!(parse_session_cookie(&other_key, &v), None);
        assert_eq!(parse_session_cookie(&key, "garbage"), None);
    }

    #[test]
    fn flash_is_signed() {
        let key = CookieKey::derive(b"0123456789abcdef0123456789abcdef");
        let v = Flash::ok("Saved").encode(&key);
        assert_eq!(Flash::decode(&key, &v).map(|f| f.text), Some("Saved".to_owned()));
        let (body, _) = v.rsplit_once('.').unwrap();
        let evil = URL_SAFE_NO_PAD.encode(br#"{"kind":"ok","text":"Call +1 555"}"#);
        assert!(Flash::decode(&key, &format!("{evil}.{}", v.rsplit_once('.').unwrap().1)).is_none());
        assert!(Flash::decode(&key, body).is_none());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; magpie_session=x.y.z; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("x.y.z"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
