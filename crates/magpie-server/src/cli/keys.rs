//! `magpie keys`: the keys sealing bank tokens (AES-256-GCM). `rotate` re-seals every stored token under
//! the current key in one database transaction; with `--generate` it first adds a new current key to the
//! key file, keeping the old ones so that nothing becomes unreadable if the rotation is interrupted.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::sealing::{self, Keyring};

/// `magpie keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (base64), e.g. for MAGPIE_ENCRYPTION_KEY.
    Generate,
    /// Which keys are configured and how many stored tokens each one sealed.
    Status,
    /// Re-seal every stored bank token under the current key.
    ///
    /// With keys in the key file: `--generate` first makes a new current key there. With
    /// MAGPIE_ENCRYPTION_KEY: set the new key there and the old one in MAGPIE_ENCRYPTION_PREVIOUS_KEYS,
    /// run this, then drop the old key.
    Rotate(RotateArgs),
}

/// `magpie keys rotate` flags.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Generate a new current key into the key file first (the old keys stay in it).
    #[arg(long)]
    pub generate: bool,
    /// Afterwards, remove every other key from the key file.
    #[arg(long)]
    pub retire_old: bool,
}

/// Run a keys command.
pub async fn run(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate => {
            println!("{}", sealing::generate_key());
            Ok(())
        }
        KeysCommand::Status => status(config).await,
        KeysCommand::Rotate(args) => rotate(config, args).await,
    }
}

async fn status(config: Config) -> anyhow::Result<()> {
    let keyring = Keyring::from_config_existing(&config)?;
    let db = crate::app::open_database(&config).await?;
    let mut conn = db.conn().await?;
    let tokens = magpie_db::connections::all_tokens(conn.c()).await?;
    drop(conn);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, sealed) in &tokens {
        *counts.entry(Keyring::key_id_of(sealed).unwrap_or("(malformed)").to_owned()).or_default() += 1;
    }
    println!("current key: {}", keyring.current_id().unwrap_or("(none)"));
    for id in keyring.ids() {
        println!("  configured {id}: {} tokens", counts.get(id).copied().unwrap_or(0));
    }
    for (id, n) in &counts {
        if !keyring.has(id) {
            println!("  MISSING    {id}: {n} tokens cannot be opened");
        }
    }
    db.close().await;
    Ok(())
}

async fn rotate(config: Config, args: RotateArgs) -> anyhow::Result<()> {
    let path = config.encryption_key_path();
    if args.generate {
        anyhow::ensure!(
            config.encryption_key.is_none(),
            "the current key comes from encryption_key: put the new key there and the old one in \
             encryption_previous_keys, then run `magpie keys rotate` without --generate"
        );
        let mut keys = vec![sealing::generate_key()];
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            keys.extend(
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned),
            );
        }
        sealing::write_key_file(&path, &keys)?;
        println!("added a new current key to {}", path.display());
    }
    let keyring = Keyring::from_config(&config)?;
    let current = keyring.current_id().expect("from_config always has a key").to_owned();
    let db = crate::app::open_database(&config).await?;
    let report = reseal_all(&db, &keyring).await;
    db.close().await;
    let (resealed, already) = report?;
    println!("re-sealed {resealed} bank tokens and two-factor seeds under key {current} ({already} already were)");
    if args.retire_old && config.encryption_key.is_none() && path.exists() {
        let keys = std::fs::read_to_string(&path)?;
        let first = keys.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or_default();
        sealing::write_key_file(&path, &[first.to_owned()])?;
        println!("removed the old keys from {}", path.display());
    }
    Ok(())
}

/// Re-seal every token not under the current key, all or nothing. Returns (re-sealed, already current).
pub async fn reseal_all(db: &magpie_db::Db, keyring: &Keyring) -> anyhow::Result<(usize, usize)> {
    let current = keyring.current_id().ok_or_else(|| anyhow::anyhow!("no encryption key is configured"))?.to_owned();
    let mut tx = db.begin().await?;
    let tokens = magpie_db::connections::all_tokens(tx.c()).await?;
    let (mut resealed, mut already) = (0, 0);
    for (connection, user, sealed) in tokens {
        if Keyring::key_id_of(&sealed) == Some(current.as_str()) {
            already += 1;
            continue;
        }
        let secret = keyring
            .open(&sealed, connection, user)
            .map_err(|e| anyhow::anyhow!("connection {connection}: {e}; nothing was changed"))?;
        let fresh = keyring.seal(secret.expose(), connection, user)?;
        magpie_db::connections::replace_token(tx.c(), connection, &sealed, &fresh).await?;
        resealed += 1;
    }
    // Two-factor seeds are sealed with the same keys: they move too, or retiring the old key would
    // lock their owners out.
    for (user, sealed) in magpie_db::security::all_totp_secrets(tx.c()).await? {
        if Keyring::key_id_of_sealed(&sealed) == Some(current.as_str()) {
            already += 1;
            continue;
        }
        let seed = keyring
            .open_totp(&sealed, user)
            .map_err(|e| anyhow::anyhow!("the two-factor seed of user {user}: {e}; nothing was changed"))?;
        let fresh = keyring.seal_totp(&seed, user)?;
        magpie_db::security::replace_totp_secret(tx.c(), user, &sealed, &fresh).await?;
        resealed += 1;
    }
    tx.commit().await?;
    Ok((resealed, already))
}
