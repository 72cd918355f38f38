//! Unusual spending, found with robust statistics (median and median absolute deviation, which a few
//! outliers do not move): a transaction far larger than usual for its category or merchant, a possible
//! double charge, and a category running far above its usual month. Each comes with a sentence for
//! people.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::features::Direction;

/// One transaction as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// Booking date.
    pub date: NaiveDate,
    /// Amount in cents, positive.
    pub cents: i64,
    /// Direction.
    pub direction: Direction,
    /// Category.
    pub category: &'a str,
    /// Description.
    pub text: &'a str,
}

/// What kind of unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Much larger than usual for its category.
    LargeForCategory,
    /// Much larger than usual for its merchant.
    LargeForMerchant,
    /// The same amount at the same merchant twice within a day.
    PossibleDoubleCharge,
    /// A category's month far above its usual month.
    CategorySpike,
}

/// An anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Kind.
    pub kind: Kind,
    /// Indexes (into the input) of the transactions concerned (none for a category's month).
    pub items: Vec<usize>,
    /// The category.
    pub category: String,
    /// The month, for category spikes.
    pub month: Option<String>,
    /// The amount concerned, in cents (the transaction, or the month's total).
    pub cents: i64,
    /// What is usual, in cents (the median).
    pub usual_cents: i64,
    /// How far out: robust z-score (deviations from the median in units of 1.4826 MAD).
    pub score: f64,
    /// A sentence for people.
    pub explanation: String,
}

/// How unusual is unusual.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Robust z-score at least.
    pub z: f64,
    /// And at least this many times the median.
    pub ratio: f64,
    /// Fewest earlier transactions (or months) to judge from.
    pub min_history: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { z: 4.0, ratio: 2.0, min_history: 8 }
    }
}

fn median(sorted: &[i64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 { sorted[n / 2] as f64 } else { (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0 }
}

/// (median, scaled MAD) of `values`; the MAD is floored at 5% of the median so that a series of
/// identical amounts does not make every cent of difference infinitely unusual.
fn robust(values: &[i64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_unstable();
    let m = median(&v);
    let mut dev: Vec<i64> = v.iter().map(|x| (*x as f64 - m).abs().round() as i64).collect();
    dev.sort_unstable();
    let mad = 1.4826 * median(&dev);
    (m, mad.max(0.05 * m).max(1.0))
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

/// Anomalies among the expenses of `items` dated from `since` on, judged against everything before
/// each (the usual is learned from the whole history, excluding the transaction judged).
pub fn detect(items: &[Item<'_>], since: NaiveDate, today: NaiveDate, t: Thresholds) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let expenses: Vec<usize> = (0..items.len()).filter(|&i| items[i].direction == Direction::Out).collect();
    // Large for the category, or for the merchant.
    let mut by_category: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_merchant: HashMap<String, Vec<usize>> = HashMap::new();
    for &i in &expenses {
        by_category.entry(items[i].category).or_default().push(i);
        let key = crate::text::merchant_key(items[i].text);
        if !key.is_empty() {
            by_merchant.entry(key).or_default().push(i);
        }
    }
    let mut flagged: std::collections::HashSet<usize> = Default::default();
    let mut large = |group: &[usize], kind: Kind, label: &dyn Fn(usize) -> String, out: &mut Vec<Anomaly>| {
        if group.len() < t.min_history + 1 {
            return;
        }
        let amounts: Vec<i64> = group.iter().map(|&i| items[i].cents).collect();
        let (m, mad) = robust(&amounts);
        for &i in group.iter().filter(|&&i| items[i].date >= since) {
            let c = items[i].cents as f64;
            let z = (c - m) / mad;
            if z >= t.z && c >= t.ratio * m && flagged.insert(i) {
                out.push(Anomaly {
                    kind,
                    items: vec![i],
                    category: items[i].category.to_owned(),
                    month: None,
                    cents: items[i].cents,
                    usual_cents: m.round() as i64,
                    score: (z * 10.0).round() / 10.0,
                    explanation: format!(
                        "{} on {} is {:.1} times your usual {} ({}).",
                        money(items[i].cents),
                        items[i].date,
                        c / m.max(1.0),
                        label(i),
                        money(m.round() as i64)
                    ),
                });
            }
        }
    };
    let mut merchants: Vec<(&String, &Vec<usize>)> = by_merchant.iter().collect();
    merchants.sort();
    for (key, group) in merchants {
        large(group, Kind::LargeForMerchant, &|_| format!("charge at {}", key.to_uppercase()), &mut out);
    }
    let mut categories: Vec<(&&str, &Vec<usize>)> = by_category.iter().collect();
    categories.sort();
    for (category, group) in categories {
        large(group, Kind::LargeForCategory, &|_| format!("{category} expense"), &mut out);
    }

    // Possible double charges: the same amount at the same merchant within a day, at least 10.00
    // (two coffees on one morning are not a mistake worth a warning).
    for group in by_merchant.values() {
        let mut g: Vec<usize> = group.iter().copied().filter(|&i| items[i].cents >= 1000).collect();
        g.sort_by_key(|&i| (items[i].cents, items[i].date, i));
        for w in g.windows(2) {
            let (a, b) = (items[w[0]], items[w[1]]);
            if a.cents == b.cents && (b.date - a.date).num_days().abs() <= 1 && b.date >= since {
                out.push(Anomaly {
                    kind: Kind::PossibleDoubleCharge,
                    items: vec![w[0], w[1]],
                    category: b.category.to_owned(),
                    month: None,
                    cents: b.cents,
                    usual_cents: b.cents,
                    score: 0.0,
                    explanation: format!(
                        "{} was charged twice at {}: on {} and on {}. Check it is not a duplicate.",
                        money(b.cents),
                        crate::text::merchant_key(b.text).to_uppercase(),
                        a.date,
                        b.date
                    ),
                });
            }
        }
    }

    // Category months: complete months against the category's other months; the current month is
    // judged on what it has reached already.
    let mut monthly: BTreeMap<&str, BTreeMap<(i32, u32), i64>> = BTreeMap::new();
    for &i in &expenses {
        let d = items[i].date;
        *monthly.entry(items[i].category).or_default().entry((d.year(), d.month())).or_default() += items[i].cents;
    }
    let first_month = (since.year(), since.month());
    let this_month = (today.year(), today.month());
    for (category, months) in &monthly {
        for (&ym, &total) in months.iter().filter(|(ym, _)| **ym >= first_month) {
            let others: Vec<i64> =
                months.iter().filter(|(k, _)| **k != ym && **k != this_month).map(|(_, v)| *v).collect();
            if others.len() < 6 {
                continue;
            }
            let (m, mad) = robust(&others);
            let z = (total as f64 - m) / mad;
            if z >= t.z && total as f64 >= 1.5 * m && total as f64 - m >= 5000.0 {
                let current = ym == this_month;
                out.push(Anomaly {
                    kind: Kind::CategorySpike,
                    items: Vec::new(),
                    category: (*category).to_owned(),
                    month: Some(format!("{}-{:02}", ym.0, ym.1)),
                    cents: total,
                    usual_cents: m.round() as i64,
                    score: (z * 10.0).round() / 10.0,
                    explanation: format!(
                        "{category} {} {} in {}-{:02}, {:.1} times a usual month ({}).",
                        if current { "is already at" } else { "came to" },
                        money(total),
                        ym.0,
                        ym.1,
                        total as f64 / m.max(1.0),
                        money(m.round() as i64)
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.cents.cmp(&b.cents)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;

    #[test]
    fn planted_outliers_are_found_and_ordinary_spending_is_not() {
        let start: NaiveDate = "2026-01-01".parse().unwrap();
        let mut items = Vec::new();
        for i in 0..200u64 {
            items.push(Item {
                date: start + Days::new(i),
                cents: 3000 + ((i * 7919) % 2500) as i64,
                direction: Direction::Out,
                category: "Groceries",
                text: "CORNER MARKET",
            });
        }
        // Planted: a 900.00 grocery bill, and the same 64.99 twice at one shop.
        items.push(Item {
            date: start + Days::new(190),
            cents: 90000,
            direction: Direction::Out,
            category: "Groceries",
            text: "CORNER MARKET",
        });
        for day in [191, 192] {
            items.push(Item {
                date: start + Days::new(day),
                cents: 6499,
                direction: Direction::Out,
                category: "Shopping",
                text: "GADGET SHOP",
            });
        }
        let found = detect(&items, start + Days::new(150), start + Days::new(200), Thresholds::default());
        let kinds: Vec<Kind> = found.iter().map(|a| a.kind).collect();
        assert!(kinds.contains(&Kind::LargeForMerchant), "{found:?}");
        assert!(kinds.contains(&Kind::PossibleDoubleCharge), "{found:?}");
        let large = found.iter().find(|a| a.kind == Kind::LargeForMerchant).unwrap();
        assert_eq!(large.cents, 90000);
        assert!(large.explanation.contains("900.00"), "{}", large.explanation);
        // Nothing else: the ordinary days are not flagged.
        assert_eq!(found.iter().filter(|a| a.kind != Kind::CategorySpike).count(), 2, "{found:?}");
    }
}
