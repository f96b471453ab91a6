// Model configuration: real DeepSeek configs give the published parameter counts; bad configs give one-line
// errors naming the file and the key.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/config.h"

using namespace baleine;

namespace {
const std::string kData = BALEINE_TEST_DATA;

void expect_within(double value, double target, double rel, const char* what) {
  EXPECT_LE(std::fabs(value - target) / target, rel) << what << ": " << value << " vs " << target;
}

std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / "baleine_test_config";
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

std::string error_of(const std::string& path) {
  try {
    load_model_config(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

nlohmann::json v3_json() {
  std::ifstream in(kData + "/configs/deepseek-v3/config.json");
  return nlohmann::json::parse(in);
}
}  // namespace

// DeepSeek-V3.2-Exp: V3's config with the DSA keys of DeepSeek's inference/config_671B_v3.2.json (64 indexer
// heads of 128, top-2048). The indexer adds 61 × (64·128·1536 + 128·7168 + 2·128 + 64·7168) = 851.5M parameters.
TEST(Config, DeepSeekV32ExpCountsTheIndexer) {
  ModelConfig c = load_model_config(kData + "/configs/deepseek-v3.2-exp");
  ModelConfig v3 = load_model_config(kData + "/configs/deepseek-v3");
  EXPECT_EQ(c.architecture, Architecture::DeepSeekV32);
  EXPECT_TRUE(c.has_indexer() && !v3.has_indexer());
  EXPECT_EQ(c.index_n_heads, 64);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 2048);
  EXPECT_FALSE(c.indexer_rope_interleave);
  ModelStats s = model_stats(c), s3 = model_stats(v3);
  EXPECT_DOUBLE_EQ(s.indexer_params, 61.0 * (64 * 128 * 1536 + 128 * 7168 + 2 * 128 + 64 * 7168));
  EXPECT_DOUBLE_EQ(s.total_params - s3.total_params, s.indexer_params);
  EXPECT_DOUBLE_EQ(s.active_params - s3.active_params, s.indexer_params);
  EXPECT_DOUBLE_EQ(s.kv_bytes_per_token, (576.0 + 128) * 61 * 2);  // latent + one indexer key per token and layer
  // Bad DSA configs name the file and the key.
  nlohmann::json j = v3_json();
  j["model_type"] = "deepseek_v32";
  j["index_n_heads"] = 64, j["index_head_dim"] = 128;
  auto err = [&](const nlohmann::json& x) {
    try {
      parse_model_config(x, "v32.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err(j).find("missing required key 'index_topk'"), std::string::npos) << err(j);
  j["index_topk"] = 163841;
  EXPECT_NE(err(j).find("'index_topk' (163841) exceeds the context"), std::string::npos) << err(j);
  j["index_topk"] = 2048, j["index_head_dim"] = 32;
  EXPECT_NE(err(j).find("'index_head_dim' (32) must be at least qk_rope_head_dim (64)"), std::string::npos) << err(j);
  j["index_head_dim"] = 128, j["q_lora_rank"] = nullptr;
  EXPECT_NE(err(j).find("needs 'q_lora_rank'"), std::string::npos) << err(j);
}

TEST(Config, DeepSeekV3MatchesPublishedCounts) {
  ModelConfig c = load_model_config(kData + "/configs/deepseek-v3");
  EXPECT_EQ(c.architecture, Architecture::DeepSeekV3);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoAuxTc);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::Yarn);
  EXPECT_EQ(c.quantization_method, "fp8");
  ModelStats s = model_stats(c);
  expect_within(s.total_params, 671e9, 0.03, "V3 total");
  expect_within(s.active_params, 37e9, 0.03, "V3 active");
  EXPECT_GT(s.mtp_params, 10e9);  // the MTP module is ~11.5B (outside the 671B)
  EXPECT_DOUBLE_EQ(s.kv_bytes_per_token, 576.0 * 61 * 2);           // 70,272 B
  EXPECT_DOUBLE_EQ(s.kv_bytes_per_token_mha, 128.0 * 320 * 61 * 2);
  // Softmax scale m²/sqrt(192), m = 0.1·ln(40) + 1.
  EXPECT_NEAR(c.attention_scale(), 0.13523, 1e-5);
}

TEST(Config, DeepSeekV2LiteMatchesPublishedCounts) {
  ModelConfig c = load_model_config(kData + "/configs/deepseek-v2-lite/config.json");
  EXPECT_EQ(c.architecture, Architecture::DeepSeekV2);
  EXPECT_EQ(c.q_lora_rank, 0);  // null: no query compression
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  ModelStats s = model_stats(c);
  expect_within(s.total_params, 15.7e9, 0.03, "V2-Lite total");
  expect_within(s.active_params, 2.4e9, 0.03, "V2-Lite active");
  EXPECT_DOUBLE_EQ(s.kv_bytes_per_token, 576.0 * 27 * 2);  // 31,104 B
  EXPECT_NEAR(c.attention_scale(), 0.11472, 1e-5);
}

TEST(Config, DistillQwen) {
  ModelConfig c = load_model_config(kData + "/configs/r1-distill-qwen-1.5b");
  EXPECT_EQ(c.architecture, Architecture::Qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);
  ModelStats s = model_stats(c);
  expect_within(s.total_params, 1.78e9, 0.03, "R1-Distill-Qwen-1.5B total");  // 1.777B with untied head
}

TEST(ConfigErrors, MalformedJsonNamesFile) {
  std::string p = write_temp("bad.json", "{\"model_type\": \"deepseek_v3\", ");
  std::string e = error_of(p);
  EXPECT_NE(e.find("bad.json"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
}

TEST(ConfigErrors, MissingFile) {
  std::string e = error_of("/nonexistent/dir/config.json");
  EXPECT_NE(e.find("/nonexistent/dir/config.json"), std::string::npos) << e;
}

TEST(ConfigErrors, UnknownModelType) {
  auto j = v3_json();
  j["model_type"] = "gpt_neox";
  std::string e = error_of(write_temp("unknown.json", j.dump()));
  EXPECT_NE(e.find("unknown model_type 'gpt_neox'"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown.json"), std::string::npos) << e;
}

TEST(ConfigErrors, EachKeyIsNamed) {
  struct Case { const char* key; nlohmann::json value; const char* expect; };
  std::vector<Case> cases = {
      {"hidden_size", "big", "'hidden_size' must be an integer"},
      {"hidden_size", -4, "'hidden_size' must be >= 1"},
      {"num_hidden_layers", nullptr, "missing required key 'num_hidden_layers'"},
      {"kv_lora_rank", nullptr, "missing required key 'kv_lora_rank'"},
      {"scoring_func", "relu", "unknown scoring_func 'relu'"},
      {"topk_method", "best", "unknown topk_method 'best'"},
      {"num_experts_per_tok", 300, "'num_experts_per_tok' must be in"},
      {"n_group", 7, "divisible by n_group"},
      {"topk_group", 9, "topk_group (9) exceeds n_group"},
      {"rms_norm_eps", "x", "'rms_norm_eps' must be a number"},
      {"tie_word_embeddings", 3, "'tie_word_embeddings' must be true or false"},
      {"hidden_act", "gelu", "only 'silu'"},
      {"qk_rope_head_dim", 63, "'qk_rope_head_dim' must be even"},
      {"rope_scaling", nlohmann::json{{"type", "dynamic"}, {"factor", 2}}, "unsupported rope scaling type 'dynamic'"},
      {"rope_scaling", 5, "'rope_scaling' must be an object"},
      {"quantization_config", nlohmann::json{{"quant_method", "gptq"}}, "'gptq' is not supported"},
  };
  for (const auto& c : cases) {
    auto j = v3_json();
    if (c.value.is_null()) j.erase(c.key); else j[c.key] = c.value;
    std::string e = error_of(write_temp("case.json", j.dump()));
    EXPECT_NE(e.find(c.expect), std::string::npos) << "key " << c.key << ": got '" << e << "'";
    EXPECT_NE(e.find("case.json"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
  }
}

TEST(ConfigErrors, TopLevelNotObject) {
  std::string e = error_of(write_temp("array.json", "[1,2,3]"));
  EXPECT_NE(e.find("expected a JSON object"), std::string::npos) << e;
}
