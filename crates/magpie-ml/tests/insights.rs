//! Forecasts, recurring payments and anomalies on generated histories whose truth is known
//! (`magpie-demo` names the recurring series it plants).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, Days, NaiveDate};
use magpie_demo::{DemoSpec, DemoTransaction, generate};
use magpie_domain::TransactionType;
use magpie_ml::Direction;
use magpie_ml::anomaly::{self, Item, Kind, Thresholds};
use magpie_ml::forecast;
use magpie_ml::recurring::{self, Cadence, Occurrence, SeriesStatus};

fn end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

fn history(n: usize, seed: u64) -> Vec<DemoTransaction> {
    generate(DemoSpec { transactions: n, end: end(), months: 36, seed })
}

fn direction(t: &DemoTransaction) -> Direction {
    if t.kind == TransactionType::Income { Direction::In } else { Direction::Out }
}

#[test]
fn recurring_series_are_found_with_precision_and_recall_of_at_least_0_9() {
    for (n, seed) in [(3_000, 1), (12_000, 2), (40_000, 3)] {
        let h = history(n, seed);
        let occurrences: Vec<Occurrence<'_>> = h
            .iter()
            .map(|t| Occurrence {
                date: t.date,
                cents: t.amount.cents(),
                direction: direction(t),
                text: &t.description,
            })
            .collect();
        let found = recurring::detect(&occurrences, end() + Days::new(1));
        let truth: HashSet<&str> = h.iter().filter_map(|t| t.series).collect();
        let mut correct = 0;
        let mut recalled = HashSet::new();
        for s in &found {
            let mut votes: HashMap<Option<&str>, usize> = HashMap::new();
            for &i in &s.members {
                *votes.entry(h[i].series).or_default() += 1;
            }
            let (label, count) = votes.into_iter().max_by_key(|(_, c)| *c).unwrap();
            if let Some(label) = label
                && count * 10 >= s.members.len() * 9
            {
                correct += 1;
                recalled.insert(label);
            } else {
                eprintln!("not a planted series: {} ({:?}, {} occurrences)", s.description, s.cadence, s.occurrences);
            }
        }
        let precision = correct as f64 / found.len().max(1) as f64;
        let recall = recalled.len() as f64 / truth.len() as f64;
        eprintln!("{n} transactions: {} series found, precision {precision:.3}, recall {recall:.3}", found.len());
        assert!(
            precision >= 0.9 && recall >= 0.9,
            "precision {precision}, recall {recall}; missed {:?}",
            truth.difference(&recalled).collect::<Vec<_>>()
        );

        let by_key: HashMap<&str, &recurring::Series> = found.iter().map(|s| (s.key.as_str(), s)).collect();
        // The salary is paid on the last business day: 28th to 31st, still monthly.
        let salary = by_key.values().find(|s| s.description.contains("PAYROLL")).expect("the salary");
        assert_eq!((salary.cadence, salary.direction), (Cadence::Monthly, Direction::In));
        assert!(!salary.steady || salary.price_change.is_some(), "raises every year");
        // Netflix raised its price.
        let netflix = by_key.values().find(|s| s.description.contains("NETFLIX")).expect("netflix");
        let change = netflix.price_change.expect("the price increase");
        assert_eq!((change.from_cents, change.to_cents), (1549, 1799));
        assert_eq!(netflix.next_cents, 1799);
        assert_eq!(netflix.next_date, NaiveDate::from_ymd_opt(2026, 12, 17).unwrap());
        assert_eq!(netflix.status, SeriesStatus::Active);
        // The yearly Prime membership and the quarterly dividend.
        assert!(by_key.values().any(|s| s.cadence == Cadence::Yearly && s.description.contains("PRIME")));
        assert!(by_key.values().any(|s| s.cadence == Cadence::Quarterly && s.description.contains("DIVIDEND")));
    }
}

#[test]
fn a_series_that_stops_is_reported_stopped_and_a_new_one_new() {
    let mut h = history(3_000, 4);
    // Spotify cancelled six months before the end; a new gym from three months before.
    h.retain(|t| t.series != Some("spotify") || t.date < end() - Days::new(180));
    for k in 0..3u64 {
        let date = end() - Days::new(80) + Days::new(30 * k);
        h.push(DemoTransaction {
            date,
            amount: "39.00".parse().unwrap(),
            kind: TransactionType::Expense,
            description: "CRUNCH FITNESS MEMBERSHIP".into(),
            category: "Fitness",
            series: Some("crunch"),
        });
    }
    let occ: Vec<Occurrence<'_>> = h
        .iter()
        .map(|t| Occurrence { date: t.date, cents: t.amount.cents(), direction: direction(t), text: &t.description })
        .collect();
    let found = recurring::detect(&occ, end());
    let status = |word: &str| found.iter().find(|s| s.description.contains(word)).map(|s| s.status);
    assert_eq!(status("SPOTIFY"), Some(SeriesStatus::Stopped));
    assert_eq!(status("CRUNCH"), Some(SeriesStatus::New));
    // Upcoming payments: nothing from the stopped series, the next rent on the first.
    let upcoming = recurring::upcoming(&found, end(), end() + Days::new(30));
    assert!(upcoming.iter().all(|(i, _, _)| found[*i].status != SeriesStatus::Stopped));
    assert!(upcoming.iter().any(|(i, d, _)| found[*i].description.contains("RENT") && d.day() == 1), "{upcoming:?}");
}

#[test]
fn planted_anomalies_are_found_with_an_explanation() {
    let mut h = history(8_000, 5);
    let day = end() - Days::new(10);
    let plant = |description: &str, amount: &str, category: &'static str| DemoTransaction {
        date: day,
        amount: amount.parse().unwrap(),
        kind: TransactionType::Expense,
        description: description.into(),
        category,
        series: None,
    };
    h.push(plant("OLIVE GARDEN 0442", "1450.00", "Dining"));
    h.push(plant("BEST BUY #0042", "249.99", "Shopping"));
    h.push(DemoTransaction { date: day + Days::new(1), ..plant("BEST BUY #0042", "249.99", "Shopping") });
    let items: Vec<Item<'_>> = h
        .iter()
        .map(|t| Item {
            date: t.date,
            cents: t.amount.cents(),
            direction: direction(t),
            category: t.category,
            text: &t.description,
        })
        .collect();
    let found = anomaly::detect(&items, end() - Days::new(30), end(), Thresholds::default());
    let large = found
        .iter()
        .find(|a| matches!(a.kind, Kind::LargeForCategory | Kind::LargeForMerchant) && a.cents == 145000)
        .unwrap_or_else(|| panic!("the large dinner in {found:#?}"));
    assert!(large.explanation.contains("1450.00") && large.explanation.contains("times"), "{}", large.explanation);
    assert!(found.iter().any(|a| a.kind == Kind::PossibleDoubleCharge && a.cents == 24999), "{found:#?}");
    // Ordinary spending stays quiet: only a handful of flags in a month of about 220 transactions.
    assert!(found.len() <= 6, "{} anomalies: {found:#?}", found.len());
}

/// Monthly expense totals per category over complete months (the history starts on the last day of
/// a month and ends inside one: both are left out), as the server builds them.
fn monthly(h: &[DemoTransaction]) -> Vec<(String, Vec<f64>)> {
    let mut months: Vec<(i32, u32)> = Vec::new();
    let mut totals: BTreeMap<&str, BTreeMap<(i32, u32), i64>> = BTreeMap::new();
    let first = h.iter().map(|t| t.date).min().unwrap();
    for t in h.iter().filter(|t| t.kind == TransactionType::Expense) {
        let ym = (t.date.year(), t.date.month());
        if ym == (end().year(), end().month()) || (first.day() > 1 && ym == (first.year(), first.month())) {
            continue;
        }
        if !months.contains(&ym) {
            months.push(ym);
        }
        *totals.entry(t.category).or_default().entry(ym).or_default() += t.amount.cents();
    }
    months.sort();
    totals
        .into_iter()
        .map(|(c, m)| (c.to_owned(), months.iter().map(|ym| *m.get(ym).unwrap_or(&0) as f64 / 100.0).collect()))
        .collect()
}

#[test]
fn the_chosen_forecaster_beats_the_better_baseline_on_at_least_70_percent_of_the_series() {
    for seed in [42, 7, 9] {
        let h = history(100_000, seed);
        let series = monthly(&h);
        assert!(series.len() >= 20);
        let report = forecast::backtest_report(&series);
        let share = report.iter().filter(|r| r.beats_baselines).count() as f64 / report.len() as f64;
        for r in &report {
            eprintln!(
                "{:<20} {:?}: {:.3} (seasonal naive {:?}, mean {:.3})",
                r.name,
                r.chosen,
                r.chosen_smape,
                r.seasonal_naive_smape.map(|s| (s * 1000.0).round() / 1000.0),
                r.mean_smape
            );
        }
        // Out of sample: chosen on earlier months only, judged on the six months after each origin.
        let nested = forecast::holdout(&series, 6, 3);
        let nested_share = nested.iter().filter(|r| r.beats_baselines).count() as f64 / nested.len() as f64;
        eprintln!(
            "seed {seed}: backtest {share:.2}, nested out-of-sample {nested_share:.2} of {} series",
            report.len()
        );
        assert!(share >= 0.7, "seed {seed}: {share}");
        // Most demo categories are noise around a level, where the mean is as good as a model gets and
        // the better baseline in hindsight wins by chance; this guards against a selection gone wrong.
        assert!(nested_share >= 0.4, "seed {seed}: nested {nested_share}");
    }
}
