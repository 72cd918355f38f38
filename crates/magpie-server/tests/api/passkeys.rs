//! Passkeys over the API, with a software authenticator written here (ES256, as platform
//! authenticators make them): registration, sign-in, and every check a forged or replayed answer
//! must fail. The browser test does the same with Chromium's virtual authenticator.

use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use magpie_server::config::Config;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app_test;
use crate::support::{TestApp, test_config};

/// The origin the tests' server says it is at.
pub const ORIGIN: &str = "http://localhost:8080";

/// The test configuration offers passkeys already (its `public_url` is [`ORIGIN`]).
pub fn passkey_config() -> Config {
    test_config()
}

/// A little CBOR writer: enough for attestation objects and COSE keys.
#[derive(Clone)]
pub enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        match n {
            0..=23 => out.push(major << 5 | n as u8),
            24..=0xff => out.extend([major << 5 | 24, n as u8]),
            0x100..=0xffff => {
                out.push(major << 5 | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(major << 5 | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Cbor::Int(i) if *i >= 0 => Self::head(&mut out, 0, *i as u64),
            Cbor::Int(i) => Self::head(&mut out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                Self::head(&mut out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Self::head(&mut out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(m) => {
                Self::head(&mut out, 5, m.len() as u64);
                for (k, v) in m {
                    out.extend(k.encode());
                    out.extend(v.encode());
                }
            }
        }
        out
    }
}

/// A software authenticator holding one ES256 credential.
pub struct SoftKey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    counter: u32,
    user_handle: Vec<u8>,
    /// What it signs as: tests change these to forge.
    pub origin: String,
    pub rp_id: String,
    pub flags: u8,
}

impl SoftKey {
    pub fn new() -> SoftKey {
        let seed = magpie_server::auth::token::random_bytes::<32>();
        SoftKey {
            key: SigningKey::from_slice(&seed).unwrap(),
            credential_id: magpie_server::auth::token::random_bytes::<16>().to_vec(),
            counter: 0,
            user_handle: Vec::new(),
            origin: ORIGIN.into(),
            rp_id: "localhost".into(),
            flags: 0x05,
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn cose(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(point.x().unwrap().to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(point.y().unwrap().to_vec())),
        ])
        .encode()
    }

    fn auth_data(&self, attested: bool) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(if attested { self.flags | 0x40 } else { self.flags });
        data.extend(self.counter.to_be_bytes());
        if attested {
            data.extend([0u8; 16]);
            data.extend((self.credential_id.len() as u16).to_be_bytes());
            data.extend(&self.credential_id);
            data.extend(self.cose());
        }
        data
    }

    /// Answer registration `options` (as the API returns them).
    pub fn register(&mut self, options: &Value) -> Value {
        self.user_handle = B64.decode(options["user"]["id"].as_str().unwrap()).unwrap();
        let client = self.client_data("webauthn.create", options["challenge"].as_str().unwrap());
        let object = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(self.auth_data(true))),
        ])
        .encode();
        json!({"id": B64.encode(&self.credential_id), "rawId": B64.encode(&self.credential_id), "type": "public-key",
               "response": {"clientDataJSON": B64.encode(client), "attestationObject": B64.encode(object), "transports": ["internal"]}})
    }

    /// Answer sign-in `options`.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        let client = self.client_data("webauthn.get", options["challenge"].as_str().unwrap());
        let data = self.auth_data(false);
        let mut signed = data.clone();
        signed.extend(Sha256::digest(&client));
        let sig: Signature = self.key.sign(&signed);
        json!({"id": B64.encode(&self.credential_id), "rawId": B64.encode(&self.credential_id), "type": "public-key",
               "response": {"clientDataJSON": B64.encode(client), "authenticatorData": B64.encode(data),
                            "signature": B64.encode(sig.to_der().as_bytes()), "userHandle": B64.encode(&self.user_handle)}})
    }

    /// Go back one signature (a clone that missed the last sign-in).
    pub fn rewind(&mut self) {
        self.counter -= 1;
    }

    /// Set the counter.
    pub fn rewind_to(&mut self, n: u32) {
        self.counter = n;
    }
}

async fn register(app: &TestApp, access: &str, key: &mut SoftKey, name: &str) -> crate::support::TestResponse {
    let options = app.authed(Method::POST, "/api/v1/me/passkeys/options", access, None).await;
    assert_eq!(options.status, 200, "{}", String::from_utf8_lossy(&options.body));
    let credential = key.register(&options.json()["options"]);
    app.authed(Method::POST, "/api/v1/me/passkeys", access, Some(&json!({"name": name, "credential": credential})))
        .await
}

async fn sign_in(app: &TestApp, key: &mut SoftKey) -> crate::support::TestResponse {
    let options = app.json(Method::POST, "/api/v1/auth/passkey/options", &json!({})).await.json();
    let credential = key.assert(&options["options"]);
    app.json(Method::POST, "/api/v1/auth/passkey", &json!({"credential": credential})).await
}

app_test!(a_passkey_registers_signs_in_and_can_be_renamed_and_removed, config = passkey_config(), |app| {
    let user = app.user().await;
    let mut key = SoftKey::new();
    let created = register(app, &user.access, &mut key, "Laptop").await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let signed_in = sign_in(app, &mut key).await;
    assert_eq!(signed_in.status, 200, "{}", String::from_utf8_lossy(&signed_in.body));
    let access = signed_in.json()["access_token"].as_str().unwrap().to_owned();
    let me = app.authed(Method::GET, "/api/v1/me", &access, None).await.json();
    assert_eq!(me["email"], user.email);
    let list = app.authed(Method::GET, "/api/v1/me/passkeys", &user.access, None).await.json();
    assert_eq!(list[0]["name"], "Laptop");
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    let renamed = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/me/passkeys/{id}"),
            &user.access,
            Some(&json!({"name": "Work laptop"})),
        )
        .await;
    assert_eq!(renamed.status, 204);
    // The same authenticator cannot be registered twice.
    assert_eq!(register(app, &user.access, &mut key, "Again").await.status, 409);
    // Another user cannot rename or remove it.
    let other = app.user().await;
    let path = format!("/api/v1/me/passkeys/{id}");
    app.authed(Method::DELETE, &path, &other.access, None).await.assert_problem(404, "not-found");
    app.authed(Method::PATCH, &path, &other.access, Some(&json!({"name": "x"}))).await.assert_problem(404, "not-found");
    assert_eq!(app.authed(Method::DELETE, &path, &user.access, None).await.status, 204);
    sign_in(app, &mut key).await.assert_problem(401, "unauthorized");
    let audit = app.authed(Method::GET, "/api/v1/me/audit", &user.access, None).await.json();
    let kinds: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["passkey_added", "passkey_renamed", "passkey_removed", "sign_in"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
});

app_test!(forged_and_replayed_passkey_answers_are_refused, config = passkey_config(), |app| {
    let user = app.user().await;
    // Registration made for another site, without user verification, or for another user's challenge.
    let mut evil = SoftKey::new();
    evil.origin = "http://evil.example".into();
    let why = |p: Value| p["detail"].as_str().unwrap().to_owned();
    let p = register(app, &user.access, &mut evil, "x").await.assert_problem(422, "validation");
    assert!(why(p).contains("another site (origin)"));
    let mut other_rp = SoftKey::new();
    other_rp.rp_id = "evil.example".into();
    let p = register(app, &user.access, &mut other_rp, "x").await.assert_problem(422, "validation");
    assert!(why(p).contains("another site (relying party id)"));
    let mut unverified = SoftKey::new();
    unverified.flags = 0x01;
    let p = register(app, &user.access, &mut unverified, "x").await.assert_problem(422, "validation");
    assert!(why(p).contains("did not verify the person"));
    let bob = app.user().await;
    let bobs_options = app.authed(Method::POST, "/api/v1/me/passkeys/options", &bob.access, None).await.json();
    let mut key = SoftKey::new();
    let answer = key.register(&bobs_options["options"]);
    let p = app
        .authed(
            Method::POST,
            "/api/v1/me/passkeys",
            &user.access,
            Some(&json!({"name": "stolen", "credential": answer})),
        )
        .await
        .assert_problem(422, "validation");
    assert!(why(p).contains("another challenge"));
    // A good one.
    let mut key = SoftKey::new();
    assert_eq!(register(app, &user.access, &mut key, "Phone").await.status, 201);
    // A replayed sign-in answer (its challenge is spent), and a cloned authenticator (counter back).
    let options = app.json(Method::POST, "/api/v1/auth/passkey/options", &json!({})).await.json();
    let answer = key.assert(&options["options"]);
    assert_eq!(
        app.json(Method::POST, "/api/v1/auth/passkey", &json!({"credential": answer.clone()})).await.status,
        200
    );
    let p = app
        .json(Method::POST, "/api/v1/auth/passkey", &json!({"credential": answer}))
        .await
        .assert_problem(401, "unauthorized");
    assert!(why(p).contains("another challenge"));
    key.rewind();
    let p = sign_in(app, &mut key).await.assert_problem(401, "unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("counter"), "{p}");
    // A signature from another key over the right data.
    let mut impostor = SoftKey::new();
    impostor.credential_id = key.credential_id.clone();
    impostor.rewind_to(10);
    let p = sign_in(app, &mut impostor).await.assert_problem(401, "unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("signature"), "{p}");
    // Sign-in answers for another site.
    let mut phished = SoftKey::new();
    phished.credential_id = key.credential_id.clone();
    phished.origin = "http://localhost:9999".into();
    let p = sign_in(app, &mut phished).await.assert_problem(401, "unauthorized");
    assert!(why(p).contains("another site"));
});

app_test!(a_passkey_is_a_whole_sign_in_even_with_two_factor_on, config = passkey_config(), |app| {
    let user = app.user().await;
    crate::two_factor::enrol(app, &user).await;
    let mut key = SoftKey::new();
    assert_eq!(register(app, &user.access, &mut key, "Key").await.status, 201);
    let res = sign_in(app, &mut key).await;
    assert!(res.json()["access_token"].is_string(), "{}", res.json());
});

app_test!(personal_tokens_cannot_add_passkeys, config = passkey_config(), |app| {
    let user = app.user().await;
    let pat = app
        .authed(Method::POST, "/api/v1/me/tokens", &user.access, Some(&json!({"name": "s", "scope": "read-write"})))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.authed(Method::POST, "/api/v1/me/passkeys/options", &pat, None).await.assert_problem(403, "forbidden");
});

app_test!(
    passkeys_are_not_offered_without_a_public_url,
    config = Config { public_url: None, ..test_config() },
    |app| {
        app.json(Method::POST, "/api/v1/auth/passkey/options", &json!({})).await.assert_problem(404, "not-found");
        assert_eq!(app.get("/api/v1/auth/methods").await.json()["passkeys"], false);
    }
);
