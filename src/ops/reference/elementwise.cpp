// ops/reference/elementwise.cpp — scalar oracles for silu, swiglu, add_inplace, axpy (double intermediates).
#include <cmath>

#include "ops/internal.h"

namespace baleine::ops::reference {

namespace {
double silu1(double v) { return v / (1.0 + std::exp(-v)); }
}  // namespace

void silu(float* y, const float* x, int64_t n) {
  OPS_CHECK("silu", n >= 0, "n = {} < 0", n);
  for (int64_t i = 0; i < n; ++i) y[i] = float(silu1(double(x[i])));
}

void swiglu(float* y, const float* gate, const float* up, int64_t n) {
  OPS_CHECK("swiglu", n >= 0, "n = {} < 0", n);
  for (int64_t i = 0; i < n; ++i) y[i] = float(silu1(double(gate[i])) * double(up[i]));
}

void add_inplace(float* y, const float* x, int64_t n) {
  OPS_CHECK("add_inplace", n >= 0, "n = {} < 0", n);
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void axpy(float* y, float a, const float* x, int64_t n) {
  OPS_CHECK("axpy", n >= 0, "n = {} < 0", n);
  for (int64_t i = 0; i < n; ++i) y[i] = float(double(y[i]) + double(a) * double(x[i]));
}

}  // namespace baleine::ops::reference
