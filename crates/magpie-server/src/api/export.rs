//! `GET /api/v1/me/export`: everything of the user's, as a zip holding `magpie-export.json` (the whole
//! account, loadable by `POST /api/v1/me/import` into an empty account on any instance) and CSV files
//! for spreadsheets. `POST /api/v1/me/import` loads such a zip, in one transaction.
//!
//! Not in the export: passwords, tokens and bank credentials (sealed with this server's key; connections
//! are listed for reference and must be linked again), models (retrained from the data), sessions.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use magpie_db::transactions::{self as tx_repo, After, Deleted, NewTransaction, Sort, TransactionFilter};
use magpie_domain::{
    Allocations, Category, CategorySource, Confidence, GoalStatus, Money, RuleMatch, Source, Timestamp, TransactionType,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::auth::extract::ClientInfo;
use crate::error::{AppError, Problem, Result};
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_me)).routes(routes!(import_me))
}

/// The file inside the zip that `import` reads.
pub const EXPORT_JSON: &str = "magpie-export.json";
const FORMAT: &str = "magpie-export";
const VERSION: u32 = 1;

/// The whole account.
#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    /// Always `magpie-export`.
    pub format: String,
    /// Format version (1).
    pub version: u32,
    /// When.
    pub exported_at: Timestamp,
    /// The profile.
    pub user: ExportUser,
    /// Every transaction, soft-deleted ones included (with `deleted_at`), oldest first.
    pub transactions: Vec<ExportTransaction>,
    /// Budgets.
    pub budgets: Vec<ExportBudget>,
    /// Goals with their contributions.
    pub goals: Vec<ExportGoal>,
    /// Categorization rules.
    pub rules: Vec<ExportRule>,
    /// Bank connections, for reference (not imported: link them again).
    #[serde(default)]
    pub connections: Vec<serde_json::Value>,
}

/// The profile.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportUser {
    /// Email.
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Since.
    pub created_at: Timestamp,
}

/// A transaction.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportTransaction {
    /// Booking date.
    pub date: NaiveDate,
    /// Amount, >= 0.
    pub amount: Money,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// Description.
    pub description: String,
    /// Category.
    pub category: Category,
    /// MANUAL, API or FILE_IMPORT.
    pub source: Source,
    /// Who chose the category.
    pub category_source: CategorySource,
    /// The model's confidence.
    pub confidence_score: Option<Confidence>,
    /// Created.
    pub created_at: Timestamp,
    /// Soft-deleted at.
    pub deleted_at: Option<Timestamp>,
}

/// A budget.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportBudget {
    /// Name.
    pub name: String,
    /// First day.
    pub period_start: NaiveDate,
    /// Last day.
    pub period_end: NaiveDate,
    /// Category to amount.
    pub allocations: BTreeMap<Category, Money>,
}

/// A goal.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportGoal {
    /// Name.
    pub name: String,
    /// Target.
    pub target_amount: Money,
    /// Saved so far (recomputed on import from the contributions and the tracked category).
    pub current_amount: Money,
    /// Deadline.
    pub deadline: Option<NaiveDate>,
    /// Tracked category.
    pub category: Option<Category>,
    /// Tracking start.
    pub tracking_start: Option<NaiveDate>,
    /// Status.
    pub status: GoalStatus,
    /// Contributions.
    pub contributions: Vec<ExportContribution>,
}

/// A contribution.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportContribution {
    /// Amount.
    pub amount: Money,
    /// Date.
    pub date: NaiveDate,
    /// Note.
    pub note: Option<String>,
}

/// A rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportRule {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: i32,
    /// CONTAINS, EXACT or REGEX.
    pub match_kind: RuleMatch,
    /// Pattern.
    pub pattern: String,
    /// Amount at least.
    pub min_amount: Option<Money>,
    /// Amount at most.
    pub max_amount: Option<Money>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: Option<TransactionType>,
    /// Category given.
    pub category: Category,
    /// On.
    pub enabled: bool,
}

/// Read the whole account.
pub async fn collect(state: &AppState, user: magpie_domain::UserId) -> Result<Export> {
    // One read transaction: a consistent picture even while syncs and imports write.
    let mut tx = state.db.begin_read().await?;
    let me = magpie_db::users::get(tx.c(), user).await?.ok_or(AppError::NotFound)?;
    let filter = TransactionFilter { deleted: Deleted::Include, ..TransactionFilter::default() };
    let mut transactions = Vec::new();
    let mut after = None;
    loop {
        let page = tx_repo::list(tx.c(), user, &filter, Sort::DateAsc, after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = Some(After::of(last, Sort::DateAsc));
        let done = page.len() < 2000;
        transactions.extend(page.into_iter().map(|t| ExportTransaction {
            date: t.date,
            amount: t.amount,
            kind: t.kind,
            description: t.description,
            category: t.category,
            source: t.source,
            category_source: t.category_source,
            confidence_score: t.confidence_score,
            created_at: t.created_at,
            deleted_at: t.deleted_at,
        }));
        if done {
            break;
        }
    }
    let budgets = magpie_db::budgets::list(tx.c(), user)
        .await?
        .into_iter()
        .map(|b| ExportBudget {
            name: b.name,
            period_start: b.period_start,
            period_end: b.period_end,
            allocations: b.allocations.into_inner(),
        })
        .collect();
    let mut goals = Vec::new();
    for g in magpie_db::goals::list(tx.c(), user, None).await? {
        let contributions = magpie_db::goals::contributions(tx.c(), user, g.id)
            .await?
            .into_iter()
            .map(|c| ExportContribution { amount: c.amount, date: c.date, note: c.note })
            .collect();
        goals.push(ExportGoal {
            name: g.name,
            target_amount: g.target_amount,
            current_amount: g.current_amount,
            deadline: g.deadline,
            category: g.category,
            tracking_start: g.tracking_start,
            status: g.status,
            contributions,
        });
    }
    let rules = magpie_db::rules::list(tx.c(), user)
        .await?
        .into_iter()
        .map(|r| ExportRule {
            name: r.name,
            priority: r.priority,
            match_kind: r.match_kind,
            pattern: r.pattern,
            min_amount: r.min_amount,
            max_amount: r.max_amount,
            kind: r.kind,
            category: r.category,
            enabled: r.enabled,
        })
        .collect();
    let connections = magpie_db::connections::list(tx.c(), user, None)
        .await?
        .into_iter()
        .map(|c| {
            serde_json::json!({"provider": c.provider, "institution_name": c.institution_name, "status": c.status,
                               "last_sync": c.last_sync, "accounts": c.accounts.0})
        })
        .collect();
    tx.commit().await?;
    Ok(Export {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: Timestamp::now(),
        user: ExportUser {
            email: me.email.as_str().to_owned(),
            first_name: me.first_name,
            last_name: me.last_name,
            created_at: me.created_at,
        },
        transactions,
        budgets,
        goals,
        rules,
        connections,
    })
}

/// A CSV cell: always quoted; a cell starting with =, +, -, @, a tab or a carriage return is prefixed
/// with `'` so spreadsheets do not run it as a formula (OWASP's list: tab and CR also start one in some
/// spreadsheets). Shared with the web app's CSV export.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The zip: the JSON and the CSV files.
pub fn zip(export: &Export) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(EXPORT_JSON, opts)?;
    w.write_all(&serde_json::to_vec_pretty(export)?)?;
    w.start_file("transactions.csv", opts)?;
    writeln!(w, "date,description,amount,type,category,source,category_source,deleted_at")?;
    for t in &export.transactions {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{}",
            t.date,
            csv_cell(&t.description),
            t.amount,
            t.kind,
            csv_cell(t.category.as_str()),
            t.source,
            t.category_source,
            t.deleted_at.map(|d| d.as_datetime().to_rfc3339()).unwrap_or_default()
        )?;
    }
    w.start_file("budgets.csv", opts)?;
    writeln!(w, "budget,period_start,period_end,category,allocated")?;
    for b in &export.budgets {
        for (c, m) in &b.allocations {
            writeln!(w, "{},{},{},{},{m}", csv_cell(&b.name), b.period_start, b.period_end, csv_cell(c.as_str()))?;
        }
    }
    w.start_file("goals.csv", opts)?;
    writeln!(w, "goal,target_amount,current_amount,deadline,category,status")?;
    for g in &export.goals {
        writeln!(
            w,
            "{},{},{},{},{},{}",
            csv_cell(&g.name),
            g.target_amount,
            g.current_amount,
            g.deadline.map(|d| d.to_string()).unwrap_or_default(),
            csv_cell(g.category.as_ref().map(|c| c.as_str()).unwrap_or("")),
            g.status
        )?;
    }
    Ok(w.finish()?.into_inner())
}

/// Download everything of yours: a zip with `magpie-export.json` (the whole account, for
/// `POST /me/import`) and `transactions.csv`, `budgets.csv`, `goals.csv`. Passwords, tokens and bank
/// credentials are never exported.
#[utoipa::path(
    get, path = "/me/export", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The zip", content_type = "application/zip", body = Vec<u8>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn export_me(State(state): State<AppState>, user: AuthUser, client: ClientInfo) -> Result<Response> {
    let export = collect(&state, user.id).await?;
    let bytes = tokio::task::spawn_blocking(move || zip(&export))
        .await
        .map_err(|e| anyhow::anyhow!("export stopped: {e}"))??;
    tracing::info!(user.id = %user.id, bytes = bytes.len(), "account exported");
    crate::audit::record(
        &state,
        user.id,
        "export",
        &client,
        serde_json::json!({"bytes": bytes.len(), "format": "zip"}),
    )
    .await?;
    let name = format!("attachment; filename=\"magpie-export-{}.zip\"", chrono::Utc::now().format("%Y-%m-%d"));
    Ok(([(header::CONTENT_TYPE, "application/zip".to_owned()), (header::CONTENT_DISPOSITION, name)], bytes)
        .into_response())
}

/// What an import loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedAccount {
    /// Transactions (soft-deleted ones stay deleted).
    pub transactions: usize,
    /// Budgets.
    pub budgets: usize,
    /// Goals.
    pub goals: usize,
    /// Contributions.
    pub contributions: usize,
    /// Rules.
    pub rules: usize,
    /// Bank connections in the export, which must be linked again.
    pub connections_to_relink: usize,
}

/// What an export zip may unpack to: the JSON of a large account (a few hundred bytes a transaction)
/// and three CSV files; nothing compresses better than about 50:1 but a bomb.
const EXPORT_LIMITS: magpie_import::archive::ZipLimits = magpie_import::archive::ZipLimits {
    max_entries: 16,
    max_entry_bytes: 256 << 20,
    max_total_bytes: 256 << 20,
    max_ratio: 100,
};

/// Read `magpie-export.json` from the zip, streaming it into the structs (the JSON text is never held
/// whole), within [`EXPORT_LIMITS`].
fn read_export(bytes: &[u8]) -> Result<Export> {
    use magpie_import::archive::{SafeZip, ZipError};
    let bad = |m: String| AppError::field("file", m);
    let mut archive = SafeZip::open(bytes, EXPORT_LIMITS).map_err(|e| match e {
        ZipError::Unreadable(m) => bad(format!("not a zip file: {m}")),
        e => bad(e.to_string()),
    })?;
    let mut parsed = None;
    let outcome = archive.with_reader(EXPORT_JSON, |reader| {
        let de = &mut serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
        parsed = Some(serde_path_to_error::deserialize::<_, Export>(de));
        Ok(())
    });
    match outcome {
        Err(ZipError::Missing(_)) => return Err(bad(format!("the zip has no {EXPORT_JSON}"))),
        Err(e) => return Err(bad(format!("cannot read {EXPORT_JSON}: {e}"))),
        Ok(()) => {}
    }
    let export = parsed
        .expect("the reader ran")
        .map_err(|e| AppError::field(format!("{EXPORT_JSON}: {}", e.path()), e.inner().to_string()))?;
    if export.format != FORMAT || export.version != VERSION {
        return Err(bad(format!("not a magpie export of version {VERSION}")));
    }
    Ok(export)
}

/// Hold every field of an export to the rules the API applies to the same field, so that nothing
/// reaches the database through an import that could not through the API (control characters,
/// overlong text, broken rule patterns, out-of-range numbers). Errors name the element:
/// `transactions[12].description`.
fn check_export(export: &Export) -> Result<()> {
    use magpie_domain::input;
    let mut v = Validator::new();
    for (i, t) in export.transactions.iter().enumerate() {
        let at = |f: &str| format!("transactions[{i}].{f}");
        match input::description(&t.description) {
            Ok(d) if d == t.description => {}
            Ok(_) => v.error(&at("description"), "description must be trimmed, with single spaces"),
            Err(e) => v.error(&at("description"), e.to_string()),
        }
        if let Err(e) = input::check_date(t.date) {
            v.error(&at("date"), e.to_string());
        }
        if let Err(e) = input::transaction_amount(t.amount) {
            v.error(&at("amount"), e.to_string());
        }
    }
    for (i, b) in export.budgets.iter().enumerate() {
        if let Err(e) = input::name(&b.name) {
            v.error(&format!("budgets[{i}].name"), e.to_string());
        }
        if b.period_start > b.period_end {
            v.error(&format!("budgets[{i}].period_end"), "period_end must not be before period_start");
        }
        if let Err(e) = Allocations::new(b.allocations.clone()) {
            v.error(&format!("budgets[{i}].allocations"), e.to_string());
        }
    }
    for (i, g) in export.goals.iter().enumerate() {
        if let Err(e) = input::name(&g.name) {
            v.error(&format!("goals[{i}].name"), e.to_string());
        }
        if g.target_amount.is_zero() || input::transaction_amount(g.target_amount).is_err() {
            v.error(
                &format!("goals[{i}].target_amount"),
                "target_amount must be more than 0 and at most 9999999999.99",
            );
        }
        for (j, c) in g.contributions.iter().enumerate() {
            let at = |f: &str| format!("goals[{i}].contributions[{j}].{f}");
            if c.amount.is_zero() || input::transaction_amount(c.amount).is_err() {
                v.error(&at("amount"), "amount must be more than 0 and at most 9999999999.99");
            }
            if let Err(e) = input::check_date(c.date) {
                v.error(&at("date"), e.to_string());
            }
            if let Err(e) = input::note(c.note.as_deref()) {
                v.error(&at("note"), e.to_string());
            }
        }
    }
    if export.rules.len() > crate::api::rules::MAX_RULES {
        v.error("rules", format!("at most {} rules", crate::api::rules::MAX_RULES));
    }
    for (i, r) in export.rules.iter().enumerate() {
        let mut rule = Validator::new();
        crate::api::rules::check_fields(&mut rule, &rule_fields(r));
        for e in rule.into_errors() {
            v.error(&format!("rules[{i}].{}", e.field), e.message);
        }
    }
    v.finish_at_most(50)
}

fn rule_fields(r: &ExportRule) -> magpie_db::rules::RuleFields {
    magpie_db::rules::RuleFields {
        name: r.name.clone(),
        priority: r.priority,
        match_kind: r.match_kind,
        pattern: r.pattern.clone(),
        min_amount: r.min_amount,
        max_amount: r.max_amount,
        kind: r.kind,
        category: r.category.clone(),
        enabled: r.enabled,
    }
}

/// Whether the account holds anything an import would mix with.
async fn has_data(conn: magpie_db::Conn<'_>, user: magpie_domain::UserId) -> Result<bool> {
    let mut conn = conn;
    Ok(tx_repo::ledger_stamp(conn.reborrow(), user).await?.0 > 0
        || !magpie_db::budgets::list(conn.reborrow(), user).await?.is_empty()
        || !magpie_db::goals::list(conn.reborrow(), user, None).await?.is_empty()
        || !magpie_db::rules::list(conn, user).await?.is_empty())
}

/// Load an export (`GET /me/export`'s zip, as the raw body) into this account, which must hold no
/// transactions, budgets, goals or rules yet; everything is written in one transaction. The profile and
/// password stay this account's; bank connections must be linked again.
#[utoipa::path(
    post, path = "/me/import", tag = "me", security(("bearer" = [])),
    request_body(content = Vec<u8>, description = "The export zip (sent as is, any media type)", content_type = "application/octet-stream"),
    responses(
        (status = 201, body = ImportedAccount),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account is not empty", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a readable export", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_me(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportedAccount>)> {
    let not_empty = || {
        AppError::Conflict("This account already has data; an export is loaded into an empty account only.".to_owned())
    };
    // Checked before the zip is opened: an account that cannot take the import costs nothing to refuse.
    if has_data(state.db.conn().await?.c(), user.id).await? {
        return Err(not_empty());
    }
    let export = tokio::task::spawn_blocking(move || read_export(&body).and_then(|e| check_export(&e).map(|()| e)))
        .await
        .map_err(|e| anyhow::anyhow!("import stopped: {e}"))??;
    let mut tx = state.db.begin().await?;
    // Again inside the transaction: something may have been added meanwhile.
    if has_data(tx.c(), user.id).await? {
        return Err(not_empty());
    }
    let rows: Vec<NewTransaction> = export
        .transactions
        .iter()
        .map(|t| NewTransaction {
            amount: t.amount,
            date: t.date,
            description: t.description.clone(),
            category: t.category.clone(),
            kind: t.kind,
            source: t.source,
            confidence_score: t.confidence_score,
            category_source: t.category_source,
            connection_id: None,
        })
        .collect();
    let ids = tx_repo::insert_many(tx.c(), user.id, &rows).await?;
    for (id, t) in ids.iter().zip(&export.transactions) {
        if let Some(at) = t.deleted_at {
            tx_repo::mark_deleted(tx.c(), user.id, *id, at).await?;
        }
    }
    for b in &export.budgets {
        let allocations =
            Allocations::new(b.allocations.clone()).map_err(|e| AppError::field("budgets", e.to_string()))?;
        let new = magpie_db::budgets::NewBudget {
            name: b.name.clone(),
            period_start: b.period_start,
            period_end: b.period_end,
            allocations,
        };
        magpie_db::budgets::create(tx.c(), user.id, &new).await?;
    }
    let mut contributions = 0;
    let mut archived = Vec::new();
    let mut goal_ids = HashMap::new();
    for (i, g) in export.goals.iter().enumerate() {
        let new = magpie_db::goals::NewGoal {
            name: g.name.clone(),
            target_amount: g.target_amount,
            deadline: g.deadline,
            category: g.category.clone(),
            tracking_start: g.tracking_start,
        };
        let created = magpie_db::goals::create(tx.c(), user.id, &new).await?;
        for c in &g.contributions {
            magpie_db::goals::add_contribution(tx.c(), user.id, created.id, c.amount, c.date, c.note.as_deref())
                .await?;
            contributions += 1;
        }
        let goal = magpie_db::goals::recompute(tx.c(), &created).await?;
        if g.status == GoalStatus::Archived {
            archived.push(goal.id);
        }
        goal_ids.insert(i, goal.id);
    }
    for id in archived {
        let patch = magpie_db::goals::GoalPatch { status: Some(GoalStatus::Archived), ..Default::default() };
        magpie_db::goals::update(tx.c(), user.id, id, &patch).await?;
    }
    for r in &export.rules {
        magpie_db::rules::create(tx.c(), user.id, &rule_fields(r)).await?;
    }
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    crate::audit::record(&state, user.id, "import", &client, serde_json::json!({"transactions": ids.len()})).await?;
    tracing::info!(user.id = %user.id, transactions = ids.len(), "account imported from an export");
    Ok((
        StatusCode::CREATED,
        Json(ImportedAccount {
            transactions: ids.len(),
            budgets: export.budgets.len(),
            goals: goal_ids.len(),
            contributions,
            rules: export.rules.len(),
            connections_to_relink: export.connections.len(),
        }),
    ))
}
