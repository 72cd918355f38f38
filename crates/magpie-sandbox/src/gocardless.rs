//! GoCardless Bank Account Data on the emulator: `/gocardless/api/v2/...` with an API token pair,
//! institutions, end-user agreements, requisitions (`CR` until the consent page at `link` is visited,
//! then `LN`; `EX` when expired), accounts with statuses and a per-account, per-endpoint daily quota
//! reported in the `HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_*` headers. Pending rows carry no id.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sha2::Digest;

use crate::bank::Via;
use crate::{FaultKind, Sandbox, World};

const INSTITUTIONS: &[(&str, &str, &str)] = &[
    ("SANDBOXFINANCE_SFIN0000", "Sandbox Finance", "SFIN0000"),
    ("REVOLUT_REVOGB21", "Revolut", "REVOGB21"),
    ("MONZO_MONZGB2L", "Monzo", "MONZGB2L"),
];

struct Agreement {
    institution_id: String,
    max_historical_days: u32,
    access_valid_for_days: u32,
    accepted: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
}

struct Requisition {
    bank: usize,
    institution_id: String,
    status: &'static str,
    redirect: String,
    reference: String,
    agreement: String,
    accounts: Vec<String>,
    created: DateTime<Utc>,
}

struct Account {
    bank: usize,
    index: usize,
    requisition: String,
    suspended: bool,
    successes: HashMap<(&'static str, NaiveDate), u32>,
}

#[derive(Default)]
pub(crate) struct GcState {
    access: HashMap<String, DateTime<Utc>>,
    refresh: HashMap<String, DateTime<Utc>>,
    agreements: HashMap<String, Agreement>,
    requisitions: HashMap<String, Requisition>,
    order: Vec<String>,
    accounts: HashMap<String, Account>,
}

impl GcState {
    pub(crate) fn requisition_of_bank(&self, bank: usize) -> Option<String> {
        self.requisitions.iter().find(|(_, r)| r.bank == bank).map(|(id, _)| id.clone())
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/gocardless/api/v2/{*path}", any(api))
        .route("/gocardless/psd2/start/{id}/{institution}", get(consent_page))
        .route("/_sandbox/gocardless/requisitions/{id}/{action}", post(control))
        .route("/_sandbox/gocardless/expire-tokens", post(expire_tokens))
}

fn gerr(status: u16, summary: &str, detail: &str, kind: Option<&str>) -> Response {
    let mut body = json!({"summary": summary, "detail": detail, "status_code": status});
    if let Some(k) = kind {
        body["type"] = json!(k);
    }
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

fn ok(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A requisition (status `CR`) for a new bank.
pub(crate) fn create_requisition(w: &mut World, institution: &str, redirect: &str, reference: &str) -> (String, usize) {
    let bank = w.new_bank(Via::Gocardless);
    if let Some((id, name, _)) = INSTITUTIONS.iter().find(|(id, _, _)| *id == institution) {
        w.banks[bank].institution_id = (*id).to_owned();
        w.banks[bank].institution_name = (*name).to_owned();
    }
    let agreement = w.uuid();
    w.gocardless.agreements.insert(
        agreement.clone(),
        Agreement {
            institution_id: institution.to_owned(),
            max_historical_days: 90,
            access_valid_for_days: 90,
            accepted: None,
            created: Utc::now(),
        },
    );
    let id = w.uuid();
    w.gocardless.requisitions.insert(
        id.clone(),
        Requisition {
            bank,
            institution_id: institution.to_owned(),
            status: "CR",
            redirect: redirect.to_owned(),
            reference: reference.to_owned(),
            agreement,
            accounts: Vec::new(),
            created: Utc::now(),
        },
    );
    w.gocardless.order.push(id.clone());
    (id, bank)
}

/// The bank behind a requisition.
pub(crate) fn bank_of(w: &World, id: &str) -> Option<usize> {
    w.gocardless.requisitions.get(id).map(|r| r.bank)
}

/// The person gave consent: the requisition is linked and its accounts exist.
pub(crate) fn link(w: &mut World, id: &str) -> bool {
    let Some(req) = w.gocardless.requisitions.get_mut(id) else { return false };
    req.status = "LN";
    let bank = req.bank;
    let ids: Vec<String> = w.banks[bank].accounts.iter().map(|a| a.id.clone()).collect();
    req.accounts = ids.clone();
    if let Some(a) = w.gocardless.agreements.get_mut(&req.agreement) {
        a.accepted = Some(Utc::now());
    }
    for (index, account) in ids.into_iter().enumerate() {
        w.gocardless.accounts.entry(account).or_insert(Account {
            bank,
            index,
            requisition: id.to_owned(),
            suspended: false,
            successes: HashMap::new(),
        });
    }
    true
}

fn render_requisition(w: &World, id: &str, r: &Requisition) -> Value {
    json!({
        "id": id, "created": r.created, "redirect": r.redirect, "status": r.status, "institution_id": r.institution_id,
        "agreement": r.agreement, "reference": r.reference, "accounts": r.accounts, "user_language": "EN",
        "link": format!("{}/gocardless/psd2/start/{id}/{}", w.base_url, r.institution_id), "ssn": null,
        "account_selection": false, "redirect_immediate": false,
    })
}

fn render_institution(i: &(&str, &str, &str)) -> Value {
    json!({"id": i.0, "name": i.1, "bic": i.2, "transaction_total_days": "730", "max_access_valid_for_days": "180",
           "countries": ["GB", "DE", "NL"], "logo": "https://cdn.example/logo.png", "supported_features": []})
}

fn render_agreement(id: &str, a: &Agreement) -> Value {
    json!({"id": id, "created": a.created, "institution_id": a.institution_id, "max_historical_days": a.max_historical_days,
           "access_valid_for_days": a.access_valid_for_days, "access_scope": ["balances", "details", "transactions"],
           "accepted": a.accepted})
}

async fn api(
    State(s): State<Sandbox>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let body: Value = if body.is_empty() { json!({}) } else { serde_json::from_slice(&body).unwrap_or(json!(null)) };
    if path.contains("/transactions") {
        s.delay().await;
    }
    s.with(|w| {
        w.hit(format!("gocardless {method} /{path}"));
        handle(w, &method, &path, &headers, query.as_deref().unwrap_or_default(), &body)
    })
}

fn query_get<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn handle(w: &mut World, method: &Method, path: &str, headers: &HeaderMap, query: &str, body: &Value) -> Response {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["token", "new"]) => {
            if text("secret_id") != w.cfg.gocardless_secret_id || text("secret_key") != w.cfg.gocardless_secret_key {
                return gerr(401, "Authentication failed", "No active account found with the given credentials", None);
            }
            let (access, refresh) = (w.uuid(), w.uuid());
            w.gocardless.access.insert(access.clone(), Utc::now() + chrono::Duration::seconds(86_400));
            w.gocardless.refresh.insert(refresh.clone(), Utc::now() + chrono::Duration::seconds(2_592_000));
            return ok(
                StatusCode::OK,
                json!({"access": access, "access_expires": 86_400, "refresh": refresh, "refresh_expires": 2_592_000}),
            );
        }
        ("POST", ["token", "refresh"]) => {
            let valid = w.gocardless.refresh.get(&text("refresh")).is_some_and(|t| *t > Utc::now());
            if !valid {
                return gerr(401, "Invalid token", "Token is invalid or expired", None);
            }
            let access = w.uuid();
            w.gocardless.access.insert(access.clone(), Utc::now() + chrono::Duration::seconds(86_400));
            return ok(StatusCode::OK, json!({"access": access, "access_expires": 86_400}));
        }
        _ => {}
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|b| w.gocardless.access.get(b).is_some_and(|t| *t > Utc::now()));
    if !valid {
        return gerr(401, "Invalid token", "Token is invalid or expired", None);
    }
    match w.take_fault(Via::Gocardless, path, |k| {
        matches!(k, FaultKind::RateLimit | FaultKind::ServerError | FaultKind::LoginRequired | FaultKind::Revoked)
    }) {
        Some(FaultKind::RateLimit) => {
            return gerr(429, "Rate limit exceeded", "Rate limit exceeded. Please try again in 60 seconds", None);
        }
        Some(FaultKind::ServerError) => {
            return gerr(
                503,
                "Institution service unavailable",
                "The institution's service is unavailable, try again later",
                Some("ServiceError"),
            );
        }
        Some(FaultKind::LoginRequired) => {
            for r in w.gocardless.requisitions.values_mut() {
                r.status = "EX";
            }
        }
        Some(FaultKind::Revoked) => {
            for a in w.gocardless.accounts.values_mut() {
                a.suspended = true;
            }
        }
        _ => {}
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["institutions"]) => {
            let country = query_get(query, "country").unwrap_or_default().to_ascii_uppercase();
            let list: Vec<Value> = INSTITUTIONS
                .iter()
                .filter(|_| ["GB", "DE", "NL", ""].contains(&country.as_str()))
                .map(render_institution)
                .collect();
            ok(StatusCode::OK, json!(list))
        }
        ("GET", ["institutions", id]) => match INSTITUTIONS.iter().find(|i| i.0 == *id) {
            Some(i) => ok(StatusCode::OK, render_institution(i)),
            None => gerr(404, "Not found.", &format!("Institution {id} not found"), None),
        },
        ("POST", ["agreements", "enduser"]) => {
            let institution = text("institution_id");
            let history = body.get("max_historical_days").and_then(Value::as_u64).unwrap_or(90);
            let valid = body.get("access_valid_for_days").and_then(Value::as_u64).unwrap_or(90);
            if !INSTITUTIONS.iter().any(|i| i.0 == institution) {
                return ok(
                    StatusCode::BAD_REQUEST,
                    json!({"institution_id": {"summary": "Unknown Institution ID", "detail": "Get Institution IDs from /institutions/?country={$COUNTRY_CODE}"}, "status_code": 400}),
                );
            }
            if !(1..=730).contains(&history) || !(1..=180).contains(&valid) {
                return ok(
                    StatusCode::BAD_REQUEST,
                    json!({"max_historical_days": {"summary": "Incorrect max_historical_days", "detail": "must be 1..730"}, "status_code": 400}),
                );
            }
            let id = w.uuid();
            let a = Agreement {
                institution_id: institution,
                max_historical_days: history as u32,
                access_valid_for_days: valid as u32,
                accepted: None,
                created: Utc::now(),
            };
            let v = render_agreement(&id, &a);
            w.gocardless.agreements.insert(id, a);
            ok(StatusCode::CREATED, v)
        }
        ("GET", ["agreements", "enduser", id]) => match w.gocardless.agreements.get(*id) {
            Some(a) => ok(StatusCode::OK, render_agreement(id, a)),
            None => gerr(404, "Not found.", "End User Agreement not found", None),
        },
        ("POST", ["requisitions"]) => {
            let (redirect, institution) = (text("redirect"), text("institution_id"));
            if redirect.is_empty() || !INSTITUTIONS.iter().any(|i| i.0 == institution) {
                return ok(
                    StatusCode::BAD_REQUEST,
                    json!({"redirect": {"summary": "This field is required.", "detail": "redirect and a known institution_id are required"}, "status_code": 400}),
                );
            }
            let (id, _) = create_requisition(w, &institution, &redirect, &text("reference"));
            let agreement = text("agreement");
            if !agreement.is_empty() && w.gocardless.agreements.contains_key(&agreement) {
                w.gocardless.requisitions.get_mut(&id).expect("just created").agreement = agreement;
            }
            let v = render_requisition(w, &id, &w.gocardless.requisitions[&id]);
            ok(StatusCode::CREATED, v)
        }
        ("GET", ["requisitions"]) => {
            let limit = query_get(query, "limit").and_then(|v| v.parse().ok()).unwrap_or(100usize).clamp(1, 100);
            let offset = query_get(query, "offset").and_then(|v| v.parse().ok()).unwrap_or(0usize);
            let results: Vec<Value> = w
                .gocardless
                .order
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|id| w.gocardless.requisitions.get(id).map(|r| render_requisition(w, id, r)))
                .collect();
            ok(
                StatusCode::OK,
                json!({"count": w.gocardless.order.len(), "next": null, "previous": null, "results": results}),
            )
        }
        ("GET", ["requisitions", id]) => match w.gocardless.requisitions.get(*id) {
            Some(r) => ok(StatusCode::OK, render_requisition(w, id, r)),
            None => gerr(404, "Not found.", &format!("Requisition {id} not found"), None),
        },
        ("DELETE", ["requisitions", id]) => match w.gocardless.requisitions.remove(*id) {
            Some(r) => {
                w.gocardless.order.retain(|o| o != id);
                for a in r.accounts {
                    w.gocardless.accounts.remove(&a);
                }
                ok(
                    StatusCode::OK,
                    json!({"summary": "Requisition deleted", "detail": format!("Requisition '{id}' deleted with all its End User Agreements")}),
                )
            }
            None => gerr(404, "Not found.", &format!("Requisition {id} not found"), None),
        },
        ("GET", ["accounts", id]) => {
            let Some(a) = w.gocardless.accounts.get(*id) else {
                return gerr(404, "Not found.", &format!("Account {id} not found"), None);
            };
            let expired = w.gocardless.requisitions.get(&a.requisition).is_none_or(|r| r.status == "EX");
            let bank = &w.banks[a.bank];
            let account = &bank.accounts[a.index];
            let status = if a.suspended {
                "SUSPENDED"
            } else if expired {
                "EXPIRED"
            } else {
                "READY"
            };
            ok(
                StatusCode::OK,
                json!({"id": id, "created": "2026-01-01T00:00:00Z", "last_accessed": Utc::now(), "iban": account.iban,
                "institution_id": bank.institution_id, "owner_name": "Sandy Box", "name": account.name, "status": status}),
            )
        }
        ("GET", ["accounts", id, endpoint @ ("details" | "balances" | "transactions")]) => {
            account_data(w, id, endpoint, query)
        }
        _ => gerr(404, "Not found.", "Unknown endpoint", None),
    }
}

fn account_data(w: &mut World, id: &str, endpoint: &str, query: &str) -> Response {
    let today = w.today();
    let limit = w.cfg.gocardless_daily_limit;
    let Some(a) = w.gocardless.accounts.get(id) else {
        return gerr(404, "Not found.", &format!("Account {id} not found"), None);
    };
    if w.gocardless.requisitions.get(&a.requisition).is_none_or(|r| r.status == "EX") {
        return gerr(
            401,
            "Access has expired or it has been revoked.",
            "End User Agreement (EUA) has expired or it has been revoked. To restore access reconnect the account.",
            Some("AccessExpiredError"),
        );
    }
    if a.suspended {
        return gerr(
            409,
            "Account suspended",
            "The account was suspended due to numerous errors that occurred while accessing it.",
            None,
        );
    }
    let endpoint: &'static str = match endpoint {
        "details" => "details",
        "balances" => "balances",
        _ => "transactions",
    };
    let used = a.successes.get(&(endpoint, today)).copied().unwrap_or(0);
    let midnight = (today + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let reset = (midnight - Utc::now()).num_seconds().max(1);
    let quota_headers = |remaining: u32| {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("http_x_ratelimit_account_success_limit", limit.to_string()),
            ("http_x_ratelimit_account_success_remaining", remaining.to_string()),
            ("http_x_ratelimit_account_success_reset", reset.to_string()),
        ] {
            h.insert(k, HeaderValue::from_str(&v).expect("digits are a valid header value"));
        }
        h
    };
    if used >= limit {
        let mut r = gerr(
            429,
            "Rate limit exceeded",
            &format!(
                "Daily request limit set by the Institution has been exceeded. Please try again in {reset} seconds"
            ),
            Some("RateLimitError"),
        );
        r.headers_mut().extend(quota_headers(0));
        return r;
    }
    let bank = &w.banks[a.bank];
    let index = a.index;
    let account = &bank.accounts[index];
    let body = match endpoint {
        "details" => json!({"account": {"resourceId": account.id, "iban": account.iban, "currency": account.currency,
                                        "ownerName": "Sandy Box", "name": account.name, "cashAccountType": "CACC"}}),
        "balances" => {
            let sum: rust_decimal::Decimal =
                bank.live().filter(|t| t.account == index && !t.pending).map(|t| t.amount).sum();
            json!({"balances": [{"balanceAmount": {"amount": sum.to_string(), "currency": account.currency}, "balanceType": "closingBooked", "referenceDate": today}]})
        }
        _ => {
            let from =
                query_get(query, "date_from").and_then(|d| d.parse::<NaiveDate>().ok()).unwrap_or(NaiveDate::MIN);
            let to = query_get(query, "date_to").and_then(|d| d.parse::<NaiveDate>().ok()).unwrap_or(NaiveDate::MAX);
            let rows = bank.live().filter(|t| t.account == index && t.date >= from && t.date <= to);
            let (mut booked, mut pending) = (Vec::new(), Vec::new());
            for t in rows {
                let amount = json!({"amount": t.amount.to_string(), "currency": account.currency});
                let party = if t.merchant.is_empty() { Value::Null } else { json!(t.merchant) };
                let mut v = json!({"valueDate": t.date, "transactionAmount": amount, "remittanceInformationUnstructured": t.description});
                if t.amount.is_sign_negative() {
                    v["creditorName"] = party;
                } else {
                    v["debtorName"] = party;
                }
                if t.pending {
                    pending.push(v);
                } else {
                    let internal: String =
                        sha2::Sha256::digest(t.id.as_bytes()).iter().take(5).map(|b| format!("{b:02x}")).collect();
                    v["transactionId"] = json!(t.id);
                    v["internalTransactionId"] = json!(internal);
                    v["bookingDate"] = json!(t.date);
                    booked.push(v);
                }
            }
            json!({"transactions": {"booked": booked, "pending": pending}, "last_updated": Utc::now()})
        }
    };
    let a = w.gocardless.accounts.get_mut(id).expect("checked above");
    *a.successes.entry((endpoint, today)).or_insert(0) += 1;
    let mut r = ok(StatusCode::OK, body);
    r.headers_mut().extend(quota_headers(limit - used - 1));
    r
}

async fn consent_page(State(s): State<Sandbox>, Path((id, _institution)): Path<(String, String)>) -> Response {
    s.with(|w| {
        if !link(w, &id) {
            return (StatusCode::NOT_FOUND, "no such requisition").into_response();
        }
        let r = &w.gocardless.requisitions[&id];
        let sep = if r.redirect.contains('?') { '&' } else { '?' };
        let location = format!("{}{sep}ref={}", r.redirect, r.reference);
        (StatusCode::FOUND, [("location", location)]).into_response()
    })
}

async fn control(State(s): State<Sandbox>, Path((id, action)): Path<(String, String)>) -> Response {
    s.with(|w| {
        let done = match action.as_str() {
            "link" => link(w, &id),
            "expire" => w.gocardless.requisitions.get_mut(&id).map(|r| r.status = "EX").is_some(),
            "suspend" => {
                let accounts = w.gocardless.requisitions.get(&id).map(|r| r.accounts.clone()).unwrap_or_default();
                for a in &accounts {
                    if let Some(acc) = w.gocardless.accounts.get_mut(a) {
                        acc.suspended = true;
                    }
                }
                !accounts.is_empty()
            }
            _ => return crate::error(StatusCode::BAD_REQUEST, "action is link, expire or suspend"),
        };
        if done {
            StatusCode::NO_CONTENT.into_response()
        } else {
            crate::error(StatusCode::NOT_FOUND, "no such requisition")
        }
    })
}

async fn expire_tokens(State(s): State<Sandbox>) -> StatusCode {
    s.with(|w| {
        for t in w.gocardless.access.values_mut() {
            *t = Utc::now() - chrono::Duration::seconds(1);
        }
    });
    StatusCode::NO_CONTENT
}
