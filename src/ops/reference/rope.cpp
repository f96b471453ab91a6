// ops/reference/rope.cpp — scalar oracle for rope_apply.
#include <vector>

#include "ops/internal.h"

namespace baleine::ops::reference {

void rope_apply(float* x, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                const int32_t* positions, const RopeTable& table, RopeLayout layout) {
  detail::check_rope(n_tokens, n_heads, positions, table);
  const int64_t half = table.dim / 2;
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));  // [dim/2] cos, sin of this token's angles
  for (int64_t t = 0; t < n_tokens; ++t) {
    detail::rope_cos_sin(table, positions[t], cs.data(), sn.data());
    for (int64_t h = 0; h < n_heads; ++h) {
      float* p = x + t * token_stride + h * head_stride;
      for (int64_t j = 0; j < half; ++j) {
        // Pair (a, b): adjacent elements, or element j with its partner half a head away.
        float* a = layout == RopeLayout::Interleaved ? p + 2 * j : p + j;
        float* b = layout == RopeLayout::Interleaved ? p + 2 * j + 1 : p + j + half;
        const double c = cs[size_t(j)], s = sn[size_t(j)], va = *a, vb = *b;
        *a = float(va * c - vb * s);
        *b = float(va * s + vb * c);
      }
    }
  }
}

}  // namespace baleine::ops::reference
