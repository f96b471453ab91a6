// rl/agent_traces.h — synthetic tool-use conversations for `baleine sft` (OpenAI chat shape with "tools"): the
// assistant reasons briefly, calls a built-in tool of the server (calculator, search_documents) with the exact
// name and arguments schema the server registers, reads the tool's real output (the real calculator, the real
// retrieval over a document store of the dictionary entries) and answers — citing passages as [n], the 1-based
// rank in the tool's "passages" — or says it does not know when the passages lack the answer; plus plain turns
// that need no tool.
// defines: AgentTraceOptions, agent_trace_options_from_spec, AgentTraces
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "rl/facts.h"
#include "rl/tasks.h"

namespace baleine::rl {

struct AgentTraceOptions {
  // Shares of the kinds (normalised): calculator, retrieval (answer found), unanswerable (not in the passages),
  // plain (no tool needed).
  double calculator = 0.4, retrieval = 0.35, unanswerable = 0.1, plain = 0.15;
  int64_t min_digits = 4, max_digits = 7;
  int top_k = 3;           // passages the retrieval tool returns (the server's default)
  FactOptions facts;       // the dictionary questions of the retrieval traces (no data: calculator and plain only)
};
// {"name": "agent", "facts": DIR, "calculator": .4, "retrieval": .35, "unanswerable": .1, "plain": .15,
//  "min_digits": 4, "max_digits": 7, "top_k": 3, "families": "...", "max_per_family": N}
AgentTraceOptions agent_trace_options_from_spec(const nlohmann::json& spec, const std::string& where);

class AgentTraces {
 public:
  AgentTraces(AgentTraceOptions options, uint64_t seed);
  ~AgentTraces();
  // Conversation `index` of `split` ({"messages": [...], "tools": [...], "kind": ...}): a pure function of
  // (seed, split, index). Calculator problems and dictionary questions are split by a hash of their key, so
  // train and test share none.
  nlohmann::json conversation(Split split, int64_t index) const;

 private:
  nlohmann::json calculator(Split split, uint64_t stream) const;
  nlohmann::json retrieval(Split split, uint64_t stream, bool answerable) const;
  nlohmann::json plain(uint64_t stream) const;
  AgentTraceOptions options_;
  uint64_t seed_;
  std::unique_ptr<FactSet> facts_;
};

}  // namespace baleine::rl
