#include "agent/tools.h"

#include <random>
#include <set>

#include "core/check.h"

namespace baleine::agent {

using nlohmann::json;

namespace {
const std::string kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>";
const std::string kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>", kSep = "<｜tool▁sep｜>";
const std::vector<std::string> kMarkers = {kCallsBegin, kCallsEnd, kCallBegin, kCallEnd, kSep};
// Markers the model must never write outside a tool-call block (the tool outputs are the server's to write).
const std::vector<std::string> kStrayMarkers = {kCallsEnd, kCallBegin, kCallEnd, kSep,
                                                "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>",
                                                "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"};

// Ids of the tokens that spell exactly one of `markers`.
std::vector<int32_t> marker_ids(const VocabIndex& vocab, const std::vector<std::string>& markers) {
  std::vector<int32_t> ids;
  for (int64_t id = 0; id < vocab.vocab_size; ++id)
    for (const auto& m : markers)
      if (vocab.bytes[size_t(id)] == m) ids.push_back(int32_t(id));
  return ids;
}

// o[key] when it is a string, `fallback` when absent; "" when it is some other JSON type (never a valid value, so
// the caller's check names the field; json::value would throw a raw type_error there).
std::string string_field(const json& o, const char* key, const std::string& fallback) {
  if (!o.is_object() || !o.contains(key)) return fallback;
  return o[key].is_string() ? o[key].get<std::string>() : std::string();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(uint8_t(c)) || c == '_' || c == '-')) return false;
  return true;
}

std::string content_text(const json& c, const std::string& where) {
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  BALEINE_CHECK(c.is_array(), "{}.content: must be a string, an array of text parts or null", where);
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const json& p = c[i];
    BALEINE_CHECK(p.is_object() && string_field(p, "type", "") == "text" && p.contains("text") && p["text"].is_string(),
                  "{}.content[{}]: only text parts are supported", where, i);
    out += p["text"].get<std::string>();
  }
  return out;
}
}  // namespace

std::vector<ToolFunction> parse_tools(const json& tools, const ToolLimits& limits) {
  std::vector<ToolFunction> out;
  if (tools.is_null()) return out;
  BALEINE_CHECK(tools.is_array(), "tools: must be an array");
  BALEINE_CHECK(tools.size() <= limits.max_tools, "tools: {} tools given, at most {} are allowed", tools.size(), limits.max_tools);
  size_t total = 0;
  std::set<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string at = "tools[" + std::to_string(i) + "]";
    const json& t = tools[i];
    BALEINE_CHECK(t.is_object(), "{}: must be an object", at);
    BALEINE_CHECK(string_field(t, "type", "") == "function", "{}.type: must be \"function\"", at);
    BALEINE_CHECK(t.contains("function") && t["function"].is_object(), "{}.function: missing or not an object", at);
    const json& f = t["function"];
    ToolFunction fn;
    BALEINE_CHECK(f.contains("name") && f["name"].is_string(), "{}.function.name: missing or not a string", at);
    fn.name = f["name"].get<std::string>();
    BALEINE_CHECK(valid_name(fn.name), "{}.function.name: '{}' must be 1 to 64 letters, digits, '_' or '-'", at, fn.name.substr(0, 80));
    BALEINE_CHECK(names.insert(fn.name).second, "{}.function.name: '{}' is defined twice", at, fn.name);
    if (f.contains("description") && !f["description"].is_null()) {
      BALEINE_CHECK(f["description"].is_string(), "{}.function.description: must be a string", at);
      fn.description = f["description"].get<std::string>();
      BALEINE_CHECK(fn.description.size() <= limits.max_description_bytes, "{}.function.description: longer than {} bytes", at,
                    limits.max_description_bytes);
    }
    if (f.contains("strict") && !f["strict"].is_null()) {
      BALEINE_CHECK(f["strict"].is_boolean(), "{}.function.strict: must be a boolean", at);
      fn.strict = f["strict"].get<bool>();
    }
    if (f.contains("parameters") && !f["parameters"].is_null()) {
      fn.parameters = f["parameters"];
      BALEINE_CHECK(fn.parameters.is_object(), "{}.function.parameters: must be a JSON schema object", at);
      BALEINE_CHECK(string_field(fn.parameters, "type", "object") == "object", "{}.function.parameters: the arguments must be an object (type \"object\")", at);
    }
    std::string dumped;
    try {
      dumped = fn.parameters.dump();
    } catch (const json::exception&) {
      BALEINE_FAIL("{}.function.parameters: not valid UTF-8", at);
    }
    BALEINE_CHECK(dumped.size() <= limits.max_parameters_bytes, "{}.function.parameters: larger than {} bytes", at, limits.max_parameters_bytes);
    total += dumped.size() + fn.description.size() + fn.name.size();
    BALEINE_CHECK(total <= limits.max_total_bytes, "tools: the definitions together are larger than {} bytes", limits.max_total_bytes);
    SchemaOptions so;
    so.strict = fn.strict;
    json schema = fn.parameters;
    if (!schema.contains("type")) schema["type"] = "object";
    const std::string err = validate_json_schema(schema, so);
    BALEINE_CHECK(err.empty(), "{}.function.parameters: {}", at, err);
    out.push_back(std::move(fn));
  }
  return out;
}

ToolChoice parse_tool_choice(const json& choice, const std::vector<ToolFunction>& tools) {
  ToolChoice c;
  if (choice.is_null()) {
    c.mode = tools.empty() ? ToolChoiceMode::None : ToolChoiceMode::Auto;
    return c;
  }
  if (choice.is_string()) {
    const std::string s = choice.get<std::string>();
    if (s == "none") c.mode = ToolChoiceMode::None;
    else if (s == "auto") c.mode = ToolChoiceMode::Auto;
    else if (s == "required") c.mode = ToolChoiceMode::Required;
    else BALEINE_FAIL("tool_choice: '{}' is not one of none, auto, required or a named function", s.substr(0, 80));
  } else {
    BALEINE_CHECK(choice.is_object() && string_field(choice, "type", "") == "function" && choice.contains("function") &&
                      choice["function"].is_object() && choice["function"].contains("name") && choice["function"]["name"].is_string(),
                  "tool_choice: must be \"none\", \"auto\", \"required\" or {{\"type\":\"function\",\"function\":{{\"name\":...}}}}");
    c.mode = ToolChoiceMode::Named;
    c.name = choice["function"]["name"].get<std::string>();
    bool found = false;
    for (const auto& t : tools) found = found || t.name == c.name;
    BALEINE_CHECK(found, "tool_choice: function '{}' is not among the tools", c.name.substr(0, 80));
  }
  BALEINE_CHECK(c.mode == ToolChoiceMode::None || c.mode == ToolChoiceMode::Auto || !tools.empty(),
                "tool_choice: '{}' needs tools", c.mode == ToolChoiceMode::Required ? "required" : "a named function");
  return c;
}

std::string render_tools_prompt(const std::vector<ToolFunction>& tools) {
  std::string out = "## Tools\nYou have access to the following tools:\n";
  for (const auto& t : tools) {
    out += "\n### " + t.name + "\nDescription: " + t.description + "\n\nParameters: " + t.parameters.dump() + "\n";
  }
  out += "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n" + kCallsBegin + kCallBegin + "function" + kSep +
         "tool_name\n```json\n{\"argument\": \"value\"}\n```" + kCallEnd + kCallsEnd +
         "\nSeveral calls go one per line inside the same block. Where tool_name is the name of a tool and the JSON "
         "object holds its arguments. A tool's result comes back in the next message.\n";
  return out;
}

std::vector<ChatMessage> add_tools_to_messages(std::vector<ChatMessage> messages, const std::vector<ToolFunction>& tools,
                                               const ToolChoice& choice) {
  if (tools.empty() || choice.mode == ToolChoiceMode::None) return messages;
  std::vector<ToolFunction> shown = tools;
  if (choice.mode == ToolChoiceMode::Named)
    std::erase_if(shown, [&](const ToolFunction& t) { return t.name != choice.name; });
  const std::string section = render_tools_prompt(shown);
  for (auto& m : messages)
    if (m.role == "system") {
      m.content += "\n\n" + section;
      return messages;
    }
  ChatMessage sys;
  sys.role = "system";
  sys.content = section;
  messages.insert(messages.begin(), sys);
  return messages;
}

std::vector<ChatMessage> chat_messages_from_openai(const json& messages) {
  BALEINE_CHECK(messages.is_array() && !messages.empty(), "messages: must be a non-empty array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const json& m = messages[i];
    BALEINE_CHECK(m.is_object() && m.contains("role") && m["role"].is_string(), "{}.role: missing or not a string", at);
    ChatMessage c;
    c.role = m["role"].get<std::string>();
    if (c.role == "developer") c.role = "system";
    BALEINE_CHECK(c.role == "system" || c.role == "user" || c.role == "assistant" || c.role == "tool",
                  "{}.role: '{}' is not system, developer, user, assistant or tool", at, c.role.substr(0, 40));
    c.content = content_text(m.value("content", json()), at);
    c.has_content = m.contains("content") && !m["content"].is_null();
    if (c.role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      BALEINE_CHECK(m["tool_calls"].is_array(), "{}.tool_calls: must be an array", at);
      for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
        const json& tc = m["tool_calls"][k];
        const std::string tat = at + ".tool_calls[" + std::to_string(k) + "]";
        BALEINE_CHECK(tc.is_object() && tc.contains("function") && tc["function"].is_object(), "{}.function: missing", tat);
        const json& f = tc["function"];
        BALEINE_CHECK(f.contains("name") && f["name"].is_string(), "{}.function.name: missing or not a string", tat);
        ToolCall call;
        call.id = string_field(tc, "id", "");
        call.name = f["name"].get<std::string>();
        if (f.contains("arguments")) {
          BALEINE_CHECK(f["arguments"].is_string(), "{}.function.arguments: must be a JSON string", tat);
          call.arguments = f["arguments"].get<std::string>();
        } else {
          call.arguments = "{}";
        }
        c.tool_calls.push_back(std::move(call));
      }
    } else if (c.role != "tool") {
      BALEINE_CHECK(c.has_content, "{}.content: missing", at);
    }
    out.push_back(std::move(c));
  }
  return out;
}

Grammar tool_calls_grammar(const std::vector<ToolFunction>& tools, const ToolChoice& choice, bool parallel, bool after_open) {
  Grammar g;
  std::vector<const GrammarNode*> calls;
  for (const auto& t : tools) {
    if (choice.mode == ToolChoiceMode::Named && t.name != choice.name) continue;
    SchemaOptions so;
    so.strict = t.strict;
    json schema = t.parameters;
    if (!schema.contains("type")) schema["type"] = "object";
    const GrammarNode* args = compile_json_schema(g, schema, so);
    calls.push_back(g.seq({g.literal(kCallBegin + "function" + kSep + t.name + "\n```json\n", false), args,
                           g.literal("\n```" + kCallEnd, false)}));
  }
  BALEINE_CHECK(!calls.empty(), "no tool can be called");
  GrammarNode block;
  block.kind = GrammarNodeKind::Array;
  block.json = false;
  block.items = calls.size() == 1 ? calls[0] : g.any_of(calls);
  block.open = g.literal(after_open ? "" : kCallsBegin, false);
  block.sep = g.literal("\n", false);
  block.close = g.literal(kCallsEnd, false);
  block.min_items = 1;
  block.max_items = parallel ? -1 : 1;
  g.root = g.add(std::move(block));
  g.finalize();
  return g;
}

std::shared_ptr<TokenConstraint> make_tool_constraint(const std::vector<ToolFunction>& tools, const ToolChoice& choice,
                                                      std::shared_ptr<const VocabIndex> vocab, const ToolConstraintOptions& o) {
  if (tools.empty() && choice.mode != ToolChoiceMode::None) return nullptr;
  if (choice.mode == ToolChoiceMode::None) {
    std::vector<int32_t> ids = marker_ids(*vocab, kStrayMarkers);
    for (int32_t id : marker_ids(*vocab, {kCallsBegin})) ids.push_back(id);
    return std::make_shared<ForbidTokensConstraint>(std::move(ids));
  }
  const bool forced = choice.mode != ToolChoiceMode::Auto;
  auto grammar = std::make_shared<const Grammar>(tool_calls_grammar(tools, choice, o.parallel_tool_calls, !forced));
  GrammarConstraintOptions go;
  go.max_tokens = o.max_tokens;
  auto inner = std::make_shared<GrammarConstraint>(grammar, vocab, go);
  if (forced) {
    BALEINE_CHECK(o.max_tokens <= 0 || inner->min_tokens_needed() <= o.max_tokens,
                  "max_tokens: {} is too small for the required tool call (needs at least {})", o.max_tokens, inner->min_tokens_needed());
    return inner;
  }
  DeferredOptions d;
  d.max_tokens = o.max_tokens;
  d.forbidden_before = marker_ids(*vocab, kStrayMarkers);  // free text holds no half tool-call syntax
  return std::make_shared<DeferredConstraint>(kCallsBegin, inner, vocab, d);
}

AssistantTurn parse_assistant_output(const std::string& text, const std::vector<ToolFunction>& tools,
                                     const std::string& engine_finish_reason, bool starts_in_reasoning) {
  OutputParser p(starts_in_reasoning);
  AssistantTurn t;
  for (auto d : {p.push(text), p.finish()}) {
    t.reasoning += d.reasoning;
    t.content += d.content;
    for (auto& c : d.tool_calls) t.tool_calls.push_back(std::move(c));
  }
  for (auto& c : t.tool_calls) {
    c.id = new_tool_call_id();
    bool known = false;
    for (const auto& f : tools) known = known || f.name == c.name;
    if (!known) t.problems.push_back("call of unknown tool '" + c.name + "'");
    json args = json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) t.problems.push_back("arguments of '" + c.name + "' are not a JSON object");
  }
  t.finish_reason = t.tool_calls.empty() ? engine_finish_reason : "tool_calls";
  return t;
}

json tool_calls_to_openai(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (const auto& c : calls)
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  return out;
}

std::string new_tool_call_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % 62];
  return id;
}

}  // namespace baleine::agent
