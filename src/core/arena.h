// core/arena.h — bump allocator for activations: one big aligned block, reset per forward pass.
// defines: Arena
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace baleine {

class Arena {
 public:
  explicit Arena(size_t initial_bytes = 1 << 20);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Returns 64-byte aligned, uninitialised storage for n elements of T, valid until reset().
  template <class T> T* alloc(size_t n) { return static_cast<T*>(alloc_bytes(n * sizeof(T))); }
  void* alloc_bytes(size_t bytes);
  void reset();                       // frees everything allocated since construction
  size_t used() const { return used_; }
  size_t peak() const { return peak_; }

 private:
  struct Block { std::byte* data; size_t size; size_t offset; };
  std::vector<Block> blocks_;
  size_t used_ = 0, peak_ = 0, next_size_;
};

}  // namespace baleine
