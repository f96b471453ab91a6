#include "rl/eval.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/check.h"
#include "infer/batch_generate.h"

namespace baleine::rl {

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  BALEINE_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1 && k <= n, "pass@k needs 1 <= k <= n and 0 <= c <= n (n {}, c {}, k {})",
                n, c, k);
  if (n - c < k) return 1.0;
  double fail = 1.0;  // Π_{i=n−c+1}^{n} (1 − k/i), numerically stable
  for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - double(k) / double(i);
  return 1.0 - fail;
}

CompleteFn local_completer(CausalLM& model, const Tokenizer& tok, int64_t max_new_tokens) {
  return [&model, &tok, max_new_tokens](const std::string& prompt, const SamplingParams& sp) {
    Generation g = generate(model, tok.encode(prompt), max_new_tokens, sp, tok.eos_id());
    std::vector<int32_t> body = g.tokens;
    if (g.finished && !body.empty()) body.pop_back();  // the end-of-sequence token is not text
    // Special tokens stay: <think> and </think> are special tokens in baleine's tokenizers and the grader needs them.
    return std::make_pair(tok.decode(body, /*skip_special=*/false), int64_t(g.tokens.size()));
  };
}

BatchCompleteFn one_at_a_time(CompleteFn one) {
  return [one = std::move(one)](const std::vector<CompletionRequest>& reqs) {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const CompletionRequest& r : reqs) out.push_back(one(r.prompt, r.sampling));
    return out;
  };
}

BatchCompleteFn local_batch_completer(CausalLM& model, const Tokenizer& tok, int64_t max_new_tokens) {
  return [&model, &tok, max_new_tokens](const std::vector<CompletionRequest>& reqs) {
    std::vector<BatchRequest> batch;
    for (const CompletionRequest& r : reqs) batch.push_back({tok.encode(r.prompt), r.sampling, max_new_tokens});
    BatchGenerateOptions o;
    if (tok.eos_id() >= 0) o.stop_tokens = {tok.eos_id()};
    const std::vector<BatchOutput> gens = generate_batch(model, batch, o);
    std::vector<std::pair<std::string, int64_t>> out;
    for (const BatchOutput& g : gens) {
      std::vector<int32_t> body = g.tokens;
      if (g.finished && !body.empty()) body.pop_back();  // the end-of-sequence token is not text
      out.emplace_back(tok.decode(body, /*skip_special=*/false), int64_t(g.tokens.size()));
    }
    return out;
  };
}

SuiteReport evaluate_suite(const CompleteFn& complete, const TaskSuite& suite, const EvalConfig& cfg,
                           std::vector<ProblemResult>* details) {
  return evaluate_suite(one_at_a_time(complete), suite, cfg, details);
}

SuiteReport evaluate_suite(const BatchCompleteFn& complete, const TaskSuite& suite, const EvalConfig& cfg,
                           std::vector<ProblemResult>* details) {
  BALEINE_CHECK(cfg.problems >= 1 && cfg.k >= 1, "eval needs problems >= 1 and k >= 1");
  SuiteReport r;
  r.suite = suite.name();
  r.problems = cfg.problems;
  r.k = cfg.k;
  const AnswerFormat af = answer_format_of(cfg.format);
  const int64_t total = cfg.problems * cfg.k;
  // Problems in chunks of about kEvalBatchSamples samples, each chunk one call of `complete`.
  const int64_t per_call = std::max<int64_t>(1, kEvalBatchSamples / cfg.k);
  std::vector<std::pair<std::string, int64_t>> completions;
  for (int64_t i = 0; i < cfg.problems; ++i) {
    if (i % per_call == 0) {
      std::vector<CompletionRequest> reqs;
      for (int64_t j = i; j < std::min(cfg.problems, i + per_call); ++j) {
        const std::string prompt = render_prompt(suite.problem(cfg.split, j), cfg.format);
        for (int64_t s = 0; s < cfg.k; ++s) {
          SamplingParams sp = cfg.sampling;
          sp.seed = cfg.sampling.seed ^ (uint64_t(j) * 0x9e3779b97f4a7c15ull + uint64_t(s) * 0x632be59bd9b4e019ull + 1);
          reqs.push_back({prompt, sp});
        }
      }
      completions = complete(reqs);
      BALEINE_CHECK(completions.size() == reqs.size(), "eval: {} completions for {} requests", completions.size(), reqs.size());
    }
    ProblemResult pr;
    pr.problem = suite.problem(cfg.split, i);
    int64_t correct = 0;
    std::map<std::string, std::pair<int64_t, bool>> votes;  // answer -> (count, correct)
    for (int64_t s = 0; s < cfg.k; ++s) {
      auto [text, ntok] = completions[size_t((i % per_call) * cfg.k + s)];
      SampleResult sr;
      sr.completion = text;
      sr.tokens = ntok;
      sr.score = score_response(suite, pr.problem, "<think>" + text, af, cfg.reward);
      correct += sr.score.grade.correct;
      r.format_rate += sr.score.formatted;
      r.mean_reward += sr.score.reward;
      r.mean_tokens += double(ntok);
      if (!sr.score.grade.attempted) r.not_attempted += 1;
      else if (sr.score.grade.correct) r.correct += 1;
      else r.incorrect += 1;
      if (sr.score.grade.attempted) {
        std::string key = sr.score.grade.answer;
        key.erase(std::remove_if(key.begin(), key.end(), [](unsigned char c) { return std::isspace(c); }), key.end());
        auto& v = votes[key];
        v.first += 1;
        v.second = sr.score.grade.correct;
      }
      pr.samples.push_back(std::move(sr));
    }
    r.pass1 += double(correct) / double(cfg.k);
    r.passk += pass_at_k(cfg.k, correct, cfg.k);
    // Majority vote; ties go to the answer seen first in sorted order (deterministic).
    int64_t best = 0;
    bool best_correct = false;
    for (const auto& [ans, v] : votes)
      if (v.first > best) best = v.first, best_correct = v.second;
    r.majk += best_correct ? 1.0 : 0.0;
    if (details) details->push_back(std::move(pr));
  }
  r.pass1 /= double(cfg.problems);
  r.passk /= double(cfg.problems);
  r.majk /= double(cfg.problems);
  for (double* x : {&r.format_rate, &r.mean_reward, &r.mean_tokens, &r.correct, &r.incorrect, &r.not_attempted})
    *x /= double(total);
  return r;
}

nlohmann::json report_json(const SuiteReport& r) {
  return {{"suite", r.suite},       {"problems", r.problems},       {"k", r.k},
          {"pass@1", r.pass1},      {"pass@k", r.passk},            {"maj@k", r.majk},
          {"format_rate", r.format_rate}, {"mean_reward", r.mean_reward}, {"mean_tokens", r.mean_tokens},
          {"correct", r.correct},   {"incorrect", r.incorrect},     {"not_attempted", r.not_attempted}};
}

}  // namespace baleine::rl
