//! QIF (Quicken Interchange Format): `!Type:` sections of records ending in `^`. Bank, cash, credit card
//! and other-asset/liability accounts become statements (one per `!Account`); investment records
//! contribute their cash amount; category, class, memorized and price lists are skipped. Dates have no
//! fixed order, so the day/month order is decided once per file from every `D` line.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::number::{self, DecimalMark};
use crate::{Account, Format, ParseError, ParsedFile, Row, Statement, Warning};

#[derive(Debug, Default)]
struct Record {
    line: usize,
    fields: Vec<(char, String)>,
}

impl Record {
    fn get(&self, code: char) -> Option<&str> {
        self.fields.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str()).map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Date pieces of a QIF date: (first, second, year) with the year already resolved.
fn date_parts(raw: &str) -> Option<(u32, u32, i32)> {
    let s = raw.trim();
    // Quicken: an apostrophe before the year means 20xx ("6/ 4'18", "8/31' 0", "28.02'2009").
    let apostrophe = s.contains('\'');
    let cleaned: String = s.chars().map(|c| if c == '\'' { '/' } else { c }).filter(|c| *c != ' ').collect();
    let mut parts = cleaned.split(['/', '.', '-']);
    let a: u32 = parts.next()?.parse().ok()?;
    let b: u32 = parts.next()?.parse().ok()?;
    let year_raw = parts.next()?;
    // "03/25/099Share Withdrawal": keep the leading digits of the year.
    let digits: String = year_raw.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    let n: i32 = digits.parse().ok()?;
    let year = match digits.len() {
        4 => n,
        3 => 1900 + n,
        _ if apostrophe => 2000 + n,
        _ => {
            if n < 70 {
                2000 + n
            } else {
                1900 + n
            }
        }
    };
    Some((a, b, year))
}

/// How a file writes its dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Mdy,
    Dmy,
    Text,
}

fn to_date(raw: &str, order: Order) -> Option<NaiveDate> {
    if order == Order::Text {
        return crate::dates::DateFormat::DmonY.parse(raw).or_else(|| crate::dates::DateFormat::MonDY.parse(raw));
    }
    let s = raw.trim();
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return crate::dates::DateFormat::YmdCompact.parse(s);
    }
    // ISO-like 2022-09-23 or 2022/09/23: the year first, whatever the file's order.
    if s.len() >= 8 && s.as_bytes()[..4].iter().all(u8::is_ascii_digit) && matches!(s.as_bytes()[4], b'-' | b'/' | b'.')
    {
        return crate::dates::DateFormat::Ymd.parse(s);
    }
    let (a, b, y) = date_parts(s)?;
    match order {
        Order::Mdy => NaiveDate::from_ymd_opt(y, a, b),
        Order::Dmy => NaiveDate::from_ymd_opt(y, b, a),
        Order::Text => None,
    }
}

/// Decide the file's date order: whichever reads every date; month-first when both do (Quicken's
/// US default), day-first when only it works.
fn decide_order(dates: &[&str]) -> Order {
    let all = |o: Order| dates.iter().all(|d| to_date(d, o).is_some());
    if dates
        .iter()
        .any(|d| d.chars().any(|c| c.is_ascii_alphabetic()) && crate::dates::DateFormat::DmonY.parse(d).is_some())
    {
        return Order::Text;
    }
    if all(Order::Mdy) {
        Order::Mdy
    } else if all(Order::Dmy) {
        Order::Dmy
    } else {
        let mdy = dates.iter().filter(|d| to_date(d, Order::Mdy).is_some()).count();
        let dmy = dates.iter().filter(|d| to_date(d, Order::Dmy).is_some()).count();
        if dmy > mdy { Order::Dmy } else { Order::Mdy }
    }
}

const CASH_TYPES: &[&str] = &["bank", "cash", "ccard", "oth a", "oth l", "invoice"];

/// Parse a QIF file.
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, ParseError> {
    let (text, encoding) = crate::text::decode(bytes, None);
    let text = crate::text::normalize_newlines(&text);
    let mut warnings = Vec::new();
    // Sections: (type, account name, records).
    let mut sections: Vec<(String, Option<String>, Vec<Record>)> = Vec::new();
    let mut section_type: Option<String> = None;
    let mut account: Option<String> = None;
    let mut in_account_block = false;
    let mut account_fields: Option<String> = None;
    let mut current = Record::default();
    let mut saw_header = false;
    for (idx, raw_line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw_line.trim();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('!') {
            let h = header.trim().to_ascii_lowercase();
            saw_header = true;
            if h == "account" {
                in_account_block = true;
                account_fields = None;
            } else if let Some(t) = h.strip_prefix("type:") {
                in_account_block = false;
                section_type = Some(t.trim().to_owned());
                sections.push((t.trim().to_owned(), account.clone(), Vec::new()));
            } else if h.starts_with("option") || h.starts_with("clear") {
                in_account_block = false;
            }
            continue;
        }
        let mut chars = line.chars();
        let Some(code) = chars.next() else { continue };
        let value = chars.as_str().to_owned();
        if in_account_block {
            match code {
                'N' => account_fields = Some(value.trim().to_owned()),
                '^' => {
                    account = account_fields.take().or(account.take());
                    in_account_block = false;
                }
                _ => {}
            }
            continue;
        }
        if code == '^' {
            let rec = std::mem::take(&mut current);
            if !rec.fields.is_empty() {
                if sections.is_empty() {
                    // Records before any !Type: a bank register (tolerated).
                    sections.push(("bank".into(), account.clone(), Vec::new()));
                }
                sections.last_mut().expect("pushed").2.push(rec);
            }
            continue;
        }
        if current.fields.is_empty() {
            current.line = line_no;
        }
        current.fields.push((code, value));
    }
    if !current.fields.is_empty() {
        if sections.is_empty() {
            sections.push(("bank".into(), account.clone(), Vec::new()));
        }
        warnings
            .push(Warning { line: current.line, message: "the last record has no closing '^'; read anyway".into() });
        sections.last_mut().expect("pushed").2.push(current);
    }
    let _ = section_type;
    if !saw_header && sections.iter().all(|s| s.2.iter().all(|r| r.get('D').is_none())) {
        return Err(ParseError::Unrecognized("no QIF header (!Type:) and no dated records".into()));
    }
    let transactional = |t: &str| CASH_TYPES.contains(&t) || t == "invst";
    let all_dates: Vec<&str> = sections
        .iter()
        .filter(|(t, _, _)| transactional(t))
        .flat_map(|(_, _, recs)| recs.iter().filter_map(|r| r.get('D')))
        .collect();
    let order = decide_order(&all_dates);
    let amounts: Vec<&str> = sections
        .iter()
        .flat_map(|(_, _, recs)| recs.iter().filter_map(|r| r.get('T').or_else(|| r.get('U'))))
        .collect();
    let mark = match number::detect_mark(amounts.iter().copied()) {
        DecimalMark::Comma => DecimalMark::Comma,
        _ => DecimalMark::Auto,
    };
    let mut statements: Vec<Statement> = Vec::new();
    let mut attempted = 0;
    for (kind, acct, records) in &sections {
        if !transactional(kind) {
            continue;
        }
        let idx = match statements.iter().position(|s| s.account.name == *acct) {
            Some(i) => i,
            None => {
                statements.push(Statement {
                    account: Account { name: acct.clone(), ..Account::default() },
                    ..Statement::default()
                });
                statements.len() - 1
            }
        };
        for r in records {
            attempted += 1;
            let Some(raw_date) = r.get('D') else {
                warnings.push(Warning { line: r.line, message: "record without a date: skipped".into() });
                continue;
            };
            let Some(date) = to_date(raw_date, order).filter(|d| crate::dates::plausible(*d)) else {
                warnings.push(Warning { line: r.line, message: format!("'{raw_date}' is not a date: skipped") });
                continue;
            };
            let raw_amount = r.get('T').or_else(|| r.get('U'));
            // An investment action without a total (a share transfer) moves no cash.
            let parsed = match raw_amount {
                None if kind == "invst" => Some(Decimal::ZERO),
                raw => raw.and_then(|a| number::parse_amount(a, mark)),
            };
            let Some(mut amount) = parsed else {
                warnings.push(Warning {
                    line: r.line,
                    message: format!("no readable amount ({}): skipped", raw_amount.unwrap_or("none")),
                });
                continue;
            };
            let action = if kind == "invst" { r.get('N') } else { None };
            if let Some(action) = action {
                // Investment totals are unsigned; buying spends cash.
                let a = action.to_ascii_lowercase();
                if (a.starts_with("buy") || a.contains("expense") || a.starts_with("withdr")) && amount > Decimal::ZERO
                {
                    amount = -amount;
                }
            }
            let payee = r.get('P');
            let memo = r.get('M');
            let security = if kind == "invst" { r.get('Y') } else { None };
            let mut description = crate::join_description(&[action, security, payee, memo]);
            if description.is_empty() {
                description = r.get('L').unwrap_or("(no description)").to_owned();
            }
            statements[idx].rows.push(Row {
                line: r.line,
                date,
                value_date: None,
                amount,
                currency: None,
                description,
                payee: payee.map(str::to_owned),
                memo: memo.map(str::to_owned),
                external_id: if kind == "invst" { None } else { r.get('N').map(str::to_owned) },
                kind: r.get('L').map(str::to_owned),
                pending: false,
            });
        }
    }
    statements.retain(|s| !s.rows.is_empty());
    if statements.is_empty() {
        if attempted > 0 && !warnings.is_empty() {
            let first = &warnings[0];
            return Err(ParseError::at(
                first.line,
                format!("no transaction could be read; first problem: {}", first.message),
            ));
        }
        return Err(ParseError::Empty("the QIF file has no transactions".into()));
    }
    Ok(ParsedFile { format: Format::Qif, encoding, statements, warnings, csv_layout: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_register_with_splits_and_quicken_dates() {
        let q = "!Type:Bank \nD6/ 4'18\nT-1,234.50\nPLandlord\nMJune rent\nN1001\nLHousing:Rent\nSHousing:Rent\n$-1000.00\nSUtilities\n$-234.50\n^\nD8/31' 0\nU25.00\nPRefund\n^\n";
        let p = parse(q.as_bytes()).unwrap();
        let r = &p.statements[0].rows;
        assert_eq!(r[0].date.to_string(), "2018-06-04");
        assert_eq!(r[0].amount.to_string(), "-1234.50");
        assert_eq!(r[0].description, "Landlord / June rent");
        assert_eq!(r[0].external_id.as_deref(), Some("1001"));
        assert_eq!(r[1].date.to_string(), "2000-08-31");
        assert_eq!(r[0].line, 2);
    }

    #[test]
    fn day_month_order_is_decided_per_file() {
        let q = "!Type:Bank\nD01/02/2024\nT-1\nPA\n^\nD25/02/2024\nT-2\nPB\n^\n";
        let p = parse(q.as_bytes()).unwrap();
        assert_eq!(p.statements[0].rows[0].date.to_string(), "2024-02-01", "25/02 proves day-first for the whole file");
    }

    #[test]
    fn accounts_split_statements_and_non_transaction_lists_are_skipped() {
        let q = "!Option:AutoSwitch\n!Account\nNChecking\nTBank\n^\n!Account\nNVisa\nTCCard\n^\n!Clear:AutoSwitch\n!Account\nNChecking\nTBank\n^\n!Type:Bank\nD01/05/2024\nT-10\nPShop\n^\n!Account\nNVisa\nTCCard\n^\n!Type:CCard\nD01/06/2024\nT-20\nPStore\n^\n!Type:Cat\nNFood\nE\n^\n";
        let p = parse(q.as_bytes()).unwrap();
        assert_eq!(p.statements.len(), 2);
        assert_eq!(p.statements[1].account.name.as_deref(), Some("Visa"));
    }

    #[test]
    fn empty_or_foreign_files_are_refused() {
        assert!(parse(b"!Type:Bank\n").is_err());
        assert!(parse(b"hello world\n").is_err());
    }
}
