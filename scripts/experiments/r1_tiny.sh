#!/usr/bin/env bash
# scripts/experiments/r1_tiny.sh — the R1-tiny experiment (docs/experiments/r1-tiny.md), one stage per command:
#
#   scripts/experiments/r1_tiny.sh data          # SFT data (task suites, chat format), the student's tokenizer + shards
#   scripts/experiments/r1_tiny.sh base          # the teacher base: models/default as pretrained (commit cffec12) + eval
#   scripts/experiments/r1_tiny.sh sft           # cold-start SFT of the teacher (three phases) + eval
#   scripts/experiments/r1_tiny.sh grpo          # GRPO of the teacher on arithmetic + eval + plots
#   scripts/experiments/r1_tiny.sh student-base  # pretrain the student (24.7% of the teacher's active parameters) + eval
#   scripts/experiments/r1_tiny.sh student-sft   # the same three cold-start SFT phases on the student + eval
#   scripts/experiments/r1_tiny.sh distill       # teacher samples -> rejection sampling -> SFT of the student + eval
#   scripts/experiments/r1_tiny.sh student-rl    # the student trained by GRPO (teacher's recipe) instead + eval
#   scripts/experiments/r1_tiny.sh final         # the default model: teacher + SFT on its traces + tool-use traces
#   scripts/experiments/r1_tiny.sh copy          # copying drills on the default model, then tool-use + replay SFT
#                                                # + grounding eval (with and without grounded quotes)
#   scripts/experiments/r1_tiny.sh ground        # after `copy`: tool-use SFT from the copying checkpoint, then
#                                                # pseudo-word retrieval traces and arithmetic replay + grounding eval
#   scripts/experiments/r1_tiny.sh quotes        # grounding of the shipped models/default: each retrieval mode with
#                                                # plain, grounded and searched quotes, on 200 and 600 questions
#   scripts/experiments/r1_tiny.sh table         # the results table (markdown) from the eval reports
#
# Environment: W (work directory, default out/r1-tiny), B (baleine executable), CORPUS (scripts/build_corpus.sh
# output, default out/corpus), THREADS (default 2). Every stage writes its wall time to $W/times.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-$ROOT/out/r1-tiny}
B=${B:-$ROOT/build/apps/baleine/baleine}
CORPUS=${CORPUS:-$ROOT/out/corpus}
THREADS=${THREADS:-2}
BASE_COMMIT=cffec12  # models/default before this experiment: the pretrained base (recipes/default.json)
ARITH='{"name":"arithmetic","min_digits":1,"max_digits":2,"ops":"+-","reasoning":"short"}'
ARITH3='{"name":"arithmetic","min_digits":1,"max_digits":3,"ops":"+-","reasoning":"short"}'
EVAL_PROBLEMS=${EVAL_PROBLEMS:-200}
mkdir -p "$W"
stage=${1:?"usage: $0 data|base|sft|grpo|student-base|student-sft|distill|student-rl|final|copy|ground|table"}
t0=$(date +%s)
bl() { nice -n 0 "$B" --threads "$THREADS" "$@"; }
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
# Greedy held-out pass@1 on the three suites (chat format, the served form); $1 model, $2 report name.
evaluate() {
  bl eval --model "$1" --suite "$ARITH" --suite word --suite countdown --format chat --problems "$EVAL_PROBLEMS" \
    --max-tokens 160 --out "$W/eval_$2.json" --samples-out "$W/eval_$2_samples.jsonl" | tail -5
}
# An SFT recipe in the R1 chat format, cosine lr, clipping 1.0: $1 model, $2 data file and $3 out (both under $W),
# $4 seq_len, $5 batch_size, $6 steps, $7/$8 max/min lr, $9 warmup, ${10} seed, ${11} checkpoint_every, ${12} eval_every.
sft_recipe() {
  cat <<JSON
{"model": "$1", "data": "$W/$2", "out": "$W/$3", "chat_format": "deepseek-r1",
 "seq_len": $4, "batch_size": $5, "steps": $6, "lr": {"schedule": "cosine", "max": $7, "min": $8, "warmup_steps": $9},
 "grad_clip": 1.0, "seed": ${10}, "checkpoint_every": ${11}, "eval_every": ${12}, "log_every": 10}
JSON
}
# Grounding on the held-out dictionary questions ($GROUNDING_PROBLEMS, default 200), one report per retrieval mode
# ($GROUNDING_MODES, default agent inject): $1 model, $2 report name, extra eval flags after (e.g. --grounded-quotes).
grounding() {
  local m=$1 name=$2 mode; shift 2
  for mode in ${GROUNDING_MODES:-agent inject}; do
    bl eval --model "$m" --suite facts --facts "$CORPUS/raw/debian" --problems "${GROUNDING_PROBLEMS:-200}" --max-tokens 96 --retrieval \
      --retrieval-mode $mode --chat-format deepseek-r1 "$@" --out "$W/eval_${name}_$mode.json" \
      --samples-out "$W/eval_${name}_${mode}_samples.jsonl" | tail -2
  done
}
# GRPO recipe shared by the teacher and the RL-only student; $1 model, $2 out, $3 steps.
grpo_recipe() {
  cat <<JSON
{"model": "$1", "out": "$2", "suite": $ARITH, "prompt_format": "chat",
 "prompts_per_step": 8, "group_size": 8, "max_new_tokens": 64, "temperature": 1.0, "steps": $3,
 "beta": 0.0, "epsilon": 0.2, "epsilon_high": 0.28, "loss_averaging": "token", "scale_rewards": "group",
 "lr": {"schedule": "constant", "max": 3e-5}, "eval_every": 10, "eval_problems": 200, "checkpoint_every": 10, "seed": 31}
JSON
}

case "$stage" in
data)
  bl tasks --suite "$ARITH3" --count 6000 --as chat --seed 11 --out "$W/sft1_arith.jsonl"
  bl tasks --suite word --count 3000 --as chat --seed 12 --out "$W/sft1_word.jsonl"
  bl tasks --suite countdown --count 1500 --as chat --seed 13 --out "$W/sft1_cd.jsonl"
  cat "$W"/sft1_{arith,word,cd}.jsonl | shuf --random-source=<(yes) > "$W/sft1.jsonl"
  bl tasks --suite "$ARITH" --count 8000 --as chat --seed 21 --out "$W/sft2_arith.jsonl"
  bl tasks --suite word --count 3000 --as chat --seed 22 --out "$W/sft2_word.jsonl"
  cat "$W"/sft2_{arith,word}.jsonl | shuf --random-source=<(yes 2) > "$W/sft2.jsonl"
  bl tasks --suite "$ARITH" --count 12000 --as chat --seed 31 --out "$W/sft3_arith.jsonl"
  bl tasks --suite word --count 4000 --as chat --seed 32 --out "$W/sft3_word.jsonl"
  cat "$W"/sft3_{arith,word}.jsonl | shuf --random-source=<(yes 4) > "$W/sft3.jsonl"
  # The student has its own 1,024-token tokenizer (sequence-level distillation works across tokenizers).
  bl tokenizer train --input "$CORPUS/tokenizer-sample.txt" --vocab-size 1024 --out "$W/tok1k"
  bl data --input "$CORPUS/curated/curated.jsonl" --tokenizer "$W/tok1k" --out "$W/shards-1k" --no-near-dedup \
    --no-exact-dedup --min-chars 1 --min-alpha-ratio 0 --max-symbol-ratio 1000 --max-dup-line-frac 1 \
    --max-top-2gram 1 --max-top-3gram 1 --max-top-4gram 1 --no-progress | tail -3
  ;;
base)
  rm -rf "$W/base" && mkdir -p "$W/base"
  git -C "$ROOT" archive "$BASE_COMMIT" models/default | tar -x -C "$W/base" --strip-components=2
  evaluate "$W/base" base
  ;;
sft)
  sft_recipe "$W/base" sft1.jsonl sft1 256 8 400 1e-3 1e-4 20 7 100 400 > "$W/sft1.json"
  bl sft --config "$W/sft1.json"
  sft_recipe "$(latest "$W/sft1")" sft2.jsonl sft2 256 8 500 6e-4 6e-5 10 8 100 500 > "$W/sft2.json"
  bl sft --config "$W/sft2.json"
  sft_recipe "$(latest "$W/sft2")" sft3.jsonl sft3 256 8 800 5e-4 3e-5 10 10 200 800 > "$W/sft3.json"
  bl sft --config "$W/sft3.json"
  evaluate "$(latest "$W/sft3")" sft
  ;;
grpo)
  grpo_recipe "$(latest "$W/sft3")" "$W/grpo" "${GRPO_STEPS:-150}" > "$W/grpo.json"
  bl grpo --config "$W/grpo.json" | tr '\r' '\n' | grep -E "eval|grpo:" || true
  evaluate "$(latest "$W/grpo")" grpo
  bl plot --metrics "$W/grpo/metrics.jsonl" --y reward,accuracy,eval_accuracy --title "GRPO: reward and accuracy" --out "$W/grpo_reward.svg"
  bl plot --metrics "$W/grpo/metrics.jsonl" --y response_tokens --title "GRPO: response length (tokens)" --out "$W/grpo_length.svg"
  bl plot --metrics "$W/grpo/metrics.jsonl" --y kl,zero_variance_groups,clip_frac --title "GRPO: KL, zero-variance groups, clipping" --out "$W/grpo_kl.svg"
  ;;
student-base)
  python3 - "$ROOT/recipes/experiments/r1-tiny-student.json" "$W" > "$W/student_pretrain.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); w = sys.argv[2]
r["data"] = w + "/shards-1k"; r["out"] = w + "/student-base"
print(json.dumps(r, indent=1))
PY
  THREADS=1 bl train --config "$W/student_pretrain.json" | tr '\r' '\n' | grep -E "val|compute" | tail -3
  evaluate "$(latest "$W/student-base")" student_base
  ;;
student-sft)  # the teacher's three cold-start SFT phases, same data and recipes, on the student
  prev="$(latest "$W/student-base")"
  for i in 1 2 3; do
    python3 -c "import json,sys; r=json.load(open('$W/sft$i.json')); r['model']='$prev'; r['out']='$W/student-sft$i'; print(json.dumps(r))" > "$W/student_sft$i.json"
    THREADS=1 bl sft --config "$W/student_sft$i.json"
    prev="$(latest "$W/student-sft$i")"
  done
  evaluate "$prev" student_sft
  ;;
distill)  # sequence-level: the GRPO teacher's samples, rejection-sampled by the grader, then SFT of the student
  bl distill --teacher "$(latest "$W/grpo")" --suite "$ARITH" --format chat --problems 20000 --k 2 --keep 1 \
    --temperature 0.7 --max-tokens 64 --seed 41 --out "$W/distill.jsonl"
  python3 -c "import json; r=json.load(open('$W/sft3.json')); r.update(model='$(latest "$W/student-sft3")', data='$W/distill.jsonl', out='$W/student-distill', steps=1000, lr={'schedule':'cosine','max':3e-4,'min':3e-5,'warmup_steps':10}, checkpoint_every=250, eval_every=1000, seed=12); print(json.dumps(r))" > "$W/student_distill.json"
  THREADS=1 bl sft --config "$W/student_distill.json"
  evaluate "$(latest "$W/student-distill")" student_distill
  ;;
student-rl)  # the same student trained by RL: GRPO with the teacher's recipe, after the same cold start
  grpo_recipe "$(latest "$W/student-sft3")" "$W/student-rl" "${GRPO_STEPS:-150}" > "$W/student_rl.json"
  THREADS=1 bl grpo --config "$W/student_rl.json" | tr '\r' '\n' | grep -E "eval|grpo:" || true
  evaluate "$(latest "$W/student-rl")" student_rl
  # and by RL alone from the pretrained student (R1-Zero style, no cold start)
  grpo_recipe "$(latest "$W/student-base")" "$W/student-rl-zero" 30 > "$W/student_rl_zero.json"
  THREADS=1 bl grpo --config "$W/student_rl_zero.json" | tr '\r' '\n' | grep -E "eval|grpo:" || true
  ;;
final)  # the embedded default model: the GRPO teacher + SFT on its own rejection-sampled traces and tool-use traces
  bl tasks --suite agent --facts "$CORPUS/raw/debian" --count 6000 --as chat --seed 51 --out "$W/agent.jsonl"
  (cat "$W/agent.jsonl" "$W/distill.jsonl" | head -n 9450; head -3000 "$W/sft3.jsonl"; head -1000 "$W/sft1_cd.jsonl") \
    | shuf --random-source=<(yes 5) > "$W/final_sft.jsonl"
  sft_recipe "$(latest "$W/grpo")" final_sft.jsonl final 1024 4 500 4e-4 3e-5 10 13 100 500 > "$W/final_sft.json"
  bl sft --config "$W/final_sft.json"
  # a second pass on fresh tool-use traces and the next 2,000 of the teacher's traces, at a lower lr
  bl tasks --suite agent --facts "$CORPUS/raw/debian" --count 6000 --as chat --seed 52 --out "$W/agent2.jsonl"
  (cat "$W/agent2.jsonl"; sed -n 3451,5450p "$W/distill.jsonl"; sed -n 3001,4000p "$W/sft3.jsonl"; sed -n 1001,1500p "$W/sft1_cd.jsonl") \
    | shuf --random-source=<(yes 6) > "$W/final2_sft.jsonl"
  sft_recipe "$(latest "$W/final")" final2_sft.jsonl final2 1024 4 600 2e-4 2e-5 10 14 100 600 > "$W/final2_sft.json"
  bl sft --config "$W/final2_sft.json"
  evaluate "$(latest "$W/final2")" final
  bl export --checkpoint "$(latest "$W/final2")" --out "$W/default-model"
  python3 -c "import json; p='$W/default-model/tokenizer_config.json'; c=json.load(open(p)); c['baleine_chat_format']='deepseek-r1'; json.dump(c, open(p,'w'), indent=1)"
  for mode in agent inject; do
    bl eval --model "$W/default-model" --suite facts --facts "$CORPUS/raw/debian" --problems 200 --max-tokens 96 \
      --retrieval --retrieval-mode $mode --chat-format deepseek-r1 --out "$W/eval_grounding_$mode.json" | tail -5
  done
  ;;
copy)  # the model cannot copy a rare word from its context: drills whose loss is all copying, then the tool-use mix
  # the held-out questions' subjects and answers are never drill words
  bl eval --model "$W/default-model" --suite facts --facts "$CORPUS/raw/debian" --problems 200 --max-tokens 8 \
    --chat-format deepseek-r1 --samples-out "$W/facts_heldout.jsonl" --out "$W/facts_heldout.json" > /dev/null
  python3 -c '
import json, re, sys
words = set()
for line in open(sys.argv[1]):
    d = json.loads(line)
    for w in re.findall(r"\"([^\"]+)\"", d["question"]) + re.findall(r"acronym (\S+) stand", d["question"]) + d["aliases"]:
        words.add(w.lower())
json.dump(sorted(words), open(sys.argv[2], "w"))' "$W/facts_heldout.jsonl" "$W/eval_exclude.json"
  D="python3 $ROOT/scripts/experiments/copy_drills.py"
  $D 20000 1 "$W/copy1.jsonl" --exclude "$W/eval_exclude.json" --shares 0.2,0.25,0.3,0.25
  $D 60000 2 "$W/copy2.jsonl" --exclude "$W/eval_exclude.json"
  $D 120000 3 "$W/copy3.jsonl" --exclude "$W/eval_exclude.json"
  $D 4000 7 "$W/copy4.jsonl" --exclude "$W/eval_exclude.json"
  sft_recipe "$(latest "$W/final2")" copy1.jsonl copy1 512 8 200 1e-3 1e-4 10 3 50 200 > "$W/copy1.json"
  bl sft --config "$W/copy1.json"
  # (as run: a 900-step cosine stopped at step 300; steps 1-300 do not depend on the later ones)
  sft_recipe "$W/copy1/checkpoints/step-00000200" copy2.jsonl copy2 512 8 900 1e-3 2e-4 10 4 100 900 > "$W/copy2.json"
  bl sft --config "$W/copy2.json"
  python3 -c "import json; r=json.load(open('$W/copy2.json')); r.update(model='$W/copy2/checkpoints/step-00000300', data='$W/copy3.jsonl', out='$W/copy3', steps=${COPY3_STEPS:-750}, seed=5, checkpoint_every=250, eval_every=${COPY3_STEPS:-750}, lr={'schedule':'constant','max':1e-3,'warmup_steps':1}); print(json.dumps(r))" > "$W/copy3.json"
  bl sft --config "$W/copy3.json"
  bl tasks --suite '{"name":"agent","calculator":0.25,"retrieval":0.5,"unanswerable":0.1,"plain":0.15}' \
    --facts "$CORPUS/raw/debian" --count 5000 --as chat --seed 61 --out "$W/agent4.jsonl"
  (cat "$W/agent4.jsonl" "$W/copy4.jsonl"; tail -n 4000 "$W/distill.jsonl"; tail -n 1500 "$W/sft3.jsonl") \
    | shuf --random-source=<(yes 8) > "$W/final4_sft.jsonl"
  sft_recipe "$(latest "$W/copy3")" final4_sft.jsonl final4 1024 4 "${FINAL4_STEPS:-500}" 5e-4 3e-5 10 16 100 "${FINAL4_STEPS:-500}" > "$W/final4_sft.json"
  bl sft --config "$W/final4_sft.json"
  evaluate "$(latest "$W/final4")" final4
  grounding "$(latest "$W/final4")" grounding4
  grounding "$(latest "$W/final4")" grounding4_gq --grounded-quotes
  # a fourth drills phase from copy3's step 750 (run afterwards, stopped at step 1,000): the copying phase change
  python3 -c "import json; r=json.load(open('$W/copy3.json')); r.update(model='$W/copy3/checkpoints/step-00000750', out='$W/copy3b', steps=1200, seed=6, checkpoint_every=200, eval_every=1200); print(json.dumps(r))" > "$W/copy3b.json"
  bl sft --config "$W/copy3b.json"
  ;;
ground)  # from copy3b's step 1,000 (it has begun to copy): five (FINAL10=1: seven) SFT phases
  # recipe: $1 model, $2 data, $3 out, $4 steps, $5 seed
  phase() { sft_recipe "$1" "$2" "$3" 1024 4 "$4" 3e-4 3e-5 10 "$5" 100 "$4" > "$W/$3_sft.json"; bl sft --config "$W/$3_sft.json"; }
  D="python3 $ROOT/scripts/experiments/copy_drills.py"
  bl tasks --suite agent --facts "$CORPUS/raw/debian" --count 6000 --as chat --seed 53 --out "$W/agent5.jsonl"
  # 5: the tool-use mix (retrieval-heavy) with drills and arithmetic replay
  (cat "$W/agent4.jsonl" "$W/copy4.jsonl"; grep '"kind":"retrieval"' "$W/agent5.jsonl"; tail -n 4000 "$W/distill.jsonl"
   tail -n 1500 "$W/sft3.jsonl") | shuf --random-source=<(yes 9) > "$W/final5_sft.jsonl"
  phase "$W/copy3b/checkpoints/step-00001000" final5_sft.jsonl final5 600 17
  # 6: half the drills are now whole retrieval traces for pseudo-words (copy the query, copy the answer)
  $D 6000 8 "$W/copy5.jsonl" --exclude "$W/eval_exclude.json" --shares 0.1,0.15,0.15,0.1,0.5
  (cat "$W/copy5.jsonl"; grep '"kind":"retrieval"' "$W/agent5.jsonl"
   grep -v '"kind":"retrieval"' "$W/agent5.jsonl" | shuf -n 1500 --random-source=<(yes 3)
   shuf -n 5000 --random-source=<(yes 4) "$W/distill.jsonl"; shuf -n 2000 --random-source=<(yes 5) "$W/sft3.jsonl") \
    | shuf --random-source=<(yes 10) > "$W/final6_sft.jsonl"
  phase "$(latest "$W/final5")" final6_sft.jsonl final6 500 18
  # 7: 70 % of the drills are retrieval traces; calculator traces and more arithmetic replay
  $D 5000 9 "$W/copy6.jsonl" --exclude "$W/eval_exclude.json" --shares 0.05,0.1,0.1,0.05,0.7
  (cat "$W/copy6.jsonl"; grep '"kind":"retrieval"' "$W/agent5.jsonl"; grep '"kind":"calculator"' "$W/agent4.jsonl"
   shuf -n 6000 --random-source=<(yes 11) "$W/distill.jsonl"; shuf -n 2000 --random-source=<(yes 12) "$W/sft3.jsonl") \
    | shuf --random-source=<(yes 13) > "$W/final7_sft.jsonl"
  phase "$(latest "$W/final6")" final7_sft.jsonl final7 500 19
  # 8-10: arithmetic replay first (64 % of the samples), the retrieval drills kept; the same recipe, new draws
  for n in 8 9 ${FINAL10:+10}; do
    r=$(( 14 + 5 * (n - 8) ))  # shuffle seeds: 14-18 for phase 8, 19-23 for 9, 24-28 for 10
    $D 3000 $(( n + 2 )) "$W/copy$(( n - 1 )).jsonl" --exclude "$W/eval_exclude.json" --shares 0.05,0.1,0.1,0.05,0.7
    (cat "$W/copy$(( n - 1 )).jsonl"; grep '"kind":"retrieval"' "$W/agent4.jsonl" | shuf -n 1500 --random-source=<(yes $r)
     grep '"kind":"calculator"' "$W/agent5.jsonl" | shuf -n 500 --random-source=<(yes $(( r + 1 )))
     shuf -n 7000 --random-source=<(yes $(( r + 2 ))) "$W/distill.jsonl"
     shuf -n 2000 --random-source=<(yes $(( r + 3 ))) "$W/sft3.jsonl") | shuf --random-source=<(yes $(( r + 4 ))) > "$W/final${n}_sft.jsonl"
    phase "$(latest "$W/final$(( n - 1 ))")" "final${n}_sft.jsonl" "final$n" 500 $(( n + 12 ))
  done
  if [[ -n "${FINAL10:-}" ]]; then  # 11: plain chat back (phase 10 answered a bare question with citation debris)
    bl tasks --suite agent --facts "$CORPUS/raw/debian" --count 6000 --as chat --seed 54 --out "$W/agent6.jsonl"
    (grep '"kind":"plain"' "$W/agent4.jsonl"; grep '"kind":"plain"' "$W/agent5.jsonl"; grep '"kind":"plain"' "$W/agent6.jsonl"
     grep -v '"kind":"plain"' "$W/agent6.jsonl" | shuf -n 2000 --random-source=<(yes 29)
     shuf -n 1500 --random-source=<(yes 30) "$W/copy9.jsonl"; shuf -n 3000 --random-source=<(yes 31) "$W/distill.jsonl"
     shuf -n 1000 --random-source=<(yes 32) "$W/sft3.jsonl") | shuf --random-source=<(yes 33) > "$W/final11_sft.jsonl"
    sft_recipe "$(latest "$W/final10")" final11_sft.jsonl final11 1024 4 250 2e-4 2e-5 10 23 50 250 > "$W/final11_sft.json"
    bl sft --config "$W/final11_sft.json"
    bl export --checkpoint "$(latest "$W/final11")" --out "$W/default-model-11"
    python3 -c "import json; p='$W/default-model-11/tokenizer_config.json'; c=json.load(open(p)); c['baleine_chat_format']='deepseek-r1'; json.dump(c, open(p,'w'), indent=1)"
  fi
  for n in 5 6 7 8 9 ${FINAL10:+10 11}; do
    GROUNDING_MODES="agent rag inject" grounding "$(latest "$W/final$n")" final$n
    GROUNDING_MODES="agent rag inject" grounding "$(latest "$W/final$n")" final${n}_gq --grounded-quotes
    evaluate "$(latest "$W/final$n")" final$n
  done
  ;;
quotes)  # the shipped weights, as the model card reports them (a 200-question run moves by several points: 600 too)
  for n in 200 600; do
    export GROUNDING_PROBLEMS=$n GROUNDING_MODES="agent rag inject"
    grounding "$ROOT/models/default" default_p$n
    grounding "$ROOT/models/default" default_p${n}_gq --grounded-quotes
    grounding "$ROOT/models/default" default_p${n}_qs --quote-search
  done
  ;;
table)
  python3 "$ROOT/scripts/experiments/r1_tiny_table.py" "$W"
  ;;
*) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
echo "{\"stage\": \"$stage\", \"seconds\": $(( $(date +%s) - t0 )), \"threads\": $THREADS, \"date\": \"$(date -u +%FT%TZ)\"}" >> "$W/times.jsonl"
