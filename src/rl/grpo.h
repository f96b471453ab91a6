// rl/grpo.h — `baleine grpo`: Group Relative Policy Optimization (DeepSeekMath; R1-Zero) with rule rewards.
// Per step: P training prompts → G samples each from the policy in process → rewards from the task grader →
// advantages normalised within each group → μ updates of the clipped surrogate with a per-token k3 KL to a
// frozen reference (β = 0: no reference model at all) → periodic greedy evaluation on the held-out split.
// Variants (recipe key "variant", each key still overridable): "grpo" (DeepSeekMath), "dr_grpo" (Liu et al. 2025:
// no std scaling, constant normaliser), "dapo" (Yu et al. 2025: clip-higher, dynamic sampling, token-level
// averaging, soft overlong punishment).
// defines: LossAveraging, GrpoLossConfig, overlong_reward, group_is_informative, GrpoSequence, GrpoLossStats,
//          group_advantages, grpo_loss_and_grad, GrpoRecipe, load_grpo_recipe, run_grpo
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rl/common.h"
#include "rl/tasks.h"

namespace baleine::rl {

// How the per-token losses of a batch are summed into one objective.
enum class LossAveraging {
  Token,     // Σ over all completion tokens of the batch / their number (DAPO; trl "dapo"/"bnpo")
  Sequence,  // mean over sequences of each sequence's mean over its tokens (DeepSeekMath; trl "grpo")
  Constant,  // Σ over all completion tokens / (sequences × constant_tokens): no length bias (Dr. GRPO; trl "dr_grpo")
};
LossAveraging loss_averaging_from_name(const std::string& name);  // token | sequence | constant

struct GrpoLossConfig {
  double eps_low = 0.2, eps_high = 0.2;  // clip range [1 − eps_low, 1 + eps_high] (DAPO's clip-higher: 0.2 / 0.28)
  double beta = 0.0;                     // k3 KL coefficient
  LossAveraging averaging = LossAveraging::Token;
  int64_t constant_tokens = 0;           // Constant: the divisor per sequence (the generation budget, max_new_tokens)
};

struct GrpoSequence {
  std::vector<int32_t> tokens;   // prompt + completion
  int64_t prompt_len = 0;        // completion tokens are tokens[prompt_len..]
  double advantage = 0;
  std::vector<double> old_logp;  // [tokens.size()] per row t: log π_old(tokens[t+1]); only completion rows used
  std::vector<double> ref_logp;  // same for the reference (unused when beta = 0)
};

struct GrpoLossStats {
  double loss = 0;
  double kl = 0;          // mean k3 over completion tokens
  double clip_frac = 0;   // share of completion tokens whose gradient was clipped away
  double ratio_mean = 0;
  int64_t tokens = 0;
};

// DAPO's soft overlong punishment, added to the reward of a completion of `length` tokens under a budget of
// max_len: 0 up to max_len − buffer, then linear down to −penalty at max_len (a truncated completion has
// length = max_len). buffer = 0 turns it off.
double overlong_reward(int64_t length, int64_t max_len, int64_t buffer, double penalty);
// DAPO's dynamic sampling keeps only groups whose rewards vary: a group of equal rewards has zero advantages.
bool group_is_informative(const std::vector<double>& rewards);

// Group-normalised advantages: (r − mean) / (std + 1e-4) with the Bessel-corrected std (trl), or r − mean.
std::vector<double> group_advantages(const std::vector<double>& rewards, bool scale_by_std);

// The GRPO objective of a batch and its gradient (accumulated into grads when not null). Sequences of one call
// are packed with per-sample attention in chunks of at most pack_tokens tokens.
// Under data parallelism `batch` is one rank's share: `whole` gives the completion tokens and sequences of the
// whole batch, which the averaging divides by (zeros: the batch is the whole). The returned means stay local.
struct GrpoBatchTotals {
  int64_t tokens = 0, sequences = 0;
};
GrpoLossStats grpo_loss_and_grad(CausalLM& model, const std::vector<GrpoSequence>& batch,
                                 const GrpoLossConfig& cfg, nn::Gradients* grads, int64_t pack_tokens = 2048,
                                 GrpoBatchTotals whole = {});
// Per-row log-probabilities of `tokens` under `model` (teacher-forced, no gradient), packed likewise.
std::vector<std::vector<double>> sequence_logprobs(CausalLM& model, const std::vector<std::vector<int32_t>>& seqs,
                                                   int64_t pack_tokens = 2048);

struct GrpoRecipe {
  std::string source, model, out = "runs/grpo";
  nlohmann::json suite = "arithmetic";
  PromptFormat prompt_format = PromptFormat::Plain;
  RewardConfig reward;
  int64_t prompts_per_step = 4, group_size = 8, max_new_tokens = 96, steps = 50, inner_iterations = 1;
  double temperature = 1.0, top_p = 1.0;
  bool scale_rewards = true;
  GrpoLossConfig loss;
  // DAPO: draw up to dynamic_sampling_rounds × prompts_per_step prompts per step, keep the first prompts_per_step
  // informative groups (a step with none makes no update).
  bool dynamic_sampling = false;
  int64_t dynamic_sampling_rounds = 3;
  int64_t overlong_buffer = 0;  // overlong_reward's buffer (tokens); 0: off
  double overlong_penalty = 1.0;
  train::LrSchedule lr;
  train::AdamWConfig adamw;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  int64_t eval_every = 10, eval_problems = 64, checkpoint_every = 10, log_samples = 2;
};
GrpoRecipe load_grpo_recipe(const std::string& path);
// Under mpirun each rank decodes and trains on a contiguous share of every round's prompts (whole groups);
// zero1 shards the optimizer moments.
int run_grpo(const GrpoRecipe& r, bool resume, bool zero1 = false);

}  // namespace baleine::rl
