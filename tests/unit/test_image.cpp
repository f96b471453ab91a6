// io/image.h and io/image_resize.h against Pillow: every expectation comes from tests/data/parity/image
// (tests/reference/image_ref.py: Pillow 9.4 decodes, converts and resizes, numpy normalises as transformers does).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "io/image.h"
#include "io/image_resize.h"

namespace {

using baleine::io::RgbImage;
using nlohmann::json;

const std::string kDir = std::string(BALEINE_TEST_DATA) + "/parity/image/";

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Fixture {
  json manifest;
  std::vector<uint8_t> arrays;
  Fixture() {
    std::ifstream in(kDir + "manifest.json");
    manifest = json::parse(in);
    arrays = slurp(kDir + manifest["arrays"].get<std::string>());
  }
  std::vector<uint8_t> bytes(const json& a) const {
    const size_t off = a["offset"], n = a["bytes"];
    EXPECT_EQ(a["dtype"], "u8");
    EXPECT_LE(off + n, arrays.size());
    return {arrays.begin() + std::ptrdiff_t(off), arrays.begin() + std::ptrdiff_t(off + n)};
  }
  std::vector<float> floats(const json& a) const {
    const size_t off = a["offset"], n = a["bytes"];
    EXPECT_EQ(a["dtype"], "f32");
    EXPECT_LE(off + n, arrays.size());
    std::vector<float> v(n / 4);
    std::memcpy(v.data(), arrays.data() + off, n);
    return v;
  }
  RgbImage image(const json& c, const char* key = "src") const {
    RgbImage img;
    img.width = c["width"];
    img.height = c["height"];
    img.rgb = bytes(c[key]);
    return img;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// "n of m bytes differ, first at (x, y, channel): got a, PIL b", or "" when equal.
std::string first_difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, int64_t width) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  size_t n = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && n++ == 0) first = i;
  if (n == 0) return "";
  const size_t px = first / 3;
  return std::to_string(n) + " of " + std::to_string(got.size()) + " bytes differ, first at (" +
         std::to_string(px % size_t(width)) + ", " + std::to_string(px / size_t(width)) + ", " +
         std::to_string(first % 3) + "): got " + std::to_string(got[first]) + ", PIL " + std::to_string(want[first]);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const baleine::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ImageFixture, IsThere) {
  const json& m = fixture().manifest;
  EXPECT_GE(m["decode"].size(), 20u);
  EXPECT_GE(m["errors"].size(), 10u);
  EXPECT_GE(m["resize"].size(), 10u);
  EXPECT_GE(m["preprocess"].size(), 5u);
}

TEST(DecodeImage, SameBytesAsPillowConvertRgb) {
  for (const json& c : fixture().manifest["decode"]) {
    const std::string name = c["file"];
    SCOPED_TRACE(name + " (PIL mode " + c["pil_mode"].get<std::string>() + ": " + c["note"].get<std::string>() + ")");
    const std::vector<uint8_t> want = fixture().bytes(c["rgb"]);
    RgbImage img;
    ASSERT_NO_THROW(img = baleine::io::read_image_file(kDir + name));
    EXPECT_EQ(img.width, c["width"].get<int64_t>());
    EXPECT_EQ(img.height, c["height"].get<int64_t>());
    EXPECT_EQ(first_difference(img.rgb, want, img.width), "");
    // The same through the in-memory entry point (what the API server uses).
    const std::vector<uint8_t> file = slurp(kDir + name);
    EXPECT_EQ(baleine::io::decode_image(file, name).rgb, img.rgb);
  }
}

TEST(DecodeImage, ErrorsNameTheInputAndTheCause) {
  for (const json& c : fixture().manifest["errors"]) {
    const std::string name = c["file"];
    SCOPED_TRACE(name + " (" + c["note"].get<std::string>() + "; PIL " + c["pil"].get<std::string>() + ")");
    const std::vector<uint8_t> file = slurp(kDir + name);
    const std::string msg = error_of([&] { (void)baleine::io::decode_image(file, "image_url 2"); });
    EXPECT_NE(msg.find("image_url 2"), std::string::npos) << msg;
    for (const json& e : c["expect"]) EXPECT_NE(msg.find(e.get<std::string>()), std::string::npos) << msg;
    const std::string from_file = error_of([&] { (void)baleine::io::read_image_file(kDir + name); });
    EXPECT_NE(from_file.find(kDir + name), std::string::npos) << from_file;
  }
}

TEST(DecodeImage, PillowRefusesTheSameFiles) {
  // The PIL outcome recorded for each error fixture: PIL raises too, except on the GIF (baseline decodes PNG and
  // JPEG only) and on the 10000 x 10000 headers, which only our pixel limit refuses (PIL warns below 2 x 89 M pixels
  // and then fails, or not, on the missing data).
  for (const json& c : fixture().manifest["errors"]) {
    const std::string name = c["file"], pil = c["pil"];
    if (name.rfind("bomb_", 0) == 0) continue;
    EXPECT_EQ(pil.rfind("raises", 0) == 0, name != "tiny.gif") << name << ": PIL " << pil;
  }
}

TEST(DecodeImage, PixelLimitComesFromTheHeader) {
  for (const char* name : {"rgb_pil.png", "rgb_q90.jpg"}) {
    const std::vector<uint8_t> file = slurp(kDir + name);
    EXPECT_NO_THROW((void)baleine::io::decode_image(file, name, 37 * 23));
    const std::string msg = error_of([&] { (void)baleine::io::decode_image(file, name, 37 * 23 - 1); });
    EXPECT_NE(msg.find(std::string(name) + ": the image is too large: 37x23 = 851 pixels, more than the 850 allowed"),
              std::string::npos)
        << msg;
  }
}

TEST(DecodeImage, EmptyAndTruncatedMagic) {
  EXPECT_NE(error_of([] { (void)baleine::io::decode_image({}, "a.png"); }).find("a.png: empty image data"),
            std::string::npos);
  const uint8_t jpeg_magic_only[] = {0xFF, 0xD8, 0xFF};
  const std::string msg = error_of([&] { (void)baleine::io::decode_image(jpeg_magic_only, "b.jpg"); });
  EXPECT_NE(msg.find("b.jpg: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("JPEG"), std::string::npos) << msg;
  const uint8_t png_magic_only[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const std::string msg2 = error_of([&] { (void)baleine::io::decode_image(png_magic_only, "c.png"); });
  EXPECT_NE(msg2.find("c.png: corrupt PNG"), std::string::npos) << msg2;
}

TEST(ReadImageFile, MissingDirectoryAndUnreadable) {
  const std::string missing = kDir + "no-such-picture.png";
  std::string msg = error_of([&] { (void)baleine::io::read_image_file(missing); });
  EXPECT_NE(msg.find(missing + ": cannot open image file: No such file or directory"), std::string::npos) << msg;
  msg = error_of([&] { (void)baleine::io::read_image_file(kDir); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(ResizeBicubic, BitExactWithPillow) {
  for (const json& c : fixture().manifest["resize"]) {
    const int64_t ow = c["out_width"], oh = c["out_height"];
    SCOPED_TRACE(std::to_string(c["width"].get<int>()) + "x" + std::to_string(c["height"].get<int>()) + " -> " +
                 std::to_string(ow) + "x" + std::to_string(oh) + " (" + c["note"].get<std::string>() + ")");
    const RgbImage out = baleine::io::resize_bicubic(fixture().image(c), ow, oh);
    EXPECT_EQ(out.width, ow);
    EXPECT_EQ(out.height, oh);
    EXPECT_EQ(first_difference(out.rgb, fixture().bytes(c["rgb"]), ow), "");
  }
}

uint64_t fnv1a64(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

TEST(ResizeBicubic, LargeOutputsHaveTheDigestOfPillows) {
  for (const json& c : fixture().manifest["resize_digest"]) {
    const int64_t ow = c["out_width"], oh = c["out_height"];
    SCOPED_TRACE(std::to_string(ow) + "x" + std::to_string(oh) + " (" + c["note"].get<std::string>() + ")");
    const RgbImage out = baleine::io::resize_bicubic(fixture().image(c), ow, oh);
    ASSERT_EQ(out.rgb.size(), size_t(ow * oh * 3));
    EXPECT_EQ(fmt::format("{:016x}", fnv1a64(out.rgb)), c["fnv1a64"].get<std::string>());
  }
}

TEST(ResizeBicubic, RejectsBadSizes) {
  RgbImage img;
  img.width = 2;
  img.height = 2;
  img.rgb.assign(12, 7);
  EXPECT_THROW((void)baleine::io::resize_bicubic(img, 0, 3), baleine::Error);
  EXPECT_THROW((void)baleine::io::resize_bicubic(img, 3, -1), baleine::Error);
  img.rgb.pop_back();
  EXPECT_THROW((void)baleine::io::resize_bicubic(img, 3, 3), baleine::Error);
}

TEST(JanusPreprocess, MatchesVlmImageProcessor) {
  for (const json& c : fixture().manifest["preprocess"]) {
    SCOPED_TRACE(c["note"].get<std::string>());
    const int64_t size = c["image_size"], min_size = c["min_size"];
    std::array<float, 3> mean{}, std{};
    for (int i = 0; i < 3; ++i) {
      mean[size_t(i)] = c["mean"][size_t(i)].get<float>();
      std[size_t(i)] = c["std"][size_t(i)].get<float>();
    }
    const std::vector<float> got = baleine::io::janus_preprocess(fixture().image(c), size, min_size, mean, std);
    const std::vector<float> want = fixture().floats(c["out"]);
    ASSERT_EQ(got.size(), size_t(size * size * 3));
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    size_t worst_at = 0, differ = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double d = std::abs(double(got[i]) - double(want[i]));
      differ += got[i] != want[i];
      if (d > worst) worst = d, worst_at = i;
    }
    EXPECT_LE(worst, 1e-6) << "at " << worst_at << ": " << got[worst_at] << " vs " << want[worst_at];
    // Stricter than needed, and true: the same float64 rescale and float32 normalisation as transformers' numpy.
    EXPECT_EQ(differ, 0u) << "values not bit-identical; worst " << worst;
  }
}

TEST(JanusPreprocess, RejectsBadArguments) {
  RgbImage img;
  img.width = 4;
  img.height = 2;
  img.rgb.assign(24, 9);
  EXPECT_THROW((void)baleine::io::janus_preprocess(img, 8, 9), baleine::Error);  // min_size > image_size
  EXPECT_THROW((void)baleine::io::janus_preprocess(img, 0, 0), baleine::Error);
  EXPECT_THROW((void)baleine::io::janus_preprocess(img, 8, 1, {0.5f, 0.5f, 0.5f}, {0.5f, 0.0f, 0.5f}), baleine::Error);
  img.rgb.pop_back();
  EXPECT_THROW((void)baleine::io::janus_preprocess(img), baleine::Error);
}

}  // namespace
