// models/gguf_model.cpp — GGUF ↔ our models: metadata ↔ config.json fields, tensor names ↔ HF names, loading
// and writing (layout notes in gguf_model.h).
#include "models/gguf_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/gguf_tensors.h"

namespace baleine {

using nlohmann::json;
using io::GgufFile;
using io::GgufType;
using io::GgufValue;

bool is_gguf_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  if (fs::path(path).extension() == ".gguf") return true;  // then a bad magic is reported as such
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "GGUF", 4) == 0;
}

const char* gguf_arch_name(const ModelConfig& c) {
  switch (c.architecture) {
    case Architecture::DeepSeekV3: case Architecture::DeepSeekV2: return "deepseek2";
    case Architecture::DeepSeekV32: return "deepseek32";  // llama.cpp's DSA architecture
    case Architecture::Qwen2: return "qwen2";
    case Architecture::Llama: return "llama";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata → config.json

namespace {

// llama3 scaling from llama.cpp's rope_freqs (per-frequency divisors r_i): r = 1 for short wavelengths, `factor`
// for long ones, and 1/r = (1-s)/factor + s in between with s = (orig/λ - low)/(high - low). Only factor,
// orig/(high-low) and low/(high-low) are identifiable, so low_freq_factor is fixed at 1 and the rest solved from
// two in-between frequencies (with one, high/low = 4 as Llama 3.1; with none, Llama 3.1's 1, 4, 8192); load_gguf_model then checks that the
// parameters reproduce every r_i.
json llama3_scaling_from_rope_freqs(const Tensor& rf, int64_t head_dim, double theta) {
  double factor = 1;
  for (int64_t i = 0; i < rf.numel(); ++i) factor = std::max(factor, double(rf.f32()[i]));
  std::vector<std::pair<double, double>> pts;  // (1/λ, s)
  for (int64_t i = 0; i < rf.numel() && factor > 1; ++i) {
    double r = rf.f32()[i];
    if (r <= 1 + 1e-4 || r >= factor * (1 - 1e-4)) continue;
    double inv_freq = std::pow(theta, -2.0 * double(i) / double(head_dim));
    double lambda = 2 * M_PI / inv_freq;
    pts.emplace_back(1 / lambda, (1 / r - 1 / factor) / (1 - 1 / factor));
  }
  double low = 1, high = 4, orig = 8192;
  if (pts.size() >= 2) {
    auto [x1, s1] = pts.front();
    auto [x2, s2] = pts.back();
    double alpha = (s1 - s2) / (x1 - x2), beta = alpha * x1 - s1;  // s = α/λ - β
    if (alpha > 0 && beta > 0) low = 1, high = (beta + 1) / beta, orig = alpha / beta;
  } else if (pts.size() == 1) {  // one equation: keep Llama 3.1's high/low = 4, solve the context
    auto [x1, s1] = pts.front();
    orig = 3 * (s1 + 1.0 / 3) / x1;
  }
  return {{"rope_type", "llama3"}, {"factor", factor}, {"low_freq_factor", low}, {"high_freq_factor", high},
          {"original_max_position_embeddings", std::round(orig * 1e6) / 1e6}};
}

}  // namespace


json gguf_hf_config(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture", "");
  BALEINE_CHECK(!arch.empty(), "{}: missing general.architecture", f.path());
  BALEINE_CHECK(arch == "deepseek2" || arch == "deepseek32" || arch == "qwen2" || arch == "llama",
                "{}: unknown architecture '{}' (supported: deepseek2, deepseek32, qwen2, llama)", f.path(), arch);
  const std::string a = arch + ".";
  const bool deepseek = arch == "deepseek2" || arch == "deepseek32";
  auto req_int = [&](const std::string& k) { return f.get(a + k).as_int(f.path() + ": " + a + k); };
  auto opt_int = [&](const std::string& k, int64_t fb) { return f.get_int(a + k, fb); };
  auto opt_num = [&](const std::string& k, double fb) { return f.get_double(a + k, fb); };
  json j;
  const int64_t nextn = deepseek ? opt_int("nextn_predict_layers", 0) : 0;
  const int64_t blocks = req_int("block_count");
  BALEINE_CHECK(blocks > nextn, "{}: {}block_count {} must exceed nextn_predict_layers {}", f.path(), a, blocks, nextn);
  int64_t vocab = opt_int("vocab_size", 0);
  if (vocab == 0 && f.has("tokenizer.ggml.tokens")) vocab = int64_t(f.get("tokenizer.ggml.tokens").as_array("tokens").size());
  if (vocab == 0 && f.contains("token_embd.weight")) vocab = f.info("token_embd.weight").ne.back();
  j["vocab_size"] = vocab;
  j["hidden_size"] = req_int("embedding_length");
  j["intermediate_size"] = opt_int("feed_forward_length", 0);
  j["num_hidden_layers"] = blocks - nextn;
  j["num_attention_heads"] = req_int("attention.head_count");
  j["rms_norm_eps"] = opt_num("attention.layer_norm_rms_epsilon", 1e-6);
  j["rope_theta"] = opt_num("rope.freq_base", 10000.0);
  j["max_position_embeddings"] = opt_int("context_length", 4096);
  j["tie_word_embeddings"] = !f.contains("output.weight");
  j["hidden_act"] = "silu";
  if (f.has("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id", 0);
  if (f.has("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id", 0);

  const std::string rs_type = f.get_string(a + "rope.scaling.type", "none");
  json rope_scaling = nullptr;
  if (rs_type == "yarn") {
    rope_scaling = {{"type", "yarn"},
                    {"factor", opt_num("rope.scaling.factor", 1.0)},
                    {"original_max_position_embeddings", opt_num("rope.scaling.original_context_length", 4096)},
                    {"beta_fast", opt_num("rope.scaling.yarn_beta_fast", 32)},
                    {"beta_slow", opt_num("rope.scaling.yarn_beta_slow", 1)}};
    if (f.has(a + "rope.scaling.yarn_log_multiplier")) {
      // [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]: deepseek2 stores 0.1·mscale_all_dim.
      double m = opt_num("rope.scaling.yarn_log_multiplier", 0) / (deepseek ? 0.1 : 1.0);
      m = f.get_double("baleine.rope.scaling.mscale_all_dim", m);
      rope_scaling["mscale_all_dim"] = m;
      rope_scaling["mscale"] = f.get_double("baleine.rope.scaling.mscale", m);
    }
  } else if (rs_type == "linear") {
    rope_scaling = {{"type", "linear"}, {"factor", opt_num("rope.scaling.factor", 1.0)}};
  } else if (rs_type != "none") {
    BALEINE_FAIL("{}: {}rope.scaling.type '{}' is not supported (yarn, linear, none)", f.path(), a, rs_type);
  }

  if (deepseek) {
    const std::string gating_key = a + "expert_gating_func";
    const int64_t gating = opt_int("expert_gating_func", 1);  // absent in V2/V2.5 files: softmax (as llama.cpp)
    BALEINE_CHECK(gating == 1 || gating == 2, "{}: {} = {} is not supported (1 softmax, 2 sigmoid)", f.path(), gating_key, gating);
    const bool sigmoid = gating == 2;
    j["model_type"] = arch == "deepseek32" ? "deepseek_v32" : sigmoid ? "deepseek_v3" : "deepseek_v2";
    if (arch == "deepseek32") {  // DSA: the lightning indexer (llama.cpp's LLM_KV_ATTENTION_INDEXER_*)
      j["index_n_heads"] = req_int("attention.indexer.head_count");
      j["index_head_dim"] = req_int("attention.indexer.key_length");
      j["index_topk"] = req_int("attention.indexer.top_k");
    }
    j["scoring_func"] = sigmoid ? "sigmoid" : "softmax";
    const int64_t rope_dim = req_int("rope.dimension_count");
    const bool mla = f.has(a + "attention.key_length_mla");
    const int64_t k_len = mla ? req_int("attention.key_length_mla") : req_int("attention.key_length");
    const int64_t v_len = mla ? req_int("attention.value_length_mla") : req_int("attention.value_length");
    BALEINE_CHECK(k_len > rope_dim, "{}: key length {} must exceed rope.dimension_count {}", f.path(), k_len, rope_dim);
    j["qk_rope_head_dim"] = rope_dim;
    j["qk_nope_head_dim"] = k_len - rope_dim;
    j["v_head_dim"] = v_len;
    j["kv_lora_rank"] = req_int("attention.kv_lora_rank");
    j["q_lora_rank"] = opt_int("attention.q_lora_rank", 0);
    j["num_key_value_heads"] = j["num_attention_heads"];
    const int64_t experts = opt_int("expert_count", 0);
    j["n_routed_experts"] = experts;
    j["first_k_dense_replace"] = experts > 0 ? opt_int("leading_dense_block_count", 0) : blocks;
    j["moe_layer_freq"] = 1;
    if (experts > 0) {
      j["num_experts_per_tok"] = req_int("expert_used_count");
      j["moe_intermediate_size"] = req_int("expert_feed_forward_length");
      j["n_shared_experts"] = opt_int("expert_shared_count", 0);
      j["routed_scaling_factor"] = opt_num("expert_weights_scale", 1.0);
      j["norm_topk_prob"] = f.get_bool(a + "expert_weights_norm", false);
      const int64_t groups = opt_int("expert_group_count", 1);
      j["n_group"] = groups;
      j["topk_group"] = opt_int("expert_group_used_count", groups);
      // llama.cpp has no topk_method key: the selection bias marks V3's noaux_tc; groups without it are V2's
      // group_limited_greedy (llama.cpp itself scores groups by their top-2 sum in both cases).
      std::string method = "greedy";
      if (f.contains("blk." + std::to_string(j["first_k_dense_replace"].get<int64_t>()) + ".exp_probs_b.bias")) method = "noaux_tc";
      else if (groups > 1) method = "group_limited_greedy";
      j["topk_method"] = f.get_string("baleine.topk_method", method);
    }
    j["num_nextn_predict_layers"] = nextn;
  } else {
    j["model_type"] = arch;
    const int64_t heads = j["num_attention_heads"].get<int64_t>();
    j["num_key_value_heads"] = opt_int("attention.head_count_kv", heads);
    const int64_t head_dim = opt_int("attention.key_length", opt_int("rope.dimension_count", j["hidden_size"].get<int64_t>() / heads));
    j["head_dim"] = head_dim;
    if (arch == "llama") {
      j["attention_bias"] = f.contains("blk.0.attn_q.bias");
      if (f.has("baleine.rope.scaling.type")) {
        BALEINE_CHECK(f.get_string("baleine.rope.scaling.type", "") == "llama3", "{}: unknown baleine.rope.scaling.type", f.path());
        rope_scaling = {{"rope_type", "llama3"},
                        {"factor", f.get_double("baleine.rope.scaling.factor", 8)},
                        {"low_freq_factor", f.get_double("baleine.rope.scaling.low_freq_factor", 1)},
                        {"high_freq_factor", f.get_double("baleine.rope.scaling.high_freq_factor", 4)},
                        {"original_max_position_embeddings", f.get_double("baleine.rope.scaling.original_context_length", 8192)}};
      } else if (f.contains("rope_freqs.weight")) {
        rope_scaling = llama3_scaling_from_rope_freqs(f.tensor("rope_freqs.weight").to_f32(), head_dim,
                                                      j["rope_theta"].get<double>());
      }
    }
  }
  j["rope_scaling"] = rope_scaling;
  const std::string mt = j["model_type"].get<std::string>();
  j["architectures"] = json::array({mt == "deepseek_v32" ? "DeepseekV32ForCausalLM"
                                    : mt == "deepseek_v3" ? "DeepseekV3ForCausalLM"
                                    : mt == "deepseek_v2" ? "DeepseekV2ForCausalLM"
                                    : mt == "qwen2"       ? "Qwen2ForCausalLM"
                                                          : "LlamaForCausalLM"});
  j["torch_dtype"] = "float32";
  return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

std::unique_ptr<CausalLM> load_gguf_model(const std::string& path) { return load_gguf_model(GgufFile::open(path)); }

std::unique_ptr<CausalLM> load_gguf_model(const GgufFile& f) {
  ModelConfig config = parse_model_config(gguf_hf_config(f), f.path());
  std::unique_ptr<CausalLM> model = create_model(config);
  GgufTensorMap map(config);
  model->for_each_param([&](nn::Param& p) {
    Tensor t = map.load(f, p.name, p.shape);
    if (!t.defined()) {
      if (p.optional) return;
      BALEINE_FAIL("{}: missing tensor '{}' (for {}, shape {})", f.path(), map.source_name(p.name), p.name,
                   shape_string(p.shape));
    }
    if (p.kind == nn::ParamKind::Vector && t.dtype() != DType::F32) t = to_f32_any(t);
    *p.tensor = std::move(t);
  });
  if (config.rope_scaling.type == RopeScalingType::Llama3 && f.contains("rope_freqs.weight")) {
    check_rope_freqs(config, f.tensor("rope_freqs.weight").to_f32(), f.path());
  }
  model->prepare();
  return model;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

namespace {

uint32_t file_type_of(const std::map<DType, int64_t>& counts) {
  DType most = DType::F32;
  int64_t best = -1;
  for (auto [dt, n] : counts)
    if (n > best) best = n, most = dt;
  switch (most) {  // llama_ftype
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 15;  // MOSTLY_Q4_K_M
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

}  // namespace

void write_gguf_model(CausalLM& model, const std::string& path, const GgufWriteOptions& o) {
  const ModelConfig& c = model.config();
  io::GgufWriter w;
  const std::string arch = gguf_arch_name(c), a = arch + ".";
  auto u32 = [&](const std::string& k, int64_t v) {
    BALEINE_CHECK(v >= 0 && v <= int64_t(UINT32_MAX), "GGUF: {}{} = {} does not fit in u32", a, k, v);
    w.set(a + k, GgufValue::of_u32(uint32_t(v)));
  };
  auto f32 = [&](const std::string& k, double v) { w.set(a + k, GgufValue::of_f32(float(v))); };
  w.set("general.architecture", GgufValue::of_string(arch));
  if (!o.name.empty()) w.set("general.name", GgufValue::of_string(o.name));
  w.set("general.file_type", GgufValue::of_u32(0));  // set below
  const int64_t nextn = c.is_deepseek() && model.has_mtp() ? c.num_nextn_predict_layers : 0;
  u32("block_count", c.num_hidden_layers + nextn);
  u32("context_length", c.max_position_embeddings);
  u32("embedding_length", c.hidden_size);
  u32("feed_forward_length", c.intermediate_size);
  u32("attention.head_count", c.num_attention_heads);
  f32("rope.freq_base", c.rope_theta);
  f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  u32("vocab_size", c.vocab_size);
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == RopeScalingType::Yarn) {
    w.set(a + "rope.scaling.type", GgufValue::of_string("yarn"));
    f32("rope.scaling.factor", rs.factor);
    u32("rope.scaling.original_context_length", int64_t(rs.original_max_position_embeddings));
    f32("rope.scaling.yarn_beta_fast", rs.beta_fast);
    f32("rope.scaling.yarn_beta_slow", rs.beta_slow);
    if (c.is_deepseek() && rs.mscale_all_dim != 0) {
      f32("rope.scaling.yarn_log_multiplier", 0.1 * rs.mscale_all_dim);
      // f32 cannot hold 0.1·m exactly; keep both values exactly for our own loader.
      w.set("baleine.rope.scaling.mscale_all_dim", GgufValue::of_f64(rs.mscale_all_dim));
      w.set("baleine.rope.scaling.mscale", GgufValue::of_f64(rs.mscale));
    }
  } else if (rs.type == RopeScalingType::Linear) {
    w.set(a + "rope.scaling.type", GgufValue::of_string("linear"));
    f32("rope.scaling.factor", rs.factor);
  } else if (rs.type == RopeScalingType::Llama3) {
    BALEINE_CHECK(c.architecture == Architecture::Llama, "GGUF: llama3 rope scaling is only written for llama");
    w.set("baleine.rope.scaling.type", GgufValue::of_string("llama3"));
    w.set("baleine.rope.scaling.factor", GgufValue::of_f32(float(rs.factor)));
    w.set("baleine.rope.scaling.low_freq_factor", GgufValue::of_f32(float(rs.low_freq_factor)));
    w.set("baleine.rope.scaling.high_freq_factor", GgufValue::of_f32(float(rs.high_freq_factor)));
    w.set("baleine.rope.scaling.original_context_length", GgufValue::of_f32(float(rs.original_max_position_embeddings)));
  }
  if (c.is_deepseek()) {
    const int64_t R = c.kv_lora_rank, Dr = c.qk_rope_head_dim;
    u32("attention.head_count_kv", o.legacy_kv_b ? c.num_attention_heads : 1);
    u32("attention.q_lora_rank", c.q_lora_rank);  // llama.cpp needs it even when 0
    u32("attention.kv_lora_rank", R);
    if (o.legacy_kv_b) {
      u32("attention.key_length", c.qk_head_dim());
      u32("attention.value_length", c.v_head_dim);
    } else {
      u32("attention.key_length", R + Dr);
      u32("attention.value_length", R);
      u32("attention.key_length_mla", c.qk_head_dim());
      u32("attention.value_length_mla", c.v_head_dim);
    }
    u32("rope.dimension_count", Dr);
    BALEINE_CHECK(c.moe_layer_freq == 1, "GGUF {} cannot express moe_layer_freq {} (only 1)", arch, c.moe_layer_freq);
    u32("leading_dense_block_count", c.n_routed_experts > 0 ? c.first_k_dense_replace : c.num_hidden_layers);
    u32("expert_feed_forward_length", c.n_routed_experts > 0 ? c.moe_intermediate_size : c.intermediate_size);
    u32("expert_shared_count", c.n_shared_experts);
    if (c.n_routed_experts > 0) {
      u32("expert_count", c.n_routed_experts);
      u32("expert_used_count", c.num_experts_per_tok);
      f32("expert_weights_scale", c.routed_scaling_factor);
      if (c.norm_topk_prob) w.set(a + "expert_weights_norm", GgufValue::of_bool(true));
      u32("expert_gating_func", c.scoring_func == ScoringFunc::Sigmoid ? 2 : 1);
      if (c.n_group > 1) {
        u32("expert_group_count", c.n_group);
        u32("expert_group_used_count", c.topk_group);
      }
      const char* method = c.topk_method == TopkMethod::NoAuxTc ? "noaux_tc"
                           : c.topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy" : "greedy";
      w.set("baleine.topk_method", GgufValue::of_string(method));
    }
    if (nextn > 0) u32("nextn_predict_layers", nextn);
    if (c.has_indexer()) {
      BALEINE_CHECK(!c.indexer_rope_interleave, "GGUF deepseek32 has no key for an interleaved indexer RoPE");
      u32("attention.indexer.head_count", c.index_n_heads);
      u32("attention.indexer.key_length", c.index_head_dim);
      u32("attention.indexer.top_k", c.index_topk);
    }
  } else {
    u32("attention.head_count_kv", c.num_key_value_heads);
    u32("rope.dimension_count", c.head_dim);
    if (c.head_dim * c.num_attention_heads != c.hidden_size) {
      u32("attention.key_length", c.head_dim);
      u32("attention.value_length", c.head_dim);
    }
  }
  for (const auto& [k, v] : o.metadata) w.set(k, v);

  std::map<DType, int64_t> counts;
  GgufTensorMap map(c);
  map.set_legacy_kv_b(o.legacy_kv_b);
  std::map<std::string, Tensor> params;
  std::vector<std::string> order;
  model.for_each_param([&](nn::Param& p) {
    if (!p.tensor->defined()) {
      BALEINE_CHECK(p.optional, "GGUF writer: parameter '{}' is not loaded", p.name);
      return;
    }
    params[p.name] = *p.tensor;
    order.push_back(p.name);
    if (p.kind == nn::ParamKind::Matrix) counts[p.tensor->dtype()] += p.tensor->numel();
  });
  if (c.rope_scaling.type == RopeScalingType::Llama3) w.add_tensor("rope_freqs.weight", llama3_rope_freqs(c));
  for (const std::string& name : order)
    for (auto& [gname, t] : map.store(name, params)) w.add_tensor(gname, std::move(t));
  w.set("general.file_type", GgufValue::of_u32(file_type_of(counts)));
  w.write(path);
}

}  // namespace baleine
