//! The real provider clients of `magpie-sync` against the emulator: linking, first and incremental
//! syncs, pending -> posted, removals, and every error path the spec maps to a connection status.

use std::time::Duration;

use chrono::Utc;
use magpie_sandbox::{Fault, FaultKind, Running, Sandbox, SandboxConfig, Via};
use magpie_sync::gocardless::{GocardlessClient, GocardlessConfig};
use magpie_sync::plaid::{PlaidClient, PlaidConfig, WebhookError};
use magpie_sync::simplefin::{SimplefinClient, SimplefinConfig};
use magpie_sync::{Provider, Secret, SyncError, SyncOptions};
use rust_decimal::Decimal;

async fn sandbox(transactions: usize) -> Running {
    let cfg = SandboxConfig { transactions_per_bank: transactions, ..SandboxConfig::default() };
    Sandbox::new(cfg).start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn plaid(s: &Running) -> PlaidClient {
    let mut cfg = PlaidConfig::new(s.plaid_url(), "sandbox-client-id", Secret::new("sandbox-secret"));
    cfg.page_size = 50;
    PlaidClient::new(cfg)
}

fn simplefin(s: &Running) -> SimplefinClient {
    SimplefinClient::new(SimplefinConfig { allowed_hosts: vec![s.simplefin_host()], ..SimplefinConfig::default() })
}

fn gocardless(s: &Running) -> GocardlessClient {
    GocardlessClient::new(GocardlessConfig {
        base_url: s.gocardless_url(),
        secret_id: "sandbox-secret-id".into(),
        secret_key: Secret::new("sandbox-secret-key"),
        timeout: Duration::from_secs(10),
    })
}

fn opts() -> SyncOptions {
    SyncOptions { now: Utc::now(), initial_days: 120, overlap_days: 10 }
}

#[tokio::test]
async fn plaid_first_and_incremental_sync_with_pending_posting() {
    let s = sandbox(120).await;
    let client = plaid(&s);
    let (public, bank) = s.sandbox.plaid_public_token(None);
    s.sandbox.change_bank(bank, |b, today| b.add(0, today, Decimal::new(-1250, 2), "SQ *BLUE BOTTLE", true));
    let linked = client.exchange(&public).await.unwrap();
    assert_eq!(linked.institution_name, "First Platypus Bank");
    assert_eq!(linked.accounts.len(), 2);
    assert!(client.exchange(&public).await.is_err(), "a public token is single-use");

    let first = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    assert_eq!(first.upserts.len(), 121);
    assert!(first.requests >= 3, "121 rows at 50 a page is three pages");
    assert!(first.upserts.iter().any(|t| t.pending));
    assert!(first.upserts.iter().any(|t| t.category.is_some()));

    let again = client.sync(&linked.secret, &first.state, &opts()).await.unwrap();
    assert!(again.upserts.is_empty() && again.removed.is_empty(), "nothing new");

    let pending = first.upserts.iter().find(|t| t.pending).unwrap().id.clone();
    let posted = s
        .sandbox
        .change_bank(bank, |b, today| b.post(&pending, today, Some(Decimal::new(-9999, 2)), false))
        .unwrap()
        .unwrap();
    let third = client.sync(&linked.secret, &again.state, &opts()).await.unwrap();
    assert_eq!(third.upserts.len(), 1);
    assert_eq!(third.upserts[0].id, posted);
    assert_eq!(third.upserts[0].pending_of.as_deref(), Some(pending.as_str()));
    assert_eq!(third.upserts[0].amount, Decimal::new(-9999, 2));
    assert_eq!(third.removed.len(), 1);
    assert_eq!(third.removed[0].id, pending);
}

#[tokio::test]
async fn plaid_restarts_from_the_stored_cursor_after_a_mutation() {
    let s = sandbox(120).await;
    let client = plaid(&s);
    let linked = client.exchange(&s.sandbox.plaid_public_token(None).0).await.unwrap();
    s.sandbox.add_fault(Fault { provider: Via::Plaid, kind: FaultKind::Mutation, times: 1, path: None });
    let batch = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    // The mutation added one row; the restart read everything once, with no duplicates.
    assert_eq!(batch.upserts.len(), 121);
    let mut ids: Vec<&str> = batch.upserts.iter().map(|t| t.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 121);
    assert!(s.sandbox.hits("plaid /transactions/sync") >= 5, "first pagination cut short, then a full one");
}

#[tokio::test]
async fn plaid_errors_map_to_statuses() {
    let s = sandbox(20).await;
    let client = plaid(&s);
    let linked = client.exchange(&s.sandbox.plaid_public_token(None).0).await.unwrap();
    for (kind, check) in [
        (FaultKind::RateLimit, (|e: &SyncError| matches!(e, SyncError::RateLimited { .. })) as fn(&SyncError) -> bool),
        (FaultKind::ServerError, |e| matches!(e, SyncError::Transient { .. })),
    ] {
        s.sandbox.add_fault(Fault { provider: Via::Plaid, kind, times: 1, path: Some("/transactions/sync".into()) });
        let e = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err();
        assert!(check(&e), "{kind:?}: {e:?}");
    }
    s.sandbox.add_fault(Fault { provider: Via::Plaid, kind: FaultKind::NotReady, times: 1, path: None });
    let not_ready = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    assert!(not_ready.upserts.is_empty() && not_ready.retry_after.is_some());

    let reset = reqwest::Client::new()
        .post(format!("{}/sandbox/item/reset_login", s.plaid_url()))
        .json(&serde_json::json!({"client_id": "sandbox-client-id", "secret": "sandbox-secret", "access_token": linked.secret.expose()}))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    let e = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err();
    assert!(matches!(e, SyncError::LoginRequired { ref code, .. } if code == "ITEM_LOGIN_REQUIRED"), "{e:?}");

    let other = client.exchange(&s.sandbox.plaid_public_token(None).0).await.unwrap();
    client.revoke(&other.secret).await.unwrap();
    client.revoke(&other.secret).await.unwrap();
    let e = client.sync(&other.secret, &other.state, &opts()).await.unwrap_err();
    assert!(matches!(e, SyncError::Revoked { .. }), "{e:?}");
    assert!(!format!("{e}").contains(other.secret.expose()), "errors never carry the token");
}

#[tokio::test]
async fn plaid_webhooks_verify_and_forgeries_do_not() {
    let s = sandbox(5).await;
    let client = plaid(&s);
    let body = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"it_1"}"#;
    let jwt = s.sandbox.sign_plaid_webhook(body);
    let event = client.verify_webhook(Some(&jwt), body, Utc::now()).await.unwrap();
    assert_eq!((event.webhook_code.as_str(), event.item_id.as_deref()), ("SYNC_UPDATES_AVAILABLE", Some("it_1")));
    let tampered = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"it_2"}"#;
    assert_eq!(client.verify_webhook(Some(&jwt), tampered, Utc::now()).await.unwrap_err(), WebhookError::BodyMismatch);
    let later = Utc::now() + chrono::Duration::minutes(6);
    assert_eq!(client.verify_webhook(Some(&jwt), body, later).await.unwrap_err(), WebhookError::Stale);
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    assert!(client.verify_webhook(Some(&parts.join(".")), body, Utc::now()).await.is_err());
    use base64::Engine as _;
    let none_alg = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#),
        jwt.split('.').nth(1).unwrap()
    );
    assert!(matches!(
        client.verify_webhook(Some(&none_alg), body, Utc::now()).await.unwrap_err(),
        WebhookError::Malformed(_)
    ));
    assert_eq!(client.verify_webhook(None, body, Utc::now()).await.unwrap_err(), WebhookError::Missing);
}

#[tokio::test]
async fn plaid_webhooks_are_not_replayed_and_unknown_keys_are_not_fetched_again() {
    use base64::Engine as _;
    let s = sandbox(5).await;
    let client = plaid(&s);
    let body = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"it_1"}"#;
    let jwt = s.sandbox.sign_plaid_webhook(body);
    client.verify_webhook(Some(&jwt), body, Utc::now()).await.unwrap();
    assert_eq!(client.verify_webhook(Some(&jwt), body, Utc::now()).await.unwrap_err(), WebhookError::Replayed);
    let fetches = || s.sandbox.hits("plaid /webhook_verification_key/get");
    let before = fetches();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = |kid: &str| {
        format!(
            "{}.{}.{}",
            b64.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#)),
            b64.encode("{}"),
            b64.encode([7u8; 64])
        )
    };
    for _ in 0..5 {
        assert_eq!(
            client.verify_webhook(Some(&forged("nope")), body, Utc::now()).await.unwrap_err(),
            WebhookError::UnknownKey
        );
    }
    assert_eq!(fetches() - before, 1, "an unknown key id is asked for once");
    for i in 0..30 {
        let _ = client.verify_webhook(Some(&forged(&format!("random-{i}"))), body, Utc::now()).await;
    }
    assert!(fetches() - before <= 10, "at most ten key fetches a minute: {}", fetches() - before);
}

#[tokio::test]
async fn simplefin_claim_windows_and_vanishing_pending_rows() {
    let s = sandbox(80).await;
    let client = simplefin(&s);
    let (setup, bank) = s.sandbox.simplefin_setup_token();
    s.sandbox
        .change_bank(bank, |b, today| b.add(0, today - chrono::Days::new(1), Decimal::new(-999, 2), "STREAMCO", true));
    let linked = client.claim(&setup, Utc::now()).await.unwrap();
    assert_eq!(linked.institution_name, "Sandbox Credit Union");
    assert!(linked.secret.expose().contains('@'), "the Access URL carries credentials");
    let e = client.claim(&setup, Utc::now()).await.unwrap_err();
    assert!(matches!(e, SyncError::Invalid { ref code, .. } if code == "setup_token_claimed"), "{e:?}");

    let first = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    assert_eq!(first.upserts.len(), 81);
    assert_eq!(first.requests, 2, "120 days is two windows of at most 90");
    assert_eq!(first.windows.len(), 2, "one per account");
    let pending = first.upserts.iter().find(|t| t.pending).unwrap().id.clone();
    s.sandbox.change_bank(bank, |b, today| b.post(&pending, today, None, false)).unwrap().unwrap();
    let second = client.sync(&linked.secret, &first.state, &opts()).await.unwrap();
    assert_eq!(second.requests, 1, "an incremental window");
    assert!(!second.upserts.iter().any(|t| t.id == pending), "the pending row vanished");

    // A login problem at one connection: data still comes, the connection needs the user.
    s.sandbox.add_fault(Fault { provider: Via::Simplefin, kind: FaultKind::LoginRequired, times: 1, path: None });
    let third = client.sync(&linked.secret, &second.state, &opts()).await.unwrap();
    assert!(third.needs_reauth.is_some());
    assert!(third.windows.is_empty(), "no window is trusted for pending removal");

    for (kind, want) in [
        (FaultKind::ServerError, "transient"),
        (FaultKind::PaymentRequired, "revoked"),
        (FaultKind::Revoked, "revoked"),
    ] {
        s.sandbox.add_fault(Fault { provider: Via::Simplefin, kind, times: 1, path: None });
        let e = client.sync(&linked.secret, &second.state, &opts()).await.unwrap_err();
        let got = match e {
            SyncError::Transient { .. } => "transient",
            SyncError::Revoked { .. } => "revoked",
            _ => "other",
        };
        assert_eq!(got, want, "{kind:?}");
    }
}

#[tokio::test]
async fn simplefin_keeps_under_its_daily_quota() {
    let s = sandbox(10).await;
    let client = SimplefinClient::new(SimplefinConfig {
        allowed_hosts: vec![s.simplefin_host()],
        daily_requests: 4,
        ..SimplefinConfig::default()
    });
    let linked = client.claim(&s.sandbox.simplefin_setup_token().0, Utc::now()).await.unwrap();
    let mut state = linked.state;
    let mut made = 0;
    loop {
        match client.sync(&linked.secret, &state, &opts()).await {
            Ok(b) => {
                made += b.requests;
                state = b.state;
            }
            Err(SyncError::RateLimited { retry_after, .. }) => {
                assert!(retry_after.unwrap() > Duration::from_secs(3600));
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(made, 3, "the claim's balances call counts too");
}

#[tokio::test]
async fn simplefin_refuses_hosts_it_was_not_told_to_trust() {
    let s = sandbox(1).await;
    let client = SimplefinClient::new(SimplefinConfig::default());
    let e = client.claim(&s.sandbox.simplefin_setup_token().0, Utc::now()).await.unwrap_err();
    assert!(matches!(e, SyncError::Invalid { ref code, .. } if code == "host_not_allowed"), "{e:?}");
    use base64::Engine as _;
    let internal = base64::engine::general_purpose::STANDARD.encode("http://169.254.169.254/latest/meta-data");
    assert!(client.claim(&internal, Utc::now()).await.is_err());
    assert!(client.claim("not base64 at all!", Utc::now()).await.is_err());
}

#[tokio::test]
async fn gocardless_requisition_sync_quota_and_expiry() {
    let s = sandbox(60).await;
    let client = gocardless(&s);
    let institutions = client.institutions("gb").await.unwrap();
    assert!(institutions.iter().any(|i| i.id == "SANDBOXFINANCE_SFIN0000" && i.transaction_total_days == Some(730)));
    let req = client.create_requisition("SANDBOXFINANCE_SFIN0000", "http://localhost/back", "ref-1").await.unwrap();
    assert_eq!(req.status, "CR");
    let e = client.connect(&req.id).await.unwrap_err();
    assert!(matches!(e, SyncError::Invalid { ref code, .. } if code == "requisition_not_linked"));
    // The person follows the link; the bank sends them back.
    let consent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(req.link.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 302);
    assert!(consent.headers()["location"].to_str().unwrap().starts_with("http://localhost/back?ref=ref-1"));
    let linked = client.connect(&req.id).await.unwrap();
    assert_eq!(linked.accounts.len(), 2);
    assert!(linked.consent_expires_at.is_some());

    let first = client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    assert_eq!(first.upserts.len(), 60);
    assert!(first.upserts.iter().filter(|t| t.pending).all(|t| t.weak_id), "pending rows carry no id");
    let again = client.sync(&linked.secret, &first.state, &opts()).await.unwrap();
    // The second window overlaps the first by ten days; every row in it, weak ids included, is known.
    assert!(!again.upserts.is_empty() && again.upserts.len() < first.upserts.len());
    for t in &again.upserts {
        assert!(first.upserts.iter().any(|f| f.id == t.id), "weak ids are stable while rows do not change: {}", t.id);
    }

    // Four successful calls per account and day: the next ones wait for the reset.
    let mut state = again.state;
    let mut limited = false;
    for _ in 0..4 {
        let b = client.sync(&linked.secret, &state, &opts()).await.unwrap();
        if b.retry_after.is_some() {
            limited = true;
            assert!(b.notices.iter().any(|n| n.code == "account_quota"));
            assert!(b.upserts.is_empty());
        }
        state = b.state;
    }
    assert!(limited, "the bank's daily quota was reached");

    let expire = reqwest::Client::new()
        .post(format!("{}/_sandbox/gocardless/requisitions/{}/expire", s.url(), req.id))
        .send()
        .await
        .unwrap();
    assert_eq!(expire.status(), 204);
    let e = client.sync(&linked.secret, &state, &opts()).await.unwrap_err();
    assert!(matches!(e, SyncError::LoginRequired { .. }), "{e:?}");
}

#[tokio::test]
async fn gocardless_errors_and_tokens() {
    let s = sandbox(10).await;
    let client = gocardless(&s);
    let (req, _) = s.sandbox.gocardless_linked_requisition();
    let linked = client.connect(&req).await.unwrap();
    // An expired API token is replaced transparently.
    reqwest::Client::new().post(format!("{}/_sandbox/gocardless/expire-tokens", s.url())).send().await.unwrap();
    client.sync(&linked.secret, &linked.state, &opts()).await.unwrap();
    s.sandbox.add_fault(Fault { provider: Via::Gocardless, kind: FaultKind::ServerError, times: 1, path: None });
    assert!(client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err().is_retryable());
    s.sandbox.add_fault(Fault { provider: Via::Gocardless, kind: FaultKind::RateLimit, times: 1, path: None });
    assert!(matches!(
        client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err(),
        SyncError::RateLimited { retry_after: Some(_), .. }
    ));
    s.sandbox.add_fault(Fault { provider: Via::Gocardless, kind: FaultKind::Revoked, times: 1, path: None });
    assert!(matches!(
        client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err(),
        SyncError::Revoked { .. }
    ));
    client.revoke(&linked.secret).await.unwrap();
    client.revoke(&linked.secret).await.unwrap();
    assert!(matches!(
        client.sync(&linked.secret, &linked.state, &opts()).await.unwrap_err(),
        SyncError::Revoked { .. }
    ));
    let bad = GocardlessClient::new(GocardlessConfig {
        base_url: s.gocardless_url(),
        secret_id: "x".into(),
        secret_key: Secret::new("y"),
        timeout: Duration::from_secs(5),
    });
    assert!(matches!(bad.institutions("gb").await.unwrap_err(), SyncError::Invalid { .. }));
}
