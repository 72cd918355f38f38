//! Configuration, built once at start-up from four layers, each overriding the one before:
//! defaults, then an optional TOML file (`magpie.toml`, or `--config` / `MAGPIE_CONFIG`), then
//! `MAGPIE_*` environment variables, then command-line flags. Tests build a `Config` in code.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wrap a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself: use it, never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Who may create an account with a password (or, for OpenID Connect, on first sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who can reach the server (fine for a single-person install on a private network).
    Open,
    /// Only with an invitation code from `magpie invite create`.
    Invite,
    /// Nobody: accounts are made with `magpie user create`.
    Closed,
}

/// Everything the server can be configured with. See the README's configuration table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the log says which).
    pub listen_addr: SocketAddr,
    /// `sqlite://path` or `postgres://user:pass@host/db`; default `sqlite://<data_dir>/magpie.db`.
    pub database_url: Option<Secret<String>>,
    /// Most pooled database connections (the seed's pool size: 20).
    pub pool_size: u32,
    /// Statements slower than this many milliseconds are logged at WARN (the seed's 100 ms).
    pub slow_query_ms: u64,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `info,magpie_server=debug`.
    pub log_level: String,
    /// Folder for the SQLite database and other local files.
    pub data_dir: PathBuf,
    /// A request taking longer than this many seconds is answered 503.
    pub request_timeout_secs: u64,
    /// Largest JSON request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest statement file accepted for import, in bytes.
    pub max_import_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// Key signing access tokens and web cookies (at least 32 characters). When unset, the key in
    /// `auth_secret_file` is used, generated there on first start; replicas on different machines set
    /// this (or share the file).
    pub auth_secret: Option<Secret<String>>,
    /// File holding the signing key when `auth_secret` is unset (default `<data_dir>/auth.key`,
    /// created with mode 0600). Never kept in the database: a stolen database or backup must not let
    /// anyone forge a sign-in.
    pub auth_secret_file: Option<PathBuf>,
    /// Absolute lifetime of a sign-in session, in days: refreshing keeps a session alive only this
    /// long after the sign-in.
    pub session_max_days: u64,
    /// Who may sign up: `open`, `invite` or `closed`.
    pub registration: Registration,
    /// Sign-ups allowed per client address within the throttling window.
    pub registrations_per_ip: u32,
    /// bcrypt cost for password hashes (each +1 doubles the work; 12 takes about 250 ms).
    pub bcrypt_cost: u32,
    /// Lifetime of access tokens, in seconds (15 minutes).
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens and idle sessions, in days.
    pub refresh_token_ttl_days: u64,
    /// Failed sign-ins allowed per account from one client address within the window before further
    /// attempts from that address get 429 (the owner elsewhere is not locked out).
    pub login_max_failures_per_account: u32,
    /// Failed sign-ins allowed per account from all addresses together within the window.
    pub login_max_failures_per_account_total: u32,
    /// Failed sign-ins allowed per client address within the window.
    pub login_max_failures_per_ip: u32,
    /// The throttling window, in seconds.
    pub login_failure_window_secs: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Where model files live: a folder (default `<data_dir>/models`) or, in builds with the `s3`
    /// feature, `s3://bucket/prefix` (credentials from the usual `AWS_*` variables).
    pub model_store: Option<String>,
    /// Below this calibrated probability a model's category is not applied: the transaction stays
    /// `Uncategorized` and is listed for review with the model's top suggestions.
    pub ml_confidence_threshold: f64,
    /// A user's model is retrained in the background after this many corrections.
    pub ml_retrain_after_corrections: u32,
    /// Run background jobs (training, syncs) in this process. Every replica may; each job runs once.
    pub jobs_worker: bool,
    /// On start, install the global model shipped with the binary when there is no global model.
    pub ml_install_global_model: bool,
    /// Key sealing bank tokens (AES-256-GCM): 32 bytes, base64. When unset, the keys in
    /// `encryption_key_file` are used, and a key is generated there on first start.
    pub encryption_key: Option<Secret<String>>,
    /// File of base64 keys, one per line, the first sealing new tokens and the others only opening old
    /// ones (default `<data_dir>/encryption.key`).
    pub encryption_key_file: Option<PathBuf>,
    /// Earlier keys (base64, comma-separated) that may still open tokens, during a rotation.
    pub encryption_previous_keys: Option<Secret<String>>,
    /// Plaid API (`https://sandbox.plaid.com`, `https://production.plaid.com`, or `magpie sandbox`).
    pub plaid_base_url: String,
    /// Plaid client id; Plaid is offered when this and `plaid_secret` are set.
    pub plaid_client_id: Option<String>,
    /// Plaid secret for the environment.
    pub plaid_secret: Option<Secret<String>>,
    /// Where Plaid sends webhooks: this server's `/api/v1/webhooks/plaid` as the internet sees it.
    pub plaid_webhook_url: Option<String>,
    /// Hosts SimpleFIN setup tokens and Access URLs may point at (comma-separated `host[:port]`).
    pub simplefin_allowed_hosts: String,
    /// GoCardless Bank Account Data API.
    pub gocardless_base_url: String,
    /// GoCardless secret id; GoCardless is offered when this and `gocardless_secret_key` are set.
    pub gocardless_secret_id: Option<String>,
    /// GoCardless secret key.
    pub gocardless_secret_key: Option<Secret<String>>,
    /// Seconds between scheduled syncs of a connection (each gets up to 10% jitter).
    pub sync_interval_secs: u64,
    /// How far back a first sync reaches, in days (SimpleFIN, GoCardless; Plaid gives what it has).
    pub sync_initial_days: u32,
    /// How long a sync may hold its connection before another process may take over (seconds).
    pub sync_lease_secs: u64,
    /// How long a worker's claim on a job lasts before another worker may run it (seconds): a crashed
    /// process's jobs run again after this.
    pub job_lease_secs: u64,
    /// Mark the web app's cookies `Secure` always (they are anyway when a trusted proxy says the
    /// request came over HTTPS).
    pub secure_cookies: bool,
    /// Serve `GET /metrics` (off by default: it tells how busy the server is and how many people use it).
    pub metrics_enabled: bool,
    /// When set, `/metrics` needs `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<Secret<String>>,
    /// The address people reach this server at (`https://magpie.example.org`): the origin passkeys
    /// are bound to and where the OpenID provider sends people back. Passkeys and OpenID Connect are
    /// offered only when it is set.
    pub public_url: Option<String>,
    /// OpenID Connect provider (its issuer URL); sign-in with it is offered when this, the client id
    /// and `public_url` are set.
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    pub oidc_client_id: Option<String>,
    /// The client secret (none for a public client, which then relies on PKCE alone).
    pub oidc_client_secret: Option<Secret<String>>,
    /// Scopes asked for (space-separated; `openid` is always included).
    pub oidc_scopes: String,
    /// Email domains allowed to sign in (comma-separated; empty allows any). Needs a verified email.
    pub oidc_allowed_domains: String,
    /// The ID token claim listing the person's groups.
    pub oidc_groups_claim: String,
    /// Groups allowed to sign in (comma-separated; empty allows any).
    pub oidc_allowed_groups: String,
    /// Create an account on a first sign-in with the provider (when no account has that email).
    pub oidc_create_accounts: bool,
    /// Sign-in only through the provider: passwords are refused (accounts made before keep their data).
    pub oidc_only: bool,
    /// Label of the sign-in button.
    pub oidc_button_label: String,
    /// Clock difference allowed between this server and the provider on ID tokens' times, in seconds.
    pub oidc_clock_skew_secs: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            pool_size: 20,
            slow_query_ms: 100,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            data_dir: PathBuf::from("./data"),
            request_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 50 * 1024 * 1024,
            shutdown_grace_secs: 30,
            auth_secret: None,
            auth_secret_file: None,
            session_max_days: 90,
            registration: Registration::Open,
            registrations_per_ip: 10,
            bcrypt_cost: 12,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            login_max_failures_per_account: 5,
            login_max_failures_per_account_total: 100,
            login_max_failures_per_ip: 20,
            login_failure_window_secs: 15 * 60,
            trust_forwarded_for: false,
            model_store: None,
            ml_confidence_threshold: 0.5,
            ml_retrain_after_corrections: 20,
            jobs_worker: true,
            ml_install_global_model: true,
            encryption_key: None,
            encryption_key_file: None,
            encryption_previous_keys: None,
            plaid_base_url: "https://sandbox.plaid.com".to_owned(),
            plaid_client_id: None,
            plaid_secret: None,
            plaid_webhook_url: None,
            simplefin_allowed_hosts: "bridge.simplefin.org,beta-bridge.simplefin.org".to_owned(),
            gocardless_base_url: "https://bankaccountdata.gocardless.com".to_owned(),
            gocardless_secret_id: None,
            gocardless_secret_key: None,
            sync_interval_secs: 6 * 3600,
            sync_initial_days: 90,
            sync_lease_secs: 600,
            secure_cookies: false,
            job_lease_secs: 600,
            metrics_enabled: false,
            metrics_token: None,
            public_url: None,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_scopes: "openid email profile".to_owned(),
            oidc_allowed_domains: String::new(),
            oidc_groups_claim: "groups".to_owned(),
            oidc_allowed_groups: String::new(),
            oidc_create_accounts: true,
            oidc_only: false,
            oidc_button_label: "Sign in with SSO".to_owned(),
            oidc_clock_skew_secs: 60,
        }
    }
}

/// Config keys, which are also the environment variable names after `MAGPIE_` (upper-cased).
pub const KEYS: &[&str] = &[
    "listen_addr",
    "database_url",
    "pool_size",
    "slow_query_ms",
    "log_format",
    "log_level",
    "data_dir",
    "request_timeout_secs",
    "max_body_bytes",
    "max_import_bytes",
    "shutdown_grace_secs",
    "auth_secret",
    "auth_secret_file",
    "session_max_days",
    "registration",
    "registrations_per_ip",
    "bcrypt_cost",
    "access_token_ttl_secs",
    "refresh_token_ttl_days",
    "login_max_failures_per_account",
    "login_max_failures_per_account_total",
    "login_max_failures_per_ip",
    "login_failure_window_secs",
    "trust_forwarded_for",
    "model_store",
    "ml_confidence_threshold",
    "ml_retrain_after_corrections",
    "jobs_worker",
    "ml_install_global_model",
    "encryption_key",
    "encryption_key_file",
    "encryption_previous_keys",
    "plaid_base_url",
    "plaid_client_id",
    "plaid_secret",
    "plaid_webhook_url",
    "simplefin_allowed_hosts",
    "gocardless_base_url",
    "gocardless_secret_id",
    "gocardless_secret_key",
    "sync_interval_secs",
    "sync_initial_days",
    "sync_lease_secs",
    "secure_cookies",
    "job_lease_secs",
    "metrics_enabled",
    "metrics_token",
    "public_url",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_scopes",
    "oidc_allowed_domains",
    "oidc_groups_claim",
    "oidc_allowed_groups",
    "oidc_create_accounts",
    "oidc_only",
    "oidc_button_label",
    "oidc_clock_skew_secs",
];

/// `MAGPIE_` variables that are not configuration keys but are legitimately set.
const OTHER_VARS: &[&str] = &[
    "config",
    "test_database_url",
    "require_browser",
    "screenshots",
    "shared_dir",
    "oidc_provider_dir",
    "require_oidc",
];

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<SocketAddr>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// A loaded configuration plus the warnings found while loading it (logged once logging is set up).
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Human-readable warnings (unknown `MAGPIE_` variables).
    pub warnings: Vec<String>,
}

impl Config {
    /// Build the configuration from all layers. `file` is `--config`; without it `MAGPIE_CONFIG`, then
    /// `./magpie.toml` if it exists. An explicitly named file that does not exist is an error.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> anyhow::Result<Loaded> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let env_file = env.iter().find(|(k, _)| k == "MAGPIE_CONFIG").map(|(_, v)| PathBuf::from(v));
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                if Path::new("magpie.toml").exists() {
                    figment = figment.merge(Toml::file_exact("magpie.toml"));
                }
            }
        }
        // Read the environment from the given list (tests pass their own) rather than the process.
        let mut warnings = Vec::new();
        let mut known = Vec::new();
        for (name, value) in &env {
            let Some(key) = name.strip_prefix("MAGPIE_") else { continue };
            let key = key.to_ascii_lowercase();
            if KEYS.contains(&key.as_str()) {
                known.push((key, value.clone()));
            } else if !OTHER_VARS.contains(&key.as_str()) {
                warnings.push(format!(
                    "ignoring unknown environment variable {name} (known: {})",
                    KEYS.iter().map(|k| format!("MAGPIE_{}", k.to_ascii_uppercase())).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        figment = figment.merge(EnvList(known));
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.pool_size >= 1, "pool_size must be at least 1");
        anyhow::ensure!(self.request_timeout_secs >= 1, "request_timeout_secs must be at least 1");
        anyhow::ensure!(self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        anyhow::ensure!((4..=31).contains(&self.bcrypt_cost), "bcrypt_cost must be between 4 and 31");
        anyhow::ensure!(self.access_token_ttl_secs >= 30, "access_token_ttl_secs must be at least 30");
        anyhow::ensure!(self.refresh_token_ttl_days >= 1, "refresh_token_ttl_days must be at least 1");
        if let Some(secret) = &self.auth_secret {
            anyhow::ensure!(secret.expose().len() >= 32, "auth_secret must be at least 32 characters");
        }
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.ml_confidence_threshold),
            "ml_confidence_threshold must be between 0 and 1"
        );
        anyhow::ensure!(self.ml_retrain_after_corrections >= 1, "ml_retrain_after_corrections must be at least 1");
        anyhow::ensure!(self.sync_interval_secs >= 60, "sync_interval_secs must be at least 60");
        anyhow::ensure!((1..=730).contains(&self.sync_initial_days), "sync_initial_days must be between 1 and 730");
        anyhow::ensure!(self.sync_lease_secs >= 1, "sync_lease_secs must be at least 1");
        anyhow::ensure!(self.job_lease_secs >= 1, "job_lease_secs must be at least 1");
        for (key, url) in [("plaid_base_url", &self.plaid_base_url), ("gocardless_base_url", &self.gocardless_base_url)]
        {
            anyhow::ensure!(url.starts_with("https://") || url.starts_with("http://"), "{key} must be an http(s) URL");
        }
        anyhow::ensure!(self.session_max_days >= 1, "session_max_days must be at least 1");
        if let Some(token) = &self.metrics_token {
            anyhow::ensure!(token.expose().len() >= 16, "metrics_token must be at least 16 characters");
        }
        if let Some(url) = &self.public_url {
            anyhow::ensure!(
                (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.trim_end_matches('/').contains(['?', '#']),
                "public_url must be an http(s) URL such as https://magpie.example.org"
            );
        }
        if let Some(issuer) = &self.oidc_issuer {
            anyhow::ensure!(
                issuer.starts_with("https://") || issuer.starts_with("http://"),
                "oidc_issuer must be an http(s) URL"
            );
            anyhow::ensure!(self.oidc_client_id.is_some(), "oidc_issuer needs oidc_client_id");
            anyhow::ensure!(
                self.public_url.is_some(),
                "oidc_issuer needs public_url (where the provider sends people back)"
            );
        }
        anyhow::ensure!(!self.oidc_only || self.oidc_issuer.is_some(), "oidc_only needs oidc_issuer");
        anyhow::ensure!((0..=600).contains(&self.oidc_clock_skew_secs), "oidc_clock_skew_secs must be 0 to 600");
        magpie_db::Engine::from_url(&self.database_url())?;
        Ok(())
    }

    /// The signing key file: `auth_secret_file`, or `<data_dir>/auth.key`.
    pub fn auth_secret_path(&self) -> PathBuf {
        self.auth_secret_file.clone().unwrap_or_else(|| self.data_dir.join("auth.key"))
    }

    /// `public_url` without a trailing slash.
    pub fn public_origin(&self) -> Option<&str> {
        self.public_url.as_deref().map(|u| u.trim_end_matches('/'))
    }

    /// The database URL, defaulting to an SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().clone(),
            None => format!("sqlite://{}", self.data_dir.join("magpie.db").display()),
        }
    }

    /// Database options from this configuration.
    pub fn db_options(&self) -> magpie_db::DbOptions {
        magpie_db::DbOptions {
            max_connections: self.pool_size,
            slow_statement_threshold: Duration::from_millis(self.slow_query_ms),
            ..magpie_db::DbOptions::new(self.database_url())
        }
    }

    /// The encryption key file: `encryption_key_file`, or `<data_dir>/encryption.key`.
    pub fn encryption_key_path(&self) -> PathBuf {
        self.encryption_key_file.clone().unwrap_or_else(|| self.data_dir.join("encryption.key"))
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// A figment provider over an explicit list of `(key, value)` pairs, parsed like environment values.
struct EnvList(Vec<(String, String)>);

impl figment::Provider for EnvList {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("MAGPIE_ environment variable")
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (k, v) in &self.0 {
            // Env parses "20" as a number and "127.0.0.1:8080" as a string, like figment's Env provider.
            let value: figment::value::Value = v.parse().expect("figment parses any string");
            dict.insert(k.clone(), value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Keys in the configuration file or environment that are checked for typos.
pub fn known_keys() -> BTreeSet<&'static str> {
    KEYS.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_the_seed() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap().config;
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.pool_size, 20);
        assert_eq!(c.slow_query_ms, 100);
        assert_eq!(c.database_url(), "sqlite://./data/magpie.db");
    }

    #[test]
    fn keys_list_matches_the_struct() {
        let value =
            serde_json::to_value(Config { database_url: Some(Secret::new("x".into())), ..Config::default() }).unwrap();
        let fields: BTreeSet<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, known_keys());
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("magpie.toml");
        std::fs::write(&file, "pool_size = 5\nslow_query_ms = 250\nlisten_addr = \"0.0.0.0:9000\"\n").unwrap();
        let loaded = Config::load(
            Some(&file),
            env(&[
                ("MAGPIE_POOL_SIZE", "7"),
                ("MAGPIE_LISTEN_ADDR", "127.0.0.1:9001"),
                ("MAGPIE_DATABASE_URL", "postgres://u:pw@h/db"),
            ]),
            &Overrides { listen_addr: Some("127.0.0.1:0".parse().unwrap()), ..Default::default() },
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.slow_query_ms, 250, "from the file");
        assert_eq!(c.pool_size, 7, "environment beats file");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:0", "flag beats environment");
        assert_eq!(c.database_url(), "postgres://u:pw@h/db");
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn an_unknown_magpie_variable_gets_a_warning() {
        let loaded = Config::load(
            None,
            env(&[("MAGPIE_LISTEN_ADRR", "x"), ("MAGPIE_TEST_DATABASE_URL", "y"), ("HOME", "/root")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("MAGPIE_LISTEN_ADRR"), "{:?}", loaded.warnings);
    }

    #[test]
    fn a_typo_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("magpie.toml");
        std::fs::write(&file, "pool_sise = 5\n").unwrap();
        let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("pool_sise"), "{err}");
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_key() {
        let err = Config::load(None, env(&[("MAGPIE_POOL_SIZE", "many")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("pool_size"), "{err}");
    }

    #[test]
    fn registration_modes_parse() {
        let c = Config::load(None, env(&[("MAGPIE_REGISTRATION", "invite")]), &Overrides::default()).unwrap().config;
        assert_eq!(c.registration, Registration::Invite);
        assert!(Config::load(None, env(&[("MAGPIE_REGISTRATION", "maybe")]), &Overrides::default()).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config { database_url: Some(Secret::new("postgres://u:hunter2@h/db".into())), ..Config::default() };
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
