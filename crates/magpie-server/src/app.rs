//! The application: shared state, the router with its middleware, and the server loop with graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use magpie_db::Db;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Passwords;
use crate::config::Config;
use crate::http::middleware::{
    api_headers, enforce_timeout, limit_uploads, panic_to_problem, problem_safety_net, record_metrics, route_not_found,
};
use crate::http::request_id::{X_REQUEST_ID, assign_request_id};

/// What every handler can reach.
pub struct App {
    /// The configuration the server started with.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// Prometheus registry for `/metrics`.
    pub metrics: PrometheusHandle,
    /// Access-token signing key.
    pub jwt: JwtKeys,
    /// Password hashing at the configured cost.
    pub passwords: Passwords,
    /// Categorization: model store and cache.
    pub ml: crate::ml::Ml,
    /// Wakes this process's background worker when a job is queued.
    pub jobs_wakeup: crate::jobs::Wakeup,
    /// Forecast models in memory.
    pub forecast_cache: crate::forecasting::ArtifactCache,
    /// Bank providers and the keyring sealing their tokens.
    pub bank: crate::sync::BankSync,
    /// Recurring payments per user, while the ledger is unchanged.
    pub recurring_cache: crate::ledger_cache::LedgerCache<crate::api::insights::RecurringSnapshot>,
    /// The monthly totals forecasts are fitted on, per user, while the ledger is unchanged.
    pub series_cache: crate::ledger_cache::LedgerCache<(Vec<crate::forecasting::Series>, String)>,
    /// Recomputes those after a ledger changes.
    pub warmer: crate::ledger_cache::Warmer,
    /// Signs the web app's cookies and CSRF tokens.
    pub cookie_key: crate::web::session::CookieKey,
    /// The OpenID Connect provider, when one is configured.
    pub oidc: Option<crate::auth::oidc::OidcClient>,
}

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// State over a database with a configuration. The token signing key is the configured
    /// `auth_secret`, or else the key in `auth_secret_file` (generated there on first use).
    /// The encryption keys are the configured ones; none are generated (`magpie serve` does that).
    pub async fn build(config: Config, db: Db) -> anyhow::Result<AppState> {
        let keyring = crate::sealing::Keyring::from_config_existing(&config)?;
        Self::build_with_keyring(config, db, keyring).await
    }

    /// State with a given keyring.
    pub async fn build_with_keyring(
        config: Config,
        db: Db,
        keyring: crate::sealing::Keyring,
    ) -> anyhow::Result<AppState> {
        let secret = match &config.auth_secret {
            Some(secret) => secret.expose().clone(),
            None => crate::files::signing_key(&config.auth_secret_path())?,
        };
        let passwords = Passwords::new(config.bcrypt_cost);
        let ml = crate::ml::Ml::new(&config)?;
        Ok(AppState(Arc::new(App {
            jwt: JwtKeys::new(secret.as_bytes()),
            cookie_key: crate::web::session::CookieKey::derive(secret.as_bytes()),
            recurring_cache: Default::default(),
            series_cache: Default::default(),
            warmer: crate::ledger_cache::Warmer::default(),
            passwords,
            ml,
            jobs_wakeup: crate::jobs::Wakeup::default(),
            forecast_cache: crate::forecasting::ArtifactCache::default(),
            bank: crate::sync::BankSync::new(&config, keyring),
            oidc: crate::auth::oidc::OidcClient::from_config(&config),
            config,
            db,
            metrics: crate::telemetry::prometheus(),
        })))
    }
}

/// The complete router: API, system routes, OpenAPI document, the web app, middleware.
pub fn router(state: AppState) -> Router {
    let (routes, mut openapi) = crate::api::router().split_for_parts();
    crate::api::document_errors(&mut openapi);
    let openapi_json = Arc::new(openapi.to_pretty_json().expect("the OpenAPI document serializes"));
    let timeout = state.config.request_timeout();
    // The router-wide limit is the upload limit; JSON bodies are held to max_body_bytes by ApiJson.
    let body_limit = state.config.max_import_bytes.max(state.config.max_body_bytes);
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi_json.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.as_str().to_owned()) }
            }),
        )
        .merge(crate::web::router())
        .fallback(route_not_found)
        .with_state(state)
        // Listed outermost first. `Router::layer` wraps every route and the fallback, so the route's
        // MatchedPath is known to the metrics layer and axum's own 405s pass through the safety net.
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(assign_request_id))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let request_id =
                                req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id,
                                user_id = tracing::field::Empty,
                            )
                        })
                        .on_request(())
                        .on_response(|res: &axum::response::Response, latency: Duration, _span: &tracing::Span| {
                            let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
                            tracing::info!(status = res.status().as_u16(), latency_ms, "finished");
                        })
                        .on_failure(()),
                )
                .layer(from_fn(api_headers))
                .layer(from_fn(problem_safety_net))
                .layer(from_fn(record_metrics))
                .layer(CatchPanicLayer::custom(panic_to_problem))
                .layer(from_fn_with_state(timeout, enforce_timeout))
                .layer(from_fn(limit_uploads))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
}

/// Serve `router` on `listener` until `shutdown` resolves; then stop accepting, let in-flight requests
/// finish for up to `grace`, and return.
pub async fn run_server(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, waiting for in-flight requests");
            let _ = signalled_tx.send(true);
        });
    let grace_expired = async move {
        let _ = signalled_rx.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        () = grace_expired => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over: dropping unfinished requests");
            Ok(())
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// `magpie serve`: open and migrate the database, listen, serve until a signal, close the pool.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Everything under the data folder is the owner's alone (database, keys, models, uploads).
    crate::files::private_dir(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data folder {}: {e}", config.data_dir.display()))?;
    let db = open_database(&config).await?;
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen_addr))?;
    let addr = listener.local_addr()?;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    // The server seals bank tokens, so it needs a key: the configured one, or one generated on first
    // start. A stored token naming a key this server lacks stops it here, not at every sync.
    let keyring = crate::sealing::Keyring::from_config(&config)?;
    crate::sealing::check_stored_tokens(&db, &keyring).await?;
    let state = AppState::build_with_keyring(config, db.clone(), keyring).await?;
    let upkeep = crate::telemetry::spawn_metrics_upkeep(state.metrics.clone());
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = state.config.jobs_worker.then(|| tokio::spawn(crate::jobs::work(state.clone(), worker_stopped)));
    if state.config.ml_install_global_model {
        crate::ml::training::install_shipped_global_model(&state).await?;
    }
    tracing::info!(addr = %addr, engine = db.engine().as_str(), "listening on http://{addr}");
    run_server(listener, router(state), shutdown_signal(), grace).await?;
    // A job in progress finishes (within the grace period) before the pool closes.
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        let _ = tokio::time::timeout(grace, worker).await;
    }
    upkeep.abort();
    db.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Connect to the configured database and apply migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let opts = config.db_options();
    let engine = magpie_db::Engine::from_url(&opts.url)?;
    let db =
        Db::connect(&opts).await.map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", engine.as_str()))?;
    db.migrate().await.map_err(|e| anyhow::anyhow!("cannot migrate the database: {e}"))?;
    tracing::info!(engine = engine.as_str(), pool_size = opts.max_connections, "database ready");
    Ok(db)
}
