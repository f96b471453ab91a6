#include "models/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/config_reader.h"

namespace baleine {

using nlohmann::json;

const char* architecture_name(Architecture a) {
  switch (a) {
    case Architecture::DeepSeekV3: return "deepseek_v3";
    case Architecture::DeepSeekV2: return "deepseek_v2";
    case Architecture::DeepSeekV32: return "deepseek_v32";
    case Architecture::Qwen2: return "qwen2";
    case Architecture::Llama: return "llama";
  }
  return "?";
}

using detail::Reader;

namespace {

// bos/eos ids may be an integer or a list (Llama-3.1 has several eos ids: take the first).
int64_t token_id(const Reader& r, const char* key) {
  if (!r.has(key)) return -1;
  const json& v = r.j[key];
  if (v.is_array()) {
    BALEINE_CHECK(!v.empty() && v[0].is_number_integer(), "{}: key '{}' must be an integer or a list of integers", r.source, key);
    return v[0].get<int64_t>();
  }
  return r.integer(key, -1, false);
}

RopeScaling parse_rope_scaling(const Reader& r) {
  RopeScaling s;
  if (!r.has("rope_scaling")) return s;
  const json& rs = r.j["rope_scaling"];
  BALEINE_CHECK(rs.is_object(), "{}: key 'rope_scaling' must be an object or null", r.source);
  std::string where = r.source + " rope_scaling";
  Reader sub{rs, where};
  std::string type = sub.has("type") ? sub.string("type", "") : sub.string("rope_type", "default");
  if (type == "default") return s;
  if (type == "yarn") {
    s.type = RopeScalingType::Yarn;
    s.factor = sub.number("factor", 1.0, true);
    s.original_max_position_embeddings = sub.number("original_max_position_embeddings", 4096);
    s.beta_fast = sub.number("beta_fast", 32);
    s.beta_slow = sub.number("beta_slow", 1);
    s.mscale = sub.number("mscale", 1.0);
    s.mscale_all_dim = sub.number("mscale_all_dim", 0.0);
  } else if (type == "llama3") {
    s.type = RopeScalingType::Llama3;
    s.factor = sub.number("factor", 1.0, true);
    s.low_freq_factor = sub.number("low_freq_factor", 1.0, true);
    s.high_freq_factor = sub.number("high_freq_factor", 4.0, true);
    s.original_max_position_embeddings = sub.number("original_max_position_embeddings", 8192, true);
    BALEINE_CHECK(s.high_freq_factor > s.low_freq_factor, "{}: high_freq_factor must exceed low_freq_factor", where);
  } else if (type == "linear") {
    s.type = RopeScalingType::Linear;
    s.factor = sub.number("factor", 1.0, true);
  } else {
    BALEINE_FAIL("{}: unsupported rope scaling type '{}' (supported: yarn, llama3, linear, default)", where, type);
  }
  BALEINE_CHECK(s.factor > 0, "{}: 'factor' must be positive", where);
  return s;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& source) {
  BALEINE_CHECK(j.is_object(), "{}: expected a JSON object at top level", source);
  Reader r{j, source};
  ModelConfig c;
  c.model_type = r.string("model_type", "", true);
  if (c.model_type == "deepseek_v3") c.architecture = Architecture::DeepSeekV3;
  else if (c.model_type == "deepseek_v2") c.architecture = Architecture::DeepSeekV2;
  else if (c.model_type == "deepseek_v32") c.architecture = Architecture::DeepSeekV32;
  else if (c.model_type == "qwen2") c.architecture = Architecture::Qwen2;
  else if (c.model_type == "llama") c.architecture = Architecture::Llama;
  else BALEINE_FAIL("{}: unknown model_type '{}' (supported: deepseek_v3, deepseek_v32, deepseek_v2, qwen2, llama)", source, c.model_type);

  c.vocab_size = r.integer("vocab_size", 0, true, 1);
  c.hidden_size = r.integer("hidden_size", 0, true, 1);
  c.num_hidden_layers = r.integer("num_hidden_layers", 0, true, 1);
  c.num_attention_heads = r.integer("num_attention_heads", 0, true, 1);
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads, false, 1);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  BALEINE_CHECK(c.rms_norm_eps > 0, "{}: key 'rms_norm_eps' must be positive", source);
  c.rope_theta = r.number("rope_theta", 10000.0);
  BALEINE_CHECK(c.rope_theta > 1, "{}: key 'rope_theta' must be > 1", source);
  c.rope_scaling = parse_rope_scaling(r);
  c.max_position_embeddings = r.integer("max_position_embeddings", 4096, false, 1);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.bos_token_id = token_id(r, "bos_token_id");
  c.eos_token_id = token_id(r, "eos_token_id");
  std::string act = r.string("hidden_act", "silu");
  BALEINE_CHECK(act == "silu", "{}: key 'hidden_act' is '{}'; only 'silu' (SwiGLU) is supported", source, act);
  if (r.has("quantization_config")) {
    const json& q = j["quantization_config"];
    BALEINE_CHECK(q.is_object(), "{}: key 'quantization_config' must be an object", source);
    c.quantization_method = q.value("quant_method", std::string("unknown"));
    BALEINE_CHECK(c.quantization_method == "fp8", "{}: quantization_config.quant_method '{}' is not supported (only fp8)",
                  source, c.quantization_method);
  }

  if (c.is_deepseek()) {
    c.intermediate_size = r.integer("intermediate_size", 0, true, 1);
    c.q_lora_rank = r.integer("q_lora_rank", 0, false, 0);  // null / absent / 0: no query compression
    c.kv_lora_rank = r.integer("kv_lora_rank", 0, true, 1);
    c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 0, true, 0);
    c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 0, true, 2);
    BALEINE_CHECK(c.qk_rope_head_dim % 2 == 0, "{}: key 'qk_rope_head_dim' must be even", source);
    c.v_head_dim = r.integer("v_head_dim", 0, true, 1);
    c.n_routed_experts = r.integer("n_routed_experts", 0, false, 0);
    c.n_shared_experts = r.integer("n_shared_experts", 0, false, 0);
    c.num_experts_per_tok = r.integer("num_experts_per_tok", 0, c.n_routed_experts > 0, 0);
    c.moe_intermediate_size = r.integer("moe_intermediate_size", 0, c.n_routed_experts > 0, 0);
    c.first_k_dense_replace = r.integer("first_k_dense_replace", 0, false, 0);
    c.moe_layer_freq = r.integer("moe_layer_freq", 1, false, 1);
    c.n_group = r.integer("n_group", 1, false, 1);
    c.topk_group = r.integer("topk_group", 1, false, 1);
    c.norm_topk_prob = r.boolean("norm_topk_prob", false);
    c.routed_scaling_factor = r.number("routed_scaling_factor", 1.0);
    c.num_nextn_predict_layers = r.integer("num_nextn_predict_layers", 0, false, 0);
    std::string scoring = r.string("scoring_func", "softmax");
    if (scoring == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
    else if (scoring == "softmax") c.scoring_func = ScoringFunc::Softmax;
    else BALEINE_FAIL("{}: unknown scoring_func '{}' (sigmoid or softmax)", source, scoring);
    std::string method = r.string("topk_method", c.architecture == Architecture::DeepSeekV2 ? "greedy" : "noaux_tc");
    if (method == "greedy") c.topk_method = TopkMethod::Greedy;
    else if (method == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
    else if (method == "noaux_tc") c.topk_method = TopkMethod::NoAuxTc;
    else BALEINE_FAIL("{}: unknown topk_method '{}' (greedy, group_limited_greedy or noaux_tc)", source, method);
    if (c.n_routed_experts > 0) {
      BALEINE_CHECK(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.n_routed_experts,
                    "{}: key 'num_experts_per_tok' must be in [1, n_routed_experts={}]", source, c.n_routed_experts);
      BALEINE_CHECK(c.moe_intermediate_size >= 1, "{}: key 'moe_intermediate_size' must be >= 1", source);
      BALEINE_CHECK(c.n_routed_experts % c.n_group == 0, "{}: n_routed_experts ({}) must be divisible by n_group ({})",
                    source, c.n_routed_experts, c.n_group);
      BALEINE_CHECK(c.topk_group <= c.n_group, "{}: topk_group ({}) exceeds n_group ({})", source, c.topk_group, c.n_group);
      BALEINE_CHECK(c.num_experts_per_tok <= c.topk_group * (c.n_routed_experts / c.n_group),
                    "{}: num_experts_per_tok ({}) exceeds the experts in topk_group groups", source, c.num_experts_per_tok);
      if (c.topk_method == TopkMethod::NoAuxTc)
        BALEINE_CHECK(c.n_routed_experts / c.n_group >= 2, "{}: noaux_tc needs at least 2 experts per group", source);
    }
    if (c.has_indexer()) {
      c.index_n_heads = r.integer("index_n_heads", 0, true, 1);
      c.index_head_dim = r.integer("index_head_dim", 0, true, 2);
      c.index_topk = r.integer("index_topk", 0, true, 1);
      c.indexer_rope_interleave = r.boolean("indexer_rope_interleave", false);
      BALEINE_CHECK(c.q_lora_rank > 0, "{}: deepseek_v32 needs 'q_lora_rank' > 0 (the indexer reads the query latent)", source);
      BALEINE_CHECK(c.index_head_dim >= c.qk_rope_head_dim,
                    "{}: key 'index_head_dim' ({}) must be at least qk_rope_head_dim ({}): the indexer ropes its first "
                    "qk_rope_head_dim dims", source, c.index_head_dim, c.qk_rope_head_dim);
      BALEINE_CHECK(c.index_topk <= c.max_position_embeddings,
                    "{}: key 'index_topk' ({}) exceeds the context the model allows (max_position_embeddings {})",
                    source, c.index_topk, c.max_position_embeddings);
    }
  } else {
    c.intermediate_size = r.integer("intermediate_size", 0, true, 1);
    BALEINE_CHECK(c.hidden_size % c.num_attention_heads == 0 || r.has("head_dim"),
                  "{}: hidden_size ({}) is not divisible by num_attention_heads ({})", source, c.hidden_size, c.num_attention_heads);
    c.head_dim = r.integer("head_dim", c.hidden_size / c.num_attention_heads, false, 2);
    BALEINE_CHECK(c.head_dim % 2 == 0, "{}: head_dim must be even for RoPE", source);
    BALEINE_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
                  "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source,
                  c.num_attention_heads, c.num_key_value_heads);
    c.attention_bias = c.architecture == Architecture::Qwen2 ? true : r.boolean("attention_bias", false);
    BALEINE_CHECK(!r.boolean("mlp_bias", false), "{}: key 'mlp_bias' true is not supported", source);
  }
  return c;
}

std::pair<nlohmann::json, std::string> detail::read_config_json(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  if (fs::is_directory(p)) p /= "config.json";
  std::ifstream in(p, std::ios::binary);
  BALEINE_CHECK(in.good(), "{}: cannot open model config (expected a config.json or a directory holding one)", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    BALEINE_FAIL("{}: invalid JSON at byte {}: {}", p.string(), e.byte, e.what());
  }
  BALEINE_CHECK(j.is_object(), "{}: expected a JSON object (a model config)", p.string());
  return {std::move(j), p.string()};
}

ModelConfig load_model_config(const std::string& path) {
  auto [j, source] = detail::read_config_json(path);
  BALEINE_CHECK(j.value("model_type", std::string()) != "multi_modality",
                "{}: this is a Janus-Pro model (model_type multi_modality): `baleine imagine` draws with it; text "
                "chat with Janus is not supported yet", source);
  return parse_model_config(j, source);
}

double ModelConfig::attention_scale() const {
  double d = is_deepseek() ? double(qk_head_dim()) : double(head_dim);
  double scale = 1.0 / std::sqrt(d);
  if (is_deepseek() && rope_scaling.type == RopeScalingType::Yarn && rope_scaling.mscale_all_dim != 0 &&
      rope_scaling.factor > 1) {
    double m = 0.1 * rope_scaling.mscale_all_dim * std::log(rope_scaling.factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

ModelStats model_stats(const ModelConfig& c) {
  ModelStats s;
  const double d = double(c.hidden_size), V = double(c.vocab_size), L = double(c.num_hidden_layers);
  const double H = double(c.num_attention_heads);
  s.embedding_params = V * d;
  const double head = c.tie_word_embeddings ? 0.0 : V * d;
  auto swiglu = [&](double width) { return 3.0 * d * width; };

  double attn = 0, indexer = 0;
  if (c.is_deepseek()) {
    double qk = double(c.qk_head_dim());
    attn += c.q_lora_rank > 0 ? d * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * H * qk : d * H * qk;
    attn += d * double(c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank;
    attn += double(c.kv_lora_rank) * H * double(c.qk_nope_head_dim + c.v_head_dim);
    attn += H * c.v_head_dim * d;
    s.kv_bytes_per_token = double(c.kv_lora_rank + c.qk_rope_head_dim + c.index_head_dim) * L * 2;
    if (c.has_indexer()) {  // wq_b [Hi·Di, q_lora], wk [Di, d], k_norm weight + bias, weights_proj [Hi, d]
      const double Hi = double(c.index_n_heads), Di = double(c.index_head_dim);
      indexer = Hi * Di * double(c.q_lora_rank) + Di * d + 2 * Di + Hi * d;
    }
    s.kv_bytes_per_token_mha = H * double(c.qk_head_dim() + c.v_head_dim) * L * 2;
  } else {
    double hd = double(c.head_dim), Hkv = double(c.num_key_value_heads);
    attn += d * H * hd + 2 * d * Hkv * hd + H * hd * d;
    if (c.attention_bias) attn += H * hd + 2 * Hkv * hd;
    s.kv_bytes_per_token = 2 * Hkv * hd * L * 2;
    s.kv_bytes_per_token_mha = 2 * H * hd * L * 2;
  }
  const double norms = 2 * d;
  double moe_total = 0, moe_active = 0;
  if (c.n_routed_experts > 0) {
    double router = double(c.n_routed_experts) * d + (c.topk_method == TopkMethod::NoAuxTc ? c.n_routed_experts : 0);
    double shared = c.n_shared_experts > 0 ? swiglu(double(c.n_shared_experts * c.moe_intermediate_size)) : 0;
    double expert = swiglu(double(c.moe_intermediate_size));
    moe_total = router + shared + double(c.n_routed_experts) * expert;
    moe_active = router + shared + double(c.num_experts_per_tok) * expert;
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    bool moe = c.is_moe_layer(l);
    s.total_params += attn + indexer + norms + (moe ? moe_total : swiglu(double(c.intermediate_size)));
    s.active_params += attn + indexer + norms + (moe ? moe_active : swiglu(double(c.intermediate_size)));
    s.indexer_params += indexer;
  }
  s.total_params += s.embedding_params + head + d;  // + final norm
  // Per token the embedding is a row lookup, not compute; the output head is a full matmul (tied or not).
  s.active_params += V * d + d;
  // MTP module: enorm, hnorm, eh_proj [d, 2d], one MoE decoder block, shared_head.norm (embedding/head shared).
  if (c.num_nextn_predict_layers > 0)
    s.mtp_params = double(c.num_nextn_predict_layers) * (3 * d + 2 * d * d + attn + indexer + norms + moe_total);
  (void)L;
  return s;
}

}  // namespace baleine
