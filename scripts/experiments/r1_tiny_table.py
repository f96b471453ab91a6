#!/usr/bin/env python3
"""Markdown tables of the R1-tiny experiment from its eval reports (eval_<stage>.json) and times.jsonl."""
import json
import os
import sys

w = sys.argv[1] if len(sys.argv) > 1 else "out/r1-tiny"
rows = [("base", "teacher base (pretrained, 2.12 M active)"), ("sft", "teacher + cold-start SFT"),
        ("grpo", "teacher + SFT + GRPO"), ("final", "default model (GRPO teacher + final SFT with tool use)"),
        ("student_base", "student base (pretrained, 0.52 M active)"), ("student_sft", "student + cold-start SFT"),
        ("student_rl", "student + cold-start SFT + GRPO"), ("student_distill", "student distilled from the GRPO teacher")]
suites = ["arithmetic", "word", "countdown"]
print("| model | " + " | ".join(f"{s} pass@1" for s in suites) + " | arithmetic tokens |")
print("|---|" + "---|" * (len(suites) + 1))
for key, label in rows:
    path = os.path.join(w, f"eval_{key}.json")
    if not os.path.exists(path):
        continue
    rep = {s["suite"]: s for s in json.load(open(path))["suites"]}
    cells = [f"{rep[s]['pass@1']:.3f}" if s in rep else "—" for s in suites]
    tok = rep.get("arithmetic", {}).get("mean_tokens")
    print(f"| {label} | " + " | ".join(cells) + f" | {tok:.1f} |" if tok is not None else " — |")
times = os.path.join(w, "times.jsonl")
if os.path.exists(times):
    print("\n| stage | wall time (s) | threads |\n|---|---|---|")
    for line in open(times):
        t = json.loads(line)
        print(f"| {t['stage']} | {t['seconds']} | {t['threads']} |")
