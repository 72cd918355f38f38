//! `magpie bench sync`: a first sync of a bank with 10,000 transactions from the emulator, end to end:
//! `POST /api/v1/connections` (the provider confirms the credential), then the queued sync job over
//! HTTP from the emulator, reconciliation, categorization and the commit. Then the same sync again with
//! nothing new. Once per provider.

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, header};
use clap::Args;
use magpie_sandbox::{Sandbox, SandboxConfig};
use tower::ServiceExt;

use crate::app::{AppState, router};
use crate::config::{Config, Secret};

/// `magpie bench sync` flags.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Transactions of the fake bank.
    #[arg(long, default_value_t = 10_000)]
    pub transactions: usize,
    /// Providers to measure (comma-separated: plaid, simplefin, gocardless).
    #[arg(long, default_value = "plaid,simplefin,gocardless")]
    pub providers: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run the bench.
pub async fn run(mut config: Config, args: SyncArgs) -> anyhow::Result<()> {
    let _tmp = super::bench_database(&mut config)?;
    let models = tempfile::tempdir()?;
    let sandbox = Sandbox::new(SandboxConfig {
        transactions_per_bank: args.transactions,
        history_days: 730,
        ..SandboxConfig::default()
    })
    .start("127.0.0.1:0".parse()?)
    .await?;
    config.bcrypt_cost = 4;
    config.jobs_worker = false;
    config.sync_initial_days = 730;
    config.encryption_key = Some(Secret::new(crate::sealing::generate_key()));
    config.model_store = Some(models.path().display().to_string());
    config.plaid_base_url = sandbox.plaid_url();
    config.plaid_client_id = Some("sandbox-client-id".into());
    config.plaid_secret = Some(Secret::new("sandbox-secret".into()));
    config.simplefin_allowed_hosts = sandbox.simplefin_host();
    config.gocardless_base_url = sandbox.gocardless_url();
    config.gocardless_secret_id = Some("sandbox-secret-id".into());
    config.gocardless_secret_key = Some(Secret::new("sandbox-secret-key".into()));
    let db = crate::app::open_database(&config).await?;
    super::install_model(&config, &db, models.path()).await?;
    let state = AppState::build(config.clone(), db.clone()).await?;
    let app = router(state.clone());
    let mut results = serde_json::Map::new();
    if !args.json {
        println!("bench sync: {} transactions per bank, {} database", args.transactions, db.engine().as_str());
        println!(
            "{:<11} {:>8} {:>9} {:>11} {:>12} {:>10} {:>12}",
            "provider", "rows", "requests", "connect ms", "first sync s", "rows/s", "again ms"
        );
    }
    for provider in args.providers.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (_, token) = super::bench_user(&app).await?;
        let body = match provider {
            "plaid" => {
                serde_json::json!({"provider": "PLAID", "public_token": sandbox.sandbox.plaid_public_token(None).0})
            }
            "simplefin" => {
                serde_json::json!({"provider": "SIMPLEFIN", "setup_token": sandbox.sandbox.simplefin_setup_token().0})
            }
            "gocardless" => {
                let gc = state.bank.gocardless()?;
                let req = gc.create_requisition("SANDBOXFINANCE_SFIN0000", "http://localhost/back", "bench").await?;
                // The person's consent, as the bank's redirect would give it.
                follow_consent_link(&req.link.clone().unwrap_or_default()).await?;
                serde_json::json!({"provider": "GOCARDLESS", "requisition_id": req.id})
            }
            other => anyhow::bail!("unknown provider {other}"),
        };
        let started = Instant::now();
        let req = Request::post("/api/v1/connections")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))?;
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await?;
        anyhow::ensure!(status == 201, "POST /connections: {status} {}", String::from_utf8_lossy(&bytes));
        let created: serde_json::Value = serde_json::from_slice(&bytes)?;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        let id: magpie_domain::ConnectionId = serde_json::from_value(created["id"].clone())?;
        crate::jobs::run_pending(&state).await?;
        let first = started.elapsed().as_secs_f64();
        let rows = {
            let mut conn = db.conn().await?;
            magpie_db::sync::count_live(conn.c(), id).await?
        };
        anyhow::ensure!(
            rows as usize == args.transactions,
            "{provider}: {rows} rows synced, {} expected",
            args.transactions
        );
        {
            let mut conn = db.conn().await?;
            let c = magpie_db::connections::get_any(conn.c(), id).await?.ok_or_else(|| anyhow::anyhow!("gone"))?;
            anyhow::ensure!(c.last_sync.is_some(), "{provider}: the sync did not commit: {:?}", c.last_error);
        }
        let again_started = Instant::now();
        let again = crate::sync::run(&state, id, true, "bench").await?;
        let again_ms = again_started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(again.stats.is_some_and(|s| s.inserted == 0), "{provider}: the second sync added rows");
        let job: magpie_domain::JobId = serde_json::from_value(created["sync_job_id"].clone())?;
        let requests = {
            let mut conn = db.conn().await?;
            let job = magpie_db::jobs::get_any(conn.c(), job).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
            job.result.and_then(|r| r.0["requests"].as_u64()).unwrap_or(0)
        };
        let per_second = rows as f64 / first;
        if !args.json {
            println!(
                "{provider:<11} {rows:>8} {requests:>9} {connect_ms:>11.1} {first:>12.2} {per_second:>10.0} {again_ms:>12.1}"
            );
        }
        results.insert(
            provider.to_owned(),
            serde_json::json!({"rows": rows, "connect_ms": connect_ms, "first_sync_seconds": first,
                               "rows_per_second": per_second, "requests": requests, "second_sync_ms": again_ms, "target_seconds": 5.0,
                               "meets_target": first < 5.0}),
        );
    }
    if args.json {
        println!("{}", serde_json::Value::Object(results));
    }
    db.close().await;
    Ok(())
}

/// Follow a consent link (the emulator's consent page links the requisition and redirects).
async fn follow_consent_link(url: &str) -> anyhow::Result<()> {
    let url: axum::http::Uri = url.parse()?;
    let authority = url.authority().ok_or_else(|| anyhow::anyhow!("no host in {url}"))?.to_string();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&authority).await?;
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    anyhow::ensure!(response.starts_with(b"HTTP/1.1 302"), "the consent page did not redirect");
    Ok(())
}
