//! Statement imports through the API: formats, dedup in layers, previews, revert, atomicity.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use crate::app_test;
use crate::support::{TestApp, TestUser};

const OFX: &str = "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nCHARSET:1252\r\n\r\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD\
<BANKACCTFROM><BANKID>121000248<ACCTID>1234567890<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST>\
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260105<TRNAMT>-4.50<FITID>F1<NAME>BLUE BOTTLE COFFEE #12</STMTTRN>\
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260106<TRNAMT>-82.17<FITID>F2<NAME>WHOLE FOODS MKT 10234</STMTTRN>\
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20260107<TRNAMT>2500.00<FITID>F3<NAME>ACME PAYROLL</STMTTRN>\
</BANKTRANLIST><LEDGERBAL><BALAMT>1000.00<DTASOF>20260107</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>";

/// The next statement of the same account: overlaps F2 and F3, adds F4.
const OFX_NEXT: &str = "OFXHEADER:100\r\nDATA:OFXSGML\r\n\r\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD\
<BANKACCTFROM><BANKID>121000248<ACCTID>1234567890</BANKACCTFROM><BANKTRANLIST>\
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260106<TRNAMT>-82.17<FITID>F2<NAME>WHOLE FOODS MKT 10234</STMTTRN>\
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20260107<TRNAMT>2500.00<FITID>F3<NAME>ACME PAYROLL</STMTTRN>\
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260110<TRNAMT>-12.00<FITID>F4<NAME>NETFLIX.COM</STMTTRN>\
</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>";

const CSV_TWO_COFFEES: &str = "Date,Description,Amount\n2026-02-03,Corner Cafe,-3.20\n2026-02-03,Corner Cafe,-3.20\n2026-02-04,Book shop,-18.00\n";

async fn ledger(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let page =
        app.authed(Method::GET, "/api/v1/transactions?limit=500&deleted=include", &user.access, None).await.json();
    page["items"].as_array().unwrap().clone()
}

app_test!(an_import_writes_rows_and_a_reimport_adds_nothing, |app| {
    let user = app.user().await;
    let res = app.import(&user.access, "filename=jan.ofx", OFX.as_bytes()).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let report = res.json();
    assert_eq!(
        (report["format"].as_str(), report["imported"].as_u64(), report["duplicates"].as_u64()),
        (Some("ofx"), Some(3), Some(0))
    );
    assert!(report["batch_id"].is_string());
    let rows = ledger(app, &user).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|t| t["source"] == "FILE_IMPORT"));
    let salary = rows.iter().find(|t| t["description"] == "ACME PAYROLL").unwrap();
    assert_eq!((salary["amount"].as_str(), salary["type"].as_str()), (Some("2500.00"), Some("INCOME")));
    let coffee = rows.iter().find(|t| t["amount"] == "4.50").unwrap();
    assert_eq!(coffee["type"], "EXPENSE");

    let again = app.import(&user.access, "", OFX.as_bytes()).await.json();
    assert_eq!((again["imported"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));
    // An overlapping statement of the same account adds only what is new.
    let next = app.import(&user.access, "", OFX_NEXT.as_bytes()).await.json();
    assert_eq!((next["imported"].as_u64(), next["duplicates"].as_u64()), (Some(1), Some(2)));
    assert_eq!(ledger(app, &user).await.len(), 4);
});

app_test!(two_identical_rows_of_one_day_are_both_kept_and_a_reimport_keeps_two, |app| {
    let user = app.user().await;
    let first = app.import(&user.access, "account=Checking", CSV_TWO_COFFEES.as_bytes()).await.json();
    assert_eq!(first["imported"], 3, "{first}");
    let second = app.import(&user.access, "account=Checking", CSV_TWO_COFFEES.as_bytes()).await.json();
    assert_eq!((second["imported"].as_u64(), second["duplicates"].as_u64()), (Some(0), Some(3)));
    let coffees = ledger(app, &user).await.into_iter().filter(|t| t["description"] == "Corner Cafe").count();
    assert_eq!(coffees, 2);
    // A third coffee that day in a later export is new.
    let more = format!("{CSV_TWO_COFFEES}2026-02-03,Corner Cafe,-3.20\n");
    let third = app.import(&user.access, "account=Checking", more.as_bytes()).await.json();
    assert_eq!(third["imported"], 1);
});

app_test!(a_deleted_transaction_does_not_come_back_and_categories_do_not_change_dedup, |app| {
    let user = app.user().await;
    app.import(&user.access, "", OFX.as_bytes()).await;
    let rows = ledger(app, &user).await;
    let coffee = rows.iter().find(|t| t["amount"] == "4.50").unwrap()["id"].as_str().unwrap().to_owned();
    app.authed(Method::DELETE, &format!("/api/v1/transactions/{coffee}"), &user.access, None).await;
    let ids: Vec<&str> = rows.iter().map(|t| t["id"].as_str().unwrap()).filter(|id| *id != coffee).collect();
    app.authed(
        Method::POST,
        "/api/v1/transactions/bulk",
        &user.access,
        Some(&json!({"action": "set_category", "ids": ids, "category": "Groceries"})),
    )
    .await;
    let again = app.import(&user.access, "", OFX.as_bytes()).await.json();
    assert_eq!((again["imported"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));
    let live = app.authed(Method::GET, "/api/v1/transactions", &user.access, None).await.json();
    assert_eq!(live["items"].as_array().unwrap().len(), 2, "the deleted one stays deleted");
});

app_test!(a_dry_run_previews_without_writing, |app| {
    let user = app.user().await;
    app.import(&user.access, "", OFX.as_bytes()).await;
    let res = app.import(&user.access, "dry_run=true", OFX_NEXT.as_bytes()).await;
    assert_eq!(res.status, 200);
    let p = res.json();
    assert_eq!(p["dry_run"], true);
    assert!(p["batch_id"].is_null());
    let statuses: Vec<&str> = p["rows"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["duplicate_id", "duplicate_id", "new"]);
    assert_eq!(p["imported"], 1);
    assert_eq!(ledger(app, &user).await.len(), 3, "nothing written");
    let batches = app.authed(Method::GET, "/api/v1/imports", &user.access, None).await.json();
    assert_eq!(batches.as_array().unwrap().len(), 1);
});

app_test!(the_same_account_from_another_format_is_shown_as_possible_duplicates, |app| {
    let user = app.user().await;
    app.import(&user.access, "", OFX.as_bytes()).await;
    // The same three transactions exported as CSV: no bank ids, other wording, a day later.
    let csv = "Date,Payee,Amount\n01/06/2026,Blue Bottle Coffee,-4.50\n01/07/2026,Whole Foods Market,-82.17\n01/08/2026,Acme Payroll Deposit,2500.00\n";
    let p = app.import(&user.access, "dry_run=true", csv.as_bytes()).await.json();
    assert_eq!(p["possible_duplicates"], 3, "{p}");
    let first = &p["rows"][0];
    assert_eq!(first["status"], "new", "possible duplicates are never dropped silently");
    assert_eq!(first["possible_duplicates"][0]["description"], "BLUE BOTTLE COFFEE #12");
});

app_test!(unreadable_rows_and_files_name_their_line, |app| {
    let user = app.user().await;
    let csv = "Date,Description,Amount\n2026-03-01,Rent,-900.00\n2026-03-02,Broken,abc\nnot a date,Other,-1.00\n";
    let p = app.import(&user.access, "", csv.as_bytes()).await.json();
    assert_eq!(p["imported"], 1);
    let errors: Vec<u64> = p["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(errors, [3, 4]);
    let bad = app.import(&user.access, "format=ofx", b"OFXHEADER:100\n<OFX><STMTRS><BANKTRANLIST><STMTTRN><TRNAMT>-1<FITID>x</STMTTRN></BANKTRANLIST></STMTRS></OFX>").await;
    let body = bad.assert_problem(422, "validation");
    assert!(body["detail"].as_str().unwrap().contains("line"), "{body}");
    app.import(&user.access, "", b"").await.assert_problem(422, "validation");
    app.import(&user.access, "format=nope", OFX.as_bytes()).await.assert_problem(422, "validation");
    app.import(&user.access, "mapping=%7Bbad", b"a,b\n").await.assert_problem(422, "validation");
    assert_eq!(ledger(app, &user).await.len(), 1);
});

app_test!(revert_removes_a_batch_and_allows_a_fresh_import, |app| {
    let user = app.user().await;
    let batch = app.import(&user.access, "filename=jan.ofx", OFX.as_bytes()).await.json()["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.import(&user.access, "account=Cash", CSV_TWO_COFFEES.as_bytes()).await;
    assert_eq!(ledger(app, &user).await.len(), 6);
    let one = app.authed(Method::GET, &format!("/api/v1/imports/{batch}"), &user.access, None).await.json();
    assert_eq!(
        (one["filename"].as_str(), one["imported"].as_i64(), one["status"].as_str()),
        (Some("jan.ofx"), Some(3), Some("COMMITTED"))
    );
    assert_eq!(app.authed(Method::DELETE, &format!("/api/v1/imports/{batch}"), &user.access, None).await.status, 204);
    assert_eq!(ledger(app, &user).await.len(), 3, "only the other batch's rows remain");
    app.authed(Method::DELETE, &format!("/api/v1/imports/{batch}"), &user.access, None)
        .await
        .assert_problem(404, "not-found");
    let history = app.authed(Method::GET, "/api/v1/imports", &user.access, None).await.json();
    let statuses: Vec<&str> = history.as_array().unwrap().iter().map(|b| b["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "REVERTED").count(), 1);
    let again = app.import(&user.access, "", OFX.as_bytes()).await.json();
    assert_eq!(again["imported"], 3, "a reverted file imports again");
});

app_test!(multipart_uploads_with_options_work, |app| {
    let user = app.user().await;
    let boundary = "XyZboundary";
    let csv = "Buchungstag;Verwendungszweck;Betrag\n03.05.2021;Miete;-750,00\n04.05.2021;Gehalt;2.800,00\n";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\nContent-Type: application/json\r\n\r\n{{\"account\": \"Giro\", \"dry_run\": false}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"umsaetze.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let res = app
        .send(
            Request::post("/api/v1/imports")
                .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
                .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let r = res.json();
    assert_eq!(r["imported"], 2);
    assert_eq!(r["csv_layout"]["delimiter"], ";");
    let rows = ledger(app, &user).await;
    let salary = rows.iter().find(|t| t["description"] == "Gehalt").unwrap();
    assert_eq!(salary["amount"], "2800.00");
    let history = app.authed(Method::GET, "/api/v1/imports", &user.access, None).await.json();
    assert_eq!(history[0]["filename"], "umsaetze.csv");
});

app_test!(a_read_token_cannot_import, |app| {
    let user = app.user().await;
    let token = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "ro", "scope": "read"})))
        .await
        .json();
    app.import(token["token"].as_str().unwrap(), "", OFX.as_bytes()).await.assert_problem(403, "forbidden");
});
