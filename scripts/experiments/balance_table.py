#!/usr/bin/env python3
"""Markdown tables for the balancing comparison in docs/experiments/moe-vs-dense.md: validation loss at every
evaluation and expert-load balance (per MoE layer, averaged over step windows) for each run.
Usage: balance_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]"""
import json
import sys

runs = [a.rsplit("=", 1) for a in sys.argv[1:]]
metrics = {name: [json.loads(l) for l in open(f"{d}/metrics.jsonl") if l.strip()] for name, d in runs}
names = [n for n, _ in runs]

evals = {n: [(m["step"], m["val_loss"]) for m in ms if "val_loss" in m] for n, ms in metrics.items()}
print("| step | " + " | ".join(f"{n} val loss" for n in names) + " |")
print("|---" * (len(names) + 1) + "|")
for i, (step, _) in enumerate(evals[names[0]]):
    print(f"| {step} | " + " | ".join(f"{evals[n][i][1]:.4f}" if i < len(evals[n]) else "" for n in names) + " |")
print()


def window(ms, lo, hi, key):
    rows = [m["expert_balance"] for m in ms if lo < m["step"] <= hi and "expert_balance" in m]
    layers = len(rows[0])
    return [sum(r[l][key] for r in rows) / len(rows) for l in range(layers)]


last = max(m["step"] for m in metrics[names[0]])
windows = [(0, 50), (last - 50, last)]
print("| run | steps | max/mean expert load per MoE layer | normalised routing entropy per layer |")
print("|---|---|---|---|")
for n in names:
    for lo, hi in windows:
        mx = window(metrics[n], lo, hi, "max_over_mean")
        en = window(metrics[n], lo, hi, "entropy")
        print(f"| {n} | {lo + 1}–{hi} | " + ", ".join(f"{x:.2f}" for x in mx) + " | " + ", ".join(f"{x:.3f}" for x in en) + " |")
