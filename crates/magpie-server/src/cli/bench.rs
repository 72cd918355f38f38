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
    /// The ledger with 100,000 transactions over three years (seed-demo): one page of 50 with a one-month
    /// filter and a one-year summary by category in-process, then the page over HTTP with `wrk`.
    Transactions(TransactionsArgs),
}

/// `magpie bench transactions` flags.
#[derive(Debug, Args)]
pub struct TransactionsArgs {
    /// Transactions to generate.
    #[arg(long, default_value_t = 100_000)]
    pub transactions: usize,
    /// In-process repetitions of each measured request.
    #[arg(long, default_value_t = 1_000)]
    pub iterations: usize,
    /// wrk connections (0 skips the HTTP run).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// wrk duration in seconds.
    #[arg(long, default_value_t = 15)]
    pub wrk_seconds: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
        BenchCommand::Transactions(args) => transactions(config, args).await,
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

/// A temporary SQLite database unless `--database-url` was given.
fn bench_database(config: &mut Config) -> anyhow::Result<Option<tempfile::TempDir>> {
    if config.database_url.is_some() {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    config.data_dir = dir.path().to_path_buf();
    Ok(Some(dir))
}

/// Register and sign in a throwaway user; returns (email, access token).
async fn bench_user(app: &axum::Router) -> anyhow::Result<(String, String)> {
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({"email": email, "password": "a benchmark password"}).to_string();
    for path in ["/api/v1/auth/register", "/api/v1/auth/login"] {
        let req =
            Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.clone()))?;
        let res = app.clone().oneshot(req).await?;
        anyhow::ensure!(res.status().is_success(), "{path}: {}", res.status());
        if path.ends_with("login") {
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            return Ok((email, v["access_token"].as_str().unwrap_or_default().to_owned()));
        }
    }
    unreachable!("the loop returns at login")
}

/// Latencies in ms of `n` GETs through the router, the path chosen per iteration.
async fn time_gets(
    app: &axum::Router,
    token: &str,
    n: usize,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let req = Request::get(path(i)).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty())?;
        let t = Instant::now();
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let _ = axum::body::to_bytes(res.into_body(), 64 << 20).await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status == 200, "GET returned {status}");
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// The month starts of the demo history, for spreading requests over it.
fn months_back(n: u32) -> Vec<(chrono::NaiveDate, chrono::NaiveDate)> {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let first = chrono::NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("valid");
    (1..=n)
        .map(|k| {
            let start = first - chrono::Months::new(k);
            (start, start + chrono::Months::new(1) - chrono::Days::new(1))
        })
        .collect()
}

async fn transactions(mut config: Config, args: TransactionsArgs) -> anyhow::Result<()> {
    let _tmp = bench_database(&mut config)?;
    config.bcrypt_cost = 4;
    let db = crate::app::open_database(&config).await?;
    let state = AppState::build(config.clone(), db.clone()).await?;
    let app = router(state.clone());
    let (email, token) = bench_user(&app).await?;
    let seeded = crate::cli::demo::seed(
        &db,
        &crate::cli::demo::SeedDemoArgs { user: email.clone(), transactions: args.transactions, months: 36, seed: 42 },
    )
    .await?;
    db.analyze().await?;
    let months = months_back(35);
    let page_path = |i: usize| {
        let (from, to) = months[i % months.len()];
        format!("/api/v1/transactions?from={from}&to={to}&limit=50")
    };
    // Warm up, then measure.
    time_gets(&app, &token, 50, page_path).await?;
    let page = time_gets(&app, &token, args.iterations, page_path).await?;
    let year_path = |_| {
        let (_, to) = months[0];
        let from = to - chrono::Months::new(12) + chrono::Days::new(1);
        format!("/api/v1/reports/summary?from={from}&to={to}&group_by=category")
    };
    time_gets(&app, &token, 5, year_path).await?;
    let summary = time_gets(&app, &token, (args.iterations / 10).max(20), year_path).await?;

    let wrk = if args.connections > 0 { run_wrk(state.clone(), &token, &months, &args).await? } else { None };

    let mut conn = db.conn().await?;
    if let Some(user) = magpie_db::users::find_by_email(conn.c(), &magpie_domain::Email::parse(&email)?).await? {
        magpie_db::users::delete(conn.c(), user.id).await?;
    }
    drop(conn);
    let engine = db.engine().as_str();
    db.close().await;
    let report = serde_json::json!({
        "engine": engine,
        "transactions": seeded,
        "page_of_50_one_month_ms": {"p50": percentile(&page, 0.5), "p95": percentile(&page, 0.95), "p99": percentile(&page, 0.99)},
        "one_year_summary_by_category_ms": {"p50": percentile(&summary, 0.5), "p95": percentile(&summary, 0.95), "max": summary.last()},
        "wrk": wrk,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("engine: {engine}, {seeded} transactions over 36 months");
        println!(
            "page of 50, one-month filter (in-process, {} requests): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            page.len(),
            percentile(&page, 0.5),
            percentile(&page, 0.95),
            percentile(&page, 0.99)
        );
        println!(
            "one-year summary by category ({} requests): p50 {:.2} ms, p95 {:.2} ms",
            summary.len(),
            percentile(&summary, 0.5),
            percentile(&summary, 0.95)
        );
        match &report["wrk"] {
            serde_json::Value::Null => println!("wrk: skipped (not installed, or --connections 0)"),
            w => println!(
                "HTTP with wrk, {} connections for {} s: {:.0} requests/s, p50 {} , p99 {}, errors {}",
                args.connections,
                args.wrk_seconds,
                w["requests_per_second"].as_f64().unwrap_or_default(),
                w["p50"].as_str().unwrap_or("?"),
                w["p99"].as_str().unwrap_or("?"),
                w["errors"]
            ),
        }
    }
    Ok(())
}

/// Serve the app on a free port and point `wrk` at the one-month page, cycling through the months.
async fn run_wrk(
    state: AppState,
    token: &str,
    months: &[(chrono::NaiveDate, chrono::NaiveDate)],
    args: &TransactionsArgs,
) -> anyhow::Result<Option<serde_json::Value>> {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::app::run_server(
        listener,
        router(state),
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let paths: Vec<String> =
        months.iter().map(|(from, to)| format!("\"/api/v1/transactions?from={from}&to={to}&limit=50\"")).collect();
    let script = format!(
        "local paths = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
        paths.join(", ")
    );
    let dir = tempfile::tempdir()?;
    let script_path = dir.path().join("pages.lua");
    std::fs::write(&script_path, script)?;
    let output = tokio::process::Command::new("wrk")
        .args(["-t", "2", "-c", &args.connections.to_string(), "-d", &format!("{}s", args.wrk_seconds), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}"), "-s"])
        .arg(&script_path)
        .arg(format!("http://{addr}/"))
        .output()
        .await?;
    let _ = stop_tx.send(());
    let _ = server.await;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.split_whitespace().next().unwrap_or("").to_owned()))
    };
    let rps: f64 = find("Requests/sec:").and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let errors =
        text.lines().filter(|l| l.contains("Non-2xx") || l.contains("Socket errors")).collect::<Vec<_>>().join("; ");
    Ok(Some(serde_json::json!({
        "requests_per_second": rps,
        "p50": find("50%"),
        "p99": find("99%"),
        "errors": if errors.is_empty() { "none".to_owned() } else { errors },
        "raw": text,
    })))
}
