//! `magpie import` through the real binary: a file imports once and a re-import adds nothing; a process
//! killed mid-import (SIGKILL, no chance to clean up) leaves neither rows nor a batch behind, and the
//! database takes the next import normally.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use magpie_db::testing::TestDb;
use magpie_db::{Db, on_conn};

const BIN: &str = env!("CARGO_BIN_EXE_magpie");

fn magpie(dir: &Path, url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("MAGPIE_DATABASE_URL", url)
        .env("MAGPIE_BCRYPT_COST", "4")
        .env("MAGPIE_LOG_LEVEL", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CSV statement of `rows` distinct transactions.
fn csv(rows: usize) -> String {
    let mut out = String::from("Date,Description,Amount\n");
    for i in 0..rows {
        out.push_str(&format!(
            "2025-{:02}-{:02},CARD PAYMENT SHOP {i} LONDON,-{}.{:02}\n",
            i % 12 + 1,
            i % 28 + 1,
            i % 500 + 1,
            i % 100
        ));
    }
    out
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    let mut c = db.conn().await.unwrap();
    on_conn!(c.c(), c => sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *c).await.unwrap())
}

/// Whether another session is writing to `transactions` right now (an import has begun inserting).
async fn import_is_writing(test_db: &TestDb) -> bool {
    match &test_db.pg_schema {
        Some(schema) => {
            let mut c = test_db.db.conn().await.unwrap();
            on_conn!(c.c(), c => sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_locks l join pg_class r on r.oid = l.relation \
                 join pg_namespace n on n.oid = r.relnamespace \
                 where n.nspname = $1 and r.relname = 'transactions' and l.mode = 'RowExclusiveLock' \
                 and l.pid <> pg_backend_pid()",
            )
            .bind(schema)
            .fetch_one(&mut *c)
            .await
            .unwrap())
                > 0
        }
        // SQLite: the transaction's pages spill from the page cache into the write-ahead log.
        None => {
            let wal = format!("{}-wal", test_db.url.trim_start_matches("sqlite://"));
            std::fs::metadata(wal).map(|m| m.len() > 4 << 20).unwrap_or(false)
        }
    }
}

async fn killed_import_leaves_nothing(test_db: TestDb, dir: &Path) {
    let url = test_db.url_with_schema();
    ok(&magpie(dir, &url, &["user", "create", "--email", "kill@example.com"], "correct horse battery\n"));
    let big = dir.join("big.csv");
    std::fs::write(&big, csv(400_000)).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(["import", "--user", "kill@example.com", "--json"])
        .arg(&big)
        .env("MAGPIE_DATABASE_URL", &url)
        .env("MAGPIE_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if import_is_writing(&test_db).await {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import finished ({status}) before it could be interrupted");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the import never started writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let it write a little more, then kill it without warning.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the import finished before it could be interrupted");
    child.kill().unwrap();
    child.wait().unwrap();

    // PostgreSQL notices the dead client and rolls back; wait for its session to go.
    let deadline = Instant::now() + Duration::from_secs(30);
    while import_is_writing(&test_db).await && test_db.pg_schema.is_some() {
        assert!(Instant::now() < deadline, "the killed import's session is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reopen, as the next process would (SQLite discards the log's uncommitted frames).
    let db = Db::connect(&magpie_db::DbOptions::new(url.clone())).await.unwrap();
    assert_eq!(count(&db, "select count(*) from transactions").await, 0, "no rows of the killed import");
    assert_eq!(count(&db, "select count(*) from import_batches").await, 0, "no batch of the killed import");
    db.close().await;

    // The database takes the next import, and its re-import adds nothing.
    let small = dir.join("small.csv");
    std::fs::write(&small, csv(300)).unwrap();
    let args = ["import", "--user", "kill@example.com", "--json", small.to_str().unwrap()];
    let first: serde_json::Value = serde_json::from_str(ok(&magpie(dir, &url, &args, "")).trim()).unwrap();
    assert_eq!(first["imported"], 300, "{first}");
    let again: serde_json::Value = serde_json::from_str(ok(&magpie(dir, &url, &args, "")).trim()).unwrap();
    assert_eq!((again["imported"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(300)), "{again}");
    let db = Db::connect(&magpie_db::DbOptions::new(url)).await.unwrap();
    assert_eq!(count(&db, "select count(*) from transactions").await, 300);
    assert_eq!(count(&db, "select count(*) from import_batches").await, 2);
    db.close().await;
    drop(test_db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_way_leaves_no_partial_batch_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    killed_import_leaves_nothing(TestDb::sqlite().await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_way_leaves_no_partial_batch_on_postgres() {
    let Some(test_db) = TestDb::postgres().await else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_import_leaves_nothing(test_db, dir.path()).await;
}
