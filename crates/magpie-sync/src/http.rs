//! What the three clients share: the HTTP client, decimal parsing without floats, error mapping.

use std::str::FromStr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::SyncError;

/// An HTTP client for provider APIs: rustls (ring) with the system's roots, bounded time, no
/// redirects (a redirect would carry Basic credentials elsewhere). Built on first use: loading the
/// system's certificate store costs several megabytes that a server with no bank connections (or a
/// command that never syncs) should not pay.
pub(crate) struct Client {
    timeout: Duration,
    inner: std::sync::OnceLock<reqwest::Client>,
}

impl Client {
    pub(crate) fn new(timeout: Duration) -> Client {
        Client { timeout, inner: std::sync::OnceLock::new() }
    }

    pub(crate) fn get(&self) -> &reqwest::Client {
        self.inner.get_or_init(|| {
            crate::install_tls_provider();
            reqwest::Client::builder()
                .user_agent(concat!("magpie/", env!("CARGO_PKG_VERSION")))
                .timeout(self.timeout)
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client without custom TLS settings always builds")
        })
    }
}

/// A transport failure, without the URL (it may hold credentials).
pub(crate) fn network_error(e: reqwest::Error) -> SyncError {
    let what = if e.is_timeout() {
        "the provider did not answer in time"
    } else if e.is_connect() {
        "cannot connect to the provider"
    } else if e.is_decode() || e.is_body() {
        "the provider's response could not be read"
    } else {
        "the request to the provider failed"
    };
    SyncError::transient("network", what)
}

/// A 2xx body that is not what the protocol says.
pub(crate) fn bad_response(what: &str, e: impl std::fmt::Display) -> SyncError {
    SyncError::transient("bad_response", format!("unexpected {what} response: {e}"))
}

/// A decimal from provider text such as `"-25.00"` (plain or scientific notation).
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str(s).ok().or_else(|| Decimal::from_scientific(s).ok())
}

/// A JSON number or string as a decimal. A JSON number is taken through its shortest round-trip text
/// (`12.5` stays `12.5`): for amounts with up to 15 significant digits that is exactly what the
/// provider wrote, and no float arithmetic ever touches it.
pub(crate) fn json_decimal(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::Number(n) => parse_decimal(&n.to_string()),
        serde_json::Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

/// Serde helper: an optional decimal given as a number or a string.
pub(crate) fn de_opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => json_decimal(&v).map(Some).ok_or_else(|| serde::de::Error::custom(format!("not a number: {v}"))),
    }
}

/// Serde helper: a required decimal given as a number or a string.
pub(crate) fn de_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    de_opt_decimal(d)?.ok_or_else(|| serde::de::Error::custom("a number is required"))
}

/// Amounts are kept to the cent: providers send at most two decimals for the currencies we book, and a
/// third one would not fit NUMERIC(12,2).
pub(crate) fn to_cents(d: Decimal) -> Decimal {
    let mut cents = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    cents.rescale(2);
    cents
}

/// `Retry-After` in seconds, if present.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, &["retry-after"]).map(Duration::from_secs)
}

/// The first of `names` present as an integer (header names compare case-insensitively already).
pub(crate) fn header_u64(headers: &HeaderMap, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| headers.get(*n)?.to_str().ok()?.trim().parse().ok())
}

/// Largest response body read (a Plaid page of 500 rows is about 400 KB; a SimpleFIN window of a busy
/// account a few MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Read a body as text, refusing bodies over [`MAX_BODY`].
pub(crate) async fn body_text(mut res: reqwest::Response) -> Result<String, SyncError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(network_error)? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(bad_response("provider", "the response is too large"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_their_written_value() {
        for (json, want) in
            [("12.5", "12.5"), ("0.1", "0.1"), ("-4.35", "-4.35"), ("1e2", "100"), ("\"-25.00\"", "-25.00")]
        {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(json_decimal(&v).unwrap(), Decimal::from_str(want).unwrap(), "{json}");
        }
        let v: serde_json::Value = serde_json::from_str("123456789.99").unwrap();
        assert_eq!(json_decimal(&v).unwrap().to_string(), "123456789.99");
        assert_eq!(to_cents(Decimal::from_str("0.125").unwrap()).to_string(), "0.13");
        assert!(json_decimal(&serde_json::json!(true)).is_none());
    }
}
