//! `magpie user`: create, list and delete accounts from the command line.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, Subcommand};
use magpie_db::users;
use magpie_domain::{Email, NewPassword, parse_name};

use crate::auth::password::Passwords;
use crate::config::Config;

/// `magpie user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (one line), e.g.
    /// `printf '%s\n' "$PASSWORD" | magpie user create --email ada@example.com`.
    Create(CreateArgs),
    /// List accounts: id, email, name, creation time.
    List,
    /// Delete an account and, by cascade, all of its data (model files included).
    Delete(DeleteArgs),
    /// Create an invitation code for `registration = "invite"` (printed once).
    Invite(InviteArgs),
}

/// `magpie user invite` flags.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// Only this email may use it.
    #[arg(long)]
    pub email: Option<String>,
    /// Days until it expires.
    #[arg(long, default_value_t = 7)]
    pub days: i64,
}

/// `magpie user create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Email address.
    #[arg(long)]
    pub email: String,
    /// First name.
    #[arg(long)]
    pub first_name: Option<String>,
    /// Last name.
    #[arg(long)]
    pub last_name: Option<String>,
}

/// `magpie user delete` flags.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Email address of the account to delete.
    #[arg(long)]
    pub email: String,
}

/// Run a `magpie user` command.
pub async fn run(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let result = match cmd {
        UserCommand::Create(args) => create(&config, &db, args).await,
        UserCommand::List => list(&db).await,
        UserCommand::Delete(args) => delete(&config, &db, args).await,
        UserCommand::Invite(args) => invite(&db, args).await,
    };
    db.close().await;
    result
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (input is visible; pipe it in to avoid that): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

async fn create(config: &Config, db: &magpie_db::Db, args: CreateArgs) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let first_name = parse_name("first_name", args.first_name.as_deref().unwrap_or_default())?;
    let last_name = parse_name("last_name", args.last_name.as_deref().unwrap_or_default())?;
    let password = NewPassword::parse(&read_password()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password_hash = Passwords::new(config.bcrypt_cost).hash(&password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = db.conn().await?;
    let user = users::create(conn.c(), &users::NewUser { email, password_hash, first_name, last_name }).await.map_err(
        |e| {
            if e.is_unique_violation() {
                anyhow::anyhow!("an account with this email already exists")
            } else {
                e.into()
            }
        },
    )?;
    println!("created {} {}", user.id, user.email);
    Ok(())
}

async fn list(db: &magpie_db::Db) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    for u in users::list(conn.c()).await? {
        let name =
            [u.first_name.as_deref(), u.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        println!("{}\t{}\t{}\t{}", u.id, u.email, name, u.created_at);
    }
    Ok(())
}

async fn delete(config: &Config, db: &magpie_db::Db, args: DeleteArgs) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let mut conn = db.conn().await?;
    let user = users::find_by_email(conn.c(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with email {email}"))?;
    users::delete(conn.c(), user.id).await?;
    let files = crate::ml::Ml::new(config)?.forget_user(user.id).await?;
    println!("deleted {} {} ({files} model files)", user.id, user.email);
    Ok(())
}

async fn invite(db: &magpie_db::Db, args: InviteArgs) -> anyhow::Result<()> {
    let email = args.email.as_deref().map(Email::parse).transpose().map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    anyhow::ensure!((1..=365).contains(&args.days), "--days must be between 1 and 365");
    let code = crate::auth::token::generate(crate::auth::token::INVITE_PREFIX);
    let expires = magpie_domain::Timestamp::from_datetime(chrono::Utc::now() + chrono::TimeDelta::days(args.days));
    let mut conn = db.conn().await?;
    magpie_db::security::create_invite(
        conn.c(),
        &crate::auth::token::hash(&code),
        email.as_ref().map(|e| e.as_str()),
        expires,
    )
    .await?;
    println!("{code}");
    eprintln!(
        "invitation valid until {expires}{}; sign up with it as invite_code (shown once, stored only as a hash)",
        email.map(|e| format!(" for {e}")).unwrap_or_default()
    );
    Ok(())
}
