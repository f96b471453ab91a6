// Per-token objectives: masking, packing with per-sample attention, agreement with loss_and_grad (itself checked
// against PyTorch), the GRPO token loss and the distillation losses by finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/deepseek.h"
#include "nn/grads.h"
#include "rl/objectives.h"

using namespace baleine;
using namespace baleine::rl;

namespace {
const std::string kModel = std::string(BALEINE_TEST_DATA) + "/parity/v3";

std::unique_ptr<CausalLM> tiny() { return load_model(kModel); }

double max_rel(const nn::Gradients& a, const nn::Gradients& b, std::string* worst = nullptr) {
  double out = 0;
  for (const auto& [name, slot] : a.names()) {
    const Tensor &x = a.tensor_of(slot), &y = b.tensor_of(slot);
    double num = 0, den = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      num = std::max(num, std::fabs(double(x.f32()[i]) - double(y.f32()[i])));
      den = std::max(den, std::fabs(double(y.f32()[i])));
    }
    double r = den == 0 ? num : num / den;
    if (r > out && worst) *worst = name;
    out = std::max(out, r);
  }
  return out;
}

std::vector<int32_t> some_tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % 128);
  return t;
}
}  // namespace

TEST(RlObjectives, UniformWeightsReproduceLossAndGrad) {
  auto m = tiny();
  auto& ds = dynamic_cast<DeepSeekModel&>(*m);
  auto tokens = some_tokens(13, 1);
  nn::Gradients g1, g2;
  g1.allocate(ds), g2.allocate(ds);
  const double ref = ds.loss_and_grad(tokens, &g1, 0.0).main;
  std::vector<float> w(tokens.size(), 1.0f / float(tokens.size() - 1));
  w.back() = 0;  // the last row predicts nothing
  const double got = ds.objective_and_grad(tokens, {}, weighted_nll(w), &g2);
  EXPECT_NEAR(got, ref, 1e-5 * std::fabs(ref));
  std::string worst;
  EXPECT_LE(max_rel(g2, g1, &worst), 1e-4) << worst;
}

TEST(RlObjectives, MaskedTokensContributeExactlyZero) {
  auto m = tiny();
  auto& ds = dynamic_cast<DeepSeekModel&>(*m);
  auto tokens = some_tokens(12, 2);
  std::vector<float> w(tokens.size(), 0.0f);
  for (size_t t = 5; t + 1 < tokens.size(); ++t) w[t] = 0.25f;  // only the "assistant" rows 5..10
  // The objective's upstream gradient is exactly zero on every masked row.
  auto inner = weighted_nll(w);
  auto spy = [&](const ObjectiveInput& in, float* dlogits) {
    double v = inner(in, dlogits);
    for (int64_t t = 0; t < in.T; ++t)
      if (w[size_t(t)] == 0) {
        for (int64_t v2 = 0; v2 < in.V; ++v2) EXPECT_EQ(dlogits[t * in.V + v2], 0.0f) << "row " << t;
      }
    return v;
  };
  nn::Gradients all, sum, one;
  all.allocate(ds), sum.allocate(ds), one.allocate(ds);
  const double loss = ds.objective_and_grad(tokens, {}, spy, &all);
  // And the model gradient is the sum of the unmasked rows' gradients alone.
  double loss_sum = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (w[t] == 0) continue;
    std::vector<float> e(tokens.size(), 0.0f);
    e[t] = w[t];
    loss_sum += ds.objective_and_grad(tokens, {}, weighted_nll(e), &sum);
  }
  EXPECT_NEAR(loss, loss_sum, 1e-6);
  EXPECT_LE(max_rel(all, sum), 1e-5);
  // Changing the weight of a masked row from 0 to 0 * anything keeps the loss bit-identical, while the same
  // change on an unmasked row moves it: masking is not a no-op by construction.
  std::vector<float> w2 = w;
  w2[6] = 0.5f;
  EXPECT_NE(ds.objective_and_grad(tokens, {}, weighted_nll(w2), nullptr), loss);
}

TEST(RlObjectives, PackedSamplesEqualSeparateSamples) {
  auto m = tiny();
  auto& ds = dynamic_cast<DeepSeekModel&>(*m);
  auto a = some_tokens(7, 3), b = some_tokens(9, 4), c = some_tokens(4, 5);
  std::vector<int32_t> packed;
  for (auto* s : {&a, &b, &c}) packed.insert(packed.end(), s->begin(), s->end());
  auto weights = [](size_t n) {
    std::vector<float> w(n, 0.1f);
    w.back() = 0;
    return w;
  };
  nn::Gradients gp, gs;
  gp.allocate(ds), gs.allocate(ds);
  std::vector<float> wp;
  for (auto* s : {&a, &b, &c}) {
    auto w = weights(s->size());
    wp.insert(wp.end(), w.begin(), w.end());
  }
  std::vector<int64_t> lengths = {7, 9, 4};
  std::vector<float> packed_logits;
  auto capture = [&](const ObjectiveInput& in, float* d) {
    packed_logits.assign(in.logits, in.logits + in.T * in.V);
    for (int64_t t = 0; t < in.T; ++t) {  // targets never cross a boundary
      if (t == 6 || t == 15 || t == 19) EXPECT_EQ(in.targets[size_t(t)], -1);
      else EXPECT_EQ(in.targets[size_t(t)], packed[size_t(t + 1)]);
    }
    EXPECT_EQ(in.sample_of[7], 1);
    return weighted_nll(wp)(in, d);
  };
  const double lp = ds.objective_and_grad(packed, lengths, capture, &gp);
  double ls = 0;
  int64_t row = 0;
  for (auto* s : {&a, &b, &c}) {
    auto w = weights(s->size());
    auto check = [&](const ObjectiveInput& in, float* d) {
      for (int64_t i = 0; i < in.T * in.V; ++i)
        EXPECT_NEAR(in.logits[i], packed_logits[size_t(row * in.V + i)], 1e-4);
      return weighted_nll(w)(in, d);
    };
    ls += ds.objective_and_grad(*s, {}, check, &gs);
    row += int64_t(s->size());
  }
  EXPECT_NEAR(lp, ls, 1e-5 * std::fabs(ls));
  std::string worst;
  EXPECT_LE(max_rel(gp, gs, &worst), 1e-4) << worst;
  // Without the sample boundaries, attention crosses them and the result differs.
  EXPECT_GT(std::fabs(ds.objective_and_grad(packed, {}, weighted_nll(wp), nullptr) - lp), 1e-6);
  EXPECT_THROW(ds.objective_and_grad(packed, std::vector<int64_t>{7, 9}, weighted_nll(wp), nullptr), Error);
}

TEST(RlObjectives, GrpoTokenLossGradientMatchesFiniteDifference) {
  const double h = 1e-6;
  for (double A : {-1.3, 0.0, 0.7})
    for (double old : {-2.0, -1.6, -1.1})
      for (double beta : {0.0, 0.04}) {
        const double lp = -1.5, ref = -1.2;
        auto r = grpo_token_loss(lp, old, ref, A, 0.2, 0.28, beta);
        double fd = (grpo_token_loss(lp + h, old, ref, A, 0.2, 0.28, beta).loss -
                     grpo_token_loss(lp - h, old, ref, A, 0.2, 0.28, beta).loss) / (2 * h);
        EXPECT_NEAR(r.dlogp, fd, 1e-6) << "A " << A << " old " << old << " beta " << beta;
      }
  // k3 is zero when the policy equals the reference and positive otherwise.
  EXPECT_DOUBLE_EQ(grpo_token_loss(-1.0, -1.0, -1.0, 0.0, 0.2, 0.2, 1.0).kl, 0.0);
  EXPECT_GT(grpo_token_loss(-1.0, -1.0, -1.5, 0.0, 0.2, 0.2, 1.0).kl, 0.0);
  // ρ = e^{0.5} > 1.28 with A > 0: clipped, no gradient from the surrogate.
  auto c = grpo_token_loss(-1.0, -1.5, -1.0, 1.0, 0.2, 0.28, 0.0);
  EXPECT_TRUE(c.clipped);
  EXPECT_EQ(c.dlogp, 0.0);
  EXPECT_NEAR(c.loss, -1.28, 1e-12);
}

TEST(RlObjectives, DistillationLossGradientsMatchFiniteDifferences) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.5f);
  const int64_t V = 11;
  std::vector<float> s(V), t(V), ds(V);
  for (auto& x : s) x = nd(rng);
  for (auto& x : t) x = nd(rng);
  for (double beta : {0.0, 0.3, 0.5, 1.0})
    for (double tau : {1.0, 2.0}) {
      DistillLoss cfg{beta, tau};
      const double loss = distill_loss_row(s.data(), t.data(), V, cfg, ds.data());
      EXPECT_GT(loss, 0.0);
      for (int64_t v = 0; v < V; ++v) {
        auto sp = s, sm = s;
        const float h = 1e-2f;
        sp[size_t(v)] += h, sm[size_t(v)] -= h;
        const double fd = (distill_loss_row(sp.data(), t.data(), V, cfg, nullptr) -
                           distill_loss_row(sm.data(), t.data(), V, cfg, nullptr)) / (2.0 * double(h));
        EXPECT_NEAR(ds[size_t(v)], fd, 2e-4) << "beta " << beta << " tau " << tau << " logit " << v;
      }
      // Zero when the student equals the teacher.
      EXPECT_NEAR(distill_loss_row(t.data(), t.data(), V, cfg, nullptr), 0.0, 1e-12);
    }
}

TEST(RlObjectives, DistillationThroughTheModelMatchesFiniteDifference) {
  // Directional finite difference of the whole model objective along its own gradient.
  auto m = tiny();
  auto& ds = dynamic_cast<DeepSeekModel&>(*m);
  auto tokens = some_tokens(8, 6);
  std::vector<float> teacher(tokens.size() * 128);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : teacher) x = nd(rng);
  std::vector<float> w(tokens.size(), 0.125f);
  auto obj = distill_objective(teacher, w, DistillLoss{0.5, 1.5});
  nn::Gradients g;
  g.allocate(ds);
  const double l0 = ds.objective_and_grad(tokens, {}, obj, &g);
  // Step every parameter by -h * grad and compare the change with -h * |grad|^2.
  const double h = 1e-3;
  double sq = 0;
  m->for_each_param([&](nn::Param& p) {
    if (!g.has(*p.tensor) || p.name.find("e_score_correction_bias") != std::string::npos) return;
    const float* gr = g.of(*p.tensor);
    for (int64_t i = 0; i < p.tensor->numel(); ++i) sq += double(gr[i]) * gr[i];
  });
  auto shifted = [&](double step) {
    auto m2 = tiny();
    auto& d2 = dynamic_cast<DeepSeekModel&>(*m2);
    m2->for_each_param([&](nn::Param& p) {
      if (!p.tensor->defined()) return;
      // Parameters of the copy sit at the same names; find the gradient by name.
      for (const auto& [name, slot] : g.names())
        if (name == p.name && name.find("e_score_correction_bias") == std::string::npos) {
          Tensor owned = Tensor::zeros(DType::F32, p.shape);
          const Tensor& gt = g.tensor_of(slot);
          for (int64_t i = 0; i < owned.numel(); ++i) owned.f32()[i] = p.tensor->f32()[i] - float(step * gt.f32()[i]);
          *p.tensor = owned;
        }
    });
    m2->prepare();
    return d2.objective_and_grad(tokens, {}, obj, nullptr);
  };
  const double fd = (shifted(h) - shifted(-h)) / (2 * h);
  EXPECT_NEAR(fd, -sq, 2e-2 * sq) << "loss " << l0;
}
