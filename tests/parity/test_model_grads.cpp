// Training parity against PyTorch: the loss (next-token CE + λ·MTP CE) and the gradient of EVERY parameter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/deepseek.h"
#include "models/model.h"
#include "nn/grads.h"

using namespace baleine;

namespace {
const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

double max_rel_diff(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den == 0 ? num : num / den;
}

class GradParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GradParity, LossAndEveryGradientMatchPyTorch) {
  const std::string dir = kParity + "/" + GetParam();
  std::ifstream in(dir + "/fixture.json");
  auto fx = nlohmann::json::parse(in);
  auto tokens = fx["tokens"].get<std::vector<int32_t>>();
  const double lambda = fx.value("mtp_lambda", 0.0);

  auto model = load_model(dir);
  auto* ds = dynamic_cast<DeepSeekModel*>(model.get());
  ASSERT_NE(ds, nullptr);
  nn::Gradients grads;
  grads.allocate(*model);
  auto loss = ds->loss_and_grad(tokens, &grads, lambda);
  EXPECT_NEAR(loss.main, fx["loss_main"].get<double>(), 1e-4 * std::fabs(fx["loss_main"].get<double>()));
  EXPECT_NEAR(loss.total, fx["loss"].get<double>(), 1e-4 * std::fabs(fx["loss"].get<double>()));

  auto ref = io::SafetensorsReader::open(dir + "/grads.safetensors");
  int compared = 0;
  for (const auto& [name, slot] : grads.names()) {
    const Tensor& g = grads.tensor_of(slot);
    if (!ref.contains(name)) {
      // Only the selection bias may lack a gradient: it never enters the loss.
      EXPECT_NE(name.find("e_score_correction_bias"), std::string::npos) << "no reference gradient for " << name;
      continue;
    }
    Tensor r = ref.tensor_as(name, DType::F32);
    ASSERT_EQ(r.numel(), g.numel()) << name;
    if (name.find("e_score_correction_bias") != std::string::npos) continue;
    double d = max_rel_diff(g.f32(), r.f32(), size_t(r.numel()));
    EXPECT_LE(d, 1e-3) << GetParam() << " gradient of " << name;
    ++compared;
  }
  EXPECT_GT(compared, 20);
  // And without gradients the loss is the same.
  auto again = ds->loss_and_grad(tokens, nullptr, lambda);
  EXPECT_DOUBLE_EQ(again.total, loss.total);
}

INSTANTIATE_TEST_SUITE_P(DeepSeek, GradParity, ::testing::Values("v3", "v2_lite", "v2"));

}  // namespace

// The sequence-wise balance loss has no PyTorch fixture: check its gradient by a directional finite difference
// along the router weights' own gradient (selection is locally constant, so the loss is smooth there).
TEST(BalanceLoss, RouterGradientMatchesFiniteDifference) {
  const std::string dir = kParity + "/v3";
  std::ifstream in(dir + "/fixture.json");
  auto tokens = nlohmann::json::parse(in)["tokens"].get<std::vector<int32_t>>();
  auto model = load_model(dir);
  model->for_each_param([](nn::Param& p) { if (p.tensor->defined()) *p.tensor = p.tensor->to_f32(); });
  model->prepare();
  auto& ds = dynamic_cast<DeepSeekModel&>(*model);
  ds.set_sequence_balance_alpha(0.3);
  nn::Gradients grads;
  grads.allocate(*model);
  auto loss = ds.loss_and_grad(tokens, &grads, 0.3);
  EXPECT_GT(loss.balance, 0.0);
  Tensor* router = nullptr;
  model->for_each_param([&](nn::Param& p) { if (p.name == "model.layers.1.mlp.gate.weight") router = p.tensor; });
  ASSERT_NE(router, nullptr);
  const float* g = grads.of(*router);
  double norm = 0;
  for (int64_t i = 0; i < router->numel(); ++i) norm += double(g[i]) * g[i];
  norm = std::sqrt(norm);
  const float eps = 1e-3f;
  std::vector<float> w0(router->f32(), router->f32() + router->numel());
  auto loss_at = [&](float t) {
    for (int64_t i = 0; i < router->numel(); ++i) router->f32()[i] = w0[size_t(i)] + t * float(g[i] / norm);
    return ds.loss_and_grad(tokens, nullptr, 0.3).total;
  };
  const double fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
  EXPECT_NEAR(fd, norm, 0.005 * norm);
  std::printf("directional derivative %.6f, analytic %.6f\n", fd, norm);
  // And the balance term really contributes to that gradient.
  ds.set_sequence_balance_alpha(0.0);
  for (int64_t i = 0; i < router->numel(); ++i) router->f32()[i] = w0[size_t(i)];
  nn::Gradients plain;
  plain.allocate(*model);
  ds.loss_and_grad(tokens, &plain, 0.3);
  const double contribution = max_rel_diff(plain.of(*router), g, size_t(router->numel()));
  std::printf("balance share of the router gradient: %.3f\n", contribution);
  EXPECT_GT(contribution, 0.1);
}
