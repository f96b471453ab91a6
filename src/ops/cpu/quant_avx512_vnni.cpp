// ops/cpu/quant_avx512_vnni.cpp — integer quantised-linear kernels with AVX512-VNNI: vpdpbusd does the
// u8 × s8 dot product and its accumulation in one instruction, vpdpwssd the scale-weighted int16 sums.
// 256-bit EVEX forms (AVX512VL), same kernel bodies as AVX2 (quant_kernels.inc). Compiled with the AVX-512
// flags plus -mavx512vnni; chosen at run time only when the CPU reports AVX512-VNNI.
#include <immintrin.h>

// GCC 12 reports "'__Y' may be used uninitialized" inside its own AVX-512 intrinsics (the self-initialised
// _mm512_undefined_* they use as pass-through operands) once they are inlined here; a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstdint>
#include <cstring>

#include "ops/cpu/quant_kernels.h"
#include "ops/quant_blocks.h"

namespace baleine::ops::cpu {
namespace {

inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
inline __m256i madd_acc(__m256i acc, __m256i p, __m256i w) { return _mm256_dpwssd_epi32(acc, p, w); }

#include "ops/cpu/quant_kernels.inc"

// 512-bit Q8_0 / Q4_0 kernels: one vector holds two 32-value blocks. Weights go in unsigned (Q8_0: w + 128 by
// flipping the sign bit; Q4_0: the raw nibble u, value u − 8), so vpdpbusd needs no per-row sign fix-up: the
// offset's contribution (128 or 8 times the sum of each 4 activation codes) is subtracted by starting the
// accumulator at that multiple of s4neg. Each block pair then costs one dot instruction, one conversion and
// one FMA per activation row, with the scale vector dw ⊗ dx16 from one multiply; tiles of 4 weight rows × 4
// activation rows share every load.

void pair_acts(const int8_t* q, const float* d, int64_t M, int64_t K, int32_t* s4neg, float* dx16) {
  const __m512i ones = _mm512_set1_epi8(1);
  const int64_t nb = K / 32, np = K / 64;
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* qm = q + m * K;
    int32_t* sm = s4neg + m * (K / 4);
    for (int64_t k = 0; k + 64 <= K; k += 64) {
      const __m512i s4 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(qm + k));
      _mm512_storeu_si512(sm + k / 4, _mm512_sub_epi32(_mm512_setzero_si512(), s4));
    }
    for (int64_t k = K / 64 * 64; k < K; k += 4) sm[k / 4] = -(qm[k] + qm[k + 1] + qm[k + 2] + qm[k + 3]);
    const float* dm = d + m * nb;
    float* xm = dx16 + m * np * 16;
    for (int64_t p = 0; p < np; ++p)
      _mm512_storeu_ps(xm + 16 * p, _mm512_insertf32x8(_mm512_set1_ps(dm[2 * p]), _mm256_set1_ps(dm[2 * p + 1]), 1));
  }
}

inline __m512i pair_q8_0(const BlockQ8_0* b) {  // w + 128 as u8
  const __m512i v = _mm512_inserti64x4(
      _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
  return _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80)));
}
inline __m512i pair_q4_0(const BlockQ4_0* b) {  // the nibbles u in value order
  const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
  const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
  const __m512i t = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_set_m128i(_mm_srli_epi16(v0, 4), v0)),
                                       _mm256_set_m128i(_mm_srli_epi16(v1, 4), v1), 1);
  return _mm512_and_si512(t, _mm512_set1_epi8(0x0F));
}

// NR weight rows × MR activation rows per pass over K: each unpacked weight pair serves MR rows and each
// activation load serves NR weight rows (16 accumulators, 29 of the 32 vector registers).
template <class Block, __m512i (*Pair)(const Block*), int Shift, __m256i (*Unpack)(const Block*), int NR, int MR>
inline void tile_pairs(float* y, int64_t ldy, const QuantActs& a, int64_t m0, const Block* const* wr, int64_t nb,
                       const float* bias, const char* const* next) {
  __m512 acc[NR][MR];
  for (int i = 0; i < NR; ++i)
    for (int r = 0; r < MR; ++r) acc[i][r] = _mm512_setzero_ps();
  const int64_t np = nb / 2, K = a.K;
  for (int64_t p = 0; p < np; ++p) {
    __m512i w[NR];
    __m512 dw[NR];
    for (int i = 0; i < NR; ++i) {
      const Block* b = wr[i] + 2 * p;
      if (next[i]) _mm_prefetch(next[i] + 2 * p * int64_t(sizeof(Block)), _MM_HINT_T0);
      w[i] = Pair(b);
      dw[i] = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(short(b[1].d)), _mm_set1_epi16(short(b[0].d))));
    }
    for (int r = 0; r < MR; ++r) {
      const int64_t row = m0 + r;
      const __m512i start = _mm512_slli_epi32(_mm512_loadu_si512(a.s4neg + row * (K / 4) + 16 * p), Shift);
      const __m512i x = _mm512_loadu_si512(a.q + row * K + 64 * p);
      const __m512 dx = _mm512_loadu_ps(a.dx16 + (row * (K / 64) + p) * 16);
      for (int i = 0; i < NR; ++i) {
        const __m512i dot = _mm512_dpbusd_epi32(start, w[i], x);
        acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], dx), acc[i][r]);
      }
    }
  }
  for (int i = 0; i < NR; ++i) {
    float tail[MR] = {};
    if (nb % 2) {  // odd block count: the last block as in the 256-bit kernel
      const Block* b = wr[i] + nb - 1;
      const __m256i wv = Unpack(b);
      const __m256i wabs = _mm256_sign_epi8(wv, wv);
      const float dwt = f16_to_f32_hw(b->d);
      for (int r = 0; r < MR; ++r) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + (m0 + r) * K + 32 * (nb - 1)));
        const __m256i dot = dot_u8s8(_mm256_setzero_si256(), wabs, _mm256_sign_epi8(xv, wv));
        tail[r] = float(hsum8i(dot)) * (dwt * a.d[(m0 + r) * nb + nb - 1]);
      }
    }
    for (int r = 0; r < MR; ++r)
      y[(m0 + r) * ldy + i] = _mm512_reduce_add_ps(acc[i][r]) + tail[r] + (bias ? bias[i] : 0.0f);
  }
}

template <class Block, __m512i (*Pair)(const Block*), int Shift, __m256i (*Unpack)(const Block*), int NR>
inline void rows_pairs(float* y, int64_t ldy, const QuantActs& a, int64_t M, const Block* const* wr, int64_t nb,
                       const float* bias, const char* const* next) {
  int64_t m = 0;
  for (; m + kMR <= M; m += kMR) tile_pairs<Block, Pair, Shift, Unpack, NR, kMR>(y, ldy, a, m, wr, nb, bias, next);
  switch (M - m) {
    case 3: tile_pairs<Block, Pair, Shift, Unpack, NR, 3>(y, ldy, a, m, wr, nb, bias, next); break;
    case 2: tile_pairs<Block, Pair, Shift, Unpack, NR, 2>(y, ldy, a, m, wr, nb, bias, next); break;
    case 1: tile_pairs<Block, Pair, Shift, Unpack, NR, 1>(y, ldy, a, m, wr, nb, bias, next); break;
    default: break;
  }
}

template <class Block, __m512i (*Pair)(const Block*), int Shift, __m256i (*Unpack)(const Block*)>
void linear_pairs(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                  const float* bias, int64_t n0, int64_t n1) {
  constexpr int NR = 4;
  const int64_t nb = a.K / 32;
  for (int64_t n = n0; n < n1; n += NR) {
    const Block* wr[NR];
    const int nr = int(n1 - n < NR ? n1 - n : NR);
    for (int i = 0; i < nr; ++i) wr[i] = reinterpret_cast<const Block*>(w + size_t(n + i) * row_bytes);
    const float* bn = bias ? bias + n : nullptr;
    // Decode streams each row once: while a tile runs, its pass over K also prefetches the next tile's rows at
    // the same offset, so short rows (K = 2048: 2 KB) do not wait for the hardware prefetcher at each start.
    const char* next[NR] = {};
    if (M <= 2)
      for (int i = 0; i < NR && n + NR + i < n1; ++i) next[i] = reinterpret_cast<const char*>(w + size_t(n + NR + i) * row_bytes);
    switch (nr) {
      case 4: rows_pairs<Block, Pair, Shift, Unpack, 4>(y + n, ldy, a, M, wr, nb, bn, next); break;
      case 3: rows_pairs<Block, Pair, Shift, Unpack, 3>(y + n, ldy, a, M, wr, nb, bn, next); break;
      case 2: rows_pairs<Block, Pair, Shift, Unpack, 2>(y + n, ldy, a, M, wr, nb, bn, next); break;
      default: rows_pairs<Block, Pair, Shift, Unpack, 1>(y + n, ldy, a, M, wr, nb, bn, next); break;
    }
  }
}

void linear_q8_0_512(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                     const float* bias, int64_t n0, int64_t n1) {
  linear_pairs<BlockQ8_0, pair_q8_0, 7, unpack_q8_0>(y, ldy, a, M, w, row_bytes, bias, n0, n1);
}
void linear_q4_0_512(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                     const float* bias, int64_t n0, int64_t n1) {
  linear_pairs<BlockQ4_0, pair_q4_0, 3, unpack_q4_0>(y, ldy, a, M, w, row_bytes, bias, n0, n1);
}

// Q4_K with 512-bit vectors: chunk c of a super-block (32 bytes: sub-block 2c in the low nibbles, 2c+1 in the
// high ones) becomes one vector of 64 codes in value order, against 64 contiguous activation codes;
// vpmaddubsw gives 32 int16 pair sums, vpdpwssd weights them by [sc_2c ×16, sc_2c+1 ×16] into 16 int32.
template <int MR>
inline void row_q4_k_512(float* y, int64_t ldy, const QuantActs& a, int64_t m0, const BlockQ4_K* wr, int64_t nb,
                         float bias, const char* next) {
  __m512 acc[MR];
  __m256 accm[MR];  // the mins term, kept in vector lanes until the end
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const int64_t nsub = a.K / 16;
  for (int64_t b = 0; b < nb; ++b) {
    if (next)
      for (int64_t off = 0; off < int64_t(sizeof(BlockQ4_K)); off += 64) _mm_prefetch(next + b * int64_t(sizeof(BlockQ4_K)) + off, _MM_HINT_T0);
    const BlockQ4_K& B = wr[b];
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) q4k_scale_min(j, B.scales, &sc[j], &mn[j]);
    const float d = f16_to_f32_hw(B.d), dmin = f16_to_f32_hw(B.dmin);
    __m512i q[4], scv[4];
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B.qs + 32 * c));
      const __m512i both = _mm512_inserti64x4(_mm512_zextsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
      q[c] = _mm512_and_si512(both, low4);
      scv[c] = _mm512_inserti64x4(_mm512_set1_epi16(short(sc[2 * c])), _mm256_set1_epi16(short(sc[2 * c + 1])), 1);
    }
    int64_t mins64;
    std::memcpy(&mins64, mn, 8);
    const __m128i m8 = _mm_cvtsi64_si128(mins64);
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    for (int r = 0; r < MR; ++r) {
      const int8_t* xq = a.q + (m0 + r) * a.K + kQK * b;
      __m512i isum = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c)
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[c], _mm512_loadu_si512(xq + 64 * c)), scv[c]);
      const float dx = a.d[(m0 + r) * nb + b];
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dx), acc[r]);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsum + (m0 + r) * nsub + 16 * b));
      accm[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16)), _mm256_set1_ps(dmin * dx), accm[r]);
    }
  }
  for (int r = 0; r < MR; ++r) y[(m0 + r) * ldy] = _mm512_reduce_add_ps(acc[r]) - hsum8(accm[r]) + bias;
}

void linear_q4_k_512(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                     const float* bias, int64_t n0, int64_t n1) {
  const int64_t nb = a.K / kQK;
  for (int64_t n = n0; n < n1; ++n) {
    const BlockQ4_K* wr = reinterpret_cast<const BlockQ4_K*>(w + size_t(n) * row_bytes);
    const float bn = bias ? bias[n] : 0.0f;
    const char* next = next_row(w, row_bytes, M, n, n1);
    int64_t m = 0;
    for (; m + kMR <= M; m += kMR) row_q4_k_512<kMR>(y + n, ldy, a, m, wr, nb, bn, next);
    switch (M - m) {
      case 3: row_q4_k_512<3>(y + n, ldy, a, m, wr, nb, bn, next); break;
      case 2: row_q4_k_512<2>(y + n, ldy, a, m, wr, nb, bn, next); break;
      case 1: row_q4_k_512<1>(y + n, ldy, a, m, wr, nb, bn, next); break;
      default: break;
    }
  }
}

}  // namespace

const QuantKernels kAvx512VnniQuant = {quantize_acts, pair_acts, linear_q8_0_512, linear_q4_0_512, linear_q4_k_512, linear_q6_k};

}  // namespace baleine::ops::cpu
