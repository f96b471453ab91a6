// data/pipeline.h — `baleine data`: ingest -> normalise -> exact dedup -> quality filters -> near dedup ->
// train/val split -> parallel tokenisation -> packed shards + index.json + report.json.
// defines: TokenEncoder, PipelineConfig, run_pipeline, report_text, split_is_val
//
// Determinism: files are read in sorted path order and documents keep that order through every stage
// (parallel stages write to per-document slots); the first of a group of duplicates is the one kept; the
// split depends only on (normalised text hash, seed). Same inputs + flags + tokenizer = same bytes out.
// Memory: the normalised corpus is held in RAM (about 1x its size plus 512 B per surviving document).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/filters.h"
#include "data/source.h"

namespace baleine::data {

// What the pipeline needs from a tokenizer; encode must be safe to call from several threads at once and
// must not add BOS/EOS itself (the shard writer appends EOS after each document).
struct TokenEncoder {
  std::string path;  // where it was loaded from (recorded in index.json)
  std::string hash;  // content hash of its files (hex), recorded in index.json
  uint32_t eos_id = 0;
  int64_t vocab_size = 0;
  std::function<void(std::string_view text, std::vector<uint32_t>& out)> encode;  // appends ids to out
};

struct PipelineConfig {
  std::vector<std::string> inputs;
  std::string out_dir;
  IngestOptions ingest;
  QualityConfig quality;
  double max_invalid_utf8 = 0.01;  // documents with a larger fraction of invalid bytes are dropped
  bool exact_dedup = true;
  bool near_dedup = true;
  double near_dup_threshold = 0.8;
  int num_perm = 128;
  int shingle = 5;
  double val_fraction = 0.01;
  uint64_t seed = 0;
  int64_t shard_tokens = 50'000'000;
  bool write_text = false;     // also write the curated documents to <out>/curated.jsonl
  bool write_removed = false;  // and the removed ones, with their reason, to <out>/removed.jsonl
  bool progress = true;
};

// True when a document with this normalised-text hash goes to the validation split.
bool split_is_val(uint64_t text_hash, uint64_t seed, double val_fraction);

// Runs everything, writes <out>/report.json (and shards + index.json when encoder is given), returns the
// report. Throws baleine::Error for unusable input (nothing found, no documents).
nlohmann::json run_pipeline(const PipelineConfig& config, const TokenEncoder* encoder);

// The report as aligned human-readable lines.
std::string report_text(const nlohmann::json& report);

}  // namespace baleine::data
