// io/gguf.cpp — GGUF v2/v3 reader (mmap, bounds-checked cursor) and atomic v3 writer.
//
// The reader never trusts a count: every length or element count is checked against the bytes left in the
// mapping before anything is allocated (each element needs at least one byte, a string eight, an array twelve),
// so a flipped byte cannot make it allocate gigabytes or read past the end. Integer products use checked
// arithmetic. Array nesting is limited to kMaxDepth.
#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "io/atomic_file.h"

namespace baleine::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little endian
constexpr int kMaxDepth = 8;
constexpr int kMaxDims = 4;  // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  int64_t block;  // values per block
  uint64_t bytes; // bytes per block
};
// Types whose block layout we know (for sizes); only some of them can be computed with (dtype_of_ggml).
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "f32", 1, 4},       {1, "f16", 1, 2},       {2, "q4_0", 32, 18},   {3, "q4_1", 32, 20},
    {6, "q5_0", 32, 22},    {7, "q5_1", 32, 24},    {8, "q8_0", 32, 34},   {9, "q8_1", 32, 36},
    {10, "q2_k", 256, 84},  {11, "q3_k", 256, 110}, {12, "q4_k", 256, 144}, {13, "q5_k", 256, 176},
    {14, "q6_k", 256, 210}, {15, "q8_k", 256, 292}, {24, "i8", 1, 1},      {25, "i16", 1, 2},
    {26, "i32", 1, 4},      {27, "i64", 1, 8},      {28, "f64", 1, 8},     {30, "bf16", 1, 2},
};

const GgmlTypeInfo* ggml_info(uint32_t t) {
  for (const auto& x : kGgmlTypes)
    if (x.id == t) return &x;
  return nullptr;
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool checked_add(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

[[noreturn]] void open_fail(const std::string& path, const std::string& msg) {
  fail("GgufFile::open", fmt::format("{}: {}", path, msg));
}

// Bounds-checked little-endian reader over the mapping.
struct Cursor {
  const uint8_t* base;
  uint64_t size, pos = 0;
  const std::string& path;

  uint64_t left() const { return size - pos; }
  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      open_fail(path, fmt::format("truncated: {} needs {} bytes at offset {}, only {} left", what, n, pos, left()));
  }
  template <class T> T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    uint64_t n = read<uint64_t>(what + " (length)");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(base + pos), size_t(n));
    pos += n;
    return s;
  }
};

uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::String: return 8;
    case GgufType::Array: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

GgufValue read_value(Cursor& c, GgufType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8: v.u = c.read<uint8_t>(key); break;
    case GgufType::I8: v.i = c.read<int8_t>(key); break;
    case GgufType::U16: v.u = c.read<uint16_t>(key); break;
    case GgufType::I16: v.i = c.read<int16_t>(key); break;
    case GgufType::U32: v.u = c.read<uint32_t>(key); break;
    case GgufType::I32: v.i = c.read<int32_t>(key); break;
    case GgufType::U64: v.u = c.read<uint64_t>(key); break;
    case GgufType::I64: v.i = c.read<int64_t>(key); break;
    case GgufType::F32: v.f = c.read<float>(key); break;
    case GgufType::F64: v.f = c.read<double>(key); break;
    case GgufType::Bool: {
      uint8_t b = c.read<uint8_t>(key);
      if (b > 1) open_fail(c.path, fmt::format("key '{}': bool value {} is neither 0 nor 1", key, b));
      v.u = b;
      break;
    }
    case GgufType::String: v.s = c.string(key); break;
    case GgufType::Array: {
      if (depth >= kMaxDepth) open_fail(c.path, fmt::format("key '{}': arrays nest deeper than {}", key, kMaxDepth));
      uint32_t et = c.read<uint32_t>(key + " (array element type)");
      if (!valid_type(et)) open_fail(c.path, fmt::format("key '{}': unknown array element type {}", key, et));
      v.elem_type = GgufType(et);
      uint64_t n = c.read<uint64_t>(key + " (array length)");
      if (n > c.left() / min_value_bytes(v.elem_type))
        open_fail(c.path, fmt::format("key '{}': array of {} {} elements cannot fit in the {} bytes left", key, n,
                                      gguf_type_name(v.elem_type), c.left()));
      v.arr.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(c, v.elem_type, key, depth + 1));
      break;
    }
  }
  return v;
}

std::string errno_str(int e) { return std::strerror(e); }

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

const char* ggml_type_name(uint32_t t) {
  const GgmlTypeInfo* info = ggml_info(t);
  if (info != nullptr) return info->name;
  switch (t) {  // known to ggml, layouts not needed here
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 29: return "iq1_m";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    default: return "unknown";
  }
}

bool dtype_of_ggml(uint32_t t, DType& out) {
  switch (t) {
    case 0: out = DType::F32; return true;
    case 1: out = DType::F16; return true;
    case 30: out = DType::BF16; return true;
    case 8: out = DType::Q8_0; return true;
    case 2: out = DType::Q4_0; return true;
    case 12: out = DType::Q4_K; return true;
    case 14: out = DType::Q6_K; return true;
    default: return false;
  }
}

GgmlType ggml_type_of(DType t) {
  switch (t) {
    case DType::F32: return GgmlType::F32;
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    case DType::Q8_0: return GgmlType::Q8_0;
    case DType::Q4_0: return GgmlType::Q4_0;
    case DType::Q4_K: return GgmlType::Q4_K;
    case DType::Q6_K: return GgmlType::Q6_K;
    default: BALEINE_FAIL("dtype {} cannot be stored in GGUF", dtype_name(t));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Values

GgufValue GgufValue::of_array(GgufType elem, std::vector<GgufValue> items) {
  GgufValue x;
  x.type = GgufType::Array;
  x.elem_type = elem;
  for (const auto& it : items) BALEINE_CHECK(it.type == elem, "array element of type {} in an array<{}>", gguf_type_name(it.type), gguf_type_name(elem));
  x.arr = std::move(items);
  return x;
}
GgufValue GgufValue::of_strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(of_string(s));
  return of_array(GgufType::String, std::move(items));
}
GgufValue GgufValue::of_i32s(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(of_i32(x));
  return of_array(GgufType::I32, std::move(items));
}
GgufValue GgufValue::of_f32s(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(of_f32(x));
  return of_array(GgufType::F32, std::move(items));
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

int64_t GgufValue::as_int(const std::string& what) const {
  BALEINE_CHECK(is_integer(), "{}: expected an integer, got {}", what, summary());
  bool is_unsigned = type == GgufType::U8 || type == GgufType::U16 || type == GgufType::U32 || type == GgufType::U64;
  if (is_unsigned) {
    BALEINE_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), "{}: value {} is too large", what, u);
    return int64_t(u);
  }
  return i;
}
double GgufValue::as_double(const std::string& what) const {
  BALEINE_CHECK(is_number(), "{}: expected a number, got {}", what, summary());
  if (type == GgufType::F32 || type == GgufType::F64) return f;
  return double(as_int(what));
}
bool GgufValue::as_bool(const std::string& what) const {
  BALEINE_CHECK(type == GgufType::Bool, "{}: expected a bool, got {}", what, summary());
  return u != 0;
}
const std::string& GgufValue::as_string(const std::string& what) const {
  BALEINE_CHECK(type == GgufType::String, "{}: expected a string, got {}", what, summary());
  return s;
}
const std::vector<GgufValue>& GgufValue::as_array(const std::string& what) const {
  BALEINE_CHECK(type == GgufType::Array, "{}: expected an array, got {}", what, summary());
  return arr;
}
std::string GgufValue::summary() const {
  switch (type) {
    case GgufType::String: return s.size() <= 60 ? fmt::format("\"{}\"", s) : fmt::format("string[{}]", s.size());
    case GgufType::Array: return fmt::format("array<{}>[{}]", gguf_type_name(elem_type), arr.size());
    case GgufType::Bool: return u ? "true" : "false";
    case GgufType::F32: case GgufType::F64: return fmt::format("{}", f);
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return fmt::format("{}", u);
    default: return fmt::format("{}", i);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

struct GgufFile::Mapping {
  const uint8_t* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base != nullptr) munmap(const_cast<uint8_t*>(base), size);
  }
};

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) open_fail(path, fmt::format("cannot open: {}", errno_str(errno)));
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    open_fail(path, "not a regular file");
  }
  const uint64_t size = uint64_t(st.st_size);
  if (size < 24) {
    ::close(fd);
    open_fail(path, fmt::format("file is {} bytes, shorter than a GGUF header (24 bytes)", size));
  }
  void* p = mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) open_fail(path, fmt::format("cannot mmap {} bytes: {}", size, errno_str(map_err)));
  g.map_ = std::make_shared<Mapping>();
  g.map_->base = static_cast<const uint8_t*>(p);
  g.map_->size = size_t(size);

  Cursor c{g.map_->base, size, 0, g.path_};
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) open_fail(path, "not a GGUF file (bad magic; expected \"GGUF\")");
  g.version_ = c.read<uint32_t>("version");
  if (g.version_ != 2 && g.version_ != 3)
    open_fail(path, fmt::format("unsupported GGUF version {} (supported: 2, 3)", g.version_));
  uint64_t n_tensors = c.read<uint64_t>("tensor_count");
  uint64_t n_kv = c.read<uint64_t>("kv_count");
  // A kv needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.left() / 13) open_fail(path, fmt::format("kv_count {} cannot fit in the file", n_kv));
  if (n_tensors > c.left() / 32) open_fail(path, fmt::format("tensor_count {} cannot fit in the file", n_tensors));

  g.kv_.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string(fmt::format("key {}", k));
    if (g.kv_index_.count(key)) open_fail(path, fmt::format("duplicate key '{}'", key));
    uint32_t t = c.read<uint32_t>(key + " (type)");
    if (!valid_type(t)) open_fail(path, fmt::format("key '{}': unknown value type {}", key, t));
    GgufValue v = read_value(c, GgufType(t), key, 0);
    g.kv_index_[key] = g.kv_.size();
    g.kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type != GgufType::U32) open_fail(path, fmt::format("general.alignment must be u32, got {}", a->summary()));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      open_fail(path, fmt::format("general.alignment {} is not a power of two", a->u));
    g.alignment_ = a->u;
  }

  g.tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.string(fmt::format("tensor {} name", k));
    if (g.tensor_index_.count(t.name)) open_fail(path, fmt::format("duplicate tensor '{}'", t.name));
    uint32_t nd = c.read<uint32_t>(t.name + " n_dims");
    if (nd < 1 || nd > uint32_t(kMaxDims))
      open_fail(path, fmt::format("tensor '{}': {} dimensions (1 to {} allowed)", t.name, nd, kMaxDims));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t n = c.read<uint64_t>(t.name + " ne");
      if (n > uint64_t(std::numeric_limits<int64_t>::max()) || !checked_mul(numel, n, numel) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()))
        open_fail(path, fmt::format("tensor '{}': dimension {} = {} overflows the element count", t.name, d, n));
      t.ne.push_back(int64_t(n));
    }
    t.ggml_type = c.read<uint32_t>(t.name + " type");
    t.offset = c.read<uint64_t>(t.name + " offset");
    const GgmlTypeInfo* ti = ggml_info(t.ggml_type);
    if (ti == nullptr)
      open_fail(path, fmt::format("tensor '{}': unsupported ggml type {} ({})", t.name, t.ggml_type, ggml_type_name(t.ggml_type)));
    if (t.ne[0] % ti->block != 0)
      open_fail(path, fmt::format("tensor '{}': {} columns are not a multiple of the {} block size {}", t.name, t.ne[0],
                                  ti->name, ti->block));
    if (!checked_mul(numel / uint64_t(ti->block), ti->bytes, t.nbytes))
      open_fail(path, fmt::format("tensor '{}': byte size overflows", t.name));
    t.supported = dtype_of_ggml(t.ggml_type, t.dtype);
    if (t.offset % g.alignment_ != 0)
      open_fail(path, fmt::format("tensor '{}': offset {} is not a multiple of the alignment {}", t.name, t.offset, g.alignment_));
    g.tensor_index_[t.name] = g.tensors_.size();
    g.tensors_.push_back(std::move(t));
  }
  g.data_start_ = align_up(c.pos, g.alignment_);
  const uint64_t data_size = g.data_start_ <= size ? size - g.data_start_ : 0;
  // Every tensor inside the data block, no two overlapping.
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : g.tensors_) {
    uint64_t end = 0;
    if (!checked_add(t.offset, t.nbytes, end) || end > data_size)
      open_fail(path, fmt::format("tensor '{}': data [{}, +{}) lies outside the {}-byte data block (file truncated?)",
                                  t.name, t.offset, t.nbytes, data_size));
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k)
    if (by_offset[k - 1]->offset + by_offset[k - 1]->nbytes > by_offset[k]->offset)
      open_fail(path, fmt::format("tensors '{}' and '{}' overlap", by_offset[k - 1]->name, by_offset[k]->name));
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}
const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  BALEINE_CHECK(v != nullptr, "{}: missing metadata key '{}'", path_, key);
  return *v;
}
int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_int(path_ + ": " + key) : fallback;
}
double GgufFile::get_double(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_double(path_ + ": " + key) : fallback;
}
bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_bool(path_ + ": " + key) : fallback;
}
std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_string(path_ + ": " + key) : fallback;
}

const GgufTensorInfo& GgufFile::info(const std::string& name) const {
  auto it = tensor_index_.find(name);
  BALEINE_CHECK(it != tensor_index_.end(), "{}: missing tensor '{}'", path_, name);
  return tensors_[it->second];
}

const uint8_t* GgufFile::data(const GgufTensorInfo& t) const { return map_->base + data_start_ + t.offset; }

Tensor GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo& t = info(name);
  BALEINE_CHECK(t.supported, "{}: tensor '{}' has type {}, which baleine cannot compute with (supported: f32, f16, "
                "bf16, q8_0, q4_0, q4_k, q6_k)", path_, name, ggml_type_name(t.ggml_type));
  return Tensor::borrow(const_cast<uint8_t*>(data(t)), t.dtype, t.shape(), map_);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

void GgufWriter::set(const std::string& key, GgufValue value) {
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(value);
    return;
  }
  kv_index_[key] = kv_.size();
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, Tensor t) {
  BALEINE_CHECK(!names_.count(name), "GGUF writer: tensor '{}' added twice", name);
  BALEINE_CHECK(t.defined() && t.view().is_contiguous(), "GGUF writer: tensor '{}' must be defined and contiguous", name);
  BALEINE_CHECK(t.ndim() >= 1 && t.ndim() <= kMaxDims, "GGUF writer: tensor '{}' has {} dimensions", name, t.ndim());
  (void)ggml_type_of(t.dtype());
  BALEINE_CHECK(t.dim(-1) % dtype_block_elems(t.dtype()) == 0, "GGUF writer: tensor '{}' {} columns not a multiple of the {} block", name,
                t.dim(-1), dtype_name(t.dtype()));
  names_[name] = tensors_.size();
  tensors_.emplace_back(name, std::move(t));
}

void GgufWriter::write(const std::string& path) const {
  uint64_t alignment = kDefaultAlignment;
  if (auto it = kv_index_.find("general.alignment"); it != kv_index_.end()) {
    const GgufValue& a = kv_[it->second].second;
    BALEINE_CHECK(a.type == GgufType::U32 && a.u > 0 && (a.u & (a.u - 1)) == 0, "GGUF writer: general.alignment must be a u32 power of two");
    alignment = a.u;
  }
  atomic_write("GgufWriter::write", path, [&](const ByteSink& sink) {
    uint64_t written = 0;
    auto put = [&](const void* p, size_t n) { sink(p, n); written += n; };
    auto u32 = [&](uint32_t v) { put(&v, 4); };
    auto u64 = [&](uint64_t v) { put(&v, 8); };
    auto str = [&](const std::string& s) { u64(s.size()); put(s.data(), s.size()); };
    std::function<void(const GgufValue&)> value = [&](const GgufValue& v) {
      switch (v.type) {
        case GgufType::U8: case GgufType::Bool: { uint8_t x = uint8_t(v.u); put(&x, 1); break; }
        case GgufType::I8: { int8_t x = int8_t(v.i); put(&x, 1); break; }
        case GgufType::U16: { uint16_t x = uint16_t(v.u); put(&x, 2); break; }
        case GgufType::I16: { int16_t x = int16_t(v.i); put(&x, 2); break; }
        case GgufType::U32: u32(uint32_t(v.u)); break;
        case GgufType::I32: { int32_t x = int32_t(v.i); put(&x, 4); break; }
        case GgufType::U64: u64(v.u); break;
        case GgufType::I64: put(&v.i, 8); break;
        case GgufType::F32: { float x = float(v.f); put(&x, 4); break; }
        case GgufType::F64: put(&v.f, 8); break;
        case GgufType::String: str(v.s); break;
        case GgufType::Array:
          u32(uint32_t(v.elem_type));
          u64(v.arr.size());
          for (const auto& e : v.arr) value(e);
          break;
      }
    };
    const uint8_t zeros[256] = {};
    auto pad = [&]() {
      uint64_t target = align_up(written, alignment);
      while (written < target) put(zeros, size_t(std::min<uint64_t>(target - written, sizeof zeros)));
    };
    u32(kMagic);
    u32(3);
    u64(tensors_.size());
    u64(kv_.size());
    for (const auto& [k, v] : kv_) {
      str(k);
      u32(uint32_t(v.type));
      value(v);
    }
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors_) {
      str(name);
      u32(uint32_t(t.ndim()));
      for (int d = t.ndim() - 1; d >= 0; --d) u64(uint64_t(t.dim(d)));
      u32(uint32_t(ggml_type_of(t.dtype())));
      u64(offset);
      offset = align_up(offset + t.nbytes(), alignment);
    }
    pad();
    const uint64_t data_start = written;
    for (const auto& [name, t] : tensors_) {
      put(t.raw(), t.nbytes());
      pad();
      (void)name;
    }
    BALEINE_ASSERT(written - data_start == offset);
  });
}

}  // namespace baleine::io
