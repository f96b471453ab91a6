// models/dense.h — dense GQA transformers (qwen2, llama): the R1-Distill student family.
// defines: DenseModel
#pragma once
#include <functional>
#include <vector>

#include "core/arena.h"
#include "models/model.h"
#include "ops/ops.h"

namespace baleine {

class DenseModel final : public CausalLM {
 public:
  explicit DenseModel(const ModelConfig& config);

  const ModelConfig& config() const override { return cfg_; }
  // Pool rows are [k ‖ v] per token and layer (2·G·D floats, keys already roped).
  std::shared_ptr<KvPool> new_kv_pool(int64_t max_blocks, int64_t block_size = 16,
                                      ops::KvDType dtype = ops::KvDType::F32) const override;
  Tensor forward_batch(std::span<const BatchItem> items, MlaMode mode = MlaMode::Absorbed,
                       Tensor* hidden = nullptr) override;
  Tensor hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) override;
  void final_norm(float* x, int64_t rows) const override { norm_.forward(x, x, rows); }
  void for_each_param(const nn::ParamVisitor& v) override;
  void prepare() override;  // ties lm_head to the embedding when tie_word_embeddings
  // Training (dense_train.cpp): forward with saved activations, the objective, backward (CausalLM's contract).
  double objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                            const LogitObjective& objective, nn::Gradients* grads) override;
  bool trainable() const override { return true; }
  LossParts loss_and_grad(std::span<const int32_t> tokens, nn::Gradients* grads, double mtp_lambda) override;

  // Shapes: T new tokens, H query heads, G kv heads, D head_dim.
  struct Block {
    nn::RMSNorm input_layernorm, post_attention_layernorm;
    nn::Linear q_proj;  // [H·D, d] (+ bias for qwen2)
    nn::Linear k_proj;  // [G·D, d]
    nn::Linear v_proj;  // [G·D, d]
    nn::Linear o_proj;  // [d, H·D]
    nn::SwiGLU mlp;
  };

 private:
  // x[N, d] += Block(x) over the N rows of a batched step; keys/values go to each segment's blocks.
  void block_forward(const Block& b, float* x, int64_t N, const int32_t* positions,
                     std::span<const BatchSegment> segs, int64_t layer);

  struct BlockActivations;  // dense_train.cpp
  // x[T, d] += Block(x) over a packed window (samples `lengths`), saving what the backward needs.
  void block_forward_train(const Block& b, float* x, int64_t T, const int32_t* positions,
                           std::span<const int64_t> lengths, BlockActivations& a) const;
  // dx: dL/d(block output) in, dL/d(block input) out; parameter gradients accumulate into g.
  void block_backward(const Block& b, float* dx, int64_t T, const int32_t* positions, std::span<const int64_t> lengths,
                      const BlockActivations& a, nn::Gradients& g) const;
  ops::AttentionArgs attention_args() const;
  // Embedding, every block forward with saved activations, `head` (final norm to loss; writes dL/dh when dh is not
  // null), then every block backward and the embedding's.
  void train_pass(std::span<const int32_t> tokens, const PackedWindowLayout& w, nn::Gradients* grads,
                  const std::function<void(const float* h, float* dh)>& head);  // the training layout: q [T, H, D], k and v [T, G, D], out [T, H, D]

  ModelConfig cfg_;
  ops::RopeTable rope_;
  float attn_scale_ = 1.0f;
  nn::Embedding embed_tokens_;
  std::vector<Block> layers_;
  nn::RMSNorm norm_;
  nn::Linear lm_head_;
  Arena arena_;
};

}  // namespace baleine
