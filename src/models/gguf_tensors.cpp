// models/gguf_tensors.cpp — HF parameter name ↔ GGUF tensor, with the layout changes of llama.cpp's converters.
#include "models/gguf_tensors.h"

#include <cmath>
#include <cstring>

#include <fmt/ranges.h>

#include "core/check.h"
#include "models/model.h"
#include "ops/ops.h"
#include "ops/quant.h"

namespace baleine {

std::string shape_string(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

Tensor to_f32_any(const Tensor& t) {
  if (!dtype_is_quantized(t.dtype())) return t.to_f32();
  Tensor out = Tensor::empty(DType::F32, t.shape());
  ops::dequantize_row(t.dtype(), t.raw(), out.f32(), t.numel());  // rows are whole blocks: one call covers all
  return out;
}

Tensor llama3_rope_freqs(const ModelConfig& c) {
  const int dim = int(c.head_dim);
  ops::RopeTable base = ops::rope_table_default(dim, c.rope_theta);
  ops::RopeTable scaled = make_rope_table(c, dim);
  Tensor t = Tensor::empty(DType::F32, {int64_t(dim / 2)});
  for (int i = 0; i < dim / 2; ++i) t.f32()[i] = base.inv_freq[size_t(i)] / scaled.inv_freq[size_t(i)];
  return t;
}

void check_rope_freqs(const ModelConfig& c, const Tensor& freqs, const std::string& file) {
  Tensor want = llama3_rope_freqs(c);
  BALEINE_CHECK(freqs.numel() == want.numel(), "{}: rope_freqs has {} values, expected head_dim/2 = {}", file, freqs.numel(),
                want.numel());
  for (int64_t i = 0; i < want.numel(); ++i)
    BALEINE_CHECK(std::fabs(freqs.f32()[i] - want.f32()[i]) <= 1e-5f * want.f32()[i],
                  "{}: rope_freqs[{}] = {} does not match llama3 scaling (factor {}, low {}, high {}, original context {}), "
                  "which gives {}; other rope_freqs are not supported",
                  file, i, freqs.f32()[i], c.rope_scaling.factor, c.rope_scaling.low_freq_factor,
                  c.rope_scaling.high_freq_factor, c.rope_scaling.original_max_position_embeddings, want.f32()[i]);
}

namespace {

struct ModuleName {
  const char* hf;
  const char* gguf;
};
// Per-layer modules with a 1:1 tensor (suffix ".weight" / ".bias" kept).
constexpr ModuleName kModules[] = {
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},
    {"self_attn.q_a_proj", "attn_q_a"},
    {"self_attn.q_a_layernorm", "attn_q_a_norm"},
    {"self_attn.q_b_proj", "attn_q_b"},
    {"self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa"},
    {"self_attn.kv_a_layernorm", "attn_kv_a_norm"},
    {"self_attn.indexer.wq_b", "indexer.attn_q_b"},  // DeepSeek-V3.2 lightning indexer (llama.cpp deepseek32)
    {"self_attn.indexer.wk", "indexer.attn_k"},
    {"self_attn.indexer.k_norm", "indexer.k_norm"},
    {"self_attn.indexer.weights_proj", "indexer.proj"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
    {"mlp.gate", "ffn_gate_inp"},
    {"mlp.shared_experts.gate_proj", "ffn_gate_shexp"},
    {"mlp.shared_experts.up_proj", "ffn_up_shexp"},
    {"mlp.shared_experts.down_proj", "ffn_down_shexp"},
    {"enorm", "nextn.enorm"},
    {"hnorm", "nextn.hnorm"},
    {"eh_proj", "nextn.eh_proj"},
    {"shared_head.norm", "nextn.shared_head_norm"},
    {"shared_head.head", "nextn.shared_head_head"},
    {"embed_tokens", "nextn.embed_tokens"},
};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Rows regrouped within each head for ggml's interleaved RoPE (llama.cpp's LlamaModel.permute): HF row
// (h, i, j) with i the half and j < D/2 is GGUF row (h, j, i).
Tensor permute_rows(const Tensor& t, int64_t heads, bool to_gguf, const std::string& what) {
  const int64_t rows = t.dim(0);
  BALEINE_CHECK(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0, "{}: {} rows cannot be split into {} heads of even size",
                what, rows, heads);
  const int64_t D = rows / heads, half = D / 2;
  const size_t row_bytes = t.nbytes() / size_t(rows);
  Tensor out = Tensor::empty(t.dtype(), t.shape());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        int64_t hf = h * D + i * half + j, gg = h * D + j * 2 + i;
        std::memcpy(dst + size_t(to_gguf ? gg : hf) * row_bytes, src + size_t(to_gguf ? hf : gg) * row_bytes, row_bytes);
      }
  return out;
}

}  // namespace

GgufTensorMap::Source GgufTensorMap::source(const std::string& hf) const {
  Source s;
  auto make = [](Kind k, std::string g, int64_t layer = -1) {
    Source x;
    x.kind = k;
    x.gguf = std::move(g);
    x.layer = layer;
    return x;
  };
  if (hf == "model.embed_tokens.weight") return make(Kind::Direct, "token_embd.weight");
  if (hf == "model.norm.weight") return make(Kind::Direct, "output_norm.weight");
  if (hf == "lm_head.weight") return make(Kind::Direct, "output.weight");
  const std::string layers = "model.layers.";
  if (!starts_with(hf, layers)) return s;
  size_t dot = hf.find('.', layers.size());
  if (dot == std::string::npos) return s;
  const std::string L = hf.substr(layers.size(), dot - layers.size());
  const std::string rest = hf.substr(dot + 1), blk = "blk." + L + ".";
  s.layer = std::stoll(L);
  if (rest == "mlp.gate.e_score_correction_bias") return make(Kind::Direct, blk + "exp_probs_b.bias", s.layer);
  if (rest == "self_attn.kv_b_proj.weight") return make(Kind::KvB, blk, s.layer);
  if (starts_with(rest, "mlp.experts.")) {
    size_t d2 = rest.find('.', 12);
    if (d2 == std::string::npos) return s;
    s.kind = Kind::Expert;
    s.expert = std::stoll(rest.substr(12, d2 - 12));
    std::string which = rest.substr(d2 + 1);  // gate_proj.weight
    const char* g = which == "gate_proj.weight" ? "ffn_gate_exps" : which == "up_proj.weight" ? "ffn_up_exps"
                    : which == "down_proj.weight" ? "ffn_down_exps" : nullptr;
    if (g == nullptr) return Source{};
    s.gguf = blk + g + ".weight";
    s.hf_expert_prefix = layers + L + ".mlp.experts.";
    s.hf_expert_suffix = "." + which;
    return s;
  }
  for (const auto& m : kModules) {
    for (const char* suffix : {".weight", ".bias"}) {
      if (rest == std::string(m.hf) + suffix) {
        s.kind = Kind::Direct;
        s.gguf = blk + m.gguf + suffix;
        if (c_.architecture == Architecture::Llama && rest.rfind("self_attn.q_proj", 0) == 0) s.kind = Kind::PermuteQ;
        if (c_.architecture == Architecture::Llama && rest.rfind("self_attn.k_proj", 0) == 0) s.kind = Kind::PermuteK;
        return s;
      }
    }
  }
  return s;
}

std::string GgufTensorMap::source_name(const std::string& hf) const {
  Source s = source(hf);
  if (s.kind == Kind::KvB) return s.gguf + "attn_k_b.weight / " + s.gguf + "attn_v_b.weight (or " + s.gguf + "attn_kv_b.weight)";
  if (s.kind == Kind::Expert) return fmt::format("{} (expert {})", s.gguf, s.expert);
  return s.kind == Kind::Unknown ? "?" : s.gguf;
}

Tensor GgufTensorMap::load(const io::GgufFile& f, const std::string& hf, const std::vector<int64_t>& shape) const {
  Source s = source(hf);
  BALEINE_CHECK(s.kind != Kind::Unknown, "{}: no GGUF name is known for parameter '{}'", f.path(), hf);
  auto fetch = [&](const std::string& name, const std::vector<int64_t>& want) -> Tensor {
    if (!f.contains(name)) return {};
    const io::GgufTensorInfo& info = f.info(name);
    BALEINE_CHECK(info.shape() == want, "{}: tensor '{}' has shape {} (ggml ne {}), expected {} for '{}'", f.path(), name,
                  shape_string(info.shape()), shape_string(info.ne), shape_string(want), hf);
    return f.tensor(name);
  };
  const int64_t H = c_.num_attention_heads;
  switch (s.kind) {
    case Kind::Direct: return fetch(s.gguf, shape);
    case Kind::PermuteQ: case Kind::PermuteK: {
      Tensor t = fetch(s.gguf, shape);
      if (!t.defined()) return t;
      return permute_rows(t, s.kind == Kind::PermuteQ ? H : c_.num_key_value_heads, false, f.path() + ": " + s.gguf);
    }
    case Kind::Expert: {
      std::vector<int64_t> stacked = {c_.n_routed_experts};
      stacked.insert(stacked.end(), shape.begin(), shape.end());
      if (!f.contains(s.gguf)) return {};
      Tensor all = fetch(s.gguf, stacked);  // checks type support too
      BALEINE_CHECK(s.expert >= 0 && s.expert < c_.n_routed_experts, "expert index {} out of range", s.expert);
      const size_t per = all.nbytes() / size_t(c_.n_routed_experts);
      return Tensor::borrow(static_cast<uint8_t*>(all.raw()) + size_t(s.expert) * per, all.dtype(), shape, f.owner());
    }
    case Kind::KvB: {
      if (f.contains(s.gguf + "attn_kv_b.weight")) return fetch(s.gguf + "attn_kv_b.weight", shape);
      const int64_t R = c_.kv_lora_rank, Dn = c_.qk_nope_head_dim, Dv = c_.v_head_dim;
      Tensor kb = fetch(s.gguf + "attn_k_b.weight", {H, R, Dn});
      Tensor vb = fetch(s.gguf + "attn_v_b.weight", {H, Dv, R});
      if (!kb.defined() && !vb.defined()) return {};
      BALEINE_CHECK(kb.defined() && vb.defined(), "{}: layer {} has only one of attn_k_b / attn_v_b", f.path(), s.layer);
      kb = to_f32_any(kb);
      vb = to_f32_any(vb);
      Tensor out = Tensor::empty(DType::F32, shape);  // [H·(Dn+Dv), R]
      float* o = out.f32();
      const float *k = kb.f32(), *v = vb.f32();
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t n = 0; n < Dn; ++n)
          for (int64_t r = 0; r < R; ++r) o[(h * (Dn + Dv) + n) * R + r] = k[(h * R + r) * Dn + n];
        std::memcpy(o + (h * (Dn + Dv) + Dn) * R, v + h * Dv * R, size_t(Dv * R) * sizeof(float));
      }
      return out;
    }
    case Kind::Unknown: break;
  }
  return {};
}

std::vector<std::pair<std::string, Tensor>> GgufTensorMap::store(const std::string& hf,
                                                                const std::map<std::string, Tensor>& params) const {
  Source s = source(hf);
  BALEINE_CHECK(s.kind != Kind::Unknown, "GGUF writer: no GGUF name is known for parameter '{}'", hf);
  const Tensor& t = params.at(hf);
  switch (s.kind) {
    case Kind::Direct: return {{s.gguf, t}};
    case Kind::PermuteQ: return {{s.gguf, permute_rows(t, c_.num_attention_heads, true, hf)}};
    case Kind::PermuteK: return {{s.gguf, permute_rows(t, c_.num_key_value_heads, true, hf)}};
    case Kind::Expert: {
      if (s.expert != 0) return {};
      const int64_t E = c_.n_routed_experts;
      std::vector<int64_t> shape = {E};
      for (int64_t d : t.shape()) shape.push_back(d);
      Tensor out = Tensor::empty(t.dtype(), shape);
      const size_t per = t.nbytes();
      for (int64_t e = 0; e < E; ++e) {
        const std::string name = s.hf_expert_prefix + std::to_string(e) + s.hf_expert_suffix;
        auto it = params.find(name);
        BALEINE_CHECK(it != params.end(), "GGUF writer: expert parameter '{}' is missing", name);
        BALEINE_CHECK(it->second.dtype() == t.dtype() && it->second.shape() == t.shape(),
                      "GGUF writer: experts of one layer must share dtype and shape ('{}' is {} {}, expert 0 is {} {})", name,
                      dtype_name(it->second.dtype()), it->second.shape_string(), dtype_name(t.dtype()), t.shape_string());
        std::memcpy(static_cast<uint8_t*>(out.raw()) + size_t(e) * per, it->second.raw(), per);
      }
      return {{s.gguf, out}};
    }
    case Kind::KvB: {
      if (legacy_kv_b_) return {{s.gguf + "attn_kv_b.weight", t}};
      const int64_t H = c_.num_attention_heads, R = c_.kv_lora_rank, Dn = c_.qk_nope_head_dim, Dv = c_.v_head_dim;
      Tensor kv = to_f32_any(t);
      Tensor kb = Tensor::empty(DType::F32, {H, R, Dn}), vb = Tensor::empty(DType::F32, {H, Dv, R});
      const float* src = kv.f32();
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t n = 0; n < Dn; ++n)
          for (int64_t r = 0; r < R; ++r) kb.f32()[(h * R + r) * Dn + n] = src[(h * (Dn + Dv) + n) * R + r];
        std::memcpy(vb.f32() + h * Dv * R, src + (h * (Dn + Dv) + Dn) * R, size_t(Dv * R) * sizeof(float));
      }
      return {{s.gguf + "attn_k_b.weight", kb}, {s.gguf + "attn_v_b.weight", vb}};
    }
    case Kind::Unknown: break;
  }
  return {};
}

}  // namespace baleine
