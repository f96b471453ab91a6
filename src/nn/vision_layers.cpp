#include "nn/vision_layers.h"

#include <algorithm>
#include <cstring>

namespace baleine::nn {

void Conv2d::visit(const std::string& prefix, const ParamVisitor& v) {
  Param w{prefix + ".weight", {cout, cin, k, k}, ParamKind::Matrix, &weight, false};
  v(w);
  Param b{prefix + ".bias", {cout}, ParamKind::Vector, &bias, false};
  v(b);
}

void Conv2d::prepare() {
  BALEINE_CHECK(weight.defined() && weight.ndim() == 4, "conv weight must be a 4-D tensor, got {}", weight.shape_string());
  const Tensor src = weight.dtype() == DType::F32 ? weight : weight.to_f32();
  const float* s = src.f32();
  packed = Tensor::empty(DType::F32, {cout, k, k, cin});
  float* d = packed.f32();
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t y = 0; y < k; ++y)
        for (int64_t x = 0; x < k; ++x) d[((o * k + y) * k + x) * cin + c] = s[((o * cin + c) * k + y) * k + x];
}

void Conv2d::forward(float* out, const float* x, int64_t N, int64_t H, int64_t W) const {
  BALEINE_CHECK(packed.defined(), "Conv2d::forward before prepare()");
  ops::Conv2dShape s{N, H, W, cin, cout, k, k / 2};
  ops::conv2d(out, x, packed.f32(), bias.defined() ? bias.f32() : nullptr, s);
}

void GroupNorm::visit(const std::string& prefix, const ParamVisitor& v) {
  Param w{prefix + ".weight", {channels}, ParamKind::Vector, &weight, false};
  v(w);
  Param b{prefix + ".bias", {channels}, ParamKind::Vector, &bias, false};
  v(b);
}

void GroupNorm::forward(float* y, const float* x, int64_t N, int64_t HW) const {
  ops::group_norm(y, x, N, HW, channels, groups, weight.f32(), bias.f32(), eps);
}

void GeluMlp::init_sequential(int64_t in, int64_t width, int64_t depth) {
  BALEINE_CHECK(depth >= 1, "an MLP needs depth >= 1, got {}", depth);
  layers.assign(size_t(depth), Linear{});
  names.clear();
  for (int64_t i = 0; i < depth; ++i) {
    layers[size_t(i)].init(i == 0 ? in : width, width, true);
    names.push_back("layers." + std::to_string(2 * i));  // GELUs sit at the odd indices of the Sequential
  }
}

void GeluMlp::init_named(int64_t in, int64_t mid, int64_t out, const std::string& first, const std::string& second) {
  layers.assign(2, Linear{});
  layers[0].init(in, mid, true);
  layers[1].init(mid, out, true);
  names = {first, second};
}

void GeluMlp::visit(const std::string& prefix, const ParamVisitor& v) {
  for (size_t i = 0; i < layers.size(); ++i) layers[i].visit(prefix + "." + names[i], v);
}

int64_t GeluMlp::max_width() const {
  int64_t w = 0;
  for (const Linear& l : layers) w = std::max({w, l.in, l.out});
  return w;
}

void GeluMlp::forward(float* y, const float* x, int64_t M, Arena& arena) const {
  const int64_t W = max_width();
  float* a = arena.alloc<float>(size_t(M * W));
  float* b = arena.alloc<float>(size_t(M * W));
  const float* cur = x;
  for (size_t i = 0; i < layers.size(); ++i) {
    const bool last = i + 1 == layers.size();
    float* dst = last ? y : (cur == a ? b : a);
    layers[i].forward(dst, cur, M);
    if (!last) ops::gelu(dst, dst, M * layers[i].out);
    cur = dst;
  }
}

}  // namespace baleine::nn
