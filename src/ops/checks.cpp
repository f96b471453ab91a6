// ops/checks.cpp — argument validation shared by every backend (see internal.h).
#include "ops/internal.h"

namespace baleine::ops::detail {

void check_weight(const char* op, const WeightRef& w) {
  OPS_CHECK(op, w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 || dtype_is_quantized(w.dtype),
            "weight dtype {} is not supported (f32, bf16, f16, q8_0, q4_0, q4_k or q6_k)", dtype_name(w.dtype));
  OPS_CHECK(op, w.rows >= 0 && w.cols >= 0, "weight shape [{}, {}] is negative", w.rows, w.cols);
  OPS_CHECK(op, w.ld >= 0 && w.row_stride() >= w.cols, "weight row stride {} < cols {}", w.row_stride(), w.cols);
  const int64_t be = dtype_block_elems(w.dtype);
  OPS_CHECK(op, w.cols % be == 0 && w.row_stride() % be == 0,
            "a {} weight needs cols and row stride that are multiples of {}, got {} and {}", dtype_name(w.dtype), be,
            w.cols, w.row_stride());
  OPS_CHECK(op, w.data != nullptr || w.rows == 0 || w.cols == 0, "weight data is null");
}

void check_linear(const WeightRef& w, const float* y, const float* x, int64_t M, int64_t ldy, int64_t ldx) {
  check_weight("linear", w);
  OPS_CHECK("linear", M >= 0, "M = {} < 0", M);
  OPS_CHECK("linear", ldy >= 0 && dense(ldy, w.rows) >= w.rows, "ldy {} < N {}", ldy, w.rows);
  OPS_CHECK("linear", ldx >= 0 && dense(ldx, w.cols) >= w.cols, "ldx {} < K {}", ldx, w.cols);
  OPS_CHECK("linear", M == 0 || w.rows == 0 || y != nullptr, "y is null");
  OPS_CHECK("linear", M == 0 || w.rows == 0 || w.cols == 0 || x != nullptr, "x is null");
}

void check_matmul(const float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b,
                  int64_t lda, int64_t ldb, int64_t ldc) {
  OPS_CHECK("matmul_f32", M >= 0 && N >= 0 && K >= 0, "negative size M={} N={} K={}", M, N, K);
  OPS_CHECK("matmul_f32", lda >= K, "lda {} < K {}", lda, K);
  OPS_CHECK("matmul_f32", ldb >= (trans_b ? K : N), "ldb {} < {}", ldb, trans_b ? K : N);
  OPS_CHECK("matmul_f32", ldc >= N, "ldc {} < N {}", ldc, N);
  OPS_CHECK("matmul_f32", M == 0 || N == 0 || C != nullptr, "C is null");
  OPS_CHECK("matmul_f32", M == 0 || N == 0 || K == 0 || (A != nullptr && B != nullptr), "A or B is null");
}

void check_rows(const char* op, int64_t rows, int64_t n, int64_t ldy, int64_t ldx) {
  OPS_CHECK(op, rows >= 0 && n >= 0, "negative size rows={} n={}", rows, n);
  OPS_CHECK(op, ldy >= 0 && dense(ldy, n) >= n, "ldy {} < {}", ldy, n);
  OPS_CHECK(op, ldx >= 0 && dense(ldx, n) >= n, "ldx {} < {}", ldx, n);
}

void check_rope(int64_t n_tokens, int64_t n_heads, const int32_t* positions, const RopeTable& table) {
  OPS_CHECK("rope_apply", table.dim >= 0 && table.dim % 2 == 0, "rotary dim {} must be even", table.dim);
  OPS_CHECK("rope_apply", int64_t(table.inv_freq.size()) == table.dim / 2, "table has {} frequencies for dim {}",
            table.inv_freq.size(), table.dim);
  OPS_CHECK("rope_apply", n_tokens >= 0 && n_heads >= 0, "negative size tokens={} heads={}", n_tokens, n_heads);
  OPS_CHECK("rope_apply", n_tokens == 0 || positions != nullptr, "positions is null");
}

void check_topk(int64_t n, int64_t k) {
  OPS_CHECK("topk", n >= 0 && k >= 0 && k <= n, "need 0 <= k <= n, got k={} n={}", k, n);
}

void check_embedding(const WeightRef& table, const int32_t* ids, int64_t n) {
  check_weight("embedding_gather", table);
  OPS_CHECK("embedding_gather", n >= 0, "n = {} < 0", n);
  for (int64_t i = 0; i < n; ++i)
    OPS_CHECK("embedding_gather", ids[i] >= 0 && ids[i] < table.rows, "token id {} at {} outside [0, {})", ids[i], i,
              table.rows);
}

void check_attention(const float* out, const float* q, const float* k, const float* v, const AttentionArgs& a) {
  const char* op = "attention_causal";
  OPS_CHECK(op, a.n_q >= 0 && a.n_kv >= 0 && a.kv_offset >= 0, "negative size n_q={} n_kv={} kv_offset={}", a.n_q,
            a.n_kv, a.kv_offset);
  OPS_CHECK(op, a.qk_dim >= 0 && a.v_dim >= 0, "negative head dims qk={} v={}", a.qk_dim, a.v_dim);
  OPS_CHECK(op, a.n_heads >= 1 && a.n_kv_heads >= 1 && a.n_heads % a.n_kv_heads == 0,
            "n_heads {} must be a positive multiple of n_kv_heads {}", a.n_heads, a.n_kv_heads);
  OPS_CHECK(op, a.kv_offset + a.n_q <= a.n_kv, "kv_offset {} + n_q {} > n_kv {}", a.kv_offset, a.n_q, a.n_kv);
  OPS_CHECK(op, a.n_q == 0 || (out && q && k && v), "a tensor pointer is null");
}

void check_paged(const PagedKv& kv, const AttentionArgs& a) {
  const char* op = "attention_paged";
  OPS_CHECK(op, kv.block_size >= 1 && kv.row >= 1, "block_size {} and row {} must be positive", kv.block_size, kv.row);
  const int64_t k_end = kv.k_offset + (a.n_kv_heads - 1) * a.k_head_stride + a.qk_dim;
  const int64_t v_end = kv.v_offset + (a.n_kv_heads - 1) * a.v_head_stride + a.v_dim;
  OPS_CHECK(op, kv.k_offset >= 0 && kv.v_offset >= 0 && k_end <= kv.row && v_end <= kv.row,
            "keys end at {} and values at {}, past the row of {} floats", k_end, v_end, kv.row);
  OPS_CHECK(op, a.n_q == 0 || kv.blocks != nullptr, "the block table is null");
  const int64_t n_blocks = (a.n_kv + kv.block_size - 1) / kv.block_size;
  for (int64_t b = 0; b < n_blocks && a.n_q > 0; ++b) OPS_CHECK(op, kv.blocks[b] != nullptr, "block {} is null", b);
}

void check_sparse(const char* op, const float* out, const float* q, const float* k, const float* v,
                  const SparseIndex& sel, const AttentionArgs& a) {
  OPS_CHECK(op, a.n_q >= 0 && a.n_kv >= 0 && a.qk_dim >= 0 && a.v_dim >= 0, "negative size n_q={} n_kv={}", a.n_q, a.n_kv);
  OPS_CHECK(op, a.n_heads >= 1 && a.n_kv_heads >= 1 && a.n_heads % a.n_kv_heads == 0,
            "n_heads {} must be a positive multiple of n_kv_heads {}", a.n_heads, a.n_kv_heads);
  OPS_CHECK(op, a.n_q == 0 || (out && q && k && v && sel.index && sel.count), "a tensor pointer is null");
  OPS_CHECK(op, sel.stride >= 1 || a.n_q == 0, "index stride {} must be positive", sel.stride);
  for (int64_t t = 0; t < a.n_q; ++t) {
    const int32_t n = sel.count[t];
    OPS_CHECK(op, n >= 1 && n <= sel.stride, "query {} lists {} positions (1..{} allowed)", t, n, sel.stride);
    for (int32_t j = 0; j < n; ++j) {
      const int32_t s = sel.index[t * sel.stride + j];
      OPS_CHECK(op, s >= 0 && s < a.n_kv, "query {} names position {} outside [0, {})", t, s, a.n_kv);
    }
  }
}

}  // namespace baleine::ops::detail
