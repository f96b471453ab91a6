// models/deepseek_dsa.cpp — DeepSeek Sparse Attention (DeepSeek-V3.2 §2.1, "lightning indexer" + top-k selection):
// for every query t the indexer scores each earlier position s,
//     I(t, s) = Σ_j w_{t,j} · ReLU(q^I_{t,j} · k^I_s),
// and MLA attends only to the index_topk positions with the highest scores (attention_forward, deepseek.cpp).
// Indexer queries come from the MLA query latent c^Q (wq_b), its single key per token from the hidden state (wk,
// LayerNorm); RoPE covers the first qk_rope_head_dim dims of each, half-split (MLA's own RoPE is interleaved).
// DeepSeek also rotates q^I and k^I by a Hadamard matrix before quantising them to FP8; the rotation is orthonormal,
// so in float arithmetic every dot product, hence every score and selection, is unchanged, and we skip it
// (tests/reference/dsa_ref.py checks the invariance). Notes and sources: docs/deepseek-v32.md.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "core/threadpool.h"
#include "models/deepseek.h"

namespace baleine {

void DeepSeekModel::indexer_keys(const Attention& a, float* keys, int64_t ldk, const float* x, int64_t N,
                                 const int32_t* positions) {
  a.idx_wk.forward(keys, x, N, ldk);                    // [N, Di] (row stride ldk)
  a.idx_k_norm.forward(keys, keys, N, ldk, ldk);
  ops::rope_apply(keys, N, 1, ldk, 0, positions, rope_, indexer_rope_layout_);  // first Dr of Di dims
}

bool DeepSeekModel::indexer_select(const Attention& a, const float* x, const float* cq, const int32_t* positions,
                                   const BatchSegment& sg, int64_t layer, int32_t* index, int32_t* count) {
  const int64_t K = cfg_.index_topk, T = sg.T, S = sg.p0 + sg.T;
  if (S <= K) return false;  // every query keeps every position it sees: plain causal attention
  const int64_t Hi = cfg_.index_n_heads, Di = cfg_.index_head_dim, C = cfg_.kv_lora_rank + cfg_.qk_rope_head_dim;
  const int64_t W = kv_row();
  BALEINE_CHECK(cq != nullptr, "the DSA indexer needs the query latent (q_lora_rank > 0)");

  // Queries [T, Hi, Di] and per-head weights [T, Hi] of this segment's rows.
  float* q = arena_.alloc<float>(size_t(T * Hi * Di));
  a.idx_wq_b.forward(q, cq + sg.row0 * cfg_.q_lora_rank, T);
  ops::rope_apply(q, T, Hi, Hi * Di, Di, positions + sg.row0, rope_, indexer_rope_layout_);
  float* w = arena_.alloc<float>(size_t(T * Hi));
  a.idx_weights_proj.forward(w, x + sg.row0 * cfg_.hidden_size, T);
  const float w_scale = float(1.0 / std::sqrt(double(Hi) * double(Di)));  // Hi^-1/2 · Di^-1/2

  // The sequence's indexer keys [S, Di] out of its paged rows (the new rows were written before this call).
  // f32 and bf16 rows are read in place at the key's offset (decode reads Di values per position, not the row);
  // int8 rows share scales across the row boundary, so they are decoded whole.
  float* keys = arena_.alloc<float>(size_t(S * Di));
  const KvPool& pool = sg.seq->pool();
  const ops::KvDType dt = pool.dtype();
  std::vector<const void*> blocks;
  sg.seq->layer_blocks(layer, blocks);
  float* row = arena_.alloc<float>(size_t(W));
  for (int64_t s = 0; s < S; ++s) {
    const char* src = static_cast<const char*>(blocks[size_t(s / pool.block_size())]) +
                      (s % pool.block_size()) * pool.row_bytes();
    if (dt == ops::KvDType::F32) {
      std::memcpy(keys + s * Di, src + C * int64_t(sizeof(float)), size_t(Di) * sizeof(float));
    } else if (dt == ops::KvDType::BF16) {
      ops::kv_decode_row(dt, src + C * 2, Di, keys + s * Di);
    } else {
      ops::kv_decode_row(dt, src, W, row);
      std::memcpy(keys + s * Di, row + C, size_t(Di) * sizeof(float));
    }
  }

  // Scores in chunks of queries small enough for the logits to stay in cache: logits [chunk·Hi, cols] = q · keysᵀ
  // over the positions the chunk's last query sees (causal: no column past it), then, query by query on the pool,
  // I(t, s) = Σ_j w_tj · ReLU(logit) and the selection.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(T, (int64_t(1) << 18) / std::max<int64_t>(1, Hi * S)));
  float* logits = arena_.alloc<float>(size_t(chunk * Hi * S));
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t n = std::min(chunk, T - t0), cols = sg.p0 + t0 + n;
    // q · keysᵀ is a linear layer whose "weights" are the keys: the pool-split kernel, not a BLAS call per chunk.
    ops::linear(logits, q + t0 * Hi * Di, ops::WeightRef{keys, DType::F32, cols, Di, Di}, nullptr, n * Hi, cols, Di);
    parallel_for(
        n,
        [&](int64_t i0, int64_t i1) {
          thread_local std::vector<float> score_buf;
          thread_local std::vector<int32_t> order_buf;
          score_buf.resize(size_t(S));
          order_buf.resize(size_t(S));
          float* score = score_buf.data();
          int32_t* order = order_buf.data();
          // The selection order of ops::topk: larger score first, NaN after every number, ties by lower position.
          auto before = [score](int32_t a, int32_t b) {
            const float va = score[a], vb = score[b];
            const bool na = std::isnan(va), nb = std::isnan(vb);
            if (na != nb) return nb;
            if (!na && va != vb) return va > vb;
            return a < b;
          };
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t t = t0 + i, visible = sg.p0 + t + 1;
            int32_t* idx = index + t * K;
            if (visible <= K) {  // this query keeps everything it sees
              for (int64_t s = 0; s < visible; ++s) idx[s] = int32_t(s);
              count[t] = int32_t(visible);
              continue;
            }
            std::fill(score, score + visible, 0.0f);
            for (int64_t j = 0; j < Hi; ++j) {
              const float wj = w[t * Hi + j] * w_scale;
              const float* l = logits + (i * Hi + j) * cols;
              for (int64_t s = 0; s < visible; ++s) score[s] += wj * std::max(l[s], 0.0f);
            }
            // The K best in that strict total order: a linear-time partition (the set equals ops::topk's), then
            // ascending positions so attention sums in position order.
            for (int64_t s = 0; s < visible; ++s) order[s] = int32_t(s);
            std::nth_element(order, order + (K - 1), order + visible, before);
            std::copy(order, order + K, idx);
            std::sort(idx, idx + K);
            count[t] = int32_t(K);
          }
        },
        std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, Hi * S)));
  }
  return true;
}

}  // namespace baleine
