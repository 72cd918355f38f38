//! WebAuthn (passkeys), the relying party's half: the options a browser passes to
//! `navigator.credentials.create()` / `.get()`, and the verification of what comes back (W3C WebAuthn
//! Level 2, §7.1 and §7.2).
//!
//! Written here rather than taken from `webauthn-rs`, which needs OpenSSL (a system library this
//! project's set-up contract does not assume). The scope is what passkeys need and nothing more:
//! * credentials with ES256 (ECDSA P-256, what every platform authenticator and security key offers)
//!   or RS256 (Windows Hello) keys;
//! * attestation `none` is asked for and attestation statements are not verified: the server does not
//!   restrict which authenticator models may be used, so there is no trust chain to check (a `packed`
//!   or other statement is accepted and ignored, as `none` would be);
//! * user verification (PIN or biometric) is required, so a passkey alone is a full sign-in;
//! * the origin must be exactly the configured `public_url`, the RP id hash its host, the challenge the
//!   one this server issued (single use), and a signature counter that goes backwards is refused (a
//!   cloned authenticator).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// COSE algorithm ES256.
pub const ES256: i64 = -7;
/// COSE algorithm RS256.
pub const RS256: i64 = -257;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// Why a registration or an assertion was refused. The messages name the check, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebauthnError {
    /// The response is not well-formed.
    #[error("the passkey response is malformed: {0}")]
    Malformed(&'static str),
    /// It answers another challenge, or none this server issued.
    #[error("the passkey response answers another challenge")]
    Challenge,
    /// It was made for another site.
    #[error("the passkey response was made for another site ({0})")]
    Origin(&'static str),
    /// The person was not verified (PIN or biometric) or not present.
    #[error("the authenticator did not verify the person (a PIN or biometric is needed)")]
    NotVerified,
    /// A key type this server does not accept.
    #[error("the passkey uses an algorithm this server does not accept (ES256 and RS256 are)")]
    Algorithm,
    /// The signature does not verify.
    #[error("the passkey signature does not verify")]
    Signature,
    /// The signature counter went backwards: a cloned authenticator.
    #[error("the passkey's signature counter went backwards; it may have been cloned")]
    Counter,
}

/// This server as a WebAuthn relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The RP id: `public_url`'s host.
    pub id: String,
    /// The exact origin responses must come from: `public_url`'s scheme, host and port.
    pub origin: String,
    /// The name shown by the authenticator.
    pub name: String,
}

impl RelyingParty {
    /// From `public_url`; none when it has no host.
    pub fn from_public_url(url: &str) -> Option<RelyingParty> {
        let url = url.trim_end_matches('/');
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split('/').next()?;
        let host = match authority.strip_prefix('[') {
            // An IP literal; browsers refuse those as RP ids, but the origin check still applies.
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            return None;
        }
        Some(RelyingParty {
            id: host.to_ascii_lowercase(),
            origin: format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()),
            name: "Magpie".to_owned(),
        })
    }

    /// `navigator.credentials.create()` options in their JSON form (binary fields base64url), for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON`.
    pub fn creation_options(
        &self,
        challenge: &[u8],
        user_handle: &[u8],
        user_name: &str,
        exclude: &[String],
    ) -> serde_json::Value {
        serde_json::json!({
            "rp": {"id": self.id, "name": self.name},
            "user": {"id": b64(user_handle), "name": user_name, "displayName": user_name},
            "challenge": b64(challenge),
            "pubKeyCredParams": [{"type": "public-key", "alg": ES256}, {"type": "public-key", "alg": RS256}],
            "timeout": 300_000,
            "excludeCredentials": exclude.iter().map(|id| serde_json::json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
            "authenticatorSelection": {"residentKey": "required", "requireResidentKey": true, "userVerification": "required"},
            "attestation": "none",
        })
    }

    /// `navigator.credentials.get()` options in their JSON form (no allowed list: the browser offers
    /// every passkey it has for this site, so no email needs typing).
    pub fn request_options(&self, challenge: &[u8]) -> serde_json::Value {
        serde_json::json!({
            "rpId": self.id,
            "challenge": b64(challenge),
            "timeout": 300_000,
            "allowCredentials": [],
            "userVerification": "required",
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str, what: &'static str) -> Result<Vec<u8>, WebauthnError> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| WebauthnError::Malformed(what))
}

/// What `credential.toJSON()` gives after `create()`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationCredential {
    /// Credential id, base64url.
    pub id: String,
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's answer.
    pub response: AttestationResponse,
}

/// The attestation part of a registration.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url CBOR.
    pub attestation_object: String,
    /// `internal`, `usb`, `hybrid`…
    #[serde(default)]
    pub transports: Vec<String>,
}

/// What `credential.toJSON()` gives after `get()`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionCredential {
    /// Credential id, base64url.
    pub id: String,
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's answer.
    pub response: AssertionResponse,
}

/// The assertion part of a sign-in.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url.
    pub authenticator_data: String,
    /// base64url (DER for ES256).
    pub signature: String,
    /// base64url: the user handle given at registration.
    #[serde(default)]
    pub user_handle: Option<String>,
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default, rename = "crossOrigin")]
    cross_origin: bool,
}

/// The challenge a response answers (from its client data), to find the stored one.
pub fn challenge_of(client_data_json_b64: &str) -> Result<Vec<u8>, WebauthnError> {
    let raw = unb64(client_data_json_b64, "clientDataJSON")?;
    let data: ClientData = serde_json::from_slice(&raw).map_err(|_| WebauthnError::Malformed("clientDataJSON"))?;
    unb64(&data.challenge, "challenge")
}

/// Check client data: its type, that it answers `challenge`, and its origin. Returns its SHA-256.
fn check_client_data(
    rp: &RelyingParty,
    b64_json: &str,
    kind: &str,
    challenge: &[u8],
) -> Result<[u8; 32], WebauthnError> {
    let raw = unb64(b64_json, "clientDataJSON")?;
    let data: ClientData = serde_json::from_slice(&raw).map_err(|_| WebauthnError::Malformed("clientDataJSON"))?;
    if data.kind != kind {
        return Err(WebauthnError::Malformed("clientDataJSON type"));
    }
    let given = unb64(&data.challenge, "challenge")?;
    if given.len() != challenge.len() || given.iter().zip(challenge).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Err(WebauthnError::Challenge);
    }
    if data.origin != rp.origin {
        return Err(WebauthnError::Origin("origin"));
    }
    if data.cross_origin {
        return Err(WebauthnError::Origin("cross-origin frame"));
    }
    Ok(Sha256::digest(&raw).into())
}

/// Authenticator data, parsed.
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    /// (credential id, COSE key bytes) when attested credential data is present.
    attested: Option<(&'a [u8], &'a [u8])>,
}

fn parse_auth_data(bytes: &[u8]) -> Result<AuthData<'_>, WebauthnError> {
    if bytes.len() < 37 {
        return Err(WebauthnError::Malformed("authenticator data"));
    }
    let flags = bytes[32];
    let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
    let mut attested = None;
    if flags & FLAG_AT != 0 {
        let rest = bytes.get(37 + 16..).ok_or(WebauthnError::Malformed("attested credential data"))?;
        let len = usize::from(u16::from_be_bytes([
            *rest.first().ok_or(WebauthnError::Malformed("credential id length"))?,
            *rest.get(1).ok_or(WebauthnError::Malformed("credential id length"))?,
        ]));
        let id = rest.get(2..2 + len).ok_or(WebauthnError::Malformed("credential id"))?;
        let key_start = &rest[2 + len..];
        let (_, used) = cbor::decode(key_start).map_err(|_| WebauthnError::Malformed("credential public key"))?;
        if flags & FLAG_ED == 0 && used != key_start.len() {
            return Err(WebauthnError::Malformed("trailing bytes after the public key"));
        }
        attested = Some((id, &key_start[..used]));
    }
    Ok(AuthData { rp_id_hash: &bytes[..32], flags, sign_count, attested })
}

fn check_rp_and_flags(rp: &RelyingParty, data: &AuthData<'_>) -> Result<(), WebauthnError> {
    let expected: [u8; 32] = Sha256::digest(rp.id.as_bytes()).into();
    if data.rp_id_hash != expected {
        return Err(WebauthnError::Origin("relying party id"));
    }
    if data.flags & FLAG_UP == 0 || data.flags & FLAG_UV == 0 {
        return Err(WebauthnError::NotVerified);
    }
    Ok(())
}

/// A credential a registration created, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// Credential id, base64url.
    pub credential_id: String,
    /// COSE public key.
    pub public_key: Vec<u8>,
    /// COSE algorithm.
    pub algorithm: i64,
    /// Signature counter at registration.
    pub sign_count: u32,
    /// Transports the browser reported.
    pub transports: Vec<String>,
}

/// Verify a registration answering `challenge` (W3C WebAuthn §7.1).
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    credential: &RegistrationCredential,
) -> Result<NewCredential, WebauthnError> {
    if credential.kind != "public-key" {
        return Err(WebauthnError::Malformed("type"));
    }
    check_client_data(rp, &credential.response.client_data_json, "webauthn.create", challenge)?;
    let object = unb64(&credential.response.attestation_object, "attestationObject")?;
    let (value, _) = cbor::decode(&object).map_err(|_| WebauthnError::Malformed("attestationObject"))?;
    let auth_bytes =
        value.text_key("authData").and_then(cbor::Value::bytes).ok_or(WebauthnError::Malformed("authData"))?;
    value.text_key("fmt").and_then(cbor::Value::text).ok_or(WebauthnError::Malformed("fmt"))?;
    let data = parse_auth_data(auth_bytes)?;
    check_rp_and_flags(rp, &data)?;
    let (id, key) = data.attested.ok_or(WebauthnError::Malformed("no attested credential data"))?;
    if b64(id) != credential.id.trim_end_matches('=') {
        return Err(WebauthnError::Malformed("credential id"));
    }
    let algorithm = PublicKey::from_cose(key)?.algorithm();
    Ok(NewCredential {
        credential_id: b64(id),
        public_key: key.to_vec(),
        algorithm,
        sign_count: data.sign_count,
        transports: credential.response.transports.iter().take(8).map(|t| t.chars().take(20).collect()).collect(),
    })
}

/// A stored credential, for checking an assertion.
pub struct StoredCredential<'a> {
    /// COSE public key.
    pub public_key: &'a [u8],
    /// Counter last seen.
    pub sign_count: u32,
    /// The user handle it was registered with.
    pub user_handle: &'a [u8],
}

/// Verify an assertion answering `challenge` with a stored credential (W3C WebAuthn §7.2); returns the
/// new signature counter.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    credential: &AssertionCredential,
    stored: &StoredCredential<'_>,
) -> Result<u32, WebauthnError> {
    if credential.kind != "public-key" {
        return Err(WebauthnError::Malformed("type"));
    }
    let client_hash = check_client_data(rp, &credential.response.client_data_json, "webauthn.get", challenge)?;
    if let Some(handle) = &credential.response.user_handle
        && !handle.is_empty()
        && unb64(handle, "userHandle")? != stored.user_handle
    {
        return Err(WebauthnError::Signature);
    }
    let auth_bytes = unb64(&credential.response.authenticator_data, "authenticatorData")?;
    let data = parse_auth_data(&auth_bytes)?;
    check_rp_and_flags(rp, &data)?;
    let signature = unb64(&credential.response.signature, "signature")?;
    let mut signed = auth_bytes.clone();
    signed.extend_from_slice(&client_hash);
    PublicKey::from_cose(stored.public_key)?.verify(&signed, &signature)?;
    if (data.sign_count != 0 || stored.sign_count != 0) && data.sign_count <= stored.sign_count {
        return Err(WebauthnError::Counter);
    }
    Ok(data.sign_count)
}

/// A credential's public key.
enum PublicKey {
    Es256(p256::ecdsa::VerifyingKey),
    Rs256(Box<rsa::PublicKey>),
}

impl PublicKey {
    fn from_cose(bytes: &[u8]) -> Result<PublicKey, WebauthnError> {
        let (key, _) = cbor::decode(bytes).map_err(|_| WebauthnError::Malformed("public key"))?;
        let int = |k: i64| key.int_key(k);
        let kty = int(1).and_then(cbor::Value::int).ok_or(WebauthnError::Malformed("key type"))?;
        let alg = int(3).and_then(cbor::Value::int).ok_or(WebauthnError::Malformed("key algorithm"))?;
        match (kty, alg) {
            (2, ES256) => {
                if int(-1).and_then(cbor::Value::int) != Some(1) {
                    return Err(WebauthnError::Algorithm);
                }
                let x = int(-2).and_then(cbor::Value::bytes).filter(|b| b.len() == 32);
                let y = int(-3).and_then(cbor::Value::bytes).filter(|b| b.len() == 32);
                let (Some(x), Some(y)) = (x, y) else { return Err(WebauthnError::Malformed("EC2 key")) };
                let mut point = vec![4u8];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                    .map(PublicKey::Es256)
                    .map_err(|_| WebauthnError::Malformed("EC2 key"))
            }
            (3, RS256) => {
                let n = int(-1).and_then(cbor::Value::bytes).ok_or(WebauthnError::Malformed("RSA key"))?;
                let e = int(-2).and_then(cbor::Value::bytes).ok_or(WebauthnError::Malformed("RSA key"))?;
                if n.len() < 256 {
                    return Err(WebauthnError::Algorithm);
                }
                let n = rsa::BoxedUint::from_be_slice_vartime(n);
                let e = rsa::BoxedUint::from_be_slice_vartime(e);
                rsa::PublicKey::new(n, e)
                    .map(|k| PublicKey::Rs256(Box::new(k)))
                    .map_err(|_| WebauthnError::Malformed("RSA key"))
            }
            _ => Err(WebauthnError::Algorithm),
        }
    }

    fn algorithm(&self) -> i64 {
        match self {
            PublicKey::Es256(_) => ES256,
            PublicKey::Rs256(_) => RS256,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), WebauthnError> {
        match self {
            PublicKey::Es256(key) => {
                use p256::ecdsa::signature::Verifier;
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| WebauthnError::Signature)?;
                key.verify(message, &sig).map_err(|_| WebauthnError::Signature)
            }
            PublicKey::Rs256(key) => {
                use rsa::signature::Verifier;
                let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**key).clone());
                let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| WebauthnError::Signature)?;
                verifier.verify(message, &sig).map_err(|_| WebauthnError::Signature)
            }
        }
    }
}

/// Just enough CBOR (RFC 8949) for attestation objects and COSE keys: definite-length items, integers,
/// byte and text strings, arrays, maps, simple values and floats skipped over. Nesting is bounded.
pub mod cbor {
    /// A decoded item.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        /// An integer (major types 0 and 1).
        Int(i64),
        /// A byte string.
        Bytes(Vec<u8>),
        /// A text string.
        Text(String),
        /// An array.
        Array(Vec<Value>),
        /// A map, in order.
        Map(Vec<(Value, Value)>),
        /// A simple value or float (not needed here; kept only so that decoding goes on).
        Other,
    }

    impl Value {
        /// The value under an integer key of a map.
        pub fn int_key(&self, k: i64) -> Option<&Value> {
            match self {
                Value::Map(m) => m.iter().find(|(key, _)| *key == Value::Int(k)).map(|(_, v)| v),
                _ => None,
            }
        }

        /// The value under a text key of a map.
        pub fn text_key(&self, k: &str) -> Option<&Value> {
            match self {
                Value::Map(m) => m.iter().find(|(key, _)| matches!(key, Value::Text(t) if t == k)).map(|(_, v)| v),
                _ => None,
            }
        }

        /// As an integer.
        pub fn int(&self) -> Option<i64> {
            if let Value::Int(i) = self { Some(*i) } else { None }
        }

        /// As bytes.
        pub fn bytes(&self) -> Option<&[u8]> {
            if let Value::Bytes(b) = self { Some(b) } else { None }
        }

        /// As text.
        pub fn text(&self) -> Option<&str> {
            if let Value::Text(t) = self { Some(t) } else { None }
        }
    }

    /// Why decoding stopped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Error;

    const MAX_DEPTH: usize = 16;

    /// Decode the first item of `bytes`; returns it and the bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<(Value, usize), Error> {
        let mut pos = 0;
        let v = item(bytes, &mut pos, 0)?;
        Ok((v, pos))
    }

    fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], Error> {
        let end = pos.checked_add(n).ok_or(Error)?;
        let s = bytes.get(*pos..end).ok_or(Error)?;
        *pos = end;
        Ok(s)
    }

    fn argument(bytes: &[u8], pos: &mut usize, info: u8) -> Result<u64, Error> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(take(bytes, pos, 1)?[0]),
            25 => u64::from(u16::from_be_bytes(take(bytes, pos, 2)?.try_into().map_err(|_| Error)?)),
            26 => u64::from(u32::from_be_bytes(take(bytes, pos, 4)?.try_into().map_err(|_| Error)?)),
            27 => u64::from_be_bytes(take(bytes, pos, 8)?.try_into().map_err(|_| Error)?),
            // Indefinite lengths are not used by authenticators for these structures.
            _ => return Err(Error),
        })
    }

    fn item(bytes: &[u8], pos: &mut usize, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(Error);
        }
        let head = take(bytes, pos, 1)?[0];
        let (major, info) = (head >> 5, head & 0x1f);
        if major == 7 {
            // Simple values and floats: skip their bytes.
            match info {
                0..=24 => {
                    if info == 24 {
                        take(bytes, pos, 1)?;
                    }
                }
                25 => drop(take(bytes, pos, 2)?),
                26 => drop(take(bytes, pos, 4)?),
                27 => drop(take(bytes, pos, 8)?),
                _ => return Err(Error),
            }
            return Ok(Value::Other);
        }
        let arg = argument(bytes, pos, info)?;
        let len = |arg: u64| usize::try_from(arg).map_err(|_| Error);
        Ok(match major {
            0 => Value::Int(i64::try_from(arg).map_err(|_| Error)?),
            1 => Value::Int(-1 - i64::try_from(arg).map_err(|_| Error)?),
            2 => Value::Bytes(take(bytes, pos, len(arg)?)?.to_vec()),
            3 => Value::Text(String::from_utf8(take(bytes, pos, len(arg)?)?.to_vec()).map_err(|_| Error)?),
            4 => {
                let n = len(arg)?;
                // Each item takes at least a byte: a length beyond the input is a lie.
                if n > bytes.len() - *pos {
                    return Err(Error);
                }
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(item(bytes, pos, depth + 1)?);
                }
                Value::Array(out)
            }
            5 => {
                let n = len(arg)?;
                if n > (bytes.len() - *pos) / 2 {
                    return Err(Error);
                }
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = item(bytes, pos, depth + 1)?;
                    let v = item(bytes, pos, depth + 1)?;
                    out.push((k, v));
                }
                Value::Map(out)
            }
            // A tag: read the tagged item.
            6 => item(bytes, pos, depth + 1)?,
            _ => return Err(Error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_comes_from_the_public_url() {
        let rp = RelyingParty::from_public_url("https://Magpie.Example.org/").unwrap();
        assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("magpie.example.org", "https://magpie.example.org"));
        let rp = RelyingParty::from_public_url("http://localhost:8080").unwrap();
        assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("localhost", "http://localhost:8080"));
    }

    #[test]
    fn cbor_decodes_what_authenticators_send_and_refuses_lies() {
        // {1: 2, 3: -7, -1: 1, -2: h'0102'}
        let bytes = [0xa4, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x42, 0x01, 0x02];
        let (v, used) = cbor::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(v.int_key(3).and_then(cbor::Value::int), Some(-7));
        assert_eq!(v.int_key(-2).and_then(cbor::Value::bytes), Some([1u8, 2].as_slice()));
        // A map claiming four billion entries, a string longer than the input, deep nesting.
        assert!(cbor::decode(&[0xba, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(cbor::decode(&[0x5a, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(cbor::decode(&[0x81; 100]).is_err());
    }
}
