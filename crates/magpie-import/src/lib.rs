//! Bank statement parsers: bytes in, statements out. No database, no HTTP: the server decides what to do
//! with the rows (deduplicate, categorize, store).
//!
//! Formats: CSV (encoding, delimiter, header, date format and number style detected; mappings and presets
//! override), OFX 1.x SGML and 2.x XML (also QFX/QBO), QIF, ISO 20022 CAMT.052/053/054 (any version, also
//! zipped), SWIFT MT940/MT942. Amounts are exact decimals, signed from the account holder's point of view
//! (money in is positive). Every row remembers where in the file it came from, so errors and previews can
//! name the line.

pub mod archive;
pub mod camt;
pub mod csv;
pub mod dates;
pub mod fingerprint;
pub mod mt940;
pub mod number;
pub mod ofx;
pub mod qif;
pub mod text;
pub mod tree;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

/// Stops a parse running on another thread, e.g. when the request it serves is gone. Clones share the
/// flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ask every holder to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled.
    pub fn check(&self) -> Result<(), ParseError> {
        if self.is_cancelled() { Err(ParseError::Cancelled) } else { Ok(()) }
    }
}

/// A statement file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma/semicolon/tab separated values.
    Csv,
    /// OFX (and QFX/QBO, which are OFX).
    Ofx,
    /// Quicken Interchange Format.
    Qif,
    /// ISO 20022 camt.052/053/054 XML, or a zip of such files.
    Camt,
    /// SWIFT MT940/MT942.
    Mt940,
}

impl Format {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ofx => "ofx",
            Format::Qif => "qif",
            Format::Camt => "camt",
            Format::Mt940 => "mt940",
        }
    }

    /// Parse a user-given format name (`qfx` and `qbo` are OFX, `sta` and `mt942` are MT940).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "ofx" | "qfx" | "qbo" => Some(Format::Ofx),
            "qif" => Some(Format::Qif),
            "camt" | "xml" | "camt052" | "camt053" | "camt054" | "zip" => Some(Format::Camt),
            "mt940" | "mt942" | "sta" | "940" | "942" => Some(Format::Mt940),
            _ => None,
        }
    }
}

/// Identification of the account a statement is for, as far as the file tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Account number or IBAN.
    pub id: Option<String>,
    /// Bank id (routing number, BIC, bank code).
    pub bank_id: Option<String>,
    /// Account name or type.
    pub name: Option<String>,
    /// ISO currency.
    pub currency: Option<String>,
}

impl Account {
    /// A stable key for deduplication: bank and account id, or empty when the file names no account.
    pub fn key(&self) -> String {
        match (&self.bank_id, &self.id) {
            (Some(b), Some(a)) => format!("{}/{}", b.trim(), a.trim()),
            (None, Some(a)) => a.trim().to_owned(),
            _ => String::new(),
        }
    }
}

/// A balance at a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Signed amount.
    pub amount: Decimal,
    /// Date of the balance.
    pub date: Option<NaiveDate>,
}

/// One transaction of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Line (text formats) or element position (XML) where the row starts, 1-based.
    pub line: usize,
    /// Booking date.
    pub date: NaiveDate,
    /// Value date, when different information is given.
    pub value_date: Option<NaiveDate>,
    /// Signed amount: positive is money in.
    pub amount: Decimal,
    /// Currency, when the file says.
    pub currency: Option<String>,
    /// What to show: payee and memo combined, as a person would read it.
    pub description: String,
    /// Counterparty.
    pub payee: Option<String>,
    /// Free text / remittance information.
    pub memo: Option<String>,
    /// The file's own id for the transaction (FITID, bank reference), when it has one.
    pub external_id: Option<String>,
    /// The bank's transaction type or code.
    pub kind: Option<String>,
    /// Not yet booked (a pending card payment): reported, but not imported into the ledger.
    pub pending: bool,
}

/// One account's statement within a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The account.
    pub account: Account,
    /// Balance before the first row.
    pub opening_balance: Option<Balance>,
    /// Balance after the last row.
    pub closing_balance: Option<Balance>,
    /// The transactions.
    pub rows: Vec<Row>,
}

/// Something skipped or repaired while parsing, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Line or element position, 1-based (0 when it concerns the whole file).
    pub line: usize,
    /// What happened.
    pub message: String,
}

/// The result of parsing a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedFile {
    /// Detected or requested format.
    pub format: Format,
    /// Character encoding the text was read in.
    pub encoding: &'static str,
    /// Statements, one per account (and per statement period in multi-statement files).
    pub statements: Vec<Statement>,
    /// Rows skipped or repaired.
    pub warnings: Vec<Warning>,
    /// For CSV: the layout that was detected or given.
    pub csv_layout: Option<csv::Layout>,
}

impl ParsedFile {
    /// All rows of all statements.
    pub fn rows(&self) -> impl Iterator<Item = (&Statement, &Row)> {
        self.statements.iter().flat_map(|s| s.rows.iter().map(move |r| (s, r)))
    }

    /// Number of rows.
    pub fn row_count(&self) -> usize {
        self.statements.iter().map(|s| s.rows.len()).sum()
    }
}

/// Why a file could not be read. `line` is where the problem was found (0 for the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing in the file looks like a statement of any supported format.
    #[error("unrecognized file: {0}")]
    Unrecognized(String),
    /// The file is empty or has no transactions section at all.
    #[error("empty file: {0}")]
    Empty(String),
    /// The file is beyond what is read at all (too deeply nested, too many elements, a zip that
    /// unpacks to too much): refused whole, before it costs the server its memory.
    #[error("refused: {0}")]
    Limit(String),
    /// The parse was stopped by its [`Cancel`] (nobody waits for it any more).
    #[error("cancelled")]
    Cancelled,
    /// The file is of the format but broken at `line`.
    #[error("line {line}: {message}")]
    Malformed {
        /// Line or element position.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ParseError {
    /// A malformed-file error.
    pub fn at(line: usize, message: impl Into<String>) -> ParseError {
        ParseError::Malformed { line, message: message.into() }
    }
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// CSV column mapping, preset and conventions (only for CSV).
    pub csv: csv::CsvOptions,
    /// Stops the parse from elsewhere.
    pub cancel: Cancel,
}

/// Guess the format from the content (and the file name, as a tie-breaker).
pub fn detect(bytes: &[u8], filename: Option<&str>) -> Option<Format> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Some(Format::Camt);
    }
    let head_len = bytes.len().min(4096);
    let head = text::decode_sample(&bytes[..head_len]);
    let trimmed = head.trim_start_matches('\u{feff}').trim_start();
    let upper = trimmed.chars().take(4096).collect::<String>().to_ascii_uppercase();
    if upper.contains("OFXHEADER") || upper.contains("<OFX>") || upper.contains("<OFX ") {
        return Some(Format::Ofx);
    }
    if trimmed.starts_with('<') && (head.contains("camt.05") || head.contains("BkToCstmr")) {
        return Some(Format::Camt);
    }
    if upper.starts_with("!TYPE")
        || upper.starts_with("!ACCOUNT")
        || upper.starts_with("!OPTION")
        || upper.starts_with("!CLEAR")
    {
        return Some(Format::Qif);
    }
    if trimmed.starts_with("{1:") || looks_like_mt940(trimmed) {
        return Some(Format::Mt940);
    }
    if let Some(ext) = filename.and_then(|f| f.rsplit_once('.')).map(|(_, e)| e)
        && let Some(f) = Format::from_name(ext)
        && (f != Format::Camt || trimmed.starts_with('<'))
    {
        return Some(f);
    }
    if trimmed.starts_with('<') && upper.contains("<DOCUMENT") {
        return Some(Format::Camt);
    }
    if !trimmed.is_empty() {
        return Some(Format::Csv);
    }
    None
}

fn looks_like_mt940(text: &str) -> bool {
    let mut tags = 0;
    for line in text.lines().take(60) {
        let l = line.trim_start();
        if l.starts_with(":20:")
            || l.starts_with(":25:")
            || l.starts_with(":28C:")
            || l.starts_with(":60F:")
            || l.starts_with(":61:")
        {
            tags += 1;
        }
    }
    tags >= 2
}

/// Parse a whole file held in memory.
pub fn parse(bytes: &[u8], options: &Options, filename: Option<&str>) -> Result<ParsedFile, ParseError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return Err(ParseError::Empty("the file has no content".to_owned()));
    }
    let format = match options.format {
        Some(f) => f,
        None => detect(bytes, filename)
            .ok_or_else(|| ParseError::Unrecognized("not CSV, OFX/QFX, QIF, CAMT or MT940".to_owned()))?,
    };
    let mut parsed = match format {
        Format::Csv => csv::parse(bytes, &options.csv)?,
        Format::Ofx => ofx::parse_with(bytes, &options.cancel)?,
        Format::Qif => qif::parse(bytes)?,
        Format::Camt => camt::parse_with(bytes, &options.cancel)?,
        Format::Mt940 => mt940::parse(bytes)?,
    };
    parsed.format = format;
    Ok(parsed)
}

/// Join non-empty text parts with " / ", trimming and collapsing whitespace: the description shown for
/// a row with a payee and a memo. A part already contained in an earlier one is left out.
pub fn join_description(parts: &[Option<&str>]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in parts.iter().flatten() {
        let clean = collapse_whitespace(p);
        if clean.is_empty() || out.iter().any(|o| o.eq_ignore_ascii_case(&clean) || o.contains(&clean)) {
            continue;
        }
        out.push(clean);
    }
    match out.len() {
        0 => String::new(),
        1 => out.pop().expect("one part"),
        _ => out.join(" / "),
    }
}

/// Trim and turn every run of whitespace into one space (without allocating twice when there is none).
pub fn collapse_whitespace(s: &str) -> String {
    let t = s.trim();
    let clean = !t.as_bytes().windows(2).any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        && !t.bytes().any(|b| b.is_ascii_whitespace() && b != b' ')
        && t.is_ascii();
    if clean { t.to_owned() } else { t.split_whitespace().collect::<Vec<_>>().join(" ") }
}
