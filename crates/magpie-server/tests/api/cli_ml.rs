//! `magpie ml eval`: the real binary on a labelled CSV written by the test.

use std::process::Command;

fn magpie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_magpie"))
}

/// A labelled CSV of generated bank strings (`description,amount,date,type,category`).
fn labelled_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut out = String::from("description,amount,date,type,category\n");
    for r in magpie_ml::global::training_set(60, 3) {
        let kind = match r.direction {
            magpie_ml::Direction::In => "income",
            magpie_ml::Direction::Out => "expense",
        };
        let text = r.text.replace('"', "");
        out.push_str(&format!(
            "\"{text}\",{}.{:02},2026-01-02,{kind},{}\n",
            r.amount_cents / 100,
            r.amount_cents % 100,
            r.category
        ));
    }
    // A class with too few rows is dropped by the protocol, as scikit-learn's baselines do.
    out.push_str("RARE THING,1.00,,,Rare\n");
    let path = dir.join("labelled.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn eval_prints_the_protocols_metrics_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = labelled_csv(dir.path());
    let out = magpie().args(["ml", "eval", "--json", "--seed", "7", "--data"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["accuracy", "macro_f1", "weighted_f1", "train_seconds", "predict_rows_per_second"] {
        assert!(report[key].as_f64().is_some(), "{key} missing: {report}");
    }
    assert_eq!(report["classes"], 32, "the one-row class is dropped");
    assert_eq!(report["rows"], 32 * 60);
    assert_eq!(report["test_rows"], 32 * 12, "a stratified 20% of each class");
    assert!(report["accuracy"].as_f64().unwrap() > 0.75, "{}", report["accuracy"]);
    assert!(
        report["metrics"]["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["precision"].is_number() && c["recall"].is_number())
    );

    // The learning-curve point: only N training rows.
    let out = magpie().args(["ml", "eval", "--json", "--train-rows", "50", "--data"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["train_rows"], 50);

    // The text form names precision and recall per class.
    let out = magpie().args(["ml", "eval", "--data"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("macro-F1") && text.contains("precision") && text.contains("Groceries"), "{text}");
}

#[test]
fn eval_of_an_unreadable_file_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "text,label\nfoo,bar\n").unwrap();
    let out = magpie().args(["ml", "eval", "--data"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("description"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = magpie().args(["ml", "eval", "--test-fraction", "1.5", "--data"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
}
