// io/torch_checkpoint and io/checkpoint: torch.save fixtures (every dtype, views, strides, tied, DEFLATE, sharded)
// decoded exactly against values torch computed; ZIP64 archives; format selection between safetensors and .bin;
// one-line errors naming the file for malformed archives, pickles and storages; truncations and mutations never
// crash.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/check.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "models/model.h"

using namespace baleine;
using namespace baleine::io;
namespace fs = std::filesystem;
using namespace std::string_literals;

namespace {

const std::string kData = std::string(BALEINE_TEST_DATA) + "/torch_bin";

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("baleine_test_torch_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
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
  all.push_back("[TorchCheckpointReader::open]");
  expect_error([&] { TorchCheckpointReader::open(path); }, all);
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal ZIP writer (STORED, torch-like 64-byte aligned data, optional ZIP64 forms) and pickle builder, so
// tests can make archives torch would never write.

uint32_t crc32_of(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char ch : s) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put16(std::string& o, uint64_t v) { for (int i = 0; i < 2; ++i) o += char(uint8_t(v >> (8 * i))); }
void put32(std::string& o, uint64_t v) { for (int i = 0; i < 4; ++i) o += char(uint8_t(v >> (8 * i))); }
void put64(std::string& o, uint64_t v) { for (int i = 0; i < 8; ++i) o += char(uint8_t(v >> (8 * i))); }

using Records = std::vector<std::pair<std::string, std::string>>;

std::string make_zip(const Records& records, bool zip64 = false) {
  std::string out, cd;
  for (const auto& [name, data] : records) {
    const uint64_t local = out.size();
    size_t pad = (64 - (local + 30 + name.size() + 4) % 64) % 64;  // extra "FB" field pads data to 64 bytes
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0);
    put16(out, 0);  // STORED
    put32(out, 0);
    put32(out, crc32_of(data));
    put32(out, data.size());
    put32(out, data.size());
    put16(out, name.size());
    put16(out, 4 + pad);
    out += name;
    put16(out, 0x4246);
    put16(out, pad);
    out.append(pad, 'Z');
    out += data;

    put32(cd, 0x02014b50);
    put16(cd, 45);
    put16(cd, 45);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, crc32_of(data));
    put32(cd, zip64 ? 0xffffffffu : data.size());
    put32(cd, zip64 ? 0xffffffffu : data.size());
    put16(cd, name.size());
    put16(cd, zip64 ? 28 : 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, zip64 ? 0xffffffffu : local);
    cd += name;
    if (zip64) {
      put16(cd, 0x0001);
      put16(cd, 24);
      put64(cd, data.size());
      put64(cd, data.size());
      put64(cd, local);
    }
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  if (zip64) {
    const uint64_t z64 = out.size();
    put32(out, 0x06064b50);
    put64(out, 44);
    put16(out, 45);
    put16(out, 45);
    put32(out, 0);
    put32(out, 0);
    put64(out, records.size());
    put64(out, records.size());
    put64(out, cd.size());
    put64(out, cd_offset);
    put32(out, 0x07064b50);
    put32(out, 0);
    put64(out, z64);
    put32(out, 1);
  }
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, zip64 ? 0xffff : records.size());
  put16(out, zip64 ? 0xffff : records.size());
  put32(out, zip64 ? 0xffffffffu : cd.size());
  put32(out, zip64 ? 0xffffffffu : cd_offset);
  put16(out, 0);
  return out;
}

// Protocol-2 pickle of {name: tensor}, written the way torch.save writes it.
struct TensorSpec {
  std::string name, storage_type = "FloatStorage", key = "0";
  int64_t numel = 0, offset = 0;
  std::vector<int64_t> size, stride;
};

struct Pickle {
  std::string b;
  Pickle& op(uint8_t c) { b += char(c); return *this; }
  Pickle& global(const std::string& module, const std::string& name) {
    b += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X');
    put32(b, s.size());
    b += s;
    return *this;
  }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(uint8_t(v));
    op(0x8a).op(8);
    put64(b, uint64_t(v));
    return *this;
  }
  Pickle& tensor(const TensorSpec& t) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.numel).op('t').op('Q');
    integer(t.offset).op('(');
    for (int64_t s : t.size) integer(s);
    op('t').op('(');
    for (int64_t s : t.stride) integer(s);
    op('t').op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
    return *this;
  }
};

std::string state_pickle(const std::vector<TensorSpec>& tensors) {
  Pickle p;
  p.op(0x80).op(2).global("collections", "OrderedDict").op('q').op(0).op(')').op('R').op('(');
  for (const auto& t : tensors) p.str(t.name).tensor(t);
  p.op('u').op('.');
  return p.b;
}

std::string floats(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

std::string torch_zip(const std::string& pickle, const std::map<std::string, std::string>& storages,
                      bool zip64 = false, const std::string& archive = "archive") {
  Records r{{archive + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) r.push_back({archive + "/data/" + key, bytes});
  r.push_back({archive + "/byteorder", "little"});
  r.push_back({archive + "/version", "3\n"});
  return make_zip(r, zip64);
}

bool same_f32(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures written by torch.save (tests/reference/make_torch_bin_fixture.py)

// The expected tensors of `fixture` ("model.bin", "sharded", ...): name → (expected values, "DTYPE layout").
std::map<std::string, std::pair<Tensor, std::string>> expected_of(const SafetensorsReader& want,
                                                                  const std::string& fixture) {
  std::map<std::string, std::pair<Tensor, std::string>> out;
  const std::string prefix = fixture + "/";
  for (const auto& key : want.names())
    if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = {want.tensor(key), want.metadata().at(key)};
  return out;
}

const char* dtype_tag(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    default: return "?";
  }
}

int64_t int_at(const Tensor& t, int64_t k) {
  switch (t.dtype()) {
    case DType::I64: return t.data<int64_t>()[k];
    case DType::I32: return t.data<int32_t>()[k];
    case DType::U8: return t.data<uint8_t>()[k];
    default: ADD_FAILURE() << "not an integer dtype"; return 0;
  }
}

// Compares every tensor of `r` with the fixture's expected values; returns the number of values checked.
int64_t expect_fixture(const TorchCheckpointReader& r, const std::string& fixture) {
  SafetensorsReader want = SafetensorsReader::open(kData + "/expected.safetensors");
  auto expected = expected_of(want, fixture);
  EXPECT_FALSE(expected.empty());
  std::vector<std::string> names;
  for (const auto& kv : expected) names.push_back(kv.first);
  EXPECT_EQ(r.names(), names);
  int64_t checked = 0;
  for (const auto& [name, exp] : expected) {
    SCOPED_TRACE(fixture + "/" + name);
    const auto& [values, tag] = exp;
    const TorchTensorEntry& e = r.entry(name);
    const std::string dt = tag.substr(0, tag.find(' '));
    EXPECT_EQ(dtype_tag(e.dtype), dt);
    EXPECT_EQ(e.contiguous, tag.substr(tag.find(' ') + 1) == "contiguous");
    EXPECT_EQ(e.shape, values.shape());
    EXPECT_EQ(e.stride.size(), e.shape.size());
    EXPECT_EQ(e.nbytes, dtype_size(e.dtype) * size_t(values.numel()));
    Tensor got = r.tensor(name);
    EXPECT_EQ(got.dtype(), e.dtype);
    EXPECT_EQ(got.shape(), values.shape());
    if (e.data != nullptr) {
      EXPECT_EQ(got.raw(), e.data) << "contiguous stored tensors are zero-copy";
    }
    if (values.dtype() == DType::F32) {
      Tensor f = r.tensor_as(name, DType::F32);
      Tensor bf = r.tensor_as(name, DType::BF16);
      EXPECT_NE(f.raw(), e.data) << "tensor_as gives a private copy";
      for (int64_t k = 0; k < values.numel(); ++k) {
        EXPECT_TRUE(same_f32(f.f32()[k], values.f32()[k])) << "[" << k << "] " << f.f32()[k] << " vs " << values.f32()[k];
        EXPECT_EQ(bf.data<uint16_t>()[k], f32_to_bf16(values.f32()[k])) << "[" << k << "]";
      }
    } else {
      for (int64_t k = 0; k < values.numel(); ++k) EXPECT_EQ(int_at(got, k), values.data<int64_t>()[k]) << "[" << k << "]";
      expect_error([&] { r.tensor_as(name, DType::F32); }, {"'" + name + "'", "not a floating-point type"});
    }
    checked += values.numel();
  }
  return checked;
}

TEST(TorchCheckpoint, StateDictFixtureDecodesExactly) {
  TorchCheckpointReader r = TorchCheckpointReader::open(kData + "/model.bin");
  EXPECT_EQ(r.path(), kData + "/model.bin");
  EXPECT_GT(expect_fixture(r, "model.bin"), 150);
  EXPECT_TRUE(r.metadata().empty());

  // Views share the storage of view.base: zero-copy pointers 5 floats apart, strided ones copied.
  const TorchTensorEntry& base = r.entry("view.base");
  const TorchTensorEntry& off = r.entry("view.offset");
  EXPECT_EQ(off.storage, base.storage);
  EXPECT_EQ(off.storage_offset, 5);
  EXPECT_EQ(static_cast<const float*>(off.data), static_cast<const float*>(base.data) + 5);
  const TorchTensorEntry& tr = r.entry("view.transposed");
  EXPECT_EQ(tr.storage, base.storage);
  EXPECT_EQ(tr.data, nullptr);
  EXPECT_EQ(tr.stride, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(r.entry("view.strided").stride, (std::vector<int64_t>{3}));
  EXPECT_EQ(r.entry("view.expanded").stride, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(r.entry("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(r.tensor("scalar").f32()[0], 3.25f);
  EXPECT_EQ(r.entry("tied.weight").storage, r.entry("proj.weight").storage);
  EXPECT_EQ(r.entry("f64").storage_type, "DoubleStorage");
  EXPECT_EQ(r.entry("f64").data, nullptr);  // converted to f32
  EXPECT_EQ(r.entry("mask").storage_type, "BoolStorage");
  EXPECT_NE(r.entry("embed.weight").file.find("model.bin"), std::string::npos);
  expect_error([&] { r.entry("nope"); }, {"[TorchCheckpointReader::entry]", "'nope'", "model.bin"});
  expect_error([&] { r.tensor_as("proj.weight", DType::F16); }, {"f32 or bf16"});
}

TEST(TorchCheckpoint, DeflatedFixtureDecodesExactly) {
  TorchCheckpointReader r = TorchCheckpointReader::open(kData + "/deflate.bin");
  EXPECT_GT(expect_fixture(r, "deflate.bin"), 150);
  for (const auto& name : r.names()) EXPECT_EQ(r.entry(name).data, nullptr) << name;
}

TEST(TorchCheckpoint, PlainDictWithParameterAndNonTensorValues) {
  TorchCheckpointReader r = TorchCheckpointReader::open(kData + "/mixed.pt");
  EXPECT_EQ(expect_fixture(r, "mixed.pt"), 4);
  EXPECT_EQ(r.names(), std::vector<std::string>{"w"});
}

TEST(TorchCheckpoint, ShardedFixtureByDirectoryAndIndex) {
  for (const std::string& p : {kData + "/sharded", kData + "/sharded/pytorch_model.bin.index.json"}) {
    SCOPED_TRACE(p);
    TorchCheckpointReader r = TorchCheckpointReader::open(p);
    EXPECT_EQ(r.path(), kData + "/sharded/pytorch_model.bin.index.json");
    EXPECT_EQ(expect_fixture(r, "sharded"), 6 + 3 + 6);
    EXPECT_EQ(r.metadata().at("total_size"), std::to_string(6 * 2 + 3 * 4 + 6 * 4));
    EXPECT_NE(r.entry("a.weight").file.find("pytorch_model-00001-of-00002.bin"), std::string::npos);
    EXPECT_NE(r.entry("b.weight").file.find("pytorch_model-00002-of-00002.bin"), std::string::npos);
  }
  // A single shard opens on its own.
  TorchCheckpointReader one = TorchCheckpointReader::open(kData + "/sharded/pytorch_model-00002-of-00002.bin");
  EXPECT_EQ(one.names(), std::vector<std::string>{"b.weight"});
}

TEST(TorchCheckpoint, Zip64ArchiveAndTensorsOutliveTheReader) {
  TempDir dir;
  const std::string p = dir / "big.bin";
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  std::string pickle = state_pickle({{"x", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}},
                                     {"xt", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}},
                                     {"big.offset", "FloatStorage", "0", 6, 3, {3}, {1}}});
  write_file(p, torch_zip(pickle, {{"0", floats(v)}}, /*zip64=*/true));
  Tensor x, xt;
  {
    TorchCheckpointReader r = TorchCheckpointReader::open(p);
    EXPECT_EQ(r.names(), (std::vector<std::string>{"big.offset", "x", "xt"}));
    x = r.tensor("x");
    xt = r.tensor("xt");
    EXPECT_EQ(r.tensor("big.offset").f32()[0], 4.0f);
  }
  ASSERT_EQ(x.shape(), (std::vector<int64_t>{2, 3}));
  for (int k = 0; k < 6; ++k) EXPECT_EQ(x.f32()[k], v[size_t(k)]);
  const float want_t[] = {1, 4, 2, 5, 3, 6};
  for (int k = 0; k < 6; ++k) EXPECT_EQ(xt.f32()[k], want_t[k]);
}

TEST(TorchCheckpoint, CraftedLongIntegersMemoAndProtocol4Opcodes) {
  // SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, FRAME, BININT, BININT2, LONG1, BINFLOAT, NEWTRUE, NONE metadata,
  // EMPTY_DICT + SETITEM, and BINGET of a memoised storage tuple and function (two tensors over one storage).
  Pickle p;
  p.op(0x80).op(4).op(0x95);
  put64(p.b, 0);
  p.op('}').op(0x94);  // memo 0: the dict
  p.op(0x8c).op(1).b += "w";
  p.op(0x8c).op(12).b += "torch._utils";
  p.op(0x8c).op(18).b += "_rebuild_tensor_v2";
  p.op(0x93).op(0x94);  // memo 1: the function
  p.op('(').op('(').str("storage").global("torch", "IntStorage").str("k").str("cuda:0").op('M');
  put16(p.b, 300);
  p.op('t').op(0x94);  // memo 2: the storage tuple
  p.op('Q').op('J');
  put32(p.b, 10);                                   // storage_offset 10
  p.op(0x8a).op(1).op(2).op(0x85);                  // size (2,)
  p.op(0x8a).op(2).op(0x01).op(0x00).op(0x85);      // stride (1,)
  p.op(0x88).op('}').op('N').op('t').op('R').op('s');  // requires_grad True, hooks {}, metadata None
  p.op('h').op(0).str("w2").op('h').op(1).op('(').op('h').op(2).op('Q').integer(0).integer(1).op(0x85).integer(1)
      .op(0x85).op(0x89).op('}').op('t').op('R').op('s');
  p.op('h').op(0).str("lr").op('G');
  for (uint8_t c : {0x3f, 0xe0, 0, 0, 0, 0, 0, 0}) p.op(c);  // 0.5, not a tensor: skipped
  p.op('s').op('.');
  std::string ints;
  for (int32_t k = 0; k < 300; ++k) ints.append(reinterpret_cast<const char*>(&k), 4);
  TempDir dir;
  const std::string path = dir / "p4.bin";
  write_file(path, torch_zip(p.b, {{"k", ints}}));
  TorchCheckpointReader r = TorchCheckpointReader::open(path);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"w", "w2"}));
  Tensor w = r.tensor("w");
  ASSERT_EQ(w.dtype(), DType::I32);
  EXPECT_EQ(w.data<int32_t>()[0], 10);
  EXPECT_EQ(w.data<int32_t>()[1], 11);
  EXPECT_EQ(r.tensor("w2").data<int32_t>()[0], 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Format selection

TEST(Checkpoint, PicksTheFormatAndPrefersSafetensors) {
  CheckpointReader bin = CheckpointReader::open(kData + "/model.bin");
  EXPECT_EQ(bin.format(), CheckpointReader::Format::PyTorch);
  ASSERT_NE(bin.torch(), nullptr);
  EXPECT_EQ(bin.safetensors(), nullptr);
  EXPECT_TRUE(bin.contains("proj.weight"));
  EXPECT_EQ(bin.entry("proj.weight").shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(bin.names(), bin.torch()->names());
  EXPECT_EQ(bin.tensor("proj.weight").raw(), bin.entry("proj.weight").data);
  EXPECT_EQ(bin.tensor_as("embed.weight", DType::F32).dtype(), DType::F32);

  CheckpointReader sharded = CheckpointReader::open(kData + "/sharded");
  EXPECT_EQ(sharded.format(), CheckpointReader::Format::PyTorch);
  EXPECT_EQ(sharded.path(), kData + "/sharded/pytorch_model.bin.index.json");
  EXPECT_EQ(CheckpointReader::open(kData + "/sharded/pytorch_model.bin.index.json").format(),
            CheckpointReader::Format::PyTorch);
  EXPECT_EQ(CheckpointReader::open(kData + "/mixed.pt").format(), CheckpointReader::Format::PyTorch);
  EXPECT_EQ(CheckpointReader::open(kData + "/expected.safetensors").format(), CheckpointReader::Format::Safetensors);

  TempDir dir;
  fs::copy_file(kData + "/model.bin", dir / "pytorch_model.bin");
  CheckpointReader only_bin = CheckpointReader::open(dir.path.string());
  EXPECT_EQ(only_bin.format(), CheckpointReader::Format::PyTorch);
  EXPECT_EQ(only_bin.path(), dir / "pytorch_model.bin");
  Tensor t = Tensor::empty(DType::F32, {2});
  t.f32()[0] = 1;
  t.f32()[1] = 2;
  safetensors_write(dir / "model.safetensors", {{"only.here", t}});
  CheckpointReader both = CheckpointReader::open(dir.path.string());
  EXPECT_EQ(both.format(), CheckpointReader::Format::Safetensors);
  EXPECT_EQ(both.names(), std::vector<std::string>{"only.here"});

  // Sniffing: a safetensors header of 0x280 bytes starts with 80 02 like a pickle and is still safetensors; a
  // legacy torch.save file (bare pickle + magic number) reaches the torch reader and its message.
  std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  header.resize(0x280, ' ');
  std::string st_bytes;
  put64(st_bytes, header.size());
  write_file(dir / "pickle_like.safetensors", st_bytes + header + floats({2.5f}));
  CheckpointReader pickle_like = CheckpointReader::open(dir / "pickle_like.safetensors");
  EXPECT_EQ(pickle_like.format(), CheckpointReader::Format::Safetensors);
  EXPECT_EQ(pickle_like.tensor("x").f32()[0], 2.5f);
  write_file(dir / "legacy.pt", std::string("\x80\x02\x8a\x0alegacy format magic number.....", 32));
  expect_error([&] { CheckpointReader::open(dir / "legacy.pt"); }, {"[TorchCheckpointReader::open]", "legacy"});

  TempDir empty;
  write_file(empty / "training_args.bin", "not weights");
  expect_error([&] { CheckpointReader::open(empty.path.string()); },
               {"[CheckpointReader::open]", empty.path.string(), "no weights in directory", "pytorch_model.bin",
                "model.safetensors.index.json"});
  expect_error([&] { TorchCheckpointReader::open(empty.path.string()); },
               {"[TorchCheckpointReader::open]", "no PyTorch weights in directory"});
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed input: one-line errors naming the file

TEST(TorchCheckpointBad, TruncatedArchivesAtEveryLength) {
  const std::string bytes = read_file(kData + "/model.bin");
  TempDir dir;
  const std::string p = dir / "cut.bin";
  // Every length through the first records and the whole tail (central directory, end record), then a sample.
  for (size_t n = 0; n < bytes.size(); n += (n < 600 || n + 700 > bytes.size()) ? 1 : 13) {
    write_file(p, bytes.substr(0, n));
    try {
      TorchCheckpointReader::open(p);
      ADD_FAILURE() << "a truncation to " << n << " bytes opened";
    } catch (const Error& e) {
      std::string msg = e.what();
      ASSERT_NE(msg.find(p), std::string::npos) << n << ": " << msg;
    }
  }
  write_file(p, bytes.substr(0, bytes.size() - 100));
  expect_open_error(p, {"no zip end-of-central-directory record", "truncated"});
  write_file(p, bytes.substr(0, 10));
  expect_open_error(p, {"too short for a zip archive"});
}

TEST(TorchCheckpointBad, NotZipLegacyAndZipStructure) {
  TempDir dir;
  const std::string p = dir / "bad.bin";
  write_file(p, std::string("\x80\x02\x8a\x0alegacy format magic number.....", 32));
  expect_open_error(p, {"legacy torch.save format"});
  write_file(p, std::string(64, 'x'));
  expect_open_error(p, {"not a zip archive"});
  write_file(p, make_zip({{"a/version", "3\n"}}));
  expect_open_error(p, {"no '<archive>/data.pkl' record"});
  write_file(p, make_zip({{"a/data.pkl", state_pickle({})}, {"b/data.pkl", state_pickle({})}}));
  expect_open_error(p, {"2 top-level directories hold a data.pkl"});
  write_file(p, make_zip({{"a/data.pkl", state_pickle({})}, {"a/data.pkl", state_pickle({})}}));
  expect_open_error(p, {"zip record 'a/data.pkl' appears twice"});
  write_file(p, torch_zip(state_pickle({}), {}));
  EXPECT_TRUE(TorchCheckpointReader::open(p).names().empty());  // an empty state dict is valid

  // CRC of data.pkl, byteorder, compression method, central directory outside the file.
  std::string z = torch_zip(state_pickle({{"x", "FloatStorage", "0", 1, 0, {}, {}}}), {{"0", floats({1})}});
  std::string flipped = z;
  flipped[flipped.find("_rebuild_tensor_v2")] ^= 1;  // data.pkl changes, its CRC does not
  write_file(p, flipped);
  expect_open_error(p, {"zip record 'archive/data.pkl'", "CRC-32"});
  Records big_endian{{"archive/data.pkl", state_pickle({})}, {"archive/byteorder", "big"}};
  write_file(p, make_zip(big_endian));
  expect_open_error(p, {"big-endian"});
  std::string method = z;
  method[8] = 12;  // local header only: the central directory's method decides
  write_file(p, method);
  EXPECT_NO_THROW(TorchCheckpointReader::open(p));
  const size_t cd = z.find("PK\x01\x02");
  method = z;
  method[cd + 10] = 12;  // bzip2
  write_file(p, method);
  expect_open_error(p, {"compression method 12 is not supported"});
  std::string enc = z;
  enc[cd + 8] = 1;
  write_file(p, enc);
  expect_open_error(p, {"encrypted"});
  std::string far = z;
  const size_t eocd = z.rfind("PK\x05\x06");
  far[eocd + 19] = char(0x7f);  // central directory offset + 2^30
  write_file(p, far);
  expect_open_error(p, {"central directory", "outside the file"});
  std::string lh = z;
  lh[cd + 42] = 7;  // local header offset of the first record no longer points at a header
  write_file(p, lh);
  expect_open_error(p, {"zip record 'archive/data.pkl'", "local header"});
}

TEST(TorchCheckpointBad, PickleOpcodesGlobalsAndStructure) {
  TempDir dir;
  const std::string p = dir / "bad.bin";
  auto check = [&](const std::string& pickle, const std::vector<std::string>& fragments) {
    SCOPED_TRACE(fragments.empty() ? "" : fragments[0]);
    write_file(p, torch_zip(pickle, {{"0", floats({1, 2, 3, 4})}}));
    std::vector<std::string> all = fragments;
    all.push_back("pickle 'archive/data.pkl'");
    expect_open_error(p, all);
  };
  check("\x80\x02I1\n."s, {"unsupported pickle opcode 0x49 'I'"});
  check(std::string("\x80\x02\x8d", 3), {"unsupported pickle opcode 0x8d"});
  check("\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00ls\x85R."s, {"global 'os.system' is not allowed"});
  check("\x80\x02" "cbuiltins\neval\n.", {"global 'builtins.eval' is not allowed"});
  check("\x80\x02" "ctorch\nUntypedStorage\n.", {"global 'torch.UntypedStorage' is not allowed"});
  check("\x80\x02" "ctorch\n" + std::string(300, 'a') + "\n.", {"not terminated by a newline"});
  check("\x80\x09.", {"pickle protocol 9"});
  check("\x80\x02}", {"ends without STOP"});
  check("\x80\x02X\xff\x00\x00\x00" "ab"s, {"needs 255 more bytes", "truncated"});
  check("\x80\x02.", {"on an empty stack"});
  check("\x80\x02(t.", {"holds a tuple"});
  check("\x80\x02]K\x01\x61.", {"holds a list"});
  check("\x80\x02h\x05.", {"memo entry 5 was never stored"});
  check("\x80\x02}K\x01u.", {"without a MARK"});
  check("\x80\x02}(K\x01u.", {"odd number"});
  check("\x80\x02K\x00K\x01K\x02s."s, {"SETITEM target must be a dict, got a int"});
  check("\x80\x02K\x01K\x02R.", {"REDUCE calls a int"});
  check("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", {"OrderedDict is called with 1 arguments"});
  check("\x80\x02" "ctorch\nFloatStorage\n)R.", {"'torch.FloatStorage' cannot be called"});
  check("\x80\x02K\x01Q.", {"persistent id must be a 5-tuple"});
  check("\x80\x02" "\x8a\x09" + std::string(9, '\1') + ".", {"LONG1 integer of 9 bytes"});
  check("\x80\x02K\x01K\x02\x86N" "b.", {"BUILD on a tuple is not supported"});
  check("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n)R.", {"_rebuild_tensor_v2 takes 6 or 7 arguments, got 0"});

  // Tensor descriptions: persistent ids and _rebuild_tensor_v2 arguments.
  Pickle wrong_tag;
  wrong_tag.op(0x80).op(2).op('}').str("x").op('(').str("storagE").global("torch", "FloatStorage").str("0")
      .str("cpu").integer(4).op('t').op('Q').op('s').op('.');
  check(wrong_tag.b, {"persistent id tag must be 'storage', got 'storagE'"});
  Pickle not_type;
  not_type.op(0x80).op(2).op('}').str("x").op('(').str("storage").global("collections", "OrderedDict").str("0")
      .str("cpu").integer(4).op('t').op('Q').op('s').op('.');
  check(not_type.b, {"storage type must be a torch.<T>Storage"});
  check(state_pickle({{"x", "FloatStorage", "0", 4, 0, {2, 2}, {2}}}), {"size has 2 dimensions but stride has 1"});
  check(state_pickle({{"x", "FloatStorage", "0", -4, 0, {1}, {1}}}), {"storage numel must be non-negative, got -4"});
  check(state_pickle({{"x", "FloatStorage", "0", 4, -1, {1}, {1}}}), {"storage_offset must be non-negative"});
  check(state_pickle({{"x", "FloatStorage", "0", 4, 0, {-1}, {1}}}), {"tensor size must be non-negative"});
  check(state_pickle({{"x", "FloatStorage", "0", 4, 0, std::vector<int64_t>(65, 1), std::vector<int64_t>(65, 1)}}),
        {"65 dimensions (limit 64)"});
}

TEST(TorchCheckpointBad, StoragesMissingShortAndOutOfBounds) {
  TempDir dir;
  const std::string p = dir / "bad.bin";
  auto check = [&](const TensorSpec& t, const std::vector<std::string>& fragments) {
    SCOPED_TRACE(fragments[0]);
    write_file(p, torch_zip(state_pickle({t}), {{"0", floats({1, 2, 3, 4})}}));
    std::vector<std::string> all = fragments;
    all.push_back("tensor 'w'");
    expect_open_error(p, all);
  };
  check({"w", "FloatStorage", "7", 4, 0, {4}, {1}}, {"storage '7' is missing from the archive", "archive/data/7"});
  check({"w", "FloatStorage", "0", 5, 0, {4}, {1}},
        {"storage '0' declares 5 elements of FloatStorage (4 bytes each) but record 'archive/data/0' holds 16 bytes"});
  check({"w", "DoubleStorage", "0", 3, 0, {3}, {1}}, {"declares 3 elements of DoubleStorage"});
  check({"w", "FloatStorage", "0", 4, 2, {3}, {1}}, {"reaches element 4 but storage '0' holds 4 elements"});
  check({"w", "FloatStorage", "0", 4, 0, {2, 2}, {3, 1}}, {"reaches element 4"});
  check({"w", "FloatStorage", "0", 4, 5, {0}, {1}}, {"storage offset 5"});
  check({"w", "FloatStorage", "0", 4, 0, {int64_t(1) << 62, 4}, {1, 0}}, {"is too large"});
  check({"w", "FloatStorage", "0", 4, 0, {2, 2}, {int64_t(1) << 62, int64_t(1) << 62}},
        {"reaches element 9223372036854775808"});
  check({"w", "FloatStorage", "0", 4, 0, {5, 2}, {int64_t(1) << 62, 1}}, {"is too large"});
  // In bounds: stride-0 expansion and an empty tensor at the end of the storage.
  write_file(p, torch_zip(state_pickle({{"w", "FloatStorage", "0", 4, 3, {2, 3}, {0, 0}},
                                        {"e", "FloatStorage", "0", 4, 4, {0, 7}, {7, 1}}}),
                          {{"0", floats({1, 2, 3, 4})}}));
  TorchCheckpointReader r = TorchCheckpointReader::open(p);
  Tensor w = r.tensor("w");
  for (int k = 0; k < 6; ++k) EXPECT_EQ(w.f32()[k], 4.0f);
  EXPECT_EQ(r.tensor("e").numel(), 0);
  // More than kMaxDims dimensions open (the entry is listed) but tensor() refuses them.
  write_file(p, torch_zip(state_pickle({{"w", "FloatStorage", "0", 4, 0, {1, 1, 1, 2, 2}, {4, 4, 4, 2, 1}}}),
                          {{"0", floats({1, 2, 3, 4})}}));
  TorchCheckpointReader five = TorchCheckpointReader::open(p);
  expect_error([&] { five.tensor("w"); }, {"[TorchCheckpointReader::tensor]", p, "'w' has 5 dimensions"});
}

TEST(TorchCheckpointBad, ShardedIndexErrors) {
  TempDir dir;
  const std::string shard = "pytorch_model-00001-of-00001.bin";
  write_file(dir / shard, torch_zip(state_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}}}),
                                    {{"0", floats({1, 2, 3, 4})}}));
  const std::string idx = dir / "pytorch_model.bin.index.json";
  auto check = [&](const std::string& text, const std::vector<std::string>& fragments) {
    SCOPED_TRACE(text);
    write_file(idx, text);
    std::vector<std::string> all = fragments;
    all.push_back(idx);
    all.push_back("[TorchCheckpointReader::open]");
    expect_error([&] { TorchCheckpointReader::open(dir.path.string()); }, all);
  };
  check("{", {"index is not valid JSON"});
  check("[]", {"not a JSON object"});
  check(R"({"metadata":{}})", {"missing 'weight_map'"});
  check(R"({"weight_map":{"w":3}})", {"'weight_map' entry 'w' must be a string"});
  check(R"({"weight_map":{"w":"../x.bin"}})", {"tensor 'w'", "is not a file name inside"});
  check(R"({"weight_map":{"w":"nope.bin"}})", {"shard 'nope.bin' does not exist"});
  check(R"({"weight_map":{"v":")" + shard + R"("}})", {"tensor 'v' is mapped to shard", "does not contain it"});
  check(R"({"weight_map":{"w":")" + shard + R"(","x":"./)" + shard + R"("}})", {"tensor 'x'"});
  write_file(dir / "second.bin", read_file(dir / shard));
  check(R"({"weight_map":{"w":")" + shard + R"(","x":"second.bin"}})", {"tensor 'x'"});
  write_file(idx, R"({"metadata":{"total_size":16},"weight_map":{"w":")" + shard + R"("}})");
  TorchCheckpointReader r = TorchCheckpointReader::open(dir.path.string());
  EXPECT_EQ(r.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(r.metadata().at("total_size"), "16");
  // A bad shard is reported with the shard's name.
  write_file(dir / shard, "garbage that is not a zip archive");
  expect_error([&] { TorchCheckpointReader::open(idx); }, {shard, "not a zip archive"});
}

// Random mutations of crafted pickles (re-zipped with a correct CRC) and of a fixture's bytes: every outcome is
// either a valid reader whose tensors can all be read, or a baleine::Error naming the file.
TEST(TorchCheckpointBad, MutationsNeverCrash) {
  TempDir dir;
  const std::string p = dir / "m.bin";
  const std::string pickle = state_pickle({{"a", "FloatStorage", "0", 4, 0, {2, 2}, {2, 1}},
                                           {"b", "HalfStorage", "1", 8, 1, {3, 2}, {1, 3}},
                                           {"c", "DoubleStorage", "2", 2, 0, {2}, {1}},
                                           {"d", "CharStorage", "3", 16, 2, {2, 2, 2}, {4, 1, 2}}});
  const std::map<std::string, std::string> storages{{"0", floats({1, 2, 3, 4})},
                                                    {"1", floats({5, 6, 7, 8})},
                                                    {"2", floats({9, 10, 11, 12})},
                                                    {"3", floats({13, 14, 15, 16})}};
  std::mt19937 rng(1);
  int opened = 0, failed = 0;
  auto attempt = [&](const std::string& bytes) {
    write_file(p, bytes);
    try {
      TorchCheckpointReader r = TorchCheckpointReader::open(p);
      for (const auto& name : r.names()) {
        if (r.entry(name).nbytes > (1u << 20)) continue;
        try {
          (void)r.tensor(name);
          (void)r.tensor_as(name, DType::F32);
        } catch (const Error& e) {
          ASSERT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        }
      }
      ++opened;
    } catch (const Error& e) {
      ASSERT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      ++failed;
    }
  };
  for (int it = 0; it < 1500; ++it) {
    std::string m = pickle;
    const int edits = 1 + int(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[at] = char(rng()); break;
        case 1: m.erase(at, 1 + rng() % 4); break;
        default: m.insert(at, 1, char(rng())); break;
      }
      if (m.empty()) m = ".";
    }
    attempt(torch_zip(m, storages));
  }
  const std::string fixture = read_file(kData + "/model.bin");
  for (int it = 0; it < 500; ++it) {
    std::string m = fixture;
    for (int k = 0; k < 4; ++k) m[rng() % m.size()] = char(rng());
    attempt(m);
  }
  EXPECT_GT(opened, 10);
  EXPECT_GT(failed, 500);
}

// load_model on a directory holding config.json + pytorch_model.bin (written here from the llama parity
// fixture, every other matrix stored transposed as a strided view) gives the parameters of the safetensors model.
TEST(TorchCheckpointModel, LoadModelFromPytorchModelBinMatchesSafetensors) {
  const std::string src = std::string(BALEINE_TEST_DATA) + "/parity/llama";
  SafetensorsReader st = SafetensorsReader::open(src + "/model.safetensors");
  std::vector<TensorSpec> specs;
  std::map<std::string, std::string> storages;
  int strided = 0;
  for (const auto& name : st.names()) {
    Tensor t = st.tensor_as(name, DType::F32);
    const std::string key = std::to_string(specs.size());
    TensorSpec s{name, "FloatStorage", key, t.numel(), 0, t.shape(), {}};
    std::vector<float> v(t.f32(), t.f32() + t.numel());
    if (t.ndim() == 2 && specs.size() % 2 == 0) {  // storage holds Wᵀ; the tensor is its transpose view
      const int64_t r = t.dim(0), c = t.dim(1);
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j) v[size_t(j * r + i)] = t.f32()[i * c + j];
      s.stride = {1, r};
      ++strided;
    } else {
      int64_t acc = 1;
      s.stride.assign(t.shape().size(), 0);
      for (size_t d = s.stride.size(); d-- > 0;) {
        s.stride[d] = acc;
        acc *= t.shape()[d];
      }
    }
    storages[key] = floats(v);
    specs.push_back(s);
  }
  ASSERT_GT(strided, 3);
  TempDir dir;
  fs::copy_file(src + "/config.json", dir / "config.json");
  write_file(dir / "pytorch_model.bin", torch_zip(state_pickle(specs), storages, false, "pytorch_model"));

  auto params_of = [](CausalLM& m) {
    std::map<std::string, Tensor> out;
    m.for_each_param([&](nn::Param& p) {
      if (p.tensor->defined()) out[p.name] = *p.tensor;
    });
    return out;
  };
  std::unique_ptr<CausalLM> a = load_model(src), b = load_model(dir.path.string());
  auto pa = params_of(*a), pb = params_of(*b);
  ASSERT_EQ(pa.size(), pb.size());
  ASSERT_GT(pa.size(), 10u);
  for (const auto& [name, t] : pa) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(pb.count(name));
    const Tensor& u = pb.at(name);
    ASSERT_EQ(u.dtype(), t.dtype());
    ASSERT_EQ(u.shape(), t.shape());
    EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0);
  }
  // A missing tensor is reported with the .bin path.
  specs.pop_back();
  write_file(dir / "pytorch_model.bin", torch_zip(state_pickle(specs), storages, false, "pytorch_model"));
  expect_error([&] { load_model(dir.path.string()); }, {"pytorch_model.bin", "missing tensor"});
}

}  // namespace
