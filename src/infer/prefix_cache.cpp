#include "infer/prefix_cache.h"

#include <algorithm>

#include "core/check.h"

namespace baleine {

namespace {
uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 step over h ^ v
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

PrefixCache::PrefixCache(std::shared_ptr<KvPool> pool, DiskCacheOptions disk) : pool_(std::move(pool)) {
  BALEINE_CHECK(pool_ != nullptr, "a prefix cache needs a KV pool");
  if (!disk.dir.empty()) disk_ = std::make_unique<DiskKvStore>(std::move(disk), *pool_);
  pool_->set_reclaim([this] { return evict_one(); });
}

PrefixCache::~PrefixCache() {
  pool_->set_reclaim(nullptr);
  for (auto& [k, e] : entries_) pool_->release(e.block);
}

uint64_t PrefixCache::key(uint64_t parent, std::span<const int32_t> tokens) const {
  uint64_t h = mix(parent, 0x62616c65696e65ull);  // "baleine"
  for (int32_t t : tokens) h = mix(h, uint64_t(uint32_t(t)));
  return h == 0 ? 1 : h;
}

void PrefixCache::touch(uint64_t k, Entry& e) {
  if (e.tick) lru_.erase(e.tick);
  e.tick = ++clock_;
  lru_[e.tick] = k;
}

std::vector<int32_t> PrefixCache::lookup(std::span<const int32_t> tokens, int64_t max_tokens) {
  const int64_t bs = pool_->block_size();
  const int64_t n_blocks = std::min<int64_t>(int64_t(tokens.size()), max_tokens) / bs;
  std::vector<int32_t> out;
  std::vector<uint64_t> keys;
  uint64_t parent = 0;
  for (int64_t b = 0; b < n_blocks; ++b) {
    std::span<const int32_t> blk = tokens.subspan(size_t(b * bs), size_t(bs));
    const uint64_t k = key(parent, blk);
    auto it = entries_.find(k);
    if (it == entries_.end() && disk_) {
      // Not in memory: continue on disk. The chain found so far is held meanwhile, so the allocation's reclaim
      // cannot evict it.
      for (int32_t held : out) pool_->retain(held);
      int32_t fresh = -1;
      try {
        fresh = pool_->allocate();
      } catch (const Error&) {
        fresh = -1;  // the pool is full of running sequences: stop at what memory had
      }
      for (int32_t held : out) pool_->release(held);
      if (fresh >= 0 && disk_->get(k, parent, blk, *pool_, fresh)) {
        Entry e;
        e.parent = parent;
        e.tokens.assign(blk.begin(), blk.end());
        e.block = fresh;  // the cache keeps allocate()'s reference
        it = entries_.emplace(k, std::move(e)).first;
      } else if (fresh >= 0) {
        pool_->release(fresh);
      }
    }
    if (it == entries_.end() || it->second.parent != parent || !std::equal(blk.begin(), blk.end(), it->second.tokens.begin())) {
      ++misses_;
      break;
    }
    out.push_back(it->second.block);
    keys.push_back(k);
    parent = k;
  }
  hits_ += out.size();
  // Deepest first, so the root of a chain is the most recently used and is evicted last.
  for (size_t i = keys.size(); i-- > 0;) touch(keys[i], entries_[keys[i]]);
  return out;
}

void PrefixCache::insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks) {
  const int64_t bs = pool_->block_size();
  const int64_t n_blocks = std::min<int64_t>(int64_t(tokens.size()) / bs, int64_t(blocks.size()));
  uint64_t parent = 0;
  std::vector<uint64_t> keys;
  for (int64_t b = 0; b < n_blocks; ++b) {
    std::span<const int32_t> blk = tokens.subspan(size_t(b * bs), size_t(bs));
    const uint64_t k = key(parent, blk);
    auto it = entries_.find(k);
    if (it == entries_.end()) {
      pool_->retain(blocks[size_t(b)]);
      Entry e;
      e.parent = parent;
      e.tokens.assign(blk.begin(), blk.end());
      e.block = blocks[size_t(b)];
      entries_.emplace(k, std::move(e));
      if (disk_) disk_->put(k, parent, blk, *pool_, blocks[size_t(b)]);
    } else if (it->second.parent != parent || !std::equal(blk.begin(), blk.end(), it->second.tokens.begin())) {
      break;  // a colliding key: keep the cached chain, stop here
    }
    keys.push_back(k);
    parent = k;
  }
  for (size_t i = keys.size(); i-- > 0;) touch(keys[i], entries_[keys[i]]);
}

bool PrefixCache::evict_one() {
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    auto e = entries_.find(it->second);
    if (pool_->refcount(e->second.block) != 1) continue;  // a running sequence still uses it
    pool_->release(e->second.block);
    entries_.erase(e);
    lru_.erase(it);
    ++evictions_;
    return true;
  }
  return false;
}

}  // namespace baleine
