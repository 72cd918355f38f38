//! The security review's findings (issue 23), each with the test that failed before its fix, in-process
//! on both engines. The ones that need a live server (deep nesting, zip bombs, parallel guessing with
//! the server's memory watched) are in `hostile.rs`.

use std::io::Write;

use axum::body::Body;
use axum::http::{Method, Request};
use magpie_server::config::{Config, Registration, Secret};
use serde_json::{Value, json};

use crate::app_test;
use crate::support::{TestApp, test_config};

const LOGIN: &str = "/api/v1/auth/login";

/// `<Document><e0><e1>...` nested `depth` deep: the review's crash.
pub fn deep_xml(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 8 + 16);
    s.push_str("<Document>");
    for i in 0..depth {
        s.push_str(&format!("<e{i}>"));
    }
    s
}

/// A zip holding `entries` (name, bytes), deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn field_of(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

app_test!(deeply_nested_markup_is_refused_as_a_bad_file, |app| {
    let user = app.user().await;
    let res = app.import(&user.access, "dry_run=true&filename=deep.xml", deep_xml(60_000).as_bytes()).await;
    let p = res.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("nested more than 256"), "{p}");
    let ofx =
        format!("OFXHEADER:100\nDATA:OFXSGML\n\n<OFX>{}", (0..60_000).map(|i| format!("<A{i}>")).collect::<String>());
    let p = app
        .import(&user.access, "dry_run=true&filename=deep.ofx", ofx.as_bytes())
        .await
        .assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("nested more than 256"), "{p}");
    // The server still answers.
    assert_eq!(app.get("/healthz").await.status, 200);
});

app_test!(zip_bombs_are_refused_in_statements_and_exports, |app| {
    let user = app.user().await;
    // 64 MB of zeros in a 64 KB zip: the review's memory blow-up.
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_of(&[("statement.xml", &zeros)]);
    assert!(bomb.len() < 100 << 10);
    let p = app.import(&user.access, "dry_run=true&filename=s.zip", &bomb).await.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("compressed more than"), "{p}");
    // Too many entries.
    let names: Vec<String> = (0..300).map(|i| format!("f{i}.xml")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"<Document/>".as_slice())).collect();
    let p =
        app.import(&user.access, "dry_run=true&filename=m.zip", &zip_of(&many)).await.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("300 entries"), "{p}");
    // An export bomb into an empty account (JSON that goes on and on): refused by the ratio, not unpacked.
    let mut endless = br#"{"format":""#.to_vec();
    endless.resize(64 << 20, b'a');
    let export_bomb = zip_of(&[("magpie-export.json", &endless)]);
    let import = |token: String, body: Vec<u8>| async move {
        app.send(
            Request::post("/api/v1/me/import")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    };
    let p = import(user.access.clone(), export_bomb.clone()).await.assert_problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("compressed more than"), "{p}");
    // Into an account with data, it is refused before the zip is opened.
    let body =
        json!({"amount": "1.00", "date": "2026-01-02", "type": "EXPENSE", "description": "x", "category": "Dining"});
    assert_eq!(app.authed(Method::POST, "/api/v1/transactions", &user.access, Some(&body)).await.status, 201);
    import(user.access.clone(), export_bomb).await.assert_problem(409, "conflict");
});

app_test!(an_imported_export_is_held_to_the_apis_rules, |app| {
    let user = app.user().await;
    let export = |tx: Value, rule: Value| {
        let doc = json!({
            "format": "magpie-export", "version": 1, "exported_at": "2026-01-01T00:00:00Z",
            "user": {"email": "x@example.com", "first_name": null, "last_name": null, "created_at": "2026-01-01T00:00:00Z"},
            "transactions": [tx], "budgets": [], "goals": [], "rules": [rule], "connections": []
        });
        zip_of(&[("magpie-export.json", doc.to_string().as_bytes())])
    };
    let good_tx = json!({"date": "2026-01-02", "amount": "5.00", "type": "EXPENSE", "description": "Coffee",
        "category": "Dining", "source": "MANUAL", "category_source": "USER", "confidence_score": null,
        "created_at": "2026-01-02T00:00:00Z", "deleted_at": null});
    let good_rule = json!({"name": "Coffee", "priority": 1, "match_kind": "CONTAINS", "pattern": "coffee",
        "min_amount": null, "max_amount": null, "type": null, "category": "Dining", "enabled": true});
    let auth = format!("Bearer {}", user.access);
    let auth = auth.as_str();
    let send = |body: Vec<u8>| async move {
        app.send(Request::post("/api/v1/me/import").header("authorization", auth).body(Body::from(body)).unwrap()).await
    };
    for (tx, rule, field) in [
        (json!({"description": "Cof\u{0}fee"}), json!({}), "transactions[0].description"),
        (json!({"description": "Cof\tfee"}), json!({}), "transactions[0].description"),
        (json!({"description": "x".repeat(20_000)}), json!({}), "transactions[0].description"),
        (json!({"date": "1850-01-01"}), json!({}), "transactions[0].date"),
        (json!({}), json!({"pattern": "(unclosed", "match_kind": "REGEX"}), "rules[0].pattern"),
        (json!({}), json!({"priority": 2_000_000_000}), "rules[0].priority"),
        (json!({}), json!({"name": "a\rb"}), "rules[0].name"),
    ] {
        let mut t = good_tx.clone();
        t.as_object_mut().unwrap().extend(tx.as_object().unwrap().clone());
        let mut r = good_rule.clone();
        r.as_object_mut().unwrap().extend(rule.as_object().unwrap().clone());
        let p = send(export(t, r)).await.assert_problem(422, "validation");
        assert!(field_of(&p).iter().any(|f| f == field), "{field}: {p}");
    }
    // Nothing was written by the refused ones; a clean export loads.
    assert_eq!(send(export(good_tx, good_rule)).await.status, 201);
});

app_test!(one_user_cannot_link_another_users_gocardless_requisition, |app| {
    let alice = app.user().await;
    let bob = app.user().await;
    let req = crate::sync::gocardless_requisition(app, &alice).await;
    app.bank.sandbox.gocardless_consent(&req).unwrap();
    let body = json!({"provider": "GOCARDLESS", "requisition_id": req});
    let p = app
        .authed(Method::POST, "/api/v1/connections", &bob.access, Some(&body))
        .await
        .assert_problem(422, "validation");
    assert_eq!(field_of(&p), ["requisition_id"]);
    assert!(p["detail"].as_str().unwrap().contains("unknown requisition"), "{p}");
    // Nor one created at the bank by someone else entirely (no row here at all).
    let (stranger, _) = app.bank.sandbox.gocardless_linked_requisition();
    let body = json!({"provider": "GOCARDLESS", "requisition_id": stranger});
    app.authed(Method::POST, "/api/v1/connections", &bob.access, Some(&body)).await.assert_problem(422, "validation");
    let list = app.authed(Method::GET, "/api/v1/connections", &bob.access, None).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // Alice links hers.
    let body = json!({"provider": "GOCARDLESS", "requisition_id": req});
    assert_eq!(app.authed(Method::POST, "/api/v1/connections", &alice.access, Some(&body)).await.status, 201);
});

#[tokio::test]
async fn the_signing_key_lives_in_a_private_file_and_the_stored_one_is_dropped_on_upgrade() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("data/magpie.db");
    let url = format!("sqlite://{}", db_path.display());
    let db = magpie_db::Db::connect(&magpie_db::DbOptions::new(url)).await.unwrap();
    // The previous release kept a generated key in the database.
    db.migrate_to(9).await.unwrap();
    {
        let mut c = db.conn().await.unwrap();
        magpie_db::auth::get_or_create_secret(c.c(), "auth_signing_key", || {
            "an-old-key-kept-in-the-database-0123".into()
        })
        .await
        .unwrap();
    }
    db.migrate().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db_path), 0o600, "the database file");
    assert_eq!(mode(db_path.parent().unwrap()), 0o700, "its folder");
    for suffix in ["-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
        assert_eq!(mode(&p), 0o600, "{suffix}");
    }
    let config = Config { data_dir: dir.path().join("data"), auth_secret: None, bcrypt_cost: 4, ..test_config() };
    let state = magpie_server::app::AppState::build(config.clone(), db.clone()).await.unwrap();
    let key_file = dir.path().join("data/auth.key");
    assert_eq!(mode(&key_file), 0o600);
    let mut c = db.conn().await.unwrap();
    let stored: i64 = magpie_db::on_conn!(c.c(), c => sqlx::query_scalar("select count(*) from server_secrets")
        .fetch_one(&mut *c).await.unwrap());
    assert_eq!(stored, 0, "no signing key in the database");
    // A token signed with the old database key does not verify any more.
    let old = magpie_server::auth::jwt::JwtKeys::new(b"an-old-key-kept-in-the-database-0123");
    let forged =
        old.issue(magpie_domain::UserId::new(), magpie_domain::SessionId::new(), chrono::Utc::now().timestamp(), 900);
    assert!(state.jwt.verify(&forged, chrono::Utc::now().timestamp()).is_err());
    // A backup is private too.
    let backup = dir.path().join("backup.db");
    magpie_db::backup::sqlite_copy(&db, &backup).await.unwrap();
    assert_eq!(mode(&backup), 0o600);
}

#[tokio::test]
async fn a_hundred_parallel_guesses_get_at_most_the_limit_checked() {
    let config = Config { trust_forwarded_for: true, ..test_config() };
    let app = std::sync::Arc::new(TestApp::sqlite_with(config).await);
    app.register("target@example.com", "correct horse battery").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.spawn(async move {
            let body = json!({"email": "target@example.com", "password": "guess guess guess"}).to_string();
            let req = Request::post(LOGIN)
                .header("content-type", "application/json")
                .header("x-forwarded-for", "203.0.113.9")
                .body(Body::from(body))
                .unwrap();
            app.send(req).await.status.as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "{checked} passwords were checked");
    assert_eq!(checked + refused, 100, "{statuses:?}");
    // The owner, from their own address, is not locked out.
    let owner = Request::post(LOGIN)
        .header("content-type", "application/json")
        .header("x-forwarded-for", "198.51.100.20")
        .body(Body::from(json!({"email": "target@example.com", "password": "correct horse battery"}).to_string()))
        .unwrap();
    assert_eq!(app.send(owner).await.status, 200);
}

app_test!(
    sign_up_can_be_closed_or_by_invitation_and_is_throttled,
    config = Config { registration: Registration::Invite, registrations_per_ip: 3, ..test_config() },
    |app| {
        let register = |email: &str, invite: Option<&str>| {
            let mut body = json!({"email": email, "password": "correct horse battery"});
            if let Some(code) = invite {
                body["invite_code"] = json!(code);
            }
            async move { app.json(Method::POST, "/api/v1/auth/register", &body).await }
        };
        let p = register("a@example.com", None).await.assert_problem(422, "validation");
        assert_eq!(field_of(&p), ["invite_code"]);
        let code = "mgp_inv_test-code-for-one-person-only";
        {
            let mut c = app.test_db.db.conn().await.unwrap();
            let expires = magpie_domain::Timestamp::from_datetime(chrono::Utc::now() + chrono::TimeDelta::days(1));
            magpie_db::security::create_invite(c.c(), &magpie_server::auth::token::hash(code), None, expires)
                .await
                .unwrap();
        }
        assert_eq!(register("a@example.com", Some(code)).await.status, 201);
        let p = register("b@example.com", Some(code)).await.assert_problem(422, "validation");
        assert_eq!(field_of(&p), ["invite_code"], "an invitation works once");
        // Three sign-up attempts from one address in the window are allowed, the fourth is not.
        register("c@example.com", Some("nope")).await.assert_problem(422, "validation");
        register("d@example.com", Some("nope")).await.assert_problem(429, "too-many-requests");
        let methods = app.get("/api/v1/auth/methods").await.json();
        assert_eq!(methods["registration"], "invite");
    }
);

app_test!(closed_sign_up_is_refused, config = Config { registration: Registration::Closed, ..test_config() }, |app| {
    app.json(
        Method::POST,
        "/api/v1/auth/register",
        &json!({"email": "a@example.com", "password": "correct horse battery"}),
    )
    .await
    .assert_problem(403, "forbidden");
});

app_test!(a_taken_email_is_refused_before_any_hashing, |app| {
    let user = app.user().await;
    let res = app
        .json(Method::POST, "/api/v1/auth/register", &json!({"email": user.email, "password": "another good one"}))
        .await;
    res.assert_problem(409, "conflict");
});

app_test!(personal_tokens_end_with_a_password_change_and_cannot_sign_the_owner_out, |app| {
    let user = app.user().await;
    let pat = app
        .authed(
            Method::POST,
            "/api/v1/me/tokens",
            &user.access,
            Some(&json!({"name": "script", "scope": "read-write"})),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &pat, None).await.status, 200);
    app.authed(Method::POST, "/api/v1/auth/logout-all", &pat, None).await.assert_problem(403, "forbidden");
    app.authed(Method::POST, "/api/v1/auth/logout", &pat, None).await.assert_problem(403, "forbidden");
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &user.access, None).await.status, 200, "still signed in");
    let r = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &user.access,
            Some(&json!({"current_password": user.password, "new_password": "a brand new secret"})),
        )
        .await;
    assert_eq!(r.json()["personal_tokens_revoked"], 1, "{}", r.json());
    app.authed(Method::GET, "/api/v1/me", &pat, None).await.assert_problem(401, "unauthorized");
    // Signing out everywhere can take the tokens along.
    let pat2 = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "again", "scope": "read"})))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app.authed(Method::POST, "/api/v1/auth/logout-all?include_tokens=true", &user.access, None).await;
    assert_eq!(res.status, 204);
    app.authed(Method::GET, "/api/v1/me", &pat2, None).await.assert_problem(401, "unauthorized");
});

app_test!(deleting_an_account_deletes_its_model_files, |app| {
    let user = app.user().await;
    let other = app.user().await;
    let store = &app.state.ml.store;
    for u in [&user.id, &other.id] {
        store.put(&format!("prediction/{u}/m.json"), b"{}".to_vec()).await.unwrap();
        store.put(&format!("categorization/{u}/m.mgm"), b"x".to_vec()).await.unwrap();
    }
    let res = app.authed(Method::DELETE, "/api/v1/me", &user.access, Some(&json!({"password": user.password}))).await;
    assert_eq!(res.status, 204);
    for path in [format!("prediction/{}/m.json", user.id), format!("categorization/{}/m.mgm", user.id)] {
        assert!(store.get(&path).await.is_err(), "{path} is gone");
    }
    assert!(store.get(&format!("prediction/{}/m.json", other.id)).await.is_ok(), "someone else's stays");
});

app_test!(api_answers_are_not_cached_or_sniffed, |app| {
    let user = app.user().await;
    for path in ["/api/v1/me", "/api/v1/transactions", "/api/v1/nope"] {
        let res = app.authed(Method::GET, path, &user.access, None).await;
        assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
});

app_test!(
    metrics_are_off_unless_enabled_and_need_the_token_when_set,
    config = Config { metrics_enabled: false, ..test_config() },
    |app| {
        app.get("/metrics").await.assert_problem(404, "not-found");
    }
);

#[tokio::test]
async fn metrics_need_their_token_when_one_is_set() {
    let token = "metrics-token-0123456789";
    let app = TestApp::sqlite_with(Config { metrics_token: Some(Secret::new(token.into())), ..test_config() }).await;
    app.get("/metrics").await.assert_problem(401, "unauthorized");
    let res = app
        .send(
            Request::get("/metrics")
                .header("authorization", "Bearer wrong-token-0123456789")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, 401);
    let res = app
        .send(Request::get("/metrics").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status, 200);
}

app_test!(a_session_ends_at_its_absolute_lifetime_however_often_refreshed, |app| {
    let user = app.user().await;
    let refreshed = app.json(Method::POST, "/api/v1/auth/refresh", &json!({"refresh_token": user.refresh})).await;
    assert_eq!(refreshed.status, 200);
    let refresh = refreshed.json()["refresh_token"].as_str().unwrap().to_owned();
    // Pretend the sign-in was longer ago than session_max_days.
    let long_ago = magpie_domain::Timestamp::from_datetime(chrono::Utc::now() - chrono::TimeDelta::days(91));
    {
        let mut c = app.test_db.db.conn().await.unwrap();
        magpie_db::on_conn!(c.c(), c => {
            sqlx::query("update auth_sessions set created_at = $1").bind(long_ago).execute(&mut *c).await.unwrap();
        });
    }
    app.json(Method::POST, "/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "unauthorized");
});

#[test]
fn csv_cells_that_a_spreadsheet_would_run_are_defused() {
    use magpie_server::api::export::csv_cell;
    for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1"] {
        assert!(csv_cell(formula).starts_with("\"'"), "{formula:?}");
    }
    assert_eq!(csv_cell("Coffee \"beans\""), "\"Coffee \"\"beans\"\"\"");
}

/// No secret of sign-in (the signing key, a TOTP seed, a recovery code, a second-factor challenge, the
/// OpenID client secret, an ID token) reaches a log line, an error body or the account export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sign_in_secret_reaches_a_log_an_error_body_or_an_export() {
    use crate::oidc;
    let provider = oidc::start_provider("http://localhost:9/auth/oidc/callback", 3600, "nobody@example.com").await;
    let config = match &provider {
        Some(p) => oidc::oidc_config(p),
        None => test_config(),
    };
    let app = TestApp::sqlite_with(config).await;
    let mut bodies: Vec<String> = Vec::new();
    let mut keep = |r: &crate::support::TestResponse| bodies.push(String::from_utf8_lossy(&r.body).into_owned());
    let user = app.user().await;
    let begun =
        app.authed(Method::POST, "/api/v1/me/totp", &user.access, Some(&json!({"password": user.password}))).await;
    let seed = begun.json()["secret"].as_str().unwrap().to_owned();
    let wrong =
        app.authed(Method::POST, "/api/v1/me/totp/confirm", &user.access, Some(&json!({"code": "000000"}))).await;
    keep(&wrong);
    let ok = app
        .authed(
            Method::POST,
            "/api/v1/me/totp/confirm",
            &user.access,
            Some(&json!({"code": crate::two_factor::code(&seed, 0)})),
        )
        .await;
    let codes: Vec<String> =
        ok.json()["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let login = app.json(Method::POST, LOGIN, &json!({"email": user.email, "password": user.password})).await.json();
    let challenge = login["challenge_token"].as_str().unwrap().to_owned();
    for body in [
        json!({"challenge_token": challenge, "code": "999999"}),
        json!({"challenge_token": challenge, "recovery_code": "nope"}),
    ] {
        keep(&app.json(Method::POST, "/api/v1/auth/second-factor", &body).await);
    }
    let done = app
        .json(
            Method::POST,
            "/api/v1/auth/second-factor",
            &json!({"challenge_token": challenge, "recovery_code": codes[0]}),
        )
        .await;
    assert_eq!(done.status, 200);
    keep(&app.authed(Method::GET, "/api/v1/me/totp", &user.access, None).await);
    keep(&app.authed(Method::GET, "/api/v1/me/audit", &user.access, None).await);
    let export = app.authed(Method::GET, "/api/v1/me/export", &user.access, None).await;
    assert_eq!(export.status, 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(export.body.clone())).unwrap();
    let mut exported = String::new();
    for i in 0..archive.len() {
        use std::io::Read;
        archive.by_index(i).unwrap().read_to_string(&mut exported).unwrap();
    }
    let mut secrets: Vec<String> = vec![crate::support::TEST_AUTH_SECRET.into(), seed.clone(), challenge.clone()];
    for c in &codes {
        secrets.push(c.clone());
        secrets.push(c.replace('-', ""));
    }
    if let Some(p) = &provider {
        let web = crate::web::WebClient::new(&app);
        let res = oidc::oidc_sign_in(&web, "alice").await;
        assert_eq!(res.status, 303);
        secrets.push(oidc::CLIENT_SECRET.into());
        for token in p.id_tokens.lock().unwrap().iter() {
            secrets.push(token.clone());
            secrets.push(token.rsplit('.').next().unwrap().to_owned());
        }
        assert!(secrets.len() > 14, "an ID token was seen");
    }
    let logs = crate::logs::text();
    assert!(logs.contains("two-factor sign-in enabled"), "the capture works");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret appears in the logs");
        assert!(!exported.contains(secret.as_str()), "a secret appears in the export");
        for body in &bodies {
            assert!(!body.contains(secret.as_str()), "a secret appears in a response: {body}");
        }
    }
}
