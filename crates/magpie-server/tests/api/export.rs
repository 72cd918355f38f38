//! `GET /api/v1/me/export` and `POST /api/v1/me/import`: an account exported on one instance and loaded
//! into a fresh one (on each engine) has the same transactions, sums, budgets, goals and rules; only its
//! own data is exported; a non-empty account or a file that is not an export is refused.

use std::io::Read;

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::app_test;
use crate::support::TestApp;

async fn fill(app: &TestApp, token: &str, email: &str, marker: &str) -> String {
    let post = |path: String, body: serde_json::Value| async move {
        let res = app.authed(Method::POST, &path, token, Some(&body)).await;
        assert!(res.status.is_success(), "{path}: {}", String::from_utf8_lossy(&res.body));
        res.json()
    };
    let args =
        magpie_server::cli::demo::SeedDemoArgs { user: email.to_owned(), transactions: 600, months: 12, seed: 11 };
    magpie_server::cli::demo::seed(&app.test_db.db, &args).await.unwrap();
    post("/api/v1/transactions".into(), json!({"amount": "99999.99", "date": "2026-11-02", "description": format!("=SUM(A1) {marker}"), "type": "EXPENSE", "category": "Shopping"})).await;
    let gone = post(
        "/api/v1/transactions".into(),
        json!({"amount": "5.00", "date": "2026-11-03", "description": format!("{marker} deleted"), "type": "EXPENSE"}),
    )
    .await;
    let res = app
        .authed(Method::DELETE, &format!("/api/v1/transactions/{}", gone["id"].as_str().unwrap()), token, None)
        .await;
    assert_eq!(res.status, 204);
    post("/api/v1/budgets".into(), json!({"name": format!("{marker} budget"), "period_start": "2026-11-01", "period_end": "2026-11-30", "allocations": {"Groceries": "400.00", "Dining": "120.50"}})).await;
    let goal = post(
        "/api/v1/goals".into(),
        json!({"name": format!("{marker} goal"), "target_amount": "1000.00", "deadline": "2027-12-31"}),
    )
    .await;
    post(
        format!("/api/v1/goals/{}/contributions", goal["id"].as_str().unwrap()),
        json!({"amount": "250.25", "note": "first"}),
    )
    .await;
    post("/api/v1/goals".into(), json!({"name": format!("{marker} tracked"), "target_amount": "99999.00", "category": "Groceries", "tracking_start": "2025-01-01"})).await;
    post("/api/v1/rules".into(), json!({"pattern": "coffee", "category": "Coffee Shops", "name": format!("{marker} rule"), "min_amount": "1.00"})).await;
    marker.to_owned()
}

async fn export(app: &TestApp, token: &str) -> Vec<u8> {
    let res = app.authed(Method::GET, "/api/v1/me/export", token, None).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("content-type"), Some("application/zip"));
    assert!(res.header("content-disposition").unwrap().starts_with("attachment; filename=\"magpie-export-"));
    res.body
}

fn entry(zip: &[u8], name: &str) -> String {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut s = String::new();
    a.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

async fn load(app: &TestApp, token: &str, zip: Vec<u8>) -> crate::support::TestResponse {
    app.send(
        Request::post("/api/v1/me/import")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/zip")
            .body(Body::from(zip))
            .unwrap(),
    )
    .await
}

app_test!(an_export_loads_into_a_fresh_instance_with_everything, |app| {
    let user = app.user().await;
    fill(app, &user.access, &user.email, "Mine").await;
    let other = app.user().await;
    fill(app, &other.access, &other.email, "Theirs").await;

    let zip = export(app, &user.access).await;
    let json: serde_json::Value = serde_json::from_str(&entry(&zip, "magpie-export.json")).unwrap();
    assert_eq!(json["format"], "magpie-export");
    assert_eq!(json["user"]["email"], user.email.as_str());
    let text = json.to_string();
    assert!(text.contains("Mine budget") && !text.contains("Theirs"), "only the account's own data is exported");
    assert!(!text.contains("password") && !text.contains("access_token"));
    let csv = entry(&zip, "transactions.csv");
    assert!(csv.starts_with("date,description,amount,type,category,source,category_source,deleted_at\n"));
    assert!(csv.contains("\"'=SUM(A1) Mine\",99999.99,EXPENSE,\"Shopping\""), "formulas are defused: {csv}");
    assert!(entry(&zip, "budgets.csv").contains("\"Mine budget\",2026-11-01,2026-11-30,\"Dining\",120.50"));
    assert!(entry(&zip, "goals.csv").contains("\"Mine goal\",1000.00,250.25,2027-12-31"));

    // A fresh instance on the same engine, a new account there.
    let fresh = match app.state.db.engine() {
        magpie_db::Engine::Sqlite => TestApp::sqlite().await,
        magpie_db::Engine::Postgres => TestApp::postgres().await.unwrap(),
    };
    let newcomer = fresh.user().await;
    let res = load(&fresh, &newcomer.access, zip.clone()).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let loaded = res.json();
    assert_eq!(loaded["budgets"], 1);
    assert_eq!(loaded["goals"], 2);
    assert_eq!(loaded["contributions"], 1);
    assert_eq!(loaded["rules"], 1);
    assert_eq!(loaded["transactions"], json["transactions"].as_array().unwrap().len());
    // The same money, to the cent.
    let q = "/api/v1/reports/summary?from=2020-01-01&to=2027-12-31&group_by=category";
    let a = app.authed(Method::GET, q, &user.access, None).await.json();
    let b = fresh.authed(Method::GET, q, &newcomer.access, None).await.json();
    assert_eq!(a["totals"], b["totals"]);
    assert_eq!(a["groups"], b["groups"]);
    let deleted = fresh.authed(Method::GET, "/api/v1/transactions?deleted=only", &newcomer.access, None).await.json();
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1, "a deleted transaction stays deleted");
    let goals = fresh.authed(Method::GET, "/api/v1/goals", &newcomer.access, None).await.json();
    let mine = goals.as_array().unwrap().iter().find(|g| g["name"] == "Mine goal").unwrap();
    assert_eq!(mine["current_amount"], "250.25");
    let tracked_a = app.authed(Method::GET, "/api/v1/goals", &user.access, None).await.json();
    let ta = tracked_a.as_array().unwrap().iter().find(|g| g["name"] == "Mine tracked").unwrap();
    let tb = goals.as_array().unwrap().iter().find(|g| g["name"] == "Mine tracked").unwrap();
    assert_eq!(ta["current_amount"], tb["current_amount"], "tracked money is recomputed to the same sum");
    let rules = fresh.authed(Method::GET, "/api/v1/rules", &newcomer.access, None).await.json();
    assert_eq!(rules[0]["min_amount"], "1.00");

    // Loading again into the now non-empty account is refused and changes nothing.
    let before = fresh.authed(Method::GET, q, &newcomer.access, None).await.json();
    load(&fresh, &newcomer.access, zip.clone()).await.assert_problem(409, "conflict");
    assert_eq!(fresh.authed(Method::GET, q, &newcomer.access, None).await.json()["totals"], before["totals"]);
    // Not an export.
    let empty = fresh.user().await;
    load(&fresh, &empty.access, b"PK not really".to_vec()).await.assert_problem(422, "validation");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("magpie-export.json", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut w, br#"{"format":"magpie-export","version":1,"transactions":[{"amount":"-1"}]}"#)
        .unwrap();
    let bad = w.finish().unwrap().into_inner();
    let body = load(&fresh, &empty.access, bad).await.assert_problem(422, "validation");
    assert!(body["errors"][0]["field"].as_str().unwrap().starts_with("magpie-export.json"), "{body}");
    // A read token may export but not import.
    let pat = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "r", "scope": "read"})))
        .await
        .json();
    let read = pat["token"].as_str().unwrap();
    assert_eq!(app.authed(Method::GET, "/api/v1/me/export", read, None).await.status, 200);
    assert_eq!(load(app, read, zip).await.status, 403);
});

app_test!(sensitive_actions_are_in_the_users_audit_log_and_nobody_elses, |app| {
    let user = app.user().await;
    // A failed sign-in, a token created and revoked, a connection made and removed, an export, a
    // password change, a sign-out everywhere.
    let res =
        app.json(Method::POST, "/api/v1/auth/login", &json!({"email": user.email, "password": "not it at all"})).await;
    assert_eq!(res.status, 401);
    let t = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "nightly", "scope": "read"})))
        .await
        .json();
    let res = app
        .authed(Method::DELETE, &format!("/api/v1/me/tokens/{}", t["id"].as_str().unwrap()), &user.access, None)
        .await;
    assert_eq!(res.status, 204);
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let c = app
        .authed(
            Method::POST,
            "/api/v1/connections",
            &user.access,
            Some(&json!({"provider": "SIMPLEFIN", "setup_token": setup})),
        )
        .await
        .json();
    let res = app
        .authed(Method::DELETE, &format!("/api/v1/connections/{}", c["id"].as_str().unwrap()), &user.access, None)
        .await;
    assert_eq!(res.status, 204);
    assert_eq!(app.authed(Method::GET, "/api/v1/me/export", &user.access, None).await.status, 200);
    let res = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &user.access,
            Some(&json!({"current_password": user.password, "new_password": "a new long password"})),
        )
        .await;
    assert_eq!(res.status, 200);
    let res = app.authed(Method::POST, "/api/v1/auth/logout-all", &user.access, None).await;
    assert_eq!(res.status, 204);
    let again = app.login(&user.email, "a new long password").await;
    let token = again["access_token"].as_str().unwrap();
    let log = app.authed(Method::GET, "/api/v1/me/audit", token, None).await.json();
    let kinds: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "sign_in",
            "sessions_revoked",
            "password_changed",
            "export",
            "connection_deleted",
            "connection_created",
            "token_revoked",
            "token_created",
            "sign_in_failed",
            "sign_in"
        ],
        "{log}"
    );
    let text = log.to_string();
    let secret = t["token"].as_str().unwrap();
    assert!(
        text.contains("nightly") && !text.contains(secret) && !text.contains(&user.password),
        "no secret in the log"
    );
    // Another user sees only their own.
    let other = app.user().await;
    let theirs = app.authed(Method::GET, "/api/v1/me/audit", &other.access, None).await.json();
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    app.authed(Method::GET, "/api/v1/me/audit?limit=0", token, None).await.assert_problem(422, "validation");
});
