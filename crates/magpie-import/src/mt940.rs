//! SWIFT MT940 (statement) and MT942 (interim report): files of one or many messages, with or without
//! the `{1:}{2:}{4:` envelope, fields broken over lines (even inside the tag marker), `:61:` lines in
//! all their variants (entry date across a year end, reversals, funds codes, `20,` amounts) and `:86:`
//! details in the German `?20` and Dutch `/REMI/` structured forms or as free text.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::number::{self, DecimalMark};
use crate::{Account, Balance, Format, ParseError, ParsedFile, Row, Statement, Warning};

struct Field {
    tag: String,
    value: String,
    line: usize,
}

/// Split the text into fields. A line starting with `:TAG:` opens a field; other lines continue it.
fn fields(text: &str) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let mut line = lines[i].trim_end().to_owned();
        let line_no = i + 1;
        // A tag marker broken over two lines: ":" then "86:...".
        if line.trim() == ":" && i + 1 < lines.len() {
            line = format!(":{}", lines[i + 1].trim_end());
            i += 1;
        }
        i += 1;
        // Envelope blocks and message separators.
        let l = line.trim_start_matches(['{', '}']);
        if line.starts_with("{1:") || line.starts_with("{2:") || line.starts_with("{3:") {
            if let Some(pos) = line.find("{4:") {
                let rest = line[pos + 3..].trim();
                if rest.starts_with(':') {
                    line = rest.to_owned();
                } else {
                    continue;
                }
            } else {
                continue;
            }
        } else if l.trim() == "-" || line.trim() == "-}" || line.trim().starts_with("-}") || line.trim() == "}" {
            out.push(Field { tag: "-".into(), value: String::new(), line: line_no });
            continue;
        } else if line.starts_with("{4:") {
            line = line[3..].to_owned();
            if line.trim().is_empty() {
                continue;
            }
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(':')
            && let Some(end) = rest.find(':')
            && (2..=4).contains(&end)
            && rest[..end].chars().all(|c| c.is_ascii_alphanumeric())
            && rest[..2].chars().all(|c| c.is_ascii_digit() || c == 'N')
        {
            out.push(Field { tag: rest[..end].to_owned(), value: rest[end + 1..].to_owned(), line: line_no });
        } else if let Some(last) = out.last_mut()
            && last.tag != "-"
        {
            last.value.push('\n');
            last.value.push_str(&line);
        }
    }
    out
}

fn yymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() < 6 || !s.as_bytes()[..6].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let y: i32 = s[..2].parse().ok()?;
    let year = if y < 70 { 2000 + y } else { 1900 + y };
    month_day(year, s[2..4].parse().ok()?, s[4..6].parse().ok()?)
}

/// A date whose day is past the month's end (banks do write 30 February) is read as the month's last
/// day, as other MT940 readers do.
fn month_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    (1..=day).rev().find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
}

/// `C091231EUR1234,56`
fn balance(value: &str) -> Option<Balance> {
    let v = value.trim();
    let (credit, rest) = match v.chars().next()? {
        'C' => (true, &v[1..]),
        'D' => (false, &v[1..]),
        _ => return None,
    };
    let date = yymmdd(rest);
    let amount_part = rest.get(9..)?;
    let amount = number::parse_amount(amount_part.trim(), DecimalMark::Auto)?;
    Some(Balance { amount: if credit { amount } else { -amount }, date })
}

struct Line61 {
    date: NaiveDate,
    value_date: NaiveDate,
    amount: Decimal,
    kind: Option<String>,
    customer_ref: Option<String>,
    bank_ref: Option<String>,
    supplementary: Option<String>,
}

/// Parse a `:61:` statement line. Some banks break it before the amount ("...CR" then "30,00N062..."):
/// when the first line has no amount, the next line is joined to it.
fn line61(value: &str) -> Result<Line61, String> {
    let lines: Vec<&str> = value.lines().collect();
    let mut joined = lines.first().copied().unwrap_or("").trim().to_owned();
    let mut used = 1;
    loop {
        // An empty `:61:` has no lines at all (found by fuzzing).
        let rest: Vec<&str> = lines.get(used..).unwrap_or_default().to_vec();
        match line61_first(&joined, &rest) {
            Err(e) if e.starts_with("no amount") && used < lines.len() => {
                joined.push_str(lines[used].trim());
                used += 1;
            }
            other => return other,
        }
    }
}

fn line61_first(first: &str, rest: &[&str]) -> Result<Line61, String> {
    let supplementary = {
        let s: Vec<&str> = rest.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
        (!s.is_empty()).then(|| s.join(" "))
    };
    let first = first.to_owned();
    let value_date = yymmdd(&first).ok_or_else(|| format!("'{first}' does not start with a YYMMDD date"))?;
    let mut rest = &first[6..];
    // Optional entry date MMDD.
    let mut entry = None;
    if rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        let (m, d): (u32, u32) = (rest[..2].parse().unwrap_or(0), rest[2..4].parse().unwrap_or(0));
        let mut year = value_date.year();
        if value_date.month() == 12 && m == 1 {
            year += 1;
        } else if value_date.month() == 1 && m == 12 {
            year -= 1;
        }
        entry = month_day(year, m, d);
        rest = &rest[4..];
    }
    let (credit, after) = if let Some(r) = rest.strip_prefix("RC") {
        (false, r)
    } else if let Some(r) = rest.strip_prefix("RD") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (false, r)
    } else {
        return Err(format!("no debit/credit mark in '{first}'"));
    };
    // Optional funds code (third letter of the currency).
    let after = match after.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => &after[1..],
        _ => after,
    };
    let amount_len = after.find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.')).unwrap_or(after.len());
    let raw_amount = &after[..amount_len];
    // Comma is the standard decimal mark; some banks write a point ("000000000300.00").
    let amount =
        number::parse_amount(raw_amount, DecimalMark::Auto).ok_or_else(|| format!("no amount in '{first}'"))?;
    let rest = &after[amount_len..];
    let (kind, refs) = match (rest.get(..4), rest.get(4..)) {
        (Some(kind), Some(refs)) if matches!(rest.as_bytes()[0], b'N' | b'F' | b'S') => (Some(kind.to_owned()), refs),
        _ => (None, rest),
    };
    let (customer, bank) = match refs.split_once("//") {
        Some((c, b)) => (c, Some(b)),
        None => (refs, None),
    };
    let clean = |s: &str| {
        let t = s.trim();
        (!t.is_empty() && t != "NONREF").then(|| t.to_owned())
    };
    Ok(Line61 {
        date: entry.unwrap_or(value_date),
        value_date,
        amount: if credit { amount } else { -amount },
        kind,
        customer_ref: clean(customer),
        bank_ref: bank.and_then(clean),
        supplementary,
    })
}

/// What `:86:` says: counterparty and purpose, from the structured forms when present.
fn details86(value: &str) -> (Option<String>, Option<String>) {
    let flat: String = value.lines().map(str::trim_end).collect::<Vec<_>>().join("");
    // German: "166?00GUTSCHRIFT?10931?20Verwendungszweck?21...?32Name?33Name2"
    if let Some(first_q) = flat.find('?')
        // `get`, not indexing: the two bytes after '?' may split a multi-byte character (found by fuzzing).
        && flat[first_q + 1..].get(..2).is_some_and(|code| code.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut purpose = Vec::new();
        let mut name = Vec::new();
        let mut text = None;
        for part in flat[first_q + 1..].split('?') {
            if !part.get(..2).is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())) {
                continue;
            }
            // Sub-fields are fixed-width pieces of one text: concatenate them as written.
            let (code, v) = part.split_at(2);
            match code {
                "00" => text = Some(v.to_owned()),
                "20" | "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" | "29" | "60" | "61" | "62" | "63" => {
                    purpose.push(v.to_owned())
                }
                "32" | "33" => name.push(v.to_owned()),
                _ => {}
            }
        }
        let purpose = purpose.join("").split_whitespace().collect::<Vec<_>>().join(" ");
        let purpose = if purpose.is_empty() { text.map(|t| t.trim().to_owned()) } else { Some(purpose) };
        let name = name.join("").split_whitespace().collect::<Vec<_>>().join(" ");
        return ((!name.is_empty()).then_some(name), purpose.filter(|p| !p.is_empty()));
    }
    // Dutch/SEPA: "/TRTP/SEPA OVERBOEKING/IBAN/NL..../NAME/J. Jansen/REMI/Factuur 1/EREF/..."
    if flat.starts_with('/')
        && (flat.contains("/REMI/") || flat.contains("/NAME/") || flat.contains("/EREF/") || flat.contains("/TRTP/"))
    {
        const KEYS: &[&str] = &[
            "TRTP", "IBAN", "BIC", "NAME", "REMI", "EREF", "MARF", "CSID", "ORDP", "BENM", "ID", "ADDR", "CNTP",
            "PURP", "ULTC", "ULTD", "RTRN", "SVCL",
        ];
        let mut name = None;
        let mut remi = None;
        let mut trtp = None;
        let parts: Vec<&str> = flat.split('/').collect();
        let mut i = 1;
        while i < parts.len() {
            let key = parts[i];
            if KEYS.contains(&key) {
                // A value may itself contain '/': take parts until the next known key.
                let mut j = i + 1;
                let mut val = Vec::new();
                while j < parts.len() && !KEYS.contains(&parts[j]) {
                    val.push(parts[j]);
                    j += 1;
                }
                let v = val.join("/").trim().to_owned();
                match key {
                    "NAME" if name.is_none() => name = Some(v),
                    "REMI" => remi = Some(v.trim_start_matches("USTD//").trim_start_matches("USTD/").to_owned()),
                    "TRTP" => trtp = Some(v),
                    "CNTP" if name.is_none() => name = v.split('/').nth(2).map(str::to_owned).filter(|n| !n.is_empty()),
                    _ => {}
                }
                i = j;
            } else {
                i += 1;
            }
        }
        return (name.filter(|n| !n.is_empty()), remi.filter(|r| !r.is_empty()).or(trtp));
    }
    let text = value.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    (None, (!text.is_empty()).then_some(text))
}

/// Parse an MT940/MT942 file.
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, ParseError> {
    let (text, encoding) = crate::text::decode(bytes, None);
    // Binary junk and bare CRs are noise in a text format.
    let text: String =
        crate::text::normalize_newlines(&text).chars().filter(|c| *c == '\n' || !c.is_control()).collect();
    let all = fields(&text);
    const KNOWN: &[&str] = &[
        "20", "21", "25", "28", "28C", "60F", "60M", "61", "62F", "62M", "64", "65", "86", "13D", "34F", "90D", "90C",
    ];
    if !all.iter().any(|f| KNOWN.contains(&f.tag.as_str())) {
        return Err(ParseError::Unrecognized("no MT940 fields (:20:, :25:, :60F:, :61:...)".into()));
    }
    let mut statements: Vec<Statement> = Vec::new();
    let mut warnings = Vec::new();
    let mut current: Option<Statement> = None;
    let mut last_was_61 = false;
    let mut last_was_86 = false;
    let mut attempted = 0;
    let flush = |current: &mut Option<Statement>, statements: &mut Vec<Statement>| {
        if let Some(s) = current.take() {
            statements.push(s);
        }
    };
    for f in &all {
        let prev_86 = std::mem::replace(&mut last_was_86, false);
        match f.tag.as_str() {
            "-" => {
                flush(&mut current, &mut statements);
                last_was_61 = false;
            }
            "20" => {
                flush(&mut current, &mut statements);
                current = Some(Statement::default());
                last_was_61 = false;
            }
            "25" => {
                let s = current.get_or_insert_with(Statement::default);
                let v = f.value.trim();
                let (bank, acct) = match v.split_once('/') {
                    Some((b, a)) if !b.is_empty() && !a.is_empty() => (Some(b.to_owned()), a.to_owned()),
                    _ => (None, v.to_owned()),
                };
                // A trailing currency (".../HUF") belongs to the account id as written.
                s.account = Account { id: Some(acct), bank_id: bank, ..s.account.clone() };
                last_was_61 = false;
            }
            "60F" | "60M" => {
                let s = current.get_or_insert_with(Statement::default);
                if let Some(b) = balance(&f.value) {
                    if s.opening_balance.is_none() {
                        s.opening_balance = Some(b);
                    }
                    if s.account.currency.is_none() {
                        s.account.currency = f.value.trim().get(7..10).map(str::to_owned);
                    }
                } else {
                    warnings.push(Warning {
                        line: f.line,
                        message: format!("unreadable opening balance '{}'", f.value.trim()),
                    });
                }
                last_was_61 = false;
            }
            "62F" | "62M" => {
                let s = current.get_or_insert_with(Statement::default);
                match balance(&f.value) {
                    Some(b) => s.closing_balance = Some(b),
                    None => warnings.push(Warning {
                        line: f.line,
                        message: format!("unreadable closing balance '{}'", f.value.trim()),
                    }),
                }
                last_was_61 = false;
            }
            "61" => {
                attempted += 1;
                let s = current.get_or_insert_with(Statement::default);
                match line61(&f.value) {
                    Ok(l) => {
                        let description =
                            crate::join_description(&[l.supplementary.as_deref(), l.customer_ref.as_deref()]);
                        s.rows.push(Row {
                            line: f.line,
                            date: l.date,
                            value_date: (l.value_date != l.date).then_some(l.value_date),
                            amount: l.amount,
                            currency: s.account.currency.clone(),
                            description: if description.is_empty() {
                                l.kind.clone().unwrap_or_else(|| "(no description)".into())
                            } else {
                                description
                            },
                            payee: None,
                            memo: l.supplementary,
                            external_id: l.bank_ref.or(l.customer_ref),
                            kind: l.kind,
                            pending: false,
                        });
                        last_was_61 = true;
                    }
                    Err(why) => {
                        warnings.push(Warning { line: f.line, message: format!("{why}: line skipped") });
                        last_was_61 = false;
                    }
                }
            }
            "86" if last_was_61 || prev_86 => {
                let s = current.as_mut().expect("a :61: made the statement");
                if let Some(row) = s.rows.last_mut() {
                    let (name, purpose) = details86(&f.value);
                    if prev_86 {
                        // A second :86: for the same line continues the first.
                        let extra = crate::join_description(&[name.as_deref(), purpose.as_deref()]);
                        row.description = crate::join_description(&[Some(&row.description), Some(&extra)]);
                        row.memo = Some(crate::join_description(&[row.memo.as_deref(), purpose.as_deref()]));
                    } else {
                        let description = crate::join_description(&[name.as_deref(), purpose.as_deref()]);
                        if !description.is_empty() {
                            row.description = description;
                        }
                        row.payee = name;
                        row.memo = purpose.or(row.memo.take());
                    }
                }
                last_was_61 = false;
                last_was_86 = true;
                continue;
            }
            _ => {
                // :21:, :28C:, :64:, :65:, :86: of the statement, :NS:, MT942 :13D:/:34F:/:90D:/:90C:...
                last_was_61 = false;
            }
        }
    }
    flush(&mut current, &mut statements);
    statements.retain(|s| !s.rows.is_empty() || s.opening_balance.is_some() || s.closing_balance.is_some());
    let rows: usize = statements.iter().map(|s| s.rows.len()).sum();
    if rows == 0 && attempted > 0 {
        let first = &warnings[0];
        return Err(ParseError::at(
            first.line,
            format!("no statement line could be read; first problem: {}", first.message),
        ));
    }
    if statements.is_empty() {
        return Err(ParseError::Empty("the MT940 file has no statement".into()));
    }
    Ok(ParsedFile { format: Format::Mt940, encoding, statements, warnings, csv_layout: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MT: &str = "{1:F01ABNANL2AXXXX0000000000}{2:I940ABNANL2AXXXN}{4:\r\n:20:ABN AMRO BANK NV\r\n:25:517852257\r\n:28:19321/1\r\n:60F:C091230EUR3236,28\r\n:61:0912311231D5,00N426NONREF\r\n:86:BEA   NR:XXX1234   31.12.09/11.31 SHOP\r\n:61:1001010104C1000,NTRFREF1//BANKREF9\r\n/ORIGINAL AMOUNT\r\n:86:166?00GUTSCHRIFT?20Gehalt?21 Januar?32ACME?33 GMBH\r\n:62F:C100104EUR4231,28\r\n-}";

    #[test]
    fn an_enveloped_statement() {
        let p = parse(MT.as_bytes()).unwrap();
        let s = &p.statements[0];
        assert_eq!(s.account.id.as_deref(), Some("517852257"));
        assert_eq!(s.account.currency.as_deref(), Some("EUR"));
        assert_eq!(s.opening_balance.as_ref().unwrap().amount.to_string(), "3236.28");
        assert_eq!(s.closing_balance.as_ref().unwrap().amount.to_string(), "4231.28");
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].amount.to_string(), "-5.00");
        assert_eq!(s.rows[0].description, "BEA NR:XXX1234 31.12.09/11.31 SHOP");
        assert_eq!(s.rows[1].amount.to_string(), "1000");
        assert_eq!(s.rows[1].date.to_string(), "2010-01-04");
        assert_eq!(s.rows[1].description, "ACME GMBH / Gehalt Januar");
        assert_eq!(s.rows[1].external_id.as_deref(), Some("BANKREF9"));
    }

    #[test]
    fn year_rollover_reversals_and_funds_codes() {
        let l = line61("0912310101RC12,50NTRFX").unwrap();
        assert_eq!(l.date.to_string(), "2010-01-01");
        assert_eq!(l.amount.to_string(), "-12.50");
        assert_eq!(line61("100101CR2,00NMSCNONREF").unwrap().amount.to_string(), "2.00");
        assert_eq!(line61("100101RD2,00NMSC").unwrap().amount.to_string(), "2.00");
        assert!(line61("garbage").is_err());
        assert!(line61("").is_err());
        let empty61 = ":20:X\n:25:123\n:60F:C100101EUR0,00\n:61:\n:62F:C100101EUR0,00\n";
        assert!(parse(empty61.as_bytes()).is_ok_and(|p| p.row_count() == 0) || parse(empty61.as_bytes()).is_err());
        assert!(line61("\n").is_err());
    }

    #[test]
    fn dutch_structured_details() {
        let (name, remi) = details86(
            "/TRTP/SEPA OVERBOEKING/IBAN/NL44RABO0123456789/BIC/RABONL2U/NAME/J. Jansen/REMI/Factuur 2024/001/EREF/NOTPROVIDED",
        );
        assert_eq!(name.as_deref(), Some("J. Jansen"));
        assert_eq!(remi.as_deref(), Some("Factuur 2024/001"));
    }

    #[test]
    fn a_multi_byte_character_after_a_question_mark_is_not_a_sub_field() {
        // Found by fuzzing: the two bytes after '?' were sliced as text and split 'ÿ'.
        let (name, purpose) = details86("Zahlung?ÿ0 an?20Miete");
        assert_eq!((name, purpose.as_deref()), (None, Some("Zahlung?ÿ0 an?20Miete")));
        let text = ":20:X\n:25:123\n:60F:C100101EUR0,00\n:61:100101D1,00NTRF\n:86:a?ÿb\n:62F:D100101EUR1,00\n";
        assert_eq!(parse(text.as_bytes()).unwrap().statements[0].rows.len(), 1);
    }

    #[test]
    fn a_tag_broken_over_two_lines() {
        let text =
            ":20:X\n:25:123\n:60F:C100101EUR0,00\n:61:100101D1,00NTRF\n:\n86:Split marker\n:62F:D100101EUR1,00\n";
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.statements[0].rows[0].description, "Split marker");
    }
}
