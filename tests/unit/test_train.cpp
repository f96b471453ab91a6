// Optimizer and schedule: 10 AdamW steps (with clipping) reproduce PyTorch's losses; schedules have the
// documented shape.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/deepseek.h"
#include "train/adamw.h"

using namespace baleine;

TEST(AdamW, TenStepsMatchPyTorch) {
  const std::string dir = std::string(BALEINE_TEST_DATA) + "/parity/v3";
  std::ifstream in(dir + "/adamw.json");
  auto fx = nlohmann::json::parse(in);
  const auto& hp = fx["hyper_parameters"];
  auto ref_losses = fx["losses"].get<std::vector<double>>();
  auto ref_norms = fx["grad_norms_before_clip"].get<std::vector<double>>();
  std::ifstream fin(dir + "/fixture.json");
  auto tokens = nlohmann::json::parse(fin)["tokens"].get<std::vector<int32_t>>();

  auto model = load_model(dir);
  train::materialize_params(*model);
  auto& ds = dynamic_cast<DeepSeekModel&>(*model);
  train::AdamW opt({hp["beta1"].get<double>(), hp["beta2"].get<double>(), hp["eps"].get<double>(),
                    hp["weight_decay"].get<double>()});
  opt.attach(*model);
  nn::Gradients grads;
  grads.allocate(*model);
  for (size_t step = 0; step < ref_losses.size(); ++step) {
    grads.zero();
    auto loss = ds.loss_and_grad(tokens, &grads, fx["mtp_lambda"].get<double>());
    double norm = train::clip_grad_norm(grads, hp["clip_norm"].get<double>());
    EXPECT_NEAR(loss.total, ref_losses[step], 2e-4 * ref_losses[step]) << "step " << step;
    EXPECT_NEAR(norm, ref_norms[step], 1e-3 * ref_norms[step]) << "step " << step;
    opt.step(grads, hp["lr"].get<double>());
  }
  EXPECT_EQ(opt.steps(), int64_t(ref_losses.size()));
}

TEST(LrSchedule, WarmupCosineAndWsd) {
  train::LrSchedule s;
  s.shape = train::LrShape::Cosine;
  s.max_lr = 1.0, s.min_lr = 0.1, s.warmup_steps = 10, s.total_steps = 110;
  EXPECT_NEAR(train::lr_at(s, 0), 0.1, 1e-12);    // linear warmup from max/warmup
  EXPECT_NEAR(train::lr_at(s, 9), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(s, 60), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(train::lr_at(s, 110), 0.1, 1e-12);
  s.shape = train::LrShape::WarmupStableDecay;
  s.decay_fraction = 0.1;
  EXPECT_NEAR(train::lr_at(s, 50), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(s, 110), 0.1, 1e-12);
  EXPECT_LT(train::lr_at(s, 105), 1.0);
}

TEST(AdamW, RefusesReadOnlyCheckpointWeights) {
  auto model = load_model(std::string(BALEINE_TEST_DATA) + "/parity/v2_lite");
  train::AdamW opt;
  // Weights straight from the mapping are f32 here, so attach works; decay applies only to matrices.
  opt.attach(*model);
  EXPECT_FALSE(opt.state().empty());
}
