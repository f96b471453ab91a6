// io/torch_checkpoint.cpp — torch.save zip checkpoints: ZIP (+ZIP64) directory, a restricted pickle VM for
// data.pkl, validated tensor entries over a read-only mapping.
//
// Three layers, each validating everything it reads against the bytes it was given:
//  1. zip: the end-of-central-directory record (ZIP64 locator and record when present), the central directory,
//     each record's local header (the data start depends on the local extra field, where torch puts the padding
//     that 64-aligns storages). Records are STORED or DEFLATE; encryption and multi-disk archives are refused.
//  2. pickle: a VM over an arena of values (indices, never pointers, so a pickle that makes a list contain itself
//     cannot make a cycle), with Python 3's separate mark stack. Only opcodes torch.save emits for state dicts are
//     known, and only an allowlist of globals can be named; REDUCE "calls" them by building the value they would
//     build (an empty dict, a tensor description), nothing is executed.
//  3. entries: each tensor's storage record must exist and hold numel elements; offset + Σ (size-1)·stride must
//     lie inside numel. tensor() then borrows the mapping or gathers a strided copy.
#include "io/torch_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <set>
#include <unordered_map>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace baleine::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxPickleBytes = 1ull << 30;   // data.pkl of a state dict is KB to a few MB
constexpr uint64_t kMaxIndexBytes = 100ull << 20;  // an index.json is KB
constexpr uint64_t kMaxRecordNameBytes = 4096;
constexpr size_t kMaxTensorDims = 64;
constexpr size_t kMaxGlobalNameBytes = 256;
constexpr int kMaxJsonDepth = 16;

[[noreturn]] void open_fail(const std::string& file, const std::string& message) {
  fail("TorchCheckpointReader::open", fmt::format("{}: {}", file, message));
}

std::string errno_str(int err) { return std::strerror(err); }
std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Storage types torch.save names as torch.<name>, and the dtype tensor() gives for each.
enum class Conv : uint8_t { None, F64ToF32, I16ToI32, I8ToI32 };
struct StorageType {
  const char* name;
  DType dtype;       // dtype of the tensor we return
  size_t elem_size;  // bytes per stored element
  Conv conv;
};
constexpr std::array<StorageType, 11> kStorageTypes{{{"FloatStorage", DType::F32, 4, Conv::None},
                                                     {"BFloat16Storage", DType::BF16, 2, Conv::None},
                                                     {"HalfStorage", DType::F16, 2, Conv::None},
                                                     {"Float8_e4m3fnStorage", DType::F8_E4M3, 1, Conv::None},
                                                     {"LongStorage", DType::I64, 8, Conv::None},
                                                     {"IntStorage", DType::I32, 4, Conv::None},
                                                     {"ByteStorage", DType::U8, 1, Conv::None},
                                                     {"BoolStorage", DType::U8, 1, Conv::None},
                                                     {"DoubleStorage", DType::F32, 8, Conv::F64ToF32},
                                                     {"ShortStorage", DType::I32, 2, Conv::I16ToI32},
                                                     {"CharStorage", DType::I32, 1, Conv::I8ToI32}}};

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

// One ZIP record, located: its data lies at [data_offset, data_offset + comp_size) of the file.
struct ZipRecord {
  std::string name;
  uint16_t method = 0;  // 0 STORED, 8 DEFLATE
  uint32_t crc = 0;
  uint64_t comp_size = 0;
  uint64_t size = 0;
  uint64_t data_offset = 0;
};

}  // namespace

struct TorchCheckpointReader::File {
  struct Located {
    const ZipRecord* record = nullptr;
    const StorageType* type = nullptr;
  };
  std::string path;
  const uint8_t* base = nullptr;
  size_t size = 0;
  std::map<std::string, ZipRecord> records;
  std::map<std::string, TorchTensorEntry> entries;
  std::map<std::string, Located> located;

  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() {
    if (base != nullptr) munmap(const_cast<uint8_t*>(base), size);
  }
};

namespace {

using File = TorchCheckpointReader::File;

// ---------------------------------------------------------------------------------------------------------------
// ZIP

void map_file(File* f, const std::string& path) {
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
  if (size < 22) {
    ::close(fd);
    open_fail(path, fmt::format("file is {} bytes, too short for a zip archive (torch.save writes zip files)", size));
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) open_fail(path, fmt::format("cannot mmap {} bytes: {}", size, errno_str(map_err)));
  f->base = static_cast<const uint8_t*>(p);
  f->size = size;
}

// Parses the central directory and every local header. Errors name the file and the record.
void read_zip(File* f) {
  const std::string& path = f->path;
  const uint8_t* b = f->base;
  const uint64_t size = f->size;
  if (b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
    open_fail(path, "this is a bare pickle: the legacy torch.save format (before PyTorch 1.6) is not supported; "
                    "re-save it with a recent torch.save (the zip format)");
  if (!(b[0] == 'P' && b[1] == 'K'))
    open_fail(path, "not a zip archive (torch.save since PyTorch 1.6 writes zip files starting with 'PK')");

  // End of central directory: 22 bytes + a comment of up to 65535 bytes, found from the end.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t pos = size - 22 + 1; pos-- > lowest;) {
    if (rd32(b + pos) != 0x06054b50) continue;
    if (pos + 22 + rd16(b + pos + 20) == size) {
      eocd = pos;
      break;
    }
    if (eocd == UINT64_MAX) eocd = pos;  // comment length disagrees: keep looking for an exact one
  }
  if (eocd == UINT64_MAX)
    open_fail(path, "no zip end-of-central-directory record (the file is truncated or not a zip archive)");
  uint64_t disk = rd16(b + eocd + 4), cd_disk = rd16(b + eocd + 6);
  uint64_t count = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_offset = rd32(b + eocd + 16);
  uint64_t cd_limit = eocd;  // the central directory ends before this
  if (eocd >= 20 && rd32(b + eocd - 20) == 0x07064b50) {
    const uint8_t* loc = b + eocd - 20;
    uint64_t z64 = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1) open_fail(path, "multi-disk zip archives are not supported");
    if (z64 > eocd - 20 || eocd - 20 - z64 < 56)
      open_fail(path, fmt::format("ZIP64 end-of-central-directory offset {} is outside the file", z64));
    const uint8_t* r = b + z64;
    if (rd32(r) != 0x06064b50)
      open_fail(path, fmt::format("no ZIP64 end-of-central-directory record at offset {}", z64));
    disk = rd32(r + 16);
    cd_disk = rd32(r + 20);
    count = rd64(r + 32);
    cd_size = rd64(r + 40);
    cd_offset = rd64(r + 48);
    cd_limit = z64;
  } else if (count == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
    open_fail(path, "the end-of-central-directory record asks for ZIP64 but there is no ZIP64 locator");
  }
  if (disk != 0 || cd_disk != 0) open_fail(path, "multi-disk zip archives are not supported");
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset)
    open_fail(path, fmt::format("central directory [{}, +{}) is outside the file (it must end by byte {}): the file "
                                "is truncated",
                                cd_offset, cd_size, cd_limit));
  if (count > cd_size / 46)
    open_fail(path, fmt::format("{} records cannot fit a central directory of {} bytes", count, cd_size));

  uint64_t pos = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_end - pos < 46 || rd32(b + pos) != 0x02014b50)
      open_fail(path, fmt::format("central directory entry {} at offset {} is malformed", i, pos));
    const uint8_t* c = b + pos;
    const uint16_t flags = rd16(c + 8);
    ZipRecord r;
    r.method = rd16(c + 10);
    r.crc = rd32(c + 16);
    r.comp_size = rd32(c + 20);
    r.size = rd32(c + 24);
    const uint64_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
    uint64_t disk_start = rd16(c + 34);
    uint64_t local = rd32(c + 42);
    if (cd_end - pos - 46 < name_len + extra_len + comment_len)
      open_fail(path, fmt::format("central directory entry {} runs past the directory", i));
    r.name.assign(reinterpret_cast<const char*>(c + 46), size_t(name_len));
    auto bad = [&](const std::string& msg) { open_fail(path, fmt::format("zip record '{}': {}", r.name, msg)); };
    // ZIP64 extended information: the fields whose 32-bit (16-bit) values are all ones, in this order.
    const uint8_t* x = c + 46 + name_len;
    for (uint64_t k = 0; k + 4 <= extra_len;) {
      const uint16_t id = rd16(x + k), len = rd16(x + k + 2);
      if (k + 4 + len > extra_len) bad("extra field runs past its entry");
      if (id == 0x0001) {
        const uint8_t* z = x + k + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& field, int bytes) {
          if (left < uint64_t(bytes)) bad("ZIP64 extra field is too short");
          field = bytes == 8 ? rd64(z) : rd32(z);
          z += bytes;
          left -= uint64_t(bytes);
        };
        if (r.size == 0xffffffffu) take(r.size, 8);
        if (r.comp_size == 0xffffffffu) take(r.comp_size, 8);
        if (local == 0xffffffffu) take(local, 8);
        if (disk_start == 0xffff) take(disk_start, 4);
      }
      k += 4 + uint64_t(len);
    }
    pos += 46 + name_len + extra_len + comment_len;
    if (name_len > kMaxRecordNameBytes) bad("name is too long");
    if (flags & 1) bad("encrypted zip records are not supported");
    if (disk_start != 0) bad("multi-disk zip archives are not supported");
    if (r.method != 0 && r.method != 8)
      bad(fmt::format("compression method {} is not supported (only STORED and DEFLATE)", r.method));
    if (r.method == 0 && r.comp_size != r.size)
      bad(fmt::format("STORED record has compressed size {} but size {}", r.comp_size, r.size));
    if (local > cd_offset || cd_offset - local < 30)
      bad(fmt::format("local header offset {} is outside the file data", local));
    const uint8_t* l = b + local;
    if (rd32(l) != 0x04034b50) bad(fmt::format("no local header at offset {}", local));
    const uint64_t lname = rd16(l + 26), lextra = rd16(l + 28);
    r.data_offset = local + 30 + lname + lextra;
    if (r.data_offset > cd_offset || r.comp_size > cd_offset - r.data_offset)
      bad(fmt::format("data [{}, +{}) runs past the end of the file data (byte {}): the file is truncated",
                      r.data_offset, r.comp_size, cd_offset));
    if (lname != name_len || std::memcmp(l + 30, r.name.data(), name_len) != 0)
      bad(fmt::format("the local header at offset {} names another record", local));
    std::string name = r.name;
    if (!f->records.emplace(name, std::move(r)).second)
      open_fail(path, fmt::format("zip record '{}' appears twice", name));
  }
}

// The bytes of a DEFLATE record, inflated and checked against the declared size and CRC.
std::unique_ptr<uint8_t[]> inflate_record(const char* fn, const File& f, const ZipRecord& r) {
  auto bad = [&](const std::string& msg) { fail(fn, fmt::format("{}: zip record '{}': {}", f.path, r.name, msg)); };
  // DEFLATE expands at most ~1032:1; a larger claim is a lie (and would make us allocate for nothing).
  if (r.size / 1032 > r.comp_size + 64)
    bad(fmt::format("declares {} bytes from {} compressed bytes, more than DEFLATE can produce", r.size, r.comp_size));
  std::unique_ptr<uint8_t[]> out;
  try {
    out = std::make_unique_for_overwrite<uint8_t[]>(size_t(r.size) + 1);  // +1 detects overlong streams
  } catch (const std::bad_alloc&) {
    bad(fmt::format("cannot allocate {} bytes to inflate it", r.size));
  }
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) bad("cannot initialise zlib");
  const uint8_t* in = f.base + r.data_offset;
  uint64_t in_left = r.comp_size, out_left = r.size + 1;
  uint8_t* op = out.get();
  constexpr uint64_t kChunk = 1u << 30;
  int ret = Z_OK;
  for (;;) {
    if (zs.avail_in == 0 && in_left > 0) {
      uInt k = uInt(std::min(in_left, kChunk));
      zs.next_in = const_cast<Bytef*>(in);
      zs.avail_in = k;
      in += k;
      in_left -= k;
    }
    if (zs.avail_out == 0 && out_left > 0) {
      uInt k = uInt(std::min(out_left, kChunk));
      zs.next_out = op;
      zs.avail_out = k;
      op += k;
      out_left -= k;
    }
    ret = inflate(&zs, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) break;
    if (ret == Z_OK) continue;
    const bool in_done = zs.avail_in == 0 && in_left == 0, out_done = zs.avail_out == 0 && out_left == 0;
    const std::string why = zs.msg ? zs.msg : "zlib error";
    inflateEnd(&zs);
    if (ret == Z_BUF_ERROR && out_done) bad(fmt::format("inflates to more than the declared {} bytes", r.size));
    if (ret == Z_BUF_ERROR && in_done) bad("compressed data is truncated");
    bad(fmt::format("corrupt DEFLATE data ({})", why));
  }
  const uint64_t produced = zs.total_out;
  inflateEnd(&zs);
  if (produced != r.size) bad(fmt::format("inflates to {} bytes, the directory says {}", produced, r.size));
  uint32_t crc = uint32_t(crc32_z(0L, out.get(), size_t(r.size)));
  if (crc != r.crc) bad(fmt::format("CRC-32 {:08x} does not match the directory's {:08x}", crc, r.crc));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Pickle

enum class Kind : uint8_t { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

enum GlobalId : int64_t { kOrderedDict = 0, kRebuildTensorV2, kRebuildParameter, kRebuildParameterWithState,
                          kStorageType0 = 100 };

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;              // Int, Bool; Global: GlobalId; Storage / Tensor: index into storages / tensors
  double f = 0;               // Float
  std::string s;              // String; Global: "module.name"
  std::vector<size_t> items;  // Tuple, List; Dict: key0, value0, key1, value1, ...
};

struct PickledStorage {
  const StorageType* type = nullptr;
  std::string key;
  int64_t numel = 0;
};

struct PickledTensor {
  size_t storage = 0;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t n, const std::string& file, const std::string& record)
      : p_(data), n_(n), file_(file), record_(record) {}

  // Runs to STOP; returns the result's value index.
  size_t run();

  const Value& value(size_t i) const { return values_[i]; }
  std::vector<PickledStorage> storages;
  std::vector<PickledTensor> tensors;

 private:
  [[noreturn]] void bad(const std::string& msg) const {
    open_fail(file_, fmt::format("pickle '{}', byte {}: {}", record_, op_pos_, msg));
  }
  const uint8_t* need(size_t k) {
    if (n_ - pos_ < k)
      bad(fmt::format("opcode {} needs {} more bytes but the pickle ends (truncated)", op_name(op_), k));
    const uint8_t* q = p_ + pos_;
    pos_ += k;
    return q;
  }
  static std::string op_name(uint8_t op) {
    return op >= 0x20 && op < 0x7f ? fmt::format("0x{:02x} '{}'", op, char(op)) : fmt::format("0x{:02x}", op);
  }
  size_t make(Value v) {
    values_.push_back(std::move(v));
    return values_.size() - 1;
  }
  void push(size_t v) { stack_.push_back(v); }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  size_t top() {
    if (stack_.size() <= floor()) bad(fmt::format("opcode {} on an empty stack", op_name(op_)));
    return stack_.back();
  }
  size_t pop() {
    size_t v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<size_t> pop_mark() {
    if (marks_.empty()) bad(fmt::format("opcode {} without a MARK", op_name(op_)));
    std::vector<size_t> items(stack_.begin() + std::ptrdiff_t(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Value& expect(size_t v, Kind k, const char* what) {
    if (values_[v].kind != k) bad(fmt::format("{} must be a {}, got a {}", what, kind_name(k), kind_name(values_[v].kind)));
    return values_[v];
  }
  size_t tuple(std::vector<size_t> items) {
    Value v;
    v.kind = Kind::Tuple;
    v.items = std::move(items);
    return make(std::move(v));
  }
  size_t int_value(int64_t x) {
    Value v;
    v.kind = Kind::Int;
    v.i = x;
    return make(std::move(v));
  }
  size_t string_value(size_t len) {
    const uint8_t* q = need(len);
    Value v;
    v.kind = Kind::String;
    v.s.assign(reinterpret_cast<const char*>(q), len);
    return make(std::move(v));
  }
  void memo_put(uint64_t index) { memo_[index] = top(); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) bad(fmt::format("memo entry {} was never stored", index));
    push(it->second);
  }
  std::string line();
  size_t global(const std::string& module, const std::string& name);
  size_t persistent_load(size_t pid);
  size_t reduce(size_t callable, size_t args);
  size_t rebuild_tensor(const std::vector<size_t>& a);
  int64_t nonneg_int(size_t v, const char* what) {
    const Value& x = expect(v, Kind::Int, what);
    if (x.i < 0) bad(fmt::format("{} must be non-negative, got {}", what, x.i));
    return x.i;
  }

  const uint8_t* p_;
  size_t n_, pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  const std::string& file_;
  const std::string& record_;
  std::vector<Value> values_;
  std::vector<size_t> stack_, marks_;
  std::unordered_map<uint64_t, size_t> memo_;
};

std::string Unpickler::line() {
  const size_t max = std::min(n_ - pos_, kMaxGlobalNameBytes + 1);
  const void* nl = std::memchr(p_ + pos_, '\n', max);
  if (nl == nullptr) bad("GLOBAL name is not terminated by a newline within 256 bytes (truncated or malformed)");
  size_t len = size_t(static_cast<const uint8_t*>(nl) - (p_ + pos_));
  std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
  pos_ += len + 1;
  return s;
}

size_t Unpickler::global(const std::string& module, const std::string& name) {
  Value v;
  v.kind = Kind::Global;
  v.s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    v.i = kOrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    v.i = kRebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    v.i = kRebuildParameter;
  } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
    v.i = kRebuildParameterWithState;
  } else {
    bool found = false;
    if (module == "torch") {
      for (size_t k = 0; k < kStorageTypes.size(); ++k) {
        if (name == kStorageTypes[k].name) {
          v.i = kStorageType0 + int64_t(k);
          found = true;
        }
      }
    }
    if (!found)
      bad(fmt::format("global '{}' is not allowed (a state dict needs only collections.OrderedDict, "
                      "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch.<T>Storage "
                      "for T in Float, BFloat16, Half, Float8_e4m3fn, Double, Long, Int, Short, Char, Byte, Bool)",
                      v.s));
  }
  return make(std::move(v));
}

// ('storage', torch.<T>Storage, key, location, numel) → a storage reference.
size_t Unpickler::persistent_load(size_t pid) {
  const Value& t = values_[pid];
  if (t.kind != Kind::Tuple || t.items.size() != 5)
    bad(fmt::format("persistent id must be a 5-tuple ('storage', type, key, location, numel), got a {}{}",
                    kind_name(t.kind), t.kind == Kind::Tuple ? fmt::format(" of {}", t.items.size()) : ""));
  const std::vector<size_t> it = t.items;
  if (expect(it[0], Kind::String, "persistent id tag").s != "storage")
    bad(fmt::format("persistent id tag must be 'storage', got '{}'", values_[it[0]].s));
  const Value& type = expect(it[1], Kind::Global, "storage type");
  if (type.i < kStorageType0) bad(fmt::format("storage type must be a torch.<T>Storage, got '{}'", type.s));
  PickledStorage s;
  s.type = &kStorageTypes[size_t(type.i - kStorageType0)];
  s.key = expect(it[2], Kind::String, "storage key").s;
  expect(it[3], Kind::String, "storage location");  // 'cpu', 'cuda:0', ...: the bytes are the same
  s.numel = nonneg_int(it[4], "storage numel");
  storages.push_back(std::move(s));
  Value v;
  v.kind = Kind::Storage;
  v.i = int64_t(storages.size() - 1);
  return make(std::move(v));
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
size_t Unpickler::rebuild_tensor(const std::vector<size_t>& a) {
  if (a.size() != 6 && a.size() != 7)
    bad(fmt::format("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", a.size()));
  PickledTensor t;
  t.storage = size_t(expect(a[0], Kind::Storage, "_rebuild_tensor_v2 storage").i);
  t.offset = nonneg_int(a[1], "storage_offset");
  const std::vector<size_t> size = expect(a[2], Kind::Tuple, "tensor size").items;
  const std::vector<size_t> stride = expect(a[3], Kind::Tuple, "tensor stride").items;
  if (size.size() != stride.size())
    bad(fmt::format("tensor size has {} dimensions but stride has {}", size.size(), stride.size()));
  if (size.size() > kMaxTensorDims) bad(fmt::format("tensor has {} dimensions (limit {})", size.size(), kMaxTensorDims));
  for (size_t k = 0; k < size.size(); ++k) {
    t.size.push_back(nonneg_int(size[k], "tensor size"));
    t.stride.push_back(nonneg_int(stride[k], "tensor stride"));
  }
  Kind rg = values_[a[4]].kind;
  if (rg != Kind::Bool && rg != Kind::Int) bad(fmt::format("requires_grad must be a bool, got a {}", kind_name(rg)));
  expect(a[5], Kind::Dict, "backward_hooks");
  if (a.size() == 7 && values_[a[6]].kind != Kind::Dict && values_[a[6]].kind != Kind::None)
    bad(fmt::format("tensor metadata must be a dict, got a {}", kind_name(values_[a[6]].kind)));
  tensors.push_back(std::move(t));
  Value v;
  v.kind = Kind::Tensor;
  v.i = int64_t(tensors.size() - 1);
  return make(std::move(v));
}

size_t Unpickler::reduce(size_t callable, size_t args) {
  const Value& c = values_[callable];
  if (c.kind != Kind::Global) bad(fmt::format("REDUCE calls a {}; only allowed globals can be called", kind_name(c.kind)));
  const std::vector<size_t> a = expect(args, Kind::Tuple, "REDUCE arguments").items;
  const std::string name = c.s;
  switch (c.i) {
    case kOrderedDict: {
      if (!a.empty()) bad(fmt::format("collections.OrderedDict is called with {} arguments; only () is supported", a.size()));
      Value v;
      v.kind = Kind::Dict;
      return make(std::move(v));
    }
    case kRebuildTensorV2:
      return rebuild_tensor(a);
    case kRebuildParameter:
    case kRebuildParameterWithState: {
      const size_t want = c.i == kRebuildParameter ? 3 : 4;
      if (a.size() != want) bad(fmt::format("{} takes {} arguments, got {}", name, want, a.size()));
      expect(a[0], Kind::Tensor, "parameter data");
      return a[0];
    }
    default:
      bad(fmt::format("'{}' cannot be called (storages come from persistent ids)", name));
  }
}

size_t Unpickler::run() {
  for (;;) {
    op_pos_ = pos_;
    if (pos_ >= n_) bad("the pickle ends without STOP (truncated)");
    op_ = p_[pos_++];
    switch (op_) {
      case 0x80: {  // PROTO
        uint8_t v = *need(1);
        if (v < 2 || v > 5) bad(fmt::format("pickle protocol {} is not supported (2 to 5)", v));
        break;
      }
      case 0x95: {  // FRAME: a length hint, the opcodes follow inline
        uint64_t len = rd64(need(8));
        if (len > n_ - pos_) bad(fmt::format("FRAME of {} bytes runs past the pickle ({} left)", len, n_ - pos_));
        break;
      }
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        size_t name = pop(), module = pop();
        std::string n = expect(name, Kind::String, "STACK_GLOBAL name").s;
        std::string m = expect(module, Kind::String, "STACK_GLOBAL module").s;
        push(global(m, n));
        break;
      }
      case 'q': memo_put(*need(1)); break;        // BINPUT
      case 'r': memo_put(rd32(need(4))); break;   // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;   // MEMOIZE
      case 'h': memo_get(*need(1)); break;        // BINGET
      case 'j': memo_get(rd32(need(4))); break;   // LONG_BINGET
      case '}': {  // EMPTY_DICT
        Value v;
        v.kind = Kind::Dict;
        push(make(std::move(v)));
        break;
      }
      case ']': {  // EMPTY_LIST
        Value v;
        v.kind = Kind::List;
        push(make(std::move(v)));
        break;
      }
      case ')': push(tuple({})); break;  // EMPTY_TUPLE
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case 't': push(tuple(pop_mark())); break;  // TUPLE
      case 0x85: {  // TUPLE1
        size_t a = pop();
        push(tuple({a}));
        break;
      }
      case 0x86: {  // TUPLE2
        size_t b = pop(), a = pop();
        push(tuple({a, b}));
        break;
      }
      case 0x87: {  // TUPLE3
        size_t c = pop(), b = pop(), a = pop();
        push(tuple({a, b, c}));
        break;
      }
      case 'J': push(int_value(int32_t(rd32(need(4))))); break;  // BININT
      case 'K': push(int_value(*need(1))); break;                // BININT1
      case 'M': push(int_value(rd16(need(2)))); break;           // BININT2
      case 0x8a: {  // LONG1: n bytes of little-endian two's complement
        uint8_t len = *need(1);
        if (len > 8) bad(fmt::format("LONG1 integer of {} bytes does not fit 64 bits", len));
        const uint8_t* q = need(len);
        uint64_t u = 0;
        for (int k = len - 1; k >= 0; --k) u = u << 8 | q[k];
        if (len > 0 && len < 8 && (q[len - 1] & 0x80)) u |= ~uint64_t(0) << (8 * len);  // sign-extend
        push(int_value(int64_t(u)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const uint8_t* q = need(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = u << 8 | q[k];
        Value v;
        v.kind = Kind::Float;
        std::memcpy(&v.f, &u, 8);
        push(make(std::move(v)));
        break;
      }
      case 'X': push(string_value(rd32(need(4)))); break;  // BINUNICODE
      case 0x8c: push(string_value(*need(1))); break;      // SHORT_BINUNICODE
      case 'Q': push(persistent_load(pop())); break;       // BINPERSID
      case 'R': {  // REDUCE
        size_t args = pop(), callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 's': {  // SETITEM
        size_t v = pop(), k = pop();
        Value& d = expect(top(), Kind::Dict, "SETITEM target");
        d.items.push_back(k);
        d.items.push_back(v);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<size_t> kv = pop_mark();
        if (kv.size() % 2 != 0) bad(fmt::format("SETITEMS with an odd number ({}) of keys and values", kv.size()));
        Value& d = expect(top(), Kind::Dict, "SETITEMS target");
        d.items.insert(d.items.end(), kv.begin(), kv.end());
        break;
      }
      case 'a': {  // APPEND
        size_t v = pop();
        expect(top(), Kind::List, "APPEND target").items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<size_t> vs = pop_mark();
        Value& l = expect(top(), Kind::List, "APPENDS target");
        l.items.insert(l.items.end(), vs.begin(), vs.end());
        break;
      }
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Value v;
        v.kind = Kind::Bool;
        v.i = op_ == 0x88;
        push(make(std::move(v)));
        break;
      }
      case 'N': push(make(Value{})); break;  // NONE
      case 'b': {  // BUILD: only the attribute dict of an OrderedDict (state_dict's _metadata), which we ignore
        size_t state = pop();
        const Value& target = values_[top()];
        if (target.kind != Kind::Dict) bad(fmt::format("BUILD on a {} is not supported", kind_name(target.kind)));
        Kind k = values_[state].kind;
        if (k != Kind::Dict && k != Kind::None && k != Kind::Tuple)
          bad(fmt::format("BUILD state must be a dict, got a {}", kind_name(k)));
        break;
      }
      case '.':  // STOP
        return pop();
      default:
        bad(fmt::format("unsupported pickle opcode {} (a torch.save state dict uses a small set; this file needs "
                        "Python to load)",
                        op_name(op_)));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Archive → entries

bool is_row_major(const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  int64_t expect = 1;
  for (size_t k = size.size(); k-- > 0;) {
    if (size[k] != 1 && stride[k] != expect) return false;
    expect *= size[k];
  }
  return true;
}

void open_torch_file(File* f, const std::string& path) {
  map_file(f, path);
  read_zip(f);

  // The single top-level directory holding data.pkl.
  std::vector<std::string> pickles;
  for (const auto& [name, r] : f->records) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && slash > 0 && name.compare(slash, std::string::npos, "/data.pkl") == 0)
      pickles.push_back(name);
  }
  if (pickles.empty())
    open_fail(path, fmt::format("no '<archive>/data.pkl' record among the {} zip records: not a torch.save checkpoint",
                                f->records.size()));
  if (pickles.size() > 1)
    open_fail(path, fmt::format("{} top-level directories hold a data.pkl ({}); torch.save writes one",
                                pickles.size(), fmt::join(pickles, ", ")));
  const std::string prefix = pickles[0].substr(0, pickles[0].size() - std::strlen("data.pkl"));  // "<a>/"

  auto bo = f->records.find(prefix + "byteorder");
  if (bo != f->records.end()) {
    const ZipRecord& r = bo->second;
    std::string text;
    if (r.size > 64) open_fail(path, fmt::format("record '{}' is {} bytes, expected \"little\"", r.name, r.size));
    if (r.method == 0) {
      text.assign(reinterpret_cast<const char*>(f->base + r.data_offset), size_t(r.size));
    } else {
      auto bytes = inflate_record("TorchCheckpointReader::open", *f, r);
      text.assign(reinterpret_cast<const char*>(bytes.get()), size_t(r.size));
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    if (text == "big") open_fail(path, "big-endian checkpoints (byteorder \"big\") are not supported");
    if (text != "little")
      open_fail(path, fmt::format("record '{}' holds \"{}\", expected \"little\"", r.name, text.substr(0, 16)));
  }

  const ZipRecord& pkl = f->records.at(pickles[0]);
  if (pkl.size > kMaxPickleBytes)
    open_fail(path, fmt::format("record '{}' is {} bytes (limit {})", pkl.name, pkl.size, kMaxPickleBytes));
  std::unique_ptr<uint8_t[]> inflated;
  const uint8_t* pdata = f->base + pkl.data_offset;
  if (pkl.method == 8) {
    inflated = inflate_record("TorchCheckpointReader::open", *f, pkl);
    pdata = inflated.get();
  } else {
    uint32_t crc = uint32_t(crc32_z(0L, pdata, size_t(pkl.size)));
    if (crc != pkl.crc)
      open_fail(path, fmt::format("zip record '{}': CRC-32 {:08x} does not match the directory's {:08x}", pkl.name,
                                  crc, pkl.crc));
  }
  Unpickler up(pdata, size_t(pkl.size), path, pkl.name);
  const size_t root = up.run();
  const Value& top = up.value(root);
  if (top.kind != Kind::Dict)
    open_fail(path, fmt::format("pickle '{}' holds a {}, expected a dict of tensors (a state dict)", pkl.name,
                                kind_name(top.kind)));

  for (size_t k = 0; k + 1 < top.items.size(); k += 2) {
    const Value& key = up.value(top.items[k]);
    const Value& val = up.value(top.items[k + 1]);
    if (val.kind != Kind::Tensor) continue;  // e.g. an int "epoch" next to the weights
    if (key.kind != Kind::String)
      open_fail(path, fmt::format("pickle '{}': a tensor is stored under a {} key, expected a string name", pkl.name,
                                  kind_name(key.kind)));
    const std::string& name = key.s;
    auto bad = [&](const std::string& msg) { open_fail(path, fmt::format("tensor '{}': {}", name, msg)); };
    if (f->entries.count(name)) bad("appears twice in the dict");
    const PickledTensor& t = up.tensors[size_t(val.i)];
    const PickledStorage& s = up.storages[t.storage];
    const std::string record = prefix + "data/" + s.key;
    auto rit = f->records.find(record);
    if (rit == f->records.end())
      bad(fmt::format("storage '{}' is missing from the archive (no record '{}')", s.key, record));
    const ZipRecord& r = rit->second;
    uint64_t storage_bytes = 0;
    if (__builtin_mul_overflow(uint64_t(s.numel), uint64_t(s.type->elem_size), &storage_bytes) ||
        storage_bytes > r.size)
      bad(fmt::format("storage '{}' declares {} elements of {} ({} bytes each) but record '{}' holds {} bytes",
                      s.key, s.numel, s.type->name, s.type->elem_size, record, r.size));
    // numel, then the largest element index offset + Σ (size-1)·stride, which must lie inside the storage.
    uint64_t numel = 1, last = uint64_t(t.offset);
    bool overflow = false;
    for (size_t d = 0; d < t.size.size(); ++d) {
      uint64_t span = 0;
      overflow = overflow || __builtin_mul_overflow(numel, uint64_t(t.size[d]), &numel);
      if (t.size[d] > 0) {
        overflow = overflow || __builtin_mul_overflow(uint64_t(t.size[d] - 1), uint64_t(t.stride[d]), &span) ||
                   __builtin_add_overflow(last, span, &last);
      }
    }
    uint64_t out_bytes = 0;
    DType dt = s.type->dtype;
    if (overflow || numel > uint64_t(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, uint64_t(dtype_size(dt)), &out_bytes) ||
        out_bytes > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(fmt::format("size {} with stride {} is too large", shape_str(t.size), shape_str(t.stride)));
    if (numel == 0 ? uint64_t(t.offset) > uint64_t(s.numel) : last >= uint64_t(s.numel))
      bad(fmt::format("size {} stride {} at storage offset {} reaches element {} but storage '{}' holds {} elements",
                      shape_str(t.size), shape_str(t.stride), t.offset, numel == 0 ? uint64_t(t.offset) : last, s.key,
                      s.numel));
    TorchTensorEntry e;
    e.name = name;
    e.file = path;
    e.dtype = dt;
    e.shape = t.size;
    e.stride = t.stride;
    e.storage_offset = t.offset;
    e.storage = record;
    e.storage_type = s.type->name;
    e.contiguous = is_row_major(t.size, t.stride);
    e.nbytes = size_t(out_bytes);
    if (e.contiguous && r.method == 0 && s.type->conv == Conv::None)
      e.data = f->base + r.data_offset + uint64_t(t.offset) * s.type->elem_size;
    f->entries.emplace(name, std::move(e));
    f->located.emplace(name, File::Located{&r, s.type});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Index and directories

json parse_index_json(const std::string& text, const std::string& file) {
  struct Rejected {
    std::string why;
  };
  std::set<std::string> keys;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw Rejected{fmt::format("index nests deeper than {} levels", kMaxJsonDepth)};
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.insert(k).second) throw Rejected{fmt::format("index has duplicate key '{}'", k)};
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const Rejected& r) {
    open_fail(file, r.why);
  } catch (const json::exception& e) {
    open_fail(file, fmt::format("index is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) open_fail(file, fmt::format("index is not a JSON object (it is {})", j.type_name()));
  return j;
}

std::string resolve_directory(const std::string& dir) {
  for (const char* name : {"pytorch_model.bin.index.json", "pytorch_model.bin"}) {
    std::error_code ec;
    fs::path p = fs::path(dir) / name;
    if (fs::exists(p, ec)) return p.string();
  }
  open_fail(dir, "no PyTorch weights in directory (looked for pytorch_model.bin.index.json and pytorch_model.bin)");
}

// Element conversion for gathers: stored S → returned D.
template <class S, class D>
void gather(const uint8_t* storage, int64_t offset, const std::vector<int64_t>& size,
            const std::vector<int64_t>& stride, D* out) {
  const size_t nd = size.size();
  auto load = [&](int64_t index) {
    S v;
    std::memcpy(&v, storage + index * int64_t(sizeof(S)), sizeof(S));
    return D(v);
  };
  if (nd == 0) {
    out[0] = load(offset);
    return;
  }
  const int64_t inner = size[nd - 1], inner_stride = stride[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  int64_t base = offset, k = 0;
  for (;;) {
    for (int64_t j = 0; j < inner; ++j) out[k++] = load(base + j * inner_stride);
    // Next row: odometer over the outer dimensions.
    size_t d = nd - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < size[d]) {
        base += stride[d];
        break;
      }
      base -= (size[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
}

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F8_E4M3; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

TorchCheckpointReader TorchCheckpointReader::open(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) file = resolve_directory(path);
  TorchCheckpointReader r;
  r.path_ = file;
  if (!ends_with(file, ".json")) {
    auto f = std::make_shared<File>();
    open_torch_file(f.get(), file);
    for (const auto& [name, e] : f->entries) {
      r.entries_.emplace(name, e);
      r.owner_of_.emplace(name, f);
    }
    r.files_.push_back(std::move(f));
    return r;
  }

  // Sharded: {"metadata": {...}, "weight_map": {tensor: shard file relative to the index}}.
  std::ifstream in(file, std::ios::binary);
  if (!in) open_fail(file, fmt::format("cannot open: {}", errno_str(errno)));
  in.seekg(0, std::ios::end);
  std::streamoff len = in.tellg();
  in.seekg(0);
  if (len < 0 || uint64_t(len) > kMaxIndexBytes)
    open_fail(file, fmt::format("index is {} bytes (limit {})", int64_t(len), kMaxIndexBytes));
  std::string text(size_t(len), '\0');
  in.read(text.data(), len);
  if (!in) open_fail(file, "cannot read the index");
  json index = parse_index_json(text, file);
  if (!index.contains("weight_map")) open_fail(file, "missing 'weight_map'");
  const json& wm = index["weight_map"];
  if (!wm.is_object()) open_fail(file, fmt::format("'weight_map' must be an object of strings, got {}", wm.type_name()));
  std::map<std::string, std::string> weight_map;
  for (const auto& [k, v] : wm.items()) {
    if (!v.is_string()) open_fail(file, fmt::format("'weight_map' entry '{}' must be a string, got {}", k, v.type_name()));
    weight_map[k] = v.get<std::string>();
  }
  if (index.contains("metadata")) {
    const json& m = index["metadata"];
    if (!m.is_object()) open_fail(file, fmt::format("'metadata' must be an object, got {}", m.type_name()));
    for (const auto& [k, v] : m.items()) r.metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }

  fs::path dir = fs::path(file).parent_path();
  auto key_of = [](const std::string& shard) { return fs::path(shard).lexically_normal().string(); };
  std::map<std::string, std::shared_ptr<File>> shards;
  for (const auto& [name, shard] : weight_map) {
    if (shards.count(key_of(shard))) continue;
    fs::path rel(shard);
    bool escapes = shard.empty() || rel.is_absolute() ||
                   std::any_of(rel.begin(), rel.end(), [](const fs::path& c) { return c == ".."; });
    if (escapes)
      open_fail(file, fmt::format("tensor '{}': shard '{}' is not a file name inside {}", name, shard,
                                  dir.empty() ? "." : dir.string()));
    std::string shard_path = (dir / rel).string();
    if (!fs::exists(shard_path, ec))
      open_fail(file, fmt::format("tensor '{}': shard '{}' does not exist ({})", name, shard, shard_path));
    auto f = std::make_shared<File>();
    open_torch_file(f.get(), shard_path);
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
    r.files_.push_back(f);
  }
  return r;
}

bool TorchCheckpointReader::contains(const std::string& name) const { return entries_.count(name) != 0; }

const TorchTensorEntry& TorchCheckpointReader::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail("TorchCheckpointReader::entry", fmt::format("tensor '{}' not found in {}", name, path_));
  return it->second;
}

std::vector<std::string> TorchCheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

Tensor TorchCheckpointReader::tensor(const std::string& name) const {
  const char* fn = "TorchCheckpointReader::tensor";
  const TorchTensorEntry& e = entry(name);
  if (e.shape.size() > size_t(kMaxDims))
    fail(fn, fmt::format("{}: tensor '{}' has {} dimensions {}, at most {} are supported", e.file, name,
                         e.shape.size(), shape_str(e.shape), kMaxDims));
  const std::shared_ptr<File>& f = owner_of_.at(name);
  if (e.data != nullptr && reinterpret_cast<uintptr_t>(e.data) % dtype_size(e.dtype) == 0) {
    std::shared_ptr<void> owner = f;
    return Tensor::borrow(const_cast<void*>(e.data), e.dtype, e.shape, std::move(owner));
  }
  Tensor t = Tensor::empty(e.dtype, e.shape);
  if (t.numel() == 0) return t;
  const File::Located& loc = f->located.at(name);
  std::unique_ptr<uint8_t[]> inflated;
  const uint8_t* storage = f->base + loc.record->data_offset;
  if (loc.record->method == 8) {
    inflated = inflate_record(fn, *f, *loc.record);
    storage = inflated.get();
  }
  const int64_t off = e.storage_offset;
  switch (loc.type->conv) {
    case Conv::F64ToF32: gather<double, float>(storage, off, e.shape, e.stride, t.data<float>()); break;
    case Conv::I16ToI32: gather<int16_t, int32_t>(storage, off, e.shape, e.stride, t.data<int32_t>()); break;
    case Conv::I8ToI32: gather<int8_t, int32_t>(storage, off, e.shape, e.stride, t.data<int32_t>()); break;
    case Conv::None:
      switch (loc.type->elem_size) {
        case 1: gather<uint8_t, uint8_t>(storage, off, e.shape, e.stride, t.data<uint8_t>()); break;
        case 2: gather<uint16_t, uint16_t>(storage, off, e.shape, e.stride, t.data<uint16_t>()); break;
        case 4: gather<uint32_t, uint32_t>(storage, off, e.shape, e.stride, t.data<uint32_t>()); break;
        case 8: gather<uint64_t, uint64_t>(storage, off, e.shape, e.stride, t.data<uint64_t>()); break;
        default: BALEINE_ASSERT(false);
      }
      break;
  }
  return t;
}

Tensor TorchCheckpointReader::tensor_as(const std::string& name, DType out) const {
  const char* fn = "TorchCheckpointReader::tensor_as";
  const TorchTensorEntry& e = entry(name);
  if (out != DType::F32 && out != DType::BF16)
    fail(fn, fmt::format("tensor '{}': output dtype must be f32 or bf16, got {}", name, dtype_name(out)));
  if (!is_float(e.dtype))
    fail(fn, fmt::format("{}: tensor '{}' has dtype {} ({}), which is not a floating-point type", e.file, name,
                         dtype_name(e.dtype), e.storage_type));
  const std::string scale_name = name + "_scale_inv";
  if (e.dtype == DType::F8_E4M3 && contains(scale_name)) {
    const TorchTensorEntry& s = entry(scale_name);
    if (e.shape.size() != 2)
      fail(fn, fmt::format("{}: fp8 tensor '{}' with '{}' must be 2-D, got shape {}", e.file, name, scale_name,
                           shape_str(e.shape)));
    std::vector<int64_t> want{ceil_div(e.shape[0], 128), ceil_div(e.shape[1], 128)};
    if (s.shape != want || !is_float(s.dtype))
      fail(fn, fmt::format("{}: tensor '{}' has shape {} ({}), expected a floating-point {} for '{}' {}", s.file,
                           scale_name, shape_str(s.shape), dtype_name(s.dtype), shape_str(want), name,
                           shape_str(e.shape)));
    Tensor scale = tensor(scale_name);
    if (scale.dtype() != DType::F32) scale = scale.to_f32();
    return dequantize_fp8_blocks(tensor(name), scale, out, 128);
  }
  Tensor src = tensor(name);
  if (src.dtype() == out) {
    if (src.raw() != e.data) return src;  // already a private copy
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

}  // namespace baleine::io
