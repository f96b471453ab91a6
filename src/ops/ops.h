// ops/ops.h — THE kernel interface: model-agnostic, raw pointers + sizes, PyTorch (row-major) order.
// defines: Backend, set_backend, active_backend, WeightRef, linear, matmul_f32, rmsnorm, RopeLayout, RopeTable,
//          rope_table_default, rope_table_yarn, rope_table_llama3, rope_apply, softmax_rows, silu, swiglu,
//          topk, embedding_gather, AttentionArgs, attention_causal, PagedKv, attention_paged, SparseIndex,
//          attention_sparse, attention_sparse_paged, layernorm, add_inplace, axpy
//
// Every op has a scalar reference in ops/reference/ (never deleted, the oracle of every test) and fast
// versions in ops/cpu/ (AVX2+FMA, AVX-512) chosen at run time by ops/dispatch.cpp. Same names, same results
// within a stated tolerance. Kernels never know about DeepSeek, HTTP or files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace baleine::ops {

enum class Backend { Reference, AVX2, AVX512 };
// Best backend this CPU supports (the default). Tests force Reference to get the oracle.
Backend best_backend();
Backend active_backend();
void set_backend(Backend b);  // throws if the CPU cannot run it
const char* backend_name(Backend b);

// OpenBLAS picks its kernels when the library loads (before main) and 0.3.21 mistakes some CPUs it does not
// know (Zen 4/5 on some hypervisors) for an SSE3 "Prescott", which makes every sgemm several times slower.
// Returns the OPENBLAS_CORETYPE that matches what this CPU can run ("SkylakeX" with AVX-512 F/BW/DQ/VL,
// "Haswell" with AVX2 + FMA) when the loaded kernels are weaker, else nullptr. The executable re-runs itself
// with that variable set (apps/baleine/main.cpp); an OPENBLAS_CORETYPE chosen by the user is left alone.
const char* openblas_better_coretype();

// A weight matrix W[rows=N, cols=K] (PyTorch Linear layout: out_features × in_features), row stride ld >= cols.
struct WeightRef {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32, BF16 or F16
  int64_t rows = 0;          // N (output features)
  int64_t cols = 0;          // K (input features)
  int64_t ld = 0;            // elements between rows; 0 means cols
  int64_t row_stride() const { return ld ? ld : cols; }
};

// y[M, N] = x[M, K] · Wᵀ (+ bias[N]); x, y f32 contiguous with row strides ldx, ldy (0 = dense).
void linear(float* y, const float* x, const WeightRef& w, const float* bias, int64_t M, int64_t ldy = 0, int64_t ldx = 0);

// C[M, N] = alpha · A[M, K] · op(B) (+ beta·C); op(B) = B[K, N] or, when trans_b, B[N, K]ᵀ. All f32, given leading dims.
void matmul_f32(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b,
                int64_t lda, int64_t ldb, int64_t ldc, float alpha = 1.0f, float beta = 0.0f);

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · w (w may be null: no scale). In place allowed (y == x).
void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps, int64_t ldy = 0, int64_t ldx = 0);

// y[r, :] = (x[r, :] − mean) / sqrt(var + eps) · w + b (biased variance; w, b may be null). In place allowed.
void layernorm(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t dim, float eps,
               int64_t ldy = 0, int64_t ldx = 0);

// RoPE pair layout: Interleaved = adjacent pairs (x[2j], x[2j+1]) (DeepSeek reference, GGUF "norm"/GPT-J);
// HalfSplit = (x[j], x[j + d/2]) (HF rotate_half: Qwen2, Llama).
enum class RopeLayout { Interleaved, HalfSplit };

// Frequencies for `dim` rotary dims: inv_freq[j], j < dim/2, and a factor applied to cos and sin.
struct RopeTable {
  int dim = 0;
  std::vector<float> inv_freq;  // [dim/2]
  float attention_factor = 1.0f;
};
RopeTable rope_table_default(int dim, double theta);
// YaRN as in DeepSeek's reference / HF: low = floor(corr(beta_fast)), high = ceil(corr(beta_slow)),
// corr(r) = dim·ln(orig_max_pos/(2π r))/(2 ln theta); ramp over pair index; θ' = θ·(1-ramp) + θ/factor·ramp.
// attention_factor = mscale(factor, mscale)/mscale(factor, mscale_all_dim), mscale(s, m) = 0.1·m·ln s + 1 (s > 1).
RopeTable rope_table_yarn(int dim, double theta, double factor, double original_max_position, double beta_fast,
                          double beta_slow, double mscale, double mscale_all_dim);
// Llama-3 style NTK-by-parts scaling (rope_type "llama3").
RopeTable rope_table_llama3(int dim, double theta, double factor, double low_freq_factor, double high_freq_factor,
                            double original_max_position);

// Rotates in place, for every token t < n_tokens and head h < n_heads, the `table.dim` values starting at
// x + t·token_stride + h·head_stride, by angle positions[t]·inv_freq[j].
void rope_apply(float* x, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                const int32_t* positions, const RopeTable& table, RopeLayout layout);

// In place, row-wise, numerically stable (subtract max); -inf entries give 0; an all -inf row gives 0s.
void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld = 0);

void silu(float* y, const float* x, int64_t n);                      // y = x·sigmoid(x)
void swiglu(float* y, const float* gate, const float* up, int64_t n); // y = silu(gate)·up
void add_inplace(float* y, const float* x, int64_t n);                // y += x
void axpy(float* y, float a, const float* x, int64_t n);              // y += a·x

// Indices of the k largest values of x[n], sorted descending; ties keep the lower index first. k <= n.
void topk(const float* x, int64_t n, int64_t k, int32_t* indices, float* values);

// y[i, :] = table[ids[i], :] (table f32/bf16/f16 [vocab, dim]); throws on an id outside [0, vocab).
void embedding_gather(float* y, const WeightRef& table, const int32_t* ids, int64_t n);

// Causal scaled-dot-product attention with grouped query heads (n_heads % n_kv_heads == 0).
//   q[t, h, :qk_dim] at q + t·q_stride + h·q_head_stride        (t < n_q)
//   k[s, g, :qk_dim] at k + s·k_stride + g·k_head_stride        (s < n_kv)
//   v[s, g, :v_dim]  at v + s·v_stride + g·v_head_stride
//   out[t, h, :v_dim] at out + t·out_stride + h·out_head_stride
// Query t sits at kv position kv_offset + t and sees keys s <= kv_offset + t; head h uses kv group h / (n_heads/n_kv_heads).
// MLA absorbed decode = n_kv_heads 1 with k and v pointing into the same latent cache row.
struct AttentionArgs {
  int64_t n_q = 0, n_kv = 0, n_heads = 0, n_kv_heads = 0, qk_dim = 0, v_dim = 0;
  int64_t q_stride = 0, q_head_stride = 0;
  int64_t k_stride = 0, k_head_stride = 0;
  int64_t v_stride = 0, v_head_stride = 0;
  int64_t out_stride = 0, out_head_stride = 0;
  int64_t kv_offset = 0;
  float scale = 1.0f;
  // Internal to the sparse ops (leave null): query t attends to the sparse_count[t] key rows listed at
  // sparse_index + t·sparse_stride instead of rows 0 .. kv_offset + t. Set by attention_sparse(_paged).
  const int32_t* sparse_index = nullptr;
  const int32_t* sparse_count = nullptr;
  int64_t sparse_stride = 0;
};
void attention_causal(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a);

// How a KV cache stores a row of floats: f32, bf16 (round to nearest even), or int8 in groups of 32 values
// sharing an f32 scale absmax/127 (codes first, then the ceil(row/32) scales), like GGUF's Q8_0.
enum class KvDType { F32, BF16, Int8 };
const char* kv_dtype_name(KvDType t);           // "f32", "bf16", "int8"
KvDType kv_dtype_from_name(const std::string& name);  // throws on anything else
int64_t kv_row_bytes(KvDType t, int64_t row);
void kv_encode_row(KvDType t, const float* src, int64_t row, void* dst);
void kv_decode_row(KvDType t, const void* src, int64_t row, float* dst);

// The keys and values of one sequence in a paged cache: position s lives in blocks[s / block_size], row
// s % block_size; a row is `row` values (stored as `dtype`) holding the key at k_offset and the value at
// v_offset (heads at AttentionArgs k_head_stride / v_head_stride). MLA's latent cache passes the same row as
// key and value.
struct PagedKv {
  const void* const* blocks = nullptr;  // [ceil(n_kv / block_size)] block base pointers
  int64_t block_size = 0, row = 0, k_offset = 0, v_offset = 0;
  KvDType dtype = KvDType::F32;
};
// attention_causal over a paged cache (a.k_stride / a.v_stride are ignored: rows follow kv's layout).
void attention_paged(float* out, const float* q, const PagedKv& kv, const AttentionArgs& a);

// Sparse attention (DeepSeek Sparse Attention, V3.2): query t attends only to the key positions
// index[t·stride + j], j < count[t] — the top-k a lightning indexer chose — instead of every position <= t. The
// caller guarantees causality (each index < n_kv; the indexer picks among visible positions); the order of the
// indices is the summation order, so callers pass them sorted for results that do not depend on the selection
// order. With every visible position listed it equals attention_causal. Cost O(n_q · k), not O(n_q · n_kv).
// a.kv_offset is not used (any position the index names is visible).
struct SparseIndex {
  const int32_t* index = nullptr;  // [n_q, stride] positions into the keys
  const int32_t* count = nullptr;  // [n_q] positions used per query (1 <= count <= stride)
  int64_t stride = 0;
};
void attention_sparse(float* out, const float* q, const float* k, const float* v, const SparseIndex& sel,
                      const AttentionArgs& a);
void attention_sparse_paged(float* out, const float* q, const PagedKv& kv, const SparseIndex& sel,
                            const AttentionArgs& a);

// Reference implementations, callable directly by tests (same contracts as above).
namespace reference {
void linear(float* y, const float* x, const WeightRef& w, const float* bias, int64_t M, int64_t ldy, int64_t ldx);
void matmul_f32(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b,
                int64_t lda, int64_t ldb, int64_t ldc, float alpha, float beta);
void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps, int64_t ldy, int64_t ldx);
void rope_apply(float* x, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                const int32_t* positions, const RopeTable& table, RopeLayout layout);
void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld);
void silu(float* y, const float* x, int64_t n);
void swiglu(float* y, const float* gate, const float* up, int64_t n);
void add_inplace(float* y, const float* x, int64_t n);
void axpy(float* y, float a, const float* x, int64_t n);
void topk(const float* x, int64_t n, int64_t k, int32_t* indices, float* values);
void embedding_gather(float* y, const WeightRef& table, const int32_t* ids, int64_t n);
void attention_causal(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a);
void attention_paged(float* out, const float* q, const PagedKv& kv, const AttentionArgs& a);
void attention_sparse(float* out, const float* q, const float* k, const float* v, const SparseIndex& sel,
                      const AttentionArgs& a);
void attention_sparse_paged(float* out, const float* q, const PagedKv& kv, const SparseIndex& sel,
                            const AttentionArgs& a);
void layernorm(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t dim, float eps,
               int64_t ldy, int64_t ldx);
}  // namespace reference

}  // namespace baleine::ops
