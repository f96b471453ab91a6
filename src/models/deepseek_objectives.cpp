// models/deepseek_objectives.cpp — the training pass with an arbitrary per-token objective over packed samples.
// Same forward/backward as loss_and_grad (deepseek_train.cpp) without MTP; the objective sees the full logits and
// returns dL/dlogits, so SFT masks, GRPO surrogates and distillation KLs all reuse one backward.
#include <cstring>

#include "models/deepseek.h"
#include "ops/grad.h"

namespace baleine {

namespace {
using Buf = std::vector<float>;
Buf zeros(int64_t n) { return Buf(static_cast<size_t>(n), 0.0f); }

// Clears the packed-window segments when the pass ends, even by an exception.
struct SegmentsGuard {
  std::vector<int64_t>& s;
  ~SegmentsGuard() { s.clear(); }
};
}  // namespace

void DeepSeekModel::segmented_attention(float* out, const float* q, const float* k, const float* v,
                                        ops::AttentionArgs args, int64_t T) const {
  if (segments_.empty()) {
    ops::attention_causal(out, q, k, v, args);
    return;
  }
  int64_t start = 0;
  for (int64_t len : segments_) {
    args.n_q = args.n_kv = len;
    ops::attention_causal(out + start * args.out_stride, q + start * args.q_stride, k + start * args.k_stride,
                          v + start * args.v_stride, args);
    start += len;
  }
  BALEINE_ASSERT(start == T);
}

void DeepSeekModel::segmented_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                                 const float* k, const float* v, ops::AttentionArgs args,
                                                 int64_t T) const {
  if (segments_.empty()) {
    ops::attention_causal_backward(dq, dk, dv, dout, q, k, v, args);
    return;
  }
  int64_t start = 0;
  for (int64_t len : segments_) {
    args.n_q = args.n_kv = len;
    ops::attention_causal_backward(dq + start * args.q_stride, dk + start * args.k_stride, dv + start * args.v_stride,
                                   dout + start * args.out_stride, q + start * args.q_stride,
                                   k + start * args.k_stride, v + start * args.v_stride, args);
    start += len;
  }
  BALEINE_ASSERT(start == T);
}

double DeepSeekModel::objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                                         const LogitObjective& objective, nn::Gradients* grads) {
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size, V = cfg_.vocab_size;
  BALEINE_CHECK(T >= 1, "need at least 1 token, got {}", T);
  for (int32_t t : tokens)
    BALEINE_CHECK(t >= 0 && t < cfg_.vocab_size, "token id {} is outside the vocabulary [0, {})", t, cfg_.vocab_size);
  std::vector<int64_t> lengths(sample_lengths.begin(), sample_lengths.end());
  if (lengths.empty()) lengths.push_back(T);
  int64_t total = 0;
  for (int64_t len : lengths) {
    BALEINE_CHECK(len >= 1, "a packed sample has length {}", len);
    BALEINE_CHECK(len <= cfg_.max_position_embeddings, "a sample of {} tokens exceeds the context of {}", len,
                  cfg_.max_position_embeddings);
    total += len;
  }
  BALEINE_CHECK(total == T, "sample lengths add up to {}, the window has {} tokens", total, T);
  // Positions restart in every sample; a row's target is the next token of the same sample.
  std::vector<int32_t> positions(static_cast<size_t>(T)), targets(static_cast<size_t>(T), -1);
  std::vector<int64_t> sample_of(static_cast<size_t>(T));
  int64_t start = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int64_t i = 0; i < lengths[s]; ++i) {
      positions[size_t(start + i)] = int32_t(i);
      sample_of[size_t(start + i)] = int64_t(s);
      if (i + 1 < lengths[s]) targets[size_t(start + i)] = tokens[size_t(start + i + 1)];
    }
    start += lengths[s];
  }
  if (lengths.size() > 1) segments_ = lengths;
  SegmentsGuard guard{segments_};
  const Tensor& head_slot = cfg_.tie_word_embeddings ? embed_tokens_.weight : lm_head_.weight;
  if (expert_load_.size() != layers_.size()) reset_expert_load();

  // ---- forward and backward: embedding, the trunk, then the head (final norm, logits, objective) in its callback
  Buf x = zeros(T * d);
  embed_tokens_.forward(x.data(), tokens.data(), T);
  double value = 0;
  trunk_train(x.data(), T, positions.data(), grads, [&](const float* h, float* dh) {
    Buf xf = zeros(T * d);
    norm_.forward(xf.data(), h, T);
    Buf logits = zeros(T * V);
    lm_head_.forward(logits.data(), xf.data(), T);
    ObjectiveInput in{logits.data(), targets, sample_of, T, V};
    Buf dlogits = dh ? zeros(T * V) : Buf{};
    value = objective(in, dh ? dlogits.data() : nullptr);
    if (!dh) return;
    Buf dxf = zeros(T * d);
    ops::linear_backward(dxf.data(), grads->of(head_slot), nullptr, dlogits.data(), xf.data(),
                         nn::weight_ref(lm_head_.weight), T);
    ops::rmsnorm_backward(dh, grads->of(norm_.weight), dxf.data(), h, norm_.weight.f32(), T, d, norm_.eps);
  });
  if (grads) ops::embedding_backward(grads->of(embed_tokens_.weight), x.data(), tokens.data(), T, d);
  return value;
}

}  // namespace baleine
