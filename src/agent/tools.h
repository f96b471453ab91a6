// agent/tools.h — OpenAI function calling without HTTP: tool definitions parsed and validated, rendered into the
// DeepSeek chat template, tool_choice / parallel_tool_calls enforced as decoding constraints, and tool calls parsed
// from model output into OpenAI `tool_calls`.
// defines: ToolFunction, ToolLimits, ToolChoiceMode, ToolChoice, parse_tools, parse_tool_choice,
//          render_tools_prompt, add_tools_to_messages, chat_messages_from_openai, tool_calls_grammar,
//          ToolConstraintOptions, make_tool_constraint, AssistantTurn, parse_assistant_output, tool_calls_to_openai,
//          new_tool_call_id
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "agent/constraint.h"
#include "agent/grammar.h"
#include "tokenizer/chat_template.h"

namespace baleine::agent {

struct ToolFunction {
  std::string name;         // [A-Za-z0-9_-]{1,64}
  std::string description;
  nlohmann::json parameters = nlohmann::json::object();  // JSON schema of the arguments object
  bool strict = false;      // arguments must match the schema exactly (unsupported keywords rejected)
};

struct ToolLimits {
  size_t max_tools = 128;
  size_t max_description_bytes = 8192;
  size_t max_parameters_bytes = 65536;  // serialised schema
  size_t max_total_bytes = 262144;      // all tool definitions together
};

enum class ToolChoiceMode { None, Auto, Required, Named };
struct ToolChoice {
  ToolChoiceMode mode = ToolChoiceMode::Auto;
  std::string name;  // Named
};

// `tools` as in an OpenAI request ([{"type":"function","function":{name, description, parameters, strict}}]).
// Throws baleine::Error naming the field ("tools[3].function.name: ..."), fit for a 400 reply. Every schema is
// compiled here, so a hostile one is refused before any generation.
std::vector<ToolFunction> parse_tools(const nlohmann::json& tools, const ToolLimits& limits = {});
// "none" | "auto" | "required" | {"type":"function","function":{"name":...}}; null: auto (none when no tools).
ToolChoice parse_tool_choice(const nlohmann::json& choice, const std::vector<ToolFunction>& tools);

// The system-prompt section that describes the tools and the DeepSeek-V3 call format.
std::string render_tools_prompt(const std::vector<ToolFunction>& tools);
// Returns the messages with the tools section appended to the system message (added first when none); the
// messages are unchanged when there are no tools or the choice is "none".
std::vector<ChatMessage> add_tools_to_messages(std::vector<ChatMessage> messages, const std::vector<ToolFunction>& tools,
                                               const ToolChoice& choice);
// OpenAI `messages` (system/developer, user, assistant with content null + tool_calls, tool) to ChatMessages;
// content given as an array of text parts is joined. Throws baleine::Error naming the field.
std::vector<ChatMessage> chat_messages_from_openai(const nlohmann::json& messages);

// The tool-call block: calls (one of `tools`, or only the named one) each with arguments matching its schema,
// one call or several (parallel), then the end marker. after_open: the calls-begin marker was already produced.
Grammar tool_calls_grammar(const std::vector<ToolFunction>& tools, const ToolChoice& choice, bool parallel, bool after_open);

struct ToolConstraintOptions {
  bool parallel_tool_calls = true;
  int64_t max_tokens = 0;  // the request's budget (required/named calls always finish inside it)
};
// none: the tool-call markers can never be sampled; auto: free text, and once the model opens a tool-call block
// the calls follow the grammar; required/named: the output is the tool-call block. nullptr when nothing applies.
// Throws when max_tokens cannot hold the shortest required call.
std::shared_ptr<TokenConstraint> make_tool_constraint(const std::vector<ToolFunction>& tools, const ToolChoice& choice,
                                                      std::shared_ptr<const VocabIndex> vocab,
                                                      const ToolConstraintOptions& options);

// What the model said, split: reasoning, content, and tool calls with fresh OpenAI ids.
struct AssistantTurn {
  std::string reasoning, content;
  std::vector<ToolCall> tool_calls;
  std::vector<std::string> problems;  // calls naming an unknown tool or with arguments that are not JSON objects
  std::string finish_reason;          // "tool_calls" when there are calls, else the engine's reason
};
AssistantTurn parse_assistant_output(const std::string& text, const std::vector<ToolFunction>& tools,
                                     const std::string& engine_finish_reason, bool starts_in_reasoning = false);
// [{"id","type":"function","function":{"name","arguments"}}]
nlohmann::json tool_calls_to_openai(const std::vector<ToolCall>& calls);
std::string new_tool_call_id();  // "call_" + 24 random alphanumerics

}  // namespace baleine::agent
