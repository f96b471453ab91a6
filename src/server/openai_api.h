// server/openai_api.h — the OpenAI / DeepSeek wire format: request bodies parsed and validated into typed tasks
// (HTTP threads only; nothing here touches the model), response and error bodies, usage with cost.
// defines: ApiError, Prices, PriceTable, ModelRoute, make_routes, model_capabilities, reasoning_budget, ChatTask,
//          CompletionTask, parse_json_body, parse_chat_request, parse_completion_request, error_body, usage_json,
//          UsageCount
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/grammar.h"
#include "agent/tools.h"
#include "infer/engine.h"
#include "tokenizer/chat_template.h"

namespace baleine::server {

using nlohmann::json;

// Any failure answered to a client: HTTP status + OpenAI error object.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
  int retry_after = 0;  // seconds, for 429 / 503
};

// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);
// json::dump that never throws on invalid UTF-8 from a model (bytes replaced by U+FFFD).
std::string dump(const json& j);
// Standard base64 with padding (embeddings' base64 vectors, generated PNGs).
std::string base64(const void* data, size_t n);
// Strict standard base64 (padding required, no whitespace); nullopt when malformed.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view s);

// USD per million tokens.
struct Prices {
  double input_cache_hit = 0, input_cache_miss = 0, output = 0;
};
// Model name -> prices; DeepSeek's prices at the R1 launch by default (deepseek.md §7).
struct PriceTable {
  PriceTable();
  // {"deepseek-chat": {"input_cache_hit": 0.07, "input_cache_miss": 0.27, "output": 1.10}, ...}
  static PriceTable from_json(const json& j);
  const Prices& get(const std::string& model) const;
  std::map<std::string, Prices> table;
};

// A name a client may ask for and how it is served.
struct ModelRoute {
  std::string id;            // what clients send and what responses echo
  ChatFormat format;         // chat template
  ThinkingSupport thinking = ThinkingSupport::Never;  // R1: always; V3.1 hybrid: per request; others: never
  bool thinking_default = false;                       // hybrid: whether a request without `thinking` thinks
};

// The names a server answers to, all served by the one loaded model: its own id, then deepseek-chat,
// deepseek-reasoner, deepseek-flash and deepseek-v4-pro (DeepSeek's current names and the retired ones clients
// still send). An R1 model thinks under every name; a hybrid (V3.1) one switches per request, deepseek-chat off by
// default and every other name on; a model without reasoning ignores thinking, except that deepseek-reasoner
// keeps serving it through the R1 template (its reasoning is split off, as before these names existed).
std::vector<ModelRoute> make_routes(const std::string& model_id, ChatFormat format);
// {"reasoning": bool, "thinking": "always" | "toggle" | "never", "thinking_default": bool, "chat_format": name}
json model_capabilities(const ModelRoute& r);
// Reasoning tokens allowed before </think> is forced, for a reasoning_effort ("low" | "high" | "max") and the
// request's token budget: low a quarter, high three quarters, max all of it (the answer gets the rest).
int64_t reasoning_budget(const std::string& effort, int64_t max_tokens);

struct UsageCount {
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  UsageCount& operator+=(const UsageCount& o);
};
// OpenAI/DeepSeek usage object plus "cost_usd".
json usage_json(const UsageCount& u, const Prices& p);
double cost_usd(const UsageCount& u, const Prices& p);

struct Limits {
  int64_t context = 4096;         // the engine's per-sequence limit
  int64_t default_max_tokens = 4096;
  int max_n = 8;
  size_t max_stop = 16;            // OpenAI allows 4; lm-evaluation-harness may send more
  int64_t vocab_size = 0;          // logit_bias ids must lie in [0, vocab_size) (0: unknown, no ids accepted)
};

struct ChatTask {
  const ModelRoute* route = nullptr;
  std::vector<ChatMessage> messages;
  // Resolved thinking mode: the route's capability, then the request's `thinking` where the model can toggle.
  bool thinking = false;
  std::string reasoning_effort = "high";  // low | high | max, after DeepSeek's mapping (minimal→low, ultra→max, ...)
  int64_t reasoning_budget_tokens = 0;    // > 0: an explicit reasoning budget (Anthropic's thinking.budget_tokens)
  bool stream = false, include_usage = false;
  int n = 1;
  bool json_mode = false;
  // response_format json_object / json_schema: the grammar the output must match (compiled on the HTTP thread).
  std::shared_ptr<const agent::Grammar> response_grammar;
  // Function calling: validated definitions (hostile ones refused with 400), tool_choice, parallel_tool_calls.
  std::vector<agent::ToolFunction> tools;
  agent::ToolChoice tool_choice{agent::ToolChoiceMode::None, ""};
  bool parallel_tool_calls = true;
  bool max_tokens_given = false;
  bool prefix = false;            // chat prefix completion: the last (assistant) message is continued
  GenerationParams params;        // prompt and constraint are filled later (tokenizer / engine side)
  std::string conversation_id;    // web chat: persist the answer into this conversation (extension)
  std::string user;
};

struct CompletionTask {
  const ModelRoute* route = nullptr;
  std::vector<std::string> text_prompts;            // either text prompts...
  std::vector<std::vector<int32_t>> token_prompts;  // ...or token-id prompts
  std::string suffix;
  bool has_suffix = false;
  bool echo = false, stream = false, include_usage = false;
  int n = 1;
  int logprobs = -1;               // -1: none; k: the chosen token and the k most likely
  bool max_tokens_given = false;
  bool zero_max_tokens = false;    // max_tokens 0 (with echo: score the prompt only)
  GenerationParams params;
};

// Parses a request body: size cap, nesting cap, syntax, UTF-8; 400/413 on failure. Must be an object.
json parse_json_body(const std::string& body, size_t max_bytes, int max_depth = 64);
ChatTask parse_chat_request(const json& body, const std::vector<ModelRoute>& routes, const Limits& limits);
CompletionTask parse_completion_request(const json& body, const std::vector<ModelRoute>& routes, const Limits& limits);

}  // namespace baleine::server
