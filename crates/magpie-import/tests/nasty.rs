//! The nasty cases real users hit, one test each, on fixtures written here (so they run on a fresh clone,
//! without `../shared`). The list and the reports behind each case are in
//! `../shared/fixtures/bankfiles/README.md`; the test names follow its sections.

use magpie_import::csv::CsvOptions;
use magpie_import::{Format, Options, ParseError, ParsedFile, parse};

fn read(bytes: &[u8]) -> ParsedFile {
    read_named(bytes, None)
}

fn read_named(bytes: &[u8], filename: Option<&str>) -> ParsedFile {
    parse(bytes, &Options::default(), filename)
        .unwrap_or_else(|e| panic!("{e}\n---\n{}", String::from_utf8_lossy(bytes)))
}

fn read_csv(text: &str, csv: CsvOptions) -> ParsedFile {
    parse(text.as_bytes(), &Options { format: Some(Format::Csv), csv, ..Options::default() }, Some("x.csv"))
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn refused(bytes: &[u8]) -> ParseError {
    match parse(bytes, &Options::default(), None) {
        Ok(p) => panic!("accepted: {} rows\n---\n{}", p.row_count(), String::from_utf8_lossy(bytes)),
        Err(e) => e,
    }
}

fn amounts(p: &ParsedFile) -> Vec<String> {
    p.rows().map(|(_, r)| r.amount.normalize().to_string()).collect()
}

fn dates(p: &ParsedFile) -> Vec<String> {
    p.rows().map(|(_, r)| r.date.to_string()).collect()
}

fn descriptions(p: &ParsedFile) -> Vec<String> {
    p.rows().map(|(_, r)| r.description.clone()).collect()
}

// ---------------------------------------------------------------------------------------------------
// OFX / QFX

fn sgml(body: &str) -> String {
    format!(
        "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\nCHARSET:1252\r\n\
         COMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n{}",
        bank(body)
    )
}

fn bank(transactions: &str) -> String {
    format!(
        "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240201</SONRS>\
         </SIGNONMSGSRSV1><BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><STMTRS>\
         <CURDEF>USD<BANKACCTFROM><BANKID>121000248<ACCTID>99887766<ACCTTYPE>CHECKING</BANKACCTFROM>\
         <BANKTRANLIST><DTSTART>20240101<DTEND>20240131>{transactions}</BANKTRANLIST>\
         <LEDGERBAL><BALAMT>100.00<DTASOF>20240131</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    )
}

fn trn(date: &str, amount: &str, fitid: &str, name: &str) -> String {
    format!("<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>{date}<TRNAMT>{amount}<FITID>{fitid}<NAME>{name}</STMTTRN>")
}

#[test]
fn ofx_1_unclosed_mixed_empty_self_closing_and_unknown_tags() {
    // Closed and unclosed elements mixed, an empty MEMO with no value and no close tag, a self-closing
    // MEMO, and an unknown tag.
    let body = "<STMTTRN><TRNTYPE>DEBIT</TRNTYPE><DTPOSTED>20240105<TRNAMT>-10.00</TRNAMT><FITID>1\
                <NAME>Coffee<MEMO></STMTTRN>\
                <STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240106<TRNAMT>-20.00<FITID>2<NAME>Books<MEMO/>\
                <X-BOGUS>whatever</X-BOGUS></STMTTRN>";
    let p = read(sgml(body).as_bytes());
    assert_eq!(amounts(&p), ["-10", "-20"]);
    assert_eq!(descriptions(&p), ["Coffee", "Books"]);
    let ids: Vec<_> = p.rows().map(|(_, r)| r.external_id.clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2"]);
}

#[test]
fn ofx_2_header_layouts() {
    let t = trn("20240105", "-10.00", "1", "Coffee");
    // The whole file, header included, on one line.
    let one_line = format!("OFXHEADER:100 DATA:OFXSGML VERSION:102 CHARSET:1252 {}", bank(&t));
    assert_eq!(amounts(&read(one_line.as_bytes())), ["-10"]);
    // A blank line before the header and none after it.
    let blank_first = format!("\r\nOFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\n{}", bank(&t));
    assert_eq!(amounts(&read(blank_first.as_bytes())), ["-10"]);
    // Header lines ending in bare CR, and CR mixed with CRLF.
    let bare_cr =
        format!("OFXHEADER:100\rDATA:OFXSGML\r\nVERSION:102\r\r{}", bank(&t).replace("<STMTTRN>", "\r<STMTTRN>"));
    assert_eq!(amounts(&read(bare_cr.as_bytes())), ["-10"]);
    // The header wrapped in an XML comment (ofxstatement output).
    let commented =
        format!("<!--\nOFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n-->\n{}", bank(&t).replace("<OFX>", "<OFX>\n"));
    assert_eq!(amounts(&read(commented.as_bytes())), ["-10"]);
    // No header at all.
    assert_eq!(amounts(&read(bank(&t).as_bytes())), ["-10"]);
    // A v2 prolog with a broken `?<OFX>`.
    let broken_prolog =
        format!("<?xml version=\"1.0\"?>\n<?OFX OFXHEADER=\"200\" VERSION=\"211\"?<OFX>{}", &bank(&t)[5..]);
    assert_eq!(amounts(&read(broken_prolog.as_bytes())), ["-10"]);
}

#[test]
fn ofx_3_declared_charset_wrong_or_non_standard() {
    let with = |charset: &str, name: &[u8]| {
        let head = format!("OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nCHARSET:{charset}\r\n\r\n");
        let mut out = head.into_bytes();
        let body = bank(&trn("20240105", "-10.00", "1", "@NAME@"));
        let (a, b) = body.split_once("@NAME@").unwrap();
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(b.as_bytes());
        read(&out)
    };
    // CHARSET:1252 but the body is UTF-8.
    assert_eq!(descriptions(&with("1252", "Café — €5".as_bytes())), ["Café — €5"]);
    // 8859-1 declared, UTF-8 body.
    assert_eq!(descriptions(&with("8859-1", "Zürich".as_bytes())), ["Zürich"]);
    // CHARSET:NONE.
    assert_eq!(descriptions(&with("NONE", b"Plain")), ["Plain"]);
    // Real CP1252 bytes: é, €, em dash.
    assert_eq!(descriptions(&with("1252", b"Caf\xe9 \x80 \x97 x")), ["Café € — x"]);
    // UTF-8 in OFX 2 XML.
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?OFX OFXHEADER=\"200\" VERSION=\"220\"?>\n{}",
        bank(&trn("20240105", "-10.00", "1", "Straße &amp; Café"))
            .replace("<CODE>0<SEVERITY>INFO", "<CODE>0</CODE><SEVERITY>INFO</SEVERITY>")
    );
    let p = read(xml.as_bytes());
    assert_eq!(descriptions(&p), ["Straße & Café"]);
}

#[test]
fn ofx_4_date_and_time_forms() {
    let case = |dtposted: &str| -> String {
        let p = read(sgml(&trn(dtposted, "-1.00", "1", "x")).as_bytes());
        dates(&p).remove(0)
    };
    assert_eq!(case("20240131120000.000[-5:EST]"), "2024-01-31");
    assert_eq!(case("20240131120000[-5:EST]"), "2024-01-31");
    assert_eq!(case("20240131120000[-5]"), "2024-01-31");
    assert_eq!(case("20240131120000[-5.5:XXX]"), "2024-01-31");
    assert_eq!(case("20240131120000[+5.50:IST]"), "2024-01-31");
    assert_eq!(case("20240131120000.000 GMT"), "2024-01-31");
    // A date-only DTPOSTED keeps the written day (no shift through UTC midnight), even late-night
    // times with a far offset keep the bank's own calendar day.
    assert_eq!(case("20240131"), "2024-01-31");
    assert_eq!(case("20240131230000[-8:PST]"), "2024-01-31");
    assert_eq!(case("20240101000000[+13:NZDT]"), "2024-01-01");
    // 00000000 is no date: a transaction cannot be booked without one, so the file is refused with the
    // line of the transaction (nothing half-imported, and the user is told where).
    let body = format!("{}{}", trn("20240102", "-2.00", "2", "y"), trn("00000000", "-1.00", "1", "x"));
    let e = parse(sgml(&body).as_bytes(), &Options::default(), None).unwrap_err();
    assert!(e.to_string().contains("DTPOSTED") && e.to_string().starts_with("line "), "{e}");
    let no_balance_date = sgml(&trn("20240102", "-2.00", "2", "y")).replace("<DTASOF>20240131", "<DTASOF>00000000");
    let p = read(no_balance_date.as_bytes());
    assert_eq!(p.statements[0].closing_balance.as_ref().unwrap().date, None);
}

#[test]
fn ofx_5_amount_forms() {
    let amount = |a: &str| -> Result<String, String> {
        parse(sgml(&trn("20240105", a, "1", "x")).as_bytes(), &Options::default(), None)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let mut a = amounts(&p);
                if a.is_empty() { Err(format!("no row; warnings {:?}", p.warnings)) } else { Ok(a.remove(0)) }
            })
    };
    assert_eq!(amount("-200,00").unwrap(), "-200");
    assert_eq!(amount("  +12.50").unwrap(), "12.5");
    assert_eq!(amount("1,650.00").unwrap(), "1650");
    assert_eq!(amount("-24,9900").unwrap(), "-24.99");
    assert_eq!(amount("115.8331").unwrap(), "115.8331");
    // A currency sign is not an amount.
    assert!(amount("$120").is_err());
    // An empty BALAMT: no balance, the transactions still read.
    let p = read(sgml(&trn("20240105", "-1.00", "1", "x")).replace("<BALAMT>100.00", "<BALAMT>").as_bytes());
    assert_eq!(amounts(&p), ["-1"]);
    assert!(p.statements[0].closing_balance.is_none());
}

#[test]
fn ofx_6_content_quirks() {
    // HTML entities, a literal `<` that is not a tag, a `"` in MEMO.
    let body = "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240105<TRNAMT>-1.00<FITID>1<NAME>TPAY <DEFTPYMT>\
                <MEMO>Tom &amp; Jerry &copy; \"quoted\"</STMTTRN>";
    let p = read(sgml(body).as_bytes());
    assert_eq!(p.row_count(), 1);
    let d = &descriptions(&p)[0];
    assert!(d.contains("TPAY") && d.contains("Tom & Jerry") && d.contains("\"quoted\""), "{d}");
    // CDATA fields.
    let body = "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240105<TRNAMT>-1.00<FITID>1<NAME><![CDATA[A&B <shop>]]></STMTTRN>";
    assert_eq!(descriptions(&read(sgml(body).as_bytes())), ["A&B <shop>"]);
    // A NUL byte after </OFX>.
    let mut nul = sgml(&trn("20240105", "-1.00", "1", "x")).into_bytes();
    nul.extend_from_slice(b"\0\0");
    assert_eq!(read(&nul).row_count(), 1);
    // A long account id, LEDGERBAL missing, a 10-digit BANKID.
    let odd = sgml(&trn("20240105", "-1.00", "1", "x"))
        .replace("<ACCTID>99887766", "<ACCTID>0123456789012345678901234567890123456789")
        .replace("<BANKID>121000248", "<BANKID>1210002489")
        .replace("<LEDGERBAL><BALAMT>100.00<DTASOF>20240131</LEDGERBAL>", "");
    let p = read(odd.as_bytes());
    assert_eq!(p.statements[0].account.id.as_deref(), Some("0123456789012345678901234567890123456789"));
    assert!(p.statements[0].closing_balance.is_none());
    // Several statements in one file: one statement per account.
    let two = sgml(&trn("20240105", "-1.00", "1", "x")).replace(
        "</STMTTRNRS></BANKMSGSRSV1>",
        "</STMTTRNRS><STMTTRNRS><TRNUID>2<STMTRS><CURDEF>EUR<BANKACCTFROM><BANKID>1<ACCTID>555\
         <ACCTTYPE>SAVINGS</BANKACCTFROM><BANKTRANLIST><STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20240107\
         <TRNAMT>5.00<FITID>9<NAME>Interest</STMTTRN></BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1>",
    );
    let p = read(two.as_bytes());
    assert_eq!(p.statements.len(), 2);
    assert_eq!(p.statements[1].account.id.as_deref(), Some("555"));
    assert_eq!(p.statements[1].account.currency.as_deref(), Some("EUR"));
    // Commented-out tags: the transaction inside the comment is not read.
    let commented =
        sgml(&format!("{}<!-- {} -->", trn("20240105", "-1.00", "1", "x"), trn("20240106", "-2.00", "2", "hidden")));
    match parse(commented.as_bytes(), &Options::default(), None) {
        Ok(p) => assert_eq!(amounts(&p), ["-1"], "the commented-out transaction is not read"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------------
// QIF

fn qif(lines: &[&str]) -> Vec<u8> {
    let mut s = String::from("!Type:Bank\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.into_bytes()
}

#[test]
fn qif_1_date_conventions() {
    // Month/day order decided once per file: 13/01 proves day-first, so 02/03 is 2 March.
    let p = read_named(&qif(&["D02/03/2024", "T-1.00", "PA", "^", "D13/01/2024", "T-2.00", "PB", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2024-03-02", "2024-01-13"]);
    // And month-first when a later line says so.
    let p = read_named(&qif(&["D02/03/2024", "T-1.00", "PA", "^", "D01/13/2024", "T-2.00", "PB", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2024-02-03", "2024-01-13"]);
    // Quicken forms: 6/ 4'18 and 8/31' 0.
    let p = read_named(&qif(&["D6/ 4'18", "T-1.00", "^", "D8/31' 0", "T-2.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2018-06-04", "2000-08-31"]);
    // 28.02'2009, and D26 Jan 2026 (each file its own form).
    let p = read_named(&qif(&["D28.02'2009", "T-1.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2009-02-28"]);
    let p = read_named(&qif(&["D26 Jan 2026", "T-2.00", "^", "D3 Feb 2026", "T-2.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2026-01-26", "2026-02-03"]);
    // A 3-digit year with trailing junk.
    let p = read_named(&qif(&["D03/25/099Share Withdrawal", "T-1.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["1999-03-25"]);
    // Compact 20240102.
    let p = read_named(&qif(&["D20240102", "T-1.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2024-01-02"]);
    // Two-digit years: a cutoff that keeps recent years recent and old ones old.
    let p = read_named(&qif(&["D01/02/24", "T-1.00", "^", "D01/02/85", "T-1.00", "^"]), Some("a.qif"));
    assert_eq!(dates(&p), ["2024-01-02", "1985-01-02"]);
}

#[test]
fn qif_2_structure() {
    // `^^` record ends, a trailing space in the type line, CRLF.
    let crlf = b"!Type:Bank \r\nD01/02/2024\r\nT-1.00\r\nPA\r\n^^\r\nD01/03/2024\r\nT-2.00\r\nPB\r\n^\r\n";
    assert_eq!(amounts(&read_named(crlf, Some("a.qif"))), ["-1", "-2"]);
    // AutoSwitch option blocks and several accounts, with transactions before any !Account and
    // unknown account types.
    let text = "!Type:Bank\nD01/02/2024\nT-1.00\nPEarly\n^\n!Option:AutoSwitch\n!Account\nNChecking\nTBank\n^\n\
                !Account\nNBrokerage\nTPort\n^\n!Account\nNOther\nTOth A\n^\n!Clear:AutoSwitch\n\
                !Account\nNChecking\nTBank\n^\n!Type:Bank\nD01/05/2024\nT-5.00\nPLate\n^\n";
    let p = read_named(text.as_bytes(), Some("a.qif"));
    assert_eq!(amounts(&p), ["-1", "-5"]);
    assert_eq!(p.statements.last().unwrap().account.name.as_deref(), Some("Checking"));
    // Splits, including a split to a transfer account: the transaction is one row of its total.
    let text = "!Type:Bank\nD01/02/2024\nT-100.00\nPShop\nSFood\nEGroceries\n$-60.00\nS[Savings]\n$-40.00\n^\n";
    let p = read_named(text.as_bytes(), Some("a.qif"));
    assert_eq!(amounts(&p), ["-100"]);
    // Paired U/T amounts and thousands commas.
    let text = "!Type:Bank\nD01/02/2024\nU2,345.00\nT2,345.00\nPSalary\n^\n";
    assert_eq!(amounts(&read_named(text.as_bytes(), Some("a.qif"))), ["2345"]);
    // !Type:Memorized at the end is not a transaction list.
    let text = "!Type:Bank\nD01/02/2024\nT-1.00\nPA\n^\n!Type:Memorized\nKC\nT-9.99\nPNetflix\n^\n";
    assert_eq!(amounts(&read_named(text.as_bytes(), Some("a.qif"))), ["-1"]);
    // An empty file and a non-QIF text file are refused.
    assert!(parse(b"", &Options { format: Some(Format::Qif), ..Options::default() }, Some("a.qif")).is_err());
    assert!(
        parse(
            b"Dear bank,\nplease send my statement.\n",
            &Options { format: Some(Format::Qif), ..Options::default() },
            Some("a.txt")
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------------
// CAMT

fn camt(ns: &str, entries: &str, extra_balance: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{ns}\">\
         <BkToCstmrStmt><GrpHdr><MsgId>1</MsgId><CreDtTm>2024-02-01T00:00:00</CreDtTm></GrpHdr><Stmt><Id>S1</Id>\
         <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>\
         <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>\
         <Dt><Dt>2024-01-01</Dt></Dt></Bal>{extra_balance}{entries}</Stmt></BkToCstmrStmt></Document>"
    )
}

fn ntry(amount: &str, cd: &str, status: &str, booking: &str, more: &str) -> String {
    format!(
        "<Ntry><Amt Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>{cd}</CdtDbtInd>{status}<BookgDt>{booking}</BookgDt>\
         <ValDt><Dt>2024-01-05</Dt></ValDt><AcctSvcrRef>REF{amount}</AcctSvcrRef>{more}\
         <AddtlNtryInf>Entry {amount}</AddtlNtryInf></Ntry>"
    )
}

#[test]
fn camt_1_schema_differences_between_versions() {
    let e = ntry("10.00", "DBIT", "<Sts>BOOK</Sts>", "<Dt>2024-01-05</Dt>", "");
    for ns in ["camt.053.001.02", "camt.053.001.04", "camt.053.001.06", "camt.053.001.08", "camt.053.001.13"] {
        assert_eq!(amounts(&read(camt(ns, &e, "").as_bytes())), ["-10"], "{ns}");
    }
    // A wrong `iso:20023` namespace.
    let wrong = camt("camt.053.001.02", &e, "").replace("iso:20022", "iso:20023");
    assert_eq!(amounts(&read(wrong.as_bytes())), ["-10"]);
    // <Sts><Cd>BOOK</Cd></Sts> (v08), BookgDt/DtTm, and no ValDt.
    let v08 = ntry("10.00", "DBIT", "<Sts><Cd>BOOK</Cd></Sts>", "<DtTm>2024-01-06T10:30:00+01:00</DtTm>", "")
        .replace("<ValDt><Dt>2024-01-05</Dt></ValDt>", "");
    let p = read(camt("camt.053.001.08", &v08, "").as_bytes());
    assert_eq!((amounts(&p), dates(&p)), (vec!["-10".to_owned()], vec!["2024-01-06".to_owned()]));
    // A pending entry is marked so.
    let pdng = ntry("10.00", "DBIT", "<Sts><Cd>PDNG</Cd></Sts>", "<Dt>2024-01-05</Dt>", "");
    let p = read(camt("camt.053.001.08", &pdng, "").as_bytes());
    assert!(p.rows().all(|(_, r)| r.pending));
}

#[test]
fn camt_2_batch_bookings_split_into_their_parts_without_duplicating_the_total() {
    let details = "<NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>\
        <TxDtls><Refs><EndToEndId>E1</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy=\"EUR\">30.00</Amt></TxAmt></AmtDtls>\
        <RltdPties><Cdtr><Nm>Alice</Nm></Cdtr></RltdPties></TxDtls>\
        <TxDtls><Refs><EndToEndId>E2</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy=\"EUR\">70.00</Amt></TxAmt></AmtDtls>\
        <RltdPties><Cdtr><Nm>Bob</Nm></Cdtr></RltdPties></TxDtls></NtryDtls>";
    let e = ntry("100.00", "DBIT", "<Sts>BOOK</Sts>", "<Dt>2024-01-05</Dt>", details);
    let p = read(camt("camt.053.001.02", &e, "").as_bytes());
    assert_eq!(amounts(&p), ["-30", "-70"]);
    let total: rust_decimal::Decimal = p.rows().map(|(_, r)| r.amount).sum();
    assert_eq!(total.to_string(), "-100.00");
}

#[test]
fn camt_3_reversals_flip_the_sign() {
    let e = ntry("25.00", "CRDT", "<Sts>BOOK</Sts>", "<Dt>2024-01-05</Dt>", "<RvslInd>true</RvslInd>");
    assert_eq!(amounts(&read(camt("camt.053.001.02", &e, "").as_bytes())), ["-25"]);
}

#[test]
fn camt_4_balances() {
    let e = ntry("0.00", "DBIT", "<Sts>BOOK</Sts>", "<Dt>2024-01-05</Dt>", "")
        + &ntry("1.005", "CRDT", "<Sts>BOOK</Sts>", "<Dt>2024-01-06</Dt>", "");
    // A closing balance without CdtDbtInd, zero-padded, with too many decimals; another in USD.
    let odd = "<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">000000000000149.87000000001</Amt>\
               <Dt><Dt>2024-01-31</Dt></Dt></Bal>\
               <Bal><Tp><CdOrPrtry><Cd>CLAV</Cd></CdOrPrtry></Tp><Amt Ccy=\"USD\">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>\
               <Dt><Dt>2024-01-31</Dt></Dt></Bal>";
    let p = read(camt("camt.053.001.02", &e, odd).as_bytes());
    // Zero amounts are read (the importer skips them); 3-decimal amounts kept exact.
    assert_eq!(amounts(&p), ["0", "1.005"]);
    let closing = p.statements[0].closing_balance.as_ref().unwrap();
    assert!(closing.amount.to_string().starts_with("149.87"), "{}", closing.amount);
    // A statement with no entries at all.
    let p = read(camt("camt.053.001.02", "", "").as_bytes());
    assert_eq!(p.row_count(), 0);
    assert_eq!(p.statements.len(), 1);
}

#[test]
fn camt_5_zips_latin1_and_other_account_ids() {
    // A zip of two statements.
    let e1 = ntry("1.00", "DBIT", "<Sts>BOOK</Sts>", "<Dt>2024-01-05</Dt>", "");
    let e2 = ntry("2.00", "DBIT", "<Sts>BOOK</Sts>", "<Dt>2024-01-06</Dt>", "");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in [("a.xml", camt("camt.053.001.02", &e1, "")), ("b.xml", camt("camt.053.001.02", &e2, ""))] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let p = read_named(&bytes, Some("statements.zip"));
    assert_eq!(amounts(&p), ["-1", "-2"]);
    // A Latin-1 XML declaration with Latin-1 bytes.
    let latin1 = camt("camt.053.001.02", &e1.replace("Entry 1.00", "Entry M@nchen"), "")
        .replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    let mut bytes = latin1.into_bytes();
    let at = bytes.iter().position(|b| *b == b'@').unwrap();
    bytes[at] = 0xfc; // ü
    assert_eq!(descriptions(&read(&bytes))[0], "Entry München");
    // Othr/Id instead of an IBAN.
    let othr =
        camt("camt.053.001.02", &e1, "").replace("<IBAN>DE89370400440532013000</IBAN>", "<Othr><Id>ACC-42</Id></Othr>");
    assert_eq!(read(othr.as_bytes()).statements[0].account.id.as_deref(), Some("ACC-42"));
}

// ---------------------------------------------------------------------------------------------------
// MT940 / MT942

fn mt940(body: &str) -> Vec<u8> {
    format!(":20:STMT1\r\n:25:NL91ABNA0417164300\r\n:28C:1/1\r\n:60F:C240101EUR100,00\r\n{body}:62F:C240131EUR90,00\r\n-\r\n")
        .into_bytes()
}

#[test]
fn mt940_1_line_breaks_inside_fields() {
    // Inside :61: and inside the tag marker (`:\n86:`).
    let p = read_named(&mt940(":61:2401050105D10,00NTRF\r\nNONREF//B1\r\n:\r\n86:Coffee shop\r\n"), Some("a.sta"));
    assert_eq!(amounts(&p), ["-10"]);
    assert!(descriptions(&p)[0].contains("Coffee shop"), "{:?}", descriptions(&p));
    // :61: continued onto a second line with `/` in the customer reference.
    let p = read_named(
        &mt940(":61:2401050105D10,00NTRFREF/WITH/SLASH//BANKREF\r\nsupplementary\r\n:86:X\r\n"),
        Some("a.sta"),
    );
    assert_eq!(amounts(&p), ["-10"]);
    // The payee on the second :61: line (ASN style).
    let p = read_named(
        &mt940(":61:2401050105D10,00NTRFNONREF\r\nNL12ASNB0123456789 J. JANSEN\r\n:86:Rent\r\n"),
        Some("a.sta"),
    );
    assert_eq!(amounts(&p), ["-10"]);
}

#[test]
fn mt940_2_debit_credit_marks() {
    // CR2,00: credit with funds code R; RC/RD reversals (RD is a reversal of a debit: money back).
    let p = read_named(
        &mt940(
            ":61:240105CR2,00NTRFNONREF\r\n:86:a\r\n:61:240106RC3,00NTRFNONREF\r\n:86:b\r\n:61:240107RD4,00NTRFNONREF\r\n:86:c\r\n",
        ),
        Some("a.sta"),
    );
    assert_eq!(amounts(&p), ["2", "-3", "4"]);
    // An amount with a trailing comma, and no entry date.
    let p = read_named(&mt940(":61:240105D20,NTRFNONREF\r\n:86:x\r\n"), Some("a.sta"));
    assert_eq!((amounts(&p), dates(&p)), (vec!["-20".to_owned()], vec!["2024-01-05".to_owned()]));
}

#[test]
fn mt940_3_statement_structure() {
    // Intermediate balances and `-` separators; a :86: after :65: belongs to the statement; :NS: tags.
    let text = ":20:A\r\n:25:111\r\n:28C:1/1\r\n:60F:C240101EUR100,00\r\n:61:240105D10,00NTRFNONREF\r\n:86:one\r\n\
                :62M:C240105EUR90,00\r\n-\r\n:20:A\r\n:25:111\r\n:28C:1/2\r\n:60M:C240105EUR90,00\r\n\
                :61:240106D5,00NTRFNONREF\r\n:86:two\r\n:NS:22internal\r\n:62F:C240106EUR85,00\r\n:64:C240106EUR85,00\r\n\
                :65:C240107EUR85,00\r\n:86:statement note\r\n-\r\n";
    let p = read_named(text.as_bytes(), Some("a.sta"));
    assert_eq!(amounts(&p), ["-10", "-5"]);
    assert!(!descriptions(&p)[1].contains("statement note"), "{:?}", descriptions(&p));
    // The SWIFT envelope, and two accounts in one file.
    let env = "{1:F01BANKBEBBAXXX0000000000}{2:I940BANKBEBBXXXXN}{4:\r\n:20:A\r\n:25:111\r\n:28C:1\r\n\
               :60F:C240101EUR1,00\r\n:61:240105D1,00NTRFNONREF\r\n:86:x\r\n:62F:C240101EUR0,00\r\n-}\
               {1:F01BANKBEBBAXXX0000000000}{2:I940BANKBEBBXXXXN}{4:\r\n:20:B\r\n:25:222\r\n:28C:1\r\n\
               :60F:C240101EUR1,00\r\n:61:240105C2,00NTRFNONREF\r\n:86:y\r\n:62F:C240101EUR3,00\r\n-}";
    let p = read_named(env.as_bytes(), Some("a.sta"));
    assert_eq!(amounts(&p), ["-1", "2"]);
    let accounts: Vec<_> = p.statements.iter().map(|s| s.account.id.clone().unwrap()).collect();
    assert_eq!(accounts, ["111", "222"]);
}

#[test]
fn mt940_4_bad_data_tolerated_or_rejected() {
    // A 30 February date: read as the month's last day, as WoLpH's reader does (mt940-rs refuses the
    // file; docs/import-conformance.md).
    let p = read_named(&mt940(":61:240230D1,00NTRFNONREF\r\n:86:x\r\n"), Some("a.sta"));
    assert_eq!(dates(&p), ["2024-02-29"]);
    // Non-UTF-8 bytes and a binary character; no final CRLF; empty lines; an unknown tag.
    let mut bytes = b":20:A\r\n:25:111\r\n:28C:1\r\n:60F:C240101EUR1,00\r\n\r\n:61:240105D1,00NTRFNONREF\r\n:86:M\xfcnchen \x01 shop\r\n:99:unknown\r\n:62F:C240101EUR0,00\r\n-".to_vec();
    let p = read_named(&bytes, Some("a.sta"));
    assert_eq!(amounts(&p), ["-1"]);
    assert!(descriptions(&p)[0].contains("nchen"), "{:?}", descriptions(&p));
    bytes.clear();
    // An entry date in the next year (December value date, January entry): the booking stays in the
    // right year.
    let p = read_named(&mt940(":61:2312310102D1,00NTRFNONREF\r\n:86:x\r\n"), Some("a.sta"));
    assert_eq!(p.rows().next().unwrap().1.value_date.map(|d| d.to_string()), Some("2023-12-31".to_owned()));
    assert!(dates(&p)[0] == "2024-01-02" || dates(&p)[0] == "2023-12-31", "{:?}", dates(&p));
    // Balances that do not add up (100 - 1 is not 90) are not an error.
    let p = read_named(&mt940(":61:240105D1,00NTRFNONREF\r\n:86:x\r\n"), Some("a.sta"));
    assert_eq!(amounts(&p), ["-1"]);
    assert_eq!(p.statements[0].closing_balance.as_ref().unwrap().amount.to_string(), "90.00");
}

#[test]
fn mt940_5_structured_86_forms() {
    // German ?20-?29 and ?32 subfields.
    let p = read_named(
        &mt940(
            ":61:240105D10,00NTRFNONREF\r\n:86:177?00SEPA-UEBERWEISUNG?20EREF+123?21SVWZ+Miete Ja?22nuar?32Max Mustermann\r\n",
        ),
        Some("a.sta"),
    );
    let d = &descriptions(&p)[0];
    assert!(d.contains("Max Mustermann") && d.contains("Miete"), "{d}");
    // Dutch /EREF/ /REMI/ /TRTP/.
    let p = read_named(
        &mt940(
            ":61:240105D10,00NTRFNONREF\r\n:86:/TRTP/SEPA OVERBOEKING/IBAN/NL12BANK0123456789/NAME/J JANSEN/REMI/Huur januari/EREF/NOTPROVIDED\r\n",
        ),
        Some("a.sta"),
    );
    let d = &descriptions(&p)[0];
    assert!(d.contains("J JANSEN") && d.contains("Huur januari"), "{d}");
    // A bank prefix before the subfields, and ?00 where it is not expected.
    let p = read_named(&mt940(":61:240105D10,00NTRFNONREF\r\n:86:A44?20Payment?00odd?32Shop GmbH\r\n"), Some("a.sta"));
    let d = &descriptions(&p)[0];
    assert!(d.contains("Shop GmbH") && d.contains("Payment"), "{d}");
}

// ---------------------------------------------------------------------------------------------------
// CSV

#[test]
fn csv_1_negative_amounts_in_parentheses() {
    let p = read_csv(
        "Date,Description,Amount\n2024-01-02,A,(123.45)\n2024-01-03,B,$(12.34)\n2024-01-04,C,($900.23)\n2024-01-05,D,5.00\n",
        CsvOptions::default(),
    );
    assert_eq!(amounts(&p), ["-123.45", "-12.34", "-900.23", "5"]);
}

#[test]
fn csv_2_european_numbers() {
    let p = read_csv(
        "Datum;Text;Betrag\n02.01.2024;A;-1.001,00\n03.01.2024;B;+1,23\n04.01.2024;C;-5,50\n",
        CsvOptions::default(),
    );
    assert_eq!(amounts(&p), ["-1001", "1.23", "-5.5"]);
}

#[test]
fn csv_3_the_sign_in_another_column() {
    // Af/Bij (ING NL).
    let p = read_csv(
        "\"Datum\",\"Naam / Omschrijving\",\"Rekening\",\"Tegenrekening\",\"Code\",\"Af Bij\",\"Bedrag (EUR)\",\"Mutatiesoort\",\"Mededelingen\"\n\
         \"20240102\",\"Albert Heijn\",\"NL1\",\"\",\"BA\",\"Af\",\"12,50\",\"Betaalautomaat\",\"Pasvolgnr 1\"\n\
         \"20240103\",\"Werkgever\",\"NL1\",\"NL2\",\"GT\",\"Bij\",\"2000,00\",\"Online bankieren\",\"Salaris\"\n",
        CsvOptions::default(),
    );
    assert_eq!(amounts(&p), ["-12.5", "2000"]);
    // D/C (Knab).
    let p = read_csv("Date,Description,Amount,DC\n2024-01-02,A,12.50,D\n2024-01-03,B,20.00,C\n", CsvOptions::default());
    assert_eq!(amounts(&p), ["-12.5", "20"]);
    // Separate debit and credit columns.
    let p =
        read_csv("Date,Description,Debit,Credit\n2024-01-02,A,12.50,\n2024-01-03,B,,20.00\n", CsvOptions::default());
    assert_eq!(amounts(&p), ["-12.5", "20"]);
    // Issuer-inverted signs: charges exported as positive numbers, flipped on request.
    let p = read_csv(
        "Date,Description,Amount\n2024-01-02,Charge,12.50\n2024-01-03,Payment,-100.00\n",
        CsvOptions { invert_sign: Some(true), ..CsvOptions::default() },
    );
    assert_eq!(amounts(&p), ["-12.5", "100"]);
}

#[test]
fn csv_4_preambles_titles_and_no_header() {
    // ING DE: metadata lines including a Saldo line before the header.
    let ing = "Umsatzanzeige;Datei erstellt am: 02.02.2024\n\nIBAN;DE12 5001 0517 0000 0000 00\nKontoname;Girokonto\n\
               Bank;ING\nKunde;Max\nZeitraum;01.01.2024 - 31.01.2024\nSaldo;1.234,56;EUR\n\nSortierung;Datum absteigend\n\n\
               Buchung;Valuta;Auftraggeber/Empfänger;Buchungstext;Verwendungszweck;Saldo;Währung;Betrag;Währung\n\
               03.01.2024;03.01.2024;REWE;Lastschrift;Einkauf;1.234,56;EUR;-23,45;EUR\n\
               02.01.2024;02.01.2024;Arbeitgeber;Gehalt;Januar;1.258,01;EUR;2.000,00;EUR\n";
    let p = read_csv(ing, CsvOptions::default());
    assert_eq!(amounts(&p), ["-23.45", "2000"]);
    // Schwab: a title line.
    let schwab = "\"Transactions for account XXXX-1234 as of 02/01/2024\"\n\"Date\",\"Action\",\"Description\",\"Amount\"\n\
                  \"01/02/2024\",\"Buy\",\"VTI\",\"-$1,000.00\"\n";
    assert_eq!(amounts(&read_csv(schwab, CsvOptions::default())), ["-1000"]);
    // Knab: an export title row.
    let knab = "KNAB EXPORT;;;\nDatum;Omschrijving;Bedrag;CreditDebet\n02-01-2024;Shop;12,50;D\n";
    assert_eq!(amounts(&read_csv(knab, CsvOptions::default())), ["-12.5"]);
    // No header at all: read by content.
    let none = "02.01.2024;Shop A;-12,50\n03.01.2024;Shop B;-7,00\n";
    let p = read_csv(none, CsvOptions::default());
    assert_eq!(amounts(&p), ["-12.5", "-7"]);
}

#[test]
fn csv_5_encodings() {
    let text = "Date;Description;Amount\n02.01.2024;Caf\u{e9} \u{20ac};-1,50\n";
    // Latin-1/CP1252 bytes (é, € as 0x80).
    let cp1252: Vec<u8> = text
        .chars()
        .map(|c| match c {
            '\u{20ac}' => 0x80,
            c => c as u32 as u8,
        })
        .collect();
    let p = parse(&cp1252, &Options::default(), Some("x.csv")).unwrap();
    assert_eq!(descriptions(&p), ["Café €"]);
    // UTF-8 with a BOM: the first header name still matches.
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(text.as_bytes());
    let p = parse(&bom, &Options::default(), Some("x.csv")).unwrap();
    assert_eq!((amounts(&p), descriptions(&p)), (vec!["-1.5".to_owned()], vec!["Café €".to_owned()]));
    // UTF-16LE with its BOM.
    let mut utf16 = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    assert_eq!(descriptions(&parse(&utf16, &Options::default(), Some("x.csv")).unwrap()), ["Café €"]);
    // An iso-8859-1 label decodes as windows-1252 (0x80 is the euro sign).
    let p = parse(
        &cp1252,
        &Options {
            format: Some(Format::Csv),
            csv: CsvOptions { encoding: Some("iso-8859-1".into()), ..CsvOptions::default() },
            ..Options::default()
        },
        Some("x.csv"),
    )
    .unwrap();
    assert_eq!(descriptions(&p), ["Café €"]);
    // CRLF line ends.
    let p = read_csv(&text.replace('\n', "\r\n"), CsvOptions::default());
    assert_eq!(amounts(&p), ["-1.5"]);
}

#[test]
fn csv_6_other_layout_quirks() {
    // Semicolons; a space after each comma (PayPal); quoted thousands; embedded quotes and commas.
    let p = read_csv("Date;Description;Amount\n2024-01-02;A;-1.50\n", CsvOptions::default());
    assert_eq!(amounts(&p), ["-1.5"]);
    let p = read_csv("Date, Name, Amount\n01/02/2024, Spotify, -9.99\n", CsvOptions::default());
    assert_eq!(amounts(&p), ["-9.99"]);
    let p = read_csv(
        "Date,Description,Amount\n2024-01-02,\"Bob \"\"The Builder\"\", Ltd\",\"1,120.00\"\n",
        CsvOptions::default(),
    );
    assert_eq!((amounts(&p), descriptions(&p)), (vec!["1120".to_owned()], vec!["Bob \"The Builder\", Ltd".to_owned()]));
    // Date forms, each decided once for its file.
    for (date, expected) in [
        ("2025.12.04", "2025-12-04"),
        ("28.12.2018", "2018-12-28"),
        ("20200213", "2020-02-13"),
        ("6/4/2016", "2016-06-04"),
    ] {
        let p = read_csv(&format!("Date,Description,Amount\n{date},A,-1.00\n"), CsvOptions::default());
        assert_eq!(dates(&p), [expected], "{date}");
    }
    // Rows of empty fields and 0,00 rows are skipped; an empty file is refused.
    let p =
        read_csv("Date;Description;Amount\n;;\n02.01.2024;Zero;0,00\n03.01.2024;Real;-2,00\n", CsvOptions::default());
    let real: Vec<_> = p.rows().filter(|(_, r)| !r.amount.is_zero()).map(|(_, r)| r.amount.to_string()).collect();
    assert_eq!(real, ["-2.00"]);
    assert!(parse(b"", &Options { format: Some(Format::Csv), ..Options::default() }, Some("x.csv")).is_err());
    let e = refused(b"   \n\n");
    assert!(!e.to_string().is_empty());
}
