//! The web app: server-rendered pages over the same handlers as the API.
//!
//! Pages are askama templates compiled into the binary (`templates/`), styled by one stylesheet and
//! enhanced by one small script (`assets/`), all served from here: no page loads anything from another
//! host. Every page handler takes a [`WebUser`] (a cookie session checked against `auth_sessions`) and
//! calls the API's own handler functions with its [`AuthUser`](crate::auth::extract::AuthUser), so the
//! web app cannot drift from the API's validation or tenancy: another user's record is a 404 here too.
//! Every form is a POST with a CSRF token ([`WebForm`]) answered by a redirect (post/redirect/get) with
//! a one-shot flash message.

mod categorization;
pub mod charts;
mod connections;
mod dashboard;
pub mod format;
mod imports;
mod ledger;
mod oidc;
mod planning;
mod security;
pub mod session;
mod settings;
mod signin;

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use sha2::Digest;

use crate::app::AppState;
use crate::error::AppError;
use session::{FLASH_COOKIE, Flash, WebUser};

/// The stylesheet.
const APP_CSS: &str = include_str!("../../assets/app.css");
/// The script.
const APP_JS: &str = include_str!("../../assets/app.js");
/// The icon.
const ICON_SVG: &str = include_str!("../../assets/icon.svg");

/// A version of the assets for their URLs, so they can be cached for a year and still change on upgrade.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = sha2::Sha256::new();
    h.update(APP_CSS);
    h.update(APP_JS);
    h.update(ICON_SVG);
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// The Content-Security-Policy of every page: nothing from elsewhere, no inline script or style.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The web app's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/app.css", get(|| asset(APP_CSS, "text/css; charset=utf-8")))
        .route("/assets/app.js", get(|| asset(APP_JS, "text/javascript; charset=utf-8")))
        .route("/assets/icon.svg", get(|| asset(ICON_SVG, "image/svg+xml")))
        .merge(signin::router())
        .merge(oidc::router())
        .merge(dashboard::router())
        .merge(ledger::router())
        .merge(imports::router())
        .merge(planning::router())
        .merge(categorization::router())
        .merge(connections::router())
        .merge(settings::router())
        .merge(security::router())
        .layer(from_fn(security_headers))
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"));
    // Pages show money: no shared cache may keep them, and the back button after sign-out shows nothing.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// What every page's frame shows.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The page title.
    pub title: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// The signed-in user's email (none on the sign-in pages).
    pub email: Option<String>,
    /// The CSRF token for the page's forms.
    pub csrf: String,
    /// The message left by the previous request.
    pub flash: Option<Flash>,
    /// The assets' version.
    pub v: String,
}

impl Layout {
    /// The frame of a signed-in page.
    pub fn new(user: &WebUser, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            email: Some(user.email.clone()),
            csrf: user.csrf.clone(),
            flash: user.flash.clone(),
            v: ASSET_VERSION.clone(),
        }
    }

    /// The frame of a page before sign-in.
    pub fn public(title: impl Into<String>, csrf: String, flash: Option<Flash>) -> Layout {
        Layout { title: title.into(), nav: "", email: None, csrf, flash, v: ASSET_VERSION.clone() }
    }

    /// The navigation: (path, label, current).
    pub fn links(&self) -> Vec<(&'static str, &'static str, bool)> {
        [
            ("/", "Dashboard", "dashboard"),
            ("/transactions", "Transactions", "transactions"),
            ("/import", "Import", "import"),
            ("/budgets", "Budgets", "budgets"),
            ("/goals", "Goals", "goals"),
            ("/rules", "Rules", "rules"),
            ("/connections", "Banks", "connections"),
            ("/models", "Models", "models"),
            ("/settings", "Settings", "settings"),
        ]
        .into_iter()
        .map(|(p, l, k)| (p, l, k == self.nav))
        .collect()
    }
}

/// A rendered page; clears the flash cookie when the page showed it.
pub fn page(template: &impl Template, shown_flash: bool) -> Response {
    match template.render() {
        Ok(html) => {
            let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
            if shown_flash {
                clear_flash(&mut res);
            }
            res
        }
        Err(e) => WebError::App(AppError::Internal(anyhow::anyhow!("template: {e}"))).into_response(),
    }
}

fn clear_flash(res: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(FLASH_COOKIE, "", Some(0), false)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A 303 to `to`, leaving `flash` for the next page.
pub fn redirect_with(state: &AppState, to: &str, flash: Option<Flash>) -> Response {
    let mut res = redirect(to);
    if let Some(f) = flash
        && let Ok(v) =
            HeaderValue::from_str(&session::set_cookie(FLASH_COOKIE, &f.encode(&state.cookie_key), Some(60), false))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A 303 See Other.
pub fn redirect(to: &str) -> Response {
    let to = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// The answer to a form: back to `to` with `ok` on success, or with the API's explanation (detail and
/// per-field errors) on a client error. Not found stays a 404 page, as in the API.
pub fn finish<T>(state: &AppState, result: Result<T, AppError>, to: &str, ok: impl FnOnce(T) -> String) -> Response {
    match result {
        Ok(v) => redirect_with(state, to, Some(Flash::ok(ok(v)))),
        Err(e) => back_with_error(state, e, to),
    }
}

/// Back to `to` explaining `e`, or the error page for what a form cannot fix.
pub fn back_with_error(state: &AppState, e: AppError, to: &str) -> Response {
    match e {
        AppError::NotFound | AppError::Internal(_) => WebError::App(e).into_response(),
        other => {
            let problem = other.problem();
            let fields = problem.errors.iter().map(|f| format!("{}: {}", field_label(&f.field), f.message)).collect();
            // The generic summaries of `AppError::fields` say less than the list below them.
            let generic = match problem.errors.as_slice() {
                [one] => problem.detail == format!("{}: {}", one.field, one.message),
                [] => false,
                _ => problem.detail.ends_with("fields are invalid"),
            };
            let detail = if generic { "Please correct the form.".to_owned() } else { problem.detail };
            redirect_with(state, to, Some(Flash::error(detail, fields)))
        }
    }
}

/// The API's field names as people read them (`period_start` -> `period start`).
fn field_label(field: &str) -> String {
    field.trim_start_matches("query.").replace('_', " ")
}

/// Why a web request did not get its page.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in: to the sign-in page, coming back to `next` afterwards.
    SignIn {
        /// Where to return.
        next: String,
    },
    /// A form without a valid CSRF token, or from another site.
    Csrf,
    /// Anything the API handlers return.
    App(AppError),
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError::App(e)
    }
}

impl From<magpie_db::DbError> for WebError {
    fn from(e: magpie_db::DbError) -> Self {
        WebError::App(e.into())
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::App(AppError::Internal(e))
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    status: u16,
    heading: String,
    detail: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, detail) = match self {
            WebError::SignIn { next } => {
                let safe = next.starts_with('/') && !next.starts_with("//");
                let to = if safe && next != "/" {
                    format!("/signin?next={}", format::urlencode(&next))
                } else {
                    "/signin".to_owned()
                };
                return redirect(&to);
            }
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired".to_owned(),
                "The page was open too long or came from another site. Go back, reload the page and try again."
                    .to_owned(),
            ),
            WebError::App(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(error = %format!("{e:#}"), "web page failed");
                    (status, "Something went wrong".to_owned(), "The error was logged. Please try again.".to_owned())
                } else if status == StatusCode::NOT_FOUND {
                    (status, "Not found".to_owned(), "There is nothing here, or it is not yours.".to_owned())
                } else {
                    let p = e.problem();
                    (status, p.title, p.detail)
                }
            }
        };
        let page_html = ErrorPage {
            l: Layout::public(heading.clone(), String::new(), None),
            status: status.as_u16(),
            heading,
            detail,
        };
        let mut res = page(&page_html, false);
        *res.status_mut() = status;
        res
    }
}

/// An urlencoded form body checked for its CSRF token and origin, then read into `T`.
pub struct WebForm<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for WebForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let headers = req.headers().clone();
        if !session::same_origin(&headers) {
            return Err(WebError::Csrf);
        }
        let bytes = axum::body::to_bytes(req.into_body(), state.config.max_body_bytes)
            .await
            .map_err(|_| WebError::App(AppError::PayloadTooLarge))?;
        check_csrf(state, &headers, &bytes)?;
        let value: T = serde_html_form::from_bytes(&bytes)
            .map_err(|e| WebError::App(AppError::BadRequest(format!("The form could not be read: {e}"))))?;
        Ok(WebForm(value))
    }
}

fn check_csrf(state: &AppState, headers: &axum::http::HeaderMap, body: &Bytes) -> Result<(), WebError> {
    let field: CsrfField = serde_html_form::from_bytes(body).map_err(|_| WebError::Csrf)?;
    if session::csrf_ok(state, headers, &field.csrf) { Ok(()) } else { Err(WebError::Csrf) }
}

/// A form field that may be left empty: trimmed, `None` when empty (the API's "absent").
pub fn filled(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A form whose only content is the CSRF token (buttons: delete, sync, sign out).
#[derive(serde::Deserialize)]
pub struct Empty {}
