// models/dense.h — dense GQA transformers (qwen2, llama): the R1-Distill student family.
// defines: DenseModel
#pragma once
#include <vector>

#include "core/arena.h"
#include "models/model.h"
#include "ops/ops.h"

namespace baleine {

class DenseModel final : public CausalLM {
 public:
  explicit DenseModel(const ModelConfig& config);

  const ModelConfig& config() const override { return cfg_; }
  std::unique_ptr<Sequence> new_sequence(int64_t max_tokens) const override;
  Tensor forward(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) override;
  Tensor hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) override;
  void for_each_param(const nn::ParamVisitor& v) override;
  void prepare() override;  // ties lm_head to the embedding when tie_word_embeddings

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
  void block_forward(const Block& b, float* x, int64_t T, const int32_t* positions, float* k_cache, float* v_cache,
                     int64_t p0);

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
