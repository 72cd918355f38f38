//! Plaid on the emulator: every endpoint `POST /plaid/<path>` with JSON, the error object of §1.2, a
//! `/transactions/sync` cursor over the bank's change log (base64 of item, position, version and
//! whether it is mid-pagination), signed webhooks.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::bank::{Bank, Change, Via};
use crate::{FaultKind, Sandbox, World};

const INSTITUTIONS: &[(&str, &str)] = &[
    ("ins_109508", "First Platypus Bank"),
    ("ins_109509", "First Gingham Credit Union"),
    ("ins_109510", "Tattersall Federal Credit Union"),
    ("ins_109511", "Tartan Bank"),
    ("ins_127287", "Platypus OAuth Bank"),
];

struct PublicToken {
    bank: usize,
    created: DateTime<Utc>,
    webhook: Option<String>,
}

struct Item {
    item_id: String,
    bank: usize,
    webhook: Option<String>,
    removed: bool,
    login_required: bool,
    synced: bool,
}

#[derive(Default)]
pub(crate) struct PlaidState {
    public_tokens: HashMap<String, PublicToken>,
    /// By access token.
    items: HashMap<String, Item>,
}

impl PlaidState {
    pub(crate) fn item_of_bank(&self, bank: usize) -> Option<String> {
        self.items.values().find(|i| i.bank == bank).map(|i| i.item_id.clone())
    }

    fn access_of_item(&self, item_id: &str) -> Option<String> {
        self.items.iter().find(|(_, i)| i.item_id == item_id).map(|(a, _)| a.clone())
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new().route("/plaid/{*path}", post(plaid)).route("/_sandbox/plaid/items/{item}/repair", post(repair))
}

fn perr(status: u16, kind: &str, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"error_type": kind, "error_code": code, "error_message": message,
                          "display_message": null, "request_id": "sandbox"})),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    let mut v = v;
    v["request_id"] = json!("sandbox");
    axum::Json(v).into_response()
}

/// A public token for a new bank.
pub(crate) fn create_public_token(w: &mut World, institution: &str, webhook: Option<&str>) -> (String, usize) {
    let bank = w.new_bank(Via::Plaid);
    if let Some((id, name)) = INSTITUTIONS.iter().find(|(id, _)| *id == institution) {
        w.banks[bank].institution_id = (*id).to_owned();
        w.banks[bank].institution_name = (*name).to_owned();
    }
    let token = format!("public-sandbox-{}", w.uuid());
    w.plaid
        .public_tokens
        .insert(token.clone(), PublicToken { bank, created: Utc::now(), webhook: webhook.map(str::to_owned) });
    (token, bank)
}

/// Items on `bank` that want SYNC_UPDATES_AVAILABLE (they have a webhook and have synced once).
pub(crate) fn sync_webhooks_for_bank(w: &World, bank: usize) -> Vec<(String, String)> {
    w.plaid
        .items
        .values()
        .filter(|i| i.bank == bank && i.synced && !i.removed)
        .filter_map(|i| Some((i.item_id.clone(), i.webhook.clone()?)))
        .collect()
}

fn decimal_number(d: rust_decimal::Decimal) -> Value {
    // Plaid sends amounts as JSON doubles.
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(json!(0))
}

fn render_txn(bank: &Bank, i: usize) -> Value {
    let t = &bank.txns[i];
    let account = &bank.accounts[t.account];
    let pfc = t.category.map(|(primary, detailed)| {
        let level = if primary.starts_with("TRANSFER") { "LOW" } else { "VERY_HIGH" };
        json!({"primary": primary, "detailed": detailed, "confidence_level": level, "version": "v2"})
    });
    json!({
        "transaction_id": t.id, "account_id": account.id,
        // Plaid: positive = money out.
        "amount": decimal_number(-t.amount),
        "iso_currency_code": account.currency, "unofficial_currency_code": null,
        "date": t.date, "authorized_date": t.date, "authorized_datetime": null, "datetime": null,
        "name": t.description, "merchant_name": if t.merchant.is_empty() { Value::Null } else { json!(t.merchant) },
        "original_description": t.description,
        "pending": t.pending, "pending_transaction_id": t.pending_of, "account_owner": null,
        "payment_channel": "in store", "transaction_code": null,
        "location": {"address": null, "city": null, "region": null, "postal_code": null, "country": null},
        "payment_meta": {"reference_number": null, "payee": null, "payer": null},
        "personal_finance_category": pfc,
    })
}

fn render_accounts(bank: &Bank) -> Vec<Value> {
    bank.accounts
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let sum: rust_decimal::Decimal =
                bank.live().filter(|t| t.account == n && !t.pending).map(|t| t.amount).sum();
            let credit = a.kind == "credit";
            // Credit: Plaid reports what is owed as a positive balance.
            let current = if credit { -sum } else { sum + rust_decimal::Decimal::new(250_000, 2) };
            json!({
                "account_id": a.id, "name": a.name, "official_name": format!("{} {}", bank.institution_name, a.name),
                "mask": a.mask, "type": a.kind, "subtype": if credit { "credit card" } else { "checking" },
                "balances": {"available": if credit { Value::Null } else { decimal_number(current) },
                             "current": decimal_number(current), "limit": if credit { json!(5000) } else { Value::Null },
                             "iso_currency_code": a.currency, "unofficial_currency_code": null},
            })
        })
        .collect()
}

fn encode_cursor(item: &str, seq: usize, version: u64, mid: bool) -> String {
    URL_SAFE_NO_PAD.encode(json!({"i": item, "s": seq, "v": version, "m": mid}).to_string())
}

fn decode_cursor(c: &str) -> Option<(String, usize, u64, bool)> {
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    Some((v["i"].as_str()?.to_owned(), usize::try_from(v["s"].as_u64()?).ok()?, v["v"].as_u64()?, v["m"].as_bool()?))
}

fn text<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

type Hooks = Vec<(String, Value)>;

async fn plaid(State(s): State<Sandbox>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let path = format!("/{path}");
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return perr(400, "INVALID_REQUEST", "INVALID_BODY", "the body is not valid JSON");
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let client_id =
        body.get("client_id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| header("plaid-client-id"));
    let secret =
        body.get("secret").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| header("plaid-secret"));
    let authorized = s.with(|w| {
        w.hit(format!("plaid {path}"));
        client_id == w.cfg.plaid_client_id && secret == w.cfg.plaid_secret
    });
    if !authorized {
        return perr(400, "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided");
    }
    let access = text(&body, "access_token").to_owned();
    let syncing = path == "/transactions/sync";
    if syncing {
        s.with(|w| {
            let n = w.syncs_in_flight.entry(access.clone()).or_insert(0);
            *n += 1;
            w.max_concurrent_syncs = w.max_concurrent_syncs.max(*n);
        });
        s.delay().await;
    }
    let (response, hooks): (Response, Hooks) = s.with(|w| {
        if syncing && let Some(n) = w.syncs_in_flight.get_mut(&access) {
            *n -= 1;
        }
        handle(w, &s, &path, &body)
    });
    for (url, hook) in hooks {
        s.send_plaid_webhook(&url, hook);
    }
    response
}

/// The error the item is in, if any.
fn item_error(w: &mut World, path: &str, access: &str) -> Option<Response> {
    let Some(item) = w.plaid.items.get(access) else {
        return Some(perr(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "could not find matching access token"));
    };
    if item.removed {
        return Some(perr(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "could not find matching access token"));
    }
    if item.login_required && !path.starts_with("/item/remove") && !path.starts_with("/link/") {
        return Some(perr(
            400,
            "ITEM_ERROR",
            "ITEM_LOGIN_REQUIRED",
            "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information",
        ));
    }
    None
}

fn handle(w: &mut World, s: &Sandbox, path: &str, body: &Value) -> (Response, Hooks) {
    let none = Vec::new();
    let access = text(body, "access_token").to_owned();
    let itemless = matches!(
        path,
        "/sandbox/public_token/create"
            | "/item/public_token/exchange"
            | "/institutions/get_by_id"
            | "/webhook_verification_key/get"
    ) || (path == "/link/token/create" && access.is_empty());
    if let Some(kind) = w.take_fault(Via::Plaid, path, |k| {
        !matches!(k, FaultKind::Mutation | FaultKind::NotReady | FaultKind::PaymentRequired)
    }) {
        let r = match kind {
            FaultKind::RateLimit => perr(
                429,
                "RATE_LIMIT_EXCEEDED",
                "TRANSACTIONS_SYNC_LIMIT",
                "rate limit exceeded for attempts to access this item",
            ),
            FaultKind::ServerError => perr(500, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred"),
            FaultKind::LoginRequired => {
                if let Some(item) = w.plaid.items.get_mut(&access) {
                    item.login_required = true;
                }
                perr(400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED", "the login details of this item have changed")
            }
            _ => {
                if let Some(item) = w.plaid.items.get_mut(&access) {
                    item.removed = true;
                }
                perr(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "could not find matching access token")
            }
        };
        return (r, none);
    }
    if !itemless && let Some(r) = item_error(w, path, &access) {
        return (r, none);
    }
    match path {
        "/sandbox/public_token/create" => {
            let institution = text(body, "institution_id");
            if !INSTITUTIONS.iter().any(|(id, _)| *id == institution) {
                return (perr(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided"), none);
            }
            let webhook = body.pointer("/options/webhook").and_then(Value::as_str);
            let (token, bank) = create_public_token(w, institution, webhook);
            (ok(json!({"public_token": token, "sandbox_bank_id": bank})), none)
        }
        "/link/token/create" => {
            let token = format!("link-sandbox-{}", w.uuid());
            let hours = if access.is_empty() { 4 } else { 0 };
            let expiration = Utc::now()
                + chrono::Duration::hours(hours)
                + chrono::Duration::minutes(if hours == 0 { 30 } else { 0 });
            (
                ok(
                    json!({"link_token": token, "expiration": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
                ),
                none,
            )
        }
        "/item/public_token/exchange" => {
            let token = text(body, "public_token");
            let Some(p) = w.plaid.public_tokens.remove(token) else {
                return (
                    perr(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN", "could not find matching public token"),
                    none,
                );
            };
            if Utc::now() - p.created > chrono::Duration::minutes(30) {
                return (perr(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN", "the public token has expired"), none);
            }
            let access = format!("access-sandbox-{}", w.uuid());
            let item_id: String = w.uuid().replace('-', "");
            w.plaid.items.insert(
                access.clone(),
                Item {
                    item_id: item_id.clone(),
                    bank: p.bank,
                    webhook: p.webhook,
                    removed: false,
                    login_required: false,
                    synced: false,
                },
            );
            (ok(json!({"access_token": access, "item_id": item_id})), none)
        }
        "/accounts/get" | "/item/get" => {
            let item = &w.plaid.items[&access];
            let bank = &w.banks[item.bank];
            let item_json = json!({
                "item_id": item.item_id, "institution_id": bank.institution_id, "institution_name": bank.institution_name,
                "webhook": item.webhook, "error": null, "available_products": ["balance"], "billed_products": ["transactions"],
                "consent_expiration_time": null, "update_type": "background",
            });
            if path == "/item/get" {
                return (
                    ok(
                        json!({"item": item_json, "status": {"transactions": {"last_successful_update": Utc::now(), "last_failed_update": null}}}),
                    ),
                    none,
                );
            }
            (ok(json!({"accounts": render_accounts(bank), "item": item_json})), none)
        }
        "/institutions/get_by_id" => match INSTITUTIONS.iter().find(|(id, _)| *id == text(body, "institution_id")) {
            Some((id, name)) => (
                ok(
                    json!({"institution": {"institution_id": id, "name": name, "products": ["transactions"], "country_codes": ["US"]}}),
                ),
                none,
            ),
            None => (perr(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided"), none),
        },
        "/transactions/sync" => sync(w, &access, body),
        "/transactions/refresh" => {
            let bank = w.plaid.items[&access].bank;
            let today = w.today();
            w.banks[bank].activity(today, 3);
            let hooks = sync_webhooks_for_bank(w, bank)
                .into_iter()
                .map(|(item, url)| (url, json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": item,
                                                "initial_update_complete": true, "historical_update_complete": true, "environment": "sandbox"})))
                .collect();
            (ok(json!({})), hooks)
        }
        "/item/remove" => {
            if let Some(item) = w.plaid.items.get_mut(&access) {
                item.removed = true;
            }
            (ok(json!({})), none)
        }
        "/sandbox/item/reset_login" => {
            let item = w.plaid.items.get_mut(&access).expect("checked above");
            item.login_required = true;
            let hooks = item
                .webhook
                .clone()
                .map(|url| {
                    (url, json!({"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": item.item_id, "environment": "sandbox",
                                 "error": {"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED", "error_message": "the login details of this item have changed", "display_message": null, "status": 400}}))
                })
                .into_iter()
                .collect();
            (ok(json!({"reset_login": true})), hooks)
        }
        "/sandbox/item/fire_webhook" => {
            let item = &w.plaid.items[&access];
            let code = text(body, "webhook_code");
            let hook = match code {
                "SYNC_UPDATES_AVAILABLE" => {
                    json!({"webhook_type": "TRANSACTIONS", "webhook_code": code, "item_id": item.item_id,
                    "initial_update_complete": true, "historical_update_complete": true, "environment": "sandbox"})
                }
                "LOGIN_REPAIRED" | "USER_PERMISSION_REVOKED" | "PENDING_EXPIRATION" | "NEW_ACCOUNTS_AVAILABLE" => {
                    json!({"webhook_type": "ITEM", "webhook_code": code, "item_id": item.item_id, "environment": "sandbox",
                           "consent_expiration_time": (Utc::now() + chrono::Duration::days(7)).to_rfc3339()})
                }
                _ => return (perr(400, "INVALID_INPUT", "INVALID_FIELD", "unsupported webhook_code"), none),
            };
            let hooks = item.webhook.clone().map(|url| (url, hook)).into_iter().collect();
            (ok(json!({"webhook_fired": true})), hooks)
        }
        "/webhook_verification_key/get" => {
            let jwk = s.webhook_jwk();
            if text(body, "key_id") != jwk["kid"].as_str().unwrap_or_default() {
                return (perr(400, "INVALID_INPUT", "INVALID_FIELD", "unknown key_id"), none);
            }
            (ok(json!({"key": jwk})), none)
        }
        _ => (perr(404, "INVALID_REQUEST", "NOT_FOUND", "unknown endpoint"), none),
    }
}

fn sync(w: &mut World, access: &str, body: &Value) -> (Response, Hooks) {
    let none = Vec::new();
    let (item_id, bank_id) = {
        let item = &w.plaid.items[access];
        (item.item_id.clone(), item.bank)
    };
    let cursor = text(body, "cursor");
    let (seq, version, mid) = if cursor.is_empty() {
        (0, w.banks[bank_id].version, false)
    } else {
        match decode_cursor(cursor) {
            Some((i, s, v, m)) if i == item_id => (s, v, m),
            _ => return (perr(400, "INVALID_INPUT", "INVALID_FIELD", "cursor is not valid"), none),
        }
    };
    if w.take_fault(Via::Plaid, "/transactions/sync", |k| k == FaultKind::NotReady).is_some() {
        w.plaid.items.get_mut(access).expect("item").synced = true;
        return (
            ok(
                json!({"added": [], "modified": [], "removed": [], "next_cursor": "", "has_more": false, "accounts": [],
                      "transactions_update_status": "NOT_READY"}),
            ),
            none,
        );
    }
    if mid && w.take_fault(Via::Plaid, "/transactions/sync", |k| k == FaultKind::Mutation).is_some() {
        // A transaction lands while the client is paging.
        let today = w.today();
        w.banks[bank_id].add(0, today, rust_decimal::Decimal::new(-4242, 2), "LATE POSTING CORRECTION", false);
    }
    let bank = &w.banks[bank_id];
    if mid && version != bank.version {
        return (
            perr(
                400,
                "TRANSACTIONS_ERROR",
                "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                "underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
            ),
            none,
        );
    }
    let count = body.get("count").and_then(Value::as_u64).unwrap_or(100).clamp(1, 500) as usize;
    let end = (seq + count).min(bank.log.len());
    let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for change in &bank.log[seq.min(end)..end] {
        match *change {
            Change::Added(i) => added.push(render_txn(bank, i)),
            Change::Modified(i) => modified.push(render_txn(bank, i)),
            Change::Removed(i) => removed
                .push(json!({"transaction_id": bank.txns[i].id, "account_id": bank.accounts[bank.txns[i].account].id})),
        }
    }
    let has_more = end < bank.log.len();
    let next = encode_cursor(&item_id, end, bank.version, has_more);
    let accounts = render_accounts(bank);
    w.plaid.items.get_mut(access).expect("item").synced = true;
    (
        ok(json!({"added": added, "modified": modified, "removed": removed, "next_cursor": next, "has_more": has_more,
                  "accounts": accounts, "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE"})),
        none,
    )
}

async fn repair(State(s): State<Sandbox>, Path(item_id): Path<String>) -> Response {
    let hook = s.with(|w| {
        let access = w.plaid.access_of_item(&item_id)?;
        let item = w.plaid.items.get_mut(&access)?;
        item.login_required = false;
        Some(item.webhook.clone().map(|url| {
            (url, json!({"webhook_type": "ITEM", "webhook_code": "LOGIN_REPAIRED", "item_id": item_id, "environment": "sandbox"}))
        }))
    });
    match hook {
        Some(h) => {
            if let Some((url, body)) = h {
                s.send_plaid_webhook(&url, body);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => crate::error(StatusCode::NOT_FOUND, "no such item"),
    }
}
