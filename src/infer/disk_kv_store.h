// infer/disk_kv_store.h — the prefix cache's disk tier (DeepSeek's "context caching on disk"): one file per KV
// block, named by the block's prefix key, so a repeated prompt prefix hits after a restart and across server
// processes that share the directory. A file holds a header (model key, pool layout, the key, its parent, a
// checksum), the block's tokens and every layer's rows; it is written to a temporary name and renamed, so a
// process killed mid-write leaves no file a reader accepts. The directory is bounded: past max_bytes the least
// recently used files (mtime, refreshed on every hit) are removed.
// defines: DiskCacheOptions, DiskKvStore
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "models/kv_cache.h"

namespace baleine {

struct DiskCacheOptions {
  std::string dir;                  // empty: no disk tier
  int64_t max_bytes = int64_t(1) << 30;
  uint64_t model_key = 0;           // the weights' identity: blocks of another model never match
};

class DiskKvStore {
 public:
  DiskKvStore(DiskCacheOptions options, const KvPool& layout);

  // Writes `block` of `pool` under `key` unless a file for it exists; never throws (a full disk only loses the
  // disk copy). Then trims the directory to max_bytes.
  void put(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, KvPool& pool, int32_t block);
  // Fills `block` of `pool` from the file of `key` if it holds exactly this (model, layout, parent, tokens) and
  // its checksum is right; a damaged file is removed. Refreshes the file's time on a hit.
  bool get(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, KvPool& pool, int32_t block);

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  uint64_t writes() const { return writes_; }
  uint64_t rejected() const { return rejected_; }  // files found but damaged or of another layout
  int64_t bytes() const { return bytes_; }          // this directory's size as last seen
  int64_t files() const { return files_; }

 private:
  std::filesystem::path path_of(uint64_t key) const;
  void rescan();
  void trim();

  DiskCacheOptions opt_;
  uint64_t layout_ = 0;
  int64_t block_bytes_ = 0, file_bytes_ = 0;
  int64_t bytes_ = 0, files_ = 0;
  uint64_t hits_ = 0, misses_ = 0, writes_ = 0, rejected_ = 0;
};

}  // namespace baleine
