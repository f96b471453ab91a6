// models/janus_vq.h — Janus's image tokenizer (LlamaGen's VQ-16, janus/models/vq_model.py), decoder side:
// codebook lookup (l2-normalised), post_quant_conv, then a convolutional decoder — conv_in, a middle of
// ResnetBlock · AttnBlock · ResnetBlock, then per resolution level (coarsest first) num_res_blocks+1
// ResnetBlocks (with an AttnBlock after each at the coarsest level) and a nearest 2× upsample + 3×3 conv —,
// GroupNorm, swish, conv_out to RGB. All activations are channels-last [N, H, W, C].
// defines: VqConfig, VqDecoder
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/vision_layers.h"

namespace baleine {

// VQ-16 as Janus-Pro ships it (ModelArgs defaults: ch 128, ch_mult [1,1,2,2,4], z_channels 256, 2 res blocks,
// GroupNorm(32, eps 1e-6), codebook 16384 × 8, l2-normalised). Tiny test models override these through baleine's
// extension keys of gen_vision_config.params (docs/janus.md).
struct VqConfig {
  int64_t codebook_size = 16384, codebook_dim = 8;
  bool codebook_l2_norm = true;
  int64_t ch = 128;
  std::vector<int64_t> ch_mult{1, 1, 2, 2, 4};
  int64_t z_channels = 256, num_res_blocks = 2, norm_groups = 32;
  int64_t downsample() const { return int64_t(1) << (ch_mult.size() - 1); }  // pixels per token side
};

class VqDecoder {
 public:
  void init(const VqConfig& c);
  // `prefix` is the VQ model's name in the checkpoint ("gen_vision_model"); decoder, quantize.embedding and
  // post_quant_conv are visited (the encoder is only needed to tokenise images).
  void visit(const std::string& prefix, const nn::ParamVisitor& v);
  void prepare();
  // codes [N, h·w] (row-major token grid, as Janus generates them) → pixels [N, h·f, w·f, 3] f32 in the model's
  // range (about [-1, 1]), f = downsample().
  Tensor decode(const int32_t* codes, int64_t N, int64_t h, int64_t w) const;
  const VqConfig& config() const { return cfg_; }

 private:
  struct Resnet {
    nn::GroupNorm norm1, norm2;
    nn::Conv2d conv1, conv2, nin_shortcut;  // nin_shortcut (1×1) only when in != out
    bool has_shortcut = false;
  };
  struct Attn {
    nn::GroupNorm norm;
    nn::Conv2d q, k, v, proj_out;  // 1×1
  };
  struct Level {
    std::vector<Resnet> res;
    std::vector<Attn> attn;  // empty except at the coarsest level
    bool has_upsample = false;
    nn::Conv2d upsample_conv;
  };
  void init_resnet(Resnet& r, int64_t in, int64_t out) const;
  void visit_resnet(Resnet& r, const std::string& p, const nn::ParamVisitor& v);
  // x [N, H, W, C_in] → returns [N, H, W, C_out]
  Tensor resnet_forward(const Resnet& r, const Tensor& x, int64_t N, int64_t H, int64_t W) const;
  Tensor attn_forward(const Attn& a, const Tensor& x, int64_t N, int64_t H, int64_t W) const;

  VqConfig cfg_;
  Tensor codebook_;          // quantize.embedding.weight [codebook_size, codebook_dim]
  Tensor codebook_normed_;   // f32, rows l2-normalised when codebook_l2_norm (prepare)
  nn::Conv2d post_quant_conv_, conv_in_, conv_out_;
  Resnet mid_res0_, mid_res1_;
  Attn mid_attn_;
  std::vector<Level> levels_;  // coarsest first, as conv_blocks.{0..L-1}
  nn::GroupNorm norm_out_;
};

}  // namespace baleine
