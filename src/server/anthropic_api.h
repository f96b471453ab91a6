// server/anthropic_api.h — Anthropic's Messages API wire format (POST /anthropic/v1/messages, as DeepSeek serves
// it for Anthropic clients such as Claude Code): a request is validated field by field (every unknown or malformed
// field is a 400 naming it) and translated into the same ChatTask a /v1/chat/completions request makes, so both
// APIs render the same prompt for the same conversation and share one generation path.
// defines: AnthropicTask, anthropic_to_chat_body, parse_anthropic_request, anthropic_error_type, anthropic_error_body,
//          thinking_signature
#pragma once
#include <string>
#include <vector>

#include "server/openai_api.h"

namespace baleine::server {

struct AnthropicTask {
  ChatTask chat;
  std::vector<std::string> stop_sequences;  // to name the one that ended the answer (stop_reason "stop_sequence")
};

// The Anthropic body as the equivalent chat-completions body (system -> a system message, tool_result blocks ->
// tool messages, tool_use -> tool_calls, thinking blocks -> reasoning_content, a last assistant message -> prefix
// completion, ...). count_tokens: the fields of /v1/messages/count_tokens (no max_tokens). Throws ApiError 400
// naming the Anthropic field.
json anthropic_to_chat_body(const json& body, const std::vector<ModelRoute>& routes, const Limits& limits,
                            bool count_tokens = false);
AnthropicTask parse_anthropic_request(const json& body, const std::vector<ModelRoute>& routes, const Limits& limits,
                                      bool count_tokens = false);
// invalid_request_error (400), authentication_error (401), permission_error (403), not_found_error (404),
// request_too_large (413), rate_limit_error (429), api_error (500), overloaded_error (503, 529).
const char* anthropic_error_type(int status);
// {"type": "error", "error": {"type", "message"}}
std::string anthropic_error_body(const ApiError& e);
// The signature of a thinking block: a digest of its text. Anthropic uses it to verify thinking sent back; this
// server keeps no secret and accepts any string there (DeepSeek's rule only needs the text back).
std::string thinking_signature(const std::string& thinking);

}  // namespace baleine::server
