#!/usr/bin/env python3
"""Side by side, in one run, on identical splits: `magpie ml eval` against the scikit-learn baselines of
shared/datasets/categorization/baseline.py (imported from there, not copied).

For each dataset: the baseline protocol's fixed stratified 80/20 split (classes < 5 rows dropped,
random_state=42) is written to a split file that `magpie ml eval --split` reads, so both sides train and
test on the very same rows; then the learning-curve draws at N=50 (5 draws, seeds 0..4, as baseline.py
does). Prints a table and writes one JSON document.

    python compare.py --shared ../shared --magpie target/release/magpie [--out results.json] [dataset ...]

Needs scikit-learn, pandas, numpy, scipy (PyPI). Evaluation only: the datasets are never copied.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

BASELINES = ["svc", "svc+amt", "svc+mcc", "mnb.1", "logreg", "smartimp"]


def original_rows(path, min_class):
    """Row numbers (0-based data rows of the CSV) kept by baseline.load, in its order."""
    raw = pd.read_csv(path, keep_default_na=False, dtype=str)
    vc = raw["category"].value_counts()
    keep = raw["category"].isin(vc[vc >= min_class].index).to_numpy()
    return np.where(keep)[0]


def magpie_eval(magpie, csv_path, train_rows, test_rows, extra_args=()):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"train": [int(i) for i in train_rows], "test": [int(i) for i in test_rows]}, f)
        split = f.name
    try:
        out = subprocess.run([magpie, "ml", "eval", "--data", csv_path, "--split", split, "--json", *extra_args],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        os.unlink(split)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True)
    ap.add_argument("--magpie", required=True)
    ap.add_argument("--out")
    ap.add_argument("--skip-slow", action="store_true", help="skip smartimp on datasets over 10,000 rows")
    ap.add_argument("datasets", nargs="*")
    args = ap.parse_args()
    here = os.path.join(args.shared, "datasets", "categorization")
    sys.path.insert(0, here)
    import baseline  # noqa: E402  (shared/datasets/categorization/baseline.py)

    names = args.datasets or baseline.DATASETS
    report = {}
    for name in names:
        csv_path = os.path.join(here, name, "normalized.csv")
        df, info, has_meta, has_date = baseline.load(name)
        rows = original_rows(csv_path, baseline.MIN_CLASS)
        assert len(rows) == len(df), (len(rows), len(df))
        y = df["category"].to_numpy()
        idx_tr, idx_te = train_test_split(np.arange(len(df)), test_size=0.2, stratify=y,
                                          random_state=baseline.SEED)
        tr, te = df.iloc[idx_tr], df.iloc[idx_te]
        res = {"rows": len(df), "classes": int(df["category"].nunique()), "split": {}, "lc50": {}}
        print(f"\n=== {name}: {len(df)} rows, {res['classes']} classes, test {len(te)}", flush=True)

        mine = magpie_eval(args.magpie, csv_path, rows[idx_tr], rows[idx_te])
        res["split"]["magpie"] = {k: mine[k] for k in
                                  ("accuracy", "macro_f1", "weighted_f1", "train_seconds",
                                   "predict_rows_per_second", "single_prediction_micros", "model_bytes")}
        if "mcc" in df.columns:
            text = magpie_eval(args.magpie, csv_path, rows[idx_tr], rows[idx_te], ["--text-only"])
            res["split"]["magpie (text only)"] = {k: text[k] for k in
                                                  ("accuracy", "macro_f1", "weighted_f1", "train_seconds",
                                                   "predict_rows_per_second")}
        models = baseline.make_models(has_meta, has_date, has_mcc="mcc" in df.columns)
        for mname in BASELINES:
            if mname not in models or (args.skip_slow and mname == "smartimp" and len(df) > 10000):
                continue
            m = clone(models[mname])
            t0 = time.perf_counter()
            m.fit(tr, tr["category"])
            fit_s = time.perf_counter() - t0
            pred = m.predict(te)
            r = baseline.scores(te["category"], pred)
            res["split"][mname] = {"accuracy": r["acc"], "macro_f1": r["macro_f1"], "weighted_f1": r["weighted_f1"],
                                   "train_seconds": fit_s, "predict_rows_per_second": baseline.throughput(m, te)}
        for mname, r in res["split"].items():
            print(f"  {mname:20s} acc {r['accuracy']:.3f}  mF1 {r['macro_f1']:.3f}  wF1 {r['weighted_f1']:.3f}  "
                  f"fit {r['train_seconds']:.3f}s  {r['predict_rows_per_second']:.0f} rows/s", flush=True)

        # Learning curve at 50 rows: the same draws for both sides.
        if len(tr) > 50:
            draws = [tr.sample(n=50, random_state=rep) for rep in range(baseline.LC_REPS)]
            draws = [d for d in draws if d["category"].nunique() >= 2]
            accs, f1s = [], []
            for d in draws:
                pos = rows[df.index.get_indexer(d.index)]
                r = magpie_eval(args.magpie, csv_path, pos, rows[idx_te])
                accs.append(r["accuracy"])
                f1s.append(r["macro_f1"])
            res["lc50"]["magpie"] = {"accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s))}
            for mname in BASELINES:
                if mname not in models:
                    continue
                a, f = [], []
                for d in draws:
                    m = clone(models[mname]).fit(d, d["category"])
                    p = m.predict(te)
                    s = baseline.scores(te["category"], p)
                    a.append(s["acc"])
                    f.append(s["macro_f1"])
                res["lc50"][mname] = {"accuracy": float(np.mean(a)), "macro_f1": float(np.mean(f))}
            print("  N=50: " + "  ".join(f"{k} {v['accuracy']:.3f}/{v['macro_f1']:.2f}"
                                        for k, v in res["lc50"].items()), flush=True)
        report[name] = res
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
