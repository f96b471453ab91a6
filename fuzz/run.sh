#!/usr/bin/env bash
# fuzz/run.sh [--seconds N] [--jobs J] [TARGET...] — builds the libFuzzer targets (clang, ASan + UBSan, in
# build-fuzz/) and fuzzes each for N seconds (default 7: ./test runs every target for about a minute in all),
# starting from the committed seeds (fuzz/corpus/<target>) and first replaying every regression input
# (fuzz/regressions/<target>/*: inputs that once crashed). New interesting inputs go to build-fuzz/corpus/<target>
# (not committed); a crash leaves its reproducer in build-fuzz/artifacts/<target>/ and fails the run.
# The seed is fixed (FUZZ_SEED, default 1) so that a short run explores the same inputs first on every machine.
# Longer campaigns: FUZZ_SEED=$RANDOM fuzz/run.sh --seconds 3600 gguf (one CPU-hour for the GGUF reader).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=7
JOBS=1
TARGETS=()
while (( $# )); do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
ALL=(gguf safetensors torch_checkpoint png image tokenizer_json tokenizer requests json_schema chat_template data_filters)
(( ${#TARGETS[@]} )) || TARGETS=("${ALL[@]}")
CXX=$(command -v clang++-14 || command -v clang++ || true)
[[ -n "$CXX" ]] || { echo "fuzz: clang is not installed (scripts/setup.sh installs clang-14)" >&2; exit 1; }
CC=${CXX/clang++/clang}
B=build-fuzz
if [[ ! -f $B/build.ninja ]]; then
  CC=$CC CXX=$CXX cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALEINE_FUZZ=ON >/dev/null
fi
cmake --build $B -j"$(nproc)" >/dev/null || cmake --build $B -j1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for t in "${TARGETS[@]}"; do
  bin=$B/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz: no target '$t' (known: ${ALL[*]})" >&2; exit 2; }
  mkdir -p $B/corpus/$t $B/artifacts/$t
  dict=()
  case $t in requests|json_schema|tokenizer_json|safetensors) dict=(-dict=fuzz/json.dict) ;; esac
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    if ! $bin -runs=0 fuzz/regressions/$t/* >$B/artifacts/$t/regressions.log 2>&1; then
      echo "fuzz $t: a regression input crashes again (see $B/artifacts/$t/regressions.log)"; status=1; continue
    fi
  fi
  log=$B/artifacts/$t/fuzz.log
  par=()
  (( JOBS > 1 )) && par=(-jobs="$JOBS" -workers="$JOBS")  # parallel jobs log to fuzz-N.log in the current folder
  if (cd $B/artifacts/$t && "$OLDPWD/$bin" "${dict[@]/#-dict=/-dict=$OLDPWD/}" -seed="${FUZZ_SEED:-1}" -max_total_time="$SECONDS_EACH" \
       -timeout=10 -rss_limit_mb=2048 -max_len=65536 "${par[@]}" -artifact_prefix=./ -print_final_stats=1 \
       "$OLDPWD/$B/corpus/$t" "$OLDPWD/fuzz/corpus/$t") >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | awk '{s+=$1} END {print s+0}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    echo "fuzz $t: ok, ${runs:-?} inputs in ${SECONDS_EACH} s, coverage ${cov:-?} edges"
  else
    echo "fuzz $t: FAILED (reproducer and log in $B/artifacts/$t/)"; grep -m3 -E "ERROR|SUMMARY|runtime error" "$log" || true
    status=1
  fi
done
exit $status
