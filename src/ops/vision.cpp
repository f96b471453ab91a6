// ops/vision.cpp — the fast image ops: convolution as im2col bands through ops::linear's GEMM kernels,
// GroupNorm and upsampling split over the pool. Same contracts as ops/reference/vision.cpp (the oracle); pieces
// depend only on the shapes, so results are identical for any thread count.
#include "ops/vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/threadpool.h"
#include "ops/internal.h"

namespace baleine::ops {

namespace {
bool use_reference() { return active_backend() == Backend::Reference; }
constexpr int64_t kIm2colBytes = int64_t(8) << 20;  // one band of patches: fits L2/L3, amortises the GEMM calls
}  // namespace

void conv2d(float* out, const float* x, const float* w, const float* bias, const Conv2dShape& s) {
  if (use_reference()) return reference::conv2d(out, x, w, bias, s);
  detail::check_conv2d(out, x, w, s);
  const int64_t Ho = s.out_h(), Wo = s.out_w(), patch = s.K * s.K * s.Cin;
  const WeightRef wr{w, DType::F32, s.Cout, patch, 0};
  if (s.K == 1) return linear(out, x, wr, bias, s.N * s.H * s.W);  // pad < K forces pad 0
  const int64_t band = std::clamp<int64_t>(kIm2colBytes / (Wo * patch * 4), 1, Ho);  // output rows per band
  std::vector<float> cols(size_t(band * Wo * patch));  // [band·Wo, K·K·Cin]
  for (int64_t n = 0; n < s.N; ++n) {
    const float* xi = x + n * s.H * s.W * s.Cin;
    for (int64_t y0 = 0; y0 < Ho; y0 += band) {
      const int64_t rows = std::min(band, Ho - y0);
      parallel_for(rows * Wo, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t oy = y0 + p / Wo, ox = p % Wo;
          float* dst = cols.data() + p * patch;
          for (int64_t ky = 0; ky < s.K; ++ky) {
            const int64_t iy = oy + ky - s.pad;
            for (int64_t kx = 0; kx < s.K; ++kx, dst += s.Cin) {
              const int64_t ix = ox + kx - s.pad;
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) std::memset(dst, 0, size_t(s.Cin) * 4);
              else std::memcpy(dst, xi + (iy * s.W + ix) * s.Cin, size_t(s.Cin) * 4);
            }
          }
        }
      }, 64);
      linear(out + ((n * Ho + y0) * Wo) * s.Cout, cols.data(), wr, bias, rows * Wo);
    }
  }
}

void group_norm(float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups, const float* gamma,
                const float* beta, float eps) {
  if (use_reference()) return reference::group_norm(y, x, N, HW, C, groups, gamma, beta, eps);
  detail::check_group_norm(y, x, N, HW, C, groups);
  const int64_t cg = C / groups;
  // y = (x − mean)·scale + shift per (image, channel); subtracting the mean first keeps small variances exact
  // (folding it into the shift would cancel catastrophically when 1/σ is large).
  std::vector<float> mean_of(size_t(N * C)), scale(size_t(N * C)), shift(size_t(N * C));
  parallel_for(N * groups, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t n = i / groups, g = i % groups;
      const float* xi = x + n * HW * C + g * cg;
      double sum = 0.0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < cg; ++c) sum += double(xi[p * C + c]);
      const double mean = sum / double(HW * cg);
      double var = 0.0;  // two passes: no cancellation when the mean is large
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < cg; ++c) {
          const double d = double(xi[p * C + c]) - mean;
          var += d * d;
        }
      const double inv = 1.0 / std::sqrt(var / double(HW * cg) + double(eps));
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t ch = g * cg + c;
        const double a = inv * (gamma ? double(gamma[ch]) : 1.0);
        mean_of[size_t(n * C + ch)] = float(mean);
        scale[size_t(n * C + ch)] = float(a);
        shift[size_t(n * C + ch)] = beta ? beta[ch] : 0.0f;
      }
    }
  });
  parallel_for(N * HW, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* m = mean_of.data() + (r / HW) * C;
      const float* a = scale.data() + (r / HW) * C;
      const float* b = shift.data() + (r / HW) * C;
      const float* xr = x + r * C;
      float* yr = y + r * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = std::fma(xr[c] - m[c], a[c], b[c]);
    }
  }, 16);
}

void upsample_nearest2x(float* out, const float* x, int64_t N, int64_t H, int64_t W, int64_t C) {
  if (use_reference()) return reference::upsample_nearest2x(out, x, N, H, W, C);
  OPS_CHECK("upsample_nearest2x", N >= 0 && H >= 0 && W >= 0 && C >= 0, "negative size");
  parallel_for(N * 2 * H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / (2 * H), oy = r % (2 * H);
      const float* src = x + ((n * H + oy / 2) * W) * C;
      float* dst = out + r * 2 * W * C;
      for (int64_t ix = 0; ix < W; ++ix) {
        std::memcpy(dst + (2 * ix) * C, src + ix * C, size_t(C) * 4);
        std::memcpy(dst + (2 * ix + 1) * C, src + ix * C, size_t(C) * 4);
      }
    }
  });
}

void gelu(float* y, const float* x, int64_t n) {
  if (use_reference()) return reference::gelu(y, x, n);
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * float(M_SQRT1_2)));
  }, 4096);
}

void attention_full(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t dk, int64_t dv,
                    float scale, int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldo) {
  if (use_reference()) return reference::attention_full(out, q, k, v, n, dk, dv, scale, ldq, ldk, ldv, ldo);
  OPS_CHECK("attention_full", n >= 0 && dk >= 1 && dv >= 1, "bad shape n={} dk={} dv={}", n, dk, dv);
  if (n == 0) return;
  std::vector<float> s(size_t(n * n));  // [n, n] scores, then probabilities
  matmul_f32(s.data(), q, k, n, n, dk, true, ldq, ldk, n, scale, 0.0f);
  softmax_rows(s.data(), n, n);
  matmul_f32(out, s.data(), v, n, dv, n, false, n, ldv, ldo, 1.0f, 0.0f);
}

}  // namespace baleine::ops
