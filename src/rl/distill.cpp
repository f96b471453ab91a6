#include "rl/distill.h"

#include <algorithm>

#include "core/check.h"

namespace baleine::rl {

namespace {

SamplingParams sample_params(const RejectionConfig& cfg, int64_t problem, int64_t s) {
  SamplingParams sp = cfg.sampling;
  sp.seed = cfg.sampling.seed ^ (uint64_t(problem) * 0x9e3779b97f4a7c15ull + uint64_t(s) * 0x632be59bd9b4e019ull + 3);
  return sp;
}

// The rejection loop over problems; `completion(i, s)` is the teacher's sample s of problem i.
template <class Completion>
RejectionStats reject(Completion&& completion, const TaskSuite& suite, const RejectionConfig& cfg, std::string& out) {
  RejectionStats st;
  const AnswerFormat af = answer_format_of(cfg.format);
  for (int64_t i = cfg.offset; i < cfg.offset + cfg.problems; ++i) {
    Problem p = suite.problem(cfg.split, i);
    int64_t kept = 0;
    for (int64_t s = 0; s < cfg.k && kept < cfg.keep_per_problem; ++s) {
      const std::string text = "<think>" + completion(i, s);
      ++st.samples;
      Scored sc = score_response(suite, p, text, af);
      if (!sc.grade.correct) continue;  // rejection: only graded-correct samples are kept
      ++st.correct;
      const size_t close = text.find("</think>");
      std::string reasoning = text.substr(7, close == std::string::npos ? std::string::npos : close - 7);
      while (!reasoning.empty() && (reasoning.front() == '\n' || reasoning.front() == ' ')) reasoning.erase(0, 1);
      nlohmann::json msgs = nlohmann::json::array();
      msgs.push_back({{"role", "user"}, {"content", chat_user_message(p)}});
      msgs.push_back({{"role", "assistant"},
                      {"content", "<think>\n" + reasoning + "</think>\n<answer>" + sc.grade.answer + "</answer>"}});
      out += json_line(nlohmann::json{{"messages", msgs}});
      ++kept;
    }
    ++st.problems;
    st.kept += kept;
    st.problems_with_one += kept > 0;
  }
  return st;
}

}  // namespace

RejectionStats rejection_sample(const CompleteFn& teacher, const TaskSuite& suite, const RejectionConfig& cfg,
                                std::string& out) {
  // One at a time: a problem's samples stop at its last kept one (no request is wasted on an endpoint).
  auto completion = [&](int64_t i, int64_t s) {
    return teacher(render_prompt(suite.problem(cfg.split, i), cfg.format), sample_params(cfg, i, s)).first;
  };
  return reject(completion, suite, cfg, out);
}

RejectionStats rejection_sample(const BatchCompleteFn& teacher, const TaskSuite& suite, const RejectionConfig& cfg,
                                std::string& out) {
  BALEINE_CHECK(cfg.k >= 1, "rejection sampling needs k >= 1, got {}", cfg.k);
  const int64_t per_call = std::max<int64_t>(1, kEvalBatchSamples / cfg.k);
  std::vector<std::pair<std::string, int64_t>> completions;
  int64_t loaded = -1;  // first problem of the chunk in `completions`
  auto completion = [&](int64_t i, int64_t s) {
    const int64_t first = cfg.offset + (i - cfg.offset) / per_call * per_call;
    if (first != loaded) {  // all k samples of the chunk's problems in one call
      std::vector<CompletionRequest> reqs;
      for (int64_t j = first; j < std::min(cfg.offset + cfg.problems, first + per_call); ++j) {
        const std::string prompt = render_prompt(suite.problem(cfg.split, j), cfg.format);
        for (int64_t k = 0; k < cfg.k; ++k) reqs.push_back({prompt, sample_params(cfg, j, k)});
      }
      completions = teacher(reqs);
      BALEINE_CHECK(completions.size() == reqs.size(), "distill: {} completions for {} requests", completions.size(), reqs.size());
      loaded = first;
    }
    return completions[size_t((i - first) * cfg.k + s)].first;
  };
  return reject(completion, suite, cfg, out);
}

}  // namespace baleine::rl
