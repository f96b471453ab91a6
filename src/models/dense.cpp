// models/dense.cpp — qwen2 / llama: pre-norm blocks, grouped-query attention with half-split RoPE, SwiGLU.
#include "models/dense.h"

#include <cmath>
#include <cstring>
#include <numeric>

namespace baleine {

namespace {
struct DenseSequence final : Sequence {
  std::vector<Tensor> k, v;  // per layer [capacity, G, D], keys already roped
};
}  // namespace

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

std::unique_ptr<Sequence> DenseModel::new_sequence(int64_t max_tokens) const {
  BALEINE_CHECK(max_tokens > 0, "sequence capacity must be positive, got {}", max_tokens);
  BALEINE_CHECK(max_tokens <= cfg_.max_position_embeddings, "{} tokens exceed the model context of {}", max_tokens,
                cfg_.max_position_embeddings);
  auto s = std::make_unique<DenseSequence>();
  s->capacity_ = max_tokens;
  const int64_t G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    s->k.push_back(Tensor::empty(DType::F32, {max_tokens, G, D}));
    s->v.push_back(Tensor::empty(DType::F32, {max_tokens, G, D}));
  }
  return s;
}

void DenseModel::block_forward(const Block& b, float* x, int64_t T, const int32_t* positions, float* k_cache,
                               float* v_cache, int64_t p0) {
  const int64_t d = cfg_.hidden_size, H = cfg_.num_attention_heads, G = cfg_.num_key_value_heads, D = cfg_.head_dim;
  float* xn = arena_.alloc<float>(size_t(T * d));     // [T, d]
  float* q = arena_.alloc<float>(size_t(T * H * D));  // [T, H, D]
  float* o = arena_.alloc<float>(size_t(T * H * D));  // [T, H, D]
  float* tmp = arena_.alloc<float>(size_t(T * d));    // [T, d]
  b.input_layernorm.forward(xn, x, T);
  b.q_proj.forward(q, xn, T);
  b.k_proj.forward(k_cache + p0 * G * D, xn, T);  // straight into the cache
  b.v_proj.forward(v_cache + p0 * G * D, xn, T);
  ops::rope_apply(q, T, H, H * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  ops::rope_apply(k_cache + p0 * G * D, T, G, G * D, D, positions, rope_, ops::RopeLayout::HalfSplit);
  ops::AttentionArgs a;
  a.n_q = T, a.n_kv = p0 + T, a.n_heads = H, a.n_kv_heads = G, a.qk_dim = D, a.v_dim = D;
  a.q_stride = H * D, a.q_head_stride = D;
  a.k_stride = G * D, a.k_head_stride = D;
  a.v_stride = G * D, a.v_head_stride = D;
  a.out_stride = H * D, a.out_head_stride = D;
  a.kv_offset = p0;
  a.scale = attn_scale_;
  ops::attention_causal(o, q, k_cache, v_cache, a);
  b.o_proj.forward(tmp, o, T);
  ops::add_inplace(x, tmp, T * d);
  b.post_attention_layernorm.forward(xn, x, T);
  b.mlp.forward(tmp, xn, T, arena_);
  ops::add_inplace(x, tmp, T * d);
}

Tensor DenseModel::hidden_states(Sequence& s, std::span<const int32_t> tokens, MlaMode) {
  auto& seq = dynamic_cast<DenseSequence&>(s);
  const int64_t T = int64_t(tokens.size()), p0 = seq.length_, d = cfg_.hidden_size;
  check_forward_input(cfg_, seq, tokens);
  arena_.reset();
  float* x = arena_.alloc<float>(size_t(T * d));  // [T, d]
  embed_tokens_.forward(x, tokens.data(), T);
  int32_t* positions = arena_.alloc<int32_t>(size_t(T));
  std::iota(positions, positions + T, int32_t(p0));
  for (size_t l = 0; l < layers_.size(); ++l)
    block_forward(layers_[l], x, T, positions, seq.k[l].f32(), seq.v[l].f32(), p0);
  seq.length_ += T;
  Tensor h = Tensor::empty(DType::F32, {T, d});
  norm_.forward(h.f32(), x, T);
  return h;
}

Tensor DenseModel::forward(Sequence& s, std::span<const int32_t> tokens, MlaMode) {
  auto& seq = dynamic_cast<DenseSequence&>(s);
  const int64_t T = int64_t(tokens.size()), p0 = seq.length_, d = cfg_.hidden_size;
  check_forward_input(cfg_, seq, tokens);
  arena_.reset();
  float* x = arena_.alloc<float>(size_t(T * d));  // [T, d]
  embed_tokens_.forward(x, tokens.data(), T);
  int32_t* positions = arena_.alloc<int32_t>(size_t(T));
  std::iota(positions, positions + T, int32_t(p0));
  for (size_t l = 0; l < layers_.size(); ++l)
    block_forward(layers_[l], x, T, positions, seq.k[l].f32(), seq.v[l].f32(), p0);
  seq.length_ += T;
  norm_.forward(x, x, T);
  Tensor logits = Tensor::empty(DType::F32, {T, cfg_.vocab_size});
  lm_head_.forward(logits.f32(), x, T);
  return logits;
}

}  // namespace baleine
