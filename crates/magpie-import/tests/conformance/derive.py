#!/usr/bin/env python3
"""Derive machine-checkable expectations from the peer corpus's oracles.

Reads ../shared/fixtures/bankfiles/MANIFEST.json and the structured oracle files under oracles/ (genkgo-camt
JSON dumps, mt940-rs JSON, WoLpH mt940 YAML) and writes expected.json: for every file, what its upstream
oracle says in terms we can check (row count, signed sum, or that the file must be rejected), and where that
came from. Free-text oracles are read with a few regexes; entries the regexes cannot read are filled in by
hand in overrides.json (with the reason), which this script merges last. Run it after the corpus changes:

    python3 crates/magpie-import/tests/conformance/derive.py ../shared/fixtures/bankfiles

The corpus itself is never copied into the repository; expected.json holds only counts and sums.
"""
import json
import os
import re
import sys
from decimal import Decimal

root = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures/bankfiles"
here = os.path.dirname(os.path.abspath(__file__))
manifest = json.load(open(os.path.join(root, "MANIFEST.json")))


def structured(e):
    """Count and sum from a machine-readable oracle file, if the oracle names one."""
    text = " ".join(e["upstream_oracle"])
    m = re.search(r"exactly (\S+\.json) \(oracles/genkgo-camt/", text)
    if m:
        j = json.load(open(os.path.join(root, "oracles/genkgo-camt", m.group(1))))
        entries = j.get("getEntries") or []
        total = sum(Decimal(x["getAmount"]["getAmount"]) for x in entries) / 100
        return {"count": len(entries), "sum": str(total), "source": "oracle file genkgo-camt/" + m.group(1)}
    m = re.search(r"with (\S+\.json) \(oracles/mt940-rs/\)", text)
    if m:
        j = json.load(open(os.path.join(root, "oracles/mt940-rs", m.group(1))))
        lines = [l for msg in j for l in msg["statement_lines"]]
        total = Decimal(0)
        for l in lines:
            a = Decimal(l["amount"])
            total += a if l["ext_debit_credit_indicator"] in ("Credit", "ReverseDebit") else -a
        return {"count": len(lines), "sum": str(total), "source": "oracle file mt940-rs/" + m.group(1)}
    m = re.search(r"with (\S+\.yml) \(oracles/wolph-mt940/\)", text)
    if m:
        y = open(os.path.join(root, "oracles/wolph-mt940", m.group(1))).read()
        n = len(re.findall(r"^- !!python/object:mt940\.models\.Transaction$", y, re.M))
        total = re.search(r"sum of signed amounts (-?[\d.]+)", text)
        out = {"count": n, "source": "oracle file wolph-mt940/" + m.group(1)}
        if total:
            out["sum"] = total.group(1)
        return out
    return None


def from_text(e):
    text = " || ".join(e["upstream_oracle"])
    if re.search(r"MUST (FAIL|BE REJECTED)", text) and not re.search(r"Lenient: [1-9]", text):
        return {"expect": "reject", "source": "oracle text"}
    lenient = re.search(r"Lenient: (\d+) transaction", text)
    if lenient:
        n = int(lenient.group(1))
        return {"count": n, "source": "oracle text (lenient mode)"} if n else {"expect": "reject", "source": "oracle text"}
    out = {}
    for pat in [r"\b(\d+) txns?\b", r"\b(\d+) txn\(s\)", r"\b(\d+) line\(s\)", r"\b(\d+) lines\b", r"\b(\d+) transactions?\b",
                r"\b(\d+) rows\b", r"\b(\d+) txn directive\(s\)", r"\b(\d+) invest txns\b", r"\b(\d+) investment txns\b"]:
        m = re.search(pat, text)
        if m:
            out["count"] = int(m.group(1))
            break
    m = re.search(r"sum of signed amounts (-?[\d.]+)", text) or re.search(r"signed sum (-?[\d.]+)", text)
    if m:
        out["sum"] = m.group(1)
    m = re.search(r"\(sum (-?\d+)\)", text)
    if m and "cents" in text:
        out["sum"] = str(Decimal(m.group(1)) / 100)
    if re.search(r"Header only|no transactions|No transactions|0 statements|no statements produced", text) and "count" not in out:
        out["count"] = 0
    if out:
        out["source"] = "oracle text"
    return out or None


expected = []
for e in manifest:
    x = {"file": e["file"], "format": e["format"]}
    got = structured(e) or from_text(e)
    if got:
        x.update(got)
    else:
        x["source"] = "none"
    expected.append(x)

overrides_path = os.path.join(here, "overrides.json")
if os.path.exists(overrides_path):
    overrides = {o["file"]: o for o in json.load(open(overrides_path))}
    for x in expected:
        o = overrides.get(x["file"])
        if o:
            for k in ("count", "sum", "expect"):
                x.pop(k, None)
            x.update(o)

with open(os.path.join(here, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, ensure_ascii=False)
    f.write("\n")
missing = [x["file"] for x in expected if x["source"] == "none"]
print(f"{len(expected)} files, {len(missing)} without an expectation")
for m in missing:
    print("  ", m)
