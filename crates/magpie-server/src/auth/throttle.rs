//! Sign-in throttling per account and per client address, stored in the database so that every replica
//! counts the same failures. Keys are hashed: the table holds no email or address in clear.

use std::time::Duration;

use chrono::TimeDelta;
use magpie_db::{Conn, auth};
use magpie_domain::Timestamp;

use crate::config::Config;
use crate::error::AppError;

/// Throttle keys for one sign-in attempt.
pub struct Keys {
    account: String,
    ip: Option<String>,
}

impl Keys {
    /// Keys for an attempt on `email` (as typed, normalized here) from `ip`.
    pub fn new(email: &str, ip: Option<&str>) -> Keys {
        Keys {
            account: crate::auth::token::hash(&format!("account:{}", email.trim().to_lowercase())),
            ip: ip.map(|ip| crate::auth::token::hash(&format!("ip:{ip}"))),
        }
    }
}

fn window(config: &Config) -> TimeDelta {
    TimeDelta::seconds(config.login_failure_window_secs as i64)
}

/// 429 if the account or the address has used up its failures in the window.
pub async fn check(mut conn: Conn<'_>, config: &Config, keys: &Keys) -> Result<(), AppError> {
    let now = Timestamp::now();
    let since = Timestamp::from_datetime(now.as_datetime() - window(config));
    let mut limits = vec![(&keys.account, config.login_max_failures_per_account)];
    if let Some(ip) = &keys.ip {
        limits.push((ip, config.login_max_failures_per_ip));
    }
    for (key, max) in limits {
        let (count, oldest) = auth::login_failures_since(conn.reborrow(), key, since).await?;
        if count >= i64::from(max) {
            let free_at = oldest.map(|t| t.as_datetime() + window(config)).unwrap_or(now.as_datetime());
            let wait = (free_at - now.as_datetime()).to_std().unwrap_or(Duration::ZERO);
            return Err(AppError::TooManyRequests { retry_after_secs: wait.as_secs().max(1) });
        }
    }
    Ok(())
}

/// Count a failed attempt.
pub async fn record_failure(conn: Conn<'_>, config: &Config, keys: &Keys) -> Result<(), AppError> {
    let now = Timestamp::now();
    let forget_before = Timestamp::from_datetime(now.as_datetime() - window(config));
    let mut list = vec![keys.account.as_str()];
    if let Some(ip) = &keys.ip {
        list.push(ip);
    }
    auth::record_login_failure(conn, &list, now, forget_before).await?;
    Ok(())
}

/// A successful sign-in forgives the account's failures (not the address's).
pub async fn record_success(conn: Conn<'_>, keys: &Keys) -> Result<(), AppError> {
    auth::clear_login_failures(conn, &keys.account).await?;
    Ok(())
}
