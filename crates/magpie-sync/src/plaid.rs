//! Plaid (API version 2020-09-14): link tokens, public token exchange, `/transactions/sync` with its
//! cursor and the restart-on-mutation rule, item removal and webhook verification
//! (`bank-sync-protocols.md` §1).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{self, to_cents};
use crate::{Account, Batch, Linked, Provider, Secret, SyncError, SyncOptions, Txn, TxnRef, categories, sanitize};

/// The code Plaid answers a stale mid-pagination cursor with.
pub const MUTATION: &str = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION";
/// How many times a pagination is restarted from the start cursor after a mutation.
const MAX_RESTARTS: usize = 3;
/// A pagination longer than this is a protocol error, not a bank (500 per page: 5 million rows).
const MAX_PAGES: usize = 10_000;

/// How to reach Plaid.
#[derive(Debug, Clone)]
pub struct PlaidConfig {
    /// `https://sandbox.plaid.com`, `https://production.plaid.com`, or the emulator.
    pub base_url: String,
    /// Client id.
    pub client_id: String,
    /// Secret for the environment.
    pub secret: Secret,
    /// Where Plaid sends webhooks (set on new items' link tokens).
    pub webhook_url: Option<String>,
    /// Transactions per `/transactions/sync` page (1..=500).
    pub page_size: u32,
    /// Countries offered in Link.
    pub country_codes: Vec<String>,
    /// Name shown in Link (at most 30 characters).
    pub client_name: String,
    /// Per-request time limit.
    pub timeout: Duration,
}

impl PlaidConfig {
    /// Defaults around a base URL and credentials.
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> PlaidConfig {
        PlaidConfig {
            base_url: base_url.into(),
            client_id: client_id.into(),
            secret,
            webhook_url: None,
            page_size: 500,
            country_codes: vec!["US".into(), "CA".into(), "GB".into()],
            client_name: "Magpie".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A Plaid client.
pub struct PlaidClient {
    cfg: PlaidConfig,
    http: http::Client,
    keys: Mutex<HashMap<String, WebhookKey>>,
    /// Key ids Plaid did not know, and signatures already accepted (see [`WebhookGuard`]).
    webhook_guard: Mutex<WebhookGuard>,
}

/// Memory of webhook verification, per process:
/// * key ids Plaid said it does not know, for ten minutes, and at most ten key fetches a minute in
///   all: a forged header naming random key ids cannot make this server call Plaid for each request;
/// * the signatures of the tokens accepted in the last six minutes: a captured webhook cannot be
///   replayed within the five minutes its token is fresh.
#[derive(Default)]
struct WebhookGuard {
    unknown_kids: HashMap<String, i64>,
    fetches: Vec<i64>,
    seen: HashMap<String, i64>,
}

/// How long a key id Plaid did not know stays unknown, in seconds.
const UNKNOWN_KID_SECS: i64 = 600;
/// Key fetches allowed per minute.
const KEY_FETCHES_PER_MINUTE: usize = 10;
/// How long an accepted token is remembered: longer than its freshness window (300 s + 60 s skew).
const SEEN_SECS: i64 = 360;

#[derive(Clone)]
struct WebhookKey {
    key: VerifyingKey,
    expired_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct PlaidError {
    #[serde(default)]
    error_type: String,
    error_code: String,
    #[serde(default)]
    error_message: String,
}

/// A link token for Plaid Link.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct LinkToken {
    /// The token (`link-<env>-…`), handed to the Link UI.
    pub link_token: String,
    /// When it stops working.
    pub expiration: String,
}

#[derive(Debug, Deserialize)]
struct Exchange {
    access_token: String,
    item_id: String,
}

#[derive(Debug, Deserialize)]
struct AccountsGet {
    accounts: Vec<PAccount>,
    item: PItem,
}

#[derive(Debug, Deserialize)]
struct PItem {
    #[serde(default)]
    institution_id: Option<String>,
    #[serde(default)]
    institution_name: Option<String>,
    #[serde(default)]
    consent_expiration_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct PAccount {
    account_id: String,
    name: String,
    #[serde(default)]
    mask: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    balances: PBalances,
}

#[derive(Debug, Default, Deserialize)]
struct PBalances {
    #[serde(default, deserialize_with = "http::de_opt_decimal")]
    available: Option<rust_decimal::Decimal>,
    #[serde(default, deserialize_with = "http::de_opt_decimal")]
    current: Option<rust_decimal::Decimal>,
    #[serde(default)]
    iso_currency_code: Option<String>,
    #[serde(default)]
    unofficial_currency_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SyncPage {
    added: Vec<PTxn>,
    modified: Vec<PTxn>,
    removed: Vec<PRemoved>,
    next_cursor: String,
    has_more: bool,
    #[serde(default)]
    accounts: Vec<PAccount>,
    #[serde(default)]
    transactions_update_status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PRemoved {
    transaction_id: String,
    #[serde(default)]
    account_id: String,
}

#[derive(Debug, Deserialize)]
struct PTxn {
    transaction_id: String,
    account_id: String,
    #[serde(deserialize_with = "http::de_decimal")]
    amount: rust_decimal::Decimal,
    #[serde(default)]
    iso_currency_code: Option<String>,
    #[serde(default)]
    unofficial_currency_code: Option<String>,
    date: NaiveDate,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    merchant_name: Option<String>,
    #[serde(default)]
    original_description: Option<String>,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    pending_transaction_id: Option<String>,
    #[serde(default)]
    personal_finance_category: Option<Pfc>,
}

#[derive(Debug, Deserialize)]
struct Pfc {
    primary: String,
    #[serde(default)]
    detailed: Option<String>,
    #[serde(default)]
    confidence_level: Option<String>,
}

fn account(a: PAccount) -> Account {
    // Plaid reports what is owed on credit and loan accounts as a positive balance; ours is signed
    // like amounts (positive = yours).
    let owed = matches!(a.kind.as_deref(), Some("credit" | "loan"));
    let sign = |d: rust_decimal::Decimal| if owed { -d } else { d };
    Account {
        id: a.account_id,
        name: a.name,
        mask: a.mask,
        kind: a.kind,
        currency: a.balances.iso_currency_code.or(a.balances.unofficial_currency_code),
        balance: a.balances.current.map(sign),
        available: a.balances.available,
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn txn(t: PTxn) -> Txn {
    let description = nonempty(t.merchant_name)
        .or(nonempty(t.name))
        .or(nonempty(t.original_description))
        .unwrap_or_else(|| "(no description)".to_owned());
    Txn {
        account_id: t.account_id,
        id: t.transaction_id,
        weak_id: false,
        pending: t.pending,
        pending_of: nonempty(t.pending_transaction_id),
        date: t.date,
        // Plaid: positive = money out. Ours: positive = money in.
        amount: to_cents(-t.amount),
        currency: t.iso_currency_code.or(t.unofficial_currency_code),
        description,
        category: t
            .personal_finance_category
            .and_then(|p| categories::from_plaid(&p.primary, p.detailed.as_deref(), p.confidence_level.as_deref())),
    }
}

/// What the sync state of a Plaid connection holds.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct State {
    #[serde(default)]
    cursor: String,
}

/// Net effect of the pages of one update, in the provider's order.
#[derive(Default)]
struct Accumulated {
    upserts: Vec<Option<Txn>>,
    position: HashMap<(String, String), usize>,
    removed: Vec<TxnRef>,
    accounts: Vec<Account>,
}

impl Accumulated {
    fn upsert(&mut self, t: Txn) {
        let key = (t.account_id.clone(), t.id.clone());
        if let Some(&i) = self.position.get(&key) {
            self.upserts[i] = None;
        }
        self.position.insert(key, self.upserts.len());
        self.upserts.push(Some(t));
    }

    fn remove(&mut self, r: PRemoved) {
        // Plaid may omit the account id on removals; look it up among this update's rows.
        let account_id = if r.account_id.is_empty() {
            self.position.keys().find(|(_, id)| *id == r.transaction_id).map(|(a, _)| a.clone()).unwrap_or_default()
        } else {
            r.account_id
        };
        if let Some(i) = self.position.remove(&(account_id.clone(), r.transaction_id.clone())) {
            self.upserts[i] = None;
        }
        self.removed.push(TxnRef { account_id, id: r.transaction_id });
    }
}

impl PlaidClient {
    /// A client.
    pub fn new(cfg: PlaidConfig) -> PlaidClient {
        let http = http::Client::new(cfg.timeout);
        PlaidClient { cfg, http, keys: Mutex::new(HashMap::new()), webhook_guard: Mutex::new(WebhookGuard::default()) }
    }

    async fn call<T: DeserializeOwned>(&self, path: &str, mut body: Value) -> Result<T, SyncError> {
        body["client_id"] = Value::String(self.cfg.client_id.clone());
        body["secret"] = Value::String(self.cfg.secret.expose().to_owned());
        let url = format!("{}{path}", self.cfg.base_url.trim_end_matches('/'));
        let res = self
            .http
            .get()
            .post(url)
            .header("Plaid-Version", "2020-09-14")
            .json(&body)
            .send()
            .await
            .map_err(http::network_error)?;
        let status = res.status();
        let retry_after = http::retry_after(res.headers());
        let text = http::body_text(res).await?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| http::bad_response(path, e));
        }
        Err(match serde_json::from_str::<PlaidError>(&text) {
            Ok(e) => map_error(status.as_u16(), &e, retry_after),
            Err(_) if status.as_u16() == 429 => SyncError::RateLimited { code: "http_429".into(), retry_after },
            Err(_) if status.is_server_error() => {
                SyncError::transient(&format!("http_{}", status.as_u16()), "Plaid failed")
            }
            Err(_) => SyncError::invalid(&format!("http_{}", status.as_u16()), "Plaid refused the request"),
        })
    }

    /// A link token for Plaid Link: a new item, or update mode for an existing one (`access`), which
    /// repairs an expired login.
    pub async fn create_link_token(
        &self,
        client_user_id: &str,
        access: Option<&Secret>,
    ) -> Result<LinkToken, SyncError> {
        let mut body = json!({
            "client_name": self.cfg.client_name.chars().take(30).collect::<String>(),
            "language": "en",
            "country_codes": self.cfg.country_codes,
            "user": {"client_user_id": client_user_id},
        });
        match access {
            Some(token) => body["access_token"] = Value::String(token.expose().to_owned()),
            None => {
                body["products"] = json!(["transactions"]);
                body["transactions"] = json!({"days_requested": 730});
            }
        }
        if let Some(hook) = &self.cfg.webhook_url {
            body["webhook"] = Value::String(hook.clone());
        }
        self.call("/link/token/create", body).await
    }

    /// Exchange Link's public token for an access token and read the item and its accounts.
    pub async fn exchange(&self, public_token: &str) -> Result<Linked, SyncError> {
        let public_token = public_token.trim();
        if public_token.is_empty() || public_token.len() > 200 || !public_token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(SyncError::invalid("INVALID_PUBLIC_TOKEN", "the public token is malformed"));
        }
        let ex: Exchange = self.call("/item/public_token/exchange", json!({"public_token": public_token})).await?;
        let access = Secret::new(ex.access_token);
        match self.call::<AccountsGet>("/accounts/get", json!({"access_token": access.expose()})).await {
            Ok(got) => {
                let institution_id = got.item.institution_id.unwrap_or_else(|| "unknown".to_owned());
                let institution_name = match got.item.institution_name {
                    Some(n) if !n.trim().is_empty() => n,
                    _ => self.institution_name(&institution_id).await.unwrap_or_else(|| institution_id.clone()),
                };
                Ok(Linked {
                    secret: access,
                    external_id: ex.item_id,
                    institution_id,
                    institution_name,
                    consent_expires_at: got.item.consent_expiration_time,
                    accounts: got.accounts.into_iter().map(account).collect(),
                    state: serde_json::to_value(State::default()).expect("state serializes"),
                })
            }
            Err(e) => {
                // The item exists at Plaid now; do not leave it billing with nobody holding its token.
                let _ = self.revoke(&access).await;
                Err(e)
            }
        }
    }

    async fn institution_name(&self, id: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Got {
            institution: Inst,
        }
        #[derive(Deserialize)]
        struct Inst {
            name: String,
        }
        let body = json!({"institution_id": id, "country_codes": self.cfg.country_codes});
        self.call::<Got>("/institutions/get_by_id", body).await.ok().map(|g| g.institution.name)
    }

    /// One complete pagination from `start`, or the error that stopped it.
    async fn paginate(
        &self,
        access: &Secret,
        start: &str,
        batch: &mut Batch,
    ) -> Result<(Accumulated, String, Option<String>), SyncError> {
        let mut acc = Accumulated::default();
        let mut cursor = start.to_owned();
        let mut status = None;
        for _ in 0..MAX_PAGES {
            let mut body = json!({
                "access_token": access.expose(),
                "count": self.cfg.page_size.clamp(1, 500),
                "options": {"include_original_description": true, "personal_finance_category_version": "v2"},
            });
            if !cursor.is_empty() {
                body["cursor"] = Value::String(cursor.clone());
            }
            batch.requests += 1;
            let page: SyncPage = self.call("/transactions/sync", body).await?;
            for t in page.added.into_iter().chain(page.modified) {
                acc.upsert(txn(t));
            }
            for r in page.removed {
                acc.remove(r);
            }
            if !page.accounts.is_empty() {
                acc.accounts = page.accounts.into_iter().map(account).collect();
            }
            status = page.transactions_update_status.or(status);
            if !page.has_more {
                return Ok((acc, page.next_cursor, status));
            }
            if page.next_cursor == cursor || page.next_cursor.is_empty() {
                return Err(http::bad_response("/transactions/sync", "has_more without a new cursor"));
            }
            cursor = page.next_cursor;
        }
        Err(http::bad_response("/transactions/sync", "too many pages"))
    }

    /// Verify a webhook's `Plaid-Verification` JWT against the raw body and return the event.
    pub async fn verify_webhook(
        &self,
        jwt: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let jwt = jwt.ok_or(WebhookError::Missing)?;
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(WebhookError::Malformed("not a JWT"));
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: String,
        }
        #[derive(Deserialize)]
        struct Claims {
            iat: i64,
            request_body_sha256: String,
        }
        let header: Header = decode_json(h).ok_or(WebhookError::Malformed("header"))?;
        // The algorithm is pinned: never trust the token to choose it (no `none`, no HS256 with the
        // public key as secret).
        if header.alg != "ES256" {
            return Err(WebhookError::Malformed("algorithm is not ES256"));
        }
        if header.kid.is_empty() || header.kid.len() > 128 {
            return Err(WebhookError::Malformed("key id"));
        }
        let key = self.webhook_key(&header.kid, now).await?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(WebhookError::Malformed("signature"))?;
        key.verify(format!("{h}.{p}").as_bytes(), &signature).map_err(|_| WebhookError::BadSignature)?;
        let claims: Claims = decode_json(p).ok_or(WebhookError::Malformed("claims"))?;
        let age = now.timestamp() - claims.iat;
        if !(-60..=300).contains(&age) {
            return Err(WebhookError::Stale);
        }
        let digest = hex(&Sha256::digest(body));
        if !constant_time_eq(digest.as_bytes(), claims.request_body_sha256.to_ascii_lowercase().as_bytes()) {
            return Err(WebhookError::BodyMismatch);
        }
        {
            let mut guard = self.webhook_guard.lock().expect("the webhook guard lock is never poisoned");
            let t = now.timestamp();
            guard.seen.retain(|_, at| t - *at < SEEN_SECS);
            if guard.seen.insert(s.to_owned(), t).is_some() {
                return Err(WebhookError::Replayed);
            }
        }
        let raw: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed("body"))?;
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(WebhookEvent {
            webhook_type: text("webhook_type").unwrap_or_default(),
            webhook_code: text("webhook_code").unwrap_or_default(),
            item_id: text("item_id"),
            error_code: raw.pointer("/error/error_code").and_then(Value::as_str).map(str::to_owned),
            consent_expiration_time: text("consent_expiration_time")
                .or_else(|| text("disconnect_time"))
                .and_then(|t| t.parse().ok()),
        })
    }

    async fn webhook_key(&self, kid: &str, now: DateTime<Utc>) -> Result<VerifyingKey, WebhookError> {
        let cached = self.keys.lock().expect("the key cache lock is never poisoned").get(kid).cloned();
        let key = match cached {
            Some(k) => k,
            None => {
                {
                    let mut guard = self.webhook_guard.lock().expect("the webhook guard lock is never poisoned");
                    let t = now.timestamp();
                    guard.unknown_kids.retain(|_, at| t - *at < UNKNOWN_KID_SECS);
                    guard.fetches.retain(|at| t - *at < 60);
                    if guard.unknown_kids.contains_key(kid) {
                        return Err(WebhookError::UnknownKey);
                    }
                    if guard.fetches.len() >= KEY_FETCHES_PER_MINUTE {
                        return Err(WebhookError::UnknownKey);
                    }
                    guard.fetches.push(t);
                }
                #[derive(Deserialize)]
                struct Got {
                    key: Jwk,
                }
                #[derive(Deserialize)]
                struct Jwk {
                    kty: String,
                    crv: String,
                    x: String,
                    y: String,
                    #[serde(default)]
                    expired_at: Option<i64>,
                }
                let got: Got =
                    self.call("/webhook_verification_key/get", json!({"key_id": kid})).await.map_err(|e| {
                        if e.is_retryable() {
                            WebhookError::Provider(e)
                        } else {
                            let mut guard =
                                self.webhook_guard.lock().expect("the webhook guard lock is never poisoned");
                            guard.unknown_kids.insert(kid.to_owned(), now.timestamp());
                            WebhookError::UnknownKey
                        }
                    })?;
                if got.key.kty != "EC" || got.key.crv != "P-256" {
                    return Err(WebhookError::UnknownKey);
                }
                let (x, y) = (URL_SAFE_NO_PAD.decode(&got.key.x), URL_SAFE_NO_PAD.decode(&got.key.y));
                let (Ok(x), Ok(y)) = (x, y) else { return Err(WebhookError::UnknownKey) };
                let mut point = vec![4u8];
                point.extend(x);
                point.extend(y);
                let key = VerifyingKey::from_sec1_bytes(&point).map_err(|_| WebhookError::UnknownKey)?;
                let k = WebhookKey { key, expired_at: got.key.expired_at };
                self.keys.lock().expect("the key cache lock is never poisoned").insert(kid.to_owned(), k.clone());
                k
            }
        };
        if key.expired_at.is_some_and(|t| t <= now.timestamp()) {
            return Err(WebhookError::UnknownKey);
        }
        Ok(key.key)
    }
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A verified Plaid webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `TRANSACTIONS`, `ITEM`, ...
    pub webhook_type: String,
    /// `SYNC_UPDATES_AVAILABLE`, `ERROR`, `LOGIN_REPAIRED`, ...
    pub webhook_code: String,
    /// The item it is about.
    pub item_id: Option<String>,
    /// For `ITEM/ERROR`: the error's code.
    pub error_code: Option<String>,
    /// For `PENDING_EXPIRATION` / `PENDING_DISCONNECT`: when access ends.
    pub consent_expiration_time: Option<DateTime<Utc>>,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// No `Plaid-Verification` header.
    #[error("the Plaid-Verification header is missing")]
    Missing,
    /// Not a well-formed ES256 JWT.
    #[error("the verification token is malformed ({0})")]
    Malformed(&'static str),
    /// The signing key is unknown or expired.
    #[error("the verification key is unknown or expired")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Issued more than five minutes ago.
    #[error("the verification token is too old")]
    Stale,
    /// The body is not the one that was signed.
    #[error("the body does not match the signed digest")]
    BodyMismatch,
    /// This very token was accepted before (a replay).
    #[error("this webhook was already received")]
    Replayed,
    /// Plaid could not be asked for the key.
    #[error("cannot fetch the verification key: {0}")]
    Provider(SyncError),
}

fn map_error(status: u16, e: &PlaidError, retry_after: Option<Duration>) -> SyncError {
    let code = e.error_code.as_str();
    let message = sanitize(&e.error_message);
    match code {
        "ITEM_LOGIN_REQUIRED" | "PENDING_EXPIRATION" | "PENDING_DISCONNECT" => {
            SyncError::LoginRequired { code: code.into(), message }
        }
        "INVALID_ACCESS_TOKEN" | "ITEM_NOT_FOUND" | "USER_PERMISSION_REVOKED" | "ACCESS_NOT_GRANTED" => {
            SyncError::Revoked { code: code.into(), message }
        }
        MUTATION
        | "PRODUCT_NOT_READY"
        | "INSTITUTION_DOWN"
        | "INSTITUTION_NOT_RESPONDING"
        | "INSTITUTION_NOT_AVAILABLE"
        | "INTERNAL_SERVER_ERROR"
        | "PLANNED_MAINTENANCE" => SyncError::Transient { code: code.into(), message },
        _ if e.error_type == "RATE_LIMIT_EXCEEDED" || status == 429 => {
            SyncError::RateLimited { code: code.into(), retry_after }
        }
        _ if e.error_type == "API_ERROR" || e.error_type == "INSTITUTION_ERROR" || status >= 500 => {
            SyncError::Transient { code: code.into(), message }
        }
        _ => SyncError::Invalid { code: code.into(), message },
    }
}

impl Provider for PlaidClient {
    fn kind(&self) -> magpie_domain::BankProvider {
        magpie_domain::BankProvider::Plaid
    }

    async fn sync(&self, secret: &Secret, state: &Value, _options: &SyncOptions) -> Result<Batch, SyncError> {
        let state: State = serde_json::from_value(state.clone()).unwrap_or_default();
        let mut batch = Batch::default();
        for attempt in 0..=MAX_RESTARTS {
            match self.paginate(secret, &state.cursor, &mut batch).await {
                Ok((acc, next_cursor, status)) => {
                    batch.upserts = acc.upserts.into_iter().flatten().collect();
                    batch.removed = acc.removed;
                    batch.accounts = acc.accounts;
                    // Right after linking Plaid answers with nothing and an empty cursor: not an error,
                    // come back a little later (the SYNC_UPDATES_AVAILABLE webhook may come first).
                    if next_cursor.is_empty() || status.as_deref() == Some("NOT_READY") {
                        batch.retry_after = Some(Duration::from_secs(120));
                    }
                    let cursor = if next_cursor.is_empty() { state.cursor.clone() } else { next_cursor };
                    batch.state = serde_json::to_value(State { cursor }).expect("state serializes");
                    return Ok(batch);
                }
                // Data changed while paging: everything read so far is discarded and the pagination
                // starts over from the stored cursor, never from the failing one.
                Err(SyncError::Transient { code, .. }) if code == MUTATION && attempt < MAX_RESTARTS => {
                    tracing::info!(attempt, "plaid: mutation during pagination, restarting from the stored cursor");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    async fn revoke(&self, secret: &Secret) -> Result<(), SyncError> {
        match self.call::<Value>("/item/remove", json!({"access_token": secret.expose()})).await {
            Ok(_) | Err(SyncError::Revoked { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptxn(id: &str, amount: &str) -> PTxn {
        serde_json::from_value(json!({
            "transaction_id": id, "account_id": "acc", "amount": serde_json::from_str::<Value>(amount).unwrap(),
            "iso_currency_code": "USD", "date": "2026-06-03", "name": "SQ *BLUE BOTTLE 0412",
            "merchant_name": "Blue Bottle Coffee", "pending": false, "pending_transaction_id": "p1",
            "personal_finance_category": {"primary": "FOOD_AND_DRINK", "detailed": "FOOD_AND_DRINK_COFFEE", "confidence_level": "VERY_HIGH"}
        }))
        .unwrap()
    }

    #[test]
    fn plaid_amounts_are_negated_exactly() {
        let t = txn(ptxn("t", "12.5"));
        assert_eq!(t.amount.to_string(), "-12.50");
        assert_eq!(t.description, "Blue Bottle Coffee");
        assert_eq!(t.pending_of.as_deref(), Some("p1"));
        assert_eq!(t.category.unwrap().category, "Coffee Shops");
        assert_eq!(txn(ptxn("t", "-1500.1")).amount.to_string(), "1500.10");
    }

    #[test]
    fn accumulation_keeps_the_net_effect() {
        let mut acc = Accumulated::default();
        acc.upsert(txn(ptxn("a", "1")));
        acc.upsert(txn(ptxn("b", "2")));
        acc.upsert(txn(ptxn("a", "3")));
        acc.remove(PRemoved { transaction_id: "b".into(), account_id: String::new() });
        let ups: Vec<Txn> = acc.upserts.into_iter().flatten().collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].amount.to_string(), "-3.00");
        assert_eq!(acc.removed, vec![TxnRef { account_id: "acc".into(), id: "b".into() }]);
    }

    #[test]
    fn errors_map_to_connection_states() {
        let e = |code: &str, ty: &str, status| {
            map_error(
                status,
                &PlaidError { error_type: ty.into(), error_code: code.into(), error_message: "m".into() },
                None,
            )
        };
        assert!(matches!(e("ITEM_LOGIN_REQUIRED", "ITEM_ERROR", 400), SyncError::LoginRequired { .. }));
        assert!(matches!(e("INVALID_ACCESS_TOKEN", "INVALID_INPUT", 400), SyncError::Revoked { .. }));
        assert!(matches!(e("TRANSACTIONS_SYNC_LIMIT", "RATE_LIMIT_EXCEEDED", 429), SyncError::RateLimited { .. }));
        assert!(matches!(e("INTERNAL_SERVER_ERROR", "API_ERROR", 500), SyncError::Transient { .. }));
        assert!(matches!(e("INVALID_PUBLIC_TOKEN", "INVALID_INPUT", 400), SyncError::Invalid { .. }));
    }
}
