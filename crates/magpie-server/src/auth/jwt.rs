//! Access tokens: compact JWS with HMAC-SHA256, written here rather than pulled from a JWT crate because
//! we need exactly one algorithm, and pinning it is the whole point: the header must say `HS256`, so
//! `alg: none`, `HS512`, RS256-with-our-key-as-public-key confusion and every other variant are rejected
//! before any signature work. The signature is compared in constant time (`hmac`'s `verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use magpie_domain::{SessionId, UserId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Issuer and audience of our tokens.
const ISSUER: &str = "magpie";
/// The one header we issue and accept.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// Clock skew tolerated for `iat` in the future.
const MAX_SKEW_SECS: i64 = 60;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, always `magpie`.
    pub iss: String,
    /// Audience, always `magpie`.
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The session (refresh-token family) it belongs to.
    pub sid: SessionId,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token type, always `access`.
    pub typ: String,
}

/// Why a token was refused. Deliberately coarse: the client only ever learns "invalid or expired".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments of JSON.
    #[error("malformed token")]
    Malformed,
    /// Header names another algorithm (or none).
    #[error("unsupported token algorithm")]
    Algorithm,
    /// Signature does not match.
    #[error("bad signature")]
    Signature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Wrong issuer, audience or type, or issued in the future.
    #[error("token not valid here")]
    Claims,
}

/// Signing and verifying keys (one symmetric key).
#[derive(Clone)]
pub struct JwtKeys {
    key: Vec<u8>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl JwtKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> JwtKeys {
        assert!(secret.len() >= 32, "the signing key must be at least 32 bytes");
        JwtKeys { key: secret.to_vec() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// Issue a token for a session, valid `ttl_secs` from `now`.
    pub fn issue(&self, user: UserId, session: SessionId, now: i64, ttl_secs: i64) -> String {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: ISSUER.to_owned(),
            sub: user,
            sid: session,
            iat: now,
            exp: now + ttl_secs,
            typ: "access".to_owned(),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_JSON), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Verify a token at time `now`: algorithm pinned, signature, expiry, issuer, audience, type.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
        let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed)?;
        if header.alg != "HS256" || header.crit.is_some() || header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(JwtError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| JwtError::Signature)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
        if claims.iss != ISSUER || claims.aud != ISSUER || claims.typ != "access" || claims.iat > now + MAX_SKEW_SECS {
            return Err(JwtError::Claims);
        }
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef-test-key")
    }

    fn forge(header: &str, claims: &Claims, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_token_round_trips() {
        let (u, s) = (UserId::new(), SessionId::new());
        let t = keys().issue(u, s, 1_000, 900);
        let c = keys().verify(&t, 1_500).unwrap();
        assert_eq!((c.sub, c.sid, c.exp), (u, s, 1_900));
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let t = keys().issue(UserId::new(), SessionId::new(), 1_000, 900);
        assert_eq!(keys().verify(&t, 1_900), Err(JwtError::Expired));
    }

    #[test]
    fn a_tampered_payload_or_signature_is_rejected() {
        let t = keys().issue(UserId::new(), SessionId::new(), 1_000, 900);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let other = keys().issue(UserId::new(), SessionId::new(), 1_000, 900);
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert_eq!(keys().verify(&parts.join("."), 1_100), Err(JwtError::Signature));
        let mut sig = t.clone();
        let last = sig.pop().unwrap();
        sig.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys().verify(&sig, 1_100).is_err());
    }

    #[test]
    fn a_token_signed_with_another_key_is_rejected() {
        let t =
            JwtKeys::new(b"another-key-another-key-another-key!!").issue(UserId::new(), SessionId::new(), 1_000, 900);
        assert_eq!(keys().verify(&t, 1_100), Err(JwtError::Signature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_rejected() {
        let claims = keys().verify(&keys().issue(UserId::new(), SessionId::new(), 1_000, 900), 1_000).unwrap();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(keys().verify(&none, 1_100), Err(JwtError::Algorithm));
        let key = b"0123456789abcdef0123456789abcdef-test-key";
        for alg in ["HS512", "RS256", "hs256", "ES256"] {
            let t = forge(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), &claims, key);
            assert_eq!(keys().verify(&t, 1_100), Err(JwtError::Algorithm), "{alg}");
        }
        let crit = forge(r#"{"alg":"HS256","crit":["exp"]}"#, &claims, key);
        assert_eq!(keys().verify(&crit, 1_100), Err(JwtError::Algorithm));
    }

    #[test]
    fn wrong_claims_are_rejected() {
        let key = b"0123456789abcdef0123456789abcdef-test-key";
        let good = keys().verify(&keys().issue(UserId::new(), SessionId::new(), 1_000, 900), 1_000).unwrap();
        for bad in [
            Claims { iss: "evil".into(), ..good.clone() },
            Claims { aud: "other".into(), ..good.clone() },
            Claims { typ: "refresh".into(), ..good.clone() },
            Claims { iat: 5_000, ..good.clone() },
        ] {
            assert_eq!(keys().verify(&forge(HEADER_JSON, &bad, key), 1_100), Err(JwtError::Claims));
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for t in ["", "a", "a.b", "a.b.c.d", "!!!.###.$$$"] {
            assert!(keys().verify(t, 0).is_err(), "{t}");
        }
    }
}
