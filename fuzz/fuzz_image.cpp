// Fuzz target: picture decoding for Janus-Pro understanding (io/image.h: PNG through libpng's low-level API, JPEG
// through libjpeg with setjmp error handling, both behind the header size guard) and the preprocessing that follows
// (io/image_resize.h: Pillow-exact bicubic resize, expand2square, normalisation). Any input must decode or throw
// baleine::Error; a decoded image must have the size it claims and preprocess to finite values.
#include <cmath>

#include "core/check.h"
#include "io/image.h"
#include "io/image_resize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const baleine::io::RgbImage img =
        baleine::io::decode_image(std::span<const uint8_t>(data, size), "fuzz.image", 1 << 20);
    if (img.width < 1 || img.height < 1 || int64_t(img.rgb.size()) != img.width * img.height * 3) __builtin_trap();
    // A small square (Janus uses 384, min_size 14) keeps each run fast; every aspect ratio still reaches min_size.
    const std::vector<float> x = baleine::io::janus_preprocess(img, 24, 7);
    if (x.size() != 24 * 24 * 3) __builtin_trap();
    for (float v : x)
      if (!(v >= -1.0f && v <= 1.0f)) __builtin_trap();  // (x / 255 - 0.5) / 0.5 stays in [-1, 1]
  } catch (const baleine::Error&) {
  }
  return 0;
}
