// models/config.h — the model configuration, read from a Hugging Face config.json.
// defines: Architecture, ScoringFunc, TopkMethod, RopeScaling, ModelConfig, load_model_config, parse_model_config,
//          ModelStats, model_stats
//
// Config is data: every field is a config.json key (same name, same meaning). Behaviour switches are enums read
// from keys such as model_type, scoring_func and topk_method — never inferred from a dimension.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace baleine {

// DeepSeekV32: V3 plus DeepSeek Sparse Attention (a lightning indexer per layer; model_type deepseek_v32).
enum class Architecture { DeepSeekV3, DeepSeekV2, DeepSeekV32, Qwen2, Llama };
enum class ScoringFunc { Sigmoid, Softmax };
// greedy: plain top-k; group_limited_greedy: V2 groups scored by their max; noaux_tc: V3 groups scored by the
// sum of their top-2 biased scores, selection bias e_score_correction_bias.
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoAuxTc };
enum class RopeScalingType { None, Yarn, Llama3, Linear };

const char* architecture_name(Architecture a);

struct RopeScaling {
  RopeScalingType type = RopeScalingType::None;
  double factor = 1.0;
  double original_max_position_embeddings = 0;
  double beta_fast = 32, beta_slow = 1;       // yarn
  double mscale = 1.0, mscale_all_dim = 0.0;  // yarn (DeepSeek): 0 means "not given"
  double low_freq_factor = 1, high_freq_factor = 4;  // llama3
};

struct ModelConfig {
  Architecture architecture = Architecture::DeepSeekV3;
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;       // dense FFN width
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;     // GQA (dense models); meaningless for MLA
  int64_t head_dim = 0;                // dense models: hidden_size / heads unless given
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;         // q/k/v bias (qwen2: always true)
  int64_t bos_token_id = -1, eos_token_id = -1;

  // MLA (DeepSeek)
  int64_t q_lora_rank = 0;             // 0: no query compression (V2-Lite)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  // DeepSeekMoE
  int64_t n_routed_experts = 0, n_shared_experts = 0, num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t n_group = 1, topk_group = 1;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  TopkMethod topk_method = TopkMethod::Greedy;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t num_nextn_predict_layers = 0;  // MTP modules
  // DeepSeek Sparse Attention (V3.2): the lightning indexer's heads and head dim, and how many earlier positions
  // each query keeps (its first qk_rope_head_dim dims are roped, half-split).
  int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
  // The indexer's RoPE pairs: half-split (false, DeepSeek-V3.2 and llama.cpp's deepseek32) or adjacent (true, as
  // some DSA checkpoints declare with this key; MLA's own RoPE is always adjacent).
  bool indexer_rope_interleave = false;
  // Weight quantisation declared by the checkpoint (informational; FP8 blocks are dequantised on load).
  std::string quantization_method;

  bool is_deepseek() const {
    return architecture == Architecture::DeepSeekV3 || architecture == Architecture::DeepSeekV2 ||
           architecture == Architecture::DeepSeekV32;
  }
  bool has_indexer() const { return architecture == Architecture::DeepSeekV32; }
  bool is_moe_layer(int64_t layer) const {
    return is_deepseek() && n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Softmax scale of attention: 1/sqrt(head dim), times mscale² under DeepSeek YaRN.
  double attention_scale() const;
};

// Reads and validates `path` (a config.json file or a directory holding one). Errors name the file and key.
ModelConfig load_model_config(const std::string& path);
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source_name);

// Parameter and cache accounting from the config alone (what `baleine info` prints).
struct ModelStats {
  double total_params = 0;        // main model, MTP excluded
  double active_params = 0;       // per token: everything but the embedding lookup, only top-k routed experts
  double mtp_params = 0;          // MTP modules (excluding the shared embedding / head copies)
  double embedding_params = 0;
  double kv_bytes_per_token = 0;  // cache actually kept (MLA latent (+ indexer keys) or GQA K/V), bf16
  double indexer_params = 0;      // DSA lightning indexers of the main model (included in total and active)
  double kv_bytes_per_token_mha = 0;  // the equivalent full multi-head cache, bf16
};
ModelStats model_stats(const ModelConfig& c);

}  // namespace baleine
