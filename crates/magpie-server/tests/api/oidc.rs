//! OpenID Connect sign-in end to end against a real provider: npm's `oidc-provider` on Node.js
//! (`tests/oidc/provider.mjs`, installed by `.ci/run`), reached through a small proxy this test runs, so
//! that a token response can be tampered with or held back. Skips with a note when Node.js or the
//! package is missing, unless `MAGPIE_REQUIRE_OIDC=1` (as in CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use magpie_server::config::{Config, Secret};
use serde_json::json;

use crate::support::{TestApp, TestResponse, test_config};
use crate::web::{WebClient, csrf_of, text};

/// Where the server thinks it is: the provider sends browsers back here.
const PUBLIC: &str = "http://localhost:9";
const CLIENT_ID: &str = "magpie-test";
pub const CLIENT_SECRET: &str = "magpie-test-client-secret-0123456789";

/// What the proxy does to the provider's token responses.
#[derive(Clone, Copy, PartialEq)]
pub enum Tamper {
    None,
    /// Flip a byte of the ID token's signature.
    Signature,
    /// Hold the answer back this long.
    Delay(Duration),
}

/// A running provider behind the proxy.
pub struct Provider {
    child: Child,
    /// The issuer (the proxy's address).
    pub issuer: String,
    pub tamper: Arc<Mutex<Tamper>>,
    /// The ID tokens the provider issued, as they passed the proxy (for leak checks).
    pub id_tokens: Arc<Mutex<Vec<String>>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder holding `node_modules/oidc-provider`, when Node.js and the package are there.
pub fn provider_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MAGPIE_OIDC_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp/magpie-oidc".into());
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let found = node && dir.join("node_modules/oidc-provider/package.json").exists();
    if !found {
        assert!(
            std::env::var("MAGPIE_REQUIRE_OIDC").as_deref() != Ok("1"),
            "MAGPIE_REQUIRE_OIDC=1 but Node.js or oidc-provider is missing in {}",
            dir.display()
        );
        eprintln!("SKIPPED OpenID Connect test: Node.js or npm's oidc-provider is not installed (see .ci/run)");
        return None;
    }
    Some(dir)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start the provider (its ID tokens live `id_token_ttl` seconds) and the proxy in front of it.
pub async fn start_provider(redirect: &str, id_token_ttl: u64, existing_email: &str) -> Option<Provider> {
    let dir = provider_dir()?;
    magpie_sync::install_tls_provider();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", proxy.local_addr().unwrap().port());
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .env("OIDC_PROVIDER_DIR", &dir)
        .env("PORT", port.to_string())
        .env("ISSUER", &issuer)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URIS", redirect)
        .env("ID_TOKEN_TTL", id_token_ttl.to_string())
        .env("OIDC_EXISTING_EMAIL", existing_email)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.trim() == "ready")
    });
    assert!(tokio::time::timeout(Duration::from_secs(30), ready).await.unwrap().unwrap(), "the provider did not start");
    let tamper = Arc::new(Mutex::new(Tamper::None));
    let upstream = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let t = tamper.clone();
    let id_tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = id_tokens.clone();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (http, upstream, t, seen) = (http.clone(), upstream.clone(), t.clone(), seen.clone());
        async move {
            let mode = *t.lock().unwrap();
            forward(&http, &upstream, req, mode, &seen).await
        }
    });
    tokio::spawn(async move { axum::serve(proxy, app).await.unwrap() });
    Some(Provider { child, issuer, tamper, id_tokens })
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    req: Request<Body>,
    tamper: Tamper,
    seen: &Mutex<Vec<String>>,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut r = http.request(parts.method.clone(), url).body(body.to_vec());
    // The Host header goes through as it came: the provider builds its URLs from it, and they must
    // point at this proxy.
    for (k, v) in &parts.headers {
        if k != header::CONTENT_LENGTH {
            r = r.header(k, v);
        }
    }
    let res = r.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let mut bytes = res.bytes().await.unwrap().to_vec();
    if parts.uri.path() == "/token" && status.is_success() {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(t) = v["id_token"].as_str()
        {
            seen.lock().unwrap().push(t.to_owned());
        }
        match tamper {
            Tamper::Signature => {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let token = v["id_token"].as_str().unwrap().to_owned();
                let (signed, sig) = token.rsplit_once('.').unwrap();
                let mut sig: Vec<char> = sig.chars().collect();
                sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
                v["id_token"] = json!(format!("{signed}.{}", sig.into_iter().collect::<String>()));
                bytes = v.to_string().into_bytes();
            }
            Tamper::Delay(d) => tokio::time::sleep(d).await,
            Tamper::None => {}
        }
    }
    let mut out = axum::response::Response::builder().status(status.as_u16());
    for (k, v) in &headers {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    out.body(Body::from(bytes)).unwrap()
}

/// The configuration of a server using `provider`.
pub fn oidc_config(provider: &Provider) -> Config {
    Config {
        public_url: Some(PUBLIC.into()),
        oidc_issuer: Some(provider.issuer.clone()),
        oidc_client_id: Some(CLIENT_ID.into()),
        oidc_client_secret: Some(Secret::new(CLIENT_SECRET.into())),
        oidc_scopes: "openid email profile groups".into(),
        ..test_config()
    }
}

/// A browser at the provider: follows its redirects and fills its login and consent pages as `login`,
/// until it is sent back to this server; returns that callback path (with query).
pub async fn sign_in_at_provider(start_location: &str, login: &str) -> String {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let mut url = start_location.to_owned();
    for _ in 0..20 {
        if let Some(path) = url.strip_prefix(PUBLIC) {
            return path.to_owned();
        }
        let res = http.get(&url).send().await.unwrap();
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let base = res.url().clone();
        let body = res.text().await.unwrap();
        if let Some(l) = location {
            url = base.join(&l).unwrap().to_string();
            continue;
        }
        assert_eq!(status, 200, "{url}: {body}");
        let action = {
            let i = body.find("action=\"").expect("a form") + 8;
            body[i..i + body[i..].find('"').unwrap()].replace("&#x2F;", "/").replace("&amp;", "&")
        };
        let form: Vec<(&str, &str)> = if body.contains("name=\"prompt\" value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let res = http
            .post(base.join(&action).unwrap())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_html_form::to_string(&form).unwrap())
            .send()
            .await
            .unwrap();
        let l =
            res.headers().get("location").expect("the provider redirects after a form").to_str().unwrap().to_owned();
        url = base.join(&l).unwrap().to_string();
    }
    panic!("never sent back to {PUBLIC}: at {url}");
}

/// Start a sign-in on `web`, do it at the provider as `login`, and return the callback's answer.
pub async fn oidc_sign_in(web: &WebClient<'_>, login: &str) -> TestResponse {
    let start = web.get("/auth/oidc/start?next=/budgets").await;
    assert_eq!(start.status, 303, "{}", text(&start));
    let callback = sign_in_at_provider(start.header("location").unwrap(), login).await;
    web.get(&callback).await
}

/// An app with `config` over SQLite, and one over PostgreSQL when configured.
async fn apps(config: Config) -> Vec<TestApp> {
    let mut out = vec![TestApp::sqlite_with(config.clone()).await];
    out.extend(TestApp::postgres_with(config).await);
    out
}

/// The flash message a redirect leads to.
async fn flash_after(web: &WebClient<'_>, res: &TestResponse) -> String {
    assert_eq!(res.status, 303, "{}", text(res));
    text(&web.get(res.header("location").unwrap()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_provider_and_their_account_is_made_once() {
    let Some(provider) = start_provider(&format!("{PUBLIC}/auth/oidc/callback"), 3600, "ada@example.com").await else {
        return;
    };
    for app in apps(oidc_config(&provider)).await {
        let app = &app;
        let methods = app.get("/api/v1/auth/methods").await.json();
        assert_eq!(methods["oidc"], "Sign in with SSO");
        let web = WebClient::new(app);
        let res = oidc_sign_in(&web, "alice").await;
        assert_eq!(res.header("location"), Some("/budgets"), "{}", text(&res));
        assert!(web.cookie("magpie_session").is_some());
        assert!(web.cookie("magpie_oidc").is_none(), "the state cookie is cleared");
        let settings = text(&web.get("/settings").await);
        assert!(settings.contains("alice@example.com"), "{settings}");
        // Again, from another browser: the same account.
        let again = WebClient::new(app);
        assert_eq!(oidc_sign_in(&again, "alice").await.status, 303);
        let mut c = app.test_db.db.conn().await.unwrap();
        let everyone = magpie_db::users::list(c.c()).await.unwrap();
        assert_eq!(everyone.len(), 1);
        let ids = magpie_db::security::list_identities(c.c(), everyone[0].id).await.unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].subject, "alice");
        // The account has no password: a sign-in with any password fails like a wrong one.
        let p = app
            .json(
                Method::POST,
                "/api/v1/auth/login",
                &json!({"email": "alice@example.com", "password": magpie_server::auth::password::NO_PASSWORD}),
            )
            .await;
        p.assert_problem(401, "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_linked_by_subject_never_by_email() {
    let Some(provider) = start_provider(&format!("{PUBLIC}/auth/oidc/callback"), 3600, "ada@example.com").await else {
        return;
    };
    for app in apps(oidc_config(&provider)).await {
        let app = &app;
        app.register("ada@example.com", "correct horse battery").await;
        // The provider vouches for ada@example.com, but that account was made with a password: not linked.
        let web = WebClient::new(app);
        let res = oidc_sign_in(&web, "ada").await;
        let page = flash_after(&web, &res).await;
        assert!(page.contains("sign in with its password"), "{page}");
        assert!(web.cookie("magpie_session").is_none());
        // Signed in with the password, Ada links the provider from Settings...
        let res = web
            .submit("/signin", "/signin", &[("email", "ada@example.com"), ("password", "correct horse battery")])
            .await;
        assert_eq!(res.status, 303);
        let csrf = csrf_of(&web.get("/settings").await);
        let link = web.post("/settings/identities/link", &[("csrf", &csrf)], &[]).await;
        assert_eq!(link.status, 303, "{}", text(&link));
        let callback = sign_in_at_provider(link.header("location").unwrap(), "ada").await;
        let page = flash_after(&web, &web.get(&callback).await).await;
        assert!(page.contains("is linked"), "{page}");
        // ...and from then on signs in with it.
        let fresh = WebClient::new(app);
        assert_eq!(oidc_sign_in(&fresh, "ada").await.header("location"), Some("/budgets"));
        let audit = text(&fresh.get("/settings").await);
        assert!(audit.contains("Identity provider linked"), "{audit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_emails_other_domains_and_other_groups_are_refused() {
    let Some(provider) = start_provider(&format!("{PUBLIC}/auth/oidc/callback"), 3600, "ada@example.com").await else {
        return;
    };
    let config = Config {
        oidc_allowed_domains: "example.com".into(),
        oidc_allowed_groups: "finance".into(),
        ..oidc_config(&provider)
    };
    for app in apps(config).await {
        let app = &app;
        for (who, says) in [
            ("eve", "not from an allowed email domain"),
            ("dave", "not from an allowed email domain"),
            ("greg", "not in a group allowed here"),
        ] {
            let web = WebClient::new(app);
            let page = flash_after(&web, &oidc_sign_in(&web, who).await).await;
            assert!(page.contains(says), "{who}: {page}");
            assert!(web.cookie("magpie_session").is_none(), "{who}");
        }
        let web = WebClient::new(app);
        assert_eq!(oidc_sign_in(&web, "alice").await.header("location"), Some("/budgets"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_expired_sign_ins_are_refused() {
    let Some(provider) = start_provider(&format!("{PUBLIC}/auth/oidc/callback"), 2, "ada@example.com").await else {
        return;
    };
    let app = TestApp::sqlite_with(Config { oidc_clock_skew_secs: 0, ..oidc_config(&provider) }).await;
    // A replayed callback: the state is used once.
    let web = WebClient::new(&app);
    let start = web.get("/auth/oidc/start").await;
    let state_cookie = web.cookie("magpie_oidc").unwrap();
    let callback = sign_in_at_provider(start.header("location").unwrap(), "alice").await;
    assert_eq!(web.get(&callback).await.header("location"), Some("/"));
    let replay = WebClient::new(&app);
    replay.set_cookie("magpie_oidc", &state_cookie);
    let page = flash_after(&replay, &replay.get(&callback).await).await;
    assert!(page.contains("expired or was already used"), "{page}");
    // A callback in a browser that did not start the sign-in (no state cookie): login CSRF.
    let victim = WebClient::new(&app);
    let start = WebClient::new(&app).get("/auth/oidc/start").await;
    let callback = sign_in_at_provider(start.header("location").unwrap(), "alice").await;
    let page = flash_after(&victim, &victim.get(&callback).await).await;
    assert!(page.contains("expired or was already used"), "{page}");
    // A token whose signature was tampered with on the way.
    *provider.tamper.lock().unwrap() = Tamper::Signature;
    let web = WebClient::new(&app);
    let page = flash_after(&web, &oidc_sign_in(&web, "alice").await).await;
    assert!(page.contains("ID token is not valid: bad signature"), "{page}");
    // A token that expired before it arrived (it lives 2 s; it is held back 3 s; no clock skew allowed).
    *provider.tamper.lock().unwrap() = Tamper::Delay(Duration::from_secs(3));
    let web = WebClient::new(&app);
    let page = flash_after(&web, &oidc_sign_in(&web, "alice").await).await;
    assert!(page.contains("ID token is not valid: expired"), "{page}");
    *provider.tamper.lock().unwrap() = Tamper::None;
    // A server configured with another issuer than the one the provider declares.
    let wrong =
        Config { oidc_issuer: Some(provider.issuer.replace("127.0.0.1", "localhost")), ..oidc_config(&provider) };
    let app = TestApp::sqlite_with(wrong).await;
    let web = WebClient::new(&app);
    let res = web.get("/auth/oidc/start").await;
    let page = flash_after(&web, &res).await;
    assert!(page.contains("issuer is not the configured one"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_only_mode_turns_passwords_off() {
    let Some(provider) = start_provider(&format!("{PUBLIC}/auth/oidc/callback"), 3600, "ada@example.com").await else {
        return;
    };
    for app in apps(Config { oidc_only: true, ..oidc_config(&provider) }).await {
        let app = &app;
        app.json(
            Method::POST,
            "/api/v1/auth/register",
            &json!({"email": "x@example.com", "password": "correct horse battery"}),
        )
        .await
        .assert_problem(403, "forbidden");
        app.json(
            Method::POST,
            "/api/v1/auth/login",
            &json!({"email": "x@example.com", "password": "correct horse battery"}),
        )
        .await
        .assert_problem(403, "forbidden");
        let methods = app.get("/api/v1/auth/methods").await.json();
        assert_eq!((methods["password"].clone(), methods["registration"].clone()), (json!(false), json!("closed")));
        let page = text(&app.send(Request::get("/signin").body(Body::empty()).unwrap()).await);
        assert!(!page.contains("name=\"password\""), "no password field: {page}");
        assert!(page.contains("Sign in with SSO"));
    }
}
