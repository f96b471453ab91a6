// io/png.h — PNG files through libpng's simplified API (Debian libpng-dev): 8-bit RGB in and out.
// defines: RgbImage, png_encode, png_decode, write_png, read_png
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace baleine::io {

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3], row-major
};

// Encodes rgb [height, width, 3] as a PNG byte string.
std::vector<uint8_t> png_encode(std::span<const uint8_t> rgb, int64_t width, int64_t height);
// Decodes any PNG (gray, palette, alpha, 16-bit: converted to 8-bit RGB; alpha composited on black). Throws
// baleine::Error naming `what` on a corrupt file or one above max_pixels (a decompression bomb guard).
RgbImage png_decode(std::span<const uint8_t> bytes, const std::string& what, int64_t max_pixels = 16'777'216);

// Written atomically (io/atomic_file.h): a crash never leaves a half-written picture under `path`.
void write_png(const std::string& path, std::span<const uint8_t> rgb, int64_t width, int64_t height);
RgbImage read_png(const std::string& path, int64_t max_pixels = 16'777'216);

}  // namespace baleine::io
