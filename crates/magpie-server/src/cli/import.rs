//! `magpie import --user EMAIL FILE...`: the same import as `POST /api/v1/imports`, from the command line,
//! with a progress bar.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use magpie_db::users;
use magpie_domain::Email;
use magpie_import::Format;
use magpie_import::csv::CsvOptions;

use crate::config::Config;
use crate::import::{self, ImportRequest};

/// `magpie import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The account to import into (its email).
    #[arg(long)]
    pub user: String,
    /// Statement files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Format (detected when absent).
    #[arg(long, value_parser = ["csv", "ofx", "qfx", "qbo", "qif", "camt", "mt940", "mt942"])]
    pub format: Option<String>,
    /// Name of the account the files are for, when they do not say.
    #[arg(long)]
    pub account: Option<String>,
    /// CSV layout preset.
    #[arg(long)]
    pub preset: Option<String>,
    /// Only report what would be imported.
    #[arg(long)]
    pub dry_run: bool,
    /// Print each report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Import each file in turn (each in its own database transaction).
pub async fn run(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let ml = crate::ml::Ml::new(&config)?;
    let result = import_all(&db, &ml, &args).await;
    db.close().await;
    result
}

async fn import_all(db: &magpie_db::Db, ml: &crate::ml::Ml, args: &ImportArgs) -> anyhow::Result<()> {
    let email = Email::parse(&args.user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    let mut conn = db.conn().await?;
    let user = users::find_by_email(conn.c(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with email {email}"))?;
    drop(conn);
    let mut failed = 0;
    for path in &args.files {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let request = ImportRequest {
            format: args.format.as_deref().and_then(Format::from_name),
            csv: CsvOptions { preset: args.preset.clone(), ..CsvOptions::default() },
            account: args.account.clone(),
            filename: path.file_name().and_then(|n| n.to_str()).map(str::to_owned),
            dry_run: args.dry_run,
        };
        // Lines are a good estimate of rows for text formats.
        let estimate = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let bar = ProgressBar::new(estimate.max(1));
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        let outcome = import::run(db, ml, user.id, bytes.into(), &request, |n| bar.set_position(n as u64)).await;
        bar.finish_and_clear();
        match outcome {
            Ok(report) => {
                if args.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!(
                        "{}: {} {} row(s) read, {} {}, {} duplicate(s), {} skipped, {} unreadable",
                        path.display(),
                        report.format.as_str(),
                        report.rows_read,
                        report.imported,
                        if report.dry_run { "would be imported" } else { "imported" },
                        report.duplicates,
                        report.skipped,
                        report.errors.len()
                    );
                    for e in report.errors.iter().take(20) {
                        println!("  line {}: {}", e.line, e.message);
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", path.display());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} file(s) could not be imported");
    Ok(())
}
