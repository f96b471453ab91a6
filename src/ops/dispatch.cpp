// ops/dispatch.cpp — the public baleine::ops functions: validate, pick the backend, split over the pool.
//
// Backend choice: best_backend() from cpu_features() at start-up, overridable with set_backend (tests force
// each one). Reference runs ops/reference/ single-threaded; AVX2 / AVX512 run the kernel table of
// ops/cpu/ on ranges handed out by baleine::parallel_for.
//
// Threading rules:
//  * Work is split into pieces whose boundaries depend only on the shapes (never on the thread count), and
//    every output element is computed by one piece with a fixed operation order, so results are
//    bit-identical for any number of threads (tests check 1 vs 2).
//  * OpenBLAS is pinned to one thread (openblas_set_num_threads(1), once, before the first call): we call
//    sgemm on column blocks from inside our own pool, so letting OpenBLAS thread too would oversubscribe the
//    cores, and its own split could make results depend on its thread count. This overrides
//    OPENBLAS_NUM_THREADS for the whole process (nothing else in baleine uses BLAS).
//  * Arguments are validated before any work reaches the pool: an exception must never escape a pool thread.
#include <cblas.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "ops/cpu/kernels.h"
#include "ops/cpu/quant_kernels.h"
#include "ops/internal.h"
#include "ops/quant.h"

namespace baleine::ops {

namespace {

bool cpu_supports(Backend b) {
  const CpuFeatures& f = cpu_features();
  switch (b) {
    case Backend::Reference: return true;
    case Backend::AVX2: return f.avx2 && f.fma && f.f16c;
    // avx512.cpp uses F, BW (16-bit masked loads), VL, DQ; no BF16 instructions (see avx512.cpp), so
    // Skylake-X / Ice Lake / Zen 4 all qualify.
    case Backend::AVX512: return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma && f.f16c;
  }
  return false;
}

std::atomic<Backend>& backend_state() {
  static std::atomic<Backend> b{best_backend()};
  return b;
}

// The active kernel table, or null for Reference.
const cpu::Kernels* kernels() {
  switch (backend_state().load(std::memory_order_relaxed)) {
    case Backend::AVX512: return &cpu::kAvx512;
    case Backend::AVX2: return &cpu::kAvx2;
    case Backend::Reference: return nullptr;
  }
  return nullptr;
}

void blas_init() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// Per-thread scratch that grows and is kept: no allocation (and no page faults) per call in steady state.
float* scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Minimum multiply-adds per parallel piece: below this, waking a pool thread costs more than it saves.
constexpr int64_t kMinWorkPerPiece = 1 << 17;  // ~1 µs of FMAs; a pool hand-off costs ~5-10 µs

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// CBLAS takes int sizes and leading dimensions.
bool fits_int(std::initializer_list<int64_t> v) {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x <= std::numeric_limits<int>::max(); });
}

// Column-block width for sgemm calls: a function of N only (determinism); about 8 blocks, 64..512 wide.
int64_t sgemm_block(int64_t N) { return std::clamp<int64_t>(ceil_div(ceil_div(N, 8), 16) * 16, 64, 512); }

// y[:, n0:n0+nb] (+)= x · W[n0:n0+nb, :]ᵀ through OpenBLAS on column blocks; bf16/f16 weights are widened
// block by block (rows kHalfRows × columns kHalfCols, 256 KiB of f32 scratch) and accumulated over K.
constexpr int64_t kHalfRows = 64, kHalfCols = 1024;

void linear_sgemm(const cpu::Kernels& kt, float* y, int64_t ldy, const float* x, int64_t ldx, const WeightRef& w,
                  const float* bias, int64_t M) {
  blas_init();
  const int64_t N = w.rows, K = w.cols, ldw = w.row_stride();
  const int64_t nb = w.dtype == DType::F32 ? sgemm_block(N) : kHalfRows;
  const int64_t blocks = ceil_div(N, nb);
  parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * nb, n = std::min(nb, N - n0);
      if (w.dtype == DType::F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(n), int(K), 1.0f, x, int(ldx),
                    static_cast<const float*>(w.data) + n0 * ldw, int(ldw), 0.0f, y + n0, int(ldy));
      } else {
        float* wf = scratch(size_t(kHalfRows * kHalfCols));  // [n, kc] widened weight block
        const uint16_t* w16 = static_cast<const uint16_t*>(w.data) + n0 * ldw;
        for (int64_t k0 = 0; k0 < K; k0 += kHalfCols) {
          const int64_t kc = std::min(kHalfCols, K - k0);
          (w.dtype == DType::BF16 ? kt.widen_bf16 : kt.widen_f16)(wf, kc, w16 + k0, ldw, n, kc);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(n), int(kc), 1.0f, x + k0, int(ldx), wf,
                      int(kc), k0 == 0 ? 0.0f : 1.0f, y + n0, int(ldy));
        }
      }
      if (bias)
        for (int64_t m = 0; m < M; ++m) kt.add(y + m * ldy + n0, bias + n0, n);
    }
  });
}

// The integer kernels for block-quantised weights, or null for Reference. The AVX-512 backend uses VNNI
// when the CPU has it and the AVX2 kernels (valid on every AVX-512 CPU) when it does not.
const cpu::QuantKernels* quant_kernels() {
  switch (backend_state().load(std::memory_order_relaxed)) {
    case Backend::AVX512: return cpu_features().avx512_vnni ? &cpu::kAvx512VnniQuant : &cpu::kAvx2Quant;
    case Backend::AVX2: return &cpu::kAvx2Quant;
    case Backend::Reference: return nullptr;
  }
  return nullptr;
}

// Quantised activations of the calling thread (pool threads only read them during the call).
struct ActScratch {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int16_t> bsum;
  std::vector<int32_t> s4neg;
  std::vector<float> dx16;
};
ActScratch& act_scratch() {
  thread_local ActScratch s;
  return s;
}

// Q8_0 / Q4_0 / Q4_K / Q6_K weights: x quantised to int8 blocks once (rows in parallel), then integer dot products
// over pieces of 16 output columns. Accuracy: the weights are used exactly; x̂ is within half a step
// (amax/254 of its block) of x, which bounds |y − y_ref| (test_quant checks that bound).
void linear_int(const cpu::QuantKernels& qk, float* y, int64_t ldy, const float* x, int64_t ldx, const WeightRef& w,
                const float* bias, int64_t M) {
  const int64_t N = w.rows, K = w.cols;
  const int block = int(dtype_block_elems(w.dtype));  // activation blocks: 32 or 256 like the weights
  ActScratch& s = act_scratch();
  if (s.q.size() < size_t(M * K)) s.q.resize(size_t(M * K));
  if (s.d.size() < size_t(M * (K / block))) s.d.resize(size_t(M * (K / block)));
  const bool sums = block == 256;
  if (sums && s.bsum.size() < size_t(M * (K / 16))) s.bsum.resize(size_t(M * (K / 16)));
  int8_t* q = s.q.data();
  float* d = s.d.data();
  int16_t* bsum = sums ? s.bsum.data() : nullptr;
  parallel_for(
      M,
      [&](int64_t m0, int64_t m1) {
        qk.quantize_acts(block, x + m0 * ldx, ldx, m1 - m0, K, q + m0 * K, d + m0 * (K / block),
                         bsum ? bsum + m0 * (K / 16) : nullptr);
      },
      std::max<int64_t>(1, (1 << 16) / K));
  cpu::QuantActs acts{q, d, bsum, K};
  if (block == 32 && qk.pair_acts) {
    if (s.s4neg.size() < size_t(M * (K / 4))) s.s4neg.resize(size_t(M * (K / 4)));
    if (s.dx16.size() < size_t(M * (K / 64) * 16)) s.dx16.resize(size_t(M * (K / 64) * 16));
    int32_t* s4 = s.s4neg.data();
    float* dx16 = s.dx16.data();
    parallel_for(
        M, [&](int64_t m0, int64_t m1) { qk.pair_acts(q + m0 * K, d + m0 * (K / 32), m1 - m0, K, s4 + m0 * (K / 4), dx16 + m0 * (K / 64) * 16); },
        std::max<int64_t>(1, (1 << 16) / K));
    acts.s4neg = s4;
    acts.dx16 = dx16;
  }
  const size_t row_bytes = dtype_nbytes(w.dtype, w.row_stride());
  const auto* wb = static_cast<const uint8_t*>(w.data);
  auto kernel = w.dtype == DType::Q8_0   ? qk.linear_q8_0
                : w.dtype == DType::Q4_0 ? qk.linear_q4_0
                : w.dtype == DType::Q4_K ? qk.linear_q4_k
                                         : qk.linear_q6_k;
  constexpr int64_t kCols = 16;
  const int64_t blocks = ceil_div(N, kCols);
  // Integer MACs are ~4x cheaper than f32 FMAs per element, hence the larger minimum piece.
  const int64_t min_blocks = std::max<int64_t>(1, 4 * kMinWorkPerPiece / (M * K * kCols));
  parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) { kernel(y, ldy, acts, M, wb, row_bytes, bias, b0 * kCols, std::min(N, b1 * kCols)); },
      min_blocks);
}

// Block-quantised weights through the f32 kernel: rows dequantised 16 at a time into scratch (exact
// dequantisation, so this matches the reference up to f32 summation order). Kept as the fallback and for
// comparisons (LinearTuning::quant_via_f32).
void linear_dequant(const cpu::Kernels& kt, float* y, int64_t ldy, const float* x, int64_t ldx, const WeightRef& w,
                    const float* bias, int64_t M) {
  constexpr int64_t kRows = 16;
  const int64_t N = w.rows, K = w.cols;
  const size_t row_bytes = dtype_nbytes(w.dtype, w.row_stride());
  const int64_t blocks = ceil_div(N, kRows);
  parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) {
        float* wf = scratch(size_t(kRows * K));  // [kRows, K]
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n0 = b * kRows, n = std::min(kRows, N - n0);
          for (int64_t r = 0; r < n; ++r)
            dequantize_row(w.dtype, static_cast<const char*>(w.data) + size_t(n0 + r) * row_bytes, wf + r * K, K);
          kt.linear_f32(y + n0, ldy, x, ldx, wf, K, bias ? bias + n0 : nullptr, M, 0, n, K);
        }
      },
      std::max<int64_t>(1, kMinWorkPerPiece / (M * K * kRows)));
}

}  // namespace

Backend best_backend() {
  if (cpu_supports(Backend::AVX512)) return Backend::AVX512;
  if (cpu_supports(Backend::AVX2)) return Backend::AVX2;
  return Backend::Reference;
}

Backend active_backend() { return backend_state().load(); }

void set_backend(Backend b) {
  BALEINE_CHECK(cpu_supports(b), "this CPU cannot run the {} backend", backend_name(b));
  backend_state().store(b);
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Reference: return "reference";
    case Backend::AVX2: return "avx2";
    case Backend::AVX512: return "avx512";
  }
  return "?";
}

const char* openblas_better_coretype() {
  const char* core = openblas_get_corename();
  const std::string name = core ? core : "";
  const CpuFeatures& f = cpu_features();
  const bool has512 = f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl, has2 = f.avx2 && f.fma;
  const bool blas512 = name == "SkylakeX" || name == "Cooperlake" || name == "SapphireRapids";
  const bool blas2 = blas512 || name == "Haswell" || name == "Zen" || name == "SkylakeX";
  if (has512 && !blas512) return "SkylakeX";
  if (has2 && !blas2) return "Haswell";
  return nullptr;
}

namespace cpu {
// Measured with bench_ops (1 thread, N = K = 1024 and 4096) on an AMD EPYC (Zen, AVX-512). Our tiles keep
// the weights in registers/L1 and stream x, so they win for small M; sgemm's packed blocking wins once M is
// large. Where that happens depends on OpenBLAS's kernels: 0.3.21 runs its AVX2 "Haswell" kernels on CPUs
// it does not know (Zen 4/5 included) and reaches ~100 GFLOP/s per core there, its AVX-512 "SkylakeX"
// kernels ~190. AVX-512 own kernel: ~140 (f32) / ~180 (bf16, f16: half the bytes) GFLOP/s up to M ~ 128.
// AVX2 own kernel: ~75 / ~85 GFLOP/s for M <= 16, falling behind OpenBLAS's AVX2 kernels from M ~ 16-32.
LinearTuning& linear_tuning(Backend b) {
  static std::array<LinearTuning, 3> t = [] {
    const char* core = openblas_get_corename();
    const std::string name = core ? core : "";
    const bool blas512 = name == "SkylakeX" || name == "Cooperlake" || name == "SapphireRapids";
    LinearTuning ref{0, 0};  // unused: Reference never calls sgemm
    LinearTuning avx2{16, 32};
    LinearTuning avx512 = blas512 ? LinearTuning{48, 128} : LinearTuning{128, 512};
    return std::array<LinearTuning, 3>{ref, avx2, avx512};
  }();
  return t[int(b)];
}
}  // namespace cpu

void linear(float* y, const float* x, const WeightRef& w, const float* bias, int64_t M, int64_t ldy, int64_t ldx) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::linear(y, x, w, bias, M, ldy, ldx);
  detail::check_linear(w, y, x, M, ldy, ldx);
  const int64_t N = w.rows, K = w.cols, ldw = w.row_stride();
  ldy = detail::dense(ldy, N);
  ldx = detail::dense(ldx, K);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: y = bias or 0
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * ldy + n] = bias ? bias[n] : 0.0f;
    return;
  }
  const cpu::LinearTuning& tune = cpu::linear_tuning(active_backend());
  if (dtype_is_quantized(w.dtype)) {
    const cpu::QuantKernels* qk = quant_kernels();
    if (qk && !tune.quant_via_f32) return linear_int(*qk, y, ldy, x, ldx, w, bias, M);
    return linear_dequant(*kt, y, ldy, x, ldx, w, bias, M);
  }
  if (M >= (w.dtype == DType::F32 ? tune.sgemm_min_m_f32 : tune.sgemm_min_m_half) && fits_int({M, N, K, ldy, ldx, ldw}))
    return linear_sgemm(*kt, y, ldy, x, ldx, w, bias, M);
  // Own kernel over blocks of 16 output columns (cache-line aligned pieces of y for f32).
  constexpr int64_t kCols = 16;
  const int64_t blocks = ceil_div(N, kCols);
  const int64_t min_blocks = std::max<int64_t>(1, kMinWorkPerPiece / (M * K * kCols));
  parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) {
        const int64_t n0 = b0 * kCols, n1 = std::min(N, b1 * kCols);
        switch (w.dtype) {
          case DType::F32: kt->linear_f32(y, ldy, x, ldx, static_cast<const float*>(w.data), ldw, bias, M, n0, n1, K); break;
          case DType::BF16: kt->linear_bf16(y, ldy, x, ldx, static_cast<const uint16_t*>(w.data), ldw, bias, M, n0, n1, K); break;
          default: kt->linear_f16(y, ldy, x, ldx, static_cast<const uint16_t*>(w.data), ldw, bias, M, n0, n1, K); break;
        }
      },
      min_blocks);
}

void matmul_f32(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b, int64_t lda,
                int64_t ldb, int64_t ldc, float alpha, float beta) {
  if (!kernels()) return reference::matmul_f32(C, A, B, M, N, K, trans_b, lda, ldb, ldc, alpha, beta);
  detail::check_matmul(C, A, B, M, N, K, trans_b, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // C = beta·C, and beta == 0 does not read C
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return;
  }
  OPS_CHECK("matmul_f32", fits_int({M, N, K, lda, ldb, ldc}), "sizes beyond 2^31 are not supported");
  blas_init();
  const int64_t nb = sgemm_block(N), blocks = ceil_div(N, nb);
  const int64_t min_blocks = std::max<int64_t>(1, kMinWorkPerPiece / std::max<int64_t>(1, M * K * nb));
  parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n0 = b * nb, n = std::min(nb, N - n0);
          // OpenBLAS with beta == 0 overwrites C without reading it (BLAS convention, as the reference).
          cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M), int(n), int(K), alpha, A,
                      int(lda), trans_b ? B + n0 * ldb : B + n0, int(ldb), beta, C + n0, int(ldc));
        }
      },
      min_blocks);
}

void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps, int64_t ldy, int64_t ldx) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::rmsnorm(y, x, w, rows, dim, eps, ldy, ldx);
  detail::check_rows("rmsnorm", rows, dim, ldy, ldx);
  ldy = detail::dense(ldy, dim);
  ldx = detail::dense(ldx, dim);
  parallel_for(
      rows, [&](int64_t r0, int64_t r1) { kt->rmsnorm(y + r0 * ldy, ldy, x + r0 * ldx, ldx, w, r1 - r0, dim, eps); },
      std::max<int64_t>(1, kMinWorkPerPiece / std::max<int64_t>(1, dim)));
}

void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::softmax_rows(x, rows, n, ld);
  detail::check_rows("softmax_rows", rows, n, ld, ld);
  ld = detail::dense(ld, n);
  parallel_for(
      rows, [&](int64_t r0, int64_t r1) { kt->softmax(x + r0 * ld, ld, r1 - r0, n); },
      std::max<int64_t>(1, kMinWorkPerPiece / 8 / std::max<int64_t>(1, n)));  // exp: ~8 ops per element
}

void rope_apply(float* x, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                const int32_t* positions, const RopeTable& table, RopeLayout layout) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::rope_apply(x, n_tokens, n_heads, token_stride, head_stride, positions, table, layout);
  detail::check_rope(n_tokens, n_heads, positions, table);
  const int64_t half = table.dim / 2;
  if (half == 0) return;
  parallel_for(
      n_tokens,
      [&](int64_t t0, int64_t t1) {
        float* cs = scratch(size_t(2 * half));  // [2, dim/2]: cos then sin for one token
        for (int64_t t = t0; t < t1; ++t) {
          detail::rope_cos_sin(table, positions[t], cs, cs + half);
          kt->rope(x + t * token_stride, n_heads, head_stride, cs, cs + half, half, layout == RopeLayout::Interleaved);
        }
      },
      4);
}

namespace {
// Element-wise ops: pieces of 16K elements (a multiple of 16, so every piece but the last is whole vectors),
// at least min_pieces per thread: 1 for exp-based ops (~10 ops per element), 4 for a bare add. The result
// of an element does not depend on which piece computed it.
template <class F>
void elementwise(const char* op, int64_t n, int64_t min_pieces, F f) {
  OPS_CHECK(op, n >= 0, "n = {} < 0", n);
  constexpr int64_t kPiece = 1 << 14;
  const int64_t pieces = ceil_div(n, kPiece);
  parallel_for(
      pieces, [&](int64_t p0, int64_t p1) { f(p0 * kPiece, std::min(n, p1 * kPiece) - p0 * kPiece); }, min_pieces);
}
}  // namespace

void silu(float* y, const float* x, int64_t n) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::silu(y, x, n);
  elementwise("silu", n, 1, [&](int64_t i, int64_t c) { kt->silu(y + i, x + i, c); });
}

void swiglu(float* y, const float* gate, const float* up, int64_t n) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::swiglu(y, gate, up, n);
  elementwise("swiglu", n, 1, [&](int64_t i, int64_t c) { kt->swiglu(y + i, gate + i, up + i, c); });
}

void add_inplace(float* y, const float* x, int64_t n) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::add_inplace(y, x, n);
  elementwise("add_inplace", n, 4, [&](int64_t i, int64_t c) { kt->add(y + i, x + i, c); });
}

void axpy(float* y, float a, const float* x, int64_t n) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::axpy(y, a, x, n);
  elementwise("axpy", n, 4, [&](int64_t i, int64_t c) { kt->axpy(y + i, a, x + i, c); });
}

void topk(const float* x, int64_t n, int64_t k, int32_t* indices, float* values) {
  if (!kernels()) return reference::topk(x, n, k, indices, values);
  detail::check_topk(n, k);
  if (k == 0) return;
  // Strict total order: larger value first, NaN after every number, ties (and NaNs) by lower index.
  auto before = [x](int32_t a, int32_t b) {
    const float va = x[a], vb = x[b];
    const bool na = std::isnan(va), nb = std::isnan(vb);
    if (na != nb) return nb;
    if (!na && va != vb) return va > vb;
    return a < b;
  };
  // Partial selection: a heap of the k best so far with the worst on top (O(n log k), k ints of memory);
  // most elements are rejected by one comparison with the top.
  std::vector<int32_t> heap(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) heap[size_t(i)] = int32_t(i);
  std::make_heap(heap.begin(), heap.end(), before);
  for (int64_t i = k; i < n; ++i) {
    if (!before(int32_t(i), heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), before);
    heap.back() = int32_t(i);
    std::push_heap(heap.begin(), heap.end(), before);
  }
  std::sort_heap(heap.begin(), heap.end(), before);  // ascending in `before` order: best first
  for (int64_t i = 0; i < k; ++i) {
    if (indices) indices[i] = heap[size_t(i)];
    if (values) values[i] = x[heap[size_t(i)]];
  }
}

void embedding_gather(float* y, const WeightRef& table, const int32_t* ids, int64_t n) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::embedding_gather(y, table, ids, n);
  detail::check_embedding(table, ids, n);
  const int64_t dim = table.cols, ld = table.row_stride();
  parallel_for(
      n,
      [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = int64_t(ids[i]) * ld;
          if (dtype_is_quantized(table.dtype))
            dequantize_row(table.dtype, static_cast<const char*>(table.data) + size_t(ids[i]) * dtype_nbytes(table.dtype, ld),
                           y + i * dim, dim);
          else if (table.dtype == DType::F32)
            std::memcpy(y + i * dim, static_cast<const float*>(table.data) + row, size_t(dim) * sizeof(float));
          else
            (table.dtype == DType::BF16 ? kt->widen_bf16 : kt->widen_f16)(
                y + i * dim, dim, static_cast<const uint16_t*>(table.data) + row, ld, 1, dim);
        }
      },
      std::max<int64_t>(1, kMinWorkPerPiece / std::max<int64_t>(1, dim)));
}

namespace {

// The kernel's work items (query × kv head × block of heads) split over the pool, dense or sparse (a.sparse_index).
void run_attention_items(const cpu::Kernels* kt, float* out, const float* q, const float* k, const float* v,
                         const AttentionArgs& a) {
  const int64_t hpg = a.n_heads / a.n_kv_heads, threads = ThreadPool::global().size();
  // Largest head block (least K/V traffic) that still leaves an item per thread; results do not depend on it.
  int64_t hb = std::min(cpu::kAttnMaxHeadBlock, hpg);
  while (hb > 1 && cpu::attention_items(a, hb) < threads) hb = (hb + 1) / 2;
  const int64_t items = cpu::attention_items(a, hb);
  if (items == 0) return;
  // Average multiply-adds per item: a block of heads against about half the keys (or the listed ones), scores
  // plus values.
  const int64_t keys = a.sparse_index ? a.sparse_stride : a.kv_offset + a.n_q / 2 + 1;
  const int64_t per_item = std::max<int64_t>(1, hb * keys * (a.qk_dim + a.v_dim));
  const int64_t scores = a.sparse_index ? a.sparse_stride : a.n_kv;  // longest row of scores
  parallel_for(
      items,
      [&](int64_t i0, int64_t i1) { kt->attention(out, q, k, v, a, hb, i0, i1, scratch(size_t(hb * scores))); },
      std::max<int64_t>(1, kMinWorkPerPiece / per_item));
}

}  // namespace

void attention_causal(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::attention_causal(out, q, k, v, a);
  detail::check_attention(out, q, k, v, a);
  run_attention_items(kt, out, q, k, v, a);
}

// The SIMD path gathers the visible rows into one contiguous f32 buffer (decoding bf16 / int8 rows; kept per
// calling thread, apart from the kernels' scratch) and runs the contiguous kernel; the reference attends over
// the blocks directly.
void attention_paged(float* out, const float* q, const PagedKv& kv, const AttentionArgs& a) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::attention_paged(out, q, kv, a);
  detail::check_paged(kv, a);
  if (a.n_q == 0) return;
  thread_local std::vector<float> rows;
  rows.resize(size_t(a.n_kv * kv.row));
  if (kv.dtype == KvDType::F32) {
    for (int64_t s0 = 0; s0 < a.n_kv; s0 += kv.block_size) {
      const int64_t n = std::min(kv.block_size, a.n_kv - s0);
      std::memcpy(rows.data() + s0 * kv.row, kv.blocks[s0 / kv.block_size], size_t(n * kv.row) * sizeof(float));
    }
  } else {
    const int64_t rb = kv_row_bytes(kv.dtype, kv.row);
    for (int64_t s = 0; s < a.n_kv; ++s)
      kv_decode_row(kv.dtype, static_cast<const char*>(kv.blocks[s / kv.block_size]) + (s % kv.block_size) * rb,
                    kv.row, rows.data() + s * kv.row);
  }
  AttentionArgs c = a;
  c.k_stride = c.v_stride = kv.row;
  attention_causal(out, q, rows.data() + kv.k_offset, rows.data() + kv.v_offset, c);
}

// Sparse attention: per query, the rows its index names are gathered into a small contiguous buffer (decoding
// bf16 / int8 rows) and the contiguous kernel attends over them as one query that sees all of them, so the cost is
// O(k) per query whatever the context length. Many queries (prefill): threads take whole queries; few (decode):
// the heads of each query are split across threads. Either way every (query, head) output is the kernel's same
// operation sequence, so results do not depend on the thread count.
namespace {

template <class Gather>
void sparse_attention_fast(const cpu::Kernels* kt, float* out, const float* q, const SparseIndex& sel,
                           const AttentionArgs& a, int64_t k_offset, int64_t v_offset, int64_t width, Gather gather) {
  if (a.n_q == 0) return;
  const int64_t hpg = a.n_heads / a.n_kv_heads, threads = ThreadPool::global().size();
  auto one_query = [&](int64_t t, float* rows, int64_t hb, int64_t item0, int64_t item1) {
    AttentionArgs c = a;
    const int64_t n = sel.count[t];
    c.n_q = 1, c.n_kv = n, c.kv_offset = n - 1;
    c.k_stride = c.v_stride = width;
    kt->attention(out + t * a.out_stride, q + t * a.q_stride, rows + k_offset, rows + v_offset, c, hb, item0, item1,
                  scratch(size_t(hb * n)));
  };
  if (a.n_q >= threads) {
    const int64_t hb = std::min(cpu::kAttnMaxHeadBlock, hpg);
    const int64_t per_query = std::max<int64_t>(1, sel.stride * a.n_heads * (a.qk_dim + a.v_dim));
    parallel_for(
        a.n_q,
        [&](int64_t t0, int64_t t1) {
          thread_local std::vector<float> rows;
          for (int64_t t = t0; t < t1; ++t) {
            rows.resize(size_t(sel.count[t] * width));
            gather(rows.data(), sel.index + t * sel.stride, sel.count[t]);
            AttentionArgs one = a;
            one.n_q = 1;
            one_query(t, rows.data(), hb, 0, cpu::attention_items(one, hb));
          }
        },
        std::max<int64_t>(1, kMinWorkPerPiece / per_query));
    return;
  }
  thread_local std::vector<float> rows;
  for (int64_t t = 0; t < a.n_q; ++t) {
    rows.resize(size_t(sel.count[t] * width));
    gather(rows.data(), sel.index + t * sel.stride, sel.count[t]);
    AttentionArgs one = a;
    one.n_q = 1;
    int64_t hb = std::min(cpu::kAttnMaxHeadBlock, hpg);
    while (hb > 1 && cpu::attention_items(one, hb) < threads) hb = (hb + 1) / 2;
    const int64_t items = cpu::attention_items(one, hb);
    const int64_t per_item = std::max<int64_t>(1, hb * sel.count[t] * (a.qk_dim + a.v_dim));
    float* gathered = rows.data();  // the calling thread's buffer (inside the lambda `rows` would name the worker's)
    parallel_for(items, [&](int64_t i0, int64_t i1) { one_query(t, gathered, hb, i0, i1); },
                 std::max<int64_t>(1, kMinWorkPerPiece / per_item));
  }
}

}  // namespace

void attention_sparse(float* out, const float* q, const float* k, const float* v, const SparseIndex& sel,
                      const AttentionArgs& a) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::attention_sparse(out, q, k, v, sel, a);
  detail::check_sparse("attention_sparse", out, q, k, v, sel, a);
  // The kernel reads the listed rows in place: no gather.
  AttentionArgs c = a;
  c.sparse_index = sel.index, c.sparse_count = sel.count, c.sparse_stride = sel.stride;
  run_attention_items(kt, out, q, k, v, c);
}

void attention_sparse_paged(float* out, const float* q, const PagedKv& kv, const SparseIndex& sel,
                            const AttentionArgs& a) {
  const cpu::Kernels* kt = kernels();
  if (!kt) return reference::attention_sparse_paged(out, q, kv, sel, a);
  detail::check_paged(kv, a);
  const float dummy = 0;
  const float* any = a.n_q > 0 ? &dummy : nullptr;
  detail::check_sparse("attention_sparse_paged", out, q, any, any, sel, a);
  const int64_t rb = kv_row_bytes(kv.dtype, kv.row);
  int64_t listed = 0;
  for (int64_t t = 0; t < a.n_q; ++t) listed += sel.count[t];
  if (listed >= a.n_kv) {
    // Many queries (prefill): decode every row once, as attention_paged does, and let the kernel read the listed
    // rows in place — cheaper than gathering k rows per query.
    thread_local std::vector<float> rows;
    rows.resize(size_t(a.n_kv * kv.row));
    for (int64_t s0 = 0; s0 < a.n_kv; s0 += kv.block_size) {
      const int64_t n = std::min(kv.block_size, a.n_kv - s0);
      const char* src = static_cast<const char*>(kv.blocks[s0 / kv.block_size]);
      if (kv.dtype == KvDType::F32) std::memcpy(rows.data() + s0 * kv.row, src, size_t(n * rb));
      else
        for (int64_t i = 0; i < n; ++i) kv_decode_row(kv.dtype, src + i * rb, kv.row, rows.data() + (s0 + i) * kv.row);
    }
    AttentionArgs c = a;
    c.k_stride = c.v_stride = kv.row;
    c.sparse_index = sel.index, c.sparse_count = sel.count, c.sparse_stride = sel.stride;
    run_attention_items(kt, out, q, rows.data() + kv.k_offset, rows.data() + kv.v_offset, c);
    return;
  }
  // Few queries (decode): gather each query's listed rows (O(k), independent of the context length).
  sparse_attention_fast(kt, out, q, sel, a, kv.k_offset, kv.v_offset, kv.row,
                        [&](float* dst, const int32_t* idx, int64_t n) {
                          for (int64_t j = 0; j < n; ++j) {
                            const char* src = static_cast<const char*>(kv.blocks[idx[j] / kv.block_size]) +
                                              (idx[j] % kv.block_size) * rb;
                            if (kv.dtype == KvDType::F32) std::memcpy(dst + j * kv.row, src, size_t(rb));
                            else kv_decode_row(kv.dtype, src, kv.row, dst + j * kv.row);
                          }
                        });
}

void layernorm(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t dim, float eps,
               int64_t ldy, int64_t ldx) {
  // Only the DSA indexer's keys use it (one short row per token): the scalar form is fast enough and exact.
  reference::layernorm(y, x, w, b, rows, dim, eps, ldy, ldx);
}

// ---------------------------------------------------------------------------------------------------------
// KV row codecs
// ---------------------------------------------------------------------------------------------------------
const char* kv_dtype_name(KvDType t) {
  switch (t) {
    case KvDType::F32: return "f32";
    case KvDType::BF16: return "bf16";
    case KvDType::Int8: return "int8";
  }
  return "?";
}

KvDType kv_dtype_from_name(const std::string& n) {
  if (n == "f32") return KvDType::F32;
  if (n == "bf16") return KvDType::BF16;
  if (n == "int8") return KvDType::Int8;
  BALEINE_FAIL("unknown KV cache type '{}' (f32, bf16 or int8)", n);
}

namespace {
constexpr int64_t kKvGroup = 32;  // int8 values per scale
}

int64_t kv_row_bytes(KvDType t, int64_t row) {
  switch (t) {
    case KvDType::F32: return row * 4;
    case KvDType::BF16: return row * 2;
    case KvDType::Int8: return row + 4 * ((row + kKvGroup - 1) / kKvGroup);
  }
  return 0;
}

void kv_encode_row(KvDType t, const float* src, int64_t row, void* dst) {
  switch (t) {
    case KvDType::F32: std::memcpy(dst, src, size_t(row) * 4); return;
    case KvDType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < row; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case KvDType::Int8: {
      auto* codes = static_cast<int8_t*>(dst);
      auto* scales = reinterpret_cast<char*>(codes + row);
      for (int64_t g = 0; g * kKvGroup < row; ++g) {
        const int64_t i0 = g * kKvGroup, i1 = std::min(row, i0 + kKvGroup);
        float amax = 0;
        for (int64_t i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(src[i]));
        const float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        for (int64_t i = i0; i < i1; ++i) codes[i] = int8_t(std::lrintf(std::clamp(src[i] * inv, -127.0f, 127.0f)));
        std::memcpy(scales + 4 * g, &scale, 4);  // unaligned: rows are packed
      }
      return;
    }
  }
}

void kv_decode_row(KvDType t, const void* src, int64_t row, float* dst) {
  switch (t) {
    case KvDType::F32: std::memcpy(dst, src, size_t(row) * 4); return;
    case KvDType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < row; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case KvDType::Int8: {
      const auto* codes = static_cast<const int8_t*>(src);
      const auto* scales = reinterpret_cast<const char*>(codes + row);
      for (int64_t g = 0; g * kKvGroup < row; ++g) {
        float scale;
        std::memcpy(&scale, scales + 4 * g, 4);
        const int64_t i0 = g * kKvGroup, i1 = std::min(row, i0 + kKvGroup);
        for (int64_t i = i0; i < i1; ++i) dst[i] = float(codes[i]) * scale;
      }
      return;
    }
  }
}

}  // namespace baleine::ops
