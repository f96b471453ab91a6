// The server library without a network: JSON mode through the agent grammar, request validation, usage and
// cost, the SQLite store (keys hashed, ledger, conversations), the rate limiter and the Prometheus text.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "agent/constraint.h"
#include "agent/grammar.h"
#include "agent/tools.h"
#include "server/anthropic_api.h"
#include "server/http_guard.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/server.h"
#include "server/store.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;
using namespace baleine::server;

namespace {

std::shared_ptr<const Tokenizer> tiny_tokenizer() {
  static std::shared_ptr<const Tokenizer> tok = [] {
    auto dir = std::filesystem::temp_directory_path() / "baleine_test_server_tok";
    std::filesystem::create_directories(dir);
    {
      std::ofstream f(dir / "text.txt");
      for (int i = 0; i < 40; ++i) f << "{\"name\": \"fox\", \"n\": " << i << ", \"ok\": true, \"xs\": [1, 2.5e3, null]}\n";
    }
    BpeTrainOptions o;
    o.vocab_size = 330;
    o.progress = false;
    train_bpe_tokenizer({(dir / "text.txt").string()}, (dir / "tok").string(), o);
    return std::make_shared<const Tokenizer>(Tokenizer::load((dir / "tok").string()));
  }();
  return tok;
}

std::vector<ModelRoute> routes() { return make_routes("tiny", ChatFormat::DeepSeekV3); }

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e.status;
  }
  return 0;
}

// The error a request gets (status 0 and empty when it parses).
ApiError error_of(const std::string& body, const std::vector<ModelRoute>& r, const Limits& lim) {
  try {
    parse_chat_request(parse_json_body(body, 1 << 20), r, lim);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "");
}

}  // namespace

// JSON mode as the server builds it (the agent library's json_object grammar over the request's tokenizer):
// sampling uniformly among the allowed tokens always yields a JSON object, and inside max_tokens.
std::string sample_constrained(const Tokenizer& tok, TokenConstraint& c, std::mt19937& rng, int budget, bool bias_close) {
  std::string text;
  for (int used = 0; used < budget && !c.complete(); ++used) {
    std::vector<float> logits(size_t(tok.vocab_size()), 0.0f);
    c.mask(logits);
    std::vector<int32_t> allowed;
    for (size_t i = 0; i < logits.size(); ++i)
      if (std::isfinite(logits[i]) && !tok.is_special(int32_t(i))) allowed.push_back(int32_t(i));
    if (allowed.empty()) break;
    int32_t pick = allowed[rng() % allowed.size()];
    if (bias_close)  // '}' and ']' get a higher weight so documents end
      for (int32_t id : allowed) {
        const std::string b = tok.token_bytes(id);
        if ((b == "}" || b == "]") && rng() % 3 == 0) pick = id;
      }
    c.accept(pick);
    text += tok.token_bytes(pick);
  }
  return text;
}

TEST(JsonMode, ClosesAValidObjectWithinTheBudget) {
  auto tok = tiny_tokenizer();
  auto vocab = agent::VocabIndex::build(*tok);
  auto grammar = std::make_shared<const agent::Grammar>(agent::json_object_grammar());
  std::mt19937 rng(5);
  for (int budget : {3, 8, 20, 60, 400}) {
    for (int trial = 0; trial < 10; ++trial) {
      agent::GrammarConstraintOptions o;
      o.max_tokens = budget;
      agent::GrammarConstraint c(grammar, vocab, o);
      const std::string text = sample_constrained(*tok, c, rng, budget, budget == 400);
      EXPECT_TRUE(c.complete()) << "budget " << budget << ": " << text;
      ASSERT_TRUE(nlohmann::json::accept(text)) << text;
      EXPECT_TRUE(nlohmann::json::parse(text).is_object()) << text;
    }
  }
}

TEST(Api, ParsesAChatRequest) {
  Limits lim;
  lim.context = 1024;
  auto body = parse_json_body(R"({"model":"deepseek-reasoner","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":" there"}]}],
      "temperature":0.5,"top_p":0.9,"max_tokens":100,"stop":["\n\n","END"],"seed":42,"presence_penalty":0.5,
      "stream":true,"stream_options":{"include_usage":true},"n":2})", 1 << 20);
  auto routes_ = routes();
  ChatTask t = parse_chat_request(body, routes_, lim);
  EXPECT_TRUE(t.thinking);  // deepseek-reasoner on a V3 model: the R1 template, always thinking
  EXPECT_EQ(t.route->format, ChatFormat::DeepSeekR1);
  ASSERT_EQ(t.messages.size(), 2u);
  EXPECT_EQ(t.messages[1].content, "hi there");
  EXPECT_FLOAT_EQ(t.params.sampling.temperature, 1.0f);  // thinking mode: accepted, validated, not applied
  EXPECT_FLOAT_EQ(t.params.sampling.top_p, 1.0f);
  EXPECT_FLOAT_EQ(t.params.sampling.presence_penalty, 0.0f);
  EXPECT_EQ(t.params.max_tokens, 100);
  EXPECT_EQ(t.params.stop_strings.size(), 2u);
  EXPECT_EQ(t.params.sampling.seed, 42u);
  EXPECT_TRUE(t.stream && t.include_usage);
  EXPECT_EQ(t.n, 2);
}

TEST(Api, RefusesBadRequests) {
  Limits lim;
  lim.context = 1024;
  auto r = routes();
  auto chat = [&](const std::string& s) { return status_of([&] { parse_chat_request(parse_json_body(s, 1 << 16), r, lim); }); };
  EXPECT_EQ(chat(""), 400);
  EXPECT_EQ(chat("{}"), 400);
  EXPECT_EQ(chat("[]"), 400);
  EXPECT_EQ(chat("{\"model\":"), 400);
  EXPECT_EQ(chat(std::string(100000, ' ')), 413);
  EXPECT_EQ(chat(std::string(200, '[') + std::string(200, ']')), 400);
  EXPECT_EQ(chat(R"({"model":"nope","messages":[{"role":"user","content":"x"}]})"), 404);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[]})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"robot","content":"x"}]})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":5}]})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":-1})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":5000})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":"hot"})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"top_logprobs":3})"), 400);
  EXPECT_EQ(chat(R"({"model":"deepseek-reasoner","messages":[{"role":"user","content":"x"}],"logprobs":true})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})"), 400);
  EXPECT_EQ(chat("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"), 400);
  EXPECT_EQ(chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}]})"), 0);
  auto cmpl = [&](const std::string& s) { return status_of([&] { parse_completion_request(parse_json_body(s, 1 << 16), r, lim); }); };
  EXPECT_EQ(cmpl(R"({"model":"tiny"})"), 400);
  EXPECT_EQ(cmpl(R"({"model":"tiny","prompt":[]})"), 400);
  EXPECT_EQ(cmpl(R"({"model":"tiny","prompt":[1,"a"]})"), 400);
  EXPECT_EQ(cmpl(R"({"model":"tiny","prompt":"x","max_tokens":0})"), 400);
  EXPECT_EQ(cmpl(R"({"model":"tiny","prompt":"x","max_tokens":0,"echo":true,"logprobs":1})"), 0);
  EXPECT_EQ(cmpl(R"({"model":"tiny","prompt":[[1,2],[3]],"logprobs":5})"), 0);
}

TEST(Api, ModelNamesAndCapabilities) {
  auto names = [](const std::vector<ModelRoute>& r) {
    std::vector<std::string> out;
    for (const auto& x : r) out.push_back(x.id);
    return out;
  };
  const std::vector<std::string> want = {"tiny", "deepseek-chat", "deepseek-reasoner", "deepseek-flash", "deepseek-v4-pro"};
  for (ChatFormat f : {ChatFormat::DeepSeekV3, ChatFormat::DeepSeekR1, ChatFormat::DeepSeekV31})
    EXPECT_EQ(names(make_routes("tiny", f)), want);
  EXPECT_EQ(make_routes("deepseek-flash", ChatFormat::DeepSeekV3).size(), 4u);  // no duplicate name
  // A model without reasoning: every name ignores thinking but deepseek-reasoner (served through R1's template).
  for (const auto& r : make_routes("tiny", ChatFormat::DeepSeekV3)) {
    EXPECT_EQ(r.thinking, r.id == "deepseek-reasoner" ? ThinkingSupport::Always : ThinkingSupport::Never) << r.id;
    EXPECT_EQ(model_capabilities(r)["thinking"], r.id == "deepseek-reasoner" ? "always" : "never");
  }
  for (const auto& r : make_routes("tiny", ChatFormat::DeepSeekR1)) {
    EXPECT_EQ(model_capabilities(r)["thinking"], "always") << r.id;
    EXPECT_EQ(model_capabilities(r)["reasoning"], true);
  }
  for (const auto& r : make_routes("tiny", ChatFormat::DeepSeekV31)) {
    EXPECT_EQ(model_capabilities(r)["thinking"], "toggle") << r.id;
    EXPECT_EQ(r.thinking_default, r.id != "deepseek-chat") << r.id;
  }
  EXPECT_EQ(model_capabilities(make_routes("tiny", ChatFormat::DeepSeekV31)[0])["chat_format"], "deepseek-v3.1");
}

TEST(Api, ThinkingEffortLogprobsAndSamplingInThinkingMode) {
  Limits lim;
  lim.context = 1024;
  const auto hybrid = make_routes("tiny", ChatFormat::DeepSeekV31), v3 = make_routes("tiny", ChatFormat::DeepSeekV3);
  auto parse = [&](const std::string& body, const std::vector<ModelRoute>& r) { return parse_chat_request(parse_json_body(body, 1 << 20), r, lim); };
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  EXPECT_FALSE(parse(R"({"model":"deepseek-chat",)" + msgs + "}", hybrid).thinking);
  EXPECT_TRUE(parse(R"({"model":"deepseek-flash",)" + msgs + "}", hybrid).thinking);
  EXPECT_TRUE(parse(R"({"model":"deepseek-chat","thinking":{"type":"enabled"},)" + msgs + "}", hybrid).thinking);
  EXPECT_FALSE(parse(R"({"model":"deepseek-v4-pro","thinking":{"type":"disabled"},)" + msgs + "}", hybrid).thinking);
  EXPECT_FALSE(parse(R"({"model":"tiny","thinking":{"type":"enabled"},)" + msgs + "}", v3).thinking);  // ignored: no reasoning
  EXPECT_TRUE(parse(R"({"model":"deepseek-reasoner","thinking":{"type":"disabled"},)" + msgs + "}", v3).thinking);  // R1 always
  for (const std::string bogus : {R"("thinking":true)", R"("thinking":{"type":"maybe"})", R"("thinking":{})",
                                  R"("thinking":{"type":"enabled","budget":3})"}) {
    ApiError e = error_of(R"({"model":"deepseek-flash",)" + bogus + "," + msgs + "}", hybrid, lim);
    EXPECT_EQ(e.status, 400) << bogus;
    EXPECT_EQ(e.param, "thinking") << bogus;
  }
  const std::map<std::string, std::string> mapping = {{"minimal", "low"}, {"low", "low"}, {"medium", "high"}, {"high", "high"},
                                                      {"xhigh", "high"}, {"max", "max"}, {"ultra", "max"}};
  for (const auto& [in, out] : mapping)
    EXPECT_EQ(parse(R"({"model":"deepseek-flash","reasoning_effort":")" + in + "\"," + msgs + "}", hybrid).reasoning_effort, out);
  EXPECT_EQ(parse(R"({"model":"deepseek-flash",)" + msgs + "}", hybrid).reasoning_effort, "high");
  for (const std::string bogus : {R"("reasoning_effort":"extreme")", R"("reasoning_effort":3)"})
    EXPECT_EQ(error_of(R"({"model":"deepseek-flash",)" + bogus + "," + msgs + "}", hybrid, lim).param, "reasoning_effort");
  EXPECT_EQ(reasoning_budget("low", 100), 25);
  EXPECT_EQ(reasoning_budget("high", 100), 75);
  EXPECT_EQ(reasoning_budget("max", 100), 100);
  // Thinking ignores temperature and penalties (still validated); non-thinking applies them.
  const std::string sampling = R"("temperature":0.3,"top_p":0.5,"frequency_penalty":1.5,)";
  ChatTask on = parse(R"({"model":"deepseek-flash",)" + sampling + msgs + "}", hybrid);
  EXPECT_FLOAT_EQ(on.params.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(on.params.sampling.frequency_penalty, 0.0f);
  ChatTask off = parse(R"({"model":"deepseek-chat",)" + sampling + msgs + "}", hybrid);
  EXPECT_FLOAT_EQ(off.params.sampling.temperature, 0.3f);
  EXPECT_FLOAT_EQ(off.params.sampling.top_p, 0.5f);
  EXPECT_FLOAT_EQ(off.params.sampling.frequency_penalty, 1.5f);
  EXPECT_EQ(error_of(R"({"model":"deepseek-flash","temperature":9,)" + msgs + "}", hybrid, lim).param, "temperature");
  // logprobs: fine without thinking, refused with it, and the error names the model the request asked for.
  EXPECT_TRUE(parse(R"({"model":"deepseek-chat","logprobs":true,"top_logprobs":2,)" + msgs + "}", v3).params.logprobs);
  EXPECT_TRUE(parse(R"({"model":"deepseek-chat","logprobs":true,)" + msgs + "}", hybrid).params.logprobs);
  ApiError lp = error_of(R"({"model":"deepseek-chat","thinking":{"type":"enabled"},"logprobs":true,)" + msgs + "}", hybrid, lim);
  EXPECT_EQ(lp.status, 400);
  EXPECT_EQ(lp.param, "logprobs");
  EXPECT_NE(std::string(lp.what()).find("'deepseek-chat'"), std::string::npos) << lp.what();
  EXPECT_EQ(std::string(lp.what()).find("deepseek-reasoner"), std::string::npos) << lp.what();
}

TEST(Api, LogitBiasAndImagePartsAreValidated) {
  Limits lim;
  lim.context = 1024;
  lim.vocab_size = 330;
  const auto r = routes();
  const std::string head = R"({"model":"tiny","messages":[{"role":"user","content":"x"}],)";
  ChatTask t = parse_chat_request(parse_json_body(head + R"("logit_bias":{"7":-100,"12":3.5}})", 1 << 20), r, lim);
  ASSERT_EQ(t.params.sampling.logit_bias.size(), 2u);
  std::map<int32_t, float> got(t.params.sampling.logit_bias.begin(), t.params.sampling.logit_bias.end());
  EXPECT_FLOAT_EQ(got.at(7), -100.0f);
  EXPECT_FLOAT_EQ(got.at(12), 3.5f);
  for (const std::string bad : {R"("logit_bias":{"330":1})", R"("logit_bias":{"-1":1})", R"("logit_bias":{"a":1})",
                                R"("logit_bias":{"5":101})", R"("logit_bias":{"5":-100.5})", R"("logit_bias":{"5":"x"})",
                                R"("logit_bias":[1])"}) {
    ApiError e = error_of(head + bad + "}", r, lim);
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_EQ(e.param, "logit_bias") << bad;
  }
  for (const std::string part : {R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}})",
                                 R"({"type":"input_image","image_url":"https://x/y.png"})"}) {
    ApiError e = error_of(R"({"model":"tiny","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"see"},)" +
                              part + "]}]}", r, lim);
    EXPECT_EQ(e.status, 400) << part;
    EXPECT_EQ(e.param, "messages[1].content[1]") << part;
    EXPECT_NE(std::string(e.what()).find("no vision"), std::string::npos) << e.what();
  }
}

// The reasoning_content rule, checked on the token ids the engine would get: what the template renders from the
// parsed request, encoded with a real tokenizer, against the ids of the prompt written out by hand.
TEST(Api, ReasoningContentRuleOnTheRenderedTokenIds) {
  auto tok = tiny_tokenizer();
  Limits lim;
  lim.context = 4096;
  auto ids_of_request = [&](const json& body, const std::vector<ModelRoute>& r) {
    ChatTask t = parse_chat_request(body, r, lim);
    ChatTemplateOptions o;
    o.thinking = t.thinking;
    return tok->encode(apply_chat_template(t.route->format, t.messages, o), false, true);
  };
  auto ids = [&](const std::string& text) { return tok->encode(text, false, true); };
  const std::string B = "<｜begin▁of▁sentence｜>", U = "<｜User｜>", A = "<｜Assistant｜>", E = "<｜end▁of▁sentence｜>";
  const std::string call = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  // The openai SDK tool loop: choices[0].message pushed back as returned (content null, reasoning_content, tool_calls).
  const json returned = {{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "need f"},
                         {"tool_calls", {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}};
  const json loop = {{"role", "user"}, {"content", "q"}};
  const json tool = {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "42"}};
  const auto hybrid = make_routes("tiny", ChatFormat::DeepSeekV31), v3 = make_routes("tiny", ChatFormat::DeepSeekV3);
  // Kept within the tool-calling turn: hybrid thinking and R1 (deepseek-reasoner).
  EXPECT_EQ(ids_of_request({{"model", "deepseek-flash"}, {"messages", {loop, returned, tool}}}, hybrid),
            ids(B + U + "q" + A + "<think>need f</think>" + call + E + "<｜tool▁output▁begin｜>42<｜tool▁output▁end｜><think>"));
  EXPECT_EQ(ids_of_request({{"model", "deepseek-reasoner"}, {"messages", {loop, returned, tool}}}, v3),
            ids(B + U + "q" + A + "<think>\nneed f\n</think>\n\n" + call + E +
                "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"));
  // Thinking off: accepted and dropped.
  EXPECT_EQ(ids_of_request({{"model", "deepseek-chat"}, {"messages", {loop, returned, tool}}}, hybrid),
            ids(B + U + "q" + A + "</think>" + call + E + "<｜tool▁output▁begin｜>42<｜tool▁output▁end｜>"));
  // Between two user turns: dropped, no error; the ids equal those of the conversation without it.
  json earlier = {{"role", "assistant"}, {"content", "b"}, {"reasoning_content", "old thoughts"}};
  json earlier_bare = {{"role", "assistant"}, {"content", "b"}};
  const json next = {{"role", "user"}, {"content", "c"}};
  for (const auto* r : {&hybrid, &v3})
    for (const char* model : {"deepseek-flash", "deepseek-reasoner", "deepseek-chat"}) {
      const auto with = ids_of_request({{"model", model}, {"messages", {loop, earlier, next}}}, *r);
      EXPECT_EQ(with, ids_of_request({{"model", model}, {"messages", {loop, earlier_bare, next}}}, *r)) << model;
      EXPECT_EQ(tok->decode(with).find("old thoughts"), std::string::npos) << model;
    }
  // An earlier turn's tool call (before the last user message) needs no reasoning_content.
  json old_call = returned;
  old_call.erase("reasoning_content");
  EXPECT_NO_THROW(ids_of_request({{"model", "deepseek-flash"}, {"messages", {loop, old_call, tool, next}}}, hybrid));
  // Dropped within the current tool turn of a thinking request: 400 naming the field and the requested model.
  for (const auto& [model, r] : {std::pair{"deepseek-flash", &hybrid}, std::pair{"deepseek-reasoner", &v3}}) {
    ApiError e = error_of(json{{"model", model}, {"messages", {loop, old_call, tool}}}.dump(), *r, lim);
    EXPECT_EQ(e.status, 400) << model;
    EXPECT_EQ(e.param, "messages[1].reasoning_content") << model;
    EXPECT_NE(std::string(e.what()).find(std::string("'") + model + "'"), std::string::npos) << e.what();
  }
  // ...but not when that request does not think.
  EXPECT_NO_THROW(ids_of_request({{"model", "deepseek-chat"}, {"messages", {loop, old_call, tool}}}, hybrid));
  EXPECT_EQ(error_of(json{{"model", "deepseek-flash"}, {"messages", {loop, {{"role", "assistant"}, {"content", "x"}, {"reasoning_content", 3}}}}}.dump(),
                     hybrid, lim).param, "messages[1].reasoning_content");
}

// The same tool loop through both APIs renders the same prompt, token for token: system and tools, a thinking
// block sent back in the current turn (kept), an earlier turn's thinking (dropped), tool_use / tool_result.
TEST(Anthropic, ToolLoopPromptEqualsTheChatCompletionsPrompt) {
  auto tok = tiny_tokenizer();
  Limits lim;
  lim.context = 4096;
  const auto hybrid = make_routes("tiny", ChatFormat::DeepSeekV31), v3 = make_routes("tiny", ChatFormat::DeepSeekV3);
  auto ids_of = [&](ChatTask t) {
    if (!t.tools.empty() && t.tool_choice.mode != agent::ToolChoiceMode::None)
      t.messages = agent::add_tools_to_messages(std::move(t.messages), t.tools, t.tool_choice);
    ChatTemplateOptions o;
    o.thinking = t.thinking;
    return tok->encode(apply_chat_template(t.route->format, t.messages, o), false, true);
  };
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}};
  const json anthropic = {
      {"model", "deepseek-flash"}, {"max_tokens", 64}, {"system", {{{"type", "text"}, {"text", "Be brief."}}}},
      {"tools", {{{"name", "inc"}, {"description", "Adds one"}, {"input_schema", schema}}}},
      {"messages",
       {{{"role", "user"}, {"content", "first"}},
        {{"role", "assistant"}, {"content", {{{"type", "thinking"}, {"thinking", "old thoughts"}, {"signature", "s"}}, {{"type", "text"}, {"text", "ok"}}}}},
        {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "inc 41"}}}}},
        {{"role", "assistant"},
         {"content", {{{"type", "thinking"}, {"thinking", "call inc"}, {"signature", thinking_signature("call inc")}},
                      {{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "inc"}, {"input", {{"a", 41}}}}}}},
        {{"role", "user"}, {"content", {{{"type", "tool_result"}, {"tool_use_id", "toolu_1"}, {"content", {{{"type", "text"}, {"text", "42"}}}}}}}}}}};
  const json chat = {
      {"model", "deepseek-flash"}, {"max_tokens", 64},
      {"tools", {{{"type", "function"}, {"function", {{"name", "inc"}, {"description", "Adds one"}, {"parameters", schema}}}}}},
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}},
        {{"role", "user"}, {"content", "first"}},
        {{"role", "assistant"}, {"content", "ok"}, {"reasoning_content", "old thoughts"}},
        {{"role", "user"}, {"content", "inc 41"}},
        {{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "call inc"},
         {"tool_calls", {{{"id", "toolu_1"}, {"type", "function"}, {"function", {{"name", "inc"}, {"arguments", R"({"a":41})"}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "toolu_1"}, {"content", "42"}}}}};
  for (const auto* r : {&hybrid, &v3})
    for (const char* model : {"deepseek-flash", "deepseek-chat", "deepseek-reasoner"}) {
      json a = anthropic, c = chat;
      a["model"] = c["model"] = model;
      const AnthropicTask at = parse_anthropic_request(a, *r, lim);
      const ChatTask ct = parse_chat_request(c, *r, lim);
      EXPECT_EQ(at.chat.thinking, ct.thinking) << model;
      const auto ids = ids_of(at.chat);
      EXPECT_EQ(ids, ids_of(ct)) << model;
      const std::string text = tok->decode(ids);
      EXPECT_NE(text.find("Adds one"), std::string::npos) << model;  // the tools section is there
      EXPECT_EQ(text.find("old thoughts"), std::string::npos) << model;  // an earlier turn's thinking is dropped
      // The current turn's thinking stays exactly when the request thinks.
      EXPECT_EQ(text.find("call inc") != std::string::npos, at.chat.thinking) << model << ": " << text;
    }
  // The sampling, stop, effort, budget and tool_choice fields map onto the chat task.
  json a = anthropic;
  a["stop_sequences"] = {"END"};
  a["top_k"] = 5;
  a["thinking"] = {{"type", "enabled"}, {"budget_tokens", 10}};
  a["output_config"] = {{"effort", "medium"}};
  a["tool_choice"] = {{"type", "tool"}, {"name", "inc"}, {"disable_parallel_tool_use", true}};
  a["metadata"] = {{"user_id", "u1"}};
  const AnthropicTask t = parse_anthropic_request(a, hybrid, lim);
  EXPECT_EQ(t.stop_sequences, std::vector<std::string>{"END"});
  EXPECT_EQ(t.chat.params.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(t.chat.params.sampling.top_k, 5);
  EXPECT_EQ(t.chat.reasoning_budget_tokens, 10);
  EXPECT_EQ(t.chat.reasoning_effort, "high");
  EXPECT_EQ(t.chat.tool_choice.mode, agent::ToolChoiceMode::Named);
  EXPECT_FALSE(t.chat.parallel_tool_calls);
  EXPECT_EQ(t.chat.user, "u1");
  a["thinking"] = {{"type", "disabled"}};
  EXPECT_FALSE(parse_anthropic_request(a, hybrid, lim).chat.thinking);
  // A last assistant message is a prefill: chat prefix completion.
  json pre = {{"model", "deepseek-chat"}, {"max_tokens", 8}, {"messages", {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "Hel"}}}}};
  EXPECT_TRUE(parse_anthropic_request(pre, hybrid, lim).chat.prefix);
}

TEST(Anthropic, MalformedAndUnknownFieldsAre400sNamingThem) {
  Limits lim;
  lim.context = 4096;
  const auto hybrid = make_routes("tiny", ChatFormat::DeepSeekV31);
  const json base = {{"model", "deepseek-flash"}, {"max_tokens", 16}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  auto error = [&](const json& patch, bool count = false) {
    json b = base;
    if (count) b.erase("max_tokens");  // count_tokens has no max_tokens: the patch may add one back
    b.merge_patch(patch);
    try {
      parse_anthropic_request(b, hybrid, lim, count);
    } catch (const ApiError& e) {
      return std::pair<int, std::string>{e.status, e.param};
    }
    return std::pair<int, std::string>{0, ""};
  };
  using P = std::pair<int, std::string>;
  EXPECT_EQ(error(json::object()), (P{0, ""}));
  EXPECT_EQ(error({{"bogus", 1}}), (P{400, "bogus"}));
  EXPECT_EQ(error({{"max_tokens", nullptr}}), (P{400, "max_tokens"}));
  EXPECT_EQ(error({{"max_tokens", "8"}}), (P{400, "max_tokens"}));
  EXPECT_EQ(error({{"model", "claude-opus"}}), (P{404, "model"}));
  EXPECT_EQ(error({{"messages", {{{"role", "system"}, {"content", "x"}}}}}), (P{400, "messages[0].role"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", "x"}, {"name", "n"}}}}}), (P{400, "messages[0].name"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}, {"extra", 1}}}}}}}}), (P{400, "messages[0].content[0].extra"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", 3}}}}}}}}), (P{400, "messages[0].content[0].text"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", {{{"type", "image"}, {"source", {{"type", "base64"}}}}}}}}}}), (P{400, "messages[0].content[0]"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", {{{"type", "tool_use"}, {"id", "x"}, {"name", "f"}, {"input", json::object()}}}}}}}}),
            (P{400, "messages[0].content[0]"}));
  EXPECT_EQ(error({{"messages", {{{"role", "user"}, {"content", {{{"type", "tool_result"}, {"content", "x"}}}}}}}}), (P{400, "messages[0].content[0].tool_use_id"}));
  EXPECT_EQ(error({{"system", 5}}), (P{400, "system"}));
  EXPECT_EQ(error({{"system", {{{"type", "image"}}}}}), (P{400, "system[0]"}));
  EXPECT_EQ(error({{"temperature", 1.5}}), (P{400, "temperature"}));
  EXPECT_EQ(error({{"top_p", 0}}), (P{400, "top_p"}));
  EXPECT_EQ(error({{"stop_sequences", "END"}}), (P{400, "stop_sequences"}));
  EXPECT_EQ(error({{"stream", "yes"}}), (P{400, "stream"}));
  EXPECT_EQ(error({{"metadata", {{"session", "x"}}}}), (P{400, "metadata.session"}));
  EXPECT_EQ(error({{"thinking", {{"type", "enabled"}}}}), (P{400, "thinking.budget_tokens"}));
  EXPECT_EQ(error({{"thinking", {{"type", "enabled"}, {"budget_tokens", 16}}}}), (P{400, "thinking.budget_tokens"}));
  EXPECT_EQ(error({{"thinking", {{"type", "on"}}}}), (P{400, "thinking.type"}));
  EXPECT_EQ(error({{"thinking", {{"type", "disabled"}, {"budget_tokens", 4}}}}), (P{400, "thinking.budget_tokens"}));
  EXPECT_EQ(error({{"output_config", {{"effort", "huge"}}}}), (P{400, "output_config.effort"}));
  EXPECT_EQ(error({{"output_config", {{"verbosity", "low"}}}}), (P{400, "output_config.verbosity"}));
  EXPECT_EQ(error({{"tools", {{{"name", "f"}}}}}), (P{400, "tools[0].input_schema"}));
  EXPECT_EQ(error({{"tools", {{{"type", "web_search_20250305"}, {"name", "web_search"}}}}}), (P{400, "tools[0].type"}));
  EXPECT_EQ(error({{"tool_choice", {{"type", "sometimes"}}}}), (P{400, "tool_choice.type"}));
  EXPECT_EQ(error({{"tool_choice", "auto"}}), (P{400, "tool_choice"}));
  EXPECT_EQ(error({{"max_tokens", 8}}, /*count=*/true), (P{400, "max_tokens"}));
  EXPECT_EQ(error(json::object(), /*count=*/true), (P{0, ""}));
  // The reasoning rule, named on the Anthropic message: a thinking tool turn without its thinking block.
  json loop = {{"messages",
                {{{"role", "user"}, {"content", "q"}},
                 {{"role", "assistant"}, {"content", {{{"type", "tool_use"}, {"id", "t1"}, {"name", "f"}, {"input", json::object()}}}}},
                 {{"role", "user"}, {"content", {{{"type", "tool_result"}, {"tool_use_id", "t1"}, {"content", "1"}}}}}}}};
  EXPECT_EQ(error(loop), (P{400, "messages[1].content"}));
  loop["thinking"] = {{"type", "disabled"}};
  EXPECT_EQ(error(loop), (P{0, ""}));
  // Errors in Anthropic's shape and types.
  const json body = json::parse(anthropic_error_body(ApiError(400, "bad thing", "invalid_request_error", "x")));
  EXPECT_EQ(body, json::parse(R"({"type":"error","error":{"type":"invalid_request_error","message":"bad thing"}})"));
  EXPECT_STREQ(anthropic_error_type(401), "authentication_error");
  EXPECT_STREQ(anthropic_error_type(404), "not_found_error");
  EXPECT_STREQ(anthropic_error_type(429), "rate_limit_error");
  EXPECT_STREQ(anthropic_error_type(503), "overloaded_error");
  EXPECT_STREQ(anthropic_error_type(500), "api_error");
}

TEST(Api, UsageAndCost) {
  UsageCount u{1000, 400, 200, 50};
  PriceTable t;
  json j = usage_json(u, t.get("deepseek-chat"));
  EXPECT_EQ(j["prompt_tokens"], 1000);
  EXPECT_EQ(j["prompt_cache_hit_tokens"], 400);
  EXPECT_EQ(j["prompt_cache_miss_tokens"], 600);
  EXPECT_EQ(j["completion_tokens_details"]["reasoning_tokens"], 50);
  EXPECT_EQ(j["total_tokens"], 1200);
  // 400 x 0.07 + 600 x 0.27 + 200 x 1.10 per million
  EXPECT_NEAR(j["cost_usd"].get<double>(), (400 * 0.07 + 600 * 0.27 + 200 * 1.10) / 1e6, 1e-12);
  EXPECT_NEAR(cost_usd(u, t.get("deepseek-reasoner")), (400 * 0.14 + 600 * 0.55 + 200 * 2.19) / 1e6, 1e-12);
  PriceTable custom = PriceTable::from_json(json::parse(R"({"mine": {"input_cache_hit": 1, "input_cache_miss": 2, "output": 3}})"));
  EXPECT_NEAR(cost_usd(u, custom.get("mine")), (400 * 1 + 600 * 2 + 200 * 3) / 1e6, 1e-12);
  EXPECT_THROW(PriceTable::from_json(json::parse(R"({"x": {"output": -1}})")), Error);
}

TEST(Store, KeysAreHashedAndRevocable) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto path = std::filesystem::temp_directory_path() / "baleine_test_store.db";
  std::filesystem::remove(path);
  {
    Store s(path.string());
    EXPECT_FALSE(s.any_active_key());
    ApiKey k;
    std::string secret = s.create_key("ci", 10, 1000, &k);
    EXPECT_EQ(secret.rfind("sk-", 0), 0u);
    EXPECT_TRUE(s.any_active_key());
    ASSERT_TRUE(s.find_key(secret));
    EXPECT_EQ(s.find_key(secret)->rpm, 10);
    EXPECT_FALSE(s.find_key(secret + "x"));
    int64_t l = s.ledger_begin(k.id, "chat", "tiny", 12);
    s.ledger_end(l, {0, 0, 0, "", "", "done", 12, 4, 7, 2, 0.5});
    Conversation c = s.create_conversation({"", "hello", "tiny", "sys", k.id, 0.3, 0, 0, ""});
    EXPECT_TRUE(s.list_conversations(0).empty());  // another key (or none) does not see it
    StoredMessage m;
    m.conversation_id = c.id;
    m.role = "user";
    m.content = "hi";
    s.add_message(m);
    EXPECT_TRUE(s.revoke_key(std::to_string(k.id)));
    EXPECT_FALSE(s.find_key(secret));
  }
  // Reopened: everything is still there, and the secret itself is nowhere in the file.
  Store s(path.string());
  EXPECT_FALSE(s.any_active_key());
  auto led = s.ledger(-1, 10);
  ASSERT_EQ(led.size(), 1u);
  EXPECT_EQ(led[0].completion_tokens, 7);
  EXPECT_EQ(led[0].status, "done");
  auto convs = s.list_conversations(1);
  ASSERT_EQ(convs.size(), 1u);
  EXPECT_EQ(s.messages(convs[0].id).size(), 1u);
  EXPECT_TRUE(s.delete_conversation(convs[0].id));
  EXPECT_TRUE(s.messages(convs[0].id).empty());
}

// A database made before conversations had assistant_id and messages had agent_json is migrated on open; the new
// fields round-trip.
TEST(Store, MigratesOlderDatabasesAndKeepsTheAssistantBinding) {
  auto path = std::filesystem::temp_directory_path() / "baleine_test_store_migrate.db";
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + ext);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, R"(CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT NOT NULL,
        system_prompt TEXT NOT NULL, temperature REAL NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
        key_id INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL, content TEXT NOT NULL, reasoning TEXT NOT NULL, model TEXT NOT NULL, reasoning_seconds REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, status TEXT NOT NULL,
        created INTEGER NOT NULL);
      INSERT INTO conversations VALUES('old', 'before', 'tiny', '', 0.7, 1, 1, 0);
      INSERT INTO messages VALUES(1, 'old', 'user', 'hi', '', 'tiny', 0, 0, 0, 0, 'done', 1);)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  for (int reopen = 0; reopen < 2; ++reopen) {  // the second open finds the columns already there
    Store s(path.string());
    auto old = s.get_conversation("old");
    ASSERT_TRUE(old);
    EXPECT_EQ(old->assistant_id, "");
    EXPECT_EQ(s.messages("old").at(0).agent_json, "");
  }
  Store s(path.string());
  Conversation c;
  c.title = "bound";
  c.assistant_id = "asst_x";
  c = s.create_conversation(c);
  EXPECT_EQ(s.get_conversation(c.id)->assistant_id, "asst_x");
  c.assistant_id = "";
  EXPECT_TRUE(s.update_conversation(c));
  EXPECT_EQ(s.get_conversation(c.id)->assistant_id, "");
  StoredMessage m;
  m.conversation_id = c.id;
  m.role = "assistant";
  m.agent_json = R"({"tool_steps":[{"name":"search_documents"}]})";
  s.add_message(m);
  EXPECT_EQ(s.messages(c.id).at(0).agent_json, m.agent_json);
}

TEST(RateLimiter, RequestsAndTokensPerMinute) {
  RateLimiter r;
  EXPECT_EQ(r.admit(1, 2, 0), 0);
  EXPECT_EQ(r.admit(1, 2, 0), 0);
  EXPECT_GT(r.admit(1, 2, 0), 0);  // third request within a minute
  EXPECT_EQ(r.admit(2, 2, 0), 0);  // other keys are independent
  EXPECT_EQ(r.admit(3, 0, 100), 0);
  r.add_tokens(3, 150);
  const int wait = r.admit(3, 0, 100);
  EXPECT_GE(wait, 59);
  EXPECT_LE(wait, 60);
}

TEST(Metrics, PrometheusText) {
  Metrics m;
  m.request("chat", 200);
  m.request("chat", 400);
  m.tokens(10, 4, 5);
  m.ttft.observe(0.02);
  EngineStats st;
  st.queued = 3;
  st.steps = 4;
  st.batched_sequences = 10;
  st.prompt_tokens = 10;
  st.cached_prompt_tokens = 4;
  std::string t = m.render(st);
  EXPECT_NE(t.find("baleine_requests_total{endpoint=\"chat\",status=\"400\"} 1"), std::string::npos) << t;
  EXPECT_NE(t.find("baleine_queue_depth 3"), std::string::npos);
  EXPECT_NE(t.find("baleine_batch_size_mean 2.5"), std::string::npos);
  EXPECT_NE(t.find("baleine_prefix_cache_hit_ratio 0.4"), std::string::npos);
  EXPECT_NE(t.find("baleine_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"), std::string::npos);
  EXPECT_NE(t.find("baleine_time_to_first_token_seconds_count 1"), std::string::npos);
}

// The HTTP guard's decisions from the request head alone (server/http_guard.h); the connection handling itself
// (deadlines, caps, immediate answers) is driven over sockets by tests/js/server_guard.mjs.
namespace {

HeadCheck head(const std::string& method, std::initializer_list<std::pair<std::string, std::string>> hs,
               const GuardOptions& o = GuardOptions{}) {
  httplib::Headers h;
  for (const auto& [k, v] : hs) h.emplace(k, v);
  size_t reserved = 0;
  HeadCheck c = check_request_head(method, h, o, reserved);
  if (c.status == 0 && method == "POST") {
    EXPECT_GT(reserved, 0u);
  }
  return c;
}

}  // namespace

TEST(HttpGuard, HostAllowListOnLoopback) {
  GuardOptions o;  // bound to loopback
  for (const char* h : {"localhost", "localhost:8080", "127.0.0.1:80", "127.9.9.9", "[::1]:8080", "::1", "LOCALHOST.",
                        "chat.localhost:1"})
    EXPECT_TRUE(host_allowed(h, o)) << h;
  for (const char* h : {"evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", "10.0.0.1", "[::2]"})
    EXPECT_FALSE(host_allowed(h, o)) << h;
  o.allowed_hosts = {"box.lan", ".corp.example"};
  EXPECT_TRUE(host_allowed("box.lan:8080", o));
  EXPECT_TRUE(host_allowed("a.corp.example", o));
  EXPECT_TRUE(host_allowed("corp.example", o));
  EXPECT_FALSE(host_allowed("evilcorp.example", o));
  EXPECT_TRUE(host_allowed("localhost", o));  // localhost stays allowed beside the list
  GuardOptions any;
  any.loopback_bind = false;  // 0.0.0.0: reached under any name unless a list is given
  EXPECT_TRUE(host_allowed("evil.example", any));
  any.allowed_hosts = {"box.lan"};
  EXPECT_FALSE(host_allowed("evil.example", any));
}

TEST(HttpGuard, OriginMustBeTheServersOwnOrAllowed) {
  GuardOptions o;
  EXPECT_TRUE(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", o));
  EXPECT_TRUE(origin_allowed("http://LOCALHOST:8080", "localhost:8080", o));
  EXPECT_FALSE(origin_allowed("http://127.0.0.1:8081", "127.0.0.1:8080", o));
  EXPECT_FALSE(origin_allowed("https://evil.example", "127.0.0.1:8080", o));
  EXPECT_FALSE(origin_allowed("null", "127.0.0.1:8080", o));
  EXPECT_FALSE(origin_allowed("http://127.0.0.1:8080", "", o));
  o.allowed_origins = {"https://app.example"};
  EXPECT_TRUE(origin_allowed("https://app.example", "127.0.0.1:8080", o));
  EXPECT_FALSE(origin_allowed("https://app.example.evil", "127.0.0.1:8080", o));
}

TEST(HttpGuard, RequestHeadChecks) {
  const std::pair<std::string, std::string> host{"Host", "127.0.0.1:8080"}, json{"Content-Type", "application/json"};
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "10"}}).status, 0);
  EXPECT_EQ(head("POST", {host, {"Content-Type", "application/json; charset=utf-8"}, {"Content-Length", "10"}}).status, 0);
  EXPECT_EQ(head("POST", {host, {"Content-Type", "application/vnd.api+json"}, {"Content-Length", "10"}}).status, 0);
  // CSRF: the three content types a page may send cross-site without a preflight, and none.
  for (const char* type : {"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"})
    EXPECT_EQ(head("POST", {host, {"Content-Type", type}, {"Content-Length", "10"}}).status, 415) << type;
  EXPECT_EQ(head("POST", {host, {"Content-Length", "10"}}).status, 415);
  EXPECT_EQ(head("POST", {host, json, {"Content-Type", "text/plain"}, {"Content-Length", "10"}}).status, 415);
  EXPECT_EQ(head("GET", {host}).status, 0);
  // Origin: checked on state-changing methods only.
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "2"}, {"Origin", "http://evil.example"}}).status, 403);
  EXPECT_EQ(head("DELETE", {host, {"Origin", "http://evil.example"}}).status, 403);
  EXPECT_EQ(head("GET", {host, {"Origin", "http://evil.example"}}).status, 0);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "2"}, {"Origin", "http://127.0.0.1:8080"}}).status, 0);
  // DNS rebinding.
  EXPECT_EQ(head("GET", {{"Host", "evil.example:8080"}}).status, 403);
  EXPECT_EQ(head("GET", {{"Host", "localhost"}, {"Host", "evil.example"}}).status, 400);
  // Framing: conflicting, malformed, or doubled with chunked; oversize at once.
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "10"}, {"Content-Length", "11"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "10"}, {"Content-Length", "10"}}).status, 0);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "1e3"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "-1"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "99999999999999999999999"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Content-Length", "10"}, {"Transfer-Encoding", "chunked"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Transfer-Encoding", "gzip, chunked"}}).status, 400);
  EXPECT_EQ(head("POST", {host, json, {"Transfer-Encoding", "chunked"}}).status, 0);
  const HeadCheck big = head("POST", {host, json, {"Content-Length", "1000000000000"}});
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.code, "request_too_large");
}

// The /v1/responses input items and the /v1/embeddings input, as the fuzz target drives them: valid forms, the
// pending calls a previous response stopped at, and each refusal a 400 naming the field; the embeddings' limits
// answer at limit + 1 (2,048 inputs; the context per input).
TEST(Api, ResponseInputItemsAndPendingCalls) {
  auto msgs = Server::response_input(json("hi"), json::array());
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].role, "user");
  const json pending = json::array({{{"call_id", "c1"}, {"name", "f"}, {"client", true}, {"output", ""}},
                                    {{"call_id", "c2"}, {"name", "calc"}, {"client", false}, {"output", "5"}}});
  const json answer = json::array({{{"type", "function_call_output"}, {"call_id", "c1"}, {"output", "42"}},
                                   {{"role", "user"}, {"content", "thanks"}}});
  msgs = Server::response_input(answer, pending);
  ASSERT_EQ(msgs.size(), 3u);  // the two tool answers in call order, then the user message
  EXPECT_EQ(msgs[0].content, "42");
  EXPECT_EQ(msgs[1].content, "5");
  EXPECT_EQ(msgs[2].role, "user");
  auto status_of = [](const json& input, const json& p) {
    try {
      Server::response_input(input, p);
    } catch (const ApiError& e) {
      return e.status;
    }
    return 200;
  };
  EXPECT_EQ(status_of(json("hi"), pending), 400);                    // the pending calls must be answered
  EXPECT_EQ(status_of(json::array(), json::array()), 400);           // empty input
  EXPECT_EQ(status_of(json(3), json::array()), 400);
  EXPECT_EQ(status_of(json::array({{{"type", "function_call_output"}, {"call_id", "zz"}, {"output", "1"}}}), pending), 400);
  EXPECT_EQ(status_of(json::array({{{"role", "robot"}, {"content", "x"}}}), json::array()), 400);
  EXPECT_EQ(status_of(json::array({{{"type", "image"}}}), json::array()), 400);
  EXPECT_EQ(status_of(json::array({json(1)}), json::array()), 400);
}

TEST(Api, EmbeddingInputsAndTheirLimits) {
  const Tokenizer tok = Tokenizer::load(std::string(BALEINE_TEST_DATA) + "/../../models/default/tokenizer.json");
  Limits limits;
  limits.context = 64;
  auto in = Server::embedding_inputs(json::array({"a licence", json::array({1, 2, 3})}), tok, limits);
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[1], (std::vector<int32_t>{1, 2, 3}));
  auto status_of = [&](const json& input) {
    try {
      Server::embedding_inputs(input, tok, limits);
    } catch (const ApiError& e) {
      return e.status;
    }
    return 200;
  };
  EXPECT_EQ(status_of(json("")), 400);
  EXPECT_EQ(status_of(json::array()), 400);
  EXPECT_EQ(status_of(json::array({-1})), 400);
  EXPECT_EQ(status_of(json::array({int64_t(tok.vocab_size())})), 400);   // the first id outside the vocabulary
  EXPECT_EQ(status_of(json::array({int64_t(tok.vocab_size()) - 1})), 200);
  EXPECT_EQ(status_of(json::array({json::object()})), 400);
  EXPECT_EQ(status_of(json(std::vector<std::string>(2048, "x"))), 200);  // OpenAI's limit...
  EXPECT_EQ(status_of(json(std::vector<std::string>(2049, "x"))), 400);  // ...and one more
  EXPECT_EQ(status_of(json(std::vector<int32_t>(64, 1))), 200);          // the context...
  EXPECT_EQ(status_of(json(std::vector<int32_t>(65, 1))), 400);          // ...and one token more
}

// Fuzz finding (fuzz/regressions/requests): a non-string "type" in a tool definition or its parameters schema
// escaped as a raw JSON type error; it is a 400 naming the tool.
TEST(Api, NonStringTypesInToolDefinitionsAre400s) {
  const auto routes = make_routes("model", ChatFormat::DeepSeekV3);
  Limits limits;
  limits.context = 1024;
  for (const char* body : {
           R"({"model":"model","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":{"a":1}}}}]})",
           R"({"model":"model","messages":[{"role":"user","content":"x"}],"tools":[{"type":{"x":1},"function":{"name":"f"}}]})",
           R"({"model":"model","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":7}})"}) {
    try {
      parse_chat_request(json::parse(body), routes, limits);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
    }
  }
}

// base64_decode (image_url data URLs) inverts base64 on every length mod 3 and refuses malformed payloads.
TEST(Api, Base64DecodeRoundTripsAndRefusesMalformed) {
  std::mt19937 rng(5);
  for (size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 31u, 32u, 33u, 1000u}) {
    std::vector<uint8_t> bytes(n);
    for (auto& b : bytes) b = uint8_t(rng());
    auto back = baleine::server::base64_decode(baleine::server::base64(bytes.data(), bytes.size()));
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, bytes) << n;
  }
  EXPECT_EQ(baleine::server::base64_decode("aGk=")->size(), 2u);
  for (const char* s : {"aGk", "a=Gk", "aG!k", "aGk=\n", "====", "aGk=aGk="})
    EXPECT_FALSE(baleine::server::base64_decode(s).has_value()) << s;
}
