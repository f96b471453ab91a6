#!/usr/bin/env bash
# Aggregate decode tokens/s of the batched engine step at batch 1, 2, 4, 8, 16 (every sequence one token per
# step, linear layers over M = batch rows, MoE experts read once per step for all rows that chose them).
# Usage: bench/bench_batch.sh [MODEL_DIR_OR_CONFIG] [THREADS]   (a config.json runs with random weights)
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/apps/baleine/baleine
M=${1:-bench/configs/deepseek-v3-tiny-129k.json}
T=${2:-2}
extra=()
[[ "$M" == *.json ]] && extra+=(--random-init)
echo "model: $M, threads: $T, tg32 from an empty context, mean ± sd of 3"
printf "| batch | aggregate t/s | per-sequence t/s |\n|---|---|---|\n"
for b in 1 2 4 8 16; do
  j=$($B bench --model "$M" "${extra[@]}" --threads "$T" --prompt-tokens 16 --gen-tokens 32 --reps 3 --batch "$b" --json | tail -1)
  python3 - "$b" "$j" <<'PY'
import json, sys
b, j = int(sys.argv[1]), json.loads(sys.argv[2])
m, sd = (j["tg_tokens_per_s"], j["tg_tokens_per_s_sd"]) if b == 1 else (j["batch_tg_tokens_per_s"], j["batch_tg_tokens_per_s_sd"])
print(f"| {b} | {m:.1f} ± {sd:.1f} | {m / b:.1f} |")
PY
done
