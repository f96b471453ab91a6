// io/safetensors.cpp — safetensors reading (mmap + validated header), atomic writing, FP8 block dequant.
//
// Reading never touches tensor data: open() maps each file (PROT_READ, MAP_PRIVATE), parses only the header
// bytes and validates every entry against the mapped size, so opening a sharded checkpoint of hundreds of GB
// costs a few page faults per shard. Zero-copy tensors returned by tensor() point into the read-only mapping:
// writing through them faults; use tensor_as() for a private copy.
//
// Writing follows the Hugging Face layout so files load with the reference implementation: the data block is
// packed without gaps (tensors ordered by element size, largest first, then by name, which keeps every tensor
// aligned to its element size), the header is padded with spaces so the data block starts at an 8-byte
// boundary, and header keys are sorted by name.
#include "io/safetensors.h"

#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace baleine::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB: far above any real header
constexpr int kMaxJsonDepth = 16;                   // a valid header nests 3 deep

[[noreturn]] void open_fail(const std::string& file, const std::string& message) {
  fail("SafetensorsReader::open", fmt::format("{}: {}", file, message));
}

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr std::array<DTypeName, 7> kDTypeNames{{{"F32", DType::F32},
                                                {"BF16", DType::BF16},
                                                {"F16", DType::F16},
                                                {"F8_E4M3", DType::F8_E4M3},
                                                {"I32", DType::I32},
                                                {"I64", DType::I64},
                                                {"U8", DType::U8}}};

bool parse_dtype(const std::string& s, DType& out) {
  for (const auto& d : kDTypeNames) {
    if (s == d.name) {
      out = d.dtype;
      return true;
    }
  }
  return false;
}

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypeNames) {
    if (d.dtype == t) return d.name;
  }
  return "?";
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::string errno_str(int err) { return std::strerror(err); }

// Non-negative JSON integer that fits in int64 (nlohmann stores large positives as unsigned).
bool as_nonneg_int(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return out <= uint64_t(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x < 0) return false;
    out = uint64_t(x);
    return true;
  }
  return false;
}

// Parses `text` as a JSON object: rejects duplicate top-level keys and absurd nesting. Errors go to `where`.
json parse_header_json(const char* begin, const char* end, const std::string& file, const char* what) {
  struct Rejected {
    std::string why;
  };
  std::set<std::string> keys;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw Rejected{fmt::format("{} nests deeper than {} levels", what, kMaxJsonDepth)};
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.insert(k).second) throw Rejected{fmt::format("{} has duplicate key '{}'", what, k)};
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const Rejected& r) {
    open_fail(file, r.why);
  } catch (const json::exception& e) {
    open_fail(file, fmt::format("{} is not valid JSON: {}", what, e.what()));
  }
  if (!j.is_object()) open_fail(file, fmt::format("{} is not a JSON object (it is {})", what, j.type_name()));
  return j;
}

std::map<std::string, std::string> parse_string_map(const json& m, const std::string& file, const char* field) {
  if (!m.is_object()) open_fail(file, fmt::format("'{}' must be an object of strings, got {}", field, m.type_name()));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : m.items()) {
    if (!v.is_string())
      open_fail(file, fmt::format("'{}' entry '{}' must be a string, got {}", field, k, v.type_name()));
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

namespace detail {

// One mapped safetensors file. Immutable after open; shared by the reader and by zero-copy tensors.
struct MappedFile {
  std::string path;
  const uint8_t* base = nullptr;
  size_t size = 0;
  size_t data_start = 0;  // 8 + header length
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;

  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (base != nullptr) munmap(const_cast<uint8_t*>(base), size);
  }
};

}  // namespace detail

struct SafetensorsReader::File : detail::MappedFile {};

// Maps `path` and validates its header. Reads the 8 + N header bytes only.
static void open_safetensors_file(detail::MappedFile* f, const std::string& path) {
  f->path = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) open_fail(path, fmt::format("cannot open: {}", errno_str(errno)));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    open_fail(path, fmt::format("cannot stat: {}", errno_str(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    open_fail(path, "not a regular file");
  }
  size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    open_fail(path, fmt::format("file is {} bytes, shorter than the 8-byte header length", size));
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) open_fail(path, fmt::format("cannot mmap {} bytes: {}", size, errno_str(map_err)));
  f->base = static_cast<const uint8_t*>(p);
  f->size = size;

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | f->base[i];  // little endian
  if (n > kMaxHeaderBytes)
    open_fail(path, fmt::format("header length {} is absurd (limit {} bytes)", n, kMaxHeaderBytes));
  if (n > size - 8)
    open_fail(path, fmt::format("header length {} exceeds the file size ({} bytes after the length field)", n,
                                size - 8));
  f->data_start = 8 + size_t(n);
  const size_t data_size = size - f->data_start;
  const char* hbegin = reinterpret_cast<const char*>(f->base + 8);
  json header = parse_header_json(hbegin, hbegin + n, path, "header");

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();  // not a structured binding: clang 14 cannot capture those in lambdas
    const auto& v = item.value();
    if (name == "__metadata__") {
      f->metadata = parse_string_map(v, path, "__metadata__");
      continue;
    }
    auto bad = [&](const std::string& msg) { open_fail(path, fmt::format("tensor '{}': {}", name, msg)); };
    if (!v.is_object()) bad(fmt::format("entry must be an object, got {}", v.type_name()));
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!v.contains(field)) bad(fmt::format("missing '{}'", field));
    const json& jd = v["dtype"];
    if (!jd.is_string()) bad(fmt::format("'dtype' must be a string, got {}", jd.type_name()));
    SafetensorsEntry e;
    e.name = name;
    e.file = path;
    if (!parse_dtype(jd.get<std::string>(), e.dtype))
      bad(fmt::format("unsupported dtype '{}' (supported: F32, BF16, F16, F8_E4M3, I32, I64, U8)",
                      jd.get<std::string>()));
    const json& js = v["shape"];
    if (!js.is_array()) bad(fmt::format("'shape' must be an array of integers, got {}", js.type_name()));
    uint64_t numel = 1, extent = 1;  // extent: product of max(dim, 1), bounds every stride
    bool overflow = false;
    for (const json& d : js) {
      uint64_t dim = 0;
      if (!as_nonneg_int(d, dim)) bad(fmt::format("'shape' {} must hold non-negative integers", js.dump()));
      e.shape.push_back(int64_t(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
      if (__builtin_mul_overflow(extent, std::max<uint64_t>(dim, 1), &extent) ||
          extent > uint64_t(std::numeric_limits<int64_t>::max()))
        bad(fmt::format("'shape' {} is too large", js.dump()));
    }
    const json& jo = v["data_offsets"];
    uint64_t b = 0, en = 0;
    if (!jo.is_array() || jo.size() != 2 || !as_nonneg_int(jo[0], b) || !as_nonneg_int(jo[1], en))
      bad(fmt::format("'data_offsets' must be two non-negative integers, got {}", jo.dump()));
    if (b > en) bad(fmt::format("data_offsets [{}, {}] begin after end", b, en));
    if (en > data_size)
      bad(fmt::format("data_offsets [{}, {}] exceed the data block ({} bytes)", b, en, data_size));
    uint64_t expect = 0;
    overflow = overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &expect);
    if (overflow || expect != en - b)
      bad(fmt::format("data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", b, en, en - b,
                      shape_str(e.shape), safetensors_dtype_name(e.dtype),
                      overflow ? std::string("more than 2^64") : std::to_string(expect)));
    e.data = f->base + f->data_start + b;
    e.nbytes = size_t(en - b);
    auto [it, inserted] = f->entries.emplace(name, std::move(e));
    if (en > b) ranges.push_back({b, en, &it->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& x, const Range& y) { return x.begin < y.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end)
      open_fail(path, fmt::format("tensor '{}' data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", *ranges[i].name,
                                  ranges[i].begin, ranges[i].end, *ranges[i - 1].name, ranges[i - 1].begin,
                                  ranges[i - 1].end));
  }
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Resolves a directory to the file to open (see header: index json, then model.safetensors, then a lone file).
std::string resolve_directory(const std::string& dir) {
  fs::path d(dir);
  std::error_code ec;
  if (fs::is_regular_file(d / "model.safetensors.index.json", ec)) return (d / "model.safetensors.index.json").string();
  if (fs::is_regular_file(d / "model.safetensors", ec)) return (d / "model.safetensors").string();
  std::vector<std::string> found;
  for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2) && ends_with(it->path().filename().string(), ".safetensors"))
      found.push_back(it->path().filename().string());
  }
  if (ec) open_fail(dir, fmt::format("cannot list directory: {}", ec.message()));
  std::sort(found.begin(), found.end());
  if (found.size() == 1) return (d / found[0]).string();
  const char* looked = "looked for model.safetensors.index.json, model.safetensors, or a single *.safetensors file";
  if (found.empty()) open_fail(dir, fmt::format("no safetensors weights in directory ({})", looked));
  open_fail(dir, fmt::format("{} *.safetensors files but no model.safetensors.index.json ({}): {}", found.size(),
                             looked, fmt::join(found, ", ")));
}

}  // namespace

SafetensorsReader SafetensorsReader::open(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) file = resolve_directory(path);
  SafetensorsReader r;
  r.path_ = file;
  if (!ends_with(file, ".json")) {
    auto f = std::make_shared<File>();
    open_safetensors_file(f.get(), file);
    for (const auto& [name, e] : f->entries) {
      r.entries_.emplace(name, e);
      r.owner_of_.emplace(name, f);
    }
    r.metadata_ = f->metadata;
    r.files_.push_back(std::move(f));
    return r;
  }

  // Sharded: {"metadata": {...}, "weight_map": {tensor: shard file relative to the index}}.
  std::ifstream in(file, std::ios::binary);
  if (!in) open_fail(file, fmt::format("cannot open: {}", errno_str(errno)));
  in.seekg(0, std::ios::end);
  std::streamoff len = in.tellg();
  in.seekg(0);
  if (len < 0 || uint64_t(len) > kMaxHeaderBytes)
    open_fail(file, fmt::format("index is {} bytes (limit {})", int64_t(len), kMaxHeaderBytes));
  std::string text(size_t(len), '\0');
  in.read(text.data(), len);
  if (!in) open_fail(file, "cannot read the index");
  json index = parse_header_json(text.data(), text.data() + text.size(), file, "index");
  if (!index.contains("weight_map")) open_fail(file, "missing 'weight_map'");
  const json& wm = index["weight_map"];
  std::map<std::string, std::string> weight_map = parse_string_map(wm, file, "weight_map");
  if (index.contains("metadata")) {
    const json& m = index["metadata"];
    if (!m.is_object()) open_fail(file, fmt::format("'metadata' must be an object, got {}", m.type_name()));
    for (const auto& [k, v] : m.items()) r.metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }

  fs::path dir = fs::path(file).parent_path();
  // Shards by normalised name ("./a.safetensors" and "a.safetensors" are one file).
  auto key_of = [](const std::string& shard) { return fs::path(shard).lexically_normal().string(); };
  std::map<std::string, std::shared_ptr<File>> shards;
  for (const auto& [name, shard] : weight_map) {
    if (shards.count(key_of(shard))) continue;
    fs::path rel(shard);
    bool escapes = shard.empty() || rel.is_absolute() ||
                   std::any_of(rel.begin(), rel.end(), [](const fs::path& c) { return c == ".."; });
    if (escapes) open_fail(file, fmt::format("tensor '{}': shard '{}' is not a file name inside {}", name, shard,
                                             dir.empty() ? "." : dir.string()));
    std::string shard_path = (dir / rel).string();
    if (!fs::exists(shard_path, ec))
      open_fail(file, fmt::format("tensor '{}': shard '{}' does not exist ({})", name, shard, shard_path));
    auto f = std::make_shared<File>();
    open_safetensors_file(f.get(), shard_path);
    shards.emplace(key_of(shard), std::move(f));
  }
  for (const auto& [name, shard] : weight_map) {
    if (!shards.at(key_of(shard))->entries.count(name))
      open_fail(file, fmt::format("tensor '{}' is mapped to shard '{}', which does not contain it", name, shard));
  }
  for (const auto& [shard, f] : shards) {
    for (const auto& [name, e] : f->entries) {
      auto [it, inserted] = r.entries_.emplace(name, e);
      if (!inserted)
        open_fail(file, fmt::format("tensor '{}' is present in two shards: {} and {}", name, it->second.file, e.file));
      r.owner_of_.emplace(name, f);
    }
    for (const auto& [k, v] : f->metadata) r.metadata_.emplace(k, v);  // the index's metadata wins
    r.files_.push_back(f);
  }
  return r;
}

bool SafetensorsReader::contains(const std::string& name) const { return entries_.count(name) != 0; }

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("SafetensorsReader::entry", fmt::format("tensor '{}' not found in {}", name, path_));
  return it->second;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

Tensor SafetensorsReader::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  if (e.shape.size() > size_t(kMaxDims))
    fail("SafetensorsReader::tensor", fmt::format("{}: tensor '{}' has {} dimensions {}, at most {} are supported",
                                                  e.file, name, e.shape.size(), shape_str(e.shape), kMaxDims));
  if (reinterpret_cast<uintptr_t>(e.data) % dtype_size(e.dtype) == 0) {
    std::shared_ptr<void> owner = owner_of_.at(name);
    return Tensor::borrow(const_cast<void*>(e.data), e.dtype, e.shape, std::move(owner));
  }
  // Misaligned for its element type (legal in files from other writers): give an aligned private copy.
  Tensor t = Tensor::empty(e.dtype, e.shape);
  std::memcpy(t.raw(), e.data, e.nbytes);
  return t;
}

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F8_E4M3; }

Tensor convert_float(const Tensor& src, DType out) {
  if (src.dtype() == out) {
    Tensor t = Tensor::empty(out, src.shape());
    std::memcpy(t.raw(), src.raw(), src.nbytes());
    return t;
  }
  Tensor f = src.to_f32();
  if (out == DType::F32) return f;
  Tensor t = Tensor::empty(DType::BF16, src.shape());
  const float* s = f.f32();
  uint16_t* d = t.data<uint16_t>();
  for (int64_t i = 0, n = f.numel(); i < n; ++i) d[i] = f32_to_bf16(s[i]);
  return t;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Tensor SafetensorsReader::tensor_as(const std::string& name, DType out) const {
  const char* fn = "SafetensorsReader::tensor_as";
  const SafetensorsEntry& e = entry(name);
  if (out != DType::F32 && out != DType::BF16)
    fail(fn, fmt::format("tensor '{}': output dtype must be f32 or bf16, got {}", name, dtype_name(out)));
  if (!is_float(e.dtype))
    fail(fn, fmt::format("{}: tensor '{}' has dtype {}, which is not a floating-point type", e.file, name,
                         safetensors_dtype_name(e.dtype)));
  const std::string scale_name = name + "_scale_inv";
  if (e.dtype != DType::F8_E4M3 || !contains(scale_name)) return convert_float(tensor(name), out);

  const SafetensorsEntry& s = entry(scale_name);
  if (e.shape.size() != 2)
    fail(fn, fmt::format("{}: fp8 tensor '{}' with '{}' must be 2-D, got shape {}", e.file, name, scale_name,
                         shape_str(e.shape)));
  std::vector<int64_t> want{ceil_div(e.shape[0], 128), ceil_div(e.shape[1], 128)};
  if (s.shape != want)
    fail(fn, fmt::format("{}: tensor '{}' has shape {}, expected {} for '{}' {} with 128x128 blocks", s.file,
                         scale_name, shape_str(s.shape), shape_str(want), name, shape_str(e.shape)));
  if (!is_float(s.dtype))
    fail(fn, fmt::format("{}: tensor '{}' has dtype {}, expected a floating-point type", s.file, scale_name,
                         safetensors_dtype_name(s.dtype)));
  Tensor scale = tensor(scale_name);
  if (scale.dtype() != DType::F32) scale = scale.to_f32();
  return dequantize_fp8_blocks(tensor(name), scale, out, 128);
}

Tensor dequantize_fp8_blocks(const Tensor& w, const Tensor& scale_inv, DType out, int64_t block) {
  BALEINE_CHECK(w.dtype() == DType::F8_E4M3, "weight must be f8_e4m3, got {}", dtype_name(w.dtype()));
  BALEINE_CHECK(w.ndim() == 2, "weight must be 2-D, got shape {}", w.shape_string());
  BALEINE_CHECK(scale_inv.dtype() == DType::F32, "scale_inv must be f32, got {}", dtype_name(scale_inv.dtype()));
  BALEINE_CHECK(out == DType::F32 || out == DType::BF16, "output dtype must be f32 or bf16, got {}", dtype_name(out));
  BALEINE_CHECK(block > 0, "block size must be positive, got {}", block);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const int64_t srows = ceil_div(rows, block), scols = ceil_div(cols, block);
  BALEINE_CHECK(scale_inv.ndim() == 2 && scale_inv.dim(0) == srows && scale_inv.dim(1) == scols,
                "scale_inv has shape {}, expected [{}, {}] for weight {} with block {}", scale_inv.shape_string(),
                srows, scols, w.shape_string(), block);
  std::array<float, 256> lut{};
  for (int v = 0; v < 256; ++v) lut[size_t(v)] = fp8_e4m3_to_f32(uint8_t(v));
  Tensor o = Tensor::empty(out, {rows, cols});
  const uint8_t* src = w.data<uint8_t>();
  const float* sc = scale_inv.data<float>();
  for (int64_t i = 0; i < rows; ++i) {
    const float* srow = sc + (i / block) * scols;
    const uint8_t* wrow = src + i * cols;
    for (int64_t j0 = 0; j0 < cols; j0 += block) {
      const float s = srow[j0 / block];
      const int64_t j1 = std::min(cols, j0 + block);
      if (out == DType::F32) {
        float* orow = o.data<float>() + i * cols;
        for (int64_t j = j0; j < j1; ++j) orow[j] = lut[wrow[j]] * s;
      } else {
        uint16_t* orow = o.data<uint16_t>() + i * cols;
        for (int64_t j = j0; j < j1; ++j) orow[j] = f32_to_bf16(lut[wrow[j]] * s);
      }
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

namespace {


std::string dump_json(const char* fn, const std::string& path, const json& j, int indent = -1) {
  try {
    return j.dump(indent);
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(fn, fmt::format("{}: cannot encode the header: {}", path, e.what()));
  }
}

// Validates the tensors, returns the data order (element size descending, then name) and total bytes.
std::vector<size_t> data_order(const char* fn, const std::string& path,
                               const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) fail(fn, fmt::format("{}: empty tensor name", path));
    if (name == "__metadata__") fail(fn, fmt::format("{}: '__metadata__' is reserved, not a tensor name", path));
    if (!seen.insert(name).second) fail(fn, fmt::format("{}: tensor '{}' given twice", path, name));
    if (!t.defined()) fail(fn, fmt::format("{}: tensor '{}' is undefined", path, name));
    if (!t.view().is_contiguous()) fail(fn, fmt::format("{}: tensor '{}' is not contiguous", path, name));
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    size_t sa = dtype_size(tensors[a].second.dtype()), sb = dtype_size(tensors[b].second.dtype());
    if (sa != sb) return sa > sb;
    return tensors[a].first < tensors[b].first;
  });
  return order;
}

}  // namespace

void safetensors_write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const char* fn = "safetensors_write";
  std::vector<size_t> order = data_order(fn, path, tensors);
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = dump_json(fn, path, header);
  text.append((8 - text.size() % 8) % 8, ' ');  // data block starts 8-aligned (8 + len is a multiple of 8)
  atomic_write(fn, path, [&](const std::function<void(const void*, size_t)>& sink) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    sink(len, 8);
    sink(text.data(), text.size());
    for (size_t i : order) sink(tensors[i].second.raw(), tensors[i].second.nbytes());
  });
}

std::vector<std::string> safetensors_write_sharded(const std::string& directory,
                                                   const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                   size_t max_shard_bytes,
                                                   const std::map<std::string, std::string>& metadata) {
  const char* fn = "safetensors_write_sharded";
  BALEINE_CHECK(max_shard_bytes > 0, "{}: max_shard_bytes must be positive", directory);
  data_order(fn, directory, tensors);  // validation only
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) fail(fn, fmt::format("{}: cannot create directory: {}", directory, ec.message()));

  // Greedy in the given order: a new shard starts when the next tensor would overflow the current one.
  std::vector<std::vector<size_t>> groups(1);
  size_t current = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t nb = tensors[i].second.nbytes();
    if (!groups.back().empty() && current + nb > max_shard_bytes) {
      groups.emplace_back();
      current = 0;
    }
    groups.back().push_back(i);
    current += nb;
    total += nb;
  }
  const size_t n = groups.size();
  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t g = 0; g < n; ++g) {
    names.push_back(fmt::format("model-{:05d}-of-{:05d}.safetensors", g + 1, n));
    std::vector<std::pair<std::string, Tensor>> part;
    for (size_t i : groups[g]) {
      part.push_back(tensors[i]);
      weight_map[tensors[i].first] = names.back();
    }
    safetensors_write((fs::path(directory) / names.back()).string(), part, metadata);
  }
  json meta = json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  meta["total_size"] = total;
  json index = {{"metadata", meta}, {"weight_map", weight_map}};
  const std::string index_path = (fs::path(directory) / "model.safetensors.index.json").string();
  std::string text = dump_json(fn, index_path, index, 2) + "\n";
  atomic_write(fn, index_path, [&](const std::function<void(const void*, size_t)>& sink) {
    sink(text.data(), text.size());
  });
  return names;
}

}  // namespace baleine::io
