// models/kv_cache.h — the paged KV cache: fixed-size blocks of token rows from one pool shared by many
// sequences, each sequence holding a block table. MLA stores one latent row per token and layer
// (kv_lora_rank + rope dims: c^KV ‖ k_pe); dense GQA models store [k ‖ v] (2·G·D). Blocks are reference
// counted so a prefix cache and several sequences can share the blocks of a common prompt prefix.
// defines: KvPool, Sequence
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "ops/ops.h"

namespace baleine {

class KvPool {
 public:
  // `layers` layers of `row` values per token, stored as `dtype` (f32, bf16, int8 with per-32 scales); at most
  // `max_blocks` blocks of `block_size` tokens. Block memory is allocated when a block is first used.
  KvPool(int64_t layers, int64_t row, int64_t block_size, int64_t max_blocks, ops::KvDType dtype = ops::KvDType::F32);

  int64_t layers() const { return layers_; }
  int64_t row() const { return row_; }
  int64_t block_size() const { return block_size_; }
  ops::KvDType dtype() const { return dtype_; }
  int64_t row_bytes() const { return row_bytes_; }
  int64_t max_blocks() const { return int64_t(refs_.size()); }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  int64_t used_blocks() const { return max_blocks() - free_blocks(); }

  // A free block with reference count 1. When none is free, calls the reclaim hook (a prefix cache evicting its
  // least recently used block) until one is; throws baleine::Error when nothing can be reclaimed.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);  // at count 0 the block is free again
  int32_t refcount(int32_t block) const { return refs_[size_t(block)]; }
  // Frees at least one block and returns true, or returns false.
  void set_reclaim(std::function<bool()> reclaim) { reclaim_ = std::move(reclaim); }

  // Rows of `layer` in `block`: block_size rows of row_bytes() bytes.
  char* data(int32_t block, int64_t layer) { return storage_[size_t(block)].get() + layer * block_size_ * row_bytes_; }

 private:
  int64_t layers_, row_, block_size_;
  ops::KvDType dtype_;
  int64_t row_bytes_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // LIFO: recently freed blocks are warm in cache
  std::vector<std::unique_ptr<char[]>> storage_;
  std::function<bool()> reclaim_;
};

// Per-sequence state: its block table in a pool and how many positions it holds. Created by the model.
class Sequence {
 public:
  Sequence(std::shared_ptr<KvPool> pool, int64_t capacity);
  virtual ~Sequence();  // releases its blocks
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  KvPool& pool() const { return *pool_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }

  // Makes sure positions [0, n) have blocks (allocating from the pool; throws when it is exhausted).
  void reserve(int64_t n);
  // Starts an empty sequence with `blocks` (full blocks of a cached prefix, retained): length becomes
  // blocks.size() · block_size.
  void adopt_prefix(std::span<const int32_t> blocks);
  // Forgets positions >= n (speculative decoding rolls back rejected drafts); blocks stay reserved.
  void truncate(int64_t n);
  // Stores / loads the row of `layer` at position `pos` (which must have a block), converting from / to f32.
  void write_row(int64_t layer, int64_t pos, const float* src) {
    ops::kv_encode_row(pool_->dtype(), src, pool_->row(), row_data(layer, pos));
  }
  void read_row(int64_t layer, int64_t pos, float* dst) const {
    ops::kv_decode_row(pool_->dtype(), row_data(layer, pos), pool_->row(), dst);
  }
  // Block base pointers of `layer`, in position order (for ops::PagedKv).
  void layer_blocks(int64_t layer, std::vector<const void*>& out) const {
    out.clear();
    for (int32_t b : blocks_) out.push_back(pool_->data(b, layer));
  }
  // Advances the length after a forward pass wrote rows [length, length + n).
  void advance(int64_t n) { length_ += n; }

 protected:
  char* row_data(int64_t layer, int64_t pos) const {
    return pool_->data(blocks_[size_t(pos / pool_->block_size())], layer) + (pos % pool_->block_size()) * pool_->row_bytes();
  }
  std::shared_ptr<KvPool> pool_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0, capacity_ = 0;
};

}  // namespace baleine
