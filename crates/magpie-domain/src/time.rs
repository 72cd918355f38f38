//! Timestamps.
//!
//! The seed types timestamps as `TIMESTAMP` (no time zone). Magpie stores UTC in them, at microsecond
//! precision because that is what PostgreSQL keeps; values are truncated when created so that what is
//! written is exactly what is read back on both engines. On SQLite they are fixed-width RFC 3339 text
//! (`2026-11-29T23:56:17.123456Z`), so text order is time order.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The text layout used on SQLite and in logs.
    pub const SQLITE_FORMAT: &'static str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    /// The current time, truncated to microseconds.
    pub fn now() -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }

    /// A timestamp from a chrono instant, truncated to microseconds.
    pub fn from_datetime(dt: DateTime<Utc>) -> Timestamp {
        Timestamp(dt.trunc_subsecs(6))
    }

    /// A timestamp from a naive date-time understood as UTC.
    pub fn from_naive_utc(dt: NaiveDateTime) -> Timestamp {
        Timestamp::from_datetime(dt.and_utc())
    }

    /// The chrono value.
    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// The naive UTC value, as PostgreSQL's `TIMESTAMP` holds it.
    pub fn naive_utc(self) -> NaiveDateTime {
        self.0.naive_utc()
    }

    /// The fixed-width text form.
    pub fn to_sqlite_text(self) -> String {
        self.0.format(Self::SQLITE_FORMAT).to_string()
    }

    /// Parse the text form written by [`Timestamp::to_sqlite_text`] (also accepts any RFC 3339 and
    /// SQLite's own `YYYY-MM-DD HH:MM:SS[.fff]`).
    pub fn parse_text(s: &str) -> Option<Timestamp> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Timestamp::from_datetime(dt.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok().map(Timestamp::from_naive_utc)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sqlite_text())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Timestamp::from_datetime(dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_fixed_width_and_round_trips() {
        let t = Timestamp::now();
        let s = t.to_sqlite_text();
        assert_eq!(s.len(), "2026-11-29T23:56:17.123456Z".len());
        assert_eq!(Timestamp::parse_text(&s), Some(t));
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let t = Timestamp::now();
        assert_eq!(t.as_datetime().timestamp_subsec_nanos() % 1000, 0);
    }
}
