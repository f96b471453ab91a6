// ops/internal.h — argument checks and RoPE angles shared by the reference ops and the dispatcher.
// defines: OPS_CHECK, detail::check_* , detail::rope_cos_sin
//
// Internal to baleine_ops. Both the reference and the fast path validate with the same functions, so a bad
// call throws the same baleine::Error ("[op] message") whichever backend is active; the fast path validates
// before any work is handed to the thread pool, because an exception must never leave a pool thread.
#pragma once
#include <cstdint>

#include "core/check.h"
#include "ops/ops.h"

// Like BALEINE_CHECK but names the public op rather than the helper that checks it.
#define OPS_CHECK(op, cond, ...)                                      \
  do {                                                                \
    if (!(cond)) ::baleine::fail(op, fmt::format(__VA_ARGS__));      \
  } while (0)

namespace baleine::ops::detail {

// Checks a weight / table reference: supported dtype (F32, BF16, F16), sizes >= 0, ld >= cols, data set.
void check_weight(const char* op, const WeightRef& w);
// linear: weight valid, M >= 0, ldy >= N, ldx >= K (after 0 -> dense), pointers set when there is work.
void check_linear(const WeightRef& w, const float* y, const float* x, int64_t M, int64_t ldy, int64_t ldx);
void check_matmul(const float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b,
                  int64_t lda, int64_t ldb, int64_t ldc);
// Row-wise ops (rmsnorm, softmax_rows): rows, n >= 0, leading dims >= n.
void check_rows(const char* op, int64_t rows, int64_t n, int64_t ldy, int64_t ldx);
void check_rope(int64_t n_tokens, int64_t n_heads, const int32_t* positions, const RopeTable& table);
void check_topk(int64_t n, int64_t k);
// Also checks every id is inside [0, vocab).
void check_embedding(const WeightRef& table, const int32_t* ids, int64_t n);
// Sizes, head grouping, n_kv >= kv_offset + n_q (every query's keys exist), pointers set when n_q > 0.
void check_attention(const float* out, const float* q, const float* k, const float* v, const AttentionArgs& a);
// attention_paged: block size and row positive, key and value inside the row, block pointers set.
void check_paged(const PagedKv& kv, const AttentionArgs& a);
// attention_sparse(_paged): the attention sizes, then every count in [1, stride] and every index in [0, n_kv).
void check_sparse(const char* op, const float* out, const float* q, const float* k, const float* v,
                  const SparseIndex& sel, const AttentionArgs& a);

// cos/sin for one position: angle_j = (float)(pos · inv_freq_j) (the product PyTorch forms in f32), cos and
// sin evaluated in double, times attention_factor, rounded to float. cos, sin: [table.dim / 2].
// One function for both backends, so the rotation angles are identical and only the rotation differs.
void rope_cos_sin(const RopeTable& table, int32_t pos, float* cos_out, float* sin_out);

inline int64_t dense(int64_t ld, int64_t n) { return ld ? ld : n; }

}  // namespace baleine::ops::detail
