//! Provider failures, already classified by what they mean for the connection
//! (`bank-sync-protocols.md` §5.6): the login must be renewed (EXPIRED), the access is gone (ERROR), or
//! try again later (ACTIVE: rate limits, 5xx, institutions down).

use std::time::Duration;

/// A provider call that did not work out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncError {
    /// The bank login or consent must be renewed by the user: status EXPIRED.
    #[error("the bank needs you to sign in again ({code}): {message}")]
    LoginRequired {
        /// Provider code (`ITEM_LOGIN_REQUIRED`, `con.auth`, `EX`, ...).
        code: String,
        /// Sanitised text.
        message: String,
    },
    /// The access is gone for good (revoked, deleted, suspended): status ERROR; a new link is needed.
    #[error("the bank access is no longer valid ({code}): {message}")]
    Revoked {
        /// Provider code.
        code: String,
        /// Sanitised text.
        message: String,
    },
    /// Too many requests: try again after `retry_after` (or a backoff). Status stays ACTIVE.
    #[error("the provider is rate limiting requests ({code})")]
    RateLimited {
        /// Provider code.
        code: String,
        /// When the provider said to come back, if it did.
        retry_after: Option<Duration>,
    },
    /// A temporary failure (5xx, institution down, network, a garbled response): retry with backoff.
    #[error("temporary provider failure ({code}): {message}")]
    Transient {
        /// Provider code, or `network` / `bad_response`.
        code: String,
        /// Sanitised text.
        message: String,
    },
    /// The request was refused as invalid: a wrong or used public/setup token, a requisition that is not
    /// linked yet, a misconfigured client. Shown to the person linking; retrying will not help.
    #[error("{message}")]
    Invalid {
        /// Provider code.
        code: String,
        /// Sanitised text.
        message: String,
    },
}

impl SyncError {
    /// The provider's code.
    pub fn code(&self) -> &str {
        match self {
            SyncError::LoginRequired { code, .. }
            | SyncError::Revoked { code, .. }
            | SyncError::RateLimited { code, .. }
            | SyncError::Transient { code, .. }
            | SyncError::Invalid { code, .. } => code,
        }
    }

    /// Whether trying again later may succeed without the user doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncError::RateLimited { .. } | SyncError::Transient { .. })
    }

    pub(crate) fn transient(code: &str, message: impl AsRef<str>) -> SyncError {
        SyncError::Transient { code: code.to_owned(), message: sanitize(message.as_ref()) }
    }

    pub(crate) fn invalid(code: &str, message: impl AsRef<str>) -> SyncError {
        SyncError::Invalid { code: code.to_owned(), message: sanitize(message.as_ref()) }
    }

    pub(crate) fn revoked(code: &str, message: impl AsRef<str>) -> SyncError {
        SyncError::Revoked { code: code.to_owned(), message: sanitize(message.as_ref()) }
    }

    pub(crate) fn login_required(code: &str, message: impl AsRef<str>) -> SyncError {
        SyncError::LoginRequired { code: code.to_owned(), message: sanitize(message.as_ref()) }
    }
}

/// Provider text made safe to store and show: URLs (SimpleFIN Access URLs embed passwords) and
/// token-like words are replaced, control characters dropped, length bounded.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    for word in text.split_inclusive(char::is_whitespace) {
        let bare = word.trim_end();
        let lower = bare.to_ascii_lowercase();
        let url_like = lower.contains("://") || (lower.contains('@') && lower.contains(':'));
        let token_like = ["access-", "public-", "link-"].iter().any(|p| lower.starts_with(p))
            || (bare.len() >= 24 && bare.chars().all(|c| c.is_ascii_alphanumeric() || "-_=+/".contains(c)));
        if url_like || token_like {
            out.push_str("[redacted]");
            out.push_str(&word[bare.len()..]);
        } else {
            out.extend(word.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).filter(|c| !c.is_control()));
        }
        if out.chars().count() >= 300 {
            break;
        }
    }
    let out: String = out.chars().take(300).collect();
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tokens_are_removed() {
        let s = sanitize("claim at https://demo:secret@bridge.example/simplefin failed for access-sandbox-1234");
        assert!(!s.contains("secret"), "{s}");
        assert!(!s.contains("access-sandbox"), "{s}");
        assert!(s.starts_with("claim at [redacted] failed"), "{s}");
        assert_eq!(sanitize("Connection to My Bank may need attention"), "Connection to My Bank may need attention");
        assert_eq!(sanitize("a\u{0}b\nc"), "ab c");
        assert!(sanitize(&"x ".repeat(500)).len() <= 300);
    }
}
