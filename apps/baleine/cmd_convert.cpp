// baleine convert --in SRC --out DST: Hugging Face directory ↔ GGUF file, both ways (direction from the paths).
//   HF → GGUF: the layout llama.cpp expects (arch deepseek2 / qwen2 / llama), weights in their stored dtype,
//              the tokenizer as tokenizer.ggml.* (pre-tokenizer named as llama.cpp names it).
//   GGUF → HF: config.json, model.safetensors (float weights kept, block-quantised ones dequantised to f32),
//              tokenizer.json + tokenizer_config.json when the file carries a tokenizer.
#include <fmt/format.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "core/check.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "models/gguf_model.h"
#include "models/gguf_tensors.h"
#include "models/model.h"

namespace baleine::app {
namespace {

namespace fs = std::filesystem;

struct ConvertArgs {
  std::string in, out, name;
  bool legacy_kv_b = false, placeholder_vocab = false;
};

void write_text(const std::string& path, const std::string& text) {
  io::atomic_write("convert", path, [&](const io::ByteSink& sink) { sink(text.data(), text.size()); });
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Numbered tokens for checkpoints without a tokenizer: llama.cpp refuses files without a vocabulary.
TokenizerVocab placeholder_vocab(int64_t n) {
  TokenizerVocab v;
  v.pre = "deepseek-v3";
  for (int64_t i = 0; i < n; ++i) {
    v.tokens.push_back(fmt::format("<|placeholder_{}|>", i));
    v.token_types.push_back(int32_t(TokenType::Normal));
  }
  return v;
}

int to_gguf(const ConvertArgs& a) {
  auto model = load_model(a.in);
  const ModelConfig& c = model->config();
  GgufWriteOptions o;
  o.legacy_kv_b = a.legacy_kv_b;
  o.name = a.name.empty() ? fs::path(a.in).filename().string() : a.name;
  fs::path dir = fs::is_directory(a.in) ? fs::path(a.in) : fs::path(a.in).parent_path();
  TokenizerVocab v;
  if (fs::exists(dir / "tokenizer.json")) {
    v = vocab_from_tokenizer_files(dir.string(), c.vocab_size);
    BALEINE_CHECK(int64_t(v.tokens.size()) == c.vocab_size,
                  "{}: the tokenizer has {} tokens but the model's vocab_size is {}", a.in, v.tokens.size(), c.vocab_size);
  } else {
    BALEINE_CHECK(a.placeholder_vocab, "{}: no tokenizer.json; pass --placeholder-vocab to write numbered placeholder "
                  "tokens (llama.cpp needs a vocabulary to load a file)", a.in);
    v = placeholder_vocab(c.vocab_size);
    fmt::print(stderr, "warning: {} has no tokenizer; writing {} placeholder tokens\n", a.in, c.vocab_size);
  }
  if (v.bos < 0 && c.bos_token_id >= 0) v.bos = int32_t(c.bos_token_id);
  if (v.eos < 0 && c.eos_token_id >= 0) v.eos = int32_t(c.eos_token_id);
  o.metadata = gguf_vocab_metadata(v);
  write_gguf_model(*model, a.out, o);
  fmt::print(stderr, "wrote {} ({}, {} layers{})\n", a.out, gguf_arch_name(c), c.num_hidden_layers,
             a.legacy_kv_b ? ", legacy attn_kv_b" : "");
  return 0;
}

int to_hf(const ConvertArgs& a) {
  io::GgufFile f = io::GgufFile::open(a.in);
  nlohmann::json config = gguf_hf_config(f);
  auto model = load_gguf_model(f);
  fs::create_directories(a.out);
  std::vector<std::pair<std::string, Tensor>> tensors;
  model->for_each_param([&](nn::Param& p) {
    if (!p.tensor->defined()) return;
    Tensor t = *p.tensor;
    if (dtype_is_quantized(t.dtype())) t = to_f32_any(t);
    tensors.emplace_back(p.name, t);
  });
  io::safetensors_write((fs::path(a.out) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_text((fs::path(a.out) / "config.json").string(), config.dump(2) + "\n");
  if (f.has("tokenizer.ggml.tokens")) {
    std::string tj, cj;
    tokenizer_json_from_vocab(gguf_vocab(f), tj, cj, a.in);
    write_text((fs::path(a.out) / "tokenizer.json").string(), tj);
    write_text((fs::path(a.out) / "tokenizer_config.json").string(), cj + "\n");
  }
  fmt::print(stderr, "wrote {}/{{config.json, model.safetensors{}}} ({} tensors)\n", a.out,
             f.has("tokenizer.ggml.tokens") ? ", tokenizer.json" : "", tensors.size());
  return 0;
}

int run_convert(const ConvertArgs& a) {
  const bool in_gguf = fs::is_regular_file(a.in) && is_gguf_path(a.in);
  const bool out_gguf = ends_with(a.out, ".gguf");
  BALEINE_CHECK(fs::exists(a.in), "{}: no such file or directory", a.in);
  BALEINE_CHECK(in_gguf != out_gguf, "convert goes between a Hugging Face directory and a .gguf file: got --in {} ({}) "
                "and --out {} ({})", a.in, in_gguf ? "GGUF" : "HF", a.out, out_gguf ? "GGUF" : "HF directory");
  return out_gguf ? to_gguf(a) : to_hf(a);
}

CommandRegistration reg{{"convert", "Convert between a Hugging Face model directory and a GGUF file (both ways)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<ConvertArgs>();
                           sub.add_option("--in", a->in, "Source: HF model directory or .gguf file")->required();
                           sub.add_option("--out", a->out, "Destination: .gguf file or a directory")->required();
                           sub.add_option("--name", a->name, "general.name written to GGUF");
                           sub.add_flag("--legacy-kv-b", a->legacy_kv_b,
                                        "deepseek2: write attn_kv_b (pre-MLA llama.cpp layout) instead of attn_k_b/attn_v_b");
                           sub.add_flag("--placeholder-vocab", a->placeholder_vocab,
                                        "Without a tokenizer.json, write numbered placeholder tokens");
                           return [a] { return run_convert(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
