// models/dense_train.cpp — the training pass of the dense GQA models (qwen2, llama): each block's forward (saving
// what backward needs) and its backward side by side; the model's backward walks the forward list in reverse.
// What is cheap to recompute is not saved: the RMSNorm outputs (from their saved inputs) and silu(g)⊙u.
#include <cstring>

#include "models/dense.h"
#include "models/train_blocks.h"
#include "nn/grads.h"
#include "ops/grad.h"

namespace baleine {

namespace {
using Buf = std::vector<float>;
Buf zeros(int64_t n) { return Buf(static_cast<size_t>(n), 0.0f); }
}  // namespace

struct DenseModel::BlockActivations {
  Buf x_in, h_mid;  // [T, d] inputs of the two norms
  Buf q;            // [T, H, D] after RoPE
  Buf k, v;         // [T, G, D] (k after RoPE)
  Buf o;            // [T, H, D] attention output
  SwiGLUActivations mlp;
};

ops::AttentionArgs DenseModel::attention_args() const {
  const int64_t H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  ops::AttentionArgs a;
  a.n_heads = H, a.n_kv_heads = G, a.qk_dim = D, a.v_dim = D;
  a.q_stride = H * D, a.q_head_stride = D;
  a.k_stride = G * D, a.k_head_stride = D;
  a.v_stride = G * D, a.v_head_stride = D;
  a.out_stride = H * D, a.out_head_stride = D;
  a.scale = attn_scale_;
  return a;
}

void DenseModel::block_forward_train(const Block& b, float* x, int64_t T, const int32_t* positions,
                                     std::span<const int64_t> lengths, BlockActivations& a) const {
  const int64_t d = cfg_.hidden_size, H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  a.x_in.assign(x, x + T * d);
  Buf xn1 = zeros(T * d);
  b.input_layernorm.forward(xn1.data(), x, T);
  a.q = zeros(T * H * D), a.k = zeros(T * G * D), a.v = zeros(T * G * D);
  b.q_proj.forward(a.q.data(), xn1.data(), T);
  b.k_proj.forward(a.k.data(), xn1.data(), T);
  b.v_proj.forward(a.v.data(), xn1.data(), T);
  ops::rope_apply(a.q.data(), T, H, H * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  ops::rope_apply(a.k.data(), T, G, G * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  a.o = zeros(T * H * D);
  packed_attention(a.o.data(), a.q.data(), a.k.data(), a.v.data(), attention_args(), lengths, T);
  Buf tmp = zeros(T * d);
  b.o_proj.forward(tmp.data(), a.o.data(), T);
  ops::add_inplace(x, tmp.data(), T * d);
  a.h_mid.assign(x, x + T * d);
  Buf xn2 = zeros(T * d);
  b.post_attention_layernorm.forward(xn2.data(), x, T);
  swiglu_forward_train(b.mlp, tmp.data(), xn2.data(), T, a.mlp);
  ops::add_inplace(x, tmp.data(), T * d);
}

void DenseModel::block_backward(const Block& b, float* dx, int64_t T, const int32_t* positions,
                                std::span<const int64_t> lengths, const BlockActivations& a, nn::Gradients& g) const {
  const int64_t d = cfg_.hidden_size, H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  // --- FFN: out = h_mid + mlp(norm2(h_mid)), so dh_mid = dout + norm2ᵀ(mlpᵀ(dout)), accumulated into dx
  Buf xn2 = zeros(T * d), dxn2 = zeros(T * d);
  b.post_attention_layernorm.forward(xn2.data(), a.h_mid.data(), T);
  swiglu_backward(b.mlp, dxn2.data(), dx, xn2.data(), T, a.mlp, g);
  ops::rmsnorm_backward(dx, g.of(b.post_attention_layernorm.weight), dxn2.data(), a.h_mid.data(),
                        b.post_attention_layernorm.weight.f32(), T, d, b.post_attention_layernorm.eps);
  // --- attention: h_mid = x_in + o_proj(attn(rope(q), rope(k), v)) over norm1(x_in)
  Buf dout = zeros(T * H * D);
  ops::linear_backward(dout.data(), g.of(b.o_proj.weight), nullptr, dx, a.o.data(), nn::weight_ref(b.o_proj.weight), T);
  Buf dq = zeros(T * H * D), dk = zeros(T * G * D), dv = zeros(T * G * D);
  packed_attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), a.q.data(), a.k.data(), a.v.data(),
                            attention_args(), lengths, T);
  ops::rope_backward(dq.data(), T, H, H * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  ops::rope_backward(dk.data(), T, G, G * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  Buf xn1 = zeros(T * d), dxn1 = zeros(T * d);
  b.input_layernorm.forward(xn1.data(), a.x_in.data(), T);
  auto bias = [&](const nn::Linear& l) { return l.has_bias ? g.of(l.bias) : nullptr; };
  ops::linear_backward(dxn1.data(), g.of(b.q_proj.weight), bias(b.q_proj), dq.data(), xn1.data(), nn::weight_ref(b.q_proj.weight), T);
  ops::linear_backward(dxn1.data(), g.of(b.k_proj.weight), bias(b.k_proj), dk.data(), xn1.data(), nn::weight_ref(b.k_proj.weight), T);
  ops::linear_backward(dxn1.data(), g.of(b.v_proj.weight), bias(b.v_proj), dv.data(), xn1.data(), nn::weight_ref(b.v_proj.weight), T);
  ops::rmsnorm_backward(dx, g.of(b.input_layernorm.weight), dxn1.data(), a.x_in.data(), b.input_layernorm.weight.f32(), T,
                        d, b.input_layernorm.eps);
}

void DenseModel::train_pass(std::span<const int32_t> tokens, const PackedWindowLayout& w, nn::Gradients* grads,
                            const std::function<void(const float* h, float* dh)>& head) {
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size;
  // ---- forward
  Buf x = zeros(T * d);
  embed_tokens_.forward(x.data(), tokens.data(), T);
  std::vector<BlockActivations> acts(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) block_forward_train(layers_[l], x.data(), T, w.positions.data(), w.lengths, acts[l]);
  // ---- the head (final norm, logits, loss) and its backward, then the forward list reversed
  Buf dh = grads ? zeros(T * d) : Buf{};
  head(x.data(), grads ? dh.data() : nullptr);
  if (!grads) return;
  for (size_t l = layers_.size(); l-- > 0;) block_backward(layers_[l], dh.data(), T, w.positions.data(), w.lengths, acts[l], *grads);
  ops::embedding_backward(grads->of(embed_tokens_.weight), dh.data(), tokens.data(), T, d);
}

double DenseModel::objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                                      const LogitObjective& objective, nn::Gradients* grads) {
  const PackedWindowLayout w = packed_window_layout(cfg_, tokens, sample_lengths);
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size, V = cfg_.vocab_size;
  const Tensor& head_slot = cfg_.tie_word_embeddings ? embed_tokens_.weight : lm_head_.weight;
  double value = 0;
  train_pass(tokens, w, grads, [&](const float* h, float* dh) {
    Buf xf = zeros(T * d);
    norm_.forward(xf.data(), h, T);
    Buf logits = zeros(T * V);
    lm_head_.forward(logits.data(), xf.data(), T);
    ObjectiveInput in{logits.data(), w.targets, w.sample_of, T, V};
    Buf dlogits = dh ? zeros(T * V) : Buf{};
    value = objective(in, dh ? dlogits.data() : nullptr);
    if (!dh) return;
    Buf dxf = zeros(T * d);
    ops::linear_backward(dxf.data(), grads->of(head_slot), nullptr, dlogits.data(), xf.data(), nn::weight_ref(lm_head_.weight), T);
    ops::rmsnorm_backward(dh, grads->of(norm_.weight), dxf.data(), h, norm_.weight.f32(), T, d, norm_.eps);
  });
  return value;
}

// Pretraining: the same pass with the vocabulary-chunked cross-entropy (the [T, V] logits never exist at once).
LossParts DenseModel::loss_and_grad(std::span<const int32_t> tokens, nn::Gradients* grads, double) {
  BALEINE_CHECK(tokens.size() >= 2, "need at least 2 tokens to train, got {}", tokens.size());
  const PackedWindowLayout w = packed_window_layout(cfg_, tokens, {});
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size;
  const Tensor& head_slot = cfg_.tie_word_embeddings ? embed_tokens_.weight : lm_head_.weight;
  LossParts loss;
  train_pass(tokens, w, grads, [&](const float* h, float* dh) {
    Buf xf = zeros(T * d), dxf = dh ? zeros(T * d) : Buf{};
    norm_.forward(xf.data(), h, T);
    loss.main = ops::cross_entropy_loss(xf.data(), nn::weight_ref(lm_head_.weight), w.targets.data(), T,
                                        dh ? dxf.data() : nullptr, dh ? grads->of(head_slot) : nullptr, 1.0f);
    if (dh) ops::rmsnorm_backward(dh, grads->of(norm_.weight), dxf.data(), h, norm_.weight.f32(), T, d, norm_.eps);
  });
  loss.total = loss.main;
  return loss;
}

}  // namespace baleine
