// models/deepseek_train.cpp — DeepSeek training pass: each block's forward (saving what backward needs) and its
// backward side by side; the model's backward walks the forward list in reverse. Naive MLA is the training form.
// Selection of experts is not differentiable; gradients flow through the gate values of the chosen experts.
// Memory: what is cheap to recompute is not saved. Backward recomputes the RMSNorm outputs from their saved
// inputs, SwiGLU's silu(g)⊙u from g and u, and MLA's up-projections (k_nope, v = kv_b_proj(c^KV)) from the
// saved latent; the recomputation runs the same kernels on the same inputs, so gradients are bit-identical.
#include <cmath>
#include <cstring>
#include <numeric>

#include "models/deepseek.h"
#include "models/train_blocks.h"
#include "ops/grad.h"

namespace baleine {

namespace {
using Buf = std::vector<float>;
Buf zeros(int64_t n) { return Buf(static_cast<size_t>(n), 0.0f); }

// MLA's key/value side from the kv_a output: latent = [RMSNorm(c^KV) ‖ RoPE(k_pe)] [T, R+Dr], the
// up-projection kv = kv_b_proj(c^KV) [T, H, Dn+Dv] and k = [k_nope ‖ k_pe] [T, H, Dn+Dr]. Run by the forward
// and again by the backward (which saves only kv_raw).
struct MlaKv {
  Buf latent, kv, k;
};
MlaKv mla_kv(const ModelConfig& c, const DeepSeekModel::Attention& at, const ops::RopeTable& rope, const Buf& kv_raw,
             int64_t T, const int32_t* positions) {
  const int64_t H = c.num_attention_heads, R = c.kv_lora_rank, Dn = c.qk_nope_head_dim;
  const int64_t Dr = c.qk_rope_head_dim, Dv = c.v_head_dim, Dqk = Dn + Dr, C = R + Dr;
  MlaKv m;
  m.latent = kv_raw;
  at.kv_a_layernorm.forward(m.latent.data(), kv_raw.data(), T, C, C);
  ops::rope_apply(m.latent.data() + R, T, 1, C, 0, positions, rope, ops::RopeLayout::Interleaved);
  m.kv = zeros(T * H * (Dn + Dv));
  at.kv_b_proj.forward(m.kv.data(), m.latent.data(), T, 0, C);
  m.k = zeros(T * H * Dqk);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(&m.k[size_t((t * H + h) * Dqk)], &m.kv[size_t((t * H + h) * (Dn + Dv))], size_t(Dn) * 4);
      std::memcpy(&m.k[size_t((t * H + h) * Dqk + Dn)], &m.latent[size_t(t * C + R)], size_t(Dr) * 4);
    }
  return m;
}
}  // namespace

struct DeepSeekModel::BlockActivations {
  Buf x_in, h_mid;                     // [T, d] inputs of the two norms (their outputs are recomputed)
  // attention
  Buf cq_raw;                          // [T, q_lora_rank] before q_a_layernorm (recomputed)
  Buf q;                               // [T, H, Dn+Dr] after RoPE
  Buf kv_raw;                          // [T, R+Dr] kv_a output before norm / RoPE (latent, kv, k recomputed)
  Buf o;                               // [T, H, Dv]
  // FFN
  SwiGLUActivations mlp, shared;
  Buf router_logits, scores;           // [T, E]
  std::vector<int32_t> chosen;         // [T, K]
  Buf gates;                           // [T, K]
  double balance_loss = 0;             // α Σ f_i P_i (0 when off)
  Buf balance_f;                       // [E] f_i·α/T: dL_bal/ds'_{i,t}
  std::vector<std::vector<std::pair<int32_t, int32_t>>> by_expert;  // expert -> (token, slot k)
  std::vector<SwiGLUActivations> expert_act;
  std::vector<Buf> expert_out;         // per expert [n_e, d]
};

void DeepSeekModel::block_forward_train(const Block& b, float* x, int64_t T, const int32_t* positions,
                                        BlockActivations& a) {
  const ModelConfig& c = cfg_;
  const int64_t d = c.hidden_size, H = c.num_attention_heads, R = c.kv_lora_rank, Dn = c.qk_nope_head_dim;
  const int64_t Dr = c.qk_rope_head_dim, Dv = c.v_head_dim, Dqk = Dn + Dr, C = R + Dr;
  const Attention& at = b.attn;
  a.x_in.assign(x, x + T * d);
  Buf xn1 = zeros(T * d);
  b.input_layernorm.forward(xn1.data(), x, T);
  // --- MLA, naive form (V3 eqs. 1–11)
  a.q = zeros(T * H * Dqk);
  if (at.q_compressed) {
    a.cq_raw = zeros(T * c.q_lora_rank);
    Buf cq = zeros(T * c.q_lora_rank);
    at.q_a_proj.forward(a.cq_raw.data(), xn1.data(), T);
    at.q_a_layernorm.forward(cq.data(), a.cq_raw.data(), T);
    at.q_b_proj.forward(a.q.data(), cq.data(), T);
  } else {
    at.q_proj.forward(a.q.data(), xn1.data(), T);
  }
  ops::rope_apply(a.q.data() + Dn, T, H, H * Dqk, Dqk, positions, rope_, ops::RopeLayout::Interleaved);
  a.kv_raw = zeros(T * C);
  at.kv_a_proj_with_mqa.forward(a.kv_raw.data(), xn1.data(), T);
  xn1 = Buf();
  MlaKv mk = mla_kv(c, at, rope_, a.kv_raw, T, positions);
  ops::AttentionArgs args;
  args.n_q = T, args.n_kv = T, args.n_heads = H, args.n_kv_heads = H, args.qk_dim = Dqk, args.v_dim = Dv;
  args.q_stride = H * Dqk, args.q_head_stride = Dqk, args.k_stride = H * Dqk, args.k_head_stride = Dqk;
  args.v_stride = H * (Dn + Dv), args.v_head_stride = Dn + Dv, args.out_stride = H * Dv, args.out_head_stride = Dv;
  args.scale = attn_scale_;
  a.o = zeros(T * H * Dv);
  segmented_attention(a.o.data(), a.q.data(), mk.k.data(), mk.kv.data() + Dn, args, T);
  mk = MlaKv();
  Buf tmp = zeros(T * d);
  at.o_proj.forward(tmp.data(), a.o.data(), T);
  ops::add_inplace(x, tmp.data(), T * d);
  a.h_mid.assign(x, x + T * d);
  Buf xn2 = zeros(T * d);
  b.post_attention_layernorm.forward(xn2.data(), x, T);
  // --- FFN / DeepSeekMoE
  if (!b.is_moe) {
    swiglu_forward_train(b.mlp, tmp.data(), xn2.data(), T, a.mlp);
    ops::add_inplace(x, tmp.data(), T * d);
    return;
  }
  const MoE& m = b.moe;
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  a.router_logits = zeros(T * E), a.scores = zeros(T * E);
  m.gate.forward(a.router_logits.data(), xn2.data(), T);
  a.chosen.assign(size_t(T * K), 0);
  a.gates = zeros(T * K);
  for (int64_t t = 0; t < T; ++t) {
    route(&a.router_logits[size_t(t * E)], &a.chosen[size_t(t * K)], &a.gates[size_t(t * K)], m);
    float* s = &a.scores[size_t(t * E)];
    const float* l = &a.router_logits[size_t(t * E)];
    if (c.scoring_func == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      std::copy(l, l + E, s);
      ops::reference::softmax_rows(s, 1, E, E);
    }
  }
  if (seq_balance_alpha_ > 0) {
    // f_i = N_r/(K_r·T)·#{t: i ∈ TopK(t)}, P_i = mean_t s'_{i,t}, s' = s / Σ_j s_j (over all experts).
    a.balance_f = zeros(E);
    for (int32_t e : a.chosen) a.balance_f[size_t(e)] += float(double(E) / double(K * T));
    double loss = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* s = &a.scores[size_t(t * E)];
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += s[e];
      for (int64_t e = 0; e < E; ++e) loss += a.balance_f[size_t(e)] * s[e] / sum / double(T);
    }
    a.balance_loss = seq_balance_alpha_ * loss;
    for (auto& f : a.balance_f) f = float(f * seq_balance_alpha_ / double(T));
  }
  if (m.has_shared) swiglu_forward_train(m.shared_experts, tmp.data(), xn2.data(), T, a.shared);
  else std::fill(tmp.begin(), tmp.end(), 0.0f);
  a.by_expert.assign(size_t(E), {});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) a.by_expert[size_t(a.chosen[size_t(t * K + k)])].push_back({int32_t(t), int32_t(k)});
  a.expert_act.assign(size_t(E), {});
  a.expert_out.assign(size_t(E), {});
  for (int64_t e = 0; e < E; ++e) {
    const auto& list = a.by_expert[size_t(e)];
    if (list.empty()) continue;
    const int64_t n = int64_t(list.size());
    Buf xin = zeros(n * d);
    for (int64_t i = 0; i < n; ++i) std::memcpy(&xin[size_t(i * d)], &xn2[size_t(list[size_t(i)].first * d)], size_t(d) * 4);
    a.expert_out[size_t(e)] = zeros(n * d);
    swiglu_forward_train(m.experts[size_t(e)], a.expert_out[size_t(e)].data(), xin.data(), n, a.expert_act[size_t(e)]);
    for (int64_t i = 0; i < n; ++i) {
      auto [t, k] = list[size_t(i)];
      ops::axpy(&tmp[size_t(t * d)], a.gates[size_t(t * K + k)], &a.expert_out[size_t(e)][size_t(i * d)], d);
    }
  }
  ops::add_inplace(x, tmp.data(), T * d);
}

void DeepSeekModel::block_backward(const Block& b, float* dx, int64_t T, const int32_t* positions,
                                   const BlockActivations& a, nn::Gradients& g) {
  const ModelConfig& c = cfg_;
  const int64_t d = c.hidden_size, H = c.num_attention_heads, R = c.kv_lora_rank, Dn = c.qk_nope_head_dim;
  const int64_t Dr = c.qk_rope_head_dim, Dv = c.v_head_dim, Dqk = Dn + Dr, C = R + Dr;
  const Attention& at = b.attn;
  // dx holds dL/d(block output); the residual passes it through unchanged to h_mid and x_in.
  // --- FFN backward
  Buf dxn2 = zeros(T * d), xn2 = zeros(T * d);
  b.post_attention_layernorm.forward(xn2.data(), a.h_mid.data(), T);  // recomputed
  if (!b.is_moe) {
    swiglu_backward(b.mlp, dxn2.data(), dx, xn2.data(), T, a.mlp, g);
  } else {
    const MoE& m = b.moe;
    const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
    if (m.has_shared) swiglu_backward(m.shared_experts, dxn2.data(), dx, xn2.data(), T, a.shared, g);
    Buf dgate = zeros(T * K);  // dL/dg for each chosen (token, slot)
    for (int64_t e = 0; e < E; ++e) {
      const auto& list = a.by_expert[size_t(e)];
      if (list.empty()) continue;
      const int64_t n = int64_t(list.size());
      Buf dy = zeros(n * d), dxin = zeros(n * d), xin = zeros(n * d);
      for (int64_t i = 0; i < n; ++i) {
        auto [t, k] = list[size_t(i)];
        std::memcpy(&xin[size_t(i * d)], &xn2[size_t(t * d)], size_t(d) * 4);
        const float gv = a.gates[size_t(t * K + k)];
        double dot = 0;
        for (int64_t j = 0; j < d; ++j) {
          dy[size_t(i * d + j)] = gv * dx[t * d + j];
          dot += double(dx[t * d + j]) * a.expert_out[size_t(e)][size_t(i * d + j)];
        }
        dgate[size_t(t * K + k)] = float(dot);
      }
      swiglu_backward(m.experts[size_t(e)], dxin.data(), dy.data(), xin.data(), n, a.expert_act[size_t(e)], g);
      for (int64_t i = 0; i < n; ++i) ops::add_inplace(&dxn2[size_t(list[size_t(i)].first * d)], &dxin[size_t(i * d)], d);
    }
    // Gate values g_k = c·s_k / Σ_j s_j (normalised) or c·s_k; s = sigmoid(logits) or softmax(logits).
    Buf dlogits = zeros(T * E);
    const double scale = c.routed_scaling_factor;
    const bool normalise = c.norm_topk_prob && K > 1;
    for (int64_t t = 0; t < T; ++t) {
      const float* s = &a.scores[size_t(t * E)];
      const int32_t* ch = &a.chosen[size_t(t * K)];
      const float* dgt = &dgate[size_t(t * K)];
      Buf ds = zeros(E);
      double sum = 0, dot = 0;
      for (int64_t k = 0; k < K; ++k) sum += s[ch[k]], dot += double(dgt[k]) * s[ch[k]];
      for (int64_t k = 0; k < K; ++k)
        ds[size_t(ch[k])] += float(normalise ? scale * (dgt[k] / (sum + 1e-20) - dot / ((sum + 1e-20) * (sum + 1e-20)))
                                             : scale * dgt[k]);
      if (!a.balance_f.empty()) {  // d(α Σ f_i s'_i / T)/ds_k = (g_k − Σ_i g_i s'_i) / S, g = balance_f
        double S = 0, gs = 0;
        for (int64_t e = 0; e < E; ++e) S += s[e];
        for (int64_t e = 0; e < E; ++e) gs += double(a.balance_f[size_t(e)]) * s[e] / S;
        for (int64_t e = 0; e < E; ++e) ds[size_t(e)] += float((a.balance_f[size_t(e)] - gs) / S);
      }
      float* dl = &dlogits[size_t(t * E)];
      if (c.scoring_func == ScoringFunc::Sigmoid) {
        for (int64_t e = 0; e < E; ++e) dl[e] = ds[size_t(e)] * s[e] * (1.0f - s[e]);
      } else {
        ops::softmax_rows_backward(dl, ds.data(), s, 1, E);
      }
    }
    ops::linear_backward(dxn2.data(), g.of(m.gate.weight), nullptr, dlogits.data(), xn2.data(),
                         nn::weight_ref(m.gate.weight), T);
  }
  ops::rmsnorm_backward(dx, g.of(b.post_attention_layernorm.weight), dxn2.data(), a.h_mid.data(),
                        b.post_attention_layernorm.weight.f32(), T, d, b.post_attention_layernorm.eps);
  dxn2 = Buf(), xn2 = Buf();
  // Recompute the attention's inputs: xn1, the latent and the up-projected k/v.
  Buf xn1 = zeros(T * d);
  b.input_layernorm.forward(xn1.data(), a.x_in.data(), T);
  const MlaKv mk = mla_kv(c, at, rope_, a.kv_raw, T, positions);
  // --- attention backward (dx now holds dL/dh_mid = dL/d attention output)
  Buf d_o = zeros(T * H * Dv);
  ops::linear_backward(d_o.data(), g.of(at.o_proj.weight), nullptr, dx, a.o.data(), nn::weight_ref(at.o_proj.weight), T);
  Buf dq = zeros(T * H * Dqk), dk = zeros(T * H * Dqk), dkv = zeros(T * H * (Dn + Dv));
  ops::AttentionArgs args;
  args.n_q = T, args.n_kv = T, args.n_heads = H, args.n_kv_heads = H, args.qk_dim = Dqk, args.v_dim = Dv;
  args.q_stride = H * Dqk, args.q_head_stride = Dqk, args.k_stride = H * Dqk, args.k_head_stride = Dqk;
  args.v_stride = H * (Dn + Dv), args.v_head_stride = Dn + Dv, args.out_stride = H * Dv, args.out_head_stride = Dv;
  args.scale = attn_scale_;
  segmented_attention_backward(dq.data(), dk.data(), dkv.data() + Dn, d_o.data(), a.q.data(), mk.k.data(),
                               mk.kv.data() + Dn, args, T);
  // k = [k_nope (from kv_b) ‖ k_pe (shared by every head)]
  Buf dlatent = zeros(T * C);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < Dn; ++i) dkv[size_t((t * H + h) * (Dn + Dv) + i)] += dk[size_t((t * H + h) * Dqk + i)];
      for (int64_t i = 0; i < Dr; ++i) dlatent[size_t(t * C + R + i)] += dk[size_t((t * H + h) * Dqk + Dn + i)];
    }
  ops::linear_backward(dlatent.data(), g.of(at.kv_b_proj.weight), nullptr, dkv.data(), mk.latent.data(),
                       nn::weight_ref(at.kv_b_proj.weight), T, 0, C);
  ops::rope_backward(dlatent.data() + R, T, 1, C, 0, positions, rope_, ops::RopeLayout::Interleaved);
  Buf dkv_raw = zeros(T * C);
  ops::rmsnorm_backward(dkv_raw.data(), g.of(at.kv_a_layernorm.weight), dlatent.data(), a.kv_raw.data(),
                        at.kv_a_layernorm.weight.f32(), T, R, at.kv_a_layernorm.eps, C, C);
  for (int64_t t = 0; t < T; ++t)  // k_pe bypasses the norm
    for (int64_t i = 0; i < Dr; ++i) dkv_raw[size_t(t * C + R + i)] += dlatent[size_t(t * C + R + i)];
  Buf dxn1 = zeros(T * d);
  ops::linear_backward(dxn1.data(), g.of(at.kv_a_proj_with_mqa.weight), nullptr, dkv_raw.data(), xn1.data(),
                       nn::weight_ref(at.kv_a_proj_with_mqa.weight), T);
  ops::rope_backward(dq.data() + Dn, T, H, H * Dqk, Dqk, positions, rope_, ops::RopeLayout::Interleaved);
  if (at.q_compressed) {
    Buf dcq = zeros(T * c.q_lora_rank), dcq_raw = zeros(T * c.q_lora_rank), cq = zeros(T * c.q_lora_rank);
    at.q_a_layernorm.forward(cq.data(), a.cq_raw.data(), T);  // recomputed
    ops::linear_backward(dcq.data(), g.of(at.q_b_proj.weight), nullptr, dq.data(), cq.data(), nn::weight_ref(at.q_b_proj.weight), T);
    ops::rmsnorm_backward(dcq_raw.data(), g.of(at.q_a_layernorm.weight), dcq.data(), a.cq_raw.data(),
                          at.q_a_layernorm.weight.f32(), T, c.q_lora_rank, at.q_a_layernorm.eps);
    ops::linear_backward(dxn1.data(), g.of(at.q_a_proj.weight), nullptr, dcq_raw.data(), xn1.data(), nn::weight_ref(at.q_a_proj.weight), T);
  } else {
    ops::linear_backward(dxn1.data(), g.of(at.q_proj.weight), nullptr, dq.data(), xn1.data(), nn::weight_ref(at.q_proj.weight), T);
  }
  ops::rmsnorm_backward(dx, g.of(b.input_layernorm.weight), dxn1.data(), a.x_in.data(), b.input_layernorm.weight.f32(), T,
                        d, b.input_layernorm.eps);
}

DeepSeekModel::LossParts DeepSeekModel::loss_and_grad(std::span<const int32_t> tokens, nn::Gradients* grads,
                                                      double mtp_lambda) {
  const int64_t T = int64_t(tokens.size()), d = cfg_.hidden_size;
  BALEINE_CHECK(trainable(), "training '{}' (DeepSeek Sparse Attention) is not implemented yet", cfg_.model_type);
  BALEINE_CHECK(T >= 2, "need at least 2 tokens to train, got {}", T);
  BALEINE_CHECK(T <= cfg_.max_position_embeddings, "{} tokens exceed the context of {}", T, cfg_.max_position_embeddings);
  for (int32_t t : tokens)
    BALEINE_CHECK(t >= 0 && t < cfg_.vocab_size, "token id {} is outside the vocabulary [0, {})", t, cfg_.vocab_size);
  std::vector<int32_t> positions(static_cast<size_t>(T));
  std::iota(positions.begin(), positions.end(), 0);
  const Tensor& head_slot = cfg_.tie_word_embeddings ? embed_tokens_.weight : lm_head_.weight;

  if (expert_load_.size() != layers_.size()) reset_expert_load();
  // ---- forward
  double balance = 0;
  Buf x = zeros(T * d);
  embed_tokens_.forward(x.data(), tokens.data(), T);
  std::vector<BlockActivations> acts(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    block_forward_train(layers_[l], x.data(), T, positions.data(), acts[l]);
    balance += acts[l].balance_loss;
    for (size_t e = 0; e < acts[l].by_expert.size(); ++e) expert_load_[l][e] += int64_t(acts[l].by_expert[e].size());
  }
  const Buf h_main = x;  // [T, d] before the final norm (the MTP module reads it)
  Buf xf = zeros(T * d);
  norm_.forward(xf.data(), x.data(), T);
  std::vector<int32_t> targets(static_cast<size_t>(T), -1);
  for (int64_t t = 0; t + 1 < T; ++t) targets[size_t(t)] = tokens[size_t(t + 1)];
  Buf dxf = zeros(T * d), dh = zeros(T * d);
  LossParts loss;
  loss.main = ops::cross_entropy_loss(xf.data(), nn::weight_ref(lm_head_.weight), targets.data(), T,
                                      grads ? dxf.data() : nullptr, grads ? grads->of(head_slot) : nullptr, 1.0f);
  loss.balance = balance;
  loss.total = loss.main + balance;
  if (grads) ops::rmsnorm_backward(dh.data(), grads->of(norm_.weight), dxf.data(), h_main.data(), norm_.weight.f32(), T, d, norm_.eps);

  // ---- MTP module (depth 1): row i predicts token i+2
  if (has_mtp_ && mtp_lambda > 0 && T >= 3) {
    const Mtp& m = mtp_[0];
    const int64_t n = T - 1;
    Buf e = zeros(n * d), cat = zeros(n * 2 * d), xm = zeros(n * d);
    m.embed.forward(e.data(), tokens.data() + 1, n);
    m.enorm.forward(cat.data(), e.data(), n, 2 * d, d);
    m.hnorm.forward(cat.data() + d, h_main.data(), n, 2 * d, d);
    m.eh_proj.forward(xm.data(), cat.data(), n);
    BlockActivations mact;
    block_forward_train(m.block, xm.data(), n, positions.data(), mact);
    const Buf hm = xm;
    Buf xmf = zeros(n * d), dxmf = zeros(n * d);
    m.head_norm.forward(xmf.data(), hm.data(), n);
    std::vector<int32_t> mtp_targets(static_cast<size_t>(n), -1);
    for (int64_t i = 0; i + 2 < T; ++i) mtp_targets[size_t(i)] = tokens[size_t(i + 2)];
    const Tensor& mhead_slot = m.head_shared ? head_slot : m.head.weight;
    loss.mtp = ops::cross_entropy_loss(xmf.data(), nn::weight_ref(m.head.weight), mtp_targets.data(), n,
                                       grads ? dxmf.data() : nullptr, grads ? grads->of(mhead_slot) : nullptr,
                                       float(mtp_lambda));
    loss.total += mtp_lambda * loss.mtp + mact.balance_loss;
    loss.balance += mact.balance_loss;
    if (grads) {
      nn::Gradients& g = *grads;
      Buf dhm = zeros(n * d), dcat = zeros(n * 2 * d), de = zeros(n * d);
      ops::rmsnorm_backward(dhm.data(), g.of(m.head_norm.weight), dxmf.data(), hm.data(), m.head_norm.weight.f32(), n, d, m.head_norm.eps);
      block_backward(m.block, dhm.data(), n, positions.data(), mact, g);
      ops::linear_backward(dcat.data(), g.of(m.eh_proj.weight), nullptr, dhm.data(), cat.data(), nn::weight_ref(m.eh_proj.weight), n);
      ops::rmsnorm_backward(de.data(), g.of(m.enorm.weight), dcat.data(), e.data(), m.enorm.weight.f32(), n, d, m.enorm.eps, d, 2 * d);
      ops::rmsnorm_backward(dh.data(), g.of(m.hnorm.weight), dcat.data() + d, h_main.data(), m.hnorm.weight.f32(), n, d, m.hnorm.eps, d, 2 * d);
      ops::embedding_backward(g.of(m.embed_shared ? embed_tokens_.weight : m.embed.weight), de.data(), tokens.data() + 1, n, d);
    }
  }
  if (!grads) return loss;
  // ---- backward: the forward list reversed
  for (size_t l = layers_.size(); l-- > 0;) block_backward(layers_[l], dh.data(), T, positions.data(), acts[l], *grads);
  ops::embedding_backward(grads->of(embed_tokens_.weight), dh.data(), tokens.data(), T, d);
  return loss;
}

void DeepSeekModel::reset_expert_load() {
  expert_load_.assign(layers_.size(), {});
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].is_moe) expert_load_[l].assign(size_t(cfg_.n_routed_experts), 0);
}

void DeepSeekModel::update_balance_bias(double gamma) {
  if (cfg_.topk_method != TopkMethod::NoAuxTc || gamma == 0) return;
  for (size_t l = 0; l < layers_.size() && l < expert_load_.size(); ++l) {
    if (!layers_[l].is_moe || expert_load_[l].empty()) continue;
    const auto& load = expert_load_[l];
    double mean = 0;
    for (int64_t c : load) mean += double(c);
    mean /= double(load.size());
    float* bias = layers_[l].moe.e_score_correction_bias.f32();
    for (size_t e = 0; e < load.size(); ++e) {
      double err = mean - double(load[e]);  // > 0: under-loaded, raise its bias
      bias[e] += float(gamma * (err > 0 ? 1.0 : err < 0 ? -1.0 : 0.0));
    }
  }
}

// ---- The trunk for per-token objectives (deepseek_objectives.cpp): every block forward with saved activations,
// the caller's head, then every block backward. Kept here because BlockActivations lives in this file.
void DeepSeekModel::trunk_train(float* x, int64_t T, const int32_t* positions, nn::Gradients* grads,
                                const std::function<void(const float* h, float* dh)>& head) {
  std::vector<BlockActivations> acts(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    block_forward_train(layers_[l], x, T, positions, acts[l]);
    for (size_t e = 0; e < acts[l].by_expert.size(); ++e) expert_load_[l][e] += int64_t(acts[l].by_expert[e].size());
  }
  Buf dh = grads ? zeros(T * cfg_.hidden_size) : Buf{};
  head(x, grads ? dh.data() : nullptr);
  if (!grads) return;
  for (size_t l = layers_.size(); l-- > 0;) block_backward(layers_[l], dh.data(), T, positions, acts[l], *grads);
  std::memcpy(x, dh.data(), dh.size() * sizeof(float));
}

}  // namespace baleine
