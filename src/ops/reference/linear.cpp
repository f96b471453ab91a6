// ops/reference/linear.cpp — scalar oracles for linear and matmul_f32: every dot product summed in double.
#include <vector>

#include "ops/internal.h"
#include "ops/quant.h"

namespace baleine::ops::reference {

namespace {

// Row n of W as floats (bf16 and f16 widen exactly, block types dequantise exactly), so the inner loop below is the same for every dtype.
void weight_row(const WeightRef& w, int64_t n, float* out) {  // out: [w.cols]
  const int64_t ld = w.row_stride();
  switch (w.dtype) {
    case DType::F32: {
      const float* p = static_cast<const float*>(w.data) + n * ld;
      for (int64_t k = 0; k < w.cols; ++k) out[k] = p[k];
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + n * ld;
      for (int64_t k = 0; k < w.cols; ++k) out[k] = bf16_to_f32(p[k]);
      break;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + n * ld;
      for (int64_t k = 0; k < w.cols; ++k) out[k] = f16_to_f32(p[k]);
      break;
    }
    default:  // block-quantised: dtype_nbytes(dtype, ld) bytes per row
      reference::dequantize_row(w.dtype, static_cast<const char*>(w.data) + size_t(n) * dtype_nbytes(w.dtype, ld), out,
                                w.cols);
      break;
  }
}

}  // namespace

void linear(float* y, const float* x, const WeightRef& w, const float* bias, int64_t M, int64_t ldy, int64_t ldx) {
  detail::check_linear(w, y, x, M, ldy, ldx);
  const int64_t N = w.rows, K = w.cols;
  ldy = detail::dense(ldy, N);
  ldx = detail::dense(ldx, K);
  std::vector<float> row(static_cast<size_t>(K));  // [K] weight row n
  for (int64_t n = 0; n < N; ++n) {
    weight_row(w, n, row.data());
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * ldx;
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(xm[k]) * double(row[size_t(k)]);
      if (bias) acc += double(bias[n]);
      y[m * ldy + n] = float(acc);
    }
  }
}

void matmul_f32(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_b, int64_t lda,
                int64_t ldb, int64_t ldc, float alpha, float beta) {
  detail::check_matmul(C, A, B, M, N, K, trans_b, lda, ldb, ldc);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        acc += double(A[m * lda + k]) * double(b);
      }
      // beta == 0 means C is not read (BLAS convention), so an uninitialised or NaN C is fine.
      double c = double(alpha) * acc;
      if (beta != 0.0f) c += double(beta) * double(C[m * ldc + n]);
      C[m * ldc + n] = float(c);
    }
}

}  // namespace baleine::ops::reference
