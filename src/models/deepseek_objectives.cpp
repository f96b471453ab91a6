// models/deepseek_objectives.cpp — the training pass with an arbitrary per-token objective over packed samples.
// Same forward/backward as loss_and_grad (deepseek_train.cpp) without MTP; the objective sees the full logits and
// returns dL/dlogits, so SFT masks, GRPO surrogates and distillation KLs all reuse one backward.
#include <cstring>

#include "models/deepseek.h"
#include "models/train_blocks.h"
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
  if (segments_.empty()) {  // the window of loss_and_grad: args as the caller set them
    ops::attention_causal(out, q, k, v, args);
    return;
  }
  packed_attention(out, q, k, v, args, segments_, T);
}

void DeepSeekModel::segmented_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                                 const float* k, const float* v, ops::AttentionArgs args,
                                                 int64_t T) const {
  if (segments_.empty()) {
    ops::attention_causal_backward(dq, dk, dv, dout, q, k, v, args);
    return;
  }
  packed_attention_backward(dq, dk, dv, dout, q, k, v, args, segments_, T);
}

double DeepSeekModel::objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                                         const LogitObjective& objective, nn::Gradients* grads) {
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size, V = cfg_.vocab_size;
  BALEINE_CHECK(trainable(), "training '{}' (DeepSeek Sparse Attention) is not implemented yet", cfg_.model_type);
  PackedWindowLayout layout = packed_window_layout(cfg_, tokens, sample_lengths);
  const auto& positions = layout.positions;
  const auto& targets = layout.targets;
  const auto& sample_of = layout.sample_of;
  const auto& lengths = layout.lengths;
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
