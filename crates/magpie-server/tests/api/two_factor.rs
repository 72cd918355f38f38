//! Two-factor sign-in with an authenticator app (TOTP) and recovery codes, over the API.

use axum::http::Method;
use magpie_server::auth::totp;
use serde_json::{Value, json};

use crate::app_test;
use crate::support::{TestApp, TestUser};

/// The code the app would show `steps_ahead` 30-second steps from now.
pub fn code(secret: &str, steps_ahead: i64) -> String {
    let seed = totp::base32_decode(secret).unwrap();
    totp::code_at(&seed, totp::step_at(chrono::Utc::now().timestamp()) + steps_ahead)
}

/// Turn two-factor sign-in on for `user`; returns (seed, recovery codes).
pub async fn enrol(app: &TestApp, user: &TestUser) -> (String, Vec<String>) {
    let begun =
        app.authed(Method::POST, "/api/v1/me/totp", &user.access, Some(&json!({"password": user.password}))).await;
    assert_eq!(begun.status, 201, "{}", String::from_utf8_lossy(&begun.body));
    let secret = begun.json()["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .authed(Method::POST, "/api/v1/me/totp/confirm", &user.access, Some(&json!({"code": code(&secret, 0)})))
        .await;
    assert_eq!(confirmed.status, 200, "{}", String::from_utf8_lossy(&confirmed.body));
    let codes =
        confirmed.json()["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (secret, codes)
}

async fn password_step(app: &TestApp, user: &TestUser) -> String {
    let res =
        app.json(Method::POST, "/api/v1/auth/login", &json!({"email": user.email, "password": user.password})).await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["second_factor_required"], true, "{body}");
    assert!(body.get("access_token").is_none(), "no tokens before the second factor: {body}");
    body["challenge_token"].as_str().unwrap().to_owned()
}

async fn second(app: &TestApp, challenge: &str, field: &str, value: &str) -> crate::support::TestResponse {
    app.json(Method::POST, "/api/v1/auth/second-factor", &json!({"challenge_token": challenge, field: value})).await
}

fn kinds(audit: &Value) -> Vec<String> {
    audit.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

app_test!(enrolment_needs_the_password_and_a_first_code, |app| {
    let user = app.user().await;
    app.authed(Method::POST, "/api/v1/me/totp", &user.access, Some(&json!({"password": "not the password"})))
        .await
        .assert_problem(422, "validation");
    let begun = app
        .authed(Method::POST, "/api/v1/me/totp", &user.access, Some(&json!({"password": user.password})))
        .await
        .json();
    let secret = begun["secret"].as_str().unwrap();
    assert!(begun["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Magpie:"), "{begun}");
    assert!(begun["qr_svg"].as_str().unwrap().contains("<svg"));
    let status = app.authed(Method::GET, "/api/v1/me/totp", &user.access, None).await.json();
    assert_eq!((status["enabled"].clone(), status["pending"].clone()), (json!(false), json!(true)));
    // Sign-in does not ask for a code until the enrolment is confirmed.
    assert!(app.login(&user.email, &user.password).await["access_token"].is_string());
    app.authed(Method::POST, "/api/v1/me/totp/confirm", &user.access, Some(&json!({"code": "000000"})))
        .await
        .assert_problem(422, "validation");
    let ok = app
        .authed(Method::POST, "/api/v1/me/totp/confirm", &user.access, Some(&json!({"code": code(secret, 0)})))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["recovery_codes"].as_array().unwrap().len(), 10);
    let status = app.authed(Method::GET, "/api/v1/me/totp", &user.access, None).await.json();
    assert_eq!((status["enabled"].clone(), status["recovery_codes_left"].clone()), (json!(true), json!(10)));
    // A second enrolment is refused while one is on.
    app.authed(Method::POST, "/api/v1/me/totp", &user.access, Some(&json!({"password": user.password})))
        .await
        .assert_problem(409, "conflict");
    // The seed is stored sealed, never in clear.
    let mut c = app.test_db.db.conn().await.unwrap();
    let row = magpie_db::security::get_totp(c.c(), user.id.parse().unwrap()).await.unwrap().unwrap();
    assert!(!row.secret_sealed.contains(secret));
});

app_test!(sign_in_asks_for_a_code_and_each_code_works_once, |app| {
    let user = app.user().await;
    let (secret, _) = enrol(app, &user).await;
    let challenge = password_step(app, &user).await;
    // The code used to confirm (this step) is spent; the next step's code works, once. (Wrong codes are
    // throttled like passwords: see the recovery test for the challenge's own limit.)
    second(app, &challenge, "code", &code(&secret, 0)).await.assert_problem(401, "unauthorized");
    let ok = second(app, &challenge, "code", &code(&secret, 1)).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let access = ok.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.authed(Method::GET, "/api/v1/me", &access, None).await.status, 200);
    // The challenge is single use, and so is the code.
    second(app, &challenge, "code", &code(&secret, 1)).await.assert_problem(401, "unauthorized");
    let again = password_step(app, &user).await;
    second(app, &again, "code", &code(&secret, 1)).await.assert_problem(401, "unauthorized");
    // Neither both nor none.
    app.json(Method::POST, "/api/v1/auth/second-factor", &json!({"challenge_token": again}))
        .await
        .assert_problem(422, "validation");
    second(app, "mgp_mfa_made-up", "code", &code(&secret, 1)).await.assert_problem(401, "unauthorized");
});

app_test!(
    recovery_codes_work_once_and_a_challenge_takes_five_wrong_codes,
    config = magpie_server::config::Config {
        // Above the challenge's own five tries, so this test sees the challenge give out, not the throttle.
        login_max_failures_per_account: 20,
        ..crate::support::test_config()
    },
    |app| {
        let user = app.user().await;
        let (_secret, codes) = enrol(app, &user).await;
        let challenge = password_step(app, &user).await;
        let typed = codes[0].to_lowercase().replace('-', " ");
        assert_eq!(second(app, &challenge, "recovery_code", &typed).await.status, 200);
        let next = password_step(app, &user).await;
        second(app, &next, "recovery_code", &codes[0]).await.assert_problem(401, "unauthorized");
        for _ in 0..4 {
            second(app, &next, "code", "123456").await.assert_problem(401, "unauthorized");
        }
        // Five wrong answers in all: the challenge is void even with a good recovery code.
        let void = second(app, &next, "recovery_code", &codes[1]).await.assert_problem(401, "unauthorized");
        assert!(void["detail"].as_str().unwrap().contains("sign in again"), "{void}");
        let status = app.authed(Method::GET, "/api/v1/me/totp", &user.access, None).await.json();
        assert_eq!(status["recovery_codes_left"], 9);
        let audit = app.authed(Method::GET, "/api/v1/me/audit", &user.access, None).await.json();
        let k = kinds(&audit);
        for kind in ["totp_enabled", "recovery_code_used", "second_factor_failed"] {
            assert!(k.contains(&kind.to_owned()), "{kind} in {k:?}");
        }
    }
);

app_test!(turning_it_off_needs_the_password_and_a_code, |app| {
    let user = app.user().await;
    let (secret, codes) = enrol(app, &user).await;
    let access = user.access.as_str();
    let off = |body: Value| async move { app.authed(Method::DELETE, "/api/v1/me/totp", access, Some(&body)).await };
    off(json!({"password": user.password})).await.assert_problem(422, "validation");
    off(json!({"password": "wrong password!!", "code": code(&secret, 1)})).await.assert_problem(422, "validation");
    off(json!({"password": user.password, "code": "000000"})).await.assert_problem(422, "validation");
    // New recovery codes replace the old ones.
    let fresh = app
        .authed(
            Method::POST,
            "/api/v1/me/totp/recovery-codes",
            &user.access,
            Some(&json!({"password": user.password, "recovery_code": codes[0]})),
        )
        .await;
    assert_eq!(fresh.status, 200);
    let fresh: Vec<String> =
        fresh.json()["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    off(json!({"password": user.password, "recovery_code": codes[1]})).await.assert_problem(422, "validation");
    assert_eq!(off(json!({"password": user.password, "recovery_code": fresh[0]})).await.status, 204);
    assert!(app.login(&user.email, &user.password).await["access_token"].is_string(), "no code asked any more");
    let audit = app.authed(Method::GET, "/api/v1/me/audit", &user.access, None).await.json();
    let k = kinds(&audit);
    assert!(k.contains(&"totp_disabled".to_owned()) && k.contains(&"recovery_codes_created".to_owned()), "{k:?}");
});

app_test!(personal_tokens_cannot_manage_two_factor_sign_in, |app| {
    let user = app.user().await;
    let pat = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "s", "scope": "read-write"})))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.authed(Method::POST, "/api/v1/me/totp", &pat, Some(&json!({"password": user.password})))
        .await
        .assert_problem(403, "forbidden");
});
