//! Registration, sign-in, tokens, profile and account deletion.

use axum::body::Body;
use axum::http::{Method, Request};
use magpie_domain::{SessionId, UserId};
use serde_json::json;

use crate::app_test;
use crate::support::{TestApp, test_config};

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";
const REFRESH: &str = "/api/v1/auth/refresh";

fn field_errors(body: &serde_json::Value) -> Vec<String> {
    body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

app_test!(register_returns_the_user_without_the_hash, |app| {
    let res = app.json(Method::POST, REGISTER, &json!({"email": "  Ada@Example.COM ", "password": "correct horse battery", "first_name": " Ada ", "last_name": "Lovelace"})).await;
    assert_eq!(res.status, 201);
    let body = res.json();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["first_name"], "Ada");
    assert!(body.get("password_hash").is_none() && body.get("password").is_none());
    let text = String::from_utf8_lossy(&res.body);
    assert!(!text.contains("$2b$") && !text.contains("correct horse"), "{text}");
});

app_test!(register_rejects_a_taken_email_with_409, |app| {
    app.register("taken@example.com", "correct horse battery").await;
    let res =
        app.json(Method::POST, REGISTER, &json!({"email": "TAKEN@example.com", "password": "another good one"})).await;
    res.assert_problem(409, "conflict");
});

app_test!(register_names_every_invalid_field, |app| {
    let res = app
        .json(
            Method::POST,
            REGISTER,
            &json!({"email": "not-an-email", "password": "short", "first_name": "x".repeat(101)}),
        )
        .await;
    let body = res.assert_problem(422, "validation");
    assert_eq!(field_errors(&body), ["email", "password", "first_name"]);
});

app_test!(register_enforces_the_password_rules, |app| {
    for (password, why) in [
        ("123456789", "too short"),
        ("aaaaaaaaaaaa", "one repeated character"),
        (&"é".repeat(37), "74 bytes: over bcrypt's 72"),
        (&"abcdefgh".repeat(10), "80 bytes"),
    ] {
        let res = app.json(Method::POST, REGISTER, &json!({"email": "p@example.com", "password": password})).await;
        let body = res.assert_problem(422, "validation");
        assert_eq!(field_errors(&body), ["password"], "{why}");
    }
    let ok = app.json(Method::POST, REGISTER, &json!({"email": "p@example.com", "password": "ab".repeat(36)})).await;
    assert_eq!(ok.status, 201, "exactly 72 bytes is accepted");
});

app_test!(register_rejects_unknown_and_missing_fields, |app| {
    let res = app
        .json(
            Method::POST,
            REGISTER,
            &json!({"email": "a@example.com", "password": "correct horse battery", "admin": true}),
        )
        .await;
    assert_eq!(field_errors(&res.assert_problem(422, "validation")), ["admin"]);
    let res = app.json(Method::POST, REGISTER, &json!({"email": "a@example.com"})).await;
    assert_eq!(field_errors(&res.assert_problem(422, "validation")), ["password"]);
});

app_test!(login_issues_oauth2_shaped_tokens, |app| {
    app.register("ada@example.com", "correct horse battery").await;
    let tokens = app.login("ADA@example.com", "correct horse battery").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["refresh_token"].as_str().unwrap().starts_with("mgp_rt_"));
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.authed(Method::GET, "/api/v1/me", access, None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], "ada@example.com");
});

app_test!(login_does_not_tell_which_of_email_or_password_was_wrong, |app| {
    app.register("ada@example.com", "correct horse battery").await;
    let wrong_password =
        app.json(Method::POST, LOGIN, &json!({"email": "ada@example.com", "password": "wrong horse battery"})).await;
    let unknown_email = app
        .json(Method::POST, LOGIN, &json!({"email": "nobody@example.com", "password": "correct horse battery"}))
        .await;
    let malformed_email = app.json(Method::POST, LOGIN, &json!({"email": "nobody", "password": "x"})).await;
    let a = wrong_password.assert_problem(401, "unauthorized");
    let b = unknown_email.assert_problem(401, "unauthorized");
    let c = malformed_email.assert_problem(401, "unauthorized");
    assert_eq!(a["detail"], b["detail"]);
    assert_eq!(b["detail"], c["detail"]);
});

app_test!(failed_logins_are_throttled_per_account, |app| {
    app.register("ada@example.com", "correct horse battery").await;
    for _ in 0..5 {
        let r =
            app.json(Method::POST, LOGIN, &json!({"email": "ada@example.com", "password": "wrong password!"})).await;
        assert_eq!(r.status, 401);
    }
    // Now even the right password is refused until the window passes.
    let res =
        app.json(Method::POST, LOGIN, &json!({"email": "ada@example.com", "password": "correct horse battery"})).await;
    res.assert_problem(429, "too-many-requests");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is unaffected.
    app.register("bob@example.com", "correct horse battery").await;
    app.login("bob@example.com", "correct horse battery").await;
});

#[tokio::test]
async fn failed_logins_are_throttled_per_client_address() {
    let config =
        magpie_server::config::Config { trust_forwarded_for: true, login_max_failures_per_ip: 3, ..test_config() };
    let app = TestApp::with(magpie_db::testing::TestDb::sqlite().await, config).await;
    app.register("victim@example.com", "correct horse battery").await;
    let attempt = |email: String, ip: &'static str| {
        let body = json!({"email": email, "password": "guess guess guess"}).to_string();
        Request::post(LOGIN)
            .header("content-type", "application/json")
            .header("x-forwarded-for", ip)
            .body(Body::from(body))
            .unwrap()
    };
    for n in 0..3 {
        assert_eq!(app.send(attempt(format!("spray{n}@example.com"), "203.0.113.7")).await.status, 401);
    }
    // Different accounts, same address: the address is now blocked...
    app.send(attempt("victim@example.com".into(), "203.0.113.7")).await.assert_problem(429, "too-many-requests");
    // ...but not another address.
    assert_eq!(app.send(attempt("victim@example.com".into(), "198.51.100.1")).await.status, 401);
}

#[tokio::test]
async fn an_unknown_email_costs_the_same_bcrypt_work_as_a_wrong_password() {
    // Cost 10 makes one verification ~50 ms, far above request overhead, so the comparison is meaningful.
    let config = magpie_server::config::Config {
        bcrypt_cost: 10,
        login_max_failures_per_account: 100,
        login_max_failures_per_ip: 100,
        ..test_config()
    };
    let app = TestApp::with(magpie_db::testing::TestDb::sqlite().await, config).await;
    app.register("ada@example.com", "correct horse battery").await;
    let time = |email: &'static str| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            for _ in 0..4 {
                let r =
                    app.json(Method::POST, LOGIN, &json!({"email": email, "password": "wrong horse battery"})).await;
                assert_eq!(r.status, 401);
            }
            started.elapsed().as_secs_f64()
        }
    };
    time("nobody@example.com").await; // warm the dummy hash
    let known = time("ada@example.com").await;
    let unknown = time("nobody@example.com").await;
    let ratio = unknown / known;
    assert!((0.6..1.7).contains(&ratio), "unknown {unknown:.3}s vs known {known:.3}s");
}

async fn assert_token_refused(app: &TestApp, token: &str) {
    app.authed(Method::GET, "/api/v1/me", token, None).await.assert_problem(401, "unauthorized");
}

app_test!(expired_tampered_unsigned_and_foreign_tokens_are_refused, |app| {
    let user = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let claims = app.state.jwt.verify(&user.access, now).unwrap();
    // Expired: issued 20 minutes ago with the 15-minute lifetime.
    let expired = app.state.jwt.issue(claims.sub, claims.sid, now - 1200, 900);
    assert_token_refused(app, &expired).await;
    // Tampered: another user's id in the payload, original signature.
    let other = app.state.jwt.issue(UserId::new(), claims.sid, now, 900);
    let mut parts: Vec<&str> = user.access.split('.').collect();
    let other_payload = other.split('.').nth(1).unwrap();
    parts[1] = other_payload;
    assert_token_refused(app, &parts.join(".")).await;
    // alg: none.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), user.access.split('.').nth(1).unwrap());
    assert_token_refused(app, &none).await;
    // Signed with another key.
    let foreign = magpie_server::auth::jwt::JwtKeys::new(b"a-completely-different-signing-key-0123456789")
        .issue(claims.sub, claims.sid, now, 900);
    assert_token_refused(app, &foreign).await;
    // A valid signature over a session that does not exist.
    let no_session = app.state.jwt.issue(claims.sub, SessionId::new(), now, 900);
    assert_token_refused(app, &no_session).await;
    // Missing or wrongly-shaped header.
    app.get("/api/v1/me").await.assert_problem(401, "unauthorized");
    let basic =
        app.send(Request::get("/api/v1/me").header("authorization", "Basic YTpi").body(Body::empty()).unwrap()).await;
    basic.assert_problem(401, "unauthorized");
    assert_eq!(basic.header("www-authenticate"), Some("Bearer"));
    // And the real token still works.
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &user.access, None).await.status, 200);
});

app_test!(refresh_rotates_and_reuse_revokes_the_family, |app| {
    let user = app.user().await;
    let first = app.json(Method::POST, REFRESH, &json!({"refresh_token": user.refresh})).await;
    assert_eq!(first.status, 200);
    let first = first.json();
    let second_refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, user.refresh);
    assert_eq!(app.authed(Method::GET, "/api/v1/me", first["access_token"].as_str().unwrap(), None).await.status, 200);
    // The rotated token no longer works, and presenting it ends the whole session...
    app.json(Method::POST, REFRESH, &json!({"refresh_token": user.refresh})).await.assert_problem(401, "unauthorized");
    // ...so the newest refresh token and every access token of the session are dead too.
    app.json(Method::POST, REFRESH, &json!({"refresh_token": second_refresh}))
        .await
        .assert_problem(401, "unauthorized");
    assert_token_refused(app, first["access_token"].as_str().unwrap()).await;
    assert_token_refused(app, &user.access).await;
    // Garbage is simply invalid.
    app.json(Method::POST, REFRESH, &json!({"refresh_token": "mgp_rt_nope"})).await.assert_problem(401, "unauthorized");
    // A new sign-in works.
    app.login(&user.email, &user.password).await;
});

app_test!(logout_ends_the_session_and_logout_all_ends_every_session, |app| {
    let user = app.user().await;
    let second = app.login(&user.email, &user.password).await;
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    let r = app.authed(Method::POST, "/api/v1/auth/logout", &user.access, None).await;
    assert_eq!(r.status, 204);
    assert_token_refused(app, &user.access).await;
    app.json(Method::POST, REFRESH, &json!({"refresh_token": user.refresh})).await.assert_problem(401, "unauthorized");
    assert_eq!(
        app.authed(Method::GET, "/api/v1/me", &second_access, None).await.status,
        200,
        "other session unaffected"
    );
    let third = app.login(&user.email, &user.password).await;
    let r = app.authed(Method::POST, "/api/v1/auth/logout-all", &second_access, None).await;
    assert_eq!(r.status, 204);
    assert_token_refused(app, &second_access).await;
    assert_token_refused(app, third["access_token"].as_str().unwrap()).await;
});

app_test!(personal_tokens_are_shown_once_and_scoped, |app| {
    let user = app.user().await;
    let create = |name: &str, scope: &str| json!({"name": name, "scope": scope});
    let read = app.authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&create("reporting", "read"))).await;
    assert_eq!(read.status, 201);
    let read = read.json();
    let read_token = read["token"].as_str().unwrap().to_owned();
    assert!(read_token.starts_with("mgp_pat_"));
    assert!(read_token.starts_with(read["token_prefix"].as_str().unwrap()));
    let rw = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&create("sync script", "read-write")))
        .await
        .json();
    let rw_token = rw["token"].as_str().unwrap().to_owned();

    // Listed without the secret.
    let list = app.authed(Method::GET, "/api/v1/me/tokens", &user.access, None).await;
    let text = String::from_utf8_lossy(&list.body).into_owned();
    assert_eq!(list.json().as_array().unwrap().len(), 2);
    assert!(!text.contains(&read_token) && !text.contains(&rw_token) && !text.contains("\"token\""));

    // A read token reads but cannot change anything.
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &read_token, None).await.status, 200);
    let session = app.authed(Method::GET, "/api/v1/auth/session", &read_token, None).await.json();
    assert_eq!(session["scope"], "read");
    assert_eq!(session["kind"], "personal_token");
    app.authed(Method::PATCH, "/api/v1/me", &read_token, Some(&json!({"first_name": "Eve"})))
        .await
        .assert_problem(403, "forbidden");
    app.authed(Method::POST, "/api/v1/auth/logout-all", &read_token, None).await.assert_problem(403, "forbidden");
    app.authed(Method::DELETE, "/api/v1/me", &read_token, Some(&json!({"password": user.password})))
        .await
        .assert_problem(403, "forbidden");

    // A read-write token changes data, but not the account's credentials.
    let renamed = app.authed(Method::PATCH, "/api/v1/me", &rw_token, Some(&json!({"first_name": "Ada"}))).await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json()["first_name"], "Ada");
    app.authed(Method::POST, "/api/v1/me/tokens", &rw_token, Some(&create("x", "read")))
        .await
        .assert_problem(403, "forbidden");
    app.authed(
        Method::POST,
        "/api/v1/me/password",
        &rw_token,
        Some(&json!({"current_password": user.password, "new_password": "a new password!"})),
    )
    .await
    .assert_problem(403, "forbidden");

    // Revoked tokens stop working.
    let r = app
        .authed(Method::DELETE, &format!("/api/v1/me/tokens/{}", read["id"].as_str().unwrap()), &user.access, None)
        .await;
    assert_eq!(r.status, 204);
    assert_token_refused(app, &read_token).await;
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &rw_token, None).await.status, 200);
    let again = app
        .authed(Method::DELETE, &format!("/api/v1/me/tokens/{}", read["id"].as_str().unwrap()), &user.access, None)
        .await;
    again.assert_problem(404, "not-found");
});

app_test!(a_token_cannot_expire_in_the_past_and_an_expired_token_is_refused, |app| {
    let user = app.user().await;
    let past = app
        .authed(
            Method::POST,
            "/api/v1/me/tokens",
            &user.access,
            Some(&json!({"name": "old", "scope": "read", "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(field_errors(&past.assert_problem(422, "validation")), ["expires_at"]);
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let t = app
        .authed(
            Method::POST,
            "/api/v1/me/tokens",
            &user.access,
            Some(&json!({"name": "soon", "scope": "read", "expires_at": soon})),
        )
        .await
        .json();
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &token, None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_token_refused(app, &token).await;
});

app_test!(profile_updates_and_email_change_needs_the_password, |app| {
    let user = app.user().await;
    let r = app
        .authed(Method::PATCH, "/api/v1/me", &user.access, Some(&json!({"first_name": "Ada", "last_name": "Lovelace"})))
        .await
        .json();
    assert_eq!((r["first_name"].as_str(), r["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
    assert_ne!(r["updated_at"], r["created_at"]);
    let r = app.authed(Method::PATCH, "/api/v1/me", &user.access, Some(&json!({"last_name": null}))).await.json();
    assert_eq!(r["first_name"], "Ada");
    assert!(r["last_name"].is_null());

    let no_password =
        app.authed(Method::PATCH, "/api/v1/me", &user.access, Some(&json!({"email": "new@example.com"}))).await;
    assert_eq!(field_errors(&no_password.assert_problem(422, "validation")), ["current_password"]);
    let wrong = app
        .authed(
            Method::PATCH,
            "/api/v1/me",
            &user.access,
            Some(&json!({"email": "new@example.com", "current_password": "nope nope nope"})),
        )
        .await;
    assert_eq!(field_errors(&wrong.assert_problem(422, "validation")), ["current_password"]);
    let other = app.user().await;
    let taken = app
        .authed(
            Method::PATCH,
            "/api/v1/me",
            &user.access,
            Some(&json!({"email": other.email, "current_password": user.password})),
        )
        .await;
    taken.assert_problem(409, "conflict");
    let ok = app
        .authed(
            Method::PATCH,
            "/api/v1/me",
            &user.access,
            Some(&json!({"email": "New@Example.com", "current_password": user.password})),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["email"], "new@example.com");
    app.login("new@example.com", &user.password).await;
});

app_test!(a_password_change_signs_out_the_other_sessions, |app| {
    let user = app.user().await;
    let other = app.login(&user.email, &user.password).await;
    let wrong = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &user.access,
            Some(&json!({"current_password": "not it at all", "new_password": "a brand new secret"})),
        )
        .await;
    assert_eq!(field_errors(&wrong.assert_problem(422, "validation")), ["current_password"]);
    let weak = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &user.access,
            Some(&json!({"current_password": user.password, "new_password": "short"})),
        )
        .await;
    assert_eq!(field_errors(&weak.assert_problem(422, "validation")), ["new_password"]);
    let r = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &user.access,
            Some(&json!({"current_password": user.password, "new_password": "a brand new secret"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["other_sessions_revoked"], 1, "{}", r.json());
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &user.access, None).await.status, 200, "this session stays");
    assert_token_refused(app, other["access_token"].as_str().unwrap()).await;
    app.json(Method::POST, REFRESH, &json!({"refresh_token": other["refresh_token"]}))
        .await
        .assert_problem(401, "unauthorized");
    app.json(Method::POST, LOGIN, &json!({"email": user.email, "password": user.password}))
        .await
        .assert_problem(401, "unauthorized");
    app.login(&user.email, "a brand new secret").await;
});

app_test!(deleting_the_account_needs_the_password_and_removes_every_child_row, |app| {
    use magpie_db::{budgets, connections, goals, models, transactions};
    use magpie_domain::*;
    let user = app.user().await;
    let keep = app.user().await;
    let pat = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "t", "scope": "read"})))
        .await
        .json();
    let db = &app.test_db.db;
    let seed_rows = |id: UserId| async move {
        let mut c = db.conn().await.unwrap();
        let conn = connections::create(
            c.c(),
            id,
            &connections::NewConnection::new(
                ConnectionId::new(),
                magpie_domain::BankProvider::Plaid,
                "ins",
                "Bank",
                SealedToken::new("sealed"),
            ),
        )
        .await
        .unwrap();
        transactions::create(
            c.c(),
            id,
            &transactions::NewTransaction {
                amount: "9.99".parse().unwrap(),
                date: "2026-05-01".parse().unwrap(),
                description: "Book".into(),
                category: Category::parse("Shopping").unwrap(),
                kind: TransactionType::Expense,
                source: Source::Api,
                confidence_score: None,
                category_source: magpie_domain::CategorySource::User,
                connection_id: Some(conn.id),
            },
        )
        .await
        .unwrap();
        budgets::create(
            c.c(),
            id,
            &budgets::NewBudget {
                name: "May".into(),
                period_start: "2026-05-01".parse().unwrap(),
                period_end: "2026-05-31".parse().unwrap(),
                allocations: Allocations::default(),
            },
        )
        .await
        .unwrap();
        goals::create(
            c.c(),
            id,
            &goals::NewGoal {
                name: "Bike".into(),
                target_amount: "500.00".parse().unwrap(),
                deadline: None,
                category: None,
                tracking_start: None,
            },
        )
        .await
        .unwrap();
        models::create(
            c.c(),
            &models::NewModel {
                model_type: ModelType::Categorization,
                user_id: Some(id),
                version: "1".into(),
                accuracy: None,
                precision: None,
                recall: None,
                trained_at: Timestamp::now(),
                model_path: "m".into(),
                is_active: true,
            },
        )
        .await
        .unwrap();
    };
    let uid: UserId = user.id.parse().unwrap();
    let kid: UserId = keep.id.parse().unwrap();
    seed_rows(uid).await;
    seed_rows(kid).await;

    let wrong =
        app.authed(Method::DELETE, "/api/v1/me", &user.access, Some(&json!({"password": "definitely wrong"}))).await;
    assert_eq!(field_errors(&wrong.assert_problem(422, "validation")), ["password"]);
    let r = app.authed(Method::DELETE, "/api/v1/me", &user.access, Some(&json!({"password": user.password}))).await;
    assert_eq!(r.status, 204);

    assert_token_refused(app, &user.access).await;
    assert_token_refused(app, pat["token"].as_str().unwrap()).await;
    app.json(Method::POST, LOGIN, &json!({"email": user.email, "password": user.password}))
        .await
        .assert_problem(401, "unauthorized");
    let mut c = db.conn().await.unwrap();
    let day = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
    for (id, expected) in [(uid, 0), (kid, 1)] {
        assert_eq!(
            transactions::list_by_date_range(c.c(), id, day("2026-01-01"), day("2026-12-31")).await.unwrap().len(),
            expected
        );
        assert_eq!(budgets::list(c.c(), id).await.unwrap().len(), expected);
        assert_eq!(goals::list(c.c(), id, None).await.unwrap().len(), expected);
        assert_eq!(connections::list(c.c(), id, None).await.unwrap().len(), expected);
        assert_eq!(models::list_visible(c.c(), id, None).await.unwrap().len(), expected);
        assert_eq!(magpie_db::auth::list_active_sessions(c.c(), id, Timestamp::now()).await.unwrap().len(), expected);
    }
    assert!(magpie_db::users::get(c.c(), uid).await.unwrap().is_none());
});

app_test!(no_response_or_log_line_contains_a_password_hash_or_token, |app| {
    let password = format!("Secret-{}", uuid::Uuid::new_v4().simple());
    let email = format!("leak-{}@example.com", uuid::Uuid::new_v4().simple());
    let mut responses = Vec::new();
    let reg = app.json(Method::POST, REGISTER, &json!({"email": email, "password": password})).await;
    responses.push(String::from_utf8_lossy(&reg.body).into_owned());
    let bad = app.json(Method::POST, LOGIN, &json!({"email": email, "password": format!("{password}x")})).await;
    responses.push(String::from_utf8_lossy(&bad.body).into_owned());
    let tokens = app.login(&email, &password).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = app.json(Method::POST, REFRESH, &json!({"refresh_token": refresh})).await.json();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let pat = app
        .authed(Method::POST, "/api/v1/me/tokens", &access2, Some(&json!({"name": "t", "scope": "read-write"})))
        .await
        .json();
    let pat_token = pat["token"].as_str().unwrap().to_owned();
    for path in ["/api/v1/me", "/api/v1/me/tokens", "/api/v1/auth/session"] {
        let r = app.authed(Method::GET, path, &pat_token, None).await;
        responses.push(String::from_utf8_lossy(&r.body).into_owned());
    }
    let new_password = format!("Changed-{}", uuid::Uuid::new_v4().simple());
    let r = app
        .authed(
            Method::POST,
            "/api/v1/me/password",
            &access2,
            Some(&json!({"current_password": password, "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, 200);
    let hash = {
        let mut c = app.test_db.db.conn().await.unwrap();
        magpie_db::users::find_by_email(c.c(), &magpie_domain::Email::parse(&email).unwrap())
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .expose()
            .to_owned()
    };
    let logs = crate::logs::text();
    assert!(logs.contains("signed in"), "the capture works");
    let secrets: [&str; 8] = [
        &password,
        &new_password,
        &hash,
        &access,
        &refresh,
        &access2,
        &pat_token,
        rotated["refresh_token"].as_str().unwrap(),
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret appears in the logs");
        for body in &responses {
            assert!(!body.contains(secret), "a secret appears in a response: {body}");
        }
    }
    assert!(!logs.contains("$2b$"), "a bcrypt hash appears in the logs");
});
