//! `magpie seed-demo`: load a realistic, deterministic history into a user's ledger.

use std::time::Instant;

use clap::Args;
use magpie_db::{transactions, users};
use magpie_domain::{Category, Email, Source};

use crate::config::Config;

/// `magpie seed-demo` flags.
#[derive(Debug, Args)]
pub struct SeedDemoArgs {
    /// The account to fill (must exist: `magpie user create`).
    #[arg(long)]
    pub user: String,
    /// About how many transactions to generate.
    #[arg(long, default_value_t = 2_000)]
    pub transactions: usize,
    /// Length of the history in months, ending today.
    #[arg(long, default_value_t = 36)]
    pub months: u32,
    /// Seed: the same seed gives the same history.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Generate and insert, in one database transaction.
pub async fn run(config: Config, args: SeedDemoArgs) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let result = seed(&db, &args).await;
    db.close().await;
    result.map(|_| ())
}

/// Insert a generated history for the user with this email; returns the number of rows.
pub async fn seed(db: &magpie_db::Db, args: &SeedDemoArgs) -> anyhow::Result<usize> {
    let email = Email::parse(&args.user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    let mut conn = db.conn().await?;
    let user = users::find_by_email(conn.c(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with email {email}; create it with `magpie user create`"))?;
    drop(conn);
    let started = Instant::now();
    let n = seed_user(db, user.id, args.transactions, args.months, args.seed).await?;
    println!(
        "inserted {} transactions for {} over {} months in {:.2}s",
        n,
        user.email,
        args.months,
        started.elapsed().as_secs_f64()
    );
    Ok(n)
}

/// Insert a generated history of about `transactions` rows over `months` months ending today for a
/// user, in one database transaction (with the user's tracked goals recomputed); returns the rows.
pub async fn seed_user(
    db: &magpie_db::Db,
    user: magpie_domain::UserId,
    transactions: usize,
    months: u32,
    seed: u64,
) -> anyhow::Result<usize> {
    let history = magpie_demo::generate(magpie_demo::DemoSpec {
        transactions,
        end: chrono::Utc::now().date_naive(),
        months,
        seed,
    });
    let rows: Vec<transactions::NewTransaction> = history
        .into_iter()
        .map(|t| -> anyhow::Result<transactions::NewTransaction> {
            Ok(transactions::NewTransaction {
                amount: t.amount,
                date: t.date,
                description: t.description,
                category: Category::parse(t.category)?,
                kind: t.kind,
                source: Source::Manual,
                confidence_score: None,
                // The generator's categories are what a person would give: labels, as if set by hand.
                category_source: magpie_domain::CategorySource::User,
                connection_id: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut tx = db.begin().await?;
    transactions::insert_many(tx.c(), user, &rows).await?;
    magpie_db::goals::recompute_tracked(tx.c(), user).await?;
    tx.commit().await?;
    Ok(rows.len())
}
