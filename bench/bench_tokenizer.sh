#!/usr/bin/env bash
# Tokenizer encode throughput: baleine vs the HF tokenizer's JS port (@lenml/tokenizers) with the real DeepSeek-V3
# tokenizer, on the same >= 1 MB mixed text, in one run (median of 5). Usage: bench/bench_tokenizer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/apps/baleine/baleine
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
node tests/js/dump_tokenizer.mjs "$W/tok" >/dev/null
node tests/js/make_mixed_text.mjs "$W/mixed.txt" >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
ours=() theirs=()
for i in 1 2 3 4 5; do
  ours+=("$($B --threads 1 tokenize --tokenizer "$W/tok" --file "$W/mixed.txt" | sed -n 1p | sed -E 's/.*\(([0-9.]+) MB\/s\).*/\1/')")
  theirs+=("$(node tests/js/encode.mjs "$W/mixed.txt" "$W/ref.json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).mb_per_s.toFixed(2)))')")
done
med() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
o=$(med "${ours[@]}"); t=$(med "${theirs[@]}")
echo "text: $(stat -c %s "$W/mixed.txt") bytes of mixed scripts; encode MB/s, median of 5 (single thread)"
printf "%-28s %8s\n" "baleine" "$o" "@lenml/tokenizers (JS)" "$t"
echo "ratio: $(echo "$o / $t" | bc -l | xargs printf '%.2f')x"
