// ops/vision.h — the ops of the image side (Janus-Pro's VQ decoder, its MLP projectors, later SigLIP):
// 2-D convolution, GroupNorm, nearest 2× upsampling, exact GELU, and full (non-causal) attention.
// defines: Conv2dShape, conv2d, group_norm, upsample_nearest2x, gelu, attention_full, reference::*
//
// Images are channels-last, [N, H, W, C] f32 (a pixel's channels are contiguous): a 1×1 convolution is then a
// linear layer over N·H·W rows and a K×K one is a linear layer over the K·K·C patch of each pixel (im2col), so
// both run on the GEMM kernels of ops::linear. Convolution weights are [Cout, K, K, Cin] (PyTorch's
// [Cout, Cin, K, K] permuted once at load: nn::Conv2d does it).
// Every op has a scalar reference in ops/reference/vision.cpp (double accumulation) that the fast path is tested
// against; the fast path is deterministic for any thread count.
#pragma once
#include <cstdint>

namespace baleine::ops {

// Stride-1 convolution with zero padding `pad` on every side: out [N, H + 2·pad − K + 1, W + 2·pad − K + 1, Cout].
struct Conv2dShape {
  int64_t N = 1, H = 0, W = 0, Cin = 0, Cout = 0, K = 1, pad = 0;
  int64_t out_h() const { return H + 2 * pad - K + 1; }
  int64_t out_w() const { return W + 2 * pad - K + 1; }
};
// out = conv(x [N, H, W, Cin], w [Cout, K, K, Cin]) + bias [Cout] (bias may be null). out must not alias x.
void conv2d(float* out, const float* x, const float* w, const float* bias, const Conv2dShape& s);

// GroupNorm over x [N, HW, C]: the C channels form `groups` consecutive groups; each (image, group) is normalised
// by its mean and (biased) variance over HW·C/groups values, then scaled by gamma[c] and shifted by beta[c]
// (either may be null). In place allowed.
void group_norm(float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups, const float* gamma,
                const float* beta, float eps);

// Nearest-neighbour 2× upsampling: out [N, 2H, 2W, C], out[n, y, x] = in[n, y/2, x/2].
void upsample_nearest2x(float* out, const float* x, int64_t N, int64_t H, int64_t W, int64_t C);

// y = x · Φ(x) with the exact normal CDF, Φ(x) = (1 + erf(x/√2)) / 2 (PyTorch's nn.GELU() default). In place allowed.
void gelu(float* y, const float* x, int64_t n);

// Full (bidirectional) attention of one head over one set: out[t] = Σ_s softmax_s(scale · q[t]·k[s]) v[s],
// q [n, dk] (row stride ldq), k [n, dk] (ldk), v [n, dv] (ldv), out [n, dv] (ldo).
void attention_full(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t dk, int64_t dv,
                    float scale, int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldo);

namespace reference {
void conv2d(float* out, const float* x, const float* w, const float* bias, const Conv2dShape& s);
void group_norm(float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups, const float* gamma,
                const float* beta, float eps);
void upsample_nearest2x(float* out, const float* x, int64_t N, int64_t H, int64_t W, int64_t C);
void gelu(float* y, const float* x, int64_t n);
void attention_full(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t dk, int64_t dv,
                    float scale, int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldo);
}  // namespace reference

namespace detail {
void check_conv2d(const float* out, const float* x, const float* w, const Conv2dShape& s);
void check_group_norm(const float* y, const float* x, int64_t N, int64_t HW, int64_t C, int64_t groups);
}  // namespace detail

}  // namespace baleine::ops
