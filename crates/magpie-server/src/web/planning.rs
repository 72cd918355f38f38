//! Budgets (allocations, status against actual, roll forward) and goals (create, contribute,
//! projection).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{Datelike, Months, NaiveDate};
use magpie_domain::{BudgetId, GoalId, Money};
use serde::Deserialize;

use crate::api::budgets::{
    CreateBudgetRequest, RollForwardRequest, StatusQuery, UpdateBudgetRequest, budget_status, create_budget,
    delete_budget, list_budgets, roll_budget_forward, update_budget,
};
use crate::api::categories::list_categories;
use crate::api::goals::{
    ContributionRequest, CreateGoalRequest, GoalsQuery, add_contribution, create_goal, delete_goal, get_goal,
    list_contributions, list_goals,
};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::web::dashboard::Meter;
use crate::web::format::{money, percent};
use crate::web::session::WebUser;
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, filled, finish, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/budgets", get(show_budgets).post(add_budget))
        .route("/budgets/{id}", get(show_budget).post(edit_budget))
        .route("/budgets/{id}/roll", post(roll_budget))
        .route("/budgets/{id}/delete", post(remove_budget))
        .route("/goals", get(show_goals).post(add_goal))
        .route("/goals/{id}", get(show_goal))
        .route("/goals/{id}/contribute", post(contribute))
        .route("/goals/{id}/delete", post(remove_goal))
}

fn month_bounds(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let end = start.checked_add_months(Months::new(1)).and_then(|d| d.pred_opt()).unwrap_or(today);
    (start, end)
}

pub struct BudgetRow {
    pub name: String,
    pub period: String,
    pub meter: Meter,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "budgets.html")]
struct BudgetsPage {
    l: Layout,
    budgets: Vec<BudgetRow>,
    categories: Vec<String>,
    start: String,
    end: String,
    name: String,
    blank_rows: Vec<usize>,
}

async fn categories(state: &AppState, user: &WebUser) -> Result<Vec<String>, WebError> {
    Ok(list_categories(State(state.clone()), user.auth).await?.0.into_iter().map(|c| c.name).collect())
}

async fn show_budgets(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let today = chrono::Utc::now().date_naive();
    let list = list_budgets(State(state.clone()), user.auth).await?.0;
    let mut budgets = Vec::with_capacity(list.len());
    for b in list.into_iter().take(100) {
        let s = budget_status(
            State(state.clone()),
            user.auth,
            Path(b.id),
            ApiQuery(StatusQuery { as_of: None, thresholds: None }),
        )
        .await?
        .0
        .status;
        let t = &s.totals;
        budgets.push(BudgetRow {
            name: b.name.clone(),
            period: format!("{} to {}", b.period_start, b.period_end),
            current: b.period_start <= today && today <= b.period_end,
            meter: Meter::budget(
                &b.name,
                b.id,
                t,
                format!(
                    "{} of {} spent ({}%)",
                    money(t.spent),
                    money(t.allocated),
                    percent(t.spent.cents(), t.allocated.cents())
                ),
            ),
        });
    }
    let (start, end) = month_bounds(today);
    let shown = user.flash.is_some();
    let tpl = BudgetsPage {
        l: Layout::new(&user, "Budgets", "budgets"),
        budgets,
        categories: categories(&state, &user).await?,
        start: start.to_string(),
        end: end.to_string(),
        name: start.format("%B %Y").to_string(),
        blank_rows: (0..6).collect(),
    };
    Ok(page(&tpl, shown))
}

/// Allocation rows of a budget form: parallel `category` and `amount` lists (blank rows ignored).
#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    period_start: String,
    #[serde(default)]
    period_end: String,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    amount: Vec<String>,
}

impl BudgetForm {
    fn allocations(&self) -> Result<serde_json::Map<String, serde_json::Value>, AppError> {
        let mut map = serde_json::Map::new();
        for (i, (c, a)) in
            self.category.iter().zip(self.amount.iter().chain(std::iter::repeat(&String::new()))).enumerate()
        {
            let (c, a) = (c.trim(), a.trim());
            if c.is_empty() && a.is_empty() {
                continue;
            }
            if c.is_empty() {
                return Err(AppError::field(format!("row {}", i + 1), "choose a category for this amount"));
            }
            if map.contains_key(c) {
                return Err(AppError::field(format!("allocations.{c}"), "this category is listed twice"));
            }
            map.insert(c.to_owned(), serde_json::Value::String(a.to_owned()));
        }
        Ok(map)
    }
}

async fn add_budget(State(state): State<AppState>, user: WebUser, WebForm(form): WebForm<BudgetForm>) -> Response {
    let allocations = match form.allocations() {
        Ok(a) => a,
        Err(e) => return back_with_error(&state, e, "/budgets"),
    };
    let req = CreateBudgetRequest {
        name: form.name.trim().to_owned(),
        period_start: form.period_start.trim().to_owned(),
        period_end: form.period_end.trim().to_owned(),
        allocations,
    };
    match create_budget(State(state.clone()), user.auth, ApiJson(req)).await {
        Ok((_, b)) => crate::web::redirect_with(
            &state,
            &format!("/budgets/{}", b.0.id),
            Some(crate::web::session::Flash::ok(format!("Budget “{}” created.", b.0.name))),
        ),
        Err(e) => back_with_error(&state, e, "/budgets"),
    }
}

pub struct StatusRow {
    pub category: String,
    pub allocated: String,
    pub spent: String,
    pub remaining: String,
    pub projected: String,
    pub value: i64,
    pub max: i64,
    pub over: bool,
    pub warn: bool,
    pub percent: String,
}

impl StatusRow {
    fn new(
        category: &str,
        allocated: Money,
        spent: Money,
        remaining: Money,
        projected: Money,
        percent_used: f64,
    ) -> StatusRow {
        let m = Meter::of(String::new(), String::new(), String::new(), spent, allocated);
        StatusRow {
            category: category.to_owned(),
            allocated: money(allocated),
            spent: money(spent),
            remaining: money(remaining),
            projected: money(projected),
            value: m.value,
            max: m.max,
            over: m.over,
            warn: !m.over && projected > allocated,
            percent: format!("{percent_used:.0}%"),
        }
    }
}

#[derive(Template)]
#[template(path = "budget.html")]
struct BudgetPage {
    l: Layout,
    id: String,
    name: String,
    start: String,
    end: String,
    days: String,
    rows: Vec<StatusRow>,
    unbudgeted: Vec<(String, String)>,
    total: StatusRow,
    projection: String,
    categories: Vec<String>,
    edit_rows: Vec<(String, String)>,
}

async fn show_budget(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<BudgetId>,
) -> Result<Response, WebError> {
    let b = budget_status(
        State(state.clone()),
        user.auth,
        Path(id),
        ApiQuery(StatusQuery { as_of: None, thresholds: None }),
    )
    .await?
    .0;
    let s = &b.status;
    let rows = s
        .categories
        .iter()
        .map(|c| StatusRow::new(c.category.as_str(), c.allocated, c.spent, c.remaining, c.projected, c.percent_used))
        .collect();
    let t = &s.totals;
    let total = StatusRow::new("Total", t.allocated, t.spent, t.remaining, t.projected, t.percent_used);
    let mut edit_rows: Vec<(String, String)> =
        b.budget.allocations.iter().map(|(c, m)| (c.as_str().to_owned(), m.to_string())).collect();
    edit_rows.extend((0..3).map(|_| (String::new(), String::new())));
    let shown = user.flash.is_some();
    let tpl = BudgetPage {
        l: Layout::new(&user, format!("Budget: {}", b.budget.name), "budgets"),
        id: id.to_string(),
        name: b.budget.name.clone(),
        start: b.budget.period_start.to_string(),
        end: b.budget.period_end.to_string(),
        days: format!("Day {} of {}", s.days_elapsed, s.days_total),
        rows,
        unbudgeted: s.unbudgeted.iter().map(|u| (u.category.as_str().to_owned(), money(u.spent))).collect(),
        total,
        projection: s.projection.clone(),
        categories: categories(&state, &user).await?,
        edit_rows,
    };
    Ok(page(&tpl, shown))
}

async fn edit_budget(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<BudgetId>,
    WebForm(form): WebForm<BudgetForm>,
) -> Response {
    let back = format!("/budgets/{id}");
    let allocations = match form.allocations() {
        Ok(a) => a,
        Err(e) => return back_with_error(&state, e, &back),
    };
    let req = UpdateBudgetRequest {
        name: filled(&form.name),
        period_start: filled(&form.period_start),
        period_end: filled(&form.period_end),
        allocations: Some(allocations),
    };
    let result = update_budget(State(state.clone()), user.auth, Path(id), ApiJson(req)).await;
    finish(&state, result, &back, |b| format!("Budget “{}” saved.", b.0.name))
}

#[derive(Deserialize)]
pub struct RollForm {
    #[serde(default)]
    carry: String,
}

async fn roll_budget(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<BudgetId>,
    WebForm(form): WebForm<RollForm>,
) -> Response {
    let req = RollForwardRequest { carry: (!form.carry.is_empty()).then_some(form.carry), name: None };
    match roll_budget_forward(State(state.clone()), user.auth, Path(id), ApiJson(req)).await {
        Ok((_, r)) => crate::web::redirect_with(
            &state,
            &format!("/budgets/{}", r.0.budget.id),
            Some(crate::web::session::Flash::ok(format!(
                "Rolled forward into “{}” ({} to {}).",
                r.0.budget.name, r.0.budget.period_start, r.0.budget.period_end
            ))),
        ),
        Err(e) => back_with_error(&state, e, &format!("/budgets/{id}")),
    }
}

async fn remove_budget(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<BudgetId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = delete_budget(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/budgets", |_| "Budget deleted.".into())
}

pub struct GoalRow {
    pub meter: Meter,
    pub deadline: String,
    pub category: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "goals.html")]
struct GoalsPage {
    l: Layout,
    goals: Vec<GoalRow>,
    categories: Vec<String>,
}

fn goal_row(g: &crate::api::goals::GoalResponse) -> GoalRow {
    GoalRow {
        meter: Meter::goal(g),
        deadline: g.deadline.map(|d| d.to_string()).unwrap_or_else(|| "no deadline".into()),
        category: g.category.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_default(),
        status: g.status.to_string(),
    }
}

async fn show_goals(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let goals = list_goals(State(state.clone()), user.auth, ApiQuery(GoalsQuery { status: None })).await?.0;
    let shown = user.flash.is_some();
    let tpl = GoalsPage {
        l: Layout::new(&user, "Goals", "goals"),
        goals: goals.iter().map(goal_row).collect(),
        categories: categories(&state, &user).await?,
    };
    Ok(page(&tpl, shown))
}

#[derive(Deserialize)]
pub struct GoalForm {
    name: String,
    target_amount: String,
    #[serde(default)]
    deadline: String,
    #[serde(default)]
    category: String,
}

async fn add_goal(State(state): State<AppState>, user: WebUser, WebForm(form): WebForm<GoalForm>) -> Response {
    let req = CreateGoalRequest {
        name: form.name.trim().to_owned(),
        target_amount: serde_json::Value::String(form.target_amount.trim().to_owned()),
        deadline: filled(&form.deadline),
        category: filled(&form.category),
        tracking_start: None,
    };
    match create_goal(State(state.clone()), user.auth, ApiJson(req)).await {
        Ok((_, g)) => crate::web::redirect_with(
            &state,
            &format!("/goals/{}", g.0.id),
            Some(crate::web::session::Flash::ok(format!("Goal “{}” created.", g.0.name))),
        ),
        Err(e) => back_with_error(&state, e, "/goals"),
    }
}

#[derive(Template)]
#[template(path = "goal.html")]
struct GoalPage {
    l: Layout,
    id: String,
    row: GoalRow,
    contributed: String,
    tracked: String,
    remaining: String,
    monthly_needed: String,
    pace: String,
    completion: String,
    summary: String,
    on_track: Option<bool>,
    contributions: Vec<(String, String, String)>,
    today: String,
}

async fn show_goal(State(state): State<AppState>, user: WebUser, Path(id): Path<GoalId>) -> Result<Response, WebError> {
    let g = get_goal(State(state.clone()), user.auth, Path(id)).await?.0;
    let contributions = list_contributions(State(state.clone()), user.auth, Path(id)).await?.0;
    let p = &g.projection;
    let shown = user.flash.is_some();
    let tpl = GoalPage {
        l: Layout::new(&user, format!("Goal: {}", g.name), "goals"),
        id: id.to_string(),
        row: goal_row(&g),
        contributed: money(g.contributed),
        tracked: money(g.tracked),
        remaining: money(p.remaining),
        monthly_needed: p.monthly_needed.map(money).unwrap_or_else(|| "—".into()),
        pace: money(p.pace_per_month),
        completion: p.projected_completion.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
        summary: p.summary.clone(),
        on_track: p.on_track,
        contributions: contributions
            .into_iter()
            .map(|c| (c.date.to_string(), money(c.amount), c.note.unwrap_or_default()))
            .collect(),
        today: chrono::Utc::now().date_naive().to_string(),
    };
    Ok(page(&tpl, shown))
}

#[derive(Deserialize)]
pub struct ContributeForm {
    amount: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    note: String,
}

async fn contribute(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<GoalId>,
    WebForm(form): WebForm<ContributeForm>,
) -> Response {
    let req = ContributionRequest {
        amount: serde_json::Value::String(form.amount.trim().to_owned()),
        date: filled(&form.date),
        note: filled(&form.note),
    };
    let result = add_contribution(State(state.clone()), user.auth, Path(id), ApiJson(req)).await;
    finish(&state, result, &format!("/goals/{id}"), |(_, r)| {
        format!(
            "Added {}. {} of {} saved.",
            money(r.0.contribution.amount),
            money(r.0.goal.current_amount),
            money(r.0.goal.target_amount)
        )
    })
}

async fn remove_goal(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<GoalId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = delete_goal(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/goals", |_| "Goal deleted.".into())
}
