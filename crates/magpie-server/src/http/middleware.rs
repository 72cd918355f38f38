//! Cross-cutting middleware: metrics per route, the request timeout, and the problem+json safety net.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, PROBLEM_JSON, Problem, problem_response};

/// Middleware: count requests and time them by method, route template and status. The route is the
/// matched template (`/api/v1/transactions/{id}`), never the raw path, so ids cannot blow up the number
/// of series; unmatched requests share one label.
pub async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    let labels = [("method", method_label(&method)), ("route", route), ("status", res.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

fn method_label(m: &Method) -> String {
    // Unknown methods are collapsed so a client cannot create unbounded label values.
    match *m {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            m.as_str().to_owned()
        }
        _ => "OTHER".to_owned(),
    }
}

/// Middleware: answer 503 `/problems/timeout` when a request runs past the configured timeout. The
/// handler's future is dropped, which rolls back any open database transaction.
pub async fn enforce_timeout(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(timeout_secs = timeout.as_secs(), "request timed out");
            AppError::Timeout.into_response()
        }
    }
}

/// Middleware: every error response is problem+json. Errors produced by our handlers already are;
/// this catches the ones made elsewhere (axum's 405 for a wrong method, a 413 from a body limit, a 500
/// from a caught panic) and gives them the same shape, keeping their headers (e.g. `Allow`).
pub async fn problem_safety_net(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let error = match status {
        StatusCode::NOT_FOUND => AppError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::REQUEST_TIMEOUT => AppError::Timeout,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::UnsupportedMediaType("This endpoint does not accept that content type.".to_owned())
        }
        s if s.is_server_error() => AppError::Internal(anyhow::anyhow!("{s} produced outside a handler")),
        _ => AppError::BadRequest(status.canonical_reason().unwrap_or("Bad request").to_owned()),
    };
    let mut problem: Problem = error.problem();
    problem.status = status.as_u16();
    let fresh = problem_response(&problem);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, fresh.into_body())
}

/// The fallback for unknown routes.
pub async fn route_not_found() -> AppError {
    AppError::NotFound
}

/// Turn a caught panic into a 500 problem (the panic message is logged, not sent).
pub fn panic_to_problem(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    AppError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Routes that take an uploaded file and parse or unpack it: at most [`UPLOAD_SLOTS`] of them run at a
/// time in a process, the others wait (within the request timeout) before their body is read. Parsing
/// a large statement or an export takes memory in proportion to the file; this bounds the sum.
const UPLOAD_ROUTES: [&str; 3] = ["/api/v1/imports", "/api/v1/me/import", "/import"];
/// Uploads parsed at once per process (the machine this is sized for has two cores).
pub const UPLOAD_SLOTS: usize = 2;
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(UPLOAD_SLOTS);

/// Middleware: hold each upload until a slot is free (see [`UPLOAD_ROUTES`]).
pub async fn limit_uploads(req: Request, next: Next) -> Response {
    let is_upload = req.method() == Method::POST
        && req.extensions().get::<MatchedPath>().is_some_and(|p| UPLOAD_ROUTES.contains(&p.as_str()));
    if !is_upload {
        return next.run(req).await;
    }
    let Ok(_slot) = UPLOADS.acquire().await else {
        return AppError::Unavailable("the server is shutting down".to_owned()).into_response();
    };
    next.run(req).await
}

/// Middleware: API answers are never cached by a browser or proxy (they hold a person's finances) and
/// are never sniffed into another media type.
pub async fn api_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
