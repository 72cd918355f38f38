//! `magpie bench`: performance figures measured on this machine, printed as text (or JSON). Each
//! performance target of the project has a bench here or in a crate's benches, and docs/benchmarks.md
//! records the figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use clap::{Args, Subcommand};
use tower::ServiceExt;

use crate::app::{AppState, router};
use crate::config::Config;

/// `magpie bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sign-in latency at the configured bcrypt cost, and requests/s of an authenticated no-op route
    /// (`GET /api/v1/auth/session`: token verification plus the session check), in-process.
    Auth(AuthArgs),
}

/// `magpie bench auth` flags.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Number of sign-ins to time.
    #[arg(long, default_value_t = 10)]
    pub logins: usize,
    /// Concurrent clients for the throughput run.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run a bench. Without `--database-url`, a temporary SQLite database is used and removed.
pub async fn run(config: Config, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Auth(args) => auth(config, args).await,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn auth(mut config: Config, args: AuthArgs) -> anyhow::Result<()> {
    let _tmp;
    if config.database_url.is_none() {
        let dir = tempfile::tempdir()?;
        config.data_dir = dir.path().to_path_buf();
        _tmp = dir;
    }
    config.login_max_failures_per_account = u32::MAX;
    let db = crate::app::open_database(&config).await?;
    let state = AppState::build(config.clone(), db.clone()).await?;
    let app = router(state.clone());
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "a benchmark password";
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let post = |path: &str, body: String| {
        Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).expect("request")
    };
    let res = app.clone().oneshot(post("/api/v1/auth/register", body.clone())).await?;
    anyhow::ensure!(res.status() == 201, "register failed: {}", res.status());

    let mut login_ms = Vec::new();
    let mut access = String::new();
    for _ in 0..args.logins {
        let started = Instant::now();
        let res = app.clone().oneshot(post("/api/v1/auth/login", body.clone())).await?;
        login_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(res.status() == 200, "login failed: {}", res.status());
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        access = v["access_token"].as_str().unwrap_or_default().to_owned();
    }
    login_ms.sort_by(f64::total_cmp);

    // Throughput of an authenticated route that does nothing but authenticate.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let started = Instant::now();
    for _ in 0..args.concurrency {
        let app = app.clone();
        let stop = stop.clone();
        let auth_header = format!("Bearer {access}");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get("/api/v1/auth/session")
                    .header(header::AUTHORIZATION, auth_header.as_str())
                    .body(Body::empty())
                    .expect("request");
                let t = Instant::now();
                let res = app.clone().oneshot(req).await.expect("infallible");
                assert_eq!(res.status(), 200);
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let rps = latencies.len() as f64 / elapsed;

    // Token verification alone (signature and claims), without the session lookup.
    let now = chrono::Utc::now().timestamp();
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(state.jwt.verify(std::hint::black_box(&access), now).is_ok());
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let engine = db.engine().as_str();
    let mut conn = db.conn().await?;
    if let Some(user) = magpie_db::users::find_by_email(conn.c(), &magpie_domain::Email::parse(&email)?).await? {
        magpie_db::users::delete(conn.c(), user.id).await?;
    }
    drop(conn);
    db.close().await;
    let report = serde_json::json!({
        "engine": engine,
        "bcrypt_cost": config.bcrypt_cost,
        "login_ms": {"p50": percentile(&login_ms, 0.5), "p95": percentile(&login_ms, 0.95), "max": login_ms.last()},
        "authenticated_noop": {
            "concurrency": args.concurrency,
            "requests": latencies.len(),
            "requests_per_second": rps,
            "latency_ms": {"p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99)},
        },
        "jwt_verify_microseconds": verify_us,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("engine: {engine}, bcrypt cost {}", config.bcrypt_cost);
        println!(
            "login: p50 {:.1} ms, p95 {:.1} ms over {} sign-ins",
            percentile(&login_ms, 0.5),
            percentile(&login_ms, 0.95),
            login_ms.len()
        );
        println!(
            "authenticated no-op (GET /api/v1/auth/session), {} concurrent: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
            args.concurrency,
            rps,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        println!("JWT verification alone: {verify_us:.2} µs");
    }
    Ok(())
}
