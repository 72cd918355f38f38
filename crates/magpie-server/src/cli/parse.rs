//! `magpie parse FILE`: what the importer reads in a statement file, as a table or as JSON.

use std::path::PathBuf;

use clap::Args;
use magpie_import::{Format, Options, ParsedFile};

/// `magpie parse` flags.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The statement file.
    pub file: PathBuf,
    /// The format, or `auto` to detect it.
    #[arg(long, default_value = "auto", value_parser = ["auto", "csv", "ofx", "qfx", "qbo", "qif", "camt", "mt940", "mt942"])]
    pub format: String,
    /// CSV: a named layout (ing-nl, ing-de, paypal, chase, amex, schwab).
    #[arg(long)]
    pub preset: Option<String>,
    /// Print one JSON document with `accounts` and `transactions`.
    #[arg(long)]
    pub json: bool,
}

/// Parse and print. A file that cannot be read is one line on stderr and a non-zero exit.
pub fn run(args: &ParseArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let options = Options {
        format: if args.format == "auto" { None } else { Format::from_name(&args.format) },
        csv: magpie_import::csv::CsvOptions { preset: args.preset.clone(), ..Default::default() },
        ..Options::default()
    };
    let name = args.file.file_name().and_then(|n| n.to_str());
    let parsed =
        magpie_import::parse(&bytes, &options, name).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&parsed))?);
    } else {
        print_table(&parsed);
    }
    Ok(())
}

/// The JSON document: `accounts` and `transactions` (amounts as decimal strings).
pub fn to_json(parsed: &ParsedFile) -> serde_json::Value {
    let accounts: Vec<serde_json::Value> = parsed
        .statements
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.account.id,
                "bank_id": s.account.bank_id,
                "name": s.account.name,
                "currency": s.account.currency,
                "opening_balance": s.opening_balance.as_ref().map(|b| serde_json::json!({"amount": b.amount.to_string(), "date": b.date})),
                "closing_balance": s.closing_balance.as_ref().map(|b| serde_json::json!({"amount": b.amount.to_string(), "date": b.date})),
                "transactions": s.rows.len(),
            })
        })
        .collect();
    let transactions: Vec<serde_json::Value> = parsed
        .statements
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.rows.iter().map(move |r| {
                let mut t = serde_json::json!({
                    "account": i,
                    "line": r.line,
                    "date": r.date,
                    "amount": r.amount.to_string(),
                    "description": r.description,
                });
                if let Some(id) = &r.external_id {
                    t["external_id"] = serde_json::json!(id);
                }
                if let Some(p) = &r.payee {
                    t["payee"] = serde_json::json!(p);
                }
                if let Some(m) = &r.memo {
                    t["memo"] = serde_json::json!(m);
                }
                if let Some(v) = r.value_date {
                    t["value_date"] = serde_json::json!(v);
                }
                if let Some(c) = &r.currency {
                    t["currency"] = serde_json::json!(c);
                }
                t
            })
        })
        .collect();
    serde_json::json!({
        "format": parsed.format,
        "encoding": parsed.encoding,
        "csv_layout": parsed.csv_layout,
        "accounts": accounts,
        "transactions": transactions,
        "warnings": parsed.warnings,
    })
}

fn print_table(parsed: &ParsedFile) {
    println!("format {} ({}), {} transaction(s)", parsed.format.as_str(), parsed.encoding, parsed.row_count());
    for s in &parsed.statements {
        println!(
            "account {} {}{}",
            s.account.key(),
            s.account.currency.as_deref().unwrap_or(""),
            s.account.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
        );
        if let Some(b) = &s.opening_balance {
            println!("  opening balance {} on {}", b.amount, b.date.map(|d| d.to_string()).unwrap_or_default());
        }
        for r in &s.rows {
            println!("  {:>5}  {}  {:>14}  {}", r.line, r.date, r.amount.to_string(), r.description);
        }
        if let Some(b) = &s.closing_balance {
            println!("  closing balance {} on {}", b.amount, b.date.map(|d| d.to_string()).unwrap_or_default());
        }
    }
    for w in &parsed.warnings {
        println!("warning: line {}: {}", w.line, w.message);
    }
}
