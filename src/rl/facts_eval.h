// rl/facts_eval.h — grounding evaluation on the dictionary questions (rl/facts.h): each question answered with
// retrieval off (the plain question) and on (the agent loop of `baleine serve` with the built-in
// search_documents tool over the dictionary entries — the model decides to call it — or the call injected as the
// first turn, as in the SFT traces), graded three ways (correct / incorrect / not attempted).
// defines: GroundingMode, grounding_mode_name, FactsEvalConfig, FactSample, FactsOutcomes, evaluate_facts,
//          facts_outcomes_json, LocalAgentModel
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/constraint.h"
#include "infer/engine.h"
#include "rl/facts.h"
#include "tokenizer/chat_template.h"

namespace baleine::rl {

// Off: no tools, the plain question. Agent: the search_documents tool offered, tool_choice auto. Inject: the
// assistant's first turn is the search call with the question's key word (as the traces make it) and the tool
// turn holds the real search output; the model writes the answer. Rag: the same, but the search runs on the
// user's question verbatim, as a retrieval-augmented pipeline does (Inject's key word comes from the fact, an oracle).
enum class GroundingMode { Off, Agent, Inject, Rag };
const char* grounding_mode_name(GroundingMode m);          // "off", "agent", "inject", "rag"
GroundingMode grounding_mode_from_name(const std::string& n);

struct FactsEvalConfig {
  Split split = Split::Test;
  int64_t problems = 100;
  int64_t max_new_tokens = 96;  // per model turn
  SamplingParams sampling;      // temperature 0: greedy
  ChatFormat format = ChatFormat::DeepSeekR1;
  int top_k = 3;                // passages per search (the server's default)
  int max_steps = 3;            // model turns per question at most (the last one answers without tools)
  int concurrency = 4;          // questions in flight (the engine batches them)
  bool grounded_quotes = false; // the agent loop's grounded quotes (agent/grounding.h) once passages are in context
  bool quote_search = false;    // and each grounded quote chosen whole (agent/quote_search.h)
};

struct FactSample {
  const Fact* fact = nullptr;
  std::string reasoning, content;
  FactOutcome outcome = FactOutcome::NotAttempted;
  bool searched = false;  // the search tool ran (called by the model, or injected)
  std::string query;      // the query the last search ran, and which passage the answer's entry was (0: none)
  int answer_rank = 0;
  int steps = 0;
  int64_t tokens = 0;
  int quote_searches = 0, quote_expansions = 0;  // quote_search: quotes searched, model calls they took
};

struct FactsOutcomes {
  GroundingMode mode = GroundingMode::Off;
  int64_t problems = 0, correct = 0, incorrect = 0, not_attempted = 0, searched = 0;
  double mean_tokens = 0;
  std::map<std::string, std::array<int64_t, 3>> by_family;  // family -> (correct, incorrect, not attempted)
};

// Runs `cfg.problems` questions of `cfg.split` through the engine. The engine's tokenizer must have the DeepSeek
// tool-call markers for modes other than Off.
FactsOutcomes evaluate_facts(Engine& engine, std::shared_ptr<const agent::VocabIndex> vocab, const FactSet& facts,
                             GroundingMode mode, const FactsEvalConfig& cfg, std::vector<FactSample>* details = nullptr);
// The same on an OpenAI-compatible `baleine serve` endpoint: Off POSTs {base}/chat/completions with the question;
// Agent creates an assistant with the file_search tool, uploads the dictionary entries as its documents, asks
// each question through {base}/responses (the server's own agent loop and retrieval) and deletes the assistant.
// Inject is not offered (the server runs its own loop).
struct EndpointConfig;
FactsOutcomes evaluate_facts_endpoint(const EndpointConfig& endpoint, const FactSet& facts, GroundingMode mode,
                                      const FactsEvalConfig& cfg, std::vector<FactSample>* details = nullptr);
// {"mode", "problems", "correct", "incorrect", "not_attempted", "correct_rate", ..., "searched", "by_family"}
nlohmann::json facts_outcomes_json(const FactsOutcomes& o);
// {"off": ..., "on": ..., "incorrect_rate_ratio": on/off (null when off has no incorrect answers)}
nlohmann::json grounding_report_json(const FactsOutcomes& off, const FactsOutcomes& on);

}  // namespace baleine::rl
