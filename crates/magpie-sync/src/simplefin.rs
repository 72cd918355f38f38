//! SimpleFIN (protocol v1 and v2, as served by SimpleFIN Bridge): claiming a setup token, then
//! `GET /accounts` over date windows of at most 90 days that overlap the previous one, within the
//! Bridge's daily request quota (`bank-sync-protocols.md` §2).
//!
//! The setup token decodes to a URL the server will POST to, and the Access URL it returns is where the
//! server will send credentials: both must be HTTPS on an allowed host (plain HTTP only to an allowed
//! loopback host, for the emulator), or a user could point the server at internal addresses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Url;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::{self, to_cents};
use crate::{Account, Batch, Linked, Notice, Provider, Secret, SyncError, SyncOptions, Txn, Window, sanitize};

/// The Bridge's documented ceiling for one request's window.
pub const MAX_WINDOW_DAYS: i64 = 90;
const DAY: i64 = 86_400;

/// How to reach SimpleFIN.
#[derive(Debug, Clone)]
pub struct SimplefinConfig {
    /// Hosts (`host` or `host:port`) setup tokens and Access URLs may point at.
    pub allowed_hosts: Vec<String>,
    /// Requests per 24 hours this client allows itself per connection (the Bridge allows about 24 and
    /// disables tokens that keep exceeding it).
    pub daily_requests: usize,
    /// Per-request time limit.
    pub timeout: Duration,
}

impl Default for SimplefinConfig {
    fn default() -> Self {
        SimplefinConfig {
            allowed_hosts: vec!["bridge.simplefin.org".into(), "beta-bridge.simplefin.org".into()],
            daily_requests: 20,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A SimpleFIN client.
pub struct SimplefinClient {
    cfg: SimplefinConfig,
    http: http::Client,
}

#[derive(Debug, Deserialize)]
struct AccountSet {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    errlist: Vec<SfError>,
    #[serde(default)]
    connections: Vec<SfConnection>,
    #[serde(default)]
    accounts: Vec<SfAccount>,
}

#[derive(Debug, Deserialize)]
struct SfError {
    #[serde(default)]
    code: String,
    #[serde(default, alias = "message")]
    msg: String,
    #[serde(default)]
    conn_id: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SfConnection {
    conn_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    org_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SfOrg {
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SfAccount {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    conn_id: Option<String>,
    #[serde(default)]
    currency: String,
    #[serde(default, deserialize_with = "http::de_opt_decimal")]
    balance: Option<Decimal>,
    #[serde(default, rename = "available-balance", deserialize_with = "http::de_opt_decimal")]
    available: Option<Decimal>,
    #[serde(default)]
    transactions: Vec<SfTxn>,
    #[serde(default)]
    org: Option<SfOrg>,
}

#[derive(Debug, Deserialize)]
struct SfTxn {
    id: String,
    #[serde(default, deserialize_with = "de_epoch")]
    posted: Option<i64>,
    #[serde(deserialize_with = "http::de_decimal")]
    amount: Decimal,
    #[serde(default)]
    description: String,
    #[serde(default, deserialize_with = "de_epoch")]
    transacted_at: Option<i64>,
    #[serde(default, deserialize_with = "de_lenient_bool")]
    pending: Option<bool>,
    #[serde(default)]
    payee: Option<String>,
}

/// Epoch seconds as a number or numeric string; anything else is absent.
fn de_epoch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok())),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `true`/`false`, `1`/`0` or null.
fn de_lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => Some(n.as_i64().unwrap_or(0) != 0),
        Some(Value::String(s)) => Some(matches!(s.trim(), "1" | "true")),
        _ => None,
    })
}

/// What the sync state of a SimpleFIN connection holds.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct State {
    /// Per account: the end (epoch seconds) of the last window read completely.
    #[serde(default)]
    window_end: BTreeMap<String, i64>,
    /// Times (epoch seconds) of the requests made in the last 24 hours.
    #[serde(default)]
    requests: Vec<i64>,
}

/// An Access URL split into where to go and how to authenticate.
struct Access {
    root: Url,
    user: String,
    password: String,
}

fn date_of(epoch: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.date_naive())
}

fn currency(c: &str) -> Option<String> {
    let c = c.trim();
    (c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic())).then(|| c.to_ascii_uppercase())
}

impl SimplefinClient {
    /// A client.
    pub fn new(cfg: SimplefinConfig) -> SimplefinClient {
        let http = http::Client::new(cfg.timeout);
        SimplefinClient { cfg, http }
    }

    fn check_url(&self, url: &Url, what: &str) -> Result<(), SyncError> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        // An entry without a port allows the scheme's default port only (`url.port()` is none for it);
        // any other port must be named: `bridge.simplefin.org` does not allow `bridge.simplefin.org:8443`.
        let allowed = match (url.port(), url.port_or_known_default()) {
            (Some(p), _) => self.cfg.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&format!("{host}:{p}"))),
            (None, default) => self.cfg.allowed_hosts.iter().any(|h| {
                h.eq_ignore_ascii_case(&host) || default.is_some_and(|d| h.eq_ignore_ascii_case(&format!("{host}:{d}")))
            }),
        };
        let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1");
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !allowed || !scheme_ok {
            return Err(SyncError::invalid(
                "host_not_allowed",
                format!("the {what} points at a host that is not allowed (set simplefin_allowed_hosts to allow it)"),
            ));
        }
        Ok(())
    }

    fn access(&self, secret: &Secret) -> Result<Access, SyncError> {
        let bad = || SyncError::revoked("bad_access_url", "the stored SimpleFIN Access URL is not valid");
        let mut url = Url::parse(secret.expose().trim()).map_err(|_| bad())?;
        let user = url.username().to_owned();
        let password = url.password().unwrap_or_default().to_owned();
        if user.is_empty() {
            return Err(bad());
        }
        self.check_url(&url, "Access URL")?;
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let user = percent_decode(&user);
        let password = percent_decode(&password);
        Ok(Access { root: url, user, password })
    }

    async fn accounts(&self, access: &Access, query: &[(&str, String)]) -> Result<AccountSet, SyncError> {
        let mut url = access.root.clone();
        let path = format!("{}/accounts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let res = self
            .http
            .get()
            .get(url)
            .basic_auth(&access.user, Some(&access.password))
            .query(query)
            .send()
            .await
            .map_err(http::network_error)?;
        let status = res.status().as_u16();
        let retry_after = http::retry_after(res.headers());
        let text = http::body_text(res).await?;
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| http::bad_response("/accounts", e)),
            402 => Err(SyncError::revoked("payment_required", "the SimpleFIN subscription needs payment")),
            403 => Err(SyncError::revoked(
                "forbidden",
                "SimpleFIN refused the access (revoked, or disabled after too many requests); connect again with a new setup token",
            )),
            429 => Err(SyncError::RateLimited { code: "http_429".into(), retry_after }),
            500..=599 => Err(SyncError::transient(&format!("http_{status}"), "SimpleFIN failed")),
            _ => Err(SyncError::invalid(
                &format!("http_{status}"),
                format!("SimpleFIN refused the request: {}", sanitize(&text)),
            )),
        }
    }

    /// Claim a setup token (base64 of a claim URL): one POST, answered with the Access URL, which is the
    /// credential. Then read the accounts (balances only) to name the institution.
    pub async fn claim(&self, setup_token: &str, now: DateTime<Utc>) -> Result<Linked, SyncError> {
        let compact: String = setup_token.chars().filter(|c| !c.is_whitespace()).collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
            .map_err(|_| SyncError::invalid("bad_setup_token", "the setup token is not valid base64"))?;
        let claim_url = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|s| Url::parse(s.trim()).ok())
            .ok_or_else(|| SyncError::invalid("bad_setup_token", "the setup token does not hold a claim URL"))?;
        self.check_url(&claim_url, "setup token")?;
        let res = self
            .http
            .get()
            .post(claim_url)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(http::network_error)?;
        let status = res.status().as_u16();
        let text = http::body_text(res).await?;
        match status {
            200..=299 => {}
            403 => {
                return Err(SyncError::invalid(
                    "setup_token_claimed",
                    "the setup token is unknown or was already claimed; if you did not claim it yourself, it may be \
                     compromised: revoke it at your SimpleFIN Bridge and create a new one",
                ));
            }
            500..=599 => return Err(SyncError::transient(&format!("http_{status}"), "SimpleFIN failed")),
            _ => return Err(SyncError::invalid(&format!("http_{status}"), "SimpleFIN refused the setup token")),
        }
        let secret = Secret::new(text.trim());
        let access = self.access(&secret).map_err(|_| {
            SyncError::invalid("bad_access_url", "SimpleFIN answered the claim with an Access URL that cannot be used")
        })?;
        let set = self.accounts(&access, &[("balances-only", "1".into()), ("version", "2".into())]).await?;
        let (institution_id, institution_name) = institution(&set);
        let external_id = Sha256::digest(access.user.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let state = State { window_end: BTreeMap::new(), requests: vec![now.timestamp()] };
        Ok(Linked {
            secret,
            external_id,
            institution_id,
            institution_name,
            consent_expires_at: None,
            accounts: set.accounts.into_iter().map(account).collect(),
            state: serde_json::to_value(state).expect("state serializes"),
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The institution's id and name (bounded to the columns' 100 and 200 characters).
fn institution(set: &AccountSet) -> (String, String) {
    let (id, name) = match set.connections.as_slice() {
        [one] => (one.org_id.clone().unwrap_or_else(|| one.conn_id.clone()), one.name.clone()),
        [] => {
            let org = set.accounts.iter().find_map(|a| a.org.as_ref());
            let id = org.and_then(|o| o.id.clone().or(o.domain.clone())).unwrap_or_else(|| "simplefin".into());
            let name = org.and_then(|o| o.name.clone().or(o.domain.clone())).unwrap_or_else(|| "SimpleFIN".into());
            (id, name)
        }
        many => ("simplefin".into(), format!("SimpleFIN Bridge ({} banks)", many.len())),
    };
    (id.chars().take(100).collect(), name.chars().take(200).collect())
}

fn account(a: SfAccount) -> Account {
    Account {
        id: a.id,
        name: a.name,
        mask: None,
        kind: None,
        currency: currency(&a.currency),
        balance: a.balance,
        available: a.available,
    }
}

impl Provider for SimplefinClient {
    fn kind(&self) -> magpie_domain::BankProvider {
        magpie_domain::BankProvider::Simplefin
    }

    async fn sync(&self, secret: &Secret, state: &Value, options: &SyncOptions) -> Result<Batch, SyncError> {
        let access = self.access(secret)?;
        let mut state: State = serde_json::from_value(state.clone()).unwrap_or_default();
        let now = options.now.timestamp();
        state.requests.retain(|t| now - t < DAY);
        let start = match state.window_end.values().min() {
            Some(end) => end - i64::from(options.overlap_days) * DAY,
            None => now - i64::from(options.initial_days) * DAY,
        };
        let mut chunks = Vec::new();
        let mut from = start;
        while from < now {
            let to = (from + MAX_WINDOW_DAYS * DAY).min(now);
            chunks.push((from, to));
            from = to;
        }
        if state.requests.len() + chunks.len() > self.cfg.daily_requests {
            let oldest = state.requests.iter().min().copied().unwrap_or(now);
            let wait = (oldest + DAY - now).max(60) as u64;
            return Err(SyncError::RateLimited {
                code: "daily_quota".into(),
                retry_after: Some(Duration::from_secs(wait)),
            });
        }
        let mut batch = Batch::default();
        let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
        let mut conn_of: HashMap<String, String> = HashMap::new();
        let mut txns: Vec<Txn> = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut untrusted: HashSet<String> = HashSet::new();
        let mut untrusted_conns: HashSet<String> = HashSet::new();
        let mut all_untrusted = false;
        for (from, to) in &chunks {
            state.requests.push(now);
            batch.requests += 1;
            let query = [
                ("start-date", from.to_string()),
                ("end-date", to.to_string()),
                ("pending", "1".to_owned()),
                ("version", "2".to_owned()),
            ];
            let set = self.accounts(&access, &query).await?;
            for e in &set.errlist {
                let (code, message) = (e.code.as_str(), sanitize(&e.msg));
                let notice = Notice { code: code.to_owned(), message: message.clone() };
                if code == "gen.auth" {
                    return Err(SyncError::Revoked { code: code.into(), message });
                }
                if code.starts_with("con.") {
                    match &e.conn_id {
                        Some(c) => {
                            untrusted_conns.insert(c.clone());
                        }
                        None => all_untrusted = true,
                    }
                    if code == "con.auth" {
                        batch.needs_reauth = Some(notice.clone());
                    }
                } else if code.starts_with("act.") {
                    match &e.account_id {
                        Some(a) => {
                            untrusted.insert(a.clone());
                        }
                        None => all_untrusted = true,
                    }
                }
                if !batch.notices.contains(&notice) {
                    batch.notices.push(notice);
                }
            }
            for message in &set.errors {
                // v1 errors name no account: no window of this batch can be trusted to be complete.
                all_untrusted = true;
                let message = sanitize(message);
                let notice = Notice { code: "error".into(), message: message.clone() };
                if message.to_ascii_lowercase().contains("need attention") {
                    batch.needs_reauth = Some(notice.clone());
                }
                if !batch.notices.contains(&notice) {
                    batch.notices.push(notice);
                }
            }
            for mut a in set.accounts {
                let list = std::mem::take(&mut a.transactions);
                if let Some(c) = &a.conn_id {
                    conn_of.insert(a.id.clone(), c.clone());
                }
                let account_currency = currency(&a.currency);
                for t in list {
                    let id = t.id.trim().to_owned();
                    if id.is_empty() || !seen.insert((a.id.clone(), id.clone())) {
                        continue;
                    }
                    let pending = t.pending.unwrap_or(false) || t.posted.unwrap_or(0) == 0;
                    let when =
                        t.posted.filter(|p| *p > 0 && !pending).or(t.transacted_at).or(t.posted.filter(|p| *p > 0));
                    let Some(date) = when.and_then(date_of) else { continue };
                    let description = Some(t.description.trim().to_owned())
                        .filter(|d| !d.is_empty())
                        .or(t.payee.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()))
                        .unwrap_or_else(|| "(no description)".to_owned());
                    txns.push(Txn {
                        account_id: a.id.clone(),
                        id,
                        weak_id: false,
                        pending,
                        pending_of: None,
                        date,
                        amount: to_cents(t.amount),
                        currency: account_currency.clone(),
                        description,
                        category: None,
                    });
                }
                accounts.insert(a.id.clone(), account(a));
            }
        }
        let trusted = |id: &str| {
            !all_untrusted && !untrusted.contains(id) && !conn_of.get(id).is_some_and(|c| untrusted_conns.contains(c))
        };
        // Dates in the window are judged only when the whole day was inside it: the first day may have
        // begun before `start`, and today is not over.
        if let (Some(from), Some(to)) = (date_of(start), date_of(now)) {
            for id in accounts.keys().filter(|id| trusted(id)) {
                batch.windows.push(Window { account_id: id.clone(), from: from.succ_opt().unwrap_or(from), to });
                state.window_end.insert(id.clone(), now);
            }
        }
        batch.accounts = accounts.into_values().collect();
        batch.upserts = txns;
        batch.state = serde_json::to_value(state).expect("state serializes");
        Ok(batch)
    }

    /// SimpleFIN has no revocation call: the user revokes the token at the Bridge. Forgetting the Access
    /// URL is all a client can do.
    async fn revoke(&self, _secret: &Secret) -> Result<(), SyncError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_fields_parse() {
        let set: AccountSet = serde_json::from_value(serde_json::json!({
            "errlist": [{"code": "con.auth", "message": "Authentication required", "conn_id": "CON-1"}],
            "accounts": [{"id": "A", "name": "Checking", "currency": "usd", "balance": "1520.04",
                "available-balance": 1495.04, "balance-date": 1780000000,
                "transactions": [
                    {"id": "T1", "posted": "1779900000", "amount": -25, "description": "GROCERY"},
                    {"id": "T2", "posted": 0, "transacted_at": 1779990000, "amount": "-9.99", "description": "X", "pending": 1}
                ]}]
        }))
        .unwrap();
        assert_eq!(set.errlist[0].msg, "Authentication required");
        let a = &set.accounts[0];
        assert_eq!(a.transactions[0].posted, Some(1_779_900_000));
        assert_eq!(a.transactions[1].pending, Some(true));
        assert_eq!(a.available.unwrap().to_string(), "1495.04");
        assert_eq!(currency(&a.currency).as_deref(), Some("USD"));
        assert_eq!(currency("https://example.com/points"), None);
    }

    #[test]
    fn hosts_are_checked() {
        let c = SimplefinClient::new(SimplefinConfig {
            allowed_hosts: vec!["127.0.0.1:9".into(), "bridge.simplefin.org".into()],
            ..SimplefinConfig::default()
        });
        assert!(c.check_url(&Url::parse("https://bridge.simplefin.org/simplefin/claim/x").unwrap(), "t").is_ok());
        assert!(
            c.check_url(&Url::parse("http://bridge.simplefin.org/x").unwrap(), "t").is_err(),
            "plain http off loopback"
        );
        assert!(c.check_url(&Url::parse("http://127.0.0.1:9/x").unwrap(), "t").is_ok());
        assert!(c.check_url(&Url::parse("http://127.0.0.1:10/x").unwrap(), "t").is_err());
        assert!(c.check_url(&Url::parse("https://169.254.169.254/latest").unwrap(), "t").is_err());
        assert!(
            c.check_url(&Url::parse("https://bridge.simplefin.org:8443/x").unwrap(), "t").is_err(),
            "an entry without a port allows the default port only"
        );
        assert!(c.check_url(&Url::parse("https://bridge.simplefin.org:443/x").unwrap(), "t").is_ok());
        assert_eq!(percent_decode("a%40b%3A"), "a@b:");
    }
}
