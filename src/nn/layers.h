// nn/layers.h — the building blocks shared by every model: parameters + forward (backward lands next to
// each forward when training arrives). Layers own no activations: callers pass buffers (often from an Arena).
// defines: Param, ParamKind, ParamVisitor, Linear, RMSNorm, LayerNorm, Embedding, SwiGLU
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace baleine::nn {

// How a loader may store a parameter: matrices keep their checkpoint dtype (f32/bf16/f16; fp8 is dequantised),
// vectors (norm weights, biases, router bias) are always f32.
enum class ParamKind { Matrix, Vector };

// One named parameter slot; `for_each_param` visitors (loading, saving, zero-grad, optimisers, quantisation)
// receive these.
struct Param {
  std::string name;              // Hugging Face tensor name
  std::vector<int64_t> shape;    // expected shape
  ParamKind kind = ParamKind::Matrix;
  Tensor* tensor = nullptr;      // where the value lives
  bool optional = false;         // may be absent from a checkpoint (then left undefined)
};
using ParamVisitor = std::function<void(Param&)>;

ops::WeightRef weight_ref(const Tensor& w);  // [N, K] matrix of any supported dtype

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] f32, optional
  int64_t in = 0, out = 0;
  bool has_bias = false;

  void init(int64_t in_features, int64_t out_features, bool with_bias) { in = in_features; out = out_features; has_bias = with_bias; }
  void visit(const std::string& prefix, const ParamVisitor& v);
  // y[M, out] = x[M, in] · Wᵀ + b
  void forward(float* y, const float* x, int64_t M, int64_t ldy = 0, int64_t ldx = 0) const;
};

struct RMSNorm {
  Tensor weight;  // [dim] f32
  int64_t dim = 0;
  float eps = 1e-6f;

  void init(int64_t d, double epsilon) { dim = d; eps = float(epsilon); }
  void visit(const std::string& name, const ParamVisitor& v);
  void forward(float* y, const float* x, int64_t rows, int64_t ldy = 0, int64_t ldx = 0) const;
};

// LayerNorm with weight and bias (the DSA indexer's key norm): `prefix`.weight and `prefix`.bias.
struct LayerNorm {
  Tensor weight, bias;  // [dim] f32
  int64_t dim = 0;
  float eps = 1e-6f;

  void init(int64_t d, double epsilon) { dim = d; eps = float(epsilon); }
  void visit(const std::string& prefix, const ParamVisitor& v);
  void forward(float* y, const float* x, int64_t rows, int64_t ldy = 0, int64_t ldx = 0) const;
};

struct Embedding {
  Tensor weight;  // [vocab, dim]
  int64_t vocab = 0, dim = 0;

  void init(int64_t v, int64_t d) { vocab = v; dim = d; }
  void visit(const std::string& name, const ParamVisitor& v);
  void forward(float* y, const int32_t* ids, int64_t n) const;  // y[n, dim]
};

// down(silu(gate(x)) ⊙ up(x)): every FFN and every expert of DeepSeekMoE.
struct SwiGLU {
  Linear gate, up, down;
  int64_t dim = 0, width = 0;

  void init(int64_t d, int64_t w) { dim = d; width = w; gate.init(d, w, false); up.init(d, w, false); down.init(w, d, false); }
  void visit(const std::string& prefix, const ParamVisitor& v);
  // y[M, dim] = FFN(x[M, dim]); scratch from `arena`.
  void forward(float* y, const float* x, int64_t M, Arena& arena) const;
  // Same with caller-provided scratch of 2·M·width floats (lets experts run on pool threads, which share no arena).
  void forward(float* y, const float* x, int64_t M, float* scratch) const;
};

}  // namespace baleine::nn
