// tokenizer/chat_template.h — chat templates written natively (no Jinja) and the incremental output parser.
// defines: ToolCall, ChatMessage, ChatFormat, chat_format_from_name, apply_chat_template, OutputParser
//
// Formats: DeepSeek-V3 (system, user, assistant, tool calls, tool outputs), DeepSeek-R1 (same, earlier reasoning
// stripped from history, generation prompt "<｜Assistant｜><think>\n"), Qwen2 ChatML and Llama-3 headers.
// R1-Distill models use the R1 format over their own vocabulary.
#pragma once
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
};

enum class ChatFormat { DeepSeekV3, DeepSeekR1, Qwen2, Llama3 };
ChatFormat chat_format_from_name(const std::string& name);  // "deepseek-v3", "deepseek-r1", "qwen2", "llama3"

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token = "<｜begin▁of▁sentence｜>";  // DeepSeek formats; Llama-3 uses <|begin_of_text|>
};

// Throws baleine::Error on an unknown role or a tool message in a format that has none.
std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages,
                                const ChatTemplateOptions& options = {});

// Splits streamed model output, chunk by chunk (any chunk size, even one byte), into reasoning (inside
// <think>…</think>), content, and DeepSeek tool calls (<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>), never letting a
// marker, or half of one, leak into reasoning or content.
class OutputParser {
 public:
  // starts_in_reasoning: the prompt already opened <think> (R1 generation prompt).
  explicit OutputParser(bool starts_in_reasoning = false);
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
  int call_counter_ = 0;
};

// Parses the inside of a tool-calls block into calls (exposed for tests).
std::vector<ToolCall> parse_deepseek_tool_calls(std::string_view block, int* counter);

}  // namespace baleine
