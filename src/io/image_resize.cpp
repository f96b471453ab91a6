#include "io/image_resize.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

// Built with -ffp-contract=off (src/io/CMakeLists.txt): a fused multiply-add would round the taps differently from
// Pillow's build and flip the fixed-point rounding of a coefficient now and then.

namespace baleine::io {
namespace {

// 8 bits of pixel, 2 bits of headroom for the kernel's overshoot, in a 32-bit accumulator (Pillow's choice; the
// weights must be rounded to exactly this grid to reproduce its output).
constexpr int kPrecisionBits = 32 - 8 - 2;

// Keys' cubic convolution kernel with a = -0.5, evaluated in the operation order Pillow uses so that the double
// weights, and hence their fixed-point roundings, are the same.
double keys_cubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output index: the first input index, the number of taps, and the taps in fixed point.
struct Taps {
  int64_t max_taps = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> weight;  // [out_size, max_taps]
};

Taps bicubic_taps(int64_t in_size, int64_t out_size) {
  // Downscaling widens the kernel by the scale (antialiasing); upscaling keeps its natural support of 2.
  const double scale = double(in_size) / double(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  const double inv_filterscale = 1.0 / filterscale;
  Taps t;
  t.max_taps = int64_t(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.weight.assign(size_t(out_size * t.max_taps), 0);
  std::vector<double> w(static_cast<size_t>(t.max_taps));
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (double(o) + 0.5) * scale;  // the output pixel's centre in input coordinates
    // Window [lo, hi): centre ± support, rounded by truncating (value + 0.5) as Pillow's int cast does.
    int64_t lo = int64_t(center - support + 0.5);
    int64_t hi = int64_t(center + support + 0.5);
    lo = std::max<int64_t>(lo, 0);
    hi = std::min(hi, in_size);
    const int64_t n = hi - lo;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      w[size_t(i)] = keys_cubic((double(i + lo) - center + 0.5) * inv_filterscale);
      sum += w[size_t(i)];
    }
    int32_t* q = &t.weight[size_t(o * t.max_taps)];
    for (int64_t i = 0; i < n; ++i) {
      // Normalised so that the taps sum to 1 even where the window is clipped at the border, then rounded half
      // away from zero onto the 2^-22 grid.
      const double v = sum != 0.0 ? w[size_t(i)] / sum : w[size_t(i)];
      q[i] = int32_t(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    t.first[size_t(o)] = lo;
    t.count[size_t(o)] = n;
  }
  return t;
}

uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // floor: negative overshoot becomes 0 below
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One separable pass along x (rows stay) or y (columns stay), 3 channels.
RgbImage pass_x(const RgbImage& in, int64_t out_w) {
  const Taps t = bicubic_taps(in.width, out_w);
  RgbImage out;
  out.width = out_w;
  out.height = in.height;
  out.rgb.resize(size_t(out_w * in.height * 3));
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = &in.rgb[size_t(y * in.width * 3)];
    uint8_t* dst = &out.rgb[size_t(y * out_w * 3)];
    for (int64_t o = 0; o < out_w; ++o) {
      const int32_t* q = &t.weight[size_t(o * t.max_taps)];
      const uint8_t* src = row + t.first[size_t(o)] * 3;
      int64_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};  // +0.5
      for (int64_t i = 0; i < t.count[size_t(o)]; ++i)
        for (int c = 0; c < 3; ++c) acc[c] += int64_t(src[i * 3 + c]) * q[i];
      for (int c = 0; c < 3; ++c) dst[o * 3 + c] = clip8(acc[c]);
    }
  }
  return out;
}

RgbImage pass_y(const RgbImage& in, int64_t out_h) {
  const Taps t = bicubic_taps(in.height, out_h);
  RgbImage out;
  out.width = in.width;
  out.height = out_h;
  out.rgb.resize(size_t(in.width * out_h * 3));
  const int64_t stride = in.width * 3;
  std::vector<int64_t> acc(static_cast<size_t>(stride));
  for (int64_t o = 0; o < out_h; ++o) {
    const int32_t* q = &t.weight[size_t(o * t.max_taps)];
    std::fill(acc.begin(), acc.end(), int64_t(1) << (kPrecisionBits - 1));
    for (int64_t i = 0; i < t.count[size_t(o)]; ++i) {
      const uint8_t* src = &in.rgb[size_t((t.first[size_t(o)] + i) * stride)];
      for (int64_t x = 0; x < stride; ++x) acc[size_t(x)] += int64_t(src[x]) * q[i];
    }
    uint8_t* dst = &out.rgb[size_t(o * stride)];
    for (int64_t x = 0; x < stride; ++x) dst[x] = clip8(acc[size_t(x)]);
  }
  return out;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& in, int64_t out_w, int64_t out_h) {
  BALEINE_CHECK(in.width >= 1 && in.height >= 1 && int64_t(in.rgb.size()) == in.width * in.height * 3,
                "resize_bicubic: bad input image {}x{} with {} bytes", in.width, in.height, in.rgb.size());
  // Pillow's sizes are C ints; 2^20 per side keeps every index product far from overflow.
  constexpr int64_t kMaxSide = int64_t(1) << 20;
  BALEINE_CHECK(out_w >= 1 && out_h >= 1 && out_w <= kMaxSide && out_h <= kMaxSide && in.width <= kMaxSide &&
                    in.height <= kMaxSide && out_w * out_h <= (int64_t(1) << 28),
                "resize_bicubic: cannot resize {}x{} to {}x{}", in.width, in.height, out_w, out_h);
  // Horizontal first, then vertical, each only if that side changes: the order is visible in the rounding.
  if (out_w == in.width && out_h == in.height) return in;
  if (out_w == in.width) return pass_y(in, out_h);
  RgbImage x = pass_x(in, out_w);
  return out_h == in.height ? x : pass_y(x, out_h);
}

std::vector<float> janus_preprocess(const RgbImage& img, int64_t image_size, int64_t min_size,
                                    std::array<float, 3> mean, std::array<float, 3> std) {
  BALEINE_CHECK(image_size >= 1 && image_size <= 8192 && min_size >= 0 && min_size <= image_size,
                "janus_preprocess: bad image_size {} / min_size {}", image_size, min_size);
  for (int c = 0; c < 3; ++c) BALEINE_CHECK(std[c] != 0.0f, "janus_preprocess: std[{}] is zero", c);
  // width, height = pil_img.size
  const int64_t width = img.width, height = img.height;
  BALEINE_CHECK(width >= 1 && height >= 1 && int64_t(img.rgb.size()) == width * height * 3,
                "janus_preprocess: bad image {}x{} with {} bytes", width, height, img.rgb.size());
  // max_size = max(width, height)
  const int64_t max_size = std::max(width, height);
  // size = [max(int(height / max_size * self.image_size), self.min_size),
  //         max(int(width / max_size * self.image_size), self.min_size)]   (Python float division, int() truncates)
  const int64_t new_h =
      std::max(static_cast<int64_t>(double(height) / double(max_size) * double(image_size)), min_size);
  const int64_t new_w = std::max(static_cast<int64_t>(double(width) / double(max_size) * double(image_size)), min_size);
  // if width <= 0 or height <= 0 or size[0] <= 0 or size[1] <= 0: raise ValueError("Invalid size!")
  BALEINE_CHECK(new_h >= 1 && new_w >= 1, "janus_preprocess: invalid size {}x{} for a {}x{} image", new_w, new_h,
                width, height);
  // pil_img = torchvision.transforms.functional.resize(pil_img, size, interpolation=BICUBIC, antialias=True)
  //   (a PIL input goes to pil_img.resize((size[1], size[0]), Image.BICUBIC))
  const RgbImage small = resize_bicubic(img, new_w, new_h);
  // pil_img = expand2square(pil_img, self.background_color): the longer side is exactly image_size already
  //   (int(max_size / max_size * image_size) == image_size), so the square is image_size on a side.
  const int64_t side = std::max(new_w, new_h);
  BALEINE_ASSERT(side == image_size);
  // if width > height: result.paste(pil_img, (0, (width - height) // 2))
  // else:              result.paste(pil_img, ((height - width) // 2, 0))
  const int64_t off_x = new_w < new_h ? (new_h - new_w) / 2 : 0;
  const int64_t off_y = new_w > new_h ? (new_w - new_h) / 2 : 0;
  // self.background_color = tuple([int(x * 255) for x in image_mean])
  uint8_t background[3];
  for (int c = 0; c < 3; ++c) background[c] = uint8_t(static_cast<int64_t>(double(mean[c]) * 255));
  // rescale (transformers' image_transforms.rescale): image.astype(np.float64) * (1.0 / 255.0), then .astype(float32)
  // normalize: mean, std = np.array(..., dtype=float32); (image - mean) / std, in float32
  auto value = [&](uint8_t v, int c) {
    const float x = static_cast<float>(double(v) * (1.0 / 255.0));
    return (x - mean[c]) / std[c];
  };
  float bg_value[3];
  for (int c = 0; c < 3; ++c) bg_value[c] = value(background[c], c);
  std::vector<float> out(static_cast<size_t>(side * side * 3));
  for (int64_t y = 0; y < side; ++y) {
    for (int64_t x = 0; x < side; ++x) {
      float* o = &out[size_t((y * side + x) * 3)];
      const int64_t sx = x - off_x, sy = y - off_y;
      if (sx >= 0 && sx < new_w && sy >= 0 && sy < new_h) {
        const uint8_t* p = &small.rgb[size_t((sy * new_w + sx) * 3)];
        for (int c = 0; c < 3; ++c) o[c] = value(p[c], c);
      } else {
        for (int c = 0; c < 3; ++c) o[c] = bg_value[c];
      }
    }
  }
  // x = np.transpose(x, (2, 0, 1)) is not done: the caller (the SigLIP encoder) takes channels-last input.
  return out;
}

}  // namespace baleine::io
