// core/tensor.h — owned tensors and non-owning views (PyTorch dimension order, row-major).
// defines: TensorView, Tensor, AlignedBuffer, DequantizeFn, set_dequantize_fn
//
// A TensorView is pointer + dtype + shape + strides (in elements), nothing more; kernels take raw pointers
// and sizes, models use views to name things. Tensor owns a 64-byte aligned buffer (or shares a mapping).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace baleine {

constexpr int kMaxDims = 4;
constexpr size_t kAlignment = 64;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};  // in elements

  static TensorView contiguous(void* data, DType dtype, std::span<const int64_t> shape);
  int64_t numel() const;
  bool is_contiguous() const;
  std::vector<int64_t> shape_vector() const { return {shape.begin(), shape.begin() + ndim}; }
  std::string shape_string() const;  // "[2, 3]"
  template <class T> T* as() const { return static_cast<T*>(data); }
};

// Deleter-aware owner for aligned memory or for a shared mmap region (keeps the mapping alive).
class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(DType dtype, std::initializer_list<int64_t> shape) { return empty(dtype, std::vector<int64_t>(shape)); }
  static Tensor empty(DType dtype, const std::vector<int64_t>& shape);
  static Tensor zeros(DType dtype, const std::vector<int64_t>& shape);
  // Wraps external memory; `owner` keeps it alive (e.g. a memory-mapped file).
  static Tensor borrow(void* data, DType dtype, const std::vector<int64_t>& shape, std::shared_ptr<void> owner);

  const TensorView& view() const { return view_; }
  DType dtype() const { return view_.dtype; }
  int ndim() const { return view_.ndim; }
  int64_t dim(int i) const { return view_.shape[i < 0 ? i + view_.ndim : i]; }
  int64_t numel() const { return view_.numel(); }
  size_t nbytes() const { return dtype_nbytes(view_.dtype, numel()); }
  bool defined() const { return view_.data != nullptr || owner_ != nullptr; }
  std::vector<int64_t> shape() const { return view_.shape_vector(); }
  std::string shape_string() const { return view_.shape_string(); }

  void* raw() const { return view_.data; }
  float* f32() const { BALEINE_CHECK(view_.dtype == DType::F32, "tensor is {}, not f32", dtype_name(view_.dtype)); return static_cast<float*>(view_.data); }
  template <class T> T* data() const { return static_cast<T*>(view_.data); }

  // Same storage, new contiguous shape with equal numel.
  Tensor reshape(const std::vector<int64_t>& shape) const;
  // Returns an f32 copy (converting bf16/f16/fp8, and dequantising block types through the installed
  // DequantizeFn).
  Tensor to_f32() const;

 private:
  TensorView view_;
  std::shared_ptr<void> owner_;
};

// Block-quantised dtypes (Q8_0, Q4_K, ...) are decoded by baleine_ops (ops/quant.h), which core cannot depend
// on; ops installs its dequantiser here when it is linked in, so Tensor::to_f32 works for every dtype.
// y[n] <- the n values stored in `blocks` (n a multiple of the block size).
using DequantizeFn = void (*)(DType type, const void* blocks, float* y, int64_t n);
void set_dequantize_fn(DequantizeFn fn);

}  // namespace baleine
