// models/deepseek.h — DeepSeek-V2 / V3 / V3.2: Multi-head Latent Attention, DeepSeekMoE, Multi-Token Prediction,
// DeepSeek Sparse Attention (V3.2's lightning indexer, deepseek_dsa.cpp).
// defines: DeepSeekModel
#pragma once
#include <functional>
#include <vector>

#include "core/arena.h"
#include "models/model.h"
#include "nn/grads.h"
#include "ops/ops.h"

namespace baleine {

class DeepSeekModel final : public CausalLM {
 public:
  explicit DeepSeekModel(const ModelConfig& config);

  const ModelConfig& config() const override { return cfg_; }
  std::shared_ptr<KvPool> new_kv_pool(int64_t max_blocks, int64_t block_size = 16,
                                      ops::KvDType dtype = ops::KvDType::F32) const override;
  Tensor forward_batch(std::span<const BatchItem> items, MlaMode mode = MlaMode::Absorbed,
                       Tensor* hidden = nullptr) override;
  Tensor hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) override;
  void final_norm(float* x, int64_t rows) const override { norm_.forward(x, x, rows); }
  Tensor mtp_logits(std::span<const int32_t> tokens, MlaMode mode) override;
  bool has_mtp() const override { return has_mtp_; }
  std::shared_ptr<KvPool> new_mtp_kv_pool(int64_t max_blocks, int64_t block_size = 16,
                                          ops::KvDType dtype = ops::KvDType::F32) const override;
  Tensor mtp_step(Sequence& seq, const float* hidden, std::span<const int32_t> next_tokens, bool all_rows = false,
                  MlaMode mode = MlaMode::Absorbed) override;
  void for_each_param(const nn::ParamVisitor& v) override;
  // Derives the absorbed-attention weights from kv_b_proj and checks MTP completeness; call after loading.
  void prepare() override;

  // MLA, one layer. Shapes use T = new tokens, S = cached positions, H = heads, R = kv_lora_rank,
  // Dn = qk_nope_head_dim, Dr = qk_rope_head_dim, Dv = v_head_dim.
  struct Attention {
    bool q_compressed = false;
    nn::Linear q_proj;                 // [H·(Dn+Dr), d]     (no query compression, V2-Lite)
    nn::Linear q_a_proj;               // [q_lora_rank, d]   c^Q = W^DQ h
    nn::RMSNorm q_a_layernorm;         // [q_lora_rank]
    nn::Linear q_b_proj;               // [H·(Dn+Dr), q_lora_rank]
    nn::Linear kv_a_proj_with_mqa;     // [R + Dr, d]        [c^KV ‖ k_pe]
    nn::RMSNorm kv_a_layernorm;        // [R]                on c^KV only, never on k_pe
    nn::Linear kv_b_proj;              // [H·(Dn+Dv), R]     per head rows [W^UK_h ; W^UV_h]
    nn::Linear o_proj;                 // [d, H·Dv]
    Tensor w_uk_t;                     // [H, R, Dn] f32: W^UK_hᵀ, derived by prepare() for the absorbed form
    // V3.2 lightning indexer (Hi = index_n_heads, Di = index_head_dim): scores earlier positions per query.
    bool has_indexer = false;
    nn::Linear idx_wq_b;               // [Hi·Di, q_lora_rank]  indexer queries from the query latent c^Q
    nn::Linear idx_wk;                 // [Di, d]               one indexer key per token
    nn::LayerNorm idx_k_norm;          // [Di]                  weight + bias
    nn::Linear idx_weights_proj;       // [Hi, d]               per-head weights of the score
  };
  struct MoE {
    nn::Linear gate;                   // [E, d] router
    Tensor e_score_correction_bias;    // [E] f32, selection only (V3 noaux_tc)
    std::vector<nn::SwiGLU> experts;   // E routed experts of width moe_intermediate_size
    nn::SwiGLU shared_experts;         // one MLP of width n_shared·moe_intermediate_size
    bool has_shared = false;
  };
  struct Block {
    nn::RMSNorm input_layernorm, post_attention_layernorm;
    Attention attn;
    bool is_moe = false;
    nn::SwiGLU mlp;                    // dense layers (< first_k_dense_replace)
    MoE moe;
  };
  struct Mtp {                         // stored as layer index num_hidden_layers (+k)
    nn::RMSNorm enorm, hnorm;
    nn::Linear eh_proj;                // [d, 2d] over [enorm(emb(t_{i+1})) ‖ hnorm(h_i)]
    Block block;
    nn::RMSNorm head_norm;             // shared_head.norm
    nn::Embedding embed;               // optional copy of the main embedding
    nn::Linear head;                   // optional copy of lm_head
    bool embed_shared = false, head_shared = false;  // absent from the checkpoint: the main ones are used
  };

  // Training: loss = mean next-token cross-entropy (+ mtp_lambda · MTP loss when the model has MTP), with
  // gradients of every parameter accumulated into `grads` (naive MLA, the training form). deepseek_train.cpp.
  using LossParts = baleine::LossParts;
  // Complementary sequence-wise balance loss (V3 eqs. 17–20): α Σ_i f_i P_i per MoE layer and sequence, added to
  // the loss (0, the default, turns it off).
  void set_sequence_balance_alpha(double alpha) { seq_balance_alpha_ = alpha; }
  LossParts loss_and_grad(std::span<const int32_t> tokens, nn::Gradients* grads, double mtp_lambda) override;

  // Per-token objectives (deepseek_objectives.cpp): SFT, GRPO and distillation drive the backward with their own
  // dL/dlogits. `tokens` holds one or more samples packed back to back, `sample_lengths` their lengths (empty: one
  // sample). Attention never crosses a sample boundary and positions restart at 0 in every sample, so a packed
  // window computes exactly what the samples would compute one by one. Row t of the logits predicts
  // targets[t] = tokens[t+1] when t+1 is in the same sample, else -1 (nothing). No MTP term.
  using ObjectiveInput = baleine::ObjectiveInput;
  using LogitObjective = baleine::LogitObjective;
  // Forward through the objective and, when grads is not null, backward accumulating into grads.
  double objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                            const LogitObjective& objective, nn::Gradients* grads) override;
  // V3.2's indexer has no training path yet (its warm-up and sparse training are issue 19 item 4).
  bool trainable() const override { return !cfg_.has_indexer(); }

  // Auxiliary-loss-free balancing (V3 §2.1.2): loss_and_grad counts how many tokens each expert of each MoE
  // layer received; after an optimizer step, b_i += γ·sign(mean load − load_i) nudges selection toward
  // under-loaded experts. expert_load()[layer] is empty for dense layers.
  const std::vector<std::vector<int64_t>>& expert_load() const { return expert_load_; }
  // The same counts, writable: data-parallel training sums them over ranks before update_balance_bias.
  std::vector<std::vector<int64_t>>& expert_load_counts() { return expert_load_; }
  void reset_expert_load();
  void update_balance_bias(double gamma);

  // Values per token and layer in the KV pool: the latent c^KV ‖ k_pe (R + Dr), then, for V3.2, the indexer key (Di)
  // — one paged row, so prefix caching, the disk cache and batching carry the indexer keys with the latents.
  int64_t kv_row() const;

  // Routing of one token (exposed for tests): selected experts and their gate values.
  void route(const float* router_logits, int32_t* experts, float* gates, const MoE& moe) const;

 private:
  void init_block(Block& b, int64_t layer_index);
  void visit_block(Block& b, const std::string& prefix, const nn::ParamVisitor& v, bool optional);
  // x[N, d] += Block(x) for the N rows of a batched step; segment i's rows append to its sequence's latent
  // rows of pool layer `layer` (positions [p0, p0+T)).
  void block_forward(const Block& b, float* x, int64_t N, const int32_t* positions,
                     std::span<const BatchSegment> segs, int64_t layer, MlaMode mode);
  void attention_forward(const Attention& a, float* out, const float* x, int64_t N, const int32_t* positions,
                         std::span<const BatchSegment> segs, int64_t layer, MlaMode mode);
  void moe_forward(const MoE& m, float* out, const float* x, int64_t T);
  // DeepSeek Sparse Attention (deepseek_dsa.cpp). indexer_keys: the roped, normalised indexer key of each of the N
  // rows into keys (row stride ldk). indexer_select: for segment sg, the positions each query keeps — the
  // min(index_topk, visible) best by I(t,s) = Σ_j w_tj·ReLU(q_tj·k_s), ascending — into index [T, index_topk] and
  // count [T]; returns false (nothing written) when every query sees at most index_topk positions (dense equals
  // sparse there, and the scores need not be computed).
  void indexer_keys(const Attention& a, float* keys, int64_t ldk, const float* x, int64_t N, const int32_t* positions);
  bool indexer_select(const Attention& a, const float* x, const float* cq, const int32_t* positions,
                      const BatchSegment& sg, int64_t layer, int32_t* index, int32_t* count);
  // Main model without the head over a checked batch: hidden states before the final norm, [N, d] (arena
  // memory); fills `segs`. Sequence lengths advance.
  float* forward_hidden(std::span<const BatchItem> items, std::vector<BatchSegment>& segs, MlaMode mode);

  struct BlockActivations;  // deepseek_train.cpp
  void block_forward_train(const Block& b, float* x, int64_t T, const int32_t* positions, BlockActivations& act);
  void block_backward(const Block& b, float* dx, int64_t T, const int32_t* positions, const BlockActivations& act,
                      nn::Gradients& g);

  // Causal attention over the samples of a packed window (segments_ empty: one sample of all T tokens).
  void segmented_attention(float* out, const float* q, const float* k, const float* v, ops::AttentionArgs args,
                           int64_t T) const;
  void segmented_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                    const float* v, ops::AttentionArgs args, int64_t T) const;
  // Every block forward on x [T, d] (saving activations), then head(h, dh) with h the trunk output; when grads is
  // not null head fills dh = dL/dh and the blocks' backward runs, leaving dL/d(embedding output) in x.
  void trunk_train(float* x, int64_t T, const int32_t* positions, nn::Gradients* grads,
                   const std::function<void(const float* h, float* dh)>& head);
  std::vector<int64_t> segments_;  // sample lengths of the packed window being trained (empty: one sample)

  ModelConfig cfg_;
  ops::RopeTable rope_;
  ops::RopeLayout indexer_rope_layout_ = ops::RopeLayout::HalfSplit;
  float attn_scale_ = 1.0f;
  nn::Embedding embed_tokens_;
  std::vector<Block> layers_;
  nn::RMSNorm norm_;
  nn::Linear lm_head_;
  std::vector<Mtp> mtp_;
  bool has_mtp_ = false;
  double seq_balance_alpha_ = 0.0;
  std::vector<std::vector<int64_t>> expert_load_;  // [layer][expert] tokens routed since reset_expert_load
  Arena arena_;
};

}  // namespace baleine
