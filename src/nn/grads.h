// nn/grads.h — gradient buffers: one flat f32 arena holding every parameter's gradient, with a per-parameter
// view keyed by the parameter's storage slot. The flat arena is what a communicator reduces in one call and what
// ZeRO-1 shards; the views are what the layers' backward passes write into.
// defines: Gradients
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/layers.h"

namespace baleine::nn {

class Gradients {
 public:
  // Lays out a zeroed f32 gradient for every defined parameter the visitor reports (call with
  // model.for_each_param), in visiting order, each parameter once (tied tensors share one slot).
  template <class Model> void allocate(Model& model) {
    names_.clear();
    by_slot_.clear();
    std::vector<std::pair<const Tensor*, std::vector<int64_t>>> shapes;
    int64_t total = 0;
    model.for_each_param([&](Param& p) {
      if (!p.tensor->defined() || by_slot_.count(p.tensor)) return;
      by_slot_[p.tensor] = Entry{total, Tensor()};
      names_.emplace_back(p.name, p.tensor);
      shapes.emplace_back(p.tensor, p.shape);
      int64_t n = 1;
      for (int64_t s : p.shape) n *= s;
      total += n;
    });
    flat_ = Tensor::zeros(DType::F32, {total});
    for (auto& [slot, shape] : shapes) {
      Entry& e = by_slot_[slot];
      e.view = Tensor::borrow(flat_.f32() + e.offset, DType::F32, shape, nullptr);
    }
  }
  // f32 gradient of the parameter stored in `param` (throws if it has none).
  float* of(const Tensor& param);
  bool has(const Tensor& param) const { return by_slot_.count(&param) > 0; }
  void zero();
  // (name, slot) of every parameter with a gradient, in arena order.
  const std::vector<std::pair<std::string, const Tensor*>>& names() const { return names_; }
  const Tensor& tensor_of(const Tensor* slot) const { return by_slot_.at(slot).view; }
  // Where the parameter's gradient starts in the flat arena.
  int64_t offset_of(const Tensor* slot) const { return by_slot_.at(slot).offset; }
  float* flat() const { return flat_.f32(); }
  int64_t size() const { return flat_.defined() ? flat_.numel() : 0; }

 private:
  struct Entry {
    int64_t offset = 0;
    Tensor view;  // [param shape], a view into flat_
  };
  Tensor flat_;  // [size()]
  std::unordered_map<const Tensor*, Entry> by_slot_;
  std::vector<std::pair<std::string, const Tensor*>> names_;
};

}  // namespace baleine::nn
