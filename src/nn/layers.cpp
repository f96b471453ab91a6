#include "nn/layers.h"

namespace baleine::nn {

ops::WeightRef weight_ref(const Tensor& w) {
  BALEINE_CHECK(w.defined() && w.ndim() == 2, "weight must be a defined 2-D tensor, got {}", w.shape_string());
  return ops::WeightRef{w.raw(), w.dtype(), w.dim(0), w.dim(1), 0};
}

void Linear::visit(const std::string& prefix, const ParamVisitor& v) {
  Param w{prefix + ".weight", {out, in}, ParamKind::Matrix, &weight, false};
  v(w);
  if (has_bias) {
    Param b{prefix + ".bias", {out}, ParamKind::Vector, &bias, false};
    v(b);
  }
}

void Linear::forward(float* y, const float* x, int64_t M, int64_t ldy, int64_t ldx) const {
  ops::linear(y, x, weight_ref(weight), has_bias ? bias.f32() : nullptr, M, ldy, ldx);
}

void RMSNorm::visit(const std::string& name, const ParamVisitor& v) {
  Param p{name, {dim}, ParamKind::Vector, &weight, false};
  v(p);
}

void RMSNorm::forward(float* y, const float* x, int64_t rows, int64_t ldy, int64_t ldx) const {
  ops::rmsnorm(y, x, weight.f32(), rows, dim, eps, ldy, ldx);
}

void LayerNorm::visit(const std::string& prefix, const ParamVisitor& v) {
  Param w{prefix + ".weight", {dim}, ParamKind::Vector, &weight, false};
  v(w);
  Param b{prefix + ".bias", {dim}, ParamKind::Vector, &bias, false};
  v(b);
}

void LayerNorm::forward(float* y, const float* x, int64_t rows, int64_t ldy, int64_t ldx) const {
  ops::layernorm(y, x, weight.f32(), bias.f32(), rows, dim, eps, ldy, ldx);
}

void Embedding::visit(const std::string& name, const ParamVisitor& v) {
  Param p{name, {vocab, dim}, ParamKind::Matrix, &weight, false};
  v(p);
}

void Embedding::forward(float* y, const int32_t* ids, int64_t n) const {
  ops::embedding_gather(y, weight_ref(weight), ids, n);
}

void SwiGLU::visit(const std::string& prefix, const ParamVisitor& v) {
  gate.visit(prefix + ".gate_proj", v);
  up.visit(prefix + ".up_proj", v);
  down.visit(prefix + ".down_proj", v);
}

void SwiGLU::forward(float* y, const float* x, int64_t M, Arena& arena) const {
  forward(y, x, M, arena.alloc<float>(size_t(2 * M * width)));
}

void SwiGLU::forward(float* y, const float* x, int64_t M, float* scratch) const {
  float* g = scratch;               // [M, width]
  float* u = scratch + M * width;   // [M, width]
  gate.forward(g, x, M);
  up.forward(u, x, M);
  ops::swiglu(g, g, u, M * width);
  down.forward(y, g, M);
}

}  // namespace baleine::nn

#include <cstring>

#include "nn/grads.h"

namespace baleine::nn {

float* Gradients::of(const Tensor& param) {
  auto it = by_slot_.find(&param);
  BALEINE_CHECK(it != by_slot_.end(), "no gradient buffer for this parameter (call allocate first)");
  return it->second.view.f32();
}

void Gradients::zero() {
  if (flat_.defined()) std::memset(flat_.raw(), 0, flat_.nbytes());
}

}  // namespace baleine::nn
