// ops/quant.h — GGUF block quantisation (Q8_0, Q4_0, Q4_K, Q6_K; layouts in core/dtype.h): row quantisers and
// dequantisers. Quantised matrices go through ops::linear (WeightRef.dtype = the block type) like any other weight.
// defines: quantize_row, dequantize_row, quantize_rows, is_quantizable
//
// The scalar versions in ops/reference/ follow llama.cpp's reference quantisers value for value, so files written
// by either tool load in the other and dequantise to the same floats.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace baleine::ops {

// True when rows of `cols` values can be stored as `type` (cols a multiple of the block size).
bool is_quantizable(DType type, int64_t cols);

// out <- quantised x[n] (n a multiple of the block size; out holds dtype_nbytes(type, n) bytes).
void quantize_row(DType type, const float* x, void* out, int64_t n);
// y[n] <- dequantised blocks (exact: what llama.cpp's dequantize_row_* gives).
void dequantize_row(DType type, const void* blocks, float* y, int64_t n);
// rows × cols matrix, row by row (parallel over rows).
void quantize_rows(DType type, const float* x, void* out, int64_t rows, int64_t cols);

namespace reference {
void quantize_row(DType type, const float* x, void* out, int64_t n);
void dequantize_row(DType type, const void* blocks, float* y, int64_t n);
}  // namespace reference

}  // namespace baleine::ops
