#include "apps/baleine/model_files.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/gguf_model.h"

namespace baleine::app {

using io::GgufValue;

TokenizerVocab gguf_vocab(const io::GgufFile& f) {
  BALEINE_CHECK(f.has("tokenizer.ggml.model") && f.has("tokenizer.ggml.tokens"),
                "{}: the file carries no tokenizer (tokenizer.ggml.model / tokenizer.ggml.tokens)", f.path());
  const std::string where = f.path() + ": ";
  TokenizerVocab v;
  v.model = f.get_string("tokenizer.ggml.model", "");
  v.pre = f.get_string("tokenizer.ggml.pre", "default");
  for (const GgufValue& t : f.get("tokenizer.ggml.tokens").as_array(where + "tokenizer.ggml.tokens"))
    v.tokens.push_back(t.as_string(where + "tokenizer.ggml.tokens[]"));
  if (f.has("tokenizer.ggml.token_type"))
    for (const GgufValue& t : f.get("tokenizer.ggml.token_type").as_array(where + "tokenizer.ggml.token_type"))
      v.token_types.push_back(int32_t(t.as_int(where + "tokenizer.ggml.token_type[]")));
  if (f.has("tokenizer.ggml.merges"))
    for (const GgufValue& m : f.get("tokenizer.ggml.merges").as_array(where + "tokenizer.ggml.merges"))
      v.merges.push_back(m.as_string(where + "tokenizer.ggml.merges[]"));
  v.bos = int32_t(f.get_int("tokenizer.ggml.bos_token_id", -1));
  v.eos = int32_t(f.get_int("tokenizer.ggml.eos_token_id", -1));
  v.pad = int32_t(f.get_int("tokenizer.ggml.padding_token_id", -1));
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", false);
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  v.chat_template = f.get_string("tokenizer.chat_template", "");
  return v;
}

std::vector<std::pair<std::string, GgufValue>> gguf_vocab_metadata(const TokenizerVocab& v) {
  std::vector<std::pair<std::string, GgufValue>> m;
  m.emplace_back("tokenizer.ggml.model", GgufValue::of_string(v.model));
  m.emplace_back("tokenizer.ggml.pre", GgufValue::of_string(v.pre));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::of_strings(v.tokens));
  m.emplace_back("tokenizer.ggml.token_type", GgufValue::of_i32s(v.token_types));
  m.emplace_back("tokenizer.ggml.merges", GgufValue::of_strings(v.merges));
  if (v.bos >= 0) m.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::of_u32(uint32_t(v.bos)));
  if (v.eos >= 0) m.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::of_u32(uint32_t(v.eos)));
  if (v.pad >= 0) m.emplace_back("tokenizer.ggml.padding_token_id", GgufValue::of_u32(uint32_t(v.pad)));
  m.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::of_bool(v.add_bos));
  m.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::of_bool(v.add_eos));
  if (!v.chat_template.empty()) m.emplace_back("tokenizer.chat_template", GgufValue::of_string(v.chat_template));
  return m;
}

Tokenizer load_tokenizer_for(const std::string& model_path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(model_path) && is_gguf_path(model_path)) {
    io::GgufFile f = io::GgufFile::open(model_path);
    return tokenizer_from_vocab(gguf_vocab(f), model_path);
  }
  if (fs::is_directory(model_path))
    BALEINE_CHECK(fs::exists(fs::path(model_path) / "tokenizer.json"), "{}: no tokenizer.json next to the model", model_path);
  return Tokenizer::load(model_path);
}

ModelConfig model_config_for(const std::string& model_path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(model_path) && is_gguf_path(model_path)) {
    io::GgufFile f = io::GgufFile::open(model_path);
    return parse_model_config(gguf_hf_config(f), model_path);
  }
  return load_model_config(model_path);
}

std::optional<ChatFormat> chat_format_of_model(const std::string& model_path, const std::string& tokenizer_dir) {
  namespace fs = std::filesystem;
  auto read_json = [](const fs::path& p) {
    std::ifstream f(p);
    return f.good() ? nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false) : nlohmann::json();
  };
  const fs::path tok_cfg = fs::path(tokenizer_dir.empty() ? model_path : tokenizer_dir) / "tokenizer_config.json";
  if (const nlohmann::json cfg = read_json(tok_cfg); cfg.is_object() && cfg.contains("baleine_chat_format")) {
    BALEINE_CHECK(cfg["baleine_chat_format"].is_string(), "{}: baleine_chat_format must be a string", tok_cfg.string());
    return chat_format_from_name(cfg["baleine_chat_format"].get<std::string>());
  }
  if (fs::is_regular_file(model_path) && is_gguf_path(model_path)) {
    const io::GgufFile f = io::GgufFile::open(model_path);
    if (f.has("baleine.chat_format")) return chat_format_from_name(f.get_string("baleine.chat_format", ""));
    const std::string arch = f.get_string("general.architecture", "");
    if (arch == "deepseek32") return ChatFormat::DeepSeekV32;
    if (arch == "deepseek4") return ChatFormat::DeepSeekV4;
    return std::nullopt;
  }
  const nlohmann::json cfg = read_json(fs::path(model_path) / "config.json");
  if (!cfg.is_object()) return std::nullopt;
  auto is = [&](const char* model_type, const char* architecture) {
    if (cfg.contains("model_type") && cfg["model_type"] == model_type) return true;
    if (cfg.contains("architectures") && cfg["architectures"].is_array())
      for (const auto& a : cfg["architectures"])
        if (a == architecture) return true;
    return false;
  };
  if (is("deepseek_v32", "DeepseekV32ForCausalLM")) return ChatFormat::DeepSeekV32;
  if (is("deepseek_v4", "DeepseekV4ForCausalLM")) return ChatFormat::DeepSeekV4;
  return std::nullopt;
}

}  // namespace baleine::app
