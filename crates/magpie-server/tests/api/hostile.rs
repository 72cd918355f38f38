//! Hostile uploads and sign-ins against the real binary on a port (issue 23): each checks that the
//! server refuses the request, still answers afterwards, and never held more than 300 MB (`VmHWM`, the
//! peak resident memory of the process). On SQLite, and on PostgreSQL when configured.

use std::time::Duration;

use serde_json::json;

use crate::binary::Server;
use crate::security::{deep_xml, zip_of};
use crate::sync_process::{call, sign_in};

/// Peak memory allowed, in KiB.
const PEAK_KIB: u64 = 300 * 1024;

/// A server over SQLite, and one over PostgreSQL when `MAGPIE_TEST_DATABASE_URL` is set (kept with
/// its schema, which is dropped with it).
async fn servers(dir: &std::path::Path, env: &[(&str, &str)]) -> Vec<(Server, Option<magpie_db::testing::TestDb>)> {
    magpie_sync::install_tls_provider();
    let base = [("MAGPIE_BCRYPT_COST", "4"), ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false")];
    let mut all: Vec<(&str, &str)> = base.to_vec();
    all.extend_from_slice(env);
    let mut out = vec![(Server::start(&dir.join("sqlite"), &["serve"], &all), None)];
    if let Some(tdb) = magpie_db::testing::TestDb::postgres().await {
        let url = tdb.url_with_schema();
        let mut pg = all.clone();
        pg.push(("MAGPIE_DATABASE_URL", &url));
        out.push((Server::start(&dir.join("postgres"), &["serve"], &pg), Some(tdb)));
    } else {
        eprintln!("SKIPPED the PostgreSQL half: MAGPIE_TEST_DATABASE_URL is not set");
    }
    out
}

fn dirs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sqlite")).unwrap();
    std::fs::create_dir_all(dir.path().join("postgres")).unwrap();
    dir
}

async fn upload(http: &reqwest::Client, url: String, token: &str, body: Vec<u8>) -> (u16, String) {
    let res = http.post(url).bearer_auth(token).body(body).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn healthy(http: &reqwest::Client, base: &str) {
    let res = http.get(format!("{base}/healthz")).send().await.expect("the server still answers");
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_and_zip_bombs_are_refused_by_a_live_server_within_300_mb() {
    let dir = dirs();
    magpie_sync::install_tls_provider();
    let http = reqwest::Client::new();
    for (server, _db) in servers(dir.path(), &[]).await {
        let base = server.url();
        let token = sign_in(&http, &base, "hostile@example.com", true).await;
        // The review's crash: 469 KB of nested elements, as XML and inside an OFX file.
        let xml = deep_xml(60_000);
        assert!(xml.len() > 450_000);
        let (status, body) =
            upload(&http, format!("{base}/api/v1/imports?dry_run=true&filename=d.xml"), &token, xml.into_bytes()).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("nested more than 256"), "{body}");
        let ofx = format!("OFXHEADER:100\n\n<OFX>{}", (0..60_000).map(|i| format!("<A{i}>")).collect::<String>());
        let (status, body) =
            upload(&http, format!("{base}/api/v1/imports?dry_run=true&filename=d.ofx"), &token, ofx.into_bytes()).await;
        assert_eq!(status, 422, "{body}");
        healthy(&http, &base).await;
        // 64 MB of zeros in a 64 KB zip, as a statement and as an export.
        let zeros = vec![0u8; 64 << 20];
        let bomb = zip_of(&[("statement.xml", &zeros)]);
        let (status, body) =
            upload(&http, format!("{base}/api/v1/imports?dry_run=true&filename=s.zip"), &token, bomb).await;
        assert_eq!(status, 422, "{body}");
        // Many entries, each a bomb: refused at the first.
        let names: Vec<String> = (0..100).map(|i| format!("s{i}.xml")).collect();
        let chunk = vec![b'a'; 8 << 20];
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), chunk.as_slice())).collect();
        let (status, body) =
            upload(&http, format!("{base}/api/v1/imports?dry_run=true&filename=m.zip"), &token, zip_of(&many)).await;
        assert_eq!(status, 422, "{body}");
        let mut endless = br#"{"format":""#.to_vec();
        endless.resize(256 << 20, b'a');
        let export_bomb = zip_of(&[("magpie-export.json", &endless)]);
        assert!(export_bomb.len() < 1 << 20, "{}", export_bomb.len());
        let (status, body) = upload(&http, format!("{base}/api/v1/me/import"), &token, export_bomb.clone()).await;
        assert_eq!(status, 422, "{body}");
        // Into an account with data: refused before the zip is opened.
        let tx = json!({"amount": "1.00", "date": "2026-01-02", "type": "EXPENSE", "description": "x", "category": "Dining"});
        let (status, _) =
            call(&http, reqwest::Method::POST, format!("{base}/api/v1/transactions"), Some(&token), Some(tx)).await;
        assert_eq!(status, 201);
        let (status, body) = upload(&http, format!("{base}/api/v1/me/import"), &token, export_bomb).await;
        assert_eq!(status, 409, "{body}");
        healthy(&http, &base).await;
        let peak = server.status_kib("VmHWM");
        eprintln!("peak resident memory: {peak} KiB");
        assert!(peak < PEAK_KIB, "the server peaked at {peak} KiB");
        server.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_guesses_against_a_live_server_get_at_most_five_checked() {
    let dir = dirs();
    magpie_sync::install_tls_provider();
    let http = reqwest::Client::new();
    for (server, _db) in servers(dir.path(), &[]).await {
        let base = server.url();
        sign_in(&http, &base, "guessed@example.com", true).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let (http, base) = (http.clone(), base.clone());
            tasks.spawn(async move {
                let body = json!({"email": "guessed@example.com", "password": format!("guess number {i}")});
                call(&http, reqwest::Method::POST, format!("{base}/api/v1/auth/login"), None, Some(body)).await.0
            });
        }
        let mut statuses = Vec::new();
        while let Some(s) = tasks.join_next().await {
            statuses.push(s.unwrap());
        }
        let checked = statuses.iter().filter(|s| **s == 401).count();
        assert!(checked <= 5, "{checked} of 100 parallel guesses were checked: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 100 - checked, "{statuses:?}");
        healthy(&http, &base).await;
        let peak = server.status_kib("VmHWM");
        assert!(peak < PEAK_KIB, "the server peaked at {peak} KiB");
        server.terminate();
    }
}

/// CPU seconds the process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_stops_when_its_request_times_out() {
    let dir = dirs();
    magpie_sync::install_tls_provider();
    let http = reqwest::Client::new();
    let server = Server::start(
        &dir.path().join("sqlite"),
        &["serve"],
        &[
            ("MAGPIE_BCRYPT_COST", "4"),
            ("MAGPIE_ML_INSTALL_GLOBAL_MODEL", "false"),
            ("MAGPIE_REQUEST_TIMEOUT_SECS", "1"),
        ],
    );
    let base = server.url();
    let token = sign_in(&http, &base, "slow@example.com", true).await;
    // A large, valid OFX file (just under the element limit): seconds of parsing in a test build.
    let mut ofx = String::from("OFXHEADER:100\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD<BANKTRANLIST>");
    for i in 0..160_000 {
        ofx.push_str(&format!(
            "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260102<TRNAMT>-{}.{:02}<FITID>F{i}<NAME>Shop number {i}</STMTTRN>\n",
            i % 500,
            i % 100
        ));
    }
    ofx.push_str("</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>");
    let pid = server.pid();
    let started = std::time::Instant::now();
    let (status, body) =
        upload(&http, format!("{base}/api/v1/imports?dry_run=true&filename=big.ofx"), &token, ofx.into_bytes()).await;
    if status != 503 {
        eprintln!(
            "SKIPPED the CPU check: the parse finished within the 1 s timeout ({status}, {:?})",
            started.elapsed()
        );
        server.terminate();
        return;
    }
    assert!(body.contains("timeout"), "{body}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let burnt = cpu_secs(pid) - before;
    assert!(burnt < 0.5, "the server burnt {burnt:.2} CPU-seconds after the request was gone");
    healthy(&http, &base).await;
    server.terminate();
}
