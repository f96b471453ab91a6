// rl/common.h — what sft, grpo, eval and distill share: loading a policy (model + tokenizer), rendering chat
// conversations into token ids with a per-token "trained" mask, in-process sampling, and recipe key readers.
// defines: Policy, load_policy, TokenizedSample, Conversation, parse_conversation, parse_messages,
//          tokenize_conversation, Generation, generate,
//          json_line, RecipeReader
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/tools.h"
#include "infer/sampler.h"
#include "models/deepseek.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"

namespace baleine::rl {

// A trainable model (DeepSeek V2/V3, or a dense qwen2 / llama) loaded from a model directory (config.json,
// safetensors, tokenizer.json), with owned, writable f32 parameters.
struct Policy {
  std::string dir;
  nlohmann::json config;  // config.json, written into every checkpoint
  std::unique_ptr<CausalLM> model;
  Tokenizer tokenizer;
};
Policy load_policy(const std::string& dir, const std::string& where);

struct TokenizedSample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> trained;  // [tokens] 1: an assistant token (its prediction is trained)
};
// One SFT conversation in the OpenAI chat shape: {"messages": [...], "tools": [...]?, "tool_choice": ...?}.
// Messages: system/developer, user, assistant (content string or null, optional "reasoning_content", optional
// "tool_calls": [{id, type: "function", function: {name, arguments}}]), tool (content, tool_call_id ignored:
// the DeepSeek template is positional). Parsed with the server's own parsers (agent::chat_messages_from_openai,
// agent::parse_tools, agent::parse_tool_choice).
struct Conversation {
  std::vector<ChatMessage> messages;   // content without reasoning: what the history shows the model
  std::vector<std::string> reasoning;  // [messages] the assistant's reasoning_content ("" when none)
  std::vector<agent::ToolFunction> tools;
  agent::ToolChoice tool_choice;       // auto when tools are given
};
Conversation parse_conversation(const nlohmann::json& j, const std::string& where);
std::vector<ChatMessage> parse_messages(const nlohmann::json& j, const std::string& where);  // .messages of the above
// Renders the conversation as `baleine serve` does: each assistant turn's prompt is exactly the agent loop's
// (agent::agent_turn_prompt: the tools in the system prompt, the chat template), and the turn's text is what the
// model must generate there for the server's parser to read back the same reasoning, content and tool calls:
// "<think>\n{reasoning}\n</think>\n\n" (R1: without the "<think>\n" the generation prompt holds), the content,
// the DeepSeek tool-call block, the end-of-sentence marker (R1: a turn without reasoning gets an empty block
// unless its content holds its own "</think>"). That text is trained; prompts, tool outputs and user
// turns are context. A turn whose prompt does not extend the previous text (DeepSeek-R1 drops earlier reasoning;
// a tool-calling turn's reasoning is dropped from history) starts a new sample, so one conversation may give several.
std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format, const Conversation& conv);
std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format,
                                                   const std::vector<ChatMessage>& messages);
// The text of every sample of tokenize_conversation, split into (prompt or context, trained) pieces in order.
struct RenderedPiece {
  std::string text;
  bool trained = false;
};
std::vector<std::vector<RenderedPiece>> render_conversation(ChatFormat format, const Conversation& conv);

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
