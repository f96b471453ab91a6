// rl/endpoint.h — evaluation of any OpenAI-compatible endpoint: a CompleteFn over HTTP (cpp-httplib).
// defines: EndpointConfig, endpoint_completer
//
// Text formats (plain, r1zero) POST {base}/completions with the rendered prompt; the chat format POSTs
// {base}/chat/completions with the user turn, and the graded text is the reply's reasoning_content (when the
// server separates it) + "</think>" + content.
#pragma once
#include <string>

#include "rl/eval.h"

namespace baleine::rl {

struct EndpointConfig {
  std::string base_url;  // e.g. http://127.0.0.1:8080/v1
  std::string model;     // the "model" field of the request
  std::string api_key;   // sent as a Bearer token when not empty
  int64_t max_tokens = 96;
  double timeout_s = 300;
};
CompleteFn endpoint_completer(const EndpointConfig& cfg, PromptFormat format);

}  // namespace baleine::rl
