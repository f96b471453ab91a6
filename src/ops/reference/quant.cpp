// ops/reference/quant.cpp — scalar quantisers and dequantisers of Q8_0, Q4_0, Q4_K and Q6_K.
//
// The quantisers follow llama.cpp's reference quantisers (quantize_row_*_ref in ggml-quants.c, what
// llama-quantize uses without an importance matrix) step for step, with the same float operations in the same
// order, so a tensor quantised here has the same bytes as one quantised by llama.cpp (tests check hand-built
// cases; the K-quant scale searches are reproduced, not approximated). Dequantisation is exact by
// construction: the value formulas of the block layouts in quant_blocks.h, evaluated in f32 as llama.cpp does.
#include <cmath>
#include <cstring>

#include "ops/internal.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"

namespace baleine::ops::reference {

namespace {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5·2^23 puts the integer in the low mantissa bits
// (llama.cpp's nearest_int; used wherever llama.cpp uses it so ties round the same way).
int nearest_int(float v) {
  float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero (llama.cpp GROUP_MAX_EPS)

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    // The value of largest magnitude, sign kept (the first one on ties), maps to code 0 (= −8·d).
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      // Truncation of v + 8.5 (v >= −8) is rounding half up; 16 (v = +8) is clamped to 15.
      const int q0 = std::min(15, int(int8_t(x[j] * id + 8.5f)));
      const int q1 = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
      y[b].qs[j] = uint8_t(q0 | q1 << 4);
    }
  }
}

// Asymmetric n-value group quantisation to codes 0..nmax: x ≈ scale·L − min_out. Starts from the min/max
// grid, then tries nstep+1 grid stretches (rmin + rdelta·is extra steps) and keeps the weighted least-squares
// (scale, min) fit with the smallest weighted squared error (llama.cpp make_qkx2_quants, use_mad = false).
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, uint8_t* Laux,
                    float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *min_out = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    const float diff = scale * float(L[i]) + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float fl = float(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * float(Laux[i]) + this_min - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best_error) {
      for (int i = 0; i < n; ++i) L[i] = Laux[i];
      best_error = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK], Laux[32];
  float weights[32], mins[8], scales[8];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xj = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xj[l]);  // favour large values
      scales[j] = fit_scale_min(32, 15, xj, weights, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // Sub-block scales and mins become 6-bit multiples of d = max_scale/63 and dmin = max_min/63.
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    BlockQ4_K& o = y[b];
    std::memset(o.scales, 0, sizeof o.scales);
    for (int j = 0; j < 8; ++j) {
      const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
      const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
      if (j < 4) {
        o.scales[j] = ls;
        o.scales[j + 4] = lm;
      } else {
        o.scales[j + 4] = uint8_t((ls & 0xF) | (lm & 0xF) << 4);
        o.scales[j - 4] |= uint8_t((ls >> 4) << 6);
        o.scales[j] |= uint8_t((lm >> 4) << 6);
      }
    }
    o.d = f32_to_f16(max_scale / 63.0f);
    o.dmin = f32_to_f16(max_min / 63.0f);
    // Re-quantise every value against the rounded scales it will be decoded with (a zero scale keeps the
    // codes of the fit, as llama.cpp does).
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      q4k_scale_min(j, o.scales, &sc, &m);
      const float d = f16_to_f32(o.d) * float(sc);
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(o.dmin) * float(m);
      for (int i = 0; i < 32; ++i)
        L[32 * j + i] = uint8_t(std::max(0, std::min(15, nearest_int((x[32 * j + i] + dm) / d))));
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) o.qs[32 * c + l] = uint8_t(L[64 * c + l] | L[64 * c + 32 + l] << 4);
  }
}

// Symmetric n-value group quantisation to codes −nmax..nmax−1 (stored + nmax): from the largest-magnitude
// value, tries 18 scale nudges and keeps the best x²-weighted least-squares scale (llama.cpp make_qx_quants
// with rmse_type 1 and no importance weights).
float fit_scale(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  auto code = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))); };
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + code(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[kQK];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    BlockQ6_K& o = y[b];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = fit_scale(16, 32, x + 16 * ib, L + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&o, 0, sizeof o);
      continue;
    }
    // Sub-block scales become int8 multiples of d; the largest-magnitude one maps to −128.
    const float iscale = -128.0f / max_scale;
    o.d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) o.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(o.d) * float(o.scales[j]);
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * j + i] / d))) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      uint8_t* ql = o.ql + 64 * h;
      uint8_t* qh = o.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0xF) | (Lh[l + 64] & 0xF) << 4);
        ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | (Lh[l + 96] & 0xF) << 4);
        qh[l] = uint8_t((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
      }
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 32; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((x[b].qs[j] & 0xF) - 8) * d;
      y[j + 16] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int c = 0; c < 4; ++c, y += 64) {
      uint8_t sc, m;
      q4k_scale_min(2 * c, x[b].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      q4k_scale_min(2 * c + 1, x[b].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      const uint8_t* q = x[b].qs + 32 * c;
      for (int l = 0; l < 32; ++l) y[l] = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

void check_row(const char* op, DType type, int64_t n) {
  OPS_CHECK(op, dtype_is_quantized(type), "{} is not a block-quantised type", dtype_name(type));
  OPS_CHECK(op, n >= 0 && n % dtype_block_elems(type) == 0, "{} values do not fill whole {} blocks of {}", n,
            dtype_name(type), dtype_block_elems(type));
}

}  // namespace

void quantize_row(DType type, const float* x, void* out, int64_t n) {
  check_row("quantize_row", type, n);
  const int64_t nb = n / dtype_block_elems(type);
  switch (type) {
    case DType::Q8_0: return quantize_q8_0(x, static_cast<BlockQ8_0*>(out), nb);
    case DType::Q4_0: return quantize_q4_0(x, static_cast<BlockQ4_0*>(out), nb);
    case DType::Q4_K: return quantize_q4_k(x, static_cast<BlockQ4_K*>(out), nb);
    case DType::Q6_K: return quantize_q6_k(x, static_cast<BlockQ6_K*>(out), nb);
    default: break;
  }
}

void dequantize_row(DType type, const void* blocks, float* y, int64_t n) {
  check_row("dequantize_row", type, n);
  const int64_t nb = n / dtype_block_elems(type);
  switch (type) {
    case DType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(blocks), y, nb);
    case DType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(blocks), y, nb);
    case DType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(blocks), y, nb);
    case DType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(blocks), y, nb);
    default: break;
  }
}

}  // namespace baleine::ops::reference
