// ops/grad.h — backward kernels: the vector-Jacobian products of the ops in ops.h, same argument order as the
// forward, gradients ACCUMULATED into d* buffers (+=) so shared parameters and residual branches just add.
// defines: linear_backward, rmsnorm_backward, rope_backward, swiglu_backward, softmax_rows_backward,
//          embedding_backward, attention_causal_backward, cross_entropy_loss
//
// Each is checked against finite differences of its forward (tests/unit/test_grad.cpp).
#pragma once
#include <cstdint>

#include "ops/ops.h"

namespace baleine::ops {

// y[M,N] = x[M,K]·Wᵀ + b  →  dx += dy·W (if dx), dW += dyᵀ·x (if dW, f32 [N,K]), db += Σ_rows dy (if db).
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const WeightRef& w, int64_t M,
                     int64_t ldy = 0, int64_t ldx = 0);

// y = x / rms(x) · w  →  dx += ..., dw += Σ_rows dy · x / rms(x) (if dw).
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int64_t rows, int64_t dim,
                      float eps, int64_t ldx = 0, int64_t ldy = 0);

// RoPE is a rotation, so its backward rotates the gradient back (by -angle), in place on dx.
void rope_backward(float* dx, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                   const int32_t* positions, const RopeTable& table, RopeLayout layout);

// y = silu(g)·u  →  dg += dy·u·silu'(g), du += dy·silu(g).
void swiglu_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, int64_t n);

// y = softmax(x) row-wise (y given)  →  dx += y ⊙ (dy − Σ dy·y).
void softmax_rows_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t n);

// dtable[ids[i], :] += dy[i, :] (dtable f32 [vocab, dim]).
void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t dim);

// Backward of attention_causal (same AttentionArgs and layouts). Probabilities are recomputed from q and k.
// dq, dk, dv use the strides of q, k, v; dk/dv may alias when k/v alias (gradients add).
void attention_causal_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const AttentionArgs& a);

// Mean cross-entropy of logits = h[T,d]·Wᵀ against targets (target < 0: ignored), computed chunk by chunk over
// the vocabulary so the [T, V] logits never exist at once. Returns the loss; when dh/dW are given, accumulates
// scale·∂loss/∂h and scale·∂loss/∂W (W f32 [V, d]). `count` receives the number of scored targets.
double cross_entropy_loss(const float* h, const WeightRef& w, const int32_t* targets, int64_t T, float* dh, float* dW,
                          float scale = 1.0f, int64_t* count = nullptr, int64_t vocab_chunk = 4096);

}  // namespace baleine::ops
