#!/usr/bin/env bash
# A short R1-Zero-style run on this machine: task text -> tokenizer -> tiny MoE base model -> held-out eval ->
# GRPO on the same suite -> held-out eval. Usage: scripts/rl_smoke.sh [BALEINE] [WORK_DIR]
# Knobs (environment): SUITE (JSON spec), TRAIN_STEPS, GRPO_STEPS, PROBLEMS.
set -euo pipefail
B=${1:-build/apps/baleine/baleine}
W=${2:-runs/rl-smoke}
SUITE=${SUITE:-'{"name":"arithmetic","min_digits":1,"max_digits":2,"ops":"+-","reasoning":"short"}'}
TRAIN_STEPS=${TRAIN_STEPS:-1500}
GRPO_STEPS=${GRPO_STEPS:-60}
PROBLEMS=${PROBLEMS:-100}
MAX_TOKENS=${MAX_TOKENS:-64}
rm -rf "$W" && mkdir -p "$W/text"
T0=$(date +%s)
"$B" tasks --suite "$SUITE" --count 20000 --as raw --out "$W/text/tasks.txt"
"$B" tasks --suite "$SUITE" --count 20000 --as text --out "$W/tasks.jsonl"
"$B" tokenizer train --input "$W/text" --vocab-size 320 --out "$W/tok"
"$B" data --input "$W/tasks.jsonl" --tokenizer "$W/tok" --out "$W/corpus" --no-near-dedup --no-exact-dedup --min-chars 20 \
  --min-alpha-ratio 0 --max-symbol-ratio 100 --max-dup-line-frac 1 --max-top-2gram 1 --max-top-3gram 1 --max-top-4gram 1 \
  --val-fraction 0.02 --no-progress > "$W/data_report.txt"
cat > "$W/base.json" <<JSON
{"model": {"model_type": "deepseek_v3", "vocab_size": 320, "hidden_size": 96, "num_hidden_layers": 3,
           "first_k_dense_replace": 1, "intermediate_size": 256, "num_attention_heads": 4, "q_lora_rank": 48,
           "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "n_routed_experts": 8,
           "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "n_shared_experts": 1, "moe_intermediate_size": 64,
           "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "routed_scaling_factor": 2.5,
           "num_nextn_predict_layers": 0, "max_position_embeddings": 512, "bos_token_id": 0, "eos_token_id": 1},
 "data": "$PWD/$W/corpus", "out": "$PWD/$W/base", "seq_len": 256, "batch_size": 4, "steps": $TRAIN_STEPS,
 "checkpoint_every": $TRAIN_STEPS, "eval_every": 100, "eval_batches": 2,
 "lr": {"schedule": "cosine", "max": 3e-3, "min": 3e-4, "warmup_steps": 20}}
JSON
"$B" train --config "$W/base.json" 2>&1 | tr '\r' '\n' | grep -E "val|compute" | tail -3
T1=$(date +%s)
BASE="$PWD/$W/base/checkpoints/$(cat "$W/base/checkpoints/latest")"
"$B" eval --model "$BASE" --suite "$SUITE" --problems "$PROBLEMS" --max-tokens "$MAX_TOKENS" --out "$W/eval_base.json"
T2=$(date +%s)
cat > "$W/grpo.json" <<JSON
{"model": "$BASE", "out": "$PWD/$W/grpo", "suite": $SUITE, "prompt_format": "plain",
 "prompts_per_step": 8, "group_size": 8, "max_new_tokens": $MAX_TOKENS, "temperature": 1.0, "steps": $GRPO_STEPS,
 "beta": 0.0, "epsilon": 0.2, "epsilon_high": 0.28, "loss_averaging": "token", "scale_rewards": "group",
 "lr": {"schedule": "constant", "max": 3e-5}, "eval_every": 10, "eval_problems": $PROBLEMS, "checkpoint_every": 10}
JSON
"$B" grpo --config "$W/grpo.json" 2>&1 | tr '\r' '\n' | grep -E "eval|grpo:" || true
T3=$(date +%s)
RL="$PWD/$W/grpo/checkpoints/$(cat "$W/grpo/checkpoints/latest")"
"$B" eval --model "$RL" --suite "$SUITE" --problems "$PROBLEMS" --max-tokens "$MAX_TOKENS" --out "$W/eval_grpo.json"
"$B" plot --metrics "$W/grpo/metrics.jsonl" --y reward,accuracy,eval_accuracy --out "$W/grpo_reward.svg"
"$B" plot --metrics "$W/grpo/metrics.jsonl" --y response_tokens --out "$W/grpo_length.svg"
echo "pretraining $((T1 - T0)) s, eval $((T2 - T1)) s, grpo $((T3 - T2)) s"
