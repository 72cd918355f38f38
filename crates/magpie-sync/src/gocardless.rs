//! GoCardless Bank Account Data (ex-Nordigen), API v2: an API token pair refreshed before it expires,
//! institutions, end-user agreements, requisitions, and each account's booked and pending transactions
//! over a date window, within the bank's per-account quota of a few successful calls a day
//! (`bank-sync-protocols.md` §3).
//!
//! GoCardless stopped taking new sign-ups in 2025; this is for people who already hold secrets.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{self, to_cents};
use crate::{Account, Batch, Linked, Notice, Provider, Secret, SyncError, SyncOptions, Txn, Window, sanitize};

/// How to reach GoCardless.
#[derive(Debug, Clone)]
pub struct GocardlessConfig {
    /// `https://bankaccountdata.gocardless.com`, or the emulator.
    pub base_url: String,
    /// The app's secret id.
    pub secret_id: String,
    /// The app's secret key.
    pub secret_key: Secret,
    /// Per-request time limit.
    pub timeout: Duration,
}

struct Tokens {
    access: String,
    access_until: DateTime<Utc>,
    refresh: String,
    refresh_until: DateTime<Utc>,
}

/// A GoCardless client. The API token pair is shared by every connection.
pub struct GocardlessClient {
    cfg: GocardlessConfig,
    http: http::Client,
    tokens: tokio::sync::Mutex<Option<Tokens>>,
}

/// A bank.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Institution {
    /// Id (`SANDBOXFINANCE_SFIN0000`).
    pub id: String,
    /// Name.
    pub name: String,
    /// BIC.
    #[serde(default)]
    pub bic: Option<String>,
    /// Days of history the bank gives (GoCardless sends the number as text).
    #[serde(default, deserialize_with = "de_text_u32")]
    pub transaction_total_days: Option<u32>,
    /// Longest consent, in days.
    #[serde(default, deserialize_with = "de_text_u32")]
    pub max_access_valid_for_days: Option<u32>,
    /// Logo URL.
    #[serde(default)]
    pub logo: Option<String>,
}

fn de_text_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    })
}

/// A requisition: the consent flow for one bank.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Requisition {
    /// Id (a UUID).
    pub id: String,
    /// `CR`, `GC`, `UA`, `RJ`, `SA`, `GA`, `LN`, `EX`, ...
    pub status: String,
    /// Where the person goes to give consent.
    #[serde(default)]
    pub link: Option<String>,
    /// The bank.
    #[serde(default)]
    pub institution_id: String,
    /// The end-user agreement.
    #[serde(default)]
    pub agreement: Option<String>,
    /// The reference given when it was created.
    #[serde(default)]
    pub reference: Option<String>,
    /// Accounts, once linked.
    #[serde(default)]
    pub accounts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct GcError {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    detail: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AccountMeta {
    #[serde(default)]
    iban: Option<String>,
    #[serde(default)]
    owner_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Amount {
    amount: String,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcTxn {
    #[serde(default)]
    transaction_id: Option<String>,
    #[serde(default)]
    internal_transaction_id: Option<String>,
    #[serde(default)]
    booking_date: Option<String>,
    #[serde(default)]
    booking_date_time: Option<String>,
    #[serde(default)]
    value_date: Option<String>,
    #[serde(default)]
    value_date_time: Option<String>,
    transaction_amount: Amount,
    #[serde(default)]
    creditor_name: Option<String>,
    #[serde(default)]
    debtor_name: Option<String>,
    #[serde(default)]
    remittance_information_unstructured: Option<String>,
    #[serde(default)]
    remittance_information_unstructured_array: Vec<String>,
    #[serde(default)]
    remittance_information_structured: Option<String>,
    #[serde(default)]
    additional_information: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TxnsResponse {
    transactions: TxnLists,
}

#[derive(Debug, Default, Deserialize)]
struct TxnLists {
    #[serde(default)]
    booked: Vec<GcTxn>,
    #[serde(default)]
    pending: Vec<GcTxn>,
}

/// Per-account sync state.
#[derive(Debug, Default, Clone, serde::Serialize, Deserialize)]
struct AccountState {
    /// Last day read completely (inclusive).
    #[serde(default)]
    window_end: Option<NaiveDate>,
    /// Successful transaction calls left today, as the bank last said.
    #[serde(default)]
    remaining: Option<u64>,
    /// When the bank's quota resets (epoch seconds).
    #[serde(default)]
    reset_at: Option<i64>,
    /// Name and currency, read once (details cost quota).
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    mask: Option<String>,
}

/// What the sync state of a GoCardless connection holds.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct State {
    #[serde(default)]
    accounts: BTreeMap<String, AccountState>,
    /// Days of history the agreement grants.
    #[serde(default)]
    history_days: Option<u32>,
}

fn first_text(values: &[Option<&str>]) -> Option<String> {
    values.iter().flatten().map(|s| s.trim()).find(|s| !s.is_empty()).map(str::to_owned)
}

fn date_prefix(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?.trim();
    s.get(..10)?.parse().ok()
}

/// A transaction of one account; `occurrence` tells identical id-less rows apart.
fn txn(account: &str, t: &GcTxn, pending: bool, occurrences: &mut HashMap<String, u32>) -> Option<Txn> {
    let date = date_prefix(t.booking_date.as_deref())
        .or(date_prefix(t.booking_date_time.as_deref()))
        .or(date_prefix(t.value_date.as_deref()))
        .or(date_prefix(t.value_date_time.as_deref()))?;
    let amount = to_cents(http::parse_decimal(&t.transaction_amount.amount)?);
    let payee = if amount.is_sign_negative() { t.creditor_name.as_deref() } else { t.debtor_name.as_deref() };
    let joined = t.remittance_information_unstructured_array.join(" ");
    let description = first_text(&[
        t.remittance_information_unstructured.as_deref(),
        Some(joined.as_str()),
        t.remittance_information_structured.as_deref(),
        t.additional_information.as_deref(),
        payee,
        t.creditor_name.as_deref(),
        t.debtor_name.as_deref(),
    ])
    .unwrap_or_else(|| "(no description)".to_owned());
    // A bank id of " " once matched unrelated rows (Actual #2495): trim, and empty is absent. GoCardless'
    // internal id is only trustworthy on booked rows (Actual PR #4241).
    let strong = first_text(&[t.transaction_id.as_deref()]).or_else(|| {
        first_text(&[t.internal_transaction_id.as_deref()]).filter(|_| !pending).map(|i| format!("int:{i}"))
    });
    let (id, weak_id) = match strong {
        Some(id) => (id, false),
        None => {
            let content = format!(
                "{}|{date}|{amount}|{}|{description}",
                if pending { "pending" } else { "booked" },
                payee.unwrap_or_default()
            );
            let n = occurrences.entry(content.clone()).or_insert(0);
            *n += 1;
            let digest: String =
                Sha256::digest(content.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
            (format!("h:{digest}:{n}"), true)
        }
    };
    Some(Txn {
        account_id: account.to_owned(),
        id,
        weak_id,
        pending,
        pending_of: None,
        date,
        amount,
        currency: t.transaction_amount.currency.clone(),
        description,
        category: None,
    })
}

/// The bank's quota headers, under either spelling (some proxies rewrite them).
fn quota(headers: &HeaderMap) -> (Option<u64>, Option<u64>) {
    let remaining = http::header_u64(
        headers,
        &["http_x_ratelimit_account_success_remaining", "x-ratelimit-account-success-remaining"],
    );
    let reset =
        http::header_u64(headers, &["http_x_ratelimit_account_success_reset", "x-ratelimit-account-success-reset"]);
    (remaining, reset)
}

/// "Please try again in 3600 seconds" -> 3600.
fn seconds_in(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).find(|w| w[1].starts_with("second")).and_then(|w| w[0].parse().ok())
}

fn map_error(status: u16, text: &str, headers: &HeaderMap) -> SyncError {
    let e: GcError = serde_json::from_str(text).unwrap_or_default();
    let kind = e.kind.clone().unwrap_or_default();
    let all = format!("{} {} {}", e.summary, e.detail, kind);
    let lower = all.to_ascii_lowercase();
    let message = sanitize(if e.detail.is_empty() { &e.summary } else { &e.detail });
    let code = if kind.is_empty() { format!("http_{status}") } else { kind.clone() };
    match status {
        401 if kind == "AccountInactiveError" => SyncError::Revoked { code, message },
        401 | 403
            if kind == "AccessExpiredError" || lower.contains("access has expired") || lower.contains("agreement") =>
        {
            SyncError::LoginRequired { code, message }
        }
        401 => SyncError::Invalid { code: "token_invalid".into(), message },
        403 => SyncError::Invalid { code: "forbidden".into(), message },
        404 => SyncError::Revoked { code: "not_found".into(), message },
        409 => SyncError::Revoked { code: "suspended".into(), message },
        429 => {
            let (_, reset) = quota(headers);
            let retry_after =
                reset.or_else(|| seconds_in(&all)).or_else(|| http::retry_after(headers).map(|d| d.as_secs()));
            SyncError::RateLimited { code, retry_after: retry_after.map(Duration::from_secs) }
        }
        500..=599 => SyncError::Transient { code, message },
        _ => SyncError::Invalid { code, message },
    }
}

impl GocardlessClient {
    /// A client.
    pub fn new(cfg: GocardlessConfig) -> GocardlessClient {
        let http = http::Client::new(cfg.timeout);
        GocardlessClient { cfg, http, tokens: tokio::sync::Mutex::new(None) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v2/{}", self.cfg.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    async fn token_call(&self, path: &str, body: Value) -> Result<Value, SyncError> {
        let res = self.http.get().post(self.url(path)).json(&body).send().await.map_err(http::network_error)?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = http::body_text(res).await?;
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| http::bad_response(path, e)),
            401 | 403 => {
                Err(SyncError::invalid("invalid_secrets", "GoCardless refused the configured secret_id/secret_key"))
            }
            _ => Err(map_error(status, &text, &headers)),
        }
    }

    /// A valid API access token: cached, refreshed before it expires, re-issued when the refresh token
    /// has died (or when `fresh`, after a 401).
    async fn access_token(&self, fresh: bool) -> Result<String, SyncError> {
        let mut guard = self.tokens.lock().await;
        let now = Utc::now();
        let margin = chrono::Duration::seconds(60);
        if let Some(t) = guard.as_ref()
            && !fresh
            && t.access_until > now + margin
        {
            return Ok(t.access.clone());
        }
        let seconds = |v: &Value, k: &str| chrono::Duration::seconds(v.get(k).and_then(Value::as_i64).unwrap_or(0));
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(t) = guard.as_mut()
            && !fresh
            && t.refresh_until > now + margin
        {
            let got = self.token_call("token/refresh/", json!({"refresh": t.refresh})).await;
            if let Ok(v) = got
                && let Some(access) = text(&v, "access")
            {
                t.access = access;
                t.access_until = now + seconds(&v, "access_expires");
                return Ok(t.access.clone());
            }
        }
        let v = self
            .token_call(
                "token/new/",
                json!({"secret_id": self.cfg.secret_id, "secret_key": self.cfg.secret_key.expose()}),
            )
            .await?;
        let (Some(access), Some(refresh)) = (text(&v, "access"), text(&v, "refresh")) else {
            return Err(http::bad_response("token/new", "no tokens"));
        };
        *guard = Some(Tokens {
            access: access.clone(),
            access_until: now + seconds(&v, "access_expires"),
            refresh,
            refresh_until: now + seconds(&v, "refresh_expires"),
        });
        Ok(access)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(T, HeaderMap), SyncError> {
        for attempt in 0..2 {
            let token = self.access_token(attempt == 1).await?;
            let mut req = self.http.get().request(method.clone(), self.url(path)).bearer_auth(token).query(query);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let res = req.send().await.map_err(http::network_error)?;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let text = http::body_text(res).await?;
            if (200..300).contains(&status) {
                let value = serde_json::from_str(&text).map_err(|e| http::bad_response(path, e))?;
                return Ok((value, headers));
            }
            let error = map_error(status, &text, &headers);
            if matches!(&error, SyncError::Invalid { code, .. } if code == "token_invalid") && attempt == 0 {
                continue;
            }
            return Err(error);
        }
        unreachable!("the second attempt returns")
    }

    /// Banks of a country (ISO 3166 alpha-2).
    pub async fn institutions(&self, country: &str) -> Result<Vec<Institution>, SyncError> {
        let country = country.trim().to_ascii_lowercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(SyncError::invalid("bad_country", "country must be a two-letter ISO code"));
        }
        Ok(self.call(Method::GET, "institutions/", &[("country", country)], None).await?.0)
    }

    /// Start a consent flow: an agreement for as much history and as long an access as the bank allows,
    /// then a requisition whose `link` the person follows; the bank sends them back to `redirect`.
    pub async fn create_requisition(
        &self,
        institution_id: &str,
        redirect: &str,
        reference: &str,
    ) -> Result<Requisition, SyncError> {
        let id = institution_id.trim();
        if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(SyncError::invalid("bad_institution", "institution_id is not a GoCardless institution id"));
        }
        let (inst, _): (Institution, _) = self.call(Method::GET, &format!("institutions/{id}/"), &[], None).await?;
        let history = inst.transaction_total_days.unwrap_or(90).clamp(1, 730);
        let access_days = inst.max_access_valid_for_days.unwrap_or(90).clamp(1, 180);
        let (agreement, _): (Value, _) = self
            .call(
                Method::POST,
                "agreements/enduser/",
                &[],
                Some(
                    json!({"institution_id": id, "max_historical_days": history, "access_valid_for_days": access_days,
                            "access_scope": ["balances", "details", "transactions"]}),
                ),
            )
            .await?;
        let agreement_id = agreement.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let (req, _): (Requisition, _) = self
            .call(
                Method::POST,
                "requisitions/",
                &[],
                Some(json!({"redirect": redirect, "institution_id": id, "agreement": agreement_id,
                            "reference": reference.chars().take(256).collect::<String>(), "user_language": "EN"})),
            )
            .await?;
        Ok(req)
    }

    /// Link a requisition whose consent flow has finished (status `LN`).
    pub async fn connect(&self, requisition_id: &str) -> Result<Linked, SyncError> {
        self.connect_checked(requisition_id, None).await
    }

    /// [`GocardlessClient::connect`], refusing a requisition whose reference is not `reference` (the
    /// random reference this server created it with: someone else's requisition has another).
    pub async fn connect_checked(&self, requisition_id: &str, reference: Option<&str>) -> Result<Linked, SyncError> {
        let id = requisition_id.trim();
        if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(SyncError::invalid("bad_requisition", "requisition_id is not a GoCardless requisition id"));
        }
        let (req, _): (Requisition, _) = self.call(Method::GET, &format!("requisitions/{id}/"), &[], None).await?;
        if let Some(expected) = reference
            && req.reference.as_deref() != Some(expected)
        {
            return Err(SyncError::invalid(
                "requisition_not_yours",
                "this requisition was not started by this account",
            ));
        }
        if req.status != "LN" {
            return Err(SyncError::invalid(
                "requisition_not_linked",
                format!("the bank consent is not complete yet (requisition status {})", sanitize(&req.status)),
            ));
        }
        let institution_name = match self
            .call::<Institution>(Method::GET, &format!("institutions/{}/", req.institution_id), &[], None)
            .await
        {
            Ok((i, _)) => i.name,
            Err(_) => req.institution_id.clone(),
        };
        let mut state = State::default();
        let mut consent_expires_at = None;
        if let Some(agreement) = req.agreement.as_deref().filter(|a| !a.is_empty())
            && let Ok((a, _)) =
                self.call::<Value>(Method::GET, &format!("agreements/enduser/{agreement}/"), &[], None).await
        {
            state.history_days =
                a.get("max_historical_days").and_then(Value::as_u64).and_then(|d| u32::try_from(d).ok());
            let days = a.get("access_valid_for_days").and_then(Value::as_i64).unwrap_or(90);
            let accepted = a.get("accepted").and_then(Value::as_str).and_then(|s| s.parse::<DateTime<Utc>>().ok());
            consent_expires_at = accepted.map(|t| t + chrono::Duration::days(days));
        }
        let mut accounts = Vec::new();
        for account_id in &req.accounts {
            let (meta, _): (AccountMeta, _) =
                self.call(Method::GET, &format!("accounts/{account_id}/"), &[], None).await?;
            let mask =
                meta.iban.as_deref().map(|i| i.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect());
            let name =
                first_text(&[meta.name.as_deref(), meta.owner_name.as_deref()]).unwrap_or_else(|| "Account".into());
            state.accounts.insert(
                account_id.clone(),
                AccountState { name: Some(name.clone()), mask: mask.clone(), ..AccountState::default() },
            );
            accounts.push(Account {
                id: account_id.clone(),
                name,
                mask,
                kind: None,
                currency: None,
                balance: None,
                available: None,
            });
        }
        let external_id = Sha256::digest(id.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(Linked {
            secret: Secret::new(id),
            external_id,
            institution_id: req.institution_id.chars().take(100).collect(),
            institution_name: institution_name.chars().take(200).collect(),
            consent_expires_at,
            accounts,
            state: serde_json::to_value(state).expect("state serializes"),
        })
    }

    /// Read one account's new transactions, within its quota. `Ok(None)`: skipped, with the reason in
    /// the batch.
    async fn sync_account(
        &self,
        account_id: &str,
        st: &mut AccountState,
        history_days: u32,
        options: &SyncOptions,
        batch: &mut Batch,
    ) -> Result<Option<(Vec<Txn>, Window)>, SyncError> {
        let now = options.now.timestamp();
        let today = options.now.date_naive();
        batch.requests += 1;
        let (meta, _): (AccountMeta, _) = self.call(Method::GET, &format!("accounts/{account_id}/"), &[], None).await?;
        match meta.status.as_str() {
            "EXPIRED" => {
                return Err(SyncError::login_required("EXPIRED", "the bank consent for an account has expired"));
            }
            "ERROR" | "SUSPENDED" => {
                batch.notices.push(Notice {
                    code: format!("account_{}", meta.status.to_ascii_lowercase()),
                    message: format!(
                        "the bank reports account {} as {}",
                        st.mask.clone().unwrap_or_default(),
                        meta.status
                    ),
                });
                return Err(SyncError::revoked(
                    &meta.status,
                    "the bank stopped giving access to the account; link it again",
                ));
            }
            "DISCOVERED" | "PROCESSING" => {
                batch.notices.push(Notice {
                    code: "account_processing".into(),
                    message: "the bank is still preparing an account".into(),
                });
                batch.retry_after = Some(Duration::from_secs(300));
                return Ok(None);
            }
            _ => {}
        }
        if st.remaining == Some(0)
            && let Some(reset) = st.reset_at.filter(|r| *r > now)
        {
            let wait = Duration::from_secs((reset - now) as u64);
            batch.retry_after = Some(batch.retry_after.map_or(wait, |w| w.min(wait)));
            batch.notices.push(Notice {
                code: "account_quota".into(),
                message: "the bank's daily limit for an account is used up".into(),
            });
            return Ok(None);
        }
        let from = match st.window_end {
            Some(end) => end - Days::new(u64::from(10u32.max(options.overlap_days))),
            None => today - Days::new(u64::from(history_days.min(options.initial_days.max(1)))),
        };
        let query = [("date_from", from.to_string()), ("date_to", today.to_string())];
        batch.requests += 1;
        let got =
            self.call::<TxnsResponse>(Method::GET, &format!("accounts/{account_id}/transactions/"), &query, None).await;
        let (lists, headers) = match got {
            Ok(v) => v,
            Err(SyncError::RateLimited { retry_after, .. }) => {
                st.remaining = Some(0);
                let wait = retry_after.unwrap_or(Duration::from_secs(3600));
                st.reset_at = Some(now + wait.as_secs() as i64);
                batch.retry_after = Some(batch.retry_after.map_or(wait, |w| w.min(wait)));
                batch.notices.push(Notice {
                    code: "account_quota".into(),
                    message: "the bank's daily limit for an account is used up".into(),
                });
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (remaining, reset) = quota(&headers);
        st.remaining = remaining;
        st.reset_at = reset.map(|r| now + r as i64);
        if st.currency.is_none() {
            // Details cost quota too: read them once.
            batch.requests += 1;
            if let Ok((v, _)) =
                self.call::<Value>(Method::GET, &format!("accounts/{account_id}/details/"), &[], None).await
            {
                st.currency = v.pointer("/account/currency").and_then(Value::as_str).map(str::to_owned);
                if let Some(n) =
                    v.pointer("/account/name").or(v.pointer("/account/displayName")).and_then(Value::as_str)
                {
                    st.name = Some(n.to_owned());
                }
            }
        }
        let mut occurrences = HashMap::new();
        let mut out = Vec::new();
        let mut undated = 0;
        for (list, pending) in [(&lists.transactions.booked, false), (&lists.transactions.pending, true)] {
            for t in list {
                match txn(account_id, t, pending, &mut occurrences) {
                    Some(t) => out.push(t),
                    // Rows with no date are left for a later sync (Actual does the same).
                    None => undated += 1,
                }
            }
        }
        if undated > 0 {
            batch.notices.push(Notice {
                code: "undated".into(),
                message: format!("{undated} rows without a date were skipped"),
            });
        }
        st.window_end = Some(today);
        // The bank filters by date, so every day of [from, today) was shown completely; today may grow.
        Ok(Some((out, Window { account_id: account_id.to_owned(), from, to: today })))
    }
}

impl Provider for GocardlessClient {
    fn kind(&self) -> magpie_domain::BankProvider {
        magpie_domain::BankProvider::Gocardless
    }

    async fn sync(&self, secret: &Secret, state: &Value, options: &SyncOptions) -> Result<Batch, SyncError> {
        let mut state: State = serde_json::from_value(state.clone()).unwrap_or_default();
        let mut batch = Batch { requests: 1, ..Batch::default() };
        let (req, _): (Requisition, _) =
            self.call(Method::GET, &format!("requisitions/{}/", secret.expose()), &[], None).await?;
        match req.status.as_str() {
            "LN" => {}
            "EX" => return Err(SyncError::login_required("EX", "the bank consent has expired; renew it")),
            "RJ" | "ER" | "SU" => {
                return Err(SyncError::revoked(
                    &req.status,
                    "the bank consent was rejected or suspended; link the bank again",
                ));
            }
            other => return Err(SyncError::login_required(other, "the bank consent has not been completed")),
        }
        let history_days = state.history_days.unwrap_or(90);
        for account_id in &req.accounts {
            let mut st = state.accounts.get(account_id).cloned().unwrap_or_default();
            if let Some((txns, window)) =
                self.sync_account(account_id, &mut st, history_days, options, &mut batch).await?
            {
                batch.upserts.extend(txns);
                batch.windows.push(window);
            }
            batch.accounts.push(Account {
                id: account_id.clone(),
                name: st.name.clone().unwrap_or_else(|| "Account".into()),
                mask: st.mask.clone(),
                kind: None,
                currency: st.currency.clone(),
                balance: None,
                available: None,
            });
            state.accounts.insert(account_id.clone(), st);
        }
        batch.state = serde_json::to_value(state).expect("state serializes");
        Ok(batch)
    }

    async fn revoke(&self, secret: &Secret) -> Result<(), SyncError> {
        match self.call::<Value>(Method::DELETE, &format!("requisitions/{}/", secret.expose()), &[], None).await {
            Ok(_) | Err(SyncError::Revoked { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> GcTxn {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ids_dates_and_texts_follow_the_lessons() {
        let mut occ = HashMap::new();
        let booked = parse(json!({"transactionId": " ", "internalTransactionId": "9f38", "bookingDate": "2026-06-03",
            "valueDate": "2026-06-02", "transactionAmount": {"amount": "-42.10", "currency": "EUR"},
            "creditorName": "Supermarkt BV", "remittanceInformationUnstructured": "PAS 1234 SUPERMARKT"}));
        let t = txn("A", &booked, false, &mut occ).unwrap();
        assert_eq!((t.id.as_str(), t.weak_id, t.date.to_string().as_str()), ("int:9f38", false, "2026-06-03"));
        assert_eq!((t.amount.to_string().as_str(), t.description.as_str()), ("-42.10", "PAS 1234 SUPERMARKT"));

        let pending = parse(json!({"internalTransactionId": "nope", "valueDate": "2026-06-05",
            "transactionAmount": {"amount": "-7.50", "currency": "EUR"}, "creditorName": "Cafe Zuid"}));
        let a = txn("A", &pending, true, &mut occ).unwrap();
        let b = txn("A", &pending, true, &mut occ).unwrap();
        assert!(a.weak_id && a.id.starts_with("h:"), "{}", a.id);
        assert_ne!(a.id, b.id, "two identical rows are two transactions");
        assert_eq!(a.description, "Cafe Zuid");

        let undated = parse(json!({"transactionAmount": {"amount": "1.00"}}));
        assert!(txn("A", &undated, false, &mut occ).is_none());
    }

    #[test]
    fn errors_map_as_the_spec_recommends() {
        let h = HeaderMap::new();
        let e = |status, body: Value| map_error(status, &body.to_string(), &h);
        assert!(matches!(
            e(401, json!({"summary": "Access has expired or it has been revoked", "type": "AccessExpiredError"})),
            SyncError::LoginRequired { .. }
        ));
        assert!(matches!(
            e(401, json!({"summary": "EUA 1 has expired", "detail": "End User Agreement (EUA) 1 has expired"})),
            SyncError::LoginRequired { .. }
        ));
        assert!(matches!(e(401, json!({"summary": "Invalid token"})), SyncError::Invalid { .. }));
        assert!(matches!(
            e(409, json!({"summary": "Account suspended due to numerous errors"})),
            SyncError::Revoked { .. }
        ));
        match e(
            429,
            json!({"summary": "Rate limit exceeded", "detail": "Please try again in 3600 seconds", "type": "RateLimitError"}),
        ) {
            SyncError::RateLimited { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(3600))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e(503, json!({"summary": "Institution service unavailable", "type": "ServiceError"})),
            SyncError::Transient { .. }
        ));
    }
}
