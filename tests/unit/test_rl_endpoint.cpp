// Evaluation through an OpenAI-compatible endpoint: a local cpp-httplib server answers /v1/completions and
// /v1/chat/completions with scripted replies; the report must count them exactly.
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "rl/endpoint.h"

using namespace baleine;
using namespace baleine::rl;

TEST(RlEndpoint, EvaluatesAnOpenAICompatibleServer) {
  auto suite = make_suite(nlohmann::json("arithmetic"), 5, "test");
  std::vector<Problem> ps;
  for (int i = 0; i < 6; ++i) ps.push_back(suite->problem(Split::Test, i));
  httplib::Server srv;
  int requests = 0;
  std::string seen_model, seen_auth;
  // Answers problem i right when i is even; the answer goes where each format expects it.
  auto answer_for = [&](const std::string& text) -> std::pair<int, const Problem*> {
    for (size_t i = 0; i < ps.size(); ++i)
      if (text.find(ps[i].question) != std::string::npos) return {int(i), &ps[i]};
    return {-1, nullptr};
  };
  srv.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    auto j = nlohmann::json::parse(req.body);
    seen_model = j["model"].get<std::string>();
    seen_auth = req.get_header_value("Authorization");
    ++requests;
    auto [i, p] = answer_for(j["prompt"].get<std::string>());
    std::string ans = p ? (i % 2 == 0 ? p->answer : "-1") : "?";
    nlohmann::json r = {{"choices", {{{"text", "\nwork\n</think>\n" + ans}}}}, {"usage", {{"completion_tokens", 4}}}};
    res.set_content(r.dump(), "application/json");
  });
  srv.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    auto j = nlohmann::json::parse(req.body);
    auto [i, p] = answer_for(j["messages"][0]["content"].get<std::string>());
    EXPECT_EQ(j["messages"][0]["content"].get<std::string>().find("<｜"), std::string::npos);  // the bare user turn
    std::string ans = p ? (i % 2 == 0 ? p->answer : "-1") : "?";
    nlohmann::json r = {{"choices", {{{"message", {{"role", "assistant"}, {"reasoning_content", "work"},
                                                   {"content", "<answer>" + ans + "</answer>"}}}}}}};
    res.set_content(r.dump(), "application/json");
  });
  const int port = srv.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread th([&] { srv.listen_after_bind(); });
  EndpointConfig ec;
  ec.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1/";
  ec.model = "tiny";
  ec.api_key = "sk-test";
  EvalConfig cfg;
  cfg.problems = 6;
  cfg.format = PromptFormat::Plain;
  auto r = evaluate_suite(endpoint_completer(ec, cfg.format), *suite, cfg);
  EXPECT_NEAR(r.pass1, 0.5, 1e-12);
  EXPECT_NEAR(r.format_rate, 1.0, 1e-12);
  EXPECT_NEAR(r.mean_tokens, 4.0, 1e-12);
  EXPECT_EQ(requests, 6);
  EXPECT_EQ(seen_model, "tiny");
  EXPECT_EQ(seen_auth, "Bearer sk-test");
  cfg.format = PromptFormat::Chat;
  auto c = evaluate_suite(endpoint_completer(ec, cfg.format), *suite, cfg);
  EXPECT_NEAR(c.pass1, 0.5, 1e-12);
  EXPECT_NEAR(c.format_rate, 1.0, 1e-12);
  // A server that is not there is a clear error, not a crash.
  EndpointConfig bad = ec;
  bad.base_url = "http://127.0.0.1:1/v1";
  EXPECT_THROW(endpoint_completer(bad, PromptFormat::Plain)("x", SamplingParams{}), Error);
  srv.stop();
  th.join();
}
