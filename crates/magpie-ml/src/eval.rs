//! Evaluation on a labelled CSV (`description,amount,date,type,category`, extra columns ignored except an
//! optional `mcc`): the protocol of the baselines in `shared/datasets/categorization` (classes with fewer
//! than 5 rows dropped, a stratified 80/20 split), then accuracy, F1, calibration and speed.

use std::path::Path;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;

use crate::features::{Direction, Example};
use crate::metrics::{self, Metrics};
use crate::model::{Categorizer, MlError, Selection, TrainConfig, Workspace};
use crate::rng::Rng;
use crate::split;

/// One labelled row.
#[derive(Debug, Clone)]
pub struct Record {
    /// 0-based number of the data row in the file.
    pub row: usize,
    /// Description.
    pub description: String,
    /// Amount in cents, if known.
    pub amount_cents: Option<i64>,
    /// Date, if known.
    pub date: Option<NaiveDate>,
    /// Direction, if known.
    pub direction: Option<Direction>,
    /// Merchant category code, if the file has one.
    pub extra: Option<String>,
    /// The category.
    pub category: String,
}

impl Record {
    /// The example the model sees.
    pub fn example(&self) -> Example<'_> {
        Example {
            text: &self.description,
            amount_cents: self.amount_cents,
            direction: self.direction,
            date: self.date,
            extra: self.extra.as_deref(),
        }
    }
}

/// Read a labelled CSV. The direction comes from `type` (`income`/`expense`), else from the sign of the
/// amount when the file has negative amounts at all.
pub fn load_csv(path: &Path) -> Result<Vec<Record>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let description = col("description").ok_or("the file has no 'description' column")?;
    let category = col("category").ok_or("the file has no 'category' column")?;
    let (amount, date, kind, mcc) = (col("amount"), col("date"), col("type"), col("mcc"));
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("line {}: {e}", i + 2))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(str::trim).filter(|s| !s.is_empty());
        let Some(cat) = get(Some(category)) else { continue };
        rows.push(Record {
            row: i,
            description: get(Some(description)).unwrap_or("").to_owned(),
            amount_cents: get(amount).and_then(parse_cents),
            date: get(date).and_then(|d| NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d").ok()),
            direction: match get(kind).map(str::to_ascii_lowercase).as_deref() {
                Some("income" | "credit" | "in") => Some(Direction::In),
                Some("expense" | "debit" | "out") => Some(Direction::Out),
                _ => None,
            },
            extra: get(mcc).map(str::to_owned),
            category: cat.to_owned(),
        });
    }
    if rows.iter().any(|r| r.amount_cents.is_some_and(|a| a < 0)) {
        for r in &mut rows {
            if r.direction.is_none() {
                r.direction = r.amount_cents.map(|a| if a < 0 { Direction::Out } else { Direction::In });
            }
        }
    }
    Ok(rows)
}

/// An amount such as `-12.3`, `1,234.56` or `7` as exact cents (more decimals are rounded half away from
/// zero); `None` if it is not a number.
pub fn parse_cents(s: &str) -> Option<i64> {
    let s = s.trim().replace(',', "");
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut f = frac.bytes().map(|b| i64::from(b - b'0'));
    let (d1, d2, d3) = (f.next().unwrap_or(0), f.next().unwrap_or(0), f.next().unwrap_or(0));
    let cents = whole.checked_mul(100)?.checked_add(d1 * 10 + d2 + i64::from(d3 >= 5))?;
    Some(if negative { -cents } else { cents })
}

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Share of each class held out for testing.
    pub test_fraction: f64,
    /// Split seed.
    pub seed: u64,
    /// Train on only this many rows drawn from the training part.
    pub train_rows: Option<usize>,
    /// Classes with fewer rows are dropped before the split.
    pub min_class_rows: usize,
    /// Ignore the `mcc` column.
    pub text_only: bool,
    /// Explicit (train, test) data-row numbers, e.g. the scikit-learn split written by
    /// `tools/compare.py`; replaces the class filter and the split.
    pub split: Option<(Vec<usize>, Vec<usize>)>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { test_fraction: 0.2, seed: 42, train_rows: None, min_class_rows: 5, text_only: false, split: None }
    }
}

/// Predictions grouped by confidence: how often the model was right in each bucket.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBucket {
    /// Lower bound of the bucket's confidence.
    pub from: f64,
    /// Upper bound.
    pub to: f64,
    /// Predictions in it.
    pub count: usize,
    /// Their mean confidence.
    pub mean_confidence: f64,
    /// Their accuracy.
    pub accuracy: f64,
}

/// What `magpie ml eval` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows evaluated (after dropping small classes).
    pub rows: usize,
    /// Classes evaluated.
    pub classes: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Accuracy on the test part.
    pub accuracy: f64,
    /// Macro-F1.
    pub macro_f1: f64,
    /// Weighted F1.
    pub weighted_f1: f64,
    /// Training time, feature extraction and calibration included.
    pub train_seconds: f64,
    /// Batch prediction throughput on the test part, feature extraction included.
    pub predict_rows_per_second: f64,
    /// Mean time of one prediction, one row at a time.
    pub single_prediction_micros: f64,
    /// Size of the model file.
    pub model_bytes: usize,
    /// The softmax temperature found by calibration.
    pub temperature: f32,
    /// Confidence buckets on the test part.
    pub calibration: Vec<CalibrationBucket>,
    /// All metrics, per class included.
    pub metrics: Metrics,
    /// The solver setting the trainer chose, with the cross-validated scores of each it tried.
    pub selection: Selection,
}

/// Run the protocol on `rows`.
pub fn evaluate(rows: &[Record], options: &EvalOptions, config: &TrainConfig) -> Result<EvalReport, MlError> {
    // Drop classes with too few rows.
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for r in rows {
        *counts.entry(r.category.as_str()).or_default() += 1;
    }
    let kept: Vec<&Record> = rows.iter().filter(|r| counts[r.category.as_str()] >= options.min_class_rows).collect();
    let mut labels: Vec<String> = kept.iter().map(|r| r.category.clone()).collect();
    labels.sort();
    labels.dedup();
    let y: Vec<usize> = kept.iter().map(|r| labels.binary_search(&r.category).unwrap_or(0)).collect();
    let (mut train, test) = match &options.split {
        Some((train_rows, test_rows)) => {
            let position: std::collections::HashMap<usize, usize> =
                kept.iter().enumerate().map(|(i, r)| (r.row, i)).collect();
            let find = |rows: &[usize]| -> Result<Vec<usize>, MlError> {
                rows.iter()
                    .map(|r| {
                        position.get(r).copied().ok_or_else(|| {
                            MlError::Training(format!("split row {r} is not a row of a class with enough rows"))
                        })
                    })
                    .collect()
            };
            (find(train_rows)?, find(test_rows)?)
        }
        None => split::train_test(&y, labels.len(), options.test_fraction, options.seed),
    };
    if let Some(n) = options.train_rows {
        let mut rng = Rng::new(options.seed.wrapping_add(n as u64));
        rng.shuffle(&mut train);
        train.truncate(n);
    }
    fn example(r: &Record, text_only: bool) -> Example<'_> {
        let mut e = r.example();
        if text_only {
            e.extra = None;
        }
        e
    }
    let train_examples: Vec<Example<'_>> = train.iter().map(|&i| example(kept[i], options.text_only)).collect();
    let train_targets: Vec<&str> = train.iter().map(|&i| kept[i].category.as_str()).collect();
    let started = Instant::now();
    let (model, selection) = Categorizer::train_with_selection(&train_examples, &train_targets, config)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let test_examples: Vec<Example<'_>> = test.iter().map(|&i| example(kept[i], options.text_only)).collect();
    let mut ws = Workspace::default();
    let mut predicted = Vec::with_capacity(test.len());
    let mut confidence = Vec::with_capacity(test.len());
    for ex in &test_examples {
        let s = model.predict(ex, &mut ws);
        predicted.push(labels.binary_search(&model.labels[s.class]).unwrap_or(usize::MAX));
        confidence.push(f64::from(s.probability));
    }
    let truth: Vec<usize> = test.iter().map(|&i| y[i]).collect();
    // A class missing from a small training draw cannot be predicted; count it as wrong.
    let predicted: Vec<usize> =
        predicted.iter().zip(&truth).map(|(&p, &t)| if p == usize::MAX { (t + 1) % labels.len() } else { p }).collect();
    let metrics = metrics::evaluate(&truth, &predicted, &labels);

    // Throughput: batch prediction on two threads, each going over its half of the test rows again and
    // again for at least half a second (threads started once: a small test set must not measure thread
    // start-up).
    let started = Instant::now();
    let predicted_rows: usize = std::thread::scope(|s| {
        let handles: Vec<_> = test_examples
            .chunks(test_examples.len().div_ceil(2).max(1))
            .map(|part| {
                let model = &model;
                s.spawn(move || {
                    let mut ws = Workspace::default();
                    let mut n = 0usize;
                    while started.elapsed().as_secs_f64() < 0.5 {
                        for ex in part {
                            std::hint::black_box(model.predict(ex, &mut ws));
                        }
                        n += part.len();
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let predict_rows_per_second = predicted_rows as f64 / started.elapsed().as_secs_f64();
    // One at a time, cold workspace each time as a request would have.
    let started = Instant::now();
    let single_runs = test_examples.len().clamp(1, 2000);
    for ex in test_examples.iter().cycle().take(single_runs) {
        let mut ws = Workspace::default();
        std::hint::black_box(model.predict(ex, &mut ws));
    }
    let single_prediction_micros = started.elapsed().as_secs_f64() * 1e6 / single_runs as f64;

    let calibration = (0..10)
        .map(|b| {
            let (from, to) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
            let inside: Vec<usize> =
                (0..confidence.len()).filter(|&i| confidence[i] >= from && (confidence[i] < to || b == 9)).collect();
            let count = inside.len();
            let mean_confidence = inside.iter().map(|&i| confidence[i]).sum::<f64>() / count.max(1) as f64;
            let accuracy = inside.iter().filter(|&&i| predicted[i] == truth[i]).count() as f64 / count.max(1) as f64;
            CalibrationBucket { from, to, count, mean_confidence, accuracy }
        })
        .filter(|b| b.count > 0)
        .collect();
    Ok(EvalReport {
        rows: kept.len(),
        classes: labels.len(),
        train_rows: train.len(),
        test_rows: test.len(),
        accuracy: metrics.accuracy,
        macro_f1: metrics.macro_f1,
        weighted_f1: metrics.weighted_f1,
        train_seconds,
        predict_rows_per_second,
        single_prediction_micros,
        model_bytes: model.to_bytes().len(),
        temperature: model.temperature,
        calibration,
        metrics,
        selection,
    })
}
