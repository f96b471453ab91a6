#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace baleine {

using nlohmann::json;

namespace {

// GPT-2's reversible byte -> printable code point map used by ByteLevel pre-tokenizers and decoders.
struct ByteAlphabet {
  std::string byte_to_utf8[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + n++);
      byte_to_utf8[b] = utf8(cp);
      cp_to_byte[cp] = uint8_t(b);
    }
  }
  static std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
    else if (cp < 0x10000) s += char(0xe0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3f)), s += char(0x80 | (cp & 0x3f));
    else s += char(0xf0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3f)), s += char(0x80 | ((cp >> 6) & 0x3f)), s += char(0x80 | (cp & 0x3f));
    return s;
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// Decodes one UTF-8 code point at s[i] (valid input assumed: token strings come from our own alphabet).
uint32_t next_cp(const std::string& s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (int k = 1; k < len && i + size_t(k) < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3f);
  i += size_t(len);
  return cp;
}

// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available; invalid UTF-8 simply does not match).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      BALEINE_FAIL("{}: cannot compile regex at offset {}: {}", where, off, reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // optional speed-up; interpretive matching if it fails
  }
  ~Regex() { if (code_) pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Calls fn(begin, end) for each non-overlapping match in s.
  template <class F> void for_each_match(std::string_view s, F&& fn) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (e == b) {  // empty match: step one character forward
        if (b >= s.size()) break;
        size_t next = b + 1;
        while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xc0) == 0x80) ++next;
        pos = next;
        continue;
      }
      fn(b, e);
      pos = e;
    }
    pcre2_match_data_free(md);
  }

 private:
  pcre2_code* code_ = nullptr;
};

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious };

struct PreStep {
  enum Kind { Split, ByteLevel } kind = Split;
  std::shared_ptr<Regex> regex;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false, use_regex = false;
};

// Unicode NFC through ICU. Text that is not valid UTF-8 is left as it is (HF normalisers only ever see valid text).
std::string nfc(const std::string& text) {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err) || text.empty()) return text;
  int32_t len16 = 0;
  u_strFromUTF8(nullptr, 0, &len16, text.data(), int32_t(text.size()), &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) return text;
  err = U_ZERO_ERROR;
  std::u16string src(size_t(len16), u'\0');
  u_strFromUTF8(reinterpret_cast<UChar*>(src.data()), len16, nullptr, text.data(), int32_t(text.size()), &err);
  if (U_FAILURE(err)) return text;
  if (unorm2_isNormalized(norm, reinterpret_cast<const UChar*>(src.data()), len16, &err) && U_SUCCESS(err)) return text;
  err = U_ZERO_ERROR;
  std::u16string out(size_t(len16) * 3 + 16, u'\0');
  int32_t n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(src.data()), len16, reinterpret_cast<UChar*>(out.data()),
                               int32_t(out.size()), &err);
  if (U_FAILURE(err)) return text;
  int32_t len8 = 0;
  err = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &len8, reinterpret_cast<const UChar*>(out.data()), n, &err);
  err = U_ZERO_ERROR;
  std::string result(size_t(len8), '\0');
  u_strToUTF8(result.data(), len8, nullptr, reinterpret_cast<const UChar*>(out.data()), n, &err);
  return U_FAILURE(err) ? text : result;
}

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;  // byte-level strings (or added-token content)
  std::vector<bool> special;
  std::unordered_map<std::string, int32_t> merge_rank;  // "a b" -> rank
  bool ignore_merges = false;
  std::vector<PreStep> steps;
  bool byte_level = false;
  bool normalize_nfc = false;
  struct Added { std::string content; int32_t id; bool special; };
  std::vector<Added> added;  // sorted by content length, longest first
  bool added_first_byte[256] = {};  // quick filter: can an added token start with this byte?
  int32_t bos = -1, eos = -1;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // Splits `piece` by one Split step.
  void apply_split(const PreStep& st, const std::string& piece, std::vector<std::string>& out) const {
    std::vector<std::pair<size_t, size_t>> m;
    st.regex->for_each_match(piece, [&](size_t b, size_t e) { m.push_back({b, e}); });
    if (st.invert) {  // the gaps are the "matches"
      std::vector<std::pair<size_t, size_t>> gaps;
      size_t at = 0;
      for (auto [b, e] : m) { if (b > at) gaps.push_back({at, b}); at = e; }
      if (at < piece.size()) gaps.push_back({at, piece.size()});
      m = std::move(gaps);
    }
    size_t at = 0;
    for (auto [b, e] : m) {
      std::string gap = piece.substr(at, b - at), hit = piece.substr(b, e - b);
      switch (st.behavior) {
        case SplitBehavior::Isolated: if (!gap.empty()) out.push_back(gap); out.push_back(hit); break;
        case SplitBehavior::Removed: if (!gap.empty()) out.push_back(gap); break;
        case SplitBehavior::MergedWithPrevious: out.push_back(gap + hit); break;
      }
      at = e;
    }
    if (at < piece.size()) out.push_back(piece.substr(at));
  }

  std::vector<std::string> pre_tokenize(const std::string& text) const {
    std::vector<std::string> pieces{text};
    for (const PreStep& st : steps) {
      std::vector<std::string> next;
      for (const std::string& p : pieces) {
        if (st.kind == PreStep::Split) {
          apply_split(st, p, next);
        } else {  // ByteLevel: optional GPT-2 split, then bytes -> alphabet
          std::string s = st.add_prefix_space && !p.empty() && p[0] != ' ' ? " " + p : p;
          std::vector<std::string> parts;
          if (st.use_regex) apply_split(PreStep{PreStep::Split, gpt2_regex(), SplitBehavior::Isolated, false}, s, parts);
          else parts.push_back(s);
          for (const auto& part : parts) {
            std::string mapped;
            for (unsigned char c : part) mapped += alphabet().byte_to_utf8[c];
            next.push_back(std::move(mapped));
          }
        }
      }
      pieces = std::move(next);
    }
    return pieces;
  }

  std::shared_ptr<Regex> gpt2_regex() const {
    static std::shared_ptr<Regex> r = std::make_shared<Regex>(kGpt2Pattern, "ByteLevel");
    return r;
  }

  // BPE over one pre-token (already in the byte-level alphabet).
  void bpe(const std::string& word, std::vector<int32_t>& out) const {
    {
      std::lock_guard lock(cache_mutex);
      auto it = cache.find(word);
      if (it != cache.end()) { out.insert(out.end(), it->second.begin(), it->second.end()); return; }
    }
    std::vector<int32_t> ids;
    auto whole = vocab.find(word);
    if (ignore_merges && whole != vocab.end()) {
      ids.push_back(whole->second);
    } else {
      std::vector<std::string> sym;
      for (size_t i = 0; i < word.size();) {
        size_t b = i;
        next_cp(word, i);
        sym.push_back(word.substr(b, i - b));
      }
      while (sym.size() > 1) {
        int best = std::numeric_limits<int>::max();
        size_t at = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
          auto it = merge_rank.find(sym[i] + " " + sym[i + 1]);
          if (it != merge_rank.end() && it->second < best) best = it->second, at = i;
        }
        if (best == std::numeric_limits<int>::max()) break;
        // Merge every occurrence of this pair, left to right (as HF does for equal ranks).
        const std::string a = sym[at], b = sym[at + 1];
        std::vector<std::string> merged;
        for (size_t i = 0; i < sym.size();) {
          if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) merged.push_back(a + b), i += 2;
          else merged.push_back(sym[i]), ++i;
        }
        sym = std::move(merged);
      }
      for (const auto& s : sym) {
        auto it = vocab.find(s);
        if (it != vocab.end()) { ids.push_back(it->second); continue; }
        // Not in the vocabulary (should not happen for byte-level vocabularies): fall back to single bytes.
        for (size_t i = 0; i < s.size();) {
          size_t b = i;
          next_cp(s, i);
          auto one = vocab.find(s.substr(b, i - b));
          BALEINE_CHECK(one != vocab.end(), "{}: symbol '{}' has no token", source, s.substr(b, i - b));
          ids.push_back(one->second);
        }
      }
    }
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard lock(cache_mutex);
    if (cache.size() < 1 << 20) cache.emplace(word, std::move(ids));
  }
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  if (fs::is_directory(p)) p /= "tokenizer.json";
  auto slurp = [](const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  BALEINE_CHECK(fs::exists(p), "{}: no tokenizer.json here", p.string());
  fs::path cfg = p.parent_path() / "tokenizer_config.json";
  return from_json(slurp(p), fs::exists(cfg) ? slurp(cfg) : "", p.string());
}

// A function-try-block: any field of the wrong JSON type, anywhere below, becomes one error naming the file
// (found by fuzz/fuzz_tokenizer_json: a Sequence without 'pretokenizers' escaped as a raw nlohmann exception).
Tokenizer Tokenizer::from_json(const std::string& text, const std::string& config_text, const std::string& source) try {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    BALEINE_FAIL("{}: invalid JSON at byte {}", source, e.byte);
  }
  BALEINE_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), "{}: missing 'model' object", source);
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>();
  Impl& m = *t.impl_;
  m.source = source;
  const json& model = j["model"];
  std::string type = model.value("type", std::string("BPE"));
  BALEINE_CHECK(type == "BPE", "{}: unsupported model type '{}' (only BPE)", source, type);
  BALEINE_CHECK(!model.value("byte_fallback", false), "{}: byte_fallback BPE (sentencepiece style) is not supported", source);
  m.ignore_merges = model.value("ignore_merges", false);
  BALEINE_CHECK(model.contains("vocab") && model["vocab"].is_object(), "{}: 'model.vocab' must be an object", source);
  int32_t max_id = -1;
  for (auto& [tok, id] : model["vocab"].items()) {
    BALEINE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24),
                  "{}: vocab entry '{}' has an invalid id", source, tok);
    m.vocab[tok] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  if (model.contains("merges")) {
    BALEINE_CHECK(model["merges"].is_array(), "{}: 'model.merges' must be an array", source);
    int rank = 0;
    for (const json& mg : model["merges"]) {
      std::string key;
      if (mg.is_string()) key = mg.get<std::string>();
      else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) key = mg[0].get<std::string>() + " " + mg[1].get<std::string>();
      else BALEINE_FAIL("{}: merge {} is neither \"a b\" nor [a, b]", source, rank);
      m.merge_rank.emplace(key, rank++);
    }
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      BALEINE_CHECK(a.is_object() && a.contains("id") && a.contains("content"), "{}: added token without id/content", source);
      // The id indexes the id tables below: a negative or huge one was an out-of-bounds write (or a 16 GB table).
      BALEINE_CHECK(a["id"].is_number_integer() && a["id"].get<int64_t>() >= 0 && a["id"].get<int64_t>() < (1 << 24),
                    "{}: added token {} has an invalid id", source, a["content"].dump().substr(0, 64));
      Impl::Added at{a["content"].get<std::string>(), a["id"].get<int32_t>(), a.value("special", false)};
      m.added.push_back(at);
      m.vocab[at.content] = at.id;
      max_id = std::max(max_id, at.id);
    }
    std::stable_sort(m.added.begin(), m.added.end(), [](auto& x, auto& y) { return x.content.size() > y.content.size(); });
    for (const auto& a : m.added)
      if (!a.content.empty()) m.added_first_byte[static_cast<unsigned char>(a.content[0])] = true;
  }
  m.id_to_token.assign(size_t(max_id + 1), "");
  m.special.assign(size_t(max_id + 1), false);
  for (auto& [tok, id] : m.vocab) m.id_to_token[size_t(id)] = tok;
  for (auto& a : m.added) m.special[size_t(a.id)] = a.special, m.id_to_token[size_t(a.id)] = a.content;

  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    std::string nt = n.value("type", std::string("?"));
    bool empty_sequence = nt == "Sequence" && n.contains("normalizers") && n["normalizers"].empty();
    bool nfc_only = nt == "NFC" || (nt == "Sequence" && n.contains("normalizers") && n["normalizers"].size() == 1 &&
                                    n["normalizers"][0].value("type", std::string()) == "NFC");
    BALEINE_CHECK(empty_sequence || nfc_only, "{}: unsupported normalizer type '{}' (supported: NFC)", source, nt);
    m.normalize_nfc = nfc_only;
  }
  std::function<void(const json&)> add_pre = [&](const json& p) {
    std::string pt = p.value("type", std::string("?"));
    if (pt == "Sequence") {
      for (const json& q : p.at("pretokenizers")) add_pre(q);
    } else if (pt == "Split") {
      PreStep st;
      st.kind = PreStep::Split;
      const json& pat = p.at("pattern");
      std::string rx;
      if (pat.contains("Regex")) rx = pat["Regex"].get<std::string>();
      else if (pat.contains("String")) {  // literal: escape it
        for (char c : pat["String"].get<std::string>()) { if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) rx += '\\'; rx += c; }
      } else BALEINE_FAIL("{}: Split pattern must be Regex or String", source);
      st.regex = std::make_shared<Regex>(rx, source + " pre_tokenizer Split");
      std::string b = p.value("behavior", std::string("Isolated"));
      if (b == "Isolated") st.behavior = SplitBehavior::Isolated;
      else if (b == "Removed") st.behavior = SplitBehavior::Removed;
      else if (b == "MergedWithPrevious") st.behavior = SplitBehavior::MergedWithPrevious;
      else BALEINE_FAIL("{}: unsupported Split behavior '{}'", source, b);
      st.invert = p.value("invert", false);
      m.steps.push_back(st);
    } else if (pt == "ByteLevel") {
      PreStep st;
      st.kind = PreStep::ByteLevel;
      st.add_prefix_space = p.value("add_prefix_space", false);
      st.use_regex = p.value("use_regex", true);
      m.steps.push_back(st);
      m.byte_level = true;
    } else {
      BALEINE_FAIL("{}: unsupported pre-tokenizer type '{}'", source, pt);
    }
  };
  BALEINE_CHECK(j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null(), "{}: a pre_tokenizer is required", source);
  add_pre(j["pre_tokenizer"]);
  BALEINE_CHECK(m.byte_level, "{}: only byte-level BPE is supported (no ByteLevel pre-tokenizer found)", source);

  // bos/eos from tokenizer_config.json (strings or {"content": ...}).
  if (!config_text.empty()) {
    json c;
    try {
      c = json::parse(config_text);
    } catch (const json::parse_error& e) {
      BALEINE_FAIL("{}: tokenizer_config.json: invalid JSON at byte {}", source, e.byte);
    }
    auto tok_of = [&](const char* key) -> int32_t {
      if (!c.contains(key) || c[key].is_null()) return -1;
      std::string s = c[key].is_string() ? c[key].get<std::string>() : c[key].value("content", std::string());
      auto it = m.vocab.find(s);
      return it == m.vocab.end() ? -1 : it->second;
    };
    m.bos = tok_of("bos_token");
    m.eos = tok_of("eos_token");
  }
  return t;
} catch (const json::exception& e) {
  BALEINE_FAIL("{}: malformed tokenizer: {}", source, e.what());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool allow_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  if (add_bos) {
    BALEINE_CHECK(m.bos >= 0, "{}: this tokenizer has no BOS token", m.source);
    ids.push_back(m.bos);
  }
  auto encode_plain = [&](std::string_view s) {
    if (s.empty()) return;
    for (const std::string& piece : m.pre_tokenize(m.normalize_nfc ? nfc(std::string(s)) : std::string(s))) m.bpe(piece, ids);
  };
  size_t at = 0, plain_from = 0;
  while (at < text.size()) {
    const Impl::Added* hit = nullptr;
    if (allow_special && m.added_first_byte[static_cast<unsigned char>(text[at])])
      for (const auto& a : m.added)
        if (!a.content.empty() && text.compare(at, a.content.size(), a.content) == 0) { hit = &a; break; }
    if (!hit) { ++at; continue; }
    encode_plain(text.substr(plain_from, at - plain_from));
    ids.push_back(hit->id);
    at += hit->content.size();
    plain_from = at;
  }
  encode_plain(text.substr(plain_from));
  return ids;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  BALEINE_CHECK(id >= 0 && size_t(id) < m.id_to_token.size(), "token id {} is outside [0, {})", id, m.id_to_token.size());
  const std::string& tok = m.id_to_token[size_t(id)];
  bool is_added = false;
  for (const auto& a : m.added) if (a.id == id) { is_added = true; break; }
  if (is_added) return tok;
  std::string out;
  for (size_t i = 0; i < tok.size();) {
    size_t b = i;
    uint32_t cp = next_cp(tok, i);
    auto it = alphabet().cp_to_byte.find(cp);
    if (it != alphabet().cp_to_byte.end()) out += char(it->second);
    else out += tok.substr(b, i - b);
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    out += token_bytes(id);
  }
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const { return impl_->pre_tokenize(std::string(text)); }

int64_t Tokenizer::vocab_size() const { return int64_t(impl_->id_to_token.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::is_special(int32_t id) const { return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)]; }
std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return "";
  pending_ += tok_.token_bytes(id);
  // Emit up to the last complete UTF-8 character; keep an unfinished tail (at most 3 bytes) for later.
  size_t n = pending_.size(), cut = n;
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(pending_[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte
    size_t need = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    if (need > back) cut = n - back;
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace baleine
