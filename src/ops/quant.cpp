// ops/quant.cpp — the public block-quantisation entry points (ops/quant.h): checks, the parallel row loop,
// and the dequantiser core's Tensor::to_f32 uses for block types.
#include "ops/quant.h"

#include <algorithm>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/internal.h"

namespace baleine::ops {

bool is_quantizable(DType type, int64_t cols) {
  return dtype_is_quantized(type) && cols > 0 && cols % dtype_block_elems(type) == 0;
}

// The reference versions are the only ones: quantising is a one-off pass over the weights, and dequantising
// whole rows happens only outside the hot loops (embedding rows, derived weights, tests), where the scalar
// loop already runs at several GB/s.
void quantize_row(DType type, const float* x, void* out, int64_t n) { reference::quantize_row(type, x, out, n); }

void dequantize_row(DType type, const void* blocks, float* y, int64_t n) { reference::dequantize_row(type, blocks, y, n); }

void quantize_rows(DType type, const float* x, void* out, int64_t rows, int64_t cols) {
  OPS_CHECK("quantize_rows", rows >= 0, "rows = {} < 0", rows);
  OPS_CHECK("quantize_rows", is_quantizable(type, cols) || (rows == 0 && cols == 0),
            "rows of {} values cannot be stored as {} (block size {})", cols, dtype_name(type), dtype_block_elems(type));
  if (rows == 0 || cols == 0) return;
  const size_t row_bytes = dtype_nbytes(type, cols);
  // Q4_K / Q6_K search scales (~40 passes over each value), so even a few rows are worth a thread.
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          reference::quantize_row(type, x + r * cols, static_cast<char*>(out) + size_t(r) * row_bytes, cols);
      },
      std::max<int64_t>(1, (1 << 16) / cols));
}

namespace {
// Installs the dequantiser in core when this object file is linked in, which every program that runs
// ops::linear or ops::embedding_gather does (dispatch.cpp calls dequantize_row).
[[maybe_unused]] const bool kInstalled = (set_dequantize_fn(&dequantize_row), true);
}  // namespace

}  // namespace baleine::ops
