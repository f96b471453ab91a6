#!/usr/bin/env bash
# A tiny DeepSeek-V3-shaped model with a matching tokenizer for the server tests: tokenizer trained on the licence
# texts every Debian system ships, a few training steps (the weights only need to be real, not good).
# Usage: tests/server/make_test_model.sh BALEINE_BINARY OUT_DIR   (the model ends in OUT_DIR/model)
set -euo pipefail
B=$1
W=$2
rm -rf "$W" && mkdir -p "$W/text"
W=$(cd "$W" && pwd)  # the recipe resolves relative paths against its own folder
for f in /usr/share/common-licenses/*; do if [[ -f "$f" ]]; then cp "$f" "$W/text/$(basename "$f").txt"; fi; done
"$B" tokenizer train --input "$W/text" --vocab-size 600 --out "$W/tok" >/dev/null 2>&1
"$B" data --input "$W/text" --tokenizer "$W/tok" --out "$W/corpus" --min-chars 50 --val-fraction 0.05 >/dev/null 2>&1
cat > "$W/recipe.json" <<JSON
{"model": {"model_type": "deepseek_v3", "vocab_size": 600, "hidden_size": 32, "num_hidden_layers": 2,
           "first_k_dense_replace": 1, "intermediate_size": 64, "num_attention_heads": 2, "q_lora_rank": 16,
           "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 4,
           "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "n_shared_experts": 1, "moe_intermediate_size": 16,
           "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "routed_scaling_factor": 2.5,
           "num_nextn_predict_layers": 0, "max_position_embeddings": 1024, "bos_token_id": 0, "eos_token_id": 1},
 "data": "$W/corpus", "out": "$W/run", "seq_len": 32, "batch_size": 2, "steps": 4, "checkpoint_every": 4,
 "eval_every": 4, "eval_batches": 1, "lr": {"schedule": "cosine", "max": 3e-3, "warmup_steps": 1}}
JSON
"$B" train --config "$W/recipe.json" >/dev/null 2>&1
CK="$W/run/checkpoints/$(cat "$W/run/checkpoints/latest")"
rm -rf "$W/model" && cp -r "$CK" "$W/model"
[[ -f "$W/model/tokenizer.json" ]] || cp "$W/tok/"tokenizer*.json "$W/model/"
echo "test model: $W/model"
# A wider one, slow enough (a few hundred tokens/s) that a stream is surely still running when a test kills the
# server: the durability and drain tests need that.
sed -e 's/"hidden_size": 32/"hidden_size": 512/' -e 's/"intermediate_size": 64/"intermediate_size": 2048/' \
    -e 's/"num_hidden_layers": 2/"num_hidden_layers": 6/' -e 's/"moe_intermediate_size": 16/"moe_intermediate_size": 512/' \
    -e 's/"steps": 4, "checkpoint_every": 4/"steps": 1, "checkpoint_every": 1/' -e "s#$W/run#$W/run-slow#" \
    "$W/recipe.json" > "$W/recipe-slow.json"
"$B" train --config "$W/recipe-slow.json" >/dev/null 2>&1
CK="$W/run-slow/checkpoints/$(cat "$W/run-slow/checkpoints/latest")"
rm -rf "$W/slow" && cp -r "$CK" "$W/slow"
[[ -f "$W/slow/tokenizer.json" ]] || cp "$W/tok/"tokenizer*.json "$W/slow/"
rm -f "$W/model/optimizer.safetensors" "$W/slow/optimizer.safetensors"
echo "slow test model: $W/slow"
