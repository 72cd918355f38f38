//! Categorization: the person's rules, and the models (versions, metrics, training, activation).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use magpie_domain::{ModelId, RuleId};
use serde::Deserialize;

use crate::api::categories::list_categories;
use crate::api::models::{activate_model, list_models, train_model};
use crate::api::rules::{CreateRuleRequest, create_rule, delete_rule, list_rules};
use crate::app::AppState;
use crate::http::extract::ApiJson;
use crate::web::format::money;
use crate::web::session::WebUser;
use crate::web::{Empty, Layout, WebError, WebForm, filled, finish, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rules", get(show_rules).post(add_rule))
        .route("/rules/{id}/delete", post(remove_rule))
        .route("/models", get(show_models))
        .route("/models/train", post(start_training))
        .route("/models/{id}/activate", post(use_model))
}

pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub condition: String,
    pub category: String,
    pub priority: i32,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    l: Layout,
    rules: Vec<RuleRow>,
    categories: Vec<String>,
}

async fn show_rules(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let (rules, categories) =
        tokio::join!(list_rules(State(state.clone()), user.auth), list_categories(State(state.clone()), user.auth));
    let rules = rules?
        .0
        .into_iter()
        .map(|r| {
            let mut condition =
                format!("description {} “{}”", r.match_kind.as_str().to_lowercase().replace('_', " "), r.pattern);
            match (r.min_amount, r.max_amount) {
                (Some(a), Some(b)) => condition.push_str(&format!(", amount {} to {}", money(a), money(b))),
                (Some(a), None) => condition.push_str(&format!(", amount at least {}", money(a))),
                (None, Some(b)) => condition.push_str(&format!(", amount at most {}", money(b))),
                (None, None) => {}
            }
            if let Some(k) = r.kind {
                condition.push_str(&format!(", {} only", k.as_str().to_lowercase()));
            }
            RuleRow {
                id: r.id.to_string(),
                name: r.name,
                condition,
                category: r.category.as_str().to_owned(),
                priority: r.priority,
                enabled: r.enabled,
            }
        })
        .collect();
    let shown = user.flash.is_some();
    let tpl = RulesPage {
        l: Layout::new(&user, "Rules", "rules"),
        rules,
        categories: categories?.0.into_iter().map(|c| c.name).collect(),
    };
    Ok(page(&tpl, shown))
}

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    name: String,
    match_kind: String,
    pattern: String,
    category: String,
    #[serde(default)]
    min_amount: String,
    #[serde(default)]
    max_amount: String,
    #[serde(default, rename = "type")]
    kind: String,
}

async fn add_rule(State(state): State<AppState>, user: WebUser, WebForm(f): WebForm<RuleForm>) -> Response {
    let req = CreateRuleRequest {
        name: filled(&f.name),
        priority: None,
        match_kind: filled(&f.match_kind),
        pattern: f.pattern,
        min_amount: filled(&f.min_amount).map(serde_json::Value::String),
        max_amount: filled(&f.max_amount).map(serde_json::Value::String),
        kind: filled(&f.kind),
        category: f.category.trim().to_owned(),
        enabled: None,
    };
    let result = create_rule(State(state.clone()), user.auth, ApiJson(req)).await;
    finish(&state, result, "/rules", |(_, r)| {
        format!(
            "Rule “{}” added. It applies to new transactions; “Categorize again” applies it to existing ones.",
            r.0.name
        )
    })
}

async fn remove_rule(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<RuleId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = delete_rule(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/rules", |_| "Rule deleted.".into())
}

pub struct ModelRow {
    pub id: String,
    pub kind: String,
    pub scope: String,
    pub version: String,
    pub accuracy: String,
    pub precision: String,
    pub recall: String,
    pub trained: String,
    pub active: bool,
    pub own: bool,
}

pub struct JobRow {
    pub kind: String,
    pub status: String,
    pub when: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    l: Layout,
    models: Vec<ModelRow>,
    jobs: Vec<JobRow>,
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0)).unwrap_or_else(|| "—".into())
}

async fn show_models(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let models = list_models(State(state.clone()), user.auth)
        .await?
        .0
        .into_iter()
        .map(|m| ModelRow {
            id: m.id.to_string(),
            kind: m.model_type.as_str().to_lowercase(),
            scope: if m.global { "everyone (global)".into() } else { "yours".into() },
            version: m.version,
            accuracy: pct(m.accuracy),
            precision: pct(m.precision),
            recall: pct(m.recall),
            trained: m.trained_at.as_datetime().format("%Y-%m-%d %H:%M").to_string(),
            active: m.is_active,
            own: !m.global,
        })
        .collect();
    let jobs = {
        let mut conn = state.db.conn().await?;
        magpie_db::jobs::recent_for_user(conn.c(), user.id(), 10).await?
    };
    let jobs = jobs
        .into_iter()
        .map(|j| JobRow {
            kind: j.kind.replace('_', " "),
            status: j.status.as_str().to_lowercase(),
            when: j.created_at.as_datetime().format("%Y-%m-%d %H:%M").to_string(),
            detail: j.last_error.unwrap_or_default(),
        })
        .collect();
    let shown = user.flash.is_some();
    Ok(page(&ModelsPage { l: Layout::new(&user, "Models", "models"), models, jobs }, shown))
}

async fn start_training(State(state): State<AppState>, user: WebUser, WebForm(_): WebForm<Empty>) -> Response {
    let result = train_model(State(state.clone()), user.auth).await;
    finish(&state, result, "/models", |_| "Training started. The new model appears here when it is done.".into())
}

async fn use_model(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<ModelId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = activate_model(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/models", |m| format!("Model {} is now active.", m.0.version))
}
