// baleine data: build a pretraining corpus — ingest .txt/.md/.jsonl (+ .gz), normalise, dedup (exact +
// MinHash near-dup), quality-filter, split train/val, tokenize in parallel, pack uint32 shards.
//   baleine data --input DIRS/FILES... --tokenizer DIR --out DIR [filters...]
//   baleine data gen-arithmetic|gen-countdown --count N --seed S --out FILE.jsonl
//   baleine data verify DIR
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "data/generators.h"
#include "data/pipeline.h"
#include "data/shards.h"
#include "data/tokenize.h"

namespace baleine::app {
namespace {

struct GenArgs {
  int64_t count = 1000;
  uint64_t seed = 0;
  std::string out, style = "mixed";
  int per_doc = 1;
};

int run_gen(const std::string& kind, const GenArgs& g) {
  BALEINE_CHECK(!g.out.empty(), "--out FILE is required");
  std::vector<std::string> docs = data::generate_documents(kind, g.count, g.seed, data::parse_style(g.style), g.per_doc);
  auto parent = std::filesystem::path(g.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(g.out);
  BALEINE_CHECK(out.good(), "cannot write '{}'", g.out);
  int64_t bytes = 0;
  for (const auto& d : docs) {
    out << nlohmann::json{{"text", d}}.dump() << "\n";
    bytes += int64_t(d.size());
  }
  BALEINE_CHECK(out.good(), "write failed on '{}'", g.out);
  fmt::print("{}: {} documents, {:.2f} MB of text -> {}\n", kind, docs.size(), double(bytes) / 1e6, g.out);
  return 0;
}

void add_gen(CLI::App& parent, const std::string& kind, std::shared_ptr<GenArgs> g, std::shared_ptr<std::string> chosen) {
  CLI::App* sub = parent.add_subcommand("gen-" + kind, kind == "arithmetic"
      ? "Generate multi-digit +, -, * problems with worked solutions (JSONL, field \"text\")"
      : "Generate countdown puzzles (reach a target using every number once) with worked solutions (JSONL)");
  sub->add_option("--count", g->count, "Number of documents")->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", g->seed, "Seed (problem i depends only on seed and i)");
  sub->add_option("--out", g->out, "Output .jsonl file")->required();
  sub->add_option("--style", g->style, "think (<think>...</think> then answer), prose, or mixed (default)");
  sub->add_option("--per-doc", g->per_doc, "Problems per document")->check(CLI::PositiveNumber);
  sub->callback([chosen, kind] { *chosen = kind; });
}

CommandRegistration reg{{"data", "Curate text into tokenized training shards; generate synthetic reasoning data",
  [](CLI::App& sub) -> std::function<int()> {
    auto cfg = std::make_shared<data::PipelineConfig>();
    auto tokenizer = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto no_progress = std::make_shared<bool>(false);
    auto no_near = std::make_shared<bool>(false);
    auto no_exact = std::make_shared<bool>(false);
    auto& q = cfg->quality;
    sub.add_option("--input", cfg->inputs, "Directories (walked recursively) and files: .txt .md .jsonl, optionally .gz");
    sub.add_option("--out", cfg->out_dir, "Output directory (shards, index.json, report.json)");
    sub.add_option("--tokenizer", *tokenizer, "Tokenizer directory; without it only curation runs (no shards)");
    sub.add_option("--jsonl-field", cfg->ingest.jsonl_field, "JSONL field holding the text")->capture_default_str();
    sub.add_option("--split-chars", cfg->ingest.split_chars,
                   "Cut documents longer than this many bytes at paragraph boundaries (0 = never)")->capture_default_str();
    sub.add_option("--min-chars", q.min_chars, "Drop documents with fewer characters")->capture_default_str();
    sub.add_option("--max-chars", q.max_chars, "Drop documents with more characters (0 = no limit)")->capture_default_str();
    sub.add_option("--min-alpha-ratio", q.min_alpha_ratio, "Min letters / non-space characters")->capture_default_str();
    sub.add_option("--max-symbol-ratio", q.max_symbol_ratio, "Max ('#' + ellipses) per word")->capture_default_str();
    sub.add_option("--max-dup-line-frac", q.max_dup_line_frac, "Max fraction of repeated lines")->capture_default_str();
    sub.add_option("--max-top-2gram", q.max_top_2gram, "Max character share of the most repeated 2-gram")->capture_default_str();
    sub.add_option("--max-top-3gram", q.max_top_3gram, "Same for 3-grams")->capture_default_str();
    sub.add_option("--max-top-4gram", q.max_top_4gram, "Same for 4-grams")->capture_default_str();
    sub.add_option("--max-invalid-utf8", cfg->max_invalid_utf8,
                   "Drop a document whose invalid UTF-8 bytes exceed this fraction; repair it otherwise")->capture_default_str();
    sub.add_option("--near-dup-threshold", cfg->near_dup_threshold, "MinHash Jaccard threshold for near duplicates")
        ->capture_default_str();
    sub.add_option("--num-perm", cfg->num_perm, "MinHash permutations")->capture_default_str();
    sub.add_flag("--no-near-dedup", *no_near, "Skip MinHash near-duplicate removal");
    sub.add_flag("--no-exact-dedup", *no_exact, "Skip exact-duplicate removal");
    sub.add_option("--val-fraction", cfg->val_fraction, "Fraction of documents in the validation split")->capture_default_str();
    sub.add_option("--seed", cfg->seed, "Seed of the train/val split")->capture_default_str();
    sub.add_option("--shard-tokens", cfg->shard_tokens, "Tokens per shard (documents never straddle shards)")
        ->capture_default_str();
    sub.add_flag("--write-text", cfg->write_text, "Also write the curated documents to <out>/curated.jsonl");
    sub.add_flag("--write-removed", cfg->write_removed, "Write removed documents and their reason to <out>/removed.jsonl");
    sub.add_flag("--no-progress", *no_progress, "No progress bar on stderr");
    sub.add_flag("--json", *as_json, "Print the report as JSON instead of text");

    auto gen = std::make_shared<GenArgs>();
    auto chosen = std::make_shared<std::string>();
    add_gen(sub, "arithmetic", gen, chosen);
    add_gen(sub, "countdown", gen, chosen);
    auto verify_dir = std::make_shared<std::string>();
    CLI::App* verify = sub.add_subcommand("verify", "Check index.json against the shard files (counts, EOS, ids)");
    verify->add_option("dir", *verify_dir, "Output directory of `baleine data`")->required();
    verify->callback([chosen] { *chosen = "verify"; });
    sub.require_subcommand(0, 1);

    return [=]() -> int {
      if (*chosen == "arithmetic" || *chosen == "countdown") return run_gen(*chosen, *gen);
      if (*chosen == "verify") {
        nlohmann::json s = data::verify_shards(*verify_dir);
        fmt::print("{}\n", s.dump());
        return 0;
      }
      BALEINE_CHECK(!cfg->inputs.empty(), "--input DIRS/FILES... is required");
      BALEINE_CHECK(!cfg->out_dir.empty(), "--out DIR is required");
      cfg->progress = !*no_progress;
      cfg->near_dedup = !*no_near;
      cfg->exact_dedup = !*no_exact;
      std::unique_ptr<data::TokenEncoder> enc;
      if (!tokenizer->empty()) enc = std::make_unique<data::TokenEncoder>(data::load_token_encoder(*tokenizer));
      nlohmann::json report = data::run_pipeline(*cfg, enc.get());
      if (*as_json) fmt::print("{}\n", report.dump());
      else fmt::print("{}report: {}/report.json\n", data::report_text(report), cfg->out_dir);
      return 0;
    };
  }}};

}  // namespace
}  // namespace baleine::app
