// nn/vision_layers.h — image-side layers over channels-last tensors [N, H, W, C] (ops/vision.h): 2-D
// convolution, GroupNorm, and the GELU MLP that Janus uses for its aligners and generation head.
// defines: Conv2d, GroupNorm, GeluMlp
#pragma once
#include <string>
#include <vector>

#include "nn/layers.h"
#include "ops/vision.h"

namespace baleine::nn {

// nn.Conv2d(cin, cout, k, stride 1, padding k/2). The checkpoint's weight [Cout, Cin, K, K] (any float dtype) is
// permuted once by prepare() into the [Cout, K, K, Cin] f32 layout the channels-last op reads.
struct Conv2d {
  Tensor weight;  // [Cout, Cin, K, K] as loaded
  Tensor bias;    // [Cout] f32
  Tensor packed;  // [Cout, K, K, Cin] f32 (prepare)
  int64_t cin = 0, cout = 0, k = 1;

  void init(int64_t in_channels, int64_t out_channels, int64_t kernel) { cin = in_channels; cout = out_channels; k = kernel; }
  void visit(const std::string& prefix, const ParamVisitor& v);
  void prepare();
  // out [N, H, W, cout] = conv(x [N, H, W, cin]); out must not alias x.
  void forward(float* out, const float* x, int64_t N, int64_t H, int64_t W) const;
};

// nn.GroupNorm(groups, C, eps, affine=True) over x [N, HW, C].
struct GroupNorm {
  Tensor weight, bias;  // [C] f32
  int64_t channels = 0, groups = 32;
  float eps = 1e-6f;

  void init(int64_t c, int64_t g, double epsilon) { channels = c; groups = g; eps = float(epsilon); }
  void visit(const std::string& prefix, const ParamVisitor& v);
  void forward(float* y, const float* x, int64_t N, int64_t HW) const;
};

// Janus's MlpProjector "mlp_gelu": Linear(in, width), then depth−1 × (GELU, Linear(width, width)), as an
// nn.Sequential named `prefix`.layers.{0, 2, 4, ...}; and its VisionHead, Linear → GELU → Linear, whose two
// linears have their own names (GeluMlp with explicit names).
struct GeluMlp {
  std::vector<Linear> layers;
  std::vector<std::string> names;  // per linear, relative to the visit prefix

  // Sequential form: widths {in, width, width, ...} with names layers.0, layers.2, ...
  void init_sequential(int64_t in, int64_t width, int64_t depth);
  // Two named linears in → mid → out (VisionHead: output_mlp_projector, vision_head).
  void init_named(int64_t in, int64_t mid, int64_t out, const std::string& first, const std::string& second);
  void visit(const std::string& prefix, const ParamVisitor& v);
  int64_t out_features() const { return layers.back().out; }
  int64_t max_width() const;
  // y [M, out] = MLP(x [M, in]); scratch from `arena`.
  void forward(float* y, const float* x, int64_t M, Arena& arena) const;
};

}  // namespace baleine::nn
