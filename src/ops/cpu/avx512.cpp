// ops/cpu/avx512.cpp — the AVX-512 backend (F, BW, VL, DQ + FMA + F16C): 16 floats per vector, 32 registers.
// defines: cpu::kAvx512
//
// Compiled with AVX-512 flags (src/ops/CMakeLists.txt); only kAvx512 leaves this file (see kernels.h for why).
// Numerics: every dot product is f32 FMA chains in 16 lanes, lanes summed at the end; bf16 and f16 weights
// are widened exactly to f32 first (no vdpbf16ps: it would round x to bf16), so results match the double
// reference to ~1e-6 relative of the summed magnitudes.
// GCC 12's _mm512_undefined_*() (used inside many intrinsics) trips -Wuninitialized once inlined (GCC bug
// 105593, fixed in 12.3/13); the warning is about the header, not this file, so it is silenced here only.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/kernels.h"

namespace baleine::ops::cpu {
namespace {

constexpr int64_t V = 16;  // floats per vector

inline __mmask16 tail_mask(int64_t n) { return n >= V ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

// ---------------------------------------------------------------------------------------------------------
// e^x. n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in a part exact in n·hi plus a correction, so r is
// accurate to ~1e-11), e^r by Taylor to r^7 (truncation < 8e-9 relative for |r| <= ln2/2), times 2^n built
// in the exponent bits. Max relative error 7.9e-8 (1.3 units of 2^-24), measured against double exp over
// every float in [-87.33, 88.37]; test Fast.ExpAccuracy keeps it below 1.5e-7.
// Outside the normal range: x > 88.376 -> +inf, x < -87.336 (and -inf) -> 0 (results there would be
// > 2^127.5 or subnormal), NaN -> NaN.
// ---------------------------------------------------------------------------------------------------------
inline __m512 exp_ps(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.37626f), lo = _mm512_set1_ps(-87.33654f);
  const __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 xc = _mm512_max_ps(_mm512_min_ps(x, hi), lo);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 res = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  res = _mm512_mask_blend_ps(over, res, _mm512_set1_ps(__builtin_inff()));
  res = _mm512_maskz_mov_ps(__mmask16(~under), res);
  return _mm512_mask_blend_ps(nan, res, x);
}

// ---------------------------------------------------------------------------------------------------------
// Weight loaders: 16 consecutive weights widened to f32 (all exact).
// ---------------------------------------------------------------------------------------------------------
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadBF16 {  // bf16 is the top half of an f32: zero-extend to 32 bits and shift left by 16
  using T = uint16_t;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load(const uint16_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};

// ---------------------------------------------------------------------------------------------------------
// linear: an MR×NR register tile (MR rows of x, NR rows of W, MR·NR accumulators) walks K once. The NR
// weight vectors loaded per step are reused by MR rows of x, so weights are read once per MR rows.
// ---------------------------------------------------------------------------------------------------------
template <class L, int MR, int NR>
inline void linear_tile(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                        const float* bias, int64_t K) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + V <= K; k += V) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = L::load(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {  // masked tail: lanes past K load zeros and add nothing
    const __mmask16 m = tail_mask(K - k);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = L::load(w + j * ldw + k, m);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = _mm512_reduce_add_ps(acc[i][j]);
      if (bias) s += bias[j];
      y[i * ldy + j] = s;
    }
}

// All M rows against NR weight rows: the NR×K weight panel stays in L1/L2 while the x rows stream past.
template <class L, int NR>
inline void linear_panel(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                         const float* bias, int64_t M, int64_t K) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) linear_tile<L, 4, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K);
  switch (M - m) {
    case 3: linear_tile<L, 3, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K); break;
    case 2: linear_tile<L, 2, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K); break;
    case 1: linear_tile<L, 1, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K); break;
    default: break;
  }
}

template <class L>
void linear_impl(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                 const float* bias, int64_t M, int64_t n0, int64_t n1, int64_t K) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4)
    linear_panel<L, 4>(y + n, ldy, x, ldx, w + n * ldw, ldw, bias ? bias + n : nullptr, M, K);
  for (; n < n1; ++n) linear_panel<L, 1>(y + n, ldy, x, ldx, w + n * ldw, ldw, bias ? bias + n : nullptr, M, K);
}

void linear_f32(float* y, int64_t ldy, const float* x, int64_t ldx, const float* w, int64_t ldw, const float* bias,
                int64_t M, int64_t n0, int64_t n1, int64_t K) {
  linear_impl<LoadF32>(y, ldy, x, ldx, w, ldw, bias, M, n0, n1, K);
}
void linear_bf16(float* y, int64_t ldy, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, const float* bias,
                 int64_t M, int64_t n0, int64_t n1, int64_t K) {
  linear_impl<LoadBF16>(y, ldy, x, ldx, w, ldw, bias, M, n0, n1, K);
}
void linear_f16(float* y, int64_t ldy, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, const float* bias,
                int64_t M, int64_t n0, int64_t n1, int64_t K) {
  linear_impl<LoadF16>(y, ldy, x, ldx, w, ldw, bias, M, n0, n1, K);
}

template <class L>
void widen_impl(float* dst, int64_t ldd, const uint16_t* src, int64_t lds, int64_t rows, int64_t K) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t k = 0;
    for (; k + V <= K; k += V) _mm512_storeu_ps(dst + r * ldd + k, L::load(src + r * lds + k));
    if (k < K) _mm512_mask_storeu_ps(dst + r * ldd + k, tail_mask(K - k), L::load(src + r * lds + k, tail_mask(K - k)));
  }
}
void widen_bf16(float* d, int64_t ldd, const uint16_t* s, int64_t lds, int64_t rows, int64_t K) {
  widen_impl<LoadBF16>(d, ldd, s, lds, rows, K);
}
void widen_f16(float* d, int64_t ldd, const uint16_t* s, int64_t lds, int64_t rows, int64_t K) {
  widen_impl<LoadF16>(d, ldd, s, lds, rows, K);
}

// ---------------------------------------------------------------------------------------------------------
// Row-wise and element-wise ops.
// ---------------------------------------------------------------------------------------------------------
// Σ x[i]² with 4 independent accumulators (FMA latency), combined in a fixed order.
inline float sum_squares(const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * V <= n; i += 4 * V) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + V);
    const __m512 v2 = _mm512_loadu_ps(x + i + 2 * V), v3 = _mm512_loadu_ps(x + i + 3 * V);
    a0 = _mm512_fmadd_ps(v0, v0, a0), a1 = _mm512_fmadd_ps(v1, v1, a1);
    a2 = _mm512_fmadd_ps(v2, v2, a2), a3 = _mm512_fmadd_ps(v3, v3, a3);
  }
  for (; i < n; i += V) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    a0 = _mm512_fmadd_ps(v, v, a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

void rmsnorm(float* y, int64_t ldy, const float* x, int64_t ldx, const float* w, int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const double mean = double(sum_squares(xr, dim)) / double(dim > 0 ? dim : 1);
    const __m512 inv = _mm512_set1_ps(float(1.0 / __builtin_sqrt(mean + double(eps))));
    for (int64_t i = 0; i < dim; i += V) {
      const __mmask16 m = tail_mask(dim - i);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), inv);
      if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
      _mm512_mask_storeu_ps(yr + i, m, v);
    }
  }
}

inline float row_max(const float* x, int64_t n) {
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += V) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(mx);
}

// x[i] = e^(x[i] − mx) in place; returns the sum.
inline float exp_shift_sum(float* x, int64_t n, float mx) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

inline void scale_row(float* x, int64_t n, float s) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
  }
}

void softmax(float* x, int64_t ld, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const float mx = row_max(xr, n);
    if (mx == -__builtin_inff()) {  // all -inf: defined as all zeros
      for (int64_t i = 0; i < n; ++i) xr[i] = 0.0f;
      continue;
    }
    scale_row(xr, n, 1.0f / exp_shift_sum(xr, n, mx));
  }
}

inline __m512 silu_ps(__m512 g) {  // g / (1 + e^-g); e^-g = inf for g < -88 gives -0, the right limit
  return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

void silu(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, silu_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void swiglu(float* y, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = silu_ps(_mm512_maskz_loadu_ps(m, gate + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void axpy(float* y, float a, const float* x, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void exp_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += V) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// Plain loops: RoPE costs nothing next to the matmuls, and -O3 vectorises these under this file's flags.
void rope(float* x, int64_t n_heads, int64_t head_stride, const float* cs, const float* sn, int64_t half,
          bool interleaved) {
  for (int64_t h = 0; h < n_heads; ++h) {
    float* p = x + h * head_stride;
    if (interleaved) {
      for (int64_t j = 0; j < half; ++j) {
        const float a = p[2 * j], b = p[2 * j + 1];
        p[2 * j] = a * cs[j] - b * sn[j];
        p[2 * j + 1] = a * sn[j] + b * cs[j];
      }
    } else {
      float* q = p + half;
      for (int64_t j = 0; j < half; ++j) {
        const float a = p[j], b = q[j];
        p[j] = a * cs[j] - b * sn[j];
        q[j] = a * sn[j] + b * cs[j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Attention. One item = one query t, one kv head g and a block of HB <= 8 query heads of that group:
//   1. sc[h][s] = scale · q_h·k_s for the visible keys (each key row loaded once for the HB heads),
//   2. per head: softmax numerator e^(sc − max) in place and its sum,
//   3. out_h = Σ_s sc[h][s] · v_s / sum, in column blocks of CB vectors so the HB·CB accumulators stay in
//      registers and each value row is loaded once for the HB heads.
// Blocking sizes (KB keys, CB vectors) keep HB·KB and HB·CB at <= 16 of the 32 registers.
// ---------------------------------------------------------------------------------------------------------
// Scores of HB heads against KB keys: per 16-float step, HB query and KB key loads feed HB·KB FMAs. Each
// (head, key) is its own FMA chain over the head dimension, so the blocking changes no value.
template <int HB, int KB>
inline void attn_scores_tile(float* sc, int64_t n_vis, const float* const* qh, const float* const* kp, int64_t d,
                             float scale, int64_t s) {
  __m512 acc[HB][KB];
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < KB; ++j) acc[h][j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < d; i += V) {
    const __mmask16 m = tail_mask(d - i);
    __m512 kv[KB];
    for (int j = 0; j < KB; ++j) kv[j] = _mm512_maskz_loadu_ps(m, kp[j] + i);
    for (int h = 0; h < HB; ++h) {
      const __m512 qv = _mm512_maskz_loadu_ps(m, qh[h] + i);
      for (int j = 0; j < KB; ++j) acc[h][j] = _mm512_fmadd_ps(qv, kv[j], acc[h][j]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < KB; ++j) sc[h * n_vis + s + j] = _mm512_reduce_add_ps(acc[h][j]) * scale;
}

// Key row of position s: row s, or rows[s] when an index list names them (sparse attention; same arithmetic).
inline const float* key_row(const float* base, int64_t stride, const int32_t* rows, int64_t s) {
  return base + (rows ? int64_t(rows[s]) : s) * stride;
}

template <int HB>
void attn_scores(float* sc, int64_t n_vis, const float* const* qh, const float* k, int64_t k_stride, int64_t d,
                 float scale, const int32_t* rows) {
  constexpr int KB = HB <= 4 ? 4 : 2;
  const float* kp[KB];
  int64_t s = 0;
  for (; s + KB <= n_vis; s += KB) {
    for (int j = 0; j < KB; ++j) kp[j] = key_row(k, k_stride, rows, s + j);
    attn_scores_tile<HB, KB>(sc, n_vis, qh, kp, d, scale, s);
  }
  for (; s < n_vis; ++s) {
    kp[0] = key_row(k, k_stride, rows, s);
    attn_scores_tile<HB, 1>(sc, n_vis, qh, kp, d, scale, s);
  }
}

// Columns [c0, c0 + CB·16) of the outputs (the last vector masked by `last`).
template <int HB, int CB>
void attn_values(float* const* oh, const float* p, int64_t n_vis, const float* v, int64_t v_stride, int64_t c0,
                 __mmask16 last, const float* inv_sum, const int32_t* rows) {
  __m512 acc[HB][CB];
  for (int h = 0; h < HB; ++h)
    for (int c = 0; c < CB; ++c) acc[h][c] = _mm512_setzero_ps();
  for (int64_t s = 0; s < n_vis; ++s) {
    const float* vs = key_row(v, v_stride, rows, s) + c0;
    __m512 vv[CB];
    for (int c = 0; c < CB; ++c) vv[c] = _mm512_maskz_loadu_ps(c == CB - 1 ? last : __mmask16(0xffff), vs + c * V);
    for (int h = 0; h < HB; ++h) {
      const __m512 ph = _mm512_set1_ps(p[h * n_vis + s]);
      for (int c = 0; c < CB; ++c) acc[h][c] = _mm512_fmadd_ps(ph, vv[c], acc[h][c]);
    }
  }
  for (int h = 0; h < HB; ++h) {
    const __m512 is = _mm512_set1_ps(inv_sum[h]);
    for (int c = 0; c < CB; ++c)
      _mm512_mask_storeu_ps(oh[h] + c0 + c * V, c == CB - 1 ? last : __mmask16(0xffff), _mm512_mul_ps(acc[h][c], is));
  }
}

template <int HB>
void attn_block(float* const* oh, const float* const* qh, const float* k, const float* v, const AttentionArgs& a,
                int64_t n_vis, const int32_t* rows, float* sc) {
  attn_scores<HB>(sc, n_vis, qh, k, a.k_stride, a.qk_dim, a.scale, rows);
  float inv_sum[HB];
  for (int h = 0; h < HB; ++h) {
    float* row = sc + h * n_vis;
    inv_sum[h] = 1.0f / exp_shift_sum(row, n_vis, row_max(row, n_vis));
  }
  constexpr int CB = HB <= 4 ? 4 : 2;
  int64_t c = 0;
  for (; c + CB * V <= a.v_dim; c += CB * V) attn_values<HB, CB>(oh, sc, n_vis, v, a.v_stride, c, 0xffff, inv_sum, rows);
  for (; c < a.v_dim; c += V) attn_values<HB, 1>(oh, sc, n_vis, v, a.v_stride, c, tail_mask(a.v_dim - c), inv_sum, rows);
}

// Query order 0, n−1, 1, n−2, ...: a contiguous range of items mixes short (early) and long (late) causal rows,
// which balances the threads' work.
inline int64_t zigzag(int64_t i, int64_t n) { return (i & 1) ? n - 1 - (i >> 1) : (i >> 1); }

void attention(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a, int64_t head_block,
               int64_t item0, int64_t item1, float* scratch) {
  const int64_t hpg = a.n_heads / a.n_kv_heads, bpg = attention_blocks_per_group(a, head_block);
  for (int64_t item = item0; item < item1; ++item) {
    const int64_t t = zigzag(item / (a.n_kv_heads * bpg), a.n_q);
    const int64_t g = item / bpg % a.n_kv_heads, b = item % bpg;
    const int64_t h0 = g * hpg + b * head_block;
    const int64_t hb = hpg - b * head_block < head_block ? hpg - b * head_block : head_block;
    // Dense: keys 0 .. kv_offset + t. Sparse (a.sparse_index set): the count[t] rows the query's index list names.
    const int32_t* rows = a.sparse_index ? a.sparse_index + t * a.sparse_stride : nullptr;
    const int64_t n_vis = a.sparse_index ? int64_t(a.sparse_count[t]) : a.kv_offset + t + 1;
    const float* qh[kAttnMaxHeadBlock];
    float* oh[kAttnMaxHeadBlock];
    for (int64_t h = 0; h < hb; ++h) {
      qh[h] = q + t * a.q_stride + (h0 + h) * a.q_head_stride;
      oh[h] = out + t * a.out_stride + (h0 + h) * a.out_head_stride;
    }
    const float* kg = k + g * a.k_head_stride;
    const float* vg = v + g * a.v_head_stride;
    switch (hb) {
      case 8: attn_block<8>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 7: attn_block<7>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 6: attn_block<6>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 5: attn_block<5>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 4: attn_block<4>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 3: attn_block<3>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      case 2: attn_block<2>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
      default: attn_block<1>(oh, qh, kg, vg, a, n_vis, rows, scratch); break;
    }
  }
}

}  // namespace

const Kernels kAvx512 = {
    linear_f32, linear_bf16, linear_f16, widen_bf16, widen_f16, rmsnorm, softmax, silu, swiglu, add, axpy,
    exp_kernel, rope,        attention,
};

}  // namespace baleine::ops::cpu
