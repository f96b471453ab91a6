#include "tokenizer/chat_template.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "core/check.h"
#include "tokenizer/chat_template_dsml.h"

namespace baleine {

namespace {
const std::string kUser = "<｜User｜>", kAssistant = "<｜Assistant｜>", kEos = "<｜end▁of▁sentence｜>";
const std::string kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>";
const std::string kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>", kSep = "<｜tool▁sep｜>";
const std::string kOutputsBegin = "<｜tool▁outputs▁begin｜>", kOutputsEnd = "<｜tool▁outputs▁end｜>";
const std::string kOutputBegin = "<｜tool▁output▁begin｜>", kOutputEnd = "<｜tool▁output▁end｜>";
const std::string kThink = "<think>", kThinkEnd = "</think>";

enum class Variant { V3, R1, V31 };

// The tool-call blocks the parser knows: V3's, then the DSML ones (V3.2, V4). OutputParser::block_ indexes this.
struct CallBlock {
  const std::string *open, *close;
  bool dsml;
};
const CallBlock kBlocks[] = {{&kCallsBegin, &kCallsEnd, false},
                             {&dsml::kFunctionCalls, &dsml::kFunctionCallsEnd, true},
                             {&dsml::kToolCalls, &dsml::kToolCallsEnd, true}};

// The first block opener in `s`: its position (npos when none) and its index in kBlocks.
std::pair<size_t, int> find_opener(const std::string& s) {
  std::pair<size_t, int> best{std::string::npos, 0};
  for (int i = 0; i < int(std::size(kBlocks)); ++i)
    if (size_t q = s.find(*kBlocks[i].open); q < best.first) best = {q, i};
  return best;
}

// The reasoning block a kept reasoning_content renders as: what the model wrote after its generation prompt opened
// <think> (R1's spacing is the one its training data and rl/common.cpp use).
std::string kept_reasoning(const ChatMessage& m, Variant v) {
  if (v == Variant::R1) return kThink + "\n" + m.reasoning + "\n" + kThinkEnd + "\n\n";
  return kThink + m.reasoning + kThinkEnd;
}

std::string tool_calls_block(const ChatMessage& m) {
  std::string out = kCallsBegin;
  for (size_t i = 0; i < m.tool_calls.size(); ++i) {
    const ToolCall& c = m.tool_calls[i];
    out += (i ? "\n" : "") + kCallBegin + c.type + kSep + c.name + "\n```json\n" + c.arguments + "\n```" + kCallEnd;
  }
  return out + kCallsEnd;
}

// Content without an earlier turn's reasoning written inline (text up to the last </think>).
std::string strip_inline_reasoning(std::string content) {
  auto p = content.rfind(kThinkEnd);
  if (p != std::string::npos) content = content.substr(p + kThinkEnd.size());
  return content;
}

// V3 and R1 follow DeepSeek's released templates. V3.1 (hybrid) follows its model card: "<｜Assistant｜></think>"
// before a non-thinking reply, "<｜Assistant｜><think>" to think; tool outputs are bare <｜tool▁output▁begin｜>
// blocks. Its tool calls keep the V3 syntax (function<｜tool▁sep｜>name + a ```json fence), the one the tool-call
// grammar (agent/tools.cpp) constrains decoding to, so what is parsed back is what was rendered.
std::string deepseek(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o, Variant v) {
  const bool r1 = v == Variant::R1, hybrid = v == Variant::V31;
  const bool thinking = r1 || (hybrid && o.thinking);
  std::string system;
  bool first_system = true;
  for (const auto& m : messages)
    if (m.role == "system") {
      system += (first_system ? "" : "\n\n") + m.content;
      first_system = false;
    }
  const int64_t last_user = last_user_index(messages);
  std::string out = o.bos_token + system;
  bool in_tool_outputs = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system") continue;
    // Reasoning is kept only inside the current turn and only when this request thinks (DeepSeek's rule).
    const bool keep = thinking && v != Variant::V3 && m.has_reasoning && int64_t(i) > last_user;
    if (hybrid) {
      if (m.role == "user") {
        out += kUser + m.content;
      } else if (m.role == "assistant") {
        // After a user message the turn opens with the Assistant tag; after tool outputs the model just goes on.
        if (!in_tool_outputs) out += kAssistant + (keep ? "" : kThinkEnd);
        if (keep) out += kept_reasoning(m, v);
        if (m.has_content) out += strip_inline_reasoning(m.content);
        if (!m.tool_calls.empty()) out += tool_calls_block(m);
        out += kEos;
        in_tool_outputs = false;
      } else if (m.role == "tool") {
        out += kOutputBegin + m.content + kOutputEnd;
        in_tool_outputs = true;
      } else {
        BALEINE_FAIL("unknown message role '{}' (system, user, assistant or tool)", m.role);
      }
      continue;
    }
    if (m.role != "tool" && in_tool_outputs && !(m.role == "assistant" && m.has_content)) {
      out += kOutputsEnd;
      in_tool_outputs = false;
    }
    if (m.role == "user") {
      out += kUser + m.content;
    } else if (m.role == "assistant") {
      const std::string reasoning = keep ? kept_reasoning(m, v) : "";
      if (!m.tool_calls.empty() && (!m.has_content || m.content.empty())) {
        // The released Jinja template only closes the block after a second call (a quirk); we always close it.
        out += kAssistant + reasoning + tool_calls_block(m) + kEos;
      } else {
        const std::string content = r1 ? strip_inline_reasoning(m.content) : m.content;  // R1: not fed back
        if (in_tool_outputs) {
          out += kOutputsEnd + reasoning + content + kEos;
          in_tool_outputs = false;
        } else {
          out += kAssistant + reasoning + content + kEos;
        }
      }
    } else if (m.role == "tool") {
      out += in_tool_outputs ? "\n" + kOutputBegin + m.content + kOutputEnd : kOutputsBegin + kOutputBegin + m.content + kOutputEnd;
      in_tool_outputs = true;
    } else {
      BALEINE_FAIL("unknown message role '{}' (system, user, assistant or tool)", m.role);
    }
  }
  if (hybrid) {
    // Thinking requests reason again over tool results (as DeepSeek's thinking tool loop does); non-thinking ones
    // continue straight after the outputs, as V3.1's template has it.
    if (in_tool_outputs) out += thinking ? kThink : "";
    else if (o.add_generation_prompt) out += kAssistant + (thinking ? kThink : kThinkEnd);
    return out;
  }
  if (in_tool_outputs) out += kOutputsEnd;
  else if (o.add_generation_prompt) out += kAssistant + (r1 ? kThink + "\n" : "");
  return out;
}

std::string chatml(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o) {
  std::string out;
  for (const auto& m : messages) {
    BALEINE_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool",
                  "unknown message role '{}'", m.role);
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string llama3(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o) {
  std::string out = "<|begin_of_text|>";
  for (const auto& m : messages) {
    BALEINE_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool",
                  "unknown message role '{}'", m.role);
    std::string role = m.role == "tool" ? "ipython" : m.role;
    out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
  }
  if (o.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Longest suffix of `s` that is a proper prefix of `marker` (text that might become the marker).
size_t partial_suffix(const std::string& s, const std::string& marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.compare(s.size() - n, n, marker, 0, n) == 0) return n;
  return 0;
}
}  // namespace

ChatFormat chat_format_from_name(const std::string& name) {
  if (name == "deepseek-v3" || name == "deepseek") return ChatFormat::DeepSeekV3;
  if (name == "deepseek-r1" || name == "r1") return ChatFormat::DeepSeekR1;
  if (name == "deepseek-v3.1" || name == "hybrid") return ChatFormat::DeepSeekV31;
  if (name == "deepseek-v3.2") return ChatFormat::DeepSeekV32;
  if (name == "deepseek-v4") return ChatFormat::DeepSeekV4;
  if (name == "qwen2" || name == "chatml") return ChatFormat::Qwen2;
  if (name == "llama3") return ChatFormat::Llama3;
  BALEINE_FAIL("unknown chat format '{}' (deepseek-v3, deepseek-r1, deepseek-v3.1, deepseek-v3.2, deepseek-v4, qwen2, llama3)", name);
}

const char* chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::DeepSeekV3: return "deepseek-v3";
    case ChatFormat::DeepSeekR1: return "deepseek-r1";
    case ChatFormat::DeepSeekV31: return "deepseek-v3.1";
    case ChatFormat::DeepSeekV32: return "deepseek-v3.2";
    case ChatFormat::DeepSeekV4: return "deepseek-v4";
    case ChatFormat::Qwen2: return "qwen2";
    case ChatFormat::Llama3: return "llama3";
  }
  return "?";
}

ThinkingSupport thinking_support(ChatFormat f) {
  if (f == ChatFormat::DeepSeekR1) return ThinkingSupport::Always;
  if (f == ChatFormat::DeepSeekV31 || f == ChatFormat::DeepSeekV32 || f == ChatFormat::DeepSeekV4)
    return ThinkingSupport::Toggle;
  return ThinkingSupport::Never;
}

bool generation_starts_in_reasoning(ChatFormat f, bool thinking) {
  return f == ChatFormat::DeepSeekR1 || (thinking_support(f) == ThinkingSupport::Toggle && thinking);
}

int64_t last_user_index(const std::vector<ChatMessage>& messages) {
  for (size_t i = messages.size(); i-- > 0;)
    if (messages[i].role == "user") return int64_t(i);
  return -1;
}

std::string apply_chat_template(ChatFormat f, const std::vector<ChatMessage>& messages, const ChatTemplateOptions& o) {
  // Silently dropping tool definitions would leave the model calling tools it was never shown.
  BALEINE_CHECK(o.tools.empty() || f == ChatFormat::DeepSeekV32 || f == ChatFormat::DeepSeekV4,
                "the {} chat format takes tools in the system message, not as template options", chat_format_name(f));
  switch (f) {
    case ChatFormat::DeepSeekV32: return dsml::render(messages, o, false);
    case ChatFormat::DeepSeekV4: return dsml::render(messages, o, true);
    case ChatFormat::DeepSeekV3: return deepseek(messages, o, Variant::V3);
    case ChatFormat::DeepSeekR1: return deepseek(messages, o, Variant::R1);
    case ChatFormat::DeepSeekV31: return deepseek(messages, o, Variant::V31);
    case ChatFormat::Qwen2: return chatml(messages, o);
    case ChatFormat::Llama3: return llama3(messages, o);
  }
  return "";
}

std::vector<ToolCall> parse_deepseek_tool_calls(std::string_view block, int* counter) {
  std::vector<ToolCall> calls;
  size_t at = 0;
  while ((at = block.find(kCallBegin, at)) != std::string_view::npos) {
    at += kCallBegin.size();
    size_t end = block.find(kCallEnd, at);
    std::string_view body = block.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    ToolCall c;
    size_t sep = body.find(kSep);
    if (sep == std::string_view::npos) break;
    c.type = std::string(body.substr(0, sep));
    std::string_view rest = body.substr(sep + kSep.size());
    size_t nl = rest.find('\n');
    c.name = std::string(rest.substr(0, nl));
    std::string_view args = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    // Arguments sit in a ```json fence (optional: be lenient with models that omit it).
    if (args.substr(0, 7) == "```json") args.remove_prefix(7);
    while (!args.empty() && (args.front() == '\n' || args.front() == ' ')) args.remove_prefix(1);
    size_t fence = args.rfind("```");
    if (fence != std::string_view::npos) args = args.substr(0, fence);
    while (!args.empty() && (args.back() == '\n' || args.back() == ' ')) args.remove_suffix(1);
    c.arguments = std::string(args);
    c.id = "call_" + std::to_string((*counter)++);
    calls.push_back(std::move(c));
    if (end == std::string_view::npos) break;
    at = end + kCallEnd.size();
  }
  return calls;
}

OutputParser::OutputParser(bool starts_in_reasoning, bool reasoning_allowed)
    : mode_(starts_in_reasoning ? Mode::Reasoning : Mode::Content), reasoning_allowed_(reasoning_allowed) {}

void OutputParser::drain(Delta& d, bool final) {
  for (;;) {
    if (mode_ == Mode::Reasoning) {
      // A tool-calls block inside the reasoning ends it: the block is a call, never reasoning text. The other tool
      // markers (a small model sometimes writes <｜tool▁calls▁end｜> while thinking) are structure, not thought:
      // they are dropped from the reasoning. Content is left raw (the grounded-quote constraint sees raw text).
      const size_t end = buffer_.find(kThinkEnd);
      const auto [calls, block] = find_opener(buffer_);
      const std::string* markers[] = {&kCallsEnd, &kCallBegin, &kCallEnd, &kSep};
      size_t stray = std::string::npos, stray_size = 0;
      for (const std::string* m : markers)
        if (size_t q = buffer_.find(*m); q < stray) stray = q, stray_size = m->size();
      const size_t p = std::min({end, calls, stray});
      if (p == std::string::npos) {
        size_t keep = 0;
        if (!final) {
          keep = partial_suffix(buffer_, kThinkEnd);
          for (const std::string* m : markers) keep = std::max(keep, partial_suffix(buffer_, *m));
          for (const CallBlock& b : kBlocks) keep = std::max(keep, partial_suffix(buffer_, *b.open));
        }
        d.reasoning += buffer_.substr(0, buffer_.size() - keep);
        buffer_.erase(0, buffer_.size() - keep);
        return;
      }
      d.reasoning += buffer_.substr(0, p);
      if (p == stray) {
        buffer_.erase(0, p + stray_size);
      } else if (p == calls) {
        buffer_.erase(0, p + kBlocks[block].open->size());
        mode_ = Mode::ToolCalls;
        block_ = block;
        calls_in_reasoning_ = true;
      } else {
        buffer_.erase(0, p + kThinkEnd.size());
        mode_ = Mode::Content;
        content_started_ = false;
      }
      continue;
    }
    if (mode_ == Mode::ToolCalls) {
      const CallBlock& b = kBlocks[block_];
      size_t p = buffer_.find(*b.close), marker = b.close->size();
      bool cut_by_think = false;
      // A block opened inside the reasoning may be cut short by </think> (a stray marker while thinking): the
      // block ends there and the answer after </think> is content, not swallowed into a call.
      if (calls_in_reasoning_)
        if (size_t q = buffer_.find(kThinkEnd); q < p) p = q, marker = kThinkEnd.size(), cut_by_think = true;
      if (p == std::string::npos && !final) return;
      std::string block = buffer_.substr(0, p == std::string::npos ? buffer_.size() : p);
      auto calls = b.dsml ? parse_dsml_tool_calls(block, &call_counter_) : parse_deepseek_tool_calls(block, &call_counter_);
      d.tool_calls.insert(d.tool_calls.end(), calls.begin(), calls.end());
      buffer_.erase(0, p == std::string::npos ? buffer_.size() : p + marker);
      mode_ = Mode::Content;
      if (cut_by_think) content_started_ = false;  // the answer's leading newlines are dropped
      calls_in_reasoning_ = false;
      if (final) { buffer_.clear(); return; }
      continue;
    }
    // Content: strip the blank lines that follow </think>; watch for <think> (R1-Zero style) and tool calls.
    if (!content_started_) {
      size_t n = 0;
      while (n < buffer_.size() && (buffer_[n] == '\n' || buffer_[n] == '\r')) ++n;
      buffer_.erase(0, n);
      if (buffer_.empty()) return;
      content_started_ = true;
    }
    const size_t think = reasoning_allowed_ ? buffer_.find(kThink) : std::string::npos;
    const auto [calls, block] = find_opener(buffer_);
    const size_t p = std::min(think, calls);
    if (p == std::string::npos) {
      size_t keep = 0;
      if (!final) {
        keep = reasoning_allowed_ ? partial_suffix(buffer_, kThink) : 0;
        for (const CallBlock& b : kBlocks) keep = std::max(keep, partial_suffix(buffer_, *b.open));
        // Newlines before the end (or before a held marker start) wait for what follows: before a DSML block
        // they are the separator, not content.
        while (keep < buffer_.size() && buffer_[buffer_.size() - 1 - keep] == '\n') ++keep;
      }
      d.content += buffer_.substr(0, buffer_.size() - keep);
      buffer_.erase(0, buffer_.size() - keep);
      return;
    }
    std::string_view before = std::string_view(buffer_).substr(0, p);
    if (p == calls && kBlocks[block].dsml)
      while (!before.empty() && before.back() == '\n') before.remove_suffix(1);
    d.content += before;
    if (p == think) {
      buffer_.erase(0, p + kThink.size());
      mode_ = Mode::Reasoning;
    } else {
      buffer_.erase(0, p + kBlocks[block].open->size());
      mode_ = Mode::ToolCalls;
      block_ = block;
    }
  }
}

OutputParser::Delta OutputParser::push(std::string_view chunk) {
  buffer_.append(chunk);
  Delta d;
  drain(d, false);
  return d;
}

OutputParser::Delta OutputParser::finish() {
  Delta d;
  drain(d, true);
  return d;
}

}  // namespace baleine
