//! The import pipeline: parse a statement file, turn its rows into ledger transactions, find the ones the
//! ledger already has, and write the rest in one database transaction (all or nothing: a killed process
//! leaves no partial batch). CSV files stream in chunks so a million-row file needs little memory.
//!
//! Dedup, in layers (docs/import.md): the file's own transaction id namespaced by account, then a
//! fingerprint of account, date, amount, normalized description and occurrence index; both stay on
//! soft-deleted rows. Fuzzy matches (same amount and type, a few days apart, similar text) are only ever
//! shown as "possible duplicates" in a preview, never dropped.

use std::collections::{HashMap, HashSet};

use magpie_db::imports::{self, Candidate, Counts, ImportedRow, KeyLookup};
use magpie_db::transactions::NewTransaction;
use magpie_db::{Db, DbTx};
use std::sync::Arc;

use magpie_domain::{Category, CategorySource, ImportBatchId, Money, Source, TransactionType, UserId};
use magpie_import::csv::{self as csv_import, CsvOptions, Item, Layout};
use magpie_import::fingerprint::{self, Occurrences};
use magpie_import::{Format, ParseError, Row, Warning};
use rust_decimal::RoundingStrategy;
use serde::Serialize;
use utoipa::ToSchema;

/// Rows handled per dedup query and insert. Each chunk costs a key lookup and a COPY (PostgreSQL) or a
/// few INSERTs (SQLite); 5,000 keeps that overhead under a tenth of the work while memory stays small.
const CHUNK: usize = 5_000;
/// Rows shown in a preview.
const PREVIEW_ROWS: usize = 500;
/// Days apart that still make a "possible duplicate".
const FUZZY_DAYS: u64 = 4;

/// What to import and how.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// Forced format (detected otherwise).
    pub format: Option<Format>,
    /// CSV options.
    pub csv: CsvOptions,
    /// Account to namespace dedup keys when the file does not name one.
    pub account: Option<String>,
    /// The uploaded file's name.
    pub filename: Option<String>,
    /// Preview only.
    pub dry_run: bool,
}

/// Why a row is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// New: imported (or would be, in a preview).
    New,
    /// The ledger has a transaction with the same bank id.
    DuplicateId,
    /// The ledger has a transaction with the same fingerprint.
    DuplicateFingerprint,
    /// The same row appears earlier in this file with the same bank id.
    RepeatedInFile,
    /// Pending (not booked yet).
    Pending,
    /// Zero amount.
    ZeroAmount,
}

/// A possible duplicate shown in a preview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PossibleDuplicate {
    /// The ledger transaction it resembles.
    pub transaction_id: String,
    /// Its date.
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    /// Its description.
    pub description: String,
}

/// A row of a preview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewRow {
    /// Line (or element) in the file.
    pub line: usize,
    /// Date.
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    /// Amount, positive.
    pub amount: Money,
    /// INCOME or EXPENSE.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// Description.
    pub description: String,
    /// The category it gets (from the rules, remembered corrections or the model).
    pub category: Category,
    /// Who chose the category.
    pub category_source: CategorySource,
    /// The model's confidence, when the model chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_score: Option<magpie_domain::Confidence>,
    /// What happens to it.
    pub status: RowStatus,
    /// Ledger transactions that look like the same payment (same amount and type, a few days apart,
    /// similar text): shown, never dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub possible_duplicates: Vec<PossibleDuplicate>,
}

/// A row that could not be read, by line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowError {
    /// Line (or element) in the file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    /// The batch, when committed.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub batch_id: Option<ImportBatchId>,
    /// Whether this was a preview.
    pub dry_run: bool,
    /// Detected or given format.
    #[schema(value_type = String)]
    pub format: Format,
    /// Character encoding read.
    pub encoding: String,
    /// For CSV: the layout detected or given (delimiter, header line, columns, mapping, date format).
    #[schema(value_type = Option<Object>)]
    pub csv_layout: Option<Layout>,
    /// Rows read from the file.
    pub rows_read: usize,
    /// New transactions.
    pub imported: usize,
    /// Rows the ledger already has.
    pub duplicates: usize,
    /// Rows left out on purpose (pending, zero amount).
    pub skipped: usize,
    /// New rows that resemble a ledger transaction (imported anyway; check them).
    pub possible_duplicates: usize,
    /// Rows that could not be read, with their lines.
    pub errors: Vec<RowError>,
    /// Notes (amounts rounded to cents, ...).
    pub warnings: Vec<RowError>,
    /// The first rows with what happens to each (preview only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<PreviewRow>,
}

/// Why an import failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] magpie_db::DbError),
}

/// A row on its way into the ledger.
struct Pending {
    line: usize,
    row: ImportedRow,
}

/// Amounts become positive with the direction in the type; more than two decimals (investment files,
/// 3-decimal currencies) are rounded to cents with a warning, because the ledger keeps cents.
fn to_transaction(row: &Row, warnings: &mut Vec<RowError>) -> Result<NewTransaction, String> {
    let mut amount = row.amount;
    if amount.normalize().scale() > 2 {
        let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
        warnings.push(RowError { line: row.line, message: format!("amount {amount} rounded to {rounded}") });
        amount = rounded;
    }
    let kind = if amount.is_sign_negative() { TransactionType::Expense } else { TransactionType::Income };
    let money = Money::from_decimal(amount.abs()).map_err(|e| e.to_string())?;
    let money = magpie_domain::input::transaction_amount(money).map_err(|e| e.to_string())?;
    let date = magpie_domain::input::check_date(row.date).map_err(|e| e.to_string())?;
    let text: String = row.description.chars().take(magpie_domain::input::MAX_DESCRIPTION_CHARS).collect();
    let description = magpie_domain::input::description(&text)
        .or_else(|_| magpie_domain::input::description("(no description)"))
        .map_err(|e| e.to_string())?;
    Ok(NewTransaction {
        amount: money,
        date,
        description,
        category: Category::uncategorized(),
        kind,
        source: Source::FileImport,
        confidence_score: None,
        category_source: CategorySource::None,
        connection_id: None,
    })
}

/// Pulls rows out of the file in chunks: streaming for CSV, from the parsed statements otherwise.
enum RowSource<'a> {
    Csv(Box<csv_import::Rows<'a>>),
    Parsed(std::vec::IntoIter<(String, Row)>),
}

/// Counts and notes collected while reading.
#[derive(Default)]
struct Tally {
    rows_read: usize,
    skipped: usize,
    errors: Vec<RowError>,
    warnings: Vec<RowError>,
}

/// Everything that stays the same for the whole file.
struct Context {
    account_override: Option<String>,
    occurrences: HashMap<String, Occurrences>,
}

/// Date, amount and normalized description: what must agree for two rows with the same bank id to be
/// the same transaction.
fn content_key(row: &ImportedRow) -> String {
    format!("{}|{}|{}", row.tx.date, row.tx.amount, fingerprint::normalize_description(&row.tx.description))
}

impl Context {
    fn keys(&mut self, account: &str, row: &Row) -> (Option<String>, String) {
        let account = self.account_override.clone().unwrap_or_else(|| account.to_owned());
        let occurrence = self.occurrences.entry(account.clone()).or_default().next(row);
        let fp = fingerprint::fingerprint(&account, row.date, row.amount, &row.description, occurrence);
        let ext = row.external_id.as_deref().map(|id| fingerprint::external_key(&account, id));
        (ext, fp)
    }
}

/// Reads a file chunk by chunk: rows become ledger transactions with their dedup keys; skipped and
/// unreadable rows are tallied. Shared by the import and by the benchmark's bare insert.
pub struct Reader<'a> {
    source: RowSource<'a>,
    categorizing: Option<Arc<crate::ml::Categorizing>>,
    ctx: Context,
    csv_account: String,
    tally: Tally,
    preview: bool,
    preview_skips: Vec<PreviewRow>,
    /// Detected or given format.
    pub format: Format,
    /// Encoding read.
    pub encoding: String,
    /// CSV layout.
    pub csv_layout: Option<Layout>,
}

impl<'a> Reader<'a> {
    /// Open `bytes` (decoded text is kept in `holder`, which must outlive the reader).
    pub fn open(
        bytes: &'a [u8],
        request: &ImportRequest,
        holder: &'a mut Option<std::borrow::Cow<'a, str>>,
    ) -> Result<Reader<'a>, ImportError> {
        Self::open_with(bytes, request, holder, &magpie_import::Cancel::default())
    }

    /// [`Reader::open`], with the parse of a whole-file format stopping when `cancel` is set.
    pub fn open_with(
        bytes: &'a [u8],
        request: &ImportRequest,
        holder: &'a mut Option<std::borrow::Cow<'a, str>>,
        cancel: &magpie_import::Cancel,
    ) -> Result<Reader<'a>, ImportError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
            return Err(ParseError::Empty("the file has no content".into()).into());
        }
        let format = match request.format {
            Some(f) => f,
            None => magpie_import::detect(bytes, request.filename.as_deref())
                .ok_or_else(|| ParseError::Unrecognized("not CSV, OFX/QFX, QIF, CAMT or MT940".into()))?,
        };
        let mut tally = Tally::default();
        let (source, encoding, csv_layout) = if format == Format::Csv {
            let (text, encoding) = csv_import::decode(bytes, &request.csv);
            let text: &'a str = holder.insert(text);
            let layout = csv_import::detect_layout(text, &request.csv)?;
            (RowSource::Csv(Box::new(csv_import::Rows::new(text, layout.clone()))), encoding.to_owned(), Some(layout))
        } else {
            let options =
                magpie_import::Options { format: Some(format), csv: request.csv.clone(), cancel: cancel.clone() };
            let parsed = magpie_import::parse(bytes, &options, request.filename.as_deref())?;
            for Warning { line, message } in &parsed.warnings {
                tally.warnings.push(RowError { line: *line, message: message.clone() });
            }
            let rows: Vec<(String, Row)> = parsed
                .statements
                .into_iter()
                .flat_map(|s| {
                    let key = s.account.key();
                    s.rows.into_iter().map(move |r| (key.clone(), r))
                })
                .collect();
            (RowSource::Parsed(rows.into_iter()), parsed.encoding.to_owned(), None)
        };
        Ok(Reader {
            source,
            categorizing: None,
            ctx: Context { account_override: request.account.clone(), occurrences: Default::default() },
            csv_account: request.csv.account.clone().unwrap_or_default(),
            tally,
            preview: request.dry_run,
            preview_skips: Vec::new(),
            format,
            encoding,
            csv_layout,
        })
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> usize {
        self.tally.rows_read
    }

    /// The next chunk of transactions (empty at the end of the file).
    fn next_chunk(&mut self) -> Result<Vec<Pending>, ImportError> {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            let next: Option<(String, Row)> = match &mut self.source {
                RowSource::Csv(rows) => match rows.next() {
                    None => None,
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Item::Row(r))) => Some((self.csv_account.clone(), r)),
                    Some(Ok(Item::Skipped(w))) => {
                        self.tally.rows_read += 1;
                        if w.message.starts_with("zero amount") {
                            self.tally.skipped += 1;
                        } else {
                            self.tally.errors.push(RowError { line: w.line, message: w.message });
                        }
                        continue;
                    }
                },
                RowSource::Parsed(it) => it.next(),
            };
            let Some((account, row)) = next else { break };
            self.tally.rows_read += 1;
            if row.pending || row.amount.is_zero() {
                self.tally.skipped += 1;
                if self.preview && self.preview_skips.len() < PREVIEW_ROWS {
                    self.preview_skips.push(PreviewRow {
                        line: row.line,
                        date: row.date,
                        amount: Money::from_decimal(row.amount.abs().round_dp(2)).unwrap_or(Money::ZERO),
                        kind: if row.amount.is_sign_negative() {
                            TransactionType::Expense
                        } else {
                            TransactionType::Income
                        },
                        description: row.description.clone(),
                        category: Category::uncategorized(),
                        category_source: CategorySource::None,
                        confidence_score: None,
                        status: if row.pending { RowStatus::Pending } else { RowStatus::ZeroAmount },
                        possible_duplicates: Vec::new(),
                    });
                }
                continue;
            }
            match to_transaction(&row, &mut self.tally.warnings) {
                Ok(mut t) => {
                    if let Some(c) = &self.categorizing {
                        let d = c.decide(&crate::ml::Subject {
                            description: &t.description,
                            amount: t.amount,
                            kind: t.kind,
                            date: t.date,
                        });
                        t.category = d.category;
                        t.confidence_score = d.confidence;
                        t.category_source = d.source;
                    }
                    let (external_key, fingerprint) = self.ctx.keys(&account, &row);
                    chunk.push(Pending { line: row.line, row: ImportedRow { tx: t, external_key, fingerprint } });
                }
                Err(why) => self.tally.errors.push(RowError { line: row.line, message: why }),
            }
        }
        Ok(chunk)
    }

    /// Every transaction of the file, keys computed, nothing checked against a ledger (the benchmark's
    /// "bare" rows).
    pub fn all_rows(mut self) -> Result<Vec<ImportedRow>, ImportError> {
        let mut out = Vec::new();
        loop {
            let chunk = self.next_chunk()?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend(chunk.into_iter().map(|p| p.row));
        }
    }
}

/// What the reading thread hands to the database side.
enum Read {
    /// The file opened: what it is.
    Opened { format: Format, encoding: String, csv_layout: Option<Layout> },
    /// A chunk of rows, the skipped rows to show in a preview, and the rows read so far.
    Chunk { rows: Vec<Pending>, skips: Vec<PreviewRow>, rows_read: usize },
    /// The end of the file, with its counts and notes.
    Done(Tally),
}

/// Read `bytes` chunk by chunk into `out`, until the end or until the receiver is gone (the import
/// failed on the database side). Rows are categorized here, on the reading thread, while the database
/// writes the previous chunk.
fn read_file(
    bytes: &[u8],
    request: &ImportRequest,
    categorizing: Option<Arc<crate::ml::Categorizing>>,
    out: &tokio::sync::mpsc::Sender<Result<Read, ImportError>>,
    cancel: &magpie_import::Cancel,
) {
    let mut holder = None;
    let mut reader = match Reader::open_with(bytes, request, &mut holder, cancel) {
        Ok(r) => r,
        Err(e) => {
            let _ = out.blocking_send(Err(e));
            return;
        }
    };
    reader.categorizing = categorizing;
    let opened = Read::Opened {
        format: reader.format,
        encoding: reader.encoding.clone(),
        csv_layout: reader.csv_layout.clone(),
    };
    if out.blocking_send(Ok(opened)).is_err() {
        return;
    }
    loop {
        let message = match reader.next_chunk() {
            Ok(rows) if rows.is_empty() => Ok(Read::Done(std::mem::take(&mut reader.tally))),
            Ok(rows) => Ok(Read::Chunk {
                rows,
                skips: std::mem::take(&mut reader.preview_skips),
                rows_read: reader.rows_read(),
            }),
            Err(e) => Err(e),
        };
        let last = !matches!(message, Ok(Read::Chunk { .. }));
        if out.blocking_send(message).is_err() || last {
            return;
        }
    }
}

/// The reader stopped without saying why (it panicked).
fn reader_gone() -> ImportError {
    ImportError::Parse(ParseError::Unrecognized("the file reader stopped unexpectedly".into()))
}

/// Sets a [`magpie_import::Cancel`] when dropped: the reading thread of an import whose request is gone
/// (timed out, client disconnected) stops instead of parsing on for nobody.
struct CancelOnDrop(magpie_import::Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Run an import (or its preview). `progress` is called with the number of rows read so far.
///
/// The file is read on a blocking thread while this task checks and writes the previous chunk, so
/// parsing overlaps the database's work (on PostgreSQL, another process; on SQLite, another thread).
/// When this future is dropped before it finishes, the reading thread stops at its next check.
pub async fn run(
    db: &Db,
    ml: &crate::ml::Ml,
    user: UserId,
    bytes: axum::body::Bytes,
    request: &ImportRequest,
    mut progress: impl FnMut(usize),
) -> Result<ImportReport, ImportError> {
    let categorizing = {
        let mut conn = db.conn().await?;
        Arc::new(crate::ml::Categorizing::load(ml, conn.c(), user, crate::ml::MemoryScope::All).await?)
    };
    let (sender, mut chunks) = tokio::sync::mpsc::channel(2);
    let thread_request = request.clone();
    let cancel = magpie_import::Cancel::default();
    let _stop_reader = CancelOnDrop(cancel.clone());
    let reading =
        tokio::task::spawn_blocking(move || read_file(&bytes, &thread_request, Some(categorizing), &sender, &cancel));
    let result = import_chunks(db, user, request, &mut chunks, &mut progress).await;
    // On failure, dropping the receiver stops the reader at its next chunk.
    drop(chunks);
    let _ = reading.await;
    result
}

async fn import_chunks(
    db: &Db,
    user: UserId,
    request: &ImportRequest,
    chunks: &mut tokio::sync::mpsc::Receiver<Result<Read, ImportError>>,
    progress: &mut impl FnMut(usize),
) -> Result<ImportReport, ImportError> {
    let Some(Read::Opened { format, encoding, csv_layout }) = chunks.recv().await.transpose()? else {
        return Err(reader_gone());
    };
    // One transaction, previews included (read-only, rolled back), so every chunk sees the same ledger
    // and a committed import is all or nothing.
    let mut tx: DbTx = if request.dry_run { db.begin_read().await? } else { db.begin().await? };
    let mut batch = None;
    if !request.dry_run {
        let b =
            imports::create_batch(tx.c(), user, request.filename.as_deref(), format.as_str(), Some(&encoding)).await?;
        batch = Some(b.id);
    }
    let mut report = ImportReport {
        batch_id: batch,
        dry_run: request.dry_run,
        format,
        encoding,
        csv_layout,
        rows_read: 0,
        imported: 0,
        duplicates: 0,
        skipped: 0,
        possible_duplicates: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
        rows: Vec::new(),
    };
    // External keys seen in this file, with what the row said.
    let mut seen_external: HashMap<String, String> = HashMap::new();
    let tally = loop {
        let (mut chunk, mut skips, rows_read) = match chunks.recv().await.transpose()? {
            Some(Read::Chunk { rows, skips, rows_read }) => (rows, skips, rows_read),
            Some(Read::Done(tally)) => break tally,
            Some(Read::Opened { .. }) | None => return Err(reader_gone()),
        };
        report.rows.append(&mut skips);
        progress(rows_read);
        // Dedup against the ledger.
        let keys = KeyLookup {
            external: chunk.iter().filter_map(|p| p.row.external_key.as_deref()).collect(),
            fingerprints: chunk.iter().map(|p| p.row.fingerprint.as_str()).collect(),
            dates: chunk.iter().map(|p| p.row.tx.date).min().zip(chunk.iter().map(|p| p.row.tx.date).max()),
        };
        let existing = imports::existing_keys(tx.c(), user, &keys).await?;
        drop(keys);
        let mut statuses = Vec::with_capacity(chunk.len());
        for p in &mut chunk {
            let mut status = match &p.row.external_key {
                Some(k) if existing.contains(k) => RowStatus::DuplicateId,
                _ if existing.contains(&p.row.fingerprint) => RowStatus::DuplicateFingerprint,
                _ => RowStatus::New,
            };
            if status == RowStatus::New
                && let Some(k) = p.row.external_key.clone()
            {
                match seen_external.get(&k) {
                    // The same bank id twice in one file (a zip holding a statement twice): the same
                    // transaction if the rows agree; otherwise the bank reused an id and only the
                    // fingerprint can tell the rows apart.
                    Some(first) if *first == content_key(&p.row) => status = RowStatus::RepeatedInFile,
                    Some(_) => p.row.external_key = None,
                    None => {
                        seen_external.insert(k, content_key(&p.row));
                    }
                }
            }
            statuses.push(status);
        }
        let new = statuses.iter().filter(|s| **s == RowStatus::New).count();
        report.duplicates += statuses.len() - new;
        if request.dry_run {
            let fuzzy = possible_duplicates(&mut tx, user, &chunk, &statuses).await?;
            report.possible_duplicates += fuzzy.iter().filter(|f| !f.is_empty()).count();
            for ((p, status), dupes) in chunk.iter().zip(statuses).zip(fuzzy) {
                if report.rows.len() >= PREVIEW_ROWS {
                    break;
                }
                report.rows.push(PreviewRow {
                    line: p.line,
                    date: p.row.tx.date,
                    amount: p.row.tx.amount,
                    kind: p.row.tx.kind,
                    description: p.row.tx.description.clone(),
                    category: p.row.tx.category.clone(),
                    category_source: p.row.tx.category_source,
                    confidence_score: p.row.tx.confidence_score,
                    status,
                    possible_duplicates: dupes,
                });
            }
            report.imported += new;
        } else {
            let fresh: Vec<ImportedRow> =
                chunk.into_iter().zip(&statuses).filter(|(_, s)| **s == RowStatus::New).map(|(p, _)| p.row).collect();
            let n = imports::insert_imported(tx.c(), user, batch, &fresh).await?;
            report.imported += n as usize;
        }
    };
    report.rows_read = tally.rows_read;
    report.skipped = tally.skipped;
    report.errors = tally.errors;
    report.warnings = tally.warnings;
    report.rows.sort_by_key(|r| r.line);
    report.rows.truncate(PREVIEW_ROWS);
    if let Some(b) = batch {
        let counts = Counts {
            rows_read: report.rows_read as i64,
            imported: report.imported as i64,
            duplicates: report.duplicates as i64,
            skipped: report.skipped as i64,
            errors: report.errors.len() as i64,
        };
        imports::finish_batch(tx.c(), b, counts).await?;
        // Goals tracking a category of the new rows count them in the same transaction.
        magpie_db::goals::recompute_tracked(tx.c(), user).await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(report)
}

/// Words of a description, for the "similar text" test of possible duplicates.
fn words(s: &str) -> HashSet<String> {
    fingerprint::normalize_description(s).split(' ').filter(|w| w.len() > 1).map(str::to_owned).collect()
}

fn similar(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return false;
    }
    let common = wa.intersection(&wb).count();
    common * 3 >= wa.len().min(wb.len())
}

/// For each new row of a chunk: ledger transactions of the same amount and type within a few days whose
/// text is similar (the same payment imported from another file or format).
async fn possible_duplicates(
    tx: &mut DbTx,
    user: UserId,
    chunk: &[Pending],
    statuses: &[RowStatus],
) -> Result<Vec<Vec<PossibleDuplicate>>, ImportError> {
    let new: Vec<&Pending> =
        chunk.iter().zip(statuses).filter(|(_, s)| **s == RowStatus::New).map(|(p, _)| p).collect();
    let mut out = vec![Vec::new(); chunk.len()];
    let (Some(min), Some(max)) = (new.iter().map(|p| p.row.tx.date).min(), new.iter().map(|p| p.row.tx.date).max())
    else {
        return Ok(out);
    };
    let mut amounts: Vec<Money> = new.iter().map(|p| p.row.tx.amount).collect();
    amounts.sort();
    amounts.dedup();
    let from = min - chrono::Days::new(FUZZY_DAYS);
    let to = max + chrono::Days::new(FUZZY_DAYS);
    let found: Vec<Candidate> = imports::candidates(tx.c(), user, from, to, &amounts).await?;
    for (i, (p, status)) in chunk.iter().zip(statuses).enumerate() {
        if *status != RowStatus::New {
            continue;
        }
        for cand in &found {
            let days = (cand.date - p.row.tx.date).num_days().abs();
            if cand.amount == p.row.tx.amount
                && cand.kind == p.row.tx.kind
                && days <= FUZZY_DAYS as i64
                && similar(&cand.description, &p.row.tx.description)
            {
                out[i].push(PossibleDuplicate {
                    transaction_id: cand.id.to_string(),
                    date: cand.date,
                    description: cand.description.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn similar_texts_share_words() {
        assert!(similar("STARBUCKS STORE 1234 SEATTLE", "Starbucks Store"));
        assert!(!similar("STARBUCKS", "SHELL OIL"));
    }

    #[test]
    fn extra_decimals_are_rounded_with_a_warning() {
        let row = Row {
            line: 3,
            date: "2024-01-02".parse().unwrap(),
            value_date: None,
            amount: Decimal::new(1158331, 4),
            currency: None,
            description: "x".into(),
            payee: None,
            memo: None,
            external_id: None,
            kind: None,
            pending: false,
        };
        let mut w = Vec::new();
        let t = to_transaction(&row, &mut w).unwrap();
        assert_eq!(t.amount.to_string(), "115.83");
        assert_eq!(t.kind, TransactionType::Income);
        assert_eq!(w.len(), 1);
    }
}
