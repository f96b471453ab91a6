#include "tokenizer/chat_template_dsml.h"

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace baleine {

namespace {
// Key order is part of the prompt (schemas and arguments are written as the client wrote them), hence ordered_json.
using ojson = nlohmann::ordered_json;

const std::string kUser = "<｜User｜>", kAssistant = "<｜Assistant｜>", kEos = "<｜end▁of▁sentence｜>";
const std::string kThink = "<think>", kThinkEnd = "</think>";
const std::string kInvoke = "<｜DSML｜invoke name=\"", kInvokeEnd = "</｜DSML｜invoke>";
const std::string kParam = "<｜DSML｜parameter name=\"", kParamEnd = "</｜DSML｜parameter>";

// The tools section of the system prompt, as the models were trained on it (the text is DeepSeek's prompt, kept
// byte for byte: the model reads it, so any change is a different prompt).
const std::string kV32ToolsHeader = R"DS(## Tools

You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
<｜DSML｜function_calls>
<｜DSML｜invoke name="$FUNCTION_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$FUNCTION_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜function_calls>

String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

<｜DSML｜function_calls>
...
</｜DSML｜function_calls>

<function_results>
...
</function_results>

<think>...thinking about results</think>

Here are the functions available in JSONSchema format:
<functions>
)DS";
const std::string kV32ToolsFooter = "</functions>\n";

const std::string kV4ToolsHeader = R"DS(## Tools

You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "<｜DSML｜tool_calls>" block like the following:

<｜DSML｜tool_calls>
<｜DSML｜invoke name="$TOOL_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$TOOL_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜tool_calls>

String parameters should be specified as is and set `string="true"`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set `string="false"`.

If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside <think>...</think> BEFORE any tool calls or final response.

Otherwise, output directly after </think> with tool calls or final response.

### Available Tool Schemas

)DS";
const std::string kV4ToolsFooter = "\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

// JSON as the templates' `tojson` writes it (Python's json.dumps without ensure_ascii): ", " between items and
// ": " after keys, keys in their given order. Scalars are nlohmann's (same escapes, shortest round-trip numbers).
std::string py_json(const ojson& j) {
  if (j.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : j.items()) {
      out += (first ? "" : ", ") + ojson(k).dump(-1, ' ', false, ojson::error_handler_t::replace) + ": " + py_json(v);
      first = false;
    }
    return out + "}";
  }
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + py_json(j[i]);
    return out + "]";
  }
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

ojson parse_object(const std::string& text, const char* what) {
  if (text.empty()) return ojson::object();  // a call without arguments
  ojson j = ojson::parse(text, nullptr, /*allow_exceptions=*/false);
  BALEINE_CHECK(j.is_object(), "{} is not a JSON object: {}", what, text.substr(0, 80));
  return j;
}

std::string system_prompt(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o, bool v4) {
  std::string system;
  bool first = true;
  for (const auto& m : messages)
    if (m.role == "system") {
      system += (first ? "" : "\n\n") + m.content;
      first = false;
    }
  if (o.tools.empty()) return system;
  std::string schemas;
  for (const std::string& t : o.tools) schemas += py_json(parse_object(t, "a tool definition")) + "\n";
  const std::string section = (v4 ? kV4ToolsHeader : kV32ToolsHeader) + schemas + (v4 ? kV4ToolsFooter : kV32ToolsFooter);
  return system.empty() ? section : system + "\n\n" + section;
}

// "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=…>\n<parameters, one a line></｜DSML｜invoke>\n…": string
// values as they are, the others as JSON. V4 puts an empty line in an invoke without parameters.
std::string calls_block(const ChatMessage& m, bool v4) {
  std::string out = "\n\n" + (v4 ? dsml::kToolCalls : dsml::kFunctionCalls) + "\n";
  for (const ToolCall& c : m.tool_calls) {
    out += kInvoke + c.name + "\">\n";
    const ojson args = parse_object(c.arguments, "tool call arguments");
    for (const auto& [k, v] : args.items()) {
      if (v.is_string()) out += kParam + k + "\" string=\"true\">" + v.get<std::string>() + kParamEnd + "\n";
      else out += kParam + k + "\" string=\"false\">" + py_json(v) + kParamEnd + "\n";
    }
    if (v4 && args.empty()) out += "\n";
    out += kInvokeEnd + "\n";
  }
  return out + (v4 ? dsml::kToolCallsEnd : dsml::kFunctionCallsEnd);
}

std::string thought(const ChatMessage& m) { return kThink + m.reasoning + kThinkEnd; }

void check_role(const ChatMessage& m) {
  BALEINE_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool",
                "unknown message role '{}' (system, user, assistant or tool)", m.role);
}

// V3.2: tool results form a <function_results> block after the calling turn, which the next assistant message (or
// the generation prompt) continues after a blank line, without a new Assistant tag.
std::string render_v32(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o) {
  std::string out = o.bos_token + system_prompt(messages, o, false);
  const int64_t last_user = last_user_index(messages);
  bool pending_assistant = false, pending_tool = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    check_role(m);
    if (m.role == "user") {
      out += kUser + m.content;
      pending_assistant = true;
      pending_tool = false;
    } else if (m.role == "assistant") {
      const bool think = o.thinking && int64_t(i) > last_user;
      if (pending_assistant || pending_tool) out += (pending_assistant ? kAssistant : "\n\n") + (think ? thought(m) : kThinkEnd);
      pending_assistant = pending_tool = false;
      out += m.content;
      if (!m.tool_calls.empty()) out += calls_block(m, false);
      out += kEos;
    } else if (m.role == "tool") {
      // The block opens at the first result after the calling message and closes at the result that matches its
      // call count (the template counts positions, not ids). With no calling message before, the template looks
      // at the last message, as Python's messages[-1] does.
      int64_t caller = -1;
      for (size_t j = 0; j < i; ++j)
        if (messages[j].role == "assistant" && !messages[j].tool_calls.empty()) caller = int64_t(j);
      const size_t n_calls = (caller < 0 ? messages.back() : messages[size_t(caller)]).tool_calls.size();
      const int64_t order = int64_t(i) - caller;
      if (order == 1) out += "\n\n<function_results>";
      out += "\n<result>" + m.content + "</result>";
      if (order == int64_t(n_calls)) {
        out += "\n</function_results>";
        pending_assistant = false;
        pending_tool = true;
      }
    }
  }
  if (o.add_generation_prompt && (pending_assistant || pending_tool))
    out += (pending_assistant ? kAssistant : "\n\n") + (o.thinking ? kThink : kThink + kThinkEnd);
  return out;
}

// V4: every assistant message opens with the Assistant tag; user messages and tool results that follow each other
// share one User turn, separated by blank lines.
std::string render_v4(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o) {
  std::string out = o.bos_token + system_prompt(messages, o, true);
  int64_t last_input = -1;  // the last user message or tool result
  bool any_tool = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "user" || messages[i].role == "tool") last_input = int64_t(i);
    any_tool = any_tool || messages[i].role == "tool";
  }
  bool in_user = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    check_role(m);
    if (m.role == "user" || m.role == "tool") {
      out += in_user ? "\n\n" : kUser;
      in_user = true;
      out += m.role == "user" ? m.content : "<tool_result>" + m.content + "</tool_result>";
    } else if (m.role == "assistant") {
      in_user = false;
      // Reasoning is dropped only from plain chats: with tools defined or used, every turn keeps its thinking.
      const bool keep = o.thinking && (!o.tools.empty() || any_tool || int64_t(i) > last_input);
      out += kAssistant + (keep ? thought(m) : kThinkEnd) + m.content;
      if (!m.tool_calls.empty()) out += calls_block(m, true);
      out += kEos;
    }
  }
  if (o.add_generation_prompt) out += kAssistant + (o.thinking ? kThink : kThinkEnd);
  return out;
}
}  // namespace

namespace dsml {
std::string render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options, bool v4) {
  return v4 ? render_v4(messages, options) : render_v32(messages, options);
}
}  // namespace dsml

std::vector<ToolCall> parse_dsml_tool_calls(std::string_view block, int* counter) {
  std::vector<ToolCall> calls;
  size_t at = 0;
  while ((at = block.find(kInvoke, at)) != std::string_view::npos) {
    at += kInvoke.size();
    const size_t name_end = block.find("\">", at);
    if (name_end == std::string_view::npos) break;  // cut inside the name: no call to report
    ToolCall c;
    c.name = std::string(block.substr(at, name_end - at));
    const size_t body_at = name_end + 2, end = block.find(kInvokeEnd, body_at);
    std::string_view body = block.substr(body_at, end == std::string_view::npos ? std::string_view::npos : end - body_at);
    ojson args = ojson::object();
    for (size_t p = 0; (p = body.find(kParam, p)) != std::string_view::npos;) {
      p += kParam.size();
      const size_t key_end = body.find('"', p), open_end = body.find('>', p);
      if (key_end == std::string_view::npos || open_end == std::string_view::npos || key_end > open_end) break;
      const std::string key(body.substr(p, key_end - p));
      const std::string_view attrs = body.substr(key_end, open_end - key_end);
      const size_t value_end = body.find(kParamEnd, open_end + 1);
      const std::string value(body.substr(open_end + 1, value_end == std::string_view::npos ? std::string_view::npos
                                                                                            : value_end - open_end - 1));
      // string="true": the text itself. Otherwise JSON; a value that is not JSON (the model broke the rule) is
      // kept as text rather than lost.
      ojson v = attrs.find("string=\"true\"") != std::string_view::npos ? ojson(value)
                                                                         : ojson::parse(value, nullptr, false);
      if (v.is_discarded()) v = value;
      args[key] = std::move(v);
      if (value_end == std::string_view::npos) break;
      p = value_end + kParamEnd.size();
    }
    c.arguments = args.dump(-1, ' ', false, ojson::error_handler_t::replace);
    c.id = "call_" + std::to_string((*counter)++);
    calls.push_back(std::move(c));
    if (end == std::string_view::npos) break;
    at = end + kInvokeEnd.size();
  }
  return calls;
}

}  // namespace baleine
