// SFT data in the OpenAI tool-calling shape and the synthetic agent traces: the training text of every assistant
// turn is exactly what the server's agent loop shows the model (same prompt text, same tokens) and the server's
// parser reads the trained reply back into the same reasoning, content and tool calls; traces are deterministic,
// split-disjoint, and hold the real tools' outputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "core/check.h"
#include "rl/agent_traces.h"
#include "infer/engine.h"
#include "rl/common.h"

using namespace baleine;
using namespace baleine::rl;
using nlohmann::json;

namespace {

const std::string kFacts = std::string(BALEINE_TEST_DATA) + "/facts";

// The embedded default model's tokenizer: 4k byte-level BPE with the DeepSeek chat and tool-call markers.
const Tokenizer& tokenizer() {
  static Tokenizer tok = Tokenizer::load(std::string(BALEINE_TEST_DATA) + "/../../models/default");
  return tok;
}

AgentTraces& traces() {
  static AgentTraces t = [] {
    AgentTraceOptions o;
    o.facts.data = kFacts;
    return AgentTraces(o, 7);
  }();
  return t;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \n"), b = s.find_last_not_of(" \n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Replays the conversation through the agent loop's own pieces (agent_turn_prompt, parse_assistant_output,
// agent_history_message) and checks each rendered sample against it.
void expect_renders_as_served(const json& j, ChatFormat format) {
  SCOPED_TRACE(j.dump().substr(0, 300));
  const Conversation conv = parse_conversation(j, "test");
  const auto samples = render_conversation(format, conv);
  const auto tokenized = tokenize_conversation(tokenizer(), format, conv);
  ASSERT_EQ(samples.size(), tokenized.size());
  const bool r1 = format == ChatFormat::DeepSeekR1;
  // The trained pieces in order, one per assistant turn, with the sample text before each.
  struct Turn {
    size_t sample;
    std::string before, reply;
    bool first;
  };
  std::vector<Turn> turns;
  for (size_t s = 0; s < samples.size(); ++s) {
    std::string acc;
    bool first = true;
    for (const auto& p : samples[s]) {
      if (p.trained) {
        turns.push_back({s, acc, p.text, first});
        first = false;
      }
      acc += p.text;
    }
  }
  std::vector<ChatMessage> history;  // what the loop's conversation holds
  size_t next = 0;
  for (size_t i = 0; i < conv.messages.size(); ++i) {
    const ChatMessage& m = conv.messages[i];
    if (m.role != "assistant") {
      history.push_back(m);
      continue;
    }
    ASSERT_LT(next, turns.size());
    const Turn& t = turns[next++];
    const std::string served = agent::agent_turn_prompt(format, history, conv.tools, conv.tool_choice);
    EXPECT_EQ(t.before, served) << "turn " << i;
    if (t.first) {  // a fresh sample: its prompt tokens are the server's encoding of the prompt
      const auto ids = tokenizer().encode(served);
      const auto& s = tokenized[t.sample];
      ASSERT_GT(s.tokens.size(), ids.size());
      EXPECT_EQ(std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + int64_t(ids.size())), ids);
      for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ(s.trained[k], 0);
      EXPECT_EQ(s.trained[ids.size()], 1);
    }
    // The server's parser reads the reply back; the engine stops on the end-of-sentence token without
    // emitting its text.
    const std::string eos = "<｜end▁of▁sentence｜>";
    ASSERT_GE(t.reply.size(), eos.size());
    ASSERT_EQ(t.reply.substr(t.reply.size() - eos.size()), eos);
    const std::string generated = t.reply.substr(0, t.reply.size() - eos.size());
    agent::AssistantTurn turn = agent::parse_assistant_output(generated, conv.tools, "stop", r1);
    EXPECT_TRUE(turn.problems.empty());
    EXPECT_EQ(trim(turn.reasoning), trim(conv.reasoning[i]));
    EXPECT_EQ(turn.content, m.content);
    ASSERT_EQ(turn.tool_calls.size(), m.tool_calls.size());
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      EXPECT_EQ(turn.tool_calls[k].name, m.tool_calls[k].name);
      EXPECT_EQ(turn.tool_calls[k].arguments, m.tool_calls[k].arguments);
    }
    history.push_back(agent::agent_history_message(turn));
  }
  EXPECT_EQ(next, turns.size());
  EXPECT_GT(turns.size(), 0u);
}

std::string decode_trained(const TokenizedSample& s, bool trained) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.tokens.size(); ++i)
    if (bool(s.trained[i]) == trained) ids.push_back(s.tokens[i]);
  return tokenizer().decode(ids);
}

// A model that writes a script: when a sequence's tokens are one of the training prompts followed by part of its
// trained reply, the next reply token gets all the probability (greedy sampling then follows it). It records
// every prompt it is asked to continue; anything off-script ends the turn.
class ScriptedModel final : public CausalLM {
 public:
  ScriptedModel(ModelConfig cfg, std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> script)
      : cfg_(std::move(cfg)), script_(std::move(script)) {}
  const ModelConfig& config() const override { return cfg_; }
  std::shared_ptr<KvPool> new_kv_pool(int64_t max_blocks, int64_t block_size, ops::KvDType dtype) const override {
    return std::make_shared<KvPool>(1, 1, block_size, max_blocks, dtype);
  }
  Tensor forward_batch(std::span<const BatchItem> items, MlaMode, Tensor*) override {
    check_batch(cfg_, items, 1, 1);
    const int64_t V = cfg_.vocab_size;
    int64_t rows = 0;
    for (const auto& it : items) rows += it.all_logits ? int64_t(it.tokens.size()) : 1;
    Tensor out = Tensor::zeros(DType::F32, {rows, V});
    int64_t row = 0;
    std::lock_guard lock(mu_);
    for (const auto& it : items) {
      auto& ctx = context_[it.seq];
      if (it.seq->length() == 0) {
        ctx.clear();
        fresh_.insert(it.seq);
      }
      ctx.insert(ctx.end(), it.tokens.begin(), it.tokens.end());
      if (fresh_.erase(it.seq)) prompts.push_back(ctx);  // the whole prompt of a new sequence
      if (it.all_logits) row += int64_t(it.tokens.size()) - 1;
      out.f32()[row * V + next_token(ctx)] = 30.0f;
      ++row;
      it.seq->advance(int64_t(it.tokens.size()));
    }
    return out;
  }
  void for_each_param(const nn::ParamVisitor&) override {}
  void prepare() override {}
  std::vector<std::vector<int32_t>> prompts;

 private:
  int32_t next_token(const std::vector<int32_t>& ctx) const {
    for (const auto& [prompt, reply] : script_) {
      if (ctx.size() < prompt.size() || ctx.size() >= prompt.size() + reply.size()) continue;
      if (!std::equal(prompt.begin(), prompt.end(), ctx.begin())) continue;
      if (!std::equal(ctx.begin() + int64_t(prompt.size()), ctx.end(), reply.begin())) continue;
      return reply[ctx.size() - prompt.size()];
    }
    return int32_t(cfg_.eos_token_id);
  }
  ModelConfig cfg_;
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> script_;
  std::mutex mu_;
  std::map<const Sequence*, std::vector<int32_t>> context_;
  std::set<const Sequence*> fresh_;
};

}  // namespace

TEST(RlAgentSft, TheRealAgentLoopReplaysTheTrainingTokens) {
  // Each trained sample is (prompt tokens, reply tokens) where the sample starts a new prompt. A scripted model
  // writes the replies inside the real engine and agent loop with the real calculator / search tools: the
  // prompts the loop builds must be exactly the training prompts, token for token, or the script goes off.
  std::ifstream in(std::string(BALEINE_TEST_DATA) + "/parity/v3/config.json");
  json cfg = json::parse(in);
  cfg["vocab_size"] = 4096;
  cfg["max_position_embeddings"] = 4096;
  cfg["rope_scaling"] = nullptr;
  const ModelConfig mc = parse_model_config(cfg, "test");
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(std::string(BALEINE_TEST_DATA) + "/../../models/default"));
  auto vocab = agent::VocabIndex::build(*tok);
  AgentTraceOptions o;
  o.facts.data = kFacts;
  FactSet facts(o.facts, 7);
  int checked = 0;
  std::set<std::string> kinds;
  for (int64_t i = 0; i < 16; ++i) {
    const json c = traces().conversation(Split::Train, i);
    const std::string kind = c["kind"];
    kinds.insert(kind);
    // (unanswerable traces too: their search finds nothing and falls back to the question's words)
    SCOPED_TRACE(c.dump().substr(0, 200));
    const Conversation conv = parse_conversation(c, "test");
    std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> script;
    for (const auto& pieces : render_conversation(ChatFormat::DeepSeekR1, conv)) {
      ASSERT_EQ(pieces.size(), 2u);  // R1: every turn its own sample (reasoning dropped from history)
      script.emplace_back(tokenizer().encode(pieces[0].text), tokenizer().encode(pieces[1].text));
    }
    auto model = std::make_shared<ScriptedModel>(mc, script);
    EngineOptions eo;
    eo.prefix_cache = false;
    eo.prefill_chunk = 4096;  // the whole prompt in one step, so the model sees it at once
    Engine engine(model, tok, eo);
    agent::ToolRegistry reg;
    for (const auto& t : conv.tools) {
      if (t.name == "calculator") reg.add(agent::calculator_tool());
      else if (t.name == "current_datetime") reg.add(agent::datetime_tool());
      else reg.add(agent::retrieval_tool(facts.document_store(), 3, conv.messages[0].content));  // as /v1/responses
    }
    agent::AgentOptions ao;
    ao.format = ChatFormat::DeepSeekR1;
    ao.params.max_tokens = 400;
    agent::AgentLoop loop(engine, vocab, reg, ao);
    std::vector<ChatMessage> first(conv.messages.begin(), conv.messages.begin() + 1);
    const agent::AgentResult r = loop.run(first);
    ASSERT_EQ(model->prompts.size(), script.size());
    for (size_t k = 0; k < script.size(); ++k)
      EXPECT_EQ(model->prompts[k], script[k].first) << "turn " << k << "\nserved:  " << tokenizer().decode(model->prompts[k])
                                                    << "\ntrained: " << tokenizer().decode(script[k].first);
    EXPECT_EQ(r.content, conv.messages.back().content);
    EXPECT_EQ(r.finish_reason, "stop");
    // The tool messages the loop produced (real tools) are the trace's.
    size_t tools_seen = 0;
    for (size_t m = 0; m < r.messages.size(); ++m)
      if (r.messages[m].role == "tool") {
        EXPECT_EQ(r.messages[m].content, conv.messages[m].content);
        ++tools_seen;
      }
    EXPECT_EQ(tools_seen, kind == "plain" ? 0u : 1u);
    engine.shutdown(false);
    ++checked;
  }
  EXPECT_EQ(checked, 16);
  EXPECT_EQ(kinds.size(), 4u);
}

TEST(RlAgentSft, OpenAiToolConversationTrainsWhatTheServerShows) {
  const agent::RegisteredTool calc = agent::calculator_tool();
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", calc.definition.name}, {"description", calc.definition.description},
                                                 {"parameters", calc.definition.parameters}, {"strict", true}}}}});
  const json args = {{"expression", "123456*654321"}};
  const std::string out = agent::agent_tool_message(calc.run(args), 16384).content;
  const json conv = {
      {"tools", tools},
      {"messages",
       {{{"role", "system"}, {"content", "You are terse."}},
        {{"role", "user"}, {"content", "What is 123456 × 654321?"}},
        {{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "Big numbers: use the calculator."},
         {"tool_calls", {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "calculator"}, {"arguments", args.dump()}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", out}},
        {{"role", "assistant"}, {"content", "80779853376"}, {"reasoning_content", "The tool says 80779853376."}},
        {{"role", "user"}, {"content", "Thanks!"}},
        {{"role", "assistant"}, {"content", "You're welcome."}}}}};
  for (ChatFormat f : {ChatFormat::DeepSeekR1, ChatFormat::DeepSeekV3}) expect_renders_as_served(conv, f);

  // R1: the tool-calling turn's reasoning is dropped from history, so each turn is its own sample; only the
  // assistant's text is trained: never the tool output, the user turns or the tools section.
  const auto r1 = tokenize_conversation(tokenizer(), ChatFormat::DeepSeekR1, parse_conversation(conv, "t"));
  ASSERT_EQ(r1.size(), 3u);
  EXPECT_EQ(decode_trained(r1[0], true),
            "Big numbers: use the calculator.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>calculator\n"
            "```json\n" + args.dump() + "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>");
  EXPECT_EQ(decode_trained(r1[1], true), "The tool says 80779853376.\n</think>\n\n80779853376<｜end▁of▁sentence｜>");
  const std::string context = decode_trained(r1[1], false);
  EXPECT_NE(context.find(out), std::string::npos);
  EXPECT_NE(context.find("## Tools"), std::string::npos);
  EXPECT_EQ(context.find("Big numbers"), std::string::npos);
  for (const auto& s : r1) EXPECT_EQ(decode_trained(s, true).find("80779853376\",\"decimal"), std::string::npos);

  // Errors name the line and the field.
  json bad = conv;
  bad["messages"][2]["tool_calls"][0]["function"]["name"] = "shell";
  EXPECT_THROW(parse_conversation(bad, "f.jsonl:2"), Error);
  bad = conv;
  bad["messages"][1]["reasoning_content"] = "x";
  EXPECT_THROW(parse_conversation(bad, "f.jsonl:2"), Error);
  bad = conv;
  bad["tools"][0]["function"]["name"] = "bad name!";
  try {
    parse_conversation(bad, "f.jsonl:2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.jsonl:2: tools[0].function.name"), std::string::npos) << e.what();
  }
  // Tool calls need a DeepSeek template.
  EXPECT_THROW(tokenize_conversation(tokenizer(), ChatFormat::Qwen2, parse_conversation(conv, "t")), Error);
}

TEST(RlAgentSft, GeneratedTracesRenderAsServed) {
  std::set<std::string> kinds;
  for (int64_t i = 0; i < 40; ++i) {
    const json c = traces().conversation(Split::Train, i);
    kinds.insert(c["kind"].get<std::string>());
    for (ChatFormat f : {ChatFormat::DeepSeekR1, ChatFormat::DeepSeekV3}) expect_renders_as_served(c, f);
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"calculator", "plain", "retrieval", "unanswerable"}));
}

TEST(RlAgentTraces, DeterministicSplitDisjointAndRealToolOutputs) {
  AgentTraceOptions o;
  o.facts.data = kFacts;
  AgentTraces again(o, 7), other(o, 8);
  int differ = 0;
  std::set<std::string> train_q, test_q;
  for (int64_t i = 0; i < 60; ++i) {
    const json a = traces().conversation(Split::Train, i);
    EXPECT_EQ(a, again.conversation(Split::Train, i));
    differ += a != other.conversation(Split::Train, i);
    train_q.insert(a["messages"][0]["content"].get<std::string>());
    test_q.insert(traces().conversation(Split::Test, i)["messages"][0]["content"].get<std::string>());
    const json& msgs = a["messages"];
    const std::string kind = a["kind"];
    if (kind == "calculator") {
      // The tool message is the real calculator's output for the call, and the answer carries its value.
      const json args = json::parse(msgs[1]["tool_calls"][0]["function"]["arguments"].get<std::string>());
      const std::string e = args["expression"];
      const size_t p = e.find_first_of("*+-");
      const __int128 x = std::stoll(e.substr(0, p)), y = std::stoll(e.substr(p + 1));
      const __int128 v = e[p] == '*' ? x * y : e[p] == '+' ? x + y : x - y;
      const json out = json::parse(msgs[2]["content"].get<std::string>());
      EXPECT_EQ(out["result"].get<std::string>(), std::to_string(int64_t(v)));
      EXPECT_NE(msgs[3]["content"].get<std::string>().find(std::to_string(int64_t(v))), std::string::npos);
      EXPECT_EQ(msgs[1]["tool_calls"][0]["function"]["name"], "calculator");
    } else if (kind == "retrieval") {
      // The answer cites [k]: the k-th passage of the real search output is the entry holding the answer.
      const std::string answer = msgs[3]["content"];
      const size_t b = answer.rfind('[');
      ASSERT_NE(b, std::string::npos);
      const int k = std::stoi(answer.substr(b + 1));
      const json out = json::parse(msgs[2]["content"].get<std::string>());
      ASSERT_LE(size_t(k), out["passages"].size());
      const std::string passage = out["passages"][size_t(k - 1)]["text"];
      const size_t q1 = answer.rfind("\"", b), q0 = q1 == std::string::npos ? q1 : answer.rfind("\"", q1 - 1);
      if (q0 != std::string::npos && q1 != std::string::npos &&
          (answer.find("synonym") != std::string::npos || answer.find("plural") != std::string::npos)) {
        // synonyms and plurals are copied verbatim from the cited passage (and quoted in the reasoning)
        EXPECT_NE(msgs[3]["reasoning_content"].get<std::string>().find(answer.substr(q0 + 1, q1 - q0 - 1)), std::string::npos);
        EXPECT_NE(passage.find(answer.substr(q0 + 1, q1 - q0 - 1)), std::string::npos) << answer << " / " << passage;
      }
      EXPECT_EQ(msgs[1]["tool_calls"][0]["function"]["name"], "search_documents");
    } else if (kind == "unanswerable") {
      EXPECT_NE(msgs[3]["content"].get<std::string>().find("don't know"), std::string::npos);
    } else {
      EXPECT_EQ(msgs.size(), 2u);
    }
  }
  EXPECT_GT(differ, 30);
  for (const auto& q : test_q)
    if (q.find("×") != std::string::npos || q.find("plural") != std::string::npos || q.find("acronym") != std::string::npos) {
      EXPECT_FALSE(train_q.count(q)) << q;
    }
}

TEST(RlAgentTraces, TasksCliWritesSftReadyConversations) {
  const std::string out = (std::filesystem::temp_directory_path() / ("baleine_agent_traces_" + std::to_string(::getpid()))).string();
  const std::string cmd = std::string(BALEINE_BINARY) + " tasks --suite agent --facts " + kFacts + " --count 30 --seed 7 --as chat --out ";
  ASSERT_EQ(std::system((cmd + out + "a.jsonl > /dev/null").c_str()), 0);
  ASSERT_EQ(std::system((cmd + out + "b.jsonl > /dev/null").c_str()), 0);
  std::ifstream a(out + "a.jsonl"), b(out + "b.jsonl");
  std::string la, lb;
  int64_t n = 0;
  while (std::getline(a, la)) {
    ASSERT_TRUE(std::getline(b, lb));
    EXPECT_EQ(la, lb);  // deterministic
    const json j = json::parse(la);
    EXPECT_EQ(j, traces().conversation(Split::Train, n));  // the library's conversation n (same seed, data)
    EXPECT_FALSE(tokenize_conversation(tokenizer(), ChatFormat::DeepSeekR1, parse_conversation(j, "cli")).empty());
    ++n;
  }
  EXPECT_EQ(n, 30);
  EXPECT_NE(std::system((cmd + out + "c.jsonl --as text > /dev/null 2>&1").c_str()), 0);  // chat only
  std::filesystem::remove(out + "a.jsonl");
  std::filesystem::remove(out + "b.jsonl");
}
