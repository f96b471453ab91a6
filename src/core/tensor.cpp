#include "core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <fmt/ranges.h>

namespace baleine {

TensorView TensorView::contiguous(void* data, DType dtype, std::span<const int64_t> shape) {
  BALEINE_CHECK(shape.size() <= size_t(kMaxDims), "at most {} dimensions, got {}", kMaxDims, shape.size());
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.ndim = int(shape.size());
  int64_t s = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    BALEINE_CHECK(shape[i] >= 0, "negative dimension {}", shape[i]);
    v.shape[i] = shape[i];
    v.stride[i] = s;
    s *= shape[i];
  }
  return v;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && stride[i] != s) return false;
    s *= shape[i];
  }
  return true;
}

std::string TensorView::shape_string() const {
  return fmt::format("[{}]", fmt::join(shape.begin(), shape.begin() + ndim, ", "));
}

Tensor Tensor::empty(DType dtype, const std::vector<int64_t>& shape) {
  Tensor t;
  t.view_ = TensorView::contiguous(nullptr, dtype, shape);
  if (dtype_is_quantized(dtype))
    BALEINE_CHECK(t.view_.ndim >= 1 && t.view_.shape[size_t(t.view_.ndim - 1)] % dtype_block_elems(dtype) == 0,
                  "a {} tensor needs rows that are a multiple of {} values, got {}", dtype_name(dtype),
                  dtype_block_elems(dtype), t.view_.shape_string());
  size_t bytes = dtype_nbytes(dtype, t.view_.numel());
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  BALEINE_CHECK(p != nullptr, "out of memory allocating {} bytes for a {} tensor", bytes, t.view_.shape_string());
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.view_.data = p;
  return t;
}

Tensor Tensor::zeros(DType dtype, const std::vector<int64_t>& shape) {
  Tensor t = empty(dtype, shape);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::borrow(void* data, DType dtype, const std::vector<int64_t>& shape, std::shared_ptr<void> owner) {
  Tensor t;
  t.view_ = TensorView::contiguous(data, dtype, shape);
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::reshape(const std::vector<int64_t>& shape) const {
  Tensor t = *this;
  t.view_ = TensorView::contiguous(view_.data, view_.dtype, shape);
  BALEINE_CHECK(t.view_.numel() == view_.numel(), "cannot reshape {} to {}", view_.shape_string(), t.view_.shape_string());
  return t;
}

namespace {
std::atomic<DequantizeFn>& dequantize_fn() {
  static std::atomic<DequantizeFn> fn{nullptr};
  return fn;
}
}  // namespace

void set_dequantize_fn(DequantizeFn fn) { dequantize_fn().store(fn); }

Tensor Tensor::to_f32() const {
  Tensor out = empty(DType::F32, shape());
  float* o = out.f32();
  int64_t n = numel();
  switch (dtype()) {
    case DType::F32: std::memcpy(o, raw(), size_t(n) * 4); break;
    case DType::BF16: for (int64_t i = 0; i < n; ++i) o[i] = bf16_to_f32(data<uint16_t>()[i]); break;
    case DType::F16: for (int64_t i = 0; i < n; ++i) o[i] = f16_to_f32(data<uint16_t>()[i]); break;
    case DType::F8_E4M3: for (int64_t i = 0; i < n; ++i) o[i] = fp8_e4m3_to_f32(data<uint8_t>()[i]); break;
    default: {
      const DequantizeFn fn = dequantize_fn().load();
      BALEINE_CHECK(dtype_is_quantized(dtype()) && fn != nullptr, "cannot convert {} to f32", dtype_name(dtype()));
      fn(dtype(), raw(), o, n);
    }
  }
  return out;
}

}  // namespace baleine
