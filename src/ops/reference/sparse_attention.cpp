// ops/reference/sparse_attention.cpp — scalar oracle of DeepSeek Sparse Attention: each query attends to the
// positions its index list names, one (query, head) at a time, in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/internal.h"

namespace baleine::ops::reference {

namespace {

// Softmax-weighted values of one (query, head) over the listed rows; key(s) / value(s) return row s.
template <class Key, class Value>
void attend(float* oh, const float* qh, const int32_t* idx, int64_t n, const AttentionArgs& a, Key key, Value value) {
  std::vector<double> p(static_cast<size_t>(n)), acc(static_cast<size_t>(a.v_dim), 0.0);
  double mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* ks = key(idx[j]);
    double dot = 0.0;
    for (int64_t i = 0; i < a.qk_dim; ++i) dot += double(qh[i]) * double(ks[i]);
    p[size_t(j)] = dot * double(a.scale);
    mx = std::max(mx, p[size_t(j)]);
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
  for (int64_t j = 0; j < n; ++j) {
    const float* vs = value(idx[j]);
    for (int64_t i = 0; i < a.v_dim; ++i) acc[size_t(i)] += p[size_t(j)] * double(vs[i]);
  }
  for (int64_t i = 0; i < a.v_dim; ++i) oh[i] = float(acc[size_t(i)] / sum);
}

}  // namespace

void attention_sparse(float* out, const float* q, const float* k, const float* v, const SparseIndex& sel,
                      const AttentionArgs& a) {
  detail::check_sparse("attention_sparse", out, q, k, v, sel, a);
  const int64_t group = a.n_heads / a.n_kv_heads;
  for (int64_t t = 0; t < a.n_q; ++t)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t g = h / group;
      attend(out + t * a.out_stride + h * a.out_head_stride, q + t * a.q_stride + h * a.q_head_stride,
             sel.index + t * sel.stride, sel.count[t], a,
             [&](int32_t s) { return k + s * a.k_stride + g * a.k_head_stride; },
             [&](int32_t s) { return v + s * a.v_stride + g * a.v_head_stride; });
    }
}

void attention_sparse_paged(float* out, const float* q, const PagedKv& kv, const SparseIndex& sel,
                            const AttentionArgs& a) {
  detail::check_paged(kv, a);
  const float dummy = 0;
  const float* any = a.n_q > 0 ? &dummy : nullptr;
  detail::check_sparse("attention_sparse_paged", out, q, any, any, sel, a);
  const int64_t group = a.n_heads / a.n_kv_heads, rb = kv_row_bytes(kv.dtype, kv.row);
  std::vector<float> row(static_cast<size_t>(kv.row));
  int32_t decoded = -1;  // the row in `row` (decoded on demand, straight from its block)
  auto fetch = [&](int32_t s) {
    if (s != decoded) {
      kv_decode_row(kv.dtype, static_cast<const char*>(kv.blocks[s / kv.block_size]) + (s % kv.block_size) * rb, kv.row,
                    row.data());
      decoded = s;
    }
    return row.data();
  };
  for (int64_t t = 0; t < a.n_q; ++t)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t g = h / group;
      // Keys and values come from the same row (MLA's latent), so each is copied out before the next fetch.
      const int64_t n = sel.count[t];
      const int32_t* idx = sel.index + t * sel.stride;
      std::vector<float> keys(static_cast<size_t>(n * a.qk_dim)), values(static_cast<size_t>(n * a.v_dim));
      std::vector<int32_t> local(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) {
        const float* r = fetch(idx[j]);
        std::copy(r + kv.k_offset + g * a.k_head_stride, r + kv.k_offset + g * a.k_head_stride + a.qk_dim,
                  keys.begin() + j * a.qk_dim);
        std::copy(r + kv.v_offset + g * a.v_head_stride, r + kv.v_offset + g * a.v_head_stride + a.v_dim,
                  values.begin() + j * a.v_dim);
        local[size_t(j)] = int32_t(j);
      }
      attend(out + t * a.out_stride + h * a.out_head_stride, q + t * a.q_stride + h * a.q_head_stride, local.data(), n,
             a, [&](int32_t j) { return keys.data() + j * a.qk_dim; },
             [&](int32_t j) { return values.data() + j * a.v_dim; });
    }
}

}  // namespace baleine::ops::reference
