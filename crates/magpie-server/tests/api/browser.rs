//! The web app in a real browser: headless Chromium (Debian's `chromium` and `chromedriver`) against the
//! real server on a port, with its background worker running. One person's first hour: sign up, import
//! a statement, recategorize, budget, goal and contribution, connect the emulator bank and sync, sign
//! out. Every step asserts what the page shows; the run fails on any console error and on any request
//! to another host; every page is photographed at phone and desktop widths.
//!
//! Skips (saying so) when Chromium is not installed; `.ci/run` installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestApp;
use crate::webdriver::{self, Browser};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// Serve the app on a port, with the job worker, until the test ends.
async fn serve(app: &TestApp) -> SocketAddr {
    serve_on(app, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

/// Serve the app on `listener`, with the job worker, until the test ends.
async fn serve_on(app: &TestApp, listener: tokio::net::TcpListener) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(magpie_server::jobs::work(app.state.clone(), stopped));
    // The worker runs until the runtime ends with the test.
    std::mem::forget(stop);
    addr
}

/// The folder the screenshots go to: `$MAGPIE_SCREENSHOTS`, or `web-screenshots` in cargo's target
/// temporary folder.
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("MAGPIE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

struct Run {
    browser: Browser,
    base: String,
    origin: String,
    requests: Vec<String>,
    /// Another origin the run may visit (the OpenID provider's pages).
    also: Option<String>,
}

impl Run {
    async fn go(&mut self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.base)).await;
        self.check().await;
    }

    /// No console errors, and every request went to this server.
    async fn check(&mut self) {
        // On the identity provider's own pages (its development pages load web fonts from elsewhere),
        // there is nothing of ours to judge: their logs are read and dropped.
        if let Some(also) = &self.also {
            let here = self.browser.script("return location.origin", json!([])).await;
            if here.as_str() == Some(also.as_str()) {
                self.browser.console().await;
                self.browser.requests().await;
                return;
            }
        }
        let errors: Vec<(String, String)> = self
            .browser
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE" || level == "ERROR")
            .collect();
        assert!(errors.is_empty(), "console errors on {}: {errors:?}", self.browser.path().await);
        for url in self.browser.requests().await {
            // The way back from the identity provider passes through its address.
            let ours = url.starts_with(&self.origin)
                || url.starts_with("data:")
                || url == "about:blank"
                || self.also.as_ref().is_some_and(|o| url.starts_with(o.as_str()));
            assert!(ours, "a request to another host: {url}");
            self.requests.push(url);
        }
    }

    async fn click(&mut self, css: &str) {
        self.browser.click(css).await;
        self.check().await;
    }

    async fn text(&self) -> String {
        self.browser.text().await
    }

    /// The page shows `needle` (waiting up to 10 s: a click's navigation may still be under way).
    async fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected “{needle}” on {}; the page says:\n{text}",
                self.browser.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.check().await;
    }

    /// Wait until the page (reloaded every 250 ms) shows `needle`.
    async fn wait_for(&mut self, path: &str, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            self.go(path).await;
            if self.text().await.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "{path} never showed “{needle}”: {}", self.text().await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn shoot(&mut self, name: &str, dir: &Path) {
        for (label, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.browser.resize(w, h).await;
            // The whole page: stretch the window to the document's height for the shot.
            let height = self
                .browser
                .script("return document.documentElement.scrollHeight", json!([]))
                .await
                .as_u64()
                .unwrap_or(u64::from(h));
            self.browser.resize(w, (height as u32).clamp(h, 6000)).await;
            self.browser.screenshot(&dir.join(format!("{name}-{label}.png"))).await;
            let overflow = self
                .browser
                .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth", json!([]))
                .await
                .as_i64()
                .unwrap_or(0);
            assert!(overflow <= 1, "{name} is wider than the {label} screen by {overflow}px");
        }
        self.browser.resize(DESKTOP.0, DESKTOP.1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_hour_in_the_browser() {
    if !webdriver::available() {
        assert!(
            std::env::var_os("MAGPIE_REQUIRE_BROWSER").is_none(),
            "MAGPIE_REQUIRE_BROWSER is set but {} or {} is missing",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        eprintln!(
            "SKIPPED a_first_hour_in_the_browser: {} or {} is not installed (apt install chromium chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        return;
    }
    let app = TestApp::sqlite().await;
    let addr = serve(&app).await;
    let dir = screenshot_dir();
    let origin = format!("http://{addr}");
    let mut run = Run {
        browser: Browser::start(DESKTOP.0, DESKTOP.1).await,
        base: origin.clone(),
        origin,
        requests: Vec::new(),
        also: None,
    };

    // Sign up.
    run.go("/").await;
    run.expect("Sign in").await;
    run.shoot("signin", &dir).await;
    run.go("/signup").await;
    run.shoot("signup", &dir).await;
    let email = format!("browser-{}@example.com", uuid::Uuid::new_v4().simple());
    run.browser.fill("input[name=email]", &email).await;
    run.browser.fill("input[name=password]", "a browser password").await;
    run.browser.fill("input[name=first_name]", "Ada").await;
    run.click("form[action='/signup'] button[type=submit]").await;
    run.expect("Welcome to Magpie").await;
    run.expect("Your ledger is empty").await;
    run.expect(&email).await;
    run.shoot("dashboard-empty", &dir).await;

    // Import a statement file: preview, then commit.
    run.go("/import").await;
    run.expect("No imports yet.").await;
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/web/checking.csv");
    run.browser.attach("input[type=file]", &file).await;
    run.browser.fill("input[name=account]", "Checking").await;
    run.click("form[action='/import'] button[type=submit]").await;
    run.expect("Preview: checking.csv").await;
    run.expect("Import 12 transactions").await;
    run.expect("RENT MAPLE PROPERTIES").await;
    run.shoot("import-preview", &dir).await;
    run.click("form[action$='/commit'] button").await;
    run.expect("Imported 12 transactions; 0 were already in the ledger.").await;
    run.expect("checking.csv").await;
    run.shoot("import", &dir).await;

    // See and recategorize transactions.
    run.go("/transactions?q=STARBUCKS").await;
    run.expect("STARBUCKS 1187").await;
    run.browser.fill("form.recat input[name=category]", "Coffee Shops").await;
    run.click("form.recat button").await;
    run.expect("“STARBUCKS 1187” is now Coffee Shops.").await;
    let value =
        run.browser.script("return document.querySelector('form.recat input[name=category]').value", json!([])).await;
    assert_eq!(value, "Coffee Shops");
    run.expect("by you").await;
    run.go("/transactions").await;
    run.expect("ACME PAYROLL SALARY").await;
    run.expect("+3,200.00").await;
    run.shoot("transactions", &dir).await;

    // A budget and its status.
    run.go("/budgets").await;
    run.shoot("budgets-empty", &dir).await;
    run.browser.fill("input[name=name]", "October").await;
    run.browser.script("document.querySelector('input[name=period_start]').value = '2026-10-01'; document.querySelector('input[name=period_end]').value = '2026-10-31';", json!([])).await;
    let tesco =
        run.browser.script("return document.querySelectorAll('.alloc input[name=category]').length", json!([])).await;
    assert!(tesco.as_u64().unwrap_or(0) >= 2);
    run.browser.script(
        "const c = document.querySelectorAll('.alloc input[name=category]'); const a = document.querySelectorAll('.alloc input[name=amount]');\
         c[0].value = arguments[0]; a[0].value = '100.00'; c[1].value = 'Coffee Shops'; a[1].value = '20.00';",
        json!([categorized_as(&app, &email, "TESCO STORES 2231").await]),
    )
    .await;
    run.click("form[action='/budgets'] button[type=submit]").await;
    run.expect("Budget “October” created.").await;
    run.expect("Coffee Shops").await;
    run.expect("4.60").await;
    run.expect("2026-10-01 to 2026-10-31").await;
    run.shoot("budget", &dir).await;

    // A goal and a contribution.
    run.go("/goals").await;
    run.browser.fill("input[name=name]", "Emergency fund").await;
    run.browser.fill("input[name=target_amount]", "1000").await;
    run.click("form[action='/goals'] button[type=submit]").await;
    run.expect("Goal “Emergency fund” created.").await;
    run.browser.fill("input[name=amount]", "250").await;
    run.browser.fill("input[name=note]", "first").await;
    run.click("form[action$='/contribute'] button").await;
    run.expect("Added 250.00. 250.00 of 1,000.00 saved.").await;
    run.expect("25%").await;
    run.shoot("goal", &dir).await;
    run.go("/goals").await;
    run.shoot("goals", &dir).await;

    // Connect the emulator's bank through SimpleFIN, and sync.
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    run.go("/connections").await;
    run.expect("No banks connected.").await;
    run.shoot("connections-empty", &dir).await;
    run.browser.fill("form[action='/connections/simplefin'] input[name=token]", &setup).await;
    run.click("form[action='/connections/simplefin'] button").await;
    run.expect("The first sync has started").await;
    run.wait_for("/connections", "connected ·", Duration::from_secs(30)).await;
    let text = run.text().await;
    assert!(!text.contains("last sync —"), "the first sync finished: {text}");
    run.shoot("connections", &dir).await;
    run.click("form[action$='/sync'] button").await;
    run.expect("Sync started").await;
    run.go("/transactions").await;
    run.expect("bank").await;

    // The other pages, for the record.
    run.go("/").await;
    run.expect("Spending by category").await;
    run.expect("Budgets").await;
    run.expect("Emergency fund").await;
    run.shoot("dashboard", &dir).await;
    for (page, name) in
        [("/rules", "rules"), ("/models", "models"), ("/settings", "settings"), ("/transactions?review=1", "review")]
    {
        run.go(page).await;
        run.shoot(name, &dir).await;
    }

    // Sign out.
    run.go("/").await;
    run.click("form.signout button").await;
    run.expect("You are signed out.").await;
    run.go("/transactions").await;
    run.expect("Sign in").await;
    assert_eq!(run.browser.path().await, "/signin?next=/transactions");

    assert!(
        run.requests.iter().any(|u| u.contains("/assets/app.css")),
        "the stylesheet was loaded: {:?}",
        run.requests
    );
    assert!(run.requests.iter().any(|u| u.contains("/assets/app.js")));
    let shots = std::fs::read_dir(&dir).unwrap().count();
    assert!(shots >= 34, "{shots} screenshots in {}", dir.display());
    eprintln!("browser test: {} requests, all to {}; screenshots in {}", run.requests.len(), run.base, dir.display());
}

/// Skip (saying so) without a browser, unless CI requires one.
fn browser_missing(test: &str) -> bool {
    if webdriver::available() {
        return false;
    }
    assert!(
        std::env::var_os("MAGPIE_REQUIRE_BROWSER").is_none(),
        "MAGPIE_REQUIRE_BROWSER is set but {} or {} is missing",
        webdriver::CHROMIUM,
        webdriver::CHROMEDRIVER
    );
    eprintln!("SKIPPED {test}: {} or {} is not installed", webdriver::CHROMIUM, webdriver::CHROMEDRIVER);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_sign_in_a_passkey_and_the_identity_provider_in_the_browser() {
    if browser_missing("two_step_sign_in_a_passkey_and_the_identity_provider_in_the_browser") {
        return;
    }
    // Passkeys need a host name (not an IP address): the browser goes to localhost.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let provider =
        crate::oidc::start_provider(&format!("{origin}/auth/oidc/callback"), 3600, "nobody@example.com").await;
    let Some(provider) = provider else { return };
    let config =
        magpie_server::config::Config { public_url: Some(origin.clone()), ..crate::oidc::oidc_config(&provider) };
    let app = TestApp::sqlite_with(config).await;
    serve_on(&app, listener).await;
    let dir = screenshot_dir();
    let mut run = Run {
        browser: Browser::start(DESKTOP.0, DESKTOP.1).await,
        base: origin.clone(),
        origin,
        requests: Vec::new(),
        also: Some(provider.issuer.clone()),
    };

    // Sign up, then turn on two-step sign-in with the authenticator app.
    run.go("/signup").await;
    let email = format!("secure-{}@example.com", uuid::Uuid::new_v4().simple());
    run.browser.fill("input[name=email]", &email).await;
    run.browser.fill("input[name=password]", "a browser password").await;
    run.click("form[action='/signup'] button[type=submit]").await;
    run.expect("Welcome to Magpie").await;
    run.go("/settings").await;
    run.browser.fill("form[action='/settings/totp'] input[name=password]", "a browser password").await;
    run.click("form[action='/settings/totp'] button").await;
    run.expect("Set up the authenticator app").await;
    run.shoot("totp-setup", &dir).await;
    let secret = run.browser.script("return document.getElementById('totp-secret').value", json!([])).await;
    let secret = secret.as_str().unwrap().to_owned();
    run.browser.fill("input[name=code]", &crate::two_factor::code(&secret, 0)).await;
    run.click("form[action='/settings/totp/confirm'] button").await;
    run.expect("Two-step sign-in is on.").await;
    let codes =
        run.browser.script("return document.querySelectorAll('[data-recovery-codes] li').length", json!([])).await;
    assert_eq!(codes, 10);
    run.shoot("recovery-codes", &dir).await;

    // Add a passkey (the browser's virtual authenticator plays the fingerprint reader).
    let authenticator = run.browser.add_virtual_authenticator().await;
    run.go("/settings").await;
    run.browser.fill("form[data-passkey-add] input[name=name]", "Laptop").await;
    run.click("form[data-passkey-add] button").await;
    run.expect("Passkey “Laptop” added.").await;
    assert_eq!(run.browser.virtual_credentials(&authenticator).await.len(), 1);
    run.shoot("settings-security", &dir).await;
    run.click("form.signout button").await;
    run.expect("You are signed out.").await;

    // Sign in with the password and a code.
    run.go("/signin").await;
    run.browser.fill("form[action='/signin'] input[name=email]", &email).await;
    run.browser.fill("form[action='/signin'] input[name=password]", "a browser password").await;
    run.click("form[action='/signin'] button").await;
    run.expect("Two-step sign-in").await;
    run.shoot("second-factor", &dir).await;
    // The code shown when it was set up is spent: the next one.
    run.browser
        .fill("form[action='/signin/second-factor'] input[name=code]", &crate::two_factor::code(&secret, 1))
        .await;
    run.click("form[action='/signin/second-factor'] button").await;
    run.expect("Dashboard").await;
    run.expect(&email).await;
    run.click("form.signout button").await;
    run.expect("You are signed out.").await;

    // Sign in with the passkey: no password, no code.
    run.go("/signin").await;
    run.click("form[data-passkey-signin] button").await;
    run.expect(&email).await;
    assert_eq!(run.browser.path().await, "/");
    run.click("form.signout button").await;
    run.expect("You are signed out.").await;

    // Sign in through the identity provider (a new person: an account is made for her).
    run.go("/signin").await;
    run.click("a[href^='/auth/oidc/start']").await;
    run.expect("Sign-in").await;
    run.browser.fill("input[name=login]", "alice").await;
    run.browser.fill("input[name=password]", "anything").await;
    run.click("button[type=submit]").await;
    run.expect("Authorize").await;
    run.click("button[type=submit]").await;
    run.expect("alice@example.com").await;
    assert_eq!(run.browser.path().await, "/");
    run.shoot("signed-in-with-sso", &dir).await;
}

/// The category the categorizer gave an imported row (whatever the global model chose).
async fn categorized_as(app: &TestApp, email: &str, description: &str) -> String {
    let mut conn = app.state.db.conn().await.unwrap();
    let user =
        magpie_db::users::find_by_email(conn.c(), &magpie_domain::Email::parse(email).unwrap()).await.unwrap().unwrap();
    let filter =
        magpie_db::transactions::TransactionFilter { text: Some(description.to_owned()), ..Default::default() };
    let rows =
        magpie_db::transactions::list(conn.c(), user.id, &filter, magpie_db::transactions::Sort::DateDesc, None, 1)
            .await
            .unwrap();
    rows[0].category.as_str().to_owned()
}
