// `baleine convert` both ways and GGUF files in `tokenize`, `logits`, `info` and `generate`: a small random
// DeepSeek-V3-shaped model with a trained tokenizer goes HF → GGUF → HF; the GGUF alone tokenizes, scores and
// generates exactly like the HF directory; the tokenizer survives tokenizer.json → tokenizer.ggml.* → tokenizer.json.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/weights.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

using namespace baleine;
namespace fs = std::filesystem;

namespace {

const std::string kBin = BALEINE_BINARY;
const std::string kData = BALEINE_TEST_DATA;

struct Result {
  int status;
  std::string out;
};
Result run(const std::string& args, bool with_stderr = true) {
  std::string cmd = kBin + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  auto p = t.rfind('\n');
  return p == std::string::npos ? t : t.substr(p + 1);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* kText =
    "The quick brown fox jumps over the lazy dog. 1234567 numbers, symbols!? and\nnew lines; "
    "日本語のテキスト and ünïcödé. def f(x): return x * 2  # code\n";

// A random V3-shaped model (v3 parity config, vocab of the tokenizer) with a tokenizer trained on kText.
struct ModelDir {
  fs::path root;
  ModelDir() {
    root = fs::temp_directory_path() / ("baleine_gguf_cli_" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "hf");
    std::ofstream(root / "text.txt") << kText << kText << "more text to learn merges from, the the the";
    BpeTrainOptions o;
    o.vocab_size = 320;
    o.min_frequency = 1;
    o.progress = false;
    train_bpe_tokenizer({(root / "text.txt").string()}, (root / "hf").string(), o);
    Tokenizer tok = Tokenizer::load((root / "hf").string());
    std::ifstream in(kData + "/parity/v3/config.json");
    nlohmann::json cfg = nlohmann::json::parse(in);
    cfg["vocab_size"] = tok.vocab_size();
    std::ofstream(root / "hf" / "config.json") << cfg.dump(2);
    auto model = create_model(parse_model_config(cfg, "test"));
    init_params_random(*model, 7, 0.2f);
    std::vector<std::pair<std::string, Tensor>> tensors;
    model->for_each_param([&](nn::Param& p) { tensors.emplace_back(p.name, *p.tensor); });
    io::safetensors_write((root / "hf" / "model.safetensors").string(), tensors);
  }
  ~ModelDir() { fs::remove_all(root); }
  std::string hf() const { return (root / "hf").string(); }
  std::string path(const std::string& n) const { return (root / n).string(); }
};

ModelDir& model_dir() {
  static ModelDir d;
  return d;
}

}  // namespace

TEST(GgufCli, ConvertBothWaysAndUseTheGgufAlone) {
  ModelDir& d = model_dir();
  const std::string gguf = d.path("m.gguf");
  Result r = run("convert --in " + d.hf() + " --out " + gguf);
  ASSERT_EQ(r.status, 0) << r.out;
  io::GgufFile f = io::GgufFile::open(gguf);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model", ""), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre", ""), "deepseek-v3");
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id", -1), 0);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id", -1), 1);

  // tokenize: identical ids from the directory and from the GGUF
  std::ofstream(d.path("prompt.txt")) << kText;
  Result a = run("tokenize --tokenizer " + d.hf() + " --file " + d.path("prompt.txt"), false);
  Result b = run("tokenize --tokenizer " + gguf + " --file " + d.path("prompt.txt"), false);
  ASSERT_EQ(a.status, 0) << a.out;
  ASSERT_EQ(b.status, 0) << b.out;
  EXPECT_EQ(last_line(a.out), last_line(b.out));
  EXPECT_GT(last_line(a.out).size(), 20u);

  // logits: bit-identical files
  const std::string ids = "0,5,17,200,33,9,100";
  ASSERT_EQ(run("logits --model " + d.hf() + " --tokens " + ids + " --out " + d.path("a.bin")).status, 0);
  ASSERT_EQ(run("logits --model " + gguf + " --tokens " + ids + " --out " + d.path("b.bin")).status, 0);
  EXPECT_EQ(read_all(d.path("a.bin")), read_all(d.path("b.bin")));

  // info and generate work on the file alone
  Result info = run("info --model " + gguf);
  EXPECT_EQ(info.status, 0) << info.out;
  EXPECT_NE(info.out.find("deepseek_v3"), std::string::npos) << info.out;
  Result g1 = run("generate --model " + d.hf() + " --prompt 'The quick' --max-tokens 8 --temperature 0", false);
  Result g2 = run("generate --model " + gguf + " --prompt 'The quick' --max-tokens 8 --temperature 0", false);
  EXPECT_EQ(g1.status, 0) << g1.out;
  EXPECT_EQ(g1.out, g2.out);

  // GGUF → HF: bit-exact tensors, same config semantics, same tokenizer behaviour
  const std::string back = d.path("back");
  r = run("convert --in " + gguf + " --out " + back);
  ASSERT_EQ(r.status, 0) << r.out;
  io::SafetensorsReader x = io::SafetensorsReader::open(d.hf()), y = io::SafetensorsReader::open(back);
  EXPECT_EQ(x.names(), y.names());
  for (const auto& n : x.names()) {
    Tensor tx = x.tensor(n), ty = y.tensor(n);
    ASSERT_EQ(tx.shape(), ty.shape()) << n;
    EXPECT_EQ(std::memcmp(tx.raw(), ty.raw(), tx.nbytes()), 0) << n;
  }
  Result c = run("tokenize --tokenizer " + back + " --file " + d.path("prompt.txt"), false);
  EXPECT_EQ(last_line(a.out), last_line(c.out));
  ASSERT_EQ(run("logits --model " + back + " --tokens " + ids + " --out " + d.path("c.bin")).status, 0);
  EXPECT_EQ(read_all(d.path("a.bin")), read_all(d.path("c.bin")));
}

TEST(GgufCli, ConvertErrors) {
  ModelDir& d = model_dir();
  Result r = run("convert --in " + d.hf() + " --out " + d.path("other_dir"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("between a Hugging Face directory and a .gguf file"), std::string::npos) << r.out;
  r = run("convert --in " + kData + "/parity/qwen2 --out " + d.path("q.gguf"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--placeholder-vocab"), std::string::npos) << r.out;
  r = run("convert --in " + kData + "/parity/qwen2 --out " + d.path("q.gguf") + " --placeholder-vocab");
  EXPECT_EQ(r.status, 0) << r.out;
  std::ofstream(d.path("junk.gguf")) << "GGUF\x03";
  r = run("logits --model " + d.path("junk.gguf") + " --tokens 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("junk.gguf"), std::string::npos) << r.out;
  std::ofstream(d.path("text.gguf")) << "not a model at all, just a text file that happens to be named .gguf";
  r = run("info --model " + d.path("text.gguf"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("not a GGUF file"), std::string::npos) << r.out;
}

// tokenizer.json → flat lists → tokenizer.json encodes identically. Real tokenizers (DeepSeek-V3, Qwen2.5,
// Llama-3, written by tests/js/dump_tokenizer.mjs) are checked too when BALEINE_REAL_TOKENIZERS names their
// directories (colon-separated).
TEST(GgufCli, TokenizerVocabRoundTrip) {
  ModelDir& d = model_dir();
  std::vector<std::string> dirs = {d.hf()};
  if (const char* env = std::getenv("BALEINE_REAL_TOKENIZERS")) {
    std::string s = env;
    for (size_t p = 0; p <= s.size();) {
      size_t q = s.find(':', p);
      if (q == std::string::npos) q = s.size();
      if (q > p) dirs.push_back(s.substr(p, q - p));
      p = q + 1;
    }
  }
  std::string text = std::string(kText) + "<｜begin▁of▁sentence｜>x<|im_start|>y<|eot_id|>  \t\n\n 12345678 ' 's 'S";
  for (const auto& dir : dirs) {
    Tokenizer a = Tokenizer::load(dir);
    TokenizerVocab v = vocab_from_tokenizer_files(dir);
    Tokenizer b = tokenizer_from_vocab(v, dir + " (via vocab)");
    EXPECT_EQ(a.encode(text), b.encode(text)) << dir << " (pre " << v.pre << ")";
    EXPECT_EQ(a.bos_id(), b.bos_id()) << dir;
    EXPECT_EQ(a.eos_id(), b.eos_id()) << dir;
    std::vector<int32_t> ids = a.encode(text);
    EXPECT_EQ(a.decode(ids), b.decode(ids)) << dir;
  }
}

TEST(GgufCli, QuantizeWritesAGgufThatRuns) {
  ModelDir& d = model_dir();
  const std::string q = d.path("q8.gguf");
  Result r = run("quantize --model " + d.hf() + " --type q8_0 --out " + q);
  ASSERT_EQ(r.status, 0) << r.out;
  io::GgufFile f = io::GgufFile::open(q);
  EXPECT_EQ(f.info("blk.0.attn_kv_a_mqa.weight").dtype, DType::Q8_0);  // rows of 32 values: one block
  EXPECT_EQ(f.info("blk.1.ffn_gate_inp.weight").dtype, DType::F32);  // the router stays f32, as in llama.cpp
  EXPECT_EQ(f.get_int("general.file_type", -1), 7);                  // LLAMA_FTYPE_MOSTLY_Q8_0
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre", ""), "deepseek-v3");
  Result l = run("logits --model " + q + " --tokens 0,5,17");
  EXPECT_EQ(l.status, 0) << l.out;
  Result g = run("generate --model " + q + " --prompt 'The quick' --max-tokens 4 --temperature 0");
  EXPECT_EQ(g.status, 0) << g.out;
  r = run("quantize --model " + d.hf() + " --type q3_k --out " + d.path("x.gguf"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("unknown quantisation type 'q3_k'"), std::string::npos) << r.out;
}
