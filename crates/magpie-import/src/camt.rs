//! ISO 20022 bank-to-customer cash management: camt.052 (account report), camt.053 (statement) and
//! camt.054 (debit/credit notification), every version (namespaces are ignored; the element names have
//! stayed stable), and zip files holding several of them. Batch entries are split into their transaction
//! details only when the details add up to the entry (otherwise the entry is kept whole, so a total is
//! never counted twice), reversals flip the sign, pending and information-only entries are left out.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::archive::{SafeZip, ZipError, ZipLimits};
use crate::number::{self, DecimalMark};
use crate::tree::{Node, build};
use crate::{Account, Balance, Cancel, Format, ParseError, ParsedFile, Row, Statement, Warning};

fn date_of(node: Option<&Node<'_>>) -> Option<NaiveDate> {
    let n = node?;
    let raw = n.child_text("Dt").or_else(|| n.child_text("DtTm")).or_else(|| n.value())?;
    NaiveDate::parse_from_str(raw.get(..10)?, "%Y-%m-%d").ok()
}

fn amount_of(node: Option<&Node<'_>>) -> Option<Decimal> {
    number::parse_amount(node?.value()?, DecimalMark::Point)
}

/// Money in is positive: CRDT, or DBIT reversed.
fn signed(amount: Decimal, indicator: Option<&str>, reversal: bool) -> Decimal {
    let credit = !matches!(indicator, Some("DBIT"));
    let credit = if reversal { !credit } else { credit };
    if credit { amount.abs() } else { -amount.abs() }
}

fn status<'n>(entry: &'n Node<'_>) -> Option<&'n str> {
    entry.child("Sts").and_then(|s| s.child_text("Cd").or_else(|| s.value()))
}

fn party_name(tx: &Node<'_>, role: &str) -> Option<String> {
    let rp = tx.child("RltdPties")?;
    let p = rp.child(role)?;
    p.child_text("Nm").or_else(|| p.path_text(&["Pty", "Nm"])).map(str::to_owned).or_else(|| {
        rp.child(&format!("Ultmt{role}"))
            .and_then(|u| u.child_text("Nm").or_else(|| u.path_text(&["Pty", "Nm"])))
            .map(str::to_owned)
    })
}

fn remittance(tx: &Node<'_>) -> Option<String> {
    let rmt = tx.child("RmtInf")?;
    let mut parts: Vec<String> =
        rmt.children.iter().filter(|c| c.name == "Ustrd").filter_map(|c| c.value().map(str::to_owned)).collect();
    if parts.is_empty() {
        let mut refs = Vec::new();
        rmt.find_all("Ref", &mut refs);
        parts.extend(refs.iter().filter_map(|r| r.value().map(str::to_owned)));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn tx_reference(tx: &Node<'_>) -> Option<String> {
    let refs = tx.child("Refs")?;
    ["AcctSvcrRef", "TxId", "EndToEndId", "InstrId", "MsgId"]
        .iter()
        .find_map(|k| refs.child_text(k).filter(|v| *v != "NOTPROVIDED"))
        .map(str::to_owned)
}

fn bank_code(entry: &Node<'_>) -> Option<String> {
    let b = entry.child("BkTxCd")?;
    if let Some(d) = b.child("Domn") {
        let parts = [d.child_text("Cd"), d.path_text(&["Fmly", "Cd"]), d.path_text(&["Fmly", "SubFmlyCd"])];
        let s: Vec<&str> = parts.into_iter().flatten().collect();
        if !s.is_empty() {
            return Some(s.join("/"));
        }
    }
    b.path_text(&["Prtry", "Cd"]).map(str::to_owned)
}

fn entry_rows(
    entry: &Node<'_>,
    currency: Option<&str>,
    fallback_date: Option<NaiveDate>,
    warnings: &mut Vec<Warning>,
) -> Vec<Row> {
    if matches!(status(entry), Some("INFO")) {
        warnings.push(Warning { line: entry.line, message: "information-only entry left out".into() });
        return Vec::new();
    }
    let pending = matches!(status(entry), Some("PDNG"));
    let Some(amount) = amount_of(entry.child("Amt")) else {
        warnings.push(Warning { line: entry.line, message: "entry without a readable amount: skipped".into() });
        return Vec::new();
    };
    let reversal = entry.child_text("RvslInd").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let indicator = entry.child_text("CdtDbtInd");
    let total = signed(amount, indicator, reversal);
    let date = date_of(entry.child("BookgDt")).or_else(|| date_of(entry.child("ValDt")));
    let date = match (date, fallback_date) {
        (Some(d), _) => d,
        (None, Some(d)) => {
            warnings.push(Warning {
                line: entry.line,
                message: format!("entry without a booking or value date: dated {d}, the statement's date"),
            });
            d
        }
        (None, None) => {
            warnings
                .push(Warning { line: entry.line, message: "entry without a booking or value date: skipped".into() });
            return Vec::new();
        }
    };
    let value_date = date_of(entry.child("ValDt")).filter(|d| *d != date);
    let ccy = entry.child("Amt").and_then(|a| a.attr("Ccy")).or(currency).map(str::to_owned);
    let mut details = Vec::new();
    for d in entry.children.iter().filter(|c| c.name == "NtryDtls") {
        details.extend(d.children.iter().filter(|c| c.name == "TxDtls"));
    }
    let entry_ref = entry.child_text("AcctSvcrRef").or_else(|| entry.child_text("NtryRef")).map(str::to_owned);
    let additional = entry.child_text("AddtlNtryInf");
    let kind = bank_code(entry);
    let make = |tx: Option<&Node<'_>>, amount: Decimal, external_id: Option<String>| -> Row {
        let counterparty =
            tx.and_then(|t| if amount > Decimal::ZERO { party_name(t, "Dbtr") } else { party_name(t, "Cdtr") });
        let memo = tx.and_then(remittance).or_else(|| tx.and_then(|t| t.child_text("AddtlTxInf")).map(str::to_owned));
        let mut description = crate::join_description(&[counterparty.as_deref(), memo.as_deref(), additional]);
        if description.is_empty() {
            description = kind.clone().unwrap_or_else(|| "(no description)".to_owned());
        }
        Row {
            line: tx.map(|t| t.line).unwrap_or(entry.line),
            date,
            value_date,
            amount,
            currency: ccy.clone(),
            description,
            payee: counterparty,
            memo: memo.or_else(|| additional.map(str::to_owned)),
            external_id,
            kind: kind.clone(),
            pending,
        }
    };
    if details.len() > 1 {
        // A batch: split only if every detail has an amount and they add up to the entry.
        let parts: Option<Vec<Decimal>> = details
            .iter()
            .map(|t| {
                let amt = amount_of(t.child("Amt")).or_else(|| amount_of(t.path(&["AmtDtls", "TxAmt", "Amt"])))?;
                let ind = t.child_text("CdtDbtInd").or(indicator);
                let rev = reversal || t.child_text("RvslInd").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                Some(signed(amt, ind, rev))
            })
            .collect();
        if let Some(parts) = parts
            && parts.iter().copied().sum::<Decimal>() == total
        {
            return details
                .iter()
                .zip(parts)
                .enumerate()
                .map(|(i, (t, amt))| {
                    let id = tx_reference(t).or_else(|| entry_ref.as_ref().map(|r| format!("{r}#{}", i + 1)));
                    make(Some(t), amt, id)
                })
                .collect();
        }
        warnings.push(Warning {
            line: entry.line,
            message: format!(
                "batch entry of {} details kept whole: the details do not add up to the entry",
                details.len()
            ),
        });
        return vec![make(None, total, entry_ref)];
    }
    let tx = details.first().copied();
    let id = entry_ref.or_else(|| tx.and_then(tx_reference));
    vec![make(tx, total, id)]
}

fn balance(stmt: &Node<'_>, codes: &[&str]) -> Option<Balance> {
    for code in codes {
        for b in stmt.children.iter().filter(|c| c.name == "Bal") {
            let c = b.path_text(&["Tp", "CdOrPrtry", "Cd"]).or_else(|| b.path_text(&["Tp", "CdOrPrtry", "Prtry"]));
            if c == Some(*code) {
                let amount = amount_of(b.child("Amt"))?;
                // A balance without an indicator is a credit balance.
                let amount = signed(amount, b.child_text("CdtDbtInd"), false);
                return Some(Balance { amount, date: date_of(b.child("Dt")) });
            }
        }
    }
    None
}

fn statement_of(stmt: &Node<'_>, warnings: &mut Vec<Warning>) -> Statement {
    let acct = stmt.child("Acct");
    // `<Id><Othr><Id>` reads as two sibling `Id`s (an element never contains its own name, the rule that
    // lets SGML leaves close themselves), so the other-scheme id is the first `Id` with text.
    let id = acct.and_then(|a| a.path_text(&["Id", "IBAN"]).or_else(|| a.first_text("Id")));
    let currency = acct.and_then(|a| a.child_text("Ccy"));
    let bic = acct
        .and_then(|a| a.path(&["Svcr", "FinInstnId"]))
        .and_then(|f| f.child_text("BICFI").or_else(|| f.child_text("BIC")));
    let mut s = Statement {
        account: Account {
            id: id.map(str::to_owned),
            bank_id: bic.map(str::to_owned),
            name: acct.and_then(|a| a.child_text("Nm")).map(str::to_owned),
            currency: currency.map(str::to_owned),
        },
        opening_balance: balance(stmt, &["OPBD", "PRCD", "OPAV", "ITBD"]),
        closing_balance: balance(stmt, &["CLBD", "CLAV", "ITBD"]),
        rows: Vec::new(),
    };
    // The statement's own date stands in for an entry that has none.
    let statement_date = stmt
        .path_text(&["FrToDt", "ToDtTm"])
        .or_else(|| stmt.child_text("CreDtTm"))
        .and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok());
    for entry in stmt.children.iter().filter(|c| c.name == "Ntry") {
        s.rows.extend(entry_rows(entry, currency, statement_date, warnings));
    }
    s
}

fn parse_xml(
    bytes: &[u8],
    warnings: &mut Vec<Warning>,
    cancel: &Cancel,
) -> Result<(Vec<Statement>, &'static str), ParseError> {
    let declared = {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
        if head.contains("encoding=\"iso-8859-1\"") || head.contains("encoding='iso-8859-1'") {
            Some("windows-1252")
        } else {
            None
        }
    };
    let (text, encoding) = crate::text::decode(bytes, declared);
    let tree = build(&text, 1, false, cancel)?;
    let mut containers = Vec::new();
    for name in ["Stmt", "Rpt", "Ntfctn"] {
        tree.find_all(name, &mut containers);
    }
    if containers.is_empty() {
        if tree.find("BkToCstmrStmt").is_some()
            || tree.find("BkToCstmrAcctRpt").is_some()
            || tree.find("BkToCstmrDbtCdtNtfctn").is_some()
        {
            return Err(ParseError::Empty("the CAMT message has no statement".into()));
        }
        return Err(ParseError::Unrecognized("not a camt.052/053/054 message".into()));
    }
    containers.sort_by_key(|n| n.line);
    Ok((containers.into_iter().map(|c| statement_of(c, warnings)).collect(), encoding))
}

/// Parse a CAMT XML file or a zip of them.
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, ParseError> {
    parse_with(bytes, &Cancel::default())
}

/// [`parse`], stopping when `cancel` is set. A zip is read within [`ZipLimits::STATEMENTS`], one entry at
/// a time (each entry's XML is dropped once its statements are read).
pub fn parse_with(bytes: &[u8], cancel: &Cancel) -> Result<ParsedFile, ParseError> {
    let mut warnings = Vec::new();
    let (statements, encoding) = if bytes.starts_with(b"PK\x03\x04") {
        let zip_error = |e: ZipError| match e {
            ZipError::Limit(m) => ParseError::Limit(m),
            e => ParseError::Unrecognized(e.to_string()),
        };
        let mut archive = SafeZip::open(bytes, ZipLimits::STATEMENTS).map_err(zip_error)?;
        let mut names = archive.names();
        names.sort();
        let mut all = Vec::new();
        let mut encoding = "UTF-8";
        for name in names {
            cancel.check()?;
            if name.ends_with('/') || name.starts_with("__MACOSX") {
                continue;
            }
            let data = archive.read(&name).map_err(zip_error)?;
            match parse_xml(&data, &mut warnings, cancel) {
                Ok((s, enc)) => {
                    all.extend(s);
                    encoding = enc;
                }
                Err(e @ (ParseError::Limit(_) | ParseError::Cancelled)) => return Err(e),
                Err(e) => warnings.push(Warning { line: 0, message: format!("{name}: {e}") }),
            }
        }
        if all.is_empty() {
            return Err(ParseError::Empty("the zip holds no CAMT statement".into()));
        }
        (all, encoding)
    } else {
        parse_xml(bytes, &mut warnings, cancel)?
    };
    Ok(ParsedFile { format: Format::Camt, encoding, statements, warnings, csv_layout: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Acct><Id><IBAN>NL77ABNA0574908765</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-01-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">50.00</Amt><Dt><Dt>2024-01-31</Dt></Dt></Bal>
<Ntry><Amt Ccy="EUR">30.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2024-01-05</Dt></BookgDt><ValDt><Dt>2024-01-05</Dt></ValDt><AcctSvcrRef>REF1</AcctSvcrRef>
<NtryDtls><TxDtls><Amt Ccy="EUR">10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RltdPties><Cdtr><Nm>Shop A</Nm></Cdtr></RltdPties><RmtInf><Ustrd>Invoice 1</Ustrd></RmtInf></TxDtls>
<TxDtls><Amt Ccy="EUR">20.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RltdPties><Cdtr><Nm>Shop B</Nm></Cdtr></RltdPties></TxDtls></NtryDtls></Ntry>
<Ntry><Amt Ccy="EUR">20.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2024-01-06T10:00:00</DtTm></BookgDt></Ntry>
<Ntry><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>PDNG</Sts><BookgDt><Dt>2024-01-07</Dt></BookgDt></Ntry>
</Stmt></BkToCstmrStmt></Document>"#;

    #[test]
    fn batches_are_split_reversals_flip_and_pending_is_marked() {
        let p = parse(CAMT.as_bytes()).unwrap();
        let s = &p.statements[0];
        assert_eq!(s.account.id.as_deref(), Some("NL77ABNA0574908765"));
        let amounts: Vec<String> = s.rows.iter().map(|r| r.amount.to_string()).collect();
        assert_eq!(amounts, ["-10.00", "-20.00", "20.00", "-5.00"]);
        assert!(s.rows[3].pending && !s.rows[0].pending);
        assert_eq!(s.rows[0].description, "Shop A / Invoice 1");
        assert_eq!(s.rows[2].date.to_string(), "2024-01-06");
        assert_eq!(s.opening_balance.as_ref().unwrap().amount.to_string(), "100.00");
        assert_eq!(s.closing_balance.as_ref().unwrap().amount.to_string(), "50.00", "no indicator: credit");
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn a_batch_whose_details_do_not_add_up_stays_whole() {
        let broken = CAMT.replace(
            "<Amt Ccy=\"EUR\">20.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RltdPties>",
            "<Amt Ccy=\"EUR\">25.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RltdPties>",
        );
        let p = parse(broken.as_bytes()).unwrap();
        assert_eq!(p.statements[0].rows[0].amount.to_string(), "-30.00");
    }
}
