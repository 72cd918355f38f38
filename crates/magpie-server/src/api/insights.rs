//! `/api/v1/forecasts` and `/api/v1/insights`: what is coming (spending and cash-flow forecasts with
//! intervals, recurring payments and income with their next dates, the payments of the next days) and
//! what looks wrong (unusually large transactions, possible double charges, a category far above its
//! usual month).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Days, NaiveDate};
use magpie_db::transactions::Observed;
use magpie_domain::{Money, TransactionId, TransactionType, UserId};
use magpie_ml::Direction;
use magpie_ml::anomaly::{self, Thresholds};
use magpie_ml::recurring::{self, Cadence, SeriesStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::forecasting::{self, Forecasts, MAX_MONTHS, SeriesForecast};
use crate::http::extract::ApiQuery;
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_forecasts))
        .routes(routes!(get_category_forecast))
        .routes(routes!(train_forecasts))
        .routes(routes!(list_recurring))
        .routes(routes!(list_upcoming))
        .routes(routes!(list_anomalies))
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// How far ahead.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthsQuery {
    /// Months to forecast, 1 to 6 (default 3), starting with the current month.
    pub months: Option<usize>,
}

fn months(q: &MonthsQuery) -> Result<usize> {
    let m = q.months.unwrap_or(3);
    if !(1..=MAX_MONTHS).contains(&m) {
        let mut v = Validator::new();
        v.error("query.months", format!("months must be between 1 and {MAX_MONTHS}"));
        v.finish()?;
    }
    Ok(m)
}

/// Spending per category and in total, income, and cash flow (income, spending, net) for the next
/// months, each with 80% and 95% prediction intervals. Each series has its own model, chosen by
/// backtest among mean, seasonal naive, exponential smoothing (simple, damped trend, Holt-Winters),
/// a seasonal mean and a combination.
#[utoipa::path(
    get, path = "/forecasts", tag = "insights", security(("bearer" = [])), params(MonthsQuery),
    responses(
        (status = 200, body = Forecasts),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_forecasts(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<MonthsQuery>,
) -> Result<Json<Forecasts>> {
    let n = months(&q)?;
    Ok(Json(forecasting::for_user(&state, user.id, today(), n).await?))
}

/// One category's forecast.
#[utoipa::path(
    get, path = "/forecasts/categories/{category}", tag = "insights", security(("bearer" = [])),
    params(("category" = String, Path, description = "Category"), MonthsQuery),
    responses(
        (status = 200, body = SeriesForecast),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No spending in this category", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_category_forecast(
    State(state): State<AppState>,
    user: AuthUser,
    Path(category): Path<String>,
    ApiQuery(q): ApiQuery<MonthsQuery>,
) -> Result<Json<SeriesForecast>> {
    let n = months(&q)?;
    let all = forecasting::for_user(&state, user.id, today(), n).await?;
    all.categories.into_iter().find(|s| s.name == category).map(Json).ok_or(AppError::NotFound)
}

/// The queued training.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedJob {
    /// Job id; poll `GET /jobs/{id}`.
    pub job_id: magpie_domain::JobId,
}

/// Train your forecast model now, in the background (it is also trained on the first forecast
/// request of a month). The model is registered as your PREDICTION model.
#[utoipa::path(
    post, path = "/forecasts/train", tag = "insights", security(("bearer" = [])),
    responses((status = 202, body = QueuedJob), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn train_forecasts(State(state): State<AppState>, user: AuthUser) -> Result<(StatusCode, Json<QueuedJob>)> {
    let (job_id, _) = crate::jobs::enqueue_forecast(&state, user.id).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedJob { job_id })))
}

/// A recurring payment or income.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecurringResponse {
    /// The latest description.
    pub description: String,
    /// The merchant key its occurrences share.
    pub merchant: String,
    /// The category most of its transactions have.
    pub category: String,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// weekly, biweekly, monthly, quarterly or yearly.
    #[schema(value_type = String)]
    pub cadence: Cadence,
    /// Occurrences found.
    pub occurrences: usize,
    /// First occurrence.
    #[schema(value_type = String, format = Date)]
    pub first_date: NaiveDate,
    /// Latest occurrence.
    #[schema(value_type = String, format = Date)]
    pub last_date: NaiveDate,
    /// Latest amount.
    pub last_amount: Money,
    /// Next expected date.
    #[schema(value_type = String, format = Date)]
    pub next_date: NaiveDate,
    /// Next expected amount.
    pub next_amount: Money,
    /// Whether the amount repeats to the cent (a subscription) or varies (a bill that follows use).
    pub steady: bool,
    /// The latest price change: `{from, to, since}`.
    #[schema(value_type = Option<Object>)]
    pub price_change: Option<serde_json::Value>,
    /// active, new (started within its last three periods) or stopped (missed more than two).
    #[schema(value_type = String)]
    pub status: SeriesStatus,
    /// The transactions of the series, oldest first.
    pub transaction_ids: Vec<TransactionId>,
}

async fn observed(state: &AppState, user: UserId, days: u64) -> Result<Vec<Observed>> {
    let mut conn = state.db.conn().await?;
    Ok(magpie_db::transactions::observed_since(conn.c(), user, today() - Days::new(days)).await?)
}

fn direction(k: TransactionType) -> Direction {
    match k {
        TransactionType::Income => Direction::In,
        TransactionType::Expense => Direction::Out,
    }
}

/// The recurring series found in a user's ledger, as of a day.
pub struct RecurringSnapshot {
    found: Vec<recurring::Series>,
    described: Vec<RecurringResponse>,
}

/// The user's recurring series: from the cache while the ledger is unchanged, else detected.
async fn recurring_snapshot(state: &AppState, user: UserId) -> Result<std::sync::Arc<RecurringSnapshot>> {
    let stamp = crate::ledger_cache::stamp(state, user, today()).await?;
    if let Some(s) = state.recurring_cache.get(user, &stamp) {
        return Ok(s);
    }
    let (rows, found) = detect_recurring(state, user).await?;
    let described = found.iter().map(|s| describe(&rows, s)).collect();
    let snapshot = std::sync::Arc::new(RecurringSnapshot { found, described });
    state.recurring_cache.put(user, stamp, snapshot.clone());
    Ok(snapshot)
}

/// Compute the user's recurring series into the cache (after their ledger changed).
pub async fn warm_recurring(state: &AppState, user: UserId) -> Result<()> {
    recurring_snapshot(state, user).await.map(|_| ())
}

async fn detect_recurring(state: &AppState, user: UserId) -> Result<(Vec<Observed>, Vec<recurring::Series>)> {
    // Two years show a yearly payment twice.
    let rows = observed(state, user, 2 * 366).await?;
    let found = tokio::task::spawn_blocking(move || {
        let occ: Vec<recurring::Occurrence<'_>> = rows
            .iter()
            .map(|t| recurring::Occurrence {
                date: t.date,
                cents: t.amount.cents(),
                direction: direction(t.kind),
                text: &t.description,
            })
            .collect();
        let found = recurring::detect(&occ, today());
        (rows, found)
    })
    .await
    .map_err(|e| anyhow::anyhow!("recurring detection stopped: {e}"))?;
    Ok(found)
}

fn describe(rows: &[Observed], s: &recurring::Series) -> RecurringResponse {
    let mut votes: HashMap<&str, usize> = HashMap::new();
    for &i in &s.members {
        *votes.entry(rows[i].category.as_str()).or_default() += 1;
    }
    let category = votes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(c, _)| c.to_owned());
    RecurringResponse {
        description: s.description.clone(),
        merchant: s.key.clone(),
        category: category.unwrap_or_default(),
        kind: if s.direction == Direction::In { TransactionType::Income } else { TransactionType::Expense },
        cadence: s.cadence,
        occurrences: s.occurrences,
        first_date: s.first_date,
        last_date: s.last_date,
        last_amount: Money::from_cents(s.last_cents),
        next_date: s.next_date,
        next_amount: Money::from_cents(s.next_cents),
        steady: s.steady,
        price_change: s.price_change.map(|p| {
            serde_json::json!({
                "from": Money::from_cents(p.from_cents),
                "to": Money::from_cents(p.to_cents),
                "since": p.since,
            })
        }),
        status: s.status,
        transaction_ids: s.members.iter().map(|&i| rows[i].id).collect(),
    }
}

/// Your subscriptions, bills and income that recur (weekly to yearly), found in the last two years,
/// with the next expected date and amount, price changes, and new or stopped ones; next due first.
#[utoipa::path(
    get, path = "/insights/recurring", tag = "insights", security(("bearer" = [])),
    responses((status = 200, body = Vec<RecurringResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_recurring(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<RecurringResponse>>> {
    Ok(Json(recurring_snapshot(&state, user.id).await?.described.clone()))
}

/// How far ahead or back.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Days (upcoming: 1 to 90, default 30; anomalies: 1 to 365, default 90).
    pub days: Option<u64>,
}

/// An expected payment or income.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingResponse {
    /// Expected date.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Expected amount.
    pub amount: Money,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// weekly ... yearly.
    #[schema(value_type = String)]
    pub cadence: Cadence,
}

/// The recurring payments and income expected in the next days, by date.
#[utoipa::path(
    get, path = "/insights/upcoming", tag = "insights", security(("bearer" = [])), params(DaysQuery),
    responses(
        (status = 200, body = Vec<UpcomingResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_upcoming(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> Result<Json<Vec<UpcomingResponse>>> {
    let days = q.days.unwrap_or(30);
    if !(1..=90).contains(&days) {
        let mut v = Validator::new();
        v.error("query.days", "days must be between 1 and 90");
        v.finish()?;
    }
    let snapshot = recurring_snapshot(&state, user.id).await?;
    let from = today();
    let out = recurring::upcoming(&snapshot.found, from, from + Days::new(days))
        .into_iter()
        .map(|(i, date, cents)| {
            let r = snapshot.described[i].clone();
            UpcomingResponse {
                date,
                amount: Money::from_cents(cents),
                kind: r.kind,
                description: r.description,
                category: r.category,
                cadence: r.cadence,
            }
        })
        .collect();
    Ok(Json(out))
}

/// Something unusual.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyResponse {
    /// large_for_category, large_for_merchant, possible_double_charge or category_spike.
    #[schema(value_type = String)]
    pub kind: anomaly::Kind,
    /// A sentence for people.
    pub explanation: String,
    /// The category.
    pub category: String,
    /// The month (`YYYY-MM`), for a category spike.
    pub month: Option<String>,
    /// The amount concerned (the transaction, or the month's total).
    pub amount: Money,
    /// What is usual (the median).
    pub usual: Money,
    /// How far out, in robust standard deviations.
    pub score: f64,
    /// The transactions concerned.
    pub transaction_ids: Vec<TransactionId>,
}

/// Unusual spending of the last days: transactions far larger than usual for their category or
/// merchant (robust statistics: median and median absolute deviation), possible double charges, and
/// categories running far above their usual month; largest first.
#[utoipa::path(
    get, path = "/insights/anomalies", tag = "insights", security(("bearer" = [])), params(DaysQuery),
    responses(
        (status = 200, body = Vec<AnomalyResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_anomalies(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> Result<Json<Vec<AnomalyResponse>>> {
    let days = q.days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        let mut v = Validator::new();
        v.error("query.days", "days must be between 1 and 365");
        v.finish()?;
    }
    // What is usual is learned from 18 months before the window.
    let rows = observed(&state, user.id, days + 548).await?;
    let out = tokio::task::spawn_blocking(move || {
        let items: Vec<anomaly::Item<'_>> = rows
            .iter()
            .map(|t| anomaly::Item {
                date: t.date,
                cents: t.amount.cents(),
                direction: direction(t.kind),
                category: t.category.as_str(),
                text: &t.description,
            })
            .collect();
        let found = anomaly::detect(&items, today() - Days::new(days), today(), Thresholds::default());
        found
            .into_iter()
            .map(|a| AnomalyResponse {
                kind: a.kind,
                explanation: a.explanation,
                category: a.category,
                month: a.month,
                amount: Money::from_cents(a.cents),
                usual: Money::from_cents(a.usual_cents),
                score: a.score,
                transaction_ids: a.items.iter().map(|&i| rows[i].id).collect(),
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| anyhow::anyhow!("anomaly detection stopped: {e}"))?;
    Ok(Json(out))
}
