#include "models/kv_cache.h"

#include <algorithm>

#include "core/check.h"

namespace baleine {

KvPool::KvPool(int64_t layers, int64_t row, int64_t block_size, int64_t max_blocks, ops::KvDType dtype)
    : layers_(layers), row_(row), block_size_(block_size), dtype_(dtype), row_bytes_(ops::kv_row_bytes(dtype, row)) {
  BALEINE_CHECK(layers >= 1 && row >= 1, "KV pool: layers ({}) and row ({}) must be positive", layers, row);
  BALEINE_CHECK(block_size >= 1 && max_blocks >= 1, "KV pool: block size ({}) and block count ({}) must be positive",
                block_size, max_blocks);
  BALEINE_CHECK(max_blocks < (int64_t(1) << 31), "KV pool: {} blocks are too many", max_blocks);
  refs_.assign(size_t(max_blocks), 0);
  storage_.resize(size_t(max_blocks));
  free_.reserve(size_t(max_blocks));
  for (int64_t b = max_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int32_t KvPool::allocate() {
  while (free_.empty()) {
    if (!reclaim_ || !reclaim_())
      BALEINE_FAIL("the KV cache is full ({} blocks of {} tokens in use)", max_blocks(), block_size_);
  }
  const int32_t b = free_.back();
  free_.pop_back();
  if (!storage_[size_t(b)]) storage_[size_t(b)] = std::make_unique<char[]>(size_t(layers_ * block_size_ * row_bytes_));
  refs_[size_t(b)] = 1;
  return b;
}

void KvPool::retain(int32_t b) {
  BALEINE_CHECK(b >= 0 && b < max_blocks() && refs_[size_t(b)] > 0, "KV pool: retain of free block {}", b);
  ++refs_[size_t(b)];
}

void KvPool::release(int32_t b) {
  BALEINE_CHECK(b >= 0 && b < max_blocks() && refs_[size_t(b)] > 0, "KV pool: release of free block {}", b);
  if (--refs_[size_t(b)] == 0) free_.push_back(b);
}

Sequence::Sequence(std::shared_ptr<KvPool> pool, int64_t capacity) : pool_(std::move(pool)), capacity_(capacity) {
  BALEINE_CHECK(pool_ != nullptr, "a sequence needs a KV pool");
  BALEINE_CHECK(capacity > 0, "sequence capacity must be positive, got {}", capacity);
}

Sequence::~Sequence() {
  for (int32_t b : blocks_) pool_->release(b);
}

void Sequence::reserve(int64_t n) {
  BALEINE_CHECK(n <= capacity_, "{} positions exceed the sequence capacity of {} (the context)", n, capacity_);
  while (int64_t(blocks_.size()) * pool_->block_size() < n) blocks_.push_back(pool_->allocate());
}

void Sequence::adopt_prefix(std::span<const int32_t> blocks) {
  BALEINE_CHECK(length_ == 0 && blocks_.empty(), "adopt_prefix needs an empty sequence");
  const int64_t n = int64_t(blocks.size()) * pool_->block_size();
  BALEINE_CHECK(n <= capacity_, "a cached prefix of {} tokens exceeds the capacity of {}", n, capacity_);
  for (int32_t b : blocks) {
    pool_->retain(b);
    blocks_.push_back(b);
  }
  length_ = n;
}

void Sequence::truncate(int64_t n) {
  BALEINE_CHECK(n >= 0 && n <= length_, "truncate to {} outside [0, {}]", n, length_);
  length_ = n;
}

}  // namespace baleine
