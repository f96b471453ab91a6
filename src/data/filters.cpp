#include "data/filters.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "core/check.h"
#include "data/text.h"

namespace baleine::data {

const char* reject_name(Reject r) {
  switch (r) {
    case Reject::None: return "kept";
    case Reject::InvalidUtf8: return "invalid_utf8";
    case Reject::Empty: return "empty";
    case Reject::ExactDuplicate: return "exact_duplicate";
    case Reject::TooShort: return "too_short";
    case Reject::TooLong: return "too_long";
    case Reject::AlphaRatio: return "alpha_ratio";
    case Reject::SymbolRatio: return "symbol_ratio";
    case Reject::DuplicateLines: return "duplicate_lines";
    case Reject::TopNgram: return "top_ngram";
    case Reject::NearDuplicate: return "near_duplicate";
    case Reject::Count: break;
  }
  return "?";
}

namespace {

std::string lower_ascii(std::string_view w) {
  std::string s(w);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// Character coverage of the most frequent n-gram that occurs at least twice.
double top_ngram_coverage(const std::vector<uint64_t>& word_hash, const std::vector<int64_t>& word_len, int n,
                          int64_t total_chars) {
  if (int64_t(word_hash.size()) < n || total_chars <= 0) return 0.0;
  struct Entry {
    int64_t count = 0, chars = 0;
  };
  std::unordered_map<uint64_t, Entry> counts;
  counts.reserve(word_hash.size());
  int64_t best = 0;
  for (size_t i = 0; i + size_t(n) <= word_hash.size(); ++i) {
    uint64_t h = 0x243F6A8885A308D3ULL;
    int64_t chars = 0;
    for (int k = 0; k < n; ++k) {
      h = mix64(h * 0x100000001B3ULL + word_hash[i + size_t(k)]);
      chars += word_len[i + size_t(k)];
    }
    Entry& e = counts[h];
    e.count += 1;
    e.chars = chars;
    if (e.count >= 2) best = std::max(best, e.count * e.chars);
  }
  return std::min(1.0, double(best) / double(total_chars));
}

}  // namespace

QualityStats quality_stats(std::string_view text) {
  QualityStats st;
  size_t i = 0;
  char32_t cp;
  while (i < text.size()) {
    int n = utf8_decode(text, i, &cp);
    if (n <= 0) n = 1, cp = 0xFFFD;
    ++st.chars;
    if (!is_space(cp)) {
      ++st.non_space;
      if (is_alpha(cp)) ++st.alpha;
      if (cp == '#' || cp == 0x2026) ++st.symbols;
    }
    i += size_t(n);
  }
  for (size_t p = text.find("..."); p != std::string_view::npos; p = text.find("...", p + 3)) ++st.symbols;

  std::vector<std::string_view> words = split_words(text);
  st.words = int64_t(words.size());
  std::vector<uint64_t> word_hash(words.size());
  std::vector<int64_t> word_len(words.size());
  int64_t total_word_chars = 0;
  for (size_t w = 0; w < words.size(); ++w) {
    word_hash[w] = hash64(lower_ascii(words[w]));
    word_len[w] = int64_t(words[w].size());
    total_word_chars += word_len[w];
  }
  for (int n = 2; n <= 4; ++n) st.top_ngram[n - 2] = top_ngram_coverage(word_hash, word_len, n, total_word_chars);

  std::unordered_set<std::string_view> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    if (!line.empty()) {
      ++st.lines;
      if (!seen.insert(line).second) ++st.dup_lines;
    }
    start = end + 1;
  }
  return st;
}

Reject quality_check(std::string_view text, const QualityConfig& c) {
  QualityStats st = quality_stats(text);
  if (st.chars < c.min_chars) return Reject::TooShort;
  if (c.max_chars > 0 && st.chars > c.max_chars) return Reject::TooLong;
  if (st.alpha_ratio() < c.min_alpha_ratio) return Reject::AlphaRatio;
  if (c.max_symbol_ratio < 1.0 && st.symbol_ratio() > c.max_symbol_ratio) return Reject::SymbolRatio;
  if (c.max_dup_line_frac < 1.0 && st.dup_line_frac() > c.max_dup_line_frac) return Reject::DuplicateLines;
  const double limits[3] = {c.max_top_2gram, c.max_top_3gram, c.max_top_4gram};
  for (int k = 0; k < 3; ++k)
    if (limits[k] < 1.0 && st.top_ngram[k] > limits[k]) return Reject::TopNgram;
  return Reject::None;
}

// ---- MinHash -------------------------------------------------------------------------------------------

MinHasher::MinHasher(int num_perm, int shingle, uint64_t seed) : shingle_(shingle) {
  BALEINE_CHECK(num_perm >= 1 && num_perm <= 1024, "num_perm must be in [1, 1024], got {}", num_perm);
  BALEINE_CHECK(shingle >= 1, "shingle size must be >= 1, got {}", shingle);
  uint64_t state = seed;
  auto next = [&] {
    state += 0x9E3779B97F4A7C15ULL;
    return mix64(state);
  };
  for (int p = 0; p < num_perm; ++p) {
    a_.push_back(next() | 1);
    b_.push_back(next());
  }
}

std::vector<uint64_t> MinHasher::shingles(std::string_view text) const {
  std::vector<std::string_view> words = split_words(text);
  std::vector<uint64_t> wh(words.size());
  for (size_t i = 0; i < words.size(); ++i) wh[i] = hash64(lower_ascii(words[i]));
  std::vector<uint64_t> out;
  size_t k = size_t(shingle_);
  if (wh.empty()) return out;
  size_t count = wh.size() >= k ? wh.size() - k + 1 : 1;
  size_t width = std::min(k, wh.size());
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    uint64_t h = 0x13198A2E03707344ULL;
    for (size_t j = 0; j < width; ++j) h = mix64(h * 0x100000001B3ULL + wh[i + j]);
    out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<uint32_t> MinHasher::signature(std::string_view text) const {
  const size_t np = a_.size();
  std::vector<uint64_t> mins(np, std::numeric_limits<uint64_t>::max());
  const uint64_t* a = a_.data();
  const uint64_t* b = b_.data();
  uint64_t* s = mins.data();
  for (uint64_t h : shingles(text))
    for (size_t p = 0; p < np; ++p) s[p] = std::min(s[p], a[p] * h + b[p]);
  std::vector<uint32_t> sig(np);
  for (size_t p = 0; p < np; ++p) sig[p] = uint32_t(mins[p] >> 32);
  return sig;
}

double MinHasher::jaccard_estimate(const std::vector<uint32_t>& x, const std::vector<uint32_t>& y) {
  BALEINE_CHECK(x.size() == y.size() && !x.empty(), "signature sizes differ ({} vs {})", x.size(), y.size());
  size_t eq = 0;
  for (size_t i = 0; i < x.size(); ++i) eq += x[i] == y[i];
  return double(eq) / double(x.size());
}

double MinHasher::jaccard_exact(std::string_view x, std::string_view y) const {
  std::vector<uint64_t> a = shingles(x), b = shingles(y), both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  size_t uni = a.size() + b.size() - both.size();
  return uni ? double(both.size()) / double(uni) : 1.0;
}

void choose_bands(int num_perm, double threshold, int* bands, int* rows) {
  BALEINE_CHECK(threshold > 0.0 && threshold <= 1.0, "near-dup threshold must be in (0, 1], got {}", threshold);
  double target = std::max(0.05, threshold - 0.1);
  int best_b = num_perm, best_r = 1;
  double best_t = -1.0;
  for (int r = 1; r <= num_perm; ++r) {
    int b = num_perm / r;
    if (b < 1) break;
    double t = std::pow(1.0 / b, 1.0 / r);
    if (t <= target && t > best_t) best_t = t, best_b = b, best_r = r;
  }
  *bands = best_b;
  *rows = best_r;
}

NearDupIndex::NearDupIndex(int num_perm, double threshold) : threshold_(threshold) {
  choose_bands(num_perm, threshold, &bands_, &rows_);
  buckets_.resize(size_t(bands_));
}

bool NearDupIndex::query_insert(const std::vector<uint32_t>& sig) {
  BALEINE_CHECK(int64_t(sig.size()) >= int64_t(bands_) * rows_, "signature too short for {}x{} bands", bands_, rows_);
  std::vector<uint64_t> keys(static_cast<size_t>(bands_));
  std::vector<uint32_t> seen;
  for (int b = 0; b < bands_; ++b) {
    uint64_t h = uint64_t(b) * 0x9E3779B97F4A7C15ULL;
    for (int r = 0; r < rows_; ++r) h = mix64(h ^ sig[size_t(b * rows_ + r)]) + uint64_t(r);
    keys[size_t(b)] = h;
    auto it = buckets_[size_t(b)].find(h);
    if (it == buckets_[size_t(b)].end()) continue;
    for (uint32_t id : it->second) {
      if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
      seen.push_back(id);
      ++checked_;
      if (MinHasher::jaccard_estimate(sig, signatures_[id]) >= threshold_) return true;
    }
  }
  auto id = uint32_t(signatures_.size());
  signatures_.push_back(sig);
  for (int b = 0; b < bands_; ++b) buckets_[size_t(b)][keys[size_t(b)]].push_back(id);
  return false;
}

}  // namespace baleine::data
