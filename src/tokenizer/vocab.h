// tokenizer/vocab.h — a byte-level BPE tokenizer as flat lists (what GGUF's tokenizer.ggml.* keys hold), and the
// conversions to and from Hugging Face tokenizer.json / tokenizer_config.json.
// defines: TokenType, TokenizerVocab, vocab_from_tokenizer_files, vocab_from_tokenizer_json, tokenizer_json_from_vocab,
//          tokenizer_from_vocab, known_pre_tokenizers
//
// The pre-tokenizer is named as llama.cpp names it (tokenizer.ggml.pre): "deepseek-v3" (the three DeepSeek-V3
// splits, also what `baleine tokenizer train` writes), "qwen2" (NFC + Qwen2's split), "llama-bpe" (Llama 3's split,
// ignore_merges). The regexes for each name are the ones in the HF tokenizer.json of those models.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace baleine {

// llama.cpp's llama_token_type values (tokenizer.ggml.token_type).
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct TokenizerVocab {
  std::string model = "gpt2";             // tokenizer.ggml.model
  std::string pre;                        // tokenizer.ggml.pre
  std::vector<std::string> tokens;        // by id
  std::vector<int32_t> token_types;       // TokenType per id
  std::vector<std::string> merges;        // "a b", by rank
  int32_t bos = -1, eos = -1, pad = -1;
  bool add_bos = false, add_eos = false;
  std::string chat_template;
};

const std::vector<std::string>& known_pre_tokenizers();

// From a directory holding tokenizer.json (+ tokenizer_config.json). Throws for pre-tokenizers llama.cpp has no
// name for. `pad_to`: pad the token list with "[PAD{id}]" (Unused) up to this many ids (the embedding rows).
TokenizerVocab vocab_from_tokenizer_files(const std::string& dir, int64_t pad_to = 0);
TokenizerVocab vocab_from_tokenizer_json(const std::string& tokenizer_json, const std::string& config_json,
                                         const std::string& source, int64_t pad_to = 0);
// The equivalent tokenizer.json and tokenizer_config.json texts.
void tokenizer_json_from_vocab(const TokenizerVocab& v, std::string& tokenizer_json, std::string& config_json,
                               const std::string& source);
Tokenizer tokenizer_from_vocab(const TokenizerVocab& v, const std::string& source);

}  // namespace baleine
