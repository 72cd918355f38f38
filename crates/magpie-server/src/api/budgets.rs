//! `/api/v1/budgets`: budgets (the seed's `budgets`), where they stand (budget vs actual with a
//! projection to the period's end and alert thresholds), and rolling one forward into the next period.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use magpie_db::budgets::{self as repo, Budget, NewBudget};
use magpie_db::transactions::{self as tx_repo, GroupBy};
use magpie_domain::{Allocations, BudgetId, Category, Money, Timestamp, TransactionType, UserId, input};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::forecasting;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::validate::Validator;
use crate::planning::{self, BudgetStatus, Carry, DEFAULT_THRESHOLDS};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_budgets, create_budget))
        .routes(routes!(current_budgets))
        .routes(routes!(get_budget, update_budget, delete_budget))
        .routes(routes!(budget_status))
        .routes(routes!(roll_budget_forward))
}

/// A budget as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetResponse {
    /// Id.
    pub id: BudgetId,
    /// Name.
    pub name: String,
    /// First day of the period.
    #[schema(value_type = String, format = Date)]
    pub period_start: NaiveDate,
    /// Last day of the period (inclusive).
    #[schema(value_type = String, format = Date)]
    pub period_end: NaiveDate,
    /// Category -> amount, amounts as two-decimal strings.
    pub allocations: Allocations,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl From<Budget> for BudgetResponse {
    fn from(b: Budget) -> Self {
        BudgetResponse {
            id: b.id,
            name: b.name,
            period_start: b.period_start,
            period_end: b.period_end,
            allocations: b.allocations,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A new budget.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBudgetRequest {
    /// Name (1 to 100 characters).
    #[schema(example = "June")]
    pub name: String,
    /// `YYYY-MM-DD`.
    #[schema(example = "2026-06-01")]
    pub period_start: String,
    /// `YYYY-MM-DD`, on or after `period_start`.
    #[schema(example = "2026-06-30")]
    pub period_end: String,
    /// Category -> amount (strings such as `"500.00"` or JSON numbers; positive, at most two decimals).
    #[schema(value_type = Object, example = json!({"Groceries": "500.00", "Dining": "200.00"}))]
    pub allocations: serde_json::Map<String, serde_json::Value>,
}

/// Changes to a budget; absent fields stay. `allocations` replaces the whole map.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudgetRequest {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// First day.
    #[serde(default)]
    pub period_start: Option<String>,
    /// Last day.
    #[serde(default)]
    pub period_end: Option<String>,
    /// All allocations.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub allocations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parse an allocations object, one field error per bad entry (`allocations.<category>`).
fn parse_allocations(v: &mut Validator, raw: &serde_json::Map<String, serde_json::Value>) -> Option<Allocations> {
    let mut map = BTreeMap::new();
    let mut ok = true;
    for (key, value) in raw {
        let field = format!("allocations.{key}");
        let category = v.check(&field, Category::parse(key));
        let amount = serde_json::from_value::<Money>(value.clone())
            .map_err(|e| magpie_domain::ParseError::new(e.to_string()))
            .and_then(|m| {
                if m.is_negative() || m.is_zero() {
                    Err(magpie_domain::ParseError::new("an allocation must be positive"))
                } else if m > Money::MAX_COLUMN {
                    Err(magpie_domain::ParseError::new("an allocation must be at most 9999999999.99"))
                } else {
                    Ok(m)
                }
            });
        let amount = v.check(&field, amount);
        match (category, amount) {
            (Some(c), Some(a)) => {
                map.insert(c, a);
            }
            _ => ok = false,
        }
    }
    if !ok {
        return None;
    }
    v.check("allocations", Allocations::new(map))
}

fn check_name(v: &mut Validator, name: &str) -> Option<String> {
    v.check("name", magpie_domain::input::name(name))
}

fn check_period(v: &mut Validator, start: Option<NaiveDate>, end: Option<NaiveDate>) {
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        v.error("period_end", "period_end must not be before period_start");
    }
}

/// The user's budgets, latest period first.
#[utoipa::path(
    get, path = "/budgets", tag = "budgets", security(("bearer" = [])),
    responses((status = 200, body = Vec<BudgetResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_budgets(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<BudgetResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::list(conn.c(), user.id).await?.into_iter().map(Into::into).collect()))
}

/// Create a budget.
#[utoipa::path(
    post, path = "/budgets", tag = "budgets", security(("bearer" = [])), request_body = CreateBudgetRequest,
    responses(
        (status = 201, body = BudgetResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_budget(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateBudgetRequest>,
) -> Result<(StatusCode, Json<BudgetResponse>)> {
    let mut v = Validator::new();
    let name = check_name(&mut v, &req.name);
    let start = v.check("period_start", input::transaction_date(&req.period_start));
    let end = v.check("period_end", input::transaction_date(&req.period_end));
    check_period(&mut v, start, end);
    let allocations = parse_allocations(&mut v, &req.allocations);
    v.finish()?;
    let (Some(name), Some(period_start), Some(period_end), Some(allocations)) = (name, start, end, allocations) else {
        unreachable!("validated");
    };
    let mut conn = state.db.conn().await?;
    let budget = repo::create(conn.c(), user.id, &NewBudget { name, period_start, period_end, allocations }).await?;
    Ok((StatusCode::CREATED, Json(budget.into())))
}

/// One budget.
#[utoipa::path(
    get, path = "/budgets/{id}", tag = "budgets", security(("bearer" = [])),
    params(("id" = BudgetId, Path, description = "Budget id")),
    responses(
        (status = 200, body = BudgetResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_budget(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<BudgetId>,
) -> Result<Json<BudgetResponse>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?.into()))
}

/// Change a budget.
#[utoipa::path(
    patch, path = "/budgets/{id}", tag = "budgets", security(("bearer" = [])),
    params(("id" = BudgetId, Path, description = "Budget id")), request_body = UpdateBudgetRequest,
    responses(
        (status = 200, body = BudgetResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_budget(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<BudgetId>,
    ApiJson(req): ApiJson<UpdateBudgetRequest>,
) -> Result<Json<BudgetResponse>> {
    let mut tx = state.db.begin().await?;
    let current = repo::get(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    let mut v = Validator::new();
    let name = req.name.as_deref().map_or(Some(current.name.clone()), |n| check_name(&mut v, n));
    let start = req
        .period_start
        .as_deref()
        .map_or(Some(current.period_start), |s| v.check("period_start", input::transaction_date(s)));
    let end = req
        .period_end
        .as_deref()
        .map_or(Some(current.period_end), |s| v.check("period_end", input::transaction_date(s)));
    check_period(&mut v, start, end);
    let allocations = match &req.allocations {
        Some(raw) => parse_allocations(&mut v, raw),
        None => Some(current.allocations.clone()),
    };
    v.finish()?;
    let (Some(name), Some(period_start), Some(period_end), Some(allocations)) = (name, start, end, allocations) else {
        unreachable!("validated");
    };
    let budget = repo::update(tx.c(), user.id, id, &NewBudget { name, period_start, period_end, allocations })
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(budget.into()))
}

/// Delete a budget.
#[utoipa::path(
    delete, path = "/budgets/{id}", tag = "budgets", security(("bearer" = [])),
    params(("id" = BudgetId, Path, description = "Budget id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_budget(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<BudgetId>,
) -> Result<StatusCode> {
    let mut conn = state.db.conn().await?;
    if !repo::delete(conn.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How to compute a status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// The day to compute it for (default today, UTC); clamped into the period.
    pub as_of: Option<String>,
    /// Alert thresholds in percent, comma-separated (default `80,100`).
    pub thresholds: Option<String>,
}

impl StatusQuery {
    fn parse(&self) -> Result<(NaiveDate, Vec<u32>)> {
        let mut v = Validator::new();
        let as_of = match self.as_of.as_deref() {
            Some(s) => v.check("query.as_of", input::transaction_date(s)),
            None => Some(chrono::Utc::now().date_naive()),
        };
        let thresholds = match self.thresholds.as_deref() {
            None => DEFAULT_THRESHOLDS.to_vec(),
            Some(s) => {
                let mut out = Vec::new();
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.parse::<u32>() {
                        Ok(t) if (1..=1000).contains(&t) => out.push(t),
                        _ => v.error("query.thresholds", format!("'{part}' is not a percentage between 1 and 1000")),
                    }
                }
                out.sort_unstable();
                out.dedup();
                if out.len() > 10 {
                    v.error("query.thresholds", "at most 10 thresholds");
                }
                out
            }
        };
        v.finish()?;
        Ok((as_of.expect("validated"), thresholds))
    }
}

/// A budget with where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetWithStatus {
    /// The budget.
    pub budget: BudgetResponse,
    /// Where it stands.
    pub status: BudgetStatus,
}

/// Where `budget` stands on `as_of`: the period's EXPENSE totals per category so far (soft-deleted
/// excluded), summed exactly by the database over the covering index.
pub async fn status_of(
    state: &AppState,
    user: UserId,
    budget: &Budget,
    as_of: NaiveDate,
    thresholds: &[u32],
) -> Result<BudgetStatus> {
    let until = as_of.clamp(budget.period_start, budget.period_end);
    let mut conn = state.db.conn().await?;
    let rows = tx_repo::summary(conn.c(), user, budget.period_start, until, GroupBy::Category).await?;
    let mut spent: BTreeMap<Category, Money> = BTreeMap::new();
    for r in rows.into_iter().filter(|r| r.kind == TransactionType::Expense) {
        if let Ok(c) = Category::parse(&r.key) {
            spent.insert(c, r.total);
        }
    }
    // Once the user has a current forecast model, the projection is what is spent plus the forecast of
    // the period's remaining days.
    let rest = match until.succ_opt() {
        Some(next) if until < budget.period_end => {
            forecasting::expected_spending(state, user, next, budget.period_end).await.unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "forecast unavailable for a budget projection");
                None
            })
        }
        _ => None,
    };
    Ok(planning::budget_status(
        &budget.allocations,
        budget.period_start,
        budget.period_end,
        as_of,
        &spent,
        thresholds,
        rest.as_ref(),
    ))
}

/// The budgets whose period contains the day (the seed's query 3), each with where it stands.
#[utoipa::path(
    get, path = "/budgets/current", tag = "budgets", security(("bearer" = [])), params(StatusQuery),
    responses(
        (status = 200, body = Vec<BudgetWithStatus>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn current_budgets(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<Vec<BudgetWithStatus>>> {
    let (day, thresholds) = q.parse()?;
    let budgets = {
        let mut conn = state.db.conn().await?;
        repo::current(conn.c(), user.id, day).await?
    };
    let mut out = Vec::with_capacity(budgets.len());
    for b in budgets {
        let status = status_of(&state, user.id, &b, day, &thresholds).await?;
        out.push(BudgetWithStatus { budget: b.into(), status });
    }
    Ok(Json(out))
}

/// Budget against actual: per allocated category what is spent, what remains, the percentage used,
/// the projection to the period's end at the current pace and the thresholds reached; the spending
/// outside the allocations; totals.
#[utoipa::path(
    get, path = "/budgets/{id}/status", tag = "budgets", security(("bearer" = [])),
    params(("id" = BudgetId, Path, description = "Budget id"), StatusQuery),
    responses(
        (status = 200, body = BudgetWithStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn budget_status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<BudgetId>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<BudgetWithStatus>> {
    let (as_of, thresholds) = q.parse()?;
    let budget = {
        let mut conn = state.db.conn().await?;
        repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?
    };
    let status = status_of(&state, user.id, &budget, as_of, &thresholds).await?;
    Ok(Json(BudgetWithStatus { budget: budget.into(), status }))
}

/// How to roll a budget forward.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RollForwardRequest {
    /// `none` (the same allocations, the default), `unspent` (add what was left) or `all` (add what
    /// was left and take off what was overspent).
    #[serde(default)]
    #[schema(example = "unspent")]
    pub carry: Option<String>,
    /// Name of the new budget (default: the same name).
    #[serde(default)]
    pub name: Option<String>,
}

/// The budget created by a roll forward.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollForwardResponse {
    /// The new budget.
    pub budget: BudgetResponse,
    /// What was carried per category (positive: added; negative: taken off).
    pub carried: BTreeMap<Category, Money>,
    /// Categories left out because carrying an overspend left nothing to allocate.
    pub dropped: Vec<Category>,
}

/// Create the next period's budget from this one: the next calendar month(s) for a whole-month
/// budget, else the same number of days; optionally carrying unspent (and overspent) amounts. A
/// budget of the same name already covering the next period is a conflict (no double roll).
#[utoipa::path(
    post, path = "/budgets/{id}/roll-forward", tag = "budgets", security(("bearer" = [])),
    params(("id" = BudgetId, Path, description = "Budget id")), request_body = RollForwardRequest,
    responses(
        (status = 201, body = RollForwardResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn roll_budget_forward(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<BudgetId>,
    ApiJson(req): ApiJson<RollForwardRequest>,
) -> Result<(StatusCode, Json<RollForwardResponse>)> {
    let mut v = Validator::new();
    let carry = match req.carry.as_deref() {
        None | Some("none") => Carry::None,
        Some("unspent") => Carry::Unspent,
        Some("all") => Carry::Both,
        Some(other) => {
            v.error("carry", format!("'{other}' is not one of none, unspent, all"));
            Carry::None
        }
    };
    let name = req.name.as_deref().map(|n| check_name(&mut v, n));
    v.finish()?;
    let budget = {
        let mut conn = state.db.conn().await?;
        repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?
    };
    let (start, end) = planning::next_period(budget.period_start, budget.period_end)
        .ok_or_else(|| AppError::Conflict("the next period is beyond the supported dates".into()))?;
    // The whole period counts: what was left is what the period's end will show.
    let status = status_of(&state, user.id, &budget, budget.period_end, &[]).await?;
    let (allocations, dropped) = planning::rolled_allocations(&status, carry);
    let carried: BTreeMap<Category, Money> = status
        .categories
        .iter()
        .filter_map(|c| {
            let next = allocations.get(&c.category).copied().unwrap_or(Money::ZERO);
            let delta = next.checked_sub(c.allocated)?;
            (!delta.is_zero() && !dropped.contains(&c.category)).then(|| (c.category.clone(), delta))
        })
        .collect();
    let name = name.flatten().unwrap_or_else(|| budget.name.clone());
    let allocations = Allocations::new(allocations).map_err(|e| AppError::Conflict(e.to_string()))?;
    let mut tx = state.db.begin().await?;
    if repo::current(tx.c(), user.id, start).await?.iter().any(|b| b.name == name && b.period_start == start) {
        return Err(AppError::Conflict(format!(
            "a budget named '{name}' already starts on {start}; it was rolled forward before"
        )));
    }
    let next =
        repo::create(tx.c(), user.id, &NewBudget { name, period_start: start, period_end: end, allocations }).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(RollForwardResponse { budget: next.into(), carried, dropped })))
}
