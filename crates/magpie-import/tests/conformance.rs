//! Conformance against the peer corpus in `../shared/fixtures/bankfiles` (272 real statement files from
//! other projects' test suites). Skipped, with a notice, when the corpus is not there (a fresh clone);
//! CI has it. Expectations come from each file's upstream oracle (`conformance/expected.json`, derived by
//! `conformance/derive.py`); at least 95% of files must agree, no file may panic the parser, and every
//! disagreement must be explained in `docs/import-conformance.md`.

use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Expectation {
    file: String,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    sum: Option<String>,
    #[serde(default)]
    first_abs: Option<String>,
    #[serde(default)]
    statements: Option<usize>,
    #[serde(default)]
    statements_min: Option<usize>,
    #[serde(default)]
    statements_with_rows: Option<usize>,
    #[serde(default)]
    reconcile: bool,
    #[serde(default)]
    options: Option<serde_json::Value>,
    source: String,
}

/// `MAGPIE_SHARED_DIR`, else a `shared` folder next to the repository or one of its ancestors.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("MAGPIE_SHARED_DIR") {
        let p = PathBuf::from(d);
        return p.join("fixtures/bankfiles").is_dir().then_some(p);
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("shared");
        if candidate.join("fixtures/bankfiles/MANIFEST.json").is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn check(e: &Expectation, result: &Result<magpie_import::ParsedFile, magpie_import::ParseError>) -> Result<(), String> {
    let rows = |p: &magpie_import::ParsedFile| p.row_count();
    match (e.expect.as_deref(), result) {
        (Some("reject"), Err(_)) => return Ok(()),
        (Some("reject"), Ok(p)) => return Err(format!("must be rejected, but {} rows were read", rows(p))),
        (_, Err(err)) if e.count == Some(0) => {
            let _ = err;
            return Ok(());
        }
        (_, Err(err)) => return Err(format!("rejected: {err}")),
        _ => {}
    }
    let p = result.as_ref().expect("errors handled above");
    if let Some(n) = e.count
        && rows(p) != n
    {
        return Err(format!("{} rows, oracle says {n}", rows(p)));
    }
    if let Some(s) = &e.sum {
        let want: Decimal = s.parse().map_err(|_| format!("bad expected sum {s}"))?;
        let got: Decimal = p.rows().map(|(_, r)| r.amount).sum();
        if got != want {
            return Err(format!("sum {got}, oracle says {want}"));
        }
    }
    if let Some(a) = &e.first_abs {
        let want: Decimal = a.parse().expect("decimal");
        let got = p.rows().next().map(|(_, r)| r.amount.abs());
        if got != Some(want) {
            return Err(format!("first amount {got:?}, oracle says {want}"));
        }
    }
    if let Some(n) = e.statements
        && p.statements.len() != n
    {
        return Err(format!("{} statements, oracle says {n}", p.statements.len()));
    }
    if let Some(n) = e.statements_with_rows {
        let got = p.statements.iter().filter(|s| !s.rows.is_empty()).count();
        if got != n {
            return Err(format!("{got} statements with lines, oracle says {n}"));
        }
    }
    if e.reconcile {
        for (i, s) in p.statements.iter().enumerate() {
            if let (Some(open), Some(close)) = (&s.opening_balance, &s.closing_balance) {
                let sum: Decimal = s.rows.iter().map(|r| r.amount).sum();
                if open.amount + sum != close.amount {
                    return Err(format!("statement {i}: {} + {sum} != {}", open.amount, close.amount));
                }
            }
        }
    }
    if let Some(n) = e.statements_min
        && p.statements.len() < n
    {
        return Err(format!("{} statements, oracle says at least {n}", p.statements.len()));
    }
    Ok(())
}

#[test]
fn the_parser_agrees_with_the_upstream_oracles_on_95_percent_of_the_corpus() {
    let Some(shared) = shared_dir() else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: ../shared/fixtures/bankfiles not found: the peer-corpus conformance test is SKIPPED"
        );
        return;
    };
    let root = shared.join("fixtures/bankfiles");
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("MANIFEST.json")).unwrap()).unwrap();
    let expected: Vec<Expectation> = serde_json::from_str(include_str!("conformance/expected.json")).unwrap();
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/import-conformance.md"))
        .unwrap_or_default();
    let mut disagreements = Vec::new();
    let mut agreed = 0;
    for entry in &manifest {
        let file = entry["file"].as_str().unwrap();
        let e = expected.iter().find(|x| x.file == file).unwrap_or_else(|| {
            panic!("{file} is in the corpus but not in conformance/expected.json: run conformance/derive.py")
        });
        let bytes = std::fs::read(root.join(file)).unwrap();
        let mut options = magpie_import::Options::default();
        if let Some(o) = &e.options
            && o["invert_sign"].as_bool() == Some(true)
        {
            options.csv.invert_sign = Some(true);
        }
        let name = Path::new(file).file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let result = std::panic::catch_unwind(|| magpie_import::parse(&bytes, &options, name.as_deref()))
            .unwrap_or_else(|_| panic!("the parser panicked on {file}"));
        match check(e, &result) {
            Ok(()) => agreed += 1,
            Err(why) => disagreements.push(format!("{file}: {why} [{}]", e.source)),
        }
    }
    let total = manifest.len();
    let rate = agreed as f64 / total as f64;
    eprintln!("conformance: {agreed}/{total} files agree ({:.1}%)", rate * 100.0);
    for d in &disagreements {
        eprintln!("  disagrees: {d}");
    }
    let undocumented: Vec<&String> =
        disagreements.iter().filter(|d| !docs.contains(d.split(':').next().unwrap())).collect();
    assert!(undocumented.is_empty(), "disagreements not explained in docs/import-conformance.md: {undocumented:#?}");
    assert!(rate >= 0.95, "only {:.1}% of the corpus agrees with its oracle", rate * 100.0);
}
