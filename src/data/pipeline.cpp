#include "data/pipeline.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "core/check.h"
#include "core/progress.h"
#include "core/threadpool.h"
#include "data/shards.h"
#include "data/text.h"

namespace fs = std::filesystem;

namespace baleine::data {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Dynamic scheduling over [0, n) in chunks of `grain` on the global pool (work per item varies a lot:
// files and documents differ in size). Results must go to per-item slots; exceptions are rethrown here.
void dynamic_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  ThreadPool::global().run([&](int) {
    for (;;) {
      int64_t b = next.fetch_add(grain);
      if (b >= n) return;
      try {
        fn(b, std::min(n, b + grain));
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n);
        return;
      }
    }
  });
  if (error) std::rethrow_exception(error);
}

struct Doc {
  std::string text;  // normalised
  uint64_t hash = 0;
  int64_t raw_bytes = 0;
  uint32_t file = 0;  // index into the sorted file list
  Reject reason = Reject::None;
  bool repaired = false;
};

void normalise_doc(Doc& d, std::string raw, double max_invalid) {
  d.raw_bytes = int64_t(raw.size());
  size_t invalid = count_invalid_utf8(raw);
  if (invalid > 0) {
    if (double(invalid) > max_invalid * double(raw.size())) {
      d.reason = Reject::InvalidUtf8;
      return;
    }
    raw = repair_utf8(raw);
    d.repaired = true;
  }
  d.text = normalize_text(raw);
  if (d.text.empty()) {
    d.reason = Reject::Empty;
    return;
  }
  d.hash = hash64(d.text);
}

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.2f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

void write_json_file(const fs::path& path, const nlohmann::json& j) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    BALEINE_CHECK(out.good(), "cannot write '{}'", tmp.string());
    out << j.dump(2) << "\n";
    BALEINE_CHECK(out.good(), "write failed on '{}'", tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

bool split_is_val(uint64_t text_hash, uint64_t seed, double val_fraction) {
  if (val_fraction <= 0.0) return false;
  uint64_t h = mix64(text_hash ^ mix64(seed + 0x76616C6964ULL));
  double u = double(h >> 11) * 0x1.0p-53;
  return u < val_fraction;
}

nlohmann::json run_pipeline(const PipelineConfig& cfg, const TokenEncoder* encoder) {
  BALEINE_CHECK(!cfg.out_dir.empty(), "no output directory (--out)");
  BALEINE_CHECK(cfg.val_fraction >= 0.0 && cfg.val_fraction < 1.0, "--val-fraction must be in [0, 1), got {}",
                cfg.val_fraction);
  BALEINE_CHECK(cfg.near_dup_threshold > 0.0 && cfg.near_dup_threshold <= 1.0,
                "--near-dup-threshold must be in (0, 1], got {}", cfg.near_dup_threshold);
  BALEINE_CHECK(cfg.max_invalid_utf8 >= 0.0, "--max-invalid-utf8 must be >= 0");
  auto t_start = Clock::now();
  nlohmann::json seconds = nlohmann::json::object();

  // ---- 1. discover + read + normalise -----------------------------------------------------------------
  auto t0 = Clock::now();
  std::vector<std::string> files = discover_files(cfg.inputs);
  BALEINE_CHECK(!files.empty(), "no files found under the inputs ({})", fmt::join(cfg.inputs, ", "));
  std::vector<FileDocuments> per_file(files.size());
  {
    ProgressBar bar("read", int64_t(files.size()), "files", cfg.progress);
    dynamic_for(int64_t(files.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t f = b; f < e; ++f) {
        FileDocuments& fd = per_file[size_t(f)];
        fd = read_documents(files[size_t(f)], cfg.ingest);
        bar.add(1, fd.bytes);
      }
    });
  }
  int64_t files_read = 0, files_binary = 0, files_unsupported = 0, files_error = 0, bytes_read = 0;
  int64_t jsonl_bad = 0, jsonl_missing = 0, jsonl_repaired = 0;
  std::vector<std::string> error_examples;
  size_t n_docs = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const auto& fd = per_file[f];
    switch (fd.status) {
      case FileDocuments::Status::Ok: ++files_read; break;
      case FileDocuments::Status::Binary: ++files_binary; break;
      case FileDocuments::Status::Unsupported: ++files_unsupported; break;
      case FileDocuments::Status::Error:
        ++files_error;
        if (error_examples.size() < 5) error_examples.push_back(fd.error);
        break;
    }
    bytes_read += fd.bytes;
    jsonl_bad += fd.jsonl_bad_lines;
    jsonl_missing += fd.jsonl_missing_field;
    jsonl_repaired += fd.jsonl_repaired;
    n_docs += fd.documents.size();
  }
  // Normalise per document (not per file: one big file must not serialise the stage).
  std::vector<Doc> docs(n_docs);
  std::vector<std::string*> raw(n_docs);
  for (size_t f = 0, k = 0; f < files.size(); ++f)
    for (auto& text : per_file[f].documents) docs[k].file = uint32_t(f), raw[k++] = &text;
  {
    ProgressBar bar("normalise", int64_t(n_docs), "docs", cfg.progress);
    dynamic_for(int64_t(n_docs), 16, [&](int64_t b, int64_t e) {
      int64_t bytes = 0;
      for (int64_t i = b; i < e; ++i) {
        bytes += int64_t(raw[size_t(i)]->size());
        normalise_doc(docs[size_t(i)], std::move(*raw[size_t(i)]), cfg.max_invalid_utf8);
        std::string().swap(*raw[size_t(i)]);
      }
      bar.add(e - b, bytes);
    });
  }
  raw.clear();
  for (auto& fd : per_file) std::vector<std::string>().swap(fd.documents);
  BALEINE_CHECK(!docs.empty(),
                "no documents in {} file(s) under the inputs ({} binary, {} unsupported, {} unreadable): expected "
                ".txt, .md or .jsonl (optionally .gz) files",
                files.size(), files_binary, files_unsupported, files_error);
  seconds["read"] = seconds_since(t0);

  // ---- 2. exact dedup (sequential: the first occurrence wins) ------------------------------------------
  t0 = Clock::now();
  if (cfg.exact_dedup) {
    std::unordered_map<uint64_t, uint32_t> first;
    first.reserve(docs.size());
    for (size_t i = 0; i < docs.size(); ++i) {
      Doc& d = docs[i];
      if (d.reason != Reject::None) continue;
      auto [it, inserted] = first.emplace(d.hash, uint32_t(i));
      if (!inserted && docs[it->second].text == d.text) d.reason = Reject::ExactDuplicate;
    }
  }
  seconds["exact_dedup"] = seconds_since(t0);

  // ---- 3. quality filters (parallel) -------------------------------------------------------------------
  t0 = Clock::now();
  {
    ProgressBar bar("filter", int64_t(docs.size()), "docs", cfg.progress);
    dynamic_for(int64_t(docs.size()), 64, [&](int64_t b, int64_t e) {
      int64_t bytes = 0;
      for (int64_t i = b; i < e; ++i) {
        Doc& d = docs[size_t(i)];
        if (d.reason != Reject::None) continue;
        d.reason = quality_check(d.text, cfg.quality);
        bytes += int64_t(d.text.size());
      }
      bar.add(e - b, bytes);
    });
  }
  seconds["filter"] = seconds_since(t0);

  // ---- 4. near dedup: signatures in parallel batches, LSH index in document order --------------------
  t0 = Clock::now();
  nlohmann::json near_info = {{"enabled", cfg.near_dedup}};
  if (cfg.near_dedup) {
    MinHasher hasher(cfg.num_perm, cfg.shingle, mix64(cfg.seed ^ 0x6e656172ULL));
    NearDupIndex index(cfg.num_perm, cfg.near_dup_threshold);
    std::vector<uint32_t> alive;
    for (size_t i = 0; i < docs.size(); ++i)
      if (docs[i].reason == Reject::None) alive.push_back(uint32_t(i));
    ProgressBar bar("near-dedup", int64_t(alive.size()), "docs", cfg.progress);
    constexpr size_t kBatch = 8192;
    std::vector<std::vector<uint32_t>> sigs;
    for (size_t b = 0; b < alive.size(); b += kBatch) {
      size_t e = std::min(alive.size(), b + kBatch);
      sigs.assign(e - b, {});
      dynamic_for(int64_t(e - b), 16, [&](int64_t lo, int64_t hi) {
        int64_t bytes = 0;
        for (int64_t k = lo; k < hi; ++k) {
          const Doc& d = docs[alive[b + size_t(k)]];
          sigs[size_t(k)] = hasher.signature(d.text);
          bytes += int64_t(d.text.size());
        }
        bar.add(hi - lo, bytes);
      });
      for (size_t k = 0; k < sigs.size(); ++k)
        if (index.query_insert(sigs[k])) docs[alive[b + k]].reason = Reject::NearDuplicate;
    }
    near_info = {{"enabled", true},        {"threshold", cfg.near_dup_threshold}, {"num_perm", cfg.num_perm},
                 {"shingle_words", cfg.shingle}, {"bands", index.bands()},   {"rows", index.rows()},
                 {"candidates_checked", index.candidates_checked()}};
  }
  seconds["near_dedup"] = seconds_since(t0);

  // ---- 5. split + tokenize + pack ---------------------------------------------------------------------
  t0 = Clock::now();
  fs::create_directories(cfg.out_dir);
  std::vector<uint32_t> kept;
  int64_t kept_bytes = 0;
  for (size_t i = 0; i < docs.size(); ++i)
    if (docs[i].reason == Reject::None) kept.push_back(uint32_t(i)), kept_bytes += int64_t(docs[i].text.size());
  int64_t n_val_docs = 0, val_bytes = 0;
  for (uint32_t i : kept)
    if (split_is_val(docs[i].hash, cfg.seed, cfg.val_fraction)) ++n_val_docs, val_bytes += int64_t(docs[i].text.size());

  nlohmann::json tokens_info = nullptr;
  nlohmann::json index_json = nullptr;
  if (encoder != nullptr) {
    for (const auto& entry : fs::directory_iterator(cfg.out_dir)) {
      std::string name = entry.path().filename().string();
      bool stale = (name.rfind("train-", 0) == 0 || name.rfind("val-", 0) == 0) && name.size() > 4 &&
                   name.compare(name.size() - 4, 4, ".bin") == 0;
      if (stale || name == "index.json") fs::remove(entry.path());
    }
    ShardWriter train(cfg.out_dir, "train", cfg.shard_tokens, encoder->eos_id);
    ShardWriter val(cfg.out_dir, "val", cfg.shard_tokens, encoder->eos_id);
    ProgressBar bar("tokenize", int64_t(kept.size()), "docs", cfg.progress);
    constexpr size_t kBatch = 4096;
    std::vector<std::vector<uint32_t>> encoded;
    for (size_t b = 0; b < kept.size(); b += kBatch) {
      size_t e = std::min(kept.size(), b + kBatch);
      encoded.assign(e - b, {});
      dynamic_for(int64_t(e - b), 8, [&](int64_t lo, int64_t hi) {
        int64_t bytes = 0;
        for (int64_t k = lo; k < hi; ++k) {
          const Doc& d = docs[kept[b + size_t(k)]];
          encoder->encode(d.text, encoded[size_t(k)]);
          bytes += int64_t(d.text.size());
        }
        bar.add(hi - lo, bytes);
      });
      for (size_t k = 0; k < encoded.size(); ++k) {
        const Doc& d = docs[kept[b + k]];
        (split_is_val(d.hash, cfg.seed, cfg.val_fraction) ? val : train).add_document(encoded[k]);
      }
    }
    bar.finish();
    train.close();
    val.close();
    index_json = {{"format", "baleine-tokens-v1"},
                  {"dtype", "uint32le"},
                  {"eos_id", encoder->eos_id},
                  {"vocab_size", encoder->vocab_size},
                  {"tokenizer", {{"path", encoder->path}, {"hash", encoder->hash}}},
                  {"separator", "each document is followed by eos_id; documents never straddle shards"},
                  {"seed", cfg.seed},
                  {"val_fraction", cfg.val_fraction},
                  {"splits", {{"train", train.index()}, {"val", val.index()}}}};
    write_json_file(fs::path(cfg.out_dir) / "index.json", index_json);
    int64_t total = train.tokens() + val.tokens();
    int64_t eos_count = train.documents() + val.documents();
    int64_t text_tokens = total - eos_count;
    tokens_info = {{"train", train.tokens()},
                   {"val", val.tokens()},
                   {"total", total},
                   {"eos", eos_count},
                   {"train_shards", train.shards().size()},
                   {"val_shards", val.shards().size()},
                   {"bytes_per_token", text_tokens > 0 ? double(kept_bytes) / double(text_tokens) : 0.0}};
  }
  if (cfg.write_text) {
    std::ofstream out(fs::path(cfg.out_dir) / "curated.jsonl");
    BALEINE_CHECK(out.good(), "cannot write {}/curated.jsonl", cfg.out_dir);
    for (uint32_t i : kept) {
      const Doc& d = docs[i];
      out << nlohmann::json{{"text", d.text}, {"split", split_is_val(d.hash, cfg.seed, cfg.val_fraction) ? "val" : "train"}}.dump()
          << "\n";
    }
    BALEINE_CHECK(out.good(), "write failed on {}/curated.jsonl", cfg.out_dir);
  }
  if (cfg.write_removed) {
    std::ofstream out(fs::path(cfg.out_dir) / "removed.jsonl");
    BALEINE_CHECK(out.good(), "cannot write {}/removed.jsonl", cfg.out_dir);
    for (const Doc& d : docs)
      if (d.reason != Reject::None)
        out << nlohmann::json{{"reason", reject_name(d.reason)}, {"text", d.text}}.dump() << "\n";
  }
  seconds["tokenize"] = seconds_since(t0);
  seconds["total"] = seconds_since(t_start);

  // ---- 6. report ----------------------------------------------------------------------------------------
  std::vector<int64_t> removed(size_t(Reject::Count), 0), removed_bytes(size_t(Reject::Count), 0);
  int64_t repaired = jsonl_repaired, raw_bytes = 0;
  for (const Doc& d : docs) {
    removed[size_t(d.reason)] += 1;
    removed_bytes[size_t(d.reason)] += d.raw_bytes;
    repaired += d.repaired;
    raw_bytes += d.raw_bytes;
  }
  nlohmann::json removed_json = nlohmann::json::object(), removed_bytes_json = nlohmann::json::object();
  int64_t removed_total = 0;
  for (int r = 1; r < int(Reject::Count); ++r) {
    removed_json[reject_name(Reject(r))] = removed[size_t(r)];
    removed_bytes_json[reject_name(Reject(r))] = removed_bytes[size_t(r)];
    removed_total += removed[size_t(r)];
  }
  // Per-file breakdown (only for a manageable number of files).
  nlohmann::json per_file_json = nullptr;
  constexpr size_t kMaxPerFile = 256;
  if (files.size() <= kMaxPerFile) {
    std::vector<int64_t> f_in(files.size(), 0), f_kept(files.size(), 0), f_in_bytes(files.size(), 0), f_kept_bytes(files.size(), 0);
    for (const Doc& d : docs) {
      f_in[d.file] += 1;
      f_in_bytes[d.file] += d.raw_bytes;
      if (d.reason == Reject::None) f_kept[d.file] += 1, f_kept_bytes[d.file] += int64_t(d.text.size());
    }
    per_file_json = nlohmann::json::array();
    for (size_t f = 0; f < files.size(); ++f)
      per_file_json.push_back({{"path", files[f]},
                               {"documents_in", f_in[f]},
                               {"documents_kept", f_kept[f]},
                               {"bytes_in", f_in_bytes[f]},
                               {"bytes_kept", f_kept_bytes[f]}});
  }
  const QualityConfig& q = cfg.quality;
  nlohmann::json report = {
      {"inputs", cfg.inputs},
      {"out", cfg.out_dir},
      {"files",
       {{"found", files.size()},
        {"read", files_read},
        {"binary_skipped", files_binary},
        {"unsupported_skipped", files_unsupported},
        {"unreadable", files_error},
        {"unreadable_examples", error_examples},
        {"jsonl_bad_lines", jsonl_bad},
        {"jsonl_missing_field", jsonl_missing}}},
      {"documents",
       {{"in", docs.size()},
        {"kept", kept.size()},
        {"removed_total", removed_total},
        {"removed", removed_json},
        {"utf8_repaired", repaired},
        {"train", int64_t(kept.size()) - n_val_docs},
        {"val", n_val_docs}}},
      {"bytes",
       {{"read", bytes_read},
        {"in", raw_bytes},
        {"kept", kept_bytes},
        {"train", kept_bytes - val_bytes},
        {"val", val_bytes},
        {"removed", removed_bytes_json}}},
      {"tokens", tokens_info},
      {"tokenizer", encoder ? nlohmann::json{{"path", encoder->path}, {"hash", encoder->hash}, {"eos_id", encoder->eos_id},
                                             {"vocab_size", encoder->vocab_size}}
                            : nlohmann::json(nullptr)},
      {"filters",
       {{"min_chars", q.min_chars},
        {"max_chars", q.max_chars},
        {"min_alpha_ratio", q.min_alpha_ratio},
        {"max_symbol_ratio", q.max_symbol_ratio},
        {"max_dup_line_frac", q.max_dup_line_frac},
        {"max_top_ngram", {q.max_top_2gram, q.max_top_3gram, q.max_top_4gram}},
        {"max_invalid_utf8", cfg.max_invalid_utf8},
        {"exact_dedup", cfg.exact_dedup}}},
      {"near_dedup", near_info},
      {"split", {{"val_fraction", cfg.val_fraction}, {"seed", cfg.seed}}},
      {"per_file", per_file_json},
      {"threads", ThreadPool::global().size()},
      {"seconds", seconds},
  };
  write_json_file(fs::path(cfg.out_dir) / "report.json", report);
  return report;
}

std::string report_text(const nlohmann::json& r) {
  std::string s;
  const auto& f = r.at("files");
  const auto& d = r.at("documents");
  const auto& b = r.at("bytes");
  int64_t in = d.at("in").get<int64_t>(), kept = d.at("kept").get<int64_t>();
  s += fmt::format("files      {} found: {} read, {} binary skipped, {} unsupported skipped, {} unreadable\n",
                   f.at("found").get<int64_t>(), f.at("read").get<int64_t>(), f.at("binary_skipped").get<int64_t>(),
                   f.at("unsupported_skipped").get<int64_t>(), f.at("unreadable").get<int64_t>());
  if (f.at("jsonl_bad_lines").get<int64_t>() + f.at("jsonl_missing_field").get<int64_t>() > 0)
    s += fmt::format("jsonl      {} malformed lines, {} without the text field\n", f.at("jsonl_bad_lines").get<int64_t>(),
                     f.at("jsonl_missing_field").get<int64_t>());
  s += fmt::format("documents  {} in, {} kept ({:.1f}%), {} removed, {} with repaired UTF-8\n", in, kept,
                   in ? 100.0 * double(kept) / double(in) : 0.0, d.at("removed_total").get<int64_t>(),
                   d.at("utf8_repaired").get<int64_t>());
  for (int k = 1; k < int(Reject::Count); ++k) {
    int64_t count = d.at("removed").value(reject_name(Reject(k)), int64_t(0));
    double rb = b.contains("removed") ? b.at("removed").value(reject_name(Reject(k)), 0.0) : 0.0;
    s += fmt::format("  removed  {:<16} {:>9} docs ({:5.2f}%) {:>10}\n", reject_name(Reject(k)), count,
                     in ? 100.0 * double(count) / double(in) : 0.0, human_bytes(rb));
  }
  s += fmt::format("split      {} train / {} val documents\n", d.at("train").get<int64_t>(), d.at("val").get<int64_t>());
  s += fmt::format("bytes      {} read, {} in documents, {} kept ({} train, {} val)\n", human_bytes(b.at("read").get<double>()),
                   human_bytes(b.at("in").get<double>()), human_bytes(b.at("kept").get<double>()),
                   human_bytes(b.at("train").get<double>()), human_bytes(b.at("val").get<double>()));
  if (!r.at("tokens").is_null()) {
    const auto& t = r.at("tokens");
    s += fmt::format("tokens     {} total: {} train in {} shard(s), {} val in {} shard(s); {} EOS; {:.3f} bytes/token\n",
                     t.at("total").get<int64_t>(), t.at("train").get<int64_t>(), t.at("train_shards").get<int64_t>(),
                     t.at("val").get<int64_t>(), t.at("val_shards").get<int64_t>(), t.at("eos").get<int64_t>(),
                     t.at("bytes_per_token").get<double>());
  } else {
    s += "tokens     (no tokenizer given: curation only)\n";
  }
  const auto& n = r.at("near_dedup");
  if (n.value("enabled", false))
    s += fmt::format("near-dup   MinHash {} perms, {}-word shingles, LSH {} bands x {} rows, Jaccard >= {}\n",
                     n.at("num_perm").get<int>(), n.at("shingle_words").get<int>(), n.at("bands").get<int>(),
                     n.at("rows").get<int>(), n.at("threshold").get<double>());
  const auto& t = r.at("seconds");
  double total = t.at("total").get<double>();
  s += fmt::format("time       {:.1f} s (read+normalise {:.1f}, exact dedup {:.1f}, filters {:.1f}, near dedup {:.1f}, "
                   "tokenize+pack {:.1f}), {:.1f} MB/s, {} threads\n",
                   total, t.at("read").get<double>(), t.at("exact_dedup").get<double>(), t.at("filter").get<double>(),
                   t.at("near_dedup").get<double>(), t.at("tokenize").get<double>(),
                   total > 0 ? b.at("read").get<double>() / 1e6 / total : 0.0, r.at("threads").get<int>());
  return s;
}

}  // namespace baleine::data
