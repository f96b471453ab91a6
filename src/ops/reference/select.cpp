// ops/reference/select.cpp — scalar oracles for topk and embedding_gather.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/internal.h"
#include "ops/quant.h"

namespace baleine::ops::reference {

void topk(const float* x, int64_t n, int64_t k, int32_t* indices, float* values) {
  detail::check_topk(n, k);
  // Sort every index, largest value first; stable_sort keeps equal values in index order (ties -> lower first).
  // NaN sorts after every number (a strict weak order even then, which std::stable_sort requires).
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    if (std::isnan(x[a]) || std::isnan(x[b])) return !std::isnan(x[a]);
    return x[a] > x[b];
  });
  for (int64_t i = 0; i < k; ++i) {
    if (indices) indices[i] = order[size_t(i)];
    if (values) values[i] = x[order[size_t(i)]];
  }
}

void embedding_gather(float* y, const WeightRef& table, const int32_t* ids, int64_t n) {
  detail::check_embedding(table, ids, n);
  const int64_t dim = table.cols, ld = table.row_stride();
  for (int64_t i = 0; i < n; ++i) {
    float* yi = y + i * dim;  // y: [n, dim] dense
    if (dtype_is_quantized(table.dtype)) {
      reference::dequantize_row(table.dtype,
                                static_cast<const char*>(table.data) + size_t(ids[i]) * dtype_nbytes(table.dtype, ld), yi,
                                dim);
      continue;
    }
    const int64_t row = int64_t(ids[i]) * ld;
    for (int64_t c = 0; c < dim; ++c) {
      switch (table.dtype) {
        case DType::F32: yi[c] = static_cast<const float*>(table.data)[row + c]; break;
        case DType::BF16: yi[c] = bf16_to_f32(static_cast<const uint16_t*>(table.data)[row + c]); break;
        case DType::F16: yi[c] = f16_to_f32(static_cast<const uint16_t*>(table.data)[row + c]); break;
        default: BALEINE_FAIL("unsupported dtype");
      }
    }
  }
}

}  // namespace baleine::ops::reference
