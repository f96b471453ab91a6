// baleine info --model PATH: architecture, parameter counts, KV-cache size per token.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "models/config.h"
#include "models/janus.h"

namespace baleine::app {
namespace {

std::string human_params(double n) {
  if (n >= 1e9) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.2f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", b / 1024 / 1024);
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024);
  return fmt::format("{:.0f} B", b);
}

// Janus-Pro: the language model plus the image components, counted from the config.
int run_janus_info(const std::string& model_path, bool as_json) {
  const JanusConfig c = load_janus_config(model_path);
  const JanusStats s = janus_stats(c);
  const ModelConfig& l = c.language;
  if (as_json) {
    nlohmann::json j = {{"architecture", "janus"},
                        {"language_model", {{"architecture", architecture_name(l.architecture)}, {"layers", l.num_hidden_layers},
                                            {"hidden_size", l.hidden_size}, {"vocab_size", l.vocab_size}, {"params", s.language}}},
                        {"image_tokens", c.image_tokens()}, {"image_size", c.image_size},
                        {"codebook_size", c.image_token_size},
                        {"params", {{"gen_head", s.gen_head}, {"gen_embed", s.gen_embed}, {"gen_aligner", s.gen_aligner},
                                    {"vq_decoder", s.vq_decoder}, {"vq_encoder", s.vq_encoder}, {"vision", s.vision},
                                    {"aligner", s.aligner}}},
                        {"total_params", s.total()}};
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("architecture  janus (Janus-Pro: one transformer that reads and draws images)\n");
  fmt::print("language      {}, {} layers, hidden {}, {} heads, vocab {}, context {}: {}\n", architecture_name(l.architecture),
             l.num_hidden_layers, l.hidden_size, l.num_attention_heads, l.vocab_size, l.max_position_embeddings,
             human_params(s.language));
  fmt::print("drawing       {}x{} pictures of {} codes from a VQ codebook of {} x {}: gen_head {}, gen_aligner {}, "
             "gen_embed {}, VQ decoder {} (encoder {})\n", c.image_size, c.image_size, c.image_tokens(),
             c.image_token_size, c.gen_embed_dim, human_params(s.gen_head), human_params(s.gen_aligner),
             human_params(s.gen_embed), human_params(s.vq_decoder), human_params(s.vq_encoder));
  if (c.has_vision)
    fmt::print("reading       {} at {} px ({} blocks, width {}, {} tokens per image): {}, aligner {}\n",
               c.vision_model_name, c.vision_image_size, c.vision.layers, c.vision.width, c.vision.tokens(),
               human_params(s.vision), human_params(s.aligner));
  fmt::print("parameters    {} total\n", human_params(s.total()));
  return 0;
}

int run_info(const std::string& model_path, bool as_json) {
  if (is_janus_model_dir(model_path)) return run_janus_info(model_path, as_json);
  ModelConfig c = model_config_for(model_path);
  ModelStats s = model_stats(c);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) moe_layers += c.is_moe_layer(l);
  if (as_json) {
    nlohmann::json j = {
        {"architecture", architecture_name(c.architecture)},
        {"layers", c.num_hidden_layers},
        {"dense_layers", c.num_hidden_layers - moe_layers},
        {"moe_layers", moe_layers},
        {"hidden_size", c.hidden_size},
        {"vocab_size", c.vocab_size},
        {"attention_heads", c.num_attention_heads},
        {"routed_experts", c.n_routed_experts},
        {"shared_experts", c.n_shared_experts},
        {"experts_per_token", c.num_experts_per_tok},
        {"mtp_modules", c.num_nextn_predict_layers},
        {"total_params", s.total_params},
        {"active_params", s.active_params},
        {"mtp_params", s.mtp_params},
        {"kv_bytes_per_token", s.kv_bytes_per_token},
        {"kv_bytes_per_token_mha", s.kv_bytes_per_token_mha},
    };
    if (c.has_indexer())
      j["sparse_attention"] = {{"index_n_heads", c.index_n_heads}, {"index_head_dim", c.index_head_dim},
                               {"index_topk", c.index_topk}, {"indexer_params", s.indexer_params}};
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("architecture  {}\n", architecture_name(c.architecture));
  fmt::print("layers        {} ({} dense + {} MoE), hidden {}, vocab {}, context {}\n", c.num_hidden_layers,
             c.num_hidden_layers - moe_layers, moe_layers, c.hidden_size, c.vocab_size, c.max_position_embeddings);
  if (c.is_deepseek()) {
    fmt::print("attention     MLA, {} heads, q_lora_rank {}, kv_lora_rank {}, qk {}+{} (rope), v {}, softmax scale {:.5f}\n",
               c.num_attention_heads, c.q_lora_rank > 0 ? std::to_string(c.q_lora_rank) : "none (no compression)",
               c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.attention_scale());
    if (c.has_indexer())
      fmt::print("sparse attn   DSA lightning indexer: {} heads of {}, each query keeps the top {} positions "
                 "({} indexer parameters)\n",
                 c.index_n_heads, c.index_head_dim, c.index_topk, human_params(s.indexer_params));
    if (c.n_routed_experts > 0) {
      const char* scoring = c.scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax";
      const char* method = c.topk_method == TopkMethod::NoAuxTc ? "noaux_tc"
                           : c.topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy" : "greedy";
      fmt::print("experts       {} routed (top-{}, {} groups keep {}, {}, {}) + {} shared, expert width {}\n",
                 c.n_routed_experts, c.num_experts_per_tok, c.n_group, c.topk_group, scoring, method,
                 c.n_shared_experts, c.moe_intermediate_size);
    }
  } else {
    fmt::print("attention     GQA, {} heads, {} KV heads, head dim {}{}\n", c.num_attention_heads,
               c.num_key_value_heads, c.head_dim, c.attention_bias ? ", q/k/v bias" : "");
  }
  fmt::print("parameters    {} total, {} active per token", human_params(s.total_params), human_params(s.active_params));
  if (c.num_nextn_predict_layers > 0) fmt::print(" (+{} in {} MTP module)", human_params(s.mtp_params), c.num_nextn_predict_layers);
  fmt::print("\n");
  fmt::print("kv cache      {} per token ({}, bf16) vs {} for the equivalent full multi-head cache ({:.1f}x smaller)\n",
             human_bytes(s.kv_bytes_per_token),
             c.has_indexer() ? "MLA latent + indexer key" : c.is_deepseek() ? "MLA latent" : "GQA",
             human_bytes(s.kv_bytes_per_token_mha), s.kv_bytes_per_token_mha / s.kv_bytes_per_token);
  return 0;
}

CommandRegistration reg{{"info", "Show a model's architecture, parameter counts and KV-cache size",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto model = std::make_shared<std::string>();
                           auto as_json = std::make_shared<bool>(false);
                           sub.add_option("--model", *model, "Model directory or config.json")->required();
                           sub.add_flag("--json", *as_json, "Print one JSON object");
                           return [=] { return run_info(*model, *as_json); };
                         }}};

}  // namespace
}  // namespace baleine::app
