// rl/grpo.h — `baleine grpo`: Group Relative Policy Optimization (DeepSeekMath; R1-Zero) with rule rewards.
// Per step: P training prompts → G samples each from the policy in process → rewards from the task grader →
// advantages normalised within each group → μ updates of the clipped surrogate with a per-token k3 KL to a
// frozen reference (β = 0: no reference model at all) → periodic greedy evaluation on the held-out split.
// defines: GrpoLossConfig, GrpoSequence, GrpoLossStats, group_advantages, grpo_loss_and_grad, GrpoRecipe,
//          load_grpo_recipe, run_grpo
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rl/common.h"
#include "rl/tasks.h"

namespace baleine::rl {

struct GrpoLossConfig {
  double eps_low = 0.2, eps_high = 0.2;  // clip range [1 − eps_low, 1 + eps_high]
  double beta = 0.0;                     // k3 KL coefficient
  // Token: Σ over all completion tokens of the batch / their number (DAPO, trl "dapo"/"bnpo").
  // Sequence: mean over sequences of each sequence's mean over its tokens (DeepSeekMath, trl "grpo").
  bool token_level = true;
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

// Group-normalised advantages: (r − mean) / (std + 1e-4) with the Bessel-corrected std (trl), or r − mean.
std::vector<double> group_advantages(const std::vector<double>& rewards, bool scale_by_std);

// The GRPO objective of a batch and its gradient (accumulated into grads when not null). Sequences of one call
// are packed with per-sample attention in chunks of at most pack_tokens tokens.
GrpoLossStats grpo_loss_and_grad(CausalLM& model, const std::vector<GrpoSequence>& batch,
                                 const GrpoLossConfig& cfg, nn::Gradients* grads, int64_t pack_tokens = 2048);
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
  train::LrSchedule lr;
  train::AdamWConfig adamw;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  int64_t eval_every = 10, eval_problems = 64, checkpoint_every = 10, log_samples = 2;
};
GrpoRecipe load_grpo_recipe(const std::string& path);
int run_grpo(const GrpoRecipe& r, bool resume);

}  // namespace baleine::rl
