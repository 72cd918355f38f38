//! The default category taxonomy: what a new user starts with, what the global categorization model
//! predicts, and what bank-provided categories are mapped onto. Users may add their own categories freely;
//! these are the defaults, not a limit.

use crate::TransactionType;

/// A default category and the direction its transactions usually have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultCategory {
    /// Name (at most 50 characters).
    pub name: &'static str,
    /// Usual direction.
    pub kind: TransactionType,
}

const fn c(name: &'static str, kind: TransactionType) -> DefaultCategory {
    DefaultCategory { name, kind }
}

use TransactionType::{Expense as E, Income as I};

/// The default taxonomy, incomes first.
pub const DEFAULT_CATEGORIES: &[DefaultCategory] = &[
    c("Salary", I),
    c("Freelance Income", I),
    c("Investment Income", I),
    c("Refunds", I),
    c("Other Income", I),
    c("Groceries", E),
    c("Dining", E),
    c("Coffee Shops", E),
    c("Transportation", E),
    c("Fuel", E),
    c("Rent", E),
    c("Mortgage", E),
    c("Utilities", E),
    c("Internet & Phone", E),
    c("Insurance", E),
    c("Healthcare", E),
    c("Entertainment", E),
    c("Subscriptions", E),
    c("Shopping", E),
    c("Clothing", E),
    c("Home", E),
    c("Travel", E),
    c("Education", E),
    c("Childcare", E),
    c("Pets", E),
    c("Personal Care", E),
    c("Fitness", E),
    c("Gifts & Donations", E),
    c("Taxes", E),
    c("Fees & Charges", E),
    c("Transfers", E),
    c("Cash Withdrawal", E),
    c("Uncategorized", E),
];

/// Whether `name` is one of the defaults.
pub fn is_default(name: &str) -> bool {
    DEFAULT_CATEGORIES.iter().any(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_valid_unique_category() {
        let mut seen = std::collections::BTreeSet::new();
        for d in DEFAULT_CATEGORIES {
            crate::Category::parse(d.name).unwrap();
            assert!(seen.insert(d.name), "{} twice", d.name);
        }
        assert!(is_default(crate::Category::UNCATEGORIZED));
    }
}
