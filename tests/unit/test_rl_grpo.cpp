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
#include "rl/objectives.h"

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
  cfg.averaging = loss_averaging_from_name(c["averaging"].get<std::string>());
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

// Dr. GRPO's constant normaliser is the token-level sum (checked against PyTorch above) with another divisor:
// loss_constant · (sequences × C) = loss_token · completion_tokens, and the gradients scale alike.
TEST(RlGrpo, ConstantAveragingIsTheTokenSumOverSequencesTimesBudget) {
  auto fx = fixture();
  auto batch = batch_of(fx);
  auto model = load_model(kDir + "/" + fx["model"].get<std::string>());
  GrpoLossConfig tok;
  tok.eps_high = 0.28, tok.beta = 0.04;
  GrpoLossConfig cst = tok;
  cst.averaging = LossAveraging::Constant;
  cst.constant_tokens = 37;
  nn::Gradients gt, gc;
  gt.allocate(*model), gc.allocate(*model);
  auto a = grpo_loss_and_grad(*model, batch, tok, &gt);
  auto b = grpo_loss_and_grad(*model, batch, cst, &gc);
  const double n = double(batch.size()) * 37.0, tokens = double(a.tokens);
  ASSERT_GT(std::fabs(a.loss), 1e-6);
  EXPECT_NEAR(b.loss * n, a.loss * tokens, 1e-9 * std::fabs(a.loss * tokens));
  EXPECT_NEAR(b.kl, a.kl, 1e-12);  // the statistics stay per token
  int compared = 0;
  for (const auto& [name, slot] : gt.names()) {
    const Tensor& x = gt.tensor_of(slot);
    const Tensor& y = gc.tensor_of(slot);
    std::vector<float> scaled(size_t(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) scaled[size_t(i)] = float(double(y.f32()[i]) * n / tokens);
    EXPECT_LE(max_rel(scaled.data(), x.f32(), x.numel()), 1e-4) << name;
    ++compared;
  }
  EXPECT_GE(compared, 4);
  cst.constant_tokens = 0;
  EXPECT_THROW(grpo_loss_and_grad(*model, batch, cst, nullptr), Error);
}

// DAPO's clip-higher: a ratio of 1.25 on a positive advantage is clipped (no gradient) at ε_high 0.2, and still
// learns at 0.28; the low side is unchanged (0.75 on a negative advantage is clipped at ε_low 0.2).
TEST(RlGrpo, ClipHigherWidensOnlyTheUpperSide) {
  const double lp = std::log(1.25);
  auto sym = grpo_token_loss(lp, 0.0, 0.0, 2.0, 0.2, 0.2, 0.0);
  EXPECT_TRUE(sym.clipped);
  EXPECT_EQ(sym.dlogp, 0.0);
  EXPECT_NEAR(sym.loss, -1.2 * 2.0, 1e-12);
  auto high = grpo_token_loss(lp, 0.0, 0.0, 2.0, 0.2, 0.28, 0.0);
  EXPECT_FALSE(high.clipped);
  EXPECT_NEAR(high.dlogp, -1.25 * 2.0, 1e-12);  // d(−ρA)/dlogp = −ρA
  EXPECT_NEAR(high.loss, -1.25 * 2.0, 1e-12);
  auto low = grpo_token_loss(std::log(0.75), 0.0, 0.0, -1.0, 0.2, 0.28, 0.0);
  EXPECT_TRUE(low.clipped);
  EXPECT_NEAR(low.loss, 0.8, 1e-12);
  // On the side the clip does not bind, the unclipped term is the minimum and keeps its gradient.
  auto keep = grpo_token_loss(std::log(0.75), 0.0, 0.0, 1.0, 0.2, 0.28, 0.0);
  EXPECT_FALSE(keep.clipped);
  EXPECT_NEAR(keep.dlogp, -0.75, 1e-12);
}

TEST(RlGrpo, OverlongRewardIsDaposSoftPunishment) {
  // Budget 100, buffer 20: free up to 80, then linear to −penalty at 100 (a truncated completion counts 100).
  EXPECT_EQ(overlong_reward(10, 100, 20, 1.0), 0.0);
  EXPECT_EQ(overlong_reward(80, 100, 20, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(overlong_reward(81, 100, 20, 1.0), -0.05);
  EXPECT_DOUBLE_EQ(overlong_reward(90, 100, 20, 0.5), -0.25);
  EXPECT_DOUBLE_EQ(overlong_reward(100, 100, 20, 1.0), -1.0);
  EXPECT_DOUBLE_EQ(overlong_reward(130, 100, 20, 1.0), -1.0);
  EXPECT_EQ(overlong_reward(100, 100, 0, 1.0), 0.0);  // off
  EXPECT_THROW(overlong_reward(5, 10, 11, 1.0), Error);
}

TEST(RlGrpo, DynamicSamplingKeepsGroupsWhoseRewardsVary) {
  EXPECT_FALSE(group_is_informative({1, 1, 1, 1}));
  EXPECT_FALSE(group_is_informative({0, 0}));
  EXPECT_TRUE(group_is_informative({0, 0, 1, 0}));
  EXPECT_TRUE(group_is_informative({0.1, 0.1, 0.1, 0.0}));
  EXPECT_FALSE(group_is_informative({}));
  EXPECT_EQ(loss_averaging_from_name("constant"), LossAveraging::Constant);
  EXPECT_THROW(loss_averaging_from_name("per-token"), Error);
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
