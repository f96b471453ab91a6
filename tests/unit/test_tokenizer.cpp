// Tokenizer: a small hand-made byte-level BPE tokenizer.json exercises merges, added tokens, decoding,
// streaming and every error path (the full DeepSeek-V3 parity runs in tests/js/tokenizer_parity.sh).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;
using nlohmann::json;

namespace {
// Byte-level alphabet character for a byte (GPT-2 map) — only the printable ASCII and space cases needed here.
std::string bl(char c) { return c == ' ' ? "\xC4\xA0" : std::string(1, c); }  // ' ' -> U+0120

json tiny_tokenizer() {
  json vocab = json::object();
  int id = 0;
  // All 256 byte symbols first, as a real byte-level vocabulary has.
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
    std::string s;
    if (cp < 0x80) s += char(cp);
    else s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
    vocab[s] = id++;
  }
  vocab["he"] = id++;
  vocab["ll"] = id++;
  vocab["hell"] = id++;
  vocab["hello"] = id++;
  vocab[bl(' ') + "w"] = id++;
  json j = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 300}, {"content", "<|eos|>"}, {"special", true}}, {{"id", 301}, {"content", "<think>"}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {
          {{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "Split"}, {"pattern", {{"Regex", " ?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+|\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", "he ll", "hell o", bl(' ') + " w"}}}},
  };
  return j;
}

Tokenizer make(const json& j, const std::string& config = R"({"bos_token": "<|eos|>", "eos_token": {"content": "<|eos|>"}})") {
  return Tokenizer::from_json(j.dump(), config, "tiny.json");
}

std::string error_of(const json& j) {
  try {
    make(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Tokenizer, MergesAddedTokensAndRoundTrip) {
  Tokenizer t = make(tiny_tokenizer());
  auto hello = *t.token_id("hello");
  auto ids = t.encode("hello<|eos|> w12345");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], hello);                // h e l l o -> he ll o -> hell o -> hello
  EXPECT_EQ(ids[1], 300);                  // special token matched before pre-tokenization
  EXPECT_EQ(ids[2], *t.token_id(bl(' ') + "w"));
  EXPECT_EQ(t.decode(ids), "hello<|eos|> w12345");
  EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "hello w12345");
  EXPECT_EQ(t.eos_id(), 300);
  EXPECT_EQ(t.encode("x", true)[0], 300);  // --bos
  // Special-looking text encoded as plain text when specials are disallowed.
  auto plain = t.encode("<|eos|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t.decode(plain), "<|eos|>");
}

TEST(Tokenizer, InvalidUtf8AndEmptyNeverCrash) {
  Tokenizer t = make(tiny_tokenizer());
  EXPECT_TRUE(t.encode("").empty());
  std::string bad = "ok \xff\xfe \xc3 end \xe2\x82";
  auto ids = t.encode(bad);
  EXPECT_EQ(t.decode(ids), bad);  // bytes come back unchanged
}

TEST(Tokenizer, StreamDecoderNeverSplitsACharacter) {
  Tokenizer t = make(tiny_tokenizer());
  const std::string text = "h\xC3\xA9llo \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80!";  // é, 你好, 😀 — multi-byte
  auto ids = t.encode(text);
  StreamDecoder d(t);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = d.push(id);
    // Every emitted piece is complete UTF-8: it never ends with an unfinished lead sequence.
    if (!piece.empty()) {
      unsigned char last = static_cast<unsigned char>(piece.back());
      EXPECT_TRUE(last < 0x80 || (last & 0xc0) == 0x80) << "piece ends with a lead byte";
    }
    out += piece;
  }
  out += d.flush();
  EXPECT_EQ(out, text);
}

TEST(TokenizerErrors, NameTheProblem) {
  auto j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_NE(error_of(j).find("unsupported pre-tokenizer type 'Metaspace'"), std::string::npos);
  j = tiny_tokenizer();
  j["normalizer"] = {{"type", "NFKC"}};  // NFC is supported (Qwen2); NFKC is not
  EXPECT_NE(error_of(j).find("unsupported normalizer type 'NFKC'"), std::string::npos);
  j = tiny_tokenizer();
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(error_of(j).find("unsupported model type 'WordPiece'"), std::string::npos);
  j = tiny_tokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(error_of(j).find("cannot compile regex"), std::string::npos);
  j = tiny_tokenizer();
  j["model"]["merges"] = {42};
  EXPECT_NE(error_of(j).find("merge 0"), std::string::npos);
  EXPECT_THROW(Tokenizer::from_json("{not json", "", "x.json"), Error);
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer"), Error);
  Tokenizer t = make(tiny_tokenizer());
  EXPECT_THROW(t.token_bytes(99999), Error);
}

TEST(Tokenizer, NfcNormalizerComposesBeforeSplitting) {
  auto j = tiny_tokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  Tokenizer t = make(j);
  // "e" + combining acute (U+0301) becomes the single code point é (U+00E9) before BPE.
  EXPECT_EQ(t.decode(t.encode("caf" "e\xCC\x81")), "caf\xC3\xA9");
  Tokenizer raw = make(tiny_tokenizer());
  EXPECT_EQ(raw.decode(raw.encode("caf" "e\xCC\x81")), "caf" "e\xCC\x81");
}

// Inputs the fuzzer found (fuzz/regressions/tokenizer_json): each must be one clear baleine::Error naming the file.
TEST(TokenizerErrors, FuzzRegressions) {
  for (const char* name : {"sequence_without_pretokenizers.json", "negative_added_id.json"}) {
    std::ifstream f(std::string(BALEINE_TEST_DATA) + "/../../fuzz/regressions/tokenizer_json/" + name, std::ios::binary);
    ASSERT_TRUE(f.good()) << name;
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string json = text.substr(0, text.find('\0'));
    try {
      (void)baleine::Tokenizer::from_json(json, "", "regression.json");
      ADD_FAILURE() << name << " loaded";
    } catch (const baleine::Error& e) {
      EXPECT_NE(std::string(e.what()).find("regression.json"), std::string::npos) << e.what();
    }
  }
  // Wrong JSON types in otherwise well-formed files.
  for (const char* json : {R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": 5}})",
                           R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": 7}}})",
                           R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 1e9, "content": "x"}], "pre_tokenizer": {"type": "ByteLevel"}})",
                           R"({"model": {"type": 5, "vocab": {}}})"})
    EXPECT_THROW((void)baleine::Tokenizer::from_json(json, "", "regression.json"), baleine::Error) << json;
}
