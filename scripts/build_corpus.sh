#!/usr/bin/env bash
# scripts/build_corpus.sh — build baleine's default pretraining corpus end to end:
#   1. install the Debian packages whose text it uses (apt; skipped when already installed),
#   2. extract their text to JSONL (scripts/corpus/extract.py),
#   3. generate synthetic reasoning text (baleine data gen-arithmetic / gen-countdown),
#   4. curate once (baleine data --write-text) and train a byte-level BPE tokenizer on a sample of it,
#   5. curate + tokenize + pack into shards (baleine data --tokenizer), verify the shards, check the report.
# Sources, licences and measured sizes: docs/data.md.
#
# Usage: scripts/build_corpus.sh [--subset] [--out DIR] [--baleine PATH] [--vocab-size N]
#                                [--tokenizer-sample-mb N] [--no-install] [--no-tokenize]
#   --subset   a few small packages + a little synthetic text: runs end to end in about a minute (CI)
#   --out      output directory (default out/corpus or out/corpus-subset; never commit it)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS_DIR="$ROOT/scripts/corpus"

subset=0; out=""; baleine=""; vocab=""; sample_mb=""; install=1; tokenize=1
while (( $# )); do
  case "$1" in
    --subset) subset=1 ;;
    --out) out="$2"; shift ;;
    --baleine) baleine="$2"; shift ;;
    --vocab-size) vocab="$2"; shift ;;
    --tokenizer-sample-mb) sample_mb="$2"; shift ;;
    --no-install) install=0 ;;
    --no-tokenize) tokenize=0 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "[corpus] error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if (( subset )); then
  SOURCES=(jargon fortunes-min maint-guide-fr developers-reference-fr)
  MAX_DOCS=60; ARITH=1500; COUNTDOWN=1000; MIN_KEPT_MB=1
  : "${vocab:=1024}"; : "${sample_mb:=2}"; : "${out:=$ROOT/out/corpus-subset}"
else
  SOURCES=(gcide jargon foldoc wordnet fortunes python-docs perl-docs git-docs sqlite-docs postgresql-docs
           debian-handbook-en debian-handbook-fr debian-reference-en debian-reference-fr debian-faq-fr
           maint-guide-fr developers-reference-fr manpages-fr)
  MAX_DOCS=0; ARITH=15000; COUNTDOWN=12000; MIN_KEPT_MB=50
  : "${vocab:=32000}"; : "${sample_mb:=24}"; : "${out:=$ROOT/out/corpus}"
fi
if [[ -z "$baleine" ]]; then
  for b in "$ROOT/build/apps/baleine/baleine" "$ROOT/build-data/apps/baleine/baleine"; do
    [[ -x "$b" ]] && { baleine="$b"; break; }
  done
fi
[[ -n "$baleine" && -x "$baleine" ]] || {
  echo "[corpus] error: no baleine executable; build it (cmake --build build --target baleine) or pass --baleine" >&2; exit 1; }
mkdir -p "$out"
start=$(date +%s)
log() { echo "[corpus] $(( $(date +%s) - start ))s: $*"; }

# ---- 1. Debian packages -------------------------------------------------------------------------------
command -v python3 >/dev/null || { echo "[corpus] error: python3 is required (apt-get install python3)" >&2; exit 1; }
declare -A PKG
while read -r name pkg _; do PKG[$name]=$pkg; done < <(python3 "$CORPUS_DIR/extract.py" --list)
packages=()
for s in "${SOURCES[@]}"; do packages+=("${PKG[$s]}"); done
[[ " ${SOURCES[*]} " == *" manpages-fr "* ]] && packages+=(groff-base)
[[ " ${SOURCES[*]} " == *" perl-docs "* ]] && packages+=(perl)
missing=()
for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if (( ! install )); then echo "[corpus] error: missing packages (--no-install): ${missing[*]}" >&2; exit 1; fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || { echo "[corpus] error: apt-get update failed" >&2; exit 1; }
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > "$out/apt.log" 2>&1; then
    echo "[corpus] error: could not install ${missing[*]} (see $out/apt.log)" >&2; tail -5 "$out/apt.log" >&2; exit 1
  fi
fi

# ---- 2. text extraction -------------------------------------------------------------------------------
rm -rf "$out/raw"
mkdir -p "$out/raw"
log "extracting ${#SOURCES[@]} sources"
python3 "$CORPUS_DIR/extract.py" --out "$out/raw/debian" --max-docs "$MAX_DOCS" "${SOURCES[@]}"

# ---- 3. synthetic reasoning text ----------------------------------------------------------------------
log "generating synthetic arithmetic ($ARITH) and countdown ($COUNTDOWN) documents"
"$baleine" data gen-arithmetic --count "$ARITH" --seed 1 --out "$out/raw/synthetic/arithmetic.jsonl"
"$baleine" data gen-countdown --count "$COUNTDOWN" --seed 2 --out "$out/raw/synthetic/countdown.jsonl"

if (( ! tokenize )); then
  log "curating (no tokenizer)"
  "$baleine" data --input "$out/raw" --out "$out/curated" --write-text
  python3 "$CORPUS_DIR/check_report.py" "$out/curated" --min-kept-mb "$MIN_KEPT_MB"
  log "done: $out/curated"
  exit 0
fi

# ---- 4. tokenizer trained on a sample of the curated text ---------------------------------------------
"$baleine" tokenizer --help >/dev/null 2>&1 || {
  echo "[corpus] error: this baleine has no 'tokenizer' command (built without src/tokenizer); use --no-tokenize" >&2; exit 1; }
log "curation pass for the tokenizer sample"
"$baleine" data --input "$out/raw" --out "$out/curated" --write-text --no-progress > "$out/curated.log"
python3 "$CORPUS_DIR/sample_text.py" "$out/curated/curated.jsonl" "$out/tokenizer-sample.txt" --mb "$sample_mb"
log "training tokenizer (vocab $vocab)"
rm -rf "$out/tokenizer"
"$baleine" tokenizer train --input "$out/tokenizer-sample.txt" --vocab-size "$vocab" --out "$out/tokenizer"

# ---- 5. curate + tokenize + pack ----------------------------------------------------------------------
log "curating, tokenizing and packing"
"$baleine" data --input "$out/raw" --tokenizer "$out/tokenizer" --out "$out/shards" | tee "$out/report.txt"
"$baleine" data verify "$out/shards"
python3 "$CORPUS_DIR/check_report.py" "$out/shards" --min-kept-mb "$MIN_KEPT_MB" --expect-tokens
log "done: shards in $out/shards, report $out/shards/report.json"
