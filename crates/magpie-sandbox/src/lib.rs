//! `magpie sandbox`: Plaid, SimpleFIN and GoCardless Bank Account Data on localhost, with
//! deterministic fake banks, so that tests, benchmarks and people can use bank sync without a bank.
//!
//! * Plaid lives under `/plaid` (every endpoint `POST`, credentials in the body or the `PLAID-CLIENT-ID`
//!   / `PLAID-SECRET` headers), including its sandbox endpoints (`/plaid/sandbox/public_token/create`,
//!   `/plaid/sandbox/item/reset_login`, `/plaid/sandbox/item/fire_webhook`) and signed webhooks.
//! * SimpleFIN lives under `/simplefin` (claim URLs, Basic-auth `/accounts`, v1 and v2 shapes).
//! * GoCardless lives under `/gocardless/api/v2` (tokens, institutions, agreements, requisitions with
//!   a consent page that plays the bank's redirect, accounts with daily per-endpoint quotas).
//! * `/_sandbox/...` is the control panel: banks and their ledgers, posting pending transactions,
//!   removals, edits, a day of activity, and faults to inject (rate limits, 5xx, expired logins,
//!   revocations, mutation during pagination, "not ready").
//!
//! Banks are generated from the seed, the bank's number and the date, so a run is repeatable.

pub mod bank;
mod gocardless;
mod plaid;
mod simplefin;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use p256::ecdsa::SigningKey;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

pub use bank::{Bank, Via};

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seed of every bank.
    pub seed: u64,
    /// Days of history a new bank has.
    pub history_days: u32,
    /// Transactions a new bank has.
    pub transactions_per_bank: usize,
    /// Plaid `client_id` accepted.
    pub plaid_client_id: String,
    /// Plaid `secret` accepted.
    pub plaid_secret: String,
    /// GoCardless `secret_id` accepted.
    pub gocardless_secret_id: String,
    /// GoCardless `secret_key` accepted.
    pub gocardless_secret_key: String,
    /// SimpleFIN requests per day before warnings.
    pub simplefin_daily_quota: u32,
    /// SimpleFIN requests per day after which the token is disabled (403).
    pub simplefin_disable_after: u32,
    /// GoCardless successful calls per account, endpoint and day.
    pub gocardless_daily_limit: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 42,
            history_days: 120,
            transactions_per_bank: 240,
            plaid_client_id: "sandbox-client-id".into(),
            plaid_secret: "sandbox-secret".into(),
            gocardless_secret_id: "sandbox-secret-id".into(),
            gocardless_secret_key: "sandbox-secret-key".into(),
            simplefin_daily_quota: 24,
            simplefin_disable_after: 30,
            gocardless_daily_limit: 4,
        }
    }
}

/// A failure to inject into the next matching request(s).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Fault {
    /// Which protocol.
    pub provider: Via,
    /// What goes wrong.
    pub kind: FaultKind,
    /// How many requests it hits.
    #[serde(default = "one")]
    pub times: u32,
    /// Only requests whose path contains this.
    #[serde(default)]
    pub path: Option<String>,
}

fn one() -> u32 {
    1
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 (Plaid `TRANSACTIONS_SYNC_LIMIT`, GoCardless API-level limit).
    RateLimit,
    /// 5xx.
    ServerError,
    /// The login expired (Plaid `ITEM_LOGIN_REQUIRED`, SimpleFIN `con.auth`, GoCardless `EX`).
    LoginRequired,
    /// The access is gone (Plaid `INVALID_ACCESS_TOKEN`, SimpleFIN 403, GoCardless 404).
    Revoked,
    /// Plaid: a change lands while a client pages, so its mid-pagination cursor goes stale.
    Mutation,
    /// Plaid: `/transactions/sync` answers "not ready" (empty, `next_cursor: ""`).
    NotReady,
    /// SimpleFIN: 402.
    PaymentRequired,
}

/// A webhook the emulator sent (kept so that tests can replay it into an app that is not listening).
#[derive(Debug, Clone)]
pub struct SentWebhook {
    /// Where it went.
    pub url: String,
    /// Body.
    pub body: String,
    /// `Plaid-Verification` header.
    pub jwt: String,
}

/// The emulator's whole state.
pub struct World {
    /// Configuration.
    pub cfg: SandboxConfig,
    /// `http://127.0.0.1:port`, once listening.
    pub base_url: String,
    /// Banks.
    pub banks: Vec<Bank>,
    plaid: plaid::PlaidState,
    simplefin: simplefin::SfState,
    gocardless: gocardless::GcState,
    faults: Vec<Fault>,
    /// Requests served, by `provider path`.
    pub hits: BTreeMap<String, u64>,
    /// Delay before answering each Plaid `/transactions/sync` page and SimpleFIN/GoCardless data call.
    pub page_delay_ms: u64,
    /// Webhooks sent.
    pub outbox: Vec<SentWebhook>,
    /// Plaid `/transactions/sync` requests in flight now, per access token, and the most ever at once
    /// for any one item (a client syncing one item twice at a time shows up here).
    pub syncs_in_flight: BTreeMap<String, u32>,
    /// The most concurrent `/transactions/sync` requests seen for one item.
    pub max_concurrent_syncs: u32,
    rng: bank::Rng,
}

impl World {
    fn new(cfg: SandboxConfig) -> World {
        World {
            rng: bank::Rng::new(cfg.seed.wrapping_add(17)),
            cfg,
            base_url: String::new(),
            banks: Vec::new(),
            plaid: plaid::PlaidState::default(),
            simplefin: simplefin::SfState::default(),
            gocardless: gocardless::GcState::default(),
            faults: Vec::new(),
            hits: BTreeMap::new(),
            page_delay_ms: 0,
            outbox: Vec::new(),
            syncs_in_flight: BTreeMap::new(),
            max_concurrent_syncs: 0,
        }
    }

    /// Today (UTC).
    pub fn today(&self) -> NaiveDate {
        Utc::now().date_naive()
    }

    fn hit(&mut self, key: String) {
        *self.hits.entry(key).or_insert(0) += 1;
    }

    /// A random-looking but repeatable UUID.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn new_bank(&mut self, via: Via) -> usize {
        let id = self.banks.len();
        let (seed, today, days, count) =
            (self.cfg.seed, self.today(), self.cfg.history_days, self.cfg.transactions_per_bank);
        self.banks.push(Bank::generate(id, via, seed, today, days, count));
        id
    }

    /// Take the next fault for `via` on `path` that `applies`.
    fn take_fault(&mut self, via: Via, path: &str, applies: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
        let i = self
            .faults
            .iter()
            .position(|f| f.provider == via && f.path.as_deref().is_none_or(|p| path.contains(p)) && applies(f.kind))?;
        let kind = self.faults[i].kind;
        self.faults[i].times -= 1;
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(kind)
    }

    /// Which handle (Plaid item, SimpleFIN user, GoCardless requisition) reaches a bank.
    pub fn handle_of(&self, bank: usize) -> Option<String> {
        self.plaid
            .item_of_bank(bank)
            .or_else(|| self.simplefin.user_of_bank(bank))
            .or_else(|| self.gocardless.requisition_of_bank(bank))
    }
}

struct Inner {
    world: Mutex<World>,
    signing: SigningKey,
    kid: String,
    http: reqwest::Client,
}

/// The emulator: cheap to clone, shared by its routes.
#[derive(Clone)]
pub struct Sandbox(Arc<Inner>);

/// A running emulator; stops when dropped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub sandbox: Sandbox,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Running {
    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Plaid's base URL.
    pub fn plaid_url(&self) -> String {
        format!("{}/plaid", self.url())
    }

    /// GoCardless' base URL.
    pub fn gocardless_url(&self) -> String {
        format!("{}/gocardless", self.url())
    }

    /// The `host:port` SimpleFIN claim and Access URLs use (to allow in the client).
    pub fn simplefin_host(&self) -> String {
        self.addr.to_string()
    }
}

impl Sandbox {
    /// An emulator with no banks yet.
    pub fn new(cfg: SandboxConfig) -> Sandbox {
        // The webhook signing key is derived from the seed, so verification keys are stable too.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("magpie-sandbox-webhook-key-{}", cfg.seed).as_bytes());
        let signing = SigningKey::from_slice(&digest).expect("a SHA-256 digest is a valid P-256 scalar");
        let kid = format!("sandbox-key-{}", cfg.seed);
        magpie_sync::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("a plain client builds");
        Sandbox(Arc::new(Inner { world: Mutex::new(World::new(cfg)), signing, kid, http }))
    }

    /// Run `f` on the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.0.world.lock().expect("the sandbox lock is never poisoned"))
    }

    /// All routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/_sandbox/banks", get(list_banks))
            .route("/_sandbox/banks/{bank}/transactions", get(bank_transactions).post(add_transaction))
            .route(
                "/_sandbox/banks/{bank}/transactions/{id}",
                axum::routing::delete(remove_transaction).patch(modify_transaction),
            )
            .route("/_sandbox/banks/{bank}/transactions/{id}/post", post(post_transaction))
            .route("/_sandbox/banks/{bank}/activity", post(bank_activity))
            .route("/_sandbox/faults", post(add_fault_route).delete(clear_faults))
            .route("/_sandbox/stats", get(stats))
            .route("/_sandbox/settings", post(settings))
            .merge(plaid::routes())
            .merge(simplefin::routes())
            .merge(gocardless::routes())
            .with_state(self.clone())
    }

    /// Listen on `addr` (port 0: any free port) in a background task.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        self.with(|w| w.base_url = format!("http://{addr}"));
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Running { addr, sandbox: self, task })
    }

    /// Inject a fault.
    pub fn add_fault(&self, fault: Fault) {
        self.with(|w| w.faults.push(fault));
    }

    /// Requests served for `key` (`plaid /transactions/sync`, `simplefin /accounts`, ...).
    pub fn hits(&self, key: &str) -> u64 {
        self.with(|w| w.hits.get(key).copied().unwrap_or(0))
    }

    /// A Plaid public token for a new bank (what Link would hand over).
    pub fn plaid_public_token(&self, webhook: Option<&str>) -> (String, usize) {
        self.with(|w| plaid::create_public_token(w, "ins_109508", webhook))
    }

    /// A SimpleFIN setup token for a new bank.
    pub fn simplefin_setup_token(&self) -> (String, usize) {
        self.with(simplefin::create_setup_token)
    }

    /// A GoCardless requisition for a new bank whose consent is already given (`LN`).
    pub fn gocardless_linked_requisition(&self) -> (String, usize) {
        self.with(|w| {
            let (id, bank) = gocardless::create_requisition(w, "SANDBOXFINANCE_SFIN0000", "http://localhost/", "test");
            gocardless::link(w, &id);
            (id, bank)
        })
    }

    /// Give consent to a requisition someone created through the API (what the consent page does when
    /// the person finishes at the bank); returns its bank, none when there is no such requisition.
    pub fn gocardless_consent(&self, requisition: &str) -> Option<usize> {
        self.with(|w| {
            let bank = gocardless::bank_of(w, requisition)?;
            gocardless::link(w, requisition).then_some(bank)
        })
    }

    /// Apply a change to a bank and notify Plaid webhook listeners.
    pub fn change_bank<R>(&self, bank: usize, f: impl FnOnce(&mut Bank, NaiveDate) -> R) -> Option<R> {
        let (r, hooks) = self.with(|w| {
            let today = w.today();
            let b = w.banks.get_mut(bank)?;
            let r = f(b, today);
            let hooks = plaid::sync_webhooks_for_bank(w, bank);
            Some((r, hooks))
        })?;
        for (item, url) in hooks {
            self.send_plaid_webhook(
                &url,
                json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": item,
                       "initial_update_complete": true, "historical_update_complete": true, "environment": "sandbox"}),
            );
        }
        Some(r)
    }

    /// Sign a Plaid webhook body: an ES256 JWT with `iat` and the body's SHA-256, as Plaid does.
    pub fn sign_plaid_webhook(&self, body: &[u8]) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use p256::ecdsa::signature::Signer;
        use sha2::Digest;
        let header = json!({"alg": "ES256", "kid": self.0.kid, "typ": "JWT"});
        let digest: String = sha2::Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        let claims = json!({"iat": Utc::now().timestamp(), "request_body_sha256": digest});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature: p256::ecdsa::Signature = self.0.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The public half of the webhook key as a JWK.
    fn webhook_jwk(&self) -> Value {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = self.0.signing.verifying_key().to_encoded_point(false);
        json!({
            "alg": "ES256", "crv": "P-256", "kid": self.0.kid, "kty": "EC", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
            "created_at": 1_700_000_000, "expired_at": null
        })
    }

    /// Record a webhook and deliver it in the background.
    fn send_plaid_webhook(&self, url: &str, body: Value) {
        let body = body.to_string();
        let jwt = self.sign_plaid_webhook(body.as_bytes());
        self.with(|w| w.outbox.push(SentWebhook { url: url.to_owned(), body: body.clone(), jwt: jwt.clone() }));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return;
        }
        let (client, url) = (self.0.http.clone(), url.to_owned());
        tokio::spawn(async move {
            let sent = client
                .post(&url)
                .header("Plaid-Verification", jwt)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e.without_url(), "sandbox: webhook not delivered");
            }
        });
    }

    /// Webhooks sent so far.
    pub fn outbox(&self) -> Vec<SentWebhook> {
        self.with(|w| w.outbox.clone())
    }

    async fn delay(&self) {
        let ms = self.with(|w| w.page_delay_ms);
        if ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

async fn home(State(s): State<Sandbox>) -> Html<String> {
    let (base, banks) = s.with(|w| (w.base_url.clone(), w.banks.len()));
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Magpie sandbox</title>\
         <h1>Magpie bank sandbox</h1><p>{banks} banks so far. Point Magpie at it with:</p><pre>\
         MAGPIE_PLAID_BASE_URL={base}/plaid\nMAGPIE_PLAID_CLIENT_ID=sandbox-client-id\nMAGPIE_PLAID_SECRET=sandbox-secret\n\
         MAGPIE_SIMPLEFIN_ALLOWED_HOSTS={host}\n\
         MAGPIE_GOCARDLESS_BASE_URL={base}/gocardless\nMAGPIE_GOCARDLESS_SECRET_ID=sandbox-secret-id\nMAGPIE_GOCARDLESS_SECRET_KEY=sandbox-secret-key</pre>\
         <p>New Plaid public token: <code>POST {base}/plaid/sandbox/public_token/create</code>; SimpleFIN setup token: \
         <code>POST {base}/_sandbox/simplefin/setup-token</code>; GoCardless: create a requisition through Magpie and follow its link.</p>\
         <p>Control: <code>GET /_sandbox/banks</code>, <code>POST /_sandbox/banks/&lt;id&gt;/activity</code>, <code>POST /_sandbox/faults</code>.</p>",
        host = base.trim_start_matches("http://"),
    ))
}

async fn list_banks(State(s): State<Sandbox>) -> axum::Json<Value> {
    axum::Json(s.with(|w| {
        let banks: Vec<Value> = w
            .banks
            .iter()
            .map(|b| {
                json!({"id": b.id, "via": b.via, "institution_id": b.institution_id, "institution_name": b.institution_name,
                       "handle": w.handle_of(b.id), "accounts": b.accounts, "transactions": b.live().count(),
                       "pending": b.live().filter(|t| t.pending).count()})
            })
            .collect();
        json!({"banks": banks})
    }))
}

async fn bank_transactions(State(s): State<Sandbox>, Path(bank): Path<usize>) -> Response {
    s.with(|w| match w.banks.get(bank) {
        Some(b) => axum::Json(json!({"transactions": b.live().collect::<Vec<_>>()})).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such bank"),
    })
}

#[derive(Deserialize)]
struct NewTxn {
    #[serde(default)]
    account: usize,
    amount: Decimal,
    description: String,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    date: Option<NaiveDate>,
}

async fn add_transaction(
    State(s): State<Sandbox>,
    Path(bank): Path<usize>,
    axum::Json(t): axum::Json<NewTxn>,
) -> Response {
    match s.change_bank(bank, |b, today| b.add(t.account, t.date.unwrap_or(today), t.amount, &t.description, t.pending))
    {
        Some(id) => (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such bank"),
    }
}

#[derive(Deserialize, Default)]
struct PostTxn {
    #[serde(default)]
    amount: Option<Decimal>,
    #[serde(default)]
    keep_id: bool,
    #[serde(default)]
    date: Option<NaiveDate>,
}

async fn post_transaction(
    State(s): State<Sandbox>,
    Path((bank, id)): Path<(usize, String)>,
    body: Option<axum::Json<PostTxn>>,
) -> Response {
    let p = body.map(|b| b.0).unwrap_or_default();
    match s.change_bank(bank, |b, today| b.post(&id, p.date.unwrap_or(today), p.amount, p.keep_id)) {
        Some(Some(new)) => axum::Json(json!({"id": new})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such pending transaction"),
    }
}

async fn remove_transaction(State(s): State<Sandbox>, Path((bank, id)): Path<(usize, String)>) -> Response {
    match s.change_bank(bank, |b, _| b.remove(&id)) {
        Some(true) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such transaction"),
    }
}

#[derive(Deserialize)]
struct Modify {
    description: String,
}

async fn modify_transaction(
    State(s): State<Sandbox>,
    Path((bank, id)): Path<(usize, String)>,
    axum::Json(m): axum::Json<Modify>,
) -> Response {
    match s.change_bank(bank, |b, _| b.modify(&id, &m.description)) {
        Some(true) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such transaction"),
    }
}

#[derive(Deserialize)]
struct Activity {
    #[serde(default = "five")]
    new: usize,
}

fn five() -> usize {
    5
}

async fn bank_activity(
    State(s): State<Sandbox>,
    Path(bank): Path<usize>,
    body: Option<axum::Json<Activity>>,
) -> Response {
    let new = body.map_or(5, |b| b.0.new);
    match s.change_bank(bank, |b, today| b.activity(today, new)) {
        Some(changes) => axum::Json(json!({"changes": changes})).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such bank"),
    }
}

async fn add_fault_route(State(s): State<Sandbox>, axum::Json(f): axum::Json<Fault>) -> StatusCode {
    s.add_fault(f);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(s): State<Sandbox>) -> StatusCode {
    s.with(|w| w.faults.clear());
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Sandbox>) -> axum::Json<Value> {
    axum::Json(s.with(|w| json!({"hits": w.hits, "faults": w.faults})))
}

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    page_delay_ms: Option<u64>,
    #[serde(default)]
    transactions_per_bank: Option<usize>,
    #[serde(default)]
    history_days: Option<u32>,
}

async fn settings(State(s): State<Sandbox>, axum::Json(set): axum::Json<Settings>) -> StatusCode {
    s.with(|w| {
        if let Some(ms) = set.page_delay_ms {
            w.page_delay_ms = ms;
        }
        if let Some(n) = set.transactions_per_bank {
            w.cfg.transactions_per_bank = n.min(1_000_000);
        }
        if let Some(d) = set.history_days {
            w.cfg.history_days = d.clamp(1, 730);
        }
    });
    StatusCode::NO_CONTENT
}
