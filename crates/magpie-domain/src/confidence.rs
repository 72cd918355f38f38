//! The categorizer's confidence: the seed's NUMERIC(3,2) between 0 and 1.

use std::fmt;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A probability in 0..=1 with two decimals (stored as NUMERIC(3,2) on PostgreSQL, integer hundredths on
/// SQLite). Sent in JSON as a number: it is not money, and two decimals are exact in any float reader.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Confidence(u8);

impl Confidence {
    /// From hundredths (0..=100).
    pub fn from_hundredths(h: u8) -> Result<Confidence, ParseError> {
        if h > 100 {
            return Err(ParseError::new("confidence_score must be between 0 and 1"));
        }
        Ok(Confidence(h))
    }

    /// From a probability, rounded to the nearest hundredth. NaN and values outside 0..1 are errors.
    pub fn from_probability(p: f64) -> Result<Confidence, ParseError> {
        if !p.is_finite() || !(0.0..=1.0).contains(&p) {
            return Err(ParseError::new("confidence_score must be between 0 and 1"));
        }
        Ok(Confidence((p * 100.0).round() as u8))
    }

    /// From a decimal with at most two decimals in 0..=1.
    pub fn from_decimal(d: Decimal) -> Result<Confidence, ParseError> {
        let h = d * Decimal::ONE_HUNDRED;
        if !h.fract().is_zero() {
            return Err(ParseError::new("confidence_score has more than two decimal places"));
        }
        h.to_u8()
            .filter(|h| *h <= 100)
            .map(Confidence)
            .ok_or_else(|| ParseError::new("confidence_score must be between 0 and 1"))
    }

    /// Hundredths (0..=100).
    pub fn hundredths(self) -> u8 {
        self.0
    }

    /// As a decimal with scale 2.
    pub fn as_decimal(self) -> Decimal {
        Decimal::new(i64::from(self.0), 2)
    }

    /// As a float, for arithmetic such as thresholds.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_decimal())
    }
}

impl fmt::Debug for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Confidence({self})")
    }
}

impl Serialize for Confidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        // Same shortest-representation argument as for Money: two-decimal literals are recovered exactly.
        let dec =
            Decimal::from_f64(v).ok_or_else(|| serde::de::Error::custom("confidence_score must be between 0 and 1"))?;
        let printed: Decimal = format!("{v}").parse().unwrap_or(dec);
        Confidence::from_decimal(printed).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Confidence {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .minimum(Some(0.0))
            .maximum(Some(1.0))
            .description(Some("Calibrated probability of the category, two decimals."))
            .examples([0.87])
            .into()
    }
}

impl utoipa::ToSchema for Confidence {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_rejected() {
        assert!(Confidence::from_probability(1.01).is_err());
        assert!(Confidence::from_probability(-0.01).is_err());
        assert!(Confidence::from_probability(f64::NAN).is_err());
        assert!(Confidence::from_hundredths(101).is_err());
    }

    #[test]
    fn json_round_trip_is_exact() {
        let c: Confidence = serde_json::from_str("0.87").unwrap();
        assert_eq!(c.hundredths(), 87);
        assert_eq!(serde_json::to_string(&c).unwrap(), "0.87");
        assert!(serde_json::from_str::<Confidence>("0.875").is_err());
    }
}
