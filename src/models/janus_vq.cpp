// models/janus_vq.cpp — the VQ-16 decoder (see janus_vq.h), written in the order of vq_model.py's Decoder.
#include "models/janus_vq.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "ops/ops.h"

namespace baleine {

namespace {
Tensor image(int64_t N, int64_t H, int64_t W, int64_t C) { return Tensor::empty(DType::F32, {N, H, W, C}); }
}  // namespace

void VqDecoder::init_resnet(Resnet& r, int64_t in, int64_t out) const {
  const double eps = 1e-6;
  r.norm1.init(in, cfg_.norm_groups, eps);
  r.conv1.init(in, out, 3);
  r.norm2.init(out, cfg_.norm_groups, eps);
  r.conv2.init(out, out, 3);
  r.has_shortcut = in != out;
  if (r.has_shortcut) r.nin_shortcut.init(in, out, 1);
}

void VqDecoder::init(const VqConfig& c) {
  BALEINE_CHECK(!c.ch_mult.empty(), "VQ decoder: ch_mult is empty");
  for (int64_t m : c.ch_mult)
    BALEINE_CHECK(m >= 1 && (c.ch * m) % c.norm_groups == 0,
                  "VQ decoder: {} channels (ch {} × {}) do not split into {} GroupNorm groups", c.ch * m, c.ch, m,
                  c.norm_groups);
  BALEINE_CHECK(c.codebook_size >= 1 && c.codebook_dim >= 1 && c.z_channels >= 1 && c.num_res_blocks >= 0,
                "VQ decoder: bad sizes (codebook {} × {}, z_channels {}, num_res_blocks {})", c.codebook_size,
                c.codebook_dim, c.z_channels, c.num_res_blocks);
  cfg_ = c;
  const int64_t L = int64_t(c.ch_mult.size());
  int64_t block_in = c.ch * c.ch_mult.back();
  post_quant_conv_.init(c.codebook_dim, c.z_channels, 1);
  conv_in_.init(c.z_channels, block_in, 3);
  init_resnet(mid_res0_, block_in, block_in);
  mid_attn_.norm.init(block_in, c.norm_groups, 1e-6);
  for (nn::Conv2d* cv : {&mid_attn_.q, &mid_attn_.k, &mid_attn_.v, &mid_attn_.proj_out}) cv->init(block_in, block_in, 1);
  init_resnet(mid_res1_, block_in, block_in);
  levels_.assign(size_t(L), Level{});
  for (int64_t j = 0; j < L; ++j) {  // conv_blocks[j] is resolution level i = L-1-j
    const int64_t i_level = L - 1 - j, block_out = c.ch * c.ch_mult[size_t(i_level)];
    Level& lv = levels_[size_t(j)];
    lv.res.assign(size_t(c.num_res_blocks + 1), Resnet{});
    for (Resnet& r : lv.res) {
      init_resnet(r, block_in, block_out);
      block_in = block_out;
      if (i_level == L - 1) {
        lv.attn.emplace_back();
        Attn& a = lv.attn.back();
        a.norm.init(block_in, c.norm_groups, 1e-6);
        for (nn::Conv2d* cv : {&a.q, &a.k, &a.v, &a.proj_out}) cv->init(block_in, block_in, 1);
      }
    }
    lv.has_upsample = i_level != 0;
    if (lv.has_upsample) lv.upsample_conv.init(block_in, block_in, 3);
  }
  norm_out_.init(block_in, c.norm_groups, 1e-6);
  conv_out_.init(block_in, 3, 3);
}

void VqDecoder::visit_resnet(Resnet& r, const std::string& p, const nn::ParamVisitor& v) {
  r.norm1.visit(p + ".norm1", v);
  r.conv1.visit(p + ".conv1", v);
  r.norm2.visit(p + ".norm2", v);
  r.conv2.visit(p + ".conv2", v);
  if (r.has_shortcut) r.nin_shortcut.visit(p + ".nin_shortcut", v);
}

void VqDecoder::visit(const std::string& prefix, const nn::ParamVisitor& v) {
  nn::Param cb{prefix + ".quantize.embedding.weight", {cfg_.codebook_size, cfg_.codebook_dim}, nn::ParamKind::Matrix,
               &codebook_, false};
  v(cb);
  post_quant_conv_.visit(prefix + ".post_quant_conv", v);
  const std::string d = prefix + ".decoder.";
  conv_in_.visit(d + "conv_in", v);
  visit_resnet(mid_res0_, d + "mid.0", v);
  mid_attn_.norm.visit(d + "mid.1.norm", v);
  mid_attn_.q.visit(d + "mid.1.q", v);
  mid_attn_.k.visit(d + "mid.1.k", v);
  mid_attn_.v.visit(d + "mid.1.v", v);
  mid_attn_.proj_out.visit(d + "mid.1.proj_out", v);
  visit_resnet(mid_res1_, d + "mid.2", v);
  for (size_t j = 0; j < levels_.size(); ++j) {
    Level& lv = levels_[j];
    const std::string b = d + "conv_blocks." + std::to_string(j) + ".";
    for (size_t i = 0; i < lv.res.size(); ++i) visit_resnet(lv.res[i], b + "res." + std::to_string(i), v);
    for (size_t i = 0; i < lv.attn.size(); ++i) {
      Attn& a = lv.attn[i];
      const std::string ap = b + "attn." + std::to_string(i) + ".";
      a.norm.visit(ap + "norm", v);
      a.q.visit(ap + "q", v);
      a.k.visit(ap + "k", v);
      a.v.visit(ap + "v", v);
      a.proj_out.visit(ap + "proj_out", v);
    }
    if (lv.has_upsample) lv.upsample_conv.visit(b + "upsample.conv", v);
  }
  norm_out_.visit(d + "norm_out", v);
  conv_out_.visit(d + "conv_out", v);
}

void VqDecoder::prepare() {
  auto prep_res = [](Resnet& r) {
    r.conv1.prepare();
    r.conv2.prepare();
    if (r.has_shortcut) r.nin_shortcut.prepare();
  };
  auto prep_attn = [](Attn& a) {
    for (nn::Conv2d* cv : {&a.q, &a.k, &a.v, &a.proj_out}) cv->prepare();
  };
  post_quant_conv_.prepare();
  conv_in_.prepare();
  prep_res(mid_res0_);
  prep_attn(mid_attn_);
  prep_res(mid_res1_);
  for (Level& lv : levels_) {
    for (Resnet& r : lv.res) prep_res(r);
    for (Attn& a : lv.attn) prep_attn(a);
    if (lv.has_upsample) lv.upsample_conv.prepare();
  }
  conv_out_.prepare();
  // F.normalize(p=2, dim=-1): x / max(‖x‖, 1e-12)
  codebook_normed_ = codebook_.dtype() == DType::F32 ? codebook_ : codebook_.to_f32();
  if (codebook_normed_.raw() == codebook_.raw()) {  // private copy: never write through a checkpoint mapping
    Tensor copy = Tensor::empty(DType::F32, {cfg_.codebook_size, cfg_.codebook_dim});
    std::memcpy(copy.f32(), codebook_.f32(), size_t(copy.numel()) * 4);
    codebook_normed_ = std::move(copy);
  }
  if (cfg_.codebook_l2_norm) {
    float* e = codebook_normed_.f32();
    for (int64_t r = 0; r < cfg_.codebook_size; ++r) {
      float* row = e + r * cfg_.codebook_dim;
      double ss = 0.0;
      for (int64_t c = 0; c < cfg_.codebook_dim; ++c) ss += double(row[c]) * double(row[c]);
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int64_t c = 0; c < cfg_.codebook_dim; ++c) row[c] = float(double(row[c]) * inv);
    }
  }
}

Tensor VqDecoder::resnet_forward(const Resnet& r, const Tensor& x, int64_t N, int64_t H, int64_t W) const {
  const int64_t cin = r.conv1.cin, cout = r.conv1.cout, HW = H * W;
  Tensor h = image(N, H, W, cin), h2 = image(N, H, W, cout), out = image(N, H, W, cout);
  r.norm1.forward(h.f32(), x.f32(), N, HW);
  ops::silu(h.f32(), h.f32(), h.numel());
  r.conv1.forward(h2.f32(), h.f32(), N, H, W);
  r.norm2.forward(h2.f32(), h2.f32(), N, HW);
  ops::silu(h2.f32(), h2.f32(), h2.numel());
  r.conv2.forward(out.f32(), h2.f32(), N, H, W);  // dropout is 0 at inference
  if (r.has_shortcut) {
    r.nin_shortcut.forward(h2.f32(), x.f32(), N, H, W);
    ops::add_inplace(out.f32(), h2.f32(), out.numel());
  } else {
    ops::add_inplace(out.f32(), x.f32(), out.numel());
  }
  return out;
}

// Single-head self-attention over the H·W positions of each image, scale C^-½, residual.
Tensor VqDecoder::attn_forward(const Attn& a, const Tensor& x, int64_t N, int64_t H, int64_t W) const {
  const int64_t C = a.q.cin, HW = H * W;
  Tensor h = image(N, H, W, C), q = image(N, H, W, C), k = image(N, H, W, C), v = image(N, H, W, C);
  a.norm.forward(h.f32(), x.f32(), N, HW);
  a.q.forward(q.f32(), h.f32(), N, H, W);
  a.k.forward(k.f32(), h.f32(), N, H, W);
  a.v.forward(v.f32(), h.f32(), N, H, W);
  const float scale = float(1.0 / std::sqrt(double(C)));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t o = n * HW * C;
    ops::attention_full(h.f32() + o, q.f32() + o, k.f32() + o, v.f32() + o, HW, C, C, scale, C, C, C, C);
  }
  Tensor out = image(N, H, W, C);
  a.proj_out.forward(out.f32(), h.f32(), N, H, W);
  ops::add_inplace(out.f32(), x.f32(), out.numel());
  return out;
}

Tensor VqDecoder::decode(const int32_t* codes, int64_t N, int64_t h, int64_t w) const {
  BALEINE_CHECK(codebook_normed_.defined(), "VqDecoder::decode before prepare()");
  BALEINE_CHECK(N >= 1 && h >= 1 && w >= 1, "VQ decode of {} images of {}×{} tokens", N, h, w);
  const int64_t D = cfg_.codebook_dim;
  Tensor z = image(N, h, w, D);
  for (int64_t i = 0; i < N * h * w; ++i) {
    BALEINE_CHECK(codes[i] >= 0 && codes[i] < cfg_.codebook_size, "image token {} is outside the codebook [0, {})",
                  codes[i], cfg_.codebook_size);
    std::memcpy(z.f32() + i * D, codebook_normed_.f32() + int64_t(codes[i]) * D, size_t(D) * 4);
  }
  int64_t H = h, W = w;
  Tensor x = image(N, H, W, cfg_.z_channels);
  post_quant_conv_.forward(x.f32(), z.f32(), N, H, W);
  Tensor y = image(N, H, W, conv_in_.cout);
  conv_in_.forward(y.f32(), x.f32(), N, H, W);
  y = resnet_forward(mid_res0_, y, N, H, W);
  y = attn_forward(mid_attn_, y, N, H, W);
  y = resnet_forward(mid_res1_, y, N, H, W);
  for (const Level& lv : levels_) {
    for (size_t i = 0; i < lv.res.size(); ++i) {
      y = resnet_forward(lv.res[i], y, N, H, W);
      if (!lv.attn.empty()) y = attn_forward(lv.attn[i], y, N, H, W);
    }
    if (lv.has_upsample) {
      const int64_t C = lv.upsample_conv.cin;
      Tensor up = image(N, 2 * H, 2 * W, C);
      ops::upsample_nearest2x(up.f32(), y.f32(), N, H, W, C);
      H *= 2, W *= 2;
      y = image(N, H, W, C);
      lv.upsample_conv.forward(y.f32(), up.f32(), N, H, W);
    }
  }
  norm_out_.forward(y.f32(), y.f32(), N, H * W);
  ops::silu(y.f32(), y.f32(), y.numel());
  Tensor rgb = image(N, H, W, 3);
  conv_out_.forward(rgb.f32(), y.f32(), N, H, W);
  return rgb;
}

}  // namespace baleine
