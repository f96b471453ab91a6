// Fuzz target: the chat-template renderer (every format) over messages built from the input, and the streamed
// output parser (reasoning / content / DeepSeek tool calls) over the input cut into chunks at input-chosen places:
// whatever the chunking, the parser must give the same reasoning, content and calls as one whole push.
#include "core/check.h"
#include "fuzz_common.h"
#include "tokenizer/chat_template.h"

using namespace baleine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest = fuzz::as_text(data + 2, size - 2);
  // Messages: pieces separated by 0x01; each piece's first byte picks the role.
  std::vector<ChatMessage> msgs;
  static const char* roles[] = {"system", "user", "assistant", "tool", "wizard"};
  for (std::string_view r = rest; !r.empty() && msgs.size() < 16;) {
    std::string_view piece = fuzz::next_piece(r, '\x01');
    ChatMessage m;
    m.role = roles[piece.empty() ? 1 : uint8_t(piece[0]) % 5];
    m.content = std::string(piece.substr(piece.empty() ? 0 : 1));
    if (m.role == std::string("assistant") && !m.content.empty() && (uint8_t(m.content[0]) & 1)) {
      ToolCall c;
      c.id = "call_0";
      c.name = "f";
      c.arguments = m.content;
      m.tool_calls.push_back(c);
    }
    msgs.push_back(std::move(m));
  }
  for (ChatFormat f : {ChatFormat::DeepSeekV3, ChatFormat::DeepSeekR1, ChatFormat::Qwen2, ChatFormat::Llama3}) {
    try {
      (void)apply_chat_template(f, msgs);
    } catch (const Error&) {
    }
  }
  // The output parser: one push of everything against pushes of input-sized chunks.
  const bool reasoning = data[0] & 1;
  const size_t step = 1 + data[1] % 7;
  auto run = [&](size_t chunk) {
    OutputParser p(reasoning);
    OutputParser::Delta all;
    for (size_t i = 0; i < rest.size(); i += chunk) {
      OutputParser::Delta d = p.push(rest.substr(i, chunk));
      all.reasoning += d.reasoning;
      all.content += d.content;
      for (auto& c : d.tool_calls) all.tool_calls.push_back(c);
    }
    OutputParser::Delta d = p.finish();
    all.reasoning += d.reasoning;
    all.content += d.content;
    for (auto& c : d.tool_calls) all.tool_calls.push_back(c);
    return all;
  };
  const auto whole = run(rest.size() + 1), pieces = run(step);
  if (whole.reasoning != pieces.reasoning || whole.content != pieces.content ||
      whole.tool_calls.size() != pieces.tool_calls.size())
    __builtin_trap();
  for (size_t i = 0; i < whole.tool_calls.size(); ++i)
    if (whole.tool_calls[i].name != pieces.tool_calls[i].name || whole.tool_calls[i].arguments != pieces.tool_calls[i].arguments)
      __builtin_trap();
  return 0;
}
