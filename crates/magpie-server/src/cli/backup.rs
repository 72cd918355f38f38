//! `magpie backup FILE` and `magpie restore FILE`: see `magpie_db::backup` for what each engine does,
//! and docs/operations.md for the schedule and the restore drill.

use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

/// `magpie backup` flags.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (must not exist). SQLite: a database file; PostgreSQL: a gzip'd
    /// logical dump.
    pub file: PathBuf,
}

/// `magpie restore` flags.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `magpie backup` for this database's engine.
    pub file: PathBuf,
    /// Replace the data of a database that already has accounts.
    #[arg(long)]
    pub force: bool,
}

fn summary(counts: &magpie_db::backup::Counts) -> String {
    let of = |t: &str| counts.tables.get(t).copied().unwrap_or(0);
    format!(
        "{} rows in {} tables ({} users, {} transactions, {} budgets, {} goals, {} connections, {} models)",
        counts.rows(),
        counts.tables.len(),
        of("users"),
        of("transactions"),
        of("budgets"),
        of("financial_goals"),
        of("connections"),
        of("ml_models")
    )
}

/// Write a backup of the configured database.
pub async fn backup(config: Config, args: BackupArgs) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let result = async {
        if args.file.exists() {
            anyhow::bail!("{} exists; choose a new file", args.file.display());
        }
        let counts = match db.engine() {
            magpie_db::Engine::Sqlite => magpie_db::backup::sqlite_copy(&db, &args.file).await?,
            magpie_db::Engine::Postgres => {
                // Written to a temporary name and renamed when complete: a half-written backup never
                // looks like a backup.
                let partial = args.file.with_extension("partial");
                let file = crate::files::create_private(&partial)?;
                let mut out = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default());
                let counts = magpie_db::backup::pg_dump(&db, &mut out).await;
                let counts = match counts {
                    Ok(c) => {
                        out.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                        c
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&partial);
                        return Err(e.into());
                    }
                };
                std::fs::rename(&partial, &args.file)?;
                counts
            }
        };
        println!("backed up {} to {}", summary(&counts), args.file.display());
        Ok(())
    }
    .await;
    db.close().await;
    result
}

/// Restore a backup into the configured database (migrated first), in one transaction.
pub async fn restore(config: Config, args: RestoreArgs) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let result = async {
        let mut head = [0u8; 16];
        let n = std::io::Read::read(&mut std::fs::File::open(&args.file)?, &mut head)?;
        let is_sqlite = head[..n].starts_with(b"SQLite format 3\0");
        let is_gzip = head[..n].starts_with(&[0x1f, 0x8b]);
        match (db.engine(), is_sqlite, is_gzip) {
            (magpie_db::Engine::Sqlite, true, _) | (magpie_db::Engine::Postgres, _, true) => {}
            (engine, _, _) => anyhow::bail!(
                "{} is not a magpie backup for {} (SQLite backups are database files, PostgreSQL backups gzip'd dumps)",
                args.file.display(),
                engine.as_str()
            ),
        }
        if magpie_db::backup::has_users(&db).await? && !args.force {
            anyhow::bail!(
                "the database already has accounts; restoring replaces all of its data: add --force to do that"
            );
        }
        let counts = match db.engine() {
            magpie_db::Engine::Sqlite => magpie_db::backup::sqlite_restore(&db, &args.file).await?,
            magpie_db::Engine::Postgres => {
                let file = std::fs::File::open(&args.file)?;
                let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
                magpie_db::backup::pg_restore(&db, lines).await?
            }
        };
        println!("restored {} from {}", summary(&counts), args.file.display());
        Ok(())
    }
    .await;
    db.close().await;
    result
}
