//! OpenID Connect sign-in (the relying party): discovery, the authorization code flow with PKCE
//! (S256), `state` and `nonce`, the code exchange, and the ID token's validation (OpenID Connect Core
//! §3.1.3.7): signature by a key of the provider's JWKS with a pinned algorithm (RS256 or ES256, never
//! `none` or an HMAC), `iss` equal to the configured issuer, `aud` holding this client (and `azp` when
//! there are several audiences), `exp` and `iat` within a small clock skew, and the `nonce` of this
//! sign-in. Claims missing from the ID token (email, groups) are read from the userinfo endpoint, whose
//! `sub` must match.
//!
//! Accounts are linked by issuer and subject, never by email: see the web sign-in for what is done with
//! a verified email the first time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Why a sign-in through the provider failed. Messages are safe to show: no token, code or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answered nonsense.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The discovery document names another issuer than the configured one.
    #[error("the identity provider's issuer is not the configured one")]
    WrongIssuer,
    /// The code exchange was refused.
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token is not acceptable.
    #[error("the identity provider's ID token is not valid: {0}")]
    InvalidToken(&'static str),
}

/// What the discovery document tells.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where the browser goes.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
    /// Claims beyond the ID token.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
}

/// The person, as the provider vouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The provider's stable id of the person.
    pub subject: String,
    /// Their email, if given.
    pub email: Option<String>,
    /// Whether the provider verified that email.
    pub email_verified: bool,
    /// Their groups (from the configured claim).
    pub groups: Vec<String>,
    /// A display name.
    pub name: Option<String>,
}

/// The client, with cached discovery and keys.
pub struct OidcClient {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: String,
    redirect_uri: String,
    groups_claim: String,
    /// Clock skew allowed on `exp` and `iat`, in seconds.
    pub skew_secs: i64,
    discovery: Mutex<Option<(Discovery, Instant)>>,
    jwks: Mutex<Option<(Vec<Value>, Instant)>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient").field("issuer", &self.issuer).field("client_id", &self.client_id).finish()
    }
}

/// How long discovery and keys are kept before being read again.
const CACHE: Duration = Duration::from_secs(3600);
/// Keys are re-read for an unknown key id at most this often (a forged `kid` must not make every
/// request call the provider).
const JWKS_REFRESH: Duration = Duration::from_secs(60);

/// The path the provider sends people back to.
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

impl OidcClient {
    /// A client from configuration; none when OpenID Connect is not configured.
    pub fn from_config(config: &Config) -> Option<OidcClient> {
        let issuer = config.oidc_issuer.clone()?;
        let client_id = config.oidc_client_id.clone()?;
        let origin = config.public_origin()?;
        magpie_sync::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        let mut scopes: Vec<&str> = config.oidc_scopes.split_whitespace().collect();
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        Some(OidcClient {
            http,
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id,
            client_secret: config.oidc_client_secret.as_ref().map(|s| s.expose().clone()),
            scopes: scopes.join(" "),
            redirect_uri: format!("{origin}{CALLBACK_PATH}"),
            groups_claim: config.oidc_groups_claim.clone(),
            skew_secs: config.oidc_clock_skew_secs,
            discovery: Mutex::new(None),
            jwks: Mutex::new(None),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let res = self.http.get(url).send().await.map_err(|e| OidcError::Unavailable(short(e)))?;
        if !res.status().is_success() {
            return Err(OidcError::Unavailable(format!("{url} answered {}", res.status().as_u16())));
        }
        res.json().await.map_err(|e| OidcError::Unavailable(short(e)))
    }

    /// The discovery document, checked against the configured issuer.
    pub async fn discovery(&self) -> Result<Discovery, OidcError> {
        if let Some((d, at)) = self.discovery.lock().expect("never poisoned").as_ref()
            && at.elapsed() < CACHE
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let d: Discovery = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|_| OidcError::Unavailable("the discovery document is incomplete".into()))?;
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(OidcError::WrongIssuer);
        }
        *self.discovery.lock().expect("never poisoned") = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// Where to send the browser: the authorization request with `state`, `nonce` and the PKCE
    /// challenge of `verifier`.
    pub async fn authorization_url(&self, state: &str, nonce: &str, verifier: &str) -> Result<String, OidcError> {
        let d = self.discovery().await?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|_| OidcError::Unavailable("the authorization endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchange `code` (with the PKCE `verifier`) and validate what comes back against `nonce`.
    pub async fn finish(&self, code: &str, verifier: &str, nonce: &str) -> Result<Identity, OidcError> {
        let d = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
            ("client_id", self.client_id.as_str()),
        ];
        let mut req = self.http.post(&d.token_endpoint).header("accept", "application/json");
        if let Some(secret) = &self.client_secret {
            req = req.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
        }
        let body = form.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&");
        let res = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(short(e)))?;
        let status = res.status();
        let json: Value = res.json().await.map_err(|e| OidcError::Unavailable(short(e)))?;
        if !status.is_success() {
            let error = json["error"].as_str().unwrap_or("error").chars().take(60).collect::<String>();
            return Err(OidcError::Refused(error));
        }
        let id_token = json["id_token"].as_str().ok_or(OidcError::InvalidToken("no id_token"))?;
        let now = chrono::Utc::now().timestamp();
        let claims = self.validate(id_token, nonce, now).await?;
        let mut identity = self.identity_of(&claims)?;
        if (identity.email.is_none() || claims.get(&self.groups_claim).is_none())
            && let (Some(endpoint), Some(access)) = (d.userinfo_endpoint.as_deref(), json["access_token"].as_str())
        {
            let info = self.userinfo(endpoint, access).await?;
            if info["sub"].as_str() != Some(identity.subject.as_str()) {
                return Err(OidcError::InvalidToken("userinfo is about someone else"));
            }
            let merged = self.identity_of(&merge(claims, info))?;
            identity = merged;
        }
        Ok(identity)
    }

    async fn userinfo(&self, endpoint: &str, access_token: &str) -> Result<Value, OidcError> {
        let res = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(short(e)))?;
        if !res.status().is_success() {
            return Err(OidcError::Unavailable(format!("userinfo answered {}", res.status().as_u16())));
        }
        res.json().await.map_err(|e| OidcError::Unavailable(short(e)))
    }

    fn identity_of(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, OidcError> {
        let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255);
        let subject = subject.ok_or(OidcError::InvalidToken("no subject"))?.to_owned();
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Some providers send the string "true".
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let groups = match claims.get(&self.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(s)) => s.split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            issuer: self.issuer.clone(),
            subject,
            email: claims.get("email").and_then(Value::as_str).map(|e| e.trim().to_lowercase()),
            email_verified: verified,
            groups,
            name: claims.get("name").and_then(Value::as_str).map(|n| n.chars().take(100).collect()),
        })
    }

    /// The signing keys, re-read when `kid` is unknown (at most once a minute).
    async fn key_for(&self, kid: Option<&str>, alg: &str) -> Result<Value, OidcError> {
        let find = |keys: &[Value]| {
            keys.iter()
                .filter(|k| k["use"].as_str().is_none_or(|u| u == "sig"))
                .filter(|k| k["alg"].as_str().is_none_or(|a| a == alg))
                .find(|k| kid.is_none_or(|kid| k["kid"].as_str() == Some(kid)))
                .cloned()
        };
        let cached = self.jwks.lock().expect("never poisoned").clone();
        if let Some((keys, at)) = &cached {
            if let Some(k) = find(keys) {
                return Ok(k);
            }
            if at.elapsed() < JWKS_REFRESH {
                return Err(OidcError::InvalidToken("signed with an unknown key"));
            }
        }
        let d = self.discovery().await?;
        let keys = self.get_json(&d.jwks_uri).await?["keys"].as_array().cloned().unwrap_or_default();
        *self.jwks.lock().expect("never poisoned") = Some((keys.clone(), Instant::now()));
        find(&keys).ok_or(OidcError::InvalidToken("signed with an unknown key"))
    }

    /// Validate an ID token (signature, issuer, audience, times, nonce); returns its claims.
    pub async fn validate(
        &self,
        token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, OidcError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(OidcError::InvalidToken("not a signed JWT"));
        };
        let header: Value = decode_part(h).ok_or(OidcError::InvalidToken("header"))?;
        // The algorithm is pinned to the asymmetric ones: `none` and HMAC (with the public key as the
        // secret) are the classic forgeries.
        let alg = header["alg"].as_str().unwrap_or_default();
        if !matches!(alg, "RS256" | "ES256") {
            return Err(OidcError::InvalidToken("algorithm not allowed"));
        }
        let jwk = self.key_for(header["kid"].as_str(), alg).await?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| OidcError::InvalidToken("signature"))?;
        verify_jws(&jwk, alg, format!("{h}.{p}").as_bytes(), &signature)?;
        let claims: Value = decode_part(p).ok_or(OidcError::InvalidToken("claims"))?;
        let claims = claims.as_object().cloned().ok_or(OidcError::InvalidToken("claims"))?;
        check_claims(&claims, &self.issuer, &self.client_id, nonce, now, self.skew_secs)?;
        Ok(claims)
    }
}

/// The claim checks of OpenID Connect Core §3.1.3.7, on a token whose signature is verified.
pub fn check_claims(
    claims: &serde_json::Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
    skew: i64,
) -> Result<(), OidcError> {
    if claims.get("iss").and_then(Value::as_str).map(|i| i.trim_end_matches('/')) != Some(issuer) {
        return Err(OidcError::InvalidToken("issued by another issuer"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err(OidcError::InvalidToken("meant for another client"));
    }
    if audiences.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
        return Err(OidcError::InvalidToken("meant for another party"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(OidcError::InvalidToken("no expiry"))?;
    if exp + skew <= now {
        return Err(OidcError::InvalidToken("expired"));
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or(OidcError::InvalidToken("no issue time"))?;
    if iat - skew > now {
        return Err(OidcError::InvalidToken("issued in the future"));
    }
    let given = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    let same = given.len() == nonce.len() && given.bytes().zip(nonce.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if nonce.is_empty() || !same {
        return Err(OidcError::InvalidToken("nonce does not match this sign-in"));
    }
    Ok(())
}

/// Verify a JWS signature with a JWK.
pub fn verify_jws(jwk: &Value, alg: &str, signed: &[u8], signature: &[u8]) -> Result<(), OidcError> {
    let field = |k: &str| jwk[k].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    match (alg, jwk["kty"].as_str()) {
        ("RS256", Some("RSA")) => {
            use rsa::signature::Verifier;
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                return Err(OidcError::InvalidToken("RSA key"));
            };
            if n.len() < 256 {
                return Err(OidcError::InvalidToken("RSA key shorter than 2048 bits"));
            }
            let key = rsa::PublicKey::new(
                rsa::BoxedUint::from_be_slice_vartime(&n),
                rsa::BoxedUint::from_be_slice_vartime(&e),
            )
            .map_err(|_| OidcError::InvalidToken("RSA key"))?;
            let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
            let sig =
                rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| OidcError::InvalidToken("signature"))?;
            verifier.verify(signed, &sig).map_err(|_| OidcError::InvalidToken("bad signature"))
        }
        ("ES256", Some("EC")) if jwk["crv"].as_str() == Some("P-256") => {
            use p256::ecdsa::signature::Verifier;
            let (Some(x), Some(y)) = (field("x"), field("y")) else {
                return Err(OidcError::InvalidToken("EC key"));
            };
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            let key =
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| OidcError::InvalidToken("EC key"))?;
            // JWS ES256 signatures are r || s, not DER.
            let sig =
                p256::ecdsa::Signature::from_slice(signature).map_err(|_| OidcError::InvalidToken("signature"))?;
            key.verify(signed, &sig).map_err(|_| OidcError::InvalidToken("bad signature"))
        }
        _ => Err(OidcError::InvalidToken("key does not fit the algorithm")),
    }
}

fn decode_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn merge(mut claims: serde_json::Map<String, Value>, info: Value) -> serde_json::Map<String, Value> {
    if let Value::Object(extra) = info {
        for (k, v) in extra {
            claims.entry(k).or_insert(v);
        }
    }
    claims
}

/// `application/x-www-form-urlencoded` of one value (also what HTTP Basic of OAuth 2.0 client
/// credentials wants, RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An error's text without URLs' query strings (which could carry a code).
fn short(e: reqwest::Error) -> String {
    let text = e.without_url().to_string();
    text.chars().take(200).collect()
}

/// A new random value for `state`, `nonce` or the PKCE verifier (256 bits, base64url).
pub fn random_value() -> String {
    URL_SAFE_NO_PAD.encode(crate::auth::token::random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};
    use serde_json::json;

    use super::*;

    fn es256_token(key: &SigningKey, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "k1"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig: Signature = key.sign(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn jwk_of(key: &SigningKey) -> Value {
        let point = key.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
               "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())})
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://id.example", "aud": "magpie", "sub": "s1", "exp": now + 300, "iat": now, "nonce": "n1"})
    }

    #[test]
    fn signatures_verify_only_with_the_signing_key() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let token = es256_token(&key, &claims(1_000));
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(verify_jws(&jwk_of(&key), "ES256", signed.as_bytes(), &sig).is_ok());
        assert!(verify_jws(&jwk_of(&other), "ES256", signed.as_bytes(), &sig).is_err());
        let mut tampered = signed.as_bytes().to_vec();
        tampered[5] ^= 1;
        assert!(verify_jws(&jwk_of(&key), "ES256", &tampered, &sig).is_err());
        assert!(verify_jws(&jwk_of(&key), "RS256", signed.as_bytes(), &sig).is_err(), "the key decides, not the token");
    }

    #[test]
    fn every_claim_is_checked() {
        let now = 10_000;
        let ok = |c: Value| check_claims(c.as_object().unwrap(), "https://id.example", "magpie", "n1", now, 60);
        assert!(ok(claims(now)).is_ok());
        let with = |k: &str, v: Value| {
            let mut c = claims(now);
            c[k] = v;
            c
        };
        assert!(ok(with("iss", json!("https://evil.example"))).is_err());
        assert!(ok(with("aud", json!("another-client"))).is_err());
        assert!(ok(with("aud", json!(["magpie", "other"]))).is_err(), "several audiences need azp");
        let mut azp = with("aud", json!(["magpie", "other"]));
        azp["azp"] = json!("magpie");
        assert!(ok(azp).is_ok());
        assert!(ok(with("exp", json!(now - 61))).is_err());
        assert!(ok(with("exp", json!(now - 30))).is_ok(), "within the clock skew");
        assert!(ok(with("iat", json!(now + 120))).is_err());
        assert!(ok(with("nonce", json!("n2"))).is_err());
        let mut no_nonce = claims(now);
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert!(ok(no_nonce).is_err());
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
