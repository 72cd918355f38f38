//! CSV statements. Everything a bank varies is detected from the file and can be overridden:
//! encoding, delimiter, preamble lines before the header (or no header at all), which column is what
//! (date, amount or debit/credit, sign indicator, payee, memo, reference, currency), the date layout
//! (decided once per file), decimal comma and thousands separators, and negatives in parentheses.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::dates::{self, DateFormat};
use crate::number::{self, DecimalMark};
use crate::{Account, Format, ParseError, ParsedFile, Row, Statement, Warning};

/// A column, by 0-based position or by header name (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    /// 0-based position.
    Index(usize),
    /// Header name.
    Name(String),
}

/// Which column holds what. Any field left empty is detected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Booking date.
    pub date: Option<Column>,
    /// Value date.
    pub value_date: Option<Column>,
    /// Signed amount (or unsigned with `sign`).
    pub amount: Option<Column>,
    /// Money out, for files with separate debit and credit columns.
    pub debit: Option<Column>,
    /// Money in.
    pub credit: Option<Column>,
    /// Debit/credit indicator (`D`/`C`, `Af`/`Bij`, `S`/`H`, `Debit`/`Credit`, `-`/`+`).
    pub sign: Option<Column>,
    /// Counterparty.
    pub payee: Option<Column>,
    /// Description / purpose.
    pub description: Option<Column>,
    /// Additional text.
    pub memo: Option<Column>,
    /// The bank's transaction id.
    pub reference: Option<Column>,
    /// Currency.
    pub currency: Option<Column>,
}

/// How to read a CSV file. Everything is optional; what is not given is detected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// A named bank layout (`CsvOptions::PRESETS`).
    pub preset: Option<String>,
    /// Column roles.
    pub mapping: Option<Mapping>,
    /// Field delimiter.
    pub delimiter: Option<char>,
    /// Lines to skip before the header (or before the data when there is no header).
    pub skip_lines: Option<usize>,
    /// Whether the first (kept) line is a header.
    pub has_header: Option<bool>,
    /// Date layout.
    pub date_format: Option<DateFormat>,
    /// Decimal mark.
    pub decimal_mark: Option<DecimalMark>,
    /// Flip every sign (card issuers that export charges as positive numbers).
    pub invert_sign: Option<bool>,
    /// Character encoding label (`windows-1252`, `utf-16le`, ...).
    pub encoding: Option<String>,
    /// Account name, for files that do not say which account they are for.
    pub account: Option<String>,
}

impl CsvOptions {
    /// Named layouts of common exports. Detection handles most files on its own; a preset pins the
    /// choices for a bank whose files are ambiguous.
    pub const PRESETS: &'static [&'static str] = &["ing-nl", "ing-de", "paypal", "chase", "amex", "schwab"];

    /// The options a preset stands for (explicit options given alongside still win).
    pub fn preset(name: &str) -> Option<CsvOptions> {
        let n = |s: &str| Some(Column::Name(s.to_owned()));
        let mut o = CsvOptions::default();
        match name {
            "ing-nl" => {
                o.mapping = Some(Mapping {
                    date: n("Datum"),
                    payee: n("Naam / Omschrijving"),
                    sign: n("Af Bij"),
                    amount: n("Bedrag (EUR)"),
                    memo: n("Mededelingen"),
                    ..Mapping::default()
                });
                o.decimal_mark = Some(DecimalMark::Comma);
            }
            "ing-de" => {
                o.mapping = Some(Mapping {
                    date: n("Buchung"),
                    value_date: n("Valuta"),
                    payee: n("Auftraggeber/Empfänger"),
                    description: n("Buchungstext"),
                    memo: n("Verwendungszweck"),
                    amount: n("Betrag"),
                    currency: n("Währung"),
                    ..Mapping::default()
                });
                o.decimal_mark = Some(DecimalMark::Comma);
                o.date_format = Some(DateFormat::Dmy);
                o.delimiter = Some(';');
            }
            "paypal" => {
                o.mapping = Some(Mapping {
                    date: n("Date"),
                    payee: n("Name"),
                    description: n("Type"),
                    amount: n("Net"),
                    currency: n("Currency"),
                    reference: n("Transaction ID"),
                    ..Mapping::default()
                });
            }
            "chase" => {
                o.mapping = Some(Mapping {
                    date: n("Posting Date"),
                    description: n("Description"),
                    amount: n("Amount"),
                    ..Mapping::default()
                });
                o.date_format = Some(DateFormat::Mdy);
            }
            "amex" => {
                o.mapping = Some(Mapping {
                    date: n("Date"),
                    description: n("Description"),
                    amount: n("Amount"),
                    ..Mapping::default()
                });
                o.date_format = Some(DateFormat::Mdy);
                o.invert_sign = Some(true);
            }
            "schwab" => {
                o.mapping = Some(Mapping {
                    date: n("Date"),
                    description: n("Description"),
                    debit: n("Withdrawal"),
                    credit: n("Deposit"),
                    reference: n("Check #"),
                    ..Mapping::default()
                });
                o.date_format = Some(DateFormat::Mdy);
            }
            _ => return None,
        }
        Some(o)
    }

    /// These options laid over a preset's.
    fn resolved(&self) -> Result<CsvOptions, ParseError> {
        let Some(name) = &self.preset else { return Ok(self.clone()) };
        let base = CsvOptions::preset(name).ok_or_else(|| {
            ParseError::Unrecognized(format!("unknown CSV preset '{name}' (known: {})", Self::PRESETS.join(", ")))
        })?;
        Ok(CsvOptions {
            preset: self.preset.clone(),
            mapping: self.mapping.clone().or(base.mapping),
            delimiter: self.delimiter.or(base.delimiter),
            skip_lines: self.skip_lines.or(base.skip_lines),
            has_header: self.has_header.or(base.has_header),
            date_format: self.date_format.or(base.date_format),
            decimal_mark: self.decimal_mark.or(base.decimal_mark),
            invert_sign: self.invert_sign.or(base.invert_sign),
            encoding: self.encoding.clone().or(base.encoding),
            account: self.account.clone().or(base.account),
        })
    }
}

/// Column positions after detection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// Booking date.
    pub date: usize,
    /// Value date.
    pub value_date: Option<usize>,
    /// Amount.
    pub amount: Option<usize>,
    /// Debit.
    pub debit: Option<usize>,
    /// Credit.
    pub credit: Option<usize>,
    /// Sign indicator.
    pub sign: Option<usize>,
    /// Payee.
    pub payee: Option<usize>,
    /// Description.
    pub description: Option<usize>,
    /// Memo.
    pub memo: Option<usize>,
    /// Reference.
    pub reference: Option<usize>,
    /// Currency.
    pub currency: Option<usize>,
}

/// The layout of a CSV file: what was detected or given, shown in import previews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// Delimiter.
    pub delimiter: char,
    /// 1-based line of the header, if any.
    pub header_line: Option<usize>,
    /// Column names (header cells, or `column 1`, `column 2`, ... without a header).
    pub columns: Vec<String>,
    /// Column roles.
    pub mapping: Resolved,
    /// Date layout.
    pub date_format: DateFormat,
    /// Decimal mark.
    pub decimal_mark: DecimalMark,
    /// Whether signs are flipped.
    pub invert_sign: bool,
    /// Records (0-based) before the data.
    #[serde(skip)]
    skip_records: usize,
}

struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Read the records of the text; `limit` bounds how many (for detection on a sample).
fn records(text: &str, delimiter: u8, limit: usize) -> Vec<Record> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut rec = ::csv::StringRecord::new();
    let mut lines = LineCounter::default();
    while out.len() < limit {
        match rdr.read_record(&mut rec) {
            Ok(true) => out.push(Record {
                line: lines.line_at(text, rec.position().map(|p| p.byte() as usize).unwrap_or(0)),
                fields: rec.iter().map(str::to_owned).collect(),
            }),
            Ok(false) => break,
            // An unterminated quote etc.: stop the sample here; the full read reports the line.
            Err(_) => break,
        }
    }
    out
}

/// 1-based line numbers of byte offsets visited in increasing order (the csv crate's own line count
/// skips blank lines).
#[derive(Debug, Default)]
struct LineCounter {
    byte: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, byte: usize) -> usize {
        let mut byte = byte.min(text.len());
        // A record's position includes the blank lines before it.
        while byte < text.len() && matches!(text.as_bytes()[byte], b'\n' | b'\r') {
            byte += 1;
        }
        if byte < self.byte {
            self.byte = 0;
            self.line = 0;
        }
        self.line += memchr::memchr_iter(b'\n', &text.as_bytes()[self.byte..byte]).count();
        self.byte = byte;
        self.line + 1
    }
}

fn is_blank(r: &Record) -> bool {
    r.fields.iter().all(|f| f.trim().is_empty())
}

/// The delimiter whose field counts are the most consistent over the sample.
fn detect_delimiter(text: &str) -> u8 {
    let sample: String = text.lines().filter(|l| !l.trim().is_empty()).take(60).collect::<Vec<_>>().join("\n");
    let mut best = (b',', 0usize, 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let recs = records(&sample, d, 60);
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for r in &recs {
            if r.fields.len() >= 2 {
                *counts.entry(r.fields.len()).or_default() += 1;
            }
        }
        if let Some((&fields, &lines)) = counts.iter().max_by_key(|(f, n)| (**n, **f))
            && (lines > best.1 || (lines == best.1 && fields > best.2))
        {
            best = (d, lines, fields);
        }
    }
    best.0
}

fn normalize_header(s: &str) -> String {
    s.trim()
        .trim_matches('"')
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Role {
    Date,
    ValueDate,
    Amount,
    Debit,
    Credit,
    Sign,
    Payee,
    Description,
    Memo,
    Reference,
    Currency,
    Balance,
}

/// Header words in the languages of the banks we have seen. Exact matches score higher than words
/// contained in a longer header.
const KEYWORDS: &[(Role, &[&str])] = &[
    (
        Role::Date,
        &[
            "date",
            "booking date",
            "transaction date",
            "posting date",
            "posted date",
            "date posted",
            "trans. date",
            "trans date",
            "post date",
            "datum",
            "buchungstag",
            "buchungsdatum",
            "buchung",
            "boekingsdatum",
            "fecha",
            "data",
            "date operation",
            "date de l'opération",
            "date opération",
            "fecha operación",
            "data operazione",
            "data contabile",
            "data księgowania",
            "completed date",
            "started date",
            "transactiedatum",
            "run date",
            "order date",
            "könyvelés dátuma",
            "dátum",
            "data transakcji",
            "data operacji",
            "bokföringsdag",
            "transaktionsdatum",
            "bogføringsdato",
            "dato",
            "kirjauspäivä",
            "päivämäärä",
            "datum zaúčtování",
            "datum transakce",
            "data lançamento",
            "data movimento",
            "fecha contable",
            "datetime",
            "transaction date/time",
        ],
    ),
    (
        Role::ValueDate,
        &[
            "value date",
            "valutadatum",
            "wertstellung",
            "valuta",
            "rentedatum",
            "date valeur",
            "fecha valor",
            "valuta datum",
        ],
    ),
    (
        Role::Amount,
        &[
            "amount",
            "betrag",
            "bedrag",
            "montant",
            "importe",
            "importo",
            "valor",
            "kwota",
            "umsatz",
            "transaction amount",
            "net",
            "net amount",
            "amount (eur)",
            "amount (usd)",
            "bedrag (eur)",
            "betrag (eur)",
            "transactiebedrag",
            "montant (eur)",
            "value",
            "összeg",
            "kwota transakcji",
            "belopp",
            "beløb",
            "beløp",
            "summa",
            "määrä",
            "částka",
            "montante",
            "neto",
            "netto",
            "amount (total)",
            "item total",
            "total amount",
            "total",
            "bedrag (eur)",
        ],
    ),
    (
        Role::Debit,
        &[
            "debit",
            "debet",
            "withdrawal",
            "withdrawals",
            "money out",
            "paid out",
            "soll",
            "ausgang",
            "débit",
            "cargo",
            "uscite",
            "outflow",
            "debit amount",
            "amount debit",
            "lastschrift",
            "payment",
            "charge",
        ],
    ),
    (
        Role::Credit,
        &[
            "credit",
            "deposit",
            "deposits",
            "money in",
            "paid in",
            "haben",
            "eingang",
            "crédit",
            "abono",
            "entrate",
            "inflow",
            "credit amount",
            "amount credit",
            "gutschrift",
        ],
    ),
    (
        Role::Sign,
        &[
            "af bij",
            "af/bij",
            "debit/credit",
            "credit/debit",
            "d/c",
            "c/d",
            "cd",
            "dc",
            "soll/haben",
            "s/h",
            "dr/cr",
            "credit debit indicator",
            "debit credit indicator",
            "debit/credit indicator",
            "creditdebet",
            "credit/debet",
            "debet/credit",
            "bij/af",
        ],
    ),
    (
        Role::Payee,
        &[
            "payee",
            "name",
            "beneficiary",
            "counterparty",
            "merchant",
            "beguenstigter/zahlungspflichtiger",
            "begünstigter/zahlungspflichtiger",
            "auftraggeber/empfänger",
            "auftraggeber / begünstigter",
            "empfänger",
            "zahlungsempfänger",
            "naam / omschrijving",
            "naam tegenpartij",
            "tegenpartij",
            "naam",
            "to / from",
            "bénéficiaire",
            "beneficiario",
            "counter party",
            "merchant name",
            "other party",
            "partner neve",
            "nazwa kontrahenta",
            "kontrahent",
            "mottagare",
            "modtager",
            "saaja",
            "protistrana",
            "nombre",
            "nome",
            "title",
        ],
    ),
    (
        Role::Description,
        &[
            "description",
            "details",
            "narrative",
            "omschrijving",
            "libellé",
            "libelle",
            "concepto",
            "descrizione",
            "descrição",
            "transaction description",
            "text",
            "buchungstext",
            "opis",
            "particulars",
            "type",
            "description 1",
            "transaction details",
            "mutatiesoort",
        ],
    ),
    (
        Role::Memo,
        &[
            "memo",
            "notes",
            "note",
            "verwendungszweck",
            "mededelingen",
            "reference text",
            "purpose",
            "remittance information",
            "additional information",
            "description 2",
            "communication",
            "zweck",
            "motivo",
            "omschrijving-1",
            "közlemény",
            "tytuł",
            "meddelande",
            "viesti",
            "zpráva",
            "mensagem",
            "causale",
            "subject",
        ],
    ),
    (
        Role::Reference,
        &[
            "reference",
            "ref",
            "transaction id",
            "id",
            "fitid",
            "referentie",
            "kundenreferenz",
            "bank reference",
            "transaction reference",
            "reference number",
            "check number",
            "check #",
            "cheque number",
            "receipt id",
            "transaktions-id",
            "transaktionsnummer",
        ],
    ),
    (
        Role::Currency,
        &[
            "currency",
            "währung",
            "ccy",
            "munt",
            "devise",
            "moneda",
            "waehrung",
            "devizanem",
            "waluta",
            "měna",
            "moeda",
            "divisa",
            "valuuta",
        ],
    ),
    (Role::Balance, &["balance", "saldo", "running balance", "kontostand", "solde", "new balance", "saldo na mutatie"]),
];

/// The role a header names and how confidently (2 exact, 1 contained).
fn header_role(header: &str) -> Option<(Role, u8)> {
    let h = normalize_header(header);
    if h.is_empty() {
        return None;
    }
    let mut best: Option<(Role, u8)> = None;
    for (role, words) in KEYWORDS {
        for w in *words {
            let score = if h == *w {
                3
            } else if w.len() >= 4 && h.strip_prefix(w).is_some_and(|rest| rest.starts_with([' ', '('])) {
                2
            } else if w.len() >= 5 && h.contains(w) {
                1
            } else {
                0
            };
            if score > 0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((*role, score));
            }
        }
    }
    best
}

fn find_column(columns: &[String], col: &Column) -> Result<usize, ParseError> {
    match col {
        Column::Index(i) if *i < columns.len() => Ok(*i),
        Column::Index(i) => {
            Err(ParseError::Unrecognized(format!("column {i} does not exist ({} columns)", columns.len())))
        }
        Column::Name(name) => {
            let wanted = normalize_header(name);
            columns.iter().position(|c| normalize_header(c) == wanted).ok_or_else(|| {
                ParseError::Unrecognized(format!("no column named '{name}' (columns: {})", columns.join(", ")))
            })
        }
    }
}

fn sign_of(indicator: &str) -> Option<bool> {
    // true = money in
    match normalize_header(indicator).as_str() {
        "c" | "cr" | "credit" | "bij" | "h" | "haben" | "+" | "in" | "crdt" | "gutschrift" | "deposit" => Some(true),
        "d" | "dr" | "debit" | "debet" | "af" | "s" | "soll" | "-" | "out" | "dbit" | "lastschrift" | "withdrawal" => {
            Some(false)
        }
        _ => None,
    }
}

/// Detect (or apply the given) layout from the decoded text.
pub fn detect_layout(text: &str, options: &CsvOptions) -> Result<Layout, ParseError> {
    let options = options.resolved()?;
    let delimiter = match options.delimiter {
        Some(c) if c.is_ascii() => c as u8,
        Some(c) => return Err(ParseError::Unrecognized(format!("delimiter '{c}' is not a single ASCII character"))),
        None => detect_delimiter(text),
    };
    let sample = records(text, delimiter, 2000);
    let skip = options.skip_lines.unwrap_or(0);
    let usable: Vec<(usize, &Record)> =
        sample.iter().enumerate().filter(|(_, r)| r.line > skip && !is_blank(r)).collect();
    if usable.is_empty() {
        return Err(ParseError::Empty("the file has no rows".to_owned()));
    }
    if !usable.iter().any(|(_, r)| r.fields.len() >= 2) {
        return Err(ParseError::Unrecognized(
            "not a table: no delimiter gives the lines two or more columns".to_owned(),
        ));
    }
    let table: Vec<(usize, &Record)> = usable.iter().filter(|(_, r)| r.fields.len() >= 2).copied().collect();
    let looks_like_date = |f: &str| DateFormat::ALL.iter().any(|d| d.parse(f).is_some());

    // Header: the first row (of any width: preamble lines come first) whose cells name roles, a date or
    // an amount at least.
    let header_idx = match options.has_header {
        Some(false) => None,
        _ => table.iter().take(40).find_map(|(i, r)| {
            let roles: Vec<Role> = r.fields.iter().filter_map(|f| header_role(f).map(|x| x.0)).collect();
            let numeric = r.fields.iter().filter(|f| number::parse_amount(f, DecimalMark::Auto).is_some()).count();
            let named = roles.contains(&Role::Date)
                || roles.iter().any(|x| matches!(x, Role::Amount | Role::Debit | Role::Credit));
            (named && roles.len() >= 2 && numeric * 2 < r.fields.len()).then_some(*i)
        }),
    };
    // No header names a role: the first row is still a header when none of its cells is a date or an
    // amount while the next row has a date (headers in an unknown language), or when told so.
    let plain_header = || {
        let (i, first) = table.first()?;
        let (_, second) = table.get(1)?;
        let all_text =
            first.fields.iter().all(|f| !looks_like_date(f) && number::parse_amount(f, DecimalMark::Auto).is_none());
        (all_text && second.fields.iter().any(|f| looks_like_date(f))).then_some(*i)
    };
    let header_idx = match (options.has_header, header_idx) {
        (Some(true), None) => table.first().map(|(i, _)| *i),
        (None, None) => plain_header(),
        (_, h) => h,
    };
    let (columns, data_from): (Vec<String>, usize) = match header_idx {
        Some(i) => (sample[i].fields.iter().map(|f| f.trim_start_matches('\u{feff}').to_owned()).collect(), i + 1),
        None => {
            // Without a header the data starts at the first row holding a date; lines before it are a
            // preamble.
            let start = table
                .iter()
                .find(|(_, r)| r.fields.iter().any(|f| f.chars().any(|c| c.is_ascii_digit()) && looks_like_date(f)))
                .or(table.first())
                .map(|(i, _)| *i)
                .unwrap_or(0);
            let width = sample[start..].iter().take(50).map(|r| r.fields.len()).max().unwrap_or(2);
            ((1..=width).map(|n| format!("column {n}")).collect(), start)
        }
    };
    let data: Vec<&Record> = sample[data_from..].iter().filter(|r| !is_blank(r) && r.fields.len() >= 2).collect();
    let col_values = |c: usize| data.iter().filter_map(move |r| r.fields.get(c).map(String::as_str));

    // Roles from the header.
    let mut by_role: HashMap<Role, (usize, u8)> = HashMap::new();
    if header_idx.is_some() {
        for (i, h) in columns.iter().enumerate() {
            if let Some((role, score)) = header_role(h) {
                let better = by_role.get(&role).is_none_or(|(_, s)| score > *s);
                if better {
                    by_role.insert(role, (i, score));
                }
            }
        }
    }
    let mut resolved = Resolved::default();
    let given = options.mapping.clone().unwrap_or_default();
    let pick = |given: &Option<Column>, role: Role| -> Result<Option<usize>, ParseError> {
        match given {
            Some(c) => find_column(&columns, c).map(Some),
            None => Ok(by_role.get(&role).map(|(i, _)| *i)),
        }
    };
    // Content checks keep a header guess honest: a "date" column must hold dates (at least 80% of its
    // values: footers and totals are not dates).
    let mostly_dates = |c: usize| {
        let vals: Vec<&str> = col_values(c).filter(|v| !v.trim().is_empty()).take(300).collect();
        let dated: Vec<&str> =
            vals.iter().copied().filter(|v| v.chars().any(|ch| ch.is_ascii_digit()) && looks_like_date(v)).collect();
        !dated.is_empty()
            && (dated.len() * 10 >= vals.len() * 8 || (dated.len() >= 2 && vals.len() - dated.len() <= 2))
            && dates::detect(dated.iter().copied(), false)
                .is_some_and(|f| dated.iter().filter_map(|v| f.parse(v)).all(dates::plausible))
    };
    let date_col = match pick(&given.date, Role::Date)? {
        Some(c) if given.date.is_some() || mostly_dates(c) => Some(c),
        _ => (0..columns.len()).find(|&c| mostly_dates(c)),
    };
    let date_col = date_col.ok_or_else(|| ParseError::Unrecognized("no column holds dates".to_owned()))?;
    resolved.date = date_col;
    resolved.value_date = pick(&given.value_date, Role::ValueDate)?.filter(|c| *c != date_col);
    resolved.amount = pick(&given.amount, Role::Amount)?;
    resolved.debit = pick(&given.debit, Role::Debit)?;
    resolved.credit = pick(&given.credit, Role::Credit)?;
    resolved.sign = pick(&given.sign, Role::Sign)?;
    resolved.payee = pick(&given.payee, Role::Payee)?;
    resolved.description = pick(&given.description, Role::Description)?;
    resolved.memo = pick(&given.memo, Role::Memo)?;
    resolved.reference = pick(&given.reference, Role::Reference)?;
    resolved.currency = pick(&given.currency, Role::Currency)?;
    // Share of a column's non-empty values that are amounts, in tenths.
    let numeric_share = |c: usize| {
        let vals: Vec<&str> = col_values(c).filter(|v| !v.trim().is_empty()).take(500).collect();
        if vals.is_empty() {
            return 0;
        }
        vals.iter().filter(|v| number::parse_amount(v, DecimalMark::Auto).is_some()).count() * 10 / vals.len()
    };
    let numeric = |c: usize| numeric_share(c) >= 9;
    // A sign column must hold indicators; an amount column numbers.
    if given.sign.is_none()
        && let Some(s) = resolved.sign
        && !col_values(s).filter(|v| !v.trim().is_empty()).take(200).all(|v| sign_of(v).is_some())
    {
        resolved.sign = None;
    }
    let amounts_signed = resolved.amount.is_some_and(|a| col_values(a).any(|v| v.contains('-') || v.contains('(')));
    if resolved.sign.is_none()
        && given.sign.is_none()
        && given.description.is_none()
        && !amounts_signed
        && let Some(c) = resolved.description
    {
        // "Type" columns sometimes carry the debit/credit indicator itself.
        let vals: Vec<&str> = col_values(c).filter(|v| !v.trim().is_empty()).take(200).collect();
        if !vals.is_empty() && vals.iter().all(|v| sign_of(v).is_some()) {
            resolved.sign = Some(c);
            resolved.description = None;
        }
    }
    // A column the header calls the amount only has to be mostly amounts: bad rows are reported one by one.
    if resolved.amount.is_some_and(|c| given.amount.is_none() && numeric_share(c) < 5) {
        resolved.amount = None;
    }
    if resolved.amount.is_none() && (resolved.debit.is_none() || resolved.credit.is_none()) {
        // No usable amount header: take numeric columns other than the date (and a balance).
        let balance = by_role.get(&Role::Balance).map(|(i, _)| *i);
        let candidates: Vec<usize> = (0..columns.len())
            .filter(|&c| {
                c != date_col
                    && Some(c) != balance
                    && Some(c) != resolved.value_date
                    && Some(c) != resolved.reference
                    && numeric(c)
            })
            .filter(|&c| col_values(c).any(|v| v.contains('.') || v.contains(',')))
            .collect();
        // Several numeric columns (amount, running balance, original-currency amount): a column that is
        // the running balance of another is not the amount; of the rest, the first.
        let parsed = |c: usize| -> Vec<Option<Decimal>> {
            col_values(c).take(500).map(|v| number::parse_amount(v, DecimalMark::Auto)).collect()
        };
        let is_balance_of = |bal: usize, amt: usize| {
            let (b, a) = (parsed(bal), parsed(amt));
            let mut pairs = 0;
            let mut hits = 0;
            for i in 0..b.len().min(a.len()).saturating_sub(1) {
                if let (Some(b0), Some(b1), Some(a0), Some(a1)) = (b[i], b[i + 1], a[i], a[i + 1]) {
                    pairs += 1;
                    // Balance after or before the row, files in either date order.
                    if b0 + a1 == b1 || b1 + a0 == b0 || b0 + a0 == b1 || b1 + a1 == b0 {
                        hits += 1;
                    }
                }
            }
            pairs >= 2 && hits * 10 >= pairs * 6
        };
        let amounts: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&c| !candidates.iter().any(|&o| o != c && is_balance_of(c, o)))
            .collect();
        if resolved.debit.is_none() && resolved.credit.is_none() {
            resolved.amount = amounts.first().or(candidates.first()).copied();
        }
    }
    if resolved.amount.is_none() && (resolved.debit.is_none() || resolved.credit.is_none()) {
        return Err(ParseError::Unrecognized(format!(
            "no amount column found (columns: {}); name one in the mapping",
            columns.join(", ")
        )));
    }
    if resolved.description.is_none() && resolved.payee.is_none() && resolved.memo.is_none() {
        // The text column with the longest values.
        let used = [
            Some(resolved.date),
            resolved.value_date,
            resolved.amount,
            resolved.debit,
            resolved.credit,
            resolved.sign,
            resolved.reference,
            resolved.currency,
        ];
        resolved.description = (0..columns.len())
            .filter(|c| !used.contains(&Some(*c)) && !numeric(*c))
            .max_by_key(|&c| col_values(c).take(200).map(str::len).sum::<usize>());
    }
    let amount_cols: Vec<usize> = [resolved.amount, resolved.debit, resolved.credit].into_iter().flatten().collect();
    let decimal_mark = match options.decimal_mark {
        Some(m) => m,
        None => number::detect_mark(amount_cols.iter().flat_map(|&c| col_values(c)).take(2000)),
    };
    let prefer_dmy = delimiter == b';' || decimal_mark == DecimalMark::Comma;
    let date_format = match options.date_format {
        Some(f) => f,
        None => dates::detect(col_values(date_col).filter(|v| !v.trim().is_empty()).take(2000), prefer_dmy)
            .or_else(|| {
                // Some rows (footers, totals) are not dates: decide on the ones that are.
                let vals: Vec<&str> = col_values(date_col)
                    .filter(|v| DateFormat::ALL.iter().any(|f| f.parse(v).is_some()))
                    .take(2000)
                    .collect();
                dates::detect(vals.into_iter(), prefer_dmy)
            })
            .ok_or_else(|| {
                ParseError::Unrecognized(format!("the dates in column '{}' are in no known layout", columns[date_col]))
            })?,
    };
    Ok(Layout {
        delimiter: delimiter as char,
        header_line: header_idx.map(|i| sample[i].line),
        columns,
        mapping: resolved,
        date_format,
        decimal_mark,
        invert_sign: options.invert_sign.unwrap_or(false),
        skip_records: data_from,
    })
}

fn field(fields: &::csv::StringRecord, col: Option<usize>) -> Option<&str> {
    col.and_then(|c| fields.get(c)).map(str::trim).filter(|s| !s.is_empty())
}

/// Turn one record into a row, or say why it is skipped.
fn row_of(layout: &Layout, rec: &::csv::StringRecord, line: usize) -> Result<Option<Row>, String> {
    let m = &layout.mapping;
    let Some(raw_date) = field(rec, Some(m.date)) else {
        return Err("no date".to_owned());
    };
    let date = layout.date_format.parse(raw_date).ok_or_else(|| format!("'{raw_date}' is not a date"))?;
    let amount = if let Some(c) = m.amount {
        let raw = field(rec, Some(c)).ok_or_else(|| "no amount".to_owned())?;
        number::parse_amount(raw, layout.decimal_mark).ok_or_else(|| format!("'{raw}' is not an amount"))?
    } else {
        let parse = |c| -> Result<Decimal, String> {
            match field(rec, c) {
                None => Ok(Decimal::ZERO),
                Some(raw) => {
                    number::parse_amount(raw, layout.decimal_mark).ok_or_else(|| format!("'{raw}' is not an amount"))
                }
            }
        };
        let debit = parse(m.debit)?.abs();
        let credit = parse(m.credit)?.abs();
        if field(rec, m.debit).is_none() && field(rec, m.credit).is_none() {
            return Err("no debit or credit amount".to_owned());
        }
        credit - debit
    };
    let mut amount = match m.sign.and_then(|c| field(rec, Some(c))) {
        Some(ind) => match sign_of(ind) {
            Some(true) => amount.abs(),
            Some(false) => -amount.abs(),
            None => return Err(format!("'{ind}' is not a debit/credit indicator")),
        },
        None => amount,
    };
    if layout.invert_sign {
        amount = -amount;
    }
    if amount.is_zero() {
        return Ok(None);
    }
    let payee = field(rec, m.payee);
    let description = field(rec, m.description);
    let memo = field(rec, m.memo);
    let text = crate::join_description(&[payee, description, memo]);
    let value_date = field(rec, m.value_date).and_then(|v| layout.date_format.parse(v));
    Ok(Some(Row {
        line,
        date,
        value_date,
        amount,
        currency: field(rec, m.currency).map(str::to_owned),
        description: if text.is_empty() { "(no description)".to_owned() } else { text },
        payee: payee.map(str::to_owned),
        memo: memo.map(str::to_owned),
        external_id: field(rec, m.reference).map(str::to_owned),
        kind: None,
        pending: false,
    }))
}

/// Rows of a CSV text with a known layout, one at a time (bounded memory for large files). Each item is
/// a row, a skipped row (`Ok(None)` is not yielded; skips come as warnings), or a fatal error.
pub struct Rows<'a> {
    text: &'a str,
    reader: ::csv::Reader<&'a [u8]>,
    layout: Layout,
    record: ::csv::StringRecord,
    index: usize,
    lines: LineCounter,
}

/// What reading one record produced.
#[derive(Debug)]
pub enum Item {
    /// A transaction.
    Row(Row),
    /// A record that was skipped, and why.
    Skipped(Warning),
}

impl<'a> Rows<'a> {
    /// Rows of `text` (already decoded) with `layout`.
    pub fn new(text: &'a str, layout: Layout) -> Rows<'a> {
        let reader = ::csv::ReaderBuilder::new()
            .delimiter(layout.delimiter as u8)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        Rows { text, reader, layout, record: ::csv::StringRecord::new(), index: 0, lines: LineCounter::default() }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<Item, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Err(e) => {
                    let byte = e.position().map(|p| p.byte() as usize).unwrap_or(0);
                    let line = self.lines.line_at(self.text, byte);
                    return Some(Err(ParseError::at(line, format!("unreadable CSV: {e}"))));
                }
                Ok(true) => {}
            }
            let i = self.index;
            self.index += 1;
            if i < self.layout.skip_records {
                continue;
            }
            let byte = self.record.position().map(|p| p.byte() as usize).unwrap_or(0);
            let line = self.lines.line_at(self.text, byte);
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            return Some(Ok(match row_of(&self.layout, &self.record, line) {
                Ok(Some(row)) => Item::Row(row),
                Ok(None) => Item::Skipped(Warning { line, message: "zero amount: row skipped".to_owned() }),
                Err(why) => Item::Skipped(Warning { line, message: format!("{why}: row skipped") }),
            }));
        }
    }
}

/// Decode `bytes` for CSV reading (honouring an explicit encoding).
pub fn decode<'a>(bytes: &'a [u8], options: &CsvOptions) -> (std::borrow::Cow<'a, str>, &'static str) {
    match options.encoding.as_deref().and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes())) {
        Some(enc) => {
            let (text, _, _) = enc.decode(bytes);
            (text, enc.name())
        }
        None => crate::text::decode(bytes, None),
    }
}

/// Parse a whole CSV file.
pub fn parse(bytes: &[u8], options: &CsvOptions) -> Result<ParsedFile, ParseError> {
    let (text, encoding) = decode(bytes, options);
    let layout = detect_layout(&text, options)?;
    let mut statement =
        Statement { account: Account { name: options.account.clone(), ..Account::default() }, ..Statement::default() };
    let mut warnings = Vec::new();
    for item in Rows::new(&text, layout.clone()) {
        match item? {
            Item::Row(r) => statement.rows.push(r),
            Item::Skipped(w) => warnings.push(w),
        }
    }
    if statement.rows.is_empty() && warnings.iter().any(|w| !w.message.starts_with("zero amount")) {
        let first = &warnings[0];
        return Err(ParseError::at(first.line, format!("no row could be read; first problem: {}", first.message)));
    }
    let currency = statement.rows.iter().find_map(|r| r.currency.clone());
    statement.account.currency = currency;
    Ok(ParsedFile { format: Format::Csv, encoding, statements: vec![statement], warnings, csv_layout: Some(layout) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(String, String, String)> {
        let parsed = parse(text.as_bytes(), &CsvOptions::default()).unwrap();
        parsed.statements[0]
            .rows
            .iter()
            .map(|r| (r.date.to_string(), r.amount.to_string(), r.description.clone()))
            .collect()
    }

    #[test]
    fn a_plain_file_with_a_header() {
        let r = rows("Date,Description,Amount\n2024-01-02,Coffee,-3.50\n2024-01-03,Salary,2500.00\n");
        assert_eq!(
            r,
            [
                ("2024-01-02".into(), "-3.50".into(), "Coffee".into()),
                ("2024-01-03".into(), "2500.00".into(), "Salary".into())
            ]
        );
    }

    #[test]
    fn european_layout_with_preamble_semicolons_and_decimal_comma() {
        let text = "Umsatzanzeige;Datei erstellt am: 25.05.2021\n\nIBAN;DE12 3456\nSaldo;1.234,56;EUR\n\nBuchung;Valuta;Auftraggeber/Empfänger;Buchungstext;Verwendungszweck;Saldo;Währung;Betrag;Währung\n03.05.2021;03.05.2021;REWE Markt;Lastschrift;Einkauf;1.200,00;EUR;-1.034,56;EUR\n04.05.2021;04.05.2021;Arbeitgeber GmbH;Gutschrift;Gehalt Mai;4.000,00;EUR;2.800,00;EUR\n";
        let parsed = parse(text.as_bytes(), &CsvOptions::default()).unwrap();
        let layout = parsed.csv_layout.as_ref().unwrap();
        assert_eq!(layout.delimiter, ';');
        assert_eq!(layout.header_line, Some(6));
        assert_eq!(layout.date_format, DateFormat::Dmy);
        let r = &parsed.statements[0].rows;
        assert_eq!(r[0].amount.to_string(), "-1034.56");
        assert_eq!(r[0].description, "REWE Markt / Lastschrift / Einkauf");
        assert_eq!(r[1].amount.to_string(), "2800.00");
        assert_eq!(r[0].line, 7);
    }

    #[test]
    fn debit_and_credit_columns_and_parentheses() {
        let r = rows(
            "Date,Description,Debit,Credit\n01/31/2024,Rent,\"1,650.00\",\n02/01/2024,Refund,,(12.00)\n02/02/2024,Deposit,,100\n",
        );
        assert_eq!(r[0].1, "-1650.00");
        assert_eq!(r[1].1, "12.00", "parentheses in the credit column are still money in");
        assert_eq!(r[2].1, "100");
        assert_eq!(r[0].0, "2024-01-31");
    }

    #[test]
    fn sign_indicator_columns() {
        let text = "Datum;Naam / Omschrijving;Rekening;Tegenrekening;Code;Af Bij;Bedrag (EUR);Mutatiesoort;Mededelingen\n20240102;Albert Heijn;NL01;;BA;Af;12,34;Betaalautomaat;Pasvolgnr 001\n20240103;Werkgever;NL01;NL02;OV;Bij;2500,00;Overschrijving;Salaris\n";
        let parsed = parse(text.as_bytes(), &CsvOptions::default()).unwrap();
        let r = &parsed.statements[0].rows;
        assert_eq!((r[0].amount.to_string(), r[1].amount.to_string()), ("-12.34".into(), "2500.00".into()));
        assert_eq!(r[0].date.to_string(), "2024-01-02");
    }

    #[test]
    fn a_file_without_header_is_read_by_content() {
        let r = rows("\"28.12.2018\",\"Coffee Shop\",\"-3,50\"\n\"29.12.2018\",\"Book store\",\"-12,99\"\n");
        assert_eq!(r[0], ("2018-12-28".into(), "-3.50".into(), "Coffee Shop".into()));
    }

    #[test]
    fn bom_and_latin1_are_handled() {
        let mut bytes = b"\xEF\xBB\xBFDate,Amount,Payee\n2024-03-01,-5.00,Caf\xc3\xa9\n".to_vec();
        let p = parse(&bytes, &CsvOptions::default()).unwrap();
        assert_eq!(p.statements[0].rows[0].description, "Café");
        bytes = b"Date;Amount;Payee\n01.03.2024;-5,00;Caf\xe9\n".to_vec();
        let p = parse(&bytes, &CsvOptions::default()).unwrap();
        assert_eq!(p.encoding, "windows-1252");
        assert_eq!(p.statements[0].rows[0].description, "Café");
    }

    #[test]
    fn bad_rows_are_skipped_with_their_line() {
        let p = parse(
            b"Date,Amount,Payee\n2024-03-01,-5.00,A\nTotal,-5.00,\n2024-03-02,0.00,Zero\n",
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(p.statements[0].rows.len(), 1);
        assert_eq!(p.warnings.len(), 2);
        assert_eq!(p.warnings[0].line, 3);
    }

    #[test]
    fn an_explicit_mapping_wins() {
        let opts = CsvOptions {
            mapping: Some(Mapping {
                date: Some(Column::Index(1)),
                amount: Some(Column::Name("value".into())),
                description: Some(Column::Index(0)),
                ..Mapping::default()
            }),
            date_format: Some(DateFormat::Dmy),
            ..CsvOptions::default()
        };
        let p = parse(b"what,when,value\nTea,02/03/2024,-2.00\n", &opts).unwrap();
        assert_eq!(p.statements[0].rows[0].date.to_string(), "2024-03-02");
        assert_eq!(p.statements[0].rows[0].description, "Tea");
    }

    #[test]
    fn empty_or_header_only_files_are_errors_or_empty() {
        assert!(parse(b"", &CsvOptions::default()).is_err());
        let p = parse(b"Date,Amount,Payee\n", &CsvOptions::default());
        assert!(p.is_err() || p.unwrap().row_count() == 0);
    }
}
