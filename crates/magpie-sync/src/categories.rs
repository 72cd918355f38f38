//! Provider categories onto the default taxonomy (`magpie_domain::taxonomy`).
//!
//! Only Plaid sends categories (its `personal_finance_category`, v1 or v2 labels). A label is mapped
//! only where the meaning is clear; the others (`GENERAL_SERVICES_CONSULTING_AND_LEGAL`, ...) are left to
//! the categorizer rather than forced into a wrong bucket.

use rust_decimal::Decimal;

use crate::ProviderCategory;

/// Detailed labels first (most specific), then primary prefixes.
const DETAILED: &[(&str, &str)] = &[
    ("INCOME_WAGES", "Salary"),
    ("INCOME_SALARY", "Salary"),
    ("INCOME_DIVIDENDS", "Investment Income"),
    ("INCOME_INTEREST_EARNED", "Investment Income"),
    ("INCOME_RETIREMENT_PENSION", "Investment Income"),
    ("INCOME_TAX_REFUND", "Refunds"),
    ("TRANSFER_OUT_WITHDRAWAL", "Cash Withdrawal"),
    ("LOAN_PAYMENTS_MORTGAGE_PAYMENT", "Mortgage"),
    ("LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", "Transfers"),
    ("FOOD_AND_DRINK_GROCERIES", "Groceries"),
    ("FOOD_AND_DRINK_COFFEE", "Coffee Shops"),
    ("FOOD_AND_DRINK_BEER_WINE_AND_LIQUOR", "Groceries"),
    ("GENERAL_MERCHANDISE_CLOTHING_AND_ACCESSORIES", "Clothing"),
    ("GENERAL_MERCHANDISE_PET_SUPPLIES", "Pets"),
    ("GENERAL_MERCHANDISE_GIFTS_AND_NOVELTIES", "Gifts & Donations"),
    ("GENERAL_MERCHANDISE_SUPERSTORES", "Shopping"),
    ("GENERAL_MERCHANDISE_ONLINE_MARKETPLACES", "Shopping"),
    ("GENERAL_MERCHANDISE_DEPARTMENT_STORES", "Shopping"),
    ("GENERAL_MERCHANDISE_ELECTRONICS", "Shopping"),
    ("GENERAL_MERCHANDISE_BOOKSTORES_AND_NEWSSTANDS", "Shopping"),
    ("GENERAL_MERCHANDISE_DISCOUNT_STORES", "Shopping"),
    ("GENERAL_MERCHANDISE_SPORTING_GOODS", "Shopping"),
    ("GENERAL_MERCHANDISE_CONVENIENCE_STORES", "Groceries"),
    ("GENERAL_MERCHANDISE_TOBACCO_AND_VAPE", "Shopping"),
    ("GENERAL_MERCHANDISE_OFFICE_SUPPLIES", "Shopping"),
    ("MEDICAL_VETERINARY_SERVICES", "Pets"),
    ("PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS", "Fitness"),
    ("GENERAL_SERVICES_INSURANCE", "Insurance"),
    ("GENERAL_SERVICES_CHILDCARE", "Childcare"),
    ("GENERAL_SERVICES_EDUCATION", "Education"),
    ("GENERAL_SERVICES_AUTOMOTIVE", "Transportation"),
    ("GOVERNMENT_AND_NON_PROFIT_DONATIONS", "Gifts & Donations"),
    ("GOVERNMENT_AND_NON_PROFIT_TAX_PAYMENT", "Taxes"),
    ("TRANSPORTATION_GAS", "Fuel"),
    ("RENT_AND_UTILITIES_RENT", "Rent"),
    ("RENT_AND_UTILITIES_INTERNET_AND_CABLE", "Internet & Phone"),
    ("RENT_AND_UTILITIES_TELEPHONE", "Internet & Phone"),
    ("ENTERTAINMENT_TV_AND_MOVIES", "Entertainment"),
];

const PRIMARY: &[(&str, &str)] = &[
    ("INCOME", "Other Income"),
    ("TRANSFER_IN", "Transfers"),
    ("TRANSFER_OUT", "Transfers"),
    ("BANK_FEES", "Fees & Charges"),
    ("ENTERTAINMENT", "Entertainment"),
    ("FOOD_AND_DRINK", "Dining"),
    ("HOME_IMPROVEMENT", "Home"),
    ("MEDICAL", "Healthcare"),
    ("PERSONAL_CARE", "Personal Care"),
    ("TRANSPORTATION", "Transportation"),
    ("TRAVEL", "Travel"),
    ("RENT_AND_UTILITIES", "Utilities"),
];

/// Plaid's confidence levels as probabilities (Plaid documents VERY_HIGH as >98% and HIGH as >90%
/// likely; MEDIUM and LOW are "moderate" and "low"). UNKNOWN or none: no confidence.
fn plaid_confidence(level: Option<&str>) -> Option<Decimal> {
    match level? {
        "VERY_HIGH" => Some(Decimal::new(98, 2)),
        "HIGH" => Some(Decimal::new(90, 2)),
        "MEDIUM" => Some(Decimal::new(65, 2)),
        "LOW" => Some(Decimal::new(35, 2)),
        _ => None,
    }
}

/// Plaid's `personal_finance_category` onto the taxonomy, or `None` when the label has no clear
/// counterpart.
pub fn from_plaid(primary: &str, detailed: Option<&str>, confidence_level: Option<&str>) -> Option<ProviderCategory> {
    let detailed_hit = detailed.and_then(|d| DETAILED.iter().find(|(label, _)| *label == d));
    let category = match detailed_hit {
        Some((_, c)) => *c,
        None => PRIMARY.iter().find(|(label, _)| *label == primary).map(|(_, c)| *c)?,
    };
    Some(ProviderCategory {
        category,
        confidence: plaid_confidence(confidence_level),
        raw: detailed.unwrap_or(primary).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_a_default_category() {
        for (_, c) in DETAILED.iter().chain(PRIMARY) {
            assert!(magpie_domain::taxonomy::is_default(c), "{c}");
        }
    }

    #[test]
    fn detailed_beats_primary_and_unclear_labels_stay_unmapped() {
        let c = from_plaid("FOOD_AND_DRINK", Some("FOOD_AND_DRINK_COFFEE"), Some("VERY_HIGH")).unwrap();
        assert_eq!((c.category, c.confidence), ("Coffee Shops", Some(Decimal::new(98, 2))));
        assert_eq!(from_plaid("FOOD_AND_DRINK", Some("FOOD_AND_DRINK_FAST_FOOD"), None).unwrap().category, "Dining");
        assert!(from_plaid("GENERAL_SERVICES", Some("GENERAL_SERVICES_CONSULTING_AND_LEGAL"), Some("HIGH")).is_none());
        assert_eq!(from_plaid("INCOME", Some("INCOME_WAGES"), Some("UNKNOWN")).unwrap().confidence, None);
    }
}
