#include "rl/endpoint.h"

#include <httplib.h>

#include "core/check.h"

namespace baleine::rl {

CompleteFn endpoint_completer(const EndpointConfig& cfg, PromptFormat format) {
  // Split "http://host:port/v1" into the scheme+host part httplib connects to and the path prefix.
  const std::string& url = cfg.base_url;
  const size_t scheme = url.find("://");
  BALEINE_CHECK(scheme != std::string::npos, "--endpoint '{}': expected http://host[:port]/path", url);
  const size_t slash = url.find('/', scheme + 3);
  const std::string host = url.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return [cfg, format, host, prefix](const std::string& prompt, const SamplingParams& sp) {
    httplib::Client cli(host);
    cli.set_read_timeout(std::chrono::milliseconds(int64_t(cfg.timeout_s * 1000)));
    httplib::Headers headers;
    if (!cfg.api_key.empty()) headers.emplace("Authorization", "Bearer " + cfg.api_key);
    nlohmann::json req = {{"model", cfg.model}, {"max_tokens", cfg.max_tokens}, {"temperature", sp.temperature},
                          {"top_p", sp.top_p}, {"seed", sp.seed & 0x7fffffff}};
    const bool chat = format == PromptFormat::Chat;
    std::string path = prefix + (chat ? "/chat/completions" : "/completions");
    if (chat) {
      // The prompt is the rendered chat template; the endpoint renders its own, so send the question turn.
      const size_t u = prompt.find("<｜User｜>"), a = prompt.find("<｜Assistant｜>");
      std::string user = u == std::string::npos ? prompt : prompt.substr(u + std::string("<｜User｜>").size(), a - u - std::string("<｜User｜>").size());
      req["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", user}}});
    } else {
      req["prompt"] = prompt;
    }
    auto res = cli.Post(path, headers, req.dump(), "application/json");
    BALEINE_CHECK(res, "{}{}: request failed ({})", host, path, httplib::to_string(res.error()));
    BALEINE_CHECK(res->status == 200, "{}{}: HTTP {}: {}", host, path, res->status, res->body.substr(0, 200));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(res->body);
    } catch (const nlohmann::json::parse_error&) {
      BALEINE_FAIL("{}{}: the reply is not JSON", host, path);
    }
    BALEINE_CHECK(j.contains("choices") && j["choices"].is_array() && !j["choices"].empty(), "{}{}: no choices in the reply",
                  host, path);
    const auto& c = j["choices"][0];
    std::string text;
    if (chat) {
      const auto& m = c.at("message");
      const std::string content = m.value("content", std::string());
      if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
        text = m["reasoning_content"].get<std::string>() + "</think>" + content;
      else
        text = content.rfind("<think>", 0) == 0 ? content.substr(7) : content;
    } else {
      text = c.value("text", std::string());
    }
    int64_t tokens = 0;
    if (j.contains("usage") && j["usage"].is_object()) tokens = j["usage"].value("completion_tokens", int64_t(0));
    return std::make_pair(text, tokens);
  };
}

}  // namespace baleine::rl
