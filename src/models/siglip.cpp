// models/siglip.cpp — the SigLIP ViT of Janus-Pro's understanding path (see siglip.h).
#include "models/siglip.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "ops/ops.h"
#include "ops/vision.h"

namespace baleine {

namespace {

// siglip_vit.py SigLIP_MODEL_CONFIG: {name, image_size it was trained at, patch, width, layers, heads, mlp_ratio}.
struct Known {
  const char* name;
  int64_t patch, width, layers, heads;
  double mlp_ratio;
};
constexpr Known kKnown[] = {
    {"siglip_so400m_patch14_384", 14, 1152, 27, 16, 3.7362},
    {"siglip_so400m_patch14_224", 14, 1152, 27, 16, 3.7362},
    {"siglip_large_patch16_384", 16, 1024, 24, 16, 4.0},
};

}  // namespace

SiglipConfig siglip_config(const std::string& model_name, int64_t image_size, int64_t select_layer,
                           const SiglipOverrides& tiny) {
  const Known* k = nullptr;
  for (const Known& e : kKnown)
    if (model_name == e.name) k = &e;
  BALEINE_CHECK(k, "vision model '{}' is not supported (siglip_large_patch16_384, siglip_so400m_patch14_384/224)",
                model_name);
  SiglipConfig c;
  c.model_name = model_name;
  c.patch = tiny.patch > 0 ? tiny.patch : k->patch;
  c.width = tiny.width > 0 ? tiny.width : k->width;
  c.heads = tiny.heads > 0 ? tiny.heads : k->heads;
  const double ratio = tiny.mlp_ratio > 0 ? tiny.mlp_ratio : k->mlp_ratio;
  c.mlp = int64_t(double(c.width) * ratio);  // timm: hidden_features = int(dim * mlp_ratio)
  const int64_t L = tiny.layers > 0 ? tiny.layers : k->layers;
  // create_siglip_vit: select_layer ≤ 0 keeps L + select_layer + 1 blocks, > 0 keeps select_layer (both ≤ L).
  c.layers = select_layer <= 0 ? std::min(L, L + select_layer + 1) : std::min(L, select_layer);
  c.image_size = image_size;
  BALEINE_CHECK(c.layers >= 1, "vision select_layer {} leaves no blocks of {}", select_layer, L);
  BALEINE_CHECK(c.width % c.heads == 0, "vision width {} does not split into {} heads", c.width, c.heads);
  BALEINE_CHECK(image_size >= c.patch && image_size % c.patch == 0 && image_size <= 4096,
                "vision image_size {} must be a multiple of the patch size {} (and at most 4096)", image_size, c.patch);
  return c;
}

void SiglipEncoder::init(const SiglipConfig& c) {
  cfg_ = c;
  const int64_t W = c.width;
  patch_embed_.init(c.patch * c.patch * 3, W, true);
  blocks_.assign(size_t(c.layers), Block{});
  for (Block& b : blocks_) {
    b.norm1.init(W, c.eps);
    b.norm2.init(W, c.eps);
    b.qkv.init(W, 3 * W, true);
    b.proj.init(W, W, true);
    b.fc1.init(W, c.mlp, true);
    b.fc2.init(c.mlp, W, true);
  }
  norm_.init(W, c.eps);
}

void SiglipEncoder::visit(const std::string& prefix, const nn::ParamVisitor& v) {
  const int64_t W = cfg_.width, P = cfg_.patch;
  nn::Param pw{prefix + ".patch_embed.proj.weight", {W, 3, P, P}, nn::ParamKind::Matrix, &patch_weight_, false};
  v(pw);
  nn::Param pb{prefix + ".patch_embed.proj.bias", {W}, nn::ParamKind::Vector, &patch_bias_, false};
  v(pb);
  nn::Param pos{prefix + ".pos_embed", {1, cfg_.tokens(), W}, nn::ParamKind::Vector, &pos_embed_, false};
  v(pos);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = blocks_[i];
    const std::string p = prefix + ".blocks." + std::to_string(i);
    b.norm1.visit(p + ".norm1", v);
    b.qkv.visit(p + ".attn.qkv", v);
    b.proj.visit(p + ".attn.proj", v);
    b.norm2.visit(p + ".norm2", v);
    b.fc1.visit(p + ".mlp.fc1", v);
    b.fc2.visit(p + ".mlp.fc2", v);
  }
  norm_.visit(prefix + ".norm", v);
}

void SiglipEncoder::prepare() {
  BALEINE_CHECK(patch_weight_.defined() && patch_weight_.ndim() == 4, "SigLIP patch weight must be 4-D, got {}",
                patch_weight_.shape_string());
  // [W, 3, P, P] → [W, P, P, 3]: a patch gathered channels-last is then one row of a linear layer.
  const int64_t W = cfg_.width, P = cfg_.patch;
  const Tensor src = patch_weight_.dtype() == DType::F32 ? patch_weight_ : patch_weight_.to_f32();
  Tensor packed = Tensor::empty(DType::F32, {W, P * P * 3});
  const float* s = src.f32();
  float* d = packed.f32();
  for (int64_t o = 0; o < W; ++o)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < P; ++y)
        for (int64_t x = 0; x < P; ++x) d[o * P * P * 3 + (y * P + x) * 3 + c] = s[((o * 3 + c) * P + y) * P + x];
  patch_embed_.weight = packed;
  patch_embed_.bias = patch_bias_;
}

Tensor SiglipEncoder::forward(const float* pixels, int64_t N, Arena& arena) const {
  BALEINE_CHECK(patch_embed_.weight.defined(), "SiglipEncoder::forward before prepare()");
  BALEINE_CHECK(N >= 1, "SigLIP needs at least one image");
  const int64_t S = cfg_.image_size, P = cfg_.patch, G = cfg_.grid(), T = cfg_.tokens(), W = cfg_.width;
  const int64_t H = cfg_.heads, dh = cfg_.head_dim(), M = cfg_.mlp;
  const float scale = 1.0f / std::sqrt(float(dh));  // F.scaled_dot_product_attention's default
  Tensor out = Tensor::empty(DType::F32, {N, T, W});
  float* patches = arena.alloc<float>(size_t(T * P * P * 3));  // [T, P·P·3]
  float* h = arena.alloc<float>(size_t(T * W));                 // normed rows [T, W]
  float* qkv = arena.alloc<float>(size_t(T * 3 * W));           // [T, 3W]: q | k | v, heads contiguous in each
  float* att = arena.alloc<float>(size_t(T * W));               // [T, W]
  float* mid = arena.alloc<float>(size_t(T * M));               // [T, M]
  for (int64_t n = 0; n < N; ++n) {
    const float* img = pixels + n * S * S * 3;  // [S, S, 3]
    float* x = out.f32() + n * T * W;           // the residual stream [T, W], then the features
    // patch_embed: row t = (gy, gx) holds the P×P patch under it, (y, x, channel) order; flatten(2) is row-major.
    for (int64_t gy = 0; gy < G; ++gy)
      for (int64_t gx = 0; gx < G; ++gx)
        for (int64_t y = 0; y < P; ++y)
          std::memcpy(patches + (gy * G + gx) * P * P * 3 + y * P * 3, img + ((gy * P + y) * S + gx * P) * 3,
                      size_t(P * 3) * sizeof(float));
    patch_embed_.forward(x, patches, T);
    ops::add_inplace(x, pos_embed_.f32(), T * W);
    for (const Block& b : blocks_) {
      b.norm1.forward(h, x, T);
      b.qkv.forward(qkv, h, T);
      // Attention.forward: reshape(B, N, 3, heads, head_dim): q of head j at columns j·dh, k at W + j·dh, v at 2W + j·dh.
      for (int64_t j = 0; j < H; ++j)
        ops::attention_full(att + j * dh, qkv + j * dh, qkv + W + j * dh, qkv + 2 * W + j * dh, T, dh, dh, scale,
                            3 * W, 3 * W, 3 * W, W);
      b.proj.forward(h, att, T);
      ops::add_inplace(x, h, T * W);
      b.norm2.forward(h, x, T);
      b.fc1.forward(mid, h, T);
      ops::gelu(mid, mid, T * M);
      b.fc2.forward(h, mid, T);
      ops::add_inplace(x, h, T * W);
    }
    norm_.forward(x, x, T);
  }
  return out;
}

}  // namespace baleine
