// rl/objectives.h — per-token objectives over a model's logits (baleine::LogitObjective, models/model.h): weighted
// next-token NLL (SFT, with 0 masking a token), objectives of the target log-probabilities (GRPO's clipped
// surrogate and k3 KL), and logit distillation (forward KL, reverse KL, generalised JSD with temperature).
// defines: target_logprobs, weighted_nll, logprob_objective, DistillLoss, distill_objective, distill_loss_row,
//          GrpoTokenLoss, grpo_token_loss
#pragma once
#include <functional>
#include <span>
#include <vector>

#include "models/model.h"

namespace baleine::rl {

using ObjectiveInput = baleine::ObjectiveInput;
using LogitObjective = baleine::LogitObjective;

// log softmax(logits[t])[targets[t]] for every row (0 where the row has no target).
std::vector<double> target_logprobs(const ObjectiveInput& in);

// L = Σ_t w_t · (−log p_t(target_t)); rows without a target must have w_t = 0. Weights are per row of the window.
LogitObjective weighted_nll(std::vector<float> weights);

// L = f(logp) for the target log-probabilities logp[T] (0 where no target); f fills dL/dlogp[T] (zeroed) and
// returns L. The backward is dL/dlogits_t = dL/dlogp_t · (onehot(target_t) − softmax(logits_t)).
using LogprobFn = std::function<double(std::span<const double> logp, std::span<double> dlogp)>;
LogitObjective logprob_objective(LogprobFn f);

// Logit distillation of a student q toward a teacher p, both softened by temperature τ: p = softmax(t/τ),
// q = softmax(s/τ). beta = 0: forward KL(p‖q); beta = 1: reverse KL(q‖p); otherwise the generalised JSD of
// GKD (Agarwal et al.): m = β·p + (1−β)·q, JSD_β = β·KL(p‖m) + (1−β)·KL(q‖m) (trl's convention). No τ² factor.
struct DistillLoss {
  double beta = 0.0;
  double temperature = 1.0;
};
// One row: the loss and, if ds is not null, dL/ds over the V student logits (written, not accumulated).
double distill_loss_row(const float* student, const float* teacher, int64_t V, const DistillLoss& cfg, float* ds);
// L = Σ_t w_t · loss_row(t); teacher_logits [T, V] aligned with the student's rows.
LogitObjective distill_objective(std::vector<float> teacher_logits, std::vector<float> weights, DistillLoss cfg);

// GRPO per-token loss (DeepSeekMath eq. 3 / trl): ρ = exp(logp − old), surrogate = min(ρ·A, clip(ρ, 1−ε_lo, 1+ε_hi)·A),
// k3 = exp(ref − logp) − (ref − logp) − 1, loss_t = −(surrogate − β·k3). Returns loss_t and dloss_t/dlogp.
struct GrpoTokenLoss {
  double loss = 0, dlogp = 0, ratio = 1, kl = 0;
  bool clipped = false;  // the clipped branch was taken and it has no gradient
};
GrpoTokenLoss grpo_token_loss(double logp, double old_logp, double ref_logp, double advantage, double eps_low,
                              double eps_high, double beta);

}  // namespace baleine::rl
