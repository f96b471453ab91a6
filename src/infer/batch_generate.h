// infer/batch_generate.h — synchronous, in-process batched generation on the caller's thread: many prompts
// decoded together through CausalLM::forward_batch in one paged KV pool, for RL rollouts, evaluation and
// rejection sampling (no engine thread, no copy of the weights: the model is read as it is at the call).
//
// Requests with the same prompt prefill it once: the others adopt its full KV blocks and copy the rows of its
// last, partial block, and sample their first token from its logits. Each request samples with its own chain
// (SamplingParams, seeded by its own seed) and stops on its own (stop token or length), so its tokens do not
// depend on what else is in the batch.
// defines: BatchRequest, BatchOutput, BatchGenerateOptions, generate_batch
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "infer/sampler.h"
#include "models/model.h"

namespace baleine {

struct BatchRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;       // temperature, top-k/p, min-p, penalties, seed
  int64_t max_new_tokens = 256;  // also bounded by the model's context
};

struct BatchOutput {
  std::vector<int32_t> tokens;  // the completion (the stop token included when one was sampled)
  bool finished = false;        // stopped by a stop token (not by the length limit)
};

struct BatchGenerateOptions {
  std::vector<int32_t> stop_tokens;  // usually the tokenizer's end-of-sequence id
  int64_t max_batch = 256;           // sequences per decode forward_batch call
  int64_t prefill_tokens = 4096;     // prompt tokens per prefill call (a longer prompt runs alone)
  int64_t kv_block_size = 16;
  bool share_prompts = true;         // identical prompts prefill once and share their KV blocks
  MlaMode mla_mode = MlaMode::Absorbed;
};

// Completions of every request, in request order. Throws baleine::Error for an empty prompt, a prompt that
// fills the context, ids outside the vocabulary or max_new_tokens < 1 (before any work).
std::vector<BatchOutput> generate_batch(CausalLM& model, std::span<const BatchRequest> requests,
                                        const BatchGenerateOptions& options = {});

}  // namespace baleine
