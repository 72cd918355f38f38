//! Transactions: filters, search, pages, recategorizing inline (with the model's suggestions for the
//! ones that need review), bulk changes, soft delete and restore, and adding one by hand.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use magpie_domain::TransactionId;
use serde::Deserialize;

use crate::api::categories::list_categories;
use crate::api::transactions::{
    BulkRequest, CreateTransactionRequest, ListQuery, UpdateTransactionRequest, bulk_change_transactions,
    create_transaction, delete_transaction, list_page, restore_transaction, update_transaction,
};
use crate::app::AppState;
use crate::http::extract::ApiJson;
use crate::web::format::{money, urlencode};
use crate::web::session::WebUser;
use crate::web::{Layout, WebError, WebForm, filled, finish, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/transactions", get(show_transactions).post(add_transaction))
        .route("/transactions/bulk", post(bulk_transactions))
        .route("/transactions/{id}/category", post(set_category))
        .route("/transactions/{id}/delete", post(remove_transaction))
        .route("/transactions/{id}/restore", post(undelete_transaction))
}

/// The filters of the page, as its query string.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    review: String,
    #[serde(default)]
    deleted: String,
    #[serde(default)]
    cursor: String,
}

impl Filters {
    fn query(&self) -> ListQuery {
        ListQuery {
            q: filled(&self.q),
            category: filled(&self.category).into_iter().collect(),
            kind: filled(&self.kind),
            from: filled(&self.from),
            to: filled(&self.to),
            needs_review: (self.review == "1").then_some(true),
            deleted: (self.deleted == "only").then(|| "only".to_owned()),
            cursor: filled(&self.cursor),
            limit: Some(50),
            ..ListQuery::default()
        }
    }

    /// This page's URL without the cursor (where forms come back to).
    fn href(&self, cursor: Option<&str>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("category", &self.category),
            ("type", &self.kind),
            ("from", &self.from),
            ("to", &self.to),
            ("review", &self.review),
            ("deleted", &self.deleted),
        ] {
            if !v.trim().is_empty() {
                parts.push(format!("{k}={}", urlencode(v.trim())));
            }
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", urlencode(c)));
        }
        if parts.is_empty() { "/transactions".to_owned() } else { format!("/transactions?{}", parts.join("&")) }
    }
}

pub struct Row {
    pub id: String,
    pub date: String,
    pub description: String,
    pub category: String,
    pub amount: String,
    pub income: bool,
    pub pending: bool,
    pub source: String,
    pub who: String,
    pub deleted: bool,
    pub suggestions: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "transactions.html")]
struct TransactionsPage {
    l: Layout,
    f: Filters,
    rows: Vec<Row>,
    categories: Vec<String>,
    next: Option<String>,
    back: String,
    filtered: bool,
    today: String,
}

async fn show_transactions(
    State(state): State<AppState>,
    user: WebUser,
    Query(f): Query<Filters>,
) -> Result<Response, WebError> {
    let params = match f.query().parse() {
        Ok(p) => p,
        Err(e) => return Ok(crate::web::back_with_error(&state, e, "/transactions")),
    };
    let (listed, categories) =
        tokio::join!(list_page(&state, user.id(), &params), list_categories(State(state.clone()), user.auth));
    let listed = listed?;
    let categories = categories?.0.into_iter().map(|c| c.name).collect();
    let rows = listed
        .items
        .into_iter()
        .map(|t| Row {
            id: t.id.to_string(),
            date: t.date.to_string(),
            description: t.description,
            category: t.category.as_str().to_owned(),
            amount: money(t.amount),
            income: t.kind == magpie_domain::TransactionType::Income,
            pending: t.pending,
            source: match t.source {
                magpie_domain::Source::Manual => "manual",
                magpie_domain::Source::Api => "bank",
                magpie_domain::Source::FileImport => "import",
            }
            .to_owned(),
            who: match (t.category_source, t.confidence_score) {
                (magpie_domain::CategorySource::Model, Some(c)) => format!("model, {}% sure", c.hundredths()),
                (magpie_domain::CategorySource::Provider, Some(c)) => format!("bank, {}% sure", c.hundredths()),
                (magpie_domain::CategorySource::Rule, _) => "rule".to_owned(),
                (magpie_domain::CategorySource::Memory, _) => "your earlier choice".to_owned(),
                (magpie_domain::CategorySource::User, _) => "you".to_owned(),
                _ => String::new(),
            },
            deleted: t.deleted_at.is_some(),
            suggestions: t
                .suggestions
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.category, format!("{:.0}%", s.confidence * 100.0)))
                .collect(),
        })
        .collect();
    let shown = user.flash.is_some();
    let filtered = f.href(None) != "/transactions";
    let tpl = TransactionsPage {
        l: Layout::new(&user, "Transactions", "transactions"),
        next: listed.next_cursor.as_deref().map(|c| f.href(Some(c))),
        back: f.href(filled(&f.cursor).as_deref()),
        f,
        rows,
        categories,
        filtered,
        today: chrono::Utc::now().date_naive().to_string(),
    };
    Ok(page(&tpl, shown))
}

/// Where to return after a form: a path of the transactions page, never elsewhere.
fn back_to(back: &str) -> String {
    if back.starts_with("/transactions") && !back.contains("//") { back.to_owned() } else { "/transactions".to_owned() }
}

#[derive(Deserialize)]
pub struct AddForm {
    date: String,
    description: String,
    amount: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    category: String,
}

async fn add_transaction(State(state): State<AppState>, user: WebUser, WebForm(form): WebForm<AddForm>) -> Response {
    let req = CreateTransactionRequest {
        amount: serde_json::Value::String(form.amount.trim().to_owned()),
        date: form.date.trim().to_owned(),
        description: form.description,
        category: filled(&form.category),
        kind: form.kind,
    };
    let result = create_transaction(State(state.clone()), user.auth, ApiJson(req)).await;
    finish(&state, result, "/transactions", |(_, t)| {
        format!("Added {} ({}), filed under {}.", t.0.description, money(t.0.amount), t.0.category.as_str())
    })
}

#[derive(Deserialize)]
pub struct CategoryForm {
    category: String,
    #[serde(default)]
    back: String,
}

async fn set_category(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<TransactionId>,
    WebForm(form): WebForm<CategoryForm>,
) -> Response {
    let req = UpdateTransactionRequest { category: Some(form.category.trim().to_owned()), ..Default::default() };
    let result = update_transaction(State(state.clone()), user.auth, Path(id), ApiJson(req)).await;
    finish(&state, result, &back_to(&form.back), |t| format!("“{}” is now {}.", t.0.description, t.0.category.as_str()))
}

#[derive(Deserialize)]
pub struct BackForm {
    #[serde(default)]
    back: String,
}

async fn remove_transaction(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<TransactionId>,
    WebForm(form): WebForm<BackForm>,
) -> Response {
    let result = delete_transaction(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, &back_to(&form.back), |_| {
        "Deleted. It is kept under “Deleted”, where it can be restored.".into()
    })
}

async fn undelete_transaction(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<TransactionId>,
    WebForm(form): WebForm<BackForm>,
) -> Response {
    let result = restore_transaction(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, &back_to(&form.back), |t| format!("Restored “{}”.", t.0.description))
}

#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    ids: Vec<String>,
    action: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    back: String,
}

async fn bulk_transactions(State(state): State<AppState>, user: WebUser, WebForm(form): WebForm<BulkForm>) -> Response {
    let back = back_to(&form.back);
    let ids: Result<Vec<TransactionId>, _> = form.ids.iter().map(|s| s.parse::<TransactionId>()).collect();
    let Ok(ids) = ids else {
        return crate::web::back_with_error(&state, crate::error::AppError::field("ids", "not transaction ids"), &back);
    };
    if ids.is_empty() {
        return crate::web::back_with_error(
            &state,
            crate::error::AppError::field("ids", "select at least one transaction"),
            &back,
        );
    }
    let req = BulkRequest {
        category: (form.action == "set_category").then(|| form.category.trim().to_owned()),
        action: form.action,
        ids,
    };
    let result = bulk_change_transactions(State(state.clone()), user.auth, ApiJson(req)).await;
    finish(&state, result, &back, |r| {
        let what = match r.0.action.as_str() {
            "delete" => "deleted",
            "restore" => "restored",
            _ => "recategorized",
        };
        format!("{} transactions {what}.", r.0.updated)
    })
}
