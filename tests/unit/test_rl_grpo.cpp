// GRPO loss and gradient against the PyTorch reference (tests/reference/make_grpo_fixture.py), advantages, and
// the pass@k estimator.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "io/safetensors.h"
#include "models/deepseek.h"
#include "nn/grads.h"
#include "rl/eval.h"
#include "rl/grpo.h"

using namespace baleine;
using namespace baleine::rl;

namespace {
const std::string kDir = std::string(BALEINE_TEST_DATA) + "/grpo";

nlohmann::json fixture() {
  std::ifstream in(kDir + "/fixture.json");
  return nlohmann::json::parse(in);
}

std::vector<GrpoSequence> batch_of(const nlohmann::json& fx) {
  std::vector<GrpoSequence> b;
  for (const auto& s : fx["sequences"]) {
    GrpoSequence g;
    g.tokens = s["tokens"].get<std::vector<int32_t>>();
    g.prompt_len = s["prompt_len"].get<int64_t>();
    g.advantage = s["advantage"].get<double>();
    g.old_logp = s["old_logp"].get<std::vector<double>>();
    g.ref_logp = s["ref_logp"].get<std::vector<double>>();
    b.push_back(std::move(g));
  }
  return b;
}

double max_rel(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) num = std::max(num, std::fabs(double(a[i]) - b[i])), den = std::max(den, std::fabs(double(b[i])));
  return den == 0 ? num : num / den;
}

void check_config(const std::string& name, int64_t pack_tokens) {
  auto fx = fixture();
  const auto& c = fx["configs"][name];
  GrpoLossConfig cfg;
  cfg.eps_low = c["eps_low"].get<double>();
  cfg.eps_high = c["eps_high"].get<double>();
  cfg.beta = c["beta"].get<double>();
  cfg.token_level = c["averaging"].get<std::string>() == "token";
  auto model = load_model(kDir + "/" + fx["model"].get<std::string>());
  auto& ds = dynamic_cast<DeepSeekModel&>(*model);
  nn::Gradients g;
  g.allocate(ds);
  auto st = grpo_loss_and_grad(ds, batch_of(fx), cfg, &g, pack_tokens);
  const double ref = c["loss"].get<double>();
  EXPECT_NEAR(st.loss, ref, 1e-5 * std::fabs(ref)) << name;
  if (cfg.beta != 0) {  // k3 is only computed when it is used
    EXPECT_NEAR(st.kl, c["kl"].get<double>(), 1e-5) << name;
  }
  auto grads = io::SafetensorsReader::open(kDir + "/grads_" + name + ".safetensors");
  int compared = 0;
  for (const auto& [pname, slot] : g.names()) {
    if (!grads.contains(pname) || pname.find("e_score_correction_bias") != std::string::npos) continue;
    Tensor r = grads.tensor_as(pname, DType::F32);
    const Tensor& mine = g.tensor_of(slot);
    ASSERT_EQ(r.numel(), mine.numel()) << pname;
    EXPECT_LE(max_rel(mine.f32(), r.f32(), r.numel()), 1e-3) << name << " gradient of " << pname;
    ++compared;
  }
  EXPECT_GE(compared, 4) << name;
}
}  // namespace

TEST(RlGrpo, AdvantagesMatchTheFixtureFormula) {
  auto fx = fixture();
  for (int grp = 0; grp < 2; ++grp) {
    std::vector<double> r;
    std::vector<double> want;
    for (const auto& s : fx["sequences"])
      if (s["group"] == grp) r.push_back(s["reward"].get<double>()), want.push_back(s["advantage"].get<double>());
    auto a = group_advantages(r, true);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], want[i], 1e-12);
  }
  auto b = group_advantages({1, 1, 1, 1}, true);  // no signal: zero advantages, not NaN
  for (double x : b) EXPECT_EQ(x, 0.0);
  auto c = group_advantages({1, 0}, false);
  EXPECT_DOUBLE_EQ(c[0], 0.5);
  EXPECT_DOUBLE_EQ(c[1], -0.5);
}

// Tolerances: loss 1e-5 relative, every gradient tensor max|a-b|/max|b| <= 1e-3 (float32 vs float64 reference).
TEST(RlGrpo, TokenLevelLossAndGradientMatchPyTorch) { check_config("token", 2048); }
TEST(RlGrpo, TokenLevelUnpackedMatchesToo) { check_config("token", 1); }  // every sequence in its own pass
TEST(RlGrpo, SequenceLevelLossAndGradientMatchPyTorch) { check_config("sequence", 2048); }

TEST(RlGrpo, ZeroAdvantageAndZeroBetaGiveZeroGradient) {
  auto fx = fixture();
  auto batch = batch_of(fx);
  for (auto& s : batch) s.advantage = 0;
  auto model = load_model(kDir + "/" + fx["model"].get<std::string>());
  auto& ds = dynamic_cast<DeepSeekModel&>(*model);
  nn::Gradients g;
  g.allocate(ds);
  GrpoLossConfig cfg;
  auto st = grpo_loss_and_grad(ds, batch, cfg, &g);
  EXPECT_EQ(st.loss, 0.0);
  for (const auto& [name, slot] : g.names()) {
    const Tensor& t = g.tensor_of(slot);
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.f32()[i], 0.0f) << name;
  }
}

TEST(RlEval, PassAtKIsTheUnbiasedEstimator) {
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 10, 5), 1.0);
  EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);
  // 1 - C(7,2)/C(10,2) = 1 - 21/45
  EXPECT_NEAR(pass_at_k(10, 3, 2), 1.0 - 21.0 / 45.0, 1e-12);
  EXPECT_DOUBLE_EQ(pass_at_k(4, 2, 3), 1.0);  // n - c < k: a correct one is always drawn
  EXPECT_THROW(pass_at_k(3, 1, 4), Error);
}

TEST(RlEval, ReportCountsOutcomesWithAScriptedCompleter) {
  auto suite = make_suite(nlohmann::json("arithmetic"), 11, "test");
  EvalConfig cfg;
  cfg.problems = 5;
  cfg.k = 4;
  cfg.format = PromptFormat::R1Zero;
  // Problem i: samples 0..i-1 correct (capped at k), then one wrong, then not attempted.
  int call = 0;
  std::vector<Problem> ps;
  for (int i = 0; i < 5; ++i) ps.push_back(suite->problem(Split::Test, i));
  CompleteFn fake = [&](const std::string& prompt, const SamplingParams&) {
    const int i = call / 4, s = call % 4;
    ++call;
    EXPECT_NE(prompt.find(ps[size_t(i)].question), std::string::npos);
    if (s < i) return std::make_pair("steps</think><answer>" + ps[size_t(i)].answer + "</answer>", int64_t(5));
    if (s == i) return std::make_pair(std::string("steps</think><answer>-99999</answer>"), int64_t(5));
    return std::make_pair(std::string("steps and no end"), int64_t(9));
  };
  auto r = evaluate_suite(fake, *suite, cfg);
  // correct counts per problem: 0,1,2,3,4 of 4
  EXPECT_NEAR(r.pass1, (0 + 0.25 + 0.5 + 0.75 + 1.0) / 5, 1e-12);
  EXPECT_NEAR(r.passk, 4.0 / 5, 1e-12);
  // maj@4: problem 2 has votes {ans:2, wrong:1} -> correct; problem 1 {ans:1, wrong:1} tie -> first max in map order
  EXPECT_GE(r.majk, 3.0 / 5 - 1e-12);
  EXPECT_NEAR(r.correct, 10.0 / 20, 1e-12);
  EXPECT_NEAR(r.incorrect, 4.0 / 20, 1e-12);
  EXPECT_NEAR(r.not_attempted, 6.0 / 20, 1e-12);
  EXPECT_NEAR(r.format_rate, 14.0 / 20, 1e-12);
}
