// apps/baleine/model_files.h — what the subcommands share about model paths: a Hugging Face directory
// (config.json + safetensors + tokenizer.json) or a single .gguf file carrying its tokenizer.
// defines: load_tokenizer_for, gguf_vocab, gguf_vocab_metadata, model_config_for
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "models/config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace baleine::app {

// The tokenizer of a model directory (tokenizer.json) or a GGUF file (tokenizer.ggml.*); errors say what is missing.
Tokenizer load_tokenizer_for(const std::string& model_path);
// Config of a directory or a GGUF file, without loading weights.
ModelConfig model_config_for(const std::string& model_path);

// tokenizer.ggml.* of a GGUF file (throws naming the file when there is none).
TokenizerVocab gguf_vocab(const io::GgufFile& f);
// The tokenizer.ggml.* / tokenizer.chat_template keys for `v`.
std::vector<std::pair<std::string, io::GgufValue>> gguf_vocab_metadata(const TokenizerVocab& v);

}  // namespace baleine::app
