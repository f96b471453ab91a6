// rl/sft.h — `baleine sft`: supervised fine-tuning on chat-formatted JSONL ({"messages": [...]}, one conversation a
// line), rendered with the model's chat template; loss on assistant tokens only; samples packed into windows with
// per-sample attention; checkpoints, metrics.jsonl and resume as `baleine train`.
// defines: SftRecipe, load_sft_recipe, PackedWindow, pack_samples, load_chat_jsonl, run_sft
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rl/common.h"

namespace baleine::rl {

struct SftRecipe {
  std::string source, model, data, val_data, out = "runs/sft";
  ChatFormat chat_format = ChatFormat::DeepSeekR1;
  int64_t seq_len = 256, batch_size = 4, steps = 100;
  train::LrSchedule lr;
  train::AdamWConfig adamw;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  int64_t checkpoint_every = 50, eval_every = 50, log_every = 1;
  // Logit distillation (`baleine distill --config`): with a teacher, the loss on assistant tokens is the
  // distillation loss toward the teacher's logits instead of the NLL. Vocabularies must match.
  std::string teacher;
  double distill_beta = 0.0, distill_temperature = 1.0;
};
SftRecipe load_sft_recipe(const std::string& path, bool distill = false);

// Samples (each at most seq_len tokens; longer ones are cut) packed first-fit in a seeded order.
struct PackedWindow {
  std::vector<int32_t> tokens;
  std::vector<int64_t> lengths;  // per sample
  std::vector<float> weights;    // per row: 1 when the row's target is a trained (assistant) token
};
std::vector<PackedWindow> pack_samples(const std::vector<TokenizedSample>& samples, int64_t seq_len, uint64_t seed);
std::vector<TokenizedSample> load_chat_jsonl(const std::string& path, const Tokenizer& tok, ChatFormat format);

// Under mpirun (several ranks) data parallel: each rank takes a contiguous share of every global batch; zero1
// shards the optimizer moments across ranks.
int run_sft(const SftRecipe& r, bool resume, bool zero1 = false);

}  // namespace baleine::rl
