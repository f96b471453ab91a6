// Fuzz target: the API's request parsers — the JSON body reader (size, nesting, UTF-8), the chat and completions
// request validators and the Anthropic Messages one (and its count_tokens form) with every model route, then the
// chat template render of what was accepted; /v1/responses' input items (alone, and answering the body's
// "pending" calls), /v1/embeddings' input (with the default model's tokenizer) and, for bodies naming server
// tools, the test that routes a chat completion to the server-side tool loop.
// Anything but ApiError / baleine::Error escaping is a finding.
#include "core/check.h"
#include "fuzz_common.h"
#include "server/anthropic_api.h"
#include "server/openai_api.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

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
  static const Tokenizer tok = Tokenizer::load(BALEINE_SOURCE_DIR "/models/default/tokenizer.json");
  const json input = j.is_object() && j.contains("input") ? j["input"] : j;
  // "pending" as the server stores it (pending_calls_json: objects of string call_id, name, output and a boolean
  // client); it never comes from a client, so other shapes are not inputs.
  json pending = json::array();
  if (j.is_object() && j.contains("pending") && j["pending"].is_array())
    for (const auto& p : j["pending"])
      if (p.is_object() && p.value("call_id", json()).is_string() && p.value("name", json()).is_string() &&
          p.value("output", json()).is_string() && p.value("client", json()).is_boolean())
        pending.push_back(p);
  for (const json& p : {pending, json::array()}) {
    try {
      (void)Server::response_input(input, p);
    } catch (const ApiError&) {
    } catch (const Error&) {
    }
  }
  try {
    (void)Server::embedding_inputs(input, tok, limits);
  } catch (const ApiError&) {
  } catch (const Error&) {
  }
  (void)Server::has_server_tools(j);
  return 0;
}
