//! Bank connections and sync against the emulator, on SQLite and PostgreSQL: first and incremental
//! syncs for each provider, pending -> posted (same and changed amount), removals, every error state,
//! syncing twice, webhooks, deletion, secrets that never show, and one sync per connection at a time.

use std::str::FromStr;

use axum::http::Method;
use magpie_domain::{ConnectionId, ConnectionStatus, UserId};
use magpie_sandbox::{Fault, FaultKind, Via};
use magpie_server::jobs;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser};

pub(crate) enum Kind {
    Plaid,
    Simplefin,
    Gocardless,
}

/// Link a new fake bank through `kind`; returns (connection, bank index, the secret handed over).
pub(crate) async fn connect(app: &TestApp, user: &TestUser, kind: Kind) -> (Value, usize, String) {
    let (body, bank, credential) = match kind {
        Kind::Plaid => {
            let (t, b) = app.bank.sandbox.plaid_public_token(None);
            (json!({"provider": "PLAID", "public_token": t}), b, t)
        }
        Kind::Simplefin => {
            let (t, b) = app.bank.sandbox.simplefin_setup_token();
            (json!({"provider": "SIMPLEFIN", "setup_token": t}), b, t)
        }
        Kind::Gocardless => {
            let t = gocardless_requisition(app, user).await;
            let b = app.bank.sandbox.gocardless_consent(&t).expect("the requisition exists at the bank");
            (json!({"provider": "GOCARDLESS", "requisition_id": t}), b, t)
        }
    };
    let res = app.authed(Method::POST, "/api/v1/connections", &user.access, Some(&body)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    (res.json(), bank, credential)
}

/// Start a GoCardless requisition through the API (consent not given yet); returns its id.
pub(crate) async fn gocardless_requisition(app: &TestApp, user: &TestUser) -> String {
    let body = json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect": "http://localhost/back"});
    let res = app.authed(Method::POST, "/api/v1/connections/gocardless/requisitions", &user.access, Some(&body)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()["requisition_id"].as_str().unwrap().to_owned()
}

/// Queue a sync, run the jobs, return the sync's report.
pub(crate) async fn sync_now(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let res = app.authed(Method::POST, &format!("/api/v1/connections/{id}/sync"), &user.access, None).await;
    assert_eq!(res.status, 202, "{}", String::from_utf8_lossy(&res.body));
    let job = res.json()["job_id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    let job = app.authed(Method::GET, &format!("/api/v1/jobs/{job}"), &user.access, None).await.json();
    assert_eq!(job["status"], "DONE", "{job}");
    job["result"].clone()
}

async fn live(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let page = app.authed(Method::GET, "/api/v1/transactions?limit=500", &user.access, None).await.json();
    page["items"].as_array().unwrap().clone()
}

async fn connection(app: &TestApp, user: &TestUser, id: &str) -> Value {
    app.authed(Method::GET, &format!("/api/v1/connections/{id}"), &user.access, None).await.json()
}

/// The transaction id a provider transaction was stored as.
async fn stored_as(app: &TestApp, user: &TestUser, connection: &str, provider_id: &str) -> Option<String> {
    let mut conn = app.state.db.conn().await.unwrap();
    let rows = magpie_db::sync::rows(
        conn.c(),
        UserId::from_str(&user.id).unwrap(),
        ConnectionId::from_str(connection).unwrap(),
    )
    .await
    .unwrap();
    rows.into_iter().find(|r| r.provider.provider_txn_id == provider_id).map(|r| r.transaction_id.to_string())
}

fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|t| t["id"] == id)
}

fn stats(report: &Value) -> (u64, u64, u64, u64) {
    let s = &report["stats"];
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {report}"));
    (n("inserted"), n("updated"), n("posted"), n("removed"))
}

crate::app_test!(plaid_first_and_incremental_sync_pending_posting_edits_and_removal, |app| {
    let user = app.user().await;
    let (public, bank) = app.bank.sandbox.plaid_public_token(None);
    let pending_id = app
        .bank
        .sandbox
        .change_bank(bank, |b, today| b.add(0, today, Decimal::new(-1250, 2), "SQ *BLUE BOTTLE 0412", true))
        .unwrap();
    let res = app
        .authed(
            Method::POST,
            "/api/v1/connections",
            &user.access,
            Some(&json!({"provider": "PLAID", "public_token": public})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let created = res.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!((created["provider"].as_str(), created["status"].as_str()), (Some("PLAID"), Some("ACTIVE")));
    assert_eq!(created["institution_name"], "First Platypus Bank");
    assert_eq!(created["accounts"].as_array().unwrap().len(), 2);
    assert!(created["last_sync"].is_null(), "nothing synced yet");

    // The first sync was queued with the connection.
    jobs::run_pending(&app.state).await.unwrap();
    let c = connection(app, &user, &id).await;
    assert!(c["last_sync"].is_string(), "{c}");
    let list = live(app, &user).await;
    assert_eq!(list.len(), 41);
    assert!(list.iter().all(|t| t["source"] == "API" && t["connection_id"] == id.as_str()));
    assert!(list.iter().any(|t| t["category_source"] == "PROVIDER"), "Plaid's confident categories are used");
    let pending_tx = stored_as(app, &user, &id, &pending_id).await.unwrap();
    let p = find(&list, &pending_tx).unwrap();
    assert_eq!(
        (p["pending"].as_bool(), p["amount"].as_str(), p["type"].as_str()),
        (Some(true), Some("12.50"), Some("EXPENSE"))
    );
    // No provider category and no model in this test app: it waits for review.
    assert_eq!((p["category"].as_str(), p["category_source"].as_str()), (Some("Uncategorized"), Some("NONE")), "{p}");

    // Nothing new: nothing changes.
    let again = sync_now(app, &user, &id).await;
    assert_eq!(stats(&again), (0, 0, 0, 0));
    assert_eq!(live(app, &user).await.len(), 41);

    // The person edits the pending row; then it posts with a tip, under a new id.
    let patched = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/transactions/{pending_tx}"),
            &user.access,
            Some(&json!({"description": "Morning coffee", "category": "Dining"})),
        )
        .await;
    assert_eq!(patched.status, 200);
    let posted_id = app
        .bank
        .sandbox
        .change_bank(bank, |b, today| b.post(&pending_id, today, Some(Decimal::new(-1500, 2)), false))
        .unwrap()
        .unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&report), (0, 1, 1, 0), "{report}");
    let list = live(app, &user).await;
    assert_eq!(list.len(), 41, "posting replaces the pending row");
    let t = find(&list, &pending_tx).unwrap();
    assert_eq!((t["pending"].as_bool(), t["amount"].as_str()), (Some(false), Some("15.00")));
    assert_eq!(
        (t["description"].as_str(), t["category"].as_str()),
        (Some("Morning coffee"), Some("Dining")),
        "edits kept"
    );
    assert_eq!(stored_as(app, &user, &id, &posted_id).await.as_deref(), Some(pending_tx.as_str()));

    // Pending -> posted with the same amount.
    let p2 = app
        .bank
        .sandbox
        .change_bank(bank, |b, today| b.add(1, today, Decimal::new(-4000, 2), "SHELL OIL 57442", true))
        .unwrap();
    sync_now(app, &user, &id).await;
    let p2_tx = stored_as(app, &user, &id, &p2).await.unwrap();
    app.bank.sandbox.change_bank(bank, |b, today| b.post(&p2, today, None, false)).unwrap().unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&report), (0, 1, 1, 0));
    let list = live(app, &user).await;
    assert_eq!(list.len(), 42);
    assert_eq!(find(&list, &p2_tx).unwrap()["pending"], false);

    // A posted row the bank removes goes (soft-deleted); one it renames is renamed.
    let (gone, renamed) = app.bank.sandbox.with(|w| {
        let b = &w.banks[bank];
        let posted: Vec<String> = b.live().filter(|t| !t.pending).map(|t| t.id.clone()).collect();
        (posted[0].clone(), posted[1].clone())
    });
    let gone_tx = stored_as(app, &user, &id, &gone).await.unwrap();
    let renamed_tx = stored_as(app, &user, &id, &renamed).await.unwrap();
    app.bank.sandbox.change_bank(bank, |b, _| b.remove(&gone)).unwrap();
    app.bank.sandbox.change_bank(bank, |b, _| b.modify(&renamed, "CORRECTED MERCHANT NAME")).unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&report), (0, 1, 0, 1), "{report}");
    let list = live(app, &user).await;
    assert_eq!(list.len(), 41);
    assert!(find(&list, &gone_tx).is_none());
    let audit = app.authed(Method::GET, &format!("/api/v1/transactions/{gone_tx}"), &user.access, None).await.json();
    assert!(audit["deleted_at"].is_string(), "soft-deleted: {audit}");
    let deleted = app.authed(Method::GET, "/api/v1/transactions?deleted=only", &user.access, None).await.json();
    assert!(deleted["items"].as_array().unwrap().iter().any(|t| t["id"] == gone_tx.as_str()), "kept for audit");
    assert_eq!(find(&list, &renamed_tx).unwrap()["description"], "CORRECTED MERCHANT NAME");
});

crate::app_test!(simplefin_pending_rows_post_under_new_ids_and_amounts_without_double_counting, |app| {
    let user = app.user().await;
    let (setup, bank) = app.bank.sandbox.simplefin_setup_token();
    let (tip, vanish) = app
        .bank
        .sandbox
        .change_bank(bank, |b, today| {
            let yesterday = today - chrono::Days::new(1);
            (
                b.add(0, yesterday, Decimal::new(-4000, 2), "THE LOCAL BISTRO", true),
                b.add(0, yesterday, Decimal::new(-100, 2), "CARD VERIFICATION HOLD", true),
            )
        })
        .unwrap();
    let res = app
        .authed(
            Method::POST,
            "/api/v1/connections",
            &user.access,
            Some(&json!({"provider": "SIMPLEFIN", "setup_token": setup})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let id = res.json()["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    assert_eq!(live(app, &user).await.len(), 42);
    let tip_tx = stored_as(app, &user, &id, &tip).await.unwrap();

    // The bistro posts with a tip under a new id; the hold just disappears.
    app.bank
        .sandbox
        .change_bank(bank, |b, today| b.post(&tip, today, Some(Decimal::new(-4800, 2)), false))
        .unwrap()
        .unwrap();
    app.bank.sandbox.change_bank(bank, |b, _| b.remove(&vanish)).unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&report), (0, 1, 1, 1), "{report}");
    let list = live(app, &user).await;
    assert_eq!(list.len(), 41, "the tip did not double-count and the hold is gone");
    let t = find(&list, &tip_tx).unwrap();
    assert_eq!((t["amount"].as_str(), t["pending"].as_bool()), (Some("48.00"), Some(false)));

    // Syncing again adds nothing.
    let again = sync_now(app, &user, &id).await;
    assert_eq!(stats(&again).0, 0);
    assert_eq!(live(app, &user).await.len(), 41);
});

crate::app_test!(gocardless_sync_pending_posting_quota_and_expiry, |app| {
    let user = app.user().await;
    let (created, bank, _) = connect(app, &user, Kind::Gocardless).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["institution_id"], "SANDBOXFINANCE_SFIN0000");
    assert!(created["consent_expires_at"].is_string(), "{created}");
    let pending = app
        .bank
        .sandbox
        .change_bank(bank, |b, today| b.add(0, today - chrono::Days::new(2), Decimal::new(-750, 2), "CAFE ZUID", true))
        .unwrap();
    jobs::run_pending(&app.state).await.unwrap();
    assert_eq!(live(app, &user).await.len(), 41);
    let first_report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&first_report).0, 0, "syncing twice adds nothing");
    app.bank.sandbox.change_bank(bank, |b, today| b.post(&pending, today, None, false)).unwrap().unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!(stats(&report), (0, 1, 1, 0), "{report}");
    assert_eq!(live(app, &user).await.len(), 41);

    // Four successful transaction calls per account and day: then the bank says wait.
    let mut report = sync_now(app, &user, &id).await;
    for _ in 0..3 {
        if report["notices"].as_array().unwrap().iter().any(|n| n["code"] == "account_quota") {
            break;
        }
        report = sync_now(app, &user, &id).await;
    }
    assert!(report["notices"].as_array().unwrap().iter().any(|n| n["code"] == "account_quota"), "{report}");
    assert_eq!(report["outcome"], "synced", "a quota is not a failure");
    let c = connection(app, &user, &id).await;
    assert_eq!(c["status"], "ACTIVE");
    let next = chrono::DateTime::parse_from_rfc3339(c["next_sync_at"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now() + chrono::Duration::minutes(1), "retries after the bank's reset");

    let requisition = handle_of(app, bank);
    reqwest::Client::new()
        .post(format!("{}/_sandbox/gocardless/requisitions/{requisition}/expire", app.bank.url()))
        .send()
        .await
        .unwrap();
    let report = sync_now(app, &user, &id).await;
    assert_eq!((report["outcome"].as_str(), report["status"].as_str()), (Some("failed"), Some("EXPIRED")), "{report}");
    assert_eq!(connection(app, &user, &id).await["status"], "EXPIRED");
});

/// The Plaid item, SimpleFIN user or GoCardless requisition that reaches a fake bank.
fn handle_of(app: &TestApp, bank: usize) -> String {
    app.bank.sandbox.with(|w| w.handle_of(bank)).expect("the bank is linked")
}

crate::app_test!(provider_errors_map_to_connection_states, |app| {
    let user = app.user().await;
    let sandbox = &app.bank.sandbox;
    let (c, _, _) = connect(app, &user, Kind::Plaid).await;
    let id = c["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();

    // Rate limit and 5xx: stay ACTIVE, retry later, data untouched.
    for kind in [FaultKind::RateLimit, FaultKind::ServerError] {
        sandbox.add_fault(Fault { provider: Via::Plaid, kind, times: 1, path: Some("/transactions/sync".into()) });
        let report = sync_now(app, &user, &id).await;
        assert_eq!(
            (report["outcome"].as_str(), report["status"].as_str()),
            (Some("failed"), Some("ACTIVE")),
            "{kind:?}"
        );
        let c = connection(app, &user, &id).await;
        assert!(c["last_error"].is_string() && c["next_sync_at"].is_string(), "{c}");
        let next = chrono::DateTime::parse_from_rfc3339(c["next_sync_at"].as_str().unwrap()).unwrap();
        assert!(next > chrono::Utc::now(), "a retry is scheduled");
    }
    assert_eq!(live(app, &user).await.len(), 40);
    // Mutation during pagination: restarted, and it succeeds.
    sandbox.add_fault(Fault { provider: Via::Plaid, kind: FaultKind::Mutation, times: 1, path: None });
    let report = sync_now(app, &user, &id).await;
    assert_eq!(report["outcome"], "synced", "{report}");
    let c = connection(app, &user, &id).await;
    assert!(c["last_error"].is_null(), "a success clears the error: {c}");
    // Expired login -> EXPIRED, and the scheduler leaves it alone.
    sandbox.add_fault(Fault { provider: Via::Plaid, kind: FaultKind::LoginRequired, times: 1, path: None });
    let report = sync_now(app, &user, &id).await;
    assert_eq!(report["status"], "EXPIRED");
    let c = connection(app, &user, &id).await;
    assert_eq!(c["status"], "EXPIRED");
    assert!(c["last_error"].as_str().unwrap().contains("sign in"), "{c}");
    assert!(c["next_sync_at"].is_null());
    // Revoked token -> ERROR.
    let (c2, _, _) = connect(app, &user, Kind::Plaid).await;
    let id2 = c2["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    sandbox.add_fault(Fault { provider: Via::Plaid, kind: FaultKind::Revoked, times: 1, path: None });
    assert_eq!(sync_now(app, &user, &id2).await["status"], "ERROR");
    assert_eq!(connection(app, &user, &id2).await["status"], "ERROR");

    // SimpleFIN: a connection needing attention still delivers, and becomes EXPIRED; 403 is ERROR.
    let (s, _, _) = connect(app, &user, Kind::Simplefin).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    sandbox.add_fault(Fault { provider: Via::Simplefin, kind: FaultKind::LoginRequired, times: 1, path: None });
    let report = sync_now(app, &user, &sid).await;
    assert_eq!((report["outcome"].as_str(), report["status"].as_str()), (Some("synced"), Some("EXPIRED")), "{report}");
    sandbox.add_fault(Fault { provider: Via::Simplefin, kind: FaultKind::Revoked, times: 1, path: None });
    assert_eq!(sync_now(app, &user, &sid).await["status"], "ERROR");

    // GoCardless: a suspended account is ERROR.
    let (g, gbank, _) = connect(app, &user, Kind::Gocardless).await;
    let gid = g["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    let requisition = handle_of(app, gbank);
    reqwest::Client::new()
        .post(format!("{}/_sandbox/gocardless/requisitions/{requisition}/suspend", app.bank.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sync_now(app, &user, &gid).await["status"], "ERROR");
});

crate::app_test!(scheduled_syncs_run_when_due_and_skip_broken_connections, |app| {
    let user = app.user().await;
    let (c, bank, _) = connect(app, &user, Kind::Plaid).await;
    let id = ConnectionId::from_str(c["id"].as_str().unwrap()).unwrap();
    jobs::run_pending(&app.state).await.unwrap();
    app.bank.sandbox.change_bank(bank, |b, today| b.add(0, today, Decimal::new(-500, 2), "NEW ONE", false)).unwrap();
    // Not due yet: nothing is queued.
    assert_eq!(magpie_server::sync::schedule_due(&app.state).await.unwrap(), 0);
    let mut conn = app.state.db.conn().await.unwrap();
    let past = magpie_domain::Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(1));
    sqlx_set_next(&mut conn, id, past).await;
    drop(conn);
    assert_eq!(magpie_server::sync::schedule_due(&app.state).await.unwrap(), 1);
    assert_eq!(magpie_server::sync::schedule_due(&app.state).await.unwrap(), 0, "claimed once");
    jobs::run_pending(&app.state).await.unwrap();
    assert_eq!(live(app, &user).await.len(), 41);
    // An EXPIRED connection is not scheduled.
    let mut conn = app.state.db.conn().await.unwrap();
    magpie_db::connections::set_status(conn.c(), id, ConnectionStatus::Expired, Some("login"), None).await.unwrap();
    sqlx_set_next(&mut conn, id, past).await;
    drop(conn);
    assert_eq!(magpie_server::sync::schedule_due(&app.state).await.unwrap(), 0);
});

async fn sqlx_set_next(conn: &mut magpie_db::DbConn, id: ConnectionId, at: magpie_domain::Timestamp) {
    magpie_db::connections::set_next_sync(conn.c(), id, at).await.unwrap();
}

crate::app_test!(plaid_webhooks_are_verified_and_drive_syncs_and_states, |app| {
    let user = app.user().await;
    let (c, bank, _) = connect(app, &user, Kind::Plaid).await;
    let id = c["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    let item_id = handle_of(app, bank);
    let post_hook = |body: Value, jwt: Option<String>| {
        let body = body.to_string();
        async move {
            let mut b = axum::http::Request::post("/api/v1/webhooks/plaid").header("content-type", "application/json");
            if let Some(j) = jwt {
                b = b.header("plaid-verification", j);
            }
            app.send(b.body(axum::body::Body::from(body)).unwrap()).await
        }
    };
    // New data at the bank: the emulator sends SYNC_UPDATES_AVAILABLE; replayed here, it queues a sync.
    app.bank
        .sandbox
        .change_bank(bank, |b, today| b.add(0, today, Decimal::new(-900, 2), "WEBHOOK COFFEE", false))
        .unwrap();
    let sent = app.bank.sandbox.outbox();
    assert!(sent.is_empty(), "this item registered no webhook URL");
    let body = json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": item_id,
                      "initial_update_complete": true, "historical_update_complete": true, "environment": "sandbox"});
    let jwt = app.bank.sandbox.sign_plaid_webhook(body.to_string().as_bytes());
    let res = post_hook(body.clone(), Some(jwt.clone())).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["connections"], 1);
    jobs::run_pending(&app.state).await.unwrap();
    assert_eq!(live(app, &user).await.len(), 41);

    // Forged or tampered webhooks are refused and change nothing.
    let forged = json!({"webhook_type": "ITEM", "webhook_code": "USER_PERMISSION_REVOKED", "item_id": item_id});
    post_hook(forged.clone(), None).await.assert_problem(401, "unauthorized");
    post_hook(forged.clone(), Some(jwt)).await.assert_problem(401, "unauthorized");
    assert_eq!(connection(app, &user, &id).await["status"], "ACTIVE");

    // ITEM/ERROR (login required) -> EXPIRED; LOGIN_REPAIRED -> ACTIVE with a sync queued.
    let error = json!({"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": item_id,
                       "error": {"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED", "error_message": "x", "display_message": null, "status": 400}});
    let jwt = app.bank.sandbox.sign_plaid_webhook(error.to_string().as_bytes());
    assert_eq!(post_hook(error, Some(jwt)).await.status, 200);
    assert_eq!(connection(app, &user, &id).await["status"], "EXPIRED");
    let repaired = json!({"webhook_type": "ITEM", "webhook_code": "LOGIN_REPAIRED", "item_id": item_id});
    let jwt = app.bank.sandbox.sign_plaid_webhook(repaired.to_string().as_bytes());
    assert_eq!(post_hook(repaired, Some(jwt)).await.status, 200);
    let c = connection(app, &user, &id).await;
    assert_eq!((c["status"].as_str(), c["last_error"].is_null()), (Some("ACTIVE"), true), "{c}");
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 1, "the repair queued a sync");
});

crate::app_test!(connections_never_show_secrets_and_deleting_revokes_but_keeps_transactions, |app| {
    let user = app.user().await;
    let (c, _, setup) = connect(app, &user, Kind::Simplefin).await;
    let id = c["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    let (p, _, _) = connect(app, &user, Kind::Plaid).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    jobs::run_pending(&app.state).await.unwrap();
    assert_eq!(live(app, &user).await.len(), 80);

    // The stored secrets: sealed, bound to their rows, nowhere in responses or logs.
    let mut conn = app.state.db.conn().await.unwrap();
    let stored = magpie_db::connections::get(
        conn.c(),
        UserId::from_str(&user.id).unwrap(),
        ConnectionId::from_str(&id).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    drop(conn);
    let sealed = stored.access_token.expose().to_owned();
    assert!(sealed.starts_with("mgk1."), "{sealed}");
    let access_url =
        app.state.bank.keyring.open(&stored.access_token, stored.id, stored.user_id).unwrap().expose().to_owned();
    let password = access_url.split(':').nth(2).unwrap().split('@').next().unwrap().to_owned();
    assert!(password.len() > 10);
    assert!(!sealed.contains(&password));
    for path in
        ["/api/v1/connections".to_owned(), format!("/api/v1/connections/{id}"), format!("/api/v1/connections/{pid}")]
    {
        let text = String::from_utf8(app.authed(Method::GET, &path, &user.access, None).await.body).unwrap();
        for secret in [password.as_str(), access_url.as_str(), sealed.as_str(), "access-sandbox-", setup.as_str()] {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
    }
    let logs = crate::logs::text();
    for secret in [password.as_str(), "access-sandbox-", setup.as_str()] {
        assert!(!logs.contains(secret), "a secret was logged");
    }

    // Deleting revokes at Plaid and forgets the connection; its transactions stay, unlinked.
    let res = app.authed(Method::DELETE, &format!("/api/v1/connections/{pid}"), &user.access, None).await;
    assert_eq!(res.status, 204);
    app.authed(Method::GET, &format!("/api/v1/connections/{pid}"), &user.access, None)
        .await
        .assert_problem(404, "not-found");
    let list = live(app, &user).await;
    assert_eq!(list.len(), 80);
    assert_eq!(list.iter().filter(|t| t["connection_id"].is_null()).count(), 40);
    assert!(app.bank.sandbox.hits("plaid /item/remove") >= 1, "revoked at the provider");
    let list = app.authed(Method::GET, "/api/v1/connections", &user.access, None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
});

crate::app_test!(linking_errors_are_clear_and_field_specific, |app| {
    let user = app.user().await;
    let access = user.access.as_str();
    let post = |body: Value| async move { app.authed(Method::POST, "/api/v1/connections", access, Some(&body)).await };
    let p = post(json!({"provider": "NOPE", "public_token": "x"})).await.assert_problem(422, "validation");
    assert_eq!(p["errors"][0]["field"], "provider");
    let p = post(json!({"provider": "PLAID"})).await.assert_problem(422, "validation");
    assert_eq!(p["errors"][0]["field"], "public_token");
    let p = post(json!({"provider": "PLAID", "public_token": "public-sandbox-x", "setup_token": "y"}))
        .await
        .assert_problem(422, "validation");
    assert!(p["errors"].as_array().unwrap().iter().any(|e| e["field"] == "setup_token"), "{p}");
    let p = post(json!({"provider": "PLAID", "public_token": "public-sandbox-unknown"}))
        .await
        .assert_problem(422, "validation");
    assert_eq!(p["errors"][0]["field"], "public_token");
    // A setup token works once; the second claim says it may be compromised.
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    assert_eq!(post(json!({"provider": "SIMPLEFIN", "setup_token": setup})).await.status, 201);
    let p = post(json!({"provider": "SIMPLEFIN", "setup_token": setup})).await.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("compromised"), "{p}");
    let p = post(json!({"provider": "SIMPLEFIN", "setup_token": "aHR0cDovLzE2OS4yNTQuMTY5LjI1NC8="}))
        .await
        .assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("not allowed"), "{p}");
    // A GoCardless requisition whose consent is not finished, then one linked twice.
    let req = gocardless_requisition(app, &user).await;
    let p = post(json!({"provider": "GOCARDLESS", "requisition_id": req})).await.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("not complete"), "{p}");
    let linked = req;
    app.bank.sandbox.gocardless_consent(&linked).unwrap();
    assert_eq!(post(json!({"provider": "GOCARDLESS", "requisition_id": linked})).await.status, 201);
    post(json!({"provider": "GOCARDLESS", "requisition_id": linked})).await.assert_problem(409, "conflict");
    // The providers this server offers, and the helpers that start each flow.
    let providers = app.authed(Method::GET, "/api/v1/connections/providers", &user.access, None).await.json();
    assert_eq!(providers["providers"], json!(["PLAID", "SIMPLEFIN", "GOCARDLESS"]));
    let link = app.authed(Method::POST, "/api/v1/connections/plaid/link-token", &user.access, None).await;
    assert_eq!(link.status, 200, "{}", String::from_utf8_lossy(&link.body));
    assert!(link.json()["link_token"].as_str().unwrap().starts_with("link-sandbox-"));
    let banks = app
        .authed(Method::GET, "/api/v1/connections/gocardless/institutions?country=gb", &user.access, None)
        .await
        .json();
    assert!(banks.as_array().unwrap().iter().any(|b| b["id"] == "SANDBOXFINANCE_SFIN0000"));
    let r = app
        .authed(
            Method::POST,
            "/api/v1/connections/gocardless/requisitions",
            &user.access,
            Some(&json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect": "https://app.example/back"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["link"].as_str().unwrap().contains("/psd2/start/"));
    let bad = app
        .authed(
            Method::POST,
            "/api/v1/connections/gocardless/requisitions",
            &user.access,
            Some(&json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(bad.assert_problem(422, "validation")["errors"][0]["field"], "redirect");
});

crate::app_test!(two_workers_never_sync_one_connection_at_once, |app| {
    let user = app.user().await;
    app.bank.sandbox.with(|w| w.cfg.transactions_per_bank = 600);
    let (c, _, _) = connect(app, &user, Kind::Plaid).await;
    let id = ConnectionId::from_str(c["id"].as_str().unwrap()).unwrap();
    // A second "process": its own pool and state over the same database.
    let second_db = magpie_db::Db::connect(&app.test_db.options()).await.unwrap();
    let mut config = app.state.config.clone();
    crate::support::use_sandbox(&mut config, &app.bank);
    let second = magpie_server::app::AppState::build(config, second_db).await.unwrap();
    app.bank.sandbox.with(|w| w.page_delay_ms = 100);
    let before = app.bank.sandbox.hits("plaid /transactions/sync");
    let (a, b) = tokio::join!(
        magpie_server::sync::run(&app.state, id, true, "process-a"),
        magpie_server::sync::run(&second, id, true, "process-b"),
    );
    let outcomes = [a.unwrap().outcome, b.unwrap().outcome];
    let mut sorted = outcomes;
    sorted.sort();
    assert_eq!(sorted, ["busy", "synced"], "{outcomes:?}");
    // 600 rows at 500 a page: one pagination of two pages, not two.
    assert_eq!(app.bank.sandbox.hits("plaid /transactions/sync") - before, 2);
    assert_eq!(live(app, &user).await.len(), 500, "the first page of the list");
    let mut conn = app.state.db.conn().await.unwrap();
    assert_eq!(magpie_db::sync::count_live(conn.c(), id).await.unwrap(), 600);
});

crate::app_test!(another_users_connection_in_a_body_is_404, |app| {
    let owner = app.user().await;
    let intruder = app.user().await;
    let (c, _, _) = connect(app, &owner, Kind::Plaid).await;
    let res = app
        .authed(
            Method::POST,
            "/api/v1/connections/plaid/link-token",
            &intruder.access,
            Some(&json!({"connection_id": c["id"]})),
        )
        .await;
    res.assert_problem(404, "not-found");
    let list = app.authed(Method::GET, "/api/v1/connections", &intruder.access, None).await.json();
    assert_eq!(list, json!([]), "another user's connections are not listed");
    // The owner may repair it (update mode).
    let res = app
        .authed(
            Method::POST,
            "/api/v1/connections/plaid/link-token",
            &owner.access,
            Some(&json!({"connection_id": c["id"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
});
