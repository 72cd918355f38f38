//! Forecasts of a user's money: monthly spending per category and in total, income, and the cash flow
//! they make, each month with 80% and 95% intervals. The series are the complete months of the ledger
//! (up to three years); each series gets its own model (`magpie_ml::forecast::select`). A training
//! job stores the chosen models as the user's PREDICTION model (the registry row and a JSON artifact in
//! the model store); requests use it while it is current and otherwise fit afresh.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};
use magpie_db::models::{self, NewModel};
use magpie_domain::{Category, ModelId, ModelType, Money, Timestamp, TransactionType, UserId};
use magpie_ml::forecast::{self, Fitted, Method, Point};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;

/// Months of history the series use.
const HISTORY_MONTHS: u32 = 36;
/// Longest forecast.
pub const MAX_MONTHS: usize = 6;
/// The name of the total-expense and total-income series.
pub const TOTAL_EXPENSE: &str = "(all expenses)";
/// See [`TOTAL_EXPENSE`].
pub const TOTAL_INCOME: &str = "(all income)";

/// `YYYY-MM` of a date.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn first_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("the first of a month exists")
}

/// A series: its name, whether it is income, and its complete months oldest first.
#[derive(Debug, Clone)]
pub struct Series {
    /// Category, or a total.
    pub name: String,
    /// Income rather than expense.
    pub income: bool,
    /// (month, total) of each complete month from the first month with data.
    pub months: Vec<(String, Money)>,
}

/// The user's series as of `today`: each category's expenses, total expenses and total income, over
/// the complete months before today's (up to three years), from each series' first month with money.
pub async fn series(state: &AppState, user: UserId, today: NaiveDate) -> anyhow::Result<(Vec<Series>, String)> {
    let this_month = first_of(today);
    let from = this_month.checked_sub_months(Months::new(HISTORY_MONTHS)).unwrap_or(this_month);
    let until = this_month.pred_opt().unwrap_or(this_month);
    let rows = {
        let mut conn = state.db.conn().await?;
        magpie_db::transactions::monthly_totals(conn.c(), user, from, until).await?
    };
    let mut months: Vec<String> = Vec::new();
    let mut d = from;
    while d < this_month {
        months.push(month_of(d));
        d = d.checked_add_months(Months::new(1)).unwrap_or(this_month);
    }
    let mut by_name: BTreeMap<(bool, String), BTreeMap<String, Money>> = BTreeMap::new();
    let add = |map: &mut BTreeMap<String, Money>, month: &str, v: Money| {
        let e = map.entry(month.to_owned()).or_insert(Money::ZERO);
        *e = e.checked_add(v).unwrap_or(*e);
    };
    for r in &rows {
        let income = r.kind == TransactionType::Income;
        let total = if income { TOTAL_INCOME } else { TOTAL_EXPENSE };
        add(by_name.entry((income, total.to_owned())).or_default(), &r.month, r.total);
        if !income {
            add(by_name.entry((false, r.category.as_str().to_owned())).or_default(), &r.month, r.total);
        }
    }
    let series = by_name
        .into_iter()
        .filter_map(|((income, name), values)| {
            let first = months.iter().position(|m| values.contains_key(m))?;
            let months =
                months[first..].iter().map(|m| (m.clone(), values.get(m).copied().unwrap_or(Money::ZERO))).collect();
            Some(Series { name, income, months })
        })
        .collect();
    Ok((series, month_of(until)))
}

/// [`series`], from the cache while the ledger is unchanged.
pub async fn series_cached(
    state: &AppState,
    user: UserId,
    today: NaiveDate,
) -> anyhow::Result<Arc<(Vec<Series>, String)>> {
    let stamp = crate::ledger_cache::stamp(state, user, today).await?;
    if let Some(s) = state.series_cache.get(user, &stamp) {
        return Ok(s);
    }
    let computed = Arc::new(series(state, user, today).await?);
    state.series_cache.put(user, stamp, computed.clone());
    Ok(computed)
}

fn to_f64(m: Money) -> f64 {
    m.as_decimal().to_string().parse().unwrap_or(0.0)
}

fn to_money(v: f64) -> Money {
    let d = Decimal::from_f64_retain(v.max(0.0)).unwrap_or_default().round_dp(2);
    Money::from_decimal(d).unwrap_or(Money::MAX_COLUMN).min(Money::MAX_COLUMN)
}

/// A series' chosen model, as the PREDICTION artifact keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSeries {
    /// Category or total.
    pub name: String,
    /// Income.
    pub income: bool,
    /// The model, fitted on the months up to `data_until`.
    pub fitted: Fitted,
    /// Backtest sMAPE of each candidate.
    pub scores: Vec<(Method, f64)>,
    /// Months of history.
    pub history_months: usize,
}

/// The PREDICTION model's artifact: every series' model as of a month.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// Format version.
    pub version: u32,
    /// The last complete month the models saw (`YYYY-MM`).
    pub data_until: String,
    /// The models.
    pub series: Vec<StoredSeries>,
    /// A fingerprint of the monthly totals the models were fitted on ([`data_hash`]): when the history
    /// changes (an import, a sync, a correction of a past month), the model is no longer current even
    /// within the same month. Absent in artifacts from before it was kept.
    #[serde(default)]
    pub data_hash: Option<u64>,
}

/// FNV-1a over every series' name and monthly totals (stable across processes and versions, unlike
/// the standard library's hasher).
pub fn data_hash(series: &[Series]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for s in series {
        eat(s.name.as_bytes());
        eat(&[u8::from(s.income), 0xff]);
        for (m, v) in &s.months {
            eat(m.as_bytes());
            eat(&v.cents().to_le_bytes());
        }
    }
    h
}

/// Fit every series (on a blocking thread: a user with 30 categories takes milliseconds, but many
/// users at once must not stall the runtime).
pub async fn fit_all(series: Vec<Series>, data_until: String) -> anyhow::Result<Artifact> {
    let hash = data_hash(&series);
    tokio::task::spawn_blocking(move || {
        let stored = series
            .into_iter()
            .filter_map(|s| {
                let y: Vec<f64> = s.months.iter().map(|(_, v)| to_f64(*v)).collect();
                let sel = forecast::select(&y)?;
                Some(StoredSeries {
                    name: s.name,
                    income: s.income,
                    fitted: sel.fitted,
                    scores: sel.scores,
                    history_months: y.len(),
                })
            })
            .collect();
        Artifact { version: 1, data_until, series: stored, data_hash: Some(hash) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("forecasting stopped: {e}"))
}

/// One forecast month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthForecast {
    /// `YYYY-MM`.
    pub month: String,
    /// Expected amount.
    pub expected: Money,
    /// 80% interval, low.
    pub low_80: Money,
    /// 80% interval, high.
    pub high_80: Money,
    /// 95% interval, low.
    pub low_95: Money,
    /// 95% interval, high.
    pub high_95: Money,
}

fn month_forecast(month: String, p: &Point) -> MonthForecast {
    MonthForecast {
        month,
        expected: to_money(p.mean),
        low_80: to_money(p.lo80),
        high_80: to_money(p.hi80),
        low_95: to_money(p.lo95),
        high_95: to_money(p.hi95),
    }
}

/// A series' forecast.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesForecast {
    /// Category, or `(all expenses)` / `(all income)`.
    pub name: String,
    /// Income rather than spending.
    pub income: bool,
    /// The model chosen for it by backtest: mean, seasonal_naive, ses, damped_trend, holt_winters,
    /// seasonal_mean or combination.
    #[schema(value_type = String)]
    pub method: Method,
    /// Its backtest sMAPE (0 is perfect, 2 the worst).
    pub backtest_smape: Option<f64>,
    /// Months of history it was fitted on.
    pub history_months: usize,
    /// The forecast months, starting with the current one.
    pub months: Vec<MonthForecast>,
}

/// A cash-flow month of a forecast (named apart from the report's `CashflowMonth`, which has a running
/// total instead of intervals).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ForecastCashflowMonth)]
pub struct CashflowMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Expected income.
    pub income: Money,
    /// Expected spending.
    pub expense: Money,
    /// Income minus spending (negative when spending is expected to exceed income).
    pub net: Money,
    /// 80% interval of the net, low.
    pub net_low_80: Money,
    /// 80% interval of the net, high.
    pub net_high_80: Money,
    /// 95% interval of the net, low.
    pub net_low_95: Money,
    /// 95% interval of the net, high.
    pub net_high_95: Money,
}

/// Every forecast of a user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Forecasts {
    /// The last complete month the models saw.
    pub data_until: String,
    /// The PREDICTION model the forecasts come from (none: fitted for this request).
    pub model_id: Option<ModelId>,
    /// Spending per category.
    pub categories: Vec<SeriesForecast>,
    /// All spending.
    pub total_expense: Option<SeriesForecast>,
    /// All income.
    pub total_income: Option<SeriesForecast>,
    /// Income, spending and net per month.
    pub cashflow: Vec<CashflowMonth>,
}

fn signed(v: f64) -> Money {
    let d = Decimal::from_f64_retain(v).unwrap_or_default().round_dp(2);
    Money::from_decimal(d).unwrap_or(if v < 0.0 { Money::MAX_COLUMN.negate() } else { Money::MAX_COLUMN })
}

/// Forecast `months` months (1..=6) after `artifact.data_until`.
pub fn forecasts(artifact: &Artifact, months: usize, model_id: Option<ModelId>) -> Forecasts {
    let start = NaiveDate::parse_from_str(&format!("{}-01", artifact.data_until), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_months(Months::new(1)))
        .unwrap_or_else(|| first_of(chrono::Utc::now().date_naive()));
    let labels: Vec<String> =
        (0..months).map(|i| month_of(start.checked_add_months(Months::new(i as u32)).unwrap_or(start))).collect();
    let mut raw: BTreeMap<(bool, String), Vec<Point>> = BTreeMap::new();
    let mut categories = Vec::new();
    let (mut total_expense, mut total_income) = (None, None);
    for s in &artifact.series {
        let points = s.fitted.forecast(months);
        let sf = SeriesForecast {
            name: s.name.clone(),
            income: s.income,
            method: s.fitted.method,
            backtest_smape: s.scores.iter().find(|(m, _)| *m == s.fitted.method).map(|(_, v)| (v * 1e4).round() / 1e4),
            history_months: s.history_months,
            months: labels.iter().cloned().zip(&points).map(|(m, p)| month_forecast(m, p)).collect(),
        };
        raw.insert((s.income, s.name.clone()), points);
        match (s.income, s.name.as_str()) {
            (false, TOTAL_EXPENSE) => total_expense = Some(sf),
            (true, TOTAL_INCOME) => total_income = Some(sf),
            _ => categories.push(sf),
        }
    }
    let zero = Point { mean: 0.0, lo80: 0.0, hi80: 0.0, lo95: 0.0, hi95: 0.0 };
    let expense = raw.get(&(false, TOTAL_EXPENSE.to_owned()));
    let income = raw.get(&(true, TOTAL_INCOME.to_owned()));
    let cashflow = labels
        .iter()
        .enumerate()
        .map(|(i, month)| {
            let e = expense.map_or(zero, |v| v[i]);
            let inc = income.map_or(zero, |v| v[i]);
            // Income and spending as independent normals: the spread of the net adds in quadrature.
            let sd80 = ((e.hi80 - e.mean).powi(2) + (inc.hi80 - inc.mean).powi(2)).sqrt();
            let sd95 = ((e.hi95 - e.mean).powi(2) + (inc.hi95 - inc.mean).powi(2)).sqrt();
            let net = inc.mean - e.mean;
            CashflowMonth {
                month: month.clone(),
                income: to_money(inc.mean),
                expense: to_money(e.mean),
                net: signed(net),
                net_low_80: signed(net - sd80),
                net_high_80: signed(net + sd80),
                net_low_95: signed(net - sd95),
                net_high_95: signed(net + sd95),
            }
        })
        .collect();
    categories.sort_by(|a, b| b.months.first().map(|m| m.expected).cmp(&a.months.first().map(|m| m.expected)));
    Forecasts { data_until: artifact.data_until.clone(), model_id, categories, total_expense, total_income, cashflow }
}

/// The user's active PREDICTION artifact, if it is as of `data_until` and (when `hash` is given) was
/// fitted on the same history.
pub async fn current_artifact(
    state: &AppState,
    user: UserId,
    data_until: &str,
    hash: Option<u64>,
) -> anyhow::Result<Option<(ModelId, Arc<Artifact>)>> {
    let model = {
        let mut conn = state.db.conn().await?;
        match models::active_id(conn.c(), Some(user), ModelType::Prediction).await? {
            Some(id) => models::get_any(conn.c(), id).await?,
            None => None,
        }
    };
    let Some(model) = model else { return Ok(None) };
    let artifact = match state.forecast_cache.get(model.id) {
        Some(a) => a,
        None => {
            let bytes = state.ml.store.get(&model.model_path).await?;
            let a: Artifact = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("forecast model {} is unreadable: {e}", model.id))?;
            let a = Arc::new(a);
            state.forecast_cache.put(model.id, a.clone());
            a
        }
    };
    let same_data = match (hash, artifact.data_hash) {
        (Some(now), Some(then)) => now == then,
        _ => true,
    };
    Ok((artifact.data_until == data_until && same_data).then_some((model.id, artifact)))
}

/// The user's forecasts as of `today`: from their PREDICTION model when it is current, else fitted
/// now (and a training queued so that the next request finds one).
pub async fn for_user(state: &AppState, user: UserId, today: NaiveDate, months: usize) -> anyhow::Result<Forecasts> {
    let cached = series_cached(state, user, today).await?;
    let (series, data_until) = (&cached.0, &cached.1);
    if let Some((id, artifact)) = current_artifact(state, user, data_until, Some(data_hash(series))).await? {
        return Ok(forecasts(&artifact, months, Some(id)));
    }
    let artifact = fit_all(series.clone(), data_until.clone()).await?;
    if let Err(e) = crate::jobs::enqueue_forecast(state, user).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot queue a forecast training");
    }
    Ok(forecasts(&artifact, months, None))
}

/// What a PREDICTION training did.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastOutcome {
    /// The registered model.
    pub model_id: ModelId,
    /// Its version.
    pub version: String,
    /// Series modelled.
    pub series: usize,
    /// 1 - the spend-weighted nested backtest sMAPE (clipped to 0..1).
    pub accuracy: Option<f64>,
}

/// Train the user's PREDICTION model: choose every series' model, measure it out of sample (each
/// series chosen on earlier months only and judged on the six after), store the artifact and register
/// it as the active PREDICTION model, as `id` (a job passes an id derived from its own: run again after
/// its worker died between registering and recording the job as done, it finds the model and stops).
pub async fn train(state: &AppState, user: UserId, today: NaiveDate, id: ModelId) -> anyhow::Result<ForecastOutcome> {
    {
        let mut conn = state.db.conn().await?;
        if let Some(done) = models::get_any(conn.c(), id).await? {
            tracing::info!(model.id = %id, "this training already registered its model");
            return Ok(ForecastOutcome { model_id: id, version: done.version, series: 0, accuracy: done.accuracy });
        }
    }
    let (series, data_until) = series(state, user, today).await?;
    let for_accuracy: Vec<(String, Vec<f64>, f64)> = series
        .iter()
        .filter(|s| !s.income && s.name != TOTAL_EXPENSE)
        .map(|s| {
            let y: Vec<f64> = s.months.iter().map(|(_, v)| to_f64(*v)).collect();
            let weight = y.iter().sum::<f64>();
            (s.name.clone(), y, weight)
        })
        .collect();
    let artifact = fit_all(series, data_until.clone()).await?;
    let accuracy = tokio::task::spawn_blocking(move || {
        let named: Vec<(String, Vec<f64>)> = for_accuracy.iter().map(|(n, y, _)| (n.clone(), y.clone())).collect();
        let results = forecast::holdout(&named, 6, 3);
        let (mut sum, mut weight) = (0.0, 0.0);
        for r in &results {
            let w = for_accuracy.iter().find(|(n, ..)| *n == r.name).map_or(0.0, |(.., w)| *w);
            sum += w * r.chosen_smape;
            weight += w;
        }
        (weight > 0.0).then(|| (1.0 - sum / weight).clamp(0.0, 1.0))
    })
    .await
    .map_err(|e| anyhow::anyhow!("backtest stopped: {e}"))?;
    let path = format!("prediction/{user}/{id}.json");
    state.ml.store.put(&path, serde_json::to_vec(&artifact)?).await?;
    let mut tx = state.db.begin().await?;
    let version = models::next_version(tx.c(), Some(user), ModelType::Prediction).await?;
    let new = NewModel {
        model_type: ModelType::Prediction,
        user_id: Some(user),
        version: version.clone(),
        accuracy,
        // Precision and recall belong to classifiers; a forecast has neither.
        precision: None,
        recall: None,
        trained_at: Timestamp::now(),
        model_path: path,
        is_active: false,
    };
    models::create_with_id(tx.c(), id, &new).await?;
    models::activate(tx.c(), Some(user), id).await?;
    tx.commit().await?;
    let series = artifact.series.len();
    state.forecast_cache.put(id, Arc::new(artifact));
    tracing::info!(model.id = %id, version, series, ?accuracy, data_until, "trained a forecast model");
    Ok(ForecastOutcome { model_id: id, version, series, accuracy })
}

/// The expected spending of each category over `from..=to` (within one month), from the user's current
/// PREDICTION model: the month's forecast times the share of the month's days. `None` without a
/// current model.
pub async fn expected_spending(
    state: &AppState,
    user: UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Option<BTreeMap<Category, Money>>> {
    if from > to || first_of(from) != first_of(to) {
        return Ok(None);
    }
    let this_month = first_of(chrono::Utc::now().date_naive());
    let data_until = month_of(this_month.pred_opt().unwrap_or(this_month));
    // No history check here: budget projections are read often, and a model from earlier this month is
    // a fair expectation for the rest of it.
    let Some((_, artifact)) = current_artifact(state, user, &data_until, None).await? else { return Ok(None) };
    let month = first_of(from);
    let start = NaiveDate::parse_from_str(&format!("{}-01", artifact.data_until), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_months(Months::new(1)));
    let Some(start) = start else { return Ok(None) };
    if month < start {
        return Ok(None);
    }
    let ahead = ((month.year() - start.year()) * 12 + month.month() as i32 - start.month() as i32) as usize;
    if ahead >= MAX_MONTHS {
        return Ok(None);
    }
    let days_in_month = (month.checked_add_months(Months::new(1)).unwrap_or(month) - month).num_days().max(1);
    let share = Decimal::from((to - from).num_days() + 1) / Decimal::from(days_in_month);
    let mut out = BTreeMap::new();
    for s in artifact.series.iter().filter(|s| !s.income && s.name != TOTAL_EXPENSE) {
        let Ok(category) = Category::parse(&s.name) else { continue };
        let p = s.fitted.forecast(ahead + 1)[ahead];
        let expected = to_money(p.mean).as_decimal() * share;
        out.insert(category, Money::from_decimal(expected.round_dp(2)).unwrap_or(Money::ZERO));
    }
    Ok(Some(out))
}

/// Forecast artifacts in memory, by model id (small: a few kilobytes each).
#[derive(Default)]
pub struct ArtifactCache(std::sync::Mutex<BTreeMap<ModelId, Arc<Artifact>>>);

impl ArtifactCache {
    fn get(&self, id: ModelId) -> Option<Arc<Artifact>> {
        self.0.lock().expect("never poisoned").get(&id).cloned()
    }
    fn put(&self, id: ModelId, a: Arc<Artifact>) {
        let mut m = self.0.lock().expect("never poisoned");
        if m.len() >= 1024 {
            m.clear();
        }
        m.insert(id, a);
    }
}
