#include "core/arena.h"

#include <cstdlib>

#include "core/check.h"
#include "core/tensor.h"

namespace baleine {

Arena::Arena(size_t initial_bytes) : next_size_(initial_bytes < 4096 ? 4096 : initial_bytes) {}

Arena::~Arena() {
  for (auto& b : blocks_) std::free(b.data);
}

void* Arena::alloc_bytes(size_t bytes) {
  size_t need = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (need == 0) need = kAlignment;
  if (blocks_.empty() || blocks_.back().offset + need > blocks_.back().size) {
    // Grow geometrically so a steady-state forward pass settles into one or two blocks.
    size_t size = next_size_;
    while (size < need) size *= 2;
    auto* p = static_cast<std::byte*>(std::aligned_alloc(kAlignment, size));
    BALEINE_CHECK(p != nullptr, "out of memory: arena block of {} bytes", size);
    blocks_.push_back({p, size, 0});
    next_size_ = size * 2;
  }
  Block& b = blocks_.back();
  void* out = b.data + b.offset;
  b.offset += need;
  used_ += need;
  if (used_ > peak_) peak_ = used_;
  return out;
}

void Arena::reset() {
  // Keep only the largest block so the next pass reuses it without allocating.
  if (blocks_.size() > 1) {
    size_t total = 0;
    for (auto& b : blocks_) { total += b.size; std::free(b.data); }
    blocks_.clear();
    auto* p = static_cast<std::byte*>(std::aligned_alloc(kAlignment, total));
    BALEINE_CHECK(p != nullptr, "out of memory: arena block of {} bytes", total);
    blocks_.push_back({p, total, 0});
  } else if (!blocks_.empty()) {
    blocks_[0].offset = 0;
  }
  used_ = 0;
}

}  // namespace baleine
