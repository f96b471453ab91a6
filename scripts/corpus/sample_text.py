#!/usr/bin/env python3
"""Evenly spaced sample of a curated.jsonl (from `baleine data --write-text`) as plain text for tokenizer
training: train-split documents only, every k-th one so that every source is represented, up to --mb MB.

Usage: sample_text.py CURATED.jsonl OUT.txt --mb N
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("curated")
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, required=True)
    a = ap.parse_args()
    total = os.path.getsize(a.curated)
    stride = max(1, int(total / (a.mb * 1e6)))
    budget, written, docs = a.mb * 1e6, 0, 0
    with open(a.curated, encoding="utf-8") as f, open(a.out, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if i % stride:
                continue
            d = json.loads(line)
            if d.get("split") == "val":
                continue
            out.write(d["text"] + "\n\n")
            written += len(d["text"].encode("utf-8")) + 2
            docs += 1
            if written >= budget:
                break
    print(f"[sample] {docs} documents, {written / 1e6:.2f} MB -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
