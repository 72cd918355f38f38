//! Budget allocations: the seed's `allocations` JSON object of category -> amount.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Category, Money, ParseError};

/// Category -> allocated amount. Every amount is positive with two decimals; stored in JSON as
/// two-decimal strings (`{"Groceries": "500.00"}`) so no reader ever sees a float.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object, example = json!({"Groceries": "500.00", "Dining": "200.00"}))]
pub struct Allocations(BTreeMap<Category, Money>);

impl Allocations {
    /// Most categories one budget may allocate.
    pub const MAX_ENTRIES: usize = 500;

    /// Validate a map of allocations: each amount positive, at most [`Money::MAX_COLUMN`].
    pub fn new(map: BTreeMap<Category, Money>) -> Result<Allocations, ParseError> {
        if map.len() > Self::MAX_ENTRIES {
            return Err(ParseError::new(format!("a budget may allocate at most {} categories", Self::MAX_ENTRIES)));
        }
        for (category, amount) in &map {
            if amount.is_negative() || amount.is_zero() {
                return Err(ParseError::new(format!("allocation for '{category}' must be positive")));
            }
            if *amount > Money::MAX_COLUMN {
                return Err(ParseError::new(format!("allocation for '{category}' is too large")));
            }
        }
        Ok(Allocations(map))
    }

    /// The entries, ordered by category.
    pub fn iter(&self) -> impl Iterator<Item = (&Category, &Money)> {
        self.0.iter()
    }

    /// The allocated amount of one category.
    pub fn get(&self, category: &Category) -> Option<Money> {
        self.0.get(category).copied()
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying map.
    pub fn into_inner(self) -> BTreeMap<Category, Money> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Allocations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<Category, Money>::deserialize(d)?;
        Allocations::new(map).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_stored_as_two_decimal_strings() {
        let a: Allocations = serde_json::from_str(r#"{"Groceries": 500, "Dining": "200.5"}"#).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"Dining":"200.50","Groceries":"500.00"}"#);
    }

    #[test]
    fn zero_or_negative_allocations_are_rejected() {
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": 0}"#).is_err());
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": "-1.00"}"#).is_err());
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": 1.005}"#).is_err());
    }
}
