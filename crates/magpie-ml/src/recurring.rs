//! Recurring payments and income found in a history: subscriptions, bills, salaries. Transactions are
//! grouped by merchant (the description without store numbers and references, see
//! [`crate::text::merchant_key`]) and direction; a group recurs when the days between its charges fit
//! one cadence (weekly, bi-weekly, monthly, quarterly, yearly, each with a tolerance) and its amounts
//! are steady or drift slowly. For each series: the next expected date and amount, price changes, and
//! whether it is new or has stopped.

use std::collections::HashMap;

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::features::Direction;

/// How often a series recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// Every 7 days.
    Weekly,
    /// Every 14 days.
    Biweekly,
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every year.
    Yearly,
}

impl Cadence {
    const ALL: [Cadence; 5] =
        [Cadence::Weekly, Cadence::Biweekly, Cadence::Monthly, Cadence::Quarterly, Cadence::Yearly];

    /// Days between two occurrences that still count as this cadence (a salary paid on the last
    /// business day moves by a few days; a bill's due date by a weekend).
    fn window(self) -> (i64, i64) {
        match self {
            Cadence::Weekly => (6, 8),
            Cadence::Biweekly => (12, 16),
            Cadence::Monthly => (25, 36),
            Cadence::Quarterly => (82, 100),
            Cadence::Yearly => (350, 380),
        }
    }

    /// Typical days between occurrences.
    pub fn days(self) -> i64 {
        match self {
            Cadence::Weekly => 7,
            Cadence::Biweekly => 14,
            Cadence::Monthly => 30,
            Cadence::Quarterly => 91,
            Cadence::Yearly => 365,
        }
    }

    /// Fewest occurrences that make a series.
    fn min_occurrences(self) -> usize {
        match self {
            Cadence::Yearly => 2,
            _ => 3,
        }
    }

    /// The date one period after `d` (calendar months for monthly and longer, kept on `day` of the
    /// month when it exists).
    pub fn after(self, d: NaiveDate, day: u32) -> NaiveDate {
        let months = match self {
            Cadence::Weekly => return d + Days::new(7),
            Cadence::Biweekly => return d + Days::new(14),
            Cadence::Monthly => 1,
            Cadence::Quarterly => 3,
            Cadence::Yearly => 12,
        };
        let next = d.checked_add_months(Months::new(months)).unwrap_or(d);
        // Back to the usual day of the month where it exists (31st -> 30th -> 31st).
        let last = last_day(next.year(), next.month());
        NaiveDate::from_ymd_opt(next.year(), next.month(), day.min(last)).unwrap_or(next)
    }
}

fn last_day(year: i32, month: u32) -> u32 {
    let first_next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    first_next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// One transaction as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence<'a> {
    /// Booking date.
    pub date: NaiveDate,
    /// Amount in cents, positive.
    pub cents: i64,
    /// Direction.
    pub direction: Direction,
    /// Description.
    pub text: &'a str,
}

/// Whether a series is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesStatus {
    /// Seen recently, expected again.
    Active,
    /// Active and started within its last three periods.
    New,
    /// Missed more than two periods in a row.
    Stopped,
}

/// A change of a series' amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChange {
    /// The amount before, in cents.
    pub from_cents: i64,
    /// The amount since, in cents.
    pub to_cents: i64,
    /// The first occurrence at the new amount.
    pub since: NaiveDate,
}

/// A recurring series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Merchant key the occurrences share.
    pub key: String,
    /// The latest description.
    pub description: String,
    /// Income or expense.
    pub direction: Direction,
    /// How often.
    pub cadence: Cadence,
    /// Occurrences found.
    pub occurrences: usize,
    /// Indexes (into the input) of the occurrences.
    pub members: Vec<usize>,
    /// First occurrence.
    pub first_date: NaiveDate,
    /// Latest occurrence.
    pub last_date: NaiveDate,
    /// Latest amount, in cents.
    pub last_cents: i64,
    /// Whether the amounts are steady (subscriptions) or vary (bills that follow usage).
    pub steady: bool,
    /// The next expected date.
    pub next_date: NaiveDate,
    /// The next expected amount, in cents (the latest for steady series, else the mean of the last
    /// three).
    pub next_cents: i64,
    /// The latest price change of a steady series.
    pub price_change: Option<PriceChange>,
    /// Active, new or stopped on the day of the analysis.
    pub status: SeriesStatus,
    /// Share of the gaps between occurrences that fit the cadence.
    pub regularity: f64,
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    if v.is_empty() { 0 } else { v[v.len() / 2] }
}

/// Coefficient of variation of amounts.
fn variation(cents: &[i64]) -> f64 {
    let n = cents.len() as f64;
    let mean = cents.iter().sum::<i64>() as f64 / n;
    if mean <= 0.0 {
        return f64::INFINITY;
    }
    let var = cents.iter().map(|c| (*c as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// Find the recurring series in `history` as of `today`.
pub fn detect(history: &[Occurrence<'_>], today: NaiveDate) -> Vec<Series> {
    let mut groups: HashMap<(String, Direction), Vec<usize>> = HashMap::new();
    for (i, o) in history.iter().enumerate() {
        let key = crate::text::merchant_key(o.text);
        if key.is_empty() || o.cents <= 0 {
            continue;
        }
        groups.entry((key, o.direction)).or_default().push(i);
    }
    let mut out = Vec::new();
    for ((key, direction), mut members) in groups {
        if members.len() < 2 {
            continue;
        }
        members.sort_by_key(|&i| (history[i].date, i));
        // Several charges on one day (a split payment) count as one occurrence of the series.
        let mut days: Vec<(NaiveDate, i64, usize)> = Vec::new();
        for &i in &members {
            match days.last_mut() {
                Some((d, c, _)) if *d == history[i].date => *c += history[i].cents,
                _ => days.push((history[i].date, history[i].cents, i)),
            }
        }
        let gaps: Vec<i64> = days.windows(2).map(|w| (w[1].0 - w[0].0).num_days()).collect();
        if gaps.is_empty() {
            continue;
        }
        // The cadence most gaps fit; at least three quarters of them must.
        let best = Cadence::ALL
            .iter()
            .map(|&c| {
                let (lo, hi) = c.window();
                let fit = gaps.iter().filter(|g| (lo..=hi).contains(*g)).count();
                (c, fit as f64 / gaps.len() as f64)
            })
            .filter(|(c, r)| *r >= 0.75 && days.len() >= c.min_occurrences())
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.days().cmp(&a.0.days())));
        let Some((cadence, regularity)) = best else { continue };
        let cents: Vec<i64> = days.iter().map(|d| d.1).collect();
        // A steady series repeats its amount to within 2% (a price change aside); a bill may vary by
        // season; anything wilder is habit, not a series (the weekly grocery run).
        let recent: Vec<i64> = cents[cents.len().saturating_sub(6)..].to_vec();
        let steady = variation(&recent) <= 0.02 || {
            let last = *cents.last().expect("non-empty");
            recent.iter().rev().take(2).all(|c| (*c - last).abs() * 100 <= last * 2)
        };
        let limit = match cadence {
            Cadence::Weekly | Cadence::Biweekly => 0.25,
            _ => 0.4,
        };
        if !steady && variation(&cents) > limit {
            continue;
        }
        if cadence == Cadence::Yearly && !steady {
            continue;
        }
        let (last_date, last_cents, _) = *days.last().expect("non-empty");
        let first_date = days[0].0;
        let usual_day = median(days.iter().map(|d| i64::from(d.0.day())).collect()) as u32;
        let mut next_date = cadence.after(last_date, usual_day);
        while next_date < today && (today - next_date).num_days() <= cadence.days() {
            // A missed occurrence does not stop the series yet; the next one is still expected.
            next_date = cadence.after(next_date, usual_day);
        }
        let next_cents = if steady {
            last_cents
        } else {
            let tail = &cents[cents.len().saturating_sub(3)..];
            tail.iter().sum::<i64>() / tail.len() as i64
        };
        let price_change = steady.then(|| price_change(&days)).flatten();
        let overdue = (today - last_date).num_days();
        let status = if overdue > 2 * cadence.days() + cadence.days() / 2 {
            SeriesStatus::Stopped
        } else if (today - first_date).num_days() <= 3 * cadence.days() + cadence.days() / 2 {
            SeriesStatus::New
        } else {
            SeriesStatus::Active
        };
        let description = history[days.last().expect("non-empty").2].text.to_owned();
        out.push(Series {
            key,
            description,
            direction,
            cadence,
            occurrences: days.len(),
            members,
            first_date,
            last_date,
            last_cents,
            steady,
            next_date,
            next_cents,
            price_change,
            status,
            regularity,
        });
    }
    out.sort_by(|a, b| a.next_date.cmp(&b.next_date).then_with(|| a.key.cmp(&b.key)));
    out
}

/// The latest change of a steady amount: the last two occurrences agree on a new amount that differs
/// from the one before by at least 1%.
fn price_change(days: &[(NaiveDate, i64, usize)]) -> Option<PriceChange> {
    let n = days.len();
    let now = days[n - 1].1;
    // Walk back to the first occurrence at the current amount.
    let mut start = n - 1;
    while start > 0 && days[start - 1].1 == now {
        start -= 1;
    }
    if start == 0 {
        return None;
    }
    let before = days[start - 1].1;
    ((before - now).abs() * 100 >= before).then_some(PriceChange {
        from_cents: before,
        to_cents: now,
        since: days[start].0,
    })
}

/// The occurrences of `series` expected within `from..=to`, as (date, cents).
pub fn upcoming(series: &[Series], from: NaiveDate, to: NaiveDate) -> Vec<(usize, NaiveDate, i64)> {
    let mut out = Vec::new();
    for (i, s) in series.iter().enumerate() {
        if s.status == SeriesStatus::Stopped {
            continue;
        }
        let day = s.next_date.day();
        let mut d = s.next_date;
        while d <= to {
            if d >= from {
                out.push((i, d, s.next_cents));
            }
            d = s.cadence.after(d, day);
        }
    }
    out.sort_by_key(|(i, d, _)| (*d, *i));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_monthly_subscription_with_a_price_increase() {
        let texts: Vec<String> = (0..12).map(|i| format!("NETFLIX.COM {}", 1000 + i)).collect();
        let h: Vec<Occurrence<'_>> = (0..12)
            .map(|i| Occurrence {
                date: d("2026-01-17").checked_add_months(Months::new(i as u32)).unwrap(),
                cents: if i < 8 { 1549 } else { 1799 },
                direction: Direction::Out,
                text: &texts[i],
            })
            .collect();
        let found = detect(&h, d("2026-12-20"));
        assert_eq!(found.len(), 1);
        let s = &found[0];
        assert_eq!((s.cadence, s.occurrences, s.steady), (Cadence::Monthly, 12, true));
        assert_eq!(s.next_date, d("2027-01-17"));
        assert_eq!(s.next_cents, 1799);
        assert_eq!(s.price_change, Some(PriceChange { from_cents: 1549, to_cents: 1799, since: d("2026-09-17") }));
        assert_eq!(s.status, SeriesStatus::Active);
        // Months later without a charge, it has stopped.
        assert_eq!(detect(&h, d("2027-04-10"))[0].status, SeriesStatus::Stopped);
    }

    #[test]
    fn random_shopping_is_not_a_series() {
        let h: Vec<Occurrence<'_>> = [1, 2, 5, 6, 9, 15, 16, 22, 23, 30, 31, 44]
            .iter()
            .enumerate()
            .map(|(i, day)| Occurrence {
                date: d("2026-01-01") + Days::new(*day),
                cents: 1000 + (i as i64 * 1733) % 9000,
                direction: Direction::Out,
                text: "WHOLE FOODS MKT",
            })
            .collect();
        assert!(detect(&h, d("2026-03-01")).is_empty());
    }
}
