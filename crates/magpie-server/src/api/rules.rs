//! `/api/v1/rules`: a person's categorization rules. They apply before remembered corrections and any
//! model, lowest `priority` first (then oldest), to new manual transactions, imports, syncs and
//! `POST /transactions/categorize`. Every condition a rule has must hold for it to match.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_db::rules::{self as repo, Rule, RuleFields};
use magpie_domain::{Category, Money, RuleId, RuleMatch, Timestamp, TransactionType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;
use crate::http::validate::{Validator, double_option};
use crate::ml::{MAX_PATTERN_CHARS, compile_regex};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, create_rule)).routes(routes!(get_rule, update_rule, delete_rule))
}

/// Most rules one user may have (each runs on every categorized row).
pub(crate) const MAX_RULES: usize = 500;

/// A rule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleResponse {
    /// Id.
    pub id: RuleId,
    /// A name for people.
    pub name: String,
    /// Lower runs first.
    pub priority: i32,
    /// CONTAINS, EXACT or REGEX, on the description, ignoring case.
    pub match_kind: RuleMatch,
    /// The text or regular expression.
    pub pattern: String,
    /// Amount at least (inclusive).
    pub min_amount: Option<Money>,
    /// Amount at most (inclusive).
    pub max_amount: Option<Money>,
    /// Only INCOME or only EXPENSE transactions.
    #[serde(rename = "type")]
    pub kind: Option<TransactionType>,
    /// The category it gives.
    pub category: Category,
    /// Whether it applies.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl From<Rule> for RuleResponse {
    fn from(r: Rule) -> Self {
        RuleResponse {
            id: r.id,
            name: r.name,
            priority: r.priority,
            match_kind: r.match_kind,
            pattern: r.pattern,
            min_amount: r.min_amount,
            max_amount: r.max_amount,
            kind: r.kind,
            category: r.category,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A new rule.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleRequest {
    /// A name (defaults to the pattern).
    #[serde(default)]
    #[schema(example = "Coffee")]
    pub name: Option<String>,
    /// Lower runs first (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// CONTAINS (default), EXACT or REGEX.
    #[serde(default)]
    #[schema(example = "CONTAINS")]
    pub match_kind: Option<String>,
    /// Text or regular expression matched against the description, ignoring case.
    #[schema(example = "starbucks")]
    pub pattern: String,
    /// Amount at least.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "1.00")]
    pub min_amount: Option<serde_json::Value>,
    /// Amount at most.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "20.00")]
    pub max_amount: Option<serde_json::Value>,
    /// INCOME or EXPENSE.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The category to give.
    #[schema(example = "Coffee Shops")]
    pub category: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes to a rule; absent fields stay, `null` clears an optional condition.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleRequest {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Match kind.
    #[serde(default)]
    pub match_kind: Option<String>,
    /// Pattern.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Amount at least (`null` removes the condition).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub min_amount: Option<Option<serde_json::Value>>,
    /// Amount at most (`null` removes the condition).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub max_amount: Option<Option<serde_json::Value>>,
    /// Type (`null` removes the condition).
    #[serde(default, rename = "type", deserialize_with = "double_option")]
    pub kind: Option<Option<String>>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn parse_money(v: &serde_json::Value) -> std::result::Result<Money, magpie_domain::ParseError> {
    let m: Money = serde_json::from_value(v.clone()).map_err(|e| magpie_domain::ParseError::new(e.to_string()))?;
    magpie_domain::input::transaction_amount(m)
}

/// Check a rule's fields as a whole (after a patch is applied), reporting every problem.
pub(crate) fn check_fields(v: &mut Validator, f: &RuleFields) {
    if let Err(e) = magpie_domain::input::name(&f.name) {
        v.error("name", e.to_string());
    }
    let pattern_len = f.pattern.chars().count();
    if f.pattern.trim().is_empty() || pattern_len > MAX_PATTERN_CHARS {
        v.error("pattern", format!("pattern must be 1 to {MAX_PATTERN_CHARS} characters"));
    } else if f.match_kind == RuleMatch::Regex
        && let Err(e) = compile_regex(&f.pattern)
    {
        v.error("pattern", e);
    }
    if f.pattern.contains('\0') {
        v.error("pattern", "pattern must not contain NUL characters");
    }
    if let (Some(min), Some(max)) = (f.min_amount, f.max_amount)
        && min > max
    {
        v.error("min_amount", "min_amount must not be more than max_amount");
    }
    if !(-1_000_000..=1_000_000).contains(&f.priority) {
        v.error("priority", "priority must be between -1000000 and 1000000");
    }
}

/// The user's rules, in the order they apply.
#[utoipa::path(
    get, path = "/rules", tag = "rules", security(("bearer" = [])),
    responses((status = 200, body = Vec<RuleResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_rules(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<RuleResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::list(conn.c(), user.id).await?.into_iter().map(Into::into).collect()))
}

/// Create a rule. It applies to transactions categorized from now on; `POST /transactions/categorize`
/// applies it to existing ones.
#[utoipa::path(
    post, path = "/rules", tag = "rules", security(("bearer" = [])), request_body = CreateRuleRequest,
    responses(
        (status = 201, body = RuleResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Too many rules", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_rule(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateRuleRequest>,
) -> Result<(StatusCode, Json<RuleResponse>)> {
    let mut v = Validator::new();
    let match_kind = match req.match_kind.as_deref() {
        None => Some(RuleMatch::Contains),
        Some(m) => v.check("match_kind", m.parse::<RuleMatch>()),
    };
    let category = v.check("category", Category::parse(&req.category));
    let min_amount = req.min_amount.as_ref().and_then(|a| v.check("min_amount", parse_money(a)));
    let max_amount = req.max_amount.as_ref().and_then(|a| v.check("max_amount", parse_money(a)));
    let kind = req.kind.as_deref().and_then(|k| v.check("type", k.parse::<TransactionType>()));
    // Fallbacks only stand in for values already reported as errors, so that every other problem is
    // reported in the same response.
    let fields = RuleFields {
        name: req.name.clone().unwrap_or_else(|| req.pattern.chars().take(100).collect()),
        priority: req.priority.unwrap_or(100),
        match_kind: match_kind.unwrap_or(RuleMatch::Contains),
        pattern: req.pattern.clone(),
        min_amount,
        max_amount,
        kind,
        category: category.unwrap_or_else(Category::uncategorized),
        enabled: req.enabled.unwrap_or(true),
    };
    check_fields(&mut v, &fields);
    v.finish()?;
    let mut tx = state.db.begin().await?;
    if repo::list(tx.c(), user.id).await?.len() >= MAX_RULES {
        return Err(AppError::Conflict(format!("at most {MAX_RULES} rules; delete some first")));
    }
    let rule = repo::create(tx.c(), user.id, &fields).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// One rule.
#[utoipa::path(
    get, path = "/rules/{id}", tag = "rules", security(("bearer" = [])),
    params(("id" = RuleId, Path, description = "Rule id")),
    responses(
        (status = 200, body = RuleResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_rule(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<RuleId>,
) -> Result<Json<RuleResponse>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?.into()))
}

/// Change a rule.
#[utoipa::path(
    patch, path = "/rules/{id}", tag = "rules", security(("bearer" = [])),
    params(("id" = RuleId, Path, description = "Rule id")), request_body = UpdateRuleRequest,
    responses(
        (status = 200, body = RuleResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_rule(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<RuleId>,
    ApiJson(req): ApiJson<UpdateRuleRequest>,
) -> Result<Json<RuleResponse>> {
    let mut tx = state.db.begin().await?;
    let current = repo::get(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    let mut v = Validator::new();
    let mut f = RuleFields {
        name: current.name,
        priority: current.priority,
        match_kind: current.match_kind,
        pattern: current.pattern,
        min_amount: current.min_amount,
        max_amount: current.max_amount,
        kind: current.kind,
        category: current.category,
        enabled: current.enabled,
    };
    if let Some(name) = req.name {
        f.name = name;
    }
    if let Some(p) = req.priority {
        f.priority = p;
    }
    if let Some(m) = req.match_kind.as_deref()
        && let Some(m) = v.check("match_kind", m.parse::<RuleMatch>())
    {
        f.match_kind = m;
    }
    if let Some(p) = req.pattern {
        f.pattern = p;
    }
    if let Some(a) = req.min_amount {
        f.min_amount = a.as_ref().and_then(|a| v.check("min_amount", parse_money(a)));
    }
    if let Some(a) = req.max_amount {
        f.max_amount = a.as_ref().and_then(|a| v.check("max_amount", parse_money(a)));
    }
    if let Some(k) = req.kind {
        f.kind = k.as_deref().and_then(|k| v.check("type", k.parse::<TransactionType>()));
    }
    if let Some(c) = req.category.as_deref()
        && let Some(c) = v.check("category", Category::parse(c))
    {
        f.category = c;
    }
    if let Some(e) = req.enabled {
        f.enabled = e;
    }
    check_fields(&mut v, &f);
    v.finish()?;
    let rule = repo::update(tx.c(), user.id, id, &f).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(rule.into()))
}

/// Delete a rule. Transactions it categorized keep their category.
#[utoipa::path(
    delete, path = "/rules/{id}", tag = "rules", security(("bearer" = [])),
    params(("id" = RuleId, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_rule(State(state): State<AppState>, user: AuthUser, Path(id): Path<RuleId>) -> Result<StatusCode> {
    let mut conn = state.db.conn().await?;
    if !repo::delete(conn.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
