#include "rl/distill.h"

#include "core/check.h"

namespace baleine::rl {

RejectionStats rejection_sample(const CompleteFn& teacher, const TaskSuite& suite, const RejectionConfig& cfg,
                                std::string& out) {
  RejectionStats st;
  const AnswerFormat af = answer_format_of(cfg.format);
  for (int64_t i = cfg.offset; i < cfg.offset + cfg.problems; ++i) {
    Problem p = suite.problem(cfg.split, i);
    const std::string prompt = render_prompt(p, cfg.format);
    int64_t kept = 0;
    for (int64_t s = 0; s < cfg.k && kept < cfg.keep_per_problem; ++s) {
      SamplingParams sp = cfg.sampling;
      sp.seed = cfg.sampling.seed ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull + uint64_t(s) * 0x632be59bd9b4e019ull + 3);
      const std::string text = "<think>" + teacher(prompt, sp).first;
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

}  // namespace baleine::rl
