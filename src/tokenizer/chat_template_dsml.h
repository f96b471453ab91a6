// tokenizer/chat_template_dsml.h — internal to the tokenizer library: the DeepSeek-V3.2 / V4 formats, whose tool
// calls use the "DSML" markup (<｜DSML｜invoke name="…"><｜DSML｜parameter name="…" string="true|false">…).
// defines: dsml::render, the DSML block markers
#pragma once
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace baleine::dsml {

// V3.2 names its block function_calls, V4 tool_calls; the parser accepts either from any model.
inline const std::string kFunctionCalls = "<｜DSML｜function_calls>", kFunctionCallsEnd = "</｜DSML｜function_calls>";
inline const std::string kToolCalls = "<｜DSML｜tool_calls>", kToolCallsEnd = "</｜DSML｜tool_calls>";

// The whole prompt in the V3.2 (v4 = false) or V4 format; see chat_template.h for the rules.
std::string render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options, bool v4);

}  // namespace baleine::dsml
