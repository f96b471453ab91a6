// baleine quantize --model SRC --type q8_0|q4_0|q4_k|q6_k|f16|bf16|f32 --out DST.gguf: weight matrices to a
// GGUF block type (llama.cpp's reference quantisers; the MoE router stays f32 as llama.cpp keeps it), written
// as GGUF with the tokenizer. SRC: an HF model directory or a .gguf file.
#include <fmt/format.h>

#include <filesystem>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "core/check.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "models/quantize.h"

namespace baleine::app {
namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string model, type, out;
};

DType parse_type(const std::string& t) {
  if (t == "q8_0") return DType::Q8_0;
  if (t == "q4_0") return DType::Q4_0;
  if (t == "q4_k") return DType::Q4_K;
  if (t == "q6_k") return DType::Q6_K;
  if (t == "f16") return DType::F16;
  if (t == "bf16") return DType::BF16;
  if (t == "f32") return DType::F32;
  BALEINE_FAIL("unknown quantisation type '{}' (supported: q8_0, q4_0, q4_k, q6_k, f16, bf16, f32)", t);
}

int run_quantize(const QuantizeArgs& a) {
  const DType type = parse_type(a.type);
  BALEINE_CHECK(a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf", "--out must name a .gguf file, got {}", a.out);
  auto model = load_model(a.model);
  TokenizerVocab vocab;
  bool has_vocab = false;
  if (fs::is_regular_file(a.model) && is_gguf_path(a.model)) {
    io::GgufFile f = io::GgufFile::open(a.model);
    if (f.has("tokenizer.ggml.tokens")) vocab = gguf_vocab(f), has_vocab = true;
  } else {
    fs::path dir = fs::is_directory(a.model) ? fs::path(a.model) : fs::path(a.model).parent_path();
    if (fs::exists(dir / "tokenizer.json")) vocab = vocab_from_tokenizer_files(dir.string(), model->config().vocab_size), has_vocab = true;
  }
  QuantizeReport r = quantize_model(*model, type);
  GgufWriteOptions o;
  o.name = fs::path(a.model).filename().string() + "-" + a.type;
  if (has_vocab) o.metadata = gguf_vocab_metadata(vocab);
  else fmt::print(stderr, "warning: {} has no tokenizer; the GGUF will carry none\n", a.model);
  write_gguf_model(*model, a.out, o);
  fmt::print(stderr, "wrote {}: {} matrices as {}, {} kept; {:.2f} MiB -> {:.2f} MiB\n", a.out, r.converted, a.type, r.kept,
             double(r.bytes_before) / 1048576.0, double(r.bytes_after) / 1048576.0);
  return 0;
}

CommandRegistration reg{{"quantize", "Quantise a model's weights (q8_0, q4_0, q4_k, q6_k) into a GGUF file",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<QuantizeArgs>();
                           sub.add_option("--model", a->model, "HF model directory or .gguf file")->required();
                           sub.add_option("--type", a->type, "q8_0, q4_0, q4_k, q6_k, f16, bf16 or f32")->required();
                           sub.add_option("--out", a->out, "Output .gguf file")->required();
                           return [a] { return run_quantize(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
