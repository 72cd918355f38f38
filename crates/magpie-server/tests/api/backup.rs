//! `magpie backup` and `magpie restore` (the real binary) on both engines: a backup taken while the app
//! is serving, restored into a fresh database, gives the same rows in every table, and the restored
//! instance works: the same password signs in, the same transactions, budgets and goals are listed, the
//! sealed bank token still opens.

use std::process::Command;

use axum::http::Method;
use serde_json::json;

use crate::app_test;
use crate::support::{TestApp, test_config};

const BIN: &str = env!("CARGO_BIN_EXE_magpie");

fn magpie(args: &[&str], url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(args)
        .arg("--database-url")
        .arg(url)
        .env("MAGPIE_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn table_counts(db: &magpie_db::Db) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in magpie_db::backup::tables_in_dependency_order(db).await.unwrap() {
        let mut conn = db.conn().await.unwrap();
        let sql = format!("select count(*) from \"{t}\"");
        let n: i64 = magpie_db::on_conn!(conn.c(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *c).await.unwrap());
        out.push((t, n));
    }
    out
}

async fn fresh(app: &TestApp) -> magpie_db::testing::TestDb {
    match app.state.db.engine() {
        magpie_db::Engine::Sqlite => magpie_db::testing::TestDb::sqlite().await,
        magpie_db::Engine::Postgres => magpie_db::testing::TestDb::postgres().await.unwrap(),
    }
}

app_test!(a_backup_restores_into_a_fresh_database_with_every_row, |app| {
    let user = app.user().await;
    let access = user.access.as_str();
    let t = |body: serde_json::Value| async move {
        let res = app.authed(Method::POST, "/api/v1/transactions", access, Some(&body)).await;
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    };
    t(json!({"amount": "1234567.89", "date": "2026-11-02", "description": "Exact money ✓ “quoted”", "type": "INCOME", "category": "Salary"})).await;
    t(json!({"amount": "0.01", "date": "2026-11-03", "description": "A cent", "type": "EXPENSE", "category": "Groceries"})).await;
    let args =
        magpie_server::cli::demo::SeedDemoArgs { user: user.email.clone(), transactions: 800, months: 12, seed: 3 };
    magpie_server::cli::demo::seed(&app.test_db.db, &args).await.unwrap();
    let post = |path: &'static str, body: serde_json::Value| async move {
        let res = app.authed(Method::POST, path, access, Some(&body)).await;
        assert!(res.status.is_success(), "{path}: {}", String::from_utf8_lossy(&res.body));
        res.json()
    };
    post("/api/v1/budgets", json!({"name": "Nov", "period_start": "2026-11-01", "period_end": "2026-11-30", "allocations": {"Groceries": "400.00"}})).await;
    let goal = post("/api/v1/goals", json!({"name": "Fund", "target_amount": "1000.00"})).await;
    let gid = goal["id"].as_str().unwrap().to_owned();
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/goals/{gid}/contributions"),
            &user.access,
            Some(&json!({"amount": "12.34"})),
        )
        .await;
    assert_eq!(res.status, 201);
    post("/api/v1/rules", json!({"pattern": "coffee", "category": "Coffee Shops"})).await;
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let conn = post("/api/v1/connections", json!({"provider": "SIMPLEFIN", "setup_token": setup})).await;
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    // A warm-up after those changes may queue a forecast training: let it finish first.
    app.state.warmer.settle().await;

    let before = table_counts(&app.state.db).await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("magpie.backup");
    let file_s = file.to_str().unwrap();
    // Online: the app keeps its pool open while the backup runs.
    let (ok, out) = magpie(&["backup", file_s], &app.test_db.url_with_schema());
    assert!(ok, "{out}");
    assert!(out.contains("backed up") && out.contains("1 users"), "{out}");
    let (ok, out) = magpie(&["backup", file_s], &app.test_db.url_with_schema());
    assert!(!ok && out.contains("exists"), "a backup never overwrites a file: {out}");

    let target = fresh(app).await;
    let (ok, out) = magpie(&["restore", file_s], &target.url_with_schema());
    assert!(ok, "{out}");
    assert!(out.contains("restored"), "{out}");
    assert_eq!(table_counts(&target.db).await, before, "every table has the same rows");

    // The restored instance works as the original did.
    let restored = over(app, target).await;
    let tokens = restored.login(&user.email, &user.password).await;
    let token = tokens["access_token"].as_str().unwrap();
    let page = restored.authed(Method::GET, "/api/v1/transactions?q=Exact", token, None).await.json();
    assert_eq!(page["items"][0]["amount"], "1234567.89");
    assert_eq!(page["items"][0]["description"], "Exact money ✓ “quoted”");
    let original = app
        .authed(Method::GET, "/api/v1/reports/summary?from=2025-01-01&group_by=category", &user.access, None)
        .await
        .json();
    let copy = restored
        .authed(Method::GET, "/api/v1/reports/summary?from=2025-01-01&group_by=category", token, None)
        .await
        .json();
    assert_eq!(original["totals"], copy["totals"], "the sums are exact after the round trip");
    assert_eq!(original["groups"], copy["groups"]);
    let g = restored.authed(Method::GET, &format!("/api/v1/goals/{gid}"), token, None).await.json();
    assert_eq!(g["current_amount"], "12.34");
    let c = restored
        .authed(Method::GET, &format!("/api/v1/connections/{}", conn["id"].as_str().unwrap()), token, None)
        .await;
    assert_eq!(c.status, 200);
    let stored = {
        let mut db = restored.state.db.conn().await.unwrap();
        magpie_db::connections::all_tokens(db.c()).await.unwrap()
    };
    assert_eq!(stored.len(), 1);
    let (cid, uid, sealed) = &stored[0];
    assert!(restored.state.bank.keyring.open(sealed, *cid, *uid).is_ok(), "the sealed token opens after the restore");

    // A second restore over data needs --force, and then replaces everything atomically.
    let (ok, out) = magpie(&["restore", file_s], &restored.test_db.url_with_schema());
    assert!(!ok && out.contains("--force"), "{out}");
    restored.user().await;
    let (ok, out) = magpie(&["restore", "--force", file_s], &restored.test_db.url_with_schema());
    assert!(ok, "{out}");
    assert_eq!(table_counts(&restored.test_db.db).await, before);
    // A file that is not a backup of this engine is refused, and changes nothing.
    let junk = folder.path().join("junk");
    std::fs::write(&junk, b"not a backup").unwrap();
    let (ok, out) = magpie(&["restore", "--force", junk.to_str().unwrap()], &restored.test_db.url_with_schema());
    assert!(!ok && out.contains("not a magpie backup"), "{out}");
    assert_eq!(table_counts(&restored.test_db.db).await, before);
});

fn test_config_like(app: &TestApp) -> magpie_server::config::Config {
    let mut c = test_config();
    c.model_store = app.state.config.model_store.clone();
    crate::support::use_sandbox(&mut c, &app.bank);
    c
}

/// A `TestApp` over `target`, configured as `app` (the same keys).
async fn over(app: &TestApp, target: magpie_db::testing::TestDb) -> TestApp {
    let bank = magpie_sandbox::Sandbox::new(magpie_sandbox::SandboxConfig::default())
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let state = magpie_server::app::AppState::build(test_config_like(app), target.db.clone()).await.unwrap();
    TestApp {
        router: magpie_server::app::router(state.clone()),
        state,
        test_db: target,
        models: tempfile::tempdir().unwrap(),
        bank,
    }
}
