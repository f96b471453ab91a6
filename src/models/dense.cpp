// models/dense.cpp — qwen2 / llama: pre-norm blocks, grouped-query attention with half-split RoPE, SwiGLU.
#include "models/dense.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <numeric>

namespace baleine {

DenseModel::DenseModel(const ModelConfig& config) : cfg_(config), arena_(1 << 22) {
  BALEINE_CHECK(!cfg_.is_deepseek(), "not a dense config: {}", cfg_.model_type);
  const int64_t d = cfg_.hidden_size, H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  rope_ = make_rope_table(cfg_, int(D));
  attn_scale_ = float(cfg_.attention_scale());
  embed_tokens_.init(cfg_.vocab_size, d);
  layers_.resize(size_t(cfg_.num_hidden_layers));
  for (auto& b : layers_) {
    b.input_layernorm.init(d, cfg_.rms_norm_eps);
    b.post_attention_layernorm.init(d, cfg_.rms_norm_eps);
    b.q_proj.init(d, H * D, cfg_.attention_bias);
    b.k_proj.init(d, G * D, cfg_.attention_bias);
    b.v_proj.init(d, G * D, cfg_.attention_bias);
    b.o_proj.init(H * D, d, false);
    b.mlp.init(d, cfg_.intermediate_size);
  }
  norm_.init(d, cfg_.rms_norm_eps);
  lm_head_.init(d, cfg_.vocab_size, false);
}

void DenseModel::for_each_param(const nn::ParamVisitor& v) {
  embed_tokens_.visit("model.embed_tokens.weight", v);
  for (size_t l = 0; l < layers_.size(); ++l) {
    Block& b = layers_[l];
    std::string p = "model.layers." + std::to_string(l) + ".";
    b.input_layernorm.visit(p + "input_layernorm.weight", v);
    b.q_proj.visit(p + "self_attn.q_proj", v);
    b.k_proj.visit(p + "self_attn.k_proj", v);
    b.v_proj.visit(p + "self_attn.v_proj", v);
    b.o_proj.visit(p + "self_attn.o_proj", v);
    b.post_attention_layernorm.visit(p + "post_attention_layernorm.weight", v);
    b.mlp.visit(p + "mlp", v);
  }
  norm_.visit("model.norm.weight", v);
  if (!cfg_.tie_word_embeddings) lm_head_.visit("lm_head", v);
}

void DenseModel::prepare() {
  if (cfg_.tie_word_embeddings) lm_head_.weight = embed_tokens_.weight;
}

std::shared_ptr<KvPool> DenseModel::new_kv_pool(int64_t max_blocks, int64_t block_size, ops::KvDType dtype) const {
  return std::make_shared<KvPool>(cfg_.num_hidden_layers, 2 * cfg_.num_key_value_heads * cfg_.head_dim, block_size,
                                  max_blocks, dtype);
}

void DenseModel::block_forward(const Block& b, float* x, int64_t N, const int32_t* positions,
                               std::span<const BatchSegment> segs, int64_t layer) {
  const int64_t d = cfg_.hidden_size, H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  float* xn = arena_.alloc<float>(size_t(N * d));     // [N, d]
  float* q = arena_.alloc<float>(size_t(N * H * D));  // [N, H, D]
  float* kv = arena_.alloc<float>(size_t(N * 2 * G * D));  // [N, k ‖ v] rows as the cache stores them
  float* o = arena_.alloc<float>(size_t(N * H * D));  // [N, H, D]
  float* tmp = arena_.alloc<float>(size_t(N * d));    // [N, d]
  b.input_layernorm.forward(xn, x, N);
  b.q_proj.forward(q, xn, N);
  b.k_proj.forward(kv, xn, N, 2 * G * D);
  b.v_proj.forward(kv + G * D, xn, N, 2 * G * D);
  ops::rope_apply(q, N, H, H * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  ops::rope_apply(kv, N, G, 2 * G * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  for (const BatchSegment& sg : segs)
    for (int64_t t = 0; t < sg.T; ++t)
      sg.seq->write_row(layer, sg.p0 + t, kv + (sg.row0 + t) * 2 * G * D);
  ops::AttentionArgs a;
  a.n_heads = H, a.n_kv_heads = G, a.qk_dim = D, a.v_dim = D;
  a.q_stride = H * D, a.q_head_stride = D;
  a.k_head_stride = D, a.v_head_stride = D;
  a.out_stride = H * D, a.out_head_stride = D;
  a.scale = attn_scale_;
  std::vector<const void*> blocks;
  for (const BatchSegment& sg : segs) {
    sg.seq->layer_blocks(layer, blocks);
    ops::PagedKv cache{blocks.data(), sg.seq->pool().block_size(), 2 * G * D, 0, G * D, sg.seq->pool().dtype()};
    a.n_q = sg.T, a.n_kv = sg.p0 + sg.T, a.kv_offset = sg.p0;
    ops::attention_paged(o + sg.row0 * H * D, q + sg.row0 * H * D, cache, a);
  }
  b.o_proj.forward(tmp, o, N);
  ops::add_inplace(x, tmp, N * d);
  b.post_attention_layernorm.forward(xn, x, N);
  b.mlp.forward(tmp, xn, N, arena_);
  ops::add_inplace(x, tmp, N * d);
}

// Final-normed hidden states (embeddings): the batched forward's residual stream through the last norm.
Tensor DenseModel::hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) {
  BatchItem item{&seq, tokens, false};
  Tensor h;
  forward_batch(std::span<const BatchItem>(&item, 1), mode, &h);  // [T, d] before the final norm
  norm_.forward(h.f32(), h.f32(), h.dim(0));
  return h;
}

Tensor DenseModel::forward_batch(std::span<const BatchItem> items, MlaMode, Tensor* hidden) {
  const int64_t d = cfg_.hidden_size;
  check_batch(cfg_, items, cfg_.num_hidden_layers, 2 * cfg_.num_key_value_heads * cfg_.head_dim);
  arena_.reset();
  std::vector<BatchSegment> segs;
  int64_t N = 0;
  for (const BatchItem& it : items) {
    segs.push_back({it.seq, N, it.length(d), it.seq->length()});
    N += it.length(d);
  }
  float* x = arena_.alloc<float>(size_t(N * d));  // [N, d]
  int32_t* positions = arena_.alloc<int32_t>(size_t(N));
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].input_embeds.empty()) embed_tokens_.forward(x + segs[i].row0 * d, items[i].tokens.data(), segs[i].T);
    else std::memcpy(x + segs[i].row0 * d, items[i].input_embeds.data(), size_t(segs[i].T * d) * 4);
    std::iota(positions + segs[i].row0, positions + segs[i].row0 + segs[i].T, int32_t(segs[i].p0));
  }
  for (size_t l = 0; l < layers_.size(); ++l) block_forward(layers_[l], x, N, positions, segs, int64_t(l));
  for (const BatchSegment& sg : segs) sg.seq->advance(sg.T);
  if (hidden) {
    *hidden = Tensor::empty(DType::F32, {N, d});
    std::memcpy(hidden->f32(), x, size_t(N * d) * 4);
  }
  int64_t rows = 0;
  for (const BatchItem& it : items) rows += it.logit_rows(d);
  float* h = arena_.alloc<float>(size_t(std::max<int64_t>(rows, 1) * d));  // [rows, d] the rows whose logits are wanted
  int64_t r = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t n = items[i].logit_rows(d), first = segs[i].T - n;
    std::memcpy(h + r * d, x + (segs[i].row0 + first) * d, size_t(n * d) * 4);
    r += n;
  }
  if (rows == 0) return Tensor::empty(DType::F32, {0, cfg_.vocab_size});
  norm_.forward(h, h, rows);
  Tensor logits = Tensor::empty(DType::F32, {rows, cfg_.vocab_size});
  lm_head_.forward(logits.f32(), h, rows);
  return logits;
}

}  // namespace baleine
