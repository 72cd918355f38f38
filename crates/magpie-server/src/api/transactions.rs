//! `/api/v1/transactions`: the ledger. Create, read, update, soft delete and restore, filtered keyset
//! lists, and atomic bulk changes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use magpie_db::transactions::{self as repo, After, BulkChange, Deleted, Sort, Transaction, TransactionFilter};
use magpie_domain::{
    Category, CategorySource, Confidence, ConnectionId, ModelId, Money, Source, Timestamp, TransactionId,
    TransactionType, UserId, input,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::validate::Validator;
use crate::ml::{Categorizing, MemoryScope, Subject, Suggestion};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_transactions, create_transaction))
        .routes(routes!(get_transaction, update_transaction, delete_transaction))
        .routes(routes!(restore_transaction))
        .routes(routes!(bulk_change_transactions))
        .routes(routes!(categorize_transactions))
}

/// A transaction as the API shows it. Money is a string with two decimals.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionResponse {
    /// Id.
    pub id: TransactionId,
    /// Amount, always >= 0 (`type` gives the direction).
    pub amount: Money,
    /// Booking date, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date, example = "2026-03-31")]
    pub date: NaiveDate,
    /// Description.
    pub description: String,
    /// Category.
    pub category: Category,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// MANUAL, API or FILE_IMPORT.
    pub source: Source,
    /// The model's calibrated probability of its top category (also when it was too unsure to apply
    /// it and the category stayed `Uncategorized`); null when a person, a rule or a remembered
    /// correction chose the category.
    pub confidence_score: Option<Confidence>,
    /// Who chose the category: USER, RULE, MEMORY (a remembered correction), MODEL, PROVIDER (the bank
    /// aggregator, with its confidence) or NONE.
    pub category_source: CategorySource,
    /// Not yet booked by the bank (synced transactions only): it posts, possibly with another amount,
    /// or vanishes at a later sync.
    pub pending: bool,
    /// For transactions that need review: the model's three most likely categories (in lists with
    /// `needs_review=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestions: Option<Vec<Suggestion>>,
    /// The bank connection it came from.
    pub connection_id: Option<ConnectionId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Soft-delete time (null for live transactions).
    pub deleted_at: Option<Timestamp>,
}

impl From<Transaction> for TransactionResponse {
    fn from(t: Transaction) -> Self {
        TransactionResponse {
            id: t.id,
            amount: t.amount,
            date: t.date,
            description: t.description,
            category: t.category,
            kind: t.kind,
            source: t.source,
            confidence_score: t.confidence_score,
            category_source: t.category_source,
            pending: t.pending,
            suggestions: None,
            connection_id: t.connection_id,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
        }
    }
}

/// A manual transaction.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransactionRequest {
    /// Amount >= 0 with at most two decimals, as a string (`"12.30"`) or a JSON number.
    #[schema(value_type = String, example = "12.30")]
    pub amount: serde_json::Value,
    /// `YYYY-MM-DD`.
    #[schema(example = "2026-03-31")]
    pub date: String,
    /// Description (1 to 500 characters).
    #[schema(example = "Farmers market")]
    pub description: String,
    /// Category (at most 50 characters). When absent the categorizer chooses (rules, remembered
    /// corrections, then the model), or leaves it `Uncategorized` for review.
    #[serde(default)]
    #[schema(example = "Groceries")]
    pub category: Option<String>,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    #[schema(example = "EXPENSE")]
    pub kind: String,
}

/// Changes to a transaction; absent fields stay as they are. Setting `category` records a person's
/// decision and clears the model's confidence.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateTransactionRequest {
    /// New amount.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "12.30")]
    pub amount: Option<serde_json::Value>,
    /// New date.
    #[serde(default)]
    pub date: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New category.
    #[serde(default)]
    pub category: Option<String>,
    /// New type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

fn parse_amount(v: &serde_json::Value) -> Result<Money, magpie_domain::ParseError> {
    let m: Money = serde_json::from_value(v.clone()).map_err(|e| magpie_domain::ParseError::new(e.to_string()))?;
    input::transaction_amount(m)
}

/// List filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// On or after this date (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// On or before this date.
    pub to: Option<String>,
    /// Only these categories (repeat the parameter for several).
    #[serde(default)]
    pub category: Vec<String>,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// MANUAL, API or FILE_IMPORT.
    pub source: Option<String>,
    /// Amount at least.
    pub min_amount: Option<String>,
    /// Amount at most.
    pub max_amount: Option<String>,
    /// Case-insensitive text in the description.
    pub q: Option<String>,
    /// From this bank connection.
    pub connection_id: Option<ConnectionId>,
    /// Only transactions that need a person's review (uncategorized).
    pub needs_review: Option<bool>,
    /// `exclude` (default), `only` (the audit view of soft-deleted rows) or `include`.
    pub deleted: Option<String>,
    /// `-date` (default, newest first), `date`, `-amount`, `amount`.
    pub sort: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page.
#[derive(Serialize, ToSchema)]
pub struct TransactionPage {
    /// The transactions of this page.
    pub items: Vec<TransactionResponse>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn sort_name(sort: Sort) -> &'static str {
    match sort {
        Sort::DateDesc => "-date",
        Sort::DateAsc => "date",
        Sort::AmountDesc => "-amount",
        Sort::AmountAsc => "amount",
    }
}

/// Cursors are opaque to clients: base64url of `sort|value|id`. The sort is inside so a cursor cannot be
/// replayed against another order.
fn encode_cursor(sort: Sort, after: After) -> String {
    let raw = match after {
        After::Date(d, id) => format!("{}|{d}|{id}", sort_name(sort)),
        After::Amount(a, id) => format!("{}|{a}|{id}", sort_name(sort)),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str, sort: Sort) -> Option<After> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let mut parts = raw.split('|');
    let (s, value, id) = (parts.next()?, parts.next()?, parts.next()?);
    if s != sort_name(sort) || parts.next().is_some() {
        return None;
    }
    let id: TransactionId = id.parse().ok()?;
    match sort {
        Sort::DateDesc | Sort::DateAsc => Some(After::Date(value.parse().ok()?, id)),
        Sort::AmountDesc | Sort::AmountAsc => Some(After::Amount(value.parse().ok()?, id)),
    }
}

/// Parsed list parameters.
pub struct ListParams {
    /// Filter.
    pub filter: TransactionFilter,
    /// Order.
    pub sort: Sort,
    /// Page start.
    pub after: Option<After>,
    /// Page size.
    pub limit: u32,
}

impl ListQuery {
    /// Check every parameter, reporting all problems at once.
    pub fn parse(self) -> Result<ListParams> {
        let mut v = Validator::new();
        let from = self.from.as_deref().and_then(|s| v.check("query.from", input::transaction_date(s)));
        let to = self.to.as_deref().and_then(|s| v.check("query.to", input::transaction_date(s)));
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            v.error("query.from", "from must not be after to");
        }
        let categories: Vec<Category> =
            self.category.iter().filter_map(|c| v.check("query.category", Category::parse(c))).collect();
        let kind = self.kind.as_deref().and_then(|s| v.check("query.type", s.parse::<TransactionType>()));
        let source = self.source.as_deref().and_then(|s| v.check("query.source", s.parse::<Source>()));
        let min_amount = self.min_amount.as_deref().and_then(|s| v.check("query.min_amount", Money::parse(s)));
        let max_amount = self.max_amount.as_deref().and_then(|s| v.check("query.max_amount", Money::parse(s)));
        let text = self.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
            v.error("query.q", "search text must be at most 200 characters");
        }
        let deleted = match self.deleted.as_deref() {
            None | Some("exclude") => Deleted::Exclude,
            Some("only") => Deleted::Only,
            Some("include") => Deleted::Include,
            Some(other) => {
                v.error("query.deleted", format!("'{other}' is not one of exclude, only, include"));
                Deleted::Exclude
            }
        };
        let sort = match self.sort.as_deref() {
            None | Some("-date") => Sort::DateDesc,
            Some("date") => Sort::DateAsc,
            Some("-amount") => Sort::AmountDesc,
            Some("amount") => Sort::AmountAsc,
            Some(other) => {
                v.error("query.sort", format!("'{other}' is not one of -date, date, -amount, amount"));
                Sort::DateDesc
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            v.error("query.limit", "limit must be between 1 and 500");
        }
        let after = match self.cursor.as_deref() {
            Some(c) => {
                let after = decode_cursor(c, sort);
                if after.is_none() {
                    v.error("query.cursor", "the cursor is not valid for this sort order; start again without it");
                }
                after
            }
            None => None,
        };
        v.finish()?;
        Ok(ListParams {
            filter: TransactionFilter {
                from,
                to,
                categories,
                kind,
                source,
                min_amount,
                max_amount,
                text,
                connection_id: self.connection_id,
                needs_review: self.needs_review.unwrap_or(false),
                deleted,
            },
            sort,
            after,
            limit,
        })
    }
}

/// List transactions, newest first by default, one page at a time.
#[utoipa::path(
    get, path = "/transactions", tag = "transactions", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = TransactionPage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<TransactionPage>> {
    let params = query.parse()?;
    Ok(Json(list_page(&state, user.id, &params).await?))
}

/// One page for `params` (shared with the web app).
pub async fn list_page(state: &AppState, user: UserId, params: &ListParams) -> Result<TransactionPage> {
    let mut conn = state.db.conn().await?;
    // One extra row tells whether there is a next page without a count query.
    let mut rows = repo::list(conn.c(), user, &params.filter, params.sort, params.after, params.limit + 1).await?;
    let next_cursor = if rows.len() > params.limit as usize {
        rows.truncate(params.limit as usize);
        rows.last().map(|t| encode_cursor(params.sort, After::of(t, params.sort)))
    } else {
        None
    };
    let mut items: Vec<TransactionResponse> = rows.into_iter().map(Into::into).collect();
    if params.filter.needs_review && !items.is_empty() {
        let categorizing = Categorizing::load(&state.ml, conn.c(), user, MemoryScope::For(&[])).await?;
        for t in &mut items {
            let subject = Subject { description: &t.description, amount: t.amount, kind: t.kind, date: t.date };
            t.suggestions = Some(categorizing.suggestions(&subject, 3));
        }
    }
    Ok(TransactionPage { items, next_cursor })
}

/// Record a transaction by hand (`source` MANUAL).
#[utoipa::path(
    post, path = "/transactions", tag = "transactions", security(("bearer" = [])), request_body = CreateTransactionRequest,
    responses(
        (status = 201, body = TransactionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateTransactionRequest>,
) -> Result<(StatusCode, Json<TransactionResponse>)> {
    let mut v = Validator::new();
    let amount = v.check("amount", parse_amount(&req.amount));
    let date = v.check("date", input::transaction_date(&req.date));
    let description = v.check("description", input::description(&req.description));
    let category = match req.category.as_deref() {
        Some(c) => v.check("category", Category::parse(c)).map(Some),
        None => Some(None),
    };
    let kind = v.check("type", req.kind.parse::<TransactionType>());
    v.finish()?;
    let category = category.expect("validated");
    let (Some(amount), Some(date), Some(description), Some(kind)) = (amount, date, description, kind) else {
        unreachable!("validated");
    };
    let mut tx = state.db.begin().await?;
    let (category, confidence_score, category_source) = match category {
        Some(c) => (c, None, CategorySource::User),
        None => {
            let categorizing =
                Categorizing::load(&state.ml, tx.c(), user.id, MemoryScope::For(&[description.as_str()])).await?;
            let d = categorizing.decide(&Subject { description: &description, amount, kind, date });
            (d.category, d.confidence, d.source)
        }
    };
    let new = repo::NewTransaction {
        amount,
        date,
        description,
        category,
        kind,
        source: Source::Manual,
        confidence_score,
        category_source,
        connection_id: None,
    };
    let created = repo::create(tx.c(), user.id, &new).await?;
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    if created.category_source == CategorySource::User {
        crate::ml::train_if_due(&state, user.id, None).await;
    }
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One transaction.
#[utoipa::path(
    get, path = "/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = TransactionId, Path, description = "Transaction id")),
    responses(
        (status = 200, body = TransactionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TransactionId>,
) -> Result<Json<TransactionResponse>> {
    let mut conn = state.db.conn().await?;
    // Soft-deleted rows stay readable by id (the audit trail); lists hide them.
    let t = repo::get_including_deleted(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(t.into()))
}

/// Change a transaction. A soft-deleted transaction cannot be changed until it is restored.
#[utoipa::path(
    patch, path = "/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = TransactionId, Path, description = "Transaction id")), request_body = UpdateTransactionRequest,
    responses(
        (status = 200, body = TransactionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TransactionId>,
    ApiJson(req): ApiJson<UpdateTransactionRequest>,
) -> Result<Json<TransactionResponse>> {
    let mut v = Validator::new();
    let patch = repo::TransactionPatch {
        amount: req.amount.as_ref().and_then(|a| v.check("amount", parse_amount(a))),
        date: req.date.as_deref().and_then(|d| v.check("date", input::transaction_date(d))),
        description: req.description.as_deref().and_then(|d| v.check("description", input::description(d))),
        category: req.category.as_deref().and_then(|c| v.check("category", Category::parse(c))),
        kind: req.kind.as_deref().and_then(|k| v.check("type", k.parse::<TransactionType>())),
        // A person choosing the category overrides the model: its confidence no longer applies.
        confidence_score: req.category.as_ref().map(|_| None),
        category_source: req.category.as_ref().map(|_| CategorySource::User),
    };
    v.finish()?;
    let mut tx = state.db.begin().await?;
    let before = repo::get(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    let mut updated = repo::update(tx.c(), user.id, id, &patch).await?.ok_or(AppError::NotFound)?;
    let mut corrections = None;
    if let Some(category) = &patch.category {
        // A correction (or a confirmation of the model's guess) is learned at once for the merchant
        // and counted towards the next training.
        if before.category_source != CategorySource::User || before.category != *category {
            corrections = Some(crate::ml::learn(tx.c(), user.id, &[(updated.description.as_str(), category)]).await?);
        }
    } else if updated.category_source != CategorySource::User
        && (before.description != updated.description || before.amount != updated.amount || before.kind != updated.kind)
    {
        // What the category was decided from changed: decide again.
        let categorizing =
            Categorizing::load(&state.ml, tx.c(), user.id, MemoryScope::For(&[updated.description.as_str()])).await?;
        let d = categorizing.decide(&Subject {
            description: &updated.description,
            amount: updated.amount,
            kind: updated.kind,
            date: updated.date,
        });
        let change = repo::CategoryChange {
            id,
            category: d.category,
            confidence_score: d.confidence,
            category_source: d.source,
        };
        repo::set_categories(tx.c(), user.id, std::slice::from_ref(&change)).await?;
        updated = repo::get(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    }
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    if patch.category.is_some() {
        crate::ml::train_if_due(&state, user.id, corrections).await;
    }
    Ok(Json(updated.into()))
}

/// Soft-delete a transaction: it leaves every list, report, budget and goal but is kept for audit and
/// can be restored.
#[utoipa::path(
    delete, path = "/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = TransactionId, Path, description = "Transaction id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TransactionId>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    if !repo::soft_delete(tx.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a soft-deleted transaction.
#[utoipa::path(
    post, path = "/transactions/{id}/restore", tag = "transactions", security(("bearer" = [])),
    params(("id" = TransactionId, Path, description = "Transaction id")),
    responses(
        (status = 200, body = TransactionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deleted transaction", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn restore_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TransactionId>,
) -> Result<Json<TransactionResponse>> {
    let mut tx = state.db.begin().await?;
    if !repo::restore(tx.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    let t = repo::get(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    Ok(Json(t.into()))
}

/// A bulk change: all of the listed transactions change, or none does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `set_category`, `delete` or `restore`.
    #[schema(example = "set_category")]
    pub action: String,
    /// The transactions (1 to 1,000 ids).
    pub ids: Vec<TransactionId>,
    /// The category, for `set_category`.
    #[serde(default)]
    pub category: Option<String>,
}

/// Outcome of a bulk change.
#[derive(Serialize, ToSchema)]
pub struct BulkResponse {
    /// The action applied.
    pub action: String,
    /// Number of transactions changed.
    pub updated: u64,
}

/// Change many transactions at once: set their category, soft-delete them or restore them. Atomic: if any
/// id is not one of your transactions in the right state (live for `set_category` and `delete`, deleted
/// for `restore`), nothing changes and the answer is 404.
#[utoipa::path(
    post, path = "/transactions/bulk", tag = "transactions", security(("bearer" = [])), request_body = BulkRequest,
    responses(
        (status = 200, body = BulkResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn bulk_change_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>> {
    let mut v = Validator::new();
    let mut ids = req.ids.clone();
    ids.sort();
    ids.dedup();
    if ids.is_empty() || ids.len() > 1000 {
        v.error("ids", "give between 1 and 1000 transaction ids");
    }
    let change = match req.action.as_str() {
        "set_category" => match req.category.as_deref() {
            Some(c) => v.check("category", Category::parse(c)).map(BulkChange::SetCategory),
            None => {
                v.error("category", "set_category needs a category");
                None
            }
        },
        "delete" => Some(BulkChange::SoftDelete),
        "restore" => Some(BulkChange::Restore),
        other => {
            v.error("action", format!("'{other}' is not one of set_category, delete, restore"));
            None
        }
    };
    if req.category.is_some() && req.action != "set_category" {
        v.error("category", "category is only used by set_category");
    }
    v.finish()?;
    let change = change.expect("validated");
    let required = match change {
        BulkChange::Restore => Deleted::Only,
        _ => Deleted::Exclude,
    };
    let mut tx = state.db.begin().await?;
    let found = repo::count_owned(tx.c(), user.id, &ids, required).await?;
    if found != ids.len() as i64 {
        // Dropping the transaction changes nothing. Which ids are missing is not said: some may be
        // another user's, and their existence is not ours to reveal.
        return Err(AppError::NotFoundDetail(format!(
            "{} of the {} transactions do not exist or are not in a state this action applies to; nothing was changed.",
            ids.len() as i64 - found,
            ids.len()
        )));
    }
    let mut corrections = None;
    if let BulkChange::SetCategory(category) = &change {
        let rows = repo::list_by_ids(tx.c(), user.id, &ids).await?;
        let learned: Vec<(&str, &Category)> = rows
            .iter()
            .filter(|t| t.category_source != CategorySource::User || t.category != *category)
            .map(|t| (t.description.as_str(), category))
            .collect();
        if !learned.is_empty() {
            corrections = Some(crate::ml::learn(tx.c(), user.id, &learned).await?);
        }
    }
    let updated = repo::bulk_change(tx.c(), user.id, &ids, &change).await?;
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    if matches!(change, BulkChange::SetCategory(_)) {
        crate::ml::train_if_due(&state, user.id, corrections).await;
    }
    Ok(Json(BulkResponse { action: req.action, updated }))
}

/// Which transactions to categorize.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CategorizeRequest {
    /// These transactions (1 to 1,000). Without ids: the uncategorized ones, up to 10,000 per call
    /// (`remaining` says whether to call again).
    #[serde(default)]
    pub ids: Option<Vec<TransactionId>>,
}

/// What a categorization pass did.
#[derive(Serialize, ToSchema)]
pub struct CategorizeResponse {
    /// Transactions looked at (those whose category a person set are never touched and not counted).
    pub examined: u64,
    /// Given a category by a rule.
    pub by_rule: u64,
    /// Given a category by a remembered correction.
    pub by_memory: u64,
    /// Given a category by the model.
    pub by_model: u64,
    /// Left `Uncategorized` for review (nobody was sure enough).
    pub needs_review: u64,
    /// The model used, if any.
    pub model_id: Option<ModelId>,
    /// Whether uncategorized transactions remain beyond this call's limit.
    pub remaining: bool,
}

/// Most transactions categorized per call without ids.
const CATEGORIZE_LIMIT: i64 = 10_000;

/// Categorize transactions on demand: the uncategorized ones, or the given ones (again, e.g. after new
/// rules or a new model). Rules, remembered corrections and the model apply in that order; a category
/// a person set is never changed. Atomic.
#[utoipa::path(
    post, path = "/transactions/categorize", tag = "transactions", security(("bearer" = [])),
    request_body = CategorizeRequest,
    responses(
        (status = 200, body = CategorizeResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn categorize_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CategorizeRequest>,
) -> Result<Json<CategorizeResponse>> {
    let ids = match req.ids {
        Some(mut ids) => {
            ids.sort();
            ids.dedup();
            if ids.is_empty() || ids.len() > 1000 {
                let mut v = Validator::new();
                v.error("ids", "give between 1 and 1000 transaction ids, or none for every uncategorized one");
                v.finish()?;
            }
            Some(ids)
        }
        None => None,
    };
    let mut tx = state.db.begin().await?;
    let rows = repo::categorizable(tx.c(), user.id, ids.as_deref(), CATEGORIZE_LIMIT + 1).await?;
    let remaining = ids.is_none() && rows.len() as i64 > CATEGORIZE_LIMIT;
    let rows = &rows[..rows.len().min(CATEGORIZE_LIMIT as usize)];
    let categorizing = Categorizing::load(&state.ml, tx.c(), user.id, MemoryScope::All).await?;
    let mut out = CategorizeResponse {
        examined: rows.len() as u64,
        by_rule: 0,
        by_memory: 0,
        by_model: 0,
        needs_review: 0,
        model_id: categorizing.model.as_ref().map(|m| m.id),
        remaining,
    };
    let mut changes = Vec::with_capacity(rows.len());
    for t in rows {
        let d =
            categorizing.decide(&Subject { description: &t.description, amount: t.amount, kind: t.kind, date: t.date });
        // The bank aggregator's own category stays unless a rule or a remembered correction says
        // otherwise: recategorizing must not swap it for a model's guess.
        if t.category_source == CategorySource::Provider
            && matches!(d.source, CategorySource::Model | CategorySource::None)
        {
            continue;
        }
        if d.category.as_str() == Category::UNCATEGORIZED {
            out.needs_review += 1;
        } else {
            match d.source {
                CategorySource::Rule => out.by_rule += 1,
                CategorySource::Memory => out.by_memory += 1,
                CategorySource::Model => out.by_model += 1,
                CategorySource::User | CategorySource::Provider | CategorySource::None => {}
            }
        }
        if d.category != t.category || d.source != t.category_source || d.confidence != t.confidence_score {
            changes.push(repo::CategoryChange {
                id: t.id,
                category: d.category,
                confidence_score: d.confidence,
                category_source: d.source,
            });
        }
    }
    repo::set_categories(tx.c(), user.id, &changes).await?;
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    Ok(Json(out))
}
