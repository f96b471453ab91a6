// Built-in tools and the agent loop: exact rational arithmetic (checked against identities and independent
// decimal facts), date/time, chunking, BM25 retrieval on a fixture set (the passage holding the answer comes
// first), and the agent loop driven by the tiny random model through the real engine.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "agent/embeddings.h"
#include "agent/retrieval.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

namespace {

std::string calc(const std::string& e) { return calculate(e).to_string(); }

using agent_test::fixture_store;
using agent_test::read_file;

}  // namespace

TEST(AgentCalculator, ExactBigIntegers) {
  EXPECT_EQ(calc("12345678901234567890 * 98765432109876543210"), "1219326311370217952237463801111263526900");
  EXPECT_EQ(calc("2^100"), "1267650600228229401496703205376");
  EXPECT_EQ(calc("2^100 - 2^100 + 1"), "1");
  EXPECT_EQ(calc("(2^64 - 1) / (2^32 + 1)"), "4294967295");  // 2^64-1 = (2^32-1)(2^32+1)
  EXPECT_EQ(calc("1219326311370217952237463801111263526900 / 98765432109876543210"), "12345678901234567890");
  EXPECT_EQ(calc("-7 * -6"), "42");
  EXPECT_EQ(calc("100000000000000000000 - 1"), "99999999999999999999");
  EXPECT_EQ(calc("999999999 + 1"), "1000000000");  // limb carry
}

TEST(AgentCalculator, ExactFractionsAndDecimals) {
  EXPECT_EQ(calc("0.1 + 0.2"), "3/10");  // no floating point surprise
  EXPECT_EQ(calc("1/3 + 1/6"), "1/2");
  EXPECT_EQ(calc("2^-3"), "1/8");
  EXPECT_EQ(calc("(1/2)^10"), "1/1024");
  EXPECT_EQ(calc("-2^2"), "-4");      // power binds tighter than unary minus
  EXPECT_EQ(calc("2^3^2"), "512");    // right associative
  EXPECT_EQ(calc("1.5e3 × 2 ÷ 4 − 1"), "749");
  EXPECT_EQ(calc("2**10"), "1024");
  bool exact = false;
  EXPECT_EQ(calculate("1/8").to_decimal(30, &exact), "0.125");
  EXPECT_TRUE(exact);
  EXPECT_EQ(calculate("2/3").to_decimal(10, &exact), "0.6666666667");
  EXPECT_FALSE(exact);
  EXPECT_EQ(calculate("-1/7").to_decimal(6, &exact), "-0.142857");
  EXPECT_EQ(calculate("0.999999").to_decimal(3, &exact), "0.999999");  // terminating: all digits
  EXPECT_EQ(calculate("19/20000").to_decimal(2, &exact), "0.00095");
}

TEST(AgentCalculator, ErrorsAndLimits) {
  auto err = [](const std::string& e) {
    try {
      calculate(e);
    } catch (const Error& x) {
      return std::string(x.what());
    }
    return std::string();
  };
  EXPECT_NE(err("1/0").find("division by zero"), std::string::npos);
  EXPECT_NE(err("0^-1").find("zero to a negative power"), std::string::npos);
  EXPECT_NE(err("2^(1/2)").find("not an integer"), std::string::npos);
  EXPECT_NE(err("10^100000").find("larger than"), std::string::npos);
  EXPECT_NE(err("99^999").find("too large"), std::string::npos);
  EXPECT_NE(err("(1+2").find("missing ')'"), std::string::npos);
  EXPECT_NE(err("2 + x").find("expected a number"), std::string::npos);
  EXPECT_NE(err(std::string(2000, '(')).find("longer than"), std::string::npos);
  EXPECT_NE(err(std::string(300, '(') + "1" + std::string(300, ')')).find("nested too deeply"), std::string::npos);
  EXPECT_EQ(calc("1^10000"), "1");
  EXPECT_EQ(calc("(-1)^9999"), "-1");
  // The tool reports errors as results the model can read.
  auto tool = calculator_tool();
  ToolResult r = tool.run(json{{"expression", "1/0"}});
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.content["error"], "division by zero");
  r = tool.run(json{{"expression", "1/4"}});
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.content["result"], "1/4");
  EXPECT_EQ(r.content["decimal"], "0.25");
}

TEST(AgentDatetime, ReportsInjectedClock) {
  auto tool = datetime_tool([] { return std::chrono::system_clock::time_point(std::chrono::seconds(1764576000)); });
  ToolResult r = tool.run(json::object());
  EXPECT_EQ(r.content["datetime"], "2025-12-01T08:00:00Z");
  EXPECT_EQ(r.content["weekday"], "Monday");
  r = tool.run(json{{"utc_offset_minutes", -90}});
  EXPECT_EQ(r.content["datetime"], "2025-12-01T06:30:00-01:30");
  EXPECT_TRUE(tool.run(json{{"utc_offset_minutes", 5000}}).error);
}

TEST(AgentRetrieval, ChunksCoverTextOnBoundaries) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "Sentence number " + std::to_string(i) + " says caf\xc3\xa9 things. ";
  auto chunks = chunk_text(text, {200, 40});
  ASSERT_GT(chunks.size(), 5u);
  EXPECT_EQ(chunks.front().first, 0u);
  EXPECT_EQ(chunks.back().first + chunks.back().second, text.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_LE(chunks[i].second, 200u);
    EXPECT_NE(uint8_t(text[chunks[i].first]) & 0xc0, 0x80);  // never inside a UTF-8 character
    if (i) {
      EXPECT_LE(chunks[i].first, chunks[i - 1].first + chunks[i - 1].second);  // no gap
      EXPECT_GT(chunks[i].first, chunks[i - 1].first);
    }
  }
}

TEST(AgentRetrieval, Bm25FindsThePassageWithTheAnswer) {
  ASSERT_TRUE(sqlite_has_fts5());
  auto store = fixture_store();
  EXPECT_EQ(store->documents().size(), 4u);
  struct Q {
    const char* question;
    const char* doc;
    const char* answer;
  } qs[] = {{"When was the lighthouse automated and the keepers left?", "lighthouse.txt", "1991"},
            {"How long is the buckwheat sourdough fermented?", "bakery.txt", "thirty-six hours"},
            {"How far did the glacier snout retreat in 2022?", "glacier.txt", "38 metres"},
            {"What time control does the rapid tournament use?", "chess.txt", "fifteen minutes"},
            {"Which day is the bakery closed?", "bakery.txt", "Mondays"},
            {"How many homes does the reservoir supply with electricity?", "glacier.txt", "twelve thousand"}};
  for (const auto& q : qs) {
    auto hits = store->search(q.question, 3);
    ASSERT_FALSE(hits.empty()) << q.question;
    EXPECT_EQ(hits[0].document, q.doc) << q.question;
    EXPECT_NE(hits[0].text.find(q.answer), std::string::npos) << q.question << " -> " << hits[0].text;
    // The citation offset points at the passage inside the document.
    const std::string doc = read_file(std::filesystem::path(BALEINE_TEST_DATA) / "agent/docs" / hits[0].document);
    EXPECT_EQ(doc.substr(size_t(hits[0].offset), hits[0].text.size()), hits[0].text);
  }
  // FTS syntax in user text is neutralised, not an error.
  EXPECT_NO_THROW(store->search("NEAR(\"x\" OR) * ^ AND -", 3));
  EXPECT_TRUE(store->search("   ", 3).empty());
  EXPECT_TRUE(store->remove_document("chess.txt"));
  EXPECT_TRUE(store->search("rapid tournament chess", 3).empty() || store->search("rapid tournament chess", 3)[0].document != "chess.txt");
}

// A quoted span is a phrase the passages must hold (as in a web search): the question's other words would rank an
// entry that merely uses them first. Nothing holding the phrase: the words alone, as without quotes.
TEST(AgentRetrieval, QuotedPhraseMustOccur) {
  ASSERT_TRUE(sqlite_has_fts5());
  DocumentStore store(":memory:");
  store.add_document("plural-talk", "What is the plural of a noun? The plural of the noun is the form for many.");
  store.add_document("prothallus", "Prothallus  n.; pl. Prothalli. The flat thallus of a fern.");
  store.add_document("sea-lion", "The sea lion is a marine mammal; lions of the sea rest on rocks.");
  store.add_document("lion", "The lion is a large cat. A sea of grass.");
  auto unquoted = store.search("What is the plural of the noun prothallus?", 3);
  ASSERT_FALSE(unquoted.empty());
  EXPECT_EQ(unquoted[0].document, "plural-talk");  // the control: without quotes the common words win
  auto quoted = store.search("What is the plural of the noun \"prothallus\"?", 3);
  ASSERT_EQ(quoted.size(), 1u);
  EXPECT_EQ(quoted[0].document, "prothallus");
  EXPECT_EQ(store.search("What is the plural of the noun \u201cprothallus\u201d?", 3)[0].document, "prothallus");
  // a quoted phrase of two words matches them adjacent, in order
  auto phrase = store.search("Tell me about the \"sea lion\"", 3);
  ASSERT_EQ(phrase.size(), 1u);
  EXPECT_EQ(phrase[0].document, "sea-lion");
  // no passage holds the phrase: the words alone
  auto none = store.search("What is the plural of the noun \"greesnoup\"?", 3);
  ASSERT_FALSE(none.empty());
  EXPECT_EQ(none[0].document, "plural-talk");
  // an unclosed quote or an empty one is no phrase; FTS syntax inside quotes stays neutral
  EXPECT_FALSE(store.search("the plural \"of", 3).empty());
  EXPECT_FALSE(store.search("the plural \"\" noun", 3).empty());
  EXPECT_NO_THROW(store.search("\"NEAR( * ^ AND\" plural", 3));
}

TEST(AgentRetrieval, DenseFusionAndTool) {
  auto store = fixture_store();
  // A bag-of-hashed-words embedder stands in for model embeddings here (the fusion plumbing is what is tested).
  store->set_embedder([](const std::string& t) {
    std::vector<float> v(64, 0.0f);
    std::string w;
    for (char c : t + " ") {
      if (std::isalnum(uint8_t(c))) w += char(std::tolower(uint8_t(c)));
      else if (!w.empty()) v[std::hash<std::string>{}(w) % 64] += 1.0f, w.clear();
    }
    return v;
  });
  auto hits = store->search("glacier ablation stakes drilled in June", 2);
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].document, "glacier.txt");
  auto tool = retrieval_tool(store, 2);
  ToolResult r = tool.run(json{{"query", "Who founded the chess club?"}});
  ASSERT_FALSE(r.error);
  ASSERT_FALSE(r.citations.empty());
  EXPECT_EQ(r.citations[0]["document"], "chess.txt");
  EXPECT_NE(r.citations[0]["text"].get<std::string>().find("Henri"), std::string::npos);
}

// A forced call from a tiny model brings a well-formed but useless query: the user's question is searched instead.
TEST(AgentRetrieval, UnusableQueryFallsBackToTheUserMessage) {
  auto store = fixture_store();
  auto tool = retrieval_tool(store, 2, "Who founded the chess club?");
  for (const json& args : {json{{"query", ""}}, json{{"query", " ?! "}}, json{{"query", "zqxv wkjhg"}}, json::object()}) {
    ToolResult r = tool.run(args);
    ASSERT_FALSE(r.error) << args.dump();
    EXPECT_EQ(r.content["query_source"], "fallback") << args.dump();
    EXPECT_EQ(r.content["query"], "Who founded the chess club?");
    ASSERT_FALSE(r.citations.empty()) << args.dump();
    EXPECT_EQ(r.citations[0]["document"], "chess.txt");
  }
  // A query that finds passages and shares a word with the user's message is the model's own and is kept.
  ToolResult kept = tool.run(json{{"query", "chess openings"}});
  EXPECT_EQ(kept.content["query_source"], "model");
  ASSERT_FALSE(kept.citations.empty());
  EXPECT_EQ(kept.citations[0]["document"], "chess.txt");
  // One that finds passages but has no word of the user's message: both run, the user's passages first.
  ToolResult both = tool.run(json{{"query", "glacier ablation stakes"}});
  EXPECT_EQ(both.content["query_source"], "model+fallback");
  ASSERT_EQ(both.citations.size(), 2u);
  EXPECT_EQ(both.citations[0]["document"], "chess.txt");
  EXPECT_EQ(both.citations[1]["document"], "glacier.txt");
  // Without a fallback, a missing query is the tool's error and an empty one finds nothing.
  auto plain = retrieval_tool(store, 2);
  EXPECT_TRUE(plain.run(json::object()).error);
  EXPECT_TRUE(plain.run(json{{"query", " "}}).citations.empty());
}

// A tool whose strict schema pins the argument: the random tiny model can only call it with that expression, so
// the whole loop (template, constraint, engine, parsing, execution, tool message, final turn) is checked exactly.
TEST(AgentLoopTest, TinyModelCallsCalculatorAndAnswers) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  Engine engine(agent_test::tiny_model(), tok);
  ToolRegistry reg;
  RegisteredTool calc_tool = calculator_tool();
  calc_tool.definition.parameters = json::parse(R"({"type":"object","properties":{"expression":
      {"const":"12345678901234567890*98765432109876543210"}},"required":["expression"],"additionalProperties":false})");
  reg.add(calc_tool);
  AgentOptions o;
  o.params.max_tokens = 120;
  o.params.sampling.temperature = 0.7f;
  o.first_choice = ToolChoice{ToolChoiceMode::Required, ""};
  o.parallel_tool_calls = false;
  o.max_steps = 3;
  AgentLoop loop(engine, vocab, reg, o);
  ChatMessage user;
  user.role = "user";
  user.content = "What is 12345678901234567890 times 98765432109876543210?";
  std::vector<AgentEvent> events;
  AgentResult res = loop.run({user}, [&](const AgentEvent& e) { events.push_back(e); });
  std::vector<std::string> kinds;
  for (auto& e : events)
    if (e.kind != AgentEventKind::ModelDelta) kinds.push_back(agent_event_kind_name(e.kind));
  ASSERT_GE(kinds.size(), 5u);
  EXPECT_EQ(kinds[0], "model_turn");
  EXPECT_EQ(kinds[1], "tool_call");
  EXPECT_EQ(kinds[2], "tool_result");
  EXPECT_EQ(kinds.back(), "final");
  const AgentEvent* result = nullptr;
  for (auto& e : events)
    if (e.kind == AgentEventKind::ToolResult) result = &e;
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->tool_error) << result->result.dump();
  EXPECT_EQ(result->result["result"], "1219326311370217952237463801111263526900");
  // user, assistant(tool call), tool, ..., assistant(final)
  ASSERT_GE(res.messages.size(), 4u);
  EXPECT_EQ(res.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(res.messages[2].role, "tool");
  EXPECT_NE(res.messages[2].content.find("1219326311370217952237463801111263526900"), std::string::npos);
  EXPECT_EQ(res.messages.back().role, "assistant");
  EXPECT_TRUE(res.messages.back().tool_calls.empty());
  EXPECT_GE(res.steps, 2);
  EXPECT_NE(res.finish_reason, "error");
  // The next prompt really carries the tool output back to the model.
  std::string prompt = apply_chat_template(ChatFormat::DeepSeekV3, res.messages);
  EXPECT_NE(prompt.find("<｜tool▁output▁begin｜>{"), std::string::npos);
}

// On an R1 route the forced call comes after the reasoning (the prompt opens <think>), so it is parsed as a call.
TEST(AgentLoopTest, ReasonerForcedCallFollowsTheReasoning) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  Engine engine(agent_test::tiny_model(), tok);
  ToolRegistry reg;
  reg.add(datetime_tool());
  AgentOptions o;
  o.format = ChatFormat::DeepSeekR1;
  o.params.max_tokens = 60;
  o.first_choice = ToolChoice{ToolChoiceMode::Named, "current_datetime"};
  o.max_steps = 2;
  AgentLoop loop(engine, vocab, reg, o);
  ChatMessage user;
  user.role = "user";
  user.content = "What time is it?";
  AgentResult res = loop.run({user});
  ASSERT_GE(res.messages.size(), 3u);
  ASSERT_EQ(res.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(res.messages[1].tool_calls[0].name, "current_datetime");
  EXPECT_EQ(res.messages[2].role, "tool");
  EXPECT_EQ(res.steps, 2);
}

TEST(AgentLoopTest, SlowToolTimesOut) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  Engine engine(agent_test::tiny_model(), tok);
  ToolRegistry reg;
  RegisteredTool slow;
  slow.definition.name = "slow";
  slow.definition.parameters = json::parse(R"({"type":"object","properties":{},"additionalProperties":false})");
  slow.definition.strict = true;
  slow.timeout = std::chrono::milliseconds(50);
  slow.run = [](const json&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return ToolResult{json{{"late", true}}, false, {}};
  };
  reg.add(slow);
  AgentOptions o;
  o.params.max_tokens = 40;
  o.first_choice = ToolChoice{ToolChoiceMode::Required, ""};
  o.parallel_tool_calls = false;
  o.max_steps = 2;
  ChatMessage user;
  user.role = "user";
  user.content = "hi";
  std::vector<AgentEvent> events;
  const auto t0 = std::chrono::steady_clock::now();
  {
    AgentLoop loop(engine, vocab, reg, o);
    loop.run({user}, [&](const AgentEvent& e) { events.push_back(e); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 1.4);  // did not wait for the slow tool
  }
  bool timed_out = false;
  for (auto& e : events)
    if (e.kind == AgentEventKind::ToolResult)
      timed_out = e.tool_error && e.result["error"].get<std::string>().find("timed out") != std::string::npos;
  EXPECT_TRUE(timed_out);
}

// The model's own embeddings: hidden_states agrees with itself across a split prompt (the cache is used right),
// the pooled vector is unit length and deterministic, and dense retrieval runs on it.
TEST(AgentEmbeddings, TinyModelHiddenStatesAndDenseRetrieval) {
  auto tok = agent_test::tiny_tokenizer();
  auto model = agent_test::tiny_model();
  std::vector<int32_t> ids = tok->encode("the answer is 42 and more words");
  ASSERT_GE(ids.size(), 4u);
  const int64_t d = model->config().hidden_size;
  auto s1 = model->new_sequence(int64_t(ids.size()));
  Tensor whole = model->hidden_states(*s1, ids);
  ASSERT_EQ(whole.dim(0), int64_t(ids.size()));
  ASSERT_EQ(whole.dim(1), d);
  auto s2 = model->new_sequence(int64_t(ids.size()));
  const size_t half = ids.size() / 2;
  model->hidden_states(*s2, std::span<const int32_t>(ids.data(), half));
  Tensor rest = model->hidden_states(*s2, std::span<const int32_t>(ids.data() + half, ids.size() - half));
  for (int64_t t = 0; t < rest.dim(0); ++t)
    for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(rest.f32()[t * d + i], whole.f32()[(int64_t(half) + t) * d + i], 2e-4);
  auto e1 = model_embedding(*model, *tok, "lighthouse keepers");
  auto e2 = model_embedding(*model, *tok, "lighthouse keepers");
  auto e3 = model_embedding(*model, *tok, "sourdough bread");
  double n = 0, diff = 0;
  for (int64_t i = 0; i < d; ++i) n += double(e1[size_t(i)]) * e1[size_t(i)], diff += std::abs(e1[size_t(i)] - e3[size_t(i)]);
  EXPECT_NEAR(n, 1.0, 1e-5);
  EXPECT_EQ(e1, e2);
  EXPECT_GT(diff, 1e-3);
  auto store = fixture_store();
  store->set_embedder(model_embedder(model, tok));
  auto hits = store->search("When was the lighthouse automated?", 3);
  ASSERT_EQ(hits.size(), 3u);
  // Fused scores are reciprocal-rank sums (a random model's ranking is noise, so no order is asserted here).
  for (const auto& h : hits) {
    EXPECT_GT(h.score, 0.0);
    EXPECT_LE(h.score, 2.0 / 61.0 + 1e-12);
    EXPECT_FALSE(h.document.empty());
  }
}
