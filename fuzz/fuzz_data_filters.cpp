// Fuzz target: the data pipeline's document path on arbitrary bytes — binary detection, UTF-8 repair, text
// normalisation (NFC through ICU, whitespace), the quality filters and MinHash near-duplicate signatures.
#include "data/filters.h"
#include "data/text.h"
#include "fuzz_common.h"

using namespace baleine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw = fuzz::as_text(data, size);
  (void)data::looks_binary(raw);
  const std::string repaired = data::repair_utf8(raw);
  if (data::count_invalid_utf8(repaired) != 0) __builtin_trap();  // repair must leave valid UTF-8
  const std::string text = data::normalize_text(repaired);
  data::QualityConfig cfg;
  cfg.min_chars = 1;
  (void)data::quality_check(text, cfg);
  (void)data::quality_stats(text);
  static const data::MinHasher hasher(32, 5);
  data::NearDupIndex index(32, 0.8);  // per input: a growing index would look like a leak to the fuzzer
  const auto sig = hasher.signature(text);
  if (index.query_insert(sig)) __builtin_trap();     // the first document is never a duplicate
  if (!sig.empty() && !index.query_insert(sig)) __builtin_trap();  // and the same one again always is
  return 0;
}
