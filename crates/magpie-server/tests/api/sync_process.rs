//! Bank sync across real processes: a `magpie serve` killed in the middle of a sync leaves nothing
//! half-written and the next process completes the sync; `magpie keys rotate` re-seals tokens; a server
//! refuses to start when a stored token names a key it does not have.

use std::str::FromStr;
use std::time::Duration;

use magpie_domain::{BankProvider, ConnectionId};
use magpie_sandbox::{Sandbox, SandboxConfig};
use magpie_server::sealing::{self, Keyring};
use serde_json::{Value, json};

use crate::binary::Server;
use crate::support::TEST_ENCRYPTION_KEY;

const BIN: &str = env!("CARGO_BIN_EXE_magpie");

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) async fn sign_in(http: &reqwest::Client, base: &str, email: &str, register: bool) -> String {
    let creds = json!({"email": email, "password": "a long test password"});
    if register {
        let (status, body) =
            call(http, reqwest::Method::POST, format!("{base}/api/v1/auth/register"), None, Some(creds.clone())).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) =
        call(http, reqwest::Method::POST, format!("{base}/api/v1/auth/login"), None, Some(creds)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Link a new fake Plaid bank through the server at `base`; returns the connection id.
async fn link_plaid(http: &reqwest::Client, base: &str, token: &str, bank: &magpie_sandbox::Running) -> String {
    let (public, _) = bank.sandbox.plaid_public_token(None);
    let body = json!({"provider": "PLAID", "public_token": public});
    let (status, created) =
        call(http, reqwest::Method::POST, format!("{base}/api/v1/connections"), Some(token), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Wait until the emulator has served `n` `/transactions/sync` pages.
async fn wait_for_pages(bank: &magpie_sandbox::Running, n: u64) {
    for _ in 0..200 {
        if bank.sandbox.hits("plaid /transactions/sync") >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sync did not start");
}

pub(crate) async fn open_db(url: &str) -> magpie_db::Db {
    magpie_db::Db::connect(&magpie_db::DbOptions::new(url)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_sync_leaves_no_partial_page_and_the_next_one_completes() {
    let bank =
        Sandbox::new(SandboxConfig { transactions_per_bank: 1500, history_days: 60, ..SandboxConfig::default() })
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    bank.sandbox.with(|w| w.page_delay_ms = 400);
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("magpie.db").display());
    let plaid_url = bank.plaid_url();
    let env = [
        ("MAGPIE_DATABASE_URL", db_url.as_str()),
        ("MAGPIE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
        ("MAGPIE_PLAID_BASE_URL", plaid_url.as_str()),
        ("MAGPIE_PLAID_CLIENT_ID", "sandbox-client-id"),
        ("MAGPIE_PLAID_SECRET", "sandbox-secret"),
        ("MAGPIE_SYNC_LEASE_SECS", "3"),
        ("MAGPIE_BCRYPT_COST", "4"),
        ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false"),
    ];
    let http = reqwest::Client::new();
    let first = Server::start(dir.path(), &["serve"], &env);
    let token = sign_in(&http, &first.url(), "killed@example.com", true).await;
    let id = link_plaid(&http, &first.url(), &token, &bank).await;
    // The worker starts the first sync at once; kill the process between its pages.
    wait_for_pages(&bank, 2).await;
    first.kill();
    let db = open_db(&db_url).await;
    let connection_id = ConnectionId::from_str(&id).unwrap();
    let mut conn = db.conn().await.unwrap();
    assert_eq!(magpie_db::sync::count_live(conn.c(), connection_id).await.unwrap(), 0, "no partial page");
    let c = magpie_db::connections::get_any(conn.c(), connection_id).await.unwrap().unwrap();
    assert!(c.last_sync.is_none());
    assert_eq!(c.sync_state.0, json!({"cursor": ""}), "the cursor did not move without its data");
    drop(conn);

    // The next process: syncing completes (once the dead process's lease has run out).
    bank.sandbox.with(|w| w.page_delay_ms = 0);
    let second = Server::start(dir.path(), &["serve"], &env);
    let token = sign_in(&http, &second.url(), "killed@example.com", false).await;
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/connections/{id}/sync", second.url()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let mut synced = Value::Null;
    for _ in 0..150 {
        let (_, c) =
            call(&http, reqwest::Method::GET, format!("{}/api/v1/connections/{id}", second.url()), Some(&token), None)
                .await;
        if c["last_sync"].is_string() {
            synced = c;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced["last_sync"].is_string(), "the next sync completed");
    let mut conn = db.conn().await.unwrap();
    assert_eq!(magpie_db::sync::count_live(conn.c(), connection_id).await.unwrap(), 1500);
    drop(conn);
    let (ok, logs) = second.terminate();
    assert!(ok, "{}", logs.join("\n"));
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_reseals_every_token_and_serve_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = data.join("encryption.key");
    let old = sealing::generate_key();
    sealing::write_key_file(&key_file, std::slice::from_ref(&old)).unwrap();
    let db_url = format!("sqlite://{}", data.join("magpie.db").display());
    let db = open_db(&db_url).await;
    db.migrate().await.unwrap();
    let old_ring = Keyring::new(&[sealing::parse_key(&old).unwrap()]).unwrap();
    let mut conn = db.conn().await.unwrap();
    let user = magpie_db::users::create(
        conn.c(),
        &magpie_db::users::NewUser {
            email: magpie_domain::Email::parse("keys@example.com").unwrap(),
            password_hash: magpie_domain::PasswordHash::new("x"),
            first_name: None,
            last_name: None,
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for secret in ["access-sandbox-one", "https://u:p@bridge.example/simplefin"] {
        let id = ConnectionId::new();
        let sealed = old_ring.seal(secret, id, user.id).unwrap();
        magpie_db::connections::create(
            conn.c(),
            user.id,
            &magpie_db::connections::NewConnection::new(id, BankProvider::Plaid, "ins", "Bank", sealed),
        )
        .await
        .unwrap();
        ids.push((id, secret));
    }
    drop(conn);

    let out = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("MAGPIE_DATABASE_URL")
        .env("MAGPIE_LOG_LEVEL", "warn")
        .args(["keys", "rotate", "--generate", "--retire-old"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-sealed 2 bank tokens"), "{stdout}");
    let keys = sealing::read_key_file(&key_file).unwrap();
    assert_eq!(keys.len(), 1, "the old key was retired");
    assert_ne!(keys[0], sealing::parse_key(&old).unwrap());
    let new_ring = Keyring::new(&keys).unwrap();
    let mut conn = db.conn().await.unwrap();
    for (id, secret) in &ids {
        let c = magpie_db::connections::get(conn.c(), user.id, *id).await.unwrap().unwrap();
        assert_eq!(Keyring::key_id_of(&c.access_token), new_ring.current_id());
        assert_eq!(new_ring.open(&c.access_token, *id, user.id).unwrap().expose(), *secret);
        assert!(old_ring.open(&c.access_token, *id, user.id).is_err(), "the old key no longer opens it");
    }
    drop(conn);

    // A server with only the old key refuses to start, naming the key it lacks.
    let out = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("MAGPIE_DATABASE_URL")
        .env("MAGPIE_ENCRYPTION_KEY", &old)
        .env("MAGPIE_ENCRYPTION_KEY_FILE", dir.path().join("elsewhere.key"))
        .env("MAGPIE_LISTEN_ADDR", "127.0.0.1:0")
        .args(["serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = new_ring.current_id().unwrap();
    assert!(stderr.contains("cannot be opened") && stderr.contains(missing), "{stderr}");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_over_one_postgres_never_sync_one_connection_at_once() {
    let Some(test_db) = magpie_db::testing::TestDb::postgres_unmigrated().await else { return };
    let bank =
        Sandbox::new(SandboxConfig { transactions_per_bank: 1500, history_days: 60, ..SandboxConfig::default() })
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    bank.sandbox.with(|w| w.page_delay_ms = 300);
    let dir = tempfile::tempdir().unwrap();
    let db_url = test_db.url_with_schema();
    let plaid_url = bank.plaid_url();
    let env = [
        ("MAGPIE_DATABASE_URL", db_url.as_str()),
        ("MAGPIE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
        ("MAGPIE_PLAID_BASE_URL", plaid_url.as_str()),
        ("MAGPIE_PLAID_CLIENT_ID", "sandbox-client-id"),
        ("MAGPIE_PLAID_SECRET", "sandbox-secret"),
        ("MAGPIE_BCRYPT_COST", "4"),
        ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false"),
    ];
    let a = Server::start(dir.path(), &["serve"], &env);
    let b = Server::start(dir.path(), &["serve"], &env);
    let http = reqwest::Client::new();
    let token = sign_in(&http, &a.url(), "twice@example.com", true).await;
    let id = link_plaid(&http, &a.url(), &token, &bank).await;
    // While process A syncs, ask process B (and A again) for syncs of the same connection.
    wait_for_pages(&bank, 1).await;
    for server in [&b, &a, &b] {
        let (status, _) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/connections/{id}/sync", server.url()),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 202);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let db = open_db(&db_url).await;
    let connection_id = ConnectionId::from_str(&id).unwrap();
    let mut done = false;
    for _ in 0..400 {
        let mut conn = db.conn().await.unwrap();
        let (queued, running, _) = magpie_db::jobs::depth(conn.c()).await.unwrap();
        let c = magpie_db::connections::get_any(conn.c(), connection_id).await.unwrap().unwrap();
        if queued == 0 && running == 0 && c.last_sync.is_some() {
            done = true;
            break;
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "every sync job finished");
    // At least one of the later jobs found the connection busy and stepped back.
    let busy = {
        let mut conn = db.conn().await.unwrap();
        let jobs = magpie_db::jobs::of_kind(conn.c(), "sync_connection").await.unwrap();
        jobs.iter().filter(|j| j.result.as_ref().is_some_and(|r| r.0["outcome"] == "busy")).count()
    };
    assert!(busy >= 1, "a second process tried while the first was syncing");
    assert_eq!(bank.sandbox.with(|w| w.max_concurrent_syncs), 1, "never two syncs of the item at once");
    let mut conn = db.conn().await.unwrap();
    assert_eq!(magpie_db::sync::count_live(conn.c(), connection_id).await.unwrap(), 1500, "no row twice");
    drop(conn);
    db.close().await;
    for server in [a, b] {
        let (ok, logs) = server.terminate();
        assert!(ok, "{}", logs.join("\n"));
    }
    drop(test_db);
}
