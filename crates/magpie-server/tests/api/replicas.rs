//! Real `magpie serve` processes: two replicas over one PostgreSQL share syncs, trainings and imports
//! with every job run exactly once and no write lost; a process killed with SIGKILL in the middle of an
//! import or a training leaves a consistent database, and the work completes exactly once after a
//! restart. (A kill in the middle of a sync: `sync_process.rs`.)

use std::time::Duration;

use magpie_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::binary::Server;
use crate::support::TEST_ENCRYPTION_KEY;
use crate::sync_process::{call, open_db, sign_in};

async fn scalar(db: &magpie_db::Db, sql: &str) -> i64 {
    let mut conn = db.conn().await.unwrap();
    let sql = sql.to_owned();
    magpie_db::on_conn!(conn.c(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *c).await.unwrap())
}

async fn jobs_settled(db: &magpie_db::Db) {
    for _ in 0..600 {
        if scalar(db, "select count(*) from jobs where status in ('QUEUED', 'RUNNING')").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the jobs did not finish");
}

fn statement(user: usize, rows: usize) -> String {
    let mut csv = String::from("Date,Description,Amount\n");
    for i in 0..rows {
        csv.push_str(&format!("2026-10-{:02},USER{user} SHOP {i},-{}.{:02}\n", 1 + i % 28, 1 + i % 90, i % 100));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_syncs_trainings_and_imports_with_each_job_run_once() {
    let Some(tdb) = magpie_db::testing::TestDb::postgres().await else {
        eprintln!("SKIPPED two_replicas_share_…: MAGPIE_TEST_DATABASE_URL is not set");
        return;
    };
    let bank = Sandbox::new(SandboxConfig { transactions_per_bank: 40, history_days: 60, ..SandboxConfig::default() })
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = tdb.url_with_schema();
    let hosts = bank.simplefin_host();
    let env = [
        ("MAGPIE_DATABASE_URL", url.as_str()),
        ("MAGPIE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
        ("MAGPIE_SIMPLEFIN_ALLOWED_HOSTS", hosts.as_str()),
        ("MAGPIE_BCRYPT_COST", "4"),
        ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false"),
    ];
    let servers = [Server::start(dir.path(), &["serve"], &env), Server::start(dir.path(), &["serve"], &env)];
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    magpie_sync::install_tls_provider();
    let http = reqwest::Client::new();
    const USERS: usize = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..USERS {
        let (http, urls) = (http.clone(), urls.clone());
        let setup = bank.sandbox.simplefin_setup_token().0;
        tasks.spawn(async move {
            let email = format!("replica-{u}@example.com");
            let token = sign_in(&http, &urls[u % 2], &email, true).await;
            // Writes alternate between the replicas.
            let mut ids = Vec::new();
            for i in 0..60 {
                let category = ["Groceries", "Dining", "Transportation"][i % 3];
                let body = json!({"amount": format!("{}.25", 3 + i), "date": "2026-11-02", "type": "EXPENSE",
                                  "description": format!("{category} place {i}"), "category": category});
                let (status, t) = call(
                    &http,
                    reqwest::Method::POST,
                    format!("{}/api/v1/transactions", urls[i % 2]),
                    Some(&token),
                    Some(body),
                )
                .await;
                assert_eq!(status, 201, "{t}");
                ids.push(t["id"].as_str().unwrap().to_owned());
            }
            let res = http
                .post(format!("{}/api/v1/imports?filename=u{u}.csv", urls[(u + 1) % 2]))
                .bearer_auth(&token)
                .header("content-type", "text/csv")
                .body(statement(u, 30))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
            let (status, c) = call(
                &http,
                reqwest::Method::POST,
                format!("{}/api/v1/connections", urls[0]),
                Some(&token),
                Some(json!({"provider": "SIMPLEFIN", "setup_token": setup})),
            )
            .await;
            assert_eq!(status, 201, "{c}");
            for base in &urls {
                let (status, j) =
                    call(&http, reqwest::Method::POST, format!("{base}/api/v1/models/train"), Some(&token), None).await;
                assert_eq!(status, 202, "{j}");
            }
            (email, token, ids)
        });
    }
    let users: Vec<(String, String, Vec<String>)> = tasks.join_all().await;
    let db = open_db(&url).await;
    jobs_settled(&db).await;

    // Every job ran once, to completion.
    let total = scalar(&db, "select count(*) from jobs").await;
    assert!(total >= 2 * USERS as i64, "{total} jobs");
    assert_eq!(scalar(&db, "select count(*) from jobs where status <> 'DONE'").await, 0, "every job is done");
    assert_eq!(scalar(&db, "select count(*) from jobs where attempts <> 1").await, 0, "none ran twice");
    assert_eq!(scalar(&db, "select count(*) from jobs where kind = 'sync_connection'").await, USERS as i64);
    // Each model a training registered is there once; the registry has one active model per user.
    let trainings =
        scalar(&db, "select count(*) from jobs where kind = 'train_categorizer' and result->>'model_id' is not null")
            .await;
    assert!(trainings >= USERS as i64, "every user got a model: {trainings}");
    assert_eq!(
        scalar(&db, "select count(*) from ml_models where model_type = 'CATEGORIZATION' and user_id is not null").await,
        trainings
    );
    assert_eq!(scalar(&db, "select count(*) from (select user_id from ml_models where is_active and user_id is not null and model_type = 'CATEGORIZATION' group by user_id having count(*) > 1) d").await, 0);
    // No write was lost: each user's 60 created, 30 imported and 40 synced transactions.
    for (email, token, ids) in &users {
        let (_, summary) = call(
            &http,
            reqwest::Method::GET,
            format!("{}/api/v1/reports/summary?from=2020-01-01&to=2030-12-31", urls[1]),
            Some(token),
            None,
        )
        .await;
        assert_eq!(summary["totals"]["count"], 130, "{email}: {summary}");
        for id in ids.iter().step_by(7) {
            let (status, _) =
                call(&http, reqwest::Method::GET, format!("{}/api/v1/transactions/{id}", urls[0]), Some(token), None)
                    .await;
            assert_eq!(status, 200);
        }
    }
    // Both replicas did some of the work, and no job appears in both logs.
    let job_ids: Vec<String> = {
        let mut conn = db.conn().await.unwrap();
        magpie_db::on_conn!(conn.c(), c => sqlx::query_scalar::<_, String>("select id::text from jobs").fetch_all(&mut *c).await.unwrap())
    };
    let logs: Vec<Vec<String>> = servers
        .into_iter()
        .map(|s| {
            let (ok, lines) = s.terminate();
            assert!(ok, "{}", lines.join("\n"));
            lines
        })
        .collect();
    let ran_by = |i: usize, id: &str| logs[i].iter().any(|l| l.contains("job done") && l.contains(id));
    let mut counts = [0, 0];
    for id in &job_ids {
        let (a, b) = (ran_by(0, id), ran_by(1, id));
        assert!(a != b, "job {id} ran in {} replicas", usize::from(a) + usize::from(b));
        counts[usize::from(b)] += 1;
    }
    assert!(counts[0] > 0 && counts[1] > 0, "both replicas worked: {counts:?}");
    db.close().await;
}

fn sqlite_env(db_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MAGPIE_DATABASE_URL", db_url.to_owned()),
        ("MAGPIE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY.to_owned()),
        ("MAGPIE_BCRYPT_COST", "4".to_owned()),
        ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false".to_owned()),
        ("MAGPIE_JOB_LEASE_SECS", "2".to_owned()),
        ("MAGPIE_REQUEST_TIMEOUT_SECS", "300".to_owned()),
    ]
}

fn start(dir: &std::path::Path, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(dir, &["serve"], &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_an_import_or_a_training_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("magpie.db").display());
    let env = sqlite_env(&db_url);
    magpie_sync::install_tls_provider();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();

    // An import killed in flight: nothing of it is in the database.
    let server = start(dir.path(), &env);
    let token = sign_in(&http, &server.url(), "crash@example.com", true).await;
    let big = statement(9, 150_000);
    let upload = {
        let (http, url, token, big) = (http.clone(), server.url(), token.clone(), big.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/api/v1/imports?filename=big.csv")).bearer_auth(token).body(big).send().await
        })
    };
    let db = open_db(&db_url).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(scalar(&db, "select count(*) from import_batches").await, 0, "the import was still running when killed");
    server.kill();
    assert!(upload.await.unwrap().is_err(), "the client saw the connection drop");
    assert_eq!(scalar(&db, "select count(*) from transactions").await, 0, "no partial import");
    assert_eq!(scalar(&db, "select count(*) from import_batches").await, 0);
    let integrity: String = {
        let mut conn = db.conn().await.unwrap();
        magpie_db::on_conn!(conn.c(), c => sqlx::query_scalar("pragma integrity_check").fetch_one(&mut *c).await.unwrap())
    };
    assert_eq!(integrity, "ok");

    // After a restart the same file imports completely, once.
    let server = start(dir.path(), &env);
    let token = sign_in(&http, &server.url(), "crash@example.com", false).await;
    let imported = |body: String| {
        let (http, url, token) = (http.clone(), server.url(), token.clone());
        async move {
            let res = http
                .post(format!("{url}/api/v1/imports?filename=big.csv"))
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(imported(big.clone()).await["imported"], 150_000);
    assert_eq!(imported(big).await["imported"], 0, "a second import of the file adds nothing");
    assert_eq!(scalar(&db, "select count(*) from transactions").await, 150_000);

    // A training killed while it runs: no model is registered; after the dead worker's lease the next
    // process runs the job again, and there is exactly one model.
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_magpie"));
    demo.current_dir(dir.path()).env("MAGPIE_LOG_LEVEL", "warn").args([
        "--database-url",
        &db_url,
        "seed-demo",
        "--user",
        "crash@example.com",
        "--transactions",
        "20000",
    ]);
    assert!(demo.status().unwrap().success());
    let (status, job) =
        call(&http, reqwest::Method::POST, format!("{}/api/v1/models/train", server.url()), Some(&token), None).await;
    assert_eq!(status, 202, "{job}");
    let mut running = false;
    for _ in 0..500 {
        if scalar(&db, "select count(*) from jobs where kind = 'train_categorizer' and status = 'RUNNING'").await == 1 {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running, "the training started");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();
    assert_eq!(
        scalar(&db, "select count(*) from jobs where kind = 'train_categorizer' and status = 'RUNNING'").await,
        1,
        "killed while running"
    );
    // Killed before the model was registered, or between registering it and recording the job as
    // done: either way at most one model, and a registered one has its file.
    let models_at_kill =
        scalar(&db, "select count(*) from ml_models where user_id is not null and model_type = 'CATEGORIZATION'").await;
    assert!(models_at_kill <= 1, "{models_at_kill} models");
    let server = start(dir.path(), &env);
    jobs_settled(&db).await;
    assert_eq!(
        scalar(&db, "select count(*) from jobs where kind = 'train_categorizer' and status = 'DONE' and attempts = 2")
            .await,
        1
    );
    assert_eq!(
        scalar(&db, "select count(*) from ml_models where user_id is not null and model_type = 'CATEGORIZATION'").await,
        1,
        "exactly one model"
    );
    let (_, models) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/models", server.url()), Some(&token), None).await;
    assert!(models.as_array().unwrap().iter().any(|m| m["is_active"] == true && m["global"] == false), "{models}");
    let (ok, logs) = server.terminate();
    assert!(ok, "{}", logs.join("\n"));
    db.close().await;
}

crate::app_test!(a_training_job_run_again_after_its_model_was_registered_makes_no_second_model, |app| {
    let user = app.user().await;
    let args =
        magpie_server::cli::demo::SeedDemoArgs { user: user.email.clone(), transactions: 600, months: 6, seed: 5 };
    magpie_server::cli::demo::seed(&app.test_db.db, &args).await.unwrap();
    for kind in ["models/train", "forecasts/train"] {
        let res = app.authed(axum::http::Method::POST, &format!("/api/v1/{kind}"), &user.access, None).await;
        assert_eq!(res.status, 202, "{kind}");
    }
    assert_eq!(magpie_server::jobs::run_pending(&app.state).await.unwrap(), 2);
    let models = "select count(*) from ml_models where user_id is not null";
    assert_eq!(scalar(&app.state.db, models).await, 2, "a categorizer and a forecast model");
    // The worker died after registering the models but before recording the jobs as done: the jobs
    // run again (as after their lease ran out) and find their models.
    let mut conn = app.state.db.conn().await.unwrap();
    magpie_db::on_conn!(conn.c(), c => sqlx::query("update jobs set status = 'QUEUED', finished_at = null where user_id is not null").execute(&mut *c).await.unwrap().rows_affected());
    drop(conn);
    assert_eq!(magpie_server::jobs::run_pending(&app.state).await.unwrap(), 2);
    assert_eq!(scalar(&app.state.db, models).await, 2, "no second model");
    assert_eq!(scalar(&app.state.db, "select count(*) from jobs where status = 'DONE' and attempts = 2").await, 2);
});
