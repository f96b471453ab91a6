// models/train_blocks.h — training pieces every architecture's backward shares: SwiGLU with its saved
// activations, and causal attention over a packed window (one causal block per sample) with its backward.
// defines: SwiGLUActivations, swiglu_forward_train, swiglu_backward, packed_attention, packed_attention_backward
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "nn/grads.h"
#include "nn/layers.h"
#include "ops/ops.h"

namespace baleine {

// y = down(silu(gate x) ⊙ up x). The input x is not saved (the caller recomputes or re-gathers it) and neither is
// silu(g) ⊙ u (recomputed from g and u).
struct SwiGLUActivations {
  std::vector<float> g, u;  // [M, width]
};
void swiglu_forward_train(const nn::SwiGLU& f, float* y, const float* x, int64_t M, SwiGLUActivations& a);
// x: the forward's input [M, dim]; dx accumulates.
void swiglu_backward(const nn::SwiGLU& f, float* dx, const float* dy, const float* x, int64_t M,
                     const SwiGLUActivations& a, nn::Gradients& g);

// Causal attention over samples packed back to back (`lengths`, empty: one): no row attends across a sample.
// args' n_q / n_kv are set per sample; strides as in ops::attention_causal.
void packed_attention(float* out, const float* q, const float* k, const float* v, ops::AttentionArgs args,
                      std::span<const int64_t> lengths, int64_t T);
void packed_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, ops::AttentionArgs args, std::span<const int64_t> lengths, int64_t T);

}  // namespace baleine
