// ops/reference/attention.cpp — scalar oracle for causal grouped-query attention, one (query, head) at a time,
// scores, softmax and the weighted sum of values all in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/internal.h"

namespace baleine::ops::reference {

void attention_causal(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a) {
  detail::check_attention(out, q, k, v, a);
  const int64_t group = a.n_heads / a.n_kv_heads;  // query heads per kv head
  std::vector<double> p(static_cast<size_t>(a.n_kv));            // [n_kv] scores, then exp(score - max)
  std::vector<double> acc(static_cast<size_t>(a.v_dim));         // [v_dim]
  for (int64_t t = 0; t < a.n_q; ++t) {
    const int64_t n_vis = a.kv_offset + t + 1;  // keys 0 .. kv_offset + t (check_attention: <= n_kv)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t g = h / group;
      const float* qh = q + t * a.q_stride + h * a.q_head_stride;
      double mx = -INFINITY;
      for (int64_t s = 0; s < n_vis; ++s) {
        const float* ks = k + s * a.k_stride + g * a.k_head_stride;
        double dot = 0.0;
        for (int64_t i = 0; i < a.qk_dim; ++i) dot += double(qh[i]) * double(ks[i]);
        p[size_t(s)] = dot * double(a.scale);
        mx = std::max(mx, p[size_t(s)]);
      }
      double sum = 0.0;
      for (int64_t s = 0; s < n_vis; ++s) sum += (p[size_t(s)] = std::exp(p[size_t(s)] - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = 0; s < n_vis; ++s) {
        const float* vs = v + s * a.v_stride + g * a.v_head_stride;
        for (int64_t i = 0; i < a.v_dim; ++i) acc[size_t(i)] += p[size_t(s)] * double(vs[i]);
      }
      float* oh = out + t * a.out_stride + h * a.out_head_stride;
      for (int64_t i = 0; i < a.v_dim; ++i) oh[i] = float(acc[size_t(i)] / sum);
    }
  }
}

// Directly over the blocks (no gather): the oracle of the paged path. Rows are decoded to f32 one at a time.
void attention_paged(float* out, const float* q, const PagedKv& kv, const AttentionArgs& a) {
  detail::check_paged(kv, a);
  const float dummy = 0;
  detail::check_attention(out, q, a.n_q > 0 ? &dummy : nullptr, a.n_q > 0 ? &dummy : nullptr, a);
  const int64_t group = a.n_heads / a.n_kv_heads, rb = kv_row_bytes(kv.dtype, kv.row);
  std::vector<float> rows(static_cast<size_t>(a.n_kv * kv.row));  // decoded once
  for (int64_t s = 0; s < a.n_kv; ++s)
    kv_decode_row(kv.dtype, static_cast<const char*>(kv.blocks[s / kv.block_size]) + (s % kv.block_size) * rb, kv.row,
                  rows.data() + s * kv.row);
  std::vector<double> p(static_cast<size_t>(a.n_kv)), acc(static_cast<size_t>(a.v_dim));
  for (int64_t t = 0; t < a.n_q; ++t) {
    const int64_t n_vis = a.kv_offset + t + 1;
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t g = h / group;
      const float* qh = q + t * a.q_stride + h * a.q_head_stride;
      double mx = -INFINITY;
      for (int64_t s = 0; s < n_vis; ++s) {
        const float* ks = rows.data() + s * kv.row + kv.k_offset + g * a.k_head_stride;
        double dot = 0.0;
        for (int64_t i = 0; i < a.qk_dim; ++i) dot += double(qh[i]) * double(ks[i]);
        p[size_t(s)] = dot * double(a.scale);
        mx = std::max(mx, p[size_t(s)]);
      }
      double sum = 0.0;
      for (int64_t s = 0; s < n_vis; ++s) sum += (p[size_t(s)] = std::exp(p[size_t(s)] - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = 0; s < n_vis; ++s) {
        const float* vs = rows.data() + s * kv.row + kv.v_offset + g * a.v_head_stride;
        for (int64_t i = 0; i < a.v_dim; ++i) acc[size_t(i)] += p[size_t(s)] * double(vs[i]);
      }
      float* oh = out + t * a.out_stride + h * a.out_head_stride;
      for (int64_t i = 0; i < a.v_dim; ++i) oh[i] = float(acc[size_t(i)] / sum);
    }
  }
}

}  // namespace baleine::ops::reference
