// io/gguf: round trip of every metadata value type (nested arrays included) and of tensors in every supported
// dtype, version 2 files, custom alignment, clear errors for malformed headers, and fuzzing: random truncations
// and byte flips of a valid file give a clean baleine::Error (or a valid file), never a crash.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/check.h"
#include "io/gguf.h"

using namespace baleine;
using namespace baleine::io;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("baleine_test_gguf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), std::streamsize(s.size()));
}

Tensor filled(DType dt, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = Tensor::empty(dt, shape);
  std::mt19937 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t(rng());
  if (dt == DType::F32)
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(i) * 0.25f - 3.0f;
  return t;
}

GgufWriter sample_writer() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_string("llama"));
  GgufValue v;
  v.type = GgufType::U8; v.u = 200; w.set("t.u8", v);
  v = {}; v.type = GgufType::I8; v.i = -100; w.set("t.i8", v);
  v = {}; v.type = GgufType::U16; v.u = 65000; w.set("t.u16", v);
  v = {}; v.type = GgufType::I16; v.i = -32000; w.set("t.i16", v);
  w.set("t.u32", GgufValue::of_u32(4000000000u));
  w.set("t.i32", GgufValue::of_i32(-2000000000));
  w.set("t.f32", GgufValue::of_f32(0.1f));
  w.set("t.bool", GgufValue::of_bool(true));
  w.set("t.string", GgufValue::of_string("héllo\nworld"));
  w.set("t.u64", GgufValue::of_u64(1ull << 60));
  v = {}; v.type = GgufType::I64; v.i = -(1ll << 60); w.set("t.i64", v);
  v = {}; v.type = GgufType::F64; v.f = 3.141592653589793; w.set("t.f64", v);
  w.set("t.strings", GgufValue::of_strings({"a", "", "ccc"}));
  w.set("t.nested", GgufValue::of_array(GgufType::Array, {GgufValue::of_i32s({1, 2}), GgufValue::of_i32s({}),
                                                          GgufValue::of_i32s({3})}));
  w.set("t.floats", GgufValue::of_f32s({1.5f, -2.5f}));
  w.add_tensor("a.f32", filled(DType::F32, {3, 5}, 1));
  w.add_tensor("b.f16", filled(DType::F16, {7}, 2));
  w.add_tensor("c.bf16", filled(DType::BF16, {2, 2, 3}, 3));
  w.add_tensor("d.q8_0", filled(DType::Q8_0, {2, 64}, 4));
  w.add_tensor("e.q4_0", filled(DType::Q4_0, {3, 32}, 5));
  w.add_tensor("f.q4_k", filled(DType::Q4_K, {2, 256}, 6));
  w.add_tensor("g.q6_k", filled(DType::Q6_K, {1, 512}, 7));
  w.add_tensor("h.4d", filled(DType::F32, {2, 1, 3, 4}, 8));
  return w;
}

}  // namespace

TEST(Gguf, RoundTripEveryValueTypeAndDtype) {
  TempDir dir;
  std::string path = dir.file("m.gguf");
  GgufWriter w = sample_writer();
  w.write(path);
  GgufFile g = GgufFile::open(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string("general.architecture", ""), "llama");
  EXPECT_EQ(g.get("t.u8").type, GgufType::U8);
  EXPECT_EQ(g.get_int("t.u8", 0), 200);
  EXPECT_EQ(g.get_int("t.i8", 0), -100);
  EXPECT_EQ(g.get_int("t.u16", 0), 65000);
  EXPECT_EQ(g.get_int("t.i16", 0), -32000);
  EXPECT_EQ(g.get_int("t.u32", 0), 4000000000ll);
  EXPECT_EQ(g.get_int("t.i32", 0), -2000000000ll);
  EXPECT_FLOAT_EQ(float(g.get_double("t.f32", 0)), 0.1f);
  EXPECT_TRUE(g.get_bool("t.bool", false));
  EXPECT_EQ(g.get_string("t.string", ""), "héllo\nworld");
  EXPECT_EQ(g.get_int("t.u64", 0), 1ll << 60);
  EXPECT_EQ(g.get_int("t.i64", 0), -(1ll << 60));
  EXPECT_DOUBLE_EQ(g.get_double("t.f64", 0), 3.141592653589793);
  const auto& strs = g.get("t.strings").as_array("t.strings");
  ASSERT_EQ(strs.size(), 3u);
  EXPECT_EQ(strs[2].s, "ccc");
  EXPECT_EQ(strs[1].s, "");
  const auto& nested = g.get("t.nested").as_array("t.nested");
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[0].arr[1].i, 2);
  EXPECT_TRUE(nested[1].arr.empty());
  EXPECT_EQ(nested[2].arr[0].i, 3);
  EXPECT_EQ(g.get("t.floats").arr[1].f, -2.5);
  EXPECT_EQ(g.get_int("missing", 42), 42);
  EXPECT_THROW(g.get_string("t.u32", ""), Error);  // wrong type is an error, not a fallback
  EXPECT_THROW(g.get("missing"), Error);

  GgufWriter ref = sample_writer();
  (void)ref;
  struct Expect { const char* name; DType dt; std::vector<int64_t> shape; uint32_t seed; };
  std::vector<Expect> expect = {{"a.f32", DType::F32, {3, 5}, 1},    {"b.f16", DType::F16, {7}, 2},
                                {"c.bf16", DType::BF16, {2, 2, 3}, 3}, {"d.q8_0", DType::Q8_0, {2, 64}, 4},
                                {"e.q4_0", DType::Q4_0, {3, 32}, 5},  {"f.q4_k", DType::Q4_K, {2, 256}, 6},
                                {"g.q6_k", DType::Q6_K, {1, 512}, 7}, {"h.4d", DType::F32, {2, 1, 3, 4}, 8}};
  ASSERT_EQ(g.tensors().size(), expect.size());
  for (const auto& e : expect) {
    Tensor t = g.tensor(e.name);
    Tensor want = filled(e.dt, e.shape, e.seed);
    EXPECT_EQ(t.dtype(), e.dt) << e.name;
    EXPECT_EQ(t.shape(), e.shape) << e.name;
    ASSERT_EQ(t.nbytes(), want.nbytes()) << e.name;
    EXPECT_EQ(std::memcmp(t.raw(), want.raw(), want.nbytes()), 0) << e.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 32, 0u) << e.name;
    const GgufTensorInfo& info = g.info(e.name);
    EXPECT_EQ(info.ne.front(), e.shape.back()) << "ne is innermost first";
  }
}

TEST(Gguf, VersionTwoAndCustomAlignment) {
  TempDir dir;
  GgufWriter w;
  w.set("general.alignment", GgufValue::of_u32(64));
  w.add_tensor("x", filled(DType::F32, {3}, 1));
  w.add_tensor("y", filled(DType::F32, {5}, 2));
  w.write(dir.file("a.gguf"));
  std::string bytes = read_all(dir.file("a.gguf"));
  GgufFile g = GgufFile::open(dir.file("a.gguf"));
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.info("y").offset, 64u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(g.tensor("y").raw()) % 64, 0u);
  bytes[4] = 2;  // version 2 has the same layout (64-bit counts)
  write_all(dir.file("v2.gguf"), bytes);
  EXPECT_EQ(GgufFile::open(dir.file("v2.gguf")).version(), 2u);
  EXPECT_FLOAT_EQ(GgufFile::open(dir.file("v2.gguf")).tensor("y").f32()[4], 1.0f - 3.0f + 0.0f);
}

TEST(Gguf, MalformedHeadersNameTheProblem) {
  TempDir dir;
  std::string p = dir.file("m.gguf");
  sample_writer().write(p);
  const std::string good = read_all(p);
  auto expect_error = [&](std::string bytes, const std::string& needle) {
    write_all(dir.file("bad.gguf"), bytes);
    try {
      GgufFile::open(dir.file("bad.gguf"));
      ADD_FAILURE() << "no error, expected '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos) << e.what();
    }
  };
  std::string b = good;
  b[0] = 'X';
  expect_error(b, "bad magic");
  b = good;
  b[4] = 1;
  expect_error(b, "unsupported GGUF version 1");
  b = good;
  uint64_t huge = 1ull << 62;
  std::memcpy(&b[16], &huge, 8);
  expect_error(b, "kv_count");
  expect_error(good.substr(0, 10), "shorter than a GGUF header");
  expect_error(good.substr(0, good.size() - 1), "outside");
  // an unknown ggml type in a tensor info: rewrite a.f32's type field
  b = good;
  size_t at = b.find("a.f32");
  ASSERT_NE(at, std::string::npos);
  size_t type_at = at + 5 + 4 + 2 * 8;  // name, n_dims, ne[2]
  uint32_t bogus = 16;                  // iq2_xxs: known to ggml, not to us
  std::memcpy(&b[type_at], &bogus, 4);
  expect_error(b, "unsupported ggml type 16 (iq2_xxs)");
  EXPECT_THROW(GgufFile::open(dir.file("does-not-exist.gguf")), Error);
}

TEST(Gguf, FuzzTruncationsAndByteFlipsNeverCrash) {
  TempDir dir;
  std::string p = dir.file("m.gguf");
  sample_writer().write(p);
  const std::string good = read_all(p);
  std::mt19937_64 rng(12345);
  int errors = 0, opened = 0;
  auto attempt = [&](const std::string& bytes) {
    write_all(dir.file("f.gguf"), bytes);
    try {
      GgufFile g = GgufFile::open(dir.file("f.gguf"));
      ++opened;
      for (const auto& [k, v] : g.metadata()) (void)v.summary();
      for (const auto& t : g.tensors()) {
        if (!t.supported) continue;
        Tensor x = g.tensor(t.name);
        volatile uint8_t sink = 0;
        const auto* d = static_cast<const uint8_t*>(x.raw());
        for (size_t i = 0; i < x.nbytes(); ++i) sink = sink ^ d[i];  // touching every byte must be safe
      }
    } catch (const Error&) {
      ++errors;
    }
  };
  for (int k = 0; k < 300; ++k) attempt(good.substr(0, size_t(rng() % good.size())));
  for (int k = 0; k < 1500; ++k) {
    std::string b = good;
    int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at = size_t(rng() % std::min<size_t>(b.size(), 700));  // mostly the header
      b[at] = char(rng() % 3 == 0 ? 0xff : uint8_t(rng()));
    }
    attempt(b);
  }
  EXPECT_GT(errors, 300);  // every truncation and many flips are rejected
  EXPECT_GT(opened, 0);    // flips inside strings or data still give a readable file
}

TEST(Gguf, WriterRejectsBadInput) {
  GgufWriter w;
  w.add_tensor("x", Tensor::zeros(DType::F32, {2}));
  EXPECT_THROW(w.add_tensor("x", Tensor::zeros(DType::F32, {2})), Error);
  EXPECT_THROW(w.add_tensor("i", Tensor::zeros(DType::I64, {2})), Error);
  EXPECT_THROW(GgufValue::of_array(GgufType::I32, {GgufValue::of_string("no")}), Error);
  TempDir dir;
  EXPECT_THROW(w.write((dir.path / "no-such-dir" / "x.gguf").string()), Error);
}
