// Function calling without HTTP: tool definitions (valid and hostile), tool_choice, the DeepSeek template with
// tools, tool_choice enforced by constraints (random logits and the tiny model), and calls parsed back.
#include <gtest/gtest.h>

#include <random>

#include "agent/tools.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

namespace {

json weather_tools() {
  return json::parse(R"([
    {"type":"function","function":{"name":"get_weather","description":"Weather of a city","strict":true,
      "parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["C","F"]}},
                    "required":["city","unit"],"additionalProperties":false}}},
    {"type":"function","function":{"name":"add","description":"Adds two integers",
      "parameters":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}}}
  ])");
}

std::string error_of(const json& tools) {
  try {
    parse_tools(tools);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ChatMessage user_msg(const std::string& text) {
  ChatMessage m;
  m.role = "user";
  m.content = text;
  return m;
}

int32_t id_of(const std::string& bytes) {
  auto id = agent_test::tiny_tokenizer()->token_id(bytes);
  return id ? *id : -1;
}

}  // namespace

TEST(AgentTools, ParsesDefinitions) {
  auto tools = parse_tools(weather_tools());
  ASSERT_EQ(tools.size(), 2u);
  EXPECT_EQ(tools[0].name, "get_weather");
  EXPECT_TRUE(tools[0].strict);
  EXPECT_FALSE(tools[1].strict);
  EXPECT_EQ(tools[1].parameters["required"], json({"a", "b"}));
  EXPECT_TRUE(parse_tools(json()).empty());
}

TEST(AgentTools, HostileDefinitionsAreRefused) {
  json many = json::array();
  for (int i = 0; i < 200; ++i) many.push_back({{"type", "function"}, {"function", {{"name", "f" + std::to_string(i)}}}});
  EXPECT_NE(error_of(many).find("at most 128"), std::string::npos);
  json t = weather_tools();
  t[0]["function"]["description"] = std::string(100000, 'x');
  EXPECT_NE(error_of(t).find("tools[0].function.description: longer than"), std::string::npos);
  t = weather_tools();
  t[1]["function"]["parameters"] = json::parse(R"({"type":"object","properties":{"n":{"$ref":"#/$defs/node"}},
      "$defs":{"node":{"type":"object","properties":{"child":{"$ref":"#/$defs/node"}}}}})");
  EXPECT_NE(error_of(t).find("recursive"), std::string::npos);
  t = weather_tools();
  t[0]["function"]["parameters"]["properties"]["city"] = {{"type", "str"}};
  EXPECT_NE(error_of(t).find("tools[0].function.parameters: "), std::string::npos);
  t = weather_tools();
  t[0]["function"]["parameters"]["properties"]["city"] = {{"type", "string"}, {"format", "email"}};
  EXPECT_NE(error_of(t).find("'format' is not supported"), std::string::npos);  // strict
  t[0]["function"]["strict"] = false;
  EXPECT_EQ(error_of(t), "");                                                     // not strict: ignored
  t = weather_tools();
  t[1]["function"]["name"] = "rm -rf /";
  EXPECT_NE(error_of(t).find("function.name"), std::string::npos);
  t[1]["function"]["name"] = "get_weather";
  EXPECT_NE(error_of(t).find("defined twice"), std::string::npos);
  t = weather_tools();
  t[1]["function"]["parameters"] = {{"type", "array"}};
  EXPECT_NE(error_of(t).find("must be an object"), std::string::npos);
  EXPECT_NE(error_of(json::object()).find("must be an array"), std::string::npos);
}

TEST(AgentTools, ToolChoice) {
  auto tools = parse_tools(weather_tools());
  EXPECT_EQ(parse_tool_choice(json(), tools).mode, ToolChoiceMode::Auto);
  EXPECT_EQ(parse_tool_choice(json(), {}).mode, ToolChoiceMode::None);
  EXPECT_EQ(parse_tool_choice("required", tools).mode, ToolChoiceMode::Required);
  EXPECT_EQ(parse_tool_choice("none", tools).mode, ToolChoiceMode::None);
  auto named = parse_tool_choice(json::parse(R"({"type":"function","function":{"name":"add"}})"), tools);
  EXPECT_EQ(named.mode, ToolChoiceMode::Named);
  EXPECT_EQ(named.name, "add");
  EXPECT_THROW(parse_tool_choice(json::parse(R"({"type":"function","function":{"name":"nope"}})"), tools), Error);
  EXPECT_THROW(parse_tool_choice("sometimes", tools), Error);
  EXPECT_THROW(parse_tool_choice("required", {}), Error);
}

TEST(AgentTools, TemplateRendersToolsAndHistory) {
  auto tools = parse_tools(weather_tools());
  auto msgs = chat_messages_from_openai(json::parse(R"([
    {"role":"developer","content":"Be brief."},
    {"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"C\"}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"18 C"}
  ])"));
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_FALSE(msgs[2].has_content);
  msgs = add_tools_to_messages(msgs, tools, ToolChoice{});
  std::string prompt = apply_chat_template(ChatFormat::DeepSeekV3, msgs);
  EXPECT_NE(prompt.find("Be brief.\n\n## Tools"), std::string::npos);
  EXPECT_NE(prompt.find("### get_weather\nDescription: Weather of a city"), std::string::npos);
  EXPECT_NE(prompt.find("<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\":\"Paris\",\"unit\":\"C\"}\n```<｜tool▁call▁end｜>"),
            std::string::npos);
  EXPECT_NE(prompt.find("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18 C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"), std::string::npos);
  // Named choice shows only that tool; none shows no tools.
  auto named = add_tools_to_messages({user_msg("hi")}, tools, ToolChoice{ToolChoiceMode::Named, "add"});
  EXPECT_EQ(named[0].content.find("get_weather"), std::string::npos);
  EXPECT_EQ(add_tools_to_messages({user_msg("hi")}, tools, ToolChoice{ToolChoiceMode::None, ""}).size(), 1u);
  EXPECT_THROW(chat_messages_from_openai(json::parse(R"([{"role":"wizard","content":"x"}])")), Error);
}

TEST(AgentTools, RequiredAndNamedAlwaysGiveValidCalls) {
  auto tools = parse_tools(weather_tools());
  auto vocab = VocabIndex::build(*agent_test::tiny_tokenizer());
  std::mt19937 rng(3);
  for (int run = 0; run < 24; ++run) {
    ToolChoice choice = run % 3 == 2 ? ToolChoice{ToolChoiceMode::Named, "add"} : ToolChoice{ToolChoiceMode::Required, ""};
    ToolConstraintOptions o;
    o.parallel_tool_calls = run % 2 == 0;
    o.max_tokens = 80 + run * 4;
    auto c = make_tool_constraint(tools, choice, vocab, o);
    std::string text = agent_test::generate_random(*c, vocab->vocab_size, o.max_tokens, rng);
    ASSERT_TRUE(c->complete()) << text;
    AssistantTurn t = parse_assistant_output(text, tools, "stop");
    ASSERT_GE(t.tool_calls.size(), 1u) << text;
    if (!o.parallel_tool_calls) {
      EXPECT_EQ(t.tool_calls.size(), 1u);
    }
    EXPECT_TRUE(t.problems.empty()) << text;
    EXPECT_EQ(t.finish_reason, "tool_calls");
    EXPECT_EQ(t.content, "");
    for (const auto& call : t.tool_calls) {
      EXPECT_EQ(call.id.size(), 29u);
      json args = json::parse(call.arguments);
      if (choice.mode == ToolChoiceMode::Named) {
        EXPECT_EQ(call.name, "add");
      }
      if (call.name == "add") {
        EXPECT_TRUE(args["a"].is_number_integer() && args["b"].is_number_integer()) << call.arguments;
      } else {
        ASSERT_EQ(call.name, "get_weather");
        EXPECT_TRUE(args["city"].is_string()) << call.arguments;
        EXPECT_TRUE(args["unit"] == "C" || args["unit"] == "F") << call.arguments;
      }
    }
    EXPECT_EQ(tool_calls_to_openai(t.tool_calls)[0]["type"], "function");
  }
  EXPECT_THROW(make_tool_constraint(tools, ToolChoice{ToolChoiceMode::Required, ""}, vocab, {true, 5}), Error);
}

TEST(AgentTools, AutoConstrainsCallsOnceOpenedAndNoneForbidsMarkers) {
  auto tools = parse_tools(weather_tools());
  auto vocab = VocabIndex::build(*agent_test::tiny_tokenizer());
  const int32_t open = id_of("<｜tool▁calls▁begin｜>");
  ASSERT_GE(open, 0);
  std::mt19937 rng(9);
  for (int run = 0; run < 8; ++run) {
    auto c = make_tool_constraint(tools, ToolChoice{}, vocab, {true, 200});
    std::vector<float> logits(size_t(vocab->vocab_size), 0.0f);
    c->mask(logits);
    EXPECT_TRUE(std::isfinite(logits[size_t(open)]));
    c->accept(id_of("The"));  // some free text first
    c->accept(open);
    std::string text = "The<｜tool▁calls▁begin｜>" + agent_test::generate_random(*c, vocab->vocab_size, 198, rng);
    ASSERT_TRUE(c->complete()) << text;
    AssistantTurn t = parse_assistant_output(text, tools, "stop");
    EXPECT_EQ(t.content, "The");
    ASSERT_GE(t.tool_calls.size(), 1u) << text;
    EXPECT_TRUE(t.problems.empty()) << text;
  }
  auto none = make_tool_constraint(tools, ToolChoice{ToolChoiceMode::None, ""}, vocab, {});
  std::vector<float> logits(size_t(vocab->vocab_size), 0.0f);
  none->mask(logits);
  EXPECT_FALSE(std::isfinite(logits[size_t(open)]));
  EXPECT_FALSE(std::isfinite(logits[size_t(id_of("<｜tool▁call▁begin｜>"))]));
  EXPECT_TRUE(std::isfinite(logits[size_t(id_of("The"))]));
}

TEST(AgentTools, TinyModelThroughTheEngine) {
  auto tok = agent_test::tiny_tokenizer();
  auto tools = parse_tools(weather_tools());
  auto vocab = VocabIndex::build(*tok);
  Engine engine(agent_test::tiny_model(), tok);
  auto msgs = add_tools_to_messages({user_msg("What is 2 + 3?")}, tools, ToolChoice{});
  for (int seed = 0; seed < 3; ++seed) {
    GenerationRequest r;
    r.prompt = tok->encode(apply_chat_template(ChatFormat::DeepSeekV3, msgs));
    r.params.max_tokens = 120;
    r.params.sampling.temperature = 0.8f;
    r.params.sampling.seed = uint64_t(seed);
    r.params.constraint = make_tool_constraint(tools, ToolChoice{ToolChoiceMode::Required, ""}, vocab, {seed != 1, 120});
    auto h = engine.submit(std::move(r));
    std::string text;
    FinishReason reason = FinishReason::None;
    while (auto e = h->next(std::chrono::seconds(60))) {
      text += e->text;
      if (e->finished) reason = e->finish_reason;
      if (e->finished) break;
    }
    EXPECT_EQ(reason, FinishReason::Stop);
    AssistantTurn t = parse_assistant_output(text, tools, finish_reason_name(reason));
    ASSERT_GE(t.tool_calls.size(), 1u) << text;
    EXPECT_TRUE(t.problems.empty()) << text;
    EXPECT_EQ(t.finish_reason, "tool_calls");
  }
}
