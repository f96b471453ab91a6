// Anthropic Messages requests -> ChatTask (see anthropic_api.h). Validation happens here, on the Anthropic names;
// parse_chat_request then applies the checks both APIs share (ranges, tool schemas, context) to the translation.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "server/anthropic_api.h"

namespace baleine::server {

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, "invalid_request_error", param); }

const json* field(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

// Every key of `o` must be one of `known`; the 400 names the first that is not.
void only_fields(const json& o, const std::string& where, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : o.items()) {
    bool ok = false;
    for (const char* n : known) ok = ok || k == n;
    if (ok) continue;
    std::string list;
    for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
    const std::string name = where.empty() ? k.substr(0, 64) : where + "." + k.substr(0, 64);
    throw bad(name, fmt::format("unknown field '{}' (expected: {})", name, list));
  }
}

std::string read_string(const json& o, const char* name, const std::string& where) {
  const json* v = field(o, name);
  const std::string at = where + "." + name;
  if (!v) throw bad(at, fmt::format("'{}' is required", at));
  if (!v->is_string()) throw bad(at, fmt::format("'{}' must be a string", at));
  return v->get<std::string>();
}

void check_cache_control(const json& block, const std::string& where) {
  // Prompt caching is automatic here (the prefix cache); cache_control is accepted so Claude Code's requests work.
  if (const json* cc = field(block, "cache_control")) {
    if (!cc->is_object()) throw bad(where + ".cache_control", fmt::format("'{}.cache_control' must be an object", where));
    only_fields(*cc, where + ".cache_control", {"type", "ttl"});
  }
}

void no_vision(const std::string& where) {
  // Refused, never dropped: an answer that silently ignored the picture would look like a reply to it.
  throw bad(where, fmt::format("{} is an image block, but this model has no vision: it reads text only; send the "
                               "content as text blocks", where));
}

// A text block {"type": "text", "text"}.
std::string text_block(const json& b, const std::string& where) {
  only_fields(b, where, {"type", "text", "cache_control", "citations"});
  check_cache_control(b, where);
  return read_string(b, "text", where);
}

std::string block_type(const json& b, const std::string& where) {
  if (!b.is_object()) throw bad(where, fmt::format("'{}' must be a content block object", where));
  const json* t = field(b, "type");
  if (!t || !t->is_string()) throw bad(where + ".type", fmt::format("'{}.type' must be a string", where));
  return t->get<std::string>();
}

// tool_result content: a string or text blocks (images refused as everywhere).
std::string tool_result_content(const json& b, const std::string& where) {
  const json* c = field(b, "content");
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) throw bad(where + ".content", fmt::format("'{}.content' must be a string or an array of text blocks", where));
  std::string out;
  for (size_t k = 0; k < c->size(); ++k) {
    const std::string at = fmt::format("{}.content[{}]", where, k);
    const std::string type = block_type((*c)[k], at);
    if (type == "image") no_vision(at);
    if (type != "text") throw bad(at, fmt::format("'{}': block type '{}' is not supported in a tool_result (text only)", at, type.substr(0, 64)));
    out += text_block((*c)[k], at);
  }
  return out;
}

const char* kMessagesFields[] = {"model", "max_tokens", "system", "messages", "tools", "tool_choice", "thinking",
                                 "output_config", "temperature", "top_p", "top_k", "stop_sequences", "stream", "metadata"};
const char* kCountFields[] = {"model", "system", "messages", "tools", "tool_choice", "thinking", "output_config"};

}  // namespace

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string anthropic_error_body(const ApiError& e) {
  return dump({{"type", "error"}, {"error", {{"type", anthropic_error_type(e.status)}, {"message", e.what()}}}});
}

std::string thinking_signature(const std::string& thinking) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : thinking) h = (h ^ c) * 1099511628211ull;
  return fmt::format("baleine-{:016x}", h);
}

json anthropic_to_chat_body(const json& b, const std::vector<ModelRoute>& routes, const Limits& limits, bool count_tokens) {
  for (const auto& [k, v] : b.items()) {
    bool ok = false;
    if (count_tokens) for (const char* n : kCountFields) ok = ok || k == n;
    else for (const char* n : kMessagesFields) ok = ok || k == n;
    if (!ok)
      throw bad(k.substr(0, 64), fmt::format("unknown field '{}' (this endpoint takes {})", k.substr(0, 64),
                                             count_tokens ? "model, system, messages, tools, tool_choice, thinking, output_config"
                                                          : "model, max_tokens, system, messages, tools, tool_choice, thinking, "
                                                            "output_config, temperature, top_p, top_k, stop_sequences, stream, metadata"));
  }
  json out = json::object();
  if (const json* m = field(b, "model")) out["model"] = *m;  // parse_chat_request: required, a served name (404)
  if (!count_tokens) {
    const json* mt = field(b, "max_tokens");
    if (!mt) throw bad("max_tokens", "'max_tokens' is required");
    if (!mt->is_number_integer() || mt->get<int64_t>() < 1) throw bad("max_tokens", "'max_tokens' must be a positive integer");
    out["max_tokens"] = *mt;
  }

  json messages = json::array();
  std::vector<size_t> origin;  // Anthropic message index of each chat message (for the errors of the reasoning rule)
  if (const json* sys = field(b, "system")) {
    std::string text;
    if (sys->is_string()) {
      text = sys->get<std::string>();
    } else if (sys->is_array()) {
      for (size_t k = 0; k < sys->size(); ++k) {
        const std::string at = fmt::format("system[{}]", k);
        const std::string type = block_type((*sys)[k], at);
        if (type != "text") throw bad(at, fmt::format("'{}': system blocks must be text blocks, got '{}'", at, type.substr(0, 64)));
        text += (text.empty() ? "" : "\n") + text_block((*sys)[k], at);
      }
    } else {
      throw bad("system", "'system' must be a string or an array of text blocks");
    }
    messages.push_back({{"role", "system"}, {"content", text}});
    origin.push_back(0);
  }
  const json* msgs = field(b, "messages");
  if (!msgs) throw bad("messages", "'messages' is required");
  if (!msgs->is_array() || msgs->empty()) throw bad("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw bad(where, fmt::format("'{}' must be an object", where));
    only_fields(m, where, {"role", "content"});
    const json* role = field(m, "role");
    if (!role || !role->is_string() || (*role != "user" && *role != "assistant"))
      throw bad(where + ".role", fmt::format("'{}.role' must be \"user\" or \"assistant\"", where));
    const bool user = *role == "user";
    const json* content = field(m, "content");
    if (!content) throw bad(where + ".content", fmt::format("'{}.content' is required", where));
    if (content->is_string()) {
      messages.push_back({{"role", *role}, {"content", *content}});
      origin.push_back(i);
      continue;
    }
    if (!content->is_array()) throw bad(where + ".content", fmt::format("'{}.content' must be a string or an array of content blocks", where));
    std::string text, thinking;
    bool has_thinking = false;
    json calls = json::array();
    for (size_t j = 0; j < content->size(); ++j) {
      const json& blk = (*content)[j];
      const std::string at = fmt::format("{}.content[{}]", where, j);
      const std::string type = block_type(blk, at);
      if (type == "text") {
        text += text_block(blk, at);
      } else if (type == "image") {
        no_vision(at);
      } else if (user && type == "tool_result") {
        only_fields(blk, at, {"type", "tool_use_id", "content", "is_error", "cache_control"});
        check_cache_control(blk, at);
        const std::string id = read_string(blk, "tool_use_id", at);
        if (const json* e = field(blk, "is_error"); e && !e->is_boolean()) throw bad(at + ".is_error", fmt::format("'{}.is_error' must be a boolean", at));
        // The tool's output reaches the model as a tool message (an error's text says it is one).
        messages.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", tool_result_content(blk, at)}});
        origin.push_back(i);
      } else if (!user && type == "tool_use") {
        only_fields(blk, at, {"type", "id", "name", "input", "cache_control"});
        check_cache_control(blk, at);
        const std::string id = read_string(blk, "id", at), name = read_string(blk, "name", at);
        const json* input = field(blk, "input");
        if (!input || !input->is_object()) throw bad(at + ".input", fmt::format("'{}.input' must be an object", at));
        calls.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", dump(*input)}}}});
      } else if (!user && type == "thinking") {
        only_fields(blk, at, {"type", "thinking", "signature"});
        thinking += read_string(blk, "thinking", at);
        if (const json* sg = field(blk, "signature"); sg && !sg->is_string())
          throw bad(at + ".signature", fmt::format("'{}.signature' must be a string", at));
        has_thinking = true;
      } else if (!user && type == "redacted_thinking") {
        throw bad(at, fmt::format("'{}': this server never returns redacted_thinking blocks; send thinking blocks as returned", at));
      } else {
        throw bad(at, fmt::format("'{}': content block type '{}' is not supported in a{} message ({})", at, type.substr(0, 64),
                                  user ? " user" : "n assistant", user ? "text, tool_result" : "text, thinking, tool_use"));
      }
    }
    if (user) {
      // Text after tool results is the user's own words: a user message after the tool messages.
      if (!text.empty() || messages.empty() || messages.back()["role"] != "tool") {
        messages.push_back({{"role", "user"}, {"content", text}});
        origin.push_back(i);
      }
      continue;
    }
    json am = {{"role", "assistant"}};
    if (!text.empty() || calls.empty()) am["content"] = text;
    if (!calls.empty()) am["tool_calls"] = calls;
    if (has_thinking) am["reasoning_content"] = thinking;
    messages.push_back(std::move(am));
    origin.push_back(i);
  }
  // A last assistant message is Anthropic's prefill: the answer continues it (chat prefix completion).
  if (messages.back()["role"] == "assistant") {
    if (messages.back().contains("tool_calls"))
      throw bad(fmt::format("messages[{}]", msgs->size() - 1), "the last message may not end with tool_use blocks: send their tool_result in a user message");
    messages.back()["prefix"] = true;
  }

  std::optional<bool> thinking_asked;
  if (const json* th = field(b, "thinking")) {
    if (!th->is_object()) throw bad("thinking", "'thinking' must be an object: {\"type\": \"enabled\", \"budget_tokens\": N} or {\"type\": \"disabled\"}");
    const json* type = field(*th, "type");
    if (!type || !type->is_string() || (*type != "enabled" && *type != "disabled" && *type != "adaptive"))
      throw bad("thinking.type", "'thinking.type' must be \"enabled\", \"disabled\" or \"adaptive\"");
    if (*type == "enabled") {
      only_fields(*th, "thinking", {"type", "budget_tokens"});
      const json* bt = field(*th, "budget_tokens");
      if (!bt) throw bad("thinking.budget_tokens", "'thinking.budget_tokens' is required when thinking is enabled");
      if (!bt->is_number_integer() || bt->get<int64_t>() < 1) throw bad("thinking.budget_tokens", "'thinking.budget_tokens' must be a positive integer");
      if (out.contains("max_tokens") && bt->get<int64_t>() >= out["max_tokens"].get<int64_t>())
        throw bad("thinking.budget_tokens", fmt::format("'thinking.budget_tokens' ({}) must be less than max_tokens ({})",
                                                        bt->get<int64_t>(), out["max_tokens"].get<int64_t>()));
    } else {
      only_fields(*th, "thinking", {"type"});
    }
    thinking_asked = *type != "disabled";
    out["thinking"] = {{"type", *thinking_asked ? "enabled" : "disabled"}};
  }
  if (const json* oc = field(b, "output_config")) {
    if (!oc->is_object()) throw bad("output_config", "'output_config' must be an object");
    only_fields(*oc, "output_config", {"effort", "format"});
    if (const json* e = field(*oc, "effort")) {
      static const std::set<std::string> kEfforts = {"minimal", "low", "medium", "high", "xhigh", "max", "ultra"};
      if (!e->is_string() || !kEfforts.count(e->get<std::string>()))
        throw bad("output_config.effort", "'output_config.effort' must be one of low, medium, high, max");
      out["reasoning_effort"] = *e;  // DeepSeek's mapping onto low | high | max (parse_chat_request)
    }
    if (const json* f = field(*oc, "format")) {
      if (!f->is_object()) throw bad("output_config.format", "'output_config.format' must be an object");
      only_fields(*f, "output_config.format", {"type", "schema"});
      const json* type = field(*f, "type");
      const json* schema = field(*f, "schema");
      if (!type || *type != "json_schema" || !schema || !schema->is_object())
        throw bad("output_config.format", "'output_config.format' must be {\"type\": \"json_schema\", \"schema\": {...}}");
      out["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "output"}, {"schema", *schema}}}};
    }
  }
  if (const json* t = field(b, "temperature")) {
    if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 1) throw bad("temperature", "'temperature' must be a number in [0, 1]");
    out["temperature"] = *t;
  }
  for (const char* name : {"top_p", "top_k"})
    if (const json* v = field(b, name)) out[name] = *v;  // ranges checked by parse_chat_request under the same names
  if (const json* ss = field(b, "stop_sequences")) {
    if (!ss->is_array()) throw bad("stop_sequences", "'stop_sequences' must be an array of strings");
    if (ss->size() > limits.max_stop) throw bad("stop_sequences", fmt::format("'stop_sequences' holds at most {} strings", limits.max_stop));
    for (const auto& x : *ss)
      if (!x.is_string() || x.get<std::string>().empty() || x.get<std::string>().size() > 256)
        throw bad("stop_sequences", "'stop_sequences' must hold non-empty strings of at most 256 bytes");
    if (!ss->empty()) out["stop"] = *ss;
  }
  if (const json* st = field(b, "stream")) {
    if (!st->is_boolean()) throw bad("stream", "'stream' must be a boolean");
    out["stream"] = *st;
  }
  if (const json* md = field(b, "metadata")) {
    if (!md->is_object()) throw bad("metadata", "'metadata' must be an object");
    only_fields(*md, "metadata", {"user_id"});
    if (const json* u = field(*md, "user_id")) {
      if (!u->is_string()) throw bad("metadata.user_id", "'metadata.user_id' must be a string");
      out["user"] = *u;
    }
  }
  if (const json* tools = field(b, "tools")) {
    if (!tools->is_array()) throw bad("tools", "'tools' must be an array");
    json ot = json::array();
    for (size_t k = 0; k < tools->size(); ++k) {
      const json& tl = (*tools)[k];
      const std::string at = fmt::format("tools[{}]", k);
      if (!tl.is_object()) throw bad(at, fmt::format("'{}' must be an object", at));
      if (const json* type = field(tl, "type"); type && *type != "custom")
        throw bad(at + ".type", fmt::format("'{}.type' {}: only custom tools (name, description, input_schema) are supported, not "
                                            "Anthropic's server tools", at, type->dump().substr(0, 64)));
      only_fields(tl, at, {"type", "name", "description", "input_schema", "cache_control"});
      check_cache_control(tl, at);
      json fn = {{"name", read_string(tl, "name", at)}};
      if (const json* d = field(tl, "description")) {
        if (!d->is_string()) throw bad(at + ".description", fmt::format("'{}.description' must be a string", at));
        fn["description"] = *d;
      }
      const json* schema = field(tl, "input_schema");
      if (!schema || !schema->is_object()) throw bad(at + ".input_schema", fmt::format("'{}.input_schema' must be a JSON schema object", at));
      fn["parameters"] = *schema;
      ot.push_back({{"type", "function"}, {"function", fn}});
    }
    out["tools"] = ot;
  }
  if (const json* tc = field(b, "tool_choice")) {
    if (!tc->is_object()) throw bad("tool_choice", "'tool_choice' must be an object: {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}");
    const json* type = field(*tc, "type");
    if (!type || !type->is_string()) throw bad("tool_choice.type", "'tool_choice.type' must be one of auto, any, tool, none");
    if (*type == "tool") only_fields(*tc, "tool_choice", {"type", "name", "disable_parallel_tool_use"});
    else only_fields(*tc, "tool_choice", {"type", "disable_parallel_tool_use"});
    if (*type == "auto") out["tool_choice"] = "auto";
    else if (*type == "any") out["tool_choice"] = "required";
    else if (*type == "none") out["tool_choice"] = "none";
    else if (*type == "tool") out["tool_choice"] = {{"type", "function"}, {"function", {{"name", read_string(*tc, "name", "tool_choice")}}}};
    else throw bad("tool_choice.type", "'tool_choice.type' must be one of auto, any, tool, none");
    if (const json* d = field(*tc, "disable_parallel_tool_use")) {
      if (!d->is_boolean()) throw bad("tool_choice.disable_parallel_tool_use", "'tool_choice.disable_parallel_tool_use' must be a boolean");
      out["parallel_tool_calls"] = !d->get<bool>();
    }
  }

  // DeepSeek's reasoning rule, checked here to name the Anthropic message: within the current turn (after the last
  // user message with text) a thinking request's tool_use turns must come back with their thinking blocks.
  const ModelRoute* route = nullptr;
  for (const auto& r : routes)
    if (out.contains("model") && out["model"].is_string() && r.id == out["model"].get<std::string>()) route = &r;
  if (route) {
    const bool thinks = route->thinking == ThinkingSupport::Always ||
                        (route->thinking == ThinkingSupport::Toggle && thinking_asked.value_or(route->thinking_default));
    size_t last_user = 0;
    for (size_t k = 0; k < messages.size(); ++k)
      if (messages[k]["role"] == "user") last_user = k + 1;
    for (size_t k = last_user; thinks && k < messages.size(); ++k)
      if (messages[k]["role"] == "assistant" && messages[k].contains("tool_calls") && !messages[k].contains("reasoning_content"))
        throw bad(fmt::format("messages[{}].content", origin[k]),
                  fmt::format("messages[{}] made tool calls in the current turn of a thinking request to '{}': send its "
                              "thinking block back as it was returned (thinking mode keeps it in the prompt)", origin[k], route->id));
  }
  out["messages"] = std::move(messages);
  return out;
}

AnthropicTask parse_anthropic_request(const json& b, const std::vector<ModelRoute>& routes, const Limits& limits, bool count_tokens) {
  json chat = anthropic_to_chat_body(b, routes, limits, count_tokens);
  AnthropicTask t;
  t.chat = parse_chat_request(chat, routes, limits);
  if (const json* th = field(b, "thinking"); th && field(*th, "budget_tokens")) t.chat.reasoning_budget_tokens = (*th)["budget_tokens"].get<int64_t>();
  if (chat.contains("stop")) t.stop_sequences = chat["stop"].get<std::vector<std::string>>();
  return t;
}

}  // namespace baleine::server
