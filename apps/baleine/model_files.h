// apps/baleine/model_files.h — what the subcommands share about model paths: a Hugging Face directory
// (config.json + safetensors + tokenizer.json) or a single .gguf file carrying its tokenizer.
// defines: load_tokenizer_for, gguf_vocab, gguf_vocab_metadata, model_config_for, chat_format_of_model
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "models/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace baleine::app {

// The tokenizer of a model directory (tokenizer.json) or a GGUF file (tokenizer.ggml.*); errors say what is missing.
Tokenizer load_tokenizer_for(const std::string& model_path);
// Config of a directory or a GGUF file, without loading weights.
ModelConfig model_config_for(const std::string& model_path);

// The chat format a model names, or nullopt (the caller then guesses from the tokenizer): first the format written
// for it (tokenizer_config.json's "baleine_chat_format" in tokenizer_dir, or a GGUF file's "baleine.chat_format"
// key), then the model type, for the models whose template no token betrays: DeepSeek-V3.2 (config.json
// model_type "deepseek_v32" or architecture DeepseekV32ForCausalLM; GGUF general.architecture "deepseek32") and V4
// ("deepseek_v4" / DeepseekV4ForCausalLM; "deepseek4"). Read here, from the files, so it needs no model loaded.
std::optional<ChatFormat> chat_format_of_model(const std::string& model_path, const std::string& tokenizer_dir);

// tokenizer.ggml.* of a GGUF file (throws naming the file when there is none).
TokenizerVocab gguf_vocab(const io::GgufFile& f);
// The tokenizer.ggml.* / tokenizer.chat_template keys for `v`.
std::vector<std::pair<std::string, io::GgufValue>> gguf_vocab_metadata(const TokenizerVocab& v);

}  // namespace baleine::app
