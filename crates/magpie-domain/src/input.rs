//! Parsing the fields of a transaction as they arrive from a person, a file or a bank, with messages
//! written for whoever sent them. Shared by the API, the importers and the sync engine so that every
//! path into the ledger applies the same rules.

use chrono::NaiveDate;

use crate::text::bounded_text;
use crate::{Money, ParseError};

/// Longest description kept, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Earliest and latest dates accepted: far enough for any real ledger, near enough to catch typos
/// such as year 20026.
pub const MIN_DATE: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid");
/// See [`MIN_DATE`].
pub const MAX_DATE: NaiveDate = NaiveDate::from_ymd_opt(2199, 12, 31).expect("valid");

/// A transaction amount: zero or positive (the type carries the direction), at most 9,999,999,999.99.
pub fn transaction_amount(amount: Money) -> Result<Money, ParseError> {
    if amount.is_negative() {
        return Err(ParseError::new(
            "amount must be zero or positive; the type (INCOME or EXPENSE) gives the direction",
        ));
    }
    if amount > Money::MAX_COLUMN {
        return Err(ParseError::new("amount must be at most 9999999999.99"));
    }
    Ok(amount)
}

/// A calendar date written `YYYY-MM-DD`, between 1900 and 2199.
pub fn transaction_date(s: &str) -> Result<NaiveDate, ParseError> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| ParseError::new(format!("'{s}' is not a date like 2026-03-31")))?;
    check_date(d)
}

/// A date within the accepted range.
pub fn check_date(d: NaiveDate) -> Result<NaiveDate, ParseError> {
    if d < MIN_DATE || d > MAX_DATE {
        return Err(ParseError::new("date must be between 1900-01-01 and 2199-12-31"));
    }
    Ok(d)
}

/// A description: trimmed, inner whitespace runs collapsed, 1 to 500 characters, no control characters.
pub fn description(s: &str) -> Result<String, ParseError> {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    bounded_text("description", &collapsed, MAX_DESCRIPTION_CHARS)?;
    Ok(collapsed)
}

/// Longest name of a budget, goal or rule, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest note on a contribution, in characters.
pub const MAX_NOTE_CHARS: usize = 200;

/// The name of a budget, goal or rule: trimmed, 1 to 100 characters, no control characters (a NUL
/// would be refused by PostgreSQL; a tab or a line break breaks every list it is shown in).
pub fn name(s: &str) -> Result<String, ParseError> {
    let n = s.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME_CHARS {
        return Err(ParseError::new(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    bounded_text("name", n, MAX_NAME_CHARS)?;
    Ok(n.to_owned())
}

/// An optional note: trimmed (empty is none), at most 200 characters, no control characters.
pub fn note(s: Option<&str>) -> Result<Option<String>, ParseError> {
    let Some(n) = s.map(str::trim).filter(|n| !n.is_empty()) else { return Ok(None) };
    if n.chars().count() > MAX_NOTE_CHARS || n.chars().any(char::is_control) {
        return Err(ParseError::new(format!(
            "note must be at most {MAX_NOTE_CHARS} characters, without control characters"
        )));
    }
    Ok(Some(n.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_must_be_non_negative_and_fit_the_column() {
        assert!(transaction_amount("0.00".parse().unwrap()).is_ok());
        assert!(transaction_amount("9999999999.99".parse().unwrap()).is_ok());
        assert!(transaction_amount("10000000000.00".parse().unwrap()).is_err());
        assert!(transaction_amount("-0.01".parse().unwrap()).is_err());
    }

    #[test]
    fn dates_are_iso_and_in_range() {
        assert_eq!(transaction_date("2026-03-31").unwrap().to_string(), "2026-03-31");
        for bad in ["2026-02-30", "31/03/2026", "2026-3-31x", "1850-01-01", "20026-01-01", ""] {
            assert!(transaction_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_normalized_and_bounded() {
        assert_eq!(description("  COFFEE   SHOP\t#12 ").unwrap(), "COFFEE SHOP #12");
        assert!(description("   ").is_err());
        assert!(description(&"x".repeat(501)).is_err());
    }

    #[test]
    fn names_and_notes_refuse_control_characters() {
        assert_eq!(name("  Rent ").unwrap(), "Rent");
        for bad in ["", "  ", "a\0b", "a\tb", "a\rb", &"x".repeat(101)] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(note(Some("  ")).unwrap(), None);
        assert_eq!(note(Some(" thanks ")).unwrap().as_deref(), Some("thanks"));
        assert!(note(Some("a\nb")).is_err());
        assert!(note(Some(&"x".repeat(201))).is_err());
    }
}
