//! `TestApp`: the real router over a fresh database (SQLite, or PostgreSQL when configured), driven
//! in-process with `tower::ServiceExt::oneshot`.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use magpie_db::testing::TestDb;
use magpie_server::app::{AppState, router};
use magpie_server::config::{Config, Secret};
use serde_json::Value;
use tower::ServiceExt;

/// An app over its own database, with a bank emulator its providers point at.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub test_db: TestDb,
    /// The model store's folder, removed with the app.
    pub models: tempfile::TempDir,
    /// Plaid, SimpleFIN and GoCardless with fake banks.
    pub bank: magpie_sandbox::Running,
}

/// The key tests sign access tokens and cookies with.
pub const TEST_AUTH_SECRET: &str = "test-signing-key-0123456789abcdef0123456789";

/// The key tests seal bank tokens with.
pub const TEST_ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Point a configuration's providers at an emulator.
pub fn use_sandbox(config: &mut Config, bank: &magpie_sandbox::Running) {
    config.plaid_base_url = bank.plaid_url();
    config.plaid_client_id = Some("sandbox-client-id".into());
    config.plaid_secret = Some(Secret::new("sandbox-secret".into()));
    config.simplefin_allowed_hosts = bank.simplefin_host();
    config.gocardless_base_url = bank.gocardless_url();
    config.gocardless_secret_id = Some("sandbox-secret-id".into());
    config.gocardless_secret_key = Some(Secret::new("sandbox-secret-key".into()));
}

/// A registered, signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

/// A response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert a problem+json body with this status and type; returns the body.
    pub fn assert_problem(&self, status: u16, kind: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let body = self.json();
        assert_eq!(body["type"], format!("/problems/{kind}"), "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        body
    }
}

/// The configuration tests run with.
pub fn test_config() -> Config {
    // bcrypt's minimum cost keeps tests fast; the cost itself is a configuration value.
    // Jobs are run by the tests themselves (`jobs::run_pending`), so they are deterministic.
    Config {
        request_timeout_secs: 10,
        bcrypt_cost: 4,
        jobs_worker: false,
        encryption_key: Some(Secret::new(TEST_ENCRYPTION_KEY.into())),
        auth_secret: Some(Secret::new(TEST_AUTH_SECRET.into())),
        metrics_enabled: true,
        // Passkeys are offered (the software authenticator of `passkeys.rs` signs for this origin).
        public_url: Some(crate::passkeys::ORIGIN.into()),
        ..Config::default()
    }
}

impl TestApp {
    /// Over a fresh SQLite database.
    pub async fn sqlite() -> TestApp {
        Self::with(TestDb::sqlite().await, test_config()).await
    }

    /// Over a fresh PostgreSQL schema, when `MAGPIE_TEST_DATABASE_URL` is set.
    pub async fn postgres() -> Option<TestApp> {
        Some(Self::with(TestDb::postgres().await?, test_config()).await)
    }

    /// Over a fresh SQLite database, with a configuration of its own.
    pub async fn sqlite_with(config: Config) -> TestApp {
        Self::with(TestDb::sqlite().await, config).await
    }

    /// Over a fresh PostgreSQL schema with a configuration of its own, when configured.
    pub async fn postgres_with(config: Config) -> Option<TestApp> {
        Some(Self::with(TestDb::postgres().await?, config).await)
    }

    /// Over a given database and configuration (its model store is a folder of the app's own).
    pub async fn with(test_db: TestDb, mut config: Config) -> TestApp {
        crate::logs::install();
        let models = tempfile::tempdir().expect("model folder");
        config.model_store = Some(models.path().display().to_string());
        let bank = magpie_sandbox::Sandbox::new(magpie_sandbox::SandboxConfig {
            transactions_per_bank: 40,
            // Within a first sync's 90 days, so every generated row is fetched.
            history_days: 60,
            ..magpie_sandbox::SandboxConfig::default()
        })
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bank emulator");
        use_sandbox(&mut config, &bank);
        let state = AppState::build(config, test_db.db.clone()).await.expect("app state");
        TestApp { router: router(state.clone()), state, test_db, models, bank }
    }

    /// Send a request.
    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let res = self.router.clone().oneshot(req).await.expect("router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
        TestResponse { status, headers, body }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    /// A request with a JSON body.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// A request with a bearer token and an optional JSON body.
    pub async fn authed(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> TestResponse {
        let mut b =
            Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(b.body(body).unwrap()).await
    }

    /// Register an account; panics unless 201.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let res = self
            .json(Method::POST, "/api/v1/auth/register", &serde_json::json!({"email": email, "password": password}))
            .await;
        assert_eq!(res.status, 201, "register: {}", String::from_utf8_lossy(&res.body));
        res.json()
    }

    /// Sign in; returns the token response, panics unless 200.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let res = self
            .json(Method::POST, "/api/v1/auth/login", &serde_json::json!({"email": email, "password": password}))
            .await;
        assert_eq!(res.status, 200, "login: {}", String::from_utf8_lossy(&res.body));
        res.json()
    }

    /// A new signed-in user with a unique email.
    pub async fn user(&self) -> TestUser {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let registered = self.register(&email, &password).await;
        let tokens = self.login(&email, &password).await;
        TestUser {
            id: registered["id"].as_str().unwrap().to_owned(),
            email,
            password,
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Upload a file to `/api/v1/imports` with a query string.
    pub async fn import(&self, token: &str, query: &str, body: &[u8]) -> TestResponse {
        self.send(
            Request::post(format!("/api/v1/imports?{query}"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from(body.to_vec()))
                .unwrap(),
        )
        .await
    }

    /// A request with a raw body and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        self.send(b.body(body.into()).unwrap()).await
    }
}

/// Declares one async test run against a SQLite app and, when configured, a PostgreSQL app:
/// `app_test!(name, |app| { ... })` with `app: &TestApp`, or `app_test!(name, config = expr, |app| ...)`
/// with a configuration of its own.
#[macro_export]
macro_rules! app_test {
    ($name:ident, config = $config:expr, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let owned = $crate::support::TestApp::sqlite_with($config).await;
                let $app: &$crate::support::TestApp = &owned;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(owned) = $crate::support::TestApp::postgres_with($config).await else { return };
                let $app: &$crate::support::TestApp = &owned;
                $body
            }
        }
    };
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let owned = $crate::support::TestApp::sqlite().await;
                let $app: &$crate::support::TestApp = &owned;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(owned) = $crate::support::TestApp::postgres().await else { return };
                let $app: &$crate::support::TestApp = &owned;
                $body
            }
        }
    };
}
