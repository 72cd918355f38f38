//! Request ids: taken from the client's `x-request-id` when it is sane, generated otherwise, echoed on the
//! response, recorded on the request's tracing span (so every log line of the request carries it) and
//! available to error bodies through a task-local.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client-supplied id is kept only if it is short printable ASCII, so logs cannot be flooded or forged
/// with control characters.
fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

/// The id of a request, as stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: assign, propagate and echo the request id.
pub async fn assign_request_id(mut req: Request, next: Next) -> Response {
    let id = req.headers().get(&X_REQUEST_ID).and_then(acceptable).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("checked printable ASCII");
    req.headers_mut().insert(X_REQUEST_ID.clone(), value.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = REQUEST_ID.scope(id, next.run(req)).await;
    res.headers_mut().insert(X_REQUEST_ID.clone(), value);
    res
}
