//! `/api/v1/imports`: statement file imports with a preview, a list of batches, and revert.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use magpie_db::imports::{self, ImportBatch};
use magpie_domain::{ImportBatchId, Timestamp};
use magpie_import::Format;
use magpie_import::csv::{CsvOptions, Mapping};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::ApiQuery;
use crate::http::validate::Validator;
use crate::import::{self, ImportError, ImportReport, ImportRequest};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_import, list_imports)).routes(routes!(get_import, delete_import))
}

/// How to read the file. Every field is optional: format, encoding, delimiter, header, columns, date
/// layout and decimal mark are detected.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Only preview: nothing is written.
    pub dry_run: Option<bool>,
    /// `csv`, `ofx`, `qfx`, `qbo`, `qif`, `camt`, `mt940` (detected when absent).
    pub format: Option<String>,
    /// The file's name (shown in the import history; helps detection).
    pub filename: Option<String>,
    /// Name of the account the file is for, when the file does not say (keeps two accounts' identical
    /// rows apart).
    pub account: Option<String>,
    /// CSV: a named bank layout (ing-nl, ing-de, paypal, chase, amex, schwab).
    pub preset: Option<String>,
    /// CSV: field delimiter.
    pub delimiter: Option<String>,
    /// CSV: lines before the header.
    pub skip_lines: Option<usize>,
    /// CSV: whether there is a header line.
    pub has_header: Option<bool>,
    /// CSV: `ymd`, `ymd-compact`, `dmy`, `mdy`, `dmon-y`, `mon-d-y`.
    pub date_format: Option<String>,
    /// CSV: `point` or `comma`.
    pub decimal_mark: Option<String>,
    /// CSV: flip all signs (card issuers that export charges as positive numbers).
    pub invert_sign: Option<bool>,
    /// CSV: character encoding label (`windows-1252`, `utf-16le`, ...).
    pub encoding: Option<String>,
    /// CSV: column roles as JSON, e.g. `{"date": 0, "amount": "Betrag", "payee": "Name"}`.
    pub mapping: Option<String>,
}

impl ImportQuery {
    /// The import request these parameters describe (shared with the web app).
    pub fn request(&self, dry_run_default: bool) -> Result<ImportRequest> {
        let mut v = Validator::new();
        let format = match self.format.as_deref() {
            None | Some("auto") => None,
            Some(f) => {
                let parsed = Format::from_name(f);
                if parsed.is_none() {
                    v.error("query.format", format!("'{f}' is not one of csv, ofx, qfx, qbo, qif, camt, mt940"));
                }
                parsed
            }
        };
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab" | "\\t") => Some('\t'),
            Some(d) if d.chars().count() == 1 && d.is_ascii() => d.chars().next(),
            Some(_) => {
                v.error("query.delimiter", "a single ASCII character (or `tab`)");
                None
            }
        };
        // The enums' serde names are the documented values.
        let date_format = self.date_format.as_deref().and_then(|f| serde_json::from_value(serde_json::json!(f)).ok());
        if self.date_format.is_some() && date_format.is_none() {
            v.error("query.date_format", "one of ymd, ymd-compact, dmy, mdy, dmon-y, mon-d-y");
        }
        let decimal_mark = self.decimal_mark.as_deref().and_then(|m| serde_json::from_value(serde_json::json!(m)).ok());
        if self.decimal_mark.is_some() && decimal_mark.is_none() {
            v.error("query.decimal_mark", "one of point, comma");
        }
        let mapping: Option<Mapping> = match self.mapping.as_deref() {
            None => None,
            Some(m) => match serde_json::from_str(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    v.error("query.mapping", format!("not a column mapping: {e}"));
                    None
                }
            },
        };
        if let Some(p) = &self.preset
            && CsvOptions::preset(p).is_none()
        {
            v.error("query.preset", format!("unknown preset (known: {})", CsvOptions::PRESETS.join(", ")));
        }
        if self.filename.as_deref().is_some_and(|f| f.chars().count() > 255) {
            v.error("query.filename", "at most 255 characters");
        }
        if self.account.as_deref().is_some_and(|a| a.trim().is_empty() || a.chars().count() > 100) {
            v.error("query.account", "1 to 100 characters");
        }
        v.finish()?;
        Ok(ImportRequest {
            format,
            csv: CsvOptions {
                preset: self.preset.clone(),
                mapping,
                delimiter,
                skip_lines: self.skip_lines,
                has_header: self.has_header,
                date_format,
                decimal_mark,
                invert_sign: self.invert_sign,
                encoding: self.encoding.clone(),
                account: None,
            },
            account: self.account.as_ref().map(|a| a.trim().to_owned()),
            filename: self.filename.clone(),
            dry_run: self.dry_run.unwrap_or(dry_run_default),
        })
    }
}

/// How an import failure is reported.
pub fn import_error(e: ImportError) -> AppError {
    match e {
        ImportError::Parse(p) => AppError::Validation {
            detail: format!("The file cannot be imported: {p}"),
            errors: vec![crate::error::FieldError::new("file", p.to_string())],
        },
        ImportError::Db(magpie_db::DbError::UniqueViolation { .. }) => AppError::Conflict(
            "Another import of the same transactions finished first; run this one again to import what is still new."
                .to_owned(),
        ),
        ImportError::Db(d) => d.into(),
    }
}

/// Import a statement file (CSV, OFX/QFX/QBO, QIF, CAMT.052/053/054 or a zip of them, MT940/942), sent
/// as the raw body or as the `file` part of a multipart form (with an optional `options` part holding the
/// same fields as the query, as JSON). With `dry_run=true` nothing is written and the answer previews
/// every row: new, duplicate (and why), pending, or unreadable (with its line), plus possible duplicates.
/// Otherwise the new rows are written in one transaction and the answer reports what happened.
#[utoipa::path(
    post, path = "/imports", tag = "imports", security(("bearer" = [])), params(ImportQuery),
    request_body(content = Vec<u8>, description = "The statement file, raw or as multipart `file`", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Preview (dry run)", body = ImportReport),
        (status = 201, description = "Imported", body = ImportReport),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unreadable file or options", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_import(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ImportQuery>,
    req: Request,
) -> Result<(StatusCode, Json<ImportReport>)> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (bytes, query, filename) = if is_multipart {
        let mut multipart = Multipart::from_request(req, &state)
            .await
            .map_err(|e| AppError::BadRequest(format!("Unreadable multipart body: {e}")))?;
        let (mut file, mut options, mut filename) = (None, None, None);
        while let Some(field) = multipart.next_field().await.map_err(|e| upload_error(&e.to_string()))? {
            match field.name() {
                Some("file") => {
                    filename = field.file_name().map(str::to_owned);
                    file = Some(field.bytes().await.map_err(|e| upload_error(&e.to_string()))?);
                }
                Some("options") => {
                    let text = field.text().await.map_err(|e| upload_error(&e.to_string()))?;
                    options = Some(crate::http::extract::parse_json::<ImportQuery>(text.as_bytes())?);
                }
                Some(other) => {
                    return Err(AppError::field(other, "unknown part; send `file` and optionally `options`"));
                }
                None => {}
            }
        }
        let file = file.ok_or_else(|| AppError::field("file", "the multipart form has no `file` part"))?;
        (file, options.unwrap_or(query), filename)
    } else {
        let bytes = Bytes::from_request(req, &state).await.map_err(|e| upload_error(&e.to_string()))?;
        (bytes, query, None)
    };
    if bytes.is_empty() {
        return Err(AppError::field("file", "the file is empty"));
    }
    let mut request = query.request(false)?;
    if request.filename.is_none() {
        request.filename = filename;
    }
    let report = import::run(&state.db, &state.ml, user.id, bytes, &request, |_| {}).await.map_err(import_error)?;
    if !report.dry_run {
        crate::ledger_cache::ledger_changed(&state, user.id);
        tracing::info!(user.id = %user.id, imported = report.imported, duplicates = report.duplicates, "statement imported");
    }
    let status = if report.dry_run { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(report)))
}

/// A failed read of an upload: too large (413) or unreadable (400). Shared with the web app.
pub fn upload_error(message: &str) -> AppError {
    if message.contains("length limit") || message.contains("too large") {
        AppError::PayloadTooLarge
    } else {
        AppError::BadRequest(format!("Could not read the upload: {message}"))
    }
}

/// An import batch.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    /// Id.
    pub id: ImportBatchId,
    /// File name.
    pub filename: Option<String>,
    /// Format.
    pub format: String,
    /// Encoding.
    pub encoding: Option<String>,
    /// COMMITTED or REVERTED.
    pub status: String,
    /// Rows read.
    pub rows_read: i64,
    /// Transactions added.
    pub imported: i64,
    /// Rows already in the ledger.
    pub duplicates: i64,
    /// Rows left out (pending, zero).
    pub skipped: i64,
    /// Unreadable rows.
    pub errors: i64,
    /// When.
    pub created_at: Timestamp,
    /// When reverted.
    pub reverted_at: Option<Timestamp>,
}

impl From<ImportBatch> for BatchResponse {
    fn from(b: ImportBatch) -> Self {
        BatchResponse {
            id: b.id,
            filename: b.filename,
            format: b.format,
            encoding: b.encoding,
            status: b.status,
            rows_read: b.rows_read,
            imported: b.imported,
            duplicates: b.duplicates,
            skipped: b.skipped,
            errors: b.errors,
            created_at: b.created_at,
            reverted_at: b.reverted_at,
        }
    }
}

/// The import history, newest first.
#[utoipa::path(
    get, path = "/imports", tag = "imports", security(("bearer" = [])),
    responses((status = 200, body = Vec<BatchResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_imports(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<BatchResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(imports::list_batches(conn.c(), user.id).await?.into_iter().map(Into::into).collect()))
}

/// One import batch.
#[utoipa::path(
    get, path = "/imports/{id}", tag = "imports", security(("bearer" = [])),
    params(("id" = ImportBatchId, Path, description = "Import batch id")),
    responses(
        (status = 200, body = BatchResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_import(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ImportBatchId>,
) -> Result<Json<BatchResponse>> {
    let mut conn = state.db.conn().await?;
    let b = imports::get_batch(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(b.into()))
}

/// Revert an import: its transactions are deleted (so the file can be imported again, perhaps with
/// other options) and the batch stays in the history as REVERTED.
#[utoipa::path(
    delete, path = "/imports/{id}", tag = "imports", security(("bearer" = [])),
    params(("id" = ImportBatchId, Path, description = "Import batch id")),
    responses(
        (status = 204, description = "Reverted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such committed batch", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_import(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ImportBatchId>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let deleted = imports::revert_batch(tx.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    magpie_db::goals::recompute_tracked(tx.c(), user.id).await?;
    tx.commit().await?;
    crate::ledger_cache::ledger_changed(&state, user.id);
    tracing::info!(user.id = %user.id, batch = %id, deleted, "import reverted");
    Ok(StatusCode::NO_CONTENT)
}
