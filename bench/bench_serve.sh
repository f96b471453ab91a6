#!/usr/bin/env bash
# Serving benchmark: starts `baleine serve` on MODEL_DIR (default: the servers tests' wider fixture model, rebuilt
# with a 4096-token context so a 2k-token prefix fits) and runs bench/bench_serve.mjs against it.
# Usage: bench/bench_serve.sh BALEINE_BINARY [MODEL_DIR]
set -euo pipefail
B=$1
HERE=$(cd "$(dirname "$0")" && pwd)
if [[ $# -ge 2 ]]; then
  M=$2
else
  W=$(mktemp -d /tmp/baleine-bench-serve.XXXXXX)
  sed 's/"max_position_embeddings": 1024/"max_position_embeddings": 4096/' "$HERE/../tests/server/make_test_model.sh" > "$W/make.sh"
  bash "$W/make.sh" "$B" "$W/fixture" >/dev/null
  M=$W/fixture/slow
fi
DB=$(mktemp /tmp/baleine-bench-serve-db.XXXXXX)
"$B" serve --model "$M" --port 0 --db "$DB" --max-batch 16 > "$DB.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$DB" "$DB"-*' EXIT
for _ in $(seq 100); do grep -q "http://" "$DB.log" && break; sleep 0.1; done
URL=$(grep -o "http://[0-9.]*:[0-9]*" "$DB.log" | head -1)
ID=$(curl -s "$URL/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
echo "model $M ($ID), $(nproc) cores"
NODE_PATH="$HERE/../tests/js/node_modules" node "$HERE/bench_serve.mjs" "$URL" "$ID" "${TOKENS:-128}"
