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

mod dashboard;
mod sync;

/// `magpie bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sign-in latency at the configured bcrypt cost, and requests/s of an authenticated no-op route
    /// (`GET /api/v1/auth/session`: token verification plus the session check), in-process.
    Auth(AuthArgs),
    /// The ledger with 100,000 transactions over three years (seed-demo): one page of 50 with a one-month
    /// filter and a one-year summary by category in-process, then the page over HTTP with `wrk`.
    Transactions(TransactionsArgs),
    /// Statement import: parsing speed of CSV and OFX, a generated CSV imported end to end against the
    /// bare bulk insert of the same rows (multi-row INSERT on SQLite, COPY on PostgreSQL) into a fresh
    /// copy of the same table, peak memory, and re-importing already-imported rows.
    Import(ImportArgs),
    /// The categorizer: training time on 40,000 rows (the shipped training set's generator, or a
    /// labelled CSV with `--data`), single-transaction prediction latency, batch throughput, model
    /// file size.
    Ml(MlArgs),
    /// Budgets and goals with 100,000 transactions over three years (seed-demo): a monthly budget's
    /// status and a category-tracked goal with its projection, in-process through the router.
    Planning(PlanningArgs),
    /// Forecasts for a user with 100,000 transactions over three years in 30 spending categories:
    /// `GET /api/v1/forecasts?months=6` fitted for the request (no model yet), the training job, and
    /// the request again from the trained PREDICTION model.
    Forecast(ForecastArgs),
    /// Bank sync: a first sync of 10,000 transactions from the emulator per provider, end to end
    /// (linking, the sync job over HTTP, reconciliation, categorization, commit), and a second sync.
    Sync(sync::SyncArgs),
    /// The web dashboard for a user with 100,000 transactions (a budget, goals, the forecast, recurring
    /// payments, transactions to review), rendered in-process with a session cookie.
    Dashboard(dashboard::DashboardArgs),
}

/// `magpie bench forecast` flags.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Transactions to generate.
    #[arg(long, default_value_t = 100_000)]
    pub transactions: usize,
    /// Spending categories to spread them over.
    #[arg(long, default_value_t = 30)]
    pub categories: usize,
    /// Requests of each kind to time.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `magpie bench planning` flags.
#[derive(Debug, Args)]
pub struct PlanningArgs {
    /// Transactions to generate.
    #[arg(long, default_value_t = 100_000)]
    pub transactions: usize,
    /// Requests of each kind to time.
    #[arg(long, default_value_t = 500)]
    pub iterations: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `magpie bench ml` flags.
#[derive(Debug, Args)]
pub struct MlArgs {
    /// Train on this labelled CSV (`description,amount,date,type,category`) instead of generated rows.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    /// Generated training rows (when no `--data`).
    #[arg(long, default_value_t = 40_000)]
    pub rows: usize,
    /// Single predictions to time.
    #[arg(long, default_value_t = 20_000)]
    pub predictions: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `magpie bench import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Rows of the generated CSV file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Rows of the re-import run.
    #[arg(long, default_value_t = 100_000)]
    pub reimport_rows: usize,
    /// Only measure parsing (no database).
    #[arg(long)]
    pub parse_only: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
        BenchCommand::Import(args) => import_bench(config, args).await,
        BenchCommand::Ml(args) => tokio::task::spawn_blocking(move || ml_bench(&args)).await?,
        BenchCommand::Planning(args) => planning(config, args).await,
        BenchCommand::Forecast(args) => forecast_bench(config, args).await,
        BenchCommand::Sync(args) => sync::run(config, args).await,
        BenchCommand::Dashboard(args) => dashboard::run(config, args).await,
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

/// POST JSON through the router as the bench user; the answer's JSON (an error unless 2xx).
async fn post_json(
    app: &axum::Router,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let req = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))?;
    let res = app.clone().oneshot(req).await?;
    anyhow::ensure!(res.status().is_success(), "POST {path} returned {}", res.status());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Monthly allocations over the demo history's spending categories, for the benches' budgets.
fn demo_allocations() -> serde_json::Value {
    serde_json::json!({"Groceries": "600.00", "Dining": "300.00", "Coffee Shops": "60.00", "Transportation": "150.00",
                       "Shopping": "250.00", "Entertainment": "120.00", "Utilities": "220.00", "Rent": "1800.00",
                       "Subscriptions": "60.00", "Travel": "400.00"})
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
async fn planning(mut config: Config, args: PlanningArgs) -> anyhow::Result<()> {
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
    // What autovacuum does after a bulk insert (PostgreSQL's index-only scans need the visibility map).
    db.refresh_statistics().await?;
    // A budget for each of the last 12 months over the demo's spending categories, and a goal that
    // tracks groceries over the whole history.
    let months = months_back(12);
    let mut budgets = Vec::new();
    for (start, end) in &months {
        let b = post_json(
            &app,
            &token,
            "/api/v1/budgets",
            serde_json::json!({"name": "Monthly", "period_start": start.to_string(), "period_end": end.to_string(),
                "allocations": demo_allocations()}),
        )
        .await?;
        budgets.push(b["id"].as_str().unwrap_or_default().to_owned());
    }
    let start = months[months.len() - 1].0 - chrono::Months::new(24);
    let goal = post_json(
        &app,
        &token,
        "/api/v1/goals",
        serde_json::json!({"name": "Groceries tracked", "target_amount": "99999999.00", "category": "Groceries",
            "tracking_start": start.to_string(), "deadline": "2030-12-31"}),
    )
    .await?;
    let goal_id = goal["id"].as_str().unwrap_or_default().to_owned();
    post_json(&app, &token, &format!("/api/v1/goals/{goal_id}/contributions"), serde_json::json!({"amount": "100.00"}))
        .await?;
    let status_path = |i: usize| {
        let (start, end) = months[i % months.len()];
        let mid = start + chrono::Days::new(((end - start).num_days() / 2) as u64);
        format!("/api/v1/budgets/{}/status?as_of={mid}", budgets[i % budgets.len()])
    };
    time_gets(&app, &token, 20, status_path).await?;
    let status = time_gets(&app, &token, args.iterations, status_path).await?;
    let goal_path = |_| format!("/api/v1/goals/{goal_id}");
    time_gets(&app, &token, 20, goal_path).await?;
    let goal_times = time_gets(&app, &token, args.iterations, goal_path).await?;
    // Recomputing the tracked goal is what every change to a transaction pays.
    let edit = post_json(
        &app,
        &token,
        "/api/v1/transactions",
        serde_json::json!({"amount": "12.00", "date": start.to_string(), "description": "bench", "type": "EXPENSE", "category": "Groceries"}),
    );
    let t = Instant::now();
    edit.await?;
    let create_ms = t.elapsed().as_secs_f64() * 1000.0;

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
        "budget_status_ms": {"p50": percentile(&status, 0.5), "p95": percentile(&status, 0.95), "p99": percentile(&status, 0.99)},
        "goal_with_projection_ms": {"p50": percentile(&goal_times, 0.5), "p95": percentile(&goal_times, 0.95), "p99": percentile(&goal_times, 0.99)},
        "create_transaction_with_tracked_goal_ms": create_ms,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("engine: {engine}, {seeded} transactions over 36 months");
        println!(
            "budget status (10 categories, {} requests): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            status.len(),
            percentile(&status, 0.5),
            percentile(&status, 0.95),
            percentile(&status, 0.99)
        );
        println!(
            "goal tracking groceries over 3 years, with its projection ({} requests): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            goal_times.len(),
            percentile(&goal_times, 0.5),
            percentile(&goal_times, 0.95),
            percentile(&goal_times, 0.99)
        );
        println!("creating a transaction (recomputes the tracked goal): {create_ms:.2} ms");
    }
    Ok(())
}

async fn forecast_bench(mut config: Config, args: ForecastArgs) -> anyhow::Result<()> {
    let _tmp = bench_database(&mut config)?;
    config.bcrypt_cost = 4;
    let db = crate::app::open_database(&config).await?;
    let models = tempfile::tempdir()?;
    config.model_store = Some(models.path().display().to_string());
    let state = AppState::build(config.clone(), db.clone()).await?;
    let app = router(state.clone());
    let (email, token) = bench_user(&app).await?;
    let user = {
        let mut conn = db.conn().await?;
        magpie_db::users::find_by_email(conn.c(), &magpie_domain::Email::parse(&email)?)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the bench user"))?
            .id
    };
    // The demo history, its spending spread over `categories` categories: the demo's own, and the
    // busiest split by merchant until there are enough.
    let history = magpie_demo::generate(magpie_demo::DemoSpec {
        transactions: args.transactions,
        end: chrono::Utc::now().date_naive(),
        months: 36,
        seed: 42,
    });
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in history.iter().filter(|t| t.kind == magpie_domain::TransactionType::Expense) {
        *counts.entry(t.category).or_default() += 1;
    }
    let mut busiest: Vec<(&str, usize)> = counts.iter().map(|(c, n)| (*c, *n)).collect();
    busiest.sort_by_key(|b| std::cmp::Reverse(b.1));
    let splits = args.categories.saturating_sub(counts.len());
    let split: std::collections::HashSet<&str> = busiest.iter().take(splits).map(|(c, _)| *c).collect();
    let rows: Vec<magpie_db::transactions::NewTransaction> = history
        .into_iter()
        .map(|t| {
            let odd = magpie_ml::text::merchant_key(&t.description).len() % 2 == 1;
            let category = if split.contains(t.category) && odd {
                format!("{} (other)", t.category)
            } else {
                t.category.to_owned()
            };
            Ok(magpie_db::transactions::NewTransaction {
                amount: t.amount,
                date: t.date,
                description: t.description,
                category: magpie_domain::Category::parse(&category)?,
                kind: t.kind,
                source: magpie_domain::Source::Manual,
                confidence_score: None,
                category_source: magpie_domain::CategorySource::User,
                connection_id: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let inserted = rows.len();
    let mut tx = db.begin().await?;
    magpie_db::transactions::insert_many(tx.c(), user, &rows).await?;
    tx.commit().await?;
    drop(rows);
    db.analyze().await?;
    db.refresh_statistics().await?;
    let path = |_| "/api/v1/forecasts?months=6".to_owned();
    // Without a model: fitted for each request (each also queues the training, once).
    time_gets(&app, &token, 2, path).await?;
    let fresh = time_gets(&app, &token, args.iterations, path).await?;
    let t = Instant::now();
    crate::jobs::run_pending(&state).await?;
    let train_ms = t.elapsed().as_secs_f64() * 1000.0;
    time_gets(&app, &token, 2, path).await?;
    let from_model = time_gets(&app, &token, args.iterations, path).await?;
    let req = Request::get("/api/v1/forecasts?months=6")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())?;
    let res = app.clone().oneshot(req).await?;
    let body: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 8 << 20).await?)?;
    let categories = body["categories"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(!body["model_id"].is_null(), "the trained model was not used");

    let mut conn = db.conn().await?;
    magpie_db::users::delete(conn.c(), user).await?;
    drop(conn);
    let engine = db.engine().as_str();
    db.close().await;
    let report = serde_json::json!({
        "engine": engine,
        "transactions": inserted,
        "categories_forecast": categories,
        "forecast_fitted_per_request_ms": {"p50": percentile(&fresh, 0.5), "p95": percentile(&fresh, 0.95), "max": fresh.last()},
        "training_job_ms": train_ms,
        "forecast_from_model_ms": {"p50": percentile(&from_model, 0.5), "p95": percentile(&from_model, 0.95), "max": from_model.last()},
    });
    if args.json {
        println!("{report}");
    } else {
        println!("engine: {engine}, {inserted} transactions over 36 months, {categories} spending categories forecast");
        println!(
            "6-month forecasts of every category, fitted for the request: p50 {:.1} ms, p95 {:.1} ms",
            percentile(&fresh, 0.5),
            percentile(&fresh, 0.95)
        );
        println!("training the PREDICTION model (with its out-of-sample backtest): {train_ms:.0} ms");
        println!(
            "the same from the trained model: p50 {:.1} ms, p95 {:.1} ms",
            percentile(&from_model, 0.5),
            percentile(&from_model, 0.95)
        );
    }
    Ok(())
}

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

/// A realistic CSV export of `rows` transactions (seed-demo history, bank-style descriptions).
fn generated_csv(rows: usize, seed: u64) -> Vec<u8> {
    let history = magpie_demo::generate(magpie_demo::DemoSpec {
        transactions: rows,
        end: chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("valid"),
        months: 36,
        seed,
    });
    let mut out = String::with_capacity(rows * 56);
    out.push_str("Date,Description,Amount\n");
    for t in history.iter().take(rows) {
        let sign = if t.kind == magpie_domain::TransactionType::Expense { "-" } else { "" };
        out.push_str(&format!("{},{},{sign}{}\n", t.date, t.description.replace(',', " "), t.amount));
    }
    out.into_bytes()
}

/// A bank OFX statement with `rows` transactions.
fn generated_ofx(rows: usize) -> Vec<u8> {
    let history = magpie_demo::generate(magpie_demo::DemoSpec {
        transactions: rows,
        end: chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("valid"),
        months: 36,
        seed: 9,
    });
    let mut out = String::from(
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nCHARSET:1252\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD\n<BANKACCTFROM><BANKID>121000248<ACCTID>1234567890<ACCTTYPE>CHECKING</BANKACCTFROM>\n<BANKTRANLIST>\n",
    );
    for (i, t) in history.iter().take(rows).enumerate() {
        let sign = if t.kind == magpie_domain::TransactionType::Expense { "-" } else { "" };
        out.push_str(&format!(
            "<STMTTRN>\n<TRNTYPE>{}\n<DTPOSTED>{}120000.000[-5:EST]\n<TRNAMT>{sign}{}\n<FITID>{:012}\n<NAME>{}\n</STMTTRN>\n",
            if sign.is_empty() { "CREDIT" } else { "DEBIT" },
            t.date.format("%Y%m%d"),
            t.amount,
            i,
            t.description.replace('&', "&amp;").replace('<', "&lt;"),
        ));
    }
    out.push_str("</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n");
    out.into_bytes()
}

/// Peak resident memory of a process so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Run `magpie import --json` on `csv` against `url` in a child process: (wall seconds, rows imported,
/// peak resident MiB). The peak is read from /proc while the child runs (it is a high-water mark, so a
/// read after the peak sees it); a zombie child keeps its /proc entry until it is reaped.
async fn import_in_child(url: &str, csv: &[u8], models: &std::path::Path) -> anyhow::Result<(f64, usize, f64)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.csv");
    std::fs::write(&file, csv)?;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["import", "--json", "--log-level", "warn", "--user", "import@bench.invalid", "--database-url", url])
        .arg(&file)
        .env("MAGPIE_MODEL_STORE", models)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the import process exited at once"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = tokio::spawn(async move {
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await.map(|_| out)
    });
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(mib) = peak_rss_mib(pid) {
            peak = peak.max(mib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = t.elapsed().as_secs_f64();
    let out = reader.await??;
    anyhow::ensure!(status.success(), "magpie import failed: {status}");
    let report: serde_json::Value = serde_json::from_str(out.trim())?;
    let imported = report["imported"].as_u64().ok_or_else(|| anyhow::anyhow!("no report: {out}"))? as usize;
    Ok((secs, imported, peak))
}

/// Register the shipped global model in `db`, its file in `models`.
async fn install_model(config: &Config, db: &magpie_db::Db, models: &std::path::Path) -> anyhow::Result<()> {
    let config = Config { model_store: Some(models.display().to_string()), ..config.clone() };
    let state = AppState::build(config, db.clone()).await?;
    crate::ml::training::install_shipped_global_model(&state).await?;
    Ok(())
}

async fn bench_user_in(db: &magpie_db::Db, email: &str) -> anyhow::Result<magpie_domain::UserId> {
    let mut conn = db.conn().await?;
    let user = magpie_db::users::create(
        conn.c(),
        &magpie_db::users::NewUser {
            email: magpie_domain::Email::parse(email)?,
            password_hash: magpie_domain::PasswordHash::new("bench"),
            first_name: None,
            last_name: None,
        },
    )
    .await?;
    Ok(user.id)
}

async fn import_bench(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    use crate::import::{self, ImportRequest, Reader};
    let base = config.db_options();
    let mut report = serde_json::Map::new();
    report.insert("engine".into(), serde_json::json!(magpie_db::Engine::from_url(&base.url)?.as_str()));

    // Parsing speed, no database: the streaming CSV reader the importer uses, and the whole-file OFX
    // parser.
    let csv = generated_csv(args.rows, 42);
    let csv_mb = csv.len() as f64 / 1e6;
    // Median of three timed runs after a warm-up, as criterion would: the first pass over a fresh
    // allocation pays for page faults that a long-running server has already paid.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let csv_pass = |csv: &[u8]| -> anyhow::Result<(usize, f64)> {
        let t = Instant::now();
        let options = magpie_import::csv::CsvOptions::default();
        let (text, _) = magpie_import::csv::decode(csv, &options);
        let layout = magpie_import::csv::detect_layout(&text, &options)?;
        let mut rows = 0usize;
        for item in magpie_import::csv::Rows::new(&text, layout) {
            if let magpie_import::csv::Item::Row(r) = item? {
                rows += 1;
                std::hint::black_box(&r);
            }
        }
        Ok((rows, t.elapsed().as_secs_f64()))
    };
    let (csv_rows, _) = csv_pass(&csv)?;
    anyhow::ensure!(csv_rows >= args.rows * 99 / 100, "the CSV parse lost rows");
    let csv_secs = median((0..3).map(|_| csv_pass(&csv).map(|r| r.1)).collect::<anyhow::Result<_>>()?);
    let ofx = generated_ofx(args.rows / 5);
    let ofx_pass = |ofx: &[u8]| -> anyhow::Result<f64> {
        let t = Instant::now();
        let parsed = magpie_import::parse(ofx, &magpie_import::Options::default(), Some("bench.ofx"))?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(parsed.row_count() == args.rows / 5, "the OFX parse lost rows");
        Ok(secs)
    };
    ofx_pass(&ofx)?;
    let ofx_secs = median((0..3).map(|_| ofx_pass(&ofx)).collect::<anyhow::Result<_>>()?);
    let ofx_mb = ofx.len() as f64 / 1e6;
    drop(ofx);
    report.insert(
        "parse".into(),
        serde_json::json!({
            "csv_mb": csv_mb, "csv_rows": csv_rows, "csv_mb_per_s": csv_mb / csv_secs,
            "ofx_mb": ofx_mb, "ofx_mb_per_s": ofx_mb / ofx_secs,
        }),
    );
    if args.parse_only {
        println!("{}", serde_json::Value::Object(report));
        return Ok(());
    }

    // End to end: parse, dedup, insert, one transaction, into a fresh database, by `magpie import` in a
    // child process, so the peak memory is that of an import alone (this process holds the generated
    // data and whatever its allocator kept from the parse runs).
    let (db_import, opts_import) = magpie_db::Db::scratch(&base, "import").await?;
    let import_user = bench_user_in(&db_import, "import@bench.invalid").await?;
    // Categorization is part of an import: the shipped global model is there, as on a real instance.
    let models = tempfile::tempdir()?;
    install_model(&config, &db_import, models.path()).await?;
    db_import.close().await;
    let (import_secs, imported, peak) = import_in_child(&opts_import.url, &csv, models.path()).await?;
    anyhow::ensure!(imported >= args.rows * 99 / 100, "only {imported} rows imported");
    let db_import = magpie_db::Db::connect(&opts_import).await?;
    // The rows were categorized on the way in (by the shipped global model).
    let by_model = {
        let mut conn = db_import.conn().await?;
        magpie_db::transactions::count_categorized_by(conn.c(), import_user, magpie_domain::CategorySource::Model)
            .await?
    };
    anyhow::ensure!(by_model as usize >= imported / 2, "only {by_model} of {imported} rows were categorized");
    db_import.drop_scratch(&base, &opts_import).await?;
    let request = ImportRequest { filename: Some("bench.csv".into()), ..ImportRequest::default() };

    // The bare bulk insert of the same rows (keys computed beforehand, outside the clock) into a fresh
    // copy of the same table.
    let mut holder = None;
    let rows = Reader::open(&csv, &request, &mut holder)?.all_rows()?;
    let (db_bare, opts_bare) = magpie_db::Db::scratch(&base, "bare").await?;
    let bare_user = bench_user_in(&db_bare, "bare@bench.invalid").await?;
    let t = Instant::now();
    let mut tx = db_bare.begin().await?;
    // The same rows: they belong to a batch, as imported rows do.
    let batch = magpie_db::imports::create_batch(tx.c(), bare_user, Some("bench.csv"), "csv", Some("UTF-8")).await?;
    // All rows in one call: one COPY on PostgreSQL, 1,000-row INSERTs on SQLite.
    let bare_rows = magpie_db::imports::insert_imported(tx.c(), bare_user, Some(batch.id), &rows).await?;
    tx.commit().await?;
    let bare_secs = t.elapsed().as_secs_f64();
    drop(rows);
    db_bare.drop_scratch(&base, &opts_bare).await?;
    let import_rps = imported as f64 / import_secs;
    let bare_rps = bare_rows as f64 / bare_secs;
    report.insert(
        "import".into(),
        serde_json::json!({
            "rows": imported,
            "seconds": import_secs,
            "rows_per_s": import_rps,
            "bare_insert_rows_per_s": bare_rps,
            "ratio_to_bare": import_rps / bare_rps,
            "peak_rss_mib": peak,
            "categorized_by_model": by_model,
        }),
    );

    // Re-import of rows that are all in the ledger already.
    let small = generated_csv(args.reimport_rows, 7);
    let (db_re, opts_re) = magpie_db::Db::scratch(&base, "reimport").await?;
    let re_user = bench_user_in(&db_re, "re@bench.invalid").await?;
    let re_models = tempfile::tempdir()?;
    install_model(&config, &db_re, re_models.path()).await?;
    let ml =
        crate::ml::Ml::new(&Config { model_store: Some(re_models.path().display().to_string()), ..config.clone() })?;
    let first = import::run(&db_re, &ml, re_user, small.clone().into(), &request, |_| {}).await?;
    // A re-import comes days after the first: by then autovacuum has done its pass over the new rows.
    db_re.refresh_statistics().await?;
    let t = Instant::now();
    let second = import::run(&db_re, &ml, re_user, small.clone().into(), &request, |_| {}).await?;
    let re_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(second.imported == 0 && second.duplicates == first.imported, "re-import was not a no-op");
    db_re.drop_scratch(&base, &opts_re).await?;
    report.insert(
        "reimport".into(),
        serde_json::json!({"rows": second.duplicates, "rows_per_s": second.duplicates as f64 / re_secs}),
    );

    let report = serde_json::Value::Object(report);
    if args.json {
        println!("{report}");
    } else {
        let p = &report["parse"];
        let i = &report["import"];
        println!("engine: {}", report["engine"].as_str().unwrap_or(""));
        println!(
            "parse: CSV {:.1} MB at {:.0} MB/s; OFX {:.1} MB at {:.0} MB/s",
            p["csv_mb"].as_f64().unwrap_or(0.0),
            p["csv_mb_per_s"].as_f64().unwrap_or(0.0),
            p["ofx_mb"].as_f64().unwrap_or(0.0),
            p["ofx_mb_per_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "import of {} CSV rows: {:.1} s, {:.0} rows/s; bare insert {:.0} rows/s; ratio {:.2}; peak RSS {:.0} MiB",
            i["rows"],
            i["seconds"].as_f64().unwrap_or(0.0),
            i["rows_per_s"].as_f64().unwrap_or(0.0),
            i["bare_insert_rows_per_s"].as_f64().unwrap_or(0.0),
            i["ratio_to_bare"].as_f64().unwrap_or(0.0),
            i["peak_rss_mib"].as_f64().unwrap_or(0.0)
        );
        println!(
            "re-import of {} rows: {:.0} rows/s",
            report["reimport"]["rows"],
            report["reimport"]["rows_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// The categorizer's figures (no database).
fn ml_bench(args: &MlArgs) -> anyhow::Result<()> {
    use magpie_ml::{Categorizer, Example, TrainConfig, Workspace, global};
    // Training rows: owned text, then borrowed examples.
    let (texts, cents, directions, labels, source): (Vec<String>, Vec<Option<i64>>, Vec<_>, Vec<String>, String) =
        match &args.data {
            Some(path) => {
                let rows = magpie_ml::eval::load_csv(path).map_err(|e| anyhow::anyhow!(e))?;
                let n = rows.len().min(args.rows);
                (
                    rows[..n].iter().map(|r| r.description.clone()).collect(),
                    rows[..n].iter().map(|r| r.amount_cents).collect(),
                    rows[..n].iter().map(|r| r.direction).collect(),
                    rows[..n].iter().map(|r| r.category.clone()).collect(),
                    path.display().to_string(),
                )
            }
            None => {
                let per = args.rows.div_ceil(global::categories().count());
                let rows = global::training_set(per, 3);
                let n = rows.len().min(args.rows);
                (
                    rows[..n].iter().map(|r| r.text.clone()).collect(),
                    rows[..n].iter().map(|r| Some(r.amount_cents)).collect(),
                    rows[..n].iter().map(|r| Some(r.direction)).collect(),
                    rows[..n].iter().map(|r| r.category.to_owned()).collect(),
                    "generated bank strings (the global training set's generator)".to_owned(),
                )
            }
        };
    let examples: Vec<Example<'_>> = (0..texts.len())
        .map(|i| Example { text: &texts[i], amount_cents: cents[i], direction: directions[i], date: None, extra: None })
        .collect();
    let targets: Vec<&str> = labels.iter().map(String::as_str).collect();
    let t = Instant::now();
    let (model, selection) = Categorizer::train_with_selection(&examples, &targets, &TrainConfig::default())?;
    let train_secs = t.elapsed().as_secs_f64();
    let bytes = model.to_bytes();
    let t = Instant::now();
    let loaded = Categorizer::from_bytes(&bytes)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    // One at a time, as a request categorizes one manual transaction: a warm per-thread workspace.
    let probe = global::training_set(20, 77);
    let mut ws = Workspace::default();
    let mut lat: Vec<f64> = Vec::with_capacity(args.predictions);
    for r in probe.iter().cycle().take(args.predictions) {
        let ex = r.example();
        let t = Instant::now();
        std::hint::black_box(loaded.predict(&ex, &mut ws));
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    // Batch throughput on one thread (an import categorizes on its reading thread).
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed() < Duration::from_secs(1) {
        for r in &probe {
            std::hint::black_box(loaded.predict(&r.example(), &mut ws));
            n += 1;
        }
    }
    let rows_per_s = n as f64 / t.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "training_rows": examples.len(),
        "classes": model.classes(),
        "source": source,
        "train_seconds": train_secs,
        "chosen": selection.chosen,
        "held_out_accuracy": model.held_out.map(|m| m.accuracy),
        "model_bytes": bytes.len(),
        "load_ms": load_ms,
        "predict_us_p50": percentile(&lat, 0.5),
        "predict_us_p99": percentile(&lat, 0.99),
        "predict_rows_per_s_one_thread": rows_per_s,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "trained on {} rows ({} classes, {}) in {:.2} s; held-out accuracy {}\n\
             model file {:.2} MB, loaded in {:.1} ms\n\
             one prediction: p50 {:.1} µs, p99 {:.1} µs; batch {:.0} rows/s on one thread",
            examples.len(),
            model.classes(),
            source,
            train_secs,
            model.held_out.map_or("-".to_owned(), |m| format!("{:.4}", m.accuracy)),
            bytes.len() as f64 / 1e6,
            load_ms,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            rows_per_s
        );
    }
    Ok(())
}
