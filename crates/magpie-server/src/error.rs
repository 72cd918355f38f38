//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//!
//! Each variant has a stable `type` (`/problems/<slug>`) that clients can switch on, a fixed `title`, the
//! HTTP status, a human `detail`, and for validation failures an `errors` list of per-field messages.
//! A 5xx logs its cause and sends nothing of it.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Result` with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request (`amount`, `allocations.Groceries`, `query.limit`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Per-field errors (validation problems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id (also in the `x-request-id` header), for support and log correlation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request could not be read (malformed JSON or query string).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request was read but its content is invalid.
    #[error("validation failed: {detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Per-field errors.
        errors: Vec<FieldError>,
    },
    /// Missing or invalid credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authenticated, but the credential may not do this (e.g. a read-only token writing).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such resource for this user (also what another user's resource looks like).
    #[error("not found")]
    NotFound,
    /// Not found, with an explanation (e.g. which part of a bulk request).
    #[error("not found: {0}")]
    NotFoundDetail(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state (e.g. email taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body is not in a media type this route accepts.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Too many attempts; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The request took longer than the server's timeout.
    #[error("request timed out")]
    Timeout,
    /// A dependency (the database) is unavailable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A validation error with one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> AppError {
        let e = FieldError::new(field, message);
        AppError::Validation { detail: format!("{}: {}", e.field, e.message), errors: vec![e] }
    }

    /// A validation error with several fields.
    pub fn fields(errors: Vec<FieldError>) -> AppError {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        AppError::Validation { detail, errors }
    }

    /// Status code.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound | AppError::NotFoundDetail(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Timeout | AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (slug, title, detail, errors) = match self {
            AppError::BadRequest(d) => ("bad-request", "Malformed request", d.clone(), vec![]),
            AppError::Validation { detail, errors } => {
                ("validation", "Invalid request content", detail.clone(), errors.clone())
            }
            AppError::Unauthorized(d) => ("unauthorized", "Authentication required", d.clone(), vec![]),
            AppError::Forbidden(d) => ("forbidden", "Not allowed", d.clone(), vec![]),
            AppError::NotFound => ("not-found", "Not found", "No such resource.".to_owned(), vec![]),
            AppError::NotFoundDetail(d) => ("not-found", "Not found", d.clone(), vec![]),
            AppError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support this HTTP method; the Allow header lists the ones it does.".to_owned(),
                vec![],
            ),
            AppError::Conflict(d) => ("conflict", "Conflict", d.clone(), vec![]),
            AppError::PayloadTooLarge => (
                "payload-too-large",
                "Request body too large",
                "The request body is larger than this endpoint accepts.".to_owned(),
                vec![],
            ),
            AppError::UnsupportedMediaType(d) => {
                ("unsupported-media-type", "Unsupported media type", d.clone(), vec![])
            }
            AppError::TooManyRequests { retry_after_secs } => (
                "too-many-requests",
                "Too many requests",
                format!("Too many attempts. Try again in {retry_after_secs} seconds."),
                vec![],
            ),
            AppError::Timeout => (
                "timeout",
                "Request timed out",
                "The server did not finish this request in time. It was not completed; retry it.".to_owned(),
                vec![],
            ),
            AppError::Unavailable(d) => ("unavailable", "Service unavailable", d.clone(), vec![]),
            AppError::Internal(_) => (
                "internal",
                "Internal server error",
                "Something went wrong on our side. It has been logged; quote the request id when reporting it."
                    .to_owned(),
                vec![],
            ),
        };
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            request_id: crate::http::request_id::current(),
        }
    }
}

impl From<magpie_db::DbError> for AppError {
    fn from(e: magpie_db::DbError) -> Self {
        match e {
            magpie_db::DbError::NotFound => AppError::NotFound,
            magpie_db::DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                AppError::Unavailable("The database is busy or unreachable. Retry in a moment.".to_owned())
            }
            // Constraint violations that reach here were not anticipated by the handler: a bug, not the
            // client's fault. Handlers map the ones they expect (e.g. a taken email) themselves.
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                AppError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
                other => tracing::warn!(error = %other, "request failed"),
            }
        }
        let retry_after = match &self {
            AppError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            AppError::Timeout | AppError::Unavailable(_) => Some(1),
            _ => None,
        };
        let mut response = problem_response(&self.problem());
        if matches!(self, AppError::Unauthorized(_)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Render a problem body.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}
