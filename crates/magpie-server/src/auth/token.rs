//! Opaque bearer tokens (refresh and personal access tokens): 256 random bits, shown to the client once,
//! stored only as a SHA-256 hash. A hash suffices (no bcrypt) because the input is random, not chosen
//! by a person: there is nothing to guess.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Prefix of personal access tokens, so they can be told apart from JWTs and found by secret scanners.
pub const PAT_PREFIX: &str = "mgp_pat_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "mgp_rt_";
/// Prefix of invitation codes.
pub const INVITE_PREFIX: &str = "mgp_inv_";
/// Prefix of second-factor challenges handed out by a password sign-in.
pub const CHALLENGE_PREFIX: &str = "mgp_mfa_";

/// `prefix` + 32 random bytes in URL-safe base64.
pub fn generate(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random number generator is available");
    buf
}

/// Lower-case hex SHA-256 of a token: what the database stores and looks up.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_to_64_hex() {
        let a = generate(PAT_PREFIX);
        let b = generate(PAT_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(PAT_PREFIX));
        assert_eq!(a.len(), PAT_PREFIX.len() + 43);
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
