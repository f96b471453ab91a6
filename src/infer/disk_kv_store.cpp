#include "infer/disk_kv_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"

namespace baleine {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'B', 'L', 'N', 'K', 'V', '0', '1', '\0'};

struct Header {
  char magic[8];
  uint64_t model_key, layout, key, parent;
  uint64_t tokens, payload_bytes;
  uint64_t checksum;  // FNV-1a over the tokens and the payload
};

uint64_t fnv(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w, n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r, n -= size_t(r);
  }
  return true;
}

}  // namespace

DiskKvStore::DiskKvStore(DiskCacheOptions options, const KvPool& layout) : opt_(std::move(options)) {
  BALEINE_CHECK(!opt_.dir.empty(), "the disk cache needs a directory");
  BALEINE_CHECK(opt_.max_bytes > 0, "the disk cache's size limit must be positive, got {}", opt_.max_bytes);
  std::error_code ec;
  fs::create_directories(opt_.dir, ec);
  BALEINE_CHECK(fs::is_directory(opt_.dir), "{}: cannot create the disk cache directory{}", opt_.dir,
                ec ? ": " + ec.message() : "");
  const int64_t dims[5] = {layout.layers(), layout.row(), layout.block_size(), int64_t(layout.dtype()), layout.row_bytes()};
  layout_ = fnv(dims, sizeof dims);
  block_bytes_ = layout.layers() * layout.block_size() * layout.row_bytes();
  file_bytes_ = int64_t(sizeof(Header)) + layout.block_size() * 4 + block_bytes_;
  rescan();
  trim();
}

fs::path DiskKvStore::path_of(uint64_t key) const {
  return fs::path(opt_.dir) / fmt::format("{:016x}-{:016x}-{:016x}.kv", opt_.model_key, layout_, key);
}

void DiskKvStore::rescan() {
  bytes_ = 0, files_ = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (auto it = fs::directory_iterator(opt_.dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code e2;
    if (name.starts_with(".tmp.")) {  // a writer killed mid-file: its temporary is garbage after a minute
      if (now - fs::last_write_time(it->path(), e2) > std::chrono::minutes(1)) fs::remove(it->path(), e2);
      continue;
    }
    if (!name.ends_with(".kv")) continue;
    bytes_ += int64_t(fs::file_size(it->path(), e2));
    ++files_;
  }
}

void DiskKvStore::trim() {
  if (bytes_ <= opt_.max_bytes) return;
  rescan();  // other processes may have written or removed files
  if (bytes_ <= opt_.max_bytes) return;
  std::vector<std::pair<fs::file_time_type, fs::path>> all;
  std::error_code ec;
  for (auto it = fs::directory_iterator(opt_.dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().extension() == ".kv") {
      std::error_code e2;
      all.emplace_back(fs::last_write_time(it->path(), e2), it->path());
    }
  std::sort(all.begin(), all.end());
  const int64_t target = opt_.max_bytes - opt_.max_bytes / 10;  // leave some room, so trims are rare
  for (const auto& [t, p] : all) {
    if (bytes_ <= target) break;
    std::error_code e2;
    const int64_t size = int64_t(fs::file_size(p, e2));
    if (fs::remove(p, e2)) bytes_ -= size, --files_;
  }
}

void DiskKvStore::put(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, KvPool& pool, int32_t block) {
  const fs::path path = path_of(key);
  std::error_code ec;
  if (fs::exists(path, ec)) return;
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.model_key = opt_.model_key, h.layout = layout_, h.key = key, h.parent = parent;
  h.tokens = tokens.size(), h.payload_bytes = uint64_t(block_bytes_);
  const int64_t layer_bytes = pool.block_size() * pool.row_bytes();
  uint64_t sum = fnv(tokens.data(), tokens.size_bytes());
  for (int64_t l = 0; l < pool.layers(); ++l) sum = fnv(pool.data(block, l), size_t(layer_bytes), sum);
  h.checksum = sum;
  const fs::path tmp = fs::path(opt_.dir) / fmt::format(".tmp.{}.{:016x}", ::getpid(), key);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  bool ok = write_all(fd, &h, sizeof h) && write_all(fd, tokens.data(), tokens.size_bytes());
  for (int64_t l = 0; ok && l < pool.layers(); ++l) ok = write_all(fd, pool.data(block, l), size_t(layer_bytes));
  ok = ::close(fd) == 0 && ok;
  // The rename makes the file appear whole or not at all; no fsync: a cache may lose its newest files to a
  // power cut, and the checksum rejects anything torn.
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    fs::remove(tmp, ec);
    return;
  }
  ++writes_, ++files_;
  bytes_ += file_bytes_;
  trim();
}

bool DiskKvStore::get(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, KvPool& pool, int32_t block) {
  const fs::path path = path_of(key);
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    ++misses_;
    return false;
  }
  Header h{};
  std::vector<int32_t> toks(tokens.size());
  bool ok = read_all(fd, &h, sizeof h) && std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.model_key == opt_.model_key &&
            h.layout == layout_ && h.key == key && h.tokens == tokens.size() && h.payload_bytes == uint64_t(block_bytes_) &&
            read_all(fd, toks.data(), toks.size() * 4);
  const bool same_prefix = ok && h.parent == parent && std::equal(toks.begin(), toks.end(), tokens.begin());
  const int64_t layer_bytes = pool.block_size() * pool.row_bytes();
  uint64_t sum = fnv(toks.data(), toks.size() * 4);
  for (int64_t l = 0; ok && same_prefix && l < pool.layers(); ++l) {
    ok = read_all(fd, pool.data(block, l), size_t(layer_bytes));
    if (ok) sum = fnv(pool.data(block, l), size_t(layer_bytes), sum);
  }
  char extra;
  if (ok && same_prefix) ok = ::read(fd, &extra, 1) == 0;  // nothing after the payload
  ::close(fd);
  if (ok && same_prefix && sum == h.checksum) {
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used
    ++hits_;
    return true;
  }
  if (!ok || (same_prefix && sum != h.checksum)) {  // damaged: never read again
    std::error_code ec;
    if (fs::remove(path, ec)) bytes_ -= file_bytes_, --files_;
    ++rejected_;
  }
  ++misses_;  // a key collision (another prefix) leaves the file alone
  return false;
}

}  // namespace baleine
