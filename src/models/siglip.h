// models/siglip.h — the SigLIP vision transformer Janus-Pro reads images with (janus/models/siglip_vit.py, a
// timm VisionTransformer built by create_siglip_vit with class_token=False, ignore_head=True):
//   x = patch_embed(pixels)            Conv2d(3, W, P, stride P) flattened → [T, W], T = (S/P)²
//   x = x + pos_embed                  learned [1, T, W] (no class token, so no prefix rows)
//   x = x + attn(norm1(x))             LayerNorm(eps 1e-6); qkv Linear(W, 3W) with bias; softmax(q·kᵀ/√d)·v; proj
//   x = x + mlp(norm2(x))              fc1 Linear(W, M), exact GELU (nn.GELU), fc2 Linear(M, W)
//   features = norm(x)                 after the last selected block (forward_features)
// The attention-pooling head (attn_pool) exists in the checkpoint but ignore_head=True never runs it, so it is not
// loaded. Pixels come in channels-last, [N, S, S, 3], already normalised (io/image_resize.h janus_preprocess).
// defines: SiglipConfig, siglip_config, SiglipEncoder
#pragma once
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "nn/layers.h"

namespace baleine {

struct SiglipConfig {
  std::string model_name;  // siglip_large_patch16_384, ...
  int64_t width = 1024, layers = 24, heads = 16, mlp = 4096, patch = 16, image_size = 384;
  double eps = 1e-6;       // partial(nn.LayerNorm, eps=1e-6)

  int64_t grid() const { return image_size / patch; }
  int64_t tokens() const { return grid() * grid(); }
  int64_t head_dim() const { return width / heads; }
};

// The shape create_siglip_vit builds for `model_name` at `image_size`, keeping the blocks select_layer asks for
// (≤ 0: all but the last −select_layer − 1; > 0: the first select_layer). Throws baleine::Error for an unknown
// name. `tiny` (baleine's extension keys width, layers, heads, mlp_ratio, patch_size for test models) overrides.
struct SiglipOverrides {
  int64_t width = 0, layers = 0, heads = 0, patch = 0;
  double mlp_ratio = 0;
};
SiglipConfig siglip_config(const std::string& model_name, int64_t image_size, int64_t select_layer,
                           const SiglipOverrides& tiny = {});

class SiglipEncoder {
 public:
  void init(const SiglipConfig& c);
  const SiglipConfig& config() const { return cfg_; }
  // Parameters under `prefix` (Janus: vision_model.vision_tower).
  void visit(const std::string& prefix, const nn::ParamVisitor& v);
  void prepare();
  // features [N, T, W] = SigLIP(pixels [N, S, S, 3]).
  Tensor forward(const float* pixels, int64_t N, Arena& arena) const;

 private:
  struct Block {
    nn::LayerNorm norm1, norm2;
    nn::Linear qkv, proj, fc1, fc2;
  };
  SiglipConfig cfg_;
  Tensor patch_weight_;     // patch_embed.proj.weight [W, 3, P, P] as loaded
  Tensor patch_bias_;       // [W]
  nn::Linear patch_embed_;  // the same weight as a [W, P·P·3] f32 matrix over (y, x, channel) patches (prepare)
  Tensor pos_embed_;        // [1, T, W] f32
  std::vector<Block> blocks_;
  nn::LayerNorm norm_;
};

}  // namespace baleine
