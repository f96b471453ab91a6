// rl/common.h — what sft, grpo, eval and distill share: loading a policy (model + tokenizer), rendering chat
// conversations into token ids with a per-token "trained" mask, in-process sampling, and recipe key readers.
// defines: Policy, load_policy, TokenizedSample, tokenize_conversation, parse_messages, Generation, generate,
//          json_line, RecipeReader
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "infer/sampler.h"
#include "models/deepseek.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"

namespace baleine::rl {

// A trainable DeepSeek model loaded from a model directory (config.json, safetensors, tokenizer.json), with
// owned, writable f32 parameters.
struct Policy {
  std::string dir;
  nlohmann::json config;  // config.json, written into every checkpoint
  std::unique_ptr<CausalLM> model;
  DeepSeekModel* ds = nullptr;
  Tokenizer tokenizer;
};
Policy load_policy(const std::string& dir, const std::string& where);

struct TokenizedSample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> trained;  // [tokens] 1: an assistant token (its prediction is trained)
};
std::vector<ChatMessage> parse_messages(const nlohmann::json& j, const std::string& where);
// Renders `messages` with the chat template; every assistant turn's text (content and end-of-turn marker) is
// trained, everything else is context. Templates that rewrite history (DeepSeek-R1 drops earlier reasoning)
// start a new sample at such a turn, so one conversation may give several samples.
std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format,
                                                   const std::vector<ChatMessage>& messages);

struct Generation {
  std::vector<int32_t> tokens;  // the completion (the end-of-sequence token included when it was sampled)
  bool finished = false;        // stopped by end-of-sequence (not by the length limit)
};
// Samples a completion of `prompt` in process (CausalLM::forward with a fresh sequence).
Generation generate(CausalLM& model, const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                    const SamplingParams& sampling, int32_t eos_id);

// One JSON line; invalid UTF-8 in model output (a byte-level model can emit half a character) becomes U+FFFD.
std::string json_line(const nlohmann::json& j);

// Reads recipe keys with range checks; every error names the file and the key; unknown keys are errors.
class RecipeReader {
 public:
  RecipeReader(nlohmann::json j, std::string source, std::vector<std::string> known);
  double number(const std::string& key, double def, double lo, double hi) const;
  int64_t integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) const;
  bool boolean(const std::string& key, bool def) const;
  std::string string(const std::string& key, const std::string& def, bool required = false) const;
  // A path relative to the recipe's directory.
  std::string path(const std::string& key, bool required) const;
  const nlohmann::json& raw() const { return j_; }
  const std::string& source() const { return source_; }
  // "lr": {"schedule", "max", "min", "warmup_steps", "decay_fraction"}; "adamw": {...}.
  train::LrSchedule lr(int64_t total_steps, double default_lr) const;
  train::AdamWConfig adamw() const;

 private:
  nlohmann::json j_;
  std::string source_;
};

}  // namespace baleine::rl
