// ops/reference/norm.cpp — scalar oracles for rmsnorm and softmax_rows, in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/internal.h"

namespace baleine::ops::reference {

void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps, int64_t ldy, int64_t ldx) {
  detail::check_rows("rmsnorm", rows, dim, ldy, ldx);
  ldy = detail::dense(ldy, dim);
  ldx = detail::dense(ldx, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;  // may equal xr: each element is read before it is written
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * double(xr[i]);
    const double inv = 1.0 / std::sqrt(ss / double(dim > 0 ? dim : 1) + double(eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = float(double(xr[i]) * inv * (w ? double(w[i]) : 1.0));
  }
}

void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld) {
  detail::check_rows("softmax_rows", rows, n, ld, ld);
  ld = detail::dense(ld, n);
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(xr[i]));
    if (mx == -std::numeric_limits<double>::infinity()) {  // every entry -inf (or n == 0): all zeros
      for (int64_t i = 0; i < n; ++i) xr[i] = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(xr[i]) - mx);  // exp(-inf) = 0
    for (int64_t i = 0; i < n; ++i) xr[i] = float(std::exp(double(xr[i]) - mx) / sum);
  }
}

}  // namespace baleine::ops::reference

namespace baleine::ops::reference {

void layernorm(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t dim, float eps,
               int64_t ldy, int64_t ldx) {
  detail::check_rows("layernorm", rows, dim, ldy, ldx);
  ldy = detail::dense(ldy, dim);
  ldx = detail::dense(ldx, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i) mean += double(xr[i]);
    mean /= double(dim > 0 ? dim : 1);
    for (int64_t i = 0; i < dim; ++i) var += (double(xr[i]) - mean) * (double(xr[i]) - mean);
    const double inv = 1.0 / std::sqrt(var / double(dim > 0 ? dim : 1) + double(eps));
    for (int64_t i = 0; i < dim; ++i)
      yr[i] = float((double(xr[i]) - mean) * inv * (w ? double(w[i]) : 1.0) + (b ? double(b[i]) : 0.0));
  }
}

}  // namespace baleine::ops::reference
