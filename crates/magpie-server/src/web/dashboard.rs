//! The dashboard: this month, spending by category, budgets, goals, upcoming payments, the forecast and
//! what needs review. Its parts are read concurrently (each on its own pooled connection), through the
//! same handlers the API serves them with.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{Datelike, Months, NaiveDate};

use crate::api::budgets::{StatusQuery, current_budgets};
use crate::api::goals::{GoalResponse, GoalsQuery, list_goals};
use crate::api::insights::{DaysQuery, list_upcoming};
use crate::api::reports::{ReportQuery, get_cashflow, get_summary};
use crate::api::transactions::{ListQuery, list_page};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::extract::ApiQuery;
use crate::planning::BudgetTotals;
use crate::web::charts::{self, ForecastPoint};
use crate::web::format::{money, month_label, percent};
use crate::web::session::{Flash, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, page, redirect_with};
use magpie_domain::{BudgetId, Money};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show_dashboard)).route("/demo", post(load_demo))
}

pub struct Meter {
    pub label: String,
    pub detail: String,
    pub value: i64,
    pub max: i64,
    pub over: bool,
    pub href: String,
}

impl Meter {
    /// `amount` against `limit` (cents in a `<meter>`: full at the limit, `over` past it).
    pub fn of(label: String, detail: String, href: String, amount: Money, limit: Money) -> Meter {
        let max = limit.cents().max(1);
        Meter { label, detail, value: amount.cents().clamp(0, max), max, over: amount > limit, href }
    }

    /// A budget's spending against its allocations.
    pub fn budget(name: &str, id: BudgetId, t: &BudgetTotals, detail: String) -> Meter {
        Meter::of(name.to_owned(), detail, format!("/budgets/{id}"), t.spent, t.allocated)
    }

    /// A goal's saving against its target ("X of Y (Z%)").
    pub fn goal(g: &GoalResponse) -> Meter {
        let detail = format!(
            "{} of {} ({}%)",
            money(g.current_amount),
            money(g.target_amount),
            percent(g.current_amount.cents(), g.target_amount.cents())
        );
        // Past the target is success, not overspending.
        Meter {
            over: false,
            ..Meter::of(g.name.clone(), detail, format!("/goals/{}", g.id), g.current_amount, g.target_amount)
        }
    }
}

pub struct Upcoming {
    pub date: String,
    pub description: String,
    pub amount: String,
    pub income: bool,
    pub cadence: String,
}

pub struct Review {
    pub id: String,
    pub date: String,
    pub description: String,
    pub amount: String,
    pub suggestions: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    empty: bool,
    month: String,
    income: String,
    expense: String,
    net: String,
    net_negative: bool,
    spending_chart: String,
    budgets: Vec<Meter>,
    goals: Vec<Meter>,
    upcoming: Vec<Upcoming>,
    forecast_chart: String,
    forecast_note: String,
    review: Vec<Review>,
}

fn first_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

async fn show_dashboard(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let today = chrono::Utc::now().date_naive();
    let month_start = first_of(today);
    let year_ago = month_start.checked_sub_months(Months::new(11)).unwrap_or(month_start);
    let a = user.auth;
    let s = || State(state.clone());
    let review_params = ListQuery { needs_review: Some(true), limit: Some(5), ..ListQuery::default() }.parse()?;
    let (summary, cashflow, budgets, goals, upcoming, forecast, review) = tokio::join!(
        get_summary(
            s(),
            a,
            ApiQuery(ReportQuery {
                from: Some(month_start.to_string()),
                to: Some(today.to_string()),
                group_by: Some("category".into())
            })
        ),
        get_cashflow(
            s(),
            a,
            ApiQuery(ReportQuery { from: Some(year_ago.to_string()), to: Some(today.to_string()), group_by: None })
        ),
        current_budgets(s(), a, ApiQuery(StatusQuery { as_of: None, thresholds: None })),
        list_goals(s(), a, ApiQuery(GoalsQuery { status: Some("ACTIVE".into()) })),
        list_upcoming(s(), a, ApiQuery(DaysQuery { days: Some(30) })),
        async { crate::forecasting::for_user(&state, a.id, today, 3).await.map_err(AppError::from) },
        list_page(&state, a.id, &review_params),
    );
    let summary = summary?.0;
    let cashflow = cashflow?.0;
    let empty = cashflow.months.iter().all(|m| m.income.is_zero() && m.expense.is_zero()) && summary.totals.count == 0;

    let mut spending: Vec<(String, i64)> = summary
        .groups
        .iter()
        .filter(|g| !g.totals.expense.is_zero())
        .map(|g| (g.key.clone(), g.totals.expense.cents()))
        .collect();
    spending.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    spending.truncate(10);
    let spending_chart = if spending.is_empty() {
        String::new()
    } else {
        charts::bars(
            "spending",
            &format!("Spending by category, {}", month_label(&month_start.format("%Y-%m").to_string())),
            &spending,
        )
    };

    let budgets = budgets?
        .0
        .into_iter()
        .map(|b| {
            let t = &b.status.totals;
            let detail = format!("{} of {} spent, {} left", money(t.spent), money(t.allocated), money(t.remaining));
            Meter::budget(&b.budget.name, b.budget.id, t, detail)
        })
        .collect();
    let goals = goals?
        .0
        .into_iter()
        .take(6)
        .map(|g| {
            let m = Meter::goal(&g);
            Meter { detail: format!("{}. {}", m.detail, g.projection.summary), ..m }
        })
        .collect();
    let upcoming = upcoming?
        .0
        .into_iter()
        .take(8)
        .map(|u| Upcoming {
            date: u.date.format("%b %-d").to_string(),
            description: u.description,
            amount: money(u.amount),
            income: u.kind == magpie_domain::TransactionType::Income,
            cadence: serde_json::to_value(u.cadence)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        })
        .collect();

    let (forecast_chart, forecast_note) = match forecast {
        Ok(f) if f.total_expense.as_ref().is_some_and(|t| !t.months.is_empty()) => {
            let total = f.total_expense.as_ref().map(|t| t.months.as_slice()).unwrap_or_default();
            let history: Vec<(String, i64)> = cashflow
                .months
                .iter()
                .filter(|m| m.month.as_str() <= f.data_until.as_str())
                .map(|m| (m.month.clone(), m.expense.cents()))
                .collect();
            let ahead: Vec<ForecastPoint> = total
                .iter()
                .map(|m| ForecastPoint {
                    month: m.month.clone(),
                    mean: m.expected.cents(),
                    low80: m.low_80.cents(),
                    high80: m.high_80.cents(),
                    low95: m.low_95.cents(),
                    high95: m.high_95.cents(),
                })
                .collect();
            let next = &total[0];
            let note = format!(
                "{}: about {} expected, 80% likely between {} and {}.",
                month_label(&next.month),
                money(next.expected),
                money(next.low_80),
                money(next.high_80)
            );
            (charts::forecast("forecast", "Monthly spending and forecast", &history, &ahead), note)
        }
        Ok(_) => (String::new(), "A forecast needs a few months of history.".to_owned()),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "dashboard forecast failed");
            (String::new(), "The forecast is not available right now.".to_owned())
        }
    };
    let review = review?
        .items
        .into_iter()
        .map(|t| Review {
            id: t.id.to_string(),
            date: t.date.to_string(),
            description: t.description,
            amount: money(t.amount),
            suggestions: t
                .suggestions
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.category, format!("{:.0}%", s.confidence * 100.0)))
                .collect(),
        })
        .collect();

    let shown = user.flash.is_some();
    let t = &summary.totals;
    let tpl = DashboardPage {
        l: Layout::new(&user, "Dashboard", "dashboard"),
        empty,
        month: month_label(&month_start.format("%Y-%m").to_string()),
        income: money(t.income),
        expense: money(t.expense),
        net: money(t.net),
        net_negative: t.net.is_negative(),
        spending_chart,
        budgets,
        goals,
        upcoming,
        forecast_chart,
        forecast_note,
        review,
    };
    Ok(page(&tpl, shown))
}

/// Fill an empty ledger with the demo history (two years, about 2,000 transactions), so a new user can
/// see every page at work before importing their own.
async fn load_demo(
    State(state): State<AppState>,
    user: WebUser,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let mut conn = state.db.conn().await?;
    let existing = magpie_db::transactions::category_counts(conn.c(), user.id()).await?;
    drop(conn);
    if existing.iter().any(|(_, n)| *n > 0) {
        return Ok(redirect_with(&state, "/", Some(Flash::error("Demo data only goes into an empty ledger.", vec![]))));
    }
    let n = crate::cli::demo::seed_user(&state.db, user.id(), 2_000, 24, 42).await?;
    crate::ledger_cache::ledger_changed(&state, user.id());
    Ok(redirect_with(&state, "/", Some(Flash::ok(format!("Loaded {n} demo transactions over two years.")))))
}
