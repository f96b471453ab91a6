// Fuzz target: PNG decoding (io/png.h: libpng's simplified API behind our size guard), the parser that images
// uploaded to the API and the CLI go through. Any input must decode or throw baleine::Error; a decoded image must
// have the size it claims and re-encode.
#include "core/check.h"
#include "io/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    baleine::io::RgbImage img = baleine::io::png_decode(std::span<const uint8_t>(data, size), "fuzz.png", 1 << 20);
    if (int64_t(img.rgb.size()) != img.width * img.height * 3) __builtin_trap();
    if (img.width <= 4096 && img.height <= 4096) (void)baleine::io::png_encode(img.rgb, img.width, img.height);
  } catch (const baleine::Error&) {
  }
  return 0;
}
