// tokenizer/bpe_trainer.cpp — byte-level BPE training (the classic incremental algorithm: pair counts, an index of
// the words holding each pair, a lazy max-heap), producing a Hugging Face tokenizer.json.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tokenizer/tokenizer.h"

namespace baleine {

using nlohmann::json;

namespace {

// The DeepSeek-V3 pre-tokenizer: digits in groups of up to 3, CJK/kana runs, the main splitter, then ByteLevel.
json deepseek_v3_pre_tokenizer() {
  auto split = [](const std::string& rx) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", rx}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  return json{{"type", "Sequence"},
              {"pretokenizers",
               {split("\\p{N}{1,3}"), split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
                split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

std::string byte_symbol(int b) {  // GPT-2 byte-level alphabet
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    uint32_t cp = printable ? uint32_t(x) : uint32_t(256 + n++);
    if (x == b) {
      std::string s;
      if (cp < 0x80) s += char(cp);
      else s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
      return s;
    }
  }
  return "";
}

uint64_t key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

}  // namespace

const std::vector<std::string>& default_special_tokens() {
  static const std::vector<std::string> t = {
      "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
      "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>",
      "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
      "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"};
  return t;
}

void train_bpe_tokenizer(const std::vector<std::string>& files, const std::string& out_dir, const BpeTrainOptions& o) {
  namespace fs = std::filesystem;
  const auto& specials = default_special_tokens();
  const int64_t base = int64_t(specials.size()) + 256;
  BALEINE_CHECK(o.vocab_size >= base, "--vocab-size must be at least {} (special + byte tokens), got {}", base, o.vocab_size);
  BALEINE_CHECK(!files.empty(), "no input files");

  // A tokenizer with no merges gives us the exact pre-tokenizer the trained one will use.
  json vocab = json::object();
  for (size_t i = 0; i < specials.size(); ++i) vocab[specials[i]] = int(i);
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = int(specials.size()) + b;
  json skeleton = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
                   {"pre_tokenizer", deepseek_v3_pre_tokenizer()}, {"normalizer", nullptr}};
  Tokenizer pre = Tokenizer::from_json(skeleton.dump(), "", "bpe-trainer");

  // 1. Word (pre-token) frequencies over every input.
  std::unordered_map<std::string, int64_t> freq;
  int64_t total_bytes = 0;
  for (const auto& f : files) {
    std::vector<fs::path> paths;
    if (fs::is_directory(f)) {
      for (auto& e : fs::recursive_directory_iterator(f))
        if (e.is_regular_file()) paths.push_back(e.path());
      std::sort(paths.begin(), paths.end());
    } else {
      BALEINE_CHECK(fs::exists(f), "{}: no such file", f);
      paths.push_back(f);
    }
    for (const auto& p : paths) {
      std::ifstream in(p, std::ios::binary);
      BALEINE_CHECK(in.good(), "{}: cannot open", p.string());
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      total_bytes += int64_t(text.size());
      for (auto& piece : pre.pre_tokenize(text)) ++freq[piece];
    }
  }
  BALEINE_CHECK(!freq.empty(), "the input files are empty");

  // 2. Words as symbol-id sequences; initial symbols are the byte tokens.
  std::unordered_map<std::string, int32_t> byte_id;
  for (int b = 0; b < 256; ++b) byte_id[byte_symbol(b)] = int32_t(specials.size()) + b;
  std::vector<std::string> token_text(static_cast<size_t>(base));
  for (size_t i = 0; i < specials.size(); ++i) token_text[i] = specials[i];
  for (int b = 0; b < 256; ++b) token_text[specials.size() + size_t(b)] = byte_symbol(b);
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  std::vector<std::string> keys;
  keys.reserve(freq.size());
  for (auto& [w, c] : freq) keys.push_back(w);
  std::sort(keys.begin(), keys.end());  // deterministic word order
  for (auto& w : keys) {
    std::vector<int32_t> sym;
    for (size_t i = 0; i < w.size();) {
      size_t len = (static_cast<unsigned char>(w[i]) < 0x80) ? 1 : 2;  // alphabet chars are 1 or 2 bytes
      sym.push_back(byte_id.at(w.substr(i, len)));
      i += len;
    }
    words.push_back(std::move(sym));
    counts.push_back(freq[w]);
  }

  // 3. Pair counts, where-index, heap.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (size_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      uint64_t k = key(words[w][i], words[w][i + 1]);
      pair_count[k] += counts[w];
      where[k].push_back(int32_t(w));
    }
  using Entry = std::pair<int64_t, uint64_t>;  // (count, -key order via comparator)
  auto cmp = [](const Entry& x, const Entry& y) { return x.first != y.first ? x.first < y.first : x.second > y.second; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
  for (auto& [k, c] : pair_count) heap.push({c, k});

  json merges = json::array();
  std::vector<int32_t> seen_stamp(words.size(), -1);
  int32_t next_id = int32_t(base);
  while (next_id < o.vocab_size && !heap.empty()) {
    auto [c, k] = heap.top();
    heap.pop();
    auto it = pair_count.find(k);
    if (it == pair_count.end() || it->second != c) continue;  // stale entry
    if (c < o.min_frequency) break;
    const int32_t a = int32_t(k >> 32), b = int32_t(k & 0xffffffffu), nt = next_id++;
    token_text.push_back(token_text[size_t(a)] + token_text[size_t(b)]);
    merges.push_back(token_text[size_t(a)] + " " + token_text[size_t(b)]);
    std::vector<int32_t> affected = std::move(where[k]);
    where.erase(k);
    pair_count.erase(k);
    std::unordered_map<uint64_t, int64_t> delta;
    for (int32_t w : affected) {
      if (seen_stamp[size_t(w)] == nt) continue;
      seen_stamp[size_t(w)] = nt;
      auto& s = words[size_t(w)];
      const int64_t f = counts[size_t(w)];
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          if (!out.empty()) delta[key(out.back(), a)] -= f, delta[key(out.back(), nt)] += f;
          if (i + 2 < s.size()) delta[key(b, s[i + 2])] -= f, delta[key(nt, s[i + 2])] += f;
          out.push_back(nt);
          i += 2;
        } else {
          out.push_back(s[i]);
          ++i;
        }
      }
      // (Adjacent occurrences, a b a b -> X X, come out right: the b-a pair between them is removed once as
      // (b, next) and (X, a) is added then removed again when the second occurrence sees out.back() == X.)
      s = std::move(out);
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == nt || s[i + 1] == nt) where[key(s[i], s[i + 1])].push_back(w);
    }
    for (auto& [dk, dv] : delta) {
      if (dk == k || dv == 0) continue;
      int64_t& pc = pair_count[dk];
      pc += dv;
      if (pc <= 0) pair_count.erase(dk);
      else heap.push({pc, dk});
    }
    if (o.progress && (nt - base) % 500 == 0)
      fmt::print(stderr, "\r[tokenizer train] {} / {} tokens", nt + 1, o.vocab_size);
  }
  if (o.progress) fmt::print(stderr, "\r[tokenizer train] {} tokens from {} bytes ({} distinct pre-tokens)\n", next_id,
                             total_bytes, words.size());

  // 4. Write HF files.
  json full_vocab = json::object();
  for (size_t i = 0; i < token_text.size(); ++i)
    if (i >= specials.size()) full_vocab[token_text[i]] = int(i);
  json added = json::array();
  for (size_t i = 0; i < specials.size(); ++i) {
    added.push_back({{"id", int(i)}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
    full_vocab[specials[i]] = int(i);
  }
  json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
              {"normalizer", nullptr}, {"pre_tokenizer", deepseek_v3_pre_tokenizer()},
              {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                         {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", full_vocab},
                         {"merges", merges}}}};
  json cfg = {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", specials[0]}, {"eos_token", specials[1]},
              {"pad_token", specials[2]}, {"clean_up_tokenization_spaces", false}, {"legacy", true},
              {"model_max_length", 131072}, {"tokenizer_class", "LlamaTokenizerFast"}, {"unk_token", nullptr}};
  fs::create_directories(out_dir);
  auto write = [&](const std::string& name, const std::string& text) {
    fs::path tmp = fs::path(out_dir) / (name + ".tmp");
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    BALEINE_CHECK(out.good(), "{}: write failed", tmp.string());
    fs::rename(tmp, fs::path(out_dir) / name);
  };
  write("tokenizer.json", tok.dump(1));
  write("tokenizer_config.json", cfg.dump(1));
}

}  // namespace baleine
