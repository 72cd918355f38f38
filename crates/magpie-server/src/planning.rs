//! Budget status and goal projections: the arithmetic behind "how much can I still spend?" and "will I
//! make it?". Pure functions over exact money; the handlers fetch the sums and pass them in.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use magpie_domain::{Allocations, Category, Money};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use utoipa::ToSchema;

/// The default alert thresholds, in percent of an allocation.
pub const DEFAULT_THRESHOLDS: &[u32] = &[80, 100];

fn to_money(d: Decimal) -> Money {
    let rounded = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    Money::from_decimal(rounded).unwrap_or(if rounded.is_sign_negative() { Money::ZERO } else { Money::MAX_COLUMN })
}

/// Percent with one decimal, as a JSON number (not money).
fn percent(part: Money, whole: Money) -> f64 {
    if whole.is_zero() {
        return 0.0;
    }
    let p = (part.as_decimal() * Decimal::ONE_HUNDRED / whole.as_decimal())
        .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero);
    p.to_string().parse().unwrap_or(0.0)
}

fn sub(a: Money, b: Money) -> Money {
    a.checked_sub(b).unwrap_or(Money::ZERO)
}

/// One allocated category of a budget.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CategoryStatus {
    /// Category.
    pub category: Category,
    /// Allocated.
    pub allocated: Money,
    /// Spent: the category's EXPENSE transactions of the period so far (soft-deleted excluded).
    pub spent: Money,
    /// Allocated minus spent (negative when overspent).
    pub remaining: Money,
    /// Spent as a percentage of the allocation.
    pub percent_used: f64,
    /// Spending by the period's end at the pace so far.
    pub projected: Money,
    /// Allocated minus projected.
    pub projected_remaining: Money,
    /// The thresholds (percent) reached by what is spent.
    pub thresholds_reached: Vec<u32>,
    /// The thresholds the projection reaches (what the period's end will likely bring).
    pub thresholds_projected: Vec<u32>,
}

/// Spending in a category the budget does not allocate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Unbudgeted {
    /// Category.
    pub category: Category,
    /// Spent in the period so far.
    pub spent: Money,
}

/// A budget's totals.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetTotals {
    /// Sum of allocations.
    pub allocated: Money,
    /// Spent in allocated categories.
    pub spent: Money,
    /// Allocated minus spent.
    pub remaining: Money,
    /// Spent in categories the budget does not allocate.
    pub unbudgeted_spent: Money,
    /// All spending of the period.
    pub total_spent: Money,
    /// Spent in allocated categories by the period's end at the pace so far.
    pub projected: Money,
    /// Spent as a percentage of the allocations.
    pub percent_used: f64,
}

/// Where a budget stands on a day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    /// The day it is computed for (within the period).
    #[schema(value_type = String, format = Date)]
    pub as_of: NaiveDate,
    /// Days of the period up to and including `as_of`.
    pub days_elapsed: i64,
    /// Days in the period.
    pub days_total: i64,
    /// Allocated categories.
    pub categories: Vec<CategoryStatus>,
    /// Categories with spending but no allocation, largest first.
    pub unbudgeted: Vec<Unbudgeted>,
    /// Totals.
    pub totals: BudgetTotals,
    /// The thresholds checked, in percent.
    pub thresholds: Vec<u32>,
    /// How `projected` was made: `forecast` (what is spent plus the forecast of the rest of the
    /// period, once a forecast model exists) or `pace` (what is spent at the pace so far).
    pub projection: String,
}

/// The status of a budget for `period_start..=period_end` on `as_of` (clamped into the period), from
/// the period's EXPENSE totals per category up to `as_of`.
pub fn budget_status(
    allocations: &Allocations,
    period_start: NaiveDate,
    period_end: NaiveDate,
    as_of: NaiveDate,
    spent: &BTreeMap<Category, Money>,
    thresholds: &[u32],
    expected_rest: Option<&BTreeMap<Category, Money>>,
) -> BudgetStatus {
    let as_of = as_of.clamp(period_start, period_end);
    let days_total = (period_end - period_start).num_days() + 1;
    let days_elapsed = (as_of - period_start).num_days() + 1;
    let project = |category: &Category, s: Money| -> Money {
        if days_elapsed >= days_total {
            return s;
        }
        match expected_rest {
            // What is spent, plus what the forecast expects over the rest of the period.
            Some(rest) => s.checked_add(rest.get(category).copied().unwrap_or(Money::ZERO)).unwrap_or(s),
            // Linear pace: what is spent over the days so far, times the days of the period.
            None => to_money(s.as_decimal() * Decimal::from(days_total) / Decimal::from(days_elapsed)),
        }
    };
    let reached = |part: Money, whole: Money| -> Vec<u32> {
        thresholds.iter().copied().filter(|t| percent(part, whole) >= f64::from(*t)).collect()
    };
    let mut categories = Vec::new();
    for (category, &allocated) in allocations.iter() {
        let s = spent.get(category).copied().unwrap_or(Money::ZERO);
        let projected = project(category, s);
        categories.push(CategoryStatus {
            category: category.clone(),
            allocated,
            spent: s,
            remaining: sub(allocated, s),
            percent_used: percent(s, allocated),
            projected,
            projected_remaining: sub(allocated, projected),
            thresholds_reached: reached(s, allocated),
            thresholds_projected: reached(projected, allocated),
        });
    }
    let mut unbudgeted: Vec<Unbudgeted> = spent
        .iter()
        .filter(|(c, s)| allocations.get(c).is_none() && !s.is_zero())
        .map(|(c, s)| Unbudgeted { category: c.clone(), spent: *s })
        .collect();
    unbudgeted.sort_by(|a, b| b.spent.cmp(&a.spent).then_with(|| a.category.cmp(&b.category)));
    let sum = |v: &mut dyn Iterator<Item = Money>| v.fold(Money::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
    let allocated = sum(&mut categories.iter().map(|c| c.allocated));
    let spent_allocated = sum(&mut categories.iter().map(|c| c.spent));
    let unbudgeted_spent = sum(&mut unbudgeted.iter().map(|u| u.spent));
    let totals = BudgetTotals {
        allocated,
        spent: spent_allocated,
        remaining: sub(allocated, spent_allocated),
        unbudgeted_spent,
        total_spent: spent_allocated.checked_add(unbudgeted_spent).unwrap_or(Money::MAX_COLUMN),
        projected: sum(&mut categories.iter().map(|c| c.projected)),
        percent_used: percent(spent_allocated, allocated),
    };
    BudgetStatus {
        as_of,
        days_elapsed,
        days_total,
        categories,
        unbudgeted,
        totals,
        thresholds: thresholds.to_vec(),
        projection: if expected_rest.is_some() && days_elapsed < days_total { "forecast" } else { "pace" }.to_owned(),
    }
}

/// The period after `start..=end`: the next calendar month(s) when the period is whole months, else
/// the same number of days right after it.
pub fn next_period(start: NaiveDate, end: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let whole_months = start.day() == 1 && end.succ_opt().is_some_and(|d| d.day() == 1);
    if whole_months {
        let next_day = end.succ_opt()?;
        let months = (next_day.year() - start.year()) * 12 + next_day.month() as i32 - start.month() as i32;
        let next_end = next_day.checked_add_months(Months::new(months as u32))?.pred_opt()?;
        return Some((next_day, next_end));
    }
    let days = (end - start).num_days() + 1;
    let next_start = end.succ_opt()?;
    Some((next_start, next_start + chrono::Days::new(days as u64 - 1)))
}

/// What to carry into the next period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// Nothing: the same allocations.
    None,
    /// What was left unspent is added.
    Unspent,
    /// Unspent amounts are added and overspent amounts taken off.
    Both,
}

/// The next period's allocations from a status: the same allocations, plus what `carry` says. A
/// category whose allocation would drop to zero or below is left out (returned second).
pub fn rolled_allocations(status: &BudgetStatus, carry: Carry) -> (BTreeMap<Category, Money>, Vec<Category>) {
    let mut out = BTreeMap::new();
    let mut dropped = Vec::new();
    for c in &status.categories {
        let extra = match carry {
            Carry::None => Money::ZERO,
            Carry::Unspent if c.remaining.is_negative() => Money::ZERO,
            Carry::Unspent | Carry::Both => c.remaining,
        };
        let next = c.allocated.checked_add(extra).unwrap_or(Money::MAX_COLUMN).min(Money::MAX_COLUMN);
        if next.is_negative() || next.is_zero() {
            dropped.push(c.category.clone());
        } else {
            out.insert(c.category.clone(), next);
        }
    }
    (out, dropped)
}

/// Whether a goal will be reached, and what it takes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GoalProjection {
    /// Target minus current (zero once reached).
    pub remaining: Money,
    /// Whole months left until the deadline (this month included); none without a deadline.
    pub months_left: Option<u32>,
    /// The deadline has passed with money still missing.
    pub overdue: bool,
    /// What to put aside each month to reach the target by the deadline.
    pub monthly_needed: Option<Money>,
    /// The average monthly inflow of the last 3 months (contributions and tracked money).
    pub pace_per_month: Money,
    /// When the target is reached at that pace; none when it is not reached at this pace.
    #[schema(value_type = Option<String>, format = Date)]
    pub projected_completion: Option<NaiveDate>,
    /// Whether the projected completion is on or before the deadline.
    pub on_track: Option<bool>,
    /// A sentence for people.
    pub summary: String,
}

/// Project a goal on `today` from its target, current amount, deadline and the inflow of its last 3
/// months.
pub fn goal_projection(
    target: Money,
    current: Money,
    deadline: Option<NaiveDate>,
    today: NaiveDate,
    last_three_months: Money,
) -> GoalProjection {
    let remaining = if current >= target { Money::ZERO } else { sub(target, current) };
    let pace = to_money(last_three_months.as_decimal() / Decimal::from(3));
    let pace = if pace.is_negative() { Money::ZERO } else { pace };
    let (months_left, overdue) = match deadline {
        Some(d) if d < today => (Some(0), !remaining.is_zero()),
        Some(d) => {
            let months = (d.year() - today.year()) * 12 + d.month() as i32 - today.month() as i32 + 1;
            (Some(months.max(1) as u32), false)
        }
        None => (None, false),
    };
    let monthly_needed = months_left
        .map(|m| if m == 0 { remaining } else { to_money(remaining.as_decimal() / Decimal::from(m)).max(Money::ZERO) });
    let projected_completion = if remaining.is_zero() {
        Some(today)
    } else if pace.is_zero() {
        None
    } else {
        // Whole months at this pace, rounded up.
        let months = (remaining.as_decimal() / pace.as_decimal()).ceil();
        let months: u32 = months.to_string().parse().unwrap_or(u32::MAX);
        (months <= 1200).then(|| today.checked_add_months(Months::new(months))).flatten()
    };
    let on_track = deadline.map(|d| projected_completion.is_some_and(|p| p <= d));
    let summary = if remaining.is_zero() {
        "Reached.".to_owned()
    } else if overdue {
        format!("The deadline has passed; {remaining} is still missing.")
    } else {
        let needed =
            monthly_needed.map(|m| format!("Put aside {m} a month to make the deadline. ")).unwrap_or_default();
        match projected_completion {
            Some(p) => format!("{needed}At the pace of the last 3 months ({pace} a month) it is reached by {p}."),
            None => format!("{needed}Not reached at this pace: nothing came in over the last 3 months."),
        }
    };
    GoalProjection {
        remaining,
        months_left,
        overdue,
        monthly_needed,
        pace_per_month: pace,
        projected_completion,
        on_track,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }
    fn c(s: &str) -> Category {
        Category::parse(s).unwrap()
    }

    #[test]
    fn status_against_hand_computed_figures() {
        let alloc = Allocations::new([(c("Groceries"), m("500.00")), (c("Dining"), m("200.00"))].into()).unwrap();
        let spent: BTreeMap<Category, Money> =
            [(c("Groceries"), m("412.37")), (c("Dining"), m("250.10")), (c("Travel"), m("99.99"))].into();
        // 10 of 30 days of June.
        let s =
            budget_status(&alloc, d("2026-06-01"), d("2026-06-30"), d("2026-06-10"), &spent, DEFAULT_THRESHOLDS, None);
        assert_eq!((s.days_elapsed, s.days_total), (10, 30));
        let dining = &s.categories[0];
        assert_eq!(dining.category.as_str(), "Dining");
        assert_eq!(dining.remaining, m("-50.10"));
        assert_eq!(dining.percent_used, 125.1);
        assert_eq!(dining.projected, m("750.30"));
        assert_eq!(dining.thresholds_reached, [80, 100]);
        let groceries = &s.categories[1];
        assert_eq!(groceries.remaining, m("87.63"));
        assert_eq!(groceries.percent_used, 82.5);
        // 412.37 * 3 = 1237.11
        assert_eq!(groceries.projected, m("1237.11"));
        assert_eq!(groceries.thresholds_reached, [80]);
        assert_eq!(groceries.thresholds_projected, [80, 100]);
        assert_eq!(s.unbudgeted, [Unbudgeted { category: c("Travel"), spent: m("99.99") }]);
        assert_eq!(s.totals.allocated, m("700.00"));
        assert_eq!(s.totals.spent, m("662.47"));
        assert_eq!(s.totals.remaining, m("37.53"));
        assert_eq!(s.totals.total_spent, m("762.46"));
        assert_eq!(s.totals.projected, m("1987.41"));
        // After the period, the projection is what was spent.
        let s = budget_status(&alloc, d("2026-06-01"), d("2026-06-30"), d("2026-08-01"), &spent, &[50], None);
        assert_eq!(s.as_of, d("2026-06-30"));
        assert_eq!(s.categories[1].projected, m("412.37"));
        assert_eq!(s.categories[1].thresholds_reached, [50]);
        // With a forecast of the rest of the period: spent plus what is expected.
        let rest: BTreeMap<Category, Money> = [(c("Groceries"), m("300.00"))].into();
        let s = budget_status(&alloc, d("2026-06-01"), d("2026-06-30"), d("2026-06-10"), &spent, &[], Some(&rest));
        assert_eq!(s.projection, "forecast");
        assert_eq!(s.categories[1].projected, m("712.37"));
        assert_eq!(s.categories[0].projected, m("250.10"), "nothing more expected for Dining");
    }

    #[test]
    fn next_periods_follow_calendar_months_or_lengths() {
        assert_eq!(next_period(d("2026-01-01"), d("2026-01-31")), Some((d("2026-02-01"), d("2026-02-28"))));
        assert_eq!(next_period(d("2026-12-01"), d("2026-12-31")), Some((d("2027-01-01"), d("2027-01-31"))));
        assert_eq!(next_period(d("2026-01-01"), d("2026-03-31")), Some((d("2026-04-01"), d("2026-06-30"))));
        assert_eq!(next_period(d("2026-01-15"), d("2026-01-28")), Some((d("2026-01-29"), d("2026-02-11"))));
    }

    #[test]
    fn carrying_over_adds_unspent_and_optionally_takes_off_overspent() {
        let alloc =
            Allocations::new([(c("A"), m("100.00")), (c("B"), m("50.00")), (c("C"), m("10.00"))].into()).unwrap();
        let spent: BTreeMap<Category, Money> =
            [(c("A"), m("60.00")), (c("B"), m("70.00")), (c("C"), m("25.00"))].into();
        let s = budget_status(&alloc, d("2026-06-01"), d("2026-06-30"), d("2026-06-30"), &spent, &[], None);
        let (none, _) = rolled_allocations(&s, Carry::None);
        assert_eq!(none[&c("A")], m("100.00"));
        let (unspent, dropped) = rolled_allocations(&s, Carry::Unspent);
        assert_eq!((unspent[&c("A")], unspent[&c("B")]), (m("140.00"), m("50.00")));
        assert!(dropped.is_empty());
        let (both, dropped) = rolled_allocations(&s, Carry::Both);
        assert_eq!((both[&c("A")], both[&c("B")]), (m("140.00"), m("30.00")));
        assert_eq!(dropped, [c("C")], "10 - 15 leaves nothing to allocate");
    }

    #[test]
    fn goal_projections() {
        // 1,000 of 5,000, deadline in December, today is June 15: 7 months (June to December).
        let p = goal_projection(m("5000.00"), m("1000.00"), Some(d("2026-12-31")), d("2026-06-15"), m("1500.00"));
        assert_eq!(p.remaining, m("4000.00"));
        assert_eq!(p.months_left, Some(7));
        assert_eq!(p.monthly_needed, Some(m("571.43")));
        assert_eq!(p.pace_per_month, m("500.00"));
        // 4,000 at 500 a month: 8 months, after the deadline.
        assert_eq!(p.projected_completion, Some(d("2027-02-15")));
        assert_eq!(p.on_track, Some(false));
        // At 800 a month: 5 months, in time.
        let p = goal_projection(m("5000.00"), m("1000.00"), Some(d("2026-12-31")), d("2026-06-15"), m("2400.00"));
        assert_eq!((p.projected_completion, p.on_track), (Some(d("2026-11-15")), Some(true)));
        // Nothing came in: not at this pace.
        let p = goal_projection(m("5000.00"), m("1000.00"), Some(d("2026-12-31")), d("2026-06-15"), Money::ZERO);
        assert_eq!((p.projected_completion, p.on_track), (None, Some(false)));
        assert!(p.summary.contains("Not reached at this pace"), "{}", p.summary);
        // Past the deadline.
        let p = goal_projection(m("5000.00"), m("1000.00"), Some(d("2026-01-31")), d("2026-06-15"), m("30.00"));
        assert!(p.overdue && p.monthly_needed == Some(m("4000.00")));
        // Reached.
        let p = goal_projection(m("100.00"), m("120.00"), None, d("2026-06-15"), Money::ZERO);
        assert_eq!((p.remaining, p.projected_completion), (Money::ZERO, Some(d("2026-06-15"))));
    }
}
