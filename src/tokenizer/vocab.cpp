// tokenizer/vocab.cpp — tokenizer.json ↔ flat vocabulary lists (GGUF tokenizer.ggml.*).
#include "tokenizer/vocab.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace baleine {

using nlohmann::json;

namespace {

struct KnownPre {
  const char* name;
  std::vector<std::string> splits;  // Split regexes in order, then ByteLevel(use_regex false)
  bool nfc;
  bool ignore_merges;
};

const std::vector<KnownPre>& known() {
  static const std::vector<KnownPre> k = {
      {"deepseek-v3",
       {"\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
        "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
       false, false},
      {"qwen2",
       {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       true, false},
      {"llama-bpe",
       {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       false, true},
  };
  return k;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in.good()) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    BALEINE_FAIL("{}: invalid JSON at byte {}", source, e.byte);
  }
}

// Split regexes of a pre_tokenizer (Sequence of Split + a final ByteLevel without its own regex).
bool split_regexes(const json& p, std::vector<std::string>& out) {
  std::vector<json> steps;
  if (p.value("type", "") == "Sequence") {
    if (!p.contains("pretokenizers")) return false;
    for (const json& q : p["pretokenizers"]) steps.push_back(q);
  } else {
    steps.push_back(p);
  }
  bool byte_level = false;
  for (const json& s : steps) {
    std::string t = s.value("type", "");
    if (t == "Split") {
      if (byte_level || !s.contains("pattern") || !s["pattern"].contains("Regex")) return false;
      if (s.value("behavior", "") != "Isolated" || s.value("invert", false)) return false;
      out.push_back(s["pattern"]["Regex"].get<std::string>());
    } else if (t == "ByteLevel") {
      if (s.value("use_regex", true) || s.value("add_prefix_space", false)) return false;
      byte_level = true;
    } else {
      return false;
    }
  }
  return byte_level;
}

std::string content_of(const json& c, const char* key) {
  if (!c.contains(key) || c[key].is_null()) return "";
  if (c[key].is_string()) return c[key].get<std::string>();
  if (c[key].is_object()) return c[key].value("content", std::string());
  return "";
}

}  // namespace

const std::vector<std::string>& known_pre_tokenizers() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& k : known()) n.push_back(k.name);
    return n;
  }();
  return names;
}

TokenizerVocab vocab_from_tokenizer_files(const std::string& dir, int64_t pad_to) {
  namespace fs = std::filesystem;
  fs::path d = dir;
  std::string tj = read_text(d / "tokenizer.json");
  BALEINE_CHECK(!tj.empty(), "{}: no tokenizer.json", dir);
  return vocab_from_tokenizer_json(tj, read_text(d / "tokenizer_config.json"), (d / "tokenizer.json").string(), pad_to);
}

TokenizerVocab vocab_from_tokenizer_json(const std::string& tokenizer_json, const std::string& config_json,
                                         const std::string& source, int64_t pad_to) {
  json j = parse(tokenizer_json, source);
  BALEINE_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), "{}: missing 'model' object", source);
  const json& model = j["model"];
  BALEINE_CHECK(model.value("type", std::string("BPE")) == "BPE", "{}: only BPE tokenizers can be written to GGUF", source);
  TokenizerVocab v;
  std::vector<std::string> splits;
  BALEINE_CHECK(j.contains("pre_tokenizer") && split_regexes(j["pre_tokenizer"], splits),
                "{}: the pre-tokenizer is not a sequence of Split regexes and ByteLevel; llama.cpp cannot name it", source);
  bool nfc = false;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    nfc = n.value("type", "") == "NFC" ||
          (n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].size() == 1 &&
           n["normalizers"][0].value("type", "") == "NFC");
  }
  for (const auto& k : known())
    if (k.splits == splits && k.nfc == nfc) v.pre = k.name;
  BALEINE_CHECK(!v.pre.empty(), "{}: pre-tokenizer not known to llama.cpp (known: deepseek-v3, qwen2, llama-bpe)", source);

  std::map<int64_t, std::pair<std::string, TokenType>> by_id;
  for (auto& [tok, id] : model.at("vocab").items()) {
    BALEINE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24), "{}: bad id for '{}'", source, tok);
    by_id[id.get<int64_t>()] = {tok, TokenType::Normal};
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const json& a : j["added_tokens"]) {
      int64_t id = a.at("id").get<int64_t>();
      BALEINE_CHECK(id >= 0 && id < (1 << 24), "{}: bad added token id {}", source, id);
      by_id[id] = {a.at("content").get<std::string>(), a.value("special", false) ? TokenType::Control : TokenType::UserDefined};
    }
  const int64_t n = std::max<int64_t>(by_id.empty() ? 0 : by_id.rbegin()->first + 1, pad_to);
  v.tokens.resize(size_t(n));
  v.token_types.assign(size_t(n), int32_t(TokenType::Unused));
  for (int64_t i = 0; i < n; ++i) v.tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
  for (auto& [id, tt] : by_id) {
    v.tokens[size_t(id)] = tt.first;
    v.token_types[size_t(id)] = int32_t(tt.second);
  }
  if (model.contains("merges"))
    for (const json& m : model["merges"]) {
      if (m.is_string()) v.merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2) v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else BALEINE_FAIL("{}: bad merge entry", source);
    }
  if (!config_json.empty()) {
    json c = parse(config_json, source + " (tokenizer_config.json)");
    auto id_of = [&](const std::string& s) -> int32_t {
      if (s.empty()) return -1;
      for (auto& [id, tt] : by_id)
        if (tt.first == s) return int32_t(id);
      return -1;
    };
    v.bos = id_of(content_of(c, "bos_token"));
    v.eos = id_of(content_of(c, "eos_token"));
    v.pad = id_of(content_of(c, "pad_token"));
    v.add_bos = c.value("add_bos_token", false);
    v.add_eos = c.value("add_eos_token", false);
    if (c.contains("chat_template") && c["chat_template"].is_string()) v.chat_template = c["chat_template"].get<std::string>();
  }
  return v;
}

void tokenizer_json_from_vocab(const TokenizerVocab& v, std::string& tokenizer_json, std::string& config_json,
                               const std::string& source) {
  BALEINE_CHECK(v.model == "gpt2", "{}: tokenizer.ggml.model '{}' is not supported (only gpt2 byte-level BPE)", source, v.model);
  const KnownPre* pre = nullptr;
  for (const auto& k : known())
    if (v.pre == k.name) pre = &k;
  BALEINE_CHECK(pre != nullptr, "{}: tokenizer.ggml.pre '{}' is not supported (supported: deepseek-v3, qwen2, llama-bpe)",
                source, v.pre);
  BALEINE_CHECK(v.token_types.empty() || v.token_types.size() == v.tokens.size(),
                "{}: tokenizer.ggml.token_type has {} entries for {} tokens", source, v.token_types.size(), v.tokens.size());
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    TokenType t = v.token_types.empty() ? TokenType::Normal : TokenType(v.token_types[i]);
    if (t == TokenType::Unused) continue;
    if (t == TokenType::Control || t == TokenType::UserDefined) {
      added.push_back({{"id", int64_t(i)}, {"content", v.tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", t != TokenType::Control}, {"special", t == TokenType::Control}});
    }
    vocab[v.tokens[i]] = int64_t(i);
  }
  json pretok = json::array();
  for (const auto& rx : pre->splits)
    pretok.push_back({{"type", "Split"}, {"pattern", {{"Regex", rx}}}, {"behavior", "Isolated"}, {"invert", false}});
  pretok.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  json j = {{"version", "1.0"},
            {"added_tokens", added},
            {"normalizer", pre->nfc ? json{{"type", "NFC"}} : json(nullptr)},
            {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pretok}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
                       {"byte_fallback", false}, {"ignore_merges", pre->ignore_merges}, {"vocab", vocab}, {"merges", v.merges}}}};
  auto tok = [&](int32_t id) -> json {
    if (id < 0 || size_t(id) >= v.tokens.size()) return nullptr;
    return v.tokens[size_t(id)];
  };
  json c = {{"bos_token", tok(v.bos)}, {"eos_token", tok(v.eos)}, {"add_bos_token", v.add_bos}, {"add_eos_token", v.add_eos}};
  if (v.pad >= 0) c["pad_token"] = tok(v.pad);
  if (!v.chat_template.empty()) c["chat_template"] = v.chat_template;
  try {
    tokenizer_json = j.dump();
    config_json = c.dump(2);
  } catch (const json::exception& e) {
    BALEINE_FAIL("{}: tokenizer has a token that is not valid UTF-8 ({})", source, e.what());
  }
}

Tokenizer tokenizer_from_vocab(const TokenizerVocab& v, const std::string& source) {
  std::string tj, cj;
  tokenizer_json_from_vocab(v, tj, cj, source);
  return Tokenizer::from_json(tj, cj, source);
}

}  // namespace baleine
