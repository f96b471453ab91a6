// Training parity against PyTorch: the loss (next-token CE + λ·MTP CE) and the gradient of EVERY parameter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
