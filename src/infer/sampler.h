// infer/sampler.h — choosing the next token from logits: greedy, temperature, top-k, top-p, min-p, seeded.
// defines: SamplingParams, Sampler
#pragma once
#include <cstdint>
#include <random>
#include <span>

namespace baleine {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // nucleus; 1: off
  float min_p = 0.0f;        // drop tokens with p < min_p · p_max; 0: off
  uint64_t seed = 0;
  // OpenAI penalties on tokens already generated: logit -= presence·[count > 0] + frequency·count.
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  // CTRL / llama.cpp repetition penalty on tokens seen in prompt or output: logit / r if > 0 else logit · r; 1: off.
  float repetition_penalty = 1.0f;
};

// Applies the penalties of `p` in place. `generated`: completion tokens so far; `context`: prompt + completion
// (for the repetition penalty).
void apply_penalties(std::span<float> logits, const SamplingParams& p, std::span<const int32_t> generated,
                     std::span<const int32_t> context);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // Applies the chain temperature -> top-k -> top-p -> min-p to `logits` and draws a token.
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

}  // namespace baleine
