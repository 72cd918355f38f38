//! The web app over HTTP (in-process, through the real router): cookie sessions, CSRF, security
//! headers, the pages' content, the forms' effects, and tenancy on every route that takes an id.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::app_test;
use crate::support::{TestApp, TestResponse};

/// A browser-like client: keeps cookies, submits forms with the page's CSRF token.
pub struct WebClient<'a> {
    app: &'a TestApp,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl<'a> WebClient<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        WebClient { app, cookies: Mutex::new(BTreeMap::new()) }
    }

    fn cookie_header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&self, res: &TestResponse) {
        for v in res.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.lock().unwrap().remove(k);
            } else {
                self.cookies.lock().unwrap().insert(k.to_owned(), val.to_owned());
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        let req = Request::get(path).header(header::COOKIE, self.cookie_header()).body(Body::empty()).unwrap();
        let res = self.app.send(req).await;
        self.keep(&res);
        res
    }

    /// GET, following one redirect.
    pub async fn page(&self, path: &str) -> TestResponse {
        let res = self.get(path).await;
        if res.status == 303 { self.get(res.header("location").unwrap()).await } else { res }
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)], extra: &[(&str, &str)]) -> TestResponse {
        let body = serde_html_form::to_string(fields).unwrap();
        let mut req = Request::post(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let res = self.app.send(req.body(Body::from(body)).unwrap()).await;
        self.keep(&res);
        res
    }

    /// POST a form with the CSRF token of `from` (a page path).
    pub async fn submit(&self, from: &str, action: &str, fields: &[(&str, &str)]) -> TestResponse {
        let page = self.page(from).await;
        let csrf = csrf_of(&page);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all, &[]).await
    }

    /// Sign up a new account; returns its email.
    pub async fn sign_up(&self) -> String {
        let email = format!("web-{}@example.com", uuid::Uuid::new_v4().simple());
        let res = self.submit("/signup", "/signup", &[("email", &email), ("password", "a web password")]).await;
        assert_eq!(res.status, 303, "{}", text(&res));
        assert_eq!(res.header("location"), Some("/"));
        email
    }
}

pub fn text(res: &TestResponse) -> String {
    String::from_utf8_lossy(&res.body).into_owned()
}

pub fn csrf_of(res: &TestResponse) -> String {
    let body = text(res);
    let i = body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in: {body}"));
    let rest = &body[i + 19..];
    rest[..rest.find('"').unwrap()].to_owned()
}

app_test!(signing_up_sets_a_strict_cookie_and_shows_the_empty_dashboard, |app| {
    let web = WebClient::new(app);
    let signup = web.get("/signup").await;
    assert_eq!(signup.status, 200);
    let pre =
        signup.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(
        pre.iter().any(|c| c.starts_with("magpie_pre=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")),
        "{pre:?}"
    );
    let email = web.sign_up().await;
    let session = web.cookie("magpie_session").expect("session cookie");
    assert_eq!(session.split('.').count(), 3);
    let dash = web.get("/").await;
    assert_eq!(dash.status, 200, "{}", text(&dash));
    let body = text(&dash);
    assert!(body.contains(&email), "the header names the user");
    assert!(body.contains("Your ledger is empty"));
    assert!(
        body.contains("Import a statement file") && body.contains("Connect a bank") && body.contains("Load demo data")
    );
    let csp = dash.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(dash.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(dash.header("referrer-policy"), Some("same-origin"));
    assert_eq!(dash.header("x-frame-options"), Some("DENY"));
    assert_eq!(dash.header("cache-control"), Some("no-store"));
    assert!(!body.contains("style=") && !body.contains("<script>"), "no inline style or script");
    for asset in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"] {
        let res = web.get(asset).await;
        assert_eq!(res.status, 200, "{asset}");
        assert!(res.header("cache-control").unwrap().contains("immutable"));
    }
});

app_test!(the_session_cookie_is_secure_behind_tls, |app| {
    let web = WebClient::new(app);
    let page = web.get("/signin").await;
    let csrf = csrf_of(&page);
    // Behind a trusted proxy that says the request came over HTTPS, the cookie is Secure.
    let mut config = app.state.config.clone();
    config.trust_forwarded_for = true;
    let state = magpie_server::app::AppState::build(config, app.state.db.clone()).await.unwrap();
    let router = magpie_server::app::router(state);
    let email = format!("tls-{}@example.com", uuid::Uuid::new_v4().simple());
    app.register(&email, "a web password").await;
    let body = serde_html_form::to_string([("csrf", csrf.as_str()), ("email", &email), ("password", "a web password")])
        .unwrap();
    let req = Request::post("/signin")
        .header(header::COOKIE, format!("magpie_pre={}", web.cookie("magpie_pre").unwrap()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(Body::from(body))
        .unwrap();
    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        cookie.starts_with("magpie_session=") && cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Over plain HTTP (no trusted proxy) it is not marked Secure, or the browser would drop it.
    let web2 = WebClient::new(app);
    web2.sign_up().await;
    assert!(web2.cookie("magpie_session").is_some());
});

app_test!(pages_need_a_session_and_sign_in_returns_to_them, |app| {
    let web = WebClient::new(app);
    for path in
        ["/", "/transactions", "/import", "/budgets", "/goals", "/rules", "/connections", "/models", "/settings"]
    {
        let res = web.get(path).await;
        assert_eq!(res.status, 303, "{path}");
        let to = res.header("location").unwrap();
        assert!(to.starts_with("/signin"), "{path} -> {to}");
    }
    assert_eq!(
        web.get("/transactions?review=1").await.header("location"),
        Some("/signin?next=/transactions%3Freview%3D1")
    );
    let email = format!("next-{}@example.com", uuid::Uuid::new_v4().simple());
    app.register(&email, "a web password").await;
    let res = web
        .submit(
            "/signin?next=/budgets",
            "/signin",
            &[("email", &email), ("password", "a web password"), ("next", "/budgets")],
        )
        .await;
    assert_eq!(res.header("location"), Some("/budgets"));
    // No open redirect.
    let web2 = WebClient::new(app);
    let res = web2
        .submit(
            "/signin",
            "/signin",
            &[("email", &email), ("password", "a web password"), ("next", "//evil.example/x")],
        )
        .await;
    assert_eq!(res.header("location"), Some("/"));
    // A wrong password says so, without telling which field was wrong.
    let web3 = WebClient::new(app);
    let res = web3.submit("/signin", "/signin", &[("email", &email), ("password", "not the password")]).await;
    assert_eq!(res.status, 303);
    let page = web3.get(res.header("location").unwrap()).await;
    assert!(text(&page).contains("Wrong email or password."), "{}", text(&page));
    assert!(web3.cookie("magpie_session").is_none());
});

app_test!(forms_need_the_csrf_token_of_the_session, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    let fields = [("date", "2026-11-02"), ("description", "Bakery"), ("amount", "4.20"), ("type", "EXPENSE")];
    // No token, a made-up token, and another user's token are refused.
    assert_eq!(web.post("/transactions", &fields, &[]).await.status, 403);
    let mut forged = vec![("csrf", "forged")];
    forged.extend_from_slice(&fields);
    assert_eq!(web.post("/transactions", &forged, &[]).await.status, 403);
    let other = WebClient::new(app);
    other.sign_up().await;
    let theirs = csrf_of(&other.get("/").await);
    let mut with_theirs = vec![("csrf", theirs.as_str())];
    with_theirs.extend_from_slice(&fields);
    assert_eq!(web.post("/transactions", &with_theirs, &[]).await.status, 403);
    // The right token from another site is refused too.
    let mine = csrf_of(&web.get("/").await);
    let mut right = vec![("csrf", mine.as_str())];
    right.extend_from_slice(&fields);
    let cross = web.post("/transactions", &right, &[("origin", "https://evil.example"), ("host", "localhost")]).await;
    assert_eq!(cross.status, 403);
    let mut conn = app.state.db.conn().await.unwrap();
    let user = magpie_db::users::list(conn.c()).await.unwrap();
    drop(conn);
    assert!(!user.is_empty());
    let listed = text(&web.get("/transactions").await);
    assert!(!listed.contains("Bakery"), "nothing was written by the refused forms");
    // The right token from this site works.
    let ok = web.post("/transactions", &right, &[("origin", "http://localhost"), ("host", "localhost")]).await;
    assert_eq!(ok.status, 303, "{}", text(&ok));
    let listed = text(&web.page("/transactions").await);
    assert!(listed.contains("Bakery") && listed.contains("4.20"), "{listed}");
    assert!(listed.contains("Added Bakery"), "the flash message is shown once");
    assert!(!text(&web.get("/transactions").await).contains("Added Bakery"));
});

app_test!(signing_out_ends_the_session_everywhere_it_is_used, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    let stolen = web.cookie("magpie_session").unwrap();
    let res = web.submit("/", "/signout", &[]).await;
    assert_eq!(res.status, 303);
    assert!(web.cookie("magpie_session").is_none(), "the cookie is deleted");
    assert!(text(&web.page("/signin").await).contains("You are signed out."));
    // The old cookie is worthless: the session row is revoked.
    let replay = WebClient::new(app);
    replay.set_cookie("magpie_session", &stolen);
    assert_eq!(replay.get("/").await.status, 303);
    // A tampered cookie is refused.
    let (msg, _) = stolen.rsplit_once('.').unwrap();
    replay.set_cookie("magpie_session", &format!("{msg}.AAAA"));
    assert_eq!(replay.get("/").await.status, 303);
});

app_test!(api_sign_out_everywhere_ends_web_sessions, |app| {
    let web = WebClient::new(app);
    let email = web.sign_up().await;
    assert_eq!(web.get("/").await.status, 200);
    let tokens = app.login(&email, "a web password").await;
    let res = app.authed(Method::POST, "/api/v1/auth/logout-all", tokens["access_token"].as_str().unwrap(), None).await;
    assert_eq!(res.status, 204);
    assert_eq!(web.get("/").await.status, 303);
});

app_test!(the_dashboard_shows_the_month_budgets_goals_forecast_and_review, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    let res = web.submit("/", "/demo", &[]).await;
    assert_eq!(res.status, 303);
    let dash = web.page("/").await;
    let body = text(&dash);
    assert!(body.contains("Loaded") && body.contains("demo transactions"), "{body}");
    assert!(!body.contains("Your ledger is empty"));
    assert!(body.contains("Spending by category") && body.contains("<svg class=\"chart\""));
    assert!(body.contains("role=\"img\"") && body.contains("<title id=\"spending-t\">"));
    assert!(body.contains("Monthly spending and forecast"), "the forecast chart: {body}");
    assert!(body.contains("80% likely between"));
    // Demo data goes only into an empty ledger.
    let again = web.submit("/", "/demo", &[]).await;
    assert!(text(&web.get(again.header("location").unwrap()).await).contains("only goes into an empty ledger"));
    // A budget and a goal appear on it.
    let today = chrono::Utc::now().date_naive();
    let start =
        chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), chrono::Datelike::month(&today), 1).unwrap();
    let end = start.checked_add_months(chrono::Months::new(1)).unwrap().pred_opt().unwrap();
    let res = web
        .submit(
            "/budgets",
            "/budgets",
            &[
                ("name", "This month"),
                ("period_start", &start.to_string()),
                ("period_end", &end.to_string()),
                ("category", "Groceries"),
                ("amount", "400.00"),
                ("category", ""),
                ("amount", ""),
            ],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(res.header("location").unwrap().starts_with("/budgets/"));
    let res = web.submit("/goals", "/goals", &[("name", "Holiday"), ("target_amount", "1500.00")]).await;
    assert!(res.header("location").unwrap().starts_with("/goals/"));
    let body = text(&web.get("/").await);
    assert!(body.contains("This month") && body.contains("of 400.00 spent"), "{body}");
    assert!(body.contains("Holiday") && body.contains("0.00 of 1,500.00"));
});

app_test!(budgets_goals_and_rules_through_forms, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    // A bad allocation comes back with the API's per-field message.
    let res = web
        .submit(
            "/budgets",
            "/budgets",
            &[
                ("name", "Bad"),
                ("period_start", "2026-11-01"),
                ("period_end", "2026-11-30"),
                ("category", "Groceries"),
                ("amount", "-5"),
            ],
        )
        .await;
    assert_eq!(res.header("location"), Some("/budgets"));
    let body = text(&web.get("/budgets").await);
    assert!(body.contains("Please correct the form.") && body.contains("allocations.Groceries"), "{body}");
    // A good one, edited, rolled forward.
    let res = web
        .submit(
            "/budgets",
            "/budgets",
            &[
                ("name", "November"),
                ("period_start", "2026-11-01"),
                ("period_end", "2026-11-30"),
                ("category", "Groceries"),
                ("amount", "300"),
            ],
        )
        .await;
    let page = res.header("location").unwrap().to_owned();
    let body = text(&web.page(&page).await);
    assert!(
        body.contains("Budget “November” created.") && body.contains("Groceries") && body.contains("300.00"),
        "{body}"
    );
    let res = web
        .submit(
            &page,
            &page,
            &[
                ("name", "November"),
                ("category", "Groceries"),
                ("amount", "350"),
                ("category", "Dining"),
                ("amount", "80"),
            ],
        )
        .await;
    assert_eq!(res.status, 303);
    let body = text(&web.page(&page).await);
    assert!(body.contains("350.00") && body.contains("Dining") && body.contains("80.00"), "{body}");
    let res = web.submit(&page, &format!("{page}/roll"), &[("carry", "none")]).await;
    let next = res.header("location").unwrap().to_owned();
    assert_ne!(next, page);
    assert!(text(&web.page(&next).await).contains("2026-12-01 to 2026-12-31"));
    // A goal and a contribution.
    let res =
        web.submit("/goals", "/goals", &[("name", "Bike"), ("target_amount", "800"), ("deadline", "2027-06-30")]).await;
    let goal = res.header("location").unwrap().to_owned();
    let res = web.submit(&goal, &format!("{goal}/contribute"), &[("amount", "120.50"), ("note", "birthday")]).await;
    assert_eq!(res.status, 303);
    let body = text(&web.page(&goal).await);
    assert!(body.contains("Added 120.50. 120.50 of 800.00 saved.") && body.contains("birthday"), "{body}");
    let res = web.submit(&goal, &format!("{goal}/contribute"), &[("amount", "abc")]).await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("Please correct the form."));
    // A rule.
    let res = web
        .submit(
            "/rules",
            "/rules",
            &[("match_kind", "CONTAINS"), ("pattern", "bakery"), ("category", "Groceries"), ("name", "Bread")],
        )
        .await;
    assert_eq!(res.status, 303);
    let body = text(&web.page("/rules").await);
    assert!(body.contains("Bread") && body.contains("description contains “bakery”"), "{body}");
});

app_test!(importing_a_file_previews_then_commits_and_reverts, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    let csv = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/web/checking.csv")).unwrap();
    let upload = |csrf: String, file: Vec<u8>| {
        let boundary = "XyZzy42";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n").as_bytes(),
        );
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"account\"\r\n\r\nChecking\r\n").as_bytes(),
        );
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"checking.csv\"\r\nContent-Type: text/csv\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Request::post("/import")
            .header(header::COOKIE, web.cookie_header())
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(Body::from(body))
            .unwrap()
    };
    // Without the token nothing is kept.
    let res = app.send(upload("nope".into(), csv.clone())).await;
    assert_eq!(res.status, 403);
    let csrf = csrf_of(&web.get("/import").await);
    let res = app.send(upload(csrf.clone(), csv.clone())).await;
    assert_eq!(res.status, 303, "{}", text(&res));
    let preview = res.header("location").unwrap().to_owned();
    let body = text(&web.get(&preview).await);
    assert!(body.contains("Preview: checking.csv") && body.contains("Import 12 transactions"), "{body}");
    assert!(body.contains("ACME PAYROLL SALARY") && body.contains("1,250.00"));
    assert_eq!(text(&web.get("/transactions").await).matches("TESCO STORES").count(), 0, "a preview writes nothing");
    let res = web.submit(&preview, &format!("{preview}/commit"), &[]).await;
    assert_eq!(res.header("location"), Some("/import"));
    let body = text(&web.page("/import").await);
    assert!(body.contains("Imported 12 transactions; 0 were already in the ledger."), "{body}");
    assert!(text(&web.get("/transactions").await).contains("RENT MAPLE PROPERTIES"));
    // The held file is gone after the commit.
    assert_eq!(web.get(&preview).await.status, 404);
    // The same file again: all duplicates.
    let res = app.send(upload(csrf.clone(), csv.clone())).await;
    let again = res.header("location").unwrap().to_owned();
    let body = text(&web.get(&again).await);
    assert!(body.contains("Import 0 transactions") && body.contains("already"), "{body}");
    let res = web.submit(&again, &format!("{again}/discard"), &[]).await;
    assert_eq!(res.status, 303);
    // An unreadable file says why.
    let res = app.send(upload(csrf.clone(), b"\x00\x01 not a statement".to_vec())).await;
    let bad = res.header("location").unwrap().to_owned();
    let res = web.get(&bad).await;
    assert_eq!(res.status, 303);
    let shown = text(&web.get("/import").await);
    assert!(shown.contains("cannot be imported"), "the reason is shown: {shown}");
    // Revert.
    let page = text(&web.get("/import").await);
    let i = page.find("/import/batches/").unwrap();
    let batch = &page[i..i + page[i..].find('"').unwrap()];
    let res = web.submit("/import", batch, &[]).await;
    assert_eq!(res.status, 303);
    assert!(text(&web.page("/import").await).contains("reverted"));
    assert!(!text(&web.get("/transactions").await).contains("RENT MAPLE PROPERTIES"));
});

app_test!(transactions_recategorize_bulk_delete_restore_and_export, |app| {
    let web = WebClient::new(app);
    let email = web.sign_up().await;
    let tokens = app.login(&email, "a web password").await;
    let token = tokens["access_token"].as_str().unwrap();
    let mut ids = Vec::new();
    for (d, a) in [("=HYPERLINK(\"x\")", "3.00"), ("Corner shop", "12.00"), ("Taxi home", "23.50")] {
        let res = app
            .authed(
                Method::POST,
                "/api/v1/transactions",
                token,
                Some(&json!({"amount": a, "date": "2026-11-03", "description": d, "type": "EXPENSE"})),
            )
            .await;
        assert_eq!(res.status, 201);
        ids.push(res.json()["id"].as_str().unwrap().to_owned());
    }
    let res = web
        .submit(
            "/transactions",
            &format!("/transactions/{}/category", ids[1]),
            &[("category", "Groceries"), ("back", "/transactions?q=shop")],
        )
        .await;
    assert_eq!(res.header("location"), Some("/transactions?q=shop"));
    let body = text(&web.page("/transactions?q=shop").await);
    assert!(body.contains("“Corner shop” is now Groceries.") && body.contains("by you"), "{body}");
    // Bulk: recategorize two, then delete them, then restore from the deleted view.
    let bulk =
        [("action", "set_category"), ("category", "Transport"), ("ids", ids[0].as_str()), ("ids", ids[2].as_str())];
    let res = web.submit("/transactions", "/transactions/bulk", &bulk).await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("2 transactions recategorized."));
    let bulk = [("action", "delete"), ("ids", ids[0].as_str()), ("ids", ids[2].as_str())];
    let res = web.submit("/transactions", "/transactions/bulk", &bulk).await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("2 transactions deleted."));
    let body = text(&web.get("/transactions").await);
    assert!(!body.contains("Taxi home") && body.contains("Corner shop"));
    let body = text(&web.get("/transactions?deleted=only").await);
    assert!(body.contains("Taxi home") && body.contains("Restore"));
    let res = web
        .submit(
            "/transactions?deleted=only",
            &format!("/transactions/{}/restore", ids[2]),
            &[("back", "/transactions")],
        )
        .await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("Restored “Taxi home”."));
    let bulk = [("action", "restore"), ("ids", ids[0].as_str())];
    let res = web.submit("/transactions?deleted=only", "/transactions/bulk", &bulk).await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("1 transactions restored."));
    // A bad filter is explained, not a 500.
    let res = web.get("/transactions?from=2026-13-40").await;
    assert_eq!(res.status, 303);
    // Export: every live row, formulas defused.
    let csv = text(&web.get("/settings/export.csv").await);
    assert!(csv.starts_with("date,description,amount,type,category,source\n"), "{csv}");
    assert!(csv.contains("\"Corner shop\",12.00,EXPENSE,\"Groceries\",MANUAL"), "{csv}");
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
});

app_test!(settings_change_profile_password_tokens_and_delete_the_account, |app| {
    let web = WebClient::new(app);
    let email = web.sign_up().await;
    let res = web
        .submit(
            "/settings",
            "/settings/profile",
            &[("first_name", "Grace"), ("last_name", "Hopper"), ("email", &email)],
        )
        .await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("Profile saved."));
    assert!(text(&web.get("/settings").await).contains("value=\"Grace\""));
    let res = web
        .submit(
            "/settings",
            "/settings/password",
            &[("current_password", "wrong password"), ("new_password", "another long password")],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(!text(&web.get("/settings").await).contains("Password changed"));
    let res = web
        .submit(
            "/settings",
            "/settings/password",
            &[("current_password", "a web password"), ("new_password", "another long password")],
        )
        .await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("Password changed."));
    // This session survives its own password change.
    assert_eq!(web.get("/").await.status, 200);
    // A token is shown once, on the answer to the form.
    let res = web.submit("/settings", "/settings/tokens", &[("name", "script"), ("scope", "read")]).await;
    assert_eq!(res.status, 200);
    let body = text(&res);
    let i = body.find("mgp_pat_").expect("the new token");
    let token = &body[i..i + body[i..].find('"').unwrap()];
    assert_eq!(app.authed(Method::GET, "/api/v1/transactions", token, None).await.status, 200);
    assert!(!text(&web.get("/settings").await).contains(token), "not shown again");
    let page = text(&web.get("/settings").await);
    let j = page.find("/settings/tokens/").unwrap();
    let revoke = &page[j..j + page[j..].find('"').unwrap()];
    web.submit("/settings", revoke, &[]).await;
    assert_eq!(app.authed(Method::GET, "/api/v1/transactions", token, None).await.status, 401);
    // Deleting needs the password.
    let res = web.submit("/settings", "/settings/delete", &[("password", "wrong")]).await;
    assert_eq!(res.header("location"), Some("/settings"));
    let res = web.submit("/settings", "/settings/delete", &[("password", "another long password")]).await;
    assert_eq!(res.header("location"), Some("/signin"));
    assert!(web.cookie("magpie_session").is_none());
    let res = app
        .json(Method::POST, "/api/v1/auth/login", &json!({"email": email, "password": "another long password"}))
        .await;
    assert_eq!(res.status, 401);
});

app_test!(connecting_the_emulator_bank_and_syncing, |app| {
    let web = WebClient::new(app);
    web.sign_up().await;
    let body = text(&web.get("/connections").await);
    assert!(
        body.contains("No banks connected")
            && body.contains("Connect with SimpleFIN")
            && body.contains("Connect with Plaid")
    );
    let res = web.submit("/connections", "/connections/simplefin", &[("token", "not-a-token")]).await;
    let body = text(&web.page(res.header("location").unwrap()).await);
    assert!(body.contains("Please correct the form.") || body.contains("setup"), "{body}");
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let res = web.submit("/connections", "/connections/simplefin", &[("token", &setup)]).await;
    let body = text(&web.page(res.header("location").unwrap()).await);
    assert!(body.contains("Connected") && body.contains("via SimpleFIN"), "{body}");
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    let body = text(&web.get("/connections").await);
    assert!(body.contains("Status: <strong class=\"in\">connected</strong>"), "{body}");
    assert!(!body.contains("last sync —"), "{body}");
    let listed = text(&web.get("/transactions").await);
    assert!(listed.contains(">bank</small>"), "synced transactions are listed: {listed}");
    let page = text(&web.get("/connections").await);
    let i = page.find("/connections/").and_then(|_| page.find("/sync\"")).unwrap();
    let start = page[..i].rfind("/connections/").unwrap();
    let sync = &page[start..i + 5];
    let res = web.submit("/connections", sync, &[]).await;
    assert!(text(&web.get(res.header("location").unwrap()).await).contains("Sync started"));
});

app_test!(another_users_records_are_not_found_on_every_web_route, |app| {
    let owner = WebClient::new(app);
    let email = owner.sign_up().await;
    let tokens = app.login(&email, "a web password").await;
    let token = tokens["access_token"].as_str().unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let path = path.to_owned();
        async move {
            let res = app.authed(Method::POST, &path, token, Some(&body)).await;
            assert!(res.status.is_success(), "{path}: {}", text(&res));
            res.json()
        }
    };
    let t = post(
        "/api/v1/transactions",
        json!({"amount": "9.99", "date": "2026-11-05", "description": "Owner's", "type": "EXPENSE"}),
    )
    .await;
    let b = post(
        "/api/v1/budgets",
        json!({"name": "Owner", "period_start": "2026-11-01", "period_end": "2026-11-30", "allocations": {"Groceries": "10"}}),
    )
    .await;
    let g = post("/api/v1/goals", json!({"name": "Owner", "target_amount": "100"})).await;
    let r = post("/api/v1/rules", json!({"pattern": "owner", "category": "Groceries"})).await;
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let c = post("/api/v1/connections", json!({"provider": "SIMPLEFIN", "setup_token": setup})).await;
    let pat = post("/api/v1/me/tokens", json!({"name": "owner", "scope": "read"})).await;
    let csv = b"Date,Description,Amount\n2026-11-02,Owner file,-3.00\n";
    let res = app.import(token, "filename=o.csv", csv).await;
    let batch = res.json()["batch_id"].as_str().unwrap().to_owned();
    let upload = {
        let mut conn = app.state.db.conn().await.unwrap();
        let id: magpie_domain::UserId = tokens_user(app, &email).await;
        magpie_db::uploads::put(conn.c(), id, Some("o.csv"), None, csv, magpie_domain::Timestamp::now()).await.unwrap()
    };
    let (tid, bid, gid, rid, cid, pid) = (
        t["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        g["id"].as_str().unwrap(),
        r["id"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
        pat["id"].as_str().unwrap(),
    );

    let intruder = WebClient::new(app);
    intruder.sign_up().await;
    for path in [format!("/budgets/{bid}"), format!("/goals/{gid}"), format!("/import/uploads/{upload}")] {
        let res = intruder.get(&path).await;
        assert_eq!(res.status, 404, "GET {path}");
        assert!(!text(&res).contains("Owner"), "{path} leaks nothing");
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/transactions/{tid}/category"), vec![("category", "Hacked")]),
        (format!("/transactions/{tid}/delete"), vec![]),
        (format!("/transactions/{tid}/restore"), vec![]),
        (format!("/budgets/{bid}"), vec![("name", "Hacked"), ("category", "Groceries"), ("amount", "1")]),
        (format!("/budgets/{bid}/roll"), vec![("carry", "none")]),
        (format!("/budgets/{bid}/delete"), vec![]),
        (format!("/goals/{gid}/contribute"), vec![("amount", "5")]),
        (format!("/goals/{gid}/delete"), vec![]),
        (format!("/rules/{rid}/delete"), vec![]),
        (format!("/connections/{cid}/sync"), vec![]),
        (format!("/connections/{cid}/delete"), vec![("force", "1")]),
        (format!("/settings/tokens/{pid}/revoke"), vec![]),
        (format!("/import/uploads/{upload}/commit"), vec![]),
        (format!("/import/uploads/{upload}/discard"), vec![]),
        (format!("/import/batches/{batch}/revert"), vec![]),
    ];
    for (path, fields) in &posts {
        let res = intruder.submit("/", path, fields).await;
        assert_eq!(res.status, 404, "POST {path}: {}", text(&res));
    }
    let bulk = [("action", "delete"), ("ids", tid)];
    let res = intruder.submit("/transactions", "/transactions/bulk", &bulk).await;
    let shown = text(&intruder.get(res.header("location").unwrap()).await);
    assert!(shown.contains("do not exist") && shown.contains("nothing was changed"), "{shown}");
    // The owner's records are as they were.
    let mine = app.authed(Method::GET, &format!("/api/v1/transactions/{tid}"), token, None).await.json();
    assert_eq!(mine["category"], t["category"]);
    assert!(mine["deleted_at"].is_null());
    assert_eq!(app.authed(Method::GET, &format!("/api/v1/budgets/{bid}"), token, None).await.json()["name"], "Owner");
    assert_eq!(
        app.authed(Method::GET, &format!("/api/v1/goals/{gid}"), token, None).await.json()["current_amount"],
        "0.00"
    );
    assert_eq!(app.authed(Method::GET, &format!("/api/v1/rules/{rid}"), token, None).await.status, 200);
    assert_eq!(app.authed(Method::GET, &format!("/api/v1/connections/{cid}"), token, None).await.status, 200);
    assert_eq!(
        app.authed(Method::GET, &format!("/api/v1/imports/{batch}"), token, None).await.json()["status"],
        "COMMITTED"
    );
    // Lists show the intruder nothing of the owner's.
    for path in
        ["/", "/transactions", "/import", "/budgets", "/goals", "/rules", "/connections", "/models", "/settings"]
    {
        let body = text(&intruder.get(path).await);
        assert!(!body.contains("Owner") && !body.contains("Owner file"), "{path} shows another user's data");
    }
});

async fn tokens_user(app: &TestApp, email: &str) -> magpie_domain::UserId {
    let mut conn = app.state.db.conn().await.unwrap();
    magpie_db::users::find_by_email(conn.c(), &magpie_domain::Email::parse(email).unwrap()).await.unwrap().unwrap().id
}

app_test!(next_paths_that_browsers_turn_into_other_sites_are_refused, |app| {
    let email = format!("next-{}@example.com", uuid::Uuid::new_v4().simple());
    app.register(&email, "a web password").await;
    // Browsers drop tabs and line breaks and read a backslash as a slash: each of these is //evil.
    for next in ["/\t/evil.example", "/\n/evil.example", "/\\evil.example", "/\r\n/evil.example", "\t//evil.example"] {
        let web = WebClient::new(app);
        let res = web
            .submit("/signin", "/signin", &[("email", &email), ("password", "a web password"), ("next", next)])
            .await;
        assert_eq!(res.header("location"), Some("/"), "{next:?}");
    }
    // The sign-in page does not carry such a next either.
    let web = WebClient::new(app);
    let page = text(&web.get("/signin?next=/%09/evil.example").await);
    assert!(page.contains("name=\"next\" value=\"/\""), "{page}");
});

app_test!(a_planted_pre_sign_in_cookie_opens_no_signed_in_form, |app| {
    // An attacker gets a pre-sign-in cookie and its token from the sign-in page...
    let attacker = WebClient::new(app);
    let page = attacker.get("/signin").await;
    let planted_token = csrf_of(&page);
    let planted_cookie = attacker.cookie("magpie_pre").unwrap();
    // ...and plants the cookie in a signed-in victim's browser (a sibling subdomain can).
    let victim = WebClient::new(app);
    victim.sign_up().await;
    victim.set_cookie("magpie_pre", &planted_cookie);
    let res = victim
        .post("/settings/tokens", &[("csrf", planted_token.as_str()), ("name", "pwned"), ("scope", "read-write")], &[])
        .await;
    assert_eq!(res.status, 403, "{}", text(&res));
    let listed = text(&victim.page("/settings").await);
    assert!(!listed.contains("pwned"), "no token was created");
});
