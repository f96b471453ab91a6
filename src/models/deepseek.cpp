// models/deepseek.cpp — DeepSeek-V2 / V3 / V3.2 forward pass, written to read like the papers:
//   V2 §2.1 / V3 §2.1.1 (MLA, eqs. 1–11), V3 §2.1.2 (DeepSeekMoE, eqs. 12–16), V3 §2.2 (MTP); V3.2's sparse
//   attention (the lightning indexer) is in deepseek_dsa.cpp.
// Both MLA forms live side by side in attention_forward and are tested equal.
#include "models/deepseek.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/check.h"
#include "core/threadpool.h"

namespace baleine {

ops::RopeTable make_rope_table(const ModelConfig& c, int dim) {
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeScalingType::Yarn:
      return ops::rope_table_yarn(dim, c.rope_theta, s.factor, s.original_max_position_embeddings, s.beta_fast,
                                  s.beta_slow, s.mscale, s.mscale_all_dim);
    case RopeScalingType::Llama3:
      return ops::rope_table_llama3(dim, c.rope_theta, s.factor, s.low_freq_factor, s.high_freq_factor,
                                    s.original_max_position_embeddings);
    case RopeScalingType::Linear: {
      ops::RopeTable t = ops::rope_table_default(dim, c.rope_theta);
      for (float& f : t.inv_freq) f = float(f / s.factor);
      return t;
    }
    case RopeScalingType::None: break;
  }
  return ops::rope_table_default(dim, c.rope_theta);
}

namespace {

// A row-slice view of a weight matrix: rows [row0, row0 + rows) of W (any dtype).
ops::WeightRef weight_rows(const Tensor& w, int64_t row0, int64_t rows) {
  ops::WeightRef r = nn::weight_ref(w);
  r.data = static_cast<const char*>(r.data) + dtype_nbytes(r.dtype, row0 * r.cols);  // block types: whole rows
  r.rows = rows;
  return r;
}

}  // namespace


DeepSeekModel::DeepSeekModel(const ModelConfig& config) : cfg_(config), arena_(1 << 22) {
  BALEINE_CHECK(cfg_.is_deepseek(), "not a DeepSeek config: {}", cfg_.model_type);
  rope_ = make_rope_table(cfg_, int(cfg_.qk_rope_head_dim));
  attn_scale_ = float(cfg_.attention_scale());
  indexer_rope_layout_ = cfg_.indexer_rope_interleave ? ops::RopeLayout::Interleaved : ops::RopeLayout::HalfSplit;
  embed_tokens_.init(cfg_.vocab_size, cfg_.hidden_size);
  layers_.resize(size_t(cfg_.num_hidden_layers));
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) init_block(layers_[size_t(l)], l);
  norm_.init(cfg_.hidden_size, cfg_.rms_norm_eps);
  lm_head_.init(cfg_.hidden_size, cfg_.vocab_size, false);
  mtp_.resize(size_t(cfg_.num_nextn_predict_layers));
  for (int64_t k = 0; k < cfg_.num_nextn_predict_layers; ++k) {
    Mtp& m = mtp_[size_t(k)];
    m.enorm.init(cfg_.hidden_size, cfg_.rms_norm_eps);
    m.hnorm.init(cfg_.hidden_size, cfg_.rms_norm_eps);
    m.eh_proj.init(2 * cfg_.hidden_size, cfg_.hidden_size, false);
    init_block(m.block, cfg_.num_hidden_layers + k);
    m.head_norm.init(cfg_.hidden_size, cfg_.rms_norm_eps);
    m.embed.init(cfg_.vocab_size, cfg_.hidden_size);
    m.head.init(cfg_.hidden_size, cfg_.vocab_size, false);
  }
  has_mtp_ = !mtp_.empty();
}

void DeepSeekModel::init_block(Block& b, int64_t layer) {
  const ModelConfig& c = cfg_;
  const int64_t d = c.hidden_size, H = c.num_attention_heads, R = c.kv_lora_rank;
  b.input_layernorm.init(d, c.rms_norm_eps);
  b.post_attention_layernorm.init(d, c.rms_norm_eps);
  Attention& a = b.attn;
  a.q_compressed = c.q_lora_rank > 0;
  if (a.q_compressed) {
    a.q_a_proj.init(d, c.q_lora_rank, false);
    a.q_a_layernorm.init(c.q_lora_rank, c.rms_norm_eps);
    a.q_b_proj.init(c.q_lora_rank, H * c.qk_head_dim(), false);
  } else {
    a.q_proj.init(d, H * c.qk_head_dim(), false);
  }
  a.kv_a_proj_with_mqa.init(d, R + c.qk_rope_head_dim, false);
  a.kv_a_layernorm.init(R, c.rms_norm_eps);
  a.kv_b_proj.init(R, H * (c.qk_nope_head_dim + c.v_head_dim), false);
  a.o_proj.init(H * c.v_head_dim, d, false);
  a.has_indexer = c.has_indexer();
  if (a.has_indexer) {
    a.idx_wq_b.init(c.q_lora_rank, c.index_n_heads * c.index_head_dim, false);
    a.idx_wk.init(d, c.index_head_dim, false);
    a.idx_k_norm.init(c.index_head_dim, 1e-6);  // DeepSeek's LayerNorm default (not rms_norm_eps)
    a.idx_weights_proj.init(d, c.index_n_heads, false);
  }
  // MTP blocks use the MoE structure of the main model's deep layers.
  b.is_moe = layer >= c.num_hidden_layers ? c.n_routed_experts > 0 : c.is_moe_layer(layer);
  if (b.is_moe) {
    b.moe.gate.init(d, c.n_routed_experts, false);
    b.moe.experts.resize(size_t(c.n_routed_experts));
    for (auto& e : b.moe.experts) e.init(d, c.moe_intermediate_size);
    b.moe.has_shared = c.n_shared_experts > 0;
    if (b.moe.has_shared) b.moe.shared_experts.init(d, c.n_shared_experts * c.moe_intermediate_size);
  } else {
    b.mlp.init(d, c.intermediate_size);
  }
}

void DeepSeekModel::visit_block(Block& b, const std::string& p, const nn::ParamVisitor& v, bool optional) {
  auto visit = [&](nn::Param& prm) { prm.optional = prm.optional || optional; v(prm); };
  b.input_layernorm.visit(p + "input_layernorm.weight", visit);
  Attention& a = b.attn;
  if (a.q_compressed) {
    a.q_a_proj.visit(p + "self_attn.q_a_proj", visit);
    a.q_a_layernorm.visit(p + "self_attn.q_a_layernorm.weight", visit);
    a.q_b_proj.visit(p + "self_attn.q_b_proj", visit);
  } else {
    a.q_proj.visit(p + "self_attn.q_proj", visit);
  }
  a.kv_a_proj_with_mqa.visit(p + "self_attn.kv_a_proj_with_mqa", visit);
  a.kv_a_layernorm.visit(p + "self_attn.kv_a_layernorm.weight", visit);
  a.kv_b_proj.visit(p + "self_attn.kv_b_proj", visit);
  a.o_proj.visit(p + "self_attn.o_proj", visit);
  if (a.has_indexer) {
    a.idx_wq_b.visit(p + "self_attn.indexer.wq_b", visit);
    a.idx_wk.visit(p + "self_attn.indexer.wk", visit);
    a.idx_k_norm.visit(p + "self_attn.indexer.k_norm", visit);
    a.idx_weights_proj.visit(p + "self_attn.indexer.weights_proj", visit);
  }
  b.post_attention_layernorm.visit(p + "post_attention_layernorm.weight", visit);
  if (b.is_moe) {
    b.moe.gate.visit(p + "mlp.gate", visit);
    if (cfg_.topk_method == TopkMethod::NoAuxTc) {
      nn::Param bias{p + "mlp.gate.e_score_correction_bias", {cfg_.n_routed_experts}, nn::ParamKind::Vector,
                     &b.moe.e_score_correction_bias, optional};
      v(bias);
    }
    for (size_t e = 0; e < b.moe.experts.size(); ++e)
      b.moe.experts[e].visit(p + "mlp.experts." + std::to_string(e), visit);
    if (b.moe.has_shared) b.moe.shared_experts.visit(p + "mlp.shared_experts", visit);
  } else {
    b.mlp.visit(p + "mlp", visit);
  }
}

void DeepSeekModel::for_each_param(const nn::ParamVisitor& v) {
  embed_tokens_.visit("model.embed_tokens.weight", v);
  for (size_t l = 0; l < layers_.size(); ++l) visit_block(layers_[l], "model.layers." + std::to_string(l) + ".", v, false);
  norm_.visit("model.norm.weight", v);
  if (!cfg_.tie_word_embeddings) lm_head_.visit("lm_head", v);
  // MTP tensors are optional as a group: many exported checkpoints drop layer num_hidden_layers.
  for (size_t k = 0; k < mtp_.size(); ++k) {
    Mtp& m = mtp_[k];
    std::string p = "model.layers." + std::to_string(cfg_.num_hidden_layers + int64_t(k)) + ".";
    auto opt = [&](nn::Param& prm) { prm.optional = true; v(prm); };
    m.enorm.visit(p + "enorm.weight", opt);
    m.hnorm.visit(p + "hnorm.weight", opt);
    m.eh_proj.visit(p + "eh_proj", opt);
    visit_block(m.block, p, v, true);
    m.head_norm.visit(p + "shared_head.norm.weight", opt);
    if (!m.embed_shared) m.embed.visit(p + "embed_tokens.weight", opt);
    if (!m.head_shared) m.head.visit(p + "shared_head.head", opt);
  }
}

void DeepSeekModel::prepare() {
  if (cfg_.tie_word_embeddings) lm_head_.weight = embed_tokens_.weight;
  auto derive_absorbed = [&](Attention& a) {
    // W^UK_h is rows [h·(Dn+Dv), h·(Dn+Dv)+Dn) of kv_b_proj, shape [Dn, R]; store its transpose [R, Dn] so
    // q̃_h = W^UK_hᵀ q_nope_h is an ordinary linear over q_nope_h.
    const int64_t H = cfg_.num_attention_heads, R = cfg_.kv_lora_rank, Dn = cfg_.qk_nope_head_dim;
    const int64_t Dv = cfg_.v_head_dim;
    Tensor kvb = a.kv_b_proj.weight.to_f32();  // [H·(Dn+Dv), R]
    a.w_uk_t = Tensor::empty(DType::F32, {H, R, Dn});
    const float* src = kvb.f32();
    float* dst = a.w_uk_t.f32();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < Dn; ++n)
        for (int64_t r = 0; r < R; ++r) dst[(h * R + r) * Dn + n] = src[(h * (Dn + Dv) + n) * R + r];
  };
  for (auto& b : layers_) derive_absorbed(b.attn);
  // MTP: all present (usable) or all absent (has_mtp() false); a partial module is a broken checkpoint.
  has_mtp_ = false;
  for (size_t k = 0; k < mtp_.size(); ++k) {
    Mtp& m = mtp_[k];
    int present = 0, total = 0;
    std::string missing;
    auto count = [&](nn::Param& p) {
      if (p.name.find("embed_tokens") != std::string::npos || p.name.find("shared_head.head") != std::string::npos) return;
      ++total;
      if (p.tensor->defined()) ++present; else if (missing.empty()) missing = p.name;
    };
    std::string p = "model.layers." + std::to_string(cfg_.num_hidden_layers + int64_t(k)) + ".";
    m.enorm.visit(p + "enorm.weight", count);
    m.hnorm.visit(p + "hnorm.weight", count);
    m.eh_proj.visit(p + "eh_proj", count);
    visit_block(m.block, p, count, true);
    m.head_norm.visit(p + "shared_head.norm.weight", count);
    BALEINE_CHECK(present == 0 || present == total, "MTP module {} is incomplete: tensor '{}' is missing", k, missing);
    if (present == 0) { mtp_.clear(); break; }
    derive_absorbed(m.block.attn);
    if (m.embed_shared || !m.embed.weight.defined()) m.embed.weight = embed_tokens_.weight, m.embed_shared = true;
    if (m.head_shared || !m.head.weight.defined()) m.head.weight = lm_head_.weight, m.head_shared = true;
    has_mtp_ = true;
  }
}

int64_t DeepSeekModel::kv_row() const {
  return cfg_.kv_lora_rank + cfg_.qk_rope_head_dim + (cfg_.has_indexer() ? cfg_.index_head_dim : 0);
}

std::shared_ptr<KvPool> DeepSeekModel::new_kv_pool(int64_t max_blocks, int64_t block_size, ops::KvDType dtype) const {
  // One row per token and layer: normalised c^KV ‖ roped k_pe (R + Dr values) ‖ indexer key (V3.2, Di values).
  return std::make_shared<KvPool>(cfg_.num_hidden_layers, kv_row(), block_size, max_blocks, dtype);
}

// ---------------------------------------------------------------------------------------------------------
// Multi-head Latent Attention
// ---------------------------------------------------------------------------------------------------------
void DeepSeekModel::attention_forward(const Attention& a, float* out, const float* x, int64_t N,
                                      const int32_t* positions, std::span<const BatchSegment> segs, int64_t layer,
                                      MlaMode mode) {
  const int64_t H = cfg_.num_attention_heads, R = cfg_.kv_lora_rank, Dn = cfg_.qk_nope_head_dim;
  const int64_t Dr = cfg_.qk_rope_head_dim, Dv = cfg_.v_head_dim, Dqk = Dn + Dr, C = R + Dr, W = kv_row();

  // Queries for all N rows: q = W^UQ RMSNorm(W^DQ h) (or W^Q h without compression), per head [q_nope ‖ q_pe].
  float* q = arena_.alloc<float>(size_t(N * H * Dqk));  // [N, H, Dn+Dr]
  float* cq = nullptr;                                  // [N, q_lora_rank] c^Q, which V3.2's indexer also reads
  if (a.q_compressed) {
    cq = arena_.alloc<float>(size_t(N * cfg_.q_lora_rank));
    a.q_a_proj.forward(cq, x, N);
    a.q_a_layernorm.forward(cq, cq, N);
    a.q_b_proj.forward(q, cq, N);
  } else {
    a.q_proj.forward(q, x, N);
  }
  ops::rope_apply(q + Dn, N, H, H * Dqk, Dqk, positions, rope_, ops::RopeLayout::Interleaved);

  // Keys/values: [c^KV ‖ k_pe] = W^DKV h; c^KV normalised, k_pe roped once (shared by all heads), then written
  // into each sequence's latent blocks (V3.2: with the token's indexer key after them).
  float* latent = arena_.alloc<float>(size_t(N * W));  // [N, R+Dr (+Di)]
  a.kv_a_proj_with_mqa.forward(latent, x, N, W);
  a.kv_a_layernorm.forward(latent, latent, N, W, W);
  ops::rope_apply(latent + R, N, 1, W, 0, positions, rope_, ops::RopeLayout::Interleaved);
  if (a.has_indexer) indexer_keys(a, latent + C, W, x, N, positions);
  for (const BatchSegment& sg : segs)
    for (int64_t t = 0; t < sg.T; ++t)
      sg.seq->write_row(layer, sg.p0 + t, latent + (sg.row0 + t) * W);

  // DeepSeek Sparse Attention: each query attends only to the positions its indexer keeps (per segment; none
  // when every query of the segment sees at most index_topk positions, where sparse equals dense).
  const int64_t K = cfg_.index_topk;
  std::vector<int32_t*> sel_index(segs.size(), nullptr), sel_count(segs.size(), nullptr);
  if (a.has_indexer)
    for (size_t i = 0; i < segs.size(); ++i) {
      int32_t* index = arena_.alloc<int32_t>(size_t(segs[i].T * K));  // [T, K]
      int32_t* count = arena_.alloc<int32_t>(size_t(segs[i].T));      // [T]
      if (indexer_select(a, x, cq, positions, segs[i], layer, index, count)) sel_index[i] = index, sel_count[i] = count;
    }

  float* o = arena_.alloc<float>(size_t(N * H * Dv));  // [N, H, Dv]
  ops::AttentionArgs args;
  args.n_heads = H;
  args.scale = attn_scale_;
  if (mode == MlaMode::Naive) {
    // Up-project every cached latent: [k_nope ‖ v] = W^UKV c^KV, then ordinary multi-head attention with
    // k = [k_nope ‖ k_pe] (192 dims for V3) and v (128), per sequence.
    for (size_t si = 0; si < segs.size(); ++si) {
      const BatchSegment& sg = segs[si];
      const int64_t S = sg.p0 + sg.T;
      float* cache = arena_.alloc<float>(size_t(S * W));  // [S, R+Dr (+Di)] this sequence's rows, gathered
      for (int64_t s = 0; s < S; ++s) sg.seq->read_row(layer, s, cache + s * W);
      float* kv = arena_.alloc<float>(size_t(S * H * (Dn + Dv)));  // [S, H, Dn+Dv]
      a.kv_b_proj.forward(kv, cache, S, 0, W);
      float* k = arena_.alloc<float>(size_t(S * H * Dqk));  // [S, H, Dn+Dr]
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < H; ++h) {
          std::memcpy(k + (s * H + h) * Dqk, kv + (s * H + h) * (Dn + Dv), size_t(Dn) * 4);
          std::memcpy(k + (s * H + h) * Dqk + Dn, cache + s * W + R, size_t(Dr) * 4);
        }
      args.n_q = sg.T, args.n_kv = S, args.kv_offset = sg.p0;
      args.n_kv_heads = H;
      args.qk_dim = Dqk;
      args.v_dim = Dv;
      args.q_stride = H * Dqk, args.q_head_stride = Dqk;
      args.k_stride = H * Dqk, args.k_head_stride = Dqk;
      args.v_stride = H * (Dn + Dv), args.v_head_stride = Dn + Dv;
      args.out_stride = H * Dv, args.out_head_stride = Dv;
      if (sel_index[si])
        ops::attention_sparse(o + sg.row0 * H * Dv, q + sg.row0 * H * Dqk, k, kv + Dn,
                              ops::SparseIndex{sel_index[si], sel_count[si], K}, args);
      else
        ops::attention_causal(o + sg.row0 * H * Dv, q + sg.row0 * H * Dqk, k, kv + Dn, args);
    }
  } else {
    // Absorbed: score_hj = (W^UK_hᵀ q_nope_h)·c_j + q_pe_h·k_pe_j — one shared "key" [c_j ‖ k_pe_j] of R+Dr
    // dims (MQA over the latent cache); the value is c_j itself, up-projected by W^UV_h after attention.
    // The query transform and W^UV run once over all N rows; attention reads each sequence's latent blocks.
    float* qa = arena_.alloc<float>(size_t(N * H * C));  // [N, H, R+Dr]
    for (int64_t h = 0; h < H; ++h) {
      ops::WeightRef w_uk_t{a.w_uk_t.f32() + h * R * Dn, DType::F32, R, Dn, 0};
      ops::linear(qa + h * C, q + h * Dqk, w_uk_t, nullptr, N, H * C, H * Dqk);
      for (int64_t t = 0; t < N; ++t)
        std::memcpy(qa + (t * H + h) * C + R, q + (t * H + h) * Dqk + Dn, size_t(Dr) * 4);
    }
    float* o_latent = arena_.alloc<float>(size_t(N * H * R));  // [N, H, R]
    args.n_kv_heads = 1;
    args.qk_dim = C;
    args.v_dim = R;
    args.q_stride = H * C, args.q_head_stride = C;
    args.k_head_stride = 0, args.v_head_stride = 0;
    args.out_stride = H * R, args.out_head_stride = R;
    std::vector<const void*> blocks;
    for (size_t si = 0; si < segs.size(); ++si) {
      const BatchSegment& sg = segs[si];
      sg.seq->layer_blocks(layer, blocks);
      ops::PagedKv kv{blocks.data(), sg.seq->pool().block_size(), W, 0, 0, sg.seq->pool().dtype()};
      args.n_q = sg.T, args.n_kv = sg.p0 + sg.T, args.kv_offset = sg.p0;
      if (sel_index[si])
        ops::attention_sparse_paged(o_latent + sg.row0 * H * R, qa + sg.row0 * H * C, kv,
                                    ops::SparseIndex{sel_index[si], sel_count[si], K}, args);
      else
        ops::attention_paged(o_latent + sg.row0 * H * R, qa + sg.row0 * H * C, kv, args);
    }
    for (int64_t h = 0; h < H; ++h)  // o_h = W^UV_h · o_latent_h
      ops::linear(o + h * Dv, o_latent + h * R, weight_rows(a.kv_b_proj.weight, h * (Dn + Dv) + Dn, Dv), nullptr, N,
                  H * Dv, H * R);
  }
  a.o_proj.forward(out, o, N);
}

// ---------------------------------------------------------------------------------------------------------
// DeepSeekMoE: shared experts + top-k routed experts, group-limited routing
// ---------------------------------------------------------------------------------------------------------
void DeepSeekModel::route(const float* logits, int32_t* experts, float* gates, const MoE& m) const {
  const int64_t E = cfg_.n_routed_experts, K = cfg_.num_experts_per_tok;
  std::vector<float> scores(static_cast<size_t>(E)), select(static_cast<size_t>(E));
  // Affinities in f32: sigmoid per expert (V3) or softmax over experts (V2).
  if (cfg_.scoring_func == ScoringFunc::Sigmoid) {
    for (int64_t e = 0; e < E; ++e) scores[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    std::copy(logits, logits + E, scores.begin());
    ops::reference::softmax_rows(scores.data(), 1, E, E);
  }
  // The correction bias steers selection only; gate values use the unbiased affinities.
  for (int64_t e = 0; e < E; ++e)
    select[size_t(e)] = scores[size_t(e)] + (cfg_.topk_method == TopkMethod::NoAuxTc ? m.e_score_correction_bias.f32()[e] : 0.0f);
  if (cfg_.n_group > 1 && cfg_.topk_method != TopkMethod::Greedy) {
    const int64_t G = cfg_.n_group, per = E / G;
    std::vector<float> group_score(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) {
      const float* s = select.data() + g * per;
      if (cfg_.topk_method == TopkMethod::NoAuxTc) {  // V3: sum of the two best in the group
        int32_t idx[2];
        float val[2];
        ops::reference::topk(s, per, 2, idx, val);
        group_score[size_t(g)] = val[0] + val[1];
      } else {  // V2: best in the group
        group_score[size_t(g)] = *std::max_element(s, s + per);
      }
    }
    std::vector<int32_t> keep(static_cast<size_t>(cfg_.topk_group));
    std::vector<float> keep_val(static_cast<size_t>(cfg_.topk_group));
    ops::reference::topk(group_score.data(), G, cfg_.topk_group, keep.data(), keep_val.data());
    std::vector<bool> allowed(static_cast<size_t>(G), false);
    for (int32_t g : keep) allowed[size_t(g)] = true;
    for (int64_t e = 0; e < E; ++e)
      if (!allowed[size_t(e / per)]) select[size_t(e)] = -std::numeric_limits<float>::infinity();
  }
  std::vector<float> top_val(static_cast<size_t>(K));
  ops::reference::topk(select.data(), E, K, experts, top_val.data());
  float sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += gates[k] = scores[size_t(experts[k])];
  const bool normalise = cfg_.norm_topk_prob && K > 1;
  for (int64_t k = 0; k < K; ++k)
    gates[k] = (normalise ? gates[k] / (sum + 1e-20f) : gates[k]) * float(cfg_.routed_scaling_factor);
}

void DeepSeekModel::moe_forward(const MoE& m, float* out, const float* x, int64_t T) {
  const int64_t d = cfg_.hidden_size, E = cfg_.n_routed_experts, K = cfg_.num_experts_per_tok;
  float* router = arena_.alloc<float>(size_t(T * E));  // [T, E]
  m.gate.forward(router, x, T);
  std::vector<int32_t> chosen(static_cast<size_t>(T * K));
  std::vector<float> gate_values(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) route(router + t * E, chosen.data() + t * K, gate_values.data() + t * K, m);

  if (m.has_shared) m.shared_experts.forward(out, x, T, arena_);
  else std::fill(out, out + T * d, 0.0f);

  // Group tokens by expert so each expert runs once on all its tokens (prefill touches each weight once):
  // expert e owns rows [first[e], first[e+1]) of the packed buffers, its tokens in increasing order.
  std::vector<int64_t> first(size_t(E + 1), 0);
  for (int64_t s = 0; s < T * K; ++s) ++first[size_t(chosen[size_t(s)]) + 1];
  std::partial_sum(first.begin(), first.end(), first.begin());
  std::vector<int64_t> row_of(size_t(T * K));   // packed row of slot (t, k)
  std::vector<int32_t> token_of(size_t(T * K));  // token of packed row
  std::vector<int64_t> fill(first.begin(), first.end() - 1);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t r = fill[size_t(chosen[size_t(t * K + k)])]++;
      row_of[size_t(t * K + k)] = r;
      token_of[size_t(r)] = int32_t(t);
    }
  const int64_t R = T * K, width = cfg_.moe_intermediate_size;
  float* xin = arena_.alloc<float>(size_t(R * d));              // [R, d] gathered tokens
  float* yout = arena_.alloc<float>(size_t(R * d));             // [R, d] expert outputs
  float* scratch = arena_.alloc<float>(size_t(R * 2 * width));  // [R, 2·width] gate/up activations
  auto run_expert = [&](int64_t e) {
    const int64_t r0 = first[size_t(e)], n = first[size_t(e) + 1] - r0;
    if (n == 0) return;
    for (int64_t r = r0; r < r0 + n; ++r) std::memcpy(xin + r * d, x + token_of[size_t(r)] * d, size_t(d) * 4);
    m.experts[size_t(e)].forward(yout + r0 * d, xin + r0 * d, n, scratch + r0 * 2 * width);
  };

  // Each expert's GEMMs have only tens of rows, too little to split across threads, so threads take whole
  // experts (split by row count). An expert with more than 1/P of the rows would unbalance that split: it runs
  // alone, split inside ops::linear. Every expert's output is the same whichever thread computes it (the kernels'
  // split depends only on the shapes), so results do not depend on the thread count.
  const int64_t P = ThreadPool::global().size();
  std::vector<int64_t> large;  // experts run one after the other, each split across all threads
  std::vector<int64_t> small, small_first{0};  // the rest, and the prefix sum of their rows
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = first[size_t(e) + 1] - first[size_t(e)];
    if (n == 0) continue;
    if (P == 1 || n * P > R) large.push_back(e);
    else small.push_back(e), small_first.push_back(small_first.back() + n);
  }
  for (int64_t e : large) run_expert(e);
  const int64_t small_rows = small_first.back();
  parallel_for(small.empty() ? 0 : P, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)  // piece p: the experts whose first row falls in its share of the rows
      for (size_t i = 0; i < small.size(); ++i)
        if (small_first[i] * P >= small_rows * p && small_first[i] * P < small_rows * (p + 1)) run_expert(small[i]);
  });

  // out[t] += gate·y of each chosen expert, in increasing expert order (a fixed order, whatever the threads).
  parallel_for(
      T,
      [&](int64_t t0, int64_t t1) {
        std::vector<int64_t> slots(static_cast<size_t>(K));
        for (int64_t t = t0; t < t1; ++t) {
          std::iota(slots.begin(), slots.end(), t * K);
          std::sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return chosen[size_t(a)] < chosen[size_t(b)]; });
          for (int64_t s : slots) ops::axpy(out + t * d, gate_values[size_t(s)], yout + row_of[size_t(s)] * d, d);
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K * d)));
}

// ---------------------------------------------------------------------------------------------------------
// Blocks, model, MTP
// ---------------------------------------------------------------------------------------------------------
void DeepSeekModel::block_forward(const Block& b, float* x, int64_t N, const int32_t* positions,
                                  std::span<const BatchSegment> segs, int64_t layer, MlaMode mode) {
  const int64_t d = cfg_.hidden_size;
  float* xn = arena_.alloc<float>(size_t(N * d));   // [N, d]
  float* tmp = arena_.alloc<float>(size_t(N * d));  // [N, d]
  b.input_layernorm.forward(xn, x, N);
  attention_forward(b.attn, tmp, xn, N, positions, segs, layer, mode);
  ops::add_inplace(x, tmp, N * d);  // h = x + Attn(RMSNorm(x))
  b.post_attention_layernorm.forward(xn, x, N);
  if (b.is_moe) moe_forward(b.moe, tmp, xn, N);  // tokens of all sequences grouped by expert
  else b.mlp.forward(tmp, xn, N, arena_);
  ops::add_inplace(x, tmp, N * d);  // x = h + FFN(RMSNorm(h))
}

float* DeepSeekModel::forward_hidden(std::span<const BatchItem> items, std::vector<BatchSegment>& segs, MlaMode mode) {
  const int64_t d = cfg_.hidden_size;
  check_batch(cfg_, items, cfg_.num_hidden_layers, kv_row());
  arena_.reset();
  segs.clear();
  int64_t N = 0;
  for (const BatchItem& it : items) {
    segs.push_back({it.seq, N, it.length(d), it.seq->length()});
    N += it.length(d);
  }
  float* x = arena_.alloc<float>(size_t(N * d));  // [N, d] residual stream
  int32_t* positions = arena_.alloc<int32_t>(size_t(N));
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].input_embeds.empty()) embed_tokens_.forward(x + segs[i].row0 * d, items[i].tokens.data(), segs[i].T);
    else std::memcpy(x + segs[i].row0 * d, items[i].input_embeds.data(), size_t(segs[i].T * d) * 4);
    std::iota(positions + segs[i].row0, positions + segs[i].row0 + segs[i].T, int32_t(segs[i].p0));
  }
  for (size_t l = 0; l < layers_.size(); ++l) block_forward(layers_[l], x, N, positions, segs, int64_t(l), mode);
  for (const BatchSegment& sg : segs) sg.seq->advance(sg.T);
  return x;
}

// Final norm and head over the rows the caller wants: all rows of items with all_logits, else the last.
Tensor DeepSeekModel::forward_batch(std::span<const BatchItem> items, MlaMode mode, Tensor* hidden) {
  const int64_t d = cfg_.hidden_size;
  std::vector<BatchSegment> segs;
  float* x = forward_hidden(items, segs, mode);
  if (hidden) {
    const int64_t N = segs.back().row0 + segs.back().T;
    *hidden = Tensor::empty(DType::F32, {N, d});
    std::memcpy(hidden->f32(), x, size_t(N * d) * 4);
  }
  int64_t rows = 0;
  for (const BatchItem& it : items) rows += it.logit_rows(d);
  if (rows == 0) return Tensor::empty(DType::F32, {0, cfg_.vocab_size});
  float* h = arena_.alloc<float>(size_t(rows * d));  // [rows, d]
  int64_t r = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t n = items[i].logit_rows(d), first = segs[i].T - n;
    std::memcpy(h + r * d, x + (segs[i].row0 + first) * d, size_t(n * d) * 4);
    r += n;
  }
  norm_.forward(h, h, rows);
  Tensor logits = Tensor::empty(DType::F32, {rows, cfg_.vocab_size});
  lm_head_.forward(logits.f32(), h, rows);
  return logits;
}

std::shared_ptr<KvPool> DeepSeekModel::new_mtp_kv_pool(int64_t max_blocks, int64_t block_size, ops::KvDType dtype) const {
  BALEINE_CHECK(has_mtp_, "this model has no MTP module");
  return std::make_shared<KvPool>(1, kv_row(), block_size, max_blocks, dtype);
}

Tensor DeepSeekModel::mtp_step(Sequence& seq, const float* h, std::span<const int32_t> next, bool all_rows,
                               MlaMode mode) {
  BALEINE_CHECK(has_mtp_, "this model has no MTP module");
  const int64_t n = int64_t(next.size()), d = cfg_.hidden_size, p0 = seq.length();
  BALEINE_CHECK(seq.pool().layers() == 1 && seq.pool().row() == kv_row(),
                "mtp_step needs a sequence in a pool from new_mtp_kv_pool");
  check_forward_input(cfg_, seq, next);
  BALEINE_CHECK(h != nullptr, "mtp_step: no hidden states");
  seq.reserve(p0 + n);
  arena_.reset();
  const Mtp& m = mtp_[0];
  // h'_i = M [RMSNorm(Emb(t_{i+1})) ‖ RMSNorm(h_i)], as in mtp_logits, at positions p0 ...
  float* cat = arena_.alloc<float>(size_t(n * 2 * d));  // [n, 2d]
  for (int64_t i = 0; i < n; ++i) m.embed.forward(cat + i * 2 * d, next.data() + i, 1);
  m.enorm.forward(cat, cat, n, 2 * d, 2 * d);
  m.hnorm.forward(cat + d, h, n, 2 * d, d);
  float* x = arena_.alloc<float>(size_t(n * d));  // [n, d]
  m.eh_proj.forward(x, cat, n);
  int32_t* positions = arena_.alloc<int32_t>(size_t(n));
  std::iota(positions, positions + n, int32_t(p0));
  const BatchSegment seg{&seq, 0, n, p0};
  block_forward(m.block, x, n, positions, std::span<const BatchSegment>(&seg, 1), 0, mode);
  seq.advance(n);
  const int64_t first = all_rows ? 0 : n - 1, rows = n - first;
  float* y = x + first * d;
  m.head_norm.forward(y, y, rows);
  Tensor logits = Tensor::empty(DType::F32, {rows, cfg_.vocab_size});
  m.head.forward(logits.f32(), y, rows);
  return logits;
}

// Final-normed hidden states (embeddings): the batched forward's residual stream through the last norm.
Tensor DeepSeekModel::hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) {
  BatchItem item{&seq, tokens, false};
  Tensor h;
  forward_batch(std::span<const BatchItem>(&item, 1), mode, &h);  // [T, d] before the final norm
  norm_.forward(h.f32(), h.f32(), h.dim(0));
  return h;
}

Tensor DeepSeekModel::mtp_logits(std::span<const int32_t> tokens, MlaMode mode) {
  BALEINE_CHECK(has_mtp_, "this model has no MTP module (num_nextn_predict_layers = {}, or its tensors are absent)",
                cfg_.num_nextn_predict_layers);
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size;
  BALEINE_CHECK(T >= 2, "MTP needs at least 2 tokens, got {}", T);
  auto seq = new_sequence(T);
  std::vector<BatchSegment> segs;
  BatchItem item{seq.get(), tokens, true};
  const float* h = forward_hidden(std::span<const BatchItem>(&item, 1), segs, mode);  // [T, d] before the final norm
  const int64_t n = T - 1;
  const Mtp& m = mtp_[0];
  // h'_i = M [RMSNorm(Emb(t_{i+1})) ‖ RMSNorm(h_i)] — embedding first, as the released weights expect.
  float* cat = arena_.alloc<float>(size_t(n * 2 * d));  // [n, 2d]
  for (int64_t i = 0; i < n; ++i) m.embed.forward(cat + i * 2 * d, tokens.data() + 1 + i, 1);
  m.enorm.forward(cat, cat, n, 2 * d, 2 * d);
  m.hnorm.forward(cat + d, h, n, 2 * d, d);
  float* x = arena_.alloc<float>(size_t(n * d));  // [n, d]
  m.eh_proj.forward(x, cat, n);
  int32_t* positions = arena_.alloc<int32_t>(size_t(n));
  std::iota(positions, positions + n, 0);
  // The MTP block's latents live in a private one-layer pool.
  Sequence mtp_seq(std::make_shared<KvPool>(1, kv_row(), 16, (n + 15) / 16), n);
  mtp_seq.reserve(n);
  const BatchSegment mtp_seg{&mtp_seq, 0, n, 0};
  block_forward(m.block, x, n, positions, std::span<const BatchSegment>(&mtp_seg, 1), 0, mode);
  m.head_norm.forward(x, x, n);
  Tensor logits = Tensor::empty(DType::F32, {n, cfg_.vocab_size});
  m.head.forward(logits.f32(), x, n);
  return logits;
}

}  // namespace baleine
