// nn/grads.h — gradient buffers, one f32 tensor per parameter, keyed by the parameter's storage slot.
// defines: Gradients
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/layers.h"

namespace baleine::nn {

class Gradients {
 public:
  // Allocates a zeroed f32 gradient for every parameter the visitor reports (call with model.for_each_param).
  template <class Model> void allocate(Model& model) {
    names_.clear();
    model.for_each_param([&](Param& p) {
      if (!p.tensor->defined() || by_slot_.count(p.tensor)) return;
      by_slot_[p.tensor] = Tensor::zeros(DType::F32, p.shape);
      names_.emplace_back(p.name, p.tensor);
    });
  }
  // f32 gradient of the parameter stored in `param` (throws if it has none).
  float* of(const Tensor& param);
  bool has(const Tensor& param) const { return by_slot_.count(&param) > 0; }
  void zero();
  const std::vector<std::pair<std::string, const Tensor*>>& names() const { return names_; }
  const Tensor& tensor_of(const Tensor* slot) const { return by_slot_.at(slot); }

 private:
  std::unordered_map<const Tensor*, Tensor> by_slot_;
  std::vector<std::pair<std::string, const Tensor*>> names_;
};

}  // namespace baleine::nn
