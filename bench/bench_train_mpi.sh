#!/usr/bin/env bash
# Data-parallel scaling on this machine: the DeepSeek-V3-shaped model of bench_train.sh (hidden 256, 4 layers,
# 16 experts top-4, MTP), seq_len 128, global batch 8, in three set-ups interleaved A B C A B C ...:
#   1 process x 1 thread, 1 process x 2 threads, 1 process x 2 threads with "replicas": 2 (two weight-sharing
#   copies of the model, each taking half of every batch in its own thread), mpirun -np 2 x 1 thread.
# Prints the median tokens/s of each, and for the MPI run the share of the step spent in communication (the
# reduce-scatter + all-gather of the gradients and the small reductions, waiting included), then the bytes each
# rank sends per step for the full DeepSeek-V3 config at 8/64/256 ranks. Usage: bench/bench_train_mpi.sh [reps]
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/apps/baleine/baleine
REPS=${1:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
/usr/bin/python3 - "$W" <<'PY'
import json, struct, random, sys
w = sys.argv[1]
cfg = json.load(open("tests/data/parity/v3/config.json"))
cfg.update({"hidden_size": 256, "num_hidden_layers": 4, "first_k_dense_replace": 1, "num_attention_heads": 8,
            "q_lora_rank": 128, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
            "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "n_shared_experts": 1,
            "moe_intermediate_size": 128, "intermediate_size": 512, "vocab_size": 4096, "num_nextn_predict_layers": 1})
random.seed(0)
t = [random.randrange(4096) for _ in range(200000)]
open(f"{w}/train-00000.bin", "wb").write(struct.pack(f"<{len(t)}I", *t))
json.dump({"format": "baleine-tokens-v1", "dtype": "uint32le", "eos_id": 1, "vocab_size": 4096,
           "splits": {"train": {"tokens": len(t), "documents": 1, "shards": [{"file": "train-00000.bin", "tokens": len(t)}]}}},
          open(f"{w}/index.json", "w"))
json.dump({"model": cfg, "data": w, "out": f"{w}/run", "seq_len": 128, "batch_size": 8, "steps": 10,
           "eval_batches": 0, "checkpoint_every": 1000000, "lr": {"schedule": "constant", "max": 1e-3}},
          open(f"{w}/recipe.json", "w"))
r = json.load(open(f"{w}/recipe.json"))
r["replicas"] = 2
json.dump(r, open(f"{w}/recipe_replicas.json", "w"))
PY
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads; $(mpirun --version | head -1); load $(cut -d' ' -f1 /proc/loadavg)"
median() { /usr/bin/python3 -c "
import json, statistics, sys
m = [json.loads(l) for l in open('$W/run/metrics.jsonl')][2:]
tok = statistics.median(x['tokens_per_s'] for x in m)
comm = statistics.median(x.get('comm_s', 0) * x['tokens_per_s'] / (8 * 127) for x in m)
print(f'{tok:.0f} {comm:.3f}')"; }
declare -A RESULTS
for rep in $(seq "$REPS"); do
  $B --threads 1 train --config "$W/recipe.json" >/dev/null 2>&1; RESULTS[p1t1]+="$(median | cut -d' ' -f1) "
  $B --threads 2 train --config "$W/recipe.json" >/dev/null 2>&1; RESULTS[p1t2]+="$(median | cut -d' ' -f1) "
  $B --threads 2 train --config "$W/recipe_replicas.json" >/dev/null 2>&1; RESULTS[p1r2]+="$(median | cut -d' ' -f1) "
  mpirun -np 2 $B --threads 1 train --config "$W/recipe.json" >/dev/null 2>&1; RESULTS[p2t1]+="$(median) ;"
done
med() { /usr/bin/python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.0f}')" $1; }
A=$(med "${RESULTS[p1t1]}") Bt=$(med "${RESULTS[p1t2]}") R2=$(med "${RESULTS[p1r2]}")
C=$(/usr/bin/python3 -c "
import statistics
runs = [r.split() for r in '''${RESULTS[p2t1]}'''.split(';') if r.strip()]
print(f'{statistics.median(float(r[0]) for r in runs):.0f} {100 * statistics.median(float(r[1]) for r in runs):.1f}')")
printf "%-32s %10s %8s %14s\n" setup "tok/s" "vs 1x1" "comm share"
printf "%-32s %10s %8s %14s\n" "1 process x 1 thread" "$A" "1.00x" "-"
printf "%-32s %10s %7.2fx %14s\n" "1 process x 2 threads" "$Bt" "$(echo "$Bt / $A" | bc -l)" "-"
printf "%-32s %10s %7.2fx %14s\n" "1 process x 2 threads, replicas 2" "$R2" "$(echo "$R2 / $A" | bc -l)" "-"
printf "%-32s %10s %7.2fx %13s%%\n" "mpirun -np 2 x 1 thread" "${C% *}" "$(echo "${C% *} / $A" | bc -l)" "${C#* }"
echo "load after: $(cut -d' ' -f1 /proc/loadavg); runs: 1x1 [${RESULTS[p1t1]}] 1x2 [${RESULTS[p1t2]}] 1x2 replicas [${RESULTS[p1r2]}] 2x1 [${RESULTS[p2t1]}]"
# Bytes per rank per step in baleine's data parallel (reduce-scatter + all-gather of the f32 gradients; ZeRO-1
# sends the same: reduce-scatter of gradients + all-gather of weights): 2 (N-1)/N x 4 bytes x parameters.
P=$($B info --json --model tests/data/configs/deepseek-v3/config.json | /usr/bin/python3 -c "import json,sys; print(int(json.load(sys.stdin)['total_params']))")
echo "DeepSeek-V3 ($P parameters, f32 gradients), bytes each rank sends per optimizer step:"
for N in 8 64 256; do
  /usr/bin/python3 -c "p=$P; n=$N; b=2*(n-1)/n*4*p; print(f'  {n:>3} ranks: {b/1e12:.2f} TB (data parallel or ZeRO-1; moments per rank with ZeRO-1: {8*p/n/1e9:.1f} GB)')"
done
