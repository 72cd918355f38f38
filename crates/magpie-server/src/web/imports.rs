//! Import: upload a statement file, see the preview (new rows, duplicates and why, unreadable lines),
//! commit it, and revert an earlier import. The file is held in `web_uploads` between preview and
//! commit, so any replica can take the commit.

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use magpie_domain::{ImportBatchId, Timestamp};

use crate::api::imports::{ImportQuery, delete_import, import_error, list_imports};
use crate::app::AppState;
use crate::error::AppError;
use crate::import::{self, RowStatus};
use crate::web::format::money;
use crate::web::session::{self, Flash, WebUser};
use crate::web::{Empty, Layout, WebError, WebForm, back_with_error, finish, page, redirect, redirect_with};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/import", get(show_imports).post(upload_file))
        .route("/import/uploads/{id}", get(show_preview))
        .route("/import/uploads/{id}/commit", post(commit_upload))
        .route("/import/uploads/{id}/discard", post(discard_upload))
        .route("/import/batches/{id}/revert", post(revert_batch))
}

pub struct Batch {
    pub id: String,
    pub when: String,
    pub filename: String,
    pub format: String,
    pub imported: i64,
    pub duplicates: i64,
    pub errors: i64,
    pub reverted: bool,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    l: Layout,
    batches: Vec<Batch>,
    max_mib: usize,
}

async fn show_imports(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let batches = list_imports(State(state.clone()), user.auth)
        .await?
        .0
        .into_iter()
        .map(|b| Batch {
            id: b.id.to_string(),
            when: b.created_at.as_datetime().format("%Y-%m-%d %H:%M").to_string(),
            filename: b.filename.unwrap_or_else(|| "(no name)".into()),
            format: b.format,
            imported: b.imported,
            duplicates: b.duplicates,
            errors: b.errors,
            reverted: b.status == "REVERTED",
        })
        .collect();
    let shown = user.flash.is_some();
    let tpl = ImportPage {
        l: Layout::new(&user, "Import", "import"),
        batches,
        max_mib: state.config.max_import_bytes / (1024 * 1024),
    };
    Ok(page(&tpl, shown))
}

/// The upload: `csrf`, `file` and optionally `account`, as multipart.
async fn upload_file(State(state): State<AppState>, user: WebUser, req: Request) -> Result<Response, WebError> {
    let headers = req.headers().clone();
    if !session::same_origin(&headers) {
        return Err(WebError::Csrf);
    }
    let mut multipart = Multipart::from_request(req, &state)
        .await
        .map_err(|e| AppError::BadRequest(format!("Unreadable upload: {e}")))?;
    let (mut csrf, mut file, mut filename, mut account) = (String::new(), None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Ok(too_large_or(&state, &e.to_string())),
        };
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("account") => account = field.text().await.ok().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()),
            Some("file") => {
                filename = field.file_name().map(str::to_owned).filter(|f| !f.is_empty());
                match field.bytes().await {
                    Ok(b) => file = Some(b),
                    Err(e) => return Ok(too_large_or(&state, &e.to_string())),
                }
            }
            _ => {}
        }
    }
    if !session::csrf_ok(&state, &headers, &csrf) {
        return Err(WebError::Csrf);
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return Ok(back_with_error(&state, AppError::field("file", "choose a statement file"), "/import"));
    };
    if account.as_deref().is_some_and(|a| a.chars().count() > 100) {
        return Ok(back_with_error(&state, AppError::field("account", "at most 100 characters"), "/import"));
    }
    let day_ago = Timestamp::from_datetime(chrono::Utc::now() - chrono::TimeDelta::days(1));
    let mut conn = state.db.conn().await?;
    let id =
        magpie_db::uploads::put(conn.c(), user.id(), filename.as_deref(), account.as_deref(), &file, day_ago).await?;
    Ok(redirect(&format!("/import/uploads/{id}")))
}

fn too_large_or(state: &AppState, message: &str) -> Response {
    back_with_error(state, crate::api::imports::upload_error(message), "/import")
}

pub struct PreviewRow {
    pub line: usize,
    pub date: String,
    pub description: String,
    pub amount: String,
    pub income: bool,
    pub category: String,
    pub status: &'static str,
    pub new: bool,
    pub possible: String,
}

#[derive(Template)]
#[template(path = "import_preview.html")]
struct PreviewPage {
    l: Layout,
    id: String,
    filename: String,
    format: String,
    rows_read: usize,
    new: usize,
    duplicates: usize,
    skipped: usize,
    possible: usize,
    errors: Vec<(usize, String)>,
    warnings: Vec<(usize, String)>,
    rows: Vec<PreviewRow>,
    more: usize,
}

async fn load(state: &AppState, user: &WebUser, id: uuid::Uuid) -> Result<magpie_db::uploads::Upload, WebError> {
    let mut conn = state.db.conn().await?;
    Ok(magpie_db::uploads::get(conn.c(), user.id(), id).await?.ok_or(AppError::NotFound)?)
}

fn request_for(upload: &magpie_db::uploads::Upload, dry_run: bool) -> Result<import::ImportRequest, AppError> {
    ImportQuery {
        dry_run: Some(dry_run),
        filename: upload.filename.clone(),
        account: upload.account.clone(),
        ..ImportQuery::default()
    }
    .request(dry_run)
}

const PREVIEW_ROWS: usize = 500;

async fn show_preview(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<uuid::Uuid>,
) -> Result<Response, WebError> {
    let upload = load(&state, &user, id).await?;
    let request = request_for(&upload, true)?;
    let bytes = axum::body::Bytes::from(upload.content.clone());
    let report = match import::run(&state.db, &state.ml, user.id(), bytes, &request, |_| {}).await {
        Ok(r) => r,
        Err(e) => {
            let mut conn = state.db.conn().await?;
            magpie_db::uploads::delete(conn.c(), user.id(), id).await?;
            return Ok(back_with_error(&state, import_error(e), "/import"));
        }
    };
    let new = report.rows.iter().filter(|r| r.status == RowStatus::New).count();
    let rows: Vec<PreviewRow> = report
        .rows
        .iter()
        .take(PREVIEW_ROWS)
        .map(|r| PreviewRow {
            line: r.line,
            date: r.date.to_string(),
            description: r.description.clone(),
            amount: money(r.amount),
            income: r.kind == magpie_domain::TransactionType::Income,
            category: r.category.as_str().to_owned(),
            status: match r.status {
                RowStatus::New => "new",
                RowStatus::DuplicateId => "already imported (same bank id)",
                RowStatus::DuplicateFingerprint => "already in the ledger",
                RowStatus::RepeatedInFile => "repeated in this file",
                RowStatus::Pending => "pending: left out",
                RowStatus::ZeroAmount => "zero amount: left out",
            },
            new: r.status == RowStatus::New,
            possible: r
                .possible_duplicates
                .iter()
                .map(|p| format!("maybe the same as “{}” on {}", p.description, p.date))
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let shown = user.flash.is_some();
    let tpl = PreviewPage {
        l: Layout::new(&user, "Import preview", "import"),
        id: id.to_string(),
        filename: upload.filename.clone().unwrap_or_else(|| "(no name)".into()),
        format: format!("{:?}", report.format).to_uppercase(),
        rows_read: report.rows_read,
        new,
        duplicates: report.duplicates,
        skipped: report.skipped,
        possible: report.possible_duplicates,
        errors: report.errors.iter().map(|e| (e.line, e.message.clone())).collect(),
        warnings: report.warnings.iter().map(|e| (e.line, e.message.clone())).collect(),
        more: report.rows.len().saturating_sub(PREVIEW_ROWS),
        rows,
    };
    Ok(page(&tpl, shown))
}

async fn commit_upload(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<uuid::Uuid>,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let upload = load(&state, &user, id).await?;
    let request = request_for(&upload, false)?;
    let bytes = axum::body::Bytes::from(upload.content.clone());
    let result = import::run(&state.db, &state.ml, user.id(), bytes, &request, |_| {}).await.map_err(import_error);
    if result.is_ok() {
        let mut conn = state.db.conn().await?;
        magpie_db::uploads::delete(conn.c(), user.id(), id).await?;
        tracing::info!(user.id = %user.id(), "statement imported (web)");
    }
    Ok(finish(&state, result, "/import", |r| {
        format!(
            "Imported {} transactions; {} were already in the ledger{}.",
            r.imported,
            r.duplicates,
            if r.errors.is_empty() { String::new() } else { format!("; {} lines could not be read", r.errors.len()) }
        )
    }))
}

async fn discard_upload(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<uuid::Uuid>,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let mut conn = state.db.conn().await?;
    if !magpie_db::uploads::delete(conn.c(), user.id(), id).await? {
        return Err(AppError::NotFound.into());
    }
    Ok(redirect_with(&state, "/import", Some(Flash::ok("Nothing was imported."))))
}

async fn revert_batch(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<ImportBatchId>,
    WebForm(_): WebForm<Empty>,
) -> Response {
    let result = delete_import(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/import", |_| "The import was reverted: its transactions are gone from the ledger.".into())
}
