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

    /// Move `from`'s allocation to `to` (adding to `to`'s when both exist: a merge). `None` when `from`
    /// is not allocated; an error when the merged amount would exceed the column's range.
    pub fn rename_category(&self, from: &Category, to: &Category) -> Result<Option<Allocations>, ParseError> {
        let Some(amount) = self.0.get(from).copied() else { return Ok(None) };
        let mut map = self.0.clone();
        map.remove(from);
        let merged = match map.get(to) {
            Some(existing) => existing.checked_add(amount).ok_or_else(|| ParseError::new("allocation too large"))?,
            None => amount,
        };
        map.insert(to.clone(), merged);
        Allocations::new(map).map(Some)
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
    fn renaming_onto_an_existing_category_merges_the_amounts() {
        let a: Allocations =
            serde_json::from_str(r#"{"Food": "100.00", "Groceries": "50.10", "Rent": "900"}"#).unwrap();
        let food = Category::parse("Food").unwrap();
        let groceries = Category::parse("Groceries").unwrap();
        let merged = a.rename_category(&food, &groceries).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&merged).unwrap(), r#"{"Groceries":"150.10","Rent":"900.00"}"#);
        let renamed = a.rename_category(&groceries, &Category::parse("Supermarket").unwrap()).unwrap().unwrap();
        assert_eq!(renamed.get(&Category::parse("Supermarket").unwrap()), Some("50.10".parse().unwrap()));
        assert!(a.rename_category(&Category::parse("Travel").unwrap(), &food).unwrap().is_none());
    }

    #[test]
    fn zero_or_negative_allocations_are_rejected() {
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": 0}"#).is_err());
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": "-1.00"}"#).is_err());
        assert!(serde_json::from_str::<Allocations>(r#"{"Groceries": 1.005}"#).is_err());
    }
}
