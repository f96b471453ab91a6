#!/usr/bin/env bash
# Training throughput (forward + backward + AdamW), baleine vs PyTorch on the same DeepSeek-V3-shaped model,
# same thread count, in one run. Usage: bench/bench_train.sh [threads...]   (default: 1 2)
# ARCH=qwen2 benches a dense Qwen2-shaped student instead (GQA 8/2 heads, q/k/v biases, tied embeddings).
# Needs the build (./test or ./run) and Debian python3-torch (scripts/setup.sh --with-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/apps/baleine/baleine
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
SEQ=128 BATCH=4 STEPS=8
# PyTorch (Debian) runs on the same OpenBLAS, whose CPU detection can fall back to SSE3 kernels (see
# ops::openblas_better_coretype); baleine then re-runs itself with better ones, so give PyTorch the same.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  if grep -q avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
ARCH=${ARCH:-deepseek}
[[ "$ARCH" == deepseek || "$ARCH" == qwen2 ]] || { echo "ARCH must be deepseek or qwen2" >&2; exit 2; }
/usr/bin/python3 - "$W" "$ARCH" <<'PY'
import json, struct, random, sys
w, arch = sys.argv[1], sys.argv[2]
cfg = json.load(open("tests/data/parity/v3/config.json"))
# The V3-shaped model of shared/reference machine.md: hidden 256, 4 layers (1 dense), 8 heads, q_lora 128,
# kv_lora 64, rope 16, nope 32, v 32, 16 routed experts top-4 in 4 groups (keep 2), 1 shared, expert ff 128,
# dense ff 512, YaRN x40, MTP 1; vocab 4096 (a small trained tokenizer).
cfg.update({"hidden_size": 256, "num_hidden_layers": 4, "first_k_dense_replace": 1, "num_attention_heads": 8,
            "q_lora_rank": 128, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
            "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "n_shared_experts": 1,
            "moe_intermediate_size": 128, "intermediate_size": 512, "vocab_size": 4096, "num_nextn_predict_layers": 1})
if arch == "qwen2":  # a dense student of the same width and depth: 8 query heads over 2 kv heads of 32
    cfg = json.load(open("tests/data/parity/qwen2/config.json"))
    cfg.update({"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
                "intermediate_size": 768, "vocab_size": 4096, "max_position_embeddings": 4096})
json.dump(cfg, open(f"{w}/config.json", "w"))
random.seed(0)
t = [random.randrange(4096) for _ in range(200000)]
open(f"{w}/train-00000.bin", "wb").write(struct.pack(f"<{len(t)}I", *t))
json.dump({"format": "baleine-tokens-v1", "dtype": "uint32le", "eos_id": 1, "vocab_size": 4096,
           "splits": {"train": {"tokens": len(t), "documents": 1, "shards": [{"file": "train-00000.bin", "tokens": len(t)}]}}},
          open(f"{w}/index.json", "w"))
PY
# NO_TORCH=1 (or no python3-torch installed): baleine alone, e.g. to compare its own thread counts.
if [[ "${NO_TORCH:-0}" != 1 ]] && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "python3-torch is not installed (scripts/setup.sh --with-torch): measuring baleine alone" >&2; NO_TORCH=1
fi
TORCH_VERSION=$([[ "${NO_TORCH:-0}" == 1 ]] && echo none || /usr/bin/python3 -c 'import torch; print(torch.__version__)')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads; torch $TORCH_VERSION; load $(cut -d' ' -f1 /proc/loadavg)"
echo "OpenBLAS kernels: ${OPENBLAS_CORETYPE:-auto}"
if [[ "$ARCH" == qwen2 ]]; then
  echo "model: Qwen2-shaped dense, hidden 256, 4 layers, GQA 8/2 heads, ff 768, tied embeddings; seq_len $SEQ, batch $BATCH, f32"
else
  echo "model: DeepSeek-V3-shaped, hidden 256, 4 layers, 16 experts top-4, MTP; seq_len $SEQ, batch $BATCH, f32"
fi
printf "%-8s %16s %16s %8s\n" threads "baleine tok/s" "pytorch tok/s" ratio
for T in "${@:-1 2}"; do
  for T1 in $T; do
    cat > "$W/recipe.json" <<JSON
{"model": $(cat "$W/config.json"), "data": "$W", "out": "$W/run-$T1", "seq_len": $SEQ, "batch_size": $BATCH,
 "steps": $STEPS, "eval_batches": 0, "checkpoint_every": 1000000, "lr": {"schedule": "constant", "max": 1e-3}}
JSON
    $B --threads "$T1" train --config "$W/recipe.json" >/dev/null 2>&1
    OURS=$(/usr/bin/python3 -c "
import json, statistics
m = [json.loads(l) for l in open('$W/run-$T1/metrics.jsonl')]
print(statistics.median([x['tokens_per_s'] for x in m[2:]]))")
    if [[ "${NO_TORCH:-0}" == 1 ]]; then printf "%-8s %16.0f %16s %8s\n" "$T1" "$OURS" "-" "-"; continue; fi
    THEIRS=$(/usr/bin/python3 bench/bench_train_torch.py --config "$W/config.json" --threads "$T1" --seq-len $SEQ --batch $BATCH --steps $STEPS | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tokens_per_s'])")
    printf "%-8s %16.0f %16.0f %7.2fx\n" "$T1" "$OURS" "$THEIRS" "$(echo "$OURS / $THEIRS" | bc -l)"
  done
done
