#!/usr/bin/env bash
# The prefix cache's disk tier (`serve --disk-cache DIR`): time to first token for a ~2k-token prompt, cold,
# then the same prefix again in the same process (memory), then after a restart of the server (disk), on the
# serving benchmark's model (the tests' wider fixture with a 4096-token context). REPS rounds (default 3), each
# with a fresh cache directory; prints every measurement and the medians.
# Usage: bench/bench_disk_cache.sh BALEINE_BINARY [REPS]
set -euo pipefail
B=$1 REPS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/baleine-bench-disk.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$W"' EXIT
sed 's/"max_position_embeddings": 1024/"max_position_embeddings": 4096/' "$HERE/../tests/server/make_test_model.sh" > "$W/make.sh"
bash "$W/make.sh" "$B" "$W/fixture" >/dev/null
M=$W/fixture/slow
PID=""
start() {
  "$B" serve --model "$M" --port 0 --db "$W/db" --disk-cache "$W/cache" > "$W/log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do grep -q "http://" "$W/log" && break; sleep 0.05; done
  URL=$(grep -o "http://[0-9.]*:[0-9]*" "$W/log" | head -1)
  ID=$(curl -s "$URL/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
}
stop() { kill $PID; wait $PID 2>/dev/null || true; }
ask() { NODE_PATH="$HERE/../tests/js/node_modules" node "$HERE/bench_disk_cache.mjs" "$URL" "$ID" "$1"; }
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1 /proc/loadavg)"
: > "$W/results"
for rep in $(seq "$REPS"); do
  rm -rf "$W/cache" "$W/db"*
  start
  cold=$(ask "First question: what may I copy?")
  mem=$(ask "Second question: what must I keep?")
  stop
  start
  disk=$(ask "Third question: may I sell copies?")
  files=$(ls "$W/cache" | wc -l); bytes=$(du -sb "$W/cache" | cut -f1)
  stop
  echo "$rep cold $cold memory $mem after-restart $disk ($files files, $bytes bytes)" | tee -a "$W/results"
done
python3 - "$W/results" <<'PY'
import json, re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
get = lambda r, k: json.loads(r[r.index(k) + 1])
for k in ("cold", "memory", "after-restart"):
    t = statistics.median(get(r, k)["ttft"] for r in rows)
    print(f"median {k:14s} TTFT {t:.4f} s  hit tokens {get(rows[0], k)['hit_tokens']} of {get(rows[0], k)['prompt_tokens']}")
c = statistics.median(get(r, "cold")["ttft"] for r in rows)
d = statistics.median(get(r, "after-restart")["ttft"] for r in rows)
m = statistics.median(get(r, "memory")["ttft"] for r in rows)
print(f"cold / memory {c / m:.1f}x, cold / after restart (disk) {c / d:.1f}x")
PY
echo "load after: $(cut -d' ' -f1 /proc/loadavg)"
