// data: normalisation, UTF-8 handling, exact + near dedup, quality filters, ingestion (binary, .gz, jsonl),
// shard round trip, generators.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/progress.h"
#include "data/filters.h"
#include "data/generators.h"
#include "data/pipeline.h"
#include "data/shards.h"
#include "data/source.h"
#include "data/text.h"

using namespace baleine;
using namespace baleine::data;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / fmt::format("baleine_test_data_{}_{}", ::getpid(), counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

// Deterministic English-looking prose: n words from a fixed vocabulary driven by a seed.
std::string prose(uint64_t seed, int n) {
  static const char* vocab[] = {"the", "river", "stone", "carried", "quietly", "under", "bright", "morning",
                                "light", "while", "children", "gathered", "small", "shells", "near", "old",
                                "harbour", "walls", "and", "sang", "about", "distant", "ships", "returning",
                                "home", "through", "autumn", "storms", "with", "heavy", "sails", "folded"};
  std::string s;
  uint64_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = mix64(x + 0x9E3779B97F4A7C15ULL);
    s += vocab[x % 32];
    s += (i % 12 == 11) ? ".\n" : " ";
  }
  return s;
}

PipelineConfig quiet_config(const std::string& in, const std::string& out) {
  PipelineConfig c;
  c.inputs = {in};
  c.out_dir = out;
  c.progress = false;
  return c;
}

int64_t removed(const nlohmann::json& report, const char* name) { return report["documents"]["removed"][name].get<int64_t>(); }

// Byte-level fake tokenizer: id = byte, EOS = 256.
TokenEncoder byte_encoder() {
  TokenEncoder e;
  e.path = "bytes";
  e.hash = "0";
  e.eos_id = 256;
  e.vocab_size = 257;
  e.encode = [](std::string_view text, std::vector<uint32_t>& out) {
    for (unsigned char c : text) out.push_back(c);
  };
  return e;
}

}  // namespace

TEST(DataText, WhitespaceNormalisation) {
  EXPECT_EQ(normalize_whitespace("a  \r\nb\t \rc"), "a\nb\nc");
  EXPECT_EQ(normalize_whitespace("\n\n  \npara 1\n\n\n\n\n\npara 2   \n\n\n"), "para 1\n\n\npara 2");
  EXPECT_EQ(normalize_whitespace("keep\n\none blank"), "keep\n\none blank");
  EXPECT_EQ(normalize_whitespace("tab\tinside\x01\x7f ok\fnext"), "tab\tinside ok\nnext");
  EXPECT_EQ(normalize_whitespace("   \n \t\n"), "");
}

TEST(DataText, NfcComposes) {
  // "e" + COMBINING ACUTE -> U+00E9; "A" + COMBINING RING -> U+00C5; ASCII untouched.
  EXPECT_EQ(nfc("caf\x65\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(nfc("\x41\xCC\x8A"), "\xC3\x85");
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(normalize_text("e\xCC\x81t\xC3\xA9  \r\n"), "\xC3\xA9t\xC3\xA9");
  // Already-NFC text comes back byte-identical.
  EXPECT_EQ(nfc("na\xC3\xAFve \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC"), "na\xC3\xAFve \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC");
}

TEST(DataText, Utf8ValidationAndRepair) {
  EXPECT_EQ(count_invalid_utf8("h\xC3\xA9llo \xF0\x9F\x90\xB3"), 0u);
  EXPECT_EQ(count_invalid_utf8("\xC0\xAF"), 2u);          // overlong: two invalid bytes
  EXPECT_EQ(count_invalid_utf8("\xED\xA0\x80"), 3u);      // surrogate
  EXPECT_EQ(count_invalid_utf8("ab\xE2\x82"), 2u);        // truncated
  EXPECT_EQ(count_invalid_utf8("\xF4\x90\x80\x80"), 4u);  // > U+10FFFF
  size_t bad = 0;
  EXPECT_EQ(repair_utf8("a\xFF" "b\xE2\x82" "c", &bad), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c");
  EXPECT_EQ(bad, 3u);
  EXPECT_TRUE(looks_binary(std::string("abc\0def", 7)));
  EXPECT_TRUE(looks_binary("\xFF\xFE\xFD\xFC text"));
  EXPECT_FALSE(looks_binary("ordinary text with one bad byte \xFF in it"));
}

TEST(DataText, HashIsStableAndSensitive) {
  EXPECT_EQ(hash64("hello"), hash64("hello"));
  EXPECT_NE(hash64("hello"), hash64("hellp"));
  EXPECT_NE(hash64("hello", 1), hash64("hello", 2));
  EXPECT_NE(hash64(""), hash64(std::string(1, '\0')));
}

TEST(DataSource, SplitTextAtParagraphs) {
  std::string text = "para one line\nstill one\n\npara two\n\n\npara three is longer than the others\n";
  auto pieces = split_text(text, 30);
  ASSERT_GE(pieces.size(), 2u);
  std::string joined;
  for (auto& p : pieces) {
    EXPECT_LE(p.size(), 40u);
    joined += p;
  }
  EXPECT_EQ(joined, text);  // nothing lost or reordered
  EXPECT_EQ(split_text(text, 0).size(), 1u);
  EXPECT_EQ(split_text(std::string(100, 'x'), 30).size(), 4u);  // one over-long line: hard cuts
}

TEST(DataFilters, EachFilterOnCraftedInput) {
  QualityConfig c;
  const std::string good = prose(1, 120);
  EXPECT_EQ(quality_check(good, c), Reject::None);
  EXPECT_EQ(quality_check("too short", c), Reject::TooShort);
  QualityConfig small = c;
  small.max_chars = 200;
  EXPECT_EQ(quality_check(good, small), Reject::TooLong);
  std::string numbers;
  for (int i = 0; i < 100; ++i) numbers += fmt::format("{} = {} + {};\n", i * 7919 % 1000, i, i * 3);
  EXPECT_EQ(quality_check(numbers, c), Reject::AlphaRatio);
  std::string hashes = good;
  for (int i = 0; i < 40; ++i) hashes += " #tag ...";
  EXPECT_EQ(quality_check(hashes, c), Reject::SymbolRatio);
  std::string lines;
  for (int i = 0; i < 30; ++i) lines += (i % 2 ? "Click here to subscribe to our newsletter\n" : prose(uint64_t(i) + 10, 12));
  EXPECT_EQ(quality_check(lines, c), Reject::DuplicateLines);
  std::string spam = prose(5, 60);
  for (int i = 0; i < 30; ++i) spam += " buy cheap watches now, " + prose(uint64_t(i) + 99, 3);
  EXPECT_EQ(quality_check(spam, c), Reject::TopNgram);

  QualityStats st = quality_stats("ab #... c\u2026\nab #... c\u2026\n");
  EXPECT_EQ(st.lines, 2);
  EXPECT_EQ(st.dup_lines, 1);
  EXPECT_EQ(st.symbols, 6);  // 2 x ('#' + "..." + U+2026)
}

TEST(DataFilters, MinHashNearDuplicates) {
  MinHasher h;
  std::string a = prose(42, 400);
  // Change 4 words out of 400: the shingle Jaccard stays well above 0.8.
  std::string b = a;
  for (const char* w : {"river", "stone", "harbour", "ships"}) {
    size_t p = b.find(w);
    ASSERT_NE(p, std::string::npos);
    b.replace(p, std::strlen(w), "zebra");
  }
  std::string c = prose(7, 400);  // same vocabulary, different text
  EXPECT_GE(h.jaccard_exact(a, b), 0.8);
  EXPECT_GE(MinHasher::jaccard_estimate(h.signature(a), h.signature(b)), 0.8);
  EXPECT_LT(MinHasher::jaccard_estimate(h.signature(a), h.signature(c)), 0.3);
  NearDupIndex index(128, 0.8);
  EXPECT_FALSE(index.query_insert(h.signature(a)));
  EXPECT_TRUE(index.query_insert(h.signature(b)));   // near-duplicate of a
  EXPECT_FALSE(index.query_insert(h.signature(c)));  // distinct
  EXPECT_TRUE(index.query_insert(h.signature(c)));   // exact copy of c is also a near-duplicate
  int bands = 0, rows = 0;
  choose_bands(128, 0.8, &bands, &rows);
  EXPECT_LE(bands * rows, 128);
  EXPECT_LE(std::pow(1.0 / bands, 1.0 / rows), 0.7 + 1e-9);
}

TEST(DataPipeline, DedupAndFiltersAreCounted) {
  TempDir in, out;
  std::string a = prose(1, 200), b = prose(2, 200), c = prose(3, 200);
  std::string a_near = a;
  a_near.replace(a_near.find("the"), 3, "one");
  in.file("a.txt", a);
  in.file("b.md", b);
  in.file("sub/a_copy.txt", a + "   \r\n\r\n");  // same after normalisation -> exact duplicate
  in.file("sub/a_near.txt", a_near);           // a few words changed -> near duplicate
  in.file("short.txt", "tiny");
  in.file("numbers.txt", std::string(300, '7'));
  in.file("docs.jsonl", nlohmann::json{{"text", c}}.dump() + "\n" + "not json\n" +
                            nlohmann::json{{"body", "x"}}.dump() + "\n");
  in.file("image.txt", std::string("PNG\0\0\0binary", 12));  // NUL bytes -> binary, skipped
  in.file("notes.pdf", "unsupported");
  std::string bad = prose(9, 200);
  bad.insert(100, "\xFF");  // one bad byte: repaired
  in.file("repair.txt", bad);
  std::string garbage = prose(10, 100);
  for (int i = 0; i < 40; ++i) garbage.insert(size_t(i) * 10, "\xC3");  // ~5% invalid: dropped
  in.file("garbage.txt", garbage);

  nlohmann::json r = run_pipeline(quiet_config(in.path.string(), out.path.string()), nullptr);
  EXPECT_EQ(r["files"]["found"], 11);
  EXPECT_EQ(r["files"]["binary_skipped"], 1);
  EXPECT_EQ(r["files"]["unsupported_skipped"], 1);
  EXPECT_EQ(r["files"]["jsonl_bad_lines"], 1);
  EXPECT_EQ(r["files"]["jsonl_missing_field"], 1);
  EXPECT_EQ(removed(r, "exact_duplicate"), 1);
  EXPECT_EQ(removed(r, "near_duplicate"), 1);
  EXPECT_EQ(removed(r, "too_short"), 1);
  EXPECT_EQ(removed(r, "alpha_ratio"), 1);
  EXPECT_EQ(removed(r, "invalid_utf8"), 1);
  EXPECT_EQ(r["documents"]["utf8_repaired"], 1);
  EXPECT_EQ(r["documents"]["in"], 9);
  EXPECT_EQ(r["documents"]["kept"], 4);  // a, b, c, repaired
  EXPECT_TRUE(fs::exists(out.path / "report.json"));
  EXPECT_FALSE(fs::exists(out.path / "index.json"));  // no tokenizer: curation only
}

TEST(DataPipeline, GzipInputs) {
  TempDir in, out;
  std::string plain = in.file("corpus/a.txt", prose(11, 150));
  in.file("corpus/b.jsonl", nlohmann::json{{"text", prose(12, 150)}}.dump() + "\n");
  ASSERT_EQ(std::system(("gzip -f " + plain + " " + (in.path / "corpus/b.jsonl").string()).c_str()), 0);
  ASSERT_TRUE(fs::exists(plain + ".gz"));
  EXPECT_EQ(read_file_bytes(plain + ".gz"), prose(11, 150));
  nlohmann::json r = run_pipeline(quiet_config(in.path.string(), out.path.string()), nullptr);
  EXPECT_EQ(r["files"]["read"], 2);
  EXPECT_EQ(r["documents"]["kept"], 2);
}

TEST(DataPipeline, EmptyInputsGiveClearErrors) {
  TempDir in, out;
  try {
    run_pipeline(quiet_config(in.path.string(), out.path.string()), nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no files found"), std::string::npos) << e.what();
  }
  in.file("only.bin.pdf", "x");
  in.file("empty.txt", "  \n\n");
  try {
    nlohmann::json r = run_pipeline(quiet_config(in.path.string(), out.path.string()), nullptr);
    EXPECT_EQ(r["documents"]["removed"]["empty"], 1);
    EXPECT_EQ(r["documents"]["kept"], 0);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  fs::remove(in.path / "empty.txt");
  EXPECT_THROW(run_pipeline(quiet_config(in.path.string(), out.path.string()), nullptr), Error);
  EXPECT_THROW(run_pipeline(quiet_config((in.path / "missing").string(), out.path.string()), nullptr), Error);
}

TEST(DataShards, RoundTripWithEosAndIndex) {
  TempDir in, out;
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) texts.push_back(prose(uint64_t(1000 + i), 60 + i));
  std::string jsonl;
  for (auto& t : texts) jsonl += nlohmann::json{{"text", t}}.dump() + "\n";
  in.file("docs.jsonl", jsonl);
  PipelineConfig cfg = quiet_config(in.path.string(), out.path.string());
  cfg.val_fraction = 0.2;
  cfg.shard_tokens = 2000;  // several shards
  cfg.write_text = true;
  TokenEncoder enc = byte_encoder();
  nlohmann::json r = run_pipeline(cfg, &enc);
  EXPECT_EQ(r["documents"]["kept"], 40);
  nlohmann::json summary = verify_shards(out.path.string());
  std::ifstream idx_in(out.path / "index.json");
  nlohmann::json index = nlohmann::json::parse(idx_in);
  EXPECT_EQ(index["eos_id"], 256);
  EXPECT_GT(index["splits"]["train"]["shards"].size(), 1u);
  EXPECT_GT(index["splits"]["val"]["documents"].get<int64_t>(), 0);
  EXPECT_EQ(index["splits"]["train"]["documents"].get<int64_t>() + index["splits"]["val"]["documents"].get<int64_t>(), 40);
  EXPECT_EQ(summary["train"]["tokens"], index["splits"]["train"]["tokens"]);
  EXPECT_EQ(r["tokens"]["total"].get<int64_t>(),
            index["splits"]["train"]["tokens"].get<int64_t>() + index["splits"]["val"]["tokens"].get<int64_t>());

  // Decode every shard back to text: the documents, in order, are exactly the curated ones of each split.
  std::map<std::string, std::vector<std::string>> expected;
  std::ifstream cur(out.path / "curated.jsonl");
  for (std::string line; std::getline(cur, line);) {
    auto j = nlohmann::json::parse(line);
    expected[j["split"]].push_back(j["text"]);
  }
  for (const std::string split : {"train", "val"}) {
    std::vector<std::string> got;
    for (const auto& s : index["splits"][split]["shards"]) {
      auto tokens = read_shard((out.path / s["file"].get<std::string>()).string());
      ASSERT_FALSE(tokens.empty());
      EXPECT_EQ(tokens.back(), 256u);
      auto docs = split_at_eos(tokens, 256);
      EXPECT_EQ(int64_t(docs.size()), s["documents"].get<int64_t>());
      for (auto& d : docs) got.emplace_back(d.begin(), d.end());
    }
    EXPECT_EQ(got, expected[split]) << split;
  }
  // Deterministic: a second run writes identical bytes.
  auto first = read_shard((out.path / "train-00000.bin").string());
  run_pipeline(cfg, &enc);
  EXPECT_EQ(read_shard((out.path / "train-00000.bin").string()), first);
  // A corrupted count is caught.
  index["splits"]["train"]["shards"][0]["documents"] = 9999;
  std::ofstream(out.path / "index.json") << index.dump();
  EXPECT_THROW(verify_shards(out.path.string()), Error);
}

TEST(DataSplit, ValFractionIsRespected) {
  int val = 0;
  for (uint64_t i = 0; i < 20000; ++i) val += split_is_val(mix64(i), 7, 0.05);
  EXPECT_NEAR(val / 20000.0, 0.05, 0.01);
  EXPECT_FALSE(split_is_val(123, 0, 0.0));
}

TEST(DataGenerators, ArithmeticIsCorrectAndDeterministic) {
  for (int64_t i = 0; i < 500; ++i) {
    ArithmeticProblem p = make_arithmetic(3, i);
    int64_t expect = p.op == '+' ? p.a + p.b : p.op == '-' ? p.a - p.b : p.a * p.b;
    ASSERT_EQ(p.result, expect);
    std::string think = render_arithmetic(p, true, uint64_t(i));
    EXPECT_NE(think.find("<think>\n"), std::string::npos);
    std::string answer = fmt::format("</think>\n{} {} {} = {}", p.a, p.op, p.b, p.result);
    ASSERT_EQ(think.substr(think.size() - answer.size()), answer) << think;
    EXPECT_NE(render_arithmetic(p, false, uint64_t(i)).find(std::to_string(p.result)), std::string::npos);
  }
  auto d1 = generate_documents("arithmetic", 50, 9, Style::Mixed);
  auto d2 = generate_documents("arithmetic", 80, 9, Style::Mixed);
  for (size_t i = 0; i < d1.size(); ++i) EXPECT_EQ(d1[i], d2[i]);  // problem i does not depend on count
  EXPECT_NE(generate_documents("arithmetic", 5, 10, Style::Mixed), std::vector<std::string>(d1.begin(), d1.begin() + 5));
}

TEST(DataGenerators, CountdownSolutionsUseEveryNumberOnce) {
  for (int64_t i = 0; i < 300; ++i) {
    CountdownProblem p = make_countdown(4, i);
    ASSERT_GE(p.numbers.size(), 3u);
    std::multiset<int64_t> pool(p.numbers.begin(), p.numbers.end());
    for (const auto& st : p.solution) {
      for (int64_t v : {st.x, st.y}) {
        auto it = pool.find(v);
        ASSERT_NE(it, pool.end()) << "value " << v << " not available";
        pool.erase(it);
      }
      int64_t r = st.op == '+' ? st.x + st.y : st.op == '-' ? st.x - st.y : st.op == '*' ? st.x * st.y : st.x / st.y;
      if (st.op == '/') {
        EXPECT_EQ(st.x % st.y, 0);
      }
      ASSERT_EQ(r, st.result);
      pool.insert(r);
    }
    ASSERT_EQ(pool.size(), 1u);
    EXPECT_EQ(*pool.begin(), p.target);
    std::string think = render_countdown(p, true, uint64_t(i));
    EXPECT_NE(think.find(countdown_expression(p) + " = " + std::to_string(p.target)), std::string::npos);
  }
  std::vector<CountdownStep> sol;
  EXPECT_TRUE(solve_countdown({3, 7, 25}, 46, &sol));  // 25 + 3 * 7
  EXPECT_FALSE(solve_countdown({1, 1, 1}, 100, &sol));
}

TEST(DataGenerators, SyntheticTextPassesTheDefaultFilters) {
  QualityConfig c;
  for (const char* kind : {"arithmetic", "countdown"}) {
    auto docs = generate_documents(kind, 400, 1, Style::Mixed);
    int rejected = 0;
    for (auto& d : docs) rejected += quality_check(normalize_text(d), c) != Reject::None;
    EXPECT_LT(rejected, 20) << kind;  // < 5%
  }
}

TEST(Progress, LineAndDuration) {
  EXPECT_EQ(format_duration(7), "0:07");
  EXPECT_EQ(format_duration(245), "4:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  ProgressBar bar("docs", 200, "docs", /*enabled=*/false);
  bar.add(50, 5'000'000);
  std::string line = bar.line();
  EXPECT_NE(line.find("[docs]"), std::string::npos) << line;
  EXPECT_NE(line.find("50/200 docs"), std::string::npos) << line;
  EXPECT_NE(line.find("25%"), std::string::npos) << line;
  EXPECT_NE(line.find("MB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA"), std::string::npos) << line;
  bar.finish();
  bar.finish();  // idempotent
}
