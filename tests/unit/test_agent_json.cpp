// Constrained decoding: the schema compiler's errors, the byte automaton (accepts valid JSON of the schema, rejects
// the rest, its shortest-completion count is exact), and the token constraint with random logits under tight budgets.
// The outputs are validated independently by ajv in the agent_json_ajv CTest (tests/js/json_schema_ajv.sh).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/constraint.h"
#include "agent/grammar.h"
#include "agent/matcher.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

namespace {

const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "description": "full name"},
    "age": {"type": "integer"},
    "score": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    "kind": {"enum": ["cat", "dog", 3, null]},
    "ok": {"type": "boolean"},
    "pet": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"legs": {"type": "integer"}}, "required": ["legs"], "additionalProperties": false}]}
  },
  "required": ["name", "age", "tags"],
  "additionalProperties": false
})");

bool matches(const Grammar& g, std::string_view text) {
  GrammarMatcher m(g);
  MatchState s = m.initial();
  return m.feed(s, text) && m.accepting(s);
}

}  // namespace

TEST(AgentGrammar, AcceptsValidAndRejectsInvalid) {
  Grammar g = json_schema_grammar(kPerson);
  EXPECT_TRUE(matches(g, R"({"name":"Ada","age":36,"tags":["x"]})"));
  EXPECT_TRUE(matches(g, R"({ "tags": ["a","b"], "age": -1, "name": "\u00e9\n", "kind": null, "pet": {"legs": 4} })"));
  EXPECT_TRUE(matches(g, R"({"name":"é😀","age":0,"tags":["x"],"score":-0.5e+10,"ok":false,"kind":3})"));
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":36})"));                        // tags required
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":3.5,"tags":["x"]})"));         // integer
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":1,"tags":[]})"));              // minItems
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":1,"tags":["a","b","c","d"]})"));  // maxItems
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":1,"tags":["a"],"kind":"cow"})"));  // enum
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":1,"tags":["a"],"extra":1})"));  // additionalProperties
  EXPECT_FALSE(matches(g, R"({"name":"Ada","name":"B","age":1,"tags":["a"]})"));  // duplicate key
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":01,"tags":["a"]})"));           // leading zero
  EXPECT_FALSE(matches(g, "{\"name\":\"a\tb\",\"age\":1,\"tags\":[\"a\"]}"));   // raw control character
  EXPECT_FALSE(matches(g, "{\"name\":\"\xc3\",\"age\":1,\"tags\":[\"a\"]}"));   // broken UTF-8
  EXPECT_FALSE(matches(g, R"({"name":"\ud800","age":1,"tags":["a"]})"));        // lone surrogate escape
  EXPECT_FALSE(matches(g, R"({"name":"Ada","age":1,"tags":["a"]} )"));          // nothing after the value
}

TEST(AgentGrammar, JsonObjectModeTakesAnyObject) {
  Grammar g = json_object_grammar();
  EXPECT_TRUE(matches(g, R"({})"));
  EXPECT_TRUE(matches(g, R"({"a":[1,{"b":null},"c",true,[]],"d":{"e":-1.25E-3}})"));
  EXPECT_FALSE(matches(g, R"([1])"));
  EXPECT_FALSE(matches(g, R"("x")"));
  EXPECT_FALSE(matches(g, R"({"a":})"));
  EXPECT_FALSE(matches(g, R"({"a":1,})"));
}

TEST(AgentGrammar, RefsTypeListsAndConst) {
  json s = json::parse(R"({"$defs":{"pt":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"],"additionalProperties":false}},
    "type":"object","properties":{"a":{"$ref":"#/$defs/pt"},"b":{"type":["string","null"]},"c":{"const":"fixed"}},
    "required":["a","b","c"],"additionalProperties":false})");
  Grammar g = json_schema_grammar(s);
  EXPECT_TRUE(matches(g, R"({"a":{"x":1},"b":null,"c":"fixed"})"));
  EXPECT_TRUE(matches(g, R"({"c":"fixed","b":"s","a":{"x":2.5}})"));
  EXPECT_FALSE(matches(g, R"({"a":{"x":1},"b":1,"c":"fixed"})"));
  EXPECT_FALSE(matches(g, R"({"a":{"x":1},"b":null,"c":"other"})"));
}

TEST(AgentGrammar, HostileSchemasGetClearErrors) {
  auto err = [](const std::string& text, SchemaOptions o = {}) { return validate_json_schema(json::parse(text), o); };
  EXPECT_NE(err(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
  EXPECT_NE(err(R"({"type":"object","properties":{"a":{"$ref":"#/$defs/n"}},"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}}})")
                .find("recursive '$ref'"), std::string::npos);
  EXPECT_NE(err(R"({"$ref":"http://evil.example/schema"})").find("only local references"), std::string::npos);
  EXPECT_NE(err(R"({"type":"object","required":["x"]})").find("not declared"), std::string::npos);
  EXPECT_NE(err(R"({"enum":[]})").find("non-empty"), std::string::npos);
  EXPECT_NE(err(R"({"type":"array","minItems":3,"maxItems":1})").find("larger than 'maxItems'"), std::string::npos);
  EXPECT_NE(err(R"({"type":"string","pattern":"a+"})").find("'pattern' is not supported"), std::string::npos);
  SchemaOptions lenient;
  lenient.strict = false;
  EXPECT_EQ(err(R"({"type":"string","pattern":"a+"})", lenient), "");
  EXPECT_NE(err(R"(false)").find("admits no value"), std::string::npos);
  EXPECT_NE(err(R"(42)").find("must be an object"), std::string::npos);
  json huge = {{"type", "string"}, {"description", std::string(100000, 'x')}};
  EXPECT_NE(validate_json_schema(huge).find("longer than"), std::string::npos);
  json deep = {{"type", "string"}};
  for (int i = 0; i < 100; ++i) deep = {{"type", "array"}, {"items", deep}};
  EXPECT_NE(validate_json_schema(deep).find("nested deeper"), std::string::npos);
  json wide = {{"type", "object"}, {"properties", json::object()}};
  for (int i = 0; i < 100; ++i) wide["properties"]["p" + std::to_string(i)] = {{"type", "integer"}};
  EXPECT_NE(validate_json_schema(wide).find("more than 64 properties"), std::string::npos);
  // Billion-laughs style: references fan out exponentially.
  json bomb = {{"$defs", json::object()}};
  bomb["$defs"]["d0"] = {{"type", "integer"}};
  for (int i = 1; i < 15; ++i) {
    std::string prev = "#/$defs/d" + std::to_string(i - 1);
    bomb["$defs"]["d" + std::to_string(i)] = {{"anyOf", {{{"$ref", prev}}, {{"$ref", prev}}}}};
  }
  bomb["$ref"] = "#/$defs/d14";
  EXPECT_NE(validate_json_schema(bomb).find("too large"), std::string::npos);
}

// At every state reached, min_remaining is exact: some byte lowers it by exactly one and none by more.
TEST(AgentMatcher, ShortestCompletionIsExact) {
  Grammar g = json_schema_grammar(kPerson);
  GrammarMatcher m(g);
  std::mt19937 rng(7);
  for (int run = 0; run < 40; ++run) {
    MatchState s = m.initial(), t;
    for (int step = 0; step < 400; ++step) {
      const int64_t r = m.min_remaining(s);
      if (r == 0 && !m.can_continue(s)) break;
      std::vector<uint8_t> ok;
      bool down_one = r == 0;
      for (int b = 0; b < 256; ++b) {
        if (!m.step(s, uint8_t(b), t)) continue;
        const int64_t r2 = m.min_remaining(t);
        ASSERT_GE(r2, r - 1) << "byte " << b << " at step " << step;
        if (r2 == r - 1) down_one = true;
        ok.push_back(uint8_t(b));
      }
      ASSERT_TRUE(down_one) << "no byte makes progress at step " << step;
      ASSERT_FALSE(ok.empty());
      // Wander (mostly) then head for the end.
      std::vector<uint8_t> pick = ok;
      if (step > 200) {
        pick.clear();
        for (uint8_t b : ok) {
          m.step(s, b, t);
          if (m.min_remaining(t) < r || r == 0) pick.push_back(b);
        }
        if (pick.empty()) pick = ok;
      }
      ASSERT_TRUE(m.step(s, pick[rng() % pick.size()], t));
      std::swap(s, t);
    }
  }
}

// Random logits through the constraint: always valid, always finished within max_tokens, even when max_tokens is
// just the shortest completion.
TEST(AgentConstraint, RandomLogitsAlwaysFinishValid) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  auto grammar = std::make_shared<const Grammar>(json_schema_grammar(kPerson));
  std::mt19937 rng(11);
  for (int run = 0; run < 30; ++run) {
    auto probe = GrammarConstraint(grammar, vocab);
    const int64_t need = probe.min_tokens_needed();
    GrammarConstraintOptions o;
    o.max_tokens = run % 3 == 0 ? need : need + int64_t(rng() % 60);
    GrammarConstraint c(grammar, vocab, o);
    std::string text = agent_test::generate_random(c, vocab->vocab_size, o.max_tokens, rng);
    ASSERT_FALSE(c.failed()) << text;
    ASSERT_TRUE(c.complete()) << text;
    json j = json::parse(text);  // throws if not JSON
    EXPECT_TRUE(j.contains("name") && j["name"].is_string()) << text;
    EXPECT_TRUE(j["age"].is_number_integer()) << text;
    EXPECT_TRUE(j["tags"].is_array() && !j["tags"].empty() && j["tags"].size() <= 3) << text;
    EXPECT_LE(c.generated(), o.max_tokens);
  }
}

TEST(AgentConstraint, DeferredAfterReasoning) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  auto grammar = std::make_shared<const Grammar>(json_object_grammar());
  std::mt19937 rng(5);
  for (int run = 0; run < 10; ++run) {
    DeferredOptions d;
    d.max_tokens = 40;
    d.force = true;
    auto inner = std::make_shared<GrammarConstraint>(grammar, vocab);
    DeferredConstraint c("</think>", inner, vocab, d);
    std::string text = agent_test::generate_random(c, vocab->vocab_size, d.max_tokens, rng);
    ASSERT_TRUE(c.triggered()) << text;
    ASSERT_TRUE(c.complete()) << text;
    ASSERT_FALSE(inner->failed());
    EXPECT_TRUE(json::parse(inner->text()).is_object());
  }
}
