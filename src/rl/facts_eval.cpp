#include "rl/facts_eval.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "core/check.h"

namespace baleine::rl {

using nlohmann::json;

const char* grounding_mode_name(GroundingMode m) {
  switch (m) {
    case GroundingMode::Off: return "off";
    case GroundingMode::Agent: return "agent";
    case GroundingMode::Inject: return "inject";
  }
  return "?";
}

GroundingMode grounding_mode_from_name(const std::string& n) {
  if (n == "off") return GroundingMode::Off;
  if (n == "agent") return GroundingMode::Agent;
  if (n == "inject") return GroundingMode::Inject;
  BALEINE_FAIL("unknown retrieval mode '{}' (off, agent, inject)", n);
}

FactsOutcomes evaluate_facts(Engine& engine, std::shared_ptr<const agent::VocabIndex> vocab, const FactSet& facts,
                             GroundingMode mode, const FactsEvalConfig& cfg, std::vector<FactSample>* details) {
  BALEINE_CHECK(cfg.problems >= 1, "facts eval needs problems >= 1");
  BALEINE_CHECK(cfg.concurrency >= 1 && cfg.concurrency <= 64, "facts eval: concurrency must be 1..64");
  const Tokenizer& tok = engine.tokenizer();
  if (mode != GroundingMode::Off)
    BALEINE_CHECK(tok.token_id("<｜tool▁calls▁begin｜>").has_value() && tok.token_id("<｜tool▁outputs▁begin｜>").has_value(),
                  "facts eval with retrieval: the model's tokenizer has no DeepSeek tool-call markers");
  agent::ToolRegistry none, search;
  search.add(agent::retrieval_tool(mode == GroundingMode::Off ? nullptr : facts.document_store(), cfg.top_k));
  const agent::ToolRegistry& registry = mode == GroundingMode::Off ? none : search;
  agent::AgentOptions ao;
  ao.format = cfg.format;
  ao.params.max_tokens = cfg.max_new_tokens;
  ao.params.sampling = cfg.sampling;
  ao.max_steps = mode == GroundingMode::Off ? 1 : cfg.max_steps;
  for (const char* t : {"<｜User｜>", "<|im_end|>", "<|eot_id|>"})  // as the server stops
    if (auto id = tok.token_id(t)) ao.params.stop_tokens.push_back(*id);

  std::vector<FactSample> samples(size_t(cfg.problems));
  std::atomic<int64_t> next{0};
  std::mutex error_mu;
  std::string error;
  auto worker = [&] {
    agent::AgentLoop loop(engine, vocab, registry, ao);
    for (int64_t i; (i = next.fetch_add(1)) < cfg.problems;) {
      FactSample& s = samples[size_t(i)];
      s.fact = &facts.fact(cfg.split, i);
      std::vector<ChatMessage> conv(1);
      conv[0].role = "user";
      conv[0].content = s.fact->question;
      if (mode == GroundingMode::Inject) {
        ToolCall call;
        call.id = "call_0";
        call.name = "search_documents";
        call.arguments = json{{"query", s.fact->subject}}.dump();
        agent::AssistantTurn t;
        t.tool_calls = {call};
        conv.push_back(agent::agent_history_message(t));
        conv.push_back(agent::agent_tool_message(search.find("search_documents")->run(json{{"query", s.fact->subject}}),
                                                 ao.max_result_bytes));
      }
      try {
        agent::AgentResult r = loop.run(conv, [&](const agent::AgentEvent& e) {
          if (e.kind == agent::AgentEventKind::ToolResult) s.searched = true;
        });
        s.searched = s.searched || mode == GroundingMode::Inject;
        s.reasoning = r.reasoning;
        s.content = r.content;
        s.steps = r.steps;
        s.tokens = r.usage.completion_tokens;
        s.outcome = grade_fact(*s.fact, r.content);
      } catch (const std::exception& e) {
        std::lock_guard lock(error_mu);
        if (error.empty()) error = e.what();
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.concurrency; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  BALEINE_CHECK(error.empty(), "facts eval: {}", error);

  FactsOutcomes o;
  o.mode = mode;
  o.problems = cfg.problems;
  for (const auto& s : samples) {
    const int k = s.outcome == FactOutcome::Correct ? 0 : s.outcome == FactOutcome::Incorrect ? 1 : 2;
    (k == 0 ? o.correct : k == 1 ? o.incorrect : o.not_attempted) += 1;
    o.by_family[s.fact->family][size_t(k)] += 1;
    o.searched += s.searched;
    o.mean_tokens += double(s.tokens);
  }
  o.mean_tokens /= double(o.problems);
  if (details) *details = std::move(samples);
  return o;
}

json facts_outcomes_json(const FactsOutcomes& o) {
  const double n = double(std::max<int64_t>(o.problems, 1));
  json fam = json::object();
  for (const auto& [f, c] : o.by_family) fam[f] = {{"correct", c[0]}, {"incorrect", c[1]}, {"not_attempted", c[2]}};
  return {{"mode", grounding_mode_name(o.mode)}, {"problems", o.problems}, {"correct", o.correct}, {"incorrect", o.incorrect},
          {"not_attempted", o.not_attempted}, {"correct_rate", double(o.correct) / n}, {"incorrect_rate", double(o.incorrect) / n},
          {"not_attempted_rate", double(o.not_attempted) / n}, {"searched", o.searched}, {"mean_tokens", o.mean_tokens},
          {"by_family", fam}};
}

json grounding_report_json(const FactsOutcomes& off, const FactsOutcomes& on) {
  const double a = double(off.incorrect) / double(std::max<int64_t>(off.problems, 1));
  const double b = double(on.incorrect) / double(std::max<int64_t>(on.problems, 1));
  return {{"off", facts_outcomes_json(off)}, {"on", facts_outcomes_json(on)}, {"incorrect_rate_ratio", off.incorrect > 0 ? json(b / a) : json()}};
}

}  // namespace baleine::rl
