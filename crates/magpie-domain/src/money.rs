//! Exact money.
//!
//! `Money` is a decimal with exactly two fraction digits. It never goes through a float: JSON numbers are
//! read through their shortest decimal representation, JSON output is a string (`"12.30"`), PostgreSQL
//! stores NUMERIC(12,2) and SQLite stores integer cents (see `codec`), so sums are exact on both engines.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// An exact amount of money with two decimal places; may be negative (balances, net totals).
///
/// Invariant: the scale is 2 and the value fits in `i64` cents, so the SQLite codec can never fail.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// Largest magnitude whose cents fit in an `i64`.
const MAX_ABS_CENTS: i64 = i64::MAX;

impl Money {
    /// Zero, with two decimals.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// The largest value a NUMERIC(12,2) column holds: 9,999,999,999.99.
    pub const MAX_COLUMN: Money = Money(Decimal::from_parts(
        (999_999_999_999u64 & 0xFFFF_FFFF) as u32,
        (999_999_999_999u64 >> 32) as u32,
        0,
        false,
        2,
    ));

    /// Money from integer cents (minor units).
    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    /// The amount in integer cents.
    pub fn cents(self) -> i64 {
        // The invariant (scale 2, within i64 cents) makes the mantissa the cents value.
        i64::try_from(self.0.mantissa()).expect("Money invariant: cents fit in i64")
    }

    /// Exact conversion from a decimal: more than two significant fraction digits is an error
    /// (`1.230` is fine, `1.234` is not), never a silent rounding.
    pub fn from_decimal(value: Decimal) -> Result<Money, ParseError> {
        let normalized = value.normalize();
        if normalized.scale() > 2 {
            return Err(ParseError::new("amount has more than two decimal places"));
        }
        let mut v = normalized;
        v.rescale(2);
        let cents = v.mantissa();
        if cents.unsigned_abs() > MAX_ABS_CENTS as u128 {
            return Err(ParseError::new("amount is too large"));
        }
        Ok(Money(v))
    }

    /// Parse a decimal string such as `"12"`, `"12.3"`, `"-0.05"` or `"1234.50"`. Thousands separators,
    /// currency signs and exponents are rejected: this is the API's wire format, not a bank file's.
    pub fn parse(s: &str) -> Result<Money, ParseError> {
        let t = s.trim();
        let digits_ok = !t.is_empty()
            && t.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+')))
            && t.chars().filter(|c| *c == '.').count() <= 1
            && t.chars().any(|c| c.is_ascii_digit());
        if !digits_ok {
            return Err(ParseError::new(format!("'{s}' is not a decimal amount")));
        }
        let d = Decimal::from_str(t).map_err(|_| ParseError::new(format!("'{s}' is not a decimal amount")))?;
        Money::from_decimal(d)
    }

    /// The amount as a decimal with scale 2.
    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// `self + other`, or `None` when the result leaves the representable range.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::from_decimal(self.0.checked_add(other.0)?).ok()
    }

    /// `self - other`, or `None` when the result leaves the representable range.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::from_decimal(self.0.checked_sub(other.0)?).ok()
    }

    /// The absolute value.
    pub fn abs(self) -> Money {
        Money(self.0.abs())
    }

    /// `-self`.
    pub fn negate(self) -> Money {
        Money(-self.0)
    }

    /// True when strictly below zero.
    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// True when zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Decimal keeps the scale, so this prints exactly two decimals ("12.30", "-0.05").
        if self.is_zero() {
            return f.write_str("0.00");
        }
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl TryFrom<Decimal> for Money {
    type Error = ParseError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Money::from_decimal(value)
    }
}

impl From<Money> for Decimal {
    fn from(m: Money) -> Decimal {
        m.0
    }
}

impl std::iter::Sum for Money {
    /// Sums exactly; panics only if the total leaves ±92 quadrillion, far beyond any ledger.
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |acc, m| acc.checked_add(m).expect("money sum overflow"))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl serde::de::Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount as a decimal string such as \"12.30\" or a JSON number")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
        Money::parse(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
        Money::from_decimal(Decimal::from(v)).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
        Money::from_decimal(Decimal::from(v)).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
        // serde_json hands us the nearest double. Rust prints a double as the shortest decimal that
        // reads back to the same double, which for any amount with at most 15 significant digits
        // (ours have at most 12) is exactly the literal the client wrote: 0.1 -> "0.1", 9999999999.99 ->
        // "9999999999.99". Parsing that string is therefore exact.
        if !v.is_finite() {
            return Err(E::custom("amount must be a finite number"));
        }
        let printed = format!("{v}");
        let d = Decimal::from_str(&printed).map_err(|_| E::custom("amount is out of range"))?;
        Money::from_decimal(d).map_err(E::custom)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^-?[0-9]+\.[0-9]{2}$"))
            .description(Some("Exact amount with two decimals, as a string. Input also accepts a JSON number."))
            .examples(["12.30"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_two_decimals() {
        assert_eq!(Money::parse("12.3").unwrap().to_string(), "12.30");
        assert_eq!(Money::parse("0.10").unwrap().to_string(), "0.10");
        assert_eq!(Money::parse("7").unwrap().to_string(), "7.00");
        assert_eq!(Money::parse("-0.05").unwrap().to_string(), "-0.05");
        assert_eq!(Money::parse("1.230").unwrap().to_string(), "1.23");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::parse("-0").unwrap().to_string(), "0.00");
    }

    #[test]
    fn more_than_two_decimals_is_rejected_not_rounded() {
        assert!(Money::parse("1.234").is_err());
        assert!(Money::parse("0.001").is_err());
    }

    #[test]
    fn garbage_is_rejected() {
        for s in ["", "abc", "1,000.00", "1e3", "$5", "1.2.3", "-", ".", "NaN", "inf"] {
            assert!(Money::parse(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn max_column_value_is_9999999999_99() {
        assert_eq!(Money::MAX_COLUMN.to_string(), "9999999999.99");
        assert_eq!(Money::MAX_COLUMN.cents(), 999_999_999_999);
    }

    #[test]
    fn cents_round_trip() {
        for c in [0, 1, 10, 99, -1, 123_456_789, i64::MAX, i64::MIN + 1] {
            assert_eq!(Money::from_cents(c).cents(), c);
        }
    }

    #[test]
    fn sums_are_exact() {
        let total: Money = std::iter::repeat_n(Money::parse("0.10").unwrap(), 10)
            .chain(std::iter::repeat_n(Money::parse("0.20").unwrap(), 10))
            .sum();
        assert_eq!(total.to_string(), "3.00");
    }

    #[test]
    fn json_numbers_convert_exactly() {
        let m: Money = serde_json::from_str("0.1").unwrap();
        assert_eq!(m.to_string(), "0.10");
        let m: Money = serde_json::from_str("9999999999.99").unwrap();
        assert_eq!(m.to_string(), "9999999999.99");
        let m: Money = serde_json::from_str("12").unwrap();
        assert_eq!(m.to_string(), "12.00");
        let m: Money = serde_json::from_str("\"12.30\"").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"12.30\"");
        assert!(serde_json::from_str::<Money>("12.345").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
    }

    #[test]
    fn overflow_is_detected() {
        let big = Money::from_cents(i64::MAX);
        assert!(big.checked_add(Money::from_cents(1)).is_none());
        assert!(Money::parse("100000000000000000000").is_err());
    }
}
