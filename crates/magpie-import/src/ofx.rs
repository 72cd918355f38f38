//! OFX 1.x (SGML, tags often left unclosed) and 2.x (XML), which also covers QFX and QBO. One tolerant
//! reader for both: it builds an element tree where a tag followed by text is a leaf that closes itself,
//! and a closing tag closes everything opened since its opening tag. Headers may be missing, on one line,
//! wrapped in comments, or lie about the character set.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::number::{self, DecimalMark};
use crate::tree::{Node, build};
use crate::{Account, Balance, Cancel, Format, ParseError, ParsedFile, Row, Statement, Warning};

/// The charset the header declares (`CHARSET:1252`, `encoding="UTF-8"`), as an encoding label.
fn declared_charset(head: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_uppercase();
    if text.contains("ENCODING=\"UTF-8\"") || text.contains("ENCODING:UTF-8") || text.contains("CHARSET:UTF-8") {
        return Some("utf-8");
    }
    if text.contains("CHARSET:1252") || text.contains("CHARSET:WINDOWS-1252") {
        return Some("windows-1252");
    }
    if text.contains("CHARSET:8859-1") || text.contains("CHARSET:ISO-8859-1") || text.contains("ISO-8859-1") {
        return Some("windows-1252");
    }
    None
}

/// `YYYYMMDD[HHMMSS[.XXX]][[gmt offset[:tz name]]]` → the calendar date as written. The time and zone
/// are ignored on purpose: shifting a date-only posting by a zone moves it to the previous day.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    if s.len() < 8 || !s.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = NaiveDate::from_ymd_opt(s[..4].parse().ok()?, s[4..6].parse().ok()?, s[6..8].parse().ok()?)?;
    crate::dates::plausible(d).then_some(d)
}

/// OFX amounts: digits with `.` or `,` as the decimal mark and an optional sign; no currency signs.
fn parse_ofx_amount(raw: &str) -> Option<Decimal> {
    let s = raw.trim();
    if s.is_empty() || s.chars().any(|c| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+' | ' '))) {
        return None;
    }
    number::parse_amount(s, DecimalMark::Auto)
}

fn account_of(stmt: &Node<'_>) -> Account {
    let from = stmt.find("BANKACCTFROM").or_else(|| stmt.find("CCACCTFROM")).or_else(|| stmt.find("INVACCTFROM"));
    Account {
        id: from.and_then(|f| f.child_text("ACCTID")).map(str::to_owned),
        bank_id: from.and_then(|f| f.child_text("BANKID").or_else(|| f.child_text("BROKERID"))).map(str::to_owned),
        name: from.and_then(|f| f.child_text("ACCTTYPE")).map(str::to_owned),
        currency: stmt.text_of("CURDEF").map(str::to_owned),
    }
}

fn balance_of(stmt: &Node<'_>, name: &str) -> Option<Balance> {
    let b = stmt.children.iter().find(|c| c.name == name).or_else(|| stmt.find(name))?;
    let amount = parse_ofx_amount(b.text_of("BALAMT")?)?;
    Some(Balance { amount, date: b.text_of("DTASOF").and_then(parse_date) })
}

/// A bank or card transaction (`STMTTRN`).
fn bank_row(t: &Node<'_>, warnings: &mut Vec<Warning>) -> Option<Row> {
    let date = t.text_of("DTPOSTED").and_then(parse_date).or_else(|| t.text_of("DTUSER").and_then(parse_date));
    let Some(date) = date else {
        warnings.push(Warning { line: t.line, message: "transaction without a valid DTPOSTED: skipped".into() });
        return None;
    };
    let raw_amount = t.text_of("TRNAMT").unwrap_or("");
    let Some(amount) = parse_ofx_amount(raw_amount) else {
        warnings.push(Warning { line: t.line, message: format!("TRNAMT '{raw_amount}' is not an amount: skipped") });
        return None;
    };
    let payee = t.text_of("NAME").or_else(|| t.find("PAYEE").and_then(|p| p.text_of("NAME")));
    let memo = t.text_of("MEMO");
    let mut description = crate::join_description(&[payee, memo]);
    if description.is_empty() {
        description = t.text_of("TRNTYPE").unwrap_or("Transaction").to_owned();
    }
    Some(Row {
        line: t.line,
        date,
        value_date: t.text_of("DTUSER").and_then(parse_date).filter(|d| *d != date),
        amount,
        currency: t.find("CURRENCY").and_then(|c| c.text_of("CURSYM")).map(str::to_owned),
        description,
        payee: payee.map(str::to_owned),
        memo: memo.map(str::to_owned),
        external_id: t
            .text_of("FITID")
            .or_else(|| t.text_of("REFNUM"))
            .or_else(|| t.text_of("CHECKNUM"))
            .map(str::to_owned),
        kind: t.text_of("TRNTYPE").map(str::to_owned),
        pending: false,
    })
}

/// Investment transactions: the cash effect (`TOTAL`) of buys, sells, income, fees and transfers.
const INVEST_KINDS: &[&str] = &[
    "BUYDEBT",
    "BUYMF",
    "BUYOPT",
    "BUYOTHER",
    "BUYSTOCK",
    "SELLDEBT",
    "SELLMF",
    "SELLOPT",
    "SELLOTHER",
    "SELLSTOCK",
    "INCOME",
    "INVEXPENSE",
    "REINVEST",
    "RETOFCAP",
    "TRANSFER",
    "JRNLFUND",
    "JRNLSEC",
    "MARGININTEREST",
    "SPLIT",
    "CLOSUREOPT",
];

fn invest_row(kind: &str, t: &Node<'_>, securities: &[(String, String)], warnings: &mut Vec<Warning>) -> Option<Row> {
    let date = t.text_of("DTTRADE").and_then(parse_date).or_else(|| t.text_of("DTSETTLE").and_then(parse_date));
    let Some(date) = date else {
        warnings.push(Warning { line: t.line, message: format!("{kind} without a trade date: skipped") });
        return None;
    };
    let amount = t.text_of("TOTAL").and_then(parse_ofx_amount).unwrap_or(Decimal::ZERO);
    let security = t.find("SECID").and_then(|s| s.text_of("UNIQUEID")).map(|id| {
        securities.iter().find(|(u, _)| u == id).map(|(_, name)| name.clone()).unwrap_or_else(|| id.to_owned())
    });
    let units = t.text_of("UNITS");
    let verb = kind
        .trim_end_matches("STOCK")
        .trim_end_matches("MF")
        .trim_end_matches("DEBT")
        .trim_end_matches("OPT")
        .trim_end_matches("OTHER");
    let headline = match (security.as_deref(), units) {
        (Some(s), Some(u)) => format!("{} {} {}", title(verb), u.trim_start_matches('-'), s),
        (Some(s), None) => format!("{} {}", title(verb), s),
        _ => title(verb),
    };
    Some(Row {
        line: t.line,
        date,
        value_date: None,
        amount,
        currency: None,
        description: crate::join_description(&[Some(&headline), t.text_of("MEMO")]),
        payee: security,
        memo: t.text_of("MEMO").map(str::to_owned),
        external_id: t.text_of("FITID").map(str::to_owned),
        kind: Some(kind.to_owned()),
        pending: false,
    })
}

fn title(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut c = lower.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Parse an OFX/QFX/QBO file.
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, ParseError> {
    parse_with(bytes, &Cancel::default())
}

/// [`parse`], stopping when `cancel` is set.
pub fn parse_with(bytes: &[u8], cancel: &Cancel) -> Result<ParsedFile, ParseError> {
    let (text, encoding) = crate::text::decode(bytes, declared_charset(bytes));
    let upper_start = {
        // Find `<OFX` case-insensitively without uppercasing the whole file.
        let b = text.as_bytes();
        (0..b.len().saturating_sub(3)).find(|&i| {
            b[i] == b'<'
                && b[i + 1..i + 4].eq_ignore_ascii_case(b"OFX")
                && matches!(b.get(i + 4), Some(b'>') | Some(b' ') | Some(b'\r') | Some(b'\n'))
        })
    };
    let Some(start) = upper_start else {
        return Err(ParseError::Unrecognized("no <OFX> element".to_owned()));
    };
    let first_line = text[..start].matches('\n').count() + 1;
    let tree = build(&text[start..], first_line, true, cancel)?;
    let mut statements = Vec::new();
    let mut warnings = Vec::new();
    let mut attempted = 0usize;
    let mut securities = Vec::new();
    let mut infos = Vec::new();
    tree.find_all("SECINFO", &mut infos);
    for info in infos {
        if let (Some(id), Some(name)) =
            (info.text_of("UNIQUEID"), info.text_of("TICKER").or_else(|| info.text_of("SECNAME")))
        {
            securities.push((id.to_owned(), name.to_owned()));
        }
    }
    let mut stmts = Vec::new();
    for kind in ["STMTRS", "CCSTMTRS", "INVSTMTRS"] {
        tree.find_all(kind, &mut stmts);
    }
    stmts.sort_by_key(|s| s.line);
    for stmt in stmts {
        let mut s = Statement { account: account_of(stmt), ..Statement::default() };
        s.closing_balance = balance_of(stmt, "LEDGERBAL");
        let mut txns = Vec::new();
        stmt.find_all("STMTTRN", &mut txns);
        for t in txns {
            attempted += 1;
            if let Some(r) = bank_row(t, &mut warnings) {
                s.rows.push(r);
            }
        }
        if let Some(list) = (stmt.name == "INVSTMTRS").then(|| stmt.child("INVTRANLIST")).flatten() {
            let mut found: Vec<(&str, &Node<'_>)> = Vec::new();
            for kind in INVEST_KINDS {
                let mut v = Vec::new();
                list.find_all(kind, &mut v);
                found.extend(v.into_iter().map(|n| (*kind, n)));
            }
            found.sort_by_key(|(_, n)| n.line);
            for (kind, t) in found {
                attempted += 1;
                if let Some(r) = invest_row(kind, t, &securities, &mut warnings) {
                    s.rows.push(r);
                }
            }
        }
        statements.push(s);
    }
    if statements.is_empty() {
        // A server error answer, a sign-on answer or an account listing: say what the bank said.
        if let Some(status) = tree.find("STMTTRNRS").or_else(|| tree.find("CCSTMTTRNRS")).and_then(|r| r.find("STATUS"))
            && let Some(code) = status.text_of("CODE").filter(|c| *c != "0")
        {
            let message = status.text_of("MESSAGE").unwrap_or("");
            return Err(ParseError::at(status.line, format!("the bank reported an error {code}: {message}")));
        }
        if let Some(status) = tree.find("SONRS").and_then(|r| r.find("STATUS"))
            && let Some(code) = status.text_of("CODE").filter(|c| *c != "0")
        {
            let message = status.text_of("MESSAGE").unwrap_or("");
            return Err(ParseError::at(status.line, format!("sign-on failed with code {code}: {message}")));
        }
        return Err(ParseError::Empty("the OFX file holds no statement".to_owned()));
    }
    // OFX is structured: a transaction without a readable date or amount means the file is broken (or
    // parts of it are commented out), not that one row can be dropped quietly.
    if let Some(first) = warnings.first() {
        let _ = attempted;
        return Err(ParseError::at(
            first.line,
            format!("unreadable transaction: {}", first.message.trim_end_matches(": skipped")),
        ));
    }
    Ok(ParsedFile { format: Format::Ofx, encoding, statements, warnings, csv_layout: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SGML: &str = "OFXHEADER:100\r\nDATA:OFXSGML\r\nCHARSET:1252\r\n\r\n<OFX><BANKMSGSRSV1><STMTTRNRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>\
        <STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>123<ACCTID>456<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST>\
        <STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240131120000.000[-5:EST]<TRNAMT>-12.50<FITID>A1<NAME>Caf&amp;e<MEMO>\
        <STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20240201<TRNAMT>1.000,00<FITID>A2<NAME>Salary</STMTTRN>\
        </BANKTRANLIST><LEDGERBAL><BALAMT>987.50<DTASOF>20240201</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>";

    #[test]
    fn sgml_with_unclosed_and_empty_tags() {
        let p = parse(SGML.as_bytes()).unwrap();
        let s = &p.statements[0];
        assert_eq!(s.account.key(), "123/456");
        assert_eq!(s.account.currency.as_deref(), Some("USD"));
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].amount.to_string(), "-12.50");
        assert_eq!(s.rows[0].date.to_string(), "2024-01-31");
        assert_eq!(s.rows[0].description, "Caf&e");
        assert_eq!(s.rows[0].external_id.as_deref(), Some("A1"));
        assert_eq!(s.rows[1].amount.to_string(), "1000.00");
        assert_eq!(s.closing_balance.as_ref().unwrap().amount.to_string(), "987.50");
    }

    #[test]
    fn xml_without_header_on_one_line() {
        let x = "<?xml version=\"1.0\"?><OFX><CREDITCARDMSGSRSV1><CCSTMTTRNRS><CCSTMTRS><CURDEF>EUR</CURDEF><CCACCTFROM><ACCTID>9</ACCTID></CCACCTFROM><BANKTRANLIST><STMTTRN><TRNTYPE>DEBIT</TRNTYPE><DTPOSTED>20230102</DTPOSTED><TRNAMT>-3</TRNAMT><FITID>x</FITID><NAME>Shop</NAME><MEMO/></STMTTRN></BANKTRANLIST></CCSTMTRS></CCSTMTTRNRS></CREDITCARDMSGSRSV1></OFX>";
        let p = parse(x.as_bytes()).unwrap();
        assert_eq!(p.statements[0].rows[0].description, "Shop");
        assert_eq!(p.statements[0].rows[0].amount.to_string(), "-3");
    }

    #[test]
    fn a_currency_sign_in_an_amount_is_not_accepted() {
        let bad = SGML.replace("-12.50", "$120").replace("1.000,00", "$5");
        assert!(parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn double_escaped_entities_are_decoded() {
        use crate::tree::unescape;
        assert_eq!(unescape("TPAY &amp;lt;DEFTPYMT&amp;gt;"), "TPAY <DEFTPYMT>");
        assert_eq!(unescape("A &#38; B &copy;"), "A & B ©");
        assert_eq!(unescape("AT&T"), "AT&T");
    }

    #[test]
    fn dates_keep_the_written_day() {
        assert_eq!(parse_date("20240131000000.000[+12:NZST]").unwrap().to_string(), "2024-01-31");
        assert!(parse_date("00000000").is_none());
    }
}
