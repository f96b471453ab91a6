#!/usr/bin/env python3
"""Sanity checks on a `baleine data` output directory (report.json + index.json); exit 1 on failure.

Usage: check_report.py OUT_DIR [--min-kept-mb N] [--expect-tokens]
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--min-kept-mb", type=float, default=0.0)
    ap.add_argument("--expect-tokens", action="store_true")
    a = ap.parse_args()
    r = json.load(open(os.path.join(a.out, "report.json")))
    errors = []
    d, b = r["documents"], r["bytes"]
    if d["kept"] <= 0:
        errors.append("no document kept")
    if d["in"] != d["kept"] + d["removed_total"] or d["removed_total"] != sum(d["removed"].values()):
        errors.append("document counts do not add up")
    for name in ("exact_duplicate", "near_duplicate", "too_short", "alpha_ratio", "symbol_ratio", "duplicate_lines",
                 "top_ngram", "invalid_utf8", "empty", "too_long"):
        if name not in d["removed"]:
            errors.append(f"missing counter removed.{name}")
    if d["train"] + d["val"] != d["kept"] or d["val"] <= 0:
        errors.append(f"bad split: {d['train']} train + {d['val']} val vs {d['kept']} kept")
    if b["kept"] < a.min_kept_mb * 1e6:
        errors.append(f"only {b['kept'] / 1e6:.2f} MB kept, expected >= {a.min_kept_mb} MB")
    if a.expect_tokens:
        t = r.get("tokens")
        idx = json.load(open(os.path.join(a.out, "index.json")))
        if not t or t["total"] <= 0:
            errors.append("no tokens")
        else:
            s = idx["splits"]
            if s["train"]["tokens"] + s["val"]["tokens"] != t["total"]:
                errors.append("index token counts differ from the report")
            if s["train"]["documents"] + s["val"]["documents"] != d["kept"]:
                errors.append("index document counts differ from the report")
            if not 1.0 < t["bytes_per_token"] < 10.0:
                errors.append(f"implausible bytes/token {t['bytes_per_token']:.2f}")
    for e in errors:
        print(f"[check] FAIL: {e}", file=sys.stderr)
    if not errors:
        print(f"[check] ok: {d['kept']} documents, {b['kept'] / 1e6:.2f} MB kept"
              + (f", {r['tokens']['total']} tokens" if a.expect_tokens else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
