//! Bounded text values of the schema.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ParseError;

/// Why a text value was refused.
pub type TextError = ParseError;

/// Checks that `s` (already trimmed) is non-empty, at most `max` characters and free of control
/// characters; PostgreSQL rejects NUL bytes in text, which would otherwise surface as a 500.
pub fn bounded_text(field: &str, s: &str, max: usize) -> Result<(), ParseError> {
    if s.is_empty() {
        return Err(ParseError::new(format!("{field} must not be empty")));
    }
    if s.chars().count() > max {
        return Err(ParseError::new(format!("{field} must be at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(ParseError::new(format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// A transaction category: trimmed, 1 to 50 characters (the seed's VARCHAR(50)).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, max_length = 50, example = "Groceries")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
pub struct Category(String);

impl Category {
    /// Longest category the schema stores.
    pub const MAX_CHARS: usize = 50;

    /// The category transactions get when nothing (rule, model, user) has decided one.
    pub const UNCATEGORIZED: &'static str = "Uncategorized";

    /// Parse a category name.
    pub fn parse(s: &str) -> Result<Category, ParseError> {
        let t = s.trim();
        bounded_text("category", t, Self::MAX_CHARS)?;
        Ok(Category(t.to_owned()))
    }

    /// The `Uncategorized` category.
    pub fn uncategorized() -> Category {
        Category(Self::UNCATEGORIZED.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Category({:?})", self.0)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Category::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_is_trimmed() {
        assert_eq!(Category::parse("  Groceries ").unwrap().as_str(), "Groceries");
    }

    #[test]
    fn a_category_longer_than_50_characters_is_rejected() {
        assert!(Category::parse(&"é".repeat(50)).is_ok());
        assert!(Category::parse(&"é".repeat(51)).is_err());
    }

    #[test]
    fn an_empty_or_control_character_category_is_rejected() {
        assert!(Category::parse("   ").is_err());
        assert!(Category::parse("a\0b").is_err());
    }
}

/// An email address: trimmed, lower-cased, at most 255 characters, `local@domain.tld` shaped.
///
/// Deliberately not RFC 5322 complete: it accepts what real people type and refuses what cannot be a
/// deliverable address (spaces, no dot in the domain, several `@`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Email, example = "ada@example.com")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
pub struct Email(String);

impl Email {
    /// Parse and normalize an address.
    pub fn parse(s: &str) -> Result<Email, ParseError> {
        let t = s.trim().to_lowercase();
        let bad = || ParseError::new("email must be an address like name@example.com");
        if t.chars().count() > 255 {
            return Err(ParseError::new("email must be at most 255 characters"));
        }
        let (local, domain) = t.split_once('@').ok_or_else(bad)?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !t.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\')
            });
        if !ok {
            return Err(bad());
        }
        Ok(Email(t))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Declares a string newtype whose content must never reach a log: `Debug` prints `[redacted]`.
macro_rules! redacted_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(String);

        impl $name {
            /// Wrap a value.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The value itself: call only where it is used, never to log or return it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}([redacted])", stringify!($name))
            }
        }
    };
}

redacted_string!(
    /// A bcrypt password hash, as stored in `users.password_hash`.
    PasswordHash
);
redacted_string!(
    /// A bank access token sealed with AES-256-GCM, as stored in `connections.access_token`.
    SealedToken
);

#[cfg(test)]
mod email_tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for s in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let h = PasswordHash::new("$2b$12$abcdef");
        assert_eq!(format!("{h:?}"), "PasswordHash([redacted])");
    }
}

/// A new password that meets the rules: at least 10 characters, at most 72 bytes (bcrypt's limit: a
/// longer one is refused, never silently truncated), not one character repeated, no NUL.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Fewest characters.
    pub const MIN_CHARS: usize = 10;
    /// Most bytes (UTF-8), bcrypt's input limit.
    pub const MAX_BYTES: usize = 72;

    /// Check a candidate password.
    pub fn parse(s: &str) -> Result<NewPassword, ParseError> {
        if s.chars().count() < Self::MIN_CHARS {
            return Err(ParseError::new(format!("password must be at least {} characters", Self::MIN_CHARS)));
        }
        if s.len() > Self::MAX_BYTES {
            return Err(ParseError::new(format!(
                "password must be at most {} bytes (bcrypt's limit; non-ASCII characters take 2 to 4 bytes)",
                Self::MAX_BYTES
            )));
        }
        let mut chars = s.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(ParseError::new("password must not be a single character repeated"));
        }
        if s.contains('\0') {
            return Err(ParseError::new("password must not contain NUL characters"));
        }
        Ok(NewPassword(s.to_owned()))
    }

    /// The password itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

/// A person's first or last name: trimmed, at most 100 characters; empty means "not given".
pub fn parse_name(field: &str, s: &str) -> Result<Option<String>, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    bounded_text(field, t, 100)?;
    Ok(Some(t.to_owned()))
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn password_rules() {
        assert!(NewPassword::parse("correct horse").is_ok());
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("aaaaaaaaaaaaaa").is_err());
        assert!(NewPassword::parse(&"ab".repeat(36)).is_ok(), "72 bytes is the limit");
        assert!(NewPassword::parse(&"abc".repeat(25)).is_err(), "75 bytes");
        assert!(NewPassword::parse(&"é".repeat(37)).is_err(), "74 bytes although 37 characters");
        assert!(NewPassword::parse("with\0nul byte").is_err());
    }
}
