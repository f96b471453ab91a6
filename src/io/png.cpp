#include "io/png.h"

#include <png.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/check.h"
#include "io/atomic_file.h"

namespace baleine::io {

std::vector<uint8_t> png_encode(std::span<const uint8_t> rgb, int64_t width, int64_t height) {
  BALEINE_CHECK(width >= 1 && height >= 1 && width <= 65535 && height <= 65535, "png: bad size {}x{}", width, height);
  BALEINE_CHECK(int64_t(rgb.size()) == width * height * 3, "png: {} bytes for a {}x{} RGB image", rgb.size(), width,
                height);
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(width);
  img.height = png_uint_32(height);
  img.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  BALEINE_CHECK(png_image_write_to_memory(&img, nullptr, &size, 0, rgb.data(), 0, nullptr) && size > 0,
                "png: cannot encode: {}", img.message);
  std::vector<uint8_t> out(size);
  BALEINE_CHECK(png_image_write_to_memory(&img, out.data(), &size, 0, rgb.data(), 0, nullptr), "png: cannot encode: {}",
                img.message);
  out.resize(size);
  return out;
}

RgbImage png_decode(std::span<const uint8_t> bytes, const std::string& what, int64_t max_pixels) {
  BALEINE_CHECK(bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0, "{}: not a PNG file", what);
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()))
    BALEINE_FAIL("{}: corrupt PNG: {}", what, img.message);
  const int64_t w = img.width, h = img.height;
  if (w < 1 || h < 1 || w * h > max_pixels) {
    png_image_free(&img);
    BALEINE_FAIL("{}: a {}x{} PNG is larger than the {} pixels allowed", what, w, h, max_pixels);
  }
  img.format = PNG_FORMAT_RGB;
  RgbImage out;
  out.width = w;
  out.height = h;
  out.rgb.resize(size_t(w * h * 3));
  png_color black{0, 0, 0};
  if (!png_image_finish_read(&img, &black, out.rgb.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    BALEINE_FAIL("{}: corrupt PNG: {}", what, msg);
  }
  return out;
}

void write_png(const std::string& path, std::span<const uint8_t> rgb, int64_t width, int64_t height) {
  const std::vector<uint8_t> bytes = png_encode(rgb, width, height);
  atomic_write("write_png", path, [&](const ByteSink& sink) { sink(bytes.data(), bytes.size()); });
}

RgbImage read_png(const std::string& path, int64_t max_pixels) {
  std::ifstream in(path, std::ios::binary);
  BALEINE_CHECK(in.good(), "{}: cannot open", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return png_decode(bytes, path, max_pixels);
}

}  // namespace baleine::io
