//! `/api/v1/reports`: exact income, expense and net totals, grouped, and monthly cash flow.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{Datelike, Months, NaiveDate};
use magpie_db::transactions::{self, GroupBy, SummaryRow};
use magpie_domain::{Money, TransactionType, input};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiQuery;
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_summary)).routes(routes!(get_cashflow))
}

/// Period and grouping of a report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First day (`YYYY-MM-DD`); default: the first day of the month eleven months ago.
    pub from: Option<String>,
    /// Last day; default: today.
    pub to: Option<String>,
    /// `category` (default), `month`, `week` (keyed by Monday) or `type` (summary only).
    pub group_by: Option<String>,
}

/// Totals of one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Totals {
    /// Sum of INCOME.
    pub income: Money,
    /// Sum of EXPENSE.
    pub expense: Money,
    /// income - expense.
    pub net: Money,
    /// Number of transactions.
    pub count: i64,
}

impl Totals {
    fn zero() -> Totals {
        Totals { income: Money::ZERO, expense: Money::ZERO, net: Money::ZERO, count: 0 }
    }

    fn add(&mut self, row: &SummaryRow) -> Result<()> {
        let overflow = || AppError::Internal(anyhow::anyhow!("report total overflow"));
        match row.kind {
            TransactionType::Income => self.income = self.income.checked_add(row.total).ok_or_else(overflow)?,
            TransactionType::Expense => self.expense = self.expense.checked_add(row.total).ok_or_else(overflow)?,
        }
        self.net = self.income.checked_sub(self.expense).ok_or_else(overflow)?;
        self.count += row.count;
        Ok(())
    }
}

/// A group and its totals.
#[derive(Serialize, ToSchema)]
pub struct Group {
    /// Category name, `YYYY-MM`, the week's Monday, or INCOME/EXPENSE.
    pub key: String,
    /// Totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// A summary report.
#[derive(Serialize, ToSchema)]
pub struct SummaryResponse {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last day.
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// The grouping.
    pub group_by: String,
    /// Groups in key order.
    pub groups: Vec<Group>,
    /// Totals of the whole period.
    pub totals: Totals,
}

fn period(from: Option<&str>, to: Option<&str>, v: &mut Validator) -> (NaiveDate, NaiveDate) {
    let today = chrono::Utc::now().date_naive();
    let to = to.and_then(|s| v.check("query.to", input::transaction_date(s))).unwrap_or(today);
    let default_from = NaiveDate::from_ymd_opt(to.year(), to.month(), 1).expect("valid") - Months::new(11);
    let from = from.and_then(|s| v.check("query.from", input::transaction_date(s))).unwrap_or(default_from);
    if from > to {
        v.error("query.from", "from must not be after to");
    }
    (from, to)
}

/// Income, expense and net totals of a period, grouped by category, month, week or type. Sums are exact
/// decimals computed by the database; soft-deleted transactions are not counted.
#[utoipa::path(
    get, path = "/reports/summary", tag = "reports", security(("bearer" = [])), params(ReportQuery),
    responses(
        (status = 200, body = SummaryResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_summary(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<SummaryResponse>> {
    let mut v = Validator::new();
    let (from, to) = period(q.from.as_deref(), q.to.as_deref(), &mut v);
    let group_by = match q.group_by.as_deref().unwrap_or("category") {
        "category" => Some(GroupBy::Category),
        "month" => Some(GroupBy::Month),
        "week" => Some(GroupBy::Week),
        "type" => Some(GroupBy::Type),
        other => {
            v.error("query.group_by", format!("'{other}' is not one of category, month, week, type"));
            None
        }
    };
    v.finish()?;
    let group_by_name = q.group_by.unwrap_or_else(|| "category".to_owned());
    let mut conn = state.db.conn().await?;
    let rows = transactions::summary(conn.c(), user.id, from, to, group_by.expect("validated")).await?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut totals = Totals::zero();
    for row in &rows {
        groups.entry(row.key.clone()).or_insert_with(Totals::zero).add(row)?;
        totals.add(row)?;
    }
    Ok(Json(SummaryResponse {
        from,
        to,
        group_by: group_by_name,
        groups: groups.into_iter().map(|(key, totals)| Group { key, totals }).collect(),
        totals,
    }))
}

/// One month of cash flow.
#[derive(Serialize, ToSchema)]
pub struct CashflowMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Sum of INCOME.
    pub income: Money,
    /// Sum of EXPENSE.
    pub expense: Money,
    /// income - expense.
    pub net: Money,
    /// Sum of `net` from the first month of the period to this one.
    pub running_net: Money,
}

/// Monthly cash flow.
#[derive(Serialize, ToSchema)]
pub struct CashflowResponse {
    /// Every month of the period, empty months included.
    pub months: Vec<CashflowMonth>,
}

/// Income, expense, net and running net per month of a period (every month listed, zero when empty).
#[utoipa::path(
    get, path = "/reports/cashflow", tag = "reports", security(("bearer" = [])), params(ReportQuery),
    responses(
        (status = 200, body = CashflowResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_cashflow(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<CashflowResponse>> {
    let mut v = Validator::new();
    let (from, to) = period(q.from.as_deref(), q.to.as_deref(), &mut v);
    if q.group_by.as_deref().is_some_and(|g| g != "month") {
        v.error("query.group_by", "cash flow is always by month");
    }
    v.finish()?;
    let mut conn = state.db.conn().await?;
    let rows = transactions::summary(conn.c(), user.id, from, to, GroupBy::Month).await?;
    let mut by_month: BTreeMap<String, Totals> = BTreeMap::new();
    for row in &rows {
        by_month.entry(row.key.clone()).or_insert_with(Totals::zero).add(row)?;
    }
    let mut months = Vec::new();
    let mut running = Money::ZERO;
    let mut cursor = NaiveDate::from_ymd_opt(from.year(), from.month(), 1).expect("valid");
    while cursor <= to {
        let key = cursor.format("%Y-%m").to_string();
        let t = by_month.remove(&key).unwrap_or_else(Totals::zero);
        running = running.checked_add(t.net).ok_or_else(|| AppError::Internal(anyhow::anyhow!("overflow")))?;
        months.push(CashflowMonth {
            month: key,
            income: t.income,
            expense: t.expense,
            net: t.net,
            running_net: running,
        });
        cursor = cursor + Months::new(1);
    }
    Ok(Json(CashflowResponse { months }))
}
