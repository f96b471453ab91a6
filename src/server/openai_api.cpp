#include "server/openai_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace baleine::server {

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, "invalid_request_error", param); }

// Field readers: each names the field in its error. A missing or null field leaves the default.
const json* field(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

bool read_bool(const json& o, const char* name, bool def) {
  const json* v = field(o, name);
  if (!v) return def;
  if (!v->is_boolean()) throw bad(name, fmt::format("'{}' must be a boolean", name));
  return v->get<bool>();
}

double read_number(const json& o, const char* name, double def, double lo, double hi) {
  const json* v = field(o, name);
  if (!v) return def;
  if (!v->is_number()) throw bad(name, fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) throw bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

int64_t read_int(const json& o, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const json* v = field(o, name);
  if (!v) return def;
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      const auto x = int64_t(d);
      if (x < lo || x > hi) throw bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
      return x;
    }
    throw bad(name, fmt::format("'{}' must be an integer", name));
  }
  if (!v->is_number_integer()) throw bad(name, fmt::format("'{}' must be an integer", name));
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw bad(name, fmt::format("'{}' is too large", name));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) throw bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

const ModelRoute& find_route(const json& body, const std::vector<ModelRoute>& routes) {
  const json* m = field(body, "model");
  if (!m) throw bad("model", "'model' is required");
  if (!m->is_string()) throw bad("model", "'model' must be a string");
  const std::string name = m->get<std::string>();
  for (const auto& r : routes)
    if (r.id == name) return r;
  std::string known;
  for (const auto& r : routes) known += (known.empty() ? "" : ", ") + r.id;
  ApiError e(404, fmt::format("The model '{}' does not exist (served: {})", name.substr(0, 200), known),
             "invalid_request_error", "model", "model_not_found");
  throw e;
}

// Sampling fields shared by both endpoints.
void read_sampling(const json& b, GenerationParams& p, const Limits& limits) {
  p.sampling.temperature = float(read_number(b, "temperature", 1.0, 0.0, 2.0));
  p.sampling.top_p = float(read_number(b, "top_p", 1.0, 0.0, 1.0));
  if (p.sampling.top_p <= 0.0f) throw bad("top_p", "'top_p' must be greater than 0");
  p.sampling.presence_penalty = float(read_number(b, "presence_penalty", 0.0, -2.0, 2.0));
  p.sampling.frequency_penalty = float(read_number(b, "frequency_penalty", 0.0, -2.0, 2.0));
  p.sampling.top_k = read_int(b, "top_k", 0, 0, 1 << 20);  // extension, as in vLLM / llama.cpp
  p.sampling.min_p = float(read_number(b, "min_p", 0.0, 0.0, 1.0));
  p.ignore_eos = read_bool(b, "ignore_eos", false);  // extension, as in vLLM: run to max_tokens (benchmarks)
  if (const json* s = field(b, "seed")) {
    if (!s->is_number_integer()) throw bad("seed", "'seed' must be an integer");
    p.sampling.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
  } else {
    p.sampling.seed = std::random_device{}();
  }
  if (const json* lb = field(b, "logit_bias")) {
    // {"token id": bias}: ids as decimal strings (JSON object keys), biases in [-100, 100] (OpenAI's contract).
    if (!lb->is_object()) throw bad("logit_bias", "'logit_bias' must be an object mapping token ids (strings) to numbers");
    if (lb->size() > 1024) throw bad("logit_bias", "'logit_bias' holds at most 1024 entries");
    for (const auto& [key, v] : lb->items()) {
      int64_t id = -1;
      const bool digits = !key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos;
      if (digits) id = std::stoll(key);
      if (!digits || id >= limits.vocab_size)
        throw bad("logit_bias", fmt::format("logit_bias key '{}' is not a token id of this model's vocabulary [0, {})",
                                            key.substr(0, 32), limits.vocab_size));
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < -100 || v.get<double>() > 100)
        throw bad("logit_bias", fmt::format("logit_bias['{}'] must be a number in [-100, 100]", key));
      p.sampling.logit_bias.emplace_back(int32_t(id), float(v.get<double>()));
    }
  }
  if (const json* s = field(b, "stop")) {
    std::vector<std::string> stops;
    if (s->is_string()) stops.push_back(s->get<std::string>());
    else if (s->is_array()) {
      if (s->size() > limits.max_stop) throw bad("stop", fmt::format("'stop' holds at most {} strings", limits.max_stop));
      for (const auto& x : *s) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
        stops.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : stops) {
      if (x.empty()) throw bad("stop", "stop strings must not be empty");
      if (x.size() > 256) throw bad("stop", "stop strings are limited to 256 bytes");
    }
    p.stop_strings = std::move(stops);
  }
}

void read_stream(const json& b, bool& stream, bool& include_usage) {
  stream = read_bool(b, "stream", false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    include_usage = read_bool(*so, "include_usage", false);
  }
}

std::string message_content(const json& m, size_t index, bool& has_content) {
  const json* c = field(m, "content");
  has_content = c != nullptr;
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (c->is_array()) {  // content parts: only text parts are understood
    std::string out;
    for (size_t j = 0; j < c->size(); ++j) {
      const json& part = (*c)[j];
      const std::string where = fmt::format("messages[{}].content[{}]", index, j);
      if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
        throw bad(where, where + " must be an object with a string 'type'");
      const std::string type = part["type"].get<std::string>();
      // Images are refused, never dropped: an answer that silently ignored the picture would look like a reply to it.
      if (type == "image_url" || type == "input_image" || type == "image")
        throw bad(where, fmt::format("{} is an image ('{}'), but this model has no vision: it reads text only; "
                                     "send the content as text parts", where, type));
      if (type != "text")
        throw bad(where, fmt::format("{}: content part type '{}' is not supported (text only)", where, type.substr(0, 64)));
      if (!part.contains("text") || !part["text"].is_string()) throw bad(where, where + ": a text part needs a string 'text'");
      out += part["text"].get<std::string>();
    }
    return out;
  }
  throw bad(fmt::format("messages[{}].content", index), "'content' must be a string or an array of content parts");
}

// thinking: {"type": "enabled" | "disabled"} (DeepSeek; OpenAI SDK users pass it in extra_body). Resolved against
// what the route can do: an R1 route always thinks, a non-reasoning one never does, a hybrid one follows the
// request, else its default.
bool read_thinking(const json& b, const ModelRoute& route) {
  std::optional<bool> asked;
  if (const json* th = field(b, "thinking")) {
    if (!th->is_object()) throw bad("thinking", "'thinking' must be an object: {\"type\": \"enabled\" | \"disabled\"}");
    for (const auto& [k, v] : th->items())
      if (k != "type") throw bad("thinking", fmt::format("'thinking' has an unknown field '{}' (only 'type')", k.substr(0, 64)));
    const json* type = field(*th, "type");
    if (!type || !type->is_string() || (*type != "enabled" && *type != "disabled"))
      throw bad("thinking", "'thinking.type' must be \"enabled\" or \"disabled\"");
    asked = *type == "enabled";
  }
  switch (route.thinking) {
    case ThinkingSupport::Always: return true;
    case ThinkingSupport::Never: return false;
    case ThinkingSupport::Toggle: return asked.value_or(route.thinking_default);
  }
  return false;
}

// reasoning_effort, mapped as DeepSeek maps OpenAI's names onto its three levels.
std::string read_effort(const json& b) {
  const json* e = field(b, "reasoning_effort");
  if (!e) return "high";
  static const std::map<std::string, std::string> kMap = {{"minimal", "low"}, {"low", "low"},   {"medium", "high"},
                                                          {"high", "high"},   {"xhigh", "high"}, {"max", "max"},
                                                          {"ultra", "max"}};
  if (e->is_string())
    if (auto it = kMap.find(e->get<std::string>()); it != kMap.end()) return it->second;
  throw bad("reasoning_effort", "'reasoning_effort' must be one of low, high, max (or minimal, medium, xhigh, ultra)");
}

}  // namespace

std::string base64(const void* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = uint32_t(p[i]) << 16 | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) | (i + 2 < n ? uint32_t(p[i + 2]) : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

std::optional<std::vector<uint8_t>> base64_decode(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    const int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=') : 0;
    int v[4];
    for (int k = 0; k < 4 - pad; ++k)
      if ((v[k] = value(s[i + size_t(k)])) < 0) return std::nullopt;
    for (int k = 4 - pad; k < 4; ++k) v[k] = 0;
    const uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(uint8_t(w >> 16));
    if (pad < 2) out.push_back(uint8_t(w >> 8));
    if (pad < 1) out.push_back(uint8_t(w));
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}, {"param", e.param.empty() ? json() : json(e.param)},
              {"code", e.code.empty() ? json() : json(e.code)}};
  return dump(json{{"error", err}});
}

PriceTable::PriceTable() {
  table["deepseek-chat"] = {0.07, 0.27, 1.10};
  table["deepseek-reasoner"] = {0.14, 0.55, 2.19};
}

std::vector<ModelRoute> make_routes(const std::string& model_id, ChatFormat format) {
  const ThinkingSupport support = thinking_support(format);
  std::vector<ModelRoute> routes;
  for (const std::string& name : {model_id, std::string("deepseek-chat"), std::string("deepseek-reasoner"),
                                 std::string("deepseek-flash"), std::string("deepseek-v4-pro")}) {
    bool dup = false;
    for (const auto& r : routes) dup = dup || r.id == name;
    if (dup) continue;
    ModelRoute r{name, format, support, support == ThinkingSupport::Always};
    if (support == ThinkingSupport::Toggle) r.thinking_default = name != "deepseek-chat";
    // deepseek-reasoner on a model without a thinking template: the R1 template, as this server always served it.
    if (support == ThinkingSupport::Never && name == "deepseek-reasoner" && name != model_id)
      r = {name, ChatFormat::DeepSeekR1, ThinkingSupport::Always, true};
    routes.push_back(std::move(r));
  }
  return routes;
}

json model_capabilities(const ModelRoute& r) {
  const char* mode = r.thinking == ThinkingSupport::Always ? "always" : r.thinking == ThinkingSupport::Toggle ? "toggle" : "never";
  return {{"reasoning", r.thinking != ThinkingSupport::Never}, {"thinking", mode}, {"thinking_default", r.thinking_default},
          {"chat_format", chat_format_name(r.format)}, {"vision", false}};
}

int64_t reasoning_budget(const std::string& effort, int64_t max_tokens) {
  if (effort == "low") return std::max<int64_t>(1, max_tokens / 4);
  if (effort == "high") return std::max<int64_t>(1, max_tokens * 3 / 4);
  return max_tokens;
}

PriceTable PriceTable::from_json(const json& j) {
  PriceTable t;
  BALEINE_CHECK(j.is_object(), "price table: expected an object of model -> prices");
  for (auto& item : j.items()) {
    const std::string name = item.key();  // not structured bindings: clang 14 cannot capture those in lambdas
    const json& v = item.value();
    BALEINE_CHECK(v.is_object(), "price table: '{}' must be an object", name);
    Prices p;
    auto num = [&](const char* k) {
      BALEINE_CHECK(v.contains(k) && v[k].is_number() && v[k].get<double>() >= 0, "price table: '{}.{}' must be a non-negative number", name, k);
      return v[k].get<double>();
    };
    p.input_cache_hit = num("input_cache_hit");
    p.input_cache_miss = num("input_cache_miss");
    p.output = num("output");
    t.table[name] = p;
  }
  return t;
}

const Prices& PriceTable::get(const std::string& model) const {
  auto it = table.find(model);
  if (it != table.end()) return it->second;
  auto chat = table.find("deepseek-chat");
  static const Prices zero;
  return chat != table.end() ? chat->second : zero;
}

UsageCount& UsageCount::operator+=(const UsageCount& o) {
  prompt_tokens += o.prompt_tokens;
  cached_tokens += o.cached_tokens;
  completion_tokens += o.completion_tokens;
  reasoning_tokens += o.reasoning_tokens;
  return *this;
}

double cost_usd(const UsageCount& u, const Prices& p) {
  return (double(u.cached_tokens) * p.input_cache_hit + double(u.prompt_tokens - u.cached_tokens) * p.input_cache_miss +
          double(u.completion_tokens) * p.output) / 1e6;
}

json usage_json(const UsageCount& u, const Prices& p) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"prompt_cache_hit_tokens", u.cached_tokens},
          {"prompt_cache_miss_tokens", u.prompt_tokens - u.cached_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}},
          {"cost_usd", cost_usd(u, p)}};
}

json parse_json_body(const std::string& body, size_t max_bytes, int max_depth) {
  if (body.size() > max_bytes)
    throw ApiError(413, fmt::format("the request body has {} bytes; the limit is {}", body.size(), max_bytes),
                   "invalid_request_error", "", "request_too_large");
  if (body.empty()) throw bad("", "the request body is empty; expected a JSON object");
  // Nesting is checked before parsing so a hostile body cannot make the parser or the destructor recurse deeply.
  int depth = 0;
  bool in_string = false, escape = false;
  for (char c : body) {
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) throw bad("", fmt::format("the JSON is nested deeper than {} levels", max_depth));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw bad("", fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw bad("", "the request body must be a JSON object");
  return j;
}

ChatTask parse_chat_request(const json& b, const std::vector<ModelRoute>& routes, const Limits& limits) {
  ChatTask t;
  t.route = &find_route(b, routes);
  t.thinking = read_thinking(b, *t.route);
  t.reasoning_effort = read_effort(b);
  const json* msgs = field(b, "messages");
  if (!msgs) throw bad("messages", "'messages' is required");
  if (!msgs->is_array() || msgs->empty()) throw bad("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw bad(where, where + " must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw bad(where + ".role", where + ".role must be a string");
    ChatMessage cm;
    cm.role = role->get<std::string>();
    if (cm.role == "developer") cm.role = "system";
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool")
      throw bad(where + ".role", fmt::format("{}.role '{}' is not one of system, user, assistant, tool", where, cm.role.substr(0, 64)));
    cm.content = message_content(m, i, cm.has_content);
    if (!cm.has_content && cm.role != "assistant") throw bad(where + ".content", where + ".content is required");
    if (const json* calls = field(m, "tool_calls")) {
      if (cm.role != "assistant" || !calls->is_array()) throw bad(where + ".tool_calls", "tool_calls must be an array on an assistant message");
      for (const auto& c : *calls) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
          throw bad(where + ".tool_calls", "each tool call needs a 'function' object");
        const json& f = c["function"];
        ToolCall tc;
        if (c.contains("id") && c["id"].is_string()) tc.id = c["id"];
        if (!f.contains("name") || !f["name"].is_string()) throw bad(where + ".tool_calls", "a tool call needs function.name");
        tc.name = f["name"];
        if (f.contains("arguments")) {
          if (!f["arguments"].is_string()) throw bad(where + ".tool_calls", "function.arguments must be a JSON string");
          tc.arguments = f["arguments"];
        }
        cm.tool_calls.push_back(std::move(tc));
      }
    }
    if (!cm.has_content && cm.tool_calls.empty()) throw bad(where + ".content", where + ".content is required");
    if (const json* rc = field(m, "reasoning_content")) {
      // Accepted on every assistant message (the openai SDK's tool loop sends replies back as returned); whether it
      // reaches the prompt is the template's rule (kept only within the current turn, see chat_template.h).
      if (cm.role != "assistant") throw bad(where + ".reasoning_content", "'reasoning_content' belongs on assistant messages only");
      if (!rc->is_string()) throw bad(where + ".reasoning_content", "'reasoning_content' must be a string");
      cm.reasoning = rc->get<std::string>();
      cm.has_reasoning = true;
    }
    if (const json* pre = field(m, "prefix")) {
      if (!pre->is_boolean()) throw bad(where + ".prefix", "'prefix' must be a boolean");
      if (pre->get<bool>()) {
        if (cm.role != "assistant" || i + 1 != msgs->size())
          throw bad(where + ".prefix", "'prefix': true is allowed only on the last message, an assistant one");
        t.prefix = true;
      }
    }
    t.messages.push_back(std::move(cm));
  }
  if (t.thinking) {
    // DeepSeek's rule: within the current turn (after the last user message) a thinking model's tool-calling
    // replies must come back with their reasoning_content, which stays in the prompt.
    const int64_t last_user = last_user_index(t.messages);
    for (size_t i = size_t(last_user + 1); i < t.messages.size(); ++i) {
      const ChatMessage& cm = t.messages[i];
      if (cm.role == "assistant" && !cm.tool_calls.empty() && !cm.has_reasoning)
        throw bad(fmt::format("messages[{}].reasoning_content", i),
                  fmt::format("messages[{}] made tool calls in the current turn of a thinking request to '{}': send "
                              "its reasoning_content back as it was returned (thinking mode keeps it in the prompt)",
                              i, t.route->id));
    }
  }
  read_sampling(b, t.params, limits);
  if (t.thinking) {
    // Thinking mode accepts and validates these (above) but does not apply them, as DeepSeek's API documents.
    t.params.sampling.temperature = 1.0f;
    t.params.sampling.top_p = 1.0f;
    t.params.sampling.presence_penalty = 0.0f;
    t.params.sampling.frequency_penalty = 0.0f;
  }
  read_stream(b, t.stream, t.include_usage);
  t.n = int(read_int(b, "n", 1, 1, limits.max_n));
  const json* mt = field(b, "max_completion_tokens") ? field(b, "max_completion_tokens") : field(b, "max_tokens");
  const char* mt_name = field(b, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  t.max_tokens_given = mt != nullptr;
  t.params.max_tokens = read_int(b, mt_name, limits.default_max_tokens, 1, std::numeric_limits<int32_t>::max());
  if (t.max_tokens_given && t.params.max_tokens >= limits.context)
    throw ApiError(400, fmt::format("'{}' is {}; this model's context holds {} tokens (prompt included)", mt_name,
                                    t.params.max_tokens, limits.context),
                   "invalid_request_error", mt_name, "context_length_exceeded");
  t.params.logprobs = read_bool(b, "logprobs", false);
  t.params.top_logprobs = int(read_int(b, "top_logprobs", 0, 0, 20));
  if (t.params.top_logprobs > 0 && !t.params.logprobs) throw bad("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  if (t.thinking && t.params.logprobs)
    throw bad("logprobs", fmt::format("'{}' is answering in thinking mode, which does not support logprobs/top_logprobs "
                                      "(as DeepSeek's API){}", t.route->id,
                                      t.route->thinking == ThinkingSupport::Toggle ? "; send thinking: {\"type\": \"disabled\"}" : ""));
  if (const json* rf = field(b, "response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      throw bad("response_format", "'response_format' must be an object with a string 'type'");
    const std::string type = (*rf)["type"];
    if (type == "json_object") {
      t.json_mode = true;
      t.response_grammar = std::make_shared<const agent::Grammar>(agent::json_object_grammar());
    } else if (type == "json_schema") {
      const json* js = field(*rf, "json_schema");
      if (!js || !js->is_object()) throw bad("response_format.json_schema", "'response_format.json_schema' must be an object");
      const json* schema = field(*js, "schema");
      if (!schema || !schema->is_object())
        throw bad("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON schema object");
      const json* strict = field(*js, "strict");
      if (strict && !strict->is_boolean()) throw bad("response_format.json_schema.strict", "'strict' must be a boolean");
      agent::SchemaOptions so;
      so.strict = strict && strict->get<bool>();
      try {
        t.response_grammar = std::make_shared<const agent::Grammar>(agent::json_schema_grammar(*schema, so));
      } catch (const Error& e) {
        throw bad("response_format.json_schema.schema", fmt::format("invalid JSON schema: {}", e.what()));
      }
      t.json_mode = true;
    } else if (type != "text") {
      throw bad("response_format.type",
                fmt::format("response_format type '{}' is not supported (text, json_object, json_schema)", type.substr(0, 64)));
    }
  }
  if (const json* tools = field(b, "tools")) {
    try {
      t.tools = agent::parse_tools(*tools);
    } catch (const Error& e) {
      throw bad("tools", e.what());
    }
  }
  {
    const json* tc = field(b, "tool_choice");
    try {
      t.tool_choice = agent::parse_tool_choice(tc ? *tc : json(), t.tools);
    } catch (const Error& e) {
      throw bad("tool_choice", e.what());
    }
  }
  t.parallel_tool_calls = read_bool(b, "parallel_tool_calls", true);
  if (!t.tools.empty() && t.tool_choice.mode != agent::ToolChoiceMode::None) {
    if (t.response_grammar)
      throw bad("response_format", "'response_format' json_object/json_schema cannot be combined with tools; "
                                   "use tool_choice \"none\" or drop one of them");
    if (t.prefix) throw bad("messages", "chat prefix completion cannot be combined with tools");
  }
  if (const json* u = field(b, "user")) {
    if (!u->is_string()) throw bad("user", "'user' must be a string");
    t.user = u->get<std::string>();
  }
  if (const json* c = field(b, "conversation_id")) {
    if (!c->is_string() || c->get<std::string>().size() > 64) throw bad("conversation_id", "'conversation_id' must be a short string");
    t.conversation_id = c->get<std::string>();
  }
  return t;
}

CompletionTask parse_completion_request(const json& b, const std::vector<ModelRoute>& routes, const Limits& limits) {
  CompletionTask t;
  t.route = &find_route(b, routes);
  const json* p = field(b, "prompt");
  if (!p) throw bad("prompt", "'prompt' is required");
  auto token_list = [&](const json& a) {
    std::vector<int32_t> ids;
    for (const auto& x : a) {
      if (!x.is_number_integer()) throw bad("prompt", "a token-id prompt must hold integers only");
      const int64_t v = x.get<int64_t>();
      if (v < 0 || v > std::numeric_limits<int32_t>::max()) throw bad("prompt", fmt::format("token id {} is out of range", v));
      ids.push_back(int32_t(v));
    }
    if (ids.empty()) throw bad("prompt", "a token-id prompt must not be empty");
    return ids;
  };
  if (p->is_string()) {
    t.text_prompts.push_back(p->get<std::string>());
  } else if (p->is_array() && !p->empty()) {
    if ((*p)[0].is_string()) {
      for (const auto& x : *p) {
        if (!x.is_string()) throw bad("prompt", "'prompt' arrays must hold only strings, or only token ids");
        t.text_prompts.push_back(x.get<std::string>());
      }
    } else if ((*p)[0].is_number_integer()) {
      t.token_prompts.push_back(token_list(*p));
    } else if ((*p)[0].is_array()) {
      for (const auto& x : *p) {
        if (!x.is_array()) throw bad("prompt", "a batch of token-id prompts must be an array of arrays");
        t.token_prompts.push_back(token_list(x));
      }
    } else {
      throw bad("prompt", "'prompt' must be a string, an array of strings, or token ids");
    }
  } else {
    throw bad("prompt", "'prompt' must be a string, an array of strings, or token ids (and not empty)");
  }
  if (t.text_prompts.size() + t.token_prompts.size() > 64) throw bad("prompt", "at most 64 prompts per request");
  if (const json* s = field(b, "suffix")) {
    if (!s->is_string()) throw bad("suffix", "'suffix' must be a string");
    t.suffix = s->get<std::string>();
    t.has_suffix = true;
    if (!t.token_prompts.empty()) throw bad("suffix", "'suffix' needs a text prompt");
  }
  read_sampling(b, t.params, limits);
  read_stream(b, t.stream, t.include_usage);
  t.echo = read_bool(b, "echo", false);
  t.n = int(read_int(b, "n", 1, 1, limits.max_n));
  t.max_tokens_given = field(b, "max_tokens") != nullptr;
  t.params.max_tokens = read_int(b, "max_tokens", 16, 0, std::numeric_limits<int32_t>::max());
  if (t.params.max_tokens == 0) {
    if (!t.echo) throw bad("max_tokens", "'max_tokens' must be at least 1 (0 is allowed only with echo, to score the prompt)");
    t.zero_max_tokens = true;
    t.params.max_tokens = 1;
  }
  if (t.params.max_tokens >= limits.context)
    throw ApiError(400, fmt::format("'max_tokens' is {}; this model's context holds {} tokens (prompt included)",
                                    t.params.max_tokens, limits.context),
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  if (const json* lp = field(b, "logprobs")) {
    if (lp->is_boolean()) t.logprobs = lp->get<bool>() ? 0 : -1;
    else t.logprobs = int(read_int(b, "logprobs", 0, 0, 20));
  }
  t.params.logprobs = t.logprobs >= 0;
  t.params.top_logprobs = std::max(0, t.logprobs);
  t.params.prompt_logprobs = t.echo && t.logprobs >= 0;
  if (t.stream && t.n > 1) throw bad("n", "streaming supports n = 1 only on /completions");
  return t;
}

}  // namespace baleine::server
