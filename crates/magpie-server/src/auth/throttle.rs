//! Sign-in throttling, stored in the database so that every replica counts the same attempts. Keys are
//! hashed: the table holds no email or address in clear.
//!
//! An attempt is *reserved* before the password (or second factor) is checked and withdrawn when it was
//! right, so a burst of concurrent guesses is counted as it arrives rather than after each bcrypt run
//! (see [`magpie_db::auth::reserve_login_attempt`]): 100 parallel guesses get at most the limit
//! checked. Three limits apply within the window:
//! * the account from one address (`login_max_failures_per_account`): a guesser is stopped without
//!   locking the owner out, who signs in from elsewhere;
//! * the address over every account (`login_max_failures_per_ip`): one client spraying many accounts;
//! * the account from every address (`login_max_failures_per_account_total`): a distributed guesser.

use std::time::Duration;

use chrono::TimeDelta;
use magpie_db::{Conn, auth};
use magpie_domain::Timestamp;

use crate::config::Config;
use crate::error::AppError;

/// Throttle keys for one sign-in attempt.
pub struct Keys {
    pair: String,
    account: String,
    ip: Option<String>,
}

impl Keys {
    /// Keys for an attempt on `email` (as typed, normalized here) from `ip`.
    pub fn new(email: &str, ip: Option<&str>) -> Keys {
        let email = email.trim().to_lowercase();
        let hash = crate::auth::token::hash;
        Keys {
            pair: hash(&format!("account:{email}|ip:{}", ip.unwrap_or("-"))),
            account: hash(&format!("account:{email}")),
            ip: ip.map(|ip| hash(&format!("ip:{ip}"))),
        }
    }
}

/// A reserved attempt: withdrawn by [`succeeded`], otherwise it stays as a failure.
#[must_use = "a reserved attempt is withdrawn with `succeeded` when the credential was right"]
pub struct Attempt {
    ids: Vec<uuid::Uuid>,
}

fn window(config: &Config) -> TimeDelta {
    TimeDelta::seconds(config.login_failure_window_secs as i64)
}

/// Reserve `keys` with their limits; 429 (and nothing reserved) when one is used up.
async fn reserve_keys(
    mut conn: Conn<'_>,
    config: &Config,
    limited: &[(&str, u32)],
) -> Result<Vec<uuid::Uuid>, AppError> {
    let now = Timestamp::now();
    let since = Timestamp::from_datetime(now.as_datetime() - window(config));
    auth::prune_login_failures(conn.reborrow(), since).await?;
    let keys: Vec<&str> = limited.iter().map(|(k, _)| *k).collect();
    let (ids, counts) = auth::reserve_login_attempt(conn.reborrow(), &keys, now, since).await?;
    let mut wait: Option<Duration> = None;
    for ((_, max), (count, oldest)) in limited.iter().zip(counts) {
        if count > i64::from(*max) {
            let free_at = oldest.map(|t| t.as_datetime() + window(config)).unwrap_or(now.as_datetime());
            let w = (free_at - now.as_datetime()).to_std().unwrap_or(Duration::ZERO);
            wait = Some(wait.map_or(w, |prev| prev.max(w)));
        }
    }
    if let Some(w) = wait {
        auth::release_login_attempt(conn, &ids).await?;
        return Err(AppError::TooManyRequests { retry_after_secs: w.as_secs().max(1) });
    }
    Ok(ids)
}

/// Reserve a sign-in attempt (password or second factor) before checking it.
pub async fn reserve(conn: Conn<'_>, config: &Config, keys: &Keys) -> Result<Attempt, AppError> {
    let mut limited = vec![
        (keys.pair.as_str(), config.login_max_failures_per_account),
        (keys.account.as_str(), config.login_max_failures_per_account_total),
    ];
    if let Some(ip) = &keys.ip {
        limited.push((ip.as_str(), config.login_max_failures_per_ip));
    }
    Ok(Attempt { ids: reserve_keys(conn, config, &limited).await? })
}

/// The credential was right: the attempt is withdrawn, and the account's failures from this address
/// are forgiven (not the address's, nor those from elsewhere).
pub async fn succeeded(mut conn: Conn<'_>, attempt: Attempt, keys: &Keys) -> Result<(), AppError> {
    auth::release_login_attempt(conn.reborrow(), &attempt.ids).await?;
    auth::clear_login_failures(conn, &keys.pair).await?;
    Ok(())
}

/// Count a sign-up from `ip` (every sign-up counts, successful or not); 429 past
/// `registrations_per_ip` within the window.
pub async fn reserve_registration(conn: Conn<'_>, config: &Config, ip: Option<&str>) -> Result<(), AppError> {
    let key = crate::auth::token::hash(&format!("register:{}", ip.unwrap_or("-")));
    reserve_keys(conn, config, &[(key.as_str(), config.registrations_per_ip)]).await.map(|_| ())
}
