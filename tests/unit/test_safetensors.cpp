// io/safetensors: round trips for every dtype, sharding, directory resolution, FP8 block dequantisation,
// a Python-written fixture, one-line errors naming file and tensor for every malformed input, fuzzing,
// atomic writes and lazy (mmap-only) opening.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/safetensors.h"

using namespace baleine;
using namespace baleine::io;
namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

namespace {

const std::string kData = BALEINE_TEST_DATA;

// A fresh directory, removed with its contents at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("baleine_test_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

// 8-byte little-endian length + header + data.
std::string build(const std::string& header, const std::string& data = "", uint64_t len = UINT64_MAX) {
  if (len == UINT64_MAX) len = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(len >> (8 * i)));
  return out + header + data;
}

Tensor random_tensor(DType dt, const std::vector<int64_t>& shape, uint32_t seed) {
  Tensor t = Tensor::empty(dt, shape);
  std::mt19937 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t(rng());
  return t;
}

Tensor f32_tensor(const std::vector<int64_t>& shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(DType::F32, shape);
  EXPECT_EQ(size_t(t.numel()), values.size());
  std::memcpy(t.raw(), values.data(), values.size() * 4);
  return t;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.raw()), t.nbytes()); }

// Runs `fn`, expects a baleine::Error whose one-line message contains every fragment.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
    return;
  }
  ADD_FAILURE() << "no baleine::Error thrown";
}

void expect_open_error(const std::string& path, const std::vector<std::string>& fragments) {
  std::vector<std::string> all = fragments;
  all.push_back(path);
  all.push_back("[SafetensorsReader::open]");
  expect_error([&] { SafetensorsReader::open(path); }, all);
}

// Independent OCP e4m3fn decoding: (-1)^s · 2^(e-7) · (1 + m/8), subnormal (-1)^s · 2^-6 · m/8, S.1111.111 NaN.
double fp8_reference(uint8_t b) {
  int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::nan("");
  double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -v : v;
}

bool same_f32(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

Tensors every_dtype() {
  return {{"a.f32", random_tensor(DType::F32, {3, 5}, 1)},
          {"b.bf16", random_tensor(DType::BF16, {7}, 2)},
          {"c.f16", random_tensor(DType::F16, {2, 3, 3}, 3)},
          {"d.fp8", random_tensor(DType::F8_E4M3, {5, 3}, 4)},
          {"e.i32", random_tensor(DType::I32, {1, 2, 3, 1}, 5)},
          {"f.i64", random_tensor(DType::I64, {3}, 6)},
          {"g.u8", random_tensor(DType::U8, {13}, 7)},
          {"h.scalar", random_tensor(DType::F32, {}, 8)},
          {"i.empty", random_tensor(DType::BF16, {0, 4}, 9)}};
}

void expect_same(const SafetensorsReader& r, const Tensors& tensors) {
  ASSERT_EQ(r.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(r.contains(name)) << name;
    const SafetensorsEntry& e = r.entry(name);
    EXPECT_EQ(e.dtype, t.dtype()) << name;
    EXPECT_EQ(e.shape, t.shape()) << name;
    EXPECT_EQ(e.nbytes, t.nbytes()) << name;
    Tensor back = r.tensor(name);
    EXPECT_EQ(back.shape(), t.shape()) << name;
    EXPECT_EQ(bytes_of(back), bytes_of(t)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(back.raw()) % dtype_size(t.dtype()), 0u) << name;
  }
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------------
// Round trips

TEST(Safetensors, RoundTripEveryDtypeBitIdentical) {
  TempDir dir;
  Tensors tensors = every_dtype();
  const std::string path = dir / "model.safetensors";
  safetensors_write(path, tensors);
  SafetensorsReader r = SafetensorsReader::open(path);
  EXPECT_EQ(r.path(), path);
  expect_same(r, tensors);
  EXPECT_TRUE(r.metadata().empty());

  // Layout as Hugging Face writes it: data block 8-aligned, packed without gaps, every tensor aligned to its
  // element size, header keys sorted.
  std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  size_t total = 0;
  std::string previous;
  for (const auto& [name, v] : header.items()) {
    EXPECT_LT(previous, name);
    previous = name;
    uint64_t b = v["data_offsets"][0];
    DType dt = r.entry(name).dtype;
    EXPECT_EQ(b % dtype_size(dt), 0u) << name;
    total += r.entry(name).nbytes;
  }
  EXPECT_EQ(bytes.size(), 8 + n + total);
}

TEST(Safetensors, MetadataRoundTripAndOverwrite) {
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  std::map<std::string, std::string> meta{{"format", "pt"}, {"empty", ""}, {"unicode", "baleine \xc3\xa9t\xc3\xa9"}};
  safetensors_write(path, {{"x", random_tensor(DType::F32, {2}, 1)}}, meta);
  EXPECT_EQ(SafetensorsReader::open(path).metadata(), meta);
  Tensors second{{"y", random_tensor(DType::U8, {9}, 2)}};
  safetensors_write(path, second);  // replaces the file
  SafetensorsReader r = SafetensorsReader::open(path);
  expect_same(r, second);
  EXPECT_TRUE(r.metadata().empty());
  for (const auto& f : fs::directory_iterator(dir.path)) EXPECT_EQ(f.path().filename(), "m.safetensors");
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  Tensor t = random_tensor(DType::F32, {2}, 1);
  expect_error([&] { safetensors_write(path, {{"a", t}, {"a", t}}); }, {"safetensors_write", path, "'a'"});
  expect_error([&] { safetensors_write(path, {{"__metadata__", t}}); }, {path, "__metadata__"});
  expect_error([&] { safetensors_write(path, {{"u", Tensor()}}); }, {path, "'u'", "undefined"});
  EXPECT_FALSE(fs::exists(path));
}

TEST(Safetensors, ShardedRoundTrip) {
  TempDir dir;
  Tensors tensors = every_dtype();
  for (int i = 0; i < 6; ++i)
    tensors.push_back({"layer." + std::to_string(i) + ".weight", random_tensor(DType::BF16, {8, 16}, 100 + i)});
  std::map<std::string, std::string> meta{{"format", "pt"}};
  std::vector<std::string> shards = safetensors_write_sharded(dir / "ckpt", tensors, 300, meta);
  ASSERT_GE(shards.size(), 3u);
  for (size_t i = 0; i < shards.size(); ++i) {
    char want[64];
    std::snprintf(want, sizeof want, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    EXPECT_EQ(shards[i], want);
  }
  auto index = nlohmann::json::parse(read_file(dir / "ckpt/model.safetensors.index.json"));
  size_t total = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());

  for (const std::string& p : {dir / "ckpt", dir / "ckpt/model.safetensors.index.json"}) {
    SafetensorsReader r = SafetensorsReader::open(p);
    EXPECT_EQ(r.path(), dir / "ckpt/model.safetensors.index.json");
    expect_same(r, tensors);
    EXPECT_EQ(r.metadata().at("total_size"), std::to_string(total));
    EXPECT_EQ(r.metadata().at("format"), "pt");
    for (const auto& [name, t] : tensors)
      EXPECT_EQ(r.entry(name).file, dir / ("ckpt/" + index["weight_map"][name].get<std::string>()));
  }
  // Each shard is a valid file on its own and shards partition the tensors; none exceeds the budget.
  size_t count = 0;
  for (const auto& s : shards) {
    SafetensorsReader r = SafetensorsReader::open(dir / ("ckpt/" + s));
    size_t bytes = 0;
    for (const auto& n : r.names()) bytes += r.entry(n).nbytes;
    EXPECT_LE(bytes, 300u);
    count += r.names().size();
  }
  EXPECT_EQ(count, tensors.size());
}

TEST(Safetensors, ShardedOversizedTensorGetsItsOwnShard) {
  TempDir dir;
  Tensors tensors{{"small", random_tensor(DType::U8, {10}, 1)},
                  {"big", random_tensor(DType::F32, {100}, 2)},
                  {"tail", random_tensor(DType::U8, {10}, 3)}};
  auto shards = safetensors_write_sharded(dir.path.string(), tensors, 64);
  EXPECT_EQ(shards.size(), 3u);
  expect_same(SafetensorsReader::open(dir.path.string()), tensors);
}

TEST(Safetensors, DirectoryResolution) {
  TempDir dir;
  Tensors a{{"a", random_tensor(DType::F32, {2}, 1)}}, b{{"b", random_tensor(DType::F32, {2}, 2)}};
  // A single *.safetensors file of any name.
  safetensors_write(dir / "weights.safetensors", a);
  EXPECT_EQ(SafetensorsReader::open(dir.path.string()).path(), dir / "weights.safetensors");
  // Two files without an index: ambiguous.
  safetensors_write(dir / "other.safetensors", b);
  expect_open_error(dir.path.string(),
                    {"model.safetensors.index.json", "other.safetensors", "weights.safetensors"});
  // model.safetensors wins over other files.
  safetensors_write(dir / "model.safetensors", b);
  EXPECT_EQ(SafetensorsReader::open(dir.path.string()).path(), dir / "model.safetensors");
  // The index wins over model.safetensors.
  safetensors_write_sharded(dir.path.string(), a, 1000);
  SafetensorsReader r = SafetensorsReader::open(dir.path.string());
  EXPECT_EQ(r.path(), dir / "model.safetensors.index.json");
  expect_same(r, a);

  TempDir empty;
  expect_open_error(empty.path.string(), {"model.safetensors.index.json", "model.safetensors", "*.safetensors"});
  expect_open_error(empty / "missing.safetensors", {"No such file"});
}

TEST(Safetensors, EntryNotFoundNamesTensorAndPath) {
  TempDir dir;
  safetensors_write(dir / "model.safetensors", {{"a", random_tensor(DType::F32, {2}, 1)}});
  SafetensorsReader r = SafetensorsReader::open(dir.path.string());
  EXPECT_FALSE(r.contains("nope"));
  expect_error([&] { r.entry("nope"); }, {"tensor 'nope' not found in " + dir / "model.safetensors"});
  expect_error([&] { r.tensor("nope"); }, {"'nope'"});
}

TEST(Safetensors, ZeroCopyTensorOutlivesReader) {
  TempDir dir;
  Tensors tensors{{"a", random_tensor(DType::F32, {64}, 1)}};
  safetensors_write(dir / "model.safetensors", tensors);
  Tensor t;
  {
    SafetensorsReader r = SafetensorsReader::open(dir.path.string());
    t = r.tensor("a");
    EXPECT_EQ(t.raw(), r.entry("a").data);  // no copy
  }
  EXPECT_EQ(bytes_of(t), bytes_of(tensors[0].second));
}

TEST(Safetensors, MisalignedTensorFromOtherWritersIsCopied) {
  TempDir dir;
  const std::string path = dir / "odd.safetensors";
  std::string header = R"({"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                       R"("v":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  float v[2] = {1.5f, -2.25f};
  write_file(path, build(header, std::string("abc") + std::string(reinterpret_cast<char*>(v), 8)));
  SafetensorsReader r = SafetensorsReader::open(path);
  Tensor t = r.tensor("v");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.f32()[0], 1.5f);
  EXPECT_EQ(t.f32()[1], -2.25f);
  EXPECT_EQ(bytes_of(r.tensor("u")), "abc");
}

// ----------------------------------------------------------------------------------------------------------------
// Conversions and FP8

TEST(Safetensors, Fp8DecodesAll256BytesExactly) {
  for (int b = 0; b < 256; ++b) {
    double want = fp8_reference(uint8_t(b));
    float got = fp8_e4m3_to_f32(uint8_t(b));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << b;
    } else {
      EXPECT_TRUE(same_f32(got, float(want))) << b << ": " << got << " vs " << want;
    }
  }
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

TEST(Safetensors, Fp8BlockDequantHandComputedWithPartialBlocks) {
  const int64_t rows = 200, cols = 300, block = 128;  // blocks: 128/72 rows x 128/128/44 cols
  Tensor w = Tensor::empty(DType::F8_E4M3, {rows, cols});
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) w.data<uint8_t>()[i * cols + j] = uint8_t((i * 7 + j * 13) % 126);  // no NaN
  Tensor s = f32_tensor({2, 3}, {0.5f, 2.0f, 0.25f, 3.0f, -1.0f, 1.0f / 3.0f});
  Tensor out = dequantize_fp8_blocks(w, s, DType::F32, block);
  ASSERT_EQ(out.shape(), (std::vector<int64_t>{rows, cols}));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float want = float(fp8_reference(w.data<uint8_t>()[i * cols + j])) * s.f32()[(i / block) * 3 + j / block];
      ASSERT_TRUE(same_f32(out.f32()[i * cols + j], want)) << i << "," << j;
    }
  // Hand-checked corners: w[199][299] = (1393 + 3887) % 126 = 114 = 0x72 -> exp 14, mant 2 -> 1.25 · 2^7 = 160;
  // its block (1, 2) has scale 1/3. w[0][0] = 0. w[127][128] = (889 + 1664) % 126 = 33 = 0x21 -> 1.125 · 2^-3.
  EXPECT_EQ(out.f32()[199 * cols + 299], 160.0f * (1.0f / 3.0f));
  EXPECT_EQ(out.f32()[0], 0.0f);
  EXPECT_EQ(out.f32()[127 * cols + 128], 0.140625f * 2.0f);
  EXPECT_EQ(out.f32()[128 * cols + 128], float(fp8_reference(uint8_t((896 + 1664) % 126))) * -1.0f);

  Tensor bf = dequantize_fp8_blocks(w, s, DType::BF16, block);
  ASSERT_EQ(bf.dtype(), DType::BF16);
  for (int64_t k = 0; k < rows * cols; ++k) ASSERT_EQ(bf.data<uint16_t>()[k], f32_to_bf16(out.f32()[k]));

  expect_error([&] { dequantize_fp8_blocks(w, f32_tensor({2, 2}, {1, 1, 1, 1}), DType::F32, block); },
               {"scale_inv", "[2, 2]", "[2, 3]"});
  expect_error([&] { dequantize_fp8_blocks(s, s, DType::F32, block); }, {"f8_e4m3"});

  // Through a file with the Hugging Face companion name; a wrong companion shape names both tensors.
  TempDir dir;
  safetensors_write(dir / "model.safetensors", {{"x.weight", w}, {"x.weight_scale_inv", s}});
  SafetensorsReader r = SafetensorsReader::open(dir.path.string());
  EXPECT_EQ(bytes_of(r.tensor_as("x.weight", DType::F32)), bytes_of(out));
  EXPECT_EQ(bytes_of(r.tensor_as("x.weight", DType::BF16)), bytes_of(bf));
  safetensors_write(dir / "model.safetensors",
                    {{"x.weight", w}, {"x.weight_scale_inv", f32_tensor({2, 2}, {1, 1, 1, 1})}});
  SafetensorsReader bad = SafetensorsReader::open(dir.path.string());
  expect_error([&] { bad.tensor_as("x.weight", DType::F32); },
               {dir / "model.safetensors", "'x.weight_scale_inv'", "[2, 2]", "expected [2, 3]", "'x.weight'"});
}

TEST(Safetensors, TensorAsConversionsAndBf16Rounding) {
  TempDir dir;
  const float halfway = 1.0f + 1.0f / 256, above = 1.0f + 3.0f / 256, big = 3.4028235e38f;
  Tensor f = f32_tensor({6}, {halfway, above, -0.0f, big, std::nanf(""), 1e-40f});
  Tensor plain_fp8 = Tensor::empty(DType::F8_E4M3, {2});
  plain_fp8.data<uint8_t>()[0] = 0x38;  // 1.0
  plain_fp8.data<uint8_t>()[1] = 0xc4;  // -(1.5 · 2^1)
  safetensors_write(dir / "model.safetensors",
                    {{"f", f}, {"i", random_tensor(DType::I32, {2}, 1)}, {"p", plain_fp8}});
  SafetensorsReader r = SafetensorsReader::open(dir.path.string());
  Tensor b = r.tensor_as("f", DType::BF16);
  const uint16_t* h = b.data<uint16_t>();
  EXPECT_EQ(bf16_to_f32(h[0]), 1.0f);                 // tie to even
  EXPECT_EQ(bf16_to_f32(h[1]), 1.0f + 4.0f / 256);    // tie to even (upwards)
  EXPECT_EQ(h[2], 0x8000);                            // -0 kept
  EXPECT_TRUE(std::isinf(bf16_to_f32(h[3])));         // rounds past the largest bf16
  EXPECT_TRUE(std::isnan(bf16_to_f32(h[4])));
  EXPECT_EQ(bytes_of(r.tensor_as("f", DType::F32)), bytes_of(f));
  Tensor p = r.tensor_as("p", DType::F32);
  EXPECT_EQ(p.f32()[0], 1.0f);
  EXPECT_EQ(p.f32()[1], -3.0f);
  expect_error([&] { r.tensor_as("i", DType::F32); }, {"'i'", "I32", "floating-point"});
  expect_error([&] { r.tensor_as("f", DType::F16); }, {"'f'", "f32 or bf16"});
}

TEST(Safetensors, PythonFixtureDecodesExactly) {
  const std::string dir = kData + "/safetensors";
  SafetensorsReader in = SafetensorsReader::open(dir + "/dtypes.safetensors");
  SafetensorsReader want = SafetensorsReader::open(dir + "/dtypes_expected.safetensors");
  EXPECT_EQ(in.metadata().at("writer"), "make_safetensors_fixture.py");
  EXPECT_EQ(in.entry("w.weight").dtype, DType::F8_E4M3);
  EXPECT_EQ(in.entry("w.weight").shape, (std::vector<int64_t>{200, 136}));
  int checked = 0;
  for (const std::string name : {"f32", "bf16", "f16", "fp8.all", "w.weight"}) {
    Tensor got = in.tensor_as(name, DType::F32), exp = want.tensor(name);
    ASSERT_EQ(got.shape(), exp.shape()) << name;
    for (int64_t k = 0; k < got.numel(); ++k)
      ASSERT_TRUE(same_f32(got.f32()[k], exp.f32()[k])) << name << "[" << k << "]: " << got.f32()[k] << " vs "
                                                         << exp.f32()[k];
    Tensor gb = in.tensor_as(name, DType::BF16), eb = want.tensor(name + ".bf16");
    ASSERT_EQ(gb.shape(), eb.shape()) << name;
    for (int64_t k = 0; k < gb.numel(); ++k) {
      float x = bf16_to_f32(gb.data<uint16_t>()[k]), y = bf16_to_f32(eb.data<uint16_t>()[k]);
      ASSERT_TRUE(same_f32(x, y)) << name << ".bf16[" << k << "]: " << x << " vs " << y;
    }
    checked += int(got.numel());
  }
  EXPECT_EQ(checked, 15 + 24 + 18 + 256 + 200 * 136);
}

// ----------------------------------------------------------------------------------------------------------------
// Malformed input: one-line errors naming the file and the tensor or field

TEST(SafetensorsBad, ShortFilesAndHeaderLength) {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  for (size_t n = 0; n < 8; ++n) {
    write_file(p, std::string(n, '\0'));
    expect_open_error(p, {"shorter than the 8-byte header length"});
  }
  write_file(p, build("{}", std::string(10, 'x'), 1000));
  expect_open_error(p, {"header length 1000 exceeds the file size"});
  write_file(p, build("{}", "", uint64_t(1) << 40));
  expect_open_error(p, {"header length 1099511627776 is absurd"});
  write_file(p, build("{}", "", UINT64_MAX - 1));
  expect_open_error(p, {"is absurd"});
  write_file(p, build("{}"));  // empty but valid
  EXPECT_TRUE(SafetensorsReader::open(p).names().empty());
}

TEST(SafetensorsBad, HeaderJsonAndFieldTypes) {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  auto check = [&](const std::string& header, const std::vector<std::string>& fragments, size_t data = 64) {
    SCOPED_TRACE(header);
    write_file(p, build(header, std::string(data, '\0')));
    expect_open_error(p, fragments);
  };
  const std::string ok_rest = R"("shape":[2],"data_offsets":[0,8]})";
  check("{not json", {"header is not valid JSON"});
  check("", {"header is not valid JSON"});
  check("[1, 2]", {"header is not a JSON object", "array"});
  check(R"({"x":{"dtype":"F32",)" + ok_rest + R"(,"x":{"dtype":"F32",)" + ok_rest + "}",
        {"duplicate key 'x'"});
  check(std::string(100, '[') + std::string(100, ']'), {"nests deeper"});
  check(R"({"x.weight":7})", {"tensor 'x.weight'", "entry must be an object"});
  check(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", {"tensor 'x'", "missing 'dtype'"});
  check(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", {"tensor 'x'", "missing 'shape'"});
  check(R"({"x":{"dtype":"F32","shape":[2]}})", {"tensor 'x'", "missing 'data_offsets'"});
  check(R"({"x":{"dtype":5,)" + ok_rest + "}", {"tensor 'x'", "'dtype' must be a string"});
  check(R"({"x":{"dtype":"F64",)" + ok_rest + "}", {"tensor 'x'", "unsupported dtype 'F64'"});
  check(R"({"x":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", {"tensor 'x'", "'shape' must be an array"});
  check(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", {"tensor 'x'", "non-negative integers"});
  check(R"({"x":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}})", {"tensor 'x'", "[-2,-1]"});
  check(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", {"tensor 'x'", "'data_offsets' must be two"});
  check(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":"0,8"}})", {"tensor 'x'", "'data_offsets'"});
  check(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", {"tensor 'x'", "non-negative"});
  check(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", {"tensor 'x'", "[8, 0] begin after end"});
  check(R"({"x.weight":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}})",
        {"[SafetensorsReader::open] " + p + ": tensor 'x.weight': data_offsets [0, 100] exceed the data block (64 bytes)"});
  check(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
        {"tensor 'x'", "hold 8 bytes but shape [3] of F32 needs 12"});
  check(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
        {"tensor 'x'", "is too large"});
  check(R"({"x":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})",
        {"tensor 'x'", "is too large"});
  check(R"({"x":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,8]}})",
        {"tensor 'x'", "needs more than 2^64"});
  check(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        {"tensor 'b'", "overlap tensor 'a'"});
  check(R"({"__metadata__":{"k":1}})", {"'__metadata__' entry 'k' must be a string"});
  check(R"({"__metadata__":"text"})", {"'__metadata__' must be an object"});
}

TEST(SafetensorsBad, TooManyDimensionsIsAnErrorOnAccess) {
  TempDir dir;
  const std::string p = dir / "five.safetensors";
  write_file(p, build(R"({"x":{"dtype":"U8","shape":[1,1,1,1,2],"data_offsets":[0,2]}})", "ab"));
  SafetensorsReader r = SafetensorsReader::open(p);
  EXPECT_EQ(r.entry("x").shape.size(), 5u);
  expect_error([&] { r.tensor("x"); }, {p, "'x'", "5 dimensions"});
}

TEST(SafetensorsBad, TruncatedAtEveryByteNeverCrashes) {
  TempDir dir;
  const std::string full = dir / "full.safetensors", cut = dir / "cut.safetensors";
  safetensors_write(full, {{"a", random_tensor(DType::F32, {3}, 1)}, {"b", random_tensor(DType::U8, {5}, 2)}},
                    {{"k", "v"}});
  const std::string bytes = read_file(full);
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_file(cut, bytes.substr(0, n));
    try {
      SafetensorsReader::open(cut);
      ADD_FAILURE() << "truncated at " << n << " of " << bytes.size() << " opened";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
    }
  }
}

TEST(SafetensorsBad, RandomHeaderMutationsLoadOrThrow) {
  TempDir dir;
  const std::string full = dir / "full.safetensors", mut = dir / "mut.safetensors";
  safetensors_write(full, every_dtype(), {{"format", "pt"}});
  const std::string bytes = read_file(full);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::mt19937 rng(20240601);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 200; ++iter) {
    std::string b = bytes;
    int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      size_t pos = rng() % (8 + n);
      if (rng() % 2) b[pos] = char(b[pos] ^ (1 << (rng() % 8)));
      else b[pos] = "{}[]\",:0123456789-e\x01\xff"[rng() % 22];
    }
    write_file(mut, b);
    try {
      SafetensorsReader r = SafetensorsReader::open(mut);
      for (const auto& name : r.names()) {  // consistent: every byte of every tensor readable
        const SafetensorsEntry& e = r.entry(name);
        int64_t numel = 1;
        for (int64_t d : e.shape) numel *= d;
        ASSERT_EQ(e.nbytes, size_t(numel) * dtype_size(e.dtype));
        volatile unsigned sum = 0;
        for (size_t i = 0; i < e.nbytes; ++i) sum = sum + static_cast<const uint8_t*>(e.data)[i];
        if (e.shape.size() <= 4) {
          EXPECT_EQ(r.tensor(name).nbytes(), e.nbytes);
        }
      }
      ++loaded;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(mut), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_EQ(loaded + rejected, 200);
  EXPECT_GT(rejected, 0);
}

TEST(SafetensorsBad, ShardedIndexErrors) {
  TempDir dir;
  Tensors tensors{{"a", random_tensor(DType::F32, {4}, 1)},
                  {"b", random_tensor(DType::F32, {4}, 2)},
                  {"c", random_tensor(DType::F32, {4}, 3)}};
  auto shards = safetensors_write_sharded(dir.path.string(), tensors, 16);
  ASSERT_EQ(shards.size(), 3u);
  const std::string index = dir / "model.safetensors.index.json";
  const auto good = nlohmann::json::parse(read_file(index));
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    write_file(index, j.dump());
  };
  with([&](nlohmann::json& j) { j["weight_map"]["a"] = "./" + shards[0]; });  // same shard, other spelling
  expect_same(SafetensorsReader::open(index), tensors);
  with([](nlohmann::json& j) { j["weight_map"]["d"] = "model-00009-of-00009.safetensors"; });
  expect_open_error(index, {"tensor 'd'", "shard 'model-00009-of-00009.safetensors' does not exist"});
  with([&](nlohmann::json& j) { j["weight_map"]["zz"] = shards[1]; });
  expect_open_error(index, {"tensor 'zz'", "'" + shards[1] + "'", "does not contain it"});
  with([&](nlohmann::json& j) { j["weight_map"]["a"] = shards[2]; });
  expect_open_error(index, {"tensor 'a'", shards[2], "does not contain it"});
  with([](nlohmann::json& j) { j["weight_map"]["a"] = "../escape.safetensors"; });
  expect_open_error(index, {"tensor 'a'", "../escape.safetensors"});
  with([](nlohmann::json& j) { j["weight_map"]["a"] = 3; });
  expect_open_error(index, {"'weight_map' entry 'a' must be a string"});
  with([](nlohmann::json& j) { j.erase("weight_map"); });
  expect_open_error(index, {"missing 'weight_map'"});
  with([](nlohmann::json& j) { j["metadata"] = "x"; });
  expect_open_error(index, {"'metadata' must be an object"});
  write_file(index, "{\"weight_map\": ");
  expect_open_error(index, {"index is not valid JSON"});

  // A tensor present in two shards.
  write_file(index, good.dump());
  safetensors_write(dir / shards[1], {{"b", tensors[1].second}, {"c", tensors[2].second}});
  expect_open_error(index, {"tensor 'c' is present in two shards", shards[1], shards[2]});
  // A corrupt shard names the shard.
  write_file(dir / shards[0], "tiny");
  expect_error([&] { SafetensorsReader::open(index); }, {dir / shards[0], "shorter than"});
}

// ----------------------------------------------------------------------------------------------------------------
// Atomic writes and lazy opening

TEST(SafetensorsWrite, FailureLeavesExistingFileIntact) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  Tensors old{{"old", random_tensor(DType::F32, {16}, 1)}};
  safetensors_write(path, old);
  const std::string before = read_file(path);
  Tensors next{{"new", random_tensor(DType::F32, {16384}, 2)}};

  // The temp file cannot be created (a directory sits at its name): works even as root.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  fs::create_directory(tmp);
  expect_error([&] { safetensors_write(path, next); }, {"safetensors_write", path, "Is a directory"});
  fs::remove(tmp);
  EXPECT_EQ(read_file(path), before);

  // The write fails half-way (file size limit -> EFBIG, like ENOSPC): temp file removed, target intact.
  struct rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  expect_error([&] { safetensors_write(path, next); }, {path, "cannot write", "too large"});
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);
  EXPECT_EQ(read_file(path), before);
  EXPECT_FALSE(fs::exists(tmp));

  // An unwritable directory (permissions do not bind root, so only checked for other users).
  if (::geteuid() != 0) {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    expect_error([&] { safetensors_write(path, next); }, {path, "Permission denied"});
    fs::permissions(dir.path, fs::perms::owner_all);
    EXPECT_EQ(read_file(path), before);
  }
  expect_error([&] { safetensors_write(dir / "no/such/dir/x.safetensors", next); }, {"No such file or directory"});
  for (const auto& f : fs::directory_iterator(dir.path)) EXPECT_EQ(f.path().filename(), "model.safetensors");
  expect_same(SafetensorsReader::open(path), old);
}

TEST(SafetensorsWrite, OpeningDoesNotReadTensorData) {
  // A 4 GiB sparse tensor: opening and even taking a zero-copy tensor must only touch the header pages.
  TempDir dir;
  const std::string p = dir / "huge.safetensors";
  const uint64_t big = uint64_t(4) << 30;
  std::string header = R"({"huge":{"dtype":"U8","shape":[)" + std::to_string(big) + R"(],"data_offsets":[0,)" +
                       std::to_string(big) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_file(p, build(header));
  fs::resize_file(p, 8 + header.size() + big);
  struct rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  SafetensorsReader r = SafetensorsReader::open(p);
  Tensor t = r.tensor("huge");
  getrusage(RUSAGE_SELF, &after);
  EXPECT_EQ(t.nbytes(), big);
  EXPECT_LT(after.ru_minflt - before.ru_minflt + after.ru_majflt - before.ru_majflt, 1000);
  EXPECT_EQ(static_cast<const uint8_t*>(t.raw())[big - 1], 0);  // the last byte is reachable
}
