//! Bank tokens sealed with AES-256-GCM.
//!
//! A sealed value is `mgk1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`: a fresh random 96-bit nonce
//! per sealing, the key id (the first 8 bytes of the key's SHA-256, in hex) so that any configured key
//! can be found for opening, and as associated data the connection and user ids, so that a token copied
//! onto another row, or another user's, does not open.
//!
//! Keys come from configuration: `encryption_key` (base64, 32 bytes) or the key file (one base64 key per
//! line, the first current), plus `encryption_previous_keys` during a rotation. With neither an explicit
//! key nor a key file, one is generated into the key file (mode 0600) on first start. `magpie keys rotate`
//! re-seals every token under the current key.

use std::collections::HashMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use magpie_domain::{ConnectionId, SealedToken, UserId};
use sha2::{Digest, Sha256};

use crate::config::Config;

const PREFIX: &str = "mgk1";
const NONCE_BYTES: usize = 12;

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not in the `mgk1.<key>.<data>` form.
    #[error("the sealed value is malformed")]
    Malformed,
    /// Sealed with a key this server does not have.
    #[error("sealed with key {0}, which is not configured")]
    UnknownKey(String),
    /// Tampered with, or bound to another connection or user.
    #[error("the sealed value does not authenticate (tampered, or bound to another record)")]
    Rejected,
    /// No key is configured to seal with.
    #[error("no encryption key is configured (set encryption_key, or start `magpie serve` once to generate one)")]
    NoKey,
}

/// A 256-bit key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Key {
        let id = Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
        Key { id, cipher: Aes256Gcm::new_from_slice(bytes).expect("32 bytes is an AES-256 key") }
    }
}

/// The keys this server seals and opens with.
#[derive(Clone)]
pub struct Keyring {
    current: Option<Key>,
    all: HashMap<String, Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("current", &self.current_id()).field("keys", &self.all.len()).finish()
    }
}

/// A new random key, base64.
pub fn generate_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source is available");
    STANDARD.encode(key)
}

/// A key from its base64 text (standard or URL-safe alphabet).
pub fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let t = text.trim();
    let bytes = STANDARD
        .decode(t)
        .or_else(|_| URL_SAFE.decode(t))
        .or_else(|_| URL_SAFE_NO_PAD.decode(t))
        .map_err(|_| anyhow::anyhow!("an encryption key must be base64"))?;
    bytes.try_into().map_err(|b: Vec<u8>| anyhow::anyhow!("an encryption key must be 32 bytes, not {}", b.len()))
}

/// The keys of a key file, first (current) first. Blank lines and `#` comments are ignored.
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<[u8; 32]>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let keys: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| parse_key(l).map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1)))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!keys.is_empty(), "{} holds no key", path.display());
    Ok(keys)
}

/// Write a key file atomically (a temporary file renamed over it), readable by the owner only.
pub fn write_key_file(path: &Path, keys: &[String]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("key.tmp");
    let body = format!(
        "# Magpie encryption keys (AES-256, base64). The first seals new bank tokens; the others still open\n\
         # tokens sealed before a rotation. Keep a backup: without these keys stored tokens cannot be read.\n{}\n",
        keys.join("\n")
    );
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Associated data binding a token to its row.
fn aad(connection: ConnectionId, user: UserId) -> Vec<u8> {
    format!("magpie/connection-token/v1|{connection}|{user}").into_bytes()
}

/// Associated data binding a TOTP seed to its user.
fn totp_aad(user: UserId) -> Vec<u8> {
    format!("magpie/totp-seed/v1|{user}").into_bytes()
}

impl Keyring {
    /// From raw keys, the first current.
    pub fn new(keys: &[[u8; 32]]) -> anyhow::Result<Keyring> {
        let first = keys.first().ok_or_else(|| anyhow::anyhow!("no encryption key"))?;
        let current = Some(Key::new(first));
        let all = keys.iter().map(Key::new).map(|k| (k.id.clone(), k)).collect();
        Ok(Keyring { current, all })
    }

    /// From configuration when there may be no key yet: commands other than `serve` do not create the
    /// key file; without a key they can open nothing and seal nothing.
    pub fn from_config_existing(config: &Config) -> anyhow::Result<Keyring> {
        if config.encryption_key.is_none() && !config.encryption_key_path().exists() {
            return Ok(Keyring { current: None, all: HashMap::new() });
        }
        Keyring::from_config(config)
    }

    /// From configuration (see the module documentation); generates the key file when there is no key.
    pub fn from_config(config: &Config) -> anyhow::Result<Keyring> {
        let path = config.encryption_key_path();
        let mut keys = Vec::new();
        if let Some(k) = &config.encryption_key {
            keys.push(parse_key(k.expose()).map_err(|e| anyhow::anyhow!("encryption_key: {e}"))?);
        }
        if path.exists() {
            keys.extend(read_key_file(&path)?);
        } else if keys.is_empty() {
            write_key_file(&path, &[generate_key()])?;
            tracing::info!(path = %path.display(), "generated an encryption key for bank tokens; back it up");
            keys.extend(read_key_file(&path)?);
        }
        if let Some(previous) = &config.encryption_previous_keys {
            for k in previous.expose().split(',').filter(|k| !k.trim().is_empty()) {
                keys.push(parse_key(k).map_err(|e| anyhow::anyhow!("encryption_previous_keys: {e}"))?);
            }
        }
        Keyring::new(&keys)
    }

    /// The id of the key new tokens are sealed with.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// The ids of every configured key.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.all.keys().map(String::as_str).collect();
        ids.sort();
        ids
    }

    /// Whether a key id is configured.
    pub fn has(&self, id: &str) -> bool {
        self.all.contains_key(id)
    }

    /// The key id a sealed value names, if it is well-formed.
    pub fn key_id_of(sealed: &SealedToken) -> Option<&str> {
        Self::key_id_of_sealed(sealed.expose())
    }

    /// Seal `secret` for a connection of a user under the current key.
    pub fn seal(&self, secret: &str, connection: ConnectionId, user: UserId) -> Result<SealedToken, SealError> {
        self.seal_with(secret, &aad(connection, user)).map(SealedToken::new)
    }

    /// Open a sealed token of a connection of a user.
    pub fn open(
        &self,
        sealed: &SealedToken,
        connection: ConnectionId,
        user: UserId,
    ) -> Result<magpie_sync::Secret, SealError> {
        self.open_with(sealed.expose(), &aad(connection, user)).map(magpie_sync::Secret::new)
    }

    /// Seal a user's TOTP seed (bound to the user, so it cannot be moved to another account's row).
    pub fn seal_totp(&self, seed: &str, user: UserId) -> Result<String, SealError> {
        self.seal_with(seed, &totp_aad(user))
    }

    /// Open a user's sealed TOTP seed.
    pub fn open_totp(&self, sealed: &str, user: UserId) -> Result<String, SealError> {
        self.open_with(sealed, &totp_aad(user))
    }

    /// The key id a sealed value names, if it is well-formed.
    pub fn key_id_of_sealed(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(PREFIX), Some(id), Some(_)) => Some(id),
            _ => None,
        }
    }

    fn seal_with(&self, secret: &str, aad: &[u8]) -> Result<String, SealError> {
        let current = self.current.as_ref().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let ciphertext = current
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret.as_bytes(), aad })
            .expect("AES-GCM sealing of a short message cannot fail");
        let mut data = nonce.to_vec();
        data.extend(ciphertext);
        Ok(format!("{PREFIX}.{}.{}", current.id, URL_SAFE_NO_PAD.encode(data)))
    }

    fn open_with(&self, sealed: &str, aad: &[u8]) -> Result<String, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(PREFIX), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        let key = self.all.get(id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let data = URL_SAFE_NO_PAD.decode(data).map_err(|_| SealError::Malformed)?;
        if data.len() < NONCE_BYTES + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let plain = key
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| SealError::Rejected)?;
        String::from_utf8(plain).map_err(|_| SealError::Rejected)
    }
}

/// Fail start-up when a stored token names a key this server does not have: better than every sync
/// of those connections failing later.
pub async fn check_stored_tokens(db: &magpie_db::Db, keyring: &Keyring) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    let tokens = magpie_db::connections::all_tokens(conn.c()).await?;
    let seeds = magpie_db::security::all_totp_secrets(conn.c()).await?;
    let mut missing: HashMap<String, usize> = HashMap::new();
    let sealed_values = tokens.iter().map(|(_, _, s)| s.expose()).chain(seeds.iter().map(|(_, s)| s.as_str()));
    for sealed in sealed_values {
        match Keyring::key_id_of_sealed(sealed) {
            Some(id) if keyring.has(id) => {}
            Some(id) => *missing.entry(id.to_owned()).or_default() += 1,
            None => *missing.entry("(malformed)".to_owned()).or_default() += 1,
        }
    }
    if !missing.is_empty() {
        let mut list: Vec<String> = missing.iter().map(|(id, n)| format!("{n} sealed with key {id}")).collect();
        list.sort();
        anyhow::bail!(
            "bank tokens cannot be opened with the configured encryption keys ({}); configure the missing key \
             (encryption_key, encryption_key_file or encryption_previous_keys) or restore the key file",
            list.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ConnectionId, UserId) {
        (ConnectionId::new(), UserId::new())
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = Keyring::new(&[[7u8; 32]]).unwrap();
        let (c, u) = ids();
        let a = ring.seal("access-sandbox-123", c, u).unwrap();
        let b = ring.seal("access-sandbox-123", c, u).unwrap();
        assert_ne!(a.expose(), b.expose(), "a fresh nonce every time");
        assert!(!a.expose().contains("access-sandbox"));
        assert_eq!(ring.open(&a, c, u).unwrap().expose(), "access-sandbox-123");
        assert_eq!(Keyring::key_id_of(&a), ring.current_id());
    }

    #[test]
    fn tampering_and_wrong_associated_data_are_rejected() {
        let ring = Keyring::new(&[[7u8; 32]]).unwrap();
        let (c, u) = ids();
        let sealed = ring.seal("secret", c, u).unwrap();
        let text = sealed.expose();
        let (head, data) = text.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = SealedToken::new(format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes)));
        assert_eq!(ring.open(&tampered, c, u).unwrap_err(), SealError::Rejected);
        assert_eq!(ring.open(&sealed, ConnectionId::new(), u).unwrap_err(), SealError::Rejected);
        assert_eq!(ring.open(&sealed, c, UserId::new()).unwrap_err(), SealError::Rejected);
        assert_eq!(ring.open(&SealedToken::new("plain"), c, u).unwrap_err(), SealError::Malformed);
        assert_eq!(ring.open(&SealedToken::new("mgk1.x.!!"), c, u).unwrap_err(), SealError::UnknownKey("x".into()));
    }

    #[test]
    fn old_keys_open_and_the_current_one_seals() {
        let old = Keyring::new(&[[1u8; 32]]).unwrap();
        let both = Keyring::new(&[[2u8; 32], [1u8; 32]]).unwrap();
        let new_only = Keyring::new(&[[2u8; 32]]).unwrap();
        let (c, u) = ids();
        let sealed = old.seal("s", c, u).unwrap();
        assert_eq!(both.open(&sealed, c, u).unwrap().expose(), "s");
        assert!(matches!(new_only.open(&sealed, c, u), Err(SealError::UnknownKey(_))));
        let resealed = both.seal("s", c, u).unwrap();
        assert_eq!(new_only.open(&resealed, c, u).unwrap().expose(), "s");
    }

    #[test]
    fn keys_parse_and_files_round_trip() {
        assert!(parse_key("c2hvcnQ=").is_err());
        assert!(parse_key("not base64!").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k").join("encryption.key");
        let (a, b) = (generate_key(), generate_key());
        write_key_file(&path, &[a.clone(), b.clone()]).unwrap();
        let keys = read_key_file(&path).unwrap();
        assert_eq!(keys, vec![parse_key(&a).unwrap(), parse_key(&b).unwrap()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let config = Config { data_dir: dir.path().join("fresh"), ..Config::default() };
        let none = Keyring::from_config_existing(&config).unwrap();
        assert_eq!(none.current_id(), None, "only serve generates a key");
        assert_eq!(none.seal("s", ConnectionId::new(), UserId::new()).unwrap_err(), SealError::NoKey);
        let generated = Keyring::from_config(&config).unwrap();
        let again = Keyring::from_config(&config).unwrap();
        assert_eq!(generated.current_id(), again.current_id(), "generated once, then read back");
    }
}
