#!/usr/bin/env bash
# The embedded default model served as ./run serves it: its tokenizer_config.json names the R1 chat format, so
# the model's own id and deepseek-chat are reasoning routes and a reply's reasoning comes back split off
# (reasoning_content), never inside content; the built-in calculator runs through /v1/responses.
# Usage: serve_default_model.sh BALEINE WORK_DIR
set -euo pipefail
B=$1; W=$2
rm -rf "$W" && mkdir -p "$W"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$B" serve --model "$ROOT/models/default" --port 0 --db "$W/db.sqlite" > "$W/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's|.*OpenAI base URL http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$W/serve.log")
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "FAIL server did not start"; cat "$W/serve.log"; exit 1; }
U=http://127.0.0.1:$port/v1
fail() { echo "FAIL $*"; exit 1; }
models=$(curl -sf "$U/models")
python3 - "$models" <<'PY' || fail "models: $models"
import json, sys
m = {x["id"]: x for x in json.loads(sys.argv[1])["data"]}
assert m["default"]["reasoning"] is True and m["deepseek-chat"]["reasoning"] is True, m
PY
reply=$(curl -sf "$U/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"default","messages":[{"role":"user","content":"What is 12 + 35?"}],"temperature":0,"max_tokens":64,"n":8}')
# Thinking mode ignores temperature (as DeepSeek's API does), so the answers are sampled: of 8, the model reasons
# first in some (R1 format: the prompt opens <think>), and no answer opens a <think> in its content. (A sampled
# answer may repeat a stray </think> as text; the grounded-quote constraint sees the raw text, so it stays.)
python3 - "$reply" <<'PY' || fail "chat: $reply"
import json, sys
msgs = [c["message"] for c in json.loads(sys.argv[1])["choices"]]
assert len(msgs) == 8 and any(m.get("reasoning_content") for m in msgs), msgs
for m in msgs:
    assert "reasoning_content" in m, m
    assert "<think>" not in m["content"], m
PY
resp=$(curl -sf "$U/responses" -H 'Content-Type: application/json' \
  -d '{"model":"default","input":"What is 48213 × 9071?","tools":[{"type":"calculator"}],"tool_choice":{"type":"calculator"}}')
python3 - "$resp" <<'PY' || fail "responses: $resp"
import json, sys
r = json.loads(sys.argv[1])
kinds = [o["type"] for o in r["output"]]
assert "function_call" in kinds and "function_call_output" in kinds and kinds[-1] == "message", kinds
out = json.loads(next(o for o in r["output"] if o["type"] == "function_call_output")["output"])
assert "result" in out or "error" in out, out    # the real calculator ran on the model's expression
PY
echo "serve_default_model: ok (port $port)"
