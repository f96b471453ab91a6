#!/usr/bin/env python3
"""Markdown table for docs/experiments/moe-vs-dense.md from two runs' metrics.jsonl (validation loss against
training FLOPs). Usage: moe_vs_dense_table.py MOE_DIR DENSE_DIR ACTIVE_PARAMS TOKENS_PER_STEP"""
import json
import sys


def evals(run_dir):
    out = []
    for line in open(f"{run_dir}/metrics.jsonl"):
        m = json.loads(line)
        if "val_loss" in m:
            out.append((m["step"], m["val_loss"]))
    return out


moe, dense = evals(sys.argv[1]), evals(sys.argv[2])
active, tokens_per_step = float(sys.argv[3]), float(sys.argv[4])
flops = lambda step: 6 * active * tokens_per_step * step
print("| step | training FLOPs | MoE val loss | dense val loss |")
print("|---|---|---|---|")
for (s, a), (_, b) in zip(moe, dense):
    print(f"| {s} | {flops(s):.3g} | {a:.4f} | {b:.4f} |")
target = dense[-1][1]
reach = next((s for s, v in moe if v <= target), None)
print()
print(f"Dense final validation loss: {target:.4f} after {flops(dense[-1][0]):.3g} FLOPs.")
if reach is None:
    print("The MoE model did not reach it within the run.")
else:
    print(f"The MoE model first reached it at step {reach}: {flops(reach):.3g} FLOPs "
          f"({flops(reach) / flops(dense[-1][0]):.2f}x the dense model's FLOPs).")
