//! bcrypt, always on the blocking thread pool: a cost-12 hash takes about a quarter of a second of CPU,
//! which on the async runtime would stall every other request on that worker.

use magpie_domain::{NewPassword, PasswordHash};
use tokio::sync::OnceCell;

use crate::error::AppError;

/// What `users.password_hash` holds for an account made by an OpenID Connect sign-in: no password can
/// match it (it is not a bcrypt hash), and checking one against it costs the same as against a real
/// hash, so a sign-in attempt does not tell such accounts apart.
pub const NO_PASSWORD: &str = "!no-password";

/// Whether the account has a password of its own.
pub fn has_password(hash: &PasswordHash) -> bool {
    hash.expose() != NO_PASSWORD
}

/// Hashes and verifies passwords at the configured cost.
pub struct Passwords {
    cost: u32,
    /// A hash of a random password at the same cost, verified against when the email is unknown so that
    /// an unknown account costs the same time as a wrong password.
    dummy: OnceCell<String>,
}

impl Passwords {
    /// A hasher at `cost`.
    pub fn new(cost: u32) -> Passwords {
        Passwords { cost, dummy: OnceCell::new() }
    }

    /// Hash a new password.
    pub async fn hash(&self, password: &NewPassword) -> Result<PasswordHash, AppError> {
        let password = password.clone();
        let cost = self.cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password.expose(), cost))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("password hashing task failed: {e}")))?
            .map_err(|e| AppError::Internal(anyhow::anyhow!("password hashing failed: {e}")))?;
        Ok(PasswordHash::new(hash))
    }

    /// Whether `password` matches `hash`; with `None` (unknown account) the same work is done against a
    /// dummy hash and the answer is false. Passwords over bcrypt's 72 bytes never match (none can be set).
    pub async fn verify(&self, password: &str, hash: Option<&PasswordHash>) -> Result<bool, AppError> {
        let (target, real) = match hash {
            Some(h) if has_password(h) => (h.expose().to_owned(), true),
            _ => (self.dummy_hash().await?, false),
        };
        let too_long = password.len() > NewPassword::MAX_BYTES;
        // Never verify more than bcrypt's limit; still do the full work so timing reveals nothing.
        let candidate: String = if too_long {
            String::from_utf8_lossy(&password.as_bytes()[..72]).into_owned()
        } else {
            password.to_owned()
        };
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(candidate, &target).unwrap_or(false))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("password verification task failed: {e}")))?;
        Ok(matched && real && !too_long)
    }

    async fn dummy_hash(&self) -> Result<String, AppError> {
        let cost = self.cost;
        self.dummy
            .get_or_try_init(|| async move {
                let random = crate::auth::token::generate("");
                tokio::task::spawn_blocking(move || bcrypt::hash(random, cost))
                    .await
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let p = Passwords::new(4);
        let h = p.hash(&NewPassword::parse("correct horse battery").unwrap()).await.unwrap();
        assert!(h.expose().starts_with("$2"));
        assert!(p.verify("correct horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse batterY", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse battery", None).await.unwrap(), "unknown account never matches");
    }

    #[tokio::test]
    async fn a_password_longer_than_72_bytes_never_matches_its_prefix() {
        let p = Passwords::new(4);
        let base = "x1".repeat(36);
        let h = p.hash(&NewPassword::parse(&base).unwrap()).await.unwrap();
        assert!(p.verify(&base, Some(&h)).await.unwrap());
        assert!(!p.verify(&format!("{base}extra"), Some(&h)).await.unwrap());
    }
}
