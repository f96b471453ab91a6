// tokenizer/chat_template.h — chat templates written natively (no Jinja) and the incremental output parser.
// defines: ToolCall, ChatMessage, ChatFormat, chat_format_from_name, apply_chat_template, OutputParser
//
// Formats: DeepSeek-V3 (system, user, assistant, tool calls, tool outputs), DeepSeek-R1 (same, earlier reasoning
// stripped from history, generation prompt "<｜Assistant｜><think>\n"), DeepSeek-V3.1 hybrid (the assistant turn
// opens with "<think>" to think or "</think>" not to, chosen per request), Qwen2 ChatML and Llama-3 headers.
// R1-Distill models use the R1 format over their own vocabulary. DeepSeek-V3.2 and V4 (chat_template_dsml.cpp)
// are hybrids too, with tools described in the system prompt and called in the "DSML" markup
// (<｜DSML｜function_calls> in V3.2, <｜DSML｜tool_calls> in V4); both render token for token as their Jinja
// templates do (tests/data/chat_templates, made by tests/reference/make_template_fixtures.py).
//
// Reasoning sent back (ChatMessage::reasoning), as DeepSeek's API treats it: an assistant message before the last
// user message loses it (it was an earlier turn's thinking); one after it (the current, tool-calling turn) keeps
// it, rendered as the <think>…</think> the model wrote, when the request thinks (R1 and hybrid formats only).
// V3.2 applies this rule, and writes "<think></think>" for a current-turn message sent back without reasoning.
// V4 keeps more, as its template does: when tools are defined or any tool result is in the conversation, every
// assistant message of a thinking request keeps its reasoning; otherwise those after the last user message or
// tool result do. A message whose reasoning is dropped opens with a bare </think> in both.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace baleine {

struct ToolCall {
  std::string id;
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text
};

struct ChatMessage {
  std::string role;       // system | user | assistant | tool
  std::string content;
  bool has_content = true;  // false: an assistant turn made only of tool calls
  std::vector<ToolCall> tool_calls;
  std::string reasoning{};     // reasoning_content sent back by the client (brace-initialised: aggregates may omit it)
  bool has_reasoning = false;  // reasoning_content was present (even empty)
};

enum class ChatFormat { DeepSeekV3, DeepSeekR1, DeepSeekV31, DeepSeekV32, DeepSeekV4, Qwen2, Llama3 };
// "deepseek-v3", "deepseek-r1", "deepseek-v3.1" (hybrid), "deepseek-v3.2", "deepseek-v4" (hybrid, DSML tool
// calls), "qwen2", "llama3"
ChatFormat chat_format_from_name(const std::string& name);
const char* chat_format_name(ChatFormat f);

// What a format can do about thinking: R1 always thinks, the hybrids (V3.1, V3.2, V4) switch per request, the rest
// never do.
enum class ThinkingSupport { Never, Toggle, Always };
ThinkingSupport thinking_support(ChatFormat f);

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  // Hybrid format: open the reply with <think> (true) or </think>; also whether reasoning sent back within the
  // current turn is kept (R1 and hybrid). R1 always thinks; V3, Qwen2 and Llama-3 ignore it.
  bool thinking = true;
  std::string bos_token = "<｜begin▁of▁sentence｜>";  // DeepSeek formats; Llama-3 uses <|begin_of_text|>
  // DeepSeek-V3.2 / V4 only: the tools the system prompt describes, each the JSON text of an OpenAI tool's
  // "function" object ({"name", "description", "parameters"}), written in the given order with its keys in the
  // given order (the template serialises them as they come). The other formats take tools as text in the
  // system message (agent::add_tools_to_messages) and throw if this is set.
  std::vector<std::string> tools{};
};

// Throws baleine::Error on an unknown role, a tool message in a format that has none, or (V3.2 / V4) tool call
// arguments or a tool definition that is not a JSON object.
std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages,
                                const ChatTemplateOptions& options = {});
// True when the generation prompt of `format` leaves the model inside <think> (its output starts as reasoning).
bool generation_starts_in_reasoning(ChatFormat format, bool thinking);
// Index of the last user message, or -1: messages after it form the current turn (reasoning kept there).
int64_t last_user_index(const std::vector<ChatMessage>& messages);

// Splits streamed model output, chunk by chunk (any chunk size, even one byte), into reasoning (inside
// <think>…</think>), content, and DeepSeek tool calls (<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>, or the DSML
// blocks of V3.2 / V4, either name accepted from any model), never letting a marker, or half of one, leak into
// reasoning or content. A tool-calls block that starts inside the reasoning (the model forgot </think>, or a
// constraint forced the call) ends the reasoning and is parsed as tool calls. The blank lines the DSML formats put
// between the content and the block are not content (so a reply sent back renders as the model wrote it).
class OutputParser {
 public:
  // starts_in_reasoning: the prompt already opened <think> (R1 generation prompt). reasoning_allowed = false: a
  // request that turned thinking off on a hybrid model — a <think> the model writes anyway stays content (as
  // DeepSeek's non-thinking mode never returns reasoning_content).
  explicit OutputParser(bool starts_in_reasoning = false, bool reasoning_allowed = true);
  struct Delta {
    std::string reasoning, content;
    std::vector<ToolCall> tool_calls;  // complete calls, in order
  };
  Delta push(std::string_view chunk);
  Delta finish();  // flushes held-back text; an unterminated tool-call block is parsed as far as possible
  bool in_reasoning() const { return mode_ == Mode::Reasoning; }

 private:
  enum class Mode { Content, Reasoning, ToolCalls };
  void drain(Delta& d, bool final);
  Mode mode_;
  std::string buffer_;
  bool content_started_ = false;
  bool reasoning_allowed_ = true;
  bool calls_in_reasoning_ = false;  // the current tool-calls block opened before </think>
  int block_ = 0;                    // the open tool-calls block: its index in the opener list (chat_template.cpp)
  int call_counter_ = 0;
};

// Parses the inside of a tool-calls block into calls (exposed for tests).
std::vector<ToolCall> parse_deepseek_tool_calls(std::string_view block, int* counter);
// The same for the inside of a DSML block: each invoke's parameters become a JSON object (string="true" values as
// strings, the others parsed as JSON, kept as strings when they are not JSON), written compactly.
std::vector<ToolCall> parse_dsml_tool_calls(std::string_view block, int* counter);

}  // namespace baleine
