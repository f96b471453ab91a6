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

// The objective every trainer drives a model with: mean next-token cross-entropy over the rows with a target
// (scale 1/count), or their sum (scale 1).
double cross_entropy(const ObjectiveInput& in, float* dlogits, bool mean) {
  int64_t count = 0;
  for (int32_t t : in.targets) count += t >= 0;
  const double scale = mean ? 1.0 / double(count) : 1.0;
  double loss = 0;
  for (int64_t r = 0; r < in.T; ++r) {
    const int32_t t = in.targets[size_t(r)];
    if (t < 0) continue;
    const float* row = in.logits + r * in.V;
    double mx = row[0], sum = 0;
    for (int64_t v = 1; v < in.V; ++v) mx = std::max(mx, double(row[v]));
    for (int64_t v = 0; v < in.V; ++v) sum += std::exp(double(row[v]) - mx);
    loss += (mx + std::log(sum) - double(row[t])) * scale;
    if (!dlogits) continue;
    for (int64_t v = 0; v < in.V; ++v) dlogits[r * in.V + v] += float(std::exp(double(row[v]) - mx) / sum * scale);
    dlogits[r * in.V + t] -= float(scale);
  }
  return loss;
}

// Dense models (qwen2 with q/k/v biases and tied embeddings, llama with llama3 RoPE scaling) train through the
// per-token objective path: the fixture's loss (mean next-token CE; no MTP) and every gradient against PyTorch.
class DenseGradParity : public ::testing::TestWithParam<std::string> {};

TEST_P(DenseGradParity, LossAndEveryGradientMatchPyTorch) {
  const std::string dir = kParity + "/" + GetParam();
  std::ifstream in(dir + "/fixture.json");
  auto fx = nlohmann::json::parse(in);
  auto tokens = fx["tokens"].get<std::vector<int32_t>>();
  ASSERT_TRUE(fx["loss_mtp"].is_null() || fx["loss_mtp"].get<double>() == 0.0);  // no MTP term in the reference
  auto model = load_model(dir);
  ASSERT_TRUE(model->trainable());
  nn::Gradients grads;
  grads.allocate(*model);
  auto ce = [](const ObjectiveInput& i, float* d) { return cross_entropy(i, d, true); };
  const double loss = model->objective_and_grad(tokens, {}, ce, &grads);
  EXPECT_NEAR(loss, fx["loss_main"].get<double>(), 1e-4 * std::fabs(fx["loss_main"].get<double>()));
  auto ref = io::SafetensorsReader::open(dir + "/grads.safetensors");
  int compared = 0;
  for (const auto& [name, slot] : grads.names()) {
    ASSERT_TRUE(ref.contains(name)) << "no reference gradient for " << name;
    const Tensor& g = grads.tensor_of(slot);
    Tensor r = ref.tensor_as(name, DType::F32);
    ASSERT_EQ(r.numel(), g.numel()) << name;
    EXPECT_LE(max_rel_diff(g.f32(), r.f32(), size_t(r.numel())), 1e-3) << GetParam() << " gradient of " << name;
    ++compared;
  }
  EXPECT_GE(compared, 2 + 9 * model->config().num_hidden_layers);  // embeddings, norm, 9+ per block
  EXPECT_DOUBLE_EQ(model->objective_and_grad(tokens, {}, ce, nullptr), loss);  // no gradients: the same loss
  // Pretraining's loss_and_grad (the chunked cross-entropy; no MTP module, so λ does nothing) gives the same loss
  // and gradients.
  nn::Gradients pre;
  pre.allocate(*model);
  const LossParts lp = model->loss_and_grad(tokens, &pre, 0.3);
  EXPECT_NEAR(lp.main, fx["loss_main"].get<double>(), 1e-4 * std::fabs(fx["loss_main"].get<double>()));
  EXPECT_EQ(lp.total, lp.main);
  for (const auto& [name, slot] : pre.names()) {
    Tensor r = ref.tensor_as(name, DType::F32);
    EXPECT_LE(max_rel_diff(pre.tensor_of(slot).f32(), r.f32(), size_t(r.numel())), 1e-3) << "loss_and_grad: " << name;
  }
}

// A packed window [a ‖ b] gives the gradients of a and b trained one by one (summed objective): attention stays
// inside each sample and positions restart.
TEST_P(DenseGradParity, PackedWindowEqualsSamplesOneByOne) {
  const std::string dir = kParity + "/" + GetParam();
  std::ifstream in(dir + "/fixture.json");
  auto tokens = nlohmann::json::parse(in)["tokens"].get<std::vector<int32_t>>();
  ASSERT_GE(tokens.size(), 6u);
  auto model = load_model(dir);
  auto sum_ce = [](const ObjectiveInput& i, float* d) { return cross_entropy(i, d, false); };
  const int64_t n = int64_t(tokens.size()) / 2 + 1;
  const std::vector<int64_t> lengths = {n, int64_t(tokens.size()) - n};
  nn::Gradients packed, separate;
  packed.allocate(*model);
  separate.allocate(*model);
  const double lp = model->objective_and_grad(tokens, lengths, sum_ce, &packed);
  const std::span<const int32_t> all(tokens);
  const double la = model->objective_and_grad(all.first(size_t(n)), {}, sum_ce, &separate);
  const double lb = model->objective_and_grad(all.subspan(size_t(n)), {}, sum_ce, &separate);
  EXPECT_NEAR(lp, la + lb, 1e-4 * std::fabs(lp));
  for (const auto& [name, slot] : packed.names()) {
    const Tensor& a = packed.tensor_of(slot);
    const Tensor& b = separate.tensor_of(slot);
    EXPECT_LE(max_rel_diff(a.f32(), b.f32(), size_t(a.numel())), 1e-4) << name;
  }
  // The lengths must cover the window.
  const std::vector<int64_t> bad = {n, 1};
  EXPECT_THROW(model->objective_and_grad(tokens, bad, sum_ce, nullptr), Error);
}

INSTANTIATE_TEST_SUITE_P(Dense, DenseGradParity, ::testing::Values("qwen2", "llama"));

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
