//! `/api/v1/goals`: financial goals (the seed's `financial_goals`), contributions, auto-tracking of a
//! linked category, automatic ACHIEVED status, and a projection: what it takes to make the deadline,
//! and when the goal is reached at the pace of the last three months.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Months, NaiveDate};
use magpie_db::goals::{self as repo, Contribution, Goal, GoalPatch, NewGoal};
use magpie_domain::{Category, GoalId, GoalStatus, Money, Timestamp, input};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::validate::{Validator, double_option};
use crate::planning::{self, GoalProjection};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_goals, create_goal))
        .routes(routes!(get_goal, update_goal, delete_goal))
        .routes(routes!(list_contributions, add_contribution))
        .routes(routes!(delete_contribution))
}

/// A goal as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoalResponse {
    /// Id.
    pub id: GoalId,
    /// Name.
    pub name: String,
    /// Target, > 0.
    pub target_amount: Money,
    /// Progress: contributions plus auto-tracked money.
    pub current_amount: Money,
    /// Sum of the contributions.
    pub contributed: Money,
    /// Auto-tracked: the linked category's expenses minus its income since the tracking start.
    pub tracked: Money,
    /// Optional deadline.
    #[schema(value_type = Option<String>, format = Date)]
    pub deadline: Option<NaiveDate>,
    /// Linked category for auto-tracking.
    pub category: Option<Category>,
    /// Auto-tracking counts from this day (null: from the goal's creation).
    #[schema(value_type = Option<String>, format = Date)]
    pub tracking_start: Option<NaiveDate>,
    /// ACTIVE, ACHIEVED (automatic) or ARCHIVED (by you).
    pub status: GoalStatus,
    /// Where it is heading.
    pub projection: GoalProjection,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// The goal with its money broken down and its projection on `today`.
pub async fn describe(state: &AppState, goal: Goal, today: NaiveDate) -> Result<GoalResponse> {
    let mut conn = state.db.conn().await?;
    let all = repo::progress(conn.c(), &goal, None, None).await?;
    let since = today.checked_sub_months(Months::new(3)).and_then(|d| d.succ_opt()).unwrap_or(today);
    let recent = repo::progress(conn.c(), &goal, Some(since), Some(today)).await?;
    let inflow = recent.contributed.checked_add(recent.tracked).unwrap_or(Money::ZERO);
    let projection = planning::goal_projection(goal.target_amount, goal.current_amount, goal.deadline, today, inflow);
    Ok(GoalResponse {
        id: goal.id,
        name: goal.name,
        target_amount: goal.target_amount,
        current_amount: goal.current_amount,
        contributed: all.contributed,
        tracked: all.tracked,
        deadline: goal.deadline,
        category: goal.category,
        tracking_start: goal.tracking_start,
        status: goal.status,
        projection,
        created_at: goal.created_at,
        updated_at: goal.updated_at,
    })
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A new goal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGoalRequest {
    /// Name (1 to 100 characters).
    #[schema(example = "Emergency fund")]
    pub name: String,
    /// Target (> 0, at most two decimals), a string or a JSON number.
    #[schema(value_type = String, example = "5000.00")]
    pub target_amount: serde_json::Value,
    /// Optional deadline, `YYYY-MM-DD`.
    #[serde(default)]
    pub deadline: Option<String>,
    /// Optional category to track: its expenses count towards the goal (its income counts against).
    #[serde(default)]
    #[schema(example = "Savings")]
    pub category: Option<String>,
    /// Auto-tracking counts from this day (default: today).
    #[serde(default)]
    pub tracking_start: Option<String>,
}

/// Changes to a goal; absent fields stay, `null` clears an optional one.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateGoalRequest {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Target.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub target_amount: Option<serde_json::Value>,
    /// Deadline (`null` removes it).
    #[serde(default, deserialize_with = "double_option")]
    pub deadline: Option<Option<String>>,
    /// Tracked category (`null` stops tracking).
    #[serde(default, deserialize_with = "double_option")]
    pub category: Option<Option<String>>,
    /// Tracking start (`null`: from the goal's creation).
    #[serde(default, deserialize_with = "double_option")]
    pub tracking_start: Option<Option<String>>,
    /// `ARCHIVED` to archive, `ACTIVE` to bring an archived goal back (ACHIEVED is set automatically).
    #[serde(default)]
    pub status: Option<String>,
}

fn check_name(v: &mut Validator, name: &str) -> Option<String> {
    v.check("name", magpie_domain::input::name(name))
}

fn parse_target(v: &mut Validator, value: &serde_json::Value) -> Option<Money> {
    let m = serde_json::from_value::<Money>(value.clone()).map_err(|e| magpie_domain::ParseError::new(e.to_string()));
    let m = m.and_then(|m| {
        if m.is_negative() || m.is_zero() {
            Err(magpie_domain::ParseError::new("target_amount must be more than 0"))
        } else if m > Money::MAX_COLUMN {
            Err(magpie_domain::ParseError::new("target_amount must be at most 9999999999.99"))
        } else {
            Ok(m)
        }
    });
    v.check("target_amount", m)
}

/// Filters of the goal list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GoalsQuery {
    /// Only goals of this status (ACTIVE: the seed's query 4).
    pub status: Option<String>,
}

/// The user's goals, nearest deadline first, each with its projection.
#[utoipa::path(
    get, path = "/goals", tag = "goals", security(("bearer" = [])), params(GoalsQuery),
    responses(
        (status = 200, body = Vec<GoalResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_goals(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<GoalsQuery>,
) -> Result<Json<Vec<GoalResponse>>> {
    let mut v = Validator::new();
    let status = q.status.as_deref().and_then(|s| v.check("query.status", s.parse::<GoalStatus>()));
    v.finish()?;
    let goals = {
        let mut conn = state.db.conn().await?;
        repo::list(conn.c(), user.id, status).await?
    };
    let day = today();
    let mut out = Vec::with_capacity(goals.len());
    for g in goals {
        out.push(describe(&state, g, day).await?);
    }
    Ok(Json(out))
}

/// Create a goal. With a category, the category's transactions from `tracking_start` (default today)
/// count towards it at once.
#[utoipa::path(
    post, path = "/goals", tag = "goals", security(("bearer" = [])), request_body = CreateGoalRequest,
    responses(
        (status = 201, body = GoalResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_goal(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateGoalRequest>,
) -> Result<(StatusCode, Json<GoalResponse>)> {
    let mut v = Validator::new();
    let name = check_name(&mut v, &req.name);
    let target = parse_target(&mut v, &req.target_amount);
    let deadline = req.deadline.as_deref().and_then(|d| v.check("deadline", input::transaction_date(d)));
    let category = req.category.as_deref().and_then(|c| v.check("category", Category::parse(c)));
    let tracking_start =
        req.tracking_start.as_deref().and_then(|d| v.check("tracking_start", input::transaction_date(d)));
    if tracking_start.is_some() && req.category.is_none() {
        v.error("tracking_start", "tracking_start needs a category to track");
    }
    v.finish()?;
    let (Some(name), Some(target_amount)) = (name, target) else { unreachable!("validated") };
    let mut tx = state.db.begin().await?;
    let goal =
        repo::create(tx.c(), user.id, &NewGoal { name, target_amount, deadline, category, tracking_start }).await?;
    let goal = repo::recompute(tx.c(), &goal).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(describe(&state, goal, today()).await?)))
}

/// One goal, with its money broken down and its projection.
#[utoipa::path(
    get, path = "/goals/{id}", tag = "goals", security(("bearer" = [])),
    params(("id" = GoalId, Path, description = "Goal id")),
    responses(
        (status = 200, body = GoalResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_goal(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<GoalId>,
) -> Result<Json<GoalResponse>> {
    let goal = {
        let mut conn = state.db.conn().await?;
        repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?
    };
    Ok(Json(describe(&state, goal, today()).await?))
}

/// Change a goal. Its amount and status follow (a new target can make it ACHIEVED or ACTIVE again).
#[utoipa::path(
    patch, path = "/goals/{id}", tag = "goals", security(("bearer" = [])),
    params(("id" = GoalId, Path, description = "Goal id")), request_body = UpdateGoalRequest,
    responses(
        (status = 200, body = GoalResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_goal(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<GoalId>,
    ApiJson(req): ApiJson<UpdateGoalRequest>,
) -> Result<Json<GoalResponse>> {
    let mut v = Validator::new();
    let mut patch = GoalPatch {
        name: req.name.as_deref().and_then(|n| check_name(&mut v, n)),
        target_amount: req.target_amount.as_ref().and_then(|t| parse_target(&mut v, t)),
        ..GoalPatch::default()
    };
    if let Some(d) = &req.deadline {
        patch.deadline = Some(d.as_deref().and_then(|d| v.check("deadline", input::transaction_date(d))));
    }
    if let Some(c) = &req.category {
        patch.category = Some(c.as_deref().and_then(|c| v.check("category", Category::parse(c))));
    }
    if let Some(d) = &req.tracking_start {
        patch.tracking_start = Some(d.as_deref().and_then(|d| v.check("tracking_start", input::transaction_date(d))));
    }
    match req.status.as_deref() {
        None => {}
        Some("ARCHIVED") => patch.status = Some(GoalStatus::Archived),
        // Un-archiving: ACTIVE, then the recompute below makes it ACHIEVED if the target is reached.
        Some("ACTIVE") => patch.status = Some(GoalStatus::Active),
        Some("ACHIEVED") => v.error("status", "ACHIEVED is set automatically when the target is reached"),
        Some(other) => v.error("status", format!("'{other}' is not one of ACTIVE, ARCHIVED")),
    }
    v.finish()?;
    let mut tx = state.db.begin().await?;
    let before = repo::lock(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    // Un-archiving an ACHIEVED goal is not a thing: only an archived goal becomes ACTIVE this way.
    if patch.status == Some(GoalStatus::Active) && before.status != GoalStatus::Archived {
        patch.status = None;
    }
    let goal = repo::update(tx.c(), user.id, id, &patch).await?.ok_or(AppError::NotFound)?;
    let goal = repo::recompute(tx.c(), &goal).await?;
    tx.commit().await?;
    Ok(Json(describe(&state, goal, today()).await?))
}

/// Delete a goal (and its contributions).
#[utoipa::path(
    delete, path = "/goals/{id}", tag = "goals", security(("bearer" = [])),
    params(("id" = GoalId, Path, description = "Goal id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_goal(State(state): State<AppState>, user: AuthUser, Path(id): Path<GoalId>) -> Result<StatusCode> {
    let mut conn = state.db.conn().await?;
    if !repo::delete(conn.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A contribution as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContributionResponse {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// Amount.
    pub amount: Money,
    /// Date.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Note.
    pub note: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

impl From<Contribution> for ContributionResponse {
    fn from(c: Contribution) -> Self {
        ContributionResponse { id: c.id, amount: c.amount, date: c.date, note: c.note, created_at: c.created_at }
    }
}

/// A new contribution.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContributionRequest {
    /// Amount (> 0, at most two decimals), a string or a JSON number.
    #[schema(value_type = String, example = "250.00")]
    pub amount: serde_json::Value,
    /// `YYYY-MM-DD` (default today).
    #[serde(default)]
    pub date: Option<String>,
    /// A note (at most 200 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// A contribution and the goal after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContributionAdded {
    /// The contribution.
    pub contribution: ContributionResponse,
    /// The goal.
    pub goal: GoalResponse,
}

/// The goal's contributions, newest first.
#[utoipa::path(
    get, path = "/goals/{id}/contributions", tag = "goals", security(("bearer" = [])),
    params(("id" = GoalId, Path, description = "Goal id")),
    responses(
        (status = 200, body = Vec<ContributionResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_contributions(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<GoalId>,
) -> Result<Json<Vec<ContributionResponse>>> {
    let mut conn = state.db.conn().await?;
    repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(repo::contributions(conn.c(), user.id, id).await?.into_iter().map(Into::into).collect()))
}

/// Put money towards a goal. Concurrent contributions are applied one after the other (the goal is
/// locked), so none is lost; the goal becomes ACHIEVED when it reaches its target.
#[utoipa::path(
    post, path = "/goals/{id}/contributions", tag = "goals", security(("bearer" = [])),
    params(("id" = GoalId, Path, description = "Goal id")), request_body = ContributionRequest,
    responses(
        (status = 201, body = ContributionAdded),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn add_contribution(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<GoalId>,
    ApiJson(req): ApiJson<ContributionRequest>,
) -> Result<(StatusCode, Json<ContributionAdded>)> {
    let mut v = Validator::new();
    let amount = serde_json::from_value::<Money>(req.amount.clone())
        .map_err(|e| magpie_domain::ParseError::new(e.to_string()))
        .and_then(input::transaction_amount)
        .and_then(
            |m| if m.is_zero() { Err(magpie_domain::ParseError::new("amount must be more than 0")) } else { Ok(m) },
        );
    let amount = v.check("amount", amount);
    let date = match req.date.as_deref() {
        Some(d) => v.check("date", input::transaction_date(d)),
        None => Some(today()),
    };
    let note = v.check("note", input::note(req.note.as_deref())).flatten();
    v.finish()?;
    let (Some(amount), Some(date)) = (amount, date) else { unreachable!("validated") };
    let mut tx = state.db.begin().await?;
    let goal = repo::lock(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    let contribution = repo::add_contribution(tx.c(), user.id, id, amount, date, note.as_deref()).await?;
    let goal = repo::recompute(tx.c(), &goal).await?;
    tx.commit().await?;
    let goal = describe(&state, goal, today()).await?;
    Ok((StatusCode::CREATED, Json(ContributionAdded { contribution: contribution.into(), goal })))
}

/// Remove a contribution; the goal's amount and status follow (ACTIVE again below the target).
#[utoipa::path(
    delete, path = "/goals/{id}/contributions/{contribution_id}", tag = "goals", security(("bearer" = [])),
    params(
        ("id" = GoalId, Path, description = "Goal id"),
        ("contribution_id" = String, Path, format = Uuid, description = "Contribution id"),
    ),
    responses(
        (status = 200, body = GoalResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_contribution(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, contribution)): Path<(GoalId, uuid::Uuid)>,
) -> Result<Json<GoalResponse>> {
    let mut tx = state.db.begin().await?;
    let goal = repo::lock(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    if !repo::delete_contribution(tx.c(), user.id, id, contribution).await? {
        return Err(AppError::NotFound);
    }
    let goal = repo::recompute(tx.c(), &goal).await?;
    tx.commit().await?;
    Ok(Json(describe(&state, goal, today()).await?))
}
