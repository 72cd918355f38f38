//! HTTP plumbing shared by every route: request ids, metrics, timeouts, the problem+json safety net and
//! the JSON/query extractors that turn bad input into field errors.

pub mod extract;
pub mod middleware;
pub mod request_id;
pub mod validate;
