//! Extractors that turn bad input into precise problem+json errors instead of axum's plain-text
//! rejections: `ApiJson` for bodies and `ApiQuery` for query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};

use crate::app::AppState;
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldError};

/// A JSON body deserialized into `T`. Errors:
/// * wrong or missing `Content-Type` -> 415;
/// * body over the limit -> 413;
/// * not JSON (syntax) -> 400 with the line and column;
/// * JSON of the wrong shape (missing, unknown or invalid fields) -> 422 naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(AppError::UnsupportedMediaType(
                "Send the body as JSON with `Content-Type: application/json`.".to_owned(),
            ));
        }
        // JSON bodies have their own, smaller limit than file uploads (the router-wide one).
        let limit = state.config.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(AppError::PayloadTooLarge);
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest(format!("Could not read the request body: {e}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialize JSON with the path of the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // Syntax first, so that `{} trailing` is reported as malformed rather than as a missing field.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| AppError::BadRequest(format!("The body is not valid JSON: {e}")))?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            // Trailing garbage after the value is malformed JSON, not a valid body.
            de.end().map_err(|e| AppError::BadRequest(format!("The body is not valid JSON: {e}")))?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    Err(AppError::BadRequest(format!("The body is not valid JSON: {inner}")))
                }
                Category::Data => Err(AppError::fields(vec![json_field_error(&path, &inner.to_string())])),
            }
        }
    }
}

/// serde_path_to_error puts an unknown field in the path, but reports a missing field at its parent's
/// path with the name only in the message: put the field's own name in `field` in both cases.
fn json_field_error(path: &str, message: &str) -> FieldError {
    let message = strip_position(message);
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    let field = match (missing, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "body".to_owned(),
        (None, p) => p.to_owned(),
    };
    FieldError::new(field, message)
}

/// serde_json appends " at line L column C"; keep the message human.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string deserialized into `T`; invalid parameters are 422 with `query.<name>` fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        // serde_html_form rather than serde_urlencoded: repeated keys (`category=A&category=B`) fill a Vec.
        let de = serde_html_form::Deserializer::from_bytes(query.as_bytes());
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let fe = json_field_error(&path, &message);
            AppError::fields(vec![FieldError::new(format!("query.{}", fe.field), fe.message)])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Body {
        amount: magpie_domain::Money,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Inner {
        name: String,
    }

    fn field_of(body: &str) -> (String, String) {
        match parse_json::<Body>(body.as_bytes()) {
            Err(AppError::Validation { errors, .. }) => (errors[0].field.clone(), errors[0].message.clone()),
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_field_is_named() {
        let (field, message) = field_of(r#"{"amount": "1.234"}"#);
        assert_eq!(field, "amount");
        assert!(message.contains("two decimal places"), "{message}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        assert_eq!(field_of(r#"{"amount": "1", "colour": 1}"#).0, "colour");
        assert_eq!(field_of(r#"{}"#).0, "amount");
        assert_eq!(field_of(r#"{"amount": "1", "inner": {"nam": "x"}}"#).0, "inner.nam");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert!(matches!(parse_json::<Body>(b"{\"amount\": "), Err(AppError::BadRequest(_))));
        assert!(matches!(parse_json::<Body>(b"not json"), Err(AppError::BadRequest(_))));
    }
}
