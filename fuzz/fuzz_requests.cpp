// Fuzz target: the API's request parsers — the JSON body reader (size, nesting, UTF-8), the chat and completions
// request validators and the Anthropic Messages one (and its count_tokens form) with every model route, then the
// chat template render of what was accepted.
// Anything but ApiError / baleine::Error escaping is a finding.
#include "core/check.h"
#include "fuzz_common.h"
#include "server/anthropic_api.h"
#include "server/openai_api.h"

using namespace baleine;
using namespace baleine::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Every route kind: R1 (always thinks), V3.1 hybrid (per request), plain formats (never).
  static const std::vector<ModelRoute> routes = [] {
    std::vector<ModelRoute> all;
    for (ChatFormat f : {ChatFormat::DeepSeekV3, ChatFormat::DeepSeekR1, ChatFormat::DeepSeekV31, ChatFormat::Qwen2,
                         ChatFormat::Llama3})
      for (ModelRoute r : make_routes(f == ChatFormat::DeepSeekV3 ? "model" : "m" + std::to_string(int(f)), f))
        all.push_back(r);
    return all;
  }();
  Limits limits;
  limits.context = 1024;
  const std::string body(fuzz::as_text(data, size));
  json j;
  try {
    j = parse_json_body(body, 1 << 20);
  } catch (const ApiError&) {
    return 0;
  }
  try {
    ChatTask t = parse_chat_request(j, routes, limits);
    (void)apply_chat_template(t.route->format, t.messages);
  } catch (const ApiError&) {
  } catch (const Error&) {
  }
  for (bool count_tokens : {false, true}) {
    try {
      AnthropicTask a = parse_anthropic_request(j, routes, limits, count_tokens);
      (void)apply_chat_template(a.chat.route->format, a.chat.messages);
    } catch (const ApiError&) {
    } catch (const Error&) {
    }
  }
  try {
    (void)parse_completion_request(j, routes, limits);
  } catch (const ApiError&) {
  } catch (const Error&) {
  }
  return 0;
}
