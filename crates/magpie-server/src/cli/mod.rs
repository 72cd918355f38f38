//! The `magpie` command line: parsing and dispatch. Each command group lives in its own module.

mod backup;
mod bench;
pub mod demo;
mod import;
pub mod keys;
pub mod ml;
mod parse;
mod sandbox;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};

/// Magpie: self-hosted personal finance with machine-learned categorization.
///
/// With no command, `magpie` serves the API and web app (like `magpie serve`). Configuration comes from
/// defaults, then `magpie.toml`, then MAGPIE_* environment variables, then these flags.
#[derive(Debug, Parser)]
#[command(name = "magpie", version, about, long_about)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML) [env: MAGPIE_CONFIG] [default: ./magpie.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free one [env: MAGPIE_LISTEN_ADDR] [default: 127.0.0.1:8080]
    #[arg(long = "listen", global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// sqlite://FILE or postgres://USER@HOST/DB [env: MAGPIE_DATABASE_URL] [default: sqlite://DATA_DIR/magpie.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format [env: MAGPIE_LOG_FORMAT] [default: pretty]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug,hyper=info` [env: MAGPIE_LOG_LEVEL] [default: info]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Folder for the SQLite database and local files [env: MAGPIE_DATA_DIR] [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the JSON API and web app until SIGINT/SIGTERM (what a bare `magpie` does).
    ///
    /// The database is created if missing and migrated before the first request. On a signal the server
    /// stops accepting connections, lets in-flight requests finish (up to shutdown_grace_secs) and closes
    /// the database pool.
    Serve,
    /// Apply pending database migrations and exit.
    ///
    /// `magpie serve` also migrates on start; run this to migrate ahead of a deployment, or with
    /// `--status` to see which migrations are applied.
    Migrate(MigrateArgs),
    /// Import statement files into an account (what POST /api/v1/imports does), with a progress bar.
    Import(import::ImportArgs),
    /// Parse a statement file and print what it holds, without touching a database.
    Parse(parse::ParseArgs),
    /// Manage user accounts (for operators).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Fill an account with a realistic, deterministic transaction history (for demos and benchmarks).
    SeedDemo(demo::SeedDemoArgs),
    /// Measure performance and print the figures (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The transaction categorizer: evaluate it on labelled data, train models, list the registry.
    #[command(subcommand)]
    Ml(ml::MlCommand),
    /// The keys sealing bank tokens: generate one, see which seal what, rotate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the bank emulator (Plaid, SimpleFIN, GoCardless with fake banks) to try bank sync locally.
    Sandbox(sandbox::SandboxArgs),
    /// Back up the database: SQLite, an online consistent copy of the file; PostgreSQL, a gzip'd logical
    /// dump (no pg_dump needed). The server may keep running.
    Backup(backup::BackupArgs),
    /// Restore a backup made by `magpie backup` (same engine, same schema version), replacing all data
    /// in one transaction.
    Restore(backup::RestoreArgs),
}

/// `magpie migrate` flags.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only list the migrations and whether each is applied; change nothing.
    #[arg(long)]
    pub status: bool,
}

impl GlobalArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen_addr: self.listen,
            database_url: self.database_url.clone(),
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}

/// Parse the command line, load the configuration and run the command. Errors are printed as one line.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    // Parsing a file needs no configuration, database or runtime.
    if let Some(Command::Parse(args)) = &cli.command {
        return parse::run(args);
    }
    if let Some(Command::Ml(cmd)) = &cli.command
        && let Some(result) = ml::run_offline(cmd)
    {
        return result;
    }
    let loaded = Config::load(cli.global.config.as_deref(), std::env::vars(), &cli.global.overrides())?;
    let config = loaded.config;
    crate::telemetry::init_tracing(config.log_format, &config.log_level)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => crate::app::serve(config).await,
            Command::Migrate(args) => migrate(config, args).await,
            Command::User(cmd) => user::run(config, cmd).await,
            Command::SeedDemo(args) => demo::run(config, args).await,
            Command::Import(args) => import::run(config, args).await,
            Command::Ml(cmd) => ml::run(config, cmd).await,
            Command::Parse(_) => unreachable!("handled before start-up"),
            Command::Bench(cmd) => bench::run(config, cmd).await,
            Command::Keys(cmd) => keys::run(config, cmd).await,
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Backup(args) => backup::backup(config, args).await,
            Command::Restore(args) => backup::restore(config, args).await,
        }
    })
}

async fn migrate(config: Config, args: MigrateArgs) -> anyhow::Result<()> {
    let opts = config.db_options();
    let db = magpie_db::Db::connect(&opts).await?;
    if !args.status {
        db.migrate().await?;
    }
    for (version, description, applied) in db.migration_status().await? {
        println!("{version:>4}  {}  {description}", if applied { "applied" } else { "pending" });
    }
    db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let a = Cli::try_parse_from(["magpie", "--listen", "127.0.0.1:0", "serve"]).unwrap();
        let b = Cli::try_parse_from(["magpie", "serve", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(a.global.listen, b.global.listen);
        assert!(Cli::try_parse_from(["magpie"]).unwrap().command.is_none());
    }
}
