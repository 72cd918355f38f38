//! `magpie ml …`: the categorizer from the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use magpie_ml::TrainConfig;
use magpie_ml::eval::{self, EvalOptions};

/// `magpie ml` subcommands.
#[derive(Debug, Subcommand)]
pub enum MlCommand {
    /// Evaluate the categorizer on a labelled CSV (`description,amount,date,type,category`; amount,
    /// date and type may be empty): classes with fewer than 5 rows dropped, a stratified split, then
    /// accuracy, macro-F1, weighted-F1, per-class precision/recall, calibration, training time and
    /// prediction speed.
    Eval(EvalArgs),
    /// Train a user's categorization model now (they need more than 50 categorized transactions)
    /// and make it the active one.
    Train(TrainArgs),
    /// Retrain the global model from the shipped training set: with `--out`, write the model file
    /// (this is how `crates/magpie-server/models/global-categorizer.mgm` is made); without, register
    /// it in the database as the active global model.
    TrainGlobal(TrainGlobalArgs),
    /// List the registry: the global models, and a user's with `--user`.
    Models(ModelsArgs),
    /// Backtest the forecasts of a user's monthly spending (`--user`) or of a CSV (`--data` with
    /// `date,amount,category[,type]`): per series the sMAPE of the chosen model, of seasonal naive and
    /// of the mean, in the rolling-origin backtest the choice is made on and out of sample (each
    /// chosen on earlier months only and judged on the months after), and whether the chosen model is
    /// at least as good as the better baseline on at least 70% of the series.
    Backtest(BacktestArgs),
}

/// `magpie ml backtest` flags.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The account's email.
    #[arg(long, conflicts_with = "data")]
    pub user: Option<String>,
    /// A CSV file instead.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Out-of-sample origins (the last N months).
    #[arg(long, default_value_t = 6)]
    pub origins: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `magpie ml train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The account's email.
    #[arg(long)]
    pub user: String,
}

/// `magpie ml train-global` flags.
#[derive(Debug, Args)]
pub struct TrainGlobalArgs {
    /// Write the model file here instead of registering it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rows per category of the shipped training set.
    #[arg(long, default_value_t = crate::ml::training::GLOBAL_ROWS_PER_CATEGORY)]
    pub rows_per_category: usize,
}

/// `magpie ml models` flags.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Also this account's models.
    #[arg(long)]
    pub user: Option<String>,
}

/// `magpie ml eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labelled CSV.
    #[arg(long)]
    pub data: PathBuf,
    /// Share of each class held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on only N rows drawn from the training part (a point of the learning curve).
    #[arg(long)]
    pub train_rows: Option<usize>,
    /// A JSON file `{"train": [...], "test": [...]}` of 0-based data-row numbers to use instead of the
    /// split (`crates/magpie-ml/tools/compare.py` writes scikit-learn's).
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Ignore an `mcc` column.
    #[arg(long)]
    pub text_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Run a `magpie ml` command that needs no configuration or database, if `cmd` is one.
pub fn run_offline(cmd: &MlCommand) -> Option<anyhow::Result<()>> {
    match cmd {
        MlCommand::Eval(args) => Some(eval_command(args)),
        MlCommand::TrainGlobal(TrainGlobalArgs { out: Some(out), rows_per_category }) => {
            Some(write_global(out, *rows_per_category))
        }
        MlCommand::Backtest(args) if args.data.is_some() => Some((|| {
            let path = args.data.as_ref().expect("checked");
            let series = magpie_ml::forecast::load_monthly_csv(path).map_err(|e| anyhow::anyhow!(e))?;
            print_backtest(&series, args)
        })()),
        _ => None,
    }
}

/// Run a `magpie ml` command against the configured database.
pub async fn run(config: crate::config::Config, cmd: MlCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(&config).await?;
    let state = crate::app::AppState::build(config, db.clone()).await?;
    let result = match cmd {
        MlCommand::Train(args) => {
            let user = find_user(&state, &args.user).await?;
            let outcome = crate::ml::training::train_user(&state, user).await?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(())
        }
        MlCommand::TrainGlobal(args) => {
            let outcome =
                crate::ml::training::train_global(&state, args.rows_per_category, magpie_domain::ModelId::new())
                    .await?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(())
        }
        MlCommand::Models(args) => list_models(&state, args.user.as_deref()).await,
        MlCommand::Backtest(args) => match &args.user {
            Some(email) => {
                let user = find_user(&state, email).await?;
                let (series, _) = crate::forecasting::series(&state, user, chrono::Utc::now().date_naive()).await?;
                let named: Vec<(String, Vec<f64>)> = series
                    .into_iter()
                    .filter(|s| !s.income)
                    .map(|s| {
                        (
                            s.name,
                            s.months.iter().map(|(_, v)| v.as_decimal().to_string().parse().unwrap_or(0.0)).collect(),
                        )
                    })
                    .collect();
                print_backtest(&named, &args)
            }
            None => Err(anyhow::anyhow!("give --user EMAIL or --data FILE.csv")),
        },
        MlCommand::Eval(_) => unreachable!("runs offline"),
    };
    db.close().await;
    result
}

async fn find_user(state: &crate::app::AppState, email: &str) -> anyhow::Result<magpie_domain::UserId> {
    let email = magpie_domain::Email::parse(email).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    let mut conn = state.db.conn().await?;
    let user = magpie_db::users::find_by_email(conn.c(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with email {email}"))?;
    Ok(user.id)
}

async fn list_models(state: &crate::app::AppState, user: Option<&str>) -> anyhow::Result<()> {
    let owner = match user {
        Some(email) => Some(find_user(state, email).await?),
        None => None,
    };
    let mut conn = state.db.conn().await?;
    // Global models are visible to every user; a nil user sees only those.
    let models =
        magpie_db::models::list_visible(conn.c(), owner.unwrap_or(magpie_domain::UserId(uuid::Uuid::nil())), None)
            .await?;
    println!(
        "{:<36}  {:<14}  {:<6}  {:<7}  {:>8}  {:<6}  trained",
        "id", "type", "owner", "version", "accuracy", "active"
    );
    for m in models {
        println!(
            "{:<36}  {:<14}  {:<6}  {:<7}  {:>8}  {:<6}  {}",
            m.id,
            m.model_type.as_str(),
            if m.user_id.is_some() { "user" } else { "global" },
            m.version,
            m.accuracy.map_or("-".to_owned(), |a| format!("{a:.4}")),
            if m.is_active { "yes" } else { "no" },
            m.trained_at
        );
    }
    Ok(())
}

fn write_global(out: &std::path::Path, rows_per_category: usize) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let model = crate::ml::training::train_global_model(rows_per_category)?;
    let bytes = model.to_bytes();
    std::fs::write(out, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    println!(
        "wrote {} ({:.2} MB): {} rows, {} categories, held-out accuracy {}, in {:.1}s",
        out.display(),
        bytes.len() as f64 / 1e6,
        model.trained_rows,
        model.classes(),
        model.held_out.map_or("-".to_owned(), |m| format!("{:.4}", m.accuracy)),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn eval_command(args: &EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.test_fraction > 0.0 && args.test_fraction < 1.0, "--test-fraction must be between 0 and 1");
    let rows = eval::load_csv(&args.data).map_err(|e| anyhow::anyhow!(e))?;
    let split = match &args.split {
        Some(path) => {
            #[derive(serde::Deserialize)]
            struct Split {
                train: Vec<usize>,
                test: Vec<usize>,
            }
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let s: Split = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some((s.train, s.test))
        }
        None => None,
    };
    let options = EvalOptions {
        test_fraction: args.test_fraction,
        seed: args.seed,
        train_rows: args.train_rows,
        text_only: args.text_only,
        split,
        ..EvalOptions::default()
    };
    let report = eval::evaluate(&rows, &options, &TrainConfig::default())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} rows, {} classes; trained on {} rows, tested on {}",
        report.rows, report.classes, report.train_rows, report.test_rows
    );
    println!("accuracy {:.4}  macro-F1 {:.4}  weighted-F1 {:.4}", report.accuracy, report.macro_f1, report.weighted_f1);
    println!(
        "training {:.3} s  prediction {:.0} rows/s (batch, 2 threads), {:.1} µs one at a time  model file {:.2} MB",
        report.train_seconds,
        report.predict_rows_per_second,
        report.single_prediction_micros,
        report.model_bytes as f64 / 1e6
    );
    println!("\n{:<32} {:>8} {:>9} {:>7} {:>7}", "class", "support", "precision", "recall", "F1");
    for c in &report.metrics.per_class {
        println!("{:<32} {:>8} {:>9.3} {:>7.3} {:>7.3}", c.label, c.support, c.precision, c.recall, c.f1);
    }
    println!("\ncalibration (confidence bucket: predictions, mean confidence, accuracy)");
    for b in &report.calibration {
        println!("  {:.1}-{:.1}: {:>6}  {:.3}  {:.3}", b.from, b.to, b.count, b.mean_confidence, b.accuracy);
    }
    Ok(())
}

/// The backtest report of `magpie ml backtest`.
fn print_backtest(series: &[(String, Vec<f64>)], args: &BacktestArgs) -> anyhow::Result<()> {
    use magpie_ml::forecast;
    anyhow::ensure!(!series.is_empty(), "no series to backtest");
    let backtest = forecast::backtest_report(series);
    let nested = forecast::holdout(series, args.origins.clamp(1, 24), 3);
    let share =
        |r: &[forecast::HoldoutResult]| r.iter().filter(|x| x.beats_baselines).count() as f64 / r.len().max(1) as f64;
    let (b, n) = (share(&backtest), share(&nested));
    let verdict = b >= 0.7;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "series": series.len(),
                "backtest": backtest,
                "out_of_sample": nested,
                "backtest_share_at_least_as_good": b,
                "out_of_sample_share_at_least_as_good": n,
                "meets_70_percent": verdict,
            })
        );
        return Ok(());
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    println!(
        "{:<28} {:<14} {:>8} {:>9} {:>8}   {:>8} {:>9} {:>8}",
        "series", "chosen", "sMAPE", "s.naive", "mean", "oos", "s.naive", "mean"
    );
    for r in &backtest {
        let o = nested.iter().find(|o| o.name == r.name);
        println!(
            "{:<28} {:<14} {:>8.3} {:>9} {:>8.3}{} {:>8} {:>9} {:>8}{}",
            r.name.chars().take(28).collect::<String>(),
            format!("{:?}", r.chosen),
            r.chosen_smape,
            fmt(r.seasonal_naive_smape),
            r.mean_smape,
            if r.beats_baselines { " " } else { "*" },
            fmt(o.map(|o| o.chosen_smape)),
            fmt(o.and_then(|o| o.seasonal_naive_smape)),
            fmt(o.map(|o| o.mean_smape)),
            if o.is_some_and(|o| !o.beats_baselines) { "*" } else { "" },
        );
    }
    println!(
        "\nbacktest (what the choice is made on): the chosen model is at least as good as the better baseline on {} of {} series ({:.0}%): {}",
        backtest.iter().filter(|r| r.beats_baselines).count(),
        backtest.len(),
        b * 100.0,
        if verdict { "meets the 70% target" } else { "BELOW the 70% target" }
    );
    println!(
        "out of sample (chosen on earlier months, judged on the {} after): {} of {} series ({:.0}%)",
        args.origins,
        nested.iter().filter(|r| r.beats_baselines).count(),
        nested.len(),
        n * 100.0
    );
    println!("(* = worse than the better baseline; sMAPE 0 is perfect, 2 the worst)");
    Ok(())
}
