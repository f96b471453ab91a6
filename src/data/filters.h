// data/filters.h — document quality filters (Gopher-style heuristics) and near-duplicate detection
// (MinHash signatures over word 5-shingles + LSH banding).
// defines: QualityConfig, Reject, reject_name, quality_check, QualityStats, quality_stats,
//          MinHasher, NearDupIndex, choose_bands
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace baleine::data {

// Why a document was removed. Order = the order the pipeline applies the checks in.
enum class Reject : int {
  None = 0,
  InvalidUtf8,     // too much invalid UTF-8 to repair
  Empty,           // nothing left after normalisation
  ExactDuplicate,  // same normalised text as an earlier document
  TooShort,        // fewer than min_chars code points
  TooLong,         // more than max_chars code points
  AlphaRatio,      // letters / non-space characters below min_alpha_ratio
  SymbolRatio,     // ('#' + ellipses) per word above max_symbol_ratio
  DuplicateLines,  // fraction of non-blank lines repeating an earlier line above max_dup_line_frac
  TopNgram,        // the most frequent 2/3/4-gram covers too many characters
  NearDuplicate,   // estimated Jaccard with an earlier kept document >= threshold
  Count
};
const char* reject_name(Reject r);

// Every threshold can be disabled: a min of 0, a max of 0 for max_chars, or a ratio max >= 1.
struct QualityConfig {
  int64_t min_chars = 100;
  int64_t max_chars = 1'000'000;
  double min_alpha_ratio = 0.5;
  double max_symbol_ratio = 0.1;
  double max_dup_line_frac = 0.3;
  double max_top_2gram = 0.20, max_top_3gram = 0.18, max_top_4gram = 0.16;
};

// The measurements the filters compare against their thresholds.
struct QualityStats {
  int64_t chars = 0;          // code points
  int64_t non_space = 0;      // non-whitespace code points
  int64_t alpha = 0;          // letters
  int64_t words = 0;
  int64_t symbols = 0;        // '#', "..." and U+2026
  int64_t lines = 0;          // non-blank lines
  int64_t dup_lines = 0;      // non-blank lines equal (after trimming) to an earlier line
  double top_ngram[3] = {0, 0, 0};  // character coverage of the most frequent repeated 2, 3, 4-gram
  double alpha_ratio() const { return non_space ? double(alpha) / double(non_space) : 0.0; }
  double symbol_ratio() const { return words ? double(symbols) / double(words) : 0.0; }
  double dup_line_frac() const { return lines ? double(dup_lines) / double(lines) : 0.0; }
};
QualityStats quality_stats(std::string_view text);

// First failing filter for a normalised document, or Reject::None.
Reject quality_check(std::string_view text, const QualityConfig& config);

// MinHash over word 5-shingles (words lower-cased, split on whitespace). Signature entry p is the minimum
// over shingles of a_p * h + b_p (mod 2^64) with odd random a_p — a cheap universal family whose minimum
// behaves like a random permutation's for Jaccard estimation.
class MinHasher {
 public:
  explicit MinHasher(int num_perm = 128, int shingle = 5, uint64_t seed = 0x6d696e68617368ULL);
  int num_perm() const { return int(a_.size()); }
  // Top 32 bits of each minimum (halves the memory; 32-bit collisions are negligible for estimation).
  std::vector<uint32_t> signature(std::string_view text) const;
  static double jaccard_estimate(const std::vector<uint32_t>& x, const std::vector<uint32_t>& y);
  // Exact Jaccard of the two shingle sets (for tests and diagnostics).
  double jaccard_exact(std::string_view x, std::string_view y) const;

 private:
  std::vector<uint64_t> shingles(std::string_view text) const;
  int shingle_;
  std::vector<uint64_t> a_, b_;
};

// Picks (bands, rows), bands * rows <= num_perm, whose LSH S-curve threshold (1/b)^(1/r) is the largest
// one still at or below `threshold` - 0.1, so true near-duplicates are almost always candidates; candidates are
// then confirmed against the signature estimate.
void choose_bands(int num_perm, double threshold, int* bands, int* rows);

// Sequential, order-dependent near-dup index: query_insert() returns true (duplicate) when an earlier
// inserted document shares a band bucket and its estimated Jaccard is >= threshold; otherwise it inserts
// the document. So the first of a group of near-duplicates is kept.
class NearDupIndex {
 public:
  NearDupIndex(int num_perm, double threshold);
  bool query_insert(const std::vector<uint32_t>& signature);
  int bands() const { return bands_; }
  int rows() const { return rows_; }
  int64_t candidates_checked() const { return checked_; }

 private:
  double threshold_;
  int bands_, rows_;
  std::vector<std::vector<uint32_t>> signatures_;
  std::vector<std::unordered_map<uint64_t, std::vector<uint32_t>>> buckets_;  // per band
  int64_t checked_ = 0;
};

}  // namespace baleine::data
