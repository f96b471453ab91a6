#include "core/dtype.h"

#include <cmath>

namespace baleine {

// IEEE half, round to nearest even, overflow to infinity.
uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (absx < 0x38800000u) {                                    // below smallest normal half 2^-14
    // Subnormal half: value = m * 2^-24, m = round(|f| * 2^24).
    float a;
    std::memcpy(&a, &absx, 4);
    float m = std::nearbyint(a * 16777216.0f);  // default rounding mode: to nearest even
    return uint16_t(sign | uint32_t(m));
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 127 + 15;
  uint32_t h = exp << 10 | mant >> 13;
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carries into exponent correctly
  return uint16_t(sign | h);
}

}  // namespace baleine
