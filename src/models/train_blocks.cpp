#include "models/train_blocks.h"

#include "core/check.h"
#include "ops/grad.h"

namespace baleine {

namespace {
std::vector<float> zeros(int64_t n) { return std::vector<float>(static_cast<size_t>(n), 0.0f); }
}  // namespace

void swiglu_forward_train(const nn::SwiGLU& f, float* y, const float* x, int64_t M, SwiGLUActivations& a) {
  a.g = zeros(M * f.width), a.u = zeros(M * f.width);
  std::vector<float> act = zeros(M * f.width);
  f.gate.forward(a.g.data(), x, M);
  f.up.forward(a.u.data(), x, M);
  ops::swiglu(act.data(), a.g.data(), a.u.data(), M * f.width);
  f.down.forward(y, act.data(), M);
}

void swiglu_backward(const nn::SwiGLU& f, float* dx, const float* dy, const float* x, int64_t M,
                     const SwiGLUActivations& a, nn::Gradients& g) {
  std::vector<float> act = zeros(M * f.width), dact = zeros(M * f.width), dg = zeros(M * f.width), du = zeros(M * f.width);
  ops::swiglu(act.data(), a.g.data(), a.u.data(), M * f.width);
  ops::linear_backward(dact.data(), g.of(f.down.weight), nullptr, dy, act.data(), nn::weight_ref(f.down.weight), M);
  ops::swiglu_backward(dg.data(), du.data(), dact.data(), a.g.data(), a.u.data(), M * f.width);
  ops::linear_backward(dx, g.of(f.gate.weight), nullptr, dg.data(), x, nn::weight_ref(f.gate.weight), M);
  ops::linear_backward(dx, g.of(f.up.weight), nullptr, du.data(), x, nn::weight_ref(f.up.weight), M);
}

void packed_attention(float* out, const float* q, const float* k, const float* v, ops::AttentionArgs args,
                      std::span<const int64_t> lengths, int64_t T) {
  if (lengths.size() <= 1) {
    args.n_q = args.n_kv = T;
    ops::attention_causal(out, q, k, v, args);
    return;
  }
  int64_t start = 0;
  for (int64_t len : lengths) {
    args.n_q = args.n_kv = len;
    ops::attention_causal(out + start * args.out_stride, q + start * args.q_stride, k + start * args.k_stride,
                          v + start * args.v_stride, args);
    start += len;
  }
  BALEINE_ASSERT(start == T);
}

void packed_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, ops::AttentionArgs args, std::span<const int64_t> lengths, int64_t T) {
  if (lengths.size() <= 1) {
    args.n_q = args.n_kv = T;
    ops::attention_causal_backward(dq, dk, dv, dout, q, k, v, args);
    return;
  }
  int64_t start = 0;
  for (int64_t len : lengths) {
    args.n_q = args.n_kv = len;
    ops::attention_causal_backward(dq + start * args.q_stride, dk + start * args.k_stride, dv + start * args.v_stride,
                                   dout + start * args.out_stride, q + start * args.q_stride,
                                   k + start * args.k_stride, v + start * args.v_stride, args);
    start += len;
  }
  BALEINE_ASSERT(start == T);
}

}  // namespace baleine
