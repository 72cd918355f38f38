//! Collecting field errors: a request with three bad fields gets one response naming all three.

use magpie_domain::ParseError;
use serde::{Deserialize, Deserializer};

use crate::error::{AppError, FieldError};

/// Accumulates per-field parse results.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// A validator with no errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the value, or record the error under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, ParseError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(FieldError::new(field, e.to_string()));
                None
            }
        }
    }

    /// Record an error directly.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Ok when nothing failed, else a 422 listing every failure.
    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() { Ok(()) } else { Err(AppError::fields(self.errors)) }
    }

    /// [`Validator::finish`] listing at most `max` failures (a file can have thousands of bad rows).
    pub fn finish_at_most(mut self, max: usize) -> Result<(), AppError> {
        let total = self.errors.len();
        if total > max {
            self.errors.truncate(max);
            self.errors.push(FieldError::new("*", format!("{} more errors not listed", total - max)));
        }
        self.finish()
    }

    /// The failures recorded so far.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
/// Use with `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
