#!/usr/bin/env bash
# End to end on real text: train a tokenizer, curate + tokenize a corpus, train a small DeepSeek-V3-shaped MoE
# model, generate from its checkpoint. Usage: tests/cli/e2e_pipeline.sh BALEINE_BINARY WORK_DIR
set -euo pipefail
B=$1
W=$2
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$W" && mkdir -p "$W/text"
n=0
for f in /usr/share/common-licenses/*; do
  [[ -f "$f" ]] && cp "$f" "$W/text/$(basename "$f").txt" && n=$((n + 1))
done
(( n > 0 )) || { echo "no text under /usr/share/common-licenses"; exit 1; }
"$B" tokenizer train --input "$W/text" --vocab-size 1500 --out "$W/tok"
"$B" data --input "$W/text" --tokenizer "$W/tok" --out "$W/corpus" --min-chars 50 --val-fraction 0.05
"$B" plot --metrics /dev/null --out /dev/null 2>/dev/null && { echo "plot accepted empty metrics"; exit 1; } || true
cat > "$W/recipe.json" <<JSON
{"model": {"model_type": "deepseek_v3", "vocab_size": 1500, "hidden_size": 64, "num_hidden_layers": 2,
           "first_k_dense_replace": 1, "intermediate_size": 128, "num_attention_heads": 4, "q_lora_rank": 32,
           "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8,
           "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "n_shared_experts": 1, "moe_intermediate_size": 32,
           "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "routed_scaling_factor": 2.5,
           "num_nextn_predict_layers": 1, "max_position_embeddings": 1024, "bos_token_id": 0, "eos_token_id": 1},
 "data": "$W/corpus", "out": "$W/run", "seq_len": 48, "batch_size": 4, "steps": 40, "checkpoint_every": 40,
 "eval_every": 20, "eval_batches": 2, "lr": {"schedule": "cosine", "max": 3e-3, "warmup_steps": 5}}
JSON
"$B" train --config "$W/recipe.json" 2>&1 | tr '\r' '\n' | tail -2
CK="$W/run/checkpoints/$(cat "$W/run/checkpoints/latest")"
"$B" info --model "$CK" | head -3
# 40 steps only learn the most frequent tokens (often newlines): check bytes came out, and that the loss fell.
BYTES=$("$B" generate --model "$CK" --prompt "This License" --max-tokens 20 --ignore-eos | wc -c)
echo "generated $BYTES bytes"
(( BYTES > 1 )) || { echo "nothing generated"; exit 1; }
FIRST=$(head -1 "$W/run/metrics.jsonl" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
LAST=$(tail -1 "$W/run/metrics.jsonl" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
echo "loss $FIRST -> $LAST"
awk -v a="$FIRST" -v b="$LAST" 'BEGIN { exit !(b < a - 0.5) }' || { echo "the loss did not fall"; exit 1; }
"$B" plot --metrics "$W/run/metrics.jsonl" --y loss,val_loss --out "$W/loss.svg"
echo "e2e pipeline: ok"
