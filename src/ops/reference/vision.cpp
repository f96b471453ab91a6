// ops/reference/vision.cpp — scalar oracles of the image ops (ops/vision.h), accumulating in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/internal.h"
#include "ops/vision.h"

namespace baleine::ops {

namespace detail {
void check_conv2d(const float* out, const float* x, const float* w, const Conv2dShape& s) {
  OPS_CHECK("conv2d", s.N >= 0 && s.H >= 0 && s.W >= 0 && s.Cin > 0 && s.Cout > 0, "bad shape N={} H={} W={} Cin={} Cout={}",
            s.N, s.H, s.W, s.Cin, s.Cout);
  OPS_CHECK("conv2d", s.K >= 1 && s.pad >= 0 && s.pad < s.K, "kernel {} with padding {}", s.K, s.pad);
  OPS_CHECK("conv2d", s.out_h() >= 1 && s.out_w() >= 1, "a {}×{} image is smaller than the {}×{} kernel", s.H, s.W,
            s.K, s.K);
  OPS_CHECK("conv2d", out && x && w, "null pointer");
  OPS_CHECK("conv2d", out != x, "out must not alias x");
}

void check_group_norm(const float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups) {
  OPS_CHECK("group_norm", N >= 0 && HW >= 1 && C >= 1, "bad shape N={} HW={} C={}", N, HW, C);
  OPS_CHECK("group_norm", groups >= 1 && C % groups == 0, "{} channels do not split into {} groups", C, groups);
  OPS_CHECK("group_norm", y && x, "null pointer");
}
}  // namespace detail

namespace reference {

void conv2d(float* out, const float* x, const float* w, const float* bias, const Conv2dShape& s) {
  detail::check_conv2d(out, x, w, s);
  const int64_t Ho = s.out_h(), Wo = s.out_w();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < Ho; ++oy)
      for (int64_t ox = 0; ox < Wo; ++ox)
        for (int64_t co = 0; co < s.Cout; ++co) {
          double acc = bias ? double(bias[co]) : 0.0;
          for (int64_t ky = 0; ky < s.K; ++ky) {
            const int64_t iy = oy + ky - s.pad;
            if (iy < 0 || iy >= s.H) continue;
            for (int64_t kx = 0; kx < s.K; ++kx) {
              const int64_t ix = ox + kx - s.pad;
              if (ix < 0 || ix >= s.W) continue;
              const float* px = x + ((n * s.H + iy) * s.W + ix) * s.Cin;
              const float* pw = w + ((co * s.K + ky) * s.K + kx) * s.Cin;
              for (int64_t c = 0; c < s.Cin; ++c) acc += double(px[c]) * double(pw[c]);
            }
          }
          out[((n * Ho + oy) * Wo + ox) * s.Cout + co] = float(acc);
        }
}

void group_norm(float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups, const float* gamma,
                const float* beta, float eps) {
  detail::check_group_norm(y, x, N, HW, C, groups);
  const int64_t cg = C / groups;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      const float* xi = x + n * HW * C + g * cg;
      float* yi = y + n * HW * C + g * cg;
      double mean = 0.0, var = 0.0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < cg; ++c) mean += double(xi[p * C + c]);
      mean /= double(HW * cg);
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < cg; ++c) var += (double(xi[p * C + c]) - mean) * (double(xi[p * C + c]) - mean);
      const double inv = 1.0 / std::sqrt(var / double(HW * cg) + double(eps));
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < cg; ++c) {
          const int64_t ch = g * cg + c;
          yi[p * C + c] = float((double(xi[p * C + c]) - mean) * inv * (gamma ? double(gamma[ch]) : 1.0) +
                                (beta ? double(beta[ch]) : 0.0));
        }
    }
}

void upsample_nearest2x(float* out, const float* x, int64_t N, int64_t H, int64_t W, int64_t C) {
  OPS_CHECK("upsample_nearest2x", N >= 0 && H >= 0 && W >= 0 && C >= 0, "negative size");
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < 2 * H; ++oy)
      for (int64_t ox = 0; ox < 2 * W; ++ox)
        for (int64_t c = 0; c < C; ++c)
          out[((n * 2 * H + oy) * 2 * W + ox) * C + c] = x[((n * H + oy / 2) * W + ox / 2) * C + c];
}

void gelu(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = double(x[i]);
    y[i] = float(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
  }
}

void attention_full(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t dk, int64_t dv,
                    float scale, int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldo) {
  OPS_CHECK("attention_full", n >= 0 && dk >= 1 && dv >= 1, "bad shape n={} dk={} dv={}", n, dk, dv);
  std::vector<double> s(size_t(std::max<int64_t>(n, 1)));
  for (int64_t t = 0; t < n; ++t) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int64_t c = 0; c < dk; ++c) dot += double(q[t * ldq + c]) * double(k[j * ldk + c]);
      s[size_t(j)] = dot * double(scale);
      mx = std::max(mx, s[size_t(j)]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
    for (int64_t c = 0; c < dv; ++c) {
      double acc = 0.0;
      for (int64_t j = 0; j < n; ++j) acc += s[size_t(j)] * double(v[j * ldv + c]);
      out[t * ldo + c] = float(acc / sum);
    }
  }
}

}  // namespace reference
}  // namespace baleine::ops
