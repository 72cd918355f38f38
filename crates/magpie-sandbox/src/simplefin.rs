//! SimpleFIN on the emulator: single-use claim URLs, Basic-auth `/accounts` with `[start, end)`
//! windows, `pending`, repeatable `account`, `balances-only`, v1 or v2 shapes, and the Bridge's daily
//! quota (warnings first, then the token is disabled).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{NaiveDate, NaiveTime};
use serde_json::{Value, json};

use crate::bank::Via;
use crate::{FaultKind, Sandbox, World};

struct Setup {
    bank: usize,
    claimed: bool,
}

struct User {
    password: String,
    bank: usize,
    day: Option<NaiveDate>,
    requests: u32,
    disabled: bool,
}

#[derive(Default)]
pub(crate) struct SfState {
    setup: HashMap<String, Setup>,
    users: HashMap<String, User>,
}

impl SfState {
    pub(crate) fn user_of_bank(&self, bank: usize) -> Option<String> {
        self.users.iter().find(|(_, u)| u.bank == bank).map(|(n, _)| n.clone())
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/simplefin/info", get(|| async { axum::Json(json!({"versions": ["1.0", "2.0"]})) }))
        .route("/simplefin/claim/{token}", post(claim))
        .route("/simplefin/accounts", get(accounts))
        .route("/_sandbox/simplefin/setup-token", post(setup_token))
}

/// A setup token (base64 of its claim URL) for a new bank.
pub(crate) fn create_setup_token(w: &mut World) -> (String, usize) {
    let bank = w.new_bank(Via::Simplefin);
    let claim = w.uuid();
    w.simplefin.setup.insert(claim.clone(), Setup { bank, claimed: false });
    let url = format!("{}/simplefin/claim/{claim}", w.base_url);
    (base64::engine::general_purpose::STANDARD.encode(url), bank)
}

async fn setup_token(State(s): State<Sandbox>) -> Response {
    let (token, bank) = s.simplefin_setup_token();
    (StatusCode::CREATED, axum::Json(json!({"setup_token": token, "bank_id": bank}))).into_response()
}

async fn claim(State(s): State<Sandbox>, Path(token): Path<String>) -> Response {
    s.with(|w| {
        w.hit("simplefin /claim".into());
        let Some(setup) = w.simplefin.setup.get_mut(&token).filter(|s| !s.claimed) else {
            return (StatusCode::FORBIDDEN, "Forbidden").into_response();
        };
        setup.claimed = true;
        let bank = setup.bank;
        let user = format!("sfuser{bank}");
        let password = w.uuid().replace('-', "");
        w.simplefin
            .users
            .insert(user.clone(), User { password: password.clone(), bank, day: None, requests: 0, disabled: false });
        let host = w.base_url.trim_start_matches("http://").to_owned();
        (StatusCode::OK, format!("http://{user}:{password}@{host}/simplefin")).into_response()
    })
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.replace("%2D", "-").replace("%3A", ":"))
        })
        .collect()
}

/// A minute past midnight UTC: a row dated today is never later than "now" for a client asking now.
fn early(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::from_hms_opt(0, 1, 0).expect("a valid time")).and_utc().timestamp()
}

async fn accounts(State(s): State<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    s.delay().await;
    s.with(|w| render(w, &headers, query.as_deref().unwrap_or_default()))
}

fn render(w: &mut World, headers: &HeaderMap, query: &str) -> Response {
    w.hit("simplefin /accounts".into());
    let forbidden = || (StatusCode::FORBIDDEN, "Forbidden").into_response();
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else { return forbidden() };
    let today = w.today();
    let (quota, disable_after) = (w.cfg.simplefin_daily_quota, w.cfg.simplefin_disable_after);
    let Some(u) = w.simplefin.users.get_mut(user).filter(|u| u.password == password && !u.disabled) else {
        return forbidden();
    };
    if u.day != Some(today) {
        u.day = Some(today);
        u.requests = 0;
    }
    u.requests += 1;
    if u.requests > disable_after {
        u.disabled = true;
        return forbidden();
    }
    let (bank_id, requests) = (u.bank, u.requests);
    let mut errlist: Vec<Value> = Vec::new();
    match w.take_fault(Via::Simplefin, "/accounts", |_| true) {
        Some(FaultKind::ServerError) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
        Some(FaultKind::RateLimit) => return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
        Some(FaultKind::PaymentRequired) => return (StatusCode::PAYMENT_REQUIRED, "Payment Required").into_response(),
        Some(FaultKind::Revoked) => {
            if let Some(u) = w.simplefin.users.get_mut(user) {
                u.disabled = true;
            }
            return forbidden();
        }
        Some(FaultKind::LoginRequired) => errlist.push(json!({
            "code": "con.auth", "msg": format!("Authentication required for {}", w.banks[bank_id].institution_name),
            "conn_id": format!("CON-{bank_id}")})),
        _ => {}
    }
    if requests > quota {
        errlist.push(json!({"code": "gen.quota", "msg": "You have exceeded the daily request quota; continued use will disable this token"}));
    }
    let pairs = query_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let wanted: Vec<&str> = pairs.iter().filter(|(n, _)| n == "account").map(|(_, v)| v.as_str()).collect();
    let v2 = get("version") == Some("2");
    let balances_only = get("balances-only") == Some("1");
    let with_pending = get("pending") == Some("1");
    let end = get("end-date").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MAX);
    let mut start = get("start-date").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MIN);
    if end != i64::MAX && start != i64::MIN && end - start > 90 * 86_400 {
        errlist
            .push(json!({"code": "gen.api", "msg": "date range exceeds 90 days; only the last 90 days are returned"}));
        start = end - 90 * 86_400;
    }
    let bank = &w.banks[bank_id];
    let conn_id = format!("CON-{bank_id}");
    let accounts: Vec<Value> = bank
        .accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| wanted.is_empty() || wanted.contains(&a.id.as_str()))
        .map(|(n, a)| {
            let balance: rust_decimal::Decimal = bank.live().filter(|t| t.account == n && !t.pending).map(|t| t.amount).sum::<rust_decimal::Decimal>()
                + if a.kind == "credit" { rust_decimal::Decimal::ZERO } else { rust_decimal::Decimal::new(250_000, 2) };
            let mut acc = json!({
                "id": a.id, "name": a.name, "currency": a.currency, "balance": balance.to_string(),
                "available-balance": balance.to_string(), "balance-date": early(w.today()),
            });
            if v2 {
                acc["conn_id"] = json!(conn_id);
            } else {
                acc["org"] = json!({"domain": "sandbox.example", "name": bank.institution_name, "sfin-url": format!("{}/simplefin", w.base_url), "id": bank.institution_id});
            }
            if !balances_only {
                let txns: Vec<Value> = bank
                    .live()
                    .filter(|t| t.account == n && (with_pending || !t.pending))
                    .filter(|t| (start..end).contains(&early(t.date)))
                    .map(|t| {
                        let mut v = json!({"id": t.id, "amount": t.amount.to_string(), "description": t.description});
                        if t.pending {
                            v["posted"] = json!(0);
                            v["transacted_at"] = json!(early(t.date));
                            v["pending"] = json!(true);
                        } else {
                            v["posted"] = json!(early(t.date));
                        }
                        if !t.merchant.is_empty() {
                            v["payee"] = json!(t.merchant);
                        }
                        v
                    })
                    .collect();
                acc["transactions"] = json!(txns);
            }
            acc
        })
        .collect();
    let body = if v2 {
        json!({"errlist": errlist, "connections": [{"conn_id": conn_id, "name": bank.institution_name, "org_id": bank.institution_id,
               "org_url": "https://sandbox.example", "sfin_url": format!("{}/simplefin", w.base_url)}], "accounts": accounts})
    } else {
        let errors: Vec<Value> = errlist.iter().map(|e| e["msg"].clone()).collect();
        json!({"errors": errors, "accounts": accounts})
    };
    axum::Json(body).into_response()
}
