// infer/prefix_cache.h — reuse of KV blocks across requests that share a prompt prefix.
// A full block of tokens is keyed by a hash chain: key_i = H(key_{i-1}, tokens of block i), so a key names the
// whole prefix up to and including its block. The cache holds one reference on each block it knows; a request
// adopts the longest chain of cached blocks matching its prompt. When the pool runs out of free blocks, the
// least recently used block that only the cache still references is evicted (deepest blocks of a chain first).
// With a disk tier (DiskKvStore) every block the cache takes in is also written to disk, and a lookup whose chain
// leaves memory continues on disk: those blocks are read back into the pool.
// defines: PrefixCache
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "infer/disk_kv_store.h"
#include "models/kv_cache.h"

namespace baleine {

class PrefixCache {
 public:
  // Installs itself as `pool`'s reclaim hook.
  explicit PrefixCache(std::shared_ptr<KvPool> pool, DiskCacheOptions disk = {});
  ~PrefixCache();  // releases every block it holds
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // Blocks holding the longest cached prefix of `tokens` that is at most `max_tokens` long (whole blocks only),
  // in order; not retained (Sequence::adopt_prefix does that). Marks them recently used.
  std::vector<int32_t> lookup(std::span<const int32_t> tokens, int64_t max_tokens);
  // Offers the full blocks of a sequence: blocks[i] holds tokens [i·bs, (i+1)·bs). Blocks whose key is new are
  // retained by the cache.
  void insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks);
  // Evicts the least recently used block nobody else references; false when there is none.
  bool evict_one();

  int64_t blocks() const { return int64_t(entries_.size()); }
  uint64_t hits() const { return hits_; }      // blocks found by lookup
  uint64_t misses() const { return misses_; }  // lookups that stopped at a block not in the cache
  uint64_t evictions() const { return evictions_; }
  const DiskKvStore* disk() const { return disk_.get(); }  // null without a disk tier

 private:
  struct Entry {
    uint64_t parent = 0;           // key of the previous block (0 for the first)
    std::vector<int32_t> tokens;   // this block's tokens (checked on lookup: a hash collision is never a hit)
    int32_t block = -1;
    uint64_t tick = 0;             // last use
  };
  uint64_t key(uint64_t parent, std::span<const int32_t> tokens) const;
  void touch(uint64_t k, Entry& e);

  std::shared_ptr<KvPool> pool_;
  std::unique_ptr<DiskKvStore> disk_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::map<uint64_t, uint64_t> lru_;  // tick -> key
  uint64_t clock_ = 0, hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace baleine
