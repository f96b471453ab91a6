// ops/cpu/avx2.cpp — the AVX2 backend (AVX2 + FMA + F16C): 8 floats per vector, 16 registers.
// defines: cpu::kAvx2
//
// A complete implementation of its own (not a narrowed copy of avx512.cpp: no mask registers, half the
// registers, so tile shapes and tails differ). Compiled with -mavx2 -mfma -mf16c; only kAvx2 leaves this
// file (see kernels.h). Numerics as in avx512.cpp: f32 FMA chains per lane, bf16/f16 widened exactly.
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/kernels.h"

namespace baleine::ops::cpu {
namespace {

constexpr int64_t V = 8;  // floats per vector

// Lane i active when i < n (maskload/maskstore use the sign bit).
inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n < V ? n : V)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 load_tail(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail_mask(n)); }
inline void store_tail(float* p, int64_t n, __m256 v) { _mm256_maskstore_ps(p, tail_mask(n), v); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x, same method and range handling as avx512.cpp (Taylor to r^7 after reduction by n·ln 2):
// x > 88.376 -> +inf, x < -87.336 -> 0, NaN -> NaN; max relative error 7.9e-8 (every float checked).
inline __m256 exp_ps(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.37626f), lo = _mm256_set1_ps(-87.33654f);
  const __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  res = _mm256_blendv_ps(res, _mm256_set1_ps(__builtin_inff()), over);
  res = _mm256_andnot_ps(under, res);
  return _mm256_blendv_ps(res, x, nan);
}

// Weight loaders: 8 consecutive weights widened to f32; load(p, n) reads only the first n < 8.
struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 load(const float* p, int64_t n) { return load_tail(p, n); }
};
// 16-bit tails go through a zeroed stack copy: AVX2 has no masked 16-bit load.
inline __m128i load_u16_tail(const uint16_t* p, int64_t n) {
  alignas(16) uint16_t buf[8] = {};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
}
struct LoadBF16 {  // bf16 is the top half of an f32: zero-extend and shift left by 16
  using T = uint16_t;
  static __m256 widen(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
  static __m256 load(const uint16_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 load(const uint16_t* p, int64_t n) { return widen(load_u16_tail(p, n)); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 load(const uint16_t* p, int64_t n) { return _mm256_cvtph_ps(load_u16_tail(p, n)); }
};

// ---------------------------------------------------------------------------------------------------------
// linear: MR×NR register tile over K (MR·NR accumulators + NR weight vectors + 1 x vector <= 16 registers).
// ---------------------------------------------------------------------------------------------------------
template <class L, int MR, int NR>
inline void linear_tile(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                        const float* bias, int64_t K) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + V <= K; k += V) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = L::load(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {  // tail lanes are zero in both operands
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = L::load(w + j * ldw + k, K - k);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = load_tail(x + i * ldx + k, K - k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      if (bias) s += bias[j];
      y[i * ldy + j] = s;
    }
}

// All M rows against NR weight rows; MR_MAX rows of x per tile.
template <class L, int NR, int MR_MAX>
inline void linear_panel(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                         const float* bias, int64_t M, int64_t K) {
  int64_t m = 0;
  for (; m + MR_MAX <= M; m += MR_MAX) linear_tile<L, MR_MAX, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K);
  for (; m < M; ++m) linear_tile<L, 1, NR>(y + m * ldy, ldy, x + m * ldx, ldx, w, ldw, bias, K);
}

// M <= 2 (decode): 4 weight rows per panel so there are enough independent FMA chains; otherwise 4 x rows ×
// 2 weight rows. Either way each output is the same chain, so the choice does not change any value.
template <class L>
void linear_impl(float* y, int64_t ldy, const float* x, int64_t ldx, const typename L::T* w, int64_t ldw,
                 const float* bias, int64_t M, int64_t n0, int64_t n1, int64_t K) {
  int64_t n = n0;
  auto b = [&](int64_t i) { return bias ? bias + i : nullptr; };
  if (M <= 2) {
    for (; n + 4 <= n1; n += 4) linear_panel<L, 4, 2>(y + n, ldy, x, ldx, w + n * ldw, ldw, b(n), M, K);
  } else {
    for (; n + 2 <= n1; n += 2) linear_panel<L, 2, 4>(y + n, ldy, x, ldx, w + n * ldw, ldw, b(n), M, K);
  }
  for (; n < n1; ++n) linear_panel<L, 1, 4>(y + n, ldy, x, ldx, w + n * ldw, ldw, b(n), M, K);
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
    for (; k + V <= K; k += V) _mm256_storeu_ps(dst + r * ldd + k, L::load(src + r * lds + k));
    if (k < K) store_tail(dst + r * ldd + k, K - k, L::load(src + r * lds + k, K - k));
  }
}
void widen_bf16(float* d, int64_t ldd, const uint16_t* s, int64_t lds, int64_t rows, int64_t K) {
  widen_impl<LoadBF16>(d, ldd, s, lds, rows, K);
}
void widen_f16(float* d, int64_t ldd, const uint16_t* s, int64_t lds, int64_t rows, int64_t K) {
  widen_impl<LoadF16>(d, ldd, s, lds, rows, K);
}

// ---------------------------------------------------------------------------------------------------------
// Row-wise and element-wise ops. Tails use maskload/maskstore (masked-off lanes are never touched).
// ---------------------------------------------------------------------------------------------------------
inline float sum_squares(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * V <= n; i += 4 * V) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + V);
    const __m256 v2 = _mm256_loadu_ps(x + i + 2 * V), v3 = _mm256_loadu_ps(x + i + 3 * V);
    a0 = _mm256_fmadd_ps(v0, v0, a0), a1 = _mm256_fmadd_ps(v1, v1, a1);
    a2 = _mm256_fmadd_ps(v2, v2, a2), a3 = _mm256_fmadd_ps(v3, v3, a3);
  }
  for (; i < n; i += V) {
    const __m256 v = load_tail(x + i, n - i);
    a0 = _mm256_fmadd_ps(v, v, a0);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

void rmsnorm(float* y, int64_t ldy, const float* x, int64_t ldx, const float* w, int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const double mean = double(sum_squares(xr, dim)) / double(dim > 0 ? dim : 1);
    const __m256 inv = _mm256_set1_ps(float(1.0 / __builtin_sqrt(mean + double(eps))));
    int64_t i = 0;
    for (; i + V <= dim; i += V) {
      __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + i), inv);
      if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
      _mm256_storeu_ps(yr + i, v);
    }
    if (i < dim) {
      __m256 v = _mm256_mul_ps(load_tail(xr + i, dim - i), inv);
      if (w) v = _mm256_mul_ps(v, load_tail(w + i, dim - i));
      store_tail(yr + i, dim - i, v);
    }
  }
}

inline float row_max(const float* x, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  __m256 mx = ninf;
  int64_t i = 0;
  for (; i + V <= n; i += V) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
  if (i < n) mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, load_tail(x + i, n - i), _mm256_castsi256_ps(tail_mask(n - i))));
  return hmax(mx);
}

// x[i] = e^(x[i] − mx) in place; returns the sum.
inline float exp_shift_sum(float* x, int64_t n, float mx) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + V <= n; i += V) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {
    const __m256 m = _mm256_castsi256_ps(tail_mask(n - i));
    const __m256 e = _mm256_and_ps(m, exp_ps(_mm256_sub_ps(load_tail(x + i, n - i), vm)));
    store_tail(x + i, n - i, e);
    sum = _mm256_add_ps(sum, e);
  }
  return hsum(sum);
}

inline void scale_row(float* x, int64_t n, float s) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + V <= n; i += V) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
  if (i < n) store_tail(x + i, n - i, _mm256_mul_ps(load_tail(x + i, n - i), vs));
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

inline __m256 silu_ps(__m256 g) {  // g / (1 + e^-g); e^-g = inf for g < -88 gives -0, the right limit
  return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

// Element-wise driver: full vectors, then one masked tail. f(a, b) gets the loaded inputs.
template <class F>
inline void map2(float* y, const float* a, const float* b, int64_t n, F f) {
  int64_t i = 0;
  for (; i + V <= n; i += V) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) store_tail(y + i, n - i, f(load_tail(a + i, n - i), load_tail(b + i, n - i)));
}

void silu(float* y, const float* x, int64_t n) {
  map2(y, x, x, n, [](__m256 a, __m256) { return silu_ps(a); });
}
void swiglu(float* y, const float* gate, const float* up, int64_t n) {
  map2(y, gate, up, n, [](__m256 g, __m256 u) { return _mm256_mul_ps(silu_ps(g), u); });
}
void add(float* y, const float* x, int64_t n) {
  map2(y, y, x, n, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); });
}
void axpy(float* y, float a, const float* x, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  map2(y, y, x, n, [va](__m256 yv, __m256 xv) { return _mm256_fmadd_ps(va, xv, yv); });
}
void exp_kernel(float* y, const float* x, int64_t n) {
  map2(y, x, x, n, [](__m256 a, __m256) { return exp_ps(a); });
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
// Attention: same three passes as avx512.cpp (scores for HB <= 8 heads per key row, softmax numerators,
// values in column blocks). With 16 registers: KB keys and CB value vectors such that HB·KB, HB·CB <= 12.
// ---------------------------------------------------------------------------------------------------------
template <int HB, int KB>
inline void attn_scores_tile(float* sc, int64_t n_vis, const float* const* qh, const float* const* kp, int64_t d,
                             float scale, int64_t s) {
  __m256 acc[HB][KB];
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < KB; ++j) acc[h][j] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + V <= d; i += V) {
    __m256 kv[KB];
    for (int j = 0; j < KB; ++j) kv[j] = _mm256_loadu_ps(kp[j] + i);
    for (int h = 0; h < HB; ++h) {
      const __m256 qv = _mm256_loadu_ps(qh[h] + i);
      for (int j = 0; j < KB; ++j) acc[h][j] = _mm256_fmadd_ps(qv, kv[j], acc[h][j]);
    }
  }
  if (i < d) {
    __m256 kv[KB];
    for (int j = 0; j < KB; ++j) kv[j] = load_tail(kp[j] + i, d - i);
    for (int h = 0; h < HB; ++h) {
      const __m256 qv = load_tail(qh[h] + i, d - i);
      for (int j = 0; j < KB; ++j) acc[h][j] = _mm256_fmadd_ps(qv, kv[j], acc[h][j]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < KB; ++j) sc[h * n_vis + s + j] = hsum(acc[h][j]) * scale;
}

// Key row of position s: row s, or rows[s] when an index list names them (sparse attention; same arithmetic).
inline const float* key_row(const float* base, int64_t stride, const int32_t* rows, int64_t s) {
  return base + (rows ? int64_t(rows[s]) : s) * stride;
}

template <int HB>
void attn_scores(float* sc, int64_t n_vis, const float* const* qh, const float* k, int64_t k_stride, int64_t d,
                 float scale, const int32_t* rows) {
  constexpr int KB = HB <= 6 ? 2 : 1;
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

// Columns [c0, c0 + CB·8) of the outputs; `last` = valid lanes of the final vector (8 when full).
template <int HB, int CB>
void attn_values(float* const* oh, const float* p, int64_t n_vis, const float* v, int64_t v_stride, int64_t c0,
                 int64_t last, const float* inv_sum, const int32_t* rows) {
  __m256 acc[HB][CB];
  for (int h = 0; h < HB; ++h)
    for (int c = 0; c < CB; ++c) acc[h][c] = _mm256_setzero_ps();
  const __m256i lm = tail_mask(last);
  for (int64_t s = 0; s < n_vis; ++s) {
    const float* vs = key_row(v, v_stride, rows, s) + c0;
    __m256 vv[CB];
    for (int c = 0; c < CB; ++c) vv[c] = c == CB - 1 ? _mm256_maskload_ps(vs + c * V, lm) : _mm256_loadu_ps(vs + c * V);
    for (int h = 0; h < HB; ++h) {
      const __m256 ph = _mm256_broadcast_ss(p + h * n_vis + s);
      for (int c = 0; c < CB; ++c) acc[h][c] = _mm256_fmadd_ps(ph, vv[c], acc[h][c]);
    }
  }
  for (int h = 0; h < HB; ++h) {
    const __m256 is = _mm256_set1_ps(inv_sum[h]);
    for (int c = 0; c < CB; ++c) {
      const __m256 o = _mm256_mul_ps(acc[h][c], is);
      if (c == CB - 1) _mm256_maskstore_ps(oh[h] + c0 + c * V, lm, o);
      else _mm256_storeu_ps(oh[h] + c0 + c * V, o);
    }
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
  constexpr int CB = HB <= 6 ? 2 : 1;
  int64_t c = 0;
  for (; c + CB * V <= a.v_dim; c += CB * V) attn_values<HB, CB>(oh, sc, n_vis, v, a.v_stride, c, V, inv_sum, rows);
  for (; c < a.v_dim; c += V) attn_values<HB, 1>(oh, sc, n_vis, v, a.v_stride, c, a.v_dim - c, inv_sum, rows);
}

// Query order 0, n−1, 1, n−2, ...: contiguous item ranges mix short and long causal rows (thread balance).
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

const Kernels kAvx2 = {
    linear_f32, linear_bf16, linear_f16, widen_bf16, widen_f16, rmsnorm, softmax, silu, swiglu, add, axpy,
    exp_kernel, rope,        attention,
};

}  // namespace baleine::ops::cpu
