//! `/api/v1/categories`: the taxonomy a user works with, and renaming or merging categories.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use magpie_db::{budgets, goals, transactions};
use magpie_domain::{Category, taxonomy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiJson;
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_categories)).routes(routes!(rename_category))
}

/// A category and how much it is used.
#[derive(Serialize, ToSchema)]
pub struct CategoryInfo {
    /// Name.
    pub name: String,
    /// Live transactions in it.
    pub transaction_count: i64,
    /// Part of the default taxonomy.
    pub is_default: bool,
}

/// The default taxonomy plus every category the user uses, with counts, by name.
#[utoipa::path(
    get, path = "/categories", tag = "categories", security(("bearer" = [])),
    responses((status = 200, body = Vec<CategoryInfo>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_categories(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<CategoryInfo>>> {
    let mut conn = state.db.conn().await?;
    let mut all: BTreeMap<String, i64> = taxonomy::DEFAULT_CATEGORIES.iter().map(|d| (d.name.to_owned(), 0)).collect();
    for (category, count) in transactions::category_counts(conn.c(), user.id).await? {
        all.insert(category.as_str().to_owned(), count);
    }
    Ok(Json(
        all.into_iter()
            .map(|(name, transaction_count)| CategoryInfo {
                is_default: taxonomy::is_default(&name),
                name,
                transaction_count,
            })
            .collect(),
    ))
}

/// Rename `from` to `to`; when `to` is already used this merges the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The category to rename.
    #[schema(example = "Food")]
    pub from: String,
    /// Its new name (an existing category merges).
    #[schema(example = "Groceries")]
    pub to: String,
}

/// What a rename changed.
#[derive(Serialize, ToSchema)]
pub struct RenameResponse {
    /// Transactions moved (soft-deleted ones included).
    pub transactions: u64,
    /// Budgets whose allocations changed (merged amounts are added).
    pub budgets: u64,
    /// Goals relinked.
    pub goals: u64,
}

/// Rename or merge a category across transactions, budget allocations and goals, atomically.
#[utoipa::path(
    post, path = "/categories/rename", tag = "categories", security(("bearer" = [])), request_body = RenameRequest,
    responses(
        (status = 200, body = RenameResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rename_category(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<RenameRequest>,
) -> Result<Json<RenameResponse>> {
    let mut v = Validator::new();
    let from = v.check("from", Category::parse(&req.from));
    let to = v.check("to", Category::parse(&req.to));
    if let (Some(f), Some(t)) = (&from, &to)
        && f == t
    {
        v.error("to", "to must differ from from");
    }
    v.finish()?;
    let (from, to) = (from.expect("validated"), to.expect("validated"));
    let mut tx = state.db.begin().await?;
    let moved = transactions::rename_category(tx.c(), user.id, &from, &to).await?;
    let relinked = goals::rename_category(tx.c(), user.id, &from, &to).await?;
    // The categorizer's own memory of the user's choices follows, or it would bring the old name back.
    magpie_db::rules::rename_category(tx.c(), user.id, &from, &to).await?;
    magpie_db::memory::rename_category(tx.c(), user.id, &from, &to).await?;
    let mut budgets_changed = 0;
    for budget in budgets::list(tx.c(), user.id).await? {
        let renamed = budget
            .allocations
            .rename_category(&from, &to)
            .map_err(|e| AppError::field("to", format!("budget '{}': {e}", budget.name)))?;
        if let Some(allocations) = renamed {
            let new = budgets::NewBudget {
                name: budget.name.clone(),
                period_start: budget.period_start,
                period_end: budget.period_end,
                allocations,
            };
            budgets::update(tx.c(), user.id, budget.id, &new).await?;
            budgets_changed += 1;
        }
    }
    // Goals linked to either name now track a different set of transactions.
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    Ok(Json(RenameResponse { transactions: moved, budgets: budgets_changed, goals: relinked }))
}
