// Chat templates (exact strings) and the incremental output parser (every chunk size gives the same result).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tokenizer/chat_template.h"

using namespace baleine;

namespace {
ChatMessage msg(std::string role, std::string content) { return ChatMessage{std::move(role), std::move(content), true, {}}; }
}  // namespace

TEST(ChatTemplate, DeepSeekV3) {
  std::vector<ChatMessage> m = {msg("system", "You are helpful."), msg("user", "Hi"), msg("assistant", "Hello!"),
                                msg("user", "2+2?")};
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV3, m),
            "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>");
}

TEST(ChatTemplate, DeepSeekV3ToolCallsAndOutputs) {
  ChatMessage call{"assistant", "", false, {{"c0", "function", "get_weather", R"({"city": "Paris"})"},
                                            {"c1", "function", "get_time", R"({"tz": "CET"})"}}};
  std::vector<ChatMessage> m = {msg("user", "Weather?"), call, msg("tool", "18C"), msg("tool", "14:00"),
                                msg("assistant", "18C at 14:00."), msg("user", "Thanks")};
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV3, m),
            "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
            "```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n"
            "{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C"
            "<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>14:00<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18C at 14:00.<｜end▁of▁sentence｜>"
            "<｜User｜>Thanks<｜Assistant｜>");
  // Ending on tool outputs: the outputs block is closed and the model continues without a new Assistant tag.
  std::vector<ChatMessage> pending = {msg("user", "Weather?"), call, msg("tool", "18C")};
  std::string s = apply_chat_template(ChatFormat::DeepSeekV3, pending);
  EXPECT_EQ(s.substr(s.size() - std::string("18C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>").size()),
            "18C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
}

TEST(ChatTemplate, R1StripsEarlierReasoningAndOpensThink) {
  std::vector<ChatMessage> m = {msg("user", "1+1?"), msg("assistant", "<think>\nadd\n</think>\n\n2"), msg("user", "2+2?")};
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekR1, m),
            "<｜begin▁of▁sentence｜><｜User｜>1+1?<｜Assistant｜>\n\n2<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n");
}

TEST(ChatTemplate, QwenAndLlama) {
  std::vector<ChatMessage> m = {msg("system", "S"), msg("user", "U")};
  EXPECT_EQ(apply_chat_template(ChatFormat::Qwen2, m),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama3, m),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
            "\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_THROW(apply_chat_template(ChatFormat::DeepSeekV3, {msg("wizard", "x")}), Error);
  EXPECT_THROW(chat_format_from_name("jinja"), Error);
}

TEST(OutputParser, EveryChunkSizeGivesTheSameSplit) {
  const std::string out =
      "Let me think.\n2+2 is 4 </thin the end</think>\n\nThe answer is 4.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
      "<｜tool▁sep｜>calc\n```json\n{\"expr\": \"2+2\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜> Done.";
  for (size_t chunk = 1; chunk <= out.size(); chunk += (chunk < 12 ? 1 : 17)) {
    OutputParser p(/*starts_in_reasoning=*/true);
    std::string reasoning, content;
    std::vector<ToolCall> calls;
    auto take = [&](const OutputParser::Delta& d) {
      reasoning += d.reasoning;
      content += d.content;
      calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
      EXPECT_EQ(d.content.find("<｜"), std::string::npos) << "marker leaked, chunk " << chunk;
      EXPECT_EQ(d.reasoning.find("</think"), std::string::npos) << "marker leaked, chunk " << chunk;
    };
    for (size_t i = 0; i < out.size(); i += chunk) take(p.push(std::string_view(out).substr(i, chunk)));
    take(p.finish());
    EXPECT_EQ(reasoning, "Let me think.\n2+2 is 4 </thin the end") << chunk;
    EXPECT_EQ(content, "The answer is 4. Done.") << chunk;
    ASSERT_EQ(calls.size(), 1u) << chunk;
    EXPECT_EQ(calls[0].name, "calc");
    EXPECT_EQ(calls[0].arguments, "{\"expr\": \"2+2\"}");
  }
}

TEST(OutputParser, ThinkOpenedByTheModelAndUnterminatedCalls) {
  OutputParser p(false);
  auto d = p.push("<think>hmm</think>ok<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```");
  auto e = p.finish();
  EXPECT_EQ(d.reasoning, "hmm");
  EXPECT_EQ(d.content + e.content, "ok");
  ASSERT_EQ(d.tool_calls.size() + e.tool_calls.size(), 1u);
  EXPECT_EQ(e.tool_calls[0].arguments, "{}");
}

// Thinking turned off (hybrid model): a <think> the model writes anyway is content, never reasoning, at any chunking;
// tool calls are still calls.
TEST(OutputParser, ReasoningNotAllowedKeepsThinkAsContent) {
  const std::string out = "<think>hmm</think>ok<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  for (size_t chunk : {size_t(1), size_t(3), out.size()}) {
    OutputParser p(false, /*reasoning_allowed=*/false);
    OutputParser::Delta all;
    for (size_t i = 0; i < out.size(); i += chunk) {
      auto d = p.push(std::string_view(out).substr(i, chunk));
      all.reasoning += d.reasoning;
      all.content += d.content;
      all.tool_calls.insert(all.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    }
    auto e = p.finish();
    EXPECT_EQ(all.reasoning + e.reasoning, "") << chunk;
    EXPECT_EQ(all.content + e.content, "<think>hmm</think>ok") << chunk;
    EXPECT_EQ(all.tool_calls.size() + e.tool_calls.size(), 1u) << chunk;
  }
}

namespace {
// Everything a parser that starts in the reasoning gives for `text` pushed `chunk` bytes at a time, then finished.
OutputParser::Delta parse_in_chunks(std::string_view text, size_t chunk) {
  OutputParser q(/*starts_in_reasoning=*/true);
  OutputParser::Delta all;
  auto take = [&](const OutputParser::Delta& d) {
    all.reasoning += d.reasoning;
    all.content += d.content;
    all.tool_calls.insert(all.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  };
  for (size_t i = 0; i < text.size(); i += chunk) take(q.push(text.substr(i, chunk)));
  take(q.finish());
  return all;
}
}  // namespace

TEST(OutputParser, ToolCallsInsideReasoningAreCallsNotReasoning) {
  // The bug a user hit: a thinking model wrote its tool call before </think>; the raw markers came back in
  // reasoning_content. Every chunk size must give the call, and reasoning without a marker.
  const std::string out = "I should look it up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>lookup\n```json\n"
                          "{\"q\": \"x\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  for (size_t chunk = 1; chunk <= out.size(); ++chunk) {
    OutputParser p(/*starts_in_reasoning=*/true);
    std::string reasoning, content;
    std::vector<ToolCall> calls;
    auto take = [&](const OutputParser::Delta& d) {
      reasoning += d.reasoning;
      content += d.content;
      calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    };
    for (size_t i = 0; i < out.size(); i += chunk) take(p.push(std::string_view(out).substr(i, chunk)));
    take(p.finish());
    EXPECT_EQ(reasoning, "I should look it up.") << chunk;
    EXPECT_EQ(reasoning.find("<｜"), std::string::npos) << chunk;
    EXPECT_EQ(content, "") << chunk;
    ASSERT_EQ(calls.size(), 1u) << chunk;
    EXPECT_EQ(calls[0].name, "lookup");
    EXPECT_EQ(calls[0].arguments, "{\"q\": \"x\"}");
  }
  // A stray block opener while thinking, then </think> and the answer: the answer is content, not part of a call.
  for (size_t chunk = 1; chunk <= 40; ++chunk) {
    const auto e = parse_in_chunks("hmm<｜tool▁calls▁begin｜>junk</think>{\"ok\": true}", chunk);
    EXPECT_EQ(e.reasoning, "hmm") << chunk;
    EXPECT_EQ(e.content, "{\"ok\": true}") << chunk;
  }
  // The other tool markers written while thinking, with no block open, are dropped from the reasoning (the default
  // model wrote a lone <｜tool▁calls▁end｜> on the reasoner); the answer after </think> is untouched.
  for (size_t chunk = 1; chunk <= 40; ++chunk) {
    const auto e = parse_in_chunks("a<｜tool▁calls▁end｜>b<｜tool▁sep｜><｜tool▁call▁end｜>c<｜tool▁call▁begin｜></think>x<｜tool▁sep｜>y", chunk);
    EXPECT_EQ(e.reasoning, "abc") << chunk;
    EXPECT_EQ(e.content, "x<｜tool▁sep｜>y") << chunk;
  }
  // Right after the reasoning (</think> then the block) it was already parsed; it stays so.
  OutputParser p(true);
  auto d = p.push("why</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  EXPECT_EQ(d.reasoning, "why");
  ASSERT_EQ(d.tool_calls.size(), 1u);
}

namespace {
ChatMessage with_reasoning(ChatMessage m, std::string r) {
  m.reasoning = std::move(r);
  m.has_reasoning = true;
  return m;
}
const std::string kB = "<｜begin▁of▁sentence｜>", kU = "<｜User｜>", kA = "<｜Assistant｜>", kE = "<｜end▁of▁sentence｜>";
const std::string kCall = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
}  // namespace

TEST(ChatTemplate, HybridV31OpensThinkOrClosesIt) {
  std::vector<ChatMessage> m = {msg("system", "S"), msg("user", "1+1?"), msg("assistant", "2"), msg("user", "2+2?")};
  ChatTemplateOptions on, off;
  off.thinking = false;
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV31, m, on), kB + "S" + kU + "1+1?" + kA + "</think>2" + kE + kU + "2+2?" + kA + "<think>");
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV31, m, off), kB + "S" + kU + "1+1?" + kA + "</think>2" + kE + kU + "2+2?" + kA + "</think>");
  EXPECT_TRUE(generation_starts_in_reasoning(ChatFormat::DeepSeekV31, true));
  EXPECT_FALSE(generation_starts_in_reasoning(ChatFormat::DeepSeekV31, false));
  EXPECT_TRUE(generation_starts_in_reasoning(ChatFormat::DeepSeekR1, false));  // R1 cannot be switched off
  EXPECT_FALSE(generation_starts_in_reasoning(ChatFormat::DeepSeekV3, true));
  EXPECT_EQ(thinking_support(ChatFormat::DeepSeekV31), ThinkingSupport::Toggle);
  EXPECT_EQ(chat_format_from_name("deepseek-v3.1"), ChatFormat::DeepSeekV31);
  EXPECT_EQ(std::string(chat_format_name(ChatFormat::DeepSeekV31)), "deepseek-v3.1");
}

TEST(ChatTemplate, ReasoningDroppedBetweenTurnsKeptWithinAToolTurn) {
  ChatMessage call{"assistant", "", false, {{"c0", "function", "f", "{}"}}};
  // Earlier turn: reasoning sent back is dropped (same prompt as without it). Current turn: kept.
  std::vector<ChatMessage> m = {msg("user", "a"), with_reasoning(msg("assistant", "b"), "old thoughts"), msg("user", "c"),
                                with_reasoning(call, "need f"), msg("tool", "42")};
  std::vector<ChatMessage> bare = m;
  bare[1].has_reasoning = false;
  bare[1].reasoning.clear();
  for (ChatFormat f : {ChatFormat::DeepSeekR1, ChatFormat::DeepSeekV31}) {
    const std::string s = apply_chat_template(f, m), without_old = apply_chat_template(f, bare);
    EXPECT_EQ(s, without_old);
    EXPECT_EQ(s.find("old thoughts"), std::string::npos);
    EXPECT_NE(s.find("need f"), std::string::npos);
  }
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV31, m),
            kB + kU + "a" + kA + "</think>b" + kE + kU + "c" + kA + "<think>need f</think>" + kCall + kE +
                "<｜tool▁output▁begin｜>42<｜tool▁output▁end｜><think>");
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekR1, m),
            kB + kU + "a" + kA + "b" + kE + kU + "c" + kA + "<think>\nneed f\n</think>\n\n" + kCall + kE +
                "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
  // Not thinking (hybrid off) or a model without reasoning (V3): reasoning never reaches the prompt.
  ChatTemplateOptions off;
  off.thinking = false;
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV31, m, off).find("need f"), std::string::npos);
  EXPECT_EQ(apply_chat_template(ChatFormat::DeepSeekV3, m).find("need f"), std::string::npos);
  EXPECT_EQ(last_user_index(m), 2);
}

// ---- DeepSeek-V3.2 / V4 (DSML tool calls) ----

namespace {
using ojson = nlohmann::ordered_json;

// An OpenAI message of the fixture as the server hands it to the template (content null: no content).
ChatMessage from_openai(const ojson& j) {
  ChatMessage m;
  m.role = j.at("role").get<std::string>();
  m.has_content = j.contains("content") && !j["content"].is_null();
  if (m.has_content) m.content = j["content"].get<std::string>();
  if (j.contains("reasoning_content")) {
    m.reasoning = j["reasoning_content"].get<std::string>();
    m.has_reasoning = true;
  }
  if (j.contains("tool_calls"))
    for (const auto& c : j["tool_calls"])
      m.tool_calls.push_back({c["id"].get<std::string>(), c["type"].get<std::string>(),
                              c["function"]["name"].get<std::string>(), c["function"]["arguments"].get<std::string>()});
  return m;
}

// Each tool's "function" object as JSON text, keys in the fixture's order (ordered_json keeps it).
std::vector<std::string> function_texts(const ojson& tools) {
  std::vector<std::string> out;
  for (const auto& t : tools)
    if (t["type"] == "function") out.push_back(t["function"].dump());
  return out;
}
}  // namespace

// Every string the Jinja templates rendered (tests/reference/make_template_fixtures.py), byte for byte.
TEST(ChatTemplate, DsmlFormatsMatchTheJinjaTemplates) {
  std::ifstream f(std::string(BALEINE_TEST_DATA) + "/chat_templates/deepseek_dsml.json");
  ASSERT_TRUE(f.good());
  const ojson doc = ojson::parse(f);
  size_t n = 0;
  for (const auto& c : doc["cases"]) {
    const ojson& conv = doc["conversations"][c["conversation"].get<std::string>()];
    std::vector<ChatMessage> messages;
    for (const auto& m : conv["messages"]) messages.push_back(from_openai(m));
    ChatTemplateOptions o;
    o.thinking = c["thinking"].get<bool>();
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.bos_token = doc["bos_token"].get<std::string>();
    o.tools = function_texts(conv["tools"]);
    const ChatFormat format = chat_format_from_name(c["format"].get<std::string>());
    EXPECT_EQ(apply_chat_template(format, messages, o), c["expected"].get<std::string>())
        << c["format"] << " " << c["conversation"] << " thinking=" << o.thinking << " gen=" << o.add_generation_prompt;
    ++n;
  }
  EXPECT_EQ(n, 2u * doc["conversations"].size() * 4u);
}

TEST(ChatTemplate, DsmlNamesThinkingAndErrors) {
  EXPECT_EQ(chat_format_from_name("deepseek-v3.2"), ChatFormat::DeepSeekV32);
  EXPECT_EQ(chat_format_from_name("deepseek-v4"), ChatFormat::DeepSeekV4);
  EXPECT_EQ(std::string(chat_format_name(ChatFormat::DeepSeekV32)), "deepseek-v3.2");
  EXPECT_EQ(std::string(chat_format_name(ChatFormat::DeepSeekV4)), "deepseek-v4");
  for (ChatFormat f : {ChatFormat::DeepSeekV32, ChatFormat::DeepSeekV4}) {
    EXPECT_EQ(thinking_support(f), ThinkingSupport::Toggle);
    EXPECT_TRUE(generation_starts_in_reasoning(f, true));
    EXPECT_FALSE(generation_starts_in_reasoning(f, false));
    ChatMessage bad{"assistant", "", false, {{"c0", "function", "f", "[1, 2]"}}};
    EXPECT_THROW(apply_chat_template(f, {msg("user", "u"), bad}), Error);  // arguments must be an object
    EXPECT_THROW(apply_chat_template(f, {msg("wizard", "x")}), Error);
  }
  ChatTemplateOptions with_tools;
  with_tools.tools = {R"({"name": "f"})"};
  EXPECT_THROW(apply_chat_template(ChatFormat::DeepSeekV3, {msg("user", "u")}, with_tools), Error);
}

namespace {
// Everything a parser gives for `text` pushed `chunk` bytes at a time, then finished; no delta may hold a marker
// or the start of one.
OutputParser::Delta parse_dsml(std::string_view text, size_t chunk, bool starts_in_reasoning) {
  OutputParser q(starts_in_reasoning);
  OutputParser::Delta all;
  auto take = [&](const OutputParser::Delta& d) {
    for (const std::string* s : {&d.reasoning, &d.content}) {
      EXPECT_EQ(s->find("<｜"), std::string::npos) << "chunk " << chunk << ": " << *s;
      EXPECT_EQ(s->find("</｜"), std::string::npos) << "chunk " << chunk << ": " << *s;
      EXPECT_EQ(s->find("｜DSML"), std::string::npos) << "chunk " << chunk << ": " << *s;
    }
    all.reasoning += d.reasoning;
    all.content += d.content;
    all.tool_calls.insert(all.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  };
  for (size_t i = 0; i < text.size(); i += chunk) take(q.push(text.substr(i, chunk)));
  take(q.finish());
  return all;
}
}  // namespace

// What the model writes after the generation prompt (reasoning, content, the DSML block), cut from a rendered
// conversation, parses back into the same message at every chunk size from 1 to 40 bytes; rendering the parsed
// message gives the model's text again, so a reply sent back is the prompt the model saw.
TEST(OutputParser, DsmlToolCallsRoundTripAtEveryChunkSize) {
  const std::string weather = R"({"city": "Zürich 東京 \"q\"\nline2", "days": 3})";
  const std::string search = R"({"query": "naïve 😀", "filters": {"site": "x.org", "deep": [1, 2.5, null, true]}, "flag": false})";
  ChatMessage reply{"assistant", "Let me check.", true,
                    {{"c0", "function", "get_weather", weather}, {"c1", "function", "search", search},
                     {"c2", "function", "now", "{}"}}};
  reply.reasoning = "need <b>both</b> tools\n";
  reply.has_reasoning = true;
  ChatTemplateOptions o;
  o.tools = {R"({"name": "get_weather", "parameters": {"type": "object"}})"};
  for (ChatFormat f : {ChatFormat::DeepSeekV32, ChatFormat::DeepSeekV4}) {
    for (bool thinking : {true, false}) {
      o.thinking = thinking;
      o.add_generation_prompt = true;
      const std::string prompt = apply_chat_template(f, {msg("user", "Weather?")}, o);
      o.add_generation_prompt = false;
      ChatMessage sent = reply;
      if (!thinking) sent.reasoning.clear(), sent.has_reasoning = false;
      const std::string full = apply_chat_template(f, {msg("user", "Weather?"), sent}, o);
      // Thinking off, V3.2's generation prompt is "<think></think>" where the history has "</think>": the model's
      // text is what follows either.
      const std::string head = thinking || f == ChatFormat::DeepSeekV4 ? prompt : prompt.substr(0, prompt.size() - 15) + "</think>";
      ASSERT_EQ(full.substr(0, head.size()), head) << chat_format_name(f);
      const std::string out = full.substr(head.size(), full.size() - head.size() - kE.size());
      for (size_t chunk = 1; chunk <= 40; ++chunk) {
        const auto d = parse_dsml(out, chunk, generation_starts_in_reasoning(f, thinking));
        EXPECT_EQ(d.reasoning, thinking ? reply.reasoning : "") << chunk;
        EXPECT_EQ(d.content, "Let me check.") << chunk;
        ASSERT_EQ(d.tool_calls.size(), 3u) << chunk;
        EXPECT_EQ(d.tool_calls[0].name, "get_weather");
        EXPECT_EQ(ojson::parse(d.tool_calls[0].arguments), ojson::parse(weather));  // same keys, same order
        EXPECT_EQ(ojson::parse(d.tool_calls[1].arguments), ojson::parse(search));
        EXPECT_EQ(d.tool_calls[2].arguments, "{}");
        ChatMessage back{"assistant", d.content, true, d.tool_calls};
        back.reasoning = d.reasoning;
        back.has_reasoning = thinking;
        EXPECT_EQ(apply_chat_template(f, {msg("user", "Weather?"), back}, o), full) << chunk;
      }
    }
  }
}

TEST(OutputParser, DsmlEdgeCases) {
  for (size_t chunk = 1; chunk <= 40; ++chunk) {
    // A block opened while thinking ends the reasoning and is a call; V4's empty line of an argless invoke.
    auto d = parse_dsml("hmm<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", chunk, true);
    EXPECT_EQ(d.reasoning, "hmm") << chunk;
    EXPECT_EQ(d.content, "") << chunk;
    ASSERT_EQ(d.tool_calls.size(), 1u) << chunk;
    EXPECT_EQ(d.tool_calls[0].name, "f");
    EXPECT_EQ(d.tool_calls[0].arguments, "{}");
    // Newlines not followed by a block stay content, as do a lone "<" and a '｜' that open no marker.
    d = parse_dsml("a\n\nb <x ｜\n\n", chunk, false);
    EXPECT_EQ(d.content, "a\n\nb <x ｜\n\n") << chunk;
    // A value marked non-string that is not JSON stays text; a block cut off by the end is parsed as far as it goes.
    d = parse_dsml("ok\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"g\">\n<｜DSML｜parameter name=\"n\" string=\"false\">"
                   "12 apples</｜DSML｜parameter>\n<｜DSML｜parameter name=\"s\" string=\"true\">42</｜DSML｜parameter>\n"
                   "<｜DSML｜parameter name=\"t\" string=\"true\">cut",
                   chunk, false);
    EXPECT_EQ(d.content, "ok") << chunk;
    ASSERT_EQ(d.tool_calls.size(), 1u) << chunk;
    EXPECT_EQ(d.tool_calls[0].arguments, R"({"n":"12 apples","s":"42","t":"cut"})") << chunk;
  }
  // The V3 syntax is unchanged: newlines before its block stay content.
  const auto v3 = parse_dsml("x\n" + kCall, 5, false);
  EXPECT_EQ(v3.content, "x\n");
  EXPECT_EQ(v3.tool_calls.size(), 1u);
}
