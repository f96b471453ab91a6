// rl/eval.h — `baleine eval` and GRPO's held-out evaluation: k samples per problem, pass@1 (mean over the k),
// pass@k (unbiased estimator of Chen et al. 2021), maj@k (majority vote over extracted answers), format rate,
// three-way outcome (correct / incorrect / not attempted), response length.
// defines: pass_at_k, EvalConfig, SampleResult, ProblemResult, SuiteReport, CompleteFn, CompletionRequest,
//          BatchCompleteFn, one_at_a_time, local_completer, local_batch_completer, evaluate_suite, report_json
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rl/common.h"
#include "rl/tasks.h"

namespace baleine::rl {

// 1 − C(n−c, k)/C(n, k): the chance that at least one of k samples drawn from n (c correct) is correct.
double pass_at_k(int64_t n, int64_t c, int64_t k);

struct EvalConfig {
  Split split = Split::Test;
  int64_t problems = 64, k = 1;
  int64_t max_new_tokens = 96;
  SamplingParams sampling;  // temperature 0: greedy (then k > 1 gives k identical samples)
  PromptFormat format = PromptFormat::Plain;
  RewardConfig reward;
};

struct SampleResult {
  std::string completion;
  Scored score;
  int64_t tokens = 0;
};
struct ProblemResult {
  Problem problem;
  std::vector<SampleResult> samples;
};
struct SuiteReport {
  std::string suite;
  int64_t problems = 0, k = 0;
  double pass1 = 0, passk = 0, majk = 0;
  double format_rate = 0, mean_reward = 0, mean_tokens = 0;
  double correct = 0, incorrect = 0, not_attempted = 0;  // shares of all samples
};

// A completion function: prompt text -> (completion text, tokens generated). The local model or an endpoint.
using CompleteFn = std::function<std::pair<std::string, int64_t>(const std::string& prompt, const SamplingParams& sp)>;
CompleteFn local_completer(CausalLM& model, const Tokenizer& tok, int64_t max_new_tokens);

// Many completions at once, in request order: the local model decodes them as one batch (infer/batch_generate.h).
struct CompletionRequest {
  std::string prompt;
  SamplingParams sampling;
};
using BatchCompleteFn = std::function<std::vector<std::pair<std::string, int64_t>>(const std::vector<CompletionRequest>&)>;
// A BatchCompleteFn that calls `one` for each request in turn (endpoints).
BatchCompleteFn one_at_a_time(CompleteFn one);
// The local model through generate_batch; the same completions as local_completer up to the batched forward's
// rounding (the rows of a batch are computed together).
BatchCompleteFn local_batch_completer(CausalLM& model, const Tokenizer& tok, int64_t max_new_tokens);

// Requests at most this many completions per call (problems are never split across calls).
inline constexpr int64_t kEvalBatchSamples = 256;
SuiteReport evaluate_suite(const BatchCompleteFn& complete, const TaskSuite& suite, const EvalConfig& cfg,
                           std::vector<ProblemResult>* details = nullptr);
SuiteReport evaluate_suite(const CompleteFn& complete, const TaskSuite& suite, const EvalConfig& cfg,
                           std::vector<ProblemResult>* details = nullptr);
nlohmann::json report_json(const SuiteReport& r);

}  // namespace baleine::rl
